//! The host's secret key and the host id derived from it. Every NetworkManager-compatible stable
//! address is hashed with the host id.
//!
//! The formats follow NetworkManager's handling of `/var/lib/NetworkManager/secret_key`
//! (`_host_id_read()` and `_host_id_hash_v2()` in `src/core/nm-core-utils.c`):
//!
//! - A v2 key starts with `nm-v2:` and is at least 38 bytes long (the prefix and 32 more bytes).
//!   Its host id is SHA-256 over the file length in decimal followed by a space, the raw file
//!   bytes, and the machine id as 32 lower-case hexadecimal digits. The machine id is left out when
//!   it is missing, invalid or all zero. The file is hashed as it is: the base64 text of a
//!   generated key is never decoded.
//! - Any other key of at least 16 bytes is a v1 key, and its raw bytes are the host id.
//! - A new key is a v2 key: `nm-v2:` and the padded base64 of 32 random bytes, 50 bytes in all.
//!
//! NetworkManager replaces a key it cannot use. This module never does, because a new key changes
//! every stable address the user's networks know: a key that is unreadable, too short, too long or
//! accessible by other users is a [`KeyError`]. A new key is written only where no file exists,
//! atomically (temporary file, fsync, `link(2)`), with mode 0600.
//!
//! This module never writes NetworkManager's key, and it never logs or prints key material. Key
//! bytes and host ids are zeroed when dropped, as far as the allocator allows.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::encoding::base64_padded;
use crate::fsutil::{self, Existing, Mode, WriteStep};
use crate::rng::{RandomError, RandomSource};

/// macveil's own secret key.
pub const MACVEIL_KEY_PATH: &str = "/var/lib/macveil/secret_key";

/// NetworkManager's secret key, which macveil reads but never writes.
pub const NETWORKMANAGER_KEY_PATH: &str = "/var/lib/NetworkManager/secret_key";

/// The machine id that systemd maintains.
pub const MACHINE_ID_PATH: &str = "/etc/machine-id";

/// D-Bus's copy of the machine id, which NetworkManager reads when `/etc/machine-id` cannot be
/// read.
pub const DBUS_MACHINE_ID_PATH: &str = "/var/lib/dbus/machine-id";

/// The prefix of a v2 key.
const V2_PREFIX: &[u8] = b"nm-v2:";

/// A v2 key needs the prefix and at least 32 more bytes. NetworkManager requires this length so
/// that an old 32-byte v1 key that happens to start with the prefix is still read as v1.
const V2_MIN_LEN: usize = V2_PREFIX.len() + 32;

/// Minimum key length in bytes that NetworkManager accepts.
const MIN_KEY_LEN: usize = 16;

/// Maximum key file size in bytes that NetworkManager reads (10 KiB). It treats a longer file as
/// unreadable.
const MAX_KEY_LEN: usize = 10 * 1024;

/// Random bytes in a new key, before base64 encoding.
const NEW_KEY_RANDOM_BYTES: usize = 32;

/// Bytes that are overwritten with zeros when dropped.
struct SecretBytes(Vec<u8>);

impl Drop for SecretBytes {
    fn drop(&mut self) {
        for byte in self.0.iter_mut() {
            // SAFETY: `byte` is a valid, aligned, exclusive reference into the vector. The
            // volatile write keeps the compiler from removing the zeroing of memory that is
            // about to be freed.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
    }
}

/// The version of a secret key file, which decides how its host id is derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyVersion {
    /// Any other key of at least 16 bytes, whose bytes are the host id.
    V1,
    /// A key of `nm-v2:` and at least 32 more bytes, which is hashed with the machine id.
    V2,
}

impl fmt::Display for KeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyVersion::V1 => "v1",
            KeyVersion::V2 => "v2",
        })
    }
}

