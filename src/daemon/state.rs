//! The record of what the daemon and the udev helper did to each link. It is kept in the state
//! directory (normally `/run/macveil`, emptied at every boot), so that `macveil show` can explain
//! why a link has its address and a restarted daemon can tell whether this boot has seen it.
//!
//! Two files:
//! - `links.json`: one [`LinkRecord`] per link, keyed by namespace, index and name like the
//!   reference addresses of [`crate::link::state`]. The daemon and `macveil udev-apply` both
//!   write it, each with a read-modify-write under an exclusive `flock` on `links.lock` and an
//!   atomic rename, so neither loses the other's records.
//! - `daemon.json`: the boot id of the last daemon start ([`BootMarker`]). The daemon's first
//!   start of a boot is one where this file is missing or names another boot.
//!
//! Records hold only addresses macveil set. A permanent or reference address never appears
//! here; those stay in `references.json`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::link::state::{self, StateError, io_error, lock, write_json};

const LINKS_FILE: &str = "links.json";
const LINKS_LOCK: &str = "links.lock";
const MARKER_FILE: &str = "daemon.json";
const FORMAT_VERSION: u32 = 1;

/// The outcome of macveil's last look at a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkStatus {
    /// macveil set the address in `address`.
    Set,
    /// The link already had an address other than the one to hide; macveil left it.
    Kept,
    /// The policy leaves the link alone (unmanaged, `preserve` or `permanent`).
    Ignored,
    /// The link is up with the address it must hide and was left up, because the daemon's first
    /// start of the boot spares running links.
    Exposed,
    /// The link was taken down and stays down: its address could not be set, it kept coming
    /// back, or the secret key is not readable yet.
    HeldDown,
    /// Setting the address failed and the policy only warns (`macveil.on-failure=warn`).
    Failed,
}

impl std::fmt::Display for LinkStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkStatus::Set => "set",
            LinkStatus::Kept => "kept",
            LinkStatus::Ignored => "ignored",
            LinkStatus::Exposed => "exposed",
            LinkStatus::HeldDown => "held-down",
            LinkStatus::Failed => "failed",
        })
    }
}

/// The program that wrote a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Writer {
    /// `macveil daemon`.
    Daemon,
    /// `macveil udev-apply`, run by udev when the link appeared.
    Udev,
}

/// One link's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// The namespace key, as [`crate::link::LinkOps::netns_key`] returns it.
    pub netns: String,
    /// The interface index.
    pub ifindex: u32,
    /// The interface name.
    pub ifname: String,
    /// The policy's request: a `cloned-mac-address` value such as `stable` or `random`, or
    /// `unmanaged`.
    pub policy: String,
    /// The policy's origin, for example `[connection] /etc/macveil/macveil.conf:3`.
    pub origin: String,
    /// What happened.
    pub status: LinkStatus,
    /// The address macveil set, or found and kept; never a permanent or reference address.
    pub address: Option<String>,
    /// Why, in a sentence: the error, or what the operator can do.
    pub detail: Option<String>,
    /// The program that wrote the record.
    pub writer: Writer,
    /// When, in seconds since the Unix epoch.
    pub time: u64,
}

impl LinkRecord {
    fn key(&self) -> (String, u32, String) {
        (self.netns.clone(), self.ifindex, self.ifname.clone())
    }
}

/// Returns the current time in seconds since the Unix epoch.
pub fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[derive(Debug, Serialize, Deserialize)]
struct LinksFile {
    version: u32,
    links: Vec<LinkRecord>,
}

/// A change to the records of one namespace.
#[derive(Debug, Default)]
pub struct RecordUpdate {
    /// Records to add or replace.
    pub upsert: Vec<LinkRecord>,
    /// Links to forget, by index and name.
    pub remove: Vec<(u32, String)>,
}

impl RecordUpdate {
    /// Returns whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.upsert.is_empty() && self.remove.is_empty()
    }
}

/// The link records in one state directory.
#[derive(Debug, Clone)]
pub struct RecordStore {
    dir: PathBuf,
}

impl RecordStore {
    /// Creates a store in `dir`. Nothing is written until the first update.
    pub fn new(dir: impl Into<PathBuf>) -> RecordStore {
        RecordStore { dir: dir.into() }
    }

