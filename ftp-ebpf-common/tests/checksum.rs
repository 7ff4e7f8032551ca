//! The incremental checksum updates `--nat-rewrite` uses give what
//! computing the checksum again over the changed data gives.

use ftp_ebpf_common::checksum::{at_offset, diff32, fold, update};

/// The Internet checksum of `data` (RFC 1071), words big-endian.
fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u64;
    for pair in data.chunks(2) {
        let hi = u64::from(pair[0]) << 8;
        sum += hi | u64::from(pair.get(1).copied().unwrap_or(0));
    }
    !fold(sum)
}

/// A small deterministic generator (no dependency for one test).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn replacing_a_word_updates_the_checksum_as_recomputing_does() {
    let mut rng = Lcg(7);
    for _ in 0..10_000 {
        let mut data: Vec<u8> = (0..40).map(|_| rng.next() as u8).collect();
        let at = 4 * (rng.next() as usize % 10);
        let before = checksum(&data);
        let old = u32::from_be_bytes(data[at..at + 4].try_into().unwrap());
        let new = rng.next() as u32;
        data[at..at + 4].copy_from_slice(&new.to_be_bytes());
        assert_eq!(update(before, diff32(old, new)), checksum(&data));
    }
}

#[test]
fn a_difference_at_an_odd_offset_is_byte_swapped() {
    let mut rng = Lcg(11);
    for _ in 0..10_000 {
        let mut data: Vec<u8> = (0..40).map(|_| rng.next() as u8).collect();
        let at = 1 + 2 * (rng.next() as usize % 17);
        let before = checksum(&data);
        let old = u32::from_be_bytes(data[at..at + 4].try_into().unwrap());
        let new = rng.next() as u32;
        data[at..at + 4].copy_from_slice(&new.to_be_bytes());
        // The difference summed from the changed bytes themselves, as if
        // they started at an even offset, then moved to where they are.
        let diff = at_offset(fold(diff32(old, new)), at as u32);
        assert_eq!(update(before, u64::from(diff)), checksum(&data));
    }
}

#[test]
fn folding_keeps_every_carry() {
    assert_eq!(fold(0), 0);
    assert_eq!(fold(0xffff), 0xffff);
    assert_eq!(fold(0x1_0000), 1);
    assert_eq!(fold(u64::MAX), 0xffff);
    assert_eq!(fold(0xffff_ffff), 0xffff);
}
