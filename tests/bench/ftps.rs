//! What FTPS inspection costs the server (issue #11): the probes on every
//! TLS read and write of the host, and a control-heavy FTPS session.
//!
//! - **TLS calls**: one Python thread holds a client and a server TLS
//!   object joined by memory BIOs and sends 8-byte round trips through them
//!   (each: two `SSL_write_ex`, two `SSL_read_ex`); nanoseconds per round
//!   trip without ftpct and with ftpct attached (its uprobes sit on the
//!   same libssl, which the vsftpd in the lab maps). No socket is involved,
//!   so this is the price every TLS call on the host pays for the probes
//!   and their map updates (the TCP read tracepoint fires per socket read,
//!   not per call).
//! - **Session**: vsftpd requiring TLS, ftplib doing N × (`PASV` + `LIST`)
//!   on one session, without ftpct and with ftpct inspecting every line.
//!
//! Rounds alternate the two variants (and their order, to cancel drift);
//! ratios are taken within a round.

use std::time::Instant;

use anyhow::{Context, Result};
use ftpct_e2e::clients::python::{ftplib_list_rounds, tls_round_trip_ns};
use ftpct_e2e::servers::{FtpServer, self_signed_cert};
use ftpct_e2e::{Counter, Family, Lab, SERVER, ServerOptions, Tls, Vsftpd};

use crate::stats::{self, Summary};

/// Rounds and sizes.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub rounds: usize,
    /// TLS round trips per measurement.
    pub calls: u32,
    /// `PASV` + `LIST` per session.
    pub lists: u32,
}

/// What the phase measured, per round.
pub struct FtpsResults {
    pub params: Params,
    /// Nanoseconds per TLS call (a quarter of a round trip), without ftpct.
    pub call_ns_plain: Vec<f64>,
    /// The same with ftpct's probes attached.
    pub call_ns_probed: Vec<f64>,
    /// Seconds for the session's rounds, without ftpct.
    pub session_plain: Vec<f64>,
    /// The same with ftpct inspecting the session.
    pub session_ftpct: Vec<f64>,
    /// Plaintext calls ftpct parsed in its last round (evidence that it
    /// inspected the session).
    pub parsed_calls: u64,
    /// Of what the probes add per TLS call, the run time of ftpct's
    /// programs (`kernel.bpf_stats_enabled` during one extra measurement);
    /// the rest is the kernel's uprobe machinery.
    pub bpf_ns_per_call: Option<f64>,
    pub seconds: f64,
}

impl FtpsResults {
    /// Nanoseconds the probes add per TLS call, round by round.
    pub fn added_ns(&self) -> Summary {
        let added: Vec<f64> = self
            .call_ns_probed
            .iter()
            .zip(&self.call_ns_plain)
            .map(|(p, b)| p - b)
            .collect();
        Summary::of(&added)
    }

    /// Session time with ftpct over without, round by round.
    pub fn session_ratio(&self) -> Summary {
        Summary::of(&stats::ratios(&self.session_ftpct, &self.session_plain))
    }
}

/// Runs the phase.
pub fn run(p: Params) -> Result<FtpsResults> {
    let started = Instant::now();
    let lab = Lab::new()?;
    let server = Vsftpd::start_with(lab.server(), ServerOptions::ftps(Tls::Explicit))?;
    let target = server.target(SERVER.ip(Family::V4));
    let certs = tempfile::tempdir().context("temp dir for the benchmark's certificate")?;
    let (cert, key) = self_signed_cert(certs.path())?;
    let mut res = FtpsResults {
        params: p,
        call_ns_plain: Vec::new(),
        call_ns_probed: Vec::new(),
        session_plain: Vec::new(),
        session_ftpct: Vec::new(),
        parsed_calls: 0,
        bpf_ns_per_call: None,
        seconds: 0.0,
    };
    let ns = lab.server();
    for round in 0..p.rounds {
        for with_ftpct in [round % 2 == 0, round % 2 == 1] {
            let fw = if with_ftpct {
                Some(lab.attach(&[])?)
            } else {
                None
            };
            let per_call = tls_round_trip_ns(ns, p.calls, &cert, &key)? / 4.0;
            let session = ftplib_list_rounds(lab.client(), &target, p.lists)?;
            match &fw {
                Some(fw) => {
                    res.call_ns_probed.push(per_call);
                    res.session_ftpct.push(session);
                    res.parsed_calls = fw.counters()?.get(Counter::TlsPlaintext);
                    anyhow::ensure!(
                        res.parsed_calls >= u64::from(p.lists),
                        "ftpct did not inspect the session: {}",
                        fw.counters()?
                    );
                }
                None => {
                    res.call_ns_plain.push(per_call);
                    res.session_plain.push(session);
                }
            }
        }
    }
    // The programs' own share, measured apart: statistics cost a clock
    // read per run, which the rounds above should not pay.
    let fw = lab.attach(&[])?;
    let before = tls_program_time()?;
    set_bpf_stats(true)?;
    let measured = tls_round_trip_ns(ns, p.calls, &cert, &key);
    set_bpf_stats(false)?;
    measured?;
    let spent = tls_program_time()?.saturating_sub(before);
    res.bpf_ns_per_call = Some(spent as f64 / (f64::from(p.calls) * 4.0));
    drop(fw);
    res.seconds = started.elapsed().as_secs_f64();
    Ok(res)
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

fn set_bpf_stats(on: bool) -> Result<()> {
    std::fs::write(BPF_STATS, if on { "1" } else { "0" })
        .with_context(|| format!("writing {BPF_STATS}"))
}

/// Total run time, in ns, of every loaded FTPS probe program of ftpct
/// (names `ftpct_tls_*`, cut to 15 characters by the kernel).
fn tls_program_time() -> Result<u64> {
    let mut total = 0u64;
    for info in aya::programs::loaded_programs() {
        let info = info.context("listing loaded BPF programs")?;
        if info
            .name_as_str()
            .is_some_and(|n| n.starts_with("ftpct_tls_"))
        {
            total = total.saturating_add(info.run_time().as_nanos() as u64);
        }
    }
    Ok(total)
}
