//! Hostile end-to-end tests: the life of an admitted data connection's flow
//! entry in ftpct, and what a remote host can make of it.
//!
//! A flow entry lets every packet of its 4-tuple through, SYNs included. It
//! must therefore end when the connection does: not outlive it for a new
//! connection on the same 4-tuple, not be kept alive by whatever the remote
//! end sends after the local end closed, and not stay open after the remote
//! end reset the connection.
//!
//! Each test asserts the secure behaviour, so it fails while the attack
//! works.
//!
//! Needs root and a built ftpct (`FTPCT_BIN`, default
//! `target/release/ftpct`). Run:
//! `cargo test -p ftpct-e2e --test hostile_flows -- --test-threads=1`.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ftp_ebpf_common::policy::DEFAULT_CLOSING_TIMEOUT_SECS;
use ftpct_e2e::forge::{
    Background, Capture, Segment, SeqState, connect_from, last_seq_ack, retr_from, send_repeatedly,
    syn_acks_to,
};
use ftpct_e2e::ftpct::{endpoint, row_endpoint};
use ftpct_e2e::servers::ServerOptions;
use ftpct_e2e::{
    CLIENT, ConnectResult, Counter, Family, FtpServer, FtpSession, Lab, Netns, SERVER, SMALL_FILE,
    Vsftpd,
};
use serde_json::Value;

/// How long a probe waits before calling a connection attempt dropped.
const PROBE: Duration = Duration::from_secs(2);

/// How long ftpct keeps a flow after the local end's FIN or RST.
const CLOSING: Duration = Duration::from_secs(DEFAULT_CLOSING_TIMEOUT_SECS);

/// Tolerance on [`CLOSING`]: the interval of the remote's ACKs in the
/// keep-alive test, and scheduling.
const SLACK: Duration = Duration::from_secs(2);

/// The only passive port of the server in the reuse test.
const ONE_PORT: u16 = 40077;

// The client's fixed source ports lie above Linux's ephemeral range
// (32768-60999 by default): inside it, the kernel may already have given
// one to another socket of the client, such as the session's own control
// connection, and binding it fails (seen once in CI: EADDRINUSE on 47002).

/// The client's data source ports in the reuse test: without ftpct, with.
const REUSE_SPORTS: [u16; 2] = [61001, 61002];

/// The client's data source ports in the keep-alive tests.
const KEEPALIVE_SPORTS: [u16; 2] = [61011, 61012];

/// The client's data source port in the RST test.
const RST_SPORT: u16 = 61021;

/// The row of `ftpct flows --json` for `remote -> local` (the remote end
/// opened it), if listed.
fn find_flow(rows: &[Value], remote: &str, local: &str) -> Option<Value> {
    rows.iter()
        .find(|r| {
            r["direction"] == "in"
                && row_endpoint(r, "src").as_deref() == Some(remote)
                && row_endpoint(r, "dst").as_deref() == Some(local)
        })
        .cloned()
}

/// TCP sockets of `ns` from local port `local` to remote port `remote`
/// (`ss` lines; connections in any state but closed).
fn sockets(ns: &Netns, local: u16, remote: u16) -> Result<Vec<String>> {
    let filter = format!("( sport = :{local} and dport = :{remote} )");
    let out = ns.run_ok(&["ss", "-Htn", &filter])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect())
}

// ---------------------------------------------------------------------------
// C. A finished transfer's 4-tuple reused for a new connection.

/// What happened when the client reused its finished data connection's
/// source port against the server's next passive listener.
struct Reuse {
    /// Captured segments from the server to the client's source port.
    lines: Vec<String>,
    /// The client's connection attempt.
    result: ConnectResult,
    /// Time from the end of the first transfer to the attempt.
    elapsed: Duration,
    /// Client2's session, with the passive port announced to it.
    session2: FtpSession,
}

