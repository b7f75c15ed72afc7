//! Findings from configuration files outside macveil that pin or reveal the hardware address:
//! systemd `.link` files, ifupdown's `hwaddress`, and wpa_supplicant's address randomization and
//! WPS UUID settings.
//!
//! Every path is read below a root folder, `/` in production and a temporary folder in tests.
//! Unreadable files are skipped with a debug log, because `check` reports on what it can see.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::{Finding, Severity};

/// systemd's `.link` folders, highest precedence first; a file hides same-named files in the
/// folders after it (systemd.link(5)).
const LINK_DIRS: [&str; 4] = [
    "etc/systemd/network",
    "run/systemd/network",
    "usr/lib/systemd/network",
    "lib/systemd/network",
];

/// Reads a file as text, or `None` when it is missing or unreadable.
fn read_text(path: &Path) -> Option<String> {
    match fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(err) => {
            log::debug!("skipping {}: {err}", path.display());
            None
        }
    }
}

/// Lists the regular files directly in `dir` whose names end with `suffix`, sorted by name.
fn list_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

/// Formats `path` as the user sees it: relative to `root`, with a leading slash.
fn display_path(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(relative) => format!("/{}", relative.display()),
        Err(_) => path.display().to_string(),
    }
}

/// Checks the systemd `.link` files that are in effect: `MACAddress=` pins one address on every
/// network, and `MACAddressPolicy=persistent` gives links without a permanent address an address
/// derived from the machine id.
pub fn check_systemd_link_files(root: &Path) -> Vec<Finding> {
    // The first folder that has a name wins, so later same-named files are hidden.
    let mut effective: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in LINK_DIRS {
        for path in list_files(&root.join(dir), ".link") {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            effective.entry(name).or_insert(path);
        }
    }

    let mut findings = Vec::new();
    for path in effective.values() {
        let Some(text) = read_text(path) else {
            continue;
        };
        let shown = display_path(root, path);
        let mut section = String::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.starts_with('[') && line.ends_with(']') {
                section = line[1..line.len() - 1].to_string();
                continue;
            }
            if section != "Link" {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let location = Some(format!("{shown}:{}", index + 1));
            match (key.trim(), value.trim()) {
                ("MACAddress", address) if !address.is_empty() => findings.push(Finding {
                    code: "systemd-link-mac-address",
                    severity: Severity::Medium,
                    subject: shown.clone(),
                    location,
                    leak: format!("every matching link gets the fixed address {address}"),
                    reason: "a fixed address is the same on every network, so it links the \
                             machine's visits as surely as the hardware address does"
                        .into(),
                    fix: format!("remove MACAddress= from {shown}, or set MACAddressPolicy=random"),
                }),
                ("MACAddressPolicy", "persistent") => findings.push(Finding {
                    code: "systemd-link-persistent",
                    severity: Severity::Low,
                    subject: shown.clone(),
                    location,
                    leak: "links without a permanent address (bridges, bonds, virtual links) get \
                           an address derived from the machine id"
                        .into(),
                    reason: "the derived address is the same on every network and identifies this \
                             machine"
                        .into(),
                    fix: format!(
                        "override {shown} with a file of the same name in /etc/systemd/network \
                         that sets MACAddressPolicy=random, or let macveil manage those links"
                    ),
                }),
                _ => {}
            }
        }
    }
    findings
}

