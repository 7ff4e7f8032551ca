//! Hostile end-to-end tests: an intruder forges packets (scapy, raw
//! sockets), floods and abuses real control connections while ftpct guards
//! the lab's server (or, for the bounce test, the client).
//!
//! Each test first runs its attack without ftpct, to show that it reaches
//! its goal there (a connection, a SYN-ACK, a RST, a bounced transfer), then
//! with ftpct attached, to show that it fails, and checks the counter that
//! names the reason. Counters are compared with `>=` where retransmissions
//! may add packets. Expected drops wait 2 s.
//!
//! Some tests check what ftpct must *not* do when the attack is blind: a
//! forged RST, FIN or out-of-window segment on a live control or data
//! connection (which the kernel ignores), an IPv6 fragment chain with a
//! destination options header, an empty command line, a server that
//! connects before answering `PORT`.
//!
//! Tools: `forge.rs` and `py/forge.py` (scapy segments sent from a lab
//! namespace straight to the server's MAC, a raw-socket SYN flood, tcpdump
//! captures of what the server sends back, logging listeners, raw FTP
//! control sessions, a permissive pyftpdlib).
//!
//! Needs root and a built ftpct (`FTPCT_BIN`, default
//! `target/release/ftpct`). Run:
//! `cargo test -p ftpct-e2e --test hostile -- --test-threads=2`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use ftpct_e2e::clients::{curl_download, probe_all, tcp_connect};
use ftpct_e2e::fixtures::FileDigest;
use ftpct_e2e::forge::{
    Background, Capture, PermissiveFtpd, Segment, Sink, ftp_commands, iface_mac, local_ports_to,
    reply_to, rsts, send_segments, syn_acks_to, xdp_attached,
};
use ftpct_e2e::ftpct::{endpoint, row_endpoint};
use ftpct_e2e::servers::{FtpTarget, ServerOptions};
use ftpct_e2e::{
    BIG_FILE, CLIENT, ConnectResult, Counter, Family, FtpServer, FtpSession, Ftpct, INTRUDER,
    LAB_IFACE, Lab, SERVER, SMALL_FILE, TransferMode, Vsftpd,
};
use serde_json::Value;

/// How long a probe waits before calling a connection attempt dropped.
const PROBE: Duration = Duration::from_secs(2);

/// A port in the lab servers' passive range that the FTP server does not
/// use in the tests that listen on it.
const LISTEN_PORT: u16 = 40050;

/// A port outside the passive range for plain listeners.
const OTHER_PORT: u16 = 45000;

/// The expectation row letting `src` connect to `dst:port`, if any.
fn find_expectation(rows: &[Value], src: IpAddr, dst: IpAddr, port: u16) -> Option<&Value> {
    let src = src.to_string();
    let dst = endpoint(dst, port);
    rows.iter()
        .find(|r| r["src_addr"] == src.as_str() && row_endpoint(r, "dst").as_ref() == Some(&dst))
}

/// An ephemeral-looking source port for forged segments, distinct per
/// (test, use).
fn sport(base: u16, i: usize) -> u16 {
    base + i as u16
}

// ---------------------------------------------------------------------------
// 1. A forged 227 from outside creates nothing.

#[test]
fn forged_227_from_outside_creates_nothing() -> Result<()> {
    let lab = Lab::new()?;
    let _server = Vsftpd::start(lab.server())?;
    let _listener = Sink::start(lab.server(), "::", &LISTEN_PORT.to_string())?;
    let srv4 = SERVER.ip(Family::V4);
    let srv6 = SERVER.ip(Family::V6);
    let targets = [
        (lab.intruder(), srv4, LISTEN_PORT),
        (lab.intruder(), srv6, LISTEN_PORT),
        (lab.client(), srv4, LISTEN_PORT),
        (lab.client(), srv6, LISTEN_PORT),
    ];

    // Without ftpct a listening data port is open to everybody: the
    // intruder needs no announcement at all.
    for (r, t) in probe_all(&targets, PROBE)?.iter().zip(&targets) {
        assert_eq!(*r, ConnectResult::Connected, "without ftpct: {}", t.1);
    }

    let fw = lab.attach(&["--force"])?;
    let before = fw.counters()?;
    let (hi, lo) = (LISTEN_PORT >> 8, LISTEN_PORT & 0xff);
    let pasv = format!("227 Entering Passive Mode (198,18,0,1,{hi},{lo}).\r\n");
    let epsv = format!("229 Entering Extended Passive Mode (|||{LISTEN_PORT}|)\r\n");
    let intr4 = INTRUDER.ip(Family::V4);
    let cli4 = CLIENT.ip(Family::V4);
    // Replies "from port 21" to connections the server never had: from the
    // intruder itself, spoofing the client, spoofing the server's own
    // address, over IPv6, and after a forged "PASV" to the control port.
    let forged = [
        Segment::new(intr4, 21, srv4, 50001, "PA").payload(&pasv),
        Segment::new(intr4, 21, srv4, 50002, "PA").payload(&epsv),
        Segment::new(cli4, 21, srv4, 50003, "PA").payload(&pasv),
        Segment::new(cli4, 21, srv4, 50004, "PA").payload(&epsv),
        Segment::new(srv4, 21, srv4, 50005, "PA").payload(&pasv),
        Segment::new(INTRUDER.ip(Family::V6), 21, srv6, 50006, "PA").payload(&epsv),
        Segment::new(CLIENT.ip(Family::V6), 21, srv6, 50007, "PA").payload(&epsv),
        Segment::new(intr4, 50008, srv4, 21, "PA").payload("PASV\r\n"),
        Segment::new(intr4, 21, srv4, 50008, "PA").payload(&pasv),
        Segment::new(cli4, 50009, srv4, 21, "PA").payload("EPSV\r\n"),
        Segment::new(cli4, 21, srv4, 50009, "PA").payload(&epsv),
    ];
    send_segments(lab.intruder(), lab.server(), &forged)?;

    let rows = fw.expectations_json()?;
    assert!(
        rows.is_empty(),
        "forged replies created expectations: {rows}"
    );
    let after = fw.counters()?;
    assert_eq!(after.created(), before.created(), "{after}");
    let status = fw.status_json()?;
    assert_eq!(
        status[0]["control_connections"], 0,
        "forged segments created control state: {status}"
    );
    // The forged replies themselves were aimed at guarded ports.
    assert!(
        after.since(&before, Counter::UntrackedDropped) >= 9,
        "{after}"
    );

    for (r, t) in probe_all(&targets, PROBE)?.iter().zip(&targets) {
        assert_eq!(*r, ConnectResult::TimedOut, "with ftpct: {}", t.1);
    }
    let end = fw.counters()?;
    assert!(end.since(&after, Counter::SynDropped) >= 4, "{end}");
    assert_eq!(end.since(&before, Counter::SynAdmitted), 0, "{end}");
    Ok(())
}

