//! The history database: per-minute rows per meter and hourly and daily rollups, beside the files.
//!
//! The writing thread hands each written telegram to a [`Minutes`] aggregator (in memory, cheap); a minute that
//! is over becomes a [`MinuteRow`] in a [`RowQueue`] bounded in bytes. A thread of its own ([`spawn`]) takes the
//! rows off in batches and writes each batch in one transaction ([`Db::write`]): the minute rows and, from the
//! register values, the hourly and daily rollups they touch. A failing database is retried with backoff (1 s to
//! 60 s) and counted (`history_errors`); the files never wait for it. The schema is in `docs/history.md`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use rusqlite::{Connection, OptionalExtension, Transaction};
use shared::config::Reader as ReaderConfig;
use shared::decimal::Decimal;
use shared::timestamp::MeterTime;
use shared::wire::{TelegramMessage, Values};
use tracing::{error, info, warn};

use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::period::{Period, Span};
use crate::stats::{self, Stats};

/// The schema version this build writes (see `docs/history.md`, "Migrations").
pub const SCHEMA_VERSION: i64 = 1;
/// The database file name in `reader.dir` for `sqlite:`.
pub const DEFAULT_FILE: &str = "history.sqlite";
/// The bound of the row queue between the writing thread and the database thread.
pub const QUEUE_BYTES: usize = 8 << 20;
/// Most minute rows per transaction.
pub const BATCH_ROWS: usize = 1000;
/// A meter silent this long has its open minute written.
const QUIET: SignedDuration = SignedDuration::from_secs(90);
const REMIND_EVERY: SignedDuration = SignedDuration::from_secs(60);
const PRUNE_EVERY: SignedDuration = SignedDuration::from_secs(3600);

/// Power channels: the column prefix and the value (kW, stored as W).
type Get = fn(&Values) -> Option<Decimal>;
const POWER: [(&str, Get); 8] = [
    ("p_imp", |v| v.power_import_kw),
    ("p_exp", |v| v.power_export_kw),
    ("p_imp_l1", |v| v.power_import_l1_kw),
    ("p_imp_l2", |v| v.power_import_l2_kw),
    ("p_imp_l3", |v| v.power_import_l3_kw),
    ("p_exp_l1", |v| v.power_export_l1_kw),
    ("p_exp_l2", |v| v.power_export_l2_kw),
    ("p_exp_l3", |v| v.power_export_l3_kw),
];
const VOLTAGE: [(&str, Get); 3] =
    [("v_l1", |v| v.voltage_l1_v), ("v_l2", |v| v.voltage_l2_v), ("v_l3", |v| v.voltage_l3_v)];
/// Registers, in thousandths (Wh, litres): the minute columns and the rollup columns of the same name.
pub const REGISTERS: [&str; 6] = ["import_t1_wh", "import_t2_wh", "export_t1_wh", "export_t2_wh", "gas_l", "water_l"];

/// Where the history goes (`reader.database`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// No database.
    Off,
    /// A `SQLite` file.
    Sqlite(PathBuf),
    /// A `PostgreSQL` server: its URL.
    Postgres(String),
}

impl Target {
    /// The target of a validated configuration.
    #[must_use]
    pub fn of(config: &ReaderConfig) -> Target {
        let db = config.database.trim();
        if db == "off" {
            Target::Off
        } else if let Some(path) = db.strip_prefix("sqlite:") {
            if path.is_empty() {
                Target::Sqlite(config.dir.join(DEFAULT_FILE))
            } else {
                Target::Sqlite(PathBuf::from(path))
            }
        } else {
            Target::Postgres(db.to_owned())
        }
    }
}

/// Why the history database cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// `SQLite` refused (not a database, locked, disk full, ...).
    #[error("reader.database: sqlite:{path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// `SQLite`'s error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer p1-reader.
    #[error(
        "reader.database: {place}: schema version {found} is newer than this p1-reader knows ({known}); \
         run a newer p1-reader, or point reader.database at another database"
    )]
    Newer {
        /// The file (`sqlite:PATH`) or the server (its URL without the password).
        place: String,
        /// Its version.
        found: i64,
        /// This build's.
        known: i64,
    },
    /// `PostgreSQL` refused or is unreachable.
    #[error("reader.database: {url}: {}", pg_text(.source))]
    Postgres {
        /// The URL, without a password.
        url: String,
        /// The client's error.
        #[source]
        source: postgres::Error,
    },
    /// `reader.database_password_file` could not be read.
    #[error("reader.database_password_file: {path}: {source}")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `report` and `import` on a `PostgreSQL` database (they read `SQLite` only, so far).
    #[error(
        "reader.database: p1-reader report and import read a SQLite database only (so far); run them with \
         --database sqlite:PATH"
    )]
    PostgresUnsupported,
    /// `reader.database: off`.
    #[error("reader.database is off: there is no history database")]
    Off,
}

fn milli(d: Decimal) -> Option<i64> {
    let s = d.scale();
    if s <= 3 {
        d.mantissa().checked_mul(10_i64.pow(u32::from(3 - s)))
    } else {
        Some(d.mantissa() / 10_i64.pow(u32::from(s - 3)))
    }
}

fn stamp(t: Option<&MeterTime>) -> Option<i64> {
    t.and_then(|m| m.offset.to_timestamp(m.local).ok()).map(Timestamp::as_second)
}

/// Minimum, sum and maximum of one channel over a minute.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Agg {
    n: i64,
    sum: i64,
    min: i64,
    max: i64,
}

impl Agg {
    fn add(&mut self, x: i64) {
        if self.n == 0 {
            (self.min, self.max) = (x, x);
        }
        self.n += 1;
        self.sum += x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    fn avg(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum as f64 / self.n as f64)
    }
}

/// One meter's minute, as written to the `minute` table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MinuteRow {
    /// The listener's name.
    pub meter: String,
    /// Start of the minute, Unix seconds.
    pub t: i64,
    /// Telegrams in it.
    pub telegrams: i64,
    /// Sequence numbers missing within it.
    pub seq_gaps: i64,
    power: [Agg; 8],
    voltage: [Agg; 3],
    /// Register values at the end of the minute (see [`REGISTERS`]).
    pub registers: [Option<i64>; 6],
    gas_at: Option<i64>,
    water_at: Option<i64>,
    tariff: Option<i64>,
}

impl MinuteRow {
    /// The average of power channel `i` (import, export, then per phase), W.
    #[must_use]
    pub fn power_avg(&self, i: usize) -> Option<f64> {
        self.power.get(i).and_then(Agg::avg)
    }

    fn cost(&self) -> usize {
        std::mem::size_of::<MinuteRow>() + self.meter.len()
    }

