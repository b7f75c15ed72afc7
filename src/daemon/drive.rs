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
//! 5. Derive its address with [`crate::wifi::address::association_address`] from the same
//!    inputs as `macveil wifi connect`, and connect with [`crate::wifi::drive::connect`].
//! 6. Follow the events. The supplicant reconnects to the same network by itself, with the same
//!    address. When the network is not regained within [`REGAIN_TIMEOUT`], choose again from
//!    step 3; under `random` that is a new activation with a new address. When the scans do not
//!    use random addresses, the link first gets a fresh random address while it is down, so
//!    that the scans do not show the lost network's address.
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
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::nm::DeviceStates;
use super::target::Keys;
use crate::addr::MacAddr;
use crate::config::{ClonedMac, LinkPolicy};
use crate::generate::mask::Mask;
use crate::link::state::ReferenceStore;
use crate::link::{Link, LinkError};
use crate::rng::OsRandom;
use crate::wifi::ctrl::ClientOptions;
use crate::wifi::drive::{self, LinkRadio, Radio};
use crate::wifi::supplicant::Supplicant;

mod session;

pub use session::{CONNECT_TIMEOUT, REGAIN_TIMEOUT};
use session::{Driver, End};

/// How long the driver waits for one supplicant reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long [`Drivers::stop_all`] waits for the threads to end: a reply in progress
/// ([`REPLY_TIMEOUT`]) and some slack. The stop ends any wait for events at once.
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Candidate {
    id: u32,
    ssid: Vec<u8>,
    priority: i32,
    /// The network's `key_mgmt`, such as `WPA-PSK` or `NONE`; empty when unknown.
    key_mgmt: String,
}

/// The file in the state folder that keeps each supplicant's candidates, so that a daemon
/// that restarts chooses among the networks of the first attach. `SELECT_NETWORK` has disabled
/// the others since, and the supplicant's list no longer shows them as enabled.
const CANDIDATES_FILE: &str = "wifi-candidates.json";
const CANDIDATES_LOCK: &str = "wifi-candidates.lock";

/// The candidates of one supplicant instance, identified by its control socket's inode.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedCandidates {
    socket: u64,
    candidates: Vec<Candidate>,
}

/// Reads the candidates saved for the supplicant of `ifname` whose socket has the inode
/// `socket`. A missing or unreadable file, or another supplicant's entry, gives `None`.
fn load_candidates(state_dir: &Path, ifname: &str, socket: u64) -> Option<Vec<Candidate>> {
    let text = std::fs::read_to_string(state_dir.join(CANDIDATES_FILE)).ok()?;
    let mut saved: HashMap<String, SavedCandidates> = serde_json::from_str(&text).ok()?;
    saved
        .remove(ifname)
        .filter(|entry| entry.socket == socket)
        .map(|entry| entry.candidates)
}

/// Saves the candidates of the supplicant of `ifname` whose socket has the inode `socket`.
fn save_candidates(
    state_dir: &Path,
    ifname: &str,
    socket: u64,
    candidates: &[Candidate],
) -> Result<(), crate::link::state::StateError> {
    let _lock = crate::link::state::lock(state_dir, CANDIDATES_LOCK)?;
    let mut saved: HashMap<String, SavedCandidates> =
        std::fs::read_to_string(state_dir.join(CANDIDATES_FILE))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
    saved.insert(
        ifname.to_string(),
        SavedCandidates {
            socket,
            candidates: candidates.to_vec(),
        },
    );
    crate::link::state::write_json(state_dir, CANDIDATES_FILE, &saved)
}

/// The candidates recorded for one supplicant instance.
type Recorded = Arc<Mutex<Option<Vec<Candidate>>>>;

/// Opens the radio of an interface inside a driver thread.
type OpenRadio = dyn Fn(&str) -> Result<Box<dyn Radio>, LinkError> + Send + Sync;

/// A request for a driver thread to stop. Besides the flag it has an eventfd, which the
/// thread waits on together with the supplicant's socket, so that a request ends any wait at
/// once and an idle thread never wakes on its own.
pub(super) struct StopSignal {
    requested: AtomicBool,
    wake: OwnedFd,
}

impl StopSignal {
    /// Creates a signal that is not requested yet.
    pub(super) fn new() -> io::Result<StopSignal> {
        // SAFETY: eventfd takes an initial value and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(StopSignal {
            requested: AtomicBool::new(false),
            // SAFETY: `fd` was just opened and nothing else owns it.
            wake: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Requests the stop and wakes the thread.
    pub(super) fn request(&self) {
        self.requested.store(true, Ordering::Relaxed);
        let one: u64 = 1;
        // SAFETY: the buffer is 8 readable bytes, as eventfd requires. A failed write (the
        // counter is full) still leaves the descriptor readable, which is all that matters.
        unsafe {
            libc::write(
                std::os::fd::AsRawFd::as_raw_fd(&self.wake),
                (&raw const one).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// Returns whether the stop was requested.
    pub(super) fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }

    /// Returns the descriptor that becomes readable with the request.
    pub(super) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }
}

/// A driver thread.
struct Running {
    index: u32,
    policy: AddressPolicy,
    private_scans: bool,
    /// The inode of the supplicant socket the driver talks to, which distinguishes a restarted
    /// supplicant from the same one.
    socket: u64,
    stop: Arc<StopSignal>,
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
                let saved = load_candidates(&self.settings.state_dir, ifname, socket);
                let recorded: Recorded = Arc::new(Mutex::new(saved));
                self.recorded
                    .insert(ifname.to_string(), (socket, Arc::clone(&recorded)));
                recorded
            }
        };

