//! The keys macveil reads and the checks on their values, and the checked sections built from
//! the merged files.
//!
//! Values are checked when the configuration is loaded, not when a link needs them, so that a
//! bad value in a section that matches no link today is still an error. Keys NetworkManager
//! defines and macveil does not read are skipped here (logged at debug level).

use std::time::Duration;

use super::files::{CONNECTION_PREFIX, DEVICE_PREFIX, MATCH_DEVICE, Merged, MergedEntry};
use super::keyfile::{self, BOOL_WORDS, is_glib_space, quote, unescape};
use super::matching::MatchList;
use super::policy::{ClonedMac, Manage, OnFailure, Origin, WifiConnect};
use super::{ConfigError, ConfigWarning, InvalidValue, MACVEIL_KEY_PREFIX};
use crate::addr::{AddrError, MacAddr};
use crate::generate::mask::Mask;

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
    WifiConnect,
}

const KEYS: [Key; 13] = [
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
    Key::WifiConnect,
];

/// macveil's own keys, listed in error messages.
pub(crate) const MACVEIL_KEYS: &str = "macveil.manage, macveil.on-failure, macveil.apply-to-running, macveil.random-rotate and \
     macveil.wifi-connect";

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
            Key::WifiConnect => "macveil.wifi-connect",
        }
    }

    fn from_name(name: &str) -> Option<Key> {
        KEYS.into_iter().find(|key| key.name() == name)
    }

    /// Returns the sections the key belongs in, for messages.
    fn sections(self) -> &'static str {
        match self.section_kind() {
            SectionKind::Connection => "[connection] or [connection-NAME]",
            SectionKind::Device => "[device] or [device-NAME]",
        }
    }

    fn section_kind(self) -> SectionKind {
        match self {
            Key::EthernetClonedMac
            | Key::WifiClonedMac
            | Key::WifiMacRandomization
            | Key::StableId
            | Key::EthernetMask
            | Key::WifiMask
            | Key::WifiConnect => SectionKind::Connection,
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
    WifiConnect(WifiConnect),
}

/// One `[connection*]` or `[device*]` section, checked.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    pub match_device: Option<(MatchList, Origin)>,
    pub stop_match: Option<Origin>,
    pub values: Vec<(Key, Value, Origin)>,
}

impl Section {
    pub fn value(&self, key: Key) -> Option<(&Value, &Origin)> {
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
        Some(key) => ConfigError::MisplacedKey {
            file: entry.file.clone(),
            line: entry.line,
            section: section.to_string(),
            key: entry.key.clone(),
            belongs: key.sections(),
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
    let belongs = key.sections();
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

/// Below this many generated bits a mask gets a warning: with at most 2^15 possible addresses,
/// random addresses are likely to repeat within a few hundred activations (birthday bound).
const FEW_GENERATED_BITS: u32 = 16;

/// Explains a mask that leaves the generator too little to choose.
fn mask_notes(mask: &Mask) -> Option<String> {
    let bits = mask.generated_bits();
    if bits == 0 && mask.ouis.is_empty() && mask.covers_local_bit() {
        return Some(String::from(
            "the mask covers every bit and lists no OUI, so every generated address is the \
             link's own address; the daemon keeps such links down",
        ));
    }
    if bits == 0 && mask.ouis.is_empty() {
        return Some(String::from(
            "the mask covers every bit but the locally administered one and lists no OUI, so \
             every generated address reveals the link's own address",
        ));
    }
    if bits == 0 {
        return Some(String::from(
            "the mask covers every bit, so every generated address is one of the listed \
             addresses",
        ));
    }
    (bits < FEW_GENERATED_BITS).then(|| {
        format!("the mask leaves only {bits} bits to the generator, so at most {} addresses are possible", 1u64 << bits)
    })
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
                             as 00:11:22:00:00:00, separated by spaces";

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
                Ok(mask) => {
                    let notes = mask_notes(&mask).into_iter().collect();
                    return Ok((Value::Mask(mask), notes));
                }
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
        Key::WifiConnect => {
            let word = text.trim_matches(is_glib_space);
            if word.is_empty() {
                return Err(empty());
            }
            if word.eq_ignore_ascii_case("auto") {
                Value::WifiConnect(WifiConnect::Auto)
            } else {
                match keyfile::parse_bool(word) {
                    Ok(Some(false)) => Value::WifiConnect(WifiConnect::No),
                    _ => return Err(problem(None)),
                }
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
        Key::WifiConnect => String::from("auto or no"),
    }
}

/// Lists the `${NAME}` variables of a stable-id template that NetworkManager does not
/// substitute. `$$` is a literal `$`.
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

/// Finds a known key within two edits of `key`, so that a typo in a MAC key is not silently
/// ignored.
fn near_miss(key: &str) -> Option<&'static str> {
    KEYS.into_iter()
        .map(Key::name)
        .filter(|known| !known.starts_with(MACVEIL_KEY_PREFIX))
        .find(|known| edit_distance(key, known) <= 2)
}

/// Computes the Levenshtein distance between two strings, counted in characters.
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
