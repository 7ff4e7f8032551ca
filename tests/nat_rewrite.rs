//! `--nat-rewrite` behind a cloud-style 1:1 NAT (issue #10): the servers
//! run without any masquerade setting, so their `227` names the private
//! address, which the clients cannot reach; ftpct rewrites it on the way
//! out to name the public address, in the reply's own length.
//!
//! - Every server and client: a client that uses the `227`'s address fails
//!   without ftpct and succeeds through it, in PASV (and EPSV and PORT
//!   unchanged).
//! - A long session (dozens of transfers, listings and uploads on one
//!   control connection) stays healthy, also with loss on the path: the
//!   router drops the first copy of every `227` and 5% of everything, so
//!   every rewritten reply is retransmitted and rewritten again.
//! - Where the host computes TCP checksums itself (transmit checksum
//!   offload off), the rewritten segment's checksum is right.
//! - The host as an FTP client behind the NAT: its `PORT` and `EPRT` name
//!   the private address, which the server refuses (vsftpd checks it
//!   against the connection's); rewritten, they name the public one. The
//!   command grows by a byte ([`NAT_PUBLIC`] is one character longer), so
//!   the rest of the control connection moves: a long active session, with
//!   loss that drops the first copy of every `PORT`/`EPRT`, stays healthy.
//! - The same behind the router's IPv6 prefix translation (NPTv6): the
//!   host's `EPRT |2|` names its private address and leaves naming the
//!   public one, 25 bytes longer (written in full); a long session too.
//! - The hostile rules still hold: another host cannot use a rewritten
//!   announcement, and forged replies create nothing.
//!
//! Needs root, nftables, ethtool and a built ftpct (`FTPCT_BIN`, default
//! `target/release/ftpct`). Run:
//! `cargo test -p ftpct-e2e --test nat_rewrite -- --test-threads=2`.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ftpct_e2e::clients::{
    curl_download, ftplib_download, ftplib_long_session, lftp_download_mode, tcp_connect,
};
use ftpct_e2e::fixtures::FileDigest;
use ftpct_e2e::forge::{Segment, send_segments};
use ftpct_e2e::servers::FtpTarget;
use ftpct_e2e::{
    CLIENT, ConnectResult, Counter, Family, FtpServer, FtpSession, Ftpct, INTRUDER, LAB_IFACE,
    NAT_PRIVATE, NAT_PRIVATE_V6, NAT_PUBLIC, NAT_PUBLIC_V6, NAT_ROUTER_PRIVATE_IFACE, NatLab,
    Netns, Proftpd, PureFtpd, Pyftpdlib, SMALL_FILE, TransferMode, Vsftpd, assert_cli_error,
    ftpct_run,
};

/// How long a probe waits before calling a connection attempt dropped.
const PROBE: Duration = Duration::from_secs(2);

/// Rounds of the long session (four transfers each).
const LONG_ROUNDS: u32 = 12;

/// Rounds of the long session with loss on the path.
const LOSSY_ROUNDS: u32 = 6;

/// The server's public address, which clients connect to.
fn public() -> IpAddr {
    IpAddr::V4(NAT_PUBLIC)
}

/// `ftpct attach eth0 --external-address PUBLIC --external-address
/// PRIVATE_V6=PUBLIC_V6 --nat-rewrite` on the server.
fn attach_rewriting(lab: &NatLab) -> Result<Ftpct<'_>> {
    let fw = lab.attach(&[
        "--external-address",
        &NAT_PUBLIC.to_string(),
        "--external-address",
        &format!("{NAT_PRIVATE_V6}={NAT_PUBLIC_V6}"),
        "--nat-rewrite",
    ])?;
    let status = fw.status_json()?;
    ensure!(status[0]["nat_rewrite"] == true, "status: {status}");
    Ok(fw)
}

/// A download by one of the clients.
type Download = fn(&Netns, &FtpTarget, &str, TransferMode) -> Result<FileDigest>;

/// The clients, by name; each is told to use the `227`'s address (curl
/// `--no-ftp-skip-pasv-ip`, ftplib `trust_server_pasv_ipv4_address`).
const CLIENTS: [(&str, Download); 3] = [
    ("curl", curl_download),
    ("lftp", lftp_download_mode),
    ("ftplib", ftplib_download),
];

