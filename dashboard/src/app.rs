//! The dashboard's state and its one update function (the Elm architecture's model and update).
//!
//! [`App`] is plain data: per-meter state keyed by the listener's name, the view settings, and `now`. It changes
//! only through [`App::update`], which takes a [`Msg`]: a datagram with the time it arrived, a key, a tick carrying
//! the current time, a resize. Nothing here reads a clock or touches a socket or the terminal, so a test can drive
//! the dashboard through any sequence of events and render the result.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use jiff::Timestamp;
use p1hub_subscriber::tracker::{MAX_RATE, SLACK, WINDOW};
use shared::config::Config;
use shared::decimal::Decimal;
use shared::wire::seal::KeyId;
use shared::wire::{Message, StatusMessage, TelegramMessage, Values};

/// The chart spans `+` and `-` step through, in minutes.
pub const SPANS: [u32; 12] = [1, 2, 5, 10, 15, 30, 60, 120, 240, 480, 720, 1440];

/// The longest chart span, hence how much history a meter keeps.
const MAX_SPAN: Duration = Duration::from_secs(1440 * 60);

/// A hard cap on the history of one meter, whatever its telegram rate (a day at one telegram per second, plus
/// headroom), so memory stays bounded even if a sender floods the group.
pub const MAX_SAMPLES: usize = 100_000;

/// How many meters the dashboard tracks; datagrams from further listener names are counted and ignored.
pub const MAX_METERS: usize = 32;

/// What the dashboard was told to do, fixed at start.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The group it subscribed to (shown while waiting).
    pub group: SocketAddr,
    /// The interface it joined on.
    pub interface: shared::netif::Interface,
    /// A meter whose last telegram is older than this is stale.
    pub stale_after: Duration,
    /// A listener from which nothing at all arrived for this long is gone.
    pub gone_after: Duration,
    /// The chart span at start, in minutes.
    pub chart_minutes: u32,
    /// The zone used to show receive times.
    pub timezone: jiff::tz::TimeZone,
}

impl Settings {
    /// The settings from a validated configuration.
    #[must_use]
    pub fn from_config(config: &Config) -> Settings {
        let stale_after = config.dashboard.stale_after;
        // A live listener sends a status datagram every `status_every`; missing three in a row means it is gone.
        let gone_after = stale_after.max(config.listener.status_every * 3);
        Settings {
            group: config.multicast.group,
            interface: config.multicast.interface.clone(),
            stale_after,
            gone_after,
            chart_minutes: config.dashboard.chart_minutes,
            timezone: config.timezone.clone(),
        }
    }
}

/// An event for [`App::update`].
// A message is built, moved into `update` and dropped; boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Msg {
    /// A valid datagram and when it arrived here.
    Datagram(Message, Timestamp),
    /// A valid sealed datagram, the key id it was sealed with, and when it arrived.
    Sealed(Message, KeyId, Timestamp),
    /// A datagram refused by the subscriber's gate (open while a key is set, sealed without our key, forged,
    /// replayed; already described), and when it arrived.
    Refused(String, Timestamp),
    /// A datagram that was not a valid message (already described), and when it arrived.
    Invalid(String, Timestamp),
    /// Receiving failed.
    NetError(String),
    /// A key was pressed.
    Key(KeyEvent),
    /// Time passed; the current time.
    Tick(Timestamp),
    /// The terminal's size (columns, rows): at start and whenever it changes.
    Resize(u16, u16),
}

/// What the last valid datagram was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seal {
    /// Plain JSON.
    Open,
    /// Sealed with the key of this id.
    Sealed(KeyId),
}

/// Which screen is shown for the selected meter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// Power, chart and cards.
    Overview,
    /// Everything in the last telegram and the health counters, as scrollable text.
    Details,
}

/// What the chart plots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChartMode {
    /// Import above the axis, export below it.
    ImportExport,
    /// Net power per phase.
    Phases,
}

