//! A simulated DSMR 5.0.2 three-phase meter, for demos, tests and benchmarks on machines without a meter.
//!
//! [`Simulator::telegram_at`] returns one complete telegram (`/` … `!CRC` CR LF, CRC-16/ARC) for a given instant.
//! Power is a pure function of the seed and the time: a household load on three phases with a morning and an
//! evening peak, and a single-phase solar inverter on L1 whose output follows the sun, so the meter exports around
//! noon (negative net power) all year. The simulator's only state is its registers: energy, gas and water grow by
//! the power (or flow) of the current instant times the time since the previous telegram, so they never go down,
//! not even when the clock does. Gas and water readings change only at 5-minute boundaries and carry the stamp of
//! that boundary, as an M-Bus device read by a real meter does. Stamps are Europe/Amsterdam local time with the
//! `S`/`W` flag of the instant, whatever the zone of the `now` passed in.
//!
//! No clock is read and nothing random is drawn from the system: the same seed and the same instants give the
//! same bytes.

use std::f64::consts::{PI, TAU};
use std::fmt::Write as _;

use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// Seconds between two M-Bus readings (gas, water).
const MBUS_PERIOD_S: i64 = 300;

/// A simulated meter. See the module documentation.
#[derive(Clone, Debug)]
pub struct Simulator {
    seed: u64,
    zone: TimeZone,
    equipment_id: String,
    gas_id: String,
    water_id: String,
    /// When the registers were last advanced.
    last: Option<Timestamp>,
    /// Energy registers in kWh: import T1, import T2, export T1, export T2.
    import_t1: f64,
    import_t2: f64,
    export_t1: f64,
    export_t2: f64,
    /// Gas and water as they flow now, and as last reported at a 5-minute boundary.
    gas_live: f64,
    water_live: f64,
    mbus: Option<MbusReading>,
    power_failures: u32,
    long_power_failures: u32,
}

/// The M-Bus readings of the current 5-minute period.
#[derive(Clone, Copy, Debug)]
struct MbusReading {
    /// The boundary, in Unix seconds.
    at: i64,
    gas_m3: f64,
    water_m3: f64,
}

/// The power of one instant, in kW.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Power {
    /// Net power per phase (import positive, export negative).
    phases: [f64; 3],
    voltages: [f64; 3],
}

