//! lftp as an FTP client, driven by a generated command file. With
//! `FtpTarget::tls` every command speaks FTPS (control and data encrypted).

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use super::TransferMode;
use crate::fixtures::FileDigest;
use crate::netns::Netns;
use crate::servers::{FtpTarget, Tls};

/// Settings making lftp fail fast and deterministically.
const SETTINGS: &str = "\
set net:timeout 5
set net:max-retries 1
set net:reconnect-interval-base 1
set net:persist-retries 0
set cmd:fail-exit yes
set xfer:clobber on
";

/// Settings for plain FTP: no `AUTH TLS` even if the server offers it.
const PLAIN: &str = "set ftp:ssl-allow no\n";

/// Settings for FTPS: TLS on the control connection (`AUTH TLS` before the
/// login for explicit FTPS; implicit FTPS is the `ftps://` URL) and on
/// every data connection (`PROT P`), without verifying the lab's
/// self-signed certificates.
const FTPS: &str = "\
set ftp:ssl-allow yes
set ftp:ssl-force true
set ftp:ssl-protect-data true
set ftp:ssl-protect-list true
set ssl:verify-certificate no
";

/// Settings making lftp connect to the address a `227` names as it is
/// (its default corrects one that looks private while the server's does
/// not).
const USE_PASV_ADDRESS: &str = "\
set ftp:ignore-pasv-address no
set ftp:fix-pasv-address no
";

/// `ftp:passive-mode` on or off, and never switched by lftp after a failed
/// data connection (its `auto-passive-mode` would hide a passive transfer
/// ftpct broke behind an active one that works).
fn passive_settings(passive: bool) -> String {
    format!(
        "set ftp:passive-mode {}\nset ftp:auto-passive-mode no\n",
        if passive { "on" } else { "off" }
    )
}

/// Settings selecting the data-connection `mode` exactly: no automatic
/// switch to the other side when a data connection fails. lftp itself
/// picks `PORT` over IPv4 and `EPRT` over IPv6, and always `EPSV` over
/// IPv6.
fn mode_settings(mode: TransferMode) -> String {
    let (passive, epsv) = match mode {
        TransferMode::Pasv => (true, false),
        TransferMode::Epsv => (true, true),
        TransferMode::Port | TransferMode::Eprt => (false, false),
    };
    format!(
        "{}set ftp:prefer-epsv {}\n",
        passive_settings(passive),
        if epsv { "yes" } else { "no" }
    )
}

/// Runs `commands` after logging in to `target` with the data-connection
/// settings `mode` ([`passive_settings`], [`mode_settings`]). Returns
/// stdout.
fn run(ns: &Netns, target: &FtpTarget, mode: &str, commands: &[String]) -> Result<String> {
    let dir = tempfile::tempdir().context("temp dir for lftp")?;
    let script = dir.path().join("script.lftp");
    let mut text = String::from(SETTINGS);
    text.push_str(if target.tls.is_some() { FTPS } else { PLAIN });
    if target.use_pasv_address {
        text.push_str(USE_PASV_ADDRESS);
    }
    if let Some(addr) = target.port_address {
        text.push_str(&format!("set ftp:port-ipv4 {addr}\n"));
    }
    text.push_str(mode);
    let scheme = if target.tls == Some(Tls::Implicit) {
        "ftps://"
    } else {
        ""
    };
    text.push_str(&format!(
        "open -u {},{} -p {} {scheme}{}\n",
        quote(&target.credentials.user),
        quote(&target.credentials.password),
        target.port,
        target.url_host()
    ));
    for cmd in commands {
        text.push_str(cmd);
        text.push('\n');
    }
    text.push_str("bye\n");
    fs::write(&script, text).context("writing lftp script")?;
    let argv = [
        "lftp".to_string(),
        "-f".into(),
        script.display().to_string(),
    ];
    let out = ns.run_ok(&argv).with_context(|| {
        let mode = mode.trim().replace('\n', "; ");
        format!("lftp against {} ({mode})", target.url(""))
    })?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Quotes an lftp argument.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Quotes a local path for lftp.
fn quote_path(p: &Path) -> String {
    quote(&p.display().to_string())
}

/// Lists directory `dir` (`ls`); returns the listing text.
pub fn lftp_list(ns: &Netns, target: &FtpTarget, dir: &str, passive: bool) -> Result<String> {
    let mode = passive_settings(passive);
    run(ns, target, &mode, &[format!("ls {}", quote(dir))])
}

/// Uploads `data` to `remote_path` (`put`).
pub fn lftp_upload(
    ns: &Netns,
    target: &FtpTarget,
    data: &[u8],
    remote_path: &str,
    passive: bool,
) -> Result<()> {
    let dir = tempfile::tempdir().context("temp dir for lftp upload")?;
    let local = dir.path().join("upload.bin");
    fs::write(&local, data).context("writing upload source")?;
    let cmd = format!("put {} -o {}", quote_path(&local), quote(remote_path));
    run(ns, target, &passive_settings(passive), &[cmd])?;
    Ok(())
}

/// Downloads `remote_path` (`get`); returns the content's digest.
pub fn lftp_download(
    ns: &Netns,
    target: &FtpTarget,
    remote_path: &str,
    passive: bool,
) -> Result<FileDigest> {
    download(ns, target, remote_path, &passive_settings(passive))
}

/// Downloads `remote_path` (`get`) with the data connection set up as
/// `mode` says (see [`mode_settings`]); returns the content's digest.
pub fn lftp_download_mode(
    ns: &Netns,
    target: &FtpTarget,
    remote_path: &str,
    mode: TransferMode,
) -> Result<FileDigest> {
    download(ns, target, remote_path, &mode_settings(mode))
}

/// `get` with the data-connection settings `mode`.
fn download(ns: &Netns, target: &FtpTarget, remote_path: &str, mode: &str) -> Result<FileDigest> {
    let dir = tempfile::tempdir().context("temp dir for lftp download")?;
    let local = dir.path().join("download.bin");
    let cmd = format!("get {} -o {}", quote(remote_path), quote_path(&local));
    run(ns, target, mode, &[cmd])?;
    FileDigest::of_file(&local)
}
