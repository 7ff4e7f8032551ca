//! Sequence adjustment after rewrites that change a segment's length, as
//! the kernel's `nf_ct_seqadj` does it: the rewritten segment keeps the
//! offset before it, later ones take the new one, a retransmission changes
//! nothing, and acknowledgments map back across the correction point,
//! through sequence-number wraparound too.

use ftp_ebpf_common::nat::seqadj::{SeqAdjust, after};

#[test]
fn nothing_moves_until_a_rewrite_changes_a_length() {
    let s = SeqAdjust::default();
    assert!(!s.active());
    assert_eq!(s.seq_offset(12_345), 0);
    assert_eq!(s.ack_offset(12_345), 0);
}

#[test]
fn segments_after_the_rewritten_one_move_and_acks_move_back() {
    let mut s = SeqAdjust::default();
    // A 30-byte PORT at 1000 became 31 bytes.
    s.record(1000, 1);
    assert!(s.active());
    assert_eq!(s.seq_offset(900), 0, "earlier segments");
    assert_eq!(s.seq_offset(1000), 0, "the rewritten segment itself");
    assert_eq!(s.seq_offset(1030), 1, "the next segment");
    // The peer acknowledges in the moved space: 1031 for the 31 bytes.
    assert_eq!(s.ack_offset(1000), 0);
    assert_eq!(1031u32.wrapping_sub(s.ack_offset(1031) as u32), 1030);
    // A retransmission of the rewritten segment records nothing new.
    s.record(1000, 1);
    assert_eq!((s.pos, s.before, s.after), (1000, 0, 1));
    // A second rewrite further on, 2 bytes shorter.
    s.record(1100, -2);
    assert_eq!((s.pos, s.before, s.after), (1100, 1, -1));
    assert_eq!(s.seq_offset(1100), 1);
    assert_eq!(s.seq_offset(1130), -1);
    assert_eq!(s.ack_offset(1101), 1, "inside the second rewritten segment");
    assert_eq!(s.ack_offset(1130), -1, "after it");
}

#[test]
fn adjustment_holds_across_sequence_wraparound() {
    let mut s = SeqAdjust::default();
    let pos = u32::MAX - 10;
    s.record(pos, 3);
    assert_eq!(s.seq_offset(pos), 0);
    assert_eq!(s.seq_offset(5), 3, "after the wrap");
    assert_eq!(s.ack_offset(pos.wrapping_add(30)), 3);
    assert!(after(5, pos) && !after(pos, 5));
}
