//! Whole screens at 80×24 and 120×40, drawn by `impl Widget for &App` into ratatui's `TestBackend`.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use insta::assert_snapshot;
use p1_dashboard::app::{App, Msg};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use crate::fixtures::{self, datagram, status};

fn screen(app: &App, width: u16, height: u16) -> TestBackend {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal.draw(|frame| frame.render_widget(app, frame.area())).expect("draw");
    terminal.backend().clone()
}

fn press(app: &mut App, code: KeyCode) {
    app.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

macro_rules! both_sizes {
    ($($name:ident => $app:expr;)*) => {$(
        #[test]
        fn $name() {
            let app = $app;
            assert_snapshot!(concat!(stringify!($name), "_80x24"), screen(&app, 80, 24));
            assert_snapshot!(concat!(stringify!($name), "_120x40"), screen(&app, 120, 40));
        }
    )*};
}

both_sizes! {
    single_phase => fixtures::single_phase();
    three_phase_solar_export => fixtures::three_phase_solar();
    belgian_with_13_month_history => fixtures::belgian();
    dsmr22_with_gas => fixtures::dsmr22();
    stale_meter => fixtures::stale();
    help => {
        let mut app = fixtures::three_phase_solar();
        press(&mut app, KeyCode::Char('?'));
        app
    };
}

#[test]
fn meter_silent_per_listener_status() {
    let mut app = fixtures::three_phase_solar();
    let last = app.meters[0].telegram_at.expect("telegram");
    let at = last.checked_add(Duration::from_secs(40)).expect("ts");
    app.update(datagram(&status("meterkast", at, 52_001, 40_000, true), at));
    app.update(Msg::Tick(at.checked_add(Duration::from_secs(1)).expect("ts")));
    assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn listener_gone_when_nothing_arrives() {
    let mut app = fixtures::single_phase();
    let last = app.meters[0].telegram_at.expect("telegram");
    app.update(Msg::Tick(last.checked_add(Duration::from_secs(95)).expect("ts")));
    assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn waiting_for_the_first_datagram() {
    let start = fixtures::ts("2024-03-05T11:30:00Z");
    let mut app = App::new(fixtures::settings(), start);
    app.update(Msg::Invalid("not a p1hub message: expected value at line 1 column 1".into(), start));
    app.update(Msg::Tick(start.checked_add(Duration::from_secs(12)).expect("ts")));
    assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn two_meters_second_selected() {
    let mut app = fixtures::three_phase_solar();
    let now = app.now;
    // A second listener that joined half a minute ago, with its meter's clock set to now.
    let mut garage = fixtures::telegram("dsmr50_1phase.txt", "garage", 31, now);
    let clock = now.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(2)));
    garage.values.meter_time = Some(shared::timestamp::MeterTime {
        local: clock.datetime().round(jiff::Unit::Second).expect("round"),
        offset: clock.offset(),
    });
    fixtures::feed_history(&mut app, &garage, 30, Duration::from_secs(1), |i| 0.3 + 0.02 * i as f64);
    press(&mut app, KeyCode::Tab);
    assert_snapshot!(screen(&app, 120, 40));
}

#[test]
fn phases_chart_and_longer_span() {
    let mut app = fixtures::three_phase_solar();
    press(&mut app, KeyCode::Char('p'));
    press(&mut app, KeyCode::Char('+'));
    assert_snapshot!(screen(&app, 120, 40));
}

#[test]
fn details_page() {
    let mut app = fixtures::single_phase();
    press(&mut app, KeyCode::Char('d'));
    assert_snapshot!(screen(&app, 80, 24));
    press(&mut app, KeyCode::End);
    assert_snapshot!("details_page_end", screen(&app, 80, 24));
}

/// Sealed datagrams: the status line says so, with the key id (open ones, the default, say nothing).
#[test]
fn sealed_datagrams_show_their_key_id() {
    let mut app = fixtures::single_phase();
    let last = app.meters[0].telegram.clone().expect("telegram");
    let mut next = (*last).clone();
    next.seq += 1;
    let at = next.received_at.checked_add(Duration::from_secs(1)).expect("ts");
    next.received_at = at;
    let key_id = shared::wire::seal::Key::from_bytes([7; 32]).id();
    app.update(Msg::Sealed(shared::wire::Message::Telegram(Box::new(next)), key_id, at));
    assert_eq!(app.seal, Some(p1_dashboard::app::Seal::Sealed(key_id)));
    // At 120 columns the status line has room beside the keys (at 80 the keys come first).
    assert_snapshot!(screen(&app, 120, 40));
}

/// A dashboard without the key: nothing it could mistake for data, and why on the waiting screen.
#[test]
fn waiting_while_sealed_datagrams_are_refused() {
    let start = fixtures::ts("2024-03-05T11:30:00Z");
    let mut app = App::new(fixtures::settings(), start);
    for _ in 0..3 {
        app.update(Msg::Refused("sealed (key id 686321c8), but this host has no key".into(), start));
    }
    app.update(Msg::Tick(start.checked_add(Duration::from_secs(12)).expect("ts")));
    assert!(app.meters.is_empty());
    assert_snapshot!(screen(&app, 80, 24));
}
