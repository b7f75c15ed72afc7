//! Findings from NetworkManager's configuration and profiles: MAC address policies that keep the
//! hardware address, scans without address randomization, and DHCP or IPv6 settings that send
//! the host name or identifiers built from the hardware address or the machine id.
//!
//! Each profile is judged on each device it can activate on ([`resolve::candidates`]), with the
//! values NetworkManager resolves for it ([`resolve::effective_mac`],
//! [`resolve::effective_dhcp`]). `preserve` keeps whatever address the device has, so it
//! exposes the hardware address only on a device that nothing else anonymizes: the caller says
//! which devices macveil covers.
//!
//! The DHCP facts come from nm-settings-nmcli(5) of NetworkManager 1.42:
//! - `ipv4.dhcp-client-id=mac` and `perm-mac` use the current and the permanent address. The
//!   internal DHCP client behaves as `mac` when the property is unset, and `duid` hashes
//!   `/etc/machine-id`.
//! - `ipv6.dhcp-duid=ll` and `llt` use the current address, and `llt` adds one timestamp kept for
//!   the whole machine. The default, `lease`, falls back to a DUID-UUID from the machine id.

use super::{Finding, Severity};
use crate::addr::MacAddr;
use crate::config::{ClonedMac, LinkFacts, LinkKind};
use crate::nm::conf::NmConfig;
use crate::nm::profile::{Profile, Profiles};
use crate::nm::resolve::{
    self, AddrGenMode, Candidate, EffectiveDhcp, EffectiveMac, ValueSource, candidate_name,
};
use crate::nm::version::NmVersion;

/// The inputs of the NetworkManager checks.
pub struct NmInputs<'a> {
    /// NetworkManager's merged configuration.
    pub config: &'a NmConfig,
    /// Its connection profiles.
    pub profiles: &'a Profiles,
    /// The links present now.
    pub links: &'a [LinkFacts],
    /// The version whose rules apply; none means the newest known rules.
    pub version: Option<NmVersion>,
    /// Returns whether something other than NetworkManager (the macveil daemon) replaces the
    /// hardware address of a link, so that `preserve` keeps an anonymized address.
    pub covered: &'a dyn Fn(&LinkFacts) -> bool,
}

/// Checks every profile on every device it can activate on, and the scan settings of each
/// Wi-Fi link.
pub fn check_networkmanager(inputs: &NmInputs<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    for profile in &inputs.profiles.profiles {
        if !profile.kind.has_mac_policy() {
            continue;
        }
        for candidate in resolve::candidates(profile, inputs.links) {
            findings.extend(check_profile(inputs, profile, &candidate));
        }
    }
    findings.extend(check_scans(inputs));
    findings
}

/// Formats the subject of a profile finding: `profile 'NAME' on DEVICE`.
fn subject(profile: &Profile, candidate: &Candidate) -> String {
    format!("profile '{}' on {}", profile.id, candidate_name(candidate))
}

/// Formats the nmcli command that applies `settings` (key-value pairs) to the profile.
fn modify_command(profile: &Profile, settings: &str) -> String {
    format!(
        "nmcli connection modify {} {settings}",
        shell_quote(&profile.uuid)
    )
}

