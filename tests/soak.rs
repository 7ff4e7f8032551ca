//! Soak (issue #12, item 10): mixed FTP traffic through `ftpct daemon`
//! (two clients at once; curl, ftplib and lftp; PASV, EPSV, PORT and EPRT
//! over IPv4, EPSV and EPRT over IPv6) while the intruder floods the
//! guarded ports with SYNs from spoofed addresses and probes them from its
//! own. At the end no legitimate transfer has failed, every table is back
//! at its baseline, and the daemon's memory is flat.
//!
//! `FTPCT_SOAK_SECS` sets the traffic's duration (default 45 s, the run
//! `cargo xtask test` makes); `cargo xtask soak --minutes N` sets it to N
//! minutes and prints the report.
//!
//! Needs root, vsftpd, curl, lftp, python3 (ftplib, scapy) and a built
//! ftpct (`FTPCT_BIN`). Run: `cargo test -p ftpct-e2e --test soak`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ftpct_e2e::clients::{curl_download, ftplib_download, lftp_download_mode, tcp_connect};
use ftpct_e2e::fixtures::FileDigest;
use ftpct_e2e::forge::{Segment, send_repeatedly};
use ftpct_e2e::servers::FtpTarget;
use ftpct_e2e::{
    ConnectResult, Daemon, Family, FtpServer, INTRUDER, LAB_IFACE, Lab, Netns, SERVER, SMALL_FILE,
    TransferMode, Vsftpd,
};

/// Seconds of traffic unless `FTPCT_SOAK_SECS` says otherwise.
const DEFAULT_SECS: u64 = 45;

/// Expectations live this long in the soak, so that the tables drain soon
/// after the traffic stops.
const EXPECT_TIMEOUT_SECS: u64 = 5;

/// How long the tables may take to drain: an expectation's lifetime plus a
/// closing flow's (10 s), with room.
const DRAIN: Duration = Duration::from_secs(30);

/// Growth of the daemon's resident memory from after the first round to
/// the end that still counts as flat.
const RSS_SLACK_KIB: u64 = 4 * 1024;

type Download = fn(&Netns, &FtpTarget, &str, TransferMode) -> Result<FileDigest>;

/// Every client and mode, both families.
fn cases() -> Vec<(&'static str, Download, Family, TransferMode)> {
    let mut cases: Vec<(&'static str, Download, Family, TransferMode)> = Vec::new();
    for (name, download) in [
        ("curl", curl_download as Download),
        ("ftplib", ftplib_download),
        ("lftp", lftp_download_mode),
    ] {
        for mode in [
            TransferMode::Pasv,
            TransferMode::Epsv,
            TransferMode::Port,
            TransferMode::Eprt,
        ] {
            cases.push((name, download, Family::V4, mode));
        }
        for mode in [TransferMode::Epsv, TransferMode::Eprt] {
            cases.push((name, download, Family::V6, mode));
        }
    }
    cases
}

/// The live entries of the server's tables, from `ftpct status --json`.
fn tables(lab: &Lab) -> Result<[u64; 3]> {
    let s = &lab.status()?;
    let n = |field: &str| {
        s[field]
            .as_u64()
            .with_context(|| format!("no {field} in {s}"))
    };
    Ok([
        n("expectations")?,
        n("admitted_flows")?,
        n("control_connections")?,
    ])
}

/// Resident memory of process `pid` in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

/// One client's rounds until `stop`: every case in turn, checking the
/// content; returns (transfers, failures with what failed).
fn client_rounds(
    ns: &Netns,
    server: &Vsftpd,
    expected: &FileDigest,
    stop: &AtomicBool,
) -> (u64, Vec<String>) {
    let (mut done, mut failed) = (0, Vec::new());
    while !stop.load(Ordering::Relaxed) {
        for (client, download, family, mode) in cases() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let target = server.target(SERVER.ip(family));
            match download(ns, &target, SMALL_FILE, mode) {
                Ok(digest) if digest == *expected => done += 1,
                Ok(_) => failed.push(format!("{client} {family:?} {mode:?}: wrong content")),
                Err(err) => failed.push(format!("{client} {family:?} {mode:?}: {err:#}")),
            }
        }
    }
    (done, failed)
}

