//! An interactive FTP control connection (Python ftplib in a child process)
//! driven line by line, so a test can interleave steps across hosts: the
//! client announces a passive port, the intruder tries it, then the client
//! connects and transfers.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::TransferMode;
use super::line_child::LineChild;
use super::python::{parse_digest, session_args};
use crate::fixtures::FileDigest;
use crate::netns::Netns;
use crate::servers::FtpTarget;

/// Upper bound for one command's reply (the helper's own socket timeouts
/// are 10 s).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A logged-in FTP session in a child process inside a namespace. The child
/// is told to quit, and in any case stopped, when this is dropped.
pub struct FtpSession {
    inner: LineChild,
}

impl FtpSession {
    /// Connects to `target` from `ns` and logs in.
    pub fn open(ns: &Netns, target: &FtpTarget) -> Result<Self> {
        let mut args = session_args("session", target, "");
        // `session` takes no path.
        args.pop();
        // EOF on stdin makes the helper send QUIT and exit.
        let session = Self {
            inner: LineChild::spawn(ns, &args, Duration::from_secs(1))?,
        };
        let first = session
            .inner
            .read_line(REPLY_TIMEOUT)
            .context("waiting for login")?;
        if first != "ready" {
            bail!("FTP session login to {} failed: {first}", target.url(""));
        }
        Ok(session)
    }

    /// PID of the helper process.
    pub fn pid(&self) -> u32 {
        self.inner.pid()
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
        self.inner.finish(Duration::from_secs(5))
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
        self.inner.send_line(cmd)?;
        let reply = self
            .inner
            .read_line(REPLY_TIMEOUT)
            .with_context(|| format!("reply to {cmd:?}"))?;
        if let Some(rest) = reply.strip_prefix("ok") {
            return Ok(rest.trim().to_string());
        }
        bail!("{cmd:?} failed: {reply}")
    }
}
