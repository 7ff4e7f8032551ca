//! `--nat-rewrite` for the host as an FTP client behind the NAT: its
//! `PORT`/`EPRT` naming the local address leaves naming the external one.
//! A command has no text to shorten, so its segment changes length, and the
//! rest of the stream moves the way `nf_nat_ftp` moves it with
//! `nf_ct_seqadj`: later segments leave with moved sequence numbers, the
//! server's acknowledgments and SACK blocks come back moved back (before
//! ftpct's own sequence tracking reads them), checksums and the IP length
//! stay right, a retransmission is rewritten identically with the same
//! offset, and several rewrites add up.

mod common;

use common::{ACK, Control, Harness, Segment, TC_ACT_OK, XDP_PASS, checksum_ok, ip_checksum_ok};
use ftp_ebpf_common::counters::Counter;

/// The remote FTP server the host is a client of.
const REMOTE: &str = "198.18.0.9";
/// The host's (CLIENT's) external address: one character longer in
/// `PORT` than its local 198.18.0.2.
const EXTERNAL: &str = "198.19.0.10";
/// The host's local IPv6 address, its external one behind NPTv6, and a
/// remote IPv6 server.
const LOCAL_V6: &str = "2001:db8::2";
const EXTERNAL_V6: &str = "2001:db8:10::2";
const REMOTE_V6: &str = "2001:db8::9";

/// Offset of the TCP header in an untagged test frame of either family.
fn tcp(frame: &[u8]) -> usize {
    if frame[14] >> 4 == 6 {
        14 + 40
    } else {
        14 + 20
    }
}

/// A greeted session of the host (CLIENT) with REMOTE.
fn session(h: &Harness) -> Control<'_> {
    let mut c = Control::to_remote(h, REMOTE);
    c.reply(b"220 ready\r\n");
    c
}

/// Sends `seg` out through egress; the frame that leaves, after checking
/// the action and both checksums.
fn send(h: &Harness, seg: &Segment) -> Vec<u8> {
    let (action, out) = h.egress_frame(&seg.frame());
    assert_eq!(action, TC_ACT_OK);
    assert!(checksum_ok(&out), "TCP checksum of {:?}", payload(&out));
    assert!(ip_checksum_ok(&out), "IP checksum");
    out
}

/// What arrives from REMOTE, through ingress: the frame as ftpct leaves it.
fn arrive(h: &Harness, seg: &Segment) -> Vec<u8> {
    let (action, out) = h.ingress_frame(&seg.frame());
    assert_eq!(action, XDP_PASS);
    assert!(checksum_ok(&out), "TCP checksum");
    out
}

fn seq(frame: &[u8]) -> u32 {
    let tcp = tcp(frame);
    u32::from_be_bytes(frame[tcp + 4..tcp + 8].try_into().unwrap())
}

fn ack(frame: &[u8]) -> u32 {
    let tcp = tcp(frame);
    u32::from_be_bytes(frame[tcp + 8..tcp + 12].try_into().unwrap())
}

/// The payload, as far as the IP header's length says.
fn payload(frame: &[u8]) -> String {
    let tcp = tcp(frame);
    let end = if tcp == 14 + 40 {
        tcp + usize::from(u16::from_be_bytes([frame[18], frame[19]]))
    } else {
        14 + usize::from(u16::from_be_bytes([frame[16], frame[17]]))
    };
    let doff = usize::from(frame[tcp + 12] >> 4) * 4;
    String::from_utf8_lossy(&frame[tcp + doff..end]).into_owned()
}

