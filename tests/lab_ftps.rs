//! FTPS in the lab itself, without ftpct: ProFTPD (`mod_tls`), pure-ftpd
//! and pyftpdlib (`TLS_FTPHandler`) require TLS for logins and data, and
//! curl, Python's ftplib and lftp transfer through it. vsftpd's FTPS is
//! covered by `ftps_range.rs`.
//!
//! Each server (ProFTPD explicit and implicit on port 990, the others
//! explicit): a plain login is refused (explicit: curl without TLS gets a
//! 4xx/5xx reply to `USER`; implicit: no plain banner at all), and after a
//! TLS login so is a cleartext data connection (`PROT C` or the transfer
//! after it), so the transfers that work really were encrypted. Then EPSV
//! downloads over IPv4 and IPv6 (curl `--ssl-reqd`; ftplib for pyftpdlib,
//! whose TLS data connections curl 7.88.1 does not complete), ftplib PASV,
//! PORT and EPRT downloads (curl 7.88.1 cannot do active FTPS), an active
//! lftp listing, and lftp listing, uploading and downloading back a 5 MB
//! file (passive, IPv4 and IPv6), checksums compared.
//!
//! Needs root, the servers (`tests/install-deps.sh`, which also fetches
//! ProFTPD's `mod_tls`), openssl, curl and lftp. Run:
//! `cargo test -p ftpct-e2e --test lab_ftps -- --test-threads=2`.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ftpct_e2e::clients::python::{python, wait_banner};
use ftpct_e2e::clients::{curl_download, ftplib_download, lftp_download, lftp_list, lftp_upload};
use ftpct_e2e::fixtures::{FileDigest, pseudo_random_bytes};
use ftpct_e2e::servers::FtpTarget;
use ftpct_e2e::{
    BIG_FILE, Family, FtpServer, Lab, Netns, Proftpd, PureFtpd, Pyftpdlib, SERVER, SMALL_FILE,
    ServerOptions, Tls, TransferMode,
};

/// Size of the file lftp uploads and downloads back.
const LFTP_FILE_LEN: usize = 5 * 1024 * 1024;

/// A download by one of the clients.
type Download = fn(&Netns, &FtpTarget, &str, TransferMode) -> Result<FileDigest>;

/// Upper bound for one plain curl login attempt.
const PLAIN_CURL_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a plain client waits for a banner on the implicit FTPS port.
const BANNER_WAIT: Duration = Duration::from_secs(2);

/// A plain (non-TLS) login to `server` is refused, so the transfers that
/// work go through TLS. Explicit FTPS: curl without `--ssl-reqd` gets the
/// 220 banner, and a 4xx/5xx reply to `USER` (returned). Implicit FTPS: a
/// plain client gets no banner at all.
fn plain_login_is_refused(lab: &Lab, server: &dyn FtpServer) -> Result<String> {
    let target = server.target(SERVER.ip(Family::V4));
    if target.tls == Some(Tls::Implicit) {
        let banner = wait_banner(lab.client(), target.host, target.port, None, BANNER_WAIT)?;
        ensure!(
            !banner,
            "{}: a plain 220 banner on port {}",
            server.name(),
            target.port
        );
        return Ok("no plain banner".into());
    }
    let user = format!(
        "{}:{}",
        target.credentials.user, target.credentials.password
    );
    let url = FtpTarget {
        tls: None,
        ..target
    }
    .url(SMALL_FILE);
    let argv = [
        "curl",
        "--verbose",
        "--no-progress-meter",
        "--max-time",
        "10",
        "--connect-timeout",
        "5",
        "--user",
        &user,
        &url,
    ];
    let out = lab.client().run_timeout(&argv, PLAIN_CURL_TIMEOUT)?;
    let log = String::from_utf8_lossy(&out.stderr);
    let what = format!("{}: plain curl login", server.name());
    ensure!(!out.status.success(), "{what} worked: {log}");
    let mut lines = log.lines().skip_while(|l| !l.starts_with("< 220"));
    ensure!(lines.next().is_some(), "{what}: no 220 banner: {log}");
    let reply = lines
        .skip_while(|l| !l.starts_with("> USER"))
        .find(|l| l.starts_with("< "))
        .with_context(|| format!("{what}: no reply to USER: {log}"))?
        .trim_start_matches("< ")
        .to_string();
    ensure!(
        reply.starts_with('4') || reply.starts_with('5'),
        "{what}: USER answered {reply:?}"
    );
    Ok(reply)
}

