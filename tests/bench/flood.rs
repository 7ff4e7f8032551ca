//! SYN flood in namespaces: the receiving side's CPU time per flood packet
//! with no filter, nftables with the `ftp` conntrack helper, the stateless
//! XDP floor and ftpct; flooded by trafgen (skbs from a socket) or by XDP
//! frames ([`crate::nicflood`], as a NIC driver delivers them).
//!
//! Attribution. On veth, receive processing normally runs in softirq
//! context on whichever CPU the sender runs on, mixed with the generator's
//! own work. Here the server's `eth0` is switched to *threaded NAPI*: its
//! whole receive path — the XDP program, and for packets that pass, GRO,
//! IP, netfilter/conntrack, TCP and the RST it sends — runs in one kernel
//! thread (`napi/eth0-N`) pinned to CPU 1, and that thread's exact CPU time
//! (`/proc/<tid>/schedstat`) is the receiver's cost. The generator runs on
//! CPU 0. To make veth use NAPI in every mode (not only with XDP attached),
//! GRO is enabled on the server's `eth0` and TSO disabled on its bridge-side
//! peer; the RSTs the server sends are steered back to CPU 0 by RPS on that
//! peer, so forwarding them is not charged to the receiver.
//! `gro_flush_timeout`/`napi_defer_hard_irqs` make the thread poll in
//! batches (as a NIC's interrupt coalescing would) instead of waking for
//! every packet.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use aya::programs::Xdp;
use aya::programs::xdp::{XdpLinkId, XdpMode};
use ftp_ebpf_common::{counters::Counter, program_names};
use ftp_userspace::attach::AttachConfig;
use ftpct_e2e::process::{ChildGuard, run_with_timeout};
use ftpct_e2e::{Ftpct, LAB_IFACE, Lab, Netns, SERVER};

use crate::kernel::Loaded;
use crate::nicflood::{XdpFlood, XdpGenerator};
use crate::stats::{self, Summary};
use crate::sys::{self, LinkStats};

/// CPU the generator is pinned to.
pub const GEN_CPU: usize = 0;
/// CPU the receiver's NAPI thread is pinned to.
pub const RX_CPU: usize = 1;
/// Flood sources: 198.19.0.0/16 (inside 198.18.0.0/15, outside the lab's
/// /24, routed back through the generator).
pub const FLOOD_SOURCES: &str = "198.19.0.0/16";
/// Length of the extra flood each profile records.
pub const PROFILE_SECS: f64 = 3.0;
/// Coalescing of the server's NAPI polls.
const GRO_FLUSH_TIMEOUT_NS: &str = "200000";
/// Empty timer polls before the thread goes back to being woken by the
/// sender (2 ms at 200 µs): enough to bridge gaps in a flood, short enough
/// that it stops soon after one.
const NAPI_DEFER_HARD_IRQS: &str = "10";

/// The nftables ruleset: how an administrator uses `nf_conntrack_ftp`.
pub const NFT_RULESET: &str = "\
table inet ftpct_bench {
	ct helper ftp-standard {
		type \"ftp\" protocol tcp
	}
	chain pre {
		type filter hook prerouting priority filter; policy accept;
		tcp dport 21 ct helper set \"ftp-standard\"
	}
	chain in {
		type filter hook input priority filter; policy accept;
		ct state established,related accept
		tcp dport 21 accept
		tcp dport 1024-65535 ct state new drop
	}
}
";

/// What floods the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// trafgen's `sendto`: skbs through the intruder's veth and the bridge.
    Trafgen,
    /// `bench_flood_tx` in live frames mode: `xdp_frame`s into the server's
    /// veth ring, no skb before its XDP program.
    XdpFrames,
}

impl Source {
    pub fn short(self) -> &'static str {
        match self {
            Source::Trafgen => "trafgen",
            Source::XdpFrames => "XDP frames",
        }
    }
}

/// What guards the server during a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    None,
    Nft,
    Floor,
    Ftpct,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::None, Mode::Nft, Mode::Floor, Mode::Ftpct];

    pub fn label(self) -> &'static str {
        match self {
            Mode::None => "no filter (kernel answers RST)",
            Mode::Nft => "nftables, ct helper ftp, ct state new drop",
            Mode::Floor => "stateless XDP floor (bench_syn_floor)",
            Mode::Ftpct => "ftpct attach",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Nft => "nftables",
            Mode::Floor => "XDP floor",
            Mode::Ftpct => "ftpct",
        }
    }
}

