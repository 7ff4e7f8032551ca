//! A Python helper in a child process, driven line by line over piped stdio:
//! what the interactive FTP session and the echo endpoints have in common.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use super::python::helper_argv;
use crate::netns::Netns;
use crate::process::{ChildGuard, truncate};

/// A helper child with piped stdio whose stdout is read line by line.
pub(crate) struct LineChild {
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    child: ChildGuard,
    /// How long drop waits for the helper to exit after closing its stdin.
    exit_grace: Duration,
}

impl LineChild {
    /// Starts the helper with `args` in `ns`.
    pub(crate) fn spawn(ns: &Netns, args: &[String], exit_grace: Duration) -> Result<Self> {
        let mut cmd = ns.command(&helper_argv(args));
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(cmd)?;
        let stdin = child.child_mut().stdin.take();
        let stdout = child.child_mut().stdout.take().context("helper stdout")?;
        let stderr_pipe = child.child_mut().stderr.take().context("helper stderr")?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut pipe = stderr_pipe;
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        Ok(Self {
            stdin,
            lines,
            stderr,
            child,
            exit_grace,
        })
    }

    /// The next stdout line, waiting at most `timeout`.
    pub(crate) fn read_line(&self, timeout: Duration) -> Result<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => {
                bail!("no output within {timeout:?}: {}", self.stderr_text())
            }
            Err(RecvTimeoutError::Disconnected) => {
                bail!("helper exited: {}", self.stderr_text())
            }
        }
    }

    /// Writes one line to the helper's stdin.
    pub(crate) fn send_line(&mut self, line: &str) -> Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("helper stdin closed"))?;
        let sent = writeln!(stdin, "{line}").and_then(|()| stdin.flush());
        sent.with_context(|| format!("sending {line:?}: {}", self.stderr_text()))
    }

    /// Closes stdin (EOF tells the helper to finish) and waits up to `timeout`.
    pub(crate) fn finish(&mut self, timeout: Duration) -> Result<()> {
        self.stdin = None;
        self.child.wait_timeout(timeout)?;
        Ok(())
    }

    /// PID of the helper process.
    pub(crate) fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// What the helper wrote to stderr so far (truncated).
    pub(crate) fn stderr_text(&self) -> String {
        let text = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        truncate(&text, 2000).to_string()
    }
}

impl Drop for LineChild {
    fn drop(&mut self) {
        // EOF asks the helper to finish (a session sends QUIT, an echo
        // client closes its socket); the guard stops whatever still runs.
        if self.stdin.take().is_some() {
            let _ = self.child.wait_timeout(self.exit_grace);
        }
    }
}