/// Errors from reading or creating a secret key. None of them replaces a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No file exists at the key path.
    #[error("secret key file {} does not exist{}", path.display(), not_found_hint(path))]
    NotFound {
        /// The key path.
        path: PathBuf,
    },

    /// The key file exists but cannot be opened or read.
    #[error(
        "cannot read secret key file {}; check the path and that this user (usually root) may \
         read it",
        path.display()
    )]
    Unreadable {
        /// The key path.
        path: PathBuf,
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// The key path names a directory, device or other non-regular file.
    #[error("secret key {} is not a regular file; give the path of the key file itself", path.display())]
    NotAFile {
        /// The key path.
        path: PathBuf,
    },

    /// Users other than the owner may access the key.
    #[error(
        "secret key {} has mode {mode:04o}, so users other than its owner can access it, and it \
         was not used. Restrict it with 'chmod 600 {}'. If other users could read it, treat it \
         as disclosed, move it away and create a new key (this changes every stable address)",
        path.display(),
        path.display()
    )]
    Permissions {
        /// The key path.
        path: PathBuf,
        /// The file's permission bits.
        mode: u32,
    },

    /// The key is shorter than the 16 bytes NetworkManager accepts.
    #[error(
        "secret key {} is only {len} bytes long, but a key needs at least {MIN_KEY_LEN}. It was \
         left untouched, because a new key would change every stable address. Restore the key \
         from a backup, or move it away and create a new one with {}",
        path.display(),
        create_command(path)
    )]
    TooShort {
        /// The key path.
        path: PathBuf,
        /// The key length in bytes.
        len: usize,
    },

    /// The key file is longer than NetworkManager reads.
    #[error(
        "secret key {} is {len} bytes long, more than the {MAX_KEY_LEN} bytes NetworkManager \
         reads. It was left untouched; check that the path names a secret key file",
        path.display()
    )]
    TooLarge {
        /// The key path.
        path: PathBuf,
        /// The file length in bytes.
        len: u64,
    },

    /// A key was to be created where a file already exists.
    #[error("secret key {} already exists and is never overwritten", path.display())]
    Exists {
        /// The key path.
        path: PathBuf,
    },

    /// macveil does not create keys at NetworkManager's key path.
    #[error(
        "macveil does not create a key at {}, because that key belongs to NetworkManager, which \
         creates it when it starts. Create macveil's own key at {MACVEIL_KEY_PATH} instead",
        path.display()
    )]
    ProtectedPath {
        /// The rejected path.
        path: PathBuf,
    },

    /// Writing a new key failed, and nothing was written at the key path.
    #[error(
        "failed to create secret key {} while {step}, and no key was written there",
        path.display()
    )]
    Create {
        /// The key path.
        path: PathBuf,
        /// The step that failed.
        step: &'static str,
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// The randomness for a new key was not available.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// Says how to get a key when the one at `path` does not exist, starting with the punctuation
/// that follows "does not exist".
fn not_found_hint(path: &Path) -> String {
    if is_networkmanager_key(path) {
        return ". NetworkManager creates it when it first starts, so start NetworkManager once, or \
                use macveil's own key"
            .to_string();
    }
    format!(
        ", and macveil never creates one implicitly. Create it by adding --create-secret-key \
         to the command (for example {}), or use an existing key with --secret-key FILE, such \
         as NetworkManager's {NETWORKMANAGER_KEY_PATH}",
        create_command(path)
    )
}

/// Formats the command that creates a key at `path`, quoted for an error message.
fn create_command(path: &Path) -> String {
    if path == Path::new(MACVEIL_KEY_PATH) {
        "'macveil gen --stable --create-secret-key --ifname IFACE'".to_string()
    } else {
        format!(
            "'macveil gen --stable --create-secret-key --ifname IFACE --secret-key {}'",
            path.display()
        )
    }
}

/// Returns whether `path` is NetworkManager's key file, also through a symlinked directory.
pub fn is_networkmanager_key(path: &Path) -> bool {
    let nm_path = Path::new(NETWORKMANAGER_KEY_PATH);
    if path == nm_path {
        return true;
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return false;
    };
    if Some(name) != nm_path.file_name() {
        return false;
    }
    let nm_dir = nm_path
        .parent()
        .expect("the NetworkManager key path has a parent");
    match (fs::canonicalize(parent), fs::canonicalize(nm_dir)) {
        (Ok(parent), Ok(nm_dir)) => parent == nm_dir,
        _ => false,
    }
}

/// An invalid `--machine-id` value.
#[derive(Debug, thiserror::Error)]
pub enum MachineIdError {
    /// The value is neither an id nor an existing file.
    #[error(
        "'{value}' is neither a machine id (32 hexadecimal digits) nor an existing file; give the \
         id itself or a file such as {MACHINE_ID_PATH}"
    )]
    NotFound {
        /// The rejected value.
        value: String,
    },

    /// The machine id file exists but cannot be read.
    #[error("cannot read machine id file {}", path.display())]
    Unreadable {
        /// The file path.
        path: PathBuf,
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },
}

