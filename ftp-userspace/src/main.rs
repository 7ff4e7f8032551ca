//! `ftpct`: a stateful FTP firewall in XDP/TC. See `ftpct --help`.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, Result, bail};
use clap::{Args, CommandFactory, Parser, Subcommand};
use ftp_ebpf_common::policy::{
    DEFAULT_CONTROL_PORT, DEFAULT_DATA_PORTS, DEFAULT_EXPECT_TIMEOUT_SECS,
    DEFAULT_FLOW_TIMEOUT_SECS, DEFAULT_MAX_CONTROL, DEFAULT_MAX_EXPECT_PER_CLIENT,
    DEFAULT_MAX_EXPECT_PER_CONN, DEFAULT_MAX_EXPECT_PER_SITE, DEFAULT_MAX_EXPECTATIONS,
    DEFAULT_MAX_FLOWS, DEFAULT_MAX_NEW_SESSIONS_PER_CLIENT, MAX_EXPECT_PER_CONN, PortClass,
};

mod config;

use ftp_userspace::{
    attach::{self, AttachConfig, EgressHookChoice, XdpModeChoice},
    binding::Binding,
    daemon, events, external, features, live, lockout,
    netns::Netns,
    pins,
    portspec::{self, PortRange},
    privileges, run, status, tables,
    tls::{self, FtpsChoice},
    upgrade,
};

/// Stateful FTP firewall: only data connections announced on an FTP control
/// connection may reach the guarded ports.
/// Examples at the end of `ftpct --help`.
const EXAMPLES: &str = "\
Examples:
  ftpct attach eth0                          guard 1024-65535 for the FTP server on port 21
  ftpct attach eth0 --allow-ports 2222,5432  leave an SSH and a database reachable
  ftpct attach eth0 --external-address 198.19.0.10 --nat-rewrite
                                             behind a cloud 1:1 NAT, no server setting
  ftpct attach eth0 --ftps-range 40000-40100 FTPS clients reach the passive range
  ftpct set eth0 --allow-ports 2222,8080      open two more ports, keeping every session
  ftpct flush eth0 expectations              forget every announced data port
  ftpct events                               follow dropped SYNs and refused announcements
  ftpct status eth0                          exit 1 unless eth0 is guarded
  ftpct completions bash > /etc/bash_completion.d/ftpct
  ftpct man > /usr/local/share/man/man8/ftpct.8";

#[derive(Parser)]
#[command(name = "ftpct", version, about, long_about = None, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load and attach to IFACE; protection stays in force after ftpct exits.
    Attach(AttachArgs),
    /// Remove everything `attach` created for IFACE in this network namespace.
    Detach {
        /// Interface to stop guarding.
        iface: String,
        #[command(flatten)]
        pins: PinArgs,
    },
    /// Show this network namespace's guarded interfaces, program ids,
    /// policy, table sizes and counters. With IFACE, only that one, and
    /// exit 1 unless it is guarded (for scripts and health checks).
    Status {
        /// The one interface to show.
        iface: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        pins: PinArgs,
    },
    /// List announced data connections not yet opened: who may connect
    /// where, and the control connection that announced it.
    Expectations {
        /// Only this interface's.
        #[arg(long, value_name = "IFACE")]
        iface: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        pins: PinArgs,
    },
    /// List tracked connections to guarded ports, the end that opened it
    /// first (DIR in: the remote end did), with the control connection that
    /// announced it where that is still known.
    Flows {
        /// Only this interface's.
        #[arg(long, value_name = "IFACE")]
        iface: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        pins: PinArgs,
    },
    /// Follow the audit events (dropped packets, refused announcements) as
    /// they happen, one key=value line each (like `conntrack -E`); through
    /// the daemon when it runs.
    Events {
        /// Only this interface's.
        iface: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        pins: PinArgs,
    },
    /// Attach in the foreground, print the programs' logs, detach on SIGINT/SIGTERM.
    Run(AttachArgs),
    /// Run as a service: attach (or adopt) every interface of the
    /// configuration file, re-read it on SIGHUP, probe FTP servers that
    /// start later, serve metrics; exits 1 when an interface stops being
    /// guarded. Stopping it leaves the interfaces guarded.
    Daemon {
        /// The configuration file (TOML; `[[interface]]` tables take the
        /// options of `attach` without their dashes).
        #[arg(long, value_name = "FILE", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// Serve Prometheus metrics at http://ADDR:PORT/metrics (overrides
        /// the file's `metrics`).
        #[arg(long, value_name = "ADDR:PORT")]
        metrics: Option<std::net::SocketAddr>,
        /// Check the configuration file and exit.
        #[arg(long)]
        check: bool,
    },
    /// Replace IFACE's programs with this ftpct's, keeping every table,
    /// setting and counter (after installing a new ftpct); refused when the
    /// maps' layout version differs.
    Upgrade {
        /// The guarded interface.
        iface: String,
        #[command(flatten)]
        pins: PinArgs,
    },
    /// Change IFACE's policy while it stays guarded: only the options given
    /// change; expectations, flows and control connections are kept.
    Set(SetArgs),
    /// Empty one of IFACE's tables (expectations, admitted flows) or its
    /// counters; the host's own connections are never flushed.
    Flush {
        /// The guarded interface.
        iface: String,
        /// What to empty.
        #[arg(value_enum)]
        what: live::Flush,
        #[command(flatten)]
        pins: PinArgs,
    },
    /// Check whether ftpct can run here: one line per kernel feature and
    /// requirement, then the path attach would take. Exits 1 if it cannot.
    Check {
        /// Also check the XDP mode of this interface.
        iface: Option<String>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. into man8/ftpct.8.
    Man,
}

