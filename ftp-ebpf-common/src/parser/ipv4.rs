//! Streaming dotted-quad parser (`a.b.c.d`, 1-3 decimal digits per octet, each
//! 0..=255) for `EPRT |1|` and the IPv4 tail of IPv6 text.

/// Octets parsed so far. All zero is "nothing seen".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DottedQuad {
    /// Completed octets.
    octets: [u8; 4],
    /// Value of the octet being read (at most 999).
    cur: u16,
    /// Completed octets (0..=3).
    idx: u8,
    /// Digits of the octet being read (0..=3).
    digits: u8,
}

impl DottedQuad {
    /// Starts with an octet already read elsewhere (the IPv6 parser sees the
    /// first octet as a hex group until the `.`); `false` if it is invalid.
    #[inline(always)]
    pub(crate) fn start_with(&mut self, value: u16, digits: u8) -> bool {
        *self = Self {
            cur: value,
            digits,
            ..Self::default()
        };
        value <= 255 && (1..=3).contains(&digits)
    }

    /// Takes a digit or a dot; `false` if the text can no longer be valid.
    #[inline(always)]
    pub(crate) fn push(&mut self, b: u8) -> bool {
        if b.is_ascii_digit() {
            self.digits = self.digits.saturating_add(1);
            self.cur = self
                .cur
                .wrapping_mul(10)
                .wrapping_add(u16::from(b.wrapping_sub(b'0')));
            self.digits <= 3 && self.cur <= 255
        } else if b == b'.' {
            if self.digits == 0 || self.idx >= 3 {
                return false;
            }
            self.store();
            true
        } else {
            false
        }
    }

    /// The four octets if the text seen is a complete dotted quad.
    #[inline(always)]
    pub(crate) fn finish(&mut self) -> Option<[u8; 4]> {
        if self.idx != 3 || self.digits == 0 || self.digits > 3 || self.cur > 255 {
            return None;
        }
        self.store();
        Some(self.octets)
    }

    /// Moves the current octet into place.
    #[inline(always)]
    fn store(&mut self) {
        let [lo, _] = self.cur.to_le_bytes();
        self.octets[usize::from(crate::verifier::opaque(self.idx) & 3)] = lo;
        self.idx = self.idx.saturating_add(1);
        self.cur = 0;
        self.digits = 0;
    }
}
