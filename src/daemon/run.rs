//! The daemon's life: start-up in a safe order, then an event loop that sleeps in `poll(2)`
//! until the kernel announces a link change or a signal arrives.
//!
//! Start-up order, and why:
//! 1. Block the handled signals, before any thread exists, so that none is lost or kills the
//!    process while it starts.
//! 2. Load the configuration, all or nothing: an invalid one ends the daemon before it changes
//!    anything.
//! 3. Take the instance lock: one daemon per state directory.
//! 4. Subscribe to link notifications, then read every link. A link that appears between the two
//!    steps is both notified and dumped, so none is missed.
//! 5. Enforce the policy on every link, write the boot marker, and tell systemd `READY=1`.
//!
//! While idle the loop sets no timer, so the process is not woken until something happens. The
//! one exception is `macveil.random-rotate`, whose deadline becomes the poll timeout while a link
//! has one.
//!
//! Wi-Fi connections that the daemon drives ([`super::drive`]) run in threads of their own, so
//! the loop stays free for link notifications while a connection takes its time. `SIGTERM`
//! stops them before the daemon exits.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Instant;

use super::drive::{DrivenLinks, DriverSettings, Drivers};
use super::engine::{Engine, Settings, Summary};
use super::instance::{InstanceError, InstanceLock};
use super::nm::DeviceStates;
use super::notify::notify;
use super::signals::{Request, Signals};
use super::state::{BootMarker, Writer, now_seconds};
use super::target::Keys;
use super::udev::UdevView;
use super::wifi::ScanPrivacyWatcher;
use crate::config::{Config, ConfigErrors, ConfigPaths, LoadOptions};
use crate::generate::stable_id::{self, BOOT_ID_PATH};
use crate::link::{LinkError, LinkEvent, LinkHandle, LinkMonitor, LinkOps, Netns};
use crate::rng::OsRandom;
use crate::wifi::ctrl::DEFAULT_CTRL_DIR;

/// The daemon's start-up options.
#[derive(Debug, Clone)]
pub struct Options {
    /// The selection of configuration files.
    pub load: LoadOptions,
    /// The locations of the configuration files.
    pub config_paths: ConfigPaths,
    /// `--now`: change links that are up even at the first start of a boot.
    pub now: bool,
    /// `--reveal`: log permanent addresses in full.
    pub reveal: bool,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The namespace whose links the daemon manages.
    pub netns: Netns,
    /// The secret key.
    pub key_path: PathBuf,
    /// The boot id as a lower-case UUID, when given (`--boot-id`); otherwise the kernel's is
    /// read.
    pub boot_id: Option<String>,
    /// NetworkManager's device state files.
    pub nm_devices_dir: PathBuf,
}

/// A reason the daemon could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is invalid; nothing was changed.
    #[error(
        "{0}\nthe configuration is invalid, so the daemon did not start and changed nothing; fix it and check it with 'macveil config check'"
    )]
    Config(ConfigErrors),

    /// Another daemon runs, or the lock could not be taken.
    #[error(transparent)]
    Instance(#[from] InstanceError),

    /// The signals could not be set up.
    #[error("cannot set up signal handling: {0}")]
    Signals(std::io::Error),

    /// The namespace or its netlink sockets could not be opened; nothing was changed.
    #[error("{0}")]
    Open(LinkError),

    /// The kernel could not be reached, or the state directory could not be written.
    #[error(transparent)]
    Link(#[from] LinkError),

    /// Waiting for events failed.
    #[error("waiting for link notifications and signals failed: {0}")]
    Poll(std::io::Error),
}

impl DaemonError {
    /// Returns whether the daemon stopped before it changed anything (exit code 2).
    pub fn before_any_change(&self) -> bool {
        matches!(
            self,
            DaemonError::Config(_)
                | DaemonError::Instance(_)
                | DaemonError::Signals(_)
                | DaemonError::Open(_)
        )
    }
}

/// Turns a `--boot-id` value into the form the kernel's boot id file has and `${BOOT}` hashes:
/// a lower-case UUID with dashes. systemd's `%b` specifier gives the same id as 32 hexadecimal
/// digits without dashes, and both forms are accepted.
pub fn normalize_boot_id(text: &str) -> Result<String, String> {
    if let Some(uuid) = stable_id::canonical_uuid(text) {
        return Ok(uuid);
    }
    if text.len() == 32 && text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Ok(stable_id::hyphenate_uuid(&text.to_ascii_lowercase()));
    }
    Err(format!(
        "invalid boot id '{text}': expected a UUID such as \
         1c62b2ad-f2e6-4911-9c85-22dace9dada6, or the same 32 hexadecimal digits without dashes"
    ))
}

