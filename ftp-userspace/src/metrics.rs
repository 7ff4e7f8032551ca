//! Prometheus metrics (issue #12, item 7): the text exposition format of
//! every guarded interface's counters, table fill and, when
//! `kernel.bpf_stats_enabled` is on, the programs' run time. The daemon
//! serves it on `--metrics ADDR:PORT`; names follow Prometheus' conventions
//! (`_total` for counters, base units), labels say interface, verdict and
//! reason, as Cilium's drop metrics do.

use std::{
    fmt::Write as _,
    os::fd::{AsFd as _, AsRawFd as _},
    path::Path,
};

use aya::programs::ProgramInfo;
use ftp_ebpf_common::counters::{Counter, INGRESS_VERDICTS};

use crate::{
    pins::{PROG_EGRESS, PROG_INGRESS},
    status::Sample,
};

/// The exposition of `statuses` (one per guarded interface).
pub fn render(statuses: &[Sample]) -> String {
    let mut out = String::new();
    let mut family =
        |name: &str, kind: &str, help: &str, rows: &mut dyn Iterator<Item = String>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for row in rows {
                let _ = writeln!(out, "{name}{row}");
            }
        };
    family(
        "ftpct_guarded",
        "gauge",
        "Whether the programs still run on the interface (1) or not (0).",
        &mut statuses
            .iter()
            .map(|s| format!("{{interface=\"{}\"}} {}", s.iface, u8::from(s.guarded))),
    );
    family(
        "ftpct_ingress_packets_total",
        "counter",
        "Inbound packets by the ingress program's verdict and its reason.",
        &mut each_counter(statuses, |name| {
            let c = INGRESS_VERDICTS.iter().find(|c| c.name() == name)?;
            Some(format!("verdict=\"{}\",reason=\"{name}\"", verdict(*c)))
        }),
    );
    family(
        "ftpct_announcements_refused_total",
        "counter",
        "PORT, EPRT, 227 and 229 announcements refused, by reason.",
        &mut each_counter(statuses, |name| {
            Some(format!("reason=\"{}\"", name.strip_prefix("refused_")?))
        }),
    );
    family(
        "ftpct_events_total",
        "counter",
        "Every other counter of the programs, by name (see `ftpct status`).",
        &mut each_counter(statuses, |name| {
            let other = !INGRESS_VERDICTS.iter().any(|c| c.name() == name)
                && !name.starts_with("refused_")
                && name != Counter::IngressPackets.name();
            other.then(|| format!("event=\"{name}\""))
        }),
    );
    let tables = |s: &Sample| {
        let (c, f) = (&s.capacity, &s.fill);
        [
            ("expectations", f.expectations, c.expectations),
            ("admitted_flows", f.admitted_flows, c.admitted_flows),
            ("host_flows", f.flows - f.admitted_flows, c.host_flows),
            (
                "control_connections",
                f.control_connections,
                c.control_connections,
            ),
        ]
    };
    family(
        "ftpct_table_entries",
        "gauge",
        "Live entries of each table (expired ones excluded).",
        &mut statuses.iter().flat_map(|s| {
            tables(s)
                .map(|(table, n, _)| format!("{{interface=\"{}\",table=\"{table}\"}} {n}", s.iface))
        }),
    );
    family(
        "ftpct_table_capacity",
        "gauge",
        "Entries each table holds at most.",
        &mut statuses.iter().flat_map(|s| {
            tables(s).map(|(table, _, max)| {
                format!("{{interface=\"{}\",table=\"{table}\"}} {max}", s.iface)
            })
        }),
    );
    let runs: Vec<(&str, &str, RunStats)> = statuses
        .iter()
        .flat_map(|s| {
            [("ingress", PROG_INGRESS), ("egress", PROG_EGRESS)]
                .into_iter()
                .filter_map(|(program, pin)| {
                    Some((s.iface.as_str(), program, run_stats(&s.pins.join(pin))?))
                })
        })
        .collect();
    if !runs.is_empty() {
        family(
            "ftpct_program_run_seconds_total",
            "counter",
            "Time the programs ran while kernel.bpf_stats_enabled was on.",
            &mut runs.iter().map(|(iface, program, r)| {
                format!(
                    "{{interface=\"{iface}\",program=\"{program}\"}} {:.9}",
                    r.run_time_ns as f64 / 1e9
                )
            }),
        );
        family(
            "ftpct_program_runs_total",
            "counter",
            "Runs of the programs while kernel.bpf_stats_enabled was on.",
            &mut runs.iter().map(|(iface, program, r)| {
                format!(
                    "{{interface=\"{iface}\",program=\"{program}\"}} {}",
                    r.run_count
                )
            }),
        );
    }
    out
}

/// `pass` or `drop` for an ingress verdict counter.
fn verdict(c: Counter) -> &'static str {
    match c {
        Counter::PassedOther
        | Counter::PassedUnparsed
        | Counter::PassedControl
        | Counter::FlowPackets
        | Counter::SynAdmitted
        | Counter::SynAdmittedFtpsRange => "pass",
        _ => "drop",
    }
}

/// One sample per counter of every status that `labels` gives labels for
/// (the counters come from the map's own list, so none is made up).
fn each_counter<'a>(
    statuses: &'a [Sample],
    labels: impl Fn(&str) -> Option<String> + 'a,
) -> impl Iterator<Item = String> + 'a {
    let labels = std::rc::Rc::new(labels);
    statuses.iter().flat_map(move |s| {
        let labels = labels.clone();
        s.counters.iter().filter_map(move |(name, value)| {
            Some(format!(
                "{{interface=\"{}\",{}}} {value}",
                s.iface,
                labels(name)?
            ))
        })
    })
}

/// What the kernel accounts for a program while `bpf_stats_enabled` is on.
struct RunStats {
    run_time_ns: u64,
    run_count: u64,
}

/// The run statistics of the program pinned at `pin`, from its fdinfo;
/// `None` when the kernel does not keep them (stats were never on).
fn run_stats(pin: &Path) -> Option<RunStats> {
    let fd = ProgramInfo::from_pin(pin).ok()?.fd().ok()?;
    let info =
        std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd())).ok()?;
    let field = |key: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
    };
    let stats = RunStats {
        run_time_ns: field("run_time_ns:")?,
        run_count: field("run_cnt:")?,
    };
    (stats.run_count > 0 || stats_enabled()).then_some(stats)
}

fn stats_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|v| v.trim() == "1")
}
