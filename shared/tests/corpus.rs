//! The test corpus in `shared/testdata/` (written by `make_corpus.py`): every telegram has a valid CRC and parses
//! with no line errors (except the one made to have them) and one OBIS entry per data line; the named values come
//! out exactly as written; and the byte streams give the telegrams and CRC failures `streams/expected.json` lists.

use std::path::{Path, PathBuf};
use std::time::Instant;

use jiff::tz::TimeZone;
use shared::decimal::Decimal;
use shared::engine::{Engine, EngineOptions, Event, Rejection};
use shared::telegram::{parse, Parsed};
use shared::timestamp::MeterTime;
use shared::wire::{DeviceKind, Dialect, LineReading, ObisValue, Reading, TariffName};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn read(name: &str) -> Vec<u8> {
    let path = testdata().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn ams() -> TimeZone {
    TimeZone::get("Europe/Amsterdam").expect("bundled tzdb")
}

fn parsed(name: &str) -> Parsed {
    parse(&read(name), &ams())
}

/// Every telegram file of the corpus, by name.
fn corpus() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(testdata())
        .expect("testdata exists")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| Path::new(n).extension().is_some_and(|e| e == "txt"))
        .collect();
    names.sort();
    names
}

#[allow(clippy::unnecessary_wraps)] // Compared with `Option` fields.
fn d(text: &str) -> Option<Decimal> {
    Some(text.parse().expect("decimal"))
}

#[allow(clippy::unnecessary_wraps)] // Compared with `Option` fields.
fn t(rfc3339: &str) -> Option<MeterTime> {
    Some(rfc3339.parse().expect("time"))
}

/// Lines of a telegram that hold a reference (they start with a digit), as a meter-independent count.
fn data_lines(raw: &[u8]) -> usize {
    raw.split(|&b| b == b'\n').skip(1).filter(|l| l.first().is_some_and(u8::is_ascii_digit)).count()
}

#[test]
fn corpus_covers_every_dialect() {
    let names = corpus();
    assert!(names.len() >= 15, "only {} telegrams", names.len());
    let dialects: Vec<Dialect> = names.iter().map(|n| parsed(n).dialect).collect();
    for want in [
        Dialect::Dsmr22,
        Dialect::Dsmr3,
        Dialect::Dsmr4,
        Dialect::Dsmr5,
        Dialect::Belgian,
        Dialect::Luxembourg,
        Dialect::Other,
    ] {
        assert!(dialects.contains(&want), "no {want:?} telegram");
    }
}

#[test]
fn every_telegram_has_a_valid_crc() {
    for name in corpus() {
        let raw = read(&name);
        let (covered, digits) = shared::frame::split_trailer(&raw).expect("has a '!'");
        assert_eq!(raw.first(), Some(&b'/'), "{name}");
        if digits.is_empty() {
            let without = ["dsmr22", "dsmr30", "easymeter"];
            assert!(without.iter().any(|w| name.starts_with(w)), "{name} has no CRC");
            continue;
        }
        let sent = shared::crc::parse_sent(digits).expect("hex digits");
        assert_eq!(shared::crc::checksum(covered), sent, "{name}");
    }
}

#[test]
fn every_telegram_parses_cleanly_into_one_entry_per_line() {
    for name in corpus() {
        if name == "dsmr50_malformed_lines.txt" {
            continue;
        }
        let raw = read(&name);
        let p = parse(&raw, &ams());
        assert_eq!(p.errors, vec![], "{name}");
        assert_eq!(p.obis.len(), data_lines(&raw), "{name}");
        let first_line = raw.split(|&b| b == b'\n').next().expect("a line");
        assert_eq!(p.header.as_bytes(), first_line[1..].trim_ascii(), "{name}");
    }
}

macro_rules! corpus_values {
    ($($test:ident: $file:expr, $dialect:expr => { $($field:ident: $want:expr),* $(,)? };)*) => {$(
        #[test]
        fn $test() {
            let p = parsed($file);
            assert_eq!(p.errors, vec![]);
            assert_eq!(p.dialect, $dialect);
            $(assert_eq!(p.values.$field, $want, "{}", stringify!($field));)*
        }
    )*};
}

