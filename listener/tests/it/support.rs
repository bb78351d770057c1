//! Test helpers: unique groups and ports, a multicast subscriber on loopback, a listener running in the background.
//!
//! Everything stays on loopback: the listener's outgoing interface is 127.0.0.1 and subscribers join on 127.0.0.1.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use shared::config::{Config, RawConfig};
use shared::simulate::Simulator;
use shared::wire::{Message, StatusMessage, TelegramMessage};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Fails the test instead of hanging it.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_elapsed| panic!("timed out after {secs} s: {what}"))
}

/// A free port on 127.0.0.1 (for TCP or UDP; the kernel hands out each ephemeral port once in a while).
pub fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    socket.local_addr().expect("local address").port()
}

/// A group and port no other test (in this or another test binary) uses.
pub fn unique_group() -> SocketAddrV4 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let group = Ipv4Addr::new(239, 255, 100 + (pid % 100) as u8, (n % 250) as u8 + 1);
    SocketAddrV4::new(group, free_port())
}

/// A configuration for tests: loopback multicast to `group`, status every second, the given source.
pub fn config(source: &str, group: SocketAddrV4, adjust: impl FnOnce(&mut RawConfig)) -> Config {
    let mut raw = RawConfig { name: Some("it".into()), ..RawConfig::default() };
    raw.listener.source = source.into();
    raw.multicast.group = group.to_string();
    raw.multicast.interface = "127.0.0.1".into();
    raw.listener.status_secs = 1;
    adjust(&mut raw);
    raw.validate().expect("a valid test configuration")
}

/// A subscriber joined on 127.0.0.1.
pub struct Subscriber {
    socket: UdpSocket,
}

impl Subscriber {
    pub fn join(group: SocketAddrV4) -> Self {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
        s.set_reuse_address(true).expect("reuse");
        // Bound to the group address, the socket sees only this group's datagrams.
        s.bind(&SocketAddr::V4(group).into()).expect("bind the group");
        s.join_multicast_v4(group.ip(), &Ipv4Addr::LOCALHOST).expect("join on loopback");
        s.set_recv_buffer_size(4 << 20).expect("buffer");
        s.set_nonblocking(true).expect("nonblocking");
        Subscriber { socket: UdpSocket::from_std(s.into()).expect("tokio socket") }
    }

    /// The next datagram, as sent.
    pub async fn raw(&self) -> Vec<u8> {
        let mut buf = vec![0u8; 65_536];
        let n = self.socket.recv(&mut buf).await.expect("receive");
        buf.truncate(n);
        buf
    }

    /// The next datagram, parsed.
    pub async fn next(&self) -> Message {
        let mut buf = vec![0u8; 65_536];
        let n = self.socket.recv(&mut buf).await.expect("receive");
        shared::wire::parse(&buf[..n]).expect("a valid p1hub datagram")
    }

    /// The next telegram message, skipping status datagrams.
    pub async fn telegram(&self) -> Box<TelegramMessage> {
        loop {
            if let Message::Telegram(t) = self.next().await {
                return t;
            }
        }
    }

    /// The next status datagram that satisfies `pred`, skipping everything else.
    pub async fn status_where(&self, pred: impl Fn(&StatusMessage) -> bool) -> StatusMessage {
        loop {
            if let Message::Status(s) = self.next().await {
                if pred(&s) {
                    return s;
                }
            }
        }
    }
}

/// A listener running in the background of the test's runtime.
pub struct Running {
    token: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub fn start(config: Config) -> Self {
        let token = CancellationToken::new();
        let handle = tokio::spawn(p1_listener::run(config, token.clone()));
        Running { token, handle }
    }

    /// Waits for `run` to return by itself (a replayed file).
    pub async fn finished(self) -> anyhow::Result<()> {
        within(10, "the listener to finish", self.handle).await.expect("the listener task")
    }

    /// Shuts the listener down as a signal would and checks it stops cleanly.
    pub async fn stop(self) {
        self.token.cancel();
        within(10, "the listener to stop", self.handle).await.expect("the listener task").expect("a clean stop");
    }
}

/// Telegrams of the simulated meter, `count` seconds from a fixed instant.
pub fn telegrams(count: usize) -> Vec<Vec<u8>> {
    let mut sim = Simulator::new(42);
    (0..count)
        .map(|s| {
            let at = jiff::Timestamp::from_second(1_717_243_200 + s as i64).expect("in range");
            sim.telegram_at(at.to_zoned(jiff::tz::TimeZone::UTC))
        })
        .collect()
}

/// A copy of `telegram` with one value digit changed, so its CRC no longer matches.
pub fn corrupted(telegram: &[u8]) -> Vec<u8> {
    let mut bad = telegram.to_vec();
    let at = bad.windows(10).position(|w| w == b"1-0:1.8.1(").expect("a register") + 10;
    bad[at] = if bad[at] == b'1' { b'2' } else { b'1' };
    bad
}
