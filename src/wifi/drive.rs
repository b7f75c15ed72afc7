//! Connecting a Wi-Fi link with an address that macveil chose: macveil drives the connection
//! instead of reacting to the supplicant's own attempt.
//!
//! Reacting is too late. wpa_supplicant announces its attempt (`SME: Trying to authenticate with
//! BSSID (SSID=...)`) in the same step in which it sends the authentication frame, so a program
//! that reacts to the message changes the address after the frame has gone out. So [`connect`]
//! works in this order:
//!
//! 1. Check that the supplicant will not change the interface address itself (`mac_addr`,
//!    `preassoc_mac_addr` and the network's `mac_addr` are all 0, or -1 for the network).
//!    wpa_supplicant 2.10 remembers that it changed the address once, and from then on every
//!    association with `mac_addr=0` first puts back the address the interface had when the
//!    supplicant started (`wpa_drv_set_mac_addr(wpa_s, NULL)` in `wpa_supplicant_associate()`),
//!    which would undo macveil's address. Nothing is changed when this check fails.
//! 2. `DISCONNECT`: the supplicant leaves the current network and makes no attempt of its own
//!    until a network is selected again.
//! 3. Take the link down, set the address, read it back. If the address cannot be set, the link
//!    stays down and the supplicant stays disconnected, so nothing is sent with the old address.
//! 4. Bring the link up and wait until the supplicant reports the new address.
//! 5. `SELECT_NETWORK ID`, then wait for `CTRL-EVENT-CONNECTED`. `SELECT_NETWORK` disables the
//!    other networks, so the supplicant cannot move to another network, which would need another
//!    address, on its own. Reconnections to the same network keep the address.
//! 6. Check that the supplicant and the link both still have the address. If not, something
//!    replaced it during the association: disconnect and leave the link down.
//!
//! This module neither chooses the address ([`super::address`] does) nor prints anything.

use std::time::{Duration, Instant};

use super::ctrl::CtrlError;
use super::supplicant::{NetworkEntry, SupplicantOps};
use crate::addr::MacAddr;
use crate::generate::stable_id::escape_ssid;
use crate::link::apply::{self, AfterFailure, ApplyOptions, Change, Outcome};
use crate::link::state::ReferenceStore;
use crate::link::{LinkError, LinkOps, Operation, Request};

/// How often the supplicant's status is read while waiting for it to see a change.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Maximum time for the supplicant to notice that the link is up again and to read its new
/// address. It reacts to the kernel's link notification within milliseconds.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// The link a connection is made on, as the driving logic needs it.
pub trait Radio {
    /// Returns the interface name.
    fn ifname(&self) -> &str;
    /// Reads the link's admin state and addresses.
    fn read(&mut self) -> Result<RadioState, LinkError>;
    /// Sets the link administratively up or down.
    fn set_admin_state(&mut self, up: bool) -> Result<(), LinkError>;
    /// Sets the address of the link, which is down, and reads it back. On failure the link is
    /// left down.
    fn set_address(&mut self, address: MacAddr) -> Result<(), LinkError>;
}

/// The facts about the link that the driving logic needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RadioState {
    /// Whether the link is administratively up.
    pub admin_up: bool,
    /// The current address.
    pub address: Option<MacAddr>,
}

/// The request to [`connect`].
#[derive(Debug, Clone)]
pub struct ConnectPlan {
    /// The supplicant's id of the network.
    pub network_id: u32,
    /// The network's SSID, for messages.
    pub ssid: Vec<u8>,
    /// The address to connect with; `None` keeps the current one (`preserve`).
    pub address: Option<MacAddr>,
    /// Maximum time from `SELECT_NETWORK` to `CTRL-EVENT-CONNECTED`.
    pub timeout: Duration,
    /// Give up at the first `CTRL-EVENT-NETWORK-NOT-FOUND` instead of waiting for the
    /// timeout, for a caller that chooses another network then. The supplicant's scan did not
    /// find the network, which scan results kept from earlier scans may still have shown.
    pub stop_at_not_found: bool,
}

/// The result of a successful [`connect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectReport {
    /// The supplicant's id of the network.
    pub network_id: u32,
    /// The address before.
    pub previous: Option<MacAddr>,
    /// The address the connection uses.
    pub address: MacAddr,
    /// Whether the address was changed.
    pub changed: bool,
    /// The access point, as the supplicant reports it.
    pub bssid: Option<MacAddr>,
    /// Time from the start to the verified connection.
    pub elapsed: Duration,
}

