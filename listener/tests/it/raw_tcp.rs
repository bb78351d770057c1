//! The raw telegram TCP server: every client gets identical bytes; a stalled client is dropped without delaying
//! the others.

use std::time::Duration;

use shared::wire::PortState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_serial::{SerialPort, SerialStream};

use crate::support::{config, free_port, telegrams, unique_group, within, Running, Subscriber};

async fn connect(port: u16, receive_buffer: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(size) = receive_buffer {
        // Keep the kernel from buffering megabytes for the client that never reads.
        socket.set_recv_buffer_size(size).expect("buffer");
    }
    socket.connect(([127, 0, 0, 1], port).into()).await.expect("connect to the raw server")
}

#[tokio::test]
async fn three_clients_get_identical_bytes_while_a_stalled_fourth_is_dropped() {
    let (mut master, slave) = SerialStream::pair().expect("a pty pair");
    let path = slave.name().expect("path");
    let group = unique_group();
    let port = free_port();
    let sub = Subscriber::join(group);
    let listener = Running::start(config(&path, group, |raw| {
        raw.listener.raw_tcp = Some(format!("127.0.0.1:{port}"));
        raw.listener.raw_tcp_client_buffer = 65_536;
    }));
    within(10, "the port to open", sub.status_where(|s| s.port == PortState::Open)).await;

    let mut readers = Vec::new();
    for _ in 0..3 {
        readers.push(connect(port, None).await);
    }
    let mut stalled = connect(port, Some(4096)).await;

    // One telegram that everybody reads proves all four are connected before the burst.
    let sent = telegrams(1000);
    master.write_all(&sent[0]).await.expect("write");
    let mut first = vec![0u8; sent[0].len()];
    for r in readers.iter_mut().chain(std::iter::once(&mut stalled)) {
        within(10, "the first telegram on every client", r.read_exact(&mut first)).await.expect("read");
        assert_eq!(first, sent[0]);
    }

    // The burst: about 1 MB, far beyond the stalled client's 64 KiB budget plus what the kernel buffers for it.
    let expected: Vec<u8> = sent[1..].concat();
    let tasks: Vec<_> = readers
        .into_iter()
        .map(|mut r| {
            let len = expected.len();
            tokio::spawn(async move {
                let mut got = vec![0u8; len];
                r.read_exact(&mut got).await.map(|_| got)
            })
        })
        .collect();
    let start = std::time::Instant::now();
    master.write_all(&expected).await.expect("write the burst");
    for task in tasks {
        let got = within(20, "every byte on a reading client", task).await.expect("task").expect("read");
        assert!(got == expected, "a reading client got different bytes");
    }
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(10), "the readers were held up: {elapsed:?}");

    // The stalled client now reads: it gets what was buffered for it, then the connection ends early.
    let mut rest = Vec::new();
    let _ = within(10, "the stalled client to be cut off", stalled.read_to_end(&mut rest)).await;
    assert!(rest.len() < expected.len() / 4, "the stalled client got {} of {} bytes", rest.len(), expected.len());
    assert!(expected.starts_with(&rest), "what the stalled client got is in order, just cut short");
    listener.stop().await;
    let _ = master.shutdown().await;
}

