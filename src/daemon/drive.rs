//! The daemon drives the Wi-Fi connections of links whose address depends on the network or the
//! activation ([`LinkPolicy::drives_wifi_connections`]): `random`, `stable-ssid`, and `stable`
//! with `${NETWORK_SSID}` or `${RANDOM}` in `connection.stable-id`. wpa_supplicant cannot
//! compute those addresses, and reacting to its own attempt is too late ([`crate::wifi::drive`]
//! explains why), so the daemon chooses the network and connects in this order:
//!
//! 1. When the supplicant's control socket appears, check that the supplicant keeps the
//!    interface address (`mac_addr`, `preassoc_mac_addr` and each candidate's `mac_addr` at 0).
//!    Otherwise log the fix and drive nothing; scan privacy still applies.
//! 2. Record the candidates, the networks `LIST_NETWORKS` shows enabled (Wi-Fi Direct
//!    persistent groups aside), with their `priority`. The record outlives a driver that is
//!    restarted for the same supplicant, because `SELECT_NETWORK` disables every other network.
//! 3. `DISCONNECT`, so that the supplicant makes no attempt of its own.
//! 4. `SCAN`, wait for `CTRL-EVENT-SCAN-RESULTS`, read `SCAN_RESULTS`, and choose the candidate
//!    in range with the highest `priority`, then the strongest signal.
//! 5. Derive its address with [`association_address`] from the same inputs as
//!    `macveil wifi connect`, and connect with [`crate::wifi::drive::connect`].
//! 6. Follow the events. The supplicant reconnects to the same network by itself, with the same
//!    address. When the network is not regained within [`REGAIN_TIMEOUT`], choose again from
//!    step 3; under `random` that is a new activation with a new address.
//!
//! A driver ends when the supplicant goes away (`CTRL-EVENT-TERMINATING`, or its socket fails).
//! The supplicant watcher starts a new one when the supplicant comes back.
//!
//! Each driven link gets a thread of its own. [`crate::wifi::drive::connect`] blocks for up to
//! [`CONNECT_TIMEOUT`], and the supplicant client is blocking too. A state machine inside the
//! event loop would mean rewriting both as non-blocking code and spreading the order above,
//! which is what keeps the address safe, over callbacks. A machine has a few Wi-Fi links at
//! most, so a few threads cost little. Each thread opens its own netlink socket and
//! its own control socket and shares only [`DrivenLinks`] with the event loop. The engine leaves
//! the address of a link in that set to its driver, and undoes only the hardware address.
//!
//! This module does not turn on scan privacy ([`super::wifi`] does it before a driver starts)
//! and never drives a link that NetworkManager manages.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::nm::DeviceStates;
use super::target::Keys;
use crate::addr::MacAddr;
use crate::config::{ClonedMac, LinkPolicy};
use crate::generate::mask::Mask;
use crate::generate::stable_id::escape_ssid;
use crate::link::state::ReferenceStore;
use crate::link::{Link, LinkError};
use crate::rng::OsRandom;
use crate::wifi::address::{AddressInputs, association_address};
use crate::wifi::ctrl::{ClientOptions, CtrlError, Event};
use crate::wifi::drive::{self, ConnectPlan, DriveError, LinkRadio, Radio};
use crate::wifi::supplicant::{
    NetworkEntry, ScanResult, Status, Supplicant, SupplicantOps, decode_network_ssid,
};

/// Maximum time from `SELECT_NETWORK` to `CTRL-EVENT-CONNECTED`, as for `macveil wifi connect`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Maximum time for the supplicant to regain the network by itself, with the same address,
/// before the driver chooses again. An access point that restarts is usually back sooner.
pub const REGAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Maximum wait for `CTRL-EVENT-SCAN-RESULTS` after `SCAN`. A scan of every 2.4 and 5 GHz
/// channel takes a few seconds.
const SCAN_TIMEOUT: Duration = Duration::from_secs(15);

/// The first and the last wait before scanning again while no candidate is in range.
const FIRST_RESCAN: Duration = Duration::from_secs(5);
const LAST_RESCAN: Duration = Duration::from_secs(60);

/// The first and the last wait before a failed connection is tried again.
const FIRST_RETRY: Duration = Duration::from_secs(10);
const LAST_RETRY: Duration = Duration::from_secs(300);

/// How long one wait for an event lasts before the stop flag is checked again: the longest a
/// stop request waits, and how often an idle driver thread wakes.
///
/// NOTE: a driver thread therefore wakes once a second while the daemon is otherwise idle. A
/// stop that woke the thread directly would need the control client to wait on a second
/// descriptor.
const EVENT_SLICE: Duration = Duration::from_secs(1);

