//! Integration tests of p1-bridge against a real Mosquitto broker on 127.0.0.1 (started per test).

mod e2e;
mod ha;
mod http;
mod mqtt;
mod support;
