//! Live changes without detaching (issue #12, item 2): `ftpct set` changes
//! the policy and the open ports of a guarded interface, and `ftpct flush`
//! empties the expectations, the admitted flows or the counters, while an
//! FTP session that was open before goes on working.
//!
//! Needs root, vsftpd, curl and a built ftpct (`FTPCT_BIN`). Run:
//! `cargo test -p ftpct-e2e --test live_changes -- --test-threads=2`.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ftpct_e2e::clients::tcp_connect;
use ftpct_e2e::ftpct::{assert_cli_error, ftpct_bin};
use ftpct_e2e::{
    ConnectResult, Counter, EchoServer, Family, FtpServer, FtpSession, Lab, SERVER, SMALL_FILE,
    Vsftpd,
};

/// How long a probe waits before calling a connection attempt dropped.
const PROBE: Duration = Duration::from_secs(2);

/// A service inside the guarded range (a web server on 8080).
const SERVICE_PORT: u16 = 8080;

#[test]
fn set_allow_ports_opens_and_guards_a_port_while_sessions_go_on() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let _web = EchoServer::start(lab.server(), "::", SERVICE_PORT)?;
    let fw = lab.attach(&["--force"])?;
    let reach = || tcp_connect(lab.client(), SERVER.ip(Family::V4), SERVICE_PORT, PROBE);
    ensure!(
        reach()? == ConnectResult::TimedOut,
        "8080 reachable while guarded"
    );
    // A session with a live expectation, from before the change.
    let mut session = FtpSession::open(lab.client(), &server.target(SERVER.ip(Family::V4)))?;
    session.pasv()?;
    let before = fw.counters()?;

    let out = fw.cli_ok("set", &[fw.iface(), "--allow-ports", "8080"])?;
    ensure!(out.contains("open inside the guarded ports: 8080"), "{out}");
    ensure!(
        reach()? == ConnectResult::Connected,
        "8080 still guarded after set"
    );
    let status = fw.status_json()?;
    ensure!(
        status[0]["guarded_ports"] == "1024-8079,8081-65535",
        "status: {}",
        status[0]["guarded_ports"]
    );
    // The expectation made before the change still admits the session's
    // data connection; counters were not reset.
    let digest = session
        .retr(SMALL_FILE)
        .context("the session's transfer after set")?;
    ensure!(digest == server.tree().digest(SMALL_FILE)?, "wrong content");
    let after = fw.counters()?;
    ensure!(
        after.since(&before, Counter::SynAdmitted) >= 1
            && after.get(Counter::ExpectPasv) >= before.get(Counter::ExpectPasv),
        "{after}"
    );

    // Guarding it again would cut a listening service off: refused, then
    // done with --force.
    let out = fw.cli("set", &[fw.iface(), "--allow-ports", ""])?;
    assert_cli_error("set guarding a listener", &out, 1, "8080");
    ensure!(
        reach()? == ConnectResult::Connected,
        "a refused set changed the ports"
    );
    fw.cli_ok("set", &[fw.iface(), "--allow-ports", "", "--force"])?;
    ensure!(
        reach()? == ConnectResult::TimedOut,
        "8080 open after guarding it again"
    );
    session.quit()
}

#[test]
fn set_changes_timeouts_limits_and_ftps_range_shown_in_status() -> Result<()> {
    let lab = Lab::new()?;
    let fw = lab.attach(&[])?;
    fw.cli_ok(
        "set",
        &[
            fw.iface(),
            "--expect-timeout",
            "30",
            "--flow-timeout",
            "600",
            "--max-expect-per-client",
            "5",
            "--allow-low-ports",
            "yes",
            "--ftps-range",
            "40000-40100",
            "--external-address",
            "198.19.0.10",
        ],
    )?;
    let s = &fw.status_json()?[0];
    ensure!(
        s["expect_timeout_secs"] == 30
            && s["flow_timeout_secs"] == 600
            && s["max_expect_per_client"] == 5
            && s["allow_low_ports"] == true
            && s["ftps_range"] == "40000-40100"
            && s["external_addresses"].to_string().contains("198.19.0.10"),
        "status after set: {s}"
    );
    fw.cli_ok(
        "set",
        &[
            fw.iface(),
            "--ftps-range",
            "off",
            "--no-external-address",
            "--allow-low-ports",
            "no",
        ],
    )?;
    let s = &fw.status_json()?[0];
    ensure!(
        s["ftps_range"].is_null()
            && s["external_addresses"]
                .as_array()
                .is_some_and(|a| a.is_empty())
            && s["allow_low_ports"] == false
            && s["expect_timeout_secs"] == 30,
        "status after the second set: {s}"
    );
    // A range outside the guarded ports is refused as at attach.
    let out = fw.cli("set", &[fw.iface(), "--ftps-range", "21-30"])?;
    assert_cli_error("set --ftps-range 21-30", &out, 1, "port 21");
    Ok(())
}

