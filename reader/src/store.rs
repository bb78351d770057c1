//! The files of every listener: what goes where, when files rotate, and how a restart picks up where the last
//! run stopped.
//!
//! [`Store`] owns the data directory. Each listener (by the name in its datagrams) gets `DIR/<listener>/` with
//! `details/`, `interval/`, `day/`, `weekly/` and `p1.html` (README and `reader/FILES.md` describe the formats).
//! It is synchronous and reads no clock: [`Store::write`] and [`Store::tick`] take `now`, so tests drive rotation
//! through DST days and week ends in microseconds.
//!
//! **Which file a telegram goes to** is decided by its own `received_at` (the listener's clock), made monotonic
//! per listener: a telegram stamped earlier than one already filed is filed with the later time, so rotation never
//! goes back and a finished file is never reopened. When a listener falls silent, its periods still end: the
//! listener's clock is extrapolated from the reader's (`now`) since its last telegram, and a period is finished
//! [`GRACE`] after its end.
//!
//! **Order of writes** for one telegram: interval CSV, day CSV, details. The details file is written last, so a
//! telegram found there is in every file; a kill between two writes can leave the telegram in flight in the
//! earlier files only. A write that fails is retried later from the step where it stopped, never repeated.
//!
//! **Restart**: the newest `interval/*.csv.partial` is adopted and appended to (older ones are finished);
//! the tail of the newest details file rebuilds the sequence tracker, the current hour of the weekly log, the
//! chart and the page. Each file's torn last line, if any, is cut by [`LineFile::open`].

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use shared::config::Config;
use shared::wire::{Message, StatusMessage, TelegramMessage};
use tracing::{debug, info, warn};

use crate::housekeeping::{self, Action};
use crate::html::{self, Health, History};
use crate::linefile::{self, LineFile};
use crate::logtext::Printable;
use crate::period::{Period, Span};
use crate::stats::{self, Stats};
use crate::summary::{Report, Summary};
use crate::tracker::{SeqTracker, Verdict};
use crate::weekly::{self, HourSummary};

/// How long after its end a period is finished when no later telegram arrives.
pub const GRACE: SignedDuration = SignedDuration::from_secs(2);
/// How often written lines are made durable with `fdatasync`.
pub const SYNC_EVERY: SignedDuration = SignedDuration::from_secs(5);
/// How often closed files are looked at for compression and retention.
pub const HOUSEKEEPING_EVERY: SignedDuration = SignedDuration::from_secs(3600);
/// How far a telegram's `received_at` may be ahead of the reader's clock before it is not believed.
pub const MAX_AHEAD: SignedDuration = SignedDuration::from_hours(24);
/// Most listeners (meters) kept open. A new one beyond them sets aside the one heard least recently (its files are
/// closed; it is recovered from them when heard again); status datagrams alone take no place. At start, the most
/// recently written directories are the ones recovered.
pub const MAX_LISTENERS: usize = 64;
/// Most housekeeping actions done in one tick, so compressing never holds up writing for long.
const ACTIONS_PER_TICK: usize = 4;
/// How much of the newest details file a restart reads back at most.
const MAX_REPLAY_BYTES: u64 = 32 << 20;
/// An hour of telegrams at one a second, with room to spare.
const MAX_REPLAY_LINES: usize = 4_000;

/// The reader's settings that concern files.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Data directory.
    pub dir: PathBuf,
    /// Zone for rotation and displayed times.
    pub tz: TimeZone,
    /// Its name, for file headers.
    pub tz_name: String,
    /// Span of one interval file.
    pub interval: Span,
    /// Interval and day CSV columns.
    pub columns: Vec<String>,
    /// Write details files.
    pub details: bool,
    /// Write the HTML page.
    pub html: bool,
    /// Chart span, minutes.
    pub html_minutes: u32,
    /// Least time between page rewrites.
    pub html_every: SignedDuration,
    /// Gzip closed files.
    pub compress: bool,
    /// Remove files older than this many days (per kind).
    pub retention: housekeeping::Retention,
}

impl StoreConfig {
    /// The file settings of a validated configuration.
    #[must_use]
    pub fn from_config(config: &Config) -> StoreConfig {
        let r = &config.reader;
        StoreConfig {
            dir: r.dir.clone(),
            tz: config.timezone.clone(),
            tz_name: config.timezone_name.clone(),
            interval: Span::interval(r.interval_minutes),
            columns: r.columns.clone(),
            details: r.details,
            html: r.html,
            html_minutes: r.html_minutes,
            html_every: SignedDuration::try_from(r.html_every).unwrap_or(SignedDuration::from_secs(5)),
            compress: r.compress,
            retention: housekeeping::Retention {
                all: r.retention_days,
                details: r.details_retention_days,
                interval: r.interval_retention_days,
            },
        }
    }
}

/// A write that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file or directory could not be written, renamed or synced.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
        move |source| StoreError::Io { action, path: path.to_owned(), source }
    }
}

/// A telegram as received, waiting to be written.
#[derive(Debug)]
pub struct Job {
    msg: Box<TelegramMessage>,
    raw: Vec<u8>,
    arrived: Timestamp,
    done: Done,
}

#[derive(Debug, Default)]
struct Done {
    /// Set once the tracker has judged the telegram: its listener directory and filing time.
    admitted: Option<(String, Timestamp, Verdict)>,
    interval: bool,
    day: bool,
    details: bool,
    weekly: bool,
}

impl Job {
    /// A telegram, the datagram it came in, and when the reader received it.
    #[must_use]
    pub fn new(msg: Box<TelegramMessage>, raw: Vec<u8>, arrived: Timestamp) -> Job {
        Job { msg, raw, arrived, done: Done::default() }
    }

