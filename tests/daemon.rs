//! ftpct as a service (issue #12, items 1, 2 and 7): `ftpct daemon` guards
//! the interfaces of its configuration file, applies a reload live (and
//! refuses a broken file, keeping what runs), adopts the attachment it
//! finds after a restart with the sessions in it, exits non-zero when an
//! interface stops being guarded behind its back, probes FTP servers that
//! start after it, and serves metrics that promtool accepts. The shipped
//! systemd unit passes `systemd-analyze verify`.
//!
//! Needs root, vsftpd, curl, promtool (tests/install-deps.sh) and a built
//! ftpct (`FTPCT_BIN`). Run:
//! `cargo test -p ftpct-e2e --test daemon -- --test-threads=2`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use ftpct_e2e::clients::{curl_download, ftplib_download};
use ftpct_e2e::ftpct::workspace_root;
use ftpct_e2e::{
    Daemon, Family, FtpServer, FtpSession, LAB_IFACE, Lab, SERVER, SMALL_FILE, ServerOptions, Tls,
    TransferMode, Vsftpd, ftpct_bin, ftpct_run,
};

/// Where the daemons of these tests serve metrics (inside the server's
/// namespace, so parallel tests do not meet).
const METRICS: &str = "127.0.0.1:9469";

/// A configuration for the lab's server interface with `options` (TOML
/// lines of the `[[interface]]` table).
fn config(lab: &Lab, options: &str) -> String {
    format!(
        "pin-root = \"{}\"\nmetrics = \"{METRICS}\"\nftps-rescan = 1\n\n[[interface]]\n\
         name = \"{LAB_IFACE}\"\n{options}\n",
        lab.pin_root().display()
    )
}

#[test]
fn the_daemon_guards_its_interface_and_a_reload_changes_it_live() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let mut daemon = Daemon::start(lab.server(), &config(&lab, "expect-timeout = 30"))?;
    let s = lab.status()?;
    ensure!(
        s["guarded"] == true && s["expect_timeout_secs"] == 30,
        "status: {s}"
    );
    // A session with a live expectation, from before the reload.
    let mut session = FtpSession::open(lab.client(), &server.target(SERVER.ip(Family::V4)))?;
    session.pasv()?;

    daemon.reload(&config(
        &lab,
        "expect-timeout = 45\nallow-ports = \"8080\"\nforce = true",
    ))?;
    daemon.wait_for_log("configuration reloaded", Duration::from_secs(10))?;
    let log = daemon.log();
    ensure!(
        log.contains("expectation lifetime 45s")
            && log.contains("open inside the guarded ports: 8080"),
        "reload did not say what changed:\n{log}"
    );
    let s = lab.status()?;
    ensure!(
        s["expect_timeout_secs"] == 45 && s["guarded_ports"] == "1024-8079,8081-65535",
        "status after reload: {s}"
    );
    let digest = session
        .retr(SMALL_FILE)
        .context("the session's transfer after the reload")?;
    ensure!(digest == server.tree().digest(SMALL_FILE)?, "wrong content");

    // A file with an error is refused and the running configuration stays.
    daemon.reload("[[interface]]\nname = \"eth0\"\nmax-expect-per-conn = 9\n")?;
    daemon.wait_for_log("reload failed", Duration::from_secs(10))?;
    ensure!(
        daemon.log().contains("max-expect-per-conn"),
        "the refusal does not name the setting:\n{}",
        daemon.log()
    );
    ensure!(daemon.running()?, "a broken reload stopped the daemon");
    let s = lab.status()?;
    ensure!(
        s["expect_timeout_secs"] == 45,
        "status after a refused reload: {s}"
    );
    session.quit()
}

#[test]
fn a_restarted_daemon_adopts_the_attachment_and_its_sessions_survive() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let mut daemon = Daemon::start(lab.server(), &config(&lab, ""))?;
    let ingress_before = lab.status()?["ingress_prog_id"].clone();
    let mut session = FtpSession::open(lab.client(), &server.target(SERVER.ip(Family::V4)))?;
    session.pasv()?;

    let exit = daemon.terminate()?;
    ensure!(exit.success(), "SIGTERM: {exit}\n{}", daemon.log());
    ensure!(
        lab.status()?["guarded"] == true,
        "stopping the daemon unguarded the interface"
    );
    drop(daemon);

    let daemon = Daemon::start(lab.server(), &config(&lab, ""))?;
    let log = daemon.log();
    ensure!(
        log.contains("adopting the attachment") && !log.contains("already attached"),
        "restart:\n{log}"
    );
    ensure!(
        lab.status()?["ingress_prog_id"] == ingress_before,
        "the restart replaced the programs"
    );
    let digest = session
        .retr(SMALL_FILE)
        .context("the session's transfer after the restart")?;
    ensure!(digest == server.tree().digest(SMALL_FILE)?, "wrong content");
    session.quit()
}

#[test]
fn the_daemon_exits_non_zero_when_its_interface_stops_being_guarded() -> Result<()> {
    let lab = Lab::new()?;
    let mut daemon = Daemon::start(lab.server(), &config(&lab, ""))?;
    let root = lab.pin_root().display().to_string();
    let out = ftpct_run(lab.server(), &["detach", LAB_IFACE, "--pin-root", &root])?;
    ensure!(out.status.success(), "detach: {out:?}");
    let exit = daemon.wait_exit(Duration::from_secs(10))?;
    ensure!(
        exit.code() == Some(1) && daemon.log().contains("eth0 is no longer guarded"),
        "exit {exit}:\n{}",
        daemon.log()
    );
    drop(daemon);
    // Started again (as systemd's Restart= would), it guards anew.
    let daemon = Daemon::start(lab.server(), &config(&lab, ""))?;
    ensure!(
        daemon.log().contains("eth0: guarding") && lab.status()?["guarded"] == true,
        "{}",
        daemon.log()
    );
    Ok(())
}

