//! IPv6 multicast (`ff15::/16`), with the outgoing interface chosen by address: the listener resolves the index of
//! the interface that owns `multicast.interface`.
//!
//! Linux does not deliver IPv6 multicast over `lo`, so the test re-runs itself in a private network namespace
//! (`unshare -n`, as root; `scripts/test` runs as root) holding a veth pair with addresses that exist only there:
//! the listener sends on `v0` (`fd00:5031::1`) and the subscriber joins on `v1`. Nothing touches the host's network.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::process::Command;

use shared::wire::{Message, PortState};
use socket2::{Domain, Protocol, Socket, Type};

use crate::support::{free_port, telegrams, within, Running};

const SETUP: &str = "ip link set lo up && ip link add v0 type veth peer name v1 && ip link set v0 up && \
                     ip link set v1 up && ip -6 addr add fd00:5031::1/64 dev v0 nodad && \
                     ip -6 addr add fd00:5031::2/64 dev v1 nodad && exec \"$0\" \"$@\"";

#[test]
fn ipv6_multicast_goes_out_on_the_interface_that_owns_the_configured_address() {
    let me = std::env::current_exe().expect("the test binary");
    let out = Command::new("unshare")
        .args(["-n", "--", "sh", "-c", SETUP])
        .arg(me)
        .args(["--exact", "ipv6::inside_the_namespace", "--ignored", "--test-threads=1"])
        .output()
        .expect("run unshare (util-linux) to make a private network namespace");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the IPv6 test in a private namespace failed (it needs root and iproute2):\n{text}");
    assert!(text.contains("1 passed"), "the inner test did not run:\n{text}");
}

/// An interface's index, from `/proc/net/if_inet6` (per namespace, unlike `/sys` here).
fn index_of(name: &str) -> u32 {
    let table = std::fs::read_to_string("/proc/net/if_inet6").expect("if_inet6");
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() == 6 && f[5] == name)
        .and_then(|f| u32::from_str_radix(f[1], 16).ok())
        .unwrap_or_else(|| panic!("no interface {name}: run through the outer test"))
}

#[test]
#[ignore = "run by ipv6_multicast_goes_out_on_the_interface_that_owns_the_configured_address, in its namespace"]
fn inside_the_namespace() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let group: Ipv6Addr = "ff15::5031".parse().expect("group");
        let port = free_port();
        let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
        s.set_reuse_address(true).expect("reuse");
        s.bind(&SocketAddr::V6(SocketAddrV6::new(group, port, 0, 0)).into()).expect("bind");
        s.join_multicast_v6(&group, index_of("v1")).expect("join on v1");
        s.set_nonblocking(true).expect("nonblocking");
        let sub = tokio::net::UdpSocket::from_std(s.into()).expect("tokio socket");

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("capture.txt");
        std::fs::write(&path, telegrams(3).concat()).expect("write");
        let mut raw = shared::config::RawConfig::default();
        raw.listener.source = format!("file:{}", path.display());
        raw.listener.replay = "max".into();
        raw.multicast.group = format!("[{group}]:{port}");
        raw.multicast.interface = "fd00:5031::1".into();
        let config = raw.validate().expect("valid");
        Running::start(config).finished().await.expect("replayed");

        let mut seqs = Vec::new();
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, from) = within(5, "an IPv6 datagram", sub.recv_from(&mut buf)).await.expect("receive");
            assert_eq!(from.ip().to_string(), "fd00:5031::1", "sent from the configured interface");
            match shared::wire::parse(&buf[..n]).expect("a datagram") {
                Message::Telegram(t) => seqs.push(t.seq),
                Message::Status(s) if s.port == PortState::Closed => break,
                Message::Status(_) => {}
            }
        }
        assert_eq!(seqs, [1, 2, 3]);
    });
}
