//! Reads [`LinkFacts`] from a sysfs tree alone, for `macveil config check --sysfs DIR` (a copy
//! of a sysfs tree, as in tests). On the live system `config check` builds the facts as the
//! daemon does instead ([`crate::daemon::facts`]).
//!
//! sysfs shows the links of the network namespace that mounted it, which for a process in
//! its own namespace with a fresh sysfs mount is its own. What sysfs provides:
//! - the kind: `type` 772 is loopback; `phy80211` or `wireless` means Wi-Fi; `tun_flags` means
//!   tun or tap; `DEVTYPE=` in `uevent` names bridges, bonds, VLANs and other kinds; an
//!   Ethernet-type link with a device is Ethernet; one without a device whose `iflink` is
//!   another link and that has no `lower_*` link is one end of a veth pair.
//! - the driver: the name of `device/driver`, and its module's `version` when it has one.
//! - the device: whether `device` exists, and its `subsystem`.
//! - the current address (`address`), and the permanent one only while `addr_assign_type` is
//!   0 (`NET_ADDR_PERM`): then the current address is the permanent one.
//!
//! NOTE: sysfs does not name every virtual kind: a dummy, macvlan or ipvlan link without
//! `DEVTYPE=` reads as "generic" here, where the daemon gets the kind from rtnetlink
//! (`IFLA_INFO_KIND`). `type:` entries for those kinds match only in the daemon.

use std::fs;
use std::io;
use std::path::Path;

use super::link::{LinkFacts, LinkKind, SysfsDevice};
use crate::addr::MacAddr;

/// `ARPHRD_ETHER` from `<linux/if_arp.h>`.
const ARPHRD_ETHER: u32 = 1;
/// `ARPHRD_LOOPBACK` from `<linux/if_arp.h>`.
const ARPHRD_LOOPBACK: u32 = 772;
/// `NET_ADDR_PERM` from `<linux/netdevice.h>`: the address is the device's permanent one.
const NET_ADDR_PERM: u32 = 0;

/// Reads every link under `sysfs/class/net`, sorted by interface index. `sysfs` is normally
/// `/sys`.
pub fn read_links(sysfs: &Path) -> io::Result<Vec<LinkFacts>> {
    let net = sysfs.join("class/net");
    let mut links = Vec::new();
    for entry in fs::read_dir(&net)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let dir = entry.path();
        // /sys/class/net also contains the bonding_masters file.
        if !dir.join("ifindex").exists() {
            continue;
        }
        let index = read_number(&dir.join("ifindex")).unwrap_or(u32::MAX);
        links.push((index, read_link(sysfs, &name)?));
    }
    links.sort_by_key(|(index, link)| (*index, link.name.clone()));
    Ok(links.into_iter().map(|(_, link)| link).collect())
}

/// Reads one link's facts from `sysfs/class/net/NAME`.
pub fn read_link(sysfs: &Path, name: &str) -> io::Result<LinkFacts> {
    let dir = sysfs.join("class/net").join(name);
    if !dir.join("ifindex").exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} is not a network link", dir.display()),
        ));
    }

    let device_dir = dir.join("device");
    let device = device_dir.exists().then(|| SysfsDevice {
        subsystem: link_name(&device_dir.join("subsystem")),
    });
    let driver = link_name(&device_dir.join("driver"));
    let driver_version = link_name(&device_dir.join("driver/module"))
        .and_then(|module| read_trimmed(&sysfs.join("module").join(module).join("version")));

    let current = read_trimmed(&dir.join("address"))
        .and_then(|text| text.parse::<MacAddr>().ok())
        .filter(|addr| !addr.is_zero());
    let permanent = match read_number(&dir.join("addr_assign_type")) {
        Some(NET_ADDR_PERM) => current,
        _ => None,
    };

    Ok(LinkFacts {
        name: name.to_string(),
        kind: classify(&dir, device.is_some()),
        driver,
        driver_version,
        permanent,
        current,
        device,
    })
}

