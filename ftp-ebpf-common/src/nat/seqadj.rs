//! Sequence adjustment after a rewrite that changed a segment's length,
//! the way the kernel's `nf_ct_seqadj` does for `nf_nat_ftp`: one
//! correction position per stream, the offset before it and after it.
//! Segments of the rewritten stream have their sequence numbers moved by
//! the offset; the peer's acknowledgments (and SACK blocks) of that stream
//! are moved back.

/// `a` is after `b` in sequence space.
#[inline(always)]
pub fn after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

/// The adjustment of the local end's stream of one control connection.
/// All zero: nothing was rewritten to another length.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqAdjust {
    /// Sequence number (as the local end sent it) of the last segment whose
    /// rewrite changed its length.
    pub pos: u32,
    /// Offset of segments up to and including `pos`.
    pub before: i32,
    /// Offset of segments after `pos`.
    pub after: i32,
}

impl SeqAdjust {
    /// Whether any segment of the stream is moved.
    #[inline(always)]
    pub fn active(&self) -> bool {
        self.before != 0 || self.after != 0
    }

    /// The segment starting at `seq` was rewritten, `delta` bytes longer.
    /// A retransmission of the last rewritten segment (the same `seq`, or
    /// an earlier one) changes nothing: it is rewritten the same way and
    /// moved by the same offset.
    #[inline(always)]
    pub fn record(&mut self, seq: u32, delta: i32) {
        if self.before == self.after || after(seq, self.pos) {
            self.pos = seq;
            self.before = self.after;
            self.after = self.after.wrapping_add(delta);
        }
    }

    /// The offset of a segment of the stream starting at `seq`.
    #[inline(always)]
    pub fn seq_offset(&self, seq: u32) -> i32 {
        if after(seq, self.pos) {
            self.after
        } else {
            self.before
        }
    }

    /// The offset to take off an acknowledgment (or SACK edge) `ack` the
    /// peer sent for the stream, in the stream's moved space.
    #[inline(always)]
    pub fn ack_offset(&self, ack: u32) -> i32 {
        if after(ack.wrapping_sub(self.before as u32), self.pos) {
            self.after
        } else {
            self.before
        }
    }
}
