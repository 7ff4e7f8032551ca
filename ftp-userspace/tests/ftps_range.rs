//! `--ftps-range`: ftpct cannot read an encrypted control connection, so
//! its client, and nobody else, may connect to the FTPS passive range while
//! that control connection lives: from the server's `234` to `AUTH TLS`, or
//! from the first byte on the implicit-FTPS port 990, until the local end
//! closes it. A plain session, a refused `AUTH TLS`, the host's own FTPS
//! client connections and attachments without a range open nothing.

mod common;

use common::{
    ACK, CLIENT, CPORT, Control, FIN, Harness, INTRUDER, SERVER, SYN, Segment, XDP_DROP, XDP_PASS,
};
use ftp_ebpf_common::counters::Counter;
use ftp_userspace::{attach::AttachConfig, portspec::PortRange};

/// The FTPS passive range of these tests.
const RANGE: PortRange = PortRange {
    lo: 40_000,
    hi: 40_099,
};

/// A port in the range, and a guarded one outside it.
const IN_RANGE: u16 = 40_050;
const OUTSIDE: u16 = 41_000;

/// The programs with `--ftps-range 40000-40099 --control-ports 21,990`
/// (or no range).
fn harness(range: Option<PortRange>) -> Harness {
    let mut cfg = AttachConfig::with_defaults("lo");
    cfg.control_ports = vec![21, 990];
    cfg.ftps_range = range;
    Harness::with(cfg.validated().expect("valid configuration"))
}

/// A SYN from `src` to the server's `port`: the XDP action.
fn syn(h: &Harness, src: &str, port: u16) -> u32 {
    h.ingress(&Segment::new(src, 50_100, SERVER, port).flags(SYN).frame())
}

/// A logged-in session of CLIENT that switched to TLS.
fn encrypted_session(h: &Harness) -> Control<'_> {
    let mut c = Control::new(h);
    c.reply(b"220 ready\r\n");
    c.command(b"AUTH TLS\r\n");
    c.reply(b"234 Proceed with negotiation.\r\n");
    c
}

#[test]
fn the_client_of_an_encrypted_control_connection_may_use_the_range_and_nobody_else() {
    let h = harness(Some(RANGE));
    let _c = encrypted_session(&h);
    assert_eq!(h.counter(Counter::ControlTls), 1);
    assert_eq!(syn(&h, CLIENT, IN_RANGE), XDP_PASS);
    assert_eq!(h.counter(Counter::SynAdmittedFtpsRange), 1);
    assert_eq!(syn(&h, INTRUDER, IN_RANGE), XDP_DROP, "another host");
    assert_eq!(syn(&h, CLIENT, OUTSIDE), XDP_DROP, "outside the range");
    assert_eq!(h.counter(Counter::SynAdmittedFtpsRange), 1);
    assert_eq!(h.counter(Counter::SynDropped), 2);
    // The admitted connection is a tracked flow like any other.
    let ack = Segment::new(CLIENT, 50_100, SERVER, IN_RANGE)
        .seq(1001)
        .flags(ACK);
    assert_eq!(h.ingress(&ack.frame()), XDP_PASS);
    assert_eq!(h.counter(Counter::FlowPackets), 1);
}

#[test]
fn the_range_closes_with_the_control_connection() {
    let h = harness(Some(RANGE));
    let c = encrypted_session(&h);
    assert_eq!(syn(&h, CLIENT, IN_RANGE), XDP_PASS);
    // The server closes the control connection (QUIT, or its timeout).
    let fin = Segment::new(SERVER, 21, CLIENT, CPORT)
        .seq(c.s2c)
        .ack(c.c2s)
        .flags(FIN | ACK);
    h.egress(&fin.frame());
    assert!(h.control_states().is_empty());
    assert_eq!(syn(&h, CLIENT, IN_RANGE + 1), XDP_DROP);
    assert_eq!(h.counter(Counter::SynAdmittedFtpsRange), 1);
}

#[test]
fn plain_sessions_refused_tls_and_no_range_open_nothing() {
    // A plain session, and one whose AUTH TLS the server refused.
    let h = harness(Some(RANGE));
    let mut plain = Control::new(&h);
    plain.reply(b"220 ready\r\n");
    plain.command(b"USER anonymous\r\n");
    plain.reply(b"331 Please specify the password.\r\n");
    let mut refused = Control::from(&h, CLIENT, CPORT + 1);
    refused.reply(b"220 ready\r\n");
    refused.command(b"AUTH TLS\r\n");
    refused.reply(b"534 Policy requires SSL.\r\n");
    assert_eq!(syn(&h, CLIENT, IN_RANGE), XDP_DROP);
    assert_eq!(h.counter(Counter::ControlTls), 0);

    // Encrypted, without a range: nothing either.
    let h = harness(None);
    let _c = encrypted_session(&h);
    assert_eq!(h.counter(Counter::ControlTls), 1);
    assert_eq!(syn(&h, CLIENT, IN_RANGE), XDP_DROP);

    // The host as an FTPS client of a remote server: the range is for the
    // local servers' clients, not for the remote server.
    let h = harness(Some(RANGE));
    let mut out = Control::to_remote(&h, INTRUDER);
    out.reply(b"220 ready\r\n");
    out.command(b"AUTH TLS\r\n");
    out.reply(b"234 Proceed with negotiation.\r\n");
    assert_eq!(h.counter(Counter::ControlTls), 1);
    let from_remote = Segment::new(INTRUDER, 50_100, CLIENT, IN_RANGE).flags(SYN);
    assert_eq!(h.ingress(&from_remote.frame()), XDP_DROP);
    assert_eq!(h.counter(Counter::SynAdmittedFtpsRange), 0);
}

#[test]
fn implicit_ftps_on_port_990_is_encrypted_from_the_first_byte() {
    let h = harness(Some(RANGE));
    // The server's first bytes on 990: a TLS ServerHello, not a banner.
    let hello = Segment::new(SERVER, 990, CLIENT, CPORT)
        .seq(1)
        .ack(100)
        .payload(&[0x16, 0x03, 0x03, 0x00, 0x7a, 0x02, 0x00, 0x00]);
    h.egress(&hello.frame());
    assert_eq!(h.counter(Counter::ControlTls), 1);
    assert_eq!(h.counter(Counter::ControlPayloads), 0, "never parsed");
    assert_eq!(syn(&h, CLIENT, IN_RANGE), XDP_PASS);
    assert_eq!(syn(&h, INTRUDER, IN_RANGE), XDP_DROP);
    assert_eq!(h.counter(Counter::SynAdmittedFtpsRange), 1);
}

#[test]
fn a_range_outside_the_guarded_ports_is_refused() {
    for (lo, hi) in [(1000, 1100), (21, 21), (65_000, 65_535)] {
        let mut cfg = AttachConfig::with_defaults("lo");
        cfg.data_ports = PortRange {
            lo: 1024,
            hi: 65_000,
        };
        cfg.ftps_range = Some(PortRange { lo, hi });
        let err = cfg.validated().expect_err("refused");
        let text = format!("{err:#}");
        assert!(
            text.contains("--ftps-range") && text.contains("not a guarded"),
            "{text}"
        );
    }
}
