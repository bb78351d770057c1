//! Command-line flags and configuration loading.
//!
//! The configuration is `--config FILE` if given, else `p1.yml` in the current directory if there is one, else the
//! built-in defaults. Flags override the raw configuration *before* validation, so a bad flag value is reported
//! like a bad key, together with every other error.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use shared::config::{Config, ConfigError, RawConfig};

/// `p1-listener`: reads the P1 port and multicasts every telegram.
#[derive(Debug, Parser)]
#[command(name = "p1-listener", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (default: ./p1.yml if it exists, else built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Flags that override configuration keys; they may also follow a subcommand.
    #[command(flatten)]
    pub overrides: Overrides,
    /// Print the documented default p1.yml and exit.
    #[arg(long)]
    pub print_default_config: bool,
    /// Check the configuration (with the flags applied), print a summary and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Tools; without one, run the listener.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Tools for the installer.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the message of every valid telegram in a raw capture, one JSON document per line, exactly as the
    /// listener would publish it.
    Parse {
        /// The capture; - reads standard input.
        #[arg(default_value = "-")]
        path: String,
        #[arg(
            long,
            help = "At the end, print the counters (telegrams, crc_failures, discarded_bytes, ...) as JSON on stderr"
        )]
        stats: bool,
    },
    /// Find the port settings, grab one telegram, save it and say what the meter is.
    Capture {
        /// Where to save the telegram (default: p1-capture-<UTC time>.txt).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Seconds to wait for a valid telegram.
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        timeout: u64,
    },
}

/// Flag values that override configuration keys (`global`: accepted before or after a subcommand).
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct Overrides {
    #[arg(
        long,
        global = true,
        value_name = "SOURCE",
        help = "Where telegrams come from: a serial device, tcp://HOST:PORT, file:PATH or simulate (listener.source)"
    )]
    pub source: Option<String>,
    #[arg(
        long,
        global = true,
        visible_alias = "speed",
        value_name = "PACE",
        help = "Replay pace for file: sources: meter, max, or a gap such as 1s or 250ms (listener.replay)"
    )]
    pub replay: Option<String>,
    #[arg(long, global = true, value_name = "ADDR:PORT", help = "Multicast group and port (multicast.group)")]
    pub group: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "IP",
        help = "Local address or name (eth0) of the interface to send on (multicast.interface)"
    )]
    pub interface: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "ADDR:PORT",
        help = "Serve raw telegrams over TCP on this address; \"off\" disables (listener.raw_tcp)"
    )]
    pub raw_tcp: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "HEX",
        help = "Key for encrypted meters, 32 hex digits (listener.decryption_key)"
    )]
    pub decryption_key: Option<String>,
}

impl Overrides {
    /// Writes the overrides into `raw`.
    pub fn apply(&self, raw: &mut RawConfig) {
        if let Some(s) = &self.source {
            raw.listener.source.clone_from(s);
        }
        if let Some(r) = &self.replay {
            raw.listener.replay.clone_from(r);
        }
        if let Some(g) = &self.group {
            raw.multicast.group.clone_from(g);
        }
        if let Some(i) = &self.interface {
            raw.multicast.interface.clone_from(i);
        }
        if let Some(r) = &self.raw_tcp {
            raw.listener.raw_tcp = Some(r.clone());
        }
        if let Some(k) = &self.decryption_key {
            raw.listener.decryption_key = Some(k.clone());
            raw.listener.decryption_key_file = None;
        }
    }
}

impl Cli {
    /// Loads and validates the configuration with the flags applied. Also returns where it came from.
    pub fn load_config(&self) -> Result<(Config, String), ConfigError> {
        load_config(self.config.as_deref(), Path::new("."), &self.overrides)
    }
}

/// Loads `explicit`, else `p1.yml` in `dir` if it exists, else the defaults; applies `overrides`; validates.
pub fn load_config(
    explicit: Option<&Path>,
    dir: &Path,
    overrides: &Overrides,
) -> Result<(Config, String), ConfigError> {
    let (mut raw, origin) = RawConfig::locate(explicit, dir)?;
    overrides.apply(&mut raw);
    let mut config = raw.validate()?;
    config.read_key_file()?;
    Ok((config, origin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::config::Source;

    #[test]
    fn flags_override_before_validation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("p1.yml");
        std::fs::write(&file, "listener:\n  source: /dev/ttyAMA0\n  decryption_key_file: /nonexistent\n")
            .expect("write");
        let overrides = Overrides {
            source: Some("simulate".into()),
            replay: Some("max".into()),
            group: Some("239.255.1.2:5000".into()),
            interface: Some("127.0.0.1".into()),
            raw_tcp: Some("127.0.0.1:2001".into()),
            decryption_key: Some("00112233445566778899AABBCCDDEEFF".into()),
        };
        // The key file in the file would be an error; the flag's key replaces it.
        let (config, origin) = load_config(Some(&file), Path::new("/nonexistent"), &overrides).expect("valid");
        assert_eq!(origin, file.display().to_string());
        assert_eq!(config.listener.source, Source::Simulate);
        assert_eq!(config.listener.replay, shared::config::Replay::Max);
        assert_eq!(config.multicast.group.to_string(), "239.255.1.2:5000");
        assert_eq!(config.multicast.interface.to_string(), "127.0.0.1");
        assert_eq!(config.listener.raw_tcp.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:2001"));
        assert_eq!(config.listener.decryption_key.map(|k| k[0]), Some(0x00));
    }

    #[test]
    fn bad_flags_are_reported_with_every_other_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("p1.yml");
        std::fs::write(&file, "multicast:\n  ttl: 300\n").expect("write");
        let overrides = Overrides { group: Some("10.0.0.1:4141".into()), ..Overrides::default() };
        let err = load_config(Some(&file), Path::new("/nonexistent"), &overrides).expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("multicast.group: '10.0.0.1:4141'") && text.contains("multicast.ttl: '300'"), "{text}");
    }

    #[test]
    fn defaults_when_there_is_no_file() {
        let (config, origin) =
            load_config(None, Path::new("/nonexistent"), &Overrides::default()).expect("defaults are valid");
        assert_eq!(origin, "built-in defaults");
        assert_eq!(config.listener.source, Source::Serial("/dev/ttyUSB0".into()));
    }

    #[test]
    fn an_explicit_missing_file_is_an_error() {
        let err = load_config(Some(Path::new("/nonexistent/p1.yml")), Path::new("."), &Overrides::default())
            .expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/p1.yml"), "{err}");
    }

    #[test]
    fn subcommand_flags_win() {
        let cli = Cli::parse_from(["p1-listener", "--source", "simulate", "capture", "--source", "/dev/ttyUSB1"]);
        assert_eq!(cli.overrides.source.as_deref(), Some("/dev/ttyUSB1"));
        let cli = Cli::parse_from(["p1-listener", "--source", "file:cap.txt", "--speed", "max"]);
        assert_eq!(cli.overrides.replay.as_deref(), Some("max"));
        let cli = Cli::parse_from(["p1-listener", "parse", "cap.txt", "--stats", "--decryption-key", "AB"]);
        assert_eq!(cli.overrides.decryption_key.as_deref(), Some("AB"));
        // Every override flag is taken after either subcommand (capture refused --decryption-key before).
        let cli = Cli::parse_from(["p1-listener", "capture", "--decryption-key", "CD", "--source", "simulate"]);
        assert_eq!(
            (cli.overrides.decryption_key.as_deref(), cli.overrides.source.as_deref()),
            (Some("CD"), Some("simulate"))
        );
    }
}
