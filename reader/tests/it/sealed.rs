//! Sealed datagrams end to end (issue 17): the real listener seals, the reader with the key opens every telegram,
//! and what an attacker on the LAN can send (a forgery with the right name, boot id and next seq but a wrong key or
//! none, a replayed capture, a flipped bit) is counted and dropped: the details file holds only real telegrams.
//! A second reader without the key gets nothing it could mistake for data. On 127.0.0.1 (inside `unshare -n` in
//! scripts/test).

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use p1_reader::Reader;
use shared::config::{Config, RawConfig};
use shared::wire::seal::{self, Key, Sealer};
use shared::wire::{encode, Message, TelegramMessage};
use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;

use crate::support::{group, lines, names, raw_config, until, Sender};

const TELEGRAMS: usize = 40;
const KEY_HEX: &str = "3f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn capture(start: Timestamp) -> Vec<u8> {
    let tz = jiff::tz::TimeZone::get("Europe/Amsterdam").expect("tzdb");
    let mut meter = shared::simulate::Simulator::new(11);
    (0..TELEGRAMS)
        .flat_map(|i| meter.telegram_at((start + SignedDuration::from_secs(10 * i as i64)).to_zoned(tz.clone())))
        .collect()
}

fn keyed(mut raw: RawConfig, key_file: Option<&Path>) -> Config {
    raw.multicast.key_file = key_file.map(|p| p.display().to_string());
    let mut config = raw.validate().expect("valid configuration");
    assert_eq!(config.read_multicast_keys().expect("key file"), Vec::<String>::new(), "mode 600: no warning");
    config
}

/// A plain socket on the group, as an eavesdropper would have: records what the listener sends.
fn tap(group: SocketAddr) -> std::net::UdpSocket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    s.set_reuse_address(true).expect("reuse");
    s.bind(&group.into()).expect("bind");
    let SocketAddr::V4(g) = group else { panic!("IPv4 group") };
    s.join_multicast_v4(g.ip(), &Ipv4Addr::LOCALHOST).expect("join");
    s.set_nonblocking(true).expect("nonblocking");
    s.into()
}

