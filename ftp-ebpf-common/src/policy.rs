//! Policy written by user space at attach time and read by the data path.

/// What a TCP port means to the firewall; `FTPCT_PORTS` holds one per port.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortClass {
    /// Not guarded: inbound traffic passes untouched.
    Open = 0,
    /// A data port: inbound connections need an expectation or a tracked flow.
    Guarded = 1,
    /// An FTP control port: payload is parsed, traffic passes.
    Control = 2,
}

impl PortClass {
    /// Decodes the byte stored in the ports map; unknown values are treated as
    /// guarded so that a corrupted entry can never open a port.
    #[inline(always)]
    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Open,
            2 => Self::Control,
            _ => Self::Guarded,
        }
    }
}

/// Number of entries in the ports map (every TCP port).
pub const PORT_COUNT: u32 = 65536;

/// Default control port.
pub const DEFAULT_CONTROL_PORT: u16 = 21;
/// Default guarded range, the ports FTP servers hand out for data.
pub const DEFAULT_DATA_PORTS: (u16, u16) = (1024, 65535);
/// Default lifetime of an expectation, in seconds. The kernel's nf_conntrack_ftp
/// keeps them 300 s; clients open the data connection within milliseconds, so a
/// shorter window shrinks the time an announced port is open to guessing.
pub const DEFAULT_EXPECT_TIMEOUT_SECS: u64 = 60;
/// Default idle timeout of a tracked flow, in seconds (TCP keepalive's default
/// interval, so idle but alive connections survive).
pub const DEFAULT_FLOW_TIMEOUT_SECS: u64 = 7200;
/// How long a flow stays after FIN or RST, so the closing handshake completes.
pub const DEFAULT_CLOSING_TIMEOUT_SECS: u64 = 10;
/// Longest control line the parser accepts an endpoint from.
pub const DEFAULT_MAX_LINE: u16 = 512;
/// Maximum number of control ports (the CLI accepts at most this many).
pub const MAX_CONTROL_PORTS: usize = 8;
/// Default cap on live expectations per control connection; a new one
/// replaces the connection's oldest. Clients use one at a time.
pub const DEFAULT_MAX_EXPECT_PER_CONN: u16 = 4;
/// Highest per-connection cap (slots kept per control connection).
pub const MAX_EXPECT_PER_CONN: u16 = 8;
/// Default cap on live expectations per client address (IPv6: per /64).
pub const DEFAULT_MAX_EXPECT_PER_CLIENT: u16 = 128;
/// Default cap on live expectations per IPv6 /48 (a site: one attacker's
/// many /64s count together).
pub const DEFAULT_MAX_EXPECT_PER_SITE: u16 = 1024;
/// Default cap on new control connections a client address (IPv6: /64) may
/// open per expectation lifetime before it has logged in.
pub const DEFAULT_MAX_NEW_SESSIONS_PER_CLIENT: u16 = 256;
/// Default capacity of the expectation table. A plain hash, not LRU: a client
/// flooding `PASV` must not evict other clients' expectations.
pub const DEFAULT_MAX_EXPECTATIONS: u32 = 65_536;
/// Default capacity of each flow table (admitted connections; the host's own).
pub const DEFAULT_MAX_FLOWS: u32 = 262_144;
/// Default capacity of the control-connection table (a plain hash: strangers
/// cannot evict sessions; it is swept of stale unauthenticated ones when full).
pub const DEFAULT_MAX_CONTROL: u32 = 16_384;
/// Capacity of the per-client table (LRU: evicting a client only forgets its
/// counts, which can only make its caps more lenient, never stricter).
pub const CLIENT_ENTRIES: u32 = 65_536;

/// `Policy::flags` bit: in addition, drop new inbound TCP to every open port.
pub const POLICY_STRICT: u32 = 1;
/// `Policy::flags` bit: allow `PORT`/`EPRT` to name ports below 1024.
pub const POLICY_ALLOW_LOW_PORTS: u32 = 2;
/// `Policy::flags` bit: rewrite a local server's `227` naming its local
/// address to name the external one (`--nat-rewrite`, `nat`).
pub const POLICY_NAT_REWRITE: u32 = 4;

