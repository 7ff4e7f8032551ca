//! A legitimate 100 MB FTP download (vsftpd → curl, passive mode) without
//! ftpct, with ftpct, and both again during the trafgen SYN flood; and
//! during the flood of XDP frames ([`crate::nicflood`]) with the stateless
//! XDP floor against with ftpct. The lab's veths keep their default
//! configuration here (no threaded NAPI).
//!
//! One download lasts about a tenth of a second and the machine is shared,
//! so single downloads vary by tens of percent. To compare like with like,
//! the variants alternate *download by download* (A, B, C, A, B, C, …) and
//! every ratio is taken between downloads of the same cycle. That needs
//! attaching and detaching in milliseconds, which `ftpct attach` (a fresh
//! load and verification each time) cannot do: the alternating blocks attach
//! ftpct's own programs, loaded and configured by the ftpct library exactly
//! as `ftpct attach` loads them (same object, same policy, tcx egress first,
//! then XDP ingress), with aya. A last block checks that the real
//! `ftpct attach` gives the same throughput.

use std::fs;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use aya::programs::links::LinkOrder;
use aya::programs::tc::{SchedClassifierLinkId, TcAttachOptions, TcAttachType};
use aya::programs::xdp::{XdpLinkId, XdpMode};
use aya::programs::{SchedClassifier, Xdp};
use ftp_ebpf_common::program_names;
use ftp_userspace::attach::AttachConfig;
use ftpct_e2e::fixtures::pseudo_random_bytes;
use ftpct_e2e::servers::FtpServer;
use ftpct_e2e::{Family, Ftpct, LAB_IFACE, Lab, Netns, SERVER, Vsftpd};

use crate::flood::{self, FLOOD_SOURCES, Generator, XdpLink};
use crate::kernel::Loaded;
use crate::nicflood::XdpFlood;
use crate::stats::{self, Summary};
use crate::sys::{self, LinkStats};

/// Size of the downloaded file.
pub const FILE_BYTES: usize = 100_000_000;
const FILE_NAME: &str = "bench-100MB.bin";
/// curl's limit for one download (one takes well under a second here).
pub const MAX_TIME_SECS: u64 = 20;
/// Stalled downloads tolerated before the phase gives up (each costs
/// [`MAX_TIME_SECS`]).
const MAX_STALLS: usize = 4;

/// Cycles of the block without flood, of the block during the trafgen
/// flood and of the block during the flood of XDP frames, and rounds of the
/// `ftpct attach` check.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub cycles: usize,
    pub flood_cycles: usize,
    pub xdp_flood_cycles: usize,
    pub cli_rounds: usize,
}

/// Downloads per variant in each round of the `ftpct attach` check.
pub const CLI_DOWNLOADS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Plain,
    PassRef,
    Ftpct,
    PlainFlood,
    FtpctFlood,
    FloorXdpFlood,
    FtpctXdpFlood,
    CliPlain,
    Cli,
}

impl Mode {
    pub const ALL: [Mode; 9] = [
        Mode::Plain,
        Mode::PassRef,
        Mode::Ftpct,
        Mode::PlainFlood,
        Mode::FtpctFlood,
        Mode::FloorXdpFlood,
        Mode::FtpctXdpFlood,
        Mode::CliPlain,
        Mode::Cli,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Mode::Plain => "without ftpct",
            Mode::PassRef => "reference: `bench_xdp_pass` attached instead",
            Mode::Ftpct => "with ftpct",
            Mode::PlainFlood => "without ftpct, during the SYN flood",
            Mode::FtpctFlood => "with ftpct, during the SYN flood",
            Mode::FloorXdpFlood => {
                "with the XDP floor (`bench_syn_floor`), during the flood of XDP frames"
            }
            Mode::FtpctXdpFlood => "with ftpct, during the flood of XDP frames",
            Mode::CliPlain => "check: without ftpct (median of a round)",
            Mode::Cli => "check: `ftpct attach` (median of a round)",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Mode::Plain => "none",
            Mode::PassRef => "XDP_PASS",
            Mode::Ftpct => "ftpct",
            Mode::PlainFlood => "none+flood",
            Mode::FtpctFlood => "ftpct+flood",
            Mode::FloorXdpFlood => "floor+XDP flood",
            Mode::FtpctXdpFlood => "ftpct+XDP flood",
            Mode::CliPlain => "check: none",
            Mode::Cli => "check: ftpct attach",
        }
    }

    /// The variant each value is divided by (same cycle or round).
    pub fn reference(self) -> Option<Mode> {
        match self {
            Mode::PassRef | Mode::Ftpct => Some(Mode::Plain),
            Mode::FtpctFlood => Some(Mode::PlainFlood),
            Mode::FtpctXdpFlood => Some(Mode::FloorXdpFlood),
            Mode::Cli => Some(Mode::CliPlain),
            _ => None,
        }
    }
}