    /// Reads every record; a missing file means none.
    pub fn load(&self) -> Result<Vec<LinkRecord>, StateError> {
        read_json::<LinksFile>(&self.dir.join(LINKS_FILE))
            .map(|file| file.map(|file| file.links).unwrap_or_default())
    }

    /// Applies `update` to the records of namespace `netns`. With `keep_only`, records of that
    /// namespace whose index is not in the list are dropped too, which clears links that
    /// disappeared while no daemon ran.
    pub fn update(
        &self,
        netns: &str,
        update: &RecordUpdate,
        keep_only: Option<&[u32]>,
    ) -> Result<(), StateError> {
        if update.is_empty() && keep_only.is_none() {
            return Ok(());
        }
        let _lock = lock(&self.dir, LINKS_LOCK)?;
        let mut records: BTreeMap<(String, u32, String), LinkRecord> = self
            .load()?
            .into_iter()
            .map(|record| (record.key(), record))
            .collect();
        let before = records.clone();

        for (index, name) in &update.remove {
            records.remove(&(netns.to_string(), *index, name.clone()));
        }
        if let Some(present) = keep_only {
            records.retain(|(ns, index, _), _| ns != netns || present.contains(index));
        }
        for record in &update.upsert {
            // A link has one record per namespace and index: a renamed link replaces its old
            // entry.
            records.retain(|(ns, index, _), _| !(ns == netns && *index == record.ifindex));
            records.insert(record.key(), record.clone());
        }

        if records == before {
            return Ok(());
        }
        let file = LinksFile {
            version: FORMAT_VERSION,
            links: records.into_values().collect(),
        };
        write_json(&self.dir, LINKS_FILE, &file)
    }
}

/// Finds the record of one link, for `macveil show`: the link with this index and name in the
/// namespace `netns`. A missing state directory or file means no record.
pub fn find_record(
    state_dir: &Path,
    netns: &str,
    ifindex: u32,
    ifname: &str,
) -> Result<Option<LinkRecord>, StateError> {
    let records = RecordStore::new(state_dir).load()?;
    Ok(records.into_iter().find(|record| {
        record.netns == netns && record.ifindex == ifindex && record.ifname == ifname
    }))
}

/// The marker of the daemon's last start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootMarker {
    /// The boot id (`/proc/sys/kernel/random/boot_id`) of the boot the daemon last started in.
    pub boot_id: String,
    /// The daemon's process id.
    pub pid: u32,
    /// When it finished its first pass, in seconds since the Unix epoch.
    pub time: u64,
}

impl BootMarker {
    /// Reads the marker in `state_dir`; `Ok(None)` when there is none.
    pub fn load(state_dir: &Path) -> Result<Option<BootMarker>, StateError> {
        read_json(&state_dir.join(MARKER_FILE))
    }

    /// Writes the marker for this boot, replacing any older one.
    pub fn store(&self, state_dir: &Path) -> Result<(), StateError> {
        write_json(state_dir, MARKER_FILE, self)
    }

    /// Returns whether a daemon started with `boot_id` is the first daemon of its boot: there
    /// is no marker, or it names another boot. An unreadable marker counts as a first start, which spares
    /// running links rather than cutting them.
    pub fn is_first_start(state_dir: &Path, boot_id: &str) -> bool {
        match BootMarker::load(state_dir) {
            Ok(Some(marker)) => marker.boot_id != boot_id,
            Ok(None) => true,
            Err(err) => {
                log::warn!("{err}; treating this as the first start of the boot");
                true
            }
        }
    }
}

