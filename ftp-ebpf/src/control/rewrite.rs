//! `--nat-rewrite`: an announcement naming the host's local address leaves
//! naming its external one (see `ftp_ebpf_common::nat`): a local server's
//! `227`, a local client's `PORT` and `EPRT` (`|1|` and `|2|`, NPTv6). Correlation asks for it
//! when the announcement passes the rules (`want`), the feed places it in
//! the stream once it is complete (`place`), and the TC program writes it
//! into every segment that carries it, retransmissions included (`write`).
//!
//! A `227` is replaced whole by a reply of its own length: nothing else in
//! the connection changes. A command has no text to shorten, so its segment
//! changes length and the rest of the stream moves (`seqadj`).

use core::ffi::c_void;

use aya_ebpf::{
    EbpfContext,
    bindings::{__sk_buff, BPF_F_PSEUDO_HDR},
    helpers::generated::{
        bpf_csum_diff, bpf_l3_csum_replace, bpf_l4_csum_replace, bpf_loop, bpf_skb_change_tail,
        bpf_skb_store_bytes,
    },
    programs::TcContext,
};
use ftp_ebpf_common::{
    Addr, checksum,
    control::{ControlKey, ControlState, control_flags},
    counters::Counter,
    family,
    nat::{
        NatRewrite, REWRITE_MAX,
        render::{Rendering, kind},
        rewrite_stage,
    },
    parser::Verb,
    policy::{POLICY_NAT_REWRITE, Policy},
};

use crate::{
    addr,
    counters::count,
    external,
    headers::{self, PacketInfo},
    maps::RewriteBuf,
    packet::{Packet, helper_len},
    shared::{ScratchSlot, scratch},
};

/// Offset of the checksum in the TCP header.
const TCP_CSUM_OFF: u32 = 16;
/// Offsets of the total length and the checksum in the IPv4 header, and of
/// the payload length in the IPv6 header.
const IPV4_TOT_LEN_OFF: u32 = 2;
const IPV4_CSUM_OFF: u32 = 10;
const IPV6_PAYLOAD_LEN_OFF: u32 = 4;
/// Bytes the rewrite buffers hold: a command and what follows it in its
/// segment.
const BUF: u32 = 2 * REWRITE_MAX as u32;

/// An announcement of `port` on the local address `named` (`local`, the
/// connection's local end) passed the rules: with `--nat-rewrite` and an
/// external address for it, it is to name that address instead, written
/// as `kind`.
#[inline(always)]
fn want_as(
    state: &mut ControlState,
    policy: &Policy,
    family_of: u8,
    local: &Addr,
    named: &Addr,
    port: u16,
    kind: u8,
) {
    // An encrypted announcement is ciphertext on the wire: nothing to write.
    if policy.flags & POLICY_NAT_REWRITE == 0
        || state.flags & control_flags::TLS != 0
        || !addr::same(named, local)
    {
        return;
    }
    let Some(external) = external::of(family_of, local, ScratchSlot::Packet) else {
        return;
    };
    addr::copy(&mut state.nat.addr, external);
    state.nat.port = port;
    state.nat.kind = kind;
    state.nat.stage = rewrite_stage::WANTED;
}

/// A local server's `227` announcing `port` on `named` (IPv4 only: a
/// `227` on an IPv6 connection names no address of its own).
#[inline(always)]
pub fn want(state: &mut ControlState, key: &ControlKey, policy: &Policy, named: &Addr, port: u16) {
    if key.family != family::V4 {
        return;
    }
    want_as(
        state,
        policy,
        key.family,
        &key.server,
        named,
        port,
        kind::REPLY_227,
    );
}

/// A local client's accepted `PORT`/`EPRT` (`verb`) announcing `port` on `named`.
#[inline(always)]
pub fn want_command(
    state: &mut ControlState,
    key: &ControlKey,
    policy: &Policy,
    verb: Verb,
    named: &Addr,
    port: u16,
) {
    let kind = if verb == Verb::Port {
        kind::PORT
    } else if key.family == family::V6 {
        kind::EPRT_V6
    } else {
        kind::EPRT_V4
    };
    want_as(state, policy, key.family, &key.client, named, port, kind);
}

