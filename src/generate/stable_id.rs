//! NetworkManager's `connection.stable-id`: the type of stable id a template gives, the expansion
//! of its `${...}` placeholders, and the final stable id string that is hashed into an address.
//!
//! The rules are those of NetworkManager's `nm_utils_stable_id_parse()`, `_stable_id_append()`,
//! `nm_utils_stable_id_generated_complete()` and `nm_utils_stable_id_random()`
//! (`src/core/nm-core-utils.c`) and `_prop_get_connection_stable_id()`
//! (`src/core/devices/nm-device.c`), and they are checked against NetworkManager's own unit-test
//! vectors in `tests/data/`:
//!
//! | template | type | stable id |
//! |---|---|---|
//! | unset, or exactly `default${CONNECTION}` | UUID (0) | the connection UUID |
//! | no recognized placeholder | STABLE_ID (1) | the template itself, `$$` included |
//! | recognized placeholders, no `${RANDOM}` | GENERATED (2) | SHA-1 of the expansion in base64, trailing `=` dropped (27 characters) |
//! | any `${RANDOM}` | RANDOM (3) | base64 of 15 fresh random bytes, new for every activation |
//!
//! The expansion copies the template from left to right. Each recognized placeholder is kept
//! and followed by `=<byte length>{value}`, so that no two different templates or value sets
//! give the same expansion. A `$` that starts no placeholder is copied as it is, and `$$` is
//! copied as it is and keeps the second `$` from starting a placeholder.
//!
//! The values are those NetworkManager substitutes:
//!
//! - `${CONNECTION}`: the connection UUID;
//! - `${BOOT}`: the boot id as a lower-case UUID;
//! - `${DEVICE}`: the interface name;
//! - `${MAC}`: the permanent address in upper-case colon form, empty when it is unknown;
//! - `${NETWORK_SSID}`: `s:` and the escaped SSID on Wi-Fi, otherwise `c:` and the connection
//!   UUID.
//!
//! This module neither reads secret keys nor hashes addresses; `stable` does that.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

use crate::addr::MacAddr;
use crate::encoding::base64_padded;
use crate::rng::{RandomError, RandomSource};

/// The kernel's random id of the current boot.
pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// The template NetworkManager uses when `connection.stable-id` and its global default are unset.
pub const DEFAULT_TEMPLATE: &str = "default${CONNECTION}";

/// The random bytes in a RANDOM stable id, as in NetworkManager.
const RANDOM_ID_BYTES: usize = 15;

/// The kind of a stable id, NetworkManager's "stable type". Its number is hashed into the
/// address, so it must never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StableIdType {
    /// The connection UUID (NetworkManager's `NM_UTILS_STABLE_TYPE_UUID`).
    Uuid = 0,
    /// A template without placeholders, used verbatim (`NM_UTILS_STABLE_TYPE_STABLE_ID`).
    StableId = 1,
    /// The hash of an expanded template (`NM_UTILS_STABLE_TYPE_GENERATED`).
    Generated = 2,
    /// A random id for each activation (`NM_UTILS_STABLE_TYPE_RANDOM`).
    Random = 3,
}

impl StableIdType {
    /// Returns the byte that starts the address hash.
    pub fn as_byte(self) -> u8 {
        self as u8
    }

    /// Converts NetworkManager's numeric type.
    pub fn from_number(number: u8) -> Option<StableIdType> {
        match number {
            0 => Some(StableIdType::Uuid),
            1 => Some(StableIdType::StableId),
            2 => Some(StableIdType::Generated),
            3 => Some(StableIdType::Random),
            _ => None,
        }
    }
}

impl fmt::Display for StableIdType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StableIdType::Uuid => "uuid",
            StableIdType::StableId => "stable-id",
            StableIdType::Generated => "generated",
            StableIdType::Random => "random",
        })
    }
}

/// A placeholder that a template can contain, `${RANDOM}` aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// `${CONNECTION}`: the connection UUID.
    Connection,
    /// `${BOOT}`: the boot id.
    Boot,
    /// `${DEVICE}`: the interface name.
    Device,
    /// `${MAC}`: the permanent address.
    Mac,
    /// `${NETWORK_SSID}`: the Wi-Fi network, or the connection.
    NetworkSsid,
}

impl Placeholder {
    const ALL: [Placeholder; 5] = [
        Placeholder::Connection,
        Placeholder::Boot,
        Placeholder::Device,
        Placeholder::Mac,
        Placeholder::NetworkSsid,
    ];

