//! The HTTP output end to end: telegrams multicast on 127.0.0.1 (in the test's network namespace), the bridge
//! subscribes and serves; real clients read it (python-homewizard-energy, promtool, a Prometheus server, headless
//! Chromium), and bad input is refused and counted.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::config::RawConfig;
use shared::engine::{Engine, EngineOptions, Event};
use shared::wire::{Message, Origin, TelegramMessage};
use tokio_util::sync::CancellationToken;

/// A group and port of this test's own (tests run in parallel).
fn group(salt: u16) -> SocketAddr {
    let pid = std::process::id();
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(239, 255, 10 + (pid % 200) as u8, 30 + salt as u8),
        20_000 + (pid % 20_000) as u16 + salt,
    ))
}

/// A DSMR 5 three-phase telegram with gas, net power `watts` (import), valid CRC.
pub fn telegram_text(watts: u32) -> String {
    let (l1, l2) = (watts / 3, watts / 3);
    let l3 = watts - l1 - l2;
    let kw = |w: u32| format!("{:02}.{:03}", w / 1000, w % 1000);
    let body = format!(
        "/ISk5\\2MT382-1000\r\n\r\n1-3:0.2.8(50)\r\n0-0:1.0.0(231206120000W)\r\n\
         0-0:96.1.1(4B384547303034303436333935353037)\r\n1-0:1.8.1(001234.567*kWh)\r\n1-0:1.8.2(002345.678*kWh)\r\n\
         1-0:2.8.1(000123.456*kWh)\r\n1-0:2.8.2(000234.567*kWh)\r\n0-0:96.14.0(0002)\r\n1-0:1.7.0({}*kW)\r\n\
         1-0:2.7.0(00.000*kW)\r\n0-0:96.7.21(00004)\r\n0-0:96.7.9(00002)\r\n1-0:99.97.0(0)(0-0:96.7.19)\r\n\
         1-0:32.32.0(00002)\r\n1-0:52.32.0(00001)\r\n1-0:72.32.0(00000)\r\n1-0:32.36.0(00000)\r\n\
         1-0:52.36.0(00003)\r\n1-0:72.36.0(00000)\r\n0-0:96.13.0()\r\n1-0:32.7.0(230.1*V)\r\n1-0:52.7.0(231.2*V)\r\n\
         1-0:72.7.0(229.8*V)\r\n1-0:31.7.0(002*A)\r\n1-0:51.7.0(001*A)\r\n1-0:71.7.0(003*A)\r\n1-0:21.7.0({}*kW)\r\n\
         1-0:41.7.0({}*kW)\r\n1-0:61.7.0({}*kW)\r\n1-0:22.7.0(00.000*kW)\r\n1-0:42.7.0(00.000*kW)\r\n\
         1-0:62.7.0(00.000*kW)\r\n0-1:24.1.0(003)\r\n0-1:96.1.0(4730303332353631323831363736373136)\r\n\
         0-1:24.2.1(231206115500W)(01621.615*m3)\r\n!",
        kw(watts),
        kw(l1),
        kw(l2),
        kw(l3)
    );
    let crc = shared::crc::checksum(body.as_bytes());
    format!("{body}{crc:04X}\r\n")
}

/// The message the listener would send for `text`.
pub fn message(listener: &str, seq: u64, text: &str) -> TelegramMessage {
    let mut engine = Engine::new(EngineOptions::default());
    engine.push(text.as_bytes(), std::time::Instant::now());
    while let Some(ev) = engine.next_event() {
        if let Event::Telegram(c) = ev {
            let origin = Origin { listener: listener.into(), boot_id: "00000000000000bb".into() };
            return c.into_message(origin, seq, jiff::Timestamp::now());
        }
    }
    panic!("the test telegram does not parse:\n{text}");
}

/// Sends datagrams to the group on 127.0.0.1, like a listener.
pub struct Sender {
    socket: UdpSocket,
    group: SocketAddr,
    seq: std::collections::HashMap<String, u64>,
}