/// Quotes `text` for a POSIX shell when it needs quoting.
fn shell_quote(text: &str) -> String {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':'));
    if plain && !text.is_empty() {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Runs the checks of one profile on one device.
fn check_profile(inputs: &NmInputs<'_>, profile: &Profile, candidate: &Candidate) -> Vec<Finding> {
    let link = &candidate.link;
    let mac = match resolve::effective_mac(inputs.config, profile, link, inputs.version) {
        Ok(mac) => mac,
        Err(err) => {
            log::warn!("skipping profile '{}': {err}", profile.id);
            return Vec::new();
        }
    };

    let covered = candidate.present && (inputs.covered)(link);
    let keeps_hardware = mac.keeps_hardware_address(link.permanent, covered);
    let mut findings = Vec::new();
    findings.extend(mac_finding(profile, candidate, &mac, covered));

    let dhcp = resolve::effective_dhcp(inputs.config, profile, link);
    findings.extend(dhcp_findings(
        inputs,
        profile,
        candidate,
        &dhcp,
        keeps_hardware,
    ));
    findings
}

/// Reports a MAC address mode that keeps the hardware address or a fixed one.
fn mac_finding(
    profile: &Profile,
    candidate: &Candidate,
    mac: &EffectiveMac,
    covered: bool,
) -> Option<Finding> {
    let device = candidate_name(candidate);
    let key = mac.key;
    let from = &mac.mode_source;
    let notes = if mac.notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", mac.notes.join("; "))
    };
    let fix = |value: &str| {
        if from.is_profile() {
            format!(
                "{}, or remove {key} from the profile and run 'macveil nm install'",
                modify_command(profile, &format!("{key} {value}"))
            )
        } else {
            format!(
                "run 'macveil nm install', which makes {value} the default, or set it for this \
                 profile: {}",
                modify_command(profile, &format!("{key} {value}"))
            )
        }
    };

    let (code, leak, reason) = match mac.mode {
        ClonedMac::Permanent => (
            "nm-cloned-mac-permanent",
            format!(
                "NetworkManager gives {device} its permanent address when '{}' activates \
                 ({key}=permanent, {from})",
                profile.id
            ),
            String::from(
                "the permanent address is the card's identity, the same on every network it joins",
            ),
        ),
        ClonedMac::Preserve if !covered => (
            "nm-cloned-mac-preserve",
            format!(
                "NetworkManager keeps the address {device} has when '{}' activates \
                 ({key}=preserve, {from}), and nothing else replaces the hardware address{notes}",
                profile.id
            ),
            String::from(
                "the device then joins the network with its hardware address, which identifies \
                 the machine on every network",
            ),
        ),
        ClonedMac::Address(address) => {
            let permanent = Some(address) == candidate.link.permanent;
            (
                "nm-cloned-mac-fixed",
                format!(
                    "NetworkManager gives {device} the fixed address {} when '{}' activates \
                     ({key}, {from})",
                    shown_address(address, permanent),
                    profile.id
                ),
                if permanent {
                    String::from("the fixed address is the card's permanent address")
                } else {
                    String::from(
                        "a fixed address is the same on every network, so it links the \
                         machine's visits as the hardware address does",
                    )
                },
            )
        }
        _ => return None,
    };

    Some(Finding {
        code,
        severity: Severity::Medium,
        subject: subject(profile, candidate),
        location: from.location(),
        leak,
        reason,
        fix: fix("stable"),
    })
}

/// Formats an address for a finding: a permanent address is redacted, as in logs.
fn shown_address(address: MacAddr, permanent: bool) -> String {
    if permanent {
        address.redacted()
    } else {
        address.to_string()
    }
}

