//! A [`LinkOps`] wrapper for tests that makes a real namespace behave in ways this kernel's
//! virtual links never do. It can make a driver reject changes while up (EBUSY), acknowledge a
//! change and keep its address, lose a link between two requests, let another program change
//! the address right after a change, or report a permanent address. Everything else goes to the
//! real kernel.
//!
//! Compiled only for tests, so the shipped binary cannot reach it.

use std::collections::HashMap;

use super::error::{Errno, LinkError};
use super::ops::LinkOps;
use super::rtnl::{Request, Route};
use super::{IpAddress, Link, PermanentSource};
use crate::addr::MacAddr;

/// A behaviour injected for one link.
pub enum Fault {
    /// `SetAddress` fails with EBUSY while the link is administratively up.
    BusyWhileUp,
    /// `SetAddress` is acknowledged but never reaches the kernel.
    IgnoreAddress,
    /// The closure runs before the first `SetAddress` reaches the kernel; tests use it to
    /// delete the link.
    BeforeSet(Box<dyn FnMut()>),
    /// A closure run after the first `SetAddress` reached the kernel. Tests use it to act as
    /// another program that sets its own address at the same time.
    AfterSet(Box<dyn FnMut()>),
    /// The link reports this permanent address.
    Permanent(MacAddr),
}

/// The real handle with injected faults, keyed by link index.
pub struct FaultyLinks<'a> {
    inner: &'a mut dyn LinkOps,
    faults: HashMap<u32, Vec<Fault>>,
    /// Every request that reached the kernel, in order.
    pub forwarded: Vec<Request>,
}

impl<'a> FaultyLinks<'a> {
    /// Wraps `inner` without any fault.
    pub fn new(inner: &'a mut dyn LinkOps) -> FaultyLinks<'a> {
        FaultyLinks {
            inner,
            faults: HashMap::new(),
            forwarded: Vec::new(),
        }
    }

    /// Adds a fault for the link with `index`.
    pub fn inject(&mut self, index: u32, fault: Fault) -> &mut Self {
        self.faults.entry(index).or_default().push(fault);
        self
    }

    fn patch(&self, link: &mut Link) {
        for fault in self.faults.get(&link.index).into_iter().flatten() {
            if let Fault::Permanent(address) = fault {
                link.permanent = Some(*address);
                link.permanent_source = Some(PermanentSource::Netlink);
            }
        }
    }

    fn execute_one(&mut self, request: &Request) -> Result<Result<(), Errno>, LinkError> {
        if let Request::SetAddress { index, .. } = request {
            let index = *index;
            let mut busy = false;
            let mut ignore = false;
            for fault in self.faults.get_mut(&index).into_iter().flatten() {
                match fault {
                    Fault::BusyWhileUp => busy = true,
                    Fault::IgnoreAddress => ignore = true,
                    Fault::BeforeSet(hook) => hook(),
                    Fault::AfterSet(_) | Fault::Permanent(_) => {}
                }
            }
            // A hook runs once: the link it removed does not come back.
            if let Some(faults) = self.faults.get_mut(&index) {
                faults.retain(|fault| !matches!(fault, Fault::BeforeSet(_)));
            }
            if busy && self.inner.link(index)?.is_some_and(|link| link.admin_up) {
                return Ok(Err(Errno(libc::EBUSY)));
            }
            if ignore {
                return Ok(Ok(()));
            }
        }
        self.forwarded.push(request.clone());
        let mut results = self.inner.execute(std::slice::from_ref(request))?;
        if let Request::SetAddress { index, .. } = request {
            if let Some(faults) = self.faults.get_mut(index) {
                for fault in faults.iter_mut() {
                    if let Fault::AfterSet(hook) = fault {
                        hook();
                    }
                }
                faults.retain(|fault| !matches!(fault, Fault::AfterSet(_)));
            }
        }
        Ok(results.remove(0))
    }
}

impl LinkOps for FaultyLinks<'_> {
    fn netns_key(&self) -> &str {
        self.inner.netns_key()
    }

    fn links(&mut self) -> Result<Vec<Link>, LinkError> {
        let mut links = self.inner.links()?;
        for link in &mut links {
            self.patch(link);
        }
        Ok(links)
    }

    fn link(&mut self, index: u32) -> Result<Option<Link>, LinkError> {
        let mut link = self.inner.link(index)?;
        if let Some(link) = &mut link {
            self.patch(link);
        }
        Ok(link)
    }

    /// Sends the requests one at a time, so that each fault acts on the state the earlier
    /// requests of the same batch left.
    fn execute(&mut self, requests: &[Request]) -> Result<Vec<Result<(), Errno>>, LinkError> {
        requests
            .iter()
            .map(|request| self.execute_one(request))
            .collect()
    }