pub struct TransferResults {
    /// Per mode: MB/s per cycle (or per round for the check).
    pub rounds: Vec<(Mode, Vec<f64>)>,
    /// Downloads that did not finish within curl's limit: the variant and
    /// what curl reported. Their cycle is left out of every series.
    pub stalls: Vec<(Mode, String)>,
    /// Generator rate during the flooded downloads, packets/s.
    pub flood_pps: f64,
    /// During the downloads flooded with XDP frames: the generator's rate
    /// and the rate the server's `eth0` processed, packets/s.
    pub xdp_flood_pps: f64,
    pub xdp_flood_rx_pps: f64,
    pub params: Params,
    pub seconds: f64,
}

impl TransferResults {
    pub fn series(&self, mode: Mode) -> Vec<f64> {
        self.rounds
            .iter()
            .find(|(m, _)| *m == mode)
            .map(|(_, r)| r.clone())
            .unwrap_or_default()
    }

    pub fn summary(&self, mode: Mode) -> Summary {
        Summary::of(&self.series(mode))
    }

    /// Per-cycle ratio of `a` to `b` (same cycle or round).
    pub fn ratio(&self, a: Mode, b: Mode) -> Summary {
        Summary::of(&stats::ratios(&self.series(a), &self.series(b)))
    }

    fn push(&mut self, mode: Mode, mbps: f64) {
        if let Some((_, v)) = self.rounds.iter_mut().find(|(m, _)| *m == mode) {
            v.push(mbps);
        }
    }

    /// Records one cycle: every variant's throughput if all finished, else
    /// only the stalls (so the series stay paired cycle by cycle).
    fn cycle(&mut self, outcomes: Vec<(Mode, Outcome)>) -> Result<()> {
        if outcomes.iter().all(|(_, o)| matches!(o, Outcome::Done(_))) {
            for (mode, o) in outcomes {
                if let Outcome::Done(mbps) = o {
                    self.push(mode, mbps);
                }
            }
            return Ok(());
        }
        for (mode, o) in outcomes {
            if let Outcome::Stalled(what) = o {
                eprintln!("  transfer: a download {} stalled: {what}", mode.short());
                self.stalls.push((mode, what));
            }
        }
        ensure!(
            self.stalls.len() <= MAX_STALLS,
            "{} downloads stalled: {:?}",
            self.stalls.len(),
            self.stalls
        );
        Ok(())
    }

    /// Stalled downloads of `mode`.
    pub fn stalled(&self, mode: Mode) -> usize {
        self.stalls.iter().filter(|(m, _)| *m == mode).count()
    }
}

/// How a download ended.
enum Outcome {
    /// All bytes, at this many MB/s.
    Done(f64),
    /// curl gave up at its time limit; what it reported.
    Stalled(String),
}

/// ftpct's programs attached to the lab interface with aya (egress first,
/// as `ftpct attach` does); detached on drop, ingress first.
struct FtpctLinks<'a> {
    loaded: &'a mut Loaded,
    xdp: Option<XdpLinkId>,
    tc: Option<SchedClassifierLinkId>,
}

