//! The `braid-server` binary as a user runs it today.

use std::process::Command;

fn braid_server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_braid-server"))
}

#[test]
fn demo_converges_and_loses_no_increment() {
    let out = braid_server()
        .args(["demo", "--writes", "2000", "--seed", "7"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("(no increment lost)"), "{stdout}");
    assert!(stdout.trim_end().ends_with("converged"), "{stdout}");
    assert_eq!(stdout.matches("(same)").count(), 3, "{stdout}");
}

#[test]
fn unknown_option_is_an_error_that_names_it() {
    let out = braid_server()
        .args(["demo", "--wrtes", "5"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--wrtes"));
}

#[test]
fn without_subcommand_it_says_the_server_is_not_built_yet() {
    let out = braid_server().output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not implemented yet"));
}
