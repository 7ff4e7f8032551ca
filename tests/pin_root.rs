//! The pin root (issue #12, item 5): `attach` never mounts a bpffs over a
//! directory that holds something (the mount would hide it), and the bpffs
//! it mounts on an empty or new directory goes again with the last
//! attachment, on detach and when an attach fails.
//!
//! Needs root and a built ftpct (`FTPCT_BIN`). Run:
//! `cargo test -p ftpct-e2e --test pin_root`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use ftpct_e2e::ftpct::{remove_pin_root, unique_pin_root};
use ftpct_e2e::{Ftpct, LAB_IFACE, Lab, Netns, assert_cli_error, ftpct_run};

/// Whether a bpffs is mounted at `path` (ftpct runs in this test's mount
/// namespace: the lab enters network namespaces only).
fn bpffs_at(path: &Path) -> Result<bool> {
    let mounts = fs::read_to_string("/proc/self/mounts").context("reading mounts")?;
    let path = path.display().to_string();
    Ok(mounts.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&path.as_str()) && fields.get(2) == Some(&"bpf")
    }))
}

/// Whether XDP is attached to the lab server's interface.
fn xdp_attached(ns: &Netns) -> Result<bool> {
    let out = ns.run_ok(&["ip", "link", "show", LAB_IFACE])?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("xdp"))
}

/// A fresh directory under /tmp, removed (after unmounting anything left
/// on it) on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Result<Self> {
        let path = std::env::temp_dir().join(format!("ftpct-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if bpffs_at(&self.0).unwrap_or(false) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_directory_that_holds_something_is_not_mounted_over() -> Result<()> {
    let lab = Lab::new()?;
    let dir = TempDir::new("pins-full")?;
    let kept = dir.0.join("keep.txt");
    fs::write(&kept, "the administrator's file")?;
    let root = dir.0.display().to_string();
    let out = ftpct_run(lab.server(), &["attach", LAB_IFACE, "--pin-root", &root])?;
    assert_cli_error("attach over a full directory", &out, 1, "would hide");
    ensure!(!bpffs_at(&dir.0)?, "a bpffs was mounted over {root}");
    ensure!(
        fs::read_to_string(&kept)? == "the administrator's file",
        "the file is gone"
    );
    ensure!(!xdp_attached(lab.server())?, "something was attached");
    Ok(())
}

#[test]
fn the_bpffs_attach_mounted_goes_with_the_last_attachment() -> Result<()> {
    let lab = Lab::new()?;
    let dir = TempDir::new("pins-empty")?;
    let root = dir.0.display().to_string();
    let attach = ["attach", LAB_IFACE, "--pin-root", &root];
    let out = ftpct_run(lab.server(), &attach)?;
    ensure!(out.status.success(), "attach: {out:?}");
    ensure!(bpffs_at(&dir.0)?, "no bpffs mounted on {root}");
    // A second attach to the same interface fails: the mount stays, it
    // holds the first one.
    let out = ftpct_run(lab.server(), &attach)?;
    assert_cli_error("attach twice", &out, 1, "already attached");
    ensure!(bpffs_at(&dir.0)?, "a failed attach unmounted a live root");
    let out = ftpct_run(lab.server(), &["detach", LAB_IFACE, "--pin-root", &root])?;
    ensure!(out.status.success(), "detach: {out:?}");
    ensure!(!bpffs_at(&dir.0)?, "detach left the bpffs it mounted");
    ensure!(
        dir.0.is_dir(),
        "the directory itself is the administrator's"
    );

    // An attach that fails after mounting (another XDP program holds the
    // interface: a second ftpct under its own root) leaves no mount either.
    let holder_root = unique_pin_root();
    let holder = Ftpct::attach(lab.server(), LAB_IFACE, &[], &holder_root)?;
    let out = ftpct_run(lab.server(), &attach)?;
    assert_cli_error("attach over another XDP program", &out, 1, "XDP program");
    ensure!(!bpffs_at(&dir.0)?, "a failed attach left a bpffs");
    holder.detach()?;
    remove_pin_root(&holder_root);
    Ok(())
}
