//! `p1-bridge`: subscribes to p1hub listeners and forwards live data to other systems: MQTT (with Home Assistant
//! discovery) and HTTP (a HomeWizard-compatible API, Prometheus metrics, a live page over WebSocket).
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
//! - [`http`]: the HTTP output (HomeWizard API, `/metrics`, live page and `/ws`).

pub mod cli;
pub mod http;
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
    #[error(
        "nothing to forward to: set bridge.mqtt.url or bridge.http.listen in p1.yml, or --mqtt mqtt://HOST:PORT or \
         --http ADDR:PORT"
    )]
    NoOutput,
    /// The HTTP output cannot start.
    #[error(transparent)]
    Http(#[from] http::HttpError),
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
    mqtt: Option<Output>,
    http: Option<http::Output>,
    describe: String,
}

impl Bridge {
    /// Checks the outputs' settings and reads their files (password, CA, client certificate). Opens nothing.
    pub fn new(config: &Config) -> Result<Bridge, BridgeError> {
        if config.bridge.mqtt.is_none() && config.bridge.http.is_none() {
            return Err(BridgeError::NoOutput);
        }
        let mut describe = format!("group {} via {}", config.multicast.group, config.multicast.interface);
        let mut mqtt = None;
        if let Some(m) = config.bridge.mqtt.as_ref() {
            mqtt = Some(Output::new(m)?);
            describe.push_str(&Self::describe_mqtt(m));
        }
        let http = config.bridge.http.as_ref().map(|h| {
            let _ = std::fmt::Write::write_fmt(&mut describe, format_args!(", HTTP on {}", h.listen));
            http::Output::new(h)
        });
        Ok(Bridge { options: Options::from_config(config), mqtt, http, describe })
    }

    fn describe_mqtt(m: &shared::config::Mqtt) -> String {
        format!(
            ", MQTT {} {}{}{}",
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
        )
    }

    /// One line on what the bridge will do (for `--check-config` and the log).
    #[must_use]
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// The MQTT output's counters, live (`None` when MQTT is off).
    #[must_use]
    pub fn mqtt_stats(&self) -> Option<Arc<mqtt::Stats>> {
        self.mqtt.as_ref().map(Output::stats)
    }

    /// The HTTP output's counters, live (`None` when HTTP is off).
    #[must_use]
    pub fn http_stats(&self) -> Option<Arc<http::Stats>> {
        self.http.as_ref().map(http::Output::stats)
    }

    /// Subscribes and forwards until `shutdown` is cancelled; then the outputs close cleanly.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), BridgeError> {
        self.run_with(shutdown, |_| {}).await
    }

    /// [`Bridge::run`], telling `bound` the HTTP output's address once it listens (tests bind port 0).
    pub async fn run_with(
        self,
        shutdown: CancellationToken,
        bound: impl FnOnce(std::net::SocketAddr),
    ) -> Result<(), BridgeError> {
        // Bind first: a port in use is a start-up error, before anything is joined.
        let http = match self.http {
            Some(h) => {
                let b = h.bind().await?;
                bound(b.local_addr());
                Some(b)
            }
            None => None,
        };
        let mut subscriber = Subscriber::new(self.options, shutdown.clone())?;
        info!("{}", self.describe);
        let output_stop = CancellationToken::new();
        let mut tasks = Vec::new();
        let mqtt_tx = self.mqtt.map(|m| {
            let (tx, rx) = mpsc::channel(1024);
            tasks.push(tokio::spawn(m.run(rx, output_stop.clone())));
            tx
        });
        let http_tx = http.map(|h| {
            let (tx, rx) = mpsc::channel(1024);
            tasks.push(tokio::spawn(h.run(rx, output_stop.clone())));
            tx
        });
        let (mut mqtt_dropped, mut http_dropped) = (0u64, 0u64);
        while let Some(event) = subscriber.next().await {
            if let Some(tx) = &http_tx {
                if let Some(input) = http::Input::of(&event) {
                    if tx.try_send(input).is_err() {
                        http_dropped += 1;
                        if http_dropped.is_power_of_two() {
                            warn!(dropped = http_dropped, "the HTTP output is behind: events dropped");
                        }
                    }
                }
            }
            let Some(tx) = &mqtt_tx else { continue };
            let Some(input) = input_of(event) else { continue };
            if tx.try_send(input).is_err() {
                mqtt_dropped += 1;
                if mqtt_dropped.is_power_of_two() {
                    warn!(dropped = mqtt_dropped, "the MQTT output is behind: events dropped");
                }
            }
        }
        // The subscriber ended (shutdown): let the outputs say offline and disconnect.
        output_stop.cancel();
        for task in tasks {
            let _ = task.await;
        }
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
