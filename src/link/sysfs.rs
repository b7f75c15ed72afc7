//! Link facts read from sysfs (`class/net/NAME`): driver, `addr_assign_type`, whether the link is
//! Wi-Fi, and the Wi-Fi phy's address.
//!
//! sysfs shows the links of the network namespace it was mounted from. For the caller's own
//! namespace that is `/sys`; for another one, [`SysfsRoot::mount_private`] mounts a sysfs
//! instance from inside it. Every read is relative to a descriptor of the `class/net`
//! directory, which is much cheaper than resolving a full path for each of a thousand links.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::AssignType;
use crate::addr::MacAddr;

/// An open `class/net` directory of some sysfs instance.
pub struct SysfsRoot {
    dir: OwnedFd,
    /// Whether the instance is known to show the namespace the links are in, so that the index
    /// check of [`SysfsRoot::find`] can be skipped.
    trusted: bool,
}

/// One link's directory in a [`SysfsRoot`].
pub struct SysfsLink<'a> {
    root: &'a SysfsRoot,
    name: String,
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn open_directory(path: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: `path` is NUL-terminated; a non-negative result is a new descriptor.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by open(), and no other object owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl SysfsRoot {
    /// Opens `path` (normally `/sys/class/net`). Links found through it are checked by index,
    /// because that sysfs may have been mounted from another namespace.
    pub fn open(path: &Path) -> io::Result<SysfsRoot> {
        let path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok(SysfsRoot {
            dir: open_directory(&path)?,
            trusted: false,
        })
    }

    /// Mounts a sysfs instance that shows the calling thread's network namespace and opens its
    /// `class/net` directory.
    ///
    /// The thread first moves into a mount namespace of its own and marks every mount in it
    /// private, so the new mount never propagates to the namespace the thread came from. The
    /// mount namespace ends with the thread, and the descriptor keeps the detached sysfs
    /// readable. Call this only on a thread that ends afterwards
    /// ([`super::Netns::run_inside`]); it needs CAP_SYS_ADMIN.
    pub fn mount_private() -> io::Result<SysfsRoot> {
        // SAFETY: unshare takes no pointers. CLONE_NEWNS also unshares this thread's filesystem
        // context, so the other threads keep their mount namespace.
        check(unsafe { libc::unshare(libc::CLONE_NEWNS) })?;

        // SAFETY: the path is a NUL-terminated literal; null source, type and data are allowed
        // when only the propagation changes (MS_PRIVATE).
        check(unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        })?;

        let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        // SAFETY: the strings are NUL-terminated literals, and sysfs takes no mount data.
        check(unsafe {
            libc::mount(
                c"sysfs".as_ptr(),
                c"/sys".as_ptr(),
                c"sysfs".as_ptr(),
                flags,
                std::ptr::null(),
            )
        })?;

        Ok(SysfsRoot {
            dir: open_directory(c"/sys/class/net")?,
            trusted: true,
        })
    }

    /// Finds the directory of link `name` with index `index`; `None` when there is none or,
    /// for an untrusted root, its index differs.
    pub fn find(&self, name: &str, index: u32) -> Option<SysfsLink<'_>> {
        let link = SysfsLink {
            root: self,
            name: name.to_string(),
        };
        if self.trusted {
            return Some(link);
        }
        let found: u32 = link.read("ifindex")?.parse().ok()?;
        (found == index).then_some(link)
    }
}

