//! Moving a control stream after `--nat-rewrite` changed a segment's
//! length (see `ftp_ebpf_common::nat::seqadj`): the local end's later
//! segments get moved sequence numbers on egress (TC), and the peer's
//! acknowledgments and SACK blocks of that stream are moved back on
//! ingress (XDP) before anything reads them, ftpct's own sequence tracking
//! included. Only connections with `--nat-rewrite` pay the lookup.

use core::ffi::c_void;

use aya_ebpf::{
    EbpfContext,
    helpers::generated::{bpf_csum_diff, bpf_loop, bpf_skb_store_bytes, bpf_xdp_store_bytes},
    programs::{TcContext, XdpContext},
};
use ftp_ebpf_common::{
    checksum,
    control::{ControlKey, ControlState, control_flags},
    nat::{REWRITE_MAX, seqadj::SeqAdjust},
    policy::POLICY_NAT_REWRITE,
};

use super::rewrite::l4_csum;
use crate::{
    headers::{PacketInfo, tcp_flags},
    maps::FTPCT_CONTROL,
    packet::{Packet, helper_len},
    shared::{ScratchSlot, ready_policy, scratch},
};

/// Offsets in the TCP header.
const TCP_SEQ_OFF: u32 = 4;
const TCP_ACK_OFF: u32 = 8;
const TCP_CSUM_OFF: u32 = 16;
const TCP_OPTIONS_OFF: u32 = 20;
/// TCP option kinds.
const TCPOPT_EOL: u8 = 0;
const TCPOPT_NOP: u8 = 1;
const TCPOPT_SACK: u8 = 5;
/// Options walked at most (40 bytes of options hold no more).
const MAX_OPTIONS: u32 = 40;
/// Bytes of TCP options at most, rounded up to a power of two.
const MAX_OPTIONS_LEN: u32 = 64;
/// SACK blocks an option holds at most.
const MAX_SACK_BLOCKS: usize = 4;

/// Offset to add to the sequence number of a segment the local end sends
/// on a control connection (`to_control`: as its client), computed before
/// the segment is parsed (a FIN ends the connection's state).
#[inline(never)]
pub fn seq_offset(info: &PacketInfo, to_control: bool, from_control: bool) -> i32 {
    if !to_control && !from_control {
        return 0;
    }
    let local_client = to_control;
    let key = info.control_key(local_client);
    lookup(&key, local_client).map_or(0, |adj| adj.seq_offset(info.seq))
}

/// Moves the sequence number of the segment in `ctx` by `off`.
#[inline(never)]
pub fn move_seq(ctx: &TcContext, info: &PacketInfo, off: i32) {
    let at = u32::from(info.tcp_off) + TCP_SEQ_OFF;
    let old = info.seq.to_be();
    let new = info.seq.wrapping_add(off as u32).to_be();
    // SAFETY: 4 bytes from this stack variable, at an offset the helper checks.
    let stored =
        unsafe { bpf_skb_store_bytes(ctx.as_ptr().cast(), at, (&new as *const u32).cast(), 4, 0) }
            == 0;
    if stored {
        l4_csum(ctx, info, old.into(), new.into(), 4);
    }
}

/// A segment from the remote end of a control connection (`from_control`:
/// the remote is its server): its acknowledgment (and SACK blocks) of the
/// local end's moved stream are moved back, in the packet and in `info`.
#[inline(never)]
pub fn unmove_ack(ctx: &XdpContext, info: &mut PacketInfo, to_control: bool, from_control: bool) {
    if info.flags & tcp_flags::ACK == 0 || (!to_control && !from_control) {
        return;
    }
    let local_client = from_control;
    // From the remote end: its client unless the local end is the client.
    let key = info.control_key(!local_client);
    let Some(adj) = lookup(&key, local_client) else {
        return;
    };
    let tcp = u32::from(info.tcp_off);
    let ack = info.ack.wrapping_sub(adj.ack_offset(info.ack) as u32);
    if replace32(ctx, tcp, tcp + TCP_ACK_OFF, ack) {
        info.ack = ack;
    }
    unmove_sack(ctx, tcp, info.payload_off, adj);
}

/// What the option walk needs; lives on the caller's stack.
#[repr(C)]
struct SackWalk {
    opts: *mut [u8; 2 * REWRITE_MAX],
    adj: SeqAdjust,
    /// Offset of the next option.
    pos: u32,
    /// Bytes of options.
    len: u32,
}

