//! Home Assistant MQTT discovery: one device per meter, one sensor per value the meter sends.
//!
//! Each sensor's config is retained at `<discovery prefix>/sensor/<node>/<value>/config`, where `<node>` is
//! `p1hub_` and the meter's equipment id (the listener's name when the meter sends none). The sensor reads the
//! per-value topic (a bare number), so no template is needed. `device_class`, `state_class` and unit follow Home
//! Assistant's sensor rules: registers are `energy` / `gas` / `water` with `total_increasing`, so the Energy
//! dashboard takes import and export per tariff, gas and water as they are; power, voltage and current are
//! `measurement`. A value without an entry in [`SENSORS`] gets no entity, nor does a value the meter does not send.
//! An entity is available while both the listener and the bridge are (`availability_mode: all`).

use serde_json::json;
use shared::wire::TelegramMessage;

use super::topics::{self, Publication, Topics};

/// How one named value appears in Home Assistant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sensor {
    /// The field of `values` (and the per-value topic's last level).
    pub key: &'static str,
    /// The entity's name (Home Assistant puts the device's name before it).
    pub name: &'static str,
    /// `device_class`, if one fits.
    pub device_class: Option<&'static str>,
    /// `state_class`.
    pub state_class: Option<&'static str>,
    /// `unit_of_measurement`.
    pub unit: Option<&'static str>,
    /// Digits shown by default.
    pub precision: Option<u8>,
}

const fn s(
    key: &'static str,
    name: &'static str,
    device_class: Option<&'static str>,
    state_class: Option<&'static str>,
    unit: Option<&'static str>,
    precision: Option<u8>,
) -> Sensor {
    Sensor { key, name, device_class, state_class, unit, precision }
}

const ENERGY: Option<&str> = Some("energy");
const POWER: Option<&str> = Some("power");
const TOTAL_INC: Option<&str> = Some("total_increasing");
const MEASUREMENT: Option<&str> = Some("measurement");
const KWH: Option<&str> = Some("kWh");
const KW: Option<&str> = Some("kW");

/// Every value that gets an entity when the meter sends it.
pub const SENSORS: &[Sensor] = &[
    s("energy_import_kwh", "Energy import", ENERGY, TOTAL_INC, KWH, Some(3)),
    s("energy_import_t1_kwh", "Energy import tariff 1", ENERGY, TOTAL_INC, KWH, Some(3)),
    s("energy_import_t2_kwh", "Energy import tariff 2", ENERGY, TOTAL_INC, KWH, Some(3)),
    s("energy_export_kwh", "Energy export", ENERGY, TOTAL_INC, KWH, Some(3)),
    s("energy_export_t1_kwh", "Energy export tariff 1", ENERGY, TOTAL_INC, KWH, Some(3)),
    s("energy_export_t2_kwh", "Energy export tariff 2", ENERGY, TOTAL_INC, KWH, Some(3)),
    s("power_kw", "Power (import minus export)", POWER, MEASUREMENT, KW, Some(3)),
    s("power_import_kw", "Power import", POWER, MEASUREMENT, KW, Some(3)),
    s("power_export_kw", "Power export", POWER, MEASUREMENT, KW, Some(3)),
    s("power_l1_kw", "Power L1", POWER, MEASUREMENT, KW, Some(3)),
    s("power_l2_kw", "Power L2", POWER, MEASUREMENT, KW, Some(3)),
    s("power_l3_kw", "Power L3", POWER, MEASUREMENT, KW, Some(3)),
    s("power_import_l1_kw", "Power import L1", POWER, MEASUREMENT, KW, Some(3)),
    s("power_import_l2_kw", "Power import L2", POWER, MEASUREMENT, KW, Some(3)),
    s("power_import_l3_kw", "Power import L3", POWER, MEASUREMENT, KW, Some(3)),
    s("power_export_l1_kw", "Power export L1", POWER, MEASUREMENT, KW, Some(3)),
    s("power_export_l2_kw", "Power export L2", POWER, MEASUREMENT, KW, Some(3)),
    s("power_export_l3_kw", "Power export L3", POWER, MEASUREMENT, KW, Some(3)),
    s("voltage_l1_v", "Voltage L1", Some("voltage"), MEASUREMENT, Some("V"), Some(1)),
    s("voltage_l2_v", "Voltage L2", Some("voltage"), MEASUREMENT, Some("V"), Some(1)),
    s("voltage_l3_v", "Voltage L3", Some("voltage"), MEASUREMENT, Some("V"), Some(1)),
    s("current_l1_a", "Current L1", Some("current"), MEASUREMENT, Some("A"), Some(0)),
    s("current_l2_a", "Current L2", Some("current"), MEASUREMENT, Some("A"), Some(0)),
    s("current_l3_a", "Current L3", Some("current"), MEASUREMENT, Some("A"), Some(0)),
    s("voltage_sags_l1", "Voltage sags L1", None, TOTAL_INC, None, Some(0)),
    s("voltage_sags_l2", "Voltage sags L2", None, TOTAL_INC, None, Some(0)),
    s("voltage_sags_l3", "Voltage sags L3", None, TOTAL_INC, None, Some(0)),
    s("voltage_swells_l1", "Voltage swells L1", None, TOTAL_INC, None, Some(0)),
    s("voltage_swells_l2", "Voltage swells L2", None, TOTAL_INC, None, Some(0)),
    s("voltage_swells_l3", "Voltage swells L3", None, TOTAL_INC, None, Some(0)),
    s("power_failures", "Power failures", None, TOTAL_INC, None, Some(0)),
    s("long_power_failures", "Long power failures", None, TOTAL_INC, None, Some(0)),
    s("tariff", "Tariff", None, None, None, Some(0)),
    s("limiter_kw", "Limiter threshold", POWER, MEASUREMENT, KW, Some(3)),
    s("fuse_a", "Fuse supervision threshold", Some("current"), MEASUREMENT, Some("A"), Some(0)),
    s("capacity_demand_kw", "Capacity: current average demand", POWER, MEASUREMENT, KW, Some(3)),
    s("capacity_peak_kw", "Capacity: month's peak demand", POWER, MEASUREMENT, KW, Some(3)),
    s("gas_m3", "Gas", Some("gas"), TOTAL_INC, Some("m³"), Some(3)),
    s("water_m3", "Water", Some("water"), TOTAL_INC, Some("m³"), Some(3)),
    s("heat_gj", "Heat", ENERGY, TOTAL_INC, Some("GJ"), Some(3)),
];

