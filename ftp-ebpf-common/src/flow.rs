//! Keys and values of the expectation and flow tables.

use crate::Addr;

/// An announced data connection: who may connect to whom, on which port.
///
/// For `227`/`229` the connecting side (`src`) is the FTP client and `dst` the
/// server; for `PORT`/`EPRT` it is the other way round. `dport` is in host order.
#[repr(C)]
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

/// How an expectation was announced.
pub mod expect_kind {
    /// `227` reply to `PASV`.
    pub const PASV: u8 = 1;
    /// `229` reply to `EPSV`.
    pub const EPSV: u8 = 2;
    /// `PORT` answered with `200`.
    pub const PORT: u8 = 3;
    /// `EPRT` answered with `200`.
    pub const EPRT: u8 = 4;
    /// Display name of a kind.
    pub fn name(kind: u8) -> &'static str {
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
    pub kind: u8,
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
#[repr(C)]
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

/// Why a flow is in the table.
pub mod flow_origin {
    /// An inbound SYN matched an expectation.
    pub const ADMITTED: u8 = 1;
    /// This host opened the connection (SYN seen on egress).
    pub const OUTBOUND: u8 = 2;
    /// Established before attach, copied from the kernel's socket table.
    pub const SEEDED: u8 = 3;
    /// Display name of an origin.
    pub fn name(origin: u8) -> &'static str {
        match origin {
            ADMITTED => "admitted",
            OUTBOUND => "outbound",
            SEEDED => "seeded",
            _ => "?",
        }
    }
}

/// `FlowValue::state` values.
pub mod flow_state {
    /// Open: packets refresh the idle timer.
    pub const OPEN: u8 = 0;
    /// FIN or RST seen: the entry lives `closing_timeout` more.
    pub const CLOSING: u8 = 1;
}

/// Liveness of a tracked flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowValue {
    /// `bpf_ktime_get_ns()` of the last inbound packet.
    pub last_seen_ns: u64,
    /// `flow_origin::*`.
    pub origin: u8,
    /// `flow_state::*`.
    pub state: u8,
    /// Always 0 (scalar padding: zeroing a byte array costs a `memset` call in BPF).
    pub _pad0: u16,
    /// Always 0.
    pub _pad1: u32,
}

/// A client for the per-client expectation cap: its address, or for IPv6 its
/// /64 (one subscriber's worth of addresses).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ClientKey {
    /// `family::V4` or `family::V6`.
    pub family: u8,
    /// Always 0.
    pub _pad0: u8,
    /// Always 0.
    pub _pad1: u16,
    /// The address (IPv6: lower 64 bits zeroed).
    pub addr: Addr,
}

/// Live expectations of one client.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ClientValue {
    /// When the client's last expectation was created: once `expect_timeout`
    /// has passed since, none of its expectations can still be live.
    pub last_create_ns: u64,
    /// Expectations created and not yet consumed, replaced or swept.
    pub outstanding: u32,
    /// Always 0.
    pub _pad: u32,
}
