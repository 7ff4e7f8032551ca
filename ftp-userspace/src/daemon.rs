//! `ftpct daemon` (issue #12, item 1): ftpct as a service. It attaches
//! every interface of its configuration, or adopts an attachment that is
//! already there (after a crash, a restart or an upgrade of the binary), so
//! that sessions in progress survive; it re-reads the configuration on
//! SIGHUP and applies it live (`ftpct set`), probes the TLS library of FTP
//! servers that start later, logs the programs' audit events (and passes
//! them on to `ftpct events`), serves Prometheus metrics, and exits non-zero
//! when an interface stops being guarded behind its back, so that systemd
//! restarts it and protection returns.
//!
//! Adopting an attachment whose programs are another build's (a new ftpct
//! was installed) replaces them and keeps the maps (`upgrade`).
//!
//! Stopping the daemon leaves the programs attached (pins keep them), as
//! `ftpct attach` does: a firewall fails closed, and a restart finds its
//! state intact. `ftpct detach IFACE` removes the protection.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::maps::{MapData, RingBuf};
use ftp_ebpf_common::{
    map_names,
    policy::{POLICY_NAT_REWRITE, POLICY_STRICT, PortClass},
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    signal::unix::{SignalKind, signal},
    time::{Instant, MissedTickBehavior, interval},
};

use crate::{
    attach::{self, AttachConfig},
    binding::{self, Binding},
    events, live, metrics,
    netns::Netns,
    pins::{self, LINK_EGRESS, LINK_INGRESS},
    portspec, privileges, status, tables,
    tls::{self, FtpsChoice},
    upgrade,
};

/// Default seconds between two looks for FTP servers whose TLS library is
/// not probed yet.
pub const DEFAULT_FTPS_RESCAN_SECS: u64 = 30;

/// How often the daemon checks that its interfaces are still guarded.
const WATCH_PERIOD: Duration = Duration::from_secs(1);

/// What the daemon runs, read from its configuration file.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// bpffs directory for pins.
    pub pin_root: PathBuf,
    /// Where to serve metrics, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Seconds between looks for new FTP servers to probe.
    pub ftps_rescan: Duration,
    /// One attachment per interface (each with `pin_root` set).
    pub interfaces: Vec<AttachConfig>,
}

/// Runs the daemon until SIGTERM or SIGINT (`Ok`) or until an interface is
/// no longer guarded (`Err`). `load` reads the configuration, at start and
/// on every SIGHUP.
pub fn run(load: &dyn Fn() -> Result<DaemonConfig>) -> Result<()> {
    privileges::require_bpf_admin("ftpct daemon")?;
    let config = load()?;
    pins::refuse_private_sys(&config.pin_root)?;
    let netns = Netns::current()?;
    for cfg in &config.interfaces {
        bring_up(cfg, &netns, false)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(config, load, &netns))
}

/// Attaches `cfg.iface`, or adopts its attachment when one is there and
/// alive (saying so unless the daemon `manages` it already), replacing
/// its programs if they are another build's; pins whose links are gone
/// (the interface was deleted) are removed first.
fn bring_up(cfg: &AttachConfig, netns: &Netns, manages: bool) -> Result<()> {
    let iface = &cfg.iface;
    let dir = pins::iface_dir(&cfg.pin_root, netns, iface);
    if dir.exists() {
        let binding = Binding::check(iface, &dir.join(LINK_INGRESS));
        if binding.guarded() {
            if !manages {
                say(&format!(
                    "{iface}: adopting the attachment in {}",
                    dir.display()
                ));
            }
            if upgrade::needed(&dir, iface)? {
                let done = upgrade::upgrade(&cfg.pin_root, iface)?;
                say(&format!(
                    "{iface}: programs replaced by this ftpct's (xdp {} -> {}, tc {} -> {}); \
                     every table kept",
                    done.ingress.0, done.ingress.1, done.egress.0, done.egress.1
                ));
            }
            return apply(cfg, &dir);
        }
        say(&format!(
            "{iface}: removing stale pins ({}) and attaching anew",
            binding
                .problem(iface)
                .unwrap_or_else(|| "not guarded".to_string())
        ));
        pins::remove_attachment(&cfg.pin_root, netns, iface)?;
    }
    let attached = attach::attach(cfg)?;
    for server in &attached.ftps {
        say(&format!("{iface}: FTPS: {}", tls::describe(server)));
    }
    say(&format!("{iface}: guarding (pins in {})", dir.display()));
    Ok(())
}

