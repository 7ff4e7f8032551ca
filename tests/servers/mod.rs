//! Real FTP servers run as foreground children inside a lab namespace.
//!
//! Every server serves a fresh [`ServedTree`], listens on port 21 for IPv4
//! and IPv6, allows passive (PASV/EPSV) and active (PORT/EPRT) transfers and
//! uploads into `upload/`, uses the passive port range from
//! [`ServerOptions`], and is stopped (by PID) when its guard drops.

mod proftpd;
mod pure_ftpd;
mod pyftpdlib;
mod vsftpd;

use std::env;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub use proftpd::Proftpd;
pub use pure_ftpd::PureFtpd;
pub use pyftpdlib::Pyftpdlib;
pub use vsftpd::Vsftpd;

use crate::clients::python;
use crate::fixtures::ServedTree;
use crate::netns::Netns;
use crate::process::{ChildGuard, run_with_timeout};

/// The FTP control port every lab server listens on.
pub const CONTROL_PORT: u16 = 21;

/// The control port of implicit FTPS (TLS from the first byte).
pub const IMPLICIT_FTPS_PORT: u16 = 990;

/// FTPS: how a server's control connection becomes encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// Plain until the client's `AUTH TLS` (RFC 4217), on port 21.
    Explicit,
    /// TLS from the first byte, on [`IMPLICIT_FTPS_PORT`].
    Implicit,
}

impl Tls {
    /// The helper's and the URL's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Tls::Explicit => "explicit",
            Tls::Implicit => "implicit",
        }
    }
}

/// Default passive data port range of lab servers.
pub const DEFAULT_PASV_PORTS: RangeInclusive<u16> = 40000..=40099;

/// Where `install-deps.sh` unpacks servers unless `FTPCT_SERVERS_DIR` says
/// otherwise.
pub const DEFAULT_SERVERS_DIR: &str = "/root/.cache/ftpct/servers";

/// Upper bound for a server to answer with its 220 banner.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a dual-stack server must answer before it counts as started.
pub(crate) const DUAL_STACK: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// Login name and password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// User name (`anonymous` for anonymous servers).
    pub user: String,
    /// Password.
    pub password: String,
}

impl Credentials {
    /// Anonymous login (any password).
    pub fn anonymous() -> Self {
        Self {
            user: "anonymous".into(),
            password: "ftpct@example.com".into(),
        }
    }

    /// The fixed lab user of servers that cannot do anonymous uploads into
    /// an arbitrary directory.
    pub fn lab_user() -> Self {
        Self {
            user: LAB_USER.into(),
            password: LAB_PASSWORD.into(),
        }
    }
}

/// Name of the fixed lab user (see [`Credentials::lab_user`]).
pub const LAB_USER: &str = "ftpct";

/// Password of the fixed lab user.
pub const LAB_PASSWORD: &str = "ftpct";

/// crypt(3) SHA-512 hash of [`LAB_PASSWORD`] (`openssl passwd -6 -salt
/// ftpctlab ftpct`), for passwd-style user files.
pub(crate) const LAB_PASSWORD_HASH: &str = "$6$ftpctlab$99wrw0LkM9uo8vxdj6/rYbijdQLlB51Qvhm29wlZ89a0.z5GbUKPRv9QePQc3S36pgQBVw0NwpfyOzZG.WmH3.";

/// uid/gid of `nobody`/`nogroup`, which owns uploads for the virtual-user
/// servers.
pub(crate) const NOBODY: (u32, u32) = (65534, 65534);

/// Where and how a client reaches a server.
#[derive(Clone, Debug)]
pub struct FtpTarget {
    /// Server address.
    pub host: IpAddr,
    /// Control port.
    pub port: u16,
    /// Login.
    pub credentials: Credentials,
    /// Whether clients connect to the address a `227` names: curl
    /// (`--no-ftp-skip-pasv-ip`) and the ftplib helper otherwise use the
    /// control connection's, and lftp corrects a private-looking one.
    pub use_pasv_address: bool,
    /// The address lftp names in `PORT` instead of its own (`ftp:port-ipv4`,
    /// as a client behind a 1:1 NAT announces its public address).
    pub port_address: Option<std::net::Ipv4Addr>,
    /// FTPS, if the server requires it (data connections encrypted too).
    pub tls: Option<Tls>,
}