    /// The telegram.
    #[must_use]
    pub fn message(&self) -> &TelegramMessage {
        &self.msg
    }

    /// The time it was filed under, once the store has admitted it.
    #[must_use]
    pub fn filed_at(&self) -> Option<Timestamp> {
        self.done.admitted.as_ref().map(|(_, t, _)| *t)
    }

    /// The memory it is counted for while it waits: the datagram (kept for the details file) and the parsed
    /// message, which takes about as much again, plus 2 KiB for the rest (measured: 7.2 KB for a 2.6 KB datagram,
    /// 131 KB for a 65 KB one).
    #[must_use]
    pub fn cost(&self) -> usize {
        self.raw.len().saturating_mul(2).saturating_add(2048)
    }
}

/// What became of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// In every file.
    Written,
    /// Seen before, too old to tell, or with a sequence number that cannot be real: not written.
    Duplicate,
    /// From a listener whose name cannot be a directory name (see [`dir_name`]), or one set aside (see
    /// [`MAX_LISTENERS`]) while this telegram waited to be retried.
    TooManyListeners,
}

/// A file that belongs to one period.
#[derive(Debug)]
struct Slot {
    period: Period,
    file: Option<LineFile>,
}

/// The listener's clock as the reader sees it: the latest filing time, and its extrapolation.
#[derive(Debug, Default)]
struct StreamClock {
    /// No telegram is filed before this.
    floor: Option<Timestamp>,
    /// The filing time of the last telegram and the reader's time when it arrived.
    last: Option<(Timestamp, Timestamp)>,
}

impl StreamClock {
    fn admit(&mut self, received_at: Timestamp, arrived: Timestamp) -> Timestamp {
        // A stamp far in the future would drag every later telegram along with it, and one before 1970 comes from
        // no clock (and leaves too little calendar for period arithmetic): trust the reader's clock then.
        let believable = Timestamp::UNIX_EPOCH <= received_at && received_at <= arrived + MAX_AHEAD;
        let stamp = if believable { received_at } else { arrived };
        let t = self.floor.map_or(stamp, |f| f.max(stamp));
        self.floor = Some(t);
        self.last = Some((t, arrived));
        t
    }

    fn estimate(&self, now: Timestamp) -> Timestamp {
        match self.last {
            Some((t, arrived)) => t + now.duration_since(arrived).max(SignedDuration::ZERO),
            None => self.floor.map_or(now, |f| f.max(now)),
        }
    }

    fn raise(&mut self, to: Timestamp) {
        self.floor = Some(self.floor.map_or(to, |f| f.max(to)));
    }
}

/// One listener's files and state.
#[derive(Debug)]
struct Listener {
    dir: PathBuf,
    /// The name its datagrams carry (the directory name until one arrives).
    name: String,
    tracker: SeqTracker,
    clock: StreamClock,
    interval: Option<Slot>,
    day: Option<Slot>,
    details: Option<Slot>,
    week: Option<Slot>,
    hour: Option<HourSummary>,
    /// The start of the last hour whose line is written or queued.
    logged_hour: Option<Timestamp>,
    /// Weekly log lines waiting to be written, with the week they belong to.
    weekly_queue: VecDeque<(Period, String)>,
    /// The latest telegram's datagram (parsed again only when the page is written, every few seconds).
    latest: Option<Vec<u8>>,
    status: Option<StatusMessage>,
    history: History,
    health: Health,
    html_dirty: bool,
    html_written: Option<Timestamp>,
    clock_warned: bool,
    /// When its last telegram arrived (the reader's clock), or its files were last written (at start).
    heard: Timestamp,
}

/// Every listener's files.
#[derive(Debug)]
pub struct Store {
    cfg: StoreConfig,
    csv_header: String,
    listeners: BTreeMap<String, Listener>,
    stats: Arc<Stats>,
    last_sync: Option<Timestamp>,
    next_housekeeping: Option<Timestamp>,
    actions: VecDeque<Action>,
    noise: Noise,
    /// Status datagrams of listeners with no telegram yet (they take no slot).
    pending: BTreeMap<String, (Timestamp, StatusMessage)>,
}

/// Events a sender can cause at will, logged at most once a minute each (see [`Summary`]).
#[derive(Debug)]
struct Noise {
    warn: Summary,
    info: Summary,
}

const STALE: usize = 0;
const IMPLAUSIBLE: usize = 1;
const GAP: usize = 2;
const REFUSED: usize = 3;
const CLOCK_AHEAD: usize = 4;
const WARN_KINDS: &[&str] = &[
    "stale (too old to check for duplicates; dropped)",
    "implausible sequence jump (dropped)",
    "sequence gap",
    "refused (name too long)",
    "listener clock more than a day ahead",
];
const RESTART: usize = 0;
const NEW_LISTENER: usize = 1;
const SET_ASIDE: usize = 2;
const INFO_KINDS: &[&str] = &["listener restart", "new listener", "listener set aside (least recently heard)"];

impl Noise {
    fn new() -> Noise {
        Noise { warn: Summary::new(WARN_KINDS), info: Summary::new(INFO_KINDS) }
    }

    fn warn(&mut self, kind: usize, detail: impl FnOnce() -> String, now: Timestamp) {
        if let Some(r) = self.warn.note(kind, detail, now) {
            log_warn(&r);
        }
    }

    fn info(&mut self, kind: usize, detail: impl FnOnce() -> String, now: Timestamp) {
        if let Some(r) = self.info.note(kind, detail, now) {
            log_info(&r);
        }
    }

