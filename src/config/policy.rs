//! The keys macveil reads, their validation, and how one link's policy is resolved from the
//! `[connection*]` and `[device*]` sections.
//!
//! A key is looked up as NetworkManager's `_match_section_infos_lookup` does. The sections of
//! the key's kind are tried in priority order, and a section without the key is skipped unless
//! it has `stop-match=yes`. The first section whose `match-device=` matches the link (or that
//! has no `match-device=`) decides. When `stop-match=yes` ends the search in a section without
//! the key, or no section decides, the key's default applies.
//!
//! Values are checked when the configuration is loaded, not when a link needs them, so that a
//! bad value in a section that matches no link today is still an error.

use std::fmt;
use std::time::Duration;

use super::files::{CONNECTION_PREFIX, DEVICE_PREFIX, MATCH_DEVICE, Merged, MergedEntry};
use super::keyfile::{self, BOOL_WORDS, is_glib_space, quote, unescape};
use super::link::LinkFacts;
use super::matching::{MatchList, MatchSubject};
use super::{ConfigError, ConfigWarning, InvalidValue, MACVEIL_KEY_PREFIX};
use crate::addr::{AddrError, MacAddr};
use crate::generate::mask::Mask;

/// The address mode that `*.cloned-mac-address` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClonedMac {
    /// Use the permanent (burned-in) address.
    Permanent,
    /// Leave the address as it is.
    Preserve,
    /// A new random address each time the link is activated.
    Random,
    /// The same address whenever the stable id and host key are the same.
    Stable,
    /// Wi-Fi only: a stable address per network (`${NETWORK_SSID}` as the stable id).
    StableSsid,
    /// This exact address.
    Address(MacAddr),
}

impl fmt::Display for ClonedMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClonedMac::Permanent => f.write_str("permanent"),
            ClonedMac::Preserve => f.write_str("preserve"),
            ClonedMac::Random => f.write_str("random"),
            ClonedMac::Stable => f.write_str("stable"),
            ClonedMac::StableSsid => f.write_str("stable-ssid"),
            ClonedMac::Address(addr) => write!(f, "{addr}"),
        }
    }
}

/// `macveil.manage`: whether macveil manages a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manage {
    /// Physical links, and virtual links that a section selects with `match-device=`.
    Auto,
    /// Manage the link whatever its kind.
    Yes,
    /// Leave the link alone.
    No,
}

impl fmt::Display for Manage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Manage::Auto => "auto",
            Manage::Yes => "yes",
            Manage::No => "no",
        })
    }
}

/// `macveil.on-failure`: what happens to a link whose address cannot be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Keep the link down, so that it never sends with the address it must hide.
    Down,
    /// Only log a warning and leave the link as it is.
    Warn,
}

impl fmt::Display for OnFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnFailure::Down => "down",
            OnFailure::Warn => "warn",
        })
    }
}

/// The place a value was set: the section, file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The section name without brackets.
    pub section: String,
    /// The file, as shown to the user.
    pub file: String,
    /// The 1-based line.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}:{}", self.section, self.file, self.line)
    }
}

/// The reason a setting has its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// No section set the key, so the default applies.
    Default,
    /// A section set the key here.
    Configured(Origin),
    /// `stop-match=yes` in a matching section without the key ended the search, so the
    /// default applies. The origin is the `stop-match` line.
    StoppedAt(Origin),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Configured(origin) => write!(f, "{origin}"),
            Source::StoppedAt(origin) => {
                write!(
                    f,
                    "default, because stop-match in {origin} ended the search"
                )
            }
        }
    }
}

/// One resolved value and why it has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    /// The value in force.
    pub value: T,
    /// The place it came from.
    pub source: Source,
}

/// The reason macveil manages a link or leaves it alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManageReason {
    /// `macveil.manage=yes` or `no` decided.
    Configured(Origin),
    /// A physical device backs the link.
    Physical {
        /// The bus the device sits on, when known.
        subsystem: Option<String>,
    },
    /// A section with `match-device=` that matches the link sets its cloned-mac-address.
    Selected(Origin),
    /// The loopback link has no hardware address to hide.
    Loopback,
    /// The link has no 6-byte hardware address.
    NoHardwareAddress,
    /// A Xen backend interface, which stands for another domain's virtual card.
    XenBackend,
    /// A virtual link that nothing selected.
    Virtual {
        /// The kind of link.
        kind: String,
    },
}