/// Silence after which the driver checks with `PING` that the supplicant still runs. A
/// supplicant that is killed sends no `CTRL-EVENT-TERMINATING`, and a client that only waits
/// for events gets no error when the socket is gone.
const PING_AFTER: Duration = Duration::from_secs(10);

/// How long the driver waits for one supplicant reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long [`Drivers::stop_all`] waits for the threads to end: a wait for an event, and a
/// reply in progress.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// The links whose connections a driver drives. The engine leaves their addresses to the
/// driver unless a link shows the address it must hide.
#[derive(Debug, Clone, Default)]
pub struct DrivenLinks(Arc<Mutex<HashSet<u32>>>);

impl DrivenLinks {
    /// Returns whether a driver drives link `index`.
    pub fn contains(&self, index: u32) -> bool {
        self.lock().contains(&index)
    }

    pub(super) fn insert(&self, index: u32) {
        self.lock().insert(index);
    }

    pub(super) fn remove(&self, index: u32) {
        self.lock().remove(&index);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<u32>> {
        // A thread that panicked while it held the lock left a valid set behind.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The settings every driver shares.
#[derive(Debug, Clone)]
pub struct DriverSettings {
    /// wpa_supplicant's control folder.
    pub ctrl_dir: PathBuf,
    /// The daemon's state folder: client sockets and reference addresses go there.
    pub state_dir: PathBuf,
    /// The secret key.
    pub key_path: PathBuf,
    /// The boot id for `${BOOT}`; `None` reads the kernel's.
    pub boot_id: Option<String>,
    /// NetworkManager's device states, to leave its links alone; `None` outside the daemon's
    /// own namespace.
    pub nm_devices: Option<DeviceStates>,
}

/// The part of a link's policy that decides its addresses. A reload that changes it restarts
/// the link's driver.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AddressPolicy {
    cloned: ClonedMac,
    stable_id: Option<String>,
    mask: Option<Mask>,
}

impl AddressPolicy {
    fn of(policy: &LinkPolicy) -> AddressPolicy {
        AddressPolicy {
            cloned: policy.cloned_mac_address.value,
            stable_id: policy.stable_id.value.clone(),
            mask: policy.generate_mac_address_mask.value.clone(),
        }
    }
}

/// A configured network the driver may choose.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    id: u32,
    ssid: Vec<u8>,
    priority: i32,
}

/// The candidates recorded for one supplicant instance.
type Recorded = Arc<Mutex<Option<Vec<Candidate>>>>;

/// Opens the radio of an interface inside a driver thread.
type OpenRadio = dyn Fn(&str) -> Result<Box<dyn Radio>, LinkError> + Send + Sync;

/// A driver thread.
struct Running {
    index: u32,
    policy: AddressPolicy,
    private_scans: bool,
    /// The inode of the supplicant socket the driver talks to, which distinguishes a restarted
    /// supplicant from the same one.
    socket: u64,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// The driver threads of the daemon, one per driven link.
pub struct Drivers {
    settings: DriverSettings,
    driven: DrivenLinks,
    running: HashMap<String, Running>,
    recorded: HashMap<String, (u64, Recorded)>,
    open_radio: Arc<OpenRadio>,
}

impl Drivers {
    /// Creates the drivers; none runs yet. Each thread opens the link layer with
    /// [`drive::open_links`], which honours the lab's fault seam in a `lab-faults` build.
    pub fn new(settings: DriverSettings, driven: DrivenLinks) -> Drivers {
        let store = ReferenceStore::new(&settings.state_dir);
        let open_radio = move |ifname: &str| -> Result<Box<dyn Radio>, LinkError> {
            let radio = LinkRadio::find(drive::open_links()?, store.clone(), ifname)?;
            Ok(Box::new(radio))
        };
        Drivers::with_radio(settings, driven, Arc::new(open_radio))
    }

    fn with_radio(
        settings: DriverSettings,
        driven: DrivenLinks,
        open_radio: Arc<OpenRadio>,
    ) -> Drivers {
        Drivers {
            settings,
            driven,
            running: HashMap::new(),
            recorded: HashMap::new(),
            open_radio,
        }
    }

