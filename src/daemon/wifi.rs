//! Scan privacy for every running wpa_supplicant: turns on random scan addresses
//! (`wifi.scan-rand-mac-address=yes`) in each supplicant interface as soon as its control socket
//! appears, and once for every socket already there at start-up and after a reload.
//!
//! wpa_supplicant loses `MAC_RAND_SCAN` when it restarts, and it usually starts after the
//! daemon, so a single pass at start-up is not enough. The watcher follows the control folder
//! with inotify instead of polling: `IN_CREATE` fires when the supplicant binds `DIR/IFACE`. The
//! folder itself is created by the supplicant, so its parent (`/run`) is watched as well, and the
//! folder is watched from the moment it appears.
//!
//! Once scan privacy is on, a link whose address depends on the network gets a driver that
//! chooses its networks ([`super::drive`]). A reload checks every supplicant again: it starts,
//! keeps or stops each driver for the new policy.
//!
//! A failure is logged with the link and what to do, and changes nothing else: scan privacy
//! never takes a link down. The watcher does not turn scan privacy off for links whose policy
//! has it off; it leaves those supplicants as they are. It only talks to supplicants of the
//! caller's own namespace, because the socket names are link names of the supplicant's
//! namespace.
//!
//! NOTE: wpa_supplicant 2.10 binds its control socket after it has read the driver's
//! capabilities, so the command is accepted, but a supplicant with an enabled network
//! schedules its first scan before it reads the socket. That first scan uses the interface
//! address, which is the one the daemon set when the link's policy changes it.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::drive::Drivers;
use super::facts;
use crate::config::{Config, LinkPolicy};
use crate::link::{Link, LinkOps};
use crate::wifi::ctrl::{ClientOptions, CtrlError};
use crate::wifi::privacy::{ScanMethod, set_scan_privacy};
use crate::wifi::supplicant::Supplicant;

/// How long the daemon waits for one supplicant reply. The event loop waits meanwhile, so this
/// is shorter than the command line's timeout.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// The first and the last wait before a refused connection is tried again: about 0.6 s in
/// all, far longer than a bind takes.
const CONNECT_FIRST_DELAY: Duration = Duration::from_millis(10);
const CONNECT_LAST_DELAY: Duration = Duration::from_millis(320);

/// Room for a few dozen events. A longer queue is read over several calls.
const EVENT_BUFFER: usize = 4096;

/// The size of `struct inotify_event` without its name.
const EVENT_HEADER: usize = 16;

/// Watches a wpa_supplicant control folder and turns on scan privacy in each new supplicant
/// interface whose link policy requests it.
pub struct ScanPrivacyWatcher {
    inotify: OwnedFd,
    ctrl_dir: PathBuf,
    /// The watch on the parent of `ctrl_dir`, which reports the folder's creation.
    parent_watch: Option<i32>,
    /// The watch on `ctrl_dir` while it exists.
    dir_watch: Option<i32>,
    client: ClientOptions,
    sysfs_net: Option<PathBuf>,
    config: Config,
    /// The drivers of the links whose Wi-Fi connections the daemon chooses; `None` applies
    /// scan privacy only.
    drivers: Option<Drivers>,
}

impl ScanPrivacyWatcher {
    /// Starts watching `ctrl_dir` (wpa_supplicant's `ctrl_interface` folder, normally
    /// `/run/wpa_supplicant`). The client sockets are made under `client_dir`, which the
    /// supplicant must be able to reach (not a private `/tmp`). `sysfs_net` is
    /// `/sys/class/net` for the link facts the policy matches on.
    pub fn open(
        ctrl_dir: &Path,
        client_dir: &Path,
        sysfs_net: Option<PathBuf>,
        config: Config,
    ) -> io::Result<ScanPrivacyWatcher> {
        // SAFETY: inotify_init1 takes only flags and returns a new descriptor or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a descriptor that was just opened and that nothing else owns.
        let inotify = unsafe { OwnedFd::from_raw_fd(fd) };

        let mut watcher = ScanPrivacyWatcher {
            inotify,
            ctrl_dir: ctrl_dir.to_path_buf(),
            parent_watch: None,
            dir_watch: None,
            client: ClientOptions {
                parent_dir: Some(client_dir.to_path_buf()),
                timeout: REPLY_TIMEOUT,
            },
            sysfs_net,
            config,
            drivers: None,
        };

        // The parent is watched first, so that a folder created between the two calls is seen
        // by one of them.
        let mask = libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_ONLYDIR;
        if let Some(parent) = ctrl_dir.parent() {
            match watcher.add_watch(parent, mask) {
                Ok(wd) => watcher.parent_watch = Some(wd),
                // NOTE: without the parent's watch, a control folder created later is only
                // seen after a reload (SIGHUP) or a restart of the daemon.
                Err(err) => log::warn!(
                    "cannot watch {} for wpa_supplicant's control folder: {err}; scan \
                     privacy is only applied to supplicants that run when the daemon starts \
                     or reloads",
                    parent.display()
                ),
            }
        }
        watcher.watch_ctrl_dir();
        Ok(watcher)
    }

