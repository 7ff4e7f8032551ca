//! `ftpct-bench`: the benchmark suite, run as root by `cargo xtask bench`.
//!
//! Phases, each bounded and each cleaning up after itself:
//!
//! 1. **kernel** — cost per packet class with `BPF_PROG_TEST_RUN`
//!    ([`kernel::run`]), with the two reference programs in the same rounds;
//! 2. **scale** — the SYN and flow classes with 1k / 100k / 1M live entries
//!    ([`kernel::scale`]);
//! 3. **memory** — kernel accounting of the maps ([`kernel::memory`]);
//! 4. **flood** — a SYN flood in the lab, receiver CPU per packet for no
//!    filter, nftables + ct helper, the XDP floor and ftpct ([`flood::run`]);
//!    **xdpflood** — the same flooded with XDP frames, as a NIC driver
//!    delivers them ([`nicflood`]);
//! 5. **transfer** — a 100 MB download with and without ftpct, during the
//!    trafgen flood, and with the floor against with ftpct during the flood
//!    of XDP frames ([`transfer::run`]);
//! 6. **ftps** — what FTPS inspection adds to TLS calls and to a
//!    control-heavy FTPS session ([`ftps::run`]);
//! 7. **control** — `ftpct status`, `flows` and `expectations` against
//!    tables holding a million flows ([`control::run`]).
//!
//! Then it prints the tables and writes `BENCHMARKS.md` and
//! `benchmarks.png` (into `$FTPCT_BENCH_OUT`, default the workspace root).
//!
//! Environment: `FTPCT_BIN` (the ftpct binary), `FTPCT_BENCH_PHASES`
//! (comma-separated subset of the phases above), `FTPCT_BENCH_QUICK=1`
//! (few rounds, small tables: a smoke test of the harness, not a
//! measurement).

mod control;
mod flood;
mod frames;
mod ftps;
mod kernel;
mod nicflood;
mod plot;
mod report;
mod stats;
mod sys;
mod transfer;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ftpct_e2e::ftpct_bin;
use ftpct_e2e::process::run_with_timeout;

use crate::report::Results;
use crate::stats::Summary;

/// Rounds, repeats and sizes of every phase.
struct Plan {
    kernel: kernel::Params,
    scale_levels: Vec<u32>,
    scale: kernel::Params,
    flood: flood::Params,
    xdp_flood: flood::Params,
    transfer: transfer::Params,
    ftps: ftps::Params,
    control: control::Params,
}

impl Plan {
    fn full() -> Self {
        Self {
            kernel: kernel::Params {
                rounds: 11,
                repeat: 1_000_000,
                singles: 1_000,
                profile: true,
            },
            scale_levels: vec![1_000, 100_000, 1_000_000],
            scale: kernel::Params {
                rounds: 7,
                repeat: 1_000_000,
                singles: 600,
                profile: false,
            },
            flood: flood::Params {
                rounds: 7,
                seconds: 3.0,
                profile: true,
            },
            xdp_flood: flood::Params {
                rounds: 7,
                seconds: 1.5,
                profile: true,
            },
            transfer: transfer::Params {
                cycles: 40,
                flood_cycles: 16,
                xdp_flood_cycles: 24,
                cli_rounds: 3,
            },
            ftps: ftps::Params {
                rounds: 6,
                calls: 20_000,
                lists: 1_000,
            },
            control: control::Params {
                rounds: 7,
                flows: 1_000_000,
                expectations: 100_000,
            },
        }
    }

    fn quick() -> Self {
        Self {
            kernel: kernel::Params {
                rounds: 3,
                repeat: 100_000,
                singles: 100,
                profile: false,
            },
            scale_levels: vec![1_000, 10_000, 100_000],
            scale: kernel::Params {
                rounds: 2,
                repeat: 100_000,
                singles: 100,
                profile: false,
            },
            flood: flood::Params {
                rounds: 1,
                seconds: 1.5,
                profile: false,
            },
            xdp_flood: flood::Params {
                rounds: 1,
                seconds: 1.5,
                profile: false,
            },
            transfer: transfer::Params {
                cycles: 2,
                flood_cycles: 2,
                xdp_flood_cycles: 2,
                cli_rounds: 1,
            },
            ftps: ftps::Params {
                rounds: 2,
                calls: 500,
                lists: 10,
            },
            control: control::Params {
                rounds: 2,
                flows: 20_000,
                expectations: 20_000,
            },
        }
    }
}

