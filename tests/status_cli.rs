//! `ftpct status`, `flows` and `expectations` for people and scripts
//! (issue #12, item 8): `status IFACE` shows one interface and exits 1
//! unless it is guarded (not attached, or its link deleted behind ftpct's
//! back); tables show their fill against their size and no expired entries;
//! flows and expectations come under a header, the end that opened a
//! connection first with its direction and the control connection that
//! announced it, and `--iface` picks one interface; JSON gives counters as
//! one object and addresses apart from ports; output into a closed pipe
//! ends the process quietly instead of a panic.
//!
//! Needs root and a built ftpct (`FTPCT_BIN`). Run:
//! `cargo test -p ftpct-e2e --test status_cli`.

use std::os::unix::process::ExitStatusExt;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ftpct_e2e::ftpct::endpoint;
use ftpct_e2e::{
    CLIENT, CLIENT2, EchoClient, EchoServer, Family, FtpServer, FtpSession, LAB_IFACE, Lab, SERVER,
    Vsftpd, assert_cli_error, ftpct_bin,
};
use serde_json::Value;

#[test]
fn status_of_one_interface_exits_non_zero_unless_it_is_guarded() -> Result<()> {
    let lab = Lab::new()?;
    let root = lab.pin_root().display().to_string();
    let status =
        |iface: &str| ftpct_e2e::ftpct_run(lab.server(), &["status", iface, "--pin-root", &root]);
    let out = status(LAB_IFACE)?;
    assert_cli_error("status before attach", &out, 1, "not attached to eth0");
    let fw = lab.attach(&[])?;
    let out = status(LAB_IFACE)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "status of a guarded interface: {out:?}"
    );
    ensure!(text.starts_with("eth0: guarded"), "{text}");
    let out = status("eth9")?;
    assert_cli_error(
        "status of another interface",
        &out,
        1,
        "not attached to eth9",
    );
    // The interface goes behind ftpct's back: still listed, NOT guarded,
    // and the exit status says so.
    lab.server()
        .run_ok(&["ip", "link", "del", LAB_IFACE])
        .context("deleting the interface")?;
    let out = status(LAB_IFACE)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(text.contains("NOT guarded"), "{text}");
    assert_cli_error(
        "status of a deleted interface",
        &out,
        1,
        "eth0 is not guarded",
    );
    drop(fw);
    Ok(())
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() -> Result<()> {
    let lab = Lab::new()?;
    let fw = lab.attach(&[])?;
    let root = lab.pin_root().display().to_string();
    for sub in ["status", "flows", "expectations"] {
        // A pipe whose reader is gone before ftpct writes (`| head` that
        // already exited): the first write fails with EPIPE.
        let (reader, writer) = std::io::pipe().context("pipe")?;
        drop(reader);
        let bin = ftpct_bin();
        let mut cmd = lab.server().command(&[
            bin.as_os_str(),
            sub.as_ref(),
            "--pin-root".as_ref(),
            root.as_ref(),
        ]);
        cmd.stdout(writer);
        let out = cmd
            .output()
            .with_context(|| format!("running ftpct {sub}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(!stderr.contains("panicked"), "ftpct {sub}: {stderr}");
        ensure!(
            out.status.success() || out.status.signal() == Some(libc_sigpipe()),
            "ftpct {sub}: {:?} {stderr}",
            out.status
        );
    }
    drop(fw);
    Ok(())
}

/// SIGPIPE's number on Linux.
fn libc_sigpipe() -> i32 {
    13
}

#[test]
fn tables_show_their_fill_and_no_expired_entries() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let fw = lab.attach(&["--max-expectations", "100", "--expect-timeout", "1"])?;
    let mut session = FtpSession::open(lab.client(), &server.target(SERVER.ip(Family::V4)))?;
    session.pasv()?;
    let status = fw.status_json()?;
    ensure!(
        status[0]["expectations"] == 1 && status[0]["capacity"]["expectations"] == 100,
        "{status}"
    );
    ensure!(
        status[0]["capacity"]["admitted_flows"] == 262_144
            && status[0]["capacity"]["control_connections"] == 16_384,
        "{status}"
    );
    let text = fw.cli_ok("status", &[])?;
    ensure!(text.contains("1/100 expectations"), "{text}");
    // Expired, not yet swept: admits nothing, so it is not shown.
    thread::sleep(Duration::from_millis(1500));
    ensure!(
        fw.expectations_json()?.is_empty(),
        "an expired entry is listed"
    );
    let text = fw.cli_ok("status", &[])?;
    ensure!(text.contains("0/100 expectations"), "{text}");
    session.quit()?;
    Ok(())
}

/// Port of the echo server the guarded host connects out to.
const ECHO_PORT: u16 = 7007;

/// The whitespace-separated fields of a line of table output.
fn fields(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// The line of `text` (after the header) whose fields start with `start`.
fn line_starting<'t>(text: &'t str, start: &[&str]) -> Option<Vec<&'t str>> {
    text.lines()
        .skip(1)
        .map(fields)
        .find(|f| f.starts_with(start))
}

