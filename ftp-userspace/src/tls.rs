//! FTPS inspection at attach: the kernel offsets the probes need, a program
//! on the tracepoint every TCP read fires, and uprobes on the TLS library of every
//! FTP server listening on a control port (`tls_discovery`). Links are
//! pinned beside the interface's others (`link_tls_*`), so they live and go
//! with the attachment. A uprobe sits on the library file, not a process:
//! a server restarted on the same library is inspected again at once.
//!
//! Inspection is best effort: where it cannot work (no BTF, no uprobes, no
//! library found) attach says so in one line and the data path refuses
//! what it cannot read, as without inspection (`--ftps-range` is the
//! fallback).

use std::{
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf,
    maps::Array,
    programs::{ProbeKind, TracePoint, UProbe, links::FdLink, uprobe::UProbeScope},
};
use ftp_ebpf_common::{
    map_names,
    tls::{PROBED, READ_TRACEPOINT, TlsConfig},
};

use crate::{
    attach::pin_link,
    kernel_btf,
    netns::Netns,
    tls_discovery::{self, FtpServerTls},
};

/// Prefix of the pinned links of FTPS inspection.
pub const LINK_TLS_PREFIX: &str = "link_tls_";

/// Prefix of the pinned uprobe programs, which a later process probes new
/// libraries with.
const PROG_TLS_PREFIX: &str = "prog_tls_";

/// `--ftps`: whether to read the local servers' FTPS plaintext.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FtpsChoice {
    /// Inspect where the servers' TLS library can be probed.
    #[default]
    Auto,
    /// Never inspect (only `--ftps-range` admits FTPS data connections).
    Off,
}

/// An FTP server found at attach, and whether its FTPS is inspected.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Inspected {
    /// The server as discovered.
    #[serde(flatten)]
    pub server: FtpServerTls,
    /// Whether uprobes sit on its library.
    pub inspected: bool,
}

/// Sets up inspection for the attachment pinned in `dir`; returns what it
/// found. Every failure short of a pinning error is a warning: FTPS then
/// needs `--ftps-range`, as before inspection existed.
pub fn attach(ebpf: &mut Ebpf, control_ports: &[u16], dir: &Path) -> Result<Vec<Inspected>> {
    let mut config = match kernel_btf::tls_offsets() {
        Ok(config) => config,
        Err(err) => {
            log::warn!("FTPS inspection off: {err:#}");
            return Ok(Vec::new());
        }
    };
    let (category, name, _) = READ_TRACEPOINT;
    config.tp_skaddr = match tracepoint_field(category, name, "skaddr") {
        Ok(offset) => offset,
        Err(err) => {
            log::warn!("FTPS inspection off: {err:#}");
            return Ok(Vec::new());
        }
    };
    config.netns_inum = Netns::current()?.inode as u32;
    config.ready = 1;
    let mut map: Array<_, TlsConfig> = Array::try_from(
        ebpf.map_mut(map_names::TLS_CONFIG)
            .ok_or_else(|| anyhow!("map {} missing", map_names::TLS_CONFIG))?,
    )?;
    map.set(0, config, 0)
        .context("writing the FTPS inspection settings")?;
    if let Err(err) = attach_kernel_probes(ebpf, dir) {
        log::warn!("FTPS inspection off: {err:#}");
        return Ok(Vec::new());
    }
    let servers = tls_discovery::discover(control_ports)?;
    if let Err(err) = pin_probe_programs(ebpf, dir) {
        log::warn!("FTPS inspection off: {err:#}");
        let not = |server| Inspected {
            server,
            inspected: false,
        };
        return Ok(servers.into_iter().map(not).collect());
    }
    Ok(probe_libraries(dir, servers, &[]))
}

/// Probes the libraries of FTP servers that started after attach (the
/// daemon calls this periodically and on reload); returns the servers whose
/// library it probed now. Nothing to do where inspection is off.
pub fn rescan(control_ports: &[u16], dir: &Path) -> Result<Vec<Inspected>> {
    if !inspecting(dir) {
        return Ok(Vec::new());
    }
    let before = inspected_now(control_ports, dir)?;
    let probed: Vec<PathBuf> = before
        .iter()
        .filter(|s| s.inspected)
        .filter_map(|s| s.server.library.clone())
        .collect();
    let fresh: Vec<FtpServerTls> = before
        .into_iter()
        .filter(|s| !s.inspected && s.server.library.is_some())
        .map(|s| s.server)
        .collect();
    Ok(probe_libraries(dir, fresh, &probed)
        .into_iter()
        .filter(|s| s.inspected)
        .collect())
}

