//! Booting a fetched kernel in qemu and running a script inside it.
//!
//! The guest has no disk: an initramfs (busybox and the few modules it needs
//! to reach the host) mounts the host's root read-only over 9p under a tmpfs
//! overlay, so every tool and build artefact of the host is there at the same
//! path and nothing the guest writes reaches the host. `/tmp` and `/run` are
//! fresh tmpfs; the guest kernel's own modules are bound at
//! `/lib/modules/<release>`, so the kernel autoloads what the tests need
//! (veth, bridge, sch_ingress, cls_bpf); bpffs is mounted at `/sys/fs/bpf`.
//! A second, writable 9p share carries the script in and its output and exit
//! code out. qemu runs under TCG: KVM is not usable on the machines this
//! runs on (guests hang), so everything is slow and every run is bounded.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::kernels::Fetched;
use crate::workspace_root;

/// Where the work share is mounted in the guest. Under `/run`, so it is
/// mounted after the guest's tmpfs `/run` and stays visible.
pub const GUEST_WORK: &str = "/run/ftpct-vm";

/// Modules the initramfs loads (with their dependencies) to mount the shares;
/// those built into a kernel are skipped.
const BOOT_MODULES: [&str; 4] = ["virtio_pci", "9pnet_virtio", "9p", "overlay"];

/// The host's statically linked busybox (package busybox-static).
const BUSYBOX: &str = "/bin/busybox";

/// What a guest run left behind.
#[derive(Debug)]
pub struct GuestRun {
    /// The script's exit code.
    pub code: i32,
    /// The script's stdout and stderr.
    pub output: String,
    /// The guest's console (kept after the run, under `target/vm/`).
    pub console: PathBuf,
}

/// Boots `kernel`, runs `script` (bash) inside as root with `/` as working
/// directory, and returns its exit code and output. Fails if the guest does
/// not finish within `timeout` (qemu is killed) or never ran the script; the
/// error names the console log.
pub fn run(kernel: &Fetched, script: &str, timeout: Duration) -> Result<GuestRun> {
    let logs = workspace_root().join("target/vm");
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let console = logs.join(format!("{}-console.log", kernel.release));
    let temp = TempDir::new()?;
    let share = temp.path.join("work");
    fs::create_dir_all(&share)?;
    fs::write(share.join("script.sh"), script)?;
    fs::write(share.join("guest.sh"), GUEST_SH)?;
    let initrd = temp.path.join("initrd.cpio");
    initramfs(kernel, &temp.path.join("initramfs"), &initrd)?;

    let log =
        fs::File::create(&console).with_context(|| format!("creating {}", console.display()))?;
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-machine", "q35,accel=tcg", "-cpu", "max", "-smp", "2"])
        .args(["-m", "2048", "-nographic", "-no-reboot", "-no-user-config"])
        .arg("-kernel")
        .arg(kernel.vmlinuz())
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1 rdinit=/init"])
        .args(["-virtfs", &virtfs("/", "host", true)])
        .args([
            "-virtfs",
            &virtfs(&share.display().to_string(), "work", false),
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let started = Instant::now();
    let mut child = qemu.spawn().context("starting qemu-system-x86_64")?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() >= timeout {
            // Child::kill signals this child's PID only.
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the {} guest did not finish within {}s; console log in {}",
                kernel.release,
                timeout.as_secs(),
                console.display()
            );
        }
        thread::sleep(Duration::from_millis(200));
    };
    let output = fs::read_to_string(share.join("out.log")).unwrap_or_default();
    let code = fs::read_to_string(share.join("rc"))
        .ok()
        .and_then(|rc| rc.trim().parse().ok())
        .with_context(|| {
            format!(
                "the {} guest ended ({status}) without running the script; console log in {}",
                kernel.release,
                console.display()
            )
        })?;
    Ok(GuestRun {
        code,
        output,
        console,
    })
}

/// A `-virtfs` share of `path` tagged `tag`; inode numbers remapped so
/// several host filesystems under one share do not collide.
fn virtfs(path: &str, tag: &str, readonly: bool) -> String {
    let ro = if readonly { ",readonly=on" } else { "" };
    format!("local,path={path},mount_tag={tag},security_model=none,multidevs=remap{ro}")
}

/// Runs in the guest after `switch_root`: mounts, then the script, whose
/// output and exit code land in the work share; then powers off (qemu
/// exits on reboot with `-no-reboot`).
const GUEST_SH: &str = r#"
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t bpf bpf /sys/fs/bpf
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
ip link set lo up
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
cd /
bash /run/ftpct-vm/script.sh > /run/ftpct-vm/out.log 2>&1 </dev/null
echo $? > /run/ftpct-vm/rc
sync
/bin/busybox reboot -f
"#;

/// Builds the initramfs (`/init`, busybox, the boot modules in load order)
/// in `dir` and packs it into `out` (newc cpio, uncompressed).
fn initramfs(kernel: &Fetched, dir: &Path, out: &Path) -> Result<()> {
    let mods = dir.join("mods");
    for sub in ["bin", "proc", "sys", "dev", "lower", "upper", "newroot"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    fs::create_dir_all(&mods)?;
    fs::copy(BUSYBOX, dir.join("bin/busybox"))
        .with_context(|| format!("copying {BUSYBOX} (package busybox-static)"))?;
    for (i, module) in load_order(&kernel.modules(), &BOOT_MODULES)?
        .iter()
        .enumerate()
    {
        let name = module
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let plain = name.split(".ko").next().unwrap_or(&name);
        uncompressed(module, &mods.join(format!("{i:02}-{plain}.ko")))?;
    }
    let init = dir.join("init");
    fs::write(&init, init_script(kernel))?;
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755))?;
    let packed = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let status = Command::new("sh")
        .args(["-c", "find . | cpio -o -H newc --quiet"])
        .current_dir(dir)
        .stdout(packed)
        .status()
        .context("running cpio (package cpio)")?;
    if !status.success() {
        bail!("packing the initramfs with cpio failed with {status}");
    }
    Ok(())
}

