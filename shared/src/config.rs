//! `p1.yml`: one configuration for the listener, the reader and the dashboard.
//!
//! Loading has two stages. [`RawConfig`] is what serde reads: strings and numbers, every key defaulted. Unknown keys
//! (with the nearest valid name) and wrongly typed values are collected, not stopped at, and a YAML syntax error
//! names its line and column (module `read`). Programs apply their command-line overrides to it, then
//! [`RawConfig::validate`] builds the typed [`Config`] and collects *every* mistake, those of the file and every
//! bad value, into one [`ConfigError::Invalid`], each naming the key, quoting the value and saying what is allowed.
//! The documented default file is [`DEFAULT_CONFIG`] (the repository's `p1.yml`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod read;
use crate::wire::seal::{Key, Keyring};

/// The repository's documented `p1.yml`: every key with its default and a comment.
pub const DEFAULT_CONFIG: &str = include_str!("../../p1.yml");

/// The file each program reads from its working directory when no `--config` is given.
pub const DEFAULT_FILE: &str = "p1.yml";

/// The default multicast group: administratively scoped (RFC 2365), so routers keep it inside the site.
pub const DEFAULT_GROUP: &str = "239.255.80.1:4141";

/// A configuration as read from YAML, before validation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    /// The listener's name in its datagrams (default: the host name).
    pub name: Option<String>,
    /// Time zone for stamps without a DST flag and for the reader's rotation.
    pub timezone: String,
    /// Where datagrams go.
    pub multicast: RawMulticast,
    /// `p1-listener`.
    pub listener: RawListener,
    /// `p1-reader`.
    pub reader: RawReader,
    /// `p1-dashboard`.
    pub dashboard: RawDashboard,
    /// Mistakes found while reading the file (unknown keys, wrongly typed values, each dropped for its default);
    /// [`RawConfig::validate`] reports them first. Empty for a clean file.
    #[serde(skip)]
    pub file_errors: Vec<FieldError>,
    /// `p1-bridge`.
    pub bridge: RawBridge,
}

/// `multicast:`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawMulticast {
    /// `ADDR:PORT`; IPv4 `239.0.0.0/8` or IPv6 `[ff15::...]:PORT`.
    pub group: String,
    /// The local interface to send and join on: an address (`0.0.0.0`: the system's choice) or a name (`eth0`).
    pub interface: String,
    /// Hops a datagram may travel (1 = this LAN only).
    pub ttl: u32,
    /// Deliver to subscribers on the sending host too.
    pub loopback: bool,
    /// `open` or `sealed` (default: sealed when a key is set, else open). See `docs/sealed-datagrams.md`.
    pub security: Option<String>,
    /// Sealed datagrams: the LAN key, 32 bytes as 64 hex digits or base64.
    pub key: Option<Secret>,
    /// Sealed datagrams: a file holding the key (kept out of `p1.yml`).
    pub key_file: Option<String>,
    /// Key rotation: the key being rotated to, accepted by subscribers beside `key`.
    pub next_key: Option<Secret>,
    /// Key rotation: a file holding the next key.
    pub next_key_file: Option<String>,
    /// Sealed mode, migration: subscribers also accept open datagrams.
    pub accept_open: bool,
    /// Telegram datagrams: `full` (plain JSON) or `compact` (zlib-compressed JSON, in one Ethernet frame, for
    /// Wi-Fi).
    pub message: String,
}

/// Text that must never be printed (a key in `p1.yml`): its `Debug` says only how long it is.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<secret, {} characters>", self.0.chars().count())
    }
}

/// `listener:`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawListener {
    /// A serial device, `tcp://HOST:PORT`, `file:PATH` or `simulate`.
    pub source: String,
    /// `auto`, `115200-8N1` or `9600-7E1`.
    pub port_settings: String,
    /// Replay pace for `file:` sources: `meter`, `max` or seconds between telegrams (`"1s"`).
    pub replay: String,
    /// Seconds without a valid telegram before the watchdog warns.
    pub watchdog_secs: u64,
    /// Seconds between status datagrams.
    pub status_secs: u64,
    /// Longest telegram accepted, in bytes.
    pub max_telegram_bytes: usize,
    /// `ADDR:PORT` for the raw telegram TCP server, or empty/null for off.
    pub raw_tcp: Option<String>,
    /// Bytes buffered per raw TCP client before a slow client is dropped.
    pub raw_tcp_client_buffer: usize,
    /// Raw TCP clients served at once; more are closed at once.
    pub raw_tcp_max_clients: usize,
    /// Rewrite telegrams on the raw TCP server with CR LF line ends and a recomputed 4-digit CRC (for older
    /// parsers); off by default: byte-exact.
    pub raw_tcp_normalise: bool,
    /// Encrypted meters: the 32-hex-digit key from the grid operator.
    pub decryption_key: Option<String>,
    /// Encrypted meters: a file holding the key (kept out of `p1.yml`).
    pub decryption_key_file: Option<String>,
    /// Encrypted meters: the GCM authentication key (Smarty's fixed key by default).
    pub authentication_key: String,
}

/// `reader:`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawReader {
    /// Data directory.
    pub dir: String,
    /// MiB of telegrams kept in memory while the disk cannot be written (1 to 4096).
    pub queue_mib: u32,
    /// Write the details (JSON lines) files.
    pub details: bool,
    /// Minutes per interval file (1 to 1440, dividing a day).
    pub interval_minutes: u32,
    /// Columns of the interval and day CSV files.
    pub columns: Vec<String>,
    /// Write the HTML page.
    pub html: bool,
    /// Minutes of power history on the HTML page.
    pub html_minutes: u32,
    /// Seconds between HTML rewrites.
    pub html_secs: u64,
    /// Gzip closed files.
    pub compress: bool,
    /// Days to keep closed files of every kind (0 = forever).
    pub retention_days: u32,
    /// Days to keep details files (0 = as `retention_days`).
    pub details_retention_days: u32,
    /// Days to keep interval CSV files (0 = as `retention_days`).
    pub interval_retention_days: u32,
    /// History database: `sqlite:` (a file in `dir`), `sqlite:PATH`, `postgres://...`, or `off`.
    pub database: String,
    /// A file holding the `PostgreSQL` password (first line); never logged.
    pub database_password_file: String,
    /// Days to keep per-minute rows in the database (0 = forever).
    pub database_minute_days: u32,
    /// Days to keep hourly rows (0 = forever).
    pub database_hour_days: u32,
    /// Days to keep daily rows (0 = forever).
    pub database_day_days: u32,
    /// Keep `RRDtool` files (`DIR/rrd/<meter>.rrd`, through the `rrdtool` command).
    pub rrd: bool,
    /// Prices for `p1-reader report`, per kWh, m³ and day.
    pub prices: RawPrices,
}

/// `reader.prices:` (any currency; up to 6 decimals).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawPrices {
    /// Per kWh imported on tariff 1.
    pub import_t1: f64,
    /// Per kWh imported on tariff 2.
    pub import_t2: f64,
    /// Per kWh exported on tariff 1 (paid back: subtracted).
    pub export_t1: f64,
    /// Per kWh exported on tariff 2.
    pub export_t2: f64,
    /// Per m³ of gas.
    pub gas_m3: f64,
    /// Per m³ of water.
    pub water_m3: f64,
    /// Standing charges per day (all of them together).
    pub standing_per_day: f64,
}

/// `dashboard:`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawDashboard {
    /// Minutes of power history in the chart.
    pub chart_minutes: u32,
    /// Seconds after which a meter counts as stale.
    pub stale_secs: u64,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            name: None,
            timezone: "Europe/Amsterdam".into(),
            multicast: RawMulticast::default(),
            listener: RawListener::default(),
            reader: RawReader::default(),
            dashboard: RawDashboard::default(),
            file_errors: Vec::new(),
            bridge: RawBridge::default(),
        }
    }
}

impl Default for RawMulticast {
    fn default() -> Self {
        RawMulticast {
            group: DEFAULT_GROUP.into(),
            interface: "0.0.0.0".into(),
            ttl: 1,
            loopback: true,
            security: None,
            key: None,
            key_file: None,
            next_key: None,
            next_key_file: None,
            accept_open: false,
            message: "full".into(),
        }
    }
}

/// The Luxembourg Smarty authentication key (fixed for every Smarty meter).
pub const SMARTY_AUTHENTICATION_KEY: &str = "00112233445566778899AABBCCDDEEFF";

