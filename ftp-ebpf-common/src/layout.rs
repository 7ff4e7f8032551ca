//! The layout of the pinned maps, versioned (issue #12, item 3). A new
//! ftpct replaces the programs of a running attachment and keeps its maps
//! only when it reads them the same way: same version. Any change to a
//! map's key or value, the counters or the set of maps bumps
//! `LAYOUT_VERSION`; the fingerprint test below fails until it does.

/// The version of the map layout this build reads and writes.
pub const LAYOUT_VERSION: u32 = 1;

/// What `FTPCT_LAYOUT` holds: the layout version and which build of the
/// programs runs (a hash of the object file), so that a new binary knows
/// whether it has programs to replace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// `LAYOUT_VERSION` of the ftpct that created the maps.
    pub version: u32,
    _pad: u32,
    /// FNV-1a of the object file whose programs run.
    pub object_hash: u64,
}

impl Layout {
    /// The record of maps in `version`, run by programs of `object_hash`.
    pub const fn new(version: u32, object_hash: u64) -> Self {
        Self {
            version,
            _pad: 0,
            object_hash,
        }
    }
}

/// FNV-1a, 64 bits: a stable fingerprint of the object file.
pub const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use core::mem::size_of;

    use super::*;
    use crate::{
        attachment::Attachment,
        control::{ControlKey, ControlState},
        counters::COUNTER_COUNT,
        events::{Event, EventRate},
        flow::{BounceKey, ClientKey, ClientValue, ExpectKey, ExpectValue, FlowKey, FlowValue},
        ftps::{FtpsKey, FtpsSessions},
        map_names,
        nat::ExternalKey,
        policy::Policy,
        tls::{TlsCall, TlsConfig, TlsObject, TlsTie},
    };

    /// Every size a pinned map's reader depends on. When this changes,
    /// bump `LAYOUT_VERSION` and write the new values here.
    #[test]
    fn the_map_layout_matches_its_version() {
        let sizes = [
            size_of::<Attachment>(),
            size_of::<ControlKey>(),
            size_of::<ControlState>(),
            size_of::<Event>(),
            size_of::<EventRate>(),
            size_of::<BounceKey>(),
            size_of::<ClientKey>(),
            size_of::<ClientValue>(),
            size_of::<ExpectKey>(),
            size_of::<ExpectValue>(),
            size_of::<FlowKey>(),
            size_of::<FlowValue>(),
            size_of::<FtpsKey>(),
            size_of::<FtpsSessions>(),
            size_of::<ExternalKey>(),
            size_of::<Policy>(),
            size_of::<TlsCall>(),
            size_of::<TlsConfig>(),
            size_of::<TlsObject>(),
            size_of::<TlsTie>(),
            size_of::<Layout>(),
            COUNTER_COUNT as usize,
            map_names::ALL.len(),
        ];
        let recorded: (u32, [usize; 23]) = (LAYOUT_VERSION, sizes);
        assert_eq!(
            recorded,
            (
                1,
                [
                    16, 40, 400, 56, 16, 20, 20, 40, 36, 16, 40, 16, 36, 32, 20, 48, 32, 32, 16,
                    48, 16, 75, 19
                ]
            ),
            "the map layout changed: bump LAYOUT_VERSION and record these sizes"
        );
    }

    /// MAPS.md documents this layout: its version, and every map.
    #[test]
    fn maps_md_describes_this_layout() {
        extern crate std;
        use std::{format, vec::Vec};
        let doc = include_str!("../../MAPS.md");
        assert!(
            doc.starts_with(&format!("# ftpct's maps (layout version {LAYOUT_VERSION})")),
            "MAPS.md names another version"
        );
        let rows: Vec<&str> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
            .collect();
        let mut want: Vec<&str> = map_names::ALL.to_vec();
        let mut got = rows.clone();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "MAPS.md's table and map_names::ALL differ");
        for transient in map_names::TRANSIENT {
            assert!(
                doc.contains(transient),
                "MAPS.md does not mention {transient}"
            );
        }
        assert!(
            doc.contains(&format!("| {COUNTER_COUNT} |")),
            "counter count"
        );
    }

    #[test]
    fn fnv1a_is_the_reference_function() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
