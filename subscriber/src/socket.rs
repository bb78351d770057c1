//! The multicast socket: the one implementation every p1hub subscriber (reader, dashboard, bridge) uses.
//!
//! [`open`] binds the group's port with `SO_REUSEADDR` and `SO_REUSEPORT`, so several subscribers on one host
//! coexist, and joins the group on the configured [`Interface`]:
//! - IPv4: by the interface's address, or by index when it is given by name; on Linux the socket is bound to the
//!   group address itself, so unicast traffic to the same port is not taken for the listener's datagrams.
//! - IPv6: by index (looked up from the address or the name); bound to `[::]:PORT` (binding a link-local group
//!   address would need a scope).
//! - On Linux `IP_MULTICAST_ALL` / `IPV6_MULTICAST_ALL` are off, so only this socket's own group arrives, not the
//!   datagrams of other groups that other programs joined on the same port.
//!
//! An unspecified interface (`0.0.0.0` or `::`) means "the system's choice" in either family: an IPv4 group with
//! `::` joins on `0.0.0.0`. (The reader did that; the dashboard refused it. The configuration already accepts `::`
//! with an IPv4 group, documented as "let the system choose", so refusing it would reject a valid `p1.yml`.) A
//! *specified* address of the other family is an error ([`SocketError::WrongFamily`]): it cannot name an interface
//! for that family, and guessing would join somewhere the user did not ask for.
//!
//! An interface that is not there yet (a name the host does not have or that is down, an address no interface
//! has, `ENODEV`/`EADDRNOTAVAIL` from the join) is [`SocketError::is_absent`]: [`open_waiting`] retries those with
//! a capped backoff (logged), because on a NAS or a Pi the DHCP lease often comes after the service starts.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use shared::netif::{self, Interface};
use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The receive buffer asked of the kernel, to ride out bursts while the consumer is busy (the kernel may cap it at
/// `net.core.rmem_max`).
pub const RECV_BUFFER: usize = 4 << 20;

/// Why the subscription could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// The socket could not be created or configured.
    #[error("cannot create a UDP socket ({what}): {source}")]
    Socket {
        /// The step that failed.
        what: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The port could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The group could not be joined.
    #[error("cannot join multicast group {group} on interface {interface}: {source} (is the interface up, with multicast on?)")]
    Join {
        /// The group.
        group: IpAddr,
        /// The interface.
        interface: Interface,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// No local interface has this address (yet).
    #[error("no local interface has the address {0} (multicast.interface); use 0.0.0.0 or :: to let the system choose, or an interface name")]
    NoSuchAddress(IpAddr),
    /// This host has no interface of this name, or it is down (yet).
    #[error("no interface named {0} is up on this host (multicast.interface)")]
    NoSuchName(String),
    /// A specified interface address of the other family than the group's.
    #[error("an {family} group ({group}) cannot be joined on interface address {interface}")]
    WrongFamily {
        /// `IPv4` or `IPv6`, the group's.
        family: &'static str,
        /// The group.
        group: SocketAddr,
        /// The interface address.
        interface: IpAddr,
    },
}

impl SocketError {
    /// Whether the interface or its address is missing, which a later attempt may find (a late DHCP lease, an
    /// adapter not up yet). Other errors are permanent for this configuration.
    #[must_use]
    pub fn is_absent(&self) -> bool {
        match self {
            SocketError::NoSuchAddress(_) | SocketError::NoSuchName(_) => true,
            SocketError::Join { source, .. } => is_absent_errno(source),
            _ => false,
        }
    }
}

/// `ENODEV` (Linux, joining on an address no interface has) or `EADDRNOTAVAIL`.
fn is_absent_errno(e: &io::Error) -> bool {
    const ENODEV: i32 = 19;
    e.kind() == io::ErrorKind::AddrNotAvailable || (cfg!(target_os = "linux") && e.raw_os_error() == Some(ENODEV))
}

/// A non-blocking socket bound to `group`'s port and joined to the group on `interface`, with a receive buffer of
/// `recv_buffer` bytes (asked; the kernel may give less).
pub fn open(group: SocketAddr, interface: &Interface, recv_buffer: usize) -> Result<std::net::UdpSocket, SocketError> {
    let err = |what: &'static str| move |source| SocketError::Socket { what, source };
    let wrong_family = |family, a| SocketError::WrongFamily { family, group, interface: a };
    let domain = if group.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let sock = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(err("socket"))?;
    sock.set_reuse_address(true).map_err(err("SO_REUSEADDR"))?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))))]
    sock.set_reuse_port(true).map_err(err("SO_REUSEPORT"))?;
    if let Err(e) = sock.set_recv_buffer_size(recv_buffer) {
        debug!(cause = %e, "cannot enlarge the receive buffer");
    }
    let join_err = |source| SocketError::Join { group: group.ip(), interface: interface.clone(), source };
    match group.ip() {
        IpAddr::V4(g) => {
            let iface = v4_interface(group, interface)?;
            let bind_ip = if cfg!(target_os = "linux") { g } else { Ipv4Addr::UNSPECIFIED };
            let addr = SocketAddr::new(IpAddr::V4(bind_ip), group.port());
            #[cfg(target_os = "linux")]
            sock.set_multicast_all_v4(false).map_err(err("IP_MULTICAST_ALL"))?;
            sock.bind(&addr.into()).map_err(|source| SocketError::Bind { addr, source })?;
            match iface {
                V4If::Addr(a) => sock.join_multicast_v4(&g, &a).map_err(join_err)?,
                #[cfg(target_os = "linux")]
                V4If::Index(i) => {
                    sock.join_multicast_v4_n(&g, &socket2::InterfaceIndexOrAddress::Index(i)).map_err(join_err)?;
                }
                #[cfg(not(target_os = "linux"))]
                V4If::Index(_) => {
                    return Err(join_err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "interface names need Linux; give the interface's address",
                    )))
                }
            }
        }
        IpAddr::V6(g) => {
            let index = match interface {
                Interface::Addr(a) if a.is_unspecified() => 0,
                Interface::Addr(IpAddr::V6(a)) => {
                    netif::ipv6_index(*a).ok_or(SocketError::NoSuchAddress(IpAddr::V6(*a)))?
                }
                Interface::Addr(a) => return Err(wrong_family("IPv6", *a)),
                Interface::Name(n) => netif::index_of(n).ok_or_else(|| SocketError::NoSuchName(n.clone()))?,
            };
            sock.set_only_v6(true).map_err(err("IPV6_V6ONLY"))?;
            #[cfg(target_os = "linux")]
            sock.set_multicast_all_v6(false).map_err(err("IPV6_MULTICAST_ALL"))?;
            let addr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), group.port());
            sock.bind(&addr.into()).map_err(|source| SocketError::Bind { addr, source })?;
            sock.join_multicast_v6(&g, index).map_err(join_err)?;
        }
    }
    sock.set_nonblocking(true).map_err(err("O_NONBLOCK"))?;
    Ok(sock.into())
}

