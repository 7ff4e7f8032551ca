//! The kernel matrix: ftpct's programs on each kernel of [`KERNELS`], each
//! booted in qemu ([`vm`]) with the host's build inside. One guest per
//! kernel runs the groups in turn, each bounded by `timeout`:
//!
//! - `check`: `ftpct check`, whose `path:` line names the path taken;
//! - `verifier`: `ftpct attach` to a veth, `detach`, nothing left behind;
//! - `datapath`: ftp-userspace's `BPF_PROG_TEST_RUN` tests (only the
//!   `datapath` target in the bounded run: each load takes seconds of
//!   verification under TCG);
//! - `e2e`: `tests/kernel_matrix.rs`, the lab with vsftpd and curl.
//!
//! A table of the outcomes closes the run; a failed group fails it. On a
//! kernel ftpct is expected to refuse, `check` or `verifier` failing with
//! ftpct's one-line refusal counts as refused, and so do the test suites
//! after it (they cannot load the programs either); any other failure there
//! is a failure: the refusal must be clear.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::Value;

use crate::kernels::{self, Fetched, KERNELS, Kernel};
use crate::{cmd, ftpct_bin, vm, workspace_root};

/// How much of the kernel test suite runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `cargo xtask test`: the `datapath` kernel test target only.
    Bounded,
    /// `cargo xtask test-kernels`: every ftp-userspace test target.
    Full,
}

/// One group of checks run in the guest: its name and time limit.
struct Group {
    name: &'static str,
    limit: Duration,
}

/// The groups, in the order they run.
const GROUPS: [Group; 4] = [
    Group {
        name: "check",
        limit: Duration::from_secs(120),
    },
    Group {
        name: "verifier",
        limit: Duration::from_secs(300),
    },
    Group {
        name: "datapath",
        limit: Duration::from_secs(1500),
    },
    Group {
        name: "e2e",
        limit: Duration::from_secs(900),
    },
];

/// Allowance for booting and powering off, on top of the groups' limits.
const BOOT_ALLOWANCE: Duration = Duration::from_secs(180);

/// Runs the matrix on the kernels called `names` (all when empty).
pub fn run(names: &[String], scope: Scope) -> Result<()> {
    let kernels: Vec<&Kernel> = if names.is_empty() {
        KERNELS.iter().collect()
    } else {
        names
            .iter()
            .map(|n| kernels::find(n))
            .collect::<Result<_>>()?
    };
    let fetched: Vec<Fetched> = kernels
        .iter()
        .map(|k| kernels::fetch(k))
        .collect::<Result<_>>()?;
    let built = Built::build(scope)?;
    let mut rows = Vec::new();
    for (kernel, fetched) in kernels.iter().zip(&fetched) {
        eprintln!(
            "xtask: kernel {} ({}) in qemu",
            kernel.name, fetched.package
        );
        let script = guest_script(&built, kernel.refusal.is_some());
        let row = run_kernel(kernel, fetched, &script);
        eprintln!("xtask: kernel {} done in {}s", kernel.name, row.secs);
        rows.push(row);
    }
    for row in &rows {
        row.report_failures();
    }
    println!("{}", table(&rows));
    let failed: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.outcomes
                .iter()
                .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
                .map(|(g, _)| format!("{}/{g}", r.kernel))
        })
        .collect();
    if !failed.is_empty() {
        bail!("kernel matrix: failed {}", failed.join(", "));
    }
    Ok(())
}

/// What the guests run, built on the host.
struct Built {
    ftpct: PathBuf,
    kernel_tests: Vec<PathBuf>,
    e2e: PathBuf,
}

impl Built {
    fn build(scope: Scope) -> Result<Self> {
        crate::build()?;
        let mut kernel_args = vec!["-p", "ftp-userspace"];
        if scope == Scope::Bounded {
            kernel_args.extend(["--test", "datapath"]);
        }
        let kernel_tests = test_executables(&kernel_args)?;
        let e2e = test_executables(&["-p", "ftpct-e2e", "--test", "kernel_matrix"])?;
        let [e2e] = <[PathBuf; 1]>::try_from(e2e)
            .map_err(|all| anyhow::anyhow!("want one kernel_matrix executable, got {all:?}"))?;
        if kernel_tests.is_empty() {
            bail!("cargo built no ftp-userspace test executables");
        }
        Ok(Self {
            ftpct: ftpct_bin(),
            kernel_tests,
            e2e,
        })
    }
}

