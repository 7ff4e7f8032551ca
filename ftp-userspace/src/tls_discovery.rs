//! Finds the local FTP servers (the processes listening on the control ports
//! in this network namespace) and the libssl each has mapped, because FTPS is
//! inspected through uprobes on that library: this says what to attach to and,
//! for a server that cannot be inspected, why.
//!
//! Everything is read from /proc. Processes that exit or deny access during
//! the scan are races, not errors: they are skipped.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// One FTP server process listening on a control port in this namespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FtpServerTls {
    /// The control port it listens on.
    pub port: u16,
    /// Its process id.
    pub pid: u32,
    /// /proc/PID/comm, trimmed.
    pub comm: String,
    /// The libssl it maps, as a path usable from ftpct's own mount namespace
    /// (under /proc/PID/root when the process sees another root), or None.
    pub library: Option<PathBuf>,
    /// Why it cannot be inspected when `library` is None.
    pub reason: Option<String>,
}

/// Reason given for a server that maps no libssl.
pub const REASON_NO_LIBSSL: &str =
    "no libssl.so mapped (statically linked, another TLS library, or TLS not enabled)";
/// Reason given for a server whose mapped libssl no longer exists on disk: a
/// uprobe on the new file would never fire in the old process.
pub const REASON_DELETED: &str = "its libssl was replaced on disk (restart the server)";

/// TCP_LISTEN as printed (hex) in /proc/net/tcp{,6}.
const TCP_LISTEN_HEX: &str = "0A";

/// The servers listening on any of `control_ports` (TCP, IPv4 or IPv6, state
/// LISTEN) in this network namespace, sorted by port then pid, one entry per
/// (port, pid).
///
/// "This namespace" is the calling thread's: `setns` is per thread, so the
/// socket tables and the namespace identity are both read via
/// /proc/thread-self.
pub fn discover(control_ports: &[u16]) -> Result<Vec<FtpServerTls>> {
    let wanted: HashSet<u16> = control_ports.iter().copied().collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let listeners = listening_inodes(&wanted)?;
    if listeners.is_empty() {
        return Ok(Vec::new());
    }
    let ours = Ours::read()?;

    // Ordered (port, pid) set: the sort, and the dedup (a server may listen on
    // the same port over IPv4 and IPv6).
    let mut holders: BTreeSet<(u16, u32)> = BTreeSet::new();
    let proc_dir = fs::read_dir("/proc").context("listing /proc")?;
    for entry in proc_dir {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // Cheaper than reading its fds, and a process of another namespace is
        // not a server of this one.
        if stat_id(format!("/proc/{pid}/ns/net")) != Some(ours.net) {
            continue;
        }
        for port in ports_held(pid, &listeners) {
            holders.insert((port, pid));
        }
    }

    let mut servers = Vec::with_capacity(holders.len());
    // Each pid's maps are read once even if it listens on several ports.
    let mut found: HashMap<u32, Option<Tls>> = HashMap::new();
    for (port, pid) in holders {
        let Ok(comm) = fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue; // exited
        };
        let tls = found
            .entry(pid)
            .or_insert_with(|| library_of(pid, &ours))
            .clone();
        let Some((library, reason)) = tls else {
            continue; // exited
        };
        servers.push(FtpServerTls {
            port,
            pid,
            comm: comm.trim().to_string(),
            library,
            reason,
        });
    }
    Ok(servers)
}

/// The distinct libraries among `servers`, to attach uprobes to once each:
/// uprobes are per file, so two paths naming one file (e.g. through
/// /proc/PID/root) must not attach twice. Deduplicates by (st_dev, st_ino),
/// keeping the first path; a path that cannot be stat'ed is kept (once) so
/// the attach reports the error.
pub fn libraries(servers: &[FtpServerTls]) -> Vec<PathBuf> {
    let mut seen_ids = HashSet::new();
    let mut seen_paths = HashSet::new();
    let mut out = Vec::new();
    for path in servers.iter().filter_map(|s| s.library.as_ref()) {
        let new = match stat_id(path) {
            Some(id) => seen_ids.insert(id),
            None => seen_paths.insert(path.clone()),
        };
        if new {
            out.push(path.clone());
        }
    }
    out
}

