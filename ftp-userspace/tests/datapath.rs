//! The compiled programs, loaded into this kernel (so the verifier accepts
//! them) and driven with `BPF_PROG_TEST_RUN` on crafted frames: control
//! sequences in both directions, split and retransmitted lines, and the
//! admission decisions that follow. Needs root.

mod common;

use common::{
    ACK, CLIENT, CPORT, Control, Harness, INTRUDER, RST, SERVER, SYN, Segment, XDP_DROP, XDP_PASS,
    expect_key, pasv,
};
use ftp_ebpf_common::{counters::Counter, flow::expect_kind};

#[test]
fn verifier_accepts_both_programs() {
    // Loading is verification; Harness::new panics with the verifier's words.
    let h = Harness::new();
    assert_eq!(h.counter(Counter::IngressPackets), 0);
}

#[test]
fn split_pasv_reply_creates_one_shot_expectation() {
    let h = Harness::new();
    let mut c = Control::new(&h);
    // Banner from the local server creates the control state.
    c.reply(b"220 ready\r\n");
    c.command(b"USER anonymous\r\nPASS x\r\n");
    c.reply(b"331 ok\r\n230 in\r\n");
    c.command(b"PASV\r\n");
    // 227 split in the middle of a number; the first part retransmitted.
    let first = b"227 Entering Passive Mode (198,18,0,1,15";
    let at = c.s2c;
    c.reply(first);
    h.egress(
        &Segment::new(SERVER, 21, CLIENT, CPORT)
            .seq(at)
            .payload(first)
            .frame(),
    );
    assert!(
        h.expectations().is_empty(),
        "no expectation before the line ends"
    );
    c.reply(b"6,64).\r\n");
    let port = 156 * 256 + 64;
    let entries = h.expectations();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].0, expect_key(CLIENT, SERVER, port));
    assert_eq!(entries[0].1.kind, expect_kind::PASV);
    assert_eq!(h.counter(Counter::ControlRetransmits), 1);

    let syn = |src: &str, sport| Segment::new(src, sport, SERVER, port).flags(SYN).frame();
    assert_eq!(h.ingress(&syn(INTRUDER, 40_000)), XDP_DROP, "other client");
    assert_eq!(
        h.ingress(&syn(CLIENT, 40_001)),
        XDP_PASS,
        "announced client"
    );
    assert_eq!(
        h.ingress(&syn(CLIENT, 40_001)),
        XDP_PASS,
        "its retransmitted SYN"
    );
    assert_eq!(
        h.ingress(&syn(CLIENT, 40_002)),
        XDP_DROP,
        "consumed: one-shot"
    );
    let data = Segment::new(CLIENT, 40_001, SERVER, port)
        .flags(ACK)
        .frame();
    assert_eq!(h.ingress(&data), XDP_PASS, "tracked flow");
    assert!(h.expectations().is_empty());
    assert_eq!(h.counter(Counter::SynAdmitted), 1);
}

#[test]
fn pipelined_commands_correlate_in_order() {
    let h = Harness::new();
    let mut c = Control::new(&h);
    c.reply(b"220 ready\r\n");
    c.command(b"TYPE I\r\nEPSV\r\n");
    // The 200 answers TYPE; the 229 answers EPSV.
    c.reply(b"200 Switching to Binary mode.\r\n229 Entering Extended Passive Mode (|||40123|)\r\n");
    let entries = h.expectations();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].0, expect_key(CLIENT, SERVER, 40_123));
    assert_eq!(entries[0].1.kind, expect_kind::EPSV);
}

#[test]
fn reply_without_request_or_with_foreign_address_creates_nothing() {
    let h = Harness::new();
    let mut c = Control::new(&h);
    c.reply(b"220 ready\r\n");
    // No PASV was sent.
    c.reply(b"227 Entering Passive Mode (198,18,0,1,156,64).\r\n");
    assert_eq!(h.counter(Counter::RefusedUncorrelated), 1);
    // PASV sent, but the reply names another host.
    c.command(b"PASV\r\n");
    c.reply(b"227 Entering Passive Mode (198,18,0,9,156,64).\r\n");
    assert_eq!(h.counter(Counter::RefusedAddressMismatch), 1);
    // A reply that merely starts with 227 never drops control traffic.
    assert_eq!(c.command(b"PASV\r\n"), XDP_PASS);
    c.reply(b"227 Logout.\r\n");
    assert_eq!(c.command(b"NOOP\r\n"), XDP_PASS);
    assert_eq!(h.counter(Counter::RefusedNoAddress), 1);
    assert!(h.expectations().is_empty());
}

