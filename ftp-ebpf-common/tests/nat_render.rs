//! `--nat-rewrite` replaces a `227` naming the local address by one of the
//! same length naming the external address: the rendering fits exactly,
//! keeps what it can of the text, and reads back to the same endpoint.
//! `PORT` and `EPRT` (both families) are written in their natural length.

use std::net::Ipv6Addr;

use ftp_ebpf_common::nat::REWRITE_MAX;
use ftp_ebpf_common::nat::render::{Rendering, kind};
use ftp_ebpf_common::parser::{Direction, LineKind, LineParser, Status};

/// Renders and checks the length; the text as a string.
fn render(len: usize, addr: [u8; 4], port: u16) -> Option<String> {
    let mut out = [0xaa; REWRITE_MAX];
    let r = Rendering::reply_227(len, addr, port)?;
    assert_eq!(usize::from(r.len), len);
    assert!(r.write(&mut out));
    assert!(out[len..].iter().all(|&b| b == 0xaa), "written past {len}");
    Some(String::from_utf8(out[..len].to_vec()).expect("ascii"))
}

#[test]
fn a_typical_reply_keeps_its_text_and_length() {
    // vsftpd's own reply for 198.19.0.1 port 40000, rewritten to a public
    // address of the same length.
    let original = "227 Entering Passive Mode (198,19,0,1,156,64).\r\n";
    let got = render(original.len(), [198, 18, 1, 1], 40_000).expect("fits");
    assert_eq!(got, "227 Entering Passive Mode  (198,18,1,1,156,64)\r\n");
    assert_eq!(got.len(), original.len());
}

#[test]
fn a_short_reply_loses_its_text_and_a_too_short_one_is_refused() {
    let min = Rendering::min_227_len([203, 0, 113, 200], 65_535);
    assert_eq!(min, "227 (203,0,113,200,255,255)\r\n".len());
    assert_eq!(
        render(min, [203, 0, 113, 200], 65_535).as_deref(),
        Some("227 (203,0,113,200,255,255)\r\n")
    );
    assert_eq!(
        render(min + 3, [203, 0, 113, 200], 65_535).as_deref(),
        Some("227    (203,0,113,200,255,255)\r\n")
    );
    assert_eq!(render(min - 1, [203, 0, 113, 200], 65_535), None);
    assert_eq!(render(REWRITE_MAX + 1, [1, 2, 3, 4], 1024), None);
    let longest = render(REWRITE_MAX, [1, 2, 3, 4], 1024).expect("fits");
    assert!(longest.starts_with("227 Entering Passive Mode   "));
    assert!(longest.ends_with(" (1,2,3,4,4,0)\r\n"), "{longest}");
}

#[test]
fn every_rendering_parses_back_to_its_endpoint() {
    // Every length for a spread of addresses and ports: ftpct's own
    // parser (which scans as clients do) reads back what was written.
    let addrs = [
        [1, 2, 3, 4],
        [10, 0, 0, 5],
        [198, 18, 1, 1],
        [255, 255, 255, 255],
    ];
    let ports = [1024, 40_000, 65_535, 2_570];
    for addr in addrs {
        for port in ports {
            for len in Rendering::min_227_len(addr, port)..=REWRITE_MAX {
                let text = render(len, addr, port).expect("fits");
                let mut p = LineParser::new();
                let mut done = 0;
                for (i, b) in text.bytes().enumerate() {
                    if p.feed(b, Direction::ServerToClient, 0) {
                        done = i + 1;
                    }
                }
                assert_eq!(done, len, "{text:?} completes at its end");
                let line = p.parsed();
                assert_eq!((line.kind, line.code), (LineKind::Reply, 227));
                assert_eq!(line.status, Status::Ok, "{text:?}");
                assert_eq!(line.endpoint.addr[..4], addr, "{text:?}");
                assert_eq!(line.endpoint.port, port, "{text:?}");
                assert_eq!(usize::from(p.unit_len()), len, "{text:?}");
            }
        }
    }
}

/// Feeds `text` as server bytes; the `unit_len` of each completion.
fn completions(p: &mut LineParser, text: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    for &b in text {
        if p.feed(b, Direction::ServerToClient, 0) {
            out.push(p.unit_len());
        }
    }
    out
}

#[test]
fn a_completed_reply_says_how_many_bytes_back_it_began() {
    // The rewrite replaces the whole reply, so it must know where it began:
    // every line of a multi-line reply counts, stray text between replies
    // does not, and a reply the parser lost bytes of is not placeable.
    let mut p = LineParser::new();
    let single = b"227 Entering Passive Mode (1,2,3,4,156,64).\r\n";
    let multi = b"227-Entering Passive Mode\r\n (1,2,3,4,156,64)\r\n227 OK\r\n";
    let mut stream = Vec::new();
    stream.extend_from_slice(single);
    stream.extend_from_slice(b"stray text\r\n");
    stream.extend_from_slice(multi);
    stream.extend_from_slice(b"200\r\n");
    assert_eq!(
        completions(&mut p, &stream),
        [single.len() as u16, multi.len() as u16, 5]
    );

    let mut p = LineParser::new();
    completions(&mut p, b"227-Entering Passive Mode\r\n");
    p.resync();
    assert_eq!(
        completions(&mut p, b"lost\r\n227 (1,2,3,4,156,64)\r\n"),
        [u16::MAX]
    );
    p.restart();
    assert_eq!(completions(&mut p, single), [single.len() as u16]);
}