/// A failure to connect. Each variant's message names the state the link and the supplicant
/// are left in.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// A request to the supplicant failed.
    #[error("{ifname}: {step} failed: {source}")]
    Control {
        /// The interface.
        ifname: String,
        /// The step, for example "reading mac_addr".
        step: &'static str,
        /// The cause.
        #[source]
        source: CtrlError,
    },

    /// The supplicant would change the interface address itself.
    #[error(
        "{ifname}: wpa_supplicant is set to change the interface address itself ({setting}={value}). \
         Once it has done so, it puts back the address it started with before each association \
         with mac_addr=0, which would undo macveil's address. Set mac_addr=0 and \
         preassoc_mac_addr=0 in its configuration (and remove mac_addr from the network block), \
         restart wpa_supplicant, and keep scans private with 'macveil wifi scan-privacy {ifname} \
         on'. Nothing was changed"
    )]
    SupplicantRandomizes {
        /// The interface.
        ifname: String,
        /// The setting, for example `preassoc_mac_addr` or `network 0 mac_addr`.
        setting: String,
        /// Its value.
        value: String,
    },

    /// No configured network has the SSID.
    #[error(
        "{ifname}: wpa_supplicant has no network with SSID '{ssid}' (configured: {}); add it to \
         its configuration first. Nothing was changed",
        list_or_none(.configured)
    )]
    NetworkNotConfigured {
        /// The interface.
        ifname: String,
        /// The requested SSID, escaped.
        ssid: String,
        /// The configured SSIDs, escaped.
        configured: Vec<String>,
    },

    /// Several networks have the SSID.
    #[error(
        "{ifname}: wpa_supplicant has several networks with SSID '{ssid}' (ids {}); choose one \
         with --network ID. Nothing was changed",
        .ids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
    )]
    AmbiguousSsid {
        /// The interface.
        ifname: String,
        /// The SSID, escaped.
        ssid: String,
        /// The ids of the networks that have it.
        ids: Vec<u32>,
    },

    /// No configured network has the id.
    #[error("{ifname}: wpa_supplicant has no network with id {id} (configured: {}). Nothing was changed", list_or_none(.configured))]
    UnknownNetworkId {
        /// The interface.
        ifname: String,
        /// The requested id.
        id: u32,
        /// The configured networks as `ID (SSID)`.
        configured: Vec<String>,
    },

    /// The link could not be read, taken down or brought up.
    #[error(
        "{ifname}: {source}; wpa_supplicant is disconnected, so select a network again after fixing this"
    )]
    Link {
        /// The interface.
        ifname: String,
        /// The cause.
        #[source]
        source: LinkError,
    },

    /// The address could not be set; the link is down.
    #[error(
        "{ifname}: could not set the address {address}: {source}. The radio stays down and \
         wpa_supplicant stays disconnected, so nothing is sent with the old address; fix the \
         cause and connect again"
    )]
    SetAddress {
        /// The interface.
        ifname: String,
        /// The address that was to be set.
        address: MacAddr,
        /// The cause.
        #[source]
        source: LinkError,
    },

    /// The supplicant did not take up the link again.
    #[error(
        "{ifname}: wpa_supplicant did not report the new address {expected} within {} s (state \
         {state}); it stays disconnected, so check its log",
        READY_TIMEOUT.as_secs()
    )]
    SupplicantNotReady {
        /// The interface.
        ifname: String,
        /// The address expected in its status.
        expected: MacAddr,
        /// Its last `wpa_state`.
        state: String,
    },

    /// The connection was not complete in time; the supplicant keeps trying with the address.
    #[error(
        "{ifname}: not connected to '{ssid}' within {} s{}; wpa_supplicant keeps trying with \
         {address}",
        timeout.as_secs(),
        last_event.as_ref().map_or_else(String::new, |event| format!(" (last event: {event})"))
    )]
    NotConnected {
        /// The interface.
        ifname: String,
        /// The SSID, escaped.
        ssid: String,
        /// The address in use.
        address: MacAddr,
        /// The time waited.
        timeout: Duration,
        /// The last event that explains the delay, if any.
        last_event: Option<String>,
    },

    /// Another program changed the address during the connection.
    #[error(
        "{ifname}: the address changed to {found} during the connection instead of staying \
         {expected}; wpa_supplicant was disconnected and the radio is left down. Check that \
         nothing else (NetworkManager, a wpa_supplicant mac_addr setting) changes the address"
    )]
    AddressReplaced {
        /// The interface.
        ifname: String,
        /// The address macveil set.
        expected: MacAddr,
        /// The address found, redacted because it may be the permanent one.
        found: String,
    },
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        String::from("none")
    } else {
        items.join(", ")
    }
}

/// Returns the id of the one configured network with `ssid`.
pub fn find_network(
    ifname: &str,
    networks: &[NetworkEntry],
    ssid: &[u8],
) -> Result<u32, DriveError> {
    let ids: Vec<u32> = networks
        .iter()
        .filter(|network| network.ssid == ssid)
        .map(|network| network.id)
        .collect();
    match ids.as_slice() {
        [id] => Ok(*id),
        [] => Err(DriveError::NetworkNotConfigured {
            ifname: ifname.to_string(),
            ssid: escape_ssid(ssid),
            configured: networks
                .iter()
                .map(|network| escape_ssid(&network.ssid))
                .collect(),
        }),
        _ => Err(DriveError::AmbiguousSsid {
            ifname: ifname.to_string(),
            ssid: escape_ssid(ssid),
            ids,
        }),
    }
}

/// Returns the configured network with `id`.
pub fn network_by_id<'a>(
    ifname: &str,
    networks: &'a [NetworkEntry],
    id: u32,
) -> Result<&'a NetworkEntry, DriveError> {
    networks
        .iter()
        .find(|network| network.id == id)
        .ok_or_else(|| DriveError::UnknownNetworkId {
            ifname: ifname.to_string(),
            id,
            configured: networks
                .iter()
                .map(|network| format!("{} ({})", network.id, escape_ssid(&network.ssid)))
                .collect(),
        })
}

