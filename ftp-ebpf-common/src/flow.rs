//! Keys and values of the expectation and flow tables.

use crate::Addr;

/// An announced data connection: who may connect to whom, on which port.
///
/// For `227`/`229` the connecting side (`src`) is the FTP client and `dst` the
/// server; for `PORT`/`EPRT` it is the other way round. `dport` is in host order.
/// 4-byte aligned, for word moves (its size is a multiple of 4).
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ExpectKey {
    /// `family::V4` or `family::V6`.
    pub family: u8,
    /// Always 0.
    pub _pad: u8,
    /// The announced port (host byte order).
    pub dport: u16,
    /// Address allowed to open the data connection.
    pub src: Addr,
    /// Address the data connection goes to (the announcer).
    pub dst: Addr,
}

impl ExpectKey {
    /// `src` may connect to `dst`:`dport`.
    #[inline(always)]
    pub const fn new(family: u8, src: Addr, dst: Addr, dport: u16) -> Self {
        Self {
            family,
            _pad: 0,
            dport,
            src,
            dst,
        }
    }
}

/// How an expectation was announced. The map field is this enum in the
/// programs' BTF, so that `bpftool map dump` prints its name; user space
/// (feature `user`) reads it as the byte it is, valid whatever a map holds.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExpectKind {
    /// No expectation (a zeroed entry).
    #[default]
    None = 0,
    Pasv = 1,
    Epsv = 2,
    Port = 3,
    Eprt = 4,
}

/// The type of `ExpectValue::kind`: see `ExpectKind`.
#[cfg(not(feature = "user"))]
pub type ExpectKindField = ExpectKind;
/// The type of `ExpectValue::kind`: see `ExpectKind`.
#[cfg(feature = "user")]
pub type ExpectKindField = u8;

/// `ExpectValue::kind` values.
pub mod expect_kind {
    use super::{ExpectKind, ExpectKindField};

    const fn field(kind: ExpectKind) -> ExpectKindField {
        kind as ExpectKindField
    }
    /// `227` reply to `PASV`.
    pub const PASV: ExpectKindField = field(ExpectKind::Pasv);
    /// `229` reply to `EPSV`.
    pub const EPSV: ExpectKindField = field(ExpectKind::Epsv);
    /// `PORT` answered with `200`.
    pub const PORT: ExpectKindField = field(ExpectKind::Port);
    /// `EPRT` answered with `200`.
    pub const EPRT: ExpectKindField = field(ExpectKind::Eprt);
    /// Display name of a kind.
    pub fn name(kind: ExpectKindField) -> &'static str {
        match kind {
            PASV => "pasv",
            EPSV => "epsv",
            PORT => "port",
            EPRT => "eprt",
            _ => "?",
        }
    }
}

/// When an expectation stops being honoured, and where it came from.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ExpectValue {
    /// `bpf_ktime_get_ns()` deadline (CLOCK_MONOTONIC).
    pub expires_ns: u64,
    /// `expect_kind::*`.
    pub kind: ExpectKindField,
    /// 1 when `src` of the key is the FTP client (`PASV`/`EPSV`), 0 when `dst`
    /// is (`PORT`/`EPRT`): whose per-client count this entry is part of.
    pub client_is_src: u8,
    /// Always 0.
    pub _pad: [u8; 2],
    /// Port of the control connection's client side (for display).
    pub ctrl_client_port: u16,
    /// Port of the control connection's server side (for display).
    pub ctrl_server_port: u16,
}

/// A TCP connection as seen on packets arriving at the guarded host:
/// `src` is the remote peer, `dst` the local address. Ports in host order.
/// 8-byte aligned (its size already is a multiple): the programs then
/// build and copy it with word moves, not 20 halfword ones.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    /// `family::V4` or `family::V6`.
    pub family: u8,
    /// Always 0 (scalar padding: zeroing a byte array costs a `memset` call in BPF).
    pub _pad0: u8,
    /// Always 0.
    pub _pad1: u16,
    /// Remote port.
    pub sport: u16,
    /// Local port.
    pub dport: u16,
    /// Remote address.
    pub src: Addr,
    /// Local address.
    pub dst: Addr,
}

impl FlowKey {
    /// The flow of a connection between `remote` and `local`.
    #[inline(always)]
    pub const fn new(
        family: u8,
        remote: Addr,
        remote_port: u16,
        local: Addr,
        local_port: u16,
    ) -> Self {
        Self {
            family,
            _pad0: 0,
            _pad1: 0,
            sport: remote_port,
            dport: local_port,
            src: remote,
            dst: local,
        }
    }
}

