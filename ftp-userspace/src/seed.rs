//! Seeds the flow and control tables from the kernel's socket table at attach,
//! so connections established before ftpct keep working.

use std::fs;

use anyhow::{Context as _, Result};
use ftp_ebpf_common::{
    Addr,
    control::{ControlKey, ControlState, control_flags},
    family,
    flow::{FlowKey, FlowValue, flow_origin, flow_state},
    policy::PortClass,
};

/// One TCP socket from /proc/net/tcp{,6} (of the current network namespace).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Socket {
    /// `family::V4` or `family::V6` (IPv4-mapped IPv6 sockets are IPv4 on the wire).
    pub family: u8,
    /// Local address.
    pub local: Addr,
    /// Local port.
    pub local_port: u16,
    /// Remote address.
    pub remote: Addr,
    /// Remote port.
    pub remote_port: u16,
    /// Kernel TCP state (1 = ESTABLISHED, 10 = LISTEN, ...).
    pub state: u8,
}

const TCP_ESTABLISHED: u8 = 1;
const TCP_SYN_SENT: u8 = 2;
const TCP_SYN_RECV: u8 = 3;
const TCP_CLOSE: u8 = 7;
/// Kernel TCP state of a listening socket.
pub const TCP_LISTEN: u8 = 10;

/// Reads every TCP socket of this network namespace.
pub fn read_sockets() -> Result<Vec<Socket>> {
    let mut sockets = Vec::new();
    for (path, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && v6 => continue,
            Err(err) => return Err(err).with_context(|| format!("reading {path}")),
        };
        sockets.extend(
            text.lines()
                .skip(1)
                .filter_map(|line| parse_line(line, v6))
                // Loopback traffic never crosses a guarded interface.
                .filter(|s| !is_loopback(s.family, &s.local)),
        );
    }
    Ok(sockets)
}

/// Parses one line of /proc/net/tcp{,6}; `None` for lines it does not understand.
pub fn parse_line(line: &str, v6: bool) -> Option<Socket> {
    let mut fields = line.split_whitespace();
    let _slot = fields.next()?;
    let (local, local_port) = parse_endpoint(fields.next()?, v6)?;
    let (remote, remote_port) = parse_endpoint(fields.next()?, v6)?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    let (fam, local, remote) = match (v6, unmap(&local), unmap(&remote)) {
        (false, _, _) => (family::V4, local, remote),
        (true, Some(l), Some(r)) => (family::V4, l, r),
        (true, _, _) => (family::V6, local, remote),
    };
    Some(Socket {
        family: fam,
        local,
        local_port,
        remote,
        remote_port,
        state,
    })
}