fn classify(dir: &Path, has_device: bool) -> LinkKind {
    let link_type = read_number(&dir.join("type"));
    if link_type == Some(ARPHRD_LOOPBACK) {
        return LinkKind::Loopback;
    }
    if dir.join("phy80211").exists() || dir.join("wireless").exists() {
        return LinkKind::Wifi;
    }
    if dir.join("tun_flags").exists() {
        return LinkKind::Tun;
    }
    if let Some(devtype) = uevent_devtype(dir) {
        return match devtype.as_str() {
            "wlan" => LinkKind::Wifi,
            "bridge" => LinkKind::Bridge,
            "bond" => LinkKind::Bond,
            "vlan" => LinkKind::Vlan,
            "wireguard" => LinkKind::Wireguard,
            "vxlan" => LinkKind::Vxlan,
            _ => LinkKind::Other(devtype),
        };
    }
    if dir.join("bridge").is_dir() {
        return LinkKind::Bridge;
    }
    if dir.join("bonding").is_dir() {
        return LinkKind::Bond;
    }
    if link_type != Some(ARPHRD_ETHER) {
        return LinkKind::Generic;
    }
    if has_device {
        return LinkKind::Ethernet;
    }

    let index = read_number(&dir.join("ifindex"));
    let peer = read_number(&dir.join("iflink"));
    let has_lower = fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().starts_with("lower_"))
    });
    if index.is_some() && peer.is_some() && index != peer && peer != Some(0) && !has_lower {
        return LinkKind::Veth;
    }
    LinkKind::Generic
}

fn uevent_devtype(dir: &Path) -> Option<String> {
    let text = fs::read_to_string(dir.join("uevent")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("DEVTYPE="))
        .map(str::to_string)
}