/// Checks that the supplicant will not change the interface address itself when it scans or
/// connects to network `network_id`.
pub fn check_supplicant_keeps_address(
    ifname: &str,
    supplicant: &mut dyn SupplicantOps,
    network_id: u32,
) -> Result<(), DriveError> {
    for name in ["mac_addr", "preassoc_mac_addr"] {
        let value = supplicant.get(name).map_err(|source| DriveError::Control {
            ifname: ifname.to_string(),
            step: "reading the address settings",
            source,
        })?;
        if value != "0" {
            return Err(DriveError::SupplicantRandomizes {
                ifname: ifname.to_string(),
                setting: name.to_string(),
                value,
            });
        }
    }

    let value = supplicant
        .get_network(network_id, "mac_addr")
        .map_err(|source| DriveError::Control {
            ifname: ifname.to_string(),
            step: "reading the network's mac_addr",
            source,
        })?;
    // -1 means "use the global mac_addr", which was checked above.
    if value != "0" && value != "-1" {
        return Err(DriveError::SupplicantRandomizes {
            ifname: ifname.to_string(),
            setting: format!("network {network_id} mac_addr"),
            value,
        });
    }
    Ok(())
}

/// Connects to `plan.network_id` with `plan.address`, in the order the module documentation
/// gives. On success the supplicant and the link both use the address.
pub fn connect(
    radio: &mut dyn Radio,
    supplicant: &mut dyn SupplicantOps,
    plan: &ConnectPlan,
) -> Result<ConnectReport, DriveError> {
    let started = Instant::now();
    let ifname = radio.ifname().to_string();
    let control = |step: &'static str| {
        let ifname = ifname.clone();
        move |source| DriveError::Control {
            ifname,
            step,
            source,
        }
    };
    let link_error = |source| DriveError::Link {
        ifname: ifname.clone(),
        source,
    };

    check_supplicant_keeps_address(&ifname, supplicant, plan.network_id)?;
    let before = radio.read().map_err(link_error)?;

    // Subscribing before anything changes means no event of this connection is missed.
    supplicant
        .attach()
        .map_err(control("subscribing to events"))?;
    supplicant.disconnect().map_err(control("disconnecting"))?;

    let address = match plan.address {
        Some(address) => address,
        None => before.address.ok_or_else(|| DriveError::Link {
            ifname: ifname.clone(),
            source: LinkError::Protocol {
                operation: Operation::GetLink,
                detail: String::from("the link has no hardware address"),
            },
        })?,
    };
    let changed = before.address != Some(address);

    if changed || !before.admin_up {
        if before.admin_up {
            radio.set_admin_state(false).map_err(link_error)?;
        }
        if changed {
            log::debug!("{ifname}: setting {address} while the link is down");
            if let Err(source) = radio.set_address(address) {
                return Err(DriveError::SetAddress {
                    ifname,
                    address,
                    source,
                });
            }
            log::info!("{ifname}: address set to {address} for the next connection");
        }
        radio.set_admin_state(true).map_err(link_error)?;
    }

    wait_until_ready(&ifname, supplicant, address)?;

    // Events queued so far belong to the connection before DISCONNECT. A CTRL-EVENT-CONNECTED
    // among them must not pass for the one of the network selected now.
    while let Some(event) = supplicant
        .next_event(Duration::ZERO)
        .map_err(control("reading events"))?
    {
        log::debug!("{ifname}: skipping earlier event {}", event.name());
    }
    supplicant
        .select_network(plan.network_id)
        .map_err(control("selecting the network"))?;
    wait_for_connection(&ifname, supplicant, plan, address)?;

    // The address must still be the one set: the supplicant or another program may have
    // replaced it during the association.
    let status = supplicant.status().map_err(control("reading the status"))?;
    if !status.is_completed() {
        return Err(DriveError::NotConnected {
            ifname,
            ssid: escape_ssid(&plan.ssid),
            address,
            timeout: plan.timeout,
            last_event: Some(format!(
                "CTRL-EVENT-CONNECTED, then state {}",
                status.wpa_state()
            )),
        });
    }
    let after = radio.read().map_err(link_error)?;
    let found = [status.address(), after.address]
        .into_iter()
        .find(|found| *found != Some(address));
    if let Some(found) = found {
        let _ = supplicant.disconnect();
        let _ = radio.set_admin_state(false);
        return Err(DriveError::AddressReplaced {
            ifname,
            expected: address,
            found: found.map_or_else(|| String::from("none"), |found| found.redacted()),
        });
    }

    Ok(ConnectReport {
        network_id: plan.network_id,
        previous: before.address,
        address,
        changed,
        bssid: status.bssid(),
        elapsed: started.elapsed(),
    })
}

