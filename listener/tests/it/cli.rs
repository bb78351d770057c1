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
    std::fs::write(&file, "multicast:\n  ttl: 999\nlistener:\n  status_secs: 0\n").expect("write");
    let out = bin().arg("--config").arg(&file).args(["--group", "10.1.1.1:1", "--check-config"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in ["multicast.group: '10.1.1.1:1'", "multicast.ttl: '999'", "listener.status_secs: '0'"] {
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
