//! The settings NetworkManager applies when it activates a profile on a device: each value from
//! the profile when it sets one, else from the matching `[connection*]` default, else
//! NetworkManager's built-in default. This follows `_prop_get_x_cloned_mac_address()`,
//! `_prop_get_x_generate_mac_address_mask()`, `_prop_get_connection_stable_id()` and the
//! `_prop_get_ipv*` helpers in NetworkManager's `src/core/devices/nm-device.c`.
//!
//! Values a NetworkManager version does not know are resolved as that version does: before
//! 1.46, a profile's `cloned-mac-address=stable-ssid` is dropped as if unset, and a global
//! `wifi.cloned-mac-address=stable-ssid` is ignored, which leaves `preserve`.
//!
//! This module computes; it reads no files.

use std::fmt;

use serde::Serialize;

use super::conf::{Lookup, NmConfig};
use super::profile::{Profile, ProfileKind, parse_keyfile_mac};
use super::version::{Feature, NmVersion};
use crate::addr::MacAddr;
use crate::config::{ClonedMac, LinkFacts, LinkKind, Origin, Source};
use crate::generate::mask::Mask;
use crate::generate::stable_id::DEFAULT_TEMPLATE;

/// The origin of an effective value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    /// The profile sets it.
    Profile {
        /// The profile's file, as shown to the user.
        file: String,
        /// The 1-based line.
        line: usize,
    },
    /// A `[connection*]` default or the built-in default, as [`Source`] describes.
    Global(Source),
}

impl ValueSource {
    fn profile(profile: &Profile, line: usize) -> ValueSource {
        ValueSource::Profile {
            file: profile.display_path.clone(),
            line,
        }
    }

    fn from_lookup(lookup: &Lookup) -> ValueSource {
        match lookup {
            Lookup::Found { origin, .. } => ValueSource::Global(Source::Configured(origin.clone())),
            Lookup::Stopped(origin) => ValueSource::Global(Source::StoppedAt(origin.clone())),
            Lookup::Missing => ValueSource::Global(Source::Default),
        }
    }

    /// Returns the file and line, when a file sets the value.
    pub fn location(&self) -> Option<String> {
        match self {
            ValueSource::Profile { file, line } => Some(format!("{file}:{line}")),
            ValueSource::Global(Source::Configured(origin) | Source::StoppedAt(origin)) => {
                Some(format!("{}:{}", origin.file, origin.line))
            }
            ValueSource::Global(Source::Default) => None,
        }
    }

    /// Returns whether the profile itself sets the value.
    pub fn is_profile(&self) -> bool {
        matches!(self, ValueSource::Profile { .. })
    }
}

impl fmt::Display for ValueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueSource::Profile { file, line } => write!(f, "profile {file}:{line}"),
            ValueSource::Global(Source::Default) => f.write_str("built-in default"),
            ValueSource::Global(source) => write!(f, "{source}"),
        }
    }
}

impl Serialize for ValueSource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The MAC settings NetworkManager applies for one profile on one device.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveMac {
    /// `ethernet.cloned-mac-address` or `wifi.cloned-mac-address`.
    pub key: &'static str,
    /// The address mode.
    pub mode: ClonedMac,
    /// The origin of the mode.
    pub mode_source: ValueSource,
    /// `connection.stable-id`; none means the connection UUID.
    pub stable_id: Option<String>,
    /// The origin of the stable id.
    pub stable_id_source: ValueSource,
    /// `generate-mac-address-mask`.
    pub mask: Option<Mask>,
    /// The origin of the mask.
    pub mask_source: ValueSource,
    /// Caveats about the version, each a sentence.
    pub notes: Vec<String>,
}

/// A profile value NetworkManager rejects, so that it does not load the profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: invalid {key} '{value}' in profile '{profile}': {reason}")]
pub struct InvalidProfileValue {
    /// The profile's name.
    pub profile: String,
    /// The file, as shown to the user.
    pub file: String,
    /// The 1-based line.
    pub line: usize,
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// The reason NetworkManager rejects it.
    pub reason: String,
}

