//! Per-CPU counter increments.

use ftp_ebpf_common::counters::Counter;

use crate::maps::FTPCT_COUNTERS;

/// Adds one to `counter` on this CPU. Per-CPU slots need no atomics.
#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(slot) = FTPCT_COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: the pointer comes from a successful per-CPU array lookup and is
        // only touched by this CPU while the program runs.
        unsafe { *slot += 1 };
    }
}
