//! The writing thread: takes received telegrams off a queue bounded in bytes, writes them through the [`Store`],
//! and backs off while the disk refuses.
//!
//! File I/O is blocking, so it runs on its own thread and the receiving task never waits for a disk: it puts each
//! message in the [`Inbox`] and goes on. The inbox holds at most `reader.queue_mib` (default [`QUEUE_BYTES`], 32
//! MiB) of messages, each counted at [`Job::cost`] (its datagram twice, as the parsed message takes about as much
//! again, plus 2 KiB): while writes fail (disk full, read-only or missing directory) or stall (a slow `fsync`),
//! that is 72 minutes of 2.7 KB DSMR 5 telegrams at one a second (4320 × 7.2 KB), 55 minutes of the Belgian 3.8
//! KB ones, or about 250 of the largest (65 KB) datagrams. Beyond that the oldest are dropped and counted, so memory stays
//! bounded whatever the datagrams' size. Retries back off from 1 s to 60 s. The first failure is logged as an
//! error with the file and the cause, then a reminder at most once a minute, and a line when writing works again.
//! [`Writer::step`] takes `now`, so backoff is tested without waiting.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use jiff::{SignedDuration, Timestamp};
use shared::wire::StatusMessage;
use tracing::{debug, error, info, warn};

use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::stats::{self, Stats};
use crate::store::{Job, Store, StoreError};

/// The default bound of the memory queue, in bytes (`reader.queue_mib`).
pub const QUEUE_BYTES: usize = 32 << 20;
/// Most telegrams written in one go before time-driven work gets its turn.
pub const BATCH: usize = 256;
/// What a status message is counted for in the queue.
const STATUS_COST: usize = 2048;
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

impl Incoming {
    /// The bytes it is counted for in the [`Inbox`].
    #[must_use]
    pub fn cost(&self) -> usize {
        match self {
            Incoming::Telegram(job) => job.cost(),
            Incoming::Status(_) => STATUS_COST,
        }
    }
}

/// The writing thread has stopped: nothing more is taken.
#[derive(Debug, thiserror::Error)]
#[error("the writing thread has stopped")]
pub struct Closed;

/// The queue from the receiving task to the writing thread, bounded in bytes: a push over the bound drops the
/// oldest messages (telegrams are counted in `dropped_full`), never the new one, and never blocks.
#[derive(Debug)]
pub struct Inbox {
    state: Mutex<InboxState>,
    ready: Condvar,
    limit: usize,
    stats: Arc<Stats>,
}

#[derive(Debug, Default)]
struct InboxState {
    items: VecDeque<Incoming>,
    bytes: usize,
    closed: bool,
    /// The writing thread sleeps in [`Inbox::wait`] for a first message (only then is a wake-up worth a syscall).
    waiting: bool,
}

impl Inbox {
    /// An empty queue holding at most `limit` bytes (see [`Incoming::cost`]).
    #[must_use]
    pub fn new(limit: usize, stats: Arc<Stats>) -> Inbox {
        Inbox { state: Mutex::default(), ready: Condvar::new(), limit, stats }
    }

    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `item`, first dropping the oldest messages while it would not fit. Returns how many telegrams were
    /// dropped for it, or [`Closed`] once the writing thread is gone.
    pub fn push(&self, item: Incoming) -> Result<u64, Closed> {
        let cost = item.cost();
        let mut s = self.lock();
        if s.closed {
            return Err(Closed);
        }
        let mut dropped = 0;
        while s.bytes + cost > self.limit {
            let Some(old) = s.items.pop_front() else { break };
            s.bytes -= old.cost();
            if matches!(old, Incoming::Telegram(_)) {
                dropped += 1;
            }
        }
        let fits = s.bytes + cost <= self.limit;
        if fits {
            let wake = s.waiting;
            s.waiting = false;
            s.bytes += cost;
            s.items.push_back(item);
            drop(s);
            if wake {
                self.ready.notify_one();
            }
        } else if matches!(item, Incoming::Telegram(_)) {
            // Larger than the whole queue (only with a bound below two datagrams).
            dropped += 1;
        }
        stats::add(&self.stats.dropped_full, dropped);
        Ok(dropped)
    }

    fn pop(&self) -> Option<Incoming> {
        let mut s = self.lock();
        let item = s.items.pop_front()?;
        s.bytes -= item.cost();
        Some(item)
    }

