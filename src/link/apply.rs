//! Changing the hardware addresses of many links in one pass.
//!
//! [`apply`] works in phases so that a thousand links cost a handful of netlink round trips:
//!
//! 1. One dump reads every link; references are recorded for links without a permanent
//!    address before anything changes. [`apply_seen`] skips this phase for a caller that has
//!    both already.
//! 2. One batch sends every address change while the links keep their admin state.
//! 3. Links whose driver refused with EBUSY are cycled one by one when the caller allows it:
//!    down, set, up. The IP addresses and routes the cycle removed are added back, and those
//!    that cannot be are listed in the report.
//! 4. One dump reads every link again. An acknowledged change that the link does not show is a
//!    failure ([`LinkError::NotChanged`]) when the link still has its old address or none. A
//!    third address means another program changed it after this change ([`Outcome::Superseded`]),
//!    which is not a failure.
//! 5. One batch removes the IPv6 addresses derived from the old hardware addresses
//!    ([`super::ipv6`]).
//! 6. With [`AfterFailure::StayDown`], every link whose address could not be changed is left
//!    administratively down.
//!
//! The admin state a link had before is restored on every path, failures included, except in
//! step 6, where the caller asked for the link to stay down. The addresses to set are chosen by
//! the caller; this module validates them but never generates one.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

use super::error::{Errno, LinkError, Operation};
use super::ipv6;
use super::ops::LinkOps;
use super::redact;
use super::rtnl::{RTPROT_KERNEL, RTPROT_RA, Request, Route};
use super::state::{Baseline, ReferenceStore, References};
use super::{IpAddress, Link};
use crate::addr::MacAddr;

/// `RT_TABLE_LOCAL`: routes the kernel keeps for the host's own addresses.
const RT_TABLE_LOCAL: u32 = 255;
/// `IFA_F_STABLE_PRIVACY`: a link-local address the kernel derived from a secret (RFC 7217).
const IFA_F_STABLE_PRIVACY: u32 = 0x800;
/// `IFAPROT_KERNEL_LL`: a link-local address the kernel generated.
const IFAPROT_KERNEL_LL: u8 = 3;

/// One address change to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The link's index.
    pub index: u32,
    /// The address to set.
    pub address: MacAddr,
}

/// The treatment of a link whose address could not be changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AfterFailure {
    /// Put the link back in the admin state it had (the command line's behaviour).
    #[default]
    RestoreAdminState,
    /// Leave it administratively down, so that it cannot send with the old address (a
    /// fail-closed policy).
    StayDown,
}

/// The options of [`apply`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Whether a link whose driver refuses changes while up (EBUSY) may be taken down for the
    /// change and brought back up.
    pub cycle: bool,
    /// The treatment of a link whose address could not be changed.
    pub after_failure: AfterFailure,
}

/// The result for one link.
#[derive(Debug)]
pub enum Outcome {
    /// The link now has the requested address.
    Changed,
    /// The link already had the requested address; nothing was sent.
    Unchanged,
    /// The change was acknowledged, but the link then reported this third address, neither the
    /// old nor the requested one: another program (a udev helper, a network manager) set its
    /// own address after this change. The driver did change the address, so this is not a
    /// failure, and the caller decides whether the new address is acceptable.
    Superseded(MacAddr),
    /// The address could not be changed, or the change left something exposed.
    Failed(LinkError),
}

/// The report on one link after [`apply`].
#[derive(Debug)]
pub struct LinkReport {
    /// The link's index.
    pub index: u32,
    /// The link's name.
    pub name: String,
    /// The address before the change.
    pub old: Option<MacAddr>,
    /// The requested address.
    pub requested: MacAddr,
    /// The address read back afterwards; none when the link has no address or is gone.
    pub new: Option<MacAddr>,
    /// The result.
    pub outcome: Outcome,
    /// Whether the link was taken down and up for the change.
    pub cycled: bool,
    /// Whether the link was administratively up before.
    pub was_up: bool,
    /// Whether the link is administratively up afterwards.
    pub is_up: bool,
    /// IPv6 addresses derived from the old address that were removed.
    pub removed_ipv6: Vec<Ipv6Addr>,
    /// The link-local address derived from the new address, when it was added.
    pub added_ipv6: Vec<Ipv6Addr>,
    /// IP addresses and routes that a cycle removed and that were added back.
    pub restored: Vec<String>,
    /// IP addresses and routes that a cycle removed and that could not be added back.
    pub lost: Vec<String>,
    /// The link's permanent or reference address, which log lines redact together with the
    /// IPv6 addresses derived from it.
    pub hidden: Option<MacAddr>,
}