/// A row of /proc/net/tcp{,6} in state LISTEN: `(local port, socket inode)`.
/// `None` for any other state, the header and malformed lines. The address
/// format (IPv4 or IPv6) does not matter here, only the port after the colon.
pub fn parse_tcp_listener(line: &str) -> Option<(u16, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    // sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode ...
    let local = fields.get(1)?;
    let state = fields.get(3)?;
    let inode = fields.get(9)?;
    if !state.eq_ignore_ascii_case(TCP_LISTEN_HEX) {
        return None;
    }
    let (addr, port) = local.rsplit_once(':')?;
    if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let port = u16::from_str_radix(port, 16).ok()?;
    let inode = inode.parse::<u64>().ok()?;
    // Inode 0 is a socket without a file (e.g. orphaned); no process holds it.
    (inode != 0).then_some((port, inode))
}

/// A file mapping from one line of /proc/PID/maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedFile<'a> {
    /// The path as the process sees it (spaces preserved).
    pub path: &'a str,
    /// The kernel marked it " (deleted)": the file on disk is no longer the
    /// one mapped.
    pub deleted: bool,
}

/// Parses one line of /proc/PID/maps; `None` for anonymous and pseudo
/// mappings (`[heap]`, ...) and malformed lines.
pub fn parse_maps_line(line: &str) -> Option<MappedFile<'_>> {
    // address perms offset dev inode pathname; the pathname is the rest of the
    // line after padding and may contain spaces.
    let mut rest = line;
    for _ in 0..5 {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace)?;
        rest = &rest[end..];
    }
    let path = rest.trim_start();
    if !path.starts_with('/') {
        return None;
    }
    Some(match path.strip_suffix(" (deleted)") {
        Some(path) => MappedFile {
            path,
            deleted: true,
        },
        None => MappedFile {
            path,
            deleted: false,
        },
    })
}

/// Whether `path` is an OpenSSL libssl (`libssl.so`, `libssl.so.3`, ...).
pub fn is_libssl(path: &str) -> bool {
    Path::new(path)
        .file_name()
        .is_some_and(|name| name.as_bytes().starts_with(b"libssl.so"))
}

/// The inodes of the LISTEN sockets on `ports`, with their port.
fn listening_inodes(ports: &HashSet<u16>) -> Result<HashMap<u64, u16>> {
    let mut inodes = HashMap::new();
    for (path, optional) in [
        ("/proc/thread-self/net/tcp", false),
        // Absent when IPv6 is disabled.
        ("/proc/thread-self/net/tcp6", true),
    ] {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if optional && err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err).with_context(|| format!("reading {path}")),
        };
        for (port, inode) in text.lines().filter_map(parse_tcp_listener) {
            if ports.contains(&port) {
                inodes.insert(inode, port);
            }
        }
    }
    Ok(inodes)
}

/// The ports of `listeners` whose sockets `pid` holds; empty if it exited or
/// denies access.
fn ports_held(pid: u32, listeners: &HashMap<u64, u16>) -> Vec<u16> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut ports = Vec::new();
    for fd in fds.flatten() {
        let Ok(target) = fs::read_link(fd.path()) else {
            continue;
        };
        let inode = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<u64>().ok());
        if let Some(port) = inode.and_then(|i| listeners.get(&i)) {
            if !ports.contains(port) {
                ports.push(*port);
            }
        }
    }
    ports
}

/// `(library, reason)` for one process: exactly one of the two is Some.
type Tls = (Option<PathBuf>, Option<String>);

/// The libssl of `pid`, or `None` if it exited.
fn library_of(pid: u32, ours: &Ours) -> Option<Tls> {
    let maps = match fs::read(format!("/proc/{pid}/maps")) {
        Ok(maps) => maps,
        Err(err) if vanished(&err) => return None,
        Err(err) => return Some((None, Some(format!("cannot read /proc/{pid}/maps: {err}")))),
    };
    Some(match libssl_in_maps(&maps) {
        Ok(path) => (Some(path_for_us(pid, Path::new(path), ours)), None),
        Err(reason) => (None, Some(reason.to_string())),
    })
}

