//! Drawing: `impl Widget for &App`, a pure function of the state.
//!
//! Nothing here reads a clock, a socket or the terminal: ages are `app.now` minus stored receive times, so the same
//! state always draws the same screen (which is what the snapshot tests rely on). Every drawing helper clips to the
//! area it is given, and the layout degrades step by step as the terminal shrinks (big digits → small digits →
//! plain text; fewer cards; no chart), down to a 1×1 terminal, without panicking.
//!
//! The overview is: a header line (meters, dialect, health), the net power in big digits beside per-phase gauges
//! with voltage and current, the power chart, then "cards" (energy registers, Belgian capacity, gas/water/heat,
//! health, meter clock and failures) packed in priority order into the rows that fit, and a footer with the keys.
//! The details page shows everything as scrollable text, so nothing is out of reach on a small terminal.

use std::fmt::Write as _;
use std::time::Duration;

use ratatui::buffer::Buffer;
use ratatui::layout::{Margin, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Bar, BarChart, BarGroup, Block, BorderType, Chart, Clear, Dataset, GraphType, Paragraph, Widget,
};
use shared::decimal::Decimal;
use shared::timestamp::MeterTime;
use shared::wire::{CapacityMonth, CrcStatus, DeviceKind, Dialect, PortState, TariffName};
use shared::wire::{TelegramMessage, Values};

use crate::app::{elapsed, App, ChartMode, Health, Meter, Page, Sample};
use crate::bigtext::Font;
use crate::format;

const IMPORT: Color = Color::LightRed;
const EXPORT: Color = Color::LightGreen;
const WARN: Color = Color::Yellow;
const BAD: Color = Color::Red;
const ACCENT: Color = Color::Cyan;
const PHASE_COLORS: [Color; 3] = [Color::Yellow, Color::LightBlue, Color::LightMagenta];
const DIM: Style = Style::new().fg(Color::DarkGray);
const LABEL: Style = Style::new().fg(Color::Gray);

/// The chart is not squeezed below this many rows to make room for cards.
const MIN_CHART: u16 = 7;
/// Gauge full scale when the meter does not tell its fuse: 25 A at 230 V.
const DEFAULT_PHASE_KW: f64 = 5.75;

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.is_empty() {
            return;
        }
        let (header_area, rest) = split_top(area, 1);
        let (body, footer_area) = split_bottom(rest, 1);
        header(self, header_area, buf);
        match self.selected_meter() {
            None => waiting(self, body, buf),
            Some(meter) => match (self.page, meter.telegram.as_deref()) {
                (Page::Details, _) => details(self, meter, body, buf),
                (Page::Overview, Some(t)) => overview(self, meter, t, body, buf),
                (Page::Overview, None) => no_telegram(self, meter, body, buf),
            },
        }
        footer(self, footer_area, buf);
        if self.help {
            help(area, buf);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Splitting areas. Plain arithmetic: ratatui's constraint solver would do the same for these fixed splits at many
// times the cost, which matters when a screen is drawn twice a second on a Raspberry Pi.

/// The top `rows` rows (or all there are) and the rest.
fn split_top(area: Rect, rows: u16) -> (Rect, Rect) {
    let rows = rows.min(area.height);
    (Rect { height: rows, ..area }, Rect { y: area.y + rows, height: area.height - rows, ..area })
}

/// The rest and the bottom `rows` rows (or all there are).
fn split_bottom(area: Rect, rows: u16) -> (Rect, Rect) {
    let (rest, bottom) = split_top(area, area.height - rows.min(area.height));
    (rest, bottom)
}

/// The left `cols` columns (or all there are) and the rest.
fn split_left(area: Rect, cols: u16) -> (Rect, Rect) {
    let cols = cols.min(area.width);
    (Rect { width: cols, ..area }, Rect { x: area.x + cols, width: area.width - cols, ..area })
}

/// The rest and the right `cols` columns (or all there are).
fn split_right(area: Rect, cols: u16) -> (Rect, Rect) {
    split_left(area, area.width - cols.min(area.width))
}

// ---------------------------------------------------------------------------------------------------------------
// Header, footer, help

fn health_span(health: Health) -> Span<'static> {
    match health {
        Health::Live(age) => Span::styled(format!("● live {}", format::duration(age)), Style::new().fg(EXPORT)),
        Health::Waiting => Span::styled("◌ no telegram yet", Style::new().fg(WARN)),
        Health::Stale(age) => {
            Span::styled(format!("▲ stale: last telegram {} ago", format::duration(age)), Style::new().fg(WARN).bold())
        }
        Health::MeterSilent => Span::styled("■ meter silent", Style::new().fg(BAD).bold()),
        Health::ListenerGone(d) => {
            Span::styled(format!("■ listener gone: nothing for {}", format::duration(d)), Style::new().fg(BAD).bold())
        }
    }
}

fn dialect_name(d: Dialect) -> &'static str {
    match d {
        Dialect::Dsmr22 => "DSMR 2.2",
        Dialect::Dsmr3 => "DSMR 3",
        Dialect::Dsmr4 => "DSMR 4",
        Dialect::Dsmr5 => "DSMR 5",
        Dialect::Belgian => "e-MUCS (BE)",
        Dialect::Luxembourg => "Smarty (LU)",
        _ => "other",
    }
}

/// Renders `spans` left to right, leaving out whole spans from the first one that does not fit; a footer key
/// whose label does not fit is left out with it.
fn spans_that_fit(spans: Vec<Span<'_>>, area: Rect, buf: &mut Buffer) {
    let mut used = 0;
    let mut fitting: Vec<Span> = spans
        .into_iter()
        .take_while(|s| {
            used += s.width();
            used <= usize::from(area.width)
        })
        .collect();
    if fitting.last().is_some_and(|s| s.style.bg == Some(Color::Gray)) {
        fitting.pop();
    }
    Line::from(fitting).render(area, buf);
}

fn header(app: &App, area: Rect, buf: &mut Buffer) {
    buf.set_style(area, Style::new().bg(Color::Black));
    let mut left = vec![Span::styled(" p1hub ", Style::new().fg(Color::Black).bg(ACCENT).bold()), Span::raw(" ")];
    for (i, m) in app.meters.iter().enumerate() {
        let label = format!(" {} {} ", i + 1, m.listener);
        if i == app.selected {
            left.push(Span::styled(label, Style::new().fg(Color::White).bg(Color::DarkGray).bold()));
        } else {
            left.push(Span::styled(label, LABEL));
        }
    }
    let mut right = Vec::new();
    if let Some(m) = app.selected_meter() {
        if let Some(t) = &m.telegram {
            right.push(Span::styled(format!("{} · {}  ", dialect_name(t.dialect), t.header), DIM));
        }
        right.push(health_span(m.health(app.now, &app.settings)));
        right.push(Span::raw(" "));
    }
    let right = Line::from(right);
    let (left_area, right_area) = split_right(area, (right.width() as u16).min(area.width.saturating_sub(8)));
    spans_that_fit(left, left_area, buf);
    right.right_aligned().render(right_area, buf);
}

