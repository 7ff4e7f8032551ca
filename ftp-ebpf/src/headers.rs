//! Header parsing: Ethernet (up to two 802.1Q/802.1ad tags) → IPv4 (any IHL) or
//! IPv6 (hop-by-hop, routing, destination options, fragment and AH headers
//! skipped) → TCP (any data offset).
//!
//! Every offset is bounded before use so the verifier can prove each access.

use ftp_ebpf_common::{Addr, control::ControlKey, family};

use core::mem::MaybeUninit;

use crate::{addr, packet::Packet};

const ETH_HLEN: usize = 14;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const IPPROTO_TCP: u8 = 6;
const IPV6_HLEN: usize = 40;
/// Extension headers followed before giving up (the packet is then passed).
const MAX_IPV6_EXT: usize = 6;
/// No header chain this long is legitimate; anything longer is not parsed.
const MAX_L4_OFFSET: usize = 512;

/// TCP flag bits (byte 13 of the TCP header).
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

/// What the parser found.
#[derive(PartialEq, Eq)]
pub enum L4 {
    /// A TCP segment; `PacketInfo` is filled in.
    Tcp,
    /// Not IP, or IP but not TCP: not ours.
    Other,
    /// An IP fragment carrying (part of) TCP: it cannot be classified.
    TcpFragment,
    /// Truncated or inconsistent headers: the kernel discards these itself.
    Malformed,
    /// Valid-looking headers we do not follow (a third VLAN tag, an overlong
    /// IPv6 extension chain): they could hide a SYN, so they are dropped.
    Unverifiable,
}

/// The fields the data path needs from a TCP/IP packet. Ports and sequence
/// numbers in host order, addresses in network order. 8-byte aligned so that
/// clearing and copying it are a few wide stores, not a call to a byte loop.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub struct PacketInfo {
    pub src: Addr,
    pub dst: Addr,
    pub seq: u32,
    /// Acknowledgment number (meaningful with the ACK flag).
    pub ack: u32,
    /// Offset of the TCP payload from the start of the frame.
    pub payload_off: u32,
    /// TCP payload length according to the IP header.
    pub payload_len: u32,
    pub sport: u16,
    pub dport: u16,
    /// Offset of the TCP header from the start of the frame.
    pub tcp_off: u16,
    pub family: u8,
    pub flags: u8,
}

impl PacketInfo {
    /// The key of the control connection this segment is on: sent by its
    /// client (`from_client`) or by its server.
    #[inline(always)]
    pub fn control_key(&self, from_client: bool) -> ControlKey {
        if from_client {
            ControlKey::new(self.family, self.src, self.sport, self.dst, self.dport)
        } else {
            ControlKey::new(self.family, self.dst, self.dport, self.src, self.sport)
        }
    }

    /// A SYN opening a connection: SYN without ACK, RST or FIN.
    #[inline(always)]
    pub fn is_syn(&self) -> bool {
        self.flags & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::RST | tcp_flags::FIN)
            == tcp_flags::SYN
    }
}

/// Parses `pkt`: the TCP segment's fields, or what else the frame is.
///
/// The record is filled in place without being cleared first: every field is
/// written on the way to `L4::Tcp`, and clearing it would cost a `memset`
/// call (a byte loop in BPF) on every packet.
#[inline(always)]
pub fn parse<'a, P: Packet>(
    pkt: &P,
    out: &'a mut MaybeUninit<PacketInfo>,
) -> Result<&'a mut PacketInfo, L4> {
    // SAFETY: `parse_into` only writes through this reference, and every
    // field is written before it returns `L4::Tcp`; nothing is read before.
    match parse_into(pkt, unsafe { &mut *out.as_mut_ptr() }) {
        // SAFETY: `L4::Tcp` means every field was written.
        L4::Tcp => Ok(unsafe { out.assume_init_mut() }),
        other => Err(other),
    }
}

/// Parses `pkt` into `info`; see `parse`.
#[inline(always)]
fn parse_into<P: Packet>(pkt: &P, info: &mut PacketInfo) -> L4 {
    let Some((ethertype, l3)) = ethernet(pkt) else {
        return L4::Malformed;
    };
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        return L4::Unverifiable;
    }
    let (l4, ip_payload_len) = match ethertype {
        ETH_P_IPV4 => match ipv4(pkt, l3, info) {
            Ok(v) => v,
            Err(l4) => return l4,
        },
        ETH_P_IPV6 => match ipv6(pkt, l3, info) {
            Ok(v) => v,
            Err(l4) => return l4,
        },
        _ => return L4::Other,
    };
    tcp(pkt, l4, ip_payload_len, info)
}

/// Offset of the L3 header (after any VLAN tags).
#[inline(always)]
pub fn l3_offset<P: Packet>(pkt: &P) -> Option<u32> {
    ethernet(pkt).map(|(_, off)| off as u32)
}

/// Returns the ethertype after any VLAN tags and the offset of the L3 header.
#[inline(always)]
fn ethernet<P: Packet>(pkt: &P) -> Option<(u16, usize)> {
    let mut ethertype = u16::from_be_bytes(pkt.read::<[u8; 2]>(12)?);
    let mut off = ETH_HLEN;
    // Two tags (QinQ) at most; the caller refuses a third.
    for _ in 0..2 {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        ethertype = u16::from_be_bytes(pkt.read::<[u8; 2]>(off + 2)?);
        off += 4;
    }
    Some((ethertype, off))
}

