//! Bounded process execution: run a command with a timeout, and a guard that
//! stops a spawned child (by PID) when it goes out of scope.

use std::ffi::OsStr;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Timeout used by helpers that do not take an explicit one: 30 s, or
/// `FTPCT_TEST_TIMEOUT_SECS` (the kernel matrix runs the tests in guests
/// emulated without KVM, where loading the programs alone takes tens of
/// seconds).
pub fn default_timeout() -> Duration {
    std::env::var("FTPCT_TEST_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(30), Duration::from_secs)
}

/// How long a stopped child gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Polling interval for child status checks.
const POLL: Duration = Duration::from_millis(5);

/// How long to wait for a pipe reader after the child exited.
const PIPE_DRAIN: Duration = Duration::from_secs(2);

/// A human-readable rendering of a command line, for error messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Polls `cond` every 100 ms until it holds or `timeout` passes; returns
/// whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> Result<bool>) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if cond()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `cmd` to completion with stdin closed and stdout/stderr captured.
///
/// If it is still running after `timeout`, it is killed (SIGKILL, by PID)
/// and an error carrying its stderr so far is returned. A non-zero exit
/// status is *not* an error here; see [`check_success`].
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<Output> {
    let desc = describe(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("spawning `{desc}`"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_deadline(&mut child, Instant::now() + timeout)
        .with_context(|| format!("waiting for `{desc}`"))?;
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout = stdout.recv_timeout(PIPE_DRAIN).unwrap_or_default();
    let stderr = stderr.recv_timeout(PIPE_DRAIN).unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => {
            bail!(
                "`{desc}` timed out after {timeout:?} and was killed; stderr: {}",
                String::from_utf8_lossy(&stderr).trim()
            )
        }
    }
}

/// Turns a non-zero exit status into an error that includes stderr (and
/// stdout, which some tools use for diagnostics).
pub fn check_success(desc: &str, output: Output) -> Result<Output> {
    if output.status.success() {
        return Ok(output);
    }
    bail!(
        "`{desc}` failed ({}): stderr: {} stdout: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim(),
        truncate(&String::from_utf8_lossy(&output.stdout), 2000)
    )
}

/// Truncates `s` to at most `max` bytes (on a char boundary) for messages.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s.trim();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].trim()
}

/// Reads a pipe to its end on a helper thread; the result arrives on the
/// returned channel (empty if there was no pipe).
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    rx
}

/// Polls `child` until it exits or `deadline` passes (`Ok(None)`).
fn wait_deadline(child: &mut Child, deadline: Instant) -> Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(POLL);
    }
}

/// Sends `signal` to the single process `pid` (never a group).
pub fn signal_pid(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 1 {
        return;
    }
    // SAFETY: kill(2) has no memory-safety preconditions; pid > 1 so this
    // never targets a process group or every process.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// A spawned child process that is stopped (SIGTERM, then SIGKILL after
/// [`STOP_GRACE`]) and reaped when the guard is dropped.
pub struct ChildGuard {
    child: Child,
    desc: String,
}

impl ChildGuard {
    /// Spawns `cmd` (with whatever stdio the caller configured).
    pub fn spawn(mut cmd: Command) -> Result<Self> {
        let desc = describe(&cmd);
        let child = cmd.spawn().with_context(|| format!("spawning `{desc}`"))?;
        Ok(Self { child, desc })
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line, for messages.
    pub fn description(&self) -> &str {
        &self.desc
    }

    /// Mutable access to the underlying [`Child`] (e.g. to take its pipes).
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The exit status if the child has already exited.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Waits at most `timeout` for the child to exit on its own.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        wait_deadline(&mut self.child, Instant::now() + timeout)
    }

    /// Stops the child: SIGTERM, wait up to `grace`, then SIGKILL; reaps it.
    pub fn stop(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        signal_pid(self.child.id(), libc::SIGTERM);
        if let Ok(Some(_)) = wait_deadline(&mut self.child, Instant::now() + grace) {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop(STOP_GRACE);
    }
}
