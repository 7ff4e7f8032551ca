//! The daemon's configuration file (`/etc/ftpct/ftpct.toml`). Each
//! `[[interface]]` table takes the options of `ftpct attach`, spelled
//! without their leading dashes (`data-ports = "1024-65535"`), and goes
//! through the same parser, so the file, the command line and their
//! defaults cannot drift apart, and an error names the option.

use std::{net::SocketAddr, path::Path, time::Duration};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Parser;
use ftp_userspace::{
    daemon::{DEFAULT_FTPS_RESCAN_SECS, DaemonConfig},
    pins,
};

use crate::AttachArgs;

/// Where the daemon reads its configuration unless told otherwise.
pub const DEFAULT_PATH: &str = "/etc/ftpct/ftpct.toml";

/// The settings of the whole file; every other key is an error.
const GLOBAL_KEYS: [&str; 4] = ["pin-root", "metrics", "ftps-rescan", "interface"];

/// Attach options that belong to the whole daemon or make no sense in it.
const NOT_PER_INTERFACE: [&str; 2] = ["pin-root", "guard-session"];

/// One `[[interface]]` table, parsed as `ftpct attach`'s arguments.
#[derive(Parser)]
#[command(name = "interface", no_binary_name = true)]
struct InterfaceOptions {
    #[command(flatten)]
    args: AttachArgs,
}

/// Reads and checks the file at `path`; `metrics` (the command line's
/// `--metrics`) overrides the file's.
pub fn load(path: &Path, metrics: Option<SocketAddr>) -> Result<DaemonConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text, metrics).with_context(|| format!("{}", path.display()))
}

fn parse(text: &str, metrics: Option<SocketAddr>) -> Result<DaemonConfig> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = e.span().map_or(0, |s| s.start).min(text.len());
        let line = text[..at].matches('\n').count() + 1;
        anyhow!("line {line}: {}", e.message().trim_end())
    })?;
    if let Some(key) = table.keys().find(|k| !GLOBAL_KEYS.contains(&k.as_str())) {
        bail!(
            "unknown setting {key:?} (the file has {}; interface options go in [[interface]])",
            GLOBAL_KEYS.join(", ")
        );
    }
    let pin_root = match table.get("pin-root") {
        None => pins::resolve_root(None),
        Some(v) => v
            .as_str()
            .ok_or_else(|| anyhow!("pin-root takes a path in quotes"))?
            .into(),
    };
    let metrics = match (metrics, table.get("metrics")) {
        (Some(flag), _) => Some(flag),
        (None, None) => None,
        (None, Some(v)) => Some(
            v.as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow!("metrics takes \"ADDR:PORT\", like \"127.0.0.1:9469\""))?,
        ),
    };
    let rescan = match table.get("ftps-rescan") {
        None => DEFAULT_FTPS_RESCAN_SECS,
        Some(v) => v
            .as_integer()
            .and_then(|n| u64::try_from(n).ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| anyhow!("ftps-rescan takes seconds, at least 1"))?,
    };
    let list = match table.get("interface") {
        None => &Vec::new(),
        Some(v) => v
            .as_array()
            .ok_or_else(|| anyhow!("interface must be [[interface]] tables"))?,
    };
    if list.is_empty() {
        bail!("no [[interface]]: nothing to guard");
    }
    let mut interfaces = Vec::new();
    for (n, item) in list.iter().enumerate() {
        let item = item
            .as_table()
            .ok_or_else(|| anyhow!("interface must be [[interface]] tables"))?;
        let name = item
            .get("name")
            .and_then(|v| v.as_str())
            .ok_or_else(|| anyhow!("[[interface]] number {} has no name = \"IFACE\"", n + 1))?;
        let mut cfg = interface(name, item).with_context(|| format!("interface {name}"))?;
        if interfaces
            .iter()
            .any(|c: &ftp_userspace::attach::AttachConfig| c.iface == cfg.iface)
        {
            bail!("interface {name} is configured twice");
        }
        cfg.pin_root = pin_root.clone();
        interfaces.push(cfg);
    }
    Ok(DaemonConfig {
        pin_root,
        metrics,
        ftps_rescan: Duration::from_secs(rescan),
        interfaces,
    })
}