impl Sender {
    pub fn new(group: SocketAddr) -> Sender {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).expect("udp");
        socket.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).expect("multicast if");
        socket.set_multicast_loop_v4(true).expect("loop");
        socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into()).expect("bind");
        let socket: UdpSocket = socket.into();
        Sender { socket, group, seq: std::collections::HashMap::new() }
    }

    /// Sends a telegram of `watts` from `listener`; returns the message sent.
    pub fn telegram(&mut self, listener: &str, watts: u32) -> TelegramMessage {
        self.telegram_bytes(listener, watts).0
    }

    /// Sends a telegram of `watts` from `listener`; returns the message and the datagram sent.
    pub fn telegram_bytes(&mut self, listener: &str, watts: u32) -> (TelegramMessage, Vec<u8>) {
        let seq = self.seq.entry(listener.into()).or_insert(0);
        *seq += 1;
        let msg = message(listener, *seq, &telegram_text(watts));
        let bytes = shared::wire::encode(&Message::Telegram(Box::new(msg.clone())));
        self.socket.send_to(&bytes, self.group).expect("send");
        (msg, bytes)
    }
}

/// A bridge serving HTTP on 127.0.0.1 (port chosen by the system).
pub struct Served {
    pub addr: SocketAddr,
    pub stats: Arc<p1_bridge::http::Stats>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

pub async fn serve(group: SocketAddr, http_lines: &str) -> Served {
    let yaml = format!(
        "name: it\nmulticast:\n  group: {group}\n  interface: 127.0.0.1\nbridge:\n  http:\n    listen: 127.0.0.1:0\n{http_lines}"
    );
    let config = RawConfig::from_yaml(&yaml, "test").expect("yaml").validate().expect("valid");
    let bridge = p1_bridge::Bridge::new(&config).expect("bridge");
    let stats = bridge.http_stats().expect("http on");
    let stop = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let s = stop.clone();
    let task = tokio::spawn(async move {
        bridge
            .run_with(s, move |addr| {
                let _ = tx.send(addr);
            })
            .await
            .expect("bridge runs");
    });
    let addr = tokio::time::timeout(Duration::from_secs(10), rx).await.expect("bound in time").expect("bound");
    Served { addr, stats, stop, task }
}

impl Served {
    /// Sends telegrams from `listener` until the bridge serves one (the join takes a moment); returns the last sent.
    pub async fn feed(&self, sender: &mut Sender, listener: &str, watts: u32) -> TelegramMessage {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let msg = sender.telegram(listener, watts);
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (status, _, body) = get(self.addr, &format!("/meters/{listener}/api/v1/data")).await;
            if status == 200 && body.contains(&format!("\"active_power_w\":{watts}")) {
                return msg;
            }
            assert!(Instant::now() < deadline, "the bridge never served {listener}'s telegram: {status} {body}");
        }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// A raw HTTP/1.1 request; returns status, head and body.
pub async fn request(addr: SocketAddr, raw: Vec<u8>) -> (u16, String, String) {
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
        let _ = s.write_all(&raw);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, head.to_owned(), body.to_owned())
    })
    .await
    .expect("request thread")
}