#[test]
fn flows_and_expectations_list_the_opener_first_under_a_header() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let _echo = EchoServer::start(lab.client2(), "::", ECHO_PORT)?;
    let fw = lab.attach(&[])?;
    let (srv, cli, cli2) = (
        SERVER.ip(Family::V4),
        CLIENT.ip(Family::V4),
        CLIENT2.ip(Family::V4),
    );
    let mut session = FtpSession::open(lab.client(), &server.target(srv))?;
    let port = session.pasv()?;

    // The announced port, for the client, from the control connection
    // that announced it: addresses and ports in fields of their own.
    let rows = fw.expectations_json()?;
    ensure!(rows.len() == 1, "one expectation: {rows}");
    let e = &rows[0];
    ensure!(
        e["kind"] == "pasv"
            && e["src_addr"] == cli.to_string()
            && e["dst_addr"] == srv.to_string()
            && e["dst_port"] == port,
        "{rows}"
    );
    let control = e["control"].clone();
    let control_port = control["client_port"].as_u64().unwrap_or(0);
    ensure!(
        control["client_addr"] == cli.to_string()
            && control["server_addr"] == srv.to_string()
            && control["server_port"] == 21
            && control_port >= 1024,
        "{rows}"
    );
    let control_text = format!(
        "{} -> {}",
        endpoint(cli, u16::try_from(control_port)?),
        endpoint(srv, 21)
    );
    let text = fw.cli_ok("expectations", &["--iface", LAB_IFACE])?;
    println!("ftpct expectations\n{text}{rows}");
    ensure!(
        text.lines().next().map(fields)
            == Some(vec!["IFACE", "KIND", "SRC", "DST", "EXPIRES", "CONTROL"]),
        "{text}"
    );
    let line = line_starting(&text, &[LAB_IFACE, "pasv", &cli.to_string()])
        .with_context(|| format!("no expectation line: {text}"))?;
    ensure!(
        line[3] == endpoint(srv, port) && line[5..].join(" ") == control_text,
        "{text}"
    );

    // The client opens the announced port: in, client first, with its
    // control connection; the host opens a connection of its own: out,
    // the host first, no control connection.
    session.connect()?;
    let mut echo = EchoClient::connect(lab.server(), cli2, ECHO_PORT, Duration::from_secs(5))?;
    ensure!(echo.exchange("hello")? == "hello", "echo");
    let rows = fw.flows_json()?;
    let find = |dst_port: u16| rows.iter().find(|r| r["dst_port"] == dst_port);
    let data = find(port).with_context(|| format!("no flow to port {port}: {rows}"))?;
    ensure!(
        data["direction"] == "in"
            && data["origin"] == "admitted"
            && data["src_addr"] == cli.to_string()
            && data["dst_addr"] == srv.to_string()
            && data["control"] == control,
        "the data connection: {rows}"
    );
    let own = find(ECHO_PORT).with_context(|| format!("no flow to the echo server: {rows}"))?;
    ensure!(
        own["direction"] == "out"
            && own["origin"] == "outbound"
            && own["src_addr"] == srv.to_string()
            && own["dst_addr"] == cli2.to_string()
            && own["control"] == Value::Null,
        "the host's own connection: {rows}"
    );
    let port_of = |row: &Value| {
        row["src_port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(0)
    };
    let text = fw.cli_ok("flows", &["--iface", LAB_IFACE])?;
    println!("ftpct flows\n{text}");
    println!("ftpct flows --json\n{}", fw.cli_ok("flows", &["--json"])?);
    ensure!(
        text.lines().next().map(fields)
            == Some(vec![
                "IFACE", "DIR", "SRC", "DST", "ORIGIN", "STATE", "IDLE", "CONTROL"
            ]),
        "{text}"
    );
    let line = line_starting(&text, &[LAB_IFACE, "in", &endpoint(cli, port_of(data))])
        .with_context(|| format!("no line for the data connection: {text}"))?;
    ensure!(
        line[3] == endpoint(srv, port)
            && line[4] == "admitted"
            && line[7..].join(" ") == control_text,
        "{text}"
    );
    let line = line_starting(&text, &[LAB_IFACE, "out", &endpoint(srv, port_of(own))])
        .with_context(|| format!("no line for the host's connection: {text}"))?;
    ensure!(
        line[3] == endpoint(cli2, ECHO_PORT) && line[4] == "outbound" && line[7] == "-",
        "{text}"
    );

    // Only an attached interface can be picked.
    for sub in ["flows", "expectations"] {
        let out = fw.cli(sub, &["--iface", "eth9"])?;
        assert_cli_error(sub, &out, 1, "not attached to eth9");
    }

    // Counters: one object, looked up by name.
    let status = fw.status_json()?;
    ensure!(
        status[0]["counters"]["syn_admitted"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{status}"
    );
    session.quit()?;
    Ok(())
}

/// `bpftool map dump` of the pinned tables prints an expectation's kind
/// and a flow's origin and state by name (BTF enums), not as numbers.
#[test]
fn bpftool_prints_kinds_origins_and_states_by_name() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let fw = lab.attach(&[])?;
    let target = server.target(SERVER.ip(Family::V4));
    ftpct_e2e::clients::curl_download(
        lab.client(),
        &target,
        ftpct_e2e::SMALL_FILE,
        ftpct_e2e::TransferMode::Pasv,
    )?;
    let mut session = FtpSession::open(lab.client(), &target)?;
    session.pasv()?;
    let dump = |map: &str| -> Result<String> {
        let path = fw.pin_dir().join(map).display().to_string();
        let out = lab
            .server()
            .run_ok(&["bpftool", "-j", "map", "dump", "pinned", &path])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let expect = dump("FTPCT_EXPECT")?;
    ensure!(expect.contains(r#""kind":"Pasv""#), "{expect}");
    let flows = dump("FTPCT_FLOWS")?;
    ensure!(
        flows.contains(r#""origin":"Admitted""#)
            && ["Open", "Closing", "Handshake", "Reset"]
                .iter()
                .any(|s| flows.contains(&format!(r#""state":"{s}""#))),
        "{flows}"
    );
    session.quit()
}
