//! Never lock the administrator out (issue #12, item 4): `attach` names the
//! services already listening inside the guarded ports and refuses until
//! told what to do with them (`--allow-ports` leaves them open, `--force`
//! guards them), and leaves the port of the SSH session it runs in open,
//! even under `--strict`, unless `--guard-session` says otherwise.
//!
//! Needs root and a built ftpct (`FTPCT_BIN`). Run:
//! `cargo test -p ftpct-e2e --test lockout`.

use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ftpct_e2e::clients::tcp_connect;
use ftpct_e2e::{
    ConnectResult, EchoServer, Family, LAB_IFACE, Lab, Netns, SERVER, assert_cli_error, ftpct_bin,
    ftpct_run,
};

/// How long a probe waits before calling a connection attempt dropped.
const PROBE: Duration = Duration::from_secs(2);

/// A web server's port, inside the default guarded range.
const WEB_PORT: u16 = 8080;

/// The SSH daemon's port in the session test (a high port, as some run it).
const SSH_PORT: u16 = 2222;

/// Whether XDP is attached to the lab server's interface.
fn xdp_attached(ns: &Netns) -> Result<bool> {
    let out = ns.run_ok(&["ip", "link", "show", LAB_IFACE])?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("xdp"))
}

/// The intruder's connection attempt to the server's `port`.
fn intruder_to(lab: &Lab, port: u16) -> Result<ConnectResult> {
    tcp_connect(lab.intruder(), SERVER.ip(Family::V4), port, PROBE)
}

#[test]
fn listening_services_inside_the_guarded_ports_are_named_and_refused() -> Result<()> {
    let lab = Lab::new()?;
    let _web = EchoServer::start(lab.server(), "::", WEB_PORT)?;
    // Bound to loopback: no packet through the interface can reach it.
    let _local = EchoServer::start(lab.server(), "127.0.0.1", WEB_PORT + 1)?;
    let root = lab.pin_root().display().to_string();
    let out = ftpct_run(lab.server(), &["attach", LAB_IFACE, "--pin-root", &root])?;
    assert_cli_error(
        "attach over a listening service",
        &out,
        1,
        "port 8080 has a service listening inside the guarded ports",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        stderr.contains("--allow-ports 8080") && stderr.contains("--force"),
        "{stderr}"
    );
    ensure!(
        !stderr.contains("8081"),
        "a loopback listener was named: {stderr}"
    );
    ensure!(!xdp_attached(lab.server())?, "the refused attach attached");

    // Named in --allow-ports: guarded around it, the service reachable.
    let fw = lab.attach(&["--allow-ports", "8080"])?;
    ensure!(intruder_to(&lab, WEB_PORT)? == ConnectResult::Connected);
    fw.detach()?;
    // --force: guarded, the intruder is dropped.
    let fw = lab.attach(&["--force"])?;
    ensure!(intruder_to(&lab, WEB_PORT)? == ConnectResult::TimedOut);
    fw.detach()?;
    Ok(())
}

/// `ftpct attach eth0 --strict ARGS` as run from an SSH session to the
/// server's port [`SSH_PORT`].
fn attach_from_ssh(lab: &Lab, args: &[&str]) -> Result<Output> {
    let root = lab.pin_root().display().to_string();
    let bin = ftpct_bin().display().to_string();
    let mut argv = vec![
        bin.as_str(),
        "attach",
        LAB_IFACE,
        "--strict",
        "--pin-root",
        &root,
    ];
    argv.extend_from_slice(args);
    let session = format!("198.18.0.2 50022 {} {SSH_PORT}", SERVER.v4);
    lab.server()
        .command(&argv)
        .env("SSH_CONNECTION", session)
        .output()
        .context("running ftpct attach")
}

#[test]
fn the_port_of_the_administrators_ssh_session_stays_open() -> Result<()> {
    let lab = Lab::new()?;
    let _sshd = EchoServer::start(lab.server(), "::", SSH_PORT)?;
    let root = lab.pin_root().display().to_string();
    let out = attach_from_ssh(&lab, &[])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "attach --strict from SSH: {stderr}");
    ensure!(stderr.contains("leaving port 2222 open"), "{stderr}");
    ensure!(
        intruder_to(&lab, SSH_PORT)? == ConnectResult::Connected,
        "the session's port was guarded"
    );
    let detach = ftpct_run(lab.server(), &["detach", LAB_IFACE, "--pin-root", &root])?;
    ensure!(detach.status.success(), "detach: {detach:?}");

    // Told to guard it: the listener there is then named, as any other.
    let out = attach_from_ssh(&lab, &["--guard-session"])?;
    assert_cli_error(
        "--guard-session over sshd",
        &out,
        1,
        "port 2222 has a service listening",
    );
    ensure!(!xdp_attached(lab.server())?, "the refused attach attached");
    Ok(())
}
