//! In-kernel cost per packet with `BPF_PROG_TEST_RUN`, and the same classes
//! with the expectation and flow tables filled to scale.
//!
//! Two methods, both reported in nanoseconds per packet as the kernel
//! measures them:
//!
//! - **steady** — one `BPF_PROG_TEST_RUN` with a large `repeat`; the kernel
//!   returns the average time per run. Only valid for classes whose packet
//!   leaves the state as it found it (a dropped SYN, a packet of a tracked
//!   flow, non-FTP traffic).
//! - **single** — `repeat = 1`, state prepared before every run (untimed)
//!   and the median of many runs taken: for the one-shot paths (a SYN that
//!   consumes its expectation, a control segment the parser must not take
//!   for a retransmission). These figures include the test harness's own
//!   per-call overhead (timer reads), shown by the `XDP_PASS` and floor
//!   references measured the same way.

use std::borrow::BorrowMut;
use std::net::Ipv4Addr;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use aya::Ebpf;
use aya::maps::{HashMap, Map, MapData};
use aya::programs::{SchedClassifier, TestRun, TestRunOptions, Xdp};
use ftp_ebpf_common::flow::{ExpectKey, ExpectValue, FlowKey, FlowValue, expect_kind, flow_origin};
use ftp_ebpf_common::{family, map_names, program_names};
use ftp_userspace::attach::{AttachConfig, load_configured, monotonic_ns};

use ftpct_e2e::process::ChildGuard;

use crate::frames::{self, ACK, SYN, Segment};
use crate::stats::{self, Summary};
use crate::sys;

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const INTRUDER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);

/// Client port of the control connection the PASV/227 classes use.
const PASV_CTRL_PORT: u16 = 50_000;
/// Client port of the control connection the PORT class uses.
const PORT_CTRL_PORT: u16 = 50_001;
/// The passive data port the 227 replies announce.
const PASV_DATA_PORT: u16 = 40_200;
/// The data port of the tracked flow the flow class measures.
const FLOW_DATA_PORT: u16 = 40_100;
/// Client source port of that tracked flow.
const FLOW_CLIENT_PORT: u16 = 50_100;
/// A second tracked flow (data port, client port), whose packets replace
/// the first one's in the per-CPU flow memo.
const OTHER_FLOW: (u16, u16) = (40_101, 50_101);

/// Capacity of both tables in the scale test (1 million live entries fit).
pub const SCALE_CAPACITY: u32 = 1_100_000;

/// How a class is timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `repeat = N`, kernel average.
    Steady,
    /// `repeat = 1`, state re-prepared for every run, median.
    Single,
}

/// One measured packet class: one value per round.
#[derive(Clone, Debug)]
pub struct Class {
    pub id: &'static str,
    pub label: &'static str,
    pub program: &'static str,
    pub method: Method,
    pub rounds: Vec<f64>,
}

impl Class {
    fn new(id: &'static str, label: &'static str, program: &'static str, method: Method) -> Self {
        Self {
            id,
            label,
            program,
            method,
            rounds: Vec::new(),
        }
    }

    pub fn summary(&self) -> Summary {
        Summary::of(&self.rounds)
    }
}

/// Parameters of the in-kernel phase.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub rounds: usize,
    /// `repeat` of steady classes.
    pub repeat: u32,
    /// Runs per round of single classes.
    pub singles: usize,
    /// Profile a few classes with `perf` afterwards (if it is installed).
    pub profile: bool,
}

/// The programs loaded (not attached) with the reference programs.
pub struct Loaded {
    pub ebpf: Ebpf,
    out: Vec<u8>,
    /// Loaded with `--nat-rewrite` (and an external address).
    rewrites: bool,
}

impl Loaded {
    /// Loads ftpct with `cfg` (policy written), the two references and the
    /// flood generator.
    pub fn load(cfg: &AttachConfig) -> Result<Self> {
        let mut ebpf = load_configured(cfg).context("loading ftpct's programs")?;
        for name in [
            program_names::BENCH_PASS,
            program_names::BENCH_SYN_FLOOR,
            program_names::BENCH_FLOOD_TX,
        ] {
            let prog: &mut Xdp = ebpf
                .program_mut(name)
                .with_context(|| format!("program {name} missing from the object"))?
                .try_into()?;
            prog.load().with_context(|| format!("loading {name}"))?;
        }
        Ok(Self {
            ebpf,
            out: vec![0; 4096],
            rewrites: cfg.nat_rewrite,
        })
    }

