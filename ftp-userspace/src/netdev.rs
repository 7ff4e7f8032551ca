//! Interfaces of the current network namespace.
//!
//! Interfaces are looked up with ioctls on a socket, which belongs to the
//! namespace the process is in; `/sys/class/net` may be a sysfs mounted for
//! another namespace (a container's, or the host's under `nsenter`).

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use anyhow::{Context as _, Result, anyhow, bail};

/// `ARPHRD_ETHER`: the only link type whose frames the programs parse.
const ARPHRD_ETHER: u16 = 1;

/// An interface of the current network namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Interface index.
    pub index: u32,
    /// `ARPHRD_*` link type (what `/sys/class/net/IFACE/type` shows).
    pub link_type: u16,
}

/// Fails unless `name` can be an interface name: 1 to 15 bytes, no `/`,
/// NUL or whitespace, not `.` or `..`. It becomes a directory name under the
/// pin root, so this also keeps `detach ../x` from reaching outside it.
pub fn check_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == 0 || b.is_ascii_whitespace());
    if !valid {
        bail!("{name:?} is not an interface name (1-15 characters, no '/' or spaces)");
    }
    Ok(())
}

/// A datagram socket to ask the kernel about this namespace's interfaces.
fn ioctl_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("opening a socket to look up interfaces");
    }
    // SAFETY: fd is a freshly opened descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One `SIOCGIF*` ioctl on `req`.
fn ifreq_ioctl(socket: &OwnedFd, request: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: req is a valid, initialised ifreq, which is what every
    // SIOCGIF* request reads and writes.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), request as _, req as *mut libc::ifreq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn ifreq_named(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data (a name array and a union of integers and
    // sockaddrs); all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // check_name bounds the length, so the name stays NUL-terminated.
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req
}

/// Looks `name` up in the current network namespace; `None` if there is no
/// such interface.
pub fn lookup(name: &str) -> Result<Option<Interface>> {
    check_name(name)?;
    let socket = ioctl_socket()?;
    let mut req = ifreq_named(name);
    match ifreq_ioctl(&socket, libc::SIOCGIFINDEX, &mut req) {
        Err(err) if err.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("looking up interface {name}")),
        Ok(()) => {}
    }
    // SAFETY: SIOCGIFINDEX succeeded, so the union holds the index.
    let index = unsafe { req.ifr_ifru.ifru_ifindex };
    let mut req = ifreq_named(name);
    ifreq_ioctl(&socket, libc::SIOCGIFHWADDR, &mut req)
        .with_context(|| format!("reading the link type of {name}"))?;
    // SAFETY: SIOCGIFHWADDR succeeded, so the union holds the hardware
    // address, whose family is the ARPHRD link type.
    let link_type = unsafe { req.ifr_ifru.ifru_hwaddr.sa_family };
    Ok(Some(Interface {
        index: index as u32,
        link_type,
    }))
}

/// The name of interface `index` in the current network namespace, if any.
pub fn name_of(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IFNAMSIZ];
    // SAFETY: buf has the IFNAMSIZ bytes if_indextoname writes at most.
    let ptr = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if ptr.is_null() {
        return None;
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// `struct ethtool_drvinfo`, the answer to `ETHTOOL_GDRVINFO`.
#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    counts: [u32; 5],
}

/// The driver of `name` as `ethtool -i` reports it (virtual devices such as
/// veth have no `/sys/class/net/NAME/device`).
pub fn ethtool_driver(name: &str) -> Option<String> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_GDRVINFO: u32 = 3;
    check_name(name).ok()?;
    let socket = ioctl_socket().ok()?;
    let mut info = EthtoolDrvinfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        version: [0; 32],
        fw_version: [0; 32],
        bus_info: [0; 32],
        erom_version: [0; 32],
        reserved2: [0; 12],
        counts: [0; 5],
    };
    let mut req = ifreq_named(name);
    req.ifr_ifru.ifru_data = (&mut info as *mut EthtoolDrvinfo).cast();
    ifreq_ioctl(&socket, SIOCETHTOOL, &mut req).ok()?;
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    let driver = String::from_utf8_lossy(&info.driver[..end]).into_owned();
    (!driver.is_empty()).then_some(driver)
}

/// The ifindex of `name`, which must be an Ethernet device: the programs
/// parse Ethernet headers, and on an L3 device (tun, WireGuard, ipip, ppp)
/// or loopback they would misread every packet and let it pass.
pub fn require_ethernet(name: &str) -> Result<u32> {
    let iface = lookup(name)?.ok_or_else(|| {
        anyhow!("no such interface: {name} in this network namespace (see `ip link`)")
    })?;
    if iface.link_type != ARPHRD_ETHER {
        let kind = link_type_name(iface.link_type)
            .map(|k| format!(", {k}"))
            .unwrap_or_default();
        bail!(
            "{name} is not an Ethernet device (link type {}{kind}): ftpct reads Ethernet \
             frames; attach it to the Ethernet interface the traffic arrives on",
            iface.link_type
        );
    }
    Ok(iface.index)
}

/// Names of the non-Ethernet link types one is likely to try.
fn link_type_name(link_type: u16) -> Option<&'static str> {
    Some(match link_type {
        512 => "ppp",
        768 => "ipip",
        769 => "ip6 tunnel",
        772 => "loopback",
        776 => "sit",
        778 => "gre",
        823 => "ip6gre",
        519 => "raw IP",
        65534 => "no link-layer header",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked() {
        for good in ["eth0", "a", "enp0s31f6", "veth-ab.12", "x23456789012345"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../eth0",
            "a/b",
            "eth 0",
            "x234567890123456",
            "a\0b",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn loopback_is_found_and_is_not_ethernet() {
        let lo = lookup("lo").expect("lookup").expect("lo exists");
        assert_eq!(lo.link_type, 772);
        assert_eq!(name_of(lo.index).as_deref(), Some("lo"));
        let err = require_ethernet("lo").expect_err("lo refused");
        assert!(
            err.to_string()
                .contains("lo is not an Ethernet device (link type 772, loopback)"),
            "{err}"
        );
        assert_eq!(lookup("nosuch0").expect("lookup"), None);
    }
}
