//! What a telegram becomes on MQTT: the topics and their payloads, with no I/O.
//!
//! Per listener (its name made topic-safe by [`topic_segment`]):
//! - `<prefix>/<listener>/state`: the whole message, the same JSON as the datagram, retained;
//! - `<prefix>/<listener>/<value>`: one topic per named number the meter sent (`power_kw`, `gas_m3`, ...), the
//!   bare number as text, retained, so `OpenHAB` and Node-RED need no JSON path;
//! - `<prefix>/<listener>/availability`: `online` / `offline`, retained, driven by the listener's liveness;
//! - `<prefix>/bridge/<client id>/availability`: the bridge's own `online`, and `offline` as its last will.

use shared::wire::{Message, TelegramMessage};

/// The payload of an availability topic while the source is alive.
pub const ONLINE: &str = "online";
/// The payload of an availability topic while the source is gone.
pub const OFFLINE: &str = "offline";

/// One MQTT publication, before it is queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    /// Full topic.
    pub topic: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Retained by the broker.
    pub retain: bool,
    /// `false` for `QoS` 0, `true` for `QoS` 1.
    pub qos1: bool,
    /// Subject to the per-topic rate limit (data), or always sent (availability, discovery).
    pub limited: bool,
}

impl Publication {
    /// The bytes it holds in the offline queue (topic and payload; the rest is a few bytes of overhead).
    #[must_use]
    pub fn size(&self) -> usize {
        self.topic.len() + self.payload.len() + 16
    }
}

/// A listener name (or client id) as one topic level, one-to-one: [`shared::names::escape`]. Names of
/// `A-Z a-z 0-9 . _ -` not starting with `.` (`meterkast`, `pi-01`) stay as they are; any other becomes `~` and
/// the name with every other byte (and every `~`) as `~XX`: `a/b` is `~a~2Fb`, so it never meets `a_b`. The
/// result holds no `/`, `+`, `#`, NUL, space or non-ASCII character: Unicode noncharacters (which Mosquitto takes
/// for a malformed packet, dropping the connection) are escaped byte by byte like any other.
#[must_use]
pub fn topic_segment(name: &str) -> String {
    shared::names::escape(name)
}

/// A string as a Home Assistant object id / unique id part (`[a-zA-Z0-9_-]`), one-to-one:
/// [`shared::names::object_id`].
#[must_use]
pub fn object_id(text: &str) -> String {
    shared::names::object_id(text)
}

/// Topic names of one listener.
#[derive(Clone, Debug)]
pub struct Topics {
    base: String,
}

impl Topics {
    /// The topics of `listener` under `prefix`.
    #[must_use]
    pub fn new(prefix: &str, listener: &str) -> Topics {
        Topics { base: format!("{prefix}/{}", topic_segment(listener)) }
    }

    /// `<prefix>/<listener>/state`.
    #[must_use]
    pub fn state(&self) -> String {
        format!("{}/state", self.base)
    }

    /// `<prefix>/<listener>/availability`.
    #[must_use]
    pub fn availability(&self) -> String {
        format!("{}/availability", self.base)
    }

    /// `<prefix>/<listener>/<name>`.
    #[must_use]
    pub fn value(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }
}

/// The bridge's own availability topic (its last will).
#[must_use]
pub fn bridge_availability(prefix: &str, client_id: &str) -> String {
    format!("{prefix}/bridge/{}/availability", topic_segment(client_id))
}

/// The named numbers of a telegram, in the message's field order: every top-level field of `values` that is a
/// number. Fields the meter did not send are absent, so they get no topic (and no Home Assistant entity).
#[must_use]
pub fn numbers(telegram: &TelegramMessage) -> Vec<(String, String)> {
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&*telegram.values) else { return Vec::new() };
    map.into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::Number(n) => Some((k, n.to_string())),
            _ => None,
        })
        .collect()
}

/// The state and per-value publications of one telegram.
#[must_use]
pub fn telegram_publications(prefix: &str, telegram: &TelegramMessage, qos1: bool) -> Vec<Publication> {
    let topics = Topics::new(prefix, &telegram.origin.listener);
    // The same bytes a subscriber of the multicast group gets.
    let state = shared::wire::encode(&Message::Telegram(Box::new(telegram.clone())));
    let mut out = vec![Publication { topic: topics.state(), payload: state, retain: true, qos1, limited: true }];
    for (name, number) in numbers(telegram) {
        out.push(Publication {
            topic: topics.value(&name),
            payload: number.into_bytes(),
            retain: true,
            qos1,
            limited: true,
        });
    }
    out
}

