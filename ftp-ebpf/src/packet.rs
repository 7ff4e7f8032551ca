//! Bounds-checked packet access shared by the XDP and TC programs.

use aya_ebpf::{
    EbpfContext,
    helpers::generated::{bpf_skb_load_bytes, bpf_xdp_load_bytes},
    programs::{TcContext, XdpContext},
};

/// What both program types offer: direct access to the linear part of the
/// packet, and a helper that copies bytes from anywhere in it.
pub trait Packet {
    /// Address of the first byte.
    fn start(&self) -> usize;
    /// Address one past the last linear byte.
    fn end(&self) -> usize;
    /// Copies `len` bytes at `offset` into `dst`; `len` must be 1..=`dst` size.
    fn load_bytes(&self, offset: u32, dst: *mut u8, len: u32) -> bool;

    /// A pointer to a `T` at `offset`, if the whole `T` lies inside the packet.
    #[inline(always)]
    fn ptr_at<T>(&self, offset: usize) -> Option<*const T> {
        let start = self.start();
        if start + offset + core::mem::size_of::<T>() > self.end() {
            return None;
        }
        Some((start + offset) as *const T)
    }

    /// A copy of the `T` at `offset`, if the whole `T` lies inside the packet.
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        let ptr = self.ptr_at::<T>(offset)?;
        // SAFETY: ptr_at checked that the T lies within [start, end).
        Some(unsafe { core::ptr::read_unaligned(ptr) })
    }
}

impl Packet for XdpContext {
    #[inline(always)]
    fn start(&self) -> usize {
        self.data()
    }
    #[inline(always)]
    fn end(&self) -> usize {
        self.data_end()
    }
    #[inline(always)]
    fn load_bytes(&self, offset: u32, dst: *mut u8, len: u32) -> bool {
        // SAFETY: the helper checks offset/len against the frame; dst points to
        // at least `len` writable bytes (caller contract, checked by the verifier).
        unsafe { bpf_xdp_load_bytes(self.as_ptr().cast(), offset, dst.cast(), len) == 0 }
    }
}

impl Packet for TcContext {
    #[inline(always)]
    fn start(&self) -> usize {
        self.data()
    }
    #[inline(always)]
    fn end(&self) -> usize {
        self.data_end()
    }
    #[inline(always)]
    fn load_bytes(&self, offset: u32, dst: *mut u8, len: u32) -> bool {
        // SAFETY: as for XDP; the helper also reads non-linear skb data.
        unsafe { bpf_skb_load_bytes(self.as_ptr().cast_const(), offset, dst.cast(), len) == 0 }
    }
}

/// `n` (which must be 1..=`max`, a power of two) in a form the verifier
/// can prove is 1..=`max`, for a helper's size argument: the helpers refuse
/// a size that may be zero or unbounded. The value passes through
/// `black_box` so that the compiler, which may know the range already from
/// the caller's checks, keeps the mask the verifier needs.
#[inline(always)]
pub fn helper_len(n: u32, max: u32) -> u32 {
    ((core::hint::black_box(n).wrapping_sub(1)) & (max - 1)) + 1
}