pub async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    request(addr, format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()).await
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn homewizard_api_serves_each_meter_and_its_telegram() {
    let g = group(1);
    let served = serve(g, "    meter: kast\n").await;
    let mut sender = Sender::new(g);
    // Before any telegram: not yet, plainly.
    assert_eq!(get(served.addr, "/api/v1/data").await.0, 503);
    let other = served.feed(&mut sender, "garage", 512).await;
    let sent = served.feed(&mut sender, "kast", 1193).await;

    let (status, head, body) = get(served.addr, "/api").await;
    assert_eq!(status, 200, "{head}");
    let device = json(&body);
    assert_eq!(device["product_type"], "HWE-P1");
    assert_eq!(device["api_version"], "v1");
    let d = json(&get(served.addr, "/api/v1/data").await.2);
    assert_eq!(d["active_power_w"], 1193, "the configured meter is the default: {d}");
    assert_eq!(d["active_power_l3_w"], 399);
    assert_eq!(d["total_power_import_t2_kwh"], 2345.678);
    assert_eq!(d["total_power_export_kwh"], 358.023);
    assert_eq!(d["active_voltage_l2_v"], 231.2);
    assert_eq!(d["voltage_swell_l2_count"], 3);
    assert_eq!(d["long_power_fail_count"], 2);
    assert_eq!(d["gas_timestamp"], 231_206_115_500_i64);
    assert_eq!(d["external"][0]["type"], "gas_meter");
    assert_eq!(d["external"][0]["value"], 1621.615);
    let (status, head, text) = get(served.addr, "/api/v1/telegram").await;
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain"), "{head}");
    assert_eq!(text, telegram_text(1193), "the telegram as the meter sent it");
    assert_eq!(sent.values.power_kw.map(shared::decimal::Decimal::to_f64), Some(1.193));

    let d = json(&get(served.addr, "/meters/garage/api/v1/data").await.2);
    assert_eq!(d["active_power_w"], 512);
    assert_eq!(get(served.addr, "/meters/garage/api/v1/telegram").await.2, telegram_text(512));
    assert_eq!(other.origin.listener, "garage");
    assert_eq!(get(served.addr, "/meters/nobody/api/v1/data").await.0, 404);
    served.stop().await;
}

/// Finds `program` on PATH or in /usr/bin; the test fails naming scripts/setup when it is missing.
fn require(program: &str, what: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{program} is not installed ({what}): run scripts/setup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_homewizard_energy_reads_the_meter() {
    require("python3", "python-homewizard-energy");
    let g = group(2);
    let served = serve(g, "").await;
    let mut sender = Sender::new(g);
    let sent = served.feed(&mut sender, "kast", 2750).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/homewizard_client.py");
    let addr = served.addr.to_string();
    let out = tokio::task::spawn_blocking(move || Command::new("python3").args([script, &addr]).output())
        .await
        .expect("thread")
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python-homewizard-energy failed (scripts/setup installs it):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&String::from_utf8_lossy(&out.stdout));
    let (device, data) = (&r["device"], &r["data"]);
    assert_eq!(device["product_type"], "HWE-P1");
    assert_eq!(device["product"], "Wi-Fi P1 Meter", "the library recognises the product: {device}");
    assert_eq!(device["api_version"], "v1");
    let v = &sent.values;
    let f = |d: Option<shared::decimal::Decimal>| d.map(shared::decimal::Decimal::to_f64).expect("value");
    assert_eq!(data["smr_version"], 50);
    assert_eq!(data["unique_meter_id"], v.equipment_id.clone().expect("id"));
    assert_eq!(data["active_tariff"], 2);
    assert_eq!(data["active_power_w"], f(v.power_kw) * 1000.0);
    assert_eq!(data["active_power_l1_w"], f(v.power_import_l1_kw) * 1000.0);
    assert_eq!(data["total_energy_import_t1_kwh"], f(v.energy_import_t1_kwh));
    assert_eq!(data["total_energy_import_kwh"], 3580.245);
    assert_eq!(data["total_energy_export_t2_kwh"], f(v.energy_export_t2_kwh));
    assert_eq!(data["active_voltage_l3_v"], f(v.voltage_l3_v));
    assert_eq!(data["active_current_l3_a"], f(v.current_l3_a));
    assert_eq!(data["voltage_sag_l1_count"], 2);
    assert_eq!(data["any_power_fail_count"], 4);
    assert_eq!(data["total_gas_m3"], f(v.gas_m3));
    assert_eq!(data["gas_timestamp"], "2023-12-06 11:55:00");
    assert_eq!(data["gas_unique_id"], "G0032561281676716");
    let ext = &data["external_devices"]["gas_meter_G0032561281676716"];
    assert_eq!((ext["value"].as_f64(), ext["unit"].as_str()), (Some(1621.615), Some("m3")), "{data}");
    served.stop().await;
}