/// Waits until the supplicant has taken the link up again and uses `address`.
pub fn wait_until_ready(
    ifname: &str,
    supplicant: &mut dyn SupplicantOps,
    address: MacAddr,
) -> Result<(), DriveError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let status = supplicant.status().map_err(|source| DriveError::Control {
            ifname: ifname.to_string(),
            step: "reading the status",
            source,
        })?;
        if status.wpa_state() != "INTERFACE_DISABLED" && status.address() == Some(address) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(DriveError::SupplicantNotReady {
                ifname: ifname.to_string(),
                expected: address,
                state: status.wpa_state().to_string(),
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Waits for `CTRL-EVENT-CONNECTED` of the selected network.
fn wait_for_connection(
    ifname: &str,
    supplicant: &mut dyn SupplicantOps,
    plan: &ConnectPlan,
    address: MacAddr,
) -> Result<(), DriveError> {
    let deadline = Instant::now() + plan.timeout;
    let mut last_event = None;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(DriveError::NotConnected {
                ifname: ifname.to_string(),
                ssid: escape_ssid(&plan.ssid),
                address,
                timeout: plan.timeout,
                last_event,
            });
        }
        let event = supplicant
            .next_event(remaining)
            .map_err(|source| DriveError::Control {
                ifname: ifname.to_string(),
                step: "waiting for the connection",
                source,
            })?;
        let Some(event) = event else {
            continue;
        };
        log::debug!("{ifname}: wpa_supplicant event {}", event.name());
        let selected = plan.network_id.to_string();
        match event.name() {
            // The event names the network as `[id=N id_str=...]`.
            "CTRL-EVENT-CONNECTED" if event.field("id").is_none_or(|id| id == selected) => {
                return Ok(());
            }
            "CTRL-EVENT-NETWORK-NOT-FOUND" if plan.stop_at_not_found => {
                return Err(DriveError::NotConnected {
                    ifname: ifname.to_string(),
                    ssid: escape_ssid(&plan.ssid),
                    address,
                    timeout: plan.timeout,
                    last_event: Some(event.text.clone()),
                });
            }
            "CTRL-EVENT-SSID-TEMP-DISABLED"
            | "CTRL-EVENT-NETWORK-NOT-FOUND"
            | "CTRL-EVENT-ASSOC-REJECT"
            | "CTRL-EVENT-AUTH-REJECT" => last_event = Some(event.text.clone()),
            _ => {}
        }
    }
}

/// A [`Radio`] on a real link, through the link layer.
pub struct LinkRadio {
    ops: Box<dyn LinkOps>,
    store: ReferenceStore,
    index: u32,
    ifname: String,
    driver: Option<String>,
}

impl LinkRadio {
    /// Finds the link named `ifname`. `store` records its reference address, as every address
    /// change in macveil does, when it has no permanent address.
    pub fn find(
        mut ops: Box<dyn LinkOps>,
        store: ReferenceStore,
        ifname: &str,
    ) -> Result<LinkRadio, LinkError> {
        let links = ops.links()?;
        let Some(link) = links.iter().find(|link| link.name == ifname) else {
            return Err(LinkError::NoDevice {
                ifname: ifname.to_string(),
                index: None,
                existing: links.iter().map(|link| link.name.clone()).collect(),
            });
        };
        Ok(LinkRadio {
            index: link.index,
            ifname: link.name.clone(),
            driver: link.driver.clone(),
            ops,
            store,
        })
    }

    /// Returns the link's permanent address, or `None` when it has none.
    pub fn permanent(&mut self) -> Result<Option<MacAddr>, LinkError> {
        Ok(self.link()?.permanent)
    }

    fn link(&mut self) -> Result<crate::link::Link, LinkError> {
        self.ops
            .link(self.index)?
            .ok_or_else(|| LinkError::NoDevice {
                ifname: self.ifname.clone(),
                index: Some(self.index),
                existing: Vec::new(),
            })
    }
}

impl Radio for LinkRadio {
    fn ifname(&self) -> &str {
        &self.ifname
    }

    fn read(&mut self) -> Result<RadioState, LinkError> {
        let link = self.link()?;
        Ok(RadioState {
            admin_up: link.admin_up,
            address: link.address,
        })
    }

    fn set_admin_state(&mut self, up: bool) -> Result<(), LinkError> {
        let request = Request::SetAdminState {
            index: self.index,
            up,
        };
        let results = self.ops.execute(std::slice::from_ref(&request))?;
        match results.first() {
            Some(Ok(())) => Ok(()),
            Some(Err(errno)) => Err(LinkError::from_errno(
                *errno,
                request.operation(),
                &self.ifname,
                self.index,
                None,
                self.driver.as_deref(),
            )),
            None => Err(LinkError::Protocol {
                operation: request.operation(),
                detail: String::from("no reply"),
            }),
        }
    }

    fn set_address(&mut self, address: MacAddr) -> Result<(), LinkError> {
        let change = Change {
            index: self.index,
            address,
        };
        let options = ApplyOptions {
            cycle: false,
            after_failure: AfterFailure::StayDown,
        };
        let mut reports = apply::apply(self.ops.as_mut(), &self.store, &[change], &options)?;
        match reports.pop().map(|report| report.outcome) {
            Some(Outcome::Changed | Outcome::Unchanged) => Ok(()),
            Some(Outcome::Failed(err)) => Err(err),
            // The radio does not carry the address the policy chose, so the connection must not
            // go ahead with it.
            Some(Outcome::Superseded(_)) => Err(LinkError::Protocol {
                operation: Operation::SetAddress,
                detail: String::from(
                    "another program changed the address right after macveil set it; stop that \
                     program and connect again",
                ),
            }),
            None => Err(LinkError::Protocol {
                operation: Operation::SetAddress,
                detail: String::from("no report for the change"),
            }),
        }
    }
}

