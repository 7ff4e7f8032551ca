//! Hostile end-to-end tests for four rules of README's "Security rules":
//! control text that only looks like an announcement (a server's echo of the
//! client's own text, an HTTP request a local process sends to port 21), the
//! per-client cap on expectations (it must count live ones only), and an FTP
//! bounce a permissive server would carry out for a remote client.
//!
//! Each test asserts the secure behaviour, so it fails while the attack
//! works. Behaviour (a connection, a delivered file) is checked before any
//! counter is read, and counters are read only at the end, as absolute
//! values of a fresh attach: an older ftpct that lacks one of the counters
//! fails the test there, after the behaviour showed what it did.
//!
//! Needs root and a built ftpct (`FTPCT_BIN`, default
//! `target/release/ftpct`). Run:
//! `cargo test -p ftpct-e2e --test hostile_rules -- --test-threads=1`.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ftpct_e2e::clients::{curl_download, ftplib_download, lftp_download, probe_all, tcp_connect};
use ftpct_e2e::forge::{Background, PermissiveFtpd, Sink, connect_from, ftp_commands, reply_to};
use ftpct_e2e::ftpct::{endpoint, row_endpoint};
use ftpct_e2e::{
    CLIENT, CLIENT2, ConnectResult, Counter, Family, FtpServer, FtpSession, Ftpct, INTRUDER,
    LAB_IFACE, Lab, Pyftpdlib, Rows, SERVER, SMALL_FILE, TransferMode, Vsftpd,
};

/// How long a probe waits before calling a connection attempt dropped.
const PROBE: Duration = Duration::from_secs(2);

/// Anonymous login for the permissive server.
const ANON: (&str, &str) = ("anonymous", "rules@example.com");

/// `text` as hex, for the helper's raw-bytes arguments.
fn hex(text: &str) -> String {
    text.bytes().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `port` as the last two numbers of a `PORT` or `227` tuple.
fn tuple(port: u16) -> String {
    let [hi, lo] = port.to_be_bytes();
    format!("{hi},{lo}")
}

/// Whether the expectation rows hold one for `src` to `dst:port`.
fn expects(rows: &Rows, src: IpAddr, dst: IpAddr, port: u16) -> bool {
    let src = src.to_string();
    let dst = endpoint(dst, port);
    rows.iter()
        .any(|r| r["src_addr"] == src.as_str() && row_endpoint(r, "dst").as_ref() == Some(&dst))
}

/// Sleeps until `at` (no-op if it passed).
fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        thread::sleep(at - now);
    }
}

// ---------------------------------------------------------------------------
// 1. A 227 reflected by the server in its echo of the client's own text.

/// Ports on the server that the reflected `227`s name (guarded, outside
/// pyftpdlib's passive range 40000-40099), one per echoing command.
const REFLECTED: [(&str, u16); 2] = [("MDTM", 45100), ("MKD", 45101)];

/// What one reflection attempt left.
struct Reflection {
    verb: &'static str,
    port: u16,
    /// The server's replies up to the real `227` (CRLF-terminated lines).
    replies: Vec<String>,
    /// The port the real `227` announced.
    real: u16,
    /// Expectations after the real `227`.
    rows: Rows,
    /// The intruder's connections to `port` and to `real`.
    result: Vec<ConnectResult>,
}

