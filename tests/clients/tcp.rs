//! Plain TCP endpoints for tests that need a connection on a guarded port
//! which is not an FTP data connection: an echo listener and a long-lived
//! echo client (both the Python helper in a child process).

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::line_child::LineChild;
use crate::netns::Netns;

/// Extra time for interpreter start-up on top of a helper's own timeout.
const STARTUP_SLACK: Duration = Duration::from_secs(10);
/// How long drop waits for an echo helper to exit after EOF.
const EXIT_GRACE: Duration = Duration::from_millis(500);

/// A TCP echo listener in a namespace; stopped (by PID) on drop.
pub struct EchoServer {
    inner: LineChild,
    port: u16,
}

impl EchoServer {
    /// Listens on `addr:port` in `ns` (`::` for every address of both
    /// families) and waits until the socket is listening.
    pub fn start(ns: &Netns, addr: &str, port: u16) -> Result<Self> {
        let inner = LineChild::spawn(
            ns,
            &["echo-server".into(), addr.into(), port.to_string()],
            EXIT_GRACE,
        )?;
        let first = inner
            .read_line(STARTUP_SLACK)
            .with_context(|| format!("starting echo server on {addr} port {port}"))?;
        if first != "listening" {
            bail!("echo server on port {port}: unexpected {first:?}");
        }
        Ok(Self { inner, port })
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// PID of the listener process.
    pub fn pid(&self) -> u32 {
        self.inner.pid()
    }
}

/// One long-lived TCP connection from a namespace to an echo server.
pub struct EchoClient {
    inner: LineChild,
    timeout: Duration,
}

impl EchoClient {
    /// Connects from `ns` to `addr:port`; each connect and read waits at
    /// most `timeout`.
    pub fn connect(ns: &Netns, addr: IpAddr, port: u16, timeout: Duration) -> Result<Self> {
        let inner = LineChild::spawn(
            ns,
            &[
                "echo-client".into(),
                addr.to_string(),
                port.to_string(),
                timeout.as_secs_f64().to_string(),
            ],
            EXIT_GRACE,
        )?;
        let first = inner.read_line(timeout + STARTUP_SLACK)?;
        if first != "connected" {
            bail!("echo client to {addr} port {port}: {first}");
        }
        Ok(Self { inner, timeout })
    }

    /// Sends `text` (one line, no newline) and returns what came back.
    pub fn exchange(&mut self, text: &str) -> Result<String> {
        self.inner.send_line(text)?;
        let reply = self.inner.read_line(self.timeout + STARTUP_SLACK)?;
        match reply.strip_prefix("echo ") {
            Some(back) => Ok(back.to_string()),
            None if reply == "echo" => Ok(String::new()),
            None => bail!("echo of {text:?} failed: {reply}"),
        }
    }
}