/// IPv4: returns the TCP header offset and the IP payload length.
#[inline(always)]
fn ipv4<P: Packet>(pkt: &P, off: usize, info: &mut PacketInfo) -> Result<(usize, usize), L4> {
    let hdr = pkt.ptr_at::<[u8; 20]>(off).ok_or(L4::Malformed)?;
    // SAFETY: ptr_at checked that the 20 bytes are inside the packet; fields
    // are read in place rather than copying the header.
    let hdr = unsafe { &*hdr };
    if hdr[0] >> 4 != 4 {
        return Err(L4::Malformed);
    }
    let ihl = ((hdr[0] & 0x0f) as usize) * 4;
    if ihl < 20 {
        return Err(L4::Malformed);
    }
    let total = u16::from_be_bytes([hdr[2], hdr[3]]) as usize;
    if total < ihl {
        return Err(L4::Malformed);
    }
    let frag = u16::from_be_bytes([hdr[6], hdr[7]]);
    // More-fragments flag or a non-zero offset: only the first fragment has
    // the TCP header, and the kernel would reassemble past us.
    let fragmented = frag & 0x3fff != 0;
    if hdr[9] != IPPROTO_TCP {
        return Err(L4::Other);
    }
    if fragmented {
        return Err(L4::TcpFragment);
    }
    info.family = family::V4;
    addr::set_v4(&mut info.src, [hdr[12], hdr[13], hdr[14], hdr[15]]);
    addr::set_v4(&mut info.dst, [hdr[16], hdr[17], hdr[18], hdr[19]]);
    Ok((off + ihl, total - ihl))
}

/// IPv6: walks up to `MAX_IPV6_EXT` extension headers to TCP.
#[inline(always)]
fn ipv6<P: Packet>(pkt: &P, off: usize, info: &mut PacketInfo) -> Result<(usize, usize), L4> {
    let hdr = pkt.ptr_at::<[u8; IPV6_HLEN]>(off).ok_or(L4::Malformed)?;
    // SAFETY: ptr_at checked that the 40-byte header is inside the packet.
    let hdr = unsafe { &*hdr };
    if hdr[0] >> 4 != 6 {
        return Err(L4::Malformed);
    }
    let mut remaining = u16::from_be_bytes([hdr[4], hdr[5]]) as usize;
    let mut next = hdr[6];
    info.family = family::V6;
    info.src.copy_from_slice(&hdr[8..24]);
    info.dst.copy_from_slice(&hdr[24..40]);
    let mut cur = off + IPV6_HLEN;
    for _ in 0..MAX_IPV6_EXT {
        let len = match next {
            IPPROTO_TCP => return Ok((cur, remaining)),
            // Hop-by-hop, routing, destination options: (len + 1) * 8 bytes.
            0 | 43 | 60 => {
                let ext = pkt.read::<[u8; 2]>(cur).ok_or(L4::Malformed)?;
                next = ext[0];
                (ext[1] as usize + 1) * 8
            }
            // Fragment header: fixed 8 bytes.
            44 => {
                let ext = pkt.read::<[u8; 4]>(cur).ok_or(L4::Malformed)?;
                let frag = u16::from_be_bytes([ext[2], ext[3]]);
                next = ext[0];
                if frag & 0xfff9 != 0 {
                    // A real fragment. TCP, or headers that may lead to TCP,
                    // cannot be classified: the kernel would reassemble past
                    // us. Other protocols (UDP, ICMPv6) are not ours.
                    return Err(if matches!(next, IPPROTO_TCP | 0 | 43 | 44 | 51 | 60) {
                        L4::TcpFragment
                    } else {
                        L4::Other
                    });
                }
                8
            }
            // Authentication header: (len + 2) * 4 bytes.
            51 => {
                let ext = pkt.read::<[u8; 2]>(cur).ok_or(L4::Malformed)?;
                next = ext[0];
                (ext[1] as usize + 2) * 4
            }
            _ => return Err(L4::Other),
        };
        if len > remaining {
            return Err(L4::Malformed);
        }
        remaining -= len;
        cur += len;
        if cur > MAX_L4_OFFSET {
            return Err(L4::Unverifiable);
        }
    }
    if next == IPPROTO_TCP {
        Ok((cur, remaining))
    } else {
        // A chain longer than we follow might hide TCP the kernel would deliver.
        Err(L4::Unverifiable)
    }
}

/// TCP: ports, flags, sequence number and payload bounds.
#[inline(always)]
fn tcp<P: Packet>(pkt: &P, off: usize, ip_payload_len: usize, info: &mut PacketInfo) -> L4 {
    if off > MAX_L4_OFFSET {
        return L4::Malformed;
    }
    let Some(hdr) = pkt.ptr_at::<[u8; 20]>(off) else {
        return L4::Malformed;
    };
    // SAFETY: ptr_at checked that the 20 bytes are inside the packet.
    let hdr = unsafe { &*hdr };
    let doff = ((hdr[12] >> 4) as usize) * 4;
    if doff < 20 || doff > ip_payload_len {
        return L4::Malformed;
    }
    info.sport = u16::from_be_bytes([hdr[0], hdr[1]]);
    info.dport = u16::from_be_bytes([hdr[2], hdr[3]]);
    info.seq = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    info.ack = u32::from_be_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]);
    info.flags = hdr[13];
    info.tcp_off = off as u16;
    info.payload_off = (off + doff) as u32;
    info.payload_len = (ip_payload_len - doff) as u32;
    L4::Tcp
}
