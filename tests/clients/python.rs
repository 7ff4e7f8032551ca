//! One-shot uses of the Python helper `py/ftp_helper.py`: banner wait,
//! TCP connect probe and ftplib download.

use std::env;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::TransferMode;
use crate::fixtures::FileDigest;
use crate::netns::Netns;
use crate::servers::{FtpTarget, Tls};

/// Debian's interpreter, which has pyftpdlib and scapy (a `python3` on PATH
/// may be another installation without them).
pub const PYTHON: &str = "/usr/bin/python3";

/// The helper script, passed to the interpreter with `-c`.
pub(crate) const HELPER: &str = include_str!("../py/ftp_helper.py");

/// Extra time allowed for interpreter start-up on top of a helper's own
/// timeout.
const STARTUP_SLACK: Duration = Duration::from_secs(10);

/// The interpreter to use: `FTPCT_PYTHON` or [`PYTHON`].
pub fn python() -> String {
    env::var("FTPCT_PYTHON").unwrap_or_else(|_| PYTHON.to_string())
}

/// argv running the helper with `args`.
pub(crate) fn helper_argv(args: &[String]) -> Vec<String> {
    let mut argv = vec![python(), "-c".into(), HELPER.into()];
    argv.extend_from_slice(args);
    argv
}

/// Outcome of a single TCP connection attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectResult {
    /// The three-way handshake completed.
    Connected,
    /// The peer answered with a RST.
    Refused,
    /// No answer within the timeout (e.g. the SYN was dropped).
    TimedOut,
    /// Any other failure (e.g. unreachable), with the error text.
    Other(String),
}

/// Tries once to connect from `ns` to `addr:port`, waiting at most
/// `timeout`.
pub fn tcp_connect(
    ns: &Netns,
    addr: IpAddr,
    port: u16,
    timeout: Duration,
) -> Result<ConnectResult> {
    let argv = helper_argv(&[
        "connect".into(),
        addr.to_string(),
        port.to_string(),
        timeout.as_secs_f64().to_string(),
    ]);
    let out = ns.run_ok_timeout(&argv, timeout + STARTUP_SLACK)?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(match text.trim() {
        "connected" => ConnectResult::Connected,
        "refused" => ConnectResult::Refused,
        "timeout" => ConnectResult::TimedOut,
        other => ConnectResult::Other(other.to_string()),
    })
}

/// Tries the connections in `list` at the same time; each waits `wait`.
pub fn probe_all(
    list: &[(&Netns, std::net::IpAddr, u16)],
    wait: Duration,
) -> Result<Vec<ConnectResult>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = list
            .iter()
            .map(|&(ns, addr, port)| s.spawn(move || tcp_connect(ns, addr, port, wait)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("probe thread panicked"))?
            })
            .collect()
    })
}

/// Whether `addr:port` in `ns` answers with a 220 banner within `timeout`
/// (inside TLS for implicit FTPS).
pub fn wait_banner(
    ns: &Netns,
    addr: IpAddr,
    port: u16,
    tls: Option<Tls>,
    timeout: Duration,
) -> Result<bool> {
    let mut args = tls_args(tls);
    args.extend([
        "banner".into(),
        addr.to_string(),
        port.to_string(),
        timeout.as_secs_f64().to_string(),
    ]);
    let argv = helper_argv(&args);
    let out = ns.run_timeout(&argv, timeout + STARTUP_SLACK)?;
    Ok(out.status.success())
}

/// Downloads `path` with Python's ftplib using `mode` (all four modes are
/// sent literally; PASV and PORT need IPv4); returns the content's digest.
/// A `PASV` data connection goes to the control connection's address, or
/// to the `227`'s if `target` says so (`trust_server_pasv_ipv4_address`).
pub fn ftplib_download(
    ns: &Netns,
    target: &FtpTarget,
    path: &str,
    mode: TransferMode,
) -> Result<FileDigest> {
    let mut args = session_args("download", target, path);
    args.push(mode.as_str().into());
    if target.use_pasv_address {
        args.push("trust-pasv".into());
    }
    let argv = helper_argv(&args);
    let out = ns
        .run_ok(&argv)
        .with_context(|| format!("ftplib download {} ({mode:?})", target.url(path)))?;
    parse_digest(String::from_utf8_lossy(&out.stdout).trim())
}

