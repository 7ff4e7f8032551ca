//! A local client's `PORT`/`EPRT` opens a local port only on a connection
//! that behaves as FTP: the server's `220` greeting came before the client's
//! first command, and every earlier command was answered before it. Text a
//! local process is tricked into sending (an HTTP request to port 21) opens
//! nothing.

mod common;

use common::{Control, Harness};
use ftp_ebpf_common::counters::Counter;

const REMOTE: &str = "198.18.0.9";

#[test]
fn a_port_without_a_greeting_opens_nothing() {
    let h = Harness::new();
    let mut c = Control::to_remote(&h, REMOTE);
    c.command(b"PORT 198,18,0,2,156,120\r\n");
    c.reply(b"200 ok\r\n");
    assert!(h.expectations().is_empty(), "{:?}", h.expectations());
    assert_eq!(h.counter(Counter::RefusedNotFtp), 1);
}

#[test]
fn a_port_in_the_same_flight_as_other_text_opens_nothing() {
    let h = Harness::new();
    let mut c = Control::to_remote(&h, REMOTE);
    c.reply(b"220 hello\r\n");
    c.command(b"GET / HTTP/1.1\r\nHost: x\r\nPORT 198,18,0,2,156,121\r\n\r\n");
    assert!(h.expectations().is_empty(), "{:?}", h.expectations());
    assert_eq!(h.counter(Counter::RefusedNotFtp), 1);
}

#[test]
fn an_ftp_clients_port_opens_its_port() {
    let h = Harness::new();
    let mut c = Control::to_remote(&h, REMOTE);
    c.reply(b"220 hello\r\n");
    c.command(b"USER anonymous\r\n");
    c.reply(b"331 ok\r\n");
    c.command(b"PASS x\r\n");
    c.reply(b"230 in\r\n");
    c.command(b"TYPE I\r\n");
    c.reply(b"200 ok\r\n");
    c.command(b"PORT 198,18,0,2,156,122\r\n");
    assert_eq!(h.expectations().len(), 1);
    assert_eq!(h.counter(Counter::RefusedNotFtp), 0);
}
