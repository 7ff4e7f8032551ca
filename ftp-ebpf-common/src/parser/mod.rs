//! Streaming FTP control-channel parser.
//!
//! The parser is fed one byte at a time so that its whole state fits in a small
//! `#[repr(C)]` struct that the eBPF programs keep per control connection and
//! direction in a map: a line split across TCP segments is understood because the
//! state simply carries over to the next segment. The same code runs on the host
//! (unit, property and fuzz tests) and, unchanged, inside the kernel, so it has no
//! panicking paths, no recursion and only constant-bounded loops.
//!
//! API contract (used by `ftp-ebpf`):
//! - `LineParser::new()` (all zeroes) is the state at the start of a stream.
//! - `feed(byte, dir, max_line)` returns `true` when `byte` completed something the
//!   caller must act on; `parsed()` then describes it until the next `feed`.
//!   For `ClientToServer` that is every command line; for `ServerToClient` it is a
//!   complete reply (the final line of a multi-line reply, or a single-line reply).
//! - `resync()` after a gap in the byte stream: the current line is discarded and
//!   parsing resumes after the next line end (see below).
//!
//! Line framing:
//! - A reply line ends only at CRLF. A bare LF, or a CR not followed by LF, is
//!   ordinary text of the line (it counts toward `max_line`), so only the bytes
//!   right after a CRLF (or at the stream start, or after the line end that
//!   `resync()` skips to) can be a reply code. Servers echo client-chosen text in
//!   replies (paths in `550`/`257`/`213`, `STAT` listings, `HELP`), and those that
//!   end commands only at CRLF keep a bare LF the client put in one: were a bare
//!   LF a line end, `550 /x\n227 Entering Passive Mode (h,h,h,h,p,p)\r\n` would be
//!   a `227` of the client's choosing, paired with its queued `PASV`. RFC 959
//!   requires CRLF; a server ending replies with bare LF would have no reply
//!   tracked (no announcement: fail closed).
//! - A multi-line reply (RFC 959 4.2) ends only at a line starting `NNN ` with
//!   its first line's code; any other line, whatever its digits, is text.
//! - A command ends at LF, CR before it or not. That is where vsftpd (reads up
//!   to `\n`, strips a trailing `\r`), proftpd and pure-ftpd end commands;
//!   pyftpdlib ends them only at CRLF. Against such a server, a client that puts
//!   a bare LF in a command makes this parser count commands differently from the
//!   server (`NOOP\nPASV\r\n` is one command there, two here), which only
//!   misaligns request/reply pairing on that client's own connection. It never
//!   turns the client's text into an announcement: the server's echo of that
//!   text stays inside a reply line, a `227`/`229` paired with the wrong command
//!   is still the server's own announcement of its own port, and a `PORT`/`EPRT`
//!   is checked against the client's own address whatever reply it pairs with.
//!   Ending commands only at CRLF would misalign pairing the same way with the
//!   majority of servers instead.

// Implementation lives in submodules; see `feed`.
mod extended;
mod ipv4;
mod ipv6;
mod keyword;
mod line;
mod numbers;

pub use line::LineParser;

/// Host convenience (tests, user space): feeds every byte of `bytes` and calls
/// `on_line` for each completion, so callers need not repeat the feed loop.
pub fn feed_all(
    p: &mut LineParser,
    bytes: &[u8],
    dir: Direction,
    max_line: u16,
    mut on_line: impl FnMut(&ParsedLine),
) {
    for &b in bytes {
        if p.feed(b, dir, max_line) {
            on_line(p.parsed());
        }
    }
}

/// What a reply-text scanner concluded after a byte (or at the end of a line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// Nothing decided yet.
    Pending,
    /// A well-formed endpoint was written to the caller's `Endpoint`.
    Found,
    /// A candidate turned out malformed; kept only if nothing better is found.
    Bad(RefuseReason),
}

