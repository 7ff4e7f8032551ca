//! The TC program's body: parse what the local host says on control
//! connections and record the connections it opens. Never drops.

use core::mem::MaybeUninit;

use aya_ebpf::{bindings::TC_ACT_OK, programs::TcContext};
use ftp_ebpf_common::{counters::Counter, parser::Direction, policy::PortClass};

use crate::{
    conntrack,
    control::{self, Origin},
    counters::count,
    headers::{self, tcp_flags},
    ingress::{self, port_class},
};

#[inline(always)]
pub fn run(ctx: &TcContext) -> i32 {
    count(Counter::EgressPackets);
    let mut slot = MaybeUninit::uninit();
    let Ok(info) = headers::parse(ctx, &mut slot) else {
        return TC_ACT_OK;
    };
    if ingress::ready_policy().is_none() {
        return TC_ACT_OK;
    }
    let sclass = port_class(info.sport);
    if port_class(info.dport) == PortClass::Control {
        // The local host is the FTP client of this control connection.
        control::on_packet(ctx, info, Direction::ClientToServer, Origin::LocalClient);
    } else if sclass == PortClass::Control {
        // The local host is the FTP server.
        control::on_packet(ctx, info, Direction::ServerToClient, Origin::LocalServer);
    }
    if sclass == PortClass::Guarded {
        if info.is_syn() {
            // Replies to this connection will arrive at a guarded local port.
            conntrack::outbound_syn(info);
        } else if info.flags & (tcp_flags::FIN | tcp_flags::RST) != 0 {
            conntrack::local_close(info);
        }
    }
    TC_ACT_OK
}
