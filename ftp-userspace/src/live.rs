//! Live changes to an attachment (issue #12, item 2): `ftpct set` rewrites
//! the policy, the port classes and the NAT mappings in the pinned maps
//! while the programs run, and `ftpct flush` empties a table or the
//! counters. Expectations, flows and control connections stay as they are,
//! as `nft` changes a ruleset without touching conntrack.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use aya::maps::{Array, HashMap, MapData, PerCpuArray, PerCpuValues};
use ftp_ebpf_common::{
    counters::Counter,
    flow::{ClientKey, ClientValue, ExpectKey, ExpectValue, FlowKey, FlowValue},
    map_names,
    policy::{POLICY_ALLOW_LOW_PORTS, POLICY_STRICT, Policy, PortClass},
};

use crate::{
    external::{self, ExternalMapping},
    lockout,
    netns::Netns,
    pins,
    portspec::{self, PortRange},
    tables,
};

/// What `ftpct set` changes; `None` leaves a setting as it is.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// `--allow-ports`: the ports inside the data range left open (replaces
    /// the list).
    pub allow_ports: Option<Vec<PortRange>>,
    pub expect_timeout_secs: Option<u64>,
    pub flow_timeout_secs: Option<u64>,
    pub allow_low_ports: Option<bool>,
    pub max_expect_per_conn: Option<u16>,
    pub max_expect_per_client: Option<u16>,
    pub max_expect_per_site: Option<u16>,
    pub max_new_sessions_per_client: Option<u16>,
    /// `--external-address`: replaces every mapping.
    pub external: Option<Vec<ExternalMapping>>,
    /// `--ftps-range`: `Some(None)` removes it.
    pub ftps_range: Option<Option<PortRange>>,
    /// Guard ports where services listen.
    pub force: bool,
    /// The port of the administrator's SSH session, left open by a new
    /// `--allow-ports` as at attach (`None` with `--guard-session`).
    pub session_port: Option<u16>,
}

/// The pin directory of `iface` in this namespace, or one clear line.
fn attachment(root: &Path, iface: &str) -> Result<std::path::PathBuf> {
    let netns = Netns::current()?;
    let dir = pins::iface_dir(root, &netns, iface);
    if !dir.exists() {
        bail!(
            "not attached to {iface} in this network namespace ({}); `ftpct attach {iface}` first",
            netns.display_name()
        );
    }
    Ok(dir)
}

/// Applies `changes` to the attachment of `iface`; returns one line per
/// setting that changed (a value it already had is not a change). Port classes are written before the policy, each
/// entry once; a port newly guarded where a service listens is refused
/// unless `force`, as at attach.
pub fn set(root: &Path, iface: &str, changes: &Changes) -> Result<Vec<String>> {
    let dir = attachment(root, iface)?;
    let old = tables::policy(&dir)?;
    let mut policy = old;
    let mut said = Vec::new();
    let mut secs = |name: &str, v: Option<u64>, field: &mut u64| {
        if let Some(v) = v {
            let ns = v.saturating_mul(1_000_000_000);
            if *field != ns {
                *field = ns;
                said.push(format!("{name} {v}s"));
            }
        }
    };
    secs(
        "expectation lifetime",
        changes.expect_timeout_secs,
        &mut policy.expect_timeout_ns,
    );
    secs(
        "flow idle timeout",
        changes.flow_timeout_secs,
        &mut policy.flow_timeout_ns,
    );
    let mut limit = |name: &str, v: Option<u16>, field: &mut u16| {
        if let Some(v) = v
            && *field != v
        {
            *field = v;
            said.push(format!("{name} {v}"));
        }
    };
    limit(
        "expectations per control connection",
        changes.max_expect_per_conn,
        &mut policy.max_expect_per_conn,
    );
    limit(
        "expectations per client",
        changes.max_expect_per_client,
        &mut policy.max_expect_per_client,
    );
    limit(
        "expectations per IPv6 /48",
        changes.max_expect_per_site,
        &mut policy.max_expect_per_site,
    );
    limit(
        "new control connections per client",
        changes.max_new_sessions_per_client,
        &mut policy.max_new_sessions_per_client,
    );
    if let Some(allow) = changes.allow_low_ports
        && allow != (policy.flags & POLICY_ALLOW_LOW_PORTS != 0)
    {
        policy.flags = if allow {
            policy.flags | POLICY_ALLOW_LOW_PORTS
        } else {
            policy.flags & !POLICY_ALLOW_LOW_PORTS
        };
        said.push(format!(
            "ports below 1024 {}",
            if allow { "allowed" } else { "refused" }
        ));
    }

    let classes = tables::port_classes(&dir)?;
    let new_classes = match &changes.allow_ports {
        Some(allow) => {
            let mut new = reclassify(&classes, &policy, allow)?;
            if let Some(port) = changes.session_port
                && new[usize::from(port)] == PortClass::Guarded
            {
                new[usize::from(port)] = PortClass::Open;
                said.push(format!(
                    "leaving port {port} open: it carries this SSH session (SSH_CONNECTION); \
                     --guard-session guards it too"
                ));
            }
            if new != classes {
                said.push(format!(
                    "open inside the guarded ports: {}",
                    if allow.is_empty() {
                        "none".to_string()
                    } else {
                        portspec::format_ranges(allow)
                    }
                ));
            }
            new
        }
        None => classes.clone(),
    };
    if let Some(range) = changes.ftps_range
        && range.map_or((0, 0), |r| (r.lo, r.hi)) != (policy.ftps_lo, policy.ftps_hi)
    {
        (policy.ftps_lo, policy.ftps_hi) = range.map_or((0, 0), |r| (r.lo, r.hi));
        said.push(match range {
            Some(r) => format!("ftps range {r}"),
            None => "no ftps range".to_string(),
        });
    }
    if policy.ftps_lo != 0 {
        let outside = (policy.ftps_lo..=policy.ftps_hi)
            .find(|&p| new_classes[usize::from(p)] != PortClass::Guarded);
        if let Some(port) = outside {
            bail!(
                "--ftps-range {}-{}: port {port} would not be a guarded data port",
                policy.ftps_lo,
                policy.ftps_hi
            );
        }
    }
    if !changes.force {
        // Only ports this change guards: the others were guarded already.
        let newly: Vec<PortClass> = classes
            .iter()
            .zip(&new_classes)
            .map(|(old, new)| {
                if *new == PortClass::Guarded && *old != PortClass::Guarded {
                    PortClass::Guarded
                } else {
                    PortClass::Open
                }
            })
            .collect();
        lockout::refuse_guarded_listeners(iface, &newly)?;
    }

    let mut ports: Array<MapData, u8> = tables::open(&dir, map_names::PORTS)?.try_into()?;
    for (port, (old, new)) in classes.iter().zip(&new_classes).enumerate() {
        if old != new {
            ports
                .set(port as u32, *new as u8, 0)
                .with_context(|| format!("writing the class of port {port}"))?;
        }
    }
    if let Some(mappings) = &changes.external
        && !same_set(mappings, &external::read(&dir))
    {
        external::replace(&dir, mappings)?;
        said.push(if mappings.is_empty() {
            "no external address".to_string()
        } else {
            let list: Vec<String> = mappings.iter().map(ToString::to_string).collect();
            format!("external address {}", list.join(", "))
        });
    }
    if policy != old {
        let mut map: Array<MapData, Policy> = tables::open(&dir, map_names::POLICY)?.try_into()?;
        map.set(0, policy, 0).context("writing the policy")?;
    }
    Ok(said)
}

