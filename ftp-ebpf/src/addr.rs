//! Address copies and compares without `memcpy`/`bcmp`.
//!
//! A 16-byte array with byte alignment is copied through compiler-builtins'
//! `memcpy`, a byte loop the verifier walks iteration by iteration; deep in
//! the parser's callbacks that multiplies its work past the limit. Four
//! explicit 32-bit moves are straight-line code.

use ftp_ebpf_common::Addr;

/// `*dst = *src`.
#[inline(always)]
pub fn copy(dst: &mut Addr, src: &Addr) {
    for i in 0..4 {
        // SAFETY: i * 4 + 4 <= 16 for both arrays; the accesses are unaligned
        // on purpose (the arrays have byte alignment).
        unsafe {
            let word = core::ptr::read_unaligned(src.as_ptr().add(i * 4).cast::<u32>());
            core::ptr::write_unaligned(dst.as_mut_ptr().add(i * 4).cast::<u32>(), word);
        }
    }
}

/// Zeroes the lower 64 bits (an IPv6 address becomes its /64).
#[inline(always)]
pub fn clear_low64(addr: &mut Addr) {
    for i in 2..4 {
        // SAFETY: as in `copy`.
        unsafe { core::ptr::write_unaligned(addr.as_mut_ptr().add(i * 4).cast::<u32>(), 0) };
    }
}

/// Zeroes bytes 6 and 7 (with `clear_low64`, an IPv6 address becomes its /48).
#[inline(always)]
pub fn clear_bytes_6_7(addr: &mut Addr) {
    // SAFETY: offset 6 with width 2 stays within 16 bytes.
    unsafe { core::ptr::write_unaligned(addr.as_mut_ptr().add(6).cast::<u16>(), 0) };
}

/// `*dst = a.b.c.d` in the IPv4 layout (the rest zero), as three stores.
#[inline(always)]
pub fn set_v4(dst: &mut Addr, octets: [u8; 4]) {
    // SAFETY: offsets 0, 4 and 8 with widths 4, 4 and 8 stay within 16 bytes.
    unsafe {
        let p = dst.as_mut_ptr();
        core::ptr::write_unaligned(p.cast::<u32>(), u32::from_ne_bytes(octets));
        core::ptr::write_unaligned(p.add(4).cast::<u32>(), 0);
        core::ptr::write_unaligned(p.add(8).cast::<u64>(), 0);
    }
}

/// `a == b`, as two 64-bit compares.
#[inline(always)]
pub fn same(a: &Addr, b: &Addr) -> bool {
    let (a, b) = (words(a), words(b));
    a[0] == b[0] && a[1] == b[1]
}

#[inline(always)]
fn words(a: &Addr) -> [u64; 2] {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&a[..8]);
    hi.copy_from_slice(&a[8..]);
    [u64::from_ne_bytes(lo), u64::from_ne_bytes(hi)]
}