/// Creates `dir` (mode 0700) when needed.
pub fn create_dir(dir: &Path) -> Result<(), StateError> {
    state::create_dir(dir)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_error("read", path)(source)),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|err| StateError::Corrupt {
            path: path.to_path_buf(),
            detail: err.to_string(),
        })?;
    if let Some(version) = value.get("version").and_then(serde_json::Value::as_u64) {
        if version != u64::from(FORMAT_VERSION) {
            return Err(StateError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("format version {version} is not {FORMAT_VERSION}"),
            });
        }
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|err| StateError::Corrupt {
            path: path.to_path_buf(),
            detail: err.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(index: u32, name: &str, status: LinkStatus) -> LinkRecord {
        LinkRecord {
            netns: String::from("cookie:1"),
            ifindex: index,
            ifname: name.to_string(),
            policy: String::from("stable"),
            origin: String::from("[connection] test.conf:2"),
            status,
            address: Some(String::from("02:00:00:00:00:01")),
            detail: None,
            writer: Writer::Daemon,
            time: 1,
        }
    }

    #[test]
    fn update_merges_writers() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::new(dir.path());
        let daemon = RecordUpdate {
            upsert: vec![record(3, "veth0", LinkStatus::Set)],
            remove: Vec::new(),
        };
        store.update("cookie:1", &daemon, None).unwrap();

        let mut from_udev = record(4, "veth1", LinkStatus::Set);
        from_udev.writer = Writer::Udev;
        let udev = RecordUpdate {
            upsert: vec![from_udev.clone()],
            remove: Vec::new(),
        };
        store.update("cookie:1", &udev, None).unwrap();

        let records = store.load().unwrap();
        assert_eq!(records.len(), 2, "{records:?}");
        assert_eq!(
            find_record(dir.path(), "cookie:1", 4, "veth1").unwrap(),
            Some(from_udev)
        );
    }

    #[test]
    fn renamed_link_replaces_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::new(dir.path());
        let first = RecordUpdate {
            upsert: vec![record(3, "eth0", LinkStatus::Set)],
            remove: Vec::new(),
        };
        store.update("cookie:1", &first, None).unwrap();
        let renamed = RecordUpdate {
            upsert: vec![record(3, "enp0s3", LinkStatus::Set)],
            remove: Vec::new(),
        };
        store.update("cookie:1", &renamed, None).unwrap();

        let records = store.load().unwrap();
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0].ifname, "enp0s3");
    }

    #[test]
    fn keep_only_drops_vanished_links_of_one_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::new(dir.path());
        let mut other = record(3, "veth0", LinkStatus::Set);
        other.netns = String::from("cookie:2");
        let update = RecordUpdate {
            upsert: vec![
                record(3, "veth0", LinkStatus::Set),
                record(5, "veth2", LinkStatus::Kept),
                other,
            ],
            remove: Vec::new(),
        };
        store.update("cookie:1", &update, None).unwrap();
        store
            .update("cookie:1", &RecordUpdate::default(), Some(&[5]))
            .unwrap();

        let records = store.load().unwrap();
        let kept: Vec<(&str, u32)> = records
            .iter()
            .map(|record| (record.netns.as_str(), record.ifindex))
            .collect();
        assert_eq!(kept, vec![("cookie:1", 5), ("cookie:2", 3)]);
    }

    #[test]
    fn remove_forgets_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::new(dir.path());
        let add = RecordUpdate {
            upsert: vec![record(3, "veth0", LinkStatus::Set)],
            remove: Vec::new(),
        };
        store.update("cookie:1", &add, None).unwrap();
        let remove = RecordUpdate {
            upsert: Vec::new(),
            remove: vec![(3, String::from("veth0"))],
        };
        store.update("cookie:1", &remove, None).unwrap();
        assert!(store.load().unwrap().is_empty());
    }

    #[test]
    fn corrupt_records_are_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LINKS_FILE), "[1, 2").unwrap();
        let store = RecordStore::new(dir.path());
        let update = RecordUpdate {
            upsert: vec![record(3, "veth0", LinkStatus::Set)],
            remove: Vec::new(),
        };
        let err = store.update("cookie:1", &update, None).unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join(LINKS_FILE)).unwrap(),
            "[1, 2"
        );
    }

    #[test]
    fn marker_tells_first_start_of_a_boot() {
        let dir = tempfile::tempdir().unwrap();
        assert!(BootMarker::is_first_start(dir.path(), "boot-a"));
        let marker = BootMarker {
            boot_id: String::from("boot-a"),
            pid: 42,
            time: 1,
        };
        marker.store(dir.path()).unwrap();
        assert!(!BootMarker::is_first_start(dir.path(), "boot-a"));
        assert!(BootMarker::is_first_start(dir.path(), "boot-b"));
        assert_eq!(BootMarker::load(dir.path()).unwrap(), Some(marker));
    }
}
