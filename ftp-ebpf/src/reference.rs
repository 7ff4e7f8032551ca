//! Reference programs for `cargo xtask bench`, measured in the same run as
//! ftpct's: the cheapest possible XDP program, and the stateless floor of what
//! ftpct does (drop TCP SYNs to the default guarded range, nothing else);
//! and the flood generator the bench runs with `BPF_PROG_TEST_RUN` in live
//! frames mode. `ftpct attach` never loads them.

use aya_ebpf::{bindings::xdp_action, helpers::bpf_get_prandom_u32, programs::XdpContext};
use ftp_ebpf_common::policy::DEFAULT_DATA_PORTS;

use core::mem::MaybeUninit;

use crate::headers;

/// Passes every frame.
#[inline(always)]
pub fn pass(_ctx: &XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// Drops SYNs to the default data range using the same header parser as
/// ftpct, without any map lookups.
#[inline(always)]
pub fn syn_floor(ctx: &XdpContext) -> u32 {
    let mut slot = MaybeUninit::uninit();
    if let Ok(info) = headers::parse(ctx, &mut slot)
        && info.is_syn()
        && info.dport >= DEFAULT_DATA_PORTS.0
    {
        return xdp_action::XDP_DROP;
    }
    xdp_action::XDP_PASS
}

/// Offset of the IPv4 header in the generator's template frame (no VLAN).
const GEN_IP: usize = 14;
/// Offset of its TCP header (IPv4 without options).
const GEN_TCP: usize = GEN_IP + 20;
/// Lowest destination and source port of the flood.
const GEN_PORT_MIN: u32 = 1024;

/// The flood generator (as `xdp-trafficgen` does it): run by
/// `BPF_PROG_TEST_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES` on the template SYN
/// the bench passes (Ethernet, IPv4 without options from 198.19.0.0/16, TCP
/// with valid checksums), it gives every frame a random source address in
/// that /16, random ports (destination 1024–65535), a random sequence number,
/// and returns `XDP_TX`, which the kernel turns into a transmission on the
/// device the run names. In live mode a page is initialised from the
/// template only when new and then recycled with whatever the last run left,
/// so every varying field is written on every run and both checksums are
/// updated incrementally from the page's current content (RFC 1624), which is
/// right whichever it is.
#[inline(always)]
pub fn flood_tx(ctx: &XdpContext) -> u32 {
    let start = ctx.data();
    if start + GEN_TCP + 20 > ctx.data_end() {
        return xdp_action::XDP_ABORTED;
    }
    // SAFETY: bpf_get_prandom_u32 has no preconditions.
    let (r1, r2, r3) = unsafe {
        (
            bpf_get_prandom_u32(),
            bpf_get_prandom_u32(),
            bpf_get_prandom_u32(),
        )
    };
    let port = |r: u32| (GEN_PORT_MIN + r % (65_536 - GEN_PORT_MIN)) as u16;
    // The words as they lie in the frame (ports in network order): source
    // address low half, ports, sequence number.
    let changes: [(usize, u16); 5] = [
        (GEN_IP + 14, (r1 as u16).to_be()),
        (GEN_TCP, port(r1 >> 16).to_be()),
        (GEN_TCP + 2, port(r2).to_be()),
        (GEN_TCP + 4, (r3 >> 16) as u16),
        (GEN_TCP + 6, r3 as u16),
    ];
    let word = |off: usize| (start + off) as *mut u16;
    let mut ip_sum = 0u32;
    let mut tcp_sum = 0u32;
    for (i, (off, new)) in changes.into_iter().enumerate() {
        // SAFETY: every offset is below GEN_TCP + 20, checked against
        // data_end above; the frame is writable in XDP.
        let old = unsafe { word(off).read_unaligned() };
        // SAFETY: as above.
        unsafe { word(off).write_unaligned(new) };
        let delta = u32::from(!old) + u32::from(new);
        tcp_sum += delta;
        if i == 0 {
            ip_sum += delta;
        }
    }
    for (off, sum) in [(GEN_IP + 10, ip_sum), (GEN_TCP + 16, tcp_sum)] {
        // SAFETY: both checksum fields lie below GEN_TCP + 20 (checked).
        unsafe {
            let check = word(off).read_unaligned();
            word(off).write_unaligned(csum_add(check, sum));
        }
    }
    xdp_action::XDP_TX
}

/// RFC 1624 eqn. 3: checksum `check` after adding `delta`, the sum of
/// `~old + new` over the 16-bit words that changed, each read as it lies in
/// the frame like `check` itself (a one's complement sum comes out the same
/// in either byte order, RFC 1071).
#[inline(always)]
fn csum_add(check: u16, delta: u32) -> u16 {
    let mut sum = u32::from(!check) + delta;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}