/// Builds the integration test targets selected by `args` and returns their
/// executables (from cargo's JSON messages).
fn test_executables(args: &[&str]) -> Result<Vec<PathBuf>> {
    let json = cmd::stdout(
        Command::new("cargo")
            .current_dir(workspace_root())
            .args(["test", "--release", "--no-run", "--message-format=json"])
            .args(args),
    )?;
    let mut found = Vec::new();
    for line in json.lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let is_test = msg["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "test"));
        if msg["reason"] == "compiler-artifact" && is_test {
            if let Some(exe) = msg["executable"].as_str() {
                found.push(PathBuf::from(exe));
            }
        }
    }
    Ok(found)
}

/// The script one guest runs: every group in turn, each between markers
/// that [`parse`] reads back (`::ftpct end NAME RC MILLISECONDS`).
/// The script the guest runs. On a kernel ftpct is expected to refuse, the
/// test suites are not run once `attach` refused (they would only fail to
/// load the programs, at minutes of TCG each).
fn guest_script(built: &Built, expect_refusal: bool) -> String {
    let root = workspace_root();
    let q = |p: &Path| shell_quote(&p.display().to_string());
    let kernel_tests: Vec<String> = built.kernel_tests.iter().map(|p| q(p)).collect();
    let mut s = String::new();
    let _ = write!(
        s,
        r#"export FTPCT={ftpct}
echo "::ftpct uname $(uname -r)"
group() {{
  echo "::ftpct begin $1"
  local t0=$(date +%s%N)
  timeout -k 5 "$2" bash -c "$1" 2>&1
  local rc=$?
  export "RC_$1=$rc"
  echo "::ftpct end $1 $rc $(( ($(date +%s%N) - t0) / 1000000 ))"
}}
refused() {{
  [ -n "$EXPECT_REFUSAL" ] && [ "${{RC_verifier:-0}}" != 0 ] || return 1
  echo "not run: ftpct refused this kernel (see the verifier group)"
}}
check() {{
  ip link add ftpvm2 type veth peer name ftpvm3
  ip link set ftpvm2 up
  "$FTPCT" check ftpvm2
  local rc=$?
  ip link del ftpvm2
  return $rc
}}
verifier() {{
  set -e
  ip link add ftpvm0 type veth peer name ftpvm1
  ip link set ftpvm0 up
  ip link set ftpvm1 up
  "$FTPCT" attach ftpvm0
  "$FTPCT" status
  "$FTPCT" detach ftpvm0
  left=$(find /sys/fs/bpf -mindepth 1 ! -type d)
  [ -z "$left" ] || {{ echo "pinned after detach: $left"; exit 1; }}
  if ip -d link show ftpvm0 | grep -q prog/xdp; then echo "XDP attached after detach"; exit 1; fi
  if tc qdisc show dev ftpvm0 | grep -q clsact; then echo "clsact qdisc left after detach"; exit 1; fi
  # Programs are freed asynchronously once nothing holds them.
  for i in $(seq 50); do
    objects=$(bpftool prog show; bpftool link show)
    [ -z "$objects" ] && break
    sleep 0.2
  done
  [ -z "$objects" ] || {{ echo "kernel objects after detach: $objects"; exit 1; }}
  ip link del ftpvm0
}}
datapath() {{
  refused && return 1
  cd {userspace}
  local rc=0
  for t in {kernel_tests}; do
    echo "== $t"
    "$t" --test-threads=2 || rc=1
  done
  return $rc
}}
e2e() {{
  refused && return 1
  cd {tests}
  FTPCT_BIN="$FTPCT" FTPCT_TEST_TIMEOUT_SECS=120 {e2e} --test-threads=2
}}
export -f refused check verifier datapath e2e
export EXPECT_REFUSAL={expect_refusal}
"#,
        ftpct = q(&built.ftpct),
        userspace = q(&root.join("ftp-userspace")),
        tests = q(&root.join("tests")),
        kernel_tests = kernel_tests.join(" "),
        e2e = q(&built.e2e),
        expect_refusal = if expect_refusal { "1" } else { "" },
    );
    for group in &GROUPS {
        let _ = writeln!(s, "group {} {}", group.name, group.limit.as_secs());
    }
    s
}

/// `text` in single quotes for sh.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// How one group ended on one kernel.
#[derive(Debug)]
enum Outcome {
    Passed,
    /// Why (the group's exit code, or why it never ended).
    Failed(String),
    /// The refusal line ftpct gave.
    Refused(String),
    /// The feature under test does not exist yet (`ftpct check`).
    NotAvailable,
}

impl Outcome {
    fn word(&self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed(_) => "FAILED",
            Outcome::Refused(_) => "refused",
            Outcome::NotAvailable => "n/a",
        }
    }
}

