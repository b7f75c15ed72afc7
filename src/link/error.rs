//! Errors of the link layer: one variant per failing step, each carrying the interface name,
//! index and kernel errno where there is one, and a message that names the next step.
//!
//! This module only describes failures. It does not decide whether a failure is fatal: the
//! apply logic and the command line do.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::addr::MacAddr;

/// A kernel error number as returned in a netlink error message or by a system call.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// Returns the symbolic name (`EBUSY`), or `errno N` for numbers without one here.
    pub fn name(self) -> String {
        let name = match self.0 {
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::EIO => "EIO",
            libc::ENXIO => "ENXIO",
            libc::E2BIG => "E2BIG",
            libc::EAGAIN => "EAGAIN",
            libc::ENOMEM => "ENOMEM",
            libc::EACCES => "EACCES",
            libc::EBUSY => "EBUSY",
            libc::EEXIST => "EEXIST",
            libc::ENODEV => "ENODEV",
            libc::EINVAL => "EINVAL",
            libc::ERANGE => "ERANGE",
            libc::ENETDOWN => "ENETDOWN",
            libc::ENOBUFS => "ENOBUFS",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            libc::EADDRINUSE => "EADDRINUSE",
            libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
            libc::ENETUNREACH => "ENETUNREACH",
            libc::ESRCH => "ESRCH",
            libc::EMSGSIZE => "EMSGSIZE",
            libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
            _ => return format!("errno {}", self.0),
        };
        name.to_string()
    }

    /// Returns the C library's description of the number ("Device or resource busy").
    pub fn description(self) -> String {
        let text = io::Error::from_raw_os_error(self.0).to_string();
        // std appends " (os error N)"; the symbolic name is printed separately.
        match text.rfind(" (os error") {
            Some(end) => text[..end].to_string(),
            None => text,
        }
    }

    /// Returns the errno of an I/O error, if it came from the operating system.
    pub fn from_io(err: &io::Error) -> Option<Errno> {
        err.raw_os_error().map(Errno)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name(), self.description())
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Errno({})", self.name())
    }
}

/// The kernel operation that failed, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Reading the list of links (`RTM_GETLINK` dump).
    ListLinks,
    /// Reading one link (`RTM_GETLINK`).
    GetLink,
    /// Changing the hardware address (`RTM_SETLINK` with `IFLA_ADDRESS`).
    SetAddress,
    /// Setting the link administratively up (`RTM_SETLINK` with `IFF_UP`).
    SetUp,
    /// Setting the link administratively down.
    SetDown,
    /// Reading IP addresses (`RTM_GETADDR` dump).
    ListIpAddresses,
    /// Adding an IP address (`RTM_NEWADDR`).
    AddIpAddress,
    /// Removing an IP address (`RTM_DELADDR`).
    RemoveIpAddress,
    /// Reading routes (`RTM_GETROUTE` dump).
    ListRoutes,
    /// Adding a route (`RTM_NEWROUTE`).
    AddRoute,
    /// Receiving link notifications (`RTNLGRP_LINK`).
    MonitorLinks,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Operation::ListLinks => "listing links",
            Operation::GetLink => "reading the link",
            Operation::SetAddress => "setting the hardware address",
            Operation::SetUp => "setting the link up",
            Operation::SetDown => "setting the link down",
            Operation::ListIpAddresses => "listing IP addresses",
            Operation::AddIpAddress => "adding an IP address",
            Operation::RemoveIpAddress => "removing an IP address",
            Operation::ListRoutes => "listing routes",
            Operation::AddRoute => "adding a route",
            Operation::MonitorLinks => "receiving link notifications",
        };
        f.write_str(text)
    }
}

