//! The subscriber over real multicast: on 127.0.0.1 (run inside `unshare -n`, as scripts/test does), and in a
//! network namespace each test makes for itself where an interface or address appears after the subscriber
//! started.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::Command;
use std::time::Duration;

use p1hub_subscriber::{Event, InvalidKind, Liveness, Options, Retry, Subscriber, Verdict};
use shared::netif::Interface;
use shared::wire::{
    encode, Counters, CrcStatus, Dialect, Message, ObisMap, Origin, PortState, StatusMessage, TelegramMessage,
    SCHEMA_VERSION,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;

/// A group and port of this test process's own.
fn group(n: u8) -> SocketAddr {
    let pid = std::process::id();
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(239, 255, 90 + (pid % 100) as u8, n),
        42_000 + (pid % 20_000) as u16,
    ))
}

/// Sends to `group` through the interface with address `via` only, TTL 0, looped back to this host.
fn sender(via: Ipv4Addr) -> std::net::UdpSocket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    s.set_multicast_if_v4(&via).expect("multicast interface");
    s.set_multicast_ttl_v4(0).expect("ttl");
    s.set_multicast_loop_v4(true).expect("loop");
    s.bind(&SocketAddr::from((via, 0)).into()).expect("bind");
    s.into()
}

fn telegram(listener: &str, boot: &str, seq: u64) -> Message {
    Message::Telegram(Box::new(TelegramMessage {
        schema: SCHEMA_VERSION,
        origin: Origin { listener: listener.into(), boot_id: boot.into() },
        seq,
        received_at: jiff::Timestamp::UNIX_EPOCH,
        duration_ms: 0,
        crc: CrcStatus::Ok,
        encrypted: false,
        dialect: Dialect::Dsmr5,
        header: "XMX5LGBBLA4402915485".into(),
        values: Box::default(),
        obis: ObisMap::default(),
        errors: Vec::new(),
    }))
}

fn status(listener: &str, meter_silent: bool) -> Message {
    Message::Status(StatusMessage {
        schema: SCHEMA_VERSION,
        origin: Origin { listener: listener.into(), boot_id: "b".into() },
        sent_at: jiff::Timestamp::UNIX_EPOCH,
        uptime_s: 1,
        source: "simulate".into(),
        port: PortState::Open,
        port_settings: None,
        last_seq: None,
        last_telegram_age_ms: None,
        meter_silent,
        counters: Counters::default(),
    })
}

/// The next event, with a generous limit so a broken build fails instead of hanging (not a timing assertion).
async fn next(sub: &mut Subscriber) -> Event {
    tokio::time::timeout(Duration::from_secs(60), sub.next()).await.expect("an event within 60 s").expect("not ended")
}

/// Skips the events that say nothing about the datagrams (joins, waits).
async fn next_data(sub: &mut Subscriber) -> Event {
    loop {
        match next(sub).await {
            Event::Joined { .. } | Event::Waiting { .. } => {}
            e => return e,
        }
    }
}

