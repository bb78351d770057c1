//! Bytes in, numbered messages out: the listener's wrapper around [`shared::engine::Engine`].
//!
//! Every source pushes what it reads into one [`Pipeline`]. For each valid telegram it assigns the next sequence
//! number (from 1, no gaps), stamps `received_at` with the wall clock of the read that completed it, hands the
//! byte-exact telegram to the raw TCP clients and queues the message for the publisher. It never waits: the
//! queue is bounded and a full queue is counted as a send error, so a stuck publisher cannot stall the port
//! (a replayed file, which has no port to stall, waits instead, so that nothing is dropped). Rejections are
//! counted by the engine; here they feed the rate-limited log summary, and a configuration problem (an
//! encrypted meter without the right key) is logged once as an error that says what to do.

use bytes::Bytes;
use shared::engine::{Checked, Engine, EngineOptions, Event, Rejection};
use shared::frame::DiscardReason;
use shared::wire::{CrcStatus, Origin, TelegramMessage};
use tokio::sync::mpsc;

use crate::health::{log_bad_input, SharedHealth};
use crate::raw_tcp::RawHub;

/// Telegrams queued between the source and the publisher. The publisher drains a datagram in microseconds, so
/// the queue only fills if the publisher is stuck.
pub const QUEUE: usize = 64;

/// Telegrams without CRC in a row, with no rejected frame between them, that confirm the port settings (one
/// CRC-checked or decrypted telegram confirms them at once).
pub const CRCLESS_TO_CONFIRM: u32 = 3;

/// A telegram on its way to the publisher.
#[derive(Clone, Debug)]
pub struct Published {
    /// The message, as it will be sent.
    pub message: Box<TelegramMessage>,
    /// The telegram, byte-exact.
    pub raw: Bytes,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Pipeline {
    engine: Engine,
    origin: Origin,
    seq: u64,
    out: mpsc::Sender<Published>,
    raw: Option<RawHub>,
    health: SharedHealth,
    config_problem_logged: bool,
    /// Evidence for the port settings: valid telegrams since the last rejected frame, a checked one counting as
    /// [`CRCLESS_TO_CONFIRM`].
    evidence: u32,
}

impl Pipeline {
    /// A pipeline sending to `out` (and `raw`, if set), reporting into `health`.
    #[must_use]
    pub fn new(
        options: EngineOptions,
        origin: Origin,
        out: mpsc::Sender<Published>,
        raw: Option<RawHub>,
        health: SharedHealth,
    ) -> Self {
        Pipeline {
            engine: Engine::new(options),
            origin,
            seq: 0,
            out,
            raw,
            health,
            config_problem_logged: false,
            evidence: 0,
        }
    }

    /// The shared health this pipeline writes.
    #[must_use]
    pub fn health(&self) -> &SharedHealth {
        &self.health
    }

    /// Pushes bytes read at `at` (monotonic) and `wall` (UTC) and publishes every telegram they complete, without
    /// waiting. Returns how many valid telegrams they completed.
    pub fn push(&mut self, bytes: &[u8], at: std::time::Instant, wall: jiff::Timestamp) -> usize {
        self.engine.push(bytes, at);
        let mut telegrams = 0;
        while let Some(checked) = self.next_checked() {
            self.publish_now(checked, wall);
            telegrams += 1;
        }
        self.after_push();
        telegrams
    }

    /// Pushes bytes without publishing: drain [`Pipeline::next_checked`] afterwards (replay paces between them).
    pub fn feed(&mut self, bytes: &[u8], at: std::time::Instant) {
        self.engine.push(bytes, at);
    }

    /// Whether the telegrams read so far prove the port settings right: the last one was CRC-checked (or
    /// decrypted), or the last [`CRCLESS_TO_CONFIRM`] came without CRC and with no rejected frame between them.
    /// One CRC-less frame that merely looks like a telegram is not enough to lock automatic port settings.
    #[must_use]
    pub fn settings_confirmed(&self) -> bool {
        self.evidence >= CRCLESS_TO_CONFIRM
    }

    /// The next valid telegram, handling rejections on the way.
    pub fn next_checked(&mut self) -> Option<Checked> {
        loop {
            match self.engine.next_event()? {
                Event::Telegram(checked) => {
                    self.evidence = if checked.crc == CrcStatus::Ok || checked.encrypted {
                        CRCLESS_TO_CONFIRM
                    } else {
                        self.evidence.saturating_add(1)
                    };
                    return Some(checked);
                }
                Event::Rejected(rejection) => {
                    if !matches!(rejection, Rejection::Discarded { reason: DiscardReason::Noise, .. }) {
                        self.evidence = 0;
                    }
                    let text = rejection.to_string();
                    if rejection.is_config_problem() && !self.config_problem_logged {
                        self.config_problem_logged = true;
                        tracing::error!("{text}");
                    }
                    self.health.lock().summary.record(text);
                }
            }
        }
    }