/// Attack: the server has one passive port P. The client downloads a file
/// over P from source port S (the server closes the data connection).
/// Client2 then sends PASV and the server listens on P again, announced to
/// client2 only. Within a few seconds the client connects from S to P again:
/// a fresh SYN on the finished transfer's 4-tuple (the kernel accepts it in
/// TIME_WAIT). Old ftpct still had the finished flow (kept 10 s after the
/// local FIN), let the SYN through on it, and the client connected to the
/// listener announced to client2. Must: the client's SYN is dropped (no
/// SYN-ACK), and client2 downloads.
#[test]
fn finished_transfers_4_tuple_cannot_take_the_next_clients_data_port() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start_with(
        lab.server(),
        ServerOptions {
            pasv_ports: ONE_PORT..=ONE_PORT,
            ..ServerOptions::default()
        },
    )?;
    let small = server.tree().digest(SMALL_FILE)?;
    let srv4 = SERVER.ip(Family::V4);
    let cli4 = CLIENT.ip(Family::V4);
    let target = server.target(srv4);

    let attempt = |sport: u16| -> Result<Reuse> {
        let first = retr_from(lab.client(), &target, SMALL_FILE, sport)?;
        let finished = Instant::now();
        ensure!(
            first.digest == small && first.data_port == ONE_PORT && first.src_port == sport,
            "first transfer: {first:?}"
        );
        let mut session2 = FtpSession::open(lab.client2(), &target)?;
        let port = session2.pasv()?;
        ensure!(port == ONE_PORT, "client2 was announced port {port}");
        let cap = Capture::start(
            lab.server(),
            &format!("tcp and dst host {cli4} and dst port {sport}"),
        )?;
        let elapsed = finished.elapsed();
        let (result, _) = connect_from(lab.client(), srv4, ONE_PORT, sport, PROBE, None)?;
        let lines = cap.finish()?;
        Ok(Reuse {
            lines,
            result,
            elapsed,
            session2,
        })
    };

    // Without ftpct the server answers the reused 4-tuple: the client takes
    // the connection meant for client2.
    let reuse = attempt(REUSE_SPORTS[0])?;
    assert_eq!(reuse.result, ConnectResult::Connected, "without ftpct");
    assert!(
        syn_acks_to(&reuse.lines, REUSE_SPORTS[0]) >= 1,
        "without ftpct: {:#?}",
        reuse.lines
    );
    reuse.session2.quit()?;

    let fw = lab.attach(&[])?;
    let sport = REUSE_SPORTS[1];
    let mut reuse = attempt(sport)?;
    let flows = fw.flows_json()?;
    ensure!(
        reuse.elapsed + SLACK < CLOSING,
        "too slow to show anything: the attempt came {:?} after the first transfer",
        reuse.elapsed
    );
    assert_eq!(
        syn_acks_to(&reuse.lines, sport),
        0,
        "with ftpct the client's new SYN from {cli4}:{sport} to port {ONE_PORT}, {:?} after its \
         transfer on that 4-tuple ended, reached the listener announced to client2 ({:?}); \
         flows: {flows}; capture: {:#?}",
        reuse.elapsed,
        reuse.result,
        reuse.lines
    );
    assert_ne!(reuse.result, ConnectResult::Connected, "with ftpct");
    assert_eq!(
        reuse.session2.retr(SMALL_FILE)?,
        small,
        "client2's transfer"
    );
    reuse.session2.quit()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// D. A closed flow kept alive from outside.

/// The server closes an admitted data connection (its FIN starts ftpct's
/// closing timer); then ACK segments on that 4-tuple, `ack(data_port,
/// last)` where `last` is what a capture saw of the server's side, arrive
/// every 2 s for 16 s (forged by the intruder as the client). The flow must
/// be gone from `ftpct flows --json` at most [`CLOSING`] + [`SLACK`] after
/// the FIN.
fn closed_flow_expires(
    lab: &Lab,
    sport: u16,
    ack: impl Fn(u16, SeqState) -> Segment,
) -> Result<()> {
    let server = Vsftpd::start(lab.server())?;
    let small = server.tree().digest(SMALL_FILE)?;
    let srv4 = SERVER.ip(Family::V4);
    let cli4 = CLIENT.ip(Family::V4);
    let target = server.target(srv4);
    let fw = lab.attach(&[])?;

    let filter = format!("tcp and host {cli4} and port {sport}");
    let cap = Capture::start(lab.server(), &filter)?;
    let got = retr_from(lab.client(), &target, SMALL_FILE, sport)?;
    // The server's FIN came before the download ended.
    let closed = Instant::now();
    let lines = cap.finish()?;
    ensure!(got.digest == small, "download: {got:?}");
    let last = last_seq_ack(&lines, srv4, got.data_port, cli4, sport)
        .with_context(|| format!("no server segment captured: {lines:#?}"))?;
    let remote = endpoint(cli4, sport);
    let local = endpoint(srv4, got.data_port);
    let rows = fw.flows_json()?;
    let row = find_flow(&rows, &remote, &local);
    ensure!(
        row.as_ref().is_some_and(|r| r["state"] == "closing"),
        "after the server closed the data connection {remote} -> {local}, no closing flow: {rows}"
    );

    let cap = Capture::start(lab.server(), &filter)?;
    let acks = send_repeatedly(
        lab.intruder(),
        lab.server(),
        &[ack(got.data_port, last)],
        Duration::from_secs(16),
        Duration::from_secs(2),
    )?;
    let deadline = closed + CLOSING + SLACK;
    let last = loop {
        let rows = fw.flows_json()?;
        let row = find_flow(&rows, &remote, &local);
        if row.is_none() || Instant::now() >= deadline {
            break row;
        }
        thread::sleep(Duration::from_millis(250));
    };
    let waited = closed.elapsed();
    drop(acks);
    let lines = cap.finish()?;
    assert!(
        last.is_none(),
        "{waited:.1?} after the server closed the data connection {remote} -> {local} (closing \
         timeout {CLOSING:?}), with ACKs on its 4-tuple every 2 s, ftpct still tracks it: \
         {last:?}; on the 4-tuple meanwhile: {lines:#?}"
    );
    Ok(())
}