/// Reports the host name, client ids, DUIDs and IPv6 identifiers the profile sends.
fn dhcp_findings(
    inputs: &NmInputs<'_>,
    profile: &Profile,
    candidate: &Candidate,
    dhcp: &EffectiveDhcp,
    keeps_hardware: bool,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let device = candidate_name(candidate);
    let hardware_severity = if keeps_hardware {
        Severity::Medium
    } else {
        Severity::Low
    };

    let mut sends_hostname = Vec::new();
    if dhcp.dhcp4 && dhcp.send_hostname4.0 {
        sends_hostname.push(("ipv4", &dhcp.send_hostname4.1));
    }
    if dhcp.ipv6_auto && dhcp.send_hostname6.0 {
        sends_hostname.push(("ipv6", &dhcp.send_hostname6.1));
    }
    if !sends_hostname.is_empty() {
        let families: Vec<String> = sends_hostname
            .iter()
            .map(|(family, source)| format!("{family}.dhcp-send-hostname=yes, {source}"))
            .collect();
        let name = if dhcp.hostname_given {
            "the name in dhcp-hostname"
        } else {
            "the machine's host name"
        };
        findings.push(Finding {
            code: "nm-dhcp-hostname",
            severity: Severity::Low,
            subject: subject(profile, candidate),
            location: sends_hostname
                .iter()
                .find_map(|(_, source)| source.location()),
            leak: format!(
                "'{}' sends {name} to DHCP servers ({})",
                profile.id,
                families.join("; ")
            ),
            reason: String::from(
                "the host name names the machine on every network, whatever its address",
            ),
            fix: modify_command(
                profile,
                "ipv4.dhcp-send-hostname no ipv6.dhcp-send-hostname no",
            ),
        });
    }

    if dhcp.dhcp4 {
        let (client_id, source) = &dhcp.client_id;
        let effective = match client_id.as_deref() {
            Some(value) => Some(value.to_string()),
            None if inputs.config.dhcp_plugin() == "internal" => Some(String::from("mac")),
            None => None,
        };
        let described = match client_id {
            Some(value) => format!("ipv4.dhcp-client-id={value}, {source}"),
            None => String::from(
                "ipv4.dhcp-client-id unset, so the internal DHCP client sends the current address",
            ),
        };
        let fix = modify_command(profile, "ipv4.dhcp-client-id stable");
        let hardware = match effective.as_deref() {
            Some("perm-mac") => true,
            Some("mac") => keeps_hardware,
            Some(hex) => candidate
                .link
                .permanent
                .is_some_and(|permanent| is_hardware_client_id(hex, permanent)),
            None => false,
        };
        if hardware {
            findings.push(Finding {
                code: "nm-dhcp-client-id-hardware",
                severity: Severity::Medium,
                subject: subject(profile, candidate),
                location: source.location(),
                leak: format!(
                    "'{}' identifies itself to DHCP servers with the hardware address of \
                     {device} ({described})",
                    profile.id
                ),
                reason: String::from(
                    "DHCP servers log the client id, and relays carry it beyond the local network",
                ),
                fix,
            });
        } else if effective.as_deref() == Some("duid") {
            findings.push(Finding {
                code: "nm-dhcp-client-id-machine",
                severity: Severity::Low,
                subject: subject(profile, candidate),
                location: source.location(),
                leak: format!(
                    "'{}' sends a DHCP client id derived from /etc/machine-id ({described})",
                    profile.id
                ),
                reason: String::from(
                    "the client id is the same on every network, so servers can link the \
                     machine's visits",
                ),
                fix,
            });
        }
    }

    let uses_duid =
        dhcp.ipv6_auto || (dhcp.dhcp4 && dhcp.client_id.0.as_deref() == Some("ipv6-duid"));
    if uses_duid {
        findings.extend(duid_finding(profile, candidate, dhcp, keeps_hardware));
    }

    if dhcp.ipv6_auto && dhcp.addr_gen_mode.0 == AddrGenMode::Eui64 {
        let source = &dhcp.addr_gen_mode.1;
        findings.push(Finding {
            code: "nm-ipv6-eui64",
            severity: hardware_severity,
            subject: subject(profile, candidate),
            location: source.location(),
            leak: format!(
                "'{}' forms its IPv6 addresses from the address of {device} \
                 (ipv6.addr-gen-mode=eui64, {})",
                profile.id,
                eui64_source(source)
            ),
            reason: if keeps_hardware {
                String::from(
                    "the interface identifier is then the hardware address, and global IPv6 \
                     addresses carry it to every host the machine talks to",
                )
            } else {
                String::from(
                    "global IPv6 addresses carry the link address to every host the machine \
                     talks to, beyond the local network",
                )
            },
            fix: modify_command(profile, "ipv6.addr-gen-mode stable-privacy"),
        });
    }
    findings
}

