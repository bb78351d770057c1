//! The serial device source, with port settings detection.
//!
//! DSMR 4/5, Belgian and Luxembourg meters send at 115200 baud 8N1, DSMR 2.2/3.0 at 9600 7E1. With `auto` the
//! connector starts at 115200-8N1; whenever the detection window ([`crate::source::DETECT`]) passes without a
//! valid telegram, it switches the open port to the other settings in place. A CRC-checked telegram locks the
//! settings that produced it (also for later reopens); telegrams without CRC (DSMR 2.2/3.0) lock them only when
//! [`crate::pipeline::CRCLESS_TO_CONFIRM`] come in a row, so that one stray frame of noise cannot. On a
//! pseudo-terminal the speed means nothing, but the same code runs. The port is opened exclusively (`TIOCEXCL`),
//! so a second program cannot read half the bytes.

use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use serialport::TTYPort;
use shared::config::PortSettings;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;
use tokio_serial::{ClearBuffer, DataBits, FlowControl, Parity, SerialPort, StopBits};

use crate::source::{Coalescer, Connector};

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

/// Chunks read by the reader thread, waiting for the engine: a telegram is a few chunks.
const CHUNKS: usize = 16;

/// How long the reader thread waits in one read before it looks whether the port is still wanted: an idle port
/// costs one wakeup per this period.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// An open serial port read by a thread of its own, with blocking reads.
///
/// Why a thread: in the runtime, every chunk the line delivers (16 bytes every 1.4 ms from many USB adapters at
/// 115 200 baud) wakes the process through epoll, even while the reader waits on purpose to take a telegram in
/// fewer reads. The thread sleeps outright during such a hold ([`Coalescer`]): nobody waits on the port, so
/// arriving bytes wake nothing, and the kernel buffers them (4 KiB line discipline buffer, more than a hold
/// gathers). A telegram then costs a handful of reads (its first chunk, everything up to shortly before its
/// predicted end, the last chunks), each handed to the engine as one chunk. The thread ends when the port is
/// dropped (at its next read) or fails.
#[derive(Debug)]
pub struct ThreadedPort {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    /// A chunk partly handed out.
    pending: Vec<u8>,
    offset: usize,
    /// A second handle on the same port for settings (the thread owns the first).
    control: TTYPort,
}

impl ThreadedPort {
    /// Starts reading `port` on a new thread.
    ///
    /// # Errors
    /// The port cannot be duplicated or the thread cannot be started.
    pub fn start(mut port: TTYPort) -> io::Result<Self> {
        let control = port.try_clone_native().map_err(io::Error::from)?;
        port.set_timeout(READ_TIMEOUT).map_err(io::Error::from)?;
        let (tx, chunks) = mpsc::channel(CHUNKS);
        std::thread::Builder::new().name("p1-serial".into()).spawn(move || read_loop(port, &tx))?;
        Ok(ThreadedPort { chunks, pending: Vec::new(), offset: 0, control })
    }

    /// The speed set on the port.
    ///
    /// # Errors
    /// The settings cannot be read.
    pub fn baud_rate(&self) -> io::Result<u32> {
        self.control.baud_rate().map_err(io::Error::from)
    }

    fn switch(&mut self, to: Settings) -> io::Result<()> {
        self.control.set_baud_rate(to.baud)?;
        self.control.set_data_bits(to.data_bits)?;
        self.control.set_parity(to.parity)?;
        // Bytes read at the old speed are garbage; do not feed them to the framer at the new one.
        self.control.clear(ClearBuffer::Input)?;
        while self.chunks.try_recv().is_ok() {}
        self.pending.clear();
        self.offset = 0;
        Ok(())
    }
}

/// How much longer than predicted the last read of a telegram may wait for the telegram's last bytes, before it
/// takes whatever is there (a telegram shorter than the one before).
const TAIL_SLACK: Duration = Duration::from_millis(20);

/// Sets termios `VMIN` (with `VTIME` 0): the kernel reports the port readable only once that many bytes are in.
fn set_vmin(fd: std::os::fd::RawFd, n: u8) -> nix::Result<()> {
    use nix::sys::termios::{tcgetattr, tcsetattr, SetArg, SpecialCharacterIndices};
    let mut t = tcgetattr(fd)?;
    t.control_chars[SpecialCharacterIndices::VMIN as usize] = n;
    t.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    tcsetattr(fd, SetArg::TCSANOW, &t)
}

