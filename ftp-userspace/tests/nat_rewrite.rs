//! `--nat-rewrite`: a local server's `227` naming its local address leaves
//! naming the external one, replaced whole by a reply of the same length,
//! with a correct TCP checksum; every later copy of its bytes (a
//! retransmission, whole, coalesced or partial) is rewritten identically.
//! A reply that began in an earlier segment, or that cannot name the
//! external address in its own length, is left as it is and counted. What
//! is admitted does not change: the expectation is for the local address.

mod common;

use common::{
    CLIENT, Control, Harness, INTRUDER, SERVER, SYN, Segment, XDP_DROP, XDP_PASS, checksum_ok,
    expect_key,
};
use ftp_ebpf_common::{
    counters::Counter,
    nat::{REWRITE_MAX, render::Rendering},
};

/// The public address of the NAT in front of the host.
const EXTERNAL: &str = "198.19.0.10";
const EXTERNAL_OCTETS: [u8; 4] = [198, 19, 0, 10];
/// Offset of the TCP payload in an untagged IPv4 test frame.
const PAYLOAD: usize = 14 + 20 + 20;

/// vsftpd's reply announcing port 40000 on the local address.
const REPLY: &[u8] = b"227 Entering Passive Mode (198,18,0,1,156,64).\r\n";

fn harness(rewrite: bool) -> Harness {
    common::external_harness(&[EXTERNAL], rewrite)
}

/// `text` rewritten: the same length, naming the external address and `port`.
fn rewritten(text: &[u8], port: u16) -> Vec<u8> {
    let mut out = [0u8; REWRITE_MAX];
    let reply = Rendering::reply_227(text.len(), EXTERNAL_OCTETS, port).expect("fits");
    assert!(reply.write(&mut out));
    out[..text.len()].to_vec()
}

/// Sends `seg` out through egress; the payload that leaves, after checking
/// the action, the length and the checksum.
fn send(h: &Harness, seg: &Segment) -> Vec<u8> {
    let frame = seg.frame();
    let (action, out) = h.egress_frame(&frame);
    assert_eq!(action, common::TC_ACT_OK);
    assert_eq!(out.len(), frame.len(), "the frame keeps its length");
    assert!(checksum_ok(&out), "the TCP checksum is right");
    out[PAYLOAD..].to_vec()
}

/// A greeted control connection with a PASV outstanding.
fn session(h: &Harness) -> Control<'_> {
    let mut c = Control::new(h);
    c.reply(b"220 ready\r\n");
    c.command(b"PASV\r\n");
    c
}

#[test]
fn a_227_naming_the_local_address_leaves_naming_the_external_one() {
    let h = harness(true);
    let mut c = session(&h);
    let out = send(&h, &c.reply_segment(REPLY));
    assert_eq!(
        String::from_utf8_lossy(&out),
        "227 Entering Passive Mode (198,19,0,10,156,64)\r\n"
    );
    assert_eq!(h.counter(Counter::NatRewritten), 1);
    assert_eq!(h.counter(Counter::NatRewriteRetransmitted), 0);
    // The translated SYN arrives at the local address: that is what opens.
    let entries = h.expectations();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].0, expect_key(CLIENT, SERVER, 40_000));
    let syn = |src| h.ingress(&Segment::new(src, 45_000, SERVER, 40_000).flags(SYN).frame());
    assert_eq!(syn(INTRUDER), XDP_DROP);
    assert_eq!(syn(CLIENT), XDP_PASS);
}

#[test]
fn without_nat_rewrite_the_reply_leaves_as_it_is() {
    let h = harness(false);
    let mut c = session(&h);
    assert_eq!(send(&h, &c.reply_segment(REPLY)), REPLY);
    assert_eq!(h.counter(Counter::NatRewritten), 0);
    assert_eq!(h.expectations().len(), 1);
}

