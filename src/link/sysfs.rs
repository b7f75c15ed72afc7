//! Link facts read from `/sys/class/net/NAME`: driver, `addr_assign_type`, whether the link is
//! Wi-Fi, and the Wi-Fi phy's address.
//!
//! sysfs shows the links of the network namespace it was mounted from, so these readers are used
//! only for the caller's own namespace. [`SysfsLink::find`] also checks that the directory's
//! `ifindex` matches the link, because a link with the same name can exist elsewhere.

use std::fs;
use std::path::{Path, PathBuf};

use super::AssignType;
use crate::addr::MacAddr;

/// The sysfs view of one link.
pub struct SysfsLink {
    dir: PathBuf,
}

impl SysfsLink {
    /// Finds the directory of link `name` with index `index` under `root` (normally
    /// `/sys/class/net`); `None` when there is none or its index differs.
    pub fn find(root: &Path, name: &str, index: u32) -> Option<SysfsLink> {
        let dir = root.join(name);
        let text = fs::read_to_string(dir.join("ifindex")).ok()?;
        let found: u32 = text.trim().parse().ok()?;
        (found == index).then_some(SysfsLink { dir })
    }

    /// Returns the bound driver of the underlying device (`device/driver`); none for virtual links.
    pub fn driver(&self) -> Option<String> {
        let target = fs::read_link(self.dir.join("device/driver")).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    /// Reads `addr_assign_type`; unknown when the file is missing or unreadable.
    pub fn assign_type(&self) -> AssignType {
        fs::read_to_string(self.dir.join("addr_assign_type"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .map_or(AssignType::Unknown, AssignType::from_sysfs)
    }

    /// Returns whether the link is Wi-Fi: cfg80211 links have `phy80211`, wireless-extensions drivers
    /// have `wireless`.
    pub fn is_wireless(&self) -> bool {
        self.dir.join("phy80211").exists() || self.dir.join("wireless").exists()
    }

    /// Returns the Wi-Fi phy's address (`phy80211/macaddress`), which is the hardware's own.
    pub fn phy_address(&self) -> Option<MacAddr> {
        let text = fs::read_to_string(self.dir.join("phy80211/macaddress")).ok()?;
        text.trim()
            .parse::<MacAddr>()
            .ok()
            .filter(|addr| !addr.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_fake_wireless_link() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("wlan0");
        fs::create_dir_all(dir.join("phy80211")).unwrap();
        fs::write(dir.join("ifindex"), "3\n").unwrap();
        fs::write(dir.join("addr_assign_type"), "0\n").unwrap();
        fs::write(dir.join("phy80211/macaddress"), "3c:22:fb:01:02:03\n").unwrap();

        assert!(SysfsLink::find(root.path(), "wlan0", 4).is_none());
        let link = SysfsLink::find(root.path(), "wlan0", 3).unwrap();
        assert!(link.is_wireless());
        assert_eq!(link.assign_type(), AssignType::Permanent);
        assert_eq!(
            link.phy_address(),
            Some("3c:22:fb:01:02:03".parse().unwrap())
        );
        assert_eq!(link.driver(), None);
    }

    #[test]
    fn zero_phy_address_is_unknown() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("wlan1");
        fs::create_dir_all(dir.join("phy80211")).unwrap();
        fs::write(dir.join("ifindex"), "5").unwrap();
        fs::write(dir.join("phy80211/macaddress"), "00:00:00:00:00:00").unwrap();
        let link = SysfsLink::find(root.path(), "wlan1", 5).unwrap();
        assert_eq!(link.phy_address(), None);
        assert_eq!(link.assign_type(), AssignType::Unknown);
    }
}
