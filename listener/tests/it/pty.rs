//! Telegrams written to a real pseudo-terminal arrive as multicast JSON; the device can vanish and come back.

use shared::wire::PortState;
use tokio::io::AsyncWriteExt;
use tokio_serial::{SerialPort, SerialStream};

use crate::support::{config, corrupted, telegrams, unique_group, within, Running, Subscriber};

/// A pty pair and the path of its slave side (the "device").
fn pty() -> (SerialStream, SerialStream, String) {
    let (master, slave) = SerialStream::pair().expect("a pseudo-terminal pair");
    let path = slave.name().expect("the slave side has a path");
    (master, slave, path)
}

#[tokio::test]
async fn telegrams_written_to_the_pty_arrive_as_multicast_json() {
    let (mut master, _slave, path) = pty();
    let group = unique_group();
    let sub = Subscriber::join(group);
    let listener = Running::start(config(&path, group, |_| {}));
    within(10, "the port to open", sub.status_where(|s| s.port == PortState::Open)).await;

    let sent = telegrams(3);
    // Odd chunks, as a USB adapter delivers them: a telegram split over writes, two in one write.
    let all: Vec<u8> = sent.concat();
    for chunk in [&all[..100], &all[100..sent[0].len() + 50], &all[sent[0].len() + 50..]] {
        master.write_all(chunk).await.expect("write to the master side");
    }
    for (i, raw) in sent.iter().enumerate() {
        let t = within(10, "a telegram datagram", sub.telegram()).await;
        assert_eq!(t.seq, i as u64 + 1);
        assert_eq!(t.origin.listener, "it");
        assert_eq!(t.header, "SIM5P1HUB-SIMULATED");
        assert_eq!(serde_json::to_value(t.dialect).expect("json"), "nl-5");
        // The message carries exactly what the meter wrote.
        let text = std::str::from_utf8(raw).expect("ASCII");
        let import = text.lines().find_map(|l| l.strip_prefix("1-0:1.8.1(")).expect("a register");
        assert_eq!(
            serde_json::to_value(t.obis.get("1-0:1.8.1").expect("line")).expect("json"),
            import.trim_end_matches(')')
        );
        assert!(t.values.power_kw.is_some() && t.values.voltage_l3_v.is_some());
        assert_eq!(t.values.devices.len(), 2, "gas and water");
    }
    listener.stop().await;
}

#[tokio::test]
async fn publishing_resumes_when_the_device_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("ttyP1");
    let (mut master, slave, path) = pty();
    std::os::unix::fs::symlink(&path, &link).expect("link the device");

    let group = unique_group();
    let sub = Subscriber::join(group);
    let listener = Running::start(config(&link.display().to_string(), group, |_| {}));
    within(10, "the port to open", sub.status_where(|s| s.port == PortState::Open)).await;
    let sent = telegrams(2);
    master.write_all(&sent[0]).await.expect("write");
    assert_eq!(within(10, "the first telegram", sub.telegram()).await.seq, 1);

    // Unplug: both ends close and the device path disappears.
    drop((master, slave));
    std::fs::remove_file(&link).expect("unlink");
    within(10, "the outage to show", sub.status_where(|s| s.port == PortState::Connecting)).await;

    // Plug back in (a new pty, possibly under another number, behind the same path).
    let (mut master, _slave, path) = pty();
    std::os::unix::fs::symlink(&path, &link).expect("relink the device");
    let back = within(15, "the port to reopen", sub.status_where(|s| s.port == PortState::Open)).await;
    assert_eq!(back.counters.reconnects, 2);
    master.write_all(&sent[1]).await.expect("write");
    let t = within(10, "a telegram after the outage", sub.telegram()).await;
    assert_eq!(t.seq, 2, "the sequence goes on: same boot");
    listener.stop().await;
}

#[tokio::test]
async fn bad_crc_is_counted_and_status_and_watchdog_report() {
    let (mut master, _slave, path) = pty();
    let group = unique_group();
    let sub = Subscriber::join(group);
    let listener = Running::start(config(&path, group, |raw| raw.listener.watchdog_secs = 2));
    within(10, "the port to open", sub.status_where(|s| s.port == PortState::Open)).await;

    let sent = telegrams(2);
    let mut stream = b"\0\0\xff".to_vec();
    stream.extend(corrupted(&sent[0]));
    stream.extend(&sent[1]);
    master.write_all(&stream).await.expect("write");
    let t = within(10, "the good telegram", sub.telegram()).await;
    assert_eq!(t.seq, 1, "the damaged telegram is not published");
    assert_eq!(t.header, "SIM5P1HUB-SIMULATED");

    let status = within(10, "a status with the counters", sub.status_where(|s| s.last_seq == Some(1))).await;
    assert_eq!((status.counters.telegrams, status.counters.crc_failures), (1, 1));
    assert_eq!(status.counters.discarded_bytes, 3);
    assert_eq!((status.origin.listener.as_str(), status.source.as_str()), ("it", path.as_str()));
    assert_eq!(status.port_settings.as_deref(), Some("115200-8N1"));
    assert!(!status.meter_silent);
    // Then silence: the watchdog (2 s) flags it.
    let silent = within(10, "meter_silent", sub.status_where(|s| s.meter_silent)).await;
    assert!(silent.last_telegram_age_ms.expect("an age") >= 2000);
    listener.stop().await;
}

