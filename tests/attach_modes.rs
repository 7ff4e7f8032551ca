//! The other ways of hooking in guard just as well, and leave nothing of
//! their own and touch nothing of anyone else's: egress as a filter on the
//! classic `clsact` qdisc (what kernels before 6.6 get), XDP in generic mode
//! (drivers without native XDP), and `ftpct check`, which says which path
//! this machine takes.
//!
//! Needs root and a built ftpct (`FTPCT_BIN`, default
//! `target/release/ftpct`). Run:
//! `cargo test -p ftpct-e2e --test attach_modes -- --test-threads=2`.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ftpct_e2e::clients::{curl_download, tcp_connect};
use ftpct_e2e::forge::xdp_attached;
use ftpct_e2e::ftpct::unique_pin_root;
use ftpct_e2e::{
    ConnectResult, Counter, EchoServer, Family, FtpServer, Ftpct, LAB_IFACE, Lab, Netns, SERVER,
    SMALL_FILE, TransferMode, Vsftpd, assert_cli_error, ftpct_bin, ftpct_run,
};

/// How long a probe waits before calling a connection attempt dropped.
const PROBE: Duration = Duration::from_secs(2);

/// A guarded port (default data range) nobody announces.
const UNANNOUNCED_PORT: u16 = 40050;

/// `tc ARGS` in `ns`, stdout.
fn tc(ns: &Netns, args: &[&str]) -> Result<String> {
    let mut argv = vec!["tc"];
    argv.extend_from_slice(args);
    let out = ns.run_ok(&argv)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The lab server interface's egress filters, one line each.
fn egress_filters(lab: &Lab) -> Result<String> {
    tc(
        lab.server(),
        &["filter", "show", "dev", LAB_IFACE, "egress"],
    )
}

/// Whether the lab server's interface has a clsact qdisc.
fn has_clsact(lab: &Lab) -> Result<bool> {
    Ok(tc(lab.server(), &["qdisc", "show", "dev", LAB_IFACE])?.contains("clsact"))
}

/// A passive download over each family succeeds (the egress program saw
/// the server's 227/229 and created the expectation), and the intruder's
/// SYN to a listening, unannounced port is dropped.
fn guards_transfers(lab: &Lab, server: &Vsftpd, fw: &Ftpct, listener: &EchoServer) -> Result<()> {
    let expected = server.tree().digest(SMALL_FILE)?;
    let before = fw.counters()?;
    for family in Family::ALL {
        let target = server.target(SERVER.ip(family));
        let got = curl_download(lab.client(), &target, SMALL_FILE, TransferMode::Epsv)
            .with_context(|| format!("EPSV over {family:?}"))?;
        ensure!(got == expected, "EPSV over {family:?}: wrong content");
    }
    let after = fw.counters()?;
    ensure!(
        after.since(&before, Counter::SynAdmitted) >= 2,
        "announced data connections not admitted: {after}"
    );
    let r = intruder_probe(lab, listener)?;
    ensure!(r == ConnectResult::TimedOut, "intruder: {r:?}");
    ensure!(
        fw.counters()?.since(&after, Counter::SynDropped) >= 1,
        "intruder's SYN not counted as dropped"
    );
    Ok(())
}

/// What becomes of the intruder's connection to the listener.
fn intruder_probe(lab: &Lab, listener: &EchoServer) -> Result<ConnectResult> {
    tcp_connect(
        lab.intruder(),
        SERVER.ip(Family::V4),
        listener.port(),
        PROBE,
    )
}

/// Whether the intruder's connection to the listener goes through.
fn intruder_connects(lab: &Lab, listener: &EchoServer) -> Result<bool> {
    Ok(intruder_probe(lab, listener)? == ConnectResult::Connected)
}

/// A lab with vsftpd and a listener on an unannounced guarded port, which
/// the intruder reaches while ftpct is not attached. Attachments to it pass
/// `--force`: that listener is guarded on purpose.
fn lab_with_listener() -> Result<(Lab, Vsftpd, EchoServer)> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let listener = EchoServer::start(lab.server(), "::", UNANNOUNCED_PORT)?;
    ensure!(intruder_connects(&lab, &listener)?, "without ftpct");
    Ok((lab, server, listener))
}

