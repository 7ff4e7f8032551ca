//! pyftpdlib: a small Python server script (`py/pyftpd_server.py`).

use anyhow::{Result, bail};

use super::{
    CONTROL_PORT, Credentials, DUAL_STACK, FtpServer, Running, ServerOptions, ServerProcess, Tls,
    self_signed_cert,
};
use crate::clients::python::PYTHON;
use crate::fixtures::ServedTree;
use crate::netns::Netns;

/// The server script, passed to the interpreter with `-c`.
const SCRIPT: &str = include_str!("../py/pyftpd_server.py");

/// pyftpdlib serving a [`ServedTree`] to anonymous users (with write
/// permission), on one dual-stack `::` socket, run by Debian's
/// `/usr/bin/python3` as root; `masquerade_address` if masquerading.
///
/// FTPS (explicit only: pyftpdlib has no implicit TLS) uses
/// `TLS_FTPHandler` (needs python3-openssl) with the certificate from
/// [`self_signed_cert`], `tls_control_required` and `tls_data_required`.
pub struct Pyftpdlib {
    running: Running,
}

impl Pyftpdlib {
    /// Starts pyftpdlib in `ns` with default options.
    pub fn start(ns: &Netns) -> Result<Self> {
        Self::start_with(ns, ServerOptions::default())
    }

    /// Starts pyftpdlib in `ns` with `options`.
    pub fn start_with(ns: &Netns, options: ServerOptions) -> Result<Self> {
        if options.tls == Some(Tls::Implicit) {
            bail!("pyftpdlib does explicit FTPS only");
        }
        let tree = ServedTree::create((0, 0))?;
        let mut argv = vec![PYTHON.to_string(), "-u".into(), "-c".into(), SCRIPT.into()];
        if options.tls.is_some() {
            let (cert, key) = self_signed_cert(tree.work_dir())?;
            argv.push(format!("--tls={},{}", cert.display(), key.display()));
        }
        argv.extend([
            tree.root().display().to_string(),
            CONTROL_PORT.to_string(),
            options.pasv_ports.start().to_string(),
            options.pasv_ports.end().to_string(),
        ]);
        argv.extend(options.masquerade_address.map(|a| a.to_string()));
        let log = tree.work_dir().join("pyftpdlib.log");
        let process =
            ServerProcess::start_serving("pyftpdlib", ns, &argv, &log, &DUAL_STACK, &options)?;
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

impl FtpServer for Pyftpdlib {
    fn name(&self) -> &'static str {
        "pyftpdlib"
    }

    fn running(&self) -> &Running {
        &self.running
    }
}
