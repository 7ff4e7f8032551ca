//! Who is the FTP client and who the server of a control connection comes
//! from the handshake (which end connected) and the socket table at attach,
//! never from port numbers alone: a remote host that sends from a control
//! port cannot make local text count as a local client's commands.

mod common;

use common::{ACK, Harness, INTRUDER, SERVER, SYN, Segment, XDP_DROP, XDP_PASS};
use ftp_ebpf_common::counters::Counter;
use ftp_userspace::attach::AttachConfig;

/// Port 40036 as `PORT` spells it.
const PORT_40036: &[u8] = b"PORT 198,18,0,1,156,100\r\n";

/// A TCP connection between the intruder and the local host, both
/// directions' sequence numbers kept; `remote_port` is the intruder's.
struct Conn<'a> {
    h: &'a Harness,
    remote_port: u16,
    local_port: u16,
    /// Intruder → host.
    inbound: u32,
    /// Host → intruder.
    outbound: u32,
}

impl<'a> Conn<'a> {
    /// The intruder connects to `local_port` from `remote_port`.
    fn accepted(h: &'a Harness, remote_port: u16, local_port: u16) -> Self {
        let c = Self {
            h,
            remote_port,
            local_port,
            inbound: 1000,
            outbound: 5000,
        };
        c.h.ingress(&c.by_remote(SYN, b"").seq(999).frame());
        c.h.egress(&c.by_local(SYN | ACK, b"").seq(4999).frame());
        c.h.ingress(&c.by_remote(ACK, b"").frame());
        c
    }
    /// The host connects to the intruder's `remote_port` from `local_port`.
    fn connected(h: &'a Harness, local_port: u16, remote_port: u16) -> Self {
        let c = Self {
            h,
            remote_port,
            local_port,
            inbound: 1000,
            outbound: 5000,
        };
        c.h.egress(&c.by_local(SYN, b"").seq(4999).frame());
        c.h.ingress(&c.by_remote(SYN | ACK, b"").seq(999).frame());
        c.h.egress(&c.by_local(ACK, b"").frame());
        c
    }
    fn by_remote(&self, flags: u8, payload: &[u8]) -> Segment {
        Segment::new(INTRUDER, self.remote_port, SERVER, self.local_port)
            .seq(self.inbound)
            .ack(self.outbound)
            .flags(flags)
            .payload(payload)
    }
    fn by_local(&self, flags: u8, payload: &[u8]) -> Segment {
        Segment::new(SERVER, self.local_port, INTRUDER, self.remote_port)
            .seq(self.outbound)
            .ack(self.inbound)
            .flags(flags)
            .payload(payload)
    }
    /// The intruder sends `text`.
    fn send(&mut self, text: &[u8]) -> u32 {
        let action = self.h.ingress(&self.by_remote(ACK, text).frame());
        self.inbound += text.len() as u32;
        action
    }
    /// The local end sends `text`.
    fn answer(&mut self, text: &[u8]) -> u32 {
        let action = self.h.egress(&self.by_local(ACK, text).frame());
        self.outbound += text.len() as u32;
        action
    }
}

fn syn_from_intruder(h: &Harness, sport: u16, port: u16) -> u32 {
    h.ingress(
        &Segment::new(INTRUDER, sport, SERVER, port)
            .flags(SYN)
            .frame(),
    )
}

#[test]
fn an_echo_to_a_remote_control_port_is_no_local_clients_port() {
    let h = Harness::new();
    // The intruder connects from port 21 to an echo service (port 7, open)
    // and has it echo a PORT naming the host's own address.
    let mut c = Conn::accepted(&h, 21, 7);
    assert_eq!(c.send(PORT_40036), XDP_PASS);
    c.answer(PORT_40036);
    assert!(h.expectations().is_empty(), "{:?}", h.expectations());
    assert_eq!(syn_from_intruder(&h, 21, 40_036), XDP_DROP);
    assert_eq!(h.counter(Counter::SynAdmitted), 0);
}

#[test]
fn a_remote_client_from_port_21_talks_to_the_local_server_as_a_client() {
    let h = Harness::new();
    let mut c = Conn::accepted(&h, 21, 21);
    c.answer(b"220 ready\r\n");
    c.send(b"USER anonymous\r\n");
    // A server's echo that reads like a command is still a reply here.
    c.answer(PORT_40036);
    c.answer(b"331 ok\r\n");
    assert_eq!(syn_from_intruder(&h, 21, 40_036), XDP_DROP);
    // And the client's PASV is answered by the server as usual.
    c.send(b"PASV\r\n");
    c.answer(b"227 Entering Passive Mode (198,18,0,1,156,102).\r\n");
    let entries = h.expectations();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].0.dport, 40_038);
    assert_eq!(syn_from_intruder(&h, 40_000, 40_038), XDP_PASS);
}

#[test]
fn a_local_client_from_port_21_reads_the_remote_servers_replies() {
    let h = Harness::new();
    let mut c = Conn::connected(&h, 21, 21);
    c.send(b"220 remote server ready\r\n");
    c.answer(b"PORT 198,18,0,1,156,104\r\n");
    assert_eq!(h.expectations().len(), 1, "a local client's PORT");
    // The remote server refuses it: the expectation is withdrawn, which
    // needs the reply to be read as a reply.
    c.send(b"500 no\r\n");
    assert!(h.expectations().is_empty(), "{:?}", h.expectations());
    assert_eq!(h.counter(Counter::ExpectWithdrawn), 1);
}

#[test]
fn a_local_process_connecting_from_a_control_port_is_no_server() {
    let mut cfg = AttachConfig::with_defaults("lo");
    cfg.control_ports = vec![21, 2121];
    let h = Harness::with(cfg);
    // A local process binds 2121 and connects out to the intruder's 8080.
    let mut c = Conn::connected(&h, 2121, 8080);
    c.answer(b"hello\r\n");
    c.send(b"PASV\r\n");
    c.answer(b"227 Entering Passive Mode (198,18,0,1,156,103).\r\n");
    assert!(h.expectations().is_empty(), "{:?}", h.expectations());
    assert_eq!(syn_from_intruder(&h, 40_000, 40_039), XDP_DROP);
}