#[test]
fn clsact_egress_guards_and_detach_removes_the_qdisc_it_added() -> Result<()> {
    let (lab, server, listener) = lab_with_listener()?;
    assert!(!has_clsact(&lab)?, "the lab starts without a clsact qdisc");

    let mut fw = lab.attach(&["--force", "--egress-hook", "clsact"])?;
    let filters = egress_filters(&lab)?;
    assert!(filters.contains("ftpct_egress"), "no filter: {filters}");
    let status = fw.status_json()?;
    assert_eq!(status[0]["egress_hook"], "clsact", "{status}");
    assert!(status[0]["clsact_filter"].is_array(), "{status}");
    guards_transfers(&lab, &server, &fw, &listener)?;

    let out = fw.detach_now()?;
    assert!(out.status.success(), "detach: {out:?}");
    assert!(!has_clsact(&lab)?, "detach left the qdisc it added");
    assert!(!xdp_attached(lab.server(), LAB_IFACE)?, "XDP left attached");
    assert!(intruder_connects(&lab, &listener)?, "after detach");
    Ok(())
}

#[test]
fn detach_leaves_another_tools_clsact_qdisc_and_filters_alone() -> Result<()> {
    let (lab, server, listener) = lab_with_listener()?;
    // Another tool's qdisc and egress filter, there before ftpct.
    tc(lab.server(), &["qdisc", "add", "dev", LAB_IFACE, "clsact"])?;
    // u32 is in every kernel configuration (matchall and actions are not).
    let other = [
        "filter",
        "add",
        "dev",
        LAB_IFACE,
        "egress",
        "pref",
        "10",
        "protocol",
        "ip",
        "u32",
        "match",
        "ip",
        "dst",
        "198.18.255.254/32",
    ];
    tc(lab.server(), &other)?;

    let mut fw = lab.attach(&["--force", "--egress-hook", "clsact"])?;
    let filters = egress_filters(&lab)?;
    assert!(
        filters.contains("ftpct_egress") && filters.contains("u32"),
        "{filters}"
    );
    guards_transfers(&lab, &server, &fw, &listener)?;
    let out = fw.detach_now()?;
    assert!(out.status.success(), "detach: {out:?}");
    let filters = egress_filters(&lab)?;
    assert!(
        !filters.contains("ftpct_egress"),
        "ftpct's filter left: {filters}"
    );
    assert!(filters.contains("u32"), "the other filter went: {filters}");
    assert!(has_clsact(&lab)?, "detach removed a qdisc it did not add");

    // A qdisc ftpct added stays while another tool's filter is on it.
    tc(lab.server(), &["qdisc", "del", "dev", LAB_IFACE, "clsact"])?;
    let mut fw = lab.attach(&["--force", "--egress-hook", "clsact"])?;
    tc(lab.server(), &other)?;
    let out = fw.detach_now()?;
    assert!(out.status.success(), "detach: {out:?}");
    let filters = egress_filters(&lab)?;
    assert!(
        !filters.contains("ftpct_egress") && filters.contains("u32"),
        "{filters}"
    );
    assert!(has_clsact(&lab)?, "detach removed a qdisc still in use");
    Ok(())
}

#[test]
fn failed_attach_removes_its_clsact_filter_and_qdisc() -> Result<()> {
    let lab = Lab::new()?;
    // Another XDP program holds the interface (a second ftpct under its
    // own pin root): the attach fails after its egress filter is in place.
    let holder_root = unique_pin_root();
    let holder = Ftpct::attach(lab.server(), LAB_IFACE, &[], &holder_root)?;
    let root = lab.pin_root().display().to_string();
    let argv = [
        "attach",
        LAB_IFACE,
        "--egress-hook",
        "clsact",
        "--pin-root",
        &root,
    ];
    let out = ftpct_run(lab.server(), &argv)?;
    assert_cli_error("attach over another XDP program", &out, 1, "XDP program");
    assert!(
        !egress_filters(&lab)?.contains("ftpct_egress"),
        "the failed attach left its filter"
    );
    assert!(!has_clsact(&lab)?, "the failed attach left its qdisc");
    holder.detach()?;
    Ok(())
}

