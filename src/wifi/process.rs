//! The process behind a wpa_supplicant control socket, watched through a pidfd.
//!
//! A supplicant that is killed sends no `CTRL-EVENT-TERMINATING`, and a client of its datagram
//! socket gets no error while it only waits for events. Its pidfd becomes readable the moment
//! the process exits, so a client that polls it notices at once. The process is found through
//! the socket: `/proc/self/net/unix` maps the socket file's path to the socket's inode, and the
//! process that has `socket:[INODE]` among its descriptors bound it.
//!
//! This module only finds and watches the process; it never signals it.

use std::fs;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

/// Finds the process that bound the unix socket `path`. `None` when no process has it open, or
/// when `/proc` does not show it (a hardened service may see only its own processes).
pub fn socket_owner(path: &Path) -> io::Result<Option<u32>> {
    let canonical = fs::canonicalize(path)?;
    let table = fs::read_to_string("/proc/self/net/unix")?;
    let Some(inode) = table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "Num RefCount Protocol Flags Type St Inode Path": the path is absent for unbound
        // sockets.
        let [.., inode, bound] = fields.as_slice() else {
            return None;
        };
        if fields.len() < 8 {
            return None;
        }
        let same = fs::canonicalize(bound).is_ok_and(|bound| bound == canonical);
        same.then(|| inode.to_string())
    }) else {
        return Ok(None);
    };

    let target = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc")?.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        // A process may exit meanwhile, or hide its descriptors; both only skip it.
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let owns = fds.filter_map(Result::ok).any(|fd| {
            fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == target.as_str())
        });
        if owns {
            return Ok(Some(pid));
        }
    }
    Ok(None)
}

/// Opens a pidfd for `pid`, which becomes readable when the process exits.
pub fn pidfd(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "process id out of range"))?;
    // SAFETY: pidfd_open takes a process id and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("descriptor out of range"))?;
    // SAFETY: the kernel just returned this descriptor, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn socket_owner_finds_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wlan0");
        let _socket = UnixDatagram::bind(&path).unwrap();
        assert_eq!(socket_owner(&path).unwrap(), Some(std::process::id()));

        let unbound = dir.path().join("gone");
        drop(UnixDatagram::bind(&unbound).unwrap());
        assert_eq!(socket_owner(&unbound).unwrap(), None);
    }

    #[test]
    fn pidfd_becomes_readable_at_exit() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let fd = pidfd(child.id()).unwrap();
        let mut poll = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `poll` is one valid pollfd for the whole call.
        let before = unsafe { libc::poll(&mut poll, 1, 0) };
        assert_eq!(before, 0, "readable before the exit");
        // SAFETY: as above.
        let after = unsafe { libc::poll(&mut poll, 1, 5000) };
        assert_eq!(after, 1, "not readable after the exit");
        child.wait().unwrap();
    }
}
