//! How an attachment hooked into its interface: written by `ftpct attach`
//! into a one-entry map pinned with the others, read by `status` and
//! `detach`. A classic `clsact` filter is not a bpf_link and cannot be
//! pinned; this record is what lets `detach` find and remove exactly what
//! `attach` added, and nothing another tool put there.

/// Through which hook the egress program runs.
pub mod egress_hook {
    /// A tcx bpf_link (Linux 6.6+), pinned as `link_egress`.
    pub const TCX: u8 = 1;
    /// A `cls_bpf` filter on the `clsact` qdisc (older kernels).
    pub const CLSACT: u8 = 2;
}

/// In which mode the XDP program runs.
pub mod xdp_mode {
    /// In the driver (native XDP).
    pub const NATIVE: u8 = 1;
    /// On the skb (generic XDP), where the driver has no native XDP.
    pub const GENERIC: u8 = 2;
}

/// Flag bits of [`Attachment::flags`].
pub mod attachment_flags {
    /// `attach` created the `clsact` qdisc (it did not exist before), so
    /// `detach` removes it again once no filter of anyone's is left on it.
    pub const QDISC_CREATED: u8 = 1;
}

/// The record of one attachment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Attachment {
    /// Interface index at attach.
    pub ifindex: u32,
    /// `clsact` only: the filter's handle.
    pub tc_handle: u32,
    /// `clsact` only: the filter's priority.
    pub tc_priority: u16,
    /// An `egress_hook` value.
    pub egress_hook: u8,
    /// An `xdp_mode` value.
    pub xdp_mode: u8,
    /// `attachment_flags` bits.
    pub flags: u8,
    _pad: [u8; 3],
}

impl Attachment {
    /// An attachment on `ifindex` whose egress runs through a tcx link.
    pub const fn tcx(ifindex: u32, xdp_mode: u8) -> Self {
        Self {
            ifindex,
            tc_handle: 0,
            tc_priority: 0,
            egress_hook: egress_hook::TCX,
            xdp_mode,
            flags: 0,
            _pad: [0; 3],
        }
    }

    /// An attachment on `ifindex` whose egress runs as the `clsact` filter
    /// at `priority`/`handle`; `qdisc_created` if `attach` added the qdisc.
    pub const fn clsact(
        ifindex: u32,
        xdp_mode: u8,
        priority: u16,
        handle: u32,
        qdisc_created: bool,
    ) -> Self {
        Self {
            ifindex,
            tc_handle: handle,
            tc_priority: priority,
            egress_hook: egress_hook::CLSACT,
            xdp_mode,
            flags: if qdisc_created {
                attachment_flags::QDISC_CREATED
            } else {
                0
            },
            _pad: [0; 3],
        }
    }

    /// Whether `attach` created the `clsact` qdisc.
    pub const fn qdisc_created(&self) -> bool {
        self.flags & attachment_flags::QDISC_CREATED != 0
    }
}
