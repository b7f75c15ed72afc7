//! A stand-in for a network manager that is as eager as one can be: it raises every new link at
//! the first moment a real manager would consider it, then transmits on it without pause.
//!
//! NetworkManager and systemd-networkd leave a new link alone until udev has processed it.
//! systemd-networkd takes a link as initialised once udev's database entry for it exists
//! (`/run/udev/data/n<ifindex>`), which it checks when the kernel announces the link and again
//! when udev broadcasts its event; NetworkManager waits for udev's event. The manager here, in
//! [`RaiseWhen::UdevInitialized`] mode, raises a link at the first of:
//! - the kernel's `RTM_NEWLINK` for a link whose database entry already exists;
//! - udev's broadcast of the link's `add` event (the libudev monitor group of
//!   `NETLINK_KOBJECT_UEVENT`);
//! - the database entry appearing (inotify on the database folder, which reports the entry the
//!   moment udev renames it into place, sooner than any polling);
//! - a poll of the database entry every [`POLL_INTERVAL`], as a fallback.
//!
//! In [`RaiseWhen::KernelAnnounces`] mode it ignores udev and raises a link the moment the
//! kernel announces it, the earliest any program can.
//!
//! Once a link is up, the manager sends a probe frame on it (see `support::packet`) at once and
//! then every [`PROBE_INTERVAL`]. The kernel adds its own traffic when a link comes up (IPv6
//! router solicitation, duplicate address detection, MLD). All of it carries whatever address
//! the link has when the frame leaves.
//!
//! The manager never takes a link down and never raises it a second time, and it never touches
//! a link that was already up when it first saw it (`lo`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use macveil::link::{LinkError, LinkEvent, LinkHandle, LinkMonitor, LinkOps, Netns, Request};

use super::packet::PacketSocket;

/// Interval between two probes on one link.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(1);

/// Interval between two polls of the database entries of links udev has not finished.
pub const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// How long the loop sleeps when no link is pending or up, before it checks its stop flag.
const IDLE_TIMEOUT: Duration = Duration::from_millis(20);

/// The libudev monitor group of `NETLINK_KOBJECT_UEVENT`, on which udevd broadcasts each event
/// after processing it (group 1 carries the kernel's raw uevents).
const UDEV_MONITOR_GROUP: u32 = 2;

/// The first bytes of a message on the udev monitor group.
const UDEV_MONITOR_PREFIX: &[u8; 8] = b"libudev\0";

/// `UDEV_MONITOR_MAGIC`, in network byte order in the message header.
const UDEV_MONITOR_MAGIC: u32 = 0xfeed_cafe;

/// When the manager raises a new link.
#[derive(Debug, Clone)]
pub enum RaiseWhen {
    /// Once udev reports the link initialised. The path is udev's database folder, reachable
    /// from the test process (`/run/udev/data` inside the lab's mount namespace).
    UdevInitialized(PathBuf),
    /// The moment the kernel announces the link.
    KernelAnnounces,
}

/// The signal that made the manager raise a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// The kernel's `RTM_NEWLINK`: in udev mode, for a link whose database entry existed.
    Kernel,
    /// udev's broadcast of the `add` event.
    UdevEvent,
    /// inotify reported the database entry.
    DatabaseEntry,
    /// A poll found the database entry.
    Poll,
}

/// Counters the manager keeps while it runs.
#[derive(Debug, Default, Clone)]
pub struct ManagerStats {
    /// Links raised, by the signal that came first.
    pub raised: HashMap<Signal, u64>,
    /// Probes sent.
    pub probes_sent: u64,
    /// Probes the kernel refused, by error: for example ENETDOWN while a link was down for an
    /// address change.
    pub probes_refused: BTreeMap<String, u64>,
    /// When each link was raised, by index.
    pub raised_at: HashMap<u32, Instant>,
    /// Errors from raising links, other than the link having gone.
    pub errors: Vec<String>,
}

