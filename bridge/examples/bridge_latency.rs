//! `scripts/bench-bridge`'s probe: sends simulated telegrams as multicast datagrams on 127.0.0.1 (TTL 0) at a
//! fixed rate, subscribes to the bridge's state topic on the broker, and prints the end-to-end latency (datagram
//! sent -> MQTT message received) as one JSON line: `{"sent":..,"received":..,"p50_ms":..,"p99_ms":..,"max_ms":..}`.
//!
//! `cargo run --release -p p1hub-bridge --example latency -- --group 239.255.80.96:4196 --broker 127.0.0.1:1883
//! --count 60 --rate 1`

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use shared::engine::{Engine, EngineOptions, Event as EngineEvent};
use shared::simulate::Simulator;
use shared::wire::{encode, Message, Origin};
use socket2::{Domain, Protocol, Socket, Type};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let group: SocketAddr = arg(&args, "--group", "239.255.80.96:4196").parse()?;
    let broker: SocketAddr = arg(&args, "--broker", "127.0.0.1:1883").parse()?;
    let count: u64 = arg(&args, "--count", "60").parse()?;
    let rate: f64 = arg(&args, "--rate", "1").parse()?;
    let listener = arg(&args, "--listener", "bench");

    // Telegrams first, so making them costs nothing during the measurement.
    let mut sim = Simulator::new(11);
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

    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_multicast_if_v4(&Ipv4Addr::LOCALHOST)?;
    socket.set_multicast_ttl_v4(0)?;
    socket.set_multicast_loop_v4(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    let socket: std::net::UdpSocket = socket.into();
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
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p).ceil() as usize).saturating_sub(1)).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
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
