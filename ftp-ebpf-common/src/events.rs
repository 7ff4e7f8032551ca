//! Audit events (issue #12, item 6): one record per dropped packet or
//! refused announcement, sent through the `FTPCT_EVENTS` ring buffer and
//! rate-limited in the kernel, per source and per CPU, so that a flood costs
//! a few instructions per packet and never floods the log.

use crate::Addr;

/// Events one source (an address; IPv6: its /64) may cause per second;
/// the rest are counted and reported with its next event.
pub const PER_SOURCE_PER_SEC: u32 = 4;

/// Events one CPU may send per second, whatever their sources: a spoofed
/// flood from many addresses stops here.
pub const PER_CPU_PER_SEC: u32 = 25;

/// Sources remembered for the per-source limit (LRU).
pub const SOURCES: u32 = 8_192;

/// Bytes of the ring buffer (a power of two, whole pages): about 4,600
/// events the reader has not taken yet.
pub const RING_BYTES: u32 = 256 * 1024;

/// The window the limits count in.
pub const WINDOW_NS: u64 = 1_000_000_000;

/// One audit event, as the ring buffer carries it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Event {
    /// CLOCK_MONOTONIC (coarse) when it happened.
    pub ts_ns: u64,
    /// The reason: a `counters::Counter` index (`syn_dropped`,
    /// `refused_bounce`, ...).
    pub reason: u32,
    /// Events of this source left out since its previous one (rate limit).
    pub suppressed: u32,
    /// `family::V4` or `family::V6`.
    pub family: u8,
    _pad: [u8; 3],
    /// Source port (host order): the remote end of a dropped packet, the
    /// client of a refused announcement's control connection.
    pub sport: u16,
    /// Destination port (host order).
    pub dport: u16,
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
}

impl Event {
    /// An event of `reason` from `src`:`sport` to `dst`:`dport`.
    #[inline(always)]
    pub const fn new(
        ts_ns: u64,
        reason: u32,
        family: u8,
        (src, sport): (Addr, u16),
        (dst, dport): (Addr, u16),
    ) -> Self {
        Self {
            ts_ns,
            reason,
            suppressed: 0,
            family,
            _pad: [0; 3],
            sport,
            dport,
            src,
            dst,
        }
    }
}

/// How many events went out in the current window, and how many were left
/// out (per source in `FTPCT_EVENT_SOURCES`, per CPU in the scratch region).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EventRate {
    /// Start of the window (coarse CLOCK_MONOTONIC).
    pub window_ns: u64,
    /// Events sent in it.
    pub sent: u32,
    /// Events left out since the last one sent.
    pub suppressed: u32,
}

impl EventRate {
    /// Whether one more event may go at `now` under `limit` per window;
    /// when not, it is counted as suppressed. A new window starts when the
    /// old one is over.
    #[inline(always)]
    pub fn admit(&mut self, now: u64, limit: u32) -> bool {
        if now.saturating_sub(self.window_ns) >= WINDOW_NS {
            self.window_ns = now;
            self.sent = 0;
        }
        if self.sent >= limit {
            self.suppressed = self.suppressed.saturating_add(1);
            return false;
        }
        self.sent += 1;
        true
    }

    /// The count of events left out, reset (it goes with the event sent).
    #[inline(always)]
    pub fn take_suppressed(&mut self) -> u32 {
        core::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_sends_its_limit_per_window_and_reports_the_rest() {
        let mut rate = EventRate::default();
        let t0 = 5 * WINDOW_NS;
        let sent = (0..10).filter(|_| rate.admit(t0, 4)).count();
        assert_eq!((sent, rate.suppressed), (4, 6));
        assert!(!rate.admit(t0 + WINDOW_NS - 1, 4));
        assert!(rate.admit(t0 + WINDOW_NS, 4));
        assert_eq!(rate.take_suppressed(), 7);
        assert_eq!(rate.suppressed, 0);
    }

    #[test]
    fn a_clock_behind_the_window_does_not_open_it() {
        let mut rate = EventRate::default();
        assert!(rate.admit(WINDOW_NS * 3, 1));
        // Another CPU's coarse clock may read a little earlier.
        assert!(!rate.admit(WINDOW_NS * 3 - 10, 1));
    }
}