/// The whole dashboard state.
#[derive(Clone, Debug)]
pub struct App {
    /// Fixed settings.
    pub settings: Settings,
    /// The current time, as last told by a tick or a datagram.
    pub now: Timestamp,
    /// When the dashboard started (for "waiting since").
    pub started_at: Timestamp,
    /// The meters seen, in order of first appearance (so number keys stay put).
    pub meters: Vec<Meter>,
    /// Index into `meters`.
    pub selected: usize,
    /// Chart span in minutes.
    pub chart_minutes: u32,
    /// What the chart plots.
    pub chart_mode: ChartMode,
    /// The page shown.
    pub page: Page,
    /// First line shown on the details page.
    pub scroll: u16,
    /// The help overlay is shown.
    pub help: bool,
    /// The terminal's size (columns, rows), as last told; scrolling is bounded by what fits in it.
    pub size: (u16, u16),
    /// The user asked to quit.
    pub quit: bool,
    /// Datagrams that were not valid messages.
    pub invalid_datagrams: u64,
    /// Why the last one was not.
    pub last_invalid: Option<String>,
    /// Whether the last valid datagram was sealed, and with which key; `None` before the first.
    pub seal: Option<Seal>,
    /// Datagrams refused by the gate.
    pub refused_datagrams: u64,
    /// Why the last one was.
    pub last_refused: Option<String>,
    /// Datagrams ignored because [`MAX_METERS`] meters are already tracked.
    pub ignored_meters: u64,
    /// Receive errors.
    pub net_errors: u64,
    /// The last receive error.
    pub last_net_error: Option<String>,
}

/// One listener (one meter) on the group.
#[derive(Clone, Debug)]
pub struct Meter {
    /// The listener's name (the key).
    pub listener: String,
    /// The last telegram, if any.
    pub telegram: Option<Box<TelegramMessage>>,
    /// When it arrived here.
    pub telegram_at: Option<Timestamp>,
    /// The last status datagram, if any.
    pub status: Option<StatusMessage>,
    /// When it arrived here.
    pub status_at: Option<Timestamp>,
    /// When any datagram from this listener last arrived.
    pub last_datagram_at: Timestamp,
    /// Power samples for the chart, oldest first.
    pub history: VecDeque<Sample>,
    /// Sequence accounting.
    pub seq: SeqStats,
}

/// One point of the power chart.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// When the telegram arrived here.
    pub at: Timestamp,
    /// Power drawn from the grid, kW (≥ 0).
    pub import_kw: f32,
    /// Power delivered to the grid, kW (≥ 0).
    pub export_kw: f32,
    /// Net power per phase, kW (import minus export), where the meter sends it.
    pub phases_kw: [Option<f32>; 3],
}

/// Sequence accounting for one listener: the current boot, plus totals across its restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeqStats {
    /// The boot id the counters below refer to.
    pub boot_id: String,
    /// The first sequence number seen in this boot.
    pub first_seq: u64,
    /// The highest sequence number seen in this boot.
    pub last_seq: u64,
    /// Telegrams received in this boot.
    pub received: u64,
    /// Sequence numbers skipped in this boot.
    pub missing: u64,
    /// Places where at least one telegram was skipped, in this boot.
    pub gaps: u64,
    /// Telegrams at or below the highest sequence number (duplicates, late arrivals), ignored.
    pub duplicates: u64,
    /// Boot ids seen after the first: listener restarts.
    pub restarts: u64,
    /// Telegrams received over all boots.
    pub total_received: u64,
    /// Sequence numbers skipped over all boots.
    pub total_missing: u64,
    /// Telegrams ignored because their number jumped further than the time since the last one allows (forged).
    pub implausible: u64,
    /// When the highest sequence number arrived.
    pub last_at: Option<Timestamp>,
    /// An implausible number, kept: the next number after it confirms it as the stream to follow.
    pub suspect: Option<u64>,
}

