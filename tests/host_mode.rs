//! End-to-end tests of ftpct guarding an FTP server host: ftpct is attached
//! to `eth0` of the lab's server namespace (with the lab's own pin root)
//! while real servers and clients transfer files, and an intruder tries to
//! connect to data ports that were announced to somebody else.
//!
//! Every hostile check first shows that the attack works without ftpct, so
//! a TimedOut with ftpct attached means ftpct dropped it.
//!
//! Needs root and a built ftpct (`FTPCT_BIN`, default
//! `target/release/ftpct`). Run:
//! `cargo test -p ftpct-e2e --test host_mode -- --test-threads=2`.

use std::net::IpAddr;
use std::process::{Command, Output};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ftpct_e2e::clients::{curl_download, lftp_download, lftp_list, lftp_upload, tcp_connect};
use ftpct_e2e::fixtures::{FileDigest, pseudo_random_bytes};
use ftpct_e2e::forge::xdp_attached;
use ftpct_e2e::ftpct::{endpoint, kernel_object_exists, row_endpoint};
use ftpct_e2e::process::{run_with_timeout, wait_until};
use ftpct_e2e::servers::ServerOptions;
use ftpct_e2e::{
    BIG_FILE, CLIENT, ConnectResult, Counter, Counters, EchoClient, EchoServer, Family, FtpServer,
    FtpSession, Ftpct, LAB_IFACE, Lab, Netns, Proftpd, PureFtpd, Pyftpdlib, SERVER, SMALL_FILE,
    TransferMode, Vsftpd, assert_cli_error, ftpct_bin, ftpct_run, pin_dir,
};
use serde_json::Value;

/// How long a probe waits before calling a connection attempt dropped.
const PROBE: Duration = Duration::from_secs(2);

/// Timeout of the long-lived echo connections.
const ECHO_TIMEOUT: Duration = Duration::from_secs(5);

/// A port inside the lab servers' passive range that no FTP server uses in
/// the tests that listen on it.
const UNANNOUNCED_PORT: u16 = 40050;

/// The expectation row letting `src` connect to `dst:port`, if any.
fn find_expectation(rows: &[Value], src: IpAddr, dst: IpAddr, port: u16) -> Option<&Value> {
    let src = src.to_string();
    let dst = endpoint(dst, port);
    rows.iter()
        .find(|r| r["src_addr"] == src.as_str() && row_endpoint(r, "dst").as_ref() == Some(&dst))
}

/// The announcement an FTP client sends on the wire for `mode` over
/// `family` (curl and ftplib use EPSV/EPRT on IPv6 whatever is asked).
fn passive_kind(family: Family, mode: TransferMode) -> &'static str {
    match (family, mode) {
        (Family::V4, TransferMode::Pasv) => "pasv",
        _ => "epsv",
    }
}

/// The counter that grows when the server answers the `PASV`/`EPSV` that
/// [`passive_kind`] names.
fn passive_counter(family: Family, mode: TransferMode) -> Counter {
    match passive_kind(family, mode) {
        "pasv" => Counter::ExpectPasv,
        _ => Counter::ExpectEpsv,
    }
}

/// The counter that grows when a local client's `PORT`/`EPRT` is accepted.
fn active_counter(family: Family, mode: TransferMode) -> Counter {
    match (family, mode) {
        (Family::V4, TransferMode::Port) => Counter::ExpectPort,
        _ => Counter::ExpectEprt,
    }
}

// ---------------------------------------------------------------------------
// 1. Legitimate transfers in every mode, both families.