/// A 128-bit machine id as in `/etc/machine-id` (see machine-id(5)).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MachineId([u8; 16]);

impl MachineId {
    /// Parses 32 hexadecimal digits in any case, ignoring surrounding ASCII whitespace as
    /// NetworkManager's `g_strstrip()` does.
    pub fn parse(text: &str) -> Option<MachineId> {
        // GLib's whitespace class also contains the vertical tab, which Rust's does not.
        let digits = text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
        if digits.len() != 32 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut octets = [0u8; 16];
        for (i, octet) in octets.iter_mut().enumerate() {
            *octet = u8::from_str_radix(&digits[i * 2..i * 2 + 2], 16).ok()?;
        }
        Some(MachineId(octets))
    }

    /// Whether every bit is zero. NetworkManager treats an all-zero id as invalid.
    pub fn is_null(&self) -> bool {
        self.0 == [0; 16]
    }

    /// Formats the id as 32 lower-case hexadecimal digits, the form NetworkManager hashes.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads the machine id as NetworkManager does: `/etc/machine-id`, or D-Bus's copy when that
    /// file cannot be read. Returns `None` when no valid, non-zero id is found; a v2 key's host
    /// id then leaves the machine id out, as NetworkManager's does.
    pub fn read_default() -> Option<MachineId> {
        read_machine_id_files(Path::new(MACHINE_ID_PATH), Path::new(DBUS_MACHINE_ID_PATH))
    }

    /// Interprets a `--machine-id` value: the id itself, or a file that contains it.
    ///
    /// A file with an invalid or all-zero id gives `Ok(None)` with a warning, because
    /// NetworkManager then leaves the machine id out. A value that is neither an id nor an
    /// existing file is an error.
    pub fn from_argument(value: &str) -> Result<Option<MachineId>, MachineIdError> {
        if let Some(id) = MachineId::parse(value) {
            if id.is_null() {
                log::warn!(
                    "the machine id given is all zero; it is left out, as NetworkManager does"
                );
                return Ok(None);
            }
            return Ok(Some(id));
        }

        let path = Path::new(value);
        let content = match fs::read(path) {
            Ok(content) => content,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(MachineIdError::NotFound {
                    value: value.to_string(),
                });
            }
            Err(source) => {
                return Err(MachineIdError::Unreadable {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let id = valid_machine_id(&content);
        if id.is_none() {
            log::warn!(
                "{} contains no valid, non-zero machine id; it is left out, as NetworkManager does",
                path.display()
            );
        }
        Ok(id)
    }
}

impl fmt::Debug for MachineId {
    /// Hides the id, which machine-id(5) calls confidential.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MachineId(..)")
    }
}

/// Parses a machine id file's content; `None` for invalid or all-zero ids.
fn valid_machine_id(content: &[u8]) -> Option<MachineId> {
    let text = std::str::from_utf8(content).ok()?;
    MachineId::parse(text).filter(|id| !id.is_null())
}

/// Reads `primary`, or `fallback` when `primary` cannot be read. NetworkManager tries the
/// fallback only when reading fails, not when the first file contains an invalid id.
fn read_machine_id_files(primary: &Path, fallback: &Path) -> Option<MachineId> {
    let (path, content) = match fs::read(primary) {
        Ok(content) => (primary, content),
        Err(primary_err) => match fs::read(fallback) {
            Ok(content) => (fallback, content),
            Err(_) => {
                log::info!(
                    "cannot read {} ({primary_err}) or {}; the host id leaves the machine id \
                     out, as NetworkManager does",
                    primary.display(),
                    fallback.display()
                );
                return None;
            }
        },
    };
    let id = valid_machine_id(&content);
    if id.is_none() {
        log::info!(
            "{} contains no valid, non-zero machine id; the host id leaves it out, as \
             NetworkManager does",
            path.display()
        );
    }
    id
}

/// The per-host secret that stable addresses are hashed with.
pub struct HostId(SecretBytes);

impl HostId {
    /// Wraps host id bytes given directly, for example a test vector's.
    pub fn from_bytes(bytes: Vec<u8>) -> HostId {
        HostId(SecretBytes(bytes))
    }

    /// Returns the host id bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0.0
    }
}

impl fmt::Debug for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostId({} bytes)", self.0.0.len())
    }
}

