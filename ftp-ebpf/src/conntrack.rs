//! Tracked connections on guarded ports: a flow lets its connection's
//! packets in; a SYN passes only by consuming a matching, unexpired
//! expectation; everything else drops.
//!
//! A flow lives on the local end's activity, seen on egress: the remote end
//! can neither keep one alive nor reuse its 4-tuple. A SYN on a flow passes
//! only while the handshake is under way (the same SYN again, or a
//! simultaneous open of the host's own connection); after that it is a new
//! connection and needs an expectation of its own. The local end's FIN or RST
//! ends a flow, and so does a remote RST at the sequence number the local end
//! acknowledged (one elsewhere may be forged, and changes nothing).
//!
//! Admitted connections and the host's own live in separate tables, so a
//! client making many admitted connections can only push out admitted ones.

use aya_ebpf::btf_maps::LruHashMap;
use ftp_ebpf_common::{
    counters::Counter,
    flow::{ExpectKey, FlowKey, FlowValue, flow_flags, flow_origin, flow_state},
    policy::Policy,
};

use crate::{
    counters::count,
    expectations, flow_memo, ftps,
    headers::{PacketInfo, tcp_flags},
    maps::{FTPCT_FLOWS, FTPCT_HOST_FLOWS},
    port_window,
    shared::packet_now,
};

/// `BPF_ANY`: create or update.
const BPF_ANY: u64 = 0;

/// How far past the local end's latest acknowledgment a remote RST may be
/// and still end the flow: data in flight when the peer reset (a TCP window
/// without scaling). The kernel itself only accepts one at the exact
/// sequence number and answers others with a challenge ACK, which reopens
/// the flow.
const RST_WINDOW: u32 = 65_535;

/// The verdict for an inbound packet to a guarded port, with the counter
/// that says why: the caller counts it at its one exit, so every packet is
/// counted exactly once by construction.
pub enum Verdict {
    Pass(Counter),
    Drop(Counter),
}

/// Flow key of an inbound packet.
#[inline(always)]
fn inbound_key(info: &PacketInfo) -> FlowKey {
    FlowKey::new(info.family, info.src, info.sport, info.dst, info.dport)
}

/// Flow key of a packet the local host sends: keyed as its replies arrive.
#[inline(always)]
fn outbound_key(info: &PacketInfo) -> FlowKey {
    FlowKey::new(info.family, info.dst, info.dport, info.src, info.sport)
}

/// Either flow table (they differ only in who may fill them).
type Flows =
    LruHashMap<FlowKey, FlowValue, { ftp_ebpf_common::policy::DEFAULT_MAX_FLOWS as usize }>;

/// The flow of `key` and the table it is in: admitted ones first (the bulk
/// of what reaches guarded ports on an FTP server), then the host's own.
#[inline(always)]
fn find(key: &FlowKey) -> Option<(&'static Flows, &'static mut FlowValue)> {
    let (map, flow) = match FTPCT_FLOWS.get_ptr_mut(key) {
        Some(flow) => (&FTPCT_FLOWS, flow),
        None => (&FTPCT_HOST_FLOWS, FTPCT_HOST_FLOWS.get_ptr_mut(key)?),
    };
    // SAFETY: pointer from a successful lookup; concurrent updates of these
    // plain integers by another CPU are benign (last writer wins).
    Some((map, unsafe { &mut *flow }))
}

/// The verdict on an inbound packet to a guarded port at `now` (the packet
/// clock) when it needs no table: a SYN to a port no expectation can be
/// live for, and on which no admitted or outgoing SYN can still be
/// retransmitted (the whole cost of a flood), or the next packet of a flow
/// this CPU just let in (`flow_memo`). `inbound` decides the others.
#[inline(always)]
pub fn without_tables(info: &PacketInfo, policy: &Policy, now: u64) -> Option<Verdict> {
    if info.is_syn() && !port_window::is_open(info.dport, now) && !policy.in_ftps_range(info.dport)
    {
        return Some(Verdict::Drop(Counter::SynDropped));
    }
    if flow_memo::hit(info) {
        return Some(Verdict::Pass(Counter::FlowPackets));
    }
    None
}

/// Decides an inbound packet to a guarded port at `now` (the packet clock),
/// after `without_tables`.
#[inline(always)]
pub fn inbound(info: &PacketInfo, policy: &Policy, now: u64) -> Verdict {
    let key = inbound_key(info);
    let mut reused = false;
    if let Some((map, flow)) = find(&key) {
        if policy.flow_live(flow, now) {
            if !info.is_syn() {
                if info.flags & tcp_flags::RST != 0 {
                    remote_rst(flow, info, now);
                } else if flow_memo::plain(info) {
                    flow_memo::remember(&key);
                }
                return Verdict::Pass(Counter::FlowPackets);
            }
            let handshake = flow.state == flow_state::HANDSHAKE;
            if handshake && (flow.origin != flow_origin::ADMITTED || info.seq == flow.seq) {
                // The admitted SYN again (its SYN-ACK was lost), or a
                // simultaneous open of a connection this host started.
                return Verdict::Pass(Counter::FlowPackets);
            }
            // A new connection on a tracked 4-tuple: it needs an expectation.
            reused = true;
        } else {
            // Over: forget it and judge the packet as new.
            let _ = map.remove(key);
        }
    }
    if !info.is_syn() {
        let odd = info.flags & tcp_flags::SYN != 0 || info.flags == 0;
        return Verdict::Drop(if odd {
            Counter::BadFlagsDropped
        } else {
            Counter::UntrackedDropped
        });
    }
    admit_syn(info, &key, reused, policy, now)
}