/// The announcement `want` asked for completed `through` bytes into the
/// segment starting at `seg_seq`, read by parser `dir`: records where it
/// lies, unless it began in an earlier segment (already sent as it was) or
/// cannot be rewritten.
#[inline(always)]
pub fn place(state: &mut ControlState, dir: usize, seg_seq: u32, through: u32) {
    let len = u32::from(state.parsers[dir & 1].unit_len());
    let nat = &mut state.nat;
    nat.stage = rewrite_stage::NONE;
    // A line the parser lost bytes of has `unit_len` u16::MAX: never placed.
    if len > through {
        count(Counter::NatRewriteSplit);
        return;
    }
    let fits = if nat.kind == kind::REPLY_227 {
        Rendering::reply_227(len as usize, v4(&nat.addr), nat.port).is_some()
    } else {
        len as usize <= REWRITE_MAX
    };
    if !fits {
        count(Counter::NatRewriteUnfit);
        return;
    }
    nat.seq = seg_seq.wrapping_add(through - len);
    nat.len = len as u16;
    nat.stage = rewrite_stage::PLACED;
}

/// The rewritten text's layout.
#[inline(always)]
fn layout(nat: &NatRewrite) -> Option<Rendering> {
    if nat.kind == kind::REPLY_227 {
        Rendering::reply_227(usize::from(nat.len), v4(&nat.addr), nat.port)
    } else {
        Some(Rendering::command(nat.kind, &nat.addr, nat.port))
    }
}

/// The IPv4 address in the first 4 bytes of `addr`.
#[inline(always)]
fn v4(addr: &Addr) -> [u8; 4] {
    [addr[0], addr[1], addr[2], addr[3]]
}

/// Zeroes both byte buffers of `buf`: the word sums over them must see
/// zeros past what is written. A global BPF function (see `parse_step`):
/// its loop is verified once, not once per path of the caller.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ftpct_rewrite_reset(buf: *mut RewriteBuf) -> i32 {
    // SAFETY: the verifier checks every access through `buf` against its
    // BTF size; a null pointer is handled.
    let Some(buf) = (unsafe { buf.as_mut() }) else {
        return 0;
    };
    for i in 0..buf.new.len() {
        buf.new[i] = 0;
        buf.old[i] = 0;
    }
    1
}

/// Lays out the placed announcement in `buf.layout`; 1 on success. A
/// global BPF function (see `parse_step`): verified once, so its branches
/// (one per digit count) do not multiply the copy loop's.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ftpct_rewrite_layout(buf: *mut RewriteBuf, nat: *const NatRewrite) -> i32 {
    // SAFETY: the verifier checks every access through these pointers
    // against their BTF sizes; null pointers are handled.
    let (Some(buf), Some(nat)) = (unsafe { buf.as_mut() }, unsafe { nat.as_ref() }) else {
        return 0;
    };
    match layout(nat) {
        Some(layout) => {
            buf.layout = layout;
            1
        }
        None => 0,
    }
}

/// What `copy_byte` needs; lives on the caller's stack.
#[repr(C)]
struct CopyCtx {
    buf: *mut RewriteBuf,
    skip: u32,
    n: u32,
    old_at: u32,
    tail: u32,
}

