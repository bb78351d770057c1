//! The serial device source, with port settings detection.
//!
//! DSMR 4/5, Belgian and Luxembourg meters send at 115200 baud 8N1, DSMR 2.2/3.0 at 9600 7E1. With `auto` the
//! connector starts at 115200-8N1; whenever the detection window ([`crate::source::DETECT`]) passes without a
//! valid telegram, it switches the open port to the other settings in place. A CRC-checked telegram locks the
//! settings that produced it (also for later reopens); telegrams without CRC (DSMR 2.2/3.0) lock them only when
//! [`crate::pipeline::CRCLESS_TO_CONFIRM`] come in a row, so that one stray frame of noise cannot. On a
//! pseudo-terminal the speed means nothing, but the same code runs. The port is opened exclusively (`TIOCEXCL`),
//! so a second program cannot read half the bytes.

use std::io;
use std::path::{Path, PathBuf};

use shared::config::PortSettings;
use tokio_serial::{ClearBuffer, DataBits, FlowControl, Parity, SerialPort, SerialStream, StopBits};

use crate::source::Connector;

/// One serial configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// As written in `p1.yml` and status datagrams.
    pub name: &'static str,
    /// Baud rate.
    pub baud: u32,
    /// Data bits.
    pub data_bits: DataBits,
    /// Parity.
    pub parity: Parity,
}

/// DSMR 4/5, e-MUCS, Smarty.
pub const BAUD_115200_8N1: Settings =
    Settings { name: "115200-8N1", baud: 115_200, data_bits: DataBits::Eight, parity: Parity::None };
/// DSMR 2.2/3.0.
pub const BAUD_9600_7E1: Settings =
    Settings { name: "9600-7E1", baud: 9600, data_bits: DataBits::Seven, parity: Parity::Even };

/// Opens a serial device with the configured (or detected) settings.
#[derive(Debug)]
pub struct SerialConnector {
    path: PathBuf,
    candidates: &'static [Settings],
    index: usize,
    locked: bool,
    /// Switches since the last lock: only the first round is logged at info level.
    switches: usize,
}

impl SerialConnector {
    /// A connector for `path`.
    #[must_use]
    pub fn new(path: &Path, settings: PortSettings) -> Self {
        let candidates: &'static [Settings] = match settings {
            PortSettings::Auto => &[BAUD_115200_8N1, BAUD_9600_7E1],
            PortSettings::Baud115200_8N1 => &[BAUD_115200_8N1],
            PortSettings::Baud9600_7E1 => &[BAUD_9600_7E1],
        };
        SerialConnector { path: path.to_owned(), candidates, index: 0, locked: false, switches: 0 }
    }

    fn current(&self) -> Settings {
        self.candidates[self.index % self.candidates.len()]
    }
}

impl Connector for SerialConnector {
    type Stream = SerialStream;

    fn name(&self) -> String {
        self.path.display().to_string()
    }

    async fn connect(&mut self) -> io::Result<SerialStream> {
        let s = self.current();
        let builder = tokio_serial::new(self.path.to_string_lossy(), s.baud)
            .data_bits(s.data_bits)
            .parity(s.parity)
            .stop_bits(StopBits::One)
            .flow_control(FlowControl::None);
        SerialStream::open(&builder).map_err(io::Error::from)
    }

    fn detecting(&self) -> bool {
        self.candidates.len() > 1 && !self.locked
    }

    fn switch_settings(&mut self, stream: &mut SerialStream) -> io::Result<()> {
        let from = self.current();
        self.index = (self.index + 1) % self.candidates.len();
        let to = self.current();
        stream.set_baud_rate(to.baud)?;
        stream.set_data_bits(to.data_bits)?;
        stream.set_parity(to.parity)?;
        // Bytes read at the old speed are garbage; do not feed them to the framer at the new one.
        stream.clear(ClearBuffer::Input)?;
        self.switches += 1;
        if self.switches <= self.candidates.len() {
            tracing::info!(from = from.name, to = to.name, "no valid telegram yet: trying other port settings");
        } else {
            tracing::debug!(from = from.name, to = to.name, "no valid telegram yet: trying other port settings");
        }
        Ok(())
    }

    fn lock(&mut self) {
        if self.detecting() {
            tracing::info!(settings = self.current().name, "valid telegrams: port settings locked");
        }
        self.locked = true;
        self.switches = 0;
    }

    fn settings(&self) -> Option<&'static str> {
        Some(self.current().name)
    }

    fn advice(&self, error: &io::Error) -> Option<String> {
        Some(open_advice(&self.path, error))
    }
}

/// What to do when `path` cannot be opened as a serial port, for people: the cause and the fix.
#[must_use]
pub fn open_advice(path: &Path, error: &io::Error) -> String {
    let path = path.display();
    match error.kind() {
        io::ErrorKind::NotFound => format!(
            "{path} does not exist: check that the P1 cable's USB adapter is plugged in, then list the serial \
             devices with `ls -l /dev/serial/by-id/` and set that path as listener.source (or --source)"
        ),
        io::ErrorKind::PermissionDenied => format!(
            "permission denied opening {path}: add the user to the dialout group (`sudo usermod -aG dialout \
             $USER`, then log out and in again; the p1hub service user is in it already), and check the device \
             with `ls -l {path}`"
        ),
        _ => format!(
            "{path} cannot be opened as a serial port ({error}): is it a serial device? The P1 cable's adapter is \
             listed in /dev/serial/by-id/; another program may also hold the port"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_tries_both_settings_and_fixed_settings_do_not_detect() {
        let auto = SerialConnector::new(Path::new("/dev/null"), PortSettings::Auto);
        assert!(auto.detecting());
        assert_eq!(auto.settings(), Some("115200-8N1"));
        let fixed = SerialConnector::new(Path::new("/dev/null"), PortSettings::Baud9600_7E1);
        assert!(!fixed.detecting());
        assert_eq!(fixed.settings(), Some("9600-7E1"));
    }

    #[tokio::test]
    async fn a_missing_device_is_an_error_not_a_panic() {
        let mut c = SerialConnector::new(Path::new("/dev/does-not-exist-p1hub"), PortSettings::Auto);
        let err = c.connect().await.expect_err("missing");
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }

    #[test]
    fn open_errors_say_what_to_do() {
        let missing = open_advice(Path::new("/dev/ttyUSB7"), &io::Error::from(io::ErrorKind::NotFound));
        assert!(missing.contains("/dev/ttyUSB7 does not exist") && missing.contains("/dev/serial/by-id/"), "{missing}");
        let denied = open_advice(Path::new("/dev/ttyUSB0"), &io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(denied.contains("permission denied") && denied.contains("dialout"), "{denied}");
        let other = open_advice(Path::new("/tmp"), &io::Error::other("Is a directory"));
        assert!(other.contains("cannot be opened as a serial port (Is a directory)"), "{other}");
    }

    #[tokio::test]
    async fn settings_switch_in_place_on_a_pseudo_terminal() {
        let (_master, slave) = SerialStream::pair().expect("a pty pair");
        let path = slave.name().expect("the slave has a path");
        let mut c = SerialConnector::new(Path::new(&path), PortSettings::Auto);
        let mut port = c.connect().await.expect("open the pty");
        c.switch_settings(&mut port).expect("switch to 9600-7E1");
        // A pty keeps the speed but forces 8 data bits without parity, so only the speed can be read back.
        assert_eq!((c.settings(), port.baud_rate().expect("read back")), (Some("9600-7E1"), 9600));
        c.lock();
        assert!(!c.detecting());
    }
}
