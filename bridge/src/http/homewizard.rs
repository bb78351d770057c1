//! The HomeWizard P1 meter's local API, v1 (read-only): `/api`, `/api/v1/data`, `/api/v1/telegram`.
//!
//! Field names, units and meanings follow HomeWizard's API documentation and `python-homewizard-energy` (the
//! client Home Assistant uses): power in W (import minus export, positive while importing), energy in kWh,
//! timestamps as the number `yymmddhhmmss` in the meter's local time, ids as the meter sends them (hex). The
//! misspelt `montly_power_peak_*` keys are HomeWizard's own and clients read them so.

use serde_json::{json, Map, Value};
use shared::decimal::Decimal;
use shared::timestamp::MeterTime;
use shared::wire::{CrcStatus, DeviceKind, TelegramMessage};

/// `GET /api`: the device information HomeWizard clients read first.
#[must_use]
pub fn device(msg: Option<&TelegramMessage>, listener: &str) -> Value {
    // The serial is the meter's equipment id where known (stable across bridge restarts), else the listener name;
    // HomeWizard serials are 12 hex digits, clients only use it as an identifier.
    let serial = msg.and_then(|m| m.values.equipment_id.as_deref()).map_or_else(|| hex(listener), hex);
    json!({
        "product_type": "HWE-P1",
        "product_name": "P1 meter",
        "serial": serial,
        "firmware_version": concat!("p1hub-", env!("CARGO_PKG_VERSION")),
        "api_version": "v1",
    })
}

