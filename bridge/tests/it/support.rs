//! A real Mosquitto broker per test (own config, own free port on 127.0.0.1, own directory), certificates made
//! with the openssl command, `mosquitto_sub` as the subscriber, and telegrams from the shared simulator.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use p1_bridge::mqtt::{Input, Output, Stats};
use shared::config::{Mqtt, RawConfig};
use shared::engine::{Engine, EngineOptions, Event};
use shared::simulate::Simulator;
use shared::wire::{Origin, TelegramMessage};
use tokio::sync::mpsc as tmpsc;
use tokio_util::sync::CancellationToken;

/// Whether the Mosquitto binaries are installed (scripts/setup installs them). Tests fail loudly without.
pub fn require_mosquitto() {
    for bin in ["mosquitto", "mosquitto_sub", "mosquitto_passwd", "openssl"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {bin} || test -x /usr/sbin/{bin}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(found, "{bin} is not installed: run scripts/setup");
    }
}

fn mosquitto_bin() -> &'static str {
    if Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Extra lines for the broker's listener.
#[derive(Clone, Default)]
pub struct BrokerOptions {
    pub users: Vec<(String, String)>,
    pub tls: Option<Certs>,
    pub require_client_cert: bool,
}

pub struct Broker {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Broker {
    pub fn start(dir: &Path, options: &BrokerOptions) -> Broker {
        require_mosquitto();
        let port = free_port();
        let mut conf = format!(
            // `user root`: as root, mosquitto would switch to its own user, which cannot write the test's directory
            // (as any other user the setting is ignored).
            "user root\nlistener {port} 127.0.0.1\npersistence true\npersistence_location {}/\nlog_dest file {}/mosquitto.log\n\
             log_type all\n",
            dir.display(),
            dir.display()
        );
        if options.users.is_empty() {
            conf.push_str("allow_anonymous true\n");
        } else {
            let file = dir.join("passwd");
            for (i, (user, pass)) in options.users.iter().enumerate() {
                let mut cmd = Command::new("mosquitto_passwd");
                if i == 0 {
                    cmd.arg("-c");
                }
                let ok = cmd.arg("-b").arg(&file).arg(user).arg(pass).status().expect("mosquitto_passwd");
                assert!(ok.success());
            }
            let _ = writeln!(conf, "allow_anonymous false\npassword_file {}", file.display());
        }
        if let Some(c) = &options.tls {
            let _ = writeln!(
                conf,
                "cafile {}\ncertfile {}\nkeyfile {}",
                c.ca.display(),
                c.server_cert.display(),
                c.server_key.display()
            );
            if options.require_client_cert {
                conf.push_str("require_certificate true\n");
            }
        }
        std::fs::write(dir.join("mosquitto.conf"), conf).expect("write conf");
        let mut b = Broker { port, dir: dir.to_owned(), child: None };
        b.restart();
        b
    }