impl Default for RawListener {
    fn default() -> Self {
        RawListener {
            source: "/dev/ttyUSB0".into(),
            port_settings: "auto".into(),
            replay: "meter".into(),
            watchdog_secs: 30,
            status_secs: 5,
            max_telegram_bytes: 8192,
            raw_tcp: None,
            raw_tcp_client_buffer: 65_536,
            raw_tcp_max_clients: 32,
            raw_tcp_normalise: false,
            decryption_key: None,
            decryption_key_file: None,
            authentication_key: SMARTY_AUTHENTICATION_KEY.into(),
        }
    }
}

/// The default interval and day CSV columns.
pub const DEFAULT_COLUMNS: [&str; 8] = [
    "time",
    "energy_import_t1_kwh",
    "energy_import_t2_kwh",
    "energy_export_t1_kwh",
    "energy_export_t2_kwh",
    "power_import_kw",
    "power_export_kw",
    "gas_m3",
];

impl Default for RawReader {
    fn default() -> Self {
        RawReader {
            dir: "./data".into(),
            queue_mib: 32,
            details: true,
            interval_minutes: 5,
            columns: DEFAULT_COLUMNS.iter().map(|&c| c.to_owned()).collect(),
            html: true,
            html_minutes: 15,
            html_secs: 5,
            compress: true,
            retention_days: 0,
            details_retention_days: 90,
            interval_retention_days: 7,
            database: "sqlite:".into(),
            database_password_file: String::new(),
            database_minute_days: 90,
            database_hour_days: 0,
            database_day_days: 0,
            rrd: false,
            prices: RawPrices::default(),
        }
    }
}

impl Default for RawDashboard {
    fn default() -> Self {
        RawDashboard { chart_minutes: 5, stale_secs: 15 }
    }
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The listener's name.
    pub name: String,
    /// The configured time zone's name.
    pub timezone_name: String,
    /// The configured time zone.
    pub timezone: jiff::tz::TimeZone,
    /// Multicast settings.
    pub multicast: Multicast,
    /// Listener settings.
    pub listener: Listener,
    /// Reader settings.
    pub reader: Reader,
    /// Dashboard settings.
    pub dashboard: Dashboard,
    /// Bridge settings.
    pub bridge: Bridge,
}

/// Validated `multicast:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Multicast {
    /// Group address and port.
    pub group: SocketAddr,
    /// Local interface: an address (unspecified: the system's choice) or a name.
    pub interface: crate::netif::Interface,
    /// TTL / hop limit.
    pub ttl: u32,
    /// Loop datagrams back to the sending host.
    pub loopback: bool,
    /// Open or sealed datagrams.
    pub security: Security,
    /// Sealed mode: subscribers also accept open datagrams (a migration).
    pub accept_open: bool,
    /// The LAN key (from `key`, or from `key_file` once [`Config::read_multicast_keys`] has run).
    pub key: Option<Key>,
    /// Where the key is kept, if in a file.
    pub key_file: Option<PathBuf>,
    /// The key being rotated to (from `next_key`, or `next_key_file` once read).
    pub next_key: Option<Key>,
    /// Where the next key is kept, if in a file.
    pub next_key_file: Option<PathBuf>,
    /// What a telegram datagram carries (`multicast.message`).
    pub message: MessageForm,
}

/// What a telegram datagram carries (`multicast.message`); subscribers read both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MessageForm {
    /// Named values and the lossless OBIS map (up to about 3.5 KB: IP-fragmented over 1500-byte links).
    #[default]
    Full,
    /// The same JSON, zlib-compressed, without the OBIS map only if it does not fit otherwise: at most 1472
    /// bytes for every telegram in the corpus, one Ethernet or Wi-Fi frame (`shared::wire::compact`).
    Compact,
}

/// Whether datagrams are sealed (`multicast.security`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Plain JSON datagrams: anyone on the LAN can read and send them.
    Open,
    /// Sealed with the LAN key (`shared::wire::seal`): only key holders can read or send them.
    Sealed,
}

impl Multicast {
    /// The keys as a keyring (current first, then next), once every key is known: `None` in open mode, or before
    /// [`Config::read_multicast_keys`] has read a key file.
    #[must_use]
    pub fn keyring(&self) -> Option<Keyring> {
        let ring = Keyring::new(self.key.clone()?);
        Some(match &self.next_key {
            Some(next) => ring.with_next(next.clone()),
            None => ring,
        })
    }
}

/// Where the listener reads telegrams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A serial device.
    Serial(PathBuf),
    /// A TCP P1 bridge, `host:port`.
    Tcp(String),
    /// A capture file.
    File(PathBuf),
    /// The built-in simulated meter.
    Simulate,
}

/// Serial port settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortSettings {
    /// Try 115200 8N1, then 9600 7E1, and keep what yields valid telegrams.
    Auto,
    /// DSMR 4/5, e-MUCS, Smarty.
    Baud115200_8N1,
    /// DSMR 2.2/3.0.
    Baud9600_7E1,
}

/// How a capture file is replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// As far apart as the telegrams' own timestamps say (1 s if they have none).
    Meter,
    /// As fast as possible.
    Max,
    /// A fixed interval.
    Every(Duration),
}

/// Validated `listener:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// Where telegrams come from.
    pub source: Source,
    /// Serial settings.
    pub port_settings: PortSettings,
    /// Replay pace for files.
    pub replay: Replay,
    /// Watchdog limit.
    pub watchdog: Duration,
    /// Status datagram period.
    pub status_every: Duration,
    /// Framer cap.
    pub max_telegram_bytes: usize,
    /// Raw TCP server address.
    pub raw_tcp: Option<SocketAddr>,
    /// Per-client raw TCP buffer.
    pub raw_tcp_client_buffer: usize,
    /// Raw TCP clients served at once.
    pub raw_tcp_max_clients: usize,
    /// Raw TCP telegrams rewritten with CR LF and a 4-digit CRC.
    pub raw_tcp_normalise: bool,
    /// AES-128 key for encrypted meters (from `decryption_key`, or from the key file once
    /// [`Config::read_key_file`] has run).
    pub decryption_key: Option<[u8; 16]>,
    /// Where the key is kept, if in a file.
    pub decryption_key_file: Option<PathBuf>,
    /// GCM authentication key.
    pub authentication_key: [u8; 16],
}

/// Validated `reader:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reader {
    /// Data directory.
    pub dir: PathBuf,
    /// Bound of the memory queue, in bytes.
    pub queue_bytes: usize,
    /// Details files on.
    pub details: bool,
    /// Interval length.
    pub interval_minutes: u32,
    /// CSV columns.
    pub columns: Vec<String>,
    /// HTML page on.
    pub html: bool,
    /// HTML chart span.
    pub html_minutes: u32,
    /// HTML rewrite period.
    pub html_every: Duration,
    /// Gzip closed files.
    pub compress: bool,
    /// Retention of every kind of file (None = forever).
    pub retention_days: Option<u32>,
    /// Retention of details files (None = as `retention_days`).
    pub details_retention_days: Option<u32>,
    /// Retention of interval CSV files (None = as `retention_days`).
    pub interval_retention_days: Option<u32>,
    /// History database, as given (`sqlite:`, `sqlite:PATH`, `postgres://...`, `off`); checked for its form only.
    pub database: String,
    /// The `PostgreSQL` password file, if set.
    pub database_password_file: Option<PathBuf>,
    /// Retention of minute, hour and day rows in days (None = forever).
    pub database_retention: [Option<u32>; 3],
    /// `RRDtool` files on.
    pub rrd: bool,
    /// Prices in millionths (micro-units) per kWh, m³ or day.
    pub prices: Prices,
}

/// Validated `reader.prices`, in millionths of the currency unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prices {
    /// Per kWh imported on tariff 1.
    pub import_t1: i64,
    /// Per kWh imported on tariff 2.
    pub import_t2: i64,
    /// Per kWh exported on tariff 1.
    pub export_t1: i64,
    /// Per kWh exported on tariff 2.
    pub export_t2: i64,
    /// Per m³ of gas.
    pub gas_m3: i64,
    /// Per m³ of water.
    pub water_m3: i64,
    /// Per day.
    pub standing_per_day: i64,
}

/// Validated `dashboard:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dashboard {
    /// Chart span.
    pub chart_minutes: u32,
    /// Stale limit.
    pub stale_after: Duration,
}

