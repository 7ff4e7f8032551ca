//! `cargo xtask bench`: installs what the benchmark suite needs, builds
//! `ftpct`, and runs `ftpct-bench` (crate `ftpct-e2e`, `tests/bench/`), which
//! prints the tables and writes `BENCHMARKS.md` and `benchmarks.png` at the
//! workspace root. Needs root. Every phase of the suite is bounded; the whole
//! run takes a few minutes once the toolchain is cached.

use anyhow::Result;

use crate::{cmd, ftpct_bin, setup};

/// Debian packages the suite needs beyond the test lab's: trafgen (the SYN
/// flood generator) and a TrueType font for the plot's labels.
const BENCH_PACKAGES: [&str; 2] = ["netsniff-ng", "fonts-dejavu-core"];

pub fn run() -> Result<()> {
    setup::all()?;
    setup::apt_install_missing(&BENCH_PACKAGES)?;
    crate::build()?;
    cmd::cargo_env(
        &[
            "run",
            "--release",
            "-q",
            "-p",
            "ftpct-e2e",
            "--bin",
            "ftpct-bench",
        ],
        &[("FTPCT_BIN", ftpct_bin().display().to_string())],
    )
}
