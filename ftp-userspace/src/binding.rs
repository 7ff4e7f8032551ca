//! What became of the interface an attachment was made to: the pinned XDP
//! link knows the ifindex it runs on, the namespace knows what the name
//! means now. Interfaces get renamed, deleted and re-created under ftpct.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::Path,
};

use anyhow::{Context as _, Result};

use crate::netdev;

/// `bpf(2)` commands used here (`include/uapi/linux/bpf.h`).
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// `bpf_attr` for `BPF_OBJ_GET`.
#[repr(C)]
struct ObjGetAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// `bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of `struct bpf_link_info`: the union after `prog_id` is 8-byte
/// aligned, and both its `xdp` and `tcx` members start with the ifindex.
#[repr(C)]
#[derive(Default)]
struct LinkInfo {
    link_type: u32,
    id: u32,
    prog_id: u32,
    _pad: u32,
    ifindex: u32,
    _rest: [u32; 3],
}

/// The ifindex the pinned XDP or tcx link at `path` is attached to; 0 once
/// its interface was deleted (the kernel detaches the link then).
/// aya's `LinkInfo` does not expose it.
pub fn pinned_link_ifindex(path: &Path) -> Result<u32> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .with_context(|| format!("invalid path {}", path.display()))?;
    let attr = ObjGetAttr {
        pathname: c_path.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
    };
    // SAFETY: attr is a valid BPF_OBJ_GET attribute whose pathname points to
    // c_path, alive for the call; the size passed is attr's.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            &attr as *const ObjGetAttr,
            size_of::<ObjGetAttr>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("opening pinned link {}", path.display()));
    }
    // SAFETY: BPF_OBJ_GET returned a new descriptor that nobody else owns.
    let link = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut info = LinkInfo::default();
    let attr = InfoAttr {
        bpf_fd: link.as_raw_fd() as u32,
        info_len: size_of::<LinkInfo>() as u32,
        info: &mut info as *mut LinkInfo as u64,
    };
    // SAFETY: attr points to info, which is writable for info_len bytes and
    // outlives the call; the size passed is attr's.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &attr as *const InfoAttr,
            size_of::<InfoAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("reading link info of {}", path.display()));
    }
    Ok(info.ifindex)
}

/// What became of the interface an attachment was made to, judged from
/// its pinned XDP link and the interfaces of the current namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// The name still names the attached interface.
    Attached { ifindex: u32 },
    /// The interface was deleted: its links were detached, nothing is
    /// guarded. `recreated`: an interface of that name exists again.
    Deleted { recreated: bool },
    /// The attached interface is still here, under another name.
    Renamed { ifindex: u32, now: String },
    /// The link's interface is not in this namespace (it was moved out).
    Elsewhere { ifindex: u32 },
    /// The XDP link could not be read (its pin is missing or broken).
    Unknown { error: String },
}

impl Binding {
    /// Compares the pinned XDP link at `link` with what `iface` names now.
    pub fn check(iface: &str, link: &Path) -> Self {
        let linked = match pinned_link_ifindex(link) {
            Ok(ifindex) => ifindex,
            Err(err) => {
                return Self::Unknown {
                    error: format!("{err:#}"),
                };
            }
        };
        let current = netdev::lookup(iface).ok().flatten().map(|i| i.index);
        if linked == 0 {
            return Self::Deleted {
                recreated: current.is_some(),
            };
        }
        if current == Some(linked) {
            return Self::Attached { ifindex: linked };
        }
        match netdev::name_of(linked) {
            Some(now) => Self::Renamed {
                ifindex: linked,
                now,
            },
            None => Self::Elsewhere { ifindex: linked },
        }
    }

    /// The ifindex the programs run on (0 when none).
    pub fn ifindex(&self) -> u32 {
        match self {
            Self::Attached { ifindex }
            | Self::Renamed { ifindex, .. }
            | Self::Elsewhere { ifindex } => *ifindex,
            Self::Deleted { .. } | Self::Unknown { .. } => 0,
        }
    }

    /// Whether the programs still run on the interface attached as `iface`.
    pub fn guarded(&self) -> bool {
        matches!(self, Self::Attached { .. } | Self::Renamed { .. })
    }

    /// What is wrong, in a phrase, or `None` when nothing is.
    pub fn problem(&self, iface: &str) -> Option<String> {
        Some(match self {
            Self::Attached { .. } => return None,
            Self::Deleted { recreated: false } => format!("{iface} was deleted after attach"),
            Self::Deleted { recreated: true } => format!(
                "{iface} was deleted and re-created after attach; the new {iface} is not guarded"
            ),
            Self::Renamed { ifindex, now } => {
                format!("{iface} is now named {now} (ifindex {ifindex})")
            }
            Self::Elsewhere { ifindex } => format!(
                "the interface attached as {iface} (ifindex {ifindex}) is no longer in this \
                 network namespace"
            ),
            Self::Unknown { error } => format!("its XDP link cannot be read: {error}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_info_matches_the_kernel_layout() {
        // bpf_link_info: type, id, prog_id, then an 8-byte aligned union.
        assert_eq!(std::mem::offset_of!(LinkInfo, ifindex), 16);
    }

    #[test]
    fn problems_are_phrased_per_case() {
        assert_eq!(Binding::Attached { ifindex: 2 }.problem("eth0"), None);
        let renamed = Binding::Renamed {
            ifindex: 3,
            now: "eth9".into(),
        };
        assert!(renamed.guarded());
        assert_eq!(
            renamed.problem("eth0").as_deref(),
            Some("eth0 is now named eth9 (ifindex 3)")
        );
        let deleted = Binding::Deleted { recreated: false };
        assert!(!deleted.guarded());
        assert_eq!(deleted.ifindex(), 0);
        assert_eq!(
            deleted.problem("eth0").as_deref(),
            Some("eth0 was deleted after attach")
        );
    }
}