impl Simulator {
    /// A meter whose identities, starting registers and load pattern derive from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let digits = |salt: u64| format!("{:014}", mix(seed, salt, 0) % 100_000_000_000_000);
        let start = |salt: u64, base: f64, span: u64| base + (mix(seed, salt, 1) % span) as f64 + 0.125;
        Simulator {
            seed,
            // The bundled database always has Amsterdam; a fixed CET is only a fallback that never happens.
            zone: TimeZone::get("Europe/Amsterdam").unwrap_or_else(|_| TimeZone::fixed(jiff::tz::offset(1))),
            equipment_id: format!("E0{}", digits(1)),
            gas_id: format!("G0{}", digits(2)),
            water_id: format!("W0{}", digits(3)),
            last: None,
            import_t1: start(4, 4_000.0, 6_000),
            import_t2: start(5, 4_000.0, 6_000),
            export_t1: start(6, 500.0, 2_000),
            export_t2: start(7, 1_000.0, 3_000),
            gas_live: start(8, 1_000.0, 4_000),
            water_live: start(9, 100.0, 400),
            mbus: None,
            power_failures: (mix(seed, 10, 0) % 20) as u32,
            long_power_failures: (mix(seed, 11, 0) % 3) as u32,
        }
    }

    /// The telegram the meter sends at `now`: advances the registers to `now` and writes them out.
    pub fn telegram_at(&mut self, now: Zoned) -> Vec<u8> {
        let now = if *now.time_zone() == self.zone { now } else { now.with_time_zone(self.zone.clone()) };
        let ts = now.timestamp();
        let power = self.power_at(&now);
        let net: f64 = power.phases.iter().sum();
        let (import_kw, export_kw) = (net.max(0.0), (-net).max(0.0));
        let low_tariff = is_low_tariff(&now);

        // Advance by the time since the previous telegram at today's rate. A clock that steps back advances
        // nothing: registers never decrease.
        let dt_h = match self.last {
            Some(last) if ts > last => (ts.as_millisecond() - last.as_millisecond()) as f64 / 3_600_000.0,
            _ => 0.0,
        };
        if self.last.is_none_or(|last| ts > last) {
            self.last = Some(ts);
        }
        if low_tariff {
            self.import_t1 += import_kw * dt_h;
            self.export_t1 += export_kw * dt_h;
        } else {
            self.import_t2 += import_kw * dt_h;
            self.export_t2 += export_kw * dt_h;
        }
        self.gas_live += self.gas_rate_m3h(&now) * dt_h;
        self.water_live += self.water_rate_m3h(&now) * dt_h;

        let boundary = ts.as_second().div_euclid(MBUS_PERIOD_S) * MBUS_PERIOD_S;
        match self.mbus {
            Some(m) if m.at >= boundary => {}
            _ => self.mbus = Some(MbusReading { at: boundary, gas_m3: self.gas_live, water_m3: self.water_live }),
        }
        let mbus = self.mbus.unwrap_or(MbusReading { at: boundary, gas_m3: self.gas_live, water_m3: self.water_live });
        let mbus_at = Timestamp::from_second(mbus.at).map_or_else(|_| now.clone(), |t| t.to_zoned(self.zone.clone()));

        self.write(&now, &power, import_kw, export_kw, low_tariff, &mbus, &mbus_at)
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        now: &Zoned,
        power: &Power,
        import_kw: f64,
        export_kw: f64,
        low_tariff: bool,
        mbus: &MbusReading,
        mbus_at: &Zoned,
    ) -> Vec<u8> {
        let mut t = String::with_capacity(1024);
        // `write!` into a String cannot fail; the results are ignored for that reason.
        let mut line = |s: &str| {
            t.push_str(s);
            t.push_str("\r\n");
        };
        line("/SIM5P1HUB-SIMULATED");
        line("");
        line("1-3:0.2.8(50)");
        line(&format!("0-0:1.0.0({})", stamp(now)));
        line(&format!("0-0:96.1.1({})", hex(&self.equipment_id)));
        line(&format!("1-0:1.8.1({:010.3}*kWh)", self.import_t1));
        line(&format!("1-0:1.8.2({:010.3}*kWh)", self.import_t2));
        line(&format!("1-0:2.8.1({:010.3}*kWh)", self.export_t1));
        line(&format!("1-0:2.8.2({:010.3}*kWh)", self.export_t2));
        line(&format!("0-0:96.14.0({:04})", if low_tariff { 1 } else { 2 }));
        line(&format!("1-0:1.7.0({import_kw:06.3}*kW)"));
        line(&format!("1-0:2.7.0({export_kw:06.3}*kW)"));
        line(&format!("0-0:96.7.21({:05})", self.power_failures));
        line(&format!("0-0:96.7.9({:05})", self.long_power_failures));
        if self.long_power_failures == 0 {
            line("1-0:99.97.0(0)(0-0:96.7.19)");
        } else {
            let mut log = format!("1-0:99.97.0({})(0-0:96.7.19)", self.long_power_failures);
            for i in 0..self.long_power_failures {
                let _ = write!(log, "({:02}0314{:02}0000W)({:010}*s)", 21 + i, 10 + i, 240 + 97 * i);
            }
            line(&log);
        }
        for (c, n) in [(32, 2), (52, 1), (72, 0)] {
            line(&format!("1-0:{c}.32.0({n:05})"));
        }
        for c in [32, 52, 72] {
            line(&format!("1-0:{c}.36.0(00000)"));
        }
        line("0-0:96.13.0()");
        for (c, v) in [32, 52, 72].into_iter().zip(power.voltages) {
            line(&format!("1-0:{c}.7.0({v:05.1}*V)"));
        }
        for ((c, p), v) in [31, 51, 71].into_iter().zip(power.phases).zip(power.voltages) {
            line(&format!("1-0:{c}.7.0({:03}*A)", (p.abs() * 1000.0 / v).round() as u32));
        }
        for (c, p) in [21, 41, 61].into_iter().zip(power.phases) {
            line(&format!("1-0:{c}.7.0({:06.3}*kW)", p.max(0.0)));
        }
        for (c, p) in [22, 42, 62].into_iter().zip(power.phases) {
            line(&format!("1-0:{c}.7.0({:06.3}*kW)", (-p).max(0.0)));
        }
        let at = stamp(mbus_at);
        line("0-1:24.1.0(003)");
        line(&format!("0-1:96.1.0({})", hex(&self.gas_id)));
        line(&format!("0-1:24.2.1({at})({:09.3}*m3)", mbus.gas_m3));
        line("0-2:24.1.0(007)");
        line(&format!("0-2:96.1.0({})", hex(&self.water_id)));
        line(&format!("0-2:24.2.1({at})({:09.3}*m3)", mbus.water_m3));
        t.push('!');
        let crc = crate::crc::checksum(t.as_bytes());
        let _ = write!(t, "{crc:04X}\r\n");
        t.into_bytes()
    }

    /// Net power per phase and voltages at `now` (Amsterdam time).
    fn power_at(&self, now: &Zoned) -> Power {
        let secs = now.timestamp().as_second();
        let h = hours(now);
        let n = |salt: u64, period: i64| value_noise(self.seed, salt, secs, period);
        // Appliances switch on and off within their hours: `gate` is 0 or 1 most of the time, ramps in between.
        let gate = |salt: u64, period: i64, duty: f64| ((n(salt, period) - (1.0 - duty)) * 8.0).clamp(0.0, 1.0);

        let fridge = 0.09 * gate(20, 600, 0.4);
        let l1 = 0.06
            + fridge
            + 1.9 * window(h, 7.0, 8.5) * gate(21, 120, 0.3) // kettle, coffee
            + 0.25 * window(h, 17.0, 23.5) * n(22, 900); // lights, television
        let l2 = 0.04
            + 0.08 * n(23, 300)
            + 2.4 * window(h, 17.5, 19.0) * gate(24, 240, 0.6) // induction hob
            + 0.35 * window(h, 11.8, 13.2) * gate(25, 180, 0.5); // lunch
        let l3 = 0.05
            + 0.06 * n(26, 300)
            + 1.8 * window(h, 20.0, 22.5) * gate(27, 900, 0.5) // dishwasher
            + 0.7 * window(h, 6.5, 8.0) * gate(28, 300, 0.5); // shower pump, boiler

        // A single-phase inverter on L1: it lowers L1's net power and raises its voltage.
        let solar = self.solar_kw(now);
        // Switch-mode supplies and motors: a few watts of flicker every second, as a real meter shows (without it
        // the power could sit still for minutes around the solar peak).
        let flicker = |i: u64| 0.006 * (n(35 + i, 1) - 0.5);
        let phases = [l1 - solar + flicker(0), l2 + flicker(1), l3 + flicker(2)];
        let mut voltages = [0.0; 3];
        for (i, v) in voltages.iter_mut().enumerate() {
            let load = phases[i].max(0.0);
            *v = 229.5 + 4.0 * (n(30 + i as u64, 600) - 0.5) - 1.2 * load + if i == 0 { 1.0 * solar } else { 0.0 };
        }
        Power { phases, voltages }
    }

    /// Solar output: a cosine around solar noon (11:40 UTC, about 5°E), wider and higher in summer, thinned by
    /// passing clouds to no less than 70 %.
    fn solar_kw(&self, now: &Zoned) -> f64 {
        let season = (TAU * (f64::from(now.day_of_year()) - 172.0) / 365.25).cos(); // 1 in June, -1 in December
        let half_day_h = 6.1 + 2.2 * season;
        let peak_kw = 3.0 + 1.2 * season;
        let utc = now.timestamp().as_second().rem_euclid(86_400) as f64 / 3600.0;
        let x = (utc - 11.67) / half_day_h;
        if x.abs() >= 1.0 {
            return 0.0;
        }
        let clouds = 0.7 + 0.3 * value_noise(self.seed, 40, now.timestamp().as_second(), 600);
        peak_kw * (x * PI / 2.0).cos() * clouds
    }

    /// Gas for heating (mostly in winter, mornings and evenings) and hot water, in m³ per hour.
    fn gas_rate_m3h(&self, now: &Zoned) -> f64 {
        let h = hours(now);
        let winter = 0.5 + 0.5 * (TAU * (f64::from(now.day_of_year()) - 15.0) / 365.25).cos();
        let heating = winter * (0.15 + 0.9 * window(h, 6.0, 9.0) + 0.7 * window(h, 17.0, 22.5));
        let shower = 0.9 * window(h, 7.0, 7.75) * value_noise(self.seed, 50, now.timestamp().as_second(), 300);
        (heating * (0.6 + 0.4 * value_noise(self.seed, 51, now.timestamp().as_second(), 900))) + shower
    }

    /// Water: showers, dishes and a little during the day, in m³ per hour (about 130 l a day).
    fn water_rate_m3h(&self, now: &Zoned) -> f64 {
        let h = hours(now);
        let secs = now.timestamp().as_second();
        let shower = 0.48 * window(h, 7.0, 7.75) * value_noise(self.seed, 60, secs, 300);
        let evening = 0.1 * window(h, 18.0, 21.0) * value_noise(self.seed, 61, secs, 600);
        let day = 0.01 * window(h, 7.0, 23.0);
        shower + evening + day
    }
}

