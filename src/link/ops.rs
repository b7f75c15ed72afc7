//! [`LinkOps`], the kernel interface the apply logic is written against, and [`LinkHandle`],
//! its implementation on a real network namespace.
//!
//! The handle joins three sources: rtnetlink for the link list and every change, ethtool ioctls
//! for the driver and permanent address, and sysfs for what only sysfs has (`addr_assign_type`,
//! the Wi-Fi phy) when the namespace is the caller's own.

use std::collections::HashMap;
use std::path::Path;

use super::error::{Errno, LinkError, Operation};
use super::ioctl::IoctlSocket;
use super::netns::Netns;
use super::rtnl::{Request, Route, Rtnl};
use super::sysfs::{SysfsLink, SysfsRoot};
use super::{ARPHRD_ETHER, AssignType, IpAddress, Link, PermanentSource};
use crate::addr::MacAddr;

/// The kernel operations that reading and changing links needs. [`LinkHandle`] implements it
/// on a real namespace; tests wrap that handle to inject failures.
pub trait LinkOps {
    /// Returns a string that identifies the namespace while the system runs, used as the key of
    /// recorded reference addresses.
    fn netns_key(&self) -> &str;

    /// Lists every link in the namespace.
    fn links(&mut self) -> Result<Vec<Link>, LinkError>;

    /// Reads one link; `Ok(None)` when no link has that index.
    fn link(&mut self, index: u32) -> Result<Option<Link>, LinkError>;

    /// Sends the requests in order and returns one result per request. `Err` means the socket
    /// failed and the outcome of the requests is unknown.
    fn execute(&mut self, requests: &[Request]) -> Result<Vec<Result<(), Errno>>, LinkError>;

    /// Lists every IPv4 and IPv6 address in the namespace.
    fn ip_addresses(&mut self) -> Result<Vec<IpAddress>, LinkError>;

    /// Lists every IPv4 and IPv6 route in the namespace.
    fn routes(&mut self) -> Result<Vec<Route>, LinkError>;
}

/// A connection to the kernel inside one network namespace.
pub struct LinkHandle {
    rtnl: Rtnl,
    ioctl: IoctlSocket,
    netns_key: String,
    /// The `class/net` directory of a sysfs that shows the namespace: `/sys` for the caller's
    /// own, a private mount for another one. None when it could not be opened or mounted.
    sysfs: Option<SysfsRoot>,
    /// Whether to read the assign type and Wi-Fi facts (see [`LinkHandle::open_for_changes`]).
    details: bool,
    /// The sysfs and ioctl results per link (index and name). Only the assign type can change
    /// while the link exists, and only with its address, so reading many links back costs few
    /// system calls.
    facts: HashMap<(u32, String), LinkFacts>,
}

/// The facts about one link that come from sysfs and ioctls.
#[derive(Default)]
struct LinkFacts {
    /// Whether the link has a sysfs directory.
    in_sysfs: bool,
    driver: Option<String>,
    permanent: Option<(MacAddr, PermanentSource)>,
    wireless: bool,
    assign_type: AssignType,
    /// The address when `assign_type` was read.
    address_seen: Option<MacAddr>,
}

impl LinkHandle {
    /// Opens the netlink and ioctl sockets inside `netns` without changing the caller's
    /// namespace, and a sysfs view of it for the facts only sysfs has.
    pub fn open(netns: &Netns) -> Result<LinkHandle, LinkError> {
        LinkHandle::open_with(netns, true)
    }

    /// Opens a handle that skips what only describes a link: the assign type stays unknown and
    /// Wi-Fi links are not recognized, and no sysfs is mounted for another namespace. Changing
    /// many links is then faster: for a thousand links the sysfs reads cost more than the
    /// changes, and releasing a private sysfs mount waits for an RCU grace period.
    pub fn open_for_changes(netns: &Netns) -> Result<LinkHandle, LinkError> {
        LinkHandle::open_with(netns, false)
    }

    fn open_with(netns: &Netns, details: bool) -> Result<LinkHandle, LinkError> {
        let callers = netns.is_callers()?;
        let opened = netns.run_inside(move || -> std::io::Result<_> {
            let rtnl = Rtnl::open()?;
            let ioctl = IoctlSocket::open()?;
            // The caller's own sysfs already shows this namespace. Elsewhere, run_inside runs
            // this on a thread of its own, which may take a mount namespace of its own.
            let sysfs = match (callers, details) {
                (true, _) => Some(SysfsRoot::open(Path::new("/sys/class/net"))),
                (false, true) => Some(SysfsRoot::mount_private()),
                (false, false) => None,
            };
            let sysfs = sysfs
                .transpose()
                .inspect_err(|err| log::debug!("no sysfs view of the namespace: {err}"))
                .ok()
                .flatten();
            Ok((rtnl, ioctl, sysfs))
        })?;
        let (rtnl, ioctl, sysfs) = opened.map_err(|error| LinkError::Socket {
            operation: Operation::ListLinks,
            error,
        })?;

        // The cookie is never reused while the system runs; the nsfs inode can be, once the
        // namespace is gone, so it is only the fallback for kernels before 5.14.
        let netns_key = match ioctl.netns_cookie() {
            Some(cookie) => format!("cookie:{cookie}"),
            None => format!("inode:{}", netns.id()?),
        };
        Ok(LinkHandle {
            rtnl,
            ioctl,
            netns_key,
            sysfs,
            details,
            facts: HashMap::new(),
        })
    }