/// What a telegram does to the sequence accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqOutcome {
    /// The next one, or the first of a boot.
    InOrder,
    /// After `missing` skipped ones.
    Gap {
        /// How many sequence numbers were skipped.
        missing: u64,
    },
    /// Already seen or older than the newest: not shown.
    Duplicate,
}

impl SeqStats {
    /// Accounts for a telegram of `boot_id` numbered `seq`, arrived at `at`.
    pub fn record(&mut self, boot_id: &str, seq: u64, at: Timestamp) -> SeqOutcome {
        if self.boot_id != boot_id {
            // A new boot restarts the numbering; the first number seen is not a gap even if it is not 1, since we
            // may have joined late.
            if !self.boot_id.is_empty() {
                self.restarts += 1;
            }
            boot_id.clone_into(&mut self.boot_id);
            self.first_seq = seq;
            self.last_seq = seq;
            self.last_at = Some(at);
            self.suspect = None;
            self.received = 1;
            self.missing = 0;
            self.gaps = 0;
            self.total_received += 1;
            return SeqOutcome::InOrder;
        }
        // A jump beyond `MAX_RATE × seconds + SLACK` is not believed, and a number up to `WINDOW` below the highest
        // is taken for a duplicate or late one: the subscriber tracker's bounds, so the dashboard and reader agree.
        let allowed =
            self.last_at.map_or(u64::MAX, |t| MAX_RATE.saturating_mul(elapsed(t, at).as_secs()).saturating_add(SLACK));
        let believable =
            if seq > self.last_seq { seq - self.last_seq <= allowed } else { self.last_seq - seq < WINDOW };
        if !believable {
            // Forged, or the stream really jumped: followed only once the next number confirms it.
            if seq.checked_sub(1).is_none_or(|prev| self.suspect != Some(prev)) {
                self.suspect = Some(seq);
                self.implausible = self.implausible.saturating_add(1);
                return SeqOutcome::Duplicate;
            }
            self.suspect = None;
            self.last_seq = seq;
            self.last_at = Some(at);
            self.received = self.received.saturating_add(1);
            self.total_received = self.total_received.saturating_add(1);
            return SeqOutcome::InOrder;
        }
        if seq <= self.last_seq {
            self.duplicates += 1;
            return SeqOutcome::Duplicate;
        }
        let missing = seq - self.last_seq - 1;
        self.last_seq = seq;
        self.last_at = Some(at);
        self.received += 1;
        self.total_received += 1;
        if missing == 0 {
            return SeqOutcome::InOrder;
        }
        // Saturating: any sender can write a sequence number near the end of the range.
        self.missing = self.missing.saturating_add(missing);
        self.total_missing = self.total_missing.saturating_add(missing);
        self.gaps += 1;
        SeqOutcome::Gap { missing }
    }

    /// The share of telegrams lost in this boot, 0.0 to 1.0.
    #[must_use]
    pub fn loss_rate(&self) -> f64 {
        let expected = self.received + self.missing;
        if expected == 0 {
            0.0
        } else {
            self.missing as f64 / expected as f64
        }
    }
}

/// How a meter is doing, from the dashboard's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Telegrams arrive; the last one is this old.
    Live(Duration),
    /// The listener runs but has had no telegram yet (and does not call the meter silent).
    Waiting,
    /// The last telegram is older than the stale limit, and the listener gives no reason.
    Stale(Duration),
    /// The listener's status says its watchdog sees no telegrams.
    MeterSilent,
    /// Nothing at all (no telegram, no status) from the listener for this long.
    ListenerGone(Duration),
}

impl Health {
    /// Whether the values on screen can be trusted as current.
    #[must_use]
    pub fn is_live(self) -> bool {
        matches!(self, Health::Live(_))
    }
}