    fn add(&mut self, v: &Values) {
        self.telegrams += 1;
        for (agg, (_, get)) in self.power.iter_mut().zip(POWER) {
            if let Some(x) = get(v).and_then(milli) {
                agg.add(x);
            }
        }
        for (agg, (_, get)) in self.voltage.iter_mut().zip(VOLTAGE) {
            if let Some(x) = get(v).and_then(milli) {
                agg.add(x);
            }
        }
        // A meter with one import register only: it counts as tariff 1.
        let t1 = v.energy_import_t1_kwh.or(if v.energy_import_t2_kwh.is_none() { v.energy_import_kwh } else { None });
        let e1 = v.energy_export_t1_kwh.or(if v.energy_export_t2_kwh.is_none() { v.energy_export_kwh } else { None });
        let regs = [t1, v.energy_import_t2_kwh, e1, v.energy_export_t2_kwh, v.gas_m3, v.water_m3];
        for (slot, r) in self.registers.iter_mut().zip(regs) {
            if let Some(x) = r.and_then(milli) {
                *slot = Some(x);
            }
        }
        if v.gas_m3.is_some() {
            self.gas_at = stamp(v.gas_at.as_ref()).or(self.gas_at);
        }
        if v.water_m3.is_some() {
            self.water_at = stamp(v.water_at.as_ref()).or(self.water_at);
        }
        if let Some(t) = v.tariff {
            self.tariff = Some(i64::from(t));
        }
    }
}

#[derive(Debug)]
struct Open {
    row: MinuteRow,
    heard: Timestamp,
}

/// Turns telegrams into minute rows, per meter.
#[derive(Debug, Default)]
pub struct Minutes {
    open: HashMap<String, Open>,
    last_seq: HashMap<String, (String, u64)>,
}

impl Minutes {
    /// Counts a telegram filed at `t` (heard at `now`); a minute it ends goes to `out`.
    pub fn add(&mut self, msg: &TelegramMessage, t: Timestamp, now: Timestamp, out: &mut Vec<MinuteRow>) {
        let meter = &msg.origin.listener;
        let minute = t.as_second().div_euclid(60) * 60;
        let gap = match self.last_seq.get(meter) {
            Some((boot, last)) if *boot == msg.origin.boot_id && msg.seq > last + 1 => msg.seq - last - 1,
            _ => 0,
        };
        self.last_seq.insert(meter.clone(), (msg.origin.boot_id.clone(), msg.seq));
        let open = self.open.entry(meter.clone()).or_insert_with(|| Open {
            row: MinuteRow { meter: meter.clone(), t: minute, ..MinuteRow::default() },
            heard: now,
        });
        if open.row.t != minute {
            let fresh = MinuteRow { meter: meter.clone(), t: minute, ..MinuteRow::default() };
            out.push(std::mem::replace(&mut open.row, fresh));
        }
        open.heard = now;
        open.row.seq_gaps += i64::try_from(gap).unwrap_or(i64::MAX);
        open.row.add(&msg.values);
    }

    /// Ends the minutes of meters silent for a while.
    pub fn close_quiet(&mut self, now: Timestamp, out: &mut Vec<MinuteRow>) {
        let quiet: Vec<String> =
            self.open.iter().filter(|(_, o)| now >= o.heard + QUIET).map(|(k, _)| k.clone()).collect();
        for k in quiet {
            if let Some(o) = self.open.remove(&k) {
                out.push(o.row);
            }
        }
    }

    /// Ends every open minute (at shutdown; a restart within the same minute adds to the row).
    pub fn close_all(&mut self, out: &mut Vec<MinuteRow>) {
        out.extend(self.open.drain().map(|(_, o)| o.row));
    }
}

/// Minute rows waiting for the database, bounded in bytes: when full, the oldest are dropped and counted.
#[derive(Debug)]
pub struct RowQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
    limit: usize,
    stats: Arc<Stats>,
}

#[derive(Debug, Default)]
struct QueueState {
    rows: VecDeque<MinuteRow>,
    bytes: usize,
    closed: bool,
}

