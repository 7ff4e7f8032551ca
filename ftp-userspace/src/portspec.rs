//! Port lists and ranges as the CLI accepts them (`21,2121`, `1024-65535`,
//! `22,80,8000-8100`), and the per-port classification built from them.

use anyhow::{Context as _, Result, bail};
use ftp_ebpf_common::policy::{MAX_CONTROL_PORTS, PortClass};

/// An inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port (inclusive).
    pub hi: u16,
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

fn parse_port(text: &str) -> Result<u16> {
    let port: u16 = text
        .trim()
        .parse()
        .with_context(|| format!("'{text}' is not a port number (1-65535)"))?;
    if port == 0 {
        bail!("port 0 is not a valid port");
    }
    Ok(port)
}

/// Parses `LO-HI` or a single port.
pub fn parse_range(text: &str) -> Result<PortRange> {
    let text = text.trim();
    let range = match text.split_once('-') {
        Some((lo, hi)) => PortRange {
            lo: parse_port(lo)?,
            hi: parse_port(hi)?,
        },
        None => {
            let port = parse_port(text)?;
            PortRange { lo: port, hi: port }
        }
    };
    if range.lo > range.hi {
        bail!(
            "range '{text}' is empty: {} is above {}",
            range.lo,
            range.hi
        );
    }
    Ok(range)
}

/// Parses a comma-separated list of ports and ranges; empty text is an empty list.
pub fn parse_list(text: &str) -> Result<Vec<PortRange>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split(',').map(parse_range).collect()
}

/// Parses the control-port list: single ports only, at most `MAX_CONTROL_PORTS`.
pub fn parse_control_ports(text: &str) -> Result<Vec<u16>> {
    let mut ports = Vec::new();
    for item in text.split(',') {
        let port = parse_port(item).context("--control-ports takes single ports, like 21,2121")?;
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    if ports.is_empty() {
        bail!("--control-ports needs at least one port");
    }
    if ports.len() > MAX_CONTROL_PORTS {
        bail!(
            "--control-ports takes at most {MAX_CONTROL_PORTS} ports, got {}",
            ports.len()
        );
    }
    Ok(ports)
}

/// The ports a comma-separated list names more than once, in order (items
/// that are not single ports are left to the parser to refuse).
pub fn repeated(text: &str) -> Vec<u16> {
    let ports: Vec<u16> = text.split(',').filter_map(|p| parse_port(p).ok()).collect();
    let mut out: Vec<u16> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        if ports[..i].contains(port) && !out.contains(port) {
            out.push(*port);
        }
    }
    out
}

/// The class of every port: control ports first, then guarded = data minus
/// allowed, everything else open.
pub fn classify(control: &[u16], data: PortRange, allow: &[PortRange]) -> Vec<PortClass> {
    let mut classes = vec![PortClass::Open; 65536];
    for port in data.lo..=data.hi {
        classes[port as usize] = PortClass::Guarded;
    }
    for range in allow {
        for port in range.lo..=range.hi {
            classes[port as usize] = PortClass::Open;
        }
    }
    for &port in control {
        classes[port as usize] = PortClass::Control;
    }
    classes
}

/// The ports of class `wanted`, in order.
pub fn ports_of(classes: &[PortClass], wanted: PortClass) -> Vec<u16> {
    (0..=u16::MAX)
        .filter(|&p| classes.get(usize::from(p)) == Some(&wanted))
        .collect()
}

/// Compresses a classification back into ranges of one class, for display.
pub fn ranges_of(classes: &[PortClass], wanted: PortClass) -> Vec<PortRange> {
    let mut out: Vec<PortRange> = Vec::new();
    for (port, class) in classes.iter().enumerate().skip(1) {
        if *class != wanted {
            continue;
        }
        let port = port as u16;
        match out.last_mut() {
            Some(last) if last.hi.checked_add(1) == Some(port) => last.hi = port,
            _ => out.push(PortRange { lo: port, hi: port }),
        }
    }
    out
}

/// Joins ranges as `a,b-c`.
pub fn format_ranges(ranges: &[PortRange]) -> String {
    let parts: Vec<String> = ranges.iter().map(ToString::to_string).collect();
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_lists() {
        assert_eq!(
            parse_range("1024-65535").unwrap(),
            PortRange {
                lo: 1024,
                hi: 65535
            }
        );
        assert_eq!(parse_range(" 80 ").unwrap(), PortRange { lo: 80, hi: 80 });
        assert_eq!(
            parse_list("22,8000-8100").unwrap(),
            vec![
                PortRange { lo: 22, hi: 22 },
                PortRange { lo: 8000, hi: 8100 }
            ]
        );
        assert!(parse_list("").unwrap().is_empty());
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in ["0", "70000", "a-b", "5-1", "1-", "-5", "1--2", "1,,2"] {
            assert!(parse_list(bad).is_err(), "{bad} should be refused");
        }
        assert!(parse_control_ports("21-22").is_err());
        assert!(parse_control_ports("1,2,3,4,5,6,7,8,9").is_err());
        assert_eq!(parse_control_ports("21,2121,21").unwrap(), vec![21, 2121]);
        assert_eq!(repeated("21,2121,21,21"), vec![21]);
        assert!(repeated("21,2121").is_empty());
    }

    #[test]
    fn classification_orders_control_over_allow_over_data() {
        let classes = classify(
            &[21, 2121],
            PortRange {
                lo: 1024,
                hi: 65535,
            },
            &[PortRange { lo: 8000, hi: 8001 }],
        );
        assert_eq!(classes[21], PortClass::Control);
        assert_eq!(classes[2121], PortClass::Control);
        assert_eq!(classes[22], PortClass::Open);
        assert_eq!(classes[1024], PortClass::Guarded);
        assert_eq!(classes[8000], PortClass::Open);
        assert_eq!(classes[8002], PortClass::Guarded);
        assert_eq!(
            format_ranges(&ranges_of(&classes, PortClass::Guarded)),
            "1024-2120,2122-7999,8002-65535"
        );
    }
}
