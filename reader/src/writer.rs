//! The writing thread: takes received telegrams off a channel, keeps them in a bounded queue, writes them through
//! the [`Store`], and backs off while the disk refuses.
//!
//! File I/O is blocking, so it runs on its own thread and the receiving task never waits for a disk. The channel
//! between them holds [`BUFFER`] telegrams and the thread takes at most [`BATCH`] at a time, so while writes fail
//! (disk full, read-only or missing directory) or stall (a slow `fsync`), up to `BUFFER + BATCH` = 4352 telegrams
//! wait in memory: 72 minutes at one telegram per second. Beyond that, new telegrams are dropped and counted.
//! Retries back off from 1 s to 60 s. The first failure is logged as an error with the file and the cause, then a
//! reminder at most once a minute, and a line when writing works again. [`Writer::step`] takes `now`, so backoff
//! is tested without waiting.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use shared::wire::StatusMessage;
use tracing::{debug, error, info, warn};

use crate::clock::Clock;
use crate::stats::{self, Stats};
use crate::store::{Job, Store, StoreError};

/// Capacity of the channel from the receiving task to the writing thread: the telegrams kept in memory while the
/// disk cannot keep up.
pub const BUFFER: usize = 4096;
/// Most telegrams the writing thread holds (taken off the channel, being written or waiting for a retry).
pub const BATCH: usize = 256;
const BACKOFF_FIRST: SignedDuration = SignedDuration::from_secs(1);
const BACKOFF_MAX: SignedDuration = SignedDuration::from_secs(60);
/// How often time-driven work (finishing periods, the page, syncing) runs.
const TICK_EVERY: SignedDuration = SignedDuration::from_millis(500);
const REMIND_EVERY: SignedDuration = SignedDuration::from_secs(60);

/// What the receiving task hands over.
#[derive(Debug)]
pub enum Incoming {
    /// A telegram to write.
    Telegram(Job),
    /// A listener's status datagram, for its page.
    Status(Box<StatusMessage>),
}

#[derive(Debug)]
struct Outage {
    since: Timestamp,
    reminded: Timestamp,
    dropped: u64,
}

/// The queue, the store and the backoff state.
#[derive(Debug)]
pub struct Writer {
    store: Store,
    stats: Arc<Stats>,
    queue: VecDeque<Job>,
    capacity: usize,
    retry_at: Option<Timestamp>,
    backoff: SignedDuration,
    outage: Option<Outage>,
    next_tick: Option<Timestamp>,
    tick_error_logged: Option<Timestamp>,
}

impl Writer {
    /// A writer over `store` that holds at most [`BATCH`] telegrams.
    #[must_use]
    pub fn new(store: Store, stats: Arc<Stats>) -> Writer {
        Writer::with_capacity(store, stats, BATCH)
    }

    /// A writer that keeps at most `capacity` telegrams waiting.
    #[must_use]
    pub fn with_capacity(store: Store, stats: Arc<Stats>, capacity: usize) -> Writer {
        Writer {
            store,
            stats,
            queue: VecDeque::new(),
            capacity,
            retry_at: None,
            backoff: BACKOFF_FIRST,
            outage: None,
            next_tick: None,
            tick_error_logged: None,
        }
    }

    /// Takes one item. A telegram is queued, or dropped and counted when the queue is full.
    pub fn push(&mut self, item: Incoming, now: Timestamp) {
        match item {
            Incoming::Status(status) => self.store.status(*status, now),
            Incoming::Telegram(job) => {
                if self.queue.len() < self.capacity {
                    self.queue.push_back(job);
                    return;
                }
                stats::bump(&self.stats.dropped_full);
                if let Some(o) = &mut self.outage {
                    if o.dropped == 0 {
                        warn!(
                            capacity = self.capacity,
                            "memory buffer full: dropping telegrams until the disk can be written"
                        );
                    }
                    o.dropped += 1;
                }
            }
        }
    }