/// One flood round of one mode.
#[derive(Clone, Debug, Default)]
pub struct Round {
    /// Receiver CPU time per packet it processed, ns.
    pub ns_per_packet: f64,
    /// Packets the server's eth0 processed.
    pub received: u64,
    /// Packets the generator sent.
    pub sent: u64,
    /// Packets the server sent back (RSTs).
    pub answered: u64,
    /// Packets dropped before the receiver (its queue was full): counted by
    /// the sending veth for trafgen's skbs, by the receiving one for XDP
    /// frames.
    pub queue_drops: u64,
    /// Generator rate, packets/s.
    pub gen_pps: f64,
    /// Share of CPU 1 the receiver used.
    pub rx_cpu_share: f64,
    /// Times the receiver's thread was switched in, per 1000 packets.
    pub wakeups_per_k: f64,
}

/// Per-mode rounds and context.
pub struct FloodResults {
    pub source: Source,
    pub rounds: Vec<(Mode, Vec<Round>)>,
    pub seconds_per_round: f64,
    pub napi_thread: String,
    pub idle_ns_per_s: f64,
    pub profiles: Vec<(Mode, Vec<(f64, String)>)>,
    pub ftpct_check: String,
    pub seconds: f64,
}

impl FloodResults {
    pub fn series(&self, mode: Mode) -> Vec<f64> {
        self.rounds
            .iter()
            .find(|(m, _)| *m == mode)
            .map(|(_, r)| r.iter().map(|x| x.ns_per_packet).collect())
            .unwrap_or_default()
    }

    pub fn summary(&self, mode: Mode, f: impl Fn(&Round) -> f64) -> Summary {
        self.rounds
            .iter()
            .find(|(m, _)| *m == mode)
            .map(|(_, r)| Summary::of(&r.iter().map(f).collect::<Vec<_>>()))
            .unwrap_or_default()
    }

    pub fn ratio(&self, a: Mode, b: Mode) -> Summary {
        Summary::of(&stats::ratios(&self.series(a), &self.series(b)))
    }
}

/// A trafgen configuration flooding SYNs from random [`FLOOD_SOURCES`]
/// addresses and ports to random ports 1024–65535 of the server.
pub fn trafgen_config(server_mac: &str, gen_mac: &str) -> String {
    format!(
        "{{ eth(da={server_mac}, sa={gen_mac}), \
         ipv4(sa=198.19.0.1, sa[2:2]=drnd(), da={}, ttl=64, df), \
         tcp(sp=drnd(1024, 65535), dp=drnd(1024, 65535), seq=drnd(), syn, win=64240) }}\n",
        SERVER.v4
    )
}

/// A running generator: `timeout` bounds it, SIGTERM (via the guard) stops
/// it early; both reach trafgen's worker through `timeout`'s process group.
pub struct Generator {
    child: ChildGuard,
    log: PathBuf,
    limit: Duration,
}

impl Generator {
    /// Starts trafgen in `ns`, pinned to [`GEN_CPU`], for at most `limit`.
    pub fn start(ns: &Netns, config: &Path, log: &Path, limit: Duration) -> Result<Self> {
        let _ = fs::remove_file(log);
        let secs = format!("{:.1}", limit.as_secs_f64());
        let cpu = GEN_CPU.to_string();
        let config = config.display().to_string();
        let argv = [
            "taskset",
            "-c",
            &cpu,
            "timeout",
            "-s",
            "INT",
            "-k",
            "2",
            &secs,
            "trafgen",
            "--dev",
            LAB_IFACE,
            "--conf",
            &config,
            "--cpus",
            "1",
            "--no-sock-mem",
            "--notouch-irq",
            // sendto(2) rather than the TX_RING: trafgen aborts when the
            // ring's flush returns EAGAIN, which a full veth queue causes.
            "-t",
            "0",
        ];
        let child = ns.spawn_logged(&argv, log)?;
        Ok(Self {
            child,
            log: log.to_path_buf(),
            limit,
        })
    }