/// Checks ifupdown's `/etc/network/interfaces` and `/etc/network/interfaces.d/*` for
/// `hwaddress`, which pins an address on every network.
pub fn check_ifupdown(root: &Path) -> Vec<Finding> {
    let mut paths = vec![root.join("etc/network/interfaces")];
    paths.extend(list_files(&root.join("etc/network/interfaces.d"), ""));

    let mut findings = Vec::new();
    for path in paths {
        let Some(text) = read_text(&path) else {
            continue;
        };
        let shown = display_path(root, &path);
        let mut iface = String::from("?");
        for (index, raw) in text.lines().enumerate() {
            let words: Vec<&str> = raw.split_whitespace().collect();
            match words.as_slice() {
                ["iface", name, ..] => iface = (*name).to_string(),
                ["hwaddress", rest @ ..] if !rest.is_empty() => {
                    // The address may follow a link type word: `hwaddress ether ADDR`.
                    let address = rest.last().copied().unwrap_or_default();
                    findings.push(Finding {
                        code: "ifupdown-hwaddress",
                        severity: Severity::Medium,
                        subject: iface.clone(),
                        location: Some(format!("{shown}:{}", index + 1)),
                        leak: format!("interface {iface} is given the fixed address {address}"),
                        reason: "a fixed address is the same on every network, so it links the \
                                 machine's visits"
                            .into(),
                        fix: format!(
                            "remove the hwaddress line from {shown} and let macveil choose the \
                             address"
                        ),
                    });
                }
                _ => {}
            }
        }
    }
    findings
}

/// The global and per-network settings of one wpa_supplicant configuration file that matter here.
#[derive(Debug, Default)]
struct SupplicantSettings {
    /// Global values with their line numbers.
    globals: BTreeMap<String, (String, usize)>,
    /// `mac_addr` values set inside `network={}` blocks, with their line numbers.
    network_mac_addr: Vec<(String, usize)>,
}

fn parse_supplicant(text: &str) -> SupplicantSettings {
    let mut settings = SupplicantSettings::default();
    let mut in_network = false;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with("network=") && line.ends_with('{') {
            in_network = true;
            continue;
        }
        if in_network && line == "}" {
            in_network = false;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim().to_string(), value.trim().to_string());
        if in_network {
            if key == "mac_addr" {
                settings.network_mac_addr.push((value, index + 1));
            }
        } else {
            settings.globals.insert(key, (value, index + 1));
        }
    }
    settings
}

/// How macveil covers the Wi-Fi links of the system being checked, which decides what a
/// wpa_supplicant setting exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WifiCoverage {
    /// The daemon runs and its policy gives Wi-Fi links an address other than the permanent
    /// one, so the interface address the supplicant uses with `mac_addr=0` is macveil's.
    pub address: bool,
    /// The daemon runs and turns on random scan addresses in each supplicant
    /// (`wifi.scan-rand-mac-address=yes`), so `preassoc_mac_addr=0` scans do not carry the
    /// interface address.
    pub scans: bool,
}

