//! BENCHMARKS.md and the console summary.

use std::fmt::Write as _;

use crate::control::{self, ControlResults};
use crate::flood::{self, FloodResults, Mode as FloodMode};
use crate::ftps::FtpsResults;
use crate::kernel::{KernelResults, MapMemory, MemoryResults, Method, ScaleResults};
use crate::stats::{self, Summary};
use crate::sys::Machine;
use crate::transfer::{self, Mode as TransferMode, TransferResults};

/// Everything one run produced. A phase that failed has `None` and an entry
/// in `errors`.
pub struct Results {
    pub machine: Machine,
    pub date: String,
    pub total_seconds: f64,
    pub kernel: Option<KernelResults>,
    pub default_memory: Option<Vec<MapMemory>>,
    pub scale: Option<ScaleResults>,
    pub memory: Option<MemoryResults>,
    pub flood: Option<FloodResults>,
    /// The same flood of XDP frames (`xdpflood` phase).
    pub xdp_flood: Option<FloodResults>,
    pub transfer: Option<TransferResults>,
    pub ftps: Option<FtpsResults>,
    pub control: Option<ControlResults>,
    pub errors: Vec<(String, String)>,
    pub plot_file: Option<String>,
    /// The commit measured, and uncommitted changes to the programs if any.
    pub source: String,
}

/// One target: what it asks, what was measured, whether it holds.
pub struct Target {
    pub area: &'static str,
    pub wanted: String,
    pub measured: String,
    pub met: Option<bool>,
    /// Some rounds on each side of the threshold.
    pub borderline: bool,
}

const MIB: f64 = 1024.0 * 1024.0;

fn fmt_ratio(s: &Summary) -> String {
    if s.is_empty() {
        return "n/a".into();
    }
    format!("{:.2}× (rounds {:.2}–{:.2})", s.median, s.min, s.max)
}

fn fmt_pct(s: &Summary) -> String {
    if s.is_empty() {
        return "n/a".into();
    }
    format!(
        "{:.1} % (rounds {:.1}–{:.1} %)",
        s.median * 100.0,
        s.min * 100.0,
        s.max * 100.0
    )
}

fn verdict(t: &Target) -> String {
    let v = match t.met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => return "not measured".into(),
    };
    if t.borderline {
        format!("{v} (rounds on both sides)")
    } else {
        v.into()
    }
}

/// A target "median of the per-round ratios ≤ limit".
fn ratio_target(
    area: &'static str,
    wanted: String,
    r: Option<Summary>,
    limit: f64,
    fmt: fn(&Summary) -> String,
) -> Target {
    let r = r.filter(|s| !s.is_empty());
    Target {
        area,
        wanted,
        measured: r.as_ref().map_or("n/a".into(), fmt),
        met: r.map(|s| s.median <= limit),
        borderline: r.is_some_and(|s| s.min <= limit && s.max > limit),
    }
}

pub fn level_name(n: u32) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

