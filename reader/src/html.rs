//! The HTML page: one self-contained file with the current values and a chart of recent power.
//!
//! [`render`] is a pure function from the page's data to text: inline CSS, an inline SVG chart, no script and no
//! external asset, and a `<meta http-equiv="refresh">` so a browser reloads it by itself. Every text that comes
//! from the network (listener name, meter header, text message, OBIS lines) goes through [`escape`]. [`History`]
//! keeps the chart's points: at most one per [`History::min_spacing`], for the configured span, so its memory is
//! bounded however fast telegrams arrive.

use std::collections::VecDeque;
use std::fmt::Write as _;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use shared::decimal::Decimal;
use shared::wire::{PortState, StatusMessage, TelegramMessage, Values};

/// Most points the chart keeps (its span divided into this many slots).
const MAX_POINTS: i64 = 1800;

/// Escapes text for HTML element content and attribute values.
#[must_use]
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// One point of the chart.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// When the telegram was received.
    pub at: Timestamp,
    /// Power imported, kW.
    pub import: Option<f64>,
    /// Power exported, kW.
    pub export: Option<f64>,
    /// Net power per phase (import minus export), kW.
    pub phases: [Option<f64>; 3],
}

impl Point {
    /// The point of a telegram.
    #[must_use]
    pub fn of(msg: &TelegramMessage) -> Point {
        let v = &msg.values;
        let f = |d: Option<Decimal>| d.map(Decimal::to_f64);
        let import = f(v.power_import_kw).or_else(|| f(v.power_kw).map(|p| p.max(0.0)));
        let export = f(v.power_export_kw).or_else(|| f(v.power_kw).map(|p| (-p).max(0.0)));
        Point {
            at: msg.received_at,
            import,
            export,
            // Net per phase, as the listener's parser derives it whenever either side is sent.
            phases: [f(v.power_l1_kw), f(v.power_l2_kw), f(v.power_l3_kw)],
        }
    }
}

/// The chart's recent points.
#[derive(Clone, Debug)]
pub struct History {
    span: SignedDuration,
    points: VecDeque<Point>,
}

impl History {
    /// An empty history covering `minutes`.
    #[must_use]
    pub fn new(minutes: u32) -> History {
        History { span: SignedDuration::from_mins(i64::from(minutes.max(1))), points: VecDeque::new() }
    }

    /// The closest two points may be: the span divided into [`MAX_POINTS`] slots.
    #[must_use]
    pub fn min_spacing(&self) -> SignedDuration {
        self.span / MAX_POINTS as i32
    }

    /// Adds a telegram's point, drops points older than the span, and keeps at most one point per slot.
    pub fn push(&mut self, msg: &TelegramMessage) {
        let point = Point::of(msg);
        // A stamp within a span of the start of time (any sender can write one) is not charted: the chart's
        // arithmetic would leave the calendar.
        let Ok(oldest) = point.at.checked_sub(self.span) else { return };
        if let Some(last) = self.points.back() {
            if point.at < last.at {
                return;
            }
            if point.at.duration_since(last.at) < self.min_spacing() {
                // Keep the newest value of the slot.
                self.points.pop_back();
            }
        }
        self.points.push_back(point);
        while self.points.front().is_some_and(|p| p.at < oldest) {
            self.points.pop_front();
        }
    }

    /// The points, oldest first.
    pub fn points(&self) -> impl Iterator<Item = &Point> {
        self.points.iter()
    }

    /// The span covered.
    #[must_use]
    pub fn span(&self) -> SignedDuration {
        self.span
    }
}

/// The reader's counters for one listener, as shown on the page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// Telegrams written.
    pub telegrams: u64,
    /// Sequence numbers missing.
    pub missed: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Listener restarts seen.
    pub restarts: u64,
}

