//! An interactive FTP control connection (Python ftplib in a child process)
//! driven line by line, so a test can interleave steps across hosts: the
//! client announces a passive port, the intruder tries it, then the client
//! connects and transfers.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use super::TransferMode;
use super::python::{helper_argv, parse_digest};
use crate::fixtures::FileDigest;
use crate::netns::Netns;
use crate::process::{ChildGuard, truncate};
use crate::servers::FtpTarget;

/// Upper bound for one command's reply (the helper's own socket timeouts
/// are 10 s).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A logged-in FTP session in a child process inside a namespace. The child
/// is told to quit, and in any case stopped, when this is dropped.
pub struct FtpSession {
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    child: ChildGuard,
}

impl FtpSession {
    /// Connects to `target` from `ns` and logs in.
    pub fn open(ns: &Netns, target: &FtpTarget) -> Result<Self> {
        let argv = helper_argv(&[
            "session".into(),
            target.host.to_string(),
            target.port.to_string(),
            target.credentials.user.clone(),
            target.credentials.password.clone(),
        ]);
        let mut cmd = ns.command(&argv);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(cmd)?;
        let stdin = child.child_mut().stdin.take();
        let stdout = child.child_mut().stdout.take().context("session stdout")?;
        let stderr_pipe = child.child_mut().stderr.take().context("session stderr")?;
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
        let mut session = Self {
            stdin,
            lines,
            stderr,
            child,
        };
        let first = session.read_line().context("waiting for login")?;
        if first != "ready" {
            bail!("FTP session login to {} failed: {first}", target.url(""));
        }
        Ok(session)
    }

    /// PID of the helper process.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Sends `PASV`; returns the announced port.
    pub fn pasv(&mut self) -> Result<u16> {
        self.port_command("pasv")
    }

    /// Sends `EPSV`; returns the announced port.
    pub fn epsv(&mut self) -> Result<u16> {
        self.port_command("epsv")
    }

    /// Sends `PASV` or `EPSV` (for a passive `mode`) or sets up a local
    /// listener and sends `PORT`/`EPRT` (active); returns the port.
    pub fn prepare(&mut self, mode: TransferMode) -> Result<u16> {
        self.port_command(mode.as_str())
    }

    /// Listens locally and sends `PORT`; returns the local port.
    pub fn port(&mut self) -> Result<u16> {
        self.port_command("port")
    }

    /// Listens locally and sends `EPRT`; returns the local port.
    pub fn eprt(&mut self) -> Result<u16> {
        self.port_command("eprt")
    }

    /// Opens the data connection to the last announced passive port.
    pub fn connect(&mut self) -> Result<()> {
        self.command("connect").map(drop)
    }

    /// Sends `RETR path` over the prepared data channel (connecting first
    /// if passive and not yet connected); returns the content's digest.
    pub fn retr(&mut self, path: &str) -> Result<FileDigest> {
        let reply = self.command(&format!("retr {path}"))?;
        parse_digest(&reply)
    }

    /// Sends `QUIT` and waits (bounded) for the helper to exit.
    pub fn quit(mut self) -> Result<()> {
        self.command("quit")?;
        self.stdin = None;
        self.child.wait_timeout(Duration::from_secs(5))?;
        Ok(())
    }

    fn port_command(&mut self, cmd: &str) -> Result<u16> {
        let reply = self.command(cmd)?;
        reply
            .parse()
            .with_context(|| format!("bad port in reply to {cmd}: {reply:?}"))
    }

    /// Sends one command line; returns the text after `ok` or fails with
    /// the `err` text.
    fn command(&mut self, cmd: &str) -> Result<String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("session already closed"))?;
        writeln!(stdin, "{cmd}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("sending {cmd:?}: {}", self.stderr_text()))?;
        let reply = self
            .read_line()
            .with_context(|| format!("reply to {cmd:?}"))?;
        if let Some(rest) = reply.strip_prefix("ok") {
            return Ok(rest.trim().to_string());
        }
        bail!("{cmd:?} failed: {reply}")
    }

    fn read_line(&mut self) -> Result<String> {
        match self.lines.recv_timeout(REPLY_TIMEOUT) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => {
                bail!("no reply within {REPLY_TIMEOUT:?}: {}", self.stderr_text())
            }
            Err(RecvTimeoutError::Disconnected) => {
                bail!("helper exited: {}", self.stderr_text())
            }
        }
    }

    fn stderr_text(&self) -> String {
        let text = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        truncate(&text, 2000).to_string()
    }
}

impl Drop for FtpSession {
    fn drop(&mut self) {
        // EOF on stdin makes the helper send QUIT and exit; give it a moment,
        // then `self.child`'s own guard stops it if it is still running.
        if self.stdin.take().is_some() {
            let _ = self.child.wait_timeout(Duration::from_secs(1));
        }
    }
}
