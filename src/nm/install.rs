//! Installing macveil's MAC policy as a NetworkManager drop-in,
//! `/etc/NetworkManager/conf.d/90-macveil.conf`.
//!
//! The policy is checked before anything is written: it must be valid NetworkManager
//! configuration, must not contain macveil's own `macveil.*` keys (NetworkManager ignores them),
//! and every key and value it uses must be supported by the installed NetworkManager.
//!
//! The file is written atomically: a temporary file in the same folder (whose name NetworkManager
//! does not read, because it does not end in `.conf`), `fsync`, `rename` over the target, then
//! `fsync` of the folder. A file it replaces is first kept as `90-macveil.conf.bak.SECONDS`
//! (a hard link, or a copy where links fail), which NetworkManager does not read either. An
//! identical file is left alone.
//!
//! The default policy uses the named sections `[device-macveil]` and `[connection-macveil]`.
//! NetworkManager ranks named sections above plain `[connection]` and `[device]` ones of any file,
//! and a later file's named sections above an earlier one's. Only files sorting after
//! `90-macveil.conf` can therefore override it.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use super::conf::NmConfig;
use super::version::{Feature, NmVersion, Programs};
use crate::config::keyfile::{self, KeyFile};
use crate::config::{ConfigErrors, MACVEIL_KEY_PREFIX, SourceText};
use crate::fsutil::{self, Existing, Mode};

/// The drop-in's folder, relative to the root.
pub const DROPIN_DIR: &str = "etc/NetworkManager/conf.d";

/// The drop-in's name. NetworkManager reads `conf.d` in byte order of the names, and later files
/// win, so 90 leaves room for a local file that overrides macveil's.
pub const DROPIN_NAME: &str = "90-macveil.conf";

/// The first line of every file macveil installs.
pub const HEADER: &str = "\
# Installed by 'macveil nm install'. A new install replaces this file and keeps the old one as
# 90-macveil.conf.bak.SECONDS. Put local changes in a file that sorts after this one.
";

/// The policy installed without `--policy`: NetworkManager's well-known privacy settings.
/// Scans use random addresses; each profile gets a stable address of its own, which changes
/// at every boot.
pub const DEFAULT_POLICY: &str = "\
[device-macveil]
wifi.scan-rand-mac-address=yes

[connection-macveil]
wifi.cloned-mac-address=stable
ethernet.cloned-mac-address=stable
connection.stable-id=${CONNECTION}/${BOOT}
";

/// A checked policy and the features it uses.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The policy text, without macveil's header.
    pub text: String,
    /// Each feature used, with the first place that uses it (`file:line`).
    pub features: Vec<(Feature, String)>,
}

/// A policy that cannot be installed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The text is not valid configuration.
    #[error("the policy is invalid:\n{0}")]
    Invalid(ConfigErrors),

    /// The policy sets macveil's own keys.
    #[error(
        "{file}:{line}: {key} is one of macveil's own keys, which NetworkManager ignores; put it \
         in /etc/macveil/macveil.conf and keep the drop-in to NetworkManager's keys"
    )]
    MacveilKey {
        /// The file, as shown to the user.
        file: String,
        /// The 1-based line.
        line: usize,
        /// The key.
        key: String,
    },

    /// The policy sets no MAC key at all.
    #[error(
        "{file} sets none of the MAC keys (cloned-mac-address, stable-id, \
         generate-mac-address-mask, scan-rand-mac-address) in a [connection*] or [device*] \
         section, so installing it would change nothing"
    )]
    Empty {
        /// The file, as shown to the user.
        file: String,
    },

    /// NetworkManager is too old for keys or values the policy uses.
    #[error(
        "NetworkManager {version} is too old for this policy:\n{}\nupgrade NetworkManager, or \
         remove those settings from the policy",
        missing
            .iter()
            .map(|(feature, place)| format!(
                "  {place}: {} needs NetworkManager {} or newer",
                feature.name(),
                feature.since()
            ))
            .collect::<Vec<_>>()
            .join("\n")
    )]
    TooOld {
        /// The installed version.
        version: NmVersion,
        /// The unsupported features and where the policy uses them.
        missing: Vec<(Feature, String)>,
    },
}