fn footer(app: &App, area: Rect, buf: &mut Buffer) {
    let key = |k: &'static str| Span::styled(k, Style::new().fg(Color::Black).bg(Color::Gray));
    let label = |l: &'static str| Span::styled(l, LABEL);
    let left = vec![
        Span::raw(" "),
        key(" q "),
        label(" quit "),
        key(" ? "),
        label(" help "),
        key(" Tab "),
        label(" meter "),
        key(" +/- "),
        label(" span "),
        key(" p "),
        label(" phases "),
        key(" d "),
        label(if app.page == Page::Details { " overview " } else { " details " }),
    ];
    let mut problems = Vec::new();
    if app.invalid_datagrams > 0 {
        problems.push(format::count(app.invalid_datagrams, "invalid datagram"));
    }
    if app.refused_datagrams > 0 {
        problems.push(format::count(app.refused_datagrams, "refused datagram"));
    }
    if app.net_errors > 0 {
        problems.push(format::count(app.net_errors, "receive error"));
    }
    if app.ignored_meters > 0 {
        problems.push(format!("{} from too many meters", format::count(app.ignored_meters, "datagram")));
    }
    let right = if problems.is_empty() {
        // Nothing wrong with the group: show the selected meter's loss, which has no other place at 80 columns.
        // What is seen sealed says so, and with which key (open datagrams are the default and say nothing).
        let sealed = match app.seal {
            Some(crate::app::Seal::Sealed(id)) => format!("sealed {id} · "),
            _ => String::new(),
        };
        app.selected_meter().filter(|m| m.seq.received > 0).map_or_else(
            || {
                if sealed.is_empty() {
                    Line::default()
                } else {
                    Line::styled(format!("{} ", sealed.trim_end_matches(" · ")), LABEL)
                }
            },
            |m| Line::styled(format!("{sealed}seq {} · lost {} ", m.seq.last_seq, m.seq.missing), LABEL),
        )
    } else {
        Line::styled(format!("{} ", problems.join(" · ")), Style::new().fg(WARN))
    };
    // Problems on the group take room from the keys; the meter's loss only shows where the keys leave room.
    let left_width: usize = left.iter().map(Span::width).sum();
    let right_width = if problems.is_empty() && left_width + right.width() > usize::from(area.width) {
        0
    } else {
        (right.width() as u16).min(area.width / 2)
    };
    let (left_area, right_area) = split_right(area, right_width);
    spans_that_fit(left, left_area, buf);
    right.right_aligned().render(right_area, buf);
}

fn help(area: Rect, buf: &mut Buffer) {
    let rows: [(&str, &str); 12] = [
        ("q  Esc  Ctrl-C", "quit (Esc first closes this help or the details)"),
        ("?  h  F1", "show or hide this help"),
        ("Tab  →  l", "next meter"),
        ("Shift-Tab  ←", "previous meter"),
        ("1 … 9", "meter by number"),
        ("+  -", "longer or shorter chart span (1 min … 24 h)"),
        ("p", "chart: import/export or net power per phase"),
        ("d  Enter", "details: every value, OBIS lines, counters"),
        ("↑ ↓ PgUp PgDn", "scroll the details"),
        ("Home  End", "top or bottom of the details"),
        ("", ""),
        ("colours", "red: importing · green: exporting · yellow: late"),
    ];
    let mut lines: Vec<Line> = rows
        .iter()
        .map(|(k, v)| {
            Line::from(vec![Span::styled(format!(" {k:<15}"), Style::new().fg(ACCENT).bold()), Span::raw(*v)])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled(" Stale: no telegram for dashboard.stale_secs.", DIM));
    lines.push(Line::styled(" Listener gone: no datagram at all for three status periods.", DIM));
    let width = area.width.min(68);
    let height = area.height.min(lines.len() as u16 + 2);
    let popup = Rect::new(area.x + (area.width - width) / 2, area.y + (area.height - height) / 2, width, height);
    Clear.render(popup, buf);
    Paragraph::new(lines)
        .block(
            Block::bordered()
                .border_type(BorderType::Rounded)
                .border_style(Style::new().fg(ACCENT))
                .title(Line::from(" p1-dashboard · keys ").bold()),
        )
        .render(popup, buf);
}

// ---------------------------------------------------------------------------------------------------------------
// Screens without a telegram

fn centered_text(lines: Vec<Line<'_>>, title: &str, border: Style, area: Rect, buf: &mut Buffer) {
    let width = lines.iter().map(Line::width).max().unwrap_or(0) as u16 + 4;
    let width = width.min(area.width);
    let height = (lines.len() as u16 + 2).min(area.height);
    let rect = Rect::new(area.x + (area.width - width) / 2, area.y + (area.height - height) / 2, width, height);
    Paragraph::new(lines)
        .centered()
        .block(Block::bordered().border_type(BorderType::Rounded).border_style(border).title(title.to_owned()))
        .render(rect, buf);
}

fn waiting(app: &App, area: Rect, buf: &mut Buffer) {
    let s = &app.settings;
    let mut lines = vec![
        Line::from(vec![Span::raw("Listening on "), Span::styled(s.group.to_string(), Style::new().fg(ACCENT).bold())]),
        Line::from(format!("joined on interface {}", s.interface)),
        Line::from(format!("for {}", format::duration(elapsed(app.started_at, app.now)))),
        Line::raw(""),
        Line::styled("No datagram from a listener yet. Is p1-listener running", DIM),
        Line::styled("on the same group and port, and does multicast reach", DIM),
        Line::styled("this host (firewall, Wi-Fi, IGMP snooping)?", DIM),
    ];
    if let Some(why) = &app.last_invalid {
        lines.push(Line::raw(""));
        lines.push(Line::styled(format::count(app.invalid_datagrams, "invalid datagram"), Style::new().fg(WARN)));
        lines.push(Line::styled(format!("last: {why}"), Style::new().fg(WARN)));
    }
    if let Some(why) = &app.last_refused {
        lines.push(Line::raw(""));
        lines.push(Line::styled(format::count(app.refused_datagrams, "refused datagram"), Style::new().fg(WARN)));
        lines.push(Line::styled(format!("last: {why}"), Style::new().fg(WARN)));
    }
    if let Some(why) = &app.last_net_error {
        lines.push(Line::styled(format!("receive error: {why}"), Style::new().fg(BAD)));
    }
    centered_text(lines, " waiting for a listener ", Style::new().fg(ACCENT), area, buf);
}

fn port_span(port: PortState) -> Span<'static> {
    match port {
        PortState::Open => Span::styled("open", Style::new().fg(EXPORT)),
        PortState::Connecting => Span::styled("connecting", Style::new().fg(WARN)),
        PortState::Closed => Span::styled("closed", Style::new().fg(BAD)),
    }
}

fn status_lines(app: &App, meter: &Meter) -> Vec<Line<'static>> {
    let Some(status) = &meter.status else {
        return vec![Line::styled("no status datagram from this listener yet", DIM)];
    };
    let age = meter.status_at.map(|at| format::duration(elapsed(at, app.now))).unwrap_or_default();
    let mut lines = vec![
        Line::from(vec![
            Span::raw(format!("source {} · port ", status.source)),
            port_span(status.port),
            Span::raw(status.port_settings.as_ref().map(|s| format!(" {s}")).unwrap_or_default()),
        ]),
        Line::from(format!("up {} · last status {age} ago", format::seconds(status.uptime_s))),
    ];
    match status.last_telegram_age_ms {
        Some(ms) => lines.push(Line::from(format!(
            "the listener's last telegram: {} before that status",
            format::duration(Duration::from_millis(ms))
        ))),
        None => lines.push(Line::from("the listener has had no telegram since it started")),
    }
    if status.meter_silent {
        lines.push(Line::styled("its watchdog says: meter silent", Style::new().fg(BAD).bold()));
    }
    lines
}

fn no_telegram(app: &App, meter: &Meter, area: Rect, buf: &mut Buffer) {
    let health = meter.health(app.now, &app.settings);
    let mut lines = vec![Line::from(health_span(health)), Line::raw("")];
    lines.extend(status_lines(app, meter));
    let border = Style::new().fg(if matches!(health, Health::Waiting) { WARN } else { BAD });
    centered_text(lines, &format!(" {} ", meter.listener), border, area, buf);
}

// ---------------------------------------------------------------------------------------------------------------
// Overview

fn overview(app: &App, meter: &Meter, t: &TelegramMessage, area: Rect, buf: &mut Buffer) {
    let health = meter.health(app.now, &app.settings);
    if area.height < 6 || area.width < 30 {
        tiny(t, health, area, buf);
        return;
    }
    // Tall terminals get the large digits and roomier cards; 24 rows get the compact forms.
    let (top_height, card_height) = if area.height >= 30 { (8, 8) } else { (6, 7) };
    let rest = area.height - top_height;
    let cards = cards(app, meter, t, health);
    let row_budget = usize::from(rest.saturating_sub(MIN_CHART) / card_height).min(2);
    let rows = pack(&cards, area.width, row_budget);
    let all_rows_height = rows.len() as u16 * card_height;
    let (top, rest) = split_top(area, top_height);
    let (chart_area, mut cards_area) = split_bottom(rest, all_rows_height);
    power_row(t, health, top, buf);
    if chart_area.height >= 4 {
        chart(app, meter, chart_area, buf);
    }
    for row in &rows {
        let (row_area, below) = split_top(cards_area, card_height);
        cards_area = below;
        let widths = spread(&row.iter().map(|&i| &cards[i]).collect::<Vec<_>>(), row_area.width);
        let mut x = row_area.x;
        for (&i, w) in row.iter().zip(widths) {
            cards[i].render(Rect::new(x, row_area.y, w, row_area.height), buf);
            x += w;
        }
    }
}

