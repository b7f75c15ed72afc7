//! The facts about a link that its policy depends on: its name, kind, driver, addresses and
//! whether a device backs it in sysfs.
//!
//! The daemon fills [`LinkFacts`] from rtnetlink, and `macveil config check` from sysfs (see
//! [`super::sysfs`]). This module only defines the facts and names link kinds the way
//! NetworkManager does, so that `type:` in `match-device=` means the same in both programs.

use std::fmt;

use super::matching::MatchSubject;
use crate::addr::MacAddr;

/// A link's kind, named as NetworkManager names device types (`nmcli -f GENERAL.TYPE device`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// A wired Ethernet device.
    Ethernet,
    /// An 802.11 wireless device.
    Wifi,
    /// The loopback device.
    Loopback,
    /// A bridge.
    Bridge,
    /// A bond.
    Bond,
    /// An 802.1Q VLAN.
    Vlan,
    /// One end of a veth pair.
    Veth,
    /// A tun or tap device (NetworkManager calls both "tun").
    Tun,
    /// A macvlan or macvtap device (NetworkManager calls both "macvlan").
    Macvlan,
    /// A dummy device.
    Dummy,
    /// A WireGuard device.
    Wireguard,
    /// A VXLAN device.
    Vxlan,
    /// An ipvlan device.
    Ipvlan,
    /// An IP tunnel (gre, ipip, sit, ip6tnl, ...).
    IpTunnel,
    /// A virtual link whose kind the source of the facts could not tell.
    Generic,
    /// Any other kind, with its name.
    Other(String),
}

impl LinkKind {
    /// NetworkManager's name for the kind, which `type:` in `match-device=` compares with.
    pub fn as_str(&self) -> &str {
        match self {
            LinkKind::Ethernet => "ethernet",
            LinkKind::Wifi => "wifi",
            LinkKind::Loopback => "loopback",
            LinkKind::Bridge => "bridge",
            LinkKind::Bond => "bond",
            LinkKind::Vlan => "vlan",
            LinkKind::Veth => "veth",
            LinkKind::Tun => "tun",
            LinkKind::Macvlan => "macvlan",
            LinkKind::Dummy => "dummy",
            LinkKind::Wireguard => "wireguard",
            LinkKind::Vxlan => "vxlan",
            LinkKind::Ipvlan => "ipvlan",
            LinkKind::IpTunnel => "ip-tunnel",
            LinkKind::Generic => "generic",
            LinkKind::Other(name) => name,
        }
    }

    /// Classifies a link from what rtnetlink reports: the `IFLA_INFO_KIND` string, whether
    /// the link is wireless (nl80211 reports it, or sysfs has `phy80211`), and the link-layer
    /// type (`ARPHRD_*`).
    pub fn from_kernel(info_kind: Option<&str>, wireless: bool, link_type: u16) -> LinkKind {
        const ARPHRD_ETHER: u16 = 1;
        const ARPHRD_LOOPBACK: u16 = 772;

        if wireless {
            return LinkKind::Wifi;
        }
        if link_type == ARPHRD_LOOPBACK {
            return LinkKind::Loopback;
        }
        match info_kind {
            Some("bridge") => LinkKind::Bridge,
            Some("bond") => LinkKind::Bond,
            Some("vlan") => LinkKind::Vlan,
            Some("veth") => LinkKind::Veth,
            Some("tun") => LinkKind::Tun,
            Some("macvlan" | "macvtap") => LinkKind::Macvlan,
            Some("dummy") => LinkKind::Dummy,
            Some("wireguard") => LinkKind::Wireguard,
            Some("vxlan") => LinkKind::Vxlan,
            Some("ipvlan" | "ipvtap") => LinkKind::Ipvlan,
            Some(
                "gre" | "gretap" | "ipip" | "sit" | "ip6tnl" | "ip6gre" | "ip6gretap" | "vti"
                | "vti6",
            ) => LinkKind::IpTunnel,
            Some(other) => LinkKind::Other(other.to_string()),
            None if link_type == ARPHRD_ETHER => LinkKind::Ethernet,
            None => LinkKind::Generic,
        }
    }

