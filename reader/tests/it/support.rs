//! Helpers: groups, configurations, a loopback multicast sender, telegrams, and polling.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use shared::config::{Config, RawConfig};
use shared::decimal::Decimal;
use shared::wire::{
    encode, CrcStatus, Dialect, Message, ObisMap, ObisValue, Origin, TelegramMessage, Values, SCHEMA_VERSION,
};
use socket2::{Domain, Protocol, Socket, Type};

/// A group and port of this test process's own: tests in other processes use other groups.
pub fn group(n: u8) -> SocketAddr {
    let pid = std::process::id();
    let ip = Ipv4Addr::new(239, 255, 100 + (pid % 150) as u8, n);
    SocketAddr::V4(SocketAddrV4::new(ip, 41_000 + (pid % 20_000) as u16))
}

/// A reader configuration on loopback with short CSV columns.
pub fn config(group: SocketAddr, dir: &Path, interval_minutes: u32) -> Config {
    raw_config(group, dir, interval_minutes).validate().expect("valid configuration")
}

pub fn raw_config(group: SocketAddr, dir: &Path, interval_minutes: u32) -> RawConfig {
    let mut raw = RawConfig { name: Some("test".into()), ..RawConfig::default() };
    raw.multicast.group = group.to_string();
    raw.multicast.interface = "127.0.0.1".into();
    raw.reader.dir = dir.display().to_string();
    raw.reader.interval_minutes = interval_minutes;
    raw.reader.columns =
        ["time", "energy_import_t1_kwh", "power_import_kw", "gas_m3", "seq"].map(str::to_owned).to_vec();
    raw.reader.html_secs = 1;
    raw
}

/// Sends datagrams to a group on 127.0.0.1 only: outgoing interface loopback, TTL 0.
pub struct Sender {
    socket: std::net::UdpSocket,
    group: SocketAddr,
}

impl Sender {
    pub fn new(group: SocketAddr) -> Sender {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
        s.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).expect("multicast interface");
        s.set_multicast_ttl_v4(0).expect("ttl");
        s.set_multicast_loop_v4(true).expect("loop");
        s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into()).expect("bind");
        Sender { socket: s.into(), group }
    }

    /// Sends a message; returns the datagram.
    pub fn send(&self, msg: &Message) -> Vec<u8> {
        let bytes = encode(msg);
        self.send_raw(&bytes);
        bytes
    }

    pub fn send_raw(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.group).expect("send");
    }
}

fn dec(text: &str) -> Decimal {
    text.parse().expect("decimal")
}

/// A three-phase DSMR 5 telegram message.
pub fn telegram(listener: &str, boot: &str, seq: u64, at: Timestamp) -> TelegramMessage {
    let values = Values {
        equipment_id: Some("E0044007123456789".into()),
        tariff: Some(2),
        energy_import_t1_kwh: Some(dec("1164.722")),
        energy_import_t2_kwh: Some(dec("1520.100")),
        energy_export_t1_kwh: Some(dec("10.000")),
        energy_export_t2_kwh: Some(dec("20.500")),
        power_kw: Some(dec("1.193")),
        power_import_kw: Some(dec("1.193")),
        power_export_kw: Some(dec("0.000")),
        power_import_l1_kw: Some(dec("0.500")),
        power_import_l2_kw: Some(dec("0.400")),
        power_import_l3_kw: Some(dec("0.293")),
        voltage_l1_v: Some(dec("230.1")),
        voltage_l2_v: Some(dec("229.8")),
        voltage_l3_v: Some(dec("231.0")),
        power_failures: Some(4),
        gas_m3: Some(dec("1621.615")),
        ..Values::default()
    };
    let mut obis = ObisMap::new();
    obis.insert("1-0:1.7.0", &ObisValue::One("01.193*kW".into()));
    TelegramMessage {
        schema: SCHEMA_VERSION,
        origin: Origin { listener: listener.into(), boot_id: boot.into() },
        seq,
        received_at: at,
        duration_ms: 420,
        crc: CrcStatus::Ok,
        encrypted: false,
        dialect: Dialect::Dsmr5,
        header: "XMX5LGBBLA4402915485".into(),
        values: Box::new(values),
        obis,
        errors: vec![],
    }
}

/// Polls `done` every few milliseconds for up to 20 seconds.
pub async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The lines of a file (none if it does not exist).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).map(|t| t.lines().map(str::to_owned).collect()).unwrap_or_default()
}

/// The sorted names in a directory.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    names.sort();
    names
}
