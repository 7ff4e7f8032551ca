//! Ones'-complement arithmetic for the TCP checksums `--nat-rewrite`
//! corrects in place (RFC 1071, RFC 1624): plain functions of numbers,
//! tested on the host, used by both programs.

/// A ones'-complement sum of 16-bit words folded to 16 bits.
#[inline(always)]
pub fn fold(mut sum: u64) -> u16 {
    for _ in 0..4 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The checksum `check` after the data it covers changed by `diff` (the
/// ones'-complement sum of the new words and the complements of the old,
/// as `bpf_csum_diff` returns it), both in the same byte order (RFC 1624,
/// eqn. 3).
#[inline(always)]
pub fn update(check: u16, diff: u64) -> u16 {
    !fold(u64::from(!check) + diff)
}

/// The difference of replacing the 32-bit word `old` by `new` (both as
/// they are in memory, read in one byte order), for [`update`].
#[inline(always)]
pub fn diff32(old: u32, new: u32) -> u64 {
    let halves = |v: u32| u64::from(v >> 16) + u64::from(v & 0xffff);
    halves(!old) + halves(new)
}

/// A sum of words taken at an odd offset of the checksummed data is the
/// byte swap of the sum at the even offset the checksum uses.
#[inline(always)]
pub fn at_offset(sum: u16, offset: u32) -> u16 {
    if offset & 1 == 0 {
        sum
    } else {
        sum.swap_bytes()
    }
}
