//! Driving the `ftpct` CLI inside a lab namespace.
//!
//! The CLI is expected to accept `--pin-root DIR` on `attach`, `detach` and
//! `status`, so that each lab's pinned objects live in their own bpffs
//! directory and parallel labs do not see each other.

use std::collections::BTreeMap;
use std::env;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::{Context, Result, bail};
use ftp_ebpf_common::counters::Counter;

use crate::netns::{Netns, unique_token};

/// Prefix of per-lab pin roots under the bpffs mount.
const PIN_ROOT_PREFIX: &str = "/sys/fs/bpf/ftpct-test-";

/// The workspace root (parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The ftpct binary: `FTPCT_BIN`, else `<workspace>/target/release/ftpct`.
pub fn ftpct_bin() -> PathBuf {
    env::var_os("FTPCT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/release/ftpct"))
}

/// A fresh, unique pin root path `/sys/fs/bpf/ftpct-test-<pid>-<n>` (not
/// created).
pub fn unique_pin_root() -> PathBuf {
    PathBuf::from(format!("{PIN_ROOT_PREFIX}{}", unique_token()))
}

/// Removes `pin_root` and everything pinned below it, if it exists.
pub fn remove_pin_root(pin_root: &Path) {
    if pin_root.exists() {
        if let Err(e) = fs::remove_dir_all(pin_root) {
            eprintln!("warning: removing {}: {e}", pin_root.display());
        }
    }
}

/// Removes pin roots of test processes that no longer exist.
pub fn sweep_stale_pin_roots() {
    let Ok(entries) = fs::read_dir("/sys/fs/bpf") else {
        return;
    };
    let prefix = Path::new(PIN_ROOT_PREFIX)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove_pin_root(&entry.path());
        }
    }
}

/// Where ftpct pins `iface` of `ns` under `pin_root`:
/// `<pin root>/net<netns inode>/<iface>`.
pub fn pin_dir(pin_root: &Path, ns: &Netns, iface: &str) -> Result<PathBuf> {
    Ok(pin_root.join(format!("net{}", ns.inode()?)).join(iface))
}

/// Checks that a failed ftpct command exited with `code`, printed exactly
/// one line on stderr starting `ftpct: ` (for `code` 1) that contains
/// `needle`, and did not panic.
pub fn assert_cli_error(what: &str, out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: exit status; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{what}: panic: {stderr}");
    assert!(
        stderr.contains(needle),
        "{what}: want {needle:?} in {stderr:?}"
    );
    if code == 1 {
        let lines: Vec<&str> = stderr.trim().lines().collect();
        assert_eq!(lines.len(), 1, "{what}: want one line: {stderr:?}");
        assert!(lines[0].starts_with("ftpct: "), "{what}: {stderr:?}");
    }
}

