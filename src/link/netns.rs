//! Network namespaces: naming one, identifying it, and creating sockets inside it without moving
//! the calling thread.
//!
//! A socket belongs to the network namespace of the thread that created it, for its whole life.
//! So [`Netns::run_inside`] starts a short-lived thread, moves only that thread into the
//! namespace with `setns(CLONE_NEWNET)`, runs the closure there (which opens the sockets) and
//! returns its result. The caller's own threads never change namespace. This module does not
//! create or delete namespaces.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::error::LinkError;

/// The directory where `ip netns add NAME` puts its namespace files.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// A network namespace to work in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Netns {
    /// The namespace of the calling thread.
    Current,
    /// The namespace behind a file such as `/run/netns/NAME` or `/proc/PID/ns/net`.
    Path(PathBuf),
}

/// An identity of a namespace that stays the same for its life: the device and inode of its
/// `nsfs` file, as `stat` reports them for `/proc/PID/ns/net`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetnsId {
    /// `st_dev` of the namespace file.
    pub device: u64,
    /// `st_ino` of the namespace file.
    pub inode: u64,
}

impl std::fmt::Display for NetnsId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.device, self.inode)
    }
}

impl Netns {
    /// Interprets a `--netns` value: a value containing `/` is a path, anything else is a name
    /// under /run/netns.
    pub fn from_arg(value: &str) -> Result<Netns, String> {
        if value.contains('/') {
            return Ok(Netns::Path(PathBuf::from(value)));
        }
        if value.is_empty() || value == "." || value == ".." {
            return Err(format!(
                "invalid network namespace name '{value}'; give a name from 'ip netns list' or a \
                 path such as /proc/PID/ns/net"
            ));
        }
        Ok(Netns::Path(Path::new(NETNS_RUN_DIR).join(value)))
    }

    /// Returns the namespace file, or `None` for the caller's namespace.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Netns::Current => None,
            Netns::Path(path) => Some(path),
        }
    }

    /// Returns the namespace's identity.
    pub fn id(&self) -> Result<NetnsId, LinkError> {
        let path = self.file_path();
        let metadata = std::fs::metadata(&path).map_err(|error| LinkError::Netns {
            path: path.clone(),
            error,
        })?;
        Ok(NetnsId {
            device: metadata.dev(),
            inode: metadata.ino(),
        })
    }

    /// Returns whether this is the namespace the calling thread is in, so that sysfs, which shows the
    /// namespace it was mounted from, can describe its links.
    pub fn is_callers(&self) -> Result<bool, LinkError> {
        match self {
            Netns::Current => Ok(true),
            Netns::Path(_) => Ok(self.id()? == Netns::Current.id()?),
        }
    }

    /// Runs `work` on a thread inside this namespace and returns its result. Sockets that `work`
    /// creates stay in this namespace after the thread ends.
    pub fn run_inside<T, F>(&self, work: F) -> Result<T, LinkError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let Netns::Path(path) = self else {
            return Ok(work());
        };
        let netns_error = |error: io::Error| LinkError::Netns {
            path: path.clone(),
            error,
        };
        let file = File::open(path).map_err(netns_error)?;

        let thread = std::thread::Builder::new()
            .name(String::from("macveil-netns"))
            .spawn(move || -> io::Result<T> {
                // SAFETY: setns only reads the descriptor, which `file` keeps open for the
                // call, and changes the namespace of this thread alone.
                let result = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if result != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(work())
            })
            .map_err(netns_error)?;

        match thread.join() {
            Ok(result) => result.map_err(netns_error),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    fn file_path(&self) -> PathBuf {
        match self {
            // The calling thread's namespace, not the thread group leader's.
            Netns::Current => PathBuf::from("/proc/thread-self/ns/net"),
            Netns::Path(path) => path.clone(),
        }
    }
}

impl std::fmt::Display for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Netns::Current => f.write_str("the current network namespace"),
            Netns::Path(path) => write!(f, "network namespace {}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_arg_maps_names_and_paths() {
        assert_eq!(
            Netns::from_arg("lab").unwrap(),
            Netns::Path(PathBuf::from("/run/netns/lab"))
        );
        assert_eq!(
            Netns::from_arg("/proc/1/ns/net").unwrap(),
            Netns::Path(PathBuf::from("/proc/1/ns/net"))
        );
        assert!(Netns::from_arg("..").is_err());
        assert!(Netns::from_arg("").is_err());
    }

    #[test]
    fn current_is_callers() {
        assert!(Netns::Current.is_callers().unwrap());
        let own = Netns::Path(PathBuf::from("/proc/thread-self/ns/net"));
        assert!(own.is_callers().unwrap());
    }

    #[test]
    fn missing_namespace_names_the_path() {
        let netns = Netns::from_arg("macveil-no-such-namespace").unwrap();
        let err = netns.run_inside(|| ()).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("/run/netns/macveil-no-such-namespace"),
            "{message}"
        );
        assert!(message.contains("ip netns list"), "{message}");
    }
}
