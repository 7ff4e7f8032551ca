//! Behind a 1:1 NAT (a cloud VM): the address clients reach this host at,
//! which servers announce in `227` (vsftpd `pasv_address`, proftpd
//! `MasqueradeAddress`, ...) and local clients in `PORT`/`EPRT`. User space
//! fills `FTPCT_EXTERNAL` from `--external-address`; the programs accept an
//! announcement naming the external address of the connection's local
//! address as the host's own, and key the expectation on the local address
//! the translated SYN arrives at.

use crate::Addr;

/// Key of `FTPCT_EXTERNAL`: a local address, or every local address of a
/// family ([`ExternalKey::any`]). The value is the external address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ExternalKey {
    /// `family::V4` or `family::V6`.
    pub family: u8,
    /// 1: the entry applies to every local address of the family.
    pub any: u8,
    /// Always 0.
    pub _pad: [u8; 2],
    /// The local address (all zero for `any`).
    pub local: Addr,
}

impl ExternalKey {
    /// The mapping of one local address.
    #[inline(always)]
    pub const fn new(family: u8, local: Addr) -> Self {
        Self {
            family,
            any: 0,
            _pad: [0; 2],
            local,
        }
    }

    /// The mapping of every local address of `family` without one of its own.
    #[inline(always)]
    pub const fn any(family: u8) -> Self {
        Self {
            family,
            any: 1,
            _pad: [0; 2],
            local: [0; 16],
        }
    }
}

/// Most mappings user space may write.
pub const EXTERNAL_ENTRIES: u32 = 64;

/// Longest reply `--nat-rewrite` rewrites (all its lines, line ends
/// included); a longer one is left as it is and counted.
pub const REWRITE_MAX: usize = 128;

/// Text a rewritten `227` carries before its numbers, where it fits.
const PASSIVE_TEXT: &[u8] = b"Entering Passive Mode ";

/// `NatRewrite::stage` values.
pub mod rewrite_stage {
    /// Nothing to rewrite.
    pub const NONE: u8 = 0;
    /// A `227` naming the local address passed the rules and is to name
    /// the external one; where it lies in the stream is not known yet.
    pub const WANTED: u8 = 1;
    /// Placed in the stream (`seq`, `len`), not yet written.
    pub const PLACED: u8 = 2;
    /// Written at least once: a later copy is a retransmission.
    pub const WRITTEN: u8 = 3;
}

/// The last `227` of a control connection that `--nat-rewrite` rewrites:
/// enough to write it again, byte for byte, into every retransmission of
/// the segments that carry it. The reply is replaced whole by one of the
/// same length ([`render_227`]), so the TCP stream keeps its length and no
/// sequence number changes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NatRewrite {
    /// Sequence number of the reply's first byte.
    pub seq: u32,
    /// The reply's length in bytes, line ends included (at most [`REWRITE_MAX`]).
    pub len: u16,
    /// The announced port.
    pub port: u16,
    /// The external IPv4 address the reply names instead of the local one.
    pub addr: [u8; 4],
    /// `rewrite_stage::*`.
    pub stage: u8,
    /// Always 0.
    pub _pad: [u8; 3],
}

/// Decimal digits of `n`.
#[inline(always)]
fn digits(n: u8) -> u8 {
    if n >= 100 {
        3
    } else if n >= 10 {
        2
    } else {
        1
    }
}

/// The numbers of an announcement of `addr`:`port`: `h1..h4,p1,p2`.
#[inline(always)]
fn numbers(addr: [u8; 4], port: u16) -> [u8; 6] {
    let [p1, p2] = port.to_be_bytes();
    [addr[0], addr[1], addr[2], addr[3], p1, p2]
}

/// The shortest reply [`Render227`] can write for `addr` and `port`:
/// `227 (h1,h2,h3,h4,p1,p2)` and CRLF.
#[inline(always)]
pub fn min_227_len(addr: [u8; 4], port: u16) -> usize {
    let nums = numbers(addr, port);
    let mut total = 0;
    for n in nums {
        total += usize::from(digits(n));
    }
    // "227 " + "(" + numbers and five commas + ")" + CRLF.
    4 + 1 + total + 5 + 1 + 2
}

/// A single-line `227` reply of a given length announcing an address and
/// port: `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)` and CRLF, with the
/// text shortened to spaces, or spaces added after it, to make the length.
/// Clients find the numbers by scanning the text (RFC 1123 4.1.2.6), so the
/// wording is free.
///
/// Built as a layout and read a byte at a time ([`Render227::byte`]): the
/// BPF verifier checks a per-byte function once, where a writer whose
/// position depends on every number's digit count multiplies its paths.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Render227 {
    /// The reply's length.
    pub len: u16,
    /// Offset of `(`.
    pub open: u16,
    /// The six numbers.
    pub nums: [u8; 6],
    /// Where each number ends in the text after `(` (exclusive).
    pub ends: [u8; 6],
    /// 1 if the filler starts with `Entering Passive Mode `.
    pub text: u8,
    /// Always 0.
    pub _pad: u8,
}

impl Render227 {
    /// The layout of a reply of `len` bytes announcing `addr`:`port`; `None`
    /// if `len` is shorter than [`min_227_len`] or longer than [`REWRITE_MAX`].
    #[inline(always)]
    pub fn new(len: usize, addr: [u8; 4], port: u16) -> Option<Self> {
        let fixed = min_227_len(addr, port);
        if len < fixed || len > REWRITE_MAX {
            return None;
        }
        let fill = len - fixed;
        let nums = numbers(addr, port);
        let mut ends = [0u8; 6];
        let mut end = 0u8;
        for (k, n) in nums.into_iter().enumerate() {
            if k > 0 {
                end += 1;
            }
            end += digits(n);
            ends[k] = end;
        }
        Some(Self {
            len: len as u16,
            open: (4 + fill) as u16,
            nums,
            ends,
            text: u8::from(fill >= PASSIVE_TEXT.len()),
            _pad: 0,
        })
    }

    /// Byte `i` of the reply (0 past its end).
    #[inline(always)]
    pub fn byte(&self, i: usize) -> u8 {
        const HEAD: &[u8; 4] = b"227 ";
        let open = usize::from(self.open);
        if i >= usize::from(self.len) {
            return 0;
        }
        if i < HEAD.len() {
            return HEAD[i];
        }
        if i < open {
            return match PASSIVE_TEXT.get(i - HEAD.len()) {
                Some(&b) if self.text != 0 => b,
                _ => b' ',
            };
        }
        if i == open {
            return b'(';
        }
        let j = i - open - 1;
        let mut start = 0;
        for k in 0..6 {
            let end = usize::from(self.ends[k]);
            if j < end {
                return digit(self.nums[k], end - j - 1);
            }
            if j == end {
                return if k < 5 { b',' } else { b')' };
            }
            start = end + 1;
        }
        match j - start {
            0 => b'\r',
            _ => b'\n',
        }
    }
}

/// The digit of `n` that is `place` places from the right, in ASCII.
#[inline(always)]
fn digit(n: u8, place: usize) -> u8 {
    let n = match place {
        0 => n,
        1 => n / 10,
        _ => n / 100,
    };
    b'0' + n % 10
}

/// Writes into `out[..len]` the reply of [`Render227`]; `false` (and `out`
/// untouched) if it does not fit in `len` bytes.
pub fn render_227(out: &mut [u8; REWRITE_MAX], len: usize, addr: [u8; 4], port: u16) -> bool {
    let Some(r) = Render227::new(len, addr, port) else {
        return false;
    };
    for (i, b) in out.iter_mut().take(len).enumerate() {
        *b = r.byte(i);
    }
    true
}
