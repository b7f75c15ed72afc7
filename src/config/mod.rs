//! macveil's configuration: NetworkManager's keyfile dialect, read from macveil's own files
//! and, on request, NetworkManager's, and resolved into one policy per link.
//!
//! A NetworkManager configuration such as
//!
//! ```text
//! [device]
//! wifi.scan-rand-mac-address=yes
//!
//! [connection]
//! wifi.cloned-mac-address=stable
//! ethernet.cloned-mac-address=stable
//! connection.stable-id=${CONNECTION}/${BOOT}
//! ```
//!
//! works unchanged: the syntax is GLib's ([`keyfile`]), `match-device=` is NetworkManager's
//! device spec list ([`matching`]), files and sections merge in NetworkManager's order
//! ([`files`]), values are checked as they load ([`keys`]), and a key is looked up in the
//! sections as NetworkManager looks it up ([`policy`]). macveil's own keys carry a `macveil.` prefix.
//!
//! Loading is all or nothing: any invalid value, unknown `macveil.` key or syntax error in any
//! file gives [`ConfigErrors`] and no configuration, so a caller can keep the policy it has.
//! Keys that NetworkManager defines and macveil does not use are ignored (logged at debug
//! level), so a NetworkManager file never fails to load because of them.
//!
//! This module reads files and computes policies. It changes no link and reads no secret key.

pub mod files;
pub mod keyfile;
pub mod keys;
pub mod link;
pub mod matching;
pub mod policy;
pub mod sysfs;

use std::fs;
use std::io;
use std::path::PathBuf;

pub use files::{ConfigFile, ConfigPaths};
pub use link::{LinkFacts, LinkKind, SysfsDevice};
pub use policy::{
    ClonedMac, LinkPolicy, Manage, ManageReason, OnFailure, Origin, Setting, Source, WifiConnect,
};

use files::Merged;
use keyfile::{KeyFile, SyntaxError, quote};
use keys::Sections;

/// The prefix of macveil's own keys.
pub const MACVEIL_KEY_PREFIX: &str = "macveil.";

/// NetworkManager's privacy settings, applied to physical links. [`Config::load`] reads this
/// text before every file, so a file overrides it key by key and a drop-in that only excludes
/// one link leaves every other link protected.
pub const EMBEDDED_DEFAULT: &str = "\
[device]
wifi.scan-rand-mac-address=yes

[connection]
wifi.cloned-mac-address=stable
ethernet.cloned-mac-address=stable
connection.stable-id=${CONNECTION}/${BOOT}
";

/// The name shown for [`EMBEDDED_DEFAULT`] in origins and messages.
pub const EMBEDDED_DEFAULT_NAME: &str = "(embedded default)";

/// NetworkManager's default `[main] dhcp`, which `dhcp-plugin:` matches when the files do not
/// set it. NetworkManager's build can change it; "internal" is the upstream default since
/// version 1.20.
pub(crate) const DEFAULT_DHCP_PLUGIN: &str = "internal";

/// One problem that makes a configuration invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// A drop-in folder could not be listed.
    #[error("cannot list {}: {source}", path.display())]
    ReadDir {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// A line is not valid key file syntax.
    #[error("{file}:{line}: {source}", line = source.line())]
    Syntax {
        /// The file, as shown to the user.
        file: String,
        /// The problem with the line.
        #[source]
        source: SyntaxError,
    },

    /// A value is not one the key accepts.
    #[error(transparent)]
    Value(Box<InvalidValue>),

    /// A `macveil.` key macveil does not know.
    #[error(
        "{file}:{line}: unknown key {key} in [{section}]: macveil's own keys are {known}",
        key = quote(key),
        known = keys::MACVEIL_KEYS
    )]
    UnknownKey {
        /// The file, as shown to the user.
        file: String,
        /// The 1-based line.
        line: usize,
        /// The section.
        section: String,
        /// The key.
        key: String,
    },

    /// A `macveil.` key in a section of the wrong kind.
    #[error("{file}:{line}: {key} in [{section}] has no effect: it belongs in a {belongs} section")]
    MisplacedKey {
        /// The file, as shown to the user.
        file: String,
        /// The 1-based line.
        line: usize,
        /// The section.
        section: String,
        /// The key.
        key: String,
        /// The sections the key belongs in, for example `[device] or [device-NAME]`.
        belongs: &'static str,
    },

    /// `macveil.KEY+=` or `macveil.KEY-=`.
    #[error(
        "{file}:{line}: {key} in [{section}]: macveil's keys do not take += or -=; write {base}= \
         with the whole value",
        base = &key[..key.len() - 1]
    )]
    ListOperator {
        /// The file, as shown to the user.
        file: String,
        /// The 1-based line.
        line: usize,
        /// The section.
        section: String,
        /// The key, with its `+` or `-`.
        key: String,
    },
}

