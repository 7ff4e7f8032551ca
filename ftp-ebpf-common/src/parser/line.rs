//! Line framing (a command ends at LF, a reply line only at CRLF; length limit,
//! resync), the command verb, the reply code and multi-line replies (RFC 959
//! 4.2). Argument and reply text go to the scanners in `numbers` and `extended`.

use super::extended::Extended;
use super::keyword::Keyword;
use super::numbers::SixNumbers;
use super::{Direction, LineKind, ParsedLine, RefuseReason, Scan, Status, Verb};

/// `max_line` 0 means this.
const DEFAULT_MAX_LINE: u16 = 512;
/// Telnet "interpret as command".
const IAC: u8 = 0xff;
/// Telnet WILL..=DONT take an option byte.
const IAC_WITH_OPTION: core::ops::RangeInclusive<u8> = 251..=254;

// `flags` bits.
/// A CR was seen; dropped if an LF follows (a line end), else an ordinary byte.
const HELD_CR: u8 = 1;
/// After `resync`: skipping up to and including the next line end (LF for
/// commands, CRLF for replies).
const DISCARD: u8 = 2;
/// Inside a multi-line reply whose code is `reply_code`.
const MULTI: u8 = 4;
/// A line of the current command/reply exceeded `max_line`.
const TOO_LONG: u8 = 8;
/// The last `feed` completed; `out` is cleared on the next one.
const DONE: u8 = 16;

// `head` for commands.
/// Before the verb (Telnet IAC sequences are skipped here).
const C_START: u8 = 0;
/// After IAC: the Telnet command byte.
const C_IAC: u8 = 1;
/// After IAC WILL/WONT/DO/DONT: the option byte.
const C_IAC_OPT: u8 = 2;
/// Inside the verb.
const C_VERB: u8 = 3;
/// After the space that ends the verb.
const C_ARG: u8 = 4;

// `head` for replies: 0..=3 is the number of code digits seen, then:
/// `NNN ` (or `NNN` at the end of the line): a final line.
const R_FINAL: u8 = 4;
/// `NNN-`: the first line of a multi-line reply, or a line within one.
const R_CONT: u8 = 5;
/// Anything else.
const R_TEXT: u8 = 6;

// `route`: what the rest of the line is fed to.
/// Nothing.
const TO_NONE: u8 = 0;
/// `PASV` (no argument parsed).
const TO_PASV: u8 = 1;
/// `EPSV`: the argument keyword.
const TO_EPSV: u8 = 2;
/// `PORT`: `six` (strict).
const TO_PORT: u8 = 3;
/// `EPRT`: `ext`.
const TO_EPRT: u8 = 4;
/// `AUTH`: the argument keyword.
const TO_AUTH: u8 = 5;
/// `227` text: `six` (scan).
const TO_227: u8 = 6;
/// `229` text: `ext` (scan).
const TO_229: u8 = 7;

// `arg_phase` for keyword arguments.
/// Spaces before the argument.
const A_LEAD: u8 = 0;
/// Inside the argument word.
const A_WORD: u8 = 1;
/// Spaces after it.
const A_TRAIL: u8 = 2;
/// A second word: matches nothing.
const A_JUNK: u8 = 3;

/// Verbs, in `TO_*` order (index + 1).
const VERBS: [&[u8]; 5] = [b"PASV", b"EPSV", b"PORT", b"EPRT", b"AUTH"];
/// `EPSV` arguments; index 2 is `ALL`.
const EPSV_ARGS: [&[u8]; 3] = [b"1", b"2", b"ALL"];
/// `AUTH` arguments that start TLS (RFC 4217; `SSL`, `TLS-C`, `TLS-P` are legacy).
const AUTH_ARGS: [&[u8]; 4] = [b"TLS", b"SSL", b"TLS-C", b"TLS-P"];

/// Per-connection, per-direction parser state, kept in a BPF map. Only integers
/// and arrays (the enums in `out` only ever hold valid values); all zero is the
/// state at the start of a stream.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LineParser {
    /// The result, built in place while a command/reply is read.
    out: ParsedLine,
    /// `EPRT` argument / `229` text.
    ext: Extended,
    /// `PORT` argument / `227` text.
    six: SixNumbers,
    /// Bytes of the current line, excluding CR/LF, capped at `max_line`.
    len: u16,
    /// Code at the start of the current reply line.
    line_code: u16,
    /// Code of the multi-line reply in progress.
    reply_code: u16,
    /// Bytes of the current command or reply so far, line ends included
    /// (`u16::MAX` once bytes of it were skipped); see `unit_len`.
    unit_len: u16,
    /// `HELD_CR`, `DISCARD`, ... bits.
    flags: u8,
    /// `C_*` or reply-head progress.
    head: u8,
    /// `TO_*`.
    route: u8,
    /// `A_*`.
    arg_phase: u8,
    /// The verb seen so far.
    verb: Keyword,
    /// The `EPSV`/`AUTH` argument seen so far.
    arg: Keyword,
}

