//! The command line: flags, where the configuration comes from, and the signals that stop the bridge.
//!
//! The configuration is `--config FILE`, else `p1.yml` in the working directory if there is one, else the
//! built-in defaults. Flags override the file's values before validation, so a bad flag is reported like a bad
//! key, together with every other bad value.

use std::path::{Path, PathBuf};

use clap::Parser;
use shared::config::{Config, ConfigError, RawConfig};

/// `p1-bridge`: subscribe to p1hub listeners and forward every telegram to MQTT (with Home Assistant discovery).
#[derive(Debug, Default, Parser)]
#[command(name = "p1-bridge", version, about, long_about = None)]
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
    /// File holding the LAN key for sealed datagrams (overrides `multicast.key_file` and `multicast.key`).
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<String>,
    /// MQTT broker, mqtt://HOST:PORT or mqtts://HOST:PORT (overrides bridge.mqtt.url; "off" disables).
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<String>,
    /// Serve HTTP on ADDR:PORT: HomeWizard API, /metrics, live page (overrides bridge.http.listen; "off" disables).
    #[arg(long, value_name = "ADDR:PORT")]
    pub http: Option<String>,
    /// Print the documented default p1.yml and exit.
    #[arg(long)]
    pub print_default_config: bool,
    /// Check the configuration (file and flags), report every problem, and exit.
    #[arg(long)]
    pub check_config: bool,
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
        if let Some(u) = &self.mqtt {
            raw.bridge.mqtt.url = Some(u.clone());
        }
        if let Some(f) = &self.key_file {
            raw.multicast.key_file = Some(f.clone());
            raw.multicast.key = None;
        }
        if let Some(h) = &self.http {
            raw.bridge.http.listen = Some(h.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_before_validation() {
        let args = Args::parse_from([
            "p1-bridge",
            "--group",
            "239.255.9.9:5000",
            "--interface",
            "127.0.0.1",
            "--mqtt",
            "mqtts://broker.lan",
        ]);
        let mut raw = RawConfig::from_yaml("bridge:\n  mqtt:\n    url: mqtt://old:1883\n", "t.yml").expect("yaml");
        args.apply(&mut raw);
        let config = raw.validate().expect("valid");
        assert_eq!(config.multicast.group, "239.255.9.9:5000".parse().expect("addr"));
        let m = config.bridge.mqtt.expect("mqtt on");
        assert_eq!((m.host.as_str(), m.port, m.tls), ("broker.lan", 8883, true));
    }

    #[test]
    fn key_file_makes_it_sealed_and_reads_the_key() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lan.key");
        let key = shared::wire::seal::Key::generate().expect("a key");
        std::fs::write(&path, key.to_hex().as_str()).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let config = dir.path().join("p1.yml");
        std::fs::write(&config, "").expect("write");
        let args = Args::parse_from([
            "p1-bridge",
            "--config",
            config.to_str().expect("utf-8"),
            "--key-file",
            path.to_str().expect("utf-8"),
        ]);
        let (config, _, warnings) = args.load().expect("valid");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.multicast.security, shared::config::Security::Sealed);
        assert_eq!(config.multicast.key.as_ref().map(shared::wire::seal::Key::id), Some(key.id()));
    }

    #[test]
    fn bad_flags_are_reported_with_the_other_errors() {
        let args = Args::parse_from(["p1-bridge", "--group", "10.0.0.1:4141", "--mqtt", "http://broker"]);
        let mut raw = RawConfig::from_yaml("bridge:\n  mqtt:\n    qos: 2\n", "t.yml").expect("yaml");
        args.apply(&mut raw);
        let err = raw.validate().expect_err("invalid").to_string();
        for key in ["multicast.group", "bridge.mqtt.url", "bridge.mqtt.qos"] {
            assert!(err.contains(key), "{key} missing from: {err}");
        }
        let http = Args::parse_from(["p1-bridge", "--http", "127.0.0.1:8480"]);
        let mut raw = RawConfig::default();
        http.apply(&mut raw);
        let h = raw.validate().expect("valid").bridge.http.expect("http on");
        assert_eq!(h.listen, "127.0.0.1:8480".parse().expect("addr"));
        let off = Args::parse_from(["p1-bridge", "--mqtt", "off"]);
        let mut raw = RawConfig::from_yaml("bridge:\n  mqtt:\n    url: mqtt://x\n", "t.yml").expect("yaml");
        off.apply(&mut raw);
        assert!(raw.validate().expect("valid").bridge.mqtt.is_none());
    }
}
