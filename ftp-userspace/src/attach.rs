//! Loading, configuring, attaching and pinning — and undoing all of it when any
//! step fails, so a failed attach leaves nothing behind.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData},
    programs::{
        ProgramError, SchedClassifier, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
    },
};
use ftp_ebpf_common::{
    attachment::{Attachment, xdp_mode},
    control::{ControlKey, ControlState},
    flow::{FlowKey, FlowValue},
    layout::{LAYOUT_VERSION, Layout},
    map_names,
    policy::{
        POLICY_ALLOW_LOW_PORTS, POLICY_NAT_REWRITE, POLICY_STRICT, PORT_COUNT, Policy, PortClass,
    },
    program_names,
};

use crate::{
    binding::Binding,
    egress_hook::{self, Hooked},
    external::{self, ExternalMapping},
    features, lockout, netdev,
    netns::Netns,
    pins::{self, LINK_EGRESS, LINK_INGRESS, PROG_EGRESS, PROG_INGRESS},
    portspec::{self, PortRange},
    seed,
    tls::{self, FtpsChoice, Inspected},
};

/// The eBPF object built by build.rs.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ftp-ebpf"));

/// How the XDP program is attached (`--xdp-mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum XdpModeChoice {
    /// Native; generic with a warning where the driver has no native XDP.
    #[default]
    Auto,
    /// Native (in the driver) or fail.
    Native,
    /// Generic (skb) mode: any driver, slower.
    Generic,
}

/// How the egress program is attached (`--egress-hook`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum EgressHookChoice {
    /// tcx where the kernel has it (6.6+), else clsact.
    #[default]
    Auto,
    /// A tcx link or fail.
    Tcx,
    /// A `cls_bpf` filter on the `clsact` qdisc, even where tcx exists.
    Clsact,
}

/// Everything `ftpct attach` needs, already validated.
#[derive(Clone, Debug)]
pub struct AttachConfig {
    /// Interface to guard.
    pub iface: String,
    /// FTP control ports.
    pub control_ports: Vec<u16>,
    /// Data port range to guard.
    pub data_ports: PortRange,
    /// Ports inside the data range that stay open.
    pub allow_ports: Vec<PortRange>,
    /// Expectation lifetime.
    pub expect_timeout_secs: u64,
    /// Flow idle timeout.
    pub flow_timeout_secs: u64,
    /// Whether `PORT`/`EPRT`/`227`/`229` may name ports below 1024.
    pub allow_low_ports: bool,
    /// Guard every port that is not a control port or allowed, not just the
    /// data range.
    pub strict: bool,
    /// Live expectations per control connection.
    pub max_expect_per_conn: u16,
    /// Live expectations per client address (IPv6: per /64).
    pub max_expect_per_client: u16,
    /// Live expectations per IPv6 /48.
    pub max_expect_per_site: u16,
    /// New control connections per client (IPv6: /64) per expectation
    /// lifetime, before they log in.
    pub max_new_sessions_per_client: u16,
    /// Capacity of the expectation table.
    pub max_expectations: u32,
    /// Capacity of the flow table.
    pub max_flows: u32,
    /// Capacity of the control-connection table.
    pub max_control: u32,
    /// Pin root (bpffs).
    pub pin_root: PathBuf,
    /// aya-log level compiled into the programs' global (0 = off).
    pub log_level: u8,
    /// Native or generic XDP.
    pub xdp_mode: XdpModeChoice,
    /// tcx or clsact for egress.
    pub egress_hook: EgressHookChoice,
    /// External addresses behind NAT (`--external-address`).
    pub external: Vec<ExternalMapping>,
    /// Rewrite a local server's `227` and a local client's `PORT`/`EPRT` to
    /// name the external address.
    pub nat_rewrite: bool,
    /// `--ftps-range`: the passive range clients of live encrypted control
    /// connections may connect to.
    pub ftps_range: Option<PortRange>,
    /// `--force`: guard the ports even where services listen inside them.
    pub force: bool,
    /// `--ftps`: whether to read the local servers' FTPS plaintext.
    pub ftps: FtpsChoice,
}

