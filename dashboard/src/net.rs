//! The multicast subscription: one UDP socket joined to the configured group on the configured interface.
//!
//! `SO_REUSEADDR` (and `SO_REUSEPORT` where it exists) lets a dashboard, a reader and more dashboards share the
//! port on one host. On Linux the socket binds to the group address itself, so unicast traffic to the same port is
//! not mistaken for the listener's datagrams.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// Why the dashboard could not subscribe.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// A socket call failed.
    #[error("{what} for {group} on {interface}: {source}")]
    Socket {
        /// The step that failed.
        what: &'static str,
        /// The group.
        group: SocketAddr,
        /// The interface address.
        interface: IpAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// No interface has the configured IPv6 address.
    #[error("no network interface has the address {0} (needed to join an IPv6 group)")]
    NoSuchInterface(Ipv6Addr),
}

/// Opens a non-blocking UDP socket joined to `group` on the interface with address `interface` (unspecified: the
/// system's choice). Must be called inside a tokio runtime.
pub fn subscribe(group: SocketAddr, interface: IpAddr) -> Result<tokio::net::UdpSocket, SubscribeError> {
    let err = |what: &'static str| move |source| SubscribeError::Socket { what, group, interface, source };
    let domain = if group.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(err("creating the socket"))?;
    socket.set_reuse_address(true).map_err(err("setting SO_REUSEADDR"))?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))))]
    socket.set_reuse_port(true).map_err(err("setting SO_REUSEPORT"))?;
    // Headroom for bursts: a few hundred telegrams while the terminal is busy redrawing.
    let _ = socket.set_recv_buffer_size(1 << 20);
    let bind_ip = if cfg!(target_os = "linux") {
        group.ip()
    } else if group.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    match (group.ip(), interface) {
        (IpAddr::V4(g), IpAddr::V4(i)) => {
            socket.bind(&SocketAddr::new(bind_ip, group.port()).into()).map_err(err("binding"))?;
            socket.join_multicast_v4(&g, &i).map_err(err("joining the group"))?;
        }
        (IpAddr::V6(g), i) => {
            socket.set_only_v6(true).map_err(err("setting IPV6_V6ONLY"))?;
            let index = match i {
                IpAddr::V6(a) if !a.is_unspecified() => interface_index(a)?,
                _ => 0,
            };
            socket.bind(&SocketAddr::new(bind_ip, group.port()).into()).map_err(err("binding"))?;
            socket.join_multicast_v6(&g, index).map_err(err("joining the group"))?;
        }
        (IpAddr::V4(_), IpAddr::V6(_)) => {
            return Err(SubscribeError::Socket {
                what: "matching address families",
                group,
                interface,
                source: io::Error::new(io::ErrorKind::InvalidInput, "an IPv4 group needs an IPv4 interface address"),
            })
        }
    }
    socket.set_nonblocking(true).map_err(err("setting non-blocking mode"))?;
    tokio::net::UdpSocket::from_std(socket.into()).map_err(err("registering with the runtime"))
}

/// The index of the interface that has IPv6 address `addr` (IPv6 joins name an interface by index, not address).
fn interface_index(addr: Ipv6Addr) -> Result<u32, SubscribeError> {
    shared::netif::ipv6_index(addr).ok_or(SubscribeError::NoSuchInterface(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn receives_multicast_sent_on_loopback() {
        let group: SocketAddr = "239.255.80.77:47411".parse().expect("addr");
        let socket = subscribe(group, IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("subscribe");
        let sender = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
        sender.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).expect("IP_MULTICAST_IF");
        sender.set_multicast_loop_v4(true).expect("loop");
        sender.send_to(b"hello", &group.into()).expect("send");
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), socket.recv(&mut buf))
            .await
            .expect("a datagram within 5 s")
            .expect("recv");
        assert_eq!(&buf[..n], b"hello");
    }

    #[tokio::test]
    async fn mismatched_families_are_an_error() {
        let err =
            subscribe("239.255.80.1:4141".parse().expect("addr"), "::1".parse().expect("ip")).expect_err("refused");
        assert!(err.to_string().contains("IPv4 group"), "{err}");
    }
}
