//! Plain TCP endpoints for tests that need a connection on a guarded port
//! which is not an FTP data connection: an echo listener and a long-lived
//! echo client (both the Python helper in a child process).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::process::{ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use super::python::helper_argv;
use crate::netns::Netns;
use crate::process::{ChildGuard, truncate};

/// Extra time for interpreter start-up on top of a helper's own timeout.
const STARTUP_SLACK: Duration = Duration::from_secs(10);

/// A helper child with piped stdio whose stdout is read line by line.
struct LineChild {
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    child: ChildGuard,
}

impl LineChild {
    fn spawn(ns: &Netns, args: &[String]) -> Result<Self> {
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
        })
    }

    fn read_line(&self, timeout: Duration) -> Result<String> {
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

    fn send_line(&mut self, line: &str) -> Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("helper stdin closed"))?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("sending {line:?}"))
    }

    fn stderr_text(&self) -> String {
        let text = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        truncate(&text, 2000).to_string()
    }
}

impl Drop for LineChild {
    fn drop(&mut self) {
        // EOF makes an echo client close its socket and exit; the guard
        // stops whatever is still running.
        if self.stdin.take().is_some() {
            let _ = self.child.wait_timeout(Duration::from_millis(500));
        }
    }
}

/// A TCP echo listener in a namespace; stopped (by PID) on drop.
pub struct EchoServer {
    inner: LineChild,
    port: u16,
}

impl EchoServer {
    /// Listens on `addr:port` in `ns` (`::` for every address of both
    /// families) and waits until the socket is listening.
    pub fn start(ns: &Netns, addr: &str, port: u16) -> Result<Self> {
        let inner = LineChild::spawn(ns, &["echo-server".into(), addr.into(), port.to_string()])?;
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
        self.inner.child.pid()
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