    /// Stops taking messages and wakes the writing thread, which writes what is queued and ends.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Messages waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether nothing waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes the waiting messages are counted for.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The bound, in bytes.
    #[must_use]
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Waits up to `timeout`: until a message arrives (when `for_items` and none waits), or for the whole time
    /// (when not), returning early when the inbox is closed.
    fn wait(&self, timeout: std::time::Duration, for_items: bool) {
        let mut s = self.lock();
        if s.closed || (for_items && !s.items.is_empty()) {
            return;
        }
        s.waiting = for_items;
        let (mut s, _) = self.ready.wait_timeout(s, timeout).unwrap_or_else(PoisonError::into_inner);
        s.waiting = false;
    }
}

#[derive(Debug)]
struct Outage {
    since: Timestamp,
    reminded: Timestamp,
    /// `dropped_full` when the outage began.
    dropped_before: u64,
}

/// The store, the telegram being written, and the backoff state.
#[derive(Debug)]
pub struct Writer {
    store: Store,
    stats: Arc<Stats>,
    inbox: Arc<Inbox>,
    /// Taken off the inbox and not written yet (a failed write is retried from where it stopped).
    current: Option<Job>,
    backoff: Backoff,
    outage: Option<Outage>,
    next_tick: Option<Timestamp>,
    tick_error_logged: Option<Timestamp>,
    /// The history database's feed (none with `reader.database: off`).
    history: Option<crate::history::Feed>,
}

impl Writer {
    /// A writer over `store` that takes its telegrams from `inbox`.
    #[must_use]
    pub fn new(store: Store, stats: Arc<Stats>, inbox: Arc<Inbox>) -> Writer {
        Writer {
            store,
            stats,
            inbox,
            current: None,
            backoff: Backoff::default(),
            outage: None,
            next_tick: None,
            tick_error_logged: None,
            history: None,
        }
    }

    /// Also hands every written telegram to the history database's feed.
    #[must_use]
    pub fn with_history(mut self, feed: crate::history::Feed) -> Writer {
        self.history = Some(feed);
        self
    }

    /// Queues one item, as the receiving task does (see [`Inbox::push`]).
    pub fn push(&mut self, item: Incoming) {
        let _ = self.inbox.push(item);
    }