impl<'a> FtpctLinks<'a> {
    fn attach(loaded: &'a mut Loaded, ns: &Netns) -> Result<Self> {
        let ebpf = &mut loaded.ebpf;
        let (tc, xdp) = sys::in_netns(ns, || {
            let tc: &mut SchedClassifier = ebpf
                .program_mut(program_names::EGRESS)
                .context("egress program missing")?
                .try_into()?;
            let tc = tc
                .attach_with_options(
                    LAB_IFACE,
                    TcAttachType::Egress,
                    TcAttachOptions::TcxOrder(LinkOrder::default()),
                )
                .context("attaching the egress program (tcx)")?;
            let xdp: &mut Xdp = ebpf
                .program_mut(program_names::INGRESS)
                .context("ingress program missing")?
                .try_into()?;
            let xdp = xdp
                .attach(LAB_IFACE, XdpMode::Default)
                .context("attaching the ingress program")?;
            Ok((tc, xdp))
        })?;
        Ok(Self {
            loaded,
            xdp: Some(xdp),
            tc: Some(tc),
        })
    }
}

impl Drop for FtpctLinks<'_> {
    fn drop(&mut self) {
        let ebpf = &mut self.loaded.ebpf;
        if let Some(link) = self.xdp.take() {
            if let Some(Ok(prog)) = ebpf
                .program_mut(program_names::INGRESS)
                .map(<&mut Xdp>::try_from)
            {
                if let Err(e) = prog.detach(link) {
                    eprintln!("warning: detaching ftpct_ingress: {e}");
                }
            }
        }
        if let Some(link) = self.tc.take() {
            if let Some(Ok(prog)) = ebpf
                .program_mut(program_names::EGRESS)
                .map(<&mut SchedClassifier>::try_from)
            {
                if let Err(e) = prog.detach(link) {
                    eprintln!("warning: detaching ftpct_egress: {e}");
                }
            }
        }
    }
}

/// Everything a download needs.
#[derive(Clone)]
struct Download<'a> {
    lab: &'a Lab,
    url: String,
    user: String,
    /// Active mode (`PORT`: the server opens the data connection) instead
    /// of passive (`PASV`).
    active: bool,
}

impl Download<'_> {
    /// One download: MB/s (10^6 bytes per second), or a stall.
    fn run(&self) -> Result<Outcome> {
        let max_time = MAX_TIME_SECS.to_string();
        let mode: &[&str] = if self.active {
            &["--ftp-port", "-"]
        } else {
            &["--ftp-pasv", "--disable-epsv"]
        };
        let argv = [
            "curl",
            "--silent",
            "--show-error",
            "--max-time",
            &max_time,
            "--connect-timeout",
            "5",
            "--user",
            &self.user,
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{time_total}",
            &self.url,
        ]
        .into_iter()
        .chain(mode.iter().copied())
        .collect::<Vec<_>>();
        let out = self
            .lab
            .client()
            .run_timeout(&argv, Duration::from_secs(MAX_TIME_SECS + 10))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut parts = text.split_whitespace();
        let size: f64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
        let secs: f64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        match out.status.code() {
            Some(0) => {
                ensure!(
                    size as usize == FILE_BYTES && secs > 0.0,
                    "downloaded {size} bytes of {FILE_BYTES} in {secs} s"
                );
                Ok(Outcome::Done(size / secs / 1e6))
            }
            // curl's "operation timed out".
            Some(28) => Ok(Outcome::Stalled(format!(
                "{size:.0} of {FILE_BYTES} bytes after {secs:.0} s, curl: {stderr}"
            ))),
            _ => bail!("curl failed ({}): {stderr}", out.status),
        }
    }
}