/// The content of a secret key file.
pub struct SecretKey {
    content: SecretBytes,
}

impl SecretKey {
    /// Reads and checks the key at `path`. The file must be a regular file of 16 to 10240
    /// bytes that only its owner may access.
    pub fn read(path: &Path) -> Result<SecretKey, KeyError> {
        let unreadable = |source| KeyError::Unreadable {
            path: path.to_path_buf(),
            source,
        };

        // O_NONBLOCK keeps a FIFO at the key path from blocking the open.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(path)
            .map_err(|err| {
                if err.kind() == io::ErrorKind::NotFound {
                    KeyError::NotFound {
                        path: path.to_path_buf(),
                    }
                } else {
                    unreadable(err)
                }
            })?;

        // Checking the opened file, not the path, leaves no window for a swap in between.
        let metadata = file.metadata().map_err(unreadable)?;
        if !metadata.is_file() {
            return Err(KeyError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        let mode = metadata.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        if metadata.len() > MAX_KEY_LEN as u64 {
            return Err(KeyError::TooLarge {
                path: path.to_path_buf(),
                len: metadata.len(),
            });
        }

        // The buffer is allocated once at full size so that no reallocation leaves a copy of
        // key bytes behind.
        let mut content = SecretBytes(Vec::with_capacity(MAX_KEY_LEN + 1));
        (&file)
            .take(MAX_KEY_LEN as u64 + 1)
            .read_to_end(&mut content.0)
            .map_err(unreadable)?;
        SecretKey::check(content, path)
    }

    /// Checks key bytes that did not come from a file, for example in tests. `Err` values name
    /// the path `(in memory)`.
    pub fn from_content(content: Vec<u8>) -> Result<SecretKey, KeyError> {
        SecretKey::check(SecretBytes(content), Path::new("(in memory)"))
    }

    fn check(content: SecretBytes, path: &Path) -> Result<SecretKey, KeyError> {
        let len = content.0.len();
        if len < MIN_KEY_LEN {
            return Err(KeyError::TooShort {
                path: path.to_path_buf(),
                len,
            });
        }
        if len > MAX_KEY_LEN {
            return Err(KeyError::TooLarge {
                path: path.to_path_buf(),
                len: len as u64,
            });
        }
        Ok(SecretKey { content })
    }

    /// Reads the key at `path`, or creates a new one when no file exists there. Every other
    /// problem with an existing key is an error, as in [`SecretKey::read`]. The flag is true when
    /// the key was created.
    pub fn read_or_create(
        path: &Path,
        rng: &mut dyn RandomSource,
    ) -> Result<(SecretKey, bool), KeyError> {
        match SecretKey::read(path) {
            Err(KeyError::NotFound { .. }) => {}
            other => return other.map(|key| (key, false)),
        }
        match SecretKey::create(path, rng) {
            Ok(key) => Ok((key, true)),
            // Another process created the key in the meantime; use that one.
            Err(KeyError::Exists { .. }) => SecretKey::read(path).map(|key| (key, false)),
            Err(err) => Err(err),
        }
    }

    /// Creates a new v2 key at `path`. Fails with [`KeyError::Exists`] when any file exists
    /// there, and never writes NetworkManager's key path.
    ///
    /// The key is written to a temporary file in the same directory with mode 0600, flushed
    /// with fsync, and then linked to `path`. `link(2)` fails instead of replacing an existing
    /// file, so a key that appears in the meantime is kept, and a crash leaves either no key or
    /// a complete one. A missing parent directory is created with mode 0700.
    pub fn create(path: &Path, rng: &mut dyn RandomSource) -> Result<SecretKey, KeyError> {
        if is_networkmanager_key(path) {
            return Err(KeyError::ProtectedPath {
                path: path.to_path_buf(),
            });
        }
        let create_error = |step, source| KeyError::Create {
            path: path.to_path_buf(),
            step,
            source,
        };

        match fs::symlink_metadata(path) {
            Ok(_) => {
                return Err(KeyError::Exists {
                    path: path.to_path_buf(),
                });
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(create_error("checking the path", err)),
        }
        let file_name = path.file_name().ok_or_else(|| {
            create_error(
                "checking the path",
                io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
            )
        })?;
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|err| create_error("creating the directory", err))?;

        let mut random = SecretBytes(vec![0; NEW_KEY_RANDOM_BYTES]);
        rng.fill(&mut random.0)?;
        let encoded = SecretBytes(base64_padded(&random.0).into_bytes());
        let mut content = SecretBytes(Vec::with_capacity(V2_PREFIX.len() + encoded.0.len()));
        content.0.extend_from_slice(V2_PREFIX);
        content.0.extend_from_slice(&encoded.0);

        let mut suffix = [0u8; 8];
        rng.fill(&mut suffix)?;
        let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let temp = TempFile(parent.join(format!(".{}.{suffix}.tmp", file_name.to_string_lossy())));

        // The exact mode because the umask may have removed bits from 0600, and the owner must
        // be able to read the key.
        fsutil::write_synced(&temp.0, &content.0, Existing::Fail, Mode::Exact(0o600)).map_err(
            |err| {
                let step = match err.step {
                    WriteStep::Open => "creating the temporary file",
                    WriteStep::SetMode => "setting mode 0600",
                    WriteStep::Write => "writing the temporary file",
                    WriteStep::Sync => "flushing the temporary file",
                };
                create_error(step, err.source)
            },
        )?;

        fs::hard_link(&temp.0, path).map_err(|err| {
            if err.kind() == io::ErrorKind::AlreadyExists {
                KeyError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                create_error("linking the key into place", err)
            }
        })?;
        drop(temp);

        // The key is in place; a failed directory flush only weakens crash safety.
        if let Err(err) = File::open(parent).and_then(|dir| dir.sync_all()) {
            log::warn!(
                "created secret key {}, but flushing directory {} failed: {err}",
                path.display(),
                parent.display()
            );
        }
        log::info!("created secret key {}", path.display());
        Ok(SecretKey { content })
    }

    /// The key's version.
    pub fn version(&self) -> KeyVersion {
        let content = &self.content.0;
        if content.len() >= V2_MIN_LEN && content.starts_with(V2_PREFIX) {
            KeyVersion::V2
        } else {
            KeyVersion::V1
        }
    }

    /// Returns the key length in bytes.
    pub fn len(&self) -> usize {
        self.content.0.len()
    }

    /// Returns whether the key is empty, which a checked key never is.
    pub fn is_empty(&self) -> bool {
        self.content.0.is_empty()
    }

    /// Derives the host id. `machine_id` matters only for a v2 key, and an all-zero id is left
    /// out as if it were missing.
    pub fn host_id(&self, machine_id: Option<&MachineId>) -> HostId {
        match self.version() {
            KeyVersion::V1 => HostId(SecretBytes(self.content.0.clone())),
            KeyVersion::V2 => {
                let mut hasher = Sha256::new();
                hasher.update(format!("{} ", self.content.0.len()).as_bytes());
                hasher.update(&self.content.0);
                if let Some(id) = machine_id.filter(|id| !id.is_null()) {
                    hasher.update(id.to_hex().as_bytes());
                }
                let digest: [u8; 32] = hasher.finalize().into();
                HostId(SecretBytes(digest.to_vec()))
            }
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}, {} bytes)", self.version(), self.len())
    }
}

/// A temporary file that is removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        match fs::remove_file(&self.0) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => log::warn!(
                "failed to remove temporary file {}: {err}",
                self.0.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::Permissions;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::rng::{FixedRandom, OsRandom};