impl RowQueue {
    /// An empty queue of at most `limit` bytes.
    #[must_use]
    pub fn new(limit: usize, stats: Arc<Stats>) -> RowQueue {
        RowQueue { state: Mutex::default(), ready: Condvar::new(), limit, stats }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues rows, dropping the oldest beyond the bound.
    pub fn push(&self, rows: impl IntoIterator<Item = MinuteRow>) {
        let mut s = self.lock();
        let mut dropped = 0;
        for row in rows {
            s.bytes += row.cost();
            s.rows.push_back(row);
            while s.bytes > self.limit {
                let Some(old) = s.rows.pop_front() else { break };
                s.bytes -= old.cost();
                dropped += 1;
            }
        }
        drop(s);
        stats::add(&self.stats.history_dropped, dropped);
        self.ready.notify_one();
    }

    /// Takes up to `most` rows, waiting up to `timeout` for the first.
    fn take(&self, most: usize, timeout: std::time::Duration) -> Vec<MinuteRow> {
        let mut s = self.lock();
        if s.rows.is_empty() && !s.closed {
            s = self.ready.wait_timeout(s, timeout).unwrap_or_else(PoisonError::into_inner).0;
        }
        let n = most.min(s.rows.len());
        let rows: Vec<MinuteRow> = s.rows.drain(..n).collect();
        s.bytes -= rows.iter().map(MinuteRow::cost).sum::<usize>();
        rows
    }

    fn sleep(&self, timeout: std::time::Duration) {
        let s = self.lock();
        if !s.closed {
            let _ = self.ready.wait_timeout(s, timeout).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// No more rows will come: the database thread writes what is queued and ends.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Rows waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().rows.len()
    }

    /// Whether none wait.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the writing thread holds: the aggregator and the queue to the database thread.
#[derive(Debug)]
pub struct Feed {
    minutes: Minutes,
    queue: Arc<RowQueue>,
    out: Vec<MinuteRow>,
}

impl Feed {
    /// A feed into `queue`.
    #[must_use]
    pub fn new(queue: Arc<RowQueue>) -> Feed {
        Feed { minutes: Minutes::default(), queue, out: Vec::new() }
    }

    /// A telegram written to the files, filed at `filed`. Its minute is that of its own stamp (`received_at`),
    /// unless the stamp cannot be right (before 1970, or over a day ahead of the reader); the filing time may be
    /// later than the stamp (the files never go back in time after a restart), the minute rows need not.
    pub fn telegram(&mut self, msg: &TelegramMessage, filed: Timestamp, now: Timestamp) {
        let stamp = msg.received_at;
        let t = if Timestamp::UNIX_EPOCH <= stamp && stamp <= now + crate::store::MAX_AHEAD { stamp } else { filed };
        self.minutes.add(msg, t, now, &mut self.out);
        self.flush();
    }

    /// Time-driven work: minutes of silent meters end.
    pub fn tick(&mut self, now: Timestamp) {
        self.minutes.close_quiet(now, &mut self.out);
        self.flush();
    }

    /// Shutdown: every open minute is queued and the queue closed.
    pub fn finish(&mut self) {
        self.minutes.close_all(&mut self.out);
        self.flush();
        self.queue.close();
    }

    fn flush(&mut self) {
        if !self.out.is_empty() {
            self.queue.push(self.out.drain(..));
        }
    }
}

impl Drop for Feed {
    /// However the writing thread ends, the database thread is told to finish.
    fn drop(&mut self) {
        self.queue.close();
    }
}

/// How rows are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Live: a row for a minute already there adds to it (a restart within a minute).
    Merge,
    /// Backfill: a minute already there is kept as it is.
    KeepExisting,
}

/// An open `SQLite` history database.
#[derive(Debug)]
pub struct Db {
    conn: Connection,
    path: PathBuf,
    tz: TimeZone,
    meters: HashMap<String, i64>,
}

fn minute_columns() -> Vec<String> {
    let mut cols = vec!["meter_id".to_owned(), "t".into(), "telegrams".into(), "seq_gaps".into()];
    for (p, _) in POWER {
        cols.extend([format!("{p}_min_w"), format!("{p}_avg_w"), format!("{p}_max_w")]);
    }
    for (v, _) in VOLTAGE {
        cols.extend([format!("{v}_min_mv"), format!("{v}_max_mv")]);
    }
    cols.extend(REGISTERS.iter().map(|&r| r.to_owned()));
    cols.extend(["gas_at".into(), "water_at".into(), "tariff".into()]);
    cols
}

/// The migrations, in order: entry `i` takes the schema from version `i` to `i + 1`.
fn migrations() -> Vec<String> {
    migrations_for(false)
}

/// The migrations in `SQLite`'s or (`pg`) `PostgreSQL`'s words.
fn migrations_for(pg: bool) -> Vec<String> {
    let sql = migrations_sqlite();
    if !pg {
        return sql;
    }
    sql.iter()
        .map(|m| {
            m.replace("id INTEGER PRIMARY KEY", "id BIGSERIAL PRIMARY KEY")
                .replace(" INTEGER", " BIGINT")
                .replace(" REAL", " DOUBLE PRECISION")
                .replace(" WITHOUT ROWID", "")
        })
        .collect()
}

fn migrations_sqlite() -> Vec<String> {
    let mut minute = String::from("CREATE TABLE minute (\n  meter_id INTEGER NOT NULL REFERENCES meter(id),\n  t INTEGER NOT NULL,\n  telegrams INTEGER NOT NULL,\n  seq_gaps INTEGER NOT NULL");
    for c in minute_columns().iter().skip(4) {
        let ty = if c.ends_with("_avg_w") { "REAL" } else { "INTEGER" };
        let _ = write!(minute, ",\n  {c} {ty}");
    }
    minute.push_str(",\n  PRIMARY KEY (meter_id, t)\n) WITHOUT ROWID;\n");
    let deltas = REGISTERS.iter().fold(String::new(), |mut s, r| {
        let _ = write!(s, ",\n  {r} INTEGER");
        s
    });
    let v1 = format!(
        "CREATE TABLE meter (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);\n{minute}\
         CREATE TABLE hour (\n  meter_id INTEGER NOT NULL REFERENCES meter(id),\n  t INTEGER NOT NULL{deltas},\n  \
         PRIMARY KEY (meter_id, t)\n) WITHOUT ROWID;\n\
         CREATE TABLE day (\n  meter_id INTEGER NOT NULL REFERENCES meter(id),\n  day TEXT NOT NULL,\n  \
         t_start INTEGER NOT NULL,\n  t_end INTEGER NOT NULL{deltas},\n  PRIMARY KEY (meter_id, day)\n) WITHOUT ROWID;\n"
    );
    vec![v1]
}

impl Db {
    /// Opens (creating and migrating) the `SQLite` file at `path`; days are those of `tz`.
    pub fn open(path: &Path, tz: TimeZone) -> Result<Db, HistoryError> {
        let err = |source| HistoryError::Sqlite { path: path.to_owned(), source };
        let mut conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(err)?;
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL; CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);",
        )
        .map_err(err)?;
        let found: i64 =
            conn.query_row("SELECT coalesce(max(version), 0) FROM schema_version", [], |r| r.get(0)).map_err(err)?;
        if found > SCHEMA_VERSION {
            let place = format!("sqlite:{}", path.display());
            return Err(HistoryError::Newer { place, found, known: SCHEMA_VERSION });
        }
        for (i, sql) in migrations().iter().enumerate().skip(usize::try_from(found).unwrap_or(0)) {
            let tx = conn.transaction().map_err(err)?;
            tx.execute_batch(sql).map_err(err)?;
            tx.execute("DELETE FROM schema_version", []).map_err(err)?;
            tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [i as i64 + 1]).map_err(err)?;
            tx.commit().map_err(err)?;
            info!(path = %path.display(), version = i + 1, "history database schema migrated");
        }
        Ok(Db { conn, path: path.to_owned(), tz, meters: HashMap::new() })
    }

    /// The connection (for reports and tests).
    #[must_use]
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The time zone of its days.
    #[must_use]
    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }

    fn err(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError::Sqlite { path: self.path.clone(), source }
    }

    /// Writes `rows` and the hourly and daily rollups they touch in one transaction.
    pub fn write(&mut self, rows: &[MinuteRow], mode: Mode) -> Result<(), HistoryError> {
        let tz = self.tz.clone();
        let mut tx =
            self.conn.transaction().map_err(|e| HistoryError::Sqlite { path: self.path.clone(), source: e })?;
        let result = write_in(&mut tx, &mut self.meters, rows, mode, &tz).and_then(|()| tx.commit());
        result.map_err(|e| {
            // The meter ids of a rolled-back transaction may not exist.
            self.meters.clear();
            self.err(e)
        })
    }

    /// Deletes rows older than the retention (`[minute, hour, day]` in days) allows.
    pub fn prune(&mut self, now: Timestamp, retention: [Option<u32>; 3]) -> Result<usize, HistoryError> {
        let mut n = 0;
        for (table, col, days) in
            [("minute", "t", retention[0]), ("hour", "t", retention[1]), ("day", "t_start", retention[2])]
        {
            if let Some(d) = days {
                let before = now.as_second() - i64::from(d) * 86_400;
                n += self
                    .conn
                    .execute(&format!("DELETE FROM {table} WHERE {col} < ?1"), [before])
                    .map_err(|e| self.err(e))?;
            }
        }
        Ok(n)
    }
}

/// A value bound to a statement, typed (a `NULL` needs its type in `PostgreSQL`).
#[derive(Clone, Debug)]
enum Val {
    I(Option<i64>),
    F(Option<f64>),
    T(String),
}

/// What the rows and rollups are written through: a `SQLite` or a `PostgreSQL` transaction. Statements are
/// written with `?N` placeholders.
trait Exec {
    type Error;
    /// `PostgreSQL` (`LEAST`/`GREATEST`, `$N`) rather than `SQLite`.
    const PG: bool;
    fn one(&mut self, sql: &str, p: &[Val]) -> Result<Option<i64>, Self::Error>;
    fn run(&mut self, sql: &str, p: &[Val]) -> Result<u64, Self::Error>;
}

fn sqlite_value(v: &Val) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match v {
        Val::I(x) => x.map_or(Value::Null, Value::from),
        Val::F(x) => x.map_or(Value::Null, Value::from),
        Val::T(s) => Value::Text(s.clone()),
    }
}