/// Parses a `cloned-mac-address` value of a profile.
fn parse_cloned(value: &str, wifi: bool) -> Result<ClonedMac, String> {
    match value {
        "permanent" => Ok(ClonedMac::Permanent),
        "preserve" => Ok(ClonedMac::Preserve),
        "random" => Ok(ClonedMac::Random),
        "stable" => Ok(ClonedMac::Stable),
        "stable-ssid" if wifi => Ok(ClonedMac::StableSsid),
        "stable-ssid" => Err(String::from("stable-ssid applies to Wi-Fi profiles only")),
        other => match parse_keyfile_mac(other) {
            Some(addr) if !addr.is_group() => Ok(ClonedMac::Address(addr)),
            Some(_) => Err(String::from(
                "a multicast address cannot be a link's address",
            )),
            None => Err(String::from(
                "expected permanent, preserve, random, stable, stable-ssid (Wi-Fi) or an \
                 address",
            )),
        },
    }
}

/// Resolves the MAC settings of `profile` on `link` under `config`. `version` is the
/// NetworkManager version whose rules apply; none means the newest known rules.
pub fn effective_mac(
    config: &NmConfig,
    profile: &Profile,
    link: &LinkFacts,
    version: Option<NmVersion>,
) -> Result<EffectiveMac, Box<InvalidProfileValue>> {
    let wifi = profile.kind.is_wifi();
    let global = config.policy_for(link);
    let knows = |feature: Feature| version.is_none_or(|version| feature.supported_by(version));
    let mut notes = Vec::new();

    let invalid = |key: &str, value: &str, line: usize, reason: String| {
        Box::new(InvalidProfileValue {
            profile: profile.id.clone(),
            file: profile.display_path.clone(),
            line,
            key: key.to_string(),
            value: value.to_string(),
            reason,
        })
    };

    let key = if wifi {
        "wifi.cloned-mac-address"
    } else {
        "ethernet.cloned-mac-address"
    };
    // NetworkManager before 1.46 does not know stable-ssid. Its keyfile reader still loads
    // the profile, drops the value ("ignoring invalid MAC address") and activates the profile
    // as if the key were unset. The Wi-Fi lab's NetworkManager 1.42 showed this.
    let profile_mode = match &profile.cloned_mac_address {
        Some(located) => {
            let mode = parse_cloned(&located.value, wifi)
                .map_err(|reason| invalid(key, &located.value, located.line, reason))?;
            if mode == ClonedMac::StableSsid && !knows(Feature::StableSsid) {
                notes.push(version_note(
                    version,
                    Feature::StableSsid,
                    "drops this profile's value, as if it were unset",
                ));
                None
            } else {
                Some((mode, ValueSource::profile(profile, located.line)))
            }
        }
        None => None,
    };
    let (mode, mode_source) = match profile_mode {
        Some(found) => found,
        None => {
            let mut mode = global.cloned_mac_address.value;
            let mut source = ValueSource::Global(global.cloned_mac_address.source.clone());
            if mode == ClonedMac::StableSsid && !knows(Feature::StableSsid) {
                notes.push(version_note(
                    version,
                    Feature::StableSsid,
                    &format!("ignores the default at {source}, and uses preserve"),
                ));
                mode = ClonedMac::Preserve;
                source = ValueSource::Global(Source::Default);
            }
            (mode, source)
        }
    };

    let (stable_id, stable_id_source) = match &profile.stable_id {
        Some(located) => (
            Some(located.value.clone()),
            ValueSource::profile(profile, located.line),
        ),
        None => (
            global.stable_id.value.clone(),
            ValueSource::Global(global.stable_id.source.clone()),
        ),
    };
    if let Some(template) = &stable_id
        && matches!(mode, ClonedMac::Stable)
    {
        for feature in Feature::in_stable_id(template) {
            if !knows(feature) {
                notes.push(version_note(
                    version,
                    feature,
                    "hashes the placeholder as plain text",
                ));
            }
        }
    }

    // NetworkManager 1.44 made "default${CONNECTION}" equal to an unset stable id; older
    // versions expand it as a generated stable id (NEWS of 1.44).
    if stable_id.as_deref() == Some(DEFAULT_TEMPLATE)
        && version.is_some_and(|version| version < NmVersion::new(1, 44, 0))
        && matches!(mode, ClonedMac::Stable)
    {
        notes.push(format!(
            "NetworkManager {} expands connection.stable-id={DEFAULT_TEMPLATE} as a generated \
             stable id, and macveil computes it as 1.44 and later do, like an unset one",
            version.map(|v| v.to_string()).unwrap_or_default()
        ));
    }

    let mask_key = if wifi {
        "wifi.generate-mac-address-mask"
    } else {
        "ethernet.generate-mac-address-mask"
    };
    let (mask, mask_source) = match &profile.generate_mac_address_mask {
        Some(located) if !located.value.trim().is_empty() => {
            let mask = Mask::parse(&located.value)
                .map_err(|err| invalid(mask_key, &located.value, located.line, err.to_string()))?;
            (Some(mask), ValueSource::profile(profile, located.line))
        }
        _ => (
            global.generate_mac_address_mask.value.clone(),
            ValueSource::Global(global.generate_mac_address_mask.source.clone()),
        ),
    };

    Ok(EffectiveMac {
        key,
        mode,
        mode_source,
        stable_id,
        stable_id_source,
        mask,
        mask_source,
        notes,
    })
}

