//! The address to hide for each link, and the state file that remembers it.
//!
//! A link with a permanent address hides that one. Most virtual links (veth, bridge, macvlan,
//! tap) have none, but the address they were given still identifies the host: udev's default
//! `MACAddressPolicy=persistent` derives it from the machine id. For those, the reference is
//! the address the link had when macveil first saw it, recorded in `references.json` in the
//! state directory (normally `/run/macveil`, which is empty after every boot, as are the links)
//! before macveil changes anything.
//!
//! Entries are keyed by namespace, index and name, so that links with the same name or index in
//! different namespaces never share one. The namespace key is the namespace cookie, which the
//! kernel never reuses while it runs. Writes hold an exclusive `flock` on a lock file and
//! replace the file atomically with `rename`, so concurrent runs neither lose entries nor read a
//! half-written file.
//!
//! The helpers for the state directory, its locks and its atomically written JSON files are
//! shared with the daemon's records in [`crate::daemon::state`].

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{AssignType, Link};
use crate::addr::MacAddr;
use crate::fsutil::{self, Existing, Mode, WriteStep};

/// The state directory the command line uses.
pub const DEFAULT_STATE_DIR: &str = "/run/macveil";

const STATE_FILE: &str = "references.json";
const LOCK_FILE: &str = "references.lock";
const FORMAT_VERSION: u32 = 1;

/// A failure to read or write the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file operation failed.
    #[error("cannot {action} {}: {error}{}", .path.display(), permission_hint(.error))]
    Io {
        /// The failed action ("read", "write", "lock", "create").
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The system call's error.
        error: io::Error,
    },

    /// The file exists but is not a reference file this version understands.
    #[error(
        "{} is not a valid reference file ({detail}); it records the addresses links had \
         before macveil changed them, so move it aside rather than deleting it",
        .path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The problem with its content.
        detail: String,
    },
}

fn permission_hint(err: &io::Error) -> &'static str {
    if err.kind() == io::ErrorKind::PermissionDenied {
        "; the state directory belongs to root, so run macveil with sudo"
    } else {
        ""
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    references: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    netns: String,
    ifindex: u32,
    ifname: String,
    address: String,
    /// Seconds since the Unix epoch.
    recorded: u64,
}

// NOTE: the name is part of the key, so a link renamed after its first change loses its
// reference, and the next run records its current address instead.
type Key = (String, u32, String);

fn key(netns: &str, link: &Link) -> Key {
    (netns.to_string(), link.index, link.name.clone())
}

/// The recorded reference addresses, as loaded from the state file.
#[derive(Debug, Default, Clone)]
pub struct References {
    map: HashMap<Key, MacAddr>,
}

impl References {
    /// Returns the recorded reference of `link` in the namespace `netns`.
    pub fn get(&self, netns: &str, link: &Link) -> Option<MacAddr> {
        self.map.get(&key(netns, link)).copied()
    }

    /// Returns whether `address` is the recorded reference of any link.
    pub fn contains_address(&self, address: MacAddr) -> bool {
        self.map.values().any(|reference| *reference == address)
    }
}

/// The reference state file in one directory.
#[derive(Debug, Clone)]
pub struct ReferenceStore {
    dir: PathBuf,
}

impl ReferenceStore {
    /// Creates a store in `dir`. Nothing is written until the first [`ReferenceStore::record`].
    pub fn new(dir: impl Into<PathBuf>) -> ReferenceStore {
        ReferenceStore { dir: dir.into() }
    }

    /// Returns the state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the recorded references; an absent file means none.
    pub fn load(&self) -> Result<References, StateError> {
        let entries = self.read_entries()?;
        Ok(to_references(&entries))
    }

    /// Records the current address of every link in `links` that has neither a permanent
    /// address nor a recorded reference, and returns all references afterwards. Existing
    /// entries are never replaced.
    pub fn record(&self, netns: &str, links: &[&Link]) -> Result<References, StateError> {
        self.update(netns, links, &[])
    }