/// `later - earlier`, or zero if `later` is not later.
#[must_use]
pub fn elapsed(earlier: Timestamp, later: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

impl Meter {
    fn new(listener: String, at: Timestamp) -> Meter {
        Meter {
            listener,
            telegram: None,
            telegram_at: None,
            status: None,
            status_at: None,
            last_datagram_at: at,
            history: VecDeque::new(),
            seq: SeqStats::default(),
        }
    }

    /// The meter's health at `now`.
    #[must_use]
    pub fn health(&self, now: Timestamp, settings: &Settings) -> Health {
        let silence = elapsed(self.last_datagram_at, now);
        if silence > settings.gone_after {
            return Health::ListenerGone(silence);
        }
        // A status is only believed while it is fresh; an old one says nothing about now.
        let status_fresh = self.status_at.is_some_and(|at| elapsed(at, now) <= settings.gone_after);
        if status_fresh && self.status.as_ref().is_some_and(|s| s.meter_silent) {
            return Health::MeterSilent;
        }
        match self.telegram_at {
            None => Health::Waiting,
            Some(at) => {
                let age = elapsed(at, now);
                if age > settings.stale_after {
                    Health::Stale(age)
                } else {
                    Health::Live(age)
                }
            }
        }
    }

    fn record_telegram(&mut self, telegram: Box<TelegramMessage>, at: Timestamp) {
        if self.seq.record(&telegram.origin.boot_id, telegram.seq, at) == SeqOutcome::Duplicate {
            return;
        }
        self.history.push_back(Sample::of(&telegram.values, at));
        self.telegram = Some(telegram);
        self.telegram_at = Some(at);
        self.prune(at);
    }

    fn prune(&mut self, now: Timestamp) {
        while self.history.len() > MAX_SAMPLES
            || self.history.front().is_some_and(|s| elapsed(s.at, now) > MAX_SPAN + Duration::from_secs(60))
        {
            self.history.pop_front();
        }
    }
}

fn kw(d: Option<Decimal>) -> Option<f32> {
    d.map(|d| d.to_f64() as f32)
}

impl Sample {
    /// The chart point for a telegram's values received at `at`.
    #[must_use]
    pub fn of(v: &Values, at: Timestamp) -> Sample {
        let net = kw(v.power_kw);
        let import_kw = kw(v.power_import_kw).or(net.map(|n| n.max(0.0))).unwrap_or(0.0);
        let export_kw = kw(v.power_export_kw).or(net.map(|n| (-n).max(0.0))).unwrap_or(0.0);
        Sample {
            at,
            import_kw,
            export_kw,
            // Net per phase, as the listener's parser derives it whenever either side is sent.
            phases_kw: [kw(v.power_l1_kw), kw(v.power_l2_kw), kw(v.power_l3_kw)],
        }
    }
}

impl App {
    /// A dashboard that has seen nothing yet, started at `now`.
    #[must_use]
    pub fn new(settings: Settings, now: Timestamp) -> App {
        let chart_minutes = settings.chart_minutes.clamp(1, 1440);
        App {
            settings,
            now,
            started_at: now,
            meters: Vec::new(),
            selected: 0,
            chart_minutes,
            chart_mode: ChartMode::ImportExport,
            page: Page::Overview,
            scroll: 0,
            help: false,
            size: (80, 24),
            quit: false,
            invalid_datagrams: 0,
            last_invalid: None,
            seal: None,
            refused_datagrams: 0,
            last_refused: None,
            ignored_meters: 0,
            net_errors: 0,
            last_net_error: None,
        }
    }

    /// The meter shown, if any.
    #[must_use]
    pub fn selected_meter(&self) -> Option<&Meter> {
        self.meters.get(self.selected)
    }

    /// Applies one event.
    pub fn update(&mut self, msg: Msg) {
        match msg {
            Msg::Datagram(message, at) => {
                self.seal = Some(Seal::Open);
                self.datagram(message, at);
            }
            Msg::Sealed(message, key_id, at) => {
                self.seal = Some(Seal::Sealed(key_id));
                self.datagram(message, at);
            }
            Msg::Refused(why, at) => {
                self.advance(at);
                self.refused_datagrams += 1;
                self.last_refused = Some(why);
            }
            Msg::Invalid(why, at) => {
                self.advance(at);
                self.invalid_datagrams += 1;
                self.last_invalid = Some(why);
            }
            Msg::NetError(why) => {
                self.net_errors += 1;
                self.last_net_error = Some(why);
            }
            Msg::Key(key) => self.key(key),
            Msg::Tick(now) => self.advance(now),
            Msg::Resize(columns, rows) => {
                self.size = (columns, rows);
                self.scroll = self.scroll.min(crate::ui::details_max_scroll(self, self.size));
            }
        }
    }

    /// Moves `now` forward (never back: a datagram stamped a moment before the last tick must not make ages
    /// negative).
    fn advance(&mut self, now: Timestamp) {
        if now > self.now {
            self.now = now;
        }
    }

    fn meter_mut(&mut self, listener: &str, at: Timestamp) -> Option<&mut Meter> {
        let index = match self.meters.iter().position(|m| m.listener == listener) {
            Some(i) => i,
            None if self.meters.len() >= MAX_METERS => {
                self.ignored_meters += 1;
                return None;
            }
            None => {
                self.meters.push(Meter::new(listener.to_owned(), at));
                self.meters.len() - 1
            }
        };
        let meter = &mut self.meters[index];
        meter.last_datagram_at = meter.last_datagram_at.max(at);
        Some(meter)
    }

    fn datagram(&mut self, message: Message, at: Timestamp) {
        self.advance(at);
        let listener = message.origin().listener.clone();
        let Some(meter) = self.meter_mut(&listener, at) else { return };
        match message {
            Message::Telegram(telegram) => meter.record_telegram(telegram, at),
            Message::Status(status) => {
                meter.status = Some(status);
                meter.status_at = Some(at);
            }
        }
    }

    fn key(&mut self, key: KeyEvent) {
        // Terminals that report releases (Windows, kitty protocol) would otherwise act twice per key.
        if key.kind == KeyEventKind::Release {
            return;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return;
        }
        match key.code {
            KeyCode::Esc if self.help => self.help = false,
            KeyCode::Esc if self.page == Page::Details => self.page = Page::Overview,
            KeyCode::Char('q' | 'Q') | KeyCode::Esc => self.quit = true,
            KeyCode::Char('?' | 'h') | KeyCode::F(1) => self.help = !self.help,
            KeyCode::Tab | KeyCode::Right | KeyCode::Char('l') => self.select_next(1),
            KeyCode::BackTab | KeyCode::Left => self.select_next(-1),
            KeyCode::Char(c @ '1'..='9') => {
                let index = usize::from(c as u8 - b'1');
                if index < self.meters.len() {
                    self.selected = index;
                    self.scroll = 0;
                }
            }
            KeyCode::Char('+' | '=') => self.chart_minutes = next_span(self.chart_minutes, true),
            KeyCode::Char('-' | '_') => self.chart_minutes = next_span(self.chart_minutes, false),
            KeyCode::Char('p') => {
                self.chart_mode = match self.chart_mode {
                    ChartMode::ImportExport => ChartMode::Phases,
                    ChartMode::Phases => ChartMode::ImportExport,
                }
            }
            KeyCode::Char('d') | KeyCode::Enter => {
                self.page = match self.page {
                    Page::Overview => Page::Details,
                    Page::Details => Page::Overview,
                };
                self.scroll = 0;
            }
            KeyCode::Up | KeyCode::Char('k') => self.scroll_by(-1),
            KeyCode::Down | KeyCode::Char('j') => self.scroll_by(1),
            KeyCode::PageUp => self.scroll_by(-i32::from(self.page_rows())),
            KeyCode::PageDown | KeyCode::Char(' ') => self.scroll_by(i32::from(self.page_rows())),
            KeyCode::Home | KeyCode::Char('g') => self.scroll = 0,
            KeyCode::End | KeyCode::Char('G') => self.scroll_by(i32::from(u16::MAX)),
            _ => {}
        }
    }

    /// Rows of the details page moved by PgUp/PgDn: a screenful less a line of context.
    fn page_rows(&self) -> u16 {
        self.size.1.saturating_sub(3).max(1)
    }

    fn scroll_by(&mut self, rows: i32) {
        if self.page != Page::Details {
            return;
        }
        let max = i32::from(crate::ui::details_max_scroll(self, self.size));
        self.scroll = (i32::from(self.scroll) + rows).clamp(0, max) as u16;
    }

    fn select_next(&mut self, step: isize) {
        let n = self.meters.len();
        if n == 0 {
            return;
        }
        self.selected = (self.selected as isize + step).rem_euclid(n as isize) as usize;
        self.scroll = 0;
    }
}

/// The next longer (or shorter) span on the [`SPANS`] ladder, starting from any value.
#[must_use]
pub fn next_span(current: u32, longer: bool) -> u32 {
    if longer {
        SPANS.iter().copied().find(|&s| s > current).unwrap_or(current)
    } else {
        SPANS.iter().rev().copied().find(|&s| s < current).unwrap_or(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::wire::{CrcStatus, Dialect, Origin, SCHEMA_VERSION};

    fn settings() -> Settings {
        Settings {
            group: "239.255.80.1:4141".parse().expect("addr"),
            interface: "127.0.0.1".parse().expect("interface"),
            stale_after: Duration::from_secs(15),
            gone_after: Duration::from_secs(15),
            chart_minutes: 5,
            timezone: jiff::tz::TimeZone::UTC,
        }
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("in range")
    }

    fn telegram(listener: &str, boot: &str, seq: u64, power: &str) -> Message {
        Message::Telegram(Box::new(TelegramMessage {
            schema: SCHEMA_VERSION,
            origin: Origin { listener: listener.into(), boot_id: boot.into() },
            seq,
            received_at: t(0),
            duration_ms: 10,
            crc: CrcStatus::Ok,
            encrypted: false,
            dialect: Dialect::Dsmr5,
            header: "XMX5".into(),
            values: Box::new(Values { power_kw: Some(power.parse().expect("decimal")), ..Values::default() }),
            obis: shared::wire::ObisMap::new(),
            errors: vec![],
        }))
    }

    fn key(code: KeyCode) -> Msg {
        Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    #[test]
    fn gaps_and_loss_are_counted_per_boot() {
        let t0: Timestamp = "2024-06-01T10:00:00Z".parse().expect("ts");
        let at = |s: i64| t0 + jiff::SignedDuration::from_secs(s);
        let mut s = SeqStats::default();
        assert_eq!(s.record("a", 5, at(0)), SeqOutcome::InOrder, "joining late is not a gap");
        assert_eq!(s.record("a", 6, at(1)), SeqOutcome::InOrder);
        assert_eq!(s.record("a", 9, at(4)), SeqOutcome::Gap { missing: 2 });
        assert_eq!(s.record("a", 9, at(4)), SeqOutcome::Duplicate);
        assert_eq!(s.record("a", 7, at(4)), SeqOutcome::Duplicate);
        assert_eq!((s.received, s.missing, s.gaps, s.duplicates), (3, 2, 1, 2));
        assert!((s.loss_rate() - 0.4).abs() < 1e-9);
        assert_eq!(s.record("b", 1, at(5)), SeqOutcome::InOrder, "a new boot restarts the numbering");
        assert_eq!((s.received, s.missing, s.gaps, s.restarts), (1, 0, 0, 1));
        assert_eq!((s.total_received, s.total_missing), (4, 2));
    }

    #[test]
    fn a_forged_sequence_number_neither_freezes_the_meter_nor_shows_an_absurd_loss() {
        let t0: Timestamp = "2024-06-01T10:00:00Z".parse().expect("ts");
        let at = |s: i64| t0 + jiff::SignedDuration::from_secs(s);
        let mut s = SeqStats::default();
        assert_eq!(s.record("a", 100, at(0)), SeqOutcome::InOrder);
        assert_eq!(s.record("a", u64::MAX, at(1)), SeqOutcome::Duplicate, "ignored");
        assert_eq!(s.record("a", 101, at(1)), SeqOutcome::InOrder, "the real stream goes on");
        // Two forged numbers in a row take over; the real stream takes back over after one telegram.
        assert_eq!(s.record("a", 5_000_000, at(2)), SeqOutcome::Duplicate);
        assert_eq!(s.record("a", 5_000_001, at(2)), SeqOutcome::InOrder);
        assert_eq!(s.record("a", 102, at(2)), SeqOutcome::Duplicate);
        assert_eq!(s.record("a", 103, at(3)), SeqOutcome::InOrder);
        assert_eq!(s.record("a", 104, at(4)), SeqOutcome::InOrder);
        assert_eq!((s.last_seq, s.missing, s.total_missing, s.implausible), (104, 0, 0, 3));
        // A long silence allows a long (real) gap.
        assert_eq!(s.record("a", 1104, at(104)), SeqOutcome::Gap { missing: 999 });
    }

    #[test]
    fn meters_are_kept_apart_and_selected_by_key() {
        let mut app = App::new(settings(), t(0));
        app.update(Msg::Datagram(telegram("north", "b1", 1, "1.5"), t(1)));
        app.update(Msg::Datagram(telegram("south", "b2", 1, "-0.5"), t(1)));
        app.update(Msg::Datagram(telegram("north", "b1", 2, "1.25"), t(2)));
        assert_eq!(app.meters.len(), 2);
        assert_eq!(app.meters[0].history.len(), 2);
        assert!((app.meters[1].history[0].export_kw - 0.5).abs() < 1e-6);
        app.update(key(KeyCode::Tab));
        assert_eq!(app.selected_meter().map(|m| m.listener.as_str()), Some("south"));
        app.update(key(KeyCode::Tab));
        assert_eq!(app.selected, 0, "Tab wraps around");
        app.update(key(KeyCode::Left));
        assert_eq!(app.selected, 1);
        app.update(key(KeyCode::Char('1')));
        assert_eq!(app.selected, 0);
        app.update(key(KeyCode::Char('7')));
        assert_eq!(app.selected, 0, "a number without a meter changes nothing");
    }

    #[test]
    fn duplicates_do_not_reach_the_chart() {
        let mut app = App::new(settings(), t(0));
        app.update(Msg::Datagram(telegram("m", "b", 1, "1"), t(1)));
        app.update(Msg::Datagram(telegram("m", "b", 1, "1"), t(1)));
        assert_eq!(app.meters[0].history.len(), 1);
        assert_eq!(app.meters[0].seq.duplicates, 1);
    }

    #[test]
    fn health_follows_the_clock_and_the_status() {
        let mut app = App::new(settings(), t(0));
        app.update(Msg::Datagram(telegram("m", "b", 1, "1"), t(0)));
        let s = settings();
        assert_eq!(app.meters[0].health(app.now, &s), Health::Live(Duration::ZERO));
        app.update(Msg::Tick(t(10)));
        let status = StatusMessage {
            schema: SCHEMA_VERSION,
            origin: Origin { listener: "m".into(), boot_id: "b".into() },
            sent_at: t(10),
            uptime_s: 10,
            source: "simulate".into(),
            port: shared::wire::PortState::Open,
            port_settings: None,
            last_seq: Some(1),
            last_telegram_age_ms: Some(10_000),
            meter_silent: false,
            counters: shared::wire::Counters::default(),
        };
        app.update(Msg::Datagram(Message::Status(status.clone()), t(10)));
        app.update(Msg::Tick(t(20)));
        assert_eq!(app.meters[0].health(app.now, &s), Health::Stale(Duration::from_secs(20)));
        let silent = StatusMessage { meter_silent: true, ..status };
        app.update(Msg::Datagram(Message::Status(silent), t(21)));
        assert_eq!(app.meters[0].health(app.now, &s), Health::MeterSilent);
        app.update(Msg::Tick(t(40)));
        assert_eq!(app.meters[0].health(app.now, &s), Health::ListenerGone(Duration::from_secs(19)));
    }

    #[test]
    fn time_never_runs_backwards() {
        let mut app = App::new(settings(), t(10));
        app.update(Msg::Tick(t(5)));
        assert_eq!(app.now, t(10));
        app.update(Msg::Datagram(telegram("m", "b", 1, "1"), t(12)));
        assert_eq!(app.now, t(12));
    }

    #[test]
    fn keys_change_the_view() {
        let mut app = App::new(settings(), t(0));
        app.update(key(KeyCode::Char('+')));
        assert_eq!(app.chart_minutes, 10);
        app.update(key(KeyCode::Char('-')));
        app.update(key(KeyCode::Char('-')));
        assert_eq!(app.chart_minutes, 2);
        app.update(key(KeyCode::Char('?')));
        assert!(app.help);
        app.update(key(KeyCode::Esc));
        assert!(!app.help && !app.quit, "Esc closes the help first");
        app.update(key(KeyCode::Char('d')));
        assert_eq!(app.page, Page::Details);
        app.update(key(KeyCode::Down));
        assert_eq!(app.scroll, 0, "nothing to scroll: no meter");
        app.update(key(KeyCode::Esc));
        assert_eq!(app.page, Page::Overview);
        app.update(key(KeyCode::Char('p')));
        assert_eq!(app.chart_mode, ChartMode::Phases);
        app.update(Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)));
        assert!(app.quit);
    }

    #[test]
    fn details_scroll_stays_within_the_text() {
        let mut app = App::new(settings(), t(0));
        app.update(Msg::Datagram(telegram("m", "b", 1, "1"), t(1)));
        app.update(Msg::Resize(80, 8));
        app.update(key(KeyCode::Down));
        assert_eq!(app.scroll, 0, "the overview does not scroll");
        app.update(key(KeyCode::Char('d')));
        let max = crate::ui::details_max_scroll(&app, (80, 8));
        assert!(max > 6, "a 6-row page should have more text than fits, max {max}");
        app.update(key(KeyCode::Down));
        app.update(key(KeyCode::PageDown));
        assert_eq!(app.scroll, 1 + 5);
        app.update(key(KeyCode::End));
        assert_eq!(app.scroll, max);
        app.update(key(KeyCode::Up));
        assert_eq!(app.scroll, max - 1, "scrolling back takes effect at once after End");
        app.update(Msg::Resize(200, 100));
        assert_eq!(app.scroll, 0, "a taller terminal shows it all");
        app.update(key(KeyCode::Home));
        assert_eq!(app.scroll, 0);
    }

    #[test]
    fn span_ladder_starts_anywhere() {
        assert_eq!(next_span(7, true), 10);
        assert_eq!(next_span(7, false), 5);
        assert_eq!(next_span(1440, true), 1440);
        assert_eq!(next_span(1, false), 1);
    }

    #[test]
    fn history_is_bounded_in_time() {
        let mut app = App::new(settings(), t(0));
        for i in 0..10u64 {
            let at = t(i as i64 * 3600 * 4);
            app.update(Msg::Datagram(telegram("m", "b", i + 1, "1"), at));
        }
        let m = &app.meters[0];
        assert!(m.history.len() <= 7, "{} samples older than a day kept", m.history.len());
        assert!(elapsed(m.history[0].at, app.now) <= MAX_SPAN + Duration::from_secs(60));
    }
}
