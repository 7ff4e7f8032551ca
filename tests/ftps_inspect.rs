//! FTPS inspection (issue #11): ftpct reads the plaintext of the local
//! server's encrypted control connections through uprobes on its TLS
//! library, so FTPS gets exact expectations like plain FTP, without
//! `--ftps-range`. vsftpd requires TLS for logins and data.
//!
//! Needs root, vsftpd, openssl, curl and a built ftpct (`FTPCT_BIN`). Run:
//! `cargo test -p ftpct-e2e --test ftps_inspect -- --test-threads=2`.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ftpct_e2e::clients::{curl_download, ftplib_download, tcp_connect};
use ftpct_e2e::fixtures::FileDigest;
use ftpct_e2e::servers::FtpTarget;
use ftpct_e2e::{
    ConnectResult, Counter, Family, FtpServer, FtpSession, Ftpct, Lab, Netns, Proftpd, PureFtpd,
    Pyftpdlib, SERVER, SMALL_FILE, ServerOptions, Tls, TransferMode, Vsftpd,
};

/// How long a probe waits before calling a connection attempt dropped.
const PROBE: Duration = Duration::from_secs(2);

/// A download by one of the clients.
type Download = fn(&Netns, &FtpTarget, &str, TransferMode) -> Result<FileDigest>;

/// Attaches with inspection (the default) and checks that status names
/// vsftpd as inspected.
fn attach_inspecting<'a>(lab: &'a Lab, args: &[&str]) -> Result<Ftpct<'a>> {
    let fw = lab.attach(args)?;
    let status = fw.status_json()?;
    let servers = status[0]["ftps_servers"]
        .as_array()
        .with_context(|| format!("no ftps_servers in status: {status}"))?;
    ensure!(
        servers
            .iter()
            .any(|s| s["comm"] == "vsftpd" && s["inspected"] == true),
        "vsftpd is not inspected: {status}"
    );
    ensure!(
        fw.attach_output().contains("inspected through"),
        "attach did not say what it inspects: {}",
        fw.attach_output()
    );
    Ok(fw)
}

#[test]
fn explicit_ftps_transfers_get_exact_expectations_without_a_range() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    let fw = attach_inspecting(&lab, &[])?;
    let expected = server.tree().digest(SMALL_FILE)?;
    for family in [Family::V4, Family::V6] {
        let target = server.target(SERVER.ip(family));
        let mut cases: Vec<(&str, Download, TransferMode)> = vec![
            ("curl", curl_download, TransferMode::Epsv),
            ("ftplib", ftplib_download, TransferMode::Epsv),
        ];
        if family == Family::V4 {
            cases.push(("ftplib", ftplib_download, TransferMode::Port));
            cases.push(("curl", curl_download, TransferMode::Pasv));
            cases.push(("ftplib", ftplib_download, TransferMode::Pasv));
        }
        for (client, download, mode) in cases {
            let what = format!("{client} {mode:?} over {family:?}");
            let before = fw.counters()?;
            let got = download(lab.client(), &target, SMALL_FILE, mode).context(what.clone())?;
            ensure!(got == expected, "{what}: wrong content");
            let after = fw.counters()?;
            let created = match mode {
                TransferMode::Pasv => Counter::ExpectPasv,
                TransferMode::Epsv => Counter::ExpectEpsv,
                _ => Counter::TlsPlaintext,
            };
            ensure!(
                after.since(&before, Counter::ControlTls) >= 1
                    && after.since(&before, Counter::TlsPlaintext) >= 1
                    && after.since(&before, created) >= 1
                    && after.since(&before, Counter::SynDropped) == 0
                    && after.since(&before, Counter::SynAdmittedFtpsRange) == 0,
                "{what}: {after}"
            );
            if mode.is_passive() {
                ensure!(
                    after.since(&before, Counter::SynAdmitted) >= 1,
                    "{what}: {after}"
                );
            }
        }
    }
    Ok(())
}

/// Downloads with ftplib in both passive modes from `server`, requiring
/// FTPS, through inspection alone; `name` is its process name.
fn inspected_server_serves_passive_ftps(
    lab: &Lab,
    server: &dyn FtpServer,
    name: &str,
) -> Result<()> {
    let fw = lab.attach(&[])?;
    let status = fw.status_json()?;
    ensure!(
        status[0]["ftps_servers"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["inspected"] == true)),
        "{name} is not inspected: {}",
        status[0]["ftps_servers"]
    );
    let expected = server.tree().digest(SMALL_FILE)?;
    let target = server.target(SERVER.ip(Family::V4));
    for mode in [TransferMode::Pasv, TransferMode::Epsv] {
        let got = ftplib_download(lab.client(), &target, SMALL_FILE, mode)
            .with_context(|| format!("{name}: ftplib {mode:?} over FTPS"))?;
        ensure!(got == expected, "{name} {mode:?}: wrong content");
    }
    let c = fw.counters()?;
    ensure!(
        c.get(Counter::TlsPlaintext) >= 1
            && c.get(Counter::ExpectPasv) >= 1
            && c.get(Counter::ExpectEpsv) >= 1
            && c.get(Counter::SynDropped) == 0,
        "{name}: {c}"
    );
    Ok(())
}