/// The attach configuration of one `[[interface]]` table.
fn interface(name: &str, item: &toml::Table) -> Result<ftp_userspace::attach::AttachConfig> {
    let mut argv = vec![name.to_string()];
    for (key, value) in item.iter().filter(|(k, _)| *k != "name") {
        if NOT_PER_INTERFACE.contains(&key.as_str()) {
            bail!("{key} cannot be set per interface");
        }
        let option = format!("--{key}");
        match value {
            toml::Value::Boolean(true) => argv.push(option),
            toml::Value::Boolean(false) => {}
            toml::Value::String(s) => argv.extend([option, s.clone()]),
            toml::Value::Integer(n) => argv.extend([option, n.to_string()]),
            toml::Value::Array(items) => {
                for item in items {
                    let text = match item {
                        toml::Value::String(s) => s.clone(),
                        toml::Value::Integer(n) => n.to_string(),
                        _ => bail!("{key} takes strings or numbers"),
                    };
                    argv.extend([option.clone(), text]);
                }
            }
            _ => bail!("{key} takes a string, a number, true/false or a list"),
        }
    }
    let options = InterfaceOptions::try_parse_from(&argv).map_err(|e| {
        // clap's first line and its tip, without usage: the file's keys are
        // the options without their dashes.
        let text = e.render().to_string();
        let said: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("error: ") || l.starts_with("tip: "))
            .collect();
        anyhow!(
            "{}",
            said.join("; ")
                .trim_start_matches("error: ")
                .replace("'--", "'")
        )
    })?;
    let (cfg, warnings) = options.args.for_daemon()?;
    for warning in warnings {
        log::warn!("interface {name}: {warning}");
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interface_takes_the_attach_options_and_their_defaults() {
        let cfg = parse(
            "metrics = \"127.0.0.1:9469\"\n[[interface]]\nname = \"eth0\"\n\
             allow-ports = \"2222\"\nexpect-timeout = 10\nstrict = true\n\
             external-address = [\"198.19.0.10\"]\n",
            None,
        )
        .expect("valid");
        let eth0 = &cfg.interfaces[0];
        assert_eq!(eth0.iface, "eth0");
        assert_eq!(eth0.expect_timeout_secs, 10);
        assert!(eth0.strict);
        assert_eq!(eth0.external.len(), 1);
        let defaults = ftp_userspace::attach::AttachConfig::with_defaults("eth0");
        assert_eq!(eth0.flow_timeout_secs, defaults.flow_timeout_secs);
        assert_eq!(eth0.max_flows, defaults.max_flows);
        assert_eq!(cfg.metrics, "127.0.0.1:9469".parse().ok());
        assert_eq!(
            cfg.ftps_rescan,
            Duration::from_secs(DEFAULT_FTPS_RESCAN_SECS)
        );
    }

    #[test]
    fn errors_name_the_setting() {
        let err = |text: &str| format!("{:#}", parse(text, None).expect_err(text));
        let one = |body: &str| format!("[[interface]]\nname = \"eth0\"\n{body}\n");
        assert!(err(&one("data-port = \"1024-2000\"")).contains("data-port"));
        assert!(err(&one("max-expect-per-conn = 9")).contains("max-expect-per-conn"));
        assert!(err(&one("data-ports = \"70000\"")).contains("data-ports"));
        assert!(err(&one("pin-root = \"/x\"")).contains("pin-root cannot be set per interface"));
        assert!(err("metric = 1\n").contains("unknown setting \"metric\""));
        assert!(err("").contains("nothing to guard"));
        assert!(
            err("[[interface]]\nname = \"eth0\"\n[[interface]]\nname = \"eth0\"\n")
                .contains("configured twice")
        );
        assert!(err("[[interface]]\nname = eth0\n").contains("line 2"));
    }

    /// The example in dist/ shows the defaults where it shows a default,
    /// and every setting in it, uncommented, is valid.
    #[test]
    fn the_shipped_example_is_valid_and_shows_the_defaults() {
        let example = include_str!("../../dist/ftpct.toml");
        let shipped = parse(example, None).expect("example as shipped");
        let uncommented: String = example
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.contains(" = ") || rest.starts_with("[[") => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let all = parse(&uncommented, None).expect("example uncommented");
        assert_eq!(all.interfaces.len(), 2);
        let (eth0, defaults) = (&all.interfaces[0], &shipped.interfaces[0]);
        assert_eq!(eth0.expect_timeout_secs, defaults.expect_timeout_secs);
        assert_eq!(eth0.flow_timeout_secs, defaults.flow_timeout_secs);
        assert_eq!(eth0.control_ports, defaults.control_ports);
        assert_eq!(eth0.data_ports, defaults.data_ports);
        assert_eq!(all.pin_root, shipped.pin_root);
        assert_eq!(all.ftps_rescan, shipped.ftps_rescan);
    }
}
