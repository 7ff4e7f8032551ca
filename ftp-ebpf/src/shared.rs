//! Helpers both programs use: the port classes and policy user space writes,
//! and the clock.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use ftp_ebpf_common::policy::{Policy, PortClass};

use crate::maps::{FTPCT_POLICY, FTPCT_PORTS};

/// The policy, once user space has written it; until then everything passes
/// so that a half-initialised attach never drops traffic.
#[inline(always)]
pub fn ready_policy() -> Option<&'static Policy> {
    FTPCT_POLICY.get(0).filter(|p| p.ready != 0)
}

/// The class of a port; a missing entry (impossible for an array) is guarded.
#[inline(always)]
pub fn port_class(port: u16) -> PortClass {
    match FTPCT_PORTS.get(port as u32) {
        Some(v) => PortClass::from_u8(*v),
        None => PortClass::Guarded,
    }
}

/// CLOCK_MONOTONIC in nanoseconds, the clock of every deadline in the maps.
#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: a helper call without arguments.
    unsafe { bpf_ktime_get_ns() }
}
