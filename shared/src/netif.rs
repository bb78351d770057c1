//! Finding a network interface's index from one of its IPv6 addresses.
//!
//! IPv6 multicast is sent and joined by interface *index*, while `multicast.interface` names an address. Linux
//! lists every address with its interface index in `/proc/net/if_inet6`. This module only reads that text; it
//! opens no socket.

use std::fmt::Write as _;
use std::net::Ipv6Addr;

/// The index of the interface that holds `addr`, looked up in the text of `/proc/net/if_inet6`
/// (`<32 hex digits> <index hex> <prefix> <scope> <flags> <name>` per line).
#[must_use]
pub fn ipv6_index_in(table: &str, addr: Ipv6Addr) -> Option<u32> {
    let wanted = addr.octets().iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
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
    ipv6_index_in(&std::fs::read_to_string("/proc/net/if_inet6").ok()?, addr)
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
}