/// Frees a port on 127.0.0.1 for a server the test starts.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_a_prometheus_server_scrapes_the_power() {
    require("promtool", "Debian package prometheus");
    require("prometheus", "Debian package prometheus");
    let g = group(3);
    let served = serve(g, "").await;
    let mut sender = Sender::new(g);
    served.feed(&mut sender, "kast", 1193).await;
    served.feed(&mut sender, "garage", 77).await;
    let (status, head, metrics) = get(served.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    for line in
        ["p1_power_watts{listener=\"kast\"} 1193", "p1_phase_voltage_volts{listener=\"garage\",phase=\"l2\"} 231.2"]
    {
        assert!(metrics.lines().any(|l| l == line), "{line} missing:\n{metrics}");
    }
    let check = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool runs");
        child.stdin.take().expect("stdin").write_all(metrics.as_bytes()).expect("write");
        child.wait_with_output().expect("promtool ends")
    })
    .await
    .expect("thread");
    assert!(
        check.status.success() && check.stdout.is_empty() && check.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // A real Prometheus server scrapes the bridge every second and answers a query.
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: p1\n    static_configs:\n      - targets: ['{}']\n",
            served.addr
        ),
    )
    .expect("config");
    let port = free_port();
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    let prom = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let query = "/api/v1/query?query=p1_power_watts%7Blistener%3D%22kast%22%7D";
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Keep the meter alive while Prometheus starts.
        sender.telegram("kast", 1193);
        let ok = tokio::time::timeout(Duration::from_secs(5), async {
            let conn = tokio::net::TcpStream::connect(prom).await;
            conn.is_ok()
        })
        .await
        .unwrap_or(false);
        if ok {
            let (status, _, body) = get(prom, query).await;
            if status == 200 {
                let v = json(&body);
                if let Some(value) = v["data"]["result"][0]["value"][1].as_str() {
                    break value.to_owned();
                }
            }
        }
        assert!(Instant::now() < deadline, "Prometheus never answered with the power");
    };
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    assert_eq!(answer, "1193");
    served.stop().await;
}

/// A status datagram from `listener` (health for the page and the metrics); `closed`: its last, on a clean stop.
fn status(listener: &str, last_seq: u64, closed: bool) -> Message {
    Message::Status(shared::wire::StatusMessage {
        schema: shared::wire::SCHEMA_VERSION,
        origin: Origin { listener: listener.into(), boot_id: "00000000000000bb".into() },
        sent_at: jiff::Timestamp::now(),
        uptime_s: 3600,
        source: "/dev/ttyUSB0".into(),
        port: if closed { shared::wire::PortState::Closed } else { shared::wire::PortState::Open },
        port_settings: Some("115200-8N1".into()),
        last_seq: Some(last_seq),
        last_telegram_age_ms: Some(200),
        meter_silent: false,
        counters: shared::wire::Counters { telegrams: last_seq, crc_failures: 1, reconnects: 1, ..Default::default() },
    })
}

