//! Named columns for CSV output: the reader's interval and day files pick theirs from this list.
//!
//! A column is `time` (when the telegram arrived, UTC), `meter_time`, or one of the scalar fields of
//! [`Values`](crate::wire::Values). Each is rendered as text exactly as it appears in the message.

use crate::wire::TelegramMessage;

macro_rules! columns {
    ($($name:ident),* $(,)?) => {
        /// Every column name `reader.columns` accepts.
        pub const KNOWN: &[&str] = &["time", "seq", "meter_time", "tariff", $(stringify!($name)),*];

        fn decimal_field(msg: &TelegramMessage, column: &str) -> Option<Option<String>> {
            let v = &msg.values;
            match column {
                $(stringify!($name) => Some(v.$name.map(|d| d.to_string())),)*
                _ => None,
            }
        }
    };
}

columns!(
    energy_import_kwh,
    energy_import_t1_kwh,
    energy_import_t2_kwh,
    energy_export_kwh,
    energy_export_t1_kwh,
    energy_export_t2_kwh,
    power_kw,
    power_import_kw,
    power_export_kw,
    power_l1_kw,
    power_l2_kw,
    power_l3_kw,
    power_import_l1_kw,
    power_import_l2_kw,
    power_import_l3_kw,
    power_export_l1_kw,
    power_export_l2_kw,
    power_export_l3_kw,
    voltage_l1_v,
    voltage_l2_v,
    voltage_l3_v,
    current_l1_a,
    current_l2_a,
    current_l3_a,
    capacity_demand_kw,
    capacity_peak_kw,
    gas_m3,
    water_m3,
    heat_gj,
);

/// Whether `name` is a known column.
#[must_use]
pub fn is_known(name: &str) -> bool {
    KNOWN.contains(&name)
}

/// The text of column `name` for a message: `None` for an unknown column, `Some("")` when the meter did not send
/// the value.
#[must_use]
pub fn render(msg: &TelegramMessage, name: &str) -> Option<String> {
    match name {
        "time" => Some(msg.received_at.to_string()),
        "seq" => Some(msg.seq.to_string()),
        "meter_time" => Some(msg.values.meter_time.map(|t| t.to_string()).unwrap_or_default()),
        "tariff" => Some(msg.values.tariff.map(|t| t.to_string()).unwrap_or_default()),
        _ => decimal_field(msg, name).map(Option::unwrap_or_default),
    }
}
