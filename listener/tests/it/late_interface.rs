//! Issue 14 item 15: a listener whose `multicast.interface` is not there yet (a late DHCP lease, an adapter that
//! comes up later) keeps running and starts sending once it appears, instead of exiting.
//!
//! The test re-runs itself in a private network namespace (`unshare -n`, as root), where it adds the interface
//! (a veth pair named `p1late0`) or the address (on `lo`) only after the listener started. Nothing touches the
//! host's network.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::Command;

use shared::wire::Message;
use socket2::{Domain, Protocol, Socket, Type};

use crate::support::{config, free_port, within, Running};

fn in_own_namespace(name: &str) -> bool {
    if std::env::var_os("P1HUB_LISTENER_NETNS").is_some() {
        ip(&["link", "set", "lo", "up"]);
        return true;
    }
    let out = Command::new("unshare")
        .arg("-n")
        .arg(std::env::current_exe().expect("the test binary"))
        .args(["--exact", name, "--test-threads=1"])
        .env("P1HUB_LISTENER_NETNS", "1")
        .output()
        .expect("run unshare (util-linux) to make a private network namespace");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{name} failed in its private namespace (it needs root and iproute2):\n{text}");
    assert!(text.contains("1 passed"), "the inner test did not run:\n{text}");
    false
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip (iproute2) runs");
    assert!(status.success(), "ip {args:?} failed");
}

/// Joins `group` on the interface with address `on`.
fn join(group: SocketAddrV4, on: Ipv4Addr) -> tokio::net::UdpSocket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    s.set_reuse_address(true).expect("reuse");
    s.bind(&SocketAddr::V4(group).into()).expect("bind the group");
    s.join_multicast_v4(group.ip(), &on).expect("join");
    s.set_nonblocking(true).expect("nonblocking");
    tokio::net::UdpSocket::from_std(s.into()).expect("tokio socket")
}

/// Starts the listener on `interface` (absent now), with its raw TCP server as a sign that `run` got past
/// setting up multicast; returns once that server answers.
async fn start_waiting(group: SocketAddrV4, interface: &str) -> Running {
    let raw_port = free_port();
    let running = Running::start(config("simulate", group, |raw| {
        raw.multicast.interface = interface.into();
        raw.multicast.ttl = 0;
        raw.listener.raw_tcp = Some(format!("127.0.0.1:{raw_port}"));
    }));
    within(10, "the listener to start although its interface is missing", async {
        while tokio::net::TcpStream::connect(("127.0.0.1", raw_port)).await.is_err() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    running
}

/// The next datagram, parsed.
async fn datagram(socket: &tokio::net::UdpSocket) -> Message {
    let mut buf = vec![0u8; 65_536];
    let n = within(20, "a datagram once the interface is there", socket.recv(&mut buf)).await.expect("receive");
    shared::wire::parse(&buf[..n]).expect("a p1hub datagram")
}

#[test]
fn a_listener_waits_for_an_interface_named_before_it_exists() {
    if !in_own_namespace("late_interface::a_listener_waits_for_an_interface_named_before_it_exists") {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let group = SocketAddrV4::new(Ipv4Addr::new(239, 255, 77, 1), free_port());
        let running = start_waiting(group, "p1late0").await;
        // It runs, and only now the interface comes: a veth pair, up, with an address.
        ip(&["link", "add", "p1late0", "type", "veth", "peer", "name", "p1late1"]);
        ip(&["addr", "add", "10.80.0.1/24", "dev", "p1late0"]);
        ip(&["link", "set", "p1late1", "up"]);
        ip(&["link", "set", "p1late0", "up"]);
        let sub = join(group, Ipv4Addr::new(10, 80, 0, 1));
        // Sent out of p1late0 (SO_BINDTODEVICE), looped back to the member on p1late0.
        let first = datagram(&sub).await;
        assert!(matches!(first, Message::Telegram(_) | Message::Status(_)));
        running.stop().await;
    });
}

#[test]
fn a_listener_waits_for_an_address_that_comes_later() {
    if !in_own_namespace("late_interface::a_listener_waits_for_an_address_that_comes_later") {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let group = SocketAddrV4::new(Ipv4Addr::new(239, 255, 77, 2), free_port());
        let running = start_waiting(group, "10.81.0.1").await;
        // The DHCP lease arrives: the address, on lo.
        ip(&["addr", "add", "10.81.0.1/32", "dev", "lo"]);
        let sub = join(group, Ipv4Addr::new(10, 81, 0, 1));
        assert!(matches!(datagram(&sub).await, Message::Telegram(_) | Message::Status(_)));
        running.stop().await;
    });
}