/// How an IPv4 group is joined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum V4If {
    Addr(Ipv4Addr),
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Index(u32),
}

/// The IPv4 join target for `interface`: its address, `0.0.0.0` for either unspecified address, the index of a
/// named interface; a specified IPv6 address is an error.
fn v4_interface(group: SocketAddr, interface: &Interface) -> Result<V4If, SocketError> {
    Ok(match interface {
        Interface::Addr(IpAddr::V4(a)) => V4If::Addr(*a),
        Interface::Addr(a) if a.is_unspecified() => V4If::Addr(Ipv4Addr::UNSPECIFIED),
        Interface::Addr(a) => return Err(SocketError::WrongFamily { family: "IPv4", group, interface: *a }),
        Interface::Name(n) => V4If::Index(netif::index_of(n).ok_or_else(|| SocketError::NoSuchName(n.clone()))?),
    })
}

/// Delays between attempts to join while the interface is absent: from `first`, doubling, capped at `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// The first delay.
    pub first: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Retry {
    /// 1 s, 2 s, 4 s, … up to 30 s.
    fn default() -> Retry {
        Retry { first: Duration::from_secs(1), max: Duration::from_secs(30) }
    }
}

impl Retry {
    /// The delay after failed attempt `attempt` (1-based).
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        self.first.saturating_mul(1 << doublings).min(self.max.max(self.first))
    }
}