/// What `attach` set up: the loaded object (for `ftpct run`'s logs) and
/// the FTP servers it found, each with whether its FTPS is inspected.
pub struct Attached {
    /// The loaded programs and maps.
    pub ebpf: Ebpf,
    /// The servers on the control ports (empty with `--ftps off`).
    pub ftps: Vec<Inspected>,
}

impl AttachConfig {
    /// The configuration `ftpct attach IFACE` uses without options.
    pub fn with_defaults(iface: &str) -> Self {
        use ftp_ebpf_common::policy::{
            DEFAULT_CONTROL_PORT, DEFAULT_DATA_PORTS, DEFAULT_EXPECT_TIMEOUT_SECS,
            DEFAULT_FLOW_TIMEOUT_SECS, DEFAULT_MAX_CONTROL, DEFAULT_MAX_EXPECT_PER_CLIENT,
            DEFAULT_MAX_EXPECT_PER_CONN, DEFAULT_MAX_EXPECT_PER_SITE, DEFAULT_MAX_EXPECTATIONS,
            DEFAULT_MAX_FLOWS, DEFAULT_MAX_NEW_SESSIONS_PER_CLIENT,
        };
        Self {
            iface: iface.to_string(),
            control_ports: vec![DEFAULT_CONTROL_PORT],
            data_ports: PortRange {
                lo: DEFAULT_DATA_PORTS.0,
                hi: DEFAULT_DATA_PORTS.1,
            },
            allow_ports: Vec::new(),
            expect_timeout_secs: DEFAULT_EXPECT_TIMEOUT_SECS,
            flow_timeout_secs: DEFAULT_FLOW_TIMEOUT_SECS,
            allow_low_ports: false,
            strict: false,
            max_expect_per_conn: DEFAULT_MAX_EXPECT_PER_CONN,
            max_expect_per_client: DEFAULT_MAX_EXPECT_PER_CLIENT,
            max_expect_per_site: DEFAULT_MAX_EXPECT_PER_SITE,
            max_new_sessions_per_client: DEFAULT_MAX_NEW_SESSIONS_PER_CLIENT,
            max_expectations: DEFAULT_MAX_EXPECTATIONS,
            max_flows: DEFAULT_MAX_FLOWS,
            max_control: DEFAULT_MAX_CONTROL,
            pin_root: PathBuf::from(pins::DEFAULT_PIN_ROOT),
            log_level: 0,
            xdp_mode: XdpModeChoice::Auto,
            egress_hook: EgressHookChoice::Auto,
            external: Vec::new(),
            nat_rewrite: false,
            ftps_range: None,
            force: false,
            ftps: FtpsChoice::Auto,
        }
    }

    /// Leaves `port` (the administrator's SSH session's) open if it would
    /// be guarded; the port if so.
    pub fn exempt_session(&mut self, port: Option<u16>) -> Option<u16> {
        let port = port?;
        if self.port_classes()[usize::from(port)] != PortClass::Guarded {
            return None;
        }
        self.allow_ports.push(PortRange { lo: port, hi: port });
        Some(port)
    }

    /// The configuration, or why it cannot work: an `--ftps-range` must lie
    /// inside the guarded ports (outside them it would open nothing, and
    /// the administrator would believe otherwise).
    pub fn validated(self) -> Result<Self> {
        if let Some(range) = self.ftps_range {
            let classes = self.port_classes();
            let unguarded =
                (range.lo..=range.hi).find(|&p| classes[usize::from(p)] != PortClass::Guarded);
            if let Some(port) = unguarded {
                bail!(
                    "--ftps-range {range}: port {port} is not a guarded data port \
                     (see --data-ports, --allow-ports, --control-ports)"
                );
            }
        }
        Ok(self)
    }
}

impl AttachConfig {
    /// The class of every port under this configuration.
    pub fn port_classes(&self) -> Vec<PortClass> {
        let guarded = if self.strict {
            PortRange { lo: 1, hi: 65535 }
        } else {
            self.data_ports
        };
        portspec::classify(&self.control_ports, guarded, &self.allow_ports)
    }
}