/// The Home Assistant description of `key`, if it gets an entity.
#[must_use]
pub fn sensor(key: &str) -> Option<&'static Sensor> {
    SENSORS.iter().find(|s| s.key == key)
}

/// The device's node id: `p1hub_` and the equipment id (lower case, other characters as `_`, as before, so
/// existing Home Assistant devices keep their ids), else the listener's name as a one-to-one object id
/// ([`topics::object_id`]: `meterkast` stays, `a/b` and `a_b` differ).
#[must_use]
pub fn node_id(telegram: &TelegramMessage) -> String {
    match telegram.values.equipment_id.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(id) => format!("p1hub_{}", equipment_object_id(id)),
        None => format!("p1hub_{}", topics::object_id(&telegram.origin.listener)),
    }
}

/// An equipment id as an object id part: ASCII letters (lower case), digits and `-`, anything else `_`.
fn equipment_object_id(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// The manufacturer behind a FLAG code (the header's first three letters).
fn manufacturer(header: &str) -> String {
    let flag = header.get(..3).unwrap_or(header);
    let name = match flag.to_ascii_uppercase().as_str() {
        "ISK" => "Iskraemeco",
        "KFM" => "Kaifa",
        "KMP" => "Kamstrup",
        "XMX" => "Landis+Gyr",
        "SAG" => "Sagemcom",
        "FLU" => "Fluvius",
        "EIT" => "EasyMeter",
        _ => return format!("FLAG {flag}"),
    };
    name.to_owned()
}

/// Where the discovery configs go and what the entities depend on.
#[derive(Clone, Debug)]
pub struct Discovery {
    /// `homeassistant` by default.
    pub prefix: String,
    /// The p1hub topic prefix.
    pub topic_prefix: String,
    /// The bridge's own availability topic (its last will).
    pub bridge_availability: String,
}

impl Discovery {
    /// The config topic of `key` for device `node`.
    #[must_use]
    pub fn config_topic(&self, node: &str, key: &str) -> String {
        format!("{}/sensor/{node}/{key}/config", self.prefix)
    }

    /// The retained config publications for every value of `telegram` that gets an entity.
    #[must_use]
    pub fn configs(&self, telegram: &TelegramMessage) -> Vec<Publication> {
        let node = node_id(telegram);
        let topics = Topics::new(&self.topic_prefix, &telegram.origin.listener);
        let v = &telegram.values;
        let header = telegram.header.trim();
        let model = header.get(4..).filter(|m| !m.is_empty()).unwrap_or(header);
        let mut device = json!({
            "identifiers": [node],
            "name": format!("P1 meter {}", telegram.origin.listener),
            "manufacturer": manufacturer(header),
            "model": model,
        });
        if let Some(id) = v.equipment_id.as_deref() {
            device["serial_number"] = json!(id);
        }
        if let Some(version) = v.version.as_deref() {
            device["hw_version"] = json!(format!("P1 version {version}"));
        }
        let availability = json!([
            {"topic": topics.availability()},
            {"topic": self.bridge_availability},
        ]);
        let mut out = Vec::new();
        for (key, _) in topics::numbers(telegram) {
            let Some(sensor) = sensor(&key) else { continue };
            let mut config = json!({
                "name": sensor.name,
                "unique_id": format!("{node}_{key}"),
                "state_topic": topics.value(&key),
                "availability": availability,
                "availability_mode": "all",
                "device": device,
                "origin": {"name": "p1hub", "sw_version": env!("CARGO_PKG_VERSION")},
            });
            if let Some(c) = sensor.device_class {
                config["device_class"] = json!(c);
            }
            if let Some(c) = sensor.state_class {
                config["state_class"] = json!(c);
            }
            if let Some(u) = sensor.unit {
                config["unit_of_measurement"] = json!(u);
            }
            if let Some(p) = sensor.precision {
                config["suggested_display_precision"] = json!(p);
            }
            out.push(Publication {
                topic: self.config_topic(&node, &key),
                payload: config.to_string().into_bytes(),
                retain: true,
                qos1: true,
                limited: false,
            });
        }
        out
    }
}

/// The publication that removes one entity: an empty retained config.
#[must_use]
pub fn removal(config_topic: &str) -> Publication {
    Publication { topic: config_topic.to_owned(), payload: Vec::new(), retain: true, qos1: true, limited: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::telegram;

    fn discovery() -> Discovery {
        Discovery {
            prefix: "homeassistant".into(),
            topic_prefix: "p1hub".into(),
            bridge_availability: "p1hub/bridge/b/availability".into(),
        }
    }

    #[test]
    fn one_device_per_meter_and_entities_only_for_sent_values() {
        let t = telegram("meterkast", 1);
        let configs = discovery().configs(&t);
        let topics: Vec<&str> = configs.iter().map(|p| p.topic.as_str()).collect();
        assert!(topics.contains(&"homeassistant/sensor/p1hub_e0044404_000000001/energy_import_t1_kwh/config"));
        assert!(topics.contains(&"homeassistant/sensor/p1hub_e0044404_000000001/gas_m3/config"));
        assert!(!topics.iter().any(|t| t.contains("water_m3") || t.contains("voltage_l2_v")), "{topics:?}");
        let gas: serde_json::Value =
            serde_json::from_slice(&configs.iter().find(|p| p.topic.contains("/gas_m3/")).expect("gas entity").payload)
                .expect("json");
        assert_eq!(gas["device_class"], "gas");
        assert_eq!(gas["state_class"], "total_increasing");
        assert_eq!(gas["unit_of_measurement"], "m³");
        assert_eq!(gas["state_topic"], "p1hub/meterkast/gas_m3");
        assert_eq!(gas["device"]["identifiers"][0], "p1hub_e0044404_000000001");
        assert_eq!(gas["device"]["manufacturer"], "Landis+Gyr");
        assert_eq!(gas["availability"][0]["topic"], "p1hub/meterkast/availability");
        assert_eq!(gas["availability"][1]["topic"], "p1hub/bridge/b/availability");
    }

    #[test]
    fn without_an_equipment_id_the_listener_names_the_device() {
        let mut t = telegram("Meter Kast", 1);
        t.values.equipment_id = None;
        assert_eq!(node_id(&t), "p1hub__4deter_20_4bast");
        let ids: std::collections::BTreeSet<String> = ["a/b", "a_b", "~a~2Fb", "meterkast"]
            .iter()
            .map(|name| {
                let mut t = telegram(name, 1);
                t.values.equipment_id = None;
                node_id(&t)
            })
            .collect();
        assert_eq!(ids.len(), 4, "{ids:?}");
        assert!(ids.contains("p1hub_meterkast"));
        assert_eq!(manufacturer("ABC5xyz"), "FLAG ABC");
        assert_eq!(removal("x/config").payload, b"");
    }

    #[test]
    fn every_sensor_key_is_a_field_of_the_message() {
        let all = serde_json::to_value(shared::wire::Values::default()).expect("json");
        // Default values serialise to nothing; the schema lists the names instead.
        assert!(all.as_object().is_some_and(serde_json::Map::is_empty));
        let schema = include_str!("../../../docs/message.schema.json");
        for s in SENSORS {
            assert!(schema.contains(&format!("\"{}\"", s.key)), "{} is not in docs/message.schema.json", s.key);
        }
    }
}
