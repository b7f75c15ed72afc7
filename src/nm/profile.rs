//! NetworkManager connection profiles in the keyfile format (`*.nmconnection`), reduced to the
//! settings that decide what a profile reveals: its MAC address policy, its stable id, and what
//! it sends in DHCP.
//!
//! The keyfile plugin reads three folders (nm-settings-keyfile(5)): `/run/NetworkManager/
//! system-connections` (in-memory profiles), `/etc/NetworkManager/system-connections` and
//! `/usr/lib/NetworkManager/system-connections` (read-only profiles). When two files carry the
//! same UUID, the one in the earlier folder of that list wins, and a `UUID.nmmeta` symbolic link
//! to `/dev/null` in `/etc` or `/run` hides a profile of `/usr/lib`. The plugin ignores files
//! that a user other than root could read or write.
//!
//! Setting names may be written in full or by their keyfile alias: `[ethernet]` for
//! `[802-3-ethernet]`, `[wifi]` for `[802-11-wireless]`. A profile without
//! `cloned-mac-address` but with the deprecated `mac-address-randomization` is read as
//! NetworkManager normalizes it: `1` (never) means `permanent` and `2` (always) means `random`.
//!
//! NOTE: in `/etc`, legacy profile files without the `.nmconnection` suffix are read only when
//! their name has no dot at all; NetworkManager reads a few more names.
//!
//! This module reads files only.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::addr::MacAddr;
use crate::config::keyfile::{self, KeyFile};
use crate::generate::stable_id;

/// The keyfile folders, highest precedence first, relative to the root.
pub const PROFILE_DIRS: [&str; 3] = [
    "run/NetworkManager/system-connections",
    "etc/NetworkManager/system-connections",
    "usr/lib/NetworkManager/system-connections",
];

/// The suffix of keyfile profiles.
const SUFFIX: &str = ".nmconnection";

/// The suffix of NetworkManager's metadata files, which mark deleted read-only profiles.
const META_SUFFIX: &str = ".nmmeta";

/// A value read from a profile, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// The line in the profile's file.
    pub line: usize,
}

/// The kind of device a profile activates on, as far as the MAC policy is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileKind {
    /// A wired profile (`ethernet`, `802-3-ethernet`); NetworkManager also activates it on veth
    /// links.
    Ethernet,
    /// A Wi-Fi profile (`wifi`, `802-11-wireless`).
    Wifi,
    /// A bridge, bond, VLAN, team or macvlan profile: a virtual link with its own address, which
    /// takes the `ethernet.*` MAC keys.
    Virtual(String),
    /// Any other type (VPN, WireGuard, loopback, modem...), which has no MAC policy.
    Other(String),
}

impl ProfileKind {
    fn from_type(raw: &str) -> ProfileKind {
        match raw {
            "ethernet" | "802-3-ethernet" => ProfileKind::Ethernet,
            "wifi" | "802-11-wireless" => ProfileKind::Wifi,
            "bridge" | "bond" | "vlan" | "team" | "macvlan" | "veth" => {
                ProfileKind::Virtual(raw.to_string())
            }
            other => ProfileKind::Other(other.to_string()),
        }
    }

    /// Returns whether NetworkManager sets a MAC address for profiles of this kind.
    pub fn has_mac_policy(&self) -> bool {
        !matches!(self, ProfileKind::Other(_))
    }

    /// Returns whether the `wifi.*` keys apply rather than the `ethernet.*` ones.
    pub fn is_wifi(&self) -> bool {
        *self == ProfileKind::Wifi
    }
}

/// The DHCP and address settings of one IP family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSettings {
    /// `method`; none means NetworkManager's default, `auto`.
    pub method: Option<String>,
    /// `dhcp-send-hostname`; none means the default, yes.
    pub dhcp_send_hostname: Option<Located<bool>>,
    /// `dhcp-hostname`, the name sent instead of the machine's host name.
    pub dhcp_hostname: Option<String>,
    /// `ipv4.dhcp-client-id`.
    pub dhcp_client_id: Option<Located<String>>,
    /// `ipv6.dhcp-duid`.
    pub dhcp_duid: Option<Located<String>>,
    /// `ipv6.addr-gen-mode`; none means `default-or-eui64` for a keyfile profile.
    pub addr_gen_mode: Option<Located<String>>,
}

