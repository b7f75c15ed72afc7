//! Findings about the wpa_supplicant instances that are running, read over their control
//! sockets: what each one sends now, or will send, that identifies the card.
//!
//! Configuration files show the settings a supplicant was given. The control socket shows what it
//! does:
//! the address it uses, the WPS UUID it puts in every probe request, and its P2P Device
//! address. The checks:
//!
//! - `wpa-live-permanent-address`: the supplicant uses the permanent address for its scans and
//!   associations.
//! - `wpa-live-restores-start-address`: `preassoc_mac_addr` is on while `mac_addr=0`, so the
//!   supplicant puts back the address it started with before every association.
//! - `wpa-live-wps-uuid-hardware`: the WPS UUID is the one wpa_supplicant derives from the
//!   permanent address (`uuid_gen_mac_addr()` in hostapd's `src/utils/uuid.c`), which happens
//!   when it starts on the permanent address with `auto_uuid=0` and no `uuid=`.
//! - `wpa-live-p2p-device-hardware`: the P2P Device address differs from the permanent address
//!   only in the first octet (drivers derive it by setting a bit there) and
//!   `p2p_device_random_mac_addr=0`.
//!
//! This module only reads. It never changes a supplicant or a link.

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use sha1::{Digest, Sha1};

use super::ctrl::{ClientOptions, CtrlError};
use super::supplicant::{Status, Supplicant, SupplicantOps};
use crate::addr::MacAddr;
use crate::audit::{Finding, Severity};
use crate::generate::stable_id::format_uuid;
use crate::link::Link;

/// The name-space id that wpa_supplicant hashes with the address into a WPS UUID.
const WPS_UUID_NAMESPACE: [u8; 16] = [
    0x52, 0x64, 0x80, 0xf8, 0xc9, 0x9b, 0x4b, 0xe5, 0xa6, 0x55, 0x58, 0xed, 0x5f, 0x5d, 0x60, 0x84,
];

/// Returns the WPS UUID that wpa_supplicant derives from `address` when its configuration sets
/// neither `uuid` nor `auto_uuid=1`: SHA-1 over the name-space id and the six address bytes,
/// marked as a version 5 UUID with the RFC 4122 variant.
pub fn wps_uuid_for_address(address: MacAddr) -> String {
    let mut hasher = Sha1::new();
    hasher.update(WPS_UUID_NAMESPACE);
    hasher.update(address.octets());
    let digest = hasher.finalize();

    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&digest[..16]);
    uuid[6] = 0x50 | (uuid[6] & 0x0f);
    uuid[8] = 0x80 | (uuid[8] & 0x3f);
    format_uuid(&uuid)
}

/// The facts one running supplicant reports about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplicantFacts {
    /// The interface.
    pub ifname: String,
    /// The source of the facts, for the findings' location.
    pub source: String,
    /// The interface's permanent address, when known.
    pub permanent: Option<MacAddr>,
    /// The `STATUS` reply.
    pub status: Status,
    /// `GET mac_addr`.
    pub mac_addr: String,
    /// `GET preassoc_mac_addr`.
    pub preassoc_mac_addr: String,
    /// `GET p2p_device_random_mac_addr`; `None` in a build without P2P.
    pub p2p_device_random_mac_addr: Option<String>,
}

/// Reads the facts the checks need from one supplicant interface.
pub fn read_facts(
    supplicant: &mut dyn SupplicantOps,
    ifname: &str,
    source: &str,
    permanent: Option<MacAddr>,
) -> Result<SupplicantFacts, CtrlError> {
    let status = supplicant.status()?;
    let mac_addr = supplicant.get("mac_addr")?;
    let preassoc_mac_addr = supplicant.get("preassoc_mac_addr")?;
    let p2p_device_random_mac_addr = match supplicant.get("p2p_device_random_mac_addr") {
        Ok(value) => Some(value),
        Err(CtrlError::Rejected { .. } | CtrlError::UnknownCommand { .. }) => None,
        Err(err) => return Err(err),
    };
    Ok(SupplicantFacts {
        ifname: ifname.to_string(),
        source: source.to_string(),
        permanent,
        status,
        mac_addr,
        preassoc_mac_addr,
        p2p_device_random_mac_addr,
    })
}