impl Exec for Transaction<'_> {
    type Error = rusqlite::Error;
    const PG: bool = false;

    fn one(&mut self, sql: &str, p: &[Val]) -> rusqlite::Result<Option<i64>> {
        self.prepare_cached(sql)?
            .query_row(rusqlite::params_from_iter(p.iter().map(sqlite_value)), |r| r.get::<_, Option<i64>>(0))
            .optional()
            .map(Option::flatten)
    }

    fn run(&mut self, sql: &str, p: &[Val]) -> rusqlite::Result<u64> {
        Ok(self.prepare_cached(sql)?.execute(rusqlite::params_from_iter(p.iter().map(sqlite_value)))? as u64)
    }
}

fn write_in<E: Exec>(
    tx: &mut E,
    meters: &mut HashMap<String, i64>,
    rows: &[MinuteRow],
    mode: Mode,
    tz: &TimeZone,
) -> Result<(), E::Error> {
    let (least, greatest) = if E::PG { ("LEAST", "GREATEST") } else { ("min", "max") };
    let cols = minute_columns();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let conflict = match mode {
        Mode::KeepExisting => "DO NOTHING".to_owned(),
        Mode::Merge => {
            let mut set = vec![
                "telegrams = minute.telegrams + excluded.telegrams".to_owned(),
                "seq_gaps = minute.seq_gaps + excluded.seq_gaps".into(),
            ];
            for (p, _) in POWER {
                for (c, f) in [(format!("{p}_min_w"), least), (format!("{p}_max_w"), greatest)] {
                    set.push(format!("{c} = coalesce({f}(minute.{c}, excluded.{c}), minute.{c}, excluded.{c})"));
                }
                set.push(format!(
                    "{p}_avg_w = coalesce((minute.{p}_avg_w * minute.telegrams + excluded.{p}_avg_w * \
                     excluded.telegrams) / (minute.telegrams + excluded.telegrams), minute.{p}_avg_w, excluded.{p}_avg_w)"
                ));
            }
            for (v, _) in VOLTAGE {
                for (c, f) in [(format!("{v}_min_mv"), least), (format!("{v}_max_mv"), greatest)] {
                    set.push(format!("{c} = coalesce({f}(minute.{c}, excluded.{c}), minute.{c}, excluded.{c})"));
                }
            }
            for c in REGISTERS.iter().chain(&["gas_at", "water_at", "tariff"]) {
                set.push(format!("{c} = coalesce(excluded.{c}, minute.{c})"));
            }
            format!("DO UPDATE SET {}", set.join(", "))
        }
    };
    let sql = format!(
        "INSERT INTO minute ({}) VALUES ({}) ON CONFLICT (meter_id, t) {conflict}",
        cols.join(", "),
        marks.join(", ")
    );
    let mut hours = BTreeSet::new();
    let mut days = BTreeSet::new();
    for row in rows {
        let id = meter_id(tx, meters, &row.meter)?;
        let mut values =
            vec![Val::I(Some(id)), Val::I(Some(row.t)), Val::I(Some(row.telegrams)), Val::I(Some(row.seq_gaps))];
        for a in &row.power {
            values.push(Val::I((a.n > 0).then_some(a.min)));
            values.push(Val::F(a.avg()));
            values.push(Val::I((a.n > 0).then_some(a.max)));
        }
        for a in &row.voltage {
            values.push(Val::I((a.n > 0).then_some(a.min)));
            values.push(Val::I((a.n > 0).then_some(a.max)));
        }
        values.extend(row.registers.map(Val::I));
        values.extend([Val::I(row.gas_at), Val::I(row.water_at), Val::I(row.tariff)]);
        tx.run(&sql, &values)?;
        let at = Timestamp::from_second(row.t).unwrap_or(Timestamp::UNIX_EPOCH);
        hours.insert((id, Period::containing(Span::HOUR, at, tz).start));
        days.insert((id, Period::containing(Span::Day, at, tz).start));
    }
    for (span, set) in [(Span::HOUR, hours), (Span::Day, days)] {
        let mut done = BTreeSet::new();
        for (id, start) in set {
            let p = Period::containing(span, start, tz);
            // The next period's first difference starts from this one's last reading.
            for p in [p, p.next(tz)] {
                if done.insert((id, p.start)) {
                    rollup(tx, id, &p, tz)?;
                }
            }
        }
    }
    Ok(())
}

fn meter_id<E: Exec>(tx: &mut E, meters: &mut HashMap<String, i64>, name: &str) -> Result<i64, E::Error> {
    if let Some(&id) = meters.get(name) {
        return Ok(id);
    }
    let n = [Val::T(name.to_owned())];
    tx.run("INSERT INTO meter (name) VALUES (?1) ON CONFLICT (name) DO NOTHING", &n)?;
    // Inserted just now or before: it is there.
    let id = tx.one("SELECT id FROM meter WHERE name = ?1", &n)?.unwrap_or_default();
    meters.insert(name.to_owned(), id);
    Ok(id)
}

/// Recomputes one hourly or daily row from register differences: the last reading in the period minus the last
/// before it (or, for a meter's first period, the first in it).
fn rollup<E: Exec>(tx: &mut E, id: i64, p: &Period, tz: &TimeZone) -> Result<(), E::Error> {
    let (s, end) = (p.start.as_second(), p.end.as_second());
    let mut deltas = [None; 6];
    let (within, before) =
        ([Val::I(Some(id)), Val::I(Some(s)), Val::I(Some(end))], [Val::I(Some(id)), Val::I(Some(s))]);
    for (d, c) in deltas.iter_mut().zip(REGISTERS) {
        let query = |cond: &str, order: &str| {
            format!(
                "SELECT {c} FROM minute WHERE meter_id = ?1 AND {cond} AND {c} IS NOT NULL ORDER BY t {order} LIMIT 1"
            )
        };
        let Some(last) = tx.one(&query("t >= ?2 AND t < ?3", "DESC"), &within)? else { continue };
        let base = match tx.one(&query("t < ?2", "DESC"), &before)? {
            Some(b) => b,
            None => tx.one(&query("t >= ?2 AND t < ?3", "ASC"), &within)?.unwrap_or(last),
        };
        // A register that went down (a replaced meter) gives no difference.
        *d = (last >= base).then_some(last - base);
    }
    if deltas.iter().all(Option::is_none) {
        return Ok(());
    }
    let names = REGISTERS.join(", ");
    let sets: Vec<String> = REGISTERS.iter().map(|r| format!("{r} = excluded.{r}")).collect();
    let vals = deltas.map(Val::I);
    if p.span == Span::Day {
        let day = p.start.to_zoned(tz.clone()).date().to_string();
        let mut v = vec![Val::I(Some(id)), Val::T(day), Val::I(Some(s)), Val::I(Some(end))];
        v.extend(vals);
        let sql = format!(
            "INSERT INTO day (meter_id, day, t_start, t_end, {names}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT (meter_id, day) DO UPDATE SET {}",
            sets.join(", ")
        );
        tx.run(&sql, &v)?;
    } else {
        let mut v = vec![Val::I(Some(id)), Val::I(Some(s))];
        v.extend(vals);
        let sql = format!(
            "INSERT INTO hour (meter_id, t, {names}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (meter_id, t) DO UPDATE SET {}",
            sets.join(", ")
        );
        tx.run(&sql, &v)?;
    }
    Ok(())
}