        // The previous driver of the link gets the stop request, and the new thread waits for
        // it before it touches the link, so that two drivers never work on one link at once.
        let previous = self.running.remove(ifname).map(|running| {
            running.stop.request();
            running.thread
        });
        let stop = match StopSignal::new() {
            Ok(stop) => Arc::new(stop),
            Err(err) => {
                log::error!(
                    "{ifname}: cannot create the stop signal of a driver (eventfd): {err}; \
                     wpa_supplicant connects on its own with the link's address until the next \
                     reload (SIGHUP)"
                );
                if let Some(previous) = previous {
                    let _ = previous.join();
                }
                return;
            }
        };
        let job = Job {
            ifname: ifname.to_string(),
            index: link.index,
            hidden: link.permanent,
            policy: address_policy.clone(),
            private_scans,
            settings: self.settings.clone(),
            driven: self.driven.clone(),
            recorded,
            socket,
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
            running.stop.request();
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
            running.stop.request();
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
            running.stop.request();
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
    /// The inode of the supplicant's control socket.
    socket: u64,
    stop: Arc<StopSignal>,
    open_radio: Arc<OpenRadio>,
}

impl Job {
    fn run(self) {
        let ifname = self.ifname.clone();
        if self.stop.is_requested() {
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
            not_found: None,
            saved: Some((self.settings.state_dir.clone(), self.socket)),
            stop: Arc::clone(&self.stop),
            regain_timeout: REGAIN_TIMEOUT,
        };
        // The supplicant's exit is watched through its pidfd, because a killed supplicant
        // sends nothing on its socket.
        let socket = self.settings.ctrl_dir.join(&ifname);
        let exited = match crate::wifi::process::socket_owner(&socket) {
            Ok(Some(pid)) => crate::wifi::process::pidfd(pid)
                .map_err(|err| log::debug!("{ifname}: no pidfd for wpa_supplicant: {err}"))
                .ok(),
            Ok(None) => None,
            Err(err) => {
                log::debug!("{ifname}: cannot find wpa_supplicant's process: {err}");
                None
            }
        };
        if exited.is_none() {
            log::warn!(
                "{ifname}: cannot watch wpa_supplicant's process, so a supplicant that is killed \
                 is noticed only when it starts again"
            );
        }
        let end = driver.run(radio.as_mut(), &mut supplicant, exited.as_ref());
        if end == End::SupplicantGone {
            self.clear_link(radio.as_mut());
        }
        self.driven.remove(self.index);
        match end {
            End::Stopped => log::debug!("{ifname}: driver stopped"),
            End::SupplicantGone => log::info!(
                "{ifname}: wpa_supplicant went away; the daemon drives the connections again \
                 when it restarts"
            ),
            End::Refused => {}
        }
    }
}

impl Job {
    /// Takes the link down with a fresh random address after its supplicant went away. The
    /// link still has the address of the network it was connected to, and a supplicant that
    /// starts next would send with it to whatever network it finds first. Down, the link sends
    /// nothing until a supplicant raises it, and then with an address no network has seen.
    fn clear_link(&self, radio: &mut dyn Radio) {
        let ifname = &self.ifname;
        let current = radio.read().ok().and_then(|state| state.address);
        let avoid: Vec<MacAddr> = current.into_iter().chain(self.hidden).collect();
        let initial = self.hidden.or(current);
        let result =
            crate::generate::random(&mut OsRandom, self.policy.mask.as_ref(), initial, &avoid)
                .map_err(|err| err.to_string())
                .and_then(|address| {
                    radio
                        .set_admin_state(false)
                        .map_err(|err| err.to_string())?;
                    radio.set_address(address).map_err(|err| err.to_string())?;
                    Ok(address)
                });
        match result {
            Ok(address) => log::info!(
                "{ifname}: down with {address} until wpa_supplicant starts again, so that no \
                 network sees the last network's address"
            ),
            Err(err) => log::error!(
                "{ifname}: cannot give the link a fresh address after wpa_supplicant went \
                 away: {err}; it is down if taking it down succeeded"
            ),
        }
    }
}

#[cfg(test)]
#[path = "drive_tests.rs"]
mod tests;
