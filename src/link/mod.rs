//! The kernel link layer: reading links, changing their hardware addresses and restoring them,
//! inside a chosen network namespace.
//!
//! - [`LinkHandle`] talks to the kernel (rtnetlink, ethtool ioctls, sysfs) in one namespace.
//! - [`LinkOps`] is the interface the apply logic uses; tests wrap the real handle to inject
//!   failures this kernel cannot produce.
//! - [`apply::apply`] changes many links at once: it sends, reads back, cycles the link when
//!   allowed, keeps the admin state, and removes IPv6 addresses derived from the old address.
//! - [`state::ReferenceStore`] records the address a link had before macveil first changed it,
//!   for links without a permanent address.
//!
//! This module never chooses an address (see [`crate::generate`]) and never prints anything;
//! the command line does both.

pub mod apply;
pub mod error;
mod ioctl;
pub mod ipv6;
mod monitor;
pub mod netns;
mod ops;
pub mod redact;
mod rtnl;
pub mod state;
mod sysfs;

#[cfg(test)]
pub(crate) mod fault;
#[cfg(test)]
pub(crate) mod testns;

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::addr::MacAddr;

pub use error::{Errno, LinkError, Operation};
pub use monitor::LinkMonitor;
pub use netns::Netns;
pub use ops::{LinkHandle, LinkOps};
pub use rtnl::{LinkEvent, Request, Route};

/// `ARPHRD_ETHER`: the link-layer type of Ethernet, Wi-Fi and most virtual links.
pub const ARPHRD_ETHER: u16 = 1;

/// `ARPHRD_LOOPBACK`.
pub const ARPHRD_LOOPBACK: u16 = 772;

/// RFC 2863 operational state (`IFLA_OPERSTATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OperState {
    /// The driver does not report a state (`IF_OPER_UNKNOWN`); common for virtual links.
    Unknown,
    /// `IF_OPER_NOTPRESENT`.
    NotPresent,
    /// `IF_OPER_DOWN`.
    Down,
    /// `IF_OPER_LOWERLAYERDOWN`: for example a macvlan whose parent is down.
    LowerLayerDown,
    /// `IF_OPER_TESTING`.
    Testing,
    /// `IF_OPER_DORMANT`: for example Wi-Fi before authentication.
    Dormant,
    /// `IF_OPER_UP`.
    Up,
}

impl fmt::Display for OperState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            OperState::Unknown => "unknown",
            OperState::NotPresent => "notpresent",
            OperState::Down => "down",
            OperState::LowerLayerDown => "lowerlayerdown",
            OperState::Testing => "testing",
            OperState::Dormant => "dormant",
            OperState::Up => "up",
        };
        f.write_str(text)
    }
}

/// The origin of the current address, as the kernel reports it (`addr_assign_type` in sysfs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AssignType {
    /// `NET_ADDR_PERM`: the address came from the hardware.
    Permanent,
    /// `NET_ADDR_RANDOM`: the kernel generated a random address.
    Random,
    /// `NET_ADDR_STOLEN`: copied from another device.
    Stolen,
    /// `NET_ADDR_SET`: set from user space (udev, NetworkManager, macveil).
    Set,
    /// Not read: the handle was opened with [`LinkHandle::open_for_changes`], no sysfs could be
    /// mounted for the namespace, or sysfs lacks the file.
    #[default]
    Unknown,
}

impl AssignType {
    /// Maps the sysfs number to the type.
    pub fn from_sysfs(value: u32) -> AssignType {
        match value {
            0 => AssignType::Permanent,
            1 => AssignType::Random,
            2 => AssignType::Stolen,
            3 => AssignType::Set,
            _ => AssignType::Unknown,
        }
    }
}

impl fmt::Display for AssignType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            AssignType::Permanent => "permanent",
            AssignType::Random => "random",
            AssignType::Stolen => "stolen",
            AssignType::Set => "set",
            AssignType::Unknown => "unknown",
        };
        f.write_str(text)
    }
}