    /// Returns the placeholder as written in a template.
    pub fn pattern(self) -> &'static str {
        match self {
            Placeholder::Connection => "${CONNECTION}",
            Placeholder::Boot => "${BOOT}",
            Placeholder::Device => "${DEVICE}",
            Placeholder::Mac => "${MAC}",
            Placeholder::NetworkSsid => "${NETWORK_SSID}",
        }
    }
}

const RANDOM_PATTERN: &str = "${RANDOM}";

/// A template after classification, with the expansion of a GENERATED one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expansion {
    /// The template is unset or `default${CONNECTION}`.
    Uuid,
    /// The template contains no placeholder.
    StableId,
    /// The expanded template, before hashing.
    Generated(String),
    /// The template contains `${RANDOM}`.
    Random,
}

impl Expansion {
    /// Returns the stable id type this expansion gives.
    pub fn stable_id_type(&self) -> StableIdType {
        match self {
            Expansion::Uuid => StableIdType::Uuid,
            Expansion::StableId => StableIdType::StableId,
            Expansion::Generated(_) => StableIdType::Generated,
            Expansion::Random => StableIdType::Random,
        }
    }
}

/// The result of a left-to-right scan of a template.
enum Scan {
    /// The template contains `${RANDOM}`.
    Random,
    /// Each recognized placeholder and the byte offset just after it.
    Placeholders(Vec<(Placeholder, usize)>),
}

/// Scans `template` as NetworkManager does: a `$` that starts no placeholder is skipped, and a
/// second `$` right after it is skipped too.
fn scan(template: &str) -> Scan {
    let bytes = template.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;

    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }

        // `i` is at an ASCII '$', so it is a character boundary.
        let rest = &template[i..];
        if let Some(placeholder) = Placeholder::ALL
            .into_iter()
            .find(|p| rest.starts_with(p.pattern()))
        {
            i += placeholder.pattern().len();
            found.push((placeholder, i));
        } else if rest.starts_with(RANDOM_PATTERN) {
            return Scan::Random;
        } else {
            i += 1;
            if bytes.get(i) == Some(&b'$') {
                i += 1;
            }
        }
    }

    Scan::Placeholders(found)
}

/// Returns whether the address of `template` depends on the Wi-Fi network (`${NETWORK_SSID}`)
/// or changes at each activation (`${RANDOM}`), read as NetworkManager reads templates.
pub fn depends_on_network_or_activation(template: Option<&str>) -> bool {
    let Some(template) = template else {
        return false;
    };
    match scan(template) {
        Scan::Random => true,
        Scan::Placeholders(found) => found
            .iter()
            .any(|(placeholder, _)| *placeholder == Placeholder::NetworkSsid),
    }
}

/// Classifies `template` and, for a GENERATED one, expands it.
///
/// `value_of` supplies each placeholder's value; `None` stands for a value that is not known,
/// which NetworkManager substitutes as the empty string. It is called only for placeholders the
/// template uses, once per occurrence, and never for a RANDOM template.
pub fn expand<E>(
    template: Option<&str>,
    mut value_of: impl FnMut(Placeholder) -> Result<Option<String>, E>,
) -> Result<Expansion, E> {
    let template = match template {
        None => return Ok(Expansion::Uuid),
        Some(DEFAULT_TEMPLATE) => return Ok(Expansion::Uuid),
        Some(template) => template,
    };

    let placeholders = match scan(template) {
        Scan::Random => return Ok(Expansion::Random),
        Scan::Placeholders(placeholders) if placeholders.is_empty() => {
            return Ok(Expansion::StableId);
        }
        Scan::Placeholders(placeholders) => placeholders,
    };

    let mut expanded = String::with_capacity(template.len() * 2);
    let mut copied_up_to = 0;
    for (placeholder, end) in placeholders {
        expanded.push_str(&template[copied_up_to..end]);
        copied_up_to = end;

        let value = value_of(placeholder)?.unwrap_or_default();
        expanded.push_str(&format!("={}{{{value}}}", value.len()));
    }
    expanded.push_str(&template[copied_up_to..]);

    Ok(Expansion::Generated(expanded))
}

/// Hashes an expanded template into its 27-character stable id: SHA-1, base64, trailing `=`
/// dropped.
pub fn generated_complete(expansion: &str) -> String {
    let digest = Sha1::digest(expansion.as_bytes());
    let mut encoded = base64_padded(&digest);
    // 20 bytes encode to 27 characters and one padding '='.
    encoded.truncate(27);
    encoded
}