impl FtpTarget {
    /// This target, with clients connecting to the address a `227` names
    /// (as behind a 1:1 NAT, where it names the public address).
    pub fn using_pasv_address(self) -> Self {
        Self {
            use_pasv_address: true,
            ..self
        }
    }

    /// This target, with lftp naming `addr` in its `PORT` commands.
    pub fn announcing_port_address(self, addr: std::net::Ipv4Addr) -> Self {
        Self {
            port_address: Some(addr),
            ..self
        }
    }

    /// `host` as it appears in a URL (IPv6 in brackets).
    pub fn url_host(&self) -> String {
        match self.host {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        }
    }

    /// `ftp://host:port/path` (`ftps://` for implicit FTPS) without
    /// credentials.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls == Some(Tls::Implicit) {
            "ftps"
        } else {
            "ftp"
        };
        format!(
            "{scheme}://{}:{}/{}",
            self.url_host(),
            self.port,
            path.trim_start_matches('/')
        )
    }
}

/// Tunables shared by all servers.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Passive data ports the server may announce.
    pub pasv_ports: RangeInclusive<u16>,
    /// The address to name in `227` replies instead of the server's own,
    /// as admins set behind a 1:1 NAT without an FTP helper: vsftpd
    /// `pasv_address` (vsftpd then listens on IPv4 only, see [`Vsftpd`]),
    /// ProFTPD `MasqueradeAddress`, pure-ftpd `-P`, pyftpdlib
    /// `masquerade_address`.
    pub masquerade_address: Option<Ipv4Addr>,
    /// FTPS required (control and data), with a certificate the server
    /// generates for itself.
    pub tls: Option<Tls>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            pasv_ports: DEFAULT_PASV_PORTS,
            masquerade_address: None,
            tls: None,
        }
    }
}

impl ServerOptions {
    /// The defaults, naming `addr` in `227` replies.
    pub fn masquerading(addr: Ipv4Addr) -> Self {
        Self {
            masquerade_address: Some(addr),
            ..Self::default()
        }
    }

    /// The defaults, requiring FTPS of kind `tls`.
    pub fn ftps(tls: Tls) -> Self {
        Self {
            tls: Some(tls),
            ..Self::default()
        }
    }

    /// The control port: 990 for implicit FTPS, else 21.
    pub fn control_port(&self) -> u16 {
        if self.tls == Some(Tls::Implicit) {
            IMPLICIT_FTPS_PORT
        } else {
            CONTROL_PORT
        }
    }
}