/// Moves back the edges of the SACK blocks in the options of the segment
/// whose TCP header is at `tcp` (the payload at `payload`): the options
/// are copied to scratch memory, walked with `bpf_loop` (one option per
/// step: a loop over variable-length options multiplies the verifier's
/// paths past its limit), and written back with the checksum corrected.
#[inline(always)]
fn unmove_sack(ctx: &XdpContext, tcp: u32, payload: u32, adj: SeqAdjust) {
    let len = payload.saturating_sub(tcp + TCP_OPTIONS_OFF);
    if len == 0 || len > MAX_OPTIONS_LEN {
        return;
    }
    let Some(scratch) = scratch(ScratchSlot::Packet) else {
        return;
    };
    let buf = &mut scratch.rewrite;
    let len = helper_len(len, MAX_OPTIONS_LEN);
    let at = tcp + TCP_OPTIONS_OFF;
    if !Packet::load_bytes(ctx, at, buf.old.as_mut_ptr(), len) {
        return;
    }
    buf.new = buf.old;
    let mut walk = SackWalk {
        opts: &mut buf.new,
        adj,
        pos: 0,
        len,
    };
    // SAFETY: the callback only dereferences the pointers in `walk`, which
    // point to map memory and this frame for the whole call.
    unsafe {
        bpf_loop(
            MAX_OPTIONS,
            sack_step as *mut c_void,
            (&mut walk as *mut SackWalk).cast(),
            0,
        )
    };
    // SAFETY: both buffers hold more than `len` (a multiple of 4) bytes.
    let diff = unsafe {
        bpf_csum_diff(
            buf.old.as_mut_ptr().cast(),
            len,
            buf.new.as_mut_ptr().cast(),
            len,
            0,
        )
    };
    if diff <= 0 {
        return;
    }
    let Some(check) = load::<2>(ctx, tcp + TCP_CSUM_OFF) else {
        return;
    };
    // The difference is a sum of words as loaded from memory (native
    // order): the checksum joins it in the same order.
    let check = checksum::update(u16::from_ne_bytes(check), diff as u64).to_ne_bytes();
    let len = helper_len(len, MAX_OPTIONS_LEN);
    // SAFETY: `len` bytes from the scratch buffer; the helper checks the offset.
    let stored = unsafe {
        bpf_xdp_store_bytes(ctx.as_ptr().cast(), at, buf.new.as_mut_ptr().cast(), len) == 0
    };
    if stored {
        store(ctx, tcp + TCP_CSUM_OFF, &check);
    }
}

/// `bpf_loop` callback: the option at `walk.pos`; 1 stops the walk.
extern "C" fn sack_step(_index: u64, walk: *mut c_void) -> i64 {
    // SAFETY: `walk` is the SackWalk `unmove_sack` passed to bpf_loop.
    let walk = unsafe { &mut *(walk as *mut SackWalk) };
    // SAFETY: points to the scratch buffer for the whole walk.
    let opts = unsafe { &mut *walk.opts };
    let mask = 2 * REWRITE_MAX - 1;
    let pos = walk.pos as usize;
    if walk.pos >= walk.len {
        return 1;
    }
    match opts[pos & mask] {
        TCPOPT_EOL => return 1,
        TCPOPT_NOP => {
            walk.pos += 1;
            return 0;
        }
        _ => {}
    }
    let kind = opts[pos & mask];
    let len = u32::from(opts[(pos + 1) & mask]);
    if len < 2 || walk.pos + len > walk.len {
        return 1;
    }
    if kind == TCPOPT_SACK {
        for b in 0..MAX_SACK_BLOCKS {
            let edge = pos + 2 + b * 8;
            if edge + 8 > pos + len as usize {
                break;
            }
            for e in [edge, edge + 4] {
                let v = u32::from_be_bytes([
                    opts[e & mask],
                    opts[(e + 1) & mask],
                    opts[(e + 2) & mask],
                    opts[(e + 3) & mask],
                ]);
                let [a, b, c, d] = v.wrapping_sub(walk.adj.ack_offset(v) as u32).to_be_bytes();
                opts[e & mask] = a;
                opts[(e + 1) & mask] = b;
                opts[(e + 2) & mask] = c;
                opts[(e + 3) & mask] = d;
            }
        }
    }
    walk.pos += len;
    0
}

/// The adjustment of `key`'s local stream, if `--nat-rewrite` is on, the
/// connection's local end is its client (`local_client`) or server as
/// asked, and the stream has moved.
#[inline(always)]
fn lookup(key: &ControlKey, local_client: bool) -> Option<SeqAdjust> {
    if ready_policy()?.flags & POLICY_NAT_REWRITE == 0 {
        return None;
    }
    let side = if local_client {
        control_flags::LOCAL_CLIENT
    } else {
        control_flags::LOCAL_SERVER
    };
    // SAFETY: read-only look at a value from a successful lookup.
    let state: &ControlState = unsafe { FTPCT_CONTROL.get(key) }?;
    (state.flags & side != 0 && state.seqadj.active()).then_some(state.seqadj)
}

/// `N` bytes of the frame at `at`.
#[inline(always)]
fn load<const N: usize>(ctx: &XdpContext, at: u32) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    Packet::load_bytes(ctx, at, out.as_mut_ptr(), N as u32).then_some(out)
}

/// Writes `value` (big-endian) over the 4 bytes at `at` of the TCP segment
/// whose header is at `tcp`, and updates its checksum for the change
/// (RFC 1624). Through the helpers: the offsets vary with the options.
#[inline(always)]
fn replace32(ctx: &XdpContext, tcp: u32, at: u32, value: u32) -> bool {
    let (Some(old), Some(check)) = (load::<4>(ctx, at), load::<2>(ctx, tcp + TCP_CSUM_OFF)) else {
        return false;
    };
    let new = value.to_be_bytes();
    let diff = checksum::diff32(u32::from_be_bytes(old), value);
    let check = checksum::update(u16::from_be_bytes(check), diff).to_be_bytes();
    store(ctx, at, &new) && store(ctx, tcp + TCP_CSUM_OFF, &check)
}

/// Writes `bytes` into the frame at `at`.
#[inline(always)]
fn store<const N: usize>(ctx: &XdpContext, at: u32, bytes: &[u8; N]) -> bool {
    // SAFETY: N bytes from the array; the helper checks the offset.
    unsafe {
        bpf_xdp_store_bytes(
            ctx.as_ptr().cast(),
            at,
            bytes.as_ptr().cast_mut().cast(),
            N as u32,
        ) == 0
    }
}
