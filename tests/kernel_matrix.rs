//! The end-to-end subset the kernel matrix (`cargo xtask test-kernels`) runs
//! inside a qemu guest of each Debian kernel, and the host runs with the other
//! e2e suites: what must hold on any kernel ftpct accepts. ftpct guards the
//! lab server's `eth0` while vsftpd serves curl in every data mode over both
//! families, an intruder's SYN to a port nobody announced is dropped (it
//! connects without ftpct), FTPS is inspected through the server's TLS
//! library (uprobes and the TCP read tracepoint, whose BTF offsets and
//! event format differ across kernels), and detach leaves no pins, links,
//! programs or XDP behind.
//!
//! Needs root and a built ftpct (`FTPCT_BIN`, default
//! `target/release/ftpct`). Run:
//! `cargo test -p ftpct-e2e --test kernel_matrix`.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ftpct_e2e::clients::{curl_download, tcp_connect};
use ftpct_e2e::forge::xdp_attached;
use ftpct_e2e::ftpct::kernel_object_exists;
use ftpct_e2e::process::wait_until;
use ftpct_e2e::{
    ConnectResult, Counter, EchoServer, Family, FtpServer, LAB_IFACE, Lab, SERVER, SMALL_FILE,
    ServerOptions, Tls, TransferMode, Vsftpd,
};

/// How long a probe waits before calling a connection attempt dropped.
const PROBE: Duration = Duration::from_secs(3);

/// A port in the guarded range that no FTP server announces here.
const UNANNOUNCED_PORT: u16 = 40050;

/// The modes that differ on the wire: over IPv6 curl sends EPSV for PASV and
/// EPRT for PORT.
const TRANSFERS: [(Family, TransferMode); 5] = [
    (Family::V4, TransferMode::Pasv),
    (Family::V4, TransferMode::Epsv),
    (Family::V4, TransferMode::Port),
    (Family::V6, TransferMode::Epsv),
    (Family::V6, TransferMode::Eprt),
];

#[test]
fn transfers_in_every_mode_pass_through_ftpct() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let fw = lab.attach(&[])?;
    let small = server.tree().digest(SMALL_FILE)?;
    let start = fw.counters()?;
    for (family, mode) in TRANSFERS {
        let what = format!("curl {mode:?} over {family:?}");
        let before = fw.counters()?;
        let target = server.target(SERVER.ip(family));
        let got = curl_download(lab.client(), &target, SMALL_FILE, mode).context(what.clone())?;
        ensure!(got == small, "{what}: wrong content");
        let after = fw.counters()?;
        // Passive: ftpct admitted the client's SYN. Active: the server's
        // own connection out is tracked as an outbound flow.
        let evidence = if mode.is_passive() {
            Counter::SynAdmitted
        } else {
            Counter::FlowsOutbound
        };
        ensure!(
            after.since(&before, evidence) >= 1,
            "{what}: no {evidence:?}: {after}"
        );
    }
    let end = fw.counters()?;
    for dropped in [Counter::SynDropped, Counter::UntrackedDropped] {
        ensure!(
            end.since(&start, dropped) == 0,
            "legitimate traffic dropped ({dropped:?}): {end}"
        );
    }
    Ok(())
}

#[test]
fn ftps_is_inspected_on_this_kernel() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    let fw = lab.attach(&[])?;
    let small = server.tree().digest(SMALL_FILE)?;
    let target = server.target(SERVER.ip(Family::V4));
    for mode in [TransferMode::Pasv, TransferMode::Epsv] {
        let got = curl_download(lab.client(), &target, SMALL_FILE, mode)
            .with_context(|| format!("curl {mode:?} over FTPS: {}", fw.attach_output()))?;
        ensure!(got == small, "{mode:?}: wrong content");
    }
    let c = fw.counters()?;
    ensure!(
        c.get(Counter::TlsPlaintext) >= 1
            && c.get(Counter::ExpectPasv) >= 1
            && c.get(Counter::ExpectEpsv) >= 1
            && c.get(Counter::SynDropped) == 0,
        "{c}"
    );
    Ok(())
}

#[test]
fn unannounced_syn_is_dropped_and_connects_without_ftpct() -> Result<()> {
    let lab = Lab::new()?;
    let listener = EchoServer::start(lab.server(), "::", UNANNOUNCED_PORT)?;
    for family in Family::ALL {
        let r = tcp_connect(lab.intruder(), SERVER.ip(family), listener.port(), PROBE)?;
        ensure!(
            r == ConnectResult::Connected,
            "without ftpct, {family:?}: {r:?}"
        );
    }
    let fw = lab.attach(&["--force"])?;
    let before = fw.counters()?;
    for family in Family::ALL {
        let r = tcp_connect(lab.intruder(), SERVER.ip(family), listener.port(), PROBE)?;
        ensure!(
            r == ConnectResult::TimedOut,
            "with ftpct, {family:?}: {r:?}"
        );
    }
    let after = fw.counters()?;
    ensure!(after.since(&before, Counter::SynDropped) >= 2, "{after}");
    ensure!(after.since(&before, Counter::SynAdmitted) == 0, "{after}");
    Ok(())
}

#[test]
fn detach_leaves_nothing_behind() -> Result<()> {
    let lab = Lab::new()?;
    let mut fw = lab.attach(&[])?;
    ensure!(
        xdp_attached(lab.server(), LAB_IFACE)?,
        "no XDP program after attach"
    );
    let objects = fw.kernel_objects()?;
    for &(kind, id) in &objects {
        ensure!(
            kernel_object_exists(lab.server(), kind, id)?,
            "{kind} {id} not found while attached"
        );
    }
    let out = fw.detach_now()?;
    ensure!(
        out.status.success(),
        "detach: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        !fw.pin_dir().exists(),
        "{} still exists",
        fw.pin_dir().display()
    );
    lab.assert_nothing_attached("after detach")?;
    // Programs are freed asynchronously once nothing holds them.
    for &(kind, id) in &objects {
        let gone = wait_until(Duration::from_secs(10), || {
            Ok(!kernel_object_exists(lab.server(), kind, id)?)
        })?;
        ensure!(gone, "{kind} {id} still exists after detach");
    }
    Ok(())
}
