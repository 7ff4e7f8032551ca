//! Audit events end to end (issue #12, item 6): `ftpct events` follows the
//! programs' events live, as `key=value` lines or JSON; under the daemon,
//! which logs every event, it gets them through the daemon (a ring buffer
//! has one reader), and the shipped fail2ban filter finds the offender in
//! the daemon's lines.
//!
//! Needs root and a built ftpct (`FTPCT_BIN`). Run:
//! `cargo test -p ftpct-e2e --test events -- --test-threads=2`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ftpct_e2e::clients::tcp_connect;
use ftpct_e2e::netns::unique_token;
use ftpct_e2e::process::{ChildGuard, wait_until};
use ftpct_e2e::{ConnectResult, Daemon, Family, INTRUDER, LAB_IFACE, Lab, SERVER, ftpct_bin};

/// How long a probe waits before calling a connection attempt dropped.
const PROBE: Duration = Duration::from_secs(2);

/// `ftpct events ARGS...` running in the server's namespace, its output in
/// a file of its own.
struct Follower {
    _child: ChildGuard,
    log: PathBuf,
}

impl Follower {
    fn start(lab: &Lab, args: &[&str]) -> Result<Self> {
        let log = std::env::temp_dir().join(format!("ftpct-events-{}.log", unique_token()));
        let mut argv = vec![ftpct_bin().display().to_string(), "events".into()];
        argv.extend(args.iter().map(|a| a.to_string()));
        argv.extend(["--pin-root".into(), lab.pin_root().display().to_string()]);
        let child = lab.server().spawn_logged(&argv, &log)?;
        // It opens the rings (or the daemon's socket) at once; give it a moment.
        std::thread::sleep(Duration::from_millis(500));
        Ok(Self { _child: child, log })
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) for a line holding every one of `needles`.
    fn wait_for(&self, needles: &[&str]) -> Result<String> {
        let mut found = None;
        wait_until(Duration::from_secs(10), || {
            found = self
                .output()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .map(str::to_string);
            Ok(found.is_some())
        })?;
        found.with_context(|| format!("no event with {needles:?} in:\n{}", self.output()))
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The intruder's SYN to a guarded port of the server, dropped.
fn probe(lab: &Lab, port: u16) -> Result<()> {
    let result = tcp_connect(lab.intruder(), SERVER.ip(Family::V4), port, PROBE)?;
    ensure!(result == ConnectResult::TimedOut, "port {port}: {result:?}");
    Ok(())
}

#[test]
fn ftpct_events_follows_dropped_syns_as_lines_and_json() -> Result<()> {
    let lab = Lab::new()?;
    let _fw = lab.attach(&[])?;
    // One at a time: without the daemon each reads the ring itself.
    let text = Follower::start(&lab, &[])?;
    probe(&lab, 40_123)?;
    let intruder = INTRUDER.ip(Family::V4).to_string();
    let line = text.wait_for(&[
        "reason=syn_dropped",
        &format!("src={intruder} "),
        "dport=40123",
    ])?;
    ensure!(
        line.starts_with("time=") && line.contains("iface=eth0"),
        "{line}"
    );
    drop(text);
    let json = Follower::start(&lab, &[LAB_IFACE, "--json"])?;
    probe(&lab, 40_125)?;
    let line = json.wait_for(&["syn_dropped", "40125"])?;
    let event: serde_json::Value = serde_json::from_str(&line)?;
    ensure!(
        event["src"] == intruder.as_str()
            && event["dst"] == SERVER.ip(Family::V4).to_string().as_str()
            && event["dport"] == 40_125
            && event["iface"] == LAB_IFACE,
        "{event}"
    );
    Ok(())
}

#[test]
fn the_daemon_logs_events_and_passes_them_to_ftpct_events() -> Result<()> {
    let lab = Lab::new()?;
    let config = format!(
        "pin-root = \"{}\"\n[[interface]]\nname = \"{LAB_IFACE}\"\n",
        lab.pin_root().display()
    );
    let mut daemon = Daemon::start(lab.server(), &config)?;
    let follower = Follower::start(&lab, &[])?;
    probe(&lab, 40_124)?;
    let intruder = INTRUDER.ip(Family::V4).to_string();
    follower.wait_for(&[
        "reason=syn_dropped",
        &format!("src={intruder} "),
        "dport=40124",
    ])?;
    daemon.wait_for_log("dport=40124", Duration::from_secs(10))?;
    let log = daemon.log();
    ensure!(
        log.lines()
            .any(|l| l.starts_with("ftpct: event time=") && l.contains("reason=syn_dropped")),
        "{log}"
    );
    Ok(())
}
