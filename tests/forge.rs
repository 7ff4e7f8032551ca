//! Tools for hostile tests: forged TCP segments (scapy, `py/forge.py`), once
//! or repeatedly, with sequence numbers read from a capture if need be; a
//! spoofed SYN flood; packet captures with tcpdump; logging TCP listeners;
//! raw FTP control sessions; connections and passive transfers from a chosen
//! source port; table exhaustion (connection churn, an `EPSV` flood from
//! many source addresses, a flood of admitted data connections).
//!
//! Forged frames are sent from a lab namespace's `eth0` straight to the
//! server's MAC address, so any source address (a spoofed client, random
//! addresses of 198.18.0.0/15) reaches the server. Every child process is
//! owned by a guard and every wait is bounded.

use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::clients::ConnectResult;
use crate::clients::python::python;
use crate::fixtures::{FileDigest, ServedTree};
use crate::lab::LAB_IFACE;
use crate::netns::Netns;
use crate::process::{ChildGuard, check_success, describe, run_with_timeout};
use crate::servers::FtpTarget;

/// The forging helper, passed to the interpreter with `-c`.
const SCRIPT: &str = include_str!("py/forge.py");

/// Upper bound for one run of the helper (scapy start-up included).
const FORGE_TIMEOUT: Duration = Duration::from_secs(90);

/// Upper bound for a background helper or tcpdump to get ready.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// argv running the forging helper with `args`.
pub fn forge_argv<S: AsRef<str>>(args: &[S]) -> Vec<String> {
    let mut argv = vec![python(), "-c".into(), SCRIPT.into()];
    argv.extend(args.iter().map(|a| a.as_ref().to_string()));
    argv
}