/// Writes "NetworkManager VERSION lacks FEATURE (since X) and WHAT".
fn version_note(version: Option<NmVersion>, feature: Feature, what: &str) -> String {
    let version = version.map_or_else(|| String::from("this version"), |v| v.to_string());
    format!(
        "NetworkManager {version} lacks {} (added in {}) and {what}",
        feature.name(),
        feature.since()
    )
}

impl EffectiveMac {
    /// Returns whether the device keeps its hardware address under this policy: `permanent`, a fixed
    /// address equal to `permanent`, or `preserve` when nothing else changes the address
    /// (`covered` is false).
    pub fn keeps_hardware_address(&self, permanent: Option<MacAddr>, covered: bool) -> bool {
        match self.mode {
            ClonedMac::Permanent => true,
            ClonedMac::Preserve => !covered,
            ClonedMac::Address(addr) => Some(addr) == permanent,
            ClonedMac::Random | ClonedMac::Stable | ClonedMac::StableSsid => false,
        }
    }
}

/// An IPv6 address generation mode of NetworkManager (`ipv6.addr-gen-mode`), after defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddrGenMode {
    /// The interface identifier is the EUI-64 of the link's address.
    Eui64,
    /// RFC 7217 stable privacy addresses.
    StablePrivacy,
}

/// The DHCP and IPv6 settings of one profile on one device that can identify the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveDhcp {
    /// Whether the profile runs DHCPv4 (`ipv4.method=auto`, the default).
    pub dhcp4: bool,
    /// Whether the profile runs IPv6 autoconfiguration (`ipv6.method=auto` or `dhcp`), which
    /// may start DHCPv6.
    pub ipv6_auto: bool,
    /// `ipv4.dhcp-send-hostname` (default yes).
    pub send_hostname4: (bool, ValueSource),
    /// `ipv6.dhcp-send-hostname` (default yes).
    pub send_hostname6: (bool, ValueSource),
    /// Whether the profile names the host name to send (`dhcp-hostname`), in place of the
    /// machine's own.
    pub hostname_given: bool,
    /// `ipv4.dhcp-client-id`; none means the DHCP plugin's default.
    pub client_id: (Option<String>, ValueSource),
    /// `ipv6.dhcp-duid` (default `lease`).
    pub duid: (String, ValueSource),
    /// `ipv6.addr-gen-mode` after defaults.
    pub addr_gen_mode: (AddrGenMode, ValueSource),
}

