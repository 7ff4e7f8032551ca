//! The maps shared by both programs. Names must match
//! `ftp_ebpf_common::map_names`; sizes are defaults user space may override.

use aya_ebpf::{
    btf_maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
    macros::btf_map,
};
use ftp_ebpf_common::{
    Addr,
    attachment::Attachment,
    control::{ControlKey, ControlState},
    counters::COUNTER_COUNT,
    events::{self, Event, EventRate},
    flow::{BounceKey, ClientKey, ClientValue, ExpectKey, ExpectValue, FlowKey, FlowValue},
    ftps::{FtpsKey, FtpsSessions},
    layout::Layout,
    nat::{EXTERNAL_ENTRIES, ExternalKey, REWRITE_MAX, render::Rendering},
    policy::{
        CLIENT_ENTRIES, DEFAULT_MAX_CONTROL, DEFAULT_MAX_EXPECTATIONS, DEFAULT_MAX_FLOWS,
        PORT_COUNT, Policy,
    },
    tls::{TlsCall, TlsConfig, TlsObject, TlsTie},
};

/// Default capacities: one source with the CLI (`ftp_ebpf_common::policy`);
/// user space may override the expectation, flow and control tables.
const EXPECT_ENTRIES: usize = DEFAULT_MAX_EXPECTATIONS as usize;
const FLOW_ENTRIES: usize = DEFAULT_MAX_FLOWS as usize;
const CONTROL_MAX: usize = DEFAULT_MAX_CONTROL as usize;
const CLIENT_MAX: usize = CLIENT_ENTRIES as usize;

/// Capacity of the bounce table (LRU: the oldest refused endpoint goes first).
pub const BOUNCE_ENTRIES: usize = 4_096;

/// Threads in a probed TLS call at once, host-wide.
const TLS_THREADS: usize = 16_384;

/// Bytes of payload copied per parser pass.
pub const CHUNK: usize = 256;

#[btf_map]
pub static FTPCT_PORTS: Array<u8, { PORT_COUNT as usize }> = Array::new();

/// Per local port: until when (coarse CLOCK_MONOTONIC ns) a SYN to it may
/// need the tables; see `port_window`.
#[btf_map]
pub static FTPCT_PORT_WINDOW: Array<u64, { PORT_COUNT as usize }> = Array::new();

#[btf_map]
pub static FTPCT_POLICY: Array<Policy, 1> = Array::new();

#[btf_map]
pub static FTPCT_EXPECT: HashMap<ExpectKey, ExpectValue, EXPECT_ENTRIES> = HashMap::new();

/// Admitted connections (LRU: the oldest idle one goes first). Only
/// connections that consumed an expectation are here, so strangers competing
/// for room never touch the host's own connections in `FTPCT_HOST_FLOWS`.
#[btf_map]
pub static FTPCT_FLOWS: LruHashMap<FlowKey, FlowValue, FLOW_ENTRIES> = LruHashMap::new();

/// Connections the host opened, and those established at attach (LRU among
/// themselves only).
#[btf_map]
pub static FTPCT_HOST_FLOWS: LruHashMap<FlowKey, FlowValue, FLOW_ENTRIES> = LruHashMap::new();

/// Control connections. A plain hash: nothing a stranger does evicts a
/// session; when full, stale unauthenticated connections are swept.
#[btf_map]
pub static FTPCT_CONTROL: HashMap<ControlKey, ControlState, CONTROL_MAX> = HashMap::new();

#[btf_map]
pub static FTPCT_CLIENTS: LruHashMap<ClientKey, ClientValue, CLIENT_MAX> = LruHashMap::new();

/// Endpoints refused `PORT`/`EPRT` named → until when (`bpf_ktime_get_ns`)
/// the local host's SYNs to them are dropped; see `bounce`.
#[btf_map]
pub static FTPCT_BOUNCE: LruHashMap<BounceKey, u64, BOUNCE_ENTRIES> = LruHashMap::new();

/// Local address → the external address clients reach it at behind a 1:1
/// NAT (`--external-address`); see `ftp_ebpf_common::nat`.
/// Encrypted control connections per client and server address
/// (`--ftps-range`); LRU, as large as the control table: an entry goes
/// when it is the least recently used, and a live one missing costs its
/// client the range (fail closed).
#[btf_map]
pub static FTPCT_FTPS: LruHashMap<FtpsKey, FtpsSessions, CONTROL_MAX> = LruHashMap::new();

