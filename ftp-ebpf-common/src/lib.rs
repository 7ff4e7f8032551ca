//! Types shared by ftpct's eBPF programs and its user space, and the FTP
//! control-channel parser.
//!
//! Everything here is `#[repr(C)]` plain data with explicit padding so that the
//! kernel side, user space and `bpftool` (through BTF) agree on every byte.
#![no_std]

pub mod attachment;
pub mod checksum;
pub mod control;
pub mod counters;
pub mod events;
pub mod flow;
pub mod ftps;
pub mod layout;
pub mod nat;
pub mod parser;
pub mod policy;
pub mod tls;
pub mod verifier;

#[cfg(feature = "user")]
mod pod;

/// An IP address in network byte order; IPv4 uses the first 4 bytes, the rest are 0.
pub type Addr = [u8; 16];

/// Address family tag stored in keys (values of the kernel's `AF_INET`/`AF_INET6`
/// would do too, but 4 and 6 read better in `bpftool` dumps).
pub mod family {
    /// IPv4.
    pub const V4: u8 = 4;
    /// IPv6.
    pub const V6: u8 = 6;
}

/// Names of the maps the programs define; user space pins and opens them by these.
pub mod map_names {
    /// Per-port classification (`PortClass` as u8), indexed by port.
    pub const PORTS: &str = "FTPCT_PORTS";
    /// The single `Policy` entry.
    pub const POLICY: &str = "FTPCT_POLICY";
    /// Announced data connections not yet opened.
    pub const EXPECTATIONS: &str = "FTPCT_EXPECT";
    /// Admitted connections on guarded ports.
    pub const FLOWS: &str = "FTPCT_FLOWS";
    /// The host's own connections on guarded ports (opened by it, or
    /// established at attach).
    pub const HOST_FLOWS: &str = "FTPCT_HOST_FLOWS";
    /// Per control connection parser and correlation state.
    pub const CONTROL: &str = "FTPCT_CONTROL";
    /// Per-CPU counters indexed by `counters::Counter`.
    pub const COUNTERS: &str = "FTPCT_COUNTERS";
    /// Live expectations per client, for the per-client cap.
    pub const CLIENTS: &str = "FTPCT_CLIENTS";
    /// Endpoints refused `PORT`/`EPRT` named, blocked on egress for a while.
    pub const BOUNCE: &str = "FTPCT_BOUNCE";
    /// The one `attachment::Attachment` record of how `attach` hooked in.
    pub const ATTACHMENT: &str = "FTPCT_ATTACHMENT";
    /// Local address → the external address clients reach it at (NAT).
    pub const EXTERNAL: &str = "FTPCT_EXTERNAL";
    /// Client and server address → their encrypted control connections
    /// (`--ftps-range`).
    pub const FTPS: &str = "FTPCT_FTPS";
    /// Kernel structure offsets and the guarded namespace, for the TLS probes.
    pub const TLS_CONFIG: &str = "FTPCT_TLS_CONFIG";
    /// Each thread's TLS call in progress.
    pub const TLS_CALLS: &str = "FTPCT_TLS_CALLS";
    /// TLS object → the encrypted control connection it uses.
    pub const TLS_SOCKETS: &str = "FTPCT_TLS_SOCKETS";
    /// Audit events (ring buffer).
    pub const EVENTS: &str = "FTPCT_EVENTS";
    /// Per source: the events it caused this second (rate limit).
    pub const EVENT_SOURCES: &str = "FTPCT_EVENT_SOURCES";
    /// The layout version of the maps and the build of the programs.
    pub const LAYOUT: &str = "FTPCT_LAYOUT";
    /// Per port: until when a SYN to it may need the tables.
    pub const PORT_WINDOW: &str = "FTPCT_PORT_WINDOW";
    /// Maps of the object that hold nothing between two runs of a program
    /// (per-CPU scratch space, aya-log's records; sections named `.*` hold
    /// constants): not pinned, and an upgrade starts them afresh.
    pub const TRANSIENT: [&str; 2] = ["FTPCT_SCRATCH", "AYA_LOGS"];
    /// Every map, in the order `ftpct` pins them.
    pub const ALL: [&str; 19] = [
        PORTS,
        PORT_WINDOW,
        POLICY,
        EXPECTATIONS,
        FLOWS,
        HOST_FLOWS,
        CONTROL,
        COUNTERS,
        CLIENTS,
        BOUNCE,
        EXTERNAL,
        FTPS,
        TLS_CONFIG,
        TLS_CALLS,
        TLS_SOCKETS,
        EVENTS,
        EVENT_SOURCES,
        LAYOUT,
        ATTACHMENT,
    ];
}

/// Names of the programs in the object file.
pub mod program_names {
    /// XDP program on ingress.
    pub const INGRESS: &str = "ftpct_ingress";
    /// TC program on egress.
    pub const EGRESS: &str = "ftpct_egress";
    /// Benchmark reference: an XDP program that only passes.
    pub const BENCH_PASS: &str = "bench_xdp_pass";
    /// Benchmark reference: stateless drop of SYNs to the default data range.
    pub const BENCH_SYN_FLOOR: &str = "bench_syn_floor";
    /// Benchmark flood generator: rewrites a template SYN, returns `XDP_TX`.
    pub const BENCH_FLOOD_TX: &str = "bench_flood_tx";
}