/// Checks wpa_supplicant configuration files for settings that send the hardware address.
/// Without macveil, `mac_addr=0`, the default, associates with the permanent address, and
/// `preassoc_mac_addr=0`, also the default, scans with it. Under macveil's daemon both are what
/// macveil needs, and a pre-association address with `mac_addr=0` is the fault instead:
/// wpa_supplicant 2.10 then puts back the address it started with before every association.
/// Without `uuid=`, and with `auto_uuid=0` (the default), the WPS UUID is derived from the
/// address the supplicant started with. Without `p2p_disabled=1` or
/// `p2p_device_random_mac_addr`, the P2P Device address is derived from the permanent address.
/// The Wi-Fi lab's baseline scenarios show these on wpa_supplicant 2.10.
pub fn check_wpa_supplicant(root: &Path, coverage: WifiCoverage) -> Vec<Finding> {
    let mut findings = Vec::new();
    for path in list_files(&root.join("etc/wpa_supplicant"), ".conf") {
        let Some(text) = read_text(&path) else {
            continue;
        };
        let shown = display_path(root, &path);
        let settings = parse_supplicant(&text);
        let global = |key: &str| settings.globals.get(key).cloned();
        let location = |line: Option<usize>| line.map(|line| format!("{shown}:{line}"));

        let (mac_addr, mac_line) =
            global("mac_addr").map_or(("0".to_string(), None), |(v, l)| (v, Some(l)));
        if mac_addr == "0" && !coverage.address {
            findings.push(Finding {
                code: "wpa-mac-addr",
                severity: Severity::Medium,
                subject: shown.clone(),
                location: location(mac_line),
                leak: "wpa_supplicant associates with the permanent address (mac_addr=0, the \
                       default)"
                    .into(),
                reason: "every access point records the association address, and macveil's \
                         daemon does not run with a policy that changes it"
                    .into(),
                fix: format!(
                    "run macveil's daemon ('macveil install'), which sets the address before \
                     each connection, or set mac_addr=1 in {shown}"
                ),
            });
        }
        if !coverage.address {
            for (value, line) in &settings.network_mac_addr {
                if value == "0" {
                    findings.push(Finding {
                        code: "wpa-network-mac-addr",
                        severity: Severity::Medium,
                        subject: shown.clone(),
                        location: Some(format!("{shown}:{line}")),
                        leak: "a network block associates with the permanent address \
                               (mac_addr=0)"
                            .into(),
                        reason: "that network records the hardware address".into(),
                        fix: format!("remove mac_addr=0 from that network block in {shown}"),
                    });
                }
            }
        }

        let (preassoc, preassoc_line) =
            global("preassoc_mac_addr").map_or(("0".to_string(), None), |(v, l)| (v, Some(l)));
        if preassoc == "0" && !coverage.scans {
            findings.push(Finding {
                code: "wpa-preassoc-mac-addr",
                severity: Severity::Medium,
                subject: shown.clone(),
                location: location(preassoc_line),
                leak: "wpa_supplicant scans with the interface address (preassoc_mac_addr=0, the \
                       default), the permanent one unless something changed it"
                    .into(),
                reason: "probe requests are heard by every access point and tracker in range"
                    .into(),
                // wpa_supplicant 2.10 puts back the address it started with before every
                // association when preassoc_mac_addr=1 and mac_addr=0, undoing an address
                // macveil set, so that pair is only right when the supplicant randomizes itself.
                fix: format!(
                    "run macveil's daemon, which turns on the kernel's random scan addresses in \
                     each supplicant, or set preassoc_mac_addr=1 together with mac_addr=1 in \
                     {shown}"
                ),
            });
        }
        if preassoc != "0" && mac_addr == "0" {
            findings.push(Finding {
                code: "wpa-preassoc-restores",
                severity: Severity::Medium,
                subject: shown.clone(),
                location: location(preassoc_line),
                leak: format!(
                    "wpa_supplicant puts back the address it started with before each \
                     association (preassoc_mac_addr={preassoc} with mac_addr=0)"
                ),
                reason: "that undoes an address set after the supplicant started, and a \
                         supplicant started on the permanent address associates with it"
                    .into(),
                fix: format!(
                    "set preassoc_mac_addr=0 in {shown} and let macveil turn on random scan \
                     addresses, or set mac_addr=1 as well; then restart the supplicant"
                ),
            });
        }

        let has_uuid = global("uuid").is_some();
        let (auto_uuid, auto_line) =
            global("auto_uuid").map_or(("0".to_string(), None), |(v, l)| (v, Some(l)));
        if !has_uuid && auto_uuid == "0" {
            findings.push(Finding {
                code: "wps-uuid",
                severity: Severity::Low,
                subject: shown.clone(),
                location: location(auto_line),
                leak: "the WPS UUID is derived from the hardware address (no uuid= and \
                       auto_uuid=0, the default)"
                    .into(),
                reason: "WPS probe requests carry the UUID, which reveals the hardware address \
                         even when the frame's source address is random"
                    .into(),
                fix: format!("set auto_uuid=1 in {shown}"),
            });
        }

        let p2p_off = global("p2p_disabled").is_some_and(|(value, _)| value == "1");
        let (p2p_random, p2p_line) = global("p2p_device_random_mac_addr")
            .map_or(("0".to_string(), None), |(v, l)| (v, Some(l)));
        if !p2p_off && p2p_random == "0" {
            findings.push(Finding {
                code: "wpa-p2p-device-address",
                severity: Severity::Low,
                subject: shown.clone(),
                location: location(p2p_line),
                leak: "the P2P Device address is derived from the permanent address (no \
                       p2p_disabled=1, p2p_device_random_mac_addr=0, the default)"
                    .into(),
                reason: "Wi-Fi Direct searches send it whatever address the station uses".into(),
                fix: format!("set p2p_disabled=1, or p2p_device_random_mac_addr=1, in {shown}"),
            });
        }
    }
    findings
}

