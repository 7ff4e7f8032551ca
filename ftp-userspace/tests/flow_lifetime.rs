//! How long an admitted connection stays admitted: it lives on the local
//! end's activity, ends with the local end's FIN or RST or an in-window RST
//! from the remote, and its 4-tuple admits no second connection.

mod common;

use std::{thread::sleep, time::Duration};

use aya::maps::{HashMap, MapData};
use common::{
    ACK, CLIENT, Control, FIN, Harness, RST, SERVER, SYN, Segment, XDP_DROP, XDP_PASS, pasv,
};
use ftp_ebpf_common::{
    counters::Counter,
    flow::{FlowKey, FlowValue, flow_state},
    map_names,
};
use ftp_userspace::attach::AttachConfig;

const DATA_PORT: u16 = 40_000;
const CLIENT_PORT: u16 = 45_000;

/// An admitted data connection CLIENT:45000 → SERVER:40000.
struct Data<'a> {
    h: &'a Harness,
    /// Client → server.
    inbound: u32,
    /// Server → client.
    outbound: u32,
}

impl<'a> Data<'a> {
    /// Announces the port on a control connection and admits the client's
    /// SYN (`seq` 1000), without completing the handshake.
    fn admitted(h: &'a Harness) -> Self {
        let mut c = Control::new(h);
        c.reply(b"220 ready\r\n");
        pasv(&mut c, DATA_PORT);
        let d = Self {
            h,
            inbound: 1001,
            outbound: 7001,
        };
        assert_eq!(d.syn(1000), XDP_PASS, "announced");
        d
    }
    /// ... and completes the handshake: the server's SYN-ACK, the client's ACK.
    fn established(h: &'a Harness) -> Self {
        let d = Self::admitted(h);
        d.local(SYN | ACK, b"", 7000);
        assert_eq!(d.remote(ACK, b""), XDP_PASS);
        d
    }
    fn syn(&self, seq: u32) -> u32 {
        self.h.ingress(
            &Segment::new(CLIENT, CLIENT_PORT, SERVER, DATA_PORT)
                .seq(seq)
                .flags(SYN)
                .frame(),
        )
    }
    fn remote(&self, flags: u8, payload: &[u8]) -> u32 {
        self.remote_at(self.inbound, flags, payload)
    }
    fn remote_at(&self, seq: u32, flags: u8, payload: &[u8]) -> u32 {
        self.h.ingress(
            &Segment::new(CLIENT, CLIENT_PORT, SERVER, DATA_PORT)
                .seq(seq)
                .ack(self.outbound)
                .flags(flags)
                .payload(payload)
                .frame(),
        )
    }
    fn local(&self, flags: u8, payload: &[u8], seq: u32) -> u32 {
        self.h.egress(
            &Segment::new(SERVER, DATA_PORT, CLIENT, CLIENT_PORT)
                .seq(seq)
                .ack(self.inbound)
                .flags(flags)
                .payload(payload)
                .frame(),
        )
    }
    /// The server sends `payload` (data or, empty, an ACK).
    fn send(&mut self, payload: &[u8]) {
        self.local(ACK, payload, self.outbound);
        self.outbound += payload.len() as u32;
    }
    fn state(&self) -> Option<u8> {
        self.h.flows().first().map(|(_, v)| v.state)
    }
}

#[test]
fn a_retransmitted_syn_passes_during_the_handshake() {
    let h = Harness::new();
    let d = Data::admitted(&h);
    assert_eq!(d.syn(1000), XDP_PASS, "the same SYN again");
    assert_eq!(
        d.syn(555_555),
        XDP_DROP,
        "another connection on the 4-tuple"
    );
}

#[test]
fn a_syn_on_an_established_flow_needs_a_new_expectation() {
    let h = Harness::new();
    let mut d = Data::established(&h);
    d.send(b"listing");
    assert_eq!(d.syn(1000), XDP_DROP, "the old SYN replayed");
    assert_eq!(d.syn(90_000), XDP_DROP, "a new connection on the 4-tuple");
    // After the transfer, reconnecting on the same 4-tuple needs a new
    // expectation too.
    d.local(FIN | ACK, b"", d.outbound);
    assert_eq!(d.syn(123_456), XDP_DROP);
    assert_eq!(h.counter(Counter::SynAdmitted), 1);
    assert_eq!(h.counter(Counter::SynReused), 3);
}

#[test]
fn remote_packets_alone_do_not_keep_a_flow_alive() {
    let mut cfg = AttachConfig::with_defaults("lo");
    cfg.flow_timeout_secs = 1;
    let h = Harness::with(cfg);
    let mut d = Data::established(&h);
    d.send(b"");
    // The local end stays silent; the remote keeps sending.
    for _ in 0..6 {
        sleep(Duration::from_millis(250));
        d.remote(ACK, b"");
    }
    assert_eq!(d.remote(ACK, b""), XDP_DROP, "idle on the local side");
}

