//! The event loop, `run`, driven with a `TestBackend`, a stream of keys and datagrams on a loopback socket.

use std::time::Duration;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use futures::StreamExt as _;
use p1_dashboard::app::App;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use shared::wire::{self, Message};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::fixtures;

fn text(terminal: &Terminal<TestBackend>) -> String {
    terminal.backend().to_string()
}

/// Runs on paused time: the driver's pause passes the moment the loop is idle, that is once it has read both
/// datagrams (they are queued on the socket before the loop starts), without waiting on the wall clock.
#[tokio::test(start_paused = true)]
async fn shows_datagrams_and_quits_on_q() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let sender = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let now = fixtures::ts("2023-05-20T11:02:55Z");
    let message = fixtures::telegram("dsmr50_solar.txt", "meterkast", 1, now);
    sender.send_to(&wire::encode(&Message::Telegram(Box::new(message))), addr).await.expect("send");
    sender.send_to(b"not json", addr).await.expect("send");

    let (keys_tx, keys_rx) = futures::channel::mpsc::channel::<std::io::Result<Event>>(4);
    let keys = keys_rx;
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("terminal");
    let mut app = App::new(fixtures::settings(), now);
    let shutdown = CancellationToken::new();
    let clock = move || now.checked_add(Duration::from_millis(300)).expect("ts");

    let driver = async {
        // Let the loop take the datagrams (paused time moves on only when it is idle), then press q.
        let mut keys_tx = keys_tx;
        tokio::time::sleep(Duration::from_millis(200)).await;
        futures::SinkExt::send(&mut keys_tx, Ok(Event::Key(KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE))))
            .await
            .expect("key");
        keys_tx
    };
    let mut gate = p1hub_subscriber::Gate::open_mode();
    let (result, _keys_tx) =
        tokio::join!(p1_dashboard::run(&mut terminal, &mut app, keys, &socket, &mut gate, clock, &shutdown), driver);
    result.expect("run");
    assert!(app.quit);
    assert_eq!(app.meters.len(), 1);
    assert_eq!(app.invalid_datagrams, 1);
    let screen = text(&terminal);
    assert!(screen.contains("meterkast"), "{screen}");
    assert!(screen.contains("exporting"), "{screen}");
    assert!(screen.contains("1 invalid datagram"), "{screen}");
}

#[tokio::test]
async fn stops_when_cancelled_or_when_input_ends() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let now = fixtures::ts("2023-05-20T11:02:55Z");
    let mut terminal = Terminal::new(TestBackend::new(40, 10)).expect("terminal");
    let mut app = App::new(fixtures::settings(), now);

    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let pending = futures::stream::pending::<std::io::Result<Event>>();
    p1_dashboard::run(
        &mut terminal,
        &mut app,
        pending,
        &socket,
        &mut p1hub_subscriber::Gate::open_mode(),
        move || now,
        &shutdown,
    )
    .await
    .expect("cancelled");

    let live = CancellationToken::new();
    let ended = futures::stream::empty::<std::io::Result<Event>>();
    p1_dashboard::run(
        &mut terminal,
        &mut app,
        ended,
        &socket,
        &mut p1hub_subscriber::Gate::open_mode(),
        move || now,
        &live,
    )
    .await
    .expect("input ended");
    assert!(!app.quit, "neither way is a quit key");
}

#[tokio::test]
async fn a_terminal_error_is_reported() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let now = fixtures::ts("2023-05-20T11:02:55Z");
    let mut terminal = Terminal::new(TestBackend::new(40, 10)).expect("terminal");
    let mut app = App::new(fixtures::settings(), now);
    let failing = futures::stream::iter([Err(std::io::Error::other("tty gone"))]).chain(futures::stream::pending());
    let err = p1_dashboard::run(
        &mut terminal,
        &mut app,
        failing.boxed(),
        &socket,
        &mut p1hub_subscriber::Gate::open_mode(),
        move || now,
        &CancellationToken::new(),
    )
    .await
    .expect_err("error");
    assert!(format!("{err:#}").contains("tty gone"), "{err:#}");
}

/// With the key, `run` opens sealed datagrams through the subscriber library's gate, shows the meter and the key id,
/// and counts (never shows) the forged, replayed and open ones.
#[tokio::test(start_paused = true)]
async fn opens_sealed_datagrams_and_refuses_the_rest() {
    use shared::wire::seal::{Key, Keyring, Sealer};
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let sender = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let now = fixtures::ts("2023-05-20T11:02:55Z");
    let key = Key::from_bytes([0x11; 32]);
    let mut sealer = Sealer::new(&key).expect("rng");
    let json =
        |seq| wire::encode(&Message::Telegram(Box::new(fixtures::telegram("dsmr50_solar.txt", "meterkast", seq, now))));
    let mut real = Vec::new();
    sealer.seal(&json(1), &mut real).expect("seal");
    let mut forged = Vec::new();
    Sealer::new(&Key::from_bytes([0x22; 32])).expect("rng").seal(&json(2), &mut forged).expect("seal");
    forged[5..9].copy_from_slice(&key.id().0);
    for d in [&real, &real, &forged, &json(3)] {
        sender.send_to(d, addr).await.expect("send");
    }

    let (keys_tx, keys_rx) = futures::channel::mpsc::channel::<std::io::Result<Event>>(4);
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("terminal");
    let mut app = App::new(fixtures::settings(), now);
    let shutdown = CancellationToken::new();
    let clock = move || now.checked_add(Duration::from_millis(300)).expect("ts");
    let mut gate = p1hub_subscriber::Gate::new(
        shared::config::Security::Sealed,
        Some(Keyring::new(key.clone())),
        false,
        p1hub_subscriber::gate::MAX_CLOCK_SKEW,
        64,
    );
    let driver = async {
        let mut keys_tx = keys_tx;
        tokio::time::sleep(Duration::from_millis(200)).await;
        futures::SinkExt::send(&mut keys_tx, Ok(Event::Key(KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE))))
            .await
            .expect("key");
        keys_tx
    };
    let (result, _keys_tx) =
        tokio::join!(p1_dashboard::run(&mut terminal, &mut app, keys_rx, &socket, &mut gate, clock, &shutdown), driver);
    result.expect("run");
    assert_eq!(app.meters.len(), 1);
    assert_eq!(app.meters[0].seq.received, 1, "the real telegram once: the copy was a replay");
    assert_eq!(app.seal, Some(p1_dashboard::app::Seal::Sealed(key.id())));
    assert_eq!((app.refused_datagrams, app.invalid_datagrams), (3, 0));
    let refused = gate.refused();
    assert_eq!((refused.replayed, refused.forged, refused.open), (1, 1, 1));
    let screen = text(&terminal);
    assert!(screen.contains("3 refused datagrams"), "the status line counts them: {screen}");
}
