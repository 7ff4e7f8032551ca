//! The per-CPU flow memo (`ftp-ebpf/src/flow_memo.rs`) answers only for the
//! flow it remembers, never for SYNs or RSTs, and forgets a flow removed
//! from the table by the next jiffy: what the table alone decided before.

mod common;

use std::{thread::sleep, time::Duration};

use aya::maps::{HashMap, MapData};
use common::{ACK, CLIENT, Control, Harness, RST, SERVER, SYN, Segment, XDP_DROP, XDP_PASS, pasv};
use ftp_ebpf_common::{
    counters::Counter,
    flow::{FlowKey, FlowValue, flow_state},
    map_names,
};

const DATA_PORT: u16 = 40_000;
const CLIENT_PORT: u16 = 45_000;
/// Longer than a jiffy at any `CONFIG_HZ` (100 is the slowest).
const NEXT_JIFFY: Duration = Duration::from_millis(50);

/// Admits CLIENT:45000 → SERVER:40000 and completes its handshake; returns
/// the client's next ACK.
fn established(h: &Harness) -> Segment {
    let mut c = Control::new(h);
    c.reply(b"220 ready\r\n");
    pasv(&mut c, DATA_PORT);
    let from_client = Segment::new(CLIENT, CLIENT_PORT, SERVER, DATA_PORT);
    assert_eq!(
        h.ingress(&from_client.clone().seq(1000).flags(SYN).frame()),
        XDP_PASS
    );
    let from_server = Segment::new(SERVER, DATA_PORT, CLIENT, CLIENT_PORT).ack(1001);
    h.egress(&from_server.clone().seq(7000).flags(SYN | ACK).frame());
    let ack = from_client.seq(1001).ack(7001).flags(ACK);
    assert_eq!(h.ingress(&ack.frame()), XDP_PASS, "handshake's ACK");
    h.egress(&from_server.seq(7001).flags(ACK).frame());
    ack
}

#[test]
fn a_flow_removed_from_the_table_stops_passing_by_the_next_jiffy() {
    let mut h = Harness::new();
    let ack = established(&h);
    assert_eq!(h.ingress(&ack.frame()), XDP_PASS, "remembered now");
    let (key, _) = h.flows()[0];
    let mut flows: HashMap<&mut MapData, FlowKey, FlowValue> =
        HashMap::try_from(h.ebpf.map_mut(map_names::FLOWS).expect("map")).expect("lru map");
    flows.remove(&key).expect("removing the flow");
    sleep(NEXT_JIFFY);
    let before = h.counter(Counter::UntrackedDropped);
    assert_eq!(h.ingress(&ack.frame()), XDP_DROP, "no flow, no memo");
    assert_eq!(h.counter(Counter::UntrackedDropped), before + 1);
}

#[test]
fn the_memo_answers_only_for_the_flow_it_remembers() {
    let h = Harness::new();
    let ack = established(&h);
    let before = h.counter(Counter::UntrackedDropped);
    // Each differs from the remembered flow in one field; each is run right
    // after the remembered flow's packet, within its jiffy.
    let others = [
        Segment::new("198.18.0.99", CLIENT_PORT, SERVER, DATA_PORT),
        Segment::new(CLIENT, CLIENT_PORT + 1, SERVER, DATA_PORT),
        Segment::new(CLIENT, CLIENT_PORT, "198.18.0.98", DATA_PORT),
        Segment::new(CLIENT, CLIENT_PORT, SERVER, DATA_PORT + 1),
    ];
    for other in &others {
        assert_eq!(h.ingress(&ack.frame()), XDP_PASS, "the remembered flow");
        let frame = other.clone().seq(1001).ack(7001).flags(ACK).frame();
        assert_eq!(h.ingress(&frame), XDP_DROP, "{other:?}");
    }
    assert_eq!(
        h.counter(Counter::UntrackedDropped),
        before + others.len() as u64
    );
}

#[test]
fn syns_and_rsts_are_judged_by_the_table_not_the_memo() {
    let h = Harness::new();
    let ack = established(&h);
    assert_eq!(h.ingress(&ack.frame()), XDP_PASS, "remembered now");
    let syn = Segment::new(CLIENT, CLIENT_PORT, SERVER, DATA_PORT)
        .seq(90_000)
        .flags(SYN);
    assert_eq!(
        h.ingress(&syn.frame()),
        XDP_DROP,
        "a new connection on the 4-tuple"
    );
    assert_eq!(h.counter(Counter::SynReused), 1);
    assert_eq!(h.ingress(&ack.frame()), XDP_PASS, "remembered again");
    let rst = ack.clone().flags(RST);
    assert_eq!(h.ingress(&rst.frame()), XDP_PASS);
    let state = h.flows().first().map(|(_, v)| v.state);
    assert_eq!(state, Some(flow_state::RESET), "the RST reached the flow");
    assert_eq!(h.counter(Counter::FlowResetRemote), 1);
}
