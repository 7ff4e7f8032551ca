//! Idempotent installation of everything the build and tests need, following
//! shared/toolchain.md: nightly `rust-src`, and bpf-linker built against the
//! nightly toolchain's own libLLVM (no LLVM package here matches it).

use std::{fs, os::unix::fs::symlink, path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::{cmd, workspace_root};

const BPF_LINKER_VERSION: &str = "0.13.0";
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Cache for built tools: `$FTPCT_CACHE`, else `~/.cache/ftpct`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FTPCT_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/ftpct")
}

/// Where `cargo install --root` puts tools.
pub fn tools_dir() -> PathBuf {
    cache_dir().join("tools")
}

/// Debian packages the kernel matrix needs: qemu, and what builds the
/// guests' initramfs and indexes and unpacks their modules.
const VM_PACKAGES: [&str; 6] = [
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "kmod",
    "xz-utils",
    "zstd",
];

/// Toolchain pieces and system packages.
pub fn all() -> Result<()> {
    toolchain()?;
    packages()?;
    apt_install_missing(&VM_PACKAGES)
}

/// Nightly rust-src and bpf-linker.
pub fn toolchain() -> Result<()> {
    rust_src()?;
    bpf_linker()
}

fn rust_src() -> Result<()> {
    let sysroot = nightly_sysroot()?;
    if sysroot.join("lib/rustlib/src/rust/library/core").exists() {
        return Ok(());
    }
    cmd::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))
}

fn nightly_sysroot() -> Result<PathBuf> {
    let out = cmd::output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("the nightly toolchain is missing (rustup toolchain install nightly)")?;
    Ok(PathBuf::from(out))
}

/// bpf-linker linked against the nightly's libLLVM; rebuilt when that changes.
fn bpf_linker() -> Result<()> {
    let sysroot = nightly_sysroot()?;
    let libllvm = fs::read_dir(sysroot.join("lib"))
        .context("reading the nightly sysroot")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so."))
        })
        .context("the nightly toolchain ships no libLLVM.so.*")?;
    let stamp = tools_dir().join("bpf-linker.llvm");
    let linker = tools_dir().join("bin/bpf-linker");
    let wanted = format!("{BPF_LINKER_VERSION} {}", libllvm.display());
    let works = cmd::output(Command::new(&linker).arg("--version"))
        .is_some_and(|v| v.contains(BPF_LINKER_VERSION));
    if works && fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    let prefix = cache_dir().join("llvm-from-rustc");
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib)?;
    let name = libllvm.file_name().context("libLLVM has no file name")?;
    for link in [lib.join("libLLVM.so"), lib.join(name)] {
        let _ = fs::remove_file(&link);
        symlink(&libllvm, &link).with_context(|| format!("linking {}", link.display()))?;
    }
    cmd::run(
        Command::new("cargo")
            .env("LLVM_PREFIX", &prefix)
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args([
                "--no-default-features",
                "--features",
                "llvm-22",
                "--force",
                "--root",
            ])
            .arg(tools_dir()),
    )?;
    fs::write(&stamp, wanted)?;
    Ok(())
}

/// cargo-fuzz (any install will do; otherwise into the tool cache).
pub fn cargo_fuzz() -> Result<()> {
    let installed = cmd::output(
        Command::new("cargo")
            .env("PATH", cmd::path_with_tools())
            .args(["fuzz", "--version"]),
    );
    if installed.is_some() {
        return Ok(());
    }
    cmd::run(
        Command::new("cargo")
            .args([
                "install",
                "cargo-fuzz",
                "--locked",
                "--version",
                CARGO_FUZZ_VERSION,
                "--root",
            ])
            .arg(tools_dir()),
    )
}

/// Debian packages, FTP servers and clients (tests/install-deps.sh).
fn packages() -> Result<()> {
    let script = workspace_root().join("tests/install-deps.sh");
    if !script.exists() {
        bail!("{} is missing", script.display());
    }
    cmd::run(Command::new("bash").arg(script))
}

/// Installs those of `packages` that are not installed (nothing, and no
/// `apt-get update`, if all are).
pub fn apt_install_missing(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|pkg| {
            cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
                .is_none_or(|status| !status.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    cmd::run(Command::new("apt-get").args(["update", "-qq"]))?;
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing),
    )
}
