//! Where telegrams come from: a serial device, a TCP bridge, a replayed capture or the simulated meter.
//!
//! Devices and bridges go through one supervisor, [`supervise`], over a [`Connector`]: open, read until the
//! stream ends, reopen. A missing or vanished source is logged once per outage and retried with capped
//! exponential backoff ([`Backoff`]: 1 s doubling to 60 s, reset by the first good telegram), sleeping inside
//! `select!` with the cancellation token. End of stream — a read of 0 bytes, which is what a pseudo-terminal whose
//! other end has closed returns forever, or an error such as `EIO` — closes the stream and reopens it, never spins.
//! The read loop is generic over `AsyncRead + Unpin`, so tests feed it bytes without hardware. Serial port
//! settings detection (`auto`) runs inside the same loop: a window with no valid telegram switches to the next
//! settings (see [`crate::serial`]); the settings lock on a CRC-checked telegram, or on
//! [`crate::pipeline::CRCLESS_TO_CONFIRM`] telegrams without CRC in a row.
//!
//! A capture file is replayed once, paced as configured, and then the source ends. The simulated meter sends one
//! telegram at every whole second through the same engine path as real bytes.

use std::future::Future;
use std::io;
use std::path::Path;
use std::time::Duration;

use shared::config::{Listener, Replay, Source};
use shared::simulate::Simulator;
use shared::wire::PortState;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::pipeline::Pipeline;
use crate::serial::SerialConnector;

/// How a source stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum SourceEnd {
    /// Shutdown was requested.
    Cancelled,
    /// A replayed file is done.
    Finished,
}

/// Why a source cannot run at all (devices and bridges never fail: they are retried).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// A capture file could not be read.
    #[error("cannot read capture {path}")]
    File {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The source as written in the configuration, for logs and status datagrams.
#[must_use]
pub fn describe(source: &Source) -> String {
    match source {
        Source::Serial(path) => path.display().to_string(),
        Source::Tcp(addr) => format!("tcp://{addr}"),
        Source::File(path) => format!("file:{}", path.display()),
        Source::Simulate => "simulate".into(),
    }
}

/// Runs the configured source into `pipeline` until it ends or `token` is cancelled.
///
/// # Errors
/// Only a capture file that cannot be read; devices and bridges are retried for ever.
pub async fn run(
    listener: &Listener,
    pipeline: &mut Pipeline,
    token: &CancellationToken,
    seed: u64,
) -> Result<SourceEnd, SourceError> {
    let end = match &listener.source {
        Source::Serial(path) => supervise(SerialConnector::new(path, listener.port_settings), pipeline, token).await,
        Source::Tcp(addr) => supervise(TcpConnector { addr: addr.clone() }, pipeline, token).await,
        Source::File(path) => replay(path, listener.replay, pipeline, token).await?,
        Source::Simulate => simulate(seed, pipeline, token).await,
    };
    pipeline.health().lock().port = PortState::Closed;
    Ok(end)
}

/// Something that can be opened again and again: a serial device, a TCP bridge, a test double.
pub(crate) trait Connector {
    /// What it yields when open.
    type Stream: AsyncRead + Unpin;

    /// The source, for logs.
    fn name(&self) -> String;

    /// Opens it.
    fn connect(&mut self) -> impl Future<Output = io::Result<Self::Stream>>;

    /// Whether port settings are still being detected.
    fn detecting(&self) -> bool {
        false
    }

    /// No valid telegram within the detection window: switch to the next settings, in place.
    fn switch_settings(&mut self, _stream: &mut Self::Stream) -> io::Result<()> {
        Ok(())
    }

    /// Valid telegrams arrive: keep the current settings from now on.
    fn lock(&mut self) {}

    /// The settings in use, for the status datagram.
    fn settings(&self) -> Option<&'static str> {
        None
    }

    /// What to do about an open error, for the log.
    fn advice(&self, _error: &io::Error) -> Option<String> {
        None
    }

    /// Whether the stream already gathers each telegram into a few chunks (the serial reader thread), so the read
    /// loop need not hold between reads itself.
    fn coalesces(&self) -> bool {
        false
    }
}

/// How long, and how many bytes, auto-detection waits for a valid telegram before trying the next settings.
/// 12 s covers the 10 s interval of DSMR 2.2–4 meters even when the first telegram was cut by opening the port
/// mid-burst; 8 KiB is more than two of the largest telegrams, so a stream of wrong-speed garbage switches early.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Detect {
    pub within: Duration,
    pub bytes: usize,
}

/// The detection window for serial sources.
pub(crate) const DETECT: Detect = Detect { within: Duration::from_secs(12), bytes: 8 * 1024 };

/// How a read loop ended.
#[derive(Debug)]
pub(crate) enum StreamEnd {
    Cancelled,
    /// A read returned 0 bytes.
    Eof,
    Error(io::Error),
    /// The first valid telegram arrived (only when asked to stop there).
    Telegram,
    /// The detection window passed without a valid telegram.
    Undetected,
}

