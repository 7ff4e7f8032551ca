//! What this kernel and machine offer ftpct, probed rather than guessed from
//! the version where a probe exists: `ftpct check` prints every probe, and
//! `attach` refuses with the first missing requirement in one line.

use std::path::Path;

use aya::{
    Btf,
    maps::MapType,
    programs::ProgramType,
    sys::{BpfHelper, is_helper_supported, is_map_supported},
    util::KernelVersion,
};
use aya_obj::btf::BtfKind;

use crate::{netdev, netlink, pins, privileges};

/// How much a probe's outcome matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// ftpct cannot run without it.
    Required,
    /// ftpct runs without it, on a fallback or without a later feature.
    Optional,
}

/// One probed requirement.
#[derive(Clone, Debug)]
pub struct Probe {
    /// Short name (`kernel`, `bpf_loop`, ...).
    pub name: String,
    /// Whether it is there.
    pub ok: bool,
    /// Whether ftpct needs it.
    pub need: Need,
    /// What was found, or what is missing and from which kernel it exists.
    pub detail: String,
}

impl Probe {
    fn new(name: &str, ok: bool, need: Need, detail: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            ok,
            need,
            detail: detail.into(),
        }
    }

    /// The verdict word `ftpct check` prints.
    pub fn verdict(&self) -> &'static str {
        match (self.ok, self.need) {
            (true, _) => "ok",
            (false, Need::Required) => "MISSING",
            (false, Need::Optional) => "no",
        }
    }
}

/// The running kernel's release string (`uname -r`).
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Whether tcx links exist (Linux 6.6+), from the kernel's BTF (`btf`):
/// a struct `tcx_entry` is found where the feature was backported to an
/// older version number too. Without BTF, the version decides.
fn tcx_in(btf: Option<&Btf>) -> bool {
    match btf {
        Some(btf) => btf
            .id_by_type_name_kind("tcx_entry", BtfKind::Struct)
            .is_ok(),
        None => KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0)),
    }
}

/// Whether tcx links exist (Linux 6.6+).
pub fn has_tcx() -> bool {
    tcx_in(Btf::from_sys_fs().ok().as_ref())
}

/// The helpers the programs call that older kernels lack: (name, helper,
/// from which Linux, what needs it).
const REQUIRED_HELPERS: &[(&str, BpfHelper, &str, &str)] = &[
    (
        "loop",
        BpfHelper::BPF_FUNC_loop,
        "5.17",
        "ftpct's FTP parser",
    ),
    (
        "for_each_map_elem",
        BpfHelper::BPF_FUNC_for_each_map_elem,
        "5.13",
        "the control-table sweep",
    ),
];

fn helper(helper: BpfHelper) -> bool {
    is_helper_supported(ProgramType::Xdp, helper).unwrap_or(false)
}

/// The running kernel's build configuration (`/proc/config.gz`, else
/// `/boot/config-RELEASE`), if either is there.
fn kernel_config() -> Option<String> {
    use std::io::Read as _;
    if let Ok(file) = std::fs::File::open("/proc/config.gz") {
        let mut text = String::new();
        if flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .is_ok()
        {
            return Some(text);
        }
    }
    std::fs::read_to_string(format!("/boot/config-{}", kernel_release())).ok()
}

/// Whether the kernel has `option` built in or as a module (`None`: no
/// configuration to tell).
fn config_enabled(config: Option<&str>, option: &str) -> Option<bool> {
    let config = config?;
    Some(
        [format!("{option}=y"), format!("{option}=m")]
            .iter()
            .any(|want| config.lines().any(|line| line == want)),
    )
}

/// Whether the kernel module `name` of `net/sched` is loaded or installed.
fn sched_module(name: &str) -> bool {
    let dir = Path::new("/lib/modules")
        .join(kernel_release())
        .join("kernel/net/sched");
    Path::new("/sys/module").join(name).exists()
        || ["ko", "ko.xz", "ko.zst", "ko.gz"]
            .iter()
            .any(|ext| dir.join(format!("{name}.{ext}")).exists())
}

/// Whether the clsact qdisc and cls_bpf exist (`None`: cannot tell).
fn has_clsact() -> Option<bool> {
    let config = kernel_config();
    if config.is_none() {
        // No configuration: installed modules say yes; their absence says
        // nothing (they may be built in).
        return (sched_module("sch_ingress") && sched_module("cls_bpf")).then_some(true);
    }
    let ingress = config_enabled(config.as_deref(), "CONFIG_NET_SCH_INGRESS")?;
    let bpf = config_enabled(config.as_deref(), "CONFIG_NET_CLS_BPF")?;
    Some(ingress && bpf)
}

