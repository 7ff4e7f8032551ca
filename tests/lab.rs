//! The lab topology: four host namespaces wired to one bridge.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::clients::{ConnectResult, tcp_connect};
use crate::forge::xdp_attached;
use crate::ftpct;
use crate::netns::{Netns, sweep_stale_namespaces};
use crate::process::{check_success, describe, run_with_timeout};

/// Name of the single lab interface inside every host namespace. ftpct
/// attaches to it in the server namespace.
pub const LAB_IFACE: &str = "eth0";

/// Name of the bridge inside the switch namespace.
const BRIDGE: &str = "br0";

/// IPv4 prefix length of the lab subnet 198.18.0.0/24.
pub const V4_PREFIX_LEN: u8 = 24;

/// IPv6 prefix length of the lab subnet 2001:db8::/64.
pub const V6_PREFIX_LEN: u8 = 64;

/// Upper bound for the lab to become reachable after setup.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP port nothing listens on; used to probe reachability (RST expected).
const PROBE_PORT: u16 = 9;

/// Address family selector for tests that run over both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// IPv4 (198.18.0.0/24).
    V4,
    /// IPv6 (2001:db8::/64).
    V6,
}

impl Family {
    /// Both families, IPv4 first.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];
}

/// Static description of one lab host.
#[derive(Clone, Copy, Debug)]
pub struct Host {
    /// Short role name; also the namespace label and the switch port suffix.
    pub label: &'static str,
    /// IPv4 address on `eth0`.
    pub v4: Ipv4Addr,
    /// IPv6 address on `eth0`.
    pub v6: Ipv6Addr,
}

impl Host {
    /// The host's address in `family`.
    pub fn ip(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => IpAddr::V4(self.v4),
            Family::V6 => IpAddr::V6(self.v6),
        }
    }
}

/// The FTP server host (ftpct attaches to its `eth0`).
pub const SERVER: Host = Host {
    label: "srv",
    v4: Ipv4Addr::new(198, 18, 0, 1),
    v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
};

/// The legitimate client.
pub const CLIENT: Host = Host {
    label: "cli",
    v4: Ipv4Addr::new(198, 18, 0, 2),
    v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
};

/// The intruder, which tries to steal announced data ports.
pub const INTRUDER: Host = Host {
    label: "intr",
    v4: Ipv4Addr::new(198, 18, 0, 3),
    v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3),
};

/// A second legitimate client.
pub const CLIENT2: Host = Host {
    label: "cli2",
    v4: Ipv4Addr::new(198, 18, 0, 4),
    v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 4),
};

/// A complete lab. Dropping it kills everything still running in its
/// namespaces, deletes them (which removes the veth pairs and the bridge)
/// and removes its bpffs pin root if something left it behind.
pub struct Lab {
    server: Netns,
    client: Netns,
    client2: Netns,
    intruder: Netns,
    switch: Netns,
    pin_root: PathBuf,
}

impl Lab {
    /// Builds the topology and waits (bounded) until every client host can
    /// reach the server over IPv4 and IPv6.
    pub fn new() -> Result<Self> {
        sweep_stale()?;
        let switch = Netns::create("sw")?;
        setup_switch(&switch)?;
        let server = add_host(&switch, &SERVER)?;
        let client = add_host(&switch, &CLIENT)?;
        let intruder = add_host(&switch, &INTRUDER)?;
        let client2 = add_host(&switch, &CLIENT2)?;
        let lab = Self {
            server,
            client,
            client2,
            intruder,
            switch,
            pin_root: ftpct::unique_pin_root(),
        };
        lab.wait_ready().context("waiting for the lab network")?;
        Ok(lab)
    }

    /// The server namespace (ftpct attaches to its [`LAB_IFACE`]).
    pub fn server(&self) -> &Netns {
        &self.server
    }

    /// The legitimate client namespace.
    pub fn client(&self) -> &Netns {
        &self.client
    }

    /// The second legitimate client namespace.
    pub fn client2(&self) -> &Netns {
        &self.client2
    }

    /// The intruder namespace.
    pub fn intruder(&self) -> &Netns {
        &self.intruder
    }

    /// The switch namespace holding the bridge (for packet captures).
    pub fn switch(&self) -> &Netns {
        &self.switch
    }

