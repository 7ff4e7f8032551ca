//! Where pins live: the pin root (flag, `FTPCT_PIN_ROOT`, or the default),
//! making sure it is a bpffs that outlives this process, and the layout
//! `<root>/net<INODE>/<iface>/{prog_*,link_*,FTPCT_*}`. Interface names are
//! only unique within a network namespace, so attachments are kept per
//! namespace (see [`crate::netns`]) and a command sees only its own.

use std::{
    ffi::{CStr, CString},
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use aya::programs::links::PinnedLink;

use crate::netns::Netns;

/// Default pin root.
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf/ftpct";
/// Environment variable overriding the default pin root.
pub const PIN_ROOT_ENV: &str = "FTPCT_PIN_ROOT";
/// Pinned XDP link (removing it detaches the ingress program).
pub const LINK_INGRESS: &str = "link_ingress";
/// Pinned tcx link (removing it detaches the egress program).
pub const LINK_EGRESS: &str = "link_egress";
/// Pinned ingress program.
pub const PROG_INGRESS: &str = "prog_ingress";
/// Pinned egress program.
pub const PROG_EGRESS: &str = "prog_egress";

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// A directory `prepare_root` makes in a bpffs it mounted on the pin root
/// itself: the mount is ftpct's, and the last detach unmounts it again.
/// (bpffs allows no dots in names.)
const MOUNTED_MARKER: &str = "ftpct_mounted";

/// The pin root from the flag, else the environment, else the default.
pub fn resolve_root(flag: Option<&Path>) -> PathBuf {
    if let Some(path) = flag {
        return path.to_path_buf();
    }
    match std::env::var_os(PIN_ROOT_ENV) {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => PathBuf::from(DEFAULT_PIN_ROOT),
    }
}

/// The directory holding the attachments of one network namespace.
pub fn netns_dir(root: &Path, netns: &Netns) -> PathBuf {
    root.join(netns.dir_name())
}

/// The directory holding one interface's pins.
pub fn iface_dir(root: &Path, netns: &Netns, iface: &str) -> PathBuf {
    netns_dir(root, netns).join(iface)
}

/// Whether `path` is on a bpf filesystem.
pub fn is_bpffs(path: &Path) -> Result<bool> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .with_context(|| format!("invalid path {}", path.display()))?;
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated string and stat a valid out-pointer.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("statfs {}", path.display()));
    }
    Ok(stat.f_type as i64 == BPF_FS_MAGIC)
}

/// Makes sure `root` exists on a bpffs that stays mounted after this process
/// exits, mounting one if needed. Refuses inside `ip netns exec`, whose private
/// mount namespace (with its own /sys) disappears with the command, and a
/// non-empty directory that is not a bpffs, whose contents a mount would hide.
/// A bpffs mounted on the root itself is marked, so that [`release_root`]
/// unmounts it when the last attachment goes (one mounted on /sys/fs/bpf
/// stays, as the system's own would).
pub fn prepare_root(root: &Path) -> Result<()> {
    refuse_private_sys(root)?;
    if root.exists() && is_bpffs(root)? {
        return Ok(());
    }
    let mount_point = bpffs_mount_point(root);
    if !(mount_point.exists() && is_bpffs(&mount_point)?) {
        if in_ip_netns_exec() {
            bail!(private_mount_ns_message(root));
        }
        refuse_hiding(&mount_point)?;
        fs::create_dir_all(&mount_point)
            .with_context(|| format!("creating {}", mount_point.display()))?;
        mount_bpffs(&mount_point)?;
        if mount_point == root {
            let marker = root.join(MOUNTED_MARKER);
            if let Err(err) = fs::create_dir(&marker) {
                unmount(root);
                return Err(err).with_context(|| format!("creating {}", marker.display()));
            }
        }
    }
    fs::create_dir_all(root).with_context(|| format!("creating pin root {}", root.display()))?;
    if !is_bpffs(root)? {
        bail!("{} is not on a bpf filesystem", root.display());
    }
    Ok(())
}

/// Refuses to mount over `at` if it is a directory with something in it.
fn refuse_hiding(at: &Path) -> Result<()> {
    let holds_something = fs::read_dir(at).is_ok_and(|mut entries| entries.next().is_some());
    if holds_something {
        bail!(
            "pin root {}: a non-empty directory that is not a bpf filesystem; mounting one \
             there would hide what it holds. Use an empty or new directory, or one under \
             /sys/fs/bpf",
            at.display()
        );
    }
    Ok(())
}

/// Unmounts the bpffs [`prepare_root`] mounted on `root`, once nothing but
/// its marker is left in it; anything else there (another attachment, a
/// pin of another tool) keeps it. Names with a dot are the kernel's own
/// (`maps.debug`, `progs.debug`, preloaded into every bpffs): nobody else
/// can make one.
pub fn release_root(root: &Path) {
    let marker = root.join(MOUNTED_MARKER);
    if !marker.exists() {
        return;
    }
    let only_marker = fs::read_dir(root).is_ok_and(|entries| {
        entries.flatten().all(|e| {
            let name = e.file_name();
            name == MOUNTED_MARKER || name.as_encoded_bytes().contains(&b'.')
        })
    });
    if only_marker && fs::remove_dir(&marker).is_ok() {
        unmount(root);
    }
}

/// Unmounts the filesystem on `at`, warning if that fails.
fn unmount(at: &Path) {
    let Ok(target) = CString::new(at.as_os_str().as_encoded_bytes()) else {
        return;
    };
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(target.as_ptr(), 0) } != 0 {
        log::warn!(
            "unmounting the bpffs on {}: {}",
            at.display(),
            std::io::Error::last_os_error()
        );
    }
}

