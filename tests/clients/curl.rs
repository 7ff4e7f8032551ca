//! curl as an FTP client.

use std::fs;

use anyhow::{Context, Result};

use super::TransferMode;
use crate::fixtures::FileDigest;
use crate::netns::Netns;
use crate::servers::{FtpTarget, Tls};

/// Whole-transfer limit passed to curl (`--max-time`), in seconds.
const MAX_TIME: &str = "30";

/// Connect limit passed to curl (`--connect-timeout`), in seconds.
const CONNECT_TIMEOUT: &str = "5";

/// Common arguments: quiet, bounded, authenticated, data-channel `mode`,
/// and whether to use the `227`'s address.
fn base_args(target: &FtpTarget, mode: TransferMode) -> Vec<String> {
    let mut args: Vec<String> = [
        "curl",
        "--silent",
        "--show-error",
        "--max-time",
        MAX_TIME,
        "--connect-timeout",
        CONNECT_TIMEOUT,
    ]
    .map(String::from)
    .into();
    args.push("--user".into());
    args.push(format!(
        "{}:{}",
        target.credentials.user, target.credentials.password
    ));
    args.extend(mode_args(mode).iter().map(|s| s.to_string()));
    if target.use_pasv_address {
        args.push("--no-ftp-skip-pasv-ip".into());
    }
    match target.tls {
        // Lab certificates are self-signed.
        Some(Tls::Explicit) => args.extend(["--ssl-reqd", "--insecure"].map(String::from)),
        Some(Tls::Implicit) => args.push("--insecure".into()),
        None => {}
    }
    args
}

/// curl flags selecting the data-connection `mode`. Active modes use
/// `-P -` (the address of the control connection).
pub fn mode_args(mode: TransferMode) -> &'static [&'static str] {
    match mode {
        TransferMode::Pasv => &["--ftp-pasv", "--disable-epsv"],
        TransferMode::Epsv => &["--ftp-pasv"],
        TransferMode::Port => &["--ftp-port", "-", "--disable-eprt"],
        TransferMode::Eprt => &["--ftp-port", "-"],
    }
}

/// Downloads `path` from `target` inside `ns`; returns the content's digest.
pub fn curl_download(
    ns: &Netns,
    target: &FtpTarget,
    path: &str,
    mode: TransferMode,
) -> Result<FileDigest> {
    let mut argv = base_args(target, mode);
    argv.push(target.url(path));
    let out = ns
        .run_ok(&argv)
        .with_context(|| format!("curl download {} ({mode:?})", target.url(path)))?;
    Ok(FileDigest::of(&out.stdout))
}

/// Uploads `data` to `remote_path` on `target` inside `ns`.
pub fn curl_upload(
    ns: &Netns,
    target: &FtpTarget,
    data: &[u8],
    remote_path: &str,
    mode: TransferMode,
) -> Result<()> {
    let dir = tempfile::tempdir().context("temp dir for upload")?;
    let local = dir.path().join("upload.bin");
    fs::write(&local, data).context("writing upload source")?;
    let mut argv = base_args(target, mode);
    argv.push("--upload-file".into());
    argv.push(local.display().to_string());
    argv.push(target.url(remote_path));
    ns.run_ok(&argv)
        .with_context(|| format!("curl upload {} ({mode:?})", target.url(remote_path)))?;
    Ok(())
}