/// The text as lower-case hex, as HomeWizard writes meter ids.
fn hex(text: &str) -> String {
    use std::fmt::Write;
    text.bytes().fold(String::with_capacity(text.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// kW → W, exactly (a meter's kW have at most 3 decimals).
fn watts(kw: Decimal) -> Value {
    let (mut mantissa, mut scale) = (kw.mantissa().saturating_mul(1000), kw.scale());
    // 1.234 kW is 1234 W, written as an integer like HomeWizard's.
    while scale > 0 && mantissa % 10 == 0 {
        mantissa /= 10;
        scale -= 1;
    }
    number(Decimal::new(mantissa, scale))
}

fn number(d: Decimal) -> Value {
    serde_json::to_value(d).unwrap_or(Value::Null)
}

/// A meter time as HomeWizard's `yymmddhhmmss` number (the meter's local time).
fn stamp(t: &MeterTime) -> Value {
    let l = t.local;
    let n = i64::from(l.year() % 100) * 10_000_000_000
        + i64::from(l.month()) * 100_000_000
        + i64::from(l.day()) * 1_000_000
        + i64::from(l.hour()) * 10_000
        + i64::from(l.minute()) * 100
        + i64::from(l.second());
    Value::from(n)
}

/// `GET /api/v1/data` from the latest telegram.
#[must_use]
pub fn data(msg: &TelegramMessage) -> Value {
    let v = &msg.values;
    let mut o = Map::new();
    let mut put = |k: &str, val: Option<Value>| {
        if let Some(val) = val {
            o.insert(k.to_owned(), val);
        }
    };
    // "50" for DSMR 5.0; the Belgian e-MUCS version ("50217") starts with the DSMR version it builds on.
    put(
        "smr_version",
        v.version.as_deref().and_then(|s| s.get(..2)).and_then(|s| s.parse::<u32>().ok()).map(Value::from),
    );
    put("meter_model", Some(Value::from(msg.header.clone())));
    put("unique_id", v.equipment_id.as_deref().map(|s| Value::from(hex(s))));
    put("active_tariff", v.tariff.map(Value::from));
    let sum = |a: Option<Decimal>, b: Option<Decimal>| match (a, b) {
        (Some(a), Some(b)) => a.checked_add(b),
        (a, None) => a,
        (None, b) => b,
    };
    let import = v.energy_import_kwh.or_else(|| sum(v.energy_import_t1_kwh, v.energy_import_t2_kwh));
    let export = v.energy_export_kwh.or_else(|| sum(v.energy_export_t1_kwh, v.energy_export_t2_kwh));
    put("total_power_import_kwh", import.map(number));
    put("total_power_import_t1_kwh", v.energy_import_t1_kwh.map(number));
    put("total_power_import_t2_kwh", v.energy_import_t2_kwh.map(number));
    put("total_power_export_kwh", export.map(number));
    put("total_power_export_t1_kwh", v.energy_export_t1_kwh.map(number));
    put("total_power_export_t2_kwh", v.energy_export_t2_kwh.map(number));
    let net = |p: Option<Decimal>, i: Option<Decimal>, e: Option<Decimal>| {
        p.or_else(|| match (i, e) {
            (Some(i), Some(e)) => i.checked_sub(e),
            (i, None) => i,
            (None, Some(e)) => Some(e.neg()),
        })
    };
    put("active_power_w", net(v.power_kw, v.power_import_kw, v.power_export_kw).map(watts));
    put("active_power_l1_w", net(v.power_l1_kw, v.power_import_l1_kw, v.power_export_l1_kw).map(watts));
    put("active_power_l2_w", net(v.power_l2_kw, v.power_import_l2_kw, v.power_export_l2_kw).map(watts));
    put("active_power_l3_w", net(v.power_l3_kw, v.power_import_l3_kw, v.power_export_l3_kw).map(watts));
    put("active_voltage_l1_v", v.voltage_l1_v.map(number));
    put("active_voltage_l2_v", v.voltage_l2_v.map(number));
    put("active_voltage_l3_v", v.voltage_l3_v.map(number));
    put("active_current_l1_a", v.current_l1_a.map(number));
    put("active_current_l2_a", v.current_l2_a.map(number));
    put("active_current_l3_a", v.current_l3_a.map(number));
    put("voltage_sag_l1_count", v.voltage_sags_l1.map(Value::from));
    put("voltage_sag_l2_count", v.voltage_sags_l2.map(Value::from));
    put("voltage_sag_l3_count", v.voltage_sags_l3.map(Value::from));
    put("voltage_swell_l1_count", v.voltage_swells_l1.map(Value::from));
    put("voltage_swell_l2_count", v.voltage_swells_l2.map(Value::from));
    put("voltage_swell_l3_count", v.voltage_swells_l3.map(Value::from));
    put("any_power_fail_count", v.power_failures.map(Value::from));
    put("long_power_fail_count", v.long_power_failures.map(Value::from));
    put("active_power_average_w", v.capacity_demand_kw.map(watts));
    put("montly_power_peak_w", v.capacity_peak_kw.map(watts));
    put("montly_power_peak_timestamp", v.capacity_peak_at.as_ref().map(stamp));
    put("total_gas_m3", v.gas_m3.map(number));
    put("gas_timestamp", v.gas_at.as_ref().map(stamp));
    let gas_id = v.devices.iter().find(|d| d.kind == DeviceKind::Gas).and_then(|d| d.id.as_deref());
    put("gas_unique_id", gas_id.map(|s| Value::from(hex(s))));
    let external: Vec<Value> = v
        .devices
        .iter()
        .filter(|d| d.value.is_some())
        .map(|d| {
            json!({
                "unique_id": d.id.as_deref().map(hex),
                "type": match d.kind {
                    DeviceKind::Gas => "gas_meter",
                    DeviceKind::Heat => "heat_meter",
                    DeviceKind::Water => "water_meter",
                    DeviceKind::HeatCool => "inlet_heat_meter",
                    DeviceKind::Other => "unknown",
                },
                "timestamp": d.at.as_ref().map(stamp),
                "value": d.value.map(number),
                "unit": d.unit.as_deref().unwrap_or(""),
            })
        })
        .collect();
    o.insert("external".into(), Value::Array(external));
    Value::Object(o)
}

/// `GET /api/v1/telegram`: the telegram's text, rebuilt from the message.
///
/// The message carries the identification line and every data line's groups verbatim in the meter's order (its
/// OBIS map is lossless), so the text is rebuilt from them with `\r\n` line ends; the CRC is computed anew over the
/// rebuilt bytes. For DSMR 4/5, Belgian and Luxembourg telegrams the result is the meter's telegram byte for byte
/// (a unit test holds this for the simulator's telegrams); DSMR 2.2/3 two-line gas values come out on one line.
#[must_use]
pub fn telegram_text(msg: &TelegramMessage) -> String {
    let mut t = String::with_capacity(1024);
    t.push('/');
    t.push_str(&msg.header);
    t.push_str("\r\n\r\n");
    for (key, value) in &msg.obis {
        t.push_str(key);
        if value.is_empty() {
            t.push_str("()");
        }
        for g in value.groups() {
            t.push('(');
            t.push_str(g);
            t.push(')');
        }
        t.push_str("\r\n");
    }
    t.push('!');
    if msg.crc == CrcStatus::Ok {
        let crc = shared::crc::checksum(t.as_bytes());
        let _ = std::fmt::Write::write_fmt(&mut t, format_args!("{crc:04X}"));
    }
    t.push_str("\r\n");
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_has_homewizard_names_units_and_signs() {
        let msg = crate::testutil::telegram("m1", 1);
        let d = data(&msg);
        assert_eq!(d["smr_version"], 50);
        assert_eq!(d["unique_id"], hex("E0044404 000000001"));
        assert_eq!(d["active_tariff"], 2);
        assert_eq!(d["total_power_import_t1_kwh"], 1164.722);
        assert_eq!(d["total_power_import_kwh"], 2367.132);
        // Exporting 1.234 kW: HomeWizard's active power is negative.
        assert_eq!(d["active_power_w"], -1234);
        assert_eq!(d["active_voltage_l1_v"], 230.1);
        assert_eq!(d["any_power_fail_count"], 4);
        assert_eq!(d["total_gas_m3"], 1621.615);
        assert!(d.get("active_power_l2_w").is_none(), "a value the meter did not send is absent");
        assert_eq!(device(Some(&msg), "m1")["product_type"], "HWE-P1");
    }

    #[test]
    fn the_rebuilt_telegram_is_the_meters() {
        use shared::engine::{Engine, EngineOptions};
        let mut sim = shared::simulate::Simulator::new(7);
        let now = jiff::Timestamp::from_second(1_700_000_000).expect("ts").in_tz("Europe/Amsterdam").expect("tz");
        let raw = sim.telegram_at(now);
        let mut engine = Engine::new(EngineOptions::default());
        engine.push(&raw, std::time::Instant::now());
        let msg = loop {
            match engine.next_event() {
                Some(shared::engine::Event::Telegram(t)) => {
                    break t.into_message(
                        shared::wire::Origin { listener: "m".into(), boot_id: "0".into() },
                        1,
                        jiff::Timestamp::UNIX_EPOCH,
                    )
                }
                Some(_) => {}
                None => panic!("no telegram from the simulator's bytes"),
            }
        };
        assert_eq!(telegram_text(&msg), String::from_utf8_lossy(&raw));
    }
}