impl Results {
    /// Every target, evaluated on medians of per-round ratios.
    pub fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        let flood = self.flood.as_ref();
        t.push(ratio_target(
            "flood",
            "ftpct CPU per dropped SYN ≤ 1.5× the stateless XDP floor".into(),
            flood.map(|f| f.ratio(FloodMode::Ftpct, FloodMode::Floor)),
            1.5,
            fmt_ratio,
        ));
        t.push(ratio_target(
            "flood",
            "ftpct CPU per dropped SYN ≤ 1/4 of nftables with the ct helper".into(),
            flood.map(|f| f.ratio(FloodMode::Ftpct, FloodMode::Nft)),
            0.25,
            fmt_ratio,
        ));
        let xdp = self.xdp_flood.as_ref();
        t.push(ratio_target(
            "flood, XDP frames",
            "ftpct CPU per dropped SYN ≤ 1.5× the stateless XDP floor".into(),
            xdp.map(|f| f.ratio(FloodMode::Ftpct, FloodMode::Floor)),
            1.5,
            fmt_ratio,
        ));
        t.push(ratio_target(
            "flood, XDP frames",
            "ftpct CPU per dropped SYN ≤ 1/4 of nftables with the ct helper".into(),
            xdp.map(|f| f.ratio(FloodMode::Ftpct, FloodMode::Nft)),
            0.25,
            fmt_ratio,
        ));
        let k = self.kernel.as_ref();
        t.push(ratio_target(
            "in-kernel",
            "SYN to a guarded port ≤ 1.5× the floor program (dropped SYN, steady)".into(),
            k.map(|k| k.ratio("syn_drop", "ref_floor")),
            1.5,
            fmt_ratio,
        ));
        t.push(ratio_target(
            "in-kernel",
            "packet of a tracked flow ≤ 2× the XDP_PASS program (steady)".into(),
            k.map(|k| k.ratio("flow", "ref_pass")),
            2.0,
            fmt_ratio,
        ));
        for (id, what) in [
            ("non_ip", "non-IP"),
            ("udp", "UDP"),
            ("tcp_open", "TCP to a non-guarded port"),
        ] {
            t.push(ratio_target(
                "in-kernel",
                format!("{what} ≤ 1.5× the XDP_PASS program"),
                k.map(|k| k.ratio(id, "ref_pass")),
                1.5,
                fmt_ratio,
            ));
        }
        if let Some(s) = &self.scale {
            let last = level_name(*s.levels.last().unwrap_or(&0));
            let first = level_name(*s.levels.first().unwrap_or(&0));
            for (id, label, _) in &s.classes {
                t.push(ratio_target(
                    "scale",
                    format!(
                        "{} at {last} entries ≤ 1.5× at {first}",
                        label.split(" — ").next().unwrap_or(label)
                    ),
                    Some(s.growth(id)),
                    1.5,
                    fmt_ratio,
                ));
            }
        }
        let r = self
            .transfer
            .as_ref()
            .map(|x| x.ratio(TransferMode::Ftpct, TransferMode::Plain))
            .filter(|s| !s.is_empty());
        t.push(Target {
            area: "transfer",
            wanted: "throughput with ftpct ≥ 95 % of without".into(),
            measured: r.as_ref().map_or("n/a".into(), fmt_pct),
            met: r.map(|s| s.median >= 0.95),
            borderline: r.is_some_and(|s| s.min < 0.95 && s.max >= 0.95),
        });
        let r = self
            .transfer
            .as_ref()
            .map(|x| x.ratio(TransferMode::FtpctXdpFlood, TransferMode::FloorXdpFlood))
            .filter(|s| !s.is_empty());
        t.push(Target {
            area: "transfer",
            wanted: "throughput with ftpct during the flood of XDP frames ≥ 90 % of the same \
                     with the XDP floor"
                .into(),
            measured: r.as_ref().map_or("n/a".into(), fmt_pct),
            met: r.map(|s| s.median >= 0.9),
            borderline: r.is_some_and(|s| s.min < 0.9 && s.max >= 0.9),
        });
        let m = self.memory.as_ref().map(|m| m.million_flows.memlock);
        t.push(Target {
            area: "memory",
            wanted: "1 million tracked flows in ≤ 128 MiB of map memory".into(),
            measured: m.map_or("n/a".into(), |b| {
                format!("{:.1} MiB (flow table sized 1,000,000)", b as f64 / MIB)
            }),
            met: m.map(|b| b as f64 <= 128.0 * MIB),
            borderline: false,
        });
        t.extend(self.control_targets());
        t
    }

    /// The console summary.
    pub fn console(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "\n{}", self.kernel_table());
        let _ = writeln!(s, "{}", self.scale_table());
        let _ = writeln!(s, "{}", self.memory_tables());
        for f in [&self.flood, &self.xdp_flood].into_iter().flatten() {
            let _ = writeln!(s, "Flood ({}):\n{}", f.source.short(), flood_table(f));
        }
        let _ = writeln!(s, "{}", self.transfer_table());
        let _ = writeln!(s, "{}", self.ftps_table());
        let _ = writeln!(s, "{}", self.control_table());
        let _ = writeln!(s, "{}", self.targets_table());
        for (phase, err) in &self.errors {
            let _ = writeln!(s, "PHASE FAILED: {phase}: {err}");
        }
        s
    }

    fn targets_table(&self) -> String {
        let mut s = String::from(
            "| Area | Target | Measured (median of per-round ratios) | Verdict |\n|---|---|---|---|\n",
        );
        for t in self.targets() {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                t.area,
                t.wanted,
                t.measured,
                verdict(&t)
            );
        }
        s
    }

    fn kernel_table(&self) -> String {
        let Some(k) = &self.kernel else {
            return "In-kernel phase: not run.\n".into();
        };
        let mut s = String::from(
            "| Packet class | Program | Method | ns per packet: median (p25–p75) | min–max | Ratio to reference |\n|---|---|---|---|---|---|\n",
        );
        let reference = |id: &str| -> Option<(&str, &str)> {
            Some(match id {
                "non_ip" | "udp" | "tcp_open" | "flow" => ("ref_pass", "XDP_PASS"),
                "syn_drop" => ("ref_floor", "floor"),
                "syn_drop_1" | "syn_admit" => ("ref_floor_1", "floor"),
                "port_cmd" | "flow_1" | "flow_miss_1" => ("ref_pass_1", "XDP_PASS"),
                "reply_227" => ("egress_plain_1", "egress non-control"),
                "reply_227_rewritten" => ("reply_227", "plain 227"),
                "retx_227_rewritten" => ("retx_227", "plain retransmission"),
                "retx_port_rewritten" => ("retx_port", "plain retransmission"),
                "ctrl_out_moved" => ("ctrl_out", "not moved"),
                "ctrl_ack_moved" => ("ctrl_ack", "not moved"),
                _ => return None,
            })
        };
        for c in &k.classes {
            let sum = c.summary();
            let ratio = reference(c.id)
                .map(|(r, name)| format!("{} {name}", fmt_ratio(&k.ratio(c.id, r))))
                .unwrap_or_default();
            let method = match c.method {
                Method::Steady => format!("repeat {}", k.params.repeat),
                Method::Single => format!("repeat 1, median of {}", k.params.singles),
            };
            let _ = writeln!(
                s,
                "| {} | `{}` | {} | {} | {} | {} |",
                c.label,
                c.program,
                method,
                sum.fmt_iqr(1),
                sum.fmt_range(1),
                ratio
            );
        }
        s
    }

    fn scale_table(&self) -> String {
        let Some(sc) = &self.scale else {
            return "Scale phase: not run.\n".into();
        };
        let mut s = String::from("| Packet class |");
        for l in &sc.levels {
            let _ = write!(s, " {} entries: ns median (min–max) |", level_name(*l));
        }
        s.push_str(" largest ÷ smallest |\n|---|");
        for _ in &sc.levels {
            s.push_str("---|");
        }
        s.push_str("---|\n");
        for (id, label, per_level) in &sc.classes {
            let _ = write!(s, "| {label} |");
            for rounds in per_level {
                let x = Summary::of(rounds);
                let _ = write!(s, " {:.1} ({}) |", x.median, x.fmt_range(1));
            }
            let _ = writeln!(s, " {} |", fmt_ratio(&sc.growth(id)));
        }
        s
    }

    fn memory_tables(&self) -> String {
        let mut s = String::new();
        if let Some(maps) = &self.default_memory {
            s.push_str("| Map (default size) | Type | Key + value bytes | Max entries | Kernel memory (memlock) | Bytes per entry |\n|---|---|---|---|---|---|\n");
            let mut total = 0;
            for m in maps {
                total += m.memlock;
                let _ = writeln!(
                    s,
                    "| `{}` | {} | {} + {} | {} | {:.2} MiB | {:.0} |",
                    m.name,
                    m.type_name(),
                    m.key_size,
                    m.value_size,
                    m.max_entries,
                    m.memlock as f64 / MIB,
                    m.per_entry()
                );
            }
            let _ = writeln!(
                s,
                "| **total** | | | | **{:.1} MiB** | |",
                total as f64 / MIB
            );
        }
        if let Some(m) = &self.memory {
            s.push_str("\n| Table sized for 1,000,000 entries | Type | Kernel memory (memlock) | Bytes per entry |\n|---|---|---|---|\n");
            for x in [&m.million_flows, &m.million_expectations] {
                let _ = writeln!(
                    s,
                    "| `{}` | {} | {:.1} MiB | {:.0} |",
                    x.name,
                    x.type_name(),
                    x.memlock as f64 / MIB,
                    x.per_entry()
                );
            }
        }
        s
    }

    fn transfer_table(&self) -> String {
        let Some(t) = &self.transfer else {
            return "Transfer phase: not run.\n".into();
        };
        let mut s = String::from(
            "| Download of 100 MB | Samples | Stalled | MB/s: median (p25–p75) | min–max | Ratio to the same cycle's reference: median (p25–p75), min–max |\n|---|---|---|---|---|---|\n",
        );
        for mode in TransferMode::ALL {
            let x = t.summary(mode);
            if x.is_empty() && t.stalled(mode) == 0 {
                continue;
            }
            let ratio = mode.reference().map_or(String::new(), |r| {
                let q = t.ratio(mode, r);
                format!(
                    "÷ {}: {:.1} % ({:.1}–{:.1} %), {:.1}–{:.1} %",
                    r.short(),
                    q.median * 100.0,
                    q.p25 * 100.0,
                    q.p75 * 100.0,
                    q.min * 100.0,
                    q.max * 100.0
                )
            });
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                mode.label(),
                x.n,
                t.stalled(mode),
                x.fmt_iqr(0),
                x.fmt_range(0),
                ratio
            );
        }
        s
    }

    /// The whole BENCHMARKS.md.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(s, "# ftpct benchmarks\n");
        let _ = writeln!(
            s,
            "Written by `cargo xtask bench` ({}; the whole run took {:.0} s). Every figure below comes \
             from that one run; ratios are computed round by round from measurements taken next to \
             each other (rounds interleave the variants: A, B, C, A, B, C, …) and then summarised by \
             their median and spread, because the machine is shared with other work and absolute \
             numbers drift between runs. Re-running gives different absolute numbers; the ratios \
             are what to compare.\n",
            self.date, self.total_seconds
        );
        let mut phases = Vec::new();
        if let Some(k) = &self.kernel {
            phases.push(format!("in-kernel {:.0} s", k.seconds));
        }
        if let Some(x) = &self.scale {
            phases.push(format!("scale {:.0} s", x.seconds));
        }
        if let Some(x) = &self.flood {
            phases.push(format!("flood {:.0} s", x.seconds));
        }
        if let Some(x) = &self.xdp_flood {
            phases.push(format!("XDP-frames flood {:.0} s", x.seconds));
        }
        if let Some(x) = &self.transfer {
            phases.push(format!("transfer {:.0} s", x.seconds));
        }
        if let Some(x) = &self.ftps {
            phases.push(format!("ftps {:.0} s", x.seconds));
        }
        if let Some(x) = &self.control {
            phases.push(format!("control {:.0} s", x.seconds));
        }
        if !phases.is_empty() {
            let _ = writeln!(s, "Phases: {}.\n", phases.join(", "));
        }
        if let Some(p) = &self.plot_file {
            let _ = writeln!(s, "![ftpct benchmarks]({p})\n");
        }
        let _ = writeln!(s, "## Targets\n\n{}", self.targets_table());
        let _ = writeln!(s, "{}", self.limits());
        for (phase, err) in &self.errors {
            let _ = writeln!(s, "**Phase `{phase}` failed:** {err}\n");
        }

        let _ = writeln!(s, "## Machine\n");
        let _ = writeln!(s, "- Source measured: {}", self.source);
        let _ = writeln!(s, "- CPU: {} × {} ({} MHz)", m.cpus, m.cpu_model, m.cpu_mhz);
        let _ = writeln!(s, "- Kernel: `{}`", m.uname);
        let _ = writeln!(s, "- Memory: {}", m.memory);
        let _ = writeln!(
            s,
            "- Load average (1, 5, 15 min) before the run: {}; after: {} — the machine is shared, \
             so other work competes for both CPUs during the measurements.",
            m.load_before, m.load_after
        );
        for (tool, version) in &m.tools {
            let _ = writeln!(s, "- {tool}: {version}");
        }
        s.push('\n');

        self.kernel_section(&mut s);
        self.scale_section(&mut s);
        self.memory_section(&mut s);
        self.flood_section(&mut s);
        self.transfer_section(&mut s);
        self.ftps_section(&mut s);
        self.control_section(&mut s);
        s
    }

    fn ftps_table(&self) -> String {
        let Some(f) = &self.ftps else {
            return String::new();
        };
        let (plain, probed) = (
            stats::median(&f.call_ns_plain),
            stats::median(&f.call_ns_probed),
        );
        let added = f.added_ns();
        let (s_plain, s_ftpct) = (
            stats::median(&f.session_plain),
            stats::median(&f.session_ftpct),
        );
        let mut s = String::from(
            "| FTPS inspection | without ftpct | with ftpct | ftpct adds (median, rounds) |\n\
             |---|---|---|---|\n",
        );
        let _ = writeln!(
            s,
            "| a TLS call on the host (`SSL_write_ex`/`SSL_read_ex`, no control connection) | \
             {plain:.0} ns | {probed:.0} ns | {:.0} ns (rounds {:.0}–{:.0}) |",
            added.median, added.min, added.max
        );
        if let Some(bpf) = f.bpf_ns_per_call {
            let _ = writeln!(
                s,
                "| of which ftpct's programs (entry and return, `kernel.bpf_stats_enabled`) | | | \
                 {bpf:.0} ns |"
            );
        }
        let _ = writeln!(
            s,
            "| {} × (`PASV` + `LIST`) on one FTPS session (vsftpd, ftplib) | {s_plain:.2} s | \
             {s_ftpct:.2} s | {} |",
            f.params.lists,
            fmt_ratio(&f.session_ratio())
        );
        s
    }

    fn ftps_section(&self, s: &mut String) {
        let _ = writeln!(s, "## 6. FTPS inspection\n");
        let Some(f) = &self.ftps else {
            s.push_str("Not run.\n\n");
            return;
        };
        let _ = writeln!(
            s,
            "ftpct reads FTPS plaintext through uprobes on the server's libssl (`SSL_read`, \
             `SSL_write` and their `_ex` forms at entry and return, `SSL_peek` and \
             `SSL_do_handshake`) and the `tcp:tcp_rcv_space_adjust` tracepoint. A uprobe sits \
             on the library file, so every TLS call of every process using it pays for the \
             probes, control connection or not. {rounds} rounds, each measuring without ftpct \
             and with `ftpct attach eth0` (inspection on; order alternating):\n\n\
             - **TLS call**: one Python thread holds a client and a server TLS object joined \
             by memory BIOs and sends {calls} round trips of 8 bytes (two `SSL_write_ex`, two \
             `SSL_read_ex` each, plus Python and OpenSSL's record work); a quarter of a round \
             trip is one call. No socket and no control connection: this is the price of the \
             probes alone (entry and return, their map updates), which any TLS user on the \
             host pays.\n\
             - **Session**: vsftpd requiring TLS for control and data; ftplib logs in once and \
             runs {lists} × (`PASV` + `LIST`), each listing over a new TLS data connection; \
             with ftpct every command and reply of the session is parsed through the probes \
             (it parsed {parsed} calls in its last round) and every data connection admitted \
             from its `227`.\n\n\
             What limits the TLS call: one more measurement with ftpct attached runs with \
             `kernel.bpf_stats_enabled`, which gives the run time of ftpct's programs; the \
             rest of what ftpct adds is the kernel's uprobe machinery (a breakpoint trap at \
             each call's entry and a return trampoline for the return probe), which costs far \
             more in this virtual machine than on bare metal.\n",
            rounds = f.params.rounds,
            calls = f.params.calls,
            lists = f.params.lists,
            parsed = f.parsed_calls,
        );
        let _ = writeln!(s, "{}", self.ftps_table());
    }

    fn kernel_section(&self, s: &mut String) {
        let _ = writeln!(s, "## 1. In-kernel cost per packet\n");
        if let Some(k) = &self.kernel {
            let _ = writeln!(
                s,
                "The compiled programs are loaded (verified, policy written: default ports, \
                 control port 21, guarded 1024–65535) but not attached, and run on crafted \
                 frames with `BPF_PROG_TEST_RUN`; the kernel times them. {} rounds; each round \
                 measures every class once, in turn.\n\n\
                 - **Steady** classes (`repeat` {}): the kernel's average over the repeats. Valid \
                 where the packet leaves the state as it found it: non-FTP traffic, a SYN without \
                 expectation (dropped), a packet of a tracked flow (it only refreshes the flow's \
                 timestamp). The frame and the table entries it touches are cache-hot.\n\
                 - **Single** classes (`repeat` 1, median of {} runs per round): one-shot paths. \
                 A SYN that matches an expectation consumes it and creates a flow, so a second \
                 repeat would measure a tracked-flow packet instead; a control segment seen twice \
                 is a retransmission the parser skips. So every run gets fresh state, prepared \
                 untimed: `PASV` on ingress, then the timed `227` reply on egress (which creates \
                 the expectation), then the timed SYN that consumes it (after which the flow is \
                 deleted again from user space); the timed `PORT` command is followed by the \
                 server's untimed `200`. Sequence numbers advance so no segment is a \
                 retransmission. A run with `repeat` 1 also times the harness itself (a clock \
                 read, entering and leaving the run loop), which the references measured the \
                 same way show: compare single classes with the single references, not with \
                 the steady ones.\n",
                k.params.rounds, k.params.repeat, k.params.singles
            );
            let _ = writeln!(s, "{}", self.kernel_table());
            let get = |id: &str| k.get(id).map(|c| c.summary().median).unwrap_or(0.0);
            let _ = writeln!(
                s,
                "Net of the harness (class minus `bench_xdp_pass` measured the same way): dropped \
                 SYN {:.1} ns vs floor {:.1} ns (steady); admitted SYN {:.1} ns, `227` reply \
                 {:.1} ns over the egress non-control segment, `PORT` command {:.1} ns \
                 (single).\n",
                get("syn_drop") - get("ref_pass"),
                get("ref_floor") - get("ref_pass"),
                get("syn_admit") - get("ref_pass_1"),
                get("reply_227") - get("egress_plain_1"),
                get("port_cmd") - get("ref_pass_1"),
            );
            let _ = writeln!(
                s,
                "A tracked flow's packet is answered by the per-CPU flow memo when the packet \
                 before it on that CPU, in the same jiffy, was of the same flow (a transfer's \
                 packets arrive in such runs); otherwise the flow table is looked up. Single \
                 runs of both, interleaved: {:.1} ns with the memo, {:.1} ns with the lookup \
                 ({:.1} ns more; `bench_xdp_pass` single: {:.1} ns).\n",
                get("flow_1"),
                get("flow_miss_1"),
                get("flow_miss_1") - get("flow_1"),
                get("ref_pass_1"),
            );
            let _ = writeln!(
                s,
                "`--nat-rewrite`: a `227` is replaced in its own length, so its whole cost is on \
                 the segments that carry it: a rewritten `227` costs {:.1} ns more than a plain \
                 one (single), a retransmission written again {:.1} ns more than one the parser \
                 only skips (steady). A `PORT` grows, so the rest of its connection moves: the \
                 retransmitted `PORT` resized again costs {:.1} ns more than a plain one; each \
                 later segment the host sends {:.1} ns more (its sequence number moved), each \
                 acknowledgment it receives {:.1} ns more (moved back) (steady, same \
                 connection without `--nat-rewrite` as the reference).\n",
                get("reply_227_rewritten") - get("reply_227"),
                get("retx_227_rewritten") - get("retx_227"),
                get("retx_port_rewritten") - get("retx_port"),
                get("ctrl_out_moved") - get("ctrl_out"),
                get("ctrl_ack_moved") - get("ctrl_ack"),
            );
            if !k.profiles.is_empty() {
                let _ = writeln!(
                    s,
                    "Where the time goes: `perf record` of the benchmark thread while \
                     `BPF_PROG_TEST_RUN` repeats a class for about a second (share of samples, \
                     hottest symbols; `bpf_prog_<tag>_<name>` are the JIT-compiled programs and \
                     their subprograms):\n"
                );
                for (id, top) in &k.profiles {
                    let list: Vec<String> = top
                        .iter()
                        .map(|(p, sym)| format!("{p:.1} % `{sym}`"))
                        .collect();
                    let label = k.get(id).map_or(*id, |c| c.label);
                    let _ = writeln!(s, "- **{label}**: {}", list.join(", "));
                }
                s.push('\n');
            }
        } else {
            s.push_str("Not run.\n\n");
        }
    }

    fn scale_section(&self, s: &mut String) {
        let _ = writeln!(s, "## 2. Scale\n");
        if let Some(sc) = &self.scale {
            let _ = writeln!(
                s,
                "One program instance per level, each with both tables sized {} entries, loaded \
                 side by side and filled from user space with {} live expectations and as many \
                 live flows (distinct addresses of 198.18.0.0/15; expectations expire in an hour, \
                 flows were just seen; filling took {} s). Rounds interleave the levels.\n\n\
                 - The **steady** classes average {} different packets spread over the table \
                 (different hash buckets) per round. As in section 1 the buckets and entries they \
                 touch stay cache-hot: they show the cost of longer hash chains only.\n\
                 - The admitted SYN uses the PASV → 227 → SYN cycle of section 1 against the \
                 filled tables.\n\
                 - The **new key each run** classes run {} single packets per round and level, \
                 each a different one: a SYN from a random address and port to a random guarded \
                 port (matching nothing), or a packet of a flow picked at random among the live \
                 ones. Consecutive lookups then land in different buckets and entries, as in a \
                 flood or with many active flows, so the size of the table shows up as cache \
                 misses. These include the harness overhead of a single run (about {:.0} ns, the \
                 `XDP_PASS` single reference of section 1), which is the same at every level.\n",
                crate::kernel::SCALE_CAPACITY,
                sc.levels
                    .iter()
                    .map(|l| level_name(*l))
                    .collect::<Vec<_>>()
                    .join(" / "),
                sc.fill_seconds
                    .iter()
                    .map(|x| format!("{x:.1}"))
                    .collect::<Vec<_>>()
                    .join(" / "),
                crate::kernel::SCALE_PROBES,
                crate::kernel::RANDOM_RUNS,
                self.kernel
                    .as_ref()
                    .and_then(|k| k.get("ref_pass_1"))
                    .map_or(0.0, |c| c.summary().median),
            );
            let _ = writeln!(s, "{}", self.scale_table());
        } else {
            s.push_str("Not run.\n\n");
        }
    }

    fn memory_section(&self, s: &mut String) {
        let _ = writeln!(s, "## 3. Map memory\n");
        let _ = writeln!(
            s,
            "The kernel's own accounting of each map (`memlock` in `/proc/<pid>/fdinfo/<map fd>`, \
             what `bpftool map show` prints), read from the loaded object. Hash tables are \
             preallocated, so a table costs its full size from the start. Per-CPU maps scale with \
             the number of CPUs ({} here).\n",
            self.machine.cpus
        );
        let _ = writeln!(s, "{}", self.memory_tables());
    }

    fn flood_section(&self, s: &mut String) {
        let _ = writeln!(s, "## 4. SYN flood\n");
        match &self.flood {
            Some(f) => self.trafgen_flood_section(s, f),
            None => s.push_str("The trafgen flood: not run.\n\n"),
        }
        self.xdp_flood_section(s);
    }

    fn trafgen_flood_section(&self, s: &mut String, f: &FloodResults) {
        let rate = Summary::of(
            &f.rounds
                .iter()
                .flat_map(|(_, r)| r.iter().map(|x| x.gen_pps))
                .collect::<Vec<_>>(),
        );
        let _ = writeln!(
            s,
            "**Setup.** The lab of the end-to-end tests (namespaces on a bridge, veth pairs). The \
             intruder namespace floods the server (198.18.0.1) with TCP SYNs from random \
             addresses of {src} and random ports to random ports 1024–65535, using **trafgen** \
             (netsniff-ng; one worker pinned to CPU {gcpu}, `sendto` mode: its TX_RING mode \
             aborts when the veth queue pushes back with EAGAIN) at the highest rate it reaches: \
             {rate:.0} packets/s median over all rounds ({rlo:.0}–{rhi:.0}). Each round floods for \
             {secs:.0} s per receiver; {rounds} rounds interleave the four receivers:\n\n\
             - **no filter** — the kernel answers every SYN with a RST (routed back through the \
             intruder);\n\
             - **nftables** — how `nf_conntrack_ftp` is used today: `ct helper set \"ftp\"` on \
             port 21, `ct state established,related accept`, `tcp dport 1024-65535 ct state new \
             drop` (ruleset below);\n\
             - **XDP floor** — `bench_syn_floor` attached with aya to the server's `eth0`: the same \
             header parser as ftpct, drop SYNs to ports ≥ 1024, no maps;\n\
             - **ftpct** — `ftpct attach eth0` with default options.\n",
            src = flood::FLOOD_SOURCES,
            gcpu = flood::GEN_CPU,
            rate = rate.median,
            rlo = rate.min,
            rhi = rate.max,
            secs = f.seconds_per_round,
            rounds = f.rounds.first().map_or(0, |r| r.1.len()),
        );
        let _ = writeln!(
            s,
            "**Attributing CPU time to the receiver.** On veth the receive path normally runs in \
             softirq context on the *sender's* CPU, mixed with the generator's work. The bench \
             switches the server's `eth0` to threaded NAPI, so its entire receive path — the XDP \
             program and, for packets that pass, GRO, IP, netfilter/conntrack, TCP and the RST it \
             sends — runs in one kernel thread (`{thread}`) pinned to CPU {rcpu}; the receiver's \
             cost is that thread's exact CPU time from `/proc/<tid>/schedstat` (the scheduler's \
             runtime, not tick samples, and unaffected by other work preempting it) divided by \
             the packets the interface processed (its rx counter, which counts XDP drops too; \
             for ftpct it equals the `syn_dropped` counter: {check}). With no traffic the thread \
             used {idle:.1} ms of CPU per second. For veth to take the NAPI path in every mode \
             (not only with XDP attached), GRO is enabled on the server's `eth0` and TSO \
             disabled on its peer; RSTs the server sends are steered to CPU {gcpu} by RPS on \
             the peer so forwarding them is not charged to the receiver; `gro_flush_timeout` = 200 µs with \
             `napi_defer_hard_irqs` makes the thread poll in batches, as interrupt coalescing \
             would on a NIC, instead of waking for nearly every packet.\n",
            thread = f.napi_thread,
            rcpu = flood::RX_CPU,
            gcpu = flood::GEN_CPU,
            check = if f.ftpct_check.is_empty() {
                "not checked"
            } else {
                f.ftpct_check.as_str()
            },
            idle = f.idle_ns_per_s / 1e6,
        );
        let _ = writeln!(
            s,
            "**Limits of the method.** (1) veth is not a NIC: its XDP runs on an skb the sender \
             already built, which veth first copies into a page-pool buffer when the skb lacks \
             XDP headroom, as the generator's do (`skb_pp_cow_data` in the profiles below), and \
             frees afterwards — a per-packet cost both XDP receivers pay and a NIC driver's XDP \
             does not; the floor measures it. It is a \
             large share of both XDP figures and narrows their distance to nftables. (2) The \
             thread's time includes its wake-ups (column \"wake-ups\" below): a faster receiver \
             empties its queue sooner and sleeps more often, so it pays more wake-ups per \
             packet, which narrows the distance between the XDP floor and ftpct. (3) The \
             generator's rate is bounded by one \
             CPU in `sendto` mode; the receiver never saturates in the XDP modes, and the \
             number of packets per poll batch differs between receivers. (4) CPU {rcpu} is \
             shared with other work; CPU time per packet is robust to that, the packet counts \
             are not.\n",
            rcpu = flood::RX_CPU,
        );
        let _ = writeln!(s, "{}", flood_table(f));
        profile_list(s, f);
        let _ = writeln!(
            s,
            "The nftables ruleset:\n\n```\n{}```\n",
            flood::NFT_RULESET
        );
    }

    fn xdp_flood_section(&self, s: &mut String) {
        let _ = writeln!(s, "### Flooded with XDP frames, as from a NIC\n");
        let Some(f) = &self.xdp_flood else {
            s.push_str("Not run.\n\n");
            return;
        };
        let rate = Summary::of(
            &f.rounds
                .iter()
                .flat_map(|(_, r)| r.iter().map(|x| x.gen_pps))
                .collect::<Vec<_>>(),
        );
        let none = |g: fn(&flood::Round) -> f64| f.summary(FloodMode::None, g).median;
        let recycle =
            f.profiles
                .iter()
                .find(|p| p.0 == FloodMode::Floor)
                .map_or(String::new(), |(_, p)| {
                    let pages = share(p, |sym| {
                        sym.contains("page_pool")
                            || sym.contains("xdp_return")
                            || sym.contains("free_frozen")
                            || sym.contains("free_pages")
                    });
                    let irq = share(p, |sym| sym == "_raw_spin_unlock_irqrestore");
                    format!(
                        ": {pages:.0} % of the floor's profile below, and probably part of its \
                     `_raw_spin_unlock_irqrestore` ({irq:.0} %, where the software clock \
                     charges what ran with interrupts off)"
                    )
                });
        let _ = writeln!(
            s,
            "trafgen's SYNs are skbs, and veth runs XDP on the skb the sender built, so above \
             every XDP receiver pays for an skb it then drops. Here the flood is generated the \
             way `xdp-trafficgen` (xdp-tools) does it: `bench_flood_tx` runs under \
             `BPF_PROG_TEST_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES` (batches of {batch}, one \
             thread pinned to CPU {gcpu}); the kernel builds each frame in a page-pool page from \
             a template SYN, the program gives it a random source address in {src}, random \
             ports (destination 1024–65535) and sequence number and updates the IPv4 and TCP \
             checksums incrementally (RFC 1624), and its `XDP_TX` becomes a transmission on \
             the device the run names: `{dev}`, the server's peer veth (a bridge port in the \
             switch namespace; the intruder's own veth is peered with the bridge, not the \
             server). veth's `ndo_xdp_xmit` puts each `xdp_frame` straight into the ring of the \
             server's `eth0`, whose NAPI thread runs the XDP program on it before any skb \
             exists, as a NIC driver runs XDP on its receive buffer. Frames that pass (no \
             filter, nftables) get their skb built around the page there, as a driver builds \
             one. The checksums are right: with no filter the kernel answered {rst:.0} RSTs for \
             {rcv:.0} packets per round (median). The generator reached {rate:.0} frames/s \
             median ({rlo:.0}–{rhi:.0}), more than any receiver here processes: the frames \
             `eth0`'s ring (256 entries) refuses are counted by veth as the receiver's \
             `rx_dropped` (column \"dropped in the veth queue\") and cost the receiver nothing. \
             The same four receivers, the same threaded NAPI thread pinned to CPU {rcpu} and \
             the same measure (its CPU time ÷ packets processed; for ftpct: {check}); {rounds} \
             rounds of {secs:.1} s per receiver, interleaved.\n\n\
             **Limits of the method.** (1) A frame's page belongs to the generator's page pool \
             (one per `BPF_PROG_TEST_RUN` call, its recycling ring the size of a batch): the \
             receiver returns it from another CPU (`xdp_return_frame`), and when that ring is \
             full the page goes back to the page allocator (`page_pool_return_netmem`, \
             `__free_frozen_pages`, its zone lock){recycle} — where a NIC driver recycles into \
             its own pool on its own CPU. Every receiver pays it, so it inflates the floor \
             most and narrows ftpct ÷ floor. (2) The \
             receiver keeps the trafgen setup's coalescing (a poll every 200 µs once its ring \
             is empty) and veth's ring holds 256 frames, so at this rate the ring fills between \
             polls and overflows in every mode: the receiver's CPU share stays low and the \
             share of frames processed says nothing about its capacity. CPU time per \
             processed frame is unaffected, and so is robust to CPU {rcpu} being shared with \
             other work. (3) veth is \
             still not a NIC: no DMA, no interrupt, no descriptor ring to refill.\n",
            batch = 64,
            gcpu = flood::GEN_CPU,
            rcpu = flood::RX_CPU,
            src = flood::FLOOD_SOURCES,
            dev = crate::nicflood::GEN_IFACE,
            recycle = recycle,
            rst = none(|r| r.answered as f64),
            rcv = none(|r| r.received as f64),
            rate = rate.median,
            rlo = rate.min,
            rhi = rate.max,
            check = if f.ftpct_check.is_empty() {
                "not checked"
            } else {
                f.ftpct_check.as_str()
            },
            rounds = f.rounds.first().map_or(0, |r| r.1.len()),
            secs = f.seconds_per_round,
        );
        let _ = writeln!(s, "{}", flood_table(f));
        profile_list(s, f);
    }

    fn transfer_section(&self, s: &mut String) {
        let _ = writeln!(s, "## 5. A legitimate 100 MB download\n");
        let Some(t) = &self.transfer else {
            s.push_str("Not run.\n\n");
            return;
        };
        let _ = writeln!(
            s,
            "vsftpd in the server namespace serves a {bytes} byte file; curl in the client \
             namespace downloads it in passive mode (`PASV`/`227`, so ftpct parses the control \
             connection and admits the data connection) to `/dev/null`; throughput is size ÷ \
             curl's total time. The lab's veths keep their defaults here (no threaded NAPI, no \
             pinning except the generator's).\n\n\
             A download lasts about a tenth of a second and the machine is shared, so single \
             downloads vary by tens of percent. The variants therefore alternate download by \
             download, and every ratio is taken within one cycle:\n\n\
             1. {cycles} cycles of: without ftpct; with `bench_xdp_pass` attached to the \
             server's `eth0` instead (a reference: attaching any XDP program switches veth's \
             receive path to NAPI, which changes throughput by itself); with ftpct. Switching \
             in milliseconds rules out `ftpct attach` (it loads and verifies the programs each \
             time), so these cycles attach ftpct's own programs, loaded and configured by the \
             ftpct library as `ftpct attach` loads them, with aya (tcx egress, then XDP \
             ingress) and detach them after the download.\n\
             2. {fcycles} cycles of without / with ftpct while the trafgen SYN flood of \
             section 4 runs ({pps:.0} packets/s).\n\
             3. {xcycles} cycles of with the XDP floor (`bench_syn_floor`) / with ftpct \
             (which goes first alternates cycle by cycle) while the flood of XDP frames of \
             section 4 runs ({xpps:.0} frames/s generated; the server's `eth0` processed \
             {xrx:.0} packets/s, flood and download together, counting the moments between \
             two programs when nothing is attached and veth refuses the frames). The \
             reference is the floor, not \"without\": veth takes XDP frames only while the \
             receiver has an XDP program (or GRO), and a NIC would deliver the flood either \
             way. These downloads use active mode (`PORT`, the server opens the data \
             connection), because the floor drops every SYN to a port ≥ 1024 and so would \
             drop a passive data connection. Without threaded NAPI the server's receive poll \
             runs in softirq on the CPU that fills its ring — the generator's, CPU {gcpu} — \
             so the flood takes that CPU, and a costlier receiver program leaves the \
             download's packets less of it.\n\
             4. A check of the real command: {cli} rounds of {cli_n} downloads without ftpct, \
             then `ftpct attach eth0`, {cli_n} downloads, `ftpct detach` (round medians).\n\n\
             curl gives up after {max} s (a download takes well under a second here); such a \
             download counts as stalled and its cycle is left out of the series.\n",
            bytes = transfer::FILE_BYTES,
            cycles = t.params.cycles,
            fcycles = t.params.flood_cycles,
            pps = t.flood_pps,
            xcycles = t.params.xdp_flood_cycles,
            xpps = t.xdp_flood_pps,
            xrx = t.xdp_flood_rx_pps,
            gcpu = flood::GEN_CPU,
            cli = t.params.cli_rounds,
            cli_n = transfer::CLI_DOWNLOADS,
            max = transfer::MAX_TIME_SECS,
        );
        let _ = writeln!(s, "{}", self.transfer_table());
        if !t.stalls.is_empty() {
            let _ = writeln!(s, "Stalled downloads:\n");
            for (mode, what) in &t.stalls {
                let _ = writeln!(s, "- {}: {what}", mode.label());
            }
            s.push('\n');
        }
    }

    /// Why the targets of the flood of XDP frames are missed, if they are.
    fn xdp_flood_limits(
        &self,
        s: &mut String,
        f: &FloodResults,
        missed: &dyn Fn(&str, &str) -> bool,
    ) {
        let ns = |m| f.summary(m, |r| r.ns_per_packet).median;
        let profile = |m: FloodMode| f.profiles.iter().find(|p| p.0 == m).map(|p| &p.1);
        let area = "flood, XDP frames";
        let cause = |s: &mut String| {
            let (Some(p), Some(floor)) = (profile(FloodMode::Ftpct), profile(FloodMode::Floor))
            else {
                return;
            };
            let progs = |p: &[(f64, String)]| share(p, |sym| sym.starts_with("bpf_prog_"));
            let _ = write!(
                s,
                " In the profiles of this flood the JIT-compiled programs take {:.0} % of \
                 ftpct's receiver samples (`ftpct_ingress` and its subprograms) against \
                 {:.0} % of the floor's; the kernel's hash-table functions are not among the \
                 hottest symbols, so the difference is in ftpct's own instructions and the \
                 memory they wait for. (perf samples with a software clock in this virtual \
                 machine, which cannot interrupt code running with interrupts off and \
                 charges it to where they come back on, `_raw_spin_unlock_irqrestore`: the \
                 shares are approximate.)",
                progs(p),
                progs(floor)
            );
        };
        if missed(area, "XDP floor") {
            let _ = write!(
                s,
                "- **Flood of XDP frames, ftpct vs floor.** ftpct's receiver spends {:.0} ns per \
                 frame, the floor's {:.0} ns: {:.0} ns more",
                ns(FloodMode::Ftpct),
                ns(FloodMode::Floor),
                ns(FloodMode::Ftpct) - ns(FloodMode::Floor),
            );
            if let Some(t) = &self.flood {
                let tns = |m| t.summary(m, |r| r.ns_per_packet).median;
                let _ = write!(
                    s,
                    " (under trafgen {:.0} ns more, hidden there behind the skb both pay)",
                    tns(FloodMode::Ftpct) - tns(FloodMode::Floor)
                );
            }
            let _ = write!(
                s,
                ". Per dropped SYN ftpct reads its policy, both ports' class, the packet \
                 clock and the port's window (no table lookup: no expectation is live for \
                 the port), counts the drop and checks the drop event's per-CPU budget; the \
                 floor only parses. Without an skb to build and free, that work is {:.0} % of \
                 ftpct's receiver time.",
                (ns(FloodMode::Ftpct) - ns(FloodMode::Floor)) / ns(FloodMode::Ftpct).max(1.0)
                    * 100.0
            );
            if let Some(k) = &self.kernel {
                let g = |id: &str| k.get(id).map(|c| c.summary().median).unwrap_or(0.0);
                let _ = write!(
                    s,
                    " In `BPF_PROG_TEST_RUN` (section 1), with the frame and its table \
                     buckets in the cache, the difference is {:.0} ns.",
                    g("syn_drop") - g("ref_floor")
                );
            }
            cause(s);
            s.push('\n');
        }
        if missed(area, "1/4") {
            let _ = write!(
                s,
                "- **Flood of XDP frames, ftpct vs nftables.** ftpct {:.0} ns, nftables {:.0} ns, \
                 the floor {:.0} ns ({:.0} % of nftables): 1/4 of nftables leaves ftpct {:.0} ns \
                 of work beyond the floor's per dropped SYN; it spends {:.0} ns (see the \
                 comparison with the floor).",
                ns(FloodMode::Ftpct),
                ns(FloodMode::Nft),
                ns(FloodMode::Floor),
                ns(FloodMode::Floor) / ns(FloodMode::Nft).max(1.0) * 100.0,
                ns(FloodMode::Nft) / 4.0 - ns(FloodMode::Floor),
                ns(FloodMode::Ftpct) - ns(FloodMode::Floor),
            );
            if !missed(area, "XDP floor") {
                cause(s);
            }
            s.push('\n');
        }
    }

    /// Why the missed targets are missed, from the figures and profiles of
    /// this run.
    fn limits(&self) -> String {
        let mut s = String::new();
        let targets = self.targets();
        let missed = |area: &str, needle: &str| {
            targets
                .iter()
                .any(|t| t.area == area && t.wanted.contains(needle) && t.met == Some(false))
        };
        if let Some(k) = &self.kernel {
            let get = |id: &str| k.get(id).map(|c| c.summary().median).unwrap_or(0.0);
            let profile = |id: &str| k.profiles.iter().find(|p| p.0 == id).map(|p| &p.1);
            let non_ftp_missed = ["non-IP ≤", "UDP ≤", "TCP to a non-guarded port ≤"]
                .iter()
                .any(|n| missed("in-kernel", n));
            if non_ftp_missed {
                let _ = write!(
                    s,
                    "- **In-kernel, non-FTP traffic vs `XDP_PASS`.** ftpct spends {:.0} ns on a \
                     non-IP frame, {:.0} ns on UDP and {:.0} ns on TCP to an open port against \
                     {:.0} ns for a program that only returns `XDP_PASS` (the harness's own \
                     per-repeat overhead is part of both). Every packet pays for a per-CPU \
                     counter, the policy read and the header parse; TCP adds the port-class \
                     lookup of both ports.",
                    get("non_ip"),
                    get("udp"),
                    get("tcp_open"),
                    get("ref_pass")
                );
                if let Some(p) = profile("non_ip") {
                    let memset = share(p, |sym| sym.ends_with("_memset"));
                    let prog = share(p, |sym| sym.ends_with("_ftpct_ingress"));
                    if memset >= 5.0 {
                        let _ = write!(
                            s,
                            " The profile of the non-IP class shows where it goes: {memset:.0} % \
                             of the samples are in a BPF subprogram `memset` and {prog:.0} % in the \
                             program itself. The `memset` is the zeroing of the parsed-packet \
                             record (`PacketInfo::empty()`, 50 bytes) at the top of the program, \
                             which the BPF backend emits as a call to a byte-at-a-time loop \
                             (`bpftool prog dump xlated` shows `r3 = 50; call memset`) — on \
                             every packet, before the program knows whether it is TCP. \
                             Initialising the record with word-sized stores (or only the fields \
                             a path uses) would remove most of the gap."
                        );
                    }
                }
                s.push('\n');
            }
            if missed("in-kernel", "packet of a tracked flow") {
                let _ = writeln!(
                    s,
                    "- **In-kernel, tracked flow vs `XDP_PASS`.** The measured packet is repeated, \
                     so the flow memo answers: {:.0} ns against {:.0} ns for `XDP_PASS`. TCP to \
                     a non-guarded port already costs {:.0} ns (the parse, both port classes, \
                     the counter); the memo adds the policy read, the packet clock and a \
                     compare of the 4-tuple. Without the memo the flow table's lookup (hashing \
                     a 40-byte key) adds about {:.0} ns more (single runs above).",
                    get("flow"),
                    get("ref_pass"),
                    get("tcp_open"),
                    get("flow_miss_1") - get("flow_1"),
                );
            }
            if missed("in-kernel", "floor program") {
                let _ = write!(
                    s,
                    "- **In-kernel SYN vs floor.** The floor only parses headers: {:.0} ns, {:.0} ns \
                     more than `XDP_PASS`. A SYN to a guarded port no expectation is live for \
                     costs ftpct {:.0} ns: the same parse plus the port classes of both ports \
                     (is it a control connection?), the policy, the packet clock (read once a \
                     jiffy per CPU), the port's window, its counter and the audit event's \
                     per-CPU budget with the counter of suppressed events. No table lookup and \
                     no call are left on this path; each of these is a few nanoseconds, which \
                     against a floor whose own work is {:.0} ns is a large ratio.",
                    get("ref_floor"),
                    get("ref_floor") - get("ref_pass"),
                    get("syn_drop"),
                    get("ref_floor") - get("ref_pass"),
                );
                if let Some(p) = profile("syn_drop") {
                    let memset = share(p, |sym| sym.ends_with("_memset"));
                    let hash = share(p, |sym| {
                        sym.contains("htab") || sym.contains("lookup_nulls")
                    });
                    let clock = share(p, |sym| sym == "read_tsc" || sym.contains("ktime_get"));
                    let prog = share(p, |sym| sym.ends_with("_ftpct_ingress"));
                    let _ = write!(
                        s,
                        " Its profile: the program itself {prog:.0} % of the samples"
                    );
                    if hash >= 3.0 {
                        let _ = write!(s, ", hash-table code {hash:.0} %");
                    }
                    if clock >= 3.0 {
                        let _ = write!(
                            s,
                            ", reading the clock (`bpf_ktime_get_*ns` and the kernel functions \
                             behind it) {clock:.0} %"
                        );
                    }
                    if memset >= 3.0 {
                        let _ = write!(s, ", the `memset` subprogram {memset:.0} %");
                    }
                    s.push('.');
                }
                s.push('\n');
            }
        }
        if let Some(f) = &self.flood {
            let ns = |m| f.summary(m, |r| r.ns_per_packet).median;
            let profile = |m: FloodMode| f.profiles.iter().find(|p| p.0 == m).map(|p| &p.1);
            if missed("flood", "XDP floor") {
                let _ = write!(
                    s,
                    "- **Flood, ftpct vs floor.** ftpct's receiver spends {:.0} ns per flood packet, \
                     the floor's {:.0} ns: {:.0} ns more, against {:.0} ns more in \
                     `BPF_PROG_TEST_RUN` (section 1). The difference: a flood from random \
                     addresses and ports sends every SYN to a different bucket of the flow table \
                     and of the expectation table, so both lookups miss the CPU cache, which a \
                     repeated test frame never does.",
                    ns(FloodMode::Ftpct),
                    ns(FloodMode::Floor),
                    ns(FloodMode::Ftpct) - ns(FloodMode::Floor),
                    self.kernel.as_ref().map_or(0.0, |k| {
                        let g = |id: &str| k.get(id).map(|c| c.summary().median).unwrap_or(0.0);
                        g("syn_drop") - g("ref_floor")
                    }),
                );
                let isolated = self.scale.as_ref().and_then(|sc| {
                    let random = sc.classes.iter().find(|c| c.0 == "syn_drop_random")?;
                    let repeated = self.kernel.as_ref()?.get("syn_drop_1")?;
                    Some((
                        Summary::of(&random.2[0]).median,
                        repeated.summary().median,
                        level_name(sc.levels[0]),
                    ))
                });
                if let Some((random, repeated, level)) = isolated {
                    let _ = write!(
                        s,
                        " Section 2 shows the effect in isolation: a SYN with a new random \
                         key each run costs {random:.0} ns with {level} entries in the tables, \
                         the same SYN repeated {repeated:.0} ns (both single runs)."
                    );
                }
                if let Some(p) = profile(FloodMode::Ftpct) {
                    let hash = share(p, |sym| {
                        sym.contains("htab") || sym.contains("lookup_nulls")
                    });
                    let prog = share(p, |sym| sym.starts_with("bpf_prog_"));
                    let _ = write!(
                        s,
                        " In ftpct's flood profile the hash-table code takes {hash:.0} % of the \
                         receiver's samples and the program with its subprograms {prog:.0} %."
                    );
                }
                s.push('\n');
            }
            if missed("flood", "1/4") {
                let _ = write!(
                    s,
                    "- **Flood, ftpct vs nftables.** ftpct {:.0} ns, nftables {:.0} ns, the stateless \
                     floor {:.0} ns: a program that does nothing but parse and drop already costs \
                     {:.0} % of nftables here, so no XDP program could reach 1/4 in this lab. On \
                     veth, XDP does not run before an skb exists: it runs on the skb the sender \
                     built, which veth first copies into a page-pool buffer because it lacks XDP \
                     headroom, and frees afterwards; the stack path skips that copy.",
                    ns(FloodMode::Ftpct),
                    ns(FloodMode::Nft),
                    ns(FloodMode::Floor),
                    ns(FloodMode::Floor) / ns(FloodMode::Nft).max(1.0) * 100.0
                );
                if let Some(p) = profile(FloodMode::Floor) {
                    let veth = share(p, |sym| {
                        sym.starts_with("veth_")
                            || sym.starts_with("skb_")
                            || sym.contains("kmem_cache")
                            || sym.contains("slab")
                            || sym.starts_with("kfree")
                            || sym.contains("page_pool")
                            || sym.contains("napi_")
                    });
                    let prog = share(p, |sym| sym.starts_with("bpf_prog_"));
                    let sched = share(p, |sym| {
                        sym.contains("finish_task_switch") || sym.contains("schedule")
                    });
                    let _ = write!(
                        s,
                        " In the floor's flood profile veth's skb handling (conversion, copy, \
                         allocation and freeing among the hottest symbols) takes {veth:.0} % of \
                         the samples, the program {prog:.0} %, thread wake-ups {sched:.0} %. A NIC \
                         driver runs XDP on its receive buffer before any skb exists, so that \
                         fixed cost disappears there."
                    );
                }
                if let Some(x) = &self.xdp_flood {
                    let xns = |m| x.summary(m, |r| r.ns_per_packet).median;
                    let _ = write!(
                        s,
                        " The flood of XDP frames (end of section 4) removes it: there the \
                         floor costs {:.0} % of nftables and ftpct {}.",
                        xns(FloodMode::Floor) / xns(FloodMode::Nft).max(1.0) * 100.0,
                        fmt_ratio(&x.ratio(FloodMode::Ftpct, FloodMode::Nft))
                    );
                }
                s.push('\n');
            }
        }
        if let Some(f) = &self.xdp_flood {
            self.xdp_flood_limits(&mut s, f, &missed);
        }
        if let Some(sc) = &self.scale {
            for (id, label, per_level) in &sc.classes {
                let g = sc.growth(id);
                if g.median <= 1.5 {
                    continue;
                }
                let first = Summary::of(&per_level[0]).median;
                let last = Summary::of(&per_level[per_level.len() - 1]).median;
                let _ = write!(
                    s,
                    "- **Scale, {label}.** {first:.0} ns at {} entries, {last:.0} ns at {}: \
                     {:.2}× (rounds {:.2}–{:.2}).",
                    level_name(sc.levels[0]),
                    level_name(sc.levels[sc.levels.len() - 1]),
                    g.median,
                    g.min,
                    g.max
                );
                if id.ends_with("_random") {
                    let _ = write!(
                        s,
                        " This is the CPU cache, not the hash table's algorithm (the steady \
                         classes, whose entries stay cached, grow far less): with {} entries the \
                         entries a random packet can hit fit in the caches and stay there \
                         between runs, with {} they do not, so each lookup fetches its bucket \
                         and entry from memory; a hit also writes the entry (the LRU's \
                         reference bit, ftpct's last-seen time). It is what a host tracking a \
                         million busy flows pays per packet on this machine.",
                        level_name(sc.levels[0]),
                        level_name(sc.levels[sc.levels.len() - 1]),
                    );
                }
                s.push('\n');
            }
        }
        if missed("transfer", "XDP frames") {
            if let Some(t) = &self.transfer {
                let r = t.ratio(TransferMode::FtpctXdpFlood, TransferMode::FloorXdpFlood);
                let _ = write!(
                    s,
                    "- **Transfer during the flood of XDP frames.** Downloads with ftpct reached \
                     {} of the throughput of the download next to them with the floor. The \
                     receive poll shares CPU {} with the generator, so every nanosecond ftpct \
                     spends on a flood frame beyond the floor",
                    fmt_pct(&r),
                    flood::GEN_CPU
                );
                if let Some(x) = &self.xdp_flood {
                    let xns = |m| x.summary(m, |r| r.ns_per_packet).median;
                    let _ = write!(
                        s,
                        " ({:.0} ns in section 4)",
                        xns(FloodMode::Ftpct) - xns(FloodMode::Floor)
                    );
                }
                let _ = writeln!(
                    s,
                    ", times {:.0} frames/s, is CPU time the download's packets do not get. \
                     Single downloads on this shared machine vary widely, though: the \
                     per-cycle ratios have an interquartile range of {:.0}–{:.0} % (load \
                     average {} after the run){}.",
                    t.xdp_flood_rx_pps,
                    r.p25 * 100.0,
                    r.p75 * 100.0,
                    self.machine.load_after,
                    if r.p25 < 0.9 && r.p75 >= 0.9 {
                        ", so the target lies within the noise of this run"
                    } else {
                        ""
                    }
                );
            }
        }
        if missed("transfer", "95") {
            if let Some(t) = &self.transfer {
                let ftpct = t.ratio(TransferMode::Ftpct, TransferMode::Plain);
                let pass = t.ratio(TransferMode::PassRef, TransferMode::Plain);
                let _ = write!(
                    s,
                    "- **Transfer.** Downloads with ftpct reached {} of the throughput of the \
                     download next to them without it (interquartile range {:.1}–{:.1} %). \
                     The `XDP_PASS` reference, which does no work at all, reached {} \
                     (interquartile range {:.1}–{:.1} %).",
                    fmt_pct(&ftpct),
                    ftpct.p25 * 100.0,
                    ftpct.p75 * 100.0,
                    fmt_pct(&pass),
                    pass.p25 * 100.0,
                    pass.p75 * 100.0,
                );
                if ftpct.median >= pass.p25 {
                    let _ = writeln!(
                        s,
                        " ftpct is within the reference's spread: what is lost comes from \
                         attaching an XDP program to a veth at all and from the noise of this \
                         shared machine, not from ftpct's work."
                    );
                } else {
                    let _ = writeln!(
                        s,
                        " ftpct is below the reference's spread: the difference is ftpct's own \
                         work per packet — every data segment passes the egress program and \
                         every ACK the ingress program's flow lookup (section 1)."
                    );
                }
            }
        }
        if let Some(t) = self.transfer.as_ref().filter(|t| !t.stalls.is_empty()) {
            let with: usize = [
                TransferMode::Ftpct,
                TransferMode::FtpctFlood,
                TransferMode::FtpctXdpFlood,
                TransferMode::Cli,
            ]
            .iter()
            .map(|m| t.stalled(*m))
            .sum();
            let _ = writeln!(
                s,
                "- **Stalled downloads.** {} of the downloads did not finish within curl's \
                 {} s limit, {with} of them with ftpct attached (section 5 lists what curl \
                 reported). Not a throughput target, but a download that stops must be looked \
                 into before any figure here matters.",
                t.stalls.len(),
                transfer::MAX_TIME_SECS
            );
        }
        s.push_str(&self.control_limits());
        if s.is_empty() {
            "Every target measured was met.\n".into()
        } else {
            format!("What limits the missed targets:\n\n{s}")
        }
    }
}

