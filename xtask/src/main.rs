//! Developer and CI tasks. Every task installs what it needs first, so a fresh
//! machine (and CI) runs them with nothing but cargo and rustup.
//!
//! - `cargo xtask setup`  toolchain pieces and Debian packages (idempotent)
//! - `cargo xtask build`  the `ftpct` binary with its eBPF object
//! - `cargo xtask demo`   the lab demo (root)
//! - `cargo xtask test`   lint, unit, property, verifier and end-to-end tests,
//!   then the bounded kernel matrix (root)
//! - `cargo xtask test-kernels [--kernel NAME]... [--bounded]`  the kernel matrix (root)
//! - `cargo xtask fuzz`   a bounded run of the parser fuzzer
//! - `cargo xtask bench`  the benchmark suite; writes BENCHMARKS.md (root)

mod bench;
mod cmd;
mod kernels;
mod matrix;
mod setup;
mod vm;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "ftpct developer and CI tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the toolchain pieces (rust-src, bpf-linker) and Debian packages.
    Setup,
    /// Build `ftpct` (release) with its eBPF programs.
    Build,
    /// Build, then run the demo lab: real FTP server, clients and an intruder.
    Demo,
    /// Everything CI runs: fmt, clippy, unit/property tests, kernel and e2e tests.
    Test {
        /// Skip the end-to-end namespace tests.
        #[arg(long)]
        no_e2e: bool,
        /// Skip the kernel matrix (qemu guests of the Debian kernels).
        #[arg(long)]
        no_kernels: bool,
    },
    /// The full kernel matrix: every kernel test in a qemu guest of each kernel.
    TestKernels {
        /// A kernel to run (6.1, 6.12, 5.10); all when not given.
        #[arg(long = "kernel")]
        kernels: Vec<String>,
        /// Only the bounded subset `cargo xtask test` runs (the `datapath`
        /// kernel tests).
        #[arg(long)]
        bounded: bool,
    },
    /// Run a bash script as root in a qemu guest of one matrix kernel and
    /// print its output (for looking into a kernel by hand).
    VmRun {
        /// The kernel (6.1, 6.12, 5.10).
        #[arg(long = "kernel")]
        kernel: String,
        /// The script file.
        script: PathBuf,
        /// Seconds before the guest is killed.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Run the parser fuzzer for a bounded time.
    Fuzz {
        /// Seconds to fuzz.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Build, then run the benchmark suite and write BENCHMARKS.md (root).
    Bench,
    /// Build, then soak: mixed FTP traffic and a SYN flood through `ftpct
    /// daemon` for N minutes; fails unless every transfer worked, the
    /// tables drained and the daemon's memory stayed flat (root).
    Soak {
        /// Minutes of traffic.
        #[arg(long, default_value_t = 10)]
        minutes: u64,
    },
}

/// The workspace root (xtask's parent directory).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::all(),
        Task::Build => {
            setup::toolchain()?;
            build()
        }
        Task::Demo => {
            setup::all()?;
            build()?;
            demo()
        }
        Task::Test { no_e2e, no_kernels } => {
            setup::all()?;
            test(!no_e2e)?;
            if no_kernels {
                return Ok(());
            }
            matrix::run(&[], matrix::Scope::Bounded)
        }
        Task::TestKernels { kernels, bounded } => {
            setup::all()?;
            let scope = if bounded {
                matrix::Scope::Bounded
            } else {
                matrix::Scope::Full
            };
            matrix::run(&kernels, scope)
        }
        Task::VmRun {
            kernel,
            script,
            timeout,
        } => {
            let fetched = kernels::fetch(kernels::find(&kernel)?)?;
            let script = std::fs::read_to_string(&script)
                .with_context(|| format!("reading {}", script.display()))?;
            let ran = vm::run(&fetched, &script, std::time::Duration::from_secs(timeout))?;
            print!("{}", ran.output);
            anyhow::ensure!(ran.code == 0, "the script exited with {}", ran.code);
            Ok(())
        }
        Task::Fuzz { seconds } => fuzz(seconds),
        Task::Bench => bench::run(),
        Task::Soak { minutes } => {
            setup::all()?;
            build()?;
            soak(minutes)
        }
    }
}

