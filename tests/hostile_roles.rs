//! Hostile end-to-end tests: which end of a connection ftpct takes for the
//! FTP client and which for the FTP server.
//!
//! The attacks here need no FTP server at all, only some service on the
//! guarded host that sends back what it is sent (an echo service, but any
//! service that quotes its input, e.g. in an error message, would do) on a
//! port outside the guarded range. The intruder connects to it *from source
//! port 21* and sends an active-mode command naming the server's own
//! address. If ftpct decides roles from port numbers alone, the echo leaving
//! the server towards "port 21" reads as a command of a local FTP client to
//! a remote FTP server, and the intruder, as that "server", is expected to
//! connect to the named port of the guarded host.
//!
//! Each test asserts the secure behaviour, so it fails while the attack
//! works.
//!
//! Needs root and a built ftpct (`FTPCT_BIN`, default
//! `target/release/ftpct`). Run:
//! `cargo test -p ftpct-e2e --test hostile_roles -- --test-threads=1`.

use std::time::Duration;

use anyhow::{Result, ensure};
use ftpct_e2e::clients::probe_all;
use ftpct_e2e::forge::{Sink, connect_from};
use ftpct_e2e::{ConnectResult, Counter, EchoServer, Family, INTRUDER, Lab, SERVER};

/// How long a probe waits before calling a connection attempt dropped.
const PROBE: Duration = Duration::from_secs(2);

/// The echo service's port: below the default guarded range (1024-65535),
/// so ftpct lets anybody reach it.
const ECHO_PORT: u16 = 900;

/// The source port the intruder connects from: the FTP control port.
const CONTROL_PORT: u16 = 21;

/// The server port the echoed `PORT` names (156 * 256 + 100).
const PORT_TARGET: u16 = 40036;

/// The server port the echoed `EPRT` names.
const EPRT_TARGET: u16 = 40037;

/// The attack over `family`: with an echo service on the server's
/// [`ECHO_PORT`] and a listener on `target`, the intruder connects to the
/// echo service from source port 21 and sends `line`; then it tries
/// `target` itself, which must stay closed to it.
fn echo_from_port_21_opens_nothing(family: Family, line: &str, target: u16) -> Result<()> {
    let lab = Lab::new()?;
    let _echo = EchoServer::start(lab.server(), "::", ECHO_PORT)?;
    let sink = Sink::start(lab.server(), "::", &target.to_string())?;
    let server_ip = SERVER.ip(family);
    let intruder_ip = INTRUDER.ip(family);
    let fw = lab.attach(&["--force"])?;

    // The guard is up: the data port is closed to the intruder.
    let r = probe_all(&[(lab.intruder(), server_ip, target)], PROBE)?;
    ensure!(
        r == [ConnectResult::TimedOut],
        "before the attack the intruder reached port {target}: {r:?}"
    );

    let before = fw.counters()?;
    let (r, echoed) = connect_from(
        lab.intruder(),
        server_ip,
        ECHO_PORT,
        CONTROL_PORT,
        PROBE,
        Some(line),
    )?;
    ensure!(
        r == ConnectResult::Connected && echoed.as_deref() == Some(line),
        "the echo service did not echo {line:?} to the intruder's port 21: {r:?}, {echoed:?}"
    );

    let rows = fw.expectations_json()?;
    let r = probe_all(&[(lab.intruder(), server_ip, target)], PROBE)?;
    let after = fw.counters()?;
    let intruder = intruder_ip.to_string();
    let intruders: Vec<_> = rows
        .iter()
        .filter(|row| row["src_addr"] == intruder.as_str())
        .collect();
    assert_eq!(
        r,
        [ConnectResult::TimedOut],
        "after its {line:?} came back from the echo service to its port 21, the intruder \
         connected to port {target} of the server (role confusion: the echo was taken for a \
         local FTP client's command); expectations then: {rows}; counters since: \
         expect_created_port +{}, expect_created_eprt +{}, syn_admitted +{}; listener: {}",
        after.since(&before, Counter::ExpectPort),
        after.since(&before, Counter::ExpectEprt),
        after.since(&before, Counter::SynAdmitted),
        sink.output().trim(),
    );
    assert!(
        intruders.is_empty(),
        "expectations letting the intruder in: {intruders:?}"
    );
    Ok(())
}

/// Attack: the intruder connects from source port 21 to an echo service on
/// the server (port 900, not guarded) and sends `PORT 198,18,0,1,156,100`
/// (the server's own address, port 40036); the echo leaves the server
/// towards port 21. Old ftpct took the echo for a local FTP client's `PORT`
/// (the control role came from the destination port alone), created an
/// expectation for the intruder (the "FTP server" of that connection) to
/// connect to port 40036, and the intruder's connection to 40036 passed.
/// Must: the intruder's connection to 40036 is dropped and no expectation
/// names the intruder.
#[test]
fn echoed_port_from_source_port_21_opens_nothing() -> Result<()> {
    let [hi, lo] = PORT_TARGET.to_be_bytes();
    echo_from_port_21_opens_nothing(
        Family::V4,
        &format!("PORT 198,18,0,1,{hi},{lo}\r\n"),
        PORT_TARGET,
    )
}

/// Attack: as above over IPv6, with `EPRT |2|2001:db8::1|40037|`. Old ftpct
/// created an `eprt` expectation for the intruder to connect to port 40037
/// and admitted its connection. Must: the connection is dropped and no
/// expectation names the intruder.
#[test]
fn echoed_eprt_from_source_port_21_opens_nothing_over_ipv6() -> Result<()> {
    echo_from_port_21_opens_nothing(
        Family::V6,
        &format!("EPRT |2|{}|{EPRT_TARGET}|\r\n", SERVER.v6),
        EPRT_TARGET,
    )
}
