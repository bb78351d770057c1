//! Writes a reader data directory from the simulated meter: the last minutes of telegrams, one per second,
//! through the reader's own store, so the HTML page has a full chart. `scripts/html-check` renders the page in
//! Chromium.
//!
//! `cargo run -p p1hub-reader --example page -- DIR [--at RFC3339] [--minutes N] [--text TEXT]`
//!
//! `--text` sets the meter's text message (to check escaping); `--at` is the instant of the last telegram.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use p1_reader::period::Span;
use p1_reader::store::{Job, Store, StoreConfig};
use shared::engine::{Engine, EngineOptions, Event};
use shared::wire::{encode, Counters, Message, Origin, PortState, StatusMessage, SCHEMA_VERSION};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut at = Timestamp::now();
    let mut minutes = 15_i64;
    let mut text = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--at" => at = args.next().context("--at needs a time")?.parse().context("--at: an RFC 3339 time")?,
            "--minutes" => minutes = args.next().context("--minutes needs a number")?.parse()?,
            "--text" => text = Some(args.next().context("--text needs a text")?),
            other if !other.starts_with("--") && dir.is_none() => dir = Some(PathBuf::from(other)),
            other => bail!("unexpected argument {other:?}"),
        }
    }
    let dir = dir.context("usage: page DIR [--at RFC3339] [--minutes N] [--text TEXT]")?;
    let tz = TimeZone::get("Europe/Amsterdam")?;
    let cfg = StoreConfig {
        dir: dir.clone(),
        tz: tz.clone(),
        tz_name: "Europe/Amsterdam".into(),
        interval: Span::Minutes(5),
        columns: shared::config::DEFAULT_COLUMNS.iter().map(|&c| c.to_owned()).collect(),
        details: true,
        html: true,
        html_minutes: minutes as u32,
        html_every: SignedDuration::from_secs(5),
        compress: false,
        retention: p1_reader::housekeeping::Retention::default(),
    };
    let start = at - SignedDuration::from_mins(minutes);
    let mut store = Store::open(cfg, Arc::default(), start);
    let mut meter = shared::simulate::Simulator::new(0x5eed);
    let mut engine = Engine::new(EngineOptions { max_telegram_bytes: 8192, timezone: tz.clone(), decryption: None });
    let origin = Origin { listener: "meterkast".into(), boot_id: "3f9a1c07d2e84b6a".into() };
    let mut seq = 0;
    let mut t = start;
    while t <= at {
        engine.push(&meter.telegram_at(t.to_zoned(tz.clone())), Instant::now());
        while let Some(event) = engine.next_event() {
            if let Event::Telegram(checked) = event {
                seq += 1;
                let mut msg = checked.into_message(origin.clone(), seq, t);
                if text.is_some() {
                    msg.values.text_message.clone_from(&text);
                }
                let raw = encode(&Message::Telegram(Box::new(msg.clone())));
                store.write(&mut Job::new(Box::new(msg), raw, t), t)?;
            }
        }
        t += SignedDuration::from_secs(1);
    }
    store.status(
        StatusMessage {
            schema: SCHEMA_VERSION,
            origin,
            sent_at: at,
            uptime_s: 3 * 86_400 + 7_200,
            source: "/dev/ttyUSB0".into(),
            port: PortState::Open,
            port_settings: Some("115200-8N1".into()),
            last_seq: Some(seq),
            last_telegram_age_ms: Some(400),
            meter_silent: false,
            counters: Counters { telegrams: seq, ..Counters::default() },
        },
        at,
    );
    store.close(at)?;
    println!("{}", dir.join("meterkast/p1.html").display());
    Ok(())
}
