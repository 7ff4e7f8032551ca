//! FTP bounce through a permissive local server: when a remote client's
//! `PORT`/`EPRT` is refused, the local server's connection attempt to the
//! endpoint it named is blocked on egress for a while; legitimate active
//! mode is untouched.

mod common;

use ftp_ebpf_common::counters::Counter;

use common::{CLIENT, Control, Harness, INTRUDER, SERVER, SYN, Segment, TC_ACT_OK, TC_ACT_SHOT};

/// The local server's SYN to `dst:port` from its port 20.
fn server_connects(h: &Harness, dst: &str, port: u16) -> u32 {
    h.egress(&Segment::new(SERVER, 20, dst, port).flags(SYN).frame())
}

#[test]
fn a_refused_port_blocks_the_servers_connection_there() {
    let h = Harness::new();
    let mut c = Control::new(&h);
    c.reply(b"220 ready\r\n");
    // Bounce: a third party's address.
    c.command(b"PORT 198,18,0,3,156,110\r\n");
    c.reply(b"200 PORT command successful.\r\n");
    assert_eq!(server_connects(&h, INTRUDER, 40_046), TC_ACT_SHOT);
    // EPRT naming a third party over IPv4.
    c.command(b"EPRT |1|198.18.0.3|40047|\r\n");
    c.reply(b"200 EPRT command successful.\r\n");
    assert_eq!(server_connects(&h, INTRUDER, 40_047), TC_ACT_SHOT);
    // The client's own address, a privileged port.
    c.command(b"PORT 198,18,0,2,0,25\r\n");
    c.reply(b"200 PORT command successful.\r\n");
    assert_eq!(server_connects(&h, CLIENT, 25), TC_ACT_SHOT);
    // Legitimate active mode.
    c.command(b"PORT 198,18,0,2,156,120\r\n");
    c.reply(b"200 PORT command successful.\r\n");
    assert_eq!(server_connects(&h, CLIENT, 40_056), TC_ACT_OK);
    // Other connections of the host are not affected.
    assert_eq!(server_connects(&h, INTRUDER, 40_048), TC_ACT_OK);
    assert_eq!(h.counter(Counter::BounceBlocked), 3);
    assert_eq!(h.counter(Counter::RefusedBounce), 2);
    assert_eq!(h.counter(Counter::RefusedLowPort), 1);
}