/// Runs the three blocks.
pub fn run(params: Params) -> Result<TransferResults> {
    let start = Instant::now();
    let lab = Lab::new().context("building the lab")?;
    lab.server()
        .run_ok(&["ip", "route", "add", FLOOD_SOURCES, "via", "198.18.0.3"])?;
    let server = Vsftpd::start(lab.server()).context("starting vsftpd")?;
    fs::write(
        server.tree().path(FILE_NAME),
        pseudo_random_bytes(FILE_BYTES, 0xbe7c_4000),
    )
    .context("writing the file")?;
    let target = server.target(SERVER.ip(Family::V4));
    let dl = Download {
        lab: &lab,
        url: target.url(FILE_NAME),
        user: format!(
            "{}:{}",
            target.credentials.user, target.credentials.password
        ),
        active: false,
    };
    let dir = tempfile::Builder::new().prefix("ftpct-bench-").tempdir()?;
    let config = dir.path().join("syn-flood.trafgen");
    fs::write(
        &config,
        flood::trafgen_config(
            &sys::mac_address(lab.server(), LAB_IFACE)?,
            &sys::mac_address(lab.intruder(), LAB_IFACE)?,
        ),
    )?;
    let mut pass = Loaded::load(&AttachConfig::with_defaults("lo"))?;
    let mut fw = Loaded::load(&AttachConfig::with_defaults(LAB_IFACE))?;
    let mut res = TransferResults {
        rounds: Mode::ALL.iter().map(|m| (*m, Vec::new())).collect(),
        stalls: Vec::new(),
        flood_pps: 0.0,
        xdp_flood_pps: 0.0,
        xdp_flood_rx_pps: 0.0,
        params,
        seconds: 0.0,
    };
    // Warm the page cache and the path.
    if let Outcome::Stalled(what) = dl.run().context("warm-up download")? {
        bail!("the warm-up download without ftpct stalled: {what}");
    }

    // Block 1: none, XDP_PASS, ftpct — download by download.
    for cycle in 0..params.cycles {
        let ctx = || format!("download cycle {cycle}");
        let plain = dl.run().with_context(ctx)?;
        let pass_ref = {
            let _link = XdpLink::attach(&mut pass, program_names::BENCH_PASS, lab.server())?;
            dl.run().with_context(ctx)?
        };
        let with = {
            let _links = FtpctLinks::attach(&mut fw, lab.server())?;
            dl.run().with_context(ctx)?
        };
        res.cycle(vec![
            (Mode::Plain, plain),
            (Mode::PassRef, pass_ref),
            (Mode::Ftpct, with),
        ])?;
    }
    eprintln!(
        "  transfer: none {:.0} MB/s, XDP_PASS {:.0}, ftpct {:.0} (medians of {} cycles)",
        res.summary(Mode::Plain).median,
        res.summary(Mode::PassRef).median,
        res.summary(Mode::Ftpct).median,
        params.cycles
    );

    // Block 2: the same during the flood, none and ftpct alternating.
    if params.flood_cycles > 0 {
        let limit = Duration::from_secs(MAX_TIME_SECS * 2 * params.flood_cycles as u64);
        let generator = Generator::start(
            lab.intruder(),
            &config,
            &dir.path().join("trafgen.log"),
            limit,
        )?;
        std::thread::sleep(Duration::from_millis(500));
        let flood_start = Instant::now();
        let mut outcome = Ok(());
        for cycle in 0..params.flood_cycles {
            let result = flood_cycle(&dl, &mut fw, lab.server()).and_then(|(plain, with)| {
                res.cycle(vec![(Mode::PlainFlood, plain), (Mode::FtpctFlood, with)])
            });
            if let Err(e) = result {
                outcome = Err(e.context(format!("flooded download cycle {cycle}")));
                break;
            }
        }
        let elapsed = flood_start.elapsed().as_secs_f64() + 0.5;
        let sent = generator.stop()?;
        res.flood_pps = sent as f64 / elapsed;
        outcome?;
        eprintln!(
            "  transfer during the flood ({:.0} pps): none {:.0} MB/s, ftpct {:.0}",
            res.flood_pps,
            res.summary(Mode::PlainFlood).median,
            res.summary(Mode::FtpctFlood).median
        );
    }

    // Block 3: during the flood of XDP frames, the XDP floor and ftpct
    // alternating (one of them is always attached, so the server's veth
    // takes the frames).
    if params.xdp_flood_cycles > 0 {
        // Active mode: the floor drops every SYN to a port ≥ 1024, so it
        // would drop a passive data connection.
        let dl = Download {
            active: true,
            ..dl.clone()
        };
        let xdp = XdpFlood::new(&lab)?;
        let rx0 = LinkStats::read(lab.server(), LAB_IFACE)?;
        let limit = Duration::from_secs(MAX_TIME_SECS * 2 * params.xdp_flood_cycles as u64);
        let generator = xdp.start(limit)?;
        std::thread::sleep(Duration::from_millis(200));
        let flood_start = Instant::now();
        let mut outcome = Ok(());
        for cycle in 0..params.xdp_flood_cycles {
            let result = xdp_flood_cycle(&dl, &mut pass, &mut fw, lab.server(), cycle % 2 == 1)
                .and_then(|(floor, with)| {
                    res.cycle(vec![
                        (Mode::FloorXdpFlood, floor),
                        (Mode::FtpctXdpFlood, with),
                    ])
                });
            if let Err(e) = result {
                outcome = Err(e.context(format!("download cycle {cycle} flooded with XDP frames")));
                break;
            }
        }
        let elapsed = flood_start.elapsed().as_secs_f64() + 0.2;
        let sent = generator.stop()?;
        let rx = LinkStats::read(lab.server(), LAB_IFACE)?.since(&rx0);
        res.xdp_flood_pps = sent as f64 / elapsed;
        res.xdp_flood_rx_pps = rx.rx_packets as f64 / elapsed;
        outcome?;
        eprintln!(
            "  transfer during the XDP-frames flood ({:.0} pps generated, {:.0} processed): floor {:.0} MB/s, ftpct {:.0}",
            res.xdp_flood_pps,
            res.xdp_flood_rx_pps,
            res.summary(Mode::FloorXdpFlood).median,
            res.summary(Mode::FtpctXdpFlood).median
        );
    }

    // Block 4: the real `ftpct attach`, a few rounds.
    for round in 0..params.cli_rounds {
        let ctx = || format!("ftpct attach check, round {round}");
        let plain: Vec<Outcome> = (0..CLI_DOWNLOADS)
            .map(|_| dl.run())
            .collect::<Result<_>>()
            .with_context(ctx)?;
        let attached = Ftpct::attach(lab.server(), LAB_IFACE, &[], lab.pin_root())?;
        let with: Result<Vec<Outcome>> = (0..CLI_DOWNLOADS).map(|_| dl.run()).collect();
        attached.detach()?;
        let with = with.with_context(ctx)?;
        let mut done = |mode: Mode, outcomes: Vec<Outcome>| -> Result<Vec<f64>> {
            let mut v = Vec::new();
            for o in outcomes {
                match o {
                    Outcome::Done(x) => v.push(x),
                    Outcome::Stalled(what) => res.cycle(vec![(mode, Outcome::Stalled(what))])?,
                }
            }
            Ok(v)
        };
        let plain = done(Mode::CliPlain, plain)?;
        let with = done(Mode::Cli, with)?;
        if !plain.is_empty() && !with.is_empty() {
            res.push(Mode::CliPlain, stats::median(&plain));
            res.push(Mode::Cli, stats::median(&with));
        }
    }
    res.seconds = start.elapsed().as_secs_f64();
    Ok(res)
}

/// One cycle of the block flooded with XDP frames: with the floor, then
/// with ftpct (the other way round if `ftpct_first`).
fn xdp_flood_cycle(
    dl: &Download<'_>,
    floor: &mut Loaded,
    fw: &mut Loaded,
    ns: &Netns,
    ftpct_first: bool,
) -> Result<(Outcome, Outcome)> {
    let mut with_floor = || -> Result<Outcome> {
        let _link = XdpLink::attach(floor, program_names::BENCH_SYN_FLOOR, ns)?;
        dl.run()
    };
    let mut with_ftpct = || -> Result<Outcome> {
        let _links = FtpctLinks::attach(fw, ns)?;
        dl.run()
    };
    Ok(if ftpct_first {
        let with = with_ftpct()?;
        (with_floor()?, with)
    } else {
        let plain = with_floor()?;
        (plain, with_ftpct()?)
    })
}

/// One cycle of the flooded block: without, then with ftpct.
fn flood_cycle(dl: &Download<'_>, fw: &mut Loaded, ns: &Netns) -> Result<(Outcome, Outcome)> {
    let plain = dl.run()?;
    let links = FtpctLinks::attach(fw, ns)?;
    let with = dl.run();
    drop(links);
    Ok((plain, with?))
}
