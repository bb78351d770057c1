//! Per-minute summaries of events any sender can repeat at will: [`shared::summary`], shared with the subscriber
//! library and the bridge.

pub use shared::summary::{Report, Summary, SUMMARY_EVERY};