/// Runs the helper with `args` in `ns` to completion; returns stdout.
pub fn forge<S: AsRef<str>>(ns: &Netns, args: &[S]) -> Result<String> {
    let argv = forge_argv(args);
    let what = args
        .first()
        .map(|a| a.as_ref().to_string())
        .unwrap_or_default();
    let out = ns
        .run_ok_timeout(&argv, FORGE_TIMEOUT)
        .with_context(|| format!("forge.py {what} in {}", ns.name()))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The MAC address of `eth0` in `ns`.
pub fn iface_mac(ns: &Netns) -> Result<String> {
    let out = ns.run_ok(&["ip", "-j", "link", "show", "dev", LAB_IFACE])?;
    let v: Value = serde_json::from_slice(&out.stdout).context("parsing ip -j link")?;
    v[0]["address"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no MAC address in {v}"))
}

/// One forged TCP segment (or, with [`Segment::fragments`], its fragments).
#[derive(Clone, Debug)]
pub struct Segment(Value);

impl Segment {
    /// A segment `src:sport -> dst:dport` with `flags` (scapy notation:
    /// `"S"`, `"A"`, `"R"`, `"RA"`, `"PA"`, ...) and a random sequence number.
    pub fn new(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, flags: &str) -> Self {
        Self(json!({
            "fam": if src.is_ipv4() { 4 } else { 6 },
            "src": src.to_string(),
            "dst": dst.to_string(),
            "sport": sport,
            "dport": dport,
            "flags": flags,
            "seq": null,
        }))
    }

    /// Carries `text` (latin-1) as payload.
    pub fn payload(mut self, text: &str) -> Self {
        self.0["payload"] = json!(text);
        self
    }

    /// Uses sequence number `seq` instead of a random one.
    pub fn seq(mut self, seq: u32) -> Self {
        self.0["seq"] = json!(seq);
        self
    }

    /// Uses acknowledgment number `ack` instead of 0.
    pub fn ack(mut self, ack: u32) -> Self {
        self.0["ack"] = json!(ack);
        self
    }

    /// Sends it `n` times (each with its own random sequence number unless
    /// [`Segment::seq`] fixed one).
    pub fn count(mut self, n: u32) -> Self {
        self.0["count"] = json!(n);
        self
    }

    /// Adds TCP options (MSS, SACK permitted, timestamps, window scale): 20
    /// more header bytes, so a SYN has something to fragment.
    pub fn options(mut self) -> Self {
        self.0["options"] = json!(true);
        self
    }

    /// Sends it as IP fragments: IPv4 fragments of `size` payload bytes; for
    /// IPv6 a first fragment of `first` bytes then `size`-byte ones, with a
    /// destination options header after the fragment header if `destopt`.
    pub fn fragments(mut self, size: u32, first: u32, destopt: bool) -> Self {
        self.0["frag"] = json!({"size": size, "first": first, "destopt": destopt});
        self
    }

    /// The JSON spec understood by `forge.py send`.
    pub fn spec(&self) -> &Value {
        &self.0
    }
}

/// Sends `segments` from `eth0` of `from` to the MAC address of `eth0` in
/// `to`; returns the number of frames sent.
pub fn send_segments(from: &Netns, to: &Netns, segments: &[Segment]) -> Result<u64> {
    let mac = iface_mac(to)?;
    let specs = Value::Array(segments.iter().map(|s| s.spec().clone()).collect());
    let out = forge(from, &["send", LAB_IFACE, &mac, &specs.to_string()])?;
    parse_sent(&out)
}

/// Starts sending `segments` from `from` to `to` in the background, a round
/// every `interval` (fresh random sequence numbers unless fixed) for
/// `duration`; returns once the first round is under way. The sender stops
/// on its own after `duration`, or when the returned guard drops.
pub fn send_repeatedly(
    from: &Netns,
    to: &Netns,
    segments: &[Segment],
    duration: Duration,
    interval: Duration,
) -> Result<Background> {
    let mac = iface_mac(to)?;
    let specs: Vec<Value> = segments.iter().map(|s| s.spec().clone()).collect();
    let doc = json!({
        "duration": duration.as_secs_f64(),
        "interval": interval.as_secs_f64(),
        "specs": specs,
    });
    Background::forge(
        from,
        &["send", LAB_IFACE, &mac, &doc.to_string()],
        Some("started"),
    )
}

/// Parses the helper's `sent N`.
fn parse_sent(out: &str) -> Result<u64> {
    out.lines()
        .find_map(|l| l.strip_prefix("sent "))
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("unexpected forge.py output {out:?}"))
}

/// A background process with its output in a log file, stopped on drop.
pub struct Background {
    child: ChildGuard,
    log: PathBuf,
    _dir: TempDir,
}

impl Background {
    /// Starts `argv` in `ns`; waits (bounded) until its log contains `ready`
    /// (if given).
    pub fn start<S: AsRef<str>>(ns: &Netns, argv: &[S], ready: Option<&str>) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("ftpct-hostile-")
            .tempdir()
            .context("temp dir")?;
        let log = dir.path().join("output.log");
        let argv: Vec<&str> = argv.iter().map(AsRef::as_ref).collect();
        let child = ns.spawn_logged(&argv, &log)?;
        let mut bg = Self {
            child,
            log,
            _dir: dir,
        };
        if let Some(needle) = ready {
            bg.wait_for(needle, READY_TIMEOUT)
                .with_context(|| format!("starting {}", bg.child.description()))?;
        }
        Ok(bg)
    }

    /// Starts the forging helper with `args` in the background.
    pub fn forge<S: AsRef<str>>(ns: &Netns, args: &[S], ready: Option<&str>) -> Result<Self> {
        Self::start(ns, &forge_argv(args), ready)
    }

    /// The log so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (returns the log), failing if
    /// the process exits first or `timeout` passes.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.output();
            if text.contains(needle) {
                return Ok(text);
            }
            if let Some(status) = self.child.try_status()? {
                // One last look: it may have written the line and exited.
                let text = self.output();
                if text.contains(needle) {
                    return Ok(text);
                }
                bail!("exited with {status} before printing {needle:?}: {text}");
            }
            if Instant::now() >= deadline {
                bail!("no {needle:?} within {timeout:?}: {text}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) for the process to exit on its own; returns the log.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<String> {
        match self.child.wait_timeout(timeout)? {
            Some(status) if status.success() => Ok(self.output()),
            Some(status) => bail!("exited with {status}: {}", self.output()),
            None => bail!("still running after {timeout:?}: {}", self.output()),
        }
    }

    /// Stops the process (SIGTERM, then SIGKILL) and returns the log.
    pub fn stop(mut self) -> String {
        self.child.stop(Duration::from_secs(5));
        self.output()
    }
}

/// A tcpdump capture on `eth0` of a namespace, written to a pcap file.
pub struct Capture {
    bg: Background,
    pcap: PathBuf,
    _dir: TempDir,
}

impl Capture {
    /// Starts capturing packets matching the pcap `filter` and waits until
    /// tcpdump is listening.
    pub fn start(ns: &Netns, filter: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("ftpct-capture-")
            .tempdir()
            .context("temp dir")?;
        let pcap = dir.path().join("capture.pcap");
        let pcap_arg = pcap.display().to_string();
        let argv = [
            "tcpdump",
            "-i",
            LAB_IFACE,
            "-nn",
            // Without immediate mode, packets wait in a ring block that is
            // handed over only when full or after a timeout, and stopping
            // tcpdump before then would lose them.
            "--immediate-mode",
            "-U",
            "-B",
            "16384",
            "-Z",
            "root",
            "-w",
            &pcap_arg,
            filter,
        ];
        let bg = Background::start(ns, &argv, Some("listening on"))
            .with_context(|| format!("tcpdump {filter:?} in {}", ns.name()))?;
        Ok(Self {
            bg,
            pcap,
            _dir: dir,
        })
    }

    /// Lets in-flight packets arrive, stops tcpdump and returns the
    /// captured packets as `tcpdump -nn` text lines.
    pub fn finish(self) -> Result<Vec<String>> {
        thread::sleep(Duration::from_millis(500));
        let log = self.bg.stop();
        let mut cmd = Command::new("tcpdump");
        cmd.args(["-nn", "-S", "-r"]).arg(&self.pcap);
        let desc = describe(&cmd);
        let out = check_success(&desc, run_with_timeout(cmd, Duration::from_secs(30))?)
            .with_context(|| format!("reading the capture; tcpdump said: {log}"))?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    }
}

/// Captured lines that are SYN-ACKs (`Flags [S.]`) sent to port `dport`.
pub fn syn_acks_to(lines: &[String], dport: u16) -> usize {
    let needle = format!(".{dport}: Flags [S.]");
    lines.iter().filter(|l| l.contains(&needle)).count()
}

/// Captured lines that are RSTs (`Flags [R]` or `[R.]`).
pub fn rsts(lines: &[String]) -> usize {
    lines.iter().filter(|l| l.contains("Flags [R")).count()
}

/// TCP listeners (the helper's `listen`) on a set of ports that log each
/// accepted connection with the number of bytes it carried.
pub struct Sink {
    bg: Background,
}

impl Sink {
    /// Listens on `host` (e.g. `"::"`, dual-stack) at `ports` (`"45000"`,
    /// `"80,45001"` or `"50000-50099"`).
    pub fn start(ns: &Netns, host: &str, ports: &str) -> Result<Self> {
        let bg = Background::forge(ns, &["listen", host, ports], Some("listening"))?;
        Ok(Self { bg })
    }

    /// Connections from `peer` to `port` accepted so far, with their sizes.
    pub fn accepted(&self, peer: &str, port: u16) -> Vec<u64> {
        let prefix = format!("accepted {peer} {port} ");
        self.bg
            .output()
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
            .collect()
    }

    /// Waits (bounded) until a connection from `peer` to `port` carrying
    /// `bytes` was accepted.
    pub fn wait_accepted(&self, peer: &str, port: u16, bytes: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.accepted(peer, port).contains(&bytes) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the listener printed.
    pub fn output(&self) -> String {
        self.bg.output()
    }
}

/// pyftpdlib (`forge.py ftpserver`) on port 21 accepting `PORT`/`EPRT` to
/// any address and port (FTP bounce allowed), passive ports 40000-40099,
/// giving up on active data connections after 3 s. It connects as soon as
/// it gets `PORT` and answers `200` only once connected (`425` if it could
/// not). Stopped on drop.
pub struct PermissiveFtpd {
    _bg: Background,
    tree: ServedTree,
}

impl PermissiveFtpd {
    /// Starts it in `ns`, serving a fresh [`ServedTree`] anonymously
    /// (read-only).
    pub fn start(ns: &Netns) -> Result<Self> {
        let tree = ServedTree::create((0, 0))?;
        let root = tree.root().display().to_string();
        let bg = Background::forge(
            ns,
            &["ftpserver", &root, "21", "40000", "40099", "3"],
            Some("serving"),
        )?;
        Ok(Self { _bg: bg, tree })
    }

    /// The served tree.
    pub fn tree(&self) -> &ServedTree {
        &self.tree
    }
}

/// Logs in to `host:port` from `ns` and sends `cmds` (waiting for the final
/// reply of transfers); returns one `CMD => REPLY` line per command.
pub fn ftp_commands(
    ns: &Netns,
    host: IpAddr,
    port: u16,
    user: &str,
    password: &str,
    cmds: &[&str],
) -> Result<Vec<String>> {
    let mut args = vec![
        "ftpcmds".to_string(),
        host.to_string(),
        port.to_string(),
        user.into(),
        password.into(),
    ];
    args.extend(cmds.iter().map(|c| c.to_string()));
    let out = forge(ns, &args)?;
    Ok(out.lines().map(str::to_string).collect())
}

/// The reply `ftp_commands` recorded for `cmd` (the first such command).
pub fn reply_to<'a>(lines: &'a [String], cmd: &str) -> Option<&'a str> {
    let prefix = format!("{cmd} => ");
    lines.iter().find_map(|l| l.strip_prefix(&prefix))
}