impl fmt::Display for ManageReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HOW: &str = "a section with match-device= that sets its cloned-mac-address, or \
                           macveil.manage=yes, makes macveil manage it";
        match self {
            ManageReason::Configured(origin) => write!(f, "macveil.manage in {origin}"),
            ManageReason::Physical {
                subsystem: Some(subsystem),
            } => write!(f, "physical device on {subsystem}"),
            ManageReason::Physical { subsystem: None } => f.write_str("physical device"),
            ManageReason::Selected(origin) => {
                write!(f, "virtual link selected by match-device in {origin}")
            }
            ManageReason::Loopback => f.write_str("loopback link"),
            ManageReason::NoHardwareAddress => f.write_str("no 6-byte hardware address"),
            ManageReason::XenBackend => {
                write!(f, "Xen backend interface for another domain's card; {HOW}")
            }
            ManageReason::Virtual { kind } => {
                write!(f, "virtual link ({kind}) without a device in sysfs; {HOW}")
            }
        }
    }
}

/// The policy one link gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPolicy {
    /// Whether macveil manages the link.
    pub managed: bool,
    /// The reason for `managed`.
    pub reason: ManageReason,
    /// Whether the `wifi.*` keys apply rather than the `ethernet.*` ones.
    pub wifi: bool,
    /// `ethernet.cloned-mac-address` or `wifi.cloned-mac-address`; default `preserve`, as in
    /// NetworkManager.
    pub cloned_mac_address: Setting<ClonedMac>,
    /// `connection.stable-id`; none means NetworkManager's default, the connection UUID.
    pub stable_id: Setting<Option<String>>,
    /// `ethernet.generate-mac-address-mask` or `wifi.generate-mac-address-mask`.
    pub generate_mac_address_mask: Setting<Option<Mask>>,
    /// `wifi.scan-rand-mac-address` for Wi-Fi links (default yes); none for other links.
    pub scan_rand_mac_address: Option<Setting<bool>>,
    /// `wifi.scan-generate-mac-address-mask` for Wi-Fi links; none for other links.
    pub scan_generate_mac_address_mask: Option<Setting<Option<Mask>>>,
    /// `macveil.on-failure`; default `down`.
    pub on_failure: Setting<OnFailure>,
    /// `macveil.apply-to-running`; default no.
    pub apply_to_running: Setting<bool>,
    /// `macveil.random-rotate`; none (the default) means no rotation while the link stays up.
    pub random_rotate: Setting<Option<Duration>>,
}

impl LinkPolicy {
    /// The name of the cloned-mac-address key that applies to this link.
    pub fn cloned_mac_address_key(&self) -> &'static str {
        if self.wifi {
            Key::WifiClonedMac.name()
        } else {
            Key::EthernetClonedMac.name()
        }
    }

    /// The name of the generate-mac-address-mask key that applies to this link.
    pub fn generate_mac_address_mask_key(&self) -> &'static str {
        if self.wifi {
            Key::WifiMask.name()
        } else {
            Key::EthernetMask.name()
        }
    }
}

/// The smallest `macveil.random-rotate` other than 0. Each rotation takes the link down, so a
/// shorter period would keep it from ever holding a connection.
pub const MIN_ROTATE_SECS: u64 = 60;

/// The largest `macveil.random-rotate`: one year.
pub const MAX_ROTATE_SECS: u64 = 365 * 24 * 60 * 60;

/// The section kind a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SectionKind {
    Connection,
    Device,
}

/// The keys macveil reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    EthernetClonedMac,
    WifiClonedMac,
    WifiMacRandomization,
    StableId,
    EthernetMask,
    WifiMask,
    ScanRandMac,
    ScanMask,
    Manage,
    OnFailure,
    ApplyToRunning,
    RandomRotate,
}

const KEYS: [Key; 12] = [
    Key::EthernetClonedMac,
    Key::WifiClonedMac,
    Key::WifiMacRandomization,
    Key::StableId,
    Key::EthernetMask,
    Key::WifiMask,
    Key::ScanRandMac,
    Key::ScanMask,
    Key::Manage,
    Key::OnFailure,
    Key::ApplyToRunning,
    Key::RandomRotate,
];