const _: () = assert!(core::mem::size_of::<LineParser>() <= 96);

impl LineParser {
    /// The state at the start of a stream (all zero).
    pub const fn new() -> Self {
        // SAFETY: all fields are integers, arrays, bools, and field-less
        // `#[repr(u8)]` enums whose discriminant 0 is declared.
        unsafe { core::mem::zeroed() }
    }

    /// Feeds one byte; `true` when it completed a command line
    /// (`ClientToServer`) or a whole reply (`ServerToClient`), described by
    /// `parsed()` until the next call. `max_line` 0 means 512.
    #[inline]
    pub fn feed(&mut self, byte: u8, dir: Direction, max_line: u16) -> bool {
        if self.flags & DONE != 0 {
            self.flags &= !DONE;
            self.out = ParsedLine::default();
            self.unit_len = 0;
        }
        self.unit_len = self.unit_len.saturating_add(1);
        let held_cr = self.flags & HELD_CR != 0;
        self.flags &= !HELD_CR;
        // A command ends at LF (a CR before it is dropped), a reply line only
        // at CRLF: a bare LF in a reply is text (see the module docs).
        let eol = byte == b'\n' && (held_cr || matches!(dir, Direction::ClientToServer));
        if self.flags & DISCARD != 0 {
            if eol {
                self.flags &= !DISCARD;
                if self.flags & MULTI == 0 {
                    // The next byte starts a command or reply.
                    self.unit_len = 0;
                }
            } else if byte == b'\r' {
                self.flags |= HELD_CR;
            }
            return false;
        }
        if eol {
            return self.end_line(dir);
        }
        let max = if max_line == 0 {
            DEFAULT_MAX_LINE
        } else {
            max_line
        };
        // A held CR not followed by LF is an ordinary byte: replay it first.
        // (Two plain calls: iterating a stack array compiles to pointer
        // arithmetic on the frame pointer, which the verifier rejects.)
        if held_cr {
            self.body_byte(b'\r', dir, max);
        }
        if byte == b'\r' {
            self.flags |= HELD_CR;
        } else {
            self.body_byte(byte, dir, max);
        }
        false
    }

    /// The last completion; meaningful right after `feed` returned `true`.
    #[inline(always)]
    pub fn parsed(&self) -> &ParsedLine {
        &self.out
    }

    /// Bytes of the command or whole reply the last `feed` completed, every
    /// line end included, so it began that many bytes back in the stream;
    /// `u16::MAX` if the parser skipped bytes inside it (after a gap).
    /// Meaningful right after `feed` returned `true`.
    #[inline(always)]
    pub fn unit_len(&self) -> u16 {
        self.unit_len
    }

    /// After a gap in the stream: drops the current line and resumes after the
    /// next line end (LF for commands, CRLF for replies: a bare LF after a gap
    /// is as likely reply text as anywhere else). A multi-line reply in
    /// progress stays in progress (its code and anything found so far are kept)
    /// so its completion is still reported.
    pub fn resync(&mut self) {
        self.drop_line(DISCARD);
    }

    /// After bytes the parser never saw, when the stream is known to resume
    /// at a segment boundary (the local end acknowledged everything before
    /// it): drops the current line and takes the next byte as a line start.
    /// FTP peers send whole lines per segment, so skipping to the next line
    /// end (as `resync` does) would cost a real line; a tail that is not a
    /// line start reads as text the peer itself sent.
    pub fn restart(&mut self) {
        self.drop_line(0);
    }

    /// Forgets the current line; `discard` is `DISCARD` to skip to the next
    /// line end. A multi-line reply in progress stays in progress.
    #[inline(always)]
    fn drop_line(&mut self, discard: u8) {
        let multi = self.flags & MULTI;
        self.reset_line();
        if multi == 0 {
            self.out = ParsedLine::default();
            self.flags = discard;
            self.unit_len = 0;
        } else {
            // The reply goes on, but not all of it was seen.
            self.unit_len = u16::MAX;
            self.out.kind = LineKind::None;
            self.flags = discard | MULTI | (self.flags & TOO_LONG);
        }
    }

    /// A byte inside a line.
    #[inline(always)]
    fn body_byte(&mut self, b: u8, dir: Direction, max: u16) {
        if self.len >= max {
            self.flags |= TOO_LONG;
        } else {
            self.len = self.len.wrapping_add(1);
        }
        match dir {
            Direction::ClientToServer => self.command_byte(b),
            Direction::ServerToClient => self.reply_byte(b),
        }
    }