/// Renders the placed announcement into `buf.new` (zeroed by
/// `ftpct_rewrite_reset`): `n` bytes of its text from `skip`, then the
/// `tail` bytes of `buf.old` from `old_at` (`moved` is `old_at | tail <<
/// 16`). A byte per `bpf_loop` step: the callback is verified once, where
/// a loop comparing its counter with these bounds would be verified once
/// per bound it learns.
#[inline(always)]
fn render(buf: &mut RewriteBuf, nat: &NatRewrite, skip: u32, n: u32, moved: u32) -> bool {
    if ftpct_rewrite_layout(buf, nat) == 0 {
        return false;
    }
    let mut ctx = CopyCtx {
        buf,
        skip,
        n,
        old_at: moved & 0xffff,
        tail: moved >> 16,
    };
    let count = (n + ctx.tail).min(BUF);
    // SAFETY: the callback only dereferences the pointer in `ctx`, to map
    // memory, for the whole call.
    let steps = unsafe {
        bpf_loop(
            count,
            copy_byte as *mut c_void,
            (&mut ctx as *mut CopyCtx).cast(),
            0,
        )
    };
    steps == i64::from(count)
}

/// `bpf_loop` callback: byte `index` of `buf.new`.
extern "C" fn copy_byte(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the CopyCtx `render` passed to bpf_loop, and its
    // pointer is to this CPU's scratch buffers.
    let (ctx, buf) = unsafe {
        let ctx = &*(ctx as *const CopyCtx);
        (ctx, &mut *ctx.buf)
    };
    let i = index as u32;
    // `render` runs n + tail steps: past the text, the tail.
    let b = if i < ctx.n {
        ftpct_render_byte(&buf.layout, ctx.skip + i) as u8
    } else {
        buf.old[((ctx.old_at + i - ctx.n) & (BUF - 1)) as usize]
    };
    buf.new[(i & (BUF - 1)) as usize] = b;
    0
}

/// Byte `i` of the text `layout` describes. A global BPF function: the
/// verifier checks it once for any `i`, not once per byte.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ftpct_render_byte(layout: *const Rendering, i: u32) -> u32 {
    // SAFETY: as above.
    match unsafe { layout.as_ref() } {
        Some(layout) => u32::from(layout.byte(i as usize & (REWRITE_MAX - 1))),
        None => 0,
    }
}

/// Writes the placed announcement into the part of it the segment in
/// `skb` carries, if any, and corrects the checksums (and, for a command,
/// the lengths and the stream's sequence adjustment). `info` describes the
/// segment, sent by the local end on `state`'s connection.
///
/// A global BPF function: verified once, whatever state its caller reaches
/// it in. As a static function Linux 6.1's verifier walked it again for
/// each, past its million-instruction limit.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ftpct_nat_write(
    skb: *mut __sk_buff,
    info: *const PacketInfo,
    state: *mut ControlState,
) -> i32 {
    // SAFETY: the verifier checks every access through these pointers
    // against their BTF types (`skb` is the program's context); null
    // pointers are handled.
    let (Some(info), Some(state)) = (unsafe { info.as_ref() }, unsafe { state.as_mut() }) else {
        return 0;
    };
    write(&TcContext::new(skb), info, state);
    0
}

/// See `ftpct_nat_write`.
#[inline(always)]
fn write(ctx: &TcContext, info: &PacketInfo, state: &mut ControlState) {
    let stage = state.nat.stage();
    if stage < rewrite_stage::PLACED || info.payload_len == 0 {
        return;
    }
    let done = if state.nat.kind == kind::REPLY_227 {
        in_place(ctx, info, &state.nat)
    } else {
        resized(ctx, info, state)
    };
    if done {
        count(if stage == rewrite_stage::WRITTEN {
            Counter::NatRewriteRetransmitted
        } else {
            Counter::NatRewritten
        });
        state.nat.set_stage(rewrite_stage::WRITTEN);
    }
}

