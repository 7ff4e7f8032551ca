//! A per-port gate in front of the hash tables: until when a SYN to a local
//! port can matter.
//!
//! A SYN to a guarded port can only pass if an expectation for that port is
//! live, or if it is the retransmission of a SYN already admitted (or sent by
//! this host, for a simultaneous open). Each of those events pushes the port's
//! window forward: creating an expectation by its lifetime plus the SYN retry
//! window, admitting or sending a SYN by the retry window. A SYN to a port
//! whose window has closed is dropped after one array read, without touching
//! the flow or expectation tables: the common case in a flood, at a fraction
//! of the cost. The reader judges by the packet clock (`shared::packet_now`,
//! at most a jiffy behind; plenty for windows of minutes). Writers use the
//! precise one, which the TLS probes call too, so a window only ever lasts
//! up to a jiffy longer.

use crate::{maps::FTPCT_PORT_WINDOW, shared::now_ns};

/// How long a SYN may still be retransmitted after the first: Linux retries
/// `tcp_syn_retries` = 6 times over about 127 s.
const SYN_RETRY_WINDOW_NS: u64 = 130 * 1_000_000_000;

/// Whether a SYN to `port` at `now` needs the full lookup.
#[inline(always)]
pub fn is_open(port: u16, now: u64) -> bool {
    match FTPCT_PORT_WINDOW.get(u32::from(port)) {
        Some(until) => now <= *until,
        None => true,
    }
}

/// Keeps `port` open for `extra_ns` plus the SYN retry window from now.
#[inline(always)]
pub fn extend(port: u16, extra_ns: u64) {
    let Some(until) = FTPCT_PORT_WINDOW.get_ptr_mut(u32::from(port)) else {
        return;
    };
    let wanted = now_ns()
        .saturating_add(extra_ns)
        .saturating_add(SYN_RETRY_WINDOW_NS);
    // SAFETY: pointer from a successful array lookup; a racing writer can only
    // store another recent deadline.
    unsafe {
        if *until < wanted {
            *until = wanted;
        }
    }
}
