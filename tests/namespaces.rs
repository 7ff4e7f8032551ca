//! ftpct in several network namespaces at once. Every lab host has an
//! interface named `eth0`, so names alone cannot tell attachments apart:
//! a command run in one namespace must neither see nor touch what was
//! attached in another, and an interface renamed or deleted after attach
//! must be reported, not shown as guarded.
//!
//! Needs root and a built ftpct (`FTPCT_BIN`, default
//! `target/release/ftpct`). Run:
//! `cargo test -p ftpct-e2e --test namespaces -- --test-threads=2`.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ftpct_e2e::clients::tcp_connect;
use ftpct_e2e::forge::xdp_attached;
use ftpct_e2e::ftpct::{remove_pin_root, unique_pin_root};
use ftpct_e2e::{
    ConnectResult, Counter, EchoServer, Family, FtpServer, FtpSession, Ftpct, LAB_IFACE, Lab,
    Netns, SERVER, Vsftpd, assert_cli_error, ftpct_run, pin_dir,
};
use serde_json::Value;

/// How long a probe waits before calling a connection attempt dropped.
const PROBE: Duration = Duration::from_secs(2);

/// A guarded port (default data range) nobody announces.
const UNANNOUNCED_PORT: u16 = 40050;

/// `ftpct ARGS... --pin-root PIN_ROOT` in `ns`; a non-zero exit is returned.
fn ftpct_in(ns: &Netns, pin_root: &Path, args: &[&str]) -> Result<Output> {
    let mut argv: Vec<&OsStr> = args.iter().map(|a| a.as_ref()).collect();
    argv.push("--pin-root".as_ref());
    argv.push(pin_root.as_os_str());
    ftpct_run(ns, &argv)
}