#[test]
fn every_retransmission_is_rewritten_identically() {
    let h = harness(true);
    let mut c = session(&h);
    let seg = c.reply_segment(REPLY);
    let want = rewritten(REPLY, 40_000);
    assert_eq!(send(&h, &seg), want);
    // The same segment again, as TCP retransmits it from its own copy.
    assert_eq!(send(&h, &seg), want);
    // Coalesced with what followed it.
    let mut more = REPLY.to_vec();
    more.extend_from_slice(b"150 Here comes the directory listing.\r\n");
    let out = send(&h, &seg.clone().payload(&more));
    assert_eq!(&out[..REPLY.len()], &want[..]);
    assert_eq!(&out[REPLY.len()..], &more[REPLY.len()..]);
    // Cut at every point, at odd and even offsets: each part gets its bytes.
    for cut in [1, 7, 20, 31, REPLY.len() - 1] {
        let head = send(&h, &seg.clone().payload(&REPLY[..cut]));
        assert_eq!(head, want[..cut], "head up to {cut}");
        let tail = seg.clone().seq(seg.seq + cut as u32).payload(&REPLY[cut..]);
        assert_eq!(send(&h, &tail), want[cut..], "tail from {cut}");
    }
    assert_eq!(h.counter(Counter::NatRewritten), 1);
    assert!(h.counter(Counter::NatRewriteRetransmitted) >= 12);
    assert_eq!(
        h.expectations().len(),
        1,
        "a retransmission creates nothing"
    );
}

#[test]
fn a_reply_after_other_lines_in_one_segment_is_rewritten_where_it_lies() {
    // Pipelined commands answered in one segment (or a GSO segment with
    // several replies): the 227 starts at an odd or even offset.
    for first in [
        &b"200 Switching to Binary mode.\r\n"[..],
        b"200 Binary.\r\n",
    ] {
        let h = harness(true);
        let mut c = Control::new(&h);
        c.reply(b"220 ready\r\n");
        c.command(b"TYPE I\r\n");
        c.command(b"PASV\r\n");
        let mut payload = first.to_vec();
        payload.extend_from_slice(REPLY);
        let out = send(&h, &c.reply_segment(&payload));
        assert_eq!(&out[..first.len()], first);
        assert_eq!(&out[first.len()..], &rewritten(REPLY, 40_000)[..]);
        assert_eq!(h.counter(Counter::NatRewritten), 1);
    }
}

#[test]
fn a_multi_line_227_is_replaced_whole_by_one_line() {
    let h = harness(true);
    let mut c = session(&h);
    let reply = b"227-Entering Passive Mode\r\n227 (198,18,0,1,156,64)\r\n";
    let out = send(&h, &c.reply_segment(reply));
    assert_eq!(out, rewritten(reply, 40_000));
    assert!(String::from_utf8_lossy(&out).starts_with("227 Entering Passive Mode"));
    assert_eq!(h.counter(Counter::NatRewritten), 1);
}

#[test]
fn a_reply_split_across_segments_is_left_alone_and_counted() {
    let h = harness(true);
    let mut c = session(&h);
    let (a, b) = REPLY.split_at(20);
    assert_eq!(send(&h, &c.reply_segment(a)), a);
    assert_eq!(send(&h, &c.reply_segment(b)), b);
    assert_eq!(h.counter(Counter::NatRewriteSplit), 1);
    assert_eq!(h.counter(Counter::NatRewritten), 0);
    assert_eq!(h.expectations().len(), 1, "the 227 itself was fine");
}

#[test]
fn a_reply_too_short_for_the_external_address_is_left_alone_and_counted() {
    let h = harness(true);
    let mut c = session(&h);
    // 24 bytes; naming 198.19.0.10 takes at least 26.
    let terse = b"227 =198,18,0,1,156,64\r\n";
    assert_eq!(send(&h, &c.reply_segment(terse)), terse);
    assert_eq!(h.counter(Counter::NatRewriteUnfit), 1);
    assert_eq!(h.counter(Counter::NatRewritten), 0);
}

#[test]
fn a_227_already_naming_the_external_address_is_not_rewritten() {
    let h = harness(true);
    let mut c = session(&h);
    let reply = b"227 Entering Passive Mode (198,19,0,10,156,64).\r\n";
    assert_eq!(send(&h, &c.reply_segment(reply)), reply);
    assert_eq!(h.counter(Counter::NatRewritten), 0);
    assert_eq!(h.counter(Counter::AnnouncedViaExternal), 1);
    assert_eq!(h.expectations().len(), 1);
}

#[test]
fn refused_and_uncorrelated_227s_are_not_rewritten() {
    let h = harness(true);
    // No PASV outstanding: uncorrelated.
    let mut c = Control::new(&h);
    c.reply(b"220 ready\r\n");
    assert_eq!(send(&h, &c.reply_segment(REPLY)), REPLY);
    // A low port.
    c.command(b"PASV\r\n");
    let low = b"227 Entering Passive Mode (198,18,0,1,0,21).\r\n";
    assert_eq!(send(&h, &c.reply_segment(low)), low);
    assert_eq!(h.counter(Counter::NatRewritten), 0);
    assert!(h.expectations().is_empty());
}
