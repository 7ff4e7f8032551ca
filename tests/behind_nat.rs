//! FTP servers behind a cloud-style 1:1 NAT (issue #10): the router maps a
//! public address to the server's private one and has no FTP helper, so the
//! server names the public address in its `227` itself (vsftpd
//! `pasv_address`, ProFTPD `MasqueradeAddress`, pure-ftpd `-P`, pyftpdlib
//! `masquerade_address`). ftpct, on the server's private interface, sees a
//! `227` naming an address that is not the connection's.
//!
//! For each server: a PASV download through the NAT works without ftpct
//! with a client that uses the `227`'s address, and fails once ftpct is
//! attached without `--external-address`, which refuses the `227`
//! (`refused_address_mismatch`). With `--external-address PUBLIC` (or
//! `PRIVATE=PUBLIC`) the same downloads work in every mode with curl, lftp
//! and ftplib; the port announced to the client stays the client's alone,
//! and forged `227`s naming the public address that come in through the
//! NAT open nothing. Each hostile check first shows the attack working
//! without ftpct.
//!
//! Needs root, nftables and a built ftpct (`FTPCT_BIN`, default
//! `target/release/ftpct`). Run:
//! `cargo test -p ftpct-e2e --test behind_nat -- --test-threads=2`.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ftpct_e2e::clients::{
    curl_download, ftplib_download, lftp_download_mode, probe_all, tcp_connect,
};
use ftpct_e2e::fixtures::FileDigest;
use ftpct_e2e::forge::{Segment, Sink, ftp_commands, reply_to, send_segments};
use ftpct_e2e::ftpct::{endpoint, row_endpoint};
use ftpct_e2e::servers::{CONTROL_PORT, FtpTarget, ServerOptions};
use ftpct_e2e::{
    CLIENT, ConnectResult, Counter, EchoClient, EchoServer, FtpServer, FtpSession, Ftpct, INTRUDER,
    NAT_PRIVATE, NAT_PUBLIC, NAT_ROUTER, NatLab, Netns, Proftpd, PureFtpd, Pyftpdlib, SMALL_FILE,
    TransferMode, Vsftpd,
};
use serde_json::json;

/// How long a probe waits before calling a connection attempt dropped.
const PROBE: Duration = Duration::from_secs(2);

/// A port in the servers' passive range that no FTP server uses in the
/// tests that listen on it.
const LISTEN_PORT: u16 = 40050;

/// A port on the client for a connection the server opens.
const CLIENT_PORT: u16 = 45000;

/// The server's public address, which clients connect to.
fn public() -> IpAddr {
    IpAddr::V4(NAT_PUBLIC)
}

/// The options of a server behind the NAT: `227`s name [`NAT_PUBLIC`].
fn masquerading() -> ServerOptions {
    ServerOptions::masquerading(NAT_PUBLIC)
}

/// `ftpct attach eth0 --external-address EXTERNAL` on the server.
fn attach_external<'a>(lab: &'a NatLab, external: &str) -> Result<Ftpct<'a>> {
    lab.attach(&["--external-address", external])
}