/// One connection profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The file.
    pub path: PathBuf,
    /// The file as shown to the user: below the root, with a leading slash.
    pub display_path: String,
    /// `connection.id`, the profile name.
    pub id: String,
    /// `connection.uuid`, in lower case.
    pub uuid: String,
    /// `connection.type` as written.
    pub raw_type: String,
    /// The kind of device it activates on.
    pub kind: ProfileKind,
    /// `connection.interface-name`: the only interface it activates on, when set.
    pub interface_name: Option<String>,
    /// `connection.controller` (or the older `connection.master`): the bond, bridge or team
    /// this profile is a port of. A port has no IP configuration of its own.
    pub controller: Option<String>,
    /// `connection.stable-id`, escapes decoded.
    pub stable_id: Option<Located<String>>,
    /// `ethernet.mac-address` or `wifi.mac-address`: the permanent address of the only device
    /// it activates on, when set.
    pub mac_address: Option<MacAddr>,
    /// `cloned-mac-address` as written (after normalizing `mac-address-randomization`).
    pub cloned_mac_address: Option<Located<String>>,
    /// `generate-mac-address-mask` as written.
    pub generate_mac_address_mask: Option<Located<String>>,
    /// `wifi.ssid`, the network name's bytes.
    pub ssid: Option<Vec<u8>>,
    /// The `[ipv4]` settings.
    pub ipv4: IpSettings,
    /// The `[ipv6]` settings.
    pub ipv6: IpSettings,
}

impl Profile {
    /// Returns whether the profile is a port of a bond, bridge or team, which runs no DHCP.
    pub fn is_port(&self) -> bool {
        self.controller.is_some()
    }
}

/// A profile file that was skipped, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedProfile {
    /// The file as shown to the user.
    pub display_path: String,
    /// The reason it was skipped.
    pub reason: String,
}

/// The profiles NetworkManager would load, and the files it would skip.
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    /// The profiles, sorted by name, then UUID.
    pub profiles: Vec<Profile>,
    /// Files that were skipped.
    pub skipped: Vec<SkippedProfile>,
}

/// A name or UUID that selects no profile, or more than one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Nothing matches.
    #[error(
        "no NetworkManager profile is named or has the UUID '{requested}'; the profiles are: {known}"
    )]
    NotFound {
        /// The name or UUID given.
        requested: String,
        /// The profiles that exist, as "name (uuid)".
        known: String,
    },
    /// Several profiles have the name.
    #[error(
        "{count} NetworkManager profiles are named '{requested}'; give one of their UUIDs instead: \
         {uuids}"
    )]
    Ambiguous {
        /// The name given.
        requested: String,
        /// How many profiles have it.
        count: usize,
        /// Their UUIDs.
        uuids: String,
    },
}

impl Profiles {
    /// Reads the profiles below `root` (normally `/`).
    pub fn load(root: &Path) -> Profiles {
        let mut result = Profiles::default();
        let mut seen_uuids = HashSet::new();
        let hidden = hidden_uuids(root);

        for (rank, dir) in PROFILE_DIRS.iter().enumerate() {
            let etc = rank == 1;
            let lib = rank == 2;
            for path in profile_files(&root.join(dir), etc) {
                let shown_as = display_path(root, &path);
                match read_profile(&path, &shown_as) {
                    Ok(profile) => {
                        if lib && hidden.contains(&profile.uuid) {
                            log::debug!("{shown_as} is hidden by a {META_SUFFIX} file");
                            continue;
                        }
                        if !seen_uuids.insert(profile.uuid.clone()) {
                            log::debug!(
                                "{shown_as} is shadowed by another profile with UUID {}",
                                profile.uuid
                            );
                            continue;
                        }
                        result.profiles.push(profile);
                    }
                    Err(reason) => result.skipped.push(SkippedProfile {
                        display_path: shown_as,
                        reason,
                    }),
                }
            }
        }
        result
            .profiles
            .sort_by(|a, b| (&a.id, &a.uuid).cmp(&(&b.id, &b.uuid)));
        result
    }