corpus_values! {
    dsmr22: "dsmr22.txt", Dialect::Dsmr22 => {
        equipment_id: Some("KAL7005112345678".into()),
        energy_import_t1_kwh: d("231.512"),
        energy_import_kwh: d("418.516"),
        energy_export_kwh: d("0"),
        power_kw: d("0.86"),
        tariff: Some(2),
        tariff_name: Some(TariffName::Normal),
        limiter_kw: None,
        limiter_a: d("999"),
        breaker_state: Some(1),
        gas_m3: d("412.961"),
        gas_at: t("2011-11-03T14:00:00+01:00"),
        version: None,
    };
    dsmr30: "dsmr30.txt", Dialect::Dsmr3 => {
        equipment_id: Some("K8EG004046395507".into()),
        power_kw: d("1.19"),
        limiter_kw: d("999"),
        tariff_name: Some(TariffName::Low),
        gas_m3: d("1897.034"),
        gas_at: t("2013-07-09T16:00:00+02:00"),
    };
    dsmr40: "dsmr40.txt", Dialect::Dsmr4 => {
        version: Some("40".into()),
        meter_time: t("2014-01-21T09:45:12+01:00"),
        energy_import_kwh: d("2956.225"),
        power_kw: d("0.244"),
        power_l1_kw: d("0.244"),
        current_l1_a: d("1"),
        limiter_kw: d("999.9"),
        long_power_failures: Some(1),
        gas_m3: d("844.456"),
        gas_at: t("2014-01-21T09:00:00+01:00"),
    };
    dsmr42_1phase: "dsmr42_1phase.txt", Dialect::Dsmr4 => {
        power_kw: d("0.424"),
        tariff_name: Some(TariffName::Low),
        power_failure_log: vec![],
        gas_m3: d("2569.646"),
    };
    dsmr42_3phase: "dsmr42_3phase.txt", Dialect::Dsmr4 => {
        power_kw: d("2.793"),
        power_l1_kw: d("0.918"),
        power_l2_kw: d("0.706"),
        power_l3_kw: d("1.169"),
        current_l3_a: d("5"),
        voltage_sags_l2: Some(1),
        gas_m3: d("5102.337"),
    };
    dsmr42_lf_only: "dsmr42_lf_only.txt", Dialect::Dsmr4 => {
        meter_time: t("2018-03-25T03:00:02+02:00"),
        power_kw: d("0.301"),
        energy_import_kwh: d("4142.621"),
    };
    dsmr50_1phase: "dsmr50_1phase.txt", Dialect::Dsmr5 => {
        voltage_l1_v: d("230.4"),
        power_kw: d("0.193"),
        gas_m3: d("379.318"),
        water_m3: None,
    };
    dsmr5_3phase_gas_water: "dsmr5_3phase_gas_water.txt", Dialect::Dsmr5 => {
        equipment_id: Some("E0049007399753418".into()),
        meter_time: t("2024-06-17T14:35:04+02:00"),
        energy_import_kwh: d("22222.221"),
        energy_export_kwh: d("469.134"),
        tariff: Some(2),
        tariff_name: Some(TariffName::Normal),
        power_kw: d("1.193"),
        power_l1_kw: d("0.412"),
        power_l2_kw: d("0.275"),
        power_l3_kw: d("0.506"),
        voltage_l1_v: d("230.1"),
        voltage_l2_v: d("231.4"),
        voltage_l3_v: d("229.8"),
        current_l2_a: d("1"),
        voltage_sags_l3: Some(3),
        voltage_swells_l3: Some(1),
        power_failures: Some(10),
        long_power_failures: Some(4),
        text_message: None,
        gas_m3: d("4123.456"),
        gas_at: t("2024-06-17T14:30:04+02:00"),
        water_m3: d("321.098"),
        water_at: t("2024-06-17T14:30:00+02:00"),
        heat_gj: None,
    };
    dsmr50_solar_export_is_negative: "dsmr50_solar.txt", Dialect::Dsmr5 => {
        power_import_kw: d("0"),
        power_export_kw: d("3.214"),
        power_kw: d("-3.214"),
        power_l1_kw: d("0.152"),
        power_l2_kw: d("-1.683"),
        power_l3_kw: d("-1.683"),
        energy_export_kwh: d("3272.897"),
        voltage_swells_l2: Some(19),
    };
    dsmr50_star255_crc3: "dsmr50_star255_crc3.txt", Dialect::Dsmr5 => {
        power_kw: d("0.106"),
        power_l1_kw: d("0.106"),
        energy_import_kwh: d("2063.096"),
        tariff_name: Some(TariffName::Low),
        gas_m3: d("1045.771"),
        gas_at: t("2021-02-09T06:40:00+01:00"),
    };
    dsmr50_heat: "dsmr50_heat.txt", Dialect::Dsmr5 => {
        heat_gj: d("42.518"),
        heat_at: t("2020-12-01T19:00:00+01:00"),
        gas_m3: None,
        power_kw: d("1.047"),
    };
    dsmr50_placeholders_are_null: "dsmr50_placeholders.txt", Dialect::Dsmr5 => {
        meter_time: None,
        gas_m3: d("0"),
        gas_at: None,
        energy_import_kwh: d("0.031"),
    };
    belgian_1phase: "belgian_1phase.txt", Dialect::Belgian => {
        version: Some("50217".into()),
        equipment_id: Some("1SAG3101021605".into()),
        tariff: Some(1),
        tariff_name: Some(TariffName::Normal),
        capacity_demand_kw: d("0.518"),
        capacity_peak_kw: d("3.214"),
        capacity_peak_at: t("2024-06-03T18:45:00+02:00"),
        power_kw: d("0.412"),
        current_l1_a: d("2.12"),
        fuse_a: d("999"),
        limiter_kw: d("999.9"),
        breaker_state: Some(1),
    };
    belgian_13months: "belgian_13months.txt", Dialect::Belgian => {
        capacity_demand_kw: d("2.351"),
        capacity_peak_kw: d("4.388"),
        power_kw: d("2.79"),
        power_l3_kw: d("0.792"),
        current_l2_a: d("4.48"),
        tariff_name: Some(TariffName::Normal),
        gas_m3: d("3256.104"),
        gas_at: t("2024-06-18T19:40:00+02:00"),
    };
    belgian_water_gas: "belgian_water_gas.txt", Dialect::Belgian => {
        tariff_name: Some(TariffName::Low),
        gas_m3: d("512.33"),
        gas_at: t("2023-11-02T07:25:00+01:00"),
        water_m3: d("74.081"),
        water_at: t("2023-11-02T07:25:00+01:00"),
    };
    luxembourg_smarty: "luxembourg_smarty.txt", Dialect::Luxembourg => {
        equipment_id: Some("SAG1030700031224".into()),
        energy_import_kwh: d("3917.552"),
        energy_export_kwh: d("6.281"),
        power_kw: d("1.512"),
        power_l2_kw: d("0.641"),
        limiter_kw: None,
        fuse_a: None,
        tariff_name: None,
        voltage_sags_l3: Some(5),
    };
    other_swedish: "other_swedish.txt", Dialect::Other => {
        meter_time: t("2024-01-17T14:35:04+01:00"),
        energy_import_kwh: d("6678.394"),
        energy_export_kwh: d("0"),
        power_kw: d("1.727"),
        power_l1_kw: d("1.023"),
        current_l1_a: d("4.2"),
        voltage_l3_v: d("241.3"),
    };
    hungarian_four_tariffs_and_reactive: "hungarian_4tariff_reactive.txt", Dialect::Other => {
        energy_import_kwh: d("123.456"),
        energy_import_t3_kwh: d("20.456"),
        energy_import_t4_kwh: d("13"),
        energy_export_t3_kwh: d("2"),
        energy_export_t4_kwh: d("1.5"),
        energy_absolute_kwh: d("133.956"),
        energy_reactive_import_kvarh: d("12.345"),
        energy_reactive_export_kvarh: d("1.234"),
        energy_reactive_q1_kvarh: d("10"),
        energy_reactive_q2_kvarh: d("2.345"),
        energy_reactive_q3_kvarh: d("0.234"),
        energy_reactive_q4_kvarh: d("1"),
        power_reactive_q1_kvar: d("0.012"),
        power_reactive_q4_kvar: d("0.034"),
        power_factor: d("0.981"),
        power_factor_l1: d("0.99"),
        power_factor_l2: d("1"),
        power_factor_l3: d("0.975"),
        frequency_hz: d("50.01"),
        fuse_a: d("200"),
        fuse_l1_a: d("200"),
        fuse_l2_a: d("200"),
        fuse_l3_a: d("200"),
        limiter_kw: d("90"),
        breaker_state: Some(1),
        message_code: Some("00000001".into()),
        meter_time: t("2023-05-30T11:15:00+02:00"),
    };
    austrian_sagemcom_reactive_in_var: "austrian_sagemcom_reactive.txt", Dialect::Other => {
        energy_import_kwh: d("6545.766"),
        energy_reactive_import_kvarh: d("1234.567"),
        energy_reactive_export_kvarh: d("543.21"),
        power_import_kw: d("0.623"),
        power_reactive_import_kvar: d("0.123"),
        power_reactive_export_kvar: d("0"),
        power_apparent_import_kva: d("0.635"),
        power_factor: d("0.981"),
        current_l2_a: d("0.45"),
        meter_time: t("2023-11-15T12:00:00+01:00"),
    };
    easymeter_q3d: "easymeter_q3d.txt", Dialect::Other => {
        energy_import_kwh: d("52185.2825089"),
        energy_export_kwh: d("19949.3221988"),
        power_import_kw: d("0.20557"),
        power_import_l1_kw: d("0.15136"),
        power_import_l3_kw: d("0.01327"),
        power_kw: None,
    };
    irish_iskra_in_amsterdam_time: "irish_iskra.txt", Dialect::Dsmr5 => {
        energy_import_kwh: d("123.456"),
        energy_import_t3_kwh: d("33.222"),
        tariff: Some(3),
        tariff_name: None,
    };
    other_austrian_watts_become_kilowatts: "other_austrian_wh.txt", Dialect::Other => {
        version: Some("50".into()),
        equipment_id: Some("EC501126".into()),
        energy_import_kwh: d("6545.766"),
        energy_import_t1_kwh: d("5017.12"),
        energy_export_kwh: d("0.058"),
        power_kw: d("0.286"),
        tariff: Some(1),
        tariff_name: None,
    };
}