/// A self-signed certificate and its key for a lab server, written into
/// `dir` by `openssl req`: `(certificate, key)`.
pub fn self_signed_cert(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mut cmd = Command::new("openssl");
    cmd.args([
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
    ])
    .args(["-subj", "/CN=ftpct-lab", "-keyout"])
    .arg(&key)
    .arg("-out")
    .arg(&cert);
    let out = run_with_timeout(cmd, Duration::from_secs(30))?;
    if !out.status.success() {
        bail!(
            "openssl req failed (is openssl installed?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok((cert, key))
}

/// What every running server has, whichever it is.
pub struct Running {
    /// The server's main process (stopped on drop).
    pub(crate) process: ServerProcess,
    /// The tree it serves.
    pub(crate) tree: ServedTree,
    /// The login clients should use.
    pub(crate) credentials: Credentials,
    /// The options it was started with.
    pub(crate) options: ServerOptions,
}

/// What tests need from a running server, whichever it is.
pub trait FtpServer {
    /// Short name, e.g. `"vsftpd"`.
    fn name(&self) -> &'static str;

    /// The process, tree, login and options every server has.
    fn running(&self) -> &Running;

    /// The login clients should use.
    fn credentials(&self) -> &Credentials {
        &self.running().credentials
    }

    /// The served tree (to compare downloads and find uploads).
    fn tree(&self) -> &ServedTree {
        &self.running().tree
    }

    /// The options it was started with.
    fn options(&self) -> &ServerOptions {
        &self.running().options
    }

    /// PID of the server's main process.
    fn pid(&self) -> u32 {
        self.running().process.pid()
    }

    /// A target for clients connecting to `host` (an address of the server
    /// namespace) on the control port.
    fn target(&self, host: IpAddr) -> FtpTarget {
        FtpTarget {
            host,
            port: self.options().control_port(),
            credentials: self.credentials().clone(),
            use_pasv_address: false,
            port_address: None,
            tls: self.options().tls,
        }
    }
}

/// Directory holding unpacked server packages (`FTPCT_SERVERS_DIR`, default
/// [`DEFAULT_SERVERS_DIR`]).
pub fn servers_dir() -> PathBuf {
    env::var_os("FTPCT_SERVERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SERVERS_DIR))
}

/// The executable of server `name`: `<servers_dir>/<name>/usr/sbin/<name>`
/// if it exists, else `/usr/sbin/<name>`.
pub fn server_binary(name: &str) -> PathBuf {
    server_file(name, &format!("usr/sbin/{name}"))
}

/// A file `rel` (e.g. `usr/bin/pure-pw`) of the unpacked package `name`,
/// falling back to `/<rel>` on the system.
pub fn server_file(name: &str, rel: &str) -> PathBuf {
    let unpacked = servers_dir().join(name).join(rel);
    if unpacked.exists() {
        unpacked
    } else {
        Path::new("/").join(rel)
    }
}

/// Checks that `path` exists, pointing at `tests/install-deps.sh` if not.
pub(crate) fn require_file(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    bail!(
        "{} not found; run tests/install-deps.sh (or set FTPCT_SERVERS_DIR)",
        path.display()
    )
}

/// A passwd(5) entry of a system user.
pub(crate) struct SystemUser {
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// Looks `name` up with `getent passwd`.
pub(crate) fn system_user(name: &str) -> Result<SystemUser> {
    let mut cmd = Command::new("getent");
    cmd.args(["passwd", name]);
    let out = run_with_timeout(cmd, Duration::from_secs(5))?;
    let line = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = line.trim().split(':').collect();
    if !out.status.success() || fields.len() < 7 {
        bail!("system user `{name}` not found; run tests/install-deps.sh");
    }
    Ok(SystemUser {
        uid: fields[2].parse().context("uid")?,
        gid: fields[3].parse().context("gid")?,
        home: PathBuf::from(fields[5]),
    })
}

/// A server process plus the log it writes its stdout/stderr to.
pub(crate) struct ServerProcess {
    child: ChildGuard,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `argv` in `ns`, logging to `log`, and waits (bounded) until
    /// the control port `options` name answers with a 220 banner (inside
    /// TLS for implicit FTPS) on each of `loopbacks` (usually
    /// [`DUAL_STACK`]).
    pub fn start_serving(
        name: &str,
        ns: &Netns,
        argv: &[String],
        log: &Path,
        loopbacks: &[IpAddr],
        options: &ServerOptions,
    ) -> Result<Self> {
        let child = ns.spawn_logged(argv, log)?;
        let mut server = Self {
            child,
            log: log.to_path_buf(),
        };
        server
            .wait_ready(ns, loopbacks, options)
            .with_context(|| format!("starting {name}; log: {}", server.log_tail()))?;
        Ok(server)
    }

    /// PID of the main process.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    fn wait_ready(
        &mut self,
        ns: &Netns,
        loopbacks: &[IpAddr],
        options: &ServerOptions,
    ) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let port = options.control_port();
        let implicit = options.tls.filter(|&t| t == Tls::Implicit);
        for &host in loopbacks {
            loop {
                if let Some(status) = self.child.try_status()? {
                    bail!("server exited early with {status}");
                }
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    bail!("no 220 banner on {host} port {port} within {START_TIMEOUT:?}");
                }
                let wait = remaining.min(Duration::from_secs(1));
                if python::wait_banner(ns, host, port, implicit, wait)? {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// The last part of the log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let skip = text.chars().count().saturating_sub(2000);
        text.chars()
            .skip(skip)
            .collect::<String>()
            .trim()
            .to_string()
    }
}