impl Policy {
    /// Checks policy text named `file` (for messages) and lists the features it uses.
    pub fn check(file: &str, text: &str) -> Result<Policy, PolicyError> {
        NmConfig::from_sources(&[SourceText::new(file, text)]).map_err(PolicyError::Invalid)?;
        // NmConfig::from_sources parsed the same text above, so this parse succeeds too.
        let parsed = KeyFile::parse(text.as_bytes()).map_err(|err| {
            PolicyError::Invalid(ConfigErrors(vec![crate::config::ConfigError::Syntax {
                file: file.to_string(),
                source: err,
            }]))
        })?;

        for group in &parsed.groups {
            if let Some(entry) = group
                .entries
                .iter()
                .find(|entry| entry.key.starts_with(MACVEIL_KEY_PREFIX))
            {
                return Err(PolicyError::MacveilKey {
                    file: file.to_string(),
                    line: entry.line,
                    key: entry.key.clone(),
                });
            }
        }

        let features = features_in(file, &parsed);
        if features.is_empty() {
            return Err(PolicyError::Empty {
                file: file.to_string(),
            });
        }
        Ok(Policy {
            text: text.to_string(),
            features,
        })
    }

    /// Fails unless `version` supports every feature the policy uses.
    pub fn require(&self, version: NmVersion) -> Result<(), PolicyError> {
        let missing: Vec<(Feature, String)> = self
            .features
            .iter()
            .filter(|(feature, _)| !feature.supported_by(version))
            .cloned()
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(PolicyError::TooOld { version, missing })
        }
    }

    /// Returns the drop-in's content: the header, then the policy.
    pub fn content(&self) -> String {
        let mut content = String::from(HEADER);
        content.push('\n');
        content.push_str(&self.text);
        if !content.ends_with('\n') {
            content.push('\n');
        }
        content
    }
}

/// Lists the MAC features a parsed NetworkManager configuration file uses, each with the first
/// place (`file:line`) that uses it, sorted by feature.
pub fn features_in(file: &str, parsed: &KeyFile) -> Vec<(Feature, String)> {
    let mut features: Vec<(Feature, String)> = Vec::new();
    let mut add = |feature: Feature, line: usize| {
        if !features.iter().any(|(known, _)| *known == feature) {
            features.push((feature, format!("{file}:{line}")));
        }
    };

    for group in &parsed.groups {
        let connection = group.name.starts_with("connection");
        let device = group.name.starts_with("device");
        for entry in &group.entries {
            let value = keyfile::unescape(&entry.value).unwrap_or_default();
            match (connection, device, entry.key.as_str()) {
                (true, _, "ethernet.cloned-mac-address" | "wifi.cloned-mac-address") => {
                    add(Feature::ClonedMacAddress, entry.line);
                    if value == "stable-ssid" {
                        add(Feature::StableSsid, entry.line);
                    }
                }
                (true, _, "connection.stable-id") => {
                    for feature in Feature::in_stable_id(&value) {
                        add(feature, entry.line);
                    }
                }
                (
                    true,
                    _,
                    "ethernet.generate-mac-address-mask" | "wifi.generate-mac-address-mask",
                ) => add(Feature::GenerateMacAddressMask, entry.line),
                (_, true, "wifi.scan-rand-mac-address") => {
                    add(Feature::ScanRandMacAddress, entry.line)
                }
                (_, true, "wifi.scan-generate-mac-address-mask") => {
                    add(Feature::ScanGenerateMacAddressMask, entry.line)
                }
                _ => {}
            }
        }
    }
    features.sort();
    features
}

/// The steps an installation takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The drop-in's path.
    pub target: PathBuf,
    /// The content to write.
    pub content: String,
    /// Whether the file already has this content, so nothing is written.
    pub unchanged: bool,
    /// The backup path of the file it replaces, when one exists with other content.
    pub backup: Option<PathBuf>,
}

/// Plans the installation of `content` below `root`.
pub fn plan(root: &Path, content: &str) -> io::Result<Plan> {
    let target = root.join(DROPIN_DIR).join(DROPIN_NAME);
    let existing = match fs::read(&target) {
        Ok(existing) => Some(existing),
        Err(err) if err.kind() == io::ErrorKind::NotFound => None,
        Err(err) => return Err(err),
    };
    let unchanged = existing.as_deref() == Some(content.as_bytes());
    let backup = match existing {
        Some(_) if !unchanged => Some(backup_path(&target)),
        _ => None,
    };
    Ok(Plan {
        target,
        content: content.to_string(),
        unchanged,
        backup,
    })
}

