//! The control plane at scale (issue #13, item 4): how long `ftpct status`,
//! `flows` and `expectations` take with a million flows.
//!
//! ftpct is attached for real (`ftpct attach` in a namespace of its own,
//! on a veth, under a pin root of its own, tables sized for the fill);
//! its pinned admitted-flow and expectation tables are filled from user
//! space with the scale phase's filler entries ([`kernel::fill_flows`],
//! [`kernel::fill_expectations`]), all live. Each round then runs every
//! command once, the order rotating from round to round, timing the real
//! binary from spawn to exit while a reader drains its output (as a pipe
//! into another program would). `nsenter … true` is timed the same way:
//! the cost of starting a process in the namespace, which every command
//! pays. The output is checked: each listing must have one row per entry.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use aya::maps::{HashMap, MapData};
use ftp_ebpf_common::map_names;
use ftp_userspace::attach::monotonic_ns;
use ftpct_e2e::{Ftpct, Netns, ftpct_bin};

use crate::kernel;
use crate::stats::Summary;
use crate::sys;

/// Rounds and table fill.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub rounds: usize,
    /// Live admitted flows.
    pub flows: u32,
    /// Live expectations.
    pub expectations: u32,
}

/// One command timed: what it runs and what it must answer within.
pub struct Command {
    pub id: &'static str,
    /// Arguments after the binary (before `--pin-root`).
    pub args: &'static [&'static str],
    /// The limit, in milliseconds (none: measured for comparison).
    pub target_ms: Option<f64>,
    /// What each line of its output counts, if a listing: the JSON field
    /// every row has once, or the header for the text tables.
    rows: Rows,
}

/// How to count a command's rows in its output.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// Not a listing.
    None,
    /// Occurrences of `"iface":` (one per JSON row).
    Json,
    /// Lines after the header.
    Lines,
}

/// The commands, in the order of the table.
pub const COMMANDS: [Command; 7] = [
    Command {
        id: "nsenter",
        args: &[],
        target_ms: None,
        rows: Rows::None,
    },
    Command {
        id: "status",
        args: &["status"],
        target_ms: Some(200.0),
        rows: Rows::None,
    },
    Command {
        id: "status --json",
        args: &["status", "--json"],
        target_ms: Some(200.0),
        rows: Rows::None,
    },
    Command {
        id: "flows --json",
        args: &["flows", "--json"],
        target_ms: Some(1_000.0),
        rows: Rows::Json,
    },
    Command {
        id: "flows",
        args: &["flows"],
        target_ms: None,
        rows: Rows::Lines,
    },
    Command {
        id: "expectations",
        args: &["expectations"],
        target_ms: Some(1_000.0),
        rows: Rows::Lines,
    },
    Command {
        id: "expectations --json",
        args: &["expectations", "--json"],
        target_ms: Some(1_000.0),
        rows: Rows::Json,
    },
];

/// What the phase measured.
pub struct ControlResults {
    pub params: Params,
    /// Milliseconds per round, by [`COMMANDS`] index.
    pub ms: Vec<Vec<f64>>,
    /// Bytes of output of each command (last round).
    pub bytes: Vec<u64>,
    /// One run of the binary given by `FTPCT_BENCH_OLD_BIN` (the same
    /// commands as they were before batch reads), by [`COMMANDS`] index.
    pub old_ms: Option<Vec<f64>>,
    /// Seconds to fill the tables from user space.
    pub fill_seconds: f64,
    /// The hottest symbols (percent, symbol) of one run of each command
    /// that missed its target, under `perf record`, by [`COMMANDS`] index.
    pub profiles: Vec<(usize, Vec<(f64, String)>)>,
    pub seconds: f64,
}

impl ControlResults {
    pub fn summary(&self, i: usize) -> Summary {
        Summary::of(&self.ms[i])
    }
}

/// Interface ftpct attaches to (one end of a veth pair in the namespace).
const IFACE: &str = "ctl0";

