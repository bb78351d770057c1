//! The installer's tools: `p1-listener parse`, `p1-listener capture` and `p1-listener keygen`.
//!
//! `parse` runs a raw capture through the same engine as the listener and prints each valid telegram's message,
//! one JSON document per line, exactly as it would be published (same origin name, a fresh boot id, sequence
//! numbers from 1). Bad telegrams are counted, not fatal; only an unreadable input is an error.
//!
//! `capture` opens the configured source (detecting the port settings), saves the first valid telegram byte for
//! byte, and describes the meter.
//!
//! `keygen` makes a new LAN key for sealed datagrams (`multicast.key`, see `docs/sealed-datagrams.md`).

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use shared::config::Config;
use shared::engine::{Engine, Event};
use shared::wire::seal::{Key, KeyId};
use shared::wire::{self, Counters, Message, Origin, TelegramMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::health::{Health, SharedHealth};
use crate::pipeline::Pipeline;

/// Why `parse` stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The capture could not be opened or read.
    #[error("cannot read {path}")]
    Input {
        /// The input (`-` for standard input).
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The output could not be written (other than a closed pipe, which just ends the output).
    #[error("cannot write the output")]
    Output(#[source] io::Error),
    /// The input held no valid telegram.
    #[error(
        "no valid telegram in {path}: {bytes_read} bytes read, {} skipped as noise, {} frames discarded, {} CRC \
         failures, {} encrypted frames not decrypted",
        counters.discarded_bytes,
        counters.discarded_frames,
        counters.crc_failures,
        counters.decrypt_failures
    )]
    NothingFound {
        /// The input (`-` for standard input).
        path: String,
        /// Bytes read.
        bytes_read: u64,
        /// What the engine counted.
        counters: Counters,
    },
}

/// Parses the capture at `path` (`-`: standard input), writing messages to `out`; with `stats`, writes the
/// counters as one JSON object to `err` at the end. Returns the counters; input without any valid telegram is
/// [`ParseError::NothingFound`].
pub fn parse(
    path: &str,
    config: &Config,
    stats: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Counters, ParseError> {
    let input_error = |source| ParseError::Input { path: path.to_owned(), source };
    let mut input: Box<dyn Read> = if path == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).map_err(input_error)?)
    };
    let mut engine = Engine::new(crate::engine_options(config));
    let origin = Origin { listener: config.name.clone(), boot_id: crate::boot_id() };
    let mut seq = 0u64;
    let mut out = io::BufWriter::new(out);
    let mut buf = vec![0u8; 64 * 1024];
    let mut warned_config = false;
    let mut closed = false;
    let mut bytes_read = 0u64;
    'read: loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(input_error(e)),
        };
        bytes_read += n as u64;
        engine.push(&buf[..n], std::time::Instant::now());
        while let Some(event) = engine.next_event() {
            match event {
                Event::Telegram(checked) => {
                    seq += 1;
                    let message = checked.into_message(origin.clone(), seq, jiff::Timestamp::now());
                    let mut line = wire::encode(&Message::Telegram(Box::new(message)));
                    line.push(b'\n');
                    match out.write_all(&line) {
                        Ok(()) => {}
                        // `p1-listener parse cap.txt | head`: the reader has all it wants.
                        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                            closed = true;
                            break 'read;
                        }
                        Err(e) => return Err(ParseError::Output(e)),
                    }
                }
                Event::Rejected(r) if r.is_config_problem() && !warned_config => {
                    warned_config = true;
                    let _ = writeln!(err, "p1-listener: {r}");
                }
                Event::Rejected(_) => {}
            }
        }
    }
    if !closed {
        match out.flush() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            Err(e) => return Err(ParseError::Output(e)),
        }
    }
    let counters = engine.counters();
    if stats {
        let text = serde_json::to_string(&counters).unwrap_or_default();
        let _ = writeln!(err, "{text}");
    }
    if counters.telegrams == 0 {
        return Err(ParseError::NothingFound { path: path.to_owned(), bytes_read, counters });
    }
    Ok(counters)
}

/// What `capture` found.
#[derive(Debug)]
pub struct Captured {
    /// The telegram's message.
    pub message: Box<TelegramMessage>,
    /// Where the telegram was saved.
    pub saved_to: PathBuf,
    /// Its size.
    pub bytes: usize,
    /// The serial settings that produced it, for serial sources.
    pub port_settings: Option<&'static str>,
}