/// A `227`: its bytes in this segment replaced by those of the same length.
#[inline(always)]
fn in_place(ctx: &TcContext, info: &PacketInfo, nat: &NatRewrite) -> bool {
    // Where the reply starts relative to the segment; the overlap of the two.
    let len = i64::from(nat.len);
    let rel = i64::from(nat.seq.wrapping_sub(info.seq) as i32);
    let seg_len = i64::from(info.payload_len);
    if rel >= seg_len || rel + len <= 0 {
        return false;
    }
    let start = if rel > 0 { rel } else { 0 };
    let end = if rel + len < seg_len {
        rel + len
    } else {
        seg_len
    };
    let (skip, n) = ((start - rel) as u32, (end - start) as u32);
    if n == 0 || n as usize > REWRITE_MAX {
        return false;
    }
    let Some(buf) = buffers() else {
        return false;
    };
    if ftpct_rewrite_reset(buf) == 0 || !render(buf, nat, skip, n, 0) {
        return false;
    }
    let at = info.payload_off + start as u32;
    let n = helper_len(n, REWRITE_MAX as u32);
    if !Packet::load_bytes(ctx, at, buf.old.as_mut_ptr(), n) {
        return false;
    }
    let Some(diff) = payload_diff(buf, n, n, start as u32) else {
        return false;
    };
    store(ctx, at, buf, n) && l4_csum(ctx, info, 0, diff.into(), 0)
}

/// A `PORT`/`EPRT`: the segment carrying it whole gets the new command and
/// a new length; later segments of the stream move by the difference.
#[inline(always)]
fn resized(ctx: &TcContext, info: &PacketInfo, state: &mut ControlState) -> bool {
    let nat = &state.nat;
    let rel = nat.seq.wrapping_sub(info.seq) as i32;
    let len = i32::from(nat.len);
    let seg_len = info.payload_len as i32;
    // Only a segment carrying the whole command; a retransmission cut
    // elsewhere goes out as it was (as with nf_nat_ftp).
    if rel < 0 || rel + len > seg_len {
        return false;
    }
    // TCP's copy (for retransmission) stays intact: GSO would cut a
    // resized super-segment where the original cut was.
    // SAFETY: reading a field of the context the kernel passed.
    if unsafe { (*ctx.as_ptr().cast::<__sk_buff>()).gso_segs } > 1 {
        count(Counter::NatRewriteUnfit);
        return false;
    }
    let old_n = (seg_len - rel) as u32;
    let Some(layout) = layout(nat) else {
        return false;
    };
    let new_len = u32::from(layout.len);
    let delta = new_len as i32 - len;
    let new_n = (old_n as i32 + delta) as u32;
    if old_n > BUF || new_n > BUF || new_n == 0 {
        count(Counter::NatRewriteUnfit);
        return false;
    }
    let Some(buf) = buffers() else {
        return false;
    };
    let at = info.payload_off + rel as u32;
    let loaded = ftpct_rewrite_reset(buf) != 0
        && Packet::load_bytes(ctx, at, buf.old.as_mut_ptr(), helper_len(old_n, BUF));
    // What followed the command in its segment moves with it.
    let tail = old_n - u32::from(nat.len);
    if !loaded || !render(buf, nat, 0, new_len, u32::from(nat.len) | tail << 16) {
        return false;
    }
    let Some(diff) = payload_diff(buf, old_n, new_n, rel as u32) else {
        return false;
    };
    let Some(l3) = headers::l3_offset(ctx) else {
        return false;
    };
    let skb = ctx.as_ptr().cast();
    let skb_len = ctx.len();
    // SAFETY: the helper checks the new length against the packet.
    if unsafe { bpf_skb_change_tail(skb, (skb_len as i32 + delta) as u32, 0) } != 0 {
        return false;
    }
    if !store(ctx, at, buf, new_n) || !ip_length(ctx, info, l3, delta) {
        return false;
    }
    let tcp_len = info.payload_off - u32::from(info.tcp_off) + info.payload_len;
    let (old_tcp, new_tcp) = (tcp_len as u16, (tcp_len as i32 + delta) as u16);
    let pseudo = BPF_F_PSEUDO_HDR as u64 | 2;
    if !l4_csum(ctx, info, 0, diff.into(), 0)
        || !l4_csum(
            ctx,
            info,
            u64::from(old_tcp.to_be()),
            u64::from(new_tcp.to_be()),
            pseudo,
        )
    {
        return false;
    }
    state.seqadj.record(info.seq, delta);
    true
}

