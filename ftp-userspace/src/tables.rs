//! Reading the pinned tables for `ftpct expectations`, `ftpct flows` and `status`.

use std::{io::Write as _, net::IpAddr, path::Path};

use anyhow::{Context as _, Result, ensure};
use aya::maps::{Array, MapData, PerCpuArray};
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

use crate::{attach::monotonic_ns, batch, seed};

/// Formats an address of the given family.
pub fn ip(fam: u8, addr: &Addr) -> IpAddr {
    if fam == family::V4 {
        IpAddr::from([addr[0], addr[1], addr[2], addr[3]])
    } else {
        IpAddr::from(*addr)
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

/// A control connection, client side first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Control {
    pub client_addr: IpAddr,
    pub client_port: u16,
    pub server_addr: IpAddr,
    pub server_port: u16,
}

impl std::fmt::Display for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} -> {}",
            endpoint_of(self.client_addr, self.client_port),
            endpoint_of(self.server_addr, self.server_port)
        )
    }
}

/// `addr:port`, bracketing IPv6.
fn endpoint_of(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        v4 => format!("{v4}:{port}"),
    }
}

/// One announced data connection.
#[derive(Serialize)]
pub struct ExpectationRow {
    /// Interface whose tables hold it.
    pub iface: String,
    /// pasv, epsv, port or eprt.
    pub kind: &'static str,
    /// Address allowed to connect (from any port).
    pub src_addr: IpAddr,
    /// Address and port it may connect to.
    pub dst_addr: IpAddr,
    pub dst_port: u16,
    /// Seconds until it expires (expired ones, awaiting cleanup, are not
    /// listed).
    pub expires_in_secs: f64,
    /// The control connection that announced it.
    pub control: Control,
}

/// The live expectations of one interface (expired ones wait for the
/// programs to sweep them, but admit nothing, so they are not shown).
pub fn expectations(dir: &Path, iface: &str) -> Result<Vec<ExpectationRow>> {
    let all: Vec<(ExpectKey, ExpectValue)> = entries(dir, map_names::EXPECTATIONS)?;
    let now = monotonic_ns();
    let mut rows = Vec::new();
    for (k, v) in &all {
        if !expectation_live(v, now) {
            continue;
        }
        let now = now as i128;
        let (src, dst) = (ip(k.family, &k.src), ip(k.family, &k.dst));
        // The key holds the control connection's addresses, the value its
        // ports: PASV/EPSV are announced by the server, which is connected
        // to; PORT/EPRT by the client.
        let (client_addr, server_addr) = if v.client_is_src != 0 {
            (src, dst)
        } else {
            (dst, src)
        };
        rows.push(ExpectationRow {
            iface: iface.to_string(),
            kind: expect_kind::name(v.kind),
            src_addr: src,
            dst_addr: dst,
            dst_port: k.dport,
            expires_in_secs: ((v.expires_ns as i128 - now) as f64 / 1e9 * 10.0).round() / 10.0,
            control: Control {
                client_addr,
                client_port: v.ctrl_client_port,
                server_addr,
                server_port: v.ctrl_server_port,
            },
        });
    }
    Ok(rows)
}

/// Whether an expectation still admits (expired ones wait for the
/// programs to sweep them).
fn expectation_live(v: &ExpectValue, now: u64) -> bool {
    v.expires_ns >= now
}

/// Prints expectations under a header, one per line.
pub fn print_expectations(rows: &[ExpectationRow]) -> Result<()> {
    let cells = rows
        .iter()
        .map(|r| {
            vec![
                r.iface.clone(),
                r.kind.to_string(),
                r.src_addr.to_string(),
                endpoint_of(r.dst_addr, r.dst_port),
                format!("{:.1}s", r.expires_in_secs),
                r.control.to_string(),
            ]
        })
        .collect();
    print_columns(
        &["IFACE", "KIND", "SRC", "DST", "EXPIRES", "CONTROL"],
        cells,
    )
}

/// Who opened a tracked connection, as seen from this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The remote end sent the SYN.
    In,
    /// This host did.
    Out,
}

/// One tracked connection, originator first (as `conntrack -L` lists its
/// original direction).
#[derive(Serialize)]
pub struct FlowRow {
    /// Interface whose tables hold it.
    pub iface: String,
    /// `in`: the remote end opened it; `out`: this host did.
    pub direction: Direction,
    /// The end that sent the SYN.
    pub src_addr: IpAddr,
    pub src_port: u16,
    /// The end it connected to.
    pub dst_addr: IpAddr,
    pub dst_port: u16,
    /// admitted, outbound or seeded.
    pub origin: &'static str,
    /// open, handshake, closing or reset.
    pub state: &'static str,
    /// Seconds since the local end's last packet.
    pub idle_secs: f64,
    /// The control connection that announced `dst_port`, while it is
    /// tracked and remembers the announcement (the flow table does not
    /// record it); none for FTPS-range connections, whose announcements
    /// ftpct cannot read, and for connections that are not FTP data.
    pub control: Option<Control>,
}