/// The soak test of the e2e suite, run for `minutes`, its report shown.
fn soak(minutes: u64) -> Result<()> {
    cmd::cargo_env(
        &[
            "test",
            "--release",
            "-p",
            "ftpct-e2e",
            "--test",
            "soak",
            "--",
            "--nocapture",
        ],
        &[
            ("FTPCT_BIN", ftpct_bin().display().to_string()),
            ("FTPCT_SOAK_SECS", (minutes * 60).to_string()),
        ],
    )
}

/// Path of the built `ftpct` binary.
pub fn ftpct_bin() -> PathBuf {
    workspace_root().join("target/release/ftpct")
}

fn build() -> Result<()> {
    cmd::cargo(&["build", "--release", "-p", "ftp-userspace"])
}

fn demo() -> Result<()> {
    cmd::cargo_env(
        &[
            "run",
            "--release",
            "-q",
            "-p",
            "ftpct-e2e",
            "--bin",
            "ftpct-demo",
        ],
        &[("FTPCT_BIN", ftpct_bin().display().to_string())],
    )
}

fn test(e2e: bool) -> Result<()> {
    cmd::cargo(&["fmt", "--all", "--check"])?;
    // Host crates (default members), then the eBPF crate for its own target.
    cmd::cargo(&[
        "clippy",
        "--release",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    cmd::run(
        std::process::Command::new("cargo")
            .current_dir(workspace_root().join("ftp-ebpf"))
            .args([
                "+nightly",
                "clippy",
                "--release",
                "--target",
                "bpfel-unknown-none",
            ])
            .args(["-Z", "build-std=core", "--", "-D", "warnings"]),
    )?;
    build()?;
    // Parser unit/property tests, CLI logic, and the kernel tests (verifier
    // acceptance, BPF_PROG_TEST_RUN).
    cmd::cargo(&[
        "test",
        "--release",
        "-p",
        "ftp-ebpf-common",
        "-p",
        "ftp-userspace",
        "-p",
        "xtask",
    ])?;
    fuzz(FUZZ_SECONDS_IN_TESTS)?;
    if e2e {
        cmd::cargo_env(
            &[
                "test",
                "--release",
                "-p",
                "ftpct-e2e",
                "--",
                "--test-threads=2",
            ],
            &[("FTPCT_BIN", ftpct_bin().display().to_string())],
        )?;
    }
    Ok(())
}

/// The bounded fuzzer run that is part of `cargo xtask test`.
const FUZZ_SECONDS_IN_TESTS: u64 = 30;

fn fuzz(seconds: u64) -> Result<()> {
    setup::cargo_fuzz()?;
    let crate_dir = workspace_root().join("ftp-ebpf-common");
    std::fs::create_dir_all(crate_dir.join("fuzz/corpus/parser"))?;
    // libFuzzer reports progress on stderr many times a second: keep it in a
    // log and show the summary (or the whole log when it finds something).
    let log_path = workspace_root().join("target/fuzz-parser.log");
    let log = std::fs::File::create(&log_path)?;
    let result = cmd::run(
        std::process::Command::new("cargo")
            .current_dir(&crate_dir)
            .args([
                "+nightly",
                "fuzz",
                "run",
                "parser",
                "fuzz/corpus/parser",
                "fuzz/seeds/parser",
            ])
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .stderr(log),
    );
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let shown: Vec<&str> = match result {
        Ok(()) => text
            .lines()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect(),
        Err(_) => text.lines().collect(),
    };
    eprintln!("{}", shown.join("\n"));
    eprintln!("xtask: fuzzer log in {}", log_path.display());
    result
}