#[test]
fn a_port_naming_the_local_address_leaves_naming_the_external_one_and_the_stream_moves() {
    let h = common::external_harness(&[EXTERNAL], true);
    let mut c = session(&h);
    let port_seg = c.command_segment(b"PORT 198,18,0,2,156,64\r\n");
    let out = send(&h, &port_seg);
    assert_eq!(payload(&out), "PORT 198,19,0,10,156,64\r\n");
    assert_eq!(out.len(), port_seg.frame().len() + 1, "one byte longer");
    assert_eq!(
        seq(&out),
        port_seg.seq,
        "the rewritten segment keeps its seq"
    );
    assert_eq!(h.counter(Counter::NatRewritten), 1);
    assert_eq!(
        h.expectations().len(),
        1,
        "the server's connection is expected"
    );

    // The server acknowledges the moved stream: one byte further.
    let moved_end = c.c2s + 1;
    let reply = Segment::new(REMOTE, 21, common::CLIENT, common::CPORT)
        .seq(c.s2c)
        .ack(moved_end)
        .payload(b"200 PORT command successful.\r\n");
    c.s2c += 30;
    let back = arrive(&h, &reply);
    assert_eq!(ack(&back), c.c2s, "the acknowledgment moves back");

    // The next command leaves one byte further on.
    let type_seg = c.command_segment(b"TYPE I\r\n");
    let out = send(&h, &type_seg);
    assert_eq!(seq(&out), type_seg.seq + 1);
    assert_eq!(payload(&out), "TYPE I\r\n");

    // ftpct's own tracking saw nothing odd: no gap, nothing out of window.
    assert_eq!(h.counter(Counter::ControlGaps), 0);
    assert_eq!(h.counter(Counter::ControlOutOfWindow), 0);
}

#[test]
fn a_retransmitted_port_is_rewritten_identically_with_the_same_offset() {
    let h = common::external_harness(&[EXTERNAL], true);
    let mut c = session(&h);
    let port_seg = c.command_segment(b"PORT 198,18,0,2,156,64\r\n");
    let first = send(&h, &port_seg);
    let again = send(&h, &port_seg);
    assert_eq!(first, again);
    assert_eq!(h.counter(Counter::NatRewritten), 1);
    assert_eq!(h.counter(Counter::NatRewriteRetransmitted), 1);
    // Still one byte, not two, for what follows.
    let next = c.command_segment(b"NOOP\r\n");
    assert_eq!(seq(&send(&h, &next)), next.seq + 1);
}

#[test]
fn several_rewrites_add_up_and_sack_blocks_move_back() {
    // Mapped per local address: the first PORT grows by one byte, an EPRT
    // by one more, and acknowledgments map back across both.
    let h = common::external_harness(&[EXTERNAL], true);
    let mut c = session(&h);
    let p1 = c.command_segment(b"PORT 198,18,0,2,156,64\r\n");
    assert_eq!(payload(&send(&h, &p1)), "PORT 198,19,0,10,156,64\r\n");
    // The server's 200 (acknowledging the moved stream).
    let ok = |c: &mut Control, moved: u32| {
        let seg = Segment::new(REMOTE, 21, common::CLIENT, common::CPORT)
            .seq(c.s2c)
            .ack(c.c2s.wrapping_add(moved))
            .payload(b"200 OK\r\n");
        c.s2c += 8;
        arrive(&h, &seg)
    };
    assert_eq!(ack(&ok(&mut c, 1)), c.c2s);
    let e1 = c.command_segment(b"EPRT |1|198.18.0.2|40001|\r\n");
    let out = send(&h, &e1);
    assert_eq!(payload(&out), "EPRT |1|198.19.0.10|40001|\r\n");
    assert_eq!(seq(&out), e1.seq + 1, "moved by the first rewrite");
    assert_eq!(ack(&ok(&mut c, 2)), c.c2s, "both rewrites taken back");
    assert_eq!(h.counter(Counter::NatRewritten), 2);

    // A duplicate ACK with a SACK block for a later segment (lost one
    // before it): its edges are in the moved space too.
    let (start, end) = (c.c2s + 10, c.c2s + 20);
    let mut sack = vec![1, 1, 5, 10];
    sack.extend_from_slice(&(start + 2).to_be_bytes());
    sack.extend_from_slice(&(end + 2).to_be_bytes());
    let dup = Segment::new(REMOTE, 21, common::CLIENT, common::CPORT)
        .seq(c.s2c)
        .ack(c.c2s + 2)
        .flags(ACK)
        .options(&sack);
    let back = arrive(&h, &dup);
    assert_eq!(ack(&back), c.c2s);
    let options = tcp(&back) + 20;
    let block = &back[options + 4..options + 12];
    assert_eq!(u32::from_be_bytes(block[..4].try_into().unwrap()), start);
    assert_eq!(u32::from_be_bytes(block[4..].try_into().unwrap()), end);
}