    /// Records as [`ReferenceStore::record`] does, and in the same write drops the references
    /// of the removed links in `removed` (index and name) of the namespace `netns`. A removed
    /// link's reference would otherwise stay in the file until the next boot.
    pub fn update(
        &self,
        netns: &str,
        links: &[&Link],
        removed: &[(u32, String)],
    ) -> Result<References, StateError> {
        let _lock = lock(&self.dir, LOCK_FILE)?;
        let mut entries = self.read_entries()?;
        let before = entries.len();
        entries.retain(|entry| {
            entry.netns != netns
                || !removed
                    .iter()
                    .any(|(index, name)| entry.ifindex == *index && &entry.ifname == name)
        });
        let forgotten = before - entries.len();
        let known = to_references(&entries);

        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let mut added = 0;
        for link in links {
            let Some(address) = link.address else {
                continue;
            };
            if link.permanent.is_some() || known.get(netns, link).is_some() {
                continue;
            }
            log::debug!(
                "{}: recording reference address {}",
                link.name,
                address.redacted()
            );
            // addr_assign_type NET_ADDR_SET means user space set this address. That may be
            // udev's MACAddressPolicy=persistent, whose address identifies the host and is the
            // right reference, or an earlier anonymization whose state was lost.
            // NOTE: handles from LinkHandle::open_for_changes (set, restore) leave the assign
            // type unknown, so only callers with a full handle (show) get this warning.
            if link.assign_type == AssignType::Set {
                log::warn!(
                    "{}: recording its current address {} as the reference, but something \
                     already set this address (addr_assign_type 3, set), so it may itself be \
                     an anonymized address and not the one to hide",
                    link.name,
                    address.redacted()
                );
            }
            entries.push(Entry {
                netns: netns.to_string(),
                ifindex: link.index,
                ifname: link.name.clone(),
                address: address.to_string(),
                recorded: now,
            });
            added += 1;
        }

        if added > 0 || forgotten > 0 {
            self.write_entries(&entries)?;
        }
        Ok(to_references(&entries))
    }

    /// Drops the references in the namespace `netns` of links that are not in `present`, for
    /// a caller that has just listed every link there.
    pub fn retain_present(&self, netns: &str, present: &[Link]) -> Result<(), StateError> {
        let _lock = lock(&self.dir, LOCK_FILE)?;
        let mut entries = self.read_entries()?;
        let before = entries.len();
        entries.retain(|entry| {
            entry.netns != netns
                || present
                    .iter()
                    .any(|link| link.index == entry.ifindex && link.name == entry.ifname)
        });
        if entries.len() < before {
            log::debug!(
                "forgetting the references of {} removed links",
                before - entries.len()
            );
            self.write_entries(&entries)?;
        }
        Ok(())
    }

    fn read_entries(&self) -> Result<Vec<Entry>, StateError> {
        let path = self.dir.join(STATE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => {
                return Err(StateError::Io {
                    action: "read",
                    path,
                    error,
                });
            }
        };
        let state: StateFile = serde_json::from_str(&text).map_err(|err| StateError::Corrupt {
            path: path.clone(),
            detail: err.to_string(),
        })?;
        if state.version != FORMAT_VERSION {
            return Err(StateError::Corrupt {
                path,
                detail: format!("format version {} is not {FORMAT_VERSION}", state.version),
            });
        }
        for entry in &state.references {
            if entry.address.parse::<MacAddr>().is_err() {
                return Err(StateError::Corrupt {
                    path,
                    detail: format!("invalid address for {}", entry.ifname),
                });
            }
        }
        Ok(state.references)
    }

    /// Replaces the state file with `entries` atomically.
    fn write_entries(&self, entries: &[Entry]) -> Result<(), StateError> {
        let state = StateFile {
            version: FORMAT_VERSION,
            references: entries.to_vec(),
        };
        write_json(&self.dir, STATE_FILE, &state)
    }
}

/// Returns a function that wraps an error of `action` on `path` in [`StateError::Io`].
pub(crate) fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StateError {
    let path = path.to_path_buf();
    move |error| StateError::Io {
        action,
        path,
        error,
    }
}

/// Creates the state directory `dir` (mode 0700) when needed.
pub(crate) fn create_dir(dir: &Path) -> Result<(), StateError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error("create", dir))
}