/// The live flows of one interface: admitted ones first, then the host's
/// own. One idle past its timeout waits for the programs to forget it but
/// passes nothing more, so it is not shown.
pub fn flows(dir: &Path, iface: &str) -> Result<Vec<FlowRow>> {
    let now = monotonic_ns();
    let policy = policy(dir)?;
    let announcers = Announcers::new(controls(dir)?);
    let mut live = Vec::new();
    for name in [map_names::FLOWS, map_names::HOST_FLOWS] {
        batch::for_each_chunk(&open(dir, name)?, |k: &[FlowKey], v: &[FlowValue]| {
            live.extend(
                k.iter()
                    .zip(v)
                    .filter(|(_, v)| policy.flow_live(v, now))
                    .map(|(k, v)| (*k, *v)),
            );
        })
        .with_context(|| format!("reading {name}"))?;
    }
    // A seeded flow's SYN came before attach: like attach for seeded
    // control connections, a socket listening on the local port says the
    // remote end opened it.
    let sockets = if live.iter().any(|(_, v)| v.origin == flow_origin::SEEDED) {
        seed::read_sockets()?
    } else {
        Vec::new()
    };
    Ok(live
        .iter()
        .map(|(k, v)| {
            let direction = match v.origin {
                flow_origin::ADMITTED => Direction::In,
                flow_origin::SEEDED if seed::listens(&sockets, &k.dst, k.dport) => Direction::In,
                _ => Direction::Out,
            };
            flow_row(iface, now, k, v, direction, &announcers)
        })
        .collect())
}

/// One flow as `ftpct flows` shows it.
fn flow_row(
    iface: &str,
    now: u64,
    k: &FlowKey,
    v: &FlowValue,
    direction: Direction,
    announcers: &Announcers,
) -> FlowRow {
    let remote = (ip(k.family, &k.src), k.sport);
    let local = (ip(k.family, &k.dst), k.dport);
    let (src, dst) = match direction {
        Direction::In => (remote, local),
        Direction::Out => (local, remote),
    };
    FlowRow {
        iface: iface.to_string(),
        direction,
        src_addr: src.0,
        src_port: src.1,
        dst_addr: dst.0,
        dst_port: dst.1,
        origin: flow_origin::name(v.origin),
        state: flow_state::name(v.state),
        idle_secs: (now.saturating_sub(v.last_seen_ns) as f64 / 1e8).round() / 10.0,
        control: announcers.of(k, dst.1),
    }
}

/// The tracked control connections indexed by their two hosts, so finding
/// a flow's announcer looks at the few between its hosts, not all of them.
struct Announcers(std::collections::HashMap<(u8, Addr, Addr), Vec<(ControlKey, ControlState)>>);

impl Announcers {
    fn new(controls: Vec<(ControlKey, ControlState)>) -> Self {
        let mut by_hosts = std::collections::HashMap::<_, Vec<_>>::new();
        for (k, v) in controls {
            by_hosts
                .entry(host_pair(k.family, k.client, k.server))
                .or_default()
                .push((k, v));
        }
        Self(by_hosts)
    }

    /// The tracked control connection between the flow's two hosts whose
    /// recent announcements include `port`, the port the flow connected to.
    fn of(&self, k: &FlowKey, port: u16) -> Option<Control> {
        self.0
            .get(&host_pair(k.family, k.src, k.dst))?
            .iter()
            .find(|(_, state)| state.recent.iter().any(|r| r.port == port))
            .map(|(c, _)| Control {
                client_addr: ip(c.family, &c.client),
                client_port: c.client_port,
                server_addr: ip(c.family, &c.server),
                server_port: c.server_port,
            })
    }
}

/// Two hosts of a family, in either order.
fn host_pair(family: u8, a: Addr, b: Addr) -> (u8, Addr, Addr) {
    (family, a.min(b), a.max(b))
}

/// Prints flows under a header, one per line.
pub fn print_flows(rows: &[FlowRow]) -> Result<()> {
    let cells = rows
        .iter()
        .map(|r| {
            vec![
                r.iface.clone(),
                match r.direction {
                    Direction::In => "in",
                    Direction::Out => "out",
                }
                .to_string(),
                endpoint_of(r.src_addr, r.src_port),
                endpoint_of(r.dst_addr, r.dst_port),
                r.origin.to_string(),
                r.state.to_string(),
                format!("{:.1}s", r.idle_secs),
                r.control.map_or_else(|| "-".to_string(), |c| c.to_string()),
            ]
        })
        .collect();
    print_columns(
        &[
            "IFACE", "DIR", "SRC", "DST", "ORIGIN", "STATE", "IDLE", "CONTROL",
        ],
        cells,
    )
}