/// `addr:port` as ftpct prints endpoints (IPv6 in brackets).
pub fn endpoint(addr: std::net::IpAddr, port: u16) -> String {
    match addr {
        std::net::IpAddr::V4(a) => format!("{a}:{port}"),
        std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// The `side` (`src`, `dst`) of a `flows --json` or `expectations --json`
/// row, from its `SIDE_addr` and `SIDE_port` fields, as [`endpoint`] writes
/// it; `None` if the row lacks them.
pub fn row_endpoint(row: &serde_json::Value, side: &str) -> Option<String> {
    let addr: std::net::IpAddr = row[format!("{side}_addr")].as_str()?.parse().ok()?;
    let port = u16::try_from(row[format!("{side}_port")].as_u64()?).ok()?;
    Some(endpoint(addr, port))
}

/// ftpct attached to an interface of a namespace; dropping it runs
/// `ftpct detach` (errors ignored) and removes the pin root.
pub struct Ftpct<'a> {
    ns: &'a Netns,
    iface: String,
    pin_root: PathBuf,
    pin_dir: PathBuf,
    attached: bool,
    attach_stdout: String,
    attach_stderr: String,
}

impl<'a> Ftpct<'a> {
    /// Runs `ftpct attach IFACE --pin-root PIN_ROOT EXTRA_ARGS...` in `ns`
    /// (e.g. `extra_args = ["--data-ports", "40000-40099"]`).
    pub fn attach(
        ns: &'a Netns,
        iface: &str,
        extra_args: &[&str],
        pin_root: &Path,
    ) -> Result<Self> {
        let mut argv = vec![ftpct_bin().into_os_string(), "attach".into(), iface.into()];
        argv.push("--pin-root".into());
        argv.push(pin_root.as_os_str().to_owned());
        argv.extend(extra_args.iter().map(OsString::from));
        // Construct the guard first so a partial attach is cleaned up too.
        let mut guard = Self {
            ns,
            iface: iface.to_string(),
            pin_root: pin_root.to_path_buf(),
            pin_dir: pin_dir(pin_root, ns, iface)?,
            attached: true,
            attach_stdout: String::new(),
            attach_stderr: String::new(),
        };
        match ns.run_ok(&argv) {
            Ok(out) => {
                guard.attach_stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
                guard.attach_stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
                Ok(guard)
            }
            Err(e) => {
                guard.cleanup();
                Err(e.context(format!("ftpct attach {iface} in {}", ns.name())))
            }
        }
    }

    /// What `ftpct attach` printed on stdout (trimmed).
    pub fn attach_output(&self) -> &str {
        &self.attach_stdout
    }

    /// What `ftpct attach` printed on stderr (trimmed): its warnings.
    pub fn attach_stderr(&self) -> &str {
        &self.attach_stderr
    }

    /// The namespace ftpct was attached in.
    pub fn netns(&self) -> &Netns {
        self.ns
    }

    /// This interface's pin directory, `<pin root>/net<inode>/<iface>`.
    pub fn pin_dir(&self) -> PathBuf {
        self.pin_dir.clone()
    }

    /// Runs `ftpct SUBCOMMAND ARGS... --pin-root PIN_ROOT` in the namespace;
    /// a non-zero exit status is returned, not an error.
    pub fn cli(&self, subcommand: &str, args: &[&str]) -> Result<Output> {
        self.ns.run(&self.base_argv(subcommand, args))
    }

    /// Like [`Ftpct::cli`], but fails unless the command succeeds; returns
    /// stdout.
    pub fn cli_ok(&self, subcommand: &str, args: &[&str]) -> Result<String> {
        let out = self.ns.run_ok(&self.base_argv(subcommand, args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `ftpct expectations --json`, parsed (an array of objects).
    pub fn expectations_json(&self) -> Result<Rows> {
        self.json_array("expectations")
    }

    /// `ftpct flows --json`, parsed (an array of objects).
    pub fn flows_json(&self) -> Result<Rows> {
        self.json_array("flows")
    }

    /// The counters of this interface from `ftpct status --json`.
    pub fn counters(&self) -> Result<Counters> {
        let status = self.status_json()?;
        let entry = status
            .as_array()
            .and_then(|all| all.iter().find(|s| s["iface"] == self.iface.as_str()))
            .with_context(|| format!("{} missing from ftpct status: {status}", self.iface))?;
        Counters::from_status(entry)
    }

    /// The kernel objects this attachment holds, from `ftpct status --json`:
    /// `("prog", id)` for both programs and `("link", id)` for each link
    /// (an egress program attached without a link, as on kernels before
    /// tcx, has none).
    pub fn kernel_objects(&self) -> Result<Vec<(&'static str, u64)>> {
        let status = self.status_json()?;
        let entry = status
            .as_array()
            .and_then(|all| all.iter().find(|s| s["iface"] == self.iface.as_str()))
            .with_context(|| format!("{} missing from ftpct status: {status}", self.iface))?;
        let mut objects = Vec::new();
        for field in ["ingress_prog_id", "egress_prog_id"] {
            let id = entry[field]
                .as_u64()
                .filter(|&id| id != 0)
                .with_context(|| format!("bad {field} in {entry}"))?;
            objects.push(("prog", id));
        }
        let links = entry["link_ids"]
            .as_array()
            .with_context(|| format!("no link_ids in {entry}"))?;
        for link in links {
            let id = link
                .as_u64()
                .with_context(|| format!("bad link id {link} in {entry}"))?;
            if id != 0 {
                objects.push(("link", id));
            }
        }
        Ok(objects)
    }

    /// Runs `ftpct detach IFACE` now and returns its output, leaving the pin
    /// root in place (so a test can check what detach itself removed). The
    /// guard will not detach again.
    pub fn detach_now(&mut self) -> Result<Output> {
        self.attached = false;
        let argv = self.base_argv("detach", &[&self.iface]);
        self.ns.run(&argv)
    }

    fn json_array(&self, subcommand: &str) -> Result<Rows> {
        let text = self.cli_ok(subcommand, &["--json"])?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing ftpct {subcommand} --json output: {text}"))?;
        match value {
            serde_json::Value::Array(rows) => Ok(Rows(rows)),
            other => bail!("ftpct {subcommand} --json: expected an array, got {other}"),
        }
    }

    /// The interface ftpct is attached to.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The pin root in use.
    pub fn pin_root(&self) -> &Path {
        &self.pin_root
    }

    /// `ftpct status --json`, parsed.
    pub fn status_json(&self) -> Result<serde_json::Value> {
        let out = self.ns.run_ok(&self.base_argv("status", &["--json"]))?;
        serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "parsing ftpct status output: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Runs `ftpct detach IFACE` now, reporting errors (drop would ignore
    /// them).
    pub fn detach(mut self) -> Result<()> {
        self.attached = false;
        let argv = self.base_argv("detach", &[&self.iface]);
        let result = self.ns.run_ok(&argv).map(drop);
        remove_pin_root(&self.pin_root);
        result
    }

    /// `ftpct SUBCOMMAND ARGS... --pin-root PIN_ROOT`.
    fn base_argv(&self, subcommand: &str, args: &[&str]) -> Vec<OsString> {
        let mut argv = vec![ftpct_bin().into_os_string(), subcommand.into()];
        argv.extend(args.iter().map(OsString::from));
        argv.push("--pin-root".into());
        argv.push(self.pin_root.as_os_str().to_owned());
        argv
    }

    fn cleanup(&mut self) {
        if self.attached {
            self.attached = false;
            let argv = self.base_argv("detach", &[&self.iface]);
            let _ = self.ns.run(&argv);
        }
        remove_pin_root(&self.pin_root);
    }
}

impl Drop for Ftpct<'_> {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Whether the kernel still has the BPF object `kind` (`prog`, `link`)
/// `id`, as bpftool run in `ns` sees it.
pub fn kernel_object_exists(ns: &Netns, kind: &str, id: u64) -> Result<bool> {
    let out = ns.run(&["bpftool", kind, "show", "id", &id.to_string()])?;
    Ok(out.status.success())
}

/// Runs the ftpct binary with `args` (exactly as given) inside `ns`; a
/// non-zero exit status is returned, not an error.
pub fn ftpct_run<S: AsRef<OsStr>>(ns: &Netns, args: &[S]) -> Result<Output> {
    let mut argv = vec![ftpct_bin().into_os_string()];
    argv.extend(args.iter().map(|a| a.as_ref().to_os_string()));
    ns.run(&argv)
}

/// Rows of `ftpct expectations --json` or `ftpct flows --json`; displayed
/// as compact JSON, one row per line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rows(pub Vec<serde_json::Value>);

impl std::ops::Deref for Rows {
    type Target = [serde_json::Value];

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl fmt::Display for Rows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "(no rows)");
        }
        for row in &self.0 {
            write!(f, "\n  {row}")?;
        }
        Ok(())
    }
}

/// Named counters from one interface's `ftpct status --json` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters(pub BTreeMap<String, u64>);

impl Counters {
    /// Parses the `counters` field (`{"name": N, ...}`) of a status entry.
    pub fn from_status(entry: &serde_json::Value) -> Result<Self> {
        let object = entry["counters"]
            .as_object()
            .with_context(|| format!("no counters object in {entry}"))?;
        let mut map = BTreeMap::new();
        for (name, value) in object {
            let Some(value) = value.as_u64() else {
                bail!("bad counter {name}: {value} in {entry}");
            };
            map.insert(name.clone(), value);
        }
        // Every counter is listed, zero or not: one missing means the status
        // output and the test disagree, which must not read as a zero.
        if let Some(missing) = Counter::ALL.iter().find(|c| !map.contains_key(c.name())) {
            bail!(
                "counter {} missing from ftpct status: {entry}",
                missing.name()
            );
        }
        Ok(Self(map))
    }

    /// The value of `counter`. Panics if ftpct did not report it: a counter
    /// that is missing must fail the test, never read as 0.
    pub fn get(&self, counter: Counter) -> u64 {
        match self.0.get(counter.name()) {
            Some(value) => *value,
            None => panic!("ftpct status does not report counter {}", counter.name()),
        }
    }

    /// How much `counter` grew since `earlier` (saturating).
    pub fn since(&self, earlier: &Counters, counter: Counter) -> u64 {
        self.get(counter).saturating_sub(earlier.get(counter))
    }

    /// Expectations created, of every kind (the `expect_created_*` counters).
    pub fn created(&self) -> u64 {
        [
            Counter::ExpectPasv,
            Counter::ExpectEpsv,
            Counter::ExpectPort,
            Counter::ExpectEprt,
        ]
        .into_iter()
        .map(|k| self.get(k))
        .sum()
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .filter(|(_, v)| **v != 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(f, "{}", parts.join(" "))
    }
}

/// `ftpct daemon` running in a namespace on a configuration file the test
/// writes; dropping it stops the daemon (SIGTERM, which leaves the
/// interfaces guarded: the lab's pin root removal detaches them) and
/// removes its files.
pub struct Daemon {
    child: crate::process::ChildGuard,
    config: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// How long the daemon may take to attach and say it runs.
    pub const START: std::time::Duration = std::time::Duration::from_secs(30);

    /// Writes `config` to a file of its own and starts `ftpct daemon` on it
    /// in `ns`; returns once the daemon says it runs, fails if it exits.
    pub fn start(ns: &Netns, config: &str) -> Result<Self> {
        let token = unique_token();
        let dir = env::temp_dir();
        let (config_path, log) = (
            dir.join(format!("ftpct-daemon-{token}.toml")),
            dir.join(format!("ftpct-daemon-{token}.log")),
        );
        fs::write(&config_path, config)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let mut argv = vec![ftpct_bin().into_os_string(), "daemon".into()];
        argv.extend(["--config".into(), config_path.clone().into_os_string()]);
        let child = ns.spawn_logged(&argv, &log)?;
        let mut daemon = Self {
            child,
            config: config_path,
            log,
        };
        daemon.wait_for_log("daemon running", Self::START)?;
        Ok(daemon)
    }

    /// Everything the daemon printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) until the log holds `needle`; fails at once if the
    /// daemon exits first.
    pub fn wait_for_log(&mut self, needle: &str, timeout: std::time::Duration) -> Result<()> {
        let found = crate::process::wait_until(timeout, || {
            if self.log().contains(needle) {
                return Ok(true);
            }
            if let Some(status) = self.child.try_status()? {
                bail!(
                    "ftpct daemon exited ({status}) before saying {needle:?}:\n{}",
                    self.log()
                );
            }
            Ok(false)
        })?;
        if !found {
            bail!(
                "ftpct daemon did not say {needle:?} within {timeout:?}:\n{}",
                self.log()
            );
        }
        Ok(())
    }

    /// Replaces the configuration file with `config` and sends SIGHUP.
    pub fn reload(&self, config: &str) -> Result<()> {
        fs::write(&self.config, config)
            .with_context(|| format!("writing {}", self.config.display()))?;
        crate::process::signal_pid(self.child.pid(), libc::SIGHUP);
        Ok(())
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        crate::process::signal_pid(self.child.pid(), libc::SIGTERM);
        self.wait_exit(std::time::Duration::from_secs(10))
    }

    /// Waits at most `timeout` for the daemon to exit on its own.
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> Result<std::process::ExitStatus> {
        self.child
            .wait_timeout(timeout)?
            .with_context(|| format!("ftpct daemon still runs after {timeout:?}:\n{}", self.log()))
    }

    /// The daemon's PID.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Whether the daemon still runs.
    pub fn running(&mut self) -> Result<bool> {
        Ok(self.child.try_status()?.is_none())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.child.stop(std::time::Duration::from_secs(5));
        let _ = fs::remove_file(&self.config);
        let _ = fs::remove_file(&self.log);
    }
}
