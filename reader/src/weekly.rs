//! The weekly log: one condensed line per local hour, summarising the telegrams of that hour.
//!
//! [`HourSummary`] accumulates the telegrams of one hour and renders its line. Energy and gas are differences of
//! the meter's registers: from the last reading before the hour (the previous hour's last telegram) to the last
//! reading in it, so the hours of a day add up to the day. Power failures are the
//! difference of the meter's failure counters. `missed` counts sequence numbers found missing in that hour.
//!
//! A line reads (one line, wrapped here):
//! `2024-03-31T03:00+02:00 telegrams=3600 missed=0 import_t1_kwh=0.000 import_t2_kwh=0.412 export_t1_kwh=0.000
//! export_t2_kwh=0.000 gas_m3=0.120 power_avg_kw=0.412 power_max_kw=1.830 export_max_kw=0.000 voltage_min_v=228.9
//! voltage_max_v=236.1 power_failures=0 long_power_failures=0`; `-` stands for "not sent by the meter" (or a
//! register that went backwards, as when a meter is replaced), and a trailing `partial=1` marks an hour whose
//! first telegrams the reader did not see (it started in the middle of the hour).

use std::fmt::Write as _;

use jiff::tz::TimeZone;
use shared::decimal::Decimal;
use shared::wire::{TelegramMessage, Values};

use crate::period::Period;

/// Reads one register from a telegram's values.
type Register = fn(&Values) -> Option<Decimal>;

/// The registers whose difference over the hour is reported, with their names in the line.
const REGISTERS: [(&str, Register); 7] = [
    ("import_t1_kwh", |v| v.energy_import_t1_kwh),
    ("import_t2_kwh", |v| v.energy_import_t2_kwh),
    ("export_t1_kwh", |v| v.energy_export_t1_kwh),
    ("export_t2_kwh", |v| v.energy_export_t2_kwh),
    ("gas_m3", |v| v.gas_m3),
    ("power_failures", |v| v.power_failures.and_then(|n| i64::try_from(n).ok()).map(Decimal::from_int)),
    ("long_power_failures", |v| v.long_power_failures.and_then(|n| i64::try_from(n).ok()).map(Decimal::from_int)),
];

type Readings = [Option<Decimal>; REGISTERS.len()];

/// The summary of one hour so far.
#[derive(Clone, Debug)]
pub struct HourSummary {
    /// The hour.
    pub period: Period,
    telegrams: u64,
    missed: u64,
    partial: bool,
    /// The reading each difference starts from.
    base: Readings,
    last: Readings,
    power_sum: f64,
    power_count: u64,
    power_max: Option<Decimal>,
    export_max: Option<Decimal>,
    voltage_min: Option<Decimal>,
    voltage_max: Option<Decimal>,
}

impl HourSummary {
    /// An empty hour. `partial` marks an hour whose beginning the reader did not see.
    #[must_use]
    pub fn new(period: Period, partial: bool) -> HourSummary {
        HourSummary {
            period,
            telegrams: 0,
            missed: 0,
            partial,
            base: [None; REGISTERS.len()],
            last: [None; REGISTERS.len()],
            power_sum: 0.0,
            power_count: 0,
            power_max: None,
            export_max: None,
            voltage_min: None,
            voltage_max: None,
        }
    }

    /// The summary of the hour `period` that follows this one: its differences start from this hour's last
    /// readings (or, for a register this hour did not see, from this hour's own starting point), so energy used
    /// while no telegram arrived is counted in the next hour that has telegrams and the hours add up.
    #[must_use]
    pub fn next(&self, period: Period) -> HourSummary {
        let mut next = HourSummary::new(period, false);
        for ((slot, last), base) in next.base.iter_mut().zip(self.last).zip(self.base) {
            *slot = last.or(base);
        }
        next
    }

    /// Uses `msg` as the last reading before this hour (the baseline of the differences).
    pub fn set_baseline(&mut self, msg: &TelegramMessage) {
        for (slot, (_, get)) in self.base.iter_mut().zip(REGISTERS) {
            *slot = get(&msg.values);
        }
    }

    /// Whether any telegram was added.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.telegrams == 0
    }

    /// Adds one telegram.
    pub fn add(&mut self, msg: &TelegramMessage) {
        let v = &msg.values;
        self.telegrams += 1;
        for ((base, last), (_, get)) in self.base.iter_mut().zip(self.last.iter_mut()).zip(REGISTERS) {
            if let Some(value) = get(v) {
                if base.is_none() {
                    *base = Some(value);
                }
                *last = Some(value);
            }
        }
        // The listener's parser derives the net power whenever either side is sent.
        if let Some(net) = v.power_kw.map(Decimal::to_f64) {
            self.power_sum += net;
            self.power_count += 1;
        }
        let import = v.power_import_kw.or_else(|| v.power_kw.filter(|p| p.to_f64() >= 0.0));
        max_into(&mut self.power_max, import);
        max_into(&mut self.export_max, v.power_export_kw);
        for voltage in [v.voltage_l1_v, v.voltage_l2_v, v.voltage_l3_v].into_iter().flatten() {
            min_into(&mut self.voltage_min, Some(voltage));
            max_into(&mut self.voltage_max, Some(voltage));
        }
    }

    /// Counts sequence numbers found missing.
    pub fn add_missed(&mut self, n: u64) {
        self.missed = self.missed.saturating_add(n);
    }

    /// Takes back one missing number that arrived late.
    pub fn remove_missed(&mut self) {
        self.missed = self.missed.saturating_sub(1);
    }

    /// The line for this hour, with its `\n`.
    #[must_use]
    pub fn line(&self, tz: &TimeZone) -> String {
        let mut line = self.period.label(tz);
        let _ = write!(line, " telegrams={} missed={}", self.telegrams, self.missed);
        let deltas = self.base.iter().zip(&self.last).zip(REGISTERS);
        let mut fields: Vec<(&str, String)> = deltas
            .map(|((base, last), (name, _))| {
                let delta = match (base, last) {
                    (Some(b), Some(l)) => l.checked_sub(*b).filter(|d| d.mantissa() >= 0).map(|d| d.to_string()),
                    _ => None,
                };
                (name, delta.unwrap_or_else(|| "-".into()))
            })
            .collect();
        // Failure counters go last, after the power and voltage figures.
        let failures = fields.split_off(5);
        for (name, value) in fields {
            let _ = write!(line, " {name}={value}");
        }
        let avg =
            if self.power_count == 0 { "-".into() } else { format!("{:.3}", self.power_sum / self.power_count as f64) };
        let show = |d: Option<Decimal>| d.map_or_else(|| "-".to_owned(), |d| d.to_string());
        let _ = write!(
            line,
            " power_avg_kw={avg} power_max_kw={} export_max_kw={} voltage_min_v={} voltage_max_v={}",
            show(self.power_max),
            show(self.export_max),
            show(self.voltage_min),
            show(self.voltage_max)
        );
        for (name, value) in failures {
            let _ = write!(line, " {name}={value}");
        }
        if self.partial {
            line.push_str(" partial=1");
        }
        line.push('\n');
        line
    }
}