    /// Attaches ftpct with `args` to the server's [`LAB_IFACE`].
    pub fn attach(&self, args: &[&str]) -> Result<crate::Ftpct<'_>> {
        crate::Ftpct::attach(&self.server, LAB_IFACE, args, &self.pin_root)
    }

    /// `ftpct status LAB_IFACE --json` in the server namespace, under this
    /// lab's pin root: the interface's entry (fails unless it is guarded).
    pub fn status(&self) -> Result<serde_json::Value> {
        let root = self.pin_root.display().to_string();
        let out = crate::ftpct_run(
            &self.server,
            &["status", LAB_IFACE, "--json", "--pin-root", &root],
        )?;
        ensure!(out.status.success(), "ftpct status {LAB_IFACE}: {out:?}");
        let all: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        Ok(all[0].clone())
    }

    /// This lab's unique bpffs pin root (not created; pass it to ftpct).
    pub fn pin_root(&self) -> &Path {
        &self.pin_root
    }

    /// Fails unless nothing of ftpct is left in this lab: no pins under its
    /// pin root, no XDP program on the server's [`LAB_IFACE`].
    pub fn assert_nothing_attached(&self, what: &str) -> Result<()> {
        if self.pin_root.exists() {
            let left: Vec<_> = std::fs::read_dir(&self.pin_root)?
                .map(|e| e.map(|e| e.path()))
                .collect::<std::io::Result<_>>()?;
            ensure!(left.is_empty(), "{what}: {left:?} left behind");
        }
        ensure!(
            !xdp_attached(&self.server, LAB_IFACE)?,
            "{what}: an XDP program is attached"
        );
        Ok(())
    }

    /// Waits until each client-side host gets a RST from the server on an
    /// unused port, over both families.
    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        for ns in [&self.client, &self.client2, &self.intruder] {
            for family in Family::ALL {
                wait_reachable(ns, SERVER.ip(family), deadline)?;
            }
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        ftpct::remove_pin_root(&self.pin_root);
    }
}

/// Removes what killed test processes left: their namespaces and pin roots.
pub(crate) fn sweep_stale() -> Result<()> {
    sweep_stale_namespaces().context("sweeping stale namespaces")?;
    ftpct::sweep_stale_pin_roots();
    Ok(())
}

/// Creates the bridge in the switch namespace.
pub(crate) fn setup_switch(switch: &Netns) -> Result<()> {
    switch.run_ok(&["ip", "link", "set", "lo", "up"])?;
    switch.run_ok(&[
        "ip",
        "link",
        "add",
        BRIDGE,
        "type",
        "bridge",
        "stp_state",
        "0",
        "mcast_snooping",
        "0",
    ])?;
    switch.run_ok(&["ip", "link", "set", BRIDGE, "up"])?;
    Ok(())
}

/// Creates the namespace for `host`, a veth pair with `eth0` inside it and
/// `p-<label>` enslaved to the bridge, and configures addresses.
pub(crate) fn add_host(switch: &Netns, host: &Host) -> Result<Netns> {
    let ns = Netns::create(host.label)?;
    let port = format!("p-{}", host.label);
    add_veth(&ns, LAB_IFACE, switch, &port)?;
    switch.run_ok(&["ip", "link", "set", &port, "master", BRIDGE, "up"])?;
    configure_iface(
        &ns,
        LAB_IFACE,
        (host.v4, V4_PREFIX_LEN),
        Some((host.v6, V6_PREFIX_LEN)),
    )?;
    Ok(ns)
}

/// Creates a veth pair: `a_iface` in `a`, `b_iface` in `b`.
pub(crate) fn add_veth(a: &Netns, a_iface: &str, b: &Netns, b_iface: &str) -> Result<()> {
    // Both ends are created directly in their namespaces, so nothing ever
    // appears in the host namespace and names cannot collide.
    let mut cmd = Command::new("ip");
    cmd.args(["link", "add", a_iface, "netns", a.name()]).args([
        "type",
        "veth",
        "peer",
        "name",
        b_iface,
        "netns",
        b.name(),
    ]);
    check_success(
        &describe(&cmd),
        run_with_timeout(cmd, Duration::from_secs(10))?,
    )?;
    Ok(())
}

/// Brings `lo` and `iface` of `ns` up with the IPv4 address `v4` and, if
/// given, the IPv6 address `v6` (each with its prefix length).
pub(crate) fn configure_iface(
    ns: &Netns,
    iface: &str,
    v4: (Ipv4Addr, u8),
    v6: Option<(Ipv6Addr, u8)>,
) -> Result<()> {
    // No duplicate address detection anywhere: addresses are usable at once.
    ns.run_ok(&[
        "sh",
        "-c",
        &format!(
            "for f in all default {iface}; do echo 0 > /proc/sys/net/ipv6/conf/$f/accept_dad; done"
        ),
    ])?;
    ns.run_ok(&["ip", "link", "set", "lo", "up"])?;
    let addr = format!("{}/{}", v4.0, v4.1);
    ns.run_ok(&["ip", "addr", "add", &addr, "dev", iface])?;
    if let Some((addr, len)) = v6 {
        let addr = format!("{addr}/{len}");
        ns.run_ok(&["ip", "-6", "addr", "add", &addr, "dev", iface, "nodad"])?;
    }
    ns.run_ok(&["ip", "link", "set", iface, "up"])?;
    Ok(())
}

/// Probes `target` from `ns` until it answers with a RST or `deadline`.
pub(crate) fn wait_reachable(ns: &Netns, target: IpAddr, deadline: Instant) -> Result<()> {
    loop {
        let result = tcp_connect(ns, target, PROBE_PORT, Duration::from_millis(500))?;
        if result == ConnectResult::Refused {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{target} not reachable from {}: {result:?}", ns.name());
        }
        thread::sleep(Duration::from_millis(50));
    }
}