#[test]
fn dsmr22_and_30_gas_spans_two_lines() {
    for name in ["dsmr22.txt", "dsmr30.txt"] {
        let p = parsed(name);
        let ObisValue::Many(groups) = &p.obis.get("0-1:24.3.0").expect("line").to_value() else {
            panic!("{name}: one group")
        };
        assert_eq!(groups.len(), 7, "{name}: the value line is merged");
        assert_eq!(groups[5], "m3");
        let gas = &p.values.devices[0];
        assert_eq!((gas.channel, gas.kind, gas.unit.as_deref(), gas.valve), (1, DeviceKind::Gas, Some("m3"), Some(1)));
    }
    assert_eq!(parsed("dsmr22.txt").values.devices[0].type_code, None);
    assert_eq!(parsed("dsmr30.txt").values.devices[0].type_code, Some(3));
}

#[test]
fn power_failure_logs() {
    let p = parsed("dsmr50_message_failures.txt");
    let log = &p.values.power_failure_log;
    let durations: Vec<u64> = log.iter().map(|f| f.duration_s).collect();
    assert_eq!(durations, [187, 1, 12004]);
    assert_eq!(log[0].end, t("2021-12-24T17:03:11+01:00"));
    assert_eq!(log[1].end, t("2022-03-27T03:59:59+02:00"));
    let p = parsed("dsmr40.txt");
    assert_eq!(p.values.power_failure_log.len(), 1);
    assert_eq!((p.values.power_failure_log[0].end, p.values.power_failure_log[0].duration_s), (None, 2_147_483_647));
}