/// Drivers with native XDP (from the kernel's `ndo_bpf` implementations),
/// for kernels before 6.3, which do not report it per device.
const NATIVE_XDP_DRIVERS: &[&str] = &[
    "veth",
    "virtio_net",
    "tun",
    "bonding",
    "ena",
    "gve",
    "hv_netvsc",
    "netvsc",
    "mlx4_core",
    "mlx4_en",
    "mlx5_core",
    "i40e",
    "ice",
    "ixgbe",
    "ixgbevf",
    "igb",
    "igc",
    "bnxt_en",
    "qede",
    "nfp",
    "sfc",
    "thunder-nicvf",
    "nicvf",
    "xen-netfront",
    "vif",
    "mvneta",
    "mvpp2",
    "stmmac",
    "fec",
    "dpaa2-eth",
    "fsl_enetc",
    "tsnep",
    "lan966x-switch",
    "netsec",
    "cpsw",
    "octeontx2-nicpf",
    "mtk_soc_eth",
    "atlantic",
    "bnx2x",
];

/// The driver behind `iface` (`ethtool -i`), if it can be read.
pub fn driver(iface: &str) -> Option<String> {
    let link = std::fs::read_link(format!("/sys/class/net/{iface}/device/driver")).ok();
    if let Some(name) = link.as_ref().and_then(|l| l.file_name()) {
        return Some(name.to_string_lossy().into_owned());
    }
    netdev::ethtool_driver(iface)
}

/// Whether `iface`'s driver is known to run XDP natively.
pub fn native_xdp_driver(driver: &str) -> bool {
    NATIVE_XDP_DRIVERS.contains(&driver)
}

/// Whether `iface` runs XDP natively: as the kernel reports it (Linux
/// 6.3+), else judged by its driver.
fn xdp_probe(iface: &str) -> Probe {
    let name = format!("xdp on {iface}");
    let Some(ifindex) = netdev::lookup(iface).ok().flatten().map(|i| i.index) else {
        return Probe::new(
            &name,
            false,
            Need::Required,
            format!("no interface {iface} here"),
        );
    };
    let drv = driver(iface).unwrap_or_else(|| "unknown".to_string());
    let (native, source) = match netlink::native_xdp(ifindex) {
        Some(native) => (native, "as the kernel reports"),
        None => (native_xdp_driver(&drv), "judged by the driver"),
    };
    if native {
        Probe::new(
            &name,
            true,
            Need::Optional,
            format!("native (driver {drv}, {source})"),
        )
    } else {
        Probe::new(
            &name,
            false,
            Need::Optional,
            format!(
                "driver {drv} has no native XDP ({source}): attach falls back to generic \
                 (slower)"
            ),
        )
    }
}