/// Local ports of `ns`'s established TCP connections to remote port
/// `dport`.
pub fn local_ports_to(ns: &Netns, dport: u16) -> Result<Vec<u16>> {
    let filter = format!("( dport = :{dport} )");
    let out = ns.run_ok(&["ss", "-Htn", "state", "established", &filter])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let local = l.split_whitespace().nth(2)?;
            local.rsplit(':').next()?.parse().ok()
        })
        .collect())
}

/// Whether an XDP program is attached to `eth0` of `ns`.
pub fn xdp_attached(ns: &Netns, iface: &str) -> Result<bool> {
    let out = ns.run_ok(&["ip", "-d", "link", "show", "dev", iface])?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("prog/xdp"))
}

/// Connects once from `ns` to `addr:port` from local port `sport` (bound
/// with `SO_REUSEADDR`; root may use a port below 1024, such as 21), waiting
/// at most `timeout`. Once connected, if `text` is given, sends it and
/// returns what came back within `timeout` (as much as was sent at most).
pub fn connect_from(
    ns: &Netns,
    addr: IpAddr,
    port: u16,
    sport: u16,
    timeout: Duration,
    text: Option<&str>,
) -> Result<(ConnectResult, Option<String>)> {
    let mut args = vec![
        "connect-from".to_string(),
        addr.to_string(),
        port.to_string(),
        sport.to_string(),
        timeout.as_secs_f64().to_string(),
    ];
    args.extend(text.map(str::to_string));
    let out = forge(ns, &args)?;
    let mut lines = out.lines();
    let result = match lines.next().map(str::trim) {
        Some("connected") => ConnectResult::Connected,
        Some("refused") => ConnectResult::Refused,
        Some("timeout") => ConnectResult::TimedOut,
        other => ConnectResult::Other(other.unwrap_or_default().to_string()),
    };
    let received = lines
        .find_map(|l| l.strip_prefix("received "))
        .map(|json| serde_json::from_str::<String>(json.trim()))
        .transpose()
        .with_context(|| format!("unexpected connect-from output {out:?}"))?;
    Ok((result, received))
}

