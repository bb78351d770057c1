//! `/metrics` in the Prometheus text format (version 0.0.4).
//!
//! Names and units as Prometheus recommends: base units (`_watts`, `_volts`, `_amperes`, `_seconds`), counters end
//! in `_total`. Energy registers are `_joules_total`: the base unit, and exact (a register has at most 3 decimals of
//! kWh, i.e. whole Wh, and Wh × 3600 is a whole number of joules that a float holds exactly up to 2^53 J, about
//! 2.5 billion kWh). Gas and water are `_cubic_meters_total`. Every value carries `listener`; per-phase values
//! `phase`, registers `tariff`. Health comes from the listeners' status datagrams (`p1_listener_*`) and from the
//! bridge's own view (`p1_bridge_*`).

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use shared::decimal::Decimal;

use super::Shared;

/// One metric family being written: HELP and TYPE once, then samples.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

fn family<'a>(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    Family { out }
}

fn f(d: Decimal) -> f64 {
    d.to_f64()
}

/// Reads one value of a telegram.
type Get = fn(&shared::wire::Values) -> Option<f64>;
/// Reads the two tariff registers of a telegram.
type Reg = fn(&shared::wire::Values) -> [(&'static str, Option<Decimal>); 2];
/// Reads a value per phase.
type Phase = fn(&shared::wire::Values) -> [Option<f64>; 3];
/// Reads one value of a status report.
type StatusGet = fn(&shared::wire::StatusMessage) -> Option<f64>;

/// Writes every metric.
#[must_use]
pub fn render(shared: &Shared, now: jiff::Timestamp) -> String {
    let mut out = String::with_capacity(8192);
    let meters = shared.meters();

    // Meter values: one family at a time, every listener in it.
    let simple: [(&str, &str, &str, Get); 8] = [
        ("p1_power_watts", "gauge", "Net active power, import minus export (negative while exporting).", |v| {
            v.power_kw.map(|p| f(p) * 1000.0)
        }),
        ("p1_power_import_watts", "gauge", "Active power taken from the grid.", |v| {
            v.power_import_kw.map(|p| f(p) * 1000.0)
        }),
        ("p1_power_export_watts", "gauge", "Active power delivered to the grid.", |v| {
            v.power_export_kw.map(|p| f(p) * 1000.0)
        }),
        ("p1_power_failures_total", "counter", "Power failures in any phase, as counted by the meter.", |v| {
            v.power_failures.map(|n| n as f64)
        }),
        (
            "p1_long_power_failures_total",
            "counter",
            "Long power failures in any phase, as counted by the meter.",
            |v| v.long_power_failures.map(|n| n as f64),
        ),
        ("p1_gas_cubic_meters_total", "counter", "The first gas meter's reading.", |v| v.gas_m3.map(f)),
        ("p1_water_cubic_meters_total", "counter", "The first water meter's reading.", |v| v.water_m3.map(f)),
        ("p1_capacity_demand_watts", "gauge", "Belgian capacity tariff: the current 15-minute average demand.", |v| {
            v.capacity_demand_kw.map(|p| f(p) * 1000.0)
        }),
    ];
    for (name, kind, help, get) in simple {
        let mut fam = family(&mut out, name, kind, help);
        for (listener, m) in meters.iter() {
            if let Some(x) = m.last.as_ref().and_then(|t| get(&t.values)) {
                fam.sample(name, &[("listener", listener)], x);
            }
        }
    }

    let registers: [(&str, &str, Reg); 2] = [
        (
            "p1_energy_import_joules_total",
            "Energy taken from the grid, per tariff register (the meter's kWh x 3.6e6).",
            |v| [("1", v.energy_import_t1_kwh), ("2", v.energy_import_t2_kwh)],
        ),
        (
            "p1_energy_export_joules_total",
            "Energy delivered to the grid, per tariff register (the meter's kWh x 3.6e6).",
            |v| [("1", v.energy_export_t1_kwh), ("2", v.energy_export_t2_kwh)],
        ),
    ];
    for (name, help, get) in registers {
        let mut fam = family(&mut out, name, "counter", help);
        for (listener, m) in meters.iter() {
            let Some(t) = m.last.as_ref() else { continue };
            for (tariff, kwh) in get(&t.values) {
                if let Some(kwh) = kwh {
                    // Whole Wh times 3600: exact.
                    let joules = (f(kwh) * 1000.0).round() * 3600.0;
                    fam.sample(name, &[("listener", listener), ("tariff", tariff)], joules);
                }
            }
        }
    }

    let phases: [(&str, &str, &str, Phase); 6] = [
        ("p1_phase_power_import_watts", "gauge", "Active power taken from the grid, per phase.", |v| {
            [v.power_import_l1_kw, v.power_import_l2_kw, v.power_import_l3_kw].map(|p| p.map(|p| f(p) * 1000.0))
        }),
        ("p1_phase_power_export_watts", "gauge", "Active power delivered to the grid, per phase.", |v| {
            [v.power_export_l1_kw, v.power_export_l2_kw, v.power_export_l3_kw].map(|p| p.map(|p| f(p) * 1000.0))
        }),
        ("p1_phase_voltage_volts", "gauge", "Voltage per phase.", |v| {
            [v.voltage_l1_v, v.voltage_l2_v, v.voltage_l3_v].map(|x| x.map(f))
        }),
        ("p1_phase_current_amperes", "gauge", "Current per phase.", |v| {
            [v.current_l1_a, v.current_l2_a, v.current_l3_a].map(|x| x.map(f))
        }),
        ("p1_phase_voltage_sags_total", "counter", "Voltage sags per phase, as counted by the meter.", |v| {
            [v.voltage_sags_l1, v.voltage_sags_l2, v.voltage_sags_l3].map(|x| x.map(|n| n as f64))
        }),
        ("p1_phase_voltage_swells_total", "counter", "Voltage swells per phase, as counted by the meter.", |v| {
            [v.voltage_swells_l1, v.voltage_swells_l2, v.voltage_swells_l3].map(|x| x.map(|n| n as f64))
        }),
    ];
    for (name, kind, help, get) in phases {
        let mut fam = family(&mut out, name, kind, help);
        for (listener, m) in meters.iter() {
            let Some(t) = m.last.as_ref() else { continue };
            for (phase, x) in ["l1", "l2", "l3"].into_iter().zip(get(&t.values)) {
                if let Some(x) = x {
                    fam.sample(name, &[("listener", listener), ("phase", phase)], x);
                }
            }
        }
    }

    let mut fam = family(&mut out, "p1_tariff", "gauge", "The tariff register counting now (1 or 2).");
    for (listener, m) in meters.iter() {
        if let Some(t) = m.last.as_ref().and_then(|t| t.values.tariff) {
            fam.sample("p1_tariff", &[("listener", listener)], f64::from(t));
        }
    }

    // The bridge's view of each listener.
    let mut fam = family(
        &mut out,
        "p1_bridge_telegrams_total",
        "counter",
        "New telegrams the bridge received from the listener.",
    );
    for (listener, m) in meters.iter() {
        fam.sample("p1_bridge_telegrams_total", &[("listener", listener)], m.telegrams as f64);
    }
    let mut fam = family(
        &mut out,
        "p1_bridge_sequence_gaps_total",
        "counter",
        "Telegrams the bridge missed (gaps in the listener's sequence numbers).",
    );
    for (listener, m) in meters.iter() {
        fam.sample("p1_bridge_sequence_gaps_total", &[("listener", listener)], m.missed as f64);
    }
    let mut fam = family(
        &mut out,
        "p1_bridge_telegram_age_seconds",
        "gauge",
        "Seconds since the latest telegram was received by the listener.",
    );
    for (listener, m) in meters.iter() {
        if let Some(t) = &m.last {
            let age = now.duration_since(t.received_at).as_secs_f64().max(0.0);
            fam.sample("p1_bridge_telegram_age_seconds", &[("listener", listener)], age);
        }
    }
    let mut fam = family(
        &mut out,
        "p1_listener_up",
        "gauge",
        "1 while the listener and its meter are heard, 0 when the meter is silent or the listener gone.",
    );
    for (listener, m) in meters.iter() {
        if let Some(l) = m.liveness {
            fam.sample(
                "p1_listener_up",
                &[("listener", listener)],
                f64::from(u8::from(l == p1hub_subscriber::Liveness::Online)),
            );
        }
    }

    // Health from the status datagrams.
    let status: [(&str, &str, &str, StatusGet); 10] = [
        ("p1_listener_telegrams_total", "counter", "Valid telegrams the listener read (its status report).", |s| {
            Some(s.counters.telegrams as f64)
        }),
        ("p1_listener_crc_failures_total", "counter", "Frames whose CRC did not match.", |s| {
            Some(s.counters.crc_failures as f64)
        }),
        ("p1_listener_reconnects_total", "counter", "Times the listener (re)opened its source.", |s| {
            Some(s.counters.reconnects as f64)
        }),
        ("p1_listener_line_errors_total", "counter", "Telegram lines that could not be read.", |s| {
            Some(s.counters.line_errors as f64)
        }),
        ("p1_listener_decrypt_failures_total", "counter", "Encrypted frames that failed authentication.", |s| {
            Some(s.counters.decrypt_failures as f64)
        }),
        ("p1_listener_send_errors_total", "counter", "Datagrams the listener could not send.", |s| {
            Some(s.counters.send_errors as f64)
        }),
        ("p1_listener_discarded_bytes_total", "counter", "Bytes the listener skipped outside valid frames.", |s| {
            Some(s.counters.discarded_bytes as f64)
        }),
        (
            "p1_listener_last_telegram_age_seconds",
            "gauge",
            "Seconds since the listener's last valid telegram, as it reported.",
            |s| s.last_telegram_age_ms.map(|ms| ms as f64 / 1000.0),
        ),
        (
            "p1_listener_meter_silent",
            "gauge",
            "1 while the listener's watchdog sees no telegrams from the meter.",
            |s| Some(f64::from(u8::from(s.meter_silent))),
        ),
        ("p1_listener_uptime_seconds", "gauge", "Seconds since the listener started.", |s| Some(s.uptime_s as f64)),
    ];
    for (name, kind, help, get) in status {
        let mut fam = family(&mut out, name, kind, help);
        for (listener, m) in meters.iter() {
            if let Some(x) = m.status.as_ref().and_then(get) {
                fam.sample(name, &[("listener", listener)], x);
            }
        }
    }
    drop(meters);

    // The HTTP output itself.
    let s = &shared.stats;
    let mut fam = family(
        &mut out,
        "p1_bridge_http_connections",
        "gauge",
        "HTTP connections open now (WebSocket clients not included once upgraded).",
    );
    fam.sample("p1_bridge_http_connections", &[], shared.connections() as f64);
    let mut fam = family(&mut out, "p1_bridge_websocket_clients", "gauge", "WebSocket clients connected now.");
    fam.sample("p1_bridge_websocket_clients", &[], shared.ws_clients() as f64);
    let counters = [
        ("p1_bridge_http_connections_accepted_total", "Connections accepted.", &s.accepted),
        ("p1_bridge_http_requests_total", "HTTP requests answered.", &s.requests),
        ("p1_bridge_websocket_messages_sent_total", "Messages sent to WebSocket clients.", &s.ws_sent),
    ];
    for (name, help, c) in counters {
        let mut fam = family(&mut out, name, "counter", help);
        fam.sample(name, &[], c.load(Relaxed) as f64);
    }
    let name = "p1_bridge_http_refused_total";
    let mut fam =
        family(&mut out, name, "counter", "Connections, requests and WebSocket clients refused or dropped, by reason.");
    for (reason, c) in [
        ("connection_limit", &s.refused_full),
        ("method", &s.refused_method),
        ("body", &s.refused_body),
        ("not_found", &s.not_found),
        ("malformed", &s.malformed),
        ("header_too_large", &s.too_large),
        ("header_timeout", &s.timeouts),
        ("websocket_limit", &s.ws_refused),
        ("websocket_slow", &s.ws_dropped_slow),
    ] {
        fam.sample(name, &[("reason", reason)], c.load(Relaxed) as f64);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{Input, Shared};

    #[test]
    fn meter_values_are_in_base_units_with_labels() {
        let config = shared::config::Http {
            listen: "127.0.0.1:0".parse().expect("addr"),
            meter: None,
            max_connections: 8,
            max_ws_clients: 4,
            ws_client_queue: 4,
        };
        let shared = Shared::new(&config, Arc::default());
        shared.apply(Input::Telegram { msg: Box::new(crate::testutil::telegram("m\"1", 1)), missed: 3, json: None });
        let now = jiff::Timestamp::from_millisecond(1_700_000_010_123).expect("ts");
        let text = super::render(&shared, now);
        for line in [
            "p1_power_watts{listener=\"m\\\"1\"} -1234",
            "p1_energy_import_joules_total{listener=\"m\\\"1\",tariff=\"1\"} 4192999200",
            "p1_phase_voltage_volts{listener=\"m\\\"1\",phase=\"l1\"} 230.1",
            "p1_bridge_sequence_gaps_total{listener=\"m\\\"1\"} 3",
            "p1_bridge_telegram_age_seconds{listener=\"m\\\"1\"} 10",
            "# TYPE p1_gas_cubic_meters_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
    }
}
