//! Upgrades (issue #12, item 3): a new ftpct replaces the programs of a
//! running attachment and keeps its pinned maps, so every expectation,
//! flow, control connection, setting and counter survives, and so does a
//! transfer in progress. The XDP and tcx links are switched to the new
//! programs in one step each (`BPF_LINK_UPDATE`), a clsact filter is
//! replaced in place; nothing is detached in between.
//!
//! The maps carry their layout version (`FTPCT_LAYOUT`); a build that reads
//! them differently refuses, naming the way through.

use std::{fs, path::Path};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    maps::{Array, MapData},
    programs::{
        ProgramInfo, SchedClassifier, TcAttachType, Xdp,
        links::{FdLink, PinnedLink},
        tc::{SchedClassifierLink, TcHandle},
        xdp::XdpLink,
    },
};
use ftp_ebpf_common::{
    attachment::egress_hook,
    layout::{LAYOUT_VERSION, Layout},
    map_names,
    policy::PortClass,
    program_names,
};

use crate::{
    attach::{self, object_hash},
    binding::Binding,
    egress_hook as hook, netdev,
    netns::Netns,
    pins::{self, LINK_EGRESS, LINK_INGRESS, PROG_EGRESS, PROG_INGRESS},
    portspec, tables,
    tls::{self, Inspected},
};

/// The layout record of the attachment pinned in `dir`, if it has one.
pub fn layout(dir: &Path) -> Option<Layout> {
    let data = MapData::from_pin(dir.join(map_names::LAYOUT)).ok()?;
    let map: Array<MapData, Layout> = aya::maps::Map::from_map_data(data).ok()?.try_into().ok()?;
    map.get(&0, 0).ok()
}

/// The layout of `iface`'s maps (pinned in `dir`) if this build reads it,
/// else why not and the way through.
pub fn check(dir: &Path, iface: &str) -> Result<Layout> {
    let way = format!(
        "`ftpct detach {iface}` and attach again with this ftpct (that forgets the tracked \
         sessions: choose a quiet moment), or keep the ftpct that attached it"
    );
    match layout(dir) {
        None => bail!(
            "{iface} was attached by an ftpct whose maps carry no layout version, which this \
             ftpct cannot take over: {way}"
        ),
        Some(l) if l.version != LAYOUT_VERSION => bail!(
            "{iface}'s maps have layout version {}, this ftpct reads version {LAYOUT_VERSION}: {way}",
            l.version
        ),
        Some(l) => Ok(l),
    }
}

/// Whether `iface`'s programs (pinned in `dir`) are another build's than
/// this binary's; an error if its maps cannot be taken over.
pub fn needed(dir: &Path, iface: &str) -> Result<bool> {
    Ok(check(dir, iface)?.object_hash != object_hash())
}

/// What an upgrade replaced.
pub struct Upgraded {
    /// Program ids of ingress and egress, before and after.
    pub ingress: (u32, u32),
    pub egress: (u32, u32),
    /// The FTP servers whose TLS library is probed again (inspection only).
    pub ftps: Vec<Inspected>,
}