    /// Finds the profile with this UUID, or else the one with this name.
    pub fn find(&self, requested: &str) -> Result<&Profile, LookupError> {
        if let Some(uuid) = stable_id::canonical_uuid(requested)
            && let Some(profile) = self.profiles.iter().find(|p| p.uuid == uuid)
        {
            return Ok(profile);
        }
        let named: Vec<&Profile> = self.profiles.iter().filter(|p| p.id == requested).collect();
        match named.as_slice() {
            [profile] => Ok(profile),
            [] => Err(LookupError::NotFound {
                requested: requested.to_string(),
                known: if self.profiles.is_empty() {
                    String::from("none")
                } else {
                    self.profiles
                        .iter()
                        .map(|p| format!("'{}' ({})", p.id, p.uuid))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            }),
            several => Err(LookupError::Ambiguous {
                requested: requested.to_string(),
                count: several.len(),
                uuids: several
                    .iter()
                    .map(|p| p.uuid.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

/// Formats `path` relative to `root` with a leading slash, as NetworkManager would name it.
pub fn display_path(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(relative) => format!("/{}", relative.display()),
        Err(_) => path.display().to_string(),
    }
}

/// Collects the UUIDs that `UUID.nmmeta` links to `/dev/null` in `/run` or `/etc` mark as
/// deleted.
fn hidden_uuids(root: &Path) -> HashSet<String> {
    let mut hidden = HashSet::new();
    for dir in &PROFILE_DIRS[..2] {
        let Ok(entries) = fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(uuid) = name.strip_suffix(META_SUFFIX) else {
                continue;
            };
            let target = fs::read_link(entry.path()).ok();
            if target.as_deref() == Some(Path::new("/dev/null"))
                && let Some(uuid) = stable_id::canonical_uuid(uuid)
            {
                hidden.insert(uuid);
            }
        }
    }
    hidden
}

/// Lists the profile files in `dir`, sorted by name.
fn profile_files(dir: &Path, legacy_names: bool) -> Vec<PathBuf> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            if err.kind() != io::ErrorKind::NotFound {
                log::warn!("cannot list {}: {err}", dir.display());
            }
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with('.') {
                return false;
            }
            name.ends_with(SUFFIX) || (legacy_names && !name.contains('.') && !name.ends_with('~'))
        })
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Returns whether the process runs as root. Only then is a file not owned by root a sign that
/// NetworkManager would skip it.
fn running_as_root() -> bool {
    // SAFETY: geteuid() takes no arguments, cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Reads one profile, or returns why NetworkManager would skip it.
fn read_profile(path: &Path, shown_as: &str) -> Result<Profile, String> {
    let metadata = fs::metadata(path).map_err(|err| format!("cannot read it: {err}"))?;
    if metadata.mode() & 0o077 != 0 {
        return Err(format!(
            "its mode {:o} lets other users read or write it, so NetworkManager ignores it",
            metadata.mode() & 0o777
        ));
    }
    if running_as_root() && metadata.uid() != 0 {
        return Err(String::from(
            "it is not owned by root, so NetworkManager ignores it",
        ));
    }
    let data = fs::read(path).map_err(|err| format!("cannot read it: {err}"))?;
    parse_profile(&data, path, shown_as)
}

/// Parses a profile's text; `shown_as` is the file name used in messages.
pub fn parse_profile(data: &[u8], path: &Path, shown_as: &str) -> Result<Profile, String> {
    let file = KeyFile::parse(data).map_err(|err| format!("line {}: {err}", err.line()))?;
    let reader = Reader { file: &file };

    let id = reader
        .string(&["connection"], "id")
        .map(|located| located.value)
        .ok_or("connection.id is missing")?;
    let uuid_text = reader
        .string(&["connection"], "uuid")
        .map(|located| located.value)
        .ok_or("connection.uuid is missing")?;
    let uuid = stable_id::canonical_uuid(&uuid_text)
        .ok_or_else(|| format!("connection.uuid '{uuid_text}' is not a UUID"))?;
    let raw_type = reader
        .string(&["connection"], "type")
        .map(|located| located.value)
        .ok_or("connection.type is missing")?;
    let kind = ProfileKind::from_type(&raw_type);

    let link_groups: &[&str] = if kind.is_wifi() {
        &["wifi", "802-11-wireless"]
    } else {
        &["ethernet", "802-3-ethernet"]
    };

    let mut cloned_mac_address = reader.string(link_groups, "cloned-mac-address");
    if cloned_mac_address.is_none() && kind.is_wifi() {
        // NetworkManager's profile normalization turns the deprecated key into the new one.
        cloned_mac_address = reader
            .string(link_groups, "mac-address-randomization")
            .and_then(|located| match located.value.trim() {
                "1" | "never" => Some(Located {
                    value: String::from("permanent"),
                    line: located.line,
                }),
                "2" | "always" => Some(Located {
                    value: String::from("random"),
                    line: located.line,
                }),
                _ => None,
            });
    }
    let mac_address = reader
        .string(link_groups, "mac-address")
        .and_then(|located| parse_keyfile_mac(&located.value));
    let ssid = if kind.is_wifi() {
        reader
            .raw(link_groups, "ssid")
            .and_then(|located| parse_ssid(&located.value))
    } else {
        None
    };

    Ok(Profile {
        path: path.to_path_buf(),
        display_path: shown_as.to_string(),
        id,
        uuid,
        raw_type,
        kind,
        interface_name: reader
            .string(&["connection"], "interface-name")
            .map(|located| located.value)
            .filter(|name| !name.is_empty()),
        controller: reader
            .string(&["connection"], "controller")
            .or_else(|| reader.string(&["connection"], "master"))
            .map(|located| located.value)
            .filter(|name| !name.is_empty()),
        stable_id: reader
            .string(&["connection"], "stable-id")
            .filter(|located| !located.value.is_empty()),
        mac_address,
        cloned_mac_address,
        generate_mac_address_mask: reader.string(link_groups, "generate-mac-address-mask"),
        ssid,
        ipv4: reader.ip_settings(&["ipv4"]),
        ipv6: reader.ip_settings(&["ipv6"]),
    })
}

/// Reads values from a parsed keyfile, trying each alias of a setting name.
struct Reader<'a> {
    file: &'a KeyFile,
}

impl Reader<'_> {
    fn raw(&self, groups: &[&str], key: &str) -> Option<Located<String>> {
        groups.iter().find_map(|group| {
            let entry = self.file.group(group)?.entry(key)?;
            Some(Located {
                value: entry.value.clone(),
                line: entry.line,
            })
        })
    }

    fn string(&self, groups: &[&str], key: &str) -> Option<Located<String>> {
        let raw = self.raw(groups, key)?;
        match keyfile::unescape(&raw.value) {
            Ok(value) => Some(Located {
                value,
                line: raw.line,
            }),
            Err(err) => {
                log::debug!("line {}: {key}: {err}", raw.line);
                None
            }
        }
    }

    fn boolean(&self, groups: &[&str], key: &str) -> Option<Located<bool>> {
        let raw = self.raw(groups, key)?;
        match keyfile::parse_bool(&raw.value) {
            Ok(Some(value)) => Some(Located {
                value,
                line: raw.line,
            }),
            _ => None,
        }
    }

    fn ip_settings(&self, groups: &[&str]) -> IpSettings {
        IpSettings {
            method: self.string(groups, "method").map(|located| located.value),
            dhcp_send_hostname: self.boolean(groups, "dhcp-send-hostname"),
            dhcp_hostname: self
                .string(groups, "dhcp-hostname")
                .map(|located| located.value)
                .filter(|name| !name.is_empty()),
            dhcp_client_id: self.string(groups, "dhcp-client-id"),
            dhcp_duid: self.string(groups, "dhcp-duid"),
            addr_gen_mode: self.string(groups, "addr-gen-mode"),
        }
    }
}

/// Parses a keyfile hardware address: `aa:bb:cc:dd:ee:ff`, or the legacy list of six decimal
/// bytes `170;187;204;221;238;255;`.
pub fn parse_keyfile_mac(text: &str) -> Option<MacAddr> {
    if let Ok(addr) = text.trim().parse() {
        return Some(addr);
    }
    let bytes = parse_byte_list(text)?;
    MacAddr::from_slice(&bytes)
}

/// Parses a keyfile SSID: the legacy list of decimal bytes `72;111;109;101;`, or else the text
/// with its escapes decoded.
pub fn parse_ssid(raw: &str) -> Option<Vec<u8>> {
    if let Some(bytes) = parse_byte_list(raw) {
        return Some(bytes);
    }
    let text = keyfile::unescape(raw).ok()?;
    (!text.is_empty()).then(|| text.into_bytes())
}

/// Parses `1;2;3;` (the trailing `;` optional) into bytes; `None` unless every item is a
/// decimal byte and there is at least one.
fn parse_byte_list(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.contains(';') {
        return None;
    }
    let items: Vec<&str> = text.strip_suffix(';').unwrap_or(text).split(';').collect();
    items
        .iter()
        .map(|item| item.trim().parse::<u8>().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const WIRED: &str = "\
[connection]
id=Office LAN
uuid=7A7FC2AB-6B38-4C4C-8B6D-5F1A5E1F6E3A
type=ethernet
interface-name=eth0
stable-id=${CONNECTION}/${BOOT}

[ethernet]
cloned-mac-address=stable
generate-mac-address-mask=FF:FF:FF:00:00:00

[ipv4]
method=auto
dhcp-send-hostname=false
dhcp-client-id=mac

[ipv6]
addr-gen-mode=eui64
dhcp-duid=ll
method=auto
";

    fn parse(text: &str) -> Profile {
        parse_profile(text.as_bytes(), Path::new("/x"), "/x").unwrap()
    }

    fn write(root: &Path, relative: &str, text: &str, mode: u32) -> PathBuf {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn profile_text(id: &str, uuid: &str) -> String {
        format!("[connection]\nid={id}\nuuid={uuid}\ntype=ethernet\n")
    }

    #[test]
    fn wired_profile_settings_are_read() {
        let profile = parse(WIRED);
        assert_eq!(profile.id, "Office LAN");
        assert_eq!(profile.uuid, "7a7fc2ab-6b38-4c4c-8b6d-5f1a5e1f6e3a");
        assert_eq!(profile.kind, ProfileKind::Ethernet);
        assert_eq!(profile.interface_name.as_deref(), Some("eth0"));
        assert_eq!(
            profile.stable_id,
            Some(Located {
                value: "${CONNECTION}/${BOOT}".into(),
                line: 6
            })
        );
        assert_eq!(profile.cloned_mac_address.as_ref().unwrap().value, "stable");
        assert_eq!(profile.cloned_mac_address.as_ref().unwrap().line, 9);
        assert_eq!(
            profile.generate_mac_address_mask.unwrap().value,
            "FF:FF:FF:00:00:00"
        );
        assert_eq!(profile.ipv4.method.as_deref(), Some("auto"));
        assert_eq!(
            profile.ipv4.dhcp_send_hostname,
            Some(Located {
                value: false,
                line: 14
            })
        );
        assert_eq!(profile.ipv4.dhcp_client_id.unwrap().value, "mac");
        assert_eq!(profile.ipv6.dhcp_duid.unwrap().value, "ll");
        assert_eq!(profile.ipv6.addr_gen_mode.unwrap().value, "eui64");
    }

    #[test]
    fn long_setting_names_are_aliases() {
        let profile = parse(
            "[connection]\nid=w\nuuid=7a7fc2ab-6b38-4c4c-8b6d-5f1a5e1f6e3a\ntype=802-11-wireless\n\
             [802-11-wireless]\nssid=Caf\\sNet\ncloned-mac-address=02:11:22:33:44:55\n\
             mac-address=3C:22:FB:01:02:03\n",
        );
        assert_eq!(profile.kind, ProfileKind::Wifi);
        assert_eq!(profile.ssid.as_deref(), Some(&b"Caf Net"[..]));
        assert_eq!(
            profile.cloned_mac_address.unwrap().value,
            "02:11:22:33:44:55"
        );
        assert_eq!(
            profile.mac_address,
            Some("3c:22:fb:01:02:03".parse().unwrap())
        );
    }

    #[test]
    fn deprecated_randomization_is_normalized() {
        let base =
            "[connection]\nid=w\nuuid=7a7fc2ab-6b38-4c4c-8b6d-5f1a5e1f6e3a\ntype=wifi\n[wifi]\n";
        let always = parse(&format!("{base}mac-address-randomization=2\n"));
        assert_eq!(always.cloned_mac_address.unwrap().value, "random");
        let never = parse(&format!("{base}mac-address-randomization=1\n"));
        assert_eq!(never.cloned_mac_address.unwrap().value, "permanent");
        let default = parse(&format!("{base}mac-address-randomization=0\n"));
        assert_eq!(default.cloned_mac_address, None);
        let both = parse(&format!(
            "{base}mac-address-randomization=1\ncloned-mac-address=stable\n"
        ));
        assert_eq!(both.cloned_mac_address.unwrap().value, "stable");
    }

    #[test]
    fn legacy_byte_lists_are_decoded() {
        assert_eq!(parse_ssid("72;111;109;101;"), Some(b"Home".to_vec()));
        assert_eq!(parse_ssid("72;111;109;101"), Some(b"Home".to_vec()));
        assert_eq!(parse_ssid("a;b"), Some(b"a;b".to_vec()));
        assert_eq!(
            parse_keyfile_mac("60;34;251;1;2;3;"),
            Some("3c:22:fb:01:02:03".parse().unwrap())
        );
        assert_eq!(parse_keyfile_mac("1;2;3;"), None);
    }

    #[test]
    fn missing_uuid_is_reported() {
        let err = parse_profile(
            b"[connection]\nid=x\ntype=ethernet\n",
            Path::new("/x"),
            "/x",
        )
        .unwrap_err();
        assert!(err.contains("connection.uuid"), "{err}");
    }

    #[test]
    fn load_applies_precedence_and_permissions() {
        let root = tempfile::tempdir().unwrap();
        let uuid = "7a7fc2ab-6b38-4c4c-8b6d-5f1a5e1f6e3a";
        let other = "11111111-2222-4333-8444-555555555555";
        let hidden = "22222222-2222-4333-8444-555555555555";
        write(
            root.path(),
            "etc/NetworkManager/system-connections/a.nmconnection",
            &profile_text("from-etc", uuid),
            0o600,
        );
        write(
            root.path(),
            "run/NetworkManager/system-connections/a.nmconnection",
            &profile_text("from-run", uuid),
            0o600,
        );
        write(
            root.path(),
            "usr/lib/NetworkManager/system-connections/b.nmconnection",
            &profile_text("from-lib", other),
            0o600,
        );
        write(
            root.path(),
            "usr/lib/NetworkManager/system-connections/c.nmconnection",
            &profile_text("deleted", hidden),
            0o600,
        );
        std::os::unix::fs::symlink(
            "/dev/null",
            root.path().join(format!(
                "etc/NetworkManager/system-connections/{hidden}.nmmeta"
            )),
        )
        .unwrap();
        write(
            root.path(),
            "etc/NetworkManager/system-connections/open.nmconnection",
            &profile_text("readable", "33333333-2222-4333-8444-555555555555"),
            0o644,
        );
        write(
            root.path(),
            "etc/NetworkManager/system-connections/notes.txt",
            &profile_text("not-a-profile", "44444444-2222-4333-8444-555555555555"),
            0o600,
        );

        let loaded = Profiles::load(root.path());
        let names: Vec<&str> = loaded.profiles.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(names, ["from-lib", "from-run"]);
        assert_eq!(loaded.skipped.len(), 1);
        assert_eq!(
            loaded.skipped[0].display_path,
            "/etc/NetworkManager/system-connections/open.nmconnection"
        );
        assert!(loaded.skipped[0].reason.contains("644"));
    }

    #[test]
    fn find_by_uuid_or_unique_name() {
        let root = tempfile::tempdir().unwrap();
        let dir = "etc/NetworkManager/system-connections";
        write(
            root.path(),
            &format!("{dir}/a.nmconnection"),
            &profile_text("Home", "7a7fc2ab-6b38-4c4c-8b6d-5f1a5e1f6e3a"),
            0o600,
        );
        write(
            root.path(),
            &format!("{dir}/b.nmconnection"),
            &profile_text("Twin", "11111111-2222-4333-8444-555555555555"),
            0o600,
        );
        write(
            root.path(),
            &format!("{dir}/c.nmconnection"),
            &profile_text("Twin", "22222222-2222-4333-8444-555555555555"),
            0o600,
        );
        let loaded = Profiles::load(root.path());

        assert_eq!(loaded.find("Home").unwrap().id, "Home");
        assert_eq!(
            loaded
                .find("11111111-2222-4333-8444-555555555555")
                .unwrap()
                .id,
            "Twin"
        );
        assert_eq!(
            loaded
                .find("7A7FC2AB-6B38-4C4C-8B6D-5F1A5E1F6E3A")
                .unwrap()
                .id,
            "Home"
        );
        let ambiguous = loaded.find("Twin").unwrap_err();
        assert!(matches!(ambiguous, LookupError::Ambiguous { count: 2, .. }));
        let missing = loaded.find("Cafe").unwrap_err();
        assert!(missing.to_string().contains("'Home'"), "{missing}");
    }
}
