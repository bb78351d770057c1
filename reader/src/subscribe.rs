//! The multicast subscription: the socket, and the task that reads datagrams and hands valid messages on.
//!
//! [`socket`] binds the group's port with `SO_REUSEADDR` and `SO_REUSEPORT`, so several subscribers (readers,
//! dashboards) on one host coexist, and joins the group on the configured interface: IPv4 by the interface's
//! address, IPv6 by its index (looked up from the address). On Linux an IPv4 socket is bound to the group address
//! and `IP_MULTICAST_ALL` is off, so only this group's datagrams arrive, not those of other groups on the same
//! port. [`receive`] reads every datagram through [`shared::wire::parse`]; datagrams that are not a valid message
//! are counted by kind and summarised in the log at most once a minute. It never blocks on the disk: the hand-over
//! to the writing thread is a push onto the [`Inbox`], which is bounded in bytes and drops its oldest telegrams
//! (counted) when full.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use shared::wire::{Message, WireError, MAX_DATAGRAM};
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, error, warn};

use crate::clock::Clock;
use crate::logtext::Printable;
use crate::stats::{self, Stats};
use crate::store::Job;
use crate::writer::{Closed, Inbox, Incoming};

/// The receive buffer asked of the kernel, to ride out bursts while the writing thread is busy (the kernel may
/// cap it at `net.core.rmem_max`).
const RECV_BUFFER: usize = 4 << 20;
const SUMMARY_EVERY: SignedDuration = SignedDuration::from_secs(60);

/// Why the subscription could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The socket could not be created or configured.
    #[error("cannot create a UDP socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The port could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The group could not be joined.
    #[error("cannot join multicast group {group} on interface {interface}: {source} (is the interface up, with multicast on?)")]
    Join {
        /// The group.
        group: IpAddr,
        /// The interface.
        interface: IpAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An IPv6 interface address that no local interface has.
    #[error("no local interface has the IPv6 address {0} (multicast.interface); use :: to let the system choose")]
    NoSuchInterface(Ipv6Addr),
}

/// A non-blocking socket bound to `group`'s port and joined to the group on `interface`.
pub fn socket(group: SocketAddr, interface: IpAddr) -> Result<std::net::UdpSocket, SubscribeError> {
    let domain = if group.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let sock = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(SubscribeError::Socket)?;
    sock.set_reuse_address(true).map_err(SubscribeError::Socket)?;
    sock.set_reuse_port(true).map_err(SubscribeError::Socket)?;
    if let Err(e) = sock.set_recv_buffer_size(RECV_BUFFER) {
        debug!(cause = %e, "cannot enlarge the receive buffer");
    }
    match (group.ip(), interface) {
        (IpAddr::V4(g), iface) => {
            let iface = match iface {
                IpAddr::V4(a) => a,
                IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
            };
            let bind_ip = if cfg!(target_os = "linux") { g } else { Ipv4Addr::UNSPECIFIED };
            let addr = SocketAddr::new(IpAddr::V4(bind_ip), group.port());
            #[cfg(target_os = "linux")]
            sock.set_multicast_all_v4(false).map_err(SubscribeError::Socket)?;
            sock.bind(&addr.into()).map_err(|source| SubscribeError::Bind { addr, source })?;
            sock.join_multicast_v4(&g, &iface).map_err(|source| SubscribeError::Join {
                group: group.ip(),
                interface: IpAddr::V4(iface),
                source,
            })?;
        }
        (IpAddr::V6(g), iface) => {
            let index = match iface {
                IpAddr::V6(a) if !a.is_unspecified() => ipv6_interface_index(a)?,
                _ => 0,
            };
            sock.set_only_v6(true).map_err(SubscribeError::Socket)?;
            #[cfg(target_os = "linux")]
            sock.set_multicast_all_v6(false).map_err(SubscribeError::Socket)?;
            let addr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), group.port());
            sock.bind(&addr.into()).map_err(|source| SubscribeError::Bind { addr, source })?;
            sock.join_multicast_v6(&g, index).map_err(|source| SubscribeError::Join {
                group: group.ip(),
                interface: iface,
                source,
            })?;
        }
    }
    sock.set_nonblocking(true).map_err(SubscribeError::Socket)?;
    Ok(sock.into())
}

/// The index of the interface that holds IPv6 address `addr`, from `/proc/net/if_inet6` (Linux).
pub fn ipv6_interface_index(addr: Ipv6Addr) -> Result<u32, SubscribeError> {
    shared::netif::ipv6_index(addr).ok_or(SubscribeError::NoSuchInterface(addr))
}