/// macveil's own keys, listed in error messages.
pub(crate) const MACVEIL_KEYS: &str =
    "macveil.manage, macveil.on-failure, macveil.apply-to-running and macveil.random-rotate";

impl Key {
    pub fn name(self) -> &'static str {
        match self {
            Key::EthernetClonedMac => "ethernet.cloned-mac-address",
            Key::WifiClonedMac => "wifi.cloned-mac-address",
            Key::WifiMacRandomization => "wifi.mac-address-randomization",
            Key::StableId => "connection.stable-id",
            Key::EthernetMask => "ethernet.generate-mac-address-mask",
            Key::WifiMask => "wifi.generate-mac-address-mask",
            Key::ScanRandMac => "wifi.scan-rand-mac-address",
            Key::ScanMask => "wifi.scan-generate-mac-address-mask",
            Key::Manage => "macveil.manage",
            Key::OnFailure => "macveil.on-failure",
            Key::ApplyToRunning => "macveil.apply-to-running",
            Key::RandomRotate => "macveil.random-rotate",
        }
    }

    fn from_name(name: &str) -> Option<Key> {
        KEYS.into_iter().find(|key| key.name() == name)
    }

    fn section_kind(self) -> SectionKind {
        match self {
            Key::EthernetClonedMac
            | Key::WifiClonedMac
            | Key::WifiMacRandomization
            | Key::StableId
            | Key::EthernetMask
            | Key::WifiMask => SectionKind::Connection,
            Key::ScanRandMac
            | Key::ScanMask
            | Key::Manage
            | Key::OnFailure
            | Key::ApplyToRunning
            | Key::RandomRotate => SectionKind::Device,
        }
    }
}

/// A checked value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    ClonedMac(ClonedMac),
    /// `wifi.mac-address-randomization`: 0 default, 1 never, 2 always.
    Randomization(u8),
    Text(String),
    Mask(Mask),
    Bool(bool),
    Manage(Manage),
    OnFailure(OnFailure),
    Rotate(Option<Duration>),
}

/// One `[connection*]` or `[device*]` section, checked.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    pub match_device: Option<(MatchList, Origin)>,
    pub stop_match: Option<Origin>,
    pub values: Vec<(Key, Value, Origin)>,
}

impl Section {
    fn value(&self, key: Key) -> Option<(&Value, &Origin)> {
        self.values
            .iter()
            .find(|(candidate, _, _)| *candidate == key)
            .map(|(_, value, origin)| (value, origin))
    }
}

/// The checked sections, each list in priority order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sections {
    pub connection: Vec<Section>,
    pub device: Vec<Section>,
}

/// Checks every section of the merged files. Problems go to `errors` and `warnings`.
pub(crate) fn build_sections(
    merged: &Merged,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigWarning>,
) -> Sections {
    for group in &merged.groups {
        let is_section =
            group.name.starts_with(CONNECTION_PREFIX) || group.name.starts_with(DEVICE_PREFIX);
        if !is_section {
            check_other_group(&group.name, &group.entries, errors, warnings);
        }
    }

    let build = |prefix: &str, kind: SectionKind, errors: &mut _, warnings: &mut _| {
        merged
            .sections(prefix)
            .into_iter()
            .map(|group| build_section(&group.name, &group.entries, kind, errors, warnings))
            .collect()
    };
    Sections {
        connection: build(CONNECTION_PREFIX, SectionKind::Connection, errors, warnings),
        device: build(DEVICE_PREFIX, SectionKind::Device, errors, warnings),
    }
}

fn origin(section: &str, entry: &MergedEntry) -> Origin {
    Origin {
        section: section.to_string(),
        file: entry.file.clone(),
        line: entry.line,
    }
}

/// Checks a group other than `[connection*]` and `[device*]` (`[main]`, `[logging]`, ...).
/// Such groups belong to NetworkManager. Only the keys macveil reads are checked there,
/// because they have no effect in such a group.
fn check_other_group(
    name: &str,
    entries: &[MergedEntry],
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigWarning>,
) {
    for entry in entries {
        if entry.key.starts_with(MACVEIL_KEY_PREFIX) {
            errors.push(misplaced_or_unknown(name, entry));
        } else if let Some(key) = Key::from_name(&entry.key) {
            warnings.push(misplaced_warning(name, entry, key));
        } else {
            log::debug!(
                "{}:{}: ignoring {} in [{name}]: not a key macveil reads",
                entry.file,
                entry.line,
                entry.key
            );
        }
    }
}