/// Opens, reads and reopens `connector` until `token` is cancelled. See the module documentation.
pub(crate) async fn supervise<C: Connector>(
    mut connector: C,
    pipeline: &mut Pipeline,
    token: &CancellationToken,
) -> SourceEnd {
    let mut backoff = Backoff::default();
    // Whether the current outage (no telegrams flowing) has been logged: each outage is warned about once.
    let mut outage_logged = false;
    let mut ever_opened = false;
    loop {
        pipeline.health().lock().port = PortState::Connecting;
        let opened = tokio::select! {
            () = token.cancelled() => return SourceEnd::Cancelled,
            r = connector.connect() => r,
        };
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(e) => {
                let delay = backoff.next_delay();
                if outage_logged {
                    tracing::debug!(source = %connector.name(), cause = %e, attempt = backoff.attempts(), "still cannot open");
                } else {
                    outage_logged = true;
                    let advice = connector.advice(&e).unwrap_or_else(|| e.to_string());
                    tracing::warn!(
                        source = %connector.name(),
                        cause = %advice,
                        "cannot open the source; retrying quietly with backoff (1 s up to 60 s)"
                    );
                }
                if sleep_or_cancel(delay, token).await {
                    return SourceEnd::Cancelled;
                }
                continue;
            }
        };
        {
            let mut h = pipeline.health().lock();
            h.port = PortState::Open;
            h.reconnects += 1;
            h.port_settings = connector.settings();
        }
        if ever_opened {
            tracing::debug!(source = %connector.name(), "reopened");
        } else {
            tracing::info!(source = %connector.name(), settings = connector.settings(), "source open");
            ever_opened = true;
        }

        let mut productive = false;
        let end = loop {
            let detect = (!productive && connector.detecting()).then_some(DETECT);
            let hold = !connector.coalesces();
            match read_stream(&mut stream, pipeline, token, detect, !productive, hold).await {
                StreamEnd::Telegram => {
                    productive = true;
                    backoff.reset();
                    connector.lock();
                    if outage_logged {
                        tracing::info!(source = %connector.name(), "source back: telegrams flowing again");
                        outage_logged = false;
                    }
                }
                StreamEnd::Undetected => match connector.switch_settings(&mut stream) {
                    Ok(()) => pipeline.health().lock().port_settings = connector.settings(),
                    Err(e) => break StreamEnd::Error(e),
                },
                other => break other,
            }
        };
        drop(stream);
        let why = match end {
            StreamEnd::Cancelled => return SourceEnd::Cancelled,
            StreamEnd::Eof => "end of stream (device closed or bridge disconnected)".to_owned(),
            StreamEnd::Error(e) => e.to_string(),
            StreamEnd::Telegram | StreamEnd::Undetected => String::new(),
        };
        pipeline.health().lock().port = PortState::Connecting;
        if productive {
            // Telegrams were flowing: this is the start of an outage. Reopen at once; a device that is really gone
            // fails to open and backs off from there.
            outage_logged = true;
            tracing::warn!(source = %connector.name(), cause = %why, "source lost; reopening");
            continue;
        }
        if outage_logged {
            tracing::debug!(source = %connector.name(), cause = %why, "source ended again without telegrams");
        } else {
            outage_logged = true;
            tracing::warn!(source = %connector.name(), cause = %why, "source ended before any telegram; retrying quietly");
        }
        if sleep_or_cancel(backoff.next_delay(), token).await {
            return SourceEnd::Cancelled;
        }
    }
}