/// Whether `a` and `b` hold the same mappings, in any order.
fn same_set(a: &[ExternalMapping], b: &[ExternalMapping]) -> bool {
    a.len() == b.len() && a.iter().all(|m| b.contains(m))
}

/// The port classes with `allow` as the open ports inside the guarded
/// range (the data range as attached, or every port with `--strict`);
/// control ports stay control ports.
fn reclassify(
    classes: &[PortClass],
    policy: &Policy,
    allow: &[PortRange],
) -> Result<Vec<PortClass>> {
    if policy.data_lo == 0 {
        bail!(
            "this attachment does not record its data range (attached by an older ftpct): \
             `ftpct detach` and `ftpct attach` again to change --allow-ports"
        );
    }
    let control = portspec::ports_of(classes, PortClass::Control);
    let guarded = if policy.flags & POLICY_STRICT != 0 {
        PortRange { lo: 1, hi: 65535 }
    } else {
        PortRange {
            lo: policy.data_lo,
            hi: policy.data_hi,
        }
    };
    Ok(portspec::classify(&control, guarded, allow))
}

/// What `ftpct flush` empties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Flush {
    /// Announced data connections not yet opened (and the per-client counts
    /// they were held to).
    Expectations,
    /// Admitted data connections (the host's own connections stay: flushing
    /// them could cut the administrator's session).
    Flows,
    /// Every counter, back to zero.
    Counters,
}

/// Empties `what` in the attachment of `iface`; returns how many entries
/// went (counters: how many were non-zero).
pub fn flush(root: &Path, iface: &str, what: Flush) -> Result<usize> {
    let dir = attachment(root, iface)?;
    match what {
        Flush::Expectations => {
            let n = clear::<ExpectKey, ExpectValue>(&dir, map_names::EXPECTATIONS)?;
            // Forgetting counts only makes the caps more lenient.
            clear::<ClientKey, ClientValue>(&dir, map_names::CLIENTS)?;
            Ok(n)
        }
        Flush::Flows => clear::<FlowKey, FlowValue>(&dir, map_names::FLOWS),
        Flush::Counters => {
            let mut map: PerCpuArray<MapData, u64> =
                tables::open(&dir, map_names::COUNTERS)?.try_into()?;
            let cpus = aya::util::nr_cpus()
                .map_err(|(_, e)| e)
                .context("counting CPUs")?;
            let mut nonzero = 0;
            for counter in Counter::ALL {
                let index = *counter as u32;
                let values = map
                    .get(&index, 0)
                    .with_context(|| format!("reading counter {}", counter.name()))?;
                if values.iter().any(|&v| v != 0) {
                    nonzero += 1;
                    let zero = PerCpuValues::try_from(vec![0u64; cpus])
                        .context("building zero counters")?;
                    map.set(index, zero, 0)
                        .with_context(|| format!("resetting counter {}", counter.name()))?;
                }
            }
            Ok(nonzero)
        }
    }
}

/// Removes every entry of the pinned hash map `name`.
fn clear<K: aya::Pod, V: aya::Pod>(dir: &Path, name: &str) -> Result<usize> {
    let mut map: HashMap<MapData, K, V> = tables::open(dir, name)?.try_into()?;
    let keys: Vec<K> = map.keys().filter_map(Result::ok).collect();
    let mut removed = 0;
    for key in keys {
        // Gone already (expired and swept, or used): not an error.
        if map.remove(&key).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}