fn main() -> ExitCode {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("ftpct-bench needs root (BPF, network namespaces); run `cargo xtask bench`");
        return ExitCode::from(2);
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ftpct-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the phases; Ok(false) if one of them failed (the report still gets
/// written with what was measured).
fn run() -> Result<bool> {
    let started = Instant::now();
    let quick = std::env::var("FTPCT_BENCH_QUICK").is_ok_and(|v| v == "1");
    let plan = if quick { Plan::quick() } else { Plan::full() };
    let phases: Vec<String> = std::env::var("FTPCT_BENCH_PHASES")
        .unwrap_or_else(|_| "kernel,scale,memory,flood,xdpflood,transfer,ftps,control".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let wanted = |p: &str| phases.iter().any(|x| x == p);
    let out_dir = std::env::var_os("FTPCT_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(ftpct_e2e::ftpct::workspace_root);
    let bin = ftpct_bin();
    anyhow::ensure!(
        bin.exists()
            || !["flood", "xdpflood", "transfer", "ftps", "control"]
                .iter()
                .any(|p| wanted(p)),
        "{} not found; build it first (cargo xtask build) or set FTPCT_BIN",
        bin.display()
    );

    let mut res = Results {
        machine: sys::Machine::probe(),
        date: utc_now(),
        total_seconds: 0.0,
        kernel: None,
        default_memory: None,
        scale: None,
        memory: None,
        flood: None,
        xdp_flood: None,
        transfer: None,
        ftps: None,
        control: None,
        errors: Vec::new(),
        plot_file: None,
        source: source_description(),
    };
    println!(
        "ftpct-bench{}: {} × {}, {}",
        if quick { " (quick)" } else { "" },
        res.machine.cpus,
        res.machine.cpu_model,
        res.machine.uname
    );

    if wanted("kernel") {
        if let Some(k) = phase(&mut res.errors, "kernel", || kernel::run(plan.kernel)) {
            res.default_memory = Some(k.default_memory.clone());
            res.kernel = Some(k);
        }
    }
    if wanted("scale") {
        res.scale = phase(&mut res.errors, "scale", || {
            kernel::scale(&plan.scale_levels, plan.scale)
        });
    }
    if wanted("memory") {
        res.memory = phase(&mut res.errors, "memory", kernel::memory);
    }
    if wanted("flood") {
        res.flood = phase(&mut res.errors, "flood", || {
            flood::run(plan.flood, flood::Source::Trafgen)
        });
    }
    if wanted("xdpflood") {
        res.xdp_flood = phase(&mut res.errors, "xdpflood", || {
            flood::run(plan.xdp_flood, flood::Source::XdpFrames)
        });
    }
    if wanted("transfer") {
        res.transfer = phase(&mut res.errors, "transfer", || transfer::run(plan.transfer));
    }
    if wanted("ftps") {
        res.ftps = phase(&mut res.errors, "ftps", || ftps::run(plan.ftps));
    }
    if wanted("control") {
        res.control = phase(&mut res.errors, "control", || control::run(plan.control));
    }
    res.machine.load_after = sys::load_average();
    res.total_seconds = started.elapsed().as_secs_f64();

    std::fs::create_dir_all(&out_dir)?;
    let png = out_dir.join("benchmarks.png");
    match plot::draw(&figure(&res), &png) {
        Ok(()) => res.plot_file = Some("benchmarks.png".into()),
        Err(e) => res.errors.push(("plot".into(), format!("{e:#}"))),
    }
    let md = out_dir.join("BENCHMARKS.md");
    std::fs::write(&md, res.markdown()).with_context(|| format!("writing {}", md.display()))?;
    println!("{}", res.console());
    println!(
        "Wrote {} and {} in {:.0} s.",
        md.display(),
        png.display(),
        res.total_seconds
    );
    Ok(res.errors.is_empty())
}

/// Runs one phase, timing it and recording its failure.
fn phase<T>(
    errors: &mut Vec<(String, String)>,
    name: &str,
    f: impl FnOnce() -> Result<T>,
) -> Option<T> {
    eprintln!("ftpct-bench: phase {name}");
    let start = Instant::now();
    let result = f();
    eprintln!(
        "ftpct-bench: phase {name} took {:.1} s",
        start.elapsed().as_secs_f64()
    );
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("ftpct-bench: phase {name} FAILED: {e:#}");
            errors.push((name.to_string(), format!("{e:#}")));
            None
        }
    }
}

/// `commit <hash>`, plus the program and benchmark sources changed since,
/// if any.
fn source_description() -> String {
    let root = ftpct_e2e::ftpct::workspace_root();
    let git = |args: &[&str]| {
        let mut cmd = std::process::Command::new("git");
        cmd.arg("-C").arg(&root).args(args);
        run_with_timeout(cmd, Duration::from_secs(10))
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(commit) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown (not a git checkout)".into();
    };
    let changed = git(&[
        "status",
        "--porcelain",
        "--",
        "ftp-ebpf",
        "ftp-ebpf-common",
        "ftp-userspace",
        "tests/bench",
    ])
    .unwrap_or_default();
    // `XY path` lines (the first line's leading space was trimmed away).
    let files: Vec<&str> = changed
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    if files.is_empty() {
        format!("commit `{commit}`")
    } else {
        format!(
            "commit `{commit}` with uncommitted changes to {}",
            files
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

fn utc_now() -> String {
    let mut cmd = std::process::Command::new("date");
    cmd.args(["-u", "+%Y-%m-%d %H:%M UTC"]);
    run_with_timeout(cmd, Duration::from_secs(5))
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The data of the figure.
fn figure(res: &Results) -> plot::Figure {
    use plot::{BLUE, Bar, GREEN, GREY, Line, ORANGE, RED};
    let mut kernel_steady = Vec::new();
    let mut kernel_single = Vec::new();
    if let Some(k) = &res.kernel {
        for c in &k.classes {
            let color = match c.id {
                "ref_pass" | "ref_floor" | "ref_pass_1" | "ref_floor_1" => GREY,
                "egress_plain"
                | "egress_plain_1"
                | "reply_227"
                | "reply_227_rewritten"
                | "retx_227"
                | "retx_227_rewritten"
                | "retx_port"
                | "retx_port_rewritten"
                | "ctrl_out"
                | "ctrl_out_moved" => ORANGE,
                "syn_admit" | "port_cmd" => GREEN,
                _ => BLUE,
            };
            let bar = Bar {
                label: short_label(c.id).into(),
                value: c.summary(),
                color,
            };
            match c.method {
                kernel::Method::Steady => kernel_steady.push(bar),
                kernel::Method::Single => kernel_single.push(bar),
            }
        }
    }
    let (scale_levels, scale) = match &res.scale {
        Some(s) => (
            s.levels
                .iter()
                .map(|l| report::level_name(*l))
                .collect::<Vec<_>>(),
            s.classes
                .iter()
                .zip([BLUE, ORANGE, GREEN, RED, GREY])
                .map(|((id, _, per), color)| Line {
                    label: short_label(id).into(),
                    points: per.iter().map(|r| Summary::of(r)).collect(),
                    color,
                })
                .collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let mib = |bytes: u64| {
        let v = bytes as f64 / (1024.0 * 1024.0);
        Summary {
            n: 1,
            median: v,
            p25: v,
            p75: v,
            min: v,
            max: v,
        }
    };
    let mut memory = Vec::new();
    if let Some(maps) = &res.default_memory {
        for m in maps.iter().filter(|m| m.memlock >= 1 << 20) {
            memory.push(Bar {
                label: format!("{} ({} entries)", m.name, m.max_entries),
                value: mib(m.memlock),
                color: GREY,
            });
        }
        memory.push(Bar {
            label: "all maps, default sizes".into(),
            value: mib(maps.iter().map(|m| m.memlock).sum()),
            color: BLUE,
        });
    }
    if let Some(m) = &res.memory {
        memory.push(Bar {
            label: format!("{} sized 1,000,000", m.million_flows.name),
            value: mib(m.million_flows.memlock),
            color: GREEN,
        });
    }
    let flood = [&res.flood, &res.xdp_flood]
        .into_iter()
        .flatten()
        .flat_map(|f| {
            flood::Mode::ALL.iter().map(move |m| Bar {
                label: format!("{}: {}", f.source.short(), m.short()),
                value: f.summary(*m, |r| r.ns_per_packet),
                color: match m {
                    flood::Mode::Ftpct => BLUE,
                    flood::Mode::Floor => GREY,
                    flood::Mode::Nft => ORANGE,
                    flood::Mode::None => RED,
                },
            })
        })
        .collect();
    let transfer = res
        .transfer
        .as_ref()
        .map(|t| {
            transfer::Mode::ALL
                .iter()
                .map(|m| Bar {
                    label: m.short().into(),
                    value: t.summary(*m),
                    color: match m {
                        transfer::Mode::Ftpct
                        | transfer::Mode::FtpctFlood
                        | transfer::Mode::FtpctXdpFlood
                        | transfer::Mode::Cli => BLUE,
                        transfer::Mode::PassRef => GREEN,
                        _ => GREY,
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    plot::Figure {
        kernel_steady,
        kernel_single,
        scale_levels,
        scale,
        memory,
        flood,
        transfer,
    }
}

/// Short names for the figure.
fn short_label(id: &str) -> &'static str {
    match id {
        "ref_pass" => "ref: XDP_PASS",
        "ref_floor" => "ref: SYN floor (drop)",
        "non_ip" => "non-IP (ARP)",
        "udp" => "UDP",
        "tcp_open" => "TCP, non-guarded port",
        "syn_drop" => "SYN, no expectation (drop)",
        "flow" => "tracked flow packet",
        "egress_plain" => "egress: non-control",
        "ref_pass_1" => "ref: XDP_PASS",
        "ref_floor_1" => "ref: SYN floor (drop)",
        "syn_drop_1" => "SYN, no expectation (drop)",
        "egress_plain_1" => "egress: non-control",
        "syn_admit" => "SYN admitted (consumes expectation)",
        "reply_227" => "227 reply (egress, creates it)",
        "reply_227_rewritten" => "227 reply, rewritten",
        "retx_227" => "227 retransmitted",
        "retx_227_rewritten" => "227 retransmitted, rewritten",
        "retx_port" => "PORT retransmitted",
        "retx_port_rewritten" => "PORT retransmitted, resized",
        "ctrl_out" => "control out (local client)",
        "ctrl_out_moved" => "control out, seq moved",
        "ctrl_ack" => "control ACK in",
        "ctrl_ack_moved" => "control ACK in, moved back",
        "port_cmd" => "PORT command (ingress)",
        "syn_drop_random" => "SYN, random key each run (drop)",
        "flow_random" => "random tracked flow each run",
        _ => "?",
    }
}
