//! The facts the configuration matches a link on ([`LinkFacts`]), built from what rtnetlink
//! reports and, for links of the caller's own namespace, from sysfs.
//!
//! The kind comes from `IFLA_INFO_KIND` and the link-layer type, so that `type:` matches a dummy
//! or macvlan link that sysfs cannot name. The device behind a link, which decides whether the
//! link is physical, is only visible in sysfs, and sysfs shows the namespace it was mounted
//! from. A link in another namespace therefore has no device here and counts as virtual.

use std::fs;
use std::path::Path;

use crate::addr::MacAddr;
use crate::config::{LinkFacts, LinkKind, SysfsDevice};
use crate::link::Link;

/// Builds the facts of `link`. `reference` is the recorded reference address, used as the
/// permanent address of a link without one. `sysfs_net` is `/sys/class/net` when the link is in
/// the caller's namespace.
pub fn of(link: &Link, reference: Option<MacAddr>, sysfs_net: Option<&Path>) -> LinkFacts {
    let dir = sysfs_net
        .map(|root| root.join(&link.name))
        .filter(|dir| same_index(dir, link.index));

    let device_dir = dir.as_ref().map(|dir| dir.join("device"));
    let device = device_dir
        .as_ref()
        .filter(|device| device.exists())
        .map(|device| SysfsDevice {
            subsystem: link_target_name(&device.join("subsystem")),
        });
    let driver_version = device_dir.as_ref().and_then(|device| {
        let module = link_target_name(&device.join("driver/module"))?;
        let sysfs_root = sysfs_net?.parent()?.parent()?;
        let version = fs::read_to_string(sysfs_root.join("module").join(module).join("version"));
        version.ok().map(|text| text.trim().to_string())
    });

    LinkFacts {
        name: link.name.clone(),
        kind: LinkKind::from_kernel(link.info_kind.as_deref(), link.wireless, link.link_type),
        driver: link.driver.clone(),
        driver_version,
        permanent: link.permanent.or(reference),
        current: link.address,
        device,
    }
}

/// Returns whether the sysfs directory belongs to the link with `index`, not to a link of the
/// same name in another namespace.
fn same_index(dir: &Path, index: u32) -> bool {
    fs::read_to_string(dir.join("ifindex"))
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        == Some(index)
}

fn link_target_name(path: &Path) -> Option<String> {
    let target = fs::read_link(path).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::link::{AssignType, OperState};

    fn link(name: &str, index: u32) -> Link {
        Link {
            index,
            name: name.into(),
            info_kind: None,
            wireless: false,
            link_type: 1,
            driver: Some("e1000e".into()),
            admin_up: true,
            lower_up: true,
            operstate: OperState::Up,
            address: Some("3c:22:fb:01:02:03".parse().unwrap()),
            permanent: Some("3c:22:fb:01:02:03".parse().unwrap()),
            permanent_source: None,
            assign_type: AssignType::Permanent,
            parent: None,
            ipv6_addr_gen_mode: None,
        }
    }

    #[test]
    fn physical_link_has_its_sysfs_device() {
        let sys = tempfile::tempdir().unwrap();
        let net = sys.path().join("class/net");
        let dir = net.join("eth0");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("ifindex"), "2\n").unwrap();
        let device = sys.path().join("devices/pci0000:00/0000:00:19.0");
        fs::create_dir_all(device.join("driver")).unwrap();
        fs::create_dir_all(sys.path().join("bus/pci")).unwrap();
        fs::create_dir_all(sys.path().join("module/e1000e")).unwrap();
        fs::write(sys.path().join("module/e1000e/version"), "3.8.7-NAPI\n").unwrap();
        symlink(sys.path().join("bus/pci"), device.join("subsystem")).unwrap();
        symlink(
            sys.path().join("module/e1000e"),
            device.join("driver/module"),
        )
        .unwrap();
        symlink(&device, dir.join("device")).unwrap();

        let facts = of(&link("eth0", 2), None, Some(&net));
        assert!(facts.is_physical());
        assert_eq!(facts.kind, LinkKind::Ethernet);
        assert_eq!(facts.device.unwrap().subsystem.as_deref(), Some("pci"));
        assert_eq!(facts.driver_version.as_deref(), Some("3.8.7-NAPI"));

        // A link with the same name but another index is not this directory's link.
        let other = of(&link("eth0", 7), None, Some(&net));
        assert!(!other.is_physical());
    }

    #[test]
    fn reference_stands_in_for_missing_permanent() {
        let mut veth = link("veth0", 4);
        veth.info_kind = Some("veth".into());
        veth.permanent = None;
        let reference: MacAddr = "12:34:56:78:9a:bc".parse().unwrap();
        let facts = of(&veth, Some(reference), None);
        assert_eq!(facts.kind, LinkKind::Veth);
        assert_eq!(facts.permanent, Some(reference));
        assert!(facts.device.is_none());
    }
}
