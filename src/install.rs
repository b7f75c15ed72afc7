//! Putting the daemon's pieces in place and taking them away again: the binary, the systemd
//! unit, the udev rule, the system-sleep hook, the default configuration and the secret key.
//!
//! Every path lives under a root directory (`/` on a real system), so tests install into a
//! temporary folder. Files macveil owns (binary, unit, rule, hook) are replaced atomically when
//! their content differs. The configuration is written only where none exists, and the key is
//! created only where none exists and never replaced ([`SecretKey::read_or_create`]).
//! Uninstalling removes macveil's own files, and the configuration and key only on request,
//! because the key decides every stable address the user's networks know.
//!
//! This module writes files; starting, stopping and reloading services is the command line's
//! job.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::fsutil::{self, Existing, Mode, WriteStep};
use crate::rng::RandomSource;
use crate::secret_key::{KeyError, NETWORKMANAGER_KEY_PATH, SecretKey};

/// The systemd unit as shipped.
pub const UNIT: &str = include_str!("../dist/macveil.service");
/// The udev rule as shipped.
pub const UDEV_RULE: &str = include_str!("../dist/81-macveil.rules");
/// The system-sleep hook as shipped.
pub const SLEEP_HOOK: &str = include_str!("../dist/system-sleep/macveil");
/// The default configuration file as shipped.
pub const DEFAULT_CONFIG: &str = include_str!("../dist/macveil.conf");

/// The command the unit and the rule run; the binary is installed there.
const BINARY: &str = "usr/local/bin/macveil";
const UNIT_PATH: &str = "etc/systemd/system/macveil.service";
const RULE_PATH: &str = "etc/udev/rules.d/81-macveil.rules";
const HOOK_PATH: &str = "usr/lib/systemd/system-sleep/macveil";
const CONFIG_PATH: &str = "etc/macveil/macveil.conf";
const KEY_PATH: &str = "var/lib/macveil/secret_key";

/// The paths of every piece under one root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Creates the layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    /// Returns whether this is the running system's root, where services can be started.
    pub fn is_system_root(&self) -> bool {
        fs::canonicalize(&self.root).is_ok_and(|root| root == Path::new("/"))
    }

    /// The binary.
    pub fn binary(&self) -> PathBuf {
        self.root.join(BINARY)
    }

    /// The systemd unit.
    pub fn unit(&self) -> PathBuf {
        self.root.join(UNIT_PATH)
    }

    /// The udev rule.
    pub fn udev_rule(&self) -> PathBuf {
        self.root.join(RULE_PATH)
    }

    /// The system-sleep hook.
    pub fn sleep_hook(&self) -> PathBuf {
        self.root.join(HOOK_PATH)
    }

    /// The configuration file.
    pub fn config(&self) -> PathBuf {
        self.root.join(CONFIG_PATH)
    }

    /// macveil's secret key.
    pub fn key(&self) -> PathBuf {
        self.root.join(KEY_PATH)
    }

    /// NetworkManager's secret key, which `--nm-config` uses and macveil never writes.
    pub fn networkmanager_key(&self) -> PathBuf {
        self.root
            .join(NETWORKMANAGER_KEY_PATH.trim_start_matches('/'))
    }
}

/// The change made to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAction {
    /// The file did not exist and was written.
    Created,
    /// The file existed with other content and was replaced.
    Replaced,
    /// The file already had this content.
    Unchanged,
    /// The file exists and is the administrator's (configuration) or irreplaceable (key); it
    /// was left as it is.
    Kept,
    /// The file was removed.
    Removed,
    /// The file did not exist.
    Absent,
}

impl std::fmt::Display for FileAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // pad, not write_str, so that the caller's width applies.
        f.pad(match self {
            FileAction::Created => "created",
            FileAction::Replaced => "replaced",
            FileAction::Unchanged => "unchanged",
            FileAction::Kept => "kept",
            FileAction::Removed => "removed",
            FileAction::Absent => "absent",
        })
    }
}

/// One file and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The file.
    pub path: PathBuf,
    /// What happened.
    pub action: FileAction,
}

/// A failure to install or uninstall.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A file could not be written, read or removed.
    #[error("cannot {action} {}: {error}{}", path.display(), permission_hint(error))]
    Io {
        /// The operation that failed.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        error: io::Error,
    },

    /// The secret key could not be read or created.
    #[error(transparent)]
    Key(#[from] KeyError),

    /// `--nm-config` was requested, but NetworkManager's key cannot be used.
    #[error(
        "--nm-config makes the daemon hash stable addresses with NetworkManager's secret key, \
         which cannot be used: {}. Nothing was installed. Start NetworkManager once \
         ('systemctl start NetworkManager') so that it creates its key, then install again; or \
         install without --nm-config to use macveil's own key",
        describe_key_problem(problem)
    )]
    NetworkManagerKey {
        /// The reason the key cannot be used.
        problem: KeyError,
    },
}