/// A running eager manager. Dropping it stops its thread.
pub struct EagerManager {
    stats: Arc<Mutex<ManagerStats>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EagerManager {
    /// Opens the manager's sockets in `netns` and starts its thread. Every link that appears
    /// after this returns is raised.
    pub fn start(netns: &Netns, raise_when: RaiseWhen) -> EagerManager {
        let sockets = Sockets::open(netns, &raise_when)
            .unwrap_or_else(|error| panic!("failed to start the eager manager: {error}"));
        let stats = Arc::new(Mutex::new(ManagerStats::default()));
        let stop = Arc::new(AtomicBool::new(false));

        let thread = {
            let stats = Arc::clone(&stats);
            let stop = Arc::clone(&stop);
            let database = match raise_when {
                RaiseWhen::UdevInitialized(folder) => Some(folder),
                RaiseWhen::KernelAnnounces => None,
            };
            thread::Builder::new()
                .name(String::from("eager-manager"))
                .spawn(move || {
                    let mut manager = Manager {
                        sockets,
                        database,
                        stats,
                        known: HashMap::new(),
                        pending: BTreeSet::new(),
                        up: BTreeSet::new(),
                        sequence: 0,
                    };
                    manager.run(&stop);
                })
                .expect("failed to start the eager manager's thread")
        };
        EagerManager {
            stats,
            stop,
            thread: Some(thread),
        }
    }

    /// Returns a copy of the counters. Panics when raising a link failed.
    pub fn stats(&self) -> ManagerStats {
        let stats = self.stats.lock().expect("manager stats lock").clone();
        assert!(
            stats.errors.is_empty(),
            "the eager manager failed: {}",
            stats.errors.join("; ")
        );
        stats
    }
}

impl Drop for EagerManager {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The manager's sockets, all in the lab's network namespace.
struct Sockets {
    links: LinkMonitor,
    handle: LinkHandle,
    probes: PacketSocket,
    /// The udev monitor socket and the inotify watch on the database folder, in udev mode.
    udev: Option<(OwnedFd, OwnedFd)>,
}

impl Sockets {
    fn open(netns: &Netns, raise_when: &RaiseWhen) -> io::Result<Sockets> {
        let links = LinkMonitor::open(netns).map_err(io::Error::other)?;
        let handle = LinkHandle::open(netns).map_err(io::Error::other)?;
        let probes = PacketSocket::probe_sender(netns)?;
        let udev = match raise_when {
            RaiseWhen::UdevInitialized(folder) => {
                let monitor = netns
                    .run_inside(open_udev_monitor)
                    .map_err(io::Error::other)??;
                Some((monitor, watch_folder(folder)?))
            }
            RaiseWhen::KernelAnnounces => None,
        };
        Ok(Sockets {
            links,
            handle,
            probes,
            udev,
        })
    }
}

/// The manager's record of a link.
struct Known {
    /// Up when the manager first saw it, so not the manager's to raise.
    was_up: bool,
}

struct Manager {
    sockets: Sockets,
    database: Option<PathBuf>,
    stats: Arc<Mutex<ManagerStats>>,
    known: HashMap<u32, Known>,
    /// Links waiting for udev, in udev mode.
    pending: BTreeSet<u32>,
    /// Links the manager raised and transmits on.
    up: BTreeSet<u32>,
    sequence: u32,
}

impl Manager {
    fn run(&mut self, stop: &AtomicBool) {
        let mut next_probe = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let busy = !self.pending.is_empty() || !self.up.is_empty();
            let timeout = if busy { POLL_INTERVAL } else { IDLE_TIMEOUT };
            if let Err(error) = self.wait(timeout) {
                self.fail(format!("poll failed: {error}"));
                return;
            }

            if let Err(error) = self.read_link_events() {
                self.fail(format!("reading link notifications failed: {error}"));
                return;
            }
            if let Err(error) = self.read_udev_events() {
                self.fail(format!("reading udev events failed: {error}"));
                return;
            }
            if let Err(error) = self.read_database_entries() {
                self.fail(format!("reading inotify events failed: {error}"));
                return;
            }
            self.poll_pending();

            if Instant::now() >= next_probe {
                self.send_probes();
                next_probe = Instant::now() + PROBE_INTERVAL;
            }
        }
    }

    /// Blocks until one of the sockets is readable or `timeout` passes.
    fn wait(&self, timeout: Duration) -> io::Result<()> {
        let mut fds = vec![poll_entry(self.sockets.links.as_raw_fd())];
        if let Some((monitor, inotify)) = &self.sockets.udev {
            fds.push(poll_entry(monitor.as_raw_fd()));
            fds.push(poll_entry(inotify.as_raw_fd()));
        }
        let timeout_ms = timeout.as_millis().max(1) as libc::c_int;

        // SAFETY: fds is a live array of pollfd whose length is passed.
        let result = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if result < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
        Ok(())
    }

    fn read_link_events(&mut self) -> Result<(), LinkError> {
        loop {
            let events = match self.sockets.links.receive() {
                Ok(Some(events)) => events,
                Ok(None) => return Ok(()),
                Err(LinkError::NoBuffers { .. }) => {
                    // Notifications were lost: every link present may be new.
                    let links = self.sockets.handle.links()?;
                    links
                        .into_iter()
                        .map(LinkEvent::New)
                        .collect::<Vec<LinkEvent>>()
                }
                Err(error) => return Err(error),
            };
            for event in events {
                match event {
                    LinkEvent::New(link) => self.link_announced(link.index, link.admin_up),
                    LinkEvent::Removed { index, .. } => self.forget(index),
                }
            }
        }
    }