/// Puts uprobes on the library of each of `servers` not in `probed`
/// already; a library that cannot be probed is a warning. Returns the
/// servers, each marked inspected when its library is probed.
fn probe_libraries(dir: &Path, servers: Vec<FtpServerTls>, probed: &[PathBuf]) -> Vec<Inspected> {
    let mut attached: Vec<PathBuf> = probed.to_vec();
    for library in tls_discovery::libraries(&servers) {
        if attached.iter().any(|a| same_file(a, &library)) {
            continue;
        }
        match attach_library(&library, dir) {
            Ok(()) => attached.push(library),
            Err(err) => log::warn!("FTPS inspection of {} failed: {err:#}", library.display()),
        }
    }
    servers
        .into_iter()
        .map(|server| {
            let inspected = server
                .library
                .as_deref()
                .is_some_and(|l| attached.iter().any(|a| same_file(a, l)));
            Inspected { server, inspected }
        })
        .collect()
}

/// Loads the uprobe programs and pins them as `prog_tls_<program>`, so
/// that a later process (the daemon) can probe libraries found after
/// attach with the same programs and maps.
fn pin_probe_programs(ebpf: &mut Ebpf, dir: &Path) -> Result<()> {
    for program in probe_programs() {
        let probe: &mut UProbe = crate::attach::program(ebpf, program)?.try_into()?;
        probe
            .load()
            .map_err(|err| crate::attach::verifier_error(program, err))?;
        probe
            .pin(dir.join(format!("{PROG_TLS_PREFIX}{program}")))
            .with_context(|| format!("pinning program {program}"))?;
    }
    Ok(())
}

/// Every uprobe program of `PROBED`, once each.
fn probe_programs() -> Vec<&'static str> {
    let mut names: Vec<&str> = PROBED
        .iter()
        .flat_map(|(_, entry, exit)| [*entry, *exit])
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The tracepoint program naming the socket of each TCP read, pinned as
/// `link_tls_kernel_0`.
fn attach_kernel_probes(ebpf: &mut Ebpf, dir: &Path) -> Result<()> {
    let (category, name, program) = READ_TRACEPOINT;
    let probe: &mut TracePoint = crate::attach::program(ebpf, program)?.try_into()?;
    probe
        .load()
        .map_err(|err| crate::attach::verifier_error(program, err))?;
    let id = probe
        .attach(category, name)
        .with_context(|| format!("attaching to the tracepoint {category}:{name}"))?;
    let link: FdLink = probe
        .take_link(id)?
        .try_into()
        .map_err(|_| anyhow!("this kernel has no BPF links for tracepoints (Linux 5.15+)"))?;
    pin_link(link, &dir.join(format!("{LINK_TLS_PREFIX}kernel_0"))).map(drop)
}

/// Offset of `field` in the record of tracepoint `category:name`, from its
/// format in tracefs.
fn tracepoint_field(category: &str, name: &str, field: &str) -> Result<u16> {
    mount_tracefs();
    let mut last = None;
    for root in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        let path = format!("{root}/events/{category}/{name}/format");
        match fs::read_to_string(&path) {
            Ok(format) => {
                return field_offset(&format, field)
                    .with_context(|| format!("no field {field} in {path} (an unexpected format)"));
            }
            Err(err) => last = Some(anyhow!(err).context(format!("reading {path}"))),
        }
    }
    Err(last
        .unwrap_or_else(|| anyhow!("no tracefs"))
        .context("tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)"))
}

/// Mounts tracefs where the kernel offers it, if nothing is mounted there
/// (minimal systems; systemd mounts it at boot). Best effort: a failure
/// shows when the format is read.
fn mount_tracefs() {
    const TRACEFS: &str = "/sys/kernel/tracing";
    let at = Path::new(TRACEFS);
    if at.join("events").exists() || !at.exists() {
        return;
    }
    if let Err(err) = crate::pins::mount_kernel_fs(c"tracefs", at) {
        log::debug!("{err:#}");
    }
}

/// The offset of `field` in a tracefs event format
/// (`field:const void * skaddr;\toffset:8;\tsize:8;...`).
fn field_offset(format: &str, field: &str) -> Option<u16> {
    format.lines().find_map(|line| {
        let mut parts = line.trim().split(';');
        let decl = parts.next()?.trim();
        let name = decl.rsplit([' ', '*']).next()?;
        if name != field || !decl.starts_with("field:") {
            return None;
        }
        parts.next()?.trim().strip_prefix("offset:")?.parse().ok()
    })
}