/// Draws a RANDOM stable id: base64 of 15 random bytes (20 characters, no padding).
pub fn random_id(rng: &mut dyn RandomSource) -> Result<String, RandomError> {
    let mut bytes = [0u8; RANDOM_ID_BYTES];
    rng.fill(&mut bytes)?;
    Ok(base64_padded(&bytes))
}

/// A stable id and its type, the two inputs of the address hash besides the host id and the
/// interface name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StableId {
    /// The kind of id.
    pub kind: StableIdType,
    /// The id string that is hashed.
    pub id: String,
}

/// Computes the stable id for `template` as NetworkManager does at activation.
///
/// `connection` is the connection UUID, the stable id of a UUID template. `value_of` supplies
/// placeholder values as in [`expand`]. A RANDOM template draws a new id from `rng` on every
/// call, as NetworkManager does on every activation.
pub fn resolve<E: From<RandomError>>(
    template: Option<&str>,
    connection: &str,
    value_of: impl FnMut(Placeholder) -> Result<Option<String>, E>,
    rng: &mut dyn RandomSource,
) -> Result<StableId, E> {
    let expansion = expand(template, value_of)?;
    let kind = expansion.stable_id_type();
    let id = match expansion {
        Expansion::Uuid => connection.to_string(),
        Expansion::StableId => template.unwrap_or_default().to_string(),
        Expansion::Generated(expanded) => generated_complete(&expanded),
        Expansion::Random => random_id(rng)?,
    };
    Ok(StableId { kind, id })
}

/// Formats the permanent address as the `${MAC}` value: upper-case colon form, as
/// NetworkManager's `nm_utils_hwaddr_ntoa()` prints it.
pub fn mac_value(permanent: MacAddr) -> String {
    permanent.to_string().to_ascii_uppercase()
}

/// Builds the `${NETWORK_SSID}` value: `s:` and the escaped SSID, or `c:` and the connection UUID
/// when there is no SSID.
pub fn network_ssid_value(ssid: Option<&[u8]>, connection: &str) -> String {
    match ssid {
        Some(ssid) => format!("s:{}", escape_ssid(ssid)),
        None => format!("c:{connection}"),
    }
}

/// Escapes SSID bytes as NetworkManager's `nm_utils_buf_utf8safe_escape()` does with
/// `NM_UTILS_STR_UTF8_SAFE_FLAG_ESCAPE_CTRL`: a backslash becomes `\\`, and control characters,
/// DEL and every byte of an invalid UTF-8 sequence become a three-digit octal escape such as
/// `\012`. Valid UTF-8 is kept.
///
/// NOTE: NetworkManager's source for `${NETWORK_SSID}` was not available when this was written.
/// The rules above reproduce its test vectors (an invalid byte and a newline), but whether it
/// also escapes valid non-ASCII UTF-8 (`ESCAPE_NON_ASCII`) is unverified.
pub fn escape_ssid(ssid: &[u8]) -> String {
    let mut escaped = String::with_capacity(ssid.len());
    let mut rest = ssid;

    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                push_escaped_text(&mut escaped, valid);
                break;
            }
            Err(err) => {
                let (valid, invalid) = rest.split_at(err.valid_up_to());
                let valid = std::str::from_utf8(valid).expect("prefix validated by from_utf8");
                push_escaped_text(&mut escaped, valid);

                // GLib escapes the first byte of an invalid sequence and validates again from
                // the next byte, so each invalid byte gets its own escape.
                push_octal(&mut escaped, invalid[0]);
                rest = &invalid[1..];
            }
        }
    }

    escaped
}

fn push_escaped_text(escaped: &mut String, text: &str) {
    for ch in text.chars() {
        match ch {
            '\\' => escaped.push_str("\\\\"),
            '\0'..='\x1f' | '\x7f' => push_octal(escaped, ch as u8),
            _ => escaped.push(ch),
        }
    }
}

fn push_octal(escaped: &mut String, byte: u8) {
    escaped.push_str(&format!("\\{byte:03o}"));
}

/// Parses a UUID in its 36-character hyphenated form, in any case, and formats it in lower case,
/// as NetworkManager normalizes UUIDs.
pub fn canonical_uuid(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    for (i, byte) in bytes.iter().enumerate() {
        let valid = match i {
            8 | 13 | 18 | 23 => *byte == b'-',
            _ => byte.is_ascii_hexdigit(),
        };
        if !valid {
            return None;
        }
    }
    Some(text.to_ascii_lowercase())
}

