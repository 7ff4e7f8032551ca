//! A one-entry memo per CPU of the last flow packet `conntrack::inbound`
//! let in, valid for the jiffy it was decided in.
//!
//! A transfer's packets arrive in runs of one flow (a NAPI poll takes up to
//! 64 at a time), and the flow table's lookup (hashing a 40-byte key) is
//! most of what such a packet costs. Within one jiffy the verdict on a
//! plain packet of a live flow cannot change: no flow state lets a plain
//! packet in that another state refuses, each transition (the local FIN or
//! RST, a remote RST) restarts the flow's timer, and expiry is judged by the
//! packet clock, which itself moves once a jiffy. So the memo answers for the
//! rest of the jiffy; a flow removed from the table (by user space, or the
//! LRU) stops passing at the next jiffy, as an expired one does. SYNs and
//! RSTs never use it: they change or judge the flow's state.

use ftp_ebpf_common::{Addr, flow::FlowKey};

use crate::{
    headers::{PacketInfo, tcp_flags},
    shared::{ScratchSlot, scratch},
};

/// Whether `info` is a packet the memo may answer for: neither SYN nor RST.
#[inline(always)]
pub fn plain(info: &PacketInfo) -> bool {
    info.flags & (tcp_flags::SYN | tcp_flags::RST) == 0
}

/// Whether `info` is a plain packet of the flow this CPU let one in for
/// during the current jiffy (`shared::packet_now` has read it in this run).
/// Compared with the packet's fields, so a hit builds no key.
#[inline(always)]
pub fn hit(info: &PacketInfo) -> bool {
    if !plain(info) {
        return false;
    }
    let Some(s) = scratch(ScratchSlot::Packet) else {
        return false;
    };
    let m = &s.flow_memo;
    s.flow_memo_jiffies == s.clock_jiffies
        && m.family == info.family
        && m.sport == info.sport
        && m.dport == info.dport
        && same_addr(&m.src, &info.src)
        && same_addr(&m.dst, &info.dst)
}

/// Remembers that a plain packet of `key`'s flow was let in this jiffy.
#[inline(always)]
pub fn remember(key: &FlowKey) {
    if let Some(s) = scratch(ScratchSlot::Packet) {
        s.flow_memo = *key;
        s.flow_memo_jiffies = s.clock_jiffies;
    }
}

/// Address equality as two `u128`s (four loads): `==` on the arrays
/// becomes a call to a byte-at-a-time `memcmp` in BPF.
#[inline(always)]
fn same_addr(a: &Addr, b: &Addr) -> bool {
    u128::from_ne_bytes(*a) == u128::from_ne_bytes(*b)
}
