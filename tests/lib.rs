//! Network-namespace test lab for ftpct.
//!
//! Each [`Lab`] builds its own private network out of namespaces named
//! `ftpct-<pid>-<counter>-<role>`, so labs (and tests) can run in parallel:
//!
//! ```text
//!   srv  198.18.0.1  2001:db8::1  eth0 ─┐   FTP server; ftpct attaches here
//!   cli  198.18.0.2  2001:db8::2  eth0 ─┤   legitimate client
//!   intr 198.18.0.3  2001:db8::3  eth0 ─┼── br0 in namespace `sw`
//!   cli2 198.18.0.4  2001:db8::4  eth0 ─┘   second legitimate client
//! ```
//!
//! Every host namespace has `lo` up and one veth end named `eth0`
//! (198.18.0.0/24, 2001:db8::/64, no DAD); the peers `p-<role>` are ports of
//! the bridge `br0` in the switch namespace. Traffic never leaves these
//! namespaces. Commands run inside with `nsenter --net=/run/netns/NAME`
//! (see [`netns`]).
//!
//! [`NatLab`] puts the server behind a router doing a cloud-style 1:1 NAT
//! (see [`nat_lab`]).
//!
//! Servers ([`servers`]: vsftpd, pure-ftpd, ProFTPD, pyftpdlib) run as
//! foreground children in the server namespace and serve a temporary tree
//! (`small.txt`, `big.bin`, writable `upload/`). Clients ([`clients`]: curl,
//! lftp, Python ftplib, an interactive ftplib session, a TCP connect probe)
//! run in the client/intruder namespaces. [`ftpct`] wraps the CLI under
//! test.
//!
//! Cleanup is RAII: every process, namespace and pin root is owned by a
//! guard that removes it on drop, including when a test panics. All waits
//! and commands are bounded by timeouts. Namespaces left by a killed test
//! process are swept by the next [`Lab::new`]. Everything needs root;
//! `tests/install-deps.sh` installs the tools and unpacks the servers.

pub mod clients;
pub mod fixtures;
pub mod forge;
pub mod ftpct;
pub mod lab;
pub mod nat_lab;
pub mod netns;
pub mod process;
pub mod servers;

pub use clients::{ConnectResult, EchoClient, EchoServer, FtpSession, TransferMode};
pub use fixtures::{BIG_FILE, FileDigest, SMALL_FILE, UPLOAD_DIR};
pub use ftp_ebpf_common::counters::Counter;
pub use ftpct::{Counters, Daemon, Ftpct, Rows, assert_cli_error, ftpct_bin, ftpct_run, pin_dir};
pub use lab::{CLIENT, CLIENT2, Family, INTRUDER, LAB_IFACE, Lab, SERVER};
pub use nat_lab::{
    NAT_PRIVATE, NAT_PRIVATE_V6, NAT_PUBLIC, NAT_PUBLIC_V6, NAT_ROUTER, NAT_ROUTER_PRIVATE_IFACE,
    NatLab,
};
pub use netns::Netns;
pub use servers::{
    FtpServer, Proftpd, PureFtpd, Pyftpdlib, ServerOptions, Tls, Vsftpd, server_binary,
};