/// Calls `attempt` until it succeeds or fails with an error that is not [`SocketError::is_absent`], sleeping
/// [`Retry::delay`] (tokio time) between tries and telling `waiting` (attempt number, error, delay) each time.
/// `None` when `cancel` fires first.
pub async fn retry<T>(
    mut attempt: impl FnMut() -> Result<T, SocketError>,
    policy: Retry,
    cancel: &CancellationToken,
    mut waiting: impl FnMut(u32, &SocketError, Duration),
) -> Option<Result<T, SocketError>> {
    let mut n: u32 = 0;
    loop {
        if cancel.is_cancelled() {
            return None;
        }
        match attempt() {
            Err(e) if e.is_absent() => {
                n = n.saturating_add(1);
                let delay = policy.delay(n);
                waiting(n, &e, delay);
                tokio::select! {
                    () = cancel.cancelled() => return None,
                    () = tokio::time::sleep(delay) => {}
                }
            }
            done => return Some(done),
        }
    }
}

/// [`open`], waiting while the interface is absent (logged at `warn` on the first attempt, then `info` with the
/// attempt count), registered with the tokio runtime. `None` when `cancel` fires first. Must be called inside a
/// tokio runtime.
pub async fn open_waiting(
    group: SocketAddr,
    interface: &Interface,
    policy: Retry,
    cancel: &CancellationToken,
) -> Option<Result<tokio::net::UdpSocket, SocketError>> {
    let opened = retry(
        || open(group, interface, RECV_BUFFER),
        policy,
        cancel,
        |n, e, delay| log_waiting(n, e, delay, group, interface),
    )
    .await?;
    Some(opened.and_then(|s| {
        tokio::net::UdpSocket::from_std(s).map_err(|source| SocketError::Socket { what: "tokio registration", source })
    }))
}