/// A history database the [`Sink`] writes to: `SQLite` ([`Db`]) or `PostgreSQL` ([`PgDb`]).
pub trait HistoryDb: Send {
    /// Writes `rows` and the hourly and daily rollups they touch in one transaction.
    fn write(&mut self, rows: &[MinuteRow], mode: Mode) -> Result<(), HistoryError>;
    /// Deletes rows older than the retention (`[minute, hour, day]` in days) allows.
    fn prune(&mut self, now: Timestamp, retention: [Option<u32>; 3]) -> Result<usize, HistoryError>;
}

impl HistoryDb for Db {
    fn write(&mut self, rows: &[MinuteRow], mode: Mode) -> Result<(), HistoryError> {
        Db::write(self, rows, mode)
    }

    fn prune(&mut self, now: Timestamp, retention: [Option<u32>; 3]) -> Result<usize, HistoryError> {
        Db::prune(self, now, retention)
    }
}

/// No database (`reader.database: off` with `reader.rrd` on): rows go to the `RRDs` only.
#[derive(Debug)]
pub struct NoDb;

impl HistoryDb for NoDb {
    fn write(&mut self, _: &[MinuteRow], _: Mode) -> Result<(), HistoryError> {
        Ok(())
    }

    fn prune(&mut self, _: Timestamp, _: [Option<u32>; 3]) -> Result<usize, HistoryError> {
        Ok(0)
    }
}

/// Opens (or reopens, after an error) the database.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn HistoryDb>, HistoryError> + Send>;

/// The database thread: takes batches off the queue, writes them, retries with backoff, prunes hourly.
pub struct Sink {
    shown: String,
    open: Opener,
    retention: [Option<u32>; 3],
    db: Option<Box<dyn HistoryDb>>,
    queue: Arc<RowQueue>,
    stats: Arc<Stats>,
    batch: Vec<MinuteRow>,
    backoff: Backoff,
    failing_since: Option<Timestamp>,
    reminded: Option<Timestamp>,
    pruned: Option<Timestamp>,
    rrd: Option<crate::rrd::Rrd>,
    rrd_warned: Option<Timestamp>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").field("db", &self.shown).field("pending", &self.batch.len()).finish_non_exhaustive()
    }
}

impl Sink {
    /// A sink writing `queue` into the `SQLite` file at `path`.
    #[must_use]
    pub fn new(
        path: PathBuf,
        tz: TimeZone,
        retention: [Option<u32>; 3],
        queue: Arc<RowQueue>,
        stats: Arc<Stats>,
    ) -> Sink {
        let shown = format!("sqlite:{}", path.display());
        let open: Opener = Box::new(move || {
            // A fresh data directory may not be there yet (the files create it too).
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(parent);
            }
            Ok(Box::new(Db::open(&path, tz.clone())?) as Box<dyn HistoryDb>)
        });
        Sink::with_opener(shown, open, retention, queue, stats)
    }

    /// A sink writing `queue` into the `PostgreSQL` database at `url` (the password, if any, apart).
    #[must_use]
    pub fn postgres(
        url: String,
        password: Option<String>,
        tz: TimeZone,
        retention: [Option<u32>; 3],
        queue: Arc<RowQueue>,
        stats: Arc<Stats>,
    ) -> Sink {
        let shown = redact(&url);
        let open: Opener =
            Box::new(move || Ok(Box::new(PgDb::open(&url, password.as_deref(), tz.clone())?) as Box<dyn HistoryDb>));
        Sink::with_opener(shown, open, retention, queue, stats)
    }

    /// A sink over any database; `shown` names it in logs.
    #[must_use]
    pub fn with_opener(
        shown: String,
        open: Opener,
        retention: [Option<u32>; 3],
        queue: Arc<RowQueue>,
        stats: Arc<Stats>,
    ) -> Sink {
        Sink {
            shown,
            open,
            retention,
            db: None,
            queue,
            stats,
            batch: Vec::new(),
            backoff: Backoff::default(),
            failing_since: None,
            reminded: None,
            pruned: None,
            rrd: None,
            rrd_warned: None,
        }
    }

    /// Also updates the `RRDs` with every batch taken off the queue (whatever becomes of the database write).
    #[must_use]
    pub fn with_rrd(mut self, rrd: crate::rrd::Rrd) -> Sink {
        self.rrd = Some(rrd);
        self
    }

    /// The queue it takes rows from.
    #[must_use]
    pub fn queue(&self) -> Arc<RowQueue> {
        self.queue.clone()
    }

    /// When the next attempt is due while backing off.
    #[must_use]
    pub fn retry_at(&self) -> Option<Timestamp> {
        self.backoff.retry_at()
    }

    /// Rows taken off the queue and not yet written.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.batch.len()
    }

    /// One attempt: opens the database if needed and writes the current batch (taking the next off the queue, up
    /// to `wait` for it). Returns `true` when a batch was written.
    pub fn step(&mut self, now: Timestamp, wait: std::time::Duration) -> bool {
        if !self.backoff.due(now) {
            return false;
        }
        if self.batch.is_empty() {
            self.batch = self.queue.take(BATCH_ROWS, wait);
            if let (Some(rrd), false) = (&mut self.rrd, self.batch.is_empty()) {
                if let Err(e) = rrd.update(&self.batch) {
                    stats::bump(&self.stats.history_errors);
                    if self.rrd_warned.is_none_or(|w| now >= w + REMIND_EVERY) {
                        warn!(cause = %e, "cannot update the RRDs; the files and the database are written as usual");
                        self.rrd_warned = Some(now);
                    }
                }
            }
        }
        let result = self.attempt(now);
        match result {
            Ok(written) => {
                if let Some(since) = self.failing_since.take() {
                    info!(db = %self.shown, after_s = now.duration_since(since).as_secs(), "history database writable again");
                }
                self.backoff.succeeded();
                written
            }
            Err(e) => {
                stats::bump(&self.stats.history_errors);
                self.db = None;
                let delay = self.backoff.failed(now);
                if self.failing_since.is_none() {
                    self.failing_since = Some(now);
                    self.reminded = Some(now);
                    error!(cause = %e, retry_in_s = delay.as_secs(), waiting = self.batch.len() + self.queue.len(), "history database failing; the files are written as usual, rows are kept in memory (bounded) and retried");
                } else if self.reminded.is_none_or(|r| now >= r + REMIND_EVERY) {
                    self.reminded = Some(now);
                    warn!(cause = %e, waiting = self.batch.len() + self.queue.len(), "history database still failing");
                }
                false
            }
        }
    }

    fn attempt(&mut self, now: Timestamp) -> Result<bool, HistoryError> {
        if self.db.is_none() {
            self.db = Some((self.open)()?);
        }
        let Some(db) = self.db.as_mut() else { return Ok(false) };
        let mut written = false;
        if !self.batch.is_empty() {
            db.write(&self.batch, Mode::Merge)?;
            stats::add(&self.stats.history_rows, self.batch.len() as u64);
            self.batch.clear();
            written = true;
        }
        if self.pruned.is_none_or(|p| now >= p + PRUNE_EVERY) {
            db.prune(now, self.retention)?;
            self.pruned = Some(now);
        }
        Ok(written)
    }
}