/// Everything the page shows.
#[derive(Clone, Copy, Debug)]
pub struct Page<'a> {
    /// The listener's name.
    pub listener: &'a str,
    /// The latest telegram.
    pub latest: &'a TelegramMessage,
    /// The latest status datagram, if any.
    pub status: Option<&'a StatusMessage>,
    /// Chart points.
    pub history: &'a History,
    /// Counters.
    pub health: Health,
    /// Zone for displayed times.
    pub tz: &'a TimeZone,
    /// Seconds between browser reloads.
    pub refresh_secs: u64,
}

/// The whole page.
#[must_use]
pub fn render(page: &Page) -> String {
    let msg = page.latest;
    let v = &msg.values;
    let mut h = String::with_capacity(32 * 1024);
    let title = format!("{} · p1hub", page.listener);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"refresh\" content=\"{}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        page.refresh_secs,
        escape(&title)
    );

    // Header.
    let _ = write!(
        h,
        "<header><div><h1>{}</h1><p class=\"sub\">{} · {} · {}</p></div>\
         <div class=\"updated\">last telegram<br><time datetime=\"{}\">{}</time></div></header>\n<main>\n",
        escape(page.listener),
        escape(&msg.header),
        escape(&dialect_name(msg)),
        escape(v.equipment_id.as_deref().unwrap_or("no equipment id")),
        msg.received_at,
        escape(&local(msg.received_at, page.tz))
    );

    // Net power, large.
    let net = v.power_kw.map(Decimal::to_f64);
    let (class, word) = match net {
        Some(p) if p < 0.0 => ("export", "exporting"),
        Some(_) => ("import", "importing"),
        None => ("none", "no power reading"),
    };
    let shown = net.map_or_else(|| "–".to_owned(), |p| format!("{p:.3}"));
    let _ = write!(
        h,
        "<section class=\"cards\">\n<div class=\"card net {class}\"><h2>Net power</h2>\
         <p class=\"big\" id=\"net-power\">{shown}<small> kW</small></p><p class=\"note\">{word}</p></div>\n"
    );
    card(&mut h, "Import now", &kw(v.power_import_kw), "power-import");
    card(&mut h, "Export now", &kw(v.power_export_kw), "power-export");
    let tariff = match (v.tariff, v.tariff_name) {
        (Some(t), Some(n)) => format!("{t} ({})", if n == shared::wire::TariffName::Low { "low" } else { "normal" }),
        (Some(t), None) => t.to_string(),
        _ => "–".into(),
    };
    card(&mut h, "Tariff", &tariff, "tariff");
    h.push_str("</section>\n");

    // Chart.
    h.push_str("<section class=\"panel\">\n");
    let _ = writeln!(h, "<h2>Power, last {} minutes</h2>", page.history.span().as_mins());
    chart(&mut h, page.history, page.tz);
    h.push_str("</section>\n");

    h.push_str("<section class=\"grid\">\n");
    phases_table(&mut h, v);
    energy_table(&mut h, v);
    meters_table(&mut h, v, page.tz);
    health_table(&mut h, page);
    h.push_str("</section>\n");

    if let Some(text) = v.text_message.as_deref().filter(|t| !t.trim().is_empty()) {
        let _ = writeln!(
            h,
            "<section class=\"panel\"><h2>Message from the meter</h2><p id=\"text-message\">{}</p></section>",
            escape(text)
        );
    }
    if !v.power_failure_log.is_empty() {
        h.push_str(
            "<section class=\"panel\"><h2>Power failure log</h2><table><tr><th>ended</th><th>duration</th></tr>\n",
        );
        for pf in &v.power_failure_log {
            let end = pf.end.map_or_else(|| "–".to_owned(), |t| local(t.timestamp(), page.tz));
            let _ = writeln!(h, "<tr><td>{}</td><td class=\"num\">{} s</td></tr>", escape(&end), pf.duration_s);
        }
        h.push_str("</table></section>\n");
    }
    if !msg.errors.is_empty() {
        h.push_str("<section class=\"panel\"><h2>Lines the listener could not read</h2><table>\n");
        for e in &msg.errors {
            let _ = writeln!(
                h,
                "<tr><td class=\"num\">{}</td><td><code>{}</code></td><td>{}</td></tr>",
                e.line,
                escape(&e.text),
                escape(&e.reason)
            );
        }
        h.push_str("</table></section>\n");
    }

    // Every line, lossless, folded away.
    let _ = writeln!(
        h,
        "<details class=\"panel\"><summary>All {} OBIS lines</summary><table class=\"obis\">",
        msg.obis.len()
    );
    for (code, value) in &msg.obis {
        // `(a)(b)`: the groups as the meter wrote them.
        let text = value.to_string();
        let _ = writeln!(h, "<tr><td><code>{}</code></td><td><code>{}</code></td></tr>", escape(code), escape(&text));
    }
    h.push_str("</table></details>\n</main>\n");
    let _ = writeln!(
        h,
        "<footer>p1hub reader · times in {} · this page reloads every {} s</footer>\n</body>\n</html>",
        escape(page.tz.iana_name().unwrap_or("UTC")),
        page.refresh_secs
    );
    h
}