/// Downloads with every client in PASV from `server` through the NAT: all
/// fail without ftpct (the `227` names the private address), and all
/// succeed through ftpct rewriting it. The counters say how.
fn every_client_through_rewrite<'a>(lab: &'a NatLab, server: &impl FtpServer) -> Result<Ftpct<'a>> {
    let name = server.name();
    let target = server.target(public()).using_pasv_address();
    let expected = server.tree().digest(SMALL_FILE)?;
    for (client, download) in CLIENTS {
        let r = download(lab.client(), &target, SMALL_FILE, TransferMode::Pasv);
        ensure!(
            r.is_err(),
            "{name} {client}: the private address worked without ftpct"
        );
    }
    let fw = attach_rewriting(lab)?;
    for (client, download) in CLIENTS {
        let what = format!("{name} {client} PASV");
        let before = fw.counters()?;
        let got = download(lab.client(), &target, SMALL_FILE, TransferMode::Pasv)
            .with_context(|| what.clone())?;
        ensure!(got == expected, "{what}: wrong content");
        let after = fw.counters()?;
        let grew = |c| after.since(&before, c) >= 1;
        ensure!(
            grew(Counter::NatRewritten) && grew(Counter::ExpectPasv) && grew(Counter::SynAdmitted),
            "{what}: {after}"
        );
        ensure!(
            after.since(&before, Counter::SynDropped) == 0
                && after.since(&before, Counter::NatRewriteSplit) == 0
                && after.since(&before, Counter::NatRewriteUnfit) == 0,
            "{what}: {after}"
        );
    }
    Ok(fw)
}

#[test]
fn vsftpd_every_client_and_mode_with_nat_rewrite() -> Result<()> {
    let lab = NatLab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let fw = every_client_through_rewrite(&lab, &server)?;
    // EPSV names no address and PORT is the client's: neither is rewritten.
    let before = fw.counters()?;
    let target = server.target(public()).using_pasv_address();
    let expected = server.tree().digest(SMALL_FILE)?;
    for (client, download) in CLIENTS {
        for mode in [TransferMode::Epsv, TransferMode::Port] {
            let got = download(lab.client(), &target, SMALL_FILE, mode)
                .with_context(|| format!("vsftpd {client} {mode:?}"))?;
            ensure!(got == expected, "vsftpd {client} {mode:?}: wrong content");
        }
    }
    let after = fw.counters()?;
    ensure!(
        after.since(&before, Counter::NatRewritten) == 0
            && after.since(&before, Counter::ExpectEpsv) >= 3
            && after.since(&before, Counter::FlowsOutbound) >= 3,
        "{after}"
    );
    Ok(())
}

#[test]
fn proftpd_every_client_with_nat_rewrite() -> Result<()> {
    let lab = NatLab::new()?;
    let server = Proftpd::start(lab.server())?;
    every_client_through_rewrite(&lab, &server).map(drop)
}

#[test]
fn pure_ftpd_every_client_with_nat_rewrite() -> Result<()> {
    let lab = NatLab::new()?;
    let server = PureFtpd::start(lab.server())?;
    every_client_through_rewrite(&lab, &server).map(drop)
}

#[test]
fn pyftpdlib_every_client_with_nat_rewrite() -> Result<()> {
    let lab = NatLab::new()?;
    let server = Pyftpdlib::start(lab.server())?;
    every_client_through_rewrite(&lab, &server).map(drop)
}

/// A long session from the client to `server`: `rounds` rounds of RETR,
/// LIST, STOR and RETR back on one control connection, all PASV with the
/// `227`'s address. Every `227` was rewritten (some maybe again, as
/// retransmissions) and nothing was dropped.
fn long_session(lab: &NatLab, fw: &Ftpct, server: &impl FtpServer, rounds: u32) -> Result<()> {
    let target = server.target(public()).using_pasv_address();
    let before = fw.counters()?;
    let transfers = ftplib_long_session(lab.client(), &target, SMALL_FILE, rounds, false)?;
    let after = fw.counters()?;
    ensure!(transfers == 4 * rounds, "{transfers} transfers");
    ensure!(
        after.since(&before, Counter::NatRewritten) >= u64::from(transfers),
        "every PASV rewritten: {after}"
    );
    ensure!(
        after.since(&before, Counter::SynAdmitted) >= u64::from(transfers)
            && after.since(&before, Counter::SynDropped) == 0
            && after.since(&before, Counter::NatRewriteSplit) == 0,
        "{after}"
    );
    Ok(())
}

