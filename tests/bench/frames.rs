//! Crafted Ethernet frames for `BPF_PROG_TEST_RUN` (checksums left zero: the
//! programs never check them, except for [`with_checksums`], whose frames the
//! kernel receives), following `ftp-userspace/tests/common`.

use std::net::Ipv4Addr;

pub const SYN: u8 = 0x02;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// Ethernet header: destination, source (locally administered MACs).
const ETH_ADDRS: [u8; 12] = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];

/// A TCP segment over IPv4.
#[derive(Clone, Debug)]
pub struct Segment {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    /// Acknowledgment number: ftpct syncs a control connection's peer
    /// direction from the local end's ACK, so control segments need real ones.
    pub ack: u32,
    pub flags: u8,
    pub payload: Vec<u8>,
}

impl Segment {
    pub fn new(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Self {
        Self {
            src,
            dst,
            sport,
            dport,
            seq: 1000,
            ack: 0,
            flags: ACK | PSH,
            payload: Vec::new(),
        }
    }

    pub fn flags(mut self, flags: u8) -> Self {
        self.flags = flags;
        self
    }

    pub fn seq(mut self, seq: u32) -> Self {
        self.seq = seq;
        self
    }

    pub fn ack(mut self, ack: u32) -> Self {
        self.ack = ack;
        self
    }

    pub fn payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    /// The frame's bytes.
    pub fn frame(&self) -> Vec<u8> {
        let mut tcp = Vec::with_capacity(20 + self.payload.len());
        tcp.extend_from_slice(&self.sport.to_be_bytes());
        tcp.extend_from_slice(&self.dport.to_be_bytes());
        tcp.extend_from_slice(&self.seq.to_be_bytes());
        tcp.extend_from_slice(&self.ack.to_be_bytes());
        tcp.push(5 << 4);
        tcp.push(self.flags);
        tcp.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        tcp.extend_from_slice(&self.payload);
        ipv4_frame(self.src, self.dst, 6, &tcp)
    }
}

/// An IPv4 frame carrying `l4` as protocol `proto`.
fn ipv4_frame(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut frame = ETH_ADDRS.to_vec();
    frame.extend_from_slice(&[0x08, 0x00]);
    let total = u16::try_from(20 + l4.len()).unwrap_or(u16::MAX);
    frame.extend_from_slice(&[0x45, 0]);
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(&dst.octets());
    frame.extend_from_slice(l4);
    frame
}

/// A UDP datagram with a 32-byte payload.
pub fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let payload = [0x5a_u8; 32];
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap_or(0).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&payload);
    ipv4_frame(src, dst, 17, &udp)
}

/// An ARP request (a non-IP frame).
pub fn arp(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 3]);
    frame.extend_from_slice(&[0x08, 0x06]);
    // htype 1, ptype IPv4, hlen 6, plen 4, op request.
    frame.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 3]);
    frame.extend_from_slice(&sender.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&target.octets());
    frame
}

/// `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2).` naming `addr:port`.
pub fn reply_227(addr: Ipv4Addr, port: u16) -> Vec<u8> {
    let [a, b, c, d] = addr.octets();
    format!(
        "227 Entering Passive Mode ({a},{b},{c},{d},{},{}).\r\n",
        port >> 8,
        port & 0xff
    )
    .into_bytes()
}

/// `PORT h1,h2,h3,h4,p1,p2` naming `addr:port`.
pub fn port_command(addr: Ipv4Addr, port: u16) -> Vec<u8> {
    let [a, b, c, d] = addr.octets();
    format!("PORT {a},{b},{c},{d},{},{}\r\n", port >> 8, port & 0xff).into_bytes()
}

/// `frame` with its Ethernet destination and source replaced.
pub fn with_macs(mut frame: Vec<u8>, dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    frame[..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
    frame
}

/// A TCP/IPv4 frame of [`Segment::frame`] with valid IPv4 header and TCP
/// checksums, so that a kernel receiving it does not discard it.
pub fn with_checksums(mut frame: Vec<u8>) -> Vec<u8> {
    const IP: usize = 14;
    const TCP: usize = IP + 20;
    frame[IP + 10..IP + 12].fill(0);
    let ip = checksum(0, &frame[IP..TCP]);
    frame[IP + 10..IP + 12].copy_from_slice(&ip.to_be_bytes());
    frame[TCP + 16..TCP + 18].fill(0);
    let tcp_len = u16::try_from(frame.len() - TCP).unwrap_or(u16::MAX);
    let mut pseudo = frame[IP + 12..IP + 20].to_vec();
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&tcp_len.to_be_bytes());
    let tcp = checksum(sum16(0, &pseudo), &frame[TCP..]);
    frame[TCP + 16..TCP + 18].copy_from_slice(&tcp.to_be_bytes());
    frame
}

/// Whether both checksums of a TCP/IPv4 frame like [`with_checksums`]'s
/// verify.
pub fn checksums_valid(frame: &[u8]) -> bool {
    const IP: usize = 14;
    const TCP: usize = IP + 20;
    if frame.len() < TCP + 20 {
        return false;
    }
    let tcp_len = u16::try_from(frame.len() - TCP).unwrap_or(u16::MAX);
    let mut pseudo = frame[IP + 12..IP + 20].to_vec();
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&tcp_len.to_be_bytes());
    checksum(0, &frame[IP..TCP]) == 0 && checksum(sum16(0, &pseudo), &frame[TCP..]) == 0
}

/// One's complement sum of `bytes` as big-endian 16-bit words, added to
/// `sum` (not folded).
fn sum16(sum: u32, bytes: &[u8]) -> u32 {
    bytes.chunks(2).fold(sum, |acc, w| {
        acc + u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]))
    })
}

/// The Internet checksum (RFC 1071) of `bytes`, starting from `sum`.
fn checksum(sum: u32, bytes: &[u8]) -> u16 {
    let mut sum = sum16(sum, bytes);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify() {
        let f = with_checksums(
            Segment::new(
                Ipv4Addr::new(198, 19, 0, 1),
                1024,
                Ipv4Addr::new(198, 18, 0, 1),
                2048,
            )
            .flags(SYN)
            .frame(),
        );
        // A header with its checksum in place sums to 0xffff.
        assert_eq!(checksum(0, &f[14..34]), 0);
        let mut pseudo = f[26..34].to_vec();
        pseudo.extend_from_slice(&[0, 6, 0, 20]);
        assert_eq!(checksum(sum16(0, &pseudo), &f[34..]), 0);
        assert!(checksums_valid(&f));
        let mut bad = f.clone();
        bad[36] ^= 1;
        assert!(!checksums_valid(&bad));
    }
}