/// The last component of the symbolic link's target.
fn link_name(path: &Path) -> Option<String> {
    let target = fs::read_link(path).ok()?;
    target
        .file_name()
        .and_then(|name| name.to_str())
        .map(str::to_string)
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

fn read_number(path: &Path) -> Option<u32> {
    read_trimmed(path)?.parse().ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    /// Builds a fake sysfs tree.
    pub(crate) struct FakeSysfs {
        pub root: tempfile::TempDir,
    }

    /// One link to put in a fake sysfs tree.
    #[derive(Default)]
    pub(crate) struct FakeLink<'a> {
        pub name: &'a str,
        pub index: u32,
        pub iflink: Option<u32>,
        pub link_type: u32,
        pub address: &'a str,
        pub assign_type: u32,
        pub devtype: Option<&'a str>,
        pub device: Option<(&'a str, &'a str)>,
        pub module_version: Option<&'a str>,
        pub files: &'a [&'a str],
        pub dirs: &'a [&'a str],
    }

    impl FakeSysfs {
        pub(crate) fn new() -> FakeSysfs {
            let root = tempfile::tempdir().unwrap();
            fs::create_dir_all(root.path().join("class/net")).unwrap();
            fs::write(root.path().join("class/net/bonding_masters"), "\n").unwrap();
            FakeSysfs { root }
        }

        pub(crate) fn path(&self) -> PathBuf {
            self.root.path().to_path_buf()
        }

        pub(crate) fn add(&self, link: FakeLink<'_>) {
            let root = self.root.path();
            let dir = root.join("class/net").join(link.name);
            fs::create_dir_all(&dir).unwrap();
            let write = |file: &str, text: String| fs::write(dir.join(file), text).unwrap();
            write("ifindex", format!("{}\n", link.index));
            write("iflink", format!("{}\n", link.iflink.unwrap_or(link.index)));
            write("type", format!("{}\n", link.link_type));
            write("address", format!("{}\n", link.address));
            write("addr_assign_type", format!("{}\n", link.assign_type));
            let devtype = link
                .devtype
                .map(|devtype| format!("DEVTYPE={devtype}\n"))
                .unwrap_or_default();
            write("uevent", format!("{devtype}INTERFACE={}\n", link.name));
            for file in link.files {
                write(file, String::new());
            }
            for sub in link.dirs {
                fs::create_dir_all(dir.join(sub)).unwrap();
            }

            if let Some((subsystem, driver)) = link.device {
                let device = root.join("devices/fake").join(link.name);
                fs::create_dir_all(&device).unwrap();
                let bus = root.join("bus").join(subsystem);
                fs::create_dir_all(&bus).unwrap();
                symlink(&bus, device.join("subsystem")).unwrap();
                let driver_dir = bus.join("drivers").join(driver);
                fs::create_dir_all(&driver_dir).unwrap();
                symlink(&driver_dir, device.join("driver")).unwrap();
                let module = root.join("module").join(driver);
                fs::create_dir_all(&module).unwrap();
                if !driver_dir.join("module").exists() {
                    symlink(&module, driver_dir.join("module")).unwrap();
                }
                if let Some(version) = link.module_version {
                    fs::write(module.join("version"), format!("{version}\n")).unwrap();
                }
                symlink(&device, dir.join("device")).unwrap();
            }
        }
    }

    fn ethernet_like<'a>(name: &'a str, index: u32) -> FakeLink<'a> {
        FakeLink {
            name,
            index,
            link_type: ARPHRD_ETHER,
            address: "02:00:00:00:00:01",
            assign_type: 3,
            ..FakeLink::default()
        }
    }

    #[test]
    fn read_links_classifies_kinds() {
        let sysfs = FakeSysfs::new();
        sysfs.add(FakeLink {
            name: "lo",
            index: 1,
            link_type: ARPHRD_LOOPBACK,
            address: "00:00:00:00:00:00",
            ..FakeLink::default()
        });
        sysfs.add(FakeLink {
            address: "3c:22:fb:01:02:03",
            assign_type: NET_ADDR_PERM,
            device: Some(("pci", "e1000e")),
            module_version: Some("5.15.0-k"),
            ..ethernet_like("eth0", 2)
        });
        sysfs.add(FakeLink {
            device: Some(("pci", "iwlwifi")),
            dirs: &["phy80211"],
            ..ethernet_like("wlan0", 3)
        });
        sysfs.add(FakeLink {
            iflink: Some(9),
            ..ethernet_like("veth0", 4)
        });
        sysfs.add(FakeLink {
            devtype: Some("bridge"),
            dirs: &["bridge"],
            ..ethernet_like("br0", 5)
        });
        sysfs.add(FakeLink {
            link_type: 65534,
            files: &["tun_flags"],
            ..ethernet_like("tun0", 6)
        });
        sysfs.add(ethernet_like("dummy0", 7));
        sysfs.add(FakeLink {
            device: Some(("xen-backend", "vif")),
            ..ethernet_like("vif3.0", 8)
        });
        sysfs.add(FakeLink {
            iflink: Some(2),
            files: &["lower_eth0"],
            ..ethernet_like("mv0", 9)
        });

        let links = read_links(&sysfs.path()).unwrap();
        let summary: Vec<(String, String)> = links
            .iter()
            .map(|link| (link.name.clone(), link.kind.to_string()))
            .collect();
        let expected = [
            ("lo", "loopback"),
            ("eth0", "ethernet"),
            ("wlan0", "wifi"),
            ("veth0", "veth"),
            ("br0", "bridge"),
            ("tun0", "tun"),
            ("dummy0", "generic"),
            ("vif3.0", "ethernet"),
            ("mv0", "generic"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(name, kind)| (name.to_string(), kind.to_string()))
            .collect();
        assert_eq!(summary, expected);

        let eth0 = &links[1];
        assert_eq!(eth0.driver.as_deref(), Some("e1000e"));
        assert_eq!(eth0.driver_version.as_deref(), Some("5.15.0-k"));
        assert_eq!(
            eth0.device.as_ref().unwrap().subsystem.as_deref(),
            Some("pci")
        );
        assert_eq!(eth0.permanent, Some("3c:22:fb:01:02:03".parse().unwrap()));
        assert!(eth0.is_physical());

        let lo = &links[0];
        assert_eq!(lo.current, None);
        assert!(lo.device.is_none());

        let wlan0 = &links[2];
        assert_eq!(
            wlan0.permanent, None,
            "a set address is not the permanent one"
        );
        assert_eq!(wlan0.current, Some("02:00:00:00:00:01".parse().unwrap()));

        let vif = &links[7];
        assert!(vif.is_xen_backend());
        assert_eq!(vif.driver.as_deref(), Some("vif"));
    }

    #[test]
    fn read_link_rejects_non_links() {
        let sysfs = FakeSysfs::new();
        let err = read_link(&sysfs.path(), "bonding_masters").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
