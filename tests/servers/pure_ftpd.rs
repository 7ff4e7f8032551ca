//! pure-ftpd: a PureDB virtual user chrooted to the served tree.

use std::fs;

use anyhow::{Context, Result, bail};

use super::{
    CONTROL_PORT, Credentials, DUAL_STACK, FtpServer, LAB_PASSWORD_HASH, LAB_USER, NOBODY, Running,
    ServerOptions, ServerProcess, Tls, require_file, self_signed_cert, server_binary, server_file,
};
use crate::fixtures::ServedTree;
use crate::netns::Netns;
use crate::process::{check_success, default_timeout, describe, run_with_timeout};

/// pure-ftpd serving a [`ServedTree`] to the lab user.
///
/// pure-ftpd's anonymous account is always the `ftp` user's home, so the
/// lab uses a virtual user instead: a passwd-style file (uid/gid `nobody`,
/// home `<root>/./` so it is chrooted) compiled with `pure-pw mkdb`, and
/// `-l puredb:FILE -E` (no anonymous). Other flags: `-S ,21` (all
/// addresses, both families), `-p LO:HI` passive range, `-H` no DNS,
/// `-A` chroot everyone, `-u 1` any uid, `-U 133:022` readable uploads,
/// `-g` pid file in the work dir, `-P ADDR` if masquerading. pure-ftpd
/// still creates `/run/pure-ftpd/` (its scoreboard directory).
///
/// FTPS (explicit only: implicit TLS is a build option, `--with-implicittls`,
/// that Debian's pure-ftpd does not use) adds `--tls=3`
/// (cleartext logins refused, data connections must be encrypted too) and
/// `--certfile=CERT,KEY` with the certificate from [`self_signed_cert`].
pub struct PureFtpd {
    running: Running,
}

impl PureFtpd {
    /// Starts pure-ftpd in `ns` with default options.
    pub fn start(ns: &Netns) -> Result<Self> {
        Self::start_with(ns, ServerOptions::default())
    }

    /// Starts pure-ftpd in `ns` with `options`.
    pub fn start_with(ns: &Netns, options: ServerOptions) -> Result<Self> {
        if options.tls == Some(Tls::Implicit) {
            bail!("pure-ftpd in the lab does explicit FTPS only");
        }
        let binary = server_binary("pure-ftpd");
        let pure_pw = server_file("pure-ftpd", "usr/bin/pure-pw");
        require_file(&binary)?;
        require_file(&pure_pw)?;
        let tree = ServedTree::create(NOBODY)?;
        let work = tree.work_dir();
        let passwd = work.join("pureftpd.passwd");
        let pdb = work.join("pureftpd.pdb");
        let line = format!(
            "{LAB_USER}:{LAB_PASSWORD_HASH}:{}:{}::{}/./::::::::::::\n",
            NOBODY.0,
            NOBODY.1,
            tree.root().display()
        );
        fs::write(&passwd, line).context("writing pure-ftpd passwd file")?;
        let mut mkdb = std::process::Command::new(&pure_pw);
        mkdb.arg("mkdb").arg(&pdb).arg("-f").arg(&passwd);
        check_success(&describe(&mkdb), run_with_timeout(mkdb, default_timeout())?)?;

        let mut argv = vec![
            binary.display().to_string(),
            format!("--login=puredb:{}", pdb.display()),
            "--noanonymous".into(),
            format!("--bind=,{CONTROL_PORT}"),
            format!(
                "--passiveportrange={}:{}",
                options.pasv_ports.start(),
                options.pasv_ports.end()
            ),
            "--dontresolve".into(),
            "--chrooteveryone".into(),
            "--minuid=1".into(),
            "--umask=133:022".into(),
            format!("--pidfile={}", work.join("pure-ftpd.pid").display()),
            format!("--altlog=clf:{}", work.join("pure-ftpd-xfer.log").display()),
        ];
        if let Some(addr) = options.masquerade_address {
            argv.push(format!("--forcepassiveip={addr}"));
        }
        if options.tls.is_some() {
            let (cert, key) = self_signed_cert(work)?;
            argv.push("--tls=3".into());
            argv.push(format!("--certfile={},{}", cert.display(), key.display()));
        }
        let log = work.join("pure-ftpd.log");
        let process =
            ServerProcess::start_serving("pure-ftpd", ns, &argv, &log, &DUAL_STACK, &options)?;
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

impl FtpServer for PureFtpd {
    fn name(&self) -> &'static str {
        "pure-ftpd"
    }

    fn running(&self) -> &Running {
        &self.running
    }
}
