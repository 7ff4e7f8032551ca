//! ProFTPD: a user from an `AuthUserFile`, chrooted to the served tree.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use super::{
    Credentials, DUAL_STACK, FtpServer, LAB_PASSWORD_HASH, LAB_USER, NOBODY, Running,
    ServerOptions, ServerProcess, Tls, require_file, self_signed_cert, server_binary, server_file,
};
use crate::fixtures::{ServedTree, set_mode};
use crate::netns::Netns;

/// ProFTPD serving a [`ServedTree`] to the lab user.
///
/// The binary comes from Debian's `proftpd-core` (`proftpd-basic` is a
/// dummy). Run as `proftpd -n -c FILE` (foreground, standalone). Config
/// choices: `UseIPv6 on` (one dual-stack listener), `AuthOrder
/// mod_auth_file.c` with `AuthUserFile`/`AuthGroupFile` in the work dir
/// (user `ftpct`, uid/gid `nobody`, home = the tree), `DefaultRoot ~`,
/// `RequireValidShell off`, `PassivePorts LO HI`, `UseReverseDNS off`,
/// `DelayTable none`, `WtmpLog off`, pid/scoreboard/log files in the work
/// dir; `MasqueradeAddress` if masquerading. Without FTPS no module has to
/// be loaded, so `/etc/proftpd` is not used.
///
/// FTPS loads `mod_tls` (Debian's `proftpd-mod-crypto`, unpacked next to
/// the core at the same version by `install-deps.sh`) with `ModulePath` +
/// `LoadModule mod_tls.c`, and sets `TLSEngine on`, `TLSRequired on`
/// (control and data), `TLSProtocol TLSv1.2 TLSv1.3`, the certificate from
/// [`self_signed_cert`], `TLSVerifyClient off`, `TLSOptions
/// NoSessionReuseRequired` (curl and ftplib do not resume the control
/// connection's TLS session on data connections), a `TLSLog`, and for
/// implicit FTPS also `UseImplicitSSL` with `Port 990`.
pub struct Proftpd {
    running: Running,
}

impl Proftpd {
    /// Starts ProFTPD in `ns` with default options.
    pub fn start(ns: &Netns) -> Result<Self> {
        Self::start_with(ns, ServerOptions::default())
    }

    /// Starts ProFTPD in `ns` with `options`.
    pub fn start_with(ns: &Netns, options: ServerOptions) -> Result<Self> {
        let binary = server_binary("proftpd");
        require_file(&binary)?;
        let tree = ServedTree::create(NOBODY)?;
        let work = tree.work_dir();
        let passwd = work.join("passwd");
        let group = work.join("group");
        fs::write(
            &passwd,
            format!(
                "{LAB_USER}:{LAB_PASSWORD_HASH}:{}:{}::{}:/bin/false\n",
                NOBODY.0,
                NOBODY.1,
                tree.root().display()
            ),
        )
        .context("writing proftpd AuthUserFile")?;
        fs::write(&group, format!("nogroup:x:{}:\n", NOBODY.1))
            .context("writing proftpd AuthGroupFile")?;
        set_mode(&passwd, 0o600)?;
        set_mode(&group, 0o600)?;

        let config = work.join("proftpd.conf");
        let mut text = format!(
            "\
ServerType standalone
ServerName \"ftpct-lab\"
DefaultServer on
UseIPv6 on
Port {port}
User nobody
Group nogroup
PidFile {work}/proftpd.pid
ScoreboardFile {work}/proftpd.scoreboard
DelayTable none
WtmpLog off
UseReverseDNS off
PassivePorts {lo} {hi}
RequireValidShell off
AuthOrder mod_auth_file.c
AuthUserFile {passwd}
AuthGroupFile {group}
DefaultRoot ~
SystemLog {work}/proftpd-system.log
TransferLog {work}/proftpd-xfer.log
Umask 022
AllowOverwrite on
",
            work = work.display(),
            lo = options.pasv_ports.start(),
            hi = options.pasv_ports.end(),
            passwd = passwd.display(),
            group = group.display(),
            port = options.control_port(),
        );
        if let Some(tls) = options.tls {
            text.push_str(&tls_config(work, tls)?);
        }
        if let Some(addr) = options.masquerade_address {
            text.push_str(&format!("MasqueradeAddress {addr}\n"));
        }
        fs::write(&config, text).context("writing proftpd.conf")?;
        let argv = [
            binary.display().to_string(),
            "-n".into(),
            "-c".into(),
            config.display().to_string(),
        ];
        let log = work.join("proftpd.log");
        let process =
            ServerProcess::start_serving("proftpd", ns, &argv, &log, &DUAL_STACK, &options)?;
        Ok(Self {
            running: Running {
                process,
                tree,
                credentials: Credentials::lab_user(),
                options,
            },
        })
    }
}

/// The `mod_tls` part of `proftpd.conf` for FTPS of kind `tls`, with a
/// fresh certificate in `work`.
fn tls_config(work: &Path, tls: Tls) -> Result<String> {
    let modules = server_file("proftpd", "usr/lib/proftpd");
    require_file(&modules.join("mod_tls.so"))?;
    let (cert, key) = self_signed_cert(work)?;
    let implicit = if tls == Tls::Implicit {
        " UseImplicitSSL"
    } else {
        ""
    };
    Ok(format!(
        "\
ModulePath {modules}
LoadModule mod_tls.c
TLSEngine on
TLSRequired on
TLSProtocol TLSv1.2 TLSv1.3
TLSRSACertificateFile {cert}
TLSRSACertificateKeyFile {key}
TLSVerifyClient off
TLSOptions NoSessionReuseRequired{implicit}
TLSLog {log}
",
        modules = modules.display(),
        cert = cert.display(),
        key = key.display(),
        log = work.join("proftpd-tls.log").display(),
    ))
}

impl FtpServer for Proftpd {
    fn name(&self) -> &'static str {
        "proftpd"
    }

    fn running(&self) -> &Running {
        &self.running
    }
}