/// Opens the link layer in the caller's network namespace.
///
/// In a build with the `lab-faults` feature, address changes fail on the interface that
/// `MACVEIL_LAB_FAIL_SET_ADDRESS` names. The Wi-Fi lab uses this to prove the fail-closed path.
/// Other builds ignore the variable.
pub fn open_links() -> Result<Box<dyn LinkOps>, LinkError> {
    let handle = crate::link::LinkHandle::open(&crate::link::Netns::Current)?;
    #[cfg(feature = "lab-faults")]
    if let Ok(ifname) = std::env::var(lab_faults::FAIL_SET_ADDRESS_VAR) {
        log::warn!("lab fault: address changes on {ifname} will fail with EOPNOTSUPP");
        return Ok(Box::new(lab_faults::FailSetAddress::new(handle, ifname)));
    }
    Ok(Box::new(handle))
}

#[cfg(feature = "lab-faults")]
pub mod lab_faults {
    //! The Wi-Fi lab's fault seam: address changes on one named link fail as a driver that
    //! cannot change its address would fail them (EOPNOTSUPP). Compiled only with the
    //! `lab-faults` feature, which the shipped binary is built without.

    use super::*;
    use crate::link::{Errno, IpAddress, Link, Route};

    /// The environment variable naming the link whose address changes fail.
    pub const FAIL_SET_ADDRESS_VAR: &str = "MACVEIL_LAB_FAIL_SET_ADDRESS";

    /// The real link layer, except for address changes on one link.
    pub struct FailSetAddress<T: LinkOps> {
        inner: T,
        ifname: String,
    }

    impl<T: LinkOps> FailSetAddress<T> {
        /// Wraps `inner`; address changes on `ifname` fail.
        pub fn new(inner: T, ifname: String) -> FailSetAddress<T> {
            FailSetAddress { inner, ifname }
        }

        fn failing_index(&mut self) -> Result<Option<u32>, LinkError> {
            Ok(self
                .inner
                .links()?
                .into_iter()
                .find(|link| link.name == self.ifname)
                .map(|link| link.index))
        }
    }

    impl<T: LinkOps> LinkOps for FailSetAddress<T> {
        fn netns_key(&self) -> &str {
            self.inner.netns_key()
        }

        fn links(&mut self) -> Result<Vec<Link>, LinkError> {
            self.inner.links()
        }

        fn link(&mut self, index: u32) -> Result<Option<Link>, LinkError> {
            self.inner.link(index)
        }

        fn execute(&mut self, requests: &[Request]) -> Result<Vec<Result<(), Errno>>, LinkError> {
            let failing = self.failing_index()?;
            let mut results = Vec::with_capacity(requests.len());
            // One request at a time keeps the order of the kernel's changes and the injected
            // failures the same as in one batch.
            for request in requests {
                match request {
                    Request::SetAddress { index, .. } if Some(*index) == failing => {
                        results.push(Err(Errno(libc::EOPNOTSUPP)));
                    }
                    _ => results.extend(self.inner.execute(std::slice::from_ref(request))?),
                }
            }
            Ok(results)
        }

        fn ip_addresses(&mut self) -> Result<Vec<IpAddress>, LinkError> {
            self.inner.ip_addresses()
        }

        fn routes(&mut self) -> Result<Vec<Route>, LinkError> {
            self.inner.routes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ctrl::Event;
    use super::super::supplicant::Status;
    use super::*;
    use std::cell::RefCell;
    use std::collections::{HashMap, VecDeque};
    use std::rc::Rc;

    const START: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0]);
    const NEW: MacAddr = MacAddr([0x06, 0x11, 0x22, 0x33, 0x44, 0x55]);

    /// The radio and the supplicant of one fake machine, with the log of every operation.
    struct World {
        up: bool,
        address: MacAddr,
        log: Vec<String>,
        settings: HashMap<String, String>,
        network_mac_addr: String,
        /// The supplicant connects after SELECT_NETWORK.
        connects: bool,
        /// The supplicant puts this address back when it associates (its restore path).
        restores: Option<MacAddr>,
        fail_set: bool,
        events: VecDeque<Event>,
        disconnected: bool,
        completed: bool,
    }

    type Shared = Rc<RefCell<World>>;

    fn world() -> Shared {
        Rc::new(RefCell::new(World {
            up: true,
            address: START,
            log: Vec::new(),
            settings: HashMap::from([
                ("mac_addr".to_string(), "0".to_string()),
                ("preassoc_mac_addr".to_string(), "0".to_string()),
            ]),
            network_mac_addr: "-1".to_string(),
            connects: true,
            restores: None,
            fail_set: false,
            events: VecDeque::new(),
            disconnected: false,
            completed: true,
        }))
    }

    struct FakeRadio(Shared);

    impl Radio for FakeRadio {
        fn ifname(&self) -> &str {
            "wlan0"
        }