    /// Whether the link takes the `wifi.*` keys rather than the `ethernet.*` ones.
    pub fn is_wifi(&self) -> bool {
        *self == LinkKind::Wifi
    }
}

impl fmt::Display for LinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The facts about one link that decide its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkFacts {
    /// The interface name.
    pub name: String,
    /// The kind of link.
    pub kind: LinkKind,
    /// The driver name (`/sys/class/net/NAME/device/driver`, or ethtool's), when known.
    pub driver: Option<String>,
    /// The driver version, when known; `driver:NAME/VERSION` matches it.
    pub driver_version: Option<String>,
    /// The permanent address or, for a link without one, the reference address the link layer
    /// keeps for it. `mac:` in `match-device=` compares with this.
    pub permanent: Option<MacAddr>,
    /// The current address; none when the link has no 6-byte hardware address or reports
    /// zero.
    pub current: Option<MacAddr>,
    /// The device behind the link in sysfs (`/sys/class/net/NAME/device`); none for virtual
    /// links.
    pub device: Option<SysfsDevice>,
}

/// The sysfs device behind a link.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SysfsDevice {
    /// The bus or class the device sits on (`pci`, `usb`, `sdio`, `virtio`, `xen`,
    /// `xen-backend`...), from the device's `subsystem` link.
    pub subsystem: Option<String>,
}

/// The subsystem of the devices behind Xen's backend interfaces (`vifDOMID.N` in a driver or
/// network domain), which stand for another domain's virtual card rather than hardware.
pub const XEN_BACKEND_SUBSYSTEM: &str = "xen-backend";

impl LinkFacts {
    /// Whether a physical device backs the link: it has a sysfs device, and that device is not
    /// a Xen backend standing for another domain's virtual card.
    pub fn is_physical(&self) -> bool {
        self.device
            .as_ref()
            .is_some_and(|device| device.subsystem.as_deref() != Some(XEN_BACKEND_SUBSYSTEM))
    }

    /// Whether the link is a Xen backend interface.
    pub fn is_xen_backend(&self) -> bool {
        self.device
            .as_ref()
            .is_some_and(|device| device.subsystem.as_deref() == Some(XEN_BACKEND_SUBSYSTEM))
    }

    /// Builds the device properties that `match-device=` compares. `hwaddr` is the permanent
    /// address, or the current one for a link without one.
    pub(crate) fn match_subject<'a>(&'a self, dhcp_plugin: &'a str) -> MatchSubject<'a> {
        MatchSubject {
            interface_name: &self.name,
            device_type: self.kind.as_str(),
            driver: self.driver.as_deref(),
            driver_version: self.driver_version.as_deref(),
            hwaddr: self.permanent.or(self.current),
            dhcp_plugin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_kinds_map_to_network_manager_names() {
        let cases = [
            (Some("veth"), false, 1, "veth"),
            (Some("bridge"), false, 1, "bridge"),
            (Some("tun"), false, 65534, "tun"),
            (Some("macvtap"), false, 1, "macvlan"),
            (Some("gre"), false, 778, "ip-tunnel"),
            (Some("batadv"), false, 1, "batadv"),
            (None, false, 1, "ethernet"),
            (None, true, 1, "wifi"),
            (None, false, 772, "loopback"),
            (None, false, 512, "generic"),
        ];
        for (info_kind, wireless, link_type, expected) in cases {
            let kind = LinkKind::from_kernel(info_kind, wireless, link_type);
            assert_eq!(
                kind.as_str(),
                expected,
                "{info_kind:?} {wireless} {link_type}"
            );
        }
    }

    #[test]
    fn xen_backend_is_not_physical() {
        let mut link = LinkFacts {
            name: "vif3.0".into(),
            kind: LinkKind::Ethernet,
            driver: Some("vif".into()),
            driver_version: None,
            permanent: None,
            current: None,
            device: Some(SysfsDevice {
                subsystem: Some(XEN_BACKEND_SUBSYSTEM.into()),
            }),
        };
        assert!(!link.is_physical());
        assert!(link.is_xen_backend());

        link.device = Some(SysfsDevice {
            subsystem: Some("pci".into()),
        });
        assert!(link.is_physical());

        link.device = None;
        assert!(!link.is_physical());
    }
}
