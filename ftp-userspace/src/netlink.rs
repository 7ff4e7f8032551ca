//! The few netlink requests aya does not offer: listing the filters on an
//! interface's `clsact` qdisc (with their program ids) and deleting the qdisc
//! (rtnetlink: `detach` removes exactly the filter `attach` added, and the
//! qdisc only if `attach` created it and nobody's filter is left on it), and
//! a device's XDP features (the `netdev` generic netlink family, Linux 6.3+:
//! whether its driver runs XDP natively, for `ftpct check`).

use std::{io, mem::size_of, os::fd::AsRawFd as _, os::fd::FromRawFd as _, os::fd::OwnedFd};

use anyhow::{Context as _, Result, bail};

const RTM_DELQDISC: u16 = 37;
const RTM_GETQDISC: u16 = 38;
const RTM_NEWQDISC: u16 = 36;
const RTM_NEWTFILTER: u16 = 44;
const RTM_GETTFILTER: u16 = 46;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_ID: u16 = 11;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// `TC_H_CLSACT` (= `TC_H_INGRESS`): the clsact qdisc's parent and major.
const TC_H_CLSACT: u32 = 0xffff_fff1;
/// Minor numbers of the clsact qdisc's two hooks.
const TC_H_MIN_INGRESS: u32 = 0xfff2;
const TC_H_MIN_EGRESS: u32 = 0xfff3;

/// Which of clsact's hooks a filter sits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Ingress,
    Egress,
}