#[test]
fn text_messages_are_decoded() {
    let p = parsed("dsmr50_message_failures.txt");
    assert_eq!(p.values.text_message.as_deref(), Some("Onderhoud aan het net op 12-07 tussen 09:00 en 11:00."));
    let long = "Let op: uw slimme meter krijgt binnenkort nieuwe software. ".repeat(20);
    let p = parsed("dsmr50_long_message.txt");
    assert_eq!(p.values.text_message.as_deref(), Some(&long[..1024]));
    let ObisValue::One(raw) = &p.obis.get("0-0:96.13.0").expect("line").to_value() else { panic!("one group") };
    assert_eq!(raw.len(), 2048, "the raw hex is kept");
}

#[test]
fn star_255_references_are_kept_as_written() {
    let raw = read("dsmr50_star255_crc3.txt");
    let (_, digits) = shared::frame::split_trailer(&raw).expect("trailer");
    assert_eq!(digits.len(), 3, "unpadded CRC");
    let p = parse(&raw, &ams());
    assert!(p.obis.keys().all(|k| k.ends_with("*255")), "{:?}", p.obis.keys().collect::<Vec<_>>());
    assert_eq!(p.obis.get("1-0:1.8.1*255").expect("line").to_value(), ObisValue::One("000907.226*kWh".into()));
}

