//! Running commands with the tool cache on PATH, failing with context.

use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::{setup, workspace_root};

/// PATH with the tool cache (bpf-linker, cargo-fuzz) first.
pub fn path_with_tools() -> String {
    let tools = setup::tools_dir().join("bin");
    match std::env::var("PATH") {
        Ok(path) => format!("{}:{path}", tools.display()),
        Err(_) => tools.display().to_string(),
    }
}

/// Runs a command to completion; a non-zero exit is an error naming it.
pub fn run(cmd: &mut Command) -> Result<()> {
    cmd.env("PATH", path_with_tools());
    let shown = shown(cmd);
    eprintln!("xtask: {shown}");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

/// `cargo ARGS` in the workspace root.
pub fn cargo(args: &[&str]) -> Result<()> {
    cargo_env(args, &[])
}

/// `cargo ARGS` in the workspace root with extra environment.
pub fn cargo_env(args: &[&str], env: &[(&str, String)]) -> Result<()> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace_root()).args(args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    run(&mut cmd)
}

/// Output of a command, trimmed, if it ran and succeeded.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs a command to completion and returns its stdout (stderr passes
/// through); a non-zero exit is an error naming it.
pub fn stdout(cmd: &mut Command) -> Result<String> {
    cmd.env("PATH", path_with_tools())
        .stdout(std::process::Stdio::piped());
    let shown = shown(cmd);
    eprintln!("xtask: {shown}");
    let out = cmd.output().with_context(|| format!("starting {shown}"))?;
    if !out.status.success() {
        bail!("{shown} failed with {}", out.status);
    }
    String::from_utf8(out.stdout).with_context(|| format!("{shown}: output is not UTF-8"))
}

/// The program and its arguments, as a shell would show them.
fn shown(cmd: &Command) -> String {
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!("{} {}", cmd.get_program().to_string_lossy(), args.join(" "))
}
