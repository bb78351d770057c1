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
    /// Local address of the interface to join on, overriding multicast.interface.
    #[arg(long, value_name = "IP")]
    pub interface: Option<String>,
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

/// The configuration file looked for in the current directory when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = shared::config::DEFAULT_FILE;

impl Args {
    /// The file the configuration comes from, looking in `dir` when `--config` is not given (`None`: defaults).
    #[must_use]
    pub fn config_file(&self, dir: &Path) -> Option<PathBuf> {
        self.config.clone().or_else(|| Some(dir.join(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()))
    }

    /// The raw configuration with the flags applied, not yet validated, looking for `p1.yml` in `dir`.
    pub fn raw_config_in(&self, dir: &Path) -> Result<RawConfig, ConfigError> {
        let (mut raw, _) = RawConfig::locate(self.config.as_deref(), dir)?;
        if let Some(group) = &self.group {
            raw.multicast.group.clone_from(group);
        }
        if let Some(interface) = &self.interface {
            raw.multicast.interface.clone_from(interface);
        }
        Ok(raw)
    }

    /// The validated configuration, looking for `p1.yml` in the current directory.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        self.raw_config_in(Path::new("."))?.validate()
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
        let config = args.load_config().expect("valid");
        assert_eq!(config.multicast.group.to_string(), "239.1.2.3:99");
        assert_eq!(config.multicast.interface.to_string(), "127.0.0.1");
    }

    #[test]
    fn bad_flags_are_reported_with_the_key_they_override() {
        let args = Args::parse_from(["p1-dashboard", "--group", "10.0.0.1:99", "--interface", "eth0"]);
        let err = args.load_config().expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("2 invalid settings"), "{text}");
        assert!(text.contains("multicast.group: '10.0.0.1:99'"), "{text}");
        assert!(text.contains("multicast.interface: 'eth0'"), "{text}");
    }

    #[test]
    fn p1_yml_in_the_directory_is_the_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let none = Args::parse_from(["p1-dashboard"]);
        assert_eq!(none.config_file(dir.path()), None);
        assert_eq!(none.raw_config_in(dir.path()).expect("defaults"), RawConfig::default());
        std::fs::write(dir.path().join("p1.yml"), "dashboard:\n  stale_secs: 42\n").expect("write");
        assert_eq!(none.raw_config_in(dir.path()).expect("file").dashboard.stale_secs, 42);
        let explicit = Args::parse_from(["p1-dashboard", "--config", "/elsewhere.yml"]);
        assert_eq!(explicit.config_file(dir.path()), Some(PathBuf::from("/elsewhere.yml")));
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let args = Args::parse_from(["p1-dashboard", "--config", "/nonexistent/p1.yml"]);
        let err = args.load_config().expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/p1.yml"), "{err}");
    }
}
