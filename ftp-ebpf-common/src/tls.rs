//! FTPS inspection: the local server's TLS library hands ftpct the
//! plaintext of its encrypted control connections. Probes on the library's
//! read and write calls see the plaintext and the thread; the kernel's TCP
//! read within them (a tracepoint) sees the socket. The
//! socket, checked against this attachment's network namespace and its
//! control table, says which control connection the plaintext belongs to.

use crate::control::ControlKey;

/// Byte offsets in the running kernel's socket and namespace structures,
/// taken by user space from the kernel's BTF (they vary across versions
/// and configurations), and the network namespace the attachment guards.
/// The value of `FTPCT_TLS_CONFIG`; nothing is inspected until `ready`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// `sock_common.skc_daddr`: the remote IPv4 address.
    pub skc_daddr: u16,
    /// `sock_common.skc_rcv_saddr`: the local IPv4 address.
    pub skc_rcv_saddr: u16,
    /// `sock_common.skc_dport`: the remote port, network order.
    pub skc_dport: u16,
    /// `sock_common.skc_num`: the local port, host order.
    pub skc_num: u16,
    /// `sock_common.skc_family`.
    pub skc_family: u16,
    /// `sock_common.skc_net`: the `struct net *` (through `possible_net_t`).
    pub skc_net: u16,
    /// `sock_common.skc_v6_daddr`: the remote IPv6 address.
    pub skc_v6_daddr: u16,
    /// `sock_common.skc_v6_rcv_saddr`: the local IPv6 address.
    pub skc_v6_rcv_saddr: u16,
    /// `net.ns.inum`: the namespace's inode number, as `stat` shows it.
    pub net_inum: u16,
    /// Offset of `skaddr` in the `tcp:tcp_rcv_space_adjust` event record
    /// (from its tracefs format).
    pub tp_skaddr: u16,
    /// Inode number of the network namespace the attachment guards.
    pub netns_inum: u32,
    /// Non-zero once user space wrote the rest.
    pub ready: u32,
    /// Always 0.
    pub _pad1: u32,
}

/// What a thread's TLS call in progress is (`TlsCall::op`).
pub mod tls_op {
    /// `SSL_read`: its return value is the number of bytes read.
    pub const READ: u8 = 1;
    /// `SSL_read_ex`: returns 1 and stores the count through `count_ptr`.
    pub const READ_EX: u8 = 2;
    /// `SSL_write`, `SSL_write_ex`: the plaintext is known on entry.
    pub const WRITE: u8 = 3;
    /// `SSL_peek`, `SSL_do_handshake` and the like: they only tie the
    /// `SSL` object to its socket.
    pub const OTHER: u8 = 4;
}

/// A thread's TLS call in progress (value of `FTPCT_TLS_CALLS`, keyed by
/// `bpf_get_current_pid_tgid`): what it was called with, so the kernel
/// probes within it and its return probe can finish what its entry began.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TlsCall {
    /// The `SSL *` (a user-space address; an identity, never read).
    pub ssl: u64,
    /// The plaintext buffer.
    pub buf: u64,
    /// `SSL_read_ex`'s `size_t *readbytes`.
    pub count_ptr: u64,
    /// Bytes to write (`WRITE`).
    pub len: u32,
    /// `tls_op::*`.
    pub op: u8,
    /// Non-zero once the plaintext was fed.
    pub fed: u8,
    /// Always 0.
    pub _pad: u16,
}

/// Key of `FTPCT_TLS_SOCKETS`: an `SSL *` in one process.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TlsObject {
    /// The process (thread group) id.
    pub tgid: u32,
    /// Always 0.
    pub _pad: u32,
    /// The `SSL *`.
    pub ssl: u64,
}

impl TlsObject {
    /// The object `ssl` of process `tgid`.
    #[inline(always)]
    pub const fn new(tgid: u32, ssl: u64) -> Self {
        Self { tgid, _pad: 0, ssl }
    }
}

/// Value of `FTPCT_TLS_SOCKETS`: the encrypted control connection a TLS
/// object was last seen using, and the local end's role on it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TlsTie {
    /// The control connection.
    pub key: ControlKey,
    /// 1 when the local end is its server (its writes are replies), 0 when
    /// its client.
    pub local_server: u8,
    /// Always 0.
    pub _pad: [u8; 7],
}

/// Names of the probed functions of the TLS library, each with the program
/// that runs at its entry and the one at its return.
pub const PROBED: [(&str, &str, &str); 7] = [
    ("SSL_read", "ftpct_tls_read", "ftpct_tls_read_ret"),
    ("SSL_read_ex", "ftpct_tls_read_ex", "ftpct_tls_read_ex_ret"),
    ("SSL_write", "ftpct_tls_write", "ftpct_tls_call_ret"),
    ("SSL_write_ex", "ftpct_tls_write", "ftpct_tls_call_ret"),
    ("SSL_peek", "ftpct_tls_other", "ftpct_tls_call_ret"),
    ("SSL_peek_ex", "ftpct_tls_other", "ftpct_tls_call_ret"),
    ("SSL_do_handshake", "ftpct_tls_other", "ftpct_tls_call_ret"),
];

/// The tracepoint naming the socket of a TCP read (category, name) and
/// its program.
pub const READ_TRACEPOINT: (&str, &str, &str) = ("tcp", "tcp_rcv_space_adjust", "ftpct_tls_recv");