impl LinkReport {
    /// Returns whether the change failed.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed(_))
    }

    fn new(link: &Link, requested: MacAddr, hidden: Option<MacAddr>) -> LinkReport {
        LinkReport {
            index: link.index,
            name: link.name.clone(),
            old: link.address,
            requested,
            new: link.address,
            outcome: Outcome::Unchanged,
            cycled: false,
            was_up: link.admin_up,
            is_up: link.admin_up,
            removed_ipv6: Vec::new(),
            added_ipv6: Vec::new(),
            restored: Vec::new(),
            lost: Vec::new(),
            hidden,
        }
    }

    fn fail(&mut self, error: LinkError) {
        // The report carries the whole error to the caller. The log line names only the errno,
        // because some errors contain an IPv6 address derived from the old hardware address.
        let errno = error
            .errno()
            .map_or_else(|| String::from("no errno"), Errno::name);
        log::debug!("{}: the change failed ({errno})", self.name);
        self.outcome = Outcome::Failed(error);
    }

    /// Builds the error for this link when a socket failure left the outcome unknown.
    fn unconfirmed(&self, operation: Operation, error: &LinkError) -> LinkError {
        match error {
            LinkError::NoBuffers { operation } => LinkError::NoBuffers {
                operation: *operation,
            },
            other => LinkError::Unconfirmed {
                ifname: self.name.clone(),
                index: self.index,
                operation,
                detail: other.to_string(),
            },
        }
    }
}

/// Sets the address of each link in `changes` and reports, per change and in the same order,
/// what happened. `Err` means nothing was changed: an address is not assignable, a link is
/// listed twice, the first link dump failed, or the references could not be recorded.
pub fn apply(
    ops: &mut dyn LinkOps,
    store: &ReferenceStore,
    changes: &[Change],
    options: &ApplyOptions,
) -> Result<Vec<LinkReport>, LinkError> {
    validate(changes)?;
    let before: HashMap<u32, Link> = ops
        .links()?
        .into_iter()
        .map(|link| (link.index, link))
        .collect();
    let targets: Vec<&Link> = changes
        .iter()
        .filter_map(|change| before.get(&change.index))
        .collect();
    let references = store.record(ops.netns_key(), &targets)?;
    Ok(apply_to(ops, &before, changes, options, &references))
}

/// Does what [`apply`] does, starting from `links` as the caller last saw them (for example in
/// the kernel's notification of a new link) instead of reading them first. The caller must
/// have recorded the reference address of every link without a permanent one. A link missing
/// from `links` is reported as gone. `references` gives each report the address it must hide,
/// so that logs and reports can redact it. `Err` means nothing was changed: an address is not
/// assignable or a link is listed twice.
pub fn apply_seen(
    ops: &mut dyn LinkOps,
    links: Vec<Link>,
    references: &References,
    changes: &[Change],
    options: &ApplyOptions,
) -> Result<Vec<LinkReport>, LinkError> {
    validate(changes)?;
    let before: HashMap<u32, Link> = links.into_iter().map(|link| (link.index, link)).collect();
    Ok(apply_to(ops, &before, changes, options, references))
}

fn validate(changes: &[Change]) -> Result<(), LinkError> {
    let mut seen = std::collections::HashSet::new();
    for change in changes {
        change.address.validate_assignable()?;
        if !seen.insert(change.index) {
            return Err(LinkError::DuplicateChange {
                index: change.index,
            });
        }
    }
    Ok(())
}