#[derive(Args)]
struct PinArgs {
    /// bpffs directory for pins [env: FTPCT_PIN_ROOT] [default: /sys/fs/bpf/ftpct]
    #[arg(long, value_name = "DIR")]
    pin_root: Option<PathBuf>,
}

impl PinArgs {
    /// The pin root, once `command` may use it: every command reading or
    /// writing pins comes through here, so each refuses a user without the
    /// privileges, and the private /sys of `ip netns exec`, with the same
    /// message.
    fn root(&self, command: &str) -> Result<PathBuf> {
        privileges::require_bpf_admin(command)?;
        let root = pins::resolve_root(self.pin_root.as_deref());
        pins::refuse_private_sys(&root)?;
        Ok(root)
    }
}

#[derive(Args)]
struct SetArgs {
    /// The guarded interface.
    iface: String,
    /// Ports inside the data range left open, e.g. 2222,8000-8100 (replaces
    /// the list; "" guards them all).
    #[arg(long, value_name = "LIST")]
    allow_ports: Option<String>,
    /// Seconds an announced data port waits for its connection.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    expect_timeout: Option<u64>,
    /// Seconds a tracked connection may stay idle.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    flow_timeout: Option<u64>,
    /// Accept PORT/EPRT/227/229 naming ports below 1024 (yes or no).
    #[arg(long, value_name = "yes|no", value_parser = clap::builder::BoolishValueParser::new())]
    allow_low_ports: Option<bool>,
    /// Live expectations per control connection (1-8).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=MAX_EXPECT_PER_CONN as i64))]
    max_expect_per_conn: Option<u16>,
    /// Live expectations per client address (IPv6: per /64).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    max_expect_per_client: Option<u16>,
    /// Live expectations per IPv6 /48.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    max_expect_per_site: Option<u16>,
    /// New control connections per client per expectation lifetime.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    max_new_sessions_per_client: Option<u16>,
    /// External addresses behind NAT, [LOCAL=]ADDR, repeatable: replaces
    /// every mapping.
    #[arg(
        long,
        value_name = "[LOCAL=]ADDR",
        conflicts_with = "no_external_address"
    )]
    external_address: Vec<String>,
    /// Remove every external address mapping.
    #[arg(long)]
    no_external_address: bool,
    /// The FTPS passive range, LO-HI, or "off".
    #[arg(long, value_name = "LO-HI|off")]
    ftps_range: Option<String>,
    /// Guard the ports even where services listen inside them.
    #[arg(long)]
    force: bool,
    /// Guard the port of the SSH session running this command too.
    #[arg(long)]
    guard_session: bool,
    #[command(flatten)]
    pins: PinArgs,
}