/// Why a flow is in the table (BTF enum, as `ExpectKind`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FlowOrigin {
    /// No flow (a zeroed entry).
    #[default]
    None = 0,
    Admitted = 1,
    Outbound = 2,
    Seeded = 3,
}

/// The type of `FlowValue::origin`: see `ExpectKind`.
#[cfg(not(feature = "user"))]
pub type FlowOriginField = FlowOrigin;
/// The type of `FlowValue::origin`: see `ExpectKind`.
#[cfg(feature = "user")]
pub type FlowOriginField = u8;

/// `FlowValue::origin` values.
pub mod flow_origin {
    use super::{FlowOrigin, FlowOriginField};

    const fn field(origin: FlowOrigin) -> FlowOriginField {
        origin as FlowOriginField
    }
    /// An inbound SYN matched an expectation.
    pub const ADMITTED: FlowOriginField = field(FlowOrigin::Admitted);
    /// This host opened the connection (SYN seen on egress).
    pub const OUTBOUND: FlowOriginField = field(FlowOrigin::Outbound);
    /// Established before attach, copied from the kernel's socket table.
    pub const SEEDED: FlowOriginField = field(FlowOrigin::Seeded);
    /// Display name of an origin.
    pub fn name(origin: FlowOriginField) -> &'static str {
        match origin {
            ADMITTED => "admitted",
            OUTBOUND => "outbound",
            SEEDED => "seeded",
            _ => "?",
        }
    }
}

/// Where a flow's connection is (BTF enum, as `ExpectKind`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FlowState {
    #[default]
    Open = 0,
    Closing = 1,
    Handshake = 2,
    Reset = 3,
}

/// The type of `FlowValue::state`: see `ExpectKind`.
#[cfg(not(feature = "user"))]
pub type FlowStateField = FlowState;
/// The type of `FlowValue::state`: see `ExpectKind`.
#[cfg(feature = "user")]
pub type FlowStateField = u8;

/// `FlowValue::state` values.
pub mod flow_state {
    use super::{FlowState, FlowStateField};

    const fn field(state: FlowState) -> FlowStateField {
        state as FlowStateField
    }
    /// Open: the local end's packets refresh the idle timer; a SYN on the
    /// 4-tuple is a new connection and needs an expectation of its own.
    pub const OPEN: FlowStateField = field(FlowState::Open);
    /// The local end sent FIN or RST: the entry lives `closing_timeout` more.
    pub const CLOSING: FlowStateField = field(FlowState::Closing);
    /// The handshake is under way: the SYN that created the flow may be
    /// retransmitted (same sequence number), until the local end sends
    /// anything but a SYN.
    pub const HANDSHAKE: FlowStateField = field(FlowState::Handshake);
    /// An in-window RST from the remote end: the entry lives
    /// `closing_timeout` more, unless the local end keeps talking (the kernel
    /// answered a challenge ACK, the connection lives), which reopens it.
    pub const RESET: FlowStateField = field(FlowState::Reset);
    /// Display name of a state.
    // The byte user space reads may hold anything; the enum cannot.
    #[allow(unreachable_patterns)]
    pub fn name(state: FlowStateField) -> &'static str {
        match state {
            OPEN => "open",
            CLOSING => "closing",
            HANDSHAKE => "handshake",
            RESET => "reset",
            _ => "?",
        }
    }
}

/// `FlowValue::flags` bits.
pub mod flow_flags {
    /// `FlowValue::seq` holds the local end's latest acknowledgment number.
    pub const ACK_KNOWN: u8 = 1;
}

/// Liveness of a tracked flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowValue {
    /// `bpf_ktime_get_ns()` of the local end's last packet (or of the flow's
    /// creation): a flow lives on the local end's activity, not the remote's.
    pub last_seen_ns: u64,
    /// `flow_origin::*`.
    pub origin: FlowOriginField,
    /// `flow_state::*`.
    pub state: FlowStateField,
    /// `flow_flags::*`.
    pub flags: u8,
    /// Always 0.
    pub _pad: u8,
    /// In `HANDSHAKE` for an admitted flow: the admitted SYN's sequence number
    /// (its retransmissions carry the same). Afterwards, with
    /// `flow_flags::ACK_KNOWN`: the local end's latest acknowledgment number,
    /// where a real RST from the remote end must fall.
    pub seq: u32,
}

