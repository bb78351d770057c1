//! The binary: `parse`, configuration errors, `--print-default-config`, and a clean stop on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shared::wire::{Message, PortState};

use crate::support::{corrupted, telegrams, unique_group, within, Subscriber};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_p1-listener"));
    // No p1.yml from the developer's working directory.
    c.current_dir(std::env::temp_dir());
    c
}

#[test]
fn parse_prints_every_valid_telegram_and_stats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("capture.txt");
    let sent = telegrams(5);
    let mut capture = b"\0\0\0".to_vec();
    for (i, t) in sent.iter().enumerate() {
        capture.extend(if i == 2 { corrupted(t) } else { t.clone() });
    }
    std::fs::write(&path, capture).expect("write");
    let out = bin().args(["parse", "--stats"]).arg(&path).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&[u8]> = out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 4);
    for (i, line) in lines.iter().enumerate() {
        let Message::Telegram(t) = shared::wire::parse(line).expect("a datagram") else { panic!("not a telegram") };
        assert_eq!(t.seq, i as u64 + 1);
    }
    let stats: serde_json::Value = serde_json::from_slice(&out.stderr).expect("one JSON object on stderr");
    assert_eq!((stats["telegrams"].as_u64(), stats["crc_failures"].as_u64()), (Some(4), Some(1)));
    assert_eq!(stats["discarded_bytes"].as_u64(), Some(3));

    // Standard input works the same.
    let mut child = bin().arg("parse").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("run");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&sent[0]).expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert_eq!(out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(), 1);
}

#[test]
fn parse_of_an_unreadable_path_fails_clearly() {
    let out = bin().args(["parse", "/nonexistent/capture.txt"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read /nonexistent/capture.txt"), "{err}");
}

#[test]
fn configuration_errors_are_all_listed_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("p1.yml");
    // An unknown key and a wrongly typed value no longer hide the bad values next to them.
    std::fs::write(
        &file,
        "multicast:\n  ttl: 999\nlistener:\n  status_secs: 0\n  sorce: simulate\n  watchdog_secs: soon\n",
    )
    .expect("write");
    let out = bin().arg("--config").arg(&file).args(["--group", "10.1.1.1:1", "--check-config"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "multicast.group: '10.1.1.1:1'",
        "multicast.ttl: '999'",
        "listener.status_secs: '0'",
        "listener.sorce: unknown setting; did you mean `listener.source`?",
        "listener.watchdog_secs: 'soon' is not valid",
    ] {
        assert!(err.contains(key), "{key} missing from: {err}");
    }
    let out = bin().args(["--print-default-config"]).output().expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout), shared::config::DEFAULT_CONFIG);
    let out = bin().args(["--source", "simulate", "--check-config"]).output().expect("run");
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("OK"));
}

#[test]
fn check_config_warns_about_an_interface_this_host_lacks_and_still_exits_0() {
    let out =
        bin().args(["--source", "simulate", "--interface", "p1hub-nas0", "--check-config"]).output().expect("run");
    assert!(out.status.success(), "a warning, not an error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: multicast.interface 'p1hub-nas0'") && err.contains("no interface named"), "{err}");
    let out = bin().args(["--source", "simulate", "--interface", "lo", "--check-config"]).output().expect("run");
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"), "lo is there (up in the test namespace)");
}

#[tokio::test]
async fn sigterm_stops_the_binary_cleanly_after_a_last_status() {
    let group = unique_group();
    let sub = Subscriber::join(group);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_p1-listener"))
        .current_dir(std::env::temp_dir())
        .args(["--source", "simulate", "--interface", "127.0.0.1", "--group"])
        .arg(group.to_string())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the binary");
    let first = within(10, "a telegram from the binary", sub.telegram()).await;
    assert_eq!(first.seq, 1);
    let pid = child.id().expect("a pid").to_string();
    let started = Instant::now();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(killed.success());
    let status = within(10, "the binary to exit", child.wait()).await.expect("wait");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let last = within(5, "the last status", sub.status_where(|s| s.port == PortState::Closed)).await;
    assert_eq!(last.origin.boot_id, first.origin.boot_id);
}

#[test]
fn parse_of_input_without_a_telegram_says_so_and_exits_1() {
    // The example: a `/…!` frame without CRC and without a readable line used to print a message.
    let mut child = bin()
        .args(["parse", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    {
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(b"/\x8f\xe3\r\n\x9a!\r\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no valid telegram in -: 9 bytes read, 9 skipped as noise, 1 frames discarded"), "{err}");

    // An empty file, and a capture with only a damaged telegram.
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, b"").expect("write");
    let out = bin().arg("parse").arg(&empty).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 bytes read"));
    let damaged = dir.path().join("damaged.txt");
    std::fs::write(&damaged, corrupted(&telegrams(1)[0])).expect("write");
    let out = bin().arg("parse").arg(&damaged).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 CRC failures"));
}

/// `capture` on a port that cannot be opened: the cause and the fix at once, not a wait for the timeout.
fn capture_fails_at_once(source: &std::path::Path, wants: &[&str]) {
    let started = Instant::now();
    let out = bin().args(["capture", "--timeout", "60", "--source"]).arg(source).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(started.elapsed() < Duration::from_secs(10), "it waited: {:?}", started.elapsed());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("check the cable"), "{err}");
    for want in wants {
        assert!(err.contains(want), "{want} missing from: {err}");
    }
}

