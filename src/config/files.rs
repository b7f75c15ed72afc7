//! The configuration files that are read, their order, and how their groups merge.
//!
//! macveil's own files are `/etc/macveil/macveil.conf`, then `/etc/macveil/conf.d/*.conf` in
//! byte order of their names. NetworkManager's files, read with `--nm-config`, come in
//! NetworkManager's order (NetworkManager.conf(5) and `read_entire_config` in NetworkManager's
//! `src/core/nm-config.c`): `/usr/lib/NetworkManager/conf.d/*.conf`, then
//! `/run/NetworkManager/conf.d/*.conf`, then `/etc/NetworkManager/NetworkManager.conf`, then
//! `/etc/NetworkManager/conf.d/*.conf`. A file in `/etc/NetworkManager/conf.d` hides one of
//! the same name in `/run` or `/usr/lib`, and one in `/run` hides one in `/usr/lib`.
//! NetworkManager's deprecated `nm-system-settings.conf` and its own
//! `NetworkManager-intern.conf` are not read.
//!
//! Merging follows NetworkManager's `read_config`: a later file sets keys of a group it shares
//! with an earlier file, and the group keeps the place where it first appeared. The
//! `[connection*]` and `[device*]` groups of each file are added in reverse order, and the
//! final list is reversed again, so that within one file the first section has the highest
//! priority and across files the later file wins. `match-device+=` and `match-device-=` add
//! entries to and remove entries from the value merged so far; NetworkManager drops every
//! other `key+=` and `key-=`. A `[.config]` group with `enable=false` skips its file, except
//! for the main file.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::keyfile::{self, KeyFile, is_glib_space};
use super::matching;
use super::{ConfigError, ConfigWarning, InvalidValue, MACVEIL_KEY_PREFIX};

/// The locations of the configuration files. Every path can be moved under a test root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPaths {
    /// macveil's main file, `/etc/macveil/macveil.conf`.
    pub macveil_main: PathBuf,
    /// macveil's drop-in folder, `/etc/macveil/conf.d`.
    pub macveil_dir: PathBuf,
    /// Packages' NetworkManager drop-ins, `/usr/lib/NetworkManager/conf.d`.
    pub nm_lib_dir: PathBuf,
    /// Per-boot NetworkManager drop-ins, `/run/NetworkManager/conf.d`.
    pub nm_run_dir: PathBuf,
    /// NetworkManager's main file, `/etc/NetworkManager/NetworkManager.conf`.
    pub nm_main: PathBuf,
    /// The administrator's NetworkManager drop-ins, `/etc/NetworkManager/conf.d`.
    pub nm_etc_dir: PathBuf,
}

impl ConfigPaths {
    /// The paths on the running system.
    pub fn system() -> ConfigPaths {
        ConfigPaths::under(Path::new("/"))
    }

    /// The same paths below `root`, for tests and for checking a system image.
    pub fn under(root: &Path) -> ConfigPaths {
        ConfigPaths {
            macveil_main: root.join("etc/macveil/macveil.conf"),
            macveil_dir: root.join("etc/macveil/conf.d"),
            nm_lib_dir: root.join("usr/lib/NetworkManager/conf.d"),
            nm_run_dir: root.join("run/NetworkManager/conf.d"),
            nm_main: root.join("etc/NetworkManager/NetworkManager.conf"),
            nm_etc_dir: root.join("etc/NetworkManager/conf.d"),
        }
    }
}

/// One file to read, in reading order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// The file's path.
    pub path: PathBuf,
    /// Whether this is a main file (macveil.conf, NetworkManager.conf or the file given with
    /// `--config`), whose `[.config] enable=` is ignored as NetworkManager ignores it in
    /// NetworkManager.conf.
    pub main: bool,
}