/// Formats 16 bytes as a lower-case hyphenated UUID.
pub fn format_uuid(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hyphenate_uuid(&hex)
}

/// Inserts the dashes of the 8-4-4-4-12 UUID form into 32 hexadecimal digits.
///
/// # Panics
///
/// When `hex` is shorter than 32 bytes or a group boundary is not a character boundary, which
/// cannot happen for ASCII hexadecimal digits.
pub(crate) fn hyphenate_uuid(hex: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Failure to read the boot id.
#[derive(Debug, thiserror::Error)]
pub enum BootIdError {
    /// The boot id file cannot be read.
    #[error("cannot read the boot id from {}; give it with --boot-id ID", path.display())]
    Unreadable {
        /// The file path.
        path: PathBuf,
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// The file does not contain a UUID.
    #[error("{} does not contain a UUID; give the boot id with --boot-id ID", path.display())]
    Invalid {
        /// The file path.
        path: PathBuf,
    },
}

/// Reads the boot id for `${BOOT}` from `path` (normally [`BOOT_ID_PATH`]) as a lower-case UUID.
///
/// NetworkManager falls back to a random UUID when the file is unusable. This function fails
/// instead, because a silently random `${BOOT}` would change the address on every run.
pub fn read_boot_id(path: &Path) -> Result<String, BootIdError> {
    let content = fs::read_to_string(path).map_err(|source| BootIdError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    canonical_uuid(content.trim()).ok_or_else(|| BootIdError::Invalid {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::FixedRandom;
    use std::convert::Infallible;

    fn values(placeholder: Placeholder) -> Result<Option<String>, Infallible> {
        Ok(Some(
            match placeholder {
                Placeholder::Connection => "C",
                Placeholder::Boot => "BB",
                Placeholder::Device => "DDD",
                Placeholder::Mac => "MMMM",
                Placeholder::NetworkSsid => "s:net",
            }
            .to_string(),
        ))
    }

    fn fallible_values(placeholder: Placeholder) -> Result<Option<String>, RandomError> {
        Ok(values(placeholder).unwrap())
    }

    fn expand_with_values(template: &str) -> Expansion {
        expand(Some(template), values).unwrap()
    }

    #[test]
    fn unset_and_default_templates_are_uuid() {
        assert_eq!(expand(None, values).unwrap(), Expansion::Uuid);
        assert_eq!(expand_with_values("default${CONNECTION}"), Expansion::Uuid);
        // Only the exact default string is special.
        assert_eq!(
            expand_with_values("default${CONNECTION} "),
            Expansion::Generated("default${CONNECTION}=1{C} ".to_string())
        );
    }

    #[test]
    fn expansion_keeps_dollar_escapes_verbatim() {
        assert_eq!(
            expand_with_values("$$${DEVICE}$"),
            Expansion::Generated("$$${DEVICE}=3{DDD}$".to_string())
        );
        assert_eq!(expand_with_values("$${DEVICE}"), Expansion::StableId);
        assert_eq!(expand_with_values("$${RANDOM}"), Expansion::StableId);
        assert_eq!(expand_with_values("${device}"), Expansion::StableId);
    }

    #[test]
    fn random_wins_over_earlier_placeholders() {
        let mut calls = 0;
        let expansion = expand(Some("${BOOT}${RANDOM}${MAC}"), |p| {
            calls += 1;
            values(p)
        })
        .unwrap();
        assert_eq!(expansion, Expansion::Random);
        assert_eq!(calls, 0, "a RANDOM template needs no values");
    }

    #[test]
    fn unknown_value_expands_empty() {
        let expansion = expand(Some("${MAC}"), |_| Ok::<_, Infallible>(None)).unwrap();
        assert_eq!(expansion, Expansion::Generated("${MAC}=0{}".to_string()));
    }

    #[test]
    fn value_length_counts_bytes() {
        let expansion = expand(Some("${DEVICE}"), |_| {
            Ok::<_, Infallible>(Some("é".to_string()))
        })
        .unwrap();
        assert_eq!(
            expansion,
            Expansion::Generated("${DEVICE}=2{é}".to_string())
        );
    }

    #[test]
    fn value_errors_propagate() {
        let result = expand(Some("x${BOOT}"), |_| Err::<Option<String>, _>("no boot id"));
        assert_eq!(result, Err("no boot id"));
    }

    #[test]
    fn resolve_gives_id_for_each_type() {
        let mut rng = FixedRandom::new(vec![0]);
        let uuid = resolve(None, "conn-uuid", fallible_values, &mut rng).unwrap();
        assert_eq!(
            uuid,
            StableId {
                kind: StableIdType::Uuid,
                id: "conn-uuid".into()
            }
        );

        let literal = resolve(Some("a$$b"), "c", fallible_values, &mut rng).unwrap();
        assert_eq!(
            literal,
            StableId {
                kind: StableIdType::StableId,
                id: "a$$b".into()
            }
        );

        let generated = resolve(Some("${CONNECTION}"), "c", fallible_values, &mut rng).unwrap();
        assert_eq!(generated.kind, StableIdType::Generated);
        assert_eq!(generated.id, generated_complete("${CONNECTION}=1{C}"));
        assert_eq!(generated.id.len(), 27);

        let random =
            resolve::<RandomError>(Some("${RANDOM}"), "c", |_| Ok(None), &mut rng).unwrap();
        assert_eq!(random.kind, StableIdType::Random);
        assert_eq!(random.id, "AAAAAAAAAAAAAAAAAAAA");
    }

    #[test]
    fn random_id_is_twenty_base64_chars() {
        let id = random_id(&mut crate::rng::OsRandom).unwrap();
        assert_eq!(id.len(), 20);
        assert!(!id.contains('='));
        assert_ne!(id, random_id(&mut crate::rng::OsRandom).unwrap());
    }

    #[test]
    fn escape_ssid_follows_utf8safe_rules() {
        assert_eq!(escape_ssid(b"fake net"), "fake net");
        assert_eq!(escape_ssid(b"foo\n"), "foo\\012");
        assert_eq!(escape_ssid(b"SSID(\x82)"), "SSID(\\202)");
        assert_eq!(escape_ssid(b"a\\b"), "a\\\\b");
        assert_eq!(escape_ssid(b"\x00\x1f\x7f"), "\\000\\037\\177");
        assert_eq!(escape_ssid("café".as_bytes()), "café");
        // A truncated three-byte sequence: each byte is escaped on its own.
        assert_eq!(escape_ssid(b"\xe2\x82A"), "\\342\\202A");
        // A UTF-16 surrogate encoded in UTF-8 is invalid for GLib and for Rust.
        assert_eq!(escape_ssid(b"\xed\xa0\x80"), "\\355\\240\\200");
    }

    #[test]
    fn network_ssid_value_falls_back_to_connection() {
        assert_eq!(network_ssid_value(Some(b"foo\n"), "u"), "s:foo\\012");
        assert_eq!(network_ssid_value(None, "uuid-1"), "c:uuid-1");
    }

    #[test]
    fn mac_value_is_upper_case() {
        let addr: MacAddr = "3c:22:fb:0a:bc:de".parse().unwrap();
        assert_eq!(mac_value(addr), "3C:22:FB:0A:BC:DE");
    }

    #[test]
    fn canonical_uuid_lowercases_valid_uuids_only() {
        assert_eq!(
            canonical_uuid("5B2A1C3E-0F4D-4C1E-9D3A-2A6F0E7B8C9D").as_deref(),
            Some("5b2a1c3e-0f4d-4c1e-9d3a-2a6f0e7b8c9d")
        );
        for bad in [
            "",
            "5b2a1c3e0f4d4c1e9d3a2a6f0e7b8c9d",
            "5b2a1c3e-0f4d-4c1e-9d3a-2a6f0e7b8c9g",
        ] {
            assert!(canonical_uuid(bad).is_none(), "accepted {bad:?}");
        }
    }

    #[test]
    fn format_uuid_groups_hex() {
        let bytes: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(format_uuid(&bytes), "00010203-0405-0607-0809-0a0b0c0d0e0f");
    }

    #[test]
    fn read_boot_id_normalizes_and_rejects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot_id");
        fs::write(&path, "0A1B2C3D-0000-4000-8000-00000000ABCD\n").unwrap();
        assert_eq!(
            read_boot_id(&path).unwrap(),
            "0a1b2c3d-0000-4000-8000-00000000abcd"
        );

        fs::write(&path, "garbage\n").unwrap();
        assert!(matches!(
            read_boot_id(&path),
            Err(BootIdError::Invalid { .. })
        ));
        let missing = dir.path().join("missing");
        assert!(matches!(
            read_boot_id(&missing),
            Err(BootIdError::Unreadable { .. })
        ));
    }

    #[test]
    fn read_boot_id_from_kernel() {
        let id = read_boot_id(Path::new(BOOT_ID_PATH)).unwrap();
        assert_eq!(canonical_uuid(&id).as_deref(), Some(id.as_str()));
    }
}