/// A phase's net power (import minus export), as the listener's parser derives it whenever either side is sent.
fn phase_power(v: &Values, phase: usize) -> Option<Decimal> {
    [v.power_l1_kw, v.power_l2_kw, v.power_l3_kw].get(phase).copied().flatten()
}

fn voltages(v: &Values) -> [Option<Decimal>; 3] {
    [v.voltage_l1_v, v.voltage_l2_v, v.voltage_l3_v]
}

fn currents(v: &Values) -> [Option<Decimal>; 3] {
    [v.current_l1_a, v.current_l2_a, v.current_l3_a]
}

fn direction_color(kw: Option<Decimal>) -> Color {
    match kw.map(Decimal::mantissa) {
        Some(m) if m > 0 => IMPORT,
        Some(m) if m < 0 => EXPORT,
        _ => Color::White,
    }
}

fn direction_word(kw: Option<Decimal>) -> &'static str {
    match kw.map(Decimal::mantissa) {
        Some(m) if m > 0 => "importing",
        Some(m) if m < 0 => "exporting",
        Some(_) => "balanced",
        None => "not sent",
    }
}

fn kw_text(d: Option<Decimal>) -> String {
    d.map_or_else(|| "–".to_owned(), |d| format!("{} kW", format::signed(d)))
}

fn tiny(t: &TelegramMessage, health: Health, area: Rect, buf: &mut Buffer) {
    let v = &t.values;
    let net = v.power_kw;
    let mut lines = vec![Line::from(vec![
        Span::styled(kw_text(net), Style::new().fg(direction_color(net)).bold()),
        Span::raw(" "),
        Span::styled(direction_word(net), LABEL),
    ])];
    lines.push(Line::from(health_span(health)));
    let phases: Vec<String> =
        (0..3).filter_map(|i| phase_power(v, i).map(|p| format!("L{} {}", i + 1, format::signed(p)))).collect();
    if !phases.is_empty() {
        lines.push(Line::from(phases.join("  ")));
    }
    Paragraph::new(lines).render(area, buf);
}

fn power_row(t: &TelegramMessage, health: Health, area: Rect, buf: &mut Buffer) {
    let v = &t.values;
    let net = v.power_kw;
    let text = net.map_or_else(|| "-".to_owned(), format::signed);
    let inner_height = area.height.saturating_sub(2);
    let phases_min = 40;
    let font = [Font::Large, Font::Small]
        .into_iter()
        .find(|f| inner_height > f.height() && f.width(&text) + 6 + phases_min <= area.width);
    let box_width = font.map_or(22, |f| (f.width(&text) + 6).max(22)).min(area.width);
    let (power_area, phases_area) = split_left(area, box_width);

    let live = health.is_live();
    let color = if live { direction_color(net) } else { WARN };
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(Style::new().fg(color))
        .title(Line::from(" Net power ").bold());
    let inner = block.inner(power_area);
    block.render(power_area, buf);
    let mut label = vec![Span::styled("kW ", Style::new().fg(color).bold()), Span::styled(direction_word(net), LABEL)];
    if !live {
        label = vec![Span::styled("kW · not current", Style::new().fg(WARN).bold())];
    }
    let label = Line::from(label).centered();
    if let Some(f) = font {
        let width = f.width(&text);
        let x = inner.x + inner.width.saturating_sub(width) / 2;
        let top = inner.y + inner.height.saturating_sub(f.height() + 1) / 2;
        f.render(&text, x, top, inner, buf, Style::new().fg(color).bold());
        label.render(Rect::new(inner.x, top + f.height(), inner.width, 1).intersection(inner), buf);
    } else {
        let y = inner.y + inner.height.saturating_sub(2) / 2;
        Line::styled(text, Style::new().fg(color).bold())
            .centered()
            .render(Rect::new(inner.x, y, inner.width, 1).intersection(inner), buf);
        label.render(Rect::new(inner.x, y + 1, inner.width, 1).intersection(inner), buf);
    }
    phases(v, phases_area, buf);
}

/// The fuse the meter reports, if it is a real one: Belgian meters write 999 A for "no limit".
fn fuse(v: &Values) -> Option<Decimal> {
    v.fuse_a.filter(|a| a.to_f64() > 0.0 && a.to_f64() < 999.0)
}

fn phases(v: &Values, area: Rect, buf: &mut Buffer) {
    let scale = fuse(v).map_or(DEFAULT_PHASE_KW, |a| a.to_f64() * 0.230);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(DIM)
        .title(Line::from(" Phases ").bold().fg(Color::White))
        .title(
            Line::from(vec![
                Span::styled(" ◀ export ", Style::new().fg(EXPORT)),
                Span::styled(format!("±{} kW", format::short(scale)), LABEL),
                Span::styled(" import ▶ ", Style::new().fg(IMPORT)),
            ])
            .right_aligned(),
        );
    let inner = block.inner(area).inner(Margin::new(1, 0));
    block.render(area, buf);
    let (volts, amps) = (voltages(v), currents(v));
    let present: Vec<usize> =
        (0..3).filter(|&i| phase_power(v, i).is_some() || volts[i].is_some() || amps[i].is_some()).collect();
    if present.is_empty() {
        let sides = format::aligned(&[v.power_import_kw, v.power_export_kw]);
        let lines = vec![
            Line::from(vec![label("import", 8), Span::styled(format!("{} kW", sides[0]), Style::new().fg(IMPORT))]),
            Line::from(vec![label("export", 8), Span::styled(format!("{} kW", sides[1]), Style::new().fg(EXPORT))]),
            Line::styled("this meter sends no per-phase values", DIM),
        ];
        Paragraph::new(lines).render(inner, buf);
        return;
    }
    let volts = format::aligned(&volts);
    let amps = format::aligned(&amps);
    let powers = [phase_power(v, 0), phase_power(v, 1), phase_power(v, 2)];
    // Aligned on the point: a value that crossed the wire as 0.07 for 0.070 gets its zero back.
    let values: Vec<String> = format::aligned(&powers)
        .into_iter()
        .zip(powers)
        .map(|(text, p)| match p {
            Some(d) if d.mantissa() > 0 => format!("+{text} kW"),
            Some(_) => format!("{text} kW"),
            None => text,
        })
        .collect();
    let value_width = present.iter().map(|&i| values[i].chars().count()).max().unwrap_or(0);
    let volt_width = present.iter().map(|&i| volts[i].chars().count()).max().unwrap_or(0);
    let amp_width = present.iter().map(|&i| amps[i].chars().count()).max().unwrap_or(0);
    let spacing = if inner.height >= present.len() as u16 * 2 { 2 } else { 1 };
    let used = present.len() as u16 * spacing - (spacing - 1);
    let mut y = inner.y + inner.height.saturating_sub(used) / 2;
    for &i in &present {
        if y >= inner.bottom() {
            break;
        }
        let extra = format!("  {:>volt_width$} V  {:>amp_width$} A", volts[i], amps[i]);
        let line = PhaseLine { phase: i, power: phase_power(v, i), value: &values[i], value_width, extra: &extra };
        line.render(scale, Rect::new(inner.x, y, inner.width, 1), buf);
        y += spacing;
    }
}

struct PhaseLine<'a> {
    phase: usize,
    power: Option<Decimal>,
    value: &'a str,
    value_width: usize,
    extra: &'a str,
}