/// ftplib: logs in over TLS (`FTP_TLS`; implicit with `--implicit`), asks
/// for cleartext data (`PBSZ 0`, `PROT C`) and tries a PASV download.
/// Prints `refused REPLY` and exits 0 if the server refuses the `PROT C`
/// or the transfer with an FTP error reply, `transferred` (exit 1) if the
/// cleartext transfer worked, `error ...` (exit 2) on anything else.
const CLEARTEXT_DATA_PROBE: &str = r#"
import ftplib, socket, ssl, sys
implicit = sys.argv[1] == "--implicit"
host, port, user, password, path = sys.argv[2:7]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ftp = ftplib.FTP_TLS(context=ctx, timeout=10)
try:
    if implicit:
        sock = socket.create_connection((host, int(port)), 10)
        ftp.af = sock.family
        ftp.sock = ctx.wrap_socket(sock)
        ftp.file = ftp.sock.makefile("r", encoding=ftp.encoding)
        ftp.welcome = ftp.getresp()
    else:
        ftp.connect(host, int(port))
    ftp.login(user, password)
except Exception as e:
    print("error login: %r" % e)
    sys.exit(2)
try:
    ftp.voidcmd("PBSZ 0")
    ftp.voidcmd("PROT C")
    ftp.retrbinary("RETR " + path, lambda block: None)
except ftplib.Error as e:
    print("refused %s" % e)
    sys.exit(0)
except Exception as e:
    print("error transfer: %r" % e)
    sys.exit(2)
print("transferred")
sys.exit(1)
"#;