/// Replaces the programs of `iface` in this namespace with this build's,
/// on the same maps. The caller has checked the privileges.
pub fn upgrade(root: &Path, iface: &str) -> Result<Upgraded> {
    let netns = Netns::current()?;
    let dir = pins::iface_dir(root, &netns, iface);
    if !dir.exists() {
        bail!(
            "not attached to {iface} in this network namespace ({}); nothing to upgrade",
            netns.display_name()
        );
    }
    let binding = Binding::check(iface, &dir.join(LINK_INGRESS));
    if !binding.guarded() {
        bail!(
            "{iface} is not guarded ({}): `ftpct detach {iface}` and attach again",
            binding
                .problem(iface)
                .unwrap_or_else(|| "its programs are not attached".into())
        );
    }
    check(&dir, iface)?;
    let prog_id = |name: &str| -> Result<u32> {
        Ok(ProgramInfo::from_pin(dir.join(name))
            .with_context(|| format!("reading pinned program {name} of {iface}"))?
            .id())
    };
    let (old_in, old_eg) = (prog_id(PROG_INGRESS)?, prog_id(PROG_EGRESS)?);
    let control_ports = portspec::ports_of(&tables::port_classes(&dir)?, PortClass::Control);
    let inspecting = tls::inspecting(&dir);

    let mut ebpf = attach::load_on_pins(&dir)?;
    // Egress first, as at attach: the host's own connections keep being
    // recorded by whichever program runs.
    let tc: &mut SchedClassifier = attach::program(&mut ebpf, program_names::EGRESS)?.try_into()?;
    let record = hook::read_record(&dir);
    match record.map(|r| r.egress_hook) {
        Some(egress_hook::CLSACT) => {
            let r = record.ok_or_else(|| anyhow!("no attachment record"))?;
            let name = netdev::name_of(binding.ifindex()).unwrap_or_else(|| iface.to_string());
            let link = SchedClassifierLink::attached(
                &name,
                TcAttachType::Egress,
                r.tc_priority,
                TcHandle::from(r.tc_handle),
                None,
            )
            .context("finding the egress filter")?;
            let id = tc
                .attach_to_link(link)
                .context("replacing the egress filter's program")?;
            // Dropping the link would remove the filter (see egress_hook).
            std::mem::forget(tc.take_link(id)?);
        }
        _ => {
            let link: FdLink = PinnedLink::from_pin(dir.join(LINK_EGRESS))
                .context("opening the egress link")?
                .into();
            let id = tc
                .attach_to_link(SchedClassifierLink::try_from(link)?)
                .context("switching the egress link to the new program")?;
            drop(tc.take_link(id)?);
        }
    }
    swap_pin(&dir, PROG_EGRESS, |path| tc.pin(path))?;

    let xdp: &mut Xdp = attach::program(&mut ebpf, program_names::INGRESS)?.try_into()?;
    let link: FdLink = PinnedLink::from_pin(dir.join(LINK_INGRESS))
        .context("opening the XDP link")?
        .into();
    let id = xdp
        .attach_to_link(XdpLink::try_from(link)?)
        .context("switching the XDP link to the new program")?;
    drop(xdp.take_link(id)?);
    swap_pin(&dir, PROG_INGRESS, |path| xdp.pin(path))?;

    // Uprobe links cannot be switched: the old ones go, then the new
    // build's are attached (a line in flight then may be missed, which the
    // parser resyncs after, failing closed).
    let ftps = if inspecting {
        tls::remove(&dir)?;
        tls::attach(&mut ebpf, &control_ports, &dir)?
    } else {
        Vec::new()
    };
    attach::write_layout(&mut ebpf)?;
    Ok(Upgraded {
        ingress: (old_in, prog_id(PROG_INGRESS)?),
        egress: (old_eg, prog_id(PROG_EGRESS)?),
        ftps,
    })
}

/// Pins a program as `name` in `dir` in place of the old one (`pin` pins
/// it at the path it is given): beside it first, then renamed over it, so
/// the pin is never missing.
fn swap_pin(
    dir: &Path,
    name: &str,
    pin: impl FnOnce(&Path) -> Result<(), aya::pin::PinError>,
) -> Result<()> {
    // bpffs refuses dots in names.
    let tmp = dir.join(format!("new_{name}"));
    let _ = fs::remove_file(&tmp);
    pin(&tmp).with_context(|| format!("pinning the new {name}"))?;
    fs::rename(&tmp, dir.join(name)).with_context(|| format!("replacing the pin {name}"))
}

#[cfg(test)]
mod tests {
    use ftp_ebpf_common::map_names;

    use crate::attach::{AttachConfig, load_configured};

    /// A map left out of the pins would start empty after an upgrade
    /// (a fresh port window once dropped every announced data connection):
    /// every map of the object is pinned unless it is transient.
    #[test]
    fn every_map_that_holds_state_is_pinned() {
        let ebpf = load_configured(&AttachConfig::with_defaults("lo")).expect("loads (as root)");
        let unpinned: Vec<&str> = ebpf
            .maps()
            .map(|(name, _)| name)
            .filter(|name| {
                !map_names::ALL.contains(name)
                    && !map_names::TRANSIENT.contains(name)
                    && !name.starts_with(".rodata")
            })
            .collect();
        assert!(unpinned.is_empty(), "not pinned: {unpinned:?}");
    }
}
