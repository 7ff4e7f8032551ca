//! Case-insensitive matching of one word against a short constant list, one byte
//! at a time, so verbs and their keyword arguments need no byte buffer.

/// Which candidates the bytes seen so far still agree with. All zero is "no
/// byte seen, every candidate possible".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Keyword {
    /// Bit `i` set: candidate `i` no longer matches.
    mismatch: u8,
    /// Bytes seen, saturating.
    len: u8,
}

impl Keyword {
    /// Compares byte number `len` of the word with every candidate.
    #[inline(always)]
    pub(crate) fn push<const N: usize>(&mut self, b: u8, words: &[&[u8]; N]) {
        const { assert!(N <= 8) };
        let upper = b.to_ascii_uppercase();
        let at = usize::from(self.len);
        let mut bit = 1u8;
        for w in words {
            if w.get(at) != Some(&upper) {
                self.mismatch |= bit;
            }
            bit = bit.wrapping_shl(1);
        }
        self.len = self.len.saturating_add(1);
    }

    /// Index of the candidate equal to the whole word, if any.
    #[inline(always)]
    pub(crate) fn matched<const N: usize>(&self, words: &[&[u8]; N]) -> Option<usize> {
        const { assert!(N <= 8) };
        let mut bit = 1u8;
        for (i, w) in words.iter().enumerate() {
            if self.mismatch & bit == 0 && w.len() == usize::from(self.len) {
                return Some(i);
            }
            bit = bit.wrapping_shl(1);
        }
        None
    }

    /// Whether no byte has been seen.
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}
