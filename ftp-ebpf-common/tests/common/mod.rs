//! Shared by the parser test files: feeding a parser in pieces (its state
//! copied between them, as in the BPF map) and the completions expected.
#![allow(dead_code)]

use ftp_ebpf_common::parser::{
    Direction, Endpoint, LineKind, LineParser, ParsedLine, RefuseReason, Status, Verb, feed_all,
};

/// Feeds `pieces` one after another (the state is copied between pieces, as it
/// is when it lives in a BPF map) and returns every completion.
pub fn run(dir: Direction, max_line: u16, pieces: &[&[u8]]) -> Vec<ParsedLine> {
    let mut p = LineParser::new();
    let mut out = Vec::new();
    for piece in pieces {
        let mut copy = p;
        feed_all(&mut copy, piece, dir, max_line, |l| out.push(*l));
        p = copy;
    }
    out
}

pub fn cmd(verb: Verb) -> ParsedLine {
    ParsedLine {
        kind: LineKind::Command,
        verb,
        ..ParsedLine::default()
    }
}

pub fn cmd_ep(verb: Verb, family: u8, addr: &[u8], port: u16) -> ParsedLine {
    let mut a = [0u8; 16];
    a[..addr.len()].copy_from_slice(addr);
    ParsedLine {
        status: Status::Ok,
        endpoint: Endpoint {
            port,
            family,
            _pad: 0,
            addr: a,
        },
        ..cmd(verb)
    }
}

pub fn reply(code: u16) -> ParsedLine {
    ParsedLine {
        kind: LineKind::Reply,
        code,
        ..ParsedLine::default()
    }
}

pub fn pasv_ok(addr: [u8; 4], port: u16) -> ParsedLine {
    ParsedLine {
        status: Status::Ok,
        endpoint: cmd_ep(Verb::Other, 4, &addr, port).endpoint,
        ..reply(227)
    }
}

pub fn epsv_ok(port: u16) -> ParsedLine {
    ParsedLine {
        status: Status::Ok,
        endpoint: Endpoint {
            port,
            ..Endpoint::default()
        },
        ..reply(229)
    }
}

pub fn refused(mut line: ParsedLine, reason: RefuseReason) -> ParsedLine {
    line.status = Status::Refused;
    line.reason = reason;
    line
}
