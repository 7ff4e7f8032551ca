//! Hostile end-to-end tests: exhausting ftpct's tables.
//!
//! ftpct keeps three tables a remote host can fill: control-connection
//! state (`FTPCT_CONTROL`, an LRU of 16,384 entries), announced data
//! connections (`FTPCT_EXPECT`, a plain hash of `--max-expectations`
//! entries that refuses new ones when full) and tracked connections on
//! guarded ports (`FTPCT_FLOWS`, an LRU of `--max-flows` entries). Filling
//! one must not cost anybody else: neither a legitimate client's session or
//! transfer, nor the host's own connections.
//!
//! Each test asserts the secure behaviour, so it fails while the attack
//! works. Table fill (`ftpct status --json`) is printed along the way.
//!
//! Needs root and a built ftpct (`FTPCT_BIN`, default
//! `target/release/ftpct`). Run:
//! `cargo test -p ftpct-e2e --test hostile_tables -- --test-threads=1`.

use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, Ipv6Addr};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ftp_ebpf_common::policy::DEFAULT_EXPECT_TIMEOUT_SECS;
use ftpct_e2e::clients::curl_download;
use ftpct_e2e::forge::{PasvConnectFlood, churn, epsv_flood};
use ftpct_e2e::ftpct::row_endpoint;
use ftpct_e2e::servers::ServerOptions;
use ftpct_e2e::{
    CLIENT2, Counter, EchoClient, EchoServer, Family, FtpServer, FtpSession, Ftpct, INTRUDER,
    LAB_IFACE, Lab, Pyftpdlib, SERVER, SMALL_FILE, TransferMode,
};
use serde_json::Value;

/// This interface's entry of `ftpct status --json`.
fn status(fw: &Ftpct<'_>) -> Result<Value> {
    let all = fw.status_json()?;
    all.as_array()
        .and_then(|list| list.iter().find(|s| s["iface"] == fw.iface()))
        .cloned()
        .with_context(|| format!("{} missing from ftpct status: {all}", fw.iface()))
}

/// A table-fill field (`control_connections`, `flows`, `expectations`) of
/// `ftpct status --json`.
fn fill(fw: &Ftpct<'_>, field: &str) -> Result<u64> {
    let entry = status(fw)?;
    entry[field]
        .as_u64()
        .with_context(|| format!("no {field} in {entry}"))
}

// ---------------------------------------------------------------------------
// 1. Control-connection churn evicts a logged-in session.

/// Connect / greeting / RST cycles of the churn: more than the 16,384
/// entries of the control table.
const CHURN_CYCLES: u32 = 20_000;

/// Fewest greetings the churn must have drawn to mean anything: more than
/// the control table holds.
const CHURN_MIN_BANNERS: u64 = 17_000;

/// The churn's first source port: cycle N comes from port 20,000 + N, a
/// new 4-tuple each time. (Left to the kernel, connections from one address
/// to one port use only the even half of the ephemeral range, about 14,000
/// 4-tuples: fewer than the table holds.)
const CHURN_SPORT_BASE: u16 = 20_000;

/// Cycles in flight at once.
const CHURN_PARALLEL: u32 = 8;

/// Upper bound of the churn's wall time.
const CHURN_MAX: Duration = Duration::from_secs(70);