/// Writes the live settings of `cfg` into the attachment pinned in `dir`
/// and names each setting that only a new attachment can change.
fn apply(cfg: &AttachConfig, dir: &Path) -> Result<()> {
    let iface = &cfg.iface;
    let changes = live::Changes {
        allow_ports: Some(cfg.allow_ports.clone()),
        expect_timeout_secs: Some(cfg.expect_timeout_secs),
        flow_timeout_secs: Some(cfg.flow_timeout_secs),
        allow_low_ports: Some(cfg.allow_low_ports),
        max_expect_per_conn: Some(cfg.max_expect_per_conn),
        max_expect_per_client: Some(cfg.max_expect_per_client),
        max_expect_per_site: Some(cfg.max_expect_per_site),
        max_new_sessions_per_client: Some(cfg.max_new_sessions_per_client),
        external: Some(cfg.external.clone()),
        ftps_range: Some(cfg.ftps_range),
        force: cfg.force,
        session_port: None,
    };
    for line in live::set(&cfg.pin_root, iface, &changes)? {
        say(&format!("{iface}: {line}"));
    }
    for setting in fixed_differences(cfg, dir)? {
        log::warn!(
            "{iface}: {setting}: the running attachment keeps its value until `ftpct detach \
             {iface}` and a restart of the daemon (detaching forgets the tracked sessions)"
        );
    }
    Ok(())
}

/// The settings of `cfg` that differ from the attachment in `dir` and
/// cannot change while it runs: the port layout's fixed parts, the table
/// sizes and the hooks.
fn fixed_differences(cfg: &AttachConfig, dir: &Path) -> Result<Vec<String>> {
    let policy = tables::policy(dir)?;
    let classes = tables::port_classes(dir)?;
    let mut out = Vec::new();
    let running_control = portspec::ports_of(&classes, PortClass::Control);
    let mut wanted_control = cfg.control_ports.clone();
    wanted_control.sort_unstable();
    if running_control != wanted_control {
        out.push(format!(
            "control-ports {} in the configuration, {} running",
            join(&wanted_control),
            join(&running_control)
        ));
    }
    if (policy.data_lo, policy.data_hi) != (cfg.data_ports.lo, cfg.data_ports.hi) {
        out.push(format!(
            "data-ports {} in the configuration, {}-{} running",
            cfg.data_ports, policy.data_lo, policy.data_hi
        ));
    }
    for (name, flag, wanted) in [
        ("strict", POLICY_STRICT, cfg.strict),
        ("nat-rewrite", POLICY_NAT_REWRITE, cfg.nat_rewrite),
    ] {
        let running = policy.flags & flag != 0;
        if running != wanted {
            out.push(format!(
                "{name} {wanted} in the configuration, {running} running"
            ));
        }
    }
    for (name, map, wanted) in [
        (
            "max-expectations",
            map_names::EXPECTATIONS,
            cfg.max_expectations,
        ),
        ("max-flows", map_names::FLOWS, cfg.max_flows),
        ("max-control", map_names::CONTROL, cfg.max_control),
    ] {
        let running = tables::capacity(dir, map)?;
        if running != wanted {
            out.push(format!(
                "{name} {wanted} in the configuration, {running} running"
            ));
        }
    }
    // `auto` where inspection could not start is no difference.
    if cfg.ftps == FtpsChoice::Off && tls::inspecting(dir) {
        out.push("ftps off in the configuration, inspection running".to_string());
    }
    Ok(out)
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// One line on stdout (journald keeps it; systemd adds the time).
fn say(line: &str) {
    println!("ftpct: {line}");
}

async fn serve(
    mut config: DaemonConfig,
    load: &dyn Fn() -> Result<DaemonConfig>,
    netns: &Netns,
) -> Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut listener = listen(config.metrics).await?;
    let mut hub = events::Hub::bind(netns)?;
    let mut rings = open_rings(&config, netns);
    let mut drain = interval(events::DRAIN_PERIOD);
    drain.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut watch = interval(WATCH_PERIOD);
    watch.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut next_rescan = Instant::now() + config.ftps_rescan;
    notify("READY=1");
    say(&format!(
        "daemon running: {} interface(s){}",
        config.interfaces.len(),
        config
            .metrics
            .map(|a| format!(", metrics on http://{a}/metrics"))
            .unwrap_or_default()
    ));
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => {
                notify("RELOADING=1");
                match reload(&config, load, netns) {
                    Ok(new) => {
                        if new.metrics != config.metrics {
                            listener = listen(new.metrics).await?;
                        }
                        config = new;
                        rings = open_rings(&config, netns);
                        rescan(&config, netns);
                        next_rescan = Instant::now() + config.ftps_rescan;
                        say("configuration reloaded");
                    }
                    Err(err) => log::error!(
                        "reload failed, the running configuration stays: {err:#}"
                    ),
                }
                notify("READY=1");
            }
            _ = drain.tick() => {
                let mut lines = Vec::new();
                for (iface, ring) in &mut rings {
                    lines.extend(events::drain(ring, iface));
                }
                for line in &lines {
                    say(&format!("event {line}"));
                }
                hub.publish(&lines);
            }
            _ = watch.tick() => {
                for cfg in &config.interfaces {
                    if let Some(problem) = lost(cfg, netns) {
                        bail!(
                            "{} is no longer guarded: {problem}; exiting so that the service \
                             manager restarts protection",
                            cfg.iface
                        );
                    }
                }
                if Instant::now() >= next_rescan {
                    rescan(&config, netns);
                    next_rescan = Instant::now() + config.ftps_rescan;
                }
            }
            conn = accept(listener.as_ref()) => {
                if let Ok((stream, _)) = conn
                    && let Err(err) = answer(stream, &config, netns).await
                {
                    log::debug!("metrics request: {err:#}");
                }
            }
        }
    }
    notify("STOPPING=1");
    say("stopping; the interfaces stay guarded (`ftpct detach IFACE` removes the protection)");
    Ok(())
}