    /// Starts, keeps or stops the driver of `link`, whose supplicant control socket exists. A
    /// running driver is kept when the supplicant, the address policy and `private_scans` are
    /// the same. `private_scans` is whether the supplicant's scans use random addresses.
    pub fn consider(&mut self, link: &Link, policy: &LinkPolicy, private_scans: bool) {
        let ifname = link.name.as_str();
        self.reap();

        if !policy.drives_wifi_connections() {
            if self.running.contains_key(ifname) {
                log::info!(
                    "{ifname}: the policy no longer needs the daemon to choose networks; \
                     wpa_supplicant connects on its own from now on"
                );
            }
            self.stop(ifname);
            return;
        }
        if self
            .settings
            .nm_devices
            .as_ref()
            .is_some_and(|states| states.is_managed(link.index))
        {
            log::debug!(
                "{ifname}: NetworkManager manages the link, so the daemon does not drive it"
            );
            self.stop(ifname);
            return;
        }

        let socket = match std::fs::metadata(self.settings.ctrl_dir.join(ifname)) {
            Ok(meta) => meta.ino(),
            Err(err) => {
                log::debug!("{ifname}: wpa_supplicant's control socket is gone ({err})");
                return;
            }
        };
        let address_policy = AddressPolicy::of(policy);
        if let Some(running) = self.running.get(ifname)
            && running.socket == socket
            && running.policy == address_policy
            && running.private_scans == private_scans
            && !running.thread.is_finished()
        {
            return;
        }

        let recorded = match self.recorded.get(ifname) {
            Some((inode, recorded)) if *inode == socket => Arc::clone(recorded),
            _ => {
                let recorded: Recorded = Arc::default();
                self.recorded
                    .insert(ifname.to_string(), (socket, Arc::clone(&recorded)));
                recorded
            }
        };

        // The previous driver of the link gets the stop request, and the new thread waits for
        // it before it touches the link, so that two drivers never work on one link at once.
        let previous = self.running.remove(ifname).map(|running| {
            running.stop.store(true, Ordering::Relaxed);
            running.thread
        });
        let stop = Arc::new(AtomicBool::new(false));
        let job = Job {
            ifname: ifname.to_string(),
            index: link.index,
            hidden: link.permanent,
            policy: address_policy.clone(),
            private_scans,
            settings: self.settings.clone(),
            driven: self.driven.clone(),
            recorded,
            stop: Arc::clone(&stop),
            open_radio: Arc::clone(&self.open_radio),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("drive-{ifname}"))
            .spawn(move || {
                if let Some(previous) = previous {
                    let _ = previous.join();
                }
                job.run();
            });
        match spawned {
            Ok(thread) => {
                self.running.insert(
                    ifname.to_string(),
                    Running {
                        index: link.index,
                        policy: address_policy,
                        private_scans,
                        socket,
                        stop,
                        thread,
                    },
                );
            }
            Err(err) => log::error!(
                "{ifname}: cannot start a thread to drive its Wi-Fi connections: {err}; \
                 wpa_supplicant connects on its own with the link's address until the next \
                 reload (SIGHUP)"
            ),
        }
    }

    /// Stops every driver and waits briefly for the threads to end. A thread still waiting
    /// on the kernel then ends with the process. That leaves the link safe at every step,
    /// because [`crate::wifi::drive::connect`] sets the address only while the link is down.
    pub fn stop_all(&mut self) {
        for running in self.running.values() {
            running.stop.store(true, Ordering::Relaxed);
        }
        let deadline = Instant::now() + STOP_GRACE;
        for (ifname, running) in self.running.drain() {
            while !running.thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if running.thread.is_finished() {
                let _ = running.thread.join();
            } else {
                log::debug!("{ifname}: the driver did not end within {STOP_GRACE:?}");
            }
        }
    }

