//! NetworkManager's records of the devices it has seen: one key file per device in
//! `/run/NetworkManager/devices/IFINDEX`, written by `nm_config_device_state_write()` in
//! NetworkManager's `src/core/nm-config.c`. Group `[device]` holds `managed=` and, while a
//! profile is active on the device, `connection-uuid=`.
//!
//! The files describe NetworkManager's own network namespace, so they say nothing about links of
//! another namespace. This module reads files only.

use std::fs;
use std::path::Path;

use crate::config::keyfile::{self, KeyFile};
use crate::generate::stable_id;

/// The folder of the device state files, relative to the root.
pub const DEVICE_STATE_DIR: &str = "run/NetworkManager/devices";

/// NetworkManager's record of one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceState {
    /// Whether NetworkManager manages the device.
    pub managed: bool,
    /// The UUID of the profile active on it, in lower case.
    pub connection_uuid: Option<String>,
}

/// Reads the state NetworkManager recorded for the link with `ifindex`. `None` when there is no
/// readable file: NetworkManager does not run, or does not know the link.
pub fn device_state(root: &Path, ifindex: u32) -> Option<DeviceState> {
    let path = root.join(DEVICE_STATE_DIR).join(ifindex.to_string());
    let data = fs::read(&path).ok()?;
    let file = match KeyFile::parse(&data) {
        Ok(file) => file,
        Err(err) => {
            log::debug!("ignoring {}: {err}", path.display());
            return None;
        }
    };
    let group = file.group("device")?;
    let managed = group
        .entry("managed")
        .and_then(|entry| keyfile::parse_bool(&entry.value).ok().flatten())
        .unwrap_or(false);
    let connection_uuid = group
        .entry("connection-uuid")
        .and_then(|entry| stable_id::canonical_uuid(entry.value.trim()));
    Some(DeviceState {
        managed,
        connection_uuid,
    })
}

/// Reads a link's interface index from `sysfs/class/net/NAME/ifindex`.
pub fn link_index(sysfs: &Path, name: &str) -> Option<u32> {
    let text = fs::read_to_string(sysfs.join("class/net").join(name).join("ifindex")).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_is_read() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(DEVICE_STATE_DIR);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("3"),
            "# NetworkManager device state\n[device]\nmanaged=true\n\
             perm-hw-addr-fake=02:11:22:33:44:55\n\
             connection-uuid=7A7FC2AB-6B38-4C4C-8B6D-5F1A5E1F6E3A\n",
        )
        .unwrap();
        fs::write(dir.join("4"), "[device]\nmanaged=false\n").unwrap();
        fs::write(dir.join("5"), "not a key file\n").unwrap();

        assert_eq!(
            device_state(root.path(), 3),
            Some(DeviceState {
                managed: true,
                connection_uuid: Some("7a7fc2ab-6b38-4c4c-8b6d-5f1a5e1f6e3a".into()),
            })
        );
        assert_eq!(
            device_state(root.path(), 4),
            Some(DeviceState {
                managed: false,
                connection_uuid: None
            })
        );
        assert_eq!(device_state(root.path(), 5), None);
        assert_eq!(device_state(root.path(), 6), None);
    }

    #[test]
    fn link_index_reads_sysfs() {
        let sysfs = tempfile::tempdir().unwrap();
        let dir = sysfs.path().join("class/net/eth0");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("ifindex"), "7\n").unwrap();
        assert_eq!(link_index(sysfs.path(), "eth0"), Some(7));
        assert_eq!(link_index(sysfs.path(), "eth1"), None);
    }
}