/// One bad value, or one unknown key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted key, e.g. `multicast.ttl`.
    pub key: String,
    /// The value as given.
    pub value: String,
    /// What is allowed instead (for an unknown key: the nearest valid name, or the valid names).
    pub allowed: String,
    /// The key itself is not a setting (a typo, or a setting of another section).
    pub unknown: bool,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unknown {
            write!(f, "{}: unknown setting; {}", self.key, self.allowed)
        } else {
            write!(f, "{}: '{}' is not valid: {}", self.key, self.value, self.allowed)
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not YAML (or not a mapping of settings): nothing else in the file can be checked.
    #[error("{origin}: {}{message}", position(*.line, *.column))]
    Syntax {
        /// The file (or `defaults`).
        origin: String,
        /// Line of the mistake, from 1 (0: the parser did not say).
        line: usize,
        /// Column of the mistake, from 1.
        column: usize,
        /// What the YAML parser said.
        message: String,
    },
    /// One or more bad values.
    #[error("{} invalid setting{}:\n  {}", .0.len(), if .0.len() == 1 { "" } else { "s" },
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Invalid(Vec<FieldError>),
}

fn position(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!("line {line}, column {column}: ")
    }
}

impl RawConfig {
    /// Reads YAML text. `origin` names the text in errors (usually the file's path).
    ///
    /// Only a YAML syntax error fails here. Unknown keys and wrongly typed values are collected into
    /// [`RawConfig::file_errors`] (each dropped for its default), so that [`RawConfig::validate`] reports them all
    /// together with every bad value.
    pub fn from_yaml(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
        // An empty file (or one with only comments) means "all defaults".
        if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
            return Ok(RawConfig::default());
        }
        // A clean file is read straight from the text, exactly as written; only a file with a mistake is read again
        // value by value to find all of them.
        let de = serde_norway::Deserializer::from_str(text);
        match serde_path_to_error::deserialize(de) {
            Ok(raw) => Ok(raw),
            Err(_) => read::collect(text, origin),
        }
    }

    /// Reads a YAML file.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_owned(), source })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Finds and reads the configuration every program uses: `explicit` (from `--config`) if given, else
    /// [`DEFAULT_FILE`] in `dir` if it exists, else the built-in defaults. Also returns where it came from, for
    /// `--check-config` and the start-up log.
    pub fn locate(explicit: Option<&Path>, dir: &Path) -> Result<(RawConfig, String), ConfigError> {
        // `p1.yml`, not `./p1.yml`, in messages about the working directory's file.
        let fallback = if dir == Path::new(".") { PathBuf::from(DEFAULT_FILE) } else { dir.join(DEFAULT_FILE) };
        match explicit {
            Some(path) => Ok((Self::from_file(path)?, path.display().to_string())),
            None if fallback.is_file() => Ok((Self::from_file(&fallback)?, fallback.display().to_string())),
            None => Ok((RawConfig::default(), "built-in defaults".to_owned())),
        }
    }

    /// Builds the typed configuration, collecting every bad value.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let mut errors = self.file_errors.clone();
        let mut bad = |key: &str, value: &dyn fmt::Display, allowed: &str| {
            errors.push(FieldError {
                key: key.into(),
                value: value.to_string(),
                allowed: allowed.into(),
                unknown: false,
            });
        };

        let name = match &self.name {
            Some(n) if n.trim().is_empty() || n.len() > 64 => {
                bad("name", n, "a non-empty name of at most 64 characters");
                String::new()
            }
            Some(n) => n.clone(),
            None => host_name(),
        };
        let timezone = jiff::tz::TimeZone::get(&self.timezone).unwrap_or_else(|_| {
            bad("timezone", &self.timezone, "an IANA time zone name such as Europe/Amsterdam, Europe/Brussels or UTC");
            jiff::tz::TimeZone::UTC
        });

        let m = &self.multicast;
        let group = parse_group(&m.group).unwrap_or_else(|why| {
            bad("multicast.group", &m.group, why);
            DEFAULT_GROUP.parse().unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
        });
        let interface = m.interface.parse::<crate::netif::Interface>().unwrap_or_else(|why| {
            bad("multicast.interface", &m.interface, why);
            crate::netif::Interface::default()
        });
        if !interface.fits(group.ip()) {
            bad("multicast.interface", &m.interface, "an address of the same family (IPv4/IPv6) as multicast.group");
        }
        if m.ttl > 255 {
            bad("multicast.ttl", &m.ttl, "a number from 0 to 255 (1 keeps datagrams on the LAN)");
        }
        let sealing = multicast_security(m, &mut bad);
        let message = match m.message.to_ascii_lowercase().as_str() {
            "full" | "" => MessageForm::Full,
            "compact" => MessageForm::Compact,
            _ => {
                bad("multicast.message", &m.message, "full (named values and the OBIS map) or compact (one frame)");
                MessageForm::Full
            }
        };

        let l = &self.listener;
        let source = parse_source(&l.source).unwrap_or_else(|why| {
            bad("listener.source", &l.source, why);
            Source::Simulate
        });
        let port_settings = match l.port_settings.to_ascii_lowercase().as_str() {
            "auto" => PortSettings::Auto,
            "115200-8n1" => PortSettings::Baud115200_8N1,
            "9600-7e1" => PortSettings::Baud9600_7E1,
            _ => {
                bad("listener.port_settings", &l.port_settings, "auto, 115200-8N1 (DSMR 4/5) or 9600-7E1 (DSMR 2.2/3)");
                PortSettings::Auto
            }
        };
        let replay = parse_replay(&l.replay).unwrap_or_else(|| {
            bad("listener.replay", &l.replay, "meter, max, or a time between telegrams such as 1s or 250ms");
            Replay::Meter
        });
        if !(1..=86_400).contains(&l.watchdog_secs) {
            bad("listener.watchdog_secs", &l.watchdog_secs, "a number of seconds from 1 to 86400");
        }
        if !(1..=3600).contains(&l.status_secs) {
            bad("listener.status_secs", &l.status_secs, "a number of seconds from 1 to 3600");
        }
        if !(1024..=1 << 20).contains(&l.max_telegram_bytes) {
            bad("listener.max_telegram_bytes", &l.max_telegram_bytes, "a size from 1024 to 1048576 bytes");
        }
        let raw_tcp = match l.raw_tcp.as_deref().map(str::trim) {
            None | Some("" | "off") => None,
            Some(a) => {
                if let Ok(addr) = a.parse::<SocketAddr>() {
                    Some(addr)
                } else {
                    bad("listener.raw_tcp", &a, "ADDR:PORT such as 0.0.0.0:2001, or empty for off");
                    None
                }
            }
        };
        if l.raw_tcp_client_buffer < 4096 {
            bad("listener.raw_tcp_client_buffer", &l.raw_tcp_client_buffer, "at least 4096 bytes");
        }
        if !(1..=1024).contains(&l.raw_tcp_max_clients) {
            bad("listener.raw_tcp_max_clients", &l.raw_tcp_max_clients, "a number of clients from 1 to 1024");
        }
        let mut decryption_key = None;
        if let Some(k) = &l.decryption_key {
            match parse_key(k) {
                Some(k) => decryption_key = Some(k),
                // Never echo a key: say only how long it was.
                None => bad("listener.decryption_key", &format!("<{} characters>", k.len()), KEY_HELP),
            }
        }
        // The key file is read by the listener only (`Config::read_key_file`): the same p1.yml is shared with the
        // reader and dashboard on other hosts, where the file does not exist.
        if l.decryption_key.is_some() && l.decryption_key_file.is_some() {
            bad("listener.decryption_key_file", &"(set)", "either decryption_key or decryption_key_file, not both");
        }
        let authentication_key = parse_key(&l.authentication_key).unwrap_or_else(|| {
            bad("listener.authentication_key", &l.authentication_key, KEY_HELP);
            [0; 16]
        });

        let r = &self.reader;
        if r.dir.trim().is_empty() {
            bad("reader.dir", &r.dir, "a directory path");
        }
        if r.interval_minutes == 0 || 1440 % r.interval_minutes != 0 {
            bad("reader.interval_minutes", &r.interval_minutes, "minutes that divide a day: 1, 5, 10, 15, 30, 60, ...");
        }
        if r.columns.is_empty() {
            bad("reader.columns", &"[]", "at least one column");
        }
        if !(1..=4096).contains(&r.queue_mib) {
            bad("reader.queue_mib", &r.queue_mib, "MiB from 1 to 4096");
        }
        for c in &r.columns {
            if !crate::columns::is_known(c) {
                bad("reader.columns", c, &format!("one of: {}", crate::columns::KNOWN.join(", ")));
            }
        }
        if !(1..=1440).contains(&r.html_minutes) {
            bad("reader.html_minutes", &r.html_minutes, "minutes from 1 to 1440");
        }
        if !(1..=3600).contains(&r.html_secs) {
            bad("reader.html_secs", &r.html_secs, "seconds from 1 to 3600");
        }
        let db = r.database.trim();
        if !(db == "off"
            || db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            // A URL may hold a password: never echo it.
            bad("reader.database", &"<given>", "sqlite:, sqlite:PATH, postgres://USER@HOST/DB or off");
        }
        let mut price = |key: &str, v: f64| -> i64 {
            if v.is_finite() && v.abs() < 1e9 {
                (v * 1e6).round() as i64
            } else {
                bad(&format!("reader.prices.{key}"), &v, "a price per unit, such as 0.25");
                0
            }
        };
        let rp = &r.prices;
        let prices = Prices {
            import_t1: price("import_t1", rp.import_t1),
            import_t2: price("import_t2", rp.import_t2),
            export_t1: price("export_t1", rp.export_t1),
            export_t2: price("export_t2", rp.export_t2),
            gas_m3: price("gas_m3", rp.gas_m3),
            water_m3: price("water_m3", rp.water_m3),
            standing_per_day: price("standing_per_day", rp.standing_per_day),
        };

        let d = &self.dashboard;
        if !(1..=1440).contains(&d.chart_minutes) {
            bad("dashboard.chart_minutes", &d.chart_minutes, "minutes from 1 to 1440");
        }
        if !(1..=3600).contains(&d.stale_secs) {
            bad("dashboard.stale_secs", &d.stale_secs, "seconds from 1 to 3600");
        }

        let bridge = self.bridge.validate(&name, &mut bad);

        if !errors.is_empty() {
            return Err(ConfigError::Invalid(errors));
        }
        Ok(Config {
            name,
            timezone_name: self.timezone.clone(),
            timezone,
            multicast: Multicast {
                group,
                interface,
                ttl: m.ttl,
                loopback: m.loopback,
                security: sealing.security,
                accept_open: m.accept_open,
                key: sealing.key,
                key_file: non_empty(m.key_file.as_deref()).map(PathBuf::from),
                next_key: sealing.next_key,
                next_key_file: non_empty(m.next_key_file.as_deref()).map(PathBuf::from),
                message,
            },
            listener: Listener {
                source,
                port_settings,
                replay,
                watchdog: Duration::from_secs(l.watchdog_secs),
                status_every: Duration::from_secs(l.status_secs),
                max_telegram_bytes: l.max_telegram_bytes,
                raw_tcp,
                raw_tcp_client_buffer: l.raw_tcp_client_buffer,
                raw_tcp_max_clients: l.raw_tcp_max_clients,
                raw_tcp_normalise: l.raw_tcp_normalise,
                decryption_key,
                decryption_key_file: l.decryption_key_file.as_ref().map(PathBuf::from),
                authentication_key,
            },
            reader: Reader {
                dir: PathBuf::from(&r.dir),
                queue_bytes: (r.queue_mib as usize) << 20,
                details: r.details,
                interval_minutes: r.interval_minutes,
                columns: r.columns.clone(),
                html: r.html,
                html_minutes: r.html_minutes,
                html_every: Duration::from_secs(r.html_secs),
                compress: r.compress,
                retention_days: (r.retention_days > 0).then_some(r.retention_days),
                details_retention_days: (r.details_retention_days > 0).then_some(r.details_retention_days),
                interval_retention_days: (r.interval_retention_days > 0).then_some(r.interval_retention_days),
                database: db.to_owned(),
                database_password_file: non_empty(Some(r.database_password_file.as_str())).map(PathBuf::from),
                database_retention: [r.database_minute_days, r.database_hour_days, r.database_day_days]
                    .map(|d| (d > 0).then_some(d)),
                rrd: r.rrd,
                prices,
            },
            dashboard: Dashboard { chart_minutes: d.chart_minutes, stale_after: Duration::from_secs(d.stale_secs) },
            bridge,
        })
    }
}