#[test]
fn belgian_capacity_history_has_thirteen_months() {
    let p = parsed("belgian_13months.txt");
    let h = &p.values.capacity_history;
    assert_eq!(h.len(), 13);
    assert_eq!(h[0].month, t("2023-06-01T00:00:00+02:00"));
    assert_eq!(h[0].at, t("2023-05-15T17:00:00+02:00"));
    assert_eq!(h[0].kw, "3.391".parse::<Decimal>().expect("decimal"));
    assert_eq!(h[5].month, t("2023-11-01T00:00:00+01:00"));
    assert_eq!(h[12].month, t("2024-06-01T00:00:00+02:00"));
    assert_eq!(h[12].kw, "2.871".parse::<Decimal>().expect("decimal"));
    let one = parsed("belgian_1phase.txt").values.capacity_history;
    assert_eq!(one.len(), 2);
    assert_eq!((one[1].month, one[1].at), (t("2024-06-01T00:00:00+02:00"), t("2024-05-07T19:00:00+02:00")));
}

#[test]
fn devices_are_found_by_type() {
    let p = parsed("dsmr5_3phase_gas_water.txt");
    let kinds: Vec<_> = p.values.devices.iter().map(|d| (d.channel, d.kind, d.type_code)).collect();
    assert_eq!(kinds, [(1, DeviceKind::Gas, Some(3)), (2, DeviceKind::Water, Some(7))]);
    assert_eq!(p.values.devices[1].id.as_deref(), Some("8SAG1234567890"));
    assert_eq!(
        p.obis.get("0-2:96.1.0").expect("line").to_value(),
        ObisValue::One("3853414731323334353637383930".into()),
        "raw hex kept"
    );

    let p = parsed("belgian_water_gas.txt");
    let gas = &p.values.devices[0];
    assert_eq!((gas.kind, gas.id.as_deref(), gas.valve), (DeviceKind::Gas, Some("7FLO2119034111"), Some(1)));
    assert_eq!(p.values.devices[1].kind, DeviceKind::Water);

    let p = parsed("dsmr50_heat.txt");
    assert_eq!((p.values.devices[0].kind, p.values.devices[0].unit.as_deref()), (DeviceKind::Heat, Some("GJ")));
}

#[test]
fn unknown_codes_are_kept_raw() {
    let p = parsed("luxembourg_smarty.txt");
    assert_eq!(
        p.obis.get("1-1:31.4.0").expect("line").to_value(),
        ObisValue::Many(vec!["040*A".into(), "-040*A".into()])
    );
    assert_eq!(p.obis.get("1-0:3.8.0").expect("line").to_value(), ObisValue::One("000201.447*kvarh".into()));
    assert_eq!(p.obis.get("0-0:17.0.0").expect("line").to_value(), ObisValue::One("027.6*kVA".into()));
    assert_eq!(p.obis.get("0-0:96.13.5").expect("line").to_value(), ObisValue::One(String::new()));
}