    fn link_announced(&mut self, index: u32, admin_up: bool) {
        if self.known.contains_key(&index) {
            return;
        }
        self.known.insert(index, Known { was_up: admin_up });
        if admin_up {
            return;
        }
        match &self.database {
            None => self.raise(index, Signal::Kernel),
            Some(folder) if database_entry(folder, index).exists() => {
                self.raise(index, Signal::Kernel)
            }
            Some(_) => {
                self.pending.insert(index);
            }
        }
    }

    fn read_udev_events(&mut self) -> io::Result<()> {
        let Some((monitor, _)) = &self.sockets.udev else {
            return Ok(());
        };
        let fd = monitor.as_raw_fd();
        let mut buffer = vec![0u8; 16384];
        loop {
            // SAFETY: the buffer lives for the call and its length is passed.
            let length = unsafe {
                libc::recv(
                    fd,
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if length < 0 {
                let error = io::Error::last_os_error();
                return match error.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(()),
                    _ => Err(error),
                };
            }
            let properties = udev_event_properties(&buffer[..length as usize]);
            let is_net_add = properties.get("SUBSYSTEM").map(String::as_str) == Some("net")
                && properties.get("ACTION").map(String::as_str) == Some("add");
            let index = properties
                .get("IFINDEX")
                .and_then(|value| value.parse::<u32>().ok());
            if let (true, Some(index)) = (is_net_add, index) {
                self.initialised(index, Signal::UdevEvent);
            }
        }
    }

    fn read_database_entries(&mut self) -> io::Result<()> {
        let Some((_, inotify)) = &self.sockets.udev else {
            return Ok(());
        };
        let fd = inotify.as_raw_fd();
        let mut buffer = vec![0u8; 16384];
        loop {
            // SAFETY: the buffer lives for the call and its length is passed.
            let length = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) };
            if length < 0 {
                let error = io::Error::last_os_error();
                return match error.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(()),
                    _ => Err(error),
                };
            }
            for name in inotify_names(&buffer[..length as usize]) {
                // Network links have entries named "n<ifindex>".
                let index = name
                    .strip_prefix('n')
                    .and_then(|digits| digits.parse::<u32>().ok());
                if let Some(index) = index {
                    self.initialised(index, Signal::DatabaseEntry);
                }
            }
        }
    }

    fn poll_pending(&mut self) {
        let Some(folder) = &self.database else {
            return;
        };
        let ready: Vec<u32> = self
            .pending
            .iter()
            .copied()
            .filter(|index| database_entry(folder, *index).exists())
            .collect();
        for index in ready {
            self.initialised(index, Signal::Poll);
        }
    }

    /// Raises `index` now that udev has finished it, unless it is raised already or was up
    /// before the manager saw it.
    fn initialised(&mut self, index: u32, signal: Signal) {
        if self.up.contains(&index) {
            return;
        }
        if self.known.get(&index).is_some_and(|known| known.was_up) {
            return;
        }
        self.raise(index, signal);
    }

    fn raise(&mut self, index: u32, signal: Signal) {
        self.pending.remove(&index);
        if !self.up.insert(index) {
            return;
        }
        let raised_at = Instant::now();
        let request = Request::SetAdminState { index, up: true };
        let result = self.sockets.handle.execute(&[request]);
        match result.as_deref() {
            Ok([Ok(())]) => {}
            // ENODEV: the link was removed before the manager got to it.
            Ok([Err(errno)]) if errno.0 == libc::ENODEV => {
                self.up.remove(&index);
                return;
            }
            Ok(other) => {
                self.fail(format!("raising link {index} failed: {other:?}"));
                return;
            }
            Err(error) => {
                self.fail(format!("raising link {index} failed: {error}"));
                return;
            }
        }
        self.send_probe(index);

        let mut stats = self.stats.lock().expect("manager stats lock");
        *stats.raised.entry(signal).or_default() += 1;
        stats.raised_at.insert(index, raised_at);
    }

    fn send_probes(&mut self) {
        let up: Vec<u32> = self.up.iter().copied().collect();
        for index in up {
            self.send_probe(index);
        }
    }

    fn send_probe(&mut self, index: u32) {
        self.sequence = self.sequence.wrapping_add(1);
        let result = self.sockets.probes.send_probe(index, self.sequence);
        let mut stats = self.stats.lock().expect("manager stats lock");
        match result {
            Ok(()) => stats.probes_sent += 1,
            // ENXIO or ENODEV: the link is gone. The removal notification follows.
            Err(error) if matches!(error.raw_os_error(), Some(libc::ENXIO | libc::ENODEV)) => {
                drop(stats);
                self.up.remove(&index);
            }
            Err(error) => *stats.probes_refused.entry(error.to_string()).or_default() += 1,
        }
    }

    fn forget(&mut self, index: u32) {
        self.known.remove(&index);
        self.pending.remove(&index);
        self.up.remove(&index);
    }

    fn fail(&self, error: String) {
        self.stats
            .lock()
            .expect("manager stats lock")
            .errors
            .push(error);
    }
}