/// Takes an exclusive `flock` on `dir/name`, waiting for other holders; the lock is released
/// when the returned file is dropped.
pub(crate) fn lock(dir: &Path, name: &str) -> Result<File, StateError> {
    create_dir(dir)?;
    let path = dir.join(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_error("open", &path))?;
    // SAFETY: flock takes a descriptor that `file` keeps open for the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io_error("lock", &path)(io::Error::last_os_error()));
    }
    Ok(file)
}

/// Writes `value` to a temporary file in `dir`, flushes it and renames it over `dir/name`, so
/// that readers see the old or the new file, never half of one.
pub(crate) fn write_json<T: Serialize>(
    dir: &Path,
    name: &str,
    value: &T,
) -> Result<(), StateError> {
    create_dir(dir)?;
    let path = dir.join(name);
    let temporary = dir.join(format!("{name}.{}.tmp", std::process::id()));
    let mut text = serde_json::to_vec_pretty(value).expect("state records serialize");
    text.push(b'\n');

    fsutil::write_synced(&temporary, &text, Existing::Truncate, Mode::Masked(0o600)).map_err(
        |err| {
            let action = match err.step {
                WriteStep::Open => "create",
                WriteStep::SetMode | WriteStep::Write | WriteStep::Sync => "write",
            };
            io_error(action, &temporary)(err.source)
        },
    )?;
    fs::rename(&temporary, &path).map_err(io_error("replace", &path))
}

fn to_references(entries: &[Entry]) -> References {
    let map = entries
        .iter()
        .filter_map(|entry| {
            let address = entry.address.parse().ok()?;
            Some((
                (entry.netns.clone(), entry.ifindex, entry.ifname.clone()),
                address,
            ))
        })
        .collect();
    References { map }
}

/// The address a link must not show, and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// The hardware's permanent address.
    Permanent(MacAddr),
    /// The address recorded when macveil first saw the link.
    Reference(MacAddr),
    /// Neither is known.
    Unknown,
}

impl Baseline {
    /// Finds the baseline of `link`: its permanent address, else its recorded reference.
    pub fn of(link: &Link, netns: &str, references: &References) -> Baseline {
        if let Some(permanent) = link.permanent {
            return Baseline::Permanent(permanent);
        }
        match references.get(netns, link) {
            Some(reference) => Baseline::Reference(reference),
            None => Baseline::Unknown,
        }
    }

    /// Returns the address, if known.
    pub fn address(&self) -> Option<MacAddr> {
        match self {
            Baseline::Permanent(addr) | Baseline::Reference(addr) => Some(*addr),
            Baseline::Unknown => None,
        }
    }

    /// Compares the link's current address with the baseline.
    pub fn verdict(&self, current: Option<MacAddr>) -> Verdict {
        match (self.address(), current) {
            (Some(baseline), Some(current)) if baseline == current => Verdict::Exposed,
            (Some(_), Some(_)) => Verdict::Anonymized,
            _ => Verdict::Unknown,
        }
    }
}