/// Bytes written to standard output at a time by the listings: few large
/// writes into the pipe rather than one per 8 KiB.
const OUT_BUFFER: usize = 1 << 20;

/// Prints `header` and `rows` in left-aligned columns two spaces apart
/// (the last column unpadded), as `ss` does; buffered, as a million rows
/// would otherwise be a million writes.
fn print_columns(header: &[&str], rows: Vec<Vec<String>>) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = std::io::BufWriter::with_capacity(OUT_BUFFER, std::io::stdout().lock());
    let mut text = String::new();
    let mut line = |cells: &[&str]| -> std::io::Result<()> {
        text.clear();
        let last = cells.len().saturating_sub(1);
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            text.push_str(cell);
            if i != last {
                text.extend(std::iter::repeat_n(' ', w - cell.len() + 2));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(header)?;
    let mut cells = Vec::with_capacity(header.len());
    for row in &rows {
        cells.clear();
        cells.extend(row.iter().map(String::as_str));
        line(&cells)?;
    }
    out.flush().context("writing to standard output")
}

/// Prints `value` as pretty JSON, streamed through a buffer (a million
/// flows are hundreds of megabytes: no string of them all first).
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let mut out = std::io::BufWriter::with_capacity(OUT_BUFFER, std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value).context("writing JSON")?;
    writeln!(out)?;
    out.flush().context("writing to standard output")
}

/// The class of every port, as the pinned `FTPCT_PORTS` of `dir` holds it.
pub fn port_classes(dir: &Path) -> Result<Vec<PortClass>> {
    let classes: Vec<u8> =
        batch::array(&open(dir, map_names::PORTS)?).context("reading the port classes")?;
    ensure!(
        classes.len() == PORT_COUNT as usize,
        "the port table holds {} classes, not {PORT_COUNT}",
        classes.len()
    );
    Ok(classes.into_iter().map(PortClass::from_u8).collect())
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

/// Number of control connections tracked.
pub fn control_count(dir: &Path) -> Result<usize> {
    let mut n = 0;
    batch::for_each_chunk(
        &open(dir, map_names::CONTROL)?,
        |k: &[ControlKey], _: &[ControlState]| n += k.len(),
    )
    .context("reading the control-connection table")?;
    Ok(n)
}

/// Every tracked control connection.
fn controls(dir: &Path) -> Result<Vec<(ControlKey, ControlState)>> {
    entries(dir, map_names::CONTROL)
}

/// Every entry of the pinned hash map `name`, read in batches.
fn entries<K: aya::Pod, V: aya::Pod>(dir: &Path, name: &str) -> Result<Vec<(K, V)>> {
    batch::entries(&open(dir, name)?).with_context(|| format!("reading {name}"))
}

/// How many live entries each table holds, counted in one batched pass
/// over each without building rows (what `status` and the metrics show).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fill {
    pub expectations: usize,
    /// Live flows of both flow tables.
    pub flows: usize,
    /// Of those, admitted by an expectation or the FTPS range.
    pub admitted_flows: usize,
    pub control_connections: usize,
}

/// Counts the live entries of the tables in `dir` under `policy`.
pub fn fill(dir: &Path, policy: &Policy) -> Result<Fill> {
    let now = monotonic_ns();
    let mut fill = Fill {
        control_connections: control_count(dir)?,
        ..Fill::default()
    };
    batch::for_each_chunk(
        &open(dir, map_names::EXPECTATIONS)?,
        |_: &[ExpectKey], v: &[ExpectValue]| {
            fill.expectations += v.iter().filter(|v| expectation_live(v, now)).count();
        },
    )
    .context("reading the expectation table")?;
    for name in [map_names::FLOWS, map_names::HOST_FLOWS] {
        batch::for_each_chunk(&open(dir, name)?, |_: &[FlowKey], v: &[FlowValue]| {
            for v in v.iter().filter(|v| policy.flow_live(v, now)) {
                fill.flows += 1;
                fill.admitted_flows += usize::from(v.origin == flow_origin::ADMITTED);
            }
        })
        .with_context(|| format!("reading {name}"))?;
    }
    Ok(fill)
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

/// Serializes counters as one object, `{"name": value, ...}`, in index
/// order, so scripts look a counter up by name.
pub fn counters_as_object<S: serde::Serializer>(
    counters: &[(&'static str, u64)],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(counters.iter().copied())
}