impl SetArgs {
    fn changes(&self) -> Result<live::Changes> {
        let external = if self.no_external_address {
            Some(Vec::new())
        } else if self.external_address.is_empty() {
            None
        } else {
            Some(external::parse(&self.external_address)?)
        };
        let ftps_range = match self.ftps_range.as_deref() {
            None => None,
            Some("off") => Some(None),
            Some(range) => Some(Some(portspec::parse_range(range).map_err(|e| {
                e.context("--ftps-range takes LO-HI, like 40000-40100, or off")
            })?)),
        };
        Ok(live::Changes {
            allow_ports: self
                .allow_ports
                .as_deref()
                .map(portspec::parse_list)
                .transpose()
                .map_err(|e| e.context("--allow-ports takes a list like 2222,8000-8100"))?,
            expect_timeout_secs: self.expect_timeout,
            flow_timeout_secs: self.flow_timeout,
            allow_low_ports: self.allow_low_ports,
            max_expect_per_conn: self.max_expect_per_conn,
            max_expect_per_client: self.max_expect_per_client,
            max_expect_per_site: self.max_expect_per_site,
            max_new_sessions_per_client: self.max_new_sessions_per_client,
            external,
            ftps_range,
            force: self.force,
            session_port: lockout::session_port().filter(|_| !self.guard_session),
        })
    }
}

#[derive(Args)]
pub(crate) struct AttachArgs {
    /// Interface to guard (the FTP server's or client's interface).
    iface: String,
    /// FTP control ports, comma-separated (at most 8).
    #[arg(long, value_name = "LIST", default_value_t = DEFAULT_CONTROL_PORT.to_string())]
    control_ports: String,
    /// Data ports to guard, LO-HI.
    #[arg(long, value_name = "LO-HI", default_value_t = format!("{}-{}", DEFAULT_DATA_PORTS.0, DEFAULT_DATA_PORTS.1))]
    data_ports: String,
    /// Ports inside the data range that stay open, e.g. 2222,8000-8100.
    #[arg(long, value_name = "LIST", default_value = "")]
    allow_ports: String,
    /// Seconds an announced data port waits for its connection.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_EXPECT_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    expect_timeout: u64,
    /// Seconds a tracked connection may stay idle.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_FLOW_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    flow_timeout: u64,
    /// Accept PORT/EPRT/227/229 naming ports below 1024.
    #[arg(long)]
    allow_low_ports: bool,
    /// Guard every port except the control ports and --allow-ports, not just
    /// the data range.
    #[arg(long)]
    strict: bool,
    /// Live expectations per control connection (1-8); a new one replaces
    /// the connection's oldest.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_EXPECT_PER_CONN,
          value_parser = clap::value_parser!(u16).range(1..=MAX_EXPECT_PER_CONN as i64))]
    max_expect_per_conn: u16,
    /// Live expectations per client address (IPv6: per /64).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_EXPECT_PER_CLIENT,
          value_parser = clap::value_parser!(u16).range(1..))]
    max_expect_per_client: u16,
    /// Live expectations per IPv6 /48 (one site's many /64s together).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_EXPECT_PER_SITE,
          value_parser = clap::value_parser!(u16).range(1..))]
    max_expect_per_site: u16,
    /// New control connections a client address (IPv6: /64) may open per
    /// expectation lifetime before logging in; more are not tracked.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_NEW_SESSIONS_PER_CLIENT,
          value_parser = clap::value_parser!(u16).range(1..))]
    max_new_sessions_per_client: u16,
    /// Capacity of the expectation table.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_EXPECTATIONS,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_expectations: u32,
    /// Capacity of each flow table (admitted connections; the host's own).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_FLOWS,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_flows: u32,
    /// Capacity of the control-connection table.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONTROL,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_control: u32,
    /// XDP in the driver (native), on the skb (generic, any driver, slower),
    /// or native with a fallback to generic (auto).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = XdpModeChoice::Auto)]
    xdp_mode: XdpModeChoice,
    /// The address clients reach this host at behind a 1:1 NAT, which the
    /// FTP server announces in 227 (vsftpd pasv_address, proftpd
    /// MasqueradeAddress, ...): ADDR for every local address, LOCAL=ADDR
    /// for one. Repeatable.
    #[arg(long, value_name = "[LOCAL=]ADDR")]
    external_address: Vec<String>,
    /// Rewrite a local server's 227, and a local client's PORT and EPRT,
    /// that name the local address to name its --external-address (IPv6:
    /// EPRT |2| behind NPTv6): no server or client setting needed behind a
    /// 1:1 NAT.
    #[arg(long, requires = "external_address")]
    nat_rewrite: bool,
    /// The local servers' passive range for FTPS, whose control channel
    /// ftpct cannot read: the client of a live encrypted control connection
    /// (AUTH TLS accepted, or connected to port 990 in --control-ports) may
    /// connect to it while that connection lives; nobody else may.
    #[arg(long, value_name = "LO-HI")]
    ftps_range: Option<String>,
    /// Read the FTPS control channel of local servers through their TLS
    /// library (auto: where it can be probed), or never (off: FTPS data
    /// connections then need --ftps-range).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = FtpsChoice::Auto)]
    ftps: FtpsChoice,
    /// Guard the ports even where services already listen inside them
    /// (attach otherwise names them and refuses).
    #[arg(long)]
    force: bool,
    /// Guard the port of the SSH session running this command too (it is
    /// left open otherwise, so that --strict cannot cut the session off).
    #[arg(long)]
    guard_session: bool,
    /// Egress through a tcx link (Linux 6.6+), a clsact qdisc filter, or
    /// tcx where the kernel has it (auto).
    #[arg(long, value_enum, value_name = "HOOK", default_value_t = EgressHookChoice::Auto)]
    egress_hook: EgressHookChoice,
    #[command(flatten)]
    pins: PinArgs,
}