/// States in which the supplicant is joining or has joined a network, so its frames carry the
/// interface address now.
const ACTIVE_STATES: [&str; 6] = [
    "AUTHENTICATING",
    "ASSOCIATING",
    "ASSOCIATED",
    "4WAY_HANDSHAKE",
    "GROUP_HANDSHAKE",
    "COMPLETED",
];

/// Checks one supplicant's facts.
pub fn findings(facts: &SupplicantFacts) -> Vec<Finding> {
    let Some(permanent) = facts.permanent else {
        return Vec::new();
    };
    let ifname = facts.ifname.as_str();
    let finding = |code, severity, leak: String, reason: &str, fix: String| Finding {
        code,
        severity,
        subject: ifname.to_string(),
        location: Some(facts.source.clone()),
        leak,
        reason: reason.to_string(),
        fix,
    };
    let started_on_permanent =
        facts.status.wps_uuid() == Some(wps_uuid_for_address(permanent).as_str());
    let mut found = Vec::new();

    if facts.status.address() == Some(permanent) {
        let active = ACTIVE_STATES.contains(&facts.status.wpa_state());
        let (severity, when) = if active {
            (
                Severity::High,
                "it is connected (or connecting) with it now",
            )
        } else {
            (Severity::Medium, "its next scan and association send it")
        };
        found.push(finding(
            "wpa-live-permanent-address",
            severity,
            format!(
                "wpa_supplicant uses the permanent address {} on {ifname}, and {when}",
                permanent.redacted()
            ),
            "access points and trackers in range record the address of every frame",
            format!(
                "give {ifname} another address before it connects, with 'macveil wifi connect \
                 {ifname} --ssid SSID' or the macveil daemon"
            ),
        ));
    }

    if facts.preassoc_mac_addr != "0" && facts.mac_addr == "0" {
        let (severity, start) = if started_on_permanent {
            (
                Severity::High,
                "the permanent address, which it started with",
            )
        } else {
            (Severity::Medium, "the address it started with")
        };
        found.push(finding(
            "wpa-live-restores-start-address",
            severity,
            format!(
                "wpa_supplicant changes the address for scans (preassoc_mac_addr={}) but \
                 associates with mac_addr=0, so before every association it puts back {start}",
                facts.preassoc_mac_addr
            ),
            "after the supplicant changed the address once, mac_addr=0 means the start \
             address, not the current one, and that also undoes an address macveil set",
            String::from(
                "set preassoc_mac_addr=0 and mac_addr=0 in its configuration, restart it, and \
                 use 'macveil wifi scan-privacy IFACE on' for scans",
            ),
        ));
    }

    if started_on_permanent {
        found.push(finding(
            "wpa-live-wps-uuid-hardware",
            Severity::High,
            format!(
                "every probe request carries the WPS UUID {}, which wpa_supplicant derived from \
                 the permanent address",
                facts.status.wps_uuid().unwrap_or_default()
            ),
            "the UUID identifies the card across random scan addresses and networks, and \
             anyone who knows the permanent address can compute it",
            format!(
                "start wpa_supplicant only after {ifname} has its macveil address (macveil's udev \
                 rule sets it when the link appears), or set auto_uuid=1 in its configuration, \
                 and restart it"
            ),
        ));
    }

    let p2p_fixed = facts.p2p_device_random_mac_addr.as_deref() == Some("0");
    if let Some(p2p) = facts.status.p2p_device_address() {
        if p2p_fixed && p2p.octets()[1..] == permanent.octets()[1..] {
            found.push(finding(
                "wpa-live-p2p-device-hardware",
                Severity::Medium,
                format!(
                    "the P2P Device address {} is derived from the permanent address",
                    p2p.redacted()
                ),
                "Wi-Fi Direct searches and group negotiations send it, whatever address the \
                 station uses",
                String::from(
                    "set p2p_device_random_mac_addr=1 (or p2p_disabled=1 when Wi-Fi Direct is \
                     not used) in its configuration and restart it",
                ),
            ));
        }
    }

    found
}