#[test]
fn soak_mixed_traffic_and_a_flood_through_the_daemon() -> Result<()> {
    let secs = std::env::var("FTPCT_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECS);
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let expected = server.tree().digest(SMALL_FILE)?;
    let config = format!(
        "pin-root = \"{}\"\nmetrics = \"127.0.0.1:9469\"\n[[interface]]\nname = \"{LAB_IFACE}\"\n\
         expect-timeout = {EXPECT_TIMEOUT_SECS}\n",
        lab.pin_root().display()
    );
    let daemon = Daemon::start(lab.server(), &config)?;
    let baseline = tables(&lab)?;

    // The flood: SYNs from 64 spoofed addresses to guarded ports, a round
    // every 10 ms, for the whole run.
    let segments: Vec<Segment> = (0..64u16)
        .map(|n| {
            let src = format!("198.19.{}.{}", n / 16, n % 16 + 1);
            Segment::new(
                src.parse().expect("address"),
                10_000 + n,
                SERVER.ip(Family::V4),
                40_000 + n,
                "S",
            )
        })
        .collect();
    let flood = send_repeatedly(
        lab.intruder(),
        lab.server(),
        &segments,
        Duration::from_secs(secs + 5),
        Duration::from_millis(10),
    )?;

    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut rss = Vec::new();
    let (results, probes) = std::thread::scope(|scope| -> Result<_> {
        let one = scope.spawn(|| client_rounds(lab.client(), &server, &expected, &stop));
        let two = scope.spawn(|| client_rounds(lab.client2(), &server, &expected, &stop));
        // The intruder's own probes, and the daemon's memory, meanwhile.
        let mut probes = Vec::new();
        while started.elapsed() < Duration::from_secs(secs) {
            let port = 41_000 + (probes.len() as u16 % 1000);
            let result = tcp_connect(
                lab.intruder(),
                SERVER.ip(Family::V4),
                port,
                Duration::from_secs(1),
            );
            probes.push((port, result.map_err(|e| format!("{e:#}"))));
            rss.push(rss_kib(daemon.pid())?);
            std::thread::sleep(Duration::from_secs(1));
        }
        stop.store(true, Ordering::Relaxed);
        let one = one
            .join()
            .map_err(|_| anyhow::anyhow!("client one panicked"))?;
        let two = two
            .join()
            .map_err(|_| anyhow::anyhow!("client two panicked"))?;
        Ok(([one, two], probes))
    })?;
    drop(flood);
    let transfers: u64 = results.iter().map(|r| r.0).sum();
    let failures: Vec<&String> = results.iter().flat_map(|r| &r.1).collect();

    // Back to baseline once expectations expired and closed flows aged out.
    let drained_at = Instant::now();
    let mut last = tables(&lab)?;
    while last != baseline && drained_at.elapsed() < DRAIN {
        std::thread::sleep(Duration::from_secs(1));
        last = tables(&lab)?;
    }
    let out = lab.server().run_ok(&[
        "curl",
        "-sS",
        "--max-time",
        "5",
        "http://127.0.0.1:9469/metrics",
    ])?;
    let metrics = String::from_utf8_lossy(&out.stdout).into_owned();
    let sample = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or("missing")
            .to_string()
    };
    let (first, end) = (
        rss.get(1).or(rss.first()).copied().unwrap_or(0),
        rss.last().copied().unwrap_or(0),
    );
    println!(
        "soak {secs}s: {transfers} transfers, {} failed; {} intruder probes; tables {baseline:?} -> \
         {last:?} (expectations, admitted flows, control connections) {:.0}s after the traffic; \
         daemon RSS {first} -> {end} KiB; syn_dropped {}; events_sent {}; events_suppressed {}",
        failures.len(),
        probes.len(),
        drained_at.elapsed().as_secs_f64(),
        sample(
            "ftpct_ingress_packets_total{interface=\"eth0\",verdict=\"drop\",reason=\"syn_dropped\"}"
        ),
        sample("ftpct_events_total{interface=\"eth0\",event=\"events_sent\"}"),
        sample("ftpct_events_total{interface=\"eth0\",event=\"events_suppressed\"}"),
    );
    ensure!(failures.is_empty(), "failed transfers: {failures:#?}");
    ensure!(transfers >= 10, "only {transfers} transfers in {secs}s");
    let admitted: Vec<_> = probes
        .iter()
        .filter(|(_, r)| !matches!(r, Ok(ConnectResult::TimedOut)))
        .collect();
    ensure!(
        admitted.is_empty(),
        "intruder probes not dropped ({} from {}): {admitted:?}",
        admitted.len(),
        INTRUDER.ip(Family::V4)
    );
    ensure!(last == baseline, "tables {last:?}, baseline {baseline:?}");
    ensure!(
        end <= first + RSS_SLACK_KIB,
        "daemon memory grew: {first} -> {end} KiB ({rss:?})"
    );
    let mut daemon = daemon;
    ensure!(daemon.running()?, "the daemon stopped:\n{}", daemon.log());
    Ok(())
}
