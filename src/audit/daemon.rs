//! Whether the macveil daemon runs, and the links that nothing anonymizes while it does not.
//!
//! The daemon holds an exclusive `flock` on `daemon.lock` in its state folder, `/run/macveil`,
//! for as long as it runs. Taking a lock to test this would make a daemon that starts at that
//! moment believe another one runs, so the lock is looked up in `/proc/locks` instead, by the
//! file's device and inode, which reads without side effects.
//!
//! A link needs the daemon when macveil's policy manages it and NetworkManager does not replace
//! its address itself. This module judges facts it is given, except for reading the lock.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{Finding, Severity};

/// The daemon's lock file, relative to the root: `daemon.lock` in the default state folder, as
/// `src/daemon/instance.rs` takes it.
pub const DAEMON_LOCK: &str = "run/macveil/daemon.lock";

/// Whether the daemon runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonState {
    /// A process holds the daemon's lock.
    Running {
        /// Its process id as `/proc/locks` shows it (0 when it is in another PID namespace).
        pid: u32,
    },
    /// Nothing holds the lock, or the lock file does not exist.
    NotRunning,
    /// The lock could not be checked, with the reason.
    Unknown(String),
}

/// Looks the daemon's lock up below `root`, in the kernel's lock table `proc_locks` (normally
/// `/proc/locks`).
pub fn daemon_state(root: &Path, proc_locks: &Path) -> DaemonState {
    lock_state(&root.join(DAEMON_LOCK), proc_locks)
}

/// Looks up whether a process holds the daemon's lock file `path` (`daemon.lock` in the state
/// folder the daemon was started with).
pub fn lock_state(path: &Path, proc_locks: &Path) -> DaemonState {
    let path = path.to_path_buf();
    let metadata = match fs::metadata(&path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return DaemonState::NotRunning,
        Err(err) => return DaemonState::Unknown(format!("cannot read {}: {err}", path.display())),
    };
    let table = match fs::read_to_string(proc_locks) {
        Ok(table) => table,
        Err(err) => {
            return DaemonState::Unknown(format!("cannot read {}: {err}", proc_locks.display()));
        }
    };

    let device = metadata.dev();
    let major = libc::major(device);
    let minor = libc::minor(device);
    match find_flock(&table, major, minor, metadata.ino()) {
        Some(pid) => DaemonState::Running { pid },
        None => DaemonState::NotRunning,
    }
}

/// Finds a granted `FLOCK` lock on the file with `major:minor:inode` in `/proc/locks` text and
/// returns its holder's process id. Lines of waiting requests (`->`) are skipped.
fn find_flock(table: &str, major: u32, minor: u32, inode: u64) -> Option<u32> {
    let wanted = format!("{major:02x}:{minor:02x}:{inode}");
    for line in table.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 4851 fe:00:5619777 0 EOF"
        let [_, kind, _, _, pid, file, ..] = fields.as_slice() else {
            continue;
        };
        if *kind != "FLOCK" || *file != wanted {
            continue;
        }
        return pid.parse().ok();
    }
    None
}

/// A link that needs someone to replace its hardware address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// The interface name.
    pub name: String,
    /// Whether macveil's policy manages the link.
    pub macveil_manages: bool,
    /// Whether NetworkManager manages the link with a profile that replaces its address.
    pub nm_anonymizes: bool,
}

/// Reports each link that macveil's policy manages and nothing anonymizes because the daemon
/// does not run.
pub fn check_daemon(state: &DaemonState, links: &[Coverage]) -> Vec<Finding> {
    let unknown = match state {
        DaemonState::Running { .. } => return Vec::new(),
        DaemonState::NotRunning => None,
        DaemonState::Unknown(reason) => Some(reason),
    };

    links
        .iter()
        .filter(|link| link.macveil_manages && !link.nm_anonymizes)
        .map(|link| Finding {
            code: "daemon-not-running",
            severity: Severity::Medium,
            subject: link.name.clone(),
            location: None,
            leak: match unknown {
                None => format!(
                    "nothing replaces the hardware address of {}: the macveil daemon is not \
                     running, and NetworkManager does not manage {} with a MAC policy",
                    link.name, link.name
                ),
                Some(reason) => format!(
                    "nothing may replace the hardware address of {}: whether the macveil daemon \
                     runs is unknown ({reason}), and NetworkManager does not manage {} with a \
                     MAC policy",
                    link.name, link.name
                ),
            },
            reason: String::from(
                "the link shows its hardware address whenever it comes up, after a reboot or a \
                 replug too",
            ),
            fix: String::from(
                "start the daemon ('systemctl enable --now macveil', or 'macveil install' where \
                 it is not installed yet); where NetworkManager manages the link, \
                 'macveil nm install' is enough",
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn coverage(name: &str, macveil: bool, nm: bool) -> Coverage {
        Coverage {
            name: name.into(),
            macveil_manages: macveil,
            nm_anonymizes: nm,
        }
    }

    #[test]
    fn flock_lines_are_matched_by_file() {
        let table = "1: FLOCK  ADVISORY  WRITE 4851 fe:00:5619777 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 99 fe:00:42 0 EOF\n\
                     3: -> FLOCK  ADVISORY  WRITE 77 fe:00:42 0 EOF\n\
                     4: FLOCK  ADVISORY  WRITE 1234 fe:00:42 0 EOF\n";
        assert_eq!(find_flock(table, 0xfe, 0, 42), Some(1234));
        assert_eq!(find_flock(table, 0xfe, 0, 5619777), Some(4851));
        assert_eq!(find_flock(table, 0xfe, 1, 42), None);
        assert_eq!(find_flock(table, 0xfe, 0, 43), None);
    }

    #[test]
    fn held_lock_means_running() {
        let root = tempfile::tempdir().unwrap();
        let proc_locks = Path::new("/proc/locks");
        assert_eq!(
            daemon_state(root.path(), proc_locks),
            DaemonState::NotRunning
        );

        let path = root.path().join(DAEMON_LOCK);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = fs::File::create(&path).unwrap();
        assert_eq!(
            daemon_state(root.path(), proc_locks),
            DaemonState::NotRunning
        );

        // SAFETY: flock takes a descriptor that `file` keeps open.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(locked, 0, "{}", io::Error::last_os_error());
        assert_eq!(
            daemon_state(root.path(), proc_locks),
            DaemonState::Running {
                pid: std::process::id()
            }
        );
        drop(file);
        assert_eq!(
            daemon_state(root.path(), proc_locks),
            DaemonState::NotRunning
        );
    }

    #[test]
    fn unreadable_table_is_unknown() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join(DAEMON_LOCK);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "").unwrap();
        let state = daemon_state(root.path(), &root.path().join("no-locks"));
        assert!(matches!(state, DaemonState::Unknown(_)), "{state:?}");
    }

    #[test]
    fn uncovered_links_need_the_daemon() {
        let links = [
            coverage("eth0", true, false),
            coverage("wlan0", true, true),
            coverage("veth0", false, false),
        ];
        let findings = check_daemon(&DaemonState::NotRunning, &links);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].subject, "eth0");
        assert_eq!(findings[0].code, "daemon-not-running");

        assert!(check_daemon(&DaemonState::Running { pid: 1 }, &links).is_empty());

        let unknown = check_daemon(&DaemonState::Unknown("no /proc".into()), &links);
        assert_eq!(unknown.len(), 1);
        assert!(unknown[0].leak.contains("no /proc"), "{}", unknown[0].leak);
    }
}