/// Loads the programs and writes the policy without attaching or pinning
/// anything: what tests and benchmarks drive with `BPF_PROG_TEST_RUN`.
pub fn load_configured(cfg: &AttachConfig) -> Result<Ebpf> {
    let mut ebpf = load(cfg)?;
    let classes = cfg.port_classes();
    configure(&mut ebpf, cfg, &classes)?;
    Ok(ebpf)
}

/// Loads, configures, attaches and pins under this network namespace's
/// directory. On error everything created is removed again, directories
/// included. The caller has checked the privileges (`ftpct` does for every
/// command, with one message).
pub fn attach(cfg: &AttachConfig) -> Result<Attached> {
    // Before anything is created: a refused device leaves nothing behind.
    let ifindex = netdev::require_ethernet(&cfg.iface)?;
    if let Some(missing) = features::missing_for_attach() {
        bail!(missing);
    }
    if !cfg.force {
        lockout::refuse_guarded_listeners(&cfg.iface, &cfg.port_classes())?;
    }
    let netns = Netns::current()?;
    let root_existed = cfg.pin_root.exists();
    pins::prepare_root(&cfg.pin_root)?;
    let result = attach_under_root(cfg, &netns, ifindex);
    if result.is_err() {
        // Only empty directories go; never anything another attach pinned.
        pins::remove_if_empty(&pins::netns_dir(&cfg.pin_root, &netns));
        pins::release_root(&cfg.pin_root);
        if !root_existed {
            pins::remove_if_empty(&cfg.pin_root);
        }
    }
    result
}

fn attach_under_root(cfg: &AttachConfig, netns: &Netns, ifindex: u32) -> Result<Attached> {
    let dir = pins::iface_dir(&cfg.pin_root, netns, &cfg.iface);
    if dir.exists() {
        let problem = Binding::check(&cfg.iface, &dir.join(LINK_INGRESS))
            .problem(&cfg.iface)
            .map(|p| format!(", but {p}"))
            .unwrap_or_default();
        bail!(
            "already attached to {iface} (pins in {}){problem}; run `ftpct detach {iface}` first",
            dir.display(),
            iface = cfg.iface,
        );
    }
    let mut ebpf = load(cfg)?;
    let classes = cfg.port_classes();
    configure(&mut ebpf, cfg, &classes)?;
    let netns_dir = pins::netns_dir(&cfg.pin_root, netns);
    match fs::create_dir(&netns_dir) {
        Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(err).with_context(|| format!("creating {}", netns_dir.display()));
        }
        _ => {}
    }
    fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let attached =
        attach_and_pin(&mut ebpf, cfg, ifindex, &dir, &classes).and_then(|()| match cfg.ftps {
            FtpsChoice::Auto => tls::attach(&mut ebpf, &cfg.control_ports, &dir),
            FtpsChoice::Off => Ok(Vec::new()),
        });
    match attached {
        Ok(ftps) => Ok(Attached { ebpf, ftps }),
        Err(err) => {
            if let Err(cleanup) = pins::remove_iface_dir(&dir) {
                log::warn!("cleanup after failed attach: {cleanup:#}");
            }
            Err(err)
        }
    }
}

/// Detaches `iface` of this network namespace by removing its pins (links
/// first). Returns what had become of the interface, for the report.
/// Another namespace's attachment of the same name is never touched.
pub fn detach(pin_root: &Path, iface: &str) -> Result<Binding> {
    netdev::check_name(iface)?;
    let netns = Netns::current()?;
    let dir = pins::iface_dir(pin_root, &netns, iface);
    if !dir.exists() {
        bail!(
            "not attached to {iface} in this network namespace ({}; no pins in {})",
            netns.display_name(),
            dir.display()
        );
    }
    let binding = Binding::check(iface, &dir.join(LINK_INGRESS));
    pins::remove_attachment(pin_root, &netns, iface)?;
    Ok(binding)
}

