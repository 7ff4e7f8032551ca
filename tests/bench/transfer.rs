//! A legitimate 100 MB FTP download (vsftpd → curl, passive mode) without
//! ftpct, with ftpct, and both again during the SYN flood. The lab's veths
//! keep their default configuration here (no threaded NAPI).
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

use anyhow::{Context, Result, ensure};
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
use crate::stats::{self, Summary};
use crate::sys;

/// Size of the downloaded file.
pub const FILE_BYTES: usize = 100_000_000;
const FILE_NAME: &str = "bench-100MB.bin";
/// curl's limit for one download.
const MAX_TIME_SECS: u64 = 60;

/// Cycles of the block without flood and of the block during the flood,
/// and rounds of the `ftpct attach` check.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub cycles: usize,
    pub flood_cycles: usize,
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
    CliPlain,
    Cli,
}

impl Mode {
    pub const ALL: [Mode; 7] = [
        Mode::Plain,
        Mode::PassRef,
        Mode::Ftpct,
        Mode::PlainFlood,
        Mode::FtpctFlood,
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
            Mode::CliPlain => "check: none",
            Mode::Cli => "check: ftpct attach",
        }
    }

    /// The variant each value is divided by (same cycle or round).
    pub fn reference(self) -> Option<Mode> {
        match self {
            Mode::PassRef | Mode::Ftpct => Some(Mode::Plain),
            Mode::FtpctFlood => Some(Mode::PlainFlood),
            Mode::Cli => Some(Mode::CliPlain),
            _ => None,
        }
    }
}

pub struct TransferResults {
    /// Per mode: MB/s per cycle (or per round for the check).
    pub rounds: Vec<(Mode, Vec<f64>)>,
    /// Generator rate during the flooded downloads, packets/s.
    pub flood_pps: f64,
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
struct Download<'a> {
    lab: &'a Lab,
    url: String,
    user: String,
}

impl Download<'_> {
    /// One download: MB/s (10^6 bytes per second).
    fn run(&self) -> Result<f64> {
        let out = self.lab.client().run_ok_timeout(
            &[
                "curl",
                "--silent",
                "--show-error",
                "--max-time",
                &MAX_TIME_SECS.to_string(),
                "--connect-timeout",
                "5",
                "--user",
                &self.user,
                "--ftp-pasv",
                "--disable-epsv",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download} %{time_total}",
                &self.url,
            ],
            Duration::from_secs(MAX_TIME_SECS + 10),
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut parts = text.split_whitespace();
        let size: f64 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .context("curl size")?;
        let secs: f64 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .context("curl time")?;
        ensure!(
            size as usize == FILE_BYTES,
            "downloaded {size} bytes of {FILE_BYTES}"
        );
        Ok(size / secs / 1e6)
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
        flood_pps: 0.0,
        params,
        seconds: 0.0,
    };
    // Warm the page cache and the path.
    dl.run().context("warm-up download")?;

    // Block 1: none, XDP_PASS, ftpct — download by download.
    for cycle in 0..params.cycles {
        let plain = dl.run();
        let pass_ref = {
            let _link = XdpLink::attach(&mut pass, program_names::BENCH_PASS, lab.server())?;
            dl.run()
        };
        let with = {
            let _links = FtpctLinks::attach(&mut fw, lab.server())?;
            dl.run()
        };
        let ctx = || format!("download cycle {cycle}");
        res.push(Mode::Plain, plain.with_context(ctx)?);
        res.push(Mode::PassRef, pass_ref.with_context(ctx)?);
        res.push(Mode::Ftpct, with.with_context(ctx)?);
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
            match flood_cycle(&dl, &mut fw, lab.server()) {
                Ok((plain, with)) => {
                    res.push(Mode::PlainFlood, plain);
                    res.push(Mode::FtpctFlood, with);
                }
                Err(e) => {
                    outcome = Err(e.context(format!("flooded download cycle {cycle}")));
                    break;
                }
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

    // Block 3: the real `ftpct attach`, a few rounds.
    for round in 0..params.cli_rounds {
        let plain: Result<Vec<f64>> = (0..CLI_DOWNLOADS).map(|_| dl.run()).collect();
        let attached = Ftpct::attach(lab.server(), LAB_IFACE, &[], lab.pin_root())?;
        let with: Result<Vec<f64>> = (0..CLI_DOWNLOADS).map(|_| dl.run()).collect();
        attached.detach()?;
        let ctx = || format!("ftpct attach check, round {round}");
        res.push(Mode::CliPlain, stats::median(&plain.with_context(ctx)?));
        res.push(Mode::Cli, stats::median(&with.with_context(ctx)?));
    }
    res.seconds = start.elapsed().as_secs_f64();
    Ok(res)
}

/// One cycle of the flooded block: (without, with ftpct) in MB/s.
fn flood_cycle(dl: &Download<'_>, fw: &mut Loaded, ns: &Netns) -> Result<(f64, f64)> {
    let plain = dl.run()?;
    let links = FtpctLinks::attach(fw, ns)?;
    let with = dl.run();
    drop(links);
    Ok((plain, with?))
}
