//! Whether NetworkManager manages a link, from the per-device state files it keeps in
//! `/run/NetworkManager/devices/IFINDEX`.
//!
//! NetworkManager writes one key file per device it tracks (`nm_config_device_state_write()` in
//! `src/core/nm-config.c`): group `[device]`, key `managed=true|false`, and while a profile is
//! active, `connection-uuid=`. A device NetworkManager manages gets its address from the
//! profile's `cloned-mac-address` at every activation, so the daemon leaves such a link's
//! address to NetworkManager, except that the hardware address is always undone.
//!
//! The files describe NetworkManager's own namespace, so they are consulted only for links of
//! the namespace the daemon runs in.
//!
//! NOTE: the files do not say which `cloned-mac-address` the active profile uses, so a link
//! NetworkManager manages with `preserve` counts as managed with a policy of its own too, and
//! its `random` address is not rotated when it goes down.

use std::fs;
use std::path::{Path, PathBuf};

/// NetworkManager's folder of device state files.
pub const DEVICE_STATE_DIR: &str = "/run/NetworkManager/devices";

/// NetworkManager's device state files in one directory.
#[derive(Debug, Clone)]
pub struct DeviceStates {
    dir: PathBuf,
}

impl DeviceStates {
    /// Reads the files in `dir`, normally [`DEVICE_STATE_DIR`], when asked about a link.
    pub fn new(dir: impl Into<PathBuf>) -> DeviceStates {
        DeviceStates { dir: dir.into() }
    }

    /// Returns whether the file of link `index` contains `managed=true`. A missing or unreadable file means
    /// NetworkManager does not manage the link, or does not run.
    pub fn is_managed(&self, index: u32) -> bool {
        let path = self.dir.join(index.to_string());
        match fs::read_to_string(&path) {
            Ok(text) => managed_in(&text),
            Err(_) => false,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Reads `managed=` in the `[device]` group of a GLib key file. GLib ignores comment lines and
/// whitespace around `=`; NetworkManager reads the value as a boolean.
fn managed_in(text: &str) -> bool {
    let mut in_device = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(group) = line
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            in_device = group == "device";
            continue;
        }
        if !in_device {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            if key.trim() == "managed" {
                return matches!(
                    value.trim().to_ascii_lowercase().as_str(),
                    "true" | "yes" | "on" | "1"
                );
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_network_manager_device_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("3"),
            "# NetworkManager device state\n[device]\nmanaged=true\n\
             perm-hw-addr-fake=02:11:22:33:44:55\nconnection-uuid=7a7fc2ab-6b38-4c4c-8b6d-5f1a5e1f6e3a\n",
        )
        .unwrap();
        fs::write(dir.path().join("4"), "[device]\nmanaged=false\n").unwrap();
        fs::write(dir.path().join("5"), "[other]\nmanaged=true\n").unwrap();

        let states = DeviceStates::new(dir.path());
        assert!(states.is_managed(3));
        assert!(!states.is_managed(4));
        assert!(!states.is_managed(5));
        assert!(!states.is_managed(6), "a missing file is not managed");
    }
}