fn poll_entry(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// udev's database entry for the network link `index`.
fn database_entry(folder: &Path, index: u32) -> PathBuf {
    folder.join(format!("n{index}"))
}

/// Opens a non-blocking socket on udev's monitor group, in the calling thread's namespace.
fn open_udev_monitor() -> io::Result<OwnedFd> {
    // SAFETY: socket() takes plain integers and returns a new descriptor or -1.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::NETLINK_KOBJECT_UEVENT,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };

    // SAFETY: sockaddr_nl is plain data, for which all zero bytes are a valid value.
    let mut address: libc::sockaddr_nl = unsafe { mem::zeroed() };
    address.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    address.nl_groups = UDEV_MONITOR_GROUP;
    // SAFETY: the address lives for the call and its size is passed.
    let result = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const address).cast(),
            mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Decodes the properties (`KEY=value`) of one message from udev's monitor group; an empty map
/// for anything else.
///
/// The message starts with libudev's header: the prefix "libudev\0", the magic number in
/// network byte order, then the header size, the properties' offset and their length as
/// native-endian 32-bit numbers. The properties are NUL-terminated strings.
fn udev_event_properties(message: &[u8]) -> HashMap<String, String> {
    let mut properties = HashMap::new();
    if message.len() < 24 || !message.starts_with(UDEV_MONITOR_PREFIX) {
        return properties;
    }
    let word = |offset: usize| -> [u8; 4] {
        [
            message[offset],
            message[offset + 1],
            message[offset + 2],
            message[offset + 3],
        ]
    };
    if u32::from_be_bytes(word(8)) != UDEV_MONITOR_MAGIC {
        return properties;
    }
    let offset = u32::from_ne_bytes(word(16)) as usize;
    let length = u32::from_ne_bytes(word(20)) as usize;
    let Some(block) = message.get(offset..offset.saturating_add(length)) else {
        return properties;
    };

    for entry in block.split(|byte| *byte == 0) {
        let entry = String::from_utf8_lossy(entry);
        if let Some((key, value)) = entry.split_once('=') {
            properties.insert(key.to_owned(), value.to_owned());
        }
    }
    properties
}

/// Starts an inotify watch for entries created in or renamed into `folder`.
fn watch_folder(folder: &Path) -> io::Result<OwnedFd> {
    // SAFETY: inotify_init1 takes flags and returns a new descriptor or -1.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };

    let path = CString::new(folder.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: path is a NUL-terminated string that lives for the call.
    let watch = unsafe {
        libc::inotify_add_watch(
            fd.as_raw_fd(),
            path.as_ptr(),
            libc::IN_CREATE | libc::IN_MOVED_TO,
        )
    };
    if watch < 0 {
        let error = io::Error::last_os_error();
        return Err(io::Error::new(
            error.kind(),
            format!("failed to watch {}: {error}", folder.display()),
        ));
    }
    Ok(fd)
}

/// Returns the file names of a buffer of `struct inotify_event` records.
fn inotify_names(buffer: &[u8]) -> Vec<String> {
    // struct inotify_event: wd (i32), mask (u32), cookie (u32), len (u32), then `len` bytes of
    // NUL-padded name.
    const HEADER: usize = 16;
    let mut names = Vec::new();
    let mut offset = 0;
    while offset + HEADER <= buffer.len() {
        let name_length = u32::from_ne_bytes([
            buffer[offset + 12],
            buffer[offset + 13],
            buffer[offset + 14],
            buffer[offset + 15],
        ]) as usize;
        let start = offset + HEADER;
        let end = (start + name_length).min(buffer.len());
        let name = &buffer[start..end];
        let name = name.split(|byte| *byte == 0).next().unwrap_or_default();
        if !name.is_empty() {
            names.push(String::from_utf8_lossy(name).into_owned());
        }
        offset = start + name_length;
    }
    names
}