/// Local hours since midnight, fractional.
fn hours(now: &Zoned) -> f64 {
    f64::from(now.hour()) + f64::from(now.minute()) / 60.0 + f64::from(now.second()) / 3600.0
}

/// 1 between `from` and `to` (hours), with 15-minute ramps either side.
fn window(h: f64, from: f64, to: f64) -> f64 {
    const RAMP: f64 = 0.25;
    ((h - from + RAMP) / RAMP).min((to + RAMP - h) / RAMP).clamp(0.0, 1.0)
}

/// Dutch tariff 1 (low): nights from 23:00 to 07:00 and all weekend.
fn is_low_tariff(now: &Zoned) -> bool {
    use jiff::civil::Weekday;
    matches!(now.weekday(), Weekday::Saturday | Weekday::Sunday) || now.hour() >= 23 || now.hour() < 7
}

/// `YYMMDDhhmmssX`, X from the instant's offset: `S` at UTC+2 (summer time), `W` otherwise.
fn stamp(t: &Zoned) -> String {
    let flag = if t.offset().seconds() == 7200 { 'S' } else { 'W' };
    format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}{flag}",
        t.year().rem_euclid(100),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Upper-case hex of the ASCII text, as meters write equipment ids.
fn hex(text: &str) -> String {
    text.bytes().fold(String::with_capacity(text.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02X}");
        s
    })
}