    /// Returns the interfaces whose drivers still run.
    pub fn running(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .running
            .iter()
            .filter(|(_, running)| !running.thread.is_finished())
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    fn stop(&mut self, ifname: &str) {
        if let Some(running) = self.running.remove(ifname) {
            running.stop.store(true, Ordering::Relaxed);
            log::debug!("{ifname}: stopping the driver of link {}", running.index);
        }
    }

    /// Forgets the threads that ended.
    fn reap(&mut self) {
        let ended: Vec<String> = self
            .running
            .iter()
            .filter(|(_, running)| running.thread.is_finished())
            .map(|(name, _)| name.clone())
            .collect();
        for name in ended {
            if let Some(running) = self.running.remove(&name) {
                let _ = running.thread.join();
            }
        }
    }
}

impl Drop for Drivers {
    fn drop(&mut self) {
        for running in self.running.values() {
            running.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Everything one driver thread needs.
struct Job {
    ifname: String,
    index: u32,
    hidden: Option<MacAddr>,
    policy: AddressPolicy,
    private_scans: bool,
    settings: DriverSettings,
    driven: DrivenLinks,
    recorded: Recorded,
    stop: Arc<AtomicBool>,
    open_radio: Arc<OpenRadio>,
}

impl Job {
    fn run(self) {
        let ifname = self.ifname.clone();
        if self.stop.load(Ordering::Relaxed) {
            return;
        }
        let client = ClientOptions {
            parent_dir: Some(self.settings.state_dir.clone()),
            timeout: REPLY_TIMEOUT,
        };
        let mut supplicant = match Supplicant::open(&self.settings.ctrl_dir, &ifname, &client) {
            Ok(supplicant) => supplicant,
            Err(err) => {
                log::error!(
                    "{ifname}: cannot reach wpa_supplicant to drive its connections: {err}; \
                     the daemon tries again when the supplicant restarts or at the next reload \
                     (SIGHUP)"
                );
                return;
            }
        };
        let mut radio = match (self.open_radio)(&ifname) {
            Ok(radio) => radio,
            Err(err) => {
                log::error!(
                    "{ifname}: cannot open the link to drive its connections: {err}; the daemon \
                     tries again at the next reload (SIGHUP)"
                );
                return;
            }
        };

        self.driven.insert(self.index);
        let mut driver = Driver {
            ifname: ifname.clone(),
            hidden: self.hidden,
            policy: self.policy.clone(),
            private_scans: self.private_scans,
            boot_id: self.settings.boot_id.clone(),
            keys: Keys::new(&self.settings.key_path),
            recorded: Arc::clone(&self.recorded),
            stop: Arc::clone(&self.stop),
            regain_timeout: REGAIN_TIMEOUT,
        };
        let end = driver.run(radio.as_mut(), &mut supplicant);
        self.driven.remove(self.index);
        match end {
            End::Stopped => log::debug!("{ifname}: driver stopped"),
            End::SupplicantGone => log::info!(
                "{ifname}: wpa_supplicant went away; the daemon drives the connections again \
                 when it restarts"
            ),
            End::Refused | End::NoCandidates => {}
        }
    }
}

/// The reason a driver ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The daemon stopped it (a reload, a policy change, SIGTERM).
    Stopped,
    /// The supplicant terminated, or its socket failed.
    SupplicantGone,
    /// The supplicant changes the interface address itself; the fix was logged.
    Refused,
    /// The supplicant has no enabled network to choose from.
    NoCandidates,
}

/// The outcome of following a connection.
enum Follow {
    /// The network was not regained in time.
    ChooseAgain,
    /// The driver ends.
    End(End),
}

/// The driving logic for one supplicant, apart from the thread, so that tests can run it.
struct Driver {
    ifname: String,
    hidden: Option<MacAddr>,
    policy: AddressPolicy,
    /// Whether the supplicant's scans use random addresses. Without them, the driver gives
    /// the link a fresh random address before it scans to choose again.
    private_scans: bool,
    boot_id: Option<String>,
    keys: Keys,
    recorded: Recorded,
    stop: Arc<AtomicBool>,
    /// [`REGAIN_TIMEOUT`], shorter in tests.
    regain_timeout: Duration,
}

impl Driver {
    fn run(&mut self, radio: &mut dyn Radio, supplicant: &mut Supplicant) -> End {
        let mut ops = Stoppable {
            supplicant,
            stop: Arc::clone(&self.stop),
            attached: false,
        };
        let candidates = match self.prepare(&mut ops) {
            Ok(candidates) => candidates,
            Err(end) => return end,
        };

        let mut rescan = Backoff::new(FIRST_RESCAN, LAST_RESCAN);
        let mut retry = Backoff::new(FIRST_RETRY, LAST_RETRY);
        // A network whose connection failed before the supplicant tried it (the address could
        // not be set, for example) is tried again without a scan. The link is down then, and
        // bringing it up to scan would send with an address chosen for another network.
        let mut pending: Option<Candidate> = None;
        // Set when the link carries the address of a network that was lost, which scans that
        // do not use random addresses would show to the networks in range.
        let mut needs_fresh_address = false;
        loop {
            if needs_fresh_address {
                match self.give_fresh_address(radio, &mut ops) {
                    Ok(()) => needs_fresh_address = false,
                    Err(err) => {
                        if let DriveError::Control { source, .. } = &err
                            && let Some(end) = self.ended(source)
                        {
                            return end;
                        }
                        let wait = retry.next();
                        log::error!(
                            "{err}; the link keeps no address of a lost network, and the daemon \
                             tries again in {} s",
                            wait.as_secs()
                        );
                        if let Some(end) = self.pause(&mut ops, wait) {
                            return end;
                        }
                        continue;
                    }
                }
            }

            let chosen = match pending.take() {
                Some(chosen) => chosen,
                None => match self.choose(&mut ops, &candidates) {
                    Ok(Some(chosen)) => {
                        rescan.reset();
                        chosen
                    }
                    Ok(None) => {
                        let wait = rescan.next();
                        log::info!(
                            "{}: none of the networks {} is in range; scanning again in {} s",
                            self.ifname,
                            list_ssids(&candidates),
                            wait.as_secs()
                        );
                        if let Some(end) = self.pause(&mut ops, wait) {
                            return end;
                        }
                        continue;
                    }
                    Err(err) => match self.ended(&err) {
                        Some(end) => return end,
                        None => {
                            let wait = retry.next();
                            log::error!(
                                "{}: choosing a network failed: {err}; trying again in {} s",
                                self.ifname,
                                wait.as_secs()
                            );
                            if let Some(end) = self.pause(&mut ops, wait) {
                                return end;
                            }
                            continue;
                        }
                    },
                },
            };

            let ssid = escape_ssid(&chosen.ssid);
            let address = match self.address_for(radio, &chosen) {
                Ok(address) => address,
                Err(reason) => {
                    let wait = retry.next();
                    log::error!(
                        "{}: no address for network '{ssid}': {reason}; nothing was changed, and \
                         the daemon tries again in {} s",
                        self.ifname,
                        wait.as_secs()
                    );
                    pending = Some(chosen);
                    if let Some(end) = self.pause(&mut ops, wait) {
                        return end;
                    }
                    continue;
                }
            };
            let plan = ConnectPlan {
                network_id: chosen.id,
                ssid: chosen.ssid.clone(),
                address,
                timeout: CONNECT_TIMEOUT,
            };
            log::debug!(
                "{}: connecting to '{ssid}' (network {}, policy {})",
                self.ifname,
                chosen.id,
                self.policy.cloned
            );

            let lost_since = match drive::connect(radio, &mut ops, &plan) {
                Ok(report) => {
                    log::info!(
                        "{}: connected to '{ssid}' with {} (policy {})",
                        self.ifname,
                        report.address,
                        self.policy.cloned
                    );
                    retry.reset();
                    None
                }
                Err(err @ DriveError::NotConnected { .. }) => {
                    log::warn!("{err}");
                    Some(Instant::now())
                }
                Err(err) => {
                    if let DriveError::Control { source, .. } = &err
                        && let Some(end) = self.ended(source)
                    {
                        return end;
                    }
                    let wait = retry.next();
                    log::error!("{err}; the daemon tries again in {} s", wait.as_secs());
                    // The radio and the supplicant are left as the error describes. A refusal
                    // means that the supplicant's settings changed, and a restart of the
                    // supplicant starts a new driver that checks them again.
                    if matches!(err, DriveError::SupplicantRandomizes { .. }) {
                        return End::Refused;
                    }
                    pending = Some(chosen);
                    if let Some(end) = self.pause(&mut ops, wait) {
                        return end;
                    }
                    continue;
                }
            };

            match self.follow(&mut ops, &chosen, lost_since) {
                Follow::End(end) => return end,
                Follow::ChooseAgain => {
                    if let Err(err) = ops.disconnect()
                        && let Some(end) = self.ended(&err)
                    {
                        return end;
                    }
                    needs_fresh_address = !self.private_scans;
                }
            }
        }
    }

    /// Subscribes to events, records the candidates, checks the address settings and
    /// disconnects.
    fn prepare(&mut self, ops: &mut Stoppable<'_>) -> Result<Vec<Candidate>, End> {
        let ifname = self.ifname.clone();
        let fail = |driver: &Driver, step: &str, err: CtrlError| {
            if let Some(end) = driver.ended(&err) {
                return end;
            }
            log::error!(
                "{ifname}: {step} failed: {err}; the daemon does not drive its connections until \
                 wpa_supplicant restarts or the daemon reloads (SIGHUP)"
            );
            End::Refused
        };

        ops.attach()
            .map_err(|err| fail(self, "subscribing to wpa_supplicant's events", err))?;

        let recorded = self.recorded_candidates();
        let candidates = match recorded {
            Some(candidates) => candidates,
            None => {
                let networks = ops
                    .list_networks()
                    .map_err(|err| fail(self, "listing wpa_supplicant's networks", err))?;
                let candidates = read_candidates(ops, &networks)
                    .map_err(|err| fail(self, "reading the networks' settings", err))?;
                *self
                    .recorded
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(candidates.clone());
                candidates
            }
        };
        if candidates.is_empty() {
            log::info!(
                "{ifname}: wpa_supplicant has no enabled network, so the daemon has none to \
                 choose; it drives the connections again when the supplicant restarts"
            );
            return Err(End::NoCandidates);
        }

        for candidate in &candidates {
            match drive::check_supplicant_keeps_address(&ifname, ops, candidate.id) {
                Ok(()) => {}
                Err(DriveError::Control { source, .. }) => {
                    return Err(fail(self, "reading the address settings", source));
                }
                Err(err) => {
                    log::error!(
                        "{err}. The daemon does not choose its networks, so wpa_supplicant \
                         connects on its own with the link's address"
                    );
                    return Err(End::Refused);
                }
            }
        }

        ops.disconnect()
            .map_err(|err| fail(self, "disconnecting wpa_supplicant", err))?;
        log::info!(
            "{ifname}: the daemon chooses among the networks {} (policy {})",
            list_ssids(&candidates),
            self.policy.cloned
        );
        Ok(candidates)
    }

    fn recorded_candidates(&self) -> Option<Vec<Candidate>> {
        self.recorded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Scans and returns the candidate to connect to, if one is in range.
    ///
    fn choose(
        &mut self,
        ops: &mut Stoppable<'_>,
        candidates: &[Candidate],
    ) -> Result<Option<Candidate>, CtrlError> {
        match ops.supplicant.scan() {
            Ok(()) => {}
            // A scan is running already (`FAIL-BUSY`); its results serve as well.
            Err(CtrlError::Rejected { reply, .. }) if reply.contains("BUSY") => {}
            Err(err) => return Err(err),
        }

        let deadline = Instant::now() + SCAN_TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                log::warn!(
                    "{}: no scan results within {} s; reading the last ones",
                    self.ifname,
                    SCAN_TIMEOUT.as_secs()
                );
                break;
            }
            match ops.next_event(remaining.min(EVENT_SLICE))? {
                Some(event) if event.name() == "CTRL-EVENT-SCAN-RESULTS" => break,
                Some(event) if event.name() == "CTRL-EVENT-TERMINATING" => {
                    return Err(terminated(&self.ifname));
                }
                _ => {}
            }
        }

        let results = ops.supplicant.scan_results()?;
        Ok(pick(candidates, &results).cloned())
    }

    /// Gives the link a fresh random address while it is down, for scans that carry the
    /// interface address. The supplicant is disconnected, so it sends nothing meanwhile. On
    /// failure the link stays down.
    fn give_fresh_address(
        &mut self,
        radio: &mut dyn Radio,
        ops: &mut Stoppable<'_>,
    ) -> Result<(), DriveError> {
        let link_error = |source| DriveError::Link {
            ifname: self.ifname.clone(),
            source,
        };
        let current = radio.read().map_err(link_error)?.address;
        let avoid: Vec<MacAddr> = current.into_iter().chain(self.hidden).collect();
        let initial = self.hidden.or(current);
        let address =
            crate::generate::random(&mut OsRandom, self.policy.mask.as_ref(), initial, &avoid)
                .map_err(|err| DriveError::Link {
                    ifname: self.ifname.clone(),
                    source: LinkError::Protocol {
                        operation: crate::link::Operation::SetAddress,
                        detail: format!("no random address: {err}"),
                    },
                })?;

        radio.set_admin_state(false).map_err(link_error)?;
        if let Err(source) = radio.set_address(address) {
            return Err(DriveError::SetAddress {
                ifname: self.ifname.clone(),
                address,
                source,
            });
        }
        radio.set_admin_state(true).map_err(link_error)?;
        drive::wait_until_ready(&self.ifname, ops, address)?;
        log::info!(
            "{}: address set to {address} for the scans, because they do not use random \
             addresses",
            self.ifname
        );
        Ok(())
    }

    /// Derives the address of a connection to `chosen`, as `macveil wifi connect` does.
    fn address_for(
        &mut self,
        radio: &mut dyn Radio,
        chosen: &Candidate,
    ) -> Result<Option<MacAddr>, String> {
        let current = radio.read().map_err(|err| err.to_string())?.address;
        let host_id = match self.policy.cloned {
            ClonedMac::Stable | ClonedMac::StableSsid => Some(self.keys.host_id()?),
            _ => None,
        };
        let inputs = AddressInputs {
            ifname: &self.ifname,
            hidden: self.hidden,
            current,
            ssid: &chosen.ssid,
            stable_id: self.policy.stable_id.as_deref(),
            connection: None,
            boot_id: self.boot_id.as_deref(),
            mask: self.policy.mask.as_ref(),
        };
        association_address(self.policy.cloned, &inputs, host_id, &mut OsRandom)
            .map_err(|err| err.to_string())
    }

    /// Follows the connection until it is lost for longer than [`REGAIN_TIMEOUT`] or the
    /// driver ends. `lost_since` is set when the connection is not complete yet.
    fn follow(
        &mut self,
        ops: &mut Stoppable<'_>,
        chosen: &Candidate,
        mut lost_since: Option<Instant>,
    ) -> Follow {
        let ssid = escape_ssid(&chosen.ssid);
        let mut last_heard = Instant::now();
        loop {
            if let Some(since) = lost_since
                && since.elapsed() >= self.regain_timeout
            {
                log::info!(
                    "{}: '{ssid}' was not regained within {} s; choosing a network again",
                    self.ifname,
                    self.regain_timeout.as_secs()
                );
                return Follow::ChooseAgain;
            }

            let event = match ops.next_event(EVENT_SLICE) {
                Ok(event) => event,
                Err(err) => return Follow::End(self.ended(&err).unwrap_or(End::SupplicantGone)),
            };
            let Some(event) = event else {
                if last_heard.elapsed() >= PING_AFTER {
                    if let Err(err) = ops.ping() {
                        return Follow::End(self.ended(&err).unwrap_or(End::SupplicantGone));
                    }
                    last_heard = Instant::now();
                }
                continue;
            };
            last_heard = Instant::now();

            match event.name() {
                "CTRL-EVENT-TERMINATING" => return Follow::End(End::SupplicantGone),
                "CTRL-EVENT-DISCONNECTED" if lost_since.is_none() => {
                    log::info!(
                        "{}: lost '{ssid}'; wpa_supplicant may regain it with the same address \
                         within {} s",
                        self.ifname,
                        self.regain_timeout.as_secs()
                    );
                    lost_since = Some(Instant::now());
                }
                "CTRL-EVENT-CONNECTED" => {
                    let selected = chosen.id.to_string();
                    if event.field("id").is_none_or(|id| id == selected) {
                        if lost_since.take().is_some() {
                            log::info!(
                                "{}: connected to '{ssid}' again with the same address",
                                self.ifname
                            );
                        }
                    } else {
                        log::warn!(
                            "{}: wpa_supplicant connected to another network than '{ssid}' ({}); \
                             choosing a network again",
                            self.ifname,
                            event.text
                        );
                        return Follow::ChooseAgain;
                    }
                }
                _ => {}
            }
        }
    }

    /// Waits `duration`, reading events. Returns how the driver ends, if it does meanwhile.
    fn pause(&self, ops: &mut Stoppable<'_>, duration: Duration) -> Option<End> {
        let deadline = Instant::now() + duration;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return None;
            }
            match ops.next_event(remaining.min(EVENT_SLICE)) {
                Ok(Some(event)) if event.name() == "CTRL-EVENT-TERMINATING" => {
                    return Some(End::SupplicantGone);
                }
                Ok(_) => {}
                Err(err) => return Some(self.ended(&err).unwrap_or(End::SupplicantGone)),
            }
        }
    }