    /// A command byte: IAC sequences, verb, argument.
    #[inline(always)]
    fn command_byte(&mut self, b: u8) {
        match self.head {
            C_START if b == IAC => self.head = C_IAC,
            C_IAC if IAC_WITH_OPTION.contains(&b) => self.head = C_IAC_OPT,
            C_IAC | C_IAC_OPT => self.head = C_START,
            C_START | C_VERB if b == b' ' => self.end_verb(),
            C_START | C_VERB => {
                self.head = C_VERB;
                self.verb.push(b, &VERBS);
            }
            _ => match self.route {
                TO_PORT => self.six.port_byte(b),
                TO_EPRT => self.ext.eprt_byte(b, &mut self.out.endpoint),
                TO_EPSV => self.arg_byte(b, &EPSV_ARGS),
                TO_AUTH => self.arg_byte(b, &AUTH_ARGS),
                _ => {}
            },
        }
    }

    /// The verb ended (space or end of line): picks the argument parser.
    #[inline(always)]
    fn end_verb(&mut self) {
        self.head = C_ARG;
        self.route = match self.verb.matched(&VERBS) {
            Some(0) => TO_PASV,
            Some(1) => TO_EPSV,
            Some(2) => TO_PORT,
            Some(3) => TO_EPRT,
            Some(4) => TO_AUTH,
            _ => TO_NONE,
        };
    }

    /// A byte of a one-word keyword argument, spaces allowed around it.
    #[inline(always)]
    fn arg_byte<const N: usize>(&mut self, b: u8, words: &[&[u8]; N]) {
        match (self.arg_phase, b == b' ') {
            (A_LEAD | A_WORD, false) => {
                self.arg_phase = A_WORD;
                self.arg.push(b, words);
            }
            (A_WORD, true) => self.arg_phase = A_TRAIL,
            (A_TRAIL, false) => self.arg_phase = A_JUNK,
            _ => {}
        }
    }

    /// The keyword argument, if it is exactly one of `words`.
    #[inline(always)]
    fn arg_match<const N: usize>(&self, words: &[&[u8]; N]) -> Option<usize> {
        if self.arg_phase == A_JUNK {
            return None;
        }
        self.arg.matched(words)
    }

    /// A reply byte: the code, then the text.
    #[inline(always)]
    fn reply_byte(&mut self, b: u8) {
        match self.head {
            0..=2 if b.is_ascii_digit() => {
                self.line_code = self
                    .line_code
                    .wrapping_mul(10)
                    .wrapping_add(u16::from(b.wrapping_sub(b'0')));
                self.head = self.head.wrapping_add(1);
            }
            0..=2 => self.head = R_TEXT,
            3 => {
                self.head = match b {
                    b' ' => R_FINAL,
                    b'-' => R_CONT,
                    _ => R_TEXT,
                };
                if self.head != R_TEXT {
                    self.route = self.text_route();
                }
            }
            _ => self.scan_text(b),
        }
    }

    /// Whether the text of this reply line is searched for an endpoint: lines
    /// of a `227`/`229` reply that start with its code, until one is found.
    #[inline(always)]
    fn text_route(&self) -> u8 {
        let ours = if self.flags & MULTI != 0 {
            self.line_code == self.reply_code
        } else {
            is_reply_code(self.line_code)
        };
        match self.line_code {
            _ if !ours || self.out.status == Status::Ok => TO_NONE,
            227 => TO_227,
            229 => TO_229,
            _ => TO_NONE,
        }
    }

    /// A byte of reply text.
    #[inline(always)]
    fn scan_text(&mut self, b: u8) {
        let scan = match self.route {
            TO_227 => self.six.scan_byte(b, &mut self.out.endpoint),
            TO_229 => self.ext.reply_byte(b, &mut self.out.endpoint),
            _ => return,
        };
        self.note(scan);
    }

    /// Records a scanner verdict: the first endpoint found wins; otherwise the
    /// first malformed candidate explains the refusal.
    #[inline(always)]
    fn note(&mut self, scan: Scan) {
        match scan {
            Scan::Found => {
                self.out.status = Status::Ok;
                self.route = TO_NONE;
            }
            Scan::Bad(reason) if self.out.reason == RefuseReason::None => {
                self.out.reason = reason;
            }
            _ => {}
        }
    }

    /// The line ended (LF for commands, CRLF for replies); `true` if that
    /// completes a command or reply.
    #[inline(always)]
    fn end_line(&mut self, dir: Direction) -> bool {
        let done = match dir {
            Direction::ClientToServer => self.end_command(),
            Direction::ServerToClient => self.end_reply(),
        };
        self.reset_line();
        if !done && self.flags & MULTI == 0 {
            // Nothing in progress: the next byte starts a command or reply.
            self.unit_len = 0;
        }
        done
    }