/// Reads the configured source until the first valid telegram (or `timeout`), saves it to `out` (default
/// `p1-capture-<UTC time>.txt`) and returns what was found.
pub async fn capture(config: &Config, out: Option<PathBuf>, timeout: Duration) -> anyhow::Result<Captured> {
    if let shared::config::Source::Serial(path) = &config.listener.source {
        // A device that cannot be opened at all (missing, no permission) is the answer now, not after the timeout.
        // The trial port is closed again before the source opens it (the port is opened exclusively).
        let mut trial = crate::serial::SerialConnector::new(path, config.listener.port_settings);
        if let Err(e) = crate::source::Connector::connect(&mut trial).await {
            anyhow::bail!("{}", crate::serial::open_advice(path, &e));
        }
    }
    let (tx, mut rx) = mpsc::channel(crate::pipeline::QUEUE);
    let health = SharedHealth::new(Health::new(tokio::time::Instant::now()));
    let origin = Origin { listener: config.name.clone(), boot_id: crate::boot_id() };
    let mut pipeline = Pipeline::new(crate::engine_options(config), origin, tx, None, health.clone());
    let token = CancellationToken::new();
    let source = crate::source::describe(&config.listener.source);
    let seed = crate::simulator_seed(&config.name);
    let first = {
        let run = crate::source::run(&config.listener, &mut pipeline, &token, seed);
        tokio::select! {
            item = rx.recv() => item,
            ended = run => {
                ended?;
                // A capture file can end before a valid telegram; whatever was queued still counts.
                rx.try_recv().ok()
            }
            () = tokio::time::sleep(timeout) => None,
        }
    };
    let counters = health.lock().counters();
    let Some(first) = first else {
        anyhow::bail!(
            "no valid telegram from {source} within {} s ({} bytes skipped, {} CRC failures): check the cable and \
             the device, that the meter's P1 port is enabled, and for serial devices try --source with another path",
            timeout.as_secs(),
            counters.discarded_bytes,
            counters.crc_failures
        );
    };
    let saved_to = out.unwrap_or_else(|| {
        PathBuf::from(format!("p1-capture-{}.txt", jiff::Timestamp::now().strftime("%Y%m%d-%H%M%SZ")))
    });
    std::fs::write(&saved_to, &first.raw).with_context(|| format!("saving the telegram to {}", saved_to.display()))?;
    let port_settings = health.lock().port_settings;
    Ok(Captured { message: first.message, saved_to, bytes: first.raw.len(), port_settings })
}

/// A human description of a captured telegram.
#[must_use]
pub fn describe(captured: &Captured, source: &str) -> String {
    let m = &captured.message;
    let v = &m.values;
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(s, "saved:          {} ({} bytes)", captured.saved_to.display(), captured.bytes);
    let _ = writeln!(s, "source:         {source}");
    if let Some(p) = captured.port_settings {
        let _ = writeln!(s, "port settings:  {p}");
    }
    let dialect = wire_name(&m.dialect);
    let _ = writeln!(s, "dialect:        {dialect}");
    let _ = writeln!(s, "version:        {}", v.version.as_deref().unwrap_or("(not sent)"));
    let manufacturer: String = m.header.chars().take(3).collect();
    let _ = writeln!(s, "manufacturer:   {manufacturer} (identification /{})", m.header);
    let _ = writeln!(s, "equipment id:   {}", v.equipment_id.as_deref().unwrap_or("(not sent)"));
    let _ = writeln!(s, "CRC:            {}", wire_name(&m.crc));
    let _ = match shared::telegram::home_assistant_version(m.dialect, &m.header) {
        Some(version) => writeln!(s, "Home Assistant: DSMR version \"{version}\""),
        None => writeln!(s, "Home Assistant: no DSMR version fits this meter (use the multicast messages)"),
    };
    if v.devices.is_empty() {
        let _ = writeln!(s, "M-Bus devices:  none");
    }
    for (i, d) in v.devices.iter().enumerate() {
        let label = if i == 0 { "M-Bus devices:" } else { "" };
        let kind = wire_name(&d.kind);
        let mut line = format!("{label:<15} channel {}: {kind}", d.channel);
        if let Some(t) = d.type_code {
            let _ = write!(line, " (type {t})");
        }
        if let Some(id) = &d.id {
            let _ = write!(line, ", id {id}");
        }
        if let Some(value) = &d.value {
            let _ = write!(line, ", {value} {}", d.unit.as_deref().unwrap_or(""));
        }
        if let Some(at) = &d.at {
            let _ = write!(line, " at {}", wire_name(at));
        }
        let _ = writeln!(s, "{}", line.trim_end());
    }
    s
}