    /// Returns how the driver ends after `err`: stopped, or the supplicant is gone. `None` for
    /// an error worth a retry, such as a reply that timed out.
    fn ended(&self, err: &CtrlError) -> Option<End> {
        if self.stop.load(Ordering::Relaxed) {
            return Some(End::Stopped);
        }
        match err {
            CtrlError::Io { .. } | CtrlError::Connect { .. } => Some(End::SupplicantGone),
            _ => None,
        }
    }
}

/// Reads the enabled networks' SSIDs and priorities.
fn read_candidates(
    ops: &mut dyn SupplicantOps,
    networks: &[NetworkEntry],
) -> Result<Vec<Candidate>, CtrlError> {
    let mut candidates = Vec::new();
    for network in networks {
        if network.is_disabled() || network.is_p2p_persistent() {
            continue;
        }
        // LIST_NETWORKS shows the SSID escaped and shortened; GET_NETWORK gives its bytes.
        let reply = ops.get_network(network.id, "ssid")?;
        let ssid = decode_network_ssid(&reply).unwrap_or_else(|| network.ssid.clone());
        let priority = ops
            .get_network(network.id, "priority")?
            .trim()
            .parse()
            .unwrap_or(0);
        candidates.push(Candidate {
            id: network.id,
            ssid,
            priority,
        });
    }
    Ok(candidates)
}

/// Returns the candidate in range with the highest priority, then the strongest signal. Ties
/// go to the lower network id, the order of the supplicant's configuration.
fn pick<'a>(candidates: &'a [Candidate], results: &[ScanResult]) -> Option<&'a Candidate> {
    candidates
        .iter()
        .filter_map(|candidate| {
            results
                .iter()
                .filter(|result| result.ssid == candidate.ssid)
                .map(|result| result.signal)
                .max()
                .map(|signal| (candidate, signal))
        })
        .max_by(|(a, a_signal), (b, b_signal)| {
            a.priority
                .cmp(&b.priority)
                .then(a_signal.cmp(b_signal))
                .then(b.id.cmp(&a.id))
        })
        .map(|(candidate, _)| candidate)
}

