//! The binary's command line: the default configuration, checking, and configuration errors.

use std::process::Command;

fn reader() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_p1-reader"));
    cmd.env("RUST_LOG", "off");
    cmd
}

#[test]
fn print_default_config_prints_the_documented_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = reader().arg("--print-default-config").current_dir(dir.path()).output().expect("run");
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).expect("utf8"), shared::config::DEFAULT_CONFIG);
}

#[test]
fn check_config_accepts_a_good_file_and_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("p1.yml"), "reader:\n  interval_minutes: 15\n").expect("write");
    // p1.yml in the working directory is read without --config.
    let out = reader()
        .args(["--check-config", "--group", "239.255.1.2:5000", "--interface", "127.0.0.1", "--dir", "/srv/p1"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "p1.yml: ok\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "127.0.0.1 exists everywhere: no warning");
}

#[test]
fn check_config_warns_about_an_interface_this_host_lacks_and_still_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (interface, said) in [
        ("p1hub-nas0", "no interface named p1hub-nas0"),
        ("192.0.2.123", "no interface on this host has the address 192.0.2.123"),
    ] {
        let out =
            reader().args(["--check-config", "--interface", interface]).current_dir(dir.path()).output().expect("run");
        assert!(out.status.success(), "a warning, not an error");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("warning: multicast.interface") && err.contains(said), "{err}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "built-in defaults: ok\n");
    }
}

#[test]
fn every_config_error_is_listed_and_the_exit_code_is_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yml");
    std::fs::write(&path, "timezone: Mars/Olympus\nreader:\n  interval_minutes: 7\n  columns: [time, watts]\n")
        .expect("write");
    let out =
        reader().arg("--config").arg(&path).args(["--check-config", "--group", "10.0.0.1:1"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "timezone: 'Mars/Olympus'",
        "multicast.group: '10.0.0.1:1'",
        "reader.interval_minutes: '7'",
        "reader.columns: 'watts'",
    ] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
    let typo = dir.path().join("typo.yml");
    std::fs::write(&typo, "reader:\n  intervl_minutes: 5\n").expect("write");
    let out = reader().arg("--config").arg(&typo).arg("--check-config").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("intervl_minutes"));
    let out = reader().args(["--config", "/nonexistent/p1.yml", "--check-config"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/p1.yml"));
}
