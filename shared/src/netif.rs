//! Network interfaces: `multicast.interface` as written ([`Interface`]: an address or a name) and the lookups that
//! turn it into what the socket calls need (an interface index), from the text Linux keeps under `/proc/net`.
//!
//! IPv6 multicast is sent and joined by interface *index*; IPv4 by address or index. `multicast.interface` names an
//! address (`192.0.2.23`, `::1`, `0.0.0.0` for the system's choice) or an interface (`eth0`), so one `p1.yml`
//! can be copied from a Pi to a NAS whose addresses differ. This module only reads files (`igmp`, `if_inet6`,
//! `fib_trie`, `dev` under `/proc/self/net`, which are per network namespace and, unlike `/proc/net`, still
//! visible under systemd's `ProcSubset=pid`); it opens no socket. Every lookup has an `_in` form over the file's
//! text, for tests.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `multicast.interface`: where to send and join.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Interface {
    /// A local address; unspecified (`0.0.0.0`, `::`) leaves the choice to the system (the default route's
    /// interface).
    Addr(IpAddr),
    /// An interface name such as `eth0` (whatever address it has, now or later).
    Name(String),
}

impl Default for Interface {
    fn default() -> Interface {
        Interface::Addr(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Interface::Addr(a) => a.fmt(f),
            Interface::Name(n) => f.write_str(n),
        }
    }
}

impl From<IpAddr> for Interface {
    fn from(a: IpAddr) -> Interface {
        Interface::Addr(a)
    }
}

impl std::str::FromStr for Interface {
    type Err = &'static str;

    /// An IP address, else a Linux interface name: 1 to 15 bytes, not `.` or `..`, without `/`, `:` or
    /// whitespace (the kernel's own rule).
    fn from_str(text: &str) -> Result<Interface, &'static str> {
        if let Ok(a) = text.parse::<IpAddr>() {
            return Ok(Interface::Addr(a));
        }
        let valid_name = (1..=15).contains(&text.len())
            && text != "."
            && text != ".."
            && !text.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
        // Something that looks like a mistyped address (`192.168.1`, `10.0.0.300`) is not taken for a name.
        let looks_numeric = text.chars().all(|c| c.is_ascii_digit() || c == '.');
        if valid_name && !looks_numeric {
            Ok(Interface::Name(text.to_owned()))
        } else {
            Err("a local IP address (0.0.0.0, 127.0.0.1, 10.0.0.2) or an interface name (eth0)")
        }
    }
}

impl Interface {
    /// Whether the system chooses (`0.0.0.0` or `::`).
    #[must_use]
    pub fn is_unspecified(&self) -> bool {
        matches!(self, Interface::Addr(a) if a.is_unspecified())
    }

    /// Whether this can serve a group of the family of `group`: a name or an unspecified address always can, an
    /// address only of the same family.
    #[must_use]
    pub fn fits(&self, group: IpAddr) -> bool {
        match self {
            Interface::Addr(a) => a.is_unspecified() || a.is_ipv4() == group.is_ipv4(),
            Interface::Name(_) => true,
        }
    }

    /// Why this interface is not usable on this host right now (it does not exist, is down, or no interface has
    /// the address), or `None` when it is (or the system chooses). A warning, not an error: the interface may
    /// come later (a late DHCP lease, a USB adapter), and the programs wait for it.
    #[must_use]
    pub fn absent_on_this_host(&self) -> Option<String> {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        match self {
            Interface::Addr(a) if a.is_unspecified() => None,
            Interface::Addr(IpAddr::V4(a)) => (!ipv4_is_local_in(&read("/proc/self/net/fib_trie"), *a))
                .then(|| format!("no interface on this host has the address {a} (yet)")),
            Interface::Addr(IpAddr::V6(a)) => {
                ipv6_index(*a).is_none().then(|| format!("no interface on this host has the address {a} (yet)"))
            }
            Interface::Name(n) => {
                if index_of(n).is_some() {
                    None
                } else if link_exists_in(&read("/proc/self/net/dev"), n) {
                    Some(format!("the interface {n} exists on this host but is down"))
                } else {
                    Some(format!("this host has no interface named {n} (yet)"))
                }
            }
        }
    }
}

/// The `--check-config` warning about `multicast.interface` on this host, if it is not usable here now. Every
/// program prints it and still exits 0: the same `p1.yml` serves several hosts, and an interface may come later.
#[must_use]
pub fn config_warning(interface: &Interface) -> Option<String> {
    interface.absent_on_this_host().map(|why| {
        format!(
            "warning: multicast.interface '{interface}': {why}; the program will wait for it (use an interface name \
             such as eth0, or 0.0.0.0, if this file is shared between hosts)"
        )
    })
}