/// A failure of the link layer.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No link has this name or index (ENODEV, or a name not in the link list).
    #[error("{ifname}: no such interface{}; interfaces here: {}", index_suffix(*.index), list_names(.ifname, .existing))]
    NoDevice {
        /// The requested name, or the name the link had when it was last seen.
        ifname: String,
        /// The index, when the link was known by index.
        index: Option<u32>,
        /// The names of the links that do exist in the namespace.
        existing: Vec<String>,
    },

    /// The caller lacks CAP_NET_ADMIN in the link's namespace (EPERM).
    #[error(
        "{ifname} (index {index}): {operation} was denied (EPERM): changing a link needs root or \
         CAP_NET_ADMIN in its network namespace; run macveil with sudo"
    )]
    PermissionDenied {
        /// The interface name.
        ifname: String,
        /// The interface index.
        index: u32,
        /// The operation that failed.
        operation: Operation,
    },

    /// The driver refuses to change the address while the link is up (EBUSY).
    #[error(
        "{ifname} (index {index}): the interface is up and its driver cannot change the address \
         while up (EBUSY); use --cycle to take it down for the change and bring it back up"
    )]
    Busy {
        /// The interface name.
        ifname: String,
        /// The interface index.
        index: u32,
    },

    /// The driver has no way to change its address (EOPNOTSUPP).
    #[error(
        "{ifname} (index {index}): driver {driver} cannot change its address (EOPNOTSUPP); this \
         link keeps the address it was created with, so remove it or leave it unused"
    )]
    NotSupported {
        /// The interface name.
        ifname: String,
        /// The interface index.
        index: u32,
        /// The driver name, or "unknown".
        driver: String,
    },

    /// Another link on the same lower device already uses the address (EADDRINUSE). The macvlan
    /// driver returns this because all macvlan links on one parent share one address table.
    #[error(
        "{ifname} (index {index}): {address} is already used by another link on the same parent \
         device (EADDRINUSE); macvlan links on one parent cannot share an address, so choose \
         another address (--random)"
    )]
    AddressInUse {
        /// The interface name.
        ifname: String,
        /// The interface index.
        index: u32,
        /// The address that was requested.
        address: MacAddr,
    },

    /// The kernel rejected the address itself (EADDRNOTAVAIL).
    #[error(
        "{ifname} (index {index}): the kernel rejected {address} as this link's address \
         (EADDRNOTAVAIL); give a unicast address such as 02:00:00:00:00:01"
    )]
    AddressNotAvailable {
        /// The interface name.
        ifname: String,
        /// The interface index.
        index: u32,
        /// The rejected address.
        address: MacAddr,
    },

    /// The netlink socket's receive buffer overflowed and replies were lost (ENOBUFS).
    #[error(
        "the kernel dropped netlink replies because the receive buffer overflowed (ENOBUFS) \
         while {operation}; the outcome of some requests is unknown, so run 'macveil show' and \
         retry with fewer interfaces at once"
    )]
    NoBuffers {
        /// The operation in progress.
        operation: Operation,
    },

    /// Any other errno from the kernel for an operation on one link.
    #[error("{ifname} (index {index}): {operation} failed ({errno})")]
    Kernel {
        /// The interface name.
        ifname: String,
        /// The interface index.
        index: u32,
        /// The operation that failed.
        operation: Operation,
        /// The kernel's error number.
        errno: Errno,
    },

    /// The driver acknowledged the new address, but the link still reports another one. Some
    /// USB Wi-Fi drivers (rtl8192eu, rtl8188eus) behave this way.
    #[error(
        "{ifname} (index {index}): the driver acknowledged {requested}, but the link {}; the \
         driver ignores address changes, so the address was not changed",
        describe_reported(.reported, *.kept_old)
    )]
    NotChanged {
        /// The interface name.
        ifname: String,
        /// The interface index.
        index: u32,
        /// The address that was requested.
        requested: MacAddr,
        /// The address the link reported afterwards.
        reported: Option<MacAddr>,
        /// Whether the reported address is the one the link had before.
        kept_old: bool,
    },

    /// After the change the kernel still lists an IPv6 address derived from the old hardware
    /// address, and it could not be removed.
    #[error(
        "{ifname} (index {index}): the address changed, but the IPv6 address {ip} derived from \
         the old hardware address could not be removed ({errno}); remove it with \
         'ip address del {ip}/64 dev {ifname}'"
    )]
    StaleIpv6 {
        /// The interface name.
        ifname: String,
        /// The interface index.
        index: u32,
        /// The IPv6 address that remains.
        ip: std::net::Ipv6Addr,
        /// The errno of the failed removal.
        errno: Errno,
    },

    /// The socket failed after a request was sent, so whether the kernel applied it is unknown.
    #[error(
        "{ifname} (index {index}): the outcome of {operation} is unknown because the netlink \
         socket failed ({detail}); check the link with 'macveil show {ifname}'"
    )]
    Unconfirmed {
        /// The interface name.
        ifname: String,
        /// The interface index.
        index: u32,
        /// The operation that failed.
        operation: Operation,
        /// The socket failure.
        detail: String,
    },

    /// One link appears twice in a list of changes.
    #[error("the link with index {index} is listed twice; give each link once")]
    DuplicateChange {
        /// The repeated index.
        index: u32,
    },

    /// The requested address cannot be a link's own address.
    #[error(transparent)]
    Address(#[from] crate::addr::AddrError),

    /// The reference state file could not be read or written.
    #[error(transparent)]
    State(#[from] super::state::StateError),

    /// A list or get request failed as a whole.
    #[error("{operation} failed ({errno})")]
    Request {
        /// The operation that failed.
        operation: Operation,
        /// The kernel's error number.
        errno: Errno,
    },

    /// The network namespace could not be opened or entered.
    #[error("cannot use network namespace {}: {error}{}", .path.display(), netns_hint(.error))]
    Netns {
        /// The namespace file.
        path: PathBuf,
        /// The failing system call's error.
        error: io::Error,
    },

    /// A socket could not be created or used.
    #[error("netlink socket failed while {operation}: {error}")]
    Socket {
        /// The operation in progress.
        operation: Operation,
        /// The system call's error.
        error: io::Error,
    },

    /// The kernel sent something this program cannot decode.
    #[error("cannot decode the kernel's netlink reply while {operation}: {detail}")]
    Protocol {
        /// The operation in progress.
        operation: Operation,
        /// The problem with the reply.
        detail: String,
    },
}

impl LinkError {
    /// Maps a kernel errno for an operation on one link to the variant that explains it.
    pub fn from_errno(
        errno: Errno,
        operation: Operation,
        ifname: &str,
        index: u32,
        requested: Option<MacAddr>,
        driver: Option<&str>,
    ) -> LinkError {
        let ifname = ifname.to_string();
        match (errno.0, requested) {
            (libc::ENODEV, _) => LinkError::NoDevice {
                ifname,
                index: Some(index),
                existing: Vec::new(),
            },
            (libc::EPERM | libc::EACCES, _) => LinkError::PermissionDenied {
                ifname,
                index,
                operation,
            },
            (libc::EBUSY, Some(_)) => LinkError::Busy { ifname, index },
            (libc::EOPNOTSUPP, Some(_)) => LinkError::NotSupported {
                ifname,
                index,
                driver: driver.unwrap_or("unknown").to_string(),
            },
            (libc::EADDRINUSE, Some(address)) => LinkError::AddressInUse {
                ifname,
                index,
                address,
            },
            (libc::EADDRNOTAVAIL, Some(address)) => LinkError::AddressNotAvailable {
                ifname,
                index,
                address,
            },
            (libc::ENOBUFS, _) => LinkError::NoBuffers { operation },
            _ => LinkError::Kernel {
                ifname,
                index,
                operation,
                errno,
            },
        }
    }

    /// Returns the kernel errno behind this error, if there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            LinkError::NoDevice { .. } => Some(Errno(libc::ENODEV)),
            LinkError::PermissionDenied { .. } => Some(Errno(libc::EPERM)),
            LinkError::Busy { .. } => Some(Errno(libc::EBUSY)),
            LinkError::NotSupported { .. } => Some(Errno(libc::EOPNOTSUPP)),
            LinkError::AddressInUse { .. } => Some(Errno(libc::EADDRINUSE)),
            LinkError::AddressNotAvailable { .. } => Some(Errno(libc::EADDRNOTAVAIL)),
            LinkError::NoBuffers { .. } => Some(Errno(libc::ENOBUFS)),
            LinkError::Kernel { errno, .. }
            | LinkError::StaleIpv6 { errno, .. }
            | LinkError::Request { errno, .. } => Some(*errno),
            LinkError::Netns { error, .. } | LinkError::Socket { error, .. } => {
                Errno::from_io(error)
            }
            LinkError::NotChanged { .. }
            | LinkError::Protocol { .. }
            | LinkError::Unconfirmed { .. }
            | LinkError::DuplicateChange { .. }
            | LinkError::Address(_)
            | LinkError::State(_) => None,
        }
    }
}

