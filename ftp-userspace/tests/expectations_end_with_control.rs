//! An announcement belongs to its session: when the local end closes the
//! control connection (FIN or RST), the expectations it announced that
//! nobody used are dropped with it, and a SYN to one of those ports is
//! dropped. A remote FIN or RST (which anyone can forge) changes nothing.

mod common;

use common::{
    ACK, CLIENT, CPORT, Control, FIN, Harness, RST, SERVER, SYN, Segment, XDP_DROP, XDP_PASS, pasv,
};
use ftp_ebpf_common::counters::Counter;

/// The client's SYN to `port` on the server.
fn client_syn(h: &Harness, port: u16) -> u32 {
    h.ingress(
        &Segment::new(CLIENT, 50_100, SERVER, port)
            .flags(SYN)
            .frame(),
    )
}

/// The local server's segment closing the control connection with `flags`.
fn server_closes(h: &Harness, c: &Control, flags: u8) {
    let close = Segment::new(SERVER, 21, CLIENT, CPORT)
        .seq(c.s2c)
        .ack(c.c2s)
        .flags(flags);
    h.egress(&close.frame());
}

#[test]
fn unused_announcements_go_when_the_server_closes_the_session() {
    for flags in [FIN | ACK, RST] {
        let h = Harness::new();
        let mut c = Control::new(&h);
        c.reply(b"220 ready\r\n");
        pasv(&mut c, 40_001);
        pasv(&mut c, 40_002);
        assert_eq!(h.expectations().len(), 2);
        // One is used: a flow now, not an expectation.
        assert_eq!(client_syn(&h, 40_001), XDP_PASS);
        server_closes(&h, &c, flags);
        assert!(h.control_states().is_empty());
        assert!(h.expectations().is_empty(), "flags {flags:#x}");
        assert_eq!(h.counter(Counter::ExpectDroppedControlClosed), 1);
        assert_eq!(client_syn(&h, 40_002), XDP_DROP, "after the session ended");
    }
}

#[test]
fn a_remote_fin_or_rst_drops_nothing() {
    let h = Harness::new();
    let mut c = Control::new(&h);
    c.reply(b"220 ready\r\n");
    pasv(&mut c, 40_003);
    for flags in [FIN | ACK, RST] {
        let forged = Segment::new(CLIENT, CPORT, SERVER, 21)
            .seq(c.c2s)
            .ack(c.s2c)
            .flags(flags);
        h.ingress(&forged.frame());
    }
    assert_eq!(h.expectations().len(), 1);
    assert_eq!(h.counter(Counter::ExpectDroppedControlClosed), 0);
    assert_eq!(client_syn(&h, 40_003), XDP_PASS);
}