/// The helper's `[--tls=MODE] cmd HOST PORT USER PASS PATH` arguments for
/// `target`.
pub(crate) fn session_args(cmd: &str, target: &FtpTarget, path: &str) -> Vec<String> {
    let mut args = tls_args(target.tls);
    args.extend([
        cmd.into(),
        target.host.to_string(),
        target.port.to_string(),
        target.credentials.user.clone(),
        target.credentials.password.clone(),
        path.into(),
    ]);
    args
}

/// The helper's leading FTPS option, if any.
fn tls_args(tls: Option<Tls>) -> Vec<String> {
    tls.map(|t| format!("--tls={}", t.as_str()))
        .into_iter()
        .collect()
}

/// Upper bound for a whole long session, loss on the path included.
const LONG_SESSION_TIMEOUT: Duration = Duration::from_secs(300);

/// On one control connection to `target`, `rounds` times: downloads
/// `path`, lists, uploads a fresh blob and downloads it back, all over PASV
/// (the `227`'s address if `target` says so), or all active (`PORT` with
/// the local address) if `active`. Returns the number of transfers, all of
/// which matched.
pub fn ftplib_long_session(
    ns: &Netns,
    target: &FtpTarget,
    path: &str,
    rounds: u32,
    active: bool,
) -> Result<u32> {
    let mut args = session_args("long-session", target, path);
    args.push(rounds.to_string());
    if active {
        args.push("active".into());
    } else if target.use_pasv_address {
        args.push("trust-pasv".into());
    }
    // Bounded: every socket operation in the helper has its own timeout.
    let out = ns.run_timeout(&helper_argv(&args), LONG_SESSION_TIMEOUT)?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match text.strip_prefix("ok ") {
        Some(n) if out.status.success() => n
            .parse()
            .with_context(|| format!("bad transfer count {text:?}")),
        _ => bail!(
            "long session with {}: {text} {}",
            target.url(path),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// Runs the helper with `args` (bounded by `timeout`) and parses the
/// number after its `ok`.
fn helper_number(ns: &Netns, args: &[String], timeout: Duration, what: &str) -> Result<f64> {
    let out = ns.run_timeout(&helper_argv(args), timeout)?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match text.strip_prefix("ok ") {
        Some(n) if out.status.success() => n.parse().with_context(|| format!("{what}: {text:?}")),
        _ => bail!(
            "{what}: {text} {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// The benchmark's control-heavy session: on one control connection to
/// `target`, `rounds` times a passive `LIST`. Returns the rounds' seconds.
pub fn ftplib_list_rounds(ns: &Netns, target: &FtpTarget, rounds: u32) -> Result<f64> {
    let mut args = session_args("list-rounds", target, "");
    // `list-rounds` takes ROUNDS where the others take PATH.
    args.pop();
    args.push(rounds.to_string());
    helper_number(ns, &args, LONG_SESSION_TIMEOUT, "list rounds")
}

/// The benchmark's TLS calls: `calls` round trips of 8 bytes between a
/// client and a server TLS object in one thread, joined by memory BIOs
/// (`cert`, `key`: the server's). Returns nanoseconds per round trip (two
/// `SSL_write_ex`, two `SSL_read_ex`).
pub fn tls_round_trip_ns(ns: &Netns, calls: u32, cert: &Path, key: &Path) -> Result<f64> {
    let args = [
        "tls-calls".to_string(),
        calls.to_string(),
        cert.display().to_string(),
        key.display().to_string(),
    ];
    helper_number(ns, &args, LONG_SESSION_TIMEOUT, "TLS calls")
}

/// Parses the helper's `LEN SHA256` output.
pub(crate) fn parse_digest(text: &str) -> Result<FileDigest> {
    let mut parts = text.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(len), Some(sha), None) => Ok(FileDigest {
            len: len
                .parse()
                .with_context(|| format!("bad length in {text:?}"))?,
            sha256: sha.to_string(),
        }),
        _ => bail!("unexpected digest line {text:?}"),
    }
}