/// Attack: pyftpdlib ends a command line only at CRLF, answers an empty
/// line (`500`), and quotes the client's path in its reply: `MDTM <path>`
/// → `550 <path> is not retrievable`, `MKD <path>` → `257 "<path>"
/// directory created.`. The intruder logs in and sends in one write
/// `\r\nMDTM x\n227 Entering Passive Mode (198,18,0,1,176,44)\r\nPASV\r\n`
/// (the server's own address, port 45100, where a listener waits; not a
/// passive port of the server). pyftpdlib sees three commands and answers
/// `500`, then `550 /x` LF `227 Entering Passive Mode (198,18,0,1,176,44) is
/// not retrievable` CRLF, then the real `227`. ftpct, old and new, ends a
/// command at LF and does not count the empty line: three commands, `MDTM`,
/// `227 Entering ...` and `PASV` (so the `500` pairs with `MDTM`: the empty
/// line is what lines the pairing up again). Old ftpct also ended the reply
/// line at the bare LF, so the embedded `227` answered the queued `PASV`: an
/// expectation for the intruder to port 45100, and the intruder's
/// connection to 45100 passed (while the real `227` answered nothing and the
/// intruder's connection to the real passive port was dropped). Same with
/// `MKD` (port 45101). Must: a reply line ends only at CRLF, so the echo is
/// one `550`/`257` line; the intruder's connection to 45100/45101 is dropped
/// and the real `227` is the one announced: the intruder's connection to
/// the real passive port succeeds.
#[test]
fn reflected_227_in_an_echoed_path_opens_nothing() -> Result<()> {
    let lab = Lab::new()?;
    let server = Pyftpdlib::start(lab.server())?;
    let srv4 = SERVER.ip(Family::V4);
    let intr4 = INTRUDER.ip(Family::V4);
    let target = server.target(srv4);
    let ports: Vec<String> = REFLECTED.iter().map(|(_, p)| p.to_string()).collect();
    let sink = Sink::start(lab.server(), "::", &ports.join(","))?;
    let fw = lab.attach(&["--force"])?;

    // The guard is up: the listeners are closed to the intruder.
    let probes: Vec<_> = REFLECTED
        .iter()
        .map(|&(_, p)| (lab.intruder(), srv4, p))
        .collect();
    let r = probe_all(&probes, PROBE)?;
    ensure!(
        r.iter().all(|r| *r == ConnectResult::TimedOut),
        "before the attack the intruder reached the listeners: {r:?}"
    );

    let mut attempts = Vec::new();
    for (verb, port) in REFLECTED {
        let embedded = format!("227 Entering Passive Mode (198,18,0,1,{})", tuple(port));
        let raw = format!("\r\n{verb} x\n{embedded}\r\nPASV\r\n");
        let mut session = Background::forge(
            lab.intruder(),
            &[
                "pipelined",
                &srv4.to_string(),
                &target.port.to_string(),
                &target.credentials.user,
                &target.credentials.password,
                &hex(&raw),
            ],
            None,
        )?;
        let out = session
            .wait_for("pasv ", Duration::from_secs(15))
            .with_context(|| format!("{verb}: the intruder's session"))?;
        let replies: Vec<String> = out
            .lines()
            .filter_map(|l| serde_json::from_str(l.strip_prefix("reply ")?).ok())
            .collect();
        let real: u16 = out
            .lines()
            .find_map(|l| l.strip_prefix("pasv ")?.trim().parse().ok())
            .with_context(|| format!("{verb}: no pasv line in {out:?}"))?;
        ensure!(
            replies.iter().any(|r| r.contains(&format!("\n{embedded}"))),
            "{verb}: pyftpdlib did not echo the embedded 227 after a bare LF: {replies:?}"
        );
        let rows = fw.expectations_json()?;
        // Both at once, while the session (and its expectations) lives.
        let result = probe_all(
            &[(lab.intruder(), srv4, port), (lab.intruder(), srv4, real)],
            PROBE,
        )?;
        session.stop();
        attempts.push(Reflection {
            verb,
            port,
            replies,
            real,
            rows,
            result,
        });
    }

    for a in &attempts {
        assert_eq!(
            a.result[0],
            ConnectResult::TimedOut,
            "{}: the intruder connected to port {} of the server, named only by the 227 \
             pyftpdlib echoed inside its reply to {} (a reply line ended at a bare LF); \
             replies: {:?}; expectations after the real 227: {}; listener: {}",
            a.verb,
            a.port,
            a.verb,
            a.replies,
            a.rows,
            sink.output().trim(),
        );
        assert!(
            !expects(&a.rows, intr4, srv4, a.port),
            "{}: expectation for the echoed port: {}",
            a.verb,
            a.rows
        );
        assert_eq!(
            a.result[1],
            ConnectResult::Connected,
            "{}: the intruder's connection to the passive port {} really announced was \
             dropped; replies: {:?}; expectations: {}",
            a.verb,
            a.real,
            a.replies,
            a.rows,
        );
        assert!(
            expects(&a.rows, intr4, srv4, a.real),
            "{}: no expectation for the real passive port {}: {}",
            a.verb,
            a.real,
            a.rows
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 2. The per-client cap counts only live expectations.

/// Expectation lifetime in the cap test (`--expect-timeout`).
const LIFETIME: Duration = Duration::from_secs(2);

/// Slot width of the per-client counts: a seventh of [`LIFETIME`]. An
/// expectation stops counting between 7 and 8 slots after its creation.
const SLOT: Duration = Duration::from_millis(286);

/// When the fourth expectation is made, after the first three.
const FOURTH_AT: Duration = Duration::from_millis(1200);

/// When the late ones are made: after the first three expired, while the
/// fourth is live.
const LATE_AT: Duration = Duration::from_millis(2600);

/// Attack (on availability): the client, one address (as behind a NAT),
/// with `--max-expect-per-client 3 --expect-timeout 2`, announces three
/// passive ports at t=0 on three sessions (the cap is full: a fourth
/// session's PASV then gets no expectation), uses one, announces one more
/// at t≈1.2 s, and at t≈2.6 s, when the two unused ones of t=0 have
/// expired, announces two more on two new sessions. Old ftpct kept counting
/// expired expectations until the client created nothing for a whole
/// lifetime (the t≈1.2 s one kept the count alive), so it refused both
/// (`refused_client_limit`) and their data connections were dropped. Must:
/// expired ones stop counting (within a seventh of a lifetime), so both are
/// created and both downloads work; the cap still holds for live ones (a
/// third PASV at t≈2.6 s gets none).
#[test]
fn per_client_cap_counts_only_live_expectations() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let small = server.tree().digest(SMALL_FILE)?;
    let srv4 = SERVER.ip(Family::V4);
    let cli4 = CLIENT.ip(Family::V4);
    let target = server.target(srv4);
    let secs = LIFETIME.as_secs().to_string();
    let fw = lab.attach(&["--max-expect-per-client", "3", "--expect-timeout", &secs])?;
    // Sessions: 0-2 fill the cap at t=0, 3 is over it, 4 at t≈1.2 s,
    // 5 and 6 the late ones, 7 over the cap again.
    let mut s = (0..8)
        .map(|_| FtpSession::open(lab.client(), &target))
        .collect::<Result<Vec<_>>>()?;

    let t0 = Instant::now();
    let first = s[..4]
        .iter_mut()
        .map(FtpSession::pasv)
        .collect::<Result<Vec<_>>>()?;
    let first_done = t0.elapsed();
    let rows = fw.expectations_json()?;
    let have = |rows: &Rows, port: u16| expects(rows, cli4, srv4, port);
    ensure!(
        first[..3].iter().all(|&p| have(&rows, p)) && !have(&rows, first[3]),
        "at t=0 the cap of 3 did not hold: ports {first:?}; expectations: {rows}"
    );
    assert_eq!(
        s[0].retr(SMALL_FILE)?,
        small,
        "the first session's download"
    );

    sleep_until(t0 + FOURTH_AT);
    let fourth_at = t0.elapsed();
    let fourth = s[4].pasv()?;
    let rows = fw.expectations_json()?;
    ensure!(
        have(&rows, fourth),
        "at {fourth_at:.1?}, with one of three used, no expectation for port {fourth}: {rows}"
    );

    // The t=0 ones stop counting at most a lifetime after their creation.
    sleep_until((t0 + LATE_AT).max(t0 + first_done + LIFETIME + SLOT));
    let late_at = t0.elapsed();
    let late = [s[5].pasv()?, s[6].pasv()?];
    let over = s[7].pasv()?;
    let over_done = t0.elapsed();
    let rows = fw.expectations_json()?;
    for (i, port) in late.into_iter().enumerate() {
        let got = s[5 + i].retr(SMALL_FILE).map_err(|e| format!("{e:#}"));
        assert!(
            matches!(&got, Ok(d) if *d == small),
            "late session {i}: PASV at {late_at:.1?} (the t=0 expectations expired at \
             {LIFETIME:?}; live: the one of {fourth_at:.1?} only) announced port {port}, and \
             the download failed: {got:?}; expectations then: {rows}"
        );
    }
    // The fourth counts until at least 7 slots after its creation.
    ensure!(
        over_done < fourth_at + SLOT * 7,
        "too slow to check the cap on live ones: the last PASV came at {over_done:.1?}, the \
         one of {fourth_at:.1?} may no longer count"
    );
    assert!(
        !have(&rows, over),
        "a fourth live expectation (port {over}) despite the cap of 3: {rows}"
    );
    let r = tcp_connect(lab.client(), srv4, over, PROBE)?;
    assert_eq!(r, ConnectResult::TimedOut, "connection to port {over}");
    for session in s {
        session.quit()?;
    }
    let c = fw.counters()?;
    assert_eq!(c.get(Counter::RefusedClientLimit), 2, "{c}");
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. FTP bounce through a permissive server.

/// Client2's listener the bounces aim at (IPv4 `PORT`, IPv6 `EPRT`).
const BOUNCE_PORTS: [u16; 2] = [45200, 45201];

/// The client's own listener for a legitimate active transfer.
const OWN_PORT: u16 = 45210;

/// Connections from `peer` to `port` that `sink` accepted, waiting up to
/// `timeout` for a first one.
fn accepted_within(sink: &Sink, peer: &str, port: u16, timeout: Duration) -> Vec<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = sink.accepted(peer, port);
        if !got.is_empty() || Instant::now() >= deadline {
            return got;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Attack: the permissive pyftpdlib (any `PORT`/`EPRT` address) runs on the
/// guarded server. The intruder logs in and sends `PORT 198,18,0,4,176,144`
/// (client2's address, port 45200, where a listener waits) and `RETR
/// small.txt`; over IPv6, `EPRT |2|2001:db8::4|45201|` and `LIST`. Old ftpct
/// refused the bounce for its own purposes (no expectation) but let the
/// server's connection out: pyftpdlib connected to client2 and sent it the
/// file and the listing. Must: the server's SYNs to those endpoints are
/// dropped on egress (`bounce_blocked`), client2's listener gets nothing,
/// the server answers `425`; and the client's own active-mode transfer
/// (`PORT` naming itself) still works.
#[test]
fn bounce_through_a_permissive_server_is_blocked_on_egress() -> Result<()> {
    let lab = Lab::new()?;
    let server = PermissiveFtpd::start(lab.server())?;
    let small_len = server.tree().path(SMALL_FILE).metadata()?.len();
    let srv4 = SERVER.ip(Family::V4);
    let srv6 = SERVER.ip(Family::V6);
    let ports: Vec<String> = BOUNCE_PORTS.iter().map(u16::to_string).collect();
    let victim = Sink::start(lab.client2(), "::", &ports.join(","))?;
    let own = Sink::start(lab.client(), "::", &OWN_PORT.to_string())?;
    let fw = lab.attach(&[])?;

    let retr = format!("RETR {SMALL_FILE}");
    let port = format!("PORT 198,18,0,4,{}", tuple(BOUNCE_PORTS[0]));
    let v4 = ftp_commands(
        lab.intruder(),
        srv4,
        21,
        ANON.0,
        ANON.1,
        &["TYPE I", &port, &retr],
    )?;
    let eprt = format!("EPRT |2|{}|{}|", CLIENT2.v6, BOUNCE_PORTS[1]);
    let v6 = ftp_commands(lab.intruder(), srv6, 21, ANON.0, ANON.1, &[&eprt, "LIST"])?;
    let got4 = accepted_within(
        &victim,
        "198.18.0.1",
        BOUNCE_PORTS[0],
        Duration::from_secs(1),
    );
    let got6 = accepted_within(
        &victim,
        "2001:db8::1",
        BOUNCE_PORTS[1],
        Duration::from_secs(1),
    );
    assert!(
        got4.is_empty(),
        "the server, told by the intruder's {port:?}, connected to client2 and sent {got4:?} \
         bytes (file: {small_len}); intruder's session: {v4:#?}"
    );
    assert!(
        got6.is_empty(),
        "the server, told by the intruder's {eprt:?}, connected to client2 and sent {got6:?} \
         bytes; intruder's session: {v6:#?}"
    );
    for (lines, cmd) in [(&v4, &port), (&v6, &eprt)] {
        let reply = reply_to(lines, cmd).unwrap_or_default();
        assert!(reply.starts_with("42"), "reply to {cmd}: {lines:#?}");
    }

    // The client's active-mode transfer to itself.
    let good = format!("PORT 198,18,0,2,{}", tuple(OWN_PORT));
    let lines = ftp_commands(
        lab.client(),
        srv4,
        21,
        ANON.0,
        ANON.1,
        &["TYPE I", &good, &retr],
    )?;
    assert!(
        reply_to(&lines, &good).is_some_and(|r| r.starts_with("200"))
            && own.wait_accepted("198.18.0.1", OWN_PORT, small_len, Duration::from_secs(5)),
        "the client's own active transfer: {lines:#?}; listener: {}",
        own.output().trim()
    );

    let c = fw.counters()?;
    assert!(c.get(Counter::RefusedBounce) >= 2, "{c}");
    assert!(c.get(Counter::BounceBlocked) >= 2, "{c}");
    Ok(())
}

// ---------------------------------------------------------------------------
// 4. Text that only looks like FTP, sent by a local process to port 21.

/// The client's listeners the fake `PORT`s name: with a greeting, without.
const NOT_FTP_PORTS: [u16; 2] = [45300, 45301];

/// Attack: ftpct guards the client host. The intruder runs a fake "FTP
/// server" on port 21. A process on the client (a web client made to fetch
/// `http://198.18.0.3:21/`, a user without privileges) sends it, in one
/// write, `GET / HTTP/1.1\r\nHost: x\r\nPORT 198,18,0,2,176,244\r\n\r\n`
/// and keeps the connection open; the intruder then connects from port 20
/// to port 45300 of the client, where a listener waits. Once with the fake
/// server sending `220 hi` first (and the client waiting for it), once with
/// a silent fake server (port 45301). Old ftpct took the line for a local
/// FTP client's `PORT` and admitted the intruder's connection both times.
/// Must: a local client's `PORT` counts only after a `220` greeting and once
/// every earlier command was answered, so both connections are dropped
/// (`refused_not_ftp`). Real active-mode clients (curl, lftp, ftplib, `PORT`
/// and `EPRT`, IPv4 and IPv6) on the guarded client still download from
/// vsftpd on the server.
#[test]
fn port_line_in_text_that_only_looks_like_ftp_opens_nothing() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let small = server.tree().digest(SMALL_FILE)?;
    let cli4 = CLIENT.ip(Family::V4);
    let ports: Vec<String> = NOT_FTP_PORTS.iter().map(u16::to_string).collect();
    let sink = Sink::start(lab.client(), "::", &ports.join(","))?;
    let fw = Ftpct::attach(lab.client(), LAB_IFACE, &["--force"], lab.pin_root())?;

    let (r, _) = connect_from(lab.intruder(), cli4, NOT_FTP_PORTS[0], 20, PROBE, None)?;
    ensure!(
        r == ConnectResult::TimedOut,
        "before the attack the intruder reached the client's port {}: {r:?}",
        NOT_FTP_PORTS[0]
    );

    let mut attempts = Vec::new();
    for (greeting, port) in [("220 hi", NOT_FTP_PORTS[0]), ("", NOT_FTP_PORTS[1])] {
        let mut fake = Background::forge(
            lab.intruder(),
            &["fakeftp", "::", "21", greeting],
            Some("listening"),
        )?;
        let request = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nPORT 198,18,0,2,{}\r\n\r\n",
            tuple(port)
        );
        // With a greeting, the process waits for it: the PORT then follows
        // a 220 but two unanswered "commands".
        let wait = if greeting.is_empty() { "0.3" } else { "5" };
        let web = Background::forge(
            lab.client(),
            &["send-hold", &INTRUDER.v4.to_string(), "21", wait, &request],
            Some("sent"),
        )?;
        fake.wait_for("PORT", Duration::from_secs(5))
            .context("the fake server did not get the request")?;
        let (result, _) = connect_from(lab.intruder(), cli4, port, 20, PROBE, None)?;
        let web_log = web.stop();
        let fake_log = fake.stop();
        attempts.push((greeting, port, result, web_log, fake_log));
    }
    for (greeting, port, result, web_log, fake_log) in &attempts {
        assert_eq!(
            *result,
            ConnectResult::TimedOut,
            "the intruder connected from port 20 to the client's port {port}, named by a PORT \
             line inside an HTTP request a client process sent to its port 21 (greeting \
             {greeting:?}); client process: {}; fake server: {}; listener: {}",
            web_log.trim(),
            fake_log.trim(),
            sink.output().trim(),
        );
    }

    // Real active-mode clients on the guarded client.
    let v4 = server.target(SERVER.ip(Family::V4));
    let v6 = server.target(SERVER.ip(Family::V6));
    let mut transfers = 0;
    for (what, got) in [
        (
            "curl PORT",
            curl_download(lab.client(), &v4, SMALL_FILE, TransferMode::Port),
        ),
        (
            "curl EPRT",
            curl_download(lab.client(), &v4, SMALL_FILE, TransferMode::Eprt),
        ),
        (
            "curl EPRT v6",
            curl_download(lab.client(), &v6, SMALL_FILE, TransferMode::Eprt),
        ),
        (
            "lftp active",
            lftp_download(lab.client(), &v4, SMALL_FILE, false),
        ),
        (
            "lftp active v6",
            lftp_download(lab.client(), &v6, SMALL_FILE, false),
        ),
        (
            "ftplib PORT",
            ftplib_download(lab.client(), &v4, SMALL_FILE, TransferMode::Port),
        ),
        (
            "ftplib EPRT",
            ftplib_download(lab.client(), &v4, SMALL_FILE, TransferMode::Eprt),
        ),
        (
            "ftplib EPRT v6",
            ftplib_download(lab.client(), &v6, SMALL_FILE, TransferMode::Eprt),
        ),
    ] {
        let got = got.with_context(|| format!("{what} on the guarded client"))?;
        assert_eq!(got, small, "{what}");
        transfers += 1;
    }

    let c = fw.counters()?;
    assert_eq!(c.get(Counter::RefusedNotFtp), 2, "{c}");
    let created = c.get(Counter::ExpectPort) + c.get(Counter::ExpectEprt);
    assert!(created >= transfers, "{transfers} active transfers: {c}");
    Ok(())
}