impl PhaseLine<'_> {
    /// `L1 ──███┃──── -3.425 kW  238.4 V  16 A`, dropping the volts and amps, then the bar, as room runs out.
    fn render(&self, scale: f64, area: Rect, buf: &mut Buffer) {
        let width = usize::from(area.width);
        let fixed = 3 + self.value_width + 1;
        let extra_width = self.extra.chars().count();
        let show_extra = width >= fixed + extra_width + 9;
        let bar_width = width.saturating_sub(fixed + if show_extra { extra_width } else { 0 });
        let mut spans =
            vec![Span::styled(format!("L{} ", self.phase + 1), Style::new().fg(PHASE_COLORS[self.phase]).bold())];
        if bar_width >= 7 {
            spans.extend(bar(self.power.map_or(0.0, Decimal::to_f64), scale, bar_width as u16));
            spans.push(Span::raw(" "));
        }
        spans.push(Span::styled(
            format!("{:>w$}", self.value, w = self.value_width),
            Style::new().fg(direction_color(self.power)).bold(),
        ));
        if show_extra {
            spans.push(Span::styled(self.extra.to_owned(), LABEL));
        }
        Line::from(spans).render(area, buf);
    }
}

/// A centre-zero bar: export grows left of the centre line, import right, at half-cell resolution.
fn bar(kw: f64, scale: f64, width: u16) -> Vec<Span<'static>> {
    let half = usize::from((width - 1) / 2);
    let halves = ((kw.abs() / scale).min(1.0) * (half * 2) as f64).round() as usize;
    let (full, part) = (halves / 2, halves % 2 == 1);
    let over = kw.abs() > scale;
    let track = |n: usize| Span::styled("─".repeat(n), DIM);
    let body = if over { full.saturating_sub(1) } else { full };
    let mut spans = Vec::new();
    if kw < 0.0 {
        spans.push(track(half - full - usize::from(part)));
        if part {
            spans.push(Span::styled("▐", Style::new().fg(EXPORT)));
        }
        if over {
            spans.push(Span::styled("◀", Style::new().fg(EXPORT)));
        }
        spans.push(Span::styled("█".repeat(body), Style::new().fg(EXPORT)));
        spans.push(Span::styled("┃", LABEL));
        spans.push(track(half));
    } else {
        spans.push(track(half));
        spans.push(Span::styled("┃", LABEL));
        spans.push(Span::styled("█".repeat(body), Style::new().fg(IMPORT)));
        if over {
            spans.push(Span::styled("▶", Style::new().fg(IMPORT)));
        }
        if part {
            spans.push(Span::styled("▌", Style::new().fg(IMPORT)));
        }
        spans.push(track(half - full - usize::from(part)));
    }
    // An even width leaves one cell over: pad so every bar has the width asked for.
    if (width - 1) % 2 == 1 {
        spans.push(Span::raw(" "));
    }
    spans
}

// ---------------------------------------------------------------------------------------------------------------
// Chart

/// The smallest "round" number (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10^k) that is at least `v`, for axis bounds.
fn nice_ceil(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 0.0;
    }
    let mut base = 10f64.powf(v.log10().floor());
    loop {
        for step in [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0] {
            if base * step >= v * 0.999_999 {
                return base * step;
            }
        }
        base *= 10.0;
    }
}

