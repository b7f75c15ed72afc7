//! One daemon at a time per state directory: an exclusive `flock` on `daemon.lock`, held for the
//! life of the process and released by the kernel when it exits, however it exits. The file
//! contains the holder's process id for the error message of a second instance.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::state::create_dir;
use crate::link::state::StateError;

const LOCK_FILE: &str = "daemon.lock";

/// A failure to become the only running daemon.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// Another daemon holds the lock.
    #[error(
        "another macveil daemon{} is already running with state directory {}; stop it first \
         (systemctl stop macveil), or give this one another --state-dir",
        .pid.map(|pid| format!(" (process {pid})")).unwrap_or_default(),
        .dir.display()
    )]
    AlreadyRunning {
        /// The state directory.
        dir: PathBuf,
        /// The other daemon's process id, when the lock file names one.
        pid: Option<u32>,
    },

    /// The lock file could not be created or locked.
    #[error(transparent)]
    State(#[from] StateError),
}

/// The held lock; dropping it releases the lock.
pub struct InstanceLock {
    _file: File,
}

impl InstanceLock {
    /// Takes the lock in `state_dir` without waiting.
    pub fn acquire(state_dir: &Path) -> Result<InstanceLock, InstanceError> {
        create_dir(state_dir)?;
        let path = state_dir.join(LOCK_FILE);
        let io_error = |action, error| StateError::Io {
            action,
            path: path.clone(),
            error,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| io_error("open", source))?;

        // SAFETY: flock takes a descriptor that `file` keeps open.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(InstanceError::AlreadyRunning {
                    dir: state_dir.to_path_buf(),
                    pid: text.trim().parse().ok(),
                });
            }
            return Err(io_error("lock", err).into());
        }

        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(pid.as_bytes()))
            .map_err(|source| io_error("write", source))?;
        Ok(InstanceLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_with_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = InstanceLock::acquire(dir.path()).unwrap();
        let err = match InstanceLock::acquire(dir.path()) {
            Err(err) => err,
            Ok(_) => panic!("a second lock in the same directory was granted"),
        };
        match &err {
            InstanceError::AlreadyRunning { pid, .. } => {
                assert_eq!(*pid, Some(std::process::id()));
            }
            other => panic!("unexpected error: {other}"),
        }
        assert!(err.to_string().contains("--state-dir"), "{err}");

        drop(first);
        assert!(InstanceLock::acquire(dir.path()).is_ok());
    }
}
