//! One daemon at a time per state directory: an exclusive `flock` on the state directory itself
//! and on `daemon.lock` in it, held for the life of the process and released by the kernel when
//! it exits, however it exits. The lock on the directory survives the deletion of `daemon.lock`.
//! The lock on the file keeps out a daemon that locks only the file. The file contains the
//! holder's process id for the error message of a second instance.
//!
//! NOTE: a state directory that is deleted and created again is a new inode, so a second daemon
//! could then lock it while the first still runs on the deleted one.

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
    _dir: File,
    _file: File,
}

/// Takes an exclusive `flock` on `file` without waiting. Returns `Ok(false)` when another
/// process has locked it.
fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: flock takes a descriptor that `file` keeps open.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(err)
    }
}

impl InstanceLock {
    /// Takes the lock in `state_dir` without waiting.
    pub fn acquire(state_dir: &Path) -> Result<InstanceLock, InstanceError> {
        create_dir(state_dir)?;
        let path = state_dir.join(LOCK_FILE);
        let read_pid = || {
            let mut text = String::new();
            File::open(&path).ok()?.read_to_string(&mut text).ok()?;
            text.trim().parse().ok()
        };
        let already_running = |pid| InstanceError::AlreadyRunning {
            dir: state_dir.to_path_buf(),
            pid,
        };

        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(state_dir)
            .map_err(|error| StateError::Io {
                action: "open",
                path: state_dir.to_path_buf(),
                error,
            })?;
        let dir_locked = try_lock(&dir).map_err(|error| StateError::Io {
            action: "lock",
            path: state_dir.to_path_buf(),
            error,
        })?;
        if !dir_locked {
            return Err(already_running(read_pid()));
        }

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

        if !try_lock(&file).map_err(|source| io_error("lock", source))? {
            return Err(already_running(read_pid()));
        }

        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(pid.as_bytes()))
            .map_err(|source| io_error("write", source))?;
        Ok(InstanceLock {
            _dir: dir,
            _file: file,
        })
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

    #[test]
    fn deleted_lock_file_still_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let first = InstanceLock::acquire(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join(LOCK_FILE)).unwrap();

        let err = match InstanceLock::acquire(dir.path()) {
            Err(err) => err,
            Ok(_) => panic!("a second lock was granted after the lock file was deleted"),
        };
        assert!(
            matches!(err, InstanceError::AlreadyRunning { pid: None, .. }),
            "{err}"
        );

        drop(first);
        assert!(InstanceLock::acquire(dir.path()).is_ok());
    }

    #[test]
    fn file_only_lock_holder_excludes() {
        // A daemon that locks only daemon.lock, as before the directory lock.
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join(LOCK_FILE)).unwrap();
        assert!(try_lock(&file).unwrap());

        let err = match InstanceLock::acquire(dir.path()) {
            Err(err) => err,
            Ok(_) => panic!("a lock was granted beside a daemon that holds daemon.lock"),
        };
        assert!(matches!(err, InstanceError::AlreadyRunning { .. }), "{err}");
    }
}
