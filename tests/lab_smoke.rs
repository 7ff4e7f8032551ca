//! Smoke tests of the lab itself, without ftpct: every server and client
//! combination transfers correctly, and an intruder *can* connect to a data
//! port announced to someone else (the attack ftpct exists to stop).
//!
//! Needs root. Run: `cargo test -p ftpct-e2e -- --test-threads=2`.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use ftpct_e2e::clients::{
    curl_download, curl_upload, ftplib_download, lftp_download, lftp_list, lftp_upload, tcp_connect,
};
use ftpct_e2e::fixtures::{FileDigest, pseudo_random_bytes};
use ftpct_e2e::{
    BIG_FILE, ConnectResult, Family, FtpServer, FtpSession, INTRUDER, LAB_IFACE, Lab, Netns,
    Proftpd, PureFtpd, Pyftpdlib, SERVER, SMALL_FILE, TransferMode, Vsftpd,
};

/// Names of all network namespaces on the machine.
fn netns_names() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

#[test]
fn lab_topology_is_built_and_removed() -> Result<()> {
    let names: Vec<String>;
    {
        let lab = Lab::new()?;
        names = [
            lab.server(),
            lab.client(),
            lab.client2(),
            lab.intruder(),
            lab.switch(),
        ]
        .iter()
        .map(|ns| ns.name().to_string())
        .collect();
        let present = netns_names();
        for name in &names {
            assert!(present.contains(name), "{name} missing from {present:?}");
        }
        let addrs = lab
            .server()
            .run_ok(&["ip", "-o", "addr", "show", "dev", LAB_IFACE])?;
        let addrs = String::from_utf8_lossy(&addrs.stdout);
        assert!(addrs.contains("198.18.0.1/24"), "{addrs}");
        assert!(addrs.contains("2001:db8::1/64"), "{addrs}");
        // Hosts other than the server reach each other too.
        for family in Family::ALL {
            let r = tcp_connect(lab.client(), INTRUDER.ip(family), 9, Duration::from_secs(2))?;
            assert_eq!(r, ConnectResult::Refused, "{family:?}");
        }
        // A process left running in a namespace is killed with it.
        let mut sleeper = lab.intruder().spawn(&["sleep", "300"])?;
        assert!(sleeper.try_status()?.is_none());
        drop(lab);
        assert!(sleeper.wait_timeout(Duration::from_secs(1))?.is_some());
    }
    let present = netns_names();
    for name in &names {
        assert!(!present.contains(name), "{name} still present");
    }
    Ok(())
}

#[test]
fn netns_run_times_out() -> Result<()> {
    let ns = Netns::create("tmo")?;
    let started = std::time::Instant::now();
    let err = ns
        .run_timeout(&["sleep", "30"], Duration::from_millis(300))
        .expect_err("sleep must time out");
    assert!(err.to_string().contains("timed out"), "{err:#}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(ns.pids().is_empty());
    Ok(())
}

/// Downloads `BIG_FILE` with curl in every mode over `family`.
fn curl_all_modes(family: Family) -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let target = server.target(SERVER.ip(family));
    let expected = server.tree().digest(BIG_FILE)?;
    for mode in TransferMode::ALL {
        let got = curl_download(lab.client(), &target, BIG_FILE, mode)?;
        assert_eq!(got, expected, "curl {mode:?} over {family:?}");
    }
    let got = curl_download(lab.client2(), &target, SMALL_FILE, TransferMode::Epsv)?;
    assert_eq!(got, server.tree().digest(SMALL_FILE)?);
    Ok(())
}

#[test]
fn vsftpd_curl_all_modes_ipv4() -> Result<()> {
    curl_all_modes(Family::V4)
}

#[test]
fn vsftpd_curl_all_modes_ipv6() -> Result<()> {
    curl_all_modes(Family::V6)
}

#[test]
fn vsftpd_curl_upload() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    for (i, (family, mode)) in [
        (Family::V4, TransferMode::Pasv),
        (Family::V4, TransferMode::Port),
        (Family::V6, TransferMode::Epsv),
        (Family::V6, TransferMode::Eprt),
    ]
    .into_iter()
    .enumerate()
    {
        let data = pseudo_random_bytes(300_000 + i, i as u64);
        let remote = format!("upload/curl-{i}.bin");
        let target = server.target(SERVER.ip(family));
        curl_upload(lab.client(), &target, &data, &remote, mode)?;
        assert_eq!(
            server.tree().digest(&remote)?,
            FileDigest::of(&data),
            "{mode:?} {family:?}"
        );
    }
    Ok(())
}