fn card(h: &mut String, title: &str, value: &str, id: &str) {
    let _ = writeln!(
        h,
        "<div class=\"card\"><h2>{}</h2><p class=\"mid\" id=\"{id}\">{}</p></div>",
        escape(title),
        escape(value)
    );
}

fn kw(d: Option<Decimal>) -> String {
    d.map_or_else(|| "–".to_owned(), |d| format!("{} kW", padded(d, "kW")))
}

fn unit(d: Option<Decimal>, unit: &str) -> String {
    d.map_or_else(|| "–".to_owned(), |d| format!("{} {unit}", padded(d, unit)))
}

/// The number with at least the decimals meters write for its unit. JSON numbers lose trailing zeros
/// (`0.000` arrives as `0`); padding them back is exact and keeps the columns even.
fn padded(d: Decimal, unit: &str) -> String {
    let want = match unit {
        "kW" | "kWh" | "m³" | "GJ" => 3,
        "V" => 1,
        _ => 0,
    };
    d.to_string_with_decimals(want)
}

fn phases_table(h: &mut String, v: &Values) {
    h.push_str("<div class=\"panel\"><h2>Phases</h2><table><tr><th></th><th>power</th><th>voltage</th><th>current</th><th>sags / swells</th></tr>\n");
    let rows = [
        (
            "L1",
            v.power_l1_kw,
            v.power_import_l1_kw,
            v.power_export_l1_kw,
            v.voltage_l1_v,
            v.current_l1_a,
            v.voltage_sags_l1,
            v.voltage_swells_l1,
        ),
        (
            "L2",
            v.power_l2_kw,
            v.power_import_l2_kw,
            v.power_export_l2_kw,
            v.voltage_l2_v,
            v.current_l2_a,
            v.voltage_sags_l2,
            v.voltage_swells_l2,
        ),
        (
            "L3",
            v.power_l3_kw,
            v.power_import_l3_kw,
            v.power_export_l3_kw,
            v.voltage_l3_v,
            v.current_l3_a,
            v.voltage_sags_l3,
            v.voltage_swells_l3,
        ),
    ];
    for (name, net, imp, exp, volt, amp, sags, swells) in rows {
        if [net, imp, exp, volt, amp].iter().all(Option::is_none) {
            continue;
        }
        let power = kw(net);
        let counts = match (sags, swells) {
            (None, None) => "–".to_owned(),
            (a, b) => {
                format!("{} / {}", a.map_or("–".into(), |n| n.to_string()), b.map_or("–".into(), |n| n.to_string()))
            }
        };
        let _ = writeln!(
            h,
            "<tr><th class=\"{}\">{name}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            name.to_lowercase(),
            escape(&power),
            escape(&unit(volt, "V")),
            escape(&unit(amp, "A")),
            escape(&counts)
        );
    }
    h.push_str("</table></div>\n");
}