    /// Adds what rtnetlink does not report: driver, assign type, Wi-Fi, and the permanent
    /// address from ethtool or the Wi-Fi phy.
    fn complete(&mut self, link: &mut Link) {
        let key = (link.index, link.name.clone());
        if !self.facts.contains_key(&key) {
            let facts = self.read_facts(link);
            self.facts.insert(key.clone(), facts);
        }
        let facts = self.facts.get_mut(&key).expect("inserted above");

        // The kernel changes addr_assign_type only together with the address.
        if self.details && facts.address_seen != link.address {
            let sysfs = self.sysfs.as_ref().filter(|_| facts.in_sysfs);
            if let Some(directory) = sysfs.and_then(|root| root.find(&link.name, link.index)) {
                facts.assign_type = directory.assign_type();
            }
            facts.address_seen = link.address;
        }

        link.driver = facts.driver.clone();
        link.assign_type = facts.assign_type;
        link.wireless |= facts.wireless;
        if link.permanent.is_none() {
            if let Some((permanent, source)) = facts.permanent {
                link.permanent = Some(permanent);
                link.permanent_source = Some(source);
            }
        }
    }

    /// Reads every fact once: sysfs first, then the ioctls for what sysfs lacks.
    fn read_facts(&self, link: &Link) -> LinkFacts {
        let sysfs = self
            .sysfs
            .as_ref()
            .and_then(|root| root.find(&link.name, link.index));
        let mut facts = LinkFacts {
            address_seen: link.address,
            ..LinkFacts::default()
        };

        // ETHTOOL_GDRVINFO names the bound driver of a device too, so sysfs is only the fallback.
        facts.driver = self
            .ioctl
            .driver(&link.name)
            .ok()
            .filter(|name| !name.is_empty())
            .or_else(|| sysfs.as_ref().and_then(SysfsLink::driver));
        if self.details {
            match &sysfs {
                Some(sysfs) => {
                    facts.assign_type = sysfs.assign_type();
                    facts.wireless = sysfs.is_wireless();
                }
                None if link.link_type == ARPHRD_ETHER => {
                    facts.wireless = self.ioctl.is_wireless(&link.name);
                }
                None => {}
            }
        }

        if link.permanent.is_none() {
            if let Ok(Some(permanent)) = self.ioctl.permanent_address(&link.name) {
                facts.permanent = Some((permanent, PermanentSource::Ethtool));
            } else if let Some(phy) = sysfs.as_ref().and_then(SysfsLink::phy_address) {
                facts.permanent = Some((phy, PermanentSource::WirelessPhy));
            }
        }
        facts.in_sysfs = sysfs.is_some();
        facts
    }
}

impl LinkOps for LinkHandle {
    fn netns_key(&self) -> &str {
        &self.netns_key
    }

    fn links(&mut self) -> Result<Vec<Link>, LinkError> {
        let mut links = self.rtnl.links()?;
        for link in &mut links {
            self.complete(link);
        }
        // Forget links that are gone, so that a new link reusing an index and name is read
        // afresh.
        let present: std::collections::HashSet<(u32, &str)> = links
            .iter()
            .map(|link| (link.index, link.name.as_str()))
            .collect();
        self.facts
            .retain(|(index, name), _| present.contains(&(*index, name.as_str())));
        Ok(links)
    }

    fn link(&mut self, index: u32) -> Result<Option<Link>, LinkError> {
        let mut link = self.rtnl.link(index)?;
        if let Some(link) = &mut link {
            self.complete(link);
        }
        Ok(link)
    }

    fn execute(&mut self, requests: &[Request]) -> Result<Vec<Result<(), Errno>>, LinkError> {
        self.rtnl.execute(requests)
    }

    fn ip_addresses(&mut self) -> Result<Vec<IpAddress>, LinkError> {
        self.rtnl.ip_addresses()
    }

    fn routes(&mut self) -> Result<Vec<Route>, LinkError> {
        self.rtnl.routes()
    }
}
