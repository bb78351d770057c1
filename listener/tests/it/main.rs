//! Integration tests for p1-listener: real pseudo-terminals, real sockets, all on loopback.
//!
//! One test binary (see `Cargo.toml`): `cargo test -p p1hub-listener --test it`.

mod cli;
mod encrypted;
mod ipv6;
mod late_interface;
mod pty;
mod python;
mod raw_tcp;
mod sources;
mod support;
