//! p1-dashboard: a live terminal view of the meters whose listeners publish on the multicast group.
//!
//! The structure is the Elm architecture: [`App`] is plain data, [`App::update`] applies one [`Msg`], and
//! `impl Widget for &App` ([`ui`]) draws the state without reading a clock or doing I/O. [`run`] is the only place
//! with I/O: it waits on terminal events, datagrams, a tick and the shutdown token, turns each into a [`Msg`], and
//! redraws. It is generic over the ratatui backend and the event stream, so tests drive it with a `TestBackend`.
//!
//! # Layout
//! - [`app`] holds the state, the messages and `update`, with the sequence and health accounting;
//! - [`ui`] draws;
//! - the multicast socket is [`p1hub_subscriber::socket`]'s (one implementation for every subscriber);
//! - [`cli`] reads the flags and loads the configuration.

pub mod app;
mod bigtext;
pub mod cli;
mod format;
pub mod ui;

use std::io;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use crossterm::event::Event;
use futures::{Stream, StreamExt as _};
use jiff::Timestamp;
use p1hub_subscriber::gate::{Admitted, Gate, Rejected};
use ratatui::backend::Backend;
use ratatui::Terminal;
use shared::config::Config;
use tokio_util::sync::CancellationToken;

pub use app::{App, Msg, Settings};

/// How often the screen is refreshed when nothing arrives (ages and the chart move on).
pub const TICK: Duration = Duration::from_millis(500);

/// After a receive error, the socket is left alone this long, so a persistent error cannot spin the loop.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Datagrams handled before a redraw when many arrive at once (a replay at full speed).
const BURST: usize = 256;

/// Runs the dashboard until the user quits, the event stream ends or `shutdown` is cancelled.
///
/// `events` is the terminal's event stream (crossterm's `EventStream`, or any stream in tests), `socket` a
/// subscribed socket, `gate` the subscriber library's gate (opens sealed datagrams, refuses open ones when a key is
/// set, drops replays), and `clock` gives the current time for ticks and receive stamps.
///
/// # Errors
/// Drawing failed or the terminal's event stream reported an error.
pub async fn run<B, E, C>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut events: E,
    socket: &tokio::net::UdpSocket,
    gate: &mut Gate,
    clock: C,
    shutdown: &CancellationToken,
) -> anyhow::Result<()>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    E: Stream<Item = io::Result<Event>> + Unpin,
    C: Fn() -> Timestamp,
{
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut buf = vec![0u8; 65_536];
    let mut paused_until: Option<tokio::time::Instant> = None;
    app.update(Msg::Tick(clock()));
    if let Ok(size) = terminal.size() {
        app.update(Msg::Resize(size.width, size.height));
    }
    draw(terminal, app)?;
    loop {
        let msg = tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => Msg::Tick(clock()),
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) => Msg::Key(key),
                Some(Ok(Event::Resize(columns, rows))) => Msg::Resize(columns, rows),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e).context("reading terminal events"),
                None => break,
            },
            () = sleep_until(paused_until), if paused_until.is_some() => {
                paused_until = None;
                continue;
            }
            received = socket.recv_from(&mut buf), if paused_until.is_none() => match received {
                Ok((n, _)) => datagram_msg(gate, &buf[..n], clock()),
                Err(e) => {
                    tracing::warn!(cause = %e, "receive failed");
                    paused_until = Some(tokio::time::Instant::now() + ERROR_PAUSE);
                    Msg::NetError(e.to_string())
                }
            },
        };
        let was_datagram = matches!(msg, Msg::Datagram(..) | Msg::Sealed(..) | Msg::Refused(..) | Msg::Invalid(..));
        app.update(msg);
        if was_datagram {
            // Take whatever else is already queued before drawing once for all of it.
            for _ in 0..BURST {
                match socket.try_recv_from(&mut buf) {
                    Ok((n, _)) => app.update(datagram_msg(gate, &buf[..n], clock())),
                    Err(_) => break,
                }
            }
        }
        if app.quit {
            break;
        }
        draw(terminal, app)?;
    }
    Ok(())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d).await;
    }
}