/// A value a key does not accept, with what it accepts.
#[derive(Debug, thiserror::Error)]
#[error(
    "{file}:{line}: invalid value {value} for {key} in [{section}]: {reason}expected {expected}",
    value = quote(value),
    reason = reason.as_ref().map(|reason| format!("{reason}; ")).unwrap_or_default()
)]
pub struct InvalidValue {
    /// The file, as shown to the user.
    pub file: String,
    /// The 1-based line.
    pub line: usize,
    /// The section.
    pub section: String,
    /// The key.
    pub key: String,
    /// The raw value.
    pub value: String,
    /// The reason the value is invalid, when there is more to it than "not accepted".
    pub reason: Option<String>,
    /// The accepted values.
    pub expected: String,
}

impl ConfigError {
    /// The file and line the problem is on, when it is on one line.
    pub fn location(&self) -> Option<(&str, usize)> {
        match self {
            ConfigError::Read { .. } | ConfigError::ReadDir { .. } => None,
            ConfigError::Syntax { file, source } => Some((file, source.line())),
            ConfigError::Value(invalid) => Some((&invalid.file, invalid.line)),
            ConfigError::UnknownKey { file, line, .. }
            | ConfigError::MisplacedKey { file, line, .. }
            | ConfigError::ListOperator { file, line, .. } => Some((file, *line)),
        }
    }
}

/// Every problem found in a configuration, in the order the files were read.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> ConfigErrors {
        ConfigErrors(vec![error])
    }
}

/// Something in a valid configuration that probably does not do what its author meant: an
/// entry of `match-device=` that can never match, a misspelt key, a key in a section where
/// it has no effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The file, as shown to the user.
    pub file: String,
    /// The 1-based line.
    pub line: usize,
    /// The problem.
    pub message: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// The selection of files to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// One file to read in place of macveil's own files (`--config FILE`).
    pub file: Option<PathBuf>,
    /// Also read NetworkManager's files, before macveil's (`--nm-config`).
    pub nm_config: bool,
}

/// A loaded, valid configuration.
#[derive(Debug, Clone)]
pub struct Config {
    files: Vec<String>,
    embedded_default: bool,
    sections: Sections,
    dhcp_plugin: String,
    warnings: Vec<ConfigWarning>,
}

impl Config {
    /// Loads the configuration that `options` selects, on top of [`EMBEDDED_DEFAULT`]. With
    /// `--nm-config`, NetworkManager's files come after the default and before macveil's own
    /// files, so macveil's files override them. With `--config FILE` the file must exist.
    pub fn load(paths: &ConfigPaths, options: &LoadOptions) -> Result<Config, ConfigErrors> {
        let mut files = Vec::new();
        if options.nm_config {
            files.extend(files::nm_files(paths)?);
        }
        match &options.file {
            Some(path) => files.push(ConfigFile {
                path: path.clone(),
                main: true,
            }),
            None => files.extend(files::macveil_files(paths)?),
        }

        if files.is_empty() {
            log::info!("no configuration file found; using the embedded default policy");
            return Ok(Config::embedded_default());
        }

        // NetworkManager's own defaults for cloned-mac-address are `preserve`, so without this
        // base layer any file at all (a stock NetworkManager.conf, a drop-in that only sets
        // macveil.manage=no on one link) would leave every other link with its hardware address.
        let mut sources = vec![embedded_default_source()];
        sources.extend(read_sources(&files)?);
        Config::from_sources(&sources)
    }

    /// Reads and merges `files` in order, without [`EMBEDDED_DEFAULT`] beneath them.
    pub fn from_files(files: &[ConfigFile]) -> Result<Config, ConfigErrors> {
        Config::from_sources(&read_sources(files)?)
    }

    /// Parses configuration text that is already in memory, in order.
    pub fn from_sources(sources: &[SourceText]) -> Result<Config, ConfigErrors> {
        let mut parsed = MergedSources::parse(sources);

        // Problems are reported in file and line order, whichever step found them.
        let file_position = |name: &str| sources.iter().position(|source| source.name == name);
        parsed
            .warnings
            .sort_by_key(|warning| (file_position(&warning.file), warning.line));
        parsed.errors.sort_by_key(|error| {
            error
                .location()
                .map(|(file, line)| (file_position(file), line))
        });
        if !parsed.errors.is_empty() {
            return Err(ConfigErrors(parsed.errors));
        }

        Ok(Config {
            files: parsed.files,
            embedded_default: false,
            sections: parsed.sections,
            dhcp_plugin: parsed.dhcp_plugin,
            warnings: parsed.warnings,
        })
    }