    /// End of a command line: a completion unless the line is empty. Servers
    /// (vsftpd among them) do not answer an empty line, so counting it as a
    /// command would pair every later reply with the wrong command.
    #[inline(always)]
    fn end_command(&mut self) -> bool {
        if self.len == 0 {
            return false;
        }
        if self.head != C_ARG {
            self.end_verb();
        }
        let (verb, found) = match self.route {
            TO_PASV => (Verb::Pasv, None),
            TO_EPSV => match self.arg_match(&EPSV_ARGS) {
                Some(2) => (Verb::EpsvAll, None),
                Some(_) => (Verb::Epsv, None),
                None if self.arg.is_empty() => (Verb::Epsv, None),
                None => (Verb::Other, None),
            },
            TO_PORT => (Verb::Port, Some(self.six.port_end(&mut self.out.endpoint))),
            TO_EPRT => (Verb::Eprt, Some(self.ext.eprt_end(&mut self.out.endpoint))),
            TO_AUTH if self.arg_match(&AUTH_ARGS).is_some() => (Verb::AuthTls, None),
            _ => (Verb::Other, None),
        };
        self.complete(LineKind::Command, verb, 0, found)
    }

    /// End of a reply line: a completion if it ends a reply.
    #[inline(always)]
    fn end_reply(&mut self) -> bool {
        let scan = match self.route {
            TO_227 => self.six.scan_end(&mut self.out.endpoint),
            TO_229 => self.ext.reply_end(),
            _ => Scan::Pending,
        };
        self.note(scan);
        if self.flags & MULTI != 0 {
            // RFC 959: the reply ends at the first line starting `NNN ` with its code.
            return self.head == R_FINAL
                && self.line_code == self.reply_code
                && self.complete_reply();
        }
        // Outside a reply, `NNN` alone on a line is a complete reply too.
        let head = if self.head == 3 { R_FINAL } else { self.head };
        if !matches!(head, R_FINAL | R_CONT) || !is_reply_code(self.line_code) {
            // Not a reply line outside a reply: ignored.
            self.out = ParsedLine::default();
            self.flags &= !TOO_LONG;
            return false;
        }
        self.reply_code = self.line_code;
        if head == R_CONT {
            self.flags |= MULTI;
            return false;
        }
        self.complete_reply()
    }

    /// The final line of a reply ended.
    #[inline(always)]
    fn complete_reply(&mut self) -> bool {
        let found = match self.reply_code {
            227 | 229 if self.out.status == Status::Ok => Some(Ok(())),
            227 | 229 if self.out.reason == RefuseReason::None => {
                Some(Err(RefuseReason::NoAddress))
            }
            227 | 229 => Some(Err(self.out.reason)),
            _ => None,
        };
        self.complete(LineKind::Reply, Verb::Other, self.reply_code, found)
    }

    /// Fills `out` for a completion. `found` is `None` when the line carries no
    /// endpoint, else whether `out.endpoint` holds a good one. Keeps the
    /// invariants: the endpoint is all zero unless `Ok`, and `Ok` means port > 0.
    #[inline(always)]
    fn complete(
        &mut self,
        kind: LineKind,
        verb: Verb,
        code: u16,
        found: Option<Result<(), RefuseReason>>,
    ) -> bool {
        let found = match found {
            Some(_) if self.flags & TOO_LONG != 0 => Some(Err(RefuseReason::LineTooLong)),
            Some(Ok(())) if self.out.endpoint.port == 0 => Some(Err(RefuseReason::PortZero)),
            other => other,
        };
        let (status, reason) = match found {
            None => (Status::NotApplicable, RefuseReason::None),
            Some(Ok(())) => (Status::Ok, RefuseReason::None),
            Some(Err(reason)) => (Status::Refused, reason),
        };
        let mut endpoint = self.out.endpoint;
        if status != Status::Ok {
            endpoint = Default::default();
        }
        endpoint._pad = 0;
        self.out = ParsedLine {
            kind,
            verb,
            status,
            reason,
            code,
            _pad: 0,
            endpoint,
        };
        self.flags = DONE;
        true
    }

    /// Forgets the current line (not the reply it belongs to).
    #[inline(always)]
    fn reset_line(&mut self) {
        self.ext = Extended::default();
        self.six = SixNumbers::default();
        self.len = 0;
        self.line_code = 0;
        self.head = 0;
        self.route = TO_NONE;
        self.arg_phase = A_LEAD;
        self.verb = Keyword::default();
        self.arg = Keyword::default();
    }
}

/// RFC 959 reply codes start with 1..=5.
#[inline(always)]
fn is_reply_code(code: u16) -> bool {
    (100..=599).contains(&code)
}