/// One kernel's line of the table.
struct Row {
    kernel: &'static str,
    /// `uname -r` in the guest (the package's release if it never said).
    release: String,
    /// From `ftpct check`'s `path:` line.
    path: Option<String>,
    outcomes: Vec<(&'static str, Outcome)>,
    /// Each group's time in the guest, in seconds.
    group_secs: Vec<(&'static str, f64)>,
    /// The whole run, boot included.
    secs: u64,
    /// Group outputs by name, and the console log, for failure reports.
    outputs: Vec<(&'static str, String)>,
    console: Option<PathBuf>,
}

fn run_kernel(kernel: &Kernel, fetched: &Fetched, script: &str) -> Row {
    let timeout = GROUPS.iter().map(|g| g.limit).sum::<Duration>() + BOOT_ALLOWANCE;
    let started = Instant::now();
    let result = vm::run(fetched, script, timeout);
    let secs = started.elapsed().as_secs();
    let mut row = Row {
        kernel: kernel.name,
        release: fetched.release.clone(),
        path: None,
        outcomes: Vec::new(),
        group_secs: Vec::new(),
        secs,
        outputs: Vec::new(),
        console: None,
    };
    let run = match result {
        Ok(run) => run,
        Err(e) => {
            for group in &GROUPS {
                row.outcomes
                    .push((group.name, Outcome::Failed(format!("{e:#}"))));
            }
            return row;
        }
    };
    let log = workspace_root().join(format!("target/vm/{}-output.log", fetched.release));
    if let Err(e) = fs::write(&log, &run.output) {
        eprintln!("xtask: writing {}: {e}", log.display());
    }
    row.console = Some(run.console);
    let parsed = parse(&run.output);
    if let Some(uname) = parsed.uname {
        row.release = uname;
    }
    for group in &GROUPS {
        let Some(ran) = parsed.groups.iter().find(|g| g.name == group.name) else {
            row.outcomes.push((
                group.name,
                Outcome::Failed(format!(
                    "never ran (script exit code {}); output in {}",
                    run.code,
                    log.display()
                )),
            ));
            continue;
        };
        if group.name == "check" {
            row.path = ran
                .output
                .lines()
                .find_map(|l| l.trim().strip_prefix("path:"))
                .map(|p| p.trim().to_string());
        }
        row.group_secs
            .push((group.name, ran.millis as f64 / 1000.0));
        let judged = outcome(kernel, group, ran, &row.outcomes);
        row.outcomes.push((group.name, judged));
        row.outputs.push((group.name, ran.output.clone()));
    }
    row
}

/// Judges one group's run on `kernel`; `earlier` are the outcomes of the
/// groups before it.
fn outcome(kernel: &Kernel, group: &Group, ran: &GroupRun, earlier: &[(&str, Outcome)]) -> Outcome {
    match ran.code {
        Some(0) => return Outcome::Passed,
        // clap's usage error: this ftpct has no `check` yet.
        Some(2) if group.name == "check" && ran.output.contains("unrecognized subcommand") => {
            return Outcome::NotAvailable;
        }
        _ => {}
    }
    if let Some(needle) = kernel.refusal {
        if let Some(line) = refusal_line(&ran.output, needle) {
            return Outcome::Refused(line);
        }
        // The test suites cannot load the programs where ftpct refused to.
        let refused = earlier.iter().rev().find_map(|(_, o)| match o {
            Outcome::Refused(line) => Some(line.clone()),
            _ => None,
        });
        if let (Some(line), "datapath" | "e2e") = (refused, group.name) {
            return Outcome::Refused(line);
        }
    }
    match ran.code {
        Some(124 | 137) => Outcome::Failed(format!("timed out after {}s", group.limit.as_secs())),
        Some(code) => Outcome::Failed(format!("exit code {code}")),
        None => Outcome::Failed("did not finish".to_string()),
    }
}

/// ftpct's clear refusal in `output`: one `ftpct: ` line naming `needle`
/// that ends the output (ftpct stopped there, with nothing such as a
/// verifier log after it).
fn refusal_line(output: &str, needle: &str) -> Option<String> {
    let last = output.lines().rev().find(|l| !l.trim().is_empty())?.trim();
    (last.starts_with("ftpct: ") && last.contains(needle)).then(|| last.to_string())
}

/// One group as the guest reported it.
struct GroupRun {
    name: String,
    /// `None` if the end marker is missing.
    code: Option<i32>,
    millis: u64,
    output: String,
}

/// What the guest script printed, split by group.
struct Parsed {
    uname: Option<String>,
    groups: Vec<GroupRun>,
}

fn parse(output: &str) -> Parsed {
    let mut parsed = Parsed {
        uname: None,
        groups: Vec::new(),
    };
    for line in output.lines() {
        let Some(marker) = line.strip_prefix("::ftpct ") else {
            if let Some(group) = parsed.groups.last_mut().filter(|g| g.code.is_none()) {
                group.output.push_str(line);
                group.output.push('\n');
            }
            continue;
        };
        let words: Vec<&str> = marker.split_whitespace().collect();
        match words.as_slice() {
            ["uname", release] => parsed.uname = Some(release.to_string()),
            ["begin", name] => parsed.groups.push(GroupRun {
                name: name.to_string(),
                code: None,
                millis: 0,
                output: String::new(),
            }),
            ["end", name, code, millis] => {
                if let Some(group) = parsed.groups.iter_mut().find(|g| g.name == *name) {
                    group.code = code.parse().ok();
                    group.millis = millis.parse().unwrap_or(0);
                }
            }
            _ => {}
        }
    }
    parsed
}

/// Lines of a failed group's output shown in the report.
const FAILURE_TAIL: usize = 40;

impl Row {
    /// Prints the end of each failed group's output.
    fn report_failures(&self) {
        for (name, outcome) in &self.outcomes {
            let Outcome::Failed(why) = outcome else {
                continue;
            };
            eprintln!("\n=== {} / {name}: failed: {why}", self.kernel);
            if let Some((_, output)) = self.outputs.iter().find(|(n, _)| n == name) {
                let lines: Vec<&str> = output.lines().collect();
                let start = lines.len().saturating_sub(FAILURE_TAIL);
                eprintln!("{}", lines[start..].join("\n"));
            }
            if let Some(console) = &self.console {
                eprintln!("(console log: {})", console.display());
            }
        }
    }
}

/// The closing table: one line per kernel, then times and refusals.
fn table(rows: &[Row]) -> String {
    let mut header = vec!["kernel".to_string(), "path taken".to_string()];
    header.extend(GROUPS.iter().map(|g| g.name.to_string()));
    header.push("time".to_string());
    let mut lines = vec![header];
    for row in rows {
        let mut line = vec![
            row.release.clone(),
            row.path.clone().unwrap_or_else(|| "?".to_string()),
        ];
        line.extend(row.outcomes.iter().map(|(_, o)| o.word().to_string()));
        line.push(format!("{}s", row.secs));
        lines.push(line);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::from("\nkernel matrix\n");
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
    }
    for row in rows {
        let times: Vec<String> = row
            .group_secs
            .iter()
            .map(|(g, s)| format!("{g} {s:.0}s"))
            .collect();
        let in_groups: f64 = row.group_secs.iter().map(|(_, s)| s).sum();
        let _ = writeln!(
            out,
            "  {}: {}; boot and the rest {:.0}s",
            row.release,
            times.join(", "),
            row.secs as f64 - in_groups
        );
        for (group, outcome) in &row.outcomes {
            if let Outcome::Refused(line) = outcome {
                let _ = writeln!(out, "  {} {group} refused: {line}", row.release);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{parse, refusal_line};

    #[test]
    fn a_refusal_is_one_ftpct_line_ending_the_output() {
        let clear = "kernel 5.10.0-46-amd64\nftpct: bpf_loop needs Linux 5.17 or later\n";
        assert_eq!(
            refusal_line(clear, "5.17").as_deref(),
            Some("ftpct: bpf_loop needs Linux 5.17 or later")
        );
        let dump = "ftpct: the kernel refused to load (bpf_loop: Linux 5.17+). Verifier said:\n\
                    combined stack size of 5 calls is 544. Too large\n";
        assert_eq!(refusal_line(dump, "5.17"), None);
    }

    #[test]
    fn groups_are_split_by_their_markers() {
        let out = "::ftpct uname 6.12.9\n::ftpct begin check\npath: xdp=native\n\
                   ::ftpct end check 0 1200\n::ftpct begin verifier\nboom\n";
        let parsed = parse(out);
        assert_eq!(parsed.uname.as_deref(), Some("6.12.9"));
        assert_eq!(parsed.groups.len(), 2);
        assert_eq!(parsed.groups[0].code, Some(0));
        assert_eq!(parsed.groups[0].millis, 1200);
        assert_eq!(parsed.groups[0].output, "path: xdp=native\n");
        assert_eq!(parsed.groups[1].code, None);
        assert_eq!(parsed.groups[1].output, "boom\n");
    }
}
