//! `p1-reader`: subscribes to a p1hub listener's multicast group and keeps every telegram in files.
//!
//! The receiving task ([`subscribe`]) checks each datagram with `shared::wire` and hands valid messages to one
//! writing thread ([`writer`]), which owns the files through the [`store`]: per listener, a details file of
//! every message (JSON lines, daily), interval and day CSV files, a weekly log of hourly summaries, and an HTML
//! page. Rotation follows the configured time zone ([`period`]); files only ever hold whole lines
//! ([`linefile`]), so a reader killed at any moment leaves every file readable and resumes appending. The formats
//! are described in `reader/FILES.md`.
//!
//! # Layout
//! - [`cli`]: flags, configuration loading, signals.
//! - [`subscribe`]: the receive loop over [`p1hub_subscriber`] (the socket, decoding, invalid datagrams counted).
//! - [`writer`]: the writing thread, its bounded queue and backoff.
//! - [`store`]: which file each telegram goes to, rotation, restart recovery.
//! - [`period`]: intervals, hours, days and ISO weeks in a time zone, DST included.
//! - [`tracker`]: sequence gaps, listener restarts, duplicates (the subscriber library's, re-exported).
//! - [`linefile`]: append-only whole-line files and atomic replacement.
//! - [`csv`], [`weekly`], [`html`]: the formats.
//! - [`history`]: the history database (per-minute rows, hourly and daily rollups), on its own thread.
//! - [`rrd`]: `RRDtool` files (`reader.rrd`), through the `rrdtool` command.
//! - [`report`]: `p1-reader report` and `p1-reader import`.
//! - [`housekeeping`]: gzip and retention of closed files.
//! - [`clock`], [`stats`]: injected time and counters.
//! - [`logtext`], [`summary`]: datagram text made safe to log; per-minute summaries of repeatable events.

pub mod backoff;
pub mod cli;
pub mod clock;
pub mod csv;
pub mod history;
pub mod housekeeping;
pub mod html;
pub mod linefile;
pub mod logtext;
pub mod period;
pub mod report;
pub mod rrd;
pub mod stats;
pub mod store;
pub mod subscribe;
pub mod summary;
pub use p1hub_subscriber::tracker;
pub mod weekly;
pub mod writer;

#[cfg(test)]
mod testutil;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use p1hub_subscriber::{Options, Subscriber};
use tokio_util::sync::CancellationToken;

use shared::config::Config;
use tracing::{error, info};

use crate::clock::{Clock, SystemClock};
use crate::stats::Stats;
use crate::store::{Store, StoreConfig};
use crate::subscribe::SubscribeError;
use crate::writer::{Inbox, Writer};

/// Why the reader could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReaderError {
    /// The multicast subscription failed.
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
    /// The writing thread could not be started.
    #[error("cannot start the writing thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The writing thread panicked (a bug); files are still whole, as every write is.
    #[error("the writing thread stopped unexpectedly")]
    WriterPanicked,
}

/// A reader that has joined its group and opened its data directory, ready to [`run`](Reader::run).
pub struct Reader {
    sub: Subscriber,
    store: Store,
    stats: Arc<Stats>,
    clock: Arc<dyn Clock>,
    queue_bytes: usize,
    history: history::Target,
    tz: jiff::tz::TimeZone,
    retention: [Option<u32>; 3],
    password_file: Option<std::path::PathBuf>,
    rrd: bool,
    dir: std::path::PathBuf,
}

impl Reader {
    /// Joins the configured group and opens the data directory. Must be called inside a tokio runtime. An
    /// interface that is not there yet is no error: the reader waits for it (logged) while it runs.
    pub fn bind(config: &Config) -> Result<Reader, ReaderError> {
        Reader::bind_with_clock(config, Arc::new(SystemClock))
    }

