//! The MQTT output against a real Mosquitto: plain, TLS (accepted, other CA, wrong host, client certificate),
//! passwords, a broker stopped and restarted mid-stream, the offline queue, the rate limit.

use std::collections::BTreeSet;
use std::time::Duration;

use p1_bridge::mqtt::{Input, Output};
use shared::wire::{Message, TelegramMessage};

use crate::ha::check_sensor;
use crate::support::*;

const T: Duration = Duration::from_secs(15);

fn seq(payload: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(payload).ok()?.get("seq")?.as_u64()
}

fn saw_seq(topic: &'static str, n: u64) -> impl Fn(&[Received]) -> bool {
    move |seen| seen.iter().any(|m| m.topic == topic && seq(&m.payload) == Some(n))
}

fn numbers(t: &TelegramMessage) -> Vec<(String, f64)> {
    let v = serde_json::to_value(&*t.values).expect("json");
    v.as_object()
        .expect("object")
        .iter()
        .filter_map(|(k, v)| v.as_f64().filter(|_| v.is_number()).map(|f| (k.clone(), f)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_sees_state_values_availability_and_valid_discovery() {
    let dir = tempfile::tempdir().expect("dir");
    let broker = Broker::start(dir.path(), &BrokerOptions::default());
    let mut sub = Sub::start(broker.port, "#", &[]);
    let out = run_output(&mqtt_settings(&format!("url: mqtt://127.0.0.1:{}", broker.port)));
    let ts = telegrams("meterkast", 3);
    for t in &ts {
        out.send(t).await;
    }
    sub.until(T, "state seq 3", saw_seq("p1hub/meterkast/state", 3));

    // The state topic carries the message, exactly as the datagram does.
    let state = sub.last("p1hub/meterkast/state").expect("state");
    match shared::wire::parse(state.payload.as_bytes()).expect("a valid p1hub message") {
        Message::Telegram(t) => assert_eq!(*t, ts[2]),
        other @ Message::Status(_) => panic!("not a telegram: {other:?}"),
    }
    // One topic per named number, a bare number equal to the message's.
    let values = numbers(&ts[2]);
    assert!(values.len() > 30, "a three-phase meter with gas and water: {values:?}");
    for (key, expected) in &values {
        let topic = format!("p1hub/meterkast/{key}");
        let is_it =
            |m: &Received| m.topic == topic && m.payload.parse::<f64>().is_ok_and(|g| (g - expected).abs() < 1e-9);
        sub.until(T, &format!("{topic} = {expected}"), |seen| seen.iter().any(is_it));
    }
    assert_eq!(sub.last("p1hub/meterkast/availability").map(|m| m.payload.as_str()), Some("online"));
    assert_eq!(sub.last("p1hub/bridge/p1-bridge-it/availability").map(|m| m.payload.as_str()), Some("online"));

    // Discovery: every config is valid for Home Assistant, one per value sent, all on one device.
    let configs: Vec<&Received> =
        sub.seen.iter().filter(|m| m.topic.starts_with("homeassistant/sensor/") && !m.payload.is_empty()).collect();
    let mut keys = BTreeSet::new();
    let mut devices = BTreeSet::new();
    for c in &configs {
        let errors = check_sensor("homeassistant", &c.topic, &c.payload);
        assert!(errors.is_empty(), "{}: {errors:?}\n{}", c.topic, c.payload);
        let v: serde_json::Value = serde_json::from_str(&c.payload).expect("json");
        devices.insert(v["device"]["identifiers"][0].as_str().expect("id").to_owned());
        keys.insert(c.topic.split('/').nth(3).expect("object id").to_owned());
        assert!(c.retained || sub.seen.iter().any(|m| m.topic == c.topic), "configs are retained");
    }
    let sent: BTreeSet<String> = values.iter().map(|(k, _)| k.clone()).collect();
    assert!(keys.is_subset(&sent), "an entity for a value not sent: {:?}", keys.difference(&sent));
    for energy in [
        "energy_import_t1_kwh",
        "energy_import_t2_kwh",
        "energy_export_t1_kwh",
        "energy_export_t2_kwh",
        "gas_m3",
        "water_m3",
    ] {
        assert!(keys.contains(energy), "no entity for {energy}: {keys:?}");
    }
    // A Dutch meter has no Belgian capacity tariff: no value, so no entity.
    assert!(!sent.contains("capacity_peak_kw") && !keys.contains("capacity_peak_kw"));
    assert_eq!(devices.len(), 1, "one device per meter: {devices:?}");

    // Retained: a subscriber arriving later gets the current state at once.
    let r = retained(broker.port, "p1hub/meterkast/state", &[]).expect("retained state");
    assert_eq!(seq(&r.payload), Some(3));
    let r = retained(broker.port, "p1hub/meterkast/power_kw", &[]).expect("retained value");
    assert!(r.payload.parse::<f64>().is_ok());

    // A clean stop says offline for the bridge (the last will covers an unclean one).
    out.stop().await;
    let r = retained(broker.port, "p1hub/bridge/p1-bridge-it/availability", &[]).expect("retained");
    assert_eq!(r.payload, "offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_drives_availability_and_the_rate_limit_holds_per_topic() {
    let dir = tempfile::tempdir().expect("dir");
    let broker = Broker::start(dir.path(), &BrokerOptions::default());
    let mut sub = Sub::start(broker.port, "p1hub/#", &[]);
    let out = run_output(&mqtt_settings(&format!("url: mqtt://127.0.0.1:{}\nmin_interval: 3600s", broker.port)));
    let ts = telegrams("kast", 5);
    for t in &ts {
        out.send(t).await;
    }
    let offline = |listener: &str, online| Input::Liveness { listener: listener.into(), online };
    out.tx.send(offline("kast", false)).await.expect("runs");
    sub.until(T, "offline", |seen| seen.iter().any(|m| m.topic == "p1hub/kast/availability" && m.payload == "offline"));
    out.tx.send(offline("kast", true)).await.expect("runs");
    sub.until(T, "online again", |seen| {
        seen.iter().filter(|m| m.topic == "p1hub/kast/availability" && m.payload == "online").count() == 2
    });
    let states: Vec<u64> =
        sub.seen.iter().filter(|m| m.topic == "p1hub/kast/state").filter_map(|m| seq(&m.payload)).collect();
    assert_eq!(states, [1], "one state per topic per min_interval");
    assert!(out.stats.rate_limited.load(std::sync::atomic::Ordering::Relaxed) >= 4 * 30);
    out.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_test_ca_is_accepted_and_with_another_ca_refused_clearly() {
    let dir = tempfile::tempdir().expect("dir");
    let certs = make_certs(dir.path(), "good", "DNS:localhost,IP:127.0.0.1");
    let other = make_certs(dir.path(), "other", "DNS:localhost,IP:127.0.0.1");
    let broker = Broker::start(dir.path(), &BrokerOptions { tls: Some(certs.clone()), ..BrokerOptions::default() });
    let url = format!("url: mqtts://127.0.0.1:{}", broker.port);

    let out = run_output(&mqtt_settings(&format!("{url}\nca_file: {}", certs.ca.display())));
    out.wait(T, "a verified TLS connection", connected).await;
    out.send(&telegrams("tls", 1)[0]).await;
    let ca = certs.ca.display().to_string();
    let mut got = None;
    for _ in 0..50 {
        got = retained(broker.port, "p1hub/tls/state", &["--cafile", &ca]);
        if got.is_some() {
            break;
        }
    }
    assert_eq!(got.and_then(|r| seq(&r.payload)), Some(1));
    out.stop().await;

    let out = run_output(&mqtt_settings(&format!("{url}\nca_file: {}", other.ca.display())));
    out.wait(T, "a refusal", |s| s.last_error().is_some()).await;
    let err = out.stats.last_error().expect("error");
    assert!(err.contains("bridge.mqtt.ca_file") && err.contains("not signed by"), "{err}");
    assert!(!connected(&out.stats));
    out.stop().await;

    // Without ca_file, the system's roots do not know the test CA either.
    let out = run_output(&mqtt_settings(&url));
    out.wait(T, "a refusal", |s| s.last_error().is_some()).await;
    let err = out.stats.last_error().expect("error");
    assert!(err.contains("system's CA roots") && err.contains("bridge.mqtt.ca_file"), "{err}");
    out.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_a_host_name_the_certificate_does_not_name_is_refused_clearly() {
    let dir = tempfile::tempdir().expect("dir");
    // The certificate names only the address, so "localhost" is not a name it is valid for.
    let certs = make_certs(dir.path(), "iponly", "IP:127.0.0.1");
    let broker = Broker::start(dir.path(), &BrokerOptions { tls: Some(certs.clone()), ..BrokerOptions::default() });
    let out =
        run_output(&mqtt_settings(&format!("url: mqtts://localhost:{}\nca_file: {}", broker.port, certs.ca.display())));
    out.wait(T, "a refusal", |s| s.last_error().is_some_and(|e| e.contains("host name"))).await;
    let err = out.stats.last_error().expect("error");
    assert!(err.contains("'localhost'") && err.contains("bridge.mqtt.url"), "{err}");
    out.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_wants_a_client_certificate_gets_it() {
    let dir = tempfile::tempdir().expect("dir");
    let certs = make_certs(dir.path(), "mtls", "DNS:localhost,IP:127.0.0.1");
    let options = BrokerOptions { tls: Some(certs.clone()), require_client_cert: true, ..BrokerOptions::default() };
    let broker = Broker::start(dir.path(), &options);
    let base = format!("url: mqtts://127.0.0.1:{}\nca_file: {}", broker.port, certs.ca.display());

    let out = run_output(&mqtt_settings(&base));
    out.wait(T, "a refusal", |s| s.last_error().is_some()).await;
    let err = out.stats.last_error().expect("error");
    assert!(err.contains("bridge.mqtt.client_cert_file"), "{err}");
    out.stop().await;

    let with_cert = format!(
        "{base}\nclient_cert_file: {}\nclient_key_file: {}",
        certs.client_cert.display(),
        certs.client_key.display()
    );
    let out = run_output(&mqtt_settings(&with_cert));
    out.wait(T, "a connection with the client certificate", connected).await;
    out.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_clearly_and_never_shown() {
    let dir = tempfile::tempdir().expect("dir");
    let users = vec![("p1".to_owned(), "right-horse-battery".to_owned())];
    let broker = Broker::start(dir.path(), &BrokerOptions { users, ..BrokerOptions::default() });
    let file = dir.path().join("pw");
    std::fs::write(&file, "wrong-staple\n").expect("write");
    let settings = format!("url: mqtt://127.0.0.1:{}\nusername: p1\npassword_file: {}", broker.port, file.display());
    let out = run_output(&mqtt_settings(&settings));
    out.wait(T, "a refusal", |s| s.last_error().is_some()).await;
    let err = out.stats.last_error().expect("error");
    assert!(err.contains("user name or password") && err.contains("bridge.mqtt.username"), "{err}");
    assert!(err.contains("bridge.mqtt.password_file") && !err.contains("wrong-staple"), "{err}");
    assert!(!connected(&out.stats));
    out.stop().await;

    std::fs::write(&file, "right-horse-battery\n").expect("write");
    let out = run_output(&mqtt_settings(&settings));
    out.wait(T, "a connection with the right password", connected).await;
    out.stop().await;

    // A password variable that is not set is a start-up error naming the setting.
    let m = mqtt_settings(&format!(
        "url: mqtt://127.0.0.1:{}\nusername: p1\npassword_env: P1HUB_TEST_UNSET_VARIABLE",
        broker.port
    ));
    let err = Output::new(&m).err().expect("refused").to_string();
    assert!(err.contains("bridge.mqtt.password_env") && err.contains("P1HUB_TEST_UNSET_VARIABLE"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restarted_mid_stream_loses_nothing_and_the_retained_state_is_current() {
    restart_mid_stream("3.1.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_a_broker_restarted_mid_stream_loses_nothing_either() {
    restart_mid_stream("5").await;
}

async fn restart_mid_stream(protocol: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let mut broker = Broker::start(dir.path(), &BrokerOptions::default());
    // A persistent QoS 1 subscriber: the broker keeps its messages while it is away.
    let persistent = ["-c", "-i", "it-persistent", "-q", "1"];
    let state = "p1hub/meterkast/state";
    let mut sub = Sub::start(broker.port, state, &persistent);
    let out = run_output(&mqtt_settings(&format!("url: mqtt://127.0.0.1:{}\nprotocol: '{protocol}'", broker.port)));
    let ts = telegrams("meterkast", 30);
    for t in &ts[..10] {
        out.send(t).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    sub.until(T, "seq 10", saw_seq(state, 10));
    let mut seen: Vec<Received> = std::mem::take(&mut sub.seen);
    drop(sub);

    broker.stop();
    out.wait(T, "the connection to drop", |s| !connected(s)).await;
    for t in &ts[10..20] {
        out.send(t).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    broker.restart();
    let mut sub = Sub::start(broker.port, state, &persistent);
    out.wait(T, "the reconnection", connected).await;
    for t in &ts[20..] {
        out.send(t).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    sub.until(T, "seq 30", saw_seq(state, 30));
    seen.append(&mut sub.seen);
    let seqs: BTreeSet<u64> = seen.iter().filter_map(|m| seq(&m.payload)).collect();
    let missing: Vec<u64> = (1..=30).filter(|n| !seqs.contains(n)).collect();
    assert!(missing.is_empty(), "lost across the restart: {missing:?}");
    let r = retained(broker.port, state, &[]).expect("retained state");
    assert_eq!(seq(&r.payload), Some(30), "the retained state is the newest");
    let s = &out.stats;
    assert!(s.connections.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    out.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_offline_queue_keeps_the_newest() {
    let dir = tempfile::tempdir().expect("dir");
    let mut broker = Broker::start(dir.path(), &BrokerOptions::default());
    broker.stop();
    let out = run_output(&mqtt_settings(&format!("url: mqtt://127.0.0.1:{}\nqueue_bytes: 40000", broker.port)));
    out.wait(T, "a failed attempt", |s| s.last_error().is_some()).await;
    let err = out.stats.last_error().expect("error");
    assert!(err.contains("connection refused") && err.contains("bridge.mqtt.url"), "{err}");
    for t in &telegrams("meterkast", 40) {
        out.send(t).await;
    }
    out.wait(T, "drops", |s| s.dropped.load(std::sync::atomic::Ordering::Relaxed) > 0).await;
    assert!(out.stats.queued_bytes.load(std::sync::atomic::Ordering::Relaxed) <= 40_000);
    broker.restart();
    out.wait(T, "the connection", connected).await;
    out.wait(T, "the queue to empty", |s| s.queued_bytes.load(std::sync::atomic::Ordering::Relaxed) == 0).await;
    let mut state = None;
    for _ in 0..50 {
        state = retained(broker.port, "p1hub/meterkast/state", &[]);
        if state.as_ref().and_then(|r| seq(&r.payload)) == Some(40) {
            break;
        }
    }
    assert_eq!(state.and_then(|r| seq(&r.payload)), Some(40));
    out.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_publishes_the_same_topics_and_refuses_a_wrong_password_clearly() {
    let dir = tempfile::tempdir().expect("dir");
    let users = vec![("p1".to_owned(), "right-horse-battery".to_owned())];
    let broker = Broker::start(dir.path(), &BrokerOptions { users, ..BrokerOptions::default() });
    let file = dir.path().join("pw");
    std::fs::write(&file, "wrong-staple\n").expect("write");
    let settings = format!(
        "url: mqtt://127.0.0.1:{}\nprotocol: '5'\nusername: p1\npassword_file: {}",
        broker.port,
        file.display()
    );
    let out = run_output(&mqtt_settings(&settings));
    out.wait(T, "a refusal", |s| s.last_error().is_some()).await;
    let err = out.stats.last_error().expect("error");
    assert!(err.contains("user name or password") && err.contains("bridge.mqtt.username"), "{err}");
    assert!(!err.contains("wrong-staple"), "{err}");
    out.stop().await;

    std::fs::write(&file, "right-horse-battery\n").expect("write");
    let login = ["-u", "p1", "-P", "right-horse-battery"];
    let mut sub = Sub::start(broker.port, "#", &login);
    let out = run_output(&mqtt_settings(&settings));
    out.wait(T, "an MQTT 5 connection", connected).await;
    let ts = telegrams("v5", 2);
    for t in &ts {
        out.send(t).await;
    }
    sub.until(T, "state seq 2", saw_seq("p1hub/v5/state", 2));
    sub.until(T, "a value, availability and discovery", |seen| {
        seen.iter().any(|m| m.topic == "p1hub/v5/power_kw")
            && seen.iter().any(|m| m.topic == "p1hub/v5/availability" && m.payload == "online")
            && seen.iter().any(|m| m.topic.starts_with("homeassistant/sensor/") && m.topic.ends_with("/gas_m3/config"))
    });
    out.stop().await;
    let r = retained(broker.port, "p1hub/bridge/p1-bridge-it/availability", &login).expect("retained");
    assert_eq!(r.payload, "offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_insecure_connects_without_verification() {
    let dir = tempfile::tempdir().expect("dir");
    let certs = make_certs(dir.path(), "unknown", "DNS:elsewhere.invalid");
    let broker = Broker::start(dir.path(), &BrokerOptions { tls: Some(certs), ..BrokerOptions::default() });
    // Neither the CA nor the name would pass verification; the explicit opt-out connects anyway.
    let out = run_output(&mqtt_settings(&format!("url: mqtts://127.0.0.1:{}\ntls_insecure: true", broker.port)));
    out.wait(T, "an unverified TLS connection", connected).await;
    out.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_bridge_process_goes_offline_through_its_last_will() {
    let dir = tempfile::tempdir().expect("dir");
    let broker = Broker::start(dir.path(), &BrokerOptions::default());
    let config = dir.path().join("p1.yml");
    std::fs::write(
        &config,
        format!(
            "name: will\nmulticast:\n  group: 239.255.81.9:4199\n  interface: 127.0.0.1\nbridge:\n  mqtt:\n    \
             url: mqtt://127.0.0.1:{}\n",
            broker.port
        ),
    )
    .expect("write");
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_p1-bridge"))
        .arg("--config")
        .arg(&config)
        .arg("--check-config")
        .output()
        .expect("p1-bridge");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    assert!(String::from_utf8_lossy(&check.stdout).contains("MQTT 3.1.1 mqtt://127.0.0.1:"));

    let mut sub = Sub::start(broker.port, "p1hub/bridge/#", &[]);
    let mut bridge = std::process::Command::new(env!("CARGO_BIN_EXE_p1-bridge"))
        .arg("--config")
        .arg(&config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("p1-bridge");
    let topic = "p1hub/bridge/p1-bridge-will/availability";
    sub.until(T, "online", |seen| seen.iter().any(|m| m.topic == topic && m.payload == "online"));
    bridge.kill().expect("kill");
    let _ = bridge.wait();
    sub.until(T, "offline by the last will", |seen| seen.iter().any(|m| m.topic == topic && m.payload == "offline"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_coming_online_gets_the_discovery_again() {
    let dir = tempfile::tempdir().expect("dir");
    let broker = Broker::start(dir.path(), &BrokerOptions::default());
    let out = run_output(&mqtt_settings(&format!("url: mqtt://127.0.0.1:{}", broker.port)));
    out.wait(T, "the connection", connected).await;
    out.send(&telegrams("ha", 1)[0]).await;
    let mut sub = Sub::start(broker.port, "homeassistant/sensor/#", &[]);
    let gas = |seen: &[Received]| seen.iter().filter(|m| m.topic.ends_with("/gas_m3/config")).count();
    sub.until(T, "the retained gas config", |seen| gas(seen) == 1);
    // Home Assistant's birth message: every config is published again (HA may have lost them).
    let status = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-t", "homeassistant/status", "-m", "online"])
        .status()
        .expect("mosquitto_pub");
    assert!(status.success());
    sub.until(T, "the gas config again", |seen| gas(seen) == 2);
    out.stop().await;
}

#[test]
fn unreadable_tls_files_are_start_up_errors_naming_the_setting() {
    let dir = tempfile::tempdir().expect("dir");
    let certs = make_certs(dir.path(), "files", "IP:127.0.0.1");
    let missing = dir.path().join("missing.pem");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").expect("write");
    let cases = [
        (format!("ca_file: {}", missing.display()), "bridge.mqtt.ca_file"),
        (format!("ca_file: {}", not_pem.display()), "bridge.mqtt.ca_file"),
        (
            format!("client_cert_file: {}\nclient_key_file: {}", certs.client_cert.display(), missing.display()),
            "bridge.mqtt.client_key_file",
        ),
        (
            // The server's key does not belong to the client's certificate.
            format!(
                "client_cert_file: {}\nclient_key_file: {}",
                certs.client_cert.display(),
                certs.server_key.display()
            ),
            "bridge.mqtt.client_key_file",
        ),
        (
            format!("client_cert_file: {}\nclient_key_file: {}", not_pem.display(), certs.client_key.display()),
            "bridge.mqtt.client_cert_file",
        ),
    ];
    for (extra, key) in cases {
        let m = mqtt_settings(&format!("url: mqtts://127.0.0.1:8883\n{extra}"));
        let err = Output::new(&m).err().unwrap_or_else(|| panic!("{extra}: accepted")).to_string();
        assert!(err.starts_with(key), "{extra}: {err}");
    }
}

#[test]
fn logs_into_a_pipe_carry_no_colour_codes() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("p1.yml");
    // No broker on port 9 (discard): the bridge logs its start and the failed connections.
    std::fs::write(
        &config,
        "name: plain\nmulticast:\n  group: 239.255.81.10:4199\n  interface: 127.0.0.1\nbridge:\n  mqtt:\n    \
         url: mqtt://127.0.0.1:9\n",
    )
    .expect("write");
    let mut bridge = std::process::Command::new(env!("CARGO_BIN_EXE_p1-bridge"))
        .arg("--config")
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("p1-bridge");
    let stderr = bridge.stderr.take().expect("stderr");
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(stderr).split(b'\n') {
        let line = line.expect("read");
        let done = String::from_utf8_lossy(&line).contains("MQTT connection failed");
        lines.push(line);
        if done {
            break;
        }
    }
    bridge.kill().expect("kill");
    let _ = bridge.wait();
    let all: Vec<u8> = lines.concat();
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("INFO") && text.contains("MQTT connection failed"), "{text}");
    assert!(!all.contains(&0x1b), "ANSI escape codes in a pipe: {text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_name_with_a_noncharacter_does_not_cut_the_bridge_off() {
    // Mosquitto drops a client that publishes to a topic holding U+FFFF ("malformed packet"); the bridge then sent
    // the same publication again at every reconnection, so one such datagram stopped every meter's data.
    let dir = tempfile::tempdir().expect("dir");
    let broker = Broker::start(dir.path(), &BrokerOptions::default());
    let out = run_output(&mqtt_settings(&format!("url: mqtt://127.0.0.1:{}", broker.port)));
    out.wait(T, "the connection", connected).await;
    let mut sub = Sub::start(broker.port, "p1hub/#", &[]);
    out.send(&telegrams("bad\u{FFFF}\u{FDD0}", 1)[0]).await;
    let good = telegrams("good", 3);
    for t in &good {
        out.send(t).await;
    }
    sub.until(T, "the good listener's third telegram", saw_seq("p1hub/good/state", 3));
    assert!(sub.seen.iter().any(|m| m.topic == "p1hub/~bad~EF~BF~BF~EF~B7~90/state"), "the bad name, escaped");
    assert_eq!(out.stats.connections.load(std::sync::atomic::Ordering::Relaxed), 1, "{}", broker.log());
    out.stop().await;
}
