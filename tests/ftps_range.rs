//! `--ftps-range` with real FTPS (issue #11, the fallback for servers whose
//! TLS ftpct cannot read; here inspection is turned off with `--ftps off`): vsftpd requires TLS for logins and data, so its
//! `227`/`229` travel encrypted and create no expectation. Without a range
//! its passive transfers fail through ftpct; with `--ftps-range` set to its
//! passive range they work, explicit (`AUTH TLS` on 21) and implicit (990),
//! over IPv4 and IPv6, with curl and ftplib, while another host is still
//! dropped and the client itself loses the range when its control
//! connection ends.
//!
//! Needs root, vsftpd, openssl, curl and a built ftpct (`FTPCT_BIN`). Run:
//! `cargo test -p ftpct-e2e --test ftps_range -- --test-threads=2`.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ftpct_e2e::clients::{curl_download, ftplib_download, tcp_connect};
use ftpct_e2e::fixtures::FileDigest;
use ftpct_e2e::servers::{DEFAULT_PASV_PORTS, FtpTarget};
use ftpct_e2e::{
    ConnectResult, Counter, Family, FtpServer, FtpSession, Ftpct, Lab, Netns, SERVER, SMALL_FILE,
    ServerOptions, Tls, TransferMode, Vsftpd,
};

/// How long a probe waits before calling a connection attempt dropped.
const PROBE: Duration = Duration::from_secs(2);

/// A port of the passive range where nothing listens: a SYN ftpct passes
/// gets the server kernel's RST (`Refused`), one it drops times out.
const IDLE_RANGE_PORT: u16 = 40_090;

/// `--ftps-range` for the lab servers' passive range, and the implicit
/// FTPS port among the control ports.
fn attach_with_range(lab: &Lab) -> Result<Ftpct<'_>> {
    let range = format!(
        "{}-{}",
        DEFAULT_PASV_PORTS.start(),
        DEFAULT_PASV_PORTS.end()
    );
    let fw = lab.attach(&[
        "--ftps",
        "off",
        "--ftps-range",
        &range,
        "--control-ports",
        "21,990",
    ])?;
    let status = fw.status_json()?;
    ensure!(
        status[0]["ftps_range"] == range.as_str(),
        "status: {status}"
    );
    Ok(fw)
}

/// A download by one of the clients.
type Download = fn(&Netns, &FtpTarget, &str, TransferMode) -> Result<FileDigest>;

/// Every client and passive mode of `family` (`PASV` needs IPv4).
fn passive_cases(family: Family) -> Vec<(&'static str, Download, TransferMode)> {
    let mut cases: Vec<(&'static str, Download, TransferMode)> = vec![
        ("curl", curl_download, TransferMode::Epsv),
        ("ftplib", ftplib_download, TransferMode::Epsv),
    ];
    if family == Family::V4 {
        cases.push(("curl", curl_download, TransferMode::Pasv));
        cases.push(("ftplib", ftplib_download, TransferMode::Pasv));
    }
    cases
}

/// Downloads with every client and passive mode over both families through
/// `fw`: each works, through the range, and nothing is dropped.
fn passive_transfers_work(lab: &Lab, fw: &Ftpct, server: &Vsftpd) -> Result<()> {
    let expected = server.tree().digest(SMALL_FILE)?;
    for family in [Family::V4, Family::V6] {
        let target = server.target(SERVER.ip(family));
        for (client, download, mode) in passive_cases(family) {
            let what = format!("{client} {mode:?} over {family:?}");
            let before = fw.counters()?;
            let got = download(lab.client(), &target, SMALL_FILE, mode).context(what.clone())?;
            ensure!(got == expected, "{what}: wrong content");
            let after = fw.counters()?;
            ensure!(
                after.since(&before, Counter::ControlTls) >= 1
                    && after.since(&before, Counter::SynAdmittedFtpsRange) >= 1
                    && after.since(&before, Counter::SynDropped) == 0,
                "{what}: {after}"
            );
        }
    }
    Ok(())
}

#[test]
fn explicit_ftps_passive_transfers_need_the_range_and_work_through_it() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    let target = server.target(SERVER.ip(Family::V4));
    {
        // Without a range: the 227 is encrypted, nothing expects the data
        // connection, and ftpct drops it.
        let fw = lab.attach(&["--ftps", "off"])?;
        let r = curl_download(lab.client(), &target, SMALL_FILE, TransferMode::Pasv);
        ensure!(r.is_err(), "an FTPS transfer worked without --ftps-range");
        let c = fw.counters()?;
        ensure!(
            c.get(Counter::ControlTls) >= 1 && c.get(Counter::SynDropped) >= 1,
            "{c}"
        );
    }
    let fw = attach_with_range(&lab)?;
    passive_transfers_work(&lab, &fw, &server)?;
    // Active mode needs no range: the server connects out.
    let expected = server.tree().digest(SMALL_FILE)?;
    let got = ftplib_download(lab.client(), &target, SMALL_FILE, TransferMode::Port)
        .context("ftplib PORT over FTPS")?;
    ensure!(got == expected, "ftplib PORT: wrong content");
    Ok(())
}

#[test]
fn implicit_ftps_on_port_990_works_through_the_range() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Implicit))?;
    let fw = attach_with_range(&lab)?;
    passive_transfers_work(&lab, &fw, &server)
}

#[test]
fn only_the_client_of_a_live_ftps_session_may_use_the_range() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    let fw = attach_with_range(&lab)?;
    let probe = |ns: &Netns| tcp_connect(ns, SERVER.ip(Family::V4), IDLE_RANGE_PORT, PROBE);
    ensure!(
        probe(lab.client())? == ConnectResult::TimedOut,
        "the client reached the range before any FTPS session"
    );
    let session = FtpSession::open(lab.client(), &server.target(SERVER.ip(Family::V4)))?;
    ensure!(
        probe(lab.client())? == ConnectResult::Refused,
        "the FTPS client's SYN was dropped: {}",
        fw.counters()?
    );
    ensure!(
        probe(lab.intruder())? == ConnectResult::TimedOut,
        "another host reached the range during the FTPS session"
    );
    session.quit()?;
    // The server closes the control connection after QUIT: the range
    // closes with it (bounded: a few probes).
    let mut closed = false;
    for _ in 0..3 {
        if probe(lab.client())? == ConnectResult::TimedOut {
            closed = true;
            break;
        }
    }
    ensure!(closed, "the range stayed open after the session ended");
    let c = fw.counters()?;
    ensure!(c.get(Counter::SynAdmittedFtpsRange) >= 1, "{c}");
    Ok(())
}
