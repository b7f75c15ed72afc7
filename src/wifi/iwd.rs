//! iwd's known-network files: which network a file is for, and the per-network address
//! settings macveil writes into it.
//!
//! iwd (2.3 in Debian 12) keeps one file per known network in its state folder,
//! `/var/lib/iwd`, named after the SSID with the security type as extension (`.open`, `.psk`,
//! `.8021x`). The SSID appears verbatim when it contains only ASCII letters, digits, spaces, `_`
//! and `-`, and otherwise as `=` followed by its bytes in lower-case hex (iwd.network(5),
//! "NAMING"). The group `[Settings]` can hold `AddressOverride=ADDRESS`, the address iwd uses
//! for that network, and `AlwaysRandomizeAddress=true`, a new random address at each
//! connection. iwd reads both only when `/etc/iwd/main.conf` sets `[General]
//! AddressRandomization=network`, and `AddressOverride` wins when both are set.
//!
//! macveil owns exactly these two keys. [`set_address`] rewrites one file's text so that it
//! contains the one the policy needs and not the other, and keeps every other line as it was:
//! groups, keys, comments, blank lines, the order and the line endings. The format is the
//! key-file dialect of ell's `l_settings`; text macveil cannot read with certainty (a line that
//! is neither a group, a key, a comment nor blank, a group or key given twice, text that is not
//! UTF-8) is rejected, and then nothing is written.
//!
//! This module edits text and lists the folder. It does not write files (the caller replaces
//! them atomically), does not derive addresses ([`crate::wifi::address`] does) and does not
//! talk to iwd.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::addr::MacAddr;

/// iwd's default state folder, where its known-network files live.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/iwd";

/// iwd's default main configuration file.
pub const DEFAULT_MAIN_CONF: &str = "/etc/iwd/main.conf";

/// The group of a network file that contains the address settings.
pub const SETTINGS_GROUP: &str = "Settings";

/// The key of a fixed per-network address.
pub const ADDRESS_OVERRIDE: &str = "AddressOverride";

/// The key of a new random address at each connection.
pub const ALWAYS_RANDOMIZE: &str = "AlwaysRandomizeAddress";

/// The address setting one network file should contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressSetting {
    /// `AddressOverride=ADDRESS`: this address on this network.
    Override(MacAddr),
    /// `AlwaysRandomizeAddress=true`: a new random address at each connection.
    AlwaysRandom,
}

/// A known-network file in iwd's state folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkFile {
    /// The file's path.
    pub path: PathBuf,
    /// The network's SSID, decoded from the file name.
    pub ssid: Vec<u8>,
    /// The extension: `open`, `psk` or `8021x`.
    pub security: &'static str,
}

/// Text or a file name that macveil cannot handle with certainty.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IwdFileError {
    /// A line is neither a group header, a key, a comment nor blank.
    #[error("line {line} is not a group, a key=value line, a comment or blank: '{text}'")]
    InvalidLine {
        /// The 1-based line number.
        line: usize,
        /// The line, without its ending.
        text: String,
    },

    /// A group appears twice.
    #[error("line {line} opens the group [{group}] a second time")]
    DuplicateGroup {
        /// The 1-based line number.
        line: usize,
        /// The group.
        group: String,
    },

    /// A key appears twice in one group.
    #[error("line {line} sets {key} a second time in [{group}]")]
    DuplicateKey {
        /// The 1-based line number.
        line: usize,
        /// The group.
        group: String,
        /// The key.
        key: String,
    },

    /// A key appears before any group.
    #[error("line {line} sets {key} before any [group]")]
    KeyOutsideGroup {
        /// The 1-based line number.
        line: usize,
        /// The key.
        key: String,
    },

    /// The text is not UTF-8.
    #[error("the file is not UTF-8 text")]
    NotUtf8,

    /// The file name does not encode an SSID the way iwd does.
    #[error("the name does not encode an SSID of 1 to 32 bytes as iwd does ('NAME' or '=HEX')")]
    InvalidName,
}

/// The address settings a network file contains now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrentSettings {
    /// The value of `[Settings] AddressOverride`, as written.
    pub address_override: Option<String>,
    /// The value of `[Settings] AlwaysRandomizeAddress`, as written.
    pub always_randomize: Option<String>,
}