fn span_text(minutes: u32) -> String {
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

fn half_span_text(minutes: u32) -> String {
    let secs = u64::from(minutes) * 30;
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} m {s} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

/// The samples of the chart's window, reduced to at most `columns` points per series (keeping each bucket's peak,
/// so short spikes stay visible), split where telegrams stopped for longer than `gap`.
fn series(meter: &Meter, now: jiff::Timestamp, span: Duration, gap: Duration, columns: usize) -> Vec<Vec<Sample>> {
    let start = now.checked_sub(span).unwrap_or(now);
    let bucket = span.as_secs_f64() / columns.max(1) as f64;
    let mut segments: Vec<Vec<Sample>> = Vec::new();
    let mut current: Vec<Sample> = Vec::new();
    let mut last: Option<(jiff::Timestamp, i64)> = None;
    // The history is in arrival order: skip what is older than the chart without looking at it (a day at one
    // telegram a second is 86 400 samples, and this runs every frame).
    let first = meter.history.partition_point(|s| s.at < start);
    for s in meter.history.range(first..).filter(|s| s.at >= start && s.at <= now) {
        let b = (elapsed(start, s.at).as_secs_f64() / bucket) as i64;
        if last.is_some_and(|(at, _)| elapsed(at, s.at) > gap) {
            segments.push(std::mem::take(&mut current));
        }
        let same_bucket = last.is_some_and(|(_, lb)| lb == b) && !current.is_empty();
        last = Some((s.at, b));
        match current.last_mut() {
            Some(prev) if same_bucket => {
                prev.import_kw = prev.import_kw.max(s.import_kw);
                prev.export_kw = prev.export_kw.max(s.export_kw);
                for (p, n) in prev.phases_kw.iter_mut().zip(s.phases_kw) {
                    if n.is_some_and(|n| p.is_none_or(|p| n.abs() > p.abs())) {
                        *p = n;
                    }
                }
            }
            _ => current.push(*s),
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    segments
}

/// Y bounds and labels: symmetric around zero when both directions occur (so the middle label is 0), else from
/// zero to the peak.
fn y_axis(low: f64, high: f64) -> ([f64; 2], [String; 3]) {
    let (top, bottom) = (nice_ceil(high), nice_ceil(-low));
    let label = |v: f64| format::short(v);
    match (top > 0.0, bottom > 0.0) {
        (true, true) => {
            let m = top.max(bottom);
            ([-m, m], [label(-m), "0".into(), format!("{} kW", label(m))])
        }
        (false, true) => ([-bottom, 0.0], [label(-bottom), label(-bottom / 2.0), "0 kW".into()]),
        (true, false) => ([0.0, top], ["0".into(), label(top / 2.0), format!("{} kW", label(top))]),
        (false, false) => ([0.0, 1.0], ["0".into(), "0.5".into(), "1 kW".into()]),
    }
}

fn chart(app: &App, meter: &Meter, area: Rect, buf: &mut Buffer) {
    let span = Duration::from_secs(u64::from(app.chart_minutes) * 60);
    let mut title = vec![Span::styled(format!(" Power · last {} ", span_text(app.chart_minutes)), Style::new().bold())];
    match app.chart_mode {
        ChartMode::ImportExport => {
            title.push(Span::styled("▆ import ", Style::new().fg(IMPORT)));
            title.push(Span::styled("▆ export ", Style::new().fg(EXPORT)));
        }
        ChartMode::Phases => {
            for (i, c) in PHASE_COLORS.iter().enumerate() {
                title.push(Span::styled(format!("━ L{} ", i + 1), Style::new().fg(*c)));
            }
        }
    }
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(DIM)
        .title(Line::from(title))
        .title(Line::styled(" +/- span · p phases ", DIM).right_aligned());
    // Braille gives two points per column; more points than that only cost time.
    let columns = usize::from(area.width.saturating_sub(10)) * 2;
    let segments = series(meter, app.now, span, app.settings.stale_after, columns);
    let x = |s: &Sample| -elapsed(s.at, app.now).as_secs_f64();

    let mut points: Vec<(Color, Vec<(f64, f64)>)> = Vec::new();
    let (mut low, mut high) = (0.0f64, 0.0f64);
    for seg in &segments {
        match app.chart_mode {
            ChartMode::ImportExport => {
                let imp: Vec<(f64, f64)> = seg.iter().map(|s| (x(s), f64::from(s.import_kw))).collect();
                let exp: Vec<(f64, f64)> = seg.iter().map(|s| (x(s), -f64::from(s.export_kw))).collect();
                high = imp.iter().fold(high, |m, p| m.max(p.1));
                low = exp.iter().fold(low, |m, p| m.min(p.1));
                // A flat zero line of the other direction would paint over the axis: leave it out.
                if imp.iter().any(|p| p.1 > 0.0) || exp.iter().all(|p| p.1 == 0.0) {
                    points.push((IMPORT, imp));
                }
                if exp.iter().any(|p| p.1 < 0.0) {
                    points.push((EXPORT, exp));
                }
            }
            ChartMode::Phases => {
                for (i, color) in PHASE_COLORS.iter().enumerate() {
                    let pts: Vec<(f64, f64)> =
                        seg.iter().filter_map(|s| s.phases_kw[i].map(|p| (x(s), f64::from(p)))).collect();
                    high = pts.iter().fold(high, |m, p| m.max(p.1));
                    low = pts.iter().fold(low, |m, p| m.min(p.1));
                    points.push((*color, pts));
                }
            }
        }
    }
    let (bounds, labels) = y_axis(low, high);
    let graph = if app.chart_mode == ChartMode::ImportExport { GraphType::Area } else { GraphType::Line };
    let datasets: Vec<Dataset> = points
        .iter()
        .map(|(color, pts)| {
            Dataset::default().marker(Marker::Braille).graph_type(graph).style(Style::new().fg(*color)).data(pts)
        })
        .collect();
    let secs = span.as_secs_f64();
    Chart::new(datasets)
        .block(block)
        .legend_position(None)
        .x_axis(Axis::default().bounds([-secs, 0.0]).style(DIM).labels([
            Span::styled(format!("-{}", span_text(app.chart_minutes)), LABEL),
            Span::styled(format!("-{}", half_span_text(app.chart_minutes)), LABEL),
            Span::styled("now", LABEL),
        ]))
        .y_axis(Axis::default().bounds(bounds).style(DIM).labels(labels.map(|l| Span::styled(l, LABEL))))
        .render(area, buf);
    if segments.is_empty() {
        let inner = Block::bordered().inner(area);
        let y = inner.y + inner.height / 2;
        Line::styled(format!("no telegram in the last {}", span_text(app.chart_minutes)), DIM)
            .centered()
            .render(Rect::new(inner.x, y, inner.width, 1).intersection(inner), buf);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Cards

/// One small bordered panel of the overview.
struct Card<'a> {
    title: Line<'a>,
    lines: Vec<Line<'a>>,
    /// Narrowest useful width, borders included.
    min_width: u16,
    /// The width it looks best at (at least `min_width`).
    preferred_width: u16,
    border: Style,
    /// Belgian capacity history, drawn as bars under or beside the lines.
    bars: &'a [CapacityMonth],
}

impl<'a> Card<'a> {
    fn new(title: &str, lines: Vec<Line<'a>>) -> Card<'a> {
        let widest = lines.iter().map(Line::width).max().unwrap_or(0) as u16;
        // Borders plus one column of padding on the left.
        let min_width = widest.max(title.chars().count() as u16 + 2).min(44) + 3;
        let title = Line::from(title.to_owned()).bold();
        Card { title, lines, min_width, preferred_width: min_width, border: DIM, bars: &[] }
    }

    fn render(&self, area: Rect, buf: &mut Buffer) {
        let block = Block::bordered()
            .border_type(BorderType::Rounded)
            .border_style(self.border)
            .title(self.title.clone().fg(Color::White));
        let inner = block.inner(area);
        let inner = Rect { x: inner.x.saturating_add(1), width: inner.width.saturating_sub(1), ..inner };
        block.render(area, buf);
        if self.bars.is_empty() {
            Paragraph::new(self.lines.clone()).render(inner, buf);
            return;
        }
        let text_width = self.lines.iter().map(Line::width).max().unwrap_or(0) as u16;
        let bars_wide = self.bars.len() as u16 * 3;
        if inner.width >= text_width + 2 + bars_wide {
            let (text, chart) = split_left(inner, text_width + 2);
            Paragraph::new(self.lines.clone()).render(text, buf);
            capacity_bars(self.bars, chart, buf);
        } else {
            let text_rows = (self.lines.len() as u16).min(inner.height.saturating_sub(3));
            let (text, chart) = split_top(inner, text_rows);
            Paragraph::new(self.lines.clone()).render(text, buf);
            capacity_bars(self.bars, chart, buf);
        }
    }
}

/// Rows of cards (indices), in priority order, in at most `max_rows` rows of `width` columns: every card at its
/// preferred width if that fits them all, else as many as fit at their minimum widths.
fn pack(cards: &[Card], width: u16, max_rows: usize) -> Vec<Vec<usize>> {
    let preferred = pack_by(cards, width, max_rows, |c| c.preferred_width);
    if preferred.iter().map(Vec::len).sum::<usize>() == cards.len() {
        return preferred;
    }
    pack_by(cards, width, max_rows, |c| c.min_width)
}

fn pack_by(cards: &[Card], width: u16, max_rows: usize, card_width: impl Fn(&Card) -> u16) -> Vec<Vec<usize>> {
    let mut left: Vec<usize> = (0..cards.len()).collect();
    let mut rows = Vec::new();
    while rows.len() < max_rows && !left.is_empty() {
        let mut used = 0u16;
        let mut row = Vec::new();
        left.retain(|&i| {
            let w = card_width(&cards[i]);
            if used + w <= width {
                used += w;
                row.push(i);
                false
            } else {
                true
            }
        });
        if row.is_empty() {
            break;
        }
        rows.push(row);
    }
    rows
}

/// Widths for the cards of a row: each card's minimum, then up to its preferred width in priority order, then
/// what is left of `total` shared evenly.
fn spread(cards: &[&Card], total: u16) -> Vec<u16> {
    let mut widths: Vec<u16> = cards.iter().map(|c| c.min_width).collect();
    let n = widths.len() as u16;
    if n == 0 {
        return widths;
    }
    let mut extra = total.saturating_sub(widths.iter().sum());
    for (w, c) in widths.iter_mut().zip(cards) {
        let grow = c.preferred_width.saturating_sub(*w).min(extra);
        *w += grow;
        extra -= grow;
    }
    for (i, w) in widths.iter_mut().enumerate() {
        *w += extra / n + u16::from((i as u16) < extra % n);
    }
    widths
}

fn label(text: &str, width: usize) -> Span<'static> {
    Span::styled(format!("{text:<width$}"), LABEL)
}

/// The cards for a telegram, most important first.
fn cards<'a>(app: &App, meter: &Meter, t: &'a TelegramMessage, health: Health) -> Vec<Card<'a>> {
    let mut out = Vec::new();
    out.extend(energy_card(&t.values, t.dialect));
    out.extend(capacity_card(&t.values));
    out.extend(utilities_card(app, &t.values));
    out.push(health_card(app, meter, health));
    out.push(meter_card(app, t));
    out
}

/// The names of energy registers 1 and 2.
fn register_names(v: &Values, dialect: Dialect) -> [&'static str; 2] {
    let name = |n: TariffName| match n {
        TariffName::Low => "low",
        TariffName::Normal => "normal",
    };
    let other = |n: TariffName| if n == TariffName::Low { "normal" } else { "low" };
    match (v.tariff, v.tariff_name) {
        (Some(1), Some(n)) => [name(n), other(n)],
        (Some(2), Some(n)) => [other(n), name(n)],
        // Belgium counts day (normal) on register 1; the Netherlands counts low (night) on it.
        _ if dialect == Dialect::Belgian => ["normal", "low"],
        _ => ["low", "normal"],
    }
}

fn energy_card(v: &Values, dialect: Dialect) -> Option<Card<'static>> {
    let names = register_names(v, dialect);
    let rows = [
        (Some(1u8), format!("T1 {}", names[0]), v.energy_import_t1_kwh, v.energy_export_t1_kwh),
        (Some(2u8), format!("T2 {}", names[1]), v.energy_import_t2_kwh, v.energy_export_t2_kwh),
        (None, "total".to_owned(), v.energy_import_kwh, v.energy_export_kwh),
    ];
    let rows: Vec<_> = rows.into_iter().filter(|r| r.2.is_some() || r.3.is_some()).collect();
    if rows.is_empty() {
        return None;
    }
    let has_export = rows.iter().any(|r| r.3.is_some());
    let imports = format::aligned(&rows.iter().map(|r| r.2).collect::<Vec<_>>());
    let exports = format::aligned(&rows.iter().map(|r| r.3).collect::<Vec<_>>());
    let iw = imports.iter().map(String::len).max().unwrap_or(0).max(6);
    let ew = exports.iter().map(String::len).max().unwrap_or(0).max(6);
    let nw = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let mut head = format!("  {:nw$} {:>iw$}", "", "import");
    if has_export {
        let _ = write!(head, " {:>ew$}", "export");
    }
    let mut lines = vec![Line::styled(head, LABEL)];
    for (((register, name, _, _), imp), exp) in rows.iter().zip(&imports).zip(&exports) {
        let active = register.is_some() && *register == v.tariff;
        let (name_style, value_style) =
            if active { (Style::new().fg(ACCENT).bold(), Style::new().bold()) } else { (LABEL, Style::new()) };
        let mut spans = vec![
            Span::styled(if active { "▶ " } else { "  " }, Style::new().fg(ACCENT).bold()),
            Span::styled(format!("{name:nw$} "), name_style),
            Span::styled(format!("{imp:>iw$}"), value_style),
        ];
        if has_export {
            spans.push(Span::styled(format!(" {exp:>ew$}"), value_style));
        }
        lines.push(Line::from(spans));
    }
    if v.tariff.is_some() {
        lines.push(Line::styled("▶ counting now", DIM));
    }
    Some(Card::new(" Energy · kWh ", lines))
}

fn capacity_card(v: &Values) -> Option<Card<'_>> {
    if v.capacity_demand_kw.is_none() && v.capacity_peak_kw.is_none() && v.capacity_history.is_empty() {
        return None;
    }
    let kw = |d: Option<Decimal>| d.map_or_else(|| "–".to_owned(), |d| format!("{d} kW"));
    let mut lines = vec![
        Line::from(vec![label("15 min", 7), Span::styled(kw(v.capacity_demand_kw), Style::new().bold())]),
        Line::from(vec![label("peak", 7), Span::styled(kw(v.capacity_peak_kw), Style::new().fg(WARN).bold())]),
    ];
    if let Some(at) = &v.capacity_peak_at {
        lines.push(Line::from(vec![label("at", 7), Span::raw(at.local.strftime("%m-%d %H:%M").to_string())]));
    }
    if v.capacity_history.is_empty() {
        return Some(Card::new(" Capacity ", lines));
    }
    let months = v.capacity_history.len() as u16;
    let mut card = Card::new(&format!(" Capacity · {months} months "), lines);
    // Narrow: one column a month under the text. Preferred: labelled bars three columns wide beside it.
    card.min_width = card.min_width.max(months + 3);
    card.preferred_width = card.min_width + 2 + months * 4;
    card.bars = &v.capacity_history;
    Some(card)
}