/// The kinds of invalid datagram, for the summary.
#[derive(Debug, Default)]
struct Invalid {
    counts: [u64; 4],
    last: Option<(SocketAddr, String)>,
    logged: Option<Timestamp>,
}

const KINDS: [&str; 4] = ["not JSON", "other schema version", "oversized", "malformed"];

impl Invalid {
    fn record(&mut self, stats: &Stats, err: &WireError, from: SocketAddr, now: Timestamp) {
        let kind = match err {
            WireError::NotJson(_) => 0,
            WireError::Schema { .. } => 1,
            WireError::TooLarge { .. } => 2,
            _ => 3,
        };
        stats::bump([&stats.not_json, &stats.bad_schema, &stats.oversized, &stats.malformed][kind]);
        self.counts[kind] += 1;
        self.last = Some((from, err.to_string()));
        if self.logged.is_none_or(|t| now >= t + SUMMARY_EVERY) {
            self.summarise(now);
        }
    }

    fn summarise(&mut self, now: Timestamp) {
        let total: u64 = self.counts.iter().sum();
        if total == 0 {
            return;
        }
        let kinds: Vec<String> =
            self.counts.iter().zip(KINDS).filter(|(n, _)| **n > 0).map(|(n, k)| format!("{n} {k}")).collect();
        let (from, cause) = self.last.take().unwrap_or_else(|| (SocketAddr::from(([0, 0, 0, 0], 0)), String::new()));
        warn!(ignored = total, kinds = %kinds.join(", "), last_from = %from, last_error = %Printable(&cause), "ignored datagrams that are not valid p1hub messages");
        self.counts = [0; 4];
        self.logged = Some(now);
    }
}

/// Reads datagrams until `shutdown` completes or the writing thread is gone, handing valid messages to `inbox`.
pub async fn receive(
    socket: tokio::net::UdpSocket,
    inbox: Arc<Inbox>,
    clock: Arc<dyn Clock>,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    // One byte more than the largest valid datagram, so a larger one shows as too large instead of truncated.
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut invalid = Invalid::default();
    let mut summary = tokio::time::interval(Duration::from_secs(60));
    let mut full_logged: Option<Timestamp> = None;
    let mut dropped_since = 0_u64;
    loop {
        let received = tokio::select! {
            () = &mut shutdown => break,
            _ = summary.tick() => {
                if invalid.logged.is_none_or(|t| clock.now() >= t + SUMMARY_EVERY) {
                    invalid.summarise(clock.now());
                }
                continue;
            }
            r = socket.recv_from(&mut buf) => r,
        };
        let (n, from) = match received {
            Ok(x) => x,
            Err(e) => {
                // Transient (ICMP errors surfacing on the socket, memory pressure): note it and go on.
                debug!(cause = %e, "receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        stats::bump(&stats.datagrams);
        let now = clock.now();
        let item = match shared::wire::parse(&buf[..n]) {
            Ok(Message::Telegram(msg)) => {
                stats::bump(&stats.telegrams);
                Incoming::Telegram(Job::new(msg, buf[..n].to_vec(), now))
            }
            Ok(Message::Status(report)) => {
                stats::bump(&stats.statuses);
                Incoming::Status(Box::new(report))
            }
            Err(e) => {
                invalid.record(&stats, &e, from, now);
                continue;
            }
        };
        match inbox.push(item) {
            Ok(0) => {}
            Ok(dropped) => {
                dropped_since += dropped;
                if full_logged.is_none_or(|t| now >= t + SUMMARY_EVERY) {
                    warn!(
                        dropped = dropped_since,
                        limit_bytes = inbox.limit(),
                        "the memory queue is full (the disk cannot be written, or not fast enough); dropping the oldest telegrams"
                    );
                    full_logged = Some(now);
                    dropped_since = 0;
                }
            }
            Err(Closed) => {
                error!("the writing thread has stopped; no longer receiving");
                break;
            }
        }
    }
    invalid.summarise(clock.now());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_group_is_joined_on_loopback_by_index() {
        // Joining needs no route; sending on lo does, which is why no datagram is sent here.
        if std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|t| t.contains("00000000000000000000000000000001")) {
            let group: SocketAddr = "[ff15::5031]:45321".parse().expect("addr");
            socket(group, IpAddr::V6(Ipv6Addr::LOCALHOST)).expect("joined on ::1");
        }
        let err = socket("[ff15::5031]:45322".parse().expect("addr"), "2001:db8::7".parse().expect("addr"))
            .expect_err("no such interface");
        assert!(err.to_string().contains("2001:db8::7"), "{err}");
    }
}