/// A well-mixed 64-bit hash of three numbers (the `SplitMix64` finaliser).
fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Smooth noise in [0, 1): random values at multiples of `period` seconds, eased in between, so power wanders
/// rather than jumps from one second to the next.
fn value_noise(seed: u64, salt: u64, secs: i64, period: i64) -> f64 {
    let k = secs.div_euclid(period);
    let frac = secs.rem_euclid(period) as f64 / period as f64;
    let at = |k: i64| (mix(seed, salt, k as u64) >> 11) as f64 / (1u64 << 53) as f64;
    let ease = frac * frac * (3.0 - 2.0 * frac);
    at(k) * (1.0 - ease) + at(k + 1) * ease
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Zoned {
        text.parse().expect("a valid zoned time")
    }

    /// The groups of the line starting with `obis`, as text.
    fn groups(telegram: &[u8], obis: &str) -> Vec<String> {
        let text = std::str::from_utf8(telegram).expect("ASCII");
        let line = text.lines().find(|l| l.starts_with(&format!("{obis}("))).expect("line present");
        line[obis.len()..].trim_matches(|c| c == '(' || c == ')').split(")(").map(str::to_owned).collect()
    }

    fn number(telegram: &[u8], obis: &str, group: usize) -> f64 {
        let g = &groups(telegram, obis)[group];
        g.split('*').next().expect("value").parse().expect("a number")
    }

    fn crc_ok(telegram: &[u8]) -> bool {
        let bang = telegram.iter().position(|&b| b == b'!').expect("a trailer");
        let sent = std::str::from_utf8(&telegram[bang + 1..bang + 5]).expect("ASCII");
        format!("{:04X}", crate::crc::checksum(&telegram[..=bang])) == sent && telegram.ends_with(b"\r\n")
    }

    #[test]
    fn every_telegram_has_a_valid_crc_and_frame() {
        let mut sim = Simulator::new(7);
        let start = at("2024-03-31T00:00:00+01:00[Europe/Amsterdam]");
        for minute in 0..(24 * 60) {
            let t = sim.telegram_at(start.checked_add(jiff::Span::new().minutes(minute)).expect("in range"));
            assert!(t.starts_with(b"/SIM5"), "header");
            assert!(crc_ok(&t), "bad CRC at minute {minute}:\n{}", String::from_utf8_lossy(&t));
            assert_eq!(memchr::memchr_iter(b'!', &t).count(), 1);
            assert!(t.is_ascii() && t.len() < 1500, "{} bytes", t.len());
        }
    }

    #[test]
    fn the_parser_reads_every_line() {
        let zone = TimeZone::get("Europe/Amsterdam").expect("bundled");
        for seed in 0..30 {
            let t = Simulator::new(seed).telegram_at(at("2024-02-29T18:45:00[Europe/Amsterdam]"));
            let parsed = crate::telegram::parse(&t, &zone);
            assert!(parsed.errors.is_empty(), "seed {seed}: {:?}", parsed.errors);
            assert_eq!(parsed.values.devices.len(), 2, "gas and water");
        }
    }

    #[test]
    fn registers_never_decrease_and_grow_with_power() {
        let mut sim = Simulator::new(3);
        let start = at("2024-06-14T00:00:00+02:00[Europe/Amsterdam]");
        let registers = ["1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2"];
        let mut prev = sim.telegram_at(start.clone());
        let (mut imported, mut exported) = (0.0, 0.0);
        // Two days in 10-second steps, so both tariffs and a weekend are crossed.
        for step in 1..=(2 * 8640) {
            let t = sim.telegram_at(start.checked_add(jiff::Span::new().seconds(step * 10)).expect("in range"));
            for r in registers {
                assert!(number(&t, r, 0) >= number(&prev, r, 0), "{r} went down at step {step}");
            }
            for (obis, g) in [("0-1:24.2.1", 1), ("0-2:24.2.1", 1)] {
                assert!(number(&t, obis, g) >= number(&prev, obis, g), "{obis} went down at step {step}");
            }
            imported += number(&t, "1-0:1.7.0", 0) * 10.0 / 3600.0;
            exported += number(&t, "1-0:2.7.0", 0) * 10.0 / 3600.0;
            prev = t;
        }
        let registers_of = |t: &[u8]| registers.map(|r| number(t, r, 0));
        let first = registers_of(&Simulator::new(3).telegram_at(start.clone()));
        let last = registers_of(&prev);
        // The registers hold exactly the integral of the published power (to the printed precision).
        assert!(((last[0] + last[1]) - (first[0] + first[1]) - imported).abs() < 0.05, "import {imported}");
        assert!(((last[2] + last[3]) - (first[2] + first[3]) - exported).abs() < 0.05, "export {exported}");
        assert!(imported > 3.0 && exported > 3.0, "a June household both imports and exports: {imported} {exported}");
    }

    #[test]
    fn a_clock_stepping_back_moves_no_register() {
        let mut sim = Simulator::new(1);
        let a = sim.telegram_at(at("2024-01-10T18:00:00+01:00[Europe/Amsterdam]"));
        let b = sim.telegram_at(at("2024-01-10T17:00:00+01:00[Europe/Amsterdam]"));
        for r in ["1-0:1.8.1", "1-0:1.8.2"] {
            assert!((number(&a, r, 0) - number(&b, r, 0)).abs() < f64::EPSILON);
        }
    }

    #[test]
    fn exports_at_noon_in_every_season() {
        for seed in 0..20 {
            for day in ["2024-01-15", "2024-03-21", "2024-06-21", "2024-09-22", "2024-12-21"] {
                let mut sim = Simulator::new(seed);
                let t = sim.telegram_at(at(&format!("{day}T12:00:00[Europe/Amsterdam]")));
                let (import, export) = (number(&t, "1-0:1.7.0", 0), number(&t, "1-0:2.7.0", 0));
                assert!(import == 0.0 && export > 0.1, "seed {seed} {day}: import {import} export {export}");
                assert!(number(&t, "1-0:22.7.0", 0) > 0.0, "the inverter is on L1");
                let at_night = sim.telegram_at(at(&format!("{day}T23:30:00[Europe/Amsterdam]")));
                assert!(number(&at_night, "1-0:2.7.0", 0) == 0.0, "no sun at night");
            }
        }
    }

    #[test]
    fn phases_add_up_to_the_total_and_vary_through_the_day() {
        let mut sim = Simulator::new(11);
        let mut seen = Vec::new();
        for h in 0..24 {
            let t = sim.telegram_at(at(&format!("2024-11-05T{h:02}:30:00[Europe/Amsterdam]")));
            let phase_net: f64 =
                [("1-0:21.7.0", "1-0:22.7.0"), ("1-0:41.7.0", "1-0:42.7.0"), ("1-0:61.7.0", "1-0:62.7.0")]
                    .iter()
                    .map(|(i, e)| number(&t, i, 0) - number(&t, e, 0))
                    .sum();
            let net = number(&t, "1-0:1.7.0", 0) - number(&t, "1-0:2.7.0", 0);
            assert!((net - phase_net).abs() < 0.003, "{h}h: {net} vs {phase_net}");
            seen.push(net);
        }
        let (lo, hi) = seen.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert!(hi - lo > 1.0, "power should vary through the day: {seen:?}");
    }

    #[test]
    fn gas_and_water_change_only_at_five_minute_boundaries() {
        let mut sim = Simulator::new(5);
        let base = at("2024-01-16T07:00:00+01:00[Europe/Amsterdam]");
        let mut telegrams = Vec::new();
        for s in 0..=1200 {
            let t = sim.telegram_at(base.checked_add(jiff::Span::new().seconds(s)).expect("in range"));
            let minute = (s / 60) / 5 * 5;
            assert_eq!(groups(&t, "0-1:24.2.1")[0], format!("24011607{minute:02}00W"), "stamp at second {s}");
            assert_eq!(groups(&t, "0-2:24.2.1")[0], format!("24011607{minute:02}00W"), "stamp at second {s}");
            telegrams.push(t);
        }
        for pair in telegrams.windows(2) {
            let (a, b) = (groups(&pair[0], "0-1:24.2.1"), groups(&pair[1], "0-1:24.2.1"));
            if a[0] == b[0] {
                assert_eq!(a[1], b[1], "the gas reading moved within its period");
            }
        }
        // A winter breakfast: gas and water both flow over those 20 minutes.
        let (first, last) = (&telegrams[0], &telegrams[1200]);
        assert!(number(last, "0-1:24.2.1", 1) > number(first, "0-1:24.2.1", 1));
        assert!(number(last, "0-2:24.2.1", 1) > number(first, "0-2:24.2.1", 1));
        assert_eq!(groups(last, "0-1:24.1.0"), ["003"], "gas on channel 1");
        assert_eq!(groups(last, "0-2:24.1.0"), ["007"], "water on channel 2");
    }

    #[test]
    fn summer_and_winter_flags_follow_amsterdam() {
        let mut sim = Simulator::new(9);
        // The same instant given in UTC is written in Amsterdam time.
        let summer = sim.telegram_at(at("2024-07-01T10:00:00+00:00[UTC]"));
        assert_eq!(groups(&summer, "0-0:1.0.0")[0], "240701120000S");
        let winter = sim.telegram_at(at("2024-12-01T10:00:00+00:00[UTC]"));
        assert_eq!(groups(&winter, "0-0:1.0.0")[0], "241201110000W");
        // The repeated autumn hour: the same wall time twice, told apart by the flag.
        let first = sim.telegram_at(at("2024-10-27T02:30:00+02:00[Europe/Amsterdam]"));
        let second = sim.telegram_at(at("2024-10-27T02:30:00+01:00[Europe/Amsterdam]"));
        assert_eq!(groups(&first, "0-0:1.0.0")[0], "241027023000S");
        assert_eq!(groups(&second, "0-0:1.0.0")[0], "241027023000W");
    }

    #[test]
    fn the_same_seed_and_times_give_the_same_bytes() {
        let times = ["2024-05-01T08:00:00[Europe/Amsterdam]", "2024-05-01T08:00:01[Europe/Amsterdam]"];
        let run = |seed| {
            let mut sim = Simulator::new(seed);
            times.iter().map(|t| sim.telegram_at(at(t))).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }
}
