//! Never lock the administrator out (issue #12, item 4). Before guarding,
//! the services already listening inside the guarded ports are named and
//! `attach` refuses unless told what to do with them (`--allow-ports` to
//! leave them open, `--force` to guard them); and the port of the SSH
//! session running the command stays open unless `--guard-session` says
//! otherwise.

use std::{collections::BTreeSet, env, ffi::CStr, net::IpAddr};

use anyhow::{Result, bail};
use ftp_ebpf_common::{Addr, family, policy::PortClass};

use crate::{
    portspec::{self, PortRange},
    seed::{self, Socket, TCP_LISTEN},
};

/// Ports inside the guarded range with a listening socket reachable
/// through the interface: bound to every address, or to one of
/// `iface_addrs` (a service bound to another interface's address is not
/// this interface's business). Sorted, each once.
pub fn guarded_listeners(
    sockets: &[Socket],
    classes: &[PortClass],
    iface_addrs: &[(u8, Addr)],
) -> Vec<u16> {
    let ports: BTreeSet<u16> = sockets
        .iter()
        .filter(|s| s.state == TCP_LISTEN)
        .filter(|s| classes.get(usize::from(s.local_port)) == Some(&PortClass::Guarded))
        .filter(|s| s.local == [0; 16] || iface_addrs.contains(&(s.family, s.local)))
        .map(|s| s.local_port)
        .collect();
    ports.into_iter().collect()
}

/// Refuses to guard `classes` on `iface` while services listen inside the
/// guarded ports, naming them and the ways through.
pub fn refuse_guarded_listeners(iface: &str, classes: &[PortClass]) -> Result<()> {
    let sockets = seed::read_sockets()?;
    let busy = guarded_listeners(&sockets, classes, &iface_addrs(iface));
    if busy.is_empty() {
        return Ok(());
    }
    // Sorted ports folded into ranges (a pool of 100 listeners is one).
    let mut ranges: Vec<PortRange> = Vec::new();
    for &port in &busy {
        match ranges.last_mut() {
            Some(last) if u32::from(last.hi) + 1 == u32::from(port) => last.hi = port,
            _ => ranges.push(PortRange { lo: port, hi: port }),
        }
    }
    let list = portspec::format_ranges(&ranges);
    let (noun, verb) = if busy.len() == 1 {
        ("port", "has a service")
    } else {
        ("ports", "have services")
    };
    bail!(
        "{noun} {list} {verb} listening inside the guarded ports (`ss -ltnp` names them): \
         ftpct would drop every new connection to them. Leave them open with \
         --allow-ports {list}, or guard them anyway with --force"
    )
}

/// The local port of the SSH session running this command, from
/// `SSH_CONNECTION` (client address, client port, server address, server
/// port), if there is one.
pub fn session_port() -> Option<u16> {
    parse_ssh_connection(&env::var("SSH_CONNECTION").ok()?)
}

/// The server port of an `SSH_CONNECTION` value.
pub fn parse_ssh_connection(text: &str) -> Option<u16> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    match fields.as_slice() {
        [client, _, server, port] => {
            client.parse::<IpAddr>().ok()?;
            server.parse::<IpAddr>().ok()?;
            port.parse().ok().filter(|&p| p != 0)
        }
        _ => None,
    }
}

/// The addresses of `iface`, as the socket table writes them.
fn iface_addrs(iface: &str) -> Vec<(u8, Addr)> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: a valid out-pointer; the list is freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cursor = head;
    while !cursor.is_null() {
        // SAFETY: a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cursor };
        cursor = ifa.ifa_next;
        // SAFETY: getifaddrs gives every node a NUL-terminated name.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
        if ifa.ifa_addr.is_null() || name.to_bytes() != iface.as_bytes() {
            continue;
        }
        // SAFETY: a non-null sockaddr of the family it names.
        let addr = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*ifa.ifa_addr.cast::<libc::sockaddr_in>();
                    let mut a = [0u8; 16];
                    a[..4].copy_from_slice(&sin.sin_addr.s_addr.to_ne_bytes());
                    Some((family::V4, a))
                }
                libc::AF_INET6 => {
                    let sin6 = &*ifa.ifa_addr.cast::<libc::sockaddr_in6>();
                    Some((family::V6, sin6.sin6_addr.s6_addr))
                }
                _ => None,
            }
        };
        out.extend(addr);
    }
    // SAFETY: the list getifaddrs returned, freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(fam: u8, local: Addr, port: u16) -> Socket {
        Socket {
            family: fam,
            local,
            local_port: port,
            remote: [0; 16],
            remote_port: 0,
            state: TCP_LISTEN,
        }
    }

    #[test]
    fn listeners_inside_the_guarded_ports_and_on_this_interface_count() {
        let mut classes = vec![PortClass::Guarded; 65536];
        classes[..1024].fill(PortClass::Open);
        classes[21] = PortClass::Control;
        let mine = [198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let other = [10, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut established = listener(family::V4, mine, 9000);
        established.state = 1;
        let sockets = [
            listener(family::V4, [0; 16], 8080),
            listener(family::V6, [0; 16], 8080),
            listener(family::V4, mine, 5432),
            listener(family::V4, other, 6379),
            listener(family::V4, [0; 16], 21),
            listener(family::V4, [0; 16], 22),
            established,
        ];
        let addrs = [(family::V4, mine)];
        assert_eq!(guarded_listeners(&sockets, &classes, &addrs), [5432, 8080]);
    }

    #[test]
    fn the_session_port_comes_from_ssh_connection() {
        assert_eq!(
            parse_ssh_connection("198.18.0.2 50022 198.18.0.1 22"),
            Some(22)
        );
        assert_eq!(
            parse_ssh_connection("2001:db8::2 50022 2001:db8::1 2222"),
            Some(2222)
        );
        assert_eq!(parse_ssh_connection("198.18.0.2 50022 198.18.0.1"), None);
        assert_eq!(parse_ssh_connection("x 1 y 22"), None);
        assert_eq!(parse_ssh_connection(""), None);
    }
}