#[test]
fn proftpd_mod_tls_is_inspected() -> Result<()> {
    let lab = Lab::new()?;
    let server = Proftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    inspected_server_serves_passive_ftps(&lab, &server, "proftpd")
}

#[test]
fn pure_ftpd_with_tls_required_is_inspected() -> Result<()> {
    let lab = Lab::new()?;
    let server = PureFtpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    inspected_server_serves_passive_ftps(&lab, &server, "pure-ftpd")
}

#[test]
fn pyftpdlib_tls_handler_is_inspected() -> Result<()> {
    let lab = Lab::new()?;
    let server = Pyftpdlib::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    inspected_server_serves_passive_ftps(&lab, &server, "pyftpdlib")
}

#[test]
fn implicit_ftps_on_990_is_inspected() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Implicit))?;
    let fw = attach_inspecting(&lab, &["--control-ports", "21,990"])?;
    let expected = server.tree().digest(SMALL_FILE)?;
    let target = server.target(SERVER.ip(Family::V4));
    for mode in [TransferMode::Pasv, TransferMode::Epsv] {
        let got = curl_download(lab.client(), &target, SMALL_FILE, mode)
            .with_context(|| format!("curl {mode:?} over implicit FTPS"))?;
        ensure!(got == expected, "{mode:?}: wrong content");
    }
    let c = fw.counters()?;
    ensure!(
        c.get(Counter::ExpectPasv) >= 1
            && c.get(Counter::ExpectEpsv) >= 1
            && c.get(Counter::SynDropped) == 0,
        "{c}"
    );
    Ok(())
}

#[test]
fn a_port_announced_over_tls_admits_its_client_only() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    let fw = attach_inspecting(&lab, &[])?;
    let mut session = FtpSession::open(lab.client(), &server.target(SERVER.ip(Family::V4)))?;
    let port = session.pasv()?;
    let intruder = tcp_connect(lab.intruder(), SERVER.ip(Family::V4), port, PROBE)?;
    ensure!(
        intruder == ConnectResult::TimedOut,
        "another host reached the port announced over TLS: {intruder:?}"
    );
    let unannounced = port.wrapping_add(1).max(1024);
    let stray = tcp_connect(lab.client(), SERVER.ip(Family::V4), unannounced, PROBE)?;
    ensure!(
        stray == ConnectResult::TimedOut,
        "the client reached the unannounced port {unannounced}: {stray:?}"
    );
    let digest = session
        .retr(SMALL_FILE)
        .context("the client's own transfer")?;
    ensure!(digest == server.tree().digest(SMALL_FILE)?, "wrong content");
    session.quit()?;
    let c = fw.counters()?;
    ensure!(
        c.get(Counter::SynAdmitted) >= 1 && c.get(Counter::SynDropped) >= 2,
        "{c}"
    );
    Ok(())
}

#[test]
fn an_ftps_client_in_another_namespace_feeds_nothing() -> Result<()> {
    // The client's TLS library is the server's (one host, one libssl): its
    // own PASV and EPSV pass through the same probes, in its namespace.
    let lab = Lab::new()?;
    let server = Vsftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    let fw = attach_inspecting(&lab, &[])?;
    let target = server.target(SERVER.ip(Family::V4));
    let before = fw.counters()?;
    ftplib_download(lab.client(), &target, SMALL_FILE, TransferMode::Pasv)?;
    let after = fw.counters()?;
    // One PASV, one expectation: the server's 227, not the client's
    // PASV read back as a command a second time.
    ensure!(
        after.since(&before, Counter::TlsOtherNetns) >= 1
            && after.since(&before, Counter::ExpectPasv) == 1
            && after.since(&before, Counter::Commands) <= after.since(&before, Counter::Replies),
        "{after}"
    );
    Ok(())
}

#[test]
fn with_inspection_off_only_the_range_admits_ftps_clients() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    let fw = lab.attach(&["--ftps", "off"])?;
    let status = fw.status_json()?;
    ensure!(
        status[0]["ftps_servers"]
            .as_array()
            .is_some_and(|s| s.is_empty()),
        "inspection off still lists servers: {status}"
    );
    let target = server.target(SERVER.ip(Family::V4));
    let r = curl_download(lab.client(), &target, SMALL_FILE, TransferMode::Pasv);
    ensure!(
        r.is_err(),
        "an FTPS transfer worked with inspection off and no range"
    );
    let c = fw.counters()?;
    ensure!(
        c.get(Counter::TlsPlaintext) == 0 && c.get(Counter::SynDropped) >= 1,
        "{c}"
    );
    Ok(())
}
