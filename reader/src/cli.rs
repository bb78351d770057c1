//! The command line: flags, where the configuration comes from, and the signals that stop the reader.
//!
//! The configuration is `--config FILE`, else `p1.yml` in the working directory if there is one, else the
//! built-in defaults. Flags override the file's values before validation, so a bad flag is reported like a bad
//! key, together with every other bad value.

use std::path::{Path, PathBuf};

use clap::Parser;
use shared::config::{Config, ConfigError, RawConfig};

/// `p1-reader`: subscribe to a p1hub listener and keep its telegrams in files.
#[derive(Debug, Default, Parser)]
#[command(name = "p1-reader", version, about, long_about = None)]
pub struct Args {
    /// Configuration file (default: p1.yml in the working directory, if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Multicast group and port to join (overrides multicast.group).
    #[arg(long, value_name = "ADDR:PORT")]
    pub group: Option<String>,
    /// Local address or name (eth0) of the interface to join on (overrides multicast.interface).
    #[arg(long, value_name = "IP")]
    pub interface: Option<String>,
    /// Data directory (overrides reader.dir).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<String>,
    /// File holding the LAN key for sealed datagrams (overrides `multicast.key_file` and `multicast.key`).
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<String>,
    /// History database: sqlite:, sqlite:PATH, postgres://... or off (overrides reader.database).
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// Print the documented default p1.yml and exit.
    #[arg(long)]
    pub print_default_config: bool,
    /// Check the configuration (file and flags), report every problem, and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Instead of subscribing: a report or an import (see docs/history.md).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `p1-reader` does besides receiving.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Usage per tariff, export, net, gas, water and cost, from the history database.
    Report {
        /// One line per day of the last 31 days (the default).
        #[arg(long, group = "per")]
        day: bool,
        /// One line per ISO week of the last 13 weeks.
        #[arg(long, group = "per")]
        week: bool,
        /// One line per month of the last 13 months.
        #[arg(long, group = "per")]
        month: bool,
        /// One line per year.
        #[arg(long, group = "per")]
        year: bool,
        /// Only this meter (listener name).
        #[arg(long, value_name = "NAME")]
        meter: Option<String>,
        /// CSV with a header.
        #[arg(long, group = "format")]
        csv: bool,
        /// A JSON array.
        #[arg(long, group = "format")]
        json: bool,
    },
    /// Draw a meter's power from its `RRD` (reader.rrd) into a PNG.
    Graph {
        /// The meter (listener name); may be left out when there is one `RRD`.
        #[arg(long, value_name = "NAME")]
        meter: Option<String>,
        /// The last day (the default).
        #[arg(long, group = "span")]
        day: bool,
        /// The last week.
        #[arg(long, group = "span")]
        week: bool,
        /// The last month.
        #[arg(long, group = "span")]
        month: bool,
        /// The last year.
        #[arg(long, group = "span")]
        year: bool,
        /// The PNG to write (default: METER-SPAN.png in the working directory).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Fill the history database from existing details files (*.jsonl, *.jsonl.gz) under DIR.
    Import {
        /// A data directory, a listener's directory or its details directory.
        dir: PathBuf,
    },
}

impl Args {
    /// Applies the flags to a raw configuration.
    pub fn apply(&self, raw: &mut RawConfig) {
        if let Some(g) = &self.group {
            raw.multicast.group.clone_from(g);
        }
        if let Some(i) = &self.interface {
            raw.multicast.interface.clone_from(i);
        }
        if let Some(d) = &self.dir {
            raw.reader.dir.clone_from(d);
        }
        if let Some(f) = &self.key_file {
            raw.multicast.key_file = Some(f.clone());
            raw.multicast.key = None;
        }
        if let Some(d) = &self.database {
            raw.reader.database.clone_from(d);
        }
    }

    /// Reads, overrides and validates the configuration, and reads the key files. Returns it with a description
    /// of where it came from and the warnings about the key files (one readable by others).
    pub fn load(&self) -> Result<(Config, String, Vec<String>), ConfigError> {
        let (mut raw, origin) = RawConfig::locate(self.config.as_deref(), Path::new("."))?;
        self.apply(&mut raw);
        let mut config = raw.validate()?;
        let warnings = config.read_multicast_keys()?;
        Ok((config, origin, warnings))
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_before_validation() {
        let args = Args::parse_from([
            "p1-reader",
            "--group",
            "239.255.9.9:5000",
            "--interface",
            "127.0.0.1",
            "--dir",
            "/tmp/x",
            "--database",
            "off",
        ]);
        let mut raw = RawConfig::from_yaml("reader:\n  dir: /srv/p1\n", "t.yml").expect("yaml");
        args.apply(&mut raw);
        let config = raw.validate().expect("valid");
        assert_eq!(config.multicast.group, "239.255.9.9:5000".parse().expect("addr"));
        assert_eq!(config.multicast.interface, IpAddr::from([127, 0, 0, 1]).into());
        assert_eq!(config.reader.dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.reader.database, "off");
    }

    #[test]
    fn bad_flags_are_reported_with_the_other_errors() {
        // `eth0` is a valid interface now (a name); `192.168.1` is neither an address nor a name.
        let args = Args::parse_from(["p1-reader", "--group", "10.0.0.1:4141", "--interface", "192.168.1"]);
        let mut raw = RawConfig::from_yaml("reader:\n  interval_minutes: 7\n", "t.yml").expect("yaml");
        args.apply(&mut raw);
        let err = raw.validate().expect_err("invalid").to_string();
        for key in ["multicast.group", "multicast.interface", "reader.interval_minutes"] {
            assert!(err.contains(key), "{key} missing from: {err}");
        }
    }

    use std::net::IpAddr;
}