// ---------------------------------------------------------------------------
// 2. After the client's connection was admitted, a SYN to the same port from
//    the client's address but another source port (spoofed by the
//    intruder) is dropped: expectations are one-shot.

/// (family, mode) cases of the data-port theft tests.
const THEFT_CASES: [(Family, TransferMode); 3] = [
    (Family::V4, TransferMode::Pasv),
    (Family::V4, TransferMode::Epsv),
    (Family::V6, TransferMode::Epsv),
];

/// Source port of the spoofed SYN of theft case `i`.
fn spoof_port(phase: u16, i: usize) -> u16 {
    sport(33300 + phase * 10, i)
}

#[test]
fn spoofed_client_syn_after_admission_is_dropped() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let small = server.tree().digest(SMALL_FILE)?;

    // Each phase: every case announces a port and connects the client to
    // it; then the intruder sends SYNs from the client's address (another
    // source port) to those ports, and its own connection attempts.
    let run = |phase: u16, fw: Option<&Ftpct>| -> Result<(Vec<String>, Vec<ConnectResult>)> {
        let mut sessions = Vec::new();
        let mut spoofed = Vec::new();
        let mut own = Vec::new();
        for (i, (family, mode)) in THEFT_CASES.into_iter().enumerate() {
            let what = format!("{mode:?} over {family:?}");
            let server_ip = SERVER.ip(family);
            let mut session = FtpSession::open(lab.client(), &server.target(server_ip))?;
            let port = session.prepare(mode)?;
            if let Some(fw) = fw {
                let rows = fw.expectations_json()?;
                ensure!(
                    find_expectation(&rows, CLIENT.ip(family), server_ip, port).is_some(),
                    "{what}: no expectation for {port}: {rows}"
                );
            }
            session.connect().context(what.clone())?;
            if let Some(fw) = fw {
                let rows = fw.expectations_json()?;
                ensure!(
                    find_expectation(&rows, CLIENT.ip(family), server_ip, port).is_none(),
                    "{what}: expectation for {port} not consumed: {rows}"
                );
            }
            spoofed.push(Segment::new(
                CLIENT.ip(family),
                spoof_port(phase, i),
                server_ip,
                port,
                "S",
            ));
            own.push((server_ip, port));
            sessions.push(session);
        }
        let filter = format!(
            "tcp and dst portrange {}-{}",
            spoof_port(phase, 0),
            spoof_port(phase, THEFT_CASES.len())
        );
        let cap = Capture::start(lab.server(), &filter)?;
        send_segments(lab.intruder(), lab.server(), &spoofed)?;
        let lines = cap.finish()?;
        let targets: Vec<_> = own
            .iter()
            .map(|&(ip, port)| (lab.intruder(), ip, port))
            .collect();
        let results = probe_all(&targets, PROBE)?;
        // The admitted connections still carry their transfers.
        for (session, (family, mode)) in sessions.into_iter().zip(THEFT_CASES) {
            let mut session = session;
            assert_eq!(session.retr(SMALL_FILE)?, small, "{mode:?} {family:?}");
            session.quit()?;
        }
        Ok((lines, results))
    };

    // Without ftpct the server answers the spoofed SYNs (towards the real
    // client, which resets them) and the intruder's own connections.
    let (lines, results) = run(0, None)?;
    for (i, (family, mode)) in THEFT_CASES.into_iter().enumerate() {
        assert!(
            syn_acks_to(&lines, spoof_port(0, i)) >= 1,
            "without ftpct, {mode:?} {family:?}: no SYN-ACK to the spoofed SYN: {lines:#?}"
        );
        assert_eq!(results[i], ConnectResult::Connected, "without ftpct");
    }

    let fw = lab.attach(&[])?;
    let before = fw.counters()?;
    let (lines, results) = run(1, Some(&fw))?;
    for (i, (family, mode)) in THEFT_CASES.into_iter().enumerate() {
        assert_eq!(
            syn_acks_to(&lines, spoof_port(1, i)),
            0,
            "with ftpct, {mode:?} {family:?}: spoofed SYN answered: {lines:#?}"
        );
        assert_eq!(
            results[i],
            ConnectResult::TimedOut,
            "with ftpct, {mode:?} {family:?}: intruder"
        );
    }
    let after = fw.counters()?;
    assert_eq!(after.since(&before, Counter::SynAdmitted), 3, "{after}");
    assert!(after.since(&before, Counter::SynDropped) >= 6, "{after}");
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. After a completed transfer, new SYNs to its port are dropped, even when
//    something listens there again.