fn list_ssids(candidates: &[Candidate]) -> String {
    candidates
        .iter()
        .map(|candidate| format!("'{}'", escape_ssid(&candidate.ssid)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn terminated(ifname: &str) -> CtrlError {
    CtrlError::Io {
        command: String::from("(events)"),
        path: PathBuf::from(ifname),
        source: io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "wpa_supplicant is terminating",
        ),
    }
}

/// A wait that doubles after each use, from `first` up to `last`.
struct Backoff {
    first: Duration,
    last: Duration,
    next: Duration,
}

impl Backoff {
    fn new(first: Duration, last: Duration) -> Backoff {
        Backoff {
            first,
            last,
            next: first,
        }
    }

    fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.last);
        wait
    }

    fn reset(&mut self) {
        self.next = self.first;
    }
}

/// The supplicant as a driver uses it. Events are read in slices, so that a stop request ends
/// any wait within [`EVENT_SLICE`]. `ATTACH` is sent once per driver, although
/// [`crate::wifi::drive::connect`] subscribes again for each connection.
struct Stoppable<'a> {
    supplicant: &'a mut Supplicant,
    stop: Arc<AtomicBool>,
    attached: bool,
}

impl Stoppable<'_> {
    fn check_stop(&self) -> Result<(), CtrlError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(CtrlError::Io {
                command: String::from("(events)"),
                path: PathBuf::new(),
                source: io::Error::new(io::ErrorKind::Interrupted, "the driver is stopping"),
            });
        }
        Ok(())
    }

    fn ping(&mut self) -> Result<(), CtrlError> {
        let reply = self.supplicant.control().request("PING")?;
        if reply.trim() != "PONG" {
            return Err(CtrlError::Protocol {
                command: String::from("PING"),
                detail: format!("expected PONG, got '{}'", reply.trim()),
            });
        }
        Ok(())
    }
}