/// `p1-listener keygen`: a new random LAN key. Without `file`, writes only the key (64 hex digits and a newline)
/// to `out`, so it can be redirected; with `file`, creates that file readable by its owner only (never replacing
/// one) and writes the key there. Either way `note` gets the key id and what to do with the key; never the key.
pub fn keygen(file: Option<&Path>, out: &mut dyn Write, note: &mut dyn Write) -> anyhow::Result<KeyId> {
    let key = Key::generate().context("making a key")?;
    let line = zeroize::Zeroizing::new(format!("{}\n", key.to_hex().as_str()));
    match file {
        None => {
            out.write_all(line.as_bytes()).context("writing the key")?;
            writeln!(
                note,
                "p1-listener keygen: key id {}. Put the key in multicast.key, or in a file that only its owner can \
                 read (multicast.key_file; e.g. (umask 077; p1-listener keygen > /etc/p1hub/lan.key)), on every host.",
                key.id()
            )?;
        }
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options
                .open(path)
                .with_context(|| format!("creating {} (an existing file is never replaced)", path.display()))?;
            f.write_all(line.as_bytes())
                .and_then(|()| f.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            writeln!(
                note,
                "p1-listener keygen: wrote a new key (id {}) to {}, readable by its owner only. Copy it to every host \
                 and set multicast.key_file: {} in p1.yml.",
                key.id(),
                path.display(),
                path.display()
            )?;
        }
    }
    Ok(key.id())
}

