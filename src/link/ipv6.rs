//! IPv6 addresses derived from a hardware address (modified EUI-64, RFC 4291 appendix A), and
//! the plan that removes them after the hardware address changes.
//!
//! When a link's address changes while it is up, Linux keeps every IPv6 address it had already
//! derived from the old one, both the `fe80::` link-local address and SLAAC global addresses,
//! because addrconf does not handle `NETDEV_CHANGEADDR` (seen on Linux 6.18). Those addresses
//! carry the old hardware address onto the network, so they are removed. When a link-local one
//! was among them, the link gets the one derived from the new address, which the kernel itself
//! would have generated had the link come up with it. Global addresses come back with the next
//! router advertisement.
//!
//! This module only computes; [`super::apply`] sends the requests.

use std::net::{IpAddr, Ipv6Addr};

use super::{IpAddress, Link};
use crate::addr::MacAddr;

/// `IN6_ADDR_GEN_MODE_EUI64`: link-local addresses are derived from the hardware address.
pub const ADDR_GEN_MODE_EUI64: u8 = 0;

/// `RT_SCOPE_LINK`.
const SCOPE_LINK: u8 = 253;

/// Returns the modified EUI-64 interface identifier of `mac`, which is the address with the U/L
/// bit flipped and `ff:fe` inserted in the middle.
pub fn interface_id(mac: MacAddr) -> [u8; 8] {
    let o = mac.octets();
    [o[0] ^ 0x02, o[1], o[2], 0xff, 0xfe, o[3], o[4], o[5]]
}

/// Returns whether the last 64 bits of `ip` are the EUI-64 interface identifier of `mac`.
pub fn is_derived_from(ip: &Ipv6Addr, mac: MacAddr) -> bool {
    ip.octets()[8..] == interface_id(mac)
}

/// Returns the link-local address `fe80::/64` plus the EUI-64 identifier of `mac`.
pub fn link_local(mac: MacAddr) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets[0] = 0xfe;
    octets[1] = 0x80;
    octets[8..].copy_from_slice(&interface_id(mac));
    Ipv6Addr::from(octets)
}

/// Returns whether `ip` is in `fe80::/10`.
pub fn is_link_local(ip: &Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

/// The IPv6 addresses to add and remove on one link after its hardware address changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanupPlan {
    /// The link-local address derived from the new hardware address, when the kernel would
    /// have generated one and it is missing. Added before the removals so that the `fe80::/64`
    /// prefix route, which the kernel removes with the last address of its prefix, stays.
    pub add: Option<IpAddress>,
    /// Every IPv6 address on the link derived from the old hardware address.
    pub remove: Vec<IpAddress>,
}

impl CleanupPlan {
    /// Returns whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.add.is_none() && self.remove.is_empty()
    }
}