    /// Starts (again) on the same port, with the same config and persistence file.
    pub fn restart(&mut self) {
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the broker with SIGTERM (it saves its persistence file: what it acknowledged survives) and waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A CA, a server certificate signed by it for `names`, and a client certificate.
#[derive(Clone)]
pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Makes a CA named `name` in `dir/name/` and a server certificate with subjectAltName `san`
/// (e.g. `DNS:localhost,IP:127.0.0.1`).
pub fn make_certs(dir: &Path, name: &str, san: &str) -> Certs {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).expect("dir");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj"]);
    let subj = format!("/CN=p1hub test CA {name}");
    ca.push(&subj);
    openssl(&d, &ca);
    std::fs::write(d.join("server.ext"), format!("subjectAltName={san}\nextendedKeyUsage=serverAuth\n")).expect("ext");
    std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    for (who, cn) in [("server", "broker"), ("client", "p1-bridge")] {
        let mut req = vec!["req"];
        req.extend(ec);
        let key = format!("{who}.key");
        let csr = format!("{who}.csr");
        let subj = format!("/CN={cn}");
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(&d, &req);
        let pem = format!("{who}.pem");
        let ext = format!("{who}.ext");
        openssl(
            &d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
    Certs {
        ca: d.join("ca.pem"),
        server_cert: d.join("server.pem"),
        server_key: d.join("server.key"),
        client_cert: d.join("client.pem"),
        client_key: d.join("client.key"),
    }
}

/// One message as `mosquitto_sub` printed it.
#[derive(Clone, Debug)]
pub struct Received {
    pub topic: String,
    pub retained: bool,
    pub payload: String,
}

/// `mosquitto_sub` on `filter`, printing one line per message into a channel.
pub struct Sub {
    child: Child,
    rx: mpsc::Receiver<Received>,
    pub seen: Vec<Received>,
}

impl Sub {
    /// Subscribes and waits for the broker's SUBACK. `extra` adds arguments (`--cafile`, `-c -i id -q 1`, ...).
    pub fn start(port: u16, filter: &str, extra: &[&str]) -> Sub {
        // Line-buffered: mosquitto_sub flushes its output only after a message, not after the SUBACK line.
        let mut child = Command::new("stdbuf")
            .args([
                "-oL",
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-d",
                "-t",
                filter,
                "-F",
                "MSG\t%t\t%r\t%p",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("received SUBACK") {
                    let _ = ready_tx.send(());
                }
                let Some(rest) = line.strip_prefix("MSG\t") else { continue };
                let mut parts = rest.splitn(3, '\t');
                let (Some(topic), Some(r), Some(payload)) = (parts.next(), parts.next(), parts.next()) else {
                    continue;
                };
                let msg = Received { topic: topic.into(), retained: r == "1", payload: payload.into() };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        if ready_rx.recv_timeout(Duration::from_secs(10)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mosquitto_sub did not subscribe within 10 s");
        }
        Sub { child, rx, seen: Vec::new() }
    }

    /// Collects messages until `done(&seen)` holds; panics with what was seen after `timeout`.
    pub fn until(&mut self, timeout: Duration, what: &str, done: impl Fn(&[Received]) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}; seen: {:#?}", self.topics());
            if let Ok(m) = self.rx.recv_timeout(left.min(Duration::from_millis(100))) {
                self.seen.push(m);
            }
        }
    }

    pub fn topics(&self) -> Vec<String> {
        self.seen.iter().map(|m| format!("{} {}", m.topic, m.payload.chars().take(60).collect::<String>())).collect()
    }

    /// The last payload seen on `topic`.
    pub fn last(&self, topic: &str) -> Option<&Received> {
        self.seen.iter().rev().find(|m| m.topic == topic)
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The retained message on `topic`, fetched by a fresh `mosquitto_sub`.
pub fn retained(port: u16, topic: &str, extra: &[&str]) -> Option<Received> {
    let sub = Sub::start(port, topic, extra);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(m) = sub.rx.recv_timeout(Duration::from_millis(100)) {
            return Some(m).filter(|m| m.retained);
        }
    }
    None
}

/// `n` consecutive telegram messages of a simulated three-phase DSMR 5 meter with gas and water, from `listener`.
pub fn telegrams(listener: &str, n: usize) -> Vec<TelegramMessage> {
    let mut sim = Simulator::new(7);
    let mut engine = Engine::new(EngineOptions::default());
    let start = jiff::Timestamp::from_second(1_760_000_000).expect("time");
    let origin = Origin { listener: listener.into(), boot_id: "00000000000000aa".into() };
    let mut out = Vec::new();
    for i in 0..n {
        let at = start + jiff::SignedDuration::from_secs(i as i64);
        let zoned = at.in_tz("Europe/Amsterdam").expect("zone");
        engine.push(&sim.telegram_at(zoned), std::time::Instant::now());
        while let Some(ev) = engine.next_event() {
            if let Event::Telegram(c) = ev {
                out.push(c.into_message(origin.clone(), out.len() as u64 + 1, at));
            }
        }
    }
    assert_eq!(out.len(), n, "the simulator's telegrams all parse");
    out
}

/// `bridge.mqtt` settings from YAML lines under `mqtt:` (indented by the caller's text), validated.
pub fn mqtt_settings(lines: &str) -> Mqtt {
    let indented = lines.lines().fold(String::new(), |mut out, l| {
        let _ = writeln!(out, "    {l}");
        out
    });
    let yaml = format!("name: it\nbridge:\n  mqtt:\n{indented}");
    let config = RawConfig::from_yaml(&yaml, "test").expect("yaml").validate().expect("valid");
    config.bridge.mqtt.expect("mqtt on")
}

/// A running MQTT output fed by a channel.
pub struct Running {
    pub tx: tmpsc::Sender<Input>,
    pub stats: std::sync::Arc<Stats>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
}

pub fn run_output(m: &Mqtt) -> Running {
    let output = Output::new(m).expect("output");
    let stats = output.stats();
    let (tx, rx) = tmpsc::channel(1024);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(output.run(rx, shutdown.clone()));
    Running { tx, stats, shutdown, task }
}

impl Running {
    pub async fn send(&self, t: &TelegramMessage) {
        self.tx.send(Input::Telegram(Box::new(t.clone()))).await.expect("output runs");
    }

    /// Waits (polling the counters) until `cond` holds, or panics naming `what` and the last error.
    pub async fn wait(&self, timeout: Duration, what: &str, cond: impl Fn(&Stats) -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond(&self.stats) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last error: {:?}",
                self.stats.last_error()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

pub fn connected(s: &Stats) -> bool {
    s.connected.load(std::sync::atomic::Ordering::Relaxed)
}
