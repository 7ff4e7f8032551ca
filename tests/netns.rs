//! Named network namespaces owned by a test, and running commands in them.
//!
//! Commands are entered with `nsenter --net=/run/netns/NAME` rather than
//! `ip netns exec`, because the latter remounts `/sys` in a private mount
//! namespace, which would hide the host's bpffs pins from ftpct.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::{
    self, ChildGuard, STOP_GRACE, check_success, default_timeout, run_with_timeout,
};

/// Prefix of every namespace (and other global object) a lab creates.
pub const NAME_PREFIX: &str = "ftpct-";

/// Where `ip netns add` bind-mounts namespaces.
const NETNS_DIR: &str = "/run/netns";

/// Timeout for `ip netns add/del`.
const IP_TIMEOUT: Duration = Duration::from_secs(10);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A token unique within this machine for the life of this process:
/// `<pid>-<counter>`. Used to name namespaces, pin roots and so on.
pub fn unique_token() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A network namespace created by this process; dropped, it kills what is
/// still running inside and deletes the namespace.
pub struct Netns {
    name: String,
    path: PathBuf,
}

impl Netns {
    /// Creates `ftpct-<pid>-<counter>-<label>`.
    pub fn create(label: &str) -> Result<Self> {
        let name = format!("{NAME_PREFIX}{}-{label}", unique_token());
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "add", &name]);
        check_success(&process::describe(&cmd), run_with_timeout(cmd, IP_TIMEOUT)?)?;
        let path = Path::new(NETNS_DIR).join(&name);
        Ok(Self { name, path })
    }

    /// The namespace's name as shown by `ip netns list`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's bind mount, `/run/netns/NAME`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The namespace's nsfs inode number (as in `/proc/PID/ns/net` ->
    /// `net:[INODE]`), which ftpct keys its pins by.
    pub fn inode(&self) -> Result<u64> {
        let meta =
            fs::metadata(&self.path).with_context(|| format!("stat {}", self.path.display()))?;
        Ok(meta.ino())
    }

    /// A [`Command`] that runs `argv` inside this namespace (not started).
    /// It never sees the SSH session the suite may run in: ftpct leaves
    /// that session's port open (`SSH_CONNECTION`), and the lab must not
    /// depend on how it was started.
    pub fn command<S: AsRef<OsStr>>(&self, argv: &[S]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path.display()))
            .arg("--")
            .args(argv)
            .env_remove("SSH_CONNECTION");
        cmd
    }

    /// Runs `argv` inside the namespace with [`default_timeout`]; a non-zero
    /// exit status is returned, not an error.
    pub fn run<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<Output> {
        self.run_timeout(argv, default_timeout())
    }

    /// Runs `argv` inside the namespace, killing it after `timeout`.
    pub fn run_timeout<S: AsRef<OsStr>>(&self, argv: &[S], timeout: Duration) -> Result<Output> {
        run_with_timeout(self.command(argv), timeout)
    }

    /// Like [`Netns::run`], but a non-zero exit status is an error carrying
    /// stderr.
    pub fn run_ok<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<Output> {
        self.run_ok_timeout(argv, default_timeout())
    }

    /// Like [`Netns::run_timeout`], but a non-zero exit status is an error.
    pub fn run_ok_timeout<S: AsRef<OsStr>>(&self, argv: &[S], timeout: Duration) -> Result<Output> {
        let cmd = self.command(argv);
        let desc = format!("[{}] {}", self.name, process::describe(&cmd));
        check_success(&desc, run_with_timeout(cmd, timeout)?)
    }

    /// Starts `argv` in the background inside the namespace, with stdio
    /// discarded. The child is stopped when the guard drops.
    pub fn spawn<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<ChildGuard> {
        let mut cmd = self.command(argv);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        ChildGuard::spawn(cmd)
    }

    /// Starts `argv` in the background with stdout and stderr appended to
    /// `log`.
    pub fn spawn_logged<S: AsRef<OsStr>>(&self, argv: &[S], log: &Path) -> Result<ChildGuard> {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening log {}", log.display()))?;
        let mut cmd = self.command(argv);
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        ChildGuard::spawn(cmd)
    }

    /// PIDs of all processes whose network namespace is this one.
    pub fn pids(&self) -> Vec<u32> {
        let Ok(meta) = fs::metadata(&self.path) else {
            return Vec::new();
        };
        let wanted = format!("net:[{}]", meta.ino());
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                fs::read_link(format!("/proc/{pid}/ns/net"))
                    .is_ok_and(|link| link.as_os_str() == wanted.as_str())
            })
            .collect()
    }

    /// Stops every process still running in the namespace (all of them were
    /// started by this lab): SIGTERM, a bounded wait, then SIGKILL.
    pub fn kill_all(&self) {
        let pids = self.pids();
        if pids.is_empty() {
            return;
        }
        for &pid in &pids {
            process::signal_pid(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline && !self.pids().is_empty() {
            thread::sleep(Duration::from_millis(20));
        }
        for pid in self.pids() {
            process::signal_pid(pid, libc::SIGKILL);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline && !self.pids().is_empty() {
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.kill_all();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "del", &self.name]);
        match run_with_timeout(cmd, IP_TIMEOUT) {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: ip netns del {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("warning: ip netns del {}: {e:#}", self.name),
        }
    }
}

/// Deletes namespaces named `ftpct-<pid>-…` whose creating process no longer
/// exists (left behind by a test run that was killed without unwinding).
/// Processes inside them are left alone.
pub fn sweep_stale_namespaces() -> Result<()> {
    let Ok(entries) = fs::read_dir(NETNS_DIR) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if stale_owner(&name).is_none() {
            continue;
        }
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "del", &name]);
        let out = run_with_timeout(cmd, IP_TIMEOUT)?;
        if !out.status.success() {
            bail!(
                "deleting stale namespace {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

/// If `name` is `ftpct-<pid>-…` and `<pid>` is not running, returns the pid.
pub(crate) fn stale_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let pid: u32 = rest.split('-').next()?.parse().ok()?;
    let alive = Path::new(&format!("/proc/{pid}")).exists();
    (!alive).then_some(pid)
}