/// Describes why NetworkManager's key cannot be used, without [`KeyError::NotFound`]'s advice
/// to create a key, which macveil must not do at NetworkManager's path.
pub fn describe_key_problem(problem: &KeyError) -> String {
    match problem {
        KeyError::NotFound { path } => format!("{} does not exist", path.display()),
        other => other.to_string(),
    }
}

fn permission_hint(error: &io::Error) -> &'static str {
    if error.kind() == io::ErrorKind::PermissionDenied {
        "; installing needs root, so run it with sudo"
    } else {
        ""
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> InstallError {
    let path = path.to_path_buf();
    move |error| InstallError::Io {
        action,
        path,
        error,
    }
}

/// The choices of an installation.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The binary to copy into place; none leaves the binary alone.
    pub binary: Option<PathBuf>,
    /// The daemon and the udev helper read NetworkManager's configuration and secret key too.
    pub nm_config: bool,
    /// With `nm_config`, reject the installation when NetworkManager's key is missing or
    /// unusable. Without it, [`networkmanager_key_problem`] lets the caller warn instead, as
    /// for a system image whose NetworkManager has never run.
    pub require_nm_key: bool,
}

/// Returns the unit, with the daemon's options added.
pub fn unit_text(nm_config: bool) -> String {
    if !nm_config {
        return UNIT.to_string();
    }
    UNIT.replace(
        "ExecStart=/usr/local/bin/macveil daemon",
        "ExecStart=/usr/local/bin/macveil daemon --nm-config",
    )
}

/// Returns the udev rule, with the helper's options added.
pub fn udev_rule_text(nm_config: bool) -> String {
    if !nm_config {
        return UDEV_RULE.to_string();
    }
    UDEV_RULE.replace("udev-apply --ifindex", "udev-apply --nm-config --ifindex")
}

/// Installs every piece under `layout` and returns what happened to each file.
pub fn install(
    layout: &Layout,
    options: &InstallOptions,
    rng: &mut dyn RandomSource,
) -> Result<Vec<Step>, InstallError> {
    // Without a usable key the daemon would hold every `stable` link down, so check it before
    // anything is written.
    if options.nm_config
        && options.require_nm_key
        && let Some(problem) = networkmanager_key_problem(layout)
    {
        return Err(InstallError::NetworkManagerKey { problem });
    }

    let mut steps = Vec::new();

    if let Some(source) = &options.binary {
        let bytes = fs::read(source).map_err(io_error("read", source))?;
        steps.push(write_owned(&layout.binary(), &bytes, 0o755)?);
    }
    steps.push(write_owned(
        &layout.unit(),
        unit_text(options.nm_config).as_bytes(),
        0o644,
    )?);
    steps.push(write_owned(
        &layout.udev_rule(),
        udev_rule_text(options.nm_config).as_bytes(),
        0o644,
    )?);
    steps.push(write_owned(
        &layout.sleep_hook(),
        SLEEP_HOOK.as_bytes(),
        0o755,
    )?);
    steps.push(write_new(
        &layout.config(),
        DEFAULT_CONFIG.as_bytes(),
        0o644,
    )?);

    // NetworkManager's key is only ever read; with --nm-config macveil's own is not needed.
    if !options.nm_config {
        let (_, created) = SecretKey::read_or_create(&layout.key(), rng)?;
        steps.push(Step {
            path: layout.key(),
            action: if created {
                FileAction::Created
            } else {
                FileAction::Kept
            },
        });
    }
    Ok(steps)
}

/// Returns why NetworkManager's secret key under `layout` cannot be used, or `None` when it
/// can. The key is only read.
pub fn networkmanager_key_problem(layout: &Layout) -> Option<KeyError> {
    SecretKey::read(&layout.networkmanager_key()).err()
}

/// Removes macveil's own files under `layout`. With `purge`, the configuration and the secret
/// key go too; without it they stay, so that a later install keeps every stable address.
pub fn uninstall(layout: &Layout, purge: bool) -> Result<Vec<Step>, InstallError> {
    let mut steps = Vec::new();
    for path in [
        layout.unit(),
        layout.udev_rule(),
        layout.sleep_hook(),
        layout.binary(),
    ] {
        steps.push(remove(&path)?);
    }
    for path in [layout.config(), layout.key()] {
        if purge {
            steps.push(remove(&path)?);
        } else if path.exists() {
            steps.push(Step {
                path,
                action: FileAction::Kept,
            });
        }
    }
    Ok(steps)
}

