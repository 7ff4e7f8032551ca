//! FTPS inspection (issue #11): ftpct reads the plaintext of the local
//! server's encrypted control connections through uprobes on its TLS
//! library, so FTPS gets exact expectations like plain FTP, without
//! `--ftps-range`. vsftpd requires TLS for logins and data.
//!
//! Needs root, vsftpd, openssl, curl and a built ftpct (`FTPCT_BIN`). Run:
//! `cargo test -p ftpct-e2e --test ftps_inspect -- --test-threads=2`.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ftpct_e2e::clients::{
    curl_download, ftplib_download, lftp_download, lftp_list, lftp_upload, tcp_connect,
};
use ftpct_e2e::fixtures::{FileDigest, pseudo_random_bytes};
use ftpct_e2e::process::wait_until;
use ftpct_e2e::servers::{Credentials, FtpTarget};
use ftpct_e2e::{
    BIG_FILE, ConnectResult, Counter, Family, FtpServer, FtpSession, Ftpct, Lab, Netns, Proftpd,
    PureFtpd, Pyftpdlib, SERVER, SMALL_FILE, ServerOptions, Tls, TransferMode, Vsftpd,
};

/// How long a probe waits before calling a connection attempt dropped.
const PROBE: Duration = Duration::from_secs(2);

/// A download by one of the clients.
type Download = fn(&Netns, &FtpTarget, &str, TransferMode) -> Result<FileDigest>;

/// Attaches with inspection (the default) and checks that status names the
/// lab's FTP server as inspected.
fn attach_inspecting<'a>(lab: &'a Lab, args: &[&str]) -> Result<Ftpct<'a>> {
    let fw = lab.attach(args)?;
    let status = fw.status_json()?;
    let servers = status[0]["ftps_servers"]
        .as_array()
        .with_context(|| format!("no ftps_servers in status: {status}"))?;
    ensure!(
        servers.iter().any(|s| s["inspected"] == true),
        "no server is inspected: {status}"
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
    every_mode_through_inspection(&lab, &fw, &server, true)
}

/// Every client and mode that works with `server` over FTPS in this lab
/// (`with_curl`: curl completes its TLS data connections) through `fw`'s
/// inspection alone: ftplib PASV, EPSV and PORT over IPv4, EPSV and EPRT
/// over IPv6, curl PASV and EPSV over IPv4 and EPSV over IPv6. A passive
/// transfer is admitted by the expectation its `227`/`229` created, never
/// by a range; an active one needs nothing (the server connects out).
fn every_mode_through_inspection(
    lab: &Lab,
    fw: &Ftpct,
    server: &dyn FtpServer,
    with_curl: bool,
) -> Result<()> {
    let name = server.name();
    let expected = server.tree().digest(SMALL_FILE)?;
    let mut cases: Vec<(&str, Download, Family, TransferMode)> = vec![
        ("ftplib", ftplib_download, Family::V4, TransferMode::Pasv),
        ("ftplib", ftplib_download, Family::V4, TransferMode::Epsv),
        ("ftplib", ftplib_download, Family::V4, TransferMode::Port),
        ("ftplib", ftplib_download, Family::V6, TransferMode::Epsv),
        ("ftplib", ftplib_download, Family::V6, TransferMode::Eprt),
    ];
    if with_curl {
        cases.push(("curl", curl_download, Family::V4, TransferMode::Pasv));
        cases.push(("curl", curl_download, Family::V4, TransferMode::Epsv));
        cases.push(("curl", curl_download, Family::V6, TransferMode::Epsv));
    }
    for (client, download, family, mode) in cases {
        let what = format!("{name}: {client} {mode:?} over {family:?}");
        let before = fw.counters()?;
        let target = server.target(SERVER.ip(family));
        let got = download(lab.client(), &target, SMALL_FILE, mode).context(what.clone())?;
        ensure!(got == expected, "{what}: wrong content");
        let after = fw.counters()?;
        let since = |counter| after.since(&before, counter);
        let expected_by = match mode {
            TransferMode::Pasv => Some(Counter::ExpectPasv),
            TransferMode::Epsv => Some(Counter::ExpectEpsv),
            // Active: the server connects out (pure-ftpd from port 20,
            // outside the guarded range), which needs nothing from ftpct.
            _ => None,
        };
        let admitted = expected_by
            .is_none_or(|created| since(created) >= 1 && since(Counter::SynAdmitted) >= 1);
        ensure!(
            since(Counter::ControlTls) >= 1
                && since(Counter::TlsPlaintext) >= 1
                && admitted
                && since(Counter::SynDropped) == 0
                && since(Counter::SynAdmittedFtpsRange) == 0,
            "{what}: {after}"
        );
    }
    Ok(())
}

