//! The binary's configuration check: every mistake in one run, exit code 2.

use std::process::Command;

fn dashboard() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_p1-dashboard"));
    // No p1.yml from the developer's working directory.
    cmd.current_dir(std::env::temp_dir());
    cmd
}

#[test]
fn check_config_lists_every_mistake_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p1.yml");
    std::fs::write(&path, "dashboard:\n  chart_minute: 5\n  stale_secs: 0\nmulticast:\n  loopback: maybe\n")
        .expect("write");
    let out = dashboard().arg("--config").arg(&path).arg("--check-config").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for line in [
        "3 invalid settings:",
        "dashboard.chart_minute: unknown setting; did you mean `dashboard.chart_minutes`?",
        "multicast.loopback: 'maybe' is not valid: true or false",
        "dashboard.stale_secs: '0' is not valid",
    ] {
        assert!(err.contains(line), "{line} missing from:\n{err}");
    }
    std::fs::write(&path, "dashboard: {chart_minutes: 5\n").expect("write");
    let out = dashboard().arg("--config").arg(&path).arg("--check-config").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("p1.yml: line 2, column 1: "), "{out:?}");
    let out = dashboard().arg("--print-default-config").output().expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout), shared::config::DEFAULT_CONFIG);
}
