//! `--external-address [LOCAL=]ADDR`: the address clients reach this host at
//! behind a 1:1 NAT, written into `FTPCT_EXTERNAL` (see
//! `ftp_ebpf_common::nat`) and shown by `status`.

use std::{fmt, net::IpAddr, path::Path};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::maps::{HashMap, MapData};
use ftp_ebpf_common::{
    Addr, family, map_names,
    nat::{EXTERNAL_ENTRIES, ExternalKey},
};
use serde::Serialize;

use crate::tables;

/// One mapping: `local` (every local address of the family if `None`) is
/// reached at `external`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ExternalMapping {
    /// The local address, or `None` for every local address.
    #[serde(serialize_with = "local_or_any")]
    pub local: Option<IpAddr>,
    /// The address clients reach it at.
    pub external: IpAddr,
}

fn local_or_any<S: serde::Serializer>(local: &Option<IpAddr>, s: S) -> Result<S::Ok, S::Error> {
    match local {
        Some(addr) => s.collect_str(addr),
        None => s.serialize_str("*"),
    }
}

impl fmt::Display for ExternalMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.local {
            Some(local) => write!(f, "{local} is {}", self.external),
            None => write!(f, "{} (every local address)", self.external),
        }
    }
}

fn family_of(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        family::V4
    } else {
        family::V6
    }
}

fn to_addr(addr: IpAddr) -> Addr {
    let mut out = [0u8; 16];
    match addr {
        IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => out.copy_from_slice(&a.octets()),
    }
    out
}

fn parse_ip(text: &str, what: &str) -> Result<IpAddr> {
    let addr: IpAddr = text
        .trim()
        .parse()
        .map_err(|_| anyhow!("{what} {text:?} is not an IP address"))?;
    if addr.is_unspecified() || addr.is_multicast() {
        bail!("{what} {addr} cannot be a host's address");
    }
    Ok(addr)
}

/// Parses the `--external-address` values: `ADDR` or `LOCAL=ADDR`, one
/// catch-all per family at most, each local address once.
pub fn parse(values: &[String]) -> Result<Vec<ExternalMapping>> {
    let mut mappings: Vec<ExternalMapping> = Vec::new();
    for value in values {
        let named = |e: anyhow::Error| e.context(format!("--external-address {value}"));
        let mapping = match value.split_once('=') {
            Some((local, external)) => ExternalMapping {
                local: Some(parse_ip(local, "local address").map_err(named)?),
                external: parse_ip(external, "external address").map_err(named)?,
            },
            None => ExternalMapping {
                local: None,
                external: parse_ip(value, "external address").map_err(named)?,
            },
        };
        if let Some(local) = mapping.local
            && family_of(local) != family_of(mapping.external)
        {
            bail!("--external-address {value}: the local and external addresses differ in family");
        }
        let clash = mappings.iter().find(|m| {
            m.local == mapping.local && family_of(m.external) == family_of(mapping.external)
        });
        if let Some(earlier) = clash {
            bail!(
                "--external-address {value} clashes with {earlier}: one mapping per local address"
            );
        }
        mappings.push(mapping);
    }
    if mappings.len() > EXTERNAL_ENTRIES as usize {
        bail!("at most {EXTERNAL_ENTRIES} --external-address mappings");
    }
    Ok(mappings)
}

impl ExternalMapping {
    /// The map entry.
    fn entry(&self) -> (ExternalKey, Addr) {
        let fam = family_of(self.external);
        let key = match self.local {
            Some(local) => ExternalKey::new(fam, to_addr(local)),
            None => ExternalKey::any(fam),
        };
        (key, to_addr(self.external))
    }
}

/// Writes `mappings` into the `FTPCT_EXTERNAL` map.
pub fn write(map: &mut aya::maps::Map, mappings: &[ExternalMapping]) -> Result<()> {
    let mut map: HashMap<&mut MapData, ExternalKey, Addr> = HashMap::try_from(map)?;
    for mapping in mappings {
        let (key, value) = mapping.entry();
        map.insert(key, value, 0)
            .with_context(|| format!("writing the external address mapping {mapping}"))?;
    }
    Ok(())
}

/// Replaces every mapping pinned in `dir` with `mappings` (`ftpct set`):
/// the new ones first, then the ones no longer wanted go, so a local
/// address is never without its mapping in between.
pub fn replace(dir: &Path, mappings: &[ExternalMapping]) -> Result<()> {
    let data = MapData::from_pin(dir.join(map_names::EXTERNAL))
        .with_context(|| format!("opening pinned map {}", map_names::EXTERNAL))?;
    let mut map: HashMap<MapData, ExternalKey, Addr> =
        HashMap::try_from(aya::maps::Map::from_map_data(data)?)?;
    let old: Vec<ExternalKey> = map.keys().filter_map(Result::ok).collect();
    let mut kept = Vec::new();
    for mapping in mappings {
        let (key, value) = mapping.entry();
        map.insert(key, value, 0)
            .with_context(|| format!("writing the external address mapping {mapping}"))?;
        kept.push(key);
    }
    for key in old.iter().filter(|k| !kept.contains(k)) {
        map.remove(key)
            .context("removing an external address mapping")?;
    }
    Ok(())
}

/// The mappings pinned in `dir` (none for attachments made before the map
/// existed).
pub fn read(dir: &Path) -> Vec<ExternalMapping> {
    let Ok(data) = MapData::from_pin(dir.join(map_names::EXTERNAL)) else {
        return Vec::new();
    };
    let Ok(map) = aya::maps::Map::from_map_data(data)
        .map_err(anyhow::Error::from)
        .and_then(|m| HashMap::<MapData, ExternalKey, Addr>::try_from(m).map_err(Into::into))
    else {
        return Vec::new();
    };
    let mut mappings: Vec<ExternalMapping> = map
        .iter()
        .filter_map(Result::ok)
        .map(|(key, external)| ExternalMapping {
            local: (key.any == 0).then(|| tables::ip(key.family, &key.local)),
            external: tables::ip(key.family, &external),
        })
        .collect();
    mappings.sort_by_key(|m| (m.local.is_some(), m.local, m.external));
    mappings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_parse_and_clash() {
        let all = parse(&["198.19.0.7".into(), "198.18.1.5=198.19.0.5".into()]).expect("parses");
        assert_eq!(all[0].local, None);
        assert_eq!(all[1].local, Some("198.18.1.5".parse().expect("ip")));
        assert!(parse(&["198.18.1.5=2001:db8::1".into()]).is_err(), "family");
        assert!(
            parse(&["198.19.0.7".into(), "198.19.0.8".into()]).is_err(),
            "two catch-alls"
        );
        assert!(parse(&["0.0.0.0".into()]).is_err(), "unspecified");
        assert!(parse(&["example.com".into()]).is_err(), "not an address");
        // One catch-all per family.
        assert!(parse(&["198.19.0.7".into(), "2001:db8::7".into()]).is_ok());
    }
}