#[test]
fn forged_reply_from_outside_creates_nothing() {
    let h = Harness::new();
    // A "server" the host never talked to sends a 227 to a guarded local port.
    let forged = Segment::new(INTRUDER, 21, SERVER, 45_000)
        .payload(b"227 Entering Passive Mode (198,18,0,3,156,64).\r\n")
        .frame();
    assert_eq!(
        h.ingress(&forged),
        XDP_DROP,
        "untracked packet to a guarded port"
    );
    assert!(h.expectations().is_empty());
    assert_eq!(h.counter(Counter::UntrackedDropped), 1);
}

#[test]
fn local_client_port_is_expected_at_once_and_withdrawn_on_refusal() {
    let h = Harness::new();
    let remote = "198.18.0.9";
    let mut c = Control::to_remote(&h, remote);
    assert_eq!(
        c.reply(b"220 hi\r\n"),
        XDP_PASS,
        "reply to our own connection"
    );
    // PORT leaves through egress: genuine, and servers such as pyftpdlib
    // connect before they answer 200, so the expectation exists at once.
    c.command(b"PORT 198,18,0,2,156,64\r\n");
    let entries = h.expectations();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].0, expect_key(remote, CLIENT, 40_000));
    assert_eq!(entries[0].1.kind, expect_kind::PORT);
    let syn = Segment::new(remote, 20, CLIENT, 40_000).flags(SYN).frame();
    assert_eq!(h.ingress(&syn), XDP_PASS);
    c.reply(b"200 PORT command successful.\r\n");
    assert!(
        h.expectations().is_empty(),
        "consumed; the 200 adds nothing"
    );
    // A PORT the server refuses is withdrawn.
    c.command(b"PORT 198,18,0,2,156,65\r\n");
    assert_eq!(h.expectations().len(), 1);
    c.reply(b"500 Illegal PORT command.\r\n");
    assert!(h.expectations().is_empty());
    assert_eq!(h.counter(Counter::ExpectWithdrawn), 1);
    // Bounce: PORT naming another host.
    c.command(b"PORT 198,18,0,3,156,66\r\n");
    c.reply(b"200 ok\r\n");
    assert_eq!(h.counter(Counter::RefusedBounce), 1);
    assert!(h.expectations().is_empty());
}

#[test]
fn ipv6_epsv_behind_two_vlan_tags() {
    let h = Harness::new();
    let (srv, cli) = ("2001:db8::1", "2001:db8::2");
    let tags = [100, 200];
    // The server's segments acknowledge the client's bytes (from 100 on).
    let out = |p: &[u8], seq, ack| {
        Segment::new(srv, 21, cli, CPORT)
            .seq(seq)
            .ack(ack)
            .payload(p)
            .vlans(&tags)
            .frame()
    };
    let inc = |p: &[u8], seq| {
        Segment::new(cli, CPORT, srv, 21)
            .seq(seq)
            .payload(p)
            .vlans(&tags)
            .frame()
    };
    h.egress(&out(b"220-Welcome\r\n220 ready\r\n", 1, 100));
    h.ingress(&inc(b"epsv\r\n", 100));
    h.egress(&out(
        b"229 Entering Extended Passive Mode (!!!40124!)\r\n",
        25,
        106,
    ));
    let entries = h.expectations();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].0, expect_key(cli, srv, 40_124));
    let syn = Segment::new(cli, 40_500, srv, 40_124)
        .flags(SYN)
        .vlans(&tags)
        .frame();
    assert_eq!(h.ingress(&syn), XDP_PASS);
}

#[test]
fn only_the_local_ends_rst_forgets_a_control_connection() {
    let h = Harness::new();
    let mut c = Control::new(&h);
    c.reply(b"220 ready\r\n");
    // An RST from outside may be forged with any sequence number: ignored.
    let forged = Segment::new(CLIENT, CPORT, SERVER, 21)
        .seq(7)
        .flags(RST | ACK);
    h.ingress(&forged.frame());
    c.command(b"PASV\r\n");
    c.reply(b"227 Entering Passive Mode (198,18,0,1,156,64).\r\n");
    assert_eq!(h.expectations().len(), 1, "the session still correlates");
    // The local server's own RST ends it.
    h.egress(
        &Segment::new(SERVER, 21, CLIENT, CPORT)
            .seq(c.s2c)
            .flags(RST | ACK)
            .frame(),
    );
    c.command(b"PASV\r\n");
    c.reply(b"227 Entering Passive Mode (198,18,0,1,156,65).\r\n");
    // That 227 recreated the state (local server payload), but answers no
    // PASV seen on it; the first one went with the session the RST ended.
    assert!(h.expectations().is_empty());
    assert_eq!(h.counter(Counter::ExpectDroppedControlClosed), 1);
    assert_eq!(h.counter(Counter::RefusedUncorrelated), 1);
}