/// Loads the configuration and logs its warnings.
fn load_config(options: &Options) -> Result<Config, ConfigErrors> {
    let config = Config::load(&options.config_paths, &options.load)?;
    for warning in config.warnings() {
        log::warn!("{warning}");
    }
    Ok(config)
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(options: Options) -> Result<(), DaemonError> {
    let signals = Signals::block().map_err(DaemonError::Signals)?;
    let config = load_config(&options).map_err(DaemonError::Config)?;
    let _lock = InstanceLock::acquire(&options.state_dir)?;

    let boot_id = match &options.boot_id {
        Some(id) => Ok(id.clone()),
        None => stable_id::read_boot_id(std::path::Path::new(BOOT_ID_PATH))
            .map_err(|err| err.to_string()),
    };
    if let Err(err) = &boot_id {
        log::warn!("{err}; links whose connection.stable-id uses ${{BOOT}} stay down");
    }
    let marker_boot = boot_id.clone().unwrap_or_default();
    let first_start = BootMarker::is_first_start(&options.state_dir, &marker_boot);

    let mut monitor = LinkMonitor::open(&options.netns).map_err(DaemonError::Open)?;
    let mut ops = LinkHandle::open(&options.netns).map_err(DaemonError::Open)?;
    let own_namespace = options.netns.is_callers().map_err(DaemonError::Open)?;
    let settings = Settings {
        state_dir: options.state_dir.clone(),
        now: options.now,
        reveal: options.reveal,
        first_start,
        never_cycle: false,
        sysfs_net: own_namespace.then(|| PathBuf::from("/sys/class/net")),
        nm_devices: own_namespace.then(|| DeviceStates::new(&options.nm_devices_dir)),
        udev: own_namespace.then(|| UdevView::new("/")),
        writer: Writer::Daemon,
    };
    let keys = Keys::new(&options.key_path);
    let scan_config = config.clone();
    let driver_settings = DriverSettings {
        ctrl_dir: PathBuf::from(DEFAULT_CTRL_DIR),
        state_dir: options.state_dir.clone(),
        key_path: options.key_path.clone(),
        boot_id: boot_id.clone().ok(),
        nm_devices: own_namespace.then(|| DeviceStates::new(&options.nm_devices_dir)),
    };
    let driven = DrivenLinks::default();
    let mut engine = Engine::new(&ops, settings, config, keys, boot_id, Box::new(OsRandom));
    engine.set_driven_links(driven.clone());

    let summary = engine.start(&mut ops)?;
    // The supplicants of other namespaces are out of reach: their control sockets name links
    // of their own namespace.
    let mut scan = own_namespace
        .then(|| {
            let drivers = Drivers::new(driver_settings, driven);
            ScanPrivacyWatcher::start(
                DEFAULT_CTRL_DIR,
                &options.state_dir,
                scan_config,
                drivers,
                &mut ops,
            )
        })
        .flatten();
    let marker = BootMarker {
        boot_id: marker_boot,
        pid: std::process::id(),
        time: now_seconds(),
    };
    marker.store(&options.state_dir).map_err(LinkError::from)?;
    let status = describe_start(&summary, first_start, &options);
    log::info!("{status}");
    if let Err(err) = notify(&format!("READY=1\nSTATUS={status}")) {
        log::warn!("could not notify systemd of readiness: {err}");
    }

    event_loop(
        &options,
        &mut engine,
        &mut ops,
        &mut monitor,
        &signals,
        &mut scan,
    )
}

fn describe_start(summary: &Summary, first_start: bool, options: &Options) -> String {
    let mut status = format!(
        "watching {} links in {}: {} changed, {} exposed, {} held down",
        summary.links, options.netns, summary.changed, summary.exposed, summary.held_down
    );
    if summary.failed > 0 {
        status.push_str(&format!(", {} failed", summary.failed));
    }
    if first_start && summary.exposed > 0 && !options.now {
        status.push_str("; exposed links keep their connection until they go down");
    }
    status
}

/// How many full passes in a row the loop makes after netlink overruns.
const RESYNC_ATTEMPTS: usize = 3;

fn event_loop(
    options: &Options,
    engine: &mut Engine,
    ops: &mut LinkHandle,
    monitor: &mut LinkMonitor,
    signals: &Signals,
    scan: &mut Option<ScanPrivacyWatcher>,
) -> Result<(), DaemonError> {
    let mut resync = false;
    loop {
        let timeout = match engine.next_deadline() {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                i32::try_from(left.as_millis().saturating_add(1)).unwrap_or(i32::MAX)
            }
            None => -1,
        };
        let mut fds = [
            libc::pollfd {
                fd: monitor.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: signals.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            // poll(2) skips a negative descriptor: no watcher outside the own namespace.
            libc::pollfd {
                fd: scan.as_ref().map_or(-1, AsRawFd::as_raw_fd),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of pollfd structures for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if ready < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(DaemonError::Poll(err));
        }

        if fds[1].revents != 0 {
            let requests = signals.read().map_err(DaemonError::Poll)?;
            for request in requests {
                match request {
                    Request::Exit => {
                        log::info!("stopping; every address stays as it is");
                        if let Some(scan) = scan {
                            scan.stop_drivers();
                        }
                        let _ = notify("STOPPING=1");
                        return Ok(());
                    }
                    Request::Reload => reload(options, engine, ops, scan),
                    Request::Resume => {
                        log::info!("resumed from suspend: checking every link");
                        report(engine.resume(ops), &mut resync);
                    }
                }
            }
        }

        if fds[0].revents != 0 {
            let events = drain(monitor, &mut resync)?;
            if resync {
                log::warn!(
                    "the kernel dropped link notifications (ENOBUFS); reading every link again"
                );
            } else if !events.is_empty() {
                report(engine.handle(ops, events), &mut resync);
            }
            report(engine.retry_blocked(ops), &mut resync);
        }

        if fds[2].revents != 0
            && let Some(scan) = scan
        {
            scan.handle(ops);
        }

        if engine
            .next_deadline()
            .is_some_and(|deadline| deadline <= Instant::now())
        {
            report(engine.rotate_due(ops, Instant::now()), &mut resync);
        }

        // A full pass can itself be overrun while thousands of links change. It is retried a
        // few times, and after that the next notification starts another.
        for _ in 0..RESYNC_ATTEMPTS {
            if !resync {
                break;
            }
            resync = false;
            report(engine.resync(ops), &mut resync);
        }
    }
}

/// Reads every queued notification. An overrun sets `resync`, and the rest of the queue is read
/// anyway so that the dump that follows is not overrun again by stale messages.
fn drain(monitor: &mut LinkMonitor, resync: &mut bool) -> Result<Vec<LinkEvent>, DaemonError> {
    let mut events = Vec::new();
    loop {
        match monitor.receive() {
            Ok(Some(batch)) => events.extend(batch),
            Ok(None) => return Ok(events),
            Err(LinkError::NoBuffers { .. }) => *resync = true,
            Err(err) => return Err(err.into()),
        }
    }
}

/// Logs a failed pass. A pass that failed on a netlink overrun of its own socket is redone as
/// a full pass.
fn report(result: Result<Summary, LinkError>, resync: &mut bool) {
    match result {
        Ok(_) => {}
        Err(LinkError::NoBuffers { .. }) => *resync = true,
        Err(err) => log::error!("{err}"),
    }
}

fn reload(
    options: &Options,
    engine: &mut Engine,
    ops: &mut dyn LinkOps,
    scan: &mut Option<ScanPrivacyWatcher>,
) {
    let _ = notify("RELOADING=1");
    match load_config(options) {
        Ok(config) => {
            log::info!("configuration reloaded from {}", config.files().join(", "));
            if let Some(scan) = scan {
                scan.set_config(config.clone());
                scan.apply_all(ops);
            }
            let mut resync = false;
            report(engine.reload(ops, config), &mut resync);
            if resync {
                report(engine.resync(ops), &mut resync);
            }
        }
        Err(errors) => log::error!(
            "the reloaded configuration is invalid, so the daemon keeps running with the \
             previous one:\n{errors}"
        ),
    }
    let _ = notify("READY=1");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_id_accepts_both_forms() {
        let dashed = "1c62b2ad-f2e6-4911-9c85-22dace9dada6";
        assert_eq!(normalize_boot_id(dashed).unwrap(), dashed);
        assert_eq!(
            normalize_boot_id("1C62B2ADF2E649119C8522DACE9DADA6").unwrap(),
            dashed
        );
        let err = normalize_boot_id("not-a-boot-id").unwrap_err();
        assert!(err.contains("not-a-boot-id"), "{err}");
    }
}