impl FlowValue {
    /// A flow first seen now.
    #[inline(always)]
    pub const fn new(
        origin: FlowOriginField,
        state: FlowStateField,
        seq: u32,
        now_ns: u64,
    ) -> Self {
        Self {
            last_seen_ns: now_ns,
            origin,
            state,
            flags: 0,
            _pad: 0,
            seq,
        }
    }
}

/// A client for the per-client caps: its address, or for IPv6 its /64 (one
/// subscriber's worth of addresses) or its /48 (one site's).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ClientKey {
    /// `family::V4` or `family::V6`.
    pub family: u8,
    /// Prefix length `addr` is cut to (32, 64 or 48).
    pub prefix: u8,
    /// Always 0.
    pub _pad1: u16,
    /// The address (IPv6: lower 64 bits zeroed).
    pub addr: Addr,
}

/// Time slots per expectation lifetime in `ClientValue::created`.
pub const CLIENT_SLOTS: usize = 8;

/// Live expectations of one client, by the time slot they were created in.
///
/// A slot is a seventh of the expectation lifetime; an expectation counts
/// while its slot is one of the last `CLIENT_SLOTS` (8), so it counts for its
/// whole life and stops at most one slot after it expired, with no per-entry
/// work when it does. Using, replacing or withdrawing one takes it off its
/// slot at once.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ClientValue {
    /// The newest slot (`ktime / slot width`) the counts are rolled to.
    pub slot: u64,
    /// Expectations created per slot, indexed by slot % `CLIENT_SLOTS`.
    pub created: [u16; CLIENT_SLOTS],
    /// Control connections created per slot (while not logged in), likewise.
    pub sessions: [u16; CLIENT_SLOTS],
}

impl ClientValue {
    /// The slot of time `ns` for expectations living `lifetime_ns`: a seventh
    /// of the lifetime wide, so that the `CLIENT_SLOTS` (8) slots counted
    /// span at least a lifetime past any creation in the oldest of them.
    #[inline(always)]
    pub fn slot_of(ns: u64, lifetime_ns: u64) -> u64 {
        const _: () = assert!(CLIENT_SLOTS == 8);
        ns.checked_div(lifetime_ns / 7).unwrap_or(ns)
    }

    /// Moves the window to `slot`: slots that left it stop counting.
    #[inline(always)]
    pub fn roll(&mut self, slot: u64) {
        if slot <= self.slot {
            return;
        }
        let gap = slot - self.slot;
        for i in 0..CLIENT_SLOTS {
            if (i as u64) < gap {
                let at = (slot.wrapping_sub(i as u64) as usize) & (CLIENT_SLOTS - 1);
                self.created[at] = 0;
                self.sessions[at] = 0;
            }
        }
        self.slot = slot;
    }

    /// Expectations counted in the window.
    #[inline(always)]
    pub fn live(&self) -> u32 {
        self.created.iter().map(|&n| u32::from(n)).sum()
    }

    /// Control connections counted in the window.
    #[inline(always)]
    pub fn sessions(&self) -> u32 {
        self.sessions.iter().map(|&n| u32::from(n)).sum()
    }

    /// Counts a new control connection in the current slot.
    #[inline(always)]
    pub fn add_session(&mut self) {
        let n = &mut self.sessions[(self.slot as usize) & (CLIENT_SLOTS - 1)];
        *n = n.saturating_add(1);
    }

    /// Counts one created in the current slot.
    #[inline(always)]
    pub fn add(&mut self) {
        let n = &mut self.created[(self.slot as usize) & (CLIENT_SLOTS - 1)];
        *n = n.saturating_add(1);
    }

    /// Takes one created in `slot` off the count, if that slot still counts.
    #[inline(always)]
    pub fn release(&mut self, slot: u64) {
        if slot > self.slot || self.slot - slot >= CLIENT_SLOTS as u64 {
            return;
        }
        let n = &mut self.created[(slot as usize) & (CLIENT_SLOTS - 1)];
        *n = n.saturating_sub(1);
    }
}

/// An endpoint a refused `PORT`/`EPRT` named (FTP bounce): the local host's
/// connections to it are blocked on egress for a while.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct BounceKey {
    /// `family::V4` or `family::V6`.
    pub family: u8,
    /// Always 0.
    pub _pad: u8,
    /// The named port (host order).
    pub port: u16,
    /// The named address.
    pub addr: Addr,
}

impl BounceKey {
    /// The endpoint `addr`:`port`.
    #[inline(always)]
    pub const fn new(family: u8, addr: Addr, port: u16) -> Self {
        Self {
            family,
            _pad: 0,
            port,
            addr,
        }
    }
}