/// Connects to the raw server, retrying while it is still starting.
async fn connect_when_up(port: u16) -> TcpStream {
    within(10, "the raw server to listen", async {
        loop {
            match TcpStream::connect(("127.0.0.1", port)).await {
                Ok(s) => return s,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
}

/// Reads until the server closes; a reset (`ECONNRESET`) fails the test, also one that came right after the FIN
/// (a read then still sees the end of stream, but the socket keeps the error).
async fn read_until_clean_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    within(10, "the server to close", stream.read_to_end(&mut got)).await.expect("a clean end of stream, not a reset");
    assert!(stream.take_error().expect("SO_ERROR").is_none(), "the connection was reset after its end");
    got
}

#[tokio::test]
async fn clients_read_a_clean_end_of_stream_on_shutdown() {
    let group = unique_group();
    let port = free_port();
    let sub = Subscriber::join(group);
    let listener = Running::start(config("simulate", group, |raw| {
        raw.listener.raw_tcp = Some(format!("127.0.0.1:{port}"));
    }));
    let mut client = connect_when_up(port).await;
    // Something the server never reads to the end would make the close a reset, if it did not read it.
    client.write_all(b"hello\r\n").await.expect("write");
    within(10, "a telegram", sub.telegram()).await;
    let mut first = [0u8; 5];
    within(10, "a telegram on the raw client", client.read_exact(&mut first)).await.expect("read");
    assert_eq!(&first, b"/SIM5");
    listener.stop().await;
    let rest = read_until_clean_end(&mut client).await;
    assert!(rest.ends_with(b"\r\n"), "the last telegram is whole");
}

#[tokio::test]
async fn clients_read_a_clean_end_of_stream_when_a_replay_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("capture.txt");
    let sent = telegrams(3);
    std::fs::write(&path, sent.concat()).expect("write");
    let group = unique_group();
    let port = free_port();
    let listener = Running::start(config(&format!("file:{}", path.display()), group, |raw| {
        raw.listener.raw_tcp = Some(format!("127.0.0.1:{port}"));
        // Paced, so the client is connected before the second telegram.
        raw.listener.replay = "500ms".into();
    }));
    let mut client = connect_when_up(port).await;
    let got = read_until_clean_end(&mut client).await;
    listener.finished().await.expect("the replay ends cleanly");
    let all = sent.concat();
    assert!(!got.is_empty() && all.ends_with(&got), "whole telegrams up to the last: {} bytes", got.len());
}

#[tokio::test]
async fn a_client_over_the_limit_is_closed_cleanly_and_a_closed_client_frees_its_slot() {
    let group = unique_group();
    let port = free_port();
    // No telegram ever arrives: slots must be freed by the clients' own closes.
    let listener = Running::start(config(&format!("tcp://127.0.0.1:{}", free_port()), group, |raw| {
        raw.listener.raw_tcp = Some(format!("127.0.0.1:{port}"));
        raw.listener.raw_tcp_max_clients = 2;
    }));
    let first = connect_when_up(port).await;
    let _second = connect_when_up(port).await;
    let mut third = connect_when_up(port).await;
    assert!(read_until_clean_end(&mut third).await.is_empty());
    drop(first);
    // The first's slot comes free at once, without any telegram: a new client is kept.
    let kept = within(10, "a slot to come free", async {
        loop {
            let mut c = connect_when_up(port).await;
            let mut byte = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(300), c.read(&mut byte)).await {
                Err(_still_open) => return c,
                Ok(r) => assert_eq!(r.expect("a clean close, not a reset"), 0),
            }
        }
    })
    .await;
    listener.stop().await;
    drop(kept);
}

/// The scenario of issue 14: with 128 file descriptors, the source gone for a moment and 1100 raw clients
/// connecting and closing meanwhile, the listener must still reopen the source and serve telegrams.
#[tokio::test]
async fn connect_close_floods_under_a_low_fd_limit_do_not_stop_the_source_from_reopening() {
    let bridge = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the bridge");
    let bridge_addr = bridge.local_addr().expect("address");
    let group = unique_group();
    let port = free_port();
    let log = tempfile::NamedTempFile::new().expect("a log file");
    let mut child = tokio::process::Command::new("prlimit")
        .arg("--nofile=128:128")
        .arg(env!("CARGO_BIN_EXE_p1-listener"))
        .current_dir(std::env::temp_dir())
        .arg("--source")
        .arg(format!("tcp://{bridge_addr}"))
        .args(["--interface", "127.0.0.1", "--raw-tcp", &format!("127.0.0.1:{port}"), "--group"])
        .arg(group.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(log.reopen().expect("log"))
        .kill_on_drop(true)
        .spawn()
        .expect("start the listener under prlimit");
    let sent = telegrams(20);
    let show_log = || std::fs::read_to_string(log.path()).unwrap_or_default();

    // Telegrams flow; then the bridge goes away.
    let (mut conn, _) = within(10, "the listener to connect", bridge.accept()).await.expect("accept");
    let mut watcher = connect_when_up(port).await;
    assert!(
        relay_until_seen(&mut conn, &mut watcher, &sent[..10]).await,
        "no telegram on the raw server at first:\n{}",
        show_log()
    );
    drop(watcher);
    drop(conn);
    drop(bridge);

    // 1100 connect/close cycles while no telegram arrives to flush anything. A listener out of file descriptors
    // stops accepting, and once its backlog is full connects hang: give up on the flood then.
    let mut hanging = 0;
    for _ in 0..1100 {
        match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(("127.0.0.1", port))).await {
            Ok(Ok(s)) => {
                hanging = 0;
                drop(s);
            }
            // The backlog may fill for a moment while the listener catches up.
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(_) if hanging < 5 => hanging += 1,
            Err(_) => break,
        }
    }
    assert!(child.try_wait().expect("status").is_none(), "the listener died:\n{}", show_log());

    // The bridge comes back: the listener reconnects and telegrams flow again, on the raw server too.
    let bridge = tokio::net::TcpListener::bind(bridge_addr).await.expect("rebind the bridge");
    let accepted = tokio::time::timeout(Duration::from_secs(30), bridge.accept()).await;
    let Ok(Ok((mut conn, _))) = accepted else {
        panic!("the listener did not reconnect to the source:\n{}", show_log());
    };
    let mut watcher =
        within(10, "a raw client to be accepted", TcpStream::connect(("127.0.0.1", port))).await.expect("connect");
    assert!(
        relay_until_seen(&mut conn, &mut watcher, &sent[10..]).await,
        "no telegram on the raw server after the source came back:\n{}",
        show_log()
    );
    assert!(child.try_wait().expect("status").is_none(), "the listener died:\n{}", show_log());
    child.kill().await.expect("kill");
}

/// Writes telegrams to the bridge connection, one every half second, until one comes out of the raw server whole
/// (the raw client may be accepted a moment after its connect returned). `false` if none did.
async fn relay_until_seen(bridge: &mut TcpStream, raw: &mut TcpStream, telegrams: &[Vec<u8>]) -> bool {
    for t in telegrams {
        bridge.write_all(t).await.expect("write to the listener");
        let mut buf = vec![0u8; t.len()];
        if let Ok(read) = tokio::time::timeout(Duration::from_millis(500), raw.read_exact(&mut buf)).await {
            read.expect("read the raw server");
            return telegrams.contains(&buf);
        }
    }
    false
}