/// Lists macveil's own files that exist: the main file, then the drop-ins in byte order.
pub fn macveil_files(paths: &ConfigPaths) -> Result<Vec<ConfigFile>, ConfigError> {
    let mut files = Vec::new();
    if exists(&paths.macveil_main)? {
        files.push(ConfigFile {
            path: paths.macveil_main.clone(),
            main: true,
        });
    }
    for name in conf_names(&paths.macveil_dir)? {
        files.push(ConfigFile {
            path: paths.macveil_dir.join(name),
            main: false,
        });
    }
    Ok(files)
}

/// Lists NetworkManager's files that exist, in NetworkManager's order and with its hiding
/// rule applied.
pub fn nm_files(paths: &ConfigPaths) -> Result<Vec<ConfigFile>, ConfigError> {
    let lib = conf_names(&paths.nm_lib_dir)?;
    let run = conf_names(&paths.nm_run_dir)?;
    let etc = conf_names(&paths.nm_etc_dir)?;
    let mut files = Vec::new();

    for name in &lib {
        if !etc.contains(name) && !run.contains(name) {
            files.push(ConfigFile {
                path: paths.nm_lib_dir.join(name),
                main: false,
            });
        }
    }
    for name in &run {
        if !etc.contains(name) {
            files.push(ConfigFile {
                path: paths.nm_run_dir.join(name),
                main: false,
            });
        }
    }
    if exists(&paths.nm_main)? {
        files.push(ConfigFile {
            path: paths.nm_main.clone(),
            main: true,
        });
    }
    for name in &etc {
        files.push(ConfigFile {
            path: paths.nm_etc_dir.join(name),
            main: false,
        });
    }
    Ok(files)
}