fn index_suffix(index: Option<u32>) -> String {
    match index {
        Some(index) => format!(" (index {index})"),
        None => String::new(),
    }
}

/// The number of existing names a "no such interface" message lists at most.
const LISTED_NAMES_MAX: usize = 20;

/// Lists `names` for a message about the missing `requested`. Beyond [`LISTED_NAMES_MAX`] names,
/// only the most similar ones are listed, so that a namespace with hundreds of links does not
/// produce a message of several kilobytes.
fn list_names(requested: &str, names: &[String]) -> String {
    if names.is_empty() {
        return String::from("none");
    }
    if names.len() <= LISTED_NAMES_MAX {
        return names.join(", ");
    }

    // Jaro-Winkler favours a shared beginning, which is how interface names are related
    // (eth0 and eth1, veth12 and veth13). The sort is stable, so equally similar names keep
    // their order.
    let mut ranked: Vec<&String> = names.iter().collect();
    ranked.sort_by(|a, b| {
        let similarity_a = strsim::jaro_winkler(requested, a);
        let similarity_b = strsim::jaro_winkler(requested, b);
        similarity_b.total_cmp(&similarity_a)
    });
    let closest: Vec<&str> = ranked[..LISTED_NAMES_MAX]
        .iter()
        .map(|name| name.as_str())
        .collect();
    format!(
        "{} and {} more (the {LISTED_NAMES_MAX} most similar names are listed; 'macveil show' \
         lists them all)",
        closest.join(", "),
        names.len() - LISTED_NAMES_MAX
    )
}

