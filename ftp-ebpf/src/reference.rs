//! Reference programs for `cargo xtask bench`, measured in the same run as
//! ftpct's: the cheapest possible XDP program, and the stateless floor of what
//! ftpct does (drop TCP SYNs to the default guarded range, nothing else).
//! `ftpct attach` never loads them.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
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
