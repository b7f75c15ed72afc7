//! Link facts that rtnetlink does not carry, read with ioctls on a datagram socket: the driver
//! name (`ETHTOOL_GDRVINFO`), the permanent address (`ETHTOOL_GPERMADDR`) and whether the link
//! is a Wi-Fi interface (`SIOCGIWNAME`).
//!
//! Interface ioctls act on the namespace the socket was created in, so the socket is opened
//! together with the netlink socket, inside the target namespace. Every call here only reads.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::addr::MacAddr;

/// `SIOCETHTOOL` from `<linux/sockios.h>`.
const SIOCETHTOOL: libc::c_ulong = 0x8946;
/// `SIOCGIWNAME` from `<linux/wireless.h>`: succeeds only on wireless interfaces.
const SIOCGIWNAME: libc::c_ulong = 0x8B01;
/// `ETHTOOL_GDRVINFO` from `<linux/ethtool.h>`.
const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
/// `ETHTOOL_GPERMADDR` from `<linux/ethtool.h>`.
const ETHTOOL_GPERMADDR: u32 = 0x0000_0020;
/// `MAX_ADDR_LEN` from `<linux/netdevice.h>`.
const MAX_ADDR_LEN: usize = 32;
/// `SO_NETNS_COOKIE` from `<asm-generic/socket.h>` (Linux 5.14 and later).
const SO_NETNS_COOKIE: libc::c_int = 71;

/// `struct ifreq` with the union reduced to the data pointer the ethtool calls use. The union
/// is 24 bytes on 64-bit targets; the padding keeps the size the kernel copies.
#[repr(C)]
struct InterfaceRequest {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    padding: [u8; 24 - std::mem::size_of::<*mut libc::c_void>()],
}

/// `struct ethtool_drvinfo`.
#[repr(C)]
struct DriverInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// `struct ethtool_perm_addr` followed by room for `MAX_ADDR_LEN` bytes.
#[repr(C)]
struct PermanentAddress {
    cmd: u32,
    size: u32,
    data: [u8; MAX_ADDR_LEN],
}

/// A datagram socket used only for interface ioctls.
pub struct IoctlSocket {
    fd: OwnedFd,
}

impl IoctlSocket {
    /// Opens the socket in the calling thread's network namespace.
    pub fn open() -> io::Result<IoctlSocket> {
        // SAFETY: socket() takes no pointers; a non-negative result is a new descriptor that
        // nothing else owns.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(), and no other object owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(IoctlSocket { fd })
    }

    /// Returns the namespace's cookie, unique for the life of the system (`SO_NETNS_COOKIE`); none on
    /// kernels before 5.14.
    pub fn netns_cookie(&self) -> Option<u64> {
        let mut cookie: u64 = 0;
        let mut length = std::mem::size_of::<u64>() as libc::socklen_t;
        // SAFETY: the pointers refer to a live u64 and its length, as getsockopt expects.
        let result = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_NETNS_COOKIE,
                (&mut cookie as *mut u64).cast(),
                &mut length,
            )
        };
        (result == 0).then_some(cookie)
    }

    /// Reads the driver name (`ETHTOOL_GDRVINFO`).
    pub fn driver(&self, ifname: &str) -> io::Result<String> {
        // SAFETY: DriverInfo is plain integers and byte arrays, for which zero is valid.
        let mut info: DriverInfo = unsafe { std::mem::zeroed() };
        info.cmd = ETHTOOL_GDRVINFO;
        self.ethtool(ifname, (&mut info as *mut DriverInfo).cast())?;
        let driver = CStr::from_bytes_until_nul(&info.driver)
            .map(|text| text.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(driver)
    }

    /// Reads the permanent address (`ETHTOOL_GPERMADDR`); `Ok(None)` when the driver reports none,
    /// which the kernel signals with an all-zero address.
    pub fn permanent_address(&self, ifname: &str) -> io::Result<Option<MacAddr>> {
        let mut request = PermanentAddress {
            cmd: ETHTOOL_GPERMADDR,
            size: MAX_ADDR_LEN as u32,
            data: [0; MAX_ADDR_LEN],
        };
        self.ethtool(ifname, (&mut request as *mut PermanentAddress).cast())?;
        if request.size != 6 {
            return Ok(None);
        }
        Ok(MacAddr::from_slice(&request.data[..6]).filter(|addr| !addr.is_zero()))
    }

    /// Returns whether the link accepts the wireless-extensions name request, as cfg80211
    /// drivers do when the kernel has `CONFIG_CFG80211_WEXT`.
    pub fn is_wireless(&self, ifname: &str) -> bool {
        // `struct iwreq` is 16 name bytes plus a 16-byte union; InterfaceRequest is larger.
        let Ok(mut request) = interface_request(ifname, std::ptr::null_mut()) else {
            return false;
        };
        // SAFETY: the kernel writes at most sizeof(struct iwreq) = 32 bytes into `request`,
        // which is 40 bytes long and lives for the call.
        let result = unsafe { libc::ioctl(self.fd.as_raw_fd(), SIOCGIWNAME, &mut request) };
        result == 0
    }

    fn ethtool(&self, ifname: &str, data: *mut libc::c_void) -> io::Result<()> {
        let mut request = interface_request(ifname, data)?;
        // SAFETY: `request` names the interface and points to an ethtool structure of the type
        // its `cmd` selects; both outlive the call.
        let result = unsafe { libc::ioctl(self.fd.as_raw_fd(), SIOCETHTOOL, &mut request) };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

fn interface_request(ifname: &str, data: *mut libc::c_void) -> io::Result<InterfaceRequest> {
    let bytes = ifname.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut request = InterfaceRequest {
        name: [0; libc::IFNAMSIZ],
        data,
        padding: [0; 24 - std::mem::size_of::<*mut libc::c_void>()],
    };
    for (slot, byte) in request.name.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structures_have_kernel_sizes() {
        assert_eq!(std::mem::size_of::<InterfaceRequest>(), 40);
        assert_eq!(std::mem::size_of::<DriverInfo>(), 196);
    }

    #[test]
    fn loopback_has_no_permanent_address() {
        let socket = IoctlSocket::open().unwrap();
        // lo has no ethtool permanent address: either an all-zero address or EOPNOTSUPP.
        if let Ok(permanent) = socket.permanent_address("lo") {
            assert_eq!(permanent, None);
        }
        assert!(!socket.is_wireless("lo"));
    }

    #[test]
    fn overlong_name_is_rejected() {
        let socket = IoctlSocket::open().unwrap();
        let err = socket.driver("a-name-longer-than-ifnamsiz").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }
}
