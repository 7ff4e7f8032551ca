//! Control connections: TCP sequence tracking per direction, the streaming
//! parser fed byte by byte through `bpf_loop`, request/reply correlation, and
//! the expectations that correlated replies create.
//!
//! A control connection's state is created only by the local end (its first
//! payload, or its SYN when the local host is the client), or seeded by user
//! space at attach. Nothing a remote peer sends can create one.

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_ktime_get_ns, generated::bpf_loop};
use ftp_ebpf_common::{
    Addr,
    control::{ControlKey, ControlState, PENDING_SLOTS, Pending, control_flags},
    counters::Counter,
    family,
    flow::expect_kind,
    parser::{Direction, LineKind, ParsedLine, Status, Verb},
    policy::{POLICY_ALLOW_LOW_PORTS, Policy},
};

use crate::{
    counters::count,
    expectations,
    headers::{PacketInfo, tcp_flags},
    maps::{CHUNK, FTPCT_CONTROL, FTPCT_POLICY, FTPCT_SCRATCH},
    packet::Packet,
    parse_step::{ftpct_feed_command, ftpct_feed_reply},
};

/// Payload bytes parsed per segment at most (`CHUNK` × this); the rest of a
/// longer segment is skipped and the parser resynchronised at the next line.
const MAX_CHUNKS: usize = 8;
const BPF_NOEXIST: u64 = 1;
/// Largest jump ahead in a control stream taken as a lost segment (a TCP
/// window without scaling); anything beyond is ignored as out of window.
const MAX_GAP: i32 = 65_535;
/// Lowest port an announcement may name unless policy allows lower ones.
const FIRST_UNPRIVILEGED_PORT: u16 = 1024;

/// Who sent the packet, which decides whether it may create control state.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Arrived from the network: never creates state.
    Remote,
    /// Sent by a local FTP client.
    LocalClient,
    /// Sent by a local FTP server.
    LocalServer,
}

/// Handles one packet of a control connection travelling in `dir`. Not
/// inlined: control packets are rare, and keeping this large body out of the
/// main program keeps the common path's registers and stack lean.
#[inline(never)]
pub fn on_packet<P: Packet>(pkt: &P, info: &PacketInfo, dir: Direction, origin: Origin) {
    count(Counter::ControlPackets);
    let key = control_key(info, dir);
    let state = match FTPCT_CONTROL.get_ptr_mut(key) {
        Some(state) => state,
        None => match create(&key, info, origin) {
            Some(state) => state,
            None => return,
        },
    };
    // SAFETY: pointer from a successful lookup of this program's map; each
    // direction's fields are written only by the program that sees it.
    let state = unsafe { &mut *state };
    state.last_seen_ns = unsafe { bpf_ktime_get_ns() };
    if info.flags & (tcp_flags::RST | tcp_flags::FIN) != 0 {
        // Only the local end's FIN or RST ends the state: it is genuine. One
        // from outside may be forged with any sequence number (the kernel
        // would ignore it); the state then lingers until the local end closes
        // too, or LRU eviction. A FIN's last words (`221 Goodbye`) announce
        // nothing either way.
        if origin != Origin::Remote {
            let _ = FTPCT_CONTROL.remove(key);
        }
        return;
    }
    let d = dir as usize & 1;
    let (synced, peer_synced) = if d == 0 {
        (control_flags::SEQ_C2S, control_flags::SEQ_S2C)
    } else {
        (control_flags::SEQ_S2C, control_flags::SEQ_C2S)
    };
    if origin != Origin::Remote
        && info.flags & tcp_flags::ACK != 0
        && state.flags & peer_synced == 0
    {
        // The local end's acknowledgment is exactly the peer's next sequence
        // number: sync the peer's direction from it, never from whatever a
        // remote packet claims first (which could be forged).
        state.next_seq[d ^ 1] = info.ack;
        state.flags |= peer_synced;
    }
    if info.flags & tcp_flags::SYN != 0 {
        state.next_seq[d] = info.seq.wrapping_add(1);
        state.flags |= synced;
        return;
    }
    if info.payload_len == 0 || state.flags & control_flags::TLS != 0 {
        return;
    }
    if state.flags & synced == 0 {
        state.next_seq[d] = info.seq;
        state.flags |= synced;
    }
    let ahead = info.seq.wrapping_sub(state.next_seq[d]) as i32;
    if ahead > MAX_GAP {
        // Far outside any window the peer could use: forged or garbage.
        // Ignoring it keeps the stream (and the command queue) intact.
        count(Counter::ControlOutOfWindow);
        return;
    }
    let start = if ahead > 0 {
        // Bytes are missing: drop the partial line, resume at the next one.
        count(Counter::ControlGaps);
        state.parsers[d].resync();
        0
    } else {
        let seen = ahead.unsigned_abs();
        if seen >= info.payload_len {
            count(Counter::ControlRetransmits);
            return;
        }
        seen
    };
    count(Counter::ControlPayloads);
    feed_payload(pkt, info, state, &key, dir, start);
    state.next_seq[d] = info.seq.wrapping_add(info.payload_len);
}

