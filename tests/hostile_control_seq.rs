//! Hostile end-to-end tests: spoofed segments that desynchronise ftpct's
//! view of a live control connection's byte stream.
//!
//! ftpct follows each direction of a control connection by sequence number
//! and parses only bytes it has not seen. If a segment the kernel would
//! discard or hold back (a SYN on an established connection, data ahead of
//! the next expected byte) moves ftpct's idea of the next sequence number,
//! everything the real client sends afterwards looks like an old
//! retransmission or falls outside the window: its `PASV` is never parsed,
//! the `227` reply answers nothing, and the passive data connection is
//! dropped. The intruder needs only the client's address and control port.
//!
//! Each test first shows that the session survives the forgery without
//! ftpct (the kernel ignores it), then asserts that it survives it with
//! ftpct, so it fails while the attack works.
//!
//! Needs root and a built ftpct (`FTPCT_BIN`, default
//! `target/release/ftpct`). Run:
//! `cargo test -p ftpct-e2e --test hostile_control_seq -- --test-threads=1`.

use anyhow::{Context, Result, ensure};
use ftpct_e2e::forge::{Capture, Segment, last_seq_ack, local_ports_to, send_segments};
use ftpct_e2e::servers::FtpTarget;
use ftpct_e2e::{
    CLIENT, Counter, Family, FileDigest, FtpServer, FtpSession, Ftpct, LAB_IFACE, Lab, SERVER,
    SMALL_FILE, Vsftpd,
};

/// The control port.
const CONTROL_PORT: u16 = 21;

/// How far ahead of the client's next sequence number the spoofed command
/// lies: inside any receive window, so the kernel queues it out of order
/// (and never delivers it, the gap is never filled).
const AHEAD: u32 = 1000;

/// A logged-in session that has completed one passive download, with what
/// a capture on the server saw of its control connection.
struct Tracked {
    session: FtpSession,
    /// The client's local port of the control connection.
    port: u16,
    /// The next sequence number the client will send.
    client_next: u32,
    /// The next sequence number the server will send.
    server_next: u32,
}

/// Opens a session from the client and downloads [`SMALL_FILE`] over
/// `PASV` while capturing its control connection on the server.
fn open_tracked(lab: &Lab, target: &FtpTarget, small: &FileDigest) -> Result<Tracked> {
    let srv4 = SERVER.ip(Family::V4);
    let cli4 = CLIENT.ip(Family::V4);
    let cap = Capture::start(
        lab.server(),
        &format!("tcp port {CONTROL_PORT} and host {cli4}"),
    )?;
    let mut session = FtpSession::open(lab.client(), target)?;
    session.pasv()?;
    let got = session
        .retr(SMALL_FILE)
        .context("download before the forgery")?;
    ensure!(
        got == *small,
        "download before the forgery: {got} != {small}"
    );
    let lines = cap.finish()?;
    let ports = local_ports_to(lab.client(), CONTROL_PORT)?;
    ensure!(ports.len() == 1, "control connections: {ports:?}");
    let port = ports[0];
    // The server's last segment acknowledges everything the client sent.
    let seq = last_seq_ack(&lines, srv4, CONTROL_PORT, cli4, port)
        .with_context(|| format!("no server segment to port {port} captured: {lines:#?}"))?;
    Ok(Tracked {
        session,
        port,
        client_next: seq.ack,
        server_next: seq.next_seq,
    })
}

/// Without ftpct, then with it: a session downloads once, the intruder
/// sends `forged(session)` spoofing the client, and the session's next
/// `PASV` download must work.
fn pasv_survives(lab: &Lab, what: &str, forged: impl Fn(&Tracked) -> Vec<Segment>) -> Result<()> {
    let server = Vsftpd::start(lab.server())?;
    let small = server.tree().digest(SMALL_FILE)?;
    let srv4 = SERVER.ip(Family::V4);
    let target = server.target(srv4);

    // Without ftpct the kernel ignores the forgery: the session goes on.
    let mut t = open_tracked(lab, &target, &small)?;
    send_segments(lab.intruder(), lab.server(), &forged(&t))?;
    t.session.pasv()?;
    assert_eq!(
        t.session.retr(SMALL_FILE)?,
        small,
        "without ftpct, after {what}"
    );
    t.session.quit()?;

    let fw = Ftpct::attach(lab.server(), LAB_IFACE, &[], lab.pin_root())?;
    let mut t = open_tracked(lab, &target, &small)?;
    let before = fw.counters()?;
    send_segments(lab.intruder(), lab.server(), &forged(&t))?;
    let data = t.session.pasv()?;
    let rows = fw.expectations_json()?;
    let got = t.session.retr(SMALL_FILE);
    let after = fw.counters()?;
    let outcome = match &got {
        Ok(d) => format!("got {d}"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        matches!(&got, Ok(d) if *d == small),
        "with ftpct, after {what} on the client's control connection (port {}), the \
         session's next PASV download failed: {outcome}; expectations after the 227 for port \
         {data}: {rows}; counters since the forgery: control_out_of_window +{}, \
         control_retransmits +{}, control_gaps +{}, refused_uncorrelated +{}, expect_created_pasv \
         +{}, syn_dropped +{}",
        t.port,
        after.since(&before, Counter::ControlOutOfWindow),
        after.since(&before, Counter::ControlRetransmits),
        after.since(&before, Counter::ControlGaps),
        after.since(&before, Counter::RefusedUncorrelated),
        after.since(&before, Counter::ExpectPasv),
        after.since(&before, Counter::SynDropped),
    );
    t.session.quit()?;
    Ok(())
}

/// Attack: the intruder, spoofing the client's address and control port,
/// sends a SYN with a random sequence number to the server's port 21 while
/// the real session is logged in (the kernel answers with a challenge ACK
/// and the connection goes on). Old ftpct reset the client direction's
/// expected sequence number from any SYN, so the real client's next `PASV`
/// looked out of window (or like a retransmission) and was not parsed, the
/// `227` created no expectation and the data connection was dropped. Must:
/// the real session's next passive download works.
#[test]
fn forged_syn_on_control_connection_keeps_pasv_working() -> Result<()> {
    let lab = Lab::new()?;
    let cli4 = CLIENT.ip(Family::V4);
    let srv4 = SERVER.ip(Family::V4);
    pasv_survives(&lab, "a forged SYN", |t| {
        vec![Segment::new(cli4, t.port, srv4, CONTROL_PORT, "S")]
    })
}

/// Attack: the intruder, spoofing the client, sends `NOOP\r\n` on the
/// control connection with a sequence number 1000 bytes ahead of the
/// client's next one (read from a capture; a blind attacker guessing within
/// 64 KiB does as well). The kernel queues it out of order and never
/// delivers it. Old ftpct took the gap for lost segments, parsed the NOOP
/// and moved its expected sequence number past it for good: the real
/// client's next `PASV` looked like a retransmission, was not parsed, the
/// `227` answered the phantom NOOP and created no expectation, and the data
/// connection was dropped. Must: the real session's next passive download
/// works.
#[test]
fn spoofed_command_ahead_of_the_stream_keeps_pasv_working() -> Result<()> {
    let lab = Lab::new()?;
    let cli4 = CLIENT.ip(Family::V4);
    let srv4 = SERVER.ip(Family::V4);
    pasv_survives(&lab, &format!("a spoofed NOOP {AHEAD} bytes ahead"), |t| {
        vec![
            Segment::new(cli4, t.port, srv4, CONTROL_PORT, "PA")
                .payload("NOOP\r\n")
                .seq(t.client_next.wrapping_add(AHEAD))
                .ack(t.server_next),
        ]
    })
}