/// Which way bytes flow on the control connection; decides whether lines are
/// parsed as commands (client to server) or replies (server to client).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Commands: `PASV`, `EPSV`, `PORT`, `EPRT`, `AUTH`, ...
    ClientToServer = 0,
    /// Replies: `227`, `229`, `200`, `234`, ...
    ServerToClient = 1,
}

/// What a completed unit is.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LineKind {
    /// Nothing completed (state right after `new()`/`resync()`).
    #[default]
    None = 0,
    /// A command line from the client.
    Command = 1,
    /// A complete reply from the server.
    Reply = 2,
}

/// Commands the tracker cares about; everything else is `Other`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Verb {
    /// Any other command (still counts for request/reply correlation).
    #[default]
    Other = 0,
    /// `PASV`: the reply `227` announces a passive endpoint.
    Pasv = 1,
    /// `EPSV` or `EPSV <proto>`: the reply `229` announces a passive port.
    Epsv = 2,
    /// `PORT h1,h2,h3,h4,p1,p2`.
    Port = 3,
    /// `EPRT <d><af><d><addr><d><port><d>`.
    Eprt = 4,
    /// `AUTH TLS`, `AUTH SSL`, `AUTH TLS-C`, `AUTH TLS-P`: a `234` reply starts TLS.
    AuthTls = 5,
    /// `EPSV ALL`: no port follows (answered with `200`).
    EpsvAll = 6,
}

/// Outcome of looking for an address/port in a line that should carry one
/// (`PORT`, `EPRT`, reply `227`, reply `229`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Status {
    /// The line does not carry an endpoint (other verbs and codes).
    #[default]
    NotApplicable = 0,
    /// `endpoint` holds a well-formed address and port (port in 1..=65535).
    Ok = 1,
    /// The line should carry an endpoint but is malformed; see `reason`.
    Refused = 2,
}

/// Why a line that should carry an endpoint was refused. Counted per reason.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RefuseReason {
    /// Not refused.
    #[default]
    None = 0,
    /// A number above 255 (or a digit run longer than 3) in h1..h4/p1/p2.
    NumberTooLarge = 1,
    /// Port computes to 0.
    PortZero = 2,
    /// Fewer numbers/fields than the syntax requires.
    MissingFields = 3,
    /// More than six numbers in a `227`/`PORT` sequence.
    TooManyNumbers = 4,
    /// A non-digit where a digit is required, or trailing garbage.
    BadSyntax = 5,
    /// The line is longer than `max_line`.
    LineTooLong = 6,
    /// `229`/`EPRT` delimiters missing, outside ASCII 33..=126, or not all equal.
    BadDelimiter = 7,
    /// `EPRT` address family other than 1 or 2.
    BadFamily = 8,
    /// `EPRT` address text is not a valid IPv4/IPv6 address of its family.
    BadAddress = 9,
    /// `EPRT |2|` naming an IPv4-mapped or IPv4-compatible address.
    MappedAddress = 10,
    /// Port above 65535 (`229`/`EPRT`).
    PortTooLarge = 11,
    /// A `227`/`229` reply that carries no address at all (e.g. `227 Logout.`).
    NoAddress = 12,
}

/// An announced data endpoint.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Endpoint {
    /// Port in host byte order, 1..=65535 when `Status::Ok`.
    pub port: u16,
    /// 4 for IPv4, 6 for IPv6, 0 when the line carries only a port (`229`).
    pub family: u8,
    /// Padding, always 0.
    pub _pad: u8,
    /// Address in network byte order; IPv4 uses the first 4 bytes, rest 0.
    pub addr: [u8; 16],
}

/// Description of the last completed command or reply.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ParsedLine {
    /// Command or reply.
    pub kind: LineKind,
    /// For commands: which one.
    pub verb: Verb,
    /// Whether an endpoint was found, refused, or not applicable.
    pub status: Status,
    /// Why it was refused, when `status == Refused`.
    pub reason: RefuseReason,
    /// Reply code 100..=599 for replies, 0 for commands.
    pub code: u16,
    /// Padding, always 0.
    pub _pad: u16,
    /// The announced endpoint when `status == Ok`.
    pub endpoint: Endpoint,
}