/// Reads the configuration again and applies it: new interfaces are
/// attached, removed ones detached, kept ones changed live.
fn reload(
    old: &DaemonConfig,
    load: &dyn Fn() -> Result<DaemonConfig>,
    netns: &Netns,
) -> Result<DaemonConfig> {
    let new = load()?;
    if new.pin_root != old.pin_root {
        bail!(
            "pin-root changed ({} to {}): restart the daemon to move the attachments",
            old.pin_root.display(),
            new.pin_root.display()
        );
    }
    for gone in old
        .interfaces
        .iter()
        .filter(|o| !new.interfaces.iter().any(|n| n.iface == o.iface))
    {
        attach::detach(&gone.pin_root, &gone.iface)?;
        say(&format!(
            "{}: detached (no longer in the configuration)",
            gone.iface
        ));
    }
    for cfg in &new.interfaces {
        let manages = old.interfaces.iter().any(|o| o.iface == cfg.iface);
        bring_up(cfg, netns, manages)?;
    }
    Ok(new)
}

/// Why `cfg.iface` is no longer guarded, if it is not: its pins are gone
/// (`ftpct detach`), its interface was deleted, or a link was removed.
fn lost(cfg: &AttachConfig, netns: &Netns) -> Option<String> {
    let dir = pins::iface_dir(&cfg.pin_root, netns, &cfg.iface);
    if !dir.exists() {
        return Some(format!("its pins in {} were removed", dir.display()));
    }
    let binding = Binding::check(&cfg.iface, &dir.join(LINK_INGRESS));
    if !binding.guarded() {
        return binding.problem(&cfg.iface);
    }
    let egress = dir.join(LINK_EGRESS);
    if egress.exists() && binding::pinned_link_ifindex(&egress).is_ok_and(|i| i == 0) {
        return Some("its egress link was detached".to_string());
    }
    None
}

/// The event ring buffer of each interface (one that has none, attached
/// by an older ftpct, is named once and left out).
fn open_rings(config: &DaemonConfig, netns: &Netns) -> Vec<(String, RingBuf<MapData>)> {
    let mut rings = Vec::new();
    for cfg in &config.interfaces {
        match events::ring(&pins::iface_dir(&cfg.pin_root, netns, &cfg.iface)) {
            Ok(ring) => rings.push((cfg.iface.clone(), ring)),
            Err(err) => log::warn!("{}: no audit events: {err:#}", cfg.iface),
        }
    }
    rings
}

/// Probes the TLS library of FTP servers that started since the last look.
fn rescan(config: &DaemonConfig, netns: &Netns) {
    for cfg in config
        .interfaces
        .iter()
        .filter(|c| c.ftps == FtpsChoice::Auto)
    {
        let dir = pins::iface_dir(&cfg.pin_root, netns, &cfg.iface);
        match tls::rescan(&cfg.control_ports, &dir) {
            Ok(found) => {
                for server in found {
                    say(&format!("{}: FTPS: {}", cfg.iface, tls::describe(&server)));
                }
            }
            Err(err) => log::warn!("{}: looking for FTP servers: {err:#}", cfg.iface),
        }
    }
}

async fn listen(addr: Option<SocketAddr>) -> Result<Option<TcpListener>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening for metrics on {addr}"))
        .map(Some)
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Answers one HTTP request: `GET /metrics` with the exposition, anything
/// else with 404. Requests are read for at most a second.
async fn answer(mut stream: TcpStream, config: &DaemonConfig, netns: &Netns) -> Result<()> {
    let mut request = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut request))
        .await
        .map_err(|_| anyhow!("request timed out"))??;
    let line = String::from_utf8_lossy(&request[..n]);
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if line.starts_with("GET ") && path == "/metrics" {
        let statuses: Vec<_> = config
            .interfaces
            .iter()
            .filter_map(|cfg| status::sample(&cfg.pin_root, netns, &cfg.iface).ok())
            .collect();
        ("200 OK", metrics::render(&statuses))
    } else {
        ("404 Not Found", "ftpct serves /metrics\n".to_string())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    Ok(())
}

/// Tells systemd (`Type=notify`) where the daemon is; nothing without
/// `NOTIFY_SOCKET`.
fn notify(state: &str) {
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt as _;
            UnixAddr::from_abstract_name(name.as_bytes())
        }
        None => UnixAddr::from_pathname(&path),
    };
    let sent = UnixDatagram::unbound()
        .and_then(|sock| addr.and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr)));
    if let Err(err) = sent {
        log::warn!("telling systemd {state}: {err}");
    }
}