#[test]
fn a_long_session_keeps_its_control_connection_healthy() -> Result<()> {
    let lab = NatLab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let fw = attach_rewriting(&lab)?;
    long_session(&lab, &fw, &server, LONG_ROUNDS)
}

#[test]
fn rewritten_replies_are_rewritten_again_when_retransmitted_through_loss() -> Result<()> {
    let lab = NatLab::new()?;
    let server = Pyftpdlib::start(lab.server())?;
    let fw = attach_rewriting(&lab)?;
    lab.add_loss(5, false)?;
    let before = fw.counters()?;
    long_session(&lab, &fw, &server, LOSSY_ROUNDS)?;
    let after = fw.counters()?;
    let (first_227, _, random) = lab.losses()?;
    let pasvs = u64::from(4 * LOSSY_ROUNDS);
    println!(
        "loss: {first_227} first copies of 227 dropped, {random} packets at random; \
         {} 227s rewritten, {} retransmissions rewritten again",
        after.since(&before, Counter::NatRewritten),
        after.since(&before, Counter::NatRewriteRetransmitted)
    );
    ensure!(
        first_227 >= pasvs && random > 0,
        "the router dropped {first_227} first copies of 227 and {random} at random"
    );
    // Each 227's first copy never arrived: the client got a retransmission,
    // which ftpct had rewritten the same way.
    ensure!(
        after.since(&before, Counter::NatRewriteRetransmitted) >= pasvs,
        "{after}"
    );
    Ok(())
}

#[test]
fn the_checksum_is_right_where_software_computes_and_checks_it() -> Result<()> {
    // Without transmit checksum offload the server's kernel computes the
    // checksum in software, after ftpct rewrote the segment; without
    // receive offload on the router and the client (veth otherwise marks
    // such packets as verified), the client's kernel checks it and drops
    // the reply if it is wrong.
    let lab = NatLab::new()?;
    let offload = |ns: &Netns, iface: &str, dir: &str| {
        ns.run_ok(&["ethtool", "-K", iface, dir, "off"])
            .with_context(|| format!("turning {dir} checksum offload off on {iface}"))
    };
    offload(lab.server(), LAB_IFACE, "tx")?;
    offload(lab.router(), NAT_ROUTER_PRIVATE_IFACE, "rx")?;
    offload(lab.client(), LAB_IFACE, "rx")?;
    let server = Pyftpdlib::start(lab.server())?;
    let fw = attach_rewriting(&lab)?;
    let target = server.target(public()).using_pasv_address();
    let before = fw.counters()?;
    let got = curl_download(lab.client(), &target, SMALL_FILE, TransferMode::Pasv)?;
    ensure!(got == server.tree().digest(SMALL_FILE)?, "wrong content");
    let after = fw.counters()?;
    ensure!(
        after.since(&before, Counter::NatRewritten) >= 1
            && after.since(&before, Counter::NatRewriteRetransmitted) == 0,
        "the rewritten 227 was accepted the first time: {after}"
    );
    Ok(())
}