fn details(m: &Path) -> Vec<TelegramMessage> {
    names(&m.join("details"))
        .iter()
        .flat_map(|n| lines(&m.join("details").join(n)))
        .map(|l| match shared::wire::parse(l.as_bytes()).expect("every line is a valid message in plain JSON") {
            Message::Telegram(t) => *t,
            Message::Status(_) => panic!("a status in the details file"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_listener_feeds_a_keyed_reader_and_forgeries_replays_and_flipped_bits_are_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let group = group(30);
    let key_file = dir.path().join("lan.key");
    std::fs::write(&key_file, format!("{KEY_HEX}\n")).expect("key");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let key = Key::parse(KEY_HEX).expect("key");
    let bytes = capture(Timestamp::now());
    let capture_path = dir.path().join("meter.p1");
    std::fs::write(&capture_path, &bytes).expect("capture");

    // The reader with the key, and one without.
    let data = dir.path().join("data");
    let reader = Reader::bind(&keyed(raw_config(group, &data, 5), Some(&key_file))).expect("reader");
    let stats = reader.stats();
    let keyless_data = dir.path().join("keyless");
    let keyless = Reader::bind(&keyed(raw_config(group, &keyless_data, 5), None)).expect("keyless reader");
    let keyless_stats = keyless.stats();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let run = |r: Reader, mut rx: tokio::sync::watch::Receiver<bool>| {
        tokio::spawn(r.run(async move {
            let _ = rx.wait_for(|s| *s).await;
        }))
    };
    let reading = run(reader, stopped.clone());
    let keyless_reading = run(keyless, stopped);
    let eavesdropper = tap(group);

    let mut raw = raw_config(group, &data, 5);
    raw.name = Some("sealed".into());
    raw.multicast.ttl = 0;
    raw.listener.source = format!("file:{}", capture_path.display());
    raw.listener.replay = "max".into();
    let listener_config = keyed(raw, Some(&key_file));
    listener::run(listener_config, CancellationToken::new()).await.expect("listener replays the capture");
    until("every telegram written", || stats.snapshot().written as usize == TELEGRAMS).await;

    // What the eavesdropper got: sealed datagrams only, no JSON in sight.
    let mut buf = vec![0u8; 70_000];
    let mut captured = Vec::new();
    while let Ok(n) = eavesdropper.recv(&mut buf) {
        captured.push(buf[..n].to_vec());
    }
    assert!(!captured.is_empty());
    assert!(captured.iter().all(|d| seal::is_sealed(d) && shared::wire::parse(d).is_err()), "every datagram sealed");
    let (real, real_msg) = captured
        .iter()
        .find_map(|d| match shared::wire::parse(&seal::open(std::slice::from_ref(&key), d).ok()?.plaintext).ok()? {
            Message::Telegram(t) => Some((d.clone(), t)),
            Message::Status(_) => None,
        })
        .expect("a telegram among the captured datagrams");

    // The attacks. A forgery of the next telegram: the real name, boot id and next sequence number, 99.999 kW.
    let mut forged = (*real_msg).clone();
    forged.seq = TELEGRAMS as u64 + 1;
    forged.received_at = Timestamp::now();
    forged.values.power_kw = Some("99.999".parse().expect("decimal"));
    let forged = encode(&Message::Telegram(Box::new(forged)));
    let sender = Sender::new(group);
    // 1. With no key: open JSON.
    sender.send_raw(&forged);
    // 2. Sealed with a wrong key (its own key id): sealed, but not with our key.
    let mut wrong = Vec::new();
    Sealer::new(&Key::from_bytes([0x42; 32])).expect("rng").seal(&forged, &mut wrong).expect("seal");
    sender.send_raw(&wrong);
    // 3. Sealed with a wrong key under our key id: forged.
    wrong[5..9].copy_from_slice(&key.id().0);
    sender.send_raw(&wrong);
    // 4. A real datagram, captured and sent again.
    sender.send_raw(&real);
    // 5. A real datagram with one bit flipped in its ciphertext.
    let mut flipped = real.clone();
    flipped[40] ^= 0x08;
    sender.send_raw(&flipped);

    until("the five attacks counted", || {
        let s = stats.snapshot();
        (s.refused_open, s.refused_unknown_key, s.forged, s.replayed) == (1, 1, 2, 1)
    })
    .await;
    // The keyless reader: every sealed datagram refused as "no key here", the open forgery taken as it would be in
    // open mode (it has no key, so it cannot tell), and nothing sealed mistaken for data.
    until("the keyless reader refused the sealed datagrams", || {
        keyless_stats.snapshot().refused_no_key as usize >= TELEGRAMS + 4
    })
    .await;
    stop.send(true).expect("stop");
    reading.await.expect("joined").expect("clean stop");
    keyless_reading.await.expect("joined").expect("clean stop");

    let s = stats.snapshot();
    assert_eq!((s.written, s.duplicates, s.missed, s.not_json, s.malformed), (TELEGRAMS as u64, 0, 0, 0, 0), "{s:?}");
    assert_eq!((s.refused_no_key, s.outside_window, s.refused_version), (0, 0, 0), "{s:?}");
    let got = details(&data.join("sealed"));
    assert_eq!(got.len(), TELEGRAMS, "only the real telegrams");
    assert_eq!(got.iter().map(|t| t.seq).collect::<Vec<_>>(), (1..=TELEGRAMS as u64).collect::<Vec<_>>());
    assert!(got.iter().all(|t| t.origin.boot_id == real_msg.origin.boot_id
        && t.values.power_kw.map(|p| p.to_string()) != Some("99.999".into())));

    let k = keyless_stats.snapshot();
    // Without a key it is in open mode: the open forgery is all it can read (which is why a key is set on every
    // host), and none of the sealed datagrams was mistaken for data.
    assert_eq!((k.telegrams, k.not_json, k.malformed, k.forged), (1, 0, 0, 0), "{k:?}");
}