    fn ip_addresses(&mut self) -> Result<Vec<IpAddress>, LinkError> {
        self.inner.ip_addresses()
    }

    fn routes(&mut self) -> Result<Vec<Route>, LinkError> {
        self.inner.routes()
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::process::Command;

    use super::*;
    use crate::link::apply::{AfterFailure, ApplyOptions, Change, LinkReport, Outcome, apply};
    use crate::link::state::{Baseline, ReferenceStore, Verdict};
    use crate::link::testns::TestNetns;
    use crate::link::{LinkHandle, ipv6};

    const NEW: &str = "02:5e:00:00:00:01";

    fn mac(text: &str) -> MacAddr {
        text.parse().unwrap()
    }

    struct Lab {
        ns: TestNetns,
        handle: LinkHandle,
        state: tempfile::TempDir,
    }

    /// Creates a namespace with the veth pair mv0/mv1, both up, and opens a handle in it.
    fn lab(test: &str) -> Option<Lab> {
        let ns = TestNetns::create(test)?;
        ns.ip(&["link", "add", "mv0", "type", "veth", "peer", "name", "mv1"]);
        ns.ip(&["link", "set", "mv0", "up"]);
        ns.ip(&["link", "set", "mv1", "up"]);
        let handle = LinkHandle::open(&ns.netns()).unwrap();
        Some(Lab {
            ns,
            handle,
            state: tempfile::tempdir().unwrap(),
        })
    }

    impl Lab {
        fn link(&mut self, name: &str) -> Link {
            self.handle
                .links()
                .unwrap()
                .into_iter()
                .find(|link| link.name == name)
                .unwrap_or_else(|| panic!("{name} exists"))
        }

        fn store(&self) -> ReferenceStore {
            ReferenceStore::new(self.state.path())
        }
    }

    fn only(reports: Vec<LinkReport>) -> LinkReport {
        assert_eq!(reports.len(), 1, "{reports:?}");
        reports.into_iter().next().unwrap()
    }

    #[test]
    fn busy_without_cycle_fails_and_keeps_link_up() {
        let Some(mut lab) = lab("busy_without_cycle_fails_and_keeps_link_up") else {
            return;
        };
        let before = lab.link("mv0");
        let store = lab.store();
        let mut faulty = FaultyLinks::new(&mut lab.handle);
        faulty.inject(before.index, Fault::BusyWhileUp);
        let change = Change {
            index: before.index,
            address: mac(NEW),
        };
        let report = only(apply(&mut faulty, &store, &[change], &ApplyOptions::default()).unwrap());

        let Outcome::Failed(error) = &report.outcome else {
            panic!("expected a failure: {report:?}");
        };
        assert!(matches!(error, LinkError::Busy { .. }), "{error}");
        assert!(error.to_string().contains("--cycle"), "{error}");
        let after = lab.link("mv0");
        assert_eq!(after.address, before.address);
        assert!(after.admin_up);
    }

    #[test]
    fn cycle_restores_addresses_and_routes() {
        let Some(mut lab) = lab("cycle_restores_addresses_and_routes") else {
            return;
        };
        lab.ns.ip(&["address", "add", "192.0.2.1/24", "dev", "mv0"]);
        lab.ns
            .ip(&["address", "add", "2001:db8::1/64", "dev", "mv0", "nodad"]);
        lab.ns.ip(&[
            "route",
            "add",
            "198.51.100.0/24",
            "via",
            "192.0.2.254",
            "dev",
            "mv0",
        ]);
        lab.ns.ip(&[
            "route",
            "add",
            "2001:db8:1::/48",
            "via",
            "2001:db8::fe",
            "dev",
            "mv0",
        ]);
        let before = lab.link("mv0");
        let old = before.address.unwrap();
        let store = lab.store();

        let mut faulty = FaultyLinks::new(&mut lab.handle);
        faulty.inject(before.index, Fault::BusyWhileUp);
        let options = ApplyOptions {
            cycle: true,
            after_failure: AfterFailure::RestoreAdminState,
        };
        let change = Change {
            index: before.index,
            address: mac(NEW),
        };
        let report = only(apply(&mut faulty, &store, &[change], &options).unwrap());

        assert!(matches!(report.outcome, Outcome::Changed), "{report:?}");
        assert!(report.cycled);
        assert!(report.is_up);
        assert!(report.lost.is_empty(), "lost: {:?}", report.lost);
        for expected in [
            "address 2001:db8::1/64",
            "route 198.51.100.0/24 via 192.0.2.254",
            "route 2001:db8:1::/48 via 2001:db8::fe",
        ] {
            assert!(
                report.restored.iter().any(|item| item == expected),
                "{expected} not in {:?}",
                report.restored
            );
        }

        let after = lab.link("mv0");
        assert_eq!(after.address, Some(mac(NEW)));
        assert!(after.admin_up);
        let ips = lab.handle.ip_addresses().unwrap();
        let on_link: Vec<IpAddr> = ips
            .iter()
            .filter(|ip| ip.index == after.index)
            .map(|ip| ip.address)
            .collect();
        assert!(
            on_link.contains(&"192.0.2.1".parse().unwrap()),
            "{on_link:?}"
        );
        assert!(
            on_link.contains(&"2001:db8::1".parse().unwrap()),
            "{on_link:?}"
        );
        for ip in &on_link {
            if let IpAddr::V6(v6) = ip {
                assert!(
                    !ipv6::is_derived_from(v6, old),
                    "{v6} derives from the old address"
                );
            }
        }
        let routes = lab.handle.routes().unwrap();
        let shown: Vec<String> = routes.iter().map(ToString::to_string).collect();
        assert!(
            shown
                .iter()
                .any(|route| route == "198.51.100.0/24 via 192.0.2.254"),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|route| route == "2001:db8:1::/48 via 2001:db8::fe"),
            "{shown:?}"
        );
    }

