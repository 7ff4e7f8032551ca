//! Upgrades (issue #12, item 3): a new ftpct replaces the programs of a
//! running attachment on the same pinned maps; expectations, flows,
//! control connections, settings and counters survive, and so does a
//! transfer in progress. Maps of another layout version are refused with
//! the way through; the daemon replaces programs of another build when it
//! adopts an attachment.
//!
//! Needs root, vsftpd, curl, bpftool and a built ftpct (`FTPCT_BIN`). Run:
//! `cargo test -p ftpct-e2e --test upgrade -- --test-threads=2`.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ftpct_e2e::fixtures::FileDigest;
use ftpct_e2e::netns::unique_token;
use ftpct_e2e::{
    BIG_FILE, Counter, Daemon, Family, FtpServer, FtpSession, Ftpct, LAB_IFACE, Lab, SERVER,
    SMALL_FILE, Vsftpd, assert_cli_error,
};

/// The program ids in `fw`'s status: (ingress, egress).
fn program_ids(fw: &Ftpct) -> Result<(u64, u64)> {
    let s = &fw.status_json()?[0];
    Ok((
        s["ingress_prog_id"].as_u64().context("ingress id")?,
        s["egress_prog_id"].as_u64().context("egress id")?,
    ))
}

/// Writes `FTPCT_LAYOUT` of `fw` with bpftool: `version` and an object
/// hash no build has.
fn forge_layout(fw: &Ftpct, version: u32) -> Result<()> {
    let path = fw.pin_dir().join("FTPCT_LAYOUT");
    let mut argv: Vec<String> = ["bpftool", "map", "update", "pinned"]
        .map(String::from)
        .into();
    argv.push(path.display().to_string());
    argv.extend(["key", "0", "0", "0", "0", "value"].map(String::from));
    let mut value = version.to_le_bytes().to_vec();
    value.extend([0u8; 4]);
    value.extend(0x1234_5678_9abc_def0_u64.to_le_bytes());
    argv.extend(value.iter().map(|b| b.to_string()));
    fw.netns().run_ok(&argv)?;
    Ok(())
}