/// Runs a [`Sink`] on its own thread until its queue is closed and drained (one last attempt at the end).
pub fn spawn(mut sink: Sink, clock: Arc<dyn Clock>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("p1-reader-history".into()).spawn(move || {
        let queue = sink.queue.clone();
        loop {
            let now = clock.now();
            if let Some(r) = sink.retry_at().filter(|r| now < *r) {
                if queue.is_closed() {
                    break;
                }
                let wait = r.duration_since(now).clamp(SignedDuration::from_millis(1), SignedDuration::from_secs(1));
                queue.sleep(std::time::Duration::try_from(wait).unwrap_or(std::time::Duration::from_secs(1)));
                continue;
            }
            let closed = queue.is_closed();
            sink.step(now, std::time::Duration::from_millis(500));
            if closed && queue.is_empty() && sink.pending() == 0 {
                break;
            }
        }
        // A last attempt at what is left.
        sink.backoff.clear();
        while sink.step(clock.now(), std::time::Duration::ZERO) {}
        let left = sink.pending() + queue.len();
        if left > 0 {
            error!(rows = left, "stopping with minute rows the history database did not take");
        }
    })
}

/// A `PostgreSQL` error with the server's own words (its `Display` alone says only "db error").
fn pg_text(e: &postgres::Error) -> String {
    if let Some(d) = e.as_db_error() {
        return format!("{} {}: {}", d.severity(), d.code().code(), d.message());
    }
    let mut text = e.to_string();
    if let Some(cause) = std::error::Error::source(e) {
        let _ = write!(text, ": {cause}");
    }
    text
}

/// A URL as it may be logged: without its password.
#[must_use]
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "<postgres URL>".into() };
    match rest.split_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(u, _)| u);
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

/// The password for `PostgreSQL`: the environment's `P1_DATABASE_PASSWORD`, else the first line of
/// `reader.database_password_file`, else none (a password in the URL, or none needed).
pub fn password(file: Option<&Path>) -> Result<Option<String>, HistoryError> {
    if let Ok(p) = std::env::var("P1_DATABASE_PASSWORD") {
        return Ok(Some(p));
    }
    let Some(path) = file else { return Ok(None) };
    let text =
        std::fs::read_to_string(path).map_err(|source| HistoryError::PasswordFile { path: path.to_owned(), source })?;
    Ok(Some(text.lines().next().unwrap_or_default().to_owned()))
}

fn pg_params(p: &[Val]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    p.iter()
        .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
            match v {
                Val::I(x) => Box::new(*x),
                Val::F(x) => Box::new(*x),
                Val::T(s) => Box::new(s.clone()),
            }
        })
        .collect()
}

/// A `PostgreSQL` transaction with the connection's prepared statements (they outlive transactions).
struct PgTx<'a, 'c> {
    tx: &'a mut postgres::Transaction<'c>,
    cache: &'a mut HashMap<String, postgres::Statement>,
}

impl PgTx<'_, '_> {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, postgres::Error> {
        if let Some(st) = self.cache.get(sql) {
            return Ok(st.clone());
        }
        let st = self.tx.prepare(&sql.replace('?', "$"))?;
        self.cache.insert(sql.to_owned(), st.clone());
        Ok(st)
    }
}

impl Exec for PgTx<'_, '_> {
    type Error = postgres::Error;
    const PG: bool = true;

    fn one(&mut self, sql: &str, p: &[Val]) -> Result<Option<i64>, postgres::Error> {
        let st = self.statement(sql)?;
        let boxed = pg_params(p);
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = boxed.iter().map(AsRef::as_ref).collect();
        match self.tx.query_opt(&st, &refs)? {
            Some(row) => row.try_get::<_, Option<i64>>(0),
            None => Ok(None),
        }
    }

    fn run(&mut self, sql: &str, p: &[Val]) -> Result<u64, postgres::Error> {
        let st = self.statement(sql)?;
        let boxed = pg_params(p);
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = boxed.iter().map(AsRef::as_ref).collect();
        self.tx.execute(&st, &refs)
    }
}

/// An open `PostgreSQL` history database (the same tables; `BIGINT` and `DOUBLE PRECISION`).
pub struct PgDb {
    client: postgres::Client,
    shown: String,
    tz: TimeZone,
    meters: HashMap<String, i64>,
    statements: HashMap<String, postgres::Statement>,
}

impl PgDb {
    /// Connects (without TLS), creates and migrates the tables.
    pub fn open(url: &str, password: Option<&str>, tz: TimeZone) -> Result<PgDb, HistoryError> {
        let shown = redact(url);
        let err = |source| HistoryError::Postgres { url: shown.clone(), source };
        let mut cfg: postgres::Config = url.parse().map_err(err)?;
        if let Some(p) = password {
            cfg.password(p);
        }
        cfg.connect_timeout(std::time::Duration::from_secs(10));
        let mut client = cfg.connect(postgres::NoTls).map_err(err)?;
        client.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)").map_err(err)?;
        let found: i64 =
            client.query_one("SELECT coalesce(max(version), 0)::BIGINT FROM schema_version", &[]).map_err(err)?.get(0);
        if found > SCHEMA_VERSION {
            return Err(HistoryError::Newer { place: shown, found, known: SCHEMA_VERSION });
        }
        for (i, sql) in migrations_for(true).iter().enumerate().skip(usize::try_from(found).unwrap_or(0)) {
            let mut tx = client.transaction().map_err(err)?;
            tx.batch_execute(sql).map_err(err)?;
            tx.execute("DELETE FROM schema_version", &[]).map_err(err)?;
            tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&(i as i64 + 1)]).map_err(err)?;
            tx.commit().map_err(err)?;
            info!(db = %shown, version = i + 1, "history database schema migrated");
        }
        Ok(PgDb { client, shown, tz, meters: HashMap::new(), statements: HashMap::new() })
    }

    /// The client (for tests and tools).
    pub fn client(&mut self) -> &mut postgres::Client {
        &mut self.client
    }
}

impl HistoryDb for PgDb {
    fn write(&mut self, rows: &[MinuteRow], mode: Mode) -> Result<(), HistoryError> {
        let tz = self.tz.clone();
        let shown = self.shown.clone();
        let meters = &mut self.meters;
        let cache = &mut self.statements;
        let result = self.client.transaction().and_then(|mut tx| {
            write_in(&mut PgTx { tx: &mut tx, cache }, meters, rows, mode, &tz)?;
            tx.commit()
        });
        result.map_err(|source| {
            meters.clear();
            HistoryError::Postgres { url: shown, source }
        })
    }

