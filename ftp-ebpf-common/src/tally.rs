//! The live entries of the tables, counted in the kernel by the
//! `ftpct_tally` program: what `ftpct status` and the metrics show. Walking a
//! million flows there takes milliseconds; copying them out to count them
//! in user space takes most of a second.

/// Counts of live (unexpired) entries, as the program writes them at the
/// start of its test-run frame (native byte order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub expectations: u64,
    /// Live flows of both flow tables.
    pub flows: u64,
    /// Of those, admitted by an expectation or the FTPS range.
    pub admitted_flows: u64,
    pub control_connections: u64,
}

impl Tally {
    /// Bytes the program writes; the frame it runs on must be at least as
    /// long (and at least an Ethernet header, as any XDP test run).
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// The counts at the start of `frame`, if it is long enough.
    pub fn from_frame(frame: &[u8]) -> Option<Self> {
        let word = |i: usize| -> Option<u64> {
            let bytes = frame.get(i * 8..i * 8 + 8)?;
            Some(u64::from_ne_bytes(bytes.try_into().ok()?))
        };
        Some(Self {
            expectations: word(0)?,
            flows: word(1)?,
            admitted_flows: word(2)?,
            control_connections: word(3)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_decodes_to_the_counts_written_at_its_start() {
        let mut frame = [0u8; 64];
        for (i, v) in [5u64, 1_000_000, 999_999, 7].into_iter().enumerate() {
            frame[i * 8..i * 8 + 8].copy_from_slice(&v.to_ne_bytes());
        }
        let t = Tally::from_frame(&frame).expect("long enough");
        assert_eq!(
            (
                t.expectations,
                t.flows,
                t.admitted_flows,
                t.control_connections
            ),
            (5, 1_000_000, 999_999, 7)
        );
        assert_eq!(Tally::from_frame(&frame[..Tally::SIZE - 1]), None);
    }
}
