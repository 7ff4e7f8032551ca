//! A lab with the FTP server behind a cloud-style 1:1 NAT, as a cloud VM
//! sits: its public address lives only in the provider's NAT, which has no
//! FTP helper, so the server itself must name the public address in its
//! `227` (vsftpd `pasv_address` and the like, see
//! [`ServerOptions::masquerade_address`](crate::servers::ServerOptions)).
//!
//! ```text
//!   cli  198.18.0.2    2001:db8::2   eth0 ─┐
//!   intr 198.18.0.3    2001:db8::3   eth0 ─┼── br0 in namespace `sw` (public side)
//!   rtr  198.18.0.254  2001:db8::fe  eth0 ─┘
//!   rtr  198.19.0.254  2001:db8:19::fe  eth1 ──── eth0  198.19.0.1  2001:db8:19::1  srv
//!                                                       ftpct attaches here
//!
//!   rtr: nftables 1:1 NAT, public 198.18.10.1 <-> private 198.19.0.1,
//!        NPTv6 (prefix NAT) 2001:db8:10::/64 <-> 2001:db8:19::/64
//! ```
//!
//! The public side is the [`Lab`](crate::Lab)'s 198.18.0.0/24 bridge with
//! its client and intruder (same addresses, IPv6 too). The public address
//! [`NAT_PUBLIC`] is on no interface: the public hosts route it (a /32) to
//! the router, whose nftables rules map it to the server's private
//! [`NAT_PRIVATE`] (DNAT inbound, SNAT of the server's own connections),
//! with no conntrack helper assigned. The router forwards only that mapping
//! (policy drop), and nothing on the public side has a route to the private
//! network 198.19.0.0/24.
//!
//! IPv6 goes through prefix translation (NPTv6, as nftables does it: `snat
//! prefix to`, `dnat prefix to`): [`NAT_PUBLIC_V6`] is the server's
//! [`NAT_PRIVATE_V6`] with the public prefix. An IPv6 server's `229` names
//! no address, but the host as a client names its own in `EPRT |2|`. ftpct
//! attaches to the server's [`LAB_IFACE`].

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use crate::clients::{ConnectResult, FtpSession, tcp_connect};
use crate::fixtures::FileDigest;
use crate::ftpct;
use crate::lab::{
    CLIENT, Host, INTRUDER, LAB_IFACE, V6_PREFIX_LEN, add_host, add_veth, configure_iface,
    setup_switch, sweep_stale, wait_reachable,
};
use crate::netns::Netns;

/// The server's public address: what clients connect to and what the
/// server names in its `227`. One character longer than [`NAT_PRIVATE`],
/// so that rewriting one into the other in `PORT` changes its length.
pub const NAT_PUBLIC: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 1);

/// The server's private address, on its [`LAB_IFACE`]: the local address
/// ftpct sees.
pub const NAT_PRIVATE: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);

/// The server's public IPv6 address: [`NAT_PRIVATE_V6`] behind the
/// router's prefix translation.
pub const NAT_PUBLIC_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 1);

/// The server's private IPv6 address, on its [`LAB_IFACE`].
pub const NAT_PRIVATE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x19, 0, 0, 0, 0, 1);

/// The public and the private IPv6 prefix (both /64).
const PUBLIC_PREFIX_V6: &str = "2001:db8:10::/64";
const PRIVATE_PREFIX_V6: &str = "2001:db8:19::/64";

/// The router's leg on the public bridge.
pub const NAT_ROUTER: Host = Host {
    label: "rtr",
    v4: Ipv4Addr::new(198, 18, 0, 254),
    v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe),
};

/// The router's address on the private network (the server's gateway).
const ROUTER_PRIVATE: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 254);
const ROUTER_PRIVATE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x19, 0, 0, 0, 0, 0xfe);

/// Prefix length of the private network 198.19.0.0/24.
const PRIVATE_PREFIX_LEN: u8 = 24;

/// The router's interface on the private network.
pub const NAT_ROUTER_PRIVATE_IFACE: &str = "eth1";

/// Upper bound for the server to become reachable through the NAT.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the intruder's probe waits before calling it dropped.
const INTRUDER_PROBE: Duration = Duration::from_secs(2);

