//! A complete p1hub subscriber: prints every new telegram's power and every listener's liveness, until Ctrl-C.
//!
//! ```text
//! cargo run -p p1hub-subscriber --example print -- [p1.yml] [--interface eth0|ADDR] [--key-file PATH]
//! ```
//!
//! The group and interface come from `p1.yml` (the file given, else `./p1.yml`, else the defaults), like every
//! p1hub program; `--interface` overrides `multicast.interface`, `--key-file` `multicast.key_file` (sealed
//! datagrams: `Options::from_config` carries the keys, so this flag is all a program adds).

use std::path::Path;

use anyhow::Context as _;
use p1hub_subscriber::{Event, Options, Subscriber, Verdict};
use shared::config::RawConfig;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let mut args = std::env::args().skip(1);
    let (mut file, mut interface, mut key_file) = (None, None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--interface" => interface = Some(args.next().context("--interface needs a value")?),
            "--key-file" => key_file = Some(args.next().context("--key-file needs a path")?),
            "-h" | "--help" => {
                println!("usage: print [p1.yml] [--interface eth0|ADDR] [--key-file PATH]");
                return Ok(());
            }
            path => file = Some(path.to_owned()),
        }
    }
    let (mut raw, origin) = RawConfig::locate(file.as_deref().map(Path::new), Path::new("."))?;
    if let Some(i) = interface {
        raw.multicast.interface = i;
    }
    if let Some(k) = key_file {
        raw.multicast.key_file = Some(k);
        raw.multicast.key = None;
    }
    let mut config = raw.validate().with_context(|| format!("reading {origin}"))?;
    for warning in config.read_multicast_keys().with_context(|| format!("reading the keys of {origin}"))? {
        tracing::warn!("{warning}");
    }

    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.cancel();
    });

    let mut sub = Subscriber::new(Options::from_config(&config), cancel)?;
    while let Some(event) = sub.next().await {
        match event {
            Event::Joined { group, interface } => println!("joined {group} on {interface}"),
            Event::Waiting { cause, retry_in, .. } => println!("waiting: {cause} (again in {retry_in:?})"),
            Event::Telegram { msg, verdict, .. } => {
                let power = msg.values.power_kw.map_or_else(|| "-".to_owned(), |p| p.to_string());
                // Duplicates (the same datagram over two paths) and numbers too old to judge are skipped.
                if !verdict.is_new() {
                    continue;
                }
                match verdict {
                    Verdict::New { missed } if missed > 0 => {
                        println!("{} #{}: {power} kW ({missed} missed before it)", msg.origin.listener, msg.seq);
                    }
                    Verdict::NewBoot { restart: true } => {
                        println!("{} #{}: {power} kW (the listener restarted)", msg.origin.listener, msg.seq);
                    }
                    _ => println!("{} #{}: {power} kW", msg.origin.listener, msg.seq),
                }
            }
            Event::Liveness { listener, liveness } => println!("{listener}: {}", liveness.as_str()),
            Event::Forgotten { listener } => println!("{listener}: forgotten (too many listeners)"),
            _ => {}
        }
    }
    let c = sub.counters();
    println!("{} telegrams, {} status datagrams, {} invalid", c.telegrams, c.statuses, c.invalid.total());
    Ok(())
}