#[test]
fn syn_after_consumed_and_completed_transfer_is_dropped() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let small = server.tree().digest(SMALL_FILE)?;

    // One transfer, completed; then a listener reuses its port (as the
    // server's next passive listener would) and the client (a new source
    // port) and the intruder try it.
    let run = |family: Family, mode: TransferMode| -> Result<Vec<ConnectResult>> {
        let server_ip = SERVER.ip(family);
        let mut session = FtpSession::open(lab.client(), &server.target(server_ip))?;
        let port = session.prepare(mode)?;
        assert_eq!(session.retr(SMALL_FILE)?, small);
        let _again = Sink::start(lab.server(), "::", &port.to_string())?;
        let results = probe_all(
            &[
                (lab.client(), server_ip, port),
                (lab.intruder(), server_ip, port),
            ],
            PROBE,
        )?;
        session.quit()?;
        Ok(results)
    };

    let results = run(Family::V4, TransferMode::Pasv)?;
    assert_eq!(
        results,
        [ConnectResult::Connected, ConnectResult::Connected],
        "without ftpct"
    );

    let fw = lab.attach(&[])?;
    for (family, mode) in [
        (Family::V4, TransferMode::Pasv),
        (Family::V6, TransferMode::Epsv),
    ] {
        let before = fw.counters()?;
        let results = run(family, mode)?;
        assert_eq!(
            results,
            [ConnectResult::TimedOut, ConnectResult::TimedOut],
            "with ftpct, {mode:?} {family:?}"
        );
        let after = fw.counters()?;
        assert_eq!(after.since(&before, Counter::SynAdmitted), 1, "{after}");
        assert!(after.since(&before, Counter::SynDropped) >= 2, "{after}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 4. An expired EPSV announcement (IPv6) admits nothing.

#[test]
fn expired_epsv_over_ipv6_is_dropped() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let small = server.tree().digest(SMALL_FILE)?;
    let server_ip = SERVER.ip(Family::V6);
    let client_ip = CLIENT.ip(Family::V6);
    let target = server.target(server_ip);

    // Without ftpct the server's data listener is still there 2 s later.
    let mut session = FtpSession::open(lab.client(), &target)?;
    let port = session.epsv()?;
    thread::sleep(Duration::from_secs(2));
    let r = tcp_connect(lab.client(), server_ip, port, PROBE)?;
    assert_eq!(r, ConnectResult::Connected, "without ftpct");
    session.quit()?;

    let fw = lab.attach(&["--expect-timeout", "1"])?;
    let mut session = FtpSession::open(lab.client(), &target)?;
    let port = session.epsv()?;
    let rows = fw.expectations_json()?;
    let row = find_expectation(&rows, client_ip, server_ip, port)
        .with_context(|| format!("no expectation for {port}: {rows}"))?;
    assert_eq!(row["kind"], "epsv", "{row}");
    let expires = row["expires_in_secs"].as_f64().unwrap_or(-1.0);
    assert!(expires > 0.0 && expires <= 1.0, "{row}");
    thread::sleep(Duration::from_secs(2));
    let before = fw.counters()?;
    let r = tcp_connect(lab.client(), server_ip, port, PROBE)?;
    assert_eq!(r, ConnectResult::TimedOut, "expired EPSV announcement");
    let after = fw.counters()?;
    assert!(after.since(&before, Counter::SynExpired) >= 1, "{after}");
    assert_eq!(after.since(&before, Counter::SynAdmitted), 0, "{after}");
    // A fresh announcement used at once works on the same session.
    session.epsv()?;
    assert_eq!(session.retr(SMALL_FILE)?, small);
    session.quit()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// 5. FTP bounce and low ports in PORT/EPRT, ftpct guarding the client.

/// Whether the reply `ftp_commands` got for `cmd` starts with `code`.
fn replied(lines: &[String], cmd: &str, code: &str) -> bool {
    reply_to(lines, cmd).is_some_and(|r| r.starts_with(code))
}

/// Anonymous login for the permissive server.
const ANON: (&str, &str) = ("anonymous", "bounce@example.com");

#[test]
fn bounce_and_low_port_port_commands_are_refused_on_the_client() -> Result<()> {
    let lab = Lab::new()?;
    let server = PermissiveFtpd::start(lab.server())?;
    let small_len = server.tree().path(SMALL_FILE).metadata()?.len();
    let srv4 = SERVER.ip(Family::V4);
    let srv6 = SERVER.ip(Family::V6);
    // The bounce target: a listener on the intruder. A service on the
    // client's port 80, which a low-port PORT would expose.
    let intruder_sink = Sink::start(lab.intruder(), "::", "45000")?;
    let client_sink = Sink::start(lab.client(), "::", "80")?;
    let bounce_port = "PORT 198,18,0,3,175,200"; // 45000
    let low_port = "PORT 198,18,0,2,0,80";
    let retr = format!("RETR {SMALL_FILE}");

    // Without ftpct: the server delivers the file to the intruder and to
    // the client's port 80.
    let lines = ftp_commands(
        lab.client(),
        srv4,
        21,
        ANON.0,
        ANON.1,
        &["TYPE I", bounce_port, &retr],
    )?;
    assert!(replied(&lines, bounce_port, "200"), "{lines:#?}");
    assert!(
        intruder_sink.wait_accepted("198.18.0.1", 45000, small_len, Duration::from_secs(5)),
        "without ftpct the bounce did not reach the intruder: {lines:#?} {}",
        intruder_sink.output()
    );
    let lines = ftp_commands(
        lab.client(),
        srv4,
        21,
        ANON.0,
        ANON.1,
        &["TYPE I", low_port, &retr],
    )?;
    assert!(
        client_sink.wait_accepted("198.18.0.1", 80, small_len, Duration::from_secs(5)),
        "without ftpct the server did not reach the client's port 80: {lines:#?} {}",
        client_sink.output()
    );

    // With ftpct guarding every port of the client (--strict) nothing is
    // expected for them; the server's connection to port 80 is dropped.
    // (That the server still connects to the intruder is the server's
    // doing: ftpct on the client cannot and need not stop it.)
    let fw = Ftpct::attach(
        lab.client(),
        LAB_IFACE,
        &["--force", "--strict"],
        lab.pin_root(),
    )?;
    let before = fw.counters()?;
    let bounce_eprt = "EPRT |1|198.18.0.3|45000|";
    let low_21 = "PORT 198,18,0,2,0,21";
    let lines = ftp_commands(
        lab.client(),
        srv4,
        21,
        ANON.0,
        ANON.1,
        &["TYPE I", bounce_port, bounce_eprt, low_21, low_port, "NOOP"],
    )?;
    let after = fw.counters()?;
    assert!(after.since(&before, Counter::RefusedBounce) >= 2, "{after}");
    assert!(
        after.since(&before, Counter::RefusedLowPort) >= 2,
        "{after}"
    );
    // 425 (refused) or 421 (timed out): the connection failed.
    assert!(replied(&lines, low_port, "42"), "{lines:#?}");
    assert!(after.since(&before, Counter::SynDropped) >= 1, "{after}");
    assert_eq!(
        client_sink.accepted("198.18.0.1", 80).len(),
        1,
        "with ftpct the server reached port 80 again: {}",
        client_sink.output()
    );
    let rows = fw.expectations_json()?;
    assert!(rows.is_empty(), "expectations: {rows}");

    // IPv6: EPRT naming the intruder, and an IPv4 EPRT on an IPv6 session.
    let bounce6 = "EPRT |2|2001:db8::3|45000|";
    let mismatch = "EPRT |1|198.18.0.2|45001|";
    let lines = ftp_commands(lab.client(), srv6, 21, ANON.0, ANON.1, &[bounce6, mismatch])?;
    let end = fw.counters()?;
    assert!(
        end.since(&after, Counter::RefusedBounce) >= 1,
        "{lines:#?} {end}"
    );
    assert!(
        end.since(&after, Counter::RefusedFamilyMismatch) >= 1,
        "{lines:#?} {end}"
    );
    let rows = fw.expectations_json()?;
    assert!(rows.is_empty(), "expectations: {rows}");
    Ok(())
}

/// A server that connects to the `PORT` address before it answers `200`
/// (pyftpdlib does) must still reach a client guarded by ftpct: its SYN
/// arrives before the `200` that would create the expectation.
#[test]
fn active_mode_works_with_a_server_that_connects_before_answering() -> Result<()> {
    let lab = Lab::new()?;
    let server = PermissiveFtpd::start(lab.server())?;
    let small_len = server.tree().path(SMALL_FILE).metadata()?.len();
    let srv4 = SERVER.ip(Family::V4);
    let sink = Sink::start(lab.client(), "::", "45001")?;
    let good = "PORT 198,18,0,2,175,201"; // 45001
    let retr = format!("RETR {SMALL_FILE}");
    let cmds = ["TYPE I", good, retr.as_str()];

    let lines = ftp_commands(lab.client(), srv4, 21, ANON.0, ANON.1, &cmds)?;
    assert!(replied(&lines, good, "200"), "without ftpct: {lines:#?}");
    assert!(
        sink.wait_accepted("198.18.0.1", 45001, small_len, Duration::from_secs(5)),
        "without ftpct: {lines:#?}"
    );

    let fw = Ftpct::attach(lab.client(), LAB_IFACE, &["--force"], lab.pin_root())?;
    let before = fw.counters()?;
    let lines = ftp_commands(lab.client(), srv4, 21, ANON.0, ANON.1, &cmds)?;
    let after = fw.counters()?;
    assert!(
        replied(&lines, good, "200"),
        "with ftpct on the client the server's data connection (opened before its 200 reply) \
         was dropped: {lines:#?}; counters since: syn_dropped +{}, expect_created_port +{}",
        after.since(&before, Counter::SynDropped),
        after.since(&before, Counter::ExpectPort),
    );
    assert_eq!(sink.accepted("198.18.0.1", 45001).len(), 2, "{lines:#?}");
    Ok(())
}

// ---------------------------------------------------------------------------
// 6. A PASV flood (one connection pipelining 1000 PASVs, then 40 more
//    connections) while another client transfers.

/// Intruder control connections besides the pipelining one.
const FLOOD_CONNS: usize = 40;

/// PASVs per extra connection.
const FLOOD_PER_CONN: usize = 8;

/// PASVs pipelined on the first connection.
const FLOOD_PIPELINED: usize = 1000;

#[test]
fn pasv_flood_is_capped_and_other_clients_transfer() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start_with(
        lab.server(),
        ServerOptions {
            pasv_ports: 40000..=40999,
            ..ServerOptions::default()
        },
    )?;
    let big = server.tree().digest(BIG_FILE)?;
    let v4 = server.target(SERVER.ip(Family::V4));

    // Runs the flood; client2 downloads big.bin meanwhile. Returns the
    // flood's summary and the still-running flood (holding its
    // connections).
    let flood = |check: &dyn Fn() -> Result<()>| -> Result<Value> {
        let mut bg = Background::forge(
            lab.intruder(),
            &[
                "pasvflood".to_string(),
                SERVER.v4.to_string(),
                "21".into(),
                FLOOD_PIPELINED.to_string(),
                FLOOD_CONNS.to_string(),
                FLOOD_PER_CONN.to_string(),
                "60".into(),
            ],
            None,
        )?;
        let done = AtomicBool::new(false);
        let summary = thread::scope(|s| -> Result<String> {
            let downloads = s.spawn(|| -> Result<usize> {
                let mut n = 0;
                while n == 0 || (!done.load(Ordering::Relaxed) && n < 20) {
                    let got = curl_download(lab.client2(), &v4, BIG_FILE, TransferMode::Pasv)?;
                    ensure!(got == big, "client2 download {n}: {got} != {big}");
                    n += 1;
                }
                Ok(n)
            });
            let summary = bg.wait_for("ctrl_ports", Duration::from_secs(90));
            done.store(true, Ordering::Relaxed);
            let n = downloads
                .join()
                .map_err(|_| anyhow!("download thread panicked"))??;
            eprintln!("client2 completed {n} downloads of {BIG_FILE} during the flood");
            summary
        })?;
        let line = summary
            .lines()
            .find(|l| l.contains("ctrl_ports"))
            .context("no summary")?;
        let summary: Value = serde_json::from_str(line)?;
        ensure!(
            summary["pipelined_227"] == FLOOD_PIPELINED
                && summary["conn_227"] == FLOOD_CONNS * FLOOD_PER_CONN,
            "the server did not answer every PASV: {summary}"
        );
        check()?;
        // Also after the flood (connections still held) client2 transfers.
        ensure!(curl_download(lab.client2(), &v4, BIG_FILE, TransferMode::Pasv)? == big);
        drop(bg);
        Ok(summary)
    };

    // Without ftpct: the server answers all 1320 PASVs.
    flood(&|| Ok(()))?;

    let fw = lab.attach(&[])?;
    let before = fw.counters()?;
    let intruder = INTRUDER.v4.to_string();
    let summary = flood(&|| {
        let rows = fw.expectations_json()?;
        let mine: Vec<&Value> = rows
            .iter()
            .filter(|r| r["src_addr"] == intruder.as_str())
            .collect();
        let mut per_conn: BTreeMap<u64, usize> = BTreeMap::new();
        for r in &mine {
            *per_conn
                .entry(r["control"]["client_port"].as_u64().unwrap_or(0))
                .or_default() += 1;
        }
        let c = fw.counters()?;
        eprintln!(
            "flood: {} intruder expectations over {} connections; {c}",
            mine.len(),
            per_conn.len()
        );
        ensure!(!mine.is_empty(), "the flood created no expectation: {c}");
        ensure!(
            mine.len() <= 128,
            "{} expectations for the intruder (limit 128)",
            mine.len()
        );
        ensure!(
            c.since(&before, Counter::ExpectReplaced) >= 1,
            "no replacement: {c}"
        );
        ensure!(
            c.since(&before, Counter::RefusedClientLimit) >= 1,
            "no client limit: {c}"
        );
        ensure!(c.get(Counter::RefusedExpectFull) == 0, "{c}");
        let over: Vec<_> = per_conn.iter().filter(|(_, n)| **n > 4).collect();
        ensure!(
            over.is_empty(),
            "intruder control connections (client port, live expectations) over the \
             per-connection limit of 4: {over:?}"
        );
        Ok(())
    })?;
    let after = fw.counters()?;
    assert!(
        summary["ctrl_ports"].as_array().map_or(0, Vec::len) == FLOOD_CONNS + 1,
        "{summary}"
    );
    assert_eq!(
        after.since(&before, Counter::SynDropped),
        0,
        "legitimate SYNs dropped: {after}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 7. ACK scans and RST injection.

/// Passive-range ports the ACK scan probes.
const SCAN_PORTS: std::ops::Range<u16> = 40000..40010;

/// ACK and RST probes from the intruder (its own address, wrong 4-tuples)
/// to the scan ports and to `data_port`, an admitted data connection's port.
fn scan_segments(data_port: u16, base: u16) -> Vec<Segment> {
    let srv4 = SERVER.ip(Family::V4);
    let intr4 = INTRUDER.ip(Family::V4);
    let mut out = Vec::new();
    for (i, port) in SCAN_PORTS.chain([data_port]).enumerate() {
        out.push(Segment::new(intr4, sport(base, i), srv4, port, "A"));
        out.push(Segment::new(intr4, sport(base, i), srv4, port, "R"));
    }
    out.push(Segment::new(
        INTRUDER.ip(Family::V6),
        base + 50,
        SERVER.ip(Family::V6),
        data_port,
        "A",
    ));
    out
}

#[test]
fn ack_scan_and_rst_injection_fail() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let big = server.tree().digest(BIG_FILE)?;
    let srv4 = SERVER.ip(Family::V4);
    let target = server.target(srv4);
    let acks = SCAN_PORTS.len() + 2;
    let filter = "tcp and (dst host 198.18.0.3 or dst host 2001:db8::3)";

    // Without ftpct every ACK probe is answered with a RST.
    let mut session = FtpSession::open(lab.client(), &target)?;
    let port = session.pasv()?;
    session.connect()?;
    let cap = Capture::start(lab.server(), filter)?;
    send_segments(lab.intruder(), lab.server(), &scan_segments(port, 33400))?;
    let lines = cap.finish()?;
    assert!(
        rsts(&lines) >= acks,
        "without ftpct: {} RSTs for {acks} ACK probes: {lines:#?}",
        rsts(&lines)
    );
    assert_eq!(session.retr(BIG_FILE)?, big);
    session.quit()?;

    let fw = lab.attach(&[])?;
    let mut session = FtpSession::open(lab.client(), &target)?;
    let port = session.pasv()?;
    session.connect()?;
    let before = fw.counters()?;
    let cap = Capture::start(lab.server(), filter)?;
    let segments = scan_segments(port, 33500);
    send_segments(lab.intruder(), lab.server(), &segments)?;
    let lines = cap.finish()?;
    assert!(
        lines.is_empty(),
        "with ftpct the scan was answered: {lines:#?}"
    );
    let after = fw.counters()?;
    assert!(
        after.since(&before, Counter::UntrackedDropped) >= segments.len() as u64,
        "{after}"
    );

    // RSTs with the exact 4-tuple of the admitted data connection (the
    // client's address and port) and random sequence numbers, before and
    // during the download: the flow passes them, the kernel ignores them.
    let flows = fw.flows_json()?;
    let local = endpoint(srv4, port);
    let flow = flows
        .iter()
        .find(|f| row_endpoint(f, "dst").as_ref() == Some(&local) && f["origin"] == "admitted")
        .with_context(|| format!("no admitted flow to {local}: {flows}"))?;
    let client_port = flow["src_port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .with_context(|| format!("bad src_port in {flow}"))?;
    let cli4 = CLIENT.ip(Family::V4);
    let specs: Vec<Value> = [
        Segment::new(cli4, client_port, srv4, port, "R").count(50),
        Segment::new(cli4, client_port, srv4, port, "RA").count(50),
    ]
    .iter()
    .map(|s| s.spec().clone())
    .collect();
    let doc = serde_json::json!({"duration": 3, "specs": specs});
    let mac = iface_mac(lab.server())?;
    let mut injector = Background::forge(
        lab.intruder(),
        &["send", LAB_IFACE, &mac, &doc.to_string()],
        Some("started"),
    )?;
    thread::sleep(Duration::from_millis(500));
    assert_eq!(session.retr(BIG_FILE)?, big, "download under RST injection");
    let out = injector.wait_exit(Duration::from_secs(30))?;
    eprintln!("RST injector: {}", out.trim());
    let flows = fw.flows_json()?;
    eprintln!("flows after the injection: {flows}");
    session.quit()?;
    // ftpct still admits new transfers.
    let mut session = FtpSession::open(lab.client(), &target)?;
    session.pasv()?;
    assert_eq!(session.retr(BIG_FILE)?, big);
    session.quit()?;
    Ok(())
}

/// A forged RST (random sequence number) with the exact 4-tuple of an idle
/// admitted data connection is ignored by the kernel; ftpct must not forget
/// the connection because of it, however long it then stays idle.
#[test]
fn blind_rst_on_idle_data_connection_keeps_its_flow() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let big = server.tree().digest(BIG_FILE)?;
    let srv4 = SERVER.ip(Family::V4);
    let cli4 = CLIENT.ip(Family::V4);
    let target = server.target(srv4);
    let forged = |client_port: u16, port: u16| {
        [
            Segment::new(cli4, client_port, srv4, port, "R").count(5),
            Segment::new(cli4, client_port, srv4, port, "RA").count(5),
        ]
    };
    let data_client_port = |port: u16| -> Result<u16> {
        let ports = local_ports_to(lab.client(), port)?;
        ensure!(ports.len() == 1, "data connections to {port}: {ports:?}");
        Ok(ports[0])
    };

    // Without ftpct the connection survives the forged RSTs.
    let mut session = FtpSession::open(lab.client(), &target)?;
    let port = session.pasv()?;
    session.connect()?;
    send_segments(
        lab.intruder(),
        lab.server(),
        &forged(data_client_port(port)?, port),
    )?;
    assert_eq!(session.retr(BIG_FILE)?, big, "without ftpct");
    session.quit()?;

    let fw = lab.attach(&[])?;
    let mut session = FtpSession::open(lab.client(), &target)?;
    let port = session.pasv()?;
    session.connect()?;
    send_segments(
        lab.intruder(),
        lab.server(),
        &forged(data_client_port(port)?, port),
    )?;
    let flows = fw.flows_json()?;
    // Longer than the 10 s ftpct keeps a closing flow.
    thread::sleep(Duration::from_secs(12));
    let before = fw.counters()?;
    let got = session.retr(BIG_FILE);
    let after = fw.counters()?;
    assert!(
        matches!(&got, Ok(d) if *d == big),
        "download on a data connection idle for 12 s after forged RSTs: {got:?}; flows after \
         the RSTs: {flows}; untracked_dropped +{}",
        after.since(&before, Counter::UntrackedDropped)
    );
    session.quit()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// 8. Fragmented SYNs.

/// A SYN with options from the intruder to `OTHER_PORT`, as fragments (or,
/// with `first` = 1000, as one atomic IPv6 fragment).
fn fragmented_syns(base: u16) -> Vec<(u16, Segment)> {
    let srv4 = SERVER.ip(Family::V4);
    let srv6 = SERVER.ip(Family::V6);
    let intr4 = INTRUDER.ip(Family::V4);
    let intr6 = INTRUDER.ip(Family::V6);
    vec![
        // IPv4, 8-byte fragments.
        (
            base,
            Segment::new(intr4, base, srv4, OTHER_PORT, "S")
                .options()
                .fragments(8, 8, false),
        ),
        // IPv6: the first fragment holds the TCP header, then 8 bytes each.
        (
            base + 1,
            Segment::new(intr6, base + 1, srv6, OTHER_PORT, "S")
                .options()
                .fragments(8, 24, false),
        ),
    ]
}

#[test]
fn fragmented_syn_is_dropped() -> Result<()> {
    let lab = Lab::new()?;
    let _listener = Sink::start(lab.server(), "::", &OTHER_PORT.to_string())?;
    let filter = "tcp and (dst host 198.18.0.3 or dst host 2001:db8::3)";

    // Without ftpct the kernel reassembles the SYNs and answers.
    let syns = fragmented_syns(33600);
    let cap = Capture::start(lab.server(), filter)?;
    let segs: Vec<Segment> = syns.iter().map(|(_, s)| s.clone()).collect();
    let frames = send_segments(lab.intruder(), lab.server(), &segs)?;
    let lines = cap.finish()?;
    for (port, _) in &syns {
        assert!(
            syn_acks_to(&lines, *port) >= 1,
            "without ftpct, fragmented SYN from port {port} not answered: {lines:#?}"
        );
    }

    let fw = lab.attach(&["--force"])?;
    let before = fw.counters()?;
    let syns = fragmented_syns(33700);
    let cap = Capture::start(lab.server(), filter)?;
    let segs: Vec<Segment> = syns.iter().map(|(_, s)| s.clone()).collect();
    send_segments(lab.intruder(), lab.server(), &segs)?;
    let lines = cap.finish()?;
    for (port, _) in &syns {
        assert_eq!(
            syn_acks_to(&lines, *port),
            0,
            "with ftpct, fragmented SYN from port {port} answered: {lines:#?}"
        );
    }
    let after = fw.counters()?;
    assert!(
        after.since(&before, Counter::FragmentsDropped) >= frames,
        "{frames} fragments sent: {after}"
    );
    Ok(())
}

/// An IPv6 fragmented SYN whose fragment header is followed by a
/// destination options header (legal: it belongs to the fragmentable part)
/// must be dropped like any other TCP fragment.
#[test]
fn ipv6_fragmented_syn_behind_destination_options_is_dropped() -> Result<()> {
    let lab = Lab::new()?;
    let _listener = Sink::start(lab.server(), "::", &OTHER_PORT.to_string())?;
    let srv6 = SERVER.ip(Family::V6);
    let intr6 = INTRUDER.ip(Family::V6);
    // Destination options (8 bytes) + the 40-byte TCP header in a 48-byte
    // first fragment, nothing left: send the header in a 32-byte first
    // fragment and 16 more bytes.
    let syn = |port: u16| {
        Segment::new(intr6, port, srv6, OTHER_PORT, "S")
            .options()
            .fragments(16, 32, true)
    };
    let filter = "tcp and dst host 2001:db8::3";

    let cap = Capture::start(lab.server(), filter)?;
    send_segments(lab.intruder(), lab.server(), &[syn(33800)])?;
    let lines = cap.finish()?;
    assert!(
        syn_acks_to(&lines, 33800) >= 1,
        "without ftpct the kernel did not answer: {lines:#?}"
    );

    let fw = lab.attach(&["--force"])?;
    let before = fw.counters()?;
    let cap = Capture::start(lab.server(), filter)?;
    let frames = send_segments(lab.intruder(), lab.server(), &[syn(33801)])?;
    let lines = cap.finish()?;
    let after = fw.counters()?;
    assert_eq!(
        syn_acks_to(&lines, 33801),
        0,
        "with ftpct the fragmented SYN reached the listener (bypass); counters: {after}; \
         capture: {lines:#?}"
    );
    assert!(
        after.since(&before, Counter::FragmentsDropped) >= frames,
        "{after}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 9. Malformed control lines on a real control connection.

/// Runs `forge.py badlines` from the client; returns its summary.
fn bad_lines_then_download(lab: &Lab, target: &FtpTarget) -> Result<Value> {
    let out = ftpct_e2e::forge::forge(
        lab.client(),
        &[
            "badlines".to_string(),
            target.host.to_string(),
            target.port.to_string(),
            target.credentials.user.clone(),
            target.credentials.password.clone(),
            BIG_FILE.into(),
        ],
    )?;
    let line = out
        .lines()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("no summary in {out:?}"))?;
    Ok(serde_json::from_str(line)?)
}

#[test]
fn malformed_control_lines_do_not_break_the_session() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let big = server.tree().digest(BIG_FILE)?;
    let target = server.target(SERVER.ip(Family::V4));
    let matches = |v: &Value| {
        FileDigest {
            len: v["len"].as_u64().unwrap_or(0),
            sha256: v["sha256"].as_str().unwrap_or("").to_string(),
        } == big
    };

    // Without ftpct the server survives the junk and the download works.
    let summary = bad_lines_then_download(&lab, &target)?;
    assert!(matches(&summary), "without ftpct: {summary}");
    assert!(summary["bad_lines"].as_u64() >= Some(200), "{summary}");

    let fw = lab.attach(&[])?;
    let status = fw.status_json()?;
    let ids = (
        status[0]["ingress_prog_id"].clone(),
        status[0]["egress_prog_id"].clone(),
    );
    let before = fw.counters()?;
    let summary = bad_lines_then_download(&lab, &target)?;
    assert!(matches(&summary), "with ftpct: {summary}");
    let after = fw.counters()?;
    eprintln!("after the malformed lines: {after}");
    assert!(after.since(&before, Counter::Commands) >= 200, "{after}");
    for name in [
        Counter::RefusedBounce,
        Counter::RefusedLowPort,
        Counter::RefusedMappedAddress,
        Counter::RefusedBadFamily,
        Counter::RefusedNumberTooLarge,
        Counter::RefusedTooManyNumbers,
        Counter::RefusedMissingFields,
    ] {
        assert!(after.since(&before, name) >= 1, "{name:?}: {after}");
    }
    assert!(after.since(&before, Counter::ExpectPasv) >= 1, "{after}");
    assert!(after.since(&before, Counter::SynAdmitted) >= 1, "{after}");
    // Nothing names the intruder or a low port.
    let rows = fw.expectations_json()?;
    assert!(
        rows.iter().all(|r| r["src_addr"] == "198.18.0.2"),
        "unexpected expectations: {rows}"
    );
    // ftpct is still attached and working.
    let status = fw.status_json()?;
    assert_eq!(
        (
            status[0]["ingress_prog_id"].clone(),
            status[0]["egress_prog_id"].clone()
        ),
        ids,
        "{status}"
    );
    assert!(xdp_attached(lab.server(), LAB_IFACE)?, "XDP program gone");
    let r = tcp_connect(lab.intruder(), SERVER.ip(Family::V4), LISTEN_PORT, PROBE)?;
    assert_ne!(r, ConnectResult::Connected, "guard no longer enforced");
    assert_eq!(
        curl_download(lab.client2(), &target, BIG_FILE, TransferMode::Epsv)?,
        big
    );
    Ok(())
}

/// vsftpd ignores an empty command line (no reply). ftpct must not count
/// it as a command awaiting a reply, or every later reply on the session is
/// paired with the wrong command and the next PASV announces nothing.
#[test]
fn empty_command_line_keeps_replies_paired() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let target = server.target(SERVER.ip(Family::V4));
    let run = |raw_hex: &str| -> Result<String> {
        let out = ftpct_e2e::forge::forge(
            lab.client(),
            &[
                "pasv-after".to_string(),
                target.host.to_string(),
                target.port.to_string(),
                target.credentials.user.clone(),
                target.credentials.password.clone(),
                raw_hex.into(),
            ],
        )?;
        Ok(out.trim().to_string())
    };
    let crlf = "0d0a";
    let r = run(crlf)?;
    assert!(r.starts_with("connected"), "without ftpct: {r}");

    let fw = lab.attach(&[])?;
    // A line of spaces gets a reply ("500"): no problem.
    let r = run("20200d0a")?;
    assert!(r.starts_with("connected"), "with ftpct, blank line: {r}");
    let before = fw.counters()?;
    let r = run(crlf)?;
    let after = fw.counters()?;
    assert!(
        r.starts_with("connected"),
        "with ftpct, after an empty line the PASV's data connection was dropped ({r}); \
         counters since: commands +{}, replies +{}, refused_uncorrelated +{}",
        after.since(&before, Counter::Commands),
        after.since(&before, Counter::Replies),
        after.since(&before, Counter::RefusedUncorrelated),
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 10. A spoofed SYN flood while client2 transfers.

/// SYNs in the flood with ftpct attached.
const FLOOD_SYNS: u64 = 20_000;

/// Ports with listeners the flood partly aims at.
const HOT_PORTS: (u16, u16) = (50000, 50099);

/// Runs `forge.py synflood` from the intruder: `count` SYNs from `srcnet`,
/// every `every`-th to a hot port.
fn syn_flood(lab: &Lab, srcnet: &str, count: u64, every: u32, seed: u32) -> Result<u64> {
    let mac = iface_mac(lab.server())?;
    let out = ftpct_e2e::forge::forge(
        lab.intruder(),
        &[
            "synflood".to_string(),
            LAB_IFACE.into(),
            mac,
            SERVER.v4.to_string(),
            srcnet.into(),
            count.to_string(),
            HOT_PORTS.0.to_string(),
            HOT_PORTS.1.to_string(),
            every.to_string(),
            seed.to_string(),
        ],
    )?;
    out.lines()
        .find_map(|l| l.strip_prefix("sent "))
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("unexpected synflood output {out:?}"))
}

#[test]
fn spoofed_syn_flood_is_dropped_while_client_transfers() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let big = server.tree().digest(BIG_FILE)?;
    let v4 = server.target(SERVER.ip(Family::V4));
    let _hot = Sink::start(
        lab.server(),
        "::",
        &format!("{}-{}", HOT_PORTS.0, HOT_PORTS.1),
    )?;
    // Replies to the flood's sources go to the intruder, which discards
    // them (it does not forward).
    lab.server().run_ok(&[
        "ip",
        "route",
        "add",
        "198.19.0.0/16",
        "via",
        &INTRUDER.v4.to_string(),
    ])?;

    // Without ftpct the listeners answer the spoofed SYNs.
    let cap = Capture::start(
        lab.server(),
        "src host 198.18.0.1 and dst net 198.19.0.0/17",
    )?;
    let sent = syn_flood(&lab, "198.19.0.0/17", 2000, 2, 1)?;
    let lines = cap.finish()?;
    let synacks = lines.iter().filter(|l| l.contains("Flags [S.]")).count();
    assert!(
        synacks >= 100,
        "without ftpct only {synacks} SYN-ACKs for {sent} SYNs"
    );

    let fw = lab.attach(&["--force"])?;
    let before = fw.counters()?;
    let cap = Capture::start(
        lab.server(),
        "src host 198.18.0.1 and dst net 198.19.128.0/17",
    )?;
    let done = AtomicBool::new(false);
    let (sent, downloads) = thread::scope(|s| -> Result<(u64, usize)> {
        let downloads = s.spawn(|| -> Result<usize> {
            let mut n = 0;
            while n == 0 || (!done.load(Ordering::Relaxed) && n < 20) {
                let got = curl_download(lab.client2(), &v4, BIG_FILE, TransferMode::Pasv)?;
                ensure!(got == big, "client2 download {n}: {got} != {big}");
                n += 1;
            }
            Ok(n)
        });
        let sent = syn_flood(&lab, "198.19.128.0/17", FLOOD_SYNS, 10, 2);
        done.store(true, Ordering::Relaxed);
        let n = downloads
            .join()
            .map_err(|_| anyhow!("download thread panicked"))??;
        Ok((sent?, n))
    })?;
    let lines = cap.finish()?;
    let after = fw.counters()?;
    eprintln!("{sent} SYNs, {downloads} downloads by client2; {after}");
    assert_eq!(sent, FLOOD_SYNS);
    assert!(
        lines.is_empty(),
        "with ftpct the server answered the flood ({} packets): {:#?}",
        lines.len(),
        &lines[..lines.len().min(20)]
    );
    assert!(
        after.since(&before, Counter::SynDropped) >= FLOOD_SYNS,
        "{after}"
    );
    assert!(after.since(&before, Counter::SynAdmitted) >= 1, "{after}");
    Ok(())
}

// ---------------------------------------------------------------------------
// 11. Blind forged segments on a live control connection. The kernel drops
//     them (wrong sequence numbers), so ftpct must not act on them either.

/// Opens a session from the client, and returns it with the client's
/// control port.
fn session_with_port(lab: &Lab, target: &FtpTarget) -> Result<(FtpSession, u16)> {
    let session = FtpSession::open(lab.client(), target)?;
    let ports = local_ports_to(lab.client(), 21)?;
    ensure!(ports.len() == 1, "control connections: {ports:?}");
    Ok((session, ports[0]))
}

/// After blind forged segments on the client's control connection, a PASV
/// on it must still be announced.
fn control_survives(lab: &Lab, forged: impl Fn(u16) -> Vec<Segment>) -> Result<()> {
    let server = Vsftpd::start(lab.server())?;
    let small = server.tree().digest(SMALL_FILE)?;
    let srv4 = SERVER.ip(Family::V4);
    let target = server.target(srv4);

    // Without ftpct the kernel ignores them: the session goes on.
    let (mut session, port) = session_with_port(lab, &target)?;
    send_segments(lab.intruder(), lab.server(), &forged(port))?;
    session.pasv()?;
    assert_eq!(session.retr(SMALL_FILE)?, small, "without ftpct");
    session.quit()?;

    let fw = lab.attach(&["--force"])?;
    let (mut session, port) = session_with_port(lab, &target)?;
    session.pasv()?;
    assert_eq!(session.retr(SMALL_FILE)?, small, "before the forgery");
    let before = fw.counters()?;
    send_segments(lab.intruder(), lab.server(), &forged(port))?;
    for round in 0..2 {
        let data = session.pasv()?;
        let rows = fw.expectations_json()?;
        if find_expectation(&rows, CLIENT.ip(Family::V4), srv4, data).is_none() {
            let c = fw.counters()?;
            bail!(
                "round {round}: the PASV after blind forged segments got no expectation for \
                 port {data}: {rows}; counters since: refused_uncorrelated +{}, \
                 control_retransmits +{}, control_gaps +{}",
                c.since(&before, Counter::RefusedUncorrelated),
                c.since(&before, Counter::ControlRetransmits),
                c.since(&before, Counter::ControlGaps),
            );
        }
        assert_eq!(session.retr(SMALL_FILE)?, small, "round {round}");
    }
    session.quit()?;
    Ok(())
}

#[test]
fn blind_rst_on_control_connection_keeps_announcements() -> Result<()> {
    let lab = Lab::new()?;
    let cli4 = CLIENT.ip(Family::V4);
    let srv4 = SERVER.ip(Family::V4);
    control_survives(&lab, |port| {
        vec![
            Segment::new(cli4, port, srv4, 21, "R").count(3),
            Segment::new(cli4, port, srv4, 21, "FA").count(3),
        ]
    })
}

#[test]
fn blind_out_of_window_command_keeps_announcements() -> Result<()> {
    let lab = Lab::new()?;
    let cli4 = CLIENT.ip(Family::V4);
    let srv4 = SERVER.ip(Family::V4);
    // Two segments half the sequence space apart: whatever the real
    // sequence number, one of them is "ahead" of it.
    let seq: u32 = 0x1234_5678;
    control_survives(&lab, |port| {
        vec![
            Segment::new(cli4, port, srv4, 21, "PA")
                .payload("NOOP\r\n")
                .seq(seq),
            Segment::new(cli4, port, srv4, 21, "PA")
                .payload("NOOP\r\n")
                .seq(seq.wrapping_add(0x8000_0000)),
        ]
    })
}