#[test]
fn local_packets_keep_a_flow_alive() {
    let mut cfg = AttachConfig::with_defaults("lo");
    cfg.flow_timeout_secs = 1;
    let h = Harness::with(cfg);
    let mut d = Data::established(&h);
    for _ in 0..6 {
        sleep(Duration::from_millis(250));
        d.send(b"x");
    }
    assert_eq!(d.remote(ACK, b""), XDP_PASS);
}

#[test]
fn remote_packets_do_not_extend_a_closing_flow() {
    let mut h = Harness::new();
    h.set_policy(|p| p.closing_timeout_ns = 1_000_000_000);
    let mut d = Data::established(&h);
    d.send(b"data");
    d.local(FIN | ACK, b"", d.outbound);
    for _ in 0..6 {
        sleep(Duration::from_millis(250));
        d.remote(ACK, b"");
    }
    assert_eq!(d.remote(ACK, b""), XDP_DROP, "closed 1 s after the FIN");
}

#[test]
fn an_in_window_rst_from_the_remote_ends_a_flow() {
    let h = Harness::new();
    let mut d = Data::established(&h);
    d.send(b"");
    // Far outside the window: changes nothing.
    assert_eq!(
        d.remote_at(d.inbound.wrapping_add(1 << 30), RST, b""),
        XDP_PASS
    );
    assert_eq!(d.state(), Some(flow_state::OPEN));
    // At the sequence the local end acknowledged: the connection is over.
    assert_eq!(d.remote(RST, b""), XDP_PASS);
    assert_eq!(d.state(), Some(flow_state::RESET));
    assert_eq!(h.counter(Counter::FlowResetRemote), 1);
    // Unless the local end keeps talking (the kernel challenged the RST).
    d.send(b"");
    assert_eq!(d.state(), Some(flow_state::OPEN));
}

#[test]
fn a_reset_flow_ends_after_the_closing_timeout() {
    let mut h = Harness::new();
    h.set_policy(|p| p.closing_timeout_ns = 500_000_000);
    let mut d = Data::established(&h);
    d.send(b"");
    assert_eq!(d.remote(RST, b""), XDP_PASS);
    sleep(Duration::from_millis(700));
    assert_eq!(d.remote(ACK, b""), XDP_DROP);
    assert_eq!(d.syn(1000), XDP_DROP, "the 4-tuple admits nothing new");
}

#[test]
fn a_flow_stamped_after_the_clock_was_read_is_fresh() {
    // The egress program on another CPU may stamp a flow just after the
    // ingress program read the clock: that flow is fresh, not idle for 2^64 ns.
    let mut h = Harness::new();
    let ack = {
        let mut d = Data::established(&h);
        d.send(b"");
        Segment::new(CLIENT, CLIENT_PORT, SERVER, DATA_PORT)
            .seq(d.inbound)
            .ack(d.outbound)
            .flags(ACK)
            .frame()
    };
    let (key, mut value) = h.flows()[0];
    value.last_seen_ns = ftp_userspace::attach::monotonic_ns() + 2_000_000_000;
    let mut flows: HashMap<&mut MapData, FlowKey, FlowValue> =
        HashMap::try_from(h.ebpf.map_mut(map_names::FLOWS).expect("map")).expect("lru map");
    flows.insert(key, value, 0).expect("writing the flow");
    assert_eq!(h.ingress(&ack), XDP_PASS);
    assert_eq!(h.flows().len(), 1, "not removed as expired");
}

#[test]
fn only_the_local_ends_data_keeps_a_closing_flow() {
    let mut h = Harness::new();
    h.set_policy(|p| p.closing_timeout_ns = 600_000_000);
    let mut d = Data::established(&h);
    d.send(b"data");
    d.local(FIN | ACK, b"", d.outbound);
    // Data the local end retransmits after its FIN keeps the timer going...
    for _ in 0..3 {
        sleep(Duration::from_millis(300));
        d.local(ACK, b"data", d.outbound - 4);
    }
    assert_eq!(d.remote(ACK, b""), XDP_PASS, "retransmitting");
    // ...its RSTs and bare ACKs (answers to what the remote sends) do not.
    for _ in 0..3 {
        sleep(Duration::from_millis(300));
        d.local(RST, b"", d.outbound);
        d.local(ACK, b"", d.outbound);
    }
    assert_eq!(d.remote(ACK, b""), XDP_DROP, "closed");
}