/// The month a capacity peak belongs to: the peak's own time, else the day before the month stamp (which marks
/// the start of the following month).
fn capacity_month(m: &CapacityMonth) -> Option<jiff::civil::Date> {
    if let Some(at) = &m.at {
        return Some(at.local.date());
    }
    m.month.as_ref().and_then(|s| s.local.date().yesterday().ok())
}

fn capacity_bars(history: &[CapacityMonth], area: Rect, buf: &mut Buffer) {
    if area.height < 2 || area.width == 0 || history.is_empty() {
        return;
    }
    let n = history.len() as u16;
    let fits = |w: u16, gap: u16| n * w + (n - 1) * gap <= area.width;
    let (bar_width, gap) =
        [(4, 1), (3, 1), (2, 1), (1, 1), (1, 0)].into_iter().find(|&(w, g)| fits(w, g)).unwrap_or((1, 0));
    // Too narrow even for one column a month: show the latest months.
    let shown = &history[history.len().saturating_sub(usize::from(area.width))..];
    let bars: Vec<Bar> = shown
        .iter()
        .map(|m| {
            let date = capacity_month(m);
            let month = match bar_width {
                1 => date.map(|d| d.strftime("%b").to_string().chars().take(1).collect()).unwrap_or_default(),
                _ => date.map(|d| d.strftime("%b").to_string()).unwrap_or_default(),
            };
            let text = if bar_width >= 3 { format!("{:.1}", m.kw.to_f64()) } else { String::new() };
            Bar::default()
                .value((m.kw.to_f64() * 1000.0).max(0.0) as u64)
                .label(Line::from(month))
                .text_value(text)
                .style(Style::new().fg(ACCENT))
                .value_style(Style::new().fg(Color::Black).bg(ACCENT))
        })
        .collect();
    BarChart::default()
        .data(BarGroup::default().bars(&bars))
        .bar_width(bar_width)
        .bar_gap(gap)
        .label_style(LABEL)
        .render(area, buf);
}

struct Reading<'r> {
    kind: &'static str,
    value: Option<Decimal>,
    unit: &'r str,
    at: Option<MeterTime>,
}

fn readings(v: &Values) -> Vec<Reading<'_>> {
    if v.devices.is_empty() {
        let mut out = Vec::new();
        if v.gas_m3.is_some() {
            out.push(Reading { kind: "gas", value: v.gas_m3, unit: "m3", at: v.gas_at });
        }
        if v.water_m3.is_some() {
            out.push(Reading { kind: "water", value: v.water_m3, unit: "m3", at: v.water_at });
        }
        if v.heat_gj.is_some() {
            out.push(Reading { kind: "heat", value: v.heat_gj, unit: "GJ", at: v.heat_at });
        }
        return out;
    }
    v.devices
        .iter()
        .map(|d| Reading {
            kind: match d.kind {
                DeviceKind::Gas => "gas",
                DeviceKind::Water => "water",
                DeviceKind::Heat => "heat",
                DeviceKind::HeatCool => "heat/cool",
                DeviceKind::Other => "device",
            },
            value: d.value,
            unit: d.unit.as_deref().unwrap_or(""),
            at: d.at,
        })
        .collect()
}

fn utilities_card<'a>(app: &App, v: &'a Values) -> Option<Card<'a>> {
    let readings = readings(v);
    if readings.is_empty() {
        return None;
    }
    let today = app.now.to_zoned(app.settings.timezone.clone()).date();
    let mut kinds: Vec<&str> = readings.iter().map(|r| r.kind).collect();
    kinds.dedup();
    let mut lines = Vec::new();
    for r in &readings {
        let color = match r.kind {
            "gas" => Color::LightYellow,
            "water" => Color::LightBlue,
            _ => Color::LightMagenta,
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{:<6}", r.kind), Style::new().fg(color).bold()),
            Span::styled(r.value.map_or_else(|| "–".to_owned(), |d| d.to_string()), Style::new().bold()),
            Span::raw(format!(" {}", format::unit(r.unit))),
        ]));
        let when = match &r.at {
            Some(at) => {
                let shown = if at.local.date() == today { "%H:%M" } else { "%Y-%m-%d %H:%M" };
                let age = elapsed(at.timestamp(), app.now);
                format!("  {} · {} ago", at.local.strftime(shown), format::ago(age.as_secs()))
            }
            None => "  no time given".to_owned(),
        };
        lines.push(Line::styled(when, DIM));
    }
    let title = format!(" {} ", kinds.iter().map(|k| capitalise(k)).collect::<Vec<_>>().join(" · "));
    Some(Card::new(&title, lines))
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn meter_card<'a>(app: &App, t: &'a TelegramMessage) -> Card<'a> {
    let v = &t.values;
    let mut lines = Vec::new();
    let received = t.received_at.to_zoned(app.settings.timezone.clone());
    if let Some(mt) = &v.meter_time {
        lines.push(Line::from(vec![label("meter", 6), Span::raw(format::meter_time(mt))]));
        let skew = mt.timestamp().duration_since(t.received_at).as_millis();
        let skew = i64::try_from(skew).unwrap_or(i64::MAX);
        let style = if skew.abs() > 60_000 { Style::new().fg(WARN) } else { DIM };
        lines.push(Line::from(vec![
            label("recv", 6),
            Span::raw(received.strftime("%H:%M:%S%.1f").to_string()),
            Span::styled(format!(" clock {}", format::clock_offset(skew)), style),
        ]));
    } else {
        lines.push(Line::from(vec![label("meter", 6), Span::styled("sends no clock", DIM)]));
        lines.push(Line::from(vec![label("recv", 6), Span::raw(received.strftime("%Y-%m-%d %H:%M:%S").to_string())]));
    }
    if let Some(m) = v.text_message.as_deref().filter(|m| !m.trim().is_empty()) {
        let m: String = m.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        lines.push(Line::from(vec![label("msg", 6), Span::styled(m, Style::new().fg(ACCENT))]));
    }
    if v.power_failures.is_some() || v.long_power_failures.is_some() {
        let n = |x: Option<u64>| x.map_or_else(|| "–".to_owned(), |x| x.to_string());
        lines.push(Line::from(vec![
            label("fails", 6),
            Span::raw(format!("{} ({} long)", n(v.power_failures), n(v.long_power_failures))),
        ]));
    }
    if let Some(last) =
        v.power_failure_log.iter().filter(|f| f.end.is_some()).max_by_key(|f| f.end.map(|e| e.timestamp()))
    {
        let end = last.end.as_ref().map(|e| e.local.strftime("%Y-%m-%d %H:%M").to_string()).unwrap_or_default();
        lines.push(Line::from(vec![
            label(" last", 6),
            Span::raw(format!("{end} · {}", format::seconds(last.duration_s))),
        ]));
    }
    let sags = [v.voltage_sags_l1, v.voltage_sags_l2, v.voltage_sags_l3];
    let swells = [v.voltage_swells_l1, v.voltage_swells_l2, v.voltage_swells_l3];
    if sags.iter().chain(&swells).any(Option::is_some) {
        let list = |xs: &[Option<u64>; 3]| xs.iter().flatten().map(ToString::to_string).collect::<Vec<_>>().join("/");
        let style =
            if sags.iter().chain(&swells).flatten().any(|&n| n > 0) { Style::new().fg(WARN) } else { Style::new() };
        lines.push(Line::from(vec![
            label("sags", 6),
            Span::styled(format!("{} · swells {}", list(&sags), list(&swells)), style),
        ]));
    }
    let mut extra = Vec::new();
    if let Some(b) = v.breaker_state {
        extra.push(match b {
            0 => "breaker off".to_owned(),
            1 => "breaker on".to_owned(),
            _ => "breaker ready".to_owned(),
        });
    }
    if let Some(l) = v.limiter_kw {
        extra.push(if l.to_f64() >= 999.0 { "no limiter".to_owned() } else { format!("limit {l} kW") });
    }
    if let Some(f) = fuse(v) {
        extra.push(format!("fuse {f} A"));
    }
    if !extra.is_empty() {
        lines.push(Line::from(vec![label("grid", 6), Span::raw(extra.join(" · "))]));
    }
    let mut card = Card::new(" Meter ", lines);
    // The text message is free text: let it use what width there is, but not claim a whole row.
    card.min_width = card.min_width.min(38);
    card
}

