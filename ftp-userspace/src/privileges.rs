//! Checks that the process may load BPF programs, before touching anything.

use anyhow::{Result, bail};

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// Effective capability bits from /proc/self/status.
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

/// Fails with a clear message unless the process can load and attach
/// programs. Every command touching pins calls it, reading ones too: opening
/// a pinned map takes the same privileges, and the same message tells the
/// user what to do.
pub fn require_bpf_admin(what: &str) -> Result<()> {
    let caps = effective_caps().unwrap_or(0);
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    let bpf = has(CAP_BPF) || has(CAP_SYS_ADMIN);
    if !(bpf && has(CAP_NET_ADMIN)) {
        bail!(
            "{what} needs root (CAP_BPF and CAP_NET_ADMIN; CAP_SYS_ADMIN to mount bpffs): \
             run it with sudo"
        );
    }
    Ok(())
}