        fn read(&mut self) -> Result<RadioState, LinkError> {
            let world = self.0.borrow();
            Ok(RadioState {
                admin_up: world.up,
                address: Some(world.address),
            })
        }

        fn set_admin_state(&mut self, up: bool) -> Result<(), LinkError> {
            let mut world = self.0.borrow_mut();
            world
                .log
                .push(format!("link {}", if up { "up" } else { "down" }));
            world.up = up;
            Ok(())
        }

        fn set_address(&mut self, address: MacAddr) -> Result<(), LinkError> {
            let mut world = self.0.borrow_mut();
            assert!(!world.up, "the address must be set while the link is down");
            world.log.push(format!("set {address}"));
            if world.fail_set {
                return Err(LinkError::NotSupported {
                    ifname: "wlan0".into(),
                    index: 3,
                    driver: "mac80211_hwsim".into(),
                });
            }
            world.address = address;
            Ok(())
        }
    }

    struct FakeSupplicant(Shared);

    impl SupplicantOps for FakeSupplicant {
        fn get(&mut self, name: &str) -> Result<String, CtrlError> {
            let mut world = self.0.borrow_mut();
            world.log.push(format!("GET {name}"));
            Ok(world.settings.get(name).cloned().unwrap_or_default())
        }

        fn get_network(&mut self, id: u32, name: &str) -> Result<String, CtrlError> {
            let mut world = self.0.borrow_mut();
            world.log.push(format!("GET_NETWORK {id} {name}"));
            Ok(world.network_mac_addr.clone())
        }

        fn list_networks(&mut self) -> Result<Vec<NetworkEntry>, CtrlError> {
            Ok(Vec::new())
        }

        fn status(&mut self) -> Result<Status, CtrlError> {
            let world = self.0.borrow();
            let state = if !world.up {
                "INTERFACE_DISABLED"
            } else if world.completed && !world.disconnected {
                "COMPLETED"
            } else {
                "DISCONNECTED"
            };
            Ok(Status::parse(&format!(
                "wpa_state={state}\naddress={}\nbssid=02:00:00:00:01:00\n",
                world.address
            )))
        }

        fn disconnect(&mut self) -> Result<(), CtrlError> {
            let mut world = self.0.borrow_mut();
            world.log.push("DISCONNECT".into());
            world.disconnected = true;
            world.completed = false;
            Ok(())
        }

        fn attach(&mut self) -> Result<(), CtrlError> {
            self.0.borrow_mut().log.push("ATTACH".into());
            Ok(())
        }

        fn select_network(&mut self, id: u32) -> Result<(), CtrlError> {
            let mut world = self.0.borrow_mut();
            world.log.push(format!("SELECT_NETWORK {id}"));
            assert!(world.up, "a network must be selected with the link up");
            world.disconnected = false;
            if let Some(restored) = world.restores {
                world.address = restored;
            }
            if world.connects {
                world.completed = true;
                world
                    .events
                    .push_back(Event::parse("<3>CTRL-EVENT-SCAN-STARTED ").unwrap());
                world.events.push_back(
                    Event::parse("<3>CTRL-EVENT-CONNECTED - Connection to 02:00:00:00:01:00 completed [id=0 id_str=]")
                        .unwrap(),
                );
            } else {
                world
                    .events
                    .push_back(Event::parse("<3>CTRL-EVENT-NETWORK-NOT-FOUND").unwrap());
            }
            Ok(())
        }

        fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, CtrlError> {
            let mut world = self.0.borrow_mut();
            let event = world.events.pop_front();
            match &event {
                Some(event) => world.log.push(format!("event {}", event.name())),
                None => std::thread::sleep(timeout.min(Duration::from_millis(10))),
            }
            Ok(event)
        }
    }

    fn plan(address: Option<MacAddr>) -> ConnectPlan {
        ConnectPlan {
            network_id: 0,
            ssid: b"lab".to_vec(),
            address,
            timeout: Duration::from_millis(300),
            stop_at_not_found: false,
        }
    }

    fn run(world: &Shared, plan: &ConnectPlan) -> Result<ConnectReport, DriveError> {
        let mut radio = FakeRadio(Rc::clone(world));
        let mut supplicant = FakeSupplicant(Rc::clone(world));
        connect(&mut radio, &mut supplicant, plan)
    }

    fn log(world: &Shared) -> Vec<String> {
        world.borrow().log.clone()
    }

    #[test]
    fn connect_sets_address_down_then_selects() {
        let world = world();
        let report = run(&world, &plan(Some(NEW))).unwrap();

        assert_eq!(report.address, NEW);
        assert_eq!(report.previous, Some(START));
        assert!(report.changed);
        assert_eq!(report.bssid, Some("02:00:00:00:01:00".parse().unwrap()));
        assert_eq!(
            log(&world),
            vec![
                "GET mac_addr",
                "GET preassoc_mac_addr",
                "GET_NETWORK 0 mac_addr",
                "ATTACH",
                "DISCONNECT",
                "link down",
                "set 06:11:22:33:44:55",
                "link up",
                "SELECT_NETWORK 0",
                "event CTRL-EVENT-SCAN-STARTED",
                "event CTRL-EVENT-CONNECTED",
            ]
        );
        assert!(world.borrow().up);
    }