#[test]
fn proftpd_mod_tls_is_inspected() -> Result<()> {
    let lab = Lab::new()?;
    let server = Proftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    let fw = attach_inspecting(&lab, &[])?;
    every_mode_through_inspection(&lab, &fw, &server, true)
}

#[test]
fn pure_ftpd_with_tls_required_is_inspected() -> Result<()> {
    let lab = Lab::new()?;
    let server = PureFtpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    let fw = attach_inspecting(&lab, &[])?;
    every_mode_through_inspection(&lab, &fw, &server, true)
}

#[test]
fn pyftpdlib_tls_handler_is_inspected() -> Result<()> {
    let lab = Lab::new()?;
    let server = Pyftpdlib::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    let fw = attach_inspecting(&lab, &[])?;
    every_mode_through_inspection(&lab, &fw, &server, false)
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

#[test]
fn lftp_with_ssl_force_lists_uploads_and_downloads_through_inspection() -> Result<()> {
    let lab = Lab::new()?;
    let server = Proftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    let fw = lab.attach(&[])?;
    for family in [Family::V4, Family::V6] {
        let what = format!("lftp over {family:?}");
        let target = server.target(SERVER.ip(family));
        let listing = lftp_list(lab.client(), &target, "/", true).context(what.clone())?;
        ensure!(
            listing.contains(SMALL_FILE) && listing.contains(BIG_FILE),
            "{what}: listing {listing:?}"
        );
        let data = pseudo_random_bytes(5 * 1024 * 1024, family as u64 + 21);
        let sent = FileDigest::of(&data);
        let remote = format!("upload/inspected-{family:?}.bin");
        lftp_upload(lab.client(), &target, &data, &remote, true).context(what.clone())?;
        ensure!(
            server.tree().digest(&remote)? == sent,
            "{what}: upload differs"
        );
        let back = lftp_download(lab.client(), &target, &remote, true).context(what.clone())?;
        ensure!(back == sent, "{what}: download differs");
    }
    let c = fw.counters()?;
    ensure!(
        c.get(Counter::TlsPlaintext) >= 1
            && c.get(Counter::ExpectPasv) + c.get(Counter::ExpectEpsv) >= 6
            && c.get(Counter::SynAdmitted) >= 6
            && c.get(Counter::SynDropped) == 0,
        "{c}"
    );
    Ok(())
}

#[test]
fn a_restarted_server_is_inspected_again() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    let fw = attach_inspecting(&lab, &[])?;
    drop(server);
    // A new process on the same library: the uprobes sit on the file.
    let server = Vsftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    let target = server.target(SERVER.ip(Family::V4));
    let before = fw.counters()?;
    let got = curl_download(lab.client(), &target, SMALL_FILE, TransferMode::Epsv)?;
    ensure!(got == server.tree().digest(SMALL_FILE)?, "wrong content");
    let after = fw.counters()?;
    ensure!(
        after.since(&before, Counter::ExpectEpsv) >= 1
            && after.since(&before, Counter::SynDropped) == 0,
        "{after}"
    );
    let status = fw.status_json()?;
    ensure!(
        status[0]["ftps_servers"].as_array().is_some_and(|s| s
            .iter()
            .any(|s| s["comm"] == "vsftpd" && s["inspected"] == true)),
        "the restarted vsftpd is not shown as inspected: {}",
        status[0]["ftps_servers"]
    );
    Ok(())
}