#[test]
fn capture_on_a_missing_device_or_a_non_device_says_why_at_once() {
    capture_fails_at_once(
        std::path::Path::new("/dev/ttyUSB-p1hub-missing"),
        &["/dev/ttyUSB-p1hub-missing does not exist", "ls -l /dev/serial/by-id/"],
    );
    // A directory (root can open any file, so a device without permission is tested below as another user).
    let dir = tempfile::tempdir().expect("tempdir");
    capture_fails_at_once(dir.path(), &["cannot be opened as a serial port", "/dev/serial/by-id/"]);
}

#[tokio::test]
async fn capture_without_permission_on_the_device_names_the_dialout_group() {
    use tokio_serial::SerialPort;
    // A pseudo-terminal only root may open, tried by `nobody` (setpriv, from util-linux).
    let (_master, slave) = tokio_serial::SerialStream::pair().expect("a pty pair");
    let path = slave.name().expect("path");
    drop(slave);
    let chmod = Command::new("chmod").args(["600", &path]).status().expect("chmod");
    assert!(chmod.success());
    let started = Instant::now();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_p1-listener"))
        .args(["capture", "--timeout", "60", "--source", &path])
        .current_dir("/")
        .output()
        .expect("setpriv runs the binary as nobody");
    assert!(started.elapsed() < Duration::from_secs(10), "it waited: {:?}", started.elapsed());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("permission denied") && err.contains("dialout"), "{err}");
}

#[test]
fn logs_carry_no_colour_codes_into_a_pipe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("capture.txt");
    std::fs::write(&path, telegrams(1).concat()).expect("write");
    let group = unique_group();
    let out = bin()
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .arg("--source")
        .arg(format!("file:{}", path.display()))
        .args(["--replay", "max", "--interface", "127.0.0.1", "--group"])
        .arg(group.to_string())
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("p1-listener started") && err.contains("INFO"), "{err}");
    assert!(!out.stderr.contains(&0x1b), "ANSI escape codes in a pipe: {err:?}");
}

#[test]
fn keygen_then_check_config_says_sealed_without_printing_the_key() {
    use std::os::unix::fs::PermissionsExt as _;
    // keygen needs no configuration, not even a readable one.
    let out = bin().args(["--config", "/nonexistent/p1.yml", "keygen"]).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key_text = String::from_utf8(out.stdout).expect("text");
    let key = shared::wire::seal::Key::parse(&key_text).expect("stdout holds only a key");
    let id = key.id().to_string();
    assert!(String::from_utf8_lossy(&out.stderr).contains(&id), "stderr names the key id");

    // A key file that others may read: sealed, the id shown, a warning, the key never printed.
    let dir = tempfile::tempdir().expect("tempdir");
    let loose = dir.path().join("loose.key");
    std::fs::write(&loose, &key_text).expect("write");
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = bin().args(["--source", "simulate", "--check-config", "--key-file"]).arg(&loose).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("datagrams sealed, key set (id {id})")), "{stdout}");
    assert!(stdout.contains("warning: multicast.key_file") && stdout.contains("chmod 600"), "{stdout}");
    assert!(!stdout.contains(key_text.trim()) && !String::from_utf8_lossy(&out.stderr).contains(key_text.trim()));

    // keygen --out writes an owner-only file: no warning, and never over an existing file.
    let tight = dir.path().join("tight.key");
    let out = bin().arg("keygen").arg("--out").arg(&tight).output().expect("run");
    assert!(out.status.success() && out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = bin().args(["--source", "simulate", "--check-config", "--key-file"]).arg(&tight).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("datagrams sealed, key set (id ") && !stdout.contains("warning"), "{stdout}");
    let out = bin().arg("keygen").arg("--out").arg(&tight).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "an existing key file is never replaced");

    // Open by default, and a bad key file is a configuration error naming the key.
    let out = bin().args(["--source", "simulate", "--check-config"]).output().expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("datagrams open (no key set)"));
    std::fs::write(&loose, "not a key").expect("write");
    let out = bin().args(["--source", "simulate", "--check-config", "--key-file"]).arg(&loose).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("multicast.key_file") && err.contains("64 hex digits"), "{err}");
}
