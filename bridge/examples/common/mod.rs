//! What the two bench probes (`bridge_latency`, `http_load`) share: arguments, the simulated telegrams as
//! datagrams, the loopback multicast sender and the percentile of the latencies.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use shared::engine::{Engine, EngineOptions, Event as EngineEvent};
use shared::simulate::Simulator;
use shared::wire::{encode, Message, Origin};
use socket2::{Domain, Protocol, Socket, Type};

/// The value after `name` in `args`, or `default`.
pub fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_owned())
}

/// `count` simulated telegrams (one a second from now, simulator seed `seed`) as the listener `listener` would
/// send them, sequence numbers from 1; made first, so making them costs nothing during the measurement.
pub fn datagrams(seed: u64, count: u64, listener: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut sim = Simulator::new(seed);
    let mut engine = Engine::new(EngineOptions::default());
    let origin = Origin { listener: listener.to_owned(), boot_id: format!("{:016x}", std::process::id()) };
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
    Ok(datagrams)
}

/// A UDP socket that sends multicast on 127.0.0.1 only (TTL 0, loop on).
pub fn multicast_sender() -> anyhow::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_multicast_if_v4(&Ipv4Addr::LOCALHOST)?;
    socket.set_multicast_ttl_v4(0)?;
    socket.set_multicast_loop_v4(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    Ok(socket.into())
}

/// The `p` quantile (0..=1) of the sorted `latencies` in milliseconds; `None` when there are none.
pub fn percentile_ms(latencies: &[Duration], p: f64) -> Option<f64> {
    latencies.get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1)).map(|d| d.as_secs_f64() * 1000.0)
}
