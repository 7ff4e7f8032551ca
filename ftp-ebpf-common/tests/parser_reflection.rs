//! Text a client makes the server echo (paths in `550`/`257`/`213` replies,
//! file names in `STAT` listings, `HELP` text) never becomes a reply of its
//! own: a reply line ends only at CRLF, so a bare LF or CR the server keeps
//! from a command is text, and only the bytes right after CRLF can start a
//! reply. Otherwise `550 /x\n227 Entering Passive Mode (...)` would pair a
//! client-chosen endpoint with a queued `PASV`.
//!
//! Every row is fed whole and split at every byte boundary (state copied
//! between the pieces, as in the BPF map) and must complete exactly one reply:
//! the echoing reply, with no endpoint.

mod common;

use common::{pasv_ok, reply, run};
use ftp_ebpf_common::parser::{
    Direction::{self, ClientToServer as C2S, ServerToClient as S2C},
    LineKind, LineParser, ParsedLine, RefuseReason, Status, Verb, feed_all,
};

/// `want` for `input` fed whole, in two pieces and in three pieces.
fn check_splits(src: &str, dir: Direction, input: &[u8], want: &[ParsedLine]) {
    let text = String::from_utf8_lossy(input);
    assert_eq!(run(dir, 0, &[input]), want, "{src}: {text:?}");
    for i in 0..=input.len() {
        let (a, b) = input.split_at(i);
        assert_eq!(run(dir, 0, &[a, b]), want, "{src}: split at {i}");
        for j in i..=input.len() {
            let (b, c) = input[i..].split_at(j - i);
            assert_eq!(run(dir, 0, &[a, b, c]), want, "{src}: split at {i}, {j}");
        }
    }
}

/// `(what echoes, reply bytes, code of the echoing reply)`.
type Echo = (&'static str, &'static [u8], u16);

/// Replies carrying client-chosen text with a bare LF in it.
fn bare_lf_echoes() -> Vec<Echo> {
    vec![
        // A path echoed in an error reply, the LF kept (servers that end commands
        // only at CRLF, such as pyftpdlib, keep a bare LF in the argument).
        (
            "550 path",
            b"550 /tmp/a\n227 Entering Passive Mode (198,18,0,1,156,100)\r\n",
            550,
        ),
        // pyftpdlib handlers/ftp/control.py ftp_MDTM: f"550 {line} is not retrievable".
        (
            "pyftpdlib MDTM",
            b"550 /tmp/a\n227 Entering Passive Mode (198,18,0,1,156,100) is not retrievable\r\n",
            550,
        ),
        // pyftpdlib ftp_MKD: '257 "%s" directory created.' with the path.
        (
            "pyftpdlib MKD",
            b"257 \"/tmp/a\n229 Entering Extended Passive Mode (|||40000|)\" directory created.\r\n",
            257,
        ),
        // pyftpdlib ftp_MFMT: f"213 Modify={lmt}; {line}.".
        (
            "pyftpdlib MFMT",
            b"213 Modify=20240101000000; /tmp/a\n227 Entering Passive Mode (198,18,0,1,156,100).\r\n",
            213,
        ),
        // A 213 echo whose path holds both announcements, one per bare LF.
        (
            "213 echo",
            b"213 /a\n227 Entering Passive Mode (198,18,0,1,156,100)\n229 Entering Extended Passive Mode (|||40000|)\n\r\n",
            213,
        ),
        // An echo that starts with the LF.
        (
            "550 then LF",
            b"550 \n227 Entering Passive Mode (198,18,0,1,156,100)\r\n",
            550,
        ),
        // Several LFs and an LF-CR pair: still one line until CRLF.
        (
            "LF LF",
            b"550 /a\n\n227 Entering Passive Mode (198,18,0,1,156,100)\r\n",
            550,
        ),
        (
            "LF CR",
            b"550 /a\n\r227 Entering Passive Mode (198,18,0,1,156,100)\r\n",
            550,
        ),
        // pyftpdlib ftp_STAT <path>: '213-Status of "{line}":', an ls -l line per
        // file, '213 End of status.'. A file name holding bare LFs: neither its
        // `213 ` (same code, final form) nor its `227 ` starts a line.
        (
            "pyftpdlib STAT listing",
            b"213-Status of \"/tmp\":\r\n-rw-r--r--   1 ftp      ftp             0 Jan 01 00:00 a\n213 x\n227 Entering Passive Mode (198,18,0,1,156,100)\r\n213 End of status.\r\n",
            213,
        ),
        // The same inside a multi-line 211 whose first line holds the LF.
        (
            "211 first line",
            b"211-Status of /a\n211 x\n229 Entering Extended Passive Mode (|||40000|)\r\n211 End of status.\r\n",
            211,
        ),
    ]
}

