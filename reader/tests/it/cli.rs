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
    assert_eq!(String::from_utf8_lossy(&out.stdout), "p1.yml: ok (datagrams open (no key set))\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "127.0.0.1 exists everywhere: no warning");
}

#[test]
fn check_config_with_a_key_file_says_sealed_and_the_key_id_never_the_key() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    let path = dir.path().join("lan.key");
    std::fs::write(&path, format!("{key}\n")).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out =
        reader().arg("--check-config").arg("--key-file").arg(&path).current_dir(dir.path()).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "built-in defaults: ok (datagrams sealed, key id 686321c8)\n");
    // Readable by others: a warning, still no key.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out =
        reader().arg("--check-config").arg("--key-file").arg(&path).current_dir(dir.path()).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("warning: multicast.key_file") && stdout.contains("chmod 600"), "{stdout}");
    for text in [stdout.as_ref(), String::from_utf8_lossy(&out.stderr).as_ref()] {
        assert!(!text.contains("0001020304"), "the key is never printed: {text}");
    }
    // A missing key file is a configuration error.
    let out = reader().args(["--check-config", "--key-file", "/nonexistent/lan.key"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("multicast.key_file"));
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
        assert_eq!(String::from_utf8_lossy(&out.stdout), "built-in defaults: ok (datagrams open (no key set))\n");
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

/// Three mistyped keys (one of them a section's) and two bad values in one file: one run names all five, each with
/// its fix. A YAML syntax error names the line and column.
#[test]
fn check_config_lists_every_unknown_key_and_bad_value_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p1.yml");
    std::fs::write(
        &path,
        "multicast:\n  gruop: 239.255.1.2:4141\n  ttl: lots\nlistener:\n  watchdog_sec: 30\n\
         reader:\n  compres: true\n  interval_minutes: 7\n",
    )
    .expect("write");
    let out = reader().arg("--config").arg(&path).arg("--check-config").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for line in [
        "5 invalid settings:",
        "multicast.gruop: unknown setting; did you mean `multicast.group`?",
        "listener.watchdog_sec: unknown setting; did you mean `listener.watchdog_secs`?",
        "reader.compres: unknown setting; did you mean `reader.compress`?",
        "multicast.ttl: 'lots' is not valid: a whole number",
        "reader.interval_minutes: '7' is not valid: minutes that divide a day",
    ] {
        assert!(err.contains(line), "{line} missing from:\n{err}");
    }
    std::fs::write(&path, "reader:\n  dir: ./data\n   compress: true\n").expect("write");
    let out = reader().arg("--config").arg(&path).arg("--check-config").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("p1.yml: line 3, column 12: "), "{err}");
}