fn load(cfg: &AttachConfig) -> Result<Ebpf> {
    raise_memlock_limit();
    let mut loader = EbpfLoader::new();
    loader
        .map_max_entries(map_names::EXPECTATIONS, cfg.max_expectations)
        .map_max_entries(map_names::FLOWS, cfg.max_flows)
        .map_max_entries(map_names::HOST_FLOWS, cfg.max_flows)
        .map_max_entries(map_names::CONTROL, cfg.max_control)
        .map_max_entries(map_names::FTPS, cfg.max_control)
        .override_global(aya_log::LEVEL, &cfg.log_level, false);
    let mut ebpf = loader
        .load(EBPF_OBJECT)
        .context("creating the BPF maps (does this kernel support BPF with BTF?)")?;
    load_programs(&mut ebpf)?;
    Ok(ebpf)
}

/// Loads this build's programs on the maps pinned in `dir` (an upgrade):
/// every table, counter and setting there is what they work on.
pub(crate) fn load_on_pins(dir: &Path) -> Result<Ebpf> {
    raise_memlock_limit();
    let mut loader = EbpfLoader::new();
    let paths: Vec<(&str, PathBuf)> = map_names::ALL
        .iter()
        .map(|name| (*name, dir.join(name)))
        .collect();
    for (name, path) in &paths {
        loader.map_pin_path(name, path.as_path());
    }
    let mut ebpf = loader
        .load(EBPF_OBJECT)
        .with_context(|| format!("opening the maps pinned in {}", dir.display()))?;
    load_programs(&mut ebpf)?;
    Ok(ebpf)
}

/// The FNV-1a hash of this build's object file, recorded in `FTPCT_LAYOUT`.
pub fn object_hash() -> u64 {
    ftp_ebpf_common::layout::fnv1a(EBPF_OBJECT)
}

fn load_programs(ebpf: &mut Ebpf) -> Result<()> {
    for name in [program_names::INGRESS, program_names::EGRESS] {
        let program = ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("program {name} missing from the object"))?;
        let result = match name {
            program_names::INGRESS => {
                let xdp: &mut Xdp = program.try_into()?;
                xdp.load()
            }
            _ => {
                let tc: &mut SchedClassifier = program.try_into()?;
                tc.load()
            }
        };
        result.map_err(|err| verifier_error(name, err))?;
    }
    Ok(())
}

/// Before Linux 5.11 maps are charged to `RLIMIT_MEMLOCK` (64 KiB by
/// default), far below ftpct's tables; later kernels charge the memory
/// cgroup and ignore the limit. Best effort: a failure shows at map creation.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads a valid rlimit.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
}

/// Turns a load failure into one clear message with the verifier's last words.
pub(crate) fn verifier_error(name: &str, err: ProgramError) -> anyhow::Error {
    match err {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let tail: Vec<&str> = log.lines().rev().take(12).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            anyhow!(
                "the kernel refused to load {name} ({io_error}); `ftpct check` lists what this \
                 kernel lacks. Verifier said:\n{}",
                tail.join("\n")
            )
        }
        other => anyhow!(other).context(format!("loading {name}")),
    }
}

