//! `--nat-rewrite`: a local server's `227` naming its local address leaves
//! naming the external one (see `ftp_ebpf_common::nat`). Correlation asks
//! for it when the `227` passes the rules (`want`), the feed places the
//! reply in the stream once it is complete (`place`), and the TC program
//! writes it into every segment that carries it, retransmissions included
//! (`write`). The replacement has the reply's own length, so the stream
//! keeps its length and no sequence or acknowledgment number changes.

use aya_ebpf::{
    EbpfContext,
    helpers::generated::{bpf_csum_diff, bpf_l4_csum_replace, bpf_skb_store_bytes},
    programs::TcContext,
};
use ftp_ebpf_common::{
    Addr,
    control::{ControlKey, ControlState},
    counters::Counter,
    family,
    nat::{NatRewrite, REWRITE_MAX, Render227, min_227_len, rewrite_stage},
    policy::{POLICY_NAT_REWRITE, Policy},
};

use crate::{
    addr,
    counters::count,
    external,
    headers::PacketInfo,
    maps::{FTPCT_SCRATCH, RewriteBuf},
    packet::Packet,
};

/// Offset of the checksum in the TCP header.
const TCP_CSUM_OFF: u32 = 16;

/// A `227` announcing `port` on the local address `named` passed the rules
/// on a local server's connection: with `--nat-rewrite` and an external
/// address for it, it is to name that address instead.
#[inline(always)]
pub fn want(state: &mut ControlState, key: &ControlKey, policy: &Policy, named: &Addr, port: u16) {
    if policy.flags & POLICY_NAT_REWRITE == 0
        || key.family != family::V4
        || !addr::same(named, &key.server)
    {
        return;
    }
    let Some(external) = external::of(key.family, &key.server) else {
        return;
    };
    state.nat.addr = [external[0], external[1], external[2], external[3]];
    state.nat.port = port;
    state.nat.stage = rewrite_stage::WANTED;
}

/// The reply `want` asked for completed `through` bytes into the segment
/// starting at `seg_seq`: records where it lies, unless it began in an
/// earlier segment (already sent as it was) or cannot be rewritten in its
/// own length.
#[inline(always)]
pub fn place(state: &mut ControlState, seg_seq: u32, through: u32) {
    let len = u32::from(state.parsers[1].unit_len());
    let nat = &mut state.nat;
    nat.stage = rewrite_stage::NONE;
    // A reply the parser lost bytes of has `unit_len` u16::MAX: never placed.
    if len > through {
        count(Counter::NatRewriteSplit);
        return;
    }
    if len as usize > REWRITE_MAX || (len as usize) < min_227_len(nat.addr, nat.port) {
        count(Counter::NatRewriteUnfit);
        return;
    }
    nat.seq = seg_seq.wrapping_add(through - len);
    nat.len = len as u16;
    nat.stage = rewrite_stage::PLACED;
}

/// Lays out the placed reply in `buf.layout` and copies `n` of its bytes
/// from `skip` to the start of `buf.new`, zeroing the rest; 1 on success.
/// A global BPF function (see `parse_step`): verified once, on its own.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ftpct_render_rewrite(
    buf: *mut RewriteBuf,
    nat: *const NatRewrite,
    skip: u32,
    n: u32,
) -> i32 {
    // SAFETY: the verifier checks every access through these pointers
    // against their BTF sizes; null pointers are handled.
    let (Some(buf), Some(nat)) = (unsafe { buf.as_mut() }, unsafe { nat.as_ref() }) else {
        return 0;
    };
    let Some(layout) = Render227::new(usize::from(nat.len), nat.addr, nat.port) else {
        return 0;
    };
    buf.layout = layout;
    for i in 0..buf.new.len() {
        buf.new[i] = if (i as u32) < n {
            ftpct_render_byte(&buf.layout, skip + i as u32) as u8
        } else {
            0
        };
    }
    1
}

