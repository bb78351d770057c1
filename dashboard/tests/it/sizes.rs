//! Every terminal size from 1×1 to 130×45 draws without panicking, in every kind of state.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use p1_dashboard::app::{App, Msg};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;

use crate::fixtures;

fn states() -> Vec<(&'static str, App)> {
    let mut help = fixtures::belgian();
    help.update(Msg::Key(KeyEvent::new(KeyCode::Char('?'), KeyModifiers::NONE)));
    let mut details = fixtures::three_phase_solar();
    details.update(Msg::Key(KeyEvent::new(KeyCode::Char('d'), KeyModifiers::NONE)));
    let mut phases = fixtures::three_phase_solar();
    phases.update(Msg::Key(KeyEvent::new(KeyCode::Char('p'), KeyModifiers::NONE)));
    vec![
        ("waiting", App::new(fixtures::settings(), fixtures::ts("2024-01-01T00:00:00Z"))),
        ("single phase", fixtures::single_phase()),
        ("three phase", fixtures::three_phase_solar()),
        ("belgian", fixtures::belgian()),
        ("dsmr 2.2", fixtures::dsmr22()),
        ("stale", fixtures::stale()),
        ("help", help),
        ("details", details),
        ("phases", phases),
    ]
}

fn render_or_report(name: &str, app: &App, width: u16, height: u16) {
    let area = Rect::new(0, 0, width, height);
    let mut buf = Buffer::empty(area);
    let drawn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| app.render(area, &mut buf)));
    assert!(drawn.is_ok(), "{name} panicked at {width}x{height}");
}

#[test]
fn every_size_renders_without_panicking() {
    // Every size from 1x1 to 130x45 is drawn, each by one of the states in turn (a debug-build render of a full
    // screen takes milliseconds, and all sizes times all states would take over a minute). The bands where the
    // layout changes form (narrow or short terminals) are drawn in every state.
    let states = states();
    let mut turn = 0usize;
    for width in 1..=130u16 {
        for height in 1..=45u16 {
            if width <= 12 || height <= 4 {
                for (name, app) in &states {
                    render_or_report(name, app, width, height);
                }
            } else {
                let (name, app) = &states[turn % states.len()];
                render_or_report(name, app, width, height);
                turn += 1;
            }
        }
    }
}

#[test]
fn areas_away_from_the_origin_render_too() {
    // A widget may be given any part of a larger buffer; clipping must use the area, not (0, 0).
    let app = fixtures::belgian();
    let full = Rect::new(0, 0, 140, 50);
    for (x, y, w, h) in [(7, 3, 120, 40), (10, 10, 80, 24), (139, 49, 1, 1), (5, 45, 60, 5)] {
        let mut buf = Buffer::empty(full);
        app.render(Rect::new(x, y, w, h), &mut buf);
        let outside = (0..full.height)
            .flat_map(|row| (0..full.width).map(move |col| (col, row)))
            .filter(|&(col, row)| !Rect::new(x, y, w, h).contains((col, row).into()))
            .any(|pos| buf[pos].symbol() != " ");
        assert!(!outside, "drawing at {x},{y} {w}x{h} spilled outside its area");
    }
}