/// Writes the port classes and the policy. `ready` is set last.
fn configure(ebpf: &mut Ebpf, cfg: &AttachConfig, classes: &[PortClass]) -> Result<()> {
    let mut ports: Array<_, u8> = Array::try_from(
        ebpf.map_mut(map_names::PORTS)
            .ok_or_else(|| anyhow!("map {} missing", map_names::PORTS))?,
    )?;
    for port in 0..PORT_COUNT {
        let class = classes[port as usize];
        if class != PortClass::Open {
            ports
                .set(port, class as u8, 0)
                .with_context(|| format!("writing port class of {port}"))?;
        }
    }
    external::write(
        ebpf.map_mut(map_names::EXTERNAL)
            .ok_or_else(|| anyhow!("map {} missing", map_names::EXTERNAL))?,
        &cfg.external,
    )?;
    let mut policy = Policy::defaults();
    policy.expect_timeout_ns = cfg.expect_timeout_secs.saturating_mul(1_000_000_000);
    policy.flow_timeout_ns = cfg.flow_timeout_secs.saturating_mul(1_000_000_000);
    if cfg.allow_low_ports {
        policy.flags |= POLICY_ALLOW_LOW_PORTS;
    }
    if cfg.strict {
        policy.flags |= POLICY_STRICT;
    }
    if cfg.nat_rewrite {
        policy.flags |= POLICY_NAT_REWRITE;
    }
    policy.max_expect_per_conn = cfg.max_expect_per_conn;
    policy.max_expect_per_client = cfg.max_expect_per_client;
    policy.max_expect_per_site = cfg.max_expect_per_site;
    policy.max_new_sessions_per_client = cfg.max_new_sessions_per_client;
    if let Some(range) = cfg.ftps_range {
        policy.ftps_lo = range.lo;
        policy.ftps_hi = range.hi;
    }
    (policy.data_lo, policy.data_hi) = (cfg.data_ports.lo, cfg.data_ports.hi);
    let mut map: Array<_, Policy> = Array::try_from(
        ebpf.map_mut(map_names::POLICY)
            .ok_or_else(|| anyhow!("map {} missing", map_names::POLICY))?,
    )?;
    map.set(0, policy, 0).context("writing the policy")?;
    write_layout(ebpf)
}

/// Records this build in `FTPCT_LAYOUT`: the layout version of the maps
/// and the hash of the programs that run on them.
pub(crate) fn write_layout(ebpf: &mut Ebpf) -> Result<()> {
    let mut map: Array<_, Layout> = Array::try_from(
        ebpf.map_mut(map_names::LAYOUT)
            .ok_or_else(|| anyhow!("map {} missing", map_names::LAYOUT))?,
    )?;
    map.set(0, Layout::new(LAYOUT_VERSION, object_hash()), 0)
        .context("writing the layout record")
}

fn attach_and_pin(
    ebpf: &mut Ebpf,
    cfg: &AttachConfig,
    ifindex: u32,
    dir: &Path,
    classes: &[PortClass],
) -> Result<()> {
    for name in map_names::ALL {
        let map = ebpf
            .map(name)
            .ok_or_else(|| anyhow!("map {name} missing"))?;
        map.pin(dir.join(name))
            .with_context(|| format!("pinning map {name}"))?;
    }
    seed_tables(ebpf, classes)?;

    // Egress first: from then on connections this host opens are recorded,
    // so nothing it starts while ingress is being attached gets dropped.
    let tc: &mut SchedClassifier = program(ebpf, program_names::EGRESS)?.try_into()?;
    tc.pin(dir.join(PROG_EGRESS))
        .context("pinning the egress program")?;
    let tcx = match cfg.egress_hook {
        EgressHookChoice::Auto => features::has_tcx(),
        EgressHookChoice::Tcx => true,
        EgressHookChoice::Clsact => false,
    };
    let mut record = match egress_hook::attach(tc, &cfg.iface, tcx)? {
        Hooked::Tcx(link) => {
            pin_link(link, &dir.join(LINK_EGRESS))?;
            Attachment::tcx(ifindex, 0)
        }
        Hooked::Clsact {
            priority,
            handle,
            qdisc_created,
        } => Attachment::clsact(ifindex, 0, priority, handle, qdisc_created),
    };
    // Recorded at once: a failure from here on undoes the filter through it.
    write_record(ebpf, record)?;

    let xdp: &mut Xdp = program(ebpf, program_names::INGRESS)?.try_into()?;
    xdp.pin(dir.join(PROG_INGRESS))
        .context("pinning the ingress program")?;
    let (link, mode) = attach_xdp(xdp, ifindex, cfg)?;
    pin_link(link, &dir.join(LINK_INGRESS))?;
    record.xdp_mode = mode;
    write_record(ebpf, record)?;

    // Connections that appeared between the first seeding and the attach.
    seed_tables(ebpf, classes)
}

fn write_record(ebpf: &mut Ebpf, record: Attachment) -> Result<()> {
    let map = ebpf
        .map_mut(map_names::ATTACHMENT)
        .ok_or_else(|| anyhow!("map {} missing", map_names::ATTACHMENT))?;
    egress_hook::record(map, record)
}

