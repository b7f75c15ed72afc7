//! A link's policy and how it is resolved from the checked `[connection*]` and `[device*]`
//! sections.
//!
//! A key is looked up as NetworkManager's `_match_section_infos_lookup` does. The sections of
//! the key's kind are tried in priority order, and a section without the key is skipped unless
//! it has `stop-match=yes`. The first section whose `match-device=` matches the link (or that
//! has no `match-device=`) decides. When `stop-match=yes` ends the search in a section without
//! the key, or no section decides, the key's default applies.
//!
//! The checks on the values and the section list live in [`super::keys`].

use std::fmt;
use std::time::Duration;

use super::keys::{Key, Section, Sections, Value};
use super::link::{LinkFacts, LinkKind};
use super::matching::MatchSubject;
use crate::addr::MacAddr;
use crate::generate::mask::Mask;
use crate::generate::stable_id;

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

/// `macveil.wifi-connect`: whether the daemon drives the connections of a Wi-Fi link whose
/// address depends on the network or the activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WifiConnect {
    /// Drive them when the policy needs it (`random`, `stable-ssid`, or `stable` with
    /// `${NETWORK_SSID}` or `${RANDOM}` in `connection.stable-id`) and wpa_supplicant runs with a
    /// control socket.
    Auto,
    /// Never drive them: wpa_supplicant connects on its own with the link's address.
    No,
}

impl fmt::Display for WifiConnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WifiConnect::Auto => "auto",
            WifiConnect::No => "no",
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
    /// `macveil.wifi-connect`; default `auto`.
    pub wifi_connect: Setting<WifiConnect>,
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

    /// Explains, when macveil manages the link but leaves its address as it is only because no
    /// section sets its cloned-mac-address (or `stop-match=yes` ended the search first), that
    /// the link keeps the address it is meant to hide. Returns `None` for every other policy,
    /// including an explicit `preserve`.
    pub fn unprotected_warning(&self) -> Option<String> {
        if !self.managed || self.cloned_mac_address.value != ClonedMac::Preserve {
            return None;
        }
        let key = self.cloned_mac_address_key();
        let cause = match &self.cloned_mac_address.source {
            Source::Configured(_) => return None,
            Source::Default => format!("no section sets {key}"),
            Source::StoppedAt(origin) => {
                format!("stop-match in {origin} ended the search before a section set {key}")
            }
        };
        Some(format!(
            "managed, but {cause}, so it keeps its current address (the default, preserve); set \
             {key} for it, or macveil.manage=no to leave it alone on purpose"
        ))
    }

    /// Returns whether the daemon drives this Wi-Fi link's connections: macveil manages it,
    /// `macveil.wifi-connect` is `auto`, and its address depends on the network or the
    /// activation (`random`, `stable-ssid`, or `stable` with `${NETWORK_SSID}` or `${RANDOM}`
    /// in `connection.stable-id`). For every other policy the address the daemon gives the link
    /// is right on every network.
    pub fn drives_wifi_connections(&self) -> bool {
        if !self.managed || !self.wifi || self.wifi_connect.value != WifiConnect::Auto {
            return false;
        }
        match self.cloned_mac_address.value {
            ClonedMac::Random | ClonedMac::StableSsid => true,
            ClonedMac::Stable => {
                stable_id::depends_on_network_or_activation(self.stable_id.value.as_deref())
            }
            ClonedMac::Preserve | ClonedMac::Permanent | ClonedMac::Address(_) => false,
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
        let subject = link.match_subject(dhcp_plugin);
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

        let wifi_connect = resolve(
            &self.connection,
            Key::WifiConnect,
            &subject,
            WifiConnect::Auto,
            |value| match value {
                Value::WifiConnect(mode) => Some(*mode),
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
            wifi_connect,
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
    if link.kind == LinkKind::Loopback {
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
