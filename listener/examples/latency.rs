//! Latency of the listener: from a telegram's last byte written to a pseudo-terminal to its datagram at a
//! subscriber, through the real `p1-listener` binary, on loopback.
//!
//! By default (`--chunk 0`) the example writes everything up to the CRC, waits 2 ms (so the listener has read and
//! buffered the head, as it would while a meter's burst trickles in at 115200 baud), then notes the time, writes
//! the last bytes (`CRC` CR LF) and waits for the datagram. With `--chunk N` it writes each telegram in N-byte
//! chunks paced like a line at `--baud` (10 bits a byte), one telegram every `--interval-ms`, and times the last
//! chunk. It prints p50/p90/p99/max over all telegrams, the listener's CPU per telegram (from
//! `/proc/PID/task/*/schedstat`, nanoseconds), its RSS, and with `--idle S` its CPU per second with no input.
//!
//! With `--sealed`, the listener seals every datagram with a fresh LAN key (a key file in a temporary directory,
//! `--key-file`) and the subscriber opens it before reading the sequence number: the time includes sealing and
//! opening.
//!
//! ```text
//! cargo build --release -p p1hub-listener --example latency
//! target/release/examples/latency [--bin target/release/p1-listener] [--count 1000] [--chunk 16] [--baud 115200]
//!     [--interval-ms 1000] [--idle 30] [--sealed]
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
    /// Bytes per write to the pty (0: the whole telegram but its CRC in one write, then the CRC 2 ms later).
    chunk: usize,
    /// Line rate the chunks are paced at (10 bits a byte).
    baud: u32,
    /// Time from one telegram's start to the next.
    interval: Duration,
    /// Seconds of no input over which the idle cost is measured (0: not measured).
    idle: u64,
    /// Seal the datagrams (the listener) and open them (the subscriber).
    sealed: bool,
}

fn args() -> anyhow::Result<Args> {
    // The binary next to this example by default: target/release/examples/latency -> target/release/p1-listener.
    let mut bin = std::env::current_exe()?
        .parent()
        .and_then(|p| p.parent())
        .map_or_else(|| PathBuf::from("p1-listener"), |p| p.join("p1-listener"));
    let (mut count, mut chunk, mut baud, mut interval_ms, mut idle) = (1000, 0, 115_200, 0u64, 0);
    let mut sealed = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| anyhow::anyhow!("{name} needs a value"));
        match arg.as_str() {
            "--bin" => bin = value("--bin")?.into(),
            "--count" => count = value("--count")?.parse()?,
            "--chunk" => chunk = value("--chunk")?.parse()?,
            "--baud" => baud = value("--baud")?.parse()?,
            "--interval-ms" => interval_ms = value("--interval-ms")?.parse()?,
            "--idle" => idle = value("--idle")?.parse()?,
            "--sealed" => sealed = true,
            other => anyhow::bail!(
                "unknown argument {other}; use --bin PATH, --count N, --chunk BYTES, --baud RATE, --interval-ms MS, \
                 --idle SECONDS, --sealed"
            ),
        }
    }
    anyhow::ensure!(count > 0, "--count must be at least 1");
    anyhow::ensure!(baud > 0, "--baud must be at least 1");
    Ok(Args { bin, count, chunk, baud, interval: Duration::from_millis(interval_ms), idle, sealed })
}

/// CPU time of every thread of process `pid` so far, from `/proc/PID/task/*/schedstat` (nanoseconds on a CPU,
/// not clock ticks).
fn cpu_ns(pid: u32) -> anyhow::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let text = std::fs::read_to_string(task?.path().join("schedstat")).unwrap_or_default();
        total += text.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    }
    Ok(total)
}