impl CurrentSettings {
    /// True when iwd, with `AddressRandomization=network`, uses something other than the
    /// address it derives from the permanent address and the SSID: a valid
    /// `AddressOverride`, or `AlwaysRandomizeAddress=true`.
    pub fn replaces_derived_address(&self) -> bool {
        let override_valid = self
            .address_override
            .as_deref()
            .is_some_and(|value| MacAddr::parse_assignable(value).is_ok());
        override_valid || self.always_randomize.as_deref() == Some("true")
    }
}

/// One parsed line of a network file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line<'a> {
    /// Blank, a comment, or a line of an embedded group's payload.
    Other,
    /// A group header.
    Group(&'a str),
    /// A key and its value (leading blanks of the value removed).
    Key(&'a str, &'a str),
}

/// A file split into lines with their endings, each parsed.
struct Parsed<'a> {
    /// Each line as it is in the file, with its ending.
    raw: Vec<&'a str>,
    /// The kind of each line.
    lines: Vec<Line<'a>>,
}

/// Returns whether `key` is a valid key name for `l_settings`: ASCII letters, digits, `_`,
/// `-`, `.`.
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'))
}

/// Splits and checks the text. Lines inside an embedded group (`[@type@name]`, e.g. a PEM
/// certificate in a `.8021x` file) are payload and kept as they are.
fn parse(text: &str) -> Result<Parsed<'_>, IwdFileError> {
    let raw: Vec<&str> = text.split_inclusive('\n').collect();
    let mut lines = Vec::with_capacity(raw.len());
    let mut groups: Vec<&str> = Vec::new();
    let mut keys: Vec<&str> = Vec::new();
    let mut embedded = false;
    for (index, raw_line) in raw.iter().enumerate() {
        let number = index + 1;
        let content = raw_line.trim_end_matches(['\n', '\r']);
        let trimmed = content.trim();
        if let Some(name) = trimmed
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            if name.is_empty() || name.contains(['[', ']']) {
                return Err(IwdFileError::InvalidLine {
                    line: number,
                    text: content.to_string(),
                });
            }
            if groups.contains(&name) {
                return Err(IwdFileError::DuplicateGroup {
                    line: number,
                    group: name.to_string(),
                });
            }
            groups.push(name);
            keys.clear();
            embedded = name.starts_with('@');
            lines.push(Line::Group(name));
            continue;
        }
        if embedded || trimmed.is_empty() || trimmed.starts_with('#') {
            lines.push(Line::Other);
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            return Err(IwdFileError::InvalidLine {
                line: number,
                text: content.to_string(),
            });
        };
        let key = key.trim_end();
        if !valid_key(key) {
            return Err(IwdFileError::InvalidLine {
                line: number,
                text: content.to_string(),
            });
        }
        let Some(group) = groups.last() else {
            return Err(IwdFileError::KeyOutsideGroup {
                line: number,
                key: key.to_string(),
            });
        };
        if keys.contains(&key) {
            return Err(IwdFileError::DuplicateKey {
                line: number,
                group: (*group).to_string(),
                key: key.to_string(),
            });
        }
        keys.push(key);
        lines.push(Line::Key(key, value.trim_start()));
    }
    Ok(Parsed { raw, lines })
}

/// Decodes a file's bytes as UTF-8.
pub fn decode(bytes: &[u8]) -> Result<&str, IwdFileError> {
    std::str::from_utf8(bytes).map_err(|_| IwdFileError::NotUtf8)
}

/// Reads the address settings of a network file's text.
pub fn current_settings(text: &str) -> Result<CurrentSettings, IwdFileError> {
    let parsed = parse(text)?;
    let mut settings = CurrentSettings::default();
    let mut group = "";
    for line in &parsed.lines {
        match line {
            Line::Group(name) => group = name,
            Line::Key(key, value) if group == SETTINGS_GROUP => match *key {
                ADDRESS_OVERRIDE => settings.address_override = Some((*value).to_string()),
                ALWAYS_RANDOMIZE => settings.always_randomize = Some((*value).to_string()),
                _ => {}
            },
            _ => {}
        }
    }
    Ok(settings)
}

