//! Request/reply correlation and the rules an announcement must pass: a
//! completed command is queued, a final reply takes the command it answers
//! off the queue, and a `227`/`229` or a `PORT`/`EPRT` that passes the rules
//! becomes an expectation.

use ftp_ebpf_common::{
    Addr,
    control::{ControlKey, ControlState, PENDING_SLOTS, Pending, control_flags},
    counters::Counter,
    family,
    flow::{ExpectKindField, expect_kind},
    parser::{LineKind, ParsedLine, Status, Verb},
    policy::{POLICY_ALLOW_LOW_PORTS, Policy},
};

use super::rewrite;
use crate::{
    addr, bounce, counters::count, events, expectations, external, ftps, shared::ScratchSlot,
};

/// Lowest port an announcement may name unless policy allows lower ones.
const FIRST_UNPRIVILEGED_PORT: u16 = 1024;

/// Acts on a completed command or reply of direction `dir` (0: client to
/// server), working in scratch region `slot` (`ScratchSlot` as u32). A global BPF function like the parser's step (see `parse_step`):
/// verified once on its own, so the correlation and expectation logic does not
/// multiply with every call site's states.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ftpct_on_line(
    state: *mut ControlState,
    key: *const ControlKey,
    policy: *const Policy,
    dir: u32,
    slot: u32,
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
    let slot = ScratchSlot::from_u32(slot);
    match line.kind {
        LineKind::Command => on_command(state, key, policy, line, slot),
        LineKind::Reply => on_reply(state, key, policy, line, slot),
        LineKind::None => {}
    }
    0
}

/// Queues a command for correlation with its reply.
#[inline(always)]
fn on_command(
    state: &mut ControlState,
    key: &ControlKey,
    policy: &Policy,
    line: &ParsedLine,
    slot: ScratchSlot,
) {
    count(Counter::Commands);
    let seq = state.pushed;
    let flags = state.flags;
    let local_client = flags & control_flags::LOCAL_CLIENT != 0;
    // A local client's PORT/EPRT opens a local port, so it must come from
    // something that behaves as an FTP client: greeted by the server before
    // its first command, and sending it only once every earlier command was
    // answered. An HTTP request (or any text) a local process is made to send
    // to port 21 is neither.
    let in_step = flags & control_flags::GREETED != 0 && state.popped == seq;
    // Written in place: the slot is in map memory, not on the small stack.
    let pending: &mut Pending = &mut state.pending[seq as usize & (PENDING_SLOTS - 1)];
    pending.seq = seq;
    pending.verb = Verb::Other as u8;
    pending.port = 0;
    match line.verb {
        Verb::Pasv | Verb::Epsv | Verb::AuthTls => pending.verb = line.verb as u8,
        Verb::Port | Verb::Eprt if active_endpoint_ok(flags, key, policy, line, slot) => {
            if local_client && !in_step {
                events::refuse(Counter::RefusedNotFtp, key, slot);
            } else {
                pending.verb = line.verb as u8;
                pending.port = line.endpoint.port;
                pending.addr = line.endpoint.addr;
            }
        }
        _ => {}
    }
    let (verb, port) = (pending.verb, pending.port);
    state.pushed = seq.wrapping_add(1);
    if local_client && let Some(kind) = active_kind(verb) {
        // A local client's PORT left through egress: it is genuine, and some
        // servers (pyftpdlib) connect before they answer 200. So expect the
        // server's connection now; an error reply withdraws it (`on_reply`).
        rewrite::want_command(state, key, policy, line.verb, &line.endpoint.addr, port);
        expectations::create(state, key, port, kind, policy, slot);
    }
}

