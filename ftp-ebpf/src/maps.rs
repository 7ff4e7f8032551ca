//! The maps shared by both programs. Names must match
//! `ftp_ebpf_common::map_names`; sizes are defaults user space may override.

use aya_ebpf::{
    btf_maps::{Array, HashMap, LruHashMap, PerCpuArray},
    macros::btf_map,
};
use ftp_ebpf_common::{
    control::{ControlKey, ControlState},
    counters::COUNTER_COUNT,
    flow::{BounceKey, ClientKey, ClientValue, ExpectKey, ExpectValue, FlowKey, FlowValue},
    policy::{PORT_COUNT, Policy},
};

/// Default capacity of the expectation table. A plain hash, not LRU: a client
/// flooding `PASV` must not evict other clients' expectations; when full, new
/// ones are refused and counted.
pub const EXPECT_ENTRIES: usize = 65_536;
/// Default capacity of the flow table (LRU: the oldest idle flow goes first).
pub const FLOW_ENTRIES: usize = 262_144;
/// Default capacity of the control-connection table.
pub const CONTROL_ENTRIES: usize = 16_384;
/// Capacity of the per-client table. LRU: evicting a client only forgets its
/// count, which can only make the cap more lenient for it, never stricter.
pub const CLIENT_ENTRIES: usize = 65_536;

/// Capacity of the bounce table (LRU: the oldest refused endpoint goes first).
pub const BOUNCE_ENTRIES: usize = 4_096;

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

#[btf_map]
pub static FTPCT_FLOWS: LruHashMap<FlowKey, FlowValue, FLOW_ENTRIES> = LruHashMap::new();

#[btf_map]
pub static FTPCT_CONTROL: LruHashMap<ControlKey, ControlState, CONTROL_ENTRIES> = LruHashMap::new();

#[btf_map]
pub static FTPCT_CLIENTS: LruHashMap<ClientKey, ClientValue, CLIENT_ENTRIES> = LruHashMap::new();

/// Endpoints refused `PORT`/`EPRT` named → until when (`bpf_ktime_get_ns`)
/// the local host's SYNs to them are dropped; see `bounce`.
#[btf_map]
pub static FTPCT_BOUNCE: LruHashMap<BounceKey, u64, BOUNCE_ENTRIES> = LruHashMap::new();

#[btf_map]
pub static FTPCT_COUNTERS: PerCpuArray<u64, { COUNTER_COUNT as usize }> = PerCpuArray::new();

/// Per-CPU scratch space for what is too big for the 512-byte stack, which the
/// main program and the parser's call chain share: a payload chunk, an all-zero
/// control state to insert new entries from, the expectation being created
/// and the endpoint being blocked. XDP and TC never interleave on one CPU (both run with bottom
/// halves disabled and to completion), so one region serves both.
#[repr(C)]
pub struct Scratch {
    pub chunk: [u8; CHUNK],
    pub zero_control: ControlState,
    pub expect_key: ExpectKey,
    pub expect_value: ExpectValue,
    pub client_key: ClientKey,
    pub zero_client: ClientValue,
    pub bounce_key: BounceKey,
}

#[btf_map]
pub static FTPCT_SCRATCH: PerCpuArray<Scratch, 1> = PerCpuArray::new();