/// Plans the cleanup for `link`, whose hardware address changed from `old` to `new`, given
/// every IP address in its namespace.
pub fn plan_cleanup(
    link: &Link,
    old: MacAddr,
    new: MacAddr,
    addresses: &[IpAddress],
) -> CleanupPlan {
    let on_link = || {
        addresses
            .iter()
            .filter(move |ip| ip.index == link.index)
            .filter_map(|ip| match ip.address {
                IpAddr::V6(v6) => Some((ip, v6)),
                IpAddr::V4(_) => None,
            })
    };

    let remove: Vec<IpAddress> = on_link()
        .filter(|(_, v6)| is_derived_from(v6, old))
        .map(|(ip, _)| ip.clone())
        .collect();
    let removes_link_local = remove.iter().any(|ip| match ip.address {
        IpAddr::V6(v6) => is_link_local(&v6),
        IpAddr::V4(_) => false,
    });

    let new_link_local = link_local(new);
    let has_new_link_local = on_link().any(|(_, v6)| v6 == new_link_local);
    let derives_from_hardware = link
        .ipv6_addr_gen_mode
        .is_none_or(|mode| mode == ADDR_GEN_MODE_EUI64);
    let add = (removes_link_local && link.admin_up && derives_from_hardware && !has_new_link_local)
        .then_some(IpAddress {
            index: link.index,
            address: IpAddr::V6(new_link_local),
            prefix_len: 64,
            peer: None,
            broadcast: None,
            label: None,
            flags: 0,
            scope: SCOPE_LINK,
            protocol: None,
        });

    CleanupPlan { add, remove }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{AssignType, OperState};

    fn mac(text: &str) -> MacAddr {
        text.parse().unwrap()
    }

    fn link(index: u32) -> Link {
        Link {
            index,
            name: format!("veth{index}"),
            info_kind: Some("veth".into()),
            wireless: false,
            link_type: 1,
            driver: None,
            admin_up: true,
            lower_up: true,
            operstate: OperState::Up,
            address: None,
            permanent: None,
            permanent_source: None,
            assign_type: AssignType::Unknown,
            parent: None,
            ipv6_addr_gen_mode: Some(0),
        }
    }

    fn ip(index: u32, text: &str) -> IpAddress {
        IpAddress {
            index,
            address: text.parse().unwrap(),
            prefix_len: 64,
            peer: None,
            broadcast: None,
            label: None,
            flags: 0x80,
            scope: 0,
            protocol: None,
        }
    }

    #[test]
    fn eui64_matches_kernel_derivation() {
        // The kernel derived fe80::6040:3aff:fe98:21aa from 62:40:3a:98:21:aa.
        let address = mac("62:40:3a:98:21:aa");
        assert_eq!(
            link_local(address),
            "fe80::6040:3aff:fe98:21aa".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            link_local(mac("02:11:22:33:44:55")),
            "fe80::11:22ff:fe33:4455".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn link_local_range() {
        assert!(is_link_local(&"fe80::1".parse().unwrap()));
        assert!(is_link_local(&"febf::1".parse().unwrap()));
        assert!(!is_link_local(&"fec0::1".parse().unwrap()));
        assert!(!is_link_local(&"2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn cleanup_removes_old_and_adds_new_link_local() {
        let old = mac("62:40:3a:98:21:aa");
        let new = mac("02:11:22:33:44:55");
        let addresses = vec![
            ip(4, "fe80::6040:3aff:fe98:21aa"),
            ip(4, "2001:db8::6040:3aff:fe98:21aa"),
            ip(4, "2001:db8::1"),
            ip(5, "fe80::6040:3aff:fe98:21aa"),
            ip(4, "192.0.2.1"),
        ];
        let plan = plan_cleanup(&link(4), old, new, &addresses);
        let removed: Vec<String> = plan
            .remove
            .iter()
            .map(|ip| ip.address.to_string())
            .collect();
        assert_eq!(
            removed,
            ["fe80::6040:3aff:fe98:21aa", "2001:db8::6040:3aff:fe98:21aa"]
        );
        let added = plan.add.expect("a new link-local address");
        assert_eq!(added.address.to_string(), "fe80::11:22ff:fe33:4455");
        assert_eq!(added.index, 4);
        assert_eq!(added.scope, SCOPE_LINK);
    }

    #[test]
    fn cleanup_on_down_link_adds_nothing() {
        let addresses = vec![ip(4, "fe80::6040:3aff:fe98:21aa")];
        let mut down = link(4);
        down.admin_up = false;
        let plan = plan_cleanup(
            &down,
            mac("62:40:3a:98:21:aa"),
            mac("02:11:22:33:44:55"),
            &addresses,
        );
        assert_eq!(plan.remove.len(), 1);
        assert_eq!(plan.add, None);
    }

    #[test]
    fn cleanup_without_eui64_mode_adds_nothing() {
        let addresses = vec![ip(4, "fe80::6040:3aff:fe98:21aa")];
        let mut stable_privacy = link(4);
        stable_privacy.ipv6_addr_gen_mode = Some(2);
        let plan = plan_cleanup(
            &stable_privacy,
            mac("62:40:3a:98:21:aa"),
            mac("02:11:22:33:44:55"),
            &addresses,
        );
        assert_eq!(plan.remove.len(), 1);
        assert_eq!(plan.add, None);
    }

    #[test]
    fn cleanup_is_empty_without_derived_addresses() {
        let plan = plan_cleanup(
            &link(4),
            mac("62:40:3a:98:21:aa"),
            mac("02:11:22:33:44:55"),
            &[ip(4, "fe80::1234"), ip(4, "fe80::11:22ff:fe33:4455")],
        );
        assert!(plan.is_empty(), "{plan:?}");
    }
}
