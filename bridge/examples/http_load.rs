//! `scripts/bench-http`'s WebSocket probe: opens `--clients` WebSocket clients on the bridge's `/ws` (and
//! `--stalled` more that never read, with a 4 KiB receive buffer), sends `--count` simulated telegrams as multicast
//! datagrams on 127.0.0.1 (TTL 0) at `--rate` per second, and prints one JSON line: how many reading clients got
//! every telegram, and the latency from datagram sent to message received over all reading clients
//! (`p50_ms`, `p99_ms`, `max_ms`).
//!
//! `cargo run --release -p p1hub-bridge --example http_load -- --group 239.255.80.97:4197 --http 127.0.0.1:8480
//! --clients 500 --stalled 50 --count 30 --rate 1`

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{arg, datagrams, multicast_sender, percentile_ms};
use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;

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

    let datagrams = datagrams(12, count, &listener)?;

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

    let socket = multicast_sender()?;
    let period = Duration::from_secs_f64(1.0 / rate);
    let t0 = tokio::time::Instant::now();
    for (i, d) in datagrams.iter().enumerate() {
        tokio::time::sleep_until(t0 + period * i as u32).await;
        if let Ok(mut s) = sent_at.lock() {
            s[i + 1] = Some(Instant::now());
        }
        socket.send_to(d, group)?;
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
    let q = |p: f64| percentile_ms(&all, p).unwrap_or(0.0);
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
