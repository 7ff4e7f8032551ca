//! Feeds arbitrary bytes to the control-channel parser and checks the invariants
//! every completion must satisfy.
//!
//! Input layout: `[flags, max_lo, max_hi, cut, gap, stream...]`. `flags` bit 0
//! picks the direction, bit 1 calls `resync()` before stream byte `gap`; the
//! stream is split at `cut` and the state copied between the pieces, as it is
//! stored in a BPF map between segments. `max_line` is little-endian (0 = 512).
#![no_main]

use ftp_ebpf_common::parser::{
    Direction, Endpoint, LineKind, LineParser, ParsedLine, RefuseReason, Status, Verb,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, max_lo, max_hi, cut, gap], stream)) = data.split_first_chunk::<5>() else {
        return;
    };
    let dir = if flags & 1 == 0 {
        Direction::ClientToServer
    } else {
        Direction::ServerToClient
    };
    let max_line = u16::from_le_bytes([max_lo, max_hi]);
    let gap = (flags & 2 != 0).then_some(usize::from(gap));
    let cut = usize::from(cut).min(stream.len());

    let mut whole = Vec::new();
    let mut p = LineParser::new();
    for (i, &b) in stream.iter().enumerate() {
        if gap == Some(i) {
            p.resync();
        }
        if p.feed(b, dir, max_line) {
            check(dir, p.parsed());
            // A command ends at LF; a reply line only at CRLF, never one
            // straddling a gap (a bare LF in a reply is text).
            assert_eq!(b, b'\n');
            if dir == Direction::ServerToClient {
                assert!(i > 0 && stream[i - 1] == b'\r' && gap != Some(i));
            }
            whole.push(*p.parsed());
        }
    }

    // The same stream in two pieces, the state passed by value in between.
    let mut split = Vec::new();
    let (a, b) = stream.split_at(cut);
    let p = feed(LineParser::new(), dir, max_line, a, 0, gap, &mut split);
    feed(p, dir, max_line, b, cut, gap, &mut split);
    assert_eq!(whole, split);
});

fn feed(
    mut p: LineParser,
    dir: Direction,
    max_line: u16,
    piece: &[u8],
    offset: usize,
    gap: Option<usize>,
    out: &mut Vec<ParsedLine>,
) -> LineParser {
    for (i, &b) in piece.iter().enumerate() {
        if gap == Some(offset + i) {
            p.resync();
        }
        if p.feed(b, dir, max_line) {
            out.push(*p.parsed());
        }
    }
    p
}

fn check(dir: Direction, l: &ParsedLine) {
    let ep = &l.endpoint;
    match dir {
        Direction::ClientToServer => assert!(l.kind == LineKind::Command && l.code == 0),
        Direction::ServerToClient => {
            assert!(l.kind == LineKind::Reply && (100..=599).contains(&l.code));
            assert_eq!(l.verb, Verb::Other);
        }
    }
    assert_eq!((l._pad, ep._pad), (0, 0));
    assert_eq!(l.status == Status::Refused, l.reason != RefuseReason::None);
    if l.status != Status::Ok {
        assert_eq!(*ep, Endpoint::default());
        return;
    }
    assert_ne!(ep.port, 0);
    match (l.verb, l.code) {
        (Verb::Port, _) | (_, 227) => assert!(ep.family == 4 && ep.addr[4..] == [0; 12]),
        (Verb::Eprt, _) if ep.family == 4 => assert!(ep.addr[4..] == [0; 12]),
        (Verb::Eprt, _) => {
            assert_eq!(ep.family, 6);
            // Never an IPv4 peer disguised as IPv6.
            assert!(!(ep.addr[..10] == [0; 10] && ep.addr[10..12] == [0xff, 0xff]));
        }
        (_, 229) => assert!(ep.family == 0 && ep.addr == [0; 16]),
        _ => panic!("Ok on a line that carries no endpoint: {l:?}"),
    }
}