/// The router's ruleset: a 1:1 NAT of [`NAT_PUBLIC`] to [`NAT_PRIVATE`],
/// the IPv6 prefix translation, and forwarding for nothing else. Inbound
/// packets are forwarded if they belong to a connection DNATed to the
/// server or are replies to one the server opened (SNATed).
fn ruleset() -> String {
    format!(
        "\
table ip ftpct_nat {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        iifname \"{LAB_IFACE}\" ip daddr {NAT_PUBLIC} dnat to {NAT_PRIVATE}
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname \"{LAB_IFACE}\" ip saddr {NAT_PRIVATE} snat to {NAT_PUBLIC}
    }}
    chain forward {{
        type filter hook forward priority filter; policy drop;
        iifname \"{LAB_IFACE}\" oifname \"{NAT_ROUTER_PRIVATE_IFACE}\" ip daddr {NAT_PRIVATE} ct status dnat accept
        iifname \"{LAB_IFACE}\" oifname \"{NAT_ROUTER_PRIVATE_IFACE}\" ip daddr {NAT_PRIVATE} ct status snat accept
        iifname \"{NAT_ROUTER_PRIVATE_IFACE}\" oifname \"{LAB_IFACE}\" ip saddr {NAT_PRIVATE} accept
    }}
}}
table ip6 ftpct_nat6 {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        iifname \"{LAB_IFACE}\" ip6 daddr {PUBLIC_PREFIX_V6} dnat ip6 prefix to {PRIVATE_PREFIX_V6}
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname \"{LAB_IFACE}\" ip6 saddr {PRIVATE_PREFIX_V6} snat ip6 prefix to {PUBLIC_PREFIX_V6}
    }}
    chain forward {{
        type filter hook forward priority filter; policy drop;
        icmpv6 type {{ packet-too-big, destination-unreachable, time-exceeded }} accept
        iifname \"{LAB_IFACE}\" oifname \"{NAT_ROUTER_PRIVATE_IFACE}\" ip6 daddr {PRIVATE_PREFIX_V6} ct status dnat accept
        iifname \"{LAB_IFACE}\" oifname \"{NAT_ROUTER_PRIVATE_IFACE}\" ip6 daddr {PRIVATE_PREFIX_V6} ct status snat accept
        iifname \"{NAT_ROUTER_PRIVATE_IFACE}\" oifname \"{LAB_IFACE}\" ip6 saddr {PRIVATE_PREFIX_V6} accept
    }}
}}
"
    )
}

/// Loss on the router's forwarding path (this machine's kernel has no
/// netem): the first copy of every `227` the server sends and of every
/// `PORT`/`EPRT` sent to port 21 is dropped, so each is retransmitted at
/// least once, and `percent` of all forwarded packets, either way, at
/// random (only those from the private side if `from_private_only`).
/// Counted in the named counters `first_227`, `first_port` and
/// `random_loss`.
fn loss_ruleset(percent: u8, from_private_only: bool) -> String {
    let only = if from_private_only {
        format!("iifname \"{NAT_ROUTER_PRIVATE_IFACE}\" ")
    } else {
        String::new()
    };
    format!(
        "\
table inet ftpct_loss {{
    counter first_227 {{ }}
    counter random_loss {{ }}
    counter first_port {{ }}
    set sent_227 {{
        typeof tcp sequence
        size 65535
        flags dynamic,timeout
        timeout 5m
    }}
    set sent_port {{
        typeof tcp sequence
        size 65535
        flags dynamic,timeout
        timeout 5m
    }}
    chain forward {{
        type filter hook forward priority filter - 10; policy accept;
        tcp sport 21 @ih,0,32 0x32323720 tcp sequence != @sent_227 update @sent_227 {{ tcp sequence }} counter name \"first_227\" drop
        tcp dport 21 @ih,0,32 {{ 0x504f5254, 0x45505254 }} tcp sequence != @sent_port update @sent_port {{ tcp sequence }} counter name \"first_port\" drop
        {only}numgen random mod 100 < {percent} counter name \"random_loss\" drop
    }}
}}
"
    )
}

/// A NAT lab. Dropping it kills everything still running in its
/// namespaces and deletes them (with the veth pairs, the bridge and the
/// router's ruleset), and removes its bpffs pin root if something left it
/// behind.
pub struct NatLab {
    server: Netns,
    router: Netns,
    client: Netns,
    intruder: Netns,
    switch: Netns,
    pin_root: PathBuf,
}

impl NatLab {
    /// Builds the topology and waits (bounded) until the client and the
    /// intruder reach the server at [`NAT_PUBLIC`].
    pub fn new() -> Result<Self> {
        sweep_stale()?;
        let switch = Netns::create("sw")?;
        setup_switch(&switch)?;
        let client = add_host(&switch, &CLIENT)?;
        let intruder = add_host(&switch, &INTRUDER)?;
        let router = add_host(&switch, &NAT_ROUTER)?;
        let server = Netns::create("srv")?;
        let lab = Self {
            server,
            router,
            client,
            intruder,
            switch,
            pin_root: ftpct::unique_pin_root(),
        };
        lab.setup().context("setting up the NAT")?;
        lab.wait_ready()
            .context("waiting for the server through the NAT")?;
        Ok(lab)
    }