/// Describes where an EUI-64 mode comes from; a keyfile without the key reads as
/// `default-or-eui64`.
fn eui64_source(source: &ValueSource) -> String {
    match source {
        ValueSource::Global(crate::config::Source::Default) => {
            String::from("the profile does not set it, which a keyfile reads as default-or-eui64")
        }
        other => other.to_string(),
    }
}

/// Reports a DHCPv6 DUID built from the hardware address or fixed for the whole machine.
fn duid_finding(
    profile: &Profile,
    candidate: &Candidate,
    dhcp: &EffectiveDhcp,
    keeps_hardware: bool,
) -> Option<Finding> {
    let (duid, source) = &dhcp.duid;
    let device = candidate_name(candidate);
    let described = format!("ipv6.dhcp-duid={duid}, {source}");
    let fix = format!(
        "{}; a stable-id with ${{CONNECTION}} gives each network its own DUID",
        modify_command(profile, "ipv6.dhcp-duid stable-uuid")
    );
    let (code, severity, leak, reason) = match duid.as_str() {
        "ll" | "llt" if keeps_hardware => (
            "nm-dhcp-duid-hardware",
            Severity::Medium,
            format!(
                "'{}' sends a DHCPv6 DUID that contains the hardware address of {device} \
                 ({described})",
                profile.id
            ),
            String::from(
                "DHCPv6 servers log the DUID, and relays carry it beyond the local network",
            ),
        ),
        "llt" => (
            "nm-dhcp-duid-fixed",
            Severity::Low,
            format!(
                "'{}' sends a DHCPv6 DUID-LLT whose time field is one value for the whole \
                 machine ({described})",
                profile.id
            ),
            String::from(
                "the time field is kept on disk and is the same on every network, so servers \
                 can link the machine's visits",
            ),
        ),
        "lease" => (
            "nm-dhcp-duid-machine",
            Severity::Low,
            format!(
                "'{}' sends the DHCPv6 DUID of its last lease, or else one derived from \
                 /etc/machine-id ({described})",
                profile.id
            ),
            String::from(
                "that DUID is the same on every network, so servers can link the machine's \
                 visits",
            ),
        ),
        "ll" | "stable-ll" | "stable-llt" | "stable-uuid" => return None,
        _ => (
            "nm-dhcp-duid-fixed",
            Severity::Low,
            format!("'{}' sends a fixed DHCPv6 DUID ({described})", profile.id),
            String::from("a fixed DUID is the same on every network"),
        ),
    };
    Some(Finding {
        code,
        severity,
        subject: subject(profile, candidate),
        location: source.location(),
        leak,
        reason,
        fix,
    })
}

/// Returns whether a hexadecimal client id is the Ethernet type (01) followed by `permanent`.
fn is_hardware_client_id(hex: &str, permanent: MacAddr) -> bool {
    let bytes: Option<Vec<u8>> = hex
        .split(':')
        .map(|part| u8::from_str_radix(part, 16).ok())
        .collect();
    match bytes {
        Some(bytes) if bytes.len() == 7 => bytes[0] == 1 && bytes[1..] == permanent.octets(),
        _ => false,
    }
}