    #[test]
    fn busy_link_that_is_down_changes_without_cycle() {
        let Some(mut lab) = lab("busy_link_that_is_down_changes_without_cycle") else {
            return;
        };
        lab.ns.ip(&["link", "set", "mv0", "down"]);
        let before = lab.link("mv0");
        let store = lab.store();
        let mut faulty = FaultyLinks::new(&mut lab.handle);
        faulty.inject(before.index, Fault::BusyWhileUp);
        let change = Change {
            index: before.index,
            address: mac(NEW),
        };
        let report = only(apply(&mut faulty, &store, &[change], &ApplyOptions::default()).unwrap());
        assert!(matches!(report.outcome, Outcome::Changed), "{report:?}");
        assert!(!report.cycled);
        assert!(!lab.link("mv0").admin_up);
    }

    #[test]
    fn acknowledged_but_unchanged_is_failure() {
        let Some(mut lab) = lab("acknowledged_but_unchanged_is_failure") else {
            return;
        };
        let before = lab.link("mv0");
        let store = lab.store();
        let mut faulty = FaultyLinks::new(&mut lab.handle);
        faulty.inject(before.index, Fault::IgnoreAddress);
        let change = Change {
            index: before.index,
            address: mac(NEW),
        };
        let report = only(apply(&mut faulty, &store, &[change], &ApplyOptions::default()).unwrap());

        let Outcome::Failed(error) = &report.outcome else {
            panic!("expected a failure: {report:?}");
        };
        assert!(
            matches!(error, LinkError::NotChanged { kept_old: true, .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains("still has its previous address"),
            "{message}"
        );
        let old = before.address.unwrap().to_string();
        assert!(
            !message.contains(&old),
            "the old address is printed: {message}"
        );
        assert!(report.is_up, "the link should stay up");
        assert!(lab.link("mv0").admin_up);
    }

    #[test]
    fn stay_down_after_failure_leaves_link_down() {
        let Some(mut lab) = lab("stay_down_after_failure_leaves_link_down") else {
            return;
        };
        let before = lab.link("mv0");
        let store = lab.store();
        let mut faulty = FaultyLinks::new(&mut lab.handle);
        faulty.inject(before.index, Fault::IgnoreAddress);
        let options = ApplyOptions {
            cycle: true,
            after_failure: AfterFailure::StayDown,
        };
        let change = Change {
            index: before.index,
            address: mac(NEW),
        };
        let report = only(apply(&mut faulty, &store, &[change], &options).unwrap());
        assert!(report.failed());
        assert!(!report.is_up);
        assert!(!lab.link("mv0").admin_up);
    }

    #[test]
    fn concurrent_third_address_is_not_failure() {
        let Some(mut lab) = lab("concurrent_third_address_is_not_failure") else {
            return;
        };
        let before = lab.link("mv0");
        let store = lab.store();
        let other = mac("02:5e:00:00:00:02");
        let netns = lab.ns.name.clone();
        let mut faulty = FaultyLinks::new(&mut lab.handle);
        faulty.inject(
            before.index,
            Fault::AfterSet(Box::new(move || {
                let status = Command::new("ip")
                    .args(["-n", &netns, "link", "set", "mv0", "address"])
                    .arg(other.to_string())
                    .status()
                    .unwrap();
                assert!(status.success(), "ip link set address failed");
            })),
        );
        let options = ApplyOptions {
            cycle: true,
            after_failure: AfterFailure::StayDown,
        };
        let change = Change {
            index: before.index,
            address: mac(NEW),
        };
        let report = only(apply(&mut faulty, &store, &[change], &options).unwrap());

        assert!(
            matches!(report.outcome, Outcome::Superseded(address) if address == other),
            "{report:?}"
        );
        assert!(!report.failed());
        assert_eq!(report.new, Some(other));
        assert!(
            report.is_up,
            "a superseded change must not take the link down"
        );
        assert!(lab.link("mv0").admin_up);
    }

    #[test]
    fn stay_down_when_cycle_cannot_set() {
        let Some(mut lab) = lab("stay_down_when_cycle_cannot_set") else {
            return;
        };
        let before = lab.link("mv0");
        let store = lab.store();
        // Busy while up makes apply cycle; the ignored set then fails the read-back.
        let mut faulty = FaultyLinks::new(&mut lab.handle);
        faulty.inject(before.index, Fault::BusyWhileUp);
        faulty.inject(before.index, Fault::IgnoreAddress);
        let options = ApplyOptions {
            cycle: true,
            after_failure: AfterFailure::StayDown,
        };
        let change = Change {
            index: before.index,
            address: mac(NEW),
        };
        let report = only(apply(&mut faulty, &store, &[change], &options).unwrap());
        assert!(report.failed(), "{report:?}");
        assert!(report.cycled);
        assert!(!lab.link("mv0").admin_up);

        let Some(mut lab) = self::lab("stay_down_when_cycle_cannot_set restore") else {
            return;
        };
        let before = lab.link("mv0");
        let store = lab.store();
        let mut faulty = FaultyLinks::new(&mut lab.handle);
        faulty.inject(before.index, Fault::BusyWhileUp);
        faulty.inject(before.index, Fault::IgnoreAddress);
        let options = ApplyOptions {
            cycle: true,
            after_failure: AfterFailure::RestoreAdminState,
        };
        let report = only(apply(&mut faulty, &store, &[change], &options).unwrap());
        assert!(report.failed(), "{report:?}");
        assert!(
            lab.link("mv0").admin_up,
            "the previous admin state was not restored"
        );
    }

    #[test]
    fn link_removed_between_requests_is_reported() {
        let Some(mut lab) = lab("link_removed_between_requests_is_reported") else {
            return;
        };
        let before = lab.link("mv0");
        let store = lab.store();
        let netns = lab.ns.name.clone();
        let mut faulty = FaultyLinks::new(&mut lab.handle);
        faulty.inject(
            before.index,
            Fault::BeforeSet(Box::new(move || {
                let status = Command::new("ip")
                    .args(["-n", &netns, "link", "del", "mv0"])
                    .status()
                    .unwrap();
                assert!(status.success());
            })),
        );
        let change = Change {
            index: before.index,
            address: mac(NEW),
        };
        let report = only(apply(&mut faulty, &store, &[change], &ApplyOptions::default()).unwrap());
        let Outcome::Failed(error) = &report.outcome else {
            panic!("expected a failure: {report:?}");
        };
        assert!(matches!(error, LinkError::NoDevice { .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains("mv0: no such interface"), "{message}");
        assert!(message.ends_with("interfaces here: lo"), "{message}");
    }

    #[test]
    fn permanent_address_is_the_baseline() {
        let Some(mut lab) = lab("permanent_address_is_the_baseline") else {
            return;
        };
        let before = lab.link("mv0");
        let permanent = mac("3c:22:fb:01:02:03");
        let store = lab.store();
        let key = lab.handle.netns_key().to_string();
        let mut faulty = FaultyLinks::new(&mut lab.handle);
        faulty.inject(before.index, Fault::Permanent(permanent));

        let link = faulty.link(before.index).unwrap().unwrap();
        let references = store.record(&key, &[&link]).unwrap();
        assert_eq!(
            references.get(&key, &link),
            None,
            "a permanent link was recorded"
        );
        let baseline = Baseline::of(&link, &key, &references);
        assert_eq!(baseline, Baseline::Permanent(permanent));
        assert_eq!(baseline.verdict(link.address), Verdict::Anonymized);

        // Restoring sets the permanent address, and the verdict turns to exposed.
        let change = Change {
            index: before.index,
            address: permanent,
        };
        let report = only(apply(&mut faulty, &store, &[change], &ApplyOptions::default()).unwrap());
        assert!(matches!(report.outcome, Outcome::Changed), "{report:?}");
        let link = faulty.link(before.index).unwrap().unwrap();
        assert_eq!(baseline.verdict(link.address), Verdict::Exposed);
    }
}
