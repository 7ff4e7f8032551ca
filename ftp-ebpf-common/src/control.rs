//! Per control connection state: one parser per direction, the queue of
//! outstanding commands for request/reply correlation, and TCP sequence tracking.

use crate::{
    Addr,
    nat::{NatRewrite, seqadj::SeqAdjust},
    parser::LineParser,
};

/// A control connection, client side first. Ports in host order.
/// 8-byte aligned, for word moves (its size is a multiple of 8).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ControlKey {
    /// `family::V4` or `family::V6`.
    pub family: u8,
    /// Always 0 (scalar padding: zeroing a byte array costs a `memset` call in BPF).
    pub _pad0: u8,
    /// Always 0.
    pub _pad1: u16,
    /// FTP client's port.
    pub client_port: u16,
    /// FTP server's port (a control port).
    pub server_port: u16,
    /// FTP client's address.
    pub client: Addr,
    /// FTP server's address.
    pub server: Addr,
}

impl ControlKey {
    /// The control connection from `client` to `server`.
    #[inline(always)]
    pub const fn new(
        family: u8,
        client: Addr,
        client_port: u16,
        server: Addr,
        server_port: u16,
    ) -> Self {
        Self {
            family,
            _pad0: 0,
            _pad1: 0,
            client_port,
            server_port,
            client,
            server,
        }
    }
}

/// A command awaiting its reply.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pending {
    /// Sequence number of the command on its connection; a slot whose `seq` does
    /// not match the one being answered was overwritten (queue overflow).
    pub seq: u32,
    /// `parser::Verb` as u8, after validation (`Other` when refused).
    pub verb: u8,
    /// Always 0.
    pub _pad: u8,
    /// For `PORT`/`EPRT`: the validated port.
    pub port: u16,
    /// For `PORT`/`EPRT`: the validated address.
    pub addr: Addr,
}

/// Number of outstanding commands remembered per control connection.
pub const PENDING_SLOTS: usize = 4;

/// An expectation a control connection created, remembered so the
/// connection's own oldest can be replaced when it reaches its cap.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RecentExpect {
    /// Announced port; 0 for an empty slot.
    pub port: u16,
    /// `flow::expect_kind::*`.
    pub kind: crate::flow::ExpectKindField,
    /// Always 0.
    pub _pad: u8,
}

/// Slots of `ControlState::recent` (the highest per-connection cap).
pub const RECENT_SLOTS: usize = 8;

/// `ControlState::flags` bits.
pub mod control_flags {
    /// This host is the FTP server of the connection.
    pub const LOCAL_SERVER: u8 = 1;
    /// This host is the FTP client of the connection.
    pub const LOCAL_CLIENT: u8 = 2;
    /// `AUTH TLS` was accepted: the rest is encrypted and not parsed.
    pub const TLS: u8 = 4;
    /// Client-to-server sequence number known.
    pub const SEQ_C2S: u8 = 8;
    /// Server-to-client sequence number known.
    pub const SEQ_S2C: u8 = 16;
    /// Established before attach (seeded from the socket table).
    pub const SEEDED: u8 = 32;
    /// A local client's connection whose server greeted it (`220`) before
    /// the client's first command, or one seeded at attach: it behaves as
    /// FTP, so the client's `PORT`/`EPRT` may open a port.
    pub const GREETED: u8 = 64;
    /// The server answered `230` (logged in): never swept as a stranger's
    /// unauthenticated connection.
    pub const LOGGED_IN: u8 = 128;
}

/// Value of `FTPCT_CONTROL`.
///
/// The command queue is single-producer (client-to-server parsing) and
/// single-consumer (server-to-client parsing): `pushed` is only written by the
/// first, `popped` only by the second, so the two programs may run on different
/// CPUs without a lock.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ControlState {
    /// `bpf_ktime_get_ns()` of the last packet.
    pub last_seen_ns: u64,
    /// `bpf_ktime_get_ns()` when the state was created: a connection that has
    /// not logged in an expectation lifetime later may be swept.
    pub created_ns: u64,
    /// Next expected TCP sequence number, client-to-server then server-to-client.
    pub next_seq: [u32; 2],
    /// Commands seen so far.
    pub pushed: u32,
    /// Final replies seen so far (while commands were outstanding).
    pub popped: u32,
    /// `control_flags::*`.
    pub flags: u8,
    /// Directions (bit 0: client to server) whose position was taken from a
    /// remote segment of a seeded connection, not yet confirmed by the local
    /// end's acknowledgment.
    pub unconfirmed: u8,
    /// Always 0.
    pub _pad: [u8; 2],
    /// The `recent` slot the next expectation takes (wraps at the cap).
    pub recent_next: u32,
    /// The connection's most recent expectations.
    pub recent: [RecentExpect; RECENT_SLOTS],
    /// Outstanding commands, indexed by `seq % PENDING_SLOTS`.
    pub pending: [Pending; PENDING_SLOTS],
    /// The last announcement `--nat-rewrite` rewrites.
    pub nat: NatRewrite,
    /// How far `--nat-rewrite` moved the local end's stream.
    pub seqadj: SeqAdjust,
    /// Parsers, client-to-server then server-to-client.
    pub parsers: [LineParser; 2],
}