/// Reads the values of one section of an iwd settings file (an INI dialect), with their line
/// numbers. A key given twice keeps its last value.
fn ini_section(text: &str, wanted: &str) -> BTreeMap<String, (String, usize)> {
    let mut values = BTreeMap::new();
    let mut inside = false;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            inside = name == wanted;
            continue;
        }
        if let (true, Some((key, value))) = (inside, line.split_once('=')) {
            values.insert(
                key.trim().to_string(),
                (value.trim().to_string(), index + 1),
            );
        }
    }
    values
}

/// Checks iwd's `/etc/iwd/main.conf` and known-network files where iwd is in use: its state
/// folder `/var/lib/iwd` exists, or main.conf sets one of the keys checked here.
///
/// - `[General] AddressRandomization=disabled`, the default, associates with the permanent
///   address whatever macveil does. iwd 2.3 deletes the radio's interface at start and creates
///   a new one, which has the permanent address (the Wi-Fi lab's `81-iwd-addresses` shows it).
///   So unlike wpa_supplicant's settings, this is reported even while macveil's daemon sets
///   Wi-Fi addresses.
/// - `network` derives each network's address from the permanent address and the SSID without a
///   secret, so anyone with both can compute it. A network file whose `[Settings]` contains a valid
///   `AddressOverride` or `AlwaysRandomizeAddress=true` (what `macveil wifi iwd-sync` writes)
///   does not use that address. Every other known network is reported.
/// - `[Scan] DisableMacAddressRandomization=true` sends probe requests from the interface
///   address.
pub fn check_iwd(root: &Path) -> Vec<Finding> {
    let path = root.join("etc/iwd/main.conf");
    let state_dir = root.join("var/lib/iwd");
    let text = read_text(&path).unwrap_or_default();
    let general = ini_section(&text, "General");
    let scan = ini_section(&text, "Scan");
    // Debian's package installs a main.conf whose settings are all comments, and iwd creates
    // its state folder at start (storage_create_dirs() in its debug log). An installed iwd that
    // never ran, beside another supplicant, is not reported.
    let configured = general.contains_key("AddressRandomization")
        || scan.contains_key("DisableMacAddressRandomization");
    if !state_dir.is_dir() && !configured {
        return Vec::new();
    }
    let shown = display_path(root, &path);
    let location = |line: usize| Some(format!("{shown}:{line}"));
    let mut findings = Vec::new();

    let (mode, mode_line) = general
        .get("AddressRandomization")
        .map_or(("disabled", None), |(value, line)| {
            (value.as_str(), Some(*line))
        });
    if mode == "disabled" {
        findings.push(Finding {
            code: "iwd-address-randomization",
            severity: Severity::Medium,
            subject: shown.clone(),
            location: mode_line.and_then(location),
            leak: "iwd associates with the permanent address (AddressRandomization=disabled, \
                   the default): it recreates the interface at start, which undoes an address \
                   set before"
                .into(),
            reason: "every access point records the association address".into(),
            fix: format!(
                "set [General] AddressRandomization=network in {shown} and run 'macveil wifi \
                 iwd-sync IFACE', or set AddressRandomization=once"
            ),
        });
    }
    if mode == "network" {
        for file in derived_address_networks(root, &state_dir) {
            findings.push(Finding {
                code: "iwd-network-address-derivable",
                severity: Severity::Low,
                subject: file.clone(),
                location: None,
                leak: "iwd derives this network's address from the permanent address and the \
                       SSID (AddressRandomization=network without AddressOverride or \
                       AlwaysRandomizeAddress=true), with no secret"
                    .into(),
                reason: "anyone who knows the permanent address can compute the address used on \
                         the network and recognize the card there"
                    .into(),
                fix: "run 'macveil wifi iwd-sync IFACE', which writes the policy's address into \
                      each known network"
                    .into(),
            });
        }
    }

    let scan_off = scan
        .get("DisableMacAddressRandomization")
        .filter(|(value, _)| value == "true");
    if let Some((_, line)) = scan_off {
        findings.push(Finding {
            code: "iwd-scan-address",
            severity: Severity::Medium,
            subject: shown.clone(),
            location: location(*line),
            leak: "iwd scans with the interface address ([Scan] \
                   DisableMacAddressRandomization=true)"
                .into(),
            reason: "probe requests are heard by every access point and tracker in range".into(),
            fix: format!("remove DisableMacAddressRandomization from {shown}"),
        });
    }
    findings
}