fn remove(path: &Path) -> Result<Step, InstallError> {
    let action = match fs::remove_file(path) {
        Ok(()) => FileAction::Removed,
        Err(err) if err.kind() == io::ErrorKind::NotFound => FileAction::Absent,
        Err(err) => return Err(io_error("remove", path)(err)),
    };
    Ok(Step {
        path: path.to_path_buf(),
        action,
    })
}

fn create_parent(path: &Path) -> Result<(), InstallError> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(parent)
        .map_err(io_error("create the folder of", path))
}

/// Writes a file macveil owns, replacing it atomically when its content differs.
fn write_owned(path: &Path, content: &[u8], mode: u32) -> Result<Step, InstallError> {
    let action = match fs::read(path) {
        Ok(existing) if existing == content => {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .map_err(io_error("set the mode of", path))?;
            return Ok(Step {
                path: path.to_path_buf(),
                action: FileAction::Unchanged,
            });
        }
        Ok(_) => FileAction::Replaced,
        Err(err) if err.kind() == io::ErrorKind::NotFound => FileAction::Created,
        Err(err) => return Err(io_error("read", path)(err)),
    };
    create_parent(path)?;
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    write_file(&temporary, content, mode)?;
    fs::rename(&temporary, path).map_err(|err| {
        let _ = fs::remove_file(&temporary);
        io_error("replace", path)(err)
    })?;
    Ok(Step {
        path: path.to_path_buf(),
        action,
    })
}

/// Writes a file only where none exists.
fn write_new(path: &Path, content: &[u8], mode: u32) -> Result<Step, InstallError> {
    if fs::symlink_metadata(path).is_ok() {
        return Ok(Step {
            path: path.to_path_buf(),
            action: FileAction::Kept,
        });
    }
    create_parent(path)?;
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    write_file(&temporary, content, mode)?;
    // link(2) fails instead of replacing a file that appeared in the meantime.
    let linked = fs::hard_link(&temporary, path);
    let _ = fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(Step {
            path: path.to_path_buf(),
            action: FileAction::Created,
        }),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(Step {
            path: path.to_path_buf(),
            action: FileAction::Kept,
        }),
        Err(err) => Err(io_error("create", path)(err)),
    }
}

fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<(), InstallError> {
    // The exact mode because the umask may have removed bits from it.
    fsutil::write_synced(path, content, Existing::Fail, Mode::Exact(mode)).map_err(|err| {
        if err.step == WriteStep::Open {
            return io_error("create", path)(err.source);
        }
        let _ = fs::remove_file(path);
        io_error("write", path)(err.source)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::OsRandom;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn install_puts_every_piece_in_place() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path());
        let binary = root.path().join("built-macveil");
        fs::write(&binary, b"\x7fELF test binary").unwrap();
        let options = InstallOptions {
            binary: Some(binary),
            nm_config: false,
            require_nm_key: true,
        };
        let steps = install(&layout, &options, &mut OsRandom).unwrap();
        assert!(
            steps.iter().all(|step| step.action == FileAction::Created),
            "{steps:?}"
        );

        assert_eq!(fs::read(layout.binary()).unwrap(), b"\x7fELF test binary");
        assert_eq!(mode(&layout.binary()), 0o755);
        assert_eq!(fs::read_to_string(layout.unit()).unwrap(), UNIT);
        assert_eq!(fs::read_to_string(layout.udev_rule()).unwrap(), UDEV_RULE);
        assert_eq!(mode(&layout.sleep_hook()), 0o755);
        assert_eq!(fs::read_to_string(layout.config()).unwrap(), DEFAULT_CONFIG);
        assert_eq!(mode(&layout.key()), 0o600);
        SecretKey::read(&layout.key()).unwrap();
    }

    #[test]
    fn reinstall_keeps_key_and_edited_config() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path());
        let options = InstallOptions {
            binary: None,
            nm_config: false,
            require_nm_key: true,
        };
        install(&layout, &options, &mut OsRandom).unwrap();
        let key = fs::read(layout.key()).unwrap();
        fs::write(
            layout.config(),
            "[connection]\nethernet.cloned-mac-address=random\n",
        )
        .unwrap();
        fs::write(layout.unit(), "stale").unwrap();

        let steps = install(&layout, &options, &mut OsRandom).unwrap();
        let action = |path: PathBuf| {
            steps
                .iter()
                .find(|step| step.path == path)
                .map(|step| step.action)
        };
        assert_eq!(action(layout.key()), Some(FileAction::Kept));
        assert_eq!(action(layout.config()), Some(FileAction::Kept));
        assert_eq!(action(layout.unit()), Some(FileAction::Replaced));
        assert_eq!(action(layout.udev_rule()), Some(FileAction::Unchanged));
        assert_eq!(fs::read(layout.key()).unwrap(), key);
        assert!(
            fs::read_to_string(layout.config())
                .unwrap()
                .contains("random")
        );
        assert_eq!(fs::read_to_string(layout.unit()).unwrap(), UNIT);
    }

    #[test]
    fn nm_config_goes_into_unit_and_rule() {
        let unit = unit_text(true);
        assert!(
            unit.contains("ExecStart=/usr/local/bin/macveil daemon --nm-config --boot-id %b"),
            "{unit}"
        );
        let rule = udev_rule_text(true);
        assert!(
            rule.contains("udev-apply --nm-config --ifindex $attr{ifindex}"),
            "{rule}"
        );

        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path());
        SecretKey::create(&layout.networkmanager_key(), &mut OsRandom).unwrap();
        let options = InstallOptions {
            binary: None,
            nm_config: true,
            require_nm_key: true,
        };
        install(&layout, &options, &mut OsRandom).unwrap();
        assert!(
            !layout.key().exists(),
            "NetworkManager's key is used instead"
        );
    }

    #[test]
    fn nm_config_without_nm_key_installs_nothing() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path());
        let options = InstallOptions {
            binary: None,
            nm_config: true,
            require_nm_key: true,
        };
        let err = install(&layout, &options, &mut OsRandom).unwrap_err();
        assert!(
            matches!(
                &err,
                InstallError::NetworkManagerKey {
                    problem: KeyError::NotFound { .. }
                }
            ),
            "{err}"
        );
        let message = err.to_string();
        assert!(message.contains("Nothing was installed"), "{message}");
        assert!(message.contains("Start NetworkManager once"), "{message}");
        assert_eq!(
            fs::read_dir(root.path()).unwrap().count(),
            0,
            "files were written"
        );

        // A key that others may read is as unusable as a missing one.
        SecretKey::create(&layout.networkmanager_key(), &mut OsRandom).unwrap();
        fs::set_permissions(
            layout.networkmanager_key(),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let err = install(&layout, &options, &mut OsRandom).unwrap_err();
        assert!(
            matches!(
                &err,
                InstallError::NetworkManagerKey {
                    problem: KeyError::Permissions { .. }
                }
            ),
            "{err}"
        );
        assert!(!layout.unit().exists());

        // An image build may go on; the caller warns.
        let options = InstallOptions {
            require_nm_key: false,
            ..options
        };
        install(&layout, &options, &mut OsRandom).unwrap();
        assert!(layout.unit().exists());
        assert!(networkmanager_key_problem(&layout).is_some());
    }

    #[test]
    fn uninstall_keeps_key_unless_purged() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path());
        let options = InstallOptions {
            binary: None,
            nm_config: false,
            require_nm_key: true,
        };
        install(&layout, &options, &mut OsRandom).unwrap();

        uninstall(&layout, false).unwrap();
        assert!(!layout.unit().exists());
        assert!(!layout.udev_rule().exists());
        assert!(!layout.sleep_hook().exists());
        assert!(layout.key().exists());
        assert!(layout.config().exists());

        let steps = uninstall(&layout, true).unwrap();
        assert!(!layout.key().exists());
        assert!(!layout.config().exists());
        assert!(steps.iter().any(|step| step.action == FileAction::Absent));
    }

    #[test]
    fn shipped_default_config_is_the_default_policy() {
        use crate::config::{ClonedMac, Config, LinkFacts, LinkKind, SourceText, SysfsDevice};

        let source = SourceText::new("macveil.conf", DEFAULT_CONFIG);
        let shipped = Config::from_sources(&[source]).unwrap();
        assert!(shipped.warnings().is_empty(), "{:?}", shipped.warnings());
        let embedded = Config::embedded_default();

        let facts = |kind: LinkKind, device: bool| LinkFacts {
            name: String::from("eth0"),
            kind,
            driver: None,
            driver_version: None,
            permanent: Some("3c:22:fb:01:02:03".parse().unwrap()),
            current: Some("3c:22:fb:01:02:03".parse().unwrap()),
            device: device.then(SysfsDevice::default),
        };
        for link in [
            facts(LinkKind::Ethernet, true),
            facts(LinkKind::Wifi, true),
            facts(LinkKind::Veth, false),
        ] {
            let from_file = shipped.policy_for(&link);
            let default = embedded.policy_for(&link);
            assert_eq!(from_file.managed, default.managed, "{link:?}");
            assert_eq!(
                from_file.cloned_mac_address.value, default.cloned_mac_address.value,
                "{link:?}"
            );
            assert_eq!(
                from_file.stable_id.value, default.stable_id.value,
                "{link:?}"
            );
        }
        let ethernet = shipped.policy_for(&facts(LinkKind::Ethernet, true));
        assert_eq!(ethernet.cloned_mac_address.value, ClonedMac::Stable);
        assert_eq!(
            ethernet.stable_id.value.as_deref(),
            Some("${CONNECTION}/${BOOT}")
        );
    }
}