impl Config {
    /// Reads `listener.decryption_key_file` into `listener.decryption_key`. Only the listener calls this; the
    /// other programs never need the key.
    pub fn read_key_file(&mut self) -> Result<(), ConfigError> {
        let Some(path) = &self.listener.decryption_key_file else { return Ok(()) };
        let invalid = |allowed: String| {
            ConfigError::Invalid(vec![FieldError {
                key: "listener.decryption_key_file".into(),
                value: path.display().to_string(),
                allowed,
                unknown: false,
            }])
        };
        let text = std::fs::read_to_string(path).map_err(|e| invalid(format!("a readable file ({e})")))?;
        let key = parse_key(text.trim()).ok_or_else(|| invalid("a file holding only the key: 32 hex digits".into()))?;
        self.listener.decryption_key = Some(key);
        Ok(())
    }
}

impl Config {
    /// Reads `multicast.key_file` and `multicast.next_key_file` into `multicast.key` and `multicast.next_key`.
    /// Every program that sends or receives sealed datagrams calls this after [`RawConfig::validate`]. Returns
    /// warnings to log (a key file that group or others may read); never the key.
    pub fn read_multicast_keys(&mut self) -> Result<Vec<String>, ConfigError> {
        let m = &mut self.multicast;
        let (mut errors, mut warnings) = (Vec::new(), Vec::new());
        for (name, file, slot) in [
            ("multicast.key_file", &m.key_file, &mut m.key),
            ("multicast.next_key_file", &m.next_key_file, &mut m.next_key),
        ] {
            let Some(path) = file else { continue };
            match read_key_file(path) {
                Ok((key, warning)) => {
                    *slot = Some(key);
                    warnings.extend(warning.map(|w| format!("{name}: {w}")));
                }
                Err(allowed) => {
                    errors.push(FieldError {
                        key: name.into(),
                        value: path.display().to_string(),
                        allowed,
                        unknown: false,
                    });
                }
            }
        }
        if let (Some(key), Some(next)) = (&m.key, &m.next_key) {
            if key == next {
                errors.push(FieldError {
                    key: "multicast.next_key_file".into(),
                    value: m
                        .next_key_file
                        .as_ref()
                        .or(m.key_file.as_ref())
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    allowed: "a key other than the current one (the next key is the one you rotate to)".into(),
                    unknown: false,
                });
            }
        }
        if errors.is_empty() {
            Ok(warnings)
        } else {
            Err(ConfigError::Invalid(errors))
        }
    }
}

/// What `multicast.security` and the keys given inline come to.
struct Sealing {
    security: Security,
    key: Option<Key>,
    next_key: Option<Key>,
}

/// Validates `multicast.security`, `key`, `key_file`, `next_key`, `next_key_file`. Key files are read later, by
/// [`Config::read_multicast_keys`]. A key is never quoted in an error.
fn multicast_security(m: &RawMulticast, bad: &mut dyn FnMut(&str, &dyn fmt::Display, &str)) -> Sealing {
    const MAKE_ONE: &str = "make one with `p1-listener keygen`";
    let text = |s: &Option<Secret>| s.as_ref().map(|s| s.0.trim().to_owned()).filter(|s| !s.is_empty());
    let (key_text, next_text) = (text(&m.key), text(&m.next_key));
    let (key_file, next_file) = (non_empty(m.key_file.as_deref()), non_empty(m.next_key_file.as_deref()));
    let mut parse = |name: &str, text: Option<String>| {
        let text = text?;
        Key::parse(&text).map_err(|e| bad(name, &format!("<{} characters>", text.chars().count()), &e.to_string())).ok()
    };
    let key = parse("multicast.key", key_text.clone());
    let next_key = parse("multicast.next_key", next_text.clone());
    if key_text.is_some() && key_file.is_some() {
        bad("multicast.key_file", &"(set)", "either multicast.key or multicast.key_file, not both");
    }
    if next_text.is_some() && next_file.is_some() {
        bad("multicast.next_key_file", &"(set)", "either multicast.next_key or multicast.next_key_file, not both");
    }
    let has_key = key_text.is_some() || key_file.is_some();
    if !has_key && (next_text.is_some() || next_file.is_some()) {
        let name = if next_text.is_some() { "multicast.next_key" } else { "multicast.next_key_file" };
        bad(name, &"(set)", "only beside a current key (multicast.key or multicast.key_file): set that too");
    }
    if let (Some(k), Some(n)) = (&key, &next_key) {
        if k == n {
            bad("multicast.next_key", &"(the current key)", "a key other than multicast.key (the key you rotate to)");
        }
    }
    let security = match m.security.as_deref().map(str::trim) {
        None | Some("") => {
            if has_key {
                Security::Sealed
            } else {
                Security::Open
            }
        }
        Some("sealed") => {
            if !has_key {
                bad(
                    "multicast.security",
                    &"sealed",
                    &format!("open, or set multicast.key or multicast.key_file too ({MAKE_ONE})"),
                );
            }
            Security::Sealed
        }
        Some("open") => {
            if has_key {
                bad(
                    "multicast.security",
                    &"open",
                    "sealed (or leave it out) while multicast.key or multicast.key_file is set; to stay open, remove \
                     the key",
                );
            }
            Security::Open
        }
        Some(other) => {
            bad("multicast.security", &other, "open or sealed (leave it out: sealed when a key is set, else open)");
            if has_key {
                Security::Sealed
            } else {
                Security::Open
            }
        }
    };
    Sealing { security, key, next_key }
}