    fn xdp(&self, name: &str) -> Result<&Xdp> {
        Ok(self
            .ebpf
            .program(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?)
    }

    /// Runs XDP program `name` on `frame` `repeat` times: (action, ns per run).
    pub fn run_xdp(&mut self, name: &str, frame: &[u8], repeat: u32) -> Result<(u32, f64)> {
        let mut out = std::mem::take(&mut self.out);
        let result = (|| {
            let prog = self.xdp(name)?;
            let r = prog
                .test_run(TestRunOptions {
                    data_in: Some(frame),
                    data_out: Some(&mut out),
                    repeat,
                    ..Default::default()
                })
                .with_context(|| format!("BPF_PROG_TEST_RUN of {name}"))?;
            Ok((r.return_value, r.duration.as_nanos() as f64))
        })();
        self.out = out;
        result
    }

    /// Runs the egress (TC) program on `frame`: (action, ns per run).
    pub fn run_egress(&mut self, frame: &[u8], repeat: u32) -> Result<(u32, f64)> {
        let mut out = std::mem::take(&mut self.out);
        let result = (|| {
            let prog: &SchedClassifier = self
                .ebpf
                .program(program_names::EGRESS)
                .context("egress program missing")?
                .try_into()?;
            let r = prog
                .test_run(TestRunOptions {
                    data_in: Some(frame),
                    data_out: Some(&mut out),
                    repeat,
                    ..Default::default()
                })
                .context("BPF_PROG_TEST_RUN of the egress program")?;
            Ok((r.return_value, r.duration.as_nanos() as f64))
        })();
        self.out = out;
        result
    }

    /// The frame the last run left (a rewritten one, for instance).
    pub fn last_out(&self, len: usize) -> &[u8] {
        &self.out[..len.min(self.out.len())]
    }

    /// Runs the ingress program once and checks its action.
    fn ingress_expect(&mut self, frame: &[u8], want: u32, what: &str) -> Result<f64> {
        let (action, ns) = self.run_xdp(program_names::INGRESS, frame, 1)?;
        ensure!(
            action == want,
            "{what}: ftpct_ingress returned {action}, expected {want}"
        );
        Ok(ns)
    }

    fn flows(&mut self) -> Result<HashMap<&mut MapData, FlowKey, FlowValue>> {
        Ok(HashMap::try_from(
            self.ebpf
                .map_mut(map_names::FLOWS)
                .context("flow map missing")?,
        )?)
    }

    fn expectations(&mut self) -> Result<HashMap<&mut MapData, ExpectKey, ExpectValue>> {
        Ok(HashMap::try_from(
            self.ebpf
                .map_mut(map_names::EXPECTATIONS)
                .context("expectation map missing")?,
        )?)
    }
}

fn addr16(a: Ipv4Addr) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&a.octets());
    out
}

