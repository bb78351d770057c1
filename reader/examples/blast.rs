//! Sends telegram datagrams to a multicast group on loopback at a given rate, for `scripts/bench-reader`.
//!
//! `blast --group ADDR:PORT --count N --rate PER_SECOND [--listener NAME] [--size BYTES]`
//!
//! The telegram is a three-phase DSMR 5 message of the simulated meter (about 1.2 KB on the wire); each copy gets
//! the next sequence number and the current time. Datagrams leave through 127.0.0.1 with TTL 0, so they never
//! leave this host. `--size` pads the meter's text message so that every datagram is about that large (up to the
//! largest valid one, 65 507 bytes), for `scripts/reader-disk-full`. Prints the rate actually achieved.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use shared::engine::{Engine, EngineOptions, Event};
use shared::wire::{encode, Message, Origin};
use socket2::{Domain, Protocol, Socket, Type};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut group, mut count, mut rate, mut listener) = (None, 10_000_u64, 1_000_f64, "bench".to_owned());
    let mut target_size: Option<usize> = None;
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--group" => group = Some(value()?.parse::<SocketAddr>()?),
            "--count" => count = value()?.parse()?,
            "--rate" => rate = value()?.parse()?,
            "--listener" => listener = value()?,
            "--size" => target_size = Some(value()?.parse()?),
            other => bail!("unexpected argument {other:?}"),
        }
    }
    let group = group.context("--group ADDR:PORT is required")?;

    let tz = jiff::tz::TimeZone::get("Europe/Amsterdam")?;
    let mut engine = Engine::new(EngineOptions { max_telegram_bytes: 8192, timezone: tz.clone(), decryption: None });
    engine
        .push(&shared::simulate::Simulator::new(1).telegram_at(jiff::Zoned::now().with_time_zone(tz)), Instant::now());
    let Some(Event::Telegram(checked)) = engine.next_event() else { bail!("the simulator gave no telegram") };
    let origin = Origin { listener, boot_id: format!("{:016x}", std::process::id()) };
    let mut template = checked.into_message(origin, 0, jiff::Timestamp::now());
    if let Some(want) = target_size {
        let base = encode(&Message::Telegram(Box::new(template.clone()))).len();
        // Room for a five-digit sequence number and a longer time stamp.
        let pad = want.saturating_sub(base + 16);
        template.values.text_message.get_or_insert_with(String::new).push_str(&"x".repeat(pad));
    }

    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_multicast_if_v4(&Ipv4Addr::LOCALHOST)?;
    socket.set_multicast_ttl_v4(0)?;
    socket.set_multicast_loop_v4(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    let socket: std::net::UdpSocket = socket.into();

    let start = Instant::now();
    let mut size = 0;
    for seq in 1..=count {
        // Pace by the schedule, not by sleeping per datagram: sleep only when ahead by more than a millisecond.
        let due = start + Duration::from_secs_f64((seq - 1) as f64 / rate);
        let now = Instant::now();
        if due > now + Duration::from_millis(1) {
            std::thread::sleep(due - now);
        }
        let mut msg = template.clone();
        msg.seq = seq;
        msg.received_at = jiff::Timestamp::now();
        let bytes = encode(&Message::Telegram(Box::new(msg)));
        size = bytes.len();
        socket.send_to(&bytes, group).context("send")?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("sent {count} datagrams of {size} bytes in {secs:.2} s ({:.0}/s)", count as f64 / secs);
    Ok(())
}
