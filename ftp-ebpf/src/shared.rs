//! Helpers every program uses: the port classes and policy user space
//! writes, the clock and the per-CPU scratch memory.

use aya_ebpf::helpers::{bpf_ktime_get_ns, generated::bpf_jiffies64};
use ftp_ebpf_common::policy::{Policy, PortClass};

use crate::maps::{FTPCT_POLICY, FTPCT_PORTS, FTPCT_SCRATCH, Scratch};

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

/// CLOCK_MONOTONIC for the per-packet paths, at most one jiffy behind
/// `now_ns`: the clock is read once per jiffy on each CPU and kept in its
/// scratch region. `bpf_jiffies64` is a single load once the JIT inlines
/// it, where reading the clock costs ~30 ns in a VM (a fifth of a tracked
/// packet's cost). A deadline judged by it holds up to a jiffy longer.
#[inline(always)]
pub fn packet_now() -> u64 {
    let Some(s) = scratch(ScratchSlot::Packet) else {
        return now_ns();
    };
    // SAFETY: a helper call without arguments.
    let jiffies = unsafe { bpf_jiffies64() };
    if s.clock_jiffies != jiffies {
        s.clock_jiffies = jiffies;
        s.clock_ns = now_ns();
    }
    s.clock_ns
}

/// Which of the two per-CPU scratch regions a program works in. XDP and TC
/// never interleave on one CPU (both run with bottom halves disabled and to
/// completion), so they share one; a TLS probe runs in a process and a
/// packet may interrupt it on its CPU, so the probes have their own. Two
/// probes never nest on one CPU (the kernel skips a nested one).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ScratchSlot {
    /// The packet programs' region.
    Packet = 0,
    /// The TLS probes' region.
    Probe = 1,
}

impl ScratchSlot {
    /// The slot passed to a global BPF function as a scalar.
    #[inline(always)]
    pub fn from_u32(slot: u32) -> Self {
        if slot == Self::Probe as u32 {
            Self::Probe
        } else {
            Self::Packet
        }
    }
}

/// This CPU's scratch region `slot`.
#[inline(always)]
pub fn scratch(slot: ScratchSlot) -> Option<&'static mut Scratch> {
    let scratch = FTPCT_SCRATCH.get_ptr_mut(slot as u32)?;
    // SAFETY: per-CPU memory from a successful lookup; the slot's programs
    // never interleave on one CPU (see `ScratchSlot`).
    Some(unsafe { &mut *scratch })
}