/// A value as the message writes it (`nl-5`, `gas`, an RFC 3339 time), for people to read.
fn wire_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::config::RawConfig;
    use shared::simulate::Simulator;
    use std::path::Path;

    fn config() -> Config {
        RawConfig { name: Some("meterkast".into()), ..RawConfig::default() }.validate().expect("valid")
    }

    fn capture_file(dir: &Path) -> PathBuf {
        let mut sim = Simulator::new(4);
        let mut bytes = b"\xff\xffgarbage".to_vec();
        for s in 0..3 {
            let at = jiff::Timestamp::from_second(1_717_243_200 + s).expect("in range");
            bytes.extend(sim.telegram_at(at.to_zoned(jiff::tz::TimeZone::UTC)));
        }
        // A damaged copy of the last one: a flipped digit fails its CRC.
        let mut bad =
            sim.telegram_at(jiff::Timestamp::from_second(1_717_243_210).expect("t").to_zoned(jiff::tz::TimeZone::UTC));
        let i = bad.iter().position(|&b| b == b'(').expect("value") + 1;
        bad[i] ^= 1;
        bytes.extend(bad);
        let path = dir.join("capture.txt");
        std::fs::write(&path, bytes).expect("write");
        path
    }

    #[test]
    fn parse_prints_one_message_per_valid_telegram_and_stats() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = capture_file(dir.path());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let counters = parse(&path.display().to_string(), &config(), true, &mut out, &mut err).expect("parsed");
        let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 3);
        for (i, line) in lines.iter().enumerate() {
            let Message::Telegram(t) = wire::parse(line).expect("a valid datagram") else { panic!("not a telegram") };
            assert_eq!((t.seq, t.origin.listener.as_str()), (i as u64 + 1, "meterkast"));
        }
        let stats: serde_json::Value = serde_json::from_slice(&err).expect("JSON stats");
        assert_eq!(stats["telegrams"], 3);
        assert_eq!(stats["crc_failures"], 1);
        assert_eq!(stats["discarded_bytes"], 9);
        assert_eq!(counters.crc_failures, 1);
    }

    #[test]
    fn an_unreadable_capture_is_an_error() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let e = parse("/nonexistent/capture.txt", &config(), false, &mut out, &mut err).expect_err("missing");
        assert!(e.to_string().contains("cannot read /nonexistent/capture.txt"), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        let e =
            parse(&dir.path().display().to_string(), &config(), false, &mut out, &mut err).expect_err("a directory");
        assert!(matches!(e, ParseError::Input { .. }), "{e}");
    }

    #[test]
    fn parse_of_input_without_a_telegram_is_an_error_with_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("noise.txt");
        let mut bytes = b"/\x8f\xe3\r\n\x9a!\r\n".to_vec();
        bytes.extend(b"xx");
        std::fs::write(&path, &bytes).expect("write");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let e = parse(&path.display().to_string(), &config(), false, &mut out, &mut err).expect_err("nothing");
        assert!(out.is_empty());
        let ParseError::NothingFound { bytes_read, counters, .. } = &e else { panic!("{e}") };
        assert_eq!((*bytes_read, counters.discarded_bytes, counters.discarded_frames), (11, 11, 1));
        assert!(e.to_string().contains("no valid telegram in") && e.to_string().contains("11 bytes read"), "{e}");
    }

    #[tokio::test]
    async fn capture_saves_the_first_telegram_and_describes_the_meter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = capture_file(dir.path());
        let mut raw = RawConfig::default();
        raw.listener.source = format!("file:{}", path.display());
        raw.listener.replay = "max".into();
        let config = raw.validate().expect("valid");
        let out = dir.path().join("one.txt");
        let captured = capture(&config, Some(out.clone()), Duration::from_secs(5)).await.expect("captured");
        let saved = std::fs::read(&out).expect("saved");
        assert!(saved.starts_with(b"/SIM5") && saved.ends_with(b"\r\n"));
        assert_eq!(captured.bytes, saved.len());
        let text = describe(&captured, "file:capture.txt");
        assert!(text.contains("dialect:        nl-5"), "{text}");
        assert!(text.contains("manufacturer:   SIM"), "{text}");
        assert!(text.contains("channel 1: gas (type 3)") && text.contains("channel 2: water (type 7)"), "{text}");
        assert!(text.contains("Home Assistant: DSMR version \"5\""), "{text}");
    }

    #[test]
    fn keygen_prints_a_new_key_and_only_the_key() {
        let (mut out, mut note) = (Vec::new(), Vec::new());
        let id = keygen(None, &mut out, &mut note).expect("a key");
        let text = String::from_utf8(out).expect("text");
        assert!(text.ends_with('\n') && text.trim_end().len() == 64, "{text:?}");
        let key = Key::parse(&text).expect("the printed key parses");
        assert_eq!(key.id(), id);
        let note = String::from_utf8(note).expect("text");
        assert!(note.contains(&id.to_string()) && note.contains("multicast.key"), "{note}");
        assert!(!note.contains(text.trim_end()), "the note never holds the key: {note}");
        // A second key is another key.
        let mut again = Vec::new();
        keygen(None, &mut again, &mut Vec::new()).expect("a key");
        assert_ne!(Key::parse(std::str::from_utf8(&again).expect("text")).expect("parses"), key);
    }

    #[test]
    fn keygen_writes_an_owner_only_file_and_never_replaces_one() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lan.key");
        let (mut out, mut note) = (Vec::new(), Vec::new());
        let id = keygen(Some(&path), &mut out, &mut note).expect("written");
        assert!(out.is_empty(), "the key goes to the file only");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(Key::parse(&text).expect("parses").id(), id);
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        let note = String::from_utf8(note).expect("text");
        assert!(note.contains(&path.display().to_string()) && !note.contains(text.trim_end()), "{note}");
        // The file is read by the configuration without a warning.
        let yaml = format!("multicast:\n  key_file: {}\n", path.display());
        let mut config = RawConfig::from_yaml(&yaml, "t.yml").expect("parses").validate().expect("valid");
        assert_eq!(config.read_multicast_keys().expect("read"), Vec::<String>::new());
        assert_eq!(config.multicast.keyring().map(|r| r.current().id()), Some(id));

        let err = keygen(Some(&path), &mut out, &mut Vec::new()).expect_err("exists");
        assert!(format!("{err:#}").contains("never replaced"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), text, "the old key is kept");
    }

    #[tokio::test]
    async fn capture_says_what_to_check_when_nothing_valid_arrives() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("noise.txt");
        std::fs::write(&path, vec![0xFFu8; 5000]).expect("write");
        let mut raw = RawConfig::default();
        raw.listener.source = format!("file:{}", path.display());
        let config = raw.validate().expect("valid");
        let err = capture(&config, Some(dir.path().join("x")), Duration::from_secs(5)).await.expect_err("nothing");
        assert!(
            err.to_string().contains("no valid telegram") && err.to_string().contains("5000 bytes skipped"),
            "{err}"
        );
    }
}
