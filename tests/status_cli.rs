//! `ftpct status` for scripts and pipes (issue #12, item 8): `status IFACE`
//! shows one interface and exits 1 unless it is guarded (not attached, or
//! its link deleted behind ftpct's back); tables show their fill against
//! their size and no expired entries; output into a closed pipe ends the
//! process quietly instead of a panic.
//!
//! Needs root and a built ftpct (`FTPCT_BIN`). Run:
//! `cargo test -p ftpct-e2e --test status_cli`.

use std::os::unix::process::ExitStatusExt;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ftpct_e2e::{
    Family, FtpServer, FtpSession, LAB_IFACE, Lab, SERVER, Vsftpd, assert_cli_error, ftpct_bin,
};

#[test]
fn status_of_one_interface_exits_non_zero_unless_it_is_guarded() -> Result<()> {
    let lab = Lab::new()?;
    let root = lab.pin_root().display().to_string();
    let status =
        |iface: &str| ftpct_e2e::ftpct_run(lab.server(), &["status", iface, "--pin-root", &root]);
    let out = status(LAB_IFACE)?;
    assert_cli_error("status before attach", &out, 1, "not attached to eth0");
    let fw = lab.attach(&[])?;
    let out = status(LAB_IFACE)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "status of a guarded interface: {out:?}"
    );
    ensure!(text.starts_with("eth0: guarded"), "{text}");
    let out = status("eth9")?;
    assert_cli_error(
        "status of another interface",
        &out,
        1,
        "not attached to eth9",
    );
    // The interface goes behind ftpct's back: still listed, NOT guarded,
    // and the exit status says so.
    lab.server()
        .run_ok(&["ip", "link", "del", LAB_IFACE])
        .context("deleting the interface")?;
    let out = status(LAB_IFACE)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(text.contains("NOT guarded"), "{text}");
    assert_cli_error(
        "status of a deleted interface",
        &out,
        1,
        "eth0 is not guarded",
    );
    drop(fw);
    Ok(())
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() -> Result<()> {
    let lab = Lab::new()?;
    let fw = lab.attach(&[])?;
    let root = lab.pin_root().display().to_string();
    for sub in ["status", "flows", "expectations"] {
        // A pipe whose reader is gone before ftpct writes (`| head` that
        // already exited): the first write fails with EPIPE.
        let (reader, writer) = std::io::pipe().context("pipe")?;
        drop(reader);
        let bin = ftpct_bin();
        let mut cmd = lab.server().command(&[
            bin.as_os_str(),
            sub.as_ref(),
            "--pin-root".as_ref(),
            root.as_ref(),
        ]);
        cmd.stdout(writer);
        let out = cmd
            .output()
            .with_context(|| format!("running ftpct {sub}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(!stderr.contains("panicked"), "ftpct {sub}: {stderr}");
        ensure!(
            out.status.success() || out.status.signal() == Some(libc_sigpipe()),
            "ftpct {sub}: {:?} {stderr}",
            out.status
        );
    }
    drop(fw);
    Ok(())
}

/// SIGPIPE's number on Linux.
fn libc_sigpipe() -> i32 {
    13
}

#[test]
fn tables_show_their_fill_and_no_expired_entries() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let fw = lab.attach(&["--max-expectations", "100", "--expect-timeout", "1"])?;
    let mut session = FtpSession::open(lab.client(), &server.target(SERVER.ip(Family::V4)))?;
    session.pasv()?;
    let status = fw.status_json()?;
    ensure!(
        status[0]["expectations"] == 1 && status[0]["capacity"]["expectations"] == 100,
        "{status}"
    );
    ensure!(
        status[0]["capacity"]["admitted_flows"] == 262_144
            && status[0]["capacity"]["control_connections"] == 16_384,
        "{status}"
    );
    let text = fw.cli_ok("status", &[])?;
    ensure!(text.contains("1/100 expectations"), "{text}");
    // Expired, not yet swept: admits nothing, so it is not shown.
    thread::sleep(Duration::from_millis(1500));
    ensure!(
        fw.expectations_json()?.is_empty(),
        "an expired entry is listed"
    );
    let text = fw.cli_ok("status", &[])?;
    ensure!(text.contains("0/100 expectations"), "{text}");
    session.quit()?;
    Ok(())
}