#[test]
fn vsftpd_lftp_list_upload_download() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let big = server.tree().digest(BIG_FILE)?;
    for (i, (family, passive)) in [
        (Family::V4, true),
        (Family::V4, false),
        (Family::V6, true),
        (Family::V6, false),
    ]
    .into_iter()
    .enumerate()
    {
        let what = format!("{family:?} passive={passive}");
        let target = server.target(SERVER.ip(family));
        let listing = lftp_list(lab.client(), &target, "/", passive)?;
        assert!(
            listing.contains(BIG_FILE) && listing.contains(SMALL_FILE),
            "{what}: {listing}"
        );
        let data = pseudo_random_bytes(100_000, 7 + i as u64);
        let remote = format!("upload/lftp-{i}.bin");
        lftp_upload(lab.client(), &target, &data, &remote, passive)?;
        assert_eq!(
            server.tree().digest(&remote)?,
            FileDigest::of(&data),
            "{what}"
        );
        assert_eq!(
            lftp_download(lab.client(), &target, &remote, passive)?,
            FileDigest::of(&data),
            "{what}"
        );
        assert_eq!(
            lftp_download(lab.client(), &target, BIG_FILE, passive)?,
            big,
            "{what}"
        );
    }
    Ok(())
}

#[test]
fn vsftpd_ftplib_all_modes() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let big = server.tree().digest(BIG_FILE)?;
    let v4 = server.target(SERVER.ip(Family::V4));
    for mode in TransferMode::ALL {
        assert_eq!(
            ftplib_download(lab.client(), &v4, BIG_FILE, mode)?,
            big,
            "{mode:?}"
        );
    }
    let v6 = server.target(SERVER.ip(Family::V6));
    for mode in [TransferMode::Epsv, TransferMode::Eprt] {
        assert_eq!(
            ftplib_download(lab.client(), &v6, BIG_FILE, mode)?,
            big,
            "{mode:?} v6"
        );
    }
    Ok(())
}

/// Without ftpct, the intruder can connect to a passive port announced to
/// the client; the client still gets its data over a fresh port.
#[test]
fn vsftpd_intruder_reaches_announced_port_without_firewall() -> Result<()> {
    let lab = Lab::new()?;
    let server = Vsftpd::start(lab.server())?;
    let small = server.tree().digest(SMALL_FILE)?;
    for (family, mode) in [
        (Family::V4, TransferMode::Pasv),
        (Family::V4, TransferMode::Epsv),
        (Family::V6, TransferMode::Epsv),
    ] {
        let what = format!("{mode:?} over {family:?}");
        let server_ip = SERVER.ip(family);
        let mut session = FtpSession::open(lab.client(), &server.target(server_ip))?;
        let port = session.prepare(mode)?;
        assert!(
            server.options().pasv_ports.contains(&port),
            "{what}: port {port}"
        );
        let stolen = tcp_connect(lab.intruder(), server_ip, port, Duration::from_secs(2))?;
        assert_eq!(stolen, ConnectResult::Connected, "{what}");
        // vsftpd rejects the intruder's connection at RETR time ("425
        // Security: Bad IP"), so the legitimate transfer uses a new port.
        session.prepare(mode)?;
        session.connect()?;
        assert_eq!(session.retr(SMALL_FILE)?, small, "{what}");
        session.quit()?;
    }
    Ok(())
}

/// One passive and one active download per family, plus an upload.
fn smoke<S: FtpServer>(lab: &Lab, server: &S) -> Result<()> {
    let big = server.tree().digest(BIG_FILE)?;
    let name = server.name();
    let v4 = server.target(SERVER.ip(Family::V4));
    let v6 = server.target(SERVER.ip(Family::V6));
    assert_eq!(
        curl_download(lab.client(), &v4, BIG_FILE, TransferMode::Pasv)?,
        big,
        "{name}"
    );
    assert_eq!(
        curl_download(lab.client(), &v4, BIG_FILE, TransferMode::Port)?,
        big,
        "{name}"
    );
    assert_eq!(
        curl_download(lab.client(), &v6, BIG_FILE, TransferMode::Epsv)?,
        big,
        "{name}"
    );
    assert_eq!(
        ftplib_download(lab.client2(), &v6, BIG_FILE, TransferMode::Eprt)?,
        big,
        "{name}"
    );
    let data = pseudo_random_bytes(200_000, 99);
    curl_upload(
        lab.client(),
        &v4,
        &data,
        "upload/smoke.bin",
        TransferMode::Epsv,
    )?;
    assert_eq!(
        server.tree().digest("upload/smoke.bin")?,
        FileDigest::of(&data),
        "{name}"
    );
    Ok(())
}

#[test]
fn pure_ftpd_smoke() -> Result<()> {
    let lab = Lab::new()?;
    let server = PureFtpd::start(lab.server())?;
    smoke(&lab, &server)
}

#[test]
fn proftpd_smoke() -> Result<()> {
    let lab = Lab::new()?;
    let server = Proftpd::start(lab.server())?;
    smoke(&lab, &server)
}

#[test]
fn pyftpdlib_smoke() -> Result<()> {
    let lab = Lab::new()?;
    let server = Pyftpdlib::start(lab.server())?;
    smoke(&lab, &server)
}