fn misplaced_or_unknown(section: &str, entry: &MergedEntry) -> ConfigError {
    match Key::from_name(&entry.key) {
        Some(_) => ConfigError::MisplacedKey {
            file: entry.file.clone(),
            line: entry.line,
            section: section.to_string(),
            key: entry.key.clone(),
        },
        None => ConfigError::UnknownKey {
            file: entry.file.clone(),
            line: entry.line,
            section: section.to_string(),
            key: entry.key.clone(),
        },
    }
}

fn misplaced_warning(section: &str, entry: &MergedEntry, key: Key) -> ConfigWarning {
    let belongs = match key.section_kind() {
        SectionKind::Connection => "[connection] or [connection-NAME]",
        SectionKind::Device => "[device] or [device-NAME]",
    };
    ConfigWarning {
        file: entry.file.clone(),
        line: entry.line,
        message: format!(
            "{} in [{section}] has no effect, in NetworkManager or macveil; move it to a \
             {belongs} section",
            entry.key
        ),
    }
}

fn build_section(
    name: &str,
    entries: &[MergedEntry],
    kind: SectionKind,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigWarning>,
) -> Section {
    let mut section = Section {
        match_device: None,
        stop_match: None,
        values: Vec::new(),
    };

    for entry in entries {
        let here = origin(name, entry);

        if entry.key == MATCH_DEVICE {
            let list = MatchList::parse(&entry.value);
            for problem in list.problems() {
                warnings.push(ConfigWarning {
                    file: entry.file.clone(),
                    line: entry.line,
                    message: format!("{problem} (in [{name}])"),
                });
            }
            section.match_device = Some((list, here));
            continue;
        }

        if entry.key == "stop-match" {
            // NetworkManager reads stop-match from the raw value, without decoding escapes.
            match keyfile::parse_bool(&entry.value) {
                Ok(Some(true)) => section.stop_match = Some(here),
                Ok(Some(false) | None) => {}
                Err(keyfile::NotABool) => {
                    errors.push(value_error(name, entry, &entry.value, bool_problem()))
                }
            }
            continue;
        }

        let Some(key) = Key::from_name(&entry.key) else {
            if entry.key.starts_with(MACVEIL_KEY_PREFIX) {
                errors.push(misplaced_or_unknown(name, entry));
            } else if let Some(known) = near_miss(&entry.key) {
                warnings.push(ConfigWarning {
                    file: entry.file.clone(),
                    line: entry.line,
                    message: format!(
                        "unknown key {} in [{name}] is ignored; did you mean {known}?",
                        quote(&entry.key)
                    ),
                });
            } else {
                log::debug!(
                    "{}:{}: ignoring {} in [{name}]: not a key macveil reads",
                    entry.file,
                    entry.line,
                    entry.key
                );
            }
            continue;
        };

        if key.section_kind() != kind {
            if entry.key.starts_with(MACVEIL_KEY_PREFIX) {
                errors.push(misplaced_or_unknown(name, entry));
            } else {
                warnings.push(misplaced_warning(name, entry, key));
            }
            continue;
        }

        match parse_value(key, &entry.value) {
            Ok((value, notes)) => {
                for note in notes {
                    warnings.push(ConfigWarning {
                        file: entry.file.clone(),
                        line: entry.line,
                        message: format!("{} in [{name}]: {note}", entry.key),
                    });
                }
                section.values.push((key, value, here));
            }
            Err(problem) => errors.push(value_error(name, entry, &entry.value, problem)),
        }
    }
    section
}

/// The reason a value is invalid, and the accepted values.
#[derive(Debug)]
struct ValueProblem {
    reason: Option<String>,
    expected: String,
}

fn bool_problem() -> ValueProblem {
    ValueProblem {
        reason: None,
        expected: BOOL_WORDS.to_string(),
    }
}

fn value_error(
    section: &str,
    entry: &MergedEntry,
    value: &str,
    problem: ValueProblem,
) -> ConfigError {
    ConfigError::Value(Box::new(InvalidValue {
        file: entry.file.clone(),
        line: entry.line,
        section: section.to_string(),
        key: entry.key.clone(),
        value: value.to_string(),
        reason: problem.reason,
        expected: problem.expected,
    }))
}