/// The source a link's permanent address was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PermanentSource {
    /// `IFLA_PERM_ADDRESS` in the rtnetlink link message.
    Netlink,
    /// The `ETHTOOL_GPERMADDR` ioctl.
    Ethtool,
    /// The address of the Wi-Fi phy (`/sys/class/net/NAME/phy80211/macaddress`).
    WirelessPhy,
}

/// One network link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The interface index.
    pub index: u32,
    /// The interface name.
    pub name: String,
    /// `IFLA_INFO_KIND` (veth, bridge, tun, macvlan, ...); none for most physical devices.
    pub info_kind: Option<String>,
    /// Whether the link is a Wi-Fi interface; always false from a handle opened with
    /// [`LinkHandle::open_for_changes`], unless the link message carries `IFLA_WIRELESS`.
    pub wireless: bool,
    /// The link-layer type (`ARPHRD_*`).
    pub link_type: u16,
    /// The driver name, when it could be read.
    pub driver: Option<String>,
    /// `IFF_UP`: administratively up.
    pub admin_up: bool,
    /// `IFF_LOWER_UP`: the carrier is present.
    pub lower_up: bool,
    /// The operational state.
    pub operstate: OperState,
    /// The current hardware address; none when the link has no 6-byte address or reports zero.
    pub address: Option<MacAddr>,
    /// The permanent (burned-in) address; none when unknown. An all-zero value means unknown.
    pub permanent: Option<MacAddr>,
    /// The source of `permanent`.
    pub permanent_source: Option<PermanentSource>,
    /// The origin of the current address.
    pub assign_type: AssignType,
    /// `IFLA_LINK`: the index of the lower device (macvlan parent, veth peer).
    pub parent: Option<u32>,
    /// `IFLA_INET6_ADDR_GEN_MODE`: 0 when IPv6 derives the link-local address from the
    /// hardware address (EUI-64).
    pub ipv6_addr_gen_mode: Option<u8>,
}

impl Link {
    /// Returns a short name for the kind of link: the `IFLA_INFO_KIND`, "wireless", or one derived from
    /// the link-layer type.
    pub fn kind(&self) -> String {
        if self.wireless {
            return String::from("wireless");
        }
        if let Some(kind) = &self.info_kind {
            // The tun driver reports kind "tun" for both modes; a tap link carries Ethernet.
            if kind == "tun" && self.link_type == ARPHRD_ETHER {
                return String::from("tap");
            }
            return kind.clone();
        }
        match self.link_type {
            ARPHRD_ETHER => String::from("ethernet"),
            ARPHRD_LOOPBACK => String::from("loopback"),
            other => format!("link type {other}"),
        }
    }
}

/// One IP address on a link (`RTM_NEWADDR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpAddress {
    /// The link's index.
    pub index: u32,
    /// The address (`IFA_LOCAL` for IPv4, `IFA_ADDRESS` for IPv6).
    pub address: IpAddr,
    /// The prefix length.
    pub prefix_len: u8,
    /// The peer of a point-to-point address (`IFA_ADDRESS` when it differs from `IFA_LOCAL`).
    pub peer: Option<IpAddr>,
    /// The IPv4 broadcast address.
    pub broadcast: Option<IpAddr>,
    /// The IPv4 label (`IFA_LABEL`).
    pub label: Option<String>,
    /// `IFA_F_*` flags.
    pub flags: u32,
    /// The scope (`RT_SCOPE_*`: 0 universe, 253 link, 254 host).
    pub scope: u8,
    /// `IFA_PROTO`: who added it (1 loopback, 2 router advertisement, 3 kernel link-local).
    pub protocol: Option<u8>,
}

/// `IFA_F_PERMANENT`: the address has no lifetime (added by hand or generated link-local).
pub const IFA_F_PERMANENT: u32 = 0x80;

impl IpAddress {
    /// Returns whether the address has no lifetime, as opposed to one from SLAAC or DHCPv6.
    pub fn is_permanent(&self) -> bool {
        self.flags & IFA_F_PERMANENT != 0
    }
}

impl fmt::Display for IpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}