#[test]
fn forged_out_of_window_command_is_ignored() {
    let h = Harness::new();
    let mut c = Control::new(&h);
    c.reply(b"220 ready\r\n");
    let forged = Segment::new(CLIENT, CPORT, SERVER, 21)
        .seq(c.c2s.wrapping_add(1_000_000))
        .payload(b"NOOP\r\n");
    h.ingress(&forged.frame());
    assert_eq!(h.counter(Counter::ControlOutOfWindow), 1);
    c.command(b"PASV\r\n");
    c.reply(b"227 Entering Passive Mode (198,18,0,1,156,64).\r\n");
    assert_eq!(h.expectations().len(), 1, "stream and queue intact");
}

#[test]
fn open_ports_and_non_tcp_pass() {
    let h = Harness::new();
    let ssh = Segment::new(INTRUDER, 40_000, SERVER, 22)
        .flags(SYN)
        .frame();
    assert_eq!(h.ingress(&ssh), XDP_PASS);
    let arp = [
        vec![0xff; 6],
        vec![2, 0, 0, 0, 0, 3],
        vec![0x08, 0x06],
        vec![0; 28],
    ]
    .concat();
    assert_eq!(h.ingress(&arp), XDP_PASS);
    let truncated = &Segment::new(INTRUDER, 1, SERVER, 40_000).flags(SYN).frame()[..40];
    assert_eq!(
        h.ingress(truncated),
        XDP_PASS,
        "the kernel drops truncated frames itself"
    );
    let three_tags = Segment::new(INTRUDER, 1, SERVER, 40_000)
        .flags(SYN)
        .vlans(&[1, 2, 3])
        .frame();
    assert_eq!(
        h.ingress(&three_tags),
        XDP_DROP,
        "cannot be classified: dropped"
    );
}

#[test]
fn auth_tls_accepted_stops_parsing() {
    let h = Harness::new();
    let mut c = Control::new(&h);
    c.reply(b"220 ready\r\n");
    c.command(b"AUTH TLS\r\n");
    c.reply(b"234 Proceed with negotiation.\r\n");
    assert_eq!(h.counter(Counter::ControlTls), 1);
    // From here on the bytes are TLS records; plaintext that looks like FTP
    // must not be believed.
    c.command(b"PASV\r\n");
    c.reply(b"227 Entering Passive Mode (198,18,0,1,156,64).\r\n");
    assert!(h.expectations().is_empty());
    assert_eq!(h.counter(Counter::Commands), 1, "only AUTH was parsed");
}

#[test]
fn auth_tls_refused_keeps_parsing() {
    let h = Harness::new();
    let mut c = Control::new(&h);
    c.reply(b"220 ready\r\n");
    c.command(b"AUTH TLS\r\n");
    c.reply(b"530 Please login with USER and PASS.\r\n");
    c.command(b"PASV\r\n");
    c.reply(b"227 Entering Passive Mode (198,18,0,1,156,64).\r\n");
    assert_eq!(h.counter(Counter::ControlTls), 0);
    assert_eq!(h.expectations().len(), 1);
}

#[test]
fn reply_split_in_three_with_overlapping_retransmission() {
    let h = Harness::new();
    let mut c = Control::new(&h);
    c.reply(b"220 ready\r\n");
    c.command(b"EPSV\r\n");
    let start = c.s2c;
    c.reply(b"229 Entering Exte");
    c.reply(b"nded Passive Mode (|||4");
    // A retransmission covering old and new bytes at once.
    let whole = b"229 Entering Extended Passive Mode (|||40125|)\r\n";
    h.egress(
        &Segment::new(SERVER, 21, CLIENT, CPORT)
            .seq(start)
            .payload(whole)
            .frame(),
    );
    let entries = h.expectations();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].0, expect_key(CLIENT, SERVER, 40_125));
}

#[test]
fn a_connection_holds_at_most_its_cap_and_replaces_its_oldest() {
    let h = Harness::new(); // default cap: 4 per control connection
    let mut c = Control::new(&h);
    c.reply(b"220 ready\r\n");
    for port in 40_000..40_006 {
        pasv(&mut c, port);
    }
    let mut ports: Vec<u16> = h.expectations().iter().map(|(k, _)| k.dport).collect();
    ports.sort();
    assert_eq!(ports, vec![40_002, 40_003, 40_004, 40_005]);
    assert_eq!(h.counter(Counter::ExpectReplaced), 2);
    // Another connection's expectations are its own business.
    let mut other = Control::from(&h, CLIENT, CPORT + 1);
    other.reply(b"220 ready\r\n");
    pasv(&mut other, 41_000);
    assert_eq!(h.expectations().len(), 5);
}