/// Digits of a shown value ("1,234 W" → 1234).
fn shown_watts(text: &str) -> u32 {
    text.chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number in {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_follows_each_telegram_in_headless_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(std::path::Path::new(&chromium).exists(), "{chromium} is missing: run scripts/setup");
    let g = group(4);
    let served = serve(g, "").await;
    let mut sender = Sender::new(g);
    served.feed(&mut sender, "kast", 1000).await;
    // A telegram every 400 ms, each with 10 W more, and a status report now and then.
    let stop = CancellationToken::new();
    let out_dir = std::env::var("P1HUB_SCREENSHOTS").unwrap_or_else(|_| {
        std::env::temp_dir().join(format!("p1hub-page-{}", std::process::id())).display().to_string()
    });
    std::fs::create_dir_all(&out_dir).expect("screenshot dir");
    let stop_file = std::path::Path::new(&out_dir).join("stop-the-listener");
    let _ = std::fs::remove_file(&stop_file);
    let feeder = {
        let stop = stop.clone();
        let stop_file = stop_file.clone();
        let socket = sender.socket.try_clone().expect("socket");
        tokio::spawn(async move {
            let mut sender = Sender { socket, group: g, seq: sender.seq.clone() };
            for n in 1u32.. {
                if stop_file.exists() {
                    // The listener stops cleanly: its last status says the port is closed.
                    let bytes = shared::wire::encode(&status("kast", 0, true));
                    let _ = sender.socket.send_to(&bytes, g);
                    return;
                }
                let msg = sender.telegram("kast", 1000 + 10 * n);
                if n % 5 == 1 {
                    let bytes = shared::wire::encode(&status("kast", msg.seq, false));
                    let _ = sender.socket.send_to(&bytes, g);
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(400)) => {}
                    () = stop.cancelled() => return,
                }
            }
        })
    };
    let out_dir = std::env::var("P1HUB_SCREENSHOTS").unwrap_or_else(|_| {
        std::env::temp_dir().join(format!("p1hub-page-{}", std::process::id())).display().to_string()
    });
    std::fs::create_dir_all(&out_dir).expect("screenshot dir");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/page_check.py");
    let url = format!("http://{}/", served.addr);
    let (browser, dir) = (chromium.clone(), out_dir.clone());
    let out =
        tokio::task::spawn_blocking(move || Command::new("python3").args([script, &browser, &url, &dir]).output())
            .await
            .expect("thread")
            .expect("python3 runs");
    stop.cancel();
    let _ = feeder.await;
    assert!(out.status.success(), "page check failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let r = json(&String::from_utf8_lossy(&out.stdout));
    let (first, second) =
        (shown_watts(r["first"].as_str().expect("first")), shown_watts(r["second"].as_str().expect("second")));
    assert!(first >= 1000 && (first - 1000) % 10 == 0, "{first} W was never sent");
    assert!(second > first && (second - 1000) % 10 == 0, "the page went from {first} W to {second} W");
    assert_eq!(r["reloaded"], false, "the page changed by reloading");
    assert_eq!(r["state"], "live");
    assert_eq!(r["gone_state"], "listener gone", "the page did not say the listener is gone");
    assert!(r["gone_notice"].as_str().is_some_and(|n| n.contains("gone")), "{}", r["gone_notice"]);
    for shot in ["desktop", "phone"] {
        let png = std::fs::metadata(r["shots"][shot]["path"].as_str().expect("path")).expect("screenshot written");
        assert!(png.len() > 10_000, "{shot} screenshot is {} bytes", png.len());
    }
    // Narrow screens: nothing wider than the phone's viewport.
    assert_eq!(r["shots"]["phone"]["scroll_width"], 390, "the page scrolls sideways on a phone");
    let _ = std::fs::remove_file(&stop_file);
    if std::env::var_os("P1HUB_SCREENSHOTS").is_none() {
        let _ = std::fs::remove_dir_all(&out_dir);
    }
    served.stop().await;
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(addr: SocketAddr, query: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    tokio_tungstenite::connect_async(format!("ws://{addr}/ws{query}")).await.map(|(ws, _)| ws)
}

/// The next telegram message on `ws` (skipping status and liveness), as JSON.
async fn next_telegram(ws: &mut Ws) -> serde_json::Value {
    json(&next_telegram_text(ws).await)
}

/// The next telegram message on `ws`, as sent.
async fn next_telegram_text(ws: &mut Ws) -> String {
    use futures::StreamExt;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("ok");
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            if json(&t)["type"] == "telegram" {
                return t.as_str().to_owned();
            }
        }
    }
}