/// The expectation kind of an accepted `PORT`/`EPRT` (as queued), if any.
#[inline(always)]
fn active_kind(verb: u8) -> Option<ExpectKindField> {
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
/// When a remote client's endpoint is refused, the local server is blocked
/// from connecting there anyway (`bounce`).
#[inline(always)]
fn active_endpoint_ok(
    flags: u8,
    key: &ControlKey,
    policy: &Policy,
    line: &ParsedLine,
    slot: ScratchSlot,
) -> bool {
    match line.status {
        Status::Ok => {}
        Status::Refused => {
            events::refuse(Counter::for_refusal(line.reason), key, slot);
            return false;
        }
        Status::NotApplicable => return false,
    }
    let ep = &line.endpoint;
    let refusal = if ep.family != key.family {
        Some(Counter::RefusedFamilyMismatch)
    } else if !names_end(
        flags & control_flags::LOCAL_CLIENT != 0,
        key.family,
        &ep.addr,
        &key.client,
        slot,
    ) {
        Some(Counter::RefusedBounce)
    } else if low_port(ep.port, policy) {
        Some(Counter::RefusedLowPort)
    } else {
        None
    };
    match refusal {
        Some(counter) => {
            events::refuse(counter, key, slot);
            if flags & control_flags::LOCAL_SERVER != 0 {
                bounce::block(ep, policy, slot);
            }
            false
        }
        None => true,
    }
}

/// Whether an announcement's address `named` is that of the connection's
/// end `end` (the client for `PORT`/`EPRT`, the server for `227`): the
/// address itself, or, where that end is this host (`local`), its external
/// address behind NAT. A remote end's NAT is none of ftpct's business.
#[inline(always)]
fn names_end(local: bool, family: u8, named: &Addr, end: &Addr, slot: ScratchSlot) -> bool {
    if local {
        external::names_local(family, named, end, slot)
    } else {
        addr::same(named, end)
    }
}

/// Pops the command a final reply answers and acts on the pair.
#[inline(always)]
fn on_reply(
    state: &mut ControlState,
    key: &ControlKey,
    policy: &Policy,
    line: &ParsedLine,
    slot: ScratchSlot,
) {
    count(Counter::Replies);
    if line.code < 200 {
        // 1xx is preliminary; the command's final reply follows.
        return;
    }
    if line.code == 220 && state.pushed == 0 && state.popped == 0 {
        // The server spoke first: what an FTP server does.
        state.flags |= control_flags::GREETED;
    }
    if line.code == 230 {
        // Logged in: a session to protect, not a stranger's connection.
        state.flags |= control_flags::LOGGED_IN;
    }
    if line.code == 234 {
        // TLS starts, whichever command this pairs with (fail closed: a
        // pairing thrown off by framing differences must not leave ftpct
        // reading ciphertext as FTP).
        state.flags |= control_flags::TLS;
        count(Counter::ControlTls);
        if state.flags & control_flags::LOCAL_SERVER != 0 {
            ftps::encrypted(key, policy, slot);
        }
    }
    let announces = line.code == 227 || line.code == 229;
    if state.popped == state.pushed {
        // Unsolicited (greeting, 421); an announcement here answers nothing.
        if announces {
            events::refuse(Counter::RefusedUncorrelated, key, slot);
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
        passive_reply(state, key, policy, line, verb, slot);
    } else if line.code >= 400
        && state.flags & control_flags::LOCAL_CLIENT != 0
        && let Some(kind) = active_kind(verb)
    {
        // The server refused the PORT/EPRT: it will not connect.
        expectations::withdraw(
            key,
            pending.port,
            kind,
            policy,
            Counter::ExpectWithdrawn,
            slot,
        );
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
    slot: ScratchSlot,
) {
    let (wanted, kind) = if line.code == 227 {
        (Verb::Pasv as u8, expect_kind::PASV)
    } else {
        (Verb::Epsv as u8, expect_kind::EPSV)
    };
    if verb != wanted {
        events::refuse(Counter::RefusedUncorrelated, key, slot);
        return;
    }
    match line.status {
        Status::Ok => {}
        Status::Refused => {
            events::refuse(Counter::for_refusal(line.reason), key, slot);
            return;
        }
        Status::NotApplicable => {
            events::refuse(Counter::RefusedNoAddress, key, slot);
            return;
        }
    }
    let ep = &line.endpoint;
    // 227 names an address: it must be the server's own end of the control
    // connection (and so IPv4). 229 names only a port.
    let local_server = state.flags & control_flags::LOCAL_SERVER != 0;
    if line.code == 227
        && (key.family != family::V4
            || !names_end(local_server, key.family, &ep.addr, &key.server, slot))
    {
        events::refuse(Counter::RefusedAddressMismatch, key, slot);
        return;
    }
    if low_port(ep.port, policy) {
        events::refuse(Counter::RefusedLowPort, key, slot);
        return;
    }
    if state.flags & control_flags::LOCAL_SERVER != 0 {
        if line.code == 227 {
            rewrite::want(state, key, policy, &ep.addr, ep.port);
        }
        expectations::create(state, key, ep.port, kind, policy, slot);
    }
}

#[inline(always)]
fn low_port(port: u16, policy: &Policy) -> bool {
    port < FIRST_UNPRIVILEGED_PORT && policy.flags & POLICY_ALLOW_LOW_PORTS == 0
}