    fn prune(&mut self, now: Timestamp, retention: [Option<u32>; 3]) -> Result<usize, HistoryError> {
        let mut n = 0;
        for (table, col, days) in
            [("minute", "t", retention[0]), ("hour", "t", retention[1]), ("day", "t_start", retention[2])]
        {
            if let Some(d) = days {
                let before = now.as_second() - i64::from(d) * 86_400;
                n += self
                    .client
                    .execute(&format!("DELETE FROM {table} WHERE {col} < $1"), &[&before])
                    .map_err(|source| HistoryError::Postgres { url: self.shown.clone(), source })?;
            }
        }
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::testutil::{dec, telegram, tempdir};

    fn sqlite3(db: &Path, sql: &str) -> String {
        let out = Command::new("sqlite3").arg(db).arg(sql).output().expect("the sqlite3 command (scripts/setup)");
        assert!(out.status.success(), "sqlite3 {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    }

    fn amsterdam() -> TimeZone {
        TimeZone::get("Europe/Amsterdam").expect("tz")
    }

    /// A telegram with the given registers (Wh, Wh, litres of gas) and power.
    fn reading(seq: u64, at: Timestamp, t1: i64, t2: i64, gas: i64, watts: i64) -> TelegramMessage {
        let mut m = telegram("meterkast", "boot", seq, "2026-01-01T00:00:00Z");
        m.received_at = at;
        let v = &mut m.values;
        v.energy_import_t1_kwh = Some(Decimal::new(t1, 3));
        v.energy_import_t2_kwh = Some(Decimal::new(t2, 3));
        v.energy_export_t1_kwh = Some(dec("0.000"));
        v.energy_export_t2_kwh = Some(dec("0.000"));
        v.gas_m3 = Some(Decimal::new(gas, 3));
        v.power_import_kw = Some(Decimal::new(watts, 3));
        v.power_export_kw = Some(dec("0.000"));
        m
    }

    /// Replays telegrams every 10 s from `from` for `hours` through the feed and the sink (the clock is the
    /// telegrams' own), losing some minutes whole; returns the telegrams sent as (t, t1, t2, gas).
    fn replay(db: &Path, from: &str, hours: i64) -> Vec<(Timestamp, i64, i64, i64)> {
        let stats = Arc::new(Stats::default());
        let queue = Arc::new(RowQueue::new(QUEUE_BYTES, stats.clone()));
        let mut feed = Feed::new(queue.clone());
        let mut sink = Sink::new(db.to_owned(), amsterdam(), [None; 3], queue.clone(), stats.clone());
        let start: Timestamp = from.parse().expect("time");
        let (mut t1, mut t2, mut gas, mut x) = (1_164_722_i64, 1_520_100_i64, 1_621_615_i64, 7_u64);
        let mut sent = Vec::new();
        for i in 0..hours * 360 {
            let at = start + SignedDuration::from_secs(i * 10);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let watts = (x % 3000) as i64 + 100;
            let wh = watts * 10 / 3600 + i64::from(x % 2 == 0);
            let hour = at.to_zoned(amsterdam()).hour();
            if (7..23).contains(&hour) {
                t2 += wh;
            } else {
                t1 += wh;
            }
            if i % 360 == 0 {
                gas += (x % 900) as i64;
            }
            // Every 17th minute is lost whole, and the register keeps counting.
            if (i / 6) % 17 == 3 {
                continue;
            }
            feed.telegram(&reading(i as u64 + 1, at, t1, t2, gas, watts), at, at);
            sent.push((at, t1, t2, gas));
            if i % 500 == 0 {
                while !queue.is_empty() {
                    assert!(sink.step(at, std::time::Duration::ZERO), "batch written");
                }
            }
        }
        feed.finish();
        while sink.step(start, std::time::Duration::ZERO) {}
        assert_eq!(queue.len() + sink.pending(), 0);
        assert!(stats.snapshot().history_errors == 0);
        sent
    }

    /// The readings at the end of the first minute: the database's starting point (it keeps end-of-minute values).
    fn first_minute(sent: &[(Timestamp, i64, i64, i64)]) -> (i64, i64, i64) {
        let m = sent[0].0.as_second().div_euclid(60);
        let last = sent.iter().take_while(|r| r.0.as_second().div_euclid(60) == m).last().expect("one");
        (last.1, last.2, last.3)
    }

    /// Per local day: the last readings in it minus the last before it (for the first day, those at the end of
    /// the first minute).
    fn expected_days(sent: &[(Timestamp, i64, i64, i64)]) -> Vec<String> {
        type Regs = (i64, i64, i64);
        let mut days: Vec<(String, Regs, Regs)> = Vec::new();
        let mut prev = Some(first_minute(sent));
        for &(at, t1, t2, gas) in sent {
            let day = at.to_zoned(amsterdam()).date().to_string();
            match days.last_mut() {
                Some(d) if d.0 == day => d.2 = (t1, t2, gas),
                _ => {
                    if let Some(d) = days.last() {
                        prev = Some(d.2);
                    }
                    days.push((day, prev.unwrap_or((t1, t2, gas)), (t1, t2, gas)));
                }
            }
        }
        days.iter().map(|(d, b, e)| format!("{d}|{}|{}|{}", e.0 - b.0, e.1 - b.1, e.2 - b.2)).collect()
    }

    fn check_day_totals(from: &str, hours: i64, dst_day: &str, dst_hours: i64) {
        let dir = tempdir();
        let db = dir.path().join("h.sqlite");
        let sent = replay(&db, from, hours);
        let got = sqlite3(&db, "SELECT day, import_t1_wh, import_t2_wh, gas_l FROM day ORDER BY day");
        let want = expected_days(&sent);
        assert_eq!(got.lines().collect::<Vec<_>>(), want, "daily totals are the register differences");
        // The DST day is 23 or 25 hours long, and its hours add up to it.
        let len = sqlite3(&db, &format!("SELECT (t_end - t_start) / 3600 FROM day WHERE day = '{dst_day}'"));
        assert_eq!(len.trim(), dst_hours.to_string());
        let sums = sqlite3(
            &db,
            "SELECT d.day, d.import_t1_wh + d.import_t2_wh, (SELECT sum(h.import_t1_wh + h.import_t2_wh) FROM hour h \
             WHERE h.meter_id = d.meter_id AND h.t >= d.t_start AND h.t < d.t_end) FROM day d",
        );
        for line in sums.lines().skip(1) {
            let f: Vec<&str> = line.split('|').collect();
            assert_eq!(f[1], f[2], "the hours of a day add up to it: {line}");
        }
        let total = sqlite3(&db, "SELECT sum(import_t1_wh), sum(import_t2_wh) FROM day");
        let (first, last) = (first_minute(&sent), sent[sent.len() - 1]);
        assert_eq!(total.trim(), format!("{}|{}", last.1 - first.0, last.2 - first.1));
        let dups =
            sqlite3(&db, "SELECT count(*) FROM (SELECT meter_id, t FROM minute GROUP BY 1, 2 HAVING count(*) > 1)");
        assert_eq!(dups.trim(), "0");
        let rows = sqlite3(&db, "SELECT count(*) FROM minute");
        assert!(rows.trim().parse::<i64>().expect("count") < hours * 60, "some minutes were lost on purpose");
    }

    #[test]
    fn daily_totals_equal_register_differences_across_midnight_and_spring_dst() {
        // 2026-03-29 02:00 -> 03:00 in Amsterdam: a 23-hour day.
        check_day_totals("2026-03-28T20:00:00Z", 30, "2026-03-29", 23);
    }

    #[test]
    fn daily_totals_equal_register_differences_across_midnight_and_autumn_dst() {
        // 2026-10-25 03:00 -> 02:00 in Amsterdam: a 25-hour day.
        check_day_totals("2026-10-24T20:00:00Z", 30, "2026-10-25", 25);
    }

    #[test]
    fn a_minute_written_twice_merges_into_one_row() {
        let dir = tempdir();
        let path = dir.path().join("h.sqlite");
        let mut db = Db::open(&path, amsterdam()).expect("open");
        let at: Timestamp = "2026-05-01T10:00:05Z".parse().expect("t");
        let mut rows = Vec::new();
        let mut m = Minutes::default();
        m.add(&reading(1, at, 1000, 2000, 3000, 500), at, at, &mut rows);
        m.add(&reading(3, at + SignedDuration::from_secs(10), 1001, 2000, 3000, 1500), at, at, &mut rows);
        m.close_all(&mut rows);
        db.write(&rows, Mode::Merge).expect("write");
        // A restart within the same minute: the second part adds to the row.
        let mut m = Minutes::default();
        let mut rows = Vec::new();
        m.add(&reading(1, at + SignedDuration::from_secs(30), 1003, 2000, 3000, 100), at, at, &mut rows);
        m.close_all(&mut rows);
        db.write(&rows, Mode::Merge).expect("write");
        let got = sqlite3(
            &path,
            "SELECT telegrams, seq_gaps, p_imp_min_w, p_imp_avg_w, p_imp_max_w, import_t1_wh FROM minute",
        );
        assert_eq!(got.trim(), "3|1|100|700.0|1500|1003");
        // A backfill keeps what is there.
        db.write(&rows, Mode::KeepExisting).expect("write");
        assert_eq!(sqlite3(&path, "SELECT telegrams FROM minute").trim(), "3");
    }

    #[test]
    fn a_newer_schema_is_a_clear_error_naming_the_setting() {
        let dir = tempdir();
        let path = dir.path().join("h.sqlite");
        drop(Db::open(&path, TimeZone::UTC).expect("open"));
        sqlite3(&path, "UPDATE schema_version SET version = 99");
        let e = Db::open(&path, TimeZone::UTC).expect_err("newer").to_string();
        assert!(e.starts_with("reader.database: sqlite:") && e.contains("schema version 99 is newer"), "{e}");
        assert_eq!(sqlite3(&path, "SELECT version FROM schema_version").trim(), "99", "left as it was");
    }

    #[test]
    fn a_corrupt_file_is_a_clear_error_naming_the_setting() {
        let dir = tempdir();
        let path = dir.path().join("h.sqlite");
        std::fs::write(&path, vec![0x5a; 8192]).expect("write");
        let e = Db::open(&path, TimeZone::UTC).expect_err("corrupt").to_string();
        assert!(e.starts_with("reader.database: sqlite:") && e.contains("not a database"), "{e}");
    }

    #[test]
    fn a_failing_database_is_retried_with_backoff_and_nothing_is_lost() {
        let dir = tempdir();
        // The directory cannot be made: a file stands where it should be.
        std::fs::write(dir.path().join("blocked"), b"").expect("file");
        let path = dir.path().join("blocked").join("h.sqlite");
        let stats = Arc::new(Stats::default());
        let queue = Arc::new(RowQueue::new(QUEUE_BYTES, stats.clone()));
        let mut feed = Feed::new(queue.clone());
        let mut sink = Sink::new(path.clone(), TimeZone::UTC, [None; 3], queue.clone(), stats.clone());
        let t0: Timestamp = "2026-05-01T10:00:00Z".parse().expect("t");
        for i in 0..180 {
            let at = t0 + SignedDuration::from_secs(i * 10);
            feed.telegram(&reading(i as u64 + 1, at, 1000 + i, 0, 0, 100), at, at);
        }
        let now = t0 + SignedDuration::from_secs(1800);
        assert!(!sink.step(now, std::time::Duration::ZERO));
        assert_eq!(sink.retry_at(), Some(now + SignedDuration::from_secs(1)));
        assert!(!sink.step(now + SignedDuration::from_millis(500), std::time::Duration::ZERO), "backing off");
        assert!(!sink.step(now + SignedDuration::from_secs(1), std::time::Duration::ZERO));
        assert_eq!(sink.retry_at(), Some(now + SignedDuration::from_secs(3)), "the delay doubles");
        assert_eq!(stats.snapshot().history_errors, 2);
        std::fs::remove_file(dir.path().join("blocked")).expect("unblock");
        assert!(sink.step(now + SignedDuration::from_secs(3), std::time::Duration::ZERO));
        feed.finish();
        while sink.step(now + SignedDuration::from_secs(4), std::time::Duration::ZERO) {}
        assert_eq!(
            sqlite3(&path, "SELECT count(*), sum(telegrams), max(import_t1_wh) FROM minute").trim(),
            "30|180|1179"
        );
        // From the end of the first minute (1005) to the last reading.
        assert_eq!(sqlite3(&path, "SELECT import_t1_wh FROM day").trim(), "174");
    }

    #[test]
    fn registers_are_kept_in_thousandths_exactly() {
        assert_eq!(milli(dec("1164.722")), Some(1_164_722));
        assert_eq!(milli(dec("1621.6")), Some(1_621_600));
        assert_eq!(milli(dec("5")), Some(5000));
        assert_eq!(milli(dec("0.12345")), Some(123));
    }

    #[test]
    fn targets_come_from_the_setting() {
        let mut raw = shared::config::RawConfig::default();
        raw.reader.dir = "/srv/p1".into();
        let t = |db: &str, raw: &mut shared::config::RawConfig| {
            raw.reader.database = db.into();
            Target::of(&raw.clone().validate().expect("valid").reader)
        };
        assert_eq!(t("sqlite:", &mut raw), Target::Sqlite("/srv/p1/history.sqlite".into()));
        assert_eq!(t("sqlite:/var/h.db", &mut raw), Target::Sqlite("/var/h.db".into()));
        assert_eq!(t("off", &mut raw), Target::Off);
        assert_eq!(t("postgres://p1@db/p1", &mut raw), Target::Postgres("postgres://p1@db/p1".into()));
        raw.reader.database = "mysql://secret@x".into();
        let e = raw.validate().expect_err("bad").to_string();
        assert!(e.contains("reader.database") && !e.contains("secret"), "{e}");
    }
}