/// The libssl path (as the process sees it) in the contents of a
/// /proc/PID/maps, or why there is none to attach to: [`REASON_DELETED`]
/// when only deleted copies are mapped, else [`REASON_NO_LIBSSL`].
pub fn libssl_in_maps(maps: &[u8]) -> std::result::Result<&str, &'static str> {
    let mut reason = REASON_NO_LIBSSL;
    // Lines are decoded one by one: a non-UTF-8 path elsewhere in the map
    // must not hide the libssl line.
    for line in maps.split(|b| *b == b'\n') {
        let Some(file) = std::str::from_utf8(line).ok().and_then(parse_maps_line) else {
            continue;
        };
        if !is_libssl(file.path) {
            continue;
        }
        if !file.deleted {
            return Ok(file.path);
        }
        reason = REASON_DELETED;
    }
    Err(reason)
}

/// `path` as seen by `pid`, made usable from ftpct's mount namespace: the
/// same path when the process has our root and mounts (or the path names the
/// same file for both), else through /proc/PID/root.
fn path_for_us(pid: u32, path: &Path, ours: &Ours) -> PathBuf {
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let prefixed = root.join(path.strip_prefix("/").unwrap_or(path));
    if stat_id(&root) != Some(ours.root) {
        return prefixed;
    }
    if stat_id(format!("/proc/{pid}/ns/mnt")) == Some(ours.mnt) {
        return path.to_path_buf();
    }
    // Same root directory but another mount namespace (e.g. a sandboxed
    // systemd service): bind mounts may differ, so compare the files.
    match (stat_id(path), stat_id(&prefixed)) {
        (Some(a), Some(b)) if a == b => path.to_path_buf(),
        _ => prefixed,
    }
}

/// (st_dev, st_ino) of the calling thread's namespaces and root.
struct Ours {
    net: (u64, u64),
    mnt: (u64, u64),
    root: (u64, u64),
}

impl Ours {
    fn read() -> Result<Self> {
        let id = |path: &str| -> Result<(u64, u64)> {
            let meta = fs::metadata(path).with_context(|| format!("stat {path}"))?;
            Ok((meta.dev(), meta.ino()))
        };
        Ok(Self {
            net: id("/proc/thread-self/ns/net")?,
            mnt: id("/proc/thread-self/ns/mnt")?,
            root: id("/proc/thread-self/root")?,
        })
    }
}