/// The initramfs's `/init`: loads the boot modules, builds the root
/// (host root read-only under a tmpfs overlay, fresh `/tmp` and `/run`, the
/// guest's modules, the work share) and hands over to `guest.sh`. Any
/// failure powers off at once, so the run fails fast with a console log.
fn init_script(kernel: &Fetched) -> String {
    let release = &kernel.release;
    let modules = kernel.modules();
    let modules = modules.display();
    // A workspace under /tmp or /run (a CI clone) would be hidden by the
    // guest's fresh tmpfs there: it gets a writable overlay of its own.
    let root = workspace_root();
    let workspace = if root.starts_with("/tmp") || root.starts_with("/run") {
        let ws = root.display();
        format!(
            "$B mkdir -p /upper/ws/u /upper/ws/w /newroot{ws}\n\
             $B mount -t overlay overlay -o lowerdir=/lower{ws},upperdir=/upper/ws/u,workdir=/upper/ws/w /newroot{ws} || fail \"mounting the workspace\"\n"
        )
    } else {
        String::new()
    };
    format!(
        r#"#!/bin/busybox sh
B=/bin/busybox
fail() {{ echo "ftpct-vm: $*"; $B reboot -f; }}
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
for m in /mods/*.ko; do $B insmod "$m" || fail "insmod $m"; done
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose host /lower || fail "mounting the host root"
$B mount -t tmpfs tmpfs /upper
$B mkdir /upper/u /upper/w
$B mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot || fail "mounting the overlay"
$B mount -t tmpfs tmpfs /newroot/tmp
$B mount -t tmpfs tmpfs /newroot/run
{workspace}$B mkdir -p /newroot/lib/modules/{release} /newroot{GUEST_WORK}
$B mount --bind /lower{modules} /newroot/lib/modules/{release} || fail "binding the modules"
$B mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 work /newroot{GUEST_WORK} || fail "mounting the work share"
exec $B switch_root /newroot /bin/bash {GUEST_WORK}/guest.sh
"#
    )
}

/// The module files for `wanted` and their dependencies, dependencies
/// first, from `modules.dep` under `modules`; built-in ones are absent.
fn load_order(modules: &Path, wanted: &[&str]) -> Result<Vec<PathBuf>> {
    let dep_file = modules.join("modules.dep");
    let text =
        fs::read_to_string(&dep_file).with_context(|| format!("reading {}", dep_file.display()))?;
    let deps: Vec<(&str, Vec<&str>)> = text
        .lines()
        .filter_map(|line| {
            let (module, deps) = line.split_once(':')?;
            Some((module, deps.split_whitespace().collect()))
        })
        .collect();
    let mut order: Vec<&str> = Vec::new();
    for name in wanted {
        let Some((module, needs)) = deps.iter().find(|(m, _)| module_name(m) == *name) else {
            continue;
        };
        // modules.dep lists the whole closure, the deepest dependency last.
        for m in needs.iter().rev().chain([module]) {
            if !order.contains(m) {
                order.push(m);
            }
        }
    }
    Ok(order.into_iter().map(|m| modules.join(m)).collect())
}

/// `kernel/fs/9p/9p.ko.xz` → `9p`; `-` and `_` are the same to the kernel.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split(".ko").next().unwrap_or(file).replace('-', "_")
}

/// Copies a module, decompressing `.ko.xz`/`.ko.zst`/`.ko.gz` (busybox's
/// insmod takes plain ELF only).
fn uncompressed(from: &Path, to: &Path) -> Result<()> {
    let name = from.to_string_lossy();
    let tool = match () {
        _ if name.ends_with(".ko.xz") => "xz",
        _ if name.ends_with(".ko.zst") => "zstd",
        _ if name.ends_with(".ko.gz") => "gzip",
        _ => {
            fs::copy(from, to).with_context(|| format!("copying {name}"))?;
            return Ok(());
        }
    };
    let file = fs::File::create(to).with_context(|| format!("creating {}", to.display()))?;
    let status = Command::new(tool)
        .arg("-dc")
        .arg(from)
        .stdout(file)
        .status()
        .with_context(|| format!("running {tool}"))?;
    if !status.success() {
        bail!("{tool} -dc {name} failed with {status}");
    }
    Ok(())
}

/// A private directory under the system temp dir, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new() -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("ftpct-vm-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::module_name;

    #[test]
    fn module_names_from_paths() {
        assert_eq!(module_name("kernel/fs/9p/9p.ko"), "9p");
        assert_eq!(
            module_name("kernel/net/9p/9pnet_virtio.ko.xz"),
            "9pnet_virtio"
        );
        assert_eq!(module_name("kernel/fs/overlayfs/overlay.ko.zst"), "overlay");
        assert_eq!(
            module_name("kernel/drivers/virtio/virtio-pci.ko"),
            "virtio_pci"
        );
    }
}