fn hex_of(addr: Ipv6Addr) -> String {
    addr.octets().iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The index of the interface that holds `addr`, looked up in the text of `/proc/net/if_inet6`
/// (`<32 hex digits> <index hex> <prefix> <scope> <flags> <name>` per line).
#[must_use]
pub fn ipv6_index_in(table: &str, addr: Ipv6Addr) -> Option<u32> {
    let wanted = hex_of(addr);
    table.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let hex = fields.next()?;
        let index = fields.next()?;
        hex.eq_ignore_ascii_case(&wanted).then(|| u32::from_str_radix(index, 16).ok()).flatten()
    })
}

/// The index of the interface that holds `addr` on this host (`None` if no interface has it, or the system has
/// no `/proc/net/if_inet6`).
#[must_use]
pub fn ipv6_index(addr: Ipv6Addr) -> Option<u32> {
    ipv6_index_in(&std::fs::read_to_string("/proc/self/net/if_inet6").ok()?, addr)
}

/// The index of interface `name` in the text of `/proc/net/igmp` (one `<index>\t<name> : …` line per interface
/// that is up with IPv4) or of `/proc/net/if_inet6` (last field the name, second the index in hex).
#[must_use]
pub fn index_in(igmp: &str, if_inet6: &str, name: &str) -> Option<u32> {
    let from_igmp = igmp.lines().find_map(|line| {
        if line.starts_with(char::is_whitespace) {
            return None;
        }
        let (head, _) = line.split_once(':')?;
        let mut fields = head.split_whitespace();
        let index = fields.next()?.parse::<u32>().ok()?;
        (fields.next()? == name).then_some(index)
    });
    from_igmp.or_else(|| {
        if_inet6.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [_, index, _, _, _, n] if *n == name => u32::from_str_radix(index, 16).ok(),
                _ => None,
            }
        })
    })
}

/// The index of interface `name` on this host if it is up (the kernel lists it for IPv4 multicast or it has an
/// IPv6 address), `None` otherwise.
#[must_use]
pub fn index_of(name: &str) -> Option<u32> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    index_in(&read("/proc/self/net/igmp"), &read("/proc/self/net/if_inet6"), name)
}

/// Whether `addr` is a local address in the text of `/proc/net/fib_trie` (a `|-- ADDR` line followed by
/// `/32 host LOCAL`).
#[must_use]
pub fn ipv4_is_local_in(fib_trie: &str, addr: Ipv4Addr) -> bool {
    let wanted = addr.to_string();
    let mut lines = fib_trie.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim_start().strip_prefix("|-- ").is_some_and(|a| a.trim() == wanted) {
            while let Some(next) = lines.peek() {
                let next = next.trim();
                if !next.starts_with('/') {
                    break;
                }
                if next.starts_with("/32 host LOCAL") {
                    return true;
                }
                lines.next();
            }
        }
    }
    false
}