/// Replies carrying a bare CR (not followed by LF): ordinary text.
fn bare_cr_echoes() -> Vec<Echo> {
    vec![
        (
            "550 CR",
            b"550 /tmp/a\r227 Entering Passive Mode (198,18,0,1,156,100)\r\n",
            550,
        ),
        (
            "550 CR CR",
            b"550 /tmp/a\r\r227 Entering Passive Mode (198,18,0,1,156,100)\r\n",
            550,
        ),
        (
            "257 CR",
            b"257 \"/tmp/a\r229 Entering Extended Passive Mode (|||40000|)\" created\r\n",
            257,
        ),
        (
            "213 CR CR LF",
            b"213 /a\r227 Entering Passive Mode (198,18,0,1,156,100)\r\r\n",
            213,
        ),
        // RFC 2640 3.1: a CR in a path name is sent as CR NUL; a server may echo either.
        (
            "550 CR NUL",
            b"550 /tmp/a\r\x00227 Entering Passive Mode (198,18,0,1,156,100)\r\n",
            550,
        ),
    ]
}

/// RFC 959 4.2 multi-line replies whose inner lines (CRLF-terminated) look
/// like announcements: text, as only `NNN ` with the first line's code ends the
/// reply.
fn multi_line_echoes() -> Vec<Echo> {
    vec![
        // HELP text (pyftpdlib ftp_HELP: "214-The following commands are
        // recognized:" ... "214 Help command successful.").
        (
            "HELP",
            b"214-The following commands are recognized:\r\n227 Entering Passive Mode (198,18,0,1,156,100)\r\n229 Entering Extended Passive Mode (|||40000|)\r\n214 Help command successful.\r\n",
            214,
        ),
        // STAT (pyftpdlib ftp_STAT without argument: "211-FTP server status:" ... "211 End of status.").
        (
            "STAT",
            b"211-FTP server status:\r\n227 Entering Passive Mode (198,18,0,1,156,100)\r\n229-Entering Extended Passive Mode (|||40000|)\r\n229 Entering Extended Passive Mode (|||40000|)\r\n227-x\r\n211-still going\r\n211 End of status.\r\n",
            211,
        ),
        // Inner lines with the reply's own code but `-` (or no space) do not end it.
        (
            "STAT 211-",
            b"211-FTP server status:\r\n211-227 Entering Passive Mode (198,18,0,1,156,100)\r\n211227 Entering Passive Mode (198,18,0,1,156,100)\r\n211 End of status.\r\n",
            211,
        ),
    ]
}

#[test]
fn bare_lf_in_reply_text_is_text() {
    for (src, input, code) in bare_lf_echoes() {
        check_splits(src, S2C, input, &[reply(code)]);
    }
}

#[test]
fn bare_cr_in_reply_text_is_text() {
    for (src, input, code) in bare_cr_echoes() {
        check_splits(src, S2C, input, &[reply(code)]);
    }
}

#[test]
fn announcements_inside_a_multi_line_reply_are_text() {
    for (src, input, code) in multi_line_echoes() {
        check_splits(src, S2C, input, &[reply(code)]);
    }
}

/// After the echoing reply's CRLF, the next line is a reply again.
#[test]
fn the_line_after_an_echo_is_a_reply() {
    for (src, input, code) in bare_lf_echoes()
        .into_iter()
        .chain(bare_cr_echoes())
        .chain(multi_line_echoes())
    {
        let mut two = input.to_vec();
        two.extend(b"227 Entering Passive Mode (10,0,0,1,4,1).\r\n");
        check_splits(src, S2C, &two, &[reply(code), pasv_ok([10, 0, 0, 1], 1025)]);
    }
}