#[test]
fn without_nat_rewrite_or_a_mapping_nothing_changes() {
    for h in [
        common::external_harness(&[EXTERNAL], false),
        common::external_harness(&[], true),
    ] {
        let mut c = session(&h);
        let port_seg = c.command_segment(b"PORT 198,18,0,2,156,64\r\n");
        let frame = port_seg.frame();
        let (_, out) = h.egress_frame(&frame);
        assert_eq!(out, frame);
        let next = c.command_segment(b"NOOP\r\n");
        assert_eq!(seq(&send(&h, &next)), next.seq);
        assert_eq!(h.counter(Counter::NatRewritten), 0);
    }
}

#[test]
fn a_port_naming_another_address_is_refused_not_rewritten() {
    // A bounce attempt stays a bounce: it is neither rewritten nor expected.
    let h = common::external_harness(&[EXTERNAL], true);
    let mut c = session(&h);
    let bounce = c.command_segment(b"PORT 198,18,0,3,156,64\r\n");
    let frame = bounce.frame();
    let (_, out) = h.egress_frame(&frame);
    assert_eq!(out, frame);
    assert_eq!(h.counter(Counter::NatRewritten), 0);
    assert_eq!(h.counter(Counter::RefusedBounce), 1);
    assert!(h.expectations().is_empty());
}

#[test]
fn a_moved_stream_stays_moved_through_the_close() {
    // The local end's FIN ends ftpct's interest in the control connection,
    // but not the moved stream: the peer's ACK of that FIN, and the local
    // end's last ACK, must still be moved, or the close never completes.
    let h = common::external_harness(&[EXTERNAL], true);
    let mut c = session(&h);
    let port_seg = c.command_segment(b"PORT 198,18,0,2,156,64\r\n");
    let rewritten = send(&h, &port_seg);
    let fin = Segment::new(common::CLIENT, common::CPORT, REMOTE, 21)
        .seq(c.c2s)
        .ack(c.s2c)
        .flags(common::FIN | ACK);
    assert_eq!(seq(&send(&h, &fin)), c.c2s + 1, "the FIN leaves moved");
    // The PORT retransmitted after the FIN is still rewritten the same
    // way, and the connection stays closed (kept only for the close).
    assert_eq!(send(&h, &port_seg), rewritten);
    assert_eq!(h.counter(Counter::NatRewriteRetransmitted), 1);
    let states = h.control_states();
    assert_eq!(states.len(), 1);
    assert!(states[0].1.nat.closed(), "{:?}", states[0].1.nat);
    let fin_ack = Segment::new(REMOTE, 21, common::CLIENT, common::CPORT)
        .seq(c.s2c)
        .ack(c.c2s + 1 + 1)
        .flags(common::FIN | ACK);
    assert_eq!(
        ack(&arrive(&h, &fin_ack)),
        c.c2s + 1,
        "its ACK comes back moved back"
    );
    let last = Segment::new(common::CLIENT, common::CPORT, REMOTE, 21)
        .seq(c.c2s + 1)
        .ack(c.s2c + 1)
        .flags(ACK);
    assert_eq!(
        seq(&send(&h, &last)),
        c.c2s + 2,
        "the last ACK leaves moved"
    );
}