    #[test]
    fn connect_down_link_is_brought_up() {
        let world = world();
        world.borrow_mut().up = false;
        run(&world, &plan(Some(NEW))).unwrap();

        let log = log(&world);
        assert!(!log.contains(&"link down".to_string()), "{log:?}");
        let set = log
            .iter()
            .position(|line| line.starts_with("set "))
            .unwrap();
        let up = log.iter().position(|line| line == "link up").unwrap();
        assert!(set < up, "{log:?}");
    }

    #[test]
    fn preserve_keeps_address_and_link() {
        let world = world();
        let report = run(&world, &plan(None)).unwrap();

        assert_eq!(report.address, START);
        assert!(!report.changed);
        let log = log(&world);
        assert!(
            !log.iter()
                .any(|line| line.starts_with("link ") || line.starts_with("set ")),
            "{log:?}"
        );
        assert!(log.contains(&"SELECT_NETWORK 0".to_string()));
    }

    #[test]
    fn global_randomization_rejected_before_change() {
        for setting in ["mac_addr", "preassoc_mac_addr"] {
            let world = world();
            world
                .borrow_mut()
                .settings
                .insert(setting.to_string(), "1".to_string());
            let err = run(&world, &plan(Some(NEW))).unwrap_err();

            match &err {
                DriveError::SupplicantRandomizes {
                    setting: found,
                    value,
                    ..
                } => {
                    assert_eq!(found, setting);
                    assert_eq!(value, "1");
                }
                other => panic!("expected SupplicantRandomizes, got {other}"),
            }
            let log = log(&world);
            assert!(
                !log.iter().any(|line| line == "DISCONNECT"
                    || line.starts_with("link ")
                    || line.starts_with("set ")),
                "{log:?}"
            );
            assert_eq!(world.borrow().address, START);
        }
    }

