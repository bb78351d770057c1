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

/// `import` fills the database from details files; `report` reads it back (CSV, JSON, a meter filter); a report
/// without a database, and one on a file of a newer schema, are clear errors naming the setting.
#[test]
fn import_then_report_from_the_command_line() {
    use shared::decimal::Decimal;
    use shared::wire::{encode, Message};

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let details = data.join("meterkast/details");
    std::fs::create_dir_all(&details).expect("mkdir");
    std::fs::write(
        dir.path().join("p1.yml"),
        format!(
            "timezone: UTC\nreader:\n  dir: {}\n  prices:\n    import_t1: 0.25\n    standing_per_day: 0.5\n",
            data.display()
        ),
    )
    .expect("config");
    let report = |args: &[&str]| reader().arg("report").args(args).current_dir(dir.path()).output().expect("run");
    let out = report(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reader.database: sqlite:") && err.contains("no history database"), "{err}");

    // Yesterday and today (UTC), one telegram a minute, 2 Wh each.
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let start = today.yesterday().expect("yesterday").to_zoned(jiff::tz::TimeZone::UTC).expect("midnight").timestamp();
    let mut text = Vec::new();
    for i in 0..(24 * 60 + 30) {
        let mut m =
            crate::support::telegram("meterkast", "b", i + 1, start + jiff::SignedDuration::from_mins(i as i64));
        m.values.energy_import_t1_kwh = Some(Decimal::new(1000 + 2 * i as i64, 3));
        text.extend(encode(&Message::Telegram(Box::new(m))));
        text.push(b'\n');
    }
    std::fs::write(details.join("x.jsonl"), text).expect("details");
    let out = reader().args(["import", "data"]).current_dir(dir.path()).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("1 files, 1470 telegrams, 1470 minute rows"), "{said}");

    let out = report(&["--day", "--csv", "--meter", "meterkast"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = csv.lines().collect();
    // Yesterday from its first minute: 1439 minutes x 2 Wh; today 30 minutes. Cost: kWh x 0.25 + 0.50.
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[1].starts_with(&format!("{},meterkast,1,2.878,", today.yesterday().expect("y"))), "{csv}");
    assert!(rows[1].ends_with(",1.22"), "2.878 x 0.25 + 0.5 = 1.2195: {csv}");
    assert!(rows[2].starts_with(&format!("{today},meterkast,1,0.060,")) && rows[2].ends_with(",0.52"), "{csv}");
    let out = report(&["--year", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json[0]["import_t1_kwh"].to_string(), "2.938");
    assert!(report(&["--day", "--week"]).status.code() == Some(2), "one period at a time");

    let db = data.join("history.sqlite");
    let status = std::process::Command::new("sqlite3").arg(&db).arg("UPDATE schema_version SET version = 7").status();
    assert!(status.expect("sqlite3").success());
    let out = report(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2) && err.contains("reader.database") && err.contains("schema version 7"),
        "{err}"
    );
}
