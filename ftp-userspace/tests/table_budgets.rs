//! Nobody fills the tables at others' expense: a client's new control
//! connections are budgeted, a full control table is swept of stale
//! unauthenticated connections (never of sessions that logged in), an IPv6
//! site's many /64s share one expectation cap, and admitted connections
//! never push out the host's own.

mod common;

use std::{thread::sleep, time::Duration};

use common::{
    ACK, CPORT, Control, Harness, INTRUDER, SERVER, SYN, Segment, XDP_DROP, XDP_PASS, pasv,
};
use ftp_ebpf_common::counters::Counter;
use ftp_userspace::attach::AttachConfig;

fn control_count(h: &Harness) -> usize {
    h.control_states().len()
}

#[test]
fn a_clients_new_control_connections_are_budgeted() {
    let mut cfg = AttachConfig::with_defaults("lo");
    cfg.max_new_sessions_per_client = 3;
    let h = Harness::with(cfg);
    for i in 0..5 {
        Control::from(&h, INTRUDER, CPORT + i).reply(b"220 ready\r\n");
    }
    assert_eq!(control_count(&h), 3);
    assert_eq!(h.counter(Counter::ControlClientLimit), 2);
    // Another client is not affected.
    let mut c = Control::new(&h);
    c.reply(b"220 ready\r\n");
    pasv(&mut c, 40_000);
    assert_eq!(h.expectations().len(), 1);
}

#[test]
fn a_full_control_table_keeps_logged_in_sessions() {
    let mut cfg = AttachConfig::with_defaults("lo");
    cfg.max_control = 8;
    cfg.expect_timeout_secs = 1;
    let h = Harness::with(cfg);
    // A session that logs in, then idles.
    let mut session = Control::new(&h);
    session.reply(b"220 ready\r\n");
    session.command(b"USER anonymous\r\n");
    session.reply(b"331 ok\r\n");
    session.command(b"PASS x\r\n");
    session.reply(b"230 in\r\n");
    // A stranger connects and leaves (its RST ends nothing) until the table
    // is full.
    for i in 0..7 {
        Control::from(&h, INTRUDER, CPORT + i).reply(b"220 ready\r\n");
    }
    assert_eq!(control_count(&h), 8);
    Control::from(&h, INTRUDER, CPORT + 100).reply(b"220 ready\r\n");
    assert_eq!(h.counter(Counter::ControlMapFull), 1, "full of fresh ones");
    // A login lifetime later the stranger's connections are stale: the next
    // new connection sweeps them; the logged-in session stays.
    sleep(Duration::from_millis(1100));
    Control::from(&h, INTRUDER, CPORT + 101).reply(b"220 ready\r\n");
    assert_eq!(h.counter(Counter::ControlSwept), 2);
    assert_eq!(control_count(&h), 2, "the session and the new one");
    pasv(&mut session, 40_000);
    assert_eq!(h.expectations().len(), 1, "the idle session still works");
}

#[test]
fn an_ipv6_sites_64s_share_one_cap() {
    let mut cfg = AttachConfig::with_defaults("lo");
    cfg.max_expect_per_client = 3;
    cfg.max_expect_per_site = 5;
    cfg.max_expect_per_conn = 8;
    let h = Harness::with(cfg);
    let server = "2001:db8::1";
    let epsv = |client: &'static str, port: u16| {
        let mut c = Control::from(&h, client, CPORT).server(server);
        c.reply(b"220 ready\r\n");
        for p in port..port + 3 {
            c.command(b"EPSV\r\n");
            c.reply(format!("229 Entering Extended Passive Mode (|||{p}|)\r\n").as_bytes());
        }
    };
    // Three /64s of one /48: 3 + 2 fit, the rest are refused.
    epsv("2001:db8:0:1::9", 40_000);
    epsv("2001:db8:0:2::9", 40_010);
    epsv("2001:db8:0:3::9", 40_020);
    assert_eq!(h.expectations().len(), 5);
    assert_eq!(h.counter(Counter::RefusedSiteLimit), 4);
    // Another site is not affected.
    epsv("2001:db8:1:1::9", 40_030);
    assert_eq!(h.expectations().len(), 8);
}

#[test]
fn admitted_connections_never_push_out_the_hosts_own() {
    let mut cfg = AttachConfig::with_defaults("lo");
    cfg.max_flows = 4;
    cfg.max_expect_per_conn = 8;
    let h = Harness::with(cfg);
    // The host connects out from a guarded port.
    let remote = "198.18.0.9";
    h.egress(&Segment::new(SERVER, 45_000, remote, 443).flags(SYN).frame());
    let reply = || {
        h.ingress(
            &Segment::new(remote, 443, SERVER, 45_000)
                .flags(ACK)
                .payload(b"response")
                .frame(),
        )
    };
    assert_eq!(reply(), XDP_PASS);
    // A client makes many admitted connections.
    let mut c = Control::from(&h, INTRUDER, CPORT);
    c.reply(b"220 ready\r\n");
    for port in 40_000..40_020 {
        pasv(&mut c, port);
        let syn = Segment::new(INTRUDER, 50_000, SERVER, port)
            .flags(SYN)
            .frame();
        assert_eq!(h.ingress(&syn), XDP_PASS);
    }
    assert_eq!(reply(), XDP_PASS, "the host's own connection");
    let stranger = Segment::new(INTRUDER, 50_000, SERVER, 40_000)
        .flags(ACK)
        .frame();
    assert_eq!(
        h.ingress(&stranger),
        XDP_DROP,
        "its oldest admitted one went"
    );
}