#[test]
fn generic_xdp_guards_and_auto_falls_back_where_the_driver_has_no_native_xdp() -> Result<()> {
    let (lab, server, listener) = lab_with_listener()?;
    let fw = lab.attach(&["--force", "--xdp-mode", "generic"])?;
    let link = lab.server().run_ok(&["ip", "link", "show", LAB_IFACE])?;
    let link = String::from_utf8_lossy(&link.stdout).into_owned();
    assert!(link.contains("xdpgeneric"), "{link}");
    assert_eq!(fw.status_json()?[0]["xdp_mode"], "generic");
    guards_transfers(&lab, &server, &fw, &listener)?;
    fw.detach()?;

    // A bridge has no native XDP: `native` refuses in one line and leaves
    // nothing; `auto` (the default) warns and runs generic.
    lab.server()
        .run_ok(&["ip", "link", "add", "br9", "type", "bridge"])?;
    lab.server().run_ok(&["ip", "link", "set", "br9", "up"])?;
    // `check` says so beforehand.
    let out = ftpct_run(lab.server(), &["check", "br9"])?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("path: egress="), "{text}");
    assert!(text.contains("xdp=generic"), "{text}");
    let root = unique_pin_root();
    let root_arg = root.display().to_string();
    let out = ftpct_run(
        lab.server(),
        &[
            "attach",
            "br9",
            "--force",
            "--xdp-mode",
            "native",
            "--pin-root",
            &root_arg,
        ],
    )?;
    assert_cli_error("native XDP on a bridge", &out, 1, "natively");
    assert!(
        !xdp_attached(lab.server(), "br9")?,
        "native attach left XDP"
    );
    let fw = Ftpct::attach(lab.server(), "br9", &["--force"], &root)?;
    assert_eq!(fw.status_json()?[0]["xdp_mode"], "generic");
    fw.detach()?;
    assert!(!xdp_attached(lab.server(), "br9")?, "detach left XDP");
    Ok(())
}

#[test]
fn check_reports_every_requirement_and_the_path() -> Result<()> {
    let lab = Lab::new()?;
    let out = ftpct_run(lab.server(), &["check", LAB_IFACE])?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "check failed here: {text}");
    for name in [
        "kernel",
        "btf",
        "privileges",
        "bpffs",
        "bpf_loop",
        "bpf_for_each_map_elem",
        "tcx",
        "clsact",
        "xdp on eth0",
        "ring buffer",
        "uprobes",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .with_context(|| format!("no {name} line in:\n{text}"))?;
        let verdict = line[name.len()..].split_whitespace().next().unwrap_or("");
        assert!(
            ["ok", "no", "MISSING"].contains(&verdict),
            "{name}: verdict {verdict:?} in {line:?}"
        );
    }
    // veth runs XDP natively; this kernel has tcx or clsact and bpf_loop.
    let path = text
        .lines()
        .find(|l| l.starts_with("path: "))
        .with_context(|| format!("no path line in:\n{text}"))?;
    assert!(path.contains("parser=bpf_loop"), "{path}");
    assert!(path.contains("xdp=native"), "{path}");
    assert!(
        path.contains("egress=tcx") || path.contains("egress=clsact"),
        "{path}"
    );

    // Unprivileged: the privileges requirement fails, and so does check.
    let out = lab.server().run(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        &ftpct_bin().display().to_string(),
        "check",
    ])?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "unprivileged check: {text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("privileges "))
        .with_context(|| format!("no privileges line:\n{text}"))?;
    assert!(line.contains("MISSING"), "{line}");
    Ok(())
}