/// A remote RST on a live flow: at the sequence number the local end
/// acknowledged (or just past it) it ends the connection.
#[inline(always)]
fn remote_rst(flow: &mut FlowValue, info: &PacketInfo, now: u64) {
    if flow.flags & flow_flags::ACK_KNOWN == 0
        || info.seq.wrapping_sub(flow.seq) > RST_WINDOW
        || (flow.state != flow_state::OPEN && flow.state != flow_state::HANDSHAKE)
    {
        return;
    }
    flow.state = flow_state::RESET;
    flow.last_seen_ns = now;
    count(Counter::FlowResetRemote);
}

/// Consumes the expectation matching a SYN (one-shot) and records the flow;
/// without one, a SYN into the FTPS range from the client of a live
/// encrypted control connection is admitted too.
#[inline(always)]
fn admit_syn(info: &PacketInfo, key: &FlowKey, reused: bool, policy: &Policy, now: u64) -> Verdict {
    let expect_key = ExpectKey::new(info.family, info.src, info.dst, info.dport);
    let Some(expires) = expectations::consume(&expect_key) else {
        if policy.in_ftps_range(info.dport) && ftps::admits(info) {
            return admitted(info, key, now, Counter::SynAdmittedFtpsRange);
        }
        return Verdict::Drop(if reused {
            Counter::SynReused
        } else {
            Counter::SynDropped
        });
    };
    if now > expires {
        return Verdict::Drop(Counter::SynExpired);
    }
    admitted(info, key, now, Counter::SynAdmitted)
}

/// Records the admitted SYN's flow, to be counted as `counter`.
#[inline(always)]
fn admitted(info: &PacketInfo, key: &FlowKey, now: u64, counter: Counter) -> Verdict {
    record(
        &FTPCT_FLOWS,
        key,
        FlowValue::new(flow_origin::ADMITTED, flow_state::HANDSHAKE, info.seq, now),
    );
    // Its SYN may be retransmitted (a lost SYN-ACK): keep the port open.
    port_window::extend(info.dport, 0);
    Verdict::Pass(counter)
}

/// Records a flow; a failure is counted (the connection then stalls rather
/// than bypassing the table).
#[inline(always)]
fn record(map: &Flows, key: &FlowKey, value: FlowValue) {
    if map.insert(key, value, BPF_ANY).is_err() {
        count(Counter::FlowMapFull);
    }
}

/// Records a connection this host opens (its SYN leaves on egress), keyed as
/// its replies will arrive.
#[inline(always)]
pub fn outbound_syn(info: &PacketInfo) {
    let key = outbound_key(info);
    record(
        &FTPCT_HOST_FLOWS,
        &key,
        FlowValue::new(
            flow_origin::OUTBOUND,
            flow_state::HANDSHAKE,
            info.seq,
            packet_now(),
        ),
    );
    // A simultaneous open brings a SYN to this local port.
    port_window::extend(info.sport, 0);
    count(Counter::FlowsOutbound);
}

/// Whether the local end opened the connection of its packet `info` (its
/// SYN was recorded on egress).
#[inline(always)]
pub fn opened_locally(info: &PacketInfo) -> bool {
    let key = outbound_key(info);
    // SAFETY: read-only look at a value from a successful lookup.
    matches!(unsafe { FTPCT_HOST_FLOWS.get(key) }, Some(flow) if flow.origin == flow_origin::OUTBOUND)
}

/// A packet the local end sends from a guarded port (other than a SYN):
/// keeps its flow alive, ends the handshake, and remembers the local end's
/// acknowledgment (where a real RST from the remote must fall). Its FIN or
/// RST starts the closing timer, which only its own data keeps going.
///
/// A field is written only when it changes: the packet clock moves once a
/// jiffy, and in a transfer the local end's acknowledgment stays put while
/// it sends, so most packets leave the entry's cache line clean (no
/// bouncing between the CPU that sends and the one that receives).
#[inline(always)]
pub fn local_packet(info: &PacketInfo) {
    let key = outbound_key(info);
    let Some((_, flow)) = find(&key) else {
        return;
    };
    let now = packet_now();
    if flow.state == flow_state::CLOSING {
        // Closing is final; only data the local end still (re)sends after its
        // FIN keeps the timer going. Its answers to what the remote sends (a
        // RST, a duplicate ACK from TIME_WAIT) do not.
        if info.payload_len > 0 && info.flags & tcp_flags::RST == 0 {
            set(&mut flow.last_seen_ns, now);
        }
        return;
    }
    set(&mut flow.last_seen_ns, now);
    if info.flags & (tcp_flags::FIN | tcp_flags::RST) != 0 {
        flow.state = flow_state::CLOSING;
        return;
    }
    if info.flags & tcp_flags::SYN != 0 {
        // The local server's SYN-ACK: the handshake goes on.
        return;
    }
    set(&mut flow.state, flow_state::OPEN);
    if info.flags & tcp_flags::ACK != 0 {
        set(&mut flow.seq, info.ack);
        let flags = flow.flags | flow_flags::ACK_KNOWN;
        set(&mut flow.flags, flags);
    }
}

/// Stores `value` in a shared entry's field only if it differs.
#[inline(always)]
fn set<T: PartialEq + Copy>(field: &mut T, value: T) {
    if *field != value {
        *field = value;
    }
}