    /// Publishes a telegram now; a full queue counts as a send error.
    pub fn publish_now(&mut self, checked: Checked, wall: jiff::Timestamp) {
        let item = self.prepare(checked, wall);
        let seq = item.message.seq;
        match self.out.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let to_log = self.health.lock().count_send_error();
                if let Some(errors) = to_log {
                    tracing::warn!(seq, send_errors = errors, "publisher queue full: telegram dropped");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => tracing::debug!(seq, "publisher gone: telegram dropped"),
        }
    }

    /// Publishes a telegram, waiting for room in the queue. Returns `false` if the publisher is gone.
    pub async fn publish_waiting(&mut self, checked: Checked, wall: jiff::Timestamp) -> bool {
        let item = self.prepare(checked, wall);
        self.out.send(item).await.is_ok()
    }

    /// Copies the engine's counters into the shared health and logs a bad-input summary when one is due.
    pub fn after_push(&mut self) {
        let now = tokio::time::Instant::now();
        let counters = self.engine.counters();
        let bad = {
            let mut health = self.health.lock();
            health.engine = counters;
            health.bad_input_due(now)
        };
        if let Some(bad) = bad {
            log_bad_input(&bad);
        }
    }

    fn prepare(&mut self, checked: Checked, wall: jiff::Timestamp) -> Published {
        self.seq += 1;
        let raw = checked.raw.clone();
        if let Some(hub) = &self.raw {
            hub.publish(&raw);
        }
        let message = Box::new(checked.into_message(self.origin.clone(), self.seq, wall));
        let mut health = self.health.lock();
        health.last_seq = Some(self.seq);
        health.last_telegram_at = Some(tokio::time::Instant::now());
        health.engine = self.engine.counters();
        Published { message, raw }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Health;
    use shared::simulate::Simulator;

    fn origin() -> Origin {
        Origin { listener: "test".into(), boot_id: "0123456789abcdef".into() }
    }

    fn telegram(seconds: i64) -> Vec<u8> {
        let mut sim = Simulator::new(1);
        let at = jiff::Timestamp::from_second(1_717_243_200 + seconds).expect("in range");
        sim.telegram_at(at.to_zoned(jiff::tz::TimeZone::UTC))
    }

    fn pipeline(capacity: usize) -> (Pipeline, mpsc::Receiver<Published>) {
        let (tx, rx) = mpsc::channel(capacity);
        let health = SharedHealth::new(Health::new(tokio::time::Instant::now()));
        (Pipeline::new(EngineOptions::default(), origin(), tx, None, health), rx)
    }

    #[tokio::test]
    async fn numbers_telegrams_from_one_and_stamps_milliseconds() {
        let (mut p, mut rx) = pipeline(8);
        let wall = jiff::Timestamp::from_microsecond(1_717_243_200_123_456).expect("in range");
        let mut bytes = telegram(0);
        bytes.extend(telegram(1));
        // Split mid-telegram: the first push completes one telegram, the second the other.
        assert_eq!(p.push(&bytes[..700], std::time::Instant::now(), wall), 0);
        assert_eq!(p.push(&bytes[700..], std::time::Instant::now(), wall), 2);
        let a = rx.recv().await.expect("first");
        let b = rx.recv().await.expect("second");
        assert_eq!((a.message.seq, b.message.seq), (1, 2));
        assert_eq!(a.message.received_at.as_microsecond(), 1_717_243_200_123_000);
        assert_eq!(a.message.origin, origin());
        assert_eq!(&a.raw[..], &telegram(0)[..]);
        let h = p.health().lock();
        assert_eq!((h.last_seq, h.engine.telegrams), (Some(2), 2));
    }

    #[tokio::test]
    async fn bad_crc_is_counted_and_not_published() {
        let (mut p, mut rx) = pipeline(8);
        let mut bad = telegram(0);
        let digit = bad.iter().position(|&b| b == b'(').expect("a value") + 1;
        bad[digit] = if bad[digit] == b'5' { b'6' } else { b'5' };
        bad.extend(telegram(1));
        assert_eq!(p.push(&bad, std::time::Instant::now(), jiff::Timestamp::now()), 1);
        assert_eq!(rx.recv().await.expect("the good one").message.seq, 1);
        assert!(rx.try_recv().is_err());
        assert_eq!(p.health().lock().engine.crc_failures, 1);
    }

    #[tokio::test]
    async fn a_full_queue_is_a_send_error_not_a_stall() {
        let (mut p, _rx) = pipeline(1);
        for s in 0..3 {
            p.push(&telegram(s), std::time::Instant::now(), jiff::Timestamp::now());
        }
        let h = p.health().lock();
        assert_eq!((h.last_seq, h.send_errors), (Some(3), 2));
    }
}
