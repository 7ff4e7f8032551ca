//! 100,000 random and mutated frames through the compiled XDP program: none
//! that the kernel would deliver as TCP to a guarded port may pass, because no
//! expectation matches any of them (the one live expectation is for a key the
//! generator never produces) and no flow exists. Needs root.
//!
//! The verdicts are judged by `reference_view`, an independent parse of what
//! the kernel would accept, not by the program's own header code.

mod common;

use common::{Harness, Rng, SYN, Segment, XDP_PASS};
use ftp_ebpf_common::counters::{Counter, INGRESS_VERDICTS};

const FRAMES: usize = 100_000;

/// What the kernel's stack would see: `Some((dport, flags))` for a TCP
/// segment it would accept (well-formed headers within the frame), else None.
fn reference_view(frame: &[u8]) -> Option<(u16, u8)> {
    let get = |i: usize| frame.get(i).copied();
    let be16 = |i: usize| Some(u16::from_be_bytes([get(i)?, get(i + 1)?]));
    let mut ethertype = be16(12)?;
    let mut off = 14;
    let mut tags = 0;
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        tags += 1;
        if tags > 2 {
            // The program drops these; the kernel might deliver them to a
            // stacked VLAN device. Either way: not a pass we need to judge.
            return None;
        }
        ethertype = be16(off + 2)?;
        off += 4;
    }
    let (proto_off, l4_len) = match ethertype {
        0x0800 => {
            let vihl = get(off)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            let total = usize::from(be16(off + 2)?);
            if vihl >> 4 != 4 || ihl < 20 || total < ihl || off + total > frame.len() {
                return None;
            }
            if be16(off + 6)? & 0x3fff != 0 || get(off + 9)? != 6 {
                return None; // fragments and non-TCP
            }
            (off + ihl, total - ihl)
        }
        0x86dd => {
            if get(off)? >> 4 != 6 {
                return None;
            }
            let mut remaining = usize::from(be16(off + 4)?);
            if off + 40 + remaining > frame.len() {
                return None;
            }
            let mut next = get(off + 6)?;
            let mut cur = off + 40;
            loop {
                let len = match next {
                    6 => break,
                    0 | 43 | 60 => (usize::from(get(cur + 1)?) + 1) * 8,
                    44 => {
                        if be16(cur + 2)? & 0xfff9 != 0 {
                            return None;
                        }
                        8
                    }
                    51 => (usize::from(get(cur + 1)?) + 2) * 4,
                    _ => return None,
                };
                next = get(cur)?;
                if len > remaining {
                    return None;
                }
                remaining -= len;
                cur += len;
            }
            (cur, remaining)
        }
        _ => return None,
    };
    let doff = usize::from(get(proto_off + 12)? >> 4) * 4;
    if doff < 20 || doff > l4_len || proto_off + doff > frame.len() {
        return None;
    }
    Some((be16(proto_off + 2)?, get(proto_off + 13)?))
}

fn random_addr(rng: &mut Rng, v6: bool) -> String {
    if v6 {
        format!("2001:db8::{:x}:{:x}", rng.below(0xffff), rng.below(0xffff))
    } else {
        format!(
            "198.{}.{}.{}",
            18 + rng.below(2),
            rng.below(256),
            1 + rng.below(254)
        )
    }
}

/// A plausible TCP frame to a random guarded port, then mutated.
fn mutated_frame(rng: &mut Rng) -> Vec<u8> {
    let v6 = rng.below(2) == 0;
    let dport = 1024 + rng.below(64_512) as u16;
    let flags = match rng.below(4) {
        0 => SYN,
        1 => rng.byte(),
        2 => SYN | rng.byte() & 0x3d,
        _ => 0x10,
    };
    let tags: Vec<u16> = (0..rng.below(4)).map(|_| rng.below(4096) as u16).collect();
    let mut frame = Segment::new(
        &random_addr(rng, v6),
        rng.below(65_536) as u16,
        &random_addr(rng, v6),
        dport,
    )
    .flags(flags)
    .seq(rng.next() as u32)
    .vlans(&tags)
    .payload(&vec![0x41; rng.below(40) as usize])
    .frame();
    if v6 && rng.below(3) == 0 {
        insert_ipv6_extensions(rng, &mut frame, 14 + 4 * tags.len());
    }
    for _ in 0..rng.below(4) {
        let at = rng.below(frame.len() as u64) as usize;
        frame[at] = rng.byte();
    }
    if rng.below(8) == 0 {
        frame.truncate(14 + rng.below(frame.len() as u64 - 13) as usize);
    }
    frame
}

/// Inserts 1-7 extension headers (hop-by-hop, routing, destination options)
/// between the IPv6 header at `l3` and TCP.
fn insert_ipv6_extensions(rng: &mut Rng, frame: &mut Vec<u8>, l3: usize) {
    let count = 1 + rng.below(7) as usize;
    let mut exts = Vec::new();
    let first_next = frame[l3 + 6];
    let kinds: Vec<u8> = (0..count)
        .map(|_| [0u8, 43, 60][rng.below(3) as usize])
        .collect();
    for i in 0..count {
        let next = if i + 1 < count {
            kinds[i + 1]
        } else {
            first_next
        };
        let units = rng.below(3) as usize;
        let mut ext = vec![next, units as u8];
        ext.resize((units + 1) * 8, 0);
        exts.extend(ext);
    }
    frame[l3 + 6] = kinds[0];
    let plen = u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]) as usize + exts.len();
    frame[l3 + 4..l3 + 6].copy_from_slice(&(plen as u16).to_be_bytes());
    frame.splice(l3 + 40..l3 + 40, exts);
}

#[test]
fn no_random_or_mutated_frame_reaches_a_guarded_port() {
    let mut rng = Rng::from_env(0x5eed_f7c7);
    let seed = rng.0;
    let h = Harness::new();
    let mut judged = 0usize;
    for i in 0..FRAMES {
        let frame = if i % 4 == 0 {
            // BPF_PROG_TEST_RUN (like a NIC) needs at least an Ethernet header.
            let len = 14 + rng.below(146) as usize;
            (0..len).map(|_| rng.byte()).collect()
        } else {
            mutated_frame(&mut rng)
        };
        let verdict = h.ingress(&frame);
        if let Some((dport, _flags)) = reference_view(&frame) {
            if dport >= 1024 {
                judged += 1;
                assert_ne!(
                    verdict, XDP_PASS,
                    "seed {seed:#x}, frame {i}: TCP to guarded port {dport} passed: {frame:02x?}"
                );
            }
        }
    }
    assert_eq!(h.counter(Counter::SynAdmitted), 0);
    // Every path of the program counts each packet exactly once, by verdict.
    let verdicts: u64 = INGRESS_VERDICTS.iter().map(|c| h.counter(*c)).sum();
    assert_eq!(verdicts, FRAMES as u64, "verdict counters must add up");
    assert!(
        judged > FRAMES / 3,
        "only {judged} frames were TCP to guarded ports"
    );
    eprintln!("{FRAMES} frames, {judged} judged as TCP to guarded ports, none passed");
}