#[tokio::test]
async fn auto_settings_move_on_from_garbage_and_lock_on_valid_telegrams() {
    let (mut master, _slave, path) = pty();
    let group = unique_group();
    let sub = Subscriber::join(group);
    let listener = Running::start(config(&path, group, |_| {}));
    within(10, "the port to open", sub.status_where(|s| s.port == PortState::Open)).await;
    // What a 9600-baud meter looks like through a port set to 115200: bytes, but never a telegram.
    master.write_all(&vec![0x80u8; 9 * 1024]).await.expect("write");
    within(10, "the switch", sub.status_where(|s| s.port_settings.as_deref() == Some("9600-7E1"))).await;
    master.write_all(&telegrams(1)[0]).await.expect("write");
    assert_eq!(within(10, "a telegram", sub.telegram()).await.seq, 1);
    let status = within(10, "a status", sub.status_where(|s| s.last_seq == Some(1))).await;
    assert_eq!(status.port_settings.as_deref(), Some("9600-7E1"), "locked");
    listener.stop().await;
}

/// Writes `bytes` in `chunk`-byte pieces paced like a 115 200-baud line (10 bits a byte); returns when the last
/// piece was written.
async fn write_paced(master: &mut SerialStream, bytes: &[u8], chunk: usize) -> tokio::time::Instant {
    let per_byte = std::time::Duration::from_secs(10) / 115_200;
    let start = tokio::time::Instant::now();
    let mut sent = 0;
    let mut last = start;
    for piece in bytes.chunks(chunk) {
        sent += piece.len();
        tokio::time::sleep_until(start + per_byte * sent as u32).await;
        last = tokio::time::Instant::now();
        master.write_all(piece).await.expect("write to the master side");
    }
    last
}

#[tokio::test]
async fn telegrams_in_16_byte_chunks_at_line_rate_arrive_whole_and_promptly_through_noise() {
    let (mut master, _slave, path) = pty();
    let group = unique_group();
    let sub = Subscriber::join(group);
    let listener = Running::start(config(&path, group, |_| {}));
    within(10, "the port to open", sub.status_where(|s| s.port == PortState::Open)).await;

    // Noise before each telegram; the first teaches the listener the telegrams' pace, the others are read in a
    // few large reads, and each must still be published as soon as its last chunk is in.
    let sent = telegrams(5);
    let mut slowest = std::time::Duration::ZERO;
    for (i, raw) in sent.iter().enumerate() {
        let mut bytes = b"\0\xff noise \xfe\0".to_vec();
        bytes.extend(raw);
        let last = write_paced(&mut master, &bytes, 16).await;
        let t = within(10, "a telegram datagram", sub.telegram()).await;
        slowest = slowest.max(last.elapsed());
        assert_eq!(t.seq, i as u64 + 1);
        let text = std::str::from_utf8(raw).expect("ASCII");
        let gas = text.lines().find_map(|l| l.strip_prefix("0-1:24.2.1(")).expect("gas line");
        assert_eq!(
            serde_json::to_value(t.obis.get("0-1:24.2.1").expect("gas")).expect("json")[1],
            gas.rsplit('(').next().expect("value").trim_end_matches(')'),
            "telegram {i} whole"
        );
    }
    // A hold that overran a telegram's end would cost up to 250 ms; a loaded test machine takes a few ms.
    assert!(slowest < std::time::Duration::from_millis(150), "slowest telegram {slowest:?} after its last byte");
    let status = within(10, "a status", sub.status_where(|s| s.last_seq == Some(5))).await;
    assert_eq!((status.counters.telegrams, status.counters.crc_failures), (5, 0));
    assert_eq!(status.counters.discarded_bytes, 5 * 11, "only the noise was skipped");
    listener.stop().await;
}

#[tokio::test]
async fn compact_datagrams_carry_the_same_message_in_one_frame() {
    let (mut master, _slave, path) = pty();
    let group = unique_group();
    let sub = Subscriber::join(group);
    let listener = Running::start(config(&path, group, |raw| raw.multicast.message = "compact".into()));
    within(10, "the port to open", sub.status_where(|s| s.port == PortState::Open)).await;
    let sent = telegrams(1);
    master.write_all(&sent[0]).await.expect("write");
    let datagram = loop {
        let d = within(10, "a datagram", sub.raw()).await;
        if d.first() == Some(&shared::wire::compact::ZLIB_FIRST_BYTE) {
            break d;
        }
        // Status datagrams stay plain JSON.
        assert!(matches!(shared::wire::parse(&d), Ok(shared::wire::Message::Status(_))), "only statuses are plain");
    };
    assert!(datagram.len() <= shared::wire::compact::MAX_COMPACT, "{} bytes", datagram.len());
    let shared::wire::Message::Telegram(t) = shared::wire::parse(&datagram).expect("it reads") else {
        panic!("a telegram")
    };
    assert_eq!((t.seq, t.header.as_str()), (1, "SIM5P1HUB-SIMULATED"));
    assert!(t.values.power_kw.is_some() && t.values.devices.len() == 2);
    assert!(t.obis.get("1-0:1.8.1").is_some(), "the OBIS map fits compressed");
    listener.stop().await;
}
