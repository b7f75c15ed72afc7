//! NetworkManager's own configuration, read as NetworkManager reads it: its files in its order
//! ([`crate::config::files::nm_files`]), merged by its rules, with the `[connection*]` and
//! `[device*]` sections looked up per device.
//!
//! The MAC keys go through the checked sections that macveil's own policy uses, so both agree on
//! every value. Other `[connection*]` keys that matter for privacy (`ipv4.dhcp-client-id`,
//! `ipv6.dhcp-duid`, `ipv6.addr-gen-mode`) are looked up raw with the same section order,
//! `match-device=` and `stop-match=` rules, as NetworkManager's
//! `nm_config_data_get_connection_default()` does.
//!
//! This module reads files only.

use crate::config::files::{self, CONNECTION_PREFIX, MATCH_DEVICE, Merged, MergedGroup};
use crate::config::keyfile;
use crate::config::keys::Sections;
use crate::config::matching::{MatchList, MatchSubject};
use crate::config::{
    ConfigErrors, ConfigPaths, ConfigWarning, LinkFacts, LinkPolicy, MergedSources, Origin,
    SourceText, read_sources,
};

/// NetworkManager's `[main] dhcp` when no file sets it. A distribution's build can change it;
/// "internal" is the upstream default since NetworkManager 1.20.
pub const DEFAULT_DHCP_PLUGIN: &str = crate::config::DEFAULT_DHCP_PLUGIN;

/// NetworkManager's configuration, merged.
#[derive(Debug)]
pub struct NmConfig {
    files: Vec<String>,
    merged: Merged,
    sections: Sections,
    dhcp_plugin: String,
    warnings: Vec<ConfigWarning>,
}

/// The result of looking a key up in the `[connection*]` sections for one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A matching section sets the key; the value has its escapes decoded.
    Found {
        /// The value.
        value: String,
        /// The place that sets it.
        origin: Origin,
    },
    /// A matching section without the key has `stop-match=yes`, so the built-in default
    /// applies.
    Stopped(Origin),
    /// No section sets the key for this device.
    Missing,
}

impl NmConfig {
    /// Reads NetworkManager's files below the paths given. No file at all is a valid, empty
    /// configuration.
    pub fn load(paths: &ConfigPaths) -> Result<NmConfig, ConfigErrors> {
        let sources = read_sources(&files::nm_files(paths)?)?;
        NmConfig::from_sources(&sources)
    }

    /// Parses configuration text already in memory, in NetworkManager's order.
    pub fn from_sources(sources: &[SourceText]) -> Result<NmConfig, ConfigErrors> {
        let MergedSources {
            files,
            merged,
            sections,
            dhcp_plugin,
            errors,
            warnings,
        } = MergedSources::parse(sources);
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }

        Ok(NmConfig {
            files,
            merged,
            sections,
            dhcp_plugin,
            warnings,
        })
    }

    /// Resolves the MAC policy NetworkManager's defaults give `link`: the `[connection*]` defaults of
    /// the cloned-mac-address, stable-id and mask keys and the `[device*]` scan keys. The
    /// `macveil.*` fields are those of macveil's built-in defaults, because NetworkManager's
    /// files do not set them.
    pub fn policy_for(&self, link: &LinkFacts) -> LinkPolicy {
        self.sections.policy_for(link, &self.dhcp_plugin)
    }

    /// Looks `key` up in the `[connection*]` sections for `link`, as NetworkManager does for a
    /// connection default.
    pub fn connection_default(&self, key: &str, link: &LinkFacts) -> Lookup {
        let subject = link.match_subject(&self.dhcp_plugin);
        for group in self.merged.sections(CONNECTION_PREFIX) {
            let entry = group.entry(key);
            let stop = stop_match(group);
            if entry.is_none() && stop.is_none() {
                continue;
            }
            if !group_matches(group, &subject) {
                continue;
            }
            return match (entry, stop) {
                (Some(entry), _) => Lookup::Found {
                    // NetworkManager reads connection defaults with g_key_file_get_string, which
                    // decodes escapes; an undecodable value reads as unset.
                    value: match keyfile::unescape(&entry.value) {
                        Ok(value) => value,
                        Err(_) => continue,
                    },
                    origin: Origin {
                        section: group.name.clone(),
                        file: entry.file.clone(),
                        line: entry.line,
                    },
                },
                (None, Some(origin)) => Lookup::Stopped(origin),
                (None, None) => Lookup::Missing,
            };
        }
        Lookup::Missing
    }

    /// NetworkManager's `[main] dhcp` plugin.
    pub fn dhcp_plugin(&self) -> &str {
        &self.dhcp_plugin
    }

    /// Returns the files read, in NetworkManager's order. Files that `[.config] enable=false`
    /// skips are not listed.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Problems in the files worth a warning.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }
}

