//! MQTT 5 (`bridge.mqtt.protocol: 5`), with rumqttc's v5 client: the same publications, last will, TLS and
//! queueing as 3.1.1; only the packets and the refusal codes differ.

use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, LastWill, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Request};
use rumqttc::{Outgoing, Transport};
use shared::config::Mqtt;

use super::topics::{self, Publication};
use super::{explain_transport, password_source, Step};

/// The v5 connection options of `m`.
pub(super) fn options(
    m: &Mqtt,
    bridge_availability: &str,
    credentials: Option<(String, String)>,
    transport: Transport,
) -> MqttOptions {
    let mut o = MqttOptions::new(&m.client_id, &m.host, m.port);
    o.set_keep_alive(m.keep_alive)
        .set_clean_start(true)
        .set_max_packet_size(Some(256 * 1024))
        .set_last_will(LastWill::new(bridge_availability, topics::OFFLINE, QoS::AtLeastOnce, true, None))
        .set_transport(transport);
    if let Some((user, password)) = credentials {
        o.set_credentials(user, password);
    }
    o
}

pub(super) fn qos(qos1: bool) -> QoS {
    if qos1 {
        QoS::AtLeastOnce
    } else {
        QoS::AtMostOnce
    }
}

impl super::Connection for EventLoop {
    type Error = ConnectionError;

    async fn step(&mut self, ha_status: &str) -> Result<Step, ConnectionError> {
        Ok(match self.poll().await? {
            Event::Incoming(Packet::ConnAck(_)) => Step::Connected,
            Event::Incoming(Packet::PubAck(_)) => Step::Acked,
            Event::Incoming(Packet::Publish(p))
                if p.topic.as_ref() == ha_status.as_bytes() && p.payload.as_ref() == b"online" =>
            {
                Step::HomeAssistantOnline
            }
            Event::Outgoing(Outgoing::Publish(_)) => Step::Sent,
            Event::Outgoing(Outgoing::Disconnect) => Step::Disconnected,
            _ => Step::Other,
        })
    }

    fn unacknowledged(&mut self) -> Vec<Publication> {
        self.pending
            .drain(..)
            .filter_map(|r| match r {
                Request::Publish(p) => Some(Publication {
                    topic: String::from_utf8_lossy(&p.topic).into_owned(),
                    payload: p.payload.to_vec(),
                    retain: p.retain,
                    qos1: p.qos != QoS::AtMostOnce,
                    limited: false,
                }),
                _ => None,
            })
            .collect()
    }

    fn explain(e: &ConnectionError, m: &Mqtt) -> String {
        explain(e, m)
    }
}

/// One clear sentence for an MQTT 5 connection failure, naming the setting to look at.
#[must_use]
pub fn explain(e: &ConnectionError, m: &Mqtt) -> String {
    let at = format!("{}:{}", m.host, m.port);
    let connecting = matches!(e, ConnectionError::Tls(_) | ConnectionError::Io(_));
    if let Some(t) = explain_transport(e, m, connecting) {
        return t;
    }
    match e {
        ConnectionError::ConnectionRefused(code) => match code {
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized => format!(
                "the broker at {at} refused the login ({code:?}): wrong user name or password, or the user is not \
                 allowed (bridge.mqtt.username{}, password from {})",
                m.username.as_deref().map_or_else(|| " not set".into(), |u| format!(" '{u}'")),
                password_source(m)
            ),
            ConnectReturnCode::BadClientId | ConnectReturnCode::ClientIdentifierNotValid => {
                format!("the broker at {at} refused the client id '{}' (bridge.mqtt.client_id)", m.client_id)
            }
            ConnectReturnCode::RefusedProtocolVersion | ConnectReturnCode::UnsupportedProtocolVersion => {
                format!("the broker at {at} does not speak MQTT 5 (bridge.mqtt.protocol: use 3.1.1)")
            }
            other => format!("the broker at {at} refused the connection: {other:?}"),
        },
        ConnectionError::Timeout(_) => format!("no answer from {at} in time (bridge.mqtt.url)"),
        other => format!("{at}: {other}"),
    }
}

/// The v5 client's side of [`super::Client`].
pub(super) fn publish(client: &AsyncClient, p: &Publication) -> bool {
    client.try_publish(p.topic.clone(), qos(p.qos1), p.retain, p.payload.clone()).is_ok()
}
