//! End to end: a real listener (simulated meter) multicasts on 127.0.0.1, the bridge subscribes and publishes to
//! a real Mosquitto; the listener stops and starts again, and the availability topic follows.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use shared::config::RawConfig;
use tokio_util::sync::CancellationToken;

use crate::support::*;

/// A group and port of this test process's own.
fn group() -> SocketAddr {
    let pid = std::process::id();
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(239, 255, 100 + (pid % 150) as u8, 7),
        42_000 + (pid % 20_000) as u16,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_follows_the_listener_within_the_watchdog_time() {
    let dir = tempfile::tempdir().expect("dir");
    let broker = Broker::start(dir.path(), &BrokerOptions::default());
    let yaml = format!(
        "name: kast\nmulticast:\n  group: {}\n  interface: 127.0.0.1\n  ttl: 0\nlistener:\n  source: simulate\n  \
         status_secs: 1\n  watchdog_secs: 5\nbridge:\n  mqtt:\n    url: mqtt://127.0.0.1:{}\n",
        group(),
        broker.port
    );
    let config = RawConfig::from_yaml(&yaml, "test").expect("yaml").validate().expect("valid");
    let watchdog = config.listener.watchdog;
    let mut sub = Sub::start(broker.port, "p1hub/kast/#", &[]);

    let bridge = p1_bridge::Bridge::new(&config).expect("bridge");
    let bridge_stop = CancellationToken::new();
    let bridge_task = tokio::spawn(bridge.run(bridge_stop.clone()));

    // A listener that dies without a word (its runtime dropped: no last status datagram).
    let crashed = crashable_listener(config.clone());
    let availability = |payload: &'static str| {
        move |seen: &[Received]| seen.iter().any(|m| m.topic == "p1hub/kast/availability" && m.payload == payload)
    };
    sub.until(Duration::from_secs(20), "online", availability("online"));
    sub.until(Duration::from_secs(20), "a state", |seen| seen.iter().any(|m| m.topic == "p1hub/kast/state"));
    crashed.kill();
    let stopped = Instant::now();
    sub.until(watchdog + Duration::from_secs(2), "offline after the listener died", availability("offline"));
    let took = stopped.elapsed();
    assert!(took <= watchdog, "offline after {took:?}, watchdog {watchdog:?}");

    // Back: online again; then a clean stop (its last status says closed): offline at once.
    sub.seen.clear();
    let listener_stop = CancellationToken::new();
    let running = tokio::spawn(::listener::run(config.clone(), listener_stop.clone()));
    sub.until(Duration::from_secs(20), "online again", availability("online"));
    listener_stop.cancel();
    let _ = running.await;
    sub.until(watchdog, "offline after a clean stop", availability("offline"));
    bridge_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), bridge_task).await;
}

struct Crashable {
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Runs a listener on a runtime of its own, in a thread; `kill` drops that runtime with every task in it.
fn crashable_listener(config: shared::config::Config) -> Crashable {
    let (kill, killed) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            tokio::select! {
                _ = ::listener::run(config, CancellationToken::new()) => {}
                _ = killed => {}
            }
        });
        rt.shutdown_background();
    });
    Crashable { kill: Some(kill), thread: Some(thread) }
}

impl Crashable {
    fn kill(mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