#[test]
fn an_ftps_server_started_after_the_daemon_is_inspected() -> Result<()> {
    let lab = Lab::new()?;
    let mut daemon = Daemon::start(lab.server(), &config(&lab, ""))?;
    let server = Vsftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    daemon.wait_for_log("inspected through", Duration::from_secs(20))?;
    let s = lab.status()?;
    let inspected = s["ftps_servers"]
        .as_array()
        .is_some_and(|all| all.iter().any(|x| x["inspected"] == true));
    ensure!(inspected, "status: {s}");
    // The encrypted 227 opens exactly its port: no --ftps-range is set.
    let target = server.target(SERVER.ip(Family::V4));
    let digest = ftplib_download(lab.client(), &target, SMALL_FILE, TransferMode::Pasv)?;
    ensure!(digest == server.tree().digest(SMALL_FILE)?, "wrong content");
    Ok(())
}

#[test]
fn the_daemon_serves_metrics_that_promtool_accepts() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let _stats = BpfStats::enable()?;
    let _daemon = Daemon::start(lab.server(), &config(&lab, ""))?;
    let target = server.target(SERVER.ip(Family::V4));
    curl_download(lab.client(), &target, SMALL_FILE, TransferMode::Pasv)?;

    let url = format!("http://{METRICS}/metrics");
    let out = lab
        .server()
        .run_ok(&["curl", "-sS", "--max-time", "5", &url])?;
    let text = String::from_utf8(out.stdout)?;
    let promtool = promtool()?;
    let check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .map(|mut stdin| stdin.write_all(text.as_bytes()))
                .transpose()?;
            child.wait_with_output()
        })
        .context("running promtool")?;
    ensure!(
        check.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let sample = |name: &str| -> Result<f64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no sample {name} in:\n{text}"))?;
        line.rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("bad sample {line}"))
    };
    let admitted = sample(
        "ftpct_ingress_packets_total{interface=\"eth0\",verdict=\"pass\",reason=\"syn_admitted\"}",
    )?;
    ensure!(admitted >= 1.0, "syn_admitted {admitted}");
    ensure!(
        sample("ftpct_guarded{interface=\"eth0\"}")? == 1.0
            && sample("ftpct_table_capacity{interface=\"eth0\",table=\"expectations\"}")? > 0.0,
        "{text}"
    );
    let runs = sample("ftpct_program_runs_total{interface=\"eth0\",program=\"ingress\"}")?;
    ensure!(runs >= 1.0, "ingress runs {runs} with bpf_stats_enabled on");
    let out = lab.server().run(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
        &format!("http://{METRICS}/other"),
    ])?;
    ensure!(String::from_utf8_lossy(&out.stdout) == "404", "{out:?}");
    Ok(())
}

#[test]
fn the_shipped_unit_passes_systemd_analyze_verify() -> Result<()> {
    let unit = std::fs::read_to_string(workspace_root().join("dist/ftpct.service"))?;
    ensure!(
        unit.contains("ExecStart=/usr/local/sbin/ftpct daemon")
            && unit.contains("ExecReload=/bin/kill -HUP $MAINPID"),
        "unexpected unit:\n{unit}"
    );
    // Verified with the binary under test where the install step puts it.
    let dir = tempdir()?;
    let path = dir.join("ftpct.service");
    let bin = ftpct_bin().display().to_string();
    std::fs::write(&path, unit.replace("/usr/local/sbin/ftpct", &bin))?;
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .context("running systemd-analyze (Debian package systemd)")?;
    let _ = std::fs::remove_dir_all(&dir);
    let said = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {out:?}"
    );
    // A typo is caught: the check can fail.
    let dir = tempdir()?;
    let path = dir.join("ftpct.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/sbin/ftpct", &bin)
            .replace("Type=notify", "Type=notifyy"),
    )?;
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()?;
    let _ = std::fs::remove_dir_all(&dir);
    ensure!(!out.stderr.is_empty(), "a broken unit passed: {out:?}");
    Ok(())
}

/// A fresh directory under the temporary directory.
fn tempdir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ftpct-unit-{}", ftpct_e2e::netns::unique_token()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// promtool, as tests/install-deps.sh unpacks it.
fn promtool() -> Result<PathBuf> {
    let path = ftpct_e2e::servers::servers_dir().join("prometheus/usr/bin/promtool");
    if !path.exists() {
        bail!("{} missing: run tests/install-deps.sh", path.display());
    }
    Ok(path)
}

/// `kernel.bpf_stats_enabled` on for the test, restored after.
struct BpfStats {
    before: String,
}

impl BpfStats {
    const PATH: &str = "/proc/sys/kernel/bpf_stats_enabled";

    fn enable() -> Result<Self> {
        let before = std::fs::read_to_string(Self::PATH)?;
        std::fs::write(Self::PATH, "1")?;
        Ok(Self { before })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::PATH, self.before.trim());
    }
}