fn health_card(app: &App, meter: &Meter, health: Health) -> Card<'static> {
    let seq = &meter.seq;
    let age = meter.telegram_at.map(|at| format::duration(elapsed(at, app.now))).unwrap_or_default();
    let (age_style, border) = match health {
        Health::Live(_) => (Style::new().fg(EXPORT), DIM),
        Health::Stale(_) | Health::Waiting => (Style::new().fg(WARN).bold(), Style::new().fg(WARN)),
        Health::MeterSilent | Health::ListenerGone(_) => (Style::new().fg(BAD).bold(), Style::new().fg(BAD)),
    };
    let loss_style = if seq.missing > 0 { Style::new().fg(WARN) } else { Style::new() };
    let mut lines = vec![
        Line::from(vec![label("last", 6), Span::styled(format!("{age} ago"), age_style)]),
        Line::from(vec![
            label("seq", 6),
            Span::raw(seq.last_seq.to_string()),
            Span::styled(if seq.restarts > 0 { format!(" · {} restarts", seq.restarts) } else { String::new() }, DIM),
        ]),
        Line::from(vec![
            label("lost", 6),
            Span::styled(format!("{} · {:.2} %", seq.missing, seq.loss_rate() * 100.0), loss_style),
        ]),
        Line::from(vec![label("gaps", 6), Span::styled(seq.gaps.to_string(), loss_style)]),
    ];
    if let Some(s) = &meter.status {
        let mut port = vec![label("port", 6), port_span(s.port)];
        if let Some(p) = &s.port_settings {
            port.push(Span::raw(format!(" {p}")));
        }
        lines.insert(1, Line::from(port));
        let c = &s.counters;
        let crc_style = if c.crc_failures > 0 { Style::new().fg(WARN) } else { Style::new() };
        lines.push(Line::from(vec![
            label("crc", 6),
            Span::styled(c.crc_failures.to_string(), crc_style),
            Span::raw(format!(" · junk {} B", c.discarded_bytes)),
        ]));
        if s.meter_silent {
            lines.insert(1, Line::styled("meter silent!", Style::new().fg(BAD).bold()));
        }
    } else {
        lines.push(Line::from(vec![label("port", 6), Span::styled("no status yet", DIM)]));
    }
    let mut card = Card::new(" Health ", lines);
    card.border = border;
    card
}

// ---------------------------------------------------------------------------------------------------------------
// Details page

/// One paragraph of the details page before wrapping: style, text, and the indent of continuation lines.
struct Para {
    style: Style,
    text: String,
    indent: usize,
}

fn para(text: impl Into<String>) -> Para {
    Para { style: Style::new(), text: text.into(), indent: 2 }
}

fn heading(text: &str) -> Para {
    Para {
        style: Style::new().fg(ACCENT).add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
        text: text.to_owned(),
        indent: 0,
    }
}

fn styled(style: Style, text: impl Into<String>) -> Para {
    Para { style, text: text.into(), indent: 2 }
}

/// The details page's lines for a text area `width` columns wide.
fn details_lines(app: &App, meter: &Meter, width: u16) -> Vec<Line<'static>> {
    let mut paras: Vec<Para> = Vec::new();
    let health = meter.health(app.now, &app.settings);
    paras.push(heading(&format!("Listener {}", meter.listener)));
    paras.push(styled(health_span(health).style, health_span(health).content.into_owned()));
    for line in status_lines(app, meter) {
        paras.push(para(line.to_string()));
    }
    if let Some(s) = &meter.status {
        let c = &s.counters;
        paras.push(para(format!(
            "counters: {} telegrams · {} CRC failures · {} B in {} discarded frames · {} line errors · \
             {} decrypt failures · {} replayed frames · {} send errors · {} reconnects",
            c.telegrams,
            c.crc_failures,
            c.discarded_bytes,
            c.discarded_frames,
            c.line_errors,
            c.decrypt_failures,
            c.replayed_frames,
            c.send_errors,
            c.reconnects
        )));
    }
    let seq = &meter.seq;
    paras.push(para(format!(
        "boot {}: seq {} to {} · {} received · {} missing in {} · loss {:.2} % · {} duplicate or late",
        seq.boot_id,
        seq.first_seq,
        seq.last_seq,
        seq.received,
        seq.missing,
        format::count(seq.gaps, "gap"),
        seq.loss_rate() * 100.0,
        seq.duplicates
    )));
    paras.push(para(format!(
        "all boots: {} received · {} missing · {}",
        seq.total_received,
        seq.total_missing,
        format::count(seq.restarts, "restart")
    )));
    match app.seal {
        Some(crate::app::Seal::Sealed(id)) => paras.push(para(format!("datagrams: sealed, key id {id}"))),
        Some(crate::app::Seal::Open) => paras.push(para("datagrams: open (not sealed)".to_owned())),
        None => {}
    }
    if let Some(why) = &app.last_refused {
        paras.push(styled(
            Style::new().fg(WARN),
            format!("{} on the group; last: {why}", format::count(app.refused_datagrams, "refused datagram")),
        ));
    }
    if let Some(why) = &app.last_invalid {
        paras.push(styled(
            Style::new().fg(WARN),
            format!("{} on the group; last: {why}", format::count(app.invalid_datagrams, "invalid datagram")),
        ));
    }
    if let Some(t) = &meter.telegram {
        telegram_details(app, t, &mut paras);
    }
    let width = usize::from(width);
    paras
        .iter()
        .flat_map(|p| format::wrap(&p.text, width, p.indent).into_iter().map(move |s| Line::styled(s, p.style)))
        .collect()
}

/// The details page's text area within a body area.
fn details_area(body: Rect) -> Rect {
    body.inner(Margin::new(1, 0))
}

