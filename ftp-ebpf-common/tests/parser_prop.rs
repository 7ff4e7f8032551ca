//! Property tests: well-formed endpoints generated from random values parse back
//! to exactly those values wherever the stream is split; arbitrary bytes never
//! panic and never yield an inconsistent result.

use ftp_ebpf_common::parser::{
    Direction::{self, ClientToServer as C2S, ServerToClient as S2C},
    LineKind, LineParser, ParsedLine, RefuseReason, Status, Verb,
};
use proptest::prelude::*;

/// Feeds `bytes` cut at `cuts` (positions, any order, out of range ignored),
/// with `resync()` at `gaps`. Each piece gets the state by value and hands it
/// back, as when it is loaded from and stored to a BPF map per segment.
fn run(
    dir: Direction,
    max_line: u16,
    bytes: &[u8],
    cuts: &[usize],
    gaps: &[usize],
) -> Vec<ParsedLine> {
    let mut bounds: Vec<usize> = cuts
        .iter()
        .chain(gaps)
        .copied()
        .filter(|&c| c < bytes.len())
        .collect();
    bounds.extend([0, bytes.len()]);
    bounds.sort_unstable();
    bounds.dedup();
    let mut state = LineParser::new();
    let mut out = Vec::new();
    let mut prev = None;
    for w in bounds.windows(2) {
        if gaps.contains(&w[0]) {
            state.resync();
            prev = None;
        }
        state = feed_piece(
            state,
            dir,
            max_line,
            &bytes[w[0]..w[1]],
            &mut prev,
            &mut out,
        );
    }
    out
}

/// `prev` is the byte fed before `piece` (`None` at the start or after a gap).
fn feed_piece(
    mut p: LineParser,
    dir: Direction,
    max_line: u16,
    piece: &[u8],
    prev: &mut Option<u8>,
    out: &mut Vec<ParsedLine>,
) -> LineParser {
    for &b in piece {
        if p.feed(b, dir, max_line) {
            check_invariants(dir, p.parsed());
            // A command ends at LF; a reply only at CRLF (bare LF is reply text).
            assert_eq!(b, b'\n');
            if dir == S2C {
                assert_eq!(*prev, Some(b'\r'));
            }
            out.push(*p.parsed());
        }
        *prev = Some(b);
    }
    p
}

/// What must hold for every completion, whatever the input.
fn check_invariants(dir: Direction, l: &ParsedLine) {
    let ep = &l.endpoint;
    match dir {
        C2S => assert!(l.kind == LineKind::Command && l.code == 0, "{l:?}"),
        S2C => assert!(
            l.kind == LineKind::Reply && (100..=599).contains(&l.code),
            "{l:?}"
        ),
    }
    assert_eq!(l._pad, 0);
    assert_eq!(ep._pad, 0);
    assert_eq!(
        l.status == Status::Refused,
        l.reason != RefuseReason::None,
        "{l:?}"
    );
    if l.status != Status::Ok {
        assert_eq!(*ep, Default::default(), "{l:?}");
        return;
    }
    assert_ne!(ep.port, 0, "{l:?}");
    let carrier = match (dir, l.verb, l.code) {
        (C2S, Verb::Port, _) => ep.family == 4,
        (C2S, Verb::Eprt, _) => ep.family == 4 || ep.family == 6,
        (S2C, _, 227) => ep.family == 4,
        (S2C, _, 229) => ep.family == 0 && ep.addr == [0; 16],
        _ => false,
    };
    assert!(carrier, "{l:?}");
    if ep.family == 4 {
        assert_eq!(ep.addr[4..], [0; 12], "{l:?}");
    }
}

/// Random split points.
fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..200, 0..6)
}

/// Random text without digits or commas (so it cannot form a number run).
fn words() -> impl Strategy<Value = String> {
    "[A-Za-z .:=!-]{0,30}"
}