    /// Writes what is queued (unless backing off) and does time-driven work when due.
    pub fn step(&mut self, now: Timestamp) {
        if self.retry_at.is_none_or(|r| now >= r) {
            self.retry_at = None;
            self.drain(now);
        }
        if self.next_tick.is_none_or(|t| now >= t) {
            self.next_tick = Some(now + TICK_EVERY);
            if let Err(e) = self.store.tick(now) {
                if self.tick_error_logged.is_none_or(|t| now >= t + REMIND_EVERY) {
                    warn!(cause = %e, "periodic file work failed; retrying");
                    self.tick_error_logged = Some(now);
                }
            }
        }
    }

    /// When [`Writer::step`] next has work, at the latest.
    #[must_use]
    pub fn next_wake(&self, now: Timestamp) -> Timestamp {
        let tick = self.next_tick.unwrap_or(now);
        match self.retry_at {
            Some(r) if !self.queue.is_empty() => r.min(tick),
            _ => tick,
        }
    }

    /// Telegrams waiting.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// How many more telegrams it takes before it is full.
    #[must_use]
    pub fn room(&self) -> usize {
        self.capacity.saturating_sub(self.queue.len())
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A last attempt at everything queued, then a clean close of every file.
    pub fn finish(&mut self, now: Timestamp) {
        self.drain(now);
        if !self.queue.is_empty() {
            error!(telegrams = self.queue.len(), "stopping with telegrams that could not be written");
        }
        if let Err(e) = self.store.close(now) {
            error!(cause = %e, "closing files failed");
        }
    }

    fn drain(&mut self, now: Timestamp) {
        while let Some(job) = self.queue.front_mut() {
            match self.store.write(job, now) {
                Ok(_) => {
                    self.queue.pop_front();
                }
                Err(e) => {
                    self.failed(&e, now);
                    return;
                }
            }
        }
        if let Some(o) = self.outage.take() {
            info!(
                after_s = now.duration_since(o.since).as_secs(),
                dropped = o.dropped,
                "writing again; the telegrams kept in memory are written"
            );
        }
        self.backoff = BACKOFF_FIRST;
    }

    fn failed(&mut self, e: &StoreError, now: Timestamp) {
        stats::bump(&self.stats.write_errors);
        let delay = self.backoff;
        self.retry_at = Some(now + delay);
        self.backoff = (delay * 2).min(BACKOFF_MAX);
        match &mut self.outage {
            None => {
                error!(
                    cause = %e,
                    retry_in_s = delay.as_secs(),
                    waiting = self.queue.len(),
                    capacity = self.capacity,
                    "cannot write; keeping telegrams in memory and retrying"
                );
                self.outage = Some(Outage { since: now, reminded: now, dropped: 0 });
            }
            Some(o) if now >= o.reminded + REMIND_EVERY => {
                warn!(
                    cause = %e,
                    failing_for_s = now.duration_since(o.since).as_secs(),
                    waiting = self.queue.len(),
                    dropped = o.dropped,
                    "still cannot write"
                );
                o.reminded = now;
            }
            Some(_) => debug!(cause = %e, retry_in_s = delay.as_secs(), "write failed again"),
        }
    }
}

/// Runs a writer on its own thread until the channel's senders are gone (or, while it is full and cannot take
/// from the channel, until `closing` is set), then finishes it.
pub fn spawn(
    mut writer: Writer,
    rx: Receiver<Incoming>,
    clock: Arc<dyn Clock>,
    closing: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("p1-reader-writer".into()).spawn(move || {
        loop {
            let now = clock.now();
            let wait = writer
                .next_wake(now)
                .duration_since(now)
                .clamp(SignedDuration::from_millis(1), SignedDuration::from_secs(1));
            let wait = std::time::Duration::try_from(wait).unwrap_or(std::time::Duration::from_millis(100));
            if writer.room() > 0 {
                match rx.recv_timeout(wait) {
                    Ok(item) => {
                        writer.push(item, now);
                        // Take what else is waiting, so a burst is written in one go.
                        for item in rx.try_iter().take(writer.room()) {
                            writer.push(item, now);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                // Full and failing: leave the rest in the channel, which is the buffer.
                if closing.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(wait);
            }
            writer.step(clock.now());
        }
        writer.finish(clock.now());
    })
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use jiff::tz::TimeZone;
    use shared::wire::{encode, Message};

    use super::*;
    use crate::period::Span;
    use crate::store::StoreConfig;
    use crate::testutil::telegram;

    fn store(dir: &Path, stats: Arc<Stats>) -> Store {
        let cfg = StoreConfig {
            dir: dir.to_owned(),
            tz: TimeZone::UTC,
            tz_name: "UTC".into(),
            interval: Span::Minutes(5),
            columns: vec!["time".into(), "seq".into()],
            details: true,
            html: false,
            html_minutes: 15,
            html_every: SignedDuration::from_secs(5),
            compress: false,
            retention: crate::housekeeping::Retention::default(),
        };
        Store::open(cfg, stats, "2024-06-01T00:00:00Z".parse().expect("ts"))
    }

    fn job(seq: u64) -> Incoming {
        job_at(seq, "2024-06-01T10:00:00Z")
    }

    fn job_at(seq: u64, at: &str) -> Incoming {
        let msg = telegram("m", "b", seq, at);
        let raw = encode(&Message::Telegram(Box::new(msg.clone())));
        let at = msg.received_at;
        Incoming::Telegram(Job::new(Box::new(msg), raw, at))
    }

    #[test]
    fn a_full_disk_is_retried_with_backoff_and_nothing_is_lost() {
        let dir = crate::testutil::tempdir();
        let stats = Arc::new(Stats::default());
        let mut w = Writer::with_capacity(store(dir.path(), stats.clone()), stats.clone(), 5);
        let details = dir.path().join("m/details/2024-06-01.jsonl");
        fs::create_dir_all(details.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink("/dev/full", &details).expect("symlink");
        let t0: Timestamp = "2024-06-01T10:00:00Z".parse().expect("ts");
        let at = |s: i64| t0 + SignedDuration::from_secs(s);
        for seq in 1..=3 {
            w.push(job(seq), t0);
        }
        w.step(at(0));
        assert_eq!((w.queued(), stats.snapshot().write_errors), (3, 1));
        w.step(at(0) + SignedDuration::from_millis(999));
        assert_eq!(stats.snapshot().write_errors, 1, "no retry before the backoff");
        w.step(at(1));
        assert_eq!(stats.snapshot().write_errors, 2, "retried after 1 s");
        assert_eq!(w.next_wake(at(1)), at(0) + SignedDuration::from_millis(1499), "the tick comes before the retry");
        w.step(at(2));
        assert_eq!(stats.snapshot().write_errors, 2, "next retry after 2 s");
        for seq in 4..=8 {
            w.push(job(seq), t0);
        }
        assert_eq!((w.queued(), stats.snapshot().dropped_full), (5, 3), "the buffer holds 5");
        fs::remove_file(&details).expect("unlink");
        w.step(at(3));
        assert_eq!(w.queued(), 0);
        let lines = fs::read_to_string(&details).expect("details");
        let seqs: Vec<u64> = lines
            .lines()
            .map(|l| match shared::wire::parse(l.as_bytes()).expect("valid") {
                Message::Telegram(t) => t.seq,
                Message::Status(_) => 0,
            })
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        // After a recovery the backoff starts again from 1 s.
        let next_day = details.with_file_name("2024-06-02.jsonl");
        std::os::unix::fs::symlink("/dev/full", &next_day).expect("symlink");
        w.push(job_at(9, "2024-06-02T00:00:00Z"), t0);
        w.step(at(10));
        assert_eq!(stats.snapshot().write_errors, 3);
        w.step(at(11));
        assert_eq!(stats.snapshot().write_errors, 4, "retried after 1 s, not 4 s");
        fs::remove_file(&next_day).expect("unlink");
        w.step(at(13));
        assert_eq!(stats.snapshot().written, 6);
    }
}
