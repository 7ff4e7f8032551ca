//! Sequence tracking on control connections: only the local end's handshake,
//! its acknowledgments and the seeded socket set where a stream is; forged
//! segments (a SYN, data ahead of the stream) never cost real lines.

mod common;

use common::{ACK, CLIENT, CPORT, Control, Harness, SERVER, SYN, Segment, pasv};
use ftp_ebpf_common::counters::Counter;

/// A local server's session, logged in.
fn session(h: &Harness) -> Control<'_> {
    let mut c = Control::new(h);
    c.reply(b"220 ready\r\n");
    c.command(b"USER anonymous\r\n");
    c.reply(b"331 ok\r\n");
    c.command(b"PASS x\r\n");
    c.reply(b"230 in\r\n");
    c
}

#[test]
fn a_forged_syn_does_not_move_a_control_stream() {
    let h = Harness::new();
    let mut c = session(&h);
    for flags in [SYN, SYN | ACK] {
        let forged = Segment::new(CLIENT, CPORT, SERVER, 21)
            .seq(0x1234_5678)
            .flags(flags);
        h.ingress(&forged.frame());
    }
    pasv(&mut c, 40_000);
    assert_eq!(h.expectations().len(), 1, "the real PASV still counts");
    assert_eq!(h.counter(Counter::ControlSynIgnored), 2);
}

#[test]
fn forged_data_ahead_of_the_stream_does_not_move_it() {
    let h = Harness::new();
    let mut c = session(&h);
    for ahead in [6, 1000, 60_000] {
        let forged = Segment::new(CLIENT, CPORT, SERVER, 21)
            .seq(c.c2s.wrapping_add(ahead))
            .ack(c.s2c)
            .payload(b"NOOP\r\n");
        h.ingress(&forged.frame());
    }
    pasv(&mut c, 40_000);
    assert_eq!(h.expectations().len(), 1, "the real PASV still counts");
    assert_eq!(h.counter(Counter::RefusedUncorrelated), 0);
    assert_eq!(h.counter(Counter::ControlOutOfOrder), 3);
}

#[test]
fn the_local_ack_moves_the_stream_past_a_lost_segment() {
    let h = Harness::new();
    let mut c = session(&h);
    // "NOOP\r\n" is lost before ftpct; the PASV after it arrives (ahead).
    c.c2s += 6;
    c.command(b"PASV\r\n");
    // The server acknowledges both and answers both: the stream resumes at
    // its acknowledgment (the two replies answer commands ftpct never saw).
    c.reply(b"200 ok\r\n227 Entering Passive Mode (198,18,0,1,156,64).\r\n");
    assert!(h.expectations().is_empty());
    assert_eq!(h.counter(Counter::ControlOutOfOrder), 1);
    assert_eq!(h.counter(Counter::ControlGaps), 1);
    pasv(&mut c, 40_001);
    assert_eq!(h.expectations().len(), 1, "in step again");
}

#[test]
fn a_forged_syn_ack_does_not_move_a_remote_servers_stream() {
    let h = Harness::new();
    let remote = "198.18.0.9";
    let mut c = Control::to_remote(&h, remote);
    let syn_ack = |seq| {
        Segment::new(remote, 21, CLIENT, CPORT)
            .seq(seq)
            .ack(100)
            .flags(SYN | ACK)
            .frame()
    };
    h.ingress(&syn_ack(0)); // the real one: the stream starts at 1
    h.egress(
        &Segment::new(CLIENT, CPORT, remote, 21)
            .seq(100)
            .ack(1)
            .flags(ACK)
            .frame(),
    );
    h.ingress(&syn_ack(0x0777_0000)); // forged later
    let replies = h.counter(Counter::Replies);
    c.reply(b"220 remote ready\r\n");
    assert_eq!(h.counter(Counter::Replies), replies + 1, "banner parsed");
}