/// Reports Wi-Fi links that NetworkManager scans on without a random address. With no Wi-Fi link
/// present, a setting that would apply to any Wi-Fi card is reported.
fn check_scans(inputs: &NmInputs<'_>) -> Vec<Finding> {
    let mut wifi: Vec<(LinkFacts, bool)> = inputs
        .links
        .iter()
        .filter(|link| link.kind == LinkKind::Wifi)
        .map(|link| (link.clone(), true))
        .collect();
    if wifi.is_empty() {
        let any = LinkFacts {
            name: String::new(),
            kind: LinkKind::Wifi,
            driver: None,
            driver_version: None,
            permanent: None,
            current: None,
            device: None,
        };
        wifi.push((any, false));
    }

    let mut findings = Vec::new();
    for (link, present) in wifi {
        let policy = inputs.config.policy_for(&link);
        let Some(scan) = policy.scan_rand_mac_address else {
            continue;
        };
        if scan.value {
            continue;
        }
        let device = if present {
            link.name.clone()
        } else {
            String::from("any Wi-Fi device")
        };
        let location = match &scan.source {
            crate::config::Source::Configured(origin) => {
                Some(format!("{}:{}", origin.file, origin.line))
            }
            _ => None,
        };
        findings.push(Finding {
            code: "nm-scan-rand-off",
            severity: Severity::Medium,
            subject: device.clone(),
            location: location.clone(),
            leak: format!(
                "NetworkManager scans on {device} with its current address \
                 (wifi.scan-rand-mac-address=no, {})",
                scan.source
            ),
            reason: String::from(
                "probe requests reach every access point and tracker in range, and before any \
                 connection the current address is usually the hardware address",
            ),
            fix: match location {
                Some(place) => format!(
                    "set wifi.scan-rand-mac-address=yes at {place}, unless the driver cannot \
                     change its address during scans"
                ),
                None => String::from("set wifi.scan-rand-mac-address=yes in a [device] section"),
            },
        });
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceText;
    use crate::nm::profile::parse_profile;
    use std::path::Path;

    const UUID: &str = "7a7fc2ab-6b38-4c4c-8b6d-5f1a5e1f6e3a";

    fn config(text: &str) -> NmConfig {
        NmConfig::from_sources(&[SourceText::new("/etc/NetworkManager/conf.d/x.conf", text)])
            .unwrap()
    }

    fn profiles(texts: &[&str]) -> Profiles {
        let profiles = texts
            .iter()
            .enumerate()
            .map(|(index, extra)| {
                let text = format!(
                    "[connection]\nid=p{index}\nuuid={}\ntype=ethernet\ninterface-name=eth0\n{extra}",
                    UUID.replacen('7', &index.to_string(), 1)
                );
                parse_profile(
                    text.as_bytes(),
                    Path::new("/p"),
                    &format!("/etc/NetworkManager/system-connections/p{index}.nmconnection"),
                )
                .unwrap()
            })
            .collect();
        Profiles {
            profiles,
            skipped: Vec::new(),
        }
    }

    fn eth0() -> LinkFacts {
        LinkFacts {
            name: "eth0".into(),
            kind: LinkKind::Ethernet,
            driver: Some("e1000e".into()),
            driver_version: None,
            permanent: Some("3c:22:fb:01:02:03".parse().unwrap()),
            current: Some("3c:22:fb:01:02:03".parse().unwrap()),
            device: None,
        }
    }

    fn wlan0() -> LinkFacts {
        LinkFacts {
            name: "wlan0".into(),
            kind: LinkKind::Wifi,
            driver: Some("iwlwifi".into()),
            ..eth0()
        }
    }

    /// IP settings that send nothing, so that only the MAC findings remain.
    const QUIET_IP: &str = "[ipv4]\nmethod=disabled\n[ipv6]\nmethod=disabled\n";

    fn run(
        config: &NmConfig,
        profiles: &Profiles,
        links: &[LinkFacts],
        covered: bool,
    ) -> Vec<Finding> {
        let covered = move |_: &LinkFacts| covered;
        check_networkmanager(&NmInputs {
            config,
            profiles,
            links,
            version: Some(NmVersion::new(1, 42, 4)),
            covered: &covered,
        })
    }

    fn codes(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|finding| finding.code).collect()
    }

    #[test]
    fn permanent_in_profile_is_reported() {
        let profiles = profiles(&[&format!(
            "[ethernet]\ncloned-mac-address=permanent\n{QUIET_IP}"
        )]);
        let findings = run(&config(""), &profiles, &[eth0()], true);
        assert_eq!(codes(&findings), ["nm-cloned-mac-permanent"]);
        assert_eq!(findings[0].subject, "profile 'p0' on eth0");
        assert_eq!(
            findings[0].location.as_deref(),
            Some("/etc/NetworkManager/system-connections/p0.nmconnection:7")
        );
        assert!(
            findings[0].fix.contains("nmcli connection modify"),
            "{}",
            findings[0].fix
        );
    }

    #[test]
    fn preserve_reported_only_when_uncovered() {
        let profiles = profiles(&[QUIET_IP]);
        let uncovered = run(&config(""), &profiles, &[eth0()], false);
        assert_eq!(codes(&uncovered), ["nm-cloned-mac-preserve"]);
        assert_eq!(uncovered[0].location, None);
        assert!(
            uncovered[0].leak.contains("built-in default"),
            "{}",
            uncovered[0].leak
        );

        let covered = run(&config(""), &profiles, &[eth0()], true);
        assert!(covered.is_empty(), "{covered:?}");
    }

    #[test]
    fn stable_default_clears_mac_findings() {
        let profiles = profiles(&[QUIET_IP]);
        let nm = config("[connection-macveil]\nethernet.cloned-mac-address=stable\n");
        assert!(run(&nm, &profiles, &[eth0()], false).is_empty());
    }

    #[test]
    fn fixed_address_is_reported_and_redacted() {
        let profiles = profiles(&[
            &format!("[ethernet]\ncloned-mac-address=3c:22:fb:01:02:03\n{QUIET_IP}"),
            &format!("[ethernet]\ncloned-mac-address=02:00:00:00:00:01\n{QUIET_IP}"),
        ]);
        let findings = run(&config(""), &profiles, &[eth0()], false);
        assert_eq!(
            codes(&findings),
            ["nm-cloned-mac-fixed", "nm-cloned-mac-fixed"]
        );
        assert!(
            findings[0].leak.contains("3c:22:fb:xx:xx:xx"),
            "{}",
            findings[0].leak
        );
        assert!(findings[0].reason.contains("permanent"));
        assert!(findings[1].leak.contains("02:00:00:00:00:01"));
    }

    #[test]
    fn dhcp_defaults_send_name_and_address() {
        let profiles = profiles(&[""]);
        let findings = run(&config(""), &profiles, &[eth0()], false);
        assert_eq!(
            codes(&findings),
            [
                "nm-cloned-mac-preserve",
                "nm-dhcp-hostname",
                "nm-dhcp-client-id-hardware",
                "nm-dhcp-duid-machine",
                "nm-ipv6-eui64"
            ]
        );
        assert_eq!(findings[1].severity, Severity::Low);
        assert_eq!(findings[2].severity, Severity::Medium);
        assert_eq!(findings[4].severity, Severity::Medium);
    }

    #[test]
    fn dhcp_with_anonymized_address_is_milder() {
        let profiles = profiles(&["[ipv4]\ndhcp-send-hostname=false\n[ipv6]\nmethod=ignore\n"]);
        let nm = config("[connection]\nethernet.cloned-mac-address=stable\n");
        assert!(run(&nm, &profiles, &[eth0()], false).is_empty());
    }

    #[test]
    fn client_id_values_are_judged() {
        let cases = [
            ("perm-mac", Some("nm-dhcp-client-id-hardware")),
            ("mac", None),
            ("duid", Some("nm-dhcp-client-id-machine")),
            ("stable", None),
            ("01:3c:22:fb:01:02:03", Some("nm-dhcp-client-id-hardware")),
            ("01:02:00:00:00:00:01", None),
        ];
        let nm = config("[connection]\nethernet.cloned-mac-address=stable\n");
        for (value, expected) in cases {
            let profiles = profiles(&[&format!(
                "[ipv4]\ndhcp-send-hostname=no\ndhcp-client-id={value}\n[ipv6]\nmethod=disabled\n"
            )]);
            let found = codes(&run(&nm, &profiles, &[eth0()], false));
            assert_eq!(found, expected.into_iter().collect::<Vec<_>>(), "{value}");
        }
    }

    #[test]
    fn duid_values_are_judged() {
        let cases = [
            ("ll", false, None),
            (
                "ll",
                true,
                Some(("nm-dhcp-duid-hardware", Severity::Medium)),
            ),
            ("llt", false, Some(("nm-dhcp-duid-fixed", Severity::Low))),
            ("stable-uuid", true, None),
            (
                "lease",
                false,
                Some(("nm-dhcp-duid-machine", Severity::Low)),
            ),
        ];
        for (value, hardware, expected) in cases {
            let mode = if hardware { "permanent" } else { "stable" };
            let profiles = profiles(&[&format!(
                "[ethernet]\ncloned-mac-address={mode}\n[ipv4]\nmethod=disabled\n\
                 [ipv6]\ndhcp-duid={value}\naddr-gen-mode=stable-privacy\ndhcp-send-hostname=no\n"
            )]);
            let findings = run(&config(""), &profiles, &[eth0()], false);
            let found: Vec<(&str, Severity)> = findings
                .iter()
                .filter(|finding| finding.code.starts_with("nm-dhcp-duid"))
                .map(|finding| (finding.code, finding.severity))
                .collect();
            assert_eq!(
                found,
                expected.into_iter().collect::<Vec<_>>(),
                "{value} {mode}"
            );
        }
    }

    #[test]
    fn global_addr_gen_mode_default_applies() {
        let profiles = profiles(&[
            "[ipv4]\nmethod=disabled\n[ipv6]\ndhcp-duid=stable-uuid\ndhcp-send-hostname=no\n",
        ]);
        let eui = run(
            &config("[connection]\nethernet.cloned-mac-address=stable\n"),
            &profiles,
            &[eth0()],
            false,
        );
        assert_eq!(codes(&eui), ["nm-ipv6-eui64"]);
        assert_eq!(eui[0].severity, Severity::Low);
        assert!(eui[0].leak.contains("default-or-eui64"), "{}", eui[0].leak);

        let privacy = run(
            &config("[connection]\nethernet.cloned-mac-address=stable\nipv6.addr-gen-mode=1\n"),
            &profiles,
            &[eth0()],
            false,
        );
        assert!(privacy.is_empty(), "{privacy:?}");
    }

    #[test]
    fn scan_randomization_off_is_reported() {
        let nm = config(
            "[device-31-mac-addr-change]\nmatch-device=driver:wl\nwifi.scan-rand-mac-address=no\n",
        );
        let none = Profiles::default();
        assert!(run(&nm, &none, &[wlan0()], false).is_empty());

        let mut broadcom = wlan0();
        broadcom.driver = Some("wl".into());
        let findings = run(&nm, &none, &[broadcom], false);
        assert_eq!(codes(&findings), ["nm-scan-rand-off"]);
        assert_eq!(findings[0].subject, "wlan0");
        assert_eq!(
            findings[0].location.as_deref(),
            Some("/etc/NetworkManager/conf.d/x.conf:3")
        );

        let everywhere = config("[device]\nwifi.scan-rand-mac-address=no\n");
        let findings = run(&everywhere, &none, &[], false);
        assert_eq!(codes(&findings), ["nm-scan-rand-off"]);
        assert_eq!(findings[0].subject, "any Wi-Fi device");
    }

    #[test]
    fn profiles_without_mac_policy_are_skipped() {
        let text = format!("[connection]\nid=vpn\nuuid={UUID}\ntype=vpn\n");
        let vpn = parse_profile(text.as_bytes(), Path::new("/v"), "/v").unwrap();
        let profiles = Profiles {
            profiles: vec![vpn],
            skipped: Vec::new(),
        };
        assert!(run(&config(""), &profiles, &[eth0()], false).is_empty());
    }

    #[test]
    fn shell_quote_protects_names() {
        assert_eq!(shell_quote(UUID), UUID);
        assert_eq!(shell_quote("Home Wi-Fi"), "'Home Wi-Fi'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