fn random_case(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// RFC 2428 delimiters that cannot be part of the field they separate.
fn delimiter() -> impl Strategy<Value = u8> {
    (33u8..=126).prop_filter("not address text", |b| {
        !b.is_ascii_alphanumeric() && !b".:%".contains(b)
    })
}

/// IPv6 text for `groups`: optional `::` over `zeros` (a zeroed window), random
/// case and leading zeros, optional dotted IPv4 tail.
fn ipv6_text(
    groups: [u16; 8],
    zeros: Option<(usize, usize)>,
    upper: u64,
    pad: [u8; 8],
    v4_tail: bool,
) -> String {
    let hex_groups = if v4_tail { 6 } else { 8 };
    let piece = |i: usize| {
        let w = usize::from(pad[i] % 4) + 1;
        let s = format!("{:0w$x}", groups[i]);
        random_case(&s, upper >> (i * 4))
    };
    let mut pieces: Vec<String> = (0..hex_groups).map(piece).collect();
    if v4_tail {
        let [a, b] = groups[6].to_be_bytes();
        let [c, d] = groups[7].to_be_bytes();
        pieces.push(format!("{a}.{b}.{c}.{d}"));
    }
    match zeros {
        Some((start, len)) if len > 0 && start + len <= hex_groups => {
            let left = pieces[..start].join(":");
            let right = pieces[start + len..].join(":");
            format!("{left}::{right}")
        }
        _ => pieces.join(":"),
    }
}

fn addr16(groups: [u16; 8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    for (i, g) in groups.iter().enumerate() {
        a[2 * i..2 * i + 2].copy_from_slice(&g.to_be_bytes());
    }
    a
}

fn mapped_or_compatible(a: &[u8; 16]) -> bool {
    a[..10] == [0; 10]
        && ((a[10..12] == [0xff, 0xff])
            || (a[10..12] == [0, 0] && u32::from_be_bytes([a[12], a[13], a[14], a[15]]) > 1))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn reply_227_round_trips(
        addr: [u8; 4], port in 1u16.., pre in words(), post in words(),
        paren: bool, dot: bool, spaces in prop::collection::vec(0usize..3, 5), multi: bool, cuts in cuts(),
    ) {
        let [p1, p2] = port.to_be_bytes();
        let nums = [addr[0], addr[1], addr[2], addr[3], p1, p2];
        let mut run_text = nums[0].to_string();
        for (n, sp) in nums[1..].iter().zip(&spaces) {
            run_text.push(',');
            run_text.push_str(&" ".repeat(*sp));
            run_text.push_str(&n.to_string());
        }
        let (open, close) = if paren { ("(", ")") } else { ("", "") };
        let line = format!("{pre} {open}{run_text}{close}{}{post}", if dot { "." } else { "" });
        let text = if multi {
            format!("227-{line}\r\n227 {post}\r\n")
        } else {
            format!("227 {line}\r\n")
        };
        let got = run(S2C, 0, text.as_bytes(), &cuts, &[]);
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!(got[0].status, Status::Ok);
        prop_assert_eq!(got[0].endpoint.port, port);
        prop_assert_eq!(got[0].endpoint.addr[..4].to_vec(), addr.to_vec());
    }

    #[test]
    fn port_round_trips(addr: [u8; 4], port in 1u16.., case: u64, lead in 0usize..3, trail in 0usize..3, cuts in cuts()) {
        let [p1, p2] = port.to_be_bytes();
        let text = format!("{}{}{},{},{},{},{},{}{}\r\n", random_case("port", case), " ".repeat(lead + 1),
            addr[0], addr[1], addr[2], addr[3], p1, p2, " ".repeat(trail));
        let got = run(C2S, 0, text.as_bytes(), &cuts, &[]);
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!((got[0].verb, got[0].status, got[0].endpoint.port, got[0].endpoint.family), (Verb::Port, Status::Ok, port, 4));
        prop_assert_eq!(got[0].endpoint.addr[..4].to_vec(), addr.to_vec());
    }

    #[test]
    fn eprt_v4_round_trips(addr: [u8; 4], port in 1u16.., d in delimiter(), case: u64, cuts in cuts()) {
        let d = char::from(d);
        let text = format!("{} {d}1{d}{}.{}.{}.{}{d}{port}{d}\r\n", random_case("eprt", case), addr[0], addr[1], addr[2], addr[3]);
        let got = run(C2S, 0, text.as_bytes(), &cuts, &[]);
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!((got[0].verb, got[0].status, got[0].endpoint.port, got[0].endpoint.family), (Verb::Eprt, Status::Ok, port, 4));
        prop_assert_eq!(got[0].endpoint.addr[..4].to_vec(), addr.to_vec());
    }

    #[test]
    fn eprt_v6_round_trips(
        groups0: [u16; 8], zero_start in 0usize..8, zero_len in 0usize..=8, compress: bool,
        upper: u64, pad: [u8; 8], v4_tail: bool, port in 1u16.., d in delimiter(), cuts in cuts(),
    ) {
        let mut groups = groups0;
        let end = (zero_start + zero_len).min(8);
        for g in &mut groups[zero_start..end] {
            *g = 0;
        }
        let zeros = compress.then_some((zero_start, end - zero_start));
        let addr_text = ipv6_text(groups, zeros, upper, pad, v4_tail);
        let d = char::from(d);
        let text = format!("EPRT {d}2{d}{addr_text}{d}{port}{d}\r\n");
        let got = run(C2S, 0, text.as_bytes(), &cuts, &[]);
        prop_assert_eq!(got.len(), 1);
        let addr = addr16(groups);
        if mapped_or_compatible(&addr) {
            prop_assert_eq!((got[0].status, got[0].reason), (Status::Refused, RefuseReason::MappedAddress), "{}", text);
        } else {
            prop_assert_eq!((got[0].status, got[0].endpoint.port, got[0].endpoint.family), (Status::Ok, port, 6), "{}", text);
            prop_assert_eq!(got[0].endpoint.addr, addr, "{}", text);
        }
    }

    #[test]
    fn reply_229_round_trips(port in 1u16.., d in (33u8..=126).prop_filter("no digit", |b| !b.is_ascii_digit()),
        zeros in 0usize..3, pre in words(), cuts in cuts()) {
        let d = char::from(d);
        let text = format!("229 {pre}({d}{d}{d}{}{port}{d})\r\n", "0".repeat(zeros.min(5 - port.to_string().len())));
        let got = run(S2C, 0, text.as_bytes(), &cuts, &[]);
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!((got[0].code, got[0].status, got[0].endpoint.port, got[0].endpoint.family), (229, Status::Ok, port, 0), "{}", text);
    }

    /// Text a server echoes from a command (never with CRLF in it: a command
    /// ends there whichever way the server frames commands), full of bare LF,
    /// bare CR and whole announcements, in a single-line reply, the first line
    /// of a multi-line one, or a listing line inside one (`STAT`): the echoing
    /// reply completes once, with its own code and no endpoint.
    #[test]
    fn echoed_text_never_announces(code in prop::sample::select(&[211u16, 213, 214, 250, 257, 500, 550][..]),
        place in 0usize..3, picks in prop::collection::vec(0usize..16, 0..48), cuts in cuts()) {
        const ECHO: [&[u8]; 16] = [b"\n", b"\r", b"\r\r", b"\x00", b" ", b"/tmp/a", b"(1,2,3,4,5,6)", b"(|||5|)",
            b"227 Entering Passive Mode (198,18,0,1,156,100)", b"229 Entering Extended Passive Mode (|||40000|)",
            b"227-", b"229 ", b"211 ", b"213 ", b"550 ", b"\xff"];
        let mut echo = Vec::new();
        for &i in &picks {
            for &b in ECHO[i] {
                if b == b'\n' && echo.last() == Some(&b'\r') {
                    echo.push(b' ');
                }
                echo.push(b);
            }
        }
        let mut text = Vec::new();
        match place {
            0 => text.extend(format!("{code} ").bytes()),
            1 => text.extend(format!("{code}-").bytes()),
            _ => text.extend(format!("{code}-Status of /:\r\n-rw-r--r--   1 ftp  ftp  0 Jan 01 00:00 ").bytes()),
        }
        text.extend(&echo);
        text.extend(b"\r\n");
        if place > 0 {
            text.extend(format!("{code} End of status.\r\n").bytes());
        }
        let got = run(S2C, 0, &text, &cuts, &[]);
        let want = ParsedLine { kind: LineKind::Reply, code, ..ParsedLine::default() };
        prop_assert_eq!(got, vec![want], "{:?}", String::from_utf8_lossy(&text));
    }

    /// Arbitrary bytes, arbitrary splits and gaps, any line limit.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), c2s: bool,
        max_line in prop_oneof![Just(0u16), 1u16..64, any::<u16>()], cuts in cuts(), gaps in prop::collection::vec(0usize..2048, 0..3)) {
        run(if c2s { C2S } else { S2C }, max_line, &bytes, &cuts, &gaps);
    }

    /// Bytes from the alphabet of the syntax, so that deep states are reached.
    #[test]
    fn syntax_soup_never_panics(picks in prop::collection::vec(0usize..26, 0..2048), c2s: bool,
        max_line in prop_oneof![Just(0u16), 1u16..64], gaps in prop::collection::vec(0usize..2048, 0..3)) {
        const SOUP: [&[u8]; 26] = [b"0", b"1", b"2", b"5", b"9", b"255", b"65535", b",", b", ", b"|", b"(", b")",
            b".", b":", b"::", b"ffff", b" ", b"\r\n", b"\n", b"\r", b"227", b"229", b"227-", b"PORT ", b"EPRT |2|", b"\xff"];
        let bytes: Vec<u8> = picks.iter().flat_map(|&i| SOUP[i].iter().copied()).collect();
        run(if c2s { C2S } else { S2C }, max_line, &bytes, &[], &gaps);
    }
}
