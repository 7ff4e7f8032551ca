//! Control connections: which end of one is local, creating and ending its
//! state, and handing each segment to sequence tracking (`sequence`), the
//! parser (`feed`) and request/reply correlation (`correlate`).
//!
//! The role is decided by the local end, never by port numbers alone: a
//! local client's state is created by its own SYN to a control port (it
//! connected), a local server's by its first payload from a control port on
//! a connection it did not open (it accepted), and both are seeded from the
//! socket table at attach. Nothing a remote peer sends creates state, and a
//! packet is only ever handled under the role its state was created with.

mod correlate;
mod feed;
mod rewrite;
mod seqadj;
mod sequence;
mod sweep;

pub use feed::Source;
pub use rewrite::ftpct_nat_write;
pub use seqadj::{move_seq, seq_offset, unmove_ack};

use ftp_ebpf_common::{
    control::{ControlKey, ControlState, control_flags},
    counters::Counter,
    flow::ClientValue,
    ftps::IMPLICIT_FTPS_PORT,
    parser::Direction,
    policy::Policy,
};

use crate::{
    clients, conntrack,
    counters::count,
    expectations::ftpct_withdraw_all,
    ftps,
    headers::{PacketInfo, tcp_flags},
    maps::{FTPCT_CONTROL, Scratch},
    packet::Packet,
    shared::{ScratchSlot, now_ns, ready_policy, scratch},
};

const BPF_ANY: u64 = 0;
const BPF_NOEXIST: u64 = 1;

/// A packet from the network on a connection with a control port at either
/// end: the remote client of a local server (`to_control`: the local port is
/// a control port), or the remote server of a local client (`from_control`).
/// Not inlined: control packets are rare, and keeping this body out of the
/// main program keeps the common path's registers and stack lean.
#[inline(never)]
pub fn inbound<P: Packet>(pkt: &P, info: &PacketInfo, to_control: bool, from_control: bool) {
    count(Counter::ControlPackets);
    if to_control {
        let key = info.control_key(true);
        if let Some(state) = lookup(&key, control_flags::LOCAL_SERVER) {
            handle(pkt, info, state, &key, Direction::ClientToServer, false);
            return;
        }
    }
    if from_control {
        let key = info.control_key(false);
        if let Some(state) = lookup(&key, control_flags::LOCAL_CLIENT) {
            handle(pkt, info, state, &key, Direction::ServerToClient, false);
        }
    }
}

/// A packet the local host sends on a connection with a control port at
/// either end: as the client (`to_control`) or as the server (`from_control`).
/// Returns the state of the connection the packet belongs to (and still
/// does after it), for `--nat-rewrite` to write into it.
#[inline(never)]
pub fn outbound<P: Packet>(
    pkt: &P,
    info: &PacketInfo,
    to_control: bool,
    from_control: bool,
) -> Option<&'static mut ControlState> {
    count(Counter::ControlPackets);
    if to_control {
        let key = info.control_key(true);
        if info.is_syn() {
            // The local end connects: it is this connection's client.
            start_client(&key, info);
            return None;
        }
        if let Some(state) = lookup(&key, control_flags::LOCAL_CLIENT) {
            return handle(pkt, info, state, &key, Direction::ClientToServer, true)
                .then_some(state);
        }
    }
    if !from_control || info.is_syn() {
        return None;
    }
    let key = info.control_key(false);
    let state = match lookup(&key, control_flags::LOCAL_SERVER) {
        Some(state) => state,
        // A server's first payload (its banner) on a connection it did
        // not open: it accepted it, so it is the server.
        None if info.payload_len > 0 && !conntrack::opened_locally(info) => {
            let state = create(&key, control_flags::LOCAL_SERVER)?;
            if key.server_port == IMPLICIT_FTPS_PORT {
                // Implicit FTPS: encrypted from the first byte.
                implicit_tls(state, &key);
                return None;
            }
            state
        }
        None => return None,
    };
    handle(pkt, info, state, &key, Direction::ServerToClient, true).then_some(state)
}

/// Plaintext of an encrypted control connection in direction `dir`, from
/// the local end's TLS library (`tls`): parsed as a clear-text stream is,
/// without sequence numbers (the library hands over each byte once, in
/// order), in the probes' scratch region.
#[inline(always)]
pub fn plaintext<S: Source>(
    src: &S,
    len: u32,
    state: &mut ControlState,
    key: &ControlKey,
    dir: Direction,
) {
    state.last_seen_ns = now_ns();
    count(Counter::TlsPlaintext);
    let run = feed::Run {
        len,
        start: 0,
        seg_seq: 0,
        slot: ScratchSlot::Probe,
    };
    feed::bytes(src, &run, state, key, dir);
}

/// A new connection to the implicit-FTPS port: encrypted, never parsed.
#[inline(always)]
fn implicit_tls(state: &mut ControlState, key: &ControlKey) {
    state.flags |= control_flags::TLS;
    count(Counter::ControlTls);
    if let Some(policy) = ready_policy() {
        ftps::encrypted(key, policy, ScratchSlot::Packet);
    }
}

/// The state of `key`, if it was created for the role `side`.
#[inline(always)]
fn lookup(key: &ControlKey, side: u8) -> Option<&'static mut ControlState> {
    let state = FTPCT_CONTROL.get_ptr_mut(key)?;
    // SAFETY: pointer from a successful lookup of this program's map; each
    // direction's fields are written only by the program that sees it.
    let state = unsafe { &mut *state };
    (state.flags & side != 0).then_some(state)
}