impl AttachArgs {
    /// The configuration the options ask for: every error names its option.
    /// Neither privileges nor the pin root are looked at.
    fn parse(&self, log_level: u8) -> Result<AttachConfig> {
        let control_ports = portspec::parse_control_ports(&self.control_ports)?;
        let data_ports = portspec::parse_range(&self.data_ports)
            .map_err(|e| e.context("--data-ports takes LO-HI, like 1024-65535"))?;
        let allow_ports = portspec::parse_list(&self.allow_ports)
            .map_err(|e| e.context("--allow-ports takes a list like 2222,8000-8100"))?;
        let ftps_range = self
            .ftps_range
            .as_deref()
            .map(portspec::parse_range)
            .transpose()
            .map_err(|e| e.context("--ftps-range takes LO-HI, like 40000-40100"))?;
        Ok(AttachConfig {
            iface: self.iface.clone(),
            control_ports,
            data_ports,
            allow_ports,
            expect_timeout_secs: self.expect_timeout,
            flow_timeout_secs: self.flow_timeout,
            allow_low_ports: self.allow_low_ports,
            strict: self.strict,
            max_expect_per_conn: self.max_expect_per_conn,
            max_expect_per_client: self.max_expect_per_client,
            max_expect_per_site: self.max_expect_per_site,
            max_new_sessions_per_client: self.max_new_sessions_per_client,
            max_expectations: self.max_expectations,
            max_flows: self.max_flows,
            max_control: self.max_control,
            pin_root: pins::resolve_root(self.pins.pin_root.as_deref()),
            log_level,
            xdp_mode: self.xdp_mode,
            egress_hook: self.egress_hook,
            external: external::parse(&self.external_address)?,
            nat_rewrite: self.nat_rewrite,
            ftps_range,
            force: self.force,
            ftps: self.ftps,
        })
    }

    /// The configuration of a daemon's `[[interface]]` and its warnings: no
    /// SSH session to exempt, privileges checked by the daemon.
    pub(crate) fn for_daemon(&self) -> Result<(AttachConfig, Vec<String>)> {
        let cfg = self.parse(0)?.validated()?;
        let warnings = self.warnings(&cfg);
        Ok((cfg, warnings))
    }