#[test]
fn status_says_why_a_server_is_not_inspected() -> Result<()> {
    let lab = Lab::new()?;
    let _server = Vsftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    // A listener on another control port that maps no TLS library
    // (`python3 -S` without `import ssl`), as a statically linked server.
    let _plain = lab.server().spawn(&[
        "/usr/bin/python3",
        "-S",
        "-c",
        "import socket, time\n\
         s = socket.socket(socket.AF_INET6)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('::', 2121)); s.listen(); time.sleep(120)",
    ])?;
    let fw = lab.attach(&["--control-ports", "21,2121"])?;
    let mut servers = serde_json::Value::Null;
    let listed = wait_until(Duration::from_secs(10), || {
        servers = fw.status_json()?[0]["ftps_servers"].clone();
        Ok(servers.as_array().is_some_and(|s| {
            s.iter().any(|s| s["port"] == 2121) && s.iter().any(|s| s["port"] == 21)
        }))
    })?;
    ensure!(listed, "status does not list both servers: {servers}");
    let all = servers.as_array().context("ftps_servers")?;
    let plain = all
        .iter()
        .find(|s| s["port"] == 2121)
        .context("port 2121")?;
    ensure!(
        plain["inspected"] == false
            && plain["reason"]
                .as_str()
                .is_some_and(|r| r.contains("no libssl")),
        "{servers}"
    );
    ensure!(
        all.iter()
            .any(|s| s["port"] == 21 && s["inspected"] == true),
        "{servers}"
    );
    let text = fw.cli_ok("status", &[fw.iface()])?;
    ensure!(
        text.contains("port 2121): not inspected (no libssl")
            && text.contains("port 21): inspected through"),
        "status text: {text}"
    );
    Ok(())
}

/// Appends every byte array in a `bpftool -j` dump to `out`: raw (`"0x41"`
/// strings) and BTF-formatted (`u8` arrays as numbers), each run followed
/// by a 0 so that runs never join into text neither holds.
fn byte_runs(v: &serde_json::Value, out: &mut Vec<u8>) {
    let Some(items) = v.as_array() else {
        if let Some(map) = v.as_object() {
            map.values().for_each(|v| byte_runs(v, out));
        }
        return;
    };
    let byte = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => u8::from_str_radix(s.strip_prefix("0x")?, 16).ok(),
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
        _ => None,
    };
    let run: Option<Vec<u8>> = items.iter().map(byte).collect();
    match run {
        Some(run) if !run.is_empty() => {
            out.extend(run);
            out.push(0);
        }
        _ => items.iter().for_each(|v| byte_runs(v, out)),
    }
}

/// The bytes of every map the attachment's programs use, as `bpftool`
/// dumps them (the two 65536-entry port arrays, which hold no text, aside).
fn map_bytes(fw: &Ftpct) -> Result<Vec<u8>> {
    let id = fw.status_json()?[0]["ingress_prog_id"]
        .as_u64()
        .context("ingress_prog_id")?;
    let show = fw
        .netns()
        .run(&["bpftool", "-j", "prog", "show", "id", &id.to_string()])?;
    let prog: serde_json::Value = serde_json::from_slice(&show.stdout)?;
    let maps = prog["map_ids"].as_array().context("map_ids")?;
    let mut bytes = Vec::new();
    for map in maps {
        let id = map.as_u64().context("map id")?.to_string();
        let info = fw
            .netns()
            .run(&["bpftool", "-j", "map", "show", "id", &id])?;
        let info: serde_json::Value = serde_json::from_slice(&info.stdout)?;
        if info["max_entries"].as_u64().is_some_and(|n| n >= 65_536) && info["type"] == "array" {
            continue;
        }
        let dump = fw
            .netns()
            .run(&["bpftool", "-j", "map", "dump", "id", &id])?;
        let dump: serde_json::Value = serde_json::from_slice(&dump.stdout)
            .with_context(|| format!("bpftool map dump id {id}"))?;
        byte_runs(&dump, &mut bytes);
    }
    Ok(bytes)
}