    #[test]
    fn network_randomization_rejected() {
        let world = world();
        world.borrow_mut().network_mac_addr = "2".to_string();
        let err = run(&world, &plan(Some(NEW))).unwrap_err();

        assert!(
            matches!(err, DriveError::SupplicantRandomizes { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("network 0 mac_addr=2"), "{err}");
        assert_eq!(world.borrow().address, START);
    }

    #[test]
    fn network_mac_addr_zero_accepted() {
        let world = world();
        world.borrow_mut().network_mac_addr = "0".to_string();
        assert!(run(&world, &plan(Some(NEW))).is_ok());
    }

    #[test]
    fn set_failure_leaves_radio_down_unselected() {
        let world = world();
        world.borrow_mut().fail_set = true;
        let err = run(&world, &plan(Some(NEW))).unwrap_err();

        assert!(matches!(err, DriveError::SetAddress { .. }), "{err}");
        assert!(err.to_string().contains("stays down"), "{err}");
        let world = world.borrow();
        assert!(!world.up);
        assert!(world.disconnected);
        assert!(
            !world
                .log
                .iter()
                .any(|line| line.starts_with("SELECT_NETWORK") || line == "link up"),
            "{:?}",
            world.log
        );
    }

    #[test]
    fn replaced_address_fails_closed() {
        let world = world();
        world.borrow_mut().restores = Some(START);
        let err = run(&world, &plan(Some(NEW))).unwrap_err();

        match &err {
            DriveError::AddressReplaced {
                expected, found, ..
            } => {
                assert_eq!(*expected, NEW);
                assert_eq!(found, &START.redacted());
            }
            other => panic!("expected AddressReplaced, got {other}"),
        }
        let world = world.borrow();
        assert!(!world.up, "the radio must be left down");
        assert_eq!(world.log.last().map(String::as_str), Some("link down"));
        assert!(world.disconnected);
    }

    #[test]
    fn no_connection_times_out_keeping_address() {
        let world = world();
        world.borrow_mut().connects = false;
        let err = run(&world, &plan(Some(NEW))).unwrap_err();

        match &err {
            DriveError::NotConnected {
                last_event,
                address,
                ..
            } => {
                assert_eq!(*address, NEW);
                assert_eq!(last_event.as_deref(), Some("CTRL-EVENT-NETWORK-NOT-FOUND"));
            }
            other => panic!("expected NotConnected, got {other}"),
        }
        let world = world.borrow();
        assert!(world.up);
        assert_eq!(world.address, NEW);
    }

    #[test]
    fn earlier_connected_event_ignored() {
        let world = world();
        {
            let mut world = world.borrow_mut();
            world.connects = false;
            // Queued before DISCONNECT, from the connection that is being replaced.
            world.events.push_back(
                Event::parse("<3>CTRL-EVENT-CONNECTED - Connection to 02:00:00:00:01:00 completed [id=0 id_str=]")
                    .unwrap(),
            );
        }
        let err = run(&world, &plan(Some(NEW))).unwrap_err();
        assert!(matches!(err, DriveError::NotConnected { .. }), "{err}");

        // The earlier event was read and dropped before the network was selected.
        let log = log(&world);
        let dropped = log
            .iter()
            .position(|line| line == "event CTRL-EVENT-CONNECTED");
        let selected = log.iter().position(|line| line == "SELECT_NETWORK 0");
        assert!(dropped.is_some(), "{log:?}");
        assert!(dropped < selected, "{log:?}");
    }

    #[test]
    fn connected_event_of_other_network_ignored() {
        let world = world();
        world.borrow_mut().connects = false;
        let mut radio = FakeRadio(Rc::clone(&world));
        let mut supplicant = OtherNetworkConnects(FakeSupplicant(Rc::clone(&world)));
        let err = connect(&mut radio, &mut supplicant, &plan(Some(NEW))).unwrap_err();
        assert!(matches!(err, DriveError::NotConnected { .. }), "{err}");
    }

    /// A supplicant that reports a connection to network 5 after any selection.
    struct OtherNetworkConnects(FakeSupplicant);

    impl SupplicantOps for OtherNetworkConnects {
        fn get(&mut self, name: &str) -> Result<String, CtrlError> {
            self.0.get(name)
        }
        fn get_network(&mut self, id: u32, name: &str) -> Result<String, CtrlError> {
            self.0.get_network(id, name)
        }
        fn list_networks(&mut self) -> Result<Vec<NetworkEntry>, CtrlError> {
            self.0.list_networks()
        }
        fn status(&mut self) -> Result<Status, CtrlError> {
            self.0.status()
        }
        fn disconnect(&mut self) -> Result<(), CtrlError> {
            self.0.disconnect()
        }
        fn attach(&mut self) -> Result<(), CtrlError> {
            self.0.attach()
        }
        fn select_network(&mut self, id: u32) -> Result<(), CtrlError> {
            self.0.select_network(id)?;
            self.0 .0.borrow_mut().events.push_back(
                Event::parse("<3>CTRL-EVENT-CONNECTED - Connection to 02:00:00:00:01:00 completed [id=5 id_str=]")
                    .unwrap(),
            );
            Ok(())
        }
        fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, CtrlError> {
            self.0.next_event(timeout)
        }
    }

    #[test]
    fn connected_but_not_completed_fails() {
        let world = world();
        {
            let mut world = world.borrow_mut();
            world.connects = false;
        }
        let mut radio = FakeRadio(Rc::clone(&world));
        let mut supplicant = ConnectsThenDrops(FakeSupplicant(Rc::clone(&world)));
        let err = connect(&mut radio, &mut supplicant, &plan(Some(NEW))).unwrap_err();
        match err {
            DriveError::NotConnected { last_event, .. } => {
                let last_event = last_event.unwrap();
                assert!(last_event.contains("DISCONNECTED"), "{last_event}");
            }
            other => panic!("expected NotConnected, got {other}"),
        }
    }

    /// A supplicant that reports the connection and has lost it again when asked for its status.
    struct ConnectsThenDrops(FakeSupplicant);

    impl SupplicantOps for ConnectsThenDrops {
        fn get(&mut self, name: &str) -> Result<String, CtrlError> {
            self.0.get(name)
        }
        fn get_network(&mut self, id: u32, name: &str) -> Result<String, CtrlError> {
            self.0.get_network(id, name)
        }
        fn list_networks(&mut self) -> Result<Vec<NetworkEntry>, CtrlError> {
            self.0.list_networks()
        }
        fn status(&mut self) -> Result<Status, CtrlError> {
            self.0.status()
        }
        fn disconnect(&mut self) -> Result<(), CtrlError> {
            self.0.disconnect()
        }
        fn attach(&mut self) -> Result<(), CtrlError> {
            self.0.attach()
        }
        fn select_network(&mut self, id: u32) -> Result<(), CtrlError> {
            self.0.select_network(id)?;
            self.0 .0.borrow_mut().events.push_back(
                Event::parse("<3>CTRL-EVENT-CONNECTED - Connection to 02:00:00:00:01:00 completed [id=0 id_str=]")
                    .unwrap(),
            );
            Ok(())
        }
        fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, CtrlError> {
            self.0.next_event(timeout)
        }
    }

    fn entry(id: u32, ssid: &[u8]) -> NetworkEntry {
        NetworkEntry {
            id,
            ssid: ssid.to_vec(),
            flags: String::new(),
        }
    }

    #[test]
    fn find_network_by_ssid() {
        let networks = [entry(0, b"home"), entry(1, b"cafe"), entry(2, b"cafe")];
        assert_eq!(find_network("wlan0", &networks, b"home").unwrap(), 0);

        let err = find_network("wlan0", &networks, b"cafe").unwrap_err();
        assert!(matches!(err, DriveError::AmbiguousSsid { .. }), "{err}");
        assert!(err.to_string().contains("ids 1, 2"), "{err}");

        let err = find_network("wlan0", &networks, b"work").unwrap_err();
        assert!(
            err.to_string().contains("configured: home, cafe, cafe"),
            "{err}"
        );
    }

    #[test]
    fn network_by_id_lists_configured() {
        let networks = [entry(0, b"home")];
        assert_eq!(network_by_id("wlan0", &networks, 0).unwrap().ssid, b"home");
        let err = network_by_id("wlan0", &networks, 4).unwrap_err();
        assert!(err.to_string().contains("0 (home)"), "{err}");
    }
}