const CLONED_EXPECTED_ETHERNET: &str =
    "permanent, preserve, random, stable, or a unicast address such as 02:1a:2b:3c:4d:5e";
const CLONED_EXPECTED_WIFI: &str = "permanent, preserve, random, stable, stable-ssid, or a \
                                    unicast address such as 02:1a:2b:3c:4d:5e";
const MASK_EXPECTED: &str = "a mask such as FF:FF:FF:00:00:00, optionally followed by OUIs such \
                             as 00:11:22:00:00:00 (separated by spaces, commas or semicolons)";

/// Checks a raw value. Returns the value and notes worth a warning.
fn parse_value(key: Key, raw: &str) -> Result<(Value, Vec<String>), ValueProblem> {
    let text = unescape(raw).map_err(|err| ValueProblem {
        reason: Some(err.to_string()),
        expected: expected_for(key),
    })?;
    let trailing_note = if text.ends_with(is_glib_space) {
        Some(String::from(
            "the value ends with whitespace, which key files keep as part of the value",
        ))
    } else {
        None
    };
    let problem = |reason: Option<String>| ValueProblem {
        reason: reason.or_else(|| trailing_note.clone()),
        expected: expected_for(key),
    };
    let empty = || {
        problem(Some(String::from(
            "the value is empty; remove the line for the default",
        )))
    };

    let value = match key {
        Key::EthernetClonedMac | Key::WifiClonedMac => {
            let wifi = key == Key::WifiClonedMac;
            let mode = match text.as_str() {
                "" => return Err(empty()),
                "permanent" => ClonedMac::Permanent,
                "preserve" => ClonedMac::Preserve,
                "random" => ClonedMac::Random,
                "stable" => ClonedMac::Stable,
                "stable-ssid" if wifi => ClonedMac::StableSsid,
                "stable-ssid" => {
                    return Err(problem(Some(String::from(
                        "stable-ssid derives the address from the Wi-Fi network name, so it \
                         applies to wifi.cloned-mac-address only",
                    ))));
                }
                other => match MacAddr::parse_assignable(other) {
                    Ok(addr) => ClonedMac::Address(addr),
                    Err(AddrError::Syntax { .. }) => return Err(problem(None)),
                    Err(err) => return Err(problem(Some(err.to_string()))),
                },
            };
            Value::ClonedMac(mode)
        }
        Key::WifiMacRandomization => {
            // NetworkManager reads this deprecated key as an integer from 0 to 2.
            match text.trim_matches(is_glib_space) {
                "" | "0" => Value::Randomization(0),
                "1" => Value::Randomization(1),
                "2" => Value::Randomization(2),
                _ => return Err(problem(None)),
            }
        }
        Key::StableId => {
            if text.is_empty() {
                return Err(empty());
            }
            let mut notes: Vec<String> = unknown_template_variables(&text)
                .into_iter()
                .map(|name| {
                    format!(
                        "${{{name}}} is not a stable-id variable and stays as written; the \
                         variables are ${{CONNECTION}}, ${{BOOT}}, ${{DEVICE}}, ${{MAC}}, \
                         ${{NETWORK_SSID}} and ${{RANDOM}}"
                    )
                })
                .collect();
            // NetworkManager hashes the whitespace too, so it stays, but it is rarely meant.
            notes.extend(
                trailing_note
                    .clone()
                    .map(|note| format!("{note}, and it changes the address")),
            );
            return Ok((Value::Text(text), notes));
        }
        Key::EthernetMask | Key::WifiMask | Key::ScanMask => {
            if text.trim_matches(is_glib_space).is_empty() {
                return Err(empty());
            }
            match Mask::parse(&text) {
                Ok(mask) => Value::Mask(mask),
                Err(err) => return Err(problem(Some(err.to_string()))),
            }
        }
        Key::ScanRandMac => Value::Bool(parse_bool_or(&text, true, key)?),
        Key::ApplyToRunning => Value::Bool(parse_bool_or(&text, false, key)?),
        Key::Manage => {
            let word = text.trim_matches(is_glib_space);
            if word.is_empty() {
                return Err(empty());
            }
            if word.eq_ignore_ascii_case("auto") {
                Value::Manage(Manage::Auto)
            } else {
                match keyfile::parse_bool(word) {
                    Ok(Some(true)) => Value::Manage(Manage::Yes),
                    Ok(Some(false)) => Value::Manage(Manage::No),
                    _ => return Err(problem(None)),
                }
            }
        }
        Key::OnFailure => {
            let word = text.trim_matches(is_glib_space);
            if word.is_empty() {
                return Err(empty());
            }
            if word.eq_ignore_ascii_case("down") {
                Value::OnFailure(OnFailure::Down)
            } else if word.eq_ignore_ascii_case("warn") {
                Value::OnFailure(OnFailure::Warn)
            } else {
                return Err(problem(None));
            }
        }
        Key::RandomRotate => {
            let word = text.trim_matches(is_glib_space);
            if word.is_empty() {
                return Err(empty());
            }
            if !word.bytes().all(|b| b.is_ascii_digit()) {
                return Err(problem(None));
            }
            match word.parse::<u64>() {
                Ok(0) => Value::Rotate(None),
                Ok(secs) if secs < MIN_ROTATE_SECS => {
                    return Err(problem(Some(format!(
                        "each rotation takes the link down, so periods below {MIN_ROTATE_SECS} \
                         seconds are rejected"
                    ))));
                }
                Ok(secs) if secs <= MAX_ROTATE_SECS => {
                    Value::Rotate(Some(Duration::from_secs(secs)))
                }
                _ => return Err(problem(None)),
            }
        }
    };
    Ok((value, Vec::new()))
}

