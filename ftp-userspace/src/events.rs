//! Audit events (issue #12, item 6): the records the programs put in each
//! interface's `FTPCT_EVENTS` ring buffer, as one `key=value` line (for
//! journald and fail2ban) or one JSON object each.
//!
//! A ring buffer has one read position, so it has one reader: the daemon
//! when it runs (it logs every event and passes it on to `ftpct events`
//! through a socket, like `conntrack -E` listeners), else `ftpct events`
//! itself.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    mem::size_of,
    net::IpAddr,
    os::unix::net::{UnixListener, UnixStream},
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::maps::{MapData, RingBuf};
use ftp_ebpf_common::{counters::Counter, events::Event, map_names};
use serde::{Deserialize, Serialize};

use crate::{attach::monotonic_ns, netns::Netns, pins, tables};

/// How often a reader drains the ring buffers. The kernel sends at most a
/// few hundred events per second per CPU, and a ring holds thousands.
pub const DRAIN_PERIOD: Duration = Duration::from_millis(100);

/// One audit event, as ftpct prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLine {
    /// UTC, RFC 3339 with milliseconds.
    pub time: String,
    /// The interface whose programs saw it.
    pub iface: String,
    /// Why: the counter's name (`syn_dropped`, `refused_bounce`, ...).
    pub reason: String,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    /// Events of this source left out by the rate limit since its previous.
    pub suppressed: u32,
}

impl std::fmt::Display for EventLine {
    /// `time=... iface=eth0 reason=syn_dropped src=198.18.0.3 sport=40000
    /// dst=198.18.0.1 dport=40050 suppressed=0`: fixed order, no spaces
    /// inside values, so `src=<HOST>` is all a fail2ban filter needs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "time={} iface={} reason={} src={} sport={} dst={} dport={} suppressed={}",
            self.time,
            self.iface,
            self.reason,
            self.src,
            self.sport,
            self.dst,
            self.dport,
            self.suppressed
        )
    }
}

/// The ring buffer of the attachment pinned in `dir`.
pub fn ring(dir: &Path) -> Result<RingBuf<MapData>> {
    RingBuf::try_from(tables::open(dir, map_names::EVENTS)?).with_context(|| {
        format!(
            "{} has no event ring buffer (attached by an older ftpct?)",
            dir.display()
        )
    })
}

/// Takes every event waiting in `ring`.
pub fn drain<T: std::borrow::Borrow<MapData>>(
    ring: &mut RingBuf<T>,
    iface: &str,
) -> Vec<EventLine> {
    let mut out = Vec::new();
    // Bounded: a reader that could never catch up still returns.
    for _ in 0..65_536 {
        let Some(item) = ring.next() else { break };
        if let Some(line) = decode(&item, iface) {
            out.push(line);
        }
    }
    out
}

/// An event record as a line; `None` for a record of another size.
pub fn decode(bytes: &[u8], iface: &str) -> Option<EventLine> {
    if bytes.len() < size_of::<Event>() {
        return None;
    }
    // SAFETY: `bytes` holds at least one `Event`, a plain-integer
    // `#[repr(C)]` type for which every bit pattern is valid; the read is
    // unaligned-safe.
    let e: Event = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let reason = Counter::ALL.get(e.reason as usize)?.name().to_string();
    Some(EventLine {
        time: wall_clock(e.ts_ns),
        iface: iface.to_string(),
        reason,
        src: tables::ip(e.family, &e.src),
        sport: e.sport,
        dst: tables::ip(e.family, &e.dst),
        dport: e.dport,
        suppressed: e.suppressed,
    })
}