/// Summed share (percent) of the profile's symbols matching `pred`.
fn share(profile: &[(f64, String)], pred: impl Fn(&str) -> bool) -> f64 {
    // From 0.0: an empty f64 sum is -0.0, which would print as "-0 %".
    profile
        .iter()
        .filter(|(_, sym)| pred(sym))
        .fold(0.0, |acc, (p, _)| acc + p)
}

/// The table of one flood's receivers and its ratios.
fn flood_table(f: &FloodResults) -> String {
    let mut s = String::from(
        "| Receiver | CPU ns per flood packet: median (p25–p75) | min–max | Packets processed per round | Share of the generator's packets | Generator rate (pps) | Answered (RST) per round | Dropped in the veth queue per round | Receiver CPU share | Receiver wake-ups per 1000 packets |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for mode in FloodMode::ALL {
        let ns = f.summary(mode, |r| r.ns_per_packet);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0} | {:.0} % | {:.0} | {:.0} | {:.0} | {:.0} % | {:.0} |",
            mode.label(),
            ns.fmt_iqr(0),
            ns.fmt_range(0),
            f.summary(mode, |r| r.received as f64).median,
            f.summary(mode, |r| r.received as f64 / r.sent.max(1) as f64)
                .median
                * 100.0,
            f.summary(mode, |r| r.gen_pps).median,
            f.summary(mode, |r| r.answered as f64).median,
            f.summary(mode, |r| r.queue_drops as f64).median,
            f.summary(mode, |r| r.rx_cpu_share).median * 100.0,
            f.summary(mode, |r| r.wakeups_per_k).median,
        );
    }
    let _ = writeln!(
        s,
        "\nRatios (per round): ftpct ÷ XDP floor {}; ftpct ÷ nftables {}; XDP floor ÷ nftables {}; nftables ÷ no filter {}.",
        fmt_ratio(&f.ratio(FloodMode::Ftpct, FloodMode::Floor)),
        fmt_ratio(&f.ratio(FloodMode::Ftpct, FloodMode::Nft)),
        fmt_ratio(&f.ratio(FloodMode::Floor, FloodMode::Nft)),
        fmt_ratio(&f.ratio(FloodMode::Nft, FloodMode::None)),
    );
    s
}