/// Returns a backup name that does not exist yet: `NAME.bak.SECONDS`, with `.N` added on a
/// clash.
fn backup_path(target: &Path) -> PathBuf {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let base = format!("{}.bak.{seconds}", target.display());
    let mut candidate = PathBuf::from(&base);
    let mut counter = 1;
    while candidate.symlink_metadata().is_ok() {
        candidate = PathBuf::from(format!("{base}.{counter}"));
        counter += 1;
    }
    candidate
}

/// A failed step of writing the drop-in. Nothing was changed at the target when it fails.
#[derive(Debug, thiserror::Error)]
#[error("failed to {step} {}: {source}", path.display())]
pub struct WriteError {
    /// The step that failed.
    pub step: &'static str,
    /// The file or folder.
    pub path: PathBuf,
    /// The error from the kernel.
    #[source]
    pub source: io::Error,
}

/// Carries out `plan`: keeps the backup, then replaces the target atomically.
pub fn write(plan: &Plan) -> Result<(), WriteError> {
    if plan.unchanged {
        return Ok(());
    }
    let dir = plan.target.parent().unwrap_or(Path::new("/"));
    let fail = |step: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError { step, path, source }
    };

    fs::create_dir_all(dir).map_err(fail("create the folder", dir))?;
    if let Some(backup) = &plan.backup {
        keep_backup(&plan.target, backup).map_err(fail("keep a backup at", backup))?;
    }

    let temporary = dir.join(format!(".{DROPIN_NAME}.tmp.{}", std::process::id()));
    let result = write_synced(&temporary, plan.content.as_bytes())
        .map_err(fail("write", &temporary))
        .and_then(|()| {
            fs::rename(&temporary, &plan.target).map_err(fail("rename into place", &plan.target))
        });
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result?;

    File::open(dir)
        .and_then(|folder| folder.sync_all())
        .map_err(fail("sync the folder", dir))
}

/// Keeps `target` as `backup`: a hard link, or a synced copy where linking fails.
fn keep_backup(target: &Path, backup: &Path) -> io::Result<()> {
    if fs::hard_link(target, backup).is_ok() {
        return Ok(());
    }
    let content = fs::read(target)?;
    write_synced(backup, &content)
}

/// Creates `path` (which must not exist) with mode 0644 less the umask, writes `content` and
/// syncs it.
fn write_synced(path: &Path, content: &[u8]) -> io::Result<()> {
    fsutil::write_synced(path, content, Existing::Fail, Mode::Masked(0o644))
        .map_err(|err| err.source)
}

/// A failure to make NetworkManager reload its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// nmcli could not be run.
    #[error("cannot run {}: {source}", program.display())]
    Run {
        /// The program.
        program: PathBuf,
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// The configuration belongs to a system image, whose NetworkManager does not run.
    #[error(
        "NetworkManager of the system below {} is not running here; it reads the drop-in when \
         that system starts",
        root.display()
    )]
    Image {
        /// The image's root.
        root: PathBuf,
    },

    /// nmcli ran and failed, for example because NetworkManager is not running.
    #[error(
        "'nmcli general reload conf' failed ({status}): {stderr}; NetworkManager reads the \
         drop-in when it next starts or reloads (systemctl reload NetworkManager)"
    )]
    Failed {
        /// nmcli's exit status.
        status: std::process::ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },
}

