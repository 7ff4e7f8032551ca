//! The six numbers `h1,h2,h3,h4,p1,p2` of `PORT` (strict: the whole argument)
//! and of `227` replies (lenient: RFC 1123 4.1.2.6 says to scan the reply text
//! for them, because servers word the text freely).

use super::{Endpoint, RefuseReason, Scan};

/// Not inside a run of numbers (`227`) / before the first digit (`PORT`).
const IDLE: u8 = 0;
/// Inside a number.
const NUM: u8 = 1;
/// After a comma, before the next number's first digit.
const COMMA: u8 = 2;
/// `PORT` only: spaces after the last number.
const TRAIL: u8 = 3;
/// `PORT` only: refused, see `err`.
const FAIL: u8 = 4;

/// Scanner state. All zero is "nothing seen".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SixNumbers {
    /// The first six numbers of the run (truncated when too large; then `big`).
    vals: [u8; 6],
    /// Value of the number being read, saturating.
    cur: u16,
    /// Digits of the number being read, saturating.
    digits: u8,
    /// Numbers completed in the run, saturating.
    count: u8,
    /// `IDLE`, `NUM`, `COMMA`, `TRAIL` or `FAIL`.
    phase: u8,
    /// Some number of the run is above 255 or longer than 3 digits.
    big: bool,
    /// `PORT`: why it was refused, once `phase == FAIL`.
    err: RefuseReason,
    /// Padding, always 0.
    _pad: u8,
}

impl SixNumbers {
    /// `227` text byte: returns a verdict when a run of at least two numbers ends.
    #[inline]
    pub(crate) fn scan_byte(&mut self, b: u8, ep: &mut Endpoint) -> Scan {
        if b.is_ascii_digit() {
            if self.phase == IDLE {
                *self = Self::default();
            }
            self.digit(b);
            return Scan::Pending;
        }
        match (self.phase, b) {
            (NUM, b',') => {
                self.end_number();
                self.phase = COMMA;
                Scan::Pending
            }
            (COMMA, b' ') | (IDLE, _) => Scan::Pending,
            _ => self.scan_end(ep),
        }
    }

    /// End of a `227` line: judges the run in progress, if any.
    #[inline]
    pub(crate) fn scan_end(&mut self, ep: &mut Endpoint) -> Scan {
        if self.phase == NUM {
            self.end_number();
        }
        let was_run = self.phase != IDLE;
        self.phase = IDLE;
        if !was_run || self.count < 2 {
            return Scan::Pending;
        }
        match self.verdict(ep) {
            Ok(()) => Scan::Found,
            Err(reason) => Scan::Bad(reason),
        }
    }

    /// `PORT` argument byte: exactly six numbers, spaces only around them.
    #[inline]
    pub(crate) fn port_byte(&mut self, b: u8) {
        let step = match (self.phase, b) {
            (IDLE | COMMA | NUM, b'0'..=b'9') => {
                self.digit(b);
                if self.big {
                    Err(RefuseReason::NumberTooLarge)
                } else {
                    Ok(())
                }
            }
            (IDLE | TRAIL, b' ') => Ok(()),
            (NUM, b',') => {
                self.end_number();
                self.phase = COMMA;
                if self.count >= 6 {
                    Err(RefuseReason::TooManyNumbers)
                } else {
                    Ok(())
                }
            }
            (NUM, b' ') => {
                self.end_number();
                self.phase = TRAIL;
                Ok(())
            }
            (FAIL, _) => Ok(()),
            _ => Err(RefuseReason::BadSyntax),
        };
        if let Err(reason) = step {
            self.err = reason;
            self.phase = FAIL;
        }
    }

    /// End of a `PORT` line: the endpoint, or why not.
    #[inline]
    pub(crate) fn port_end(&mut self, ep: &mut Endpoint) -> Result<(), RefuseReason> {
        match self.phase {
            FAIL => return Err(self.err),
            NUM => self.end_number(),
            _ => {}
        }
        self.verdict(ep)
    }

    /// Adds a digit to the number being read (starting one after a comma).
    #[inline(always)]
    fn digit(&mut self, b: u8) {
        if self.phase != NUM {
            self.cur = 0;
            self.digits = 0;
            self.phase = NUM;
        }
        self.cur = self
            .cur
            .saturating_mul(10)
            .saturating_add(u16::from(b.wrapping_sub(b'0')));
        self.digits = self.digits.saturating_add(1);
        if self.cur > 255 || self.digits > 3 {
            self.big = true;
        }
    }

    /// Records the number just read.
    #[inline(always)]
    fn end_number(&mut self) {
        if let Some(slot) = self.vals.get_mut(usize::from(self.count)) {
            let [lo, _] = self.cur.to_le_bytes();
            *slot = lo;
        }
        self.count = self.count.saturating_add(1);
    }

    /// Judges a completed run of numbers.
    #[inline(always)]
    fn verdict(&self, ep: &mut Endpoint) -> Result<(), RefuseReason> {
        if self.count > 6 {
            return Err(RefuseReason::TooManyNumbers);
        }
        if self.big {
            return Err(RefuseReason::NumberTooLarge);
        }
        if self.count < 6 {
            return Err(RefuseReason::MissingFields);
        }
        let [a, b, c, d, p1, p2] = self.vals;
        let port = u16::from_be_bytes([p1, p2]);
        if port == 0 {
            return Err(RefuseReason::PortZero);
        }
        *ep = Endpoint {
            port,
            family: 4,
            _pad: 0,
            addr: [a, b, c, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        };
        Ok(())
    }
}