#[test]
fn malformed_lines_are_reported_and_the_rest_survives() {
    let raw = read("dsmr50_malformed_lines.txt");
    let p = parse(&raw, &ams());
    let lines: Vec<u32> = p.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [7, 11, 13, 14], "{:#?}", p.errors);
    assert_eq!(p.errors[0].text, "this line is not P1");
    assert!(p.errors[1].reason.contains("not a number"), "{}", p.errors[1].reason);
    assert!(p.errors[2].reason.contains("not closed"), "{}", p.errors[2].reason);
    assert!(p.errors[3].reason.contains("unit"), "{}", p.errors[3].reason);
    // The two lines that do not follow the grammar are not in the map; the two with bad values are, raw.
    assert_eq!(p.obis.len(), data_lines(&raw) - 1);
    assert_eq!(p.obis.get("1-0:1.7.0").expect("line").to_value(), ObisValue::One("00.7x1*kW".into()));
    let v = &p.values;
    assert_eq!(p.dialect, Dialect::Dsmr5);
    assert_eq!(v.energy_import_kwh, d("808.522"));
    // The import line is unreadable, so there is no net power (issue 14: it used to be 0, the export negated).
    assert_eq!((v.power_import_kw, v.power_export_kw, v.power_kw), (None, d("0"), None));
    assert_eq!((v.voltage_l1_v, v.current_l1_a), (None, None));
    assert_eq!((v.tariff, v.gas_m3), (Some(2), d("812.44")));
}

/// Pushes a stream through the engine in `chunk`-byte pieces; returns the valid telegrams and the CRC failures.
fn run_engine(stream: &[u8], chunk: usize) -> (Vec<Vec<u8>>, usize) {
    let mut engine = Engine::new(EngineOptions { timezone: ams(), ..EngineOptions::default() });
    let now = Instant::now();
    let (mut telegrams, mut crc_failures) = (Vec::new(), 0);
    for piece in stream.chunks(chunk) {
        engine.push(piece, now);
        while let Some(event) = engine.next_event() {
            match event {
                Event::Telegram(checked) => telegrams.push(checked.raw.to_vec()),
                Event::Rejected(Rejection::Crc { .. }) => crc_failures += 1,
                Event::Rejected(_) => {}
            }
        }
    }
    (telegrams, crc_failures)
}

#[test]
fn streams_match_expected_json() {
    let expected: serde_json::Value =
        serde_json::from_slice(&read("streams/expected.json")).expect("expected.json is JSON");
    let streams = expected.as_object().expect("an object");
    assert!(streams.len() > 6);
    for (name, want) in streams.iter().filter(|(k, _)| !k.starts_with('_')) {
        let stream = read(&format!("streams/{name}"));
        assert_eq!(want["bytes"].as_u64(), Some(stream.len() as u64), "{name}");
        assert_eq!(want["max_telegram_bytes"].as_u64(), Some(shared::frame::DEFAULT_MAX_LEN as u64));
        let valid: Vec<Vec<u8>> = want["valid"]
            .as_array()
            .expect("valid is a list")
            .iter()
            .map(|v| read(v.as_str().expect("a file name")))
            .collect();
        assert_eq!(want["telegrams"].as_u64(), Some(valid.len() as u64), "{name}");
        for chunk in [stream.len(), 4096, 61, 1] {
            let (telegrams, crc_failures) = run_engine(&stream, chunk);
            assert!(telegrams == valid, "{name} in {chunk}-byte chunks: {} telegrams", telegrams.len());
            assert_eq!(Some(crc_failures as u64), want["crc_failures"].as_u64(), "{name} in {chunk}-byte chunks");
        }
    }
}

/// Issue 18: an Irish meter's stamps are Irish time, and the `S` flag on a February stamp is counted as
/// contradicting the zone (in the parse and in the engine's status counters).
#[test]
fn irish_stamps_are_read_in_dublin_time() {
    let dublin = TimeZone::get("Europe/Dublin").expect("bundled tzdb");
    let raw = read("irish_iskra.txt");
    let p = parse(&raw, &dublin);
    assert_eq!(p.values.meter_time, t("2023-02-02T13:27:47+00:00"));
    assert_eq!(p.dst_flag_mismatches, 1);
    assert_eq!(p.values.timezone, Some(dublin.clone()));
    let mut engine = Engine::new(EngineOptions { timezone: dublin, ..EngineOptions::default() });
    engine.push(&raw, Instant::now());
    engine.push(&raw, Instant::now());
    let mut telegrams = 0;
    while let Some(event) = engine.next_event() {
        telegrams += usize::from(matches!(event, Event::Telegram(_)));
    }
    assert_eq!((telegrams, engine.counters().dst_flag_mismatches), (2, 2));
    // The Dutch corpus agrees with its zone everywhere.
    for name in corpus().iter().filter(|n| n.starts_with("dsmr")) {
        assert_eq!(parsed(name).dst_flag_mismatches, 0, "{name}");
    }
}

