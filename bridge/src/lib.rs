//! `p1-bridge`: subscribes to p1hub listeners and forwards live data to other systems; today MQTT, with Home
//! Assistant discovery.
//!
//! The subscription (group, decoding, per-listener sequence and liveness) is `p1hub-subscriber`'s; the bridge
//! turns its events into [`mqtt::Input`]: each new telegram (duplicates and stale ones are not forwarded) and each
//! change of a listener's liveness (`online`, or `offline` when its meter is silent or it is gone). The outputs
//! never slow the subscription down: events go to them through a bounded channel, and an event that finds it full
//! is counted and dropped (the MQTT output only queues, so this does not happen in practice).
//!
//! # Layout
//! - [`cli`]: flags and configuration loading.
//! - [`mqtt`]: the MQTT output (topics, discovery, offline queue, TLS, the connection).

pub mod cli;
pub mod mqtt;

#[cfg(test)]
mod testutil;

use std::sync::Arc;

use p1hub_subscriber::{Event, Liveness, Options, Subscriber};
use shared::config::Config;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::mqtt::{Input, MqttError, Output};

/// Why the bridge cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// No output is configured.
    #[error("nothing to forward to: set bridge.mqtt.url in p1.yml, or --mqtt mqtt://HOST:PORT")]
    NoOutput,
    /// The MQTT settings cannot be used.
    #[error(transparent)]
    Mqtt(#[from] MqttError),
    /// The multicast subscription failed.
    #[error("cannot subscribe to the multicast group: {0}")]
    Subscribe(#[from] p1hub_subscriber::SocketError),
}

/// A configured bridge, ready to run.
pub struct Bridge {
    options: Options,
    mqtt: Output,
    describe: String,
}

impl Bridge {
    /// Checks the outputs' settings and reads their files (password, CA, client certificate). Opens nothing.
    pub fn new(config: &Config) -> Result<Bridge, BridgeError> {
        let m = config.bridge.mqtt.as_ref().ok_or(BridgeError::NoOutput)?;
        let mqtt = Output::new(m)?;
        let describe = format!(
            "group {} via {}, MQTT {} {}{}{}",
            config.multicast.group,
            config.multicast.interface,
            if m.protocol == shared::config::MqttProtocol::V5 { "5" } else { "3.1.1" },
            m.url,
            if m.tls && !m.tls_insecure {
                " (TLS, verified)"
            } else if m.tls {
                " (TLS, NOT verified)"
            } else {
                ""
            },
            if m.discovery { ", Home Assistant discovery on" } else { "" }
        );
        Ok(Bridge { options: Options::from_config(config), mqtt, describe })
    }

    /// One line on what the bridge will do (for `--check-config` and the log).
    #[must_use]
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// The MQTT output's counters, live.
    #[must_use]
    pub fn mqtt_stats(&self) -> Arc<mqtt::Stats> {
        self.mqtt.stats()
    }

    /// Subscribes and forwards until `shutdown` is cancelled; then the outputs close cleanly.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), BridgeError> {
        let mut subscriber = Subscriber::new(self.options, shutdown.clone())?;
        info!("{}", self.describe);
        let (tx, rx) = mpsc::channel(1024);
        let output_stop = CancellationToken::new();
        let output = tokio::spawn(self.mqtt.run(rx, output_stop.clone()));
        let mut dropped = 0u64;
        while let Some(event) = subscriber.next().await {
            let Some(input) = input_of(event) else { continue };
            if tx.try_send(input).is_err() {
                dropped += 1;
                if dropped.is_power_of_two() {
                    warn!(dropped, "the MQTT output is behind: events dropped");
                }
            }
        }
        // The subscriber ended (shutdown): let the output say offline and disconnect.
        output_stop.cancel();
        let _ = output.await;
        Ok(())
    }
}

/// What the outputs need of a subscriber event.
#[must_use]
pub fn input_of(event: Event) -> Option<Input> {
    match event {
        Event::Telegram { msg, verdict, .. } if verdict.is_new() => Some(Input::Telegram(msg)),
        Event::Liveness { listener, liveness } => {
            Some(Input::Liveness { listener, online: liveness == Liveness::Online })
        }
        Event::Forgotten { listener } => Some(Input::Forgotten { listener }),
        _ => None,
    }
}

/// Cancels `token` on SIGINT or SIGTERM.
pub async fn cancel_on_signals(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => info!("SIGINT: shutting down"),
                _ = term.recv() => info!("SIGTERM: shutting down"),
                () = token.cancelled() => return,
            }
        }
        Err(e) => {
            warn!(cause = %e, "cannot watch SIGTERM; Ctrl-C still works");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => info!("SIGINT: shutting down"),
                () = token.cancelled() => return,
            }
        }
    }
    token.cancel();
}