/// Creates the state of a connection the local end uses as `side`, unless
/// one exists; `None` if the table or the client's budget refused it, or it
/// exists for the other role. A local server's connection counts against its
/// remote client's budget of new connections (`max_new_sessions_per_client`
/// per expectation lifetime): one host churning connections cannot take the
/// table; the host's own client connections are not budgeted.
#[inline(always)]
fn create(key: &ControlKey, side: u8) -> Option<&'static mut ControlState> {
    let scratch = scratch(ScratchSlot::Packet)?;
    let policy = ready_policy()?;
    let now = now_ns();
    let client = clients::entry(
        scratch,
        key.family,
        &key.client,
        clients::client_prefix(key.family),
    )?;
    client.roll(ClientValue::slot_of(now, policy.expect_timeout_ns));
    if client.sessions() >= u32::from(policy.max_new_sessions_per_client) {
        count(Counter::ControlClientLimit);
        return None;
    }
    if !insert(key, BPF_NOEXIST, scratch, now, policy) && FTPCT_CONTROL.get_ptr(key).is_none() {
        count(Counter::ControlMapFull);
        return None;
    }
    let state = FTPCT_CONTROL.get_ptr_mut(key)?;
    // SAFETY: pointer from a successful lookup.
    let state = unsafe { &mut *state };
    if state.flags & (control_flags::LOCAL_SERVER | control_flags::LOCAL_CLIENT) & !side != 0 {
        return None;
    }
    if state.flags & side == 0 {
        client.add_session();
    }
    state.flags |= side;
    Some(state)
}

/// The local end's SYN to a control port: a new connection whose client is
/// local, starting afresh whatever an older one on the same 4-tuple left.
#[inline(always)]
fn start_client(key: &ControlKey, info: &PacketInfo) {
    let (Some(scratch), Some(policy)) = (scratch(ScratchSlot::Packet), ready_policy()) else {
        return;
    };
    if !insert(key, BPF_ANY, scratch, now_ns(), policy) {
        count(Counter::ControlMapFull);
        return;
    }
    let Some(state) = FTPCT_CONTROL.get_ptr_mut(key) else {
        return;
    };
    // SAFETY: pointer from a successful lookup.
    let state = unsafe { &mut *state };
    state.flags = control_flags::LOCAL_CLIENT;
    sequence::local_syn(state, info);
}

/// Inserts a fresh state for `key` (`flags`: `BPF_NOEXIST` or `BPF_ANY`),
/// sweeping the table once if it is full. The state goes to the helper by
/// reference: a copy would not fit on the stack.
#[allow(clippy::needless_borrows_for_generic_args)]
#[inline(always)]
fn insert(key: &ControlKey, flags: u64, scratch: &mut Scratch, now: u64, policy: &Policy) -> bool {
    // `zero_control` is never written but for the two timestamps, so it is a
    // fresh state created now.
    scratch.zero_control.created_ns = now;
    scratch.zero_control.last_seen_ns = now;
    if FTPCT_CONTROL
        .insert(key, &scratch.zero_control, flags)
        .is_ok()
    {
        return true;
    }
    sweep::run(scratch, now, policy)
        && FTPCT_CONTROL
            .insert(key, &scratch.zero_control, flags)
            .is_ok()
}

/// Handles one segment of a known control connection travelling in `dir`,
/// sent by the local end (`from_local`) or arriving from the remote one;
/// whether the connection is still tracked after it.
#[inline(always)]
fn handle<P: Packet>(
    pkt: &P,
    info: &PacketInfo,
    state: &mut ControlState,
    key: &ControlKey,
    dir: Direction,
    from_local: bool,
) -> bool {
    state.last_seen_ns = now_ns();
    let control_bits = tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST;
    if from_local {
        let closes = info.flags & (tcp_flags::RST | tcp_flags::FIN) != 0;
        if closes && !state.nat.closed() {
            // Only the local end's FIN or RST ends the session: it is
            // genuine. Its unused announcements end with it.
            ftpct_withdraw_all(state, key);
        }
        if info.flags & tcp_flags::FIN != 0 && state.seqadj.active() {
            // The stream moved (`--nat-rewrite`): the close's last segments
            // must move too, so the state stays until the sweep takes it.
            state.nat.close();
            return true;
        }
        if closes {
            // A FIN's last words (`221 Goodbye`) announce nothing.
            let _ = FTPCT_CONTROL.remove(key);
            return false;
        }
        if state.nat.closed() {
            return true;
        }
        sequence::local_ack(state, info, dir);
    } else if state.nat.closed() {
        return true;
    } else if info.flags & control_bits != 0 {
        // From outside, any of these may be forged with any sequence number;
        // the kernel checks them, and only the local end's handshake and
        // acknowledgments say where the streams are.
        if info.flags & tcp_flags::SYN != 0 {
            count(Counter::ControlSynIgnored);
        }
        return true;
    }
    if info.flags & tcp_flags::SYN != 0
        || info.payload_len == 0
        || state.flags & control_flags::TLS != 0
    {
        return true;
    }
    let Some(start) = sequence::accept(state, info, dir, from_local) else {
        return true;
    };
    count(Counter::ControlPayloads);
    feed::payload(pkt, info, state, key, dir, start);
    sequence::consumed(state, info, dir);
    true
}