#[tokio::test]
async fn datagrams_become_events_with_verdicts_liveness_and_counts() {
    let g = group(1);
    let cancel = CancellationToken::new();
    let mut sub = Subscriber::new(Options::new(g, Interface::Addr(IpAddr::V4(Ipv4Addr::LOCALHOST))), cancel.clone())
        .expect("subscribed");
    assert!(matches!(next(&mut sub).await, Event::Joined { group, .. } if group == g));
    let tx = sender(Ipv4Addr::LOCALHOST);
    let send = |m: &Message| tx.send_to(&encode(m), g).expect("send");

    send(&status("pi", false));
    assert!(
        matches!(next_data(&mut sub).await, Event::Liveness { listener, liveness: Liveness::Online } if listener == "pi")
    );
    assert!(matches!(next_data(&mut sub).await, Event::Status { status, .. } if status.origin.listener == "pi"));

    let mut verdicts = Vec::new();
    for seq in [1, 2, 2, 5, 4] {
        send(&telegram("pi", "boot1", seq));
        match next_data(&mut sub).await {
            Event::Telegram { msg, verdict, datagram, .. } => {
                assert_eq!(msg.seq, seq);
                assert_eq!(datagram, encode(&telegram("pi", "boot1", seq)), "the datagram as received");
                verdicts.push(verdict);
            }
            other => panic!("expected a telegram, got {other:?}"),
        }
    }
    assert_eq!(
        verdicts,
        [
            Verdict::NewBoot { restart: false },
            Verdict::New { missed: 0 },
            Verdict::Duplicate,
            Verdict::New { missed: 2 },
            Verdict::Late
        ]
    );

    tx.send_to(b"not json", g).expect("send");
    tx.send_to(br#"{"schema":7,"type":"telegram"}"#, g).expect("send");
    assert!(matches!(next_data(&mut sub).await, Event::Invalid { kind: InvalidKind::NotJson, .. }));
    assert!(matches!(next_data(&mut sub).await, Event::Invalid { kind: InvalidKind::Schema, .. }));

    send(&status("pi", true));
    assert!(matches!(next_data(&mut sub).await, Event::Liveness { liveness: Liveness::MeterSilent, .. }));
    assert!(matches!(next_data(&mut sub).await, Event::Status { .. }));

    let c = sub.counters();
    assert_eq!((c.datagrams, c.telegrams, c.statuses), (9, 5, 2));
    assert_eq!((c.invalid.not_json, c.invalid.schema, c.invalid.total()), (1, 1, 2));

    // Silence: with the clock paused, the liveness tick runs ahead (nobody waits) until the listener is gone.
    tokio::time::pause();
    assert!(matches!(next_data(&mut sub).await, Event::Liveness { liveness: Liveness::ListenerGone, .. }));
    tokio::time::resume();

    // Shutdown: the token ends the stream.
    cancel.cancel();
    assert!(sub.next().await.is_none());
}

#[tokio::test]
async fn two_subscribers_share_the_port_and_other_groups_stay_out() {
    let (g, other) = (group(2), group(3));
    let lo = Interface::Addr(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let cancel = CancellationToken::new();
    let mut a = Subscriber::new(Options::new(g, lo.clone()), cancel.clone()).expect("first");
    let mut b = Subscriber::new(Options::new(g, lo.clone()), cancel.clone()).expect("second binds the same port");
    // A third on another group of the same port: with IP_MULTICAST_ALL off its datagrams do not reach a or b.
    let _c = Subscriber::new(Options::new(other, lo), cancel.clone()).expect("other group");
    let tx = sender(Ipv4Addr::LOCALHOST);
    tx.send_to(&encode(&telegram("x", "b", 1)), other).expect("send");
    tx.send_to(&encode(&telegram("pi", "b", 1)), g).expect("send");
    for sub in [&mut a, &mut b] {
        match next_data(sub).await {
            Event::Liveness { listener, .. } => assert_eq!(listener, "pi", "only this group's datagrams"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(next_data(sub).await, Event::Telegram { msg, .. } if msg.origin.listener == "pi"));
    }
}

// ---- Interfaces that appear after the start, each in a namespace of the test's own ----

/// Runs the calling test again in a new network namespace (`unshare -n`, as root) and returns `false` after
/// checking it passed there; inside the namespace returns `true` with `lo` up, so the test's body runs there.
/// Interfaces and addresses are only ever added inside that namespace.
fn in_own_namespace(test: &str) -> bool {
    if std::env::var_os("P1HUB_SUBSCRIBER_NETNS").is_some() {
        ip(&["link", "set", "lo", "up"]);
        return true;
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new("unshare")
        .arg("-n")
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("P1HUB_SUBSCRIBER_NETNS", "1")
        .output()
        .expect("unshare (util-linux) runs");
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "in its own namespace, {test} failed:\n{output}");
    assert!(output.contains("1 passed"), "the test did not run in the namespace:\n{output}");
    false
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip (iproute2) runs");
    assert!(status.success(), "ip {args:?} failed");
}

/// Events until the group is joined; returns the waits seen before.
async fn until_joined(sub: &mut Subscriber) -> Vec<(u32, String)> {
    let mut waits = Vec::new();
    loop {
        match next(sub).await {
            Event::Joined { .. } => return waits,
            Event::Waiting { attempt, cause, .. } => waits.push((attempt, cause)),
            other => panic!("before joining: {other:?}"),
        }
    }
}

const QUICK: Retry = Retry { first: Duration::from_millis(20), max: Duration::from_millis(200) };

#[test]
fn an_interface_named_before_it_exists_is_waited_for_then_joined() {
    if !in_own_namespace("an_interface_named_before_it_exists_is_waited_for_then_joined") {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let g = group(4);
        let mut options = Options::new(g, Interface::Name("p1sub0".into()));
        options.retry = QUICK;
        options.tick = Duration::from_millis(20);
        let mut sub = Subscriber::new(options, CancellationToken::new()).expect("waiting is not an error");
        assert!(!sub.is_joined());
        // Started, and waiting: now the interface comes (a veth pair, up, with an address).
        match next(&mut sub).await {
            Event::Waiting { attempt: 1, cause, .. } => assert!(cause.contains("p1sub0"), "{cause}"),
            other => panic!("expected a wait first, got {other:?}"),
        }
        ip(&["link", "add", "p1sub0", "type", "veth", "peer", "name", "p1sub1"]);
        ip(&["addr", "add", "10.77.0.1/24", "dev", "p1sub0"]);
        ip(&["link", "set", "p1sub1", "up"]);
        ip(&["link", "set", "p1sub0", "up"]);
        until_joined(&mut sub).await;
        assert!(sub.is_joined());
        // Joined on that interface: a datagram sent out of it arrives (the looped-back copy).
        sender(Ipv4Addr::new(10, 77, 0, 1)).send_to(&encode(&telegram("nas", "b", 1)), g).expect("send");
        assert!(matches!(next_data(&mut sub).await, Event::Liveness { .. }));
        assert!(matches!(next_data(&mut sub).await, Event::Telegram { msg, .. } if msg.origin.listener == "nas"));
        assert!(sub.counters().join_attempts >= 1);

        // The adapter goes away and comes back (a new device, a new index): the subscriber waits and rejoins.
        ip(&["link", "del", "p1sub0"]);
        match next(&mut sub).await {
            Event::Waiting { cause, .. } => assert!(cause.contains("p1sub0"), "{cause}"),
            other => panic!("expected a wait once the interface is gone, got {other:?}"),
        }
        assert!(!sub.is_joined());
        ip(&["link", "add", "p1sub0", "type", "veth", "peer", "name", "p1sub1"]);
        ip(&["addr", "add", "10.77.0.1/24", "dev", "p1sub0"]);
        ip(&["link", "set", "p1sub1", "up"]);
        ip(&["link", "set", "p1sub0", "up"]);
        until_joined(&mut sub).await;
        sender(Ipv4Addr::new(10, 77, 0, 1)).send_to(&encode(&telegram("nas", "b", 2)), g).expect("send");
        assert!(matches!(next_data(&mut sub).await, Event::Telegram { msg, verdict: Verdict::New { missed: 0 }, .. } if msg.seq == 2));
    });
}

#[test]
fn an_address_that_comes_later_is_waited_for_then_joined() {
    if !in_own_namespace("an_address_that_comes_later_is_waited_for_then_joined") {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let g = group(5);
        let addr = Ipv4Addr::new(10, 78, 0, 1);
        let mut options = Options::new(g, Interface::Addr(IpAddr::V4(addr)));
        options.retry = QUICK;
        let mut sub = Subscriber::new(options, CancellationToken::new()).expect("waiting is not an error");
        match next(&mut sub).await {
            Event::Waiting { cause, .. } => assert!(cause.contains("10.78.0.1"), "{cause}"),
            other => panic!("expected a wait first, got {other:?}"),
        }
        // The DHCP lease arrives: the address on lo.
        ip(&["addr", "add", "10.78.0.1/32", "dev", "lo"]);
        until_joined(&mut sub).await;
        sender(addr).send_to(&encode(&telegram("pi", "b", 1)), g).expect("send");
        assert!(matches!(next_data(&mut sub).await, Event::Liveness { .. }));
        assert!(matches!(next_data(&mut sub).await, Event::Telegram { .. }));
    });
}

/// The next event about a datagram (skipping joins and liveness).
async fn datum(sub: &mut Subscriber) -> Event {
    loop {
        match next_data(sub).await {
            Event::Liveness { .. } => {}
            e => return e,
        }
    }
}

/// Sealed mode over a real socket: a keyed subscriber opens sealed datagrams (the events say by which key) and
/// refuses open, forged and replayed ones; a subscriber without the key refuses every sealed datagram, and nothing
/// it hands out could be mistaken for data.
#[tokio::test]
async fn sealed_datagrams_are_opened_with_the_key_and_refused_without_it() {
    use p1hub_subscriber::{Refusal, RefusedCounts};
    use shared::wire::seal::{Key, Keyring, Sealer};

    let g = group(9);
    let cancel = CancellationToken::new();
    let key = Key::from_bytes([0x5a; 32]);
    let mut options = Options::new(g, Interface::Addr(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    options.keys = Some(Keyring::new(key.clone()));
    let mut keyed = Subscriber::new(options.clone(), cancel.clone()).expect("subscribed");
    options.keys = None;
    let mut keyless = Subscriber::new(options, cancel.clone()).expect("subscribed");
    let tx = sender(Ipv4Addr::LOCALHOST);
    let mut sealer = Sealer::new(&key).expect("rng");
    let seal_one = |sealer: &mut Sealer, m: &Message| {
        let mut out = Vec::new();
        sealer.seal(&encode(m), &mut out).expect("seal");
        out
    };
    // Sent now: inside the replay window.
    let now_telegram = |seq| match telegram("pi", "b", seq) {
        Message::Telegram(mut t) => {
            t.received_at = jiff::Timestamp::now();
            Message::Telegram(t)
        }
        Message::Status(_) => unreachable!(),
    };
    let first = seal_one(&mut sealer, &now_telegram(1));
    let mut flipped = first.clone();
    flipped[30] ^= 1;
    for d in [first.clone(), encode(&now_telegram(2)), first.clone(), flipped, seal_one(&mut sealer, &now_telegram(2))]
    {
        tx.send_to(&d, g).expect("send");
    }

    match datum(&mut keyed).await {
        Event::Telegram { msg, sealed, datagram, .. } => {
            assert_eq!((msg.seq, sealed), (1, Some(key.id())));
            assert!(shared::wire::parse(&datagram).is_ok(), "the opened JSON is handed out");
        }
        other => panic!("expected a telegram, got {other:?}"),
    }
    let mut refusals = Vec::new();
    for _ in 0..3 {
        match datum(&mut keyed).await {
            Event::Refused { refusal, .. } => refusals.push(refusal),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(refusals, [Refusal::Open, Refusal::Replayed, Refusal::Forged { key_id: Some(key.id()) }]);
    assert!(matches!(datum(&mut keyed).await, Event::Telegram { msg, sealed: Some(_), .. } if msg.seq == 2));
    assert_eq!(keyed.counters().refused, RefusedCounts { open: 1, replayed: 1, forged: 1, ..RefusedCounts::default() });

    // Without the key: the open one is read (open mode cannot tell), every sealed one refused as "no key here".
    let mut no_key = 0;
    for _ in 0..5 {
        match datum(&mut keyless).await {
            Event::Refused { refusal: Refusal::NoKey { key_id }, .. } => {
                assert_eq!(key_id, Some(key.id()));
                no_key += 1;
            }
            Event::Telegram { msg, sealed: None, .. } => assert_eq!(msg.seq, 2, "only the open datagram"),
            other => panic!("nothing else: {other:?}"),
        }
    }
    assert_eq!((no_key, keyless.counters().telegrams, keyless.counters().refused.no_key), (4, 1, 4));
    cancel.cancel();
}