    /// Opens the watcher for the daemon on `ctrl_dir`, with client sockets under the daemon's
    /// state folder, and applies scan privacy to the supplicants that already run, then starts
    /// their drivers. A watcher that cannot be opened is logged, and the daemon runs on without
    /// it.
    pub fn start(
        ctrl_dir: impl AsRef<Path>,
        state_dir: &Path,
        config: Config,
        drivers: Drivers,
        ops: &mut dyn LinkOps,
    ) -> Option<ScanPrivacyWatcher> {
        let sysfs_net = Some(PathBuf::from("/sys/class/net"));
        match ScanPrivacyWatcher::open(ctrl_dir.as_ref(), state_dir, sysfs_net, config) {
            Ok(mut watcher) => {
                watcher.set_drivers(drivers);
                watcher.apply_all(ops);
                Some(watcher)
            }
            Err(err) => {
                log::error!(
                    "cannot watch for wpa_supplicant (inotify): {err}; scan privacy is not                      applied, so run 'macveil wifi scan-privacy IFACE on' after each                      supplicant start"
                );
                None
            }
        }
    }

    /// Replaces the configuration after a reload.
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
    }

    /// Hands the watcher the drivers that choose the networks of links whose address depends on
    /// the network ([`LinkPolicy::drives_wifi_connections`]). From then on each supplicant that
    /// appears for such a link gets a driver, after scan privacy is on.
    pub fn set_drivers(&mut self, drivers: Drivers) {
        self.drivers = Some(drivers);
    }

    /// Stops every driver, for the daemon's exit.
    pub fn stop_drivers(&mut self) {
        if let Some(drivers) = &mut self.drivers {
            drivers.stop_all();
        }
    }

    /// Applies scan privacy to every supplicant socket in the control folder. Returns how many
    /// supplicants now have it on.
    pub fn apply_all(&mut self, ops: &mut dyn LinkOps) -> usize {
        if self.dir_watch.is_none() {
            self.watch_ctrl_dir();
        }
        let Ok(entries) = fs::read_dir(&self.ctrl_dir) else {
            return 0;
        };
        let names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_socket()))
            .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
            .collect();
        self.apply(ops, &names)
    }

    /// Reads the pending inotify events and applies scan privacy to each supplicant socket that
    /// appeared. Returns how many supplicants now have it on.
    pub fn handle(&mut self, ops: &mut dyn LinkOps) -> usize {
        let mut created = Vec::new();
        let mut rescan = false;
        let mut buffer = [0u8; EVENT_BUFFER];
        loop {
            // SAFETY: `buffer` is writable for its whole length during the call.
            let read = unsafe {
                libc::read(
                    self.inotify.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                )
            };
            if read < 0 {
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => break,
                    _ => {
                        log::error!(
                            "reading wpa_supplicant folder events failed: {err}; scan privacy \
                             is applied again at the next reload (SIGHUP)"
                        );
                        break;
                    }
                }
            }
            let read = read as usize;
            for event in parse_events(&buffer[..read]) {
                self.note(event, &mut created, &mut rescan);
            }
        }

        if rescan {
            return self.apply_all(ops);
        }
        created.retain(|name| self.is_socket(name));
        created.dedup();
        self.apply(ops, &created)
    }

    /// Updates the watches for one event and collects the socket names it reports.
    fn note(&mut self, event: Event, created: &mut Vec<String>, rescan: &mut bool) {
        if event.mask & libc::IN_Q_OVERFLOW != 0 {
            log::warn!("wpa_supplicant folder events overflowed; checking every supplicant");
            *rescan = true;
            return;
        }
        if Some(event.wd) == self.dir_watch {
            if event.mask & libc::IN_IGNORED != 0 {
                // The folder was removed; the parent's watch reports it if it comes back.
                self.dir_watch = None;
            } else if let Some(name) = event.name {
                created.push(name);
            }
            return;
        }
        if Some(event.wd) == self.parent_watch {
            let ours = self.ctrl_dir.file_name().and_then(|name| name.to_str());
            if event.name.is_some() && event.name.as_deref() == ours {
                self.watch_ctrl_dir();
                // Sockets bound before the watch existed are found by listing the folder.
                *rescan = true;
            }
        }
    }

    /// Watches the control folder when it exists.
    fn watch_ctrl_dir(&mut self) {
        let mask = libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_ONLYDIR;
        match self.add_watch(&self.ctrl_dir, mask) {
            Ok(wd) => self.dir_watch = Some(wd),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                log::debug!(
                    "{} does not exist yet; waiting for wpa_supplicant to create it",
                    self.ctrl_dir.display()
                );
            }
            Err(err) => log::warn!(
                "cannot watch wpa_supplicant's control folder {}: {err}; scan privacy is only \
                 applied at start-up and after a reload",
                self.ctrl_dir.display()
            ),
        }
    }

    fn add_watch(&self, path: &Path, mask: u32) -> io::Result<i32> {
        let path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
        // SAFETY: `path` is a NUL-terminated string that outlives the call, and the descriptor
        // is an open inotify instance.
        let wd = unsafe { libc::inotify_add_watch(self.inotify.as_raw_fd(), path.as_ptr(), mask) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(wd)
    }

    fn is_socket(&self, name: &str) -> bool {
        fs::symlink_metadata(self.ctrl_dir.join(name))
            .is_ok_and(|meta| meta.file_type().is_socket())
    }

    /// Turns on scan privacy for each named supplicant interface whose link policy requests it.
    fn apply(&mut self, ops: &mut dyn LinkOps, names: &[String]) -> usize {
        if names.is_empty() {
            return 0;
        }
        let links = match ops.links() {
            Ok(links) => links,
            Err(err) => {
                log::error!(
                    "cannot list links to apply scan privacy to wpa_supplicant interfaces {}: \
                     {err}; it is applied again at the next reload (SIGHUP)",
                    names.join(", ")
                );
                return 0;
            }
        };

        let mut applied = 0;
        for name in names {
            // The supplicant also makes sockets that are not links, such as `p2p-dev-wlan0`.
            let Some(link) = links.iter().find(|link| &link.name == name) else {
                log::debug!("wpa_supplicant socket {name} names no link here; ignored");
                continue;
            };
            // Only the permanent address is matched, without a reference address, because
            // Wi-Fi drivers report one.
            let facts = facts::of(link, None, self.sysfs_net.as_deref());
            let policy = self.config.policy_for(&facts);
            // Scan privacy comes first, so that the driver's scans use random addresses.
            let private_scans = self.requests_scan_privacy(link, &policy) && self.turn_on(name);
            if private_scans {
                applied += 1;
            }
            if let Some(drivers) = &mut self.drivers {
                drivers.consider(link, &policy, private_scans);
            }
        }
        applied
    }

    fn requests_scan_privacy(&self, link: &Link, policy: &LinkPolicy) -> bool {
        // A link macveil does not manage (`macveil.manage=no`, or a virtual link) is left alone,
        // its supplicant included.
        let requested = policy.managed
            && policy
                .scan_rand_mac_address
                .as_ref()
                .is_some_and(|setting| setting.value);
        if !requested {
            log::debug!(
                "{}: not managed, or wifi.scan-rand-mac-address is off; wpa_supplicant's scan \
                 settings are left as they are",
                link.name
            );
        }
        requested
    }

    fn turn_on(&self, name: &str) -> bool {
        let result = self
            .connect(name)
            .and_then(|mut supplicant| set_scan_privacy(&mut supplicant, true, None));
        match result {
            Ok(privacy) => {
                match privacy.method {
                    ScanMethod::Kernel => log::info!(
                        "{name}: wpa_supplicant scans now use a new random address each time"
                    ),
                    ScanMethod::Supplicant => log::info!(
                        "{name}: wpa_supplicant gives the link a random address before scans \
                         (preassoc_mac_addr={})",
                        privacy.preassoc_mac_addr
                    ),
                    ScanMethod::InterfaceAddress => log::warn!(
                        "{name}: the driver cannot randomize scan addresses, so probe requests \
                         carry the link's current address; set a random or stable \
                         wifi.cloned-mac-address so that it is not the permanent one"
                    ),
                }
                privacy.method != ScanMethod::InterfaceAddress
            }
            Err(err) => {
                log::error!(
                    "{name}: cannot turn on random scan addresses in wpa_supplicant: {err}; \
                     probe requests may carry the link's address until \
                     'macveil wifi scan-privacy {name} on' succeeds"
                );
                false
            }
        }
    }
}