/// Returns the text with `[Settings]` containing exactly the key that `setting` needs and not the
/// other one; every other line is kept byte for byte. A missing `[Settings]` group is added at
/// the end. The result equals the input when the file already contains the setting.
pub fn set_address(text: &str, setting: AddressSetting) -> Result<String, IwdFileError> {
    let parsed = parse(text)?;
    let (key, value, other) = match setting {
        AddressSetting::Override(address) => {
            (ADDRESS_OVERRIDE, address.to_string(), ALWAYS_RANDOMIZE)
        }
        AddressSetting::AlwaysRandom => (ALWAYS_RANDOMIZE, "true".to_string(), ADDRESS_OVERRIDE),
    };
    // The file's own line ending, for the lines macveil adds.
    let ending = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let new_line = format!("{key}={value}{ending}");

    let mut out = String::with_capacity(text.len() + new_line.len() + 16);
    let mut group = "";
    let mut settings_seen = false;
    let mut written = false;
    // Where the last key line of [Settings] ended in `out`, to insert the key after it.
    let mut after_last_key: Option<usize> = None;
    for (raw, line) in parsed.raw.iter().zip(&parsed.lines) {
        if let Line::Group(name) = line {
            group = name;
            if *name == SETTINGS_GROUP {
                settings_seen = true;
                out.push_str(raw);
                after_last_key = Some(out.len());
                continue;
            }
        }
        if group == SETTINGS_GROUP {
            match line {
                Line::Key(found, current) if *found == key => {
                    if *current == value {
                        out.push_str(raw);
                    } else {
                        out.push_str(&new_line);
                    }
                    written = true;
                    after_last_key = Some(out.len());
                    continue;
                }
                Line::Key(found, _) if *found == other => continue,
                Line::Key(..) => {
                    out.push_str(raw);
                    after_last_key = Some(out.len());
                    continue;
                }
                _ => {}
            }
        }
        out.push_str(raw);
    }
    // A last line without an ending gets one before anything is added after it.
    let terminate = |out: &mut String| {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push_str(ending);
        }
    };
    if !written {
        match (settings_seen, after_last_key) {
            (true, Some(position)) => {
                if position == out.len() {
                    terminate(&mut out);
                    out.push_str(&new_line);
                } else {
                    // The position follows a complete line, because only the file's last line
                    // can lack an ending.
                    out.insert_str(position, &new_line);
                }
            }
            _ => {
                terminate(&mut out);
                if !out.is_empty() {
                    out.push_str(ending);
                }
                out.push_str(&format!("[{SETTINGS_GROUP}]{ending}"));
                out.push_str(&new_line);
            }
        }
    }
    Ok(out)
}

/// Decodes the SSID and security type from a network file's name, as iwd names them.
pub fn ssid_from_file_name(name: &str) -> Result<(Vec<u8>, &'static str), IwdFileError> {
    let (stem, security) = [("open", ".open"), ("psk", ".psk"), ("8021x", ".8021x")]
        .into_iter()
        .find_map(|(security, suffix)| name.strip_suffix(suffix).map(|stem| (stem, security)))
        .ok_or(IwdFileError::InvalidName)?;
    let ssid = if let Some(hex) = stem.strip_prefix('=') {
        if hex.len() % 2 != 0
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(IwdFileError::InvalidName);
        }
        (0..hex.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&hex[at..at + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| IwdFileError::InvalidName)?
    } else {
        if !stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'_' | b'-'))
        {
            return Err(IwdFileError::InvalidName);
        }
        stem.as_bytes().to_vec()
    };
    if ssid.is_empty() || ssid.len() > 32 {
        return Err(IwdFileError::InvalidName);
    }
    Ok((ssid, security))
}