pub(crate) fn log_waiting(n: u32, e: &SocketError, delay: Duration, group: SocketAddr, interface: &Interface) {
    if n == 1 {
        warn!(cause = %e, %group, %interface, retry_in = ?delay, "the interface is not there yet; waiting for it");
    } else {
        info!(cause = %e, attempt = n, retry_in = ?delay, "still waiting for the interface");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let r = Retry::default();
        let secs: Vec<u64> = (1..=8).map(|n| r.delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(r.delay(u32::MAX), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn an_absent_interface_is_retried_until_it_appears() {
        let mut tries = 0;
        let mut told = Vec::new();
        let start = tokio::time::Instant::now();
        let result = retry(
            || {
                tries += 1;
                if tries < 4 {
                    Err(SocketError::NoSuchName("eth9".into()))
                } else {
                    Ok(tries)
                }
            },
            Retry::default(),
            &CancellationToken::new(),
            |n, e, d| told.push((n, e.to_string(), d.as_secs())),
        )
        .await;
        assert_eq!(result.expect("not cancelled").expect("joined"), 4);
        assert_eq!(told.iter().map(|t| (t.0, t.2)).collect::<Vec<_>>(), [(1, 1), (2, 2), (3, 4)]);
        assert!(told[0].1.contains("eth9"), "{}", told[0].1);
        // Paused time: the sleeps advanced the clock, nobody waited.
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_error_is_not_retried_and_cancel_ends_the_wait() {
        let mut tries = 0;
        let result = retry(
            || -> Result<(), _> {
                tries += 1;
                Err(SocketError::Bind {
                    addr: "0.0.0.0:1".parse().expect("addr"),
                    source: io::Error::from(io::ErrorKind::PermissionDenied),
                })
            },
            Retry::default(),
            &CancellationToken::new(),
            |_, _, _| panic!("a permanent error is not waited on"),
        )
        .await;
        assert!(matches!(result, Some(Err(SocketError::Bind { .. }))));
        assert_eq!(tries, 1);

        let cancel = CancellationToken::new();
        let c = cancel.clone();
        let waiting = retry(
            || -> Result<(), _> { Err(SocketError::NoSuchAddress("192.0.2.1".parse().expect("ip"))) },
            Retry::default(),
            &cancel,
            move |n, _, _| {
                if n == 3 {
                    c.cancel();
                }
            },
        )
        .await;
        assert!(waiting.is_none(), "cancelled while waiting");
    }

    #[test]
    fn absent_errors_are_told_from_permanent_ones() {
        let join = |errno| SocketError::Join {
            group: "239.1.1.1".parse().expect("ip"),
            interface: Interface::Addr("192.0.2.7".parse().expect("ip")),
            source: io::Error::from_raw_os_error(errno),
        };
        assert!(join(19).is_absent(), "ENODEV");
        assert!(join(99).is_absent(), "EADDRNOTAVAIL");
        assert!(!join(1).is_absent(), "EPERM");
        assert!(SocketError::NoSuchName("eth0".into()).is_absent());
        let wrong = SocketError::WrongFamily {
            family: "IPv4",
            group: "239.1.1.1:1".parse().expect("addr"),
            interface: "::1".parse().expect("ip"),
        };
        assert!(!wrong.is_absent());
    }

    #[test]
    fn families_unify_unspecified_falls_back_and_specified_mismatch_is_an_error() {
        // `::` with an IPv4 group: the system's choice (what the reader did), not an error (what the dashboard did).
        // (Resolved without joining: a join on 0.0.0.0 would go out on the host's real network.)
        let g: SocketAddr = "239.255.80.78:47412".parse().expect("addr");
        let any6 = Interface::Addr("::".parse().expect("ip"));
        assert_eq!(v4_interface(g, &any6).expect("system's choice"), V4If::Addr(Ipv4Addr::UNSPECIFIED));
        assert_eq!(v4_interface(g, &Interface::Name("lo".into())).expect("lo is up"), V4If::Index(1));
        let err = open("239.255.80.1:4141".parse().expect("addr"), &Interface::Addr("::1".parse().expect("ip")), 1)
            .expect_err("refused");
        assert!(matches!(err, SocketError::WrongFamily { .. }) && err.to_string().contains("::1"), "{err}");
        let err =
            open("[ff15::5031]:45323".parse().expect("addr"), &Interface::Addr("127.0.0.1".parse().expect("ip")), 1)
                .expect_err("refused");
        assert!(matches!(err, SocketError::WrongFamily { .. }), "{err}");
    }

    #[test]
    fn an_ipv6_group_is_joined_on_loopback_by_index_and_a_missing_address_is_absent() {
        // Joining needs no route; sending on lo does, which is why no datagram is sent here.
        if std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|t| t.contains("00000000000000000000000000000001")) {
            let group: SocketAddr = "[ff15::5031]:45321".parse().expect("addr");
            open(group, &Interface::Addr(IpAddr::V6(Ipv6Addr::LOCALHOST)), 1 << 16).expect("joined on ::1");
        }
        let err =
            open("[ff15::5031]:45322".parse().expect("addr"), &Interface::Addr("2001:db8::7".parse().expect("ip")), 1)
                .expect_err("no such interface");
        assert!(err.is_absent() && err.to_string().contains("2001:db8::7"), "{err}");
        let err = open("239.255.80.79:47413".parse().expect("addr"), &Interface::Name("p1hub-none".into()), 1)
            .expect_err("no such name");
        assert!(err.is_absent() && err.to_string().contains("p1hub-none"), "{err}");
    }
}