fn exists(path: &Path) -> Result<bool, ConfigError> {
    match fs::metadata(path) {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The names ending in `.conf` in `dir`, sorted by their bytes as NetworkManager sorts them
/// (`strcmp`). A missing folder has none. Only regular files count, symbolic links to them
/// included.
fn conf_names(dir: &Path) -> Result<Vec<OsString>, ConfigError> {
    let read_error = |source| ConfigError::ReadDir {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(read_error(err)),
    };

    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(read_error)?;
        let name = entry.file_name();
        if !name.as_bytes().ends_with(b".conf") {
            continue;
        }
        let is_file = fs::metadata(entry.path()).is_ok_and(|meta| meta.is_file());
        if is_file {
            names.push(name);
        } else {
            log::debug!("skipping {}: not a regular file", entry.path().display());
        }
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// A value after merging, with the file and line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MergedEntry {
    pub key: String,
    pub value: String,
    pub file: String,
    pub line: usize,
}

/// A group after merging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MergedGroup {
    pub name: String,
    pub entries: Vec<MergedEntry>,
}

impl MergedGroup {
    pub fn entry(&self, key: &str) -> Option<&MergedEntry> {
        self.entries.iter().find(|entry| entry.key == key)
    }

    fn set(&mut self, entry: MergedEntry) {
        match self.entries.iter_mut().find(|old| old.key == entry.key) {
            Some(old) => *old = entry,
            None => self.entries.push(entry),
        }
    }
}

/// The merged groups of every file read so far.
#[derive(Debug, Default)]
pub(crate) struct Merged {
    pub groups: Vec<MergedGroup>,
}

/// The group that configures a file itself; it never enters the merged configuration.
const CONFIG_GROUP: &str = ".config";
/// Groups NetworkManager keeps for itself (`[.intern.*]`); user files cannot set them.
const INTERN_GROUP_PREFIX: &str = ".intern.";
/// Key prefixes NetworkManager keeps for its internal file.
const INTERN_KEY_PREFIXES: [&str; 2] = [".set.", ".was."];

pub(crate) const CONNECTION_PREFIX: &str = "connection";
pub(crate) const DEVICE_PREFIX: &str = "device";
pub(crate) const MATCH_DEVICE: &str = "match-device";

impl Merged {
    /// Merges one parsed file. Returns false when `[.config] enable=` skips the file.
    pub fn add_file(
        &mut self,
        name: &str,
        file: &KeyFile,
        main: bool,
        errors: &mut Vec<ConfigError>,
        warnings: &mut Vec<ConfigWarning>,
    ) -> bool {
        if !main && !file_enabled(name, file, errors, warnings) {
            return false;
        }

        let groups: Vec<_> = file
            .groups
            .iter()
            .filter(|group| {
                group.name != CONFIG_GROUP && !group.name.starts_with(INTERN_GROUP_PREFIX)
            })
            .collect();
        let is_connection = |name: &str| name.starts_with(CONNECTION_PREFIX);
        let is_device = |name: &str| name.starts_with(DEVICE_PREFIX);

        let others = groups
            .iter()
            .filter(|group| !is_connection(&group.name) && !is_device(&group.name));
        let devices = groups.iter().filter(|group| is_device(&group.name)).rev();
        let connections = groups
            .iter()
            .filter(|group| is_connection(&group.name))
            .rev();

        for group in others.chain(devices).chain(connections) {
            for entry in &group.entries {
                self.add_entry(name, &group.name, entry, errors);
            }
        }
        true
    }

    fn add_entry(
        &mut self,
        file: &str,
        group: &str,
        entry: &keyfile::Entry,
        errors: &mut Vec<ConfigError>,
    ) {
        let key = entry.key.as_str();
        if INTERN_KEY_PREFIXES
            .iter()
            .any(|prefix| key.starts_with(prefix))
            || key == ".was"
        {
            log::debug!(
                "{file}:{}: ignoring NetworkManager's internal key {key}",
                entry.line
            );
            return;
        }

        let operator = key
            .strip_suffix('+')
            .map(|base| (base, '+'))
            .or_else(|| key.strip_suffix('-').map(|base| (base, '-')))
            .filter(|(base, _)| !base.is_empty());
        let Some((base, operator)) = operator else {
            self.group_mut(group).set(MergedEntry {
                key: key.to_string(),
                value: entry.value.clone(),
                file: file.to_string(),
                line: entry.line,
            });
            return;
        };

        let section_group =
            group.starts_with(CONNECTION_PREFIX) || group.starts_with(DEVICE_PREFIX);
        if base == MATCH_DEVICE && section_group {
            self.merge_spec_list(file, group, entry, operator);
        } else if base.starts_with(MACVEIL_KEY_PREFIX) {
            errors.push(ConfigError::ListOperator {
                file: file.to_string(),
                line: entry.line,
                section: group.to_string(),
                key: key.to_string(),
            });
        } else {
            log::debug!(
                "{file}:{}: ignoring {key} in [{group}]: NetworkManager supports += and -= only \
                 for lists",
                entry.line
            );
        }
    }

    /// Applies `match-device+=` (add the entries not yet listed) or `match-device-=` (remove
    /// the listed entries) to the value merged so far.
    fn merge_spec_list(&mut self, file: &str, group: &str, entry: &keyfile::Entry, operator: char) {
        let old: Vec<String> = self
            .groups
            .iter()
            .find(|existing| existing.name == group)
            .and_then(|existing| existing.entry(MATCH_DEVICE))
            .map(|old| matching::split(&old.value))
            .unwrap_or_default();
        let new = matching::split(&entry.value);

        let mut merged: Vec<String> = old
            .iter()
            .filter(|spec| operator == '+' || !new.contains(spec))
            .cloned()
            .collect();
        if operator == '+' {
            merged.extend(new.iter().filter(|spec| !old.contains(spec)).cloned());
        }

        self.group_mut(group).set(MergedEntry {
            key: MATCH_DEVICE.to_string(),
            value: matching::join(&merged),
            file: file.to_string(),
            line: entry.line,
        });
    }

    fn group_mut(&mut self, name: &str) -> &mut MergedGroup {
        let index = match self.groups.iter().position(|group| group.name == name) {
            Some(index) => index,
            None => {
                self.groups.push(MergedGroup {
                    name: name.to_string(),
                    entries: Vec::new(),
                });
                self.groups.len() - 1
            }
        };
        &mut self.groups[index]
    }

    /// The `[PREFIX*]` groups in priority order: the merged order reversed, with the group
    /// named exactly `PREFIX` moved to the end.
    pub fn sections(&self, prefix: &str) -> Vec<&MergedGroup> {
        let mut plain = None;
        let mut named = Vec::new();
        for group in &self.groups {
            if !group.name.starts_with(prefix) {
                continue;
            }
            if group.name == prefix {
                plain = Some(group);
            } else {
                named.push(group);
            }
        }
        named.reverse();
        named.extend(plain);
        named
    }
}

/// Reads `[.config] enable=` as NetworkManager's `ignore_config_snippet` does. A boolean
/// decides directly. NetworkManager also accepts version and environment predicates
/// (`nm-version-min:1.2`, `env:TAG`), which macveil cannot evaluate: such a file is read, with
/// a warning.
fn file_enabled(
    name: &str,
    file: &KeyFile,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigWarning>,
) -> bool {
    let Some(entry) = file
        .group(CONFIG_GROUP)
        .and_then(|group| group.entry("enable"))
    else {
        return true;
    };
    match keyfile::parse_bool(&entry.value) {
        Ok(Some(enabled)) => {
            if !enabled {
                log::info!("skipping {name}: [.config] enable={}", entry.value);
            }
            enabled
        }
        Ok(None) => true,
        Err(keyfile::NotABool) => {
            let predicates = matching::split(&entry.value);
            let known = predicates.iter().all(|predicate| {
                let predicate = predicate.strip_prefix("except:").unwrap_or(predicate);
                ["nm-version:", "nm-version-min:", "nm-version-max:", "env:"]
                    .iter()
                    .any(|tag| predicate.starts_with(tag))
            });
            if known && !predicates.is_empty() {
                warnings.push(ConfigWarning {
                    file: name.to_string(),
                    line: entry.line,
                    message: format!(
                        "[.config] enable={} depends on NetworkManager's version or environment, \
                         which macveil cannot check; the file is read",
                        entry.value.trim_matches(is_glib_space)
                    ),
                });
                true
            } else {
                errors.push(ConfigError::Value(Box::new(InvalidValue {
                    file: name.to_string(),
                    line: entry.line,
                    section: CONFIG_GROUP.to_string(),
                    key: "enable".to_string(),
                    value: entry.value.clone(),
                    reason: None,
                    expected: format!(
                        "{}, or predicates such as nm-version-min:1.2 or env:TAG",
                        keyfile::BOOL_WORDS
                    ),
                })));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn names(files: &[ConfigFile], root: &Path) -> Vec<String> {
        files
            .iter()
            .map(|file| {
                let relative = file.path.strip_prefix(root).unwrap().display().to_string();
                if file.main {
                    format!("{relative} (main)")
                } else {
                    relative
                }
            })
            .collect()
    }

    #[test]
    fn macveil_files_main_then_dropins_in_byte_order() {
        let root = tempfile::tempdir().unwrap();
        let paths = ConfigPaths::under(root.path());
        write(&paths.macveil_main, "");
        for name in [
            "b.conf",
            "A.conf",
            "10-x.conf",
            "a.conf",
            "notes.txt",
            "c.conf.bak",
        ] {
            write(&paths.macveil_dir.join(name), "");
        }
        fs::create_dir(paths.macveil_dir.join("dir.conf")).unwrap();
        symlink(
            paths.macveil_dir.join("a.conf"),
            paths.macveil_dir.join("z-link.conf"),
        )
        .unwrap();
        symlink("/nonexistent", paths.macveil_dir.join("dangling.conf")).unwrap();

        let files = macveil_files(&paths).unwrap();
        assert_eq!(
            names(&files, root.path()),
            [
                "etc/macveil/macveil.conf (main)",
                "etc/macveil/conf.d/10-x.conf",
                "etc/macveil/conf.d/A.conf",
                "etc/macveil/conf.d/a.conf",
                "etc/macveil/conf.d/b.conf",
                "etc/macveil/conf.d/z-link.conf",
            ]
        );
    }

    #[test]
    fn macveil_files_none_present() {
        let root = tempfile::tempdir().unwrap();
        let files = macveil_files(&ConfigPaths::under(root.path())).unwrap();
        assert!(files.is_empty());
    }

    #[test]
    fn nm_files_follow_network_manager_order_and_hiding() {
        let root = tempfile::tempdir().unwrap();
        let paths = ConfigPaths::under(root.path());
        for name in [
            "10-lib.conf",
            "20-hidden-by-etc.conf",
            "30-hidden-by-run.conf",
        ] {
            write(&paths.nm_lib_dir.join(name), "");
        }
        for name in ["30-hidden-by-run.conf", "40-run.conf", "50-run-hidden.conf"] {
            write(&paths.nm_run_dir.join(name), "");
        }
        write(&paths.nm_main, "");
        for name in ["20-hidden-by-etc.conf", "50-run-hidden.conf", "60-etc.conf"] {
            write(&paths.nm_etc_dir.join(name), "");
        }

        let files = nm_files(&paths).unwrap();
        assert_eq!(
            names(&files, root.path()),
            [
                "usr/lib/NetworkManager/conf.d/10-lib.conf",
                "run/NetworkManager/conf.d/30-hidden-by-run.conf",
                "run/NetworkManager/conf.d/40-run.conf",
                "etc/NetworkManager/NetworkManager.conf (main)",
                "etc/NetworkManager/conf.d/20-hidden-by-etc.conf",
                "etc/NetworkManager/conf.d/50-run-hidden.conf",
                "etc/NetworkManager/conf.d/60-etc.conf",
            ]
        );
    }

    #[test]
    fn unreadable_folder_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let paths = ConfigPaths::under(root.path());
        // A file where a folder is expected cannot be listed.
        write(&paths.macveil_dir, "");
        let err = macveil_files(&paths).unwrap_err();
        assert!(matches!(err, ConfigError::ReadDir { .. }), "{err}");
        assert!(err.to_string().contains("conf.d"), "{err}");
    }

    fn merge_texts(files: &[(&str, &str, bool)]) -> (Merged, Vec<ConfigError>, Vec<ConfigWarning>) {
        let mut merged = Merged::default();
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        for (name, text, main) in files {
            let file = KeyFile::parse(text.as_bytes()).unwrap();
            merged.add_file(name, &file, *main, &mut errors, &mut warnings);
        }
        (merged, errors, warnings)
    }

    fn section_names(merged: &Merged, prefix: &str) -> Vec<String> {
        merged
            .sections(prefix)
            .iter()
            .map(|group| group.name.clone())
            .collect()
    }

    #[test]
    fn sections_top_to_bottom_then_later_files_first() {
        let (merged, _, _) = merge_texts(&[
            (
                "a",
                "[connection]\nk=1\n[connection-a1]\nk=1\n[connection-a2]\nk=1\n[device-a]\nk=1\n",
                true,
            ),
            (
                "b",
                "[connection-b1]\nk=1\n[connection-b2]\nk=1\n[device]\nk=1\n[device-b]\nk=1\n",
                false,
            ),
        ]);
        assert_eq!(
            section_names(&merged, CONNECTION_PREFIX),
            [
                "connection-b1",
                "connection-b2",
                "connection-a1",
                "connection-a2",
                "connection"
            ]
        );
        assert_eq!(
            section_names(&merged, DEVICE_PREFIX),
            ["device-b", "device-a", "device"]
        );
    }

    #[test]
    fn shared_section_merges_in_place() {
        let (merged, _, _) = merge_texts(&[
            ("a", "[connection-a]\nk=1\nx=a\n[connection-b]\nk=2\n", true),
            ("b", "[connection-c]\nk=3\n[connection-a]\nk=4\n", false),
        ]);
        assert_eq!(
            section_names(&merged, CONNECTION_PREFIX),
            ["connection-c", "connection-a", "connection-b"]
        );
        let a = merged
            .groups
            .iter()
            .find(|g| g.name == "connection-a")
            .unwrap();
        let k = a.entry("k").unwrap();
        assert_eq!((k.value.as_str(), k.file.as_str(), k.line), ("4", "b", 4));
        assert_eq!(a.entry("x").unwrap().file, "a");
    }

    #[test]
    fn match_device_plus_and_minus_edit_the_list() {
        let (merged, errors, _) = merge_texts(&[
            (
                "a",
                "[device-x]\nmatch-device=interface-name:eth0,interface-name:eth1\n",
                true,
            ),
            (
                "b",
                "[device-x]\nmatch-device+=interface-name:eth2,interface-name:eth0\n",
                false,
            ),
            (
                "c",
                "[device-x]\nmatch-device-=interface-name:eth1\n",
                false,
            ),
        ]);
        assert!(errors.is_empty());
        let entry = merged.groups[0].entry(MATCH_DEVICE).unwrap();
        assert_eq!(
            matching::split(&entry.value),
            ["interface-name:eth0", "interface-name:eth2"]
        );
        assert_eq!((entry.file.as_str(), entry.line), ("c", 2));
    }

    #[test]
    fn plus_keys_dropped_or_rejected() {
        let (merged, errors, _) = merge_texts(&[(
            "a",
            "[connection]\nethernet.cloned-mac-address+=random\n[device]\nmacveil.manage+=yes\n",
            true,
        )]);
        assert!(merged.groups.iter().all(|group| group.entries.is_empty()));
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "a:4: macveil.manage+ in [device]: macveil's keys do not take += or -=; write \
             macveil.manage= with the whole value"
        );
    }

    #[test]
    fn enable_false_skips_dropin_only() {
        let text = "[.config]\nenable=false\n[connection-x]\nk=v\n";
        let (merged, _, _) = merge_texts(&[("main", text, true)]);
        assert_eq!(section_names(&merged, CONNECTION_PREFIX), ["connection-x"]);

        let (merged, _, _) = merge_texts(&[("dropin", text, false)]);
        assert!(merged.groups.is_empty());

        let (merged, _, _) =
            merge_texts(&[("dropin", "[.config]\nenable=yes\n[device]\nk=v\n", false)]);
        assert_eq!(section_names(&merged, DEVICE_PREFIX), ["device"]);
    }

    #[test]
    fn config_enable_predicates_warn_and_read() {
        let (merged, errors, warnings) = merge_texts(&[(
            "dropin",
            "[.config]\nenable=nm-version-min:1.2,except:env:X\n[device]\nk=v\n",
            false,
        )]);
        assert!(errors.is_empty());
        assert_eq!(section_names(&merged, DEVICE_PREFIX), ["device"]);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].line, 2);

        let (_, errors, _) = merge_texts(&[("dropin", "[.config]\nenable=maybe\n", false)]);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .to_string()
                .starts_with("dropin:2: invalid value 'maybe' for enable")
        );
    }

    #[test]
    fn internal_groups_and_keys_are_ignored() {
        let (merged, _, _) = merge_texts(&[(
            "a",
            "[.intern.device]\nk=v\n[device]\n.set.managed=1\n.was.managed=0\n.was=x\n",
            true,
        )]);
        // NetworkManager creates a merged group only when it sets a key in it.
        assert!(merged.groups.is_empty(), "{:?}", merged.groups);
    }
}