/// (st_dev, st_ino) of the file `path` leads to, or None if it cannot be
/// stat'ed.
fn stat_id(path: impl AsRef<Path>) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The process went away between listing and reading (ENOENT, or ESRCH from
/// a /proc file of a dying process).
fn vanished(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound || err.raw_os_error() == Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::{BufRead as _, BufReader};
    use std::process::{Child, Command, Stdio};

    #[test]
    fn tcp_ipv4_listen_row() {
        let line = "   1: 0100007F:0015 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0";
        assert_eq!(parse_tcp_listener(line), Some((21, 123456)));
    }

    #[test]
    fn tcp_ipv6_listen_row() {
        let line = "   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 98765 1 0000000000000000 100 0 0 10 0";
        assert_eq!(parse_tcp_listener(line), Some((22, 98765)));
    }

    #[test]
    fn tcp_non_listen_rows_header_and_garbage() {
        // ESTABLISHED (01) and TIME_WAIT (06, inode 0).
        let est = "   2: 0100007F:0015 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 55555 1 0000000000000000 20 4 30 10 -1";
        let tw = "   3: 0100007F:0015 0100007F:D432 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000";
        assert_eq!(parse_tcp_listener(est), None);
        assert_eq!(parse_tcp_listener(tw), None);
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
        assert_eq!(parse_tcp_listener(header), None);
        for bad in [
            "",
            "   1: 0100007F:0015",
            "   1: 0100007F:0015 00000000:0000 0A",
            "   1: 0100007F:XYZ 00000000:0000 0A 0:0 0:0 0 0 0 1",
            "   1: 0100007F:10000 00000000:0000 0A 0:0 0:0 0 0 0 1",
            "   1: 0100007F 00000000:0000 0A 0:0 0:0 0 0 0 1",
            "   1: 0100007F:0015 00000000:0000 0A 0:0 0:0 0 0 0 -1",
            "   1: zz:0015 00000000:0000 0A 0:0 0:0 0 0 0 1",
        ] {
            assert_eq!(parse_tcp_listener(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn maps_lines() {
        let lib = "7f0e1c400000-7f0e1c41f000 r--p 00000000 fe:00 326798                     /usr/lib/x86_64-linux-gnu/libssl.so.3";
        assert_eq!(
            parse_maps_line(lib),
            Some(MappedFile {
                path: "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                deleted: false
            })
        );
        let spaces = "7f0e1c400000-7f0e1c41f000 r-xp 0001f000 08:01 42   /opt/my server/lib dir/libssl.so.1.1";
        assert_eq!(
            parse_maps_line(spaces),
            Some(MappedFile {
                path: "/opt/my server/lib dir/libssl.so.1.1",
                deleted: false
            })
        );
        let deleted = "7f0e1c400000-7f0e1c41f000 r-xp 0001f000 fe:00 326798 /usr/lib/x86_64-linux-gnu/libssl.so.3 (deleted)";
        assert_eq!(
            parse_maps_line(deleted),
            Some(MappedFile {
                path: "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                deleted: true
            })
        );
        for none in [
            "7ffd5a3c1000-7ffd5a3e2000 rw-p 00000000 00:00 0                          [stack]",
            "55d0c1a2b000-55d0c1a4c000 rw-p 00000000 00:00 0                          [heap]",
            "7f0e1c3f0000-7f0e1c400000 rw-p 00000000 00:00 0 ",
            "7f0e1c3f0000-7f0e1c400000 rw-p 00000000 00:00 0",
            "",
            "garbage",
            "7f0e1c3f0000-7f0e1c400000 rw-p",
        ] {
            assert_eq!(parse_maps_line(none), None, "{none:?}");
        }
    }

    #[test]
    fn libssl_from_whole_maps() {
        let live = b"55d0c1a2b000-55d0c1a4c000 r-xp 00000000 fe:00 11 /usr/sbin/vsftpd\n\
7f0e1c400000-7f0e1c41f000 r--p 00000000 fe:00 12 /usr/lib/x86_64-linux-gnu/libcrypto.so.3\n\
7f0e1c500000-7f0e1c51f000 r--p 00000000 fe:00 13 /tmp/\xff\xfe odd\n\
7f0e1c600000-7f0e1c61f000 r--p 00000000 fe:00 14 /usr/lib/x86_64-linux-gnu/libssl.so.3\n";
        assert_eq!(
            libssl_in_maps(live),
            Ok("/usr/lib/x86_64-linux-gnu/libssl.so.3")
        );
        let deleted = b"55d0c1a2b000-55d0c1a4c000 r-xp 00000000 fe:00 11 /usr/sbin/vsftpd\n\
7f0e1c600000-7f0e1c61f000 r--p 00000000 fe:00 14 /usr/lib/x86_64-linux-gnu/libssl.so.3 (deleted)\n";
        assert_eq!(libssl_in_maps(deleted), Err(REASON_DELETED));
        let none = b"55d0c1a2b000-55d0c1a4c000 r-xp 00000000 fe:00 11 /usr/sbin/vsftpd\n\
7ffd5a3c1000-7ffd5a3e2000 rw-p 00000000 00:00 0 [stack]\n\
not a maps line\n";
        assert_eq!(libssl_in_maps(none), Err(REASON_NO_LIBSSL));
        assert_eq!(libssl_in_maps(b""), Err(REASON_NO_LIBSSL));
    }

    #[test]
    fn libssl_names() {
        assert!(is_libssl("/usr/lib/x86_64-linux-gnu/libssl.so.3"));
        assert!(is_libssl("/opt/my server/libssl.so.1.1"));
        assert!(is_libssl("/usr/lib/libssl.so"));
        assert!(!is_libssl("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"));
        assert!(!is_libssl("/usr/lib/libssl3.so")); // NSS, not OpenSSL
        assert!(!is_libssl("/opt/libssl.so.3/other.so"));
    }

    #[test]
    fn libraries_dedupes_by_file() {
        let exe = std::env::current_exe().expect("current_exe");
        let via_root = Path::new("/proc/self/root").join(exe.strip_prefix("/").expect("absolute"));
        let server = |pid, library: Option<PathBuf>| FtpServerTls {
            port: 21,
            pid,
            comm: "x".into(),
            library,
            reason: None,
        };
        let missing = PathBuf::from("/nonexistent/libssl.so.3");
        let servers = [
            server(1, Some(exe.clone())),
            server(2, None),
            server(3, Some(via_root)),
            server(4, Some(missing.clone())),
            server(5, Some(missing.clone())),
            server(6, Some(PathBuf::from("/proc/self/exe"))),
        ];
        assert_eq!(libraries(&servers), vec![exe, missing]);
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    /// Kills and reaps the child however the test ends.
    struct Reaper(Child);

    impl Drop for Reaper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Starts a python listener on 127.0.0.1 after importing `imports`;
    /// returns the guard, its pid and port, or None if python3 is missing.
    fn python_listener(args: &[&str], imports: &str) -> Option<(Reaper, u32, u16)> {
        let python = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let script = format!(
            "import {imports}; s=socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); \
             print(os.getpid(), s.getsockname()[1], flush=True); time.sleep(30)"
        );
        let child = match Command::new(python)
            .args(args)
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                eprintln!("skipping: {python} not found");
                return None;
            }
            Err(err) => panic!("spawning {python}: {err}"),
        };
        let mut guard = Reaper(child);
        let stdout = guard.0.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading the listener's port");
        let mut words = line.split_whitespace();
        let pid: u32 = words
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("bad listener output {line:?}"));
        let port: u16 = words
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("bad listener output {line:?}"));
        Some((guard, pid, port))
    }

    fn maps_libssl(pid: u32) -> bool {
        let maps = fs::read(format!("/proc/{pid}/maps")).expect("reading maps");
        String::from_utf8_lossy(&maps)
            .lines()
            .filter_map(parse_maps_line)
            .any(|f| is_libssl(f.path))
    }

    #[test]
    fn finds_a_real_listener_and_its_libssl() {
        if !is_root() {
            eprintln!("skipping: needs root to read other processes' fds and maps");
            return;
        }
        let Some((_guard, pid, port)) = python_listener(&[], "os, ssl, socket, time") else {
            return;
        };
        let servers = discover(&[port]).expect("discover");
        let server = servers
            .iter()
            .find(|s| s.pid == pid)
            .unwrap_or_else(|| panic!("pid {pid} not found on port {port}: {servers:?}"));
        assert_eq!(server.port, port);
        assert!(server.comm.starts_with("python"), "{server:?}");
        let library = server
            .library
            .as_ref()
            .unwrap_or_else(|| panic!("no library: {server:?}"));
        assert!(
            library.to_str().is_some_and(is_libssl),
            "not a libssl: {library:?}"
        );
        assert!(library.exists(), "{library:?} does not exist");
        assert_eq!(server.reason, None);
        assert_eq!(libraries(&servers), vec![library.clone()]);
    }

    #[test]
    fn reports_a_real_listener_without_libssl() {
        if !is_root() {
            eprintln!("skipping: needs root to read other processes' fds and maps");
            return;
        }
        // -S: no site module, so nothing can pull in ssl behind our back.
        let Some((_guard, pid, port)) = python_listener(&["-S"], "os, socket, time") else {
            return;
        };
        assert!(
            !maps_libssl(pid),
            "python3 -S without ssl maps libssl anyway; pick another listener"
        );
        let servers = discover(&[port]).expect("discover");
        let server = servers
            .iter()
            .find(|s| s.pid == pid)
            .unwrap_or_else(|| panic!("pid {pid} not found on port {port}: {servers:?}"));
        assert_eq!(server.port, port);
        assert_eq!(server.library, None);
        assert_eq!(server.reason.as_deref(), Some(REASON_NO_LIBSSL));
        assert!(libraries(&servers).is_empty());
    }

    #[test]
    fn no_ports_no_servers() {
        assert_eq!(discover(&[]).expect("discover"), Vec::new());
    }
}