/// A listener's availability publication.
#[must_use]
pub fn availability(prefix: &str, listener: &str, online: bool) -> Publication {
    Publication {
        topic: Topics::new(prefix, listener).availability(),
        payload: if online { ONLINE } else { OFFLINE }.as_bytes().to_vec(),
        retain: true,
        qos1: true,
        limited: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::telegram;

    #[test]
    fn listener_names_become_one_topic_level() {
        assert_eq!(topic_segment("meter/kast #1+"), "~meter~2Fkast~20~231~2B");
        assert_eq!(topic_segment(""), "~");
        assert_eq!(topic_segment("meterkast"), "meterkast");
        assert_eq!(topic_segment("pi-01"), "pi-01");
        assert_eq!(object_id("XMX 5LG/bb"), "_58_4d_58_205_4c_47_2fbb");
    }

    #[test]
    fn names_that_used_to_collide_get_distinct_topics() {
        // `a/b` and `a_b` both became `p1hub/a_b/...`, `x/+/#` and `x____` both `p1hub/x____/...`.
        let state = |name: &str| Topics::new("p1hub", name).state();
        let groups: [&[&str]; 2] = [&["a/b", "a_b", "~a~2Fb"], &["x/+/#", "x____", "x+", "x#"]];
        for group in groups {
            let topics: std::collections::BTreeSet<String> = group.iter().map(|n| state(n)).collect();
            assert_eq!(topics.len(), group.len(), "{topics:?}");
            for t in &topics {
                assert_eq!(t.matches('/').count(), 2, "{t}");
                assert!(!t.contains(['+', '#', '\0']), "{t}");
            }
        }
        assert_eq!(state("a/b"), "p1hub/~a~2Fb/state");
        assert_eq!(state("a_b"), "p1hub/a_b/state");
        assert_eq!(state("~a~2Fb"), "p1hub/~~7Ea~7E2Fb/state");
        let ids: std::collections::BTreeSet<String> =
            ["a/b", "a_b", "~a~2Fb", "A_B"].iter().map(|n| object_id(n)).collect();
        assert_eq!(ids.len(), 4, "{ids:?}");
    }

    #[test]
    fn noncharacters_never_reach_a_topic() {
        // Mosquitto disconnects a client that publishes to a topic with one of these ("malformed packet").
        for name in ["a\u{FFFF}b\u{FFFE}\u{FDD0}\u{FDEF}\u{10FFFF}\u{1FFFE}", "\u{FDCF}\u{FDF0}\u{FFFD}é✓"] {
            let level = topic_segment(name);
            assert!(level.is_ascii(), "{level}");
            assert_eq!(shared::names::unescape(&level).as_deref(), Some(name));
        }
        assert_eq!(Topics::new("p1hub", "m\u{FFFF}").state(), "p1hub/~m~EF~BF~BF/state");
    }

    #[test]
    fn a_telegram_gives_state_and_one_topic_per_number() {
        let t = telegram("meterkast", 7);
        let pubs = telegram_publications("p1hub", &t, true);
        assert_eq!(pubs[0].topic, "p1hub/meterkast/state");
        let state: serde_json::Value = serde_json::from_slice(&pubs[0].payload).expect("json");
        assert_eq!(state["seq"], 7);
        assert!(pubs.iter().all(|p| p.retain && p.qos1));
        let find = |name: &str| {
            pubs.iter()
                .find(|p| p.topic == format!("p1hub/meterkast/{name}"))
                .map(|p| String::from_utf8(p.payload.clone()).expect("text"))
        };
        assert_eq!(find("power_kw").as_deref(), Some("-1.234"));
        assert_eq!(find("energy_import_t1_kwh").as_deref(), Some("1164.722"));
        assert_eq!(find("gas_m3").as_deref(), Some("1621.615"));
        assert_eq!(find("tariff").as_deref(), Some("2"));
        // Not numbers, or not sent: no topic.
        assert_eq!(find("equipment_id"), None);
        assert_eq!(find("water_m3"), None);
        assert_eq!(find("voltage_l2_v"), None);
    }

    #[test]
    fn availability_is_retained_and_not_rate_limited() {
        let p = availability("p1hub", "meterkast", false);
        assert_eq!(
            (p.topic.as_str(), p.payload.as_slice(), p.retain, p.limited),
            ("p1hub/meterkast/availability", b"offline".as_slice(), true, false)
        );
    }
}