/// Like [`ftpct_in`], but the command must succeed; returns stdout.
fn ftpct_ok(ns: &Netns, pin_root: &Path, args: &[&str]) -> Result<String> {
    let out = ftpct_in(ns, pin_root, args)?;
    ensure!(
        out.status.success(),
        "ftpct {} in {}: {}",
        args.join(" "),
        ns.name(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ftpct SUBCOMMAND --json` in `ns`, parsed.
fn json_in(ns: &Netns, pin_root: &Path, subcommand: &str) -> Result<Value> {
    let text = ftpct_ok(ns, pin_root, &[subcommand, "--json"])?;
    serde_json::from_str(&text).with_context(|| format!("ftpct {subcommand} --json: {text}"))
}

/// A namespace of its own holding a veth pair `eth0` - `eth1`, both up
/// (Ethernet devices ftpct can attach to, unrelated to the lab network).
fn namespace_with_veth(label: &str) -> Result<Netns> {
    let ns = Netns::create(label)?;
    ns.run_ok(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
    ])?;
    for dev in ["eth0", "eth1"] {
        ns.run_ok(&["ip", "link", "set", dev, "up"])?;
    }
    Ok(ns)
}

#[test]
fn detach_in_another_namespace_leaves_the_attachment_alone() -> Result<()> {
    let lab = Lab::new()?;
    let listener = EchoServer::start(lab.server(), "::", UNANNOUNCED_PORT)?;
    let server_ip = SERVER.ip(Family::V4);
    let mut fw = Ftpct::attach(lab.server(), LAB_IFACE, &["--force"], lab.pin_root())?;

    // The client namespace has an eth0 of its own, which is not attached.
    let out = ftpct_in(lab.client(), lab.pin_root(), &["detach", LAB_IFACE])?;
    assert_cli_error(
        "detach in the client namespace",
        &out,
        1,
        "not attached to eth0 in this network namespace",
    );
    assert!(fw.pin_dir().exists(), "the server's pins were removed");
    assert!(xdp_attached(lab.server(), LAB_IFACE)?, "server detached");
    let before = fw.counters()?;
    let r = tcp_connect(lab.intruder(), server_ip, listener.port(), PROBE)?;
    assert_eq!(r, ConnectResult::TimedOut, "unannounced SYN still dropped");
    let after = fw.counters()?;
    assert!(after.since(&before, Counter::SynDropped) >= 1, "{after}");

    // Detach where it was attached works, and leaves nothing behind.
    let out = fw.detach_now()?;
    assert!(
        out.status.success(),
        "detach in the server namespace: {out:?}"
    );
    assert!(!xdp_attached(lab.server(), LAB_IFACE)?, "still attached");
    let left: Vec<_> = std::fs::read_dir(lab.pin_root())?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    assert!(left.is_empty(), "left behind after detach: {left:?}");
    let r = tcp_connect(lab.intruder(), server_ip, listener.port(), PROBE)?;
    assert_eq!(r, ConnectResult::Connected, "after detach");
    Ok(())
}

#[test]
fn status_lists_only_this_namespace_and_names_it() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let fw = Ftpct::attach(lab.server(), LAB_IFACE, &[], lab.pin_root())?;
    let mut session = FtpSession::open(lab.client(), &server.target(SERVER.ip(Family::V4)))?;
    session.pasv()?;
    ensure!(
        !fw.expectations_json()?.is_empty(),
        "no expectation in the server namespace"
    );

    // Nothing is attached in the client namespace.
    let root = lab.pin_root();
    for subcommand in ["status", "expectations", "flows"] {
        let value = json_in(lab.client(), root, subcommand)?;
        assert_eq!(value, Value::Array(Vec::new()), "{subcommand} in client");
    }
    let text = ftpct_ok(lab.client(), root, &["status"])?;
    assert!(text.contains("not attached"), "status in client: {text}");

    // The server namespace's status names the namespace.
    let status = fw.status_json()?;
    let entry = &status[0];
    assert_eq!(entry["netns"], lab.server().name(), "{entry}");
    assert_eq!(entry["netns_inode"], lab.server().inode()?, "{entry}");
    assert_eq!(entry["guarded"], true, "{entry}");
    let text = fw.cli_ok("status", &[])?;
    assert!(text.contains(lab.server().name()), "status text: {text}");
    assert!(
        text.contains(&fw.pin_dir().display().to_string()),
        "status text: {text}"
    );
    session.quit()?;
    fw.detach()
}

#[test]
fn attachment_of_a_deleted_namespace_does_not_break_listing() -> Result<()> {
    let lab = Lab::new()?;
    let root = lab.pin_root();
    {
        let gone = namespace_with_veth("gone")?;
        ftpct_ok(&gone, root, &["attach", "eth0"])?;
    }
    // The namespace is gone; its pins stay (nobody can detach them there).
    let stale = std::fs::read_dir(root)?.count();
    ensure!(
        stale == 1,
        "want the stale directory, found {stale} entries"
    );

    let value = json_in(lab.server(), root, "status")?;
    assert_eq!(value, Value::Array(Vec::new()), "status in the server");
    let fw = Ftpct::attach(lab.server(), LAB_IFACE, &[], root)?;
    let status = fw.status_json()?;
    let entries = status.as_array().context("status is not an array")?;
    assert_eq!(entries.len(), 1, "{status}");
    assert_eq!(entries[0]["netns"], lab.server().name(), "{status}");
    fw.detach()
}

#[test]
fn renamed_and_deleted_interfaces_are_reported() -> Result<()> {
    let lab = Lab::new()?;
    let root = lab.pin_root();
    let ns = namespace_with_veth("ren")?;

    // Renamed: still guarded, under the name it was attached as.
    ftpct_ok(&ns, root, &["attach", "eth0"])?;
    ns.run_ok(&["ip", "link", "set", "eth0", "down"])?;
    ns.run_ok(&["ip", "link", "set", "eth0", "name", "eth9"])?;
    let text = ftpct_ok(&ns, root, &["status"])?;
    assert!(
        text.contains("now named eth9"),
        "status after rename: {text}"
    );
    let status = json_in(&ns, root, "status")?;
    assert_eq!(status[0]["guarded"], true, "{status}");
    assert!(
        status[0]["problem"]
            .as_str()
            .is_some_and(|p| p.contains("eth9")),
        "{status}"
    );
    let out = ftpct_ok(&ns, root, &["detach", "eth0"])?;
    assert!(out.contains("eth9"), "detach after rename: {out}");
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    assert!(!xdp_attached(&ns, "eth9")?, "eth9 still has XDP");

    // Deleted: nothing is guarded any more, and detach removes the pins.
    ftpct_ok(&ns, root, &["attach", "eth1"])?;
    ns.run_ok(&["ip", "link", "del", "eth9"])?; // takes its peer eth1 along
    let text = ftpct_ok(&ns, root, &["status"])?;
    assert!(
        text.contains("eth1: NOT guarded") && text.contains("deleted"),
        "status after delete: {text}"
    );
    let status = json_in(&ns, root, "status")?;
    assert_eq!(status[0]["guarded"], false, "{status}");
    let out = ftpct_ok(&ns, root, &["detach", "eth1"])?;
    assert!(out.contains("deleted"), "detach after delete: {out}");
    let dir = pin_dir(root, &ns, "eth1")?;
    assert!(!dir.exists(), "{} left behind", dir.display());
    Ok(())
}

/// Removes a pin root on drop, also when the test fails.
struct PinRootGuard(std::path::PathBuf);

impl Drop for PinRootGuard {
    fn drop(&mut self) {
        remove_pin_root(&self.0);
    }
}

#[test]
fn failed_attach_leaves_no_directories() -> Result<()> {
    let lab = Lab::new()?;
    let fw = Ftpct::attach(lab.server(), LAB_IFACE, &[], lab.pin_root())?;
    // A second attach under another pin root gets as far as the XDP attach,
    // which fails: the interface already has ftpct's program.
    let other = PinRootGuard(unique_pin_root());
    let out = ftpct_in(lab.server(), &other.0, &["attach", LAB_IFACE])?;
    assert_cli_error("second attach", &out, 1, "attaching the XDP program");
    assert!(!other.0.exists(), "{} left behind", other.0.display());
    // A pin root that existed stays, empty.
    std::fs::create_dir(&other.0)?;
    let out = ftpct_in(lab.server(), &other.0, &["attach", LAB_IFACE])?;
    assert_cli_error("second attach", &out, 1, "attaching the XDP program");
    let left: Vec<_> = std::fs::read_dir(&other.0)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    assert!(left.is_empty(), "left behind: {left:?}");
    // The first attachment is untouched.
    assert!(
        xdp_attached(lab.server(), LAB_IFACE)?,
        "first attach undone"
    );
    fw.detach()
}
