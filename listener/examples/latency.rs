//! Latency of the listener: from a telegram's last byte written to a pseudo-terminal to its datagram at a
//! subscriber, through the real `p1-listener` binary, on loopback.
//!
//! For each telegram the example writes everything up to the CRC, waits 2 ms (so the listener has read and
//! buffered the head, as it would while a meter's burst trickles in at 115200 baud), then notes the time, writes
//! the last bytes (`CRC` CR LF) and waits for the datagram. It prints p50/p90/p99/max over all telegrams.
//!
//! With `--sealed`, the listener seals every datagram with a fresh LAN key (a key file in a temporary directory,
//! `--key-file`) and the subscriber opens it before reading the sequence number: the time includes sealing and
//! opening.
//!
//! ```text
//! cargo build --release -p p1hub-listener --bin p1-listener --example latency
//! target/release/examples/latency [--bin target/release/p1-listener] [--count 1000] [--sealed]
//! ```

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shared::simulate::Simulator;
use shared::wire::seal::Key;
use shared::wire::Message;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;
use tokio_serial::{SerialPort, SerialStream};

struct Args {
    bin: PathBuf,
    count: usize,
    sealed: bool,
}

fn args() -> anyhow::Result<Args> {
    // The binary next to this example by default: target/release/examples/latency -> target/release/p1-listener.
    let mut bin = std::env::current_exe()?
        .parent()
        .and_then(|p| p.parent())
        .map_or_else(|| PathBuf::from("p1-listener"), |p| p.join("p1-listener"));
    let mut count = 1000;
    let mut sealed = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bin" => bin = it.next().ok_or_else(|| anyhow::anyhow!("--bin needs a path"))?.into(),
            "--count" => count = it.next().ok_or_else(|| anyhow::anyhow!("--count needs a number"))?.parse()?,
            "--sealed" => sealed = true,
            other => anyhow::bail!("unknown argument {other}; use --bin PATH, --count N and --sealed"),
        }
    }
    anyhow::ensure!(count > 0, "--count must be at least 1");
    Ok(Args { bin, count, sealed })
}

fn subscriber(group: SocketAddrV4) -> anyhow::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind(&SocketAddr::V4(group).into())?;
    s.join_multicast_v4(group.ip(), &Ipv4Addr::LOCALHOST)?;
    s.set_nonblocking(true)?;
    Ok(UdpSocket::from_std(s.into())?)
}

/// The next telegram datagram's sequence number, skipping status datagrams; opened with `key` if sealed.
async fn next_seq(sub: &UdpSocket, buf: &mut [u8], key: Option<&Key>, opened: &mut Vec<u8>) -> anyhow::Result<u64> {
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), sub.recv(buf)).await??;
        let json = match key {
            Some(key) => {
                opened.clear();
                shared::wire::seal::open_into(std::slice::from_ref(key), &buf[..n], opened)?;
                &opened[..]
            }
            None => &buf[..n],
        };
        if let Message::Telegram(t) = shared::wire::parse(json)? {
            return Ok(t.seq);
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let (mut master, slave) = SerialStream::pair()?;
    let device = slave.name().ok_or_else(|| anyhow::anyhow!("the pty has no path"))?;
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let group = SocketAddrV4::new(Ipv4Addr::new(239, 255, 80, 99), port);
    let sub = subscriber(group)?;
    let keys = tempfile::tempdir()?;
    let key = if args.sealed { Some(Key::generate()?) } else { None };
    let mut key_args = Vec::new();
    if let Some(key) = &key {
        let path = keys.path().join("lan.key");
        std::fs::write(&path, format!("{}\n", *key.to_hex()))?;
        std::fs::set_permissions(&path, <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600))?;
        key_args = vec!["--key-file".to_owned(), path.display().to_string()];
    }

    let mut listener = Command::new(&args.bin)
        .args(["--config", "/dev/null", "--interface", "127.0.0.1", "--source", &device, "--group"])
        .arg(group.to_string())
        .args(&key_args)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", args.bin.display()))?;

    // Whatever the measurement ends in, the listener is stopped.
    let measured = measure(&args, &mut master, &sub, key.as_ref()).await;
    let _ = Command::new("kill").args(["-TERM", &listener.id().to_string()]).status();
    let _ = listener.wait();
    let mut latencies = measured?;

    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "latency, last byte on the pty -> datagram at a subscriber ({}), {} telegrams: p50 {:.0} µs, p90 {:.0} µs, \
         p99 {:.0} µs, max {:.0} µs",
        if args.sealed { "sealed, opened" } else { "open" },
        latencies.len(),
        us(pick(0.50)),
        us(pick(0.90)),
        us(pick(0.99)),
        us(pick(1.0))
    );
    Ok(())
}

/// Warms the listener up, then times `args.count` telegrams.
async fn measure(
    args: &Args,
    master: &mut SerialStream,
    sub: &UdpSocket,
    key: Option<&Key>,
) -> anyhow::Result<Vec<Duration>> {
    let mut opened = Vec::with_capacity(4096);
    let mut sim = Simulator::new(7);
    let start = jiff::Timestamp::from_second(1_717_243_200)?;
    let mut buf = vec![0u8; 65_536];
    let mut telegram = |i: usize| {
        let at = start.checked_add(jiff::SignedDuration::from_secs(i as i64)).unwrap_or(start);
        sim.telegram_at(at.to_zoned(jiff::tz::TimeZone::UTC))
    };

    // Warm up until the listener has the port open and publishes.
    let mut seq = 0;
    for i in 0..50 {
        master.write_all(&telegram(i)).await?;
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(200), next_seq(sub, &mut buf, key, &mut opened)).await
        {
            seq = s;
            break;
        }
    }
    anyhow::ensure!(seq > 0, "the listener published nothing: is {} built?", args.bin.display());
    // Drain what the warm-up left.
    while let Ok(Ok(s)) =
        tokio::time::timeout(Duration::from_millis(300), next_seq(sub, &mut buf, key, &mut opened)).await
    {
        seq = s;
    }

    let mut latencies = Vec::with_capacity(args.count);
    for i in 0..args.count {
        let t = telegram(1000 + i);
        let bang = t.iter().rposition(|&b| b == b'!').unwrap_or(t.len() - 1);
        master.write_all(&t[..=bang]).await?;
        tokio::time::sleep(Duration::from_millis(2)).await;
        let before = Instant::now();
        master.write_all(&t[bang + 1..]).await?;
        let got = next_seq(sub, &mut buf, key, &mut opened).await?;
        latencies.push(before.elapsed());
        anyhow::ensure!(got == seq + 1, "expected seq {}, got {got}", seq + 1);
        seq = got;
    }
    Ok(latencies)
}