/// The IP header's length field (and IPv4 checksum) after the packet
/// changed by `delta` bytes.
#[inline(always)]
fn ip_length(ctx: &TcContext, info: &PacketInfo, l3: u32, delta: i32) -> bool {
    let off = if info.family == family::V4 {
        l3 + IPV4_TOT_LEN_OFF
    } else {
        l3 + IPV6_PAYLOAD_LEN_OFF
    };
    let mut old = [0u8; 2];
    if !Packet::load_bytes(ctx, off, old.as_mut_ptr(), 2) {
        return false;
    }
    let new = (i32::from(u16::from_be_bytes(old)) + delta) as u16;
    let new = new.to_be_bytes();
    let skb = ctx.as_ptr().cast();
    // SAFETY: 2 bytes from this stack array, at an offset the helper checks.
    if unsafe { bpf_skb_store_bytes(skb, off, new.as_ptr().cast(), 2, 0) } != 0 {
        return false;
    }
    if info.family != family::V4 {
        return true;
    }
    let (old, new) = (u16::from_ne_bytes(old), u16::from_ne_bytes(new));
    // SAFETY: as above, for the IPv4 header checksum.
    unsafe { bpf_l3_csum_replace(skb, l3 + IPV4_CSUM_OFF, old.into(), new.into(), 2) == 0 }
}

/// This CPU's rewrite buffers.
#[inline(always)]
fn buffers() -> Option<&'static mut RewriteBuf> {
    Some(&mut scratch(ScratchSlot::Packet)?.rewrite)
}

/// The checksum difference between `old_n` bytes of `buf.old` and `new_n`
/// of `buf.new` (both zero past those) at payload offset `at`, folded and
/// in the byte order of its offset.
#[inline(always)]
fn payload_diff(buf: &mut RewriteBuf, old_n: u32, new_n: u32, at: u32) -> Option<u32> {
    // Whole words: the zeros past the ends add nothing.
    let old_w = (old_n + 3) & (BUF - 4);
    let new_w = (new_n + 3) & (BUF - 4);
    // SAFETY: both buffers hold BUF >= the word-rounded sizes.
    let diff = unsafe {
        bpf_csum_diff(
            buf.old.as_mut_ptr().cast(),
            old_w,
            buf.new.as_mut_ptr().cast(),
            new_w,
            0,
        )
    };
    (diff >= 0).then(|| u32::from(checksum::at_offset(checksum::fold(diff as u64), at)))
}

/// Stores `n` (1..=BUF) bytes of `buf.new` at `at`.
#[inline(always)]
fn store(ctx: &TcContext, at: u32, buf: &RewriteBuf, n: u32) -> bool {
    let n = helper_len(n, BUF);
    // SAFETY: the helper checks offset and length against the packet and
    // unclones it first (TCP keeps the original for retransmission); the
    // source holds BUF >= `n` bytes.
    unsafe { bpf_skb_store_bytes(ctx.as_ptr().cast(), at, buf.new.as_ptr().cast(), n, 0) == 0 }
}

/// `bpf_l4_csum_replace` on the segment's TCP checksum.
#[inline(always)]
pub fn l4_csum(ctx: &TcContext, info: &PacketInfo, from: u64, to: u64, flags: u64) -> bool {
    let off = u32::from(info.tcp_off) + TCP_CSUM_OFF;
    // SAFETY: the helper checks the offset; with flags 0 `to` is a
    // difference, which it leaves alone where the checksum is computed
    // later (offload); with BPF_F_PSEUDO_HDR it updates the pseudo-header
    // sum such a checksum starts from, too.
    unsafe { bpf_l4_csum_replace(ctx.as_ptr().cast(), off, from, to, flags) == 0 }
}
