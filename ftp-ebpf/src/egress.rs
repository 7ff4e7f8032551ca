//! The TC program's body: parse what the local host says on control
//! connections and record the connections it opens. Never drops.

use aya_ebpf::{bindings::TC_ACT_OK, programs::TcContext};
use ftp_ebpf_common::{counters::Counter, parser::Direction, policy::PortClass};

use crate::{
    conntrack,
    control::{self, Origin},
    counters::count,
    headers::{self, L4, PacketInfo},
    ingress::port_class,
    maps::FTPCT_POLICY,
};

#[inline(always)]
pub fn run(ctx: &TcContext) -> i32 {
    count(Counter::EgressPackets);
    let Some(policy) = FTPCT_POLICY.get(0) else {
        return TC_ACT_OK;
    };
    if policy.ready == 0 {
        return TC_ACT_OK;
    }
    let mut info = PacketInfo::empty();
    if headers::parse(ctx, &mut info) != L4::Tcp {
        return TC_ACT_OK;
    }
    let sclass = port_class(info.sport);
    if port_class(info.dport) == PortClass::Control {
        // The local host is the FTP client of this control connection.
        control::on_packet(ctx, &info, Direction::ClientToServer, Origin::LocalClient);
    } else if sclass == PortClass::Control {
        // The local host is the FTP server.
        control::on_packet(ctx, &info, Direction::ServerToClient, Origin::LocalServer);
    }
    if info.is_syn() && sclass == PortClass::Guarded {
        // Replies to this connection will arrive at a guarded local port.
        conntrack::outbound_syn(&info);
    }
    TC_ACT_OK
}