/// The comment line that opens a weekly log.
#[must_use]
pub fn header(listener: &str, week: &Period, tz_name: &str) -> String {
    format!(
        "# p1hub weekly log {week} for {}, hours in {}: energy per tariff (kWh) and gas (m3) used in the hour, power \
         average and peak (kW), voltage min/max (V), power failures (count), telegrams missed (sequence gaps)\n",
        listener.replace(['\n', '\r'], " "),
        tz_name
    )
}

/// The hour a weekly log line is about: its first field, parsed.
#[must_use]
pub fn line_hour(line: &str) -> Option<jiff::Timestamp> {
    if line.starts_with('#') {
        return None;
    }
    line.split(' ').next()?.parse().ok()
}

fn max_into(slot: &mut Option<Decimal>, value: Option<Decimal>) {
    if let Some(v) = value {
        if slot.is_none_or(|s| v.to_f64() > s.to_f64()) {
            *slot = Some(v);
        }
    }
}

fn min_into(slot: &mut Option<Decimal>, value: Option<Decimal>) {
    if let Some(v) = value {
        if slot.is_none_or(|s| v.to_f64() < s.to_f64()) {
            *slot = Some(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::period::Span;
    use crate::testutil::{dec, telegram};

    fn ams() -> TimeZone {
        TimeZone::get("Europe/Amsterdam").expect("tzdb")
    }

    #[test]
    fn an_hour_is_summarised_from_register_differences() {
        let tz = ams();
        let t0 = "2024-10-27T00:59:50Z";
        let hour = Period::containing(Span::HOUR, "2024-10-27T01:00:00Z".parse().expect("ts"), &tz);
        let mut prev = HourSummary::new(Period::containing(Span::HOUR, t0.parse().expect("ts"), &tz), false);
        prev.add(&telegram("m", "b", 1, t0));
        let mut h = prev.next(hour);
        let mut a = telegram("m", "b", 2, "2024-10-27T01:10:00Z");
        a.values.energy_import_t2_kwh = Some(dec("1520.300"));
        a.values.power_kw = Some(dec("-0.500"));
        a.values.power_import_kw = Some(dec("0.000"));
        a.values.power_export_kw = Some(dec("0.500"));
        a.values.voltage_l2_v = Some(dec("236.4"));
        let mut b = telegram("m", "b", 5, "2024-10-27T01:59:00Z");
        b.values.energy_import_t2_kwh = Some(dec("1520.512"));
        b.values.gas_m3 = Some(dec("1621.735"));
        b.values.power_kw = Some(dec("2.500"));
        b.values.power_import_kw = Some(dec("2.500"));
        b.values.voltage_l1_v = Some(dec("219.9"));
        b.values.power_failures = Some(5);
        h.add(&a);
        h.add_missed(2);
        h.add(&b);
        assert_eq!(
            h.line(&tz),
            "2024-10-27T02:00+01:00 telegrams=2 missed=2 import_t1_kwh=0.000 import_t2_kwh=0.412 export_t1_kwh=0.000 \
             export_t2_kwh=0.000 gas_m3=0.120 power_avg_kw=1.000 power_max_kw=2.500 export_max_kw=0.500 \
             voltage_min_v=219.9 voltage_max_v=236.4 power_failures=1 long_power_failures=0\n"
        );
        assert_eq!(line_hour(&h.line(&tz)), Some("2024-10-27T01:00:00Z".parse().expect("ts")));
    }

    #[test]
    fn an_hour_without_baseline_starts_from_its_first_telegram() {
        let tz = ams();
        let hour = Period::containing(Span::HOUR, "2024-06-01T10:00:00Z".parse().expect("ts"), &tz);
        let mut h = HourSummary::new(hour, true);
        let mut a = telegram("m", "b", 1, "2024-06-01T10:30:00Z");
        a.values.gas_m3 = None;
        let mut b = telegram("m", "b", 2, "2024-06-01T10:31:00Z");
        b.values.energy_import_t1_kwh = Some(dec("1164.000"));
        b.values.gas_m3 = None;
        h.add(&a);
        h.add(&b);
        let line = h.line(&tz);
        assert!(line.starts_with("2024-06-01T12:00+02:00 telegrams=2 missed=0 import_t1_kwh=- "), "{line}");
        assert!(line.contains(" gas_m3=- "), "{line}");
        assert!(line.ends_with(" partial=1\n"), "{line}");
    }
}