/// Reply text without CRLF never completes anything, however much of it there is.
#[test]
fn a_reply_line_needs_crlf() {
    let got = run(
        S2C,
        0,
        &[b"227 Entering Passive Mode (1,2,3,4,5,6)\n229 (|||5|)\n200 ok\n"],
    );
    assert_eq!(got, []);
    // The CRLF that follows completes it as one line of the first code.
    let got = run(
        S2C,
        0,
        &[
            b"227 Entering Passive Mode (1,2,3,4,5,6)\n229 (|||5|)\n200 ok\n",
            b"\r\n",
        ],
    );
    assert_eq!(got, [pasv_ok([1, 2, 3, 4], 1286)]);
    // `550\n227 ...` is one line whose code is followed by neither space nor
    // `-`: no reply line at all, so nothing completes.
    let got = run(
        S2C,
        0,
        &[b"550\n227 Entering Passive Mode (198,18,0,1,156,100)\r\n"],
    );
    assert_eq!(got, []);
}

/// A bare LF in reply text counts toward the line length.
#[test]
fn bare_lf_counts_toward_the_line_length() {
    let line = b"227 (1,2,3,4,5,6)\n\n\r\n";
    let n = u16::try_from(line.len() - 2).unwrap();
    assert_eq!(run(S2C, n, &[line]), [pasv_ok([1, 2, 3, 4], 1286)]);
    assert_eq!(
        run(S2C, n - 1, &[line]),
        [ParsedLine {
            status: Status::Refused,
            reason: RefuseReason::LineTooLong,
            ..reply(227)
        }]
    );
    // A long echo of bare LFs in a non-announcing reply is still one reply.
    let mut long = b"550 /".to_vec();
    long.extend(std::iter::repeat_n(b'\n', 600));
    long.extend(b"227 Entering Passive Mode (198,18,0,1,156,100)\r\n");
    assert_eq!(run(S2C, 0, &[&long]), [reply(550)]);
}

/// After a gap, the reply direction skips to the next CRLF: a bare LF in the
/// rest of the cut line is text too.
#[test]
fn resync_in_replies_skips_to_crlf() {
    let mut p = LineParser::new();
    let mut got = Vec::new();
    feed_all(&mut p, b"550 /tm", S2C, 0, |l| got.push(*l));
    p.resync();
    feed_all(
        &mut p,
        b"p/a\n227 Entering Passive Mode (198,18,0,1,156,100)\r\n150 ok\r\n",
        S2C,
        0,
        |l| got.push(*l),
    );
    assert_eq!(got, [reply(150)]);

    // A CR before the gap and an LF after it are no CRLF.
    let mut p = LineParser::new();
    let mut got = Vec::new();
    feed_all(&mut p, b"550 /tmp/a\r", S2C, 0, |l| got.push(*l));
    p.resync();
    feed_all(
        &mut p,
        b"\n227 Entering Passive Mode (198,18,0,1,156,100)\r\n150 ok\r\n",
        S2C,
        0,
        |l| got.push(*l),
    );
    assert_eq!(got, [reply(150)]);

    // A bare CR while skipping is skipped too; CR CR LF ends the skip.
    let mut p = LineParser::new();
    let mut got = Vec::new();
    p.resync();
    feed_all(
        &mut p,
        b"x\r227 (1,2,3,4,5,6)\r\r\n150 ok\r\n",
        S2C,
        0,
        |l| got.push(*l),
    );
    assert_eq!(got, [reply(150)]);
}

/// Commands still end at a bare LF (see the `parser` module docs), and after a
/// gap the command direction skips to the next LF.
#[test]
fn commands_still_end_at_bare_lf() {
    let pasv = ParsedLine {
        kind: LineKind::Command,
        verb: Verb::Pasv,
        ..ParsedLine::default()
    };
    let other = ParsedLine {
        verb: Verb::Other,
        ..pasv
    };
    check_splits("LF commands", C2S, b"NOOP\nPASV\n", &[other, pasv]);
    check_splits("CR LF mixed", C2S, b"NOOP\r\nPASV\n", &[other, pasv]);
    let mut p = LineParser::new();
    let mut got = Vec::new();
    feed_all(&mut p, b"PAS", C2S, 0, |l| got.push(*l));
    p.resync();
    feed_all(&mut p, b"V\nPASV\n", C2S, 0, |l| got.push(*l));
    assert_eq!(got, [pasv]);
}