/// Upper bound for the cleartext-data probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// After a TLS login, a cleartext data connection (`PROT C`) is refused
/// with a 4xx/5xx reply (returned): the server encrypts every transfer.
fn cleartext_data_is_refused(lab: &Lab, server: &dyn FtpServer) -> Result<String> {
    let target = server.target(SERVER.ip(Family::V4));
    let what = format!("{}: ftplib PROT C after a TLS login", server.name());
    let kind = if target.tls == Some(Tls::Implicit) {
        "--implicit"
    } else {
        "--explicit"
    };
    let argv = [
        python(),
        "-c".into(),
        CLEARTEXT_DATA_PROBE.into(),
        kind.into(),
        target.host.to_string(),
        target.port.to_string(),
        target.credentials.user.clone(),
        target.credentials.password.clone(),
        SMALL_FILE.into(),
    ];
    let out = lab.client().run_timeout(&argv, PROBE_TIMEOUT)?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let reply = text.strip_prefix("refused ").with_context(|| {
        format!(
            "{what}: {text} {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    ensure!(
        out.status.success() && (reply.starts_with('4') || reply.starts_with('5')),
        "{what}: {text}"
    );
    Ok(reply.to_string())
}

/// `download` of `BIG_FILE` from `server` over `family` in `mode` matches.
fn download_matches(
    lab: &Lab,
    server: &dyn FtpServer,
    (client, download): (&str, Download),
    family: Family,
    mode: TransferMode,
) -> Result<()> {
    let what = format!("{}: {client} {mode:?} over {family:?}", server.name());
    let target = server.target(SERVER.ip(family));
    let got = download(lab.client(), &target, BIG_FILE, mode).context(what.clone())?;
    ensure!(
        got == server.tree().digest(BIG_FILE)?,
        "{what}: wrong content"
    );
    Ok(())
}

/// lftp over `family` (passive): lists the root, uploads a 5 MB file into
/// `upload/`, finds it listed, and downloads it back; both copies match.
fn lftp_round_trip(lab: &Lab, server: &dyn FtpServer, family: Family) -> Result<()> {
    let what = format!("{}: lftp over {family:?}", server.name());
    let target = server.target(SERVER.ip(family));
    let listing = lftp_list(lab.client(), &target, "/", true).context(what.clone())?;
    ensure!(
        listing.contains(SMALL_FILE) && listing.contains(BIG_FILE),
        "{what}: listing {listing:?}"
    );
    let data = pseudo_random_bytes(LFTP_FILE_LEN, family as u64 + 11);
    let sent = FileDigest::of(&data);
    let remote = format!("upload/lftp-{family:?}.bin");
    lftp_upload(lab.client(), &target, &data, &remote, true).context(what.clone())?;
    ensure!(
        server.tree().digest(&remote)? == sent,
        "{what}: the uploaded file differs"
    );
    let listing = lftp_list(lab.client(), &target, "upload", true).context(what.clone())?;
    ensure!(
        listing.contains(&format!("lftp-{family:?}.bin")),
        "{what}: upload/ listing {listing:?}"
    );
    let got = lftp_download(lab.client(), &target, &remote, true).context(what.clone())?;
    ensure!(got == sent, "{what}: the downloaded file differs");
    Ok(())
}

/// curl (`--ssl-reqd`, or `ftps://` for implicit FTPS).
const CURL: (&str, Download) = ("curl", curl_download);

/// Python's ftplib (`FTP_TLS` with `PROT P`).
const FTPLIB: (&str, Download) = ("ftplib", ftplib_download);

/// Every check of `server` running FTPS: a plain login is refused; `epsv`
/// downloads over EPSV on IPv4 and IPv6; ftplib downloads over PASV, and
/// active (PORT on IPv4, EPRT on IPv6: curl 7.88.1 cannot do active FTPS);
/// lftp lists actively, and lists, uploads and downloads back a 5 MB file
/// passively on both families.
fn ftps_works(lab: &Lab, server: &dyn FtpServer, epsv: (&str, Download)) -> Result<()> {
    let refused = plain_login_is_refused(lab, server)?;
    eprintln!("{}: plain login: {refused}", server.name());
    for family in Family::ALL {
        download_matches(lab, server, epsv, family, TransferMode::Epsv)?;
    }
    download_matches(lab, server, FTPLIB, Family::V4, TransferMode::Pasv)?;
    download_matches(lab, server, FTPLIB, Family::V4, TransferMode::Port)?;
    download_matches(lab, server, FTPLIB, Family::V6, TransferMode::Eprt)?;
    let target = server.target(SERVER.ip(Family::V4));
    let refused = cleartext_data_is_refused(lab, server)?;
    eprintln!("{}: cleartext data: {refused}", server.name());
    let listing = lftp_list(lab.client(), &target, "/", false)
        .with_context(|| format!("{}: lftp active list", server.name()))?;
    ensure!(listing.contains(BIG_FILE), "{}: {listing:?}", server.name());
    for family in Family::ALL {
        lftp_round_trip(lab, server, family)?;
    }
    Ok(())
}

#[test]
fn proftpd_explicit_ftps_refuses_plain_logins_and_serves_curl_ftplib_and_lftp() -> Result<()> {
    let lab = Lab::new()?;
    let server = Proftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    ftps_works(&lab, &server, CURL)
}

#[test]
fn proftpd_implicit_ftps_on_port_990_has_no_plain_banner_and_serves_curl_ftplib_and_lftp()
-> Result<()> {
    let lab = Lab::new()?;
    let server = Proftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Implicit))?;
    ftps_works(&lab, &server, CURL)
}

#[test]
fn pure_ftpd_explicit_ftps_refuses_plain_logins_and_serves_curl_ftplib_and_lftp() -> Result<()> {
    let lab = Lab::new()?;
    let server = PureFtpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    ftps_works(&lab, &server, CURL)
}

#[test]
fn pyftpdlib_explicit_ftps_refuses_plain_logins_and_serves_ftplib_and_lftp() -> Result<()> {
    let lab = Lab::new()?;
    let server = Pyftpdlib::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    // curl 7.88.1 does not complete pyftpdlib's TLS data connections.
    ftps_works(&lab, &server, FTPLIB)
}