/// Phases 2 to 6, from the links as they were before.
fn apply_to(
    ops: &mut dyn LinkOps,
    before: &HashMap<u32, Link>,
    changes: &[Change],
    options: &ApplyOptions,
    references: &References,
) -> Vec<LinkReport> {
    let mut reports = Vec::with_capacity(changes.len());
    let mut pending = Vec::new();
    for change in changes {
        match before.get(&change.index) {
            None => {
                let mut report = missing_report(change);
                report.fail(no_device(&format!("index {}", change.index), None, before));
                reports.push(report);
            }
            Some(link) => {
                if link.address != Some(change.address) {
                    pending.push(reports.len());
                }
                let hidden = Baseline::of(link, ops.netns_key(), references).address();
                reports.push(LinkReport::new(link, change.address, hidden));
            }
        }
    }

    let (mut acknowledged, busy) = set_live(ops, &mut reports, &pending, before, options);
    if !busy.is_empty() {
        acknowledged.extend(cycle(ops, &mut reports, &busy, before, options));
    }
    let after = read_back(ops, &mut reports, &acknowledged);
    if let Some(after) = after {
        remove_derived_ipv6(ops, &mut reports, &after);
    }
    if options.after_failure == AfterFailure::StayDown {
        take_down_failed(ops, &mut reports);
    }
    reports
}

fn missing_report(change: &Change) -> LinkReport {
    LinkReport {
        index: change.index,
        name: format!("index {}", change.index),
        old: None,
        requested: change.address,
        new: None,
        outcome: Outcome::Unchanged,
        cycled: false,
        was_up: false,
        is_up: false,
        removed_ipv6: Vec::new(),
        added_ipv6: Vec::new(),
        restored: Vec::new(),
        lost: Vec::new(),
        hidden: None,
    }
}

fn no_device(ifname: &str, index: Option<u32>, links: &HashMap<u32, Link>) -> LinkError {
    LinkError::NoDevice {
        ifname: ifname.to_string(),
        index,
        existing: names_of(links),
    }
}

/// Returns the link names in index order.
fn names_of(links: &HashMap<u32, Link>) -> Vec<String> {
    let mut existing: Vec<(u32, &str)> = links
        .values()
        .map(|link| (link.index, link.name.as_str()))
        .collect();
    existing.sort();
    existing
        .into_iter()
        .map(|(_, name)| name.to_string())
        .collect()
}

fn driver_of(links: &HashMap<u32, Link>, index: u32) -> Option<&str> {
    links.get(&index).and_then(|link| link.driver.as_deref())
}

fn errno_error(
    errno: Errno,
    operation: Operation,
    report: &LinkReport,
    address: Option<MacAddr>,
    links: &HashMap<u32, Link>,
) -> LinkError {
    if errno.0 == libc::ENODEV {
        return no_device(&report.name, Some(report.index), links);
    }
    LinkError::from_errno(
        errno,
        operation,
        &report.name,
        report.index,
        address,
        driver_of(links, report.index),
    )
}

/// Phase 2: one batch of address changes. Returns the acknowledged reports and the ones to
/// cycle.
fn set_live(
    ops: &mut dyn LinkOps,
    reports: &mut [LinkReport],
    pending: &[usize],
    before: &HashMap<u32, Link>,
    options: &ApplyOptions,
) -> (Vec<usize>, Vec<usize>) {
    let requests: Vec<Request> = pending
        .iter()
        .map(|&position| Request::SetAddress {
            index: reports[position].index,
            address: reports[position].requested,
        })
        .collect();

    let mut acknowledged = Vec::new();
    let mut busy = Vec::new();
    match ops.execute(&requests) {
        Err(err) => {
            for &position in pending {
                let error = reports[position].unconfirmed(Operation::SetAddress, &err);
                reports[position].fail(error);
            }
        }
        Ok(results) => {
            for (&position, result) in pending.iter().zip(results) {
                let report = &mut reports[position];
                match result {
                    Ok(()) => acknowledged.push(position),
                    Err(errno) if errno.0 == libc::EBUSY && options.cycle && report.was_up => {
                        log::debug!("{}: busy while up, cycling it", report.name);
                        busy.push(position);
                    }
                    // The state read before may be older than the link: another program may
                    // have raised it since.
                    Err(errno)
                        if errno.0 == libc::EBUSY
                            && options.cycle
                            && raised_since(ops, report.index) =>
                    {
                        log::debug!(
                            "{}: busy, raised since it was read; cycling it",
                            report.name
                        );
                        report.was_up = true;
                        busy.push(position);
                    }
                    Err(errno) => {
                        let error = errno_error(
                            errno,
                            Operation::SetAddress,
                            report,
                            Some(report.requested),
                            before,
                        );
                        report.fail(error);
                    }
                }
            }
        }
    }
    (acknowledged, busy)
}