    /// What the options ask for that is likely a mistake, though attach can
    /// do it: one line each.
    fn warnings(&self, cfg: &AttachConfig) -> Vec<String> {
        let mut out = Vec::new();
        let repeated = portspec::repeated(&self.control_ports);
        if !repeated.is_empty() {
            let list: Vec<String> = repeated.iter().map(u16::to_string).collect();
            out.push(format!(
                "--control-ports lists {} more than once; each port counts once",
                list.join(",")
            ));
        }
        let low: Vec<_> = portspec::ranges_of(&cfg.port_classes(), PortClass::Guarded)
            .into_iter()
            .filter(|r| r.lo < 1024)
            .map(|r| PortRange {
                hi: r.hi.min(1023),
                ..r
            })
            .collect();
        if !cfg.strict && !low.is_empty() {
            out.push(format!(
                "--data-ports {} guards well-known ports ({}): services there get only \
                 connections an FTP session announced",
                self.data_ports,
                portspec::format_ranges(&low)
            ));
        }
        out
    }

    /// The configuration for `command`, once it may run here: option errors
    /// first, then warnings, then privileges and the pin root.
    fn config(&self, command: &str, log_level: u8) -> Result<AttachConfig> {
        let mut cfg = self.parse(log_level)?;
        if !self.guard_session
            && let Some(port) = cfg.exempt_session(lockout::session_port())
        {
            eprintln!(
                "ftpct: leaving port {port} open: it carries this SSH session (SSH_CONNECTION); \
                 --guard-session guards it too"
            );
        }
        let cfg = cfg.validated()?;
        for warning in self.warnings(&cfg) {
            eprintln!("ftpct: warning: {warning}");
        }
        self.pins.root(command)?;
        Ok(cfg)
    }
}