/// Lists the known-network files in `state_dir` that take iwd's derived address, shown under
/// `root`. A file macveil cannot read or parse is listed too, because iwd's view of it is
/// unknown.
fn derived_address_networks(root: &Path, state_dir: &Path) -> Vec<String> {
    let Ok(listed) = crate::wifi::iwd::known_networks(state_dir) else {
        return Vec::new();
    };
    listed
        .into_iter()
        .filter_map(|entry| {
            let path = match entry {
                Ok(file) => file.path,
                Err((path, _)) => path,
            };
            let covered = fs::read(&path).ok().is_some_and(|bytes| {
                crate::wifi::iwd::decode(&bytes)
                    .and_then(crate::wifi::iwd::current_settings)
                    .is_ok_and(|settings| settings.replaces_derived_address())
            });
            (!covered).then(|| display_path(root, &path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn codes(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|finding| finding.code).collect()
    }

    #[test]
    fn link_files_report_fixed_and_persistent() {
        let root = tempfile::tempdir().unwrap();
        write(
            root.path(),
            "usr/lib/systemd/network/99-default.link",
            "[Match]\nOriginalName=*\n\n[Link]\nNamePolicy=keep kernel\nMACAddressPolicy=persistent\n",
        );
        write(
            root.path(),
            "etc/systemd/network/10-lan.link",
            "[Match]\nOriginalName=eth0\n[Link]\nMACAddress=00:11:22:33:44:55\n",
        );
        let findings = check_systemd_link_files(root.path());
        assert_eq!(
            codes(&findings),
            ["systemd-link-mac-address", "systemd-link-persistent"]
        );
        assert_eq!(
            findings[1].location.as_deref(),
            Some("/usr/lib/systemd/network/99-default.link:6")
        );
    }

    #[test]
    fn link_file_in_etc_hides_usr_lib() {
        let root = tempfile::tempdir().unwrap();
        write(
            root.path(),
            "usr/lib/systemd/network/99-default.link",
            "[Link]\nMACAddressPolicy=persistent\n",
        );
        write(
            root.path(),
            "etc/systemd/network/99-default.link",
            "[Link]\nMACAddressPolicy=random\n",
        );
        assert!(check_systemd_link_files(root.path()).is_empty());
    }

    #[test]
    fn link_file_match_section_is_ignored() {
        let root = tempfile::tempdir().unwrap();
        write(
            root.path(),
            "etc/systemd/network/10-x.link",
            "[Match]\nMACAddress=00:11:22:33:44:55\n[Link]\nMACAddressPolicy=random\n",
        );
        assert!(check_systemd_link_files(root.path()).is_empty());
    }

    #[test]
    fn ifupdown_hwaddress_found_in_both_files() {
        let root = tempfile::tempdir().unwrap();
        write(
            root.path(),
            "etc/network/interfaces",
            "auto eth0\niface eth0 inet dhcp\n    hwaddress ether 00:11:22:33:44:55\n",
        );
        write(
            root.path(),
            "etc/network/interfaces.d/wlan",
            "iface wlan0 inet dhcp\n  hwaddress 02:11:22:33:44:55\n",
        );
        let findings = check_ifupdown(root.path());
        assert_eq!(findings.len(), 2);
        assert_eq!(findings[0].subject, "eth0");
        assert_eq!(
            findings[0].location.as_deref(),
            Some("/etc/network/interfaces:3")
        );
        assert!(findings[0].leak.contains("00:11:22:33:44:55"));
        assert_eq!(findings[1].subject, "wlan0");
    }

    #[test]
    fn supplicant_defaults_are_reported() {
        let root = tempfile::tempdir().unwrap();
        write(
            root.path(),
            "etc/wpa_supplicant/wpa_supplicant.conf",
            "ctrl_interface=/run/wpa_supplicant\nnetwork={\n  ssid=\"home\"\n  mac_addr=0\n}\n",
        );
        let findings = check_wpa_supplicant(root.path(), WifiCoverage::default());
        assert_eq!(
            codes(&findings),
            [
                "wpa-mac-addr",
                "wpa-network-mac-addr",
                "wpa-preassoc-mac-addr",
                "wps-uuid",
                "wpa-p2p-device-address"
            ]
        );
        assert_eq!(findings[0].location, None);
        assert_eq!(
            findings[1].location.as_deref(),
            Some("/etc/wpa_supplicant/wpa_supplicant.conf:4")
        );
    }

    #[test]
    fn supplicant_randomized_is_clean() {
        let root = tempfile::tempdir().unwrap();
        write(
            root.path(),
            "etc/wpa_supplicant/wpa_supplicant-wlan0.conf",
            "# randomized\nmac_addr=1\npreassoc_mac_addr=1\nauto_uuid=1\np2p_disabled=1\nnetwork={\n  ssid=\"x\"\n}\n",
        );
        assert!(check_wpa_supplicant(root.path(), WifiCoverage::default()).is_empty());
    }

    #[test]
    fn supplicant_explicit_uuid_is_not_derived() {
        let root = tempfile::tempdir().unwrap();
        write(
            root.path(),
            "etc/wpa_supplicant/a.conf",
            "mac_addr=2\npreassoc_mac_addr=1\nuuid=12345678-9abc-def0-1234-56789abcdef0\n\
             p2p_device_random_mac_addr=1\n",
        );
        assert!(check_wpa_supplicant(root.path(), WifiCoverage::default()).is_empty());
    }

    #[test]
    fn supplicant_under_daemon_is_clean() {
        let root = tempfile::tempdir().unwrap();
        let path = "etc/wpa_supplicant/wpa_supplicant-wlan0.conf";
        let covered = WifiCoverage {
            address: true,
            scans: true,
        };
        write(
            root.path(),
            path,
            "auto_uuid=1\np2p_disabled=1\nnetwork={\n mac_addr=0\n}\n",
        );
        assert!(check_wpa_supplicant(root.path(), covered).is_empty());

        // The daemon's address, but scans left to the supplicant.
        let address_only = WifiCoverage {
            address: true,
            scans: false,
        };
        assert_eq!(
            codes(&check_wpa_supplicant(root.path(), address_only)),
            ["wpa-preassoc-mac-addr"]
        );
    }

    #[test]
    fn preassoc_restores_start_address() {
        let root = tempfile::tempdir().unwrap();
        let path = "etc/wpa_supplicant/wpa_supplicant.conf";
        let covered = WifiCoverage {
            address: true,
            scans: true,
        };
        write(
            root.path(),
            path,
            "preassoc_mac_addr=1\nauto_uuid=1\np2p_disabled=1\n",
        );
        let findings = check_wpa_supplicant(root.path(), covered);
        assert_eq!(codes(&findings), ["wpa-preassoc-restores"]);
        assert_eq!(
            findings[0].location.as_deref(),
            Some("/etc/wpa_supplicant/wpa_supplicant.conf:1")
        );
        // Without the daemon the same file also associates with the permanent address.
        assert_eq!(
            codes(&check_wpa_supplicant(root.path(), WifiCoverage::default())),
            ["wpa-mac-addr", "wpa-preassoc-restores"]
        );
        // A supplicant that randomizes its association too has nothing to put back.
        write(
            root.path(),
            path,
            "mac_addr=1\npreassoc_mac_addr=1\nauto_uuid=1\np2p_disabled=1\n",
        );
        assert!(check_wpa_supplicant(root.path(), covered).is_empty());
    }

    #[test]
    fn iwd_defaults_are_reported() {
        let root = tempfile::tempdir().unwrap();
        assert!(check_iwd(root.path()).is_empty());
        // The package's main.conf, all comments, and no state folder: iwd never ran.
        write(
            root.path(),
            "etc/iwd/main.conf",
            "[General]\n#AddressRandomization=network\n",
        );
        assert!(check_iwd(root.path()).is_empty());

        // iwd's state folder means iwd runs on its defaults.
        fs::create_dir_all(root.path().join("var/lib/iwd")).unwrap();
        let findings = check_iwd(root.path());
        assert_eq!(codes(&findings), ["iwd-address-randomization"]);
        assert_eq!(findings[0].location, None);
    }

    #[test]
    fn iwd_networks_without_macveil_address_are_reported() {
        let root = tempfile::tempdir().unwrap();
        write(
            root.path(),
            "etc/iwd/main.conf",
            "[General]\nAddressRandomization=network\n",
        );
        let state = "var/lib/iwd";
        write(
            root.path(),
            &format!("{state}/home.psk"),
            "[Security]\nPassphrase=p\n",
        );
        write(
            root.path(),
            &format!("{state}/cafe.open"),
            "[Settings]\nAddressOverride=2a:11:22:33:44:55\n",
        );
        write(
            root.path(),
            &format!("{state}/=00ff.open"),
            "[Settings]\nAlwaysRandomizeAddress=true\n",
        );
        let findings = check_iwd(root.path());
        assert_eq!(codes(&findings), ["iwd-network-address-derivable"]);
        assert_eq!(findings[0].subject, "/var/lib/iwd/home.psk");

        write(
            root.path(),
            &format!("{state}/home.psk"),
            "[Security]\nPassphrase=p\n[Settings]\nAddressOverride=2a:11:22:33:44:56\n",
        );
        assert!(check_iwd(root.path()).is_empty());
    }

    #[test]
    fn iwd_settings_are_judged() {
        let root = tempfile::tempdir().unwrap();
        let path = "etc/iwd/main.conf";
        write(
            root.path(),
            path,
            "[General]\nAddressRandomization=network\n\n[Scan]\n\
             DisableMacAddressRandomization=true\n",
        );
        write(root.path(), "var/lib/iwd/home.open", "");
        let findings = check_iwd(root.path());
        assert_eq!(
            codes(&findings),
            ["iwd-network-address-derivable", "iwd-scan-address"]
        );
        assert_eq!(findings[0].subject, "/var/lib/iwd/home.open");
        assert_eq!(
            findings[1].location.as_deref(),
            Some("/etc/iwd/main.conf:5")
        );

        // A key of another group does not count.
        write(
            root.path(),
            path,
            "[General]\nAddressRandomization=once\n[Network]\n\
             DisableMacAddressRandomization=true\n",
        );
        assert!(check_iwd(root.path()).is_empty());
    }
}