/// `digits[.digits]*unit`: what a number with a unit looks like in a group.
fn looks_like_a_quantity(text: &str) -> bool {
    let Some((number, unit)) = text.split_once('*') else { return false };
    let mut parts = number.splitn(2, '.');
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(parts.next().unwrap_or_default())
        && parts.next().is_none_or(digits)
        && !unit.is_empty()
        && unit.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Issue 18: every line of every corpus telegram has a typed reading, and it says exactly what the meter's text
/// says: a number with the same value and unit, a stamp with the same digits and the zone's offset there, or the
/// text itself (never for a group that is a number with a unit, outside id and version lines).
#[test]
fn typed_readings_agree_with_the_exact_text_for_the_whole_corpus() {
    let zone = ams();
    let (mut numbers, mut times, mut texts) = (0, 0, 0);
    for name in corpus() {
        let p = parse(&read(&name), &zone);
        let readings = p.obis.readings(&zone);
        assert_eq!(readings.len(), p.obis.len(), "{name}");
        for ((key, reading), (exact_key, line)) in readings.iter().zip(p.obis.iter()) {
            assert_eq!(*key, exact_key, "{name}");
            let groups: Vec<&str> = line.groups().collect();
            let typed: Vec<&Reading> = match reading {
                LineReading::One(r) => vec![r],
                LineReading::Many(list) => list.iter().collect(),
            };
            assert_eq!(matches!(reading, LineReading::Many(_)), line.is_list(), "{name} {key}");
            assert_eq!(typed.len(), groups.len(), "{name} {key}");
            for (r, text) in typed.into_iter().zip(groups) {
                let at = format!("{name} {key} ({text})");
                match r {
                    Reading::Number { value, unit } => {
                        numbers += 1;
                        let (digits, written_unit) = match text.split_once('*') {
                            Some((digits, unit)) => (digits, Some(unit)),
                            None => (text, None),
                        };
                        let exact: Decimal = digits.parse().unwrap_or_else(|e| panic!("{at}: {e}"));
                        assert_eq!(value.checked_sub(exact).map(Decimal::is_zero), Some(true), "{at}");
                        assert_eq!(unit.as_deref(), written_unit, "{at}");
                    }
                    Reading::Time { time } => {
                        times += 1;
                        let Some(time) = time else {
                            assert!(text.starts_with("632525252525") || text.starts_with("0001010"), "{at}");
                            continue;
                        };
                        assert_eq!(time.local.strftime("%y%m%d%H%M%S").to_string(), text[..12], "{at}");
                        let offsets = match zone.to_ambiguous_timestamp(time.local).offset() {
                            jiff::tz::AmbiguousOffset::Unambiguous { offset } => vec![offset],
                            jiff::tz::AmbiguousOffset::Gap { before, after }
                            | jiff::tz::AmbiguousOffset::Fold { before, after } => vec![before, after],
                        };
                        assert!(offsets.contains(&time.offset), "{at}: {time}");
                    }
                    Reading::Text { text: typed } => {
                        texts += 1;
                        assert_eq!(typed, text, "{at}");
                        let id_or_version =
                            ["0-0:96.1.", "0-1:96.1.", "0-2:96.1.", "1-3:0.2.8", "0-0:42.0.0", "1-0:0.0.0"];
                        if !id_or_version.iter().any(|p| key.starts_with(p)) {
                            assert!(!looks_like_a_quantity(text), "{at} is a quantity read as text");
                        }
                    }
                }
            }
        }
    }
    assert!(numbers > 500 && times > 40 && texts > 40, "{numbers} numbers, {times} stamps, {texts} texts");
}