/// A passive download whose data connection came from a chosen port.
#[derive(Clone, Debug)]
pub struct Retrieved {
    /// What arrived.
    pub digest: FileDigest,
    /// The server's data port (announced by `227`/`229`).
    pub data_port: u16,
    /// The client's local port of the data connection.
    pub src_port: u16,
    /// The server's final reply (`226 ...`).
    pub final_reply: String,
}

/// Logs in to `target` from `ns` and downloads `path` over `PASV` (`EPSV`
/// over IPv6), opening the data connection from local port `sport`.
pub fn retr_from(ns: &Netns, target: &FtpTarget, path: &str, sport: u16) -> Result<Retrieved> {
    let out = forge(
        ns,
        &[
            "retr-from".to_string(),
            target.host.to_string(),
            target.port.to_string(),
            target.credentials.user.clone(),
            target.credentials.password.clone(),
            path.to_string(),
            sport.to_string(),
        ],
    )?;
    let line = out
        .lines()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("no summary from retr-from: {out:?}"))?;
    let v: Value = serde_json::from_str(line).with_context(|| format!("parsing {line}"))?;
    let port = |name: &str| -> Result<u16> {
        v[name]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .with_context(|| format!("no {name} in {v}"))
    };
    Ok(Retrieved {
        digest: FileDigest {
            len: v["len"]
                .as_u64()
                .with_context(|| format!("no len in {v}"))?,
            sha256: v["sha256"].as_str().unwrap_or_default().to_string(),
        },
        data_port: port("data_port")?,
        src_port: port("src_port")?,
        final_reply: v["final"].as_str().unwrap_or_default().to_string(),
    })
}

