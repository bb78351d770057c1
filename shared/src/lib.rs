//! p1hub's core: everything about P1 telegrams that needs no socket, port or clock of its own.
//!
//! # Layout
//! - [`frame`]: the streaming framer: bytes in, whole telegrams (or counted discards) out.
//! - [`crc`]: CRC-16/ARC as used by DSMR 4 and later.
//! - [`dlms`]: encrypted (DLMS general-global-cipher, AES-128-GCM) frames of Luxembourg and Austrian meters.
//! - [`obis`]: OBIS references and the generic line grammar.
//! - [`telegram`]: a checked telegram parsed into named values and a lossless OBIS map.
//! - [`engine`]: framer + CRC + decryption + parser in one push-based state machine, with counters.
//! - [`decimal`], [`timestamp`]: exact meter numbers and meter times (written with two-digit tables, `digits`).
//! - [`wire`]: the multicast datagram (the only place that builds or reads one); [`wire::seal`] its sealed
//!   (encrypted and authenticated) envelope.
//! - [`names`]: a listener name as a directory name or MQTT topic level, one-to-one.
//! - [`netif`]: an interface's index from its IPv6 address (for IPv6 multicast).
//! - [`columns`]: named CSV columns over a message.
//! - [`config`]: the `p1.yml` configuration.
//! - [`summary`]: per-minute log summaries of events a sender can repeat at will (time passed in).
//! - [`simulate`]: a simulated DSMR 5 meter (a pure function of time), for demos and tests.
#![deny(missing_docs)]

pub mod columns;
pub mod config;
pub mod crc;
pub mod decimal;
mod digits;
pub mod dlms;
pub mod engine;
pub mod frame;
pub mod names;
pub mod netif;
pub mod obis;
pub mod simulate;
pub mod summary;
pub mod telegram;
pub mod timestamp;
pub mod wire;