/// The reader thread: blocking reads, a hold mid-telegram, one read for the telegram's last bytes (`VMIN`), chunks
/// to the runtime.
fn read_loop(mut port: TTYPort, tx: &mpsc::Sender<io::Result<Vec<u8>>>) {
    use std::os::fd::AsRawFd as _;
    let fd = port.as_raw_fd();
    let mut buf = vec![0u8; 16 * 1024];
    let mut coalescer = Coalescer::default();
    // Whether VMIN is raised for a telegram's tail, and whether that failed for the current frame.
    let (mut tail_mode, mut tail_missed) = (false, false);
    loop {
        if tx.is_closed() {
            return;
        }
        let tail = coalescer.tail().filter(|&(rest, _)| (2..=255).contains(&rest) && !tail_missed);
        match tail {
            Some((rest, expected)) => {
                // The last bytes of the telegram in one read: wake when they are all in, or a little after they
                // were due. `rest` fits: filtered to 2..=255.
                let vmin = u8::try_from(rest).unwrap_or(u8::MAX);
                if set_vmin(fd, vmin).is_ok() && port.set_timeout(expected + TAIL_SLACK).is_ok() {
                    tail_mode = true;
                }
            }
            None if tail_mode => {
                let _ = set_vmin(fd, 1);
                let _ = port.set_timeout(READ_TIMEOUT);
                tail_mode = false;
            }
            None => {}
        }
        match port.read(&mut buf) {
            Ok(n) => {
                let end = n == 0;
                let now = tokio::time::Instant::now();
                coalescer.observe(&buf[..n], now);
                tail_missed = false;
                if tx.blocking_send(Ok(buf[..n].to_vec())).is_err() || end {
                    return;
                }
                if let Some(until) = coalescer.hold_until(now) {
                    std::thread::sleep(until.saturating_duration_since(now));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                // In tail mode: the telegram is shorter than the last one; read what is there, chunk by chunk.
                tail_missed = tail_mode;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    }
}

impl AsyncRead for ThreadedPort {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.offset >= this.pending.len() {
            match this.chunks.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                // The thread is gone without a word: treat as the end of the stream.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(Some(Ok(chunk))) => {
                    this.pending = chunk;
                    this.offset = 0;
                }
            }
        }
        let n = buf.remaining().min(this.pending.len() - this.offset);
        buf.put_slice(&this.pending[this.offset..this.offset + n]);
        this.offset += n;
        Poll::Ready(Ok(()))
    }
}

impl Connector for SerialConnector {
    type Stream = ThreadedPort;

    fn name(&self) -> String {
        self.path.display().to_string()
    }

    async fn connect(&mut self) -> io::Result<ThreadedPort> {
        let s = self.current();
        // Opened exclusively (TIOCEXCL) by serialport.
        let port = tokio_serial::new(self.path.to_string_lossy(), s.baud)
            .data_bits(s.data_bits)
            .parity(s.parity)
            .stop_bits(StopBits::One)
            .flow_control(FlowControl::None)
            .timeout(READ_TIMEOUT)
            .open_native()
            .map_err(io::Error::from)?;
        ThreadedPort::start(port)
    }

    fn detecting(&self) -> bool {
        self.candidates.len() > 1 && !self.locked
    }

    fn switch_settings(&mut self, stream: &mut ThreadedPort) -> io::Result<()> {
        let from = self.current();
        self.index = (self.index + 1) % self.candidates.len();
        let to = self.current();
        stream.switch(to)?;
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

    fn coalesces(&self) -> bool {
        true
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
        let (_master, slave) = tokio_serial::SerialStream::pair().expect("a pty pair");
        let path = slave.name().expect("the slave has a path");
        let mut c = SerialConnector::new(Path::new(&path), PortSettings::Auto);
        let mut port = c.connect().await.expect("open the pty");
        c.switch_settings(&mut port).expect("switch to 9600-7E1");
        // A pty keeps the speed but forces 8 data bits without parity, so only the speed can be read back.
        assert_eq!((c.settings(), port.baud_rate().expect("read back")), (Some("9600-7E1"), 9600));
        c.lock();
        assert!(!c.detecting());
    }

    #[tokio::test]
    async fn the_reader_thread_hands_over_what_the_line_delivers_and_ends_with_it() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut master, slave) = tokio_serial::SerialStream::pair().expect("a pty pair");
        let path = slave.name().expect("the slave has a path");
        let mut c = SerialConnector::new(Path::new(&path), PortSettings::Baud115200_8N1);
        let mut port = c.connect().await.expect("open the pty");
        let telegram = shared::simulate::Simulator::new(3).telegram_at(
            jiff::Timestamp::from_second(1_717_243_200).expect("in range").to_zoned(jiff::tz::TimeZone::UTC),
        );
        for chunk in telegram.chunks(16) {
            master.write_all(chunk).await.expect("write");
        }
        let mut got = vec![0u8; telegram.len()];
        port.read_exact(&mut got).await.expect("read it all");
        assert_eq!(got, telegram);
        // The device goes away: the stream ends or fails (a pty's slave reads EIO), it does not hang.
        drop((master, slave));
        let mut rest = Vec::new();
        let end = tokio::time::timeout(Duration::from_secs(5), port.read_to_end(&mut rest)).await.expect("no hang");
        assert!(rest.is_empty(), "{end:?}");
    }
}