/// Flow-table key of a packet arriving from `src:sport` at `dst:dport`.
fn flow_key(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> FlowKey {
    FlowKey {
        family: family::V4,
        sport,
        dport,
        src: addr16(src),
        dst: addr16(dst),
        ..Default::default()
    }
}

/// A control connection CLIENT:cport ↔ SERVER:21 whose server is local:
/// commands arrive on ingress, replies leave through egress. Keeps both
/// directions' sequence numbers so every segment carries new bytes.
struct Control {
    cport: u16,
    c2s: u32,
    s2c: u32,
}

impl Control {
    /// Opens it with the server's banner (which creates the control state).
    fn open(l: &mut Loaded, cport: u16) -> Result<Self> {
        let mut c = Self {
            cport,
            c2s: 100,
            s2c: 1,
        };
        let banner = c.reply(b"220 ready\r\n");
        l.run_egress(&banner, 1)?;
        Ok(c)
    }

    /// The next client → server segment carrying `text`.
    fn command(&mut self, text: &[u8]) -> Vec<u8> {
        let f = Segment::new(CLIENT, self.cport, SERVER, 21)
            .seq(self.c2s)
            .ack(self.s2c)
            .payload(text)
            .frame();
        self.c2s = self.c2s.wrapping_add(text.len() as u32);
        f
    }

    /// The next server → client segment carrying `text`.
    fn reply(&mut self, text: &[u8]) -> Vec<u8> {
        let f = Segment::new(SERVER, 21, CLIENT, self.cport)
            .seq(self.s2c)
            .ack(self.c2s)
            .payload(text)
            .frame();
        self.s2c = self.s2c.wrapping_add(text.len() as u32);
        f
    }
}

/// The PASV → 227 → SYN cycle: each pass times the 227 reply on egress and
/// the data connection's SYN that consumes the expectation it created.
struct PasvCycle {
    ctrl: Control,
    next_sport: u16,
}

impl PasvCycle {
    fn new(l: &mut Loaded) -> Result<Self> {
        Ok(Self {
            ctrl: Control::open(l, PASV_CTRL_PORT)?,
            next_sport: 20_000,
        })
    }

    /// One cycle: (ns of the 227 segment, ns of the admitted SYN).
    fn run(&mut self, l: &mut Loaded) -> Result<(f64, f64)> {
        let pasv = self.ctrl.command(b"PASV\r\n");
        l.ingress_expect(&pasv, XDP_PASS, "PASV command")?;
        let reply = self.ctrl.reply(&frames::reply_227(SERVER, PASV_DATA_PORT));
        let (_, reply_ns) = l.run_egress(&reply, 1)?;
        let sport = self.next_sport;
        self.next_sport = if sport >= 60_000 { 20_000 } else { sport + 1 };
        let syn = Segment::new(CLIENT, sport, SERVER, PASV_DATA_PORT)
            .flags(SYN)
            .frame();
        let syn_ns = l
            .ingress_expect(&syn, XDP_PASS, "SYN matching the 227's expectation")
            .context("the 227 reply created no expectation")?;
        // Keep the flow table as it was (untimed).
        let key = flow_key(CLIENT, sport, SERVER, PASV_DATA_PORT);
        l.flows()?
            .remove(&key)
            .context("removing the admitted flow")?;
        Ok((reply_ns, syn_ns))
    }
}

/// The PORT → 200 cycle: times the PORT command on ingress.
struct PortCycle {
    ctrl: Control,
}

impl PortCycle {
    fn new(l: &mut Loaded) -> Result<Self> {
        Ok(Self {
            ctrl: Control::open(l, PORT_CTRL_PORT)?,
        })
    }

    fn run(&mut self, l: &mut Loaded) -> Result<f64> {
        let port = self.ctrl.command(&frames::port_command(CLIENT, 45_000));
        let ns = l.ingress_expect(&port, XDP_PASS, "PORT command")?;
        let ok = self.ctrl.reply(b"200 PORT command successful.\r\n");
        l.run_egress(&ok, 1)?;
        Ok(ns)
    }
}

/// Frames of the steady classes.
struct SteadyFrames {
    syn_guarded: Vec<u8>,
    arp: Vec<u8>,
    udp: Vec<u8>,
    tcp_open: Vec<u8>,
    flow_ack: Vec<u8>,
    other_flow_ack: Vec<u8>,
    egress_plain: Vec<u8>,
}

impl SteadyFrames {
    fn new() -> Self {
        Self {
            syn_guarded: Segment::new(INTRUDER, 40_001, SERVER, 40_000)
                .flags(SYN)
                .frame(),
            arp: frames::arp(INTRUDER, SERVER),
            udp: frames::udp(INTRUDER, 40_002, SERVER, 53),
            tcp_open: Segment::new(INTRUDER, 40_003, SERVER, 443)
                .flags(ACK)
                .frame(),
            flow_ack: Segment::new(CLIENT, FLOW_CLIENT_PORT, SERVER, FLOW_DATA_PORT)
                .flags(ACK)
                .frame(),
            other_flow_ack: Segment::new(CLIENT, OTHER_FLOW.1, SERVER, OTHER_FLOW.0)
                .flags(ACK)
                .frame(),
            egress_plain: Segment::new(SERVER, 443, INTRUDER, 40_003)
                .flags(ACK)
                .payload(&[0x17; 100])
                .frame(),
        }
    }
}

/// Creates a tracked flow from `CLIENT`:`client_port` to `data_port`
/// through the programs' own path (PASV on control connection
/// `ctrl_port`, 227, SYN).
fn create_tracked_flow(
    l: &mut Loaded,
    ctrl_port: u16,
    data_port: u16,
    client_port: u16,
) -> Result<()> {
    let mut ctrl = Control::open(l, ctrl_port)?;
    let pasv = ctrl.command(b"PASV\r\n");
    l.ingress_expect(&pasv, XDP_PASS, "PASV")?;
    let reply = ctrl.reply(&frames::reply_227(SERVER, data_port));
    l.run_egress(&reply, 1)?;
    let syn = Segment::new(CLIENT, client_port, SERVER, data_port)
        .flags(SYN)
        .frame();
    l.ingress_expect(&syn, XDP_PASS, "SYN of the tracked flow")?;
    // The local end's SYN-ACK and first ACK open the flow: one still in its
    // handshake lives only the closing timeout (10 s), shorter than the phase.
    for flags in [SYN | ACK, ACK] {
        let local = Segment::new(SERVER, data_port, CLIENT, client_port)
            .flags(flags)
            .frame();
        l.run_egress(&local, 1)?;
    }
    Ok(())
}

/// Results of the in-kernel phase.
pub struct KernelResults {
    pub classes: Vec<Class>,
    pub params: Params,
    /// Kernel memory of every map at the default sizes.
    pub default_memory: Vec<MapMemory>,
    /// Hottest symbols while `BPF_PROG_TEST_RUN` repeats a class.
    pub profiles: Vec<(&'static str, Vec<(f64, String)>)>,
    pub seconds: f64,
}

impl KernelResults {
    pub fn get(&self, id: &str) -> Option<&Class> {
        self.classes.iter().find(|c| c.id == id)
    }

    /// Per-round ratio of class `a` to class `b`.
    pub fn ratio(&self, a: &str, b: &str) -> Summary {
        match (self.get(a), self.get(b)) {
            (Some(a), Some(b)) => Summary::of(&stats::ratios(&a.rounds, &b.rounds)),
            _ => Summary::default(),
        }
    }
}

/// A steady class: id, label, program, frame, expected action.
type SteadyClass<'f> = (
    &'static str,
    &'static str,
    &'static str,
    &'f Vec<u8>,
    Option<u32>,
);

/// The address `--nat-rewrite` names in the rewriting instance's 227s.
const EXTERNAL: &str = "198.19.0.10";

/// A `227` sent once on a fresh control connection of `l`; the frame, to
/// be sent again as its retransmission.
fn sent_227(l: &mut Loaded, cport: u16) -> Result<Vec<u8>> {
    let mut ctrl = Control::open(l, cport)?;
    let pasv = ctrl.command(b"PASV\r\n");
    l.ingress_expect(&pasv, XDP_PASS, "PASV")?;
    let reply = ctrl.reply(&frames::reply_227(SERVER, PASV_DATA_PORT + 1));
    l.run_egress(&reply, 1)?;
    Ok(reply)
}

/// The host (SERVER) as a client of REMOTE behind the NAT: a control
/// connection through the handshake and greeting, then a `PORT` naming the
/// host (rewritten one byte longer by the rewriting instance) and its
/// `200`. Returns frames to repeat: the `PORT` again (a retransmission),
/// a later command the host sends, and an acknowledgment from REMOTE of
/// the stream past the `PORT` (moved, where rewritten).
fn moved_stream(l: &mut Loaded, cport: u16) -> Result<[Vec<u8>; 3]> {
    const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 9);
    let out = |seq: u32, ack: u32, flags: u8, text: &[u8]| {
        Segment::new(SERVER, cport, REMOTE, 21)
            .seq(seq)
            .ack(ack)
            .flags(flags)
            .payload(text)
            .frame()
    };
    let inbound = |seq: u32, ack: u32, flags: u8, text: &[u8]| {
        Segment::new(REMOTE, 21, SERVER, cport)
            .seq(seq)
            .ack(ack)
            .flags(flags)
            .payload(text)
            .frame()
    };
    l.run_egress(&out(99, 0, SYN, b""), 1)?;
    l.ingress_expect(&inbound(0, 100, SYN | ACK, b""), XDP_PASS, "SYN-ACK")?;
    l.run_egress(&out(100, 1, ACK, b""), 1)?;
    l.ingress_expect(&inbound(1, 100, ACK, b"220 ready\r\n"), XDP_PASS, "220")?;
    let port = frames::port_command(SERVER, PASV_DATA_PORT + 2);
    let port_seg = out(100, 12, ACK, &port);
    l.run_egress(&port_seg, 1)?;
    let after_port = 100 + port.len() as u32;
    // REMOTE acknowledges what it received: one byte more where rewritten.
    let moved = u32::from(l.rewrites);
    let ok = inbound(
        12,
        after_port + moved,
        ACK,
        b"200 PORT command successful.\r\n",
    );
    l.ingress_expect(&ok, XDP_PASS, "200")?;
    let next = out(after_port, 12 + 30, ACK, b"NOOP\r\n");
    l.run_egress(&next, 1)?;
    let ack = inbound(42, after_port + 6 + moved, ACK, b"");
    Ok([port_seg, next, ack])
}