fn non_empty(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

/// Reads a key file; the warning says when group or others may read it. The error is the "allowed" text.
fn read_key_file(path: &Path) -> Result<(Key, Option<String>), String> {
    let text =
        zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| format!("a readable key file ({e})"))?);
    let key = Key::parse(&text).map_err(|e| format!("a file holding only the key: {e}"))?;
    let mut warning = None;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                warning = Some(format!(
                    "{} may be read by group or others (mode {mode:03o}); run: chmod 600 {}",
                    path.display(),
                    path.display()
                ));
            }
        }
    }
    Ok((key, warning))
}

const KEY_HELP: &str = "32 hex digits (16 bytes), as given by the grid operator";

fn parse_key(text: &str) -> Option<[u8; 16]> {
    let text = text.trim();
    if text.len() != 32 || !text.is_ascii() {
        return None;
    }
    let mut key = [0u8; 16];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

fn parse_group(text: &str) -> Result<SocketAddr, &'static str> {
    const HELP: &str = "a multicast ADDR:PORT such as 239.255.80.1:4141 or [ff15::5031]:4141";
    let addr: SocketAddr = text.trim().parse().map_err(|_| HELP)?;
    if !addr.ip().is_multicast() {
        return Err("a multicast address (224.0.0.0/4 or ff00::/8) with a port, e.g. 239.255.80.1:4141");
    }
    if addr.port() == 0 {
        return Err("a port from 1 to 65535");
    }
    Ok(addr)
}

fn parse_source(text: &str) -> Result<Source, &'static str> {
    let text = text.trim();
    if text == "simulate" {
        return Ok(Source::Simulate);
    }
    if let Some(rest) = text.strip_prefix("tcp://") {
        let ok = rest.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        return if ok { Ok(Source::Tcp(rest.to_owned())) } else { Err("tcp://HOST:PORT, e.g. tcp://192.0.2.10:2001") };
    }
    if let Some(path) = text.strip_prefix("file:") {
        return if path.is_empty() { Err("file:PATH to a capture") } else { Ok(Source::File(PathBuf::from(path))) };
    }
    if text.starts_with('/') || text.starts_with("COM") {
        return Ok(Source::Serial(PathBuf::from(text)));
    }
    Err("a serial device (/dev/ttyUSB0, /dev/serial/by-id/...), tcp://HOST:PORT, file:PATH or simulate")
}

fn parse_replay(text: &str) -> Option<Replay> {
    match text.trim() {
        "meter" => Some(Replay::Meter),
        "max" => Some(Replay::Max),
        t => {
            let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
                (n, 1)
            } else if let Some(n) = t.strip_suffix('s') {
                (n, 1000)
            } else {
                (t, 1000)
            };
            let n: u64 = num.trim().parse().ok()?;
            (n > 0).then(|| Replay::Every(Duration::from_millis(n * scale)))
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "p1hub".into())
}

// ---- `bridge:` (p1-bridge) ------------------------------------------------------------------------------------

/// `bridge:`
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawBridge {
    /// `bridge.mqtt:`
    pub mqtt: RawMqtt,
    /// `bridge.http:`
    pub http: RawHttp,
}

/// `bridge.http:`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawHttp {
    /// `ADDR:PORT` to serve on; empty: HTTP off.
    pub listen: Option<String>,
    /// The listener served at `/api` (default: the first heard).
    pub meter: Option<String>,
    /// HTTP connections at once (a WebSocket client counts under `max_ws_clients` once upgraded).
    pub max_connections: usize,
    /// WebSocket clients at once.
    pub max_ws_clients: usize,
    /// Messages queued per WebSocket client; a client further behind is dropped.
    pub ws_client_queue: usize,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp { listen: None, meter: None, max_connections: 1024, max_ws_clients: 768, ws_client_queue: 32 }
    }
}

/// Validated `bridge.http:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http {
    /// Where to serve.
    pub listen: SocketAddr,
    /// The listener served at `/api`; `None`: the first heard.
    pub meter: Option<String>,
    /// Connections served at once.
    pub max_connections: usize,
    /// WebSocket clients at once.
    pub max_ws_clients: usize,
    /// Messages queued per WebSocket client.
    pub ws_client_queue: usize,
}

impl RawHttp {
    fn validate(&self, bad: &mut dyn FnMut(&str, &dyn fmt::Display, &str)) -> Option<Http> {
        let listen = self.listen.as_deref().map(str::trim).filter(|l| !l.is_empty() && *l != "off")?;
        let addr = listen.parse::<SocketAddr>().unwrap_or_else(|_| {
            bad("bridge.http.listen", &listen, "ADDR:PORT such as 127.0.0.1:8480 or [::]:80");
            SocketAddr::from(([127, 0, 0, 1], 0))
        });
        if !(1..=65_536).contains(&self.max_connections) {
            bad("bridge.http.max_connections", &self.max_connections, "1 to 65536");
        }
        if self.max_ws_clients == 0 || self.max_ws_clients > self.max_connections {
            bad("bridge.http.max_ws_clients", &self.max_ws_clients, "1 to bridge.http.max_connections");
        }
        if !(1..=4096).contains(&self.ws_client_queue) {
            bad("bridge.http.ws_client_queue", &self.ws_client_queue, "1 to 4096 messages");
        }
        if let Some(m) = self.meter.as_deref().filter(|m| m.is_empty() || m.contains('/')) {
            bad("bridge.http.meter", &m, "a listener name (without /)");
        }
        Some(Http {
            listen: addr,
            meter: self.meter.clone().filter(|m| !m.is_empty()),
            max_connections: self.max_connections,
            max_ws_clients: self.max_ws_clients,
            ws_client_queue: self.ws_client_queue,
        })
    }
}

/// `bridge.mqtt:`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawMqtt {
    /// `mqtt://HOST:PORT` or `mqtts://HOST:PORT`; empty: MQTT off.
    pub url: Option<String>,
    /// `3.1.1` or `5`.
    pub protocol: String,
    /// Client id (default: `p1-bridge-<name>`).
    pub client_id: Option<String>,
    /// User name, if the broker wants one.
    pub username: Option<String>,
    /// A file holding the password (kept out of `p1.yml`).
    pub password_file: Option<String>,
    /// The name of an environment variable holding the password.
    pub password_env: Option<String>,
    /// PEM file of the CA(s) to trust instead of the system's roots.
    pub ca_file: Option<String>,
    /// PEM client certificate (chain), for brokers that want one.
    pub client_cert_file: Option<String>,
    /// PEM private key of the client certificate.
    pub client_key_file: Option<String>,
    /// Skip verifying the broker's certificate (loudly logged; never the default).
    pub tls_insecure: bool,
    /// First topic level.
    pub topic_prefix: String,
    /// 0 or 1.
    pub qos: u8,
    /// Least time between two publications on one topic (`0`: every telegram; `5s`, `500ms`).
    pub min_interval: String,
    /// Bytes held while the broker is unreachable; the oldest are dropped beyond.
    pub queue_bytes: usize,
    /// MQTT keep-alive, seconds.
    pub keep_alive_secs: u64,
    /// Publish Home Assistant discovery configs.
    pub discovery: bool,
    /// Home Assistant's discovery prefix.
    pub discovery_prefix: String,
    /// Hours a meter may be unseen before its discovery configs are removed (0: never).
    pub discovery_remove_after_hours: u64,
}