/// Sequence numbers of one direction of a TCP connection, read from a
/// capture (`tcpdump -nn -S` lines, as [`Capture::finish`] returns them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqState {
    /// The sender's next sequence number: the end of its last segment that
    /// carried a sequence number (data, SYN or FIN).
    pub next_seq: u32,
    /// The acknowledgment number of its last segment: the other direction's
    /// next sequence number.
    pub ack: u32,
}

/// The sequence numbers of the last captured segments from `src:sport` to
/// `dst:dport`, if any segment with data (or SYN/FIN) and one with an ACK
/// were captured.
pub fn last_seq_ack(
    lines: &[String],
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
) -> Option<SeqState> {
    let needle = format!(" {src}.{sport} > {dst}.{dport}: ");
    let mut next_seq = None;
    let mut ack = None;
    for line in lines.iter().filter(|l| l.contains(&needle)) {
        let field = |name: &str| {
            line.split(", ")
                .find_map(|f| f.strip_prefix(name))
                .map(str::trim)
        };
        if let Some(seq) = field("seq ") {
            // `seq A:B` (B is the next one) or `seq A` for a SYN or FIN.
            next_seq = match seq.split_once(':') {
                Some((_, end)) => end.parse().ok(),
                None => seq.parse::<u32>().ok().map(|s| s.wrapping_add(1)),
            }
            .or(next_seq);
        }
        if let Some(a) = field("ack ") {
            ack = a.parse().ok().or(ack);
        }
    }
    Some(SeqState {
        next_seq: next_seq?,
        ack: ack?,
    })
}

/// The JSON summary line (the last line starting with `{`) of a helper run.
fn summary(out: &str) -> Result<Value> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("no summary line in {out:?}"))?;
    serde_json::from_str(line).with_context(|| format!("parsing {line}"))
}

/// A non-negative integer field of a summary.
fn count_field(v: &Value, name: &str) -> Result<u64> {
    v[name]
        .as_u64()
        .with_context(|| format!("no {name} in {v}"))
}

/// What a connection churn ([`churn`]) did.
#[derive(Clone, Debug)]
pub struct Churn {
    /// Cycles completed.
    pub cycles: u64,
    /// Cycles that read the server's `220` greeting before the RST.
    pub banners: u64,
    /// Cycles that failed (no connection, no greeting).
    pub errors: u64,
    /// Wall time, seconds.
    pub secs: f64,
    /// Cycles per second.
    pub rate: f64,
}

/// From `ns`, `count` cycles of: connect to `addr:port`, read the first
/// line (an FTP server's greeting), abort the connection with a RST
/// (`SO_LINGER` 0); `parallel` at a time, for at most `max` (keep it well
/// under 90 s, the helper's own bound). Cycle `n` connects from local port
/// `sport_base + n` (wrapping back to `sport_base` after 65535), so each is
/// a new 4-tuple; with `sport_base` 0 the kernel picks the port, and for
/// one destination it uses only the even ports of its ephemeral range
/// (about 14,000 4-tuples).
pub fn churn(
    ns: &Netns,
    addr: IpAddr,
    port: u16,
    count: u32,
    parallel: u32,
    max: Duration,
    sport_base: u16,
) -> Result<Churn> {
    let out = forge(
        ns,
        &[
            "churn".to_string(),
            addr.to_string(),
            port.to_string(),
            count.to_string(),
            parallel.to_string(),
            max.as_secs_f64().to_string(),
            sport_base.to_string(),
        ],
    )?;
    let v = summary(&out)?;
    Ok(Churn {
        cycles: count_field(&v, "cycles")?,
        banners: count_field(&v, "banners")?,
        errors: count_field(&v, "errors")?,
        secs: v["secs"].as_f64().unwrap_or_default(),
        rate: v["rate"].as_f64().unwrap_or_default(),
    })
}