/// Asks the running NetworkManager to reload its configuration files
/// (`nmcli general reload conf`, which calls its D-Bus `Reload` method).
pub fn reload(programs: &Programs) -> Result<(), ReloadError> {
    if let Some(root) = &programs.image {
        return Err(ReloadError::Image { root: root.clone() });
    }
    let output = Command::new(&programs.nmcli)
        .args(["general", "reload", "conf"])
        .env("LC_ALL", "C")
        .output()
        .map_err(|source| ReloadError::Run {
            program: programs.nmcli.clone(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(ReloadError::Failed {
        status: output.status,
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn default_policy_is_valid_and_old_enough() {
        let policy = Policy::check("(default)", DEFAULT_POLICY).unwrap();
        let features: Vec<Feature> = policy.features.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            features,
            [
                Feature::ClonedMacAddress,
                Feature::StableId,
                Feature::StableIdPlaceholders,
                Feature::ScanRandMacAddress
            ]
        );
        policy.require(NmVersion::new(1, 42, 4)).unwrap();
        assert!(policy.require(NmVersion::new(1, 2, 0)).is_err());
    }

    #[test]
    fn stable_ssid_needs_1_46() {
        let policy = Policy::check(
            "p.conf",
            "[connection-w]\nmatch-device=type:wifi\nwifi.cloned-mac-address=stable-ssid\n",
        )
        .unwrap();
        let err = policy.require(NmVersion::new(1, 42, 4)).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("p.conf:3: wifi.cloned-mac-address=stable-ssid"),
            "{message}"
        );
        assert!(message.contains("1.46.0"), "{message}");
        policy.require(NmVersion::new(1, 46, 0)).unwrap();
    }

    #[test]
    fn network_ssid_placeholder_needs_1_46() {
        let policy = Policy::check(
            "p.conf",
            "[connection]\nwifi.cloned-mac-address=stable\nconnection.stable-id=${NETWORK_SSID}\n",
        )
        .unwrap();
        assert!(matches!(
            policy.require(NmVersion::new(1, 42, 4)),
            Err(PolicyError::TooOld { missing, .. }) if missing.len() == 1
        ));
    }

    #[test]
    fn bad_policies_are_rejected() {
        let invalid = Policy::check(
            "p.conf",
            "[connection]\nethernet.cloned-mac-address=maybe\n",
        );
        assert!(matches!(invalid, Err(PolicyError::Invalid(_))));
        let own_key = Policy::check("p.conf", "[device]\nmacveil.manage=yes\n");
        assert!(matches!(
            own_key,
            Err(PolicyError::MacveilKey { line: 2, .. })
        ));
        let empty = Policy::check("p.conf", "[main]\ndhcp=internal\n");
        assert!(matches!(empty, Err(PolicyError::Empty { .. })));
    }

    #[test]
    fn write_keeps_backup_and_replaces() {
        let root = tempfile::tempdir().unwrap();
        let content = Policy::check("d", DEFAULT_POLICY).unwrap().content();

        let first = plan(root.path(), &content).unwrap();
        assert!(!first.unchanged);
        assert_eq!(first.backup, None);
        write(&first).unwrap();
        let target = root.path().join(DROPIN_DIR).join(DROPIN_NAME);
        assert_eq!(fs::read_to_string(&target).unwrap(), content);
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);

        let again = plan(root.path(), &content).unwrap();
        assert!(again.unchanged);
        assert_eq!(again.backup, None);

        fs::write(&target, "# edited by hand\n").unwrap();
        let replace = plan(root.path(), &content).unwrap();
        let backup = replace.backup.clone().unwrap();
        write(&replace).unwrap();
        assert_eq!(fs::read_to_string(&backup).unwrap(), "# edited by hand\n");
        assert_eq!(fs::read_to_string(&target).unwrap(), content);

        let names: Vec<String> = fs::read_dir(root.path().join(DROPIN_DIR))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(
            names.iter().all(|name| !name.starts_with('.')),
            "a temporary file was left: {names:?}"
        );
    }

    #[test]
    fn backup_names_do_not_clash() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(DROPIN_NAME);
        let first = backup_path(&target);
        fs::write(&first, "").unwrap();
        let second = backup_path(&target);
        assert_ne!(first, second);
        assert!(second.to_string_lossy().contains(".bak."));
    }

    #[test]
    fn failed_write_leaves_target() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(DROPIN_DIR);
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join(DROPIN_NAME);
        fs::write(&target, "old\n").unwrap();
        // A folder where the temporary file goes makes create_new fail.
        fs::create_dir(dir.join(format!(".{DROPIN_NAME}.tmp.{}", std::process::id()))).unwrap();

        let replace = plan(root.path(), "new\n").unwrap();
        let err = write(&replace).unwrap_err();
        assert_eq!(err.step, "write");
        assert_eq!(fs::read_to_string(&target).unwrap(), "old\n");
    }
}
