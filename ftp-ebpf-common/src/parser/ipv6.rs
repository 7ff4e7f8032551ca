//! Streaming IPv6 text parser for `EPRT |2|`: every RFC 4291 2.2 form (full,
//! `::` compression anywhere, 1-4 hex digits per group in any case, an IPv4 tail
//! in the last 32 bits). Groups are written to the caller's 16-byte address as
//! they complete; `finish` moves the groups after `::` to the end.

use super::ipv4::DottedQuad;

/// Nothing seen yet.
const START: u8 = 0;
/// A single leading `:` (must be followed by another).
const LEAD_COLON: u8 = 1;
/// A `:` after a group.
const COLON: u8 = 2;
/// The `::`.
const DCOLON: u8 = 3;
/// Inside a hex group.
const HEX: u8 = 4;
/// Inside the dotted IPv4 tail.
const DOTTED: u8 = 5;

/// Parse state. All zero is "nothing seen".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Ipv6Text {
    /// The IPv4 tail, once a `.` has been seen.
    quad: DottedQuad,
    /// Value of the group being read.
    tok: u16,
    /// Hex digits of the group being read (0..=4).
    tok_len: u8,
    /// Groups stored so far (0..=8).
    groups: u8,
    /// 1 + the group index where `::` stands; 0 if there is none.
    dcolon: u8,
    /// What the previous byte was (`START`, `COLON`, ...).
    prev: u8,
}

impl Ipv6Text {
    /// Takes one byte of address text; `false` if the text can no longer be valid.
    #[inline]
    pub(crate) fn push(&mut self, b: u8, addr: &mut [u8; 16]) -> bool {
        if self.prev == DOTTED {
            return self.quad.push(b);
        }
        if self.prev == LEAD_COLON && b != b':' {
            return false;
        }
        if let Some(v) = hex_value(b) {
            if self.tok_len >= 4 {
                return false;
            }
            self.tok = (self.tok << 4) | u16::from(v);
            self.tok_len += 1;
            self.prev = HEX;
            return true;
        }
        match (self.prev, b) {
            (START, b':') => self.prev = LEAD_COLON,
            (LEAD_COLON | COLON, b':') => {
                if self.dcolon != 0 {
                    return false;
                }
                self.dcolon = self.groups.saturating_add(1);
                self.prev = DCOLON;
            }
            (HEX, b':') => {
                if !self.push_group(addr) {
                    return false;
                }
                self.prev = COLON;
            }
            (HEX, b'.') => return self.start_dotted(),
            _ => return false,
        }
        true
    }

    /// Completes the address in `addr`; `false` if the text is not a valid
    /// IPv6 address.
    #[inline]
    pub(crate) fn finish(&mut self, addr: &mut [u8; 16]) -> bool {
        match self.prev {
            HEX => {
                if !self.push_group(addr) {
                    return false;
                }
            }
            DCOLON => {}
            DOTTED => {
                let Some([a, b, c, d]) = self.quad.finish() else {
                    return false;
                };
                if self.groups > 6 {
                    return false;
                }
                set_group(addr, self.groups, u16::from_be_bytes([a, b]));
                set_group(addr, self.groups + 1, u16::from_be_bytes([c, d]));
                self.groups += 2;
            }
            _ => return false,
        }
        if self.dcolon == 0 {
            return self.groups == 8;
        }
        // `::` stands for at least one zero group.
        if self.groups > 7 {
            return false;
        }
        expand(
            addr,
            self.dcolon.wrapping_sub(1),
            8u8.wrapping_sub(self.groups),
        );
        true
    }

    /// Stores the group just read.
    #[inline(always)]
    fn push_group(&mut self, addr: &mut [u8; 16]) -> bool {
        if self.groups >= 8 {
            return false;
        }
        set_group(addr, self.groups, self.tok);
        self.groups += 1;
        self.tok = 0;
        self.tok_len = 0;
        true
    }

    /// The group just read was the first decimal octet of an IPv4 tail.
    #[inline(always)]
    fn start_dotted(&mut self) -> bool {
        let [d2, d1, d0] = [(self.tok >> 8) & 15, (self.tok >> 4) & 15, self.tok & 15];
        if self.tok_len > 3 || d2 > 9 || d1 > 9 || d0 > 9 || self.groups > 6 {
            return false;
        }
        self.prev = DOTTED;
        self.quad.start_with(d2 * 100 + d1 * 10 + d0, self.tok_len) && self.quad.push(b'.')
    }
}

/// Value of a hex digit in any case.
#[inline(always)]
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Reads group `i` (0..=7) in network byte order.
#[inline(always)]
fn group(addr: &[u8; 16], i: u8) -> u16 {
    let j = usize::from(crate::verifier::opaque(i) & 7) * 2;
    u16::from_be_bytes([addr[j], addr[j | 1]])
}

/// Writes group `i` (0..=7) in network byte order.
#[inline(always)]
fn set_group(addr: &mut [u8; 16], i: u8, v: u16) {
    let j = usize::from(crate::verifier::opaque(i) & 7) * 2;
    let [hi, lo] = v.to_be_bytes();
    addr[j] = hi;
    addr[j | 1] = lo;
}

/// Inserts `zeros` zero groups at group index `at`, moving the groups after it
/// to the end. Walks down from the last group so no source is overwritten first.
#[inline(always)]
fn expand(addr: &mut [u8; 16], at: u8, zeros: u8) {
    let mut i = 8u8;
    while i > 0 {
        i -= 1;
        let v = if i >= at.saturating_add(zeros) {
            group(addr, i.wrapping_sub(zeros))
        } else if i >= at {
            0
        } else {
            group(addr, i)
        };
        set_group(addr, i, v);
    }
}
