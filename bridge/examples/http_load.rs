//! `scripts/bench-http`'s WebSocket probe: opens `--clients` WebSocket clients on the bridge's `/ws` (and
//! `--stalled` more that never read, with a 4 KiB receive buffer), sends `--count` simulated telegrams as multicast
//! datagrams on 127.0.0.1 (TTL 0) at `--rate` per second, and prints one JSON line: how many reading clients got
//! every telegram, and the latency from datagram sent to message received over all reading clients
//! (`p50_ms`, `p99_ms`, `max_ms`).
//!
//! `cargo run --release -p p1hub-bridge --example http_load -- --group 239.255.80.97:4197 --http 127.0.0.1:8480
//! --clients 500 --stalled 50 --count 30 --rate 1`

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use shared::engine::{Engine, EngineOptions, Event as EngineEvent};
use shared::simulate::Simulator;
use shared::wire::{encode, Message, Origin};
use socket2::{Domain, Protocol, Socket, Type};
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_owned())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let group: SocketAddr = arg(&args, "--group", "239.255.80.97:4197").parse()?;
    let http: SocketAddr = arg(&args, "--http", "127.0.0.1:8480").parse()?;
    let clients: usize = arg(&args, "--clients", "500").parse()?;
    let stalled: usize = arg(&args, "--stalled", "0").parse()?;
    let count: u64 = arg(&args, "--count", "30").parse()?;
    let rate: f64 = arg(&args, "--rate", "1").parse()?;
    let listener = arg(&args, "--listener", "bench");

    let mut sim = Simulator::new(12);
    let mut engine = Engine::new(EngineOptions::default());
    let origin = Origin { listener: listener.clone(), boot_id: format!("{:016x}", std::process::id()) };
    let start = jiff::Timestamp::now();
    let mut datagrams = Vec::new();
    for i in 0..count {
        let at = start + jiff::SignedDuration::from_secs(i as i64);
        engine.push(&sim.telegram_at(at.in_tz("Europe/Amsterdam")?), Instant::now());
        while let Some(ev) = engine.next_event() {
            if let EngineEvent::Telegram(c) = ev {
                let seq = datagrams.len() as u64 + 1;
                datagrams.push(encode(&Message::Telegram(Box::new(c.into_message(origin.clone(), seq, at)))));
            }
        }
    }

    // The stalled clients: connected and upgraded, then never read.
    let mut stalled_sockets = Vec::new();
    for _ in 0..stalled {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(4096)?;
        let stream = socket.connect(http).await?;
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{http}/ws"), stream).await?;
        stalled_sockets.push(ws);
    }

    // The reading clients: each records the arrival time of every telegram by sequence number.
    let sent_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; count as usize + 1]));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws?listener={listener}")).await?;
        let sent_at = sent_at.clone();
        let listener = listener.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = 0u64;
            let mut latencies = Vec::new();
            while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                let WsMessage::Text(t) = m else { continue };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str()) else { continue };
                if v["type"] != "telegram" || v["listener"] != listener.as_str() {
                    continue;
                }
                let Some(seq) = v["seq"].as_u64() else { continue };
                let at = sent_at.lock().ok().and_then(|s| s.get(seq as usize).copied().flatten());
                if let Some(at) = at {
                    got += 1;
                    latencies.push(at.elapsed());
                }
                if seq == count {
                    break;
                }
            }
            (got, latencies)
        }));
    }

    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_multicast_if_v4(&Ipv4Addr::LOCALHOST)?;
    socket.set_multicast_ttl_v4(0)?;
    socket.set_multicast_loop_v4(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    let group = group.into();
    let period = Duration::from_secs_f64(1.0 / rate);
    let t0 = tokio::time::Instant::now();
    for (i, d) in datagrams.iter().enumerate() {
        tokio::time::sleep_until(t0 + period * i as u32).await;
        if let Ok(mut s) = sent_at.lock() {
            s[i + 1] = Some(Instant::now());
        }
        socket.send_to(d, &group)?;
    }

    let mut complete = 0usize;
    let mut all = Vec::new();
    for t in tasks {
        let (got, lat) = t.await?;
        if got == count {
            complete += 1;
        }
        all.extend(lat);
    }
    all.sort();
    let q = |p: f64| {
        all.get(((all.len() as f64 * p).ceil() as usize).saturating_sub(1)).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{{\"clients\":{clients},\"stalled\":{stalled},\"telegrams\":{count},\"clients_with_every_telegram\":{complete},\
         \"deliveries\":{},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2}}}",
        all.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    );
    drop(stalled_sockets);
    Ok(())
}