fn main() -> ExitCode {
    // A closed pipe (`ftpct flows | head`) ends the process quietly, as it
    // does for other Unix tools, instead of a panic in `println!`.
    // SAFETY: called before any thread exists; SIG_DFL is a valid handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    // `run` shows the programs' debug records (target `ftp_ebpf::*`).
    let filter = match cli.command {
        Command::Run(_) => "info,ftp_ebpf=debug",
        _ => "info",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(filter))
        .format_timestamp_millis()
        .init();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ftpct: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Attach(args) => {
            let cfg = args.config("ftpct attach", 0)?;
            let attached = attach::attach(&cfg)?;
            for server in &attached.ftps {
                println!("ftpct: FTPS: {}", tls::describe(server));
            }
            println!(
                "ftpct: guarding {} (pins in {})",
                cfg.iface,
                pins::iface_dir(&cfg.pin_root, &Netns::current()?, &cfg.iface).display()
            );
            Ok(())
        }
        Command::Set(args) => {
            let changes = args.changes()?;
            let root = args.pins.root("ftpct set")?;
            let said = live::set(&root, &args.iface, &changes)?;
            if said.is_empty() {
                println!("ftpct: nothing to change on {}", args.iface);
            }
            for line in said {
                println!("ftpct: {}: {line}", args.iface);
            }
            Ok(())
        }
        Command::Upgrade { iface, pins: p } => {
            let done = upgrade::upgrade(&p.root("ftpct upgrade")?, &iface)?;
            for server in &done.ftps {
                println!("ftpct: {iface}: FTPS: {}", tls::describe(server));
            }
            println!(
                "ftpct: {iface}: programs replaced (xdp {} -> {}, tc {} -> {}); expectations, \
                 flows, control connections, settings and counters kept",
                done.ingress.0, done.ingress.1, done.egress.0, done.egress.1
            );
            Ok(())
        }
        Command::Flush {
            iface,
            what,
            pins: p,
        } => {
            let n = live::flush(&p.root("ftpct flush")?, &iface, what)?;
            let noun = match what {
                live::Flush::Expectations => "expectations",
                live::Flush::Flows => "admitted flows",
                live::Flush::Counters => "non-zero counters",
            };
            println!("ftpct: {iface}: flushed {n} {noun}");
            Ok(())
        }
        Command::Detach { iface, pins: p } => {
            let binding = attach::detach(&p.root("ftpct detach")?, &iface)?;
            match binding {
                Binding::Deleted { .. } => {
                    println!("ftpct: removed the pins of {iface}, which was deleted after attach")
                }
                Binding::Renamed { now, .. } => {
                    println!("ftpct: detached from {iface} (now named {now})")
                }
                Binding::Elsewhere { ifindex } => println!(
                    "ftpct: detached from {iface} (ifindex {ifindex}, no longer in this network \
                     namespace)"
                ),
                Binding::Attached { .. } | Binding::Unknown { .. } => {
                    println!("ftpct: detached from {iface}")
                }
            }
            Ok(())
        }
        Command::Status {
            iface,
            json,
            pins: p,
        } => {
            let root = p.root("ftpct status")?;
            let netns = Netns::current()?;
            let ifaces = chosen_interfaces(&root, &netns, iface.as_deref())?;
            let statuses = ifaces
                .iter()
                .map(|iface| status::iface_status(&root, &netns, iface))
                .collect::<Result<Vec<_>>>()?;
            if json {
                tables::print_json(&statuses)?;
            } else if statuses.is_empty() {
                println!(
                    "ftpct: not attached to any interface in this network namespace ({}; pin \
                     root {})",
                    netns.display_name(),
                    root.display()
                );
            } else {
                statuses.iter().for_each(status::print_text);
            }
            match (&iface, statuses.first()) {
                (Some(one), Some(s)) if !s.guarded => bail!(
                    "{one} is not guarded: {}",
                    s.problem
                        .as_deref()
                        .unwrap_or("its programs are not attached")
                ),
                _ => Ok(()),
            }
        }
        Command::Expectations {
            iface,
            json,
            pins: p,
        } => {
            let root = p.root("ftpct expectations")?;
            let netns = Netns::current()?;
            let mut rows = Vec::new();
            for iface in chosen_interfaces(&root, &netns, iface.as_deref())? {
                rows.extend(tables::expectations(
                    &pins::iface_dir(&root, &netns, &iface),
                    &iface,
                )?);
            }
            if json {
                tables::print_json(&rows)?;
            } else {
                tables::print_expectations(&rows)?;
            }
            Ok(())
        }
        Command::Flows {
            iface,
            json,
            pins: p,
        } => {
            let root = p.root("ftpct flows")?;
            let netns = Netns::current()?;
            let mut rows = Vec::new();
            for iface in chosen_interfaces(&root, &netns, iface.as_deref())? {
                rows.extend(tables::flows(
                    &pins::iface_dir(&root, &netns, &iface),
                    &iface,
                )?);
            }
            if json {
                tables::print_json(&rows)?;
            } else {
                tables::print_flows(&rows)?;
            }
            Ok(())
        }
        Command::Run(args) => run::run(args.config("ftpct run", run::LOG_LEVEL_DEBUG)?),
        Command::Events {
            iface,
            json,
            pins: p,
        } => events::follow(&p.root("ftpct events")?, iface.as_deref(), json),
        Command::Daemon {
            config: path,
            metrics,
            check,
        } => {
            let load = || config::load(&path, metrics);
            if check {
                let cfg = load()?;
                println!(
                    "ftpct: {}: valid, {} interface(s)",
                    path.display(),
                    cfg.interfaces.len()
                );
                return Ok(());
            }
            daemon::run(&load)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ftpct", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(Cli::command())
            .section("8")
            .render(&mut std::io::stdout())
            .context("writing the manual page"),
        Command::Check { iface } => {
            let probes = features::probe_all(iface.as_deref());
            for p in &probes {
                println!("{:<22} {:<8} {}", p.name, p.verdict(), p.detail);
            }
            println!("{}", features::path_line(&probes));
            let missing: Vec<String> = probes
                .iter()
                .filter(|p| !p.ok && p.need == features::Need::Required)
                .map(|p| format!("{}: {}", p.name, p.detail))
                .collect();
            if missing.is_empty() {
                println!("ftpct can run here");
                Ok(())
            } else {
                bail!("cannot run here: {}", missing.join("; "))
            }
        }
    }
}

/// The interfaces attached in `netns`, or only `one`, which must be.
fn chosen_interfaces(root: &Path, netns: &Netns, one: Option<&str>) -> Result<Vec<String>> {
    let mut ifaces = pins::attached_interfaces(root, netns)?;
    if let Some(one) = one {
        if !ifaces.iter().any(|i| i == one) {
            bail!(
                "not attached to {one} in this network namespace ({}; pin root {})",
                netns.display_name(),
                root.display()
            );
        }
        ifaces.retain(|i| i == one);
    }
    Ok(ifaces)
}
