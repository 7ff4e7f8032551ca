//! RFC 2428 extended forms: the `EPRT <d><af><d><addr><d><port><d>` argument and
//! the `(<d><d><d><port><d>)` of `229` replies.

use super::ipv4::DottedQuad;
use super::ipv6::Ipv6Text;
use super::{Endpoint, RefuseReason, Scan};

// EPRT phases.
/// Spaces before the first delimiter.
const E_LEAD: u8 = 0;
/// The address family.
const E_AF: u8 = 1;
/// The delimiter after the family.
const E_AF_END: u8 = 2;
/// The address.
const E_ADDR: u8 = 3;
/// The port.
const E_PORT: u8 = 4;
/// Spaces after the last delimiter.
const E_TRAIL: u8 = 5;
/// Refused, see `err`.
const E_FAIL: u8 = 6;

// `229` phases.
/// Looking for `(`.
const R_SEEK: u8 = 0;
/// First delimiter.
const R_D1: u8 = 1;
/// Second delimiter.
const R_D2: u8 = 2;
/// Third delimiter.
const R_D3: u8 = 3;
/// The port, up to the fourth delimiter.
const R_PORT: u8 = 4;
/// The closing `)`.
const R_CLOSE: u8 = 5;
/// Found; the rest of the line is ignored.
const R_DONE: u8 = 6;

/// Parse state for one line. All zero is "nothing seen".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Extended {
    /// Port being read (at most 5 digits, so at most 99999).
    port: u32,
    /// `EPRT |2|` address text.
    v6: Ipv6Text,
    /// `EPRT |1|` address text.
    v4: DottedQuad,
    /// `E_*` or `R_*`.
    phase: u8,
    /// The delimiter, once seen.
    delim: u8,
    /// Digits of the port, or bytes of the address, being read (saturating).
    digits: u8,
    /// `EPRT` address family, 1 or 2, once seen.
    af: u8,
    /// `EPRT`: why it was refused, once `phase == E_FAIL`.
    err: RefuseReason,
    /// Padding, always 0.
    _pad: [u8; 3],
}

impl Extended {
    /// `EPRT` argument byte. The address is written to `ep.addr` as it is read.
    #[inline]
    pub(crate) fn eprt_byte(&mut self, b: u8, ep: &mut Endpoint) {
        let step = match self.phase {
            E_LEAD if b == b' ' => Ok(()),
            E_LEAD if is_delimiter(b) => {
                self.delim = b;
                self.phase = E_AF;
                Ok(())
            }
            E_LEAD => Err(RefuseReason::BadDelimiter),
            E_AF if b == self.delim => Err(RefuseReason::MissingFields),
            E_AF if b == b'1' || b == b'2' => {
                self.af = b.wrapping_sub(b'0');
                self.phase = E_AF_END;
                Ok(())
            }
            E_AF => Err(RefuseReason::BadFamily),
            E_AF_END if b == self.delim => {
                self.phase = E_ADDR;
                Ok(())
            }
            E_AF_END if b.is_ascii_digit() => Err(RefuseReason::BadFamily),
            E_AF_END => Err(RefuseReason::BadDelimiter),
            E_ADDR if b == self.delim => self.end_address(ep),
            E_ADDR => self.address_byte(b, &mut ep.addr),
            E_PORT if b == self.delim => self.port_value().map(|port| {
                ep.port = port;
                self.phase = E_TRAIL;
            }),
            E_PORT => self.port_digit(b),
            E_TRAIL if b == b' ' => Ok(()),
            E_TRAIL => Err(RefuseReason::BadSyntax),
            _ => Ok(()),
        };
        if let Err(reason) = step {
            self.err = reason;
            self.phase = E_FAIL;
        }
    }

    /// End of an `EPRT` line: the endpoint is complete, or why not.
    #[inline]
    pub(crate) fn eprt_end(&self, ep: &mut Endpoint) -> Result<(), RefuseReason> {
        match self.phase {
            E_TRAIL => {
                ep.family = if self.af == 1 { 4 } else { 6 };
                Ok(())
            }
            E_FAIL => Err(self.err),
            _ => Err(RefuseReason::MissingFields),
        }
    }

