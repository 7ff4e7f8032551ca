//! Behind a 1:1 NAT (a cloud VM): the address clients reach this host at,
//! which servers announce in `227` (vsftpd `pasv_address`, proftpd
//! `MasqueradeAddress`, ...) and local clients in `PORT`/`EPRT`. User space
//! fills `FTPCT_EXTERNAL` from `--external-address`; the programs accept an
//! announcement naming the external address of the connection's local
//! address as the host's own, and key the expectation on the local address
//! the translated SYN arrives at.

use crate::Addr;

pub mod render;
pub mod seqadj;

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

/// Longest reply or command `--nat-rewrite` rewrites (all its lines, line
/// ends included); a longer one is left as it is and counted.
pub const REWRITE_MAX: usize = 128;

/// `NatRewrite::stage` values.
pub mod rewrite_stage {
    /// Nothing to rewrite.
    pub const NONE: u8 = 0;
    /// A `227` naming the local address passed the rules and is to name
    /// the external one; where it lies in the stream is not known yet.
    pub const WANTED: u8 = 1;
    /// Placed in the stream (`seq`, `len`), not yet written.
    pub const PLACED: u8 = 2;
    /// Written at least once: a later copy is a retransmission.
    pub const WRITTEN: u8 = 3;
    /// A flag on the stage: the local end closed a connection whose stream
    /// moved. Its state is kept, unparsed, only to go on moving the last
    /// segments of the close (conntrack keeps its seqadj through
    /// TIME_WAIT), and to rewrite a retransmission of what was written
    /// (the stage below the flag says what); the sweep removes it after
    /// the closing timeout.
    pub const CLOSED: u8 = 0x80;
}

/// The last announcement of a control connection that `--nat-rewrite`
/// rewrites: enough to write it again, byte for byte, into every
/// retransmission of the segments that carry it. A `227` is replaced whole
/// by a reply of the same length ([`render::Rendering::reply_227`]), so the
/// stream keeps its length; a `PORT`/`EPRT` has no text to shorten, so its
/// length changes and the rest of the stream moves ([`seqadj`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NatRewrite {
    /// Sequence number of the reply's first byte.
    pub seq: u32,
    /// The reply's length in bytes, line ends included (at most [`REWRITE_MAX`]).
    pub len: u16,
    /// The announced port.
    pub port: u16,
    /// `rewrite_stage::*`, with the `CLOSED` flag (see the methods).
    pub stage: u8,
    /// `render::kind::*`: what is written.
    pub kind: u8,
    /// Always 0.
    pub _pad: [u8; 2],
    /// The external address named instead of the local one (IPv4 in the
    /// first 4 bytes).
    pub addr: Addr,
}

impl NatRewrite {
    /// `rewrite_stage::*` without the `CLOSED` flag.
    #[inline(always)]
    pub fn stage(&self) -> u8 {
        self.stage & !rewrite_stage::CLOSED
    }

    /// Whether the local end closed the connection (`rewrite_stage::CLOSED`).
    #[inline(always)]
    pub fn closed(&self) -> bool {
        self.stage & rewrite_stage::CLOSED != 0
    }

    /// Marks the connection closed, keeping the stage.
    #[inline(always)]
    pub fn close(&mut self) {
        self.stage |= rewrite_stage::CLOSED;
    }

    /// Sets the stage, keeping the `CLOSED` flag.
    #[inline(always)]
    pub fn set_stage(&mut self, stage: u8) {
        self.stage = stage | (self.stage & rewrite_stage::CLOSED);
    }
}