#[test]
fn curl_all_modes_both_families_pass_through_ftpct() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let fw = lab.attach(&[])?;
    let small = server.tree().digest(SMALL_FILE)?;
    let start = fw.counters()?;
    for family in Family::ALL {
        let target = server.target(SERVER.ip(family));
        for mode in TransferMode::ALL {
            let what = format!("curl {mode:?} over {family:?}");
            // The only big transfer of this file: a long flow of data.
            let (file, expected) = if (family, mode) == (Family::V4, TransferMode::Epsv) {
                (BIG_FILE, server.tree().digest(BIG_FILE)?)
            } else {
                (SMALL_FILE, small.clone())
            };
            let before = fw.counters()?;
            let got = curl_download(lab.client(), &target, file, mode).context(what.clone())?;
            assert_eq!(got, expected, "{what}");
            let after = fw.counters()?;
            if mode.is_passive() {
                let kind = passive_counter(family, mode);
                assert!(after.since(&before, kind) >= 1, "{what}: {kind:?}: {after}");
                assert!(
                    after.since(&before, Counter::SynAdmitted) >= 1,
                    "{what}: {after}"
                );
            } else {
                // The server connects out to the client: an outbound flow.
                assert!(
                    after.since(&before, Counter::FlowsOutbound) >= 1,
                    "{what}: {after}"
                );
            }
        }
    }
    let end = fw.counters()?;
    for name in [Counter::SynDropped, Counter::UntrackedDropped] {
        assert_eq!(
            end.since(&start, name),
            0,
            "legitimate traffic dropped: {end}"
        );
    }
    assert!(end.get(Counter::ControlPackets) > 0, "{end}");
    assert!(
        end.get(Counter::Commands) > 0 && end.get(Counter::Replies) > 0,
        "{end}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 2. lftp: listing, upload, download.

#[test]
fn lftp_list_upload_download_passive_through_ftpct() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let fw = lab.attach(&[])?;
    let small = server.tree().digest(SMALL_FILE)?;
    for (i, family) in Family::ALL.into_iter().enumerate() {
        let target = server.target(SERVER.ip(family));
        let listing = lftp_list(lab.client(), &target, "/", true)?;
        assert!(
            listing.contains(SMALL_FILE) && listing.contains(BIG_FILE),
            "{family:?}: {listing}"
        );
        let data = pseudo_random_bytes(150_000, 40 + i as u64);
        let remote = format!("upload/lftp-{i}.bin");
        lftp_upload(lab.client(), &target, &data, &remote, true)?;
        assert_eq!(
            server.tree().digest(&remote)?,
            FileDigest::of(&data),
            "{family:?} upload"
        );
        assert_eq!(
            lftp_download(lab.client(), &target, &remote, true)?,
            FileDigest::of(&data),
            "{family:?} download of the upload"
        );
        assert_eq!(
            lftp_download(lab.client(), &target, SMALL_FILE, true)?,
            small,
            "{family:?}"
        );
    }
    let c = fw.counters()?;
    assert!(
        c.get(Counter::ExpectPasv) + c.get(Counter::ExpectEpsv) >= 8,
        "{c}"
    );
    assert_eq!(c.get(Counter::SynDropped), 0, "{c}");
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. Unannounced connections to guarded ports.

#[test]
fn unannounced_syn_is_dropped() -> Result<()> {
    let lab = Lab::new()?;
    let _server = Vsftpd::start(lab.server())?;
    let listener = EchoServer::start(lab.server(), "::", UNANNOUNCED_PORT)?;
    let closed_port = UNANNOUNCED_PORT + 1;
    let srv4 = SERVER.ip(Family::V4);
    let srv6 = SERVER.ip(Family::V6);

    // Without ftpct the intruder reaches the listener, and a closed port
    // answers with a RST.
    for addr in [srv4, srv6] {
        let r = tcp_connect(lab.intruder(), addr, listener.port(), PROBE)?;
        assert_eq!(r, ConnectResult::Connected, "without ftpct, {addr}");
    }
    let r = tcp_connect(lab.intruder(), srv4, closed_port, PROBE)?;
    assert_eq!(r, ConnectResult::Refused, "without ftpct, closed port");

    let fw = lab.attach(&["--force"])?;
    let before = fw.counters()?;
    for addr in [srv4, srv6] {
        let r = tcp_connect(lab.intruder(), addr, listener.port(), PROBE)?;
        assert_eq!(r, ConnectResult::TimedOut, "with ftpct, {addr}");
    }
    let r = tcp_connect(lab.intruder(), srv4, closed_port, PROBE)?;
    assert_eq!(r, ConnectResult::TimedOut, "with ftpct, closed port");
    // The legitimate client gets no exception without an announcement.
    let r = tcp_connect(lab.client(), srv4, listener.port(), PROBE)?;
    assert_eq!(r, ConnectResult::TimedOut, "with ftpct, client");
    let after = fw.counters()?;
    assert!(after.since(&before, Counter::SynDropped) >= 4, "{after}");
    assert_eq!(after.since(&before, Counter::SynAdmitted), 0, "{after}");

    // The control port stays open to everybody.
    let r = tcp_connect(lab.intruder(), srv4, 21, PROBE)?;
    assert_eq!(r, ConnectResult::Connected, "control port with ftpct");
    Ok(())
}

/// Sends one bare ACK (no connection behind it) from `ns` to `dst:port`
/// with scapy; returns whether a RST came back within 1.5 s.
fn bare_ack_gets_rst(ns: &Netns, dst: IpAddr, port: u16) -> Result<bool> {
    const SCRIPT: &str = r#"
import socket
import subprocess
import sys
from scapy.all import IP, IPv6, TCP, Ether, conf, srp1
conf.verb = 0
dst, port = sys.argv[1], int(sys.argv[2])
# Let the kernel resolve the server's MAC (scapy's own IPv6 neighbour
# discovery fails here): one connect to the discard port, which is closed.
try:
    socket.create_connection((dst, 9), timeout=2).close()
except OSError:
    pass
neigh = subprocess.run(["ip", "neigh", "show", dst, "dev", "eth0"],
                       capture_output=True, text=True, timeout=5).stdout.split()
mac = neigh[neigh.index("lladdr") + 1]
l3 = IPv6(dst=dst) if ":" in dst else IP(dst=dst)
ans = srp1(Ether(dst=mac) / l3 / TCP(sport=33333, dport=port, flags="A", seq=1000, ack=2000),
           timeout=1.5, iface="eth0")
if ans is None:
    print("none")
elif ans.haslayer(TCP) and ans[TCP].flags & 0x04:
    print("rst")
else:
    print("other " + ans.summary())
"#;
    let out = ns.run_ok(&[
        ftpct_e2e::clients::python::python(),
        "-c".into(),
        SCRIPT.into(),
        dst.to_string(),
        port.to_string(),
    ])?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match text.as_str() {
        "rst" => Ok(true),
        "none" => Ok(false),
        other => anyhow::bail!("unexpected answer to a bare ACK: {other}"),
    }
}

#[test]
fn untracked_non_syn_is_dropped() -> Result<()> {
    let lab = Lab::new()?;
    let listener = EchoServer::start(lab.server(), "::", UNANNOUNCED_PORT)?;
    // Without ftpct the server's TCP answers a stray ACK with a RST.
    for family in Family::ALL {
        let rst = bare_ack_gets_rst(lab.intruder(), SERVER.ip(family), listener.port())?;
        assert!(rst, "without ftpct, {family:?}: no RST");
    }
    let fw = lab.attach(&["--force"])?;
    let before = fw.counters()?;
    for family in Family::ALL {
        let rst = bare_ack_gets_rst(lab.intruder(), SERVER.ip(family), listener.port())?;
        assert!(!rst, "with ftpct, {family:?}: the ACK reached the server");
    }
    let after = fw.counters()?;
    assert!(
        after.since(&before, Counter::UntrackedDropped) >= 2,
        "{after}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 4. An announced port only admits the client it was announced to.

/// (family, mode) cases of the data-port theft tests.
const THEFT_CASES: [(Family, TransferMode); 3] = [
    (Family::V4, TransferMode::Pasv),
    (Family::V4, TransferMode::Epsv),
    (Family::V6, TransferMode::Epsv),
];

#[test]
fn announced_port_is_refused_to_intruder_and_admits_client() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let small = server.tree().digest(SMALL_FILE)?;

    // Without ftpct the theft works (see also lab_smoke's
    // vsftpd_intruder_reaches_announced_port_without_firewall).
    for (family, mode) in THEFT_CASES {
        let server_ip = SERVER.ip(family);
        let mut session = FtpSession::open(lab.client(), &server.target(server_ip))?;
        let port = session.prepare(mode)?;
        let r = tcp_connect(lab.intruder(), server_ip, port, PROBE)?;
        assert_eq!(
            r,
            ConnectResult::Connected,
            "without ftpct: {mode:?} {family:?}"
        );
        session.quit()?;
    }

    let fw = lab.attach(&[])?;
    for (family, mode) in THEFT_CASES {
        let what = format!("{mode:?} over {family:?}");
        let server_ip = SERVER.ip(family);
        let client_ip = CLIENT.ip(family);
        let mut session = FtpSession::open(lab.client(), &server.target(server_ip))?;
        let port = session.prepare(mode)?;
        let rows = fw.expectations_json()?;
        let row = find_expectation(&rows, client_ip, server_ip, port)
            .with_context(|| format!("{what}: no expectation for port {port}: {rows}"))?;
        assert_eq!(row["kind"], passive_kind(family, mode), "{what}: {row}");
        assert_eq!(row["iface"], LAB_IFACE, "{what}: {row}");
        assert!(
            row["expires_in_secs"].as_f64().is_some_and(|s| s > 0.0),
            "{what}: {row}"
        );

        let before = fw.counters()?;
        let r = tcp_connect(lab.intruder(), server_ip, port, PROBE)?;
        assert_eq!(r, ConnectResult::TimedOut, "{what}: intruder");
        let after = fw.counters()?;
        assert!(
            after.since(&before, Counter::SynDropped) >= 1,
            "{what}: {after}"
        );
        assert_eq!(
            after.since(&before, Counter::SynAdmitted),
            0,
            "{what}: {after}"
        );
        // The intruder's attempt did not use up the client's announcement.
        let rows = fw.expectations_json()?;
        assert!(
            find_expectation(&rows, client_ip, server_ip, port).is_some(),
            "{what}: expectation gone after the intruder's attempt: {rows}"
        );

        session.connect().context(what.clone())?;
        assert_eq!(session.retr(SMALL_FILE)?, small, "{what}");
        session.quit()?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 5. Expectations are one-shot.

#[test]
fn expectation_is_consumed_by_first_connection() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let small = server.tree().digest(SMALL_FILE)?;
    let server_ip = SERVER.ip(Family::V4);
    let client_ip = CLIENT.ip(Family::V4);
    let target = server.target(server_ip);

    // Without ftpct a second connection to the announced port completes
    // too: vsftpd's data listener stays open (connections wait in its
    // accept queue) until the transfer command.
    {
        let mut session = FtpSession::open(lab.client(), &target)?;
        let port = session.pasv()?;
        session.connect()?;
        let r = tcp_connect(lab.client(), server_ip, port, PROBE)?;
        assert_eq!(
            r,
            ConnectResult::Connected,
            "second connection without ftpct"
        );
        assert_eq!(session.retr(SMALL_FILE)?, small);
        session.quit()?;
    }

    let fw = lab.attach(&[])?;
    let mut session = FtpSession::open(lab.client(), &target)?;
    let port = session.pasv()?;
    let rows = fw.expectations_json()?;
    let matching: Vec<&Value> = rows
        .iter()
        .filter(|r| row_endpoint(r, "dst") == Some(endpoint(server_ip, port)))
        .collect();
    assert_eq!(matching.len(), 1, "one expectation for port {port}: {rows}");
    assert_eq!(matching[0]["src_addr"], client_ip.to_string().as_str());

    let before = fw.counters()?;
    session.connect()?;
    let admitted = fw.counters()?;
    assert_eq!(
        admitted.since(&before, Counter::SynAdmitted),
        1,
        "first connection: {admitted}"
    );
    let rows = fw.expectations_json()?;
    assert!(
        find_expectation(&rows, client_ip, server_ip, port).is_none(),
        "expectation still present after its connection: {rows}"
    );
    let flows = fw.flows_json()?;
    assert!(
        flows.iter().any(
            |f| row_endpoint(f, "dst") == Some(endpoint(server_ip, port))
                && f["direction"] == "in"
                && f["origin"] == "admitted"
        ),
        "no admitted flow to port {port}: {flows}"
    );

    let r = tcp_connect(lab.client(), server_ip, port, PROBE)?;
    assert_eq!(r, ConnectResult::TimedOut, "second connection with ftpct");
    let after = fw.counters()?;
    assert!(after.since(&admitted, Counter::SynDropped) >= 1, "{after}");
    assert_eq!(after.since(&admitted, Counter::SynAdmitted), 0, "{after}");

    // The admitted connection carries the transfer.
    assert_eq!(session.retr(SMALL_FILE)?, small);
    session.quit()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// 6. The guarded host's own outgoing connections.

#[test]
fn server_host_outbound_connections_work() -> Result<()> {
    let lab = Lab::new()?;
    // An FTP server and an echo listener on the *client* host; the guarded
    // host is the client here.
    let remote = Vsftpd::start(lab.client())?;
    let echo = EchoServer::start(lab.client(), &CLIENT.v4.to_string(), 5555)?;
    let fw = lab.attach(&[])?;
    let start = fw.counters()?;

    let mut conn = EchoClient::connect(
        lab.server(),
        CLIENT.ip(Family::V4),
        echo.port(),
        ECHO_TIMEOUT,
    )?;
    for text in ["hello", "again"] {
        assert_eq!(conn.exchange(text)?, text);
    }
    drop(conn);
    let after_echo = fw.counters()?;
    assert!(
        after_echo.since(&start, Counter::FlowsOutbound) >= 1,
        "{after_echo}"
    );

    let small = remote.tree().digest(SMALL_FILE)?;
    for (family, mode) in [
        (Family::V4, TransferMode::Pasv),
        (Family::V4, TransferMode::Port),
        (Family::V6, TransferMode::Epsv),
        (Family::V6, TransferMode::Eprt),
    ] {
        let what = format!("server host downloads with {mode:?} over {family:?}");
        let target = remote.target(CLIENT.ip(family));
        let before = fw.counters()?;
        let got = curl_download(lab.server(), &target, SMALL_FILE, mode).context(what.clone())?;
        assert_eq!(got, small, "{what}");
        let after = fw.counters()?;
        assert!(
            after.since(&before, Counter::FlowsOutbound) >= 1,
            "{what}: {after}"
        );
        if !mode.is_passive() {
            // The remote server connects back: announced by our PORT/EPRT.
            let counter = active_counter(family, mode);
            assert!(after.since(&before, counter) >= 1, "{what}: {after}");
            assert!(
                after.since(&before, Counter::SynAdmitted) >= 1,
                "{what}: {after}"
            );
        }
    }
    let end = fw.counters()?;
    assert_eq!(end.since(&start, Counter::SynDropped), 0, "{end}");
    assert_eq!(end.since(&start, Counter::UntrackedDropped), 0, "{end}");
    Ok(())
}

// ---------------------------------------------------------------------------
// 7. Connections established before attach keep working.

#[test]
fn established_connections_survive_attach() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let small = server.tree().digest(SMALL_FILE)?;
    let listener = EchoServer::start(lab.server(), "::", 45000)?;
    let target = server.target(SERVER.ip(Family::V4));

    let mut session = FtpSession::open(lab.client(), &target)?;
    let mut echo4 = EchoClient::connect(
        lab.client(),
        SERVER.ip(Family::V4),
        listener.port(),
        ECHO_TIMEOUT,
    )?;
    let mut echo6 = EchoClient::connect(
        lab.client(),
        SERVER.ip(Family::V6),
        listener.port(),
        ECHO_TIMEOUT,
    )?;
    assert_eq!(echo4.exchange("before v4")?, "before v4");
    assert_eq!(echo6.exchange("before v6")?, "before v6");

    let fw = lab.attach(&["--force"])?;
    let flows = fw.flows_json()?;
    let seeded = flows
        .iter()
        .filter(|f| {
            // The client connected to the listener: it sent the SYN.
            f["origin"] == "seeded" && f["direction"] == "in" && f["dst_port"] == listener.port()
        })
        .count();
    assert!(seeded >= 2, "echo connections not seeded: {flows}");

    for round in 0..3 {
        let text = format!("after attach {round}");
        assert_eq!(echo4.exchange(&text)?, text, "v4");
        assert_eq!(echo6.exchange(&text)?, text, "v6");
    }
    // The old FTP control connection is still parsed: PASV and EPSV made
    // on it after attach open data connections.
    session.pasv()?;
    assert_eq!(session.retr(SMALL_FILE)?, small, "PASV after attach");
    session.epsv()?;
    assert_eq!(session.retr(SMALL_FILE)?, small, "EPSV after attach");
    session.quit()?;

    // ...while a *new* connection to the echo port is not let in.
    let r = tcp_connect(lab.client(), SERVER.ip(Family::V4), listener.port(), PROBE)?;
    assert_eq!(r, ConnectResult::TimedOut, "new connection after attach");
    let c = fw.counters()?;
    assert!(c.get(Counter::ExpectPasv) >= 1, "{c}");
    assert!(c.get(Counter::ExpectEpsv) >= 1, "{c}");
    Ok(())
}

// ---------------------------------------------------------------------------
// 8. Detach.

#[test]
fn detach_restores_unprotected_behaviour() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let listener = EchoServer::start(lab.server(), "::", UNANNOUNCED_PORT)?;
    let server_ip = SERVER.ip(Family::V4);
    let mut fw = lab.attach(&["--force"])?;
    assert!(
        xdp_attached(lab.server(), LAB_IFACE)?,
        "no XDP program after attach"
    );
    // Kernel objects that must all be gone after detach: both programs and
    // their links (the tcx egress link is only visible through its id).
    let objects = fw.kernel_objects()?;
    for &(kind, id) in &objects {
        assert!(
            kernel_object_exists(lab.server(), kind, id)?,
            "{kind} {id} not found while attached"
        );
    }

    let mut session = FtpSession::open(lab.client(), &server.target(server_ip))?;
    let port = session.pasv()?;
    for p in [listener.port(), port] {
        let r = tcp_connect(lab.intruder(), server_ip, p, PROBE)?;
        assert_eq!(r, ConnectResult::TimedOut, "port {p} while attached");
    }

    let out = fw.detach_now()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "detach: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("detached"), "{stdout}");
    assert!(
        !fw.pin_dir().exists(),
        "{} still exists",
        fw.pin_dir().display()
    );
    let link = lab
        .server()
        .run_ok(&["ip", "-d", "link", "show", "dev", LAB_IFACE])?;
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(!link.contains("prog/xdp"), "XDP still attached: {link}");
    // Nothing holds the links and programs any more, so the kernel frees
    // them (programs asynchronously, hence the bounded wait).
    for &(kind, id) in &objects {
        let gone = wait_until(Duration::from_secs(5), || {
            Ok(!kernel_object_exists(lab.server(), kind, id)?)
        })?;
        assert!(gone, "{kind} {id} still exists after detach");
    }

    // The ports are reachable again, also the one announced while attached.
    for p in [listener.port(), port] {
        let r = tcp_connect(lab.intruder(), server_ip, p, PROBE)?;
        assert_eq!(r, ConnectResult::Connected, "port {p} after detach");
    }
    let status = ftpct_run(
        lab.server(),
        &[
            "status".as_ref(),
            "--json".as_ref(),
            "--pin-root".as_ref(),
            lab.pin_root().as_os_str(),
        ],
    )?;
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "status after detach: {text}");
    let value: Value = serde_json::from_str(&text).context(text.to_string())?;
    assert_eq!(value, Value::Array(Vec::new()), "status after detach");
    drop(session);
    Ok(())
}

// ---------------------------------------------------------------------------
// 9. Pinned objects are readable with bpftool, with field names.

#[test]
fn bpftool_shows_pinned_maps_with_field_names() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let fw = lab.attach(&[])?;
    let dir = fw.pin_dir();
    let pinned = |name: &str| dir.join(name).display().to_string();
    let bpftool = |args: &[&str]| -> Result<String> {
        let out = lab.server().run_ok(args)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };

    let mut session = FtpSession::open(lab.client(), &server.target(SERVER.ip(Family::V4)))?;
    let port = session.epsv()?;
    let expect = bpftool(&["bpftool", "map", "dump", "pinned", &pinned("FTPCT_EXPECT")])?;
    for field in ["\"dport\"", "\"expires_ns\"", "\"src\"", "\"dst\""] {
        assert!(expect.contains(field), "{field} missing: {expect}");
    }
    assert!(
        expect.contains(&port.to_string()),
        "port {port} missing: {expect}"
    );
    let policy = bpftool(&["bpftool", "map", "dump", "pinned", &pinned("FTPCT_POLICY")])?;
    for field in ["\"expect_timeout_ns\"", "\"flow_timeout_ns\""] {
        assert!(policy.contains(field), "{field} missing: {policy}");
    }
    let ingress = bpftool(&["bpftool", "prog", "show", "pinned", &pinned("prog_ingress")])?;
    assert!(ingress.contains("xdp"), "{ingress}");
    let egress = bpftool(&["bpftool", "prog", "show", "pinned", &pinned("prog_egress")])?;
    assert!(egress.contains("sched_cls"), "{egress}");
    for name in [
        "FTPCT_PORTS",
        "FTPCT_FLOWS",
        "FTPCT_CONTROL",
        "FTPCT_COUNTERS",
        "link_ingress",
        "link_egress",
    ] {
        assert!(
            dir.join(name).exists(),
            "{name} not pinned in {}",
            dir.display()
        );
    }
    session.quit()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// 10. CLI errors.

/// `ftpct ARGS... --pin-root <lab pin root>` in the server namespace.
fn ftpct_in(lab: &Lab, args: &[&str]) -> Result<Output> {
    let mut argv: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    argv.push("--pin-root".as_ref());
    argv.push(lab.pin_root().as_os_str());
    ftpct_run(lab.server(), &argv)
}

#[test]
fn cli_rejects_bad_arguments_and_leaves_nothing() -> Result<()> {
    let lab = Lab::new()?;
    let cases: [(&[&str], &str); 6] = [
        (&["attach", "nosuch0"], "no such interface"),
        (
            &["attach", LAB_IFACE, "--data-ports", "5-1"],
            "--data-ports takes LO-HI",
        ),
        (
            &["attach", LAB_IFACE, "--data-ports", "abc"],
            "--data-ports takes LO-HI",
        ),
        (
            &["attach", LAB_IFACE, "--allow-ports", "70000"],
            "--allow-ports",
        ),
        (&["detach", LAB_IFACE], "not attached"),
        (&["detach", "nosuch0"], "not attached"),
    ];
    for (args, needle) in cases {
        let what = args.join(" ");
        let out = ftpct_in(&lab, args)?;
        assert_cli_error(&what, &out, 1, needle);
        lab.assert_nothing_attached(&what)?;
        assert!(
            !lab.pin_root().exists(),
            "{what}: {} created",
            lab.pin_root().display()
        );
    }
    // A clap usage error.
    let out = ftpct_in(&lab, &["attach", LAB_IFACE, "--no-such-flag"])?;
    assert_cli_error("unknown flag", &out, 2, "--no-such-flag");
    lab.assert_nothing_attached("unknown flag")?;
    Ok(())
}

#[test]
fn cli_needs_root() -> Result<()> {
    let lab = Lab::new()?;
    let bin = ftpct_bin().display().to_string();
    let root = lab.pin_root().display().to_string();
    let as_nobody = |args: &[&str]| -> Result<Output> {
        let mut argv = vec![
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            &bin,
        ];
        argv.extend_from_slice(args);
        lab.server().run(&argv)
    };
    let unprivileged = |args: &[&str]| -> Result<Output> {
        let mut argv = args.to_vec();
        argv.extend_from_slice(&["--pin-root", &root]);
        as_nobody(&argv)
    };
    let out = unprivileged(&["attach", LAB_IFACE])?;
    assert_cli_error("attach as nobody", &out, 1, "needs root");
    lab.assert_nothing_attached("attach as nobody")?;
    assert!(!lab.pin_root().exists(), "pin root created by nobody");
    let refusal = String::from_utf8_lossy(&out.stderr).replace("ftpct attach", "ftpct COMMAND");

    // Detach as nobody does not remove a real attachment.
    let fw = lab.attach(&[])?;
    let out = unprivileged(&["detach", LAB_IFACE])?;
    assert_cli_error("detach as nobody", &out, 1, "needs root");
    assert!(fw.pin_dir().exists(), "pins removed by nobody");
    assert!(xdp_attached(lab.server(), LAB_IFACE)?, "detached by nobody");

    // Every command using pins, reading ones too, says the same.
    for args in pin_commands() {
        let out = unprivileged(&args)?;
        let what = format!("{} as nobody", args.join(" "));
        assert_cli_error(&what, &out, 1, "needs root");
        let stderr = String::from_utf8_lossy(&out.stderr)
            .replace(&format!("ftpct {}", args[0]), "ftpct COMMAND");
        assert_eq!(stderr, refusal, "{what}");
    }
    // The daemon (its pin root is in its configuration) says the same.
    let out = as_nobody(&["daemon", "--config", "/nonexistent/ftpct.toml"])?;
    let stderr = String::from_utf8_lossy(&out.stderr).replace("ftpct daemon", "ftpct COMMAND");
    assert_eq!(stderr, refusal, "daemon as nobody");
    // `check` (which takes no --pin-root) says it in its privileges line.
    let out = as_nobody(&["check"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = refusal.trim().trim_start_matches("ftpct: ");
    assert!(
        stdout.contains(&line.replace("ftpct COMMAND", "ftpct attach")),
        "check as nobody: {stdout}"
    );
    assert!(xdp_attached(lab.server(), LAB_IFACE)?, "detached by nobody");
    fw.detach()?;
    Ok(())
}

/// Every command that reads or writes pins, with valid arguments.
fn pin_commands() -> [Vec<&'static str>; 10] {
    [
        vec!["attach", LAB_IFACE],
        vec!["run", LAB_IFACE],
        vec!["detach", LAB_IFACE],
        vec!["set", LAB_IFACE, "--expect-timeout", "5"],
        vec!["flush", LAB_IFACE, "counters"],
        vec!["status"],
        vec!["flows"],
        vec!["expectations"],
        vec!["events"],
        vec!["upgrade", LAB_IFACE],
    ]
}

#[test]
fn cli_refuses_second_attach_and_double_detach() -> Result<()> {
    let lab = Lab::new()?;
    let mut fw = lab.attach(&[])?;
    assert!(
        fw.attach_output()
            .starts_with(&format!("ftpct: guarding {LAB_IFACE}")),
        "{}",
        fw.attach_output()
    );
    let status = fw.status_json()?;
    let ids = (
        status[0]["ingress_prog_id"].clone(),
        status[0]["egress_prog_id"].clone(),
    );

    let out = ftpct_in(&lab, &["attach", LAB_IFACE])?;
    assert_cli_error("second attach", &out, 1, "already attached");
    // The first attachment is untouched.
    assert!(xdp_attached(lab.server(), LAB_IFACE)?);
    let status = fw.status_json()?;
    assert_eq!(
        (
            status[0]["ingress_prog_id"].clone(),
            status[0]["egress_prog_id"].clone()
        ),
        ids,
        "{status}"
    );

    let out = fw.detach_now()?;
    assert!(out.status.success(), "first detach: {out:?}");
    let out = ftpct_in(&lab, &["detach", LAB_IFACE])?;
    assert_cli_error("second detach", &out, 1, "not attached");
    lab.assert_nothing_attached("after detach")?;
    Ok(())
}

#[test]
fn cli_refuses_ip_netns_exec_with_default_pin_root() -> Result<()> {
    let lab = Lab::new()?;
    let in_ip_netns_exec = |args: &[&str]| {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", lab.server().name()])
            .arg(ftpct_bin())
            .args(args)
            .env_remove("FTPCT_PIN_ROOT");
        run_with_timeout(cmd, Duration::from_secs(30))
    };
    // Every command using pins refuses alike: reading ones would see the
    // private /sys's empty directory and call the host unguarded.
    let mut first: Option<String> = None;
    for args in pin_commands() {
        let what = format!("ip netns exec ftpct {}", args.join(" "));
        let out = in_ip_netns_exec(&args)?;
        assert_cli_error(&what, &out, 1, "ip netns exec");
        assert_cli_error(&what, &out, 1, "nsenter");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            first.get_or_insert_with(|| stderr.clone()),
            &stderr,
            "{what}"
        );
    }
    ensure!(
        !xdp_attached(lab.server(), LAB_IFACE)?,
        "XDP attached from ip netns exec"
    );
    // `check` says it in a line of its own.
    let out = in_ip_netns_exec(&["check"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let message = first.unwrap_or_default();
    ensure!(
        stdout.contains(message.trim().trim_start_matches("ftpct: ")),
        "check in ip netns exec: {stdout}"
    );
    Ok(())
}

#[test]
fn attach_warns_of_doubtful_options_and_still_guards() -> Result<()> {
    let lab = Lab::new()?;
    let fw = lab.attach(&["--control-ports", "21,21", "--data-ports", "1000-65535"])?;
    let warnings: Vec<&str> = fw
        .attach_stderr()
        .lines()
        .filter(|l| l.starts_with("ftpct: warning: "))
        .collect();
    ensure!(
        warnings.len() == 2
            && warnings[0].contains("--control-ports lists 21 more than once")
            && warnings[1].contains("--data-ports 1000-65535 guards well-known ports (1000-1023)"),
        "{}",
        fw.attach_stderr()
    );
    let status = fw.status_json()?;
    ensure!(
        status[0]["guarded"] == true
            && status[0]["control_ports"] == "21"
            && status[0]["guarded_ports"] == "1000-65535",
        "{status}"
    );
    Ok(())
}

/// Devices without an Ethernet header (tun, ipip, loopback): the programs
/// would misread every packet and pass it, so attach refuses them before
/// loading anything.
#[test]
fn attach_refuses_interfaces_without_ethernet() -> Result<()> {
    let lab = Lab::new()?;
    let server = lab.server();
    server.run_ok(&["ip", "tuntap", "add", "dev", "tun0", "mode", "tun"])?;
    server.run_ok(&["ip", "link", "set", "tun0", "up"])?;
    let mut cases = vec![("tun0", "link type 65534"), ("lo", "link type 772")];
    // ipip is a module many kernels lack; tun and lo are always tested.
    let ipip = server.run(&[
        "ip",
        "link",
        "add",
        "ipip0",
        "type",
        "ipip",
        "local",
        "198.18.0.1",
        "remote",
        "198.18.0.3",
    ])?;
    if ipip.status.success() {
        cases.push(("ipip0", "link type 768"));
    } else {
        eprintln!(
            "no ipip device in this kernel ({}); testing tun and lo",
            String::from_utf8_lossy(&ipip.stderr).trim()
        );
    }
    for (iface, link_type) in cases {
        let what = format!("attach {iface}");
        let out = ftpct_in(&lab, &["attach", iface])?;
        assert_cli_error(&what, &out, 1, "not an Ethernet device");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(iface) && stderr.contains(link_type),
            "{what}: {stderr}"
        );
        let link = server.run_ok(&["ip", "-d", "link", "show", "dev", iface])?;
        let link = String::from_utf8_lossy(&link.stdout);
        assert!(!link.contains("prog/xdp"), "{what}: XDP attached: {link}");
        lab.assert_nothing_attached(&what)?;
        assert!(
            !lab.pin_root().exists(),
            "{what}: {} created",
            lab.pin_root().display()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Attach options: data range, allowed ports, expectation lifetime.

#[test]
fn attach_options_take_effect() -> Result<()> {
    let lab = Lab::new()?;
    let options = ServerOptions {
        pasv_ports: 40020..=40029,
        ..ServerOptions::default()
    };
    let server = Vsftpd::start_with(lab.server(), options)?;
    let small = server.tree().digest(SMALL_FILE)?;
    let guarded = EchoServer::start(lab.server(), "::", 40030)?;
    let allowed = EchoServer::start(lab.server(), "::", 40010)?;
    let outside = EchoServer::start(lab.server(), "::", 40070)?;
    let fw = Ftpct::attach(
        lab.server(),
        LAB_IFACE,
        &[
            "--force",
            "--data-ports",
            "40000-40049",
            "--allow-ports",
            "40010",
            "--expect-timeout",
            "1",
        ],
        lab.pin_root(),
    )?;
    let status = fw.status_json()?;
    let entry = &status[0];
    assert_eq!(entry["expect_timeout_secs"], 1, "{entry}");
    let ranges = entry["guarded_ports"].as_str().unwrap_or_default();
    assert!(
        ranges.contains("40000-40009") && ranges.contains("40011-40049"),
        "guarded_ports: {entry}"
    );
    assert!(!ranges.contains("65535"), "guarded_ports: {entry}");

    let server_ip = SERVER.ip(Family::V4);
    for (listener, want) in [
        (&allowed, ConnectResult::Connected),
        (&outside, ConnectResult::Connected),
        (&guarded, ConnectResult::TimedOut),
    ] {
        let r = tcp_connect(lab.intruder(), server_ip, listener.port(), PROBE)?;
        assert_eq!(r, want, "port {}", listener.port());
    }

    // An announcement expires after one second.
    let mut session = FtpSession::open(lab.client(), &server.target(server_ip))?;
    let port = session.pasv()?;
    let rows = fw.expectations_json()?;
    let row = find_expectation(&rows, CLIENT.ip(Family::V4), server_ip, port)
        .with_context(|| format!("no expectation for {port}: {rows}"))?;
    let expires = row["expires_in_secs"].as_f64().unwrap_or(-1.0);
    assert!(expires > 0.0 && expires <= 1.0, "{row}");
    thread::sleep(Duration::from_millis(2000));
    let before = fw.counters()?;
    let r = tcp_connect(lab.client(), server_ip, port, PROBE)?;
    assert_eq!(r, ConnectResult::TimedOut, "expired announcement");
    let after = fw.counters()?;
    assert!(
        after.since(&before, Counter::SynExpired) >= 1,
        "expired announcement: {after}"
    );
    // A fresh announcement used at once works.
    session.pasv()?;
    assert_eq!(session.retr(SMALL_FILE)?, small);
    session.quit()?;
    Ok(())
}

/// Expired, never used announcements must not use up the expectation
/// table: once they have expired, new announcements still get in.
#[test]
fn expired_expectations_do_not_fill_the_table() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let small = server.tree().digest(SMALL_FILE)?;
    let server_ip = SERVER.ip(Family::V4);
    let fw = Ftpct::attach(
        lab.server(),
        LAB_IFACE,
        // Two seconds: four PASV round trips on a loaded machine took over
        // one, and an entry expired before the table was full.
        &["--max-expectations", "4", "--expect-timeout", "2"],
        lab.pin_root(),
    )?;
    // Four distinct announcements the client never uses.
    let mut session = FtpSession::open(lab.client(), &server.target(server_ip))?;
    let mut ports = Vec::new();
    for _ in 0..40 {
        let port = session.pasv()?;
        if !ports.contains(&port) {
            ports.push(port);
        }
        if ports.len() == 4 {
            break;
        }
    }
    assert_eq!(ports.len(), 4, "vsftpd kept announcing {ports:?}");
    assert_eq!(fw.expectations_json()?.len(), 4);
    thread::sleep(Duration::from_millis(3000));

    // A fresh announcement, used at once.
    let mut fresh = None;
    for _ in 0..40 {
        let port = session.pasv()?;
        if !ports.contains(&port) {
            fresh = Some(port);
            break;
        }
    }
    let port = fresh.context("vsftpd announced no new port")?;
    let rows = fw.expectations_json()?;
    let counters = fw.counters()?;
    assert!(
        find_expectation(&rows, CLIENT.ip(Family::V4), server_ip, port).is_some(),
        "no expectation for the new port {port} while the table holds only expired \
         entries: {rows}; {counters}"
    );
    session.connect()?;
    assert_eq!(session.retr(SMALL_FILE)?, small);
    session.quit()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// 11. Other servers.

/// Where a server's active-mode data connections come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ActiveSource {
    /// An ephemeral (guarded) port: ftpct tracks an outbound flow.
    Ephemeral,
    /// Port 20, which is not guarded: its packets pass as `passed_other`.
    Port20,
}

/// One passive and one active IPv4 download through ftpct.
fn other_server<S: FtpServer>(lab: &Lab, server: &S, active: ActiveSource) -> Result<()> {
    let fw = lab.attach(&[])?;
    let name = server.name();
    let small = server.tree().digest(SMALL_FILE)?;
    let target = server.target(SERVER.ip(Family::V4));
    for mode in [TransferMode::Pasv, TransferMode::Port] {
        let before = fw.counters()?;
        let got = curl_download(lab.client(), &target, SMALL_FILE, mode)
            .with_context(|| format!("{name} {mode:?}"))?;
        assert_eq!(got, small, "{name} {mode:?}");
        let after = fw.counters()?;
        let counter = match (mode.is_passive(), active) {
            (true, _) => Counter::ExpectPasv,
            (false, ActiveSource::Ephemeral) => Counter::FlowsOutbound,
            (false, ActiveSource::Port20) => Counter::PassedOther,
        };
        assert!(
            after.since(&before, counter) >= 1,
            "{name} {mode:?}: {counter:?}: {after}"
        );
    }
    let c: Counters = fw.counters()?;
    assert_eq!(c.get(Counter::SynDropped), 0, "{name}: {c}");
    assert_eq!(c.get(Counter::UntrackedDropped), 0, "{name}: {c}");
    Ok(())
}

#[test]
fn pure_ftpd_through_ftpct() -> Result<()> {
    let lab = Lab::new()?;
    let server = PureFtpd::start(lab.server())?;
    // pure-ftpd opens active data connections from port 20.
    other_server(&lab, &server, ActiveSource::Port20)
}

#[test]
fn proftpd_through_ftpct() -> Result<()> {
    let lab = Lab::new()?;
    let server = Proftpd::start(lab.server())?;
    other_server(&lab, &server, ActiveSource::Ephemeral)
}

#[test]
fn pyftpdlib_through_ftpct() -> Result<()> {
    let lab = Lab::new()?;
    let server = Pyftpdlib::start(lab.server())?;
    other_server(&lab, &server, ActiveSource::Ephemeral)
}

// `ftpct run`: foreground mode.

#[test]
fn foreground_run_logs_verdicts_and_detaches_on_sigterm() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let log = std::env::temp_dir().join(format!("ftpct-run-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let pin_root = lab.pin_root().to_path_buf();
    let argv = [
        ftpct_bin().into_os_string(),
        "run".into(),
        LAB_IFACE.into(),
        "--pin-root".into(),
        pin_root.clone().into_os_string(),
    ];
    let mut run = lab.server().spawn_logged(&argv, &log)?;
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = wait_until(Duration::from_secs(30), || {
        Ok(read_log().contains("guarding"))
    })?;
    ensure!(started, "ftpct run did not start: {}", read_log());
    let target = server.target(SERVER.ip(Family::V4));
    let got = curl_download(lab.client(), &target, SMALL_FILE, TransferMode::Epsv)?;
    assert_eq!(got, server.tree().digest(SMALL_FILE)?);
    let r = tcp_connect(
        lab.intruder(),
        SERVER.ip(Family::V4),
        UNANNOUNCED_PORT,
        PROBE,
    )?;
    assert_eq!(r, ConnectResult::TimedOut);

    ftpct_e2e::process::signal_pid(run.pid(), libc::SIGTERM);
    let status = run
        .wait_timeout(Duration::from_secs(15))?
        .context("ftpct run did not exit after SIGTERM")?;
    let text = read_log();
    assert!(status.success(), "exit {status}: {text}");
    assert!(text.contains("admitted SYN"), "{text}");
    assert!(text.contains("dropped SYN"), "{text}");
    assert!(text.contains("detached from"), "{text}");
    let dir = pin_dir(&pin_root, lab.server(), LAB_IFACE)?;
    assert!(!dir.exists(), "pins left behind in {}", dir.display());
    let link = lab
        .server()
        .run_ok(&["ip", "-d", "link", "show", LAB_IFACE])?;
    assert!(!String::from_utf8_lossy(&link.stdout).contains("prog/xdp"));
    let _ = std::fs::remove_file(&log);
    Ok(())
}
