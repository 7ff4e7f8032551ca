//! The text `--nat-rewrite` writes: a `227` reply of a given length, or a
//! `PORT`/`EPRT` command in its natural length, announcing the external
//! address.
//!
//! Built as a layout and read a byte at a time ([`Rendering::byte`]): the
//! BPF verifier checks a per-byte function once, where a writer whose
//! position depends on every number's digit count multiplies its paths.

use super::REWRITE_MAX;
use crate::Addr;

/// What a rendering announces (`Rendering::kind`, `NatRewrite::kind`).
pub mod kind {
    /// `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`.
    pub const REPLY_227: u8 = 0;
    /// `PORT h1,h2,h3,h4,p1,p2`.
    pub const PORT: u8 = 1;
    /// `EPRT |1|a.b.c.d|port|`.
    pub const EPRT_V4: u8 = 2;
    /// `EPRT |2|x:x:x:x:x:x:x:x|port|`, every group in four hex digits.
    pub const EPRT_V6: u8 = 3;
}

/// Length of an IPv6 address written in full: eight groups of four hex
/// digits and seven colons. Valid text (RFC 4291 2.2, `inet_pton`) of one
/// length whatever the address, so the layout has no branch per group.
const V6_TEXT_LEN: usize = 39;

/// Text a rewritten `227` carries before its numbers, where it fits.
const PASSIVE_TEXT: &[u8] = b"Entering Passive Mode ";

/// The layout of one rendering: a head, (for a `227`) filler and `(` or
/// (for `EPRT |2|`) the address and `|`, the numbers with their separators,
/// a closing character and CRLF.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rendering {
    /// The whole length.
    pub len: u16,
    /// Offset of the first number.
    pub open: u16,
    /// The numbers: `h1..h4,p1,p2`, `a,b,c,d,port` (`EPRT |1|`) or `port`
    /// (`EPRT |2|`).
    pub fields: [u16; 6],
    /// Where each number ends, counted from `open` (exclusive).
    pub ends: [u8; 6],
    /// How many numbers: 6, 5 for `EPRT |1|`, 1 for `EPRT |2|`.
    pub count: u8,
    /// `kind::*`.
    pub kind: u8,
    /// 1 if a `227`'s filler starts with `Entering Passive Mode `.
    pub text: u8,
    /// Always 0.
    pub _pad: u8,
    /// The IPv6 address `EPRT |2|` names (all zero otherwise).
    pub v6: Addr,
}

/// Decimal digits of every byte value. A table, not comparisons: in BPF a
/// comparison is a branch, and a layout of six numbers with three digit
/// counts each would be six nested forks for the verifier to walk.
static BYTE_DIGITS: [u8; 256] = {
    let mut t = [1u8; 256];
    let mut i = 10;
    while i < 256 {
        t[i] = if i >= 100 { 3 } else { 2 };
        i += 1;
    }
    t
};

/// Decimal digits of `n`.
#[inline(always)]
fn digits(n: u16) -> u8 {
    if n < 256 {
        BYTE_DIGITS[usize::from(n) & 255]
    } else if n >= 10_000 {
        5
    } else if n >= 1_000 {
        4
    } else {
        3
    }
}

/// The head of each kind.
#[inline(always)]
fn head(kind: u8) -> &'static [u8] {
    match kind {
        kind::REPLY_227 => b"227 ",
        kind::PORT => b"PORT ",
        kind::EPRT_V4 => b"EPRT |1|",
        _ => b"EPRT |2|",
    }
}

impl Rendering {
    /// The numbers of `addr`:`port` as `kind` writes them, laid out after
    /// `open`, with the length of everything from `open` on.
    #[inline(always)]
    fn numbers(kind: u8, addr: &Addr, port: u16) -> (Self, usize) {
        let [p1, p2] = port.to_be_bytes();
        let [a, b, c, d] = [addr[0], addr[1], addr[2], addr[3]].map(u16::from);
        let (fields, count) = match kind {
            kind::EPRT_V4 => ([a, b, c, d, port, 0], 5),
            kind::EPRT_V6 => ([port, 0, 0, 0, 0, 0], 1),
            _ => ([a, b, c, d, u16::from(p1), u16::from(p2)], 6),
        };
        let mut ends = [0u8; 6];
        let mut end = 0u8;
        for k in 0..count {
            if k > 0 {
                end += 1;
            }
            end += digits(fields[k]);
            ends[k] = end;
        }
        // The numbers, a closing `)` (227) or `|` (EPRT), CRLF.
        let closing = usize::from(kind != kind::PORT);
        let r = Self {
            fields,
            ends,
            count: count as u8,
            kind,
            v6: if kind == kind::EPRT_V6 {
                *addr
            } else {
                [0; 16]
            },
            ..Self::default()
        };
        (r, usize::from(end) + closing + 2)
    }