/// Attack: a legitimate client logs in to pyftpdlib (one process, fast at
/// accepting; no per-address limit, `max_cons_per_ip` is 0, and eight
/// connections at a time stay far below `max_cons`, 512) and stays idle.
/// The intruder, from one address, runs 20,000 cycles of: connect to port
/// 21 from a new source port, read the `220` greeting, abort with a RST
/// (`SO_LINGER` 0), eight at a time (about 2,000-4,000 cycles a second
/// here). The server's greeting creates control state in ftpct; the remote
/// RST never removes it (only the local end's FIN or RST does, and the
/// server's kernel sends nothing after a RST). So every cycle leaves an
/// entry, and the LRU table of 16,384 evicts the idle session's. ftpct then
/// misses the session's next `PASV`, the `227` arrives on fresh state as
/// an answer to nothing (`refused_uncorrelated`), no expectation is
/// created, and the client's data connection is dropped.
///
/// Current ftpct: `control_connections` goes from 1 to about 16,200 (the
/// table full of the churn's dead connections), and the session's
/// connection to the announced port times out after 10 s
/// (`refused_uncorrelated` +1, `syn_dropped` +7: the SYN and its
/// retransmissions).
///
/// Must: after the churn the session's `PASV` and data connection work on
/// the first try (and the transfer over it completes).
#[test]
fn unauthenticated_connection_churn_does_not_evict_a_logged_in_session() -> Result<()> {
    let lab = Lab::new()?;
    let server = Pyftpdlib::start(lab.server())?;
    let small = server.tree().digest(SMALL_FILE)?;
    let srv4 = SERVER.ip(Family::V4);
    let target = server.target(srv4);
    let fw = lab.attach(&[])?;

    let mut session = FtpSession::open(lab.client(), &target)?;
    session.pasv()?;
    ensure!(
        session.retr(SMALL_FILE)? == small,
        "the session's first transfer"
    );
    let control_before = fill(&fw, "control_connections")?;
    let before = fw.counters()?;

    let churned = churn(
        lab.intruder(),
        srv4,
        21,
        CHURN_CYCLES,
        CHURN_PARALLEL,
        CHURN_MAX,
        CHURN_SPORT_BASE,
    )?;
    let control_after = fill(&fw, "control_connections")?;
    println!(
        "churn from {}: {churned:?}; control_connections {control_before} -> {control_after}",
        INTRUDER.v4
    );
    ensure!(
        churned.banners >= CHURN_MIN_BANNERS,
        "the churn drew only {} greetings (of {CHURN_CYCLES} cycles, {:.0}/s): too few to \
         show anything: {churned:?}",
        churned.banners,
        churned.rate
    );

    let port = session.pasv()?;
    let tried = Instant::now();
    let connected = session.connect();
    let waited = tried.elapsed();
    let after = fw.counters()?;
    assert!(
        connected.is_ok(),
        "after {} connect/greeting/RST cycles from {} (control_connections {control_before} -> \
         {control_after}), the idle session's data connection to the announced port {port} \
         failed after {waited:.1?}: {:?}; since the churn: refused_uncorrelated +{}, \
         syn_dropped +{}, expectations created +{}; counters: {after}",
        churned.banners,
        INTRUDER.v4,
        connected.as_ref().err(),
        after.since(&before, Counter::RefusedUncorrelated),
        after.since(&before, Counter::SynDropped),
        after.since(&before, Counter::ExpectPasv),
    );
    assert_eq!(
        session.retr(SMALL_FILE)?,
        small,
        "the session's transfer after the churn"
    );
    // What held it: the intruder's budget of new control connections.
    assert!(
        after.since(&before, Counter::ControlClientLimit) > 0,
        "{after}"
    );
    session.quit()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// 2. An expectation flood from many IPv6 /64s blocks an IPv4 client.

/// Source /64s of the flood: `2001:db8:0:N::99` for N in 0x100.. (inside the
/// lab's 2001:db8::/32, outside its on-link 2001:db8::/64).
const V6_SOURCES: u16 = 512;

/// Capacity of the expectation table in the flood test (the default is
/// 65,536: 512 /64s at the default per-client cap of 128 fill it exactly;
/// a table 8 times smaller keeps the test fast).
const FLOOD_TABLE: u32 = 8_192;

/// Per-connection cap in the flood test (the highest allowed, for fewer
/// control connections).
const FLOOD_PER_CONN: u32 = 8;

/// Control connections per source address: 512 x 3 x 8 = 12,288
/// announcements, half again the table's capacity.
const FLOOD_CONNS_PER_SOURCE: u32 = 3;

/// Control connections of the flood in flight at once.
const FLOOD_PARALLEL: u32 = 16;

/// Upper bound of the flood's wall time.
const FLOOD_MAX: Duration = Duration::from_secs(40);

/// Passive ports of the server in the flood tests: wide, so that few of a
/// client address's announcements name the same port (which would take
/// over one expectation rather than add one, and leave one data connection
/// without an expectation).
const WIDE_PASV_PORTS: std::ops::RangeInclusive<u16> = 20_000..=59_999;

/// How long an expectation lives.
const EXPECT_TIMEOUT: Duration = Duration::from_secs(DEFAULT_EXPECT_TIMEOUT_SECS);

/// The flood's `i`th source address.
fn v6_source(i: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0x100 + i, 0, 0, 0, 0x99)
}