fn energy_table(h: &mut String, v: &Values) {
    h.push_str(
        "<div class=\"panel\"><h2>Energy registers</h2><table><tr><th></th><th>import</th><th>export</th></tr>\n",
    );
    let low_is_1 = match (v.tariff, v.tariff_name) {
        (Some(1), Some(shared::wire::TariffName::Low)) | (Some(2), Some(shared::wire::TariffName::Normal)) => {
            Some(true)
        }
        (Some(_), Some(_)) => Some(false),
        _ => None,
    };
    for (t, imp, exp) in
        [(1u8, v.energy_import_t1_kwh, v.energy_export_t1_kwh), (2, v.energy_import_t2_kwh, v.energy_export_t2_kwh)]
    {
        if imp.is_none() && exp.is_none() {
            continue;
        }
        let name = match low_is_1 {
            Some(true) => {
                if t == 1 {
                    " (low)"
                } else {
                    " (normal)"
                }
            }
            Some(false) => {
                if t == 1 {
                    " (normal)"
                } else {
                    " (low)"
                }
            }
            None => "",
        };
        let active = v.tariff == Some(t);
        let _ = writeln!(
            h,
            "<tr{}><th>tariff {t}{name}{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            if active { " class=\"active\"" } else { "" },
            if active { " ◂ now" } else { "" },
            escape(&unit(imp, "kWh")),
            escape(&unit(exp, "kWh"))
        );
    }
    if v.energy_import_kwh.is_some() || v.energy_export_kwh.is_some() {
        let _ = writeln!(
            h,
            "<tr><th>total</th><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&unit(v.energy_import_kwh, "kWh")),
            escape(&unit(v.energy_export_kwh, "kWh"))
        );
    }
    h.push_str("</table></div>\n");
}

fn meters_table(h: &mut String, v: &Values, tz: &TimeZone) {
    h.push_str("<div class=\"panel\"><h2>Meter</h2><table>\n");
    let at = |t: Option<shared::timestamp::MeterTime>| {
        t.map_or_else(String::new, |t| format!(" <span class=\"note\">at {}</span>", escape(&local(t.timestamp(), tz))))
    };
    let mut row = |name: &str, value: String, extra: String| {
        let _ = writeln!(h, "<tr><th>{}</th><td class=\"num\">{}{extra}</td></tr>", escape(name), escape(&value));
    };
    if v.gas_m3.is_some() {
        row("gas", unit(v.gas_m3, "m³"), at(v.gas_at));
    }
    if v.water_m3.is_some() {
        row("water", unit(v.water_m3, "m³"), at(v.water_at));
    }
    if v.heat_gj.is_some() {
        row("heat", unit(v.heat_gj, "GJ"), at(v.heat_at));
    }
    if v.capacity_demand_kw.is_some() {
        row("15-min demand", unit(v.capacity_demand_kw, "kW"), String::new());
    }
    if v.capacity_peak_kw.is_some() {
        row("month peak", unit(v.capacity_peak_kw, "kW"), at(v.capacity_peak_at));
    }
    let failures = match (v.power_failures, v.long_power_failures) {
        (None, None) => None,
        (a, b) => Some(format!(
            "{} ({} long)",
            a.map_or("–".into(), |n| n.to_string()),
            b.map_or("–".into(), |n| n.to_string())
        )),
    };
    if let Some(f) = failures {
        row("power failures", f, String::new());
    }
    if let Some(t) = v.meter_time {
        row("meter time", local(t.timestamp(), tz), String::new());
    }
    if let Some(ver) = &v.version {
        row("version", ver.clone(), String::new());
    }
    h.push_str("</table></div>\n");
}