impl ScanPrivacyWatcher {
    /// Connects to the supplicant socket `name`. The kernel creates the socket file, which
    /// raises `IN_CREATE`, before it registers the bound socket (`unix_bind` in
    /// net/unix/af_unix.c), and a connection in between is refused. Refused connections are
    /// therefore retried for a short while.
    fn connect(&self, name: &str) -> Result<Supplicant, CtrlError> {
        let mut delay = CONNECT_FIRST_DELAY;
        loop {
            match Supplicant::open(&self.ctrl_dir, name, &self.client) {
                Err(CtrlError::Connect { source, .. })
                    if source.kind() == io::ErrorKind::ConnectionRefused
                        && delay <= CONNECT_LAST_DELAY =>
                {
                    std::thread::sleep(delay);
                    delay *= 2;
                }
                result => return result,
            }
        }
    }
}

impl AsRawFd for ScanPrivacyWatcher {
    fn as_raw_fd(&self) -> RawFd {
        self.inotify.as_raw_fd()
    }
}

/// One `struct inotify_event`.
#[derive(Debug, PartialEq, Eq)]
struct Event {
    wd: i32,
    mask: u32,
    name: Option<String>,
}

/// Splits what `read(2)` returned on an inotify descriptor into events. The kernel returns
/// whole events only; each is `wd`, `mask`, `cookie`, `len` (native-endian 32-bit fields), then
/// `len` bytes of NUL-padded name.
fn parse_events(bytes: &[u8]) -> Vec<Event> {
    let field = |at: usize| -> [u8; 4] { bytes[at..at + 4].try_into().unwrap_or_default() };
    let mut events = Vec::new();
    let mut at = 0;
    while at + EVENT_HEADER <= bytes.len() {
        let wd = i32::from_ne_bytes(field(at));
        let mask = u32::from_ne_bytes(field(at + 4));
        let len = u32::from_ne_bytes(field(at + 12)) as usize;
        let end = (at + EVENT_HEADER + len).min(bytes.len());
        let raw = &bytes[at + EVENT_HEADER..end];
        let name = raw
            .split(|&byte| byte == 0)
            .next()
            .filter(|name| !name.is_empty())
            .map(|name| String::from_utf8_lossy(name).into_owned());
        events.push(Event { wd, mask, name });
        at = end;
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceText;
    use crate::link::{AssignType, Errno, IpAddress, LinkError, OperState, Request, Route};
    use crate::wifi::ctrl::fake::{Answer, FakeServer};

    /// Links for the watcher to look up; any change request fails the test, because the
    /// watcher must never change a link.
    struct Links(Vec<Link>);

    impl LinkOps for Links {
        fn netns_key(&self) -> &str {
            "test"
        }
        fn links(&mut self) -> Result<Vec<Link>, LinkError> {
            Ok(self.0.clone())
        }
        fn link(&mut self, index: u32) -> Result<Option<Link>, LinkError> {
            Ok(self.0.iter().find(|link| link.index == index).cloned())
        }
        fn execute(&mut self, _requests: &[Request]) -> Result<Vec<Result<(), Errno>>, LinkError> {
            panic!("the scan privacy watcher changed a link");
        }
        fn ip_addresses(&mut self) -> Result<Vec<IpAddress>, LinkError> {
            Ok(Vec::new())
        }
        fn routes(&mut self) -> Result<Vec<Route>, LinkError> {
            Ok(Vec::new())
        }
    }

    fn wifi_link(name: &str, index: u32) -> Link {
        let address = "3c:22:fb:01:02:03".parse().unwrap();
        Link {
            index,
            name: name.into(),
            info_kind: None,
            wireless: true,
            link_type: 1,
            driver: Some("iwlwifi".into()),
            admin_up: false,
            lower_up: false,
            operstate: OperState::Down,
            address: Some(address),
            permanent: Some(address),
            permanent_source: None,
            assign_type: AssignType::Permanent,
            parent: None,
            ipv6_addr_gen_mode: None,
        }
    }

    /// Builds a sysfs tree in which each named link is a physical device, as `facts::of` reads it.
    fn sysfs(links: &[(&str, u32)]) -> tempfile::TempDir {
        let net = tempfile::tempdir().unwrap();
        for (name, index) in links {
            let dir = net.path().join(name);
            fs::create_dir_all(dir.join("device")).unwrap();
            fs::write(dir.join("ifindex"), format!("{index}\n")).unwrap();
        }
        net
    }

    fn config(text: &str) -> Config {
        Config::from_sources(&[SourceText::new("test.conf", text)]).unwrap()
    }

    /// Binds a fake supplicant socket at `DIR/NAME`, as wpa_supplicant does when it starts.
    fn supplicant(dir: &Path, name: &str) -> FakeServer {
        FakeServer::start_at(&dir.join(name), |command| match command {
            "PING" => Answer::reply("PONG\n"),
            "GET mac_addr" => Answer::reply("0\n"),
            command if command.starts_with("MAC_RAND_SCAN ") || command.starts_with("SET ") => {
                Answer::reply("OK\n")
            }
            _ => Answer::reply("UNKNOWN COMMAND\n"),
        })
    }

    /// Waits until the inotify descriptor is readable, then lets the watcher handle it, as the
    /// daemon's poll loop does.
    fn poll_and_handle(watcher: &mut ScanPrivacyWatcher, ops: &mut Links) -> usize {
        let mut fds = [libc::pollfd {
            fd: watcher.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: `fds` is a valid array of one pollfd for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, 5000) };
        assert_eq!(ready, 1, "no inotify event within 5 seconds");
        watcher.handle(ops)
    }

    const ON: &str = "[device-wlan0]\nmatch-device=interface-name:wlan0\n\
                      wifi.scan-rand-mac-address=yes\n\
                      [device-wlan1]\nmatch-device=interface-name:wlan1\n\
                      wifi.scan-rand-mac-address=no\n";

    #[test]
    fn new_supplicant_socket_gets_random_scan_addresses() {
        let ctrl = tempfile::tempdir().unwrap();
        let client = tempfile::tempdir().unwrap();
        let net = sysfs(&[("wlan0", 3), ("wlan1", 4)]);
        let mut ops = Links(vec![wifi_link("wlan0", 3)]);
        let mut watcher = ScanPrivacyWatcher::open(
            ctrl.path(),
            client.path(),
            Some(net.path().into()),
            config(ON),
        )
        .unwrap();
        assert_eq!(watcher.apply_all(&mut ops), 0);

        let server = supplicant(ctrl.path(), "wlan0");
        assert_eq!(poll_and_handle(&mut watcher, &mut ops), 1);

        let commands = server.commands();
        for expected in [
            "MAC_RAND_SCAN all enable=1",
            "SET preassoc_mac_addr 0",
            "SET gas_rand_mac_addr 1",
        ] {
            assert!(commands.contains(&expected.to_string()), "{commands:?}");
        }
    }

    #[test]
    fn policy_off_sends_nothing() {
        let ctrl = tempfile::tempdir().unwrap();
        let client = tempfile::tempdir().unwrap();
        let net = sysfs(&[("wlan0", 3), ("wlan1", 4)]);
        let mut ops = Links(vec![wifi_link("wlan1", 4)]);
        let mut watcher = ScanPrivacyWatcher::open(
            ctrl.path(),
            client.path(),
            Some(net.path().into()),
            config(ON),
        )
        .unwrap();

        let server = supplicant(ctrl.path(), "wlan1");
        assert_eq!(poll_and_handle(&mut watcher, &mut ops), 0);
        assert_eq!(server.commands(), Vec::<String>::new());
    }

    #[test]
    fn default_policy_turns_scan_privacy_on() {
        // No file sets wifi.scan-rand-mac-address: the default is yes.
        let ctrl = tempfile::tempdir().unwrap();
        let client = tempfile::tempdir().unwrap();
        let net = sysfs(&[("wlan0", 3), ("wlan1", 4)]);
        let mut ops = Links(vec![wifi_link("wlan0", 3)]);
        let mut watcher = ScanPrivacyWatcher::open(
            ctrl.path(),
            client.path(),
            Some(net.path().into()),
            Config::embedded_default(),
        )
        .unwrap();

        let server = supplicant(ctrl.path(), "wlan0");
        assert_eq!(poll_and_handle(&mut watcher, &mut ops), 1);
        assert!(
            server
                .commands()
                .contains(&"MAC_RAND_SCAN all enable=1".to_string())
        );
    }

    #[test]
    fn control_folder_created_later_is_watched() {
        let run = tempfile::tempdir().unwrap();
        let ctrl_dir = run.path().join("wpa_supplicant");
        let client = tempfile::tempdir().unwrap();
        let net = sysfs(&[("wlan0", 3), ("wlan1", 4)]);
        let mut ops = Links(vec![wifi_link("wlan0", 3)]);
        let mut watcher = ScanPrivacyWatcher::open(
            &ctrl_dir,
            client.path(),
            Some(net.path().into()),
            config(ON),
        )
        .unwrap();
        assert_eq!(watcher.dir_watch, None);

        // The supplicant creates its folder, then binds its socket in it.
        fs::create_dir(&ctrl_dir).unwrap();
        assert_eq!(poll_and_handle(&mut watcher, &mut ops), 0);
        assert!(watcher.dir_watch.is_some());

        let server = supplicant(&ctrl_dir, "wlan0");
        assert_eq!(poll_and_handle(&mut watcher, &mut ops), 1);
        assert!(
            server
                .commands()
                .contains(&"MAC_RAND_SCAN all enable=1".to_string())
        );
    }

    #[test]
    fn socket_of_no_link_is_ignored() {
        let ctrl = tempfile::tempdir().unwrap();
        let client = tempfile::tempdir().unwrap();
        let net = sysfs(&[("wlan0", 3), ("wlan1", 4)]);
        let mut ops = Links(vec![wifi_link("wlan0", 3)]);
        let mut watcher = ScanPrivacyWatcher::open(
            ctrl.path(),
            client.path(),
            Some(net.path().into()),
            config(ON),
        )
        .unwrap();

        let server = supplicant(ctrl.path(), "p2p-dev-wlan0");
        assert_eq!(poll_and_handle(&mut watcher, &mut ops), 0);
        assert_eq!(server.commands(), Vec::<String>::new());
    }

    #[test]
    fn unmanaged_link_is_left_alone() {
        let ctrl = tempfile::tempdir().unwrap();
        let client = tempfile::tempdir().unwrap();
        let net = sysfs(&[("wlan0", 3)]);
        let text = "[device-wlan0]\nmatch-device=interface-name:wlan0\nmacveil.manage=no\n";
        let mut ops = Links(vec![wifi_link("wlan0", 3)]);
        let mut watcher = ScanPrivacyWatcher::open(
            ctrl.path(),
            client.path(),
            Some(net.path().into()),
            config(text),
        )
        .unwrap();

        let server = supplicant(ctrl.path(), "wlan0");
        assert_eq!(poll_and_handle(&mut watcher, &mut ops), 0);
        assert_eq!(server.commands(), Vec::<String>::new());
    }

    #[test]
    fn refused_socket_is_retried_until_bound() {
        let ctrl = tempfile::tempdir().unwrap();
        let client = tempfile::tempdir().unwrap();
        let net = sysfs(&[("wlan0", 3)]);
        let mut ops = Links(vec![wifi_link("wlan0", 3)]);
        let mut watcher = ScanPrivacyWatcher::open(
            ctrl.path(),
            client.path(),
            Some(net.path().into()),
            config(ON),
        )
        .unwrap();

        // A socket file with no bound socket behind it refuses connections, as a new one does
        // until the kernel has registered it.
        let path = ctrl.path().join("wlan0");
        drop(std::os::unix::net::UnixDatagram::bind(&path).unwrap());
        let dir = ctrl.path().to_path_buf();
        let binder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            fs::remove_file(dir.join("wlan0")).unwrap();
            supplicant(&dir, "wlan0")
        });

        assert_eq!(watcher.apply_all(&mut ops), 1);
        let server = binder.join().unwrap();
        assert!(
            server
                .commands()
                .contains(&"MAC_RAND_SCAN all enable=1".to_string())
        );
    }

    #[test]
    fn events_parse_with_padded_names() {
        let mut bytes = Vec::new();
        for (wd, mask, name) in [
            (1i32, libc::IN_CREATE, &b"wlan0\0\0\0"[..]),
            (2, 0x8000, b""),
        ] {
            bytes.extend_from_slice(&wd.to_ne_bytes());
            bytes.extend_from_slice(&mask.to_ne_bytes());
            bytes.extend_from_slice(&0u32.to_ne_bytes());
            bytes.extend_from_slice(&(name.len() as u32).to_ne_bytes());
            bytes.extend_from_slice(name);
        }
        assert_eq!(
            parse_events(&bytes),
            vec![
                Event {
                    wd: 1,
                    mask: libc::IN_CREATE,
                    name: Some("wlan0".into())
                },
                Event {
                    wd: 2,
                    mask: 0x8000,
                    name: None
                },
            ]
        );
    }
}
