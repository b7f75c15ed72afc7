//! [`LinkOps`], the kernel interface the apply logic is written against, and [`LinkHandle`],
//! its implementation on a real network namespace.
//!
//! The handle joins three sources: rtnetlink for the link list and every change, ethtool ioctls
//! for the driver and permanent address, and sysfs for what only sysfs has (`addr_assign_type`,
//! the Wi-Fi phy) when the namespace is the caller's own.

use std::collections::HashMap;
use std::path::PathBuf;

use super::error::{Errno, LinkError, Operation};
use super::ioctl::IoctlSocket;
use super::netns::Netns;
use super::rtnl::{Request, Route, Rtnl};
use super::sysfs::SysfsLink;
use super::{ARPHRD_ETHER, IpAddress, Link, PermanentSource};

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
    sysfs_root: Option<PathBuf>,
    /// The ioctl results per link (index and name). They do not change while the link exists,
    /// so reading many links back costs no further system calls.
    ioctl_facts: HashMap<(u32, String), IoctlFacts>,
}

/// The facts about one link that come from ioctls.
#[derive(Debug, Clone, Default)]
struct IoctlFacts {
    driver: Option<String>,
    permanent: Option<crate::addr::MacAddr>,
    wireless: bool,
}

impl LinkHandle {
    /// Opens the netlink and ioctl sockets inside `netns` without changing the caller's
    /// namespace.
    pub fn open(netns: &Netns) -> Result<LinkHandle, LinkError> {
        let sockets = netns.run_inside(|| -> std::io::Result<(Rtnl, IoctlSocket)> {
            Ok((Rtnl::open()?, IoctlSocket::open()?))
        })?;
        let (rtnl, ioctl) = sockets.map_err(|error| LinkError::Socket {
            operation: Operation::ListLinks,
            error,
        })?;

        // The cookie is never reused while the system runs; the nsfs inode can be, once the
        // namespace is gone, so it is only the fallback for kernels before 5.14.
        let netns_key = match ioctl.netns_cookie() {
            Some(cookie) => format!("cookie:{cookie}"),
            None => format!("inode:{}", netns.id()?),
        };
        let sysfs_root = netns.is_callers()?.then(|| PathBuf::from("/sys/class/net"));
        Ok(LinkHandle {
            rtnl,
            ioctl,
            netns_key,
            sysfs_root,
            ioctl_facts: HashMap::new(),
        })
    }

    /// Adds what rtnetlink does not report: driver, assign type, Wi-Fi, and the permanent
    /// address from ethtool or the Wi-Fi phy.
    fn complete(&mut self, link: &mut Link) {
        let sysfs = self
            .sysfs_root
            .as_deref()
            .and_then(|root| SysfsLink::find(root, &link.name, link.index));
        // NOTE: in another namespace sysfs is not used, so `addr_assign_type` stays unknown and
        // a Wi-Fi link's phy address is not read; a private mount namespace with its own sysfs
        // mount would provide both.
        if let Some(sysfs) = &sysfs {
            link.driver = sysfs.driver();
            link.assign_type = sysfs.assign_type();
            link.wireless |= sysfs.is_wireless();
        }

        let key = (link.index, link.name.clone());
        let facts = match self.ioctl_facts.get(&key) {
            Some(facts) => facts.clone(),
            None => {
                let facts = self.read_ioctl_facts(link, sysfs.is_some());
                self.ioctl_facts.insert(key, facts.clone());
                facts
            }
        };
        link.wireless |= facts.wireless;
        if link.driver.is_none() {
            link.driver = facts.driver;
        }
        if link.permanent.is_none() {
            if let Some(permanent) = facts.permanent {
                link.permanent = Some(permanent);
                link.permanent_source = Some(PermanentSource::Ethtool);
            }
        }
        if link.permanent.is_none() {
            if let Some(phy) = sysfs.as_ref().and_then(SysfsLink::phy_address) {
                link.permanent = Some(phy);
                link.permanent_source = Some(PermanentSource::WirelessPhy);
            }
        }
    }

    fn read_ioctl_facts(&self, link: &Link, has_sysfs: bool) -> IoctlFacts {
        // sysfs already shows whether a link in the caller's namespace is Wi-Fi.
        let wireless =
            !has_sysfs && link.link_type == ARPHRD_ETHER && self.ioctl.is_wireless(&link.name);
        let driver = self
            .ioctl
            .driver(&link.name)
            .ok()
            .filter(|name| !name.is_empty());
        let permanent = match link.permanent {
            Some(_) => None,
            None => self.ioctl.permanent_address(&link.name).ok().flatten(),
        };
        IoctlFacts {
            driver,
            permanent,
            wireless,
        }
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
        self.ioctl_facts
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