#[test]
fn an_ipv6_eprt_naming_the_local_address_leaves_naming_the_external_one() {
    // NPTv6: the host's EPRT |2| names its local address; it leaves naming
    // the external one, written in full, and the stream moves by the
    // difference. An IPv4 mapping alone changes nothing on IPv6.
    let mapping = format!("{LOCAL_V6}={EXTERNAL_V6}");
    let ipv4_only = common::external_harness(&[EXTERNAL], true);
    let mut c = Control::to_remote_from(&ipv4_only, LOCAL_V6, REMOTE_V6);
    c.reply(b"220 ready\r\n");
    let frame = c.command_segment(b"EPRT |2|2001:db8::2|40000|\r\n").frame();
    assert_eq!(ipv4_only.egress_frame(&frame).1, frame);
    assert_eq!(ipv4_only.counter(Counter::NatRewritten), 0);

    let h = common::external_harness(&[&mapping], true);
    let mut c = Control::to_remote_from(&h, LOCAL_V6, REMOTE_V6);
    c.reply(b"220 ready\r\n");
    let text = b"EPRT |2|2001:db8::2|40000|\r\n";
    let eprt = c.command_segment(text);
    let out = send(&h, &eprt);
    let rewritten = "EPRT |2|2001:0db8:0010:0000:0000:0000:0000:0002|40000|\r\n";
    assert_eq!(payload(&out), rewritten);
    let delta = (rewritten.len() - text.len()) as u32;
    assert_eq!(out.len(), eprt.frame().len() + delta as usize);
    assert_eq!(seq(&out), eprt.seq, "the rewritten segment keeps its seq");
    assert_eq!(h.counter(Counter::NatRewritten), 1);
    let expected = h.expectations();
    assert_eq!(expected.len(), 1, "the server's connection is expected");
    assert_eq!(
        expected[0].0,
        common::expect_key(REMOTE_V6, LOCAL_V6, 40_000)
    );

    // The server acknowledges the moved stream; the ACK comes back moved
    // back, and the next command leaves moved on.
    let ok = b"200 EPRT command successful.\r\n";
    let reply = Segment::new(REMOTE_V6, 21, LOCAL_V6, common::CPORT)
        .seq(c.s2c)
        .ack(c.c2s + delta)
        .payload(ok);
    c.s2c += ok.len() as u32;
    assert_eq!(ack(&arrive(&h, &reply)), c.c2s);
    let next = c.command_segment(b"NOOP\r\n");
    assert_eq!(seq(&send(&h, &next)), next.seq + delta);
    assert_eq!(h.counter(Counter::ControlGaps), 0);
    assert_eq!(h.counter(Counter::ControlOutOfWindow), 0);
}

#[test]
fn a_command_in_a_gso_super_segment_is_left_alone_and_counted() {
    // GSO would cut a resized super-segment where TCP cut the original:
    // the command leaves as it is, and the stream does not move.
    let h = common::external_harness(&[EXTERNAL], true);
    let mut c = session(&h);
    let frame = c.command_segment(b"PORT 198,18,0,2,156,64\r\n").frame();
    let (action, out) = h.egress_frame_gso(&frame, 2);
    assert_eq!(action, TC_ACT_OK);
    assert_eq!(out, frame);
    assert_eq!(h.counter(Counter::NatRewriteUnfit), 1);
    assert_eq!(h.counter(Counter::NatRewritten), 0);
    let next = c.command_segment(b"NOOP\r\n");
    assert_eq!(seq(&send(&h, &next)), next.seq, "the stream did not move");
    // The same command outside GSO is rewritten: the count above is GSO's.
    let h = common::external_harness(&[EXTERNAL], true);
    let mut c = session(&h);
    let port = c.command_segment(b"PORT 198,18,0,2,156,64\r\n");
    assert_eq!(payload(&send(&h, &port)), "PORT 198,19,0,10,156,64\r\n");
    assert_eq!(h.counter(Counter::NatRewriteUnfit), 0);
}