    fn write_key(dir: &Path, name: &str, content: &[u8], mode: u32) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn version_follows_prefix_and_length() {
        let v2 =
            SecretKey::from_content(b"nm-v2:0123456789abcdef0123456789abcdef".to_vec()).unwrap();
        assert_eq!(v2.version(), KeyVersion::V2);

        // One byte short of a v2 key: an old v1 key that happens to carry the prefix.
        let short =
            SecretKey::from_content(b"nm-v2:0123456789abcdef0123456789abcde".to_vec()).unwrap();
        assert_eq!(short.version(), KeyVersion::V1);

        let v1 = SecretKey::from_content(vec![7; 32]).unwrap();
        assert_eq!(v1.version(), KeyVersion::V1);
    }

    #[test]
    fn v1_host_id_is_the_raw_key() {
        let key = SecretKey::from_content(b"0123456789abcdef".to_vec()).unwrap();
        let machine_id = MachineId::parse("ee7ac3602b6306061bd984a41eb1c045").unwrap();
        assert_eq!(
            key.host_id(Some(&machine_id)).as_bytes(),
            b"0123456789abcdef"
        );
    }

    #[test]
    fn v2_host_id_includes_machine_id() {
        let content = b"nm-v2:hnIHoHp4p9kaEWU5/+dO+gFREirN1AsMoO1MPaoYxCc=";
        let key = SecretKey::from_content(content.to_vec()).unwrap();
        let machine_id = MachineId::parse("EE7AC3602B6306061BD984A41EB1C045\n").unwrap();

        let mut expected = Sha256::new();
        expected.update(b"50 ");
        expected.update(content);
        expected.update(b"ee7ac3602b6306061bd984a41eb1c045");
        let expected: [u8; 32] = expected.finalize().into();
        assert_eq!(key.host_id(Some(&machine_id)).as_bytes(), expected);

        let mut without = Sha256::new();
        without.update(b"50 ");
        without.update(content);
        let without: [u8; 32] = without.finalize().into();
        assert_eq!(key.host_id(None).as_bytes(), without);

        let zero = MachineId::parse("00000000000000000000000000000000").unwrap();
        assert_eq!(key.host_id(Some(&zero)).as_bytes(), without);
    }