#[test]
fn a_client_address_holds_at_most_its_cap() {
    let mut cfg = ftp_userspace::attach::AttachConfig::with_defaults("lo");
    cfg.max_expect_per_client = 3;
    let h = Harness::with(cfg);
    // One client, several control connections, one PASV each.
    for (i, port) in (40_000..40_004).enumerate() {
        let mut c = Control::from(&h, CLIENT, CPORT + i as u16);
        c.reply(b"220 ready\r\n");
        pasv(&mut c, port);
    }
    assert_eq!(h.expectations().len(), 3);
    assert_eq!(h.counter(Counter::RefusedClientLimit), 1);
    // Another client is not affected.
    let mut other = Control::from(&h, INTRUDER, CPORT);
    other.reply(b"220 ready\r\n");
    pasv(&mut other, 41_000);
    assert_eq!(h.expectations().len(), 4);
    // Using an expectation gives the client its slot back.
    let syn = Segment::new(CLIENT, 45_000, SERVER, 40_000)
        .flags(SYN)
        .frame();
    assert_eq!(h.ingress(&syn), XDP_PASS);
    let mut c = Control::from(&h, CLIENT, CPORT + 10);
    c.reply(b"220 ready\r\n");
    pasv(&mut c, 40_010);
    assert_eq!(h.counter(Counter::RefusedClientLimit), 1, "slot was freed");
}

#[test]
fn full_table_of_expired_expectations_is_swept() {
    let mut cfg = ftp_userspace::attach::AttachConfig::with_defaults("lo");
    cfg.max_expectations = 4;
    cfg.expect_timeout_secs = 1;
    cfg.max_expect_per_conn = 8;
    let h = Harness::with(cfg);
    let mut c = Control::new(&h);
    c.reply(b"220 ready\r\n");
    for port in 40_000..40_004 {
        pasv(&mut c, port);
    }
    assert_eq!(h.expectations().len(), 4);
    pasv(&mut c, 40_004);
    assert_eq!(
        h.counter(Counter::RefusedExpectFull),
        1,
        "full of live entries"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    pasv(&mut c, 40_005);
    assert_eq!(h.counter(Counter::ExpectSwept), 2);
    let entries = h.expectations();
    assert_eq!(entries.len(), 1, "only the fresh one is left: {entries:?}");
    assert_eq!(entries[0].0, expect_key(CLIENT, SERVER, 40_005));
}

#[test]
fn strict_guards_every_port_but_control_and_allowed() {
    let mut cfg = ftp_userspace::attach::AttachConfig::with_defaults("lo");
    cfg.strict = true;
    cfg.allow_ports = ftp_userspace::portspec::parse_list("22").expect("list");
    let h = Harness::with(cfg);
    let syn = |port| {
        Segment::new(INTRUDER, 40_000, SERVER, port)
            .flags(SYN)
            .frame()
    };
    assert_eq!(h.ingress(&syn(80)), XDP_DROP, "low port, not allowed");
    assert_eq!(h.ingress(&syn(22)), XDP_PASS, "allowed");
    assert_eq!(h.ingress(&syn(21)), XDP_PASS, "control port");
    // The host's own connections to low ports still get their replies.
    h.egress(
        &Segment::new(SERVER, 80, "198.18.0.9", 443)
            .flags(SYN)
            .frame(),
    );
    let reply = Segment::new("198.18.0.9", 443, SERVER, 80)
        .flags(SYN | ACK)
        .frame();
    assert_eq!(h.ingress(&reply), XDP_PASS);
}

#[test]
fn forged_rst_does_not_end_a_live_flow() {
    let mut cfg = ftp_userspace::attach::AttachConfig::with_defaults("lo");
    cfg.flow_timeout_secs = 60;
    let h = Harness::with(cfg);
    let mut c = Control::new(&h);
    c.reply(b"220 ready\r\n");
    pasv(&mut c, 40_000);
    let seg = |flags, seq, payload: &[u8]| {
        Segment::new(CLIENT, 45_000, SERVER, 40_000)
            .flags(flags)
            .seq(seq)
            .payload(payload)
            .frame()
    };
    assert_eq!(h.ingress(&seg(SYN, 1000, b"")), XDP_PASS);
    // The server accepts and acknowledges the client's first bytes.
    h.egress(
        &Segment::new(SERVER, 40_000, CLIENT, 45_000)
            .flags(ACK)
            .seq(7001)
            .ack(1001)
            .frame(),
    );
    // A forged RST far from that sequence number passes to the kernel
    // (which ignores it) and changes nothing...
    assert_eq!(h.ingress(&seg(RST, 900_000_000, b"")), XDP_PASS);
    // ...and the connection's data keeps flowing.
    assert_eq!(h.ingress(&seg(ACK, 1001, b"upload bytes")), XDP_PASS);
    let flows = h.flows();
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].1.state, ftp_ebpf_common::flow::flow_state::OPEN);
    assert_eq!(h.counter(Counter::FlowResetRemote), 0);
}
