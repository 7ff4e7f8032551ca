//! Audit events (issue #12, item 6): a dropped packet or a refused
//! announcement becomes one record in the ring buffer, with its reason,
//! addresses and ports; each source gets a few per second and the rest are
//! counted and reported with its next one; a CPU sends a bounded number per
//! second whatever the sources, so a spoofed flood cannot flood the log.

mod common;

use std::time::Duration;

use ftp_ebpf_common::{
    counters::Counter,
    events::{PER_CPU_PER_SEC, PER_SOURCE_PER_SEC},
};

use common::{CLIENT, Control, Harness, INTRUDER, SERVER, SYN, Segment, XDP_DROP};

/// Keeps this thread on one CPU: the per-CPU limit is per CPU, and
/// `BPF_PROG_TEST_RUN` runs the program where the caller runs.
fn pin_to_one_cpu() {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes
    // within it; sched_setaffinity reads it (pid 0: this thread).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn syn_from(h: &Harness, src: &str, sport: u16, dport: u16) -> u32 {
    h.ingress(&Segment::new(src, sport, SERVER, dport).flags(SYN).frame())
}

#[test]
fn dropped_syns_and_refused_announcements_are_events() {
    pin_to_one_cpu();
    let mut h = Harness::new();
    assert_eq!(syn_from(&h, INTRUDER, 40_000, 40_123), XDP_DROP);
    {
        let mut c = Control::new(&h);
        c.reply(b"220 ready\r\n");
        c.command(b"PORT 198,18,0,3,156,110\r\n");
        c.reply(b"200 PORT command successful.\r\n");
    }
    let events = h.events();
    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["syn_dropped", "refused_bounce"], "{events:?}");
    let (syn, bounce) = (&events[0], &events[1]);
    assert_eq!(
        (
            syn.src.to_string(),
            syn.sport,
            syn.dst.to_string(),
            syn.dport
        ),
        (INTRUDER.to_string(), 40_000, SERVER.to_string(), 40_123)
    );
    assert_eq!(
        (bounce.src.to_string(), bounce.dst.to_string(), bounce.dport),
        (CLIENT.to_string(), SERVER.to_string(), 21)
    );
    assert_eq!(h.counter(Counter::EventsSent), 2);
    assert_eq!(h.counter(Counter::EventsSuppressed), 0);
}

#[test]
fn a_source_gets_a_few_events_a_second_and_the_rest_are_reported_later() {
    pin_to_one_cpu();
    let mut h = Harness::new();
    for n in 0..20 {
        assert_eq!(syn_from(&h, INTRUDER, 41_000 + n, 40_200), XDP_DROP);
    }
    let events = h.events();
    assert_eq!(events.len(), PER_SOURCE_PER_SEC as usize, "{events:?}");
    let left_out = 20 - u64::from(PER_SOURCE_PER_SEC);
    assert_eq!(h.counter(Counter::EventsSuppressed), left_out);
    // Another source is not held back by this one.
    assert_eq!(syn_from(&h, CLIENT, 42_000, 40_200), XDP_DROP);
    assert_eq!(h.events().len(), 1);
    // In the next second the source's first event says how many were left out.
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(syn_from(&h, INTRUDER, 43_000, 40_200), XDP_DROP);
    let next = h.events();
    assert_eq!(next.len(), 1);
    assert_eq!(u64::from(next[0].suppressed), left_out, "{next:?}");
}

#[test]
fn a_spoofed_flood_meets_the_per_cpu_limit() {
    pin_to_one_cpu();
    let mut h = Harness::new();
    let sources = PER_CPU_PER_SEC + 100;
    for n in 0..sources {
        let src = format!("198.19.{}.{}", n / 250, n % 250 + 1);
        assert_eq!(syn_from(&h, &src, 44_000, 40_300), XDP_DROP);
    }
    let events = h.events();
    assert_eq!(events.len(), PER_CPU_PER_SEC as usize);
    assert_eq!(h.counter(Counter::EventsSuppressed), 100);
    assert_eq!(h.counter(Counter::SynDropped), u64::from(sources));
}