/// Returns whether the link is administratively up now; false when it cannot be read.
fn raised_since(ops: &mut dyn LinkOps, index: u32) -> bool {
    ops.link(index)
        .ok()
        .flatten()
        .is_some_and(|link| link.admin_up)
}

/// Runs `requests` and returns their results, or the socket error as one error per request.
fn execute_all(
    ops: &mut dyn LinkOps,
    requests: &[Request],
) -> Result<Vec<Result<(), Errno>>, LinkError> {
    let results = ops.execute(requests)?;
    if results.len() != requests.len() {
        return Err(LinkError::Protocol {
            operation: requests
                .first()
                .map_or(Operation::SetAddress, Request::operation),
            detail: format!("{} replies to {} requests", results.len(), requests.len()),
        });
    }
    Ok(results)
}

/// Phase 3: down, set, up for each link in `busy`, then add back what the cycle removed.
/// Returns the reports whose new address was acknowledged.
fn cycle(
    ops: &mut dyn LinkOps,
    reports: &mut [LinkReport],
    busy: &[usize],
    before: &HashMap<u32, Link>,
    options: &ApplyOptions,
) -> Vec<usize> {
    // Taken once for every cycled link: a dump of the whole namespace costs about as much as
    // a filtered one.
    let snapshot = ops.ip_addresses().and_then(|ips| Ok((ips, ops.routes()?)));
    let (ips_before, routes_before) = match snapshot {
        Ok(snapshot) => snapshot,
        Err(err) => {
            for &position in busy {
                let error = reports[position].unconfirmed(Operation::ListIpAddresses, &err);
                reports[position].fail(error);
            }
            return Vec::new();
        }
    };

    let mut acknowledged = Vec::new();
    for &position in busy {
        let report = &mut reports[position];
        report.cycled = true;
        if cycle_one(ops, report, before, options) {
            acknowledged.push(position);
            restore_after_cycle(ops, report, &ips_before, &routes_before);
        }
    }
    acknowledged
}

/// Cycles one link. Returns whether the new address was set and the link is back up.
fn cycle_one(
    ops: &mut dyn LinkOps,
    report: &mut LinkReport,
    links: &HashMap<u32, Link>,
    options: &ApplyOptions,
) -> bool {
    let index = report.index;
    let down = Request::SetAdminState { index, up: false };
    let set = Request::SetAddress {
        index,
        address: report.requested,
    };
    let up = Request::SetAdminState { index, up: true };

    let results = match execute_all(ops, &[down, set]) {
        Ok(results) => results,
        Err(err) => {
            let error = report.unconfirmed(Operation::SetAddress, &err);
            report.fail(error);
            bring_back_up(ops, report, links);
            return false;
        }
    };
    if let Err(errno) = results[0] {
        let error = errno_error(errno, Operation::SetDown, report, None, links);
        report.fail(error);
        bring_back_up(ops, report, links);
        return false;
    }
    if let Err(errno) = results[1] {
        let error = errno_error(
            errno,
            Operation::SetAddress,
            report,
            Some(report.requested),
            links,
        );
        report.fail(error);
        if options.after_failure == AfterFailure::RestoreAdminState {
            bring_back_up(ops, report, links);
        } else {
            report.is_up = false;
        }
        return false;
    }

    match execute_all(ops, &[up]) {
        Ok(results) => match results[0] {
            Ok(()) => true,
            Err(errno) => {
                // macvlan checks for a conflicting address only when the link opens, so the
                // change can succeed and the link then refuse to come up (EADDRINUSE).
                let address = (errno.0 == libc::EADDRINUSE).then_some(report.requested);
                let error = errno_error(errno, Operation::SetUp, report, address, links);
                report.fail(error);
                report.is_up = false;
                if options.after_failure == AfterFailure::RestoreAdminState {
                    revert_and_bring_up(ops, report, links);
                }
                false
            }
        },
        Err(err) => {
            let error = report.unconfirmed(Operation::SetUp, &err);
            report.fail(error);
            false
        }
    }
}

