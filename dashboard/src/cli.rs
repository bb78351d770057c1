//! The command line: `p1-dashboard [--config p1.yml] [--group ADDR:PORT] [--interface IP] ...`.
//!
//! The configuration is `--config FILE` if given, else `p1.yml` in the current directory if there is one (as for
//! p1-listener), else the built-in defaults. Flags override the file's values *before* validation, so a bad
//! `--group` is reported like a bad `multicast.group` in the file, together with every other bad value.

use std::path::{Path, PathBuf};

use clap::Parser;
use shared::config::{Config, ConfigError, RawConfig};

/// A live terminal view of the P1 meters on the multicast group.
#[derive(Clone, Debug, Default, Parser)]
#[command(name = "p1-dashboard", version, about, long_about = None)]
pub struct Args {
    /// The configuration file (default: ./p1.yml if it exists, else the built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Multicast group to join, overriding multicast.group.
    #[arg(long, value_name = "ADDR:PORT")]
    pub group: Option<String>,
    /// Local address or name (eth0) of the interface to join on, overriding multicast.interface.
    #[arg(long, value_name = "IP")]
    pub interface: Option<String>,
    /// File holding the LAN key for sealed datagrams, overriding `multicast.key_file` and `multicast.key`.
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<String>,
    /// Print the documented default configuration and exit.
    #[arg(long)]
    pub print_default_config: bool,
    /// Check the configuration (file and flags), print the problems if any, and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Write diagnostics to this file (the terminal belongs to the dashboard). Level from `RUST_LOG`, default info.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
}

impl Args {
    /// The raw configuration with the flags applied, not yet validated, looking for `p1.yml` in `dir`. Also returns
    /// where it came from (the file, or "built-in defaults"), for `--check-config`.
    pub fn raw_config_in(&self, dir: &Path) -> Result<(RawConfig, String), ConfigError> {
        let (mut raw, origin) = RawConfig::locate(self.config.as_deref(), dir)?;
        if let Some(group) = &self.group {
            raw.multicast.group.clone_from(group);
        }
        if let Some(interface) = &self.interface {
            raw.multicast.interface.clone_from(interface);
        }
        if let Some(f) = &self.key_file {
            raw.multicast.key_file = Some(f.clone());
            raw.multicast.key = None;
        }
        Ok((raw, origin))
    }

    /// The validated configuration with its key files read, looking for `p1.yml` in the current directory, and
    /// where it came from.
    pub fn load_config(&self) -> Result<(Config, String), ConfigError> {
        self.load_config_with_warnings().map(|(config, origin, _)| (config, origin))
    }

    /// As [`Args::load_config`], with the warnings about key files (one readable by others).
    pub fn load_config_with_warnings(&self) -> Result<(Config, String, Vec<String>), ConfigError> {
        let (raw, origin) = self.raw_config_in(Path::new("."))?;
        let mut config = raw.validate()?;
        let warnings = config.read_multicast_keys()?;
        Ok((config, origin, warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p1.yml");
        std::fs::write(&path, "multicast:\n  group: 239.255.1.1:1000\n  interface: 127.0.0.1\n").expect("write");
        let args =
            Args::parse_from(["p1-dashboard", "--config", path.to_str().expect("utf-8"), "--group", "239.1.2.3:99"]);
        let (config, origin) = args.load_config().expect("valid");
        assert_eq!(origin, path.display().to_string());
        assert_eq!(config.multicast.group.to_string(), "239.1.2.3:99");
        assert_eq!(config.multicast.interface.to_string(), "127.0.0.1");
    }

    #[test]
    fn bad_flags_are_reported_with_the_key_they_override() {
        // `eth0` is a valid interface now (a name); `eth0/1` is not.
        let args = Args::parse_from(["p1-dashboard", "--group", "10.0.0.1:99", "--interface", "eth0/1"]);
        let err = args.load_config().expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("2 invalid settings"), "{text}");
        assert!(text.contains("multicast.group: '10.0.0.1:99'"), "{text}");
        assert!(text.contains("multicast.interface: 'eth0/1'"), "{text}");
    }

    #[test]
    fn p1_yml_in_the_directory_is_the_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let none = Args::parse_from(["p1-dashboard"]);
        let defaults = none.raw_config_in(dir.path()).expect("defaults");
        assert_eq!(defaults, (RawConfig::default(), "built-in defaults".to_owned()));
        let file = dir.path().join("p1.yml");
        std::fs::write(&file, "dashboard:\n  stale_secs: 42\n").expect("write");
        let (raw, origin) = none.raw_config_in(dir.path()).expect("file");
        assert_eq!((raw.dashboard.stale_secs, origin), (42, file.display().to_string()));
    }

    #[test]
    fn key_file_makes_it_sealed_and_reads_the_key() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lan.key");
        std::fs::write(&path, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let args = Args::parse_from(["p1-dashboard", "--key-file", path.to_str().expect("utf-8")]);
        let (config, _, warnings) = args.load_config_with_warnings().expect("valid");
        assert_eq!(config.multicast.security, shared::config::Security::Sealed);
        assert_eq!(config.multicast.keyring().map(|r| r.current().id().to_string()).as_deref(), Some("686321c8"));
        assert!(warnings.iter().any(|w| w.contains("chmod 600")), "readable by others: {warnings:?}");
        let missing = Args::parse_from(["p1-dashboard", "--key-file", "/nonexistent/lan.key"]);
        assert!(missing.load_config().expect_err("no key file").to_string().contains("multicast.key_file"));
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let args = Args::parse_from(["p1-dashboard", "--config", "/nonexistent/p1.yml"]);
        let err = args.load_config().expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/p1.yml"), "{err}");
    }
}