/// Attack: after the server closed an admitted data connection (the local
/// FIN starts ftpct's 10 s closing timer), the intruder, spoofing the
/// client, sends a bare ACK on its 4-tuple every 2 s for 16 s, with the
/// client's exact next sequence number: the server's TIME_WAIT socket takes
/// it silently, so the server sends nothing back. Old ftpct refreshed the
/// flow on every inbound packet, so a remote host could keep a closed
/// connection's entry (and the hole it is) alive for as long as it liked:
/// 12 s after the FIN it was still listed, idle 1 s. Must: the flow is gone
/// from `ftpct flows --json` at most 10 s (+2 s) after the local FIN.
#[test]
fn closed_flow_expires_despite_in_window_acks() -> Result<()> {
    let lab = Lab::new()?;
    let srv4 = SERVER.ip(Family::V4);
    let cli4 = CLIENT.ip(Family::V4);
    let sport = KEEPALIVE_SPORTS[0];
    closed_flow_expires(&lab, sport, |port, last| {
        Segment::new(cli4, sport, srv4, port, "A")
            .seq(last.ack)
            .ack(last.next_seq)
    })
}

/// Attack: as above, but the ACKs carry random sequence numbers (a blind
/// remote). The first one draws an ACK from the server's TIME_WAIT socket,
/// which the client's kernel answers with a RST (ending the TIME_WAIT);
/// every later one draws a RST from the server. Old ftpct refreshed the
/// flow on each inbound ACK, and took each of those local RSTs for a new
/// close of the connection, starting the closing timer again: 12 s after
/// the FIN the flow was still listed. Must: the flow is gone at most 10 s
/// (+2 s) after the local FIN, whatever the remote sends and whatever the
/// server's kernel answers it.
#[test]
fn closed_flow_expires_despite_blind_acks_that_draw_local_resets() -> Result<()> {
    let lab = Lab::new()?;
    let srv4 = SERVER.ip(Family::V4);
    let cli4 = CLIENT.ip(Family::V4);
    let sport = KEEPALIVE_SPORTS[1];
    closed_flow_expires(&lab, sport, |port, _| {
        Segment::new(cli4, sport, srv4, port, "A")
    })
}

// ---------------------------------------------------------------------------
// E. The remote end resets an admitted connection.

/// Attack: the client uploads over an admitted passive data connection and,
/// mid-transfer, aborts it with a real RST (`SO_LINGER` 0 close: the RST
/// carries the exact next sequence number, and the server's kernel drops
/// the connection at once, sending nothing more on it). Old ftpct ignored
/// every inbound RST, so the flow stayed `open` (for the 2 h idle timeout,
/// refreshed by anything sent on its 4-tuple). Must: within 1 s of the RST
/// the flow is `reset` (ending after the closing timeout) or gone, counted
/// as `flow_reset_remote`. (An out-of-window RST must not end it:
/// see `blind_rst_on_idle_data_connection_keeps_its_flow` in hostile.rs.)
#[test]
fn in_window_rst_from_the_client_closes_its_flow() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let srv4 = SERVER.ip(Family::V4);
    let cli4 = CLIENT.ip(Family::V4);
    let target = server.target(srv4);
    let fw = lab.attach(&[])?;
    let before = fw.counters()?;

    let mut upload = Background::forge(
        lab.client(),
        &[
            "stor-reset",
            &srv4.to_string(),
            &target.port.to_string(),
            &target.credentials.user,
            &target.credentials.password,
            "upload/aborted.bin",
            &RST_SPORT.to_string(),
            "2",
        ],
        Some("open "),
    )?;
    let out = upload.output();
    let data_port: u16 = out
        .lines()
        .find_map(|l| l.strip_prefix("open "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("unexpected stor-reset output {out:?}"))?;
    let remote = endpoint(cli4, RST_SPORT);
    let local = endpoint(srv4, data_port);
    let rows = fw.flows_json()?;
    ensure!(
        find_flow(&rows, &remote, &local)
            .is_some_and(|r| r["state"] == "open" && r["origin"] == "admitted"),
        "the upload's data connection {remote} -> {local} has no open admitted flow: {rows}"
    );
    ensure!(
        !sockets(lab.server(), data_port, RST_SPORT)?.is_empty(),
        "the server has no connection {local} <- {remote}"
    );

    upload.wait_for("reset", Duration::from_secs(10))?;
    let reset = Instant::now();
    let last = loop {
        let rows = fw.flows_json()?;
        let row = find_flow(&rows, &remote, &local);
        let ended = match &row {
            None => true,
            Some(r) => r["state"] == "reset",
        };
        if ended || reset.elapsed() >= Duration::from_secs(1) {
            break row;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let waited = reset.elapsed();
    let server_side = sockets(lab.server(), data_port, RST_SPORT)?;
    let log = upload.wait_exit(Duration::from_secs(15))?;
    assert!(
        last.as_ref().is_none_or(|r| r["state"] == "reset"),
        "{waited:.1?} after the client reset its upload's data connection {remote} -> {local} \
         (the server's sockets on it now: {server_side:?}), ftpct still has it open: {last:?}; \
         client: {}",
        log.trim()
    );
    let after = fw.counters()?;
    assert!(
        after.since(&before, Counter::FlowResetRemote) >= 1,
        "{after}"
    );
    Ok(())
}
