//! Home Assistant's rules for an MQTT sensor discovery config, written down from home-assistant/core
//! (`homeassistant/components/sensor/const.py`: `DEVICE_CLASS_UNITS`, `DEVICE_CLASS_STATE_CLASSES`; the MQTT
//! sensor and discovery schemas: `state_topic` required, `unique_id` required for a device, the device needs
//! `identifiers` or `connections`, each availability entry a `topic`, discovery topics
//! `<prefix>/<component>/[<node_id>/]<object_id>/config` with ids of `[a-zA-Z0-9_-]`). Only the device classes a
//! P1 meter can need are listed; any other class is refused here, so a new one must be added deliberately.

use serde_json::Value;

/// Allowed units per device class (Home Assistant's `DEVICE_CLASS_UNITS`, the relevant entries).
fn units(device_class: &str) -> Option<&'static [&'static str]> {
    Some(match device_class {
        "energy" => &["J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal", "Mcal", "Gcal"],
        "power" => &["mW", "W", "kW", "MW", "GW", "TW", "BTU/h"],
        "voltage" => &["V", "mV", "µV", "kV", "MV"],
        "current" => &["A", "mA"],
        "gas" => &["m³", "ft³", "CCF"],
        "water" => &["m³", "ft³", "CCF", "gal", "L"],
        _ => return None,
    })
}

/// Allowed state classes per device class (Home Assistant's `DEVICE_CLASS_STATE_CLASSES`).
fn state_classes(device_class: &str) -> &'static [&'static str] {
    match device_class {
        "energy" | "gas" | "water" => &["total", "total_increasing"],
        "power" | "voltage" | "current" => &["measurement"],
        _ => &[],
    }
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Every problem with one discovery message, as sentences; empty when Home Assistant would accept it.
pub fn check_sensor(prefix: &str, topic: &str, payload: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let mut bad = |e: String| errors.push(e);
    let levels: Vec<&str> = topic.split('/').collect();
    let shape_ok = matches!(levels.as_slice(),
        [p, "sensor", node, object, "config"] if *p == prefix && is_id(node) && is_id(object))
        || matches!(levels.as_slice(), [p, "sensor", object, "config"] if *p == prefix && is_id(object));
    if !shape_ok {
        bad(format!("topic {topic} is not {prefix}/sensor/[<node_id>/]<object_id>/config"));
    }
    let Ok(Value::Object(c)) = serde_json::from_str::<Value>(payload) else {
        bad("payload is not a JSON object".into());
        return errors;
    };
    let text = |k: &str| c.get(k).and_then(Value::as_str);
    match text("state_topic") {
        Some(t) if !t.is_empty() && !t.contains(['+', '#']) => {}
        _ => bad("state_topic is required: a topic without wildcards".into()),
    }
    if text("unique_id").is_none_or(str::is_empty) {
        bad("unique_id is required (a device needs it)".into());
    }
    match c.get("device") {
        Some(Value::Object(d)) => {
            let ids = d.get("identifiers").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
            let conns = d.get("connections").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
            if !ids && !conns {
                bad("device needs identifiers or connections".into());
            }
        }
        _ => bad("device is required (one device per meter)".into()),
    }
    match c.get("availability") {
        Some(Value::Array(list)) if !list.is_empty() => {
            for a in list {
                if a.get("topic").and_then(Value::as_str).is_none_or(str::is_empty) {
                    bad(format!("availability entry without topic: {a}"));
                }
            }
        }
        None => {}
        Some(other) => bad(format!("availability must be a non-empty list: {other}")),
    }
    if let Some(mode) = c.get("availability_mode") {
        if !matches!(mode.as_str(), Some("all" | "any" | "latest")) {
            bad(format!("availability_mode {mode} is not all, any or latest"));
        }
    }
    let unit = text("unit_of_measurement");
    let state_class = text("state_class");
    if let Some(sc) = state_class {
        if !["measurement", "total", "total_increasing"].contains(&sc) {
            bad(format!("state_class {sc} is not measurement, total or total_increasing"));
        }
    }
    if let Some(dc) = text("device_class") {
        match units(dc) {
            None => bad(format!("device_class {dc} is not one a P1 sensor should have")),
            Some(allowed) => {
                if !unit.is_some_and(|u| allowed.contains(&u)) {
                    bad(format!("device_class {dc} needs a unit of {allowed:?}, has {unit:?}"));
                }
                if let Some(sc) = state_class {
                    if !state_classes(dc).contains(&sc) {
                        bad(format!("device_class {dc} does not allow state_class {sc}"));
                    }
                }
            }
        }
    }
    errors
}

#[test]
fn the_checker_refuses_what_home_assistant_refuses() {
    let good = r#"{"state_topic":"p1hub/x/gas_m3","unique_id":"u","device":{"identifiers":["d"]},
        "device_class":"gas","state_class":"total_increasing","unit_of_measurement":"m³",
        "availability":[{"topic":"p1hub/x/availability"}],"availability_mode":"all"}"#;
    assert_eq!(check_sensor("homeassistant", "homeassistant/sensor/node/gas/config", good), Vec::<String>::new());
    for (change, expect) in [
        (("m³", "kWh"), "needs a unit"),
        (("total_increasing", "measurement"), "does not allow state_class"),
        (("\"state_topic\"", "\"topic\""), "state_topic is required"),
        (("identifiers", "ids"), "identifiers or connections"),
        (("\"gas\"", "\"smell\""), "not one a P1 sensor"),
    ] {
        let bad = good.replace(change.0, change.1);
        let errors = check_sensor("homeassistant", "homeassistant/sensor/node/gas/config", &bad);
        assert!(errors.iter().any(|e| e.contains(expect)), "{change:?}: {errors:?}");
    }
    assert!(!check_sensor("homeassistant", "homeassistant/sensor/a b/gas/config", good).is_empty());
}
