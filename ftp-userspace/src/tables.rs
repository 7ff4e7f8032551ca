//! Reading the pinned tables for `ftpct expectations`, `ftpct flows` and `status`.

use std::{net::IpAddr, path::Path};

use anyhow::{Context as _, Result};
use aya::maps::{Array, HashMap, MapData, PerCpuArray};
use ftp_ebpf_common::{
    Addr,
    control::{ControlKey, ControlState},
    counters::{Counter, INGRESS_VERDICTS},
    family,
    flow::{ExpectKey, ExpectValue, FlowKey, FlowValue, expect_kind, flow_origin, flow_state},
    map_names,
    policy::{PORT_COUNT, Policy, PortClass},
};
use serde::Serialize;

use crate::attach::monotonic_ns;

/// Formats an address of the given family.
pub fn ip(fam: u8, addr: &Addr) -> IpAddr {
    if fam == family::V4 {
        IpAddr::from([addr[0], addr[1], addr[2], addr[3]])
    } else {
        IpAddr::from(*addr)
    }
}

/// `addr:port`, bracketing IPv6.
pub fn endpoint(fam: u8, addr: &Addr, port: u16) -> String {
    match ip(fam, addr) {
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        v4 => format!("{v4}:{port}"),
    }
}

/// The pinned map `name` of the attachment in `dir`.
fn pinned(dir: &Path, name: &str) -> Result<MapData> {
    MapData::from_pin(dir.join(name)).with_context(|| format!("opening pinned map {name}"))
}

/// The pinned map `name`, typed by its kind.
pub(crate) fn open(dir: &Path, name: &str) -> Result<aya::maps::Map> {
    Ok(aya::maps::Map::from_map_data(pinned(dir, name)?)?)
}

/// One announced data connection.
#[derive(Serialize)]
pub struct ExpectationRow {
    /// Interface whose tables hold it.
    pub iface: String,
    /// pasv, epsv, port or eprt.
    pub kind: &'static str,
    /// Address allowed to connect.
    pub src: String,
    /// Address and port it may connect to.
    pub dst: String,
    /// Seconds until it expires (expired ones, awaiting cleanup, are not
    /// listed).
    pub expires_in_secs: f64,
    /// The control connection's client port and server port.
    pub control_ports: (u16, u16),
}

/// The live expectations of one interface (expired ones wait for the
/// programs to sweep them, but admit nothing, so they are not shown).
pub fn expectations(dir: &Path, iface: &str) -> Result<Vec<ExpectationRow>> {
    let map: HashMap<MapData, ExpectKey, ExpectValue> =
        open(dir, map_names::EXPECTATIONS)?.try_into()?;
    let now = monotonic_ns() as i128;
    let mut rows = Vec::new();
    for item in map.iter() {
        let (k, v) = item.context("reading the expectation table")?;
        if (v.expires_ns as i128) < now {
            continue;
        }
        rows.push(ExpectationRow {
            iface: iface.to_string(),
            kind: expect_kind::name(v.kind),
            src: ip(k.family, &k.src).to_string(),
            dst: endpoint(k.family, &k.dst, k.dport),
            expires_in_secs: ((v.expires_ns as i128 - now) as f64 / 1e9 * 10.0).round() / 10.0,
            control_ports: (v.ctrl_client_port, v.ctrl_server_port),
        });
    }
    Ok(rows)
}

/// One tracked connection.
#[derive(Serialize)]
pub struct FlowRow {
    /// Interface whose tables hold it.
    pub iface: String,
    /// Remote end.
    pub remote: String,
    /// Local end.
    pub local: String,
    /// admitted, outbound or seeded.
    pub origin: &'static str,
    /// open or closing.
    pub state: &'static str,
    /// Seconds since the last inbound packet.
    pub idle_secs: f64,
}

/// The live flows of one interface: admitted ones first, then the host's
/// own. One idle past its timeout waits for the programs to forget it but
/// passes nothing more, so it is not shown.
pub fn flows(dir: &Path, iface: &str) -> Result<Vec<FlowRow>> {
    let now = monotonic_ns();
    let policy = policy(dir)?;
    let mut rows = Vec::new();
    for name in [map_names::FLOWS, map_names::HOST_FLOWS] {
        let map: HashMap<MapData, FlowKey, FlowValue> = open(dir, name)?.try_into()?;
        for item in map.iter() {
            let (k, v) = item.with_context(|| format!("reading {name}"))?;
            if now.saturating_sub(v.last_seen_ns) > policy.flow_ttl_ns(v.state) {
                continue;
            }
            rows.push(flow_row(iface, now, &k, &v));
        }
    }
    Ok(rows)
}

/// The class of every port, as the pinned `FTPCT_PORTS` of `dir` holds it.
pub fn port_classes(dir: &Path) -> Result<Vec<PortClass>> {
    let ports: Array<MapData, u8> = open(dir, map_names::PORTS)?.try_into()?;
    Ok((0..PORT_COUNT)
        .map(|port| PortClass::from_u8(ports.get(&port, 0).unwrap_or(0)))
        .collect())
}

/// The policy the programs run with.
pub fn policy(dir: &Path) -> Result<Policy> {
    let map: Array<MapData, Policy> = open(dir, map_names::POLICY)?.try_into()?;
    map.get(&0, 0).context("reading the policy")
}

/// How many entries the pinned map `name` holds at most.
pub fn capacity(dir: &Path, name: &str) -> Result<u32> {
    Ok(pinned(dir, name)?
        .info()
        .with_context(|| format!("reading the size of {name}"))?
        .max_entries())
}

/// One flow as `ftpct flows` shows it.
fn flow_row(iface: &str, now: u64, k: &FlowKey, v: &FlowValue) -> FlowRow {
    FlowRow {
        iface: iface.to_string(),
        remote: endpoint(k.family, &k.src, k.sport),
        local: endpoint(k.family, &k.dst, k.dport),
        origin: flow_origin::name(v.origin),
        state: flow_state::name(v.state),
        idle_secs: (now.saturating_sub(v.last_seen_ns) as f64 / 1e8).round() / 10.0,
    }
}

/// Number of control connections tracked.
pub fn control_count(dir: &Path) -> Result<usize> {
    let map: HashMap<MapData, ControlKey, ControlState> =
        open(dir, map_names::CONTROL)?.try_into()?;
    Ok(map.keys().filter(Result::is_ok).count())
}

/// Every counter summed over CPUs, in index order.
pub fn counters(dir: &Path) -> Result<Vec<(&'static str, u64)>> {
    let map: PerCpuArray<MapData, u64> = open(dir, map_names::COUNTERS)?.try_into()?;
    let mut out: Vec<(&'static str, u64)> = Vec::new();
    for counter in Counter::ALL {
        let values = map
            .get(&(*counter as u32), 0)
            .with_context(|| format!("reading counter {}", counter.name()))?;
        out.push((counter.name(), values.iter().sum()));
    }
    // The program counts each ingress packet once, by verdict.
    let total: u64 = INGRESS_VERDICTS.iter().map(|c| out[*c as usize].1).sum();
    out[Counter::IngressPackets as usize].1 = total;
    Ok(out)
}