    /// Waits for the bounded run to end; returns trafgen's packet count.
    pub fn finish(mut self) -> Result<u64> {
        let status = self
            .child
            .wait_timeout(self.limit + Duration::from_secs(5))?;
        if status.is_none() {
            self.child.stop(Duration::from_secs(2));
        }
        self.packets()
    }

    /// Stops it now; returns trafgen's packet count.
    pub fn stop(mut self) -> Result<u64> {
        self.child.stop(Duration::from_secs(3));
        self.packets()
    }

    fn packets(&self) -> Result<u64> {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .find(|l| l.contains("packets outgoing"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("trafgen reported no packet count: {}", text.trim()))
    }
}

/// Either generator, running.
pub enum Running {
    Trafgen(Generator),
    Xdp(XdpGenerator),
}

impl Running {
    /// Waits for the bounded run to end; returns the packets generated.
    pub fn finish(self) -> Result<u64> {
        match self {
            Running::Trafgen(g) => g.finish(),
            Running::Xdp(g) => g.finish(),
        }
    }
}

/// An nftables table in the server namespace, deleted on drop.
struct NftTable<'a> {
    ns: &'a Netns,
}

impl<'a> NftTable<'a> {
    fn install(ns: &'a Netns, dir: &Path) -> Result<Self> {
        let path = dir.join("ftpct-bench.nft");
        fs::write(&path, NFT_RULESET)?;
        ns.run_ok(&["nft", "-f", &path.display().to_string()])
            .context("installing the nftables ruleset")?;
        Ok(Self { ns })
    }
}

impl Drop for NftTable<'_> {
    fn drop(&mut self) {
        let _ = self
            .ns
            .run(&["nft", "delete", "table", "inet", "ftpct_bench"]);
    }
}

/// A reference program of the object attached to the lab interface of a
/// namespace with aya; detached on drop.
pub struct XdpLink<'a> {
    loaded: &'a mut Loaded,
    name: &'static str,
    link: Option<XdpLinkId>,
}

impl<'a> XdpLink<'a> {
    pub fn attach(loaded: &'a mut Loaded, name: &'static str, ns: &Netns) -> Result<Self> {
        let link = {
            let prog: &mut Xdp = loaded
                .ebpf
                .program_mut(name)
                .with_context(|| format!("program {name} missing"))?
                .try_into()?;
            sys::in_netns(ns, move || {
                prog.attach(LAB_IFACE, XdpMode::Default)
                    .with_context(|| format!("attaching {name}"))
            })?
        };
        Ok(Self {
            loaded,
            name,
            link: Some(link),
        })
    }
}

impl Drop for XdpLink<'_> {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            if let Some(Ok(prog)) = self
                .loaded
                .ebpf
                .program_mut(self.name)
                .map(<&mut Xdp>::try_from)
            {
                if let Err(e) = prog.detach(link) {
                    eprintln!("warning: detaching {}: {e}", self.name);
                }
            }
        }
    }
}