    /// As [`Reader::bind`], with the reader's time taken from `clock`.
    pub fn bind_with_clock(config: &Config, clock: Arc<dyn Clock>) -> Result<Reader, ReaderError> {
        let m = &config.multicast;
        let sub = Subscriber::new(Options::from_config(config), CancellationToken::new())?;
        let stats = Arc::new(Stats::default());
        let store = Store::open(StoreConfig::from_config(config), stats.clone(), clock.now());
        info!(group = %m.group, interface = %m.interface, dir = %config.reader.dir.display(), joined = sub.is_joined(), "subscribed");
        Ok(Reader {
            sub,
            store,
            stats,
            clock,
            queue_bytes: config.reader.queue_bytes,
            history: history::Target::of(&config.reader),
            tz: config.timezone.clone(),
            retention: config.reader.database_retention,
            password_file: config.reader.database_password_file.clone(),
            rrd: config.reader.rrd,
            dir: config.reader.dir.clone(),
        })
    }

    /// The counters, live.
    #[must_use]
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The address the socket is bound to (an error while the reader still waits for its interface).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.sub.local_addr().ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotConnected))
    }

    /// Whether the group is joined (`false` while waiting for the interface).
    #[must_use]
    pub fn is_joined(&self) -> bool {
        self.sub.is_joined()
    }

    /// Receives and writes until `shutdown` completes, then writes what is queued and closes every file.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ReaderError> {
        let inbox = Arc::new(Inbox::new(self.queue_bytes, self.stats.clone()));
        let mut writer = Writer::new(self.store, self.stats.clone(), inbox.clone());
        let mut history_thread = None;
        let rrd = self.rrd.then(|| rrd::Rrd::new(self.dir.join("rrd")));
        let mut spawn_sink = |sink: history::Sink, writer: Writer| -> Result<Writer, ReaderError> {
            let queue = sink.queue();
            let sink = match rrd.clone() {
                Some(r) => sink.with_rrd(r),
                None => sink,
            };
            history_thread = Some(history::spawn(sink, self.clock.clone()).map_err(ReaderError::Thread)?);
            Ok(writer.with_history(history::Feed::new(queue)))
        };
        match &self.history {
            history::Target::Off if self.rrd => {
                let queue = Arc::new(history::RowQueue::new(history::QUEUE_BYTES, self.stats.clone()));
                let open: history::Opener = Box::new(|| Ok(Box::new(history::NoDb) as Box<dyn history::HistoryDb>));
                let sink = history::Sink::with_opener("off".into(), open, [None; 3], queue, self.stats.clone());
                writer = spawn_sink(sink, writer)?;
            }
            history::Target::Off => {}
            history::Target::Postgres(url) => match history::password(self.password_file.as_deref()) {
                Ok(password) => {
                    let queue = Arc::new(history::RowQueue::new(history::QUEUE_BYTES, self.stats.clone()));
                    let sink = history::Sink::postgres(
                        url.clone(),
                        password,
                        self.tz.clone(),
                        self.retention,
                        queue,
                        self.stats.clone(),
                    );
                    writer = spawn_sink(sink, writer)?;
                }
                Err(e) => error!("{e}; no history database, the files are written as usual"),
            },
            history::Target::Sqlite(path) => {
                let queue = Arc::new(history::RowQueue::new(history::QUEUE_BYTES, self.stats.clone()));
                let sink = history::Sink::new(path.clone(), self.tz.clone(), self.retention, queue, self.stats.clone());
                writer = spawn_sink(sink, writer)?;
            }
        }
        let thread = writer::spawn(writer, self.clock.clone()).map_err(ReaderError::Thread)?;
        subscribe::receive(self.sub, inbox.clone(), self.clock, self.stats.clone(), shutdown).await;
        // Closed: the thread writes what is left, closes the files and ends.
        inbox.close();
        let joined = tokio::task::spawn_blocking(move || {
            let files = thread.join();
            // The writing thread closed the history queue as it finished; the database thread writes what is left.
            if let Some(h) = history_thread {
                let _ = h.join();
            }
            files
        })
        .await;
        let s = self.stats.snapshot();
        info!(
            received = s.telegrams,
            written = s.written,
            duplicates = s.duplicates,
            missed = s.missed,
            dropped_full = s.dropped_full,
            refused = s.refused_open
                + s.refused_no_key
                + s.refused_unknown_key
                + s.refused_version
                + s.forged
                + s.replayed
                + s.outside_window,
            "stopped"
        );
        match joined {
            Ok(Ok(())) => Ok(()),
            _ => Err(ReaderError::WriterPanicked),
        }
    }
}

/// Joins the configured group and writes files until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ReaderError> {
    Reader::bind(&config)?.run(shutdown).await
}
