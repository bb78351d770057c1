//! Latency of the listener: from a telegram's last byte written to a pseudo-terminal to its datagram at a
//! subscriber, through the real `p1-listener` binary, on loopback.
//!
//! For each telegram the example writes everything up to the CRC, waits 2 ms (so the listener has read and
//! buffered the head, as it would while a meter's burst trickles in at 115200 baud), then notes the time, writes
//! the last bytes (`CRC` CR LF) and waits for the datagram. It prints p50/p90/p99/max over all telegrams.
//!
//! ```text
//! cargo build --release -p p1hub-listener --bin p1-listener --example latency
//! target/release/examples/latency [--bin target/release/p1-listener] [--count 1000]
//! ```

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shared::simulate::Simulator;
use shared::wire::Message;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;
use tokio_serial::{SerialPort, SerialStream};

struct Args {
    bin: PathBuf,
    count: usize,
}

fn args() -> anyhow::Result<Args> {
    // The binary next to this example by default: target/release/examples/latency -> target/release/p1-listener.
    let mut bin = std::env::current_exe()?
        .parent()
        .and_then(|p| p.parent())
        .map_or_else(|| PathBuf::from("p1-listener"), |p| p.join("p1-listener"));
    let mut count = 1000;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bin" => bin = it.next().ok_or_else(|| anyhow::anyhow!("--bin needs a path"))?.into(),
            "--count" => count = it.next().ok_or_else(|| anyhow::anyhow!("--count needs a number"))?.parse()?,
            other => anyhow::bail!("unknown argument {other}; use --bin PATH and --count N"),
        }
    }
    anyhow::ensure!(count > 0, "--count must be at least 1");
    Ok(Args { bin, count })
}

fn subscriber(group: SocketAddrV4) -> anyhow::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind(&SocketAddr::V4(group).into())?;
    s.join_multicast_v4(group.ip(), &Ipv4Addr::LOCALHOST)?;
    s.set_nonblocking(true)?;
    Ok(UdpSocket::from_std(s.into())?)
}

/// The next telegram datagram's sequence number, skipping status datagrams.
async fn next_seq(sub: &UdpSocket, buf: &mut [u8]) -> anyhow::Result<u64> {
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), sub.recv(buf)).await??;
        if let Message::Telegram(t) = shared::wire::parse(&buf[..n])? {
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

    let mut listener = Command::new(&args.bin)
        .args(["--config", "/dev/null", "--interface", "127.0.0.1", "--source", &device, "--group"])
        .arg(group.to_string())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", args.bin.display()))?;

    // Whatever the measurement ends in, the listener is stopped.
    let measured = measure(&args, &mut master, &sub).await;
    let _ = Command::new("kill").args(["-TERM", &listener.id().to_string()]).status();
    let _ = listener.wait();
    let mut latencies = measured?;

    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "latency, last byte on the pty -> datagram at a subscriber, {} telegrams: p50 {:.0} µs, p90 {:.0} µs, \
         p99 {:.0} µs, max {:.0} µs",
        latencies.len(),
        us(pick(0.50)),
        us(pick(0.90)),
        us(pick(0.99)),
        us(pick(1.0))
    );
    Ok(())
}

/// Warms the listener up, then times `args.count` telegrams.
async fn measure(args: &Args, master: &mut SerialStream, sub: &UdpSocket) -> anyhow::Result<Vec<Duration>> {
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
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(200), next_seq(sub, &mut buf)).await {
            seq = s;
            break;
        }
    }
    anyhow::ensure!(seq > 0, "the listener published nothing: is {} built?", args.bin.display());
    // Drain what the warm-up left.
    while let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(300), next_seq(sub, &mut buf)).await {
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
        let got = next_seq(sub, &mut buf).await?;
        latencies.push(before.elapsed());
        anyhow::ensure!(got == seq + 1, "expected seq {}, got {got}", seq + 1);
        seq = got;
    }
    Ok(latencies)
}