/// A command gets this long before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the phase.
pub fn run(p: Params) -> Result<ControlResults> {
    let started = Instant::now();
    let ns = Netns::create("ctl")?;
    ns.run_ok(&[
        "ip", "link", "add", IFACE, "type", "veth", "peer", "name", "ctl1",
    ])?;
    for dev in [IFACE, "ctl1", "lo"] {
        ns.run_ok(&["ip", "link", "set", dev, "up"])?;
    }
    let pin_root = ftpct_e2e::ftpct::unique_pin_root();
    // Each table the power of two at or above its fill plus 2 %: the
    // kernel gives a hash table that many buckets anyway (a table sized a
    // tenth above 1M would have 2M buckets, all of which a walk visits).
    let size = |n: u32| (n + n / 50).max(1).next_power_of_two().to_string();
    let fw = Ftpct::attach(
        &ns,
        IFACE,
        &[
            "--max-flows",
            &size(p.flows),
            "--max-expectations",
            &size(p.expectations),
        ],
        &pin_root,
    )?;
    let fill_start = Instant::now();
    let now = monotonic_ns();
    let dir = fw.pin_dir();
    kernel::fill_flows(&mut pinned(&dir, map_names::FLOWS)?, p.flows, now)?;
    kernel::fill_expectations(
        &mut pinned(&dir, map_names::EXPECTATIONS)?,
        p.expectations,
        now,
    )?;
    let fill_seconds = fill_start.elapsed().as_secs_f64();

    let root = pin_root.display().to_string();
    let argv = |bin: &Path, c: &Command| -> Vec<String> {
        if c.args.is_empty() {
            return vec!["true".into()];
        }
        let mut v = vec![bin.display().to_string()];
        v.extend(c.args.iter().map(|a| a.to_string()));
        v.extend(["--pin-root".to_string(), root.clone()]);
        v
    };
    let bin = ftpct_bin();
    let check = |c: &Command, out: &Output| -> Result<()> {
        let want = if c.id.starts_with("flows") {
            p.flows
        } else {
            p.expectations
        };
        let rows = match c.rows {
            Rows::None => return Ok(()),
            Rows::Json => out.json_rows,
            Rows::Lines => out.lines.saturating_sub(1),
        };
        ensure!(
            rows == u64::from(want),
            "ftpct {}: {rows} rows, {want} entries",
            c.id
        );
        Ok(())
    };
    let status = timed(&ns, &argv(&bin, &COMMANDS[2]), true)?;
    ensure!(
        status.text.contains(&format!("\"flows\": {}", p.flows))
            && status
                .text
                .contains(&format!("\"expectations\": {}", p.expectations)),
        "ftpct status --json does not count the fill: {}",
        status.text
    );
    // Every listing once, untimed, its rows counted (counting 250 MB of
    // output would slow the reader the timed runs share two CPUs with).
    for c in &COMMANDS {
        check(c, &timed(&ns, &argv(&bin, c), true)?)?;
    }
    let mut ms = vec![Vec::new(); COMMANDS.len()];
    let mut bytes = vec![0; COMMANDS.len()];
    for round in 0..p.rounds {
        for k in 0..COMMANDS.len() {
            let i = (round + k) % COMMANDS.len();
            let out = timed(&ns, &argv(&bin, &COMMANDS[i]), false)?;
            ms[i].push(out.seconds * 1e3);
            bytes[i] = out.bytes;
        }
    }
    let old_ms = match std::env::var_os("FTPCT_BENCH_OLD_BIN").map(PathBuf::from) {
        Some(old) => {
            let mut v = Vec::new();
            for c in &COMMANDS {
                let out = timed(&ns, &argv(&old, c), true)?;
                check(c, &out).context("the old binary")?;
                v.push(out.seconds * 1e3);
            }
            Some(v)
        }
        None => None,
    };
    let mut profiles = Vec::new();
    if sys::perf_available() {
        let dir = tempfile::Builder::new()
            .prefix("ftpct-bench-")
            .tempdir()
            .context("temp dir for perf")?;
        for (i, c) in COMMANDS.iter().enumerate() {
            let missed = c
                .target_ms
                .is_some_and(|limit| Summary::of(&ms[i]).median >= limit);
            if !missed {
                continue;
            }
            let data = dir.path().join(format!("perf-{i}.data"));
            let mut v: Vec<String> = ["perf", "record", "-q", "-o"]
                .iter()
                .map(|a| a.to_string())
                .collect();
            v.push(data.display().to_string());
            v.push("--".into());
            v.extend(argv(&bin, c));
            timed(&ns, &v, false).with_context(|| format!("profiling ftpct {}", c.id))?;
            profiles.push((i, sys::perf_top(&data, 8)));
        }
    }
    drop(fw);
    drop(ns);
    Ok(ControlResults {
        params: p,
        ms,
        bytes,
        old_ms,
        fill_seconds,
        profiles,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The pinned hash (or LRU hash) map `name` of `dir`.
fn pinned<K: aya::Pod, V: aya::Pod>(dir: &Path, name: &str) -> Result<HashMap<MapData, K, V>> {
    let data = MapData::from_pin(dir.join(name)).with_context(|| format!("opening {name}"))?;
    let map = aya::maps::Map::from_map_data(data).with_context(|| format!("typing {name}"))?;
    HashMap::try_from(map).with_context(|| format!("{name} as a hash map"))
}

/// What a timed run printed, in brief.
struct Output {
    seconds: f64,
    bytes: u64,
    lines: u64,
    json_rows: u64,
    /// The first 64 KiB.
    text: String,
}

/// Runs `argv` in `ns` and times it from spawn to exit, its output read
/// as it comes (its rows counted if `count`); killed (by PID) after
/// [`COMMAND_TIMEOUT`].
fn timed(ns: &Netns, argv: &[String], count: bool) -> Result<Output> {
    let mut cmd = ns.command(argv);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", argv.join(" ")))?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let reader = thread::spawn(move || read_output(stdout, count));
    let status = wait_bounded(&mut child, start + COMMAND_TIMEOUT);
    let seconds = start.elapsed().as_secs_f64();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let mut out = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the output reader panicked"))??;
    let status = status?;
    ensure!(
        status.success(),
        "{} exited with {status}: {stderr}",
        argv.join(" ")
    );
    out.seconds = seconds;
    Ok(out)
}

/// Waits for `child` until `deadline`, then kills it.
fn wait_bounded(child: &mut Child, deadline: Instant) -> Result<std::process::ExitStatus> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("killed after {} s", COMMAND_TIMEOUT.as_secs());
        }
        thread::sleep(Duration::from_micros(200));
    }
}

/// Reads `r` to its end, counting bytes and, if `count`, lines and JSON
/// rows.
fn read_output(mut r: impl std::io::Read, count: bool) -> Result<Output> {
    const ROW: &[u8] = b"\"iface\":";
    let mut out = Output {
        seconds: 0.0,
        bytes: 0,
        lines: 0,
        json_rows: 0,
        text: String::new(),
    };
    let mut buf = vec![0u8; 1 << 20];
    // The end of the previous read, so a row marker split across two reads counts.
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = r.read(&mut buf).context("reading the command's output")?;
        if n == 0 {
            return Ok(out);
        }
        let chunk = &buf[..n];
        out.bytes += n as u64;
        if !count {
            continue;
        }
        out.lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        if out.text.len() < 65_536 {
            out.text.push_str(&String::from_utf8_lossy(chunk));
        }
        carry.extend_from_slice(chunk);
        out.json_rows += carry.windows(ROW.len()).filter(|w| *w == ROW).count() as u64;
        let keep = carry.len().min(ROW.len() - 1);
        carry.drain(..carry.len() - keep);
    }
}