/// Timeouts and limits; the single entry of `FTPCT_POLICY`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Lifetime of an expectation, nanoseconds.
    pub expect_timeout_ns: u64,
    /// Idle timeout of a flow, nanoseconds.
    pub flow_timeout_ns: u64,
    /// Lifetime of a flow after FIN/RST, nanoseconds.
    pub closing_timeout_ns: u64,
    /// `POLICY_*` bits.
    pub flags: u32,
    /// Longest control line an endpoint is accepted from.
    pub max_line: u16,
    /// 0 until user space has written the policy; the programs pass everything
    /// while it is 0 so that a half-initialised attach never drops traffic.
    pub ready: u16,
    /// Live expectations per control connection (1..=`MAX_EXPECT_PER_CONN`).
    pub max_expect_per_conn: u16,
    /// Live expectations per client address (IPv6: per /64).
    pub max_expect_per_client: u16,
    /// Live expectations per IPv6 /48.
    pub max_expect_per_site: u16,
    /// New control connections per client (IPv6: /64) and expectation
    /// lifetime, before they log in.
    pub max_new_sessions_per_client: u16,
    /// `--ftps-range`: the passive range the client of a live encrypted
    /// control connection may connect to (`ftps`); 0..0 without one.
    pub ftps_lo: u16,
    pub ftps_hi: u16,
    /// The data range as attached (`--data-ports`), which `ftpct set
    /// --allow-ports` opens ports inside; the programs never read it.
    pub data_lo: u16,
    pub data_hi: u16,
}

impl Policy {
    /// The policy with every default.
    pub const fn defaults() -> Self {
        Self {
            expect_timeout_ns: DEFAULT_EXPECT_TIMEOUT_SECS * 1_000_000_000,
            flow_timeout_ns: DEFAULT_FLOW_TIMEOUT_SECS * 1_000_000_000,
            closing_timeout_ns: DEFAULT_CLOSING_TIMEOUT_SECS * 1_000_000_000,
            flags: 0,
            max_line: DEFAULT_MAX_LINE,
            ready: 1,
            max_expect_per_conn: DEFAULT_MAX_EXPECT_PER_CONN,
            max_expect_per_client: DEFAULT_MAX_EXPECT_PER_CLIENT,
            max_expect_per_site: DEFAULT_MAX_EXPECT_PER_SITE,
            max_new_sessions_per_client: DEFAULT_MAX_NEW_SESSIONS_PER_CLIENT,
            ftps_lo: 0,
            ftps_hi: 0,
            data_lo: DEFAULT_DATA_PORTS.0,
            data_hi: DEFAULT_DATA_PORTS.1,
        }
    }

    /// How long a flow in `state` (`flow_state::*`) lives past the local
    /// end's last packet: the idle timeout while open, the closing timeout
    /// otherwise (handshake, closing, reset).
    #[inline(always)]
    fn flow_ttl_ns(&self, state: crate::flow::FlowStateField) -> u64 {
        if state == crate::flow::flow_state::OPEN {
            self.flow_timeout_ns
        } else {
            self.closing_timeout_ns
        }
    }

    /// Whether `flow` still passes packets at `now`: the data path's verdict
    /// and what `flows` and `status` list and count. Saturating: the egress
    /// program on another CPU may stamp a flow after the reader took `now`;
    /// that flow is fresh, not expired.
    #[inline(always)]
    pub fn flow_live(&self, flow: &crate::flow::FlowValue, now: u64) -> bool {
        now.saturating_sub(flow.last_seen_ns) <= self.flow_ttl_ns(flow.state)
    }

    /// Whether `port` is in the `--ftps-range` (never without one).
    #[inline(always)]
    pub fn in_ftps_range(&self, port: u16) -> bool {
        self.ftps_lo != 0 && port >= self.ftps_lo && port <= self.ftps_hi
    }
}
