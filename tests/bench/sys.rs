//! Small system helpers: running code inside a lab namespace, interface
//! offloads and sysfs knobs, kernel-thread CPU time and affinity, interface
//! counters, and facts about the machine.

use std::ffi::c_void;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use ftpct_e2e::Netns;
use ftpct_e2e::process::run_with_timeout;

/// Runs `f` on a fresh thread whose network namespace is `ns`; the thread
/// ends afterwards, so nothing else ever runs in the wrong namespace. File
/// descriptors it creates (sockets, BPF links) belong to the whole process.
pub fn in_netns<T: Send>(ns: &Netns, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let path = ns.path().to_path_buf();
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                enter_netns(&path)?;
                f()
            })
            .join()
            .unwrap_or_else(|_| bail!("thread in {} panicked", ns.name()))
    })
}

/// Moves the calling thread into the network namespace at `path` (for a
/// thread that stays there until it ends).
pub fn enter_netns(path: &Path) -> Result<()> {
    let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: setns(2) on a valid namespace fd; it changes only this
    // thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    ensure!(
        rc == 0,
        "setns {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    Ok(())
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
/// Legacy ethtool commands (still served by every kernel).
pub const ETHTOOL_STSO: u32 = 0x1f;
pub const ETHTOOL_SGRO: u32 = 0x2c;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct Ifreq {
    name: [u8; 16],
    data: *mut c_void,
    _pad: [u8; 16],
}

/// Sets a legacy ethtool offload (`ETHTOOL_SGRO`, `ETHTOOL_STSO`) of `dev`
/// in `ns`, like `ethtool -K dev gro|tso on|off`.
pub fn set_offload(ns: &Netns, dev: &str, cmd: u32, on: bool) -> Result<()> {
    let dev = dev.to_string();
    in_netns(ns, move || {
        let mut value = EthtoolValue {
            cmd,
            data: u32::from(on),
        };
        let mut req = Ifreq {
            name: [0; 16],
            data: (&mut value as *mut EthtoolValue).cast(),
            _pad: [0; 16],
        };
        ensure!(dev.len() < 16, "interface name too long: {dev}");
        req.name[..dev.len()].copy_from_slice(dev.as_bytes());
        // SAFETY: plain socket(2); closed below.
        let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
        ensure!(sock >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: SIOCETHTOOL with a valid ifreq whose data points to a live
        // ethtool_value for the duration of the call.
        let rc = unsafe { libc::ioctl(sock, SIOCETHTOOL as _, &mut req as *mut Ifreq) };
        let err = std::io::Error::last_os_error();
        // SAFETY: closing the socket opened above.
        unsafe { libc::close(sock) };
        ensure!(rc == 0, "ethtool command {cmd:#x} on {dev}: {err}");
        Ok(())
    })
}

/// Writes `value` to the sysfs file `path` as seen from inside `ns`
/// (`ip netns exec` mounts that namespace's sysfs).
pub fn write_sysfs(ns: &Netns, path: &str, value: &str) -> Result<()> {
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", ns.name(), "sh", "-c"])
        .arg("printf '%s\\n' \"$1\" > \"$2\"")
        .args(["sh", value, path]);
    let out = run_with_timeout(cmd, Duration::from_secs(10))?;
    ensure!(
        out.status.success(),
        "writing {value} to {path} in {}: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// PIDs and names of the kernel's NAPI threads (`napi/<dev>-<id>`).
pub fn napi_threads() -> Vec<(u32, String)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            let comm = comm.trim();
            comm.starts_with("napi/").then(|| (pid, comm.to_string()))
        })
        .collect()
}

/// Nanoseconds task `tid` has spent on a CPU (`/proc/<tid>/schedstat`, the
/// scheduler's exact runtime, not a tick sample).
pub fn cpu_time_ns(tid: u32) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{tid}/schedstat"))
        .with_context(|| format!("reading /proc/{tid}/schedstat"))?;
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("parsing /proc/{tid}/schedstat: {text}"))
}

/// Context switches of task `tid` so far (voluntary + involuntary).
pub fn context_switches(tid: u32) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{tid}/status"))
        .with_context(|| format!("reading /proc/{tid}/status"))?;
    Ok(text
        .lines()
        .filter(|l| l.contains("ctxt_switches:"))
        .filter_map(|l| l.split(':').nth(1)?.trim().parse::<u64>().ok())
        .sum())
}

