//! Option errors and warnings (issue #12, item 8), from the binary: every
//! refused value names its option, before any privilege check, so a user
//! sees what to fix whoever runs it; doubtful but possible settings (a
//! control port listed twice, a data range below 1024) warn in one line
//! each and attach goes on. Nothing is attached: the interface does not
//! exist.

use std::process::{Command, Output};

/// An interface no test host has.
const NO_IFACE: &str = "nosuch0";

fn ftpct(args: &[&str]) -> Output {
    // A pin root attach never reaches (the interface check comes first).
    let root = std::env::temp_dir().join("ftpct-cli-options-unused");
    Command::new(env!("CARGO_BIN_EXE_ftpct"))
        .args(args)
        .arg("--pin-root")
        .arg(root)
        .env_remove("SSH_CONNECTION")
        .output()
        .expect("running ftpct")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_refused_value_names_its_option() {
    let cases: &[(&[&str], &str)] = &[
        (&["--data-ports", "70000"], "--data-ports"),
        (&["--data-ports", "2000-1000"], "--data-ports"),
        (&["--control-ports", "70000"], "--control-ports"),
        (&["--control-ports", "21-22"], "--control-ports"),
        (&["--control-ports", "1,2,3,4,5,6,7,8,9"], "--control-ports"),
        (&["--allow-ports", "0"], "--allow-ports"),
        (&["--external-address", "example.com"], "--external-address"),
        (
            &["--external-address", "198.18.1.5=nowhere"],
            "--external-address",
        ),
        (&["--external-address", "0.0.0.0"], "--external-address"),
        (&["--ftps-range", "40100-40000"], "--ftps-range"),
        (&["--ftps-range", "100-200"], "--ftps-range"),
        (&["--expect-timeout", "0"], "--expect-timeout"),
        (&["--flow-timeout", "0"], "--flow-timeout"),
        (&["--max-flows", "0"], "--max-flows"),
        (&["--max-expectations", "0"], "--max-expectations"),
        (&["--max-control", "0"], "--max-control"),
        (&["--max-expect-per-conn", "9"], "--max-expect-per-conn"),
    ];
    for (options, name) in cases {
        for command in ["attach", "run"] {
            refused_naming(command, options, name);
        }
    }
    let set_cases: &[(&[&str], &str)] = &[
        (&["--allow-ports", "70000"], "--allow-ports"),
        (&["--ftps-range", "5-1"], "--ftps-range"),
        (&["--external-address", "example.com"], "--external-address"),
        (&["--expect-timeout", "0"], "--expect-timeout"),
        (&["--max-expect-per-client", "0"], "--max-expect-per-client"),
    ];
    for (options, name) in set_cases {
        refused_naming("set", options, name);
    }
}

/// `ftpct COMMAND IFACE OPTIONS` is refused, naming `name`, before any
/// privilege check.
fn refused_naming(command: &str, options: &[&str], name: &str) {
    let mut args = vec![command, NO_IFACE];
    args.extend_from_slice(options);
    let out = ftpct(&args);
    let text = stderr(&out);
    let what = args.join(" ");
    assert!(!out.status.success(), "{what}: accepted");
    assert!(text.contains(name), "{what}: {name} not named in {text:?}");
    assert!(!text.contains("needs root"), "{what}: {text:?}");
    assert!(!text.contains("panicked"), "{what}: {text:?}");
}

/// The `ftpct: warning: ` lines of an attach to an interface that does not
/// exist (refused after the warnings, as root or not).
fn warnings(options: &[&str]) -> Vec<String> {
    let mut args = vec!["attach", NO_IFACE];
    args.extend_from_slice(options);
    let out = ftpct(&args);
    assert!(!out.status.success(), "{args:?}: {out:?}");
    stderr(&out)
        .lines()
        .filter_map(|l| l.strip_prefix("ftpct: warning: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn doubtful_options_warn_in_one_line_each() {
    assert_eq!(
        warnings(&["--control-ports", "21,2121,21"]),
        ["--control-ports lists 21 more than once; each port counts once"]
    );
    assert_eq!(
        warnings(&["--data-ports", "100-2000"]),
        [
            "--data-ports 100-2000 guards well-known ports (100-1023): services there get only \
             connections an FTP session announced"
        ]
    );
    // The control port and allowed ports inside the range are not guarded.
    let low = warnings(&["--data-ports", "1-2000", "--allow-ports", "22"]);
    assert!(
        low.len() == 1 && low[0].contains("(1-20,23-1023)"),
        "{low:?}"
    );
    assert!(warnings(&[]).is_empty(), "the defaults warn");
    assert!(
        warnings(&["--strict", "--control-ports", "21,2121"]).is_empty(),
        "--strict guards every port on purpose"
    );
}