/// `ADDR:PORT` in the kernel's hex notation: the address as 32-bit words in
/// host byte order, the port in plain hex.
fn parse_endpoint(text: &str, v6: bool) -> Option<(Addr, u16)> {
    let (addr_hex, port_hex) = text.split_once(':')?;
    let words = if v6 { 4 } else { 1 };
    if addr_hex.len() != words * 8 {
        return None;
    }
    let mut addr = [0u8; 16];
    for i in 0..words {
        let word = u32::from_str_radix(addr_hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        addr[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
    }
    Some((addr, u16::from_str_radix(port_hex, 16).ok()?))
}

/// 127.0.0.0/8 or ::1.
fn is_loopback(fam: u8, addr: &Addr) -> bool {
    if fam == family::V4 {
        addr[0] == 127
    } else {
        addr[..15].iter().all(|b| *b == 0) && addr[15] == 1
    }
}

/// `::ffff:a.b.c.d` → `a.b.c.d` in the IPv4 layout.
fn unmap(addr: &Addr) -> Option<Addr> {
    if addr[..10].iter().all(|b| *b == 0) && addr[10] == 0xff && addr[11] == 0xff {
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&addr[12..16]);
        Some(v4)
    } else {
        None
    }
}

/// Flow entries for live connections whose local port is guarded.
pub fn flows(sockets: &[Socket], classes: &[PortClass], now_ns: u64) -> Vec<(FlowKey, FlowValue)> {
    sockets
        .iter()
        .filter(|s| s.state != TCP_LISTEN && s.state != TCP_CLOSE)
        .filter(|s| classes.get(s.local_port as usize) == Some(&PortClass::Guarded))
        .map(|s| {
            let key = FlowKey::new(s.family, s.remote, s.remote_port, s.local, s.local_port);
            // FIN_WAIT, TIME_WAIT, CLOSE_WAIT, LAST_ACK, CLOSING: only the
            // closing handshake is left, so the short closing timeout applies.
            let state = match s.state {
                TCP_ESTABLISHED => flow_state::OPEN,
                TCP_SYN_SENT | TCP_SYN_RECV => flow_state::HANDSHAKE,
                _ => flow_state::CLOSING,
            };
            (key, FlowValue::new(flow_origin::SEEDED, state, 0, now_ns))
        })
        .collect()
}

/// Whether a socket listens on local `addr`:`port` (or on every address):
/// the local end of a connection there accepted it rather than opened it.
pub fn listens(sockets: &[Socket], addr: &Addr, port: u16) -> bool {
    sockets.iter().any(|l| {
        l.state == TCP_LISTEN && l.local_port == port && (l.local == *addr || l.local == [0; 16])
    })
}

/// Control-connection entries for established FTP sessions, either side
/// local. The role comes from the socket table, not from port numbers alone:
/// the local end is the server only where a socket listens on its port (it
/// accepted the connection); otherwise it is the client of a remote control
/// port. A seeded client session counts as greeted (it is past its greeting).
/// `now_ns` dates the entries, so a sweep of the full table sees them as
/// active since attach.
pub fn controls(
    sockets: &[Socket],
    classes: &[PortClass],
    now_ns: u64,
) -> Vec<(ControlKey, ControlState)> {
    let is_control = |port: u16| classes.get(port as usize) == Some(&PortClass::Control);
    let listening = |s: &Socket| listens(sockets, &s.local, s.local_port);
    sockets
        .iter()
        .filter(|s| s.state == TCP_ESTABLISHED)
        .filter_map(|s| {
            let (key, side) = if is_control(s.local_port) && listening(s) {
                let key = ControlKey::new(s.family, s.remote, s.remote_port, s.local, s.local_port);
                (key, control_flags::LOCAL_SERVER)
            } else if is_control(s.remote_port) {
                let key = ControlKey::new(s.family, s.local, s.local_port, s.remote, s.remote_port);
                (key, control_flags::LOCAL_CLIENT | control_flags::GREETED)
            } else {
                return None;
            };
            let state = ControlState {
                flags: side | control_flags::SEEDED,
                created_ns: now_ns,
                last_seen_ns: now_ns,
                ..ControlState::default()
            };
            Some((key, state))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipv4_and_mapped_ipv6_lines() {
        let v4 = "   0: 010012C6:0015 020012C6:D431 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0 10 0";
        let s = parse_line(v4, false).unwrap();
        assert_eq!(s.family, family::V4);
        assert_eq!(&s.local[..4], &[198, 18, 0, 1]);
        assert_eq!(s.local_port, 21);
        assert_eq!(&s.remote[..4], &[198, 18, 0, 2]);
        assert_eq!(s.remote_port, 0xd431);
        assert_eq!(s.state, TCP_ESTABLISHED);

        let mapped = "   0: 0000000000000000FFFF0000010012C6:0015 0000000000000000FFFF0000020012C6:D431 01 0 0 0 0 0";
        let s = parse_line(mapped, true).unwrap();
        assert_eq!(s.family, family::V4);
        assert_eq!(&s.local[..4], &[198, 18, 0, 1]);

        let v6 = "   0: B80D0120000000000000000001000000:0015 B80D0120000000000000000002000000:D431 01 0";
        let s = parse_line(v6, true).unwrap();
        assert_eq!(s.family, family::V6);
        assert_eq!(&s.local[..4], &[0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(s.local[15], 1);
    }

    /// An IPv4 socket between [1; 16] (local) and [2; 16] (remote).
    fn sock(local_port: u16, remote_port: u16, state: u8) -> Socket {
        Socket {
            family: family::V4,
            local: [1; 16],
            local_port,
            remote: [2; 16],
            remote_port,
            state,
        }
    }

    #[test]
    fn seeds_guarded_flows_and_control_sessions() {
        let mut classes = vec![PortClass::Open; 65536];
        classes[21] = PortClass::Control;
        classes[40000] = PortClass::Guarded;
        let sockets = [
            sock(40000, 5555, TCP_ESTABLISHED),
            sock(40000, 0, TCP_LISTEN),
            sock(22, 5555, TCP_ESTABLISHED),
            sock(21, 6000, TCP_ESTABLISHED),
            sock(21, 0, TCP_LISTEN),
            sock(40001, 21, TCP_ESTABLISHED),
            sock(40000, 5556, 6),
        ];
        let flows = flows(&sockets, &classes, 7);
        assert_eq!(flows.len(), 2);
        assert_eq!(flows[0].1.state, flow_state::OPEN);
        assert_eq!(flows[1].1.state, flow_state::CLOSING, "TIME_WAIT");
        assert_eq!(flows[0].0.dport, 40000);
        assert_eq!(flows[0].0.sport, 5555);
        let controls = controls(&sockets, &classes, 7);
        assert_eq!(controls.len(), 2);
        assert_eq!(controls[0].0.server_port, 21);
        assert_ne!(controls[0].1.flags & control_flags::LOCAL_SERVER, 0);
        assert_eq!(controls[1].0.client_port, 40001);
        assert_ne!(controls[1].1.flags & control_flags::LOCAL_CLIENT, 0);
    }

    #[test]
    fn seeded_roles_come_from_listening_sockets_not_ports() {
        let mut classes = vec![PortClass::Open; 65536];
        classes[21] = PortClass::Control;
        classes[2121] = PortClass::Control;
        // A local client bound to port 21 talking to a remote server's 21,
        // with nothing listening on 21 here: the local end is the client.
        let controls_found = controls(&[sock(21, 21, TCP_ESTABLISHED)], &classes, 7);
        assert_eq!(controls_found.len(), 1);
        assert_eq!(controls_found[0].0.client_port, 21);
        assert_eq!(controls_found[0].0.client, [1; 16]);
        assert_ne!(controls_found[0].1.flags & control_flags::LOCAL_CLIENT, 0);
        // A local process connected out from control port 2121 to a remote
        // 8080: neither server nor client of an FTP session.
        assert!(controls(&[sock(2121, 8080, TCP_ESTABLISHED)], &classes, 7).is_empty());
        // A remote client connected from its port 21 to the listening server.
        let found = controls(
            &[sock(21, 0, TCP_LISTEN), sock(21, 21, TCP_ESTABLISHED)],
            &classes,
            7,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.client, [2; 16]);
        assert_ne!(found[0].1.flags & control_flags::LOCAL_SERVER, 0);
    }
}