/// Brings a cycled link back up after a failure; a failure here is logged, because the report
/// already contains the first error.
fn bring_back_up(ops: &mut dyn LinkOps, report: &mut LinkReport, links: &HashMap<u32, Link>) {
    let up = Request::SetAdminState {
        index: report.index,
        up: true,
    };
    match execute_all(ops, &[up]) {
        Ok(results) if results[0].is_ok() => report.is_up = true,
        Ok(results) => {
            let errno = results[0].unwrap_err();
            let error = errno_error(errno, Operation::SetUp, report, None, links);
            log::error!("{}: could not bring the link back up: {error}", report.name);
            report.is_up = false;
        }
        Err(err) => {
            log::error!("{}: could not bring the link back up: {err}", report.name);
            report.is_up = false;
        }
    }
}

/// Puts the old address back and brings the link up, after the link refused to come up with
/// the new one.
fn revert_and_bring_up(ops: &mut dyn LinkOps, report: &mut LinkReport, links: &HashMap<u32, Link>) {
    let Some(old) = report.old else {
        return;
    };
    let revert = Request::SetAddress {
        index: report.index,
        address: old,
    };
    match execute_all(ops, &[revert]) {
        Ok(results) if results[0].is_ok() => bring_back_up(ops, report, links),
        Ok(_) | Err(_) => log::error!(
            "{}: could not put the previous address back; the link stays down",
            report.name
        ),
    }
}

/// Returns whether `ip` is an address the kernel generates by itself when the link comes up, so that
/// adding it back would duplicate or resurrect it.
fn kernel_generated(ip: &IpAddress, old: Option<MacAddr>) -> bool {
    let IpAddr::V6(v6) = ip.address else {
        return false;
    };
    let derived_from_old = old.is_some_and(|old| ipv6::is_derived_from(&v6, old));
    derived_from_old
        || ip.protocol == Some(IFAPROT_KERNEL_LL)
        || (ipv6::is_link_local(&v6) && ip.flags & IFA_F_STABLE_PRIVACY != 0)
}

// NOTE: a multipath route is added back whole, as dumped; no test covers that case.
/// Returns whether a route through the cycled link is one the kernel does not recreate by itself.
fn restorable_route(route: &Route, index: u32) -> bool {
    let multicast = match route.destination {
        Some(IpAddr::V6(destination)) => destination.is_multicast(),
        Some(IpAddr::V4(destination)) => destination.is_multicast(),
        None => false,
    };
    route.oif == Some(index)
        && route.protocol != RTPROT_KERNEL
        && route.protocol != RTPROT_RA
        && route.table != RT_TABLE_LOCAL
        && !multicast
}

/// Adds back the IP addresses and routes that taking the link down removed. Addresses first,
/// because a route's gateway must be reachable through one of them.
fn restore_after_cycle(
    ops: &mut dyn LinkOps,
    report: &mut LinkReport,
    ips_before: &[IpAddress],
    routes_before: &[Route],
) {
    let now = ops.ip_addresses().and_then(|ips| Ok((ips, ops.routes()?)));
    let (ips_now, routes_now) = match now {
        Ok(now) => now,
        Err(err) => {
            report.lost.push(format!(
                "every IP address and route of the link may be lost: listing them failed ({err})"
            ));
            return;
        }
    };

    let mut address_requests = Vec::new();
    for ip in ips_before.iter().filter(|ip| ip.index == report.index) {
        let present = ips_now.iter().any(|now| {
            now.index == ip.index && now.address == ip.address && now.prefix_len == ip.prefix_len
        });
        if present || kernel_generated(ip, report.old) {
            continue;
        }
        if ip.is_permanent() {
            address_requests.push(Request::AddIp(ip.clone()));
        } else {
            // An address with a lifetime came from SLAAC or DHCP; its source renews it, and
            // adding it back by hand would make it permanent.
            report.lost.push(format!(
                "address {ip} (dynamic: its DHCP or router renews it)"
            ));
        }
    }
    let missing_routes = routes_before
        .iter()
        .filter(|route| route.oif == Some(report.index))
        .filter(|route| !routes_now.iter().any(|now| now.same_as(route)));
    let mut route_requests = Vec::new();
    for route in missing_routes {
        if restorable_route(route, report.index) {
            route_requests.push(Request::AddRoute(route.clone()));
        } else if route.protocol == RTPROT_RA {
            // The router's next advertisement adds it back; a copy added by hand would never
            // expire.
            report.lost.push(format!(
                "route {route} (from router advertisements: the next one adds it back)"
            ));
        }
    }

    for requests in [address_requests, route_requests] {
        if requests.is_empty() {
            continue;
        }
        let describe = |request: &Request| match request {
            Request::AddIp(ip) => format!("address {ip}"),
            Request::AddRoute(route) => format!("route {route}"),
            other => format!("{other:?}"),
        };
        match execute_all(ops, &requests) {
            Ok(results) => {
                for (request, result) in requests.iter().zip(results) {
                    match result {
                        Ok(()) => report.restored.push(describe(request)),
                        Err(errno) if errno.0 == libc::EEXIST => {}
                        Err(errno) => report.lost.push(format!(
                            "{} (adding it back failed: {errno})",
                            describe(request)
                        )),
                    }
                }
            }
            Err(err) => {
                for request in &requests {
                    report.lost.push(format!(
                        "{} (adding it back failed: {err})",
                        describe(request)
                    ));
                }
            }
        }
    }
    for item in &report.lost {
        log::warn!(
            "{}: the cycle removed {}",
            report.name,
            redact::text(item, report.hidden)
        );
    }
}