/// The UTC time of a CLOCK_MONOTONIC instant, as RFC 3339.
fn wall_clock(mono_ns: u64) -> String {
    let ago = Duration::from_nanos(monotonic_ns().saturating_sub(mono_ns));
    let at = SystemTime::now()
        .checked_sub(ago)
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(at)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of a time since the epoch.
fn rfc3339(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

/// The socket the daemon of network namespace `netns` passes events on at.
pub fn socket_path(netns: &Netns) -> PathBuf {
    PathBuf::from(format!("/run/ftpct/events-{}.sock", netns.dir_name()))
}

/// The daemon's end: listeners that `ftpct events` connected.
pub struct Hub {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<UnixStream>,
}

impl Hub {
    /// Listens at `socket_path(netns)` (a socket left by a daemon that died
    /// is replaced).
    pub fn bind(netns: &Netns) -> Result<Self> {
        let path = socket_path(netns);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .with_context(|| format!("listening at {}", path.display()))?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            path,
            clients: Vec::new(),
        })
    }

    /// Sends `lines` (as JSON) to every listener, after taking new ones; a
    /// listener that cannot take them at once is dropped (it reconnects).
    pub fn publish(&mut self, lines: &[EventLine]) {
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_ok() {
                self.clients.push(stream);
            }
        }
        if lines.is_empty() {
            return;
        }
        let mut text = String::new();
        for line in lines {
            if let Ok(json) = serde_json::to_string(line) {
                text.push_str(&json);
                text.push('\n');
            }
        }
        self.clients
            .retain_mut(|c| c.write_all(text.as_bytes()).is_ok());
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `ftpct events`: prints every event of `only` (or of every interface of
/// this namespace) as it comes, until killed. Through the daemon when it
/// runs, else from the ring buffers.
pub fn follow(root: &Path, only: Option<&str>, json: bool) -> Result<()> {
    let netns = Netns::current()?;
    let print = |line: &EventLine| {
        if only.is_some_and(|i| i != line.iface) {
            return;
        }
        if json {
            println!("{}", serde_json::to_string(line).unwrap_or_default());
        } else {
            println!("{line}");
        }
    };
    if let Ok(stream) = UnixStream::connect(socket_path(&netns)) {
        for text in BufReader::new(stream).lines() {
            let text = text.context("reading from the daemon")?;
            match serde_json::from_str::<EventLine>(&text) {
                Ok(line) => print(&line),
                Err(err) => log::debug!("from the daemon: {err}: {text}"),
            }
        }
        bail!("the daemon closed the event stream (it stopped)");
    }
    let mut ifaces = pins::attached_interfaces(root, &netns)?;
    if let Some(one) = only {
        if !ifaces.iter().any(|i| i == one) {
            bail!(
                "not attached to {one} in this network namespace ({})",
                netns.display_name()
            );
        }
        ifaces.retain(|i| i == one);
    }
    if ifaces.is_empty() {
        bail!(
            "not attached to any interface in this network namespace ({})",
            netns.display_name()
        );
    }
    let mut rings = ifaces
        .iter()
        .map(|iface| Ok((iface.clone(), ring(&pins::iface_dir(root, &netns, iface))?)))
        .collect::<Result<Vec<_>>>()?;
    loop {
        for (iface, ring) in &mut rings {
            drain(ring, iface).iter().for_each(print);
        }
        std::thread::sleep(DRAIN_PERIOD);
    }
}

/// Parses one `key=value` event line back (tests, fail2ban-like readers).
pub fn parse_line(text: &str) -> Result<EventLine> {
    let field = |key: &str| -> Result<&str> {
        text.split(' ')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .ok_or_else(|| anyhow!("no {key}= in {text:?}"))
    };
    let num = |key: &str| -> Result<u32> {
        field(key)?
            .parse()
            .with_context(|| format!("{key} in {text:?}"))
    };
    Ok(EventLine {
        time: field("time")?.to_string(),
        iface: field("iface")?.to_string(),
        reason: field("reason")?.to_string(),
        src: field("src")?.parse()?,
        sport: u16::try_from(num("sport")?)?,
        dst: field("dst")?.parse()?,
        dport: u16::try_from(num("dport")?)?,
        suppressed: num("suppressed")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(
            rfc3339(Duration::from_millis(0)),
            "1970-01-01T00:00:00.000Z"
        );
        // 2026-11-30T08:17:01.123Z
        assert_eq!(
            rfc3339(Duration::from_millis(1_796_026_621_123)),
            "2026-11-30T08:17:01.123Z"
        );
        assert_eq!(
            rfc3339(Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn a_line_parses_back_to_its_event() {
        let line = EventLine {
            time: "2026-11-30T08:17:01.123Z".into(),
            iface: "eth0".into(),
            reason: "syn_dropped".into(),
            src: "2001:db8::3".parse().expect("addr"),
            sport: 40000,
            dst: "2001:db8::1".parse().expect("addr"),
            dport: 40050,
            suppressed: 7,
        };
        assert_eq!(parse_line(&line.to_string()).expect("parses"), line);
    }
}