fn upgrade_keeps_everything(lab: &Lab, fw: &Ftpct) -> Result<()> {
    let server = Vsftpd::start(lab.server())?;
    let target = server.target(SERVER.ip(Family::V4));
    // A transfer in progress (2 MiB at 256 KiB/s: 8 s, still running when
    // an upgrade on a loaded machine is done; its control connection is
    // one of those counted before and after) ...
    let out = std::env::temp_dir().join(format!("ftpct-upgrade-{}.bin", unique_token()));
    let mut download = lab.client().spawn(&[
        "curl",
        "--silent",
        "--show-error",
        "--max-time",
        "60",
        "--limit-rate",
        "256K",
        "--user",
        &format!(
            "{}:{}",
            target.credentials.user, target.credentials.password
        ),
        "--output",
        &out.display().to_string(),
        &target.url(BIG_FILE),
    ])?;
    // ... and a session with a live expectation.
    let mut session = FtpSession::open(lab.client(), &target)?;
    session.pasv()?;
    std::thread::sleep(Duration::from_millis(1_500));
    let before = fw.counters()?;
    let ids = program_ids(fw)?;
    let controls = fw.status_json()?[0]["control_connections"].clone();

    let said = fw.cli_ok("upgrade", &[LAB_IFACE])?;
    ensure!(said.contains("programs replaced"), "{said}");
    let new_ids = program_ids(fw)?;
    ensure!(
        new_ids.0 != ids.0 && new_ids.1 != ids.1,
        "programs not replaced: {ids:?} -> {new_ids:?}"
    );
    let s = &fw.status_json()?[0];
    ensure!(
        s["guarded"] == true && s["control_connections"] == controls,
        "after the upgrade: {s}"
    );
    let after = fw.counters()?;
    ensure!(
        after.get(Counter::SynAdmitted) >= before.get(Counter::SynAdmitted)
            && before.get(Counter::SynAdmitted) >= 1,
        "counters reset: {before} -> {after}"
    );
    // The expectation made before the upgrade admits the session's transfer.
    let digest = session
        .retr(SMALL_FILE)
        .context("the session's transfer after the upgrade")?;
    ensure!(digest == server.tree().digest(SMALL_FILE)?, "wrong content");
    session.quit()?;
    let status = download
        .wait_timeout(Duration::from_secs(30))?
        .context("the download did not finish")?;
    let bytes = std::fs::read(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    ensure!(
        status.success() && FileDigest::of(&bytes) == server.tree().digest(BIG_FILE)?,
        "the transfer across the upgrade: {status}, {} bytes",
        bytes.len()
    );
    Ok(())
}

#[test]
fn an_upgrade_keeps_every_table_and_a_transfer_in_progress() -> Result<()> {
    let lab = Lab::new()?;
    let fw = lab.attach(&[])?;
    upgrade_keeps_everything(&lab, &fw)
}

#[test]
fn an_upgrade_replaces_a_clsact_filters_program_in_place() -> Result<()> {
    let lab = Lab::new()?;
    let fw = lab.attach(&["--egress-hook", "clsact"])?;
    let filter = fw.status_json()?[0]["clsact_filter"].clone();
    upgrade_keeps_everything(&lab, &fw)?;
    let s = &fw.status_json()?[0];
    ensure!(
        s["clsact_filter"] == filter && !filter.is_null(),
        "filter moved: {filter} -> {}",
        s["clsact_filter"]
    );
    Ok(())
}

#[test]
fn maps_of_another_layout_are_refused_with_the_way_through() -> Result<()> {
    let lab = Lab::new()?;
    let fw = lab.attach(&[])?;
    let ids = program_ids(&fw)?;
    forge_layout(&fw, 999)?;
    let out = fw.cli("upgrade", &[LAB_IFACE])?;
    assert_cli_error("upgrade of layout 999", &out, 1, "layout version 999");
    let text = String::from_utf8_lossy(&out.stderr);
    ensure!(text.contains("ftpct detach eth0"), "no way through: {text}");
    ensure!(
        program_ids(&fw)? == ids,
        "a refused upgrade changed the programs"
    );
    // The daemon refuses to take it over in the same words.
    let config = format!(
        "pin-root = \"{}\"\n[[interface]]\nname = \"{LAB_IFACE}\"\n",
        lab.pin_root().display()
    );
    let err = Daemon::start(lab.server(), &config)
        .err()
        .context("the daemon adopted maps of layout 999")?;
    ensure!(format!("{err:#}").contains("layout version 999"), "{err:#}");
    Ok(())
}

#[test]
fn the_daemon_replaces_the_programs_of_another_build_when_it_adopts() -> Result<()> {
    let lab = Lab::new()?;
    let fw = lab.attach(&[])?;
    let server = Vsftpd::start(lab.server())?;
    let mut session = FtpSession::open(lab.client(), &server.target(SERVER.ip(Family::V4)))?;
    session.pasv()?;
    let ids = program_ids(&fw)?;
    // As if another build had attached: same layout, other programs.
    forge_layout(&fw, 1)?;
    let config = format!(
        "pin-root = \"{}\"\n[[interface]]\nname = \"{LAB_IFACE}\"\n",
        lab.pin_root().display()
    );
    let daemon = Daemon::start(lab.server(), &config)?;
    ensure!(
        daemon.log().contains("programs replaced by this ftpct's"),
        "{}",
        daemon.log()
    );
    ensure!(program_ids(&fw)? != ids, "programs not replaced");
    let digest = session.retr(SMALL_FILE)?;
    ensure!(digest == server.tree().digest(SMALL_FILE)?, "wrong content");
    session.quit()
}