    #[test]
    fn machine_id_parse_accepts_only_32_hex_digits() {
        let id = MachineId::parse(" \x0bEe7ac3602b6306061bd984a41eb1c045\t\n").unwrap();
        assert_eq!(id.to_hex(), "ee7ac3602b6306061bd984a41eb1c045");
        for bad in [
            "",
            "uninitialized",
            "ee7ac3602b6306061bd984a41eb1c04",
            "ee7ac3602b6306061bd984a41eb1c0455",
            "ee7ac360-2b63-0606-1bd9-84a41eb1c045",
            "ge7ac3602b6306061bd984a41eb1c045",
        ] {
            assert!(MachineId::parse(bad).is_none(), "accepted {bad:?}");
        }
    }

    #[test]
    fn machine_id_debug_hides_value() {
        let id = MachineId::parse("ee7ac3602b6306061bd984a41eb1c045").unwrap();
        assert!(!format!("{id:?}").contains("ee7a"));
    }

    #[test]
    fn machine_id_files_fall_back_only_when_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let primary = dir.path().join("machine-id");
        let fallback = dir.path().join("dbus-machine-id");
        fs::write(&fallback, "0123456789abcdef0123456789abcdef\n").unwrap();

        let from_fallback = read_machine_id_files(&primary, &fallback).unwrap();
        assert_eq!(from_fallback.to_hex(), "0123456789abcdef0123456789abcdef");