    /// Builds the policy used when no configuration file exists: [`EMBEDDED_DEFAULT`] alone.
    pub fn embedded_default() -> Config {
        let mut config = match Config::from_sources(&[embedded_default_source()]) {
            Ok(config) => config,
            Err(err) => unreachable!("the embedded default policy is invalid: {err}"),
        };
        config.embedded_default = true;
        config
    }

    /// Resolves the policy of one link.
    pub fn policy_for(&self, link: &LinkFacts) -> LinkPolicy {
        self.sections.policy_for(link, &self.dhcp_plugin)
    }

    /// Returns the files that were read, in order. Files that `[.config] enable=false` skipped
    /// are not listed. The embedded default, when read, comes first as [`EMBEDDED_DEFAULT_NAME`].
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Whether this is the embedded default because no file exists.
    pub fn is_embedded_default(&self) -> bool {
        self.embedded_default
    }

    /// The problems worth a warning, in file order.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }
}

/// Returns [`EMBEDDED_DEFAULT`] as the first source beneath every configuration.
fn embedded_default_source() -> SourceText {
    SourceText {
        name: EMBEDDED_DEFAULT_NAME.to_string(),
        data: EMBEDDED_DEFAULT.as_bytes().to_vec(),
        main: true,
    }
}

/// Reads `files` in order.
pub(crate) fn read_sources(files: &[ConfigFile]) -> Result<Vec<SourceText>, ConfigError> {
    let mut sources = Vec::with_capacity(files.len());
    for file in files {
        let data = fs::read(&file.path).map_err(|source| ConfigError::Read {
            path: file.path.clone(),
            source,
        })?;
        sources.push(SourceText {
            name: file.path.display().to_string(),
            data,
            main: file.main,
        });
    }
    Ok(sources)
}

/// Configuration files parsed and merged by NetworkManager's rules, with every problem found,
/// before the caller decides what to do with the problems.
pub(crate) struct MergedSources {
    /// The files merged, in order. Files that `[.config] enable=false` skipped are not listed.
    pub files: Vec<String>,
    /// The merged groups and keys.
    pub merged: Merged,
    /// The checked `[connection*]` and `[device*]` sections.
    pub sections: Sections,
    /// `[main] dhcp`, or NetworkManager's default when no file sets it.
    pub dhcp_plugin: String,
    /// The errors, in the order they were found.
    pub errors: Vec<ConfigError>,
    /// The warnings, in the order they were found.
    pub warnings: Vec<ConfigWarning>,
}

impl MergedSources {
    /// Parses `sources` in order and merges them.
    pub(crate) fn parse(sources: &[SourceText]) -> MergedSources {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut merged = Merged::default();
        let mut files = Vec::new();

        for source in sources {
            log::debug!("reading configuration file {}", source.name);
            let keyfile = match KeyFile::parse(&source.data) {
                Ok(keyfile) => keyfile,
                Err(err) => {
                    // GLib stops reading a file at its first bad line. The other files are
                    // still checked, so that one run reports as many problems as it can.
                    errors.push(ConfigError::Syntax {
                        file: source.name.clone(),
                        source: err,
                    });
                    continue;
                }
            };
            if merged.add_file(
                &source.name,
                &keyfile,
                source.main,
                &mut errors,
                &mut warnings,
            ) {
                files.push(source.name.clone());
            }
        }

        let sections = keys::build_sections(&merged, &mut errors, &mut warnings);
        let dhcp_plugin = merged
            .groups
            .iter()
            .find(|group| group.name == "main")
            .and_then(|group| group.entry("dhcp"))
            .map(|entry| entry.value.trim_matches(keyfile::is_glib_space).to_string())
            .filter(|value| !value.is_empty())
            .unwrap_or_else(|| DEFAULT_DHCP_PLUGIN.to_string());

        MergedSources {
            files,
            merged,
            sections,
            dhcp_plugin,
            errors,
            warnings,
        }
    }
}

/// Configuration text with the name it is shown under.
#[derive(Debug, Clone)]
pub struct SourceText {
    /// The name in messages and origins, normally the path.
    pub name: String,
    /// The file's bytes.
    pub data: Vec<u8>,
    /// Whether this is a main file, whose `[.config] enable=` is ignored.
    pub main: bool,
}

impl SourceText {
    /// A drop-in file's text, for tests and callers that build configurations in memory.
    pub fn new(name: &str, text: &str) -> SourceText {
        SourceText {
            name: name.to_string(),
            data: text.as_bytes().to_vec(),
            main: false,
        }
    }
}

#[cfg(test)]
mod tests;