/// Phase 4: reads every link again, marks acknowledged changes as changed or not, and records
/// each link's address and admin state afterwards. Returns the links as read, or `None` when
/// the dump failed.
fn read_back(
    ops: &mut dyn LinkOps,
    reports: &mut [LinkReport],
    acknowledged: &[usize],
) -> Option<HashMap<u32, Link>> {
    let after: HashMap<u32, Link> = match ops.links() {
        Ok(links) => links.into_iter().map(|link| (link.index, link)).collect(),
        Err(err) => {
            for &position in acknowledged {
                let error = reports[position].unconfirmed(Operation::ListLinks, &err);
                reports[position].fail(error);
            }
            return None;
        }
    };

    for report in reports.iter_mut() {
        if let Some(link) = after.get(&report.index) {
            report.new = link.address;
            report.is_up = link.admin_up;
        }
        // A link that vanished during the run is still in the list taken before it.
        if let Outcome::Failed(LinkError::NoDevice { existing, .. }) = &mut report.outcome {
            *existing = names_of(&after);
        }
    }
    for &position in acknowledged {
        let report = &mut reports[position];
        let Some(link) = after.get(&report.index) else {
            report.new = None;
            let error = no_device(&report.name, Some(report.index), &after);
            report.fail(error);
            continue;
        };
        if link.address == Some(report.requested) {
            // Debug only: the callers report each change themselves (the command line's
            // report, the daemon's log line).
            log::debug!(
                "{}: address changed from {} to {}",
                report.name,
                report
                    .old
                    .map_or_else(|| String::from("none"), |old| old.redacted()),
                redact::mac(report.requested, report.hidden, false)
            );
            report.outcome = Outcome::Changed;
        } else if let Some(current) = link.address.filter(|current| Some(*current) != report.old) {
            // A driver that ignores the change keeps the old address. A third one was written
            // by someone else between the acknowledgement and this read.
            log::debug!(
                "{}: another program set {current} after the change to {}",
                report.name,
                report.requested
            );
            report.outcome = Outcome::Superseded(current);
        } else {
            let error = LinkError::NotChanged {
                ifname: report.name.clone(),
                index: report.index,
                requested: report.requested,
                reported: link.address,
                kept_old: link.address == report.old,
            };
            report.fail(error);
        }
    }
    Some(after)
}