/// The control connection a packet belongs to, client side first.
#[inline(always)]
fn control_key(info: &PacketInfo, dir: Direction) -> ControlKey {
    match dir {
        Direction::ClientToServer => ControlKey {
            family: info.family,
            _pad0: 0,
            _pad1: 0,
            client_port: info.sport,
            server_port: info.dport,
            client: info.src,
            server: info.dst,
        },
        Direction::ServerToClient => ControlKey {
            family: info.family,
            _pad0: 0,
            _pad1: 0,
            client_port: info.dport,
            server_port: info.sport,
            client: info.dst,
            server: info.src,
        },
    }
}

/// Creates state for a control connection the local end is using.
#[inline(always)]
fn create(key: &ControlKey, info: &PacketInfo, origin: Origin) -> Option<*mut ControlState> {
    let flags = match origin {
        Origin::Remote => return None,
        // A server's first payload (its banner) proves the handshake completed.
        Origin::LocalServer if info.payload_len > 0 => control_flags::LOCAL_SERVER,
        Origin::LocalClient if info.payload_len > 0 || info.is_syn() => control_flags::LOCAL_CLIENT,
        _ => return None,
    };
    let scratch = FTPCT_SCRATCH.get_ptr(0)?;
    // SAFETY: per-CPU scratch from a successful lookup; `zero_control` is never
    // written, so it is all zeroes (a fresh state).
    let zero = unsafe { &(*scratch).zero_control };
    if FTPCT_CONTROL.insert(key, zero, BPF_NOEXIST).is_err() && FTPCT_CONTROL.get_ptr(key).is_none()
    {
        count(Counter::ControlMapFull);
        return None;
    }
    let state = FTPCT_CONTROL.get_ptr_mut(key)?;
    // SAFETY: pointer from a successful lookup.
    unsafe { (*state).flags |= flags };
    Some(state)
}

/// What the `bpf_loop` callback needs; lives on the caller's stack.
#[repr(C)]
struct FeedCtx {
    chunk: *const u8,
    state: *mut ControlState,
    key: *const ControlKey,
    policy: *const Policy,
    max_line: u16,
    dir: u8,
}

/// Copies the payload from `start` in chunks and runs the parser over it.
#[inline(always)]
fn feed_payload<P: Packet>(
    pkt: &P,
    info: &PacketInfo,
    state: &mut ControlState,
    key: &ControlKey,
    dir: Direction,
    start: u32,
) {
    let (Some(scratch), Some(policy)) = (FTPCT_SCRATCH.get_ptr_mut(0), FTPCT_POLICY.get_ptr(0))
    else {
        return;
    };
    // SAFETY: per-CPU scratch from a successful lookup.
    let chunk = unsafe { (*scratch).chunk.as_mut_ptr() };
    let mut ctx = FeedCtx {
        chunk,
        state,
        key,
        policy,
        // SAFETY: pointer from a successful array lookup.
        max_line: unsafe { (*policy).max_line },
        dir: dir as u8,
    };
    let len = info.payload_len;
    let mut done = start;
    for _ in 0..MAX_CHUNKS {
        if done >= len {
            break;
        }
        // 1..=CHUNK in a form the verifier can prove (the helper rejects 0).
        let n = ((len - done - 1) & (CHUNK as u32 - 1)) + 1;
        let n = if len - done > CHUNK as u32 {
            CHUNK as u32
        } else {
            n
        };
        if !pkt.load_bytes(info.payload_off + done, chunk, n) {
            break;
        }
        // SAFETY: the callback only dereferences the pointers in `ctx`, all of
        // which point to map values or this stack frame for the whole call.
        unsafe {
            bpf_loop(
                n,
                feed_byte as *mut c_void,
                (&mut ctx as *mut FeedCtx).cast(),
                0,
            )
        };
        done += n;
    }
    if done < len {
        count(Counter::ControlTruncated);
        state.parsers[dir as usize & 1].resync();
    }
}