/// Gives the intruder [`V6_SOURCES`] addresses, one per /64, and the server
/// a route to them. The lab puts every host on one link, 2001:db8::/64, and
/// routes nothing else; the server reaches the other /64s of 2001:db8::/32
/// through the intruder (one neighbour entry, not 512).
fn add_v6_sources(lab: &Lab) -> Result<Vec<IpAddr>> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let batch = dir.path().join("addrs.batch");
    let mut text = String::new();
    for i in 0..V6_SOURCES {
        writeln!(
            text,
            "address add {}/128 dev {LAB_IFACE} nodad",
            v6_source(i)
        )?;
    }
    fs::write(&batch, text).context("writing the address batch")?;
    let batch = batch.display().to_string();
    lab.intruder().run_ok(&["ip", "-6", "-batch", &batch])?;
    let via = INTRUDER.v6.to_string();
    lab.server().run_ok(&[
        "ip",
        "-6",
        "route",
        "add",
        "2001:db8::/32",
        "via",
        &via,
        "dev",
        LAB_IFACE,
    ])?;
    Ok((0..V6_SOURCES).map(|i| IpAddr::V6(v6_source(i))).collect())
}

/// Attack: the intruder has 512 IPv6 addresses in 512 different /64s
/// (2001:db8:0:100::99 ... 2001:db8:0:2ff::99). ftpct is attached with
/// `--max-expectations 8192 --max-expect-per-conn 8`: the table scaled down
/// 8 times from its default of 65,536 (which is 512 /64s x the default
/// per-/64 cap of 128: the same flood, 8 times longer, fills it the same
/// way), to keep the test fast. From each address, three control
/// connections log in to pyftpdlib, send `EPSV` eight times each and close
/// (closed connections keep pyftpdlib far below its `max_cons` of 512; it
/// has no per-address limit): 12,288 announcements in about 8 s, 24 per
/// /64, far below the per-/64 cap of 128. When expectations outlived their
/// control connection, the table filled and stayed full for their 60 s,
/// and an IPv4 client's passive download (curl, `PASV`) got its `227` but
/// not its expectation (`refused_expect_map_full` +4,095; curl failed
/// after its 5 s connect timeout). The per-/48 cap came to hold such a
/// flood; now the announcements of a session that ended end with it, and
/// the table never fills.
///
/// Must: the IPv4 client's transfer succeeds after the flood.
#[test]
fn expectation_table_flood_from_many_ipv6_64s_does_not_block_an_ipv4_client() -> Result<()> {
    let lab = Lab::new()?;
    let server = Pyftpdlib::start_with(
        lab.server(),
        ServerOptions {
            pasv_ports: WIDE_PASV_PORTS,
            ..ServerOptions::default()
        },
    )?;
    let small = server.tree().digest(SMALL_FILE)?;
    let srv4 = SERVER.ip(Family::V4);
    let srv6 = SERVER.ip(Family::V6);
    let sources = add_v6_sources(&lab)?;
    let table = FLOOD_TABLE.to_string();
    let per_conn = FLOOD_PER_CONN.to_string();
    let fw = lab.attach(&[
        "--max-expectations",
        &table,
        "--max-expect-per-conn",
        &per_conn,
    ])?;

    // The IPv4 client's download works before the flood.
    let target = server.target(srv4);
    ensure!(
        curl_download(lab.client(), &target, SMALL_FILE, TransferMode::Pasv)? == small,
        "the IPv4 client's download before the flood"
    );
    let before = fw.counters()?;

    let started = Instant::now();
    let flood = epsv_flood(
        lab.intruder(),
        srv6,
        &sources,
        FLOOD_CONNS_PER_SOURCE,
        FLOOD_PER_CONN,
        FLOOD_PARALLEL,
        FLOOD_MAX,
    )?;
    let expectations = fill(&fw, "expectations")?;
    let after_flood = fw.counters()?;
    println!(
        "EPSV flood from {} /64s: {flood:?}; expectations {expectations} of {FLOOD_TABLE}; \
         refused_expect_map_full +{}, refused_client_limit +{}",
        sources.len(),
        after_flood.since(&before, Counter::RefusedExpectFull),
        after_flood.since(&before, Counter::RefusedClientLimit),
    );
    ensure!(
        flood.errors == 0,
        "{} of the flood's control connections failed (first: {:?}): {flood:?}",
        flood.errors,
        flood.first_error
    );
    ensure!(
        flood.epsv_229 > u64::from(FLOOD_TABLE),
        "the server answered only {} EPSVs with 229: too few to fill a table of {FLOOD_TABLE}",
        flood.epsv_229
    );
    // Every expectation of the flood was created after `started`, so none
    // has expired (and been swept to make room) before then + 60 s.
    ensure!(
        started.elapsed() + Duration::from_secs(10) < EXPECT_TIMEOUT,
        "the flood took {:.1?}: its expectations start expiring before the IPv4 client could \
         show anything",
        started.elapsed()
    );

    let tried = Instant::now();
    let got = curl_download(lab.client(), &target, SMALL_FILE, TransferMode::Pasv);
    let waited = tried.elapsed();
    let after = fw.counters()?;
    assert!(
        got.as_ref().is_ok_and(|d| *d == small),
        "with the expectation table held by an EPSV flood from {} IPv6 /64s ({} 229s, \
         expectations {expectations} of {FLOOD_TABLE}, refused_expect_map_full +{} during the \
         flood), the IPv4 client's PASV download failed after {waited:.1?}: {:?}; during it: \
         refused_expect_map_full +{}, syn_dropped +{}; counters: {after}",
        sources.len(),
        flood.epsv_229,
        after_flood.since(&before, Counter::RefusedExpectFull),
        got.as_ref().err(),
        after.since(&after_flood, Counter::RefusedExpectFull),
        after.since(&after_flood, Counter::SynDropped),
    );
    // What kept the table free: each flood session ended (the server
    // closed it), and its unused announcements went with it. A flood whose
    // sessions stay open is held by the per-/48 cap (`table_budgets`).
    assert!(
        after_flood.since(&before, Counter::ExpectDroppedControlClosed) > 0,
        "{after_flood}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. A flood of admitted flows evicts the host's own connection.

/// Capacity of the flow table in the flow-flood test.
const SMALL_FLOWS: u32 = 256;

/// The echo listener's port in client2.
const ECHO_PORT: u16 = 7000;

/// `PASV`s of the flood (each an admitted SYN and a flow): many times the
/// flow table's capacity, and enough to last several seconds (about
/// 2,000 a second here), so the host's connection exchanges lines while
/// the flood runs.
const FLOW_FLOOD_PASV: u32 = 16_000;

/// Control connections of the flow flood.
const FLOW_FLOOD_PARALLEL: u32 = 4;

/// Upper bound of the flow flood's wall time.
const FLOW_FLOOD_MAX: Duration = Duration::from_secs(40);

/// How long an echo may take before the host's connection counts as
/// stalled.
const ECHO_TIMEOUT: Duration = Duration::from_secs(3);

/// Attack: ftpct is attached with `--max-flows 256`. The server host has
/// its own long-lived connection: a TCP client in the server namespace
/// connected to an echo listener in client2 (port 7000), from an ephemeral
/// local port, which is in the guarded range 1024-65535; ftpct recorded its
/// flow from the outgoing SYN. It exchanges a line every second. Meanwhile
/// a client sends 16,000 `PASV`s to pyftpdlib over four control
/// connections (four pipelined at a time) and connects to every announced
/// port: each SYN consumes its expectation and becomes a flow (the server
/// refuses three of every four, it listens only on the last port announced,
/// but the flow is recorded either way). About 2,000 new flows a second
/// turn the LRU table of 256 over several times between two exchanges, so
/// being in use does not save the host's connection: its flow is evicted,
/// the echo's replies arrive at a guarded port with no flow and are dropped
/// (`untracked_dropped`), and the exchange stalls for good (only an
/// outgoing SYN records a flow again).
///
/// Current ftpct: the flow is gone within the first second of the flood;
/// the first exchange during the flood times out (3 s), `untracked_dropped`
/// +9 to +11 (the echo and its retransmissions), the flow table holds
/// 160-230 of the flood's flows.
///
/// Must: the host's own connection keeps working throughout.
#[test]
fn admitted_flow_flood_does_not_evict_the_hosts_own_connections() -> Result<()> {
    let lab = Lab::new()?;
    let server = Pyftpdlib::start_with(
        lab.server(),
        ServerOptions {
            pasv_ports: WIDE_PASV_PORTS,
            ..ServerOptions::default()
        },
    )?;
    let srv4 = SERVER.ip(Family::V4);
    let target = server.target(srv4);
    let flows = SMALL_FLOWS.to_string();
    let fw = lab.attach(&["--max-flows", &flows])?;

    let _echo_server = EchoServer::start(lab.client2(), "::", ECHO_PORT)?;
    let mut echo = EchoClient::connect(
        lab.server(),
        CLIENT2.ip(Family::V4),
        ECHO_PORT,
        ECHO_TIMEOUT,
    )?;
    ensure!(echo.exchange("before")? == "before", "first echo");
    let remote = format!("{}:{ECHO_PORT}", CLIENT2.v4);
    let rows = fw.flows_json()?;
    let own = rows
        .iter()
        .find(|r| r["direction"] == "out" && row_endpoint(r, "dst").as_ref() == Some(&remote))
        .cloned();
    println!("the host's own connection: {own:?}");
    ensure!(
        own.is_some(),
        "no flow for the host's connection to {remote}: {rows}"
    );
    let before = fw.counters()?;

    let flood = PasvConnectFlood::start(
        lab.client(),
        &target,
        FLOW_FLOOD_PASV,
        4,
        FLOW_FLOOD_PARALLEL,
        FLOW_FLOOD_MAX,
    )?;
    let started = Instant::now();
    let mut exchanges = 0u32;
    let mut failure = None;
    loop {
        thread::sleep(Duration::from_secs(1));
        let over = flood.done() || started.elapsed() > FLOW_FLOOD_MAX + Duration::from_secs(5);
        let text = format!("line {exchanges}");
        match echo.exchange(&text) {
            Ok(back) if back == text => exchanges += 1,
            other => {
                failure = Some((started.elapsed(), format!("{other:?}")));
                break;
            }
        }
        if over {
            break;
        }
    }
    let after = fw.counters()?;
    let table = fill(&fw, "flows")?;
    let own_now = fw
        .flows_json()?
        .iter()
        .find(|r| r["direction"] == "out" && row_endpoint(r, "dst").as_ref() == Some(&remote))
        .cloned();
    let (outcome, summary) = if flood.done() || failure.is_none() {
        let outcome = flood.finish(Duration::from_secs(30))?;
        let summary = format!("{outcome:?}");
        (Some(outcome), summary)
    } else {
        (None, format!("stopped early: {}", flood.stop().trim()))
    };
    println!(
        "flow flood: {summary}; flows {table} of {SMALL_FLOWS}; syn_admitted +{}, \
         untracked_dropped +{}, flow_map_full +{}; the host's connection now: {own_now:?}",
        after.since(&before, Counter::SynAdmitted),
        after.since(&before, Counter::UntrackedDropped),
        after.since(&before, Counter::FlowMapFull),
    );
    if let Some((when, what)) = failure {
        panic!(
            "{when:.1?} into a flood of admitted data connections ({} admitted SYNs so far, \
             flow table of {SMALL_FLOWS}), after {exchanges} good exchanges, the host's own \
             connection to {remote} stalled: {what}; its flow: {own_now:?}; \
             untracked_dropped +{}; counters: {after}",
            after.since(&before, Counter::SynAdmitted),
            after.since(&before, Counter::UntrackedDropped),
        );
    }
    // What the server announced does not depend on ftpct: enough to turn
    // the flow table over many times, whatever ftpct made of it.
    let announced = outcome.map_or(0, |o| o.announced);
    ensure!(
        announced > 4 * u64::from(SMALL_FLOWS),
        "the server announced only {announced} ports: too few to show anything ({summary})"
    );
    assert_eq!(echo.exchange("after")?, "after", "echo after the flood");
    Ok(())
}