#[test]
fn another_host_cannot_use_a_rewritten_announcement_and_forged_replies_create_nothing() -> Result<()>
{
    let lab = NatLab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let fw = attach_rewriting(&lab)?;
    let target = server.target(public()).using_pasv_address();
    let mut session = FtpSession::open(lab.client(), &target)?;
    let before = fw.counters()?;
    let port = session.pasv()?;
    let got = lab.intruder_dropped_then_client_retrieves(&mut session, port, SMALL_FILE)?;
    assert_eq!(
        got,
        server.tree().digest(SMALL_FILE)?,
        "the client's transfer"
    );
    session.quit()?;
    let after = fw.counters()?;
    assert!(after.since(&before, Counter::NatRewritten) >= 1, "{after}");
    assert!(after.since(&before, Counter::SynDropped) >= 1, "{after}");

    // Forged 227s naming the private address (as a rewritten one would
    // have) and the public one, from the intruder and spoofing the client,
    // come in through the NAT: nothing is created or rewritten.
    let before = fw.counters()?;
    let (intr, cli) = (IpAddr::V4(INTRUDER.v4), IpAddr::V4(CLIENT.v4));
    let tuples = [NAT_PRIVATE, NAT_PUBLIC].map(|a| a.to_string().replace('.', ","));
    let forged: Vec<Segment> = tuples
        .iter()
        .flat_map(|tuple| {
            let pasv = format!("227 Entering Passive Mode ({tuple},156,82).\r\n");
            [
                Segment::new(intr, 50_001, public(), 21, "PA").payload("PASV\r\n"),
                Segment::new(intr, 21, public(), 50_001, "PA").payload(&pasv),
                Segment::new(cli, 21, public(), 50_002, "PA").payload(&pasv),
            ]
        })
        .collect();
    send_segments(lab.intruder(), lab.router(), &forged)?;
    let after = fw.counters()?;
    assert_eq!(after.created(), before.created(), "{after}");
    assert_eq!(after.since(&before, Counter::NatRewritten), 0, "{after}");
    assert!(fw.expectations_json()?.is_empty());
    let r = tcp_connect(lab.intruder(), public(), 40_018, PROBE)?;
    assert_eq!(r, ConnectResult::TimedOut, "intruder to the forged port");
    Ok(())
}

// ---------------------------------------------------------------------------
// The host as an FTP client behind the NAT.

/// A vsftpd on the public side (the lab client's namespace), which the
/// host behind the NAT (the lab server's namespace) uses as a client,
/// reached at the client's address of `family`.
fn public_server(lab: &NatLab, family: Family) -> Result<(Vsftpd, FtpTarget)> {
    let server = Vsftpd::start(lab.client())?;
    let target = server.target(CLIENT.ip(family));
    Ok((server, target))
}

/// The host behind the NAT, a client of the public server over `family`:
/// without ftpct its `PORT`/`EPRT` names the private address, which vsftpd
/// refuses (it is not the address the control connection comes from);
/// rewritten, every client's active download works (IPv6: `EPRT |2|`
/// behind the router's NPTv6; lftp uses `EPRT` there too).
fn active_clients_behind_the_nat(family: Family) -> Result<()> {
    let lab = NatLab::new()?;
    let (server, target) = public_server(&lab, family)?;
    let expected = server.tree().digest(SMALL_FILE)?;
    ensure!(
        ftplib_download(lab.server(), &target, SMALL_FILE, TransferMode::Eprt).is_err(),
        "EPRT naming the private address worked without ftpct over {family:?}"
    );
    let fw = attach_rewriting(&lab)?;
    let mut cases: Vec<(&str, Download, TransferMode)> = vec![
        ("lftp", lftp_download_mode, TransferMode::Port),
        ("curl", curl_download, TransferMode::Eprt),
        ("ftplib", ftplib_download, TransferMode::Eprt),
    ];
    if family == Family::V4 {
        cases.push(("curl", curl_download, TransferMode::Port));
        cases.push(("ftplib", ftplib_download, TransferMode::Port));
    }
    for (client, download, mode) in cases {
        let what = format!("{client} {mode:?} from behind the NAT over {family:?}");
        let before = fw.counters()?;
        let got = download(lab.server(), &target, SMALL_FILE, mode).context(what.clone())?;
        ensure!(got == expected, "{what}: wrong content");
        let after = fw.counters()?;
        ensure!(
            after.since(&before, Counter::NatRewritten) >= 1
                && after.since(&before, Counter::SynAdmitted) >= 1
                && after.since(&before, Counter::SynDropped) == 0,
            "{what}: {after}"
        );
    }
    closes_completely(&lab)
}

#[test]
fn a_client_behind_the_nat_has_its_port_and_eprt_rewritten() -> Result<()> {
    active_clients_behind_the_nat(Family::V4)
}

