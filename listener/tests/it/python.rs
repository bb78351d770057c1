//! The README's sealed-mode Python subscriber, run as written (only the key path, group, port and the loopback
//! interface substituted) against the real listener sealing with a key file, on 127.0.0.1. Needs `python3` with
//! the `cryptography` package (scripts/setup installs it with pip); skipped, saying so, only without it.

use std::io::BufRead as _;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::support::{config, unique_group};

const README: &str = include_str!("../../../README.md");

/// The README's sealed subscriber: the Python block that opens sealed datagrams.
fn sealed_subscriber() -> &'static str {
    README
        .split("```python")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("ChaCha20Poly1305"))
        .expect("the README has a sealed Python subscriber")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_python_subscriber_reads_a_sealed_listener() {
    let probe = Command::new("python3").args(["-c", "import cryptography.hazmat.primitives.ciphers.aead"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIPPED the_readme_python_subscriber_reads_a_sealed_listener: python3 with `cryptography` is missing"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("lan.key");
    let key = shared::wire::seal::Key::generate().expect("rng");
    std::fs::write(&key_file, format!("{}\n", *key.to_hex())).expect("key");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let group = unique_group();

    let script = sealed_subscriber()
        .replace("/etc/p1hub/lan.key", &key_file.display().to_string())
        .replace("239.255.80.1", &group.ip().to_string())
        .replace("4141", &group.port().to_string())
        .replace("0.0.0.0", "127.0.0.1");
    assert!(script.lines().filter(|l| !l.trim().is_empty()).count() <= 12, "about ten lines:\n{script}");
    let mut python = Command::new("python3")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let stdout = python.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut config = config("simulate", group, |raw| raw.multicast.key_file = Some(key_file.display().to_string()));
    assert!(config.read_multicast_keys().expect("key file").is_empty());
    let stop = CancellationToken::new();
    let listener = tokio::spawn(p1_listener::run(config, stop.clone()));

    // The simulated meter sends a telegram a second; the subscriber prints each one's power.
    let got: Vec<String> = tokio::task::spawn_blocking(move || {
        (0..3).map_while(|_| lines_rx.recv_timeout(Duration::from_secs(30)).ok()).collect()
    })
    .await
    .expect("joined");
    stop.cancel();
    listener.await.expect("joined").expect("listener ran");
    let _ = python.kill();
    let out = python.wait_with_output().expect("python ended");
    assert_eq!(got.len(), 3, "three telegrams read in Python; stderr: {}", String::from_utf8_lossy(&out.stderr));
    for line in &got {
        line.parse::<f64>().unwrap_or_else(|_| panic!("a power in kW, not {line:?}"));
    }
}