fn datagram_msg(gate: &mut Gate, bytes: &[u8], at: Timestamp) -> Msg {
    match gate.admit(bytes, at) {
        Ok(Admitted { message, sealed: None, .. }) => Msg::Datagram(message, at),
        Ok(Admitted { message, sealed: Some(key_id), .. }) => Msg::Sealed(message, key_id, at),
        // Said once and summarised in the log by the gate.
        Err(Rejected::Refused(why)) => Msg::Refused(why.to_string(), at),
        Err(Rejected::Invalid(e)) => {
            tracing::debug!(cause = %e, len = bytes.len(), "invalid datagram");
            Msg::Invalid(e.to_string(), at)
        }
    }
}

fn draw<B>(terminal: &mut Terminal<B>, app: &App) -> anyhow::Result<()>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
{
    terminal.draw(|frame| frame.render_widget(app, frame.area())).context("drawing")?;
    Ok(())
}

/// Subscribes to the configured group, takes over the terminal, runs [`run`] and gives the terminal back, also when
/// `run` fails. (A panic restores it too: `ratatui::try_init` installs a hook that does.)
///
/// # Errors
/// The subscription or the terminal could not be set up, or [`run`] failed.
pub async fn start(config: &Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let group = config.multicast.group;
    let interface = &config.multicast.interface;
    let Some(socket) = subscribe(group, interface, &shutdown).await? else { return Ok(()) };
    tracing::info!(%group, %interface, "subscribed");
    let mut app = App::new(Settings::from_config(config), Timestamp::now());
    let mut gate = p1hub_subscriber::Options::from_config(config).gate();
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            ratatui::restore();
            return Err(e).context("setting up the terminal (is this an interactive terminal?)");
        }
    };
    let events = crossterm::event::EventStream::new();
    let result = run(&mut terminal, &mut app, events, &socket, &mut gate, Timestamp::now, &shutdown).await;
    ratatui::restore();
    result
}

/// Joins `group` on `interface`. When the interface is not there yet (a late DHCP lease) it says so on stderr
/// (the terminal is not taken over yet) and waits for it, retrying with a capped backoff; `None` if `shutdown`
/// fires first.
async fn subscribe(
    group: std::net::SocketAddr,
    interface: &shared::netif::Interface,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<tokio::net::UdpSocket>> {
    use p1hub_subscriber::socket::{self, Retry};
    let opened = socket::retry(
        || socket::open(group, interface, socket::RECV_BUFFER),
        Retry::default(),
        shutdown,
        |n, e, delay| {
            if n == 1 {
                eprintln!("p1-dashboard: {e}; waiting for it (Ctrl-C to quit)");
            }
            tracing::warn!(cause = %e, attempt = n, retry_in = ?delay, "the interface is not there yet; waiting for it");
        },
    )
    .await;
    let Some(opened) = opened else { return Ok(None) };
    let socket = opened.context("subscribing to the multicast group")?;
    Ok(Some(tokio::net::UdpSocket::from_std(socket).context("registering the socket with the runtime")?))
}

/// Cancels `shutdown` on SIGINT, SIGTERM or SIGHUP (a closed terminal), so the terminal is restored on the way out.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let kinds = [SignalKind::interrupt(), SignalKind::terminate(), SignalKind::hangup()];
        let mut streams = Vec::new();
        for kind in kinds {
            match signal(kind) {
                Ok(s) => streams.push(s),
                Err(e) => tracing::warn!(cause = %e, "cannot watch a signal"),
            }
        }
        let waits: Vec<_> = streams.iter_mut().map(|s| Box::pin(s.recv())).collect();
        if waits.is_empty() {
            std::future::pending::<()>().await;
        } else {
            futures::future::select_all(waits).await;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    shutdown.cancel();
}

/// Sends diagnostics to `path` (appending), or nowhere: the terminal is the dashboard's.
///
/// # Errors
/// The file cannot be opened.
pub fn init_logging(path: Option<&Path>) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening the log file {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(std::sync::Mutex::new(file)).init();
    Ok(())
}