/// The flood's receiver profiles, as a list.
fn profile_list(s: &mut String, f: &FloodResults) {
    if f.profiles.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "Where the receiver's time goes: `perf record -t <napi thread>` during one more \
         {:.0}-second flood per receiver (share of samples, hottest symbols):\n",
        flood::PROFILE_SECS
    );
    for (mode, top) in &f.profiles {
        let list: Vec<String> = top
            .iter()
            .map(|(p, sym)| format!("{p:.1} % `{sym}`"))
            .collect();
        let _ = writeln!(s, "- **{}**: {}", mode.short(), list.join(", "));
    }
    s.push('\n');
}

/// The control-plane phase (section 7): its targets, table, section and
/// what limits a missed target.
impl Results {
    fn control_targets(&self) -> Vec<Target> {
        let Some(c) = &self.control else {
            return control::COMMANDS
                .iter()
                .filter_map(|cmd| {
                    let limit = cmd.target_ms?;
                    Some(Target {
                        area: "control",
                        wanted: format!("`ftpct {}` with 1M flows < {limit:.0} ms", cmd.id),
                        measured: "n/a".into(),
                        met: None,
                        borderline: false,
                    })
                })
                .collect();
        };
        control::COMMANDS
            .iter()
            .enumerate()
            .filter_map(|(i, cmd)| {
                let limit = cmd.target_ms?;
                let r = c.summary(i);
                Some(Target {
                    area: "control",
                    wanted: format!(
                        "`ftpct {}` with {} flows and {} expectations < {limit:.0} ms",
                        cmd.id,
                        level_name(c.params.flows),
                        level_name(c.params.expectations)
                    ),
                    measured: format!("{:.0} ms (rounds {:.0}–{:.0})", r.median, r.min, r.max),
                    met: (!r.is_empty()).then_some(r.median < limit),
                    borderline: r.min < limit && r.max >= limit,
                })
            })
            .collect()
    }

