//! Where each direction of a control connection is in its TCP stream.
//!
//! Only the local end says so: its SYN (a local client), its acknowledgments
//! (the remote direction) and its own segments (the local direction). A
//! remote segment is parsed only where the stream is; one ahead of it (lost
//! in between, or forged) is skipped without moving anything, and if its
//! bytes were real the local end's acknowledgment moves the stream past them.
//! So no forged segment, SYN or data, costs the real peer a line.

use ftp_ebpf_common::{
    control::{ControlState, control_flags},
    counters::Counter,
    parser::Direction,
};

use crate::{
    counters::count,
    headers::{PacketInfo, tcp_flags},
};

/// Largest jump ahead in a control stream counted as a lost segment (a TCP
/// window without scaling); anything beyond is counted as out of window.
const MAX_GAP: i32 = 65_535;

/// `control_flags` bit saying direction `d` (0: client to server) is synced.
#[inline(always)]
fn synced_bit(d: usize) -> u8 {
    if d == 0 {
        control_flags::SEQ_C2S
    } else {
        control_flags::SEQ_S2C
    }
}

/// The local client's SYN: its stream starts right after it.
#[inline(always)]
pub fn local_syn(state: &mut ControlState, info: &PacketInfo) {
    state.next_seq[0] = info.seq.wrapping_add(1);
    state.flags |= control_flags::SEQ_C2S;
}

/// The local end's acknowledgment is exactly where the peer's stream has
/// reached. The first one syncs the peer's direction; a later one beyond
/// what was parsed means the kernel took bytes ftpct never saw (lost before
/// XDP, or held out of order): the peer's parser restarts right there.
#[inline(always)]
pub fn local_ack(state: &mut ControlState, info: &PacketInfo, dir: Direction) {
    if info.flags & tcp_flags::ACK == 0 {
        return;
    }
    let peer = (dir as usize & 1) ^ 1;
    let bit = synced_bit(peer);
    if state.flags & bit == 0 {
        state.next_seq[peer] = info.ack;
        state.flags |= bit;
        return;
    }
    let ahead = info.ack.wrapping_sub(state.next_seq[peer]) as i32;
    let peer_bit = 1u8 << peer;
    if state.unconfirmed & peer_bit != 0 {
        state.unconfirmed &= !peer_bit;
        if ahead < -MAX_GAP {
            // The remote segment a seeded connection was synced from was not
            // the peer's (the kernel acknowledges something else entirely).
            count(Counter::ControlOutOfWindow);
            state.parsers[peer].restart();
            state.next_seq[peer] = info.ack;
            return;
        }
    }
    if ahead > 0 {
        count(Counter::ControlGaps);
        state.parsers[peer].restart();
        state.next_seq[peer] = info.ack;
    }
}

/// Where parsing of a segment with payload starts (bytes already parsed are
/// skipped), or `None` to skip it whole.
#[inline(always)]
pub fn accept(
    state: &mut ControlState,
    info: &PacketInfo,
    dir: Direction,
    from_local: bool,
) -> Option<u32> {
    let d = dir as usize & 1;
    let bit = synced_bit(d);
    if !from_local && !acceptable_ack(state, info, d ^ 1) {
        // The kernel drops it too: no ACK flag, or an acknowledgment of
        // bytes the local end never sent. Reading it would put forged bytes
        // where the peer's real ones go.
        count(Counter::ControlOutOfWindow);
        return None;
    }
    if state.flags & bit == 0 {
        if !from_local {
            if state.flags & control_flags::SEEDED == 0 {
                // Where the remote stream is comes from the local end only.
                count(Counter::ControlOutOfOrder);
                return None;
            }
            // A connection seeded at attach, whose peer spoke before the
            // local end: parse it, and let the local end's next
            // acknowledgment confirm (or undo) where it put the stream.
            state.unconfirmed |= 1 << d;
        }
        state.next_seq[d] = info.seq;
        state.flags |= bit;
    }
    let ahead = info.seq.wrapping_sub(state.next_seq[d]) as i32;
    if ahead > 0 {
        if from_local {
            // The local end's own bytes are genuine: resume at its next line.
            count(Counter::ControlGaps);
            state.parsers[d].resync();
            return Some(0);
        }
        count(if ahead > MAX_GAP {
            Counter::ControlOutOfWindow
        } else {
            Counter::ControlOutOfOrder
        });
        return None;
    }
    let seen = ahead.unsigned_abs();
    if seen >= info.payload_len {
        count(Counter::ControlRetransmits);
        return None;
    }
    Some(seen)
}

/// Whether a remote segment's acknowledgment is one the kernel takes: the
/// ACK flag set, and nothing acknowledged that the local end (direction
/// `local`) has not sent yet.
#[inline(always)]
fn acceptable_ack(state: &ControlState, info: &PacketInfo, local: usize) -> bool {
    if info.flags & tcp_flags::ACK == 0 {
        return false;
    }
    state.flags & synced_bit(local) == 0
        || info.ack.wrapping_sub(state.next_seq[local & 1]) as i32 <= 0
}

/// The segment was parsed: the stream continues after it.
#[inline(always)]
pub fn consumed(state: &mut ControlState, info: &PacketInfo, dir: Direction) {
    state.next_seq[dir as usize & 1] = info.seq.wrapping_add(info.payload_len);
}