fn describe_reported(reported: &Option<MacAddr>, kept_old: bool) -> String {
    match reported {
        // The old address may be the permanent one, which messages do not print.
        _ if kept_old => String::from("still has its previous address"),
        Some(address) => format!("reports {address} instead"),
        None => String::from("reports no address"),
    }
}

fn netns_hint(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::ENOENT) => "; list the named namespaces with 'ip netns list'",
        // SAFETY: geteuid takes no arguments and only returns the effective user id.
        Some(libc::EPERM | libc::EACCES) if unsafe { libc::geteuid() } == 0 => {
            "; root may not enter it from here: it belongs to a user namespace (a container's, \
             or the host's seen from a container) where this process lacks CAP_SYS_ADMIN"
        }
        Some(libc::EPERM | libc::EACCES) => {
            "; entering a network namespace needs root (CAP_SYS_ADMIN), so run macveil with sudo"
        }
        Some(libc::EINVAL) => "; the file is not a network namespace",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> MacAddr {
        "02:00:00:00:00:01".parse().unwrap()
    }

    #[test]
    fn errno_names_common_numbers() {
        assert_eq!(Errno(libc::EBUSY).name(), "EBUSY");
        assert_eq!(Errno(9999).name(), "errno 9999");
        assert!(!Errno(libc::EBUSY).description().contains("os error"));
    }

    #[test]
    fn each_errno_has_its_message() {
        let cases = [
            (libc::EPERM, "CAP_NET_ADMIN"),
            (libc::EBUSY, "--cycle"),
            (libc::EOPNOTSUPP, "driver ifb cannot change its address"),
            (libc::EADDRINUSE, "cannot share an address"),
            (libc::EADDRNOTAVAIL, "EADDRNOTAVAIL"),
            (libc::ENOBUFS, "ENOBUFS"),
            (libc::ENODEV, "no such interface"),
            (libc::EIO, "EIO"),
        ];
        for (errno, expected) in cases {
            let err = LinkError::from_errno(
                Errno(errno),
                Operation::SetAddress,
                "eth9",
                7,
                Some(addr()),
                Some("ifb"),
            );
            let message = err.to_string();
            assert!(message.contains(expected), "{errno}: {message}");
            assert_eq!(err.errno(), Some(Errno(errno)), "{message}");
        }
    }

    #[test]
    fn no_device_lists_existing_names() {
        let err = LinkError::NoDevice {
            ifname: "eht0".into(),
            index: None,
            existing: vec!["lo".into(), "eth0".into()],
        };
        assert_eq!(
            err.to_string(),
            "eht0: no such interface; interfaces here: lo, eth0"
        );
    }

    #[test]
    fn no_device_lists_at_most_20_names() {
        let existing: Vec<String> = (0..600).map(|i| format!("veth{i}")).collect();
        let err = LinkError::NoDevice {
            ifname: "veth12x".into(),
            index: None,
            existing,
        };
        let message = err.to_string();

        assert!(message.len() < 400, "{} bytes: {message}", message.len());
        assert!(
            message.starts_with("veth12x: no such interface"),
            "{message}"
        );
        assert!(message.contains("and 580 more"), "{message}");
        assert!(
            message.contains("'macveil show' lists them all"),
            "{message}"
        );
        let listed = message
            .split("interfaces here: ")
            .nth(1)
            .and_then(|rest| rest.split(" and ").next())
            .unwrap();
        let names: Vec<&str> = listed.split(", ").collect();
        assert_eq!(names.len(), 20, "{message}");
        assert_eq!(names[0], "veth12", "{message}");
        assert!(names.contains(&"veth120"), "{message}");
        assert!(!names.contains(&"veth599"), "{message}");
    }
}