/// Restricts task `tid` to `cpu`.
pub fn pin_to_cpu(tid: u32, cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let rc = libc::sched_setaffinity(
            libc::pid_t::try_from(tid)?,
            std::mem::size_of::<libc::cpu_set_t>(),
            &set,
        );
        ensure!(
            rc == 0,
            "sched_setaffinity({tid}, cpu {cpu}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Packet counters of one interface.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
}

impl LinkStats {
    /// Counters of `dev` in `ns` (`ip -s -j link show`).
    pub fn read(ns: &Netns, dev: &str) -> Result<Self> {
        let out = ns.run_ok(&["ip", "-s", "-j", "link", "show", "dev", dev])?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let s = &v[0]["stats64"];
        let get = |dir: &str, key: &str| s[dir][key].as_u64().unwrap_or(0);
        Ok(Self {
            rx_packets: get("rx", "packets"),
            rx_dropped: get("rx", "dropped"),
            tx_packets: get("tx", "packets"),
            tx_dropped: get("tx", "dropped"),
        })
    }

    /// Counter growth since `earlier`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            rx_packets: self.rx_packets.saturating_sub(earlier.rx_packets),
            rx_dropped: self.rx_dropped.saturating_sub(earlier.rx_dropped),
            tx_packets: self.tx_packets.saturating_sub(earlier.tx_packets),
            tx_dropped: self.tx_dropped.saturating_sub(earlier.tx_dropped),
        }
    }
}

/// The MAC address of `dev` in `ns`.
pub fn mac_address(ns: &Netns, dev: &str) -> Result<String> {
    let out = ns.run_ok(&["ip", "-j", "link", "show", "dev", dev])?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    v[0]["address"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no address for {dev} in {}", ns.name()))
}

/// Facts about the machine for the report.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    pub cpu_model: String,
    pub cpus: usize,
    pub cpu_mhz: String,
    pub uname: String,
    pub memory: String,
    pub load_before: String,
    pub load_after: String,
    pub tools: Vec<(String, String)>,
}

impl Machine {
    pub fn probe() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let cpus = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let memory = fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .next()
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        let tools = [
            ("trafgen", vec!["trafgen", "-v"]),
            ("nft", vec!["nft", "--version"]),
            ("curl", vec!["curl", "--version"]),
        ]
        .into_iter()
        .map(|(name, argv)| (name.to_string(), first_line(&argv)))
        .collect();
        Self {
            cpu_model: field("model name"),
            cpus,
            cpu_mhz: field("cpu MHz"),
            uname: first_line(&["uname", "-srvmo"]),
            memory,
            load_before: load_average(),
            load_after: String::new(),
            tools,
        }
    }
}

/// `/proc/loadavg`'s three averages.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// First line of a command's stdout (empty on failure).
fn first_line(argv: &[&str]) -> String {
    let mut cmd = std::process::Command::new(argv[0]);
    cmd.args(&argv[1..]);
    run_with_timeout(cmd, Duration::from_secs(5))
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// Whether `path` exists (for messages about missing tools).
pub fn require_tool(path: &str, package: &str) -> Result<()> {
    ensure!(
        Path::new(path).exists(),
        "{path} not found; install the Debian package {package} (cargo xtask bench does)"
    );
    Ok(())
}

/// Whether `perf` runs here.
pub fn perf_available() -> bool {
    let mut cmd = std::process::Command::new("perf");
    cmd.arg("--version");
    run_with_timeout(cmd, Duration::from_secs(5)).is_ok_and(|o| o.status.success())
}

/// The `n` hottest symbols of a perf recording: (percent, symbol).
pub fn perf_top(data: &Path, n: usize) -> Vec<(f64, String)> {
    let mut cmd = std::process::Command::new("perf");
    cmd.args([
        "report",
        "--stdio",
        "--no-children",
        "--sort",
        "symbol",
        "-i",
    ])
    .arg(data);
    let Ok(out) = run_with_timeout(cmd, Duration::from_secs(60)) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('%'))
        .filter_map(|l| {
            let (pct, rest) = l.trim().split_once('%')?;
            let pct: f64 = pct.trim().parse().ok()?;
            let rest = rest.trim();
            let rest = rest
                .strip_prefix("[k]")
                .or_else(|| rest.strip_prefix("[.]"))
                .unwrap_or(rest);
            let sym = rest.split_whitespace().next()?.to_string();
            Some((pct, sym))
        })
        .take(n)
        .collect()
}