/// Lists the known-network files in `dir`, sorted by name. Entries that are not regular files
/// with one of iwd's extensions are skipped (iwd keeps other things there, such as the `ap`
/// and `hotspot` folders). A file with an extension of iwd's and a name that does not encode
/// an SSID is an error, named with its path.
pub fn known_networks(dir: &Path) -> io::Result<Vec<Result<NetworkFile, (PathBuf, IwdFileError)>>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name.starts_with('.')
            || ![".open", ".psk", ".8021x"]
                .iter()
                .any(|suffix| name.ends_with(suffix))
        {
            continue;
        }
        names.push(name);
    }
    names.sort();
    Ok(names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            match ssid_from_file_name(&name) {
                Ok((ssid, security)) => Ok(NetworkFile {
                    path,
                    ssid,
                    security,
                }),
                Err(err) => Err((path, err)),
            }
        })
        .collect())
}

/// Reads `[General] AddressRandomization` from the text of iwd's main.conf; iwd's default is
/// `disabled`. The last value wins, and lines macveil cannot parse are skipped, because this
/// only reports what iwd does.
pub fn address_randomization(main_conf: &str) -> String {
    let mut group = "";
    let mut mode = String::from("disabled");
    for raw in main_conf.lines() {
        let line = raw.trim();
        if let Some(name) = line
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            group = name;
        } else if group == "General" && !line.starts_with('#') {
            if let Some((key, value)) = line.split_once('=') {
                if key.trim() == "AddressRandomization" {
                    mode = value.trim().to_string();
                }
            }
        }
    }
    mode
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> MacAddr {
        MacAddr([0x2a, 0x11, 0x22, 0x33, 0x44, 0x55])
    }

    #[test]
    fn override_added_to_existing_settings_group() {
        let text = "# written by hand\n[Security]\nPassphrase=secret words\n\n[Settings]\nAutoConnect=false\n\n[IPv4]\nAddress=10.0.0.2\n";
        let out = set_address(text, AddressSetting::Override(address())).unwrap();
        assert_eq!(
            out,
            "# written by hand\n[Security]\nPassphrase=secret words\n\n[Settings]\nAutoConnect=false\nAddressOverride=2a:11:22:33:44:55\n\n[IPv4]\nAddress=10.0.0.2\n"
        );
        let settings = current_settings(&out).unwrap();
        assert_eq!(
            settings.address_override.as_deref(),
            Some("2a:11:22:33:44:55")
        );
        assert!(settings.replaces_derived_address());
    }

    #[test]
    fn settings_group_added_when_missing() {
        let text = "[Security]\nPassphrase=x";
        let out = set_address(text, AddressSetting::AlwaysRandom).unwrap();
        assert_eq!(
            out,
            "[Security]\nPassphrase=x\n\n[Settings]\nAlwaysRandomizeAddress=true\n"
        );
        assert_eq!(
            set_address("", AddressSetting::AlwaysRandom).unwrap(),
            "[Settings]\nAlwaysRandomizeAddress=true\n"
        );
    }

    #[test]
    fn existing_value_replaced_and_other_key_removed() {
        let text = "[Settings]\r\nAlwaysRandomizeAddress=true\r\n# keep me\r\nAddressOverride=02:00:00:00:00:01\r\nHidden=true\r\n";
        let out = set_address(text, AddressSetting::Override(address())).unwrap();
        assert_eq!(
            out,
            "[Settings]\r\n# keep me\r\nAddressOverride=2a:11:22:33:44:55\r\nHidden=true\r\n"
        );
        let back = set_address(&out, AddressSetting::AlwaysRandom).unwrap();
        assert_eq!(
            back,
            "[Settings]\r\n# keep me\r\nHidden=true\r\nAlwaysRandomizeAddress=true\r\n"
        );
    }

    #[test]
    fn unchanged_when_already_set() {
        let text = "[Settings]\nAddressOverride=2a:11:22:33:44:55\n[Security]\nPassphrase=p\n";
        assert_eq!(
            set_address(text, AddressSetting::Override(address())).unwrap(),
            text
        );
    }

    #[test]
    fn keys_of_other_groups_are_left_alone() {
        // The same key names outside [Settings] are not the network's address settings.
        let text = "[General]\nAddressOverride=02:00:00:00:00:09\n[Settings]\n";
        let out = set_address(text, AddressSetting::Override(address())).unwrap();
        assert_eq!(
            out,
            "[General]\nAddressOverride=02:00:00:00:00:09\n[Settings]\nAddressOverride=2a:11:22:33:44:55\n"
        );
        assert_eq!(current_settings(text).unwrap(), CurrentSettings::default());
    }

    #[test]
    fn embedded_payload_is_kept() {
        let text = "[Security]\nEAP-Method=TLS\n[@pem@ca]\n-----BEGIN CERTIFICATE-----\nMIIB=weird line\n-----END CERTIFICATE-----\n";
        let out = set_address(text, AddressSetting::AlwaysRandom).unwrap();
        assert!(out.starts_with(text));
        assert!(out.ends_with("\n[Settings]\nAlwaysRandomizeAddress=true\n"));
    }

    #[test]
    fn invalid_text_is_rejected() {
        let setting = AddressSetting::Override(address());
        assert_eq!(
            set_address("[Settings]\nnot a setting\n", setting),
            Err(IwdFileError::InvalidLine {
                line: 2,
                text: "not a setting".into()
            })
        );
        assert!(matches!(
            set_address("[Settings]\n[Security]\n[Settings]\n", setting),
            Err(IwdFileError::DuplicateGroup { line: 3, .. })
        ));
        assert!(matches!(
            set_address("[Settings]\nHidden=true\nHidden=false\n", setting),
            Err(IwdFileError::DuplicateKey { line: 3, .. })
        ));
        assert!(matches!(
            set_address("Hidden=true\n", setting),
            Err(IwdFileError::KeyOutsideGroup { line: 1, .. })
        ));
        assert!(matches!(
            set_address("[Settings]\nbad key=1\n", setting),
            Err(IwdFileError::InvalidLine { line: 2, .. })
        ));
        assert_eq!(decode(b"[Settings]\n\xff\n"), Err(IwdFileError::NotUtf8));
    }

    #[test]
    fn invalid_override_does_not_count() {
        let settings = current_settings("[Settings]\nAddressOverride=ff:ff:ff:ff:ff:ff\n").unwrap();
        assert!(!settings.replaces_derived_address());
        let settings = current_settings("[Settings]\nAlwaysRandomizeAddress=false\n").unwrap();
        assert!(!settings.replaces_derived_address());
    }

    #[test]
    fn file_names_decode_as_iwd_encodes_them() {
        assert_eq!(
            ssid_from_file_name("home net_5-G.psk").unwrap(),
            (b"home net_5-G".to_vec(), "psk")
        );
        assert_eq!(
            ssid_from_file_name("=636166c3a9.open").unwrap(),
            ("café".as_bytes().to_vec(), "open")
        );
        assert_eq!(ssid_from_file_name("=00ff.8021x").unwrap().0, vec![0, 255]);
        for bad in [
            "café.psk",
            "=6.psk",
            "=6G.psk",
            "=ABCD.psk",
            ".psk",
            "home.conf",
            "=.open",
            "a-name-that-is-longer-than-thirty-two-bytes.psk",
        ] {
            assert_eq!(
                ssid_from_file_name(bad),
                Err(IwdFileError::InvalidName),
                "{bad}"
            );
        }
    }

    #[test]
    fn known_networks_lists_network_files_only() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("b.psk"), "").unwrap();
        fs::write(dir.path().join("a.open"), "").unwrap();
        fs::write(dir.path().join("bad!.psk"), "").unwrap();
        fs::write(dir.path().join(".a.open.macveil.tmp"), "").unwrap();
        fs::write(dir.path().join("notes.txt"), "").unwrap();
        fs::create_dir(dir.path().join("hotspot")).unwrap();
        let listed = known_networks(dir.path()).unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].as_ref().unwrap().ssid, b"a");
        assert_eq!(listed[1].as_ref().unwrap().security, "psk");
        assert!(
            matches!(&listed[2], Err((path, IwdFileError::InvalidName)) if path.ends_with("bad!.psk"))
        );
    }

    #[test]
    fn address_randomization_mode() {
        assert_eq!(address_randomization(""), "disabled");
        assert_eq!(
            address_randomization(
                "[General]\n#AddressRandomization=once\nAddressRandomization = network\n[Scan]\nAddressRandomization=once\n"
            ),
            "network"
        );
    }
}