/// Kernel offsets and the guarded namespace, for the TLS probes (`tls`).
#[btf_map]
pub static FTPCT_TLS_CONFIG: Array<TlsConfig, 1> = Array::new();

/// Threads inside a probed TLS call → the call (LRU: a thread killed
/// inside one leaves a record that ages out).
#[btf_map]
pub static FTPCT_TLS_CALLS: LruHashMap<u64, TlsCall, TLS_THREADS> = LruHashMap::new();

/// TLS objects → the encrypted control connection each last used (LRU,
/// as large as the control table).
#[btf_map]
pub static FTPCT_TLS_SOCKETS: LruHashMap<TlsObject, TlsTie, CONTROL_MAX> = LruHashMap::new();

#[btf_map]
pub static FTPCT_EXTERNAL: HashMap<ExternalKey, Addr, { EXTERNAL_ENTRIES as usize }> =
    HashMap::new();

/// How user space hooked the programs in (written by `attach`, read by
/// `status` and `detach`; the programs never look at it).
#[btf_map]
pub static FTPCT_ATTACHMENT: Array<Attachment, 1> = Array::new();

/// The layout version of these maps and the build of the programs running
/// on them (written by `attach` and `upgrade`; the programs never look).
#[btf_map]
pub static FTPCT_LAYOUT: Array<Layout, 1> = Array::new();

#[btf_map]
pub static FTPCT_COUNTERS: PerCpuArray<u64, { COUNTER_COUNT as usize }> = PerCpuArray::new();

/// Audit events for `ftpct events` and the daemon's log.
#[btf_map]
pub static FTPCT_EVENTS: RingBuf<Event, { events::RING_BYTES as usize }> = RingBuf::new();

/// Per source (address; IPv6 /64): its events this second (LRU: a source
/// forgotten starts afresh, which a spoofed flood meets the per-CPU limit
/// before).
#[btf_map]
pub static FTPCT_EVENT_SOURCES: LruHashMap<ClientKey, EventRate, { events::SOURCES as usize }> =
    LruHashMap::new();

/// Per-CPU scratch space for what is too big for the 512-byte stack, which the
/// main program and the parser's call chain share: a payload chunk, an all-zero
/// control state to insert new entries from, the expectation being created
/// and the endpoint being blocked. Two regions per CPU, one for the packet
/// programs and one for the TLS probes (see `shared::ScratchSlot`).
#[repr(C)]
pub struct Scratch {
    pub chunk: [u8; CHUNK],
    pub zero_control: ControlState,
    pub expect_key: ExpectKey,
    pub expect_value: ExpectValue,
    pub client_key: ClientKey,
    pub zero_client: ClientValue,
    pub bounce_key: BounceKey,
    /// The local address whose external address is looked up.
    pub external_key: ExternalKey,
    /// The client and server an encrypted control connection is recorded
    /// for, and a fresh record (`--ftps-range`).
    pub ftps_key: FtpsKey,
    pub ftps_fresh: FtpsSessions,
    /// The `227` being written by `--nat-rewrite`.
    pub rewrite: RewriteBuf,
    /// When this CPU last swept the control table (it sweeps at most once a
    /// second, so a flood of new connections cannot make every one pay).
    pub control_swept_ns: u64,
    /// Non-zero while a TLS probe works in the probes' region: a probe may
    /// be preempted, and another task's probe on the same CPU must then
    /// leave the region alone.
    pub busy: u64,
    /// The audit event being sent, its source's key, an empty rate to
    /// insert, and this CPU's (and region's) events this second.
    pub event: Event,
    pub event_key: ClientKey,
    pub zero_rate: EventRate,
    pub event_budget: EventRate,
    /// The packet clock's cache (`shared::packet_now`): the jiffy it was
    /// read in and what it read.
    pub clock_jiffies: u64,
    pub clock_ns: u64,
    /// The last flow a plain packet passed on this CPU, and in which jiffy
    /// (`flow_memo`).
    pub flow_memo: FlowKey,
    pub flow_memo_jiffies: u64,
}

/// Buffers of a `--nat-rewrite` write: the reply's layout, the part of it
/// a segment carries, and the bytes it replaces. The last two are twice
/// the longest reply so that a checksum over whole words stays inside.
#[repr(C)]
pub struct RewriteBuf {
    pub layout: Rendering,
    pub new: [u8; 2 * REWRITE_MAX],
    pub old: [u8; 2 * REWRITE_MAX],
}

#[btf_map]
pub static FTPCT_SCRATCH: PerCpuArray<Scratch, 2> = PerCpuArray::new();
