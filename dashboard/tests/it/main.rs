//! Integration tests of the dashboard: whole-screen snapshots, every terminal size, and the event loop.

mod event_loop;
mod fixtures;
mod interface_check;
mod sizes;
mod snapshots;
