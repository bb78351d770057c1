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
