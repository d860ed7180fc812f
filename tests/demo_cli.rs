//! The `braid-server` binary as a user runs it today.

use std::process::Command;

fn braid_server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_braid-server"))
}

#[test]
fn simulation_converges_and_loses_no_increment() {
    let out = braid_server()
        .args(["simulate", "--writes", "2000", "--seed", "7"])
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
        .args(["simulate", "--wrtes", "5"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--wrtes"));
}

#[test]
fn help_explains_every_option() {
    let out = braid_server().arg("--help").output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--config",
        "--bind",
        "--port",
        "--data-dir",
        "--region",
        "--region-id",
        "--fsync",
        "--requirepass",
        "--maxmemory",
        "--snapshot-every-ops",
        "--snapshot-every-secs",
        "--snapshots-keep",
        "--maxclients",
        "--log-format",
    ] {
        assert!(help.contains(opt), "{opt} missing from --help:\n{help}");
    }
}

#[test]
fn bad_config_file_key_and_bad_flag_values_are_errors_naming_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("braid.toml");
    std::fs::write(&file, "port = 7000\nfsyncc = \"always\"\n").expect("write");
    let out = braid_server()
        .arg("--config")
        .arg(&file)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fsyncc"));

    let out = braid_server()
        .args(["--fsync", "sometimes"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--fsync"));

    let out = braid_server()
        .args(["--region", "us east", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'region'"));
}