/// Byte `i` of the reply `layout` describes. A global BPF function: the
/// verifier checks it once for any `i`, not once per byte.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ftpct_render_byte(layout: *const Render227, i: u32) -> u32 {
    // SAFETY: as above.
    match unsafe { layout.as_ref() } {
        Some(layout) => u32::from(layout.byte(i as usize & (REWRITE_MAX - 1))),
        None => 0,
    }
}

/// Writes the placed reply into the part of it `ctx`'s segment carries, if
/// any, and corrects the TCP checksum. `info` describes the segment, sent
/// by the local server on `state`'s connection.
#[inline(never)]
pub fn write(ctx: &TcContext, info: &PacketInfo, state: &mut ControlState) {
    let nat = &mut state.nat;
    if nat.stage < rewrite_stage::PLACED || info.payload_len == 0 {
        return;
    }
    // Where the reply starts relative to the segment; the overlap of the two.
    let len = i64::from(nat.len);
    let rel = i64::from(nat.seq.wrapping_sub(info.seq) as i32);
    let seg_len = i64::from(info.payload_len);
    if rel >= seg_len || rel + len <= 0 {
        return;
    }
    let start = if rel > 0 { rel } else { 0 };
    let end = if rel + len < seg_len {
        rel + len
    } else {
        seg_len
    };
    let (skip, n) = ((start - rel) as u32, (end - start) as u32);
    if n == 0 || n as usize > REWRITE_MAX {
        return;
    }
    let Some(scratch) = FTPCT_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch from a successful lookup, used by this CPU only.
    let buf = unsafe { &mut (*scratch).rewrite };
    if ftpct_render_rewrite(buf, nat, skip, n) == 0 {
        return;
    }
    buf.old = [0; 2 * REWRITE_MAX];
    let at = info.payload_off + start as u32;
    // 1..=REWRITE_MAX again (it is already), in a form the verifier keeps
    // through the calls above: the helpers refuse an unbounded or zero size.
    let n = ((n - 1) & (REWRITE_MAX as u32 - 1)) + 1;
    if !Packet::load_bytes(ctx, at, buf.old.as_mut_ptr(), n) {
        return;
    }
    // Both buffers are zero past `n`, so summing whole words adds nothing.
    let words = (n + 3) & (2 * REWRITE_MAX as u32 - 4);
    // SAFETY: both buffers hold 2 * REWRITE_MAX >= `words` bytes.
    let diff = unsafe {
        bpf_csum_diff(
            buf.old.as_mut_ptr().cast(),
            words,
            buf.new.as_mut_ptr().cast(),
            words,
            0,
        )
    };
    if diff < 0 {
        return;
    }
    let skb = ctx.as_ptr().cast();
    // SAFETY: the helper checks offset and length against the packet and
    // unclones it first (TCP keeps the original for retransmission); the
    // source holds `n` bytes.
    if unsafe { bpf_skb_store_bytes(skb, at, buf.new.as_ptr().cast(), n, 0) } != 0 {
        return;
    }
    // SAFETY: as above; a difference (flags 0) at the TCP checksum, which the
    // helper leaves alone where the checksum is computed later (offload).
    unsafe {
        bpf_l4_csum_replace(
            skb,
            u32::from(info.tcp_off) + TCP_CSUM_OFF,
            0,
            u64::from(odd_shifted(fold(diff as u64), start as u32)),
            0,
        )
    };
    count(if nat.stage == rewrite_stage::WRITTEN {
        Counter::NatRewriteRetransmitted
    } else {
        Counter::NatRewritten
    });
    nat.stage = rewrite_stage::WRITTEN;
}

/// A ones'-complement sum folded to 16 bits.
#[inline(always)]
fn fold(mut sum: u64) -> u32 {
    for _ in 0..3 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u32
}

/// The sum of bytes that start at an odd offset of the TCP header (the
/// payload starts at an even one) is the byte swap of their sum as words.
#[inline(always)]
fn odd_shifted(sum: u32, offset: u32) -> u32 {
    if offset & 1 == 0 {
        sum
    } else {
        ((sum & 0xff) << 8) | (sum >> 8)
    }
}