/// A supplicant interface that could not be checked.
#[derive(Debug)]
pub struct Unchecked {
    /// The interface.
    pub ifname: String,
    /// Why.
    pub error: CtrlError,
}

/// Checks every supplicant interface with a control socket in `ctrl_dir` whose name is one of
/// `links` (sockets of P2P Device interfaces have no link and are skipped). A missing folder
/// means no supplicant runs.
pub fn check_running(
    ctrl_dir: &Path,
    links: &[Link],
    options: &ClientOptions,
) -> (Vec<Finding>, Vec<Unchecked>) {
    let mut found = Vec::new();
    let mut unchecked = Vec::new();
    let Ok(entries) = fs::read_dir(ctrl_dir) else {
        log::debug!("no wpa_supplicant control folder at {}", ctrl_dir.display());
        return (found, unchecked);
    };

    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_socket()))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();

    for name in names {
        let Some(link) = links.iter().find(|link| link.name == name) else {
            log::debug!("skipping control socket {name}: no link has that name");
            continue;
        };
        let source = format!(
            "wpa_supplicant control socket {}",
            ctrl_dir.join(&name).display()
        );
        let result = Supplicant::open(ctrl_dir, &name, options)
            .and_then(|mut supplicant| read_facts(&mut supplicant, &name, &source, link.permanent));
        match result {
            Ok(facts) => found.extend(findings(&facts)),
            Err(error) => unchecked.push(Unchecked {
                ifname: name,
                error,
            }),
        }
    }
    (found, unchecked)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERMANENT: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0]);
    const MACVEIL: MacAddr = MacAddr([0x06, 0x11, 0x22, 0x33, 0x44, 0x55]);

    fn facts(
        status: &str,
        mac_addr: &str,
        preassoc: &str,
        p2p_random: Option<&str>,
    ) -> SupplicantFacts {
        SupplicantFacts {
            ifname: "wlan0".into(),
            source: "test".into(),
            permanent: Some(PERMANENT),
            status: Status::parse(status),
            mac_addr: mac_addr.into(),
            preassoc_mac_addr: preassoc.into(),
            p2p_device_random_mac_addr: p2p_random.map(str::to_string),
        }
    }

    fn codes(found: &[Finding]) -> Vec<&'static str> {
        found.iter().map(|finding| finding.code).collect()
    }

    #[test]
    fn wps_uuid_matches_wpa_supplicant() {
        // wpa_supplicant 2.10 logged this UUID for 02:00:00:00:00:00 in the Wi-Fi lab
        // ("WPS: UUID based on MAC address").
        assert_eq!(
            wps_uuid_for_address(PERMANENT),
            "362db47b-a53a-5191-88fb-5458b986b2e4"
        );
    }

    #[test]
    fn default_supplicant_on_permanent_flagged() {
        let status = format!(
            "wpa_state=COMPLETED\naddress={PERMANENT}\nuuid={}\np2p_device_address=42:00:00:00:00:00\n",
            wps_uuid_for_address(PERMANENT)
        );
        let found = findings(&facts(&status, "0", "0", Some("0")));
        assert_eq!(
            codes(&found),
            vec![
                "wpa-live-permanent-address",
                "wpa-live-wps-uuid-hardware",
                "wpa-live-p2p-device-hardware"
            ]
        );
        assert_eq!(found[0].severity, Severity::High);
        assert!(
            !found[0].leak.contains("02:00:00:00:00:00"),
            "{}",
            found[0].leak
        );
    }

    #[test]
    fn idle_supplicant_on_permanent_is_medium() {
        let status = format!("wpa_state=DISCONNECTED\naddress={PERMANENT}\n");
        let found = findings(&facts(&status, "0", "0", None));
        assert_eq!(codes(&found), vec!["wpa-live-permanent-address"]);
        assert_eq!(found[0].severity, Severity::Medium);
    }

    #[test]
    fn macveil_address_and_random_uuid_clean() {
        let status = format!(
            "wpa_state=COMPLETED\naddress={MACVEIL}\nuuid={}\np2p_device_address=46:11:22:33:44:55\n",
            wps_uuid_for_address(MACVEIL)
        );
        assert!(findings(&facts(&status, "0", "0", Some("1"))).is_empty());
    }

    #[test]
    fn preassoc_with_mac_addr_zero_flagged() {
        let status = format!("wpa_state=DISCONNECTED\naddress={MACVEIL}\n");
        let found = findings(&facts(&status, "0", "1", None));
        assert_eq!(codes(&found), vec!["wpa-live-restores-start-address"]);
        assert_eq!(found[0].severity, Severity::Medium);

        // Started on the permanent address: the address put back is the permanent one.
        let status = format!(
            "wpa_state=DISCONNECTED\naddress={MACVEIL}\nuuid={}\n",
            wps_uuid_for_address(PERMANENT)
        );
        let found = findings(&facts(&status, "0", "1", None));
        assert_eq!(
            codes(&found),
            vec![
                "wpa-live-restores-start-address",
                "wpa-live-wps-uuid-hardware"
            ]
        );
        assert_eq!(found[0].severity, Severity::High);
    }

    #[test]
    fn supplicant_owned_randomization_not_restore() {
        let status = format!("wpa_state=DISCONNECTED\naddress={MACVEIL}\n");
        assert!(findings(&facts(&status, "1", "1", None)).is_empty());
    }

    #[test]
    fn p2p_unrelated_address_not_flagged() {
        let status = format!(
            "wpa_state=DISCONNECTED\naddress={MACVEIL}\np2p_device_address=42:99:99:99:99:99\n"
        );
        assert!(findings(&facts(&status, "0", "0", Some("0"))).is_empty());
    }

    #[test]
    fn unknown_permanent_gives_nothing() {
        let mut facts = facts(
            "wpa_state=COMPLETED\naddress=02:00:00:00:00:00\n",
            "0",
            "1",
            None,
        );
        facts.permanent = None;
        assert!(findings(&facts).is_empty());
    }

    #[test]
    fn check_running_without_folder_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (found, unchecked) =
            check_running(&dir.path().join("absent"), &[], &ClientOptions::default());
        assert!(found.is_empty());
        assert!(unchecked.is_empty());
    }

    #[test]
    fn check_running_reads_fake_supplicant() {
        use super::super::ctrl::fake::{Answer, FakeServer};
        use crate::link::{AssignType, OperState};

        let status = format!(
            "wpa_state=COMPLETED\naddress={PERMANENT}\nuuid={}\n",
            wps_uuid_for_address(PERMANENT)
        );
        let server = FakeServer::start(move |command| match command {
            "PING" => Answer::reply("PONG\n"),
            "STATUS" => Answer::reply(&status),
            "GET mac_addr" | "GET preassoc_mac_addr" => Answer::reply("0\n"),
            _ => Answer::reply("FAIL\n"),
        });
        // A socket without a link (a P2P Device interface) is skipped.
        let _p2p = std::os::unix::net::UnixDatagram::bind(server.dir.path().join("p2p-dev-wlan0"))
            .unwrap();
        let link = Link {
            index: 3,
            name: "wlan0".into(),
            info_kind: None,
            wireless: true,
            link_type: 1,
            driver: Some("mac80211_hwsim".into()),
            admin_up: true,
            lower_up: true,
            operstate: OperState::Up,
            address: Some(PERMANENT),
            permanent: Some(PERMANENT),
            permanent_source: None,
            assign_type: AssignType::Permanent,
            parent: None,
            ipv6_addr_gen_mode: None,
        };
        let local = tempfile::tempdir().unwrap();
        let options = ClientOptions {
            parent_dir: Some(local.path().to_path_buf()),
            timeout: std::time::Duration::from_secs(2),
        };

        let (found, unchecked) = check_running(server.dir.path(), &[link], &options);
        assert!(unchecked.is_empty(), "{unchecked:?}");
        assert_eq!(
            codes(&found),
            vec!["wpa-live-permanent-address", "wpa-live-wps-uuid-hardware"]
        );
        assert!(found[0].location.as_deref().unwrap().ends_with("/wlan0"));
        assert!(!server.commands().is_empty());
    }
}