/// `VmRSS` and `VmHWM` of process `pid`, KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
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
    let measured = measure(&args, &mut master, &sub, listener.id(), key.as_ref()).await;
    let _ = Command::new("kill").args(["-TERM", &listener.id().to_string()]).status();
    let _ = listener.wait();
    let mut m = measured?;
    let latencies = &mut m.latencies;
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let input = if args.chunk == 0 {
        "whole telegrams (the CRC 2 ms after the rest)".to_owned()
    } else {
        format!("{}-byte chunks at {} baud", args.chunk, args.baud)
    };
    println!("input: {input}, one telegram every {} ms", args.interval.as_millis());
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
    println!(
        "CPU (schedstat, all threads): {:.1} µs per telegram ({} telegrams in {:.1} s, idle time included)",
        m.busy_ns as f64 / 1e3 / args.count as f64,
        args.count,
        m.busy_wall.as_secs_f64()
    );
    if let Some((ns, wall)) = m.idle {
        println!(
            "idle (port open, no input): {:.1} µs of CPU per second over {:.0} s",
            ns as f64 / 1e3 / wall.as_secs_f64(),
            wall.as_secs_f64()
        );
    }
    println!("RSS {} KiB (peak {} KiB)", m.rss.0, m.rss.1);
    Ok(())
}

struct Measured {
    latencies: Vec<Duration>,
    busy_ns: u64,
    busy_wall: Duration,
    idle: Option<(u64, Duration)>,
    rss: (u64, u64),
}

/// Warms the listener up, then times `args.count` telegrams, then (with `--idle`) measures it idle.
async fn measure(
    args: &Args,
    master: &mut SerialStream,
    sub: &UdpSocket,
    pid: u32,
    key: Option<&Key>,
) -> anyhow::Result<Measured> {
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
    // A few telegrams as the run will send them (the listener learns their pace), then drain what is left.
    for i in 0..3 {
        let t = telegram(100 + i);
        let _ = write_telegram(args, master, &t).await?;
        tokio::time::sleep(args.interval.max(Duration::from_millis(50))).await;
    }
    while let Ok(Ok(s)) =
        tokio::time::timeout(Duration::from_millis(300), next_seq(sub, &mut buf, key, &mut opened)).await
    {
        seq = s;
    }

    let mut latencies = Vec::with_capacity(args.count);
    let (cpu0, wall0) = (cpu_ns(pid)?, Instant::now());
    for i in 0..args.count {
        let began = Instant::now();
        let t = telegram(1000 + i);
        let before = write_telegram(args, master, &t).await?;
        let got = next_seq(sub, &mut buf, key, &mut opened).await?;
        latencies.push(before.elapsed());
        anyhow::ensure!(got == seq + 1, "expected seq {}, got {got}", seq + 1);
        seq = got;
        if let Some(rest) = args.interval.checked_sub(began.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    let (busy_ns, busy_wall) = (cpu_ns(pid)? - cpu0, wall0.elapsed());
    let idle = if args.idle > 0 {
        let (cpu0, wall0) = (cpu_ns(pid)?, Instant::now());
        tokio::time::sleep(Duration::from_secs(args.idle)).await;
        Some((cpu_ns(pid)? - cpu0, wall0.elapsed()))
    } else {
        None
    };
    Ok(Measured { latencies, busy_ns, busy_wall, idle, rss: rss_kib(pid) })
}

/// Writes one telegram as the options say; returns the instant its last byte was written.
async fn write_telegram(args: &Args, master: &mut SerialStream, t: &[u8]) -> anyhow::Result<Instant> {
    if args.chunk == 0 {
        let bang = t.iter().rposition(|&b| b == b'!').unwrap_or(t.len() - 1);
        master.write_all(&t[..=bang]).await?;
        tokio::time::sleep(Duration::from_millis(2)).await;
        let before = Instant::now();
        master.write_all(&t[bang + 1..]).await?;
        return Ok(before);
    }
    // Paced like a line: each chunk when its bytes would have arrived (10 bits a byte). Timers of the runtime are
    // millisecond-grained, so the pacing sleeps the thread (nothing else runs on it meanwhile).
    let per_byte = Duration::from_secs(10) / args.baud;
    let start = Instant::now();
    let mut sent = 0;
    let mut last = start;
    for chunk in t.chunks(args.chunk) {
        sent += chunk.len();
        let due = start + per_byte * sent as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        last = Instant::now();
        master.write_all(chunk).await?;
    }
    Ok(last)
}