#[test]
fn flush_drops_expectations_and_resets_counters() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let fw = lab.attach(&[])?;
    let mut session = FtpSession::open(lab.client(), &server.target(SERVER.ip(Family::V4)))?;
    let port = session.pasv()?;
    ensure!(
        fw.expectations_json()?.0.len() == 1,
        "no expectation to flush"
    );
    let out = fw.cli_ok("flush", &[fw.iface(), "expectations"])?;
    ensure!(out.contains("flushed 1 expectations"), "{out}");
    ensure!(
        fw.expectations_json()?.0.is_empty(),
        "an expectation survived the flush"
    );
    let probe = tcp_connect(lab.client(), SERVER.ip(Family::V4), port, PROBE)?;
    ensure!(
        probe == ConnectResult::TimedOut,
        "the flushed port {port} admitted the client: {probe:?}"
    );
    // The control connection itself was kept: its next PASV works.
    let digest = {
        session.pasv()?;
        session.retr(SMALL_FILE)?
    };
    ensure!(digest == server.tree().digest(SMALL_FILE)?, "wrong content");
    ensure!(
        fw.counters()?.get(Counter::SynDropped) >= 1,
        "no drop counted"
    );
    fw.cli_ok("flush", &[fw.iface(), "counters"])?;
    // Stray packets (neighbour discovery) may count again at once; the
    // session's counters cannot.
    let c = fw.counters()?;
    ensure!(
        [
            Counter::SynDropped,
            Counter::SynAdmitted,
            Counter::ExpectPasv,
            Counter::Commands
        ]
        .iter()
        .all(|&counter| c.get(counter) == 0),
        "counters after flush: {c}"
    );
    session.quit()
}

#[test]
fn set_and_flush_on_an_unattached_interface_fail_in_one_line() -> Result<()> {
    let lab = Lab::new()?;
    let fw = lab.attach(&[])?;
    for args in [
        vec!["set", "nosuch0", "--expect-timeout", "30"],
        vec!["flush", "nosuch0", "flows"],
    ] {
        let out = fw.cli(args[0], &args[1..])?;
        assert_cli_error(&args.join(" "), &out, 1, "not attached to nosuch0");
    }
    Ok(())
}

#[test]
fn set_from_an_ssh_session_keeps_its_port_open() -> Result<()> {
    const SSH_PORT: u16 = 2222;
    let lab = Lab::new()?;
    let _sshd = EchoServer::start(lab.server(), "::", SSH_PORT)?;
    let fw = lab.attach(&["--allow-ports", "2222"])?;
    // `ftpct set` replacing the list, run from an SSH session to 2222.
    let root = lab.pin_root().display().to_string();
    let bin = ftpct_bin().display().to_string();
    let out = lab
        .server()
        .command(&[
            bin.as_str(),
            "set",
            fw.iface(),
            "--allow-ports",
            "8080",
            "--pin-root",
            &root,
        ])
        .env(
            "SSH_CONNECTION",
            format!("198.18.0.2 50022 {} {SSH_PORT}", SERVER.v4),
        )
        .output()
        .context("running ftpct set")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && stdout.contains("leaving port 2222 open"),
        "set from SSH: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reach = tcp_connect(lab.intruder(), SERVER.ip(Family::V4), SSH_PORT, PROBE)?;
    ensure!(
        reach == ConnectResult::Connected,
        "the session's port was guarded: {reach:?}"
    );
    Ok(())
}
