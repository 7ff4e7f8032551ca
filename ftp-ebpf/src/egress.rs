//! The TC program's body: parse what the local host says on control
//! connections, follow the local end of tracked flows, record the
//! connections it opens. It drops one thing only: a connection attempt to an
//! endpoint a refused `PORT`/`EPRT` named (FTP bounce through a permissive
//! local server).

use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    programs::TcContext,
};
use ftp_ebpf_common::{counters::Counter, policy::PortClass};

use crate::{
    bounce, conntrack, control,
    counters::count,
    events,
    headers::{self, PacketInfo},
    shared::{packet_now, port_class, ready_policy},
};

#[inline(always)]
pub fn run(ctx: &TcContext) -> i32 {
    count(Counter::EgressPackets);
    let mut slot = MaybeUninit::uninit();
    let Ok(info) = headers::parse(ctx, &mut slot) else {
        return TC_ACT_OK;
    };
    if ready_policy().is_none() {
        return TC_ACT_OK;
    }
    let sclass = port_class(info.sport);
    let to_control = port_class(info.dport) == PortClass::Control;
    let from_control = sclass == PortClass::Control;
    if to_control || from_control {
        // Taken before parsing: the segment may end the connection's state.
        let seq_off = control::seq_offset(info, to_control, from_control);
        if let Some(state) = control::outbound(ctx, info, to_control, from_control) {
            control::ftpct_nat_write(ctx.skb.skb, info, state);
        }
        if seq_off != 0 {
            control::move_seq(ctx, info, seq_off);
        }
    }
    track(info, sclass)
}

/// What every packet the host sends is checked for: a SYN to a bounce
/// target, a connection it opens, the local end of a tracked flow. Not
/// inlined, for the same reason as ingress's `guarded`: its keys stay out of
/// the frame the control path's call chain adds up with.
#[inline(never)]
fn track(info: &PacketInfo, sclass: PortClass) -> i32 {
    if info.is_syn() {
        if bounce::blocked(info) {
            count(Counter::BounceBlocked);
            events::dropped(Counter::BounceBlocked, info, packet_now());
            return TC_ACT_SHOT;
        }
        if sclass != PortClass::Open {
            // Replies will arrive at a guarded local port (or, from a control
            // port, this marks the connection as one the host opened).
            conntrack::outbound_syn(info);
        }
    } else if sclass == PortClass::Guarded {
        conntrack::local_packet(info);
    }
    TC_ACT_OK
}
