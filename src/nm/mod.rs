//! NetworkManager as macveil reads it: its version and what that version supports
//! ([`version`]), its configuration files ([`conf`]) and connection profiles ([`profile`]), the
//! MAC and DHCP settings it applies to a profile on a device ([`resolve`]), the stable address it
//! will pick ([`predict`]), its device records ([`device`]), installing macveil's policy as a
//! drop-in ([`install`]) and watching activations ([`verify`]).
//!
//! Every path is taken below a root folder ([`NmPaths`]), `/` on a running system, so that tests
//! and offline checks of a system image read their own copies.
//!
//! Only [`install`] writes, and only its drop-in and the backup of a drop-in it replaces. The
//! other modules read files or run NetworkManager's own tools (`NetworkManager -V`, `nmcli`).

pub mod conf;
pub mod device;
pub mod install;
pub mod predict;
pub mod profile;
pub mod resolve;
pub mod verify;
pub mod version;

use std::path::{Path, PathBuf};

use crate::config::ConfigPaths;
use crate::generate::stable_id::BOOT_ID_PATH;
use crate::secret_key::NETWORKMANAGER_KEY_PATH;

/// The files NetworkManager reads, below one root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NmPaths {
    /// The root, `/` on a running system.
    pub root: PathBuf,
    /// NetworkManager's configuration files.
    pub config: ConfigPaths,
    /// NetworkManager's secret key.
    pub secret_key: PathBuf,
    /// sysfs, for the links and their facts.
    pub sysfs: PathBuf,
    /// The kernel's boot id.
    pub boot_id: PathBuf,
}

impl NmPaths {
    /// Returns the paths below `root`. The boot id is the running kernel's when `root` is `/`, and
    /// `root/proc/sys/kernel/random/boot_id` otherwise.
    pub fn under(root: &Path) -> NmPaths {
        let below = |absolute: &str| root.join(absolute.trim_start_matches('/'));
        NmPaths {
            root: root.to_path_buf(),
            config: ConfigPaths::under(root),
            secret_key: below(NETWORKMANAGER_KEY_PATH),
            sysfs: below("/sys"),
            boot_id: below(BOOT_ID_PATH),
        }
    }
}
