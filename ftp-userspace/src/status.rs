//! `ftpct status`: per interface of this network namespace, whether it is
//! still guarded, the programs, policy, table fill and counters.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use aya::programs::{ProgramInfo, links::PinnedLink};
use ftp_ebpf_common::{
    attachment::{egress_hook, xdp_mode},
    map_names,
    policy::{POLICY_ALLOW_LOW_PORTS, POLICY_NAT_REWRITE, POLICY_STRICT, PortClass},
};
use serde::Serialize;

use crate::{
    binding::Binding,
    egress_hook as hook,
    external::{self, ExternalMapping},
    netns::Netns,
    pins::{self, LINK_EGRESS, LINK_INGRESS, PROG_EGRESS, PROG_INGRESS},
    portspec, tables,
    tls::{self, Inspected},
};

/// Status of one guarded interface.
#[derive(Serialize)]
pub struct IfaceStatus {
    /// Interface name, as attached.
    pub iface: String,
    /// Network namespace: its `ip netns` name, else `net:[INODE]`.
    pub netns: String,
    /// The namespace's nsfs inode (the pin directory is `net<INODE>`).
    pub netns_inode: u64,
    /// Interface the XDP link runs on (0: the interface was deleted).
    pub ifindex: u32,
    /// Whether the programs still run on the interface attached as `iface`.
    pub guarded: bool,
    /// What became of the interface (renamed, deleted, ...), if anything.
    pub problem: Option<String>,
    /// Pin directory.
    pub pins: String,
    /// Kernel id of the XDP program.
    pub ingress_prog_id: u32,
    /// Kernel id of the TC program.
    pub egress_prog_id: u32,
    /// Kernel ids of the XDP and tcx links (0 if missing; a clsact filter
    /// has no link).
    pub link_ids: (u32, u32),
    /// `native` or `generic` (`unknown` for attachments from before the
    /// attachment record).
    pub xdp_mode: String,
    /// `tcx` or `clsact` (`unknown` as above).
    pub egress_hook: String,
    /// The clsact filter's priority and handle, if egress runs as one.
    pub clsact_filter: Option<(u16, u32)>,
    /// External addresses behind NAT.
    pub external_addresses: Vec<ExternalMapping>,
    /// Whether a local server's `227` is rewritten to name the external address.
    pub nat_rewrite: bool,
    /// `--ftps-range`, as `LO-HI`.
    pub ftps_range: Option<String>,
    /// Whether FTPS inspection runs (its tracepoint program is attached).
    pub ftps_inspection: bool,
    /// The FTP servers listening on the control ports now, each with
    /// whether its TLS library is probed (empty when inspection is off).
    pub ftps_servers: Vec<Inspected>,
    /// Control ports, as ranges.
    pub control_ports: String,
    /// Guarded ports, as ranges.
    pub guarded_ports: String,
    /// Expectation lifetime.
    pub expect_timeout_secs: u64,
    /// Flow idle timeout.
    pub flow_timeout_secs: u64,
    /// Whether announcements may name ports below 1024.
    pub allow_low_ports: bool,
    /// Whether every port but the control and allowed ones is guarded.
    pub strict: bool,
    /// Live expectations per control connection.
    pub max_expect_per_conn: u16,
    /// Live expectations per client address (IPv6: per /64).
    pub max_expect_per_client: u16,
    /// Live expectations per IPv6 /48.
    pub max_expect_per_site: u16,
    /// New control connections per client per expectation lifetime.
    pub max_new_sessions_per_client: u16,
    /// Live expectations.
    pub expectations: usize,
    /// Live flows (admitted and the host's own).
    pub flows: usize,
    /// Of those, admitted by an expectation or the FTPS range.
    pub admitted_flows: usize,
    /// Tracked control connections.
    pub control_connections: usize,
    /// How many entries each table holds at most: `expectations`,
    /// `admitted_flows` and `host_flows` (each flow table), `control_connections`.
    pub capacity: Capacity,
    /// Every counter by name.
    #[serde(serialize_with = "tables::counters_as_object")]
    pub counters: Vec<(&'static str, u64)>,
}

/// Table capacities (`max_entries`).
#[derive(Serialize)]
pub struct Capacity {
    pub expectations: u32,
    pub admitted_flows: u32,
    pub host_flows: u32,
    pub control_connections: u32,
}

impl Capacity {
    /// The capacities of the tables pinned in `dir`.
    fn of(dir: &Path) -> Result<Self> {
        Ok(Self {
            expectations: tables::capacity(dir, map_names::EXPECTATIONS)?,
            admitted_flows: tables::capacity(dir, map_names::FLOWS)?,
            host_flows: tables::capacity(dir, map_names::HOST_FLOWS)?,
            control_connections: tables::capacity(dir, map_names::CONTROL)?,
        })
    }
}

/// What the metrics show of one interface; unlike [`IfaceStatus`] it
/// skips what a scrape does not need (FTPS server discovery in `/proc`,
/// port ranges, program and link ids).
pub struct Sample {
    pub iface: String,
    /// Pin directory.
    pub pins: PathBuf,
    /// Whether the programs still run on the interface attached as `iface`.
    pub guarded: bool,
    pub fill: tables::Fill,
    pub capacity: Capacity,
    /// Every counter by name.
    pub counters: Vec<(&'static str, u64)>,
}

/// Collects the metrics of one interface of `netns` from its pins.
pub fn sample(root: &Path, netns: &Netns, iface: &str) -> Result<Sample> {
    let dir = pins::iface_dir(root, netns, iface);
    let read = || -> Result<Sample> {
        Ok(Sample {
            iface: iface.to_string(),
            guarded: Binding::check(iface, &dir.join(LINK_INGRESS)).guarded(),
            fill: tables::fill(&dir, &tables::policy(&dir)?)?,
            capacity: Capacity::of(&dir)?,
            counters: tables::counters(&dir)?,
            pins: dir.clone(),
        })
    };
    read().with_context(|| format!("reading the pins of {iface} in {}", dir.display()))
}

fn link_id(path: &Path) -> u32 {
    PinnedLink::from_pin(path)
        .ok()
        .and_then(|link| {
            let fd: aya::programs::links::FdLink = link.into();
            fd.info().ok().map(|info| info.id())
        })
        .unwrap_or(0)
}

/// Collects the status of one interface of `netns` from its pins.
pub fn iface_status(root: &Path, netns: &Netns, iface: &str) -> Result<IfaceStatus> {
    let dir = pins::iface_dir(root, netns, iface);
    iface_status_in(&dir, netns, iface).with_context(|| {
        format!(
            "reading the pins of {iface} in {} (`ftpct detach {iface}` removes them)",
            dir.display()
        )
    })
}

fn iface_status_in(dir: &Path, netns: &Netns, iface: &str) -> Result<IfaceStatus> {
    let binding = Binding::check(iface, &dir.join(LINK_INGRESS));
    let prog_id = |name: &str| -> Result<u32> {
        Ok(ProgramInfo::from_pin(dir.join(name))
            .with_context(|| format!("reading pinned program {name} of {iface}"))?
            .id())
    };
    let record = hook::read_record(dir);
    let policy = tables::policy(dir)?;
    let fill = tables::fill(dir, &policy)?;
    let classes = tables::port_classes(dir)?;
    let ftps_inspection = tls::inspecting(dir);
    let ftps_servers = if ftps_inspection {
        tls::inspected_now(&portspec::ports_of(&classes, PortClass::Control), dir)?
    } else {
        Vec::new()
    };
    Ok(IfaceStatus {
        iface: iface.to_string(),
        netns: netns.display_name(),
        netns_inode: netns.inode,
        ifindex: binding.ifindex(),
        guarded: binding.guarded(),
        problem: binding.problem(iface),
        pins: dir.display().to_string(),
        ingress_prog_id: prog_id(PROG_INGRESS)?,
        egress_prog_id: prog_id(PROG_EGRESS)?,
        link_ids: (
            link_id(&dir.join(LINK_INGRESS)),
            link_id(&dir.join(LINK_EGRESS)),
        ),
        xdp_mode: match record.map(|r| r.xdp_mode) {
            Some(xdp_mode::NATIVE) => "native",
            Some(xdp_mode::GENERIC) => "generic",
            _ => "unknown",
        }
        .to_string(),
        egress_hook: match record.map(|r| r.egress_hook) {
            Some(egress_hook::TCX) => "tcx",
            Some(egress_hook::CLSACT) => "clsact",
            _ => "unknown",
        }
        .to_string(),
        external_addresses: external::read(dir),
        nat_rewrite: policy.flags & POLICY_NAT_REWRITE != 0,
        ftps_range: (policy.ftps_lo != 0).then(|| format!("{}-{}", policy.ftps_lo, policy.ftps_hi)),
        ftps_inspection,
        ftps_servers,
        clsact_filter: record
            .filter(|r| r.egress_hook == egress_hook::CLSACT)
            .map(|r| (r.tc_priority, r.tc_handle)),
        control_ports: portspec::format_ranges(&portspec::ranges_of(&classes, PortClass::Control)),
        guarded_ports: portspec::format_ranges(&portspec::ranges_of(&classes, PortClass::Guarded)),
        expect_timeout_secs: policy.expect_timeout_ns / 1_000_000_000,
        flow_timeout_secs: policy.flow_timeout_ns / 1_000_000_000,
        allow_low_ports: policy.flags & POLICY_ALLOW_LOW_PORTS != 0,
        strict: policy.flags & POLICY_STRICT != 0,
        max_expect_per_conn: policy.max_expect_per_conn,
        max_expect_per_client: policy.max_expect_per_client,
        max_expect_per_site: policy.max_expect_per_site,
        max_new_sessions_per_client: policy.max_new_sessions_per_client,
        expectations: fill.expectations,
        admitted_flows: fill.admitted_flows,
        flows: fill.flows,
        control_connections: fill.control_connections,
        capacity: Capacity::of(dir)?,
        counters: tables::counters(dir)?,
    })
}

/// Prints one interface's status for people: only non-zero counters.
pub fn print_text(s: &IfaceStatus) {
    let state = if s.guarded { "guarded" } else { "NOT guarded" };
    println!("{}: {state} (pins in {})", s.iface, s.pins);
    if let Some(problem) = &s.problem {
        let advice = if s.guarded {
            format!("still guarded, listed as {}", s.iface)
        } else {
            format!("`ftpct detach {}` removes the pins", s.iface)
        };
        println!("  problem        {problem}; {advice}");
    }
    let inode = format!("net:[{}]", s.netns_inode);
    let mut namespace = if s.netns == inode {
        inode
    } else {
        format!("{} ({inode})", s.netns)
    };
    if s.ifindex != 0 {
        namespace.push_str(&format!(", ifindex {}", s.ifindex));
    }
    println!("  namespace      {namespace}");
    let egress = match s.clsact_filter {
        Some((priority, handle)) => {
            format!("clsact filter pref {priority} handle {handle:#x}")
        }
        None => format!("{} link {}", s.egress_hook, s.link_ids.1),
    };
    println!(
        "  programs       xdp ingress id {} ({}, link {}), tc egress id {} ({egress})",
        s.ingress_prog_id, s.xdp_mode, s.link_ids.0, s.egress_prog_id
    );
    println!("  control ports  {}", s.control_ports);
    for mapping in &s.external_addresses {
        println!("  external       {mapping}");
    }
    if s.nat_rewrite {
        println!(
            "  nat rewrite    227, PORT and EPRT naming the local address name the external one"
        );
    }
    println!(
        "  guarded ports  {}{}",
        s.guarded_ports,
        if s.strict { " (strict)" } else { "" }
    );
    if let Some(range) = &s.ftps_range {
        println!("  ftps range     {range} (clients of live encrypted control connections)");
    }
    if !s.ftps_inspection {
        println!("  ftps           not inspected (--ftps off, or the kernel cannot; see attach)");
    } else if s.ftps_servers.is_empty() {
        println!("  ftps           no FTP server listens on the control ports");
    }
    for server in &s.ftps_servers {
        println!("  ftps           {}", tls::describe(server));
    }
    println!(
        "  timeouts       expectation {}s, idle flow {}s{}",
        s.expect_timeout_secs,
        s.flow_timeout_secs,
        if s.allow_low_ports {
            ", ports below 1024 allowed"
        } else {
            ""
        }
    );
    println!(
        "  limits         {} expectations per control connection, {} per client, {} per IPv6 /48; \
         {} new control connections per client",
        s.max_expect_per_conn,
        s.max_expect_per_client,
        s.max_expect_per_site,
        s.max_new_sessions_per_client
    );
    let (cap, host) = (&s.capacity, s.flows - s.admitted_flows);
    println!(
        "  tables         {}/{} expectations, {}/{} admitted and {}/{} own flows, \
         {}/{} control connections",
        s.expectations,
        cap.expectations,
        s.admitted_flows,
        cap.admitted_flows,
        host,
        cap.host_flows,
        s.control_connections,
        cap.control_connections
    );
    println!("  counters");
    let width = s.counters.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut nonzero = s.counters.iter().filter(|(_, v)| *v > 0).peekable();
    if nonzero.peek().is_none() {
        println!("    (all zero)");
    }
    for (name, value) in nonzero {
        println!("    {name:<width$}  {value}");
    }
}