impl Default for RawMqtt {
    fn default() -> Self {
        RawMqtt {
            url: None,
            protocol: "3.1.1".into(),
            client_id: None,
            username: None,
            password_file: None,
            password_env: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            tls_insecure: false,
            topic_prefix: "p1hub".into(),
            qos: 1,
            min_interval: "0".into(),
            queue_bytes: 1 << 20,
            keep_alive_secs: 30,
            discovery: true,
            discovery_prefix: "homeassistant".into(),
            discovery_remove_after_hours: 0,
        }
    }
}

/// Validated `bridge:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bridge {
    /// MQTT output, if `bridge.mqtt.url` is set.
    pub mqtt: Option<Mqtt>,
    /// HTTP output, if `bridge.http.listen` is set.
    pub http: Option<Http>,
}

/// The MQTT protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MqttProtocol {
    /// MQTT 3.1.1.
    V311,
    /// MQTT 5.
    V5,
}

/// Validated `bridge.mqtt:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mqtt {
    /// The URL as given (for logs).
    pub url: String,
    /// Broker host name or address (TLS checks the certificate against it).
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// `mqtts://`.
    pub tls: bool,
    /// Protocol version.
    pub protocol: MqttProtocol,
    /// Client id.
    pub client_id: String,
    /// User name.
    pub username: Option<String>,
    /// Password file.
    pub password_file: Option<PathBuf>,
    /// Password environment variable.
    pub password_env: Option<String>,
    /// CA file (None: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// Client certificate file.
    pub client_cert_file: Option<PathBuf>,
    /// Client key file.
    pub client_key_file: Option<PathBuf>,
    /// Certificate verification off.
    pub tls_insecure: bool,
    /// Topic prefix.
    pub topic_prefix: String,
    /// `QoS` of data publications.
    pub qos: u8,
    /// Per-topic rate limit (zero: none).
    pub min_interval: Duration,
    /// Offline queue bound.
    pub queue_bytes: usize,
    /// Keep-alive.
    pub keep_alive: Duration,
    /// Home Assistant discovery on.
    pub discovery: bool,
    /// Discovery prefix.
    pub discovery_prefix: String,
    /// Remove a meter's discovery configs after this long unseen (None: never).
    pub discovery_remove_after: Option<Duration>,
}

impl RawBridge {
    fn validate(&self, name: &str, bad: &mut dyn FnMut(&str, &dyn fmt::Display, &str)) -> Bridge {
        let http = self.http.validate(bad);
        let m = &self.mqtt;
        let Some(url) = m.url.as_deref().map(str::trim).filter(|u| !u.is_empty() && *u != "off") else {
            return Bridge { mqtt: None, http };
        };
        let (host, port, tls) = parse_mqtt_url(url).unwrap_or_else(|why| {
            bad("bridge.mqtt.url", &url, why);
            (String::new(), 0, false)
        });
        let protocol = match m.protocol.trim() {
            "3.1.1" | "3" | "4" => MqttProtocol::V311,
            "5" | "5.0" => MqttProtocol::V5,
            other => {
                bad("bridge.mqtt.protocol", &other, "3.1.1 or 5");
                MqttProtocol::V311
            }
        };
        let client_id = m.client_id.clone().unwrap_or_else(|| format!("p1-bridge-{name}"));
        if client_id.is_empty() || client_id.len() > 128 {
            bad("bridge.mqtt.client_id", &client_id, "1 to 128 characters");
        }
        if m.password_file.is_some() && m.password_env.is_some() {
            bad("bridge.mqtt.password_file", &"(set)", "either password_file or password_env, not both");
        }
        if (m.password_file.is_some() || m.password_env.is_some()) && m.username.is_none() {
            bad("bridge.mqtt.username", &"", "a user name (a password is set)");
        }
        if m.client_cert_file.is_some() != m.client_key_file.is_some() {
            bad(
                "bridge.mqtt.client_key_file",
                &m.client_key_file.as_deref().unwrap_or(""),
                "both client_cert_file and client_key_file, or neither",
            );
        }
        if !tls {
            for (key, set) in [
                ("bridge.mqtt.ca_file", m.ca_file.is_some()),
                ("bridge.mqtt.client_cert_file", m.client_cert_file.is_some()),
                ("bridge.mqtt.tls_insecure", m.tls_insecure),
            ] {
                if set {
                    bad(key, &"(set)", "a TLS setting: use an mqtts:// URL, or remove it");
                }
            }
        }
        if m.tls_insecure && m.ca_file.is_some() {
            bad("bridge.mqtt.tls_insecure", &"true", "false when ca_file is set (a CA is only used to verify)");
        }
        let topic_ok =
            |t: &str| !t.is_empty() && !t.starts_with('/') && !t.ends_with('/') && !t.contains(['+', '#', '\0']);
        if !topic_ok(&m.topic_prefix) {
            bad("bridge.mqtt.topic_prefix", &m.topic_prefix, "topic levels without +, # or a leading/trailing /");
        }
        if m.qos > 1 {
            bad("bridge.mqtt.qos", &m.qos, "0 or 1");
        }
        let min_interval = match m.min_interval.trim() {
            "0" | "0s" | "0ms" => Duration::ZERO,
            t => {
                if let Some(Replay::Every(d)) = parse_replay(t) {
                    d
                } else {
                    bad(
                        "bridge.mqtt.min_interval",
                        &m.min_interval,
                        "0 (every telegram) or a time such as 5s or 500ms",
                    );
                    Duration::ZERO
                }
            }
        };
        if m.queue_bytes < 4096 {
            bad("bridge.mqtt.queue_bytes", &m.queue_bytes, "at least 4096 bytes");
        }
        if !(5..=3600).contains(&m.keep_alive_secs) {
            bad("bridge.mqtt.keep_alive_secs", &m.keep_alive_secs, "seconds from 5 to 3600");
        }
        if !topic_ok(&m.discovery_prefix) {
            bad(
                "bridge.mqtt.discovery_prefix",
                &m.discovery_prefix,
                "topic levels without +, # or a leading/trailing /",
            );
        }
        let path = |p: &Option<String>| p.as_deref().map(PathBuf::from);
        Bridge {
            mqtt: Some(Mqtt {
                url: url.to_owned(),
                host,
                port,
                tls,
                protocol,
                client_id,
                username: m.username.clone(),
                password_file: path(&m.password_file),
                password_env: m.password_env.clone(),
                ca_file: path(&m.ca_file),
                client_cert_file: path(&m.client_cert_file),
                client_key_file: path(&m.client_key_file),
                tls_insecure: m.tls_insecure,
                topic_prefix: m.topic_prefix.clone(),
                qos: m.qos,
                min_interval,
                queue_bytes: m.queue_bytes,
                keep_alive: Duration::from_secs(m.keep_alive_secs),
                discovery: m.discovery,
                discovery_prefix: m.discovery_prefix.clone(),
                discovery_remove_after: (m.discovery_remove_after_hours > 0)
                    .then(|| Duration::from_secs(m.discovery_remove_after_hours * 3600)),
            }),
            http,
        }
    }
}