fn health_table(h: &mut String, page: &Page) {
    let msg = page.latest;
    let hl = page.health;
    h.push_str("<div class=\"panel\"><h2>Health</h2><table>\n");
    let mut row = |name: &str, value: String, id: &str| {
        let _ = writeln!(h, "<tr><th>{}</th><td class=\"num\" id=\"{id}\">{}</td></tr>", escape(name), escape(&value));
    };
    row("telegrams written", hl.telegrams.to_string(), "telegrams");
    row("telegrams missed", hl.missed.to_string(), "missed");
    row("duplicates dropped", hl.duplicates.to_string(), "duplicates");
    row("listener restarts", hl.restarts.to_string(), "restarts");
    row("sequence", format!("{} (boot {})", msg.seq, msg.origin.boot_id), "seq");
    row("CRC", format!("{:?}", msg.crc).to_lowercase() + if msg.encrypted { ", decrypted" } else { "" }, "crc");
    if let Some(s) = page.status {
        let port = match s.port {
            PortState::Open => "open",
            PortState::Connecting => "connecting",
            PortState::Closed => "closed",
        };
        let silent = if s.meter_silent { ", meter silent" } else { "" };
        row("listener", format!("{} {port}{silent}, up {}", s.source, duration(s.uptime_s)), "listener-status");
    }
    h.push_str("</table></div>\n");
}