/// Uprobes on the TLS calls of `library`, pinned as
/// `link_tls_DEV_INO_N_in`/`_out` (the file's identity, for `status`),
/// through the programs pinned in `dir`. `SSL_read` and `SSL_write` must
/// be there; the others are probed where the library has them.
fn attach_library(library: &Path, dir: &Path) -> Result<()> {
    let id = file_id(library)?;
    for (n, (function, entry, exit)) in PROBED.iter().enumerate() {
        let required = matches!(*function, "SSL_read" | "SSL_write");
        for (program, kind, suffix) in [
            (entry, ProbeKind::Entry, "in"),
            (exit, ProbeKind::Return, "out"),
        ] {
            let mut probe = UProbe::from_pin(dir.join(format!("{PROG_TLS_PREFIX}{program}")), kind)
                .with_context(|| format!("opening the pinned program {program}"))?;
            let link = match probe.attach(*function, library, UProbeScope::AllProcesses) {
                Ok(link) => link,
                Err(err) if !required => {
                    log::debug!("{function} in {}: {err}", library.display());
                    continue;
                }
                Err(err) => {
                    return Err(err).with_context(|| format!("probing {function}"));
                }
            };
            let link: FdLink = probe
                .take_link(link)?
                .try_into()
                .map_err(|_| anyhow!("this kernel has no BPF links for probes (Linux 5.15+)"))?;
            pin_link(
                link,
                &dir.join(format!("{LINK_TLS_PREFIX}{id}_{n}_{suffix}")),
            )?;
        }
    }
    Ok(())
}

/// A file's identity as the pins name it: `DEV_INO`.
fn file_id(path: &Path) -> Result<String> {
    let meta = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(format!("{}_{}", meta.dev(), meta.ino()))
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((file_id(a), file_id(b)), (Ok(a), Ok(b)) if a == b)
}

/// The servers listening on `control_ports` now, each marked inspected when
/// the attachment pinned in `dir` probes its library (`status`).
pub fn inspected_now(control_ports: &[u16], dir: &Path) -> Result<Vec<Inspected>> {
    let probed: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.starts_with(LINK_TLS_PREFIX))
        .collect();
    let servers = tls_discovery::discover(control_ports)?;
    Ok(servers
        .into_iter()
        .map(|server| {
            let inspected = server.library.as_deref().is_some_and(|lib| {
                file_id(lib).is_ok_and(|id| {
                    let prefix = format!("{LINK_TLS_PREFIX}{id}_");
                    probed.iter().any(|name| name.starts_with(&prefix))
                })
            });
            Inspected { server, inspected }
        })
        .collect())
}

/// One line per server for `attach` and `status`: inspected, or why not.
pub fn describe(found: &Inspected) -> String {
    let s = &found.server;
    let who = format!("{} (pid {}, port {})", s.comm, s.pid, s.port);
    match (&s.library, found.inspected) {
        (Some(lib), true) => format!("{who}: inspected through {}", lib.display()),
        (Some(lib), false) => format!(
            "{who}: not inspected ({} could not be probed); use --ftps-range",
            lib.display()
        ),
        (None, _) => format!(
            "{who}: not inspected ({}); use --ftps-range",
            s.reason.as_deref().unwrap_or("no TLS library found")
        ),
    }
}

/// Whether the attachment pinned in `dir` inspects FTPS at all (its
/// tracepoint program is pinned).
pub fn inspecting(dir: &Path) -> bool {
    dir.join(format!("{LINK_TLS_PREFIX}kernel_0")).exists()
}

/// Removes FTPS inspection from the attachment pinned in `dir`: its links
/// (detaching them) and its programs' pins (an upgrade then attaches the
/// new build's).
pub fn remove(dir: &Path) -> Result<()> {
    for link in pinned_links(dir) {
        crate::pins::unpin_link(&link)?;
    }
    for program in probe_programs() {
        let pin = dir.join(format!("{PROG_TLS_PREFIX}{program}"));
        if pin.exists() {
            fs::remove_file(&pin).with_context(|| format!("unpinning {}", pin.display()))?;
        }
    }
    Ok(())
}

/// Paths of every pinned TLS link in `dir`, for detach.
pub fn pinned_links(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(LINK_TLS_PREFIX))
        .map(|e| e.path())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::field_offset;

    #[test]
    fn tracepoint_field_offsets_come_from_the_format() {
        let format = "name: tcp_rcv_space_adjust\nID: 2277\nformat:\n\
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n\
            \tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
            \tfield:__u16 sport;\toffset:16;\tsize:2;\tsigned:0;\n";
        assert_eq!(field_offset(format, "skaddr"), Some(8));
        assert_eq!(field_offset(format, "sport"), Some(16));
        assert_eq!(field_offset(format, "dport"), None);
        assert_eq!(field_offset("garbage;offset:x;", "garbage"), None);
    }

    #[test]
    fn the_running_kernel_names_the_socket_of_a_tcp_read() {
        let (category, name, _) = ftp_ebpf_common::tls::READ_TRACEPOINT;
        let offset = super::tracepoint_field(category, name, "skaddr");
        assert!(matches!(offset, Ok(8)), "{offset:?}");
    }
}