/// Resolves the DHCP and IPv6 settings of `profile` on `link`.
///
/// NetworkManager 1.42 has no connection default for `dhcp-send-hostname`
/// (NetworkManager.conf(5) does not list it), so only the profile decides.
pub fn effective_dhcp(config: &NmConfig, profile: &Profile, link: &LinkFacts) -> EffectiveDhcp {
    let method4 = profile.ipv4.method.as_deref().unwrap_or("auto");
    let method6 = profile.ipv6.method.as_deref().unwrap_or("auto");
    let ip = !profile.is_port();

    let send_hostname = |settings: &super::profile::IpSettings| match &settings.dhcp_send_hostname {
        Some(located) => (located.value, ValueSource::profile(profile, located.line)),
        None => (true, ValueSource::Global(Source::Default)),
    };

    let client_id = match &profile.ipv4.dhcp_client_id {
        Some(located) if !located.value.is_empty() => (
            Some(located.value.clone()),
            ValueSource::profile(profile, located.line),
        ),
        _ => {
            let lookup = config.connection_default("ipv4.dhcp-client-id", link);
            let value = match &lookup {
                Lookup::Found { value, .. } if !value.is_empty() => Some(value.clone()),
                _ => None,
            };
            let source = match value {
                Some(_) => ValueSource::from_lookup(&lookup),
                None => ValueSource::Global(Source::Default),
            };
            (value, source)
        }
    };

    let duid = match &profile.ipv6.dhcp_duid {
        Some(located) if !located.value.is_empty() => (
            located.value.clone(),
            ValueSource::profile(profile, located.line),
        ),
        _ => {
            let lookup = config.connection_default("ipv6.dhcp-duid", link);
            match &lookup {
                Lookup::Found { value, .. } if !value.is_empty() => {
                    (value.clone(), ValueSource::from_lookup(&lookup))
                }
                _ => (String::from("lease"), ValueSource::Global(Source::Default)),
            }
        }
    };

    EffectiveDhcp {
        dhcp4: ip && method4 == "auto",
        ipv6_auto: ip && matches!(method6, "auto" | "dhcp"),
        send_hostname4: send_hostname(&profile.ipv4),
        send_hostname6: send_hostname(&profile.ipv6),
        hostname_given: profile.ipv4.dhcp_hostname.is_some()
            || profile.ipv6.dhcp_hostname.is_some(),
        client_id,
        duid,
        addr_gen_mode: addr_gen_mode(config, profile, link),
    }
}

/// Resolves `ipv6.addr-gen-mode`. A keyfile without the key means `default-or-eui64`. The
/// values `default` and `default-or-eui64` take the connection default, which NetworkManager
/// reads as a number from 0 to 3, and fall back to stable-privacy and EUI-64.
fn addr_gen_mode(
    config: &NmConfig,
    profile: &Profile,
    link: &LinkFacts,
) -> (AddrGenMode, ValueSource) {
    const EUI64: i64 = 0;
    const STABLE_PRIVACY: i64 = 1;
    const DEFAULT_OR_EUI64: i64 = 2;
    const DEFAULT: i64 = 3;

    let (mut mode, mut source) = match &profile.ipv6.addr_gen_mode {
        Some(located) => {
            let mode = match located.value.trim() {
                "eui64" | "0" => EUI64,
                "stable-privacy" | "1" => STABLE_PRIVACY,
                "default" | "3" => DEFAULT,
                _ => DEFAULT_OR_EUI64,
            };
            (mode, ValueSource::profile(profile, located.line))
        }
        None => (DEFAULT_OR_EUI64, ValueSource::Global(Source::Default)),
    };

    if mode == DEFAULT || mode == DEFAULT_OR_EUI64 {
        let lookup = config.connection_default("ipv6.addr-gen-mode", link);
        if let Lookup::Found { value, .. } = &lookup
            && let Ok(number) = value.trim().parse::<i64>()
            && (EUI64..=DEFAULT).contains(&number)
        {
            mode = number;
            source = ValueSource::from_lookup(&lookup);
        }
    }

    let resolved = match mode {
        STABLE_PRIVACY | DEFAULT => AddrGenMode::StablePrivacy,
        _ => AddrGenMode::Eui64,
    };
    (resolved, source)
}

/// A device a profile can activate on, or a stand-in when none is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The device's facts; for a stand-in, only the name and kind the profile implies.
    pub link: LinkFacts,
    /// Whether the device exists now.
    pub present: bool,
}

