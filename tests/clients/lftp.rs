//! lftp as an FTP client, driven by a generated command file.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use crate::fixtures::FileDigest;
use crate::netns::Netns;
use crate::servers::FtpTarget;

/// Settings making lftp fail fast and deterministically.
const SETTINGS: &str = "\
set net:timeout 5
set net:max-retries 1
set net:reconnect-interval-base 1
set net:persist-retries 0
set ftp:ssl-allow no
set cmd:fail-exit yes
set xfer:clobber on
";

/// Runs `commands` after logging in to `target`; `passive` selects
/// `ftp:passive-mode`. Returns stdout.
fn run(ns: &Netns, target: &FtpTarget, passive: bool, commands: &[String]) -> Result<String> {
    let dir = tempfile::tempdir().context("temp dir for lftp")?;
    let script = dir.path().join("script.lftp");
    let mut text = String::from(SETTINGS);
    text.push_str(&format!(
        "set ftp:passive-mode {}\n",
        if passive { "on" } else { "off" }
    ));
    text.push_str(&format!(
        "open -u {},{} -p {} {}\n",
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
    let out = ns
        .run_ok(&argv)
        .with_context(|| format!("lftp against {} (passive={passive})", target.url("")))?;
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
    run(ns, target, passive, &[format!("ls {}", quote(dir))])
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
    run(ns, target, passive, &[cmd])?;
    Ok(())
}

/// Downloads `remote_path` (`get`); returns the content's digest.
pub fn lftp_download(
    ns: &Netns,
    target: &FtpTarget,
    remote_path: &str,
    passive: bool,
) -> Result<FileDigest> {
    let dir = tempfile::tempdir().context("temp dir for lftp download")?;
    let local = dir.path().join("download.bin");
    let cmd = format!("get {} -o {}", quote(remote_path), quote_path(&local));
    run(ns, target, passive, &[cmd])?;
    FileDigest::of_file(&local)
}
