//! `scripts/bench-bridge`'s probe: sends simulated telegrams as multicast datagrams on 127.0.0.1 (TTL 0) at a
//! fixed rate, subscribes to the bridge's state topic on the broker, and prints the end-to-end latency (datagram
//! sent -> MQTT message received) as one JSON line: `{"sent":..,"received":..,"p50_ms":..,"p99_ms":..,"max_ms":..}`.
//!
//! `cargo run --release -p p1hub-bridge --example bridge_latency -- --group 239.255.80.96:4196 --broker 127.0.0.1:1883
//! --count 60 --rate 1`

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{arg, datagrams, multicast_sender, percentile_ms};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let group: SocketAddr = arg(&args, "--group", "239.255.80.96:4196").parse()?;
    let broker: SocketAddr = arg(&args, "--broker", "127.0.0.1:1883").parse()?;
    let count: u64 = arg(&args, "--count", "60").parse()?;
    let rate: f64 = arg(&args, "--rate", "1").parse()?;
    let listener = arg(&args, "--listener", "bench");

    let datagrams = datagrams(11, count, &listener)?;

    let mut options =
        MqttOptions::new(format!("latency-{}", std::process::id()), broker.ip().to_string(), broker.port());
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    client.subscribe(format!("p1hub/{listener}/state"), QoS::AtMostOnce).await?;
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await? {
            break;
        }
    }
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let receiver = {
        let (sent, latencies) = (sent.clone(), latencies.clone());
        tokio::spawn(async move {
            while let Ok(event) = eventloop.poll().await {
                let Event::Incoming(Packet::Publish(p)) = event else { continue };
                let now = Instant::now();
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(&p.payload) else { continue };
                let Some(seq) = v.get("seq").and_then(serde_json::Value::as_u64) else { continue };
                if let Some(at) = sent.lock().map_err(|_| ()).ok().and_then(|m| m.get(&seq).copied()) {
                    if let Ok(mut l) = latencies.lock() {
                        l.push(now - at);
                    }
                }
            }
        })
    };

    let socket = multicast_sender()?;
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut tick = tokio::time::interval(period);
    for (i, d) in datagrams.iter().enumerate() {
        tick.tick().await;
        if let Ok(mut m) = sent.lock() {
            m.insert(i as u64 + 1, Instant::now());
        }
        socket.send_to(d, group)?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    receiver.abort();

    let mut l = latencies.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    l.sort();
    let pct = |p: f64| percentile_ms(&l, p).unwrap_or(f64::NAN);
    println!(
        "{{\"sent\":{},\"received\":{},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
        datagrams.len(),
        l.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}