/// A command rendering as text, checked against its length.
fn command(k: u8, addr: [u8; 4], port: u16) -> String {
    let mut a = [0; 16];
    a[..4].copy_from_slice(&addr);
    command_naming(k, a, port)
}

/// A command rendering naming a 16-byte address (IPv4 in the first 4).
fn command_naming(k: u8, addr: [u8; 16], port: u16) -> String {
    let r = Rendering::command(k, &addr, port);
    let mut out = [0u8; REWRITE_MAX];
    assert!(r.write(&mut out));
    String::from_utf8(out[..usize::from(r.len)].to_vec()).expect("ascii")
}

#[test]
fn port_and_eprt_are_written_in_their_natural_length() {
    assert_eq!(
        command(kind::PORT, [198, 18, 10, 1], 40_000),
        "PORT 198,18,10,1,156,64\r\n"
    );
    assert_eq!(
        command(kind::PORT, [1, 2, 3, 4], 1024),
        "PORT 1,2,3,4,4,0\r\n"
    );
    assert_eq!(
        command(kind::EPRT_V4, [198, 18, 10, 1], 40_000),
        "EPRT |1|198.18.10.1|40000|\r\n"
    );
    assert_eq!(
        command(kind::EPRT_V4, [255, 255, 255, 255], 65_535),
        "EPRT |1|255.255.255.255|65535|\r\n"
    );
    assert_eq!(
        command(kind::EPRT_V4, [1, 0, 0, 9], 7),
        "EPRT |1|1.0.0.9|7|\r\n"
    );
}

#[test]
fn every_command_rendering_parses_back_to_its_endpoint() {
    let addrs = [
        [1, 2, 3, 4],
        [10, 0, 0, 5],
        [198, 18, 1, 1],
        [255, 255, 255, 255],
    ];
    let ports = [1024, 40_000, 65_535, 2_570, 9, 99, 999];
    for addr in addrs {
        for port in ports {
            for k in [kind::PORT, kind::EPRT_V4] {
                let text = command(k, addr, port);
                let (got, got_port) = parse_back(&text);
                assert_eq!(
                    (got[..4].to_vec(), got_port),
                    (addr.to_vec(), port),
                    "{text:?}"
                );
            }
        }
    }
}

/// The endpoint the parser reads from a rendered command, after checking
/// that it is one accepted command of the rendering's length.
fn parse_back(text: &str) -> ([u8; 16], u16) {
    let mut p = LineParser::new();
    let mut done = 0;
    for (i, b) in text.bytes().enumerate() {
        if p.feed(b, Direction::ClientToServer, 0) {
            done = i + 1;
        }
    }
    assert_eq!(done, text.len(), "{text:?}");
    assert_eq!(usize::from(p.unit_len()), text.len(), "{text:?}");
    let line = p.parsed();
    assert_eq!(line.kind, LineKind::Command, "{text:?}");
    assert_eq!(line.status, Status::Ok, "{text:?}");
    (line.endpoint.addr, line.endpoint.port)
}

#[test]
fn eprt_for_ipv6_writes_the_address_in_full() {
    let addr: Ipv6Addr = "2001:db8:10::1".parse().unwrap();
    assert_eq!(
        command_naming(kind::EPRT_V6, addr.octets(), 40_000),
        "EPRT |2|2001:0db8:0010:0000:0000:0000:0000:0001|40000|\r\n"
    );
    let addr: Ipv6Addr = "fe80:abcd:ef01:2345:6789:a:b:ffff".parse().unwrap();
    assert_eq!(
        command_naming(kind::EPRT_V6, addr.octets(), 7),
        "EPRT |2|fe80:abcd:ef01:2345:6789:000a:000b:ffff|7|\r\n"
    );
}

#[test]
fn every_ipv6_eprt_rendering_parses_back_to_its_endpoint() {
    let addrs = [
        "2001:db8::1",
        "::",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:db8:a:b:c:d:e:f",
    ];
    for addr in addrs {
        let addr: Ipv6Addr = addr.parse().unwrap();
        for port in [1, 99, 1024, 40_000, 65_535] {
            let text = command_naming(kind::EPRT_V6, addr.octets(), port);
            assert_eq!(parse_back(&text), (addr.octets(), port), "{text:?}");
        }
    }
}