/// Returns the origin of `stop-match=yes` in `group`, when it is set.
fn stop_match(group: &MergedGroup) -> Option<Origin> {
    let entry = group.entry("stop-match")?;
    match keyfile::parse_bool(&entry.value) {
        Ok(Some(true)) => Some(Origin {
            section: group.name.clone(),
            file: entry.file.clone(),
            line: entry.line,
        }),
        _ => None,
    }
}

/// Returns whether `group` applies to the subject: it has no `match-device=`, or its list
/// matches.
fn group_matches(group: &MergedGroup, subject: &MatchSubject<'_>) -> bool {
    match group.entry(MATCH_DEVICE) {
        Some(entry) => MatchList::parse(&entry.value).matches(subject),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClonedMac, LinkKind, Source};

    fn config(texts: &[(&str, &str)]) -> NmConfig {
        let sources: Vec<SourceText> = texts
            .iter()
            .map(|(name, text)| SourceText::new(name, text))
            .collect();
        NmConfig::from_sources(&sources).unwrap()
    }

    fn link(name: &str, kind: LinkKind) -> LinkFacts {
        LinkFacts {
            name: name.into(),
            kind,
            driver: Some("e1000e".into()),
            driver_version: None,
            permanent: Some("3c:22:fb:01:02:03".parse().unwrap()),
            current: Some("3c:22:fb:01:02:03".parse().unwrap()),
            device: None,
        }
    }

    #[test]
    fn mac_defaults_follow_match_device() {
        let nm = config(&[(
            "a.conf",
            "[connection-wifi]\nmatch-device=type:wifi\nwifi.cloned-mac-address=random\n\
             [connection]\nethernet.cloned-mac-address=stable\n",
        )]);
        let eth = nm.policy_for(&link("eth0", LinkKind::Ethernet));
        assert_eq!(eth.cloned_mac_address.value, ClonedMac::Stable);
        let wlan = nm.policy_for(&link("wlan0", LinkKind::Wifi));
        assert_eq!(wlan.cloned_mac_address.value, ClonedMac::Random);
        assert!(matches!(
            wlan.cloned_mac_address.source,
            Source::Configured(_)
        ));
    }

    #[test]
    fn raw_default_honours_match_and_stop() {
        let nm = config(&[
            (
                "a.conf",
                "[connection]\nipv4.dhcp-client-id=mac\nipv6.dhcp-duid=ll\n",
            ),
            (
                "b.conf",
                "[connection-lab]\nmatch-device=interface-name:lab*\nipv4.dhcp-client-id=stable\n\
                 [connection-stop]\nmatch-device=interface-name:stop0\nstop-match=yes\n",
            ),
        ]);
        let lab = link("lab1", LinkKind::Ethernet);
        match nm.connection_default("ipv4.dhcp-client-id", &lab) {
            Lookup::Found { value, origin } => {
                assert_eq!(value, "stable");
                assert_eq!((origin.file.as_str(), origin.line), ("b.conf", 3));
            }
            other => panic!("unexpected {other:?}"),
        }
        let eth = link("eth0", LinkKind::Ethernet);
        assert!(matches!(
            nm.connection_default("ipv4.dhcp-client-id", &eth),
            Lookup::Found { value, .. } if value == "mac"
        ));
        let stopped = link("stop0", LinkKind::Ethernet);
        assert!(matches!(
            nm.connection_default("ipv6.dhcp-duid", &stopped),
            Lookup::Stopped(_)
        ));
        assert_eq!(
            nm.connection_default("ipv6.addr-gen-mode", &eth),
            Lookup::Missing
        );
    }

    #[test]
    fn raw_default_decodes_escapes() {
        let nm = config(&[("a.conf", "[connection]\nconnection.stable-id=\\sx\n")]);
        assert!(matches!(
            nm.connection_default("connection.stable-id", &link("eth0", LinkKind::Ethernet)),
            Lookup::Found { value, .. } if value == " x"
        ));
    }

    #[test]
    fn dhcp_plugin_defaults_to_internal() {
        assert_eq!(config(&[]).dhcp_plugin(), "internal");
        assert_eq!(
            config(&[("NetworkManager.conf", "[main]\ndhcp=dhclient\n")]).dhcp_plugin(),
            "dhclient"
        );
    }
}