/// Parses a NetworkManager boolean; an empty value means `default`.
fn parse_bool_or(text: &str, default: bool, key: Key) -> Result<bool, ValueProblem> {
    match keyfile::parse_bool(text) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Ok(default),
        Err(keyfile::NotABool) => Err(ValueProblem {
            reason: None,
            expected: expected_for(key),
        }),
    }
}

fn expected_for(key: Key) -> String {
    match key {
        Key::EthernetClonedMac => CLONED_EXPECTED_ETHERNET.to_string(),
        Key::WifiClonedMac => CLONED_EXPECTED_WIFI.to_string(),
        Key::WifiMacRandomization => String::from("0 (default), 1 (never) or 2 (always)"),
        Key::StableId => String::from(
            "a template such as ${CONNECTION}/${BOOT}, using ${CONNECTION}, ${BOOT}, ${DEVICE}, \
             ${MAC}, ${NETWORK_SSID} or ${RANDOM}",
        ),
        Key::EthernetMask | Key::WifiMask | Key::ScanMask => MASK_EXPECTED.to_string(),
        Key::ScanRandMac | Key::ApplyToRunning => BOOL_WORDS.to_string(),
        Key::Manage => format!("auto, or a boolean: {BOOL_WORDS}"),
        Key::OnFailure => String::from("down or warn"),
        Key::RandomRotate => format!(
            "0 (no rotation) or a number of seconds from {MIN_ROTATE_SECS} to {MAX_ROTATE_SECS}"
        ),
    }
}

/// The `${NAME}` variables of a stable-id template that NetworkManager does not substitute.
/// `$$` stands for a literal `$`.
fn unknown_template_variables(template: &str) -> Vec<String> {
    const KNOWN: [&str; 6] = [
        "CONNECTION",
        "BOOT",
        "DEVICE",
        "MAC",
        "NETWORK_SSID",
        "RANDOM",
    ];
    let mut unknown = Vec::new();
    let mut rest = template;
    while let Some(position) = rest.find('$') {
        let after = &rest[position + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            rest = stripped;
            continue;
        }
        if let Some(body) = after.strip_prefix('{')
            && let Some(end) = body.find('}')
        {
            let name = &body[..end];
            if !KNOWN.contains(&name) {
                unknown.push(name.to_string());
            }
            rest = &body[end + 1..];
            continue;
        }
        rest = after;
    }
    unknown
}

/// A known key within two edits of `key`, so that a typo in a MAC key is not silently
/// ignored.
fn near_miss(key: &str) -> Option<&'static str> {
    KEYS.into_iter()
        .map(Key::name)
        .filter(|known| !known.starts_with(MACVEIL_KEY_PREFIX))
        .find(|known| edit_distance(key, known) <= 2)
}