    /// Writes what is queued (unless backing off) and does time-driven work when due.
    pub fn step(&mut self, now: Timestamp) {
        if self.backoff.due(now) {
            self.backoff.clear();
            self.drain(now, BATCH);
        }
        if self.next_tick.is_none_or(|t| now >= t) {
            self.next_tick = Some(now + TICK_EVERY);
            if let Some(h) = &mut self.history {
                h.tick(now);
            }
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
        match self.backoff.retry_at() {
            Some(r) if self.queued() > 0 => r.min(tick),
            _ => tick,
        }
    }

    /// Whether [`Writer::step`] would write something at `now`.
    fn has_work(&self, now: Timestamp) -> bool {
        self.backoff.due(now) && (self.current.is_some() || !self.inbox.is_empty())
    }

    fn backing_off(&self, now: Timestamp) -> bool {
        !self.backoff.due(now)
    }

    /// Telegrams (and statuses) waiting, the one being written included.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.inbox.len() + usize::from(self.current.is_some())
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A last attempt at everything queued, then a clean close of every file.
    pub fn finish(&mut self, now: Timestamp) {
        self.drain(now, usize::MAX);
        if self.queued() > 0 {
            error!(telegrams = self.queued(), "stopping with telegrams that could not be written");
        }
        if let Err(e) = self.store.close(now) {
            error!(cause = %e, "closing files failed");
        }
        if let Some(h) = &mut self.history {
            h.finish();
        }
    }

    /// Writes up to `most` telegrams; stops at the first failure, keeping that telegram for the retry.
    fn drain(&mut self, now: Timestamp, most: usize) {
        let mut written = 0;
        while written < most {
            let mut job = match self.current.take() {
                Some(job) => job,
                None => match self.inbox.pop() {
                    Some(Incoming::Telegram(job)) => job,
                    Some(Incoming::Status(status)) => {
                        self.store.status(*status, now);
                        continue;
                    }
                    None => break,
                },
            };
            match self.store.write(&mut job, now) {
                Err(e) => {
                    self.current = Some(job);
                    self.failed(&e, now);
                    return;
                }
                Ok(crate::store::Outcome::Written) => {
                    if let (Some(h), Some(t)) = (&mut self.history, job.filed_at()) {
                        h.telegram(job.message(), t, now);
                    }
                }
                Ok(_) => {}
            }
            written += 1;
        }
        if self.current.is_some() {
            return;
        }
        if let Some(o) = self.outage.take() {
            info!(
                after_s = now.duration_since(o.since).as_secs(),
                dropped = self.stats.snapshot().dropped_full.saturating_sub(o.dropped_before),
                "writing again; the telegrams kept in memory are written"
            );
        }
        self.backoff.succeeded();
    }

    fn failed(&mut self, e: &StoreError, now: Timestamp) {
        stats::bump(&self.stats.write_errors);
        let delay = self.backoff.failed(now);
        let dropped_full = self.stats.snapshot().dropped_full;
        match &mut self.outage {
            None => {
                error!(
                    cause = %e,
                    retry_in_s = delay.as_secs(),
                    waiting = self.queued(),
                    queue_bytes = self.inbox.bytes(),
                    queue_limit = self.inbox.limit(),
                    "cannot write; keeping telegrams in memory (the oldest dropped when full) and retrying"
                );
                self.outage = Some(Outage { since: now, reminded: now, dropped_before: dropped_full });
            }
            Some(o) if now >= o.reminded + REMIND_EVERY => {
                warn!(
                    cause = %e,
                    failing_for_s = now.duration_since(o.since).as_secs(),
                    waiting = self.inbox.len() + 1,
                    queue_bytes = self.inbox.bytes(),
                    dropped = dropped_full.saturating_sub(o.dropped_before),
                    "still cannot write"
                );
                o.reminded = now;
            }
            Some(_) => debug!(cause = %e, retry_in_s = delay.as_secs(), "write failed again"),
        }
    }
}

/// Closes the inbox when the writing thread ends, however it ends, so the receiving task stops too.
struct CloseOnDrop(Arc<Inbox>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Runs a writer on its own thread until its inbox is closed, then finishes it (writes what is queued, if it can,
/// and closes every file).
pub fn spawn(mut writer: Writer, clock: Arc<dyn Clock>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("p1-reader-writer".into()).spawn(move || {
        let inbox = writer.inbox.clone();
        let _close = CloseOnDrop(inbox.clone());
        while !inbox.is_closed() {
            let now = clock.now();
            if !writer.has_work(now) {
                let wait = writer
                    .next_wake(now)
                    .duration_since(now)
                    .clamp(SignedDuration::from_millis(1), SignedDuration::from_secs(1));
                let wait = std::time::Duration::try_from(wait).unwrap_or(std::time::Duration::from_millis(100));
                // While backing off, sleep through new arrivals; otherwise wake for the first one.
                inbox.wait(wait, !writer.backing_off(now));
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
        // Room for five of these telegrams.
        let Incoming::Telegram(one) = job(1) else { unreachable!() };
        let inbox = Arc::new(Inbox::new(5 * one.cost(), stats.clone()));
        let mut w = Writer::new(store(dir.path(), stats.clone()), stats.clone(), inbox);
        let details = dir.path().join("m/details/2024-06-01.jsonl");
        fs::create_dir_all(details.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink("/dev/full", &details).expect("symlink");
        let t0: Timestamp = "2024-06-01T10:00:00Z".parse().expect("ts");
        let at = |s: i64| t0 + SignedDuration::from_secs(s);
        for seq in 1..=3 {
            w.push(job(seq));
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
            w.push(job(seq));
        }
        // Telegram 1 is being written; the queue holds five more, so the oldest two (2 and 3) gave way.
        assert_eq!((w.queued(), stats.snapshot().dropped_full), (6, 2), "the queue holds 5");
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
        assert_eq!(seqs, [1, 4, 5, 6, 7, 8]);
        // After a recovery the backoff starts again from 1 s.
        let next_day = details.with_file_name("2024-06-02.jsonl");
        std::os::unix::fs::symlink("/dev/full", &next_day).expect("symlink");
        w.push(job_at(9, "2024-06-02T00:00:00Z"));
        w.step(at(10));
        assert_eq!(stats.snapshot().write_errors, 3);
        w.step(at(11));
        assert_eq!(stats.snapshot().write_errors, 4, "retried after 1 s, not 4 s");
        fs::remove_file(&next_day).expect("unlink");
        w.step(at(13));
        assert_eq!(stats.snapshot().written, 7);
    }

    /// Telegram `seq`, received at 10:00 plus `seq` tenths of a second, its datagram `len` bytes long (padded in
    /// its text message).
    fn job_of_len(seq: u64, len: usize) -> Incoming {
        let at: Timestamp = "2024-06-01T10:00:00Z".parse().expect("ts");
        let at = at + SignedDuration::from_millis(seq as i64 * 100);
        let mut msg = telegram("m", "b", seq, &at.to_string());
        let base = encode(&Message::Telegram(Box::new(msg.clone()))).len();
        let text = msg.values.text_message.get_or_insert_with(String::new);
        text.push_str(&"x".repeat(len.saturating_sub(base)));
        let raw = encode(&Message::Telegram(Box::new(msg.clone())));
        assert_eq!(raw.len(), len);
        let at = msg.received_at;
        Incoming::Telegram(Job::new(Box::new(msg), raw, at))
    }

    /// A writer over a store whose details file is `/dev/full`, with the default queue.
    fn failing_writer(dir: &Path, stats: &Arc<Stats>) -> (Writer, Arc<Inbox>) {
        let details = dir.join("m/details/2024-06-01.jsonl");
        fs::create_dir_all(details.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink("/dev/full", &details).expect("symlink");
        let inbox = Arc::new(Inbox::new(QUEUE_BYTES, stats.clone()));
        (Writer::new(store(dir, stats.clone()), stats.clone(), inbox.clone()), inbox)
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_and_drops_the_oldest_of_large_datagrams() {
        let dir = crate::testutil::tempdir();
        let stats = Arc::new(Stats::default());
        let (mut w, inbox) = failing_writer(dir.path(), &stats);
        let t0: Timestamp = "2024-06-01T10:00:00Z".parse().expect("ts");
        // 6000 of the largest datagrams a listener can send, while the disk is full.
        for seq in 1..=6000 {
            w.push(job_of_len(seq, 65_000));
            if seq % 100 == 0 {
                w.step(t0 + SignedDuration::from_secs(seq as i64 / 10));
            }
        }
        assert!(inbox.bytes() <= QUEUE_BYTES, "{} bytes queued", inbox.bytes());
        let kept = w.queued() as u64;
        // 32 MiB holds 255 of them (each counted as 132 KB); the one being written is the first.
        assert_eq!(kept, 1 + (QUEUE_BYTES / (65_000 * 2 + 2048)) as u64);
        assert_eq!(stats.snapshot().dropped_full, 6000 - kept, "every one dropped is counted");
        // When the disk is back, the first telegram and the newest ones are written.
        fs::remove_file(dir.path().join("m/details/2024-06-01.jsonl")).expect("unlink");
        w.finish(t0 + SignedDuration::from_secs(3600));
        let details = fs::read_to_string(dir.path().join("m/details/2024-06-01.jsonl")).expect("details");
        let seqs: Vec<u64> = details
            .lines()
            .map(|l| match shared::wire::parse(l.as_bytes()).expect("valid") {
                Message::Telegram(t) => t.seq,
                Message::Status(_) => 0,
            })
            .collect();
        let newest: Vec<u64> = (6000 - kept + 2..=6000).collect();
        assert_eq!(seqs[0], 1);
        assert_eq!(seqs[1..], newest[..]);
    }

    #[test]
    fn seventy_two_minutes_of_ordinary_telegrams_fit_in_the_default_queue() {
        let dir = crate::testutil::tempdir();
        let stats = Arc::new(Stats::default());
        let (mut w, inbox) = failing_writer(dir.path(), &stats);
        let t0: Timestamp = "2024-06-01T10:00:00Z".parse().expect("ts");
        // The README's DSMR 5 datagram (2686 bytes), one a second for 72 minutes.
        for seq in 1..=72 * 60 {
            w.push(job_of_len(seq, 2686));
            w.step(t0 + SignedDuration::from_secs(seq as i64));
        }
        assert_eq!((w.queued(), stats.snapshot().dropped_full), (72 * 60, 0), "{} bytes queued", inbox.bytes());
    }
}