/// Lists the devices `profile` can activate on among `links`: the one its
/// `connection.interface-name` or `mac-address` names, or else every link of its kind. When
/// none is present, one stand-in carries the name and kind the profile implies, so that its
/// defaults can still be resolved.
pub fn candidates(profile: &Profile, links: &[LinkFacts]) -> Vec<Candidate> {
    let kind_matches = |link: &LinkFacts| match &profile.kind {
        ProfileKind::Ethernet => matches!(link.kind, LinkKind::Ethernet | LinkKind::Veth),
        ProfileKind::Wifi => link.kind == LinkKind::Wifi,
        ProfileKind::Virtual(kind) | ProfileKind::Other(kind) => link.kind.as_str() == kind,
    };

    let found: Vec<Candidate> = links
        .iter()
        .filter(
            |link| match (&profile.interface_name, profile.mac_address) {
                (Some(name), _) => &link.name == name,
                (None, Some(mac)) => link.permanent == Some(mac),
                (None, None) => kind_matches(link),
            },
        )
        .map(|link| Candidate {
            link: link.clone(),
            present: true,
        })
        .collect();
    if !found.is_empty() {
        return found;
    }

    let kind = match &profile.kind {
        ProfileKind::Ethernet => LinkKind::Ethernet,
        ProfileKind::Wifi => LinkKind::Wifi,
        ProfileKind::Virtual(kind) | ProfileKind::Other(kind) => {
            LinkKind::from_kernel(Some(kind), false, 1)
        }
    };
    vec![Candidate {
        link: LinkFacts {
            name: profile.interface_name.clone().unwrap_or_default(),
            kind,
            driver: None,
            driver_version: None,
            permanent: profile.mac_address,
            current: None,
            device: None,
        },
        present: false,
    }]
}

/// Returns the name shown for a candidate: the interface, or "any device" for a stand-in
/// without one.
pub fn candidate_name(candidate: &Candidate) -> String {
    match (candidate.link.name.as_str(), candidate.present) {
        ("", _) => String::from("any device"),
        (name, true) => name.to_string(),
        (name, false) => format!("{name} (absent)"),
    }
}