/// Sleeps unless cancelled first; `true` if cancelled.
async fn sleep_or_cancel(delay: Duration, token: &CancellationToken) -> bool {
    tokio::select! {
        () = token.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

/// Reads `reader` into `pipeline` until the stream ends, `token` is cancelled, the detection window passes, or
/// (with `stop_at_telegram`) the first valid telegram has been published. With `hold`, waits mid-telegram as the
/// [`Coalescer`] says (for streams that do not gather telegrams themselves).
pub(crate) async fn read_stream<R: AsyncRead + Unpin>(
    reader: &mut R,
    pipeline: &mut Pipeline,
    token: &CancellationToken,
    detect: Option<Detect>,
    stop_at_telegram: bool,
    hold: bool,
) -> StreamEnd {
    let mut buf = vec![0u8; READ_BUFFER];
    let mut coalescer = Coalescer::default();
    // Without detection the window never passes (the branch is disabled); the instant is only a placeholder.
    let window = tokio::time::sleep_until(Instant::now() + detect.map_or(Duration::ZERO, |d| d.within));
    tokio::pin!(window);
    let mut bytes_without_telegram = 0usize;
    loop {
        let read = tokio::select! {
            biased;
            () = token.cancelled() => return StreamEnd::Cancelled,
            r = reader.read(&mut buf) => r,
            () = &mut window, if detect.is_some() => return StreamEnd::Undetected,
        };
        match read {
            Ok(0) => return StreamEnd::Eof,
            Ok(n) => {
                let (at, wall) = (std::time::Instant::now(), jiff::Timestamp::now());
                let telegrams = pipeline.push(&buf[..n], at, wall);
                let now = Instant::now();
                coalescer.observe(&buf[..n], now);
                if let Some(until) = coalescer.hold_until(now).filter(|_| hold) {
                    // Mid-telegram, well before its end: let the bytes pile up in the kernel and read them at once.
                    tokio::select! {
                        biased;
                        () = token.cancelled() => return StreamEnd::Cancelled,
                        () = tokio::time::sleep_until(until) => {}
                    }
                }
                if telegrams > 0 && stop_at_telegram && (detect.is_none() || pipeline.settings_confirmed()) {
                    return StreamEnd::Telegram;
                }
                bytes_without_telegram = if telegrams > 0 { 0 } else { bytes_without_telegram + n };
                if let Some(d) = detect {
                    if telegrams > 0 {
                        // Telegrams without CRC, not yet enough to lock the settings: give the next ones time.
                        window.as_mut().reset(Instant::now() + d.within);
                    } else if bytes_without_telegram >= d.bytes {
                        return StreamEnd::Undetected;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return StreamEnd::Error(e),
        }
    }
}

/// Bytes asked for per read: more than the longest telegram, so one read after a hold takes all that piled up.
const READ_BUFFER: usize = 16 * 1024;

/// Bytes before the predicted end of a telegram at which a hold ends, on top of the line's chunk size and how much
/// the last two telegrams' lengths differed: about 2.8 ms at 115 200 baud, so a telegram a little shorter or
/// faster than the last one still finds the reader awake for its last bytes.
const HOLD_MARGIN: usize = 32;

/// The longest hold: 250 ms is 2.9 KB at 115 200 baud, well inside the kernel's 4 KiB line discipline buffer.
const MAX_HOLD: Duration = Duration::from_millis(250);

/// Fewer wakeups per telegram: a meter's telegrams have nearly the same length and arrive at the same pace, so
/// once a frame has begun (a `/`), the reader can sleep until shortly before the previous telegram's length would
/// be reached and then take everything that arrived in one read, instead of waking for every 16-byte chunk a USB
/// adapter or line delivers. Near the predicted end it reads eagerly again, so the last byte still reaches the
/// engine at once (end-of-frame latency does not suffer). The prediction is the previous frame's length (from `/`
/// to `!`) and duration (from the read that held its `/` to the read that held its `!`), so it adapts to any line
/// rate, a TCP bridge's packets included (a telegram in one packet: nothing to hold). Binary frames (DLMS, no `/`)
/// are read eagerly. A pure state machine over instants passed in.
#[derive(Debug, Default)]
pub struct Coalescer {
    /// The frame being read: when its `/` was read, the bytes from `/` so far, and the size of that first read.
    open: Option<(Instant, usize, usize)>,
    /// The last complete frame: its duration and length (`/` to `!`).
    last: Option<(Duration, usize)>,
    /// How much the lengths of the last two frames differed.
    variation: usize,
    /// The larger of the reads that began and ended the last frame: how many bytes the line delivers at once (a
    /// hold must end at least that much before the predicted end, or the last chunk would find it asleep).
    chunk: usize,
    /// After the current frame's `!`: the bytes of its trailer (CRC, CR LF) so far, up to the line feed.
    trailer: Option<usize>,
    /// The last frame's length from `/` to the line feed after its `!`, when seen.
    total: Option<usize>,
}

impl Coalescer {
    /// Notes a chunk read at `at`.
    pub fn observe(&mut self, chunk: &[u8], at: Instant) {
        let slash = chunk.iter().rposition(|&b| b == b'/');
        let bang = chunk.iter().rposition(|&b| b == b'!');
        // A frame that ends in this chunk (its `!` after the frame's start).
        if let Some(b) = bang {
            let ended = match (self.open, slash) {
                // A whole frame in this chunk.
                (_, Some(s)) if s < b => Some((at, b + 1 - s, chunk.len())),
                (Some((start, len, first)), _) => Some((start, len + b + 1, first)),
                (None, _) => None,
            };
            if let Some((start, len, first)) = ended {
                if let Some((_, previous)) = self.last {
                    self.variation = previous.abs_diff(len);
                }
                self.last = Some((at.saturating_duration_since(start), len));
                self.chunk = first.max(chunk.len());
                self.open = None;
            }
        }
        match (slash, bang) {
            // A frame begins (after any that ended here).
            (Some(s), None) => self.open = Some((at, chunk.len() - s, chunk.len())),
            (Some(s), Some(b)) if s > b => self.open = Some((at, chunk.len() - s, chunk.len())),
            (None, None) => {
                if let Some((_, len, _)) = &mut self.open {
                    *len += chunk.len();
                }
            }
            // The frame ended in this chunk (handled above).
            _ => {}
        }
        // After the frame's end is recorded: its trailer's length completes its total.
        self.count_trailer(chunk, bang);
    }

    /// Follows the trailer after a `!` to its line feed, for [`Coalescer::tail`].
    fn count_trailer(&mut self, chunk: &[u8], bang: Option<usize>) {
        let (from, so_far) = match (bang, self.trailer) {
            (Some(b), _) => (b + 1, 0),
            (None, Some(n)) => (0, n),
            (None, None) => return,
        };
        match chunk[from..].iter().position(|&c| c == b'\n') {
            Some(nl) => {
                self.trailer = None;
                if let Some((_, len)) = self.last {
                    self.total = Some(len + so_far + nl + 1);
                }
            }
            None => self.trailer = Some(so_far + chunk.len() - from),
        }
    }

    /// The rest of the open frame, once no hold is due: how many bytes the last frame had from here to the line
    /// feed after its `!`, and how long they took. A reader can then ask the kernel to wake it only when that many
    /// bytes are in (termios `VMIN`), instead of once per chunk.
    #[must_use]
    pub fn tail(&self) -> Option<(usize, Duration)> {
        let (_, have, _) = self.open?;
        let (duration, len) = self.last?;
        let total = self.total?;
        let rest = total.checked_sub(have).filter(|&r| r > 0)?;
        let nanos = duration.as_nanos() * rest as u128 / len.max(1) as u128;
        Some((rest, Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))))
    }

    /// Until when to wait before the next read, if waiting saves wakeups without delaying the frame's end.
    #[must_use]
    pub fn hold_until(&self, now: Instant) -> Option<Instant> {
        let (start, have, _) = self.open?;
        let (duration, len) = self.last?;
        let margin = HOLD_MARGIN + (self.variation + self.chunk).min(len / 2);
        let target = len.checked_sub(margin)?;
        if have >= target || len == 0 {
            return None;
        }
        // When the previous frame had reached `target` bytes, counted from this frame's start.
        let nanos = duration.as_nanos() * target as u128 / len as u128;
        let due = start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)).min(MAX_HOLD);
        (due > now).then_some(due.min(now + MAX_HOLD))
    }
}

/// A network P1 bridge (ser2net, ESP dongles): `host:port`.
#[derive(Debug)]
struct TcpConnector {
    addr: String,
}

impl Connector for TcpConnector {
    type Stream = tokio::net::TcpStream;

    fn name(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    async fn connect(&mut self) -> io::Result<tokio::net::TcpStream> {
        let stream = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(&self.addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out after 10 s"))??;
        // A bridge that loses power never says goodbye: keepalive notices within about a minute.
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(30))
            .with_interval(Duration::from_secs(10))
            .with_retries(3);
        socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
        Ok(stream)
    }
}

/// Longest pause between replayed telegrams paced by their own timestamps: a capture with a gap (the cable was
/// out for an hour) should not stall the replay for that hour.
const MAX_METER_GAP: Duration = Duration::from_secs(60);

/// Replays a capture once, paced as `pace` says.
async fn replay(
    path: &Path,
    pace: Replay,
    pipeline: &mut Pipeline,
    token: &CancellationToken,
) -> Result<SourceEnd, SourceError> {
    let file_error = |source| SourceError::File { path: path.display().to_string(), source };
    let mut file = tokio::fs::File::open(path).await.map_err(file_error)?;
    pipeline.health().lock().port = PortState::Open;
    tracing::info!(file = %path.display(), pace = ?pace, "replaying capture");
    let mut buf = vec![0u8; 64 * 1024];
    let mut pacer = Pacer::new(pace);
    loop {
        let n = tokio::select! {
            () = token.cancelled() => return Ok(SourceEnd::Cancelled),
            r = file.read(&mut buf) => r.map_err(file_error)?,
        };
        if n == 0 {
            break;
        }
        pipeline.feed(&buf[..n], std::time::Instant::now());
        while let Some(checked) = pipeline.next_checked() {
            let wait = pacer.next(checked.parsed.values.meter_time.map(|t| t.timestamp()));
            tokio::select! {
                () = token.cancelled() => return Ok(SourceEnd::Cancelled),
                () = tokio::time::sleep_until(wait) => {}
            }
            if !pipeline.publish_waiting(checked, jiff::Timestamp::now()).await {
                return Ok(SourceEnd::Cancelled);
            }
        }
        pipeline.after_push();
        if pace == Replay::Max {
            // Let the publisher (and everything else on this thread) run between chunks.
            tokio::task::yield_now().await;
        }
    }
    let count = pipeline.health().lock().engine;
    tracing::info!(telegrams = count.telegrams, crc_failures = count.crc_failures, "replay finished");
    Ok(SourceEnd::Finished)
}

/// When each replayed telegram is due.
#[derive(Debug)]
struct Pacer {
    pace: Replay,
    last: Option<(Instant, Option<jiff::Timestamp>)>,
}

impl Pacer {
    fn new(pace: Replay) -> Self {
        Pacer { pace, last: None }
    }

    /// The instant to publish a telegram stamped `meter_time` (the first is due now).
    fn next(&mut self, meter_time: Option<jiff::Timestamp>) -> Instant {
        let now = Instant::now();
        let due = match (self.pace, self.last) {
            (Replay::Max, _) | (_, None) => now,
            (Replay::Every(gap), Some((prev, _))) => prev + gap,
            (Replay::Meter, Some((prev, prev_time))) => {
                let gap = match (prev_time, meter_time) {
                    (Some(a), Some(b)) if b > a => {
                        Duration::try_from(b.duration_since(a)).unwrap_or(MAX_METER_GAP).min(MAX_METER_GAP)
                    }
                    // No stamps, or stamps that do not move forward: a meter's usual second.
                    _ => Duration::from_secs(1),
                };
                prev + gap
            }
        };
        // Never schedule in the past: after a slow publisher, continue from now.
        let due = due.max(now);
        self.last = Some((due, meter_time));
        due
    }
}

/// The simulated meter: one telegram at every whole second of the wall clock.
async fn simulate(seed: u64, pipeline: &mut Pipeline, token: &CancellationToken) -> SourceEnd {
    let mut sim = Simulator::new(seed);
    let zone = jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap_or(jiff::tz::TimeZone::UTC);
    {
        let mut h = pipeline.health().lock();
        h.port = PortState::Open;
        h.reconnects += 1;
    }
    tracing::info!("simulated DSMR 5 meter: one telegram a second");
    loop {
        // Sleep to the next whole second, as a meter's clock ticks; recomputed each time so it never drifts.
        let now = jiff::Timestamp::now();
        let into_second = Duration::from_nanos(u64::from(now.subsec_nanosecond().unsigned_abs()));
        let delay = Duration::from_secs(1).saturating_sub(into_second);
        if sleep_or_cancel(delay, token).await {
            return SourceEnd::Cancelled;
        }
        let now = jiff::Timestamp::now();
        let bytes = sim.telegram_at(now.to_zoned(zone.clone()));
        pipeline.push(&bytes, std::time::Instant::now(), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Health, SharedHealth};
    use crate::pipeline::Published;
    use shared::engine::EngineOptions;
    use shared::wire::Origin;
    use std::collections::VecDeque;
    use tokio::sync::mpsc;

    fn telegram(second: i64) -> Vec<u8> {
        let at = jiff::Timestamp::from_second(1_717_243_200 + second).expect("in range");
        Simulator::new(1).telegram_at(at.to_zoned(jiff::tz::TimeZone::UTC))
    }

    fn pipeline() -> (Pipeline, mpsc::Receiver<Published>) {
        let (tx, rx) = mpsc::channel(64);
        let health = SharedHealth::new(Health::new(Instant::now()));
        let origin = Origin { listener: "t".into(), boot_id: "0".into() };
        (Pipeline::new(EngineOptions::default(), origin, tx, None, health), rx)
    }

    /// What one connect attempt gives: an error, or a stream holding these bytes (then end of stream).
    enum Attempt {
        Fail,
        Bytes(Vec<u8>),
    }

    struct Scripted {
        attempts: VecDeque<Attempt>,
        log: std::sync::Arc<std::sync::Mutex<Vec<Duration>>>,
        start: Instant,
    }

    impl Connector for Scripted {
        type Stream = std::io::Cursor<Vec<u8>>;

        fn name(&self) -> String {
            "scripted".into()
        }

        async fn connect(&mut self) -> io::Result<Self::Stream> {
            self.log.lock().expect("lock").push(self.start.elapsed());
            match self.attempts.pop_front() {
                Some(Attempt::Bytes(b)) => Ok(std::io::Cursor::new(b)),
                Some(Attempt::Fail) | None => Err(io::Error::new(io::ErrorKind::NotFound, "no such device")),
            }
        }
    }

    fn secs(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&s| Duration::from_secs(s)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_while_missing_and_resumes_at_once_after_telegrams() {
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut stream = telegram(0);
        stream.extend(telegram(1));
        let attempts = VecDeque::from([
            Attempt::Fail,
            Attempt::Fail,
            Attempt::Fail,
            Attempt::Bytes(stream),
            Attempt::Fail,
            Attempt::Fail,
        ]);
        let connector = Scripted { attempts, log: log.clone(), start: Instant::now() };
        let (mut p, mut rx) = pipeline();
        let token = CancellationToken::new();
        let stop = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(20)).await;
            stop.cancel();
        });
        assert_eq!(supervise(connector, &mut p, &token).await, SourceEnd::Cancelled);
        // Fails at 0, 1, 3; opens at 7 and reads two telegrams; the stream ends and is reopened at once (7),
        // which fails, so the backoff starts again from 1 s (8), then 2 s (10), 4 s (14)...
        assert_eq!(*log.lock().expect("lock"), secs(&[0, 1, 3, 7, 7, 8, 10, 14]));
        assert_eq!(rx.recv().await.expect("first").message.seq, 1);
        assert_eq!(rx.recv().await.expect("second").message.seq, 2);
        let h = p.health().lock();
        assert_eq!((h.reconnects, h.port), (1, PortState::Connecting));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_only_ends_is_not_a_busy_loop() {
        // A pty whose other end is closed: every open succeeds and every read returns 0.
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let attempts = (0..100).map(|_| Attempt::Bytes(Vec::new())).collect();
        let connector = Scripted { attempts, log: log.clone(), start: Instant::now() };
        let (mut p, _rx) = pipeline();
        let token = CancellationToken::new();
        let stop = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(200)).await;
            stop.cancel();
        });
        supervise(connector, &mut p, &token).await;
        assert_eq!(*log.lock().expect("lock"), secs(&[0, 1, 3, 7, 15, 31, 63, 123, 183]));
    }

    /// A serial-like connector whose stream is fed by the test; records settings switches.
    struct Detecting {
        stream: Option<tokio::io::DuplexStream>,
        switches: std::sync::Arc<std::sync::Mutex<Vec<Duration>>>,
        start: Instant,
        locked: bool,
        index: usize,
    }

    impl Detecting {
        /// A connector at its first settings, unlocked; the test writes to the returned end of its stream and
        /// reads the switches from the returned list.
        fn fed() -> (Detecting, tokio::io::DuplexStream, std::sync::Arc<std::sync::Mutex<Vec<Duration>>>) {
            let (reader, writer) = tokio::io::duplex(1 << 16);
            let switches = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let connector = Detecting {
                stream: Some(reader),
                switches: switches.clone(),
                start: Instant::now(),
                locked: false,
                index: 0,
            };
            (connector, writer, switches)
        }
    }

    impl Connector for Detecting {
        type Stream = tokio::io::DuplexStream;

        fn name(&self) -> String {
            "detecting".into()
        }

        async fn connect(&mut self) -> io::Result<Self::Stream> {
            match self.stream.take() {
                Some(s) => Ok(s),
                None => std::future::pending().await,
            }
        }

        fn detecting(&self) -> bool {
            !self.locked
        }

        fn switch_settings(&mut self, _stream: &mut Self::Stream) -> io::Result<()> {
            self.switches.lock().expect("lock").push(self.start.elapsed());
            self.index = (self.index + 1) % 2;
            Ok(())
        }

        fn lock(&mut self) {
            self.locked = true;
        }

        fn settings(&self) -> Option<&'static str> {
            Some(["115200-8N1", "9600-7E1"][self.index])
        }
    }

    #[tokio::test(start_paused = true)]
    async fn auto_detection_switches_on_silence_and_on_garbage_then_locks() {
        let (connector, mut writer, switches) = Detecting::fed();
        let (mut p, mut rx) = pipeline();
        let token = CancellationToken::new();
        let feeder = {
            let token = token.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                // Silence: a switch after 12 s. Then 9 KiB of wrong-speed garbage at 13 s: a switch at once.
                tokio::time::sleep(Duration::from_secs(13)).await;
                writer.write_all(&vec![0xF0; 9 * 1024]).await.expect("write");
                // Valid telegrams at 15 s: locked; then 30 s of silence must not switch again.
                tokio::time::sleep(Duration::from_secs(2)).await;
                writer.write_all(&telegram(0)).await.expect("write");
                tokio::time::sleep(Duration::from_secs(30)).await;
                writer.write_all(&telegram(1)).await.expect("write");
                tokio::time::sleep(Duration::from_secs(1)).await;
                token.cancel();
                writer
            })
        };
        supervise(connector, &mut p, &token).await;
        let _writer = feeder.await.expect("feeder");
        assert_eq!(*switches.lock().expect("lock"), secs(&[12, 13]));
        assert_eq!(p.health().lock().port_settings, Some("115200-8N1"), "switched twice: back to the first");
        assert_eq!(rx.recv().await.expect("telegram").message.seq, 1);
        assert_eq!(rx.recv().await.expect("telegram").message.seq, 2);
    }

    /// A DSMR 2.2 telegram: no CRC after the `!`.
    const DSMR22: &[u8] = b"/ISk5\\2ME382-1003\r\n\r\n0-0:96.1.1(4B414C37303035313132333435363738)\r\n\
        1-0:1.8.1(00231.512*kWh)\r\n1-0:1.8.2(00187.004*kWh)\r\n0-0:96.14.0(0002)\r\n1-0:1.7.0(0000.86*kW)\r\n!\r\n";

    #[tokio::test(start_paused = true)]
    async fn one_telegram_without_crc_does_not_lock_the_settings_three_in_a_row_do() {
        let (connector, mut writer, switches) = Detecting::fed();
        let (mut p, mut rx) = pipeline();
        let token = CancellationToken::new();
        let feeder = {
            let token = token.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                // One CRC-less telegram at 1 s, then silence: not proof enough, so a switch 12 s later (13 s).
                tokio::time::sleep(Duration::from_secs(1)).await;
                writer.write_all(DSMR22).await.expect("write");
                // Three in a row at 14, 16 and 18 s lock the settings: 30 s of silence then switch nothing.
                tokio::time::sleep(Duration::from_secs(13)).await;
                for _ in 0..3 {
                    writer.write_all(DSMR22).await.expect("write");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                tokio::time::sleep(Duration::from_secs(30)).await;
                token.cancel();
                writer
            })
        };
        supervise(connector, &mut p, &token).await;
        let _writer = feeder.await.expect("feeder");
        assert_eq!(*switches.lock().expect("lock"), secs(&[13]));
        for seq in 1..=4 {
            assert_eq!(rx.recv().await.expect("telegram").message.seq, seq, "every plausible one is published");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn replay_paces_by_meter_time_a_fixed_gap_or_not_at_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("capture.txt");
        // Stamps 0, 10, 12 s apart (and noise between telegrams).
        let mut bytes = telegram(0);
        bytes.extend(b"\0\0noise");
        bytes.extend(telegram(10));
        bytes.extend(telegram(12));
        std::fs::write(&path, &bytes).expect("write");

        for (pace, expected) in [
            (Replay::Meter, secs(&[0, 10, 12])),
            (Replay::Every(Duration::from_secs(5)), secs(&[0, 5, 10])),
            (Replay::Max, secs(&[0, 0, 0])),
        ] {
            let (mut p, mut rx) = pipeline();
            let start = Instant::now();
            let token = CancellationToken::new();
            let collect = tokio::spawn(async move {
                let mut at = Vec::new();
                while let Some(item) = rx.recv().await {
                    at.push((start.elapsed(), item.message.seq));
                }
                at
            });
            assert_eq!(replay(&path, pace, &mut p, &token).await.expect("replayed"), SourceEnd::Finished);
            assert_eq!(p.health().lock().engine.discarded_bytes, 7);
            drop(p);
            let got = collect.await.expect("collector");
            let times: Vec<Duration> = got.iter().map(|(t, _)| Duration::from_secs(t.as_secs())).collect();
            assert_eq!(times, expected, "{pace:?}");
            assert_eq!(got.iter().map(|(_, s)| *s).collect::<Vec<_>>(), [1, 2, 3]);
        }
    }

    #[test]
    fn the_coalescer_holds_mid_frame_until_shortly_before_the_predicted_end() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let frame = telegram(0);
        let len = frame.iter().position(|&b| b == b'!').expect("a bang") + 1;
        let mut c = Coalescer::default();
        // Nothing known yet: every chunk is read at once.
        for (i, chunk) in frame.chunks(16).enumerate() {
            let at = t0 + ms(i as u64);
            c.observe(chunk, at);
            assert_eq!(c.hold_until(at), None, "the first frame is read eagerly");
        }
        assert_eq!(c.last, Some((ms((len / 16) as u64), len)));
        // The next frame, 1 s later: after its first chunk, hold until the previous frame's pace reaches
        // len - 32 bytes.
        let t1 = t0 + ms(1000);
        c.observe(&frame[..16], t1);
        let due = c.hold_until(t1).expect("a hold");
        assert_eq!(c.chunk, 16);
        let expected = t1 + ms((len / 16) as u64).mul_f64((len - HOLD_MARGIN - 16) as f64 / len as f64);
        assert!(due.max(expected) - due.min(expected) < Duration::from_micros(1), "{due:?} {expected:?}");
        // After the hold, most of the frame is read at once: within the margin, no more holds.
        c.observe(&frame[16..len - 40], due);
        assert_eq!(c.hold_until(due), None);
        c.observe(&frame[len - 40..len - 24], due + ms(1));
        c.observe(&frame[len - 24..], due + ms(2));
        assert_eq!(c.open, None);
        assert_eq!(c.last.map(|(_, l)| l), Some(len));
        // Between frames (noise, nothing open): no hold.
        c.observe(b"\0\0", due + ms(10));
        assert_eq!(c.hold_until(due + ms(10)), None);
    }

    #[test]
    fn the_coalescer_widens_its_margin_when_lengths_vary_and_never_holds_long() {
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        // A 1000-byte frame over 10 s (a slow line), then one of 900 bytes in one chunk.
        let mut long = b"/".to_vec();
        long.extend(vec![b'x'; 998]);
        long.push(b'!');
        c.observe(&long[..500], t0);
        c.observe(&long[500..], t0 + Duration::from_secs(10));
        let mut short = b"/".to_vec();
        short.extend(vec![b'x'; 898]);
        short.push(b'!');
        c.observe(&short, t0 + Duration::from_secs(20));
        assert_eq!((c.last, c.variation, c.chunk), (Some((Duration::ZERO, 900)), 100, 900));
        // A frame begins: its whole predicted duration is 0 (it came in one chunk), so no hold.
        let t = t0 + Duration::from_secs(30);
        c.observe(b"/x", t);
        assert_eq!(c.hold_until(t), None);
        // A slow previous frame: the hold is capped.
        c.last = Some((Duration::from_secs(10), 900));
        let due = c.hold_until(t).expect("a hold");
        assert_eq!(due, t + MAX_HOLD);
        // The margin is 32 + the variation + the chunk size (at most half the frame): with 16-byte chunks, at
        // 900 - 148 bytes the hold ends.
        c.chunk = 16;
        c.open = Some((t, 900 - 148, 16));
        assert_eq!(c.hold_until(t), None);
        c.open = Some((t, 900 - 149, 16));
        assert!(c.hold_until(t).is_some());
        // Chunks as large as the frame: the margin is capped at half the frame.
        c.chunk = 900;
        c.open = Some((t, 900 - 32 - 450, 16));
        assert_eq!(c.hold_until(t), None);
        c.open = Some((t, 900 - 32 - 451, 16));
        assert!(c.hold_until(t).is_some());
    }

    /// Counts reads that returned bytes.
    struct Counting<R> {
        inner: R,
        reads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            let before = buf.filled().len();
            let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
            if matches!(r, std::task::Poll::Ready(Ok(()))) && buf.filled().len() > before {
                self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            r
        }
    }

    #[tokio::test(start_paused = true)]
    async fn telegrams_in_16_byte_chunks_at_line_rate_take_a_few_reads_and_are_published_at_their_last_byte() {
        let (reader, mut writer) = tokio::io::duplex(1 << 16);
        let reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut counting = Counting { inner: reader, reads: reads.clone() };
        let (mut p, mut rx) = pipeline();
        let collector = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(item) = rx.recv().await {
                got.push((Instant::now(), item));
            }
            got
        });
        let token = CancellationToken::new();
        // 16 bytes at 115 200 baud (10 bits a byte): 1.39 ms. Noise between telegrams, one telegram a second.
        let chunk_time = Duration::from_micros(16 * 10 * 1_000_000 / 115_200);
        let feeder = {
            let token = token.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut last_bytes = Vec::new();
                let mut reads_before = Vec::new();
                for s in 0..5 {
                    let start = Instant::now();
                    let mut bytes = b"\0\xff".to_vec();
                    bytes.extend(telegram(s));
                    reads_before.push(reads.load(std::sync::atomic::Ordering::Relaxed));
                    let mut last = start;
                    for chunk in bytes.chunks(16) {
                        writer.write_all(chunk).await.expect("write");
                        last = Instant::now();
                        tokio::time::sleep(chunk_time).await;
                    }
                    last_bytes.push(last);
                    tokio::time::sleep_until(start + Duration::from_secs(1)).await;
                }
                reads_before.push(reads.load(std::sync::atomic::Ordering::Relaxed));
                token.cancel();
                (writer, last_bytes, reads_before)
            })
        };
        let end = read_stream(&mut counting, &mut p, &token, None, false, true).await;
        assert!(matches!(end, StreamEnd::Cancelled), "{end:?}");
        let (_writer, last_bytes, reads_before) = feeder.await.expect("feeder");
        let reads_per_telegram: Vec<usize> = reads_before.windows(2).map(|w| w[1] - w[0]).collect();
        // The first telegram teaches the pace (one read a chunk, 60-odd); the next take a handful.
        assert!(reads_per_telegram[0] > 50, "{reads_per_telegram:?}");
        assert!(reads_per_telegram[1..].iter().all(|&r| r <= 6), "{reads_per_telegram:?}");
        {
            let h = p.health().lock();
            assert_eq!((h.engine.telegrams, h.engine.discarded_bytes), (5, 10));
        }
        drop(p);
        let got = collector.await.expect("collector");
        assert_eq!(got.len(), 5);
        for ((seq, (at, item)), last) in (1..).zip(got).zip(last_bytes) {
            assert_eq!(item.message.seq, seq);
            assert_eq!(&item.raw[..], &telegram(seq as i64 - 1)[..], "whole and byte-exact");
            // Published at the instant its last chunk was written (paused time: no hold delayed it).
            assert_eq!(at, last, "telegram {seq}");
        }
    }

    #[tokio::test]
    async fn a_missing_capture_is_an_error() {
        let (mut p, _rx) = pipeline();
        let err = replay(Path::new("/nonexistent/capture"), Replay::Max, &mut p, &CancellationToken::new())
            .await
            .expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/capture"), "{err}");
    }
}