    /// `229` text byte: looks for `(<d><d><d><port><d>)`.
    #[inline]
    pub(crate) fn reply_byte(&mut self, b: u8, ep: &mut Endpoint) -> Scan {
        let step = match self.phase {
            R_SEEK => {
                if b == b'(' {
                    self.phase = R_D1;
                }
                Ok(())
            }
            R_D1 if is_delimiter(b) => {
                self.delim = b;
                self.phase = R_D2;
                Ok(())
            }
            R_D2 | R_D3 if b == self.delim => {
                self.phase = self.phase.wrapping_add(1);
                Ok(())
            }
            R_D1..=R_D3 => Err(RefuseReason::BadDelimiter),
            R_PORT if b == self.delim => self.port_value().map(|_| self.phase = R_CLOSE),
            R_PORT => self.port_digit(b),
            R_CLOSE if b == b')' => {
                self.phase = R_DONE;
                *ep = Endpoint {
                    port: self.port_value().unwrap_or(0),
                    ..Endpoint::default()
                };
                return Scan::Found;
            }
            R_CLOSE => Err(RefuseReason::BadSyntax),
            _ => Ok(()),
        };
        match step {
            Ok(()) => Scan::Pending,
            Err(reason) => {
                // Look for another `(`, starting with this byte.
                *self = Self {
                    phase: if b == b'(' { R_D1 } else { R_SEEK },
                    ..Self::default()
                };
                Scan::Bad(reason)
            }
        }
    }

    /// End of a `229` line: an unfinished `(...` is missing its tail.
    #[inline]
    pub(crate) fn reply_end(&self) -> Scan {
        match self.phase {
            R_D1..=R_CLOSE => Scan::Bad(RefuseReason::MissingFields),
            _ => Scan::Pending,
        }
    }

    /// One byte of the `EPRT` address (not the delimiter).
    #[inline(always)]
    fn address_byte(&mut self, b: u8, addr: &mut [u8; 16]) -> Result<(), RefuseReason> {
        self.digits = self.digits.saturating_add(1);
        let ok = if self.af == 1 {
            self.v4.push(b)
        } else {
            self.v6.push(b, addr)
        };
        if ok {
            Ok(())
        } else if is_delimiter(b) && !b.is_ascii_alphanumeric() && !b".:%".contains(&b) {
            // Punctuation that is no address text of any family (nor a zone
            // id): most likely a third delimiter that differs from the others.
            Err(RefuseReason::BadDelimiter)
        } else {
            Err(RefuseReason::BadAddress)
        }
    }

    /// The delimiter after the `EPRT` address: validates it.
    #[inline(always)]
    fn end_address(&mut self, ep: &mut Endpoint) -> Result<(), RefuseReason> {
        if self.digits == 0 {
            return Err(RefuseReason::MissingFields);
        }
        if self.af == 1 {
            let [a, b, c, d] = self.v4.finish().ok_or(RefuseReason::BadAddress)?;
            ep.addr = [a, b, c, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        } else {
            if !self.v6.finish(&mut ep.addr) {
                return Err(RefuseReason::BadAddress);
            }
            if is_mapped_or_compatible(&ep.addr) {
                return Err(RefuseReason::MappedAddress);
            }
        }
        self.phase = E_PORT;
        self.digits = 0;
        self.port = 0;
        Ok(())
    }

    /// One byte of a port field (not the delimiter).
    #[inline(always)]
    fn port_digit(&mut self, b: u8) -> Result<(), RefuseReason> {
        if !b.is_ascii_digit() {
            return Err(if is_delimiter(b) && !b.is_ascii_alphanumeric() {
                RefuseReason::BadDelimiter
            } else {
                RefuseReason::BadSyntax
            });
        }
        self.digits = self.digits.saturating_add(1);
        self.port = self
            .port
            .wrapping_mul(10)
            .wrapping_add(u32::from(b.wrapping_sub(b'0')));
        if self.digits > 5 || self.port > 65535 {
            return Err(RefuseReason::PortTooLarge);
        }
        Ok(())
    }

    /// The port field just ended with its delimiter: 1..=65535, or why not.
    #[inline(always)]
    fn port_value(&self) -> Result<u16, RefuseReason> {
        if self.digits == 0 {
            return Err(RefuseReason::MissingFields);
        }
        match u16::try_from(self.port) {
            Ok(0) => Err(RefuseReason::PortZero),
            Ok(port) => Ok(port),
            Err(_) => Err(RefuseReason::PortTooLarge),
        }
    }
}

/// RFC 2428: delimiters are ASCII 33..=126.
#[inline(always)]
fn is_delimiter(b: u8) -> bool {
    (33..=126).contains(&b)
}

/// `::ffff:0:0/96` (IPv4-mapped) or `::a.b.c.d` (IPv4-compatible, RFC 4291
/// 2.5.5.1): an IPv4 peer disguised as IPv6. `::` and `::1` are not IPv4.
#[inline(always)]
fn is_mapped_or_compatible(a: &[u8; 16]) -> bool {
    let high = u64::from_be_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]);
    let mid = u32::from_be_bytes([a[8], a[9], a[10], a[11]]);
    let low = u32::from_be_bytes([a[12], a[13], a[14], a[15]]);
    high == 0 && (mid == 0xffff || (mid == 0 && low > 1))
}