/// Every probe, for `ftpct check`; `iface` adds the interface's XDP mode.
pub fn probe_all(iface: Option<&str>) -> Vec<Probe> {
    let release = kernel_release();
    let version = KernelVersion::current().ok();
    let btf = Btf::from_sys_fs().ok();
    let mut probes = Vec::new();
    // Informational: distributions backport features, so the probes below
    // decide, not the version.
    let tested = version.is_some_and(|v| v >= KernelVersion::new(6, 1, 0));
    probes.push(Probe::new(
        "kernel",
        true,
        Need::Optional,
        format!(
            "{release}{}",
            if tested {
                ""
            } else {
                " (older than 6.1, the oldest kernel ftpct is tested on)"
            }
        ),
    ));
    probes.push(Probe::new(
        "btf",
        btf.is_some(),
        Need::Optional,
        if btf.is_some() {
            "/sys/kernel/btf/vmlinux".to_string()
        } else {
            "no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF): features are judged by version"
                .to_string()
        },
    ));
    // The refusals every command gives, word for word.
    let refused = privileges::require_bpf_admin("ftpct attach").err();
    let privileged = refused.is_none();
    probes.push(Probe::new(
        "privileges",
        privileged,
        Need::Required,
        refused.map_or_else(
            || "CAP_BPF and CAP_NET_ADMIN".to_string(),
            |e| e.to_string(),
        ),
    ));
    if let Err(private) = pins::refuse_private_sys(&pins::resolve_root(None)) {
        probes.push(Probe::new(
            "pin root",
            false,
            Need::Required,
            private.to_string(),
        ));
    }
    let bpffs = Path::new(pins::DEFAULT_PIN_ROOT)
        .parent()
        .map(|p| pins::is_bpffs(p).unwrap_or(false))
        .unwrap_or(false);
    probes.push(Probe::new(
        "bpffs",
        true,
        Need::Required,
        if bpffs {
            "mounted at /sys/fs/bpf"
        } else {
            "not mounted at /sys/fs/bpf; attach mounts it"
        },
    ));
    if !privileged {
        // Program and map probes need the privileges themselves.
        probes.push(Probe::new(
            "bpf probes",
            false,
            Need::Required,
            "skipped: loading probe programs needs root",
        ));
        return probes;
    }
    for &(name, id, from, user) in REQUIRED_HELPERS {
        let ok = helper(id);
        probes.push(Probe::new(
            &format!("bpf_{name}"),
            ok,
            Need::Required,
            if ok {
                format!("helper present (Linux {from}+)")
            } else {
                format!("helper missing: {user} needs it; it exists from Linux {from}")
            },
        ));
    }
    // The BTF parsed once above serves this probe too.
    let tcx = tcx_in(btf.as_ref());
    probes.push(Probe::new(
        "tcx",
        tcx,
        Need::Optional,
        if tcx {
            "tcx links (Linux 6.6+): egress attaches through tcx"
        } else {
            "no tcx links (they exist from Linux 6.6): egress attaches through clsact"
        },
    ));
    let clsact = has_clsact();
    probes.push(Probe::new(
        "clsact",
        clsact != Some(false),
        if tcx { Need::Optional } else { Need::Required },
        match clsact {
            Some(true) => "clsact qdisc and cls_bpf available",
            Some(false) => {
                "no clsact qdisc or cls_bpf (CONFIG_NET_SCH_INGRESS, CONFIG_NET_CLS_BPF)"
            }
            None => "no kernel configuration to check; attach will tell",
        },
    ));
    if let Some(iface) = iface {
        probes.push(xdp_probe(iface));
    }
    let ringbuf = is_map_supported(MapType::RingBuf).unwrap_or(false);
    probes.push(Probe::new(
        "ring buffer",
        ringbuf,
        Need::Optional,
        if ringbuf {
            "BPF ring buffer (Linux 5.8+)"
        } else {
            "no BPF ring buffer (it exists from Linux 5.8)"
        },
    ));
    let uprobes = Path::new("/sys/bus/event_source/devices/uprobe/type").exists();
    probes.push(Probe::new(
        "uprobes",
        uprobes,
        Need::Optional,
        if uprobes {
            "uprobe events (for FTPS)"
        } else {
            "no uprobe events (CONFIG_UPROBE_EVENTS): FTPS cannot be read"
        },
    ));
    probes
}

/// The one line `attach` fails with when the kernel lacks what ftpct needs,
/// or `None`. Only the kernel probes: privileges and the interface are
/// checked by `attach` itself.
pub fn missing_for_attach() -> Option<String> {
    let release = kernel_release();
    for &(name, id, from, user) in REQUIRED_HELPERS {
        if !helper(id) {
            return Some(format!(
                "this kernel ({release}) lacks the bpf_{name} helper, which {user} needs; it \
                 exists from Linux {from} (`ftpct check` lists every requirement)"
            ));
        }
    }
    // clsact first: where it exists (nearly everywhere) the kernel's BTF
    // is not parsed here (attach parses it once, to choose the hook).
    if has_clsact() == Some(false) && !has_tcx() {
        return Some(format!(
            "this kernel ({release}) has neither tcx links (Linux 6.6+) nor the clsact qdisc \
             and cls_bpf (CONFIG_NET_SCH_INGRESS, CONFIG_NET_CLS_BPF) to attach the egress \
             program with"
        ));
    }
    None
}

/// The path `attach` would take, as `path: egress=… parser=… xdp=…`.
pub fn path_line(probes: &[Probe]) -> String {
    let ok = |name: &str| probes.iter().any(|p| p.name == name && p.ok);
    let egress = if ok("tcx") {
        "tcx"
    } else if ok("clsact") {
        "clsact"
    } else {
        "none"
    };
    let parser = if ok("bpf_loop") && ok("bpf_for_each_map_elem") {
        "bpf_loop"
    } else {
        "none"
    };
    let xdp = match probes.iter().find(|p| p.name.starts_with("xdp on ")) {
        Some(p) if p.ok => "native",
        Some(p) if p.need == Need::Optional => "generic",
        Some(_) => "none",
        None => "auto",
    };
    format!("path: egress={egress} parser={parser} xdp={xdp}")
}