/// Attaches the XDP program in the mode asked for; in `auto`, natively
/// where the driver can, else generically with a warning. Returns the link
/// and the `xdp_mode` it runs in.
fn attach_xdp(xdp: &mut Xdp, ifindex: u32, cfg: &AttachConfig) -> Result<(FdLink, u8)> {
    let iface = &cfg.iface;
    let busy = format!(
        "is another XDP program attached? see `ip link show {iface}`; `--xdp-mode generic` \
         works with any driver"
    );
    let attempt = |xdp: &mut Xdp, mode: XdpMode| -> Result<FdLink> {
        let id = xdp.attach_to_if_index(ifindex, mode)?;
        xdp.take_link(id)?.try_into().map_err(|_| {
            anyhow!("this kernel attached XDP without a bpf_link; ftpct needs Linux 5.9+")
        })
    };
    match cfg.xdp_mode {
        XdpModeChoice::Generic => attempt(xdp, XdpMode::Skb)
            .map(|link| (link, xdp_mode::GENERIC))
            .with_context(|| format!("attaching the XDP program to {iface} in generic mode")),
        XdpModeChoice::Native => attempt(xdp, XdpMode::Driver)
            .map(|link| (link, xdp_mode::NATIVE))
            .with_context(|| format!("attaching the XDP program to {iface} natively ({busy})")),
        XdpModeChoice::Auto => match attempt(xdp, XdpMode::Driver) {
            Ok(link) => Ok((link, xdp_mode::NATIVE)),
            // Only a driver without native XDP falls back; any other failure
            // (another program holds the interface) is reported as it is.
            Err(native) if !unsupported(&native) => Err(native)
                .with_context(|| format!("attaching the XDP program to {iface} ({busy})")),
            Err(native) => {
                let link = attempt(xdp, XdpMode::Skb).with_context(|| {
                    format!("attaching the XDP program to {iface} ({busy}); natively: {native:#}")
                })?;
                let driver = features::driver(iface).unwrap_or_else(|| "unknown".to_string());
                log::warn!(
                    "{iface} (driver {driver}) has no native XDP ({native:#}): running in \
                     generic mode, which works but costs more per packet"
                );
                Ok((link, xdp_mode::GENERIC))
            }
        },
    }
}

/// Whether `err` is the kernel saying the driver cannot do this (EOPNOTSUPP).
fn unsupported(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::EOPNOTSUPP))
    })
}

pub(crate) fn program<'a>(
    ebpf: &'a mut Ebpf,
    name: &str,
) -> Result<&'a mut aya::programs::Program> {
    ebpf.program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing from the object"))
}

pub(crate) fn pin_link(link: FdLink, path: &Path) -> Result<PinnedLink> {
    link.pin(path)
        .with_context(|| format!("pinning link {}", path.display()))
}

/// Copies live connections from the socket table into the flow and control maps.
fn seed_tables(ebpf: &mut Ebpf, classes: &[PortClass]) -> Result<()> {
    let sockets = seed::read_sockets()?;
    let now = monotonic_ns();
    let mut flows: HashMap<&mut MapData, FlowKey, FlowValue> = HashMap::try_from(
        ebpf.map_mut(map_names::HOST_FLOWS)
            .ok_or_else(|| anyhow!("map {} missing", map_names::HOST_FLOWS))?,
    )?;
    for (key, value) in seed::flows(&sockets, classes, now) {
        flows
            .insert(key, value, 0)
            .context("seeding the flow table")?;
    }
    let mut controls: HashMap<&mut MapData, ControlKey, ControlState> = HashMap::try_from(
        ebpf.map_mut(map_names::CONTROL)
            .ok_or_else(|| anyhow!("map {} missing", map_names::CONTROL))?,
    )?;
    for (key, value) in seed::controls(&sockets, classes, now) {
        // BPF_NOEXIST: never overwrite state the programs already track.
        let _ = controls.insert(key, value, 1);
    }
    Ok(())
}

/// CLOCK_MONOTONIC in nanoseconds, the clock `bpf_ktime_get_ns` reads.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}