        // A readable but invalid first file is not skipped.
        fs::write(&primary, "uninitialized\n").unwrap();
        assert!(read_machine_id_files(&primary, &fallback).is_none());

        fs::write(&primary, "fedcba9876543210fedcba9876543210\n").unwrap();
        let from_primary = read_machine_id_files(&primary, &fallback).unwrap();
        assert_eq!(from_primary.to_hex(), "fedcba9876543210fedcba9876543210");
    }

    #[test]
    fn machine_id_argument_is_id_or_file() {
        let direct = MachineId::from_argument("EE7AC3602B6306061BD984A41EB1C045").unwrap();
        assert_eq!(direct.unwrap().to_hex(), "ee7ac3602b6306061bd984a41eb1c045");
        assert!(
            MachineId::from_argument("00000000000000000000000000000000")
                .unwrap()
                .is_none()
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("machine-id");
        fs::write(&file, "ee7ac3602b6306061bd984a41eb1c045\n").unwrap();
        let from_file = MachineId::from_argument(file.to_str().unwrap()).unwrap();
        assert_eq!(
            from_file.unwrap().to_hex(),
            "ee7ac3602b6306061bd984a41eb1c045"
        );

        fs::write(&file, "uninitialized\n").unwrap();
        assert!(
            MachineId::from_argument(file.to_str().unwrap())
                .unwrap()
                .is_none()
        );

        let missing = dir.path().join("missing");
        let err = MachineId::from_argument(missing.to_str().unwrap()).unwrap_err();
        assert!(matches!(err, MachineIdError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("32 hexadecimal digits"), "{err}");
    }

    #[test]
    fn read_accepts_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_key(dir.path(), "key", &[0x55; 16], 0o600);
        let key = SecretKey::read(&path).unwrap();
        assert_eq!(key.len(), 16);
        assert_eq!(key.version(), KeyVersion::V1);
    }

    #[test]
    fn read_rejects_missing_key() {
        let dir = tempfile::tempdir().unwrap();
        let err = SecretKey::read(&dir.path().join("none")).unwrap_err();
        assert!(matches!(err, KeyError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("--create-secret-key"), "{err}");
    }

    #[test]
    fn read_rejects_group_or_other_access() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602] {
            let path = write_key(dir.path(), "key", &[0x55; 32], mode);
            let err = SecretKey::read(&path).unwrap_err();
            assert!(
                matches!(err, KeyError::Permissions { .. }),
                "mode {mode:o}: {err}"
            );
            assert!(err.to_string().contains(&format!("{mode:04o}")), "{err}");
            assert!(err.to_string().contains("chmod 600"), "{err}");
            fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn read_rejects_short_and_long_keys() {
        let dir = tempfile::tempdir().unwrap();
        let short = write_key(dir.path(), "short", &[1; 15], 0o600);
        let err = SecretKey::read(&short).unwrap_err();
        assert!(matches!(err, KeyError::TooShort { len: 15, .. }), "{err}");
        assert!(err.to_string().contains("untouched"), "{err}");
        assert_eq!(
            fs::read(&short).unwrap(),
            [1; 15],
            "the short key was changed"
        );

        let long = write_key(dir.path(), "long", &vec![1; MAX_KEY_LEN + 1], 0o600);
        let err = SecretKey::read(&long).unwrap_err();
        assert!(matches!(err, KeyError::TooLarge { .. }), "{err}");

        let max = write_key(dir.path(), "max", &vec![1; MAX_KEY_LEN], 0o600);
        assert_eq!(SecretKey::read(&max).unwrap().len(), MAX_KEY_LEN);
    }

    #[test]
    fn read_rejects_directory_and_unreadable_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), Permissions::from_mode(0o700)).unwrap();
        let err = SecretKey::read(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::NotAFile { .. }), "{err}");

        // A regular file used as a directory gives ENOTDIR, which even root cannot bypass.
        let file = write_key(dir.path(), "file", &[1; 16], 0o600);
        let err = SecretKey::read(&file.join("key")).unwrap_err();
        assert!(matches!(err, KeyError::Unreadable { .. }), "{err}");
    }

    #[test]
    fn create_writes_private_v2_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("secret_key");
        let key = SecretKey::create(&path, &mut OsRandom).unwrap();
        assert_eq!(key.version(), KeyVersion::V2);
        assert_eq!(key.len(), 50);

        let content = fs::read(&path).unwrap();
        assert_eq!(content.len(), 50);
        assert!(content.starts_with(b"nm-v2:"));
        assert!(content.ends_with(b"="));
        let metadata = fs::metadata(&path).unwrap();
        assert_eq!(metadata.mode() & 0o7777, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o7777;
        assert_eq!(dir_mode, 0o700);

        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("secret_key")]);

        let reread = SecretKey::read(&path).unwrap();
        assert_eq!(
            reread.host_id(None).as_bytes(),
            key.host_id(None).as_bytes()
        );
    }

    #[test]
    fn create_encodes_random_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret_key");
        SecretKey::create(&path, &mut FixedRandom::new(vec![0])).unwrap();
        // 32 zero bytes in base64 are 42 'A's, one more 'A' and one padding '='.
        let expected = format!("nm-v2:{}=", "A".repeat(43));
        assert_eq!(fs::read_to_string(&path).unwrap(), expected);
    }

    #[test]
    fn create_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_key(dir.path(), "secret_key", b"short", 0o600);
        let err = SecretKey::create(&path, &mut OsRandom).unwrap_err();
        assert!(matches!(err, KeyError::Exists { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"short");
    }

    #[test]
    fn create_rejects_networkmanager_path() {
        let err = SecretKey::create(Path::new(NETWORKMANAGER_KEY_PATH), &mut OsRandom).unwrap_err();
        assert!(matches!(err, KeyError::ProtectedPath { .. }), "{err}");
    }

    #[test]
    fn read_or_create_keeps_bad_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_key(dir.path(), "secret_key", b"short", 0o600);
        let err = SecretKey::read_or_create(&path, &mut OsRandom).unwrap_err();
        assert!(matches!(err, KeyError::TooShort { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"short");

        let fresh = dir.path().join("fresh");
        let (created, was_created) = SecretKey::read_or_create(&fresh, &mut OsRandom).unwrap();
        assert!(was_created);
        let (reread, was_created) = SecretKey::read_or_create(&fresh, &mut OsRandom).unwrap();
        assert!(!was_created);
        assert_eq!(
            created.host_id(None).as_bytes(),
            reread.host_id(None).as_bytes()
        );
    }

    #[test]
    fn debug_output_hides_key_material() {
        let key = SecretKey::from_content(b"0123456789abcdefSECRET".to_vec()).unwrap();
        let text = format!("{key:?} {:?}", key.host_id(None));
        assert!(!text.contains("SECRET"), "{text}");
        assert!(!text.contains("0123"), "{text}");
    }
}
