//! Inbound connections to guarded ports: a tracked flow passes; a SYN passes
//! only by consuming a matching, unexpired expectation; everything else drops.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use ftp_ebpf_common::{
    counters::Counter,
    flow::{ExpectKey, FlowKey, FlowValue, flow_origin, flow_state},
    policy::Policy,
};

use crate::{
    counters::count,
    expectations,
    headers::{PacketInfo, tcp_flags},
    maps::FTPCT_FLOWS,
    port_window,
};

/// `BPF_ANY`: create or update.
const BPF_ANY: u64 = 0;

/// The verdict for an inbound packet to a guarded port.
pub enum Verdict {
    Pass,
    Drop,
}

/// Flow key of an inbound packet.
#[inline(always)]
fn inbound_key(info: &PacketInfo) -> FlowKey {
    FlowKey {
        family: info.family,
        _pad0: 0,
        _pad1: 0,
        sport: info.sport,
        dport: info.dport,
        src: info.src,
        dst: info.dst,
    }
}

/// Flow key of a packet the local host sends: keyed as its replies arrive.
#[inline(always)]
fn outbound_key(info: &PacketInfo) -> FlowKey {
    FlowKey {
        family: info.family,
        _pad0: 0,
        _pad1: 0,
        sport: info.dport,
        dport: info.sport,
        src: info.dst,
        dst: info.src,
    }
}

/// Decides an inbound packet to a guarded port.
#[inline(always)]
pub fn inbound(info: &PacketInfo, policy: &Policy) -> Verdict {
    if info.is_syn() && !port_window::is_open(info.dport) {
        // No expectation can be live for this port, and no admitted or
        // outgoing SYN on it can still be retransmitted: nothing to look up.
        count(Counter::SynDropped);
        return Verdict::Drop;
    }
    let key = inbound_key(info);
    if let Some(flow) = FTPCT_FLOWS.get_ptr_mut(key) {
        let now = unsafe { bpf_ktime_get_ns() };
        // SAFETY: pointer from a successful lookup; concurrent updates of these
        // plain integers by another CPU are benign (last writer wins).
        let flow = unsafe { &mut *flow };
        let ttl = if flow.state == flow_state::CLOSING {
            policy.closing_timeout_ns
        } else {
            policy.flow_timeout_ns
        };
        if now.wrapping_sub(flow.last_seen_ns) <= ttl {
            // Every packet keeps the flow alive. An inbound FIN or RST changes
            // nothing: it may be forged with any sequence number (the kernel
            // ignores those), and only the local end's own FIN or RST, seen on
            // egress, starts the closing timer (`local_close`). Data after
            // that means the connection lives on, so it reopens.
            flow.last_seen_ns = now;
            if info.payload_len > 0 && info.flags & (tcp_flags::FIN | tcp_flags::RST) == 0 {
                flow.state = flow_state::OPEN;
            }
            count(Counter::FlowPackets);
            return Verdict::Pass;
        }
        // Idle too long: forget it and judge the packet as new.
        let _ = FTPCT_FLOWS.remove(key);
    }
    if !info.is_syn() {
        let odd = info.flags & tcp_flags::SYN != 0 || info.flags == 0;
        count(if odd {
            Counter::BadFlagsDropped
        } else {
            Counter::UntrackedDropped
        });
        return Verdict::Drop;
    }
    admit_syn(info, &key)
}

/// Consumes the expectation matching a SYN (one-shot) and records the flow.
#[inline(always)]
fn admit_syn(info: &PacketInfo, key: &FlowKey) -> Verdict {
    let expect_key = ExpectKey {
        family: info.family,
        _pad: 0,
        dport: info.dport,
        src: info.src,
        dst: info.dst,
    };
    let Some(expires) = expectations::consume(&expect_key) else {
        count(Counter::SynDropped);
        return Verdict::Drop;
    };
    // The clock is read only now: a SYN that matches nothing never needs it.
    let now = unsafe { bpf_ktime_get_ns() };
    if now > expires {
        count(Counter::SynExpired);
        return Verdict::Drop;
    }
    record(key, flow_origin::ADMITTED, now);
    // Its SYN may be retransmitted (a lost SYN-ACK): keep the port open.
    port_window::extend(info.dport, 0);
    count(Counter::SynAdmitted);
    Verdict::Pass
}

/// Records a flow; a failure is counted (the connection then stalls rather
/// than bypassing the table).
#[inline(always)]
pub fn record(key: &FlowKey, origin: u8, now: u64) {
    let value = FlowValue {
        last_seen_ns: now,
        origin,
        state: flow_state::OPEN,
        _pad0: 0,
        _pad1: 0,
    };
    if FTPCT_FLOWS.insert(key, value, BPF_ANY).is_err() {
        count(Counter::FlowMapFull);
    }
}

/// Records a connection this host opens (its SYN leaves on egress), keyed as
/// its replies will arrive.
#[inline(always)]
pub fn outbound_syn(info: &PacketInfo) {
    let key = outbound_key(info);
    let now = unsafe { bpf_ktime_get_ns() };
    record(&key, flow_origin::OUTBOUND, now);
    // A simultaneous open brings a SYN to this local port.
    port_window::extend(info.sport, 0);
    count(Counter::FlowsOutbound);
}

/// The local end sent FIN or RST on a connection to a guarded local port: the
/// flow lives `closing_timeout` past its last packet from now on.
#[inline(always)]
pub fn local_close(info: &PacketInfo) {
    let key = outbound_key(info);
    if let Some(flow) = FTPCT_FLOWS.get_ptr_mut(key) {
        // SAFETY: pointer from a successful lookup; plain integers.
        unsafe {
            (*flow).state = flow_state::CLOSING;
            (*flow).last_seen_ns = bpf_ktime_get_ns();
        }
    }
}