/// The Levenshtein distance between two strings, counted in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// The result of looking a key up in one list of sections.
enum Lookup<'a> {
    /// A matching section set the key.
    Found(&'a Value, &'a Origin, &'a Section),
    /// A matching section with `stop-match=yes` ended the search without the key.
    Stopped(&'a Origin),
    /// No section decided.
    Missing,
}

fn lookup<'a>(sections: &'a [Section], key: Key, subject: &MatchSubject<'_>) -> Lookup<'a> {
    for section in sections {
        let value = section.value(key);
        if value.is_none() && section.stop_match.is_none() {
            continue;
        }
        let matches = match &section.match_device {
            Some((list, _)) => list.matches(subject),
            None => true,
        };
        if !matches {
            continue;
        }
        return match (value, &section.stop_match) {
            (Some((value, origin)), _) => Lookup::Found(value, origin, section),
            (None, Some(stop)) => Lookup::Stopped(stop),
            (None, None) => Lookup::Missing,
        };
    }
    Lookup::Missing
}

/// Resolves one key to a setting, using `extract` to take the typed value and `default`
/// when no section decides.
fn resolve<T>(
    sections: &[Section],
    key: Key,
    subject: &MatchSubject<'_>,
    default: T,
    extract: impl Fn(&Value) -> Option<T>,
) -> Setting<T> {
    match lookup(sections, key, subject) {
        Lookup::Found(value, origin, _) => match extract(value) {
            Some(value) => Setting {
                value,
                source: Source::Configured(origin.clone()),
            },
            None => unreachable!("{} holds a value of another type: {value:?}", key.name()),
        },
        Lookup::Stopped(origin) => Setting {
            value: default,
            source: Source::StoppedAt(origin.clone()),
        },
        Lookup::Missing => Setting {
            value: default,
            source: Source::Default,
        },
    }
}

impl Sections {
    /// Resolves the policy of one link.
    pub fn policy_for(&self, link: &LinkFacts, dhcp_plugin: &str) -> LinkPolicy {
        let subject = MatchSubject {
            interface_name: &link.name,
            device_type: link.kind.as_str(),
            driver: link.driver.as_deref(),
            driver_version: link.driver_version.as_deref(),
            hwaddr: link.permanent.or(link.current),
            dhcp_plugin,
        };
        let wifi = link.kind.is_wifi();
        let (cloned_key, mask_key) = if wifi {
            (Key::WifiClonedMac, Key::WifiMask)
        } else {
            (Key::EthernetClonedMac, Key::EthernetMask)
        };

        let cloned_mac_address = self.cloned_mac_address(cloned_key, wifi, &subject);
        let selected_by = match lookup(&self.connection, cloned_key, &subject) {
            Lookup::Found(_, origin, section) if section.match_device.is_some() => {
                Some(origin.clone())
            }
            _ => None,
        };

        let stable_id = resolve(
            &self.connection,
            Key::StableId,
            &subject,
            None,
            |value| match value {
                Value::Text(text) => Some(Some(text.clone())),
                _ => None,
            },
        );
        let generate_mac_address_mask =
            resolve(&self.connection, mask_key, &subject, None, mask_value);

        let boolean = |value: &Value| match value {
            Value::Bool(flag) => Some(*flag),
            _ => None,
        };
        let (scan_rand_mac_address, scan_generate_mac_address_mask) = if wifi {
            (
                Some(resolve(
                    &self.device,
                    Key::ScanRandMac,
                    &subject,
                    true,
                    boolean,
                )),
                Some(resolve(
                    &self.device,
                    Key::ScanMask,
                    &subject,
                    None,
                    mask_value,
                )),
            )
        } else {
            (None, None)
        };

        let manage = resolve(
            &self.device,
            Key::Manage,
            &subject,
            Manage::Auto,
            |value| match value {
                Value::Manage(manage) => Some(*manage),
                _ => None,
            },
        );
        let on_failure = resolve(
            &self.device,
            Key::OnFailure,
            &subject,
            OnFailure::Down,
            |value| match value {
                Value::OnFailure(mode) => Some(*mode),
                _ => None,
            },
        );
        let apply_to_running = resolve(&self.device, Key::ApplyToRunning, &subject, false, boolean);
        let random_rotate =
            resolve(
                &self.device,
                Key::RandomRotate,
                &subject,
                None,
                |value| match value {
                    Value::Rotate(period) => Some(*period),
                    _ => None,
                },
            );

        let (managed, reason) = decide_managed(link, &manage, selected_by);
        LinkPolicy {
            managed,
            reason,
            wifi,
            cloned_mac_address,
            stable_id,
            generate_mac_address_mask,
            scan_rand_mac_address,
            scan_generate_mac_address_mask,
            on_failure,
            apply_to_running,
            random_rotate,
        }
    }

    /// `*.cloned-mac-address`, with NetworkManager's fallback for Wi-Fi: when no section sets
    /// `wifi.cloned-mac-address`, the deprecated `wifi.mac-address-randomization=2` means
    /// `random`.
    fn cloned_mac_address(
        &self,
        key: Key,
        wifi: bool,
        subject: &MatchSubject<'_>,
    ) -> Setting<ClonedMac> {
        let setting = resolve(
            &self.connection,
            key,
            subject,
            ClonedMac::Preserve,
            |value| match value {
                Value::ClonedMac(mode) => Some(*mode),
                _ => None,
            },
        );
        if !wifi || matches!(setting.source, Source::Configured(_)) {
            return setting;
        }
        match lookup(&self.connection, Key::WifiMacRandomization, subject) {
            Lookup::Found(Value::Randomization(2), origin, _) => Setting {
                value: ClonedMac::Random,
                source: Source::Configured(origin.clone()),
            },
            _ => setting,
        }
    }
}

fn mask_value(value: &Value) -> Option<Option<Mask>> {
    match value {
        Value::Mask(mask) => Some(Some(mask.clone())),
        _ => None,
    }
}

fn decide_managed(
    link: &LinkFacts,
    manage: &Setting<Manage>,
    selected_by: Option<Origin>,
) -> (bool, ManageReason) {
    if link.kind == super::link::LinkKind::Loopback {
        return (false, ManageReason::Loopback);
    }
    if link.current.is_none() && link.permanent.is_none() {
        return (false, ManageReason::NoHardwareAddress);
    }

    if let Source::Configured(origin) = &manage.source {
        match manage.value {
            Manage::Yes => return (true, ManageReason::Configured(origin.clone())),
            Manage::No => return (false, ManageReason::Configured(origin.clone())),
            Manage::Auto => {}
        }
    }

    if link.is_physical() {
        let subsystem = link
            .device
            .as_ref()
            .and_then(|device| device.subsystem.clone());
        return (true, ManageReason::Physical { subsystem });
    }
    if let Some(origin) = selected_by {
        return (true, ManageReason::Selected(origin));
    }
    if link.is_xen_backend() {
        return (false, ManageReason::XenBackend);
    }
    (
        false,
        ManageReason::Virtual {
            kind: link.kind.to_string(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_variables_are_checked() {
        assert!(unknown_template_variables("${CONNECTION}/${BOOT}").is_empty());
        assert!(unknown_template_variables("$${NOPE}").is_empty());
        assert_eq!(
            unknown_template_variables("${CONECTION}-${BOOT}"),
            ["CONECTION"]
        );
        assert!(unknown_template_variables("plain $ text ${unclosed").is_empty());
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("abc", "abd"), 1);
        assert_eq!(edit_distance("abc", "ab"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn near_miss_finds_misspelt_mac_keys() {
        assert_eq!(
            near_miss("ethernet.cloned-mac-adress"),
            Some("ethernet.cloned-mac-address")
        );
        assert_eq!(
            near_miss("wifi.clone-mac-address"),
            Some("wifi.cloned-mac-address")
        );
        assert_eq!(near_miss("ipv4.route-metric"), None);
        assert_eq!(near_miss("ethernet.wake-on-lan"), None);
    }

    #[test]
    fn rotate_bounds() {
        assert_eq!(
            parse_value(Key::RandomRotate, "0").unwrap().0,
            Value::Rotate(None)
        );
        assert_eq!(
            parse_value(Key::RandomRotate, "3600").unwrap().0,
            Value::Rotate(Some(Duration::from_secs(3600)))
        );
        for bad in ["59", "1h", "-1", "31536001", "99999999999999999999999"] {
            assert!(parse_value(Key::RandomRotate, bad).is_err(), "{bad}");
        }
    }
}
