//! `p1-bridge`: subscribes to p1hub listeners and forwards live data to other systems; today MQTT, with Home
//! Assistant discovery.
//!
//! # Layout
//! - [`cli`]: flags and configuration loading.
//! - [`mqtt`]: the MQTT output (topics, discovery, offline queue, TLS, the connection).

pub mod cli;
pub mod mqtt;

#[cfg(test)]
mod testutil;