/// Phase 5: removes the IPv6 addresses derived from the old hardware address of every changed
/// link, adding the new link-local address first where the kernel would have made one.
fn remove_derived_ipv6(
    ops: &mut dyn LinkOps,
    reports: &mut [LinkReport],
    after: &HashMap<u32, Link>,
) {
    let changed: Vec<usize> = reports
        .iter()
        .enumerate()
        .filter(|(_, report)| {
            let changed = matches!(report.outcome, Outcome::Changed | Outcome::Superseded(_));
            changed && report.old.is_some()
        })
        .map(|(position, _)| position)
        .collect();
    if changed.is_empty() {
        return;
    }

    let ips = match ops.ip_addresses() {
        Ok(ips) => ips,
        Err(err) => {
            for position in changed {
                let error = reports[position].unconfirmed(Operation::ListIpAddresses, &err);
                reports[position].fail(error);
            }
            return;
        }
    };

    let mut requests = Vec::new();
    let mut owners = Vec::new();
    for position in changed {
        let report = &reports[position];
        let (Some(link), Some(old), Some(new)) = (after.get(&report.index), report.old, report.new)
        else {
            continue;
        };
        let plan = ipv6::plan_cleanup(link, old, new, &ips);
        if let Some(add) = plan.add {
            requests.push(Request::AddIp(add));
            owners.push(position);
        }
        for remove in plan.remove {
            requests.push(Request::RemoveIp(remove));
            owners.push(position);
        }
    }
    if requests.is_empty() {
        return;
    }

    let results = match execute_all(ops, &requests) {
        Ok(results) => results,
        Err(err) => {
            for &position in &owners {
                if !reports[position].failed() {
                    let error = reports[position].unconfirmed(Operation::RemoveIpAddress, &err);
                    reports[position].fail(error);
                }
            }
            return;
        }
    };
    for ((request, result), position) in requests.iter().zip(results).zip(owners) {
        let report = &mut reports[position];
        match (request, result) {
            (Request::AddIp(ip), Ok(())) => report.added_ipv6.extend(v6(ip)),
            (Request::AddIp(ip), Err(errno)) if errno.0 == libc::EEXIST => {
                report.added_ipv6.extend(v6(ip));
            }
            (Request::AddIp(ip), Err(errno)) => {
                log::warn!(
                    "{}: could not add the link-local address {}: {errno}",
                    report.name,
                    redact::text(&ip.to_string(), report.hidden)
                );
                report
                    .lost
                    .push(format!("link-local address {ip} ({errno})"));
            }
            (Request::RemoveIp(ip), Ok(())) => report.removed_ipv6.extend(v6(ip)),
            // Gone already, for example after DAD failed.
            (Request::RemoveIp(ip), Err(errno)) if errno.0 == libc::EADDRNOTAVAIL => {
                report.removed_ipv6.extend(v6(ip));
            }
            (Request::RemoveIp(ip), Err(errno)) => {
                if let Some(stale) = v6(ip) {
                    let error = LinkError::StaleIpv6 {
                        ifname: report.name.clone(),
                        index: report.index,
                        ip: stale,
                        errno,
                    };
                    report.fail(error);
                }
            }
            _ => {}
        }
    }
}

fn v6(ip: &IpAddress) -> Option<Ipv6Addr> {
    match ip.address {
        IpAddr::V6(v6) => Some(v6),
        IpAddr::V4(_) => None,
    }
}

/// Phase 6: takes down every link that is up and does not have its requested address.
fn take_down_failed(ops: &mut dyn LinkOps, reports: &mut [LinkReport]) {
    let positions: Vec<usize> = reports
        .iter()
        .enumerate()
        .filter(|(_, report)| {
            let gone = matches!(report.outcome, Outcome::Failed(LinkError::NoDevice { .. }));
            report.failed() && !gone && report.is_up && report.new != Some(report.requested)
        })
        .map(|(position, _)| position)
        .collect();
    if positions.is_empty() {
        return;
    }
    let requests: Vec<Request> = positions
        .iter()
        .map(|&position| Request::SetAdminState {
            index: reports[position].index,
            up: false,
        })
        .collect();
    match execute_all(ops, &requests) {
        Ok(results) => {
            for (position, result) in positions.into_iter().zip(results) {
                let report = &mut reports[position];
                match result {
                    Ok(()) => {
                        log::warn!(
                            "{}: left down because its address could not be changed",
                            report.name
                        );
                        report.is_up = false;
                    }
                    Err(errno) => log::error!(
                        "{}: could not take the link down after the failed change: {errno}",
                        report.name
                    ),
                }
            }
        }
        Err(err) => log::error!("could not take links down after failed changes: {err}"),
    }
}