fn duration(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

fn dialect_name(msg: &TelegramMessage) -> String {
    serde_json::to_value(msg.dialect).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn local(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M:%S %:z").to_string()
}

/// The SVG chart: import above zero, export below, the three phases as thin lines.
fn chart(h: &mut String, history: &History, tz: &TimeZone) {
    const W: f64 = 960.0;
    const H: f64 = 300.0;
    const LEFT: f64 = 56.0;
    const RIGHT: f64 = 12.0;
    const TOP: f64 = 12.0;
    const BOTTOM: f64 = 28.0;
    let points: Vec<&Point> = history.points().collect();
    let Some(last) = points.last() else {
        h.push_str("<p class=\"note\">No telegrams yet.</p>\n");
        return;
    };
    let end = last.at;
    let start = end - history.span();
    let span_s = history.span().as_secs_f64().max(1.0);

    let mut hi: f64 = 0.0;
    let mut lo: f64 = 0.0;
    for p in &points {
        for x in [p.import].into_iter().chain(p.phases).flatten() {
            hi = hi.max(x);
            lo = lo.min(x);
        }
        if let Some(e) = p.export {
            lo = lo.min(-e);
        }
    }
    let step = nice_step((hi - lo).max(0.5) / 4.0);
    let hi = ((hi / step).ceil() * step).max(step);
    let lo = (lo / step).floor() * step;
    let x_of = |t: Timestamp| LEFT + (t.duration_since(start).as_secs_f64() / span_s) * (W - LEFT - RIGHT);
    let y_of = |v: f64| TOP + (hi - v) / (hi - lo) * (H - TOP - BOTTOM);
    let zero = y_of(0.0);

    let _ = writeln!(h, "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"power over time\" xmlns=\"http://www.w3.org/2000/svg\">");
    // Horizontal grid and kW labels.
    let mut v = lo;
    while v <= hi + step / 2.0 {
        let y = y_of(v);
        let class = if v.abs() < step / 2.0 { "zero" } else { "grid" };
        let _ =
            writeln!(h, "<line class=\"{class}\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>", W - RIGHT);
        let _ = writeln!(
            h,
            "<text class=\"ylabel\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            LEFT - 6.0,
            y + 4.0,
            trim_number(v)
        );
        v += step;
    }
    let _ = writeln!(h, "<text class=\"unit\" x=\"4\" y=\"{:.1}\">kW</text>", TOP + 8.0);
    // Vertical grid at round local times.
    let minutes = history.span().as_mins().max(1);
    let tick = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360].into_iter().find(|&m| minutes / m <= 6).unwrap_or(720);
    let minute_of_day = |t: Timestamp| {
        let z = t.to_zoned(tz.clone());
        i64::from(z.hour()) * 60 + i64::from(z.minute())
    };
    // The first whole minute at or after the start.
    let whole = start.as_second().div_euclid(60) * 60;
    let first = if whole == start.as_second() && start.subsec_nanosecond() == 0 { whole } else { whole + 60 };
    let mut t = Timestamp::from_second(first).unwrap_or(start);
    for _ in 0..tick {
        if minute_of_day(t) % tick == 0 {
            break;
        }
        t += SignedDuration::from_mins(1);
    }
    while t <= end {
        if t >= start {
            let x = x_of(t);
            let _ =
                writeln!(h, "<line class=\"grid\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{:.1}\"/>", H - BOTTOM);
            let _ = writeln!(
                h,
                "<text class=\"xlabel{}\" x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
                // Labels at the edges are anchored inside the chart, so they are never cut off.
                if x > W - RIGHT - 20.0 {
                    " right"
                } else if x < LEFT + 20.0 {
                    " left"
                } else {
                    ""
                },
                H - 8.0,
                t.to_zoned(tz.clone()).strftime("%H:%M")
            );
        }
        t += SignedDuration::from_mins(tick);
    }

    // Points further apart than this break the lines (the meter or the listener was silent).
    let max_gap = gap_limit(&points);
    let segments = split(&points, max_gap);
    let series: [(&str, Series, bool); 5] = [
        ("import", |p| p.import, true),
        ("export", |p| p.export.map(|e| -e), true),
        ("l1", |p| p.phases[0], false),
        ("l2", |p| p.phases[1], false),
        ("l3", |p| p.phases[2], false),
    ];
    for (name, get, filled) in series {
        let mut line = String::new();
        let mut area = String::new();
        for seg in &segments {
            let pts: Vec<(f64, f64)> = seg.iter().filter_map(|p| get(p).map(|v| (x_of(p.at), y_of(v)))).collect();
            let (Some(first), Some(last)) = (pts.first(), pts.last()) else { continue };
            for (i, (x, y)) in pts.iter().enumerate() {
                let _ = write!(line, "{}{x:.1},{y:.1} ", if i == 0 { "M" } else { "L" });
            }
            if filled {
                let _ = write!(area, "M{:.1},{zero:.1} ", first.0);
                for (x, y) in &pts {
                    let _ = write!(area, "L{x:.1},{y:.1} ");
                }
                let _ = write!(area, "L{:.1},{zero:.1} Z ", last.0);
            }
        }
        if filled && !area.is_empty() {
            let _ = writeln!(h, "<path class=\"area {name}\" d=\"{}\"/>", area.trim_end());
        }
        if !line.is_empty() {
            let _ = writeln!(h, "<path class=\"line {name}\" d=\"{}\"/>", line.trim_end());
        }
    }
    h.push_str("</svg>\n<p class=\"legend\"><span class=\"key import\"></span>import <span class=\"key export\"></span>export \
        <span class=\"key l1\"></span>L1 <span class=\"key l2\"></span>L2 <span class=\"key l3\"></span>L3 \
        <span class=\"note\">(phases: import minus export)</span></p>\n");
}

/// One line of the chart: the value it draws from a point (export is drawn below zero).
type Series = fn(&Point) -> Option<f64>;

fn gap_limit(points: &[&Point]) -> SignedDuration {
    let mut gaps: Vec<SignedDuration> = points.windows(2).map(|w| w[1].at.duration_since(w[0].at)).collect();
    gaps.sort_unstable();
    let typical = gaps.get(gaps.len() / 2).copied().unwrap_or(SignedDuration::from_secs(1));
    (typical * 5).max(SignedDuration::from_secs(30))
}

fn split<'p>(points: &[&'p Point], max_gap: SignedDuration) -> Vec<Vec<&'p Point>> {
    let mut out: Vec<Vec<&Point>> = Vec::new();
    for p in points {
        match out.last_mut() {
            Some(seg) if seg.last().is_some_and(|l| p.at.duration_since(l.at) <= max_gap) => seg.push(p),
            _ => out.push(vec![p]),
        }
    }
    out
}

/// A round step (1, 2 or 5 times a power of ten) near `raw`.
fn nice_step(raw: f64) -> f64 {
    let exp = raw.log10().floor();
    let base = 10f64.powf(exp);
    let m = raw / base;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * base
}