/// Measures every class, rounds interleaved (all classes once per round).
pub fn run(params: Params) -> Result<KernelResults> {
    let start = Instant::now();
    let mut l = Loaded::load(&AttachConfig::with_defaults("lo"))?;
    // A second instance with `--external-address EXTERNAL --nat-rewrite`.
    let mut rewrite_cfg = AttachConfig::with_defaults("lo");
    rewrite_cfg.external = ftp_userspace::external::parse(&[EXTERNAL.to_string()])?;
    rewrite_cfg.nat_rewrite = true;
    let mut lr = Loaded::load(&rewrite_cfg)?;
    let f = SteadyFrames::new();
    create_tracked_flow(
        &mut l,
        PASV_CTRL_PORT + 10,
        FLOW_DATA_PORT,
        FLOW_CLIENT_PORT,
    )?;
    create_tracked_flow(&mut l, PASV_CTRL_PORT + 11, OTHER_FLOW.0, OTHER_FLOW.1)?;
    let mut pasv = PasvCycle::new(&mut l)?;
    let mut pasv_rewritten = PasvCycle::new(&mut lr)?;
    let mut port = PortCycle::new(&mut l)?;
    // Retransmissions of a 227: skipped by the parser in both instances,
    // and written again by the rewriting one.
    let retx_plain = sent_227(&mut l, PASV_CTRL_PORT + 20)?;
    let retx_rewritten = sent_227(&mut lr, PASV_CTRL_PORT + 20)?;
    let moved_plain = moved_stream(&mut l, PASV_CTRL_PORT + 30)?;
    let moved_rewritten = moved_stream(&mut lr, PASV_CTRL_PORT + 30)?;
    let port_seg = &moved_rewritten[0];
    lr.run_egress(port_seg, 1)?;
    ensure!(
        lr.last_out(port_seg.len() + 1)
            .ends_with(b"PORT 198,19,0,10,157,10\r\n"),
        "the rewriting instance must resize the retransmitted PORT"
    );
    lr.run_egress(&retx_rewritten, 1)?;
    ensure!(
        lr.last_out(retx_rewritten.len()) != &retx_rewritten[..]
            && l.run_egress(&retx_plain, 1).is_ok()
            && l.last_out(retx_plain.len()) == &retx_plain[..],
        "the rewriting instance must rewrite the retransmitted 227, the other must not"
    );

    use Method::{Single, Steady};
    use program_names::{BENCH_PASS, BENCH_SYN_FLOOR, EGRESS, INGRESS};
    // (id, label, program, frame, expected action)
    let steady: Vec<SteadyClass> = vec![
        (
            "ref_pass",
            "reference: bench_xdp_pass (any frame)",
            BENCH_PASS,
            &f.syn_guarded,
            Some(XDP_PASS),
        ),
        (
            "ref_floor",
            "reference: bench_syn_floor, SYN to a guarded port (dropped)",
            BENCH_SYN_FLOOR,
            &f.syn_guarded,
            Some(XDP_DROP),
        ),
        (
            "non_ip",
            "non-IP frame (ARP)",
            INGRESS,
            &f.arp,
            Some(XDP_PASS),
        ),
        ("udp", "UDP datagram", INGRESS, &f.udp, Some(XDP_PASS)),
        (
            "tcp_open",
            "TCP to a non-guarded port (443)",
            INGRESS,
            &f.tcp_open,
            Some(XDP_PASS),
        ),
        (
            "syn_drop",
            "SYN to a guarded port, no expectation (dropped)",
            INGRESS,
            &f.syn_guarded,
            Some(XDP_DROP),
        ),
        (
            "flow",
            "packet of a tracked data flow (ACK; repeated, so the flow memo answers)",
            INGRESS,
            &f.flow_ack,
            Some(XDP_PASS),
        ),
        (
            "egress_plain",
            "egress: non-control segment",
            EGRESS,
            &f.egress_plain,
            None,
        ),
    ];
    let mut classes: Vec<Class> = steady
        .iter()
        .map(|(id, label, prog, _, _)| Class::new(id, label, prog, Steady))
        .collect();
    for (id, label, prog) in [
        ("ref_pass_1", "reference: bench_xdp_pass", BENCH_PASS),
        (
            "ref_floor_1",
            "reference: bench_syn_floor, SYN (dropped)",
            BENCH_SYN_FLOOR,
        ),
        (
            "syn_drop_1",
            "SYN to a guarded port, no expectation (dropped)",
            INGRESS,
        ),
        ("egress_plain_1", "egress: non-control segment", EGRESS),
        (
            "flow_1",
            "packet of a tracked data flow, the same flow's before it (flow memo hit)",
            INGRESS,
        ),
        (
            "flow_miss_1",
            "packet of a tracked data flow, another flow's before it (flow memo miss: table lookup)",
            INGRESS,
        ),
        (
            "syn_admit",
            "SYN with a matching expectation (admitted, consumes it)",
            INGRESS,
        ),
        (
            "reply_227",
            "control segment carrying a 227 reply (egress, creates an expectation)",
            EGRESS,
        ),
        (
            "port_cmd",
            "control segment carrying a PORT command (ingress)",
            INGRESS,
        ),
        (
            "reply_227_rewritten",
            "control segment carrying a 227 reply, rewritten (--nat-rewrite)",
            EGRESS,
        ),
        // Single runs: a repeated run sees the frame as the last one left
        // it, which for a resized segment is another segment.
        (
            "retx_port",
            "retransmitted PORT (egress, local client)",
            EGRESS,
        ),
        (
            "retx_port_rewritten",
            "retransmitted PORT, rewritten a byte longer (--nat-rewrite)",
            EGRESS,
        ),
    ] {
        classes.push(Class::new(id, label, prog, Single));
    }
    let retx_first = classes.len();
    for (id, label, prog) in [
        (
            "retx_227",
            "retransmitted 227 (skipped by the parser)",
            EGRESS,
        ),
        (
            "retx_227_rewritten",
            "retransmitted 227, rewritten again (--nat-rewrite)",
            EGRESS,
        ),
        (
            "ctrl_out",
            "later control segment of a local client (egress)",
            EGRESS,
        ),
        (
            "ctrl_out_moved",
            "later control segment, sequence number moved (--nat-rewrite)",
            EGRESS,
        ),
        (
            "ctrl_ack",
            "acknowledgment from the remote server (ingress)",
            INGRESS,
        ),
        (
            "ctrl_ack_moved",
            "acknowledgment moved back (--nat-rewrite)",
            INGRESS,
        ),
    ] {
        classes.push(Class::new(id, label, prog, Steady));
    }

    for round in 0..params.rounds {
        for (i, (id, _, prog, frame, want)) in steady.iter().enumerate() {
            let (action, ns) = if *prog == EGRESS {
                l.run_egress(frame, params.repeat)?
            } else {
                l.run_xdp(prog, frame, params.repeat)?
            };
            if let Some(want) = want {
                ensure!(
                    action == *want,
                    "{id}: {prog} returned {action}, expected {want} (round {round})"
                );
            }
            classes[i].rounds.push(ns);
        }
        // Single runs, interleaved run by run.
        let mut samples: Vec<Vec<f64>> = (0..12)
            .map(|_| Vec::with_capacity(params.singles))
            .collect();
        for _ in 0..params.singles {
            samples[0].push(l.run_xdp(BENCH_PASS, &f.syn_guarded, 1)?.1);
            samples[1].push(l.run_xdp(BENCH_SYN_FLOOR, &f.syn_guarded, 1)?.1);
            samples[2].push(l.ingress_expect(
                &f.syn_guarded,
                XDP_DROP,
                "SYN without expectation",
            )?);
            samples[3].push(l.run_egress(&f.egress_plain, 1)?.1);
            samples[4].push(l.ingress_expect(&f.flow_ack, XDP_PASS, "flow packet")?);
            l.ingress_expect(&f.other_flow_ack, XDP_PASS, "other flow's packet")?;
            samples[5].push(l.ingress_expect(&f.flow_ack, XDP_PASS, "flow packet")?);
            let (reply_ns, syn_ns) = pasv.run(&mut l)?;
            samples[6].push(syn_ns);
            samples[7].push(reply_ns);
            samples[8].push(port.run(&mut l)?);
            samples[9].push(pasv_rewritten.run(&mut lr)?.0);
            samples[10].push(l.run_egress(&moved_plain[0], 1)?.1);
            samples[11].push(lr.run_egress(&moved_rewritten[0], 1)?.1);
        }
        for (k, s) in samples.iter().enumerate() {
            classes[steady.len() + k].rounds.push(stats::median(s));
        }
        let (_, ns) = l.run_egress(&retx_plain, params.repeat)?;
        classes[retx_first].rounds.push(ns);
        let (_, ns) = lr.run_egress(&retx_rewritten, params.repeat)?;
        classes[retx_first + 1].rounds.push(ns);
        // The moved stream: each frame on the plain and the rewriting
        // instance, in turn.
        for (k, frame_idx) in [1usize, 2].into_iter().enumerate() {
            for (j, loaded) in [&mut l, &mut lr].into_iter().enumerate() {
                let frames = if j == 0 {
                    &moved_plain
                } else {
                    &moved_rewritten
                };
                let frame = &frames[frame_idx];
                let ns = if frame_idx == 2 {
                    loaded.run_xdp(INGRESS, frame, params.repeat)?.1
                } else {
                    loaded.run_egress(frame, params.repeat)?.1
                };
                classes[retx_first + 2 + 2 * k + j].rounds.push(ns);
            }
        }
    }
    let mut profiles = Vec::new();
    if params.profile && sys::perf_available() {
        for (id, frame) in [
            ("non_ip", &f.arp),
            ("syn_drop", &f.syn_guarded),
            ("flow", &f.flow_ack),
        ] {
            let ns = classes
                .iter()
                .find(|c| c.id == id)
                .map_or(100.0, |c| c.summary().median);
            profiles.push((id, profile_ingress(&mut l, frame, ns)?));
        }
    }
    Ok(KernelResults {
        classes,
        params,
        default_memory: map_memory(&l.ebpf)?,
        profiles,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Profiles this thread with `perf record` while the ingress program runs
/// `frame` for about a second and a half (`ns` per run).
fn profile_ingress(l: &mut Loaded, frame: &[u8], ns: f64) -> Result<Vec<(f64, String)>> {
    let dir = tempfile::Builder::new().prefix("ftpct-bench-").tempdir()?;
    let data = dir.path().join("perf.data");
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() }.to_string();
    let mut cmd = std::process::Command::new("perf");
    cmd.args(["record", "-q", "-o"])
        .arg(&data)
        .args(["-t", &tid, "--", "sleep", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut perf = ChildGuard::spawn(cmd)?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let repeat = (1.5e9 / ns.max(1.0)).clamp(1e5, 1e8) as u32;
    l.run_xdp(program_names::INGRESS, frame, repeat)?;
    perf.wait_timeout(std::time::Duration::from_secs(10))?;
    Ok(sys::perf_top(&data, 10))
}

/// One table fill level of the scale test.
pub struct Level {
    pub entries: u32,
    loaded: Loaded,
    pasv: PasvCycle,
    /// Frames of packets of tracked (filled-in) flows.
    flow_frames: Vec<Vec<u8>>,
    /// SYNs that match neither table.
    syn_frames: Vec<Vec<u8>>,
    pub fill_seconds: f64,
}

/// Address `i` of 198.18.0.0/15.
fn lab_addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + (i % 131_072))
}

/// Filler entry `i`: an expectation for (addr i, SERVER, port 1024 + i/2^17)
/// and a flow (addr i : 1024 + i/2^17 → SERVER:39000), neither of which any
/// measured packet matches.
fn filler(i: u32, expires: u64, now: u64) -> (ExpectKey, ExpectValue, FlowKey, FlowValue) {
    let port = 1024 + (i / 131_072) as u16;
    let src = lab_addr(i);
    let ek = ExpectKey {
        family: family::V4,
        dport: port,
        src: addr16(src),
        dst: addr16(SERVER),
        ..Default::default()
    };
    let ev = ExpectValue {
        expires_ns: expires,
        kind: expect_kind::PASV,
        ..Default::default()
    };
    let fk = flow_key(src, port, SERVER, 39_000);
    let fv = FlowValue {
        last_seen_ns: now,
        origin: flow_origin::ADMITTED,
        ..Default::default()
    };
    (ek, ev, fk, fv)
}

/// How long filler expectations live: longer than any phase runs.
const FILL_LIFETIME_NS: u64 = 3_600_000_000_000;

/// Fills `map` with the expectations of filler entries `0..n`, live for
/// an hour from `now`.
pub fn fill_expectations<T: BorrowMut<MapData>>(
    map: &mut HashMap<T, ExpectKey, ExpectValue>,
    n: u32,
    now: u64,
) -> Result<()> {
    for i in 0..n {
        let (ek, ev, _, _) = filler(i, now + FILL_LIFETIME_NS, now);
        map.insert(ek, ev, 0)
            .context("filling the expectation table")?;
    }
    Ok(())
}

/// Fills `map` with the admitted flows of filler entries `0..n`, last seen
/// at `now`, and checks a sample of them is still there (an LRU table may
/// evict before it is full).
pub fn fill_flows<T: BorrowMut<MapData>>(
    map: &mut HashMap<T, FlowKey, FlowValue>,
    n: u32,
    now: u64,
) -> Result<()> {
    for i in 0..n {
        let (_, _, fk, fv) = filler(i, now, now);
        map.insert(fk, fv, 0).context("filling the flow table")?;
    }
    for i in (0..n).step_by(997) {
        let (_, _, fk, _) = filler(i, now, now);
        ensure!(
            map.get(&fk, 0).is_ok(),
            "flow {i} of {n} was evicted while filling"
        );
    }
    Ok(())
}

/// Single runs per round and level of the random-key classes.
pub const RANDOM_RUNS: usize = 3_000;

/// Distinct flows (and SYNs) measured per level, spread over the table.
pub const SCALE_PROBES: u32 = 8;

impl Level {
    /// Loads the programs with tables of [`SCALE_CAPACITY`] and fills both
    /// with `entries` live entries.
    pub fn new(entries: u32) -> Result<Self> {
        let mut cfg = AttachConfig::with_defaults("lo");
        cfg.max_expectations = SCALE_CAPACITY;
        cfg.max_flows = SCALE_CAPACITY;
        let mut loaded = Loaded::load(&cfg)?;
        let start = Instant::now();
        let now = monotonic_ns();
        let expires = now + FILL_LIFETIME_NS;
        fill_expectations(&mut loaded.expectations()?, entries, now)?;
        fill_flows(&mut loaded.flows()?, entries, now)?;
        let fill_seconds = start.elapsed().as_secs_f64();
        let flow_frames = (0..SCALE_PROBES)
            .map(|k| {
                let i = (u64::from(entries) * u64::from(k) / u64::from(SCALE_PROBES)) as u32;
                let (_, _, fk, _) = filler(i, expires, now);
                let src = Ipv4Addr::from(<[u8; 4]>::try_from(&fk.src[..4]).unwrap_or_default());
                Segment::new(src, fk.sport, SERVER, fk.dport)
                    .flags(ACK)
                    .frame()
            })
            .collect();
        let syn_frames = (0..SCALE_PROBES)
            .map(|k| {
                Segment::new(lab_addr(k * 9_973 + 17), 2_000 + k as u16, SERVER, 45_000)
                    .flags(SYN)
                    .frame()
            })
            .collect();
        let pasv = PasvCycle::new(&mut loaded)?;
        Ok(Self {
            entries,
            loaded,
            pasv,
            flow_frames,
            syn_frames,
            fill_seconds,
        })
    }

    /// Mean ns of `frames` through the ingress program (steady method).
    fn steady(&mut self, which: Probe, repeat: u32, want: u32) -> Result<f64> {
        let frames = match which {
            Probe::Flow => self.flow_frames.clone(),
            Probe::Syn => self.syn_frames.clone(),
        };
        let per = (repeat / SCALE_PROBES).max(1);
        let mut total = 0.0;
        for frame in &frames {
            let (action, ns) = self.loaded.run_xdp(program_names::INGRESS, frame, per)?;
            ensure!(
                action == want,
                "scale {}: ingress returned {action}, expected {want}",
                self.entries
            );
            total += ns;
        }
        Ok(total / frames.len() as f64)
    }

    /// Median ns of `runs` single runs, each on a different packet picked at
    /// random: a SYN from a random source to a random guarded port (no entry
    /// matches), or a packet of a random live flow of the table.
    fn random(&mut self, which: Probe, runs: usize, rng: &mut Rng, now: u64) -> Result<f64> {
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let r = rng.next();
            let (frame, want) = match which {
                Probe::Syn => {
                    let src = lab_addr((r >> 8) as u32);
                    let sport = 1024 + (r >> 40) as u16 % 60_000;
                    // 40000 and up: no filler expectation (1024–1031) or
                    // flow (39000) has such a port.
                    let dport = 40_000 + (r >> 24) as u16 % 25_000;
                    let f = Segment::new(src, sport, SERVER, dport).flags(SYN).frame();
                    (f, XDP_DROP)
                }
                Probe::Flow => {
                    let i = (r % u64::from(self.entries)) as u32;
                    let (_, _, fk, _) = filler(i, 0, now);
                    let src = Ipv4Addr::from(<[u8; 4]>::try_from(&fk.src[..4]).unwrap_or_default());
                    let f = Segment::new(src, fk.sport, SERVER, fk.dport)
                        .flags(ACK)
                        .frame();
                    (f, XDP_PASS)
                }
            };
            let (action, ns) = self.loaded.run_xdp(program_names::INGRESS, &frame, 1)?;
            ensure!(
                action == want,
                "scale {} (random): ingress returned {action}, expected {want}",
                self.entries
            );
            samples.push(ns);
        }
        Ok(stats::median(&samples))
    }
}

/// xorshift64* (deterministic, good enough to scatter keys over a table).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[derive(Clone, Copy)]
enum Probe {
    Flow,
    Syn,
}

/// Results of the scale test: per level, per class, one value per round.
pub struct ScaleResults {
    pub levels: Vec<u32>,
    /// (class id, label, per-level rounds)
    pub classes: Vec<(&'static str, &'static str, Vec<Vec<f64>>)>,
    pub fill_seconds: Vec<f64>,
    pub seconds: f64,
}

impl ScaleResults {
    /// Per-round ratio of the last level to the first for class `id`.
    pub fn growth(&self, id: &str) -> Summary {
        self.classes
            .iter()
            .find(|c| c.0 == id)
            .map(|c| Summary::of(&stats::ratios(&c.2[c.2.len() - 1], &c.2[0])))
            .unwrap_or_default()
    }
}

/// The scale test: levels loaded side by side, rounds interleaved.
pub fn scale(levels: &[u32], params: Params) -> Result<ScaleResults> {
    let start = Instant::now();
    let mut loaded = Vec::new();
    for &n in levels {
        loaded.push(Level::new(n).with_context(|| format!("preparing {n} entries"))?);
    }
    let ids: [(&str, &str); 5] = [
        (
            "syn_drop",
            "SYN to a guarded port, no expectation (dropped) — steady",
        ),
        ("flow", "packet of a tracked data flow — steady"),
        (
            "syn_admit",
            "SYN with a matching expectation (admitted) — single",
        ),
        (
            "syn_drop_random",
            "SYN from a random source to a random guarded port (dropped) — single, new key each run",
        ),
        (
            "flow_random",
            "packet of a random tracked flow — single, new key each run",
        ),
    ];
    let mut classes: Vec<(&str, &str, Vec<Vec<f64>>)> = ids
        .iter()
        .map(|(id, label)| (*id, *label, vec![Vec::new(); levels.len()]))
        .collect();
    let singles = (params.singles / 2).max(50);
    let mut rng = Rng::new(0x5ca1e);
    let now = monotonic_ns();
    for _ in 0..params.rounds {
        for (li, level) in loaded.iter_mut().enumerate() {
            classes[0].2[li].push(level.steady(Probe::Syn, params.repeat, XDP_DROP)?);
            classes[1].2[li].push(level.steady(Probe::Flow, params.repeat, XDP_PASS)?);
            let mut s = Vec::with_capacity(singles);
            for _ in 0..singles {
                s.push(level.pasv.run(&mut level.loaded)?.1);
            }
            classes[2].2[li].push(stats::median(&s));
            classes[3].2[li].push(level.random(Probe::Syn, RANDOM_RUNS, &mut rng, now)?);
            classes[4].2[li].push(level.random(Probe::Flow, RANDOM_RUNS, &mut rng, now)?);
        }
    }
    let fill_seconds = loaded.iter().map(|l| l.fill_seconds).collect();
    Ok(ScaleResults {
        levels: levels.to_vec(),
        classes,
        fill_seconds,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Kernel accounting of one map, from `/proc/self/fdinfo`.
#[derive(Clone, Debug)]
pub struct MapMemory {
    pub name: String,
    pub map_type: u32,
    pub key_size: u64,
    pub value_size: u64,
    pub max_entries: u64,
    pub memlock: u64,
}

impl MapMemory {
    pub fn per_entry(&self) -> f64 {
        self.memlock as f64 / self.max_entries.max(1) as f64
    }

    pub fn type_name(&self) -> &'static str {
        match self.map_type {
            1 => "hash",
            2 => "array",
            6 => "percpu_array",
            9 => "lru_hash",
            5 => "percpu_hash",
            27 => "ringbuf",
            _ => "other",
        }
    }
}

fn map_data(map: &Map) -> Option<&MapData> {
    match map {
        Map::Array(m)
        | Map::HashMap(m)
        | Map::LruHashMap(m)
        | Map::PerCpuArray(m)
        | Map::PerCpuHashMap(m)
        | Map::PerCpuLruHashMap(m)
        | Map::RingBuf(m)
        | Map::PerfEventArray(m)
        | Map::ProgramArray(m) => Some(m),
        _ => None,
    }
}

/// Kernel memory accounting of every map of `ebpf` (as `bpftool map show`
/// reports it as `memlock`).
pub fn map_memory(ebpf: &Ebpf) -> Result<Vec<MapMemory>> {
    use std::os::fd::{AsFd, AsRawFd};
    let mut out = Vec::new();
    for (name, map) in ebpf.maps() {
        let Some(data) = map_data(map) else {
            continue;
        };
        let fd = data.fd().as_fd().as_raw_fd();
        let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
            .with_context(|| format!("fdinfo of map {name}"))?;
        let field = |key: &str| -> Result<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{key} missing from fdinfo of {name}: {text}"))
        };
        out.push(MapMemory {
            name: name.to_string(),
            map_type: field("map_type:")? as u32,
            key_size: field("key_size:")?,
            value_size: field("value_size:")?,
            max_entries: field("max_entries:")?,
            memlock: field("memlock:")?,
        });
    }
    out.sort_by_key(|m| std::cmp::Reverse(m.memlock));
    Ok(out)
}

/// The flow and expectation tables sized for one million entries.
pub struct MemoryResults {
    pub million_flows: MapMemory,
    pub million_expectations: MapMemory,
}

pub fn memory() -> Result<MemoryResults> {
    let mut cfg = AttachConfig::with_defaults("lo");
    cfg.max_flows = 1_000_000;
    cfg.max_expectations = 1_000_000;
    let l = Loaded::load(&cfg)?;
    let maps = map_memory(&l.ebpf)?;
    let find = |name: &str| -> Result<MapMemory> {
        match maps.iter().find(|m| m.name == name) {
            Some(m) => Ok(m.clone()),
            None => bail!("map {name} missing"),
        }
    };
    Ok(MemoryResults {
        million_flows: find(map_names::FLOWS)?,
        million_expectations: find(map_names::EXPECTATIONS)?,
    })
}