    /// The private network, the routes and the router's NAT.
    fn setup(&self) -> Result<()> {
        add_veth(
            &self.router,
            NAT_ROUTER_PRIVATE_IFACE,
            &self.server,
            LAB_IFACE,
        )?;
        let private = |addr| (addr, PRIVATE_PREFIX_LEN);
        let private_v6 = |addr| Some((addr, V6_PREFIX_LEN));
        configure_iface(
            &self.router,
            NAT_ROUTER_PRIVATE_IFACE,
            private(ROUTER_PRIVATE),
            private_v6(ROUTER_PRIVATE_V6),
        )?;
        configure_iface(
            &self.server,
            LAB_IFACE,
            private(NAT_PRIVATE),
            private_v6(NAT_PRIVATE_V6),
        )?;
        for gateway in [ROUTER_PRIVATE.to_string(), ROUTER_PRIVATE_V6.to_string()] {
            self.server
                .run_ok(&["ip", "route", "add", "default", "via", &gateway])?;
        }
        let public = format!("{NAT_PUBLIC}/32");
        let router = NAT_ROUTER.v4.to_string();
        let router_v6 = NAT_ROUTER.v6.to_string();
        for ns in [&self.client, &self.intruder] {
            ns.run_ok(&["ip", "route", "add", &public, "via", &router])?;
            ns.run_ok(&["ip", "route", "add", PUBLIC_PREFIX_V6, "via", &router_v6])?;
        }
        self.router.run_ok(&[
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv4/ip_forward && \
             echo 1 > /proc/sys/net/ipv6/conf/all/forwarding",
        ])?;
        self.load_rules(&ruleset())
            .context("loading the NAT ruleset (is nftables installed?)")
    }

    /// Loads nftables `rules` into the router.
    fn load_rules(&self, rules: &str) -> Result<()> {
        // nft reads the ruleset from a file: commands here get no stdin.
        let dir = tempfile::tempdir().context("temp dir for the ruleset")?;
        let path = dir.path().join("rules.nft");
        fs::write(&path, rules).context("writing the ruleset")?;
        self.router
            .run_ok(&["nft", "-f", &path.display().to_string()])
            .map(drop)
    }

    /// Adds loss to the router's forwarding path: the first copy of every
    /// `227` and `PORT`/`EPRT`, and `percent` of all packets (of those from
    /// the private side only if `from_private_only`); see [`loss_ruleset`].
    pub fn add_loss(&self, percent: u8, from_private_only: bool) -> Result<()> {
        self.load_rules(&loss_ruleset(percent, from_private_only))
            .context("loading the loss rules")
    }

    /// Packets the loss rules dropped so far: first copies of `227`s, of
    /// `PORT`/`EPRT` commands, and at random.
    pub fn losses(&self) -> Result<(u64, u64, u64)> {
        let count = |name: &str| -> Result<u64> {
            let out = self.router.run_ok(&[
                "nft",
                "-j",
                "list",
                "counter",
                "inet",
                "ftpct_loss",
                name,
            ])?;
            let json: serde_json::Value = serde_json::from_slice(&out.stdout)
                .with_context(|| format!("nft counter {name}"))?;
            json["nftables"]
                .as_array()
                .and_then(|items| items.iter().find_map(|i| i["counter"]["packets"].as_u64()))
                .with_context(|| format!("no packet count for counter {name}: {json}"))
        };
        Ok((
            count("first_227")?,
            count("first_port")?,
            count("random_loss")?,
        ))
    }

    /// Waits until the client and the intruder get a RST from the server
    /// through the NAT.
    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        for ns in [&self.client, &self.intruder] {
            wait_reachable(ns, IpAddr::V4(NAT_PUBLIC), deadline)?;
            wait_reachable(ns, IpAddr::V6(NAT_PUBLIC_V6), deadline)?;
        }
        Ok(())
    }

    /// The server namespace, on the private network (ftpct attaches to its
    /// [`LAB_IFACE`]).
    pub fn server(&self) -> &Netns {
        &self.server
    }

    /// The router namespace doing the NAT.
    pub fn router(&self) -> &Netns {
        &self.router
    }

    /// The legitimate client namespace, on the public side.
    pub fn client(&self) -> &Netns {
        &self.client
    }

    /// The intruder namespace, on the public side.
    pub fn intruder(&self) -> &Netns {
        &self.intruder
    }

    /// The switch namespace of the public bridge.
    pub fn switch(&self) -> &Netns {
        &self.switch
    }

    /// The hostile rule through the NAT, on a passive `port` the client's
    /// `session` was just given: the intruder's connection to it at the
    /// public address is dropped; then the client takes its transfer of
    /// `path` there. Returns what arrived.
    pub fn intruder_dropped_then_client_retrieves(
        &self,
        session: &mut FtpSession,
        port: u16,
        path: &str,
    ) -> Result<FileDigest> {
        let r = tcp_connect(&self.intruder, IpAddr::V4(NAT_PUBLIC), port, INTRUDER_PROBE)?;
        ensure!(
            r == ConnectResult::TimedOut,
            "the intruder reached port {port} at the public address: {r:?}"
        );
        session.retr(path)
    }

    /// Attaches ftpct with `args` to the server's [`LAB_IFACE`].
    pub fn attach(&self, args: &[&str]) -> Result<crate::Ftpct<'_>> {
        crate::Ftpct::attach(&self.server, LAB_IFACE, args, &self.pin_root)
    }

    /// This lab's unique bpffs pin root (not created; pass it to ftpct).
    pub fn pin_root(&self) -> &Path {
        &self.pin_root
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        ftpct::remove_pin_root(&self.pin_root);
    }
}