    fn due(&mut self, now: Timestamp, flush: bool) {
        let (w, i) =
            if flush { (self.warn.flush(now), self.info.flush(now)) } else { (self.warn.due(now), self.info.due(now)) };
        w.iter().for_each(log_warn);
        i.iter().for_each(log_info);
    }
}

fn log_warn(r: &Report) {
    warn!(events = %r.counts, last = %r.last, "unusual telegrams (summarised, at most one line a minute)");
}

fn log_info(r: &Report) {
    info!(events = %r.counts, last = %r.last, "listeners (summarised, at most one line a minute)");
}

impl Store {
    /// Opens the data directory: adopts unfinished interval files and rebuilds each listener's state from the
    /// tail of its details file. Problems are logged, never fatal: writing retries later.
    #[must_use]
    pub fn open(cfg: StoreConfig, stats: Arc<Stats>, now: Timestamp) -> Store {
        let mut store = Store {
            csv_header: crate::csv::header(&cfg.columns),
            cfg,
            listeners: BTreeMap::new(),
            stats,
            last_sync: None,
            next_housekeeping: None,
            actions: VecDeque::new(),
            noise: Noise::new(),
            pending: BTreeMap::new(),
        };
        match fs::read_dir(&store.cfg.dir) {
            Ok(entries) => {
                // The most recently written first: those are the listeners still sending.
                let mut dirs: Vec<(Timestamp, String)> = entries
                    .filter_map(|e| {
                        let e = e.ok()?;
                        e.file_type().ok()?.is_dir().then_some(())?;
                        let name = e.file_name().into_string().ok()?;
                        let written = last_written(&e.path())?;
                        listener_name(&name).is_some().then_some((written, name))
                    })
                    .collect();
                dirs.sort_by(|a, b| b.cmp(a));
                for (written, name) in dirs {
                    if store.listeners.len() >= MAX_LISTENERS {
                        break;
                    }
                    let mut listener = Listener::recover(&store.cfg, &name, now, true);
                    if dir_name(&listener.name).as_deref() != Some(name.as_str()) {
                        // Written under an older naming (a hash for unsafe names): its files stay as they are.
                        info!(dir = %listener.dir.display(), listener = %Printable(&listener.name), "a directory of an older naming scheme; not written to");
                        continue;
                    }
                    listener.heard = written;
                    store.listeners.insert(name, listener);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => warn!(dir = %store.cfg.dir.display(), cause = %e, "cannot read the data directory"),
        }
        store
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Writes one telegram to every file, resuming where an earlier failed attempt stopped.
    pub fn write(&mut self, job: &mut Job, now: Timestamp) -> Result<Outcome, StoreError> {
        let cfg = &self.cfg;
        if job.done.admitted.is_none() {
            let name = &job.msg.origin.listener;
            let Some(dir) = dir_name(name) else {
                stats::bump(&self.stats.dropped_listeners);
                self.noise.warn(
                    REFUSED,
                    || format!("listener {}: name too long for a directory", Printable(name)),
                    now,
                );
                return Ok(Outcome::TooManyListeners);
            };
            let (l, new) = listener_in(&mut self.listeners, cfg, &dir, now, &self.stats, &mut self.noise);
            if new {
                let shown = l.dir.display();
                self.noise.info(
                    NEW_LISTENER,
                    || format!("writing files for listener {} in {shown}", Printable(name)),
                    now,
                );
                if let Some((_, status)) = self.pending.remove(&dir) {
                    l.status = Some(status);
                }
            }
            l.heard = now;
            let verdict = l.admit(&job.msg, job.arrived, &self.stats, &mut self.noise);
            if matches!(verdict, Verdict::Duplicate | Verdict::Stale | Verdict::Implausible) {
                return Ok(Outcome::Duplicate);
            }
            if job.msg.received_at > job.arrived + MAX_AHEAD && !l.clock_warned {
                let (stamp, arrived) = (job.msg.received_at, job.arrived);
                let detail = || {
                    format!(
                        "listener {}: received_at {stamp}, reader time {arrived}; filed by the reader's clock",
                        Printable(name)
                    )
                };
                self.noise.warn(CLOCK_AHEAD, detail, now);
                l.clock_warned = true;
            }
            let t = l.clock.admit(job.msg.received_at, job.arrived);
            l.latest = Some(job.raw.clone());
            l.history.push(&job.msg);
            l.html_dirty = true;
            job.done.admitted = Some((dir, t, verdict));
        }
        let Some((dir, t, verdict)) = job.done.admitted.clone() else { return Ok(Outcome::Duplicate) };
        let Some(l) = self.listeners.get_mut(&dir) else { return Ok(Outcome::TooManyListeners) };
        let msg = &job.msg;
        if !job.done.interval || !job.done.day {
            let row = crate::csv::row(msg, &cfg.columns);
            if !job.done.interval {
                l.append_interval(cfg, &self.csv_header, t, row.as_bytes())?;
                job.done.interval = true;
            }
            let header = &self.csv_header;
            let want = period_for(l.day.as_ref(), Span::Day, t, &cfg.tz);
            append_in(&mut l.day, want, &l.dir.join("day"), ".csv", Some(header), false, row.as_bytes())?;
            job.done.day = true;
        }
        if cfg.details && !job.done.details {
            let line = details_line(&job.raw, msg);
            let want = period_for(l.details.as_ref(), Span::Day, t, &cfg.tz);
            append_in(&mut l.details, want, &l.dir.join("details"), ".jsonl", None, false, &line)?;
            job.done.details = true;
        }
        if !job.done.weekly {
            l.add_to_hour(cfg, t, msg, verdict);
            job.done.weekly = true;
            l.health.telegrams = l.health.telegrams.saturating_add(1);
            stats::bump(&self.stats.written);
        }
        // A closed hour's line goes out at once (recovery after a kill rebuilds only the current hour, so a line
        // left for the tick could be lost). A weekly log that cannot be written must not hold up the telegrams
        // behind this one: the tick retries it and reports the error.
        if let Err(e) = l.flush_weekly(cfg) {
            debug!(cause = %e, "weekly log line not written yet; the tick retries");
        }
        Ok(Outcome::Written)
    }

    /// Keeps a listener's latest status datagram for its page.
    pub fn status(&mut self, status: StatusMessage, now: Timestamp) {
        // A status takes no listener slot: for a listener not known yet it is kept aside (the newest few) until
        // its first telegram.
        let Some(dir) = dir_name(&status.origin.listener) else { return };
        if let Some(l) = self.listeners.get_mut(&dir) {
            l.status = Some(status);
            l.html_dirty = true;
            return;
        }
        if self.pending.len() >= MAX_LISTENERS && !self.pending.contains_key(&dir) {
            if let Some(oldest) = self.pending.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| k.clone()) {
                self.pending.remove(&oldest);
            }
        }
        self.pending.insert(dir, (now, status));
    }

    /// Time-driven work: finishes periods of silent listeners, writes queued weekly lines and due pages, syncs
    /// files, and runs housekeeping. Returns the first error after trying everything.
    pub fn tick(&mut self, now: Timestamp) -> Result<(), StoreError> {
        let cfg = &self.cfg;
        let mut first_error = None;
        let sync_due = self.last_sync.is_none_or(|t| now >= t + SYNC_EVERY);
        for l in self.listeners.values_mut() {
            if let Err(e) = l.tick(cfg, now, sync_due) {
                first_error.get_or_insert(e);
            }
        }
        if sync_due {
            self.last_sync = Some(now);
        }
        self.noise.due(now, false);
        if (cfg.compress || cfg.retention.any()) && self.next_housekeeping.is_none_or(|t| now >= t) {
            // Hourly, and soon after local midnight, when the day's files close.
            let midnight = Period::containing(Span::Day, now, &cfg.tz).end + SignedDuration::from_mins(1);
            self.next_housekeeping = Some((now + HOUSEKEEPING_EVERY).min(midnight));
            let open = self.open_paths();
            for l in self.listeners.values() {
                let todo = housekeeping::plan(&l.dir, cfg.interval, &cfg.tz, now, cfg.compress, cfg.retention, &open);
                self.actions.extend(todo);
            }
        }
        let open = if self.actions.is_empty() { Vec::new() } else { self.open_paths() };
        for _ in 0..ACTIONS_PER_TICK {
            let Some(action) = self.actions.pop_front() else { break };
            let path = match &action {
                Action::Compress(p) | Action::Delete(p) => p.clone(),
            };
            if open.contains(&path) {
                continue;
            }
            match housekeeping::execute(&action) {
                Ok(()) => debug!(?action, "housekeeping"),
                Err(e) => {
                    warn!(?action, cause = %e, "housekeeping failed; will try again next hour");
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Writes what is due and syncs every file, for a clean stop. An unfinished interval stays `.partial` and
    /// is adopted by the next start.
    pub fn close(&mut self, now: Timestamp) -> Result<(), StoreError> {
        self.noise.due(now, true);
        let mut first_error = None;
        for l in self.listeners.values_mut() {
            l.html_written = None;
            let results = [l.flush_weekly(&self.cfg), l.write_page(&self.cfg, now), l.sync_all()];
            for r in results {
                if let Err(e) = r {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Names of the listeners known (their directory names).
    pub fn listeners(&self) -> impl Iterator<Item = &str> {
        self.listeners.keys().map(String::as_str)
    }

    fn open_paths(&self) -> Vec<PathBuf> {
        let mut open = Vec::new();
        for l in self.listeners.values() {
            for slot in [&l.interval, &l.day, &l.details, &l.week].into_iter().flatten() {
                if let Some(f) = &slot.file {
                    open.push(f.path().to_owned());
                }
            }
            for (sub, ext, slot) in
                [("day", ".csv", &l.day), ("details", ".jsonl", &l.details), ("weekly", ".log", &l.week)]
            {
                if let Some(s) = slot {
                    open.push(l.dir.join(sub).join(format!("{}{ext}", s.period.name())));
                }
            }
        }
        open
    }
}

impl Listener {
    fn empty(cfg: &StoreConfig, dir_name: &str) -> Listener {
        Listener {
            dir: cfg.dir.join(dir_name),
            name: dir_name.to_owned(),
            tracker: SeqTracker::new(),
            clock: StreamClock::default(),
            interval: None,
            day: None,
            details: None,
            week: None,
            hour: None,
            logged_hour: None,
            weekly_queue: VecDeque::new(),
            latest: None,
            status: None,
            history: History::new(cfg.html_minutes),
            health: Health::default(),
            html_dirty: false,
            html_written: None,
            clock_warned: false,
            heard: Timestamp::UNIX_EPOCH,
        }
    }

    /// Rebuilds a listener's state from its files. What it found is logged at start (`at_start`); later (a new or
    /// returning listener, which any sender can cause) only at debug level.
    fn recover(cfg: &StoreConfig, dir_name: &str, now: Timestamp, at_start: bool) -> Listener {
        let mut l = Listener::empty(cfg, dir_name);
        // Only the newest file of each kind can have been written when the last run died: repair those now, so
        // that a file the new run never reopens is whole too. A page half-written to its temporary name is junk.
        for (sub, ext) in [("details", "jsonl"), ("day", "csv"), ("weekly", "log")] {
            repair_newest(&l.dir.join(sub), ext);
        }
        let _ = fs::remove_file(l.dir.join("p1.html.tmp"));
        l.adopt_partials(cfg, at_start);
        l.logged_hour = last_logged_hour(&l.dir.join("weekly"));
        if let Some(h) = l.logged_hour {
            l.clock.raise(Period::containing(Span::HOUR, h, &cfg.tz).end);
        }
        if cfg.details {
            l.replay_details(cfg, now, at_start);
        }
        l
    }

    /// The newest `.partial` interval file becomes the open interval; older ones are finished.
    fn adopt_partials(&mut self, cfg: &StoreConfig, at_start: bool) {
        let dir = self.dir.join("interval");
        let Ok(entries) = fs::read_dir(&dir) else { return };
        let mut stems: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".csv.partial").map(str::to_owned))
            .collect();
        stems.sort();
        let newest = stems.pop();
        for stem in stems {
            finish_partial(&dir, &stem).unwrap_or_else(|e| warn!(cause = %e, "cannot finish an old interval file"));
        }
        let Some(stem) = newest else { return };
        match Period::parse_name(cfg.interval, &stem, &cfg.tz) {
            Some(period) => {
                let file = dir.join(format!("{stem}.csv.partial"));
                if at_start {
                    info!(listener = %Printable(&self.name), file = %file.display(), "resuming the unfinished interval file");
                } else {
                    debug!(listener = %Printable(&self.name), file = %file.display(), "resuming the unfinished interval file");
                }
                self.clock.raise(period.start);
                self.interval = Some(Slot { period, file: None });
            }
            None => {
                // Written with another interval_minutes: finish it as it is.
                finish_partial(&dir, &stem).unwrap_or_else(|e| warn!(cause = %e, "cannot finish an old interval file"));
            }
        }
    }

    /// Reads the end of the newest details file back: sequence state, the current hour, the chart, the page.
    fn replay_details(&mut self, cfg: &StoreConfig, now: Timestamp, at_start: bool) {
        let dir = self.dir.join("details");
        let Some(newest) = newest_with_extension(&dir, "jsonl") else { return };
        let path = dir.join(newest);
        let chart_span = SignedDuration::from_mins(i64::from(cfg.html_minutes));
        // Read backwards, keeping only the raw lines (parsed messages are several times larger), until the
        // current hour and the chart's span are covered.
        let mut newest_first: Vec<Vec<u8>> = Vec::new();
        let mut baseline: Option<TelegramMessage> = None;
        let mut span: Option<(Period, Timestamp)> = None;
        let result = linefile::lines_backwards(&path, MAX_REPLAY_BYTES, |line| {
            let Ok(Message::Telegram(msg)) = shared::wire::parse(line) else { return true };
            let Some((hour, last)) = span else {
                span = Some((Period::containing(Span::HOUR, msg.received_at, &cfg.tz), msg.received_at));
                newest_first.push(line.to_vec());
                return true;
            };
            let in_hour = msg.received_at >= hour.start;
            let in_chart = msg.received_at >= last.checked_sub(chart_span).unwrap_or(Timestamp::MIN);
            if !in_hour && baseline.is_none() {
                baseline = Some(*msg);
            }
            if in_hour || in_chart {
                newest_first.push(line.to_vec());
            }
            (in_hour || in_chart) && newest_first.len() < MAX_REPLAY_LINES
        });
        if let Err(e) = result {
            warn!(file = %path.display(), cause = %e, "cannot read back the details file");
        }
        let Some((hour, last_at)) = span else { return };
        let hour_open = self.logged_hour.is_none_or(|h| h < hour.start);
        let mut summary = HourSummary::new(hour, baseline.is_none());
        if let Some(b) = &baseline {
            summary.set_baseline(b);
        }
        let mut last_seq = 0;
        for line in newest_first.iter().rev() {
            let Ok(Message::Telegram(msg)) = shared::wire::parse(line) else { continue };
            // Filed times from our own files, never later than now: the allowance for a sequence jump counts from
            // them.
            let verdict = self.tracker.observe(&msg.origin.boot_id, msg.seq, msg.received_at.min(now));
            self.history.push(&msg);
            if hour.contains(msg.received_at) {
                summary.add(&msg);
                match verdict {
                    Verdict::New { missed } => summary.add_missed(missed),
                    Verdict::Late => summary.remove_missed(),
                    _ => {}
                }
            }
            self.name.clone_from(&msg.origin.listener);
            last_seq = msg.seq;
        }
        self.clock.raise(last_at);
        // An hour whose line is written already only lends its last readings to the next one.
        self.hour = Some(if hour_open { summary } else { summary.next(hour.next(&cfg.tz)) });
        let (telegrams, age_s) = (newest_first.len(), now.duration_since(last_at).as_secs());
        if at_start {
            info!(listener = %Printable(&self.name), telegrams, last_seq, age_s, "read back the end of the details file");
        } else {
            debug!(listener = %Printable(&self.name), telegrams, last_seq, age_s, "read back the end of the details file");
        }
        self.latest = newest_first.into_iter().next();
        self.html_dirty = self.latest.is_some();
    }

    /// Judges a telegram's sequence number (it arrived at `arrived`) and counts the verdict.
    fn admit(&mut self, msg: &TelegramMessage, arrived: Timestamp, stats: &Stats, noise: &mut Noise) -> Verdict {
        self.name.clone_from(&msg.origin.listener);
        let verdict = self.tracker.observe(&msg.origin.boot_id, msg.seq, arrived);
        let name = Printable(&msg.origin.listener);
        let seq = msg.seq;
        match verdict {
            Verdict::New { missed: 0 } | Verdict::NewBoot { restart: false } => {}
            Verdict::New { missed } => {
                noise.warn(GAP, || format!("listener {name}: {missed} missed before seq {seq}"), arrived);
                self.health.missed = self.health.missed.saturating_add(missed);
                stats::add(&stats.missed, missed);
            }
            Verdict::NewBoot { restart: true } => {
                let boot = Printable(&msg.origin.boot_id);
                noise.info(RESTART, || format!("listener {name} restarted: boot id {boot}, seq {seq}"), arrived);
                self.health.restarts = self.health.restarts.saturating_add(1);
                stats::bump(&stats.restarts);
            }
            Verdict::Late => {
                debug!(listener = %name, seq, "late telegram fills a gap");
                self.health.missed = self.health.missed.saturating_sub(1);
                stats::drop_one(&stats.missed);
            }
            Verdict::Duplicate => {
                self.health.duplicates = self.health.duplicates.saturating_add(1);
                stats::bump(&stats.duplicates);
            }
            Verdict::Stale => {
                noise.warn(STALE, || format!("listener {name}: seq {seq}"), arrived);
                stats::bump(&stats.stale);
            }
            Verdict::Implausible => {
                noise.warn(IMPLAUSIBLE, || format!("listener {name}: seq {seq}"), arrived);
                stats::bump(&stats.implausible);
            }
        }
        verdict
    }

    fn append_interval(&mut self, cfg: &StoreConfig, header: &str, t: Timestamp, row: &[u8]) -> Result<(), StoreError> {
        let want = period_for(self.interval.as_ref(), cfg.interval, t, &cfg.tz);
        append_in(&mut self.interval, want, &self.dir.join("interval"), ".csv.partial", Some(header), true, row)
    }

    fn add_to_hour(&mut self, cfg: &StoreConfig, t: Timestamp, msg: &TelegramMessage, verdict: Verdict) {
        let want = match &self.hour {
            Some(h) if h.period.contains(t) => h.period,
            _ => Period::containing(Span::HOUR, t, &cfg.tz),
        };
        let summary = match self.hour.take() {
            Some(h) if h.period == want => h,
            Some(h) => {
                self.queue_hour(cfg, &h);
                h.next(want)
            }
            None => HourSummary::new(want, true),
        };
        let summary = self.hour.insert(summary);
        summary.add(msg);
        match verdict {
            Verdict::New { missed } => summary.add_missed(missed),
            Verdict::Late => summary.remove_missed(),
            _ => {}
        }
    }

    fn queue_hour(&mut self, cfg: &StoreConfig, h: &HourSummary) {
        if h.is_empty() || self.logged_hour.is_some_and(|l| h.period.start <= l) {
            return;
        }
        let week = Period::containing(Span::Week, h.period.start, &cfg.tz);
        self.weekly_queue.push_back((week, h.line(&cfg.tz)));
        self.logged_hour = Some(h.period.start);
        // A line waiting for a disk that stays full is kept for a week at most.
        while self.weekly_queue.len() > 24 * 7 {
            self.weekly_queue.pop_front();
        }
    }

    fn flush_weekly(&mut self, cfg: &StoreConfig) -> Result<(), StoreError> {
        while let Some((week, line)) = self.weekly_queue.front() {
            let header = weekly::header(&self.name, week, &cfg.tz_name);
            append_in(&mut self.week, *week, &self.dir.join("weekly"), ".log", Some(&header), false, line.as_bytes())?;
            self.weekly_queue.pop_front();
        }
        Ok(())
    }

    fn tick(&mut self, cfg: &StoreConfig, now: Timestamp, sync_due: bool) -> Result<(), StoreError> {
        let est = self.clock.estimate(now);
        let mut first_error = None;
        // Finish the interval file when the listener's time has passed its end.
        if let Some(slot) = &mut self.interval {
            if slot.period.end + GRACE <= est {
                let end = slot.period.end;
                match close_slot(slot, &self.dir.join("interval"), true) {
                    Ok(()) => {
                        self.interval = None;
                        self.clock.raise(end);
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        for slot_ref in [&mut self.day, &mut self.details, &mut self.week] {
            if let Some(slot) = slot_ref {
                if slot.period.end + GRACE <= est {
                    let end = slot.period.end;
                    match close_slot(slot, &self.dir, false) {
                        Ok(()) => {
                            *slot_ref = None;
                            self.clock.raise(end);
                        }
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
        }
        if let Some(h) = self.hour.take() {
            if h.period.end + GRACE <= est {
                self.queue_hour(cfg, &h);
                self.clock.raise(h.period.end);
                let next = h.period.next(&cfg.tz);
                self.hour = Some(h.next(next));
            } else {
                self.hour = Some(h);
            }
        }
        if let Err(e) = self.flush_weekly(cfg) {
            first_error.get_or_insert(e);
        }
        if self.html_dirty && self.html_written.is_none_or(|w| now >= w + cfg.html_every) {
            if let Err(e) = self.write_page(cfg, now) {
                first_error.get_or_insert(e);
            }
        }
        if sync_due {
            if let Err(e) = self.sync_all() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn write_page(&mut self, cfg: &StoreConfig, now: Timestamp) -> Result<(), StoreError> {
        if !cfg.html || !self.html_dirty {
            return Ok(());
        }
        let Some(Ok(Message::Telegram(latest))) = self.latest.as_deref().map(shared::wire::parse) else {
            return Ok(());
        };
        let page = html::render(&html::Page {
            listener: &self.name,
            latest: &latest,
            status: self.status.as_ref(),
            history: &self.history,
            health: self.health,
            tz: &cfg.tz,
            refresh_secs: u64::try_from(cfg.html_every.as_secs()).unwrap_or(5).max(1),
        });
        let path = self.dir.join("p1.html");
        // Marked written even on failure, so a broken disk is retried at the page's pace, not every tick.
        self.html_written = Some(now);
        linefile::replace(&path, page.as_bytes(), false).map_err(StoreError::io("cannot write", &path))?;
        self.html_dirty = false;
        Ok(())
    }

    fn sync_all(&mut self) -> Result<(), StoreError> {
        let mut first_error = None;
        for slot in [&mut self.interval, &mut self.day, &mut self.details, &mut self.week].into_iter().flatten() {
            if let Some(f) = &mut slot.file {
                if let Err(e) = f.sync() {
                    let path = f.path().to_owned();
                    slot.file = None;
                    first_error.get_or_insert(StoreError::Io { action: "cannot sync", path, source: e });
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The period of `span` holding `t`: the slot's own when it does (the common case, computed once per period).
fn period_for(slot: Option<&Slot>, span: Span, t: Timestamp, tz: &TimeZone) -> Period {
    match slot {
        Some(s) if s.period.contains(t) => s.period,
        _ => Period::containing(span, t, tz),
    }
}

/// Appends `line` to the file of period `want` in `dir`, rotating the slot first if it holds another period.
fn append_in(
    slot: &mut Option<Slot>,
    want: Period,
    dir: &Path,
    suffix: &str,
    header: Option<&str>,
    partial: bool,
    line: &[u8],
) -> Result<(), StoreError> {
    if let Some(s) = slot {
        // The clock is monotonic, so `want` is never earlier than the open period; a later one rotates.
        if s.period != want && s.period.start < want.start {
            close_slot(s, dir, partial)?;
            *slot = None;
        }
    }
    let s = slot.get_or_insert(Slot { period: want, file: None });
    let path = dir.join(format!("{}{suffix}", s.period.name()));
    if s.file.is_none() {
        s.file = Some(open_with_header(&path, header, partial)?);
    }
    let Some(file) = &mut s.file else { return Ok(()) };
    if let Err(e) = file.append(line) {
        // Reopen next time: that repairs whatever the failed write left.
        s.file = None;
        return Err(StoreError::Io { action: "cannot write", path, source: e });
    }
    Ok(())
}

/// Opens a file for appending and makes sure it starts with `header`. A file with another header (the columns
/// were changed) is set aside as `NAME~N` and a new one started.
fn open_with_header(path: &Path, header: Option<&str>, partial: bool) -> Result<LineFile, StoreError> {
    let (mut file, opened) = LineFile::open(path).map_err(StoreError::io("cannot open", path))?;
    if opened.repaired > 0 {
        warn!(file = %path.display(), bytes = opened.repaired, "cut a torn last line");
    }
    let Some(header) = header else { return Ok(file) };
    if !opened.empty {
        let first = linefile::first_line(path, header.len() + 1);
        if first.as_deref() == Some(header.trim_end_matches('\n')) {
            return Ok(file);
        }
        drop(file);
        let aside = set_aside(path, partial).map_err(StoreError::io("cannot rename", path))?;
        warn!(file = %path.display(), moved_to = %aside.display(), "the file has other columns; started a new one");
        let (f, _) = LineFile::open(path).map_err(StoreError::io("cannot open", path))?;
        file = f;
    }
    file.append(header.as_bytes()).map_err(StoreError::io("cannot write", path))?;
    Ok(file)
}

/// Renames `NAME.ext` (or `NAME.csv.partial`) to the first free `NAME~N.ext` (a finished file).
fn set_aside(path: &Path, partial: bool) -> io::Result<PathBuf> {
    let finished = if partial { path.with_extension("") } else { path.to_owned() };
    let aside = free_aside_name(&finished)?;
    linefile::rename_durable(path, &aside)?;
    Ok(aside)
}

/// The first `NAME~N.ext` (N from 1) beside the finished name `NAME.ext` that no file has.
fn free_aside_name(finished: &Path) -> io::Result<PathBuf> {
    let name = finished.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let (stem, ext) = name.split_once('.').unwrap_or((name, ""));
    let dir = finished.parent().unwrap_or(Path::new("."));
    (1..1000)
        .map(|n| dir.join(format!("{stem}~{n}.{ext}")))
        .find(|p| !p.exists())
        .ok_or_else(|| io::Error::new(io::ErrorKind::AlreadyExists, "no free name to set the file aside"))
}

/// Syncs and closes a slot's file; an interval file is renamed from `.csv.partial` to `.csv`.
fn close_slot(slot: &mut Slot, dir: &Path, partial: bool) -> Result<(), StoreError> {
    if let Some(f) = &mut slot.file {
        let path = f.path().to_owned();
        f.sync().map_err(StoreError::io("cannot sync", &path))?;
    }
    slot.file = None;
    if partial {
        finish_partial(dir, &slot.period.name())?;
    }
    Ok(())
}

/// Renames `dir/STEM.csv.partial` to `dir/STEM.csv`, atomically and durably. A missing partial (nothing was
/// written in that interval, or it was finished already) is fine.
fn finish_partial(dir: &Path, stem: &str) -> Result<(), StoreError> {
    let from = dir.join(format!("{stem}.csv.partial"));
    let to = dir.join(format!("{stem}.csv"));
    if !from.exists() {
        return Ok(());
    }
    // Repair first, so a finished file never holds a torn line.
    drop(LineFile::open(&from).map_err(StoreError::io("cannot open", &from))?);
    // A finished name that is taken (a restart with a wrong clock, or a copied partial) is never overwritten.
    let to = if to.exists() { free_aside_name(&to).map_err(StoreError::io("no free name for", &to))? } else { to };
    linefile::rename_durable(&from, &to).map_err(StoreError::io("cannot rename", &from))?;
    debug!(file = %to.display(), "interval finished");
    Ok(())
}

/// Cuts a torn last line from the newest `*.ext` file in `dir`.
fn repair_newest(dir: &Path, ext: &str) {
    let Some(newest) = newest_with_extension(dir, ext) else { return };
    let path = dir.join(newest);
    match LineFile::open(&path) {
        Ok((_, opened)) if opened.repaired > 0 => {
            warn!(file = %path.display(), bytes = opened.repaired, "cut a torn last line");
        }
        Ok(_) => {}
        Err(e) => warn!(file = %path.display(), cause = %e, "cannot check the file for a torn last line"),
    }
}

/// The name of the newest (greatest) plain `*.ext` file in `dir`. Files set aside as `NAME~N.ext` are older than
/// the `NAME.ext` that replaced them, though they sort after it, so they are left out.
fn newest_with_extension(dir: &Path, ext: &str) -> Option<String> {
    fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.contains('~') && Path::new(n).extension().is_some_and(|e| e == ext))
        .max()
}

/// The hour of the last line of the newest weekly log.
fn last_logged_hour(dir: &Path) -> Option<Timestamp> {
    let newest = newest_with_extension(dir, "log")?;
    let mut hour = None;
    let _ = linefile::lines_backwards(&dir.join(newest), 1 << 20, |line| {
        hour = std::str::from_utf8(line).ok().and_then(weekly::line_hour);
        hour.is_none()
    });
    hour
}

/// The details line of a telegram: the datagram exactly as received when it is one line (it always is when a
/// p1hub listener sent it), else the message written again compactly.
fn details_line(raw: &[u8], msg: &TelegramMessage) -> Vec<u8> {
    let mut line = if raw.contains(&b'\n') || raw.contains(&b'\r') {
        // Re-serialise through a generic value, so fields this build does not know are kept.
        serde_json::from_slice::<serde_json::Value>(raw)
            .ok()
            .and_then(|v| serde_json::to_vec(&v).ok())
            .unwrap_or_else(|| shared::wire::encode(&Message::Telegram(Box::new(msg.clone()))))
    } else {
        raw.to_vec()
    };
    line.push(b'\n');
    line
}

/// The listener kept under `dir`, recovered from its files on first sight (`true`: it is new). With
/// [`MAX_LISTENERS`] kept already, the one heard least recently is set aside first: its files are written out and
/// closed, and it is recovered from them again when it is heard again.
fn listener_in<'a>(
    listeners: &'a mut BTreeMap<String, Listener>,
    cfg: &StoreConfig,
    dir: &str,
    now: Timestamp,
    stats: &Stats,
    noise: &mut Noise,
) -> (&'a mut Listener, bool) {
    let new = !listeners.contains_key(dir);
    if new && listeners.len() >= MAX_LISTENERS {
        let oldest = listeners.iter().min_by_key(|(_, l)| l.heard).map(|(k, _)| k.clone());
        if let Some(mut l) = oldest.and_then(|k| listeners.remove(&k)) {
            stats::bump(&stats.set_aside);
            l.html_written = None;
            for r in [l.flush_weekly(cfg), l.write_page(cfg, now), l.sync_all()] {
                if let Err(e) = r {
                    warn!(cause = %e, "closing the files of a listener set aside");
                }
            }
            let name = Printable(&l.name);
            noise.info(SET_ASIDE, || format!("listener {name}, to make room for a new one"), now);
        }
    }
    let l = listeners.entry(dir.to_owned()).or_insert_with(|| Listener::recover(cfg, dir, now, false));
    (l, new)
}

/// When anything in a listener's directory was last written: the newest modification time of the directory and
/// its subdirectories (a page rewrite, a new or renamed file). `None` when it holds none of them (not ours).
fn last_written(dir: &Path) -> Option<Timestamp> {
    let mtime = |p: &Path| -> Option<Timestamp> {
        let modified = fs::metadata(p).ok()?.modified().ok()?;
        Timestamp::try_from(modified).ok()
    };
    let subdirs = ["details", "interval", "day", "weekly"].map(|s| mtime(&dir.join(s)));
    if subdirs.iter().all(Option::is_none) {
        return None;
    }
    subdirs.into_iter().chain([mtime(dir), mtime(&dir.join("p1.html"))]).flatten().max()
}

/// The longest directory name (`NAME_MAX` on Linux and most file systems), in bytes.
pub const MAX_DIR_NAME: usize = 255;

/// The directory name for a listener name, one-to-one: [`shared::names::escape`] (documented in FILES.md): a name
/// made only of `A-Z a-z 0-9 . _ -`, not starting with `.`, is its own directory name, any other is `~` and the
/// name with `~XX` escapes (`a/b` becomes `~a~2Fb`), so two names never share a directory, and no name can point
/// outside the data directory. `None` when the result would be longer than [`MAX_DIR_NAME`] bytes (no listener
/// configuration allows such a name: at most 64 characters, and only names of many non-ASCII characters come near).
#[must_use]
pub fn dir_name(listener: &str) -> Option<String> {
    Some(shared::names::escape(listener)).filter(|d| d.len() <= MAX_DIR_NAME)
}

/// The listener name a directory name stands for, if it is the [`dir_name`] of one (the inverse).
#[must_use]
pub fn listener_name(dir: &str) -> Option<String> {
    shared::names::unescape(dir).filter(|_| dir.len() <= MAX_DIR_NAME)
}

#[cfg(test)]
mod tests;