/// Where to mount bpffs for `root`: the conventional /sys/fs/bpf when the root
/// is below it, else the root itself.
fn bpffs_mount_point(root: &Path) -> PathBuf {
    let conventional = Path::new("/sys/fs/bpf");
    if root.starts_with(conventional) {
        conventional.to_path_buf()
    } else {
        root.to_path_buf()
    }
}

fn mount_bpffs(at: &Path) -> Result<()> {
    mount_kernel_fs(c"bpf", at)
}

/// Mounts the kernel's pseudo file system `fstype` (bpffs, tracefs) on `at`.
pub(crate) fn mount_kernel_fs(fstype: &CStr, at: &Path) -> Result<()> {
    let target = CString::new(at.as_os_str().as_encoded_bytes())?;
    // SAFETY: all pointers are valid NUL-terminated strings; data may be NULL.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| {
            format!(
                "mounting the {} file system on {}",
                fstype.to_string_lossy(),
                at.display()
            )
        });
    }
    Ok(())
}

/// Refuses a pin root under /sys inside `ip netns exec`: its private /sys
/// hides the host's pins there (status would show nothing, detach find
/// nothing) and loses new ones when the command ends. Every command using
/// pins calls it, so they all refuse alike.
pub fn refuse_private_sys(root: &Path) -> Result<()> {
    if root.starts_with("/sys") && in_ip_netns_exec() {
        bail!(private_mount_ns_message(root));
    }
    Ok(())
}

fn private_mount_ns_message(root: &Path) -> String {
    format!(
        "running inside `ip netns exec`: it gives the command a private /sys and mount \
         namespace, where the host's pins under {} are not seen and pins made vanish when \
         ftpct exits, protection with them. Run `nsenter --net=/run/netns/NAME ftpct ...` \
         instead, or pass --pin-root on a bpffs mounted outside /sys in the host (e.g. \
         `mount -t bpf bpf /run/ftpct-bpf`)",
        root.display()
    )
}

/// `ip netns exec` mounts a fresh sysfs on /sys whose source is the namespace
/// name; it also leaves the command in a mount namespace its parent is not in.
fn in_ip_netns_exec() -> bool {
    let sys_from_netns = fs::read_to_string("/proc/self/mountinfo")
        .map(|info| {
            info.lines().any(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let Some(sep) = fields.iter().position(|f| *f == "-") else {
                    return false;
                };
                fields.get(4) == Some(&"/sys")
                    && fields.get(sep + 1) == Some(&"sysfs")
                    && fields
                        .get(sep + 2)
                        .is_some_and(|src| Path::new("/run/netns").join(src).exists())
            })
        })
        .unwrap_or(false);
    let parent = format!("/proc/{}/ns/mnt", std::os::unix::process::parent_id());
    let differs_from_parent = match (fs::read_link("/proc/self/ns/mnt"), fs::read_link(parent)) {
        (Ok(mine), Ok(parents)) => mine != parents,
        _ => false,
    };
    sys_from_netns || differs_from_parent
}

/// Interfaces of `netns` that have a pin directory under `root`, sorted.
/// Other namespaces' directories, live or left by namespaces that are gone,
/// are not looked at.
pub fn attached_interfaces(root: &Path, netns: &Netns) -> Result<Vec<String>> {
    let dir = netns_dir(root, netns);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("reading {}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        if entry.file_type()?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Removes one interface's pins (detaching it), then its namespace's
/// directory if that is left empty, then the bpffs attach mounted on the
/// root if nothing is left in it.
pub fn remove_attachment(root: &Path, netns: &Netns, iface: &str) -> Result<()> {
    remove_iface_dir(&iface_dir(root, netns, iface))?;
    remove_if_empty(&netns_dir(root, netns));
    release_root(root);
    Ok(())
}

/// Removes `dir` if it is empty. Another attach may have just put something
/// in it, so "not empty" (or "already gone") is not an error.
pub fn remove_if_empty(dir: &Path) {
    let _ = fs::remove_dir(dir);
}

/// Removes the link pinned at `path` (if it is there), detaching it.
pub fn unpin_link(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    // Unpinned through an fd of our own, which is then the last reference:
    // closing it detaches at once (a plain unlink leaves the detach to a
    // kernel worker, after this command may have returned).
    match PinnedLink::from_pin(path) {
        Ok(link) => drop(
            link.unpin()
                .with_context(|| format!("unpinning {}", path.display()))?,
        ),
        Err(_) => fs::remove_file(path).with_context(|| format!("unpinning {}", path.display()))?,
    }
    Ok(())
}

/// Removes every pin in an interface directory and the directory itself.
/// Links go first, so the programs are detached before anything else goes.
pub fn remove_iface_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    // A clsact filter is no pin: it goes first, through the record.
    crate::egress_hook::remove(dir)?;
    let fixed = [LINK_INGRESS, LINK_EGRESS].map(|link| dir.join(link));
    for path in fixed.into_iter().chain(crate::tls::pinned_links(dir)) {
        unpin_link(&path)?;
    }
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        fs::remove_file(&path).with_context(|| format!("unpinning {}", path.display()))?;
    }
    fs::remove_dir(dir).with_context(|| format!("removing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_kept_per_namespace_then_interface() {
        let netns = Netns::current().expect("current netns");
        let root = Path::new("/sys/fs/bpf/ftpct");
        let want = format!("/sys/fs/bpf/ftpct/net{}/eth0", netns.inode);
        assert_eq!(iface_dir(root, &netns, "eth0"), PathBuf::from(want));
        assert_eq!(
            netns_dir(root, &netns),
            root.join(format!("net{}", netns.inode))
        );
    }
}