/// `bpf_loop` callback: feeds byte `index` of the chunk to the parser.
extern "C" fn feed_byte(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the FeedCtx passed to bpf_loop by `feed_payload`.
    let ctx = unsafe { &*(ctx as *const FeedCtx) };
    // SAFETY: the index is masked into the CHUNK-byte scratch buffer.
    let byte = unsafe { *ctx.chunk.add(index as usize & (CHUNK - 1)) };
    // SAFETY: `state` points to the control map value for this whole run.
    let state = unsafe { &mut *ctx.state };
    let d = ctx.dir as usize & 1;
    let parser: *mut _ = &mut state.parsers[d];
    let (byte, max_line) = (u32::from(byte), u32::from(ctx.max_line));
    let done = if d == 0 {
        ftpct_feed_command(parser, byte, max_line)
    } else {
        ftpct_feed_reply(parser, byte, max_line)
    };
    if done != 0 {
        ftpct_on_line(ctx.state, ctx.key, ctx.policy, d as u32);
    }
    0
}

/// Acts on a completed command or reply of direction `dir` (0: client to
/// server). A global BPF function like the parser's step (see `parse_step`):
/// verified once on its own, so the correlation and expectation logic does not
/// multiply with every call site's states.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ftpct_on_line(
    state: *mut ControlState,
    key: *const ControlKey,
    policy: *const Policy,
    dir: u32,
) -> i32 {
    // SAFETY: the verifier checks every access through these pointers against
    // their BTF sizes; null pointers are handled.
    let (Some(state), Some(key), Some(policy)) =
        (unsafe { state.as_mut() }, unsafe { key.as_ref() }, unsafe {
            policy.as_ref()
        })
    else {
        return 0;
    };
    // Read the result in place (no copy on the stack); the handlers touch only
    // the correlation fields of `state`, never the parser.
    let line: *const ParsedLine = state.parsers[dir as usize & 1].parsed();
    // SAFETY: `line` points into `state`, disjoint from what the handlers write.
    let line = unsafe { &*line };
    match line.kind {
        LineKind::Command => on_command(state, key, policy, line),
        LineKind::Reply => on_reply(state, key, policy, line),
        LineKind::None => {}
    }
    0
}

/// Queues a command for correlation with its reply.
#[inline(always)]
fn on_command(state: &mut ControlState, key: &ControlKey, policy: &Policy, line: &ParsedLine) {
    count(Counter::Commands);
    let seq = state.pushed;
    // Written in place: the slot is in map memory, not on the small stack.
    let slot: &mut Pending = &mut state.pending[seq as usize & (PENDING_SLOTS - 1)];
    slot.seq = seq;
    slot.verb = Verb::Other as u8;
    slot.port = 0;
    match line.verb {
        Verb::Pasv | Verb::Epsv | Verb::AuthTls => slot.verb = line.verb as u8,
        Verb::Port | Verb::Eprt if active_endpoint_ok(key, policy, line) => {
            slot.verb = line.verb as u8;
            slot.port = line.endpoint.port;
            slot.addr = line.endpoint.addr;
        }
        _ => {}
    }
    let (verb, port) = (slot.verb, slot.port);
    state.pushed = seq.wrapping_add(1);
    if state.flags & control_flags::LOCAL_CLIENT != 0
        && let Some(kind) = active_kind(verb)
    {
        // A local client's PORT left through egress: it is genuine, and some
        // servers (pyftpdlib) connect before they answer 200. So expect the
        // server's connection now; an error reply withdraws it (`on_reply`).
        expectations::create(state, key, port, kind, policy);
    }
}

/// The expectation kind of an accepted `PORT`/`EPRT` (as queued), if any.
#[inline(always)]
fn active_kind(verb: u8) -> Option<u8> {
    if verb == Verb::Port as u8 {
        Some(expect_kind::PORT)
    } else if verb == Verb::Eprt as u8 {
        Some(expect_kind::EPRT)
    } else {
        None
    }
}