fn count(stats: &p1_bridge::http::Stats, c: fn(&p1_bridge::http::Stats) -> &std::sync::atomic::AtomicU64) -> u64 {
    c(stats).load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_sends_each_telegram_filtered_and_limits_clients() {
    let g = group(5);
    let served = serve(g, "    max_ws_clients: 3\n").await;
    let mut sender = Sender::new(g);
    served.feed(&mut sender, "kast", 100).await;
    served.feed(&mut sender, "garage", 200).await;
    let mut all = ws_connect(served.addr, "").await.expect("ws");
    let mut kast = ws_connect(served.addr, "?listener=kast").await.expect("ws");
    let _third = ws_connect(served.addr, "?listener=garage").await.expect("ws");
    // The fourth is refused, and counted.
    assert!(ws_connect(served.addr, "").await.is_err(), "a fourth WebSocket client was accepted");
    assert_eq!(count(&served.stats, |s| &s.ws_refused), 1);
    // First the latest known state, then every new telegram, the multicast message itself.
    let snap = next_telegram(&mut kast).await;
    assert_eq!(snap["values"]["power_kw"], 0.1);
    let (_, datagram) = sender.telegram_bytes("kast", 4321);
    let live = next_telegram_text(&mut kast).await;
    assert_eq!(live.as_bytes(), datagram, "not the multicast message");
    sender.telegram("garage", 555);
    sender.telegram("kast", 4322);
    let next = next_telegram(&mut kast).await;
    assert_eq!(next["values"]["power_kw"], 4.322, "the filter passes only kast");
    let mut seen = Vec::new();
    while seen.last().map(|v: &serde_json::Value| v["values"]["power_kw"].clone()) != Some(serde_json::json!(4.322)) {
        seen.push(next_telegram(&mut all).await);
    }
    let listeners: Vec<&str> = seen.iter().filter_map(|v| v["listener"].as_str()).collect();
    assert!(listeners.contains(&"garage") && listeners.contains(&"kast"), "{listeners:?}");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_and_counted_and_the_rest_goes_on() {
    let g = group(6);
    let served = serve(g, "    max_connections: 8\n    max_ws_clients: 2\n").await;
    let mut sender = Sender::new(g);
    served.feed(&mut sender, "kast", 100).await;
    let addr = served.addr;
    let stats = served.stats.clone();
    let mut watcher = ws_connect(addr, "").await.expect("ws");
    next_telegram(&mut watcher).await;

    let (s, head, _) = request(
        addr,
        b"POST /api/v1/data HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    )
    .await;
    assert_eq!(s, 405, "{head}");
    assert!(head.contains("allow: GET, HEAD"), "{head}");
    let (s, ..) =
        request(addr, b"GET /api HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".to_vec())
            .await;
    assert_eq!(s, 413);
    let (s, ..) = request(
        addr,
        b"GET /api HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n".to_vec(),
    )
    .await;
    assert_eq!(s, 413);
    for path in [
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/meters/..%2f..%2fetc/api/v1/telegram",
        "/api/v1/../../../etc/passwd",
        "//etc/passwd",
    ] {
        let (s, _, body) = get(addr, path).await;
        assert!(s == 404 || s == 400, "{path}: {s}");
        assert!(!body.contains("root:"), "{path} served a file");
    }
    let huge = format!("GET /api HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(64 * 1024));
    assert_eq!(request(addr, huge.into_bytes()).await.0, 431);
    let many = (0..100).fold(String::new(), |mut h, i| {
        let _ = std::fmt::Write::write_fmt(&mut h, format_args!("X-{i}: y\r\n"));
        h
    });
    assert_eq!(request(addr, format!("GET /api HTTP/1.1\r\nHost: x\r\n{many}\r\n").into_bytes()).await.0, 431);
    assert_eq!(request(addr, b"\x16\x03\x01\x02\x00garbage\r\n\r\n".to_vec()).await.0, 400);
    assert_eq!(request(addr, b"GET /api HTTP/9.9\r\n\r\n".to_vec()).await.0, 400);
    assert_eq!(count(&stats, |s| &s.refused_method), 1);
    assert_eq!(count(&stats, |s| &s.refused_body), 2);
    assert!(count(&stats, |s| &s.not_found) >= 3);
    assert_eq!(count(&stats, |s| &s.too_large), 2);
    assert!(count(&stats, |s| &s.malformed) >= 1);

    // A flood of idle connections: beyond max_connections they are closed at once and counted; the WebSocket
    // client already connected keeps receiving every telegram meanwhile.
    let flood: Vec<tokio::net::TcpStream> = {
        let mut v = Vec::new();
        for _ in 0..40 {
            v.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
        }
        v
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while count(&stats, |s| &s.refused_full) < 32 {
        assert!(Instant::now() < deadline, "refused: {}", count(&stats, |s| &s.refused_full));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for w in [700, 701, 702] {
        sender.telegram("kast", w);
        assert_eq!(next_telegram(&mut watcher).await["values"]["power_kw"], f64::from(w) / 1000.0);
    }
    drop(flood);
    // Served again as soon as the flood is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, _, body) = get(addr, "/api/v1/data").await;
        if s == 200 {
            assert!(body.contains("\"active_power_w\":702"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "not served after the flood: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, _, metrics) = get(addr, "/metrics").await;
    assert!(metrics.contains("p1_bridge_http_refused_total{reason=\"connection_limit\"} "), "{metrics}");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_websocket_client_is_dropped_and_the_others_get_everything() {
    let g = group(7);
    let served = serve(g, "    ws_client_queue: 8\n").await;
    let mut sender = Sender::new(g);
    served.feed(&mut sender, "kast", 100).await;
    let before = telegrams_counted(served.addr, "kast").await;
    // The stalled client: a tiny receive window, and it never reads.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = socket.connect(served.addr).await.expect("connect");
    let (stalled, _) = tokio_tungstenite::client_async(format!("ws://{}/ws", served.addr), stream).await.expect("ws");
    let mut reader = ws_connect(served.addr, "").await.expect("ws");
    next_telegram(&mut reader).await;
    // Telegrams until the stalled client is dropped; the reader reads every one of them, in order.
    let reading = tokio::spawn(async move {
        let mut last = 0u64;
        let mut n = 0u64;
        loop {
            let t = next_telegram(&mut reader).await;
            let seq = t["seq"].as_u64().expect("seq");
            assert!(seq > last, "out of order: {seq} after {last}");
            last = seq;
            n += 1;
            if t["values"]["power_kw"] == 9.999 {
                return n;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = 0u64;
    while count(&served.stats, |s| &s.ws_dropped_slow) == 0 {
        assert!(Instant::now() < deadline, "the stalled client was never dropped");
        sender.telegram("kast", 1000 + (sent % 100) as u32);
        sent += 1;
        // At a pace the reader keeps up with (a real meter sends one a second).
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    sender.telegram("kast", 9999);
    let got = tokio::time::timeout(Duration::from_secs(10), reading).await.expect("reader done").expect("reader ok");
    // Every telegram the bridge took in after the reader connected reached the reader.
    let taken = telegrams_counted(served.addr, "kast").await - before;
    assert_eq!(got, taken, "the reader got {got} of the {taken} telegrams the bridge received ({sent} sent)");
    assert_eq!(count(&served.stats, |s| &s.ws_dropped_slow), 1, "only the stalled client was dropped");
    drop(stalled);
    served.stop().await;
}

/// `p1_bridge_telegrams_total` of `listener`, from /metrics.
async fn telegrams_counted(addr: SocketAddr, listener: &str) -> u64 {
    let (_, _, metrics) = get(addr, "/metrics").await;
    let prefix = format!("p1_bridge_telegrams_total{{listener=\"{listener}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in:\n{metrics}"))
}

// The clock is paused: the 10 s header timeout passes as soon as the runtime is idle, without waiting.
#[tokio::test(start_paused = true)]
async fn a_connection_that_sends_no_request_is_closed_after_the_header_timeout() {
    let g = group(8);
    let served = serve(g, "").await;
    let addr = served.addr;
    let started = tokio::time::Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut stream, b"GET /api HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer).await;
    let waited = started.elapsed();
    assert!(answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"), "{}", String::from_utf8_lossy(&answer));
    assert!(waited >= p1_bridge::http::HEADER_TIMEOUT, "closed after {waited:?} of the runtime's clock");
    assert_eq!(count(&served.stats, |s| &s.timeouts), 1);
    served.stop().await;
}