impl SysfsLink<'_> {
    /// Returns the path of `file` in this link's directory, relative to the root descriptor.
    fn relative(&self, file: &str) -> Option<CString> {
        CString::new(format!("{}/{file}", self.name)).ok()
    }

    /// Reads an attribute of at most 63 bytes, trimmed.
    fn read(&self, file: &str) -> Option<String> {
        let path = self.relative(file)?;
        // SAFETY: the root descriptor is open for the life of `self.root`, and `path` is
        // NUL-terminated. A non-negative result is a new descriptor.
        let fd = unsafe {
            libc::openat(
                self.root.dir.as_raw_fd(),
                path.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` was just returned by openat(), and no other object owns it.
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut buffer = [0u8; 64];
        // SAFETY: the buffer is 64 writable bytes that live for the call.
        let length =
            unsafe { libc::read(file.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
        let length = usize::try_from(length).ok()?;
        let text = std::str::from_utf8(&buffer[..length]).ok()?;
        Some(text.trim().to_string())
    }

    fn exists(&self, file: &str) -> bool {
        let Some(path) = self.relative(file) else {
            return false;
        };
        // SAFETY: the root descriptor is open and `path` is NUL-terminated.
        unsafe { libc::faccessat(self.root.dir.as_raw_fd(), path.as_ptr(), libc::F_OK, 0) == 0 }
    }

    /// Returns the bound driver of the underlying device (`device/driver`); none for virtual
    /// links.
    pub fn driver(&self) -> Option<String> {
        let path = self.relative("device/driver")?;
        let mut buffer = [0u8; 256];
        // SAFETY: the root descriptor is open, `path` is NUL-terminated, and the buffer is 256
        // writable bytes; readlinkat writes at most that many.
        let length = unsafe {
            libc::readlinkat(
                self.root.dir.as_raw_fd(),
                path.as_ptr(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
            )
        };
        let length = usize::try_from(length).ok()?;
        let target = Path::new(OsStr::from_bytes(&buffer[..length]));
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    /// Reads `addr_assign_type`; unknown when the file is missing or unreadable.
    pub fn assign_type(&self) -> AssignType {
        self.read("addr_assign_type")
            .and_then(|text| text.parse().ok())
            .map_or(AssignType::Unknown, AssignType::from_sysfs)
    }

    /// Returns whether the link is Wi-Fi: cfg80211 links have `phy80211`, wireless-extensions
    /// drivers have `wireless`.
    pub fn is_wireless(&self) -> bool {
        self.exists("phy80211") || self.exists("wireless")
    }

    /// Returns the Wi-Fi phy's address (`phy80211/macaddress`), which is the hardware's own.
    pub fn phy_address(&self) -> Option<MacAddr> {
        self.read("phy80211/macaddress")?
            .parse::<MacAddr>()
            .ok()
            .filter(|addr| !addr.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn reads_a_fake_wireless_link() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("wlan0");
        fs::create_dir_all(dir.join("phy80211")).unwrap();
        fs::create_dir_all(root.path().join("devices/pci0/driver/iwlwifi")).unwrap();
        fs::create_dir_all(dir.join("device")).unwrap();
        std::os::unix::fs::symlink(
            root.path().join("devices/pci0/driver/iwlwifi"),
            dir.join("device/driver"),
        )
        .unwrap();
        fs::write(dir.join("ifindex"), "3\n").unwrap();
        fs::write(dir.join("addr_assign_type"), "0\n").unwrap();
        fs::write(dir.join("phy80211/macaddress"), "3c:22:fb:01:02:03\n").unwrap();

        let sysfs = SysfsRoot::open(root.path()).unwrap();
        assert!(sysfs.find("wlan0", 4).is_none());
        let link = sysfs.find("wlan0", 3).unwrap();
        assert!(link.is_wireless());
        assert_eq!(link.assign_type(), AssignType::Permanent);
        assert_eq!(
            link.phy_address(),
            Some("3c:22:fb:01:02:03".parse().unwrap())
        );
        assert_eq!(link.driver().as_deref(), Some("iwlwifi"));
    }

    #[test]
    fn zero_phy_address_is_unknown() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("wlan1");
        fs::create_dir_all(dir.join("phy80211")).unwrap();
        fs::write(dir.join("ifindex"), "5").unwrap();
        fs::write(dir.join("phy80211/macaddress"), "00:00:00:00:00:00").unwrap();
        let sysfs = SysfsRoot::open(root.path()).unwrap();
        let link = sysfs.find("wlan1", 5).unwrap();
        assert_eq!(link.phy_address(), None);
        assert_eq!(link.assign_type(), AssignType::Unknown);
        assert_eq!(link.driver(), None);
    }

    #[test]
    fn callers_sysfs_shows_loopback() {
        let sysfs = SysfsRoot::open(Path::new("/sys/class/net")).unwrap();
        // lo is index 1 in every namespace.
        let lo = sysfs.find("lo", 1).unwrap();
        assert_eq!(lo.assign_type(), AssignType::Permanent);
        assert!(!lo.is_wireless());
        assert!(sysfs.find("lo", 2).is_none());
    }
}