/// Whether a link shows the address it must hide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The current address is the permanent or reference address.
    Exposed,
    /// The current address differs from it.
    Anonymized,
    /// There is nothing to compare with.
    Unknown,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Exposed => "exposed",
            Verdict::Anonymized => "anonymized",
            Verdict::Unknown => "unknown",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{AssignType, OperState};

    fn link(index: u32, name: &str, address: &str) -> Link {
        Link {
            index,
            name: name.into(),
            info_kind: Some("veth".into()),
            wireless: false,
            link_type: 1,
            driver: None,
            admin_up: false,
            lower_up: false,
            operstate: OperState::Down,
            address: Some(address.parse().unwrap()),
            permanent: None,
            permanent_source: None,
            assign_type: AssignType::Unknown,
            parent: None,
            ipv6_addr_gen_mode: None,
        }
    }

    #[test]
    fn record_keeps_first_address() {
        let dir = tempfile::tempdir().unwrap();
        let store = ReferenceStore::new(dir.path().join("state"));
        let mut veth = link(3, "veth0", "12:34:56:78:9a:bc");
        store.record("cookie:1", &[&veth]).unwrap();

        veth.address = Some("02:00:00:00:00:01".parse().unwrap());
        let references = store.record("cookie:1", &[&veth]).unwrap();
        assert_eq!(
            references.get("cookie:1", &veth),
            Some("12:34:56:78:9a:bc".parse().unwrap())
        );
        let reloaded = store.load().unwrap();
        assert_eq!(
            reloaded.get("cookie:1", &veth),
            Some("12:34:56:78:9a:bc".parse().unwrap())
        );
    }

    #[test]
    fn contains_address_finds_any_reference() {
        let dir = tempfile::tempdir().unwrap();
        let store = ReferenceStore::new(dir.path());
        let first = link(3, "veth0", "12:34:56:78:9a:bc");
        let second = link(4, "veth1", "22:34:56:78:9a:bc");
        let references = store.record("cookie:1", &[&first, &second]).unwrap();
        assert!(references.contains_address("22:34:56:78:9a:bc".parse().unwrap()));
        assert!(!references.contains_address("02:00:00:00:00:01".parse().unwrap()));
    }

    #[test]
    fn same_name_in_other_namespace_is_separate() {
        let dir = tempfile::tempdir().unwrap();
        let store = ReferenceStore::new(dir.path());
        let first = link(3, "veth0", "12:34:56:78:9a:bc");
        let second = link(3, "veth0", "22:34:56:78:9a:bc");
        store.record("cookie:1", &[&first]).unwrap();
        let references = store.record("cookie:2", &[&second]).unwrap();
        assert_eq!(references.get("cookie:1", &first), first.address);
        assert_eq!(references.get("cookie:2", &second), second.address);
        let renamed = link(3, "veth1", "22:34:56:78:9a:bc");
        assert_eq!(references.get("cookie:2", &renamed), None);
    }

    #[test]
    fn permanent_links_are_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let store = ReferenceStore::new(dir.path());
        let mut nic = link(2, "eth0", "3c:22:fb:01:02:03");
        nic.permanent = nic.address;
        let references = store.record("cookie:1", &[&nic]).unwrap();
        assert_eq!(references.get("cookie:1", &nic), None);
        assert!(!dir.path().join(STATE_FILE).exists());
    }

    #[test]
    fn state_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = ReferenceStore::new(dir.path().join("new"));
        store
            .record("cookie:1", &[&link(3, "veth0", "12:34:56:78:9a:bc")])
            .unwrap();
        let mode = fs::metadata(dir.path().join("new").join(STATE_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("new"))
            .unwrap()
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn corrupt_file_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), "{not json").unwrap();
        let store = ReferenceStore::new(dir.path());
        let err = store
            .record("cookie:1", &[&link(3, "veth0", "12:34:56:78:9a:bc")])
            .unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join(STATE_FILE)).unwrap(),
            "{not json"
        );
    }

    #[test]
    fn verdict_compares_with_baseline() {
        let reference: MacAddr = "12:34:56:78:9a:bc".parse().unwrap();
        let other: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let baseline = Baseline::Reference(reference);
        assert_eq!(baseline.verdict(Some(reference)), Verdict::Exposed);
        assert_eq!(baseline.verdict(Some(other)), Verdict::Anonymized);
        assert_eq!(baseline.verdict(None), Verdict::Unknown);
        assert_eq!(Baseline::Unknown.verdict(Some(other)), Verdict::Unknown);
    }

    #[test]
    fn removed_links_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = ReferenceStore::new(dir.path());
        let first = link(3, "veth0", "12:34:56:78:9a:bc");
        let second = link(4, "veth1", "12:34:56:78:9a:bd");
        store.record("cookie:1", &[&first, &second]).unwrap();
        store.record("cookie:2", &[&first]).unwrap();

        // A removal names index and name, and only in its own namespace.
        let third = link(5, "veth2", "12:34:56:78:9a:be");
        let references = store
            .update("cookie:1", &[&third], &[(3, String::from("veth0"))])
            .unwrap();
        assert_eq!(references.get("cookie:1", &first), None);
        assert!(references.get("cookie:1", &second).is_some());
        assert!(references.get("cookie:1", &third).is_some());
        assert!(references.get("cookie:2", &first).is_some());

        // A full listing drops every other entry of the namespace.
        store
            .retain_present("cookie:1", std::slice::from_ref(&third))
            .unwrap();
        let references = store.load().unwrap();
        assert_eq!(references.get("cookie:1", &second), None);
        assert!(references.get("cookie:1", &third).is_some());
        assert!(references.get("cookie:2", &first).is_some());
    }
}
