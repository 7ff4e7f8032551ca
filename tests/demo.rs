//! `ftpct-demo`: a guided tour of ftpct in a throw-away network-namespace
//! lab, run as root by `cargo xtask demo`.
//!
//! It builds the lab, starts vsftpd on the server host, attaches ftpct to
//! the server's `eth0`, downloads files in every FTP mode, lets an intruder
//! try to steal a data port announced to the client, prints `ftpct status`
//! and tears everything down again. Every step is checked; the exit status
//! is non-zero if any of them did not behave as expected.

use std::net::IpAddr;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use ftpct_e2e::clients::{curl, curl_download, tcp_connect};
use ftpct_e2e::servers::FtpTarget;
use ftpct_e2e::{
    BIG_FILE, CLIENT, ConnectResult, Counter, Family, FtpServer, FtpSession, Ftpct, INTRUDER,
    LAB_IFACE, Lab, SERVER, SMALL_FILE, TransferMode, Vsftpd, ftpct_bin,
};

/// How long the intruder waits for an answer.
const INTRUDER_WAIT: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "ftpct-demo needs root (it creates network namespaces and loads BPF programs); \
             run `cargo xtask demo` as root"
        );
        return ExitCode::from(2);
    }
    match demo() {
        Ok(()) => {
            println!();
            println!("All steps behaved as expected.");
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!();
            println!("DEMO FAILED: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn demo() -> Result<()> {
    let bin = ftpct_bin();
    ensure!(
        bin.exists(),
        "{} not found; build it first (cargo xtask build) or set FTPCT_BIN",
        bin.display()
    );
    println!("ftpct demo: a stateful FTP firewall, tried in a private lab");
    let names = {
        let lab = Lab::new().context("building the lab")?;
        let names: Vec<String> = [
            lab.server(),
            lab.client(),
            lab.client2(),
            lab.intruder(),
            lab.switch(),
        ]
        .iter()
        .map(|ns| ns.name().to_string())
        .collect();
        tour(&lab)?;
        heading("Cleaning up");
        names
    };
    let left: Vec<String> = netns_list()?
        .into_iter()
        .filter(|n| names.contains(n))
        .collect();
    ensure!(left.is_empty(), "namespaces left behind: {left:?}");
    println!("The lab's {} network namespaces are gone.", names.len());
    Ok(())
}

/// Everything that happens inside the lab.
fn tour(lab: &Lab) -> Result<()> {
    heading("The lab");
    println!("Each host is a network namespace wired to one bridge; no traffic leaves the lab.");
    for (role, host, what) in [
        ("server", SERVER, "runs vsftpd; ftpct guards its eth0"),
        ("client", CLIENT, "a legitimate FTP user"),
        (
            "intruder",
            INTRUDER,
            "tries to grab other people's data ports",
        ),
    ] {
        println!("  {role:<9} {:<12} {:<13} {what}", host.v4, host.v6);
    }

    let server = Vsftpd::start(lab.server()).context("starting vsftpd")?;
    println!();
    println!("vsftpd is listening on port 21 of the server (passive ports 40000-40099).");

    heading("Without a firewall");
    println!("The client asks for a passive data port; the intruder connects to it first.");
    let v4 = server.target(SERVER.ip(Family::V4));
    let mut session = FtpSession::open(lab.client(), &v4)?;
    let port = session.epsv()?;
    println!("  server announced port {port} to the client (EPSV)");
    let result = try_connect(lab, SERVER.ip(Family::V4), port)?;
    ensure!(
        result == ConnectResult::Connected,
        "without ftpct the intruder should connect, got {result:?}"
    );
    println!("  That data connection was meant for the client: this is what ftpct stops.");
    session.quit()?;

    heading("Attaching ftpct");
    let mut fw = Ftpct::attach(lab.server(), LAB_IFACE, &[], lab.pin_root())?;
    command(&format!(
        "ftpct attach {LAB_IFACE} --pin-root {}",
        lab.pin_root().display()
    ));
    output(fw.attach_output());
    println!("From now on ports 1024-65535 of the server only accept connections that were");
    println!("announced on an FTP control connection, and only from the announced client.");

    heading("Downloads through the firewall");
    println!("The client downloads with curl in each FTP mode and checks the SHA-256.");
    let v6 = server.target(SERVER.ip(Family::V6));
    for (target, family, mode, file) in [
        (&v4, "IPv4", TransferMode::Epsv, BIG_FILE),
        (&v4, "IPv4", TransferMode::Pasv, SMALL_FILE),
        (&v6, "IPv6", TransferMode::Epsv, SMALL_FILE),
        (&v4, "IPv4", TransferMode::Port, SMALL_FILE),
        (&v6, "IPv6", TransferMode::Eprt, SMALL_FILE),
    ] {
        download(lab, &server, target, family, mode, file)?;
    }

    heading("The intruder tries again");
    let before = fw.counters()?;
    let mut session = FtpSession::open(lab.client(), &v4)?;
    let port = session.epsv()?;
    println!("The client sends EPSV; the server announces port {port}. ftpct noted it:");
    command("ftpct expectations");
    let table = fw.cli_ok("expectations", &[])?;
    output(&table);
    ensure!(
        table.contains(&format!("{}:{port}", SERVER.v4)),
        "no expectation for port {port}"
    );
    let result = try_connect(lab, SERVER.ip(Family::V4), port)?;
    ensure!(
        result == ConnectResult::TimedOut,
        "the intruder should get no answer, got {result:?}"
    );
    let after = fw.counters()?;
    let dropped = after.since(&before, Counter::SynDropped);
    ensure!(dropped >= 1, "syn_dropped did not grow: {after}");
    println!(
        "  ftpct dropped the intruder's SYNs (syn_dropped +{dropped}); the port is reserved \
         for {}.",
        CLIENT.v4
    );
    println!("The client now opens its data connection to port {port} and downloads:");
    session.connect()?;
    let got = session.retr(SMALL_FILE)?;
    let want = server.tree().digest(SMALL_FILE)?;
    ensure!(got == want, "{SMALL_FILE}: got {got}, want {want}");
    println!(
        "  {SMALL_FILE}: {} bytes, sha256 {}  OK",
        got.len,
        short(&got.sha256)
    );
    session.quit()?;

    heading("ftpct status");
    command("ftpct status");
    output(&fw.cli_ok("status", &[])?);

    heading("Detaching");
    command(&format!("ftpct detach {LAB_IFACE}"));
    let out = fw.detach_now()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    output(&stdout);
    if !out.status.success() {
        bail!(
            "ftpct detach failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    ensure!(
        !fw.pin_dir().exists(),
        "{} still exists",
        fw.pin_dir().display()
    );
    let link = lab
        .server()
        .run_ok(&["ip", "-d", "link", "show", "dev", LAB_IFACE])?;
    ensure!(
        !String::from_utf8_lossy(&link.stdout).contains("prog/xdp"),
        "an XDP program is still attached"
    );
    println!("No XDP program on eth0 and no pins left.");
    drop(fw);
    drop(server);
    Ok(())
}

/// Downloads `file` from the client with curl in `mode` and checks it.
fn download(
    lab: &Lab,
    server: &Vsftpd,
    target: &FtpTarget,
    family: &str,
    mode: TransferMode,
    file: &str,
) -> Result<()> {
    let style = if mode.is_passive() {
        "passive"
    } else {
        "active"
    };
    let name = format!("{mode:?}").to_uppercase();
    command(&format!(
        "curl {} {} | sha256sum",
        curl::mode_args(mode).join(" "),
        target.url(file)
    ));
    let got = curl_download(lab.client(), target, file, mode)
        .with_context(|| format!("{name} download over {family}"))?;
    let want = server.tree().digest(file)?;
    ensure!(got == want, "{name} over {family}: got {got}, want {want}");
    println!(
        "    {name} ({style}, {family}): {} bytes, sha256 {}  OK",
        got.len,
        short(&got.sha256)
    );
    Ok(())
}

/// The intruder connects to `addr:port`; prints and returns the outcome.
fn try_connect(lab: &Lab, addr: IpAddr, port: u16) -> Result<ConnectResult> {
    let shown = match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    };
    println!("  intruder ({}) connects to {shown} ...", INTRUDER.v4);
    let result = tcp_connect(lab.intruder(), addr, port, INTRUDER_WAIT)?;
    match &result {
        ConnectResult::Connected => println!("    connected"),
        ConnectResult::Refused => println!("    refused (RST)"),
        ConnectResult::TimedOut => println!(
            "    no answer within {} s (timed out)",
            INTRUDER_WAIT.as_secs()
        ),
        ConnectResult::Other(e) => println!("    failed: {e}"),
    }
    Ok(result)
}

/// Names of all network namespaces.
fn netns_list() -> Result<Vec<String>> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .context("ip netns list")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect())
}

fn heading(title: &str) {
    println!();
    println!("== {title} ==");
}

fn command(line: &str) {
    println!("  $ {line}");
}

fn output(text: &str) {
    for line in text.trim_end().lines() {
        println!("    {line}");
    }
}

/// The first 16 hex digits of a digest.
fn short(sha: &str) -> &str {
    &sha[..sha.len().min(16)]
}