impl SupplicantOps for Stoppable<'_> {
    fn get(&mut self, name: &str) -> Result<String, CtrlError> {
        self.supplicant.get(name)
    }

    fn get_network(&mut self, id: u32, name: &str) -> Result<String, CtrlError> {
        self.supplicant.get_network(id, name)
    }

    fn list_networks(&mut self) -> Result<Vec<NetworkEntry>, CtrlError> {
        self.supplicant.list_networks()
    }

    fn status(&mut self) -> Result<Status, CtrlError> {
        self.check_stop()?;
        self.supplicant.status()
    }

    fn disconnect(&mut self) -> Result<(), CtrlError> {
        self.supplicant.disconnect()
    }

    fn attach(&mut self) -> Result<(), CtrlError> {
        if !self.attached {
            self.supplicant.attach()?;
            self.attached = true;
        }
        Ok(())
    }

    fn select_network(&mut self, id: u32) -> Result<(), CtrlError> {
        self.check_stop()?;
        self.supplicant.select_network(id)
    }

    fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, CtrlError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_stop()?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let event = self.supplicant.next_event(remaining.min(EVENT_SLICE))?;
            if event.is_some() || remaining <= EVENT_SLICE {
                return Ok(event);
            }
        }
    }
}

#[cfg(test)]
#[path = "drive_tests.rs"]
mod tests;