    /// A `227` of exactly `len` bytes announcing `addr`:`port`, its text
    /// shortened to spaces, or spaces added after it, to make the length
    /// (clients find the numbers by scanning the text, RFC 1123 4.1.2.6);
    /// `None` if `len` is shorter than [`Rendering::min_227_len`] or longer
    /// than [`REWRITE_MAX`].
    #[inline(always)]
    pub fn reply_227(len: usize, addr: [u8; 4], port: u16) -> Option<Self> {
        let (mut r, rest) = Self::numbers(kind::REPLY_227, &v4(addr), port);
        // "227 " + filler + "(" + the rest.
        let fixed = 4 + 1 + rest;
        if len < fixed || len > REWRITE_MAX {
            return None;
        }
        let fill = len - fixed;
        r.len = len as u16;
        r.open = (4 + fill + 1) as u16;
        r.text = u8::from(fill >= PASSIVE_TEXT.len());
        Some(r)
    }

    /// The shortest `227` [`Rendering::reply_227`] writes for `addr`:`port`.
    #[inline(always)]
    pub fn min_227_len(addr: [u8; 4], port: u16) -> usize {
        4 + 1 + Self::numbers(kind::REPLY_227, &v4(addr), port).1
    }

    /// `PORT` (`kind::PORT`), `EPRT |1|` (`kind::EPRT_V4`, both reading
    /// the first 4 bytes of `addr`) or `EPRT |2|` (`kind::EPRT_V6`)
    /// announcing `addr`:`port`, in their natural length.
    #[inline(always)]
    pub fn command(kind: u8, addr: &Addr, port: u16) -> Self {
        let (mut r, rest) = Self::numbers(kind, addr, port);
        let mut open = head(kind).len();
        if kind == kind::EPRT_V6 {
            // The address and its `|`.
            open += V6_TEXT_LEN + 1;
        }
        r.len = (open + rest) as u16;
        r.open = open as u16;
        r
    }

    /// Byte `i` (0 past the end).
    #[inline(always)]
    pub fn byte(&self, i: usize) -> u8 {
        let head = head(self.kind);
        let open = usize::from(self.open);
        if i >= usize::from(self.len) {
            return 0;
        }
        if i < head.len() {
            return head[i];
        }
        if self.kind == kind::EPRT_V6 && i < open {
            return v6_text(&self.v6, i - head.len());
        }
        if i + 1 < open {
            return match PASSIVE_TEXT.get(i - head.len()) {
                Some(&b) if self.text != 0 => b,
                _ => b' ',
            };
        }
        if i < open {
            return b'(';
        }
        let j = i - open;
        let mut end = 0;
        for k in 0..6 {
            if k >= usize::from(self.count) {
                break;
            }
            end = usize::from(self.ends[k]);
            if j < end {
                return digit(self.fields[k], end - j - 1);
            }
            if j == end && k + 1 < usize::from(self.count) {
                return if self.kind == kind::EPRT_V4 && k < 3 {
                    b'.'
                } else if self.kind == kind::EPRT_V4 {
                    b'|'
                } else {
                    b','
                };
            }
        }
        // After the last number: the closing character, if any, and CRLF.
        let closing = match self.kind {
            kind::REPLY_227 => b')',
            kind::PORT => 0,
            _ => b'|',
        };
        match (closing, j - end) {
            (0, 0) => b'\r',
            (0, _) => b'\n',
            (c, 0) => c,
            (_, 1) => b'\r',
            _ => b'\n',
        }
    }

    /// Writes the rendering into `out[..len]`; `false` (and `out` untouched)
    /// if it is longer than `out`.
    pub fn write(&self, out: &mut [u8]) -> bool {
        let len = usize::from(self.len);
        if len > out.len() {
            return false;
        }
        for (i, b) in out.iter_mut().take(len).enumerate() {
            *b = self.byte(i);
        }
        true
    }
}

/// An IPv4 address in the first 4 bytes of an [`Addr`].
#[inline(always)]
fn v4(addr: [u8; 4]) -> Addr {
    let mut a = [0; 16];
    a[0] = addr[0];
    a[1] = addr[1];
    a[2] = addr[2];
    a[3] = addr[3];
    a
}

/// Byte `j` of `addr` written in full (`2001:0db8:0000:...`), then `|`.
#[inline(always)]
fn v6_text(addr: &Addr, j: usize) -> u8 {
    if j >= V6_TEXT_LEN {
        return b'|';
    }
    let (group, place) = (j / 5, j % 5);
    if place == 4 {
        return b':';
    }
    // Nibble `place` of the group, from the left: bytes 2g (places 0, 1)
    // and 2g + 1 (places 2, 3).
    // `black_box` keeps the mask: the compiler knows the index is below 16,
    // the BPF verifier (which runs this in a global function) does not.
    let byte = addr[core::hint::black_box(2 * group + place / 2) & 15];
    let nibble = if place & 1 == 0 { byte >> 4 } else { byte & 15 };
    b"0123456789abcdef"[usize::from(nibble)]
}

/// The digit of `n` that is `place` places from the right, in ASCII.
#[inline(always)]
fn digit(n: u16, place: usize) -> u8 {
    let n = match place {
        0 => n,
        1 => n / 10,
        2 => n / 100,
        3 => n / 1_000,
        _ => n / 10_000,
    };
    b'0' + (n % 10) as u8
}