/// Validates a `PORT`/`EPRT` endpoint against the control connection (no
/// bounce, same family, no privileged port), counting the reason if not.
#[inline(always)]
fn active_endpoint_ok(key: &ControlKey, policy: &Policy, line: &ParsedLine) -> bool {
    match line.status {
        Status::Ok => {}
        Status::Refused => {
            count(Counter::for_refusal(line.reason));
            return false;
        }
        Status::NotApplicable => return false,
    }
    let ep = &line.endpoint;
    let refusal = if ep.family != key.family {
        Some(Counter::RefusedFamilyMismatch)
    } else if !same_addr(&ep.addr, &key.client) {
        Some(Counter::RefusedBounce)
    } else if low_port(ep.port, policy) {
        Some(Counter::RefusedLowPort)
    } else {
        None
    };
    match refusal {
        Some(counter) => {
            count(counter);
            false
        }
        None => true,
    }
}

/// Pops the command a final reply answers and acts on the pair.
#[inline(always)]
fn on_reply(state: &mut ControlState, key: &ControlKey, policy: &Policy, line: &ParsedLine) {
    count(Counter::Replies);
    if line.code < 200 {
        // 1xx is preliminary; the command's final reply follows.
        return;
    }
    let announces = line.code == 227 || line.code == 229;
    if state.popped == state.pushed {
        // Unsolicited (greeting, 421); an announcement here answers nothing.
        if announces {
            count(Counter::RefusedUncorrelated);
        }
        return;
    }
    let seq = state.popped;
    let pending: *const Pending = &state.pending[seq as usize & (PENDING_SLOTS - 1)];
    // SAFETY: points into the map value `state` lives in; nothing below writes
    // the pending slots.
    let pending = unsafe { &*pending };
    state.popped = seq.wrapping_add(1);
    // A slot overwritten by a newer command (queue overflow) answers nothing.
    let verb = if pending.seq == seq {
        pending.verb
    } else {
        Verb::Other as u8
    };
    if announces {
        passive_reply(state, key, policy, line, verb);
    } else if line.code == 234 && verb == Verb::AuthTls as u8 {
        state.flags |= control_flags::TLS;
        count(Counter::ControlTls);
    } else if line.code >= 400
        && state.flags & control_flags::LOCAL_CLIENT != 0
        && let Some(kind) = active_kind(verb)
    {
        // The server refused the PORT/EPRT: it will not connect.
        expectations::withdraw(key, pending.port, kind);
    }
}

/// A `227`/`229` answering the popped command `verb`.
#[inline(always)]
fn passive_reply(
    state: &mut ControlState,
    key: &ControlKey,
    policy: &Policy,
    line: &ParsedLine,
    verb: u8,
) {
    let (wanted, kind) = if line.code == 227 {
        (Verb::Pasv as u8, expect_kind::PASV)
    } else {
        (Verb::Epsv as u8, expect_kind::EPSV)
    };
    if verb != wanted {
        count(Counter::RefusedUncorrelated);
        return;
    }
    match line.status {
        Status::Ok => {}
        Status::Refused => {
            count(Counter::for_refusal(line.reason));
            return;
        }
        Status::NotApplicable => {
            count(Counter::RefusedNoAddress);
            return;
        }
    }
    let ep = &line.endpoint;
    // 227 names an address: it must be the server's own end of the control
    // connection (and so IPv4). 229 names only a port.
    if line.code == 227 && (key.family != family::V4 || !same_addr(&ep.addr, &key.server)) {
        count(Counter::RefusedAddressMismatch);
        return;
    }
    if low_port(ep.port, policy) {
        count(Counter::RefusedLowPort);
        return;
    }
    if state.flags & control_flags::LOCAL_SERVER != 0 {
        expectations::create(state, key, ep.port, kind, policy);
    }
}

#[inline(always)]
fn low_port(port: u16, policy: &Policy) -> bool {
    port < FIRST_UNPRIVILEGED_PORT && policy.flags & POLICY_ALLOW_LOW_PORTS == 0
}

#[inline(always)]
fn same_addr(a: &Addr, b: &Addr) -> bool {
    let (a, b) = (addr_words(a), addr_words(b));
    a[0] == b[0] && a[1] == b[1]
}

#[inline(always)]
fn addr_words(a: &Addr) -> [u64; 2] {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&a[..8]);
    hi.copy_from_slice(&a[8..]);
    [u64::from_ne_bytes(lo), u64::from_ne_bytes(hi)]
}