#[test]
fn no_plaintext_outlives_its_line_in_any_map() -> Result<()> {
    // Text only the client and the server's TLS library ever see in clear,
    // and ftpct's probes in between: a password, and a path longer than any
    // line the server sends after it (so that without the wipe its tail
    // would still be in the probes' scratch memory).
    const PASSWORD: &str = "ftpct-canary-password-5e3cr3t";
    const PATH: &str = "ftpct-canary-path-that-no-later-reply-covers-up-0123456789-abcdefghij";
    let lab = Lab::new()?;
    let server = Vsftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    let fw = attach_inspecting(&lab, &[])?;
    let mut target = server.target(SERVER.ip(Family::V4));
    target.credentials = Credentials {
        user: "anonymous".into(),
        password: PASSWORD.into(),
    };
    let mut session = FtpSession::open(lab.client(), &target)?;
    // EPSV, then `RETR /PATH`, answered by a short 550.
    session.epsv()?;
    ensure!(
        session.retr(&format!("/{PATH}")).is_err(),
        "a file named like the canary exists"
    );
    let c = fw.counters()?;
    ensure!(
        c.get(Counter::TlsPlaintext) >= 1 && c.get(Counter::ExpectEpsv) >= 1,
        "the session was not inspected: {c}"
    );
    let bytes = map_bytes(&fw)?;
    ensure!(!bytes.is_empty(), "bpftool dumped nothing");
    for needle in [PASSWORD, &PATH[PATH.len() - 12..]] {
        ensure!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle:?} is in a map of the attachment"
        );
    }
    session.quit()
}

/// The local port of `ns`'s established connection to `SERVER`'s port 21.
fn control_client_port(ns: &Netns) -> Result<u16> {
    let out = ns.run(&["ss", "-Htn", "state", "established", "dport", "= :21"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter_map(|local| local.rsplit(':').next()?.parse().ok())
        .next()
        .with_context(|| format!("no control connection in ss output: {text:?}"))
}

#[test]
fn a_twin_connection_in_another_namespace_feeds_nothing() -> Result<()> {
    // A second lab has the same addresses in namespaces of its own (as a
    // container on the host could). Its client connects from the port the
    // real session's client uses, so the twin server's socket has exactly
    // the 4-tuple and role of the session ftpct tracks: only the socket's
    // namespace tells them apart. The twin's 227 must open nothing here.
    let lab = Lab::new()?;
    let server = Vsftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    let fw = attach_inspecting(&lab, &[])?;
    let session = FtpSession::open(lab.client(), &server.target(SERVER.ip(Family::V4)))?;
    let port = control_client_port(lab.client())?;
    let twin = Lab::new()?;
    let twin_server = Vsftpd::start_with(twin.server(), ServerOptions::ftps(Tls::Explicit))?;
    let before = fw.counters()?;
    let url = format!("ftp://{}/{SMALL_FILE}", SERVER.ip(Family::V4));
    let out = twin.client().run(&[
        "curl",
        "--silent",
        "--show-error",
        "--ssl-reqd",
        "--insecure",
        "--disable-epsv",
        "--max-time",
        "20",
        // The control connection takes the first port of the range (free in
        // the twin's namespace), its data connection the next.
        "--local-port",
        &format!("{port}-{}", port.saturating_add(10)),
        "--output",
        "/dev/null",
        &url,
    ])?;
    ensure!(
        out.status.success(),
        "the twin's own transfer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(twin_server);
    let after = fw.counters()?;
    ensure!(
        after.since(&before, Counter::TlsOtherNetns) >= 1
            && after.since(&before, Counter::ExpectPasv) == 0
            && after.since(&before, Counter::TlsPlaintext) == 0
            && fw.expectations_json()?.0.is_empty(),
        "the twin's session fed the real one's: {after}"
    );
    session.quit()
}