/// Whether `/proc/net/dev`'s text lists interface `name` (up or down).
#[must_use]
pub fn link_exists_in(dev: &str, name: &str) -> bool {
    dev.lines().filter_map(|l| l.split_once(':')).any(|(n, _)| n.trim() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_an_interface_by_address() {
        let table = "00000000000000000000000000000001 01 80 10 80       lo\n\
                     fe80000000000000021122fffe334455 1c 40 20 80     eth0\n\
                     fd000000000000000000000000000002 1c 40 00 82     eth0\n";
        assert_eq!(ipv6_index_in(table, Ipv6Addr::LOCALHOST), Some(1));
        assert_eq!(ipv6_index_in(table, "fe80::211:22ff:fe33:4455".parse().expect("addr")), Some(28));
        // A second address of the same interface.
        assert_eq!(ipv6_index_in(table, "fd00::2".parse().expect("addr")), Some(28));
        assert_eq!(ipv6_index_in(table, "2001:db8::1".parse().expect("addr")), None);
        assert_eq!(ipv6_index_in("garbage\n\n", Ipv6Addr::LOCALHOST), None);
    }

    #[test]
    fn finds_an_interface_by_name() {
        let igmp = "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n\
                    1\tlo        :     1      V3\n\
                    \t\t\t\t010000E0     1 0:00000000\t\t0\n\
                    4\teth0      :     1      V3\n\
                    \t\t\t\t010000E0     1 0:00000000\t\t0\n";
        let inet6 = "fe80000000000000021122fffe334455 1c 40 20 80     wlan0\n";
        assert_eq!(index_in(igmp, inet6, "lo"), Some(1));
        assert_eq!(index_in(igmp, inet6, "eth0"), Some(4));
        // Up with IPv6 only.
        assert_eq!(index_in(igmp, inet6, "wlan0"), Some(28));
        assert_eq!(index_in(igmp, inet6, "eth1"), None);
        assert_eq!(index_in(igmp, inet6, "Device"), None, "the heading is not an interface");
        assert_eq!(index_in("", "", "lo"), None);
    }

    #[test]
    fn tells_local_ipv4_addresses_from_routes() {
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n\
                    \x20    +-- 127.0.0.0/8 2 0 2\n        +-- 127.0.0.0/31 1 0 0\n           |-- 127.0.0.0\n\
                    \x20             /8 host LOCAL\n           |-- 127.0.0.1\n              /32 host LOCAL\n\
                    \x20       |-- 192.0.2.0\n              /24 link UNICAST\n           |-- 192.0.2.2\n\
                    \x20             /32 host LOCAL\n        |-- 192.0.2.255\n           /32 link BROADCAST\n";
        assert!(ipv4_is_local_in(trie, Ipv4Addr::LOCALHOST));
        assert!(ipv4_is_local_in(trie, Ipv4Addr::new(192, 0, 2, 2)));
        assert!(!ipv4_is_local_in(trie, Ipv4Addr::new(192, 0, 2, 0)), "a network, not an address");
        assert!(!ipv4_is_local_in(trie, Ipv4Addr::new(192, 0, 2, 255)), "a broadcast address");
        assert!(!ipv4_is_local_in(trie, Ipv4Addr::new(192, 168, 1, 23)));
        assert!(!ipv4_is_local_in(trie, Ipv4Addr::new(127, 0, 0, 0)), "a /8 route, not a /32 address");
    }

    #[test]
    fn lists_links_up_or_down() {
        let dev = "Inter-|   Receive\n face |bytes    packets\n    lo:       0       0\n  eth0: 1 2\n";
        assert!(link_exists_in(dev, "lo"));
        assert!(link_exists_in(dev, "eth0"));
        assert!(!link_exists_in(dev, "eth1"));
    }

    #[test]
    fn parses_addresses_and_names() {
        let parse = |s: &str| s.parse::<Interface>();
        assert_eq!(parse("0.0.0.0"), Ok(Interface::Addr(IpAddr::V4(Ipv4Addr::UNSPECIFIED))));
        assert_eq!(parse("::1"), Ok(Interface::Addr(IpAddr::V6(Ipv6Addr::LOCALHOST))));
        assert_eq!(parse("eth0"), Ok(Interface::Name("eth0".into())));
        assert_eq!(parse("enp3s0f1"), Ok(Interface::Name("enp3s0f1".into())));
        assert_eq!(parse("br-lan.10"), Ok(Interface::Name("br-lan.10".into())));
        for bad in ["", ".", "..", "a/b", "eth0:1", "has space", "sixteen-chars-xx", "192.168.1", "10.0.0.300"] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Interface::Name("eth0".into()).fits("239.1.2.3".parse().expect("ip")));
        assert!(Interface::Addr("::".parse().expect("ip")).fits("239.1.2.3".parse().expect("ip")));
        assert!(!Interface::Addr("::1".parse().expect("ip")).fits("239.1.2.3".parse().expect("ip")));
        assert_eq!(Interface::Name("eth0".into()).to_string(), "eth0");
        assert_eq!(Interface::default().to_string(), "0.0.0.0");
    }

    #[test]
    fn this_hosts_loopback_is_present_and_a_made_up_name_is_not() {
        // Read-only lookups on the running system: lo exists in every namespace (up or down).
        assert_eq!(Interface::Addr(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).absent_on_this_host(), None);
        let none = Interface::Name("p1hub-no-such".into()).absent_on_this_host().expect("absent");
        assert!(none.contains("no interface named p1hub-no-such"), "{none}");
        let addr = Interface::Addr("192.0.2.254".parse().expect("ip")).absent_on_this_host().expect("absent");
        assert!(addr.contains("192.0.2.254"), "{addr}");
        let warning = config_warning(&Interface::Name("p1hub-no-such".into())).expect("a warning");
        assert!(warning.starts_with("warning: multicast.interface 'p1hub-no-such'"), "{warning}");
        assert_eq!(config_warning(&Interface::default()), None);
    }
}