fn trim_number(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

const CSS: &str = "
:root{--bg:#f4f5f7;--fg:#1d232b;--muted:#6b7380;--card:#fff;--line:#e3e6ea;--imp:#e03131;--exp:#2f9e44;
--l1:#1971c2;--l2:#9c36b5;--l3:#f08c00}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}
header{display:flex;justify-content:space-between;align-items:center;padding:14px 24px;background:#1d232b;color:#fff}
header h1{margin:0;font-size:22px;font-weight:600}
header .sub{margin:2px 0 0;color:#aab2bd;font-size:13px}
.updated{text-align:right;font-size:13px;color:#aab2bd}.updated time{color:#fff;font-size:15px}
main{max-width:1100px;margin:0 auto;padding:18px 24px}
.cards{display:grid;grid-template-columns:2fr 1fr 1fr 1fr;gap:14px;margin-bottom:14px}
.card,.panel{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 18px}
.panel{margin-bottom:14px}
h2{margin:0 0 8px;font-size:13px;font-weight:600;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
.big{margin:0;font-size:46px;font-weight:700;font-variant-numeric:tabular-nums;line-height:1.1}
.big small{font-size:20px;font-weight:500;color:var(--muted)}
.mid{margin:6px 0 0;font-size:24px;font-weight:600;font-variant-numeric:tabular-nums}
.net.import .big{color:var(--imp)}.net.export .big{color:var(--exp)}
.note{color:var(--muted);font-size:13px;margin:4px 0 0}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:14px;margin-bottom:14px}.grid .panel{margin:0}
table{border-collapse:collapse;width:100%}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;font-weight:normal}
tr:last-child th,tr:last-child td{border-bottom:0}
th{color:var(--muted)}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.active th,tr.active td{font-weight:600;color:var(--fg);background:#fff8e6}
th.l1{color:var(--l1)}th.l2{color:var(--l2)}th.l3{color:var(--l3)}
.chart{width:100%;height:auto;display:block}
.chart .grid{stroke:var(--line);stroke-width:1}.chart .zero{stroke:#9aa3ad;stroke-width:1}
.chart text{font-size:11px;fill:var(--muted)}.chart .ylabel{text-anchor:end}.chart .xlabel{text-anchor:middle}
.chart .xlabel.right{text-anchor:end}.chart .xlabel.left{text-anchor:start}
.chart .area.import{fill:var(--imp);opacity:.16}.chart .area.export{fill:var(--exp);opacity:.18}
.chart .line{fill:none;stroke-linejoin:round;stroke-linecap:round}
.chart .line.import{stroke:var(--imp);stroke-width:2}.chart .line.export{stroke:var(--exp);stroke-width:2}
.chart .line.l1{stroke:var(--l1);stroke-width:1.2}.chart .line.l2{stroke:var(--l2);stroke-width:1.2}
.chart .line.l3{stroke:var(--l3);stroke-width:1.2}
.legend{margin:6px 0 0;font-size:13px}.key{display:inline-block;width:14px;height:3px;margin:0 5px 3px 12px;vertical-align:middle}
.key.import{background:var(--imp)}.key.export{background:var(--exp)}.key.l1{background:var(--l1)}
.key.l2{background:var(--l2)}.key.l3{background:var(--l3)}
#text-message{margin:0;white-space:pre-wrap}
details summary{cursor:pointer;color:var(--muted);font-size:13px;font-weight:600;text-transform:uppercase}
table.obis code{font-size:12px}
footer{max-width:1100px;margin:0 auto;padding:0 24px 24px;color:var(--muted);font-size:12px}
@media (max-width:760px){.cards{grid-template-columns:1fr 1fr}.grid{grid-template-columns:1fr}}
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{dec, telegram};

    fn page_for(msg: &TelegramMessage, history: &History) -> String {
        let tz = TimeZone::get("Europe/Amsterdam").expect("tzdb");
        render(&Page {
            listener: "meter<kast>",
            latest: msg,
            status: None,
            history,
            health: Health { telegrams: 12, missed: 3, duplicates: 1, restarts: 0 },
            tz: &tz,
            refresh_secs: 5,
        })
    }

    #[test]
    fn meter_text_is_escaped() {
        let mut msg = telegram("meter<kast>", "b", 9, "2024-06-01T12:00:00Z");
        msg.values.text_message = Some("<script>alert('x')</script> & \"quotes\"".into());
        msg.header = "ISK5<b>2M550T</b>".into();
        msg.obis.insert("0-0:96.13.0", &shared::wire::ObisValue::One("<img src=x onerror=alert(1)>".into()));
        let mut history = History::new(15);
        history.push(&msg);
        let html = page_for(&msg, &history);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"));
        assert!(!html.contains("<b>"));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quotes&quot;"));
        assert!(html.contains("meter&lt;kast&gt;"));
        assert!(html.contains("ISK5&lt;b&gt;2M550T&lt;/b&gt;"));
    }

    #[test]
    fn the_page_is_self_contained_and_refreshes() {
        let msg = telegram("m", "b", 9, "2024-06-01T12:00:00Z");
        let mut history = History::new(15);
        history.push(&msg);
        let html = page_for(&msg, &history);
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        assert!(html.contains("<svg"));
        for external in ["<script", "src=", "<link", "url(", "@import"] {
            assert!(!html.contains(external), "found {external}");
        }
        assert!(html.contains("id=\"net-power\">1.193<small> kW"), "net power shown");
        assert!(html.contains("2024-06-01 14:00:00 +02:00"), "local time with offset");
    }

    #[test]
    fn the_chart_breaks_at_silences_and_draws_export_below_zero() {
        let mut history = History::new(15);
        for (i, at) in ["12:00:00", "12:00:01", "12:00:02", "12:05:00", "12:05:01"].iter().enumerate() {
            let mut msg = telegram("m", "b", i as u64, &format!("2024-06-01T{at}Z"));
            msg.values.power_import_kw = Some(dec("0.000"));
            msg.values.power_export_kw = Some(dec("2.000"));
            history.push(&msg);
        }
        let mut h = String::new();
        chart(&mut h, &history, &TimeZone::UTC);
        let export_line = h.lines().find(|l| l.contains("class=\"line export\"")).expect("export line");
        assert_eq!(export_line.matches('M').count(), 2, "two segments: {export_line}");
        assert!(h.contains(">-2</text>"), "the axis reaches -2 kW: {h}");
    }

    #[test]
    fn history_is_bounded_by_span_and_spacing() {
        let mut history = History::new(1);
        let start: Timestamp = "2024-06-01T12:00:00Z".parse().expect("ts");
        for i in 0..10_000 {
            let mut msg = telegram("m", "b", i, "2024-06-01T12:00:00Z");
            msg.received_at = start + SignedDuration::from_millis(i as i64 * 10);
            history.push(&msg);
        }
        let n = history.points().count();
        assert!(n <= MAX_POINTS as usize + 1, "{n} points");
        let first = history.points().next().expect("points").at;
        assert!(first >= start + SignedDuration::from_secs(39), "older points dropped: {first}");
    }

    #[test]
    fn numbers_get_the_decimals_of_their_unit_back() {
        assert_eq!(kw(Some(dec("0"))), "0.000 kW");
        assert_eq!(kw(Some(dec("-1.5"))), "-1.500 kW");
        assert_eq!(unit(Some(dec("230")), "V"), "230.0 V");
        assert_eq!(unit(Some(dec("4061.13")), "m³"), "4061.130 m³");
        assert_eq!(unit(Some(dec("1164.7221")), "kWh"), "1164.7221 kWh");
        assert_eq!(unit(Some(dec("17")), "A"), "17 A");
    }

    #[test]
    fn steps_are_round() {
        for (raw, step) in [(0.3, 0.5), (1.2, 2.0), (7.0, 10.0), (0.04, 0.05)] {
            assert!((nice_step(raw) - step).abs() < 1e-12, "{raw} gives {}", nice_step(raw));
        }
        assert_eq!(trim_number(-0.0), "0");
        assert_eq!(trim_number(2.5), "2.5");
    }
}
