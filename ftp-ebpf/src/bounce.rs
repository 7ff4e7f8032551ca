//! FTP bounce through a permissive local server: a remote client's
//! `PORT`/`EPRT` that names a third party (or a privileged port, or another
//! family) creates no expectation, but a server that obeys it anyway would
//! still connect there. Such endpoints are remembered for an expectation
//! lifetime, and the local host's SYNs to them are dropped on egress.
//!
//! The key being blocked lives in per-CPU scratch memory and goes to the map
//! helper by reference: by value it would be copied onto the parser call
//! chain's stack.
#![allow(clippy::needless_borrows_for_generic_args)]

use ftp_ebpf_common::{flow::BounceKey, parser::Endpoint, policy::Policy};

use crate::{
    addr,
    headers::PacketInfo,
    maps::FTPCT_BOUNCE,
    shared::{ScratchSlot, now_ns, scratch},
};

const BPF_ANY: u64 = 0;

/// Remembers `ep`, which a refused `PORT`/`EPRT` named. The key is built in
/// per-CPU scratch memory: this runs deep in the parser's call chain.
#[inline(always)]
pub fn block(ep: &Endpoint, policy: &Policy, slot: ScratchSlot) {
    let Some(scratch) = scratch(slot) else {
        return;
    };
    let key = &mut scratch.bounce_key;
    key.family = ep.family;
    key._pad = 0;
    key.port = ep.port;
    addr::copy(&mut key.addr, &ep.addr);
    let until = now_ns().wrapping_add(policy.expect_timeout_ns);
    let _ = FTPCT_BOUNCE.insert(&*key, &until, BPF_ANY);
}

/// Whether the local host's SYN `info` goes to a blocked endpoint.
#[inline(always)]
pub fn blocked(info: &PacketInfo) -> bool {
    let key = BounceKey::new(info.family, info.dst, info.dport);
    // SAFETY: read-only look at a value from a successful lookup.
    match unsafe { FTPCT_BOUNCE.get(key) } {
        Some(until) => now_ns() <= *until,
        None => false,
    }
}