/// Returns the origin of a global value, for messages.
pub fn origin_of(source: &ValueSource) -> Option<&Origin> {
    match source {
        ValueSource::Global(Source::Configured(origin) | Source::StoppedAt(origin)) => Some(origin),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceText;
    use crate::nm::profile::parse_profile;
    use std::path::Path;

    const UUID: &str = "7a7fc2ab-6b38-4c4c-8b6d-5f1a5e1f6e3a";

    fn nm(text: &str) -> NmConfig {
        NmConfig::from_sources(&[SourceText::new("/etc/NetworkManager/conf.d/a.conf", text)])
            .unwrap()
    }

    fn profile(kind: &str, extra: &str) -> Profile {
        let text =
            format!("[connection]\nid=p\nuuid={UUID}\ntype={kind}\ninterface-name=eth0\n{extra}");
        parse_profile(text.as_bytes(), Path::new("/p"), "/p.nmconnection").unwrap()
    }

    fn link(kind: LinkKind) -> LinkFacts {
        LinkFacts {
            name: "eth0".into(),
            kind,
            driver: None,
            driver_version: None,
            permanent: Some("3c:22:fb:01:02:03".parse().unwrap()),
            current: Some("3c:22:fb:01:02:03".parse().unwrap()),
            device: None,
        }
    }

    #[test]
    fn profile_value_beats_default() {
        let config = nm("[connection]\nethernet.cloned-mac-address=stable\n");
        let own = profile("ethernet", "[ethernet]\ncloned-mac-address=permanent\n");
        let mac = effective_mac(&config, &own, &link(LinkKind::Ethernet), None).unwrap();
        assert_eq!(mac.mode, ClonedMac::Permanent);
        assert_eq!(mac.mode_source.to_string(), "profile /p.nmconnection:7");

        let inherits = profile("ethernet", "");
        let mac = effective_mac(&config, &inherits, &link(LinkKind::Ethernet), None).unwrap();
        assert_eq!(mac.mode, ClonedMac::Stable);
        assert_eq!(
            mac.mode_source.location().as_deref(),
            Some("/etc/NetworkManager/conf.d/a.conf:2")
        );
    }

    #[test]
    fn built_in_default_is_preserve_and_uuid() {
        let config = nm("");
        let mac = effective_mac(
            &config,
            &profile("ethernet", ""),
            &link(LinkKind::Ethernet),
            None,
        )
        .unwrap();
        assert_eq!(mac.mode, ClonedMac::Preserve);
        assert_eq!(mac.mode_source.to_string(), "built-in default");
        assert_eq!(mac.stable_id, None);
        assert_eq!(mac.mask, None);
    }

    #[test]
    fn stable_id_and_mask_resolve_separately() {
        let config = nm(
            "[connection]\nethernet.cloned-mac-address=stable\nconnection.stable-id=${BOOT}\n\
             ethernet.generate-mac-address-mask=FF:FF:FF:00:00:00\n",
        );
        let own_id = profile("ethernet", "stable-id=${CONNECTION}\n");
        let mac = effective_mac(&config, &own_id, &link(LinkKind::Ethernet), None).unwrap();
        assert_eq!(mac.stable_id.as_deref(), Some("${CONNECTION}"));
        assert!(mac.stable_id_source.is_profile());
        assert_eq!(mac.mask.unwrap().to_string(), "ff:ff:ff:00:00:00");
        assert!(!mac.mask_source.is_profile());
    }

    #[test]
    fn old_version_ignores_global_stable_ssid() {
        let config = nm("[connection]\nwifi.cloned-mac-address=stable-ssid\n");
        let wifi = profile("wifi", "[wifi]\nssid=Home\n");
        let debian_12 = Some(NmVersion::new(1, 42, 4));

        let old = effective_mac(&config, &wifi, &link(LinkKind::Wifi), debian_12).unwrap();
        assert_eq!(old.mode, ClonedMac::Preserve);
        assert_eq!(old.notes.len(), 1, "{:?}", old.notes);
        assert!(old.notes[0].contains("1.46.0"), "{}", old.notes[0]);

        let new = effective_mac(
            &config,
            &wifi,
            &link(LinkKind::Wifi),
            Some(NmVersion::new(1, 46, 0)),
        )
        .unwrap();
        assert_eq!(new.mode, ClonedMac::StableSsid);
        assert!(new.notes.is_empty());
    }

    #[test]
    fn old_version_drops_profile_stable_ssid() {
        let wifi = profile(
            "wifi",
            "[wifi]\nssid=Home\ncloned-mac-address=stable-ssid\n",
        );
        let old = Some(NmVersion::new(1, 42, 4));
        let mac = effective_mac(&nm(""), &wifi, &link(LinkKind::Wifi), old).unwrap();
        assert_eq!(mac.mode, ClonedMac::Preserve);
        assert_eq!(mac.notes.len(), 1, "{:?}", mac.notes);

        // The profile then takes the global default, as if it set nothing.
        let global = nm("[connection]\nwifi.cloned-mac-address=random\n");
        let mac = effective_mac(&global, &wifi, &link(LinkKind::Wifi), old).unwrap();
        assert_eq!(mac.mode, ClonedMac::Random);

        let new = Some(NmVersion::new(1, 46, 0));
        let mac = effective_mac(&global, &wifi, &link(LinkKind::Wifi), new).unwrap();
        assert_eq!(mac.mode, ClonedMac::StableSsid);
    }

    #[test]
    fn default_connection_template_warns_before_1_44() {
        let config = nm("[connection]\nethernet.cloned-mac-address=stable\n");
        let p = profile("ethernet", "stable-id=default${CONNECTION}\n");
        let old = effective_mac(
            &config,
            &p,
            &link(LinkKind::Ethernet),
            Some(NmVersion::new(1, 42, 4)),
        )
        .unwrap();
        assert_eq!(old.notes.len(), 1, "{:?}", old.notes);
        assert!(old.notes[0].contains("generated"), "{}", old.notes[0]);
        let new = effective_mac(
            &config,
            &p,
            &link(LinkKind::Ethernet),
            Some(NmVersion::new(1, 44, 0)),
        )
        .unwrap();
        assert!(new.notes.is_empty(), "{:?}", new.notes);
    }

    #[test]
    fn invalid_profile_value_names_file_and_line() {
        let config = nm("");
        let bad = profile("ethernet", "[ethernet]\ncloned-mac-address=sometimes\n");
        let err = effective_mac(&config, &bad, &link(LinkKind::Ethernet), None).unwrap_err();
        assert_eq!(err.line, 7);
        assert!(
            err.to_string().starts_with("/p.nmconnection:7: invalid"),
            "{err}"
        );
        let wired_ssid = profile("ethernet", "[ethernet]\ncloned-mac-address=stable-ssid\n");
        assert!(effective_mac(&config, &wired_ssid, &link(LinkKind::Ethernet), None).is_err());
    }

    #[test]
    fn keeps_hardware_address_by_mode() {
        let config = nm("");
        let permanent: MacAddr = "3c:22:fb:01:02:03".parse().unwrap();
        let cases = [
            ("permanent", false, true),
            ("preserve", false, true),
            ("preserve", true, false),
            ("stable", false, false),
            ("random", false, false),
            ("3c:22:fb:01:02:03", true, true),
            ("02:22:fb:01:02:03", false, false),
        ];
        for (value, covered, expected) in cases {
            let p = profile(
                "ethernet",
                &format!("[ethernet]\ncloned-mac-address={value}\n"),
            );
            let mac = effective_mac(&config, &p, &link(LinkKind::Ethernet), None).unwrap();
            assert_eq!(
                mac.keeps_hardware_address(Some(permanent), covered),
                expected,
                "{value} covered={covered}"
            );
        }
    }

    #[test]
    fn dhcp_defaults_and_overrides() {
        let config = nm("[connection]\nipv4.dhcp-client-id=stable\nipv6.addr-gen-mode=1\n");
        let plain = profile("ethernet", "");
        let dhcp = effective_dhcp(&config, &plain, &link(LinkKind::Ethernet));
        assert!(dhcp.dhcp4);
        assert!(dhcp.ipv6_auto);
        assert!(dhcp.send_hostname4.0);
        assert!(dhcp.send_hostname6.0);
        assert_eq!(dhcp.client_id.0.as_deref(), Some("stable"));
        assert_eq!(dhcp.duid.0, "lease");
        assert_eq!(dhcp.addr_gen_mode.0, AddrGenMode::StablePrivacy);

        let own = profile(
            "ethernet",
            "[ipv4]\nmethod=manual\ndhcp-send-hostname=no\ndhcp-client-id=perm-mac\n\
             [ipv6]\nmethod=disabled\naddr-gen-mode=eui64\ndhcp-duid=llt\n",
        );
        let dhcp = effective_dhcp(&config, &own, &link(LinkKind::Ethernet));
        assert!(!dhcp.dhcp4);
        assert!(!dhcp.ipv6_auto);
        assert!(!dhcp.send_hostname4.0);
        assert_eq!(dhcp.client_id.0.as_deref(), Some("perm-mac"));
        assert_eq!(dhcp.duid.0, "llt");
        assert_eq!(dhcp.addr_gen_mode.0, AddrGenMode::Eui64);
    }

    #[test]
    fn keyfile_without_addr_gen_mode_is_eui64() {
        let config = nm("");
        let dhcp = effective_dhcp(&config, &profile("ethernet", ""), &link(LinkKind::Ethernet));
        assert_eq!(dhcp.addr_gen_mode.0, AddrGenMode::Eui64);
        let named_default = profile("ethernet", "[ipv6]\naddr-gen-mode=default\n");
        let dhcp = effective_dhcp(&config, &named_default, &link(LinkKind::Ethernet));
        assert_eq!(dhcp.addr_gen_mode.0, AddrGenMode::StablePrivacy);
    }

    #[test]
    fn candidates_follow_binding_or_kind() {
        let eth = link(LinkKind::Ethernet);
        let mut veth = link(LinkKind::Veth);
        veth.name = "veth0".into();
        let mut wlan = link(LinkKind::Wifi);
        wlan.name = "wlan0".into();
        let links = [eth, veth, wlan];

        let bound = profile("ethernet", "");
        let names: Vec<String> = candidates(&bound, &links)
            .iter()
            .map(candidate_name)
            .collect();
        assert_eq!(names, ["eth0"]);

        let text = format!("[connection]\nid=u\nuuid={UUID}\ntype=ethernet\n");
        let unbound = parse_profile(text.as_bytes(), Path::new("/u"), "/u").unwrap();
        let names: Vec<String> = candidates(&unbound, &links)
            .iter()
            .map(candidate_name)
            .collect();
        assert_eq!(names, ["eth0", "veth0"]);

        let absent = profile("wifi", "");
        let found = candidates(&absent, &[]);
        assert_eq!(found.len(), 1);
        assert!(!found[0].present);
        assert_eq!(candidate_name(&found[0]), "eth0 (absent)");
        assert_eq!(found[0].link.kind, LinkKind::Wifi);
    }
}
