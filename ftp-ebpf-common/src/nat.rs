//! Behind a 1:1 NAT (a cloud VM): the address clients reach this host at,
//! which servers announce in `227` (vsftpd `pasv_address`, proftpd
//! `MasqueradeAddress`, ...) and local clients in `PORT`/`EPRT`. User space
//! fills `FTPCT_EXTERNAL` from `--external-address`; the programs accept an
//! announcement naming the external address of the connection's local
//! address as the host's own, and key the expectation on the local address
//! the translated SYN arrives at.

use crate::Addr;

/// Key of `FTPCT_EXTERNAL`: a local address, or every local address of a
/// family ([`ExternalKey::any`]). The value is the external address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ExternalKey {
    /// `family::V4` or `family::V6`.
    pub family: u8,
    /// 1: the entry applies to every local address of the family.
    pub any: u8,
    /// Always 0.
    pub _pad: [u8; 2],
    /// The local address (all zero for `any`).
    pub local: Addr,
}

impl ExternalKey {
    /// The mapping of one local address.
    #[inline(always)]
    pub const fn new(family: u8, local: Addr) -> Self {
        Self {
            family,
            any: 0,
            _pad: [0; 2],
            local,
        }
    }

    /// The mapping of every local address of `family` without one of its own.
    #[inline(always)]
    pub const fn any(family: u8) -> Self {
        Self {
            family,
            any: 1,
            _pad: [0; 2],
            local: [0; 16],
        }
    }
}

/// Most mappings user space may write.
pub const EXTERNAL_ENTRIES: u32 = 64;
