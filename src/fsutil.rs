//! Writing a whole file and flushing it to disk, the first half of an atomic replacement.
//!
//! A file replaced atomically is written under a temporary name, flushed with fsync(2), and
//! only then renamed (rename(2)) or linked (link(2)) into place. Readers, and the disk after a
//! crash, then have the old content or the new, never part of it. This module does the write
//! and the flush. The callers choose the temporary name, rename or link, clean up after a
//! failure and word their own errors, because those differ: a state file is replaced, while a
//! secret key must never replace an existing one.

use std::fs::{OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The handling of a file that already exists at the path [`write_synced`] writes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Existing {
    /// Truncate it and write over it (`O_CREAT | O_TRUNC`).
    Truncate,
    /// Fail with [`io::ErrorKind::AlreadyExists`] (`O_CREAT | O_EXCL`).
    Fail,
}

/// The permission bits [`write_synced`] gives a file it creates.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode {
    /// Passed to open(2), so the process umask can clear bits.
    Masked(u32),
    /// Passed to open(2) and then set with fchmod(2), so the umask has no effect.
    Exact(u32),
}

/// The step of [`write_synced`] that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteStep {
    /// Opening or creating the file.
    Open,
    /// Setting the exact mode.
    SetMode,
    /// Writing the content.
    Write,
    /// Flushing the file to disk.
    Sync,
}

/// A failed [`write_synced`]: the step and the error from the kernel.
#[derive(Debug)]
pub(crate) struct WriteError {
    /// The step that failed.
    pub step: WriteStep,
    /// The error from the kernel.
    pub source: io::Error,
}

/// Creates `path` (or truncates it, according to `existing`) with `mode`, writes all of
/// `content` and flushes it to disk with fsync(2). Nothing is removed after a failure.
pub(crate) fn write_synced(
    path: &Path,
    content: &[u8],
    existing: Existing,
    mode: Mode,
) -> Result<(), WriteError> {
    let fail = |step| move |source| WriteError { step, source };

    let mut options = OpenOptions::new();
    options.write(true);
    match existing {
        Existing::Truncate => options.create(true).truncate(true),
        Existing::Fail => options.create_new(true),
    };
    let requested = match mode {
        Mode::Masked(bits) | Mode::Exact(bits) => bits,
    };
    let mut file = options
        .mode(requested)
        .open(path)
        .map_err(fail(WriteStep::Open))?;

    if let Mode::Exact(bits) = mode {
        file.set_permissions(Permissions::from_mode(bits))
            .map_err(fail(WriteStep::SetMode))?;
    }
    file.write_all(content).map_err(fail(WriteStep::Write))?;
    file.sync_all().map_err(fail(WriteStep::Sync))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn exact_mode_ignores_umask() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exact");

        // 0o666 requests bits that the common umasks (0o022, 0o077) clear at open(2).
        write_synced(&path, b"content\n", Existing::Fail, Mode::Exact(0o666)).unwrap();

        assert_eq!(fs::read(&path).unwrap(), b"content\n");
        assert_eq!(mode_of(&path), 0o666);
    }

    #[test]
    fn fail_keeps_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taken");
        fs::write(&path, b"old").unwrap();

        let err = write_synced(&path, b"new", Existing::Fail, Mode::Masked(0o600)).unwrap_err();

        assert_eq!(err.step, WriteStep::Open);
        assert_eq!(err.source.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn truncate_replaces_longer_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stale");
        fs::write(&path, b"a longer stale content").unwrap();

        write_synced(&path, b"new", Existing::Truncate, Mode::Masked(0o600)).unwrap();

        assert_eq!(fs::read(&path).unwrap(), b"new");
    }
}