    fn control_table(&self) -> String {
        let Some(c) = &self.control else {
            return String::new();
        };
        let mut s = String::from(
            "| Command | median ms (p25–p75) | rounds min–max | output | before batch reads (one run) |\n\
             |---|---|---|---|---|\n",
        );
        for (i, cmd) in control::COMMANDS.iter().enumerate() {
            let r = c.summary(i);
            let name = if cmd.args.is_empty() {
                "`nsenter --net=… true` (start-up floor)".to_string()
            } else {
                format!("`ftpct {}`", cmd.id)
            };
            let old = match (&c.old_ms, cmd.args.is_empty()) {
                (Some(old), false) => format!("{:.0} ms", old[i]),
                _ => "–".into(),
            };
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {:.1} MB | {old} |",
                r.fmt_iqr(1),
                r.fmt_range(1),
                c.bytes[i] as f64 / 1e6
            );
        }
        s
    }

    fn control_section(&self, s: &mut String) {
        let _ = writeln!(s, "## 7. The control plane at scale\n");
        let Some(c) = &self.control else {
            s.push_str("Not run.\n\n");
            return;
        };
        let _ = writeln!(
            s,
            "`ftpct attach` on a veth in a namespace of its own, each table sized to the power \
             of two at or above its fill plus 2 % (a hash table has that many buckets in any \
             case, and every walk visits them all); \
             the pinned admitted-flow table filled from user space with {flows} live flows and \
             the expectation table with {exp} live expectations (the scale phase's filler \
             entries; {fill:.1} s). {rounds} rounds, each running every command once in an order \
             that rotates from round to round, timed from spawn to exit while a reader drains \
             the output as a pipe would; every listing is checked to hold one row per entry. \
             Each run starts through `nsenter` into the namespace, whose own cost is the first \
             row. The tables are read with `BPF_MAP_LOOKUP_BATCH`, {batch} entries a call; \
             `status` counts live entries in that pass without building rows (expired ones \
             are excluded, so the count needs each value: the kernel keeps no count of live \
             entries, and on 6.1 none at all that user space can read). The last column is \
             one run of the binary before batch reads (`FTPCT_BENCH_OLD_BIN`), when given.\n",
            flows = level_name(c.params.flows),
            exp = level_name(c.params.expectations),
            fill = c.fill_seconds,
            rounds = c.params.rounds,
            batch = ftp_userspace::batch::BATCH,
        );
        let _ = writeln!(s, "{}", self.control_table());
    }

    /// Why a missed control target is missed.
    fn control_limits(&self) -> String {
        let Some(c) = &self.control else {
            return String::new();
        };
        let floor = c.summary(0).median;
        let mut s = String::new();
        for (i, cmd) in control::COMMANDS.iter().enumerate() {
            let Some(limit) = cmd.target_ms else {
                continue;
            };
            let r = c.summary(i);
            if r.is_empty() || r.median < limit {
                continue;
            }
            let _ = write!(
                s,
                "- **`ftpct {}`** takes {:.0} ms against {limit:.0} ms ({floor:.0} ms of it \
                 starting a process in the namespace). {}",
                cmd.id,
                r.median,
                if cmd.id.starts_with("status") {
                    "It reads every entry of the flow and expectation tables once, in \
                     batches, to count the live ones (the kernel keeps no count of unexpired \
                     entries, and on 6.1 none of occupied slots that user space can read): \
                     `BPF_MAP_LOOKUP_BATCH` locks each non-empty bucket and copies it out on \
                     its own, so the pass costs per entry in the kernel. Counting in the kernel \
                     instead (a program walking the tables with `bpf_for_each_map_elem`, run \
                     by `BPF_PROG_TEST_RUN`) was built and measured: 250 ms for this fill, \
                     nearly all of it cache and TLB misses on the scattered entries, so still \
                     not 200 ms, and it would run with bottom halves disabled on one CPU for \
                     all that time, stopping that CPU's packet processing on every status \
                     call and metrics scrape. The batched read stays preemptible between \
                     batches."
                } else {
                    "It pays the same batched read as `status`, then builds a row per entry \
                     and formats it (addresses, JSON) into the pipe."
                }
            );
            if let Some((_, top)) = c.profiles.iter().find(|(j, _)| *j == i) {
                let hot: Vec<String> = top
                    .iter()
                    .take(5)
                    .map(|(pct, sym)| format!("`{sym}` {pct:.1} %"))
                    .collect();
                let _ = write!(s, " Hottest symbols of one run: {}.", hot.join(", "));
            }
            s.push('\n');
        }
        s
    }
}
