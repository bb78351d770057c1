//! `p1-listener`: owns the P1 port and multicasts every checked telegram to the LAN.
//!
//! [`run`] is the whole daemon, callable from tests: it opens the multicast socket and (optionally) the raw TCP
//! server, then runs the configured source in the calling task until it ends or the shutdown token is cancelled.
//! On shutdown the source stops reading, the publisher still sends every telegram already read and a last status
//! datagram, and all tasks are awaited (for at most a few seconds).
//!
//! # Layout
//! - [`source`]: serial / TCP / file / simulated sources, the reconnect supervisor and the read loop.
//! - [`serial`]: the serial device and port settings detection.
//! - [`pipeline`]: the engine wrapper: sequence numbers, timestamps, hand-off to the publisher and raw clients.
//! - [`publish`]: the multicast socket, telegram and status datagrams, the watchdog.
//! - [`raw_tcp`]: the raw telegram TCP server.
//! - [`health`]: shared state for status datagrams, the watchdog and the bad-input log summary.
//! - [`backoff`]: capped exponential backoff.
//! - [`cli`], [`commands`]: command-line flags, configuration loading, and the `parse` and `capture` commands.

pub mod backoff;
pub mod cli;
pub mod commands;
pub mod health;
pub mod pipeline;
pub mod publish;
pub mod raw_tcp;
pub mod serial;
pub mod source;

use std::io::Read as _;
use std::time::Duration;

use anyhow::Context as _;
use shared::config::Config;
use shared::engine::{Decryption, EngineOptions};
use shared::wire::Origin;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::health::{Health, SharedHealth};
use crate::pipeline::Pipeline;
use crate::publish::{Envelope, Outlet, StatusInfo};
use crate::raw_tcp::RawHub;

/// How long shutdown waits for tasks to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs the listener until its source ends (a replayed file) or `shutdown` is cancelled.
///
/// # Errors
/// The multicast socket or the raw TCP server cannot be set up, or a capture file cannot be read. Devices and
/// bridges that are missing are not errors: they are retried.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let started = Instant::now();
    let origin = Origin { listener: config.name.clone(), boot_id: boot_id() };
    let source_name = source::describe(&config.listener.source);
    if let shared::config::Source::File(path) = &config.listener.source {
        // Fail before any socket is opened, so a mistyped path sends nothing at all.
        std::fs::File::open(path).with_context(|| format!("cannot read capture {}", path.display()))?;
    }
    let m = &config.multicast;
    let envelope = Envelope::from_config(m)?;
    let sender =
        Outlet::open(m).with_context(|| format!("setting up multicast to {} on interface {}", m.group, m.interface))?;

    let tracker = TaskTracker::new();
    let tasks = shutdown.child_token();
    let raw = match config.listener.raw_tcp {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("opening the raw telegram server on {addr} (listener.raw_tcp)"))?;
            tracing::info!(%addr, "raw telegram TCP server listening");
            let hub = RawHub::new(
                config.listener.raw_tcp_client_buffer,
                config.listener.raw_tcp_max_clients,
                tracker.clone(),
                tasks.clone(),
            )
            .normalising(config.listener.raw_tcp_normalise);
            tracker.spawn(raw_tcp::serve(listener, hub.clone(), tasks.clone()));
            Some(hub)
        }
        None => None,
    };

    let health = SharedHealth::new(Health::new(started));
    let (queue, queued) = mpsc::channel(pipeline::QUEUE);
    let info = StatusInfo {
        origin: origin.clone(),
        source: source_name.clone(),
        started,
        every: config.listener.status_every,
        watchdog: config.listener.watchdog,
    };
    tracker.spawn(publish::run(sender, envelope, queued, health.clone(), info));
    tracing::info!(
        listener = %origin.listener,
        boot_id = %origin.boot_id,
        source = %source_name,
        group = %m.group,
        interface = %m.interface,
        sealed_with = %m
            .keyring()
            .filter(|_| m.security == shared::config::Security::Sealed)
            .map_or_else(|| "nothing (open datagrams)".to_owned(), |r| format!("key id {}", r.current().id())),
        "p1-listener started"
    );

    let mut pipeline = Pipeline::new(engine_options(&config), origin, queue, raw, health);
    let seed = simulator_seed(&config.name);
    let result = source::run(&config.listener, &mut pipeline, &tasks, seed).await;
    // Dropping the pipeline closes the queue: the publisher sends what is left and a last status, then ends.
    drop(pipeline);
    tasks.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await.is_err() {
        tracing::warn!("some tasks did not stop within {} s", SHUTDOWN_GRACE.as_secs());
    }
    let end = result?;
    tracing::info!(?end, "p1-listener stopped");
    Ok(())
}

/// The engine's settings from the configuration.
#[must_use]
pub fn engine_options(config: &Config) -> EngineOptions {
    EngineOptions {
        max_telegram_bytes: config.listener.max_telegram_bytes,
        timezone: config.timezone.clone(),
        decryption: config
            .listener
            .decryption_key
            .map(|key| Decryption { key, authentication_key: config.listener.authentication_key }),
    }
}

/// 16 random hex digits, new at every start, so subscribers can tell a restarted listener (whose sequence numbers
/// start again at 1) from lost datagrams.
#[must_use]
pub fn boot_id() -> String {
    let mut bytes = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    let n = if random.is_ok() {
        u64::from_le_bytes(bytes)
    } else {
        // No /dev/urandom (a strange chroot): std's hasher keys are random per process.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
        h.write_u32(std::process::id());
        h.finish()
    };
    format!("{n:016x}")
}

/// The simulated meter's seed: from the listener's name, so the same listener simulates the same meter (equipment
/// ids, load pattern) at every start.
#[must_use]
pub fn simulator_seed(name: &str) -> u64 {
    // FNV-1a: stable across builds, unlike std's hasher.
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Cancels `token` on SIGINT or SIGTERM.
pub async fn cancel_on_signals(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let ctrl_c = tokio::signal::ctrl_c();
    match term {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                () = token.cancelled() => return,
            }
        }
        Err(e) => {
            tracing::warn!(cause = %e, "cannot watch SIGTERM; Ctrl-C still works");
            tokio::select! {
                _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
                () = token.cancelled() => return,
            }
        }
    }
    token.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_ids_are_sixteen_hex_digits_and_differ() {
        let (a, b) = (boot_id(), boot_id());
        assert!(a.len() == 16 && a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn the_simulator_seed_is_stable() {
        assert_eq!(simulator_seed("meterkast"), simulator_seed("meterkast"));
        assert_ne!(simulator_seed("meterkast"), simulator_seed("zolder"));
    }
}