/// Whatever guards the server for one round.
enum Guard<'a> {
    None,
    Nft(#[allow(dead_code)] NftTable<'a>),
    Floor(#[allow(dead_code)] XdpLink<'a>),
    Ftpct(Ftpct<'a>),
}

/// The lab prepared for flooding: NAPI thread found and pinned.
pub struct FloodLab {
    pub lab: Lab,
    pub source: Source,
    /// The generator of [`Source::XdpFrames`].
    xdp: Option<XdpFlood>,
    pub napi_tid: u32,
    pub napi_name: String,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl FloodLab {
    pub fn new(source: Source) -> Result<Self> {
        let lab = Lab::new().context("building the lab")?;
        let server = lab.server();
        server.run_ok(&["ip", "route", "add", FLOOD_SOURCES, "via", "198.18.0.3"])?;
        sys::set_offload(server, LAB_IFACE, sys::ETHTOOL_SGRO, true)?;
        sys::set_offload(lab.switch(), "p-srv", sys::ETHTOOL_STSO, false)?;
        sys::write_sysfs(
            lab.switch(),
            "/sys/class/net/p-srv/queues/rx-0/rps_cpus",
            &format!("{:x}", 1u32 << GEN_CPU),
        )?;
        let before = sys::napi_threads();
        sys::write_sysfs(server, "/sys/class/net/eth0/threaded", "1")?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let (napi_tid, napi_name) = loop {
            let new: Vec<(u32, String)> = sys::napi_threads()
                .into_iter()
                .filter(|t| !before.contains(t) && t.1.starts_with("napi/eth0-"))
                .collect();
            match new.len() {
                1 => break new[0].clone(),
                0 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => bail!("expected one new NAPI thread for the server's eth0, found {new:?}"),
            }
        };
        sys::write_sysfs(
            server,
            "/sys/class/net/eth0/gro_flush_timeout",
            GRO_FLUSH_TIMEOUT_NS,
        )?;
        sys::write_sysfs(
            server,
            "/sys/class/net/eth0/napi_defer_hard_irqs",
            NAPI_DEFER_HARD_IRQS,
        )?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        ensure!(cpus > RX_CPU, "the flood test needs at least 2 CPUs");
        sys::pin_to_cpu(napi_tid, RX_CPU)?;
        let dir = tempfile::Builder::new().prefix("ftpct-bench-").tempdir()?;
        let config = dir.path().join("syn-flood.trafgen");
        let server_mac = sys::mac_address(server, LAB_IFACE)?;
        let gen_mac = sys::mac_address(lab.intruder(), LAB_IFACE)?;
        fs::write(&config, trafgen_config(&server_mac, &gen_mac))?;
        let xdp = match source {
            Source::Trafgen => None,
            Source::XdpFrames => Some(XdpFlood::new(&lab)?),
        };
        Ok(Self {
            lab,
            source,
            xdp,
            napi_tid,
            napi_name,
            dir,
            config,
        })
    }

    fn guard<'a>(&'a self, mode: Mode, floor: &'a mut Loaded) -> Result<Guard<'a>> {
        let server = self.lab.server();
        Ok(match mode {
            Mode::None => Guard::None,
            Mode::Nft => Guard::Nft(NftTable::install(server, self.dir.path())?),
            Mode::Floor => Guard::Floor(XdpLink::attach(
                floor,
                program_names::BENCH_SYN_FLOOR,
                server,
            )?),
            Mode::Ftpct => {
                Guard::Ftpct(Ftpct::attach(server, LAB_IFACE, &[], self.lab.pin_root())?)
            }
        })
    }

    /// Starts this lab's generator for at most `limit`.
    pub fn start(&self, limit: Duration) -> Result<Running> {
        Ok(match &self.xdp {
            Some(xdp) => Running::Xdp(xdp.start(limit)?),
            None => Running::Trafgen(Generator::start(
                self.lab.intruder(),
                &self.config,
                &self.dir.path().join("trafgen.log"),
                limit,
            )?),
        })
    }

    /// One flood of `secs` under the current guard.
    fn flood(&self, secs: f64, profile: Option<&Path>) -> Result<Round> {
        let server = self.lab.server();
        let rx0 = LinkStats::read(server, LAB_IFACE)?;
        let gen0 = LinkStats::read(self.lab.intruder(), LAB_IFACE)?;
        let peer0 = LinkStats::read(self.lab.switch(), "p-srv")?;
        let cpu0 = sys::cpu_time_ns(self.napi_tid)?;
        let switches0 = sys::context_switches(self.napi_tid)?;
        let start = Instant::now();
        let generator = self.start(Duration::from_secs_f64(secs))?;
        if let Some(out) = profile {
            std::thread::sleep(Duration::from_millis(300));
            let tid = self.napi_tid.to_string();
            let out = out.display().to_string();
            let mut cmd = std::process::Command::new("perf");
            cmd.args(["record", "-q", "-o", &out, "-t", &tid, "--", "sleep", "2"]);
            let _ = run_with_timeout(cmd, Duration::from_secs(20));
        }
        let generated = generator.finish()?;
        let elapsed = start.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_millis(100));
        let cpu = sys::cpu_time_ns(self.napi_tid)?.saturating_sub(cpu0);
        let switches = sys::context_switches(self.napi_tid)?.saturating_sub(switches0);
        let rx = LinkStats::read(server, LAB_IFACE)?.since(&rx0);
        let gen_stats = LinkStats::read(self.lab.intruder(), LAB_IFACE)?.since(&gen0);
        let peer = LinkStats::read(self.lab.switch(), "p-srv")?.since(&peer0);
        ensure!(
            rx.rx_packets > 1000,
            "the server received only {} packets ({} generated {generated})",
            rx.rx_packets,
            self.source.short()
        );
        let (sent, queue_drops) = match self.source {
            Source::Trafgen => (gen_stats.tx_packets.max(generated), peer.tx_dropped),
            // veth_xdp_xmit counts frames its full ring refused as the
            // receiver's rx_dropped.
            Source::XdpFrames => (generated, rx.rx_dropped),
        };
        Ok(Round {
            ns_per_packet: cpu as f64 / rx.rx_packets as f64,
            received: rx.rx_packets,
            sent,
            answered: rx.tx_packets,
            queue_drops,
            gen_pps: generated as f64 / secs.min(elapsed),
            rx_cpu_share: cpu as f64 / (elapsed * 1e9),
            wakeups_per_k: switches as f64 * 1000.0 / rx.rx_packets as f64,
        })
    }
}

/// Parameters of the flood phase.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub rounds: usize,
    pub seconds: f64,
    pub profile: bool,
}

/// Runs the flood rounds, modes interleaved.
pub fn run(params: Params, source: Source) -> Result<FloodResults> {
    let start = Instant::now();
    sys::require_tool("/usr/sbin/trafgen", "netsniff-ng")?;
    sys::require_tool("/usr/sbin/nft", "nftables")?;
    let fl = FloodLab::new(source)?;
    let mut floor = Loaded::load(&AttachConfig::with_defaults("lo"))?;

    // The receiver's own background use of CPU with no traffic.
    let idle0 = sys::cpu_time_ns(fl.napi_tid)?;
    std::thread::sleep(Duration::from_secs(1));
    let idle_ns_per_s = sys::cpu_time_ns(fl.napi_tid)?.saturating_sub(idle0) as f64;

    let mut rounds: Vec<(Mode, Vec<Round>)> = Mode::ALL.iter().map(|m| (*m, Vec::new())).collect();
    let mut ftpct_check = String::new();
    for round in 0..params.rounds {
        for (mi, mode) in Mode::ALL.iter().enumerate() {
            let guard = fl.guard(*mode, &mut floor)?;
            let before = match &guard {
                Guard::Ftpct(fw) => Some(fw.counters()?),
                _ => None,
            };
            let r = fl
                .flood(params.seconds, None)
                .with_context(|| format!("flood round {round}, {}", mode.short()))?;
            if let (Guard::Ftpct(fw), Some(before)) = (&guard, before) {
                let after = fw.counters()?;
                let dropped = after.since(&before, Counter::SynDropped);
                if round == 0 {
                    let _ = write!(
                        ftpct_check,
                        "ftpct counted {dropped} syn_dropped for {} packets received",
                        r.received
                    );
                }
            }
            drop(guard);
            eprintln!(
                "  flood ({}) round {round} {:<10} {:>7.0} ns/packet, {:>8} received, generator {:.0} pps",
                source.short(),
                mode.short(),
                r.ns_per_packet,
                r.received,
                r.gen_pps
            );
            rounds[mi].1.push(r);
        }
    }

    let mut profiles = Vec::new();
    if params.profile && sys::perf_available() {
        for mode in [Mode::Nft, Mode::Floor, Mode::Ftpct] {
            let guard = fl.guard(mode, &mut floor)?;
            let out = fl.dir.path().join(format!("perf-{}.data", mode.short()));
            fl.flood(PROFILE_SECS, Some(&out))?;
            drop(guard);
            profiles.push((mode, sys::perf_top(&out, 25)));
        }
    }
    Ok(FloodResults {
        source,
        rounds,
        seconds_per_round: params.seconds,
        napi_thread: fl.napi_name.clone(),
        idle_ns_per_s,
        profiles,
        ftpct_check,
        seconds: start.elapsed().as_secs_f64(),
    })
}