/// A filter on a clsact hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filter {
    pub hook: Hook,
    pub priority: u16,
    pub handle: u32,
    /// The BPF program's id, for `cls_bpf` filters.
    pub prog_id: Option<u32>,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct NlMsgHdr {
    len: u32,
    kind: u16,
    flags: u16,
    seq: u32,
    pid: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TcMsg {
    family: u8,
    _pad1: u8,
    _pad2: u16,
    ifindex: i32,
    handle: u32,
    parent: u32,
    info: u32,
}

/// A request: header, tcmsg and attributes, built into one buffer.
struct Request(Vec<u8>);

impl Request {
    /// An rtnetlink traffic-control request.
    fn new(kind: u16, flags: u16, tc: TcMsg) -> Self {
        Self::with_header(kind, flags, as_bytes(&tc))
    }

    /// A request whose family header (tcmsg, genlmsghdr) is `header`.
    fn with_header(kind: u16, flags: u16, header: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(as_bytes(&NlMsgHdr {
            len: 0,
            kind,
            flags: NLM_F_REQUEST | flags,
            seq: 1,
            pid: 0,
        }));
        buf.extend_from_slice(header);
        Self(buf)
    }

    fn attr(mut self, kind: u16, value: &[u8]) -> Self {
        let len = 4 + value.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.0.resize(align4(self.0.len()), 0);
        self
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

fn as_bytes<T: Copy>(value: &T) -> &[u8] {
    // SAFETY: T is a #[repr(C)] struct of integers without implicit padding
    // (NlMsgHdr, TcMsg); the slice lives as long as the borrow.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn socket(protocol: libc::c_int) -> Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("opening a netlink socket");
    }
    // SAFETY: fd is a fresh descriptor this function owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends `request` and returns the payloads (after the netlink header) of
/// every reply of type `want` until the dump or the acknowledgement ends.
fn exchange(request: Vec<u8>, want: u16) -> Result<Vec<Vec<u8>>> {
    exchange_on(libc::NETLINK_ROUTE, request, want)
}

/// [`exchange`] on a socket of netlink `protocol`.
fn exchange_on(protocol: libc::c_int, request: Vec<u8>, want: u16) -> Result<Vec<Vec<u8>>> {
    let sock = socket(protocol)?;
    // SAFETY: request is a valid buffer of its length.
    let sent = unsafe { libc::send(sock.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error()).context("sending a netlink request");
    }
    let mut replies = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    // Bounded: a dump of one interface's filters is a few messages.
    for _ in 0..10_000 {
        // SAFETY: buf is a valid writable buffer of its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error()).context("reading a netlink reply");
        }
        let mut rest = &buf[..n as usize];
        while rest.len() >= size_of::<NlMsgHdr>() {
            let len = u32::from_ne_bytes(rest[0..4].try_into()?) as usize;
            let kind = u16::from_ne_bytes(rest[4..6].try_into()?);
            if len < size_of::<NlMsgHdr>() || len > rest.len() {
                bail!("malformed netlink reply");
            }
            let payload = &rest[size_of::<NlMsgHdr>()..len];
            match kind {
                NLMSG_DONE => return Ok(replies),
                NLMSG_ERROR => {
                    let code =
                        i32::from_ne_bytes(payload.get(0..4).context("short error")?.try_into()?);
                    if code == 0 {
                        return Ok(replies);
                    }
                    return Err(io::Error::from_raw_os_error(-code).into());
                }
                k if k == want => replies.push(payload.to_vec()),
                _ => {}
            }
            rest = &rest[align4(len).min(rest.len())..];
        }
    }
    bail!("netlink reply did not end")
}

/// The attributes following a tcmsg: (type, value) pairs.
fn attributes(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let kind = u16::from_ne_bytes([data[2], data[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > data.len() {
            break;
        }
        out.push((kind, &data[4..len]));
        data = &data[align4(len).min(data.len())..];
    }
    out
}

fn tcmsg(payload: &[u8]) -> Option<TcMsg> {
    let bytes = payload.get(..size_of::<TcMsg>())?;
    let field =
        |at: usize| u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    Some(TcMsg {
        family: bytes[0],
        ifindex: field(4) as i32,
        handle: field(8),
        parent: field(12),
        info: field(16),
        ..TcMsg::default()
    })
}

/// Every filter on `ifindex`'s clsact hooks (none if there is no clsact).
pub fn clsact_filters(ifindex: u32) -> Result<Vec<Filter>> {
    let mut filters = Vec::new();
    for (hook, minor) in [
        (Hook::Ingress, TC_H_MIN_INGRESS),
        (Hook::Egress, TC_H_MIN_EGRESS),
    ] {
        let request = Request::new(
            RTM_GETTFILTER,
            NLM_F_DUMP,
            TcMsg {
                ifindex: ifindex as i32,
                parent: (TC_H_CLSACT & 0xffff_0000) | minor,
                ..TcMsg::default()
            },
        )
        .finish();
        let replies = match exchange(request, RTM_NEWTFILTER) {
            Ok(replies) => replies,
            // No clsact qdisc: no filters.
            Err(err)
                if err
                    .downcast_ref::<io::Error>()
                    .is_some_and(|e| e.raw_os_error() == Some(libc::EINVAL)) =>
            {
                Vec::new()
            }
            Err(err) => return Err(err).context("listing tc filters"),
        };
        for reply in replies {
            let Some(tc) = tcmsg(&reply) else { continue };
            if tc.handle == 0 {
                // The priority's classifier itself, not a filter.
                continue;
            }
            let prog_id = attributes(&reply[size_of::<TcMsg>()..])
                .into_iter()
                .find(|(kind, _)| *kind == TCA_OPTIONS)
                .and_then(|(_, options)| {
                    attributes(options)
                        .into_iter()
                        .find(|(kind, v)| *kind == TCA_BPF_ID && v.len() >= 4)
                        .map(|(_, v)| u32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
                });
            filters.push(Filter {
                hook,
                priority: (tc.info >> 16) as u16,
                handle: tc.handle,
                prog_id,
            });
        }
    }
    Ok(filters)
}

/// Whether `ifindex` has a clsact qdisc.
pub fn has_clsact(ifindex: u32) -> Result<bool> {
    let request = Request::new(RTM_GETQDISC, NLM_F_DUMP, TcMsg::default()).finish();
    let replies = exchange(request, RTM_NEWQDISC).context("listing qdiscs")?;
    Ok(replies.iter().any(|reply| {
        tcmsg(reply).is_some_and(|tc| tc.ifindex == ifindex as i32 && tc.parent == TC_H_CLSACT)
            && attributes(&reply[size_of::<TcMsg>()..])
                .into_iter()
                .any(|(kind, v)| kind == TCA_KIND && v.starts_with(b"clsact"))
    }))
}

/// Deletes `ifindex`'s clsact qdisc (and with it any filter on it: callers
/// check that none is left first).
pub fn delete_clsact(ifindex: u32) -> Result<()> {
    let request = Request::new(
        RTM_DELQDISC,
        NLM_F_ACK,
        TcMsg {
            ifindex: ifindex as i32,
            handle: TC_H_CLSACT & 0xffff_0000,
            parent: TC_H_CLSACT,
            ..TcMsg::default()
        },
    )
    .attr(TCA_KIND, b"clsact\0")
    .finish();
    exchange(request, 0)
        .map(|_| ())
        .context("deleting the clsact qdisc")
}

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
/// `NETDEV_XDP_ACT_BASIC`: the driver runs XDP programs (native mode).
const NETDEV_XDP_ACT_BASIC: u64 = 1;
/// `struct genlmsghdr`: command, version, reserved.
const GENL_HEADER: usize = 4;

/// Whether the driver of `ifindex` runs XDP natively, from the `netdev`
/// generic netlink family (Linux 6.3+); `None` where the kernel has no such
/// family or does not answer.
pub fn native_xdp(ifindex: u32) -> Option<bool> {
    let request = Request::with_header(GENL_ID_CTRL, NLM_F_ACK, &[CTRL_CMD_GETFAMILY, 1, 0, 0])
        .attr(CTRL_ATTR_FAMILY_NAME, b"netdev\0")
        .finish();
    let family = exchange_on(libc::NETLINK_GENERIC, request, GENL_ID_CTRL)
        .ok()?
        .iter()
        .find_map(|reply| {
            attributes(reply.get(GENL_HEADER..)?)
                .into_iter()
                .find(|(kind, v)| *kind == CTRL_ATTR_FAMILY_ID && v.len() >= 2)
                .map(|(_, v)| u16::from_ne_bytes([v[0], v[1]]))
        })?;
    let request = Request::with_header(family, NLM_F_ACK, &[NETDEV_CMD_DEV_GET, 1, 0, 0])
        .attr(NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes())
        .finish();
    exchange_on(libc::NETLINK_GENERIC, request, family)
        .ok()?
        .iter()
        .find_map(|reply| {
            attributes(reply.get(GENL_HEADER..)?)
                .into_iter()
                .find(|(kind, v)| *kind == NETDEV_A_DEV_XDP_FEATURES && v.len() >= 8)
                .map(|(_, v)| {
                    let mut bytes = [0u8; 8];
                    bytes.copy_from_slice(&v[..8]);
                    u64::from_ne_bytes(bytes) & NETDEV_XDP_ACT_BASIC != 0
                })
        })
}