/// A long active session from behind the NAT: every `PORT` rewritten, each
/// a byte longer, so the control connection's stream moves further with
/// each one; every transfer arrives and nothing is dropped.
fn long_active_session(lab: &NatLab, fw: &Ftpct, family: Family, rounds: u32) -> Result<()> {
    let (_server, target) = public_server(lab, family)?;
    let before = fw.counters()?;
    let transfers = ftplib_long_session(lab.server(), &target, SMALL_FILE, rounds, true)
        .with_context(|| match fw.counters() {
            Ok(c) => format!("{c}"),
            Err(e) => format!("{e:#}"),
        })?;
    let after = fw.counters()?;
    ensure!(transfers == 4 * rounds, "{transfers} transfers");
    ensure!(
        after.since(&before, Counter::NatRewritten) >= u64::from(transfers)
            && after.since(&before, Counter::SynAdmitted) >= u64::from(transfers)
            && after.since(&before, Counter::SynDropped) == 0
            && after.since(&before, Counter::NatRewriteUnfit) == 0,
        "{after}"
    );
    closes_completely(lab)
}

/// The host's control connections (to port 21) have all finished closing:
/// none is left waiting for the acknowledgment of its FIN, which a stream
/// moved on the way out but not on the way back would never get. Bounded.
fn closes_completely(lab: &NatLab) -> Result<()> {
    let waiting = || -> Result<String> {
        let out = lab.server().run_ok(&[
            "ss",
            "-Htn",
            "state",
            "fin-wait-1",
            "state",
            "closing",
            "state",
            "last-ack",
            "dport",
            "=",
            ":21",
        ])?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    for _ in 0..30 {
        if waiting()?.is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!(
        "control connections still closing after 3 s: {}",
        waiting()?
    )
}

#[test]
fn a_long_active_session_from_behind_the_nat_moves_its_stream_cleanly() -> Result<()> {
    let lab = NatLab::new()?;
    let fw = attach_rewriting(&lab)?;
    long_active_session(&lab, &fw, Family::V4, LONG_ROUNDS)
}

#[test]
fn rewritten_commands_are_rewritten_again_when_retransmitted_through_loss() -> Result<()> {
    // Random loss only on the way out of the NAT (the moved stream and its
    // retransmissions): a reply lost on the way in costs ftpct the line
    // (see the README's limitations), and a local client whose replies
    // ftpct missed has its next PORT refused as out of step.
    let lab = NatLab::new()?;
    let fw = attach_rewriting(&lab)?;
    lab.add_loss(5, true)?;
    let before = fw.counters()?;
    // PORT over IPv4, EPRT |2| over IPv6 (NPTv6).
    for family in [Family::V4, Family::V6] {
        long_active_session(&lab, &fw, family, LOSSY_ROUNDS)?;
    }
    let after = fw.counters()?;
    let (_, first_port, random) = lab.losses()?;
    let ports = u64::from(2 * 4 * LOSSY_ROUNDS);
    println!(
        "loss: {first_port} first copies of PORT/EPRT dropped, {random} packets at random; \
         {} commands rewritten, {} retransmissions rewritten again",
        after.since(&before, Counter::NatRewritten),
        after.since(&before, Counter::NatRewriteRetransmitted)
    );
    ensure!(
        first_port >= ports && random > 0,
        "the router dropped {first_port} first copies of PORT/EPRT and {random} at random"
    );
    ensure!(
        after.since(&before, Counter::NatRewriteRetransmitted) >= ports,
        "{after}"
    );
    Ok(())
}

#[test]
fn a_client_behind_nptv6_has_its_eprt_rewritten() -> Result<()> {
    active_clients_behind_the_nat(Family::V6)
}

#[test]
fn a_long_active_session_from_behind_nptv6_moves_its_stream_cleanly() -> Result<()> {
    // Each EPRT |2| grows by 25 bytes: the stream moves by 25 more with
    // every transfer.
    let lab = NatLab::new()?;
    let fw = attach_rewriting(&lab)?;
    long_active_session(&lab, &fw, Family::V6, LONG_ROUNDS)
}

#[test]
fn nat_rewrite_without_an_external_address_is_refused_in_one_line() -> Result<()> {
    let lab = NatLab::new()?;
    let out = ftpct_run(lab.server(), &["attach", LAB_IFACE, "--nat-rewrite"])?;
    assert_cli_error("--nat-rewrite alone", &out, 2, "--external-address");
    let xdp = lab.server().run_ok(&["ip", "link", "show", LAB_IFACE])?;
    assert!(
        !String::from_utf8_lossy(&xdp.stdout).contains("xdp"),
        "nothing attached"
    );
    Ok(())
}
