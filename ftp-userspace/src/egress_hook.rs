//! Hooking the egress program in: a tcx link where the kernel has one (Linux
//! 6.6+), pinned like the XDP link; otherwise a `cls_bpf` filter on the
//! classic `clsact` qdisc. A filter is not a bpf_link and cannot be pinned:
//! it stays in force on its own, and the attachment record (pinned with the
//! maps) says where it is, so `detach` removes exactly that filter, and the
//! qdisc only if `attach` created it and no filter of anyone's is left.

use std::path::Path;

use anyhow::{Context as _, Result, anyhow};
use aya::{
    maps::{Array, MapData},
    programs::{
        LinkOrder, ProgramInfo, SchedClassifier, TcAttachType,
        links::{FdLink, Link as _},
        tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcHandle},
    },
};
use ftp_ebpf_common::{
    attachment::{Attachment, egress_hook},
    map_names,
};

use crate::{
    netdev,
    netlink::{self, Hook},
    pins::{LINK_EGRESS, PROG_EGRESS},
};

/// Where the egress program was hooked in.
pub enum Hooked {
    /// A tcx link, to be pinned.
    Tcx(FdLink),
    /// A clsact filter at this priority and handle.
    Clsact {
        priority: u16,
        handle: u32,
        qdisc_created: bool,
    },
}

/// Attaches `prog` to `iface`'s egress through tcx if `tcx`, else clsact.
pub fn attach(prog: &mut SchedClassifier, iface: &str, tcx: bool) -> Result<Hooked> {
    if tcx {
        let id = prog
            .attach_with_options(
                iface,
                TcAttachType::Egress,
                TcAttachOptions::TcxOrder(LinkOrder::default()),
            )
            .with_context(|| format!("attaching the egress program to {iface} with tcx"))?;
        return Ok(Hooked::Tcx(prog.take_link(id)?.try_into()?));
    }
    let qdisc_created = match tc::qdisc_add_clsact(iface) {
        Ok(()) => true,
        Err(tc::TcError::NetlinkError(err)) if err.raw_os_error() == Some(libc::EEXIST) => false,
        Err(err) => {
            return Err(anyhow!(err).context(format!(
                "adding the clsact qdisc to {iface} (needs sch_ingress: CONFIG_NET_SCH_INGRESS)"
            )));
        }
    };
    let attached = prog
        .attach_with_options(
            iface,
            TcAttachType::Egress,
            TcAttachOptions::Netlink(NlOptions::default()),
        )
        .and_then(|id| prog.take_link(id));
    let link = match attached {
        Ok(link) => link,
        Err(err) => {
            if qdisc_created {
                let ifindex = netdev::lookup(iface).ok().flatten().map(|i| i.index);
                if let Some(ifindex) = ifindex {
                    let _ = remove_qdisc_if_unused(ifindex);
                }
            }
            return Err(anyhow!(err).context(format!(
                "attaching the egress program to {iface} as a clsact filter (needs cls_bpf: \
                 CONFIG_NET_CLS_BPF)"
            )));
        }
    };
    let hooked = Hooked::Clsact {
        priority: link.priority()?,
        handle: link.handle()?.into(),
        qdisc_created,
    };
    // Dropping the link would remove the filter: it must outlive ftpct,
    // and `detach` removes it through the attachment record. An `NlLink`
    // owns no file descriptor or memory, so nothing leaks.
    std::mem::forget(link);
    Ok(hooked)
}

/// Writes the attachment record into the pinned-to-be map.
pub fn record(map: &mut aya::maps::Map, record: Attachment) -> Result<()> {
    let mut array: Array<&mut MapData, Attachment> = Array::try_from(map)?;
    array
        .set(0, record, 0)
        .context("writing the attachment record")
}

/// The attachment record pinned in `dir` (none for attachments made before
/// the record existed, whose egress is always a pinned tcx link).
pub fn read_record(dir: &Path) -> Option<Attachment> {
    let data = MapData::from_pin(dir.join(map_names::ATTACHMENT)).ok()?;
    let map: Array<MapData, Attachment> =
        aya::maps::Map::from_map_data(data).ok()?.try_into().ok()?;
    map.get(&0, 0).ok().filter(|record| record.egress_hook != 0)
}

/// Removes the clsact filter the record in `dir` describes, if it is still
/// there and still runs the pinned egress program, then the qdisc if
/// `attach` created it and nothing is left on it. Tcx links go with their
/// pins. Returns whether a filter was removed.
pub fn remove(dir: &Path) -> Result<bool> {
    let Some(record) = read_record(dir) else {
        return Ok(false);
    };
    if record.egress_hook != egress_hook::CLSACT || dir.join(LINK_EGRESS).exists() {
        return Ok(false);
    }
    let Some(iface) = netdev::name_of(record.ifindex) else {
        // The interface is gone, and its qdisc and filters with it.
        return Ok(false);
    };
    let prog_id = ProgramInfo::from_pin(dir.join(PROG_EGRESS))
        .map(|info| info.id())
        .ok();
    let ours = netlink::clsact_filters(record.ifindex)?
        .into_iter()
        .find(|f| {
            f.hook == Hook::Egress
                && f.priority == record.tc_priority
                && f.handle == record.tc_handle
                && (prog_id.is_none() || f.prog_id == prog_id)
        });
    let removed = match ours {
        Some(filter) => {
            SchedClassifierLink::attached(
                &iface,
                TcAttachType::Egress,
                filter.priority,
                TcHandle::from(filter.handle),
                None,
            )?
            .detach()
            .with_context(|| format!("removing ftpct's clsact filter from {iface}"))?;
            true
        }
        None => false,
    };
    if record.qdisc_created() {
        remove_qdisc_if_unused(record.ifindex)?;
    }
    Ok(removed)
}

/// Deletes the clsact qdisc of `ifindex` if no filter is on either hook.
fn remove_qdisc_if_unused(ifindex: u32) -> Result<()> {
    if netlink::has_clsact(ifindex)? && netlink::clsact_filters(ifindex)?.is_empty() {
        netlink::delete_clsact(ifindex)?;
    }
    Ok(())
}