/// The largest useful scroll position of the details page of the selected meter, for a terminal of `size`
/// (columns, rows). `update` uses it to keep the position where scrolling back takes effect at once.
#[must_use]
pub fn details_max_scroll(app: &App, size: (u16, u16)) -> u16 {
    let Some(meter) = app.selected_meter() else { return 0 };
    // The body is the terminal less the header and footer lines.
    let area = details_area(Rect::new(0, 0, size.0, size.1.saturating_sub(2)));
    let lines = details_lines(app, meter, area.width);
    (lines.len() as u16).saturating_sub(area.height)
}

fn details(app: &App, meter: &Meter, area: Rect, buf: &mut Buffer) {
    let area = details_area(area);
    let lines = details_lines(app, meter, area.width);
    let max_scroll = (lines.len() as u16).saturating_sub(area.height);
    Paragraph::new(lines).scroll((app.scroll.min(max_scroll), 0)).render(area, buf);
}

fn telegram_details(app: &App, t: &TelegramMessage, out: &mut Vec<Para>) {
    let v = &t.values;
    let none = || "–".to_owned();
    out.push(para(""));
    out.push(heading("Telegram"));
    out.push(para(format!(
        "{} · /{} · seq {} · {} ms on the wire · CRC {}{}",
        dialect_name(t.dialect),
        t.header,
        t.seq,
        t.duration_ms,
        match t.crc {
            CrcStatus::Ok => "ok",
            CrcStatus::Absent => "absent (DSMR 2.2/3)",
        },
        if t.encrypted { " · decrypted" } else { "" }
    )));
    out.push(para(format!(
        "received {} · meter time {}",
        t.received_at.to_zoned(app.settings.timezone.clone()).strftime("%Y-%m-%d %H:%M:%S%.3f %:z"),
        v.meter_time.map_or_else(|| "none".to_owned(), |m| m.to_string())
    )));
    if let Some(id) = &v.equipment_id {
        out.push(para(format!("equipment {id} · version {}", v.version.as_deref().unwrap_or("–"))));
    }
    if let Some(m) = &v.text_message {
        out.push(para(format!("message: {m}")));
    }
    out.push(para(""));
    out.push(heading("Power failures"));
    out.push(para(format!(
        "{} power failures · {} long",
        v.power_failures.map_or_else(none, |n| n.to_string()),
        v.long_power_failures.map_or_else(none, |n| n.to_string())
    )));
    if v.power_failure_log.is_empty() {
        out.push(styled(DIM, "no long power failure in the log"));
    }
    for f in &v.power_failure_log {
        out.push(para(format!(
            "  ended {} · lasted {} ({} s)",
            f.end.map_or_else(|| "(no time)".to_owned(), |e| e.to_string()),
            format::seconds(f.duration_s),
            f.duration_s
        )));
    }
    if !v.capacity_history.is_empty() || v.capacity_peak_kw.is_some() {
        out.push(para(""));
        out.push(heading("Capacity tariff"));
        out.push(para(format!(
            "15-minute average {} kW · this month's peak {} kW at {}",
            v.capacity_demand_kw.map_or_else(none, |d| d.to_string()),
            v.capacity_peak_kw.map_or_else(none, |d| d.to_string()),
            v.capacity_peak_at.map_or_else(none, |d| d.to_string())
        )));
        for m in &v.capacity_history {
            out.push(para(format!(
                "  {} · peak {} kW at {}",
                capacity_month(m).map_or_else(|| "?".to_owned(), |d| d.strftime("%Y-%m").to_string()),
                m.kw,
                m.at.map_or_else(none, |d| d.to_string())
            )));
        }
    }
    if !v.devices.is_empty() {
        out.push(para(""));
        out.push(heading("M-Bus devices"));
        for d in &v.devices {
            out.push(para(format!(
                "  channel {} · {:?} (type {}) · id {} · {} {} at {}{}",
                d.channel,
                d.kind,
                d.type_code.map_or_else(none, |c| c.to_string()),
                d.id.as_deref().unwrap_or("–"),
                d.value.map_or_else(none, |x| x.to_string()),
                format::unit(d.unit.as_deref().unwrap_or("")),
                d.at.map_or_else(none, |x| x.to_string()),
                d.valve.map(|x| format!(" · valve {x}")).unwrap_or_default()
            )));
        }
    }
    if !t.errors.is_empty() {
        out.push(para(""));
        out.push(heading("Lines that could not be read"));
        for e in &t.errors {
            out.push(styled(Style::new().fg(WARN), format!("  line {}: {} ({})", e.line, e.text, e.reason)));
        }
    }
    out.push(para(""));
    out.push(heading("OBIS lines"));
    let width = t.obis.keys().map(str::len).max().unwrap_or(0);
    for (key, value) in &t.obis {
        // `(a)(b)`: the groups as the meter wrote them.
        let text = value.to_string();
        out.push(Para { style: Style::new(), text: format!("  {key:width$} {text}"), indent: width + 3 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_bounds_are_round() {
        for (v, want) in
            [(0.0, 0.0), (0.37, 0.4), (1.0, 1.0), (1.2, 1.5), (2.3, 2.5), (2.8, 3.0), (7.0, 8.0), (12.0, 15.0)]
        {
            assert!((nice_ceil(v) - want).abs() < 1e-9, "nice_ceil({v}) = {}, want {want}", nice_ceil(v));
        }
    }

    #[test]
    fn y_axis_puts_zero_in_the_middle_only_when_both_directions_occur() {
        assert_eq!(y_axis(-2.8, 0.45).1, ["-3", "0", "3 kW"].map(String::from));
        assert_eq!(y_axis(0.0, 2.3).1, ["0", "1.25", "2.5 kW"].map(String::from));
        assert_eq!(y_axis(-1.2, 0.0).1, ["-1.5", "-0.75", "0 kW"].map(String::from));
        assert_eq!(y_axis(0.0, 0.0).1, ["0", "0.5", "1 kW"].map(String::from));
    }

    #[test]
    fn bars_grow_from_the_centre() {
        let text = |kw: f64| bar(kw, 4.0, 9).iter().map(|s| s.content.to_string()).collect::<String>();
        assert_eq!(text(0.0), "────┃────");
        assert_eq!(text(2.0), "────┃██──");
        assert_eq!(text(0.5), "────┃▌───");
        assert_eq!(text(-3.0), "─███┃────");
        assert_eq!(text(-2.5), "─▐██┃────");
        assert_eq!(text(9.0), "────┃███▶");
        assert_eq!(text(-9.0), "◀███┃────");
        assert_eq!(bar(1.0, 4.0, 10).iter().map(|s| s.content.chars().count()).sum::<usize>(), 10);
    }

    #[test]
    fn cards_pack_in_priority_order() {
        let card = |w: u16| Card { min_width: w, preferred_width: w, ..Card::new("x", vec![]) };
        let cards = [card(30), card(30), card(30), card(10)];
        assert_eq!(pack(&cards, 70, 2), vec![vec![0, 1, 3], vec![2]]);
        assert_eq!(pack(&cards, 70, 1), vec![vec![0, 1, 3]]);
        assert_eq!(pack(&cards, 20, 2), vec![vec![3]]);
        let wide = Card { preferred_width: 40, ..card(30) };
        assert_eq!(pack(&[card(30), wide, card(30)], 65, 2), vec![vec![0, 2], vec![1]], "all fit when preferred");
        assert_eq!(pack(&[card(30), Card { preferred_width: 60, ..card(30) }], 70, 1), vec![vec![0, 1]]);
        let (a, b, c) = (card(10), Card { preferred_width: 14, ..card(10) }, card(10));
        assert_eq!(spread(&[&a, &b, &c], 35), vec![11, 14, 10]);
    }

    #[test]
    fn span_labels() {
        assert_eq!((span_text(5), half_span_text(5)), ("5 min".to_owned(), "2 m 30 s".to_owned()));
        assert_eq!((span_text(90), half_span_text(90)), ("1 h 30 min".to_owned(), "45 min".to_owned()));
        assert_eq!((span_text(1440), half_span_text(1440)), ("24 h".to_owned(), "12 h".to_owned()));
    }
}
