//! Malformed endpoints and why they are refused (every `RefuseReason`), and the
//! accepted edge forms right next to them (IPv6 text forms in particular).

use ftp_ebpf_common::parser::{
    Direction::{self, ClientToServer as C2S, ServerToClient as S2C},
    Endpoint, LineKind, LineParser, ParsedLine, RefuseReason as R, Status, Verb, feed_all,
};

fn run(dir: Direction, pieces: &[&[u8]]) -> Vec<ParsedLine> {
    let mut p = LineParser::new();
    let mut out = Vec::new();
    for piece in pieces {
        feed_all(&mut p, piece, dir, 0, |l| out.push(*l));
    }
    out
}

/// The single completion of `line` (with CRLF appended), checked at every split.
fn parse(dir: Direction, line: &[u8]) -> ParsedLine {
    let mut input = line.to_vec();
    input.extend(b"\r\n");
    let whole = run(dir, &[&input]);
    assert_eq!(whole.len(), 1, "{:?}", String::from_utf8_lossy(line));
    for i in 0..=input.len() {
        let (a, b) = input.split_at(i);
        assert_eq!(run(dir, &[a, b]), whole, "split at {i}");
    }
    whole[0]
}

/// `(direction, line without CRLF, expected verb, expected reason)`.
type Row = (Direction, &'static [u8], R);

fn refusals() -> Vec<Row> {
    let fifty = "1".repeat(50);
    let long_port = format!("PORT 1,2,3,4,5,6{}", " ".repeat(513));
    let long_227 = format!("227 {} (1,2,3,4,5,6)", "x".repeat(600));
    let long_eprt = format!("EPRT |1|1.2.3.4|5|{}", " ".repeat(600));
    let long_229 = format!("229 {}(|||5|)", "x".repeat(600));
    let leak = |s: String| -> &'static [u8] { s.leak().as_bytes() };
    vec![
        // Numbers above 255 or longer than 3 digits.
        (C2S, b"PORT 256,1,1,1,1,1", R::NumberTooLarge),
        (C2S, b"PORT 1,2,3,4,5,0256", R::NumberTooLarge),
        (
            C2S,
            leak(format!("PORT 1,2,3,4,5,{fifty}")),
            R::NumberTooLarge,
        ),
        // curl tests/data/test237: "FTP getting bad host in 227-response to PASV".
        (
            S2C,
            b"227 Entering Passive Mode (1216,256,2,127,127,127)",
            R::NumberTooLarge,
        ),
        (
            S2C,
            leak(format!("227 Entering Passive Mode (1,2,3,4,5,{fifty})")),
            R::NumberTooLarge,
        ),
        (
            S2C,
            leak(format!("227 Entering Passive Mode ({fifty},1,1,1,1,1)")),
            R::NumberTooLarge,
        ),
        // Port 0.
        (C2S, b"PORT 1,2,3,4,0,0", R::PortZero),
        (
            S2C,
            b"227 Entering Passive Mode (1,2,3,4,0,0).",
            R::PortZero,
        ),
        (C2S, b"EPRT |1|1.2.3.4|0|", R::PortZero),
        (C2S, b"EPRT |1|1.2.3.4|00000|", R::PortZero),
        (
            S2C,
            b"229 Entering Extended Passive Mode (|||0|)",
            R::PortZero,
        ),
        // Missing fields.
        (C2S, b"PORT", R::MissingFields),
        (C2S, b"PORT   ", R::MissingFields),
        (C2S, b"PORT 1,2,3,4,5", R::MissingFields),
        (C2S, b"PORT 1,2,3,4,5,", R::MissingFields),
        (
            S2C,
            b"227 Entering Passive Mode (1,2,3,4,5)",
            R::MissingFields,
        ),
        (S2C, b"227 Entering Passive Mode 1,2", R::MissingFields),
        (C2S, b"EPRT", R::MissingFields),
        (C2S, b"EPRT |1|1.2.3.4|", R::MissingFields),
        (C2S, b"EPRT |1|1.2.3.4|5", R::MissingFields),
        (C2S, b"EPRT |1|1.2.3.4||", R::MissingFields),
        (C2S, b"EPRT ||1.2.3.4|5|", R::MissingFields),
        (C2S, b"EPRT |1||5|", R::MissingFields),
        (C2S, b"EPRT |2||5|", R::MissingFields),
        (
            S2C,
            b"229 Entering Extended Passive Mode (|||",
            R::MissingFields,
        ),
        (
            S2C,
            b"229 Entering Extended Passive Mode (||||)",
            R::MissingFields,
        ),
        (
            S2C,
            b"229 Entering Extended Passive Mode (|||5|",
            R::MissingFields,
        ),
        // More than six numbers.
        (C2S, b"PORT 1,2,3,4,5,6,7", R::TooManyNumbers),
        (C2S, b"PORT 1,2,3,4,5,6,", R::TooManyNumbers),
        (
            S2C,
            b"227 Entering Passive Mode (1,2,3,4,5,6,7)",
            R::TooManyNumbers,
        ),
        // Non-digits where digits belong, trailing garbage.
        (C2S, b"PORT 1,2,3a,4,5,6", R::BadSyntax),
        (C2S, b"PORT 1, 2,3,4,5,6", R::BadSyntax),
        (C2S, b"PORT 1 ,2,3,4,5,6", R::BadSyntax),
        (C2S, b"PORT 1,,3,4,5,6", R::BadSyntax),
        (C2S, b"PORT ,1,2,3,4,5", R::BadSyntax),
        (C2S, b"PORT 1,2,3,4,5,6 x", R::BadSyntax),
        (C2S, b"PORT 1,2,3,4,5,6\t", R::BadSyntax),
        (C2S, b"PORT -1,2,3,4,5,6", R::BadSyntax),
        (C2S, b"EPRT |1|1.2.3.4|5|x", R::BadSyntax),
        (C2S, b"EPRT |1|1.2.3.4|5a|", R::BadSyntax),
        (C2S, b"EPRT |1|1.2.3.4| 5|", R::BadSyntax),
        (
            S2C,
            b"229 Entering Extended Passive Mode (|||12a|)",
            R::BadSyntax,
        ),
        (
            S2C,
            b"229 Entering Extended Passive Mode (|||5|x",
            R::BadSyntax,
        ),
        (
            S2C,
            b"229 Entering Extended Passive Mode (|||5||)",
            R::BadSyntax,
        ),
        // Longer than max_line (512).
        (C2S, leak(long_port), R::LineTooLong),
        (S2C, leak(long_227), R::LineTooLong),
        (C2S, leak(long_eprt), R::LineTooLong),
        (S2C, leak(long_229), R::LineTooLong),
        // Delimiters missing, outside 33..=126, or not all equal.
        (
            S2C,
            b"229 Entering Extended Passive Mode (||!5|)",
            R::BadDelimiter,
        ),
        (
            S2C,
            b"229 Entering Extended Passive Mode (|||5!)",
            R::BadDelimiter,
        ),
        (
            S2C,
            b"229 Entering Extended Passive Mode ( ||5|)",
            R::BadDelimiter,
        ),
        (
            S2C,
            b"229 Entering Extended Passive Mode (||192.168.0.1|5|)",
            R::BadDelimiter,
        ),
        (C2S, b"EPRT \x01", R::BadDelimiter),
        (C2S, b"EPRT \xff1\xff1.2.3.4\xff5\xff", R::BadDelimiter),
        (C2S, b"EPRT |1#1.2.3.4#5#", R::BadDelimiter),
        (C2S, b"EPRT |1|1.2.3.4#5#", R::BadDelimiter),
        (C2S, b"EPRT |1|1.2.3.4|5#", R::BadDelimiter),
        // Address families other than 1 and 2.
        (C2S, b"EPRT |3|1.2.3.4|5|", R::BadFamily),
        (C2S, b"EPRT |0|1.2.3.4|5|", R::BadFamily),
        (C2S, b"EPRT |12|1.2.3.4|5|", R::BadFamily),
        (C2S, b"EPRT |x|1.2.3.4|5|", R::BadFamily),
        // Addresses that are not valid text of their family.
        (C2S, b"EPRT |1|1.2.3|5|", R::BadAddress),
        (C2S, b"EPRT |1|1.2.3.256|5|", R::BadAddress),
        (C2S, b"EPRT |1|1.2.3.0001|5|", R::BadAddress),
        (C2S, b"EPRT |1|1.2.3.4.5|5|", R::BadAddress),
        (C2S, b"EPRT |1|1..2.3|5|", R::BadAddress),
        (C2S, b"EPRT |1|.1.2.3|5|", R::BadAddress),
        (C2S, b"EPRT |1|1.2.3.4 |5|", R::BadAddress),
        (C2S, b"EPRT |1|::1|5|", R::BadAddress),
        (C2S, b"EPRT |2|1::2::3|5|", R::BadAddress),
        (C2S, b"EPRT |2|12345::|5|", R::BadAddress),
        (C2S, b"EPRT |2|1:2:3:4:5:6:7:8:9|5|", R::BadAddress),
        (C2S, b"EPRT |2|1:2:3:4:5:6:7|5|", R::BadAddress),
        (C2S, b"EPRT |2|1:2:3:4:5:6:7:8::|5|", R::BadAddress),
        (C2S, b"EPRT |2|::1:2:3:4:5:6:7:8|5|", R::BadAddress),
        (C2S, b"EPRT |2|1:2:3:4::5:6:7:8|5|", R::BadAddress),
        (C2S, b"EPRT |2|:1::|5|", R::BadAddress),
        (C2S, b"EPRT |2|1::2:|5|", R::BadAddress),
        (C2S, b"EPRT |2|1:::2|5|", R::BadAddress),
        (C2S, b"EPRT |2|:|5|", R::BadAddress),
        (C2S, b"EPRT |2|::g|5|", R::BadAddress),
        (C2S, b"EPRT |2|1.2.3.4|5|", R::BadAddress),
        (C2S, b"EPRT |2|::1.2.3|5|", R::BadAddress),
        (C2S, b"EPRT |2|::1.2.3.4.5|5|", R::BadAddress),
        (C2S, b"EPRT |2|::1.2.3.4:5|5|", R::BadAddress),
        (C2S, b"EPRT |2|::a.2.3.4|5|", R::BadAddress),
        (C2S, b"EPRT |2|::1234.2.3.4|5|", R::BadAddress),
        (C2S, b"EPRT |2|1:2:3:4:5:6:7:1.2.3.4|5|", R::BadAddress),
        (C2S, b"EPRT |2|1:2:3:4:5:6::1.2.3.4|5|", R::BadAddress),
        (C2S, b"EPRT |2|1.2.3.4::|5|", R::BadAddress),
        (C2S, b"EPRT |2|fe80::1%eth0|5|", R::BadAddress),
        // IPv4 disguised as IPv6.
        (C2S, b"EPRT |2|::ffff:1.2.3.4|5|", R::MappedAddress),
        (C2S, b"EPRT |2|::FFFF:0102:0304|5|", R::MappedAddress),
        (C2S, b"EPRT |2|0:0:0:0:0:ffff:0:0|5|", R::MappedAddress),
        (C2S, b"EPRT |2|::1.2.3.4|5|", R::MappedAddress),
        (C2S, b"EPRT |2|::0.0.0.2|5|", R::MappedAddress),
        // Ports above 65535 or longer than 5 digits.
        (C2S, b"EPRT |1|1.2.3.4|65536|", R::PortTooLarge),
        (C2S, b"EPRT |1|1.2.3.4|000080|", R::PortTooLarge),
        (
            C2S,
            leak(format!("EPRT |1|1.2.3.4|{fifty}|")),
            R::PortTooLarge,
        ),
        // curl tests/data/test238: "229 Entering Passive Mode (|||1000000|)".
        (
            S2C,
            b"229 Entering Passive Mode (|||1000000|)",
            R::PortTooLarge,
        ),
        (
            S2C,
            b"229 Entering Extended Passive Mode (|||65536|)",
            R::PortTooLarge,
        ),
        // Replies that carry no address at all.
        (S2C, b"227 Logout.", R::NoAddress),
        (S2C, b"227 Entering Passive Mode", R::NoAddress),
        (
            S2C,
            b"227 Entering Passive Mode v2 (1.2.3.4:5)",
            R::NoAddress,
        ),
        (S2C, b"227", R::NoAddress),
        (S2C, b"229 Entering Extended Passive Mode", R::NoAddress),
        (
            S2C,
            b"229 Entering Extended Passive Mode |||5|",
            R::NoAddress,
        ),
    ]
}

#[test]
fn refusal_table() {
    let mut seen = Vec::new();
    for (dir, line, reason) in refusals() {
        let got = parse(dir, line);
        let text = String::from_utf8_lossy(line);
        let (verb, code) = match (dir, line.get(..4)) {
            (C2S, Some(b"PORT")) => (Verb::Port, 0),
            (C2S, _) => (Verb::Eprt, 0),
            (S2C, _) => (
                Verb::Other,
                if line.starts_with(b"227") { 227 } else { 229 },
            ),
        };
        let want = ParsedLine {
            kind: if dir == C2S {
                LineKind::Command
            } else {
                LineKind::Reply
            },
            verb,
            status: Status::Refused,
            reason,
            code,
            ..ParsedLine::default()
        };
        assert_eq!(got, want, "{text}");
        seen.push(reason as u8);
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        seen,
        (1..=12).collect::<Vec<u8>>(),
        "every RefuseReason is covered"
    );
}

fn v6(groups: [u16; 8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    for (i, g) in groups.iter().enumerate() {
        a[2 * i..2 * i + 2].copy_from_slice(&g.to_be_bytes());
    }
    a
}

#[test]
fn ipv6_text_forms() {
    let rows: &[(&[u8], [u16; 8])] = &[
        (b"2001:db8:0:0:0:0:0:1", [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]),
        (
            b"2001:0DB8:0000:0000:0000:0000:0000:0001",
            [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1],
        ),
        (b"2001:Db8::1", [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]),
        (b"::", [0; 8]),
        (b"::1", [0, 0, 0, 0, 0, 0, 0, 1]),
        (b"::0.0.0.1", [0, 0, 0, 0, 0, 0, 0, 1]),
        (b"1::", [1, 0, 0, 0, 0, 0, 0, 0]),
        (b"1:2:3:4:5:6:7::", [1, 2, 3, 4, 5, 6, 7, 0]),
        (b"::2:3:4:5:6:7:8", [0, 2, 3, 4, 5, 6, 7, 8]),
        (b"1:2:3::6:7:8", [1, 2, 3, 0, 0, 6, 7, 8]),
        (b"1:2:3:4:5:6:7:8", [1, 2, 3, 4, 5, 6, 7, 8]),
        (b"ffff:FFFF:ffff:ffff:ffff:ffff:ffff:ffff", [0xffff; 8]),
        (b"fe80::1", [0xfe80, 0, 0, 0, 0, 0, 0, 1]),
        // RFC 6052 well-known NAT64 prefix with an embedded IPv4 address.
        (
            b"64:ff9b::192.0.2.1",
            [0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x0201],
        ),
        (b"1:2:3:4:5:6:1.2.3.4", [1, 2, 3, 4, 5, 6, 0x0102, 0x0304]),
        (
            b"1::5:6:255.255.255.255",
            [1, 0, 0, 0, 5, 6, 0xffff, 0xffff],
        ),
        // ::ffff:0:0/96 minus the mapped prefix: not IPv4.
        (b"::fffe:1.2.3.4", [0, 0, 0, 0, 0, 0xfffe, 0x0102, 0x0304]),
        (b"1::ffff:1.2.3.4", [1, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304]),
    ];
    for (text, groups) in rows {
        let mut line = b"EPRT |2|".to_vec();
        line.extend_from_slice(text);
        line.extend(b"|2121|");
        let want = ParsedLine {
            kind: LineKind::Command,
            verb: Verb::Eprt,
            status: Status::Ok,
            endpoint: Endpoint {
                port: 2121,
                family: 6,
                _pad: 0,
                addr: v6(*groups),
            },
            ..ParsedLine::default()
        };
        assert_eq!(parse(C2S, &line), want, "{}", String::from_utf8_lossy(text));
    }
}

#[test]
fn accepted_edge_forms() {
    let ok4 = |verb, addr: [u8; 4], port| ParsedLine {
        kind: LineKind::Command,
        verb,
        status: Status::Ok,
        endpoint: Endpoint {
            port,
            family: 4,
            _pad: 0,
            addr: [
                addr[0], addr[1], addr[2], addr[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        },
        ..ParsedLine::default()
    };
    // Spaces around the argument, leading zeros, any delimiter, port 65535.
    assert_eq!(
        parse(C2S, b"PORT   001,002,003,004,255,255  "),
        ok4(Verb::Port, [1, 2, 3, 4], 65535)
    );
    assert_eq!(
        parse(C2S, b"EPRT  !1!10.0.0.1!00021!  "),
        ok4(Verb::Eprt, [10, 0, 0, 1], 21)
    );
    assert_eq!(
        parse(C2S, b"eprt ~1~255.255.255.255~65535~"),
        ok4(Verb::Eprt, [255; 4], 65535)
    );
    // 229 with any delimiter, even digits or parentheses; text before and after.
    for line in [
        &b"229 Entering Extended Passive Mode (!!!21!)"[..],
        b"229 Entering Extended Passive Mode (999219)",
        b"229 ((((21()",
        b"229 ()))21))",
        b"229 Text (with parens) then (|||21|). Thanks.",
    ] {
        let got = parse(S2C, line);
        assert_eq!(
            (got.status, got.endpoint.port, got.code),
            (Status::Ok, 21, 229),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
    // 227 numbers may be followed by spaces after commas, in any brackets or none.
    for line in [
        &b"227 Entering Passive Mode 1,2,3,4,0,21"[..],
        b"227 Entering Passive Mode (1, 2, 3, 4, 0, 21)",
        b"227 Entering Passive Mode <1,2,3,4,0,21>.",
        b"227 OK, 1,2,3,4,0,21, done",
        b"227-1,2,3,4,0,21",
    ] {
        let mut input = line.to_vec();
        input.extend(b"\r\n");
        if line.starts_with(b"227-") {
            input.extend(b"227 end\r\n");
        }
        let got = run(S2C, &[&input]);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (
                got[0].status,
                got[0].endpoint.port,
                got[0].endpoint.addr[..4].to_vec()
            ),
            (Status::Ok, 21, vec![1, 2, 3, 4])
        );
    }
}