/// `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]` (IPv6 in brackets) → host, port, TLS.
fn parse_mqtt_url(url: &str) -> Result<(String, u16, bool), &'static str> {
    const HELP: &str = "mqtt://HOST:PORT or mqtts://HOST:PORT, e.g. mqtts://broker.lan:8883";
    let (rest, tls, default_port) = if let Some(r) = url.strip_prefix("mqtts://") {
        (r, true, 8883)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (r, false, 1883)
    } else {
        return Err(HELP);
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '@', '?']) {
        return Err("mqtt://HOST:PORT or mqtts://HOST:PORT without a path or user (set bridge.mqtt.username)");
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or(HELP)?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(HELP),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(HELP);
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or("a port from 1 to 65535")?,
    };
    Ok((host.to_owned(), port, tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_file_is_the_defaults() {
        let raw = RawConfig::from_yaml(DEFAULT_CONFIG, "p1.yml").expect("p1.yml parses");
        let mut defaults = RawConfig::default();
        defaults.name.clone_from(&raw.name);
        assert_eq!(raw, defaults, "p1.yml and RawConfig::default() disagree");
        raw.validate().expect("p1.yml is valid");
    }

    /// Validates `yaml` and returns the error list (the test fails if the file is valid).
    fn errors_of(yaml: &str) -> Vec<FieldError> {
        let raw = RawConfig::from_yaml(yaml, "t.yml").expect("YAML parses");
        match raw.validate() {
            Err(ConfigError::Invalid(list)) => list,
            Err(other) => panic!("expected Invalid, got {other}"),
            Ok(_) => panic!("expected errors for:\n{yaml}"),
        }
    }

    #[test]
    fn unknown_keys_name_the_path_and_the_nearest_name() {
        let list = errors_of("multicast:\n  gruop: 239.1.2.3:1\n");
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0].to_string(), "multicast.gruop: unknown setting; did you mean `multicast.group`?");
        // A setting of another section is found there.
        let list = errors_of("interface: 127.0.0.1\n");
        assert_eq!(list[0].to_string(), "interface: unknown setting; did you mean `multicast.interface`?");
        // Nothing near: the valid names are listed.
        let list = errors_of("dashboard:\n  colours: dark\n");
        assert_eq!(
            list[0].to_string(),
            "dashboard.colours: unknown setting; the settings under `dashboard:` are chart_minutes, stale_secs"
        );
    }

    #[test]
    fn wrong_types_name_the_path_and_what_is_wanted() {
        let list = errors_of("multicast:\n  ttl: lots\n");
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0].to_string(), "multicast.ttl: 'lots' is not valid: a whole number of 0 or more (default 1)");
        let list = errors_of("reader: 5\nmulticast:\n  loopback: yes\n");
        let text: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "reader: '5' is not valid: a section: `reader:` followed by indented `key: value` lines",
                "multicast.loopback: 'yes' is not valid: true or false (default true)",
            ]
        );
    }

    #[test]
    fn three_mistyped_keys_and_two_bad_values_are_five_errors() {
        let yaml = "multicast:\n  gruop: 239.255.1.2:4141\n  ttl: lots\nlistener:\n  watchdog_sec: 30\n\
                    reader:\n  compres: true\n  interval_minutes: 7\n";
        let list = errors_of(yaml);
        let text: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "multicast.gruop: unknown setting; did you mean `multicast.group`?",
                "listener.watchdog_sec: unknown setting; did you mean `listener.watchdog_secs`?",
                "reader.compres: unknown setting; did you mean `reader.compress`?",
                "multicast.ttl: 'lots' is not valid: a whole number of 0 or more (default 1)",
                "reader.interval_minutes: '7' is not valid: minutes that divide a day: 1, 5, 10, 15, 30, 60, ...",
            ]
        );
        let err = RawConfig::from_yaml(yaml, "t.yml").expect("parses").validate().expect_err("invalid");
        assert!(err.to_string().starts_with("5 invalid settings:\n  multicast.gruop"), "{err}");
    }

    #[test]
    fn a_clean_file_is_read_exactly_as_written() {
        // Text that YAML would read as a number stays text where text is wanted, on both paths.
        let raw = RawConfig::from_yaml("name: 007\nreader:\n  dir: 2024\n", "t.yml").expect("parses");
        assert_eq!((raw.name.as_deref(), raw.reader.dir.as_str()), (Some("007"), "2024"));
        assert!(raw.file_errors.is_empty());
        let list = errors_of("name: 1234\nreader:\n  dir: 2024\n  columns: [time, 5]\n  colums: []\n");
        let text: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(text[0], "reader.colums: unknown setting; did you mean `reader.columns`?");
        assert!(text[1].starts_with("reader.columns: '5' is not valid: one of: time,"), "{text:?}");
        assert_eq!(text.len(), 2, "{text:?}");
        // A section with every line commented out is an empty section, not a mistake.
        let raw = RawConfig::from_yaml("reader:\n#  dir: x\ndashboard:\n  stale_secs: 20\n", "t.yml").expect("ok");
        assert!(raw.file_errors.is_empty(), "{:?}", raw.file_errors);
        assert_eq!(raw.dashboard.stale_secs, 20);
    }

    #[test]
    fn a_syntax_error_gives_the_line_and_column() {
        let err = RawConfig::from_yaml("reader:\n  dir: ./data\n compress: true\n", "t.yml").expect_err("not YAML");
        let ConfigError::Syntax { line, column, .. } = &err else { panic!("expected Syntax, got {err}") };
        assert_eq!((*line, *column), (3, 2), "{err}");
        let text = err.to_string();
        assert!(text.starts_with("t.yml: line 3, column 2: "), "{text}");
        assert!(!text.contains('?'), "{text}");
        let err = RawConfig::from_yaml("multicast: [1, 2\n", "t.yml").expect_err("not YAML");
        assert!(matches!(err, ConfigError::Syntax { line: 2.., .. }), "{err}");
        let err = RawConfig::from_yaml("- a\n- b\n", "t.yml").expect_err("not settings");
        assert_eq!(err.to_string(), "t.yml: line 1, column 1: expected settings (`key: value` lines), found [a, b]");
    }

    #[test]
    fn every_bad_value_is_reported_at_once() {
        let yaml = "timezone: Mars/Olympus\nmulticast:\n  group: 10.1.2.3:4141\n  ttl: 300\nlistener:\n  \
                    source: bogus\n  port_settings: 300baud\n  decryption_key: 0011\nreader:\n  interval_minutes: 7\n  \
                    columns: [time, nonsense]\n";
        let err = RawConfig::from_yaml(yaml, "t.yml").expect("parses").validate().expect_err("invalid");
        let ConfigError::Invalid(list) = &err else { panic!("expected Invalid, got {err}") };
        let keys: Vec<&str> = list.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "timezone",
                "multicast.group",
                "multicast.ttl",
                "listener.source",
                "listener.port_settings",
                "listener.decryption_key",
                "reader.interval_minutes",
                "reader.columns"
            ]
        );
        let text = err.to_string();
        assert!(text.contains("multicast.ttl: '300' is not valid: a number from 0 to 255"), "{text}");
        assert!(!text.contains("0011"), "the key must never be echoed: {text}");
    }

    #[test]
    fn the_key_file_is_read_by_the_listener_only() {
        let dir = std::env::temp_dir().join(format!("p1hub-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("key");
        let yaml = format!("listener:\n  decryption_key_file: {}\n", file.display());
        // Validation alone does not need the file (a reader on another host shares this p1.yml).
        let mut config = RawConfig::from_yaml(&yaml, "t.yml").expect("parses").validate().expect("valid");
        let err = config.read_key_file().expect_err("missing file");
        assert!(err.to_string().contains("listener.decryption_key_file"), "{err}");
        std::fs::write(&file, "000102030405060708090A0B0C0D0E0F\n").expect("write");
        config.read_key_file().expect("readable key");
        assert_eq!(config.listener.decryption_key.map(|k| k[15]), Some(15));
        std::fs::remove_dir_all(&dir).ok();
    }

    const LAN_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const NEXT_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh4=";

    fn multicast(yaml: &str) -> Result<Multicast, ConfigError> {
        RawConfig::from_yaml(&format!("multicast:\n{yaml}"), "t.yml").expect("parses").validate().map(|c| c.multicast)
    }

    fn invalid(yaml: &str) -> Vec<FieldError> {
        match multicast(yaml) {
            Err(ConfigError::Invalid(list)) => list,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_key_means_sealed_and_no_key_means_open() {
        let open = multicast("  ttl: 1\n").expect("valid");
        assert_eq!((open.security, open.keyring()), (Security::Open, None));
        let sealed = multicast(&format!("  key: {LAN_KEY}\n")).expect("valid");
        assert_eq!(sealed.security, Security::Sealed);
        let ring = sealed.keyring().expect("a keyring");
        assert_eq!(ring.current().id().to_string(), "686321c8");
        assert_eq!(ring.next(), None);
        assert!(!sealed.accept_open);
        // Explicitly sealed, with a rotation and a migration.
        let m =
            multicast(&format!("  security: sealed\n  key: {LAN_KEY}\n  next_key: {NEXT_KEY}\n  accept_open: true\n"))
                .expect("valid");
        assert_eq!((m.security, m.accept_open), (Security::Sealed, true));
        assert_eq!(m.keyring().expect("ring").keys().len(), 2);
        // A hex key of digits only is still read as text, not as a YAML number.
        let digits = "1234567890123456789012345678901234567890123456789012345678901234";
        assert_eq!(multicast(&format!("  key: {digits}\n")).expect("valid").keyring().map(|r| r.keys().len()), Some(1));
        // Empty values count as unset (the documented p1.yml lists the keys empty).
        let empty = multicast("  security:\n  key:\n  key_file: \"\"\n  next_key:\n").expect("valid");
        assert_eq!(empty.security, Security::Open);
    }

    #[test]
    fn sealing_mistakes_name_the_field_and_the_fix() {
        let cases: [(String, &str, &str); 8] = [
            ("  security: sealed\n".into(), "multicast.security", "keygen"),
            (format!("  security: open\n  key: {LAN_KEY}\n"), "multicast.security", "remove"),
            ("  security: secret\n".into(), "multicast.security", "open or sealed"),
            (format!("  key: {LAN_KEY}\n  key_file: /k\n"), "multicast.key_file", "not both"),
            (
                format!("  key: {LAN_KEY}\n  next_key: {NEXT_KEY}\n  next_key_file: /n\n"),
                "multicast.next_key_file",
                "not both",
            ),
            (format!("  next_key: {NEXT_KEY}\n"), "multicast.next_key", "current key"),
            (format!("  key: {LAN_KEY}\n  next_key: {LAN_KEY}\n"), "multicast.next_key", "other than"),
            ("  key: 00112233445566778899aabbccddeeff\n".into(), "multicast.key", "64 hex digits"),
        ];
        for (yaml, key, fix) in cases {
            let errors = invalid(&yaml);
            assert_eq!(errors.len(), 1, "{yaml}: {errors:?}");
            let text = errors[0].to_string();
            assert!(errors[0].key == key && text.contains(fix), "{yaml}: {text}");
            assert!(!text.contains(LAN_KEY) && !text.contains("00112233") && !text.contains("AAECA"), "{text}");
        }
    }

    #[test]
    fn keys_are_never_in_debug_output() {
        let yaml = format!("multicast:\n  key: {LAN_KEY}\n  next_key: {NEXT_KEY}\n");
        let raw = RawConfig::from_yaml(&yaml, "t.yml").expect("parses");
        let config = raw.validate().expect("valid");
        for text in [format!("{raw:?}"), format!("{config:?}")] {
            assert!(!text.contains("0a0b0c") && !text.contains("AAECA"), "{text}");
        }
        assert!(format!("{raw:?}").contains("<secret, 64 characters>"), "{raw:?}");
        assert!(format!("{config:?}").contains("686321c8"), "the key id may show: {config:?}");
    }

    #[test]
    fn key_files_are_read_and_loose_permissions_warned_about() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("p1hub-lan-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (key, next) = (dir.join("lan.key"), dir.join("next.key"));
        let yaml = format!("multicast:\n  key_file: {}\n  next_key_file: {}\n", key.display(), next.display());
        // Validation alone does not read the files: sealed, keys still unknown.
        let mut config = RawConfig::from_yaml(&yaml, "t.yml").expect("parses").validate().expect("valid");
        assert_eq!((config.multicast.security, config.multicast.keyring()), (Security::Sealed, None));
        let Err(ConfigError::Invalid(errors)) = config.read_multicast_keys() else { panic!("missing files") };
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["multicast.key_file", "multicast.next_key_file"]);

        std::fs::write(&key, format!("{LAN_KEY}\n")).expect("write");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::write(&next, "not a key\n").expect("write");
        std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let Err(ConfigError::Invalid(errors)) = config.read_multicast_keys() else { panic!("bad next key") };
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].key == "multicast.next_key_file" && errors[0].allowed.contains("64 hex digits"),
            "{errors:?}"
        );

        std::fs::write(&next, NEXT_KEY).expect("write");
        let warnings = config.read_multicast_keys().expect("both keys read");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("multicast.next_key_file:") && warnings[0].contains("mode 644"),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("chmod 600"), "{warnings:?}");
        let ring = config.multicast.keyring().expect("a keyring");
        assert_eq!((ring.keys().len(), ring.current().id().to_string()), (2, "686321c8".to_owned()));

        // The same key twice is a mistake.
        std::fs::write(&next, LAN_KEY).expect("write");
        let Err(ConfigError::Invalid(errors)) = config.read_multicast_keys() else { panic!("same key") };
        assert!(errors[0].allowed.contains("other than the current"), "{errors:?}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn sources_are_recognised() {
        assert_eq!(parse_source("simulate"), Ok(Source::Simulate));
        assert_eq!(parse_source("/dev/ttyUSB0"), Ok(Source::Serial("/dev/ttyUSB0".into())));
        assert_eq!(parse_source("tcp://p1.local:2001"), Ok(Source::Tcp("p1.local:2001".into())));
        assert_eq!(parse_source("file:cap.txt"), Ok(Source::File("cap.txt".into())));
        assert!(parse_source("tcp://nohost").is_err());
        assert_eq!(parse_replay("250ms"), Some(Replay::Every(Duration::from_millis(250))));
        assert_eq!(parse_replay("2s"), Some(Replay::Every(Duration::from_secs(2))));
        assert_eq!(parse_replay("0"), None);
    }

    #[test]
    fn bridge_http_settings_are_checked() {
        let config = RawConfig::from_yaml("bridge:\n  http:\n    listen: 127.0.0.1:8480\n    meter: m1\n", "t.yml")
            .expect("yaml")
            .validate()
            .expect("valid");
        let h = config.bridge.http.expect("http on");
        assert_eq!((h.listen.to_string().as_str(), h.meter.as_deref()), ("127.0.0.1:8480", Some("m1")));
        let yaml =
            "bridge:\n  http:\n    listen: localhost\n    max_connections: 0\n    ws_client_queue: 0\n    meter: a/b\n";
        let keys: Vec<String> = errors_of(yaml).into_iter().map(|e| e.key).collect();
        for key in [
            "bridge.http.listen",
            "bridge.http.max_connections",
            "bridge.http.max_ws_clients",
            "bridge.http.ws_client_queue",
            "bridge.http.meter",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
        }
        let off = RawConfig::from_yaml("bridge:\n  http:\n    listen: off\n", "t.yml").expect("yaml");
        assert!(off.validate().expect("valid").bridge.http.is_none());
    }

    #[test]
    fn bridge_mqtt_settings_are_checked() {
        let ok = "bridge:\n  mqtt:\n    url: mqtts://[::1]:8884\n    username: p1\n    password_env: P1_PW\n    min_interval: 5s\n";
        let config = RawConfig::from_yaml(ok, "t.yml").expect("parses").validate().expect("valid");
        let m = config.bridge.mqtt.expect("mqtt on");
        assert_eq!((m.host.as_str(), m.port, m.tls, m.min_interval), ("::1", 8884, true, Duration::from_secs(5)));
        assert_eq!(parse_mqtt_url("mqtt://broker.lan"), Ok(("broker.lan".into(), 1883, false)));
        assert_eq!(parse_mqtt_url("mqtts://broker.lan"), Ok(("broker.lan".into(), 8883, true)));
        let yaml = "bridge:\n  mqtt:\n    url: http://x\n    protocol: '6'\n    qos: 2\n    topic_prefix: a/#\n    \
                    client_cert_file: c.pem\n    min_interval: soon\n";
        let err = RawConfig::from_yaml(yaml, "t.yml").expect("parses").validate().expect_err("invalid").to_string();
        for key in [
            "bridge.mqtt.url",
            "bridge.mqtt.protocol",
            "bridge.mqtt.qos",
            "bridge.mqtt.topic_prefix",
            "bridge.mqtt.client_key_file",
            "bridge.mqtt.min_interval",
        ] {
            assert!(err.contains(key), "{key} missing from: {err}");
        }
        let plain = "bridge:\n  mqtt:\n    url: mqtt://127.0.0.1:1883\n    ca_file: ca.pem\n";
        let err = RawConfig::from_yaml(plain, "t.yml").expect("parses").validate().expect_err("invalid").to_string();
        assert!(err.contains("bridge.mqtt.ca_file") && err.contains("mqtts://"), "{err}");
        let off = RawConfig::from_yaml("bridge:\n  mqtt:\n    url:\n", "t.yml").expect("parses");
        assert!(off.validate().expect("valid").bridge.mqtt.is_none());
    }
}