/// What an `EPSV` flood from many source addresses ([`epsv_flood`]) did.
#[derive(Clone, Debug)]
pub struct EpsvFlood {
    /// Control connections that logged in and sent all their `EPSV`s.
    pub conns: u64,
    /// `229` replies received.
    pub epsv_229: u64,
    /// Other replies to the `EPSV`s.
    pub other_replies: u64,
    /// Control connections that failed.
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Wall time, seconds.
    pub secs: f64,
}

/// From `ns`, for each of `sources` (addresses of `ns`), opens
/// `conns_per_source` control connections to `addr` port 21 from that
/// address, `parallel` at a time; each logs in anonymously, sends `EPSV`
/// `epsv_per_conn` times (pipelined four at a time), reads the replies and
/// closes. Starts no new connection after `max`.
pub fn epsv_flood(
    ns: &Netns,
    addr: IpAddr,
    sources: &[IpAddr],
    conns_per_source: u32,
    epsv_per_conn: u32,
    parallel: u32,
    max: Duration,
) -> Result<EpsvFlood> {
    let list: Vec<String> = sources.iter().map(IpAddr::to_string).collect();
    let out = forge(
        ns,
        &[
            "epsvflood".to_string(),
            addr.to_string(),
            "21".to_string(),
            list.join(","),
            conns_per_source.to_string(),
            epsv_per_conn.to_string(),
            parallel.to_string(),
            max.as_secs_f64().to_string(),
        ],
    )?;
    let v = summary(&out)?;
    Ok(EpsvFlood {
        conns: count_field(&v, "conns")?,
        epsv_229: count_field(&v, "epsv_229")?,
        other_replies: count_field(&v, "other_replies")?,
        errors: count_field(&v, "errors")?,
        first_error: v["first_error"].as_str().map(str::to_string),
        secs: v["secs"].as_f64().unwrap_or_default(),
    })
}

/// What a `PASV` + connect flood ([`PasvConnectFlood`]) did.
#[derive(Clone, Debug)]
pub struct PasvConnect {
    /// Ports announced by `227`s.
    pub announced: u64,
    /// Data connections established.
    pub connected: u64,
    /// Data connections the server refused (a RST: the SYN got through).
    pub refused: u64,
    /// Data connections that timed out (the SYN or its answer was dropped).
    pub timeout: u64,
    /// Other failures (connections or control sessions).
    pub errors: u64,
    /// Wall time, seconds.
    pub secs: f64,
}

/// Many admitted data connections, in the background: `parallel` logged-in
/// control connections to `target` send `total` `PASV`s between them,
/// `pipeline` (at most 4) at once, and connect to every announced port
/// (only the last one of a batch listens: the others answer with a RST,
/// but ftpct admitted the SYN and recorded a flow either way). Stops after
/// `max`, or when dropped.
pub struct PasvConnectFlood {
    bg: Background,
}

impl PasvConnectFlood {
    /// Starts the flood from `ns`.
    pub fn start(
        ns: &Netns,
        target: &FtpTarget,
        total: u32,
        pipeline: u32,
        parallel: u32,
        max: Duration,
    ) -> Result<Self> {
        let bg = Background::forge(
            ns,
            &[
                "pasvconnect".to_string(),
                target.host.to_string(),
                target.port.to_string(),
                target.credentials.user.clone(),
                target.credentials.password.clone(),
                total.to_string(),
                pipeline.to_string(),
                parallel.to_string(),
                max.as_secs_f64().to_string(),
            ],
            Some("started"),
        )?;
        Ok(Self { bg })
    }

    /// Whether the flood has printed its summary (it is over).
    pub fn done(&self) -> bool {
        self.bg.output().lines().any(|l| l.starts_with('{'))
    }

    /// Waits (bounded) for the flood to end; returns its summary.
    pub fn finish(mut self, timeout: Duration) -> Result<PasvConnect> {
        let out = self.bg.wait_exit(timeout)?;
        let v = summary(&out)?;
        Ok(PasvConnect {
            announced: count_field(&v, "announced")?,
            connected: count_field(&v, "connected")?,
            refused: count_field(&v, "refused")?,
            timeout: count_field(&v, "timeout")?,
            errors: count_field(&v, "errors")?,
            secs: v["secs"].as_f64().unwrap_or_default(),
        })
    }

    /// Stops the flood now; returns what it printed.
    pub fn stop(self) -> String {
        self.bg.stop()
    }
}
