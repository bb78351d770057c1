//! The other sources: a TCP bridge that drops and comes back, a replayed capture, the simulated meter.

use shared::wire::{Message, PortState};
use tokio::io::AsyncWriteExt;

use crate::support::{config, corrupted, telegrams, unique_group, within, Running, Subscriber};

#[tokio::test]
async fn a_tcp_bridge_is_reconnected_when_it_drops() {
    let bridge = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the bridge");
    let addr = bridge.local_addr().expect("address");
    let group = unique_group();
    let sub = Subscriber::join(group);
    let listener = Running::start(config(&format!("tcp://{addr}"), group, |_| {}));
    let sent = telegrams(2);

    let (mut conn, _) = within(10, "the listener to connect", bridge.accept()).await.expect("accept");
    conn.write_all(&sent[0]).await.expect("write");
    assert_eq!(within(10, "a telegram", sub.telegram()).await.seq, 1);
    drop(conn);

    let (mut conn, _) = within(10, "the listener to reconnect", bridge.accept()).await.expect("accept");
    conn.write_all(&sent[1]).await.expect("write");
    assert_eq!(within(10, "a telegram after reconnecting", sub.telegram()).await.seq, 2);
    let status = within(10, "a status", sub.status_where(|s| s.last_seq == Some(2))).await;
    assert_eq!((status.counters.reconnects, status.source), (2, format!("tcp://{addr}")));
    listener.stop().await;
}

#[tokio::test]
async fn a_capture_replayed_at_max_speed_is_published_whole_and_then_the_listener_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("capture.txt");
    let sent = telegrams(60);
    let mut capture = b"\xff\xfe garbage before the first telegram".to_vec();
    for (i, t) in sent.iter().enumerate() {
        if i == 30 {
            capture.extend(corrupted(t));
        } else {
            capture.extend(t);
        }
    }
    std::fs::write(&path, &capture).expect("write the capture");

    let group = unique_group();
    let sub = Subscriber::join(group);
    let listener = Running::start(config(&format!("file:{}", path.display()), group, |raw| {
        raw.listener.replay = "max".into();
    }));
    listener.finished().await.expect("the replay ends cleanly");

    let mut seqs = Vec::new();
    let last = loop {
        match within(5, "the datagrams of the replay", sub.next()).await {
            Message::Telegram(t) => seqs.push(t.seq),
            Message::Status(s) if s.port == PortState::Closed => break s,
            Message::Status(_) => {}
        }
    };
    assert_eq!(seqs, (1..=59).collect::<Vec<u64>>(), "every valid telegram, in order, none lost");
    assert_eq!((last.counters.telegrams, last.counters.crc_failures, last.last_seq), (59, 1, Some(59)));
}

#[tokio::test]
async fn the_simulated_meter_sends_a_telegram_every_second() {
    let group = unique_group();
    let sub = Subscriber::join(group);
    let listener = Running::start(config("simulate", group, |_| {}));
    let a = within(5, "a simulated telegram", sub.telegram()).await;
    let b = within(5, "the next one", sub.telegram()).await;
    assert_eq!((a.seq, b.seq), (1, 2));
    let gap = b.received_at.duration_since(a.received_at);
    assert!(gap.as_secs_f64() > 0.5 && gap.as_secs_f64() < 1.5, "one a second: {gap:?}");
    assert_eq!(a.header, "SIM5P1HUB-SIMULATED");
    assert!(a.errors.is_empty(), "{:?}", a.errors);
    listener.stop().await;
}
