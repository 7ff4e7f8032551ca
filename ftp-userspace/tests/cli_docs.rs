//! What ships alongside the binary (issue #12, item 9): shell completions
//! that the shells accept, a manual page, and examples in `--help`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn ftpct(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ftpct"))
        .args(args)
        .output()
        .expect("running ftpct")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout.clone()).expect("UTF-8")
}

#[test]
fn completions_cover_every_subcommand_and_bash_accepts_them() {
    let bash = stdout(&ftpct(&["completions", "bash"]));
    for sub in [
        "attach",
        "detach",
        "status",
        "flows",
        "check",
        "--ftps-range",
    ] {
        assert!(bash.contains(sub), "bash completion lacks {sub}");
    }
    // `bash -n`: parse the script from stdin without running it.
    let mut child = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash -n");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bash.as_bytes())
        .expect("writing the script");
    let check = child.wait_with_output().expect("bash -n");
    assert!(check.status.success(), "bash -n: {check:?}");
    for shell in ["zsh", "fish"] {
        assert!(
            stdout(&ftpct(&["completions", shell])).contains("attach"),
            "{shell}"
        );
    }
}

#[test]
fn the_manual_page_and_help_name_the_commands_with_examples() {
    let man = stdout(&ftpct(&["man"]));
    assert!(
        man.starts_with(".ie") || man.contains(".TH ftpct 8"),
        "{man:.200}"
    );
    assert!(
        man.contains("attach") && man.contains("Examples"),
        "{man:.400}"
    );
    let help = stdout(&ftpct(&["--help"]));
    assert!(
        help.contains("Examples:") && help.contains("ftpct status eth0"),
        "{help}"
    );
    let bad = ftpct(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2), "an unknown shell: {bad:?}");
}
