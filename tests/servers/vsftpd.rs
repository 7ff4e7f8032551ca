//! vsftpd: anonymous, one dual-stack listener (IPv4 only when masquerading).

use std::fs;
use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result};

use super::{
    Credentials, DUAL_STACK, FtpServer, Running, ServerOptions, ServerProcess, Tls, require_file,
    self_signed_cert, server_binary, system_user,
};
use crate::fixtures::ServedTree;
use crate::netns::Netns;

/// The system user vsftpd maps anonymous logins to. vsftpd needs its home
/// directory to exist, even though `anon_root` overrides it.
const ANON_USER: &str = "ftp";

/// vsftpd serving a [`ServedTree`] to anonymous users.
///
/// Configuration choices: `listen=NO` + `listen_ipv6=YES` (one socket, IPv4
/// arrives v4-mapped), `anon_root` = the tree, `anon_upload_enable` with
/// `upload/` owned by the `ftp` user, `anon_umask=022` so uploads can be
/// downloaded again, `port_enable=YES` with `connect_from_port_20=NO`,
/// `seccomp_sandbox=NO` and `isolate_network=NO` (no per-session network
/// namespace), `background=NO` so the guard owns the process;
/// `pasv_address` if masquerading, and then `listen=YES` +
/// `listen_ipv6=NO` (IPv4 only): on an IPv6 socket vsftpd 3.0.3 reads the
/// IPv4 `pasv_address` as an IPv6 one and names 0,0,0,0. With FTPS, TLS is
/// required for logins and data (`force_anon_*_ssl`), with the settings
/// OpenSSL 3 needs from vsftpd 3.0.3 (`ssl_ciphers=HIGH`,
/// `require_ssl_reuse=NO`), `nopriv_user=ftp` (as `nobody` it dies at `AUTH
/// TLS`), and `implicit_ssl=YES` on port 990 for implicit FTPS.
pub struct Vsftpd {
    running: Running,
}

impl Vsftpd {
    /// Starts vsftpd in `ns` with default options.
    pub fn start(ns: &Netns) -> Result<Self> {
        Self::start_with(ns, ServerOptions::default())
    }

    /// Starts vsftpd in `ns` with `options`.
    pub fn start_with(ns: &Netns, options: ServerOptions) -> Result<Self> {
        let binary = server_binary("vsftpd");
        require_file(&binary)?;
        let anon = system_user(ANON_USER)?;
        require_file(&anon.home).context("home directory of the `ftp` user")?;
        let tree = ServedTree::create((anon.uid, anon.gid))?;
        let work = tree.work_dir();
        let empty = work.join("empty");
        fs::create_dir(&empty).context("creating secure_chroot_dir")?;
        let config = work.join("vsftpd.conf");
        let log = work.join("vsftpd.log");
        let (listen, listen_ipv6) = match options.masquerade_address {
            Some(_) => ("YES", "NO"),
            None => ("NO", "YES"),
        };
        let mut text = format!(
            "\
listen={listen}
listen_ipv6={listen_ipv6}
listen_port={port}
background=NO
anonymous_enable=YES
local_enable=NO
no_anon_password=YES
ftp_username={ANON_USER}
anon_root={root}
write_enable=YES
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_umask=022
secure_chroot_dir={empty}
seccomp_sandbox=NO
isolate_network=NO
pasv_enable=YES
pasv_min_port={lo}
pasv_max_port={hi}
port_enable=YES
connect_from_port_20=NO
xferlog_enable=YES
vsftpd_log_file={xferlog}
dual_log_enable=NO
log_ftp_protocol=YES
",
            root = tree.root().display(),
            empty = empty.display(),
            lo = options.pasv_ports.start(),
            hi = options.pasv_ports.end(),
            xferlog = work.join("vsftpd-xfer.log").display(),
            port = options.control_port(),
        );
        if let Some(tls) = options.tls {
            let (cert, key) = self_signed_cert(work)?;
            text.push_str(&format!(
                "\
ssl_enable=YES
allow_anon_ssl=YES
force_anon_logins_ssl=YES
force_anon_data_ssl=YES
rsa_cert_file={cert}
rsa_private_key_file={key}
ssl_ciphers=HIGH
require_ssl_reuse=NO
nopriv_user={ANON_USER}
implicit_ssl={implicit}
",
                cert = cert.display(),
                key = key.display(),
                implicit = if tls == Tls::Implicit { "YES" } else { "NO" },
            ));
        }
        if let Some(addr) = options.masquerade_address {
            text.push_str(&format!("pasv_address={addr}\n"));
        }
        fs::write(&config, text).context("writing vsftpd.conf")?;
        let argv = [binary.display().to_string(), config.display().to_string()];
        let loopbacks: &[IpAddr] = match options.masquerade_address {
            Some(_) => &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
            None => &DUAL_STACK,
        };
        let process = ServerProcess::start_serving("vsftpd", ns, &argv, &log, loopbacks, &options)?;
        Ok(Self {
            running: Running {
                process,
                tree,
                credentials: Credentials::anonymous(),
                options,
            },
        })
    }
}

impl FtpServer for Vsftpd {
    fn name(&self) -> &'static str {
        "vsftpd"
    }

    fn running(&self) -> &Running {
        &self.running
    }
}