/// Fails unless `server`'s `227`, seen by the client through the NAT,
/// names [`NAT_PUBLIC`]: its masquerade setting took effect and the router
/// left the reply alone.
fn ensure_227_names_public(lab: &NatLab, server: &impl FtpServer) -> Result<()> {
    let login = server.credentials();
    let lines = ftp_commands(
        lab.client(),
        public(),
        CONTROL_PORT,
        &login.user,
        &login.password,
        &["TYPE I", "PASV"],
    )?;
    let reply = reply_to(&lines, "PASV").with_context(|| format!("no PASV reply: {lines:?}"))?;
    let tuple = NAT_PUBLIC.to_string().replace('.', ",");
    ensure!(
        reply.starts_with("227") && reply.contains(&format!("{tuple},")),
        "{}: the 227 does not name {NAT_PUBLIC}: {reply}",
        server.name()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 1. The lab: the NAT maps the public address, and nothing else.

#[test]
fn nat_maps_the_public_address_to_the_server_and_nothing_else() -> Result<()> {
    let lab = NatLab::new()?;
    let listener = EchoServer::start(lab.server(), "::", LISTEN_PORT)?;
    let private = IpAddr::V4(NAT_PRIVATE);
    let r = tcp_connect(lab.client(), public(), listener.port(), PROBE)?;
    assert_eq!(r, ConnectResult::Connected, "client to the public address");

    // The private network is routed from nowhere on the public side, and
    // with a route of its own the intruder's SYN is not forwarded.
    let r = tcp_connect(lab.intruder(), private, listener.port(), PROBE)?;
    assert!(
        matches!(r, ConnectResult::Other(_)),
        "intruder to the private address without a route: {r:?}"
    );
    let route = format!("{NAT_PRIVATE}/32");
    let router = NAT_ROUTER.v4.to_string();
    lab.intruder()
        .run_ok(&["ip", "route", "add", &route, "via", &router])?;
    let r = tcp_connect(lab.intruder(), private, listener.port(), PROBE)?;
    assert_eq!(
        r,
        ConnectResult::TimedOut,
        "intruder routing to the private address"
    );

    // The server's own connections leave with the public address.
    let _echo = EchoServer::start(lab.client(), "::", CLIENT_PORT)?;
    let client = IpAddr::V4(CLIENT.v4);
    let mut conn = EchoClient::connect(lab.server(), client, CLIENT_PORT, PROBE)?;
    assert_eq!(conn.exchange("hello")?, "hello");
    let sport = format!("sport = :{CLIENT_PORT}");
    let out = lab
        .client()
        .run_ok(&["ss", "-Htn", "state", "established", &sport])?;
    let peers = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        peers.contains(&NAT_PUBLIC.to_string()) && !peers.contains(&NAT_PRIVATE.to_string()),
        "the client sees the server's connection from: {peers}"
    );
    Ok(())
}

#[test]
fn clients_told_to_use_the_227s_address_do() -> Result<()> {
    // Without a masquerade address the 227 names the private address,
    // which the client cannot reach: told to use it, every client fails
    // (so the tests below, where it names the public one, use it); curl
    // left to its default uses the control connection's address.
    let lab = NatLab::new()?;
    let server = Pyftpdlib::start(lab.server())?;
    let target = server.target(public());
    let got = curl_download(lab.client(), &target, SMALL_FILE, TransferMode::Pasv)?;
    assert_eq!(got, server.tree().digest(SMALL_FILE)?, "curl by default");
    let target = target.using_pasv_address();
    for (client, download) in CLIENTS {
        let r = download(lab.client(), &target, SMALL_FILE, TransferMode::Pasv);
        assert!(r.is_err(), "{client} did not use the 227's {NAT_PRIVATE}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 2. Without `--external-address`, ftpct refuses the masqueraded 227.

/// `server` masquerades behind `lab`'s NAT: a PASV download using the
/// `227`'s address works without ftpct; with ftpct attached without
/// `--external-address` the same download fails, the `227` refused as
/// naming an address other than the server's and the client's SYN to the
/// port dropped, while EPSV (which names no address) still works.
fn refused_without_external_address(lab: &NatLab, server: &impl FtpServer) -> Result<()> {
    let name = server.name();
    let target = server.target(public()).using_pasv_address();
    let expected = server.tree().digest(SMALL_FILE)?;
    ensure_227_names_public(lab, server)?;
    let got = curl_download(lab.client(), &target, SMALL_FILE, TransferMode::Pasv)
        .with_context(|| format!("{name}: PASV through the NAT without ftpct"))?;
    ensure!(got == expected, "{name}: wrong content without ftpct");

    let fw = lab.attach(&[])?;
    let before = fw.counters()?;
    let refused = curl_download(lab.client(), &target, SMALL_FILE, TransferMode::Pasv);
    let after = fw.counters()?;
    ensure!(
        refused.is_err(),
        "{name}: PASV naming {NAT_PUBLIC} went through ftpct without --external-address: {after}"
    );
    ensure!(
        after.since(&before, Counter::RefusedAddressMismatch) >= 1,
        "{name}: 227 not refused as an address mismatch: {after}"
    );
    ensure!(
        after.since(&before, Counter::ExpectPasv) == 0
            && after.since(&before, Counter::SynDropped) >= 1,
        "{name}: {after}"
    );
    let got = curl_download(lab.client(), &target, SMALL_FILE, TransferMode::Epsv)
        .with_context(|| format!("{name}: EPSV through the NAT and ftpct"))?;
    ensure!(got == expected, "{name}: wrong content over EPSV");
    Ok(())
}

#[test]
fn vsftpd_pasv_address_works_through_nat_and_is_refused_without_external_address() -> Result<()> {
    let lab = NatLab::new()?;
    let server = Vsftpd::start_with(lab.server(), masquerading())?;
    refused_without_external_address(&lab, &server)
}

#[test]
fn proftpd_masquerade_address_works_through_nat_and_is_refused_without_external_address()
-> Result<()> {
    let lab = NatLab::new()?;
    let server = Proftpd::start_with(lab.server(), masquerading())?;
    refused_without_external_address(&lab, &server)
}

#[test]
fn pure_ftpd_forced_passive_ip_works_through_nat_and_is_refused_without_external_address()
-> Result<()> {
    let lab = NatLab::new()?;
    let server = PureFtpd::start_with(lab.server(), masquerading())?;
    refused_without_external_address(&lab, &server)
}

#[test]
fn pyftpdlib_masquerade_address_works_through_nat_and_is_refused_without_external_address()
-> Result<()> {
    let lab = NatLab::new()?;
    let server = Pyftpdlib::start_with(lab.server(), masquerading())?;
    refused_without_external_address(&lab, &server)
}

// ---------------------------------------------------------------------------
// 3. With `--external-address`, transfers through the NAT and ftpct work.

/// A download by one of the clients.
type Download = fn(&Netns, &FtpTarget, &str, TransferMode) -> Result<FileDigest>;

/// The clients, by name.
const CLIENTS: [(&str, Download); 3] = [
    ("curl", curl_download),
    ("lftp", lftp_download_mode),
    ("ftplib", ftplib_download),
];

/// Downloads with `download` in `mode` from `server` through the NAT and,
/// if given, `fw`, whose counters must say how it went through: a PASV's
/// `227` accepted via the external address and its connection admitted, an
/// EPSV's connection admitted, a PORT's outbound connection tracked.
fn transfer(
    lab: &NatLab,
    server: &impl FtpServer,
    fw: Option<&Ftpct>,
    (client, download): (&str, Download),
    mode: TransferMode,
) -> Result<()> {
    let what = format!("{} {client} {mode:?}", server.name());
    let target = server.target(public()).using_pasv_address();
    let before = fw.map(Ftpct::counters).transpose()?;
    let got = download(lab.client(), &target, SMALL_FILE, mode).context(what.clone())?;
    ensure!(
        got == server.tree().digest(SMALL_FILE)?,
        "{what}: wrong content"
    );
    let (Some(fw), Some(before)) = (fw, before) else {
        return Ok(());
    };
    let after = fw.counters()?;
    let grew = |c| after.since(&before, c) >= 1;
    match mode {
        TransferMode::Pasv => {
            ensure!(
                grew(Counter::AnnouncedViaExternal)
                    && grew(Counter::ExpectPasv)
                    && grew(Counter::SynAdmitted),
                "{what}: {after}"
            );
        }
        TransferMode::Epsv => ensure!(
            grew(Counter::ExpectEpsv) && grew(Counter::SynAdmitted),
            "{what}: {after}"
        ),
        TransferMode::Port | TransferMode::Eprt => {
            ensure!(grew(Counter::FlowsOutbound), "{what}: {after}")
        }
    }
    ensure!(
        after.since(&before, Counter::SynDropped) == 0
            && after.since(&before, Counter::RefusedAddressMismatch) == 0,
        "{what}: {after}"
    );
    Ok(())
}

#[test]
fn vsftpd_every_client_and_mode_through_nat_with_external_address() -> Result<()> {
    let lab = NatLab::new()?;
    let server = Vsftpd::start_with(lab.server(), masquerading())?;
    let modes = [TransferMode::Pasv, TransferMode::Epsv, TransferMode::Port];
    // Through the NAT alone first: what fails later is ftpct's doing.
    for client in CLIENTS {
        for mode in modes {
            transfer(&lab, &server, None, client, mode).context("without ftpct")?;
        }
    }
    let fw = attach_external(&lab, &NAT_PUBLIC.to_string())?;
    let status = fw.status_json()?;
    assert_eq!(
        status[0]["external_addresses"],
        json!([{"local": "*", "external": NAT_PUBLIC.to_string()}]),
        "{status}"
    );
    for client in CLIENTS {
        for mode in modes {
            transfer(&lab, &server, Some(&fw), client, mode)?;
        }
    }
    Ok(())
}

#[test]
fn proftpd_pasv_with_external_address_for_its_private_address() -> Result<()> {
    let lab = NatLab::new()?;
    let server = Proftpd::start_with(lab.server(), masquerading())?;
    let fw = attach_external(&lab, &format!("{NAT_PRIVATE}={NAT_PUBLIC}"))?;
    let status = fw.status_json()?;
    assert_eq!(
        status[0]["external_addresses"],
        json!([{"local": NAT_PRIVATE.to_string(), "external": NAT_PUBLIC.to_string()}]),
        "{status}"
    );
    transfer(&lab, &server, Some(&fw), CLIENTS[0], TransferMode::Pasv)
}

#[test]
fn pure_ftpd_pasv_with_external_address() -> Result<()> {
    let lab = NatLab::new()?;
    let server = PureFtpd::start_with(lab.server(), masquerading())?;
    let fw = attach_external(&lab, &NAT_PUBLIC.to_string())?;
    transfer(&lab, &server, Some(&fw), CLIENTS[1], TransferMode::Pasv)
}

#[test]
fn pyftpdlib_pasv_with_external_address() -> Result<()> {
    let lab = NatLab::new()?;
    let server = Pyftpdlib::start_with(lab.server(), masquerading())?;
    let fw = attach_external(&lab, &NAT_PUBLIC.to_string())?;
    transfer(&lab, &server, Some(&fw), CLIENTS[2], TransferMode::Pasv)
}

// ---------------------------------------------------------------------------
// 4. Hostile, through the NAT.

#[test]
fn intruder_cannot_take_a_port_announced_via_the_external_address() -> Result<()> {
    let lab = NatLab::new()?;
    let server = Vsftpd::start_with(lab.server(), masquerading())?;
    let target = server.target(public());

    // Without ftpct the port announced to the client is open to anyone.
    let mut session = FtpSession::open(lab.client(), &target)?;
    let port = session.pasv()?;
    let r = tcp_connect(lab.intruder(), public(), port, PROBE)?;
    assert_eq!(r, ConnectResult::Connected, "without ftpct, port {port}");
    drop(session);

    let fw = attach_external(&lab, &NAT_PUBLIC.to_string())?;
    let mut session = FtpSession::open(lab.client(), &target)?;
    let before = fw.counters()?;
    let port = session.pasv()?;
    // The expectation is for the address the translated SYN arrives at.
    let rows = fw.expectations_json()?;
    let dst = endpoint(IpAddr::V4(NAT_PRIVATE), port);
    assert!(
        rows.iter()
            .any(|r| r["src_addr"] == CLIENT.v4.to_string().as_str()
                && row_endpoint(r, "dst").as_ref() == Some(&dst)),
        "no expectation for the client to {dst}: {rows}"
    );
    let got = lab.intruder_dropped_then_client_retrieves(&mut session, port, SMALL_FILE)?;
    assert_eq!(
        got,
        server.tree().digest(SMALL_FILE)?,
        "the client's transfer"
    );
    session.quit()?;
    let after = fw.counters()?;
    assert!(
        after.since(&before, Counter::AnnouncedViaExternal) >= 1,
        "{after}"
    );
    assert!(after.since(&before, Counter::SynDropped) >= 1, "{after}");
    assert!(after.since(&before, Counter::SynAdmitted) >= 1, "{after}");
    Ok(())
}

#[test]
fn forged_227_naming_the_external_address_creates_nothing() -> Result<()> {
    let lab = NatLab::new()?;
    let _server = Vsftpd::start_with(lab.server(), masquerading())?;
    let _listener = Sink::start(lab.server(), "::", &LISTEN_PORT.to_string())?;
    let targets = [
        (lab.intruder(), public(), LISTEN_PORT),
        (lab.client(), public(), LISTEN_PORT),
    ];
    // Without ftpct a listening data port is open to everybody.
    for (r, t) in probe_all(&targets, PROBE)?.iter().zip(&targets) {
        assert_eq!(
            *r,
            ConnectResult::Connected,
            "without ftpct: {}",
            t.0.name()
        );
    }

    let fw = lab.attach(&["--force", "--external-address", &NAT_PUBLIC.to_string()])?;
    let before = fw.counters()?;
    let tuple = NAT_PUBLIC.to_string().replace('.', ",");
    let (hi, lo) = (LISTEN_PORT >> 8, LISTEN_PORT & 0xff);
    let pasv = format!("227 Entering Passive Mode ({tuple},{hi},{lo}).\r\n");
    let intr = IpAddr::V4(INTRUDER.v4);
    let cli = IpAddr::V4(CLIENT.v4);
    // "Replies from port 21" to connections the server never had, from the
    // intruder and spoofing the client, alone and after a forged `PASV`;
    // sent to the router, so they come in through the NAT as the server's
    // real traffic does.
    let forged = [
        Segment::new(intr, 21, public(), 50001, "PA").payload(&pasv),
        Segment::new(cli, 21, public(), 50002, "PA").payload(&pasv),
        Segment::new(intr, 50003, public(), 21, "PA").payload("PASV\r\n"),
        Segment::new(intr, 21, public(), 50003, "PA").payload(&pasv),
        Segment::new(cli, 50004, public(), 21, "PA").payload("PASV\r\n"),
        Segment::new(cli, 21, public(), 50004, "PA").payload(&pasv),
    ];
    send_segments(lab.intruder(), lab.router(), &forged)?;

    let rows = fw.expectations_json()?;
    assert!(rows.is_empty(), "forged 227s created expectations: {rows}");
    let after = fw.counters()?;
    assert_eq!(after.created(), before.created(), "{after}");
    assert_eq!(
        after.since(&before, Counter::AnnouncedViaExternal),
        0,
        "{after}"
    );
    // They did arrive: the ones aimed at guarded ports were dropped.
    assert!(
        after.since(&before, Counter::UntrackedDropped) >= 4,
        "forged segments did not come through the NAT: {after}"
    );
    for (r, t) in probe_all(&targets, PROBE)?.iter().zip(&targets) {
        assert_eq!(*r, ConnectResult::TimedOut, "with ftpct: {}", t.0.name());
    }
    let end = fw.counters()?;
    assert!(end.since(&after, Counter::SynDropped) >= 2, "{end}");
    assert_eq!(end.since(&before, Counter::SynAdmitted), 0, "{end}");
    Ok(())
}

#[test]
fn a_client_behind_the_nat_names_its_external_address_in_port() -> Result<()> {
    // The host behind the NAT is the FTP client now: a server on the public
    // side (the lab client's namespace) connects back to the public address
    // its PORT names, which the NAT sends on to the private one.
    let lab = NatLab::new()?;
    let server = Vsftpd::start(lab.client())?;
    let expected = server.tree().digest(SMALL_FILE)?;
    let target = server
        .target(IpAddr::V4(CLIENT.v4))
        .announcing_port_address(NAT_PUBLIC);
    let download = || lftp_download_mode(lab.server(), &target, SMALL_FILE, TransferMode::Port);
    ensure!(
        download()? == expected,
        "active mode through the NAT, no ftpct"
    );

    // PORT naming an address that is not the client's is a bounce to ftpct.
    let fw = lab.attach(&[])?;
    let before = fw.counters()?;
    ensure!(
        download().is_err(),
        "without --external-address, the PORT is refused"
    );
    let after = fw.counters()?;
    ensure!(after.since(&before, Counter::RefusedBounce) >= 1, "{after}");
    fw.detach()?;

    let fw = attach_external(&lab, &NAT_PUBLIC.to_string())?;
    let before = fw.counters()?;
    ensure!(download()? == expected, "with --external-address");
    let after = fw.counters()?;
    ensure!(
        after.since(&before, Counter::AnnouncedViaExternal) >= 1
            && after.since(&before, Counter::ExpectPort) >= 1
            && after.since(&before, Counter::SynAdmitted) >= 1,
        "{after}"
    );
    Ok(())
}
