//! Tests of whole configurations: files, sections, precedence, errors and resolved policies.

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::addr::MacAddr;

/// The configuration NetworkManager's documentation recommends, as users write it.
const NM_PRIVACY_FILE: &str = "[device]
wifi.scan-rand-mac-address=yes

[connection]
wifi.cloned-mac-address=stable
ethernet.cloned-mac-address=stable
connection.stable-id=${CONNECTION}/${BOOT}
";

fn config(files: &[(&str, &str)]) -> Config {
    let sources: Vec<SourceText> = files
        .iter()
        .map(|(name, text)| SourceText::new(name, text))
        .collect();
    match Config::from_sources(&sources) {
        Ok(config) => config,
        Err(err) => panic!("configuration rejected:\n{err}"),
    }
}

fn errors(files: &[(&str, &str)]) -> Vec<String> {
    let sources: Vec<SourceText> = files
        .iter()
        .map(|(name, text)| SourceText::new(name, text))
        .collect();
    match Config::from_sources(&sources) {
        Ok(_) => panic!("configuration accepted: {files:?}"),
        Err(err) => err.0.iter().map(ToString::to_string).collect(),
    }
}

fn one_error(text: &str) -> String {
    let all = errors(&[("test.conf", text)]);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.into_iter().next().unwrap()
}

fn warnings(text: &str) -> Vec<String> {
    config(&[("test.conf", text)])
        .warnings()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn addr(text: &str) -> MacAddr {
    text.parse().unwrap()
}

fn physical(name: &str, kind: LinkKind, driver: &str) -> LinkFacts {
    LinkFacts {
        name: name.to_string(),
        kind,
        driver: Some(driver.to_string()),
        driver_version: None,
        permanent: Some(addr("3c:22:fb:01:02:03")),
        current: Some(addr("3c:22:fb:01:02:03")),
        device: Some(SysfsDevice {
            subsystem: Some("pci".to_string()),
        }),
    }
}

fn eth0() -> LinkFacts {
    physical("eth0", LinkKind::Ethernet, "e1000e")
}

fn wlan0() -> LinkFacts {
    let mut link = physical("wlan0", LinkKind::Wifi, "iwlwifi");
    link.permanent = Some(addr("a4:c3:f0:11:22:33"));
    link.current = link.permanent;
    link
}

fn virtual_link(name: &str, kind: LinkKind) -> LinkFacts {
    LinkFacts {
        name: name.to_string(),
        kind,
        driver: None,
        driver_version: None,
        permanent: None,
        current: Some(addr("02:00:00:00:00:09")),
        device: None,
    }
}

fn loopback() -> LinkFacts {
    LinkFacts {
        name: "lo".into(),
        kind: LinkKind::Loopback,
        driver: None,
        driver_version: None,
        permanent: None,
        current: None,
        device: None,
    }
}

fn configured(source: &Source) -> &Origin {
    match source {
        Source::Configured(origin) => origin,
        other => panic!("expected a configured value, got {other:?}"),
    }
}

// --- the embedded default and the recommended file ---

#[test]
fn embedded_default_is_the_recommended_file() {
    assert_eq!(EMBEDDED_DEFAULT, NM_PRIVACY_FILE);
    let config = Config::embedded_default();
    assert!(config.is_embedded_default());
    assert_eq!(config.files(), [EMBEDDED_DEFAULT_NAME]);
    assert!(config.warnings().is_empty());
}

#[test]
fn embedded_default_policy_for_physical_links() {
    let config = Config::embedded_default();

    let policy = config.policy_for(&eth0());
    assert!(policy.managed);
    assert_eq!(
        policy.reason,
        ManageReason::Physical {
            subsystem: Some("pci".into())
        }
    );
    assert!(!policy.wifi);
    assert_eq!(
        policy.cloned_mac_address_key(),
        "ethernet.cloned-mac-address"
    );
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Stable);
    let origin = configured(&policy.cloned_mac_address.source);
    assert_eq!(origin.to_string(), "[connection] (embedded default):6");
    assert_eq!(
        policy.stable_id.value.as_deref(),
        Some("${CONNECTION}/${BOOT}")
    );
    assert_eq!(configured(&policy.stable_id.source).line, 7);
    assert_eq!(policy.generate_mac_address_mask.value, None);
    assert_eq!(policy.generate_mac_address_mask.source, Source::Default);
    assert_eq!(policy.scan_rand_mac_address, None);
    assert_eq!(policy.on_failure.value, OnFailure::Down);
    assert_eq!(policy.on_failure.source, Source::Default);
    assert!(!policy.apply_to_running.value);
    assert_eq!(policy.random_rotate.value, None);

    let policy = config.policy_for(&wlan0());
    assert!(policy.managed);
    assert!(policy.wifi);
    assert_eq!(policy.cloned_mac_address_key(), "wifi.cloned-mac-address");
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Stable);
    assert_eq!(configured(&policy.cloned_mac_address.source).line, 5);
    let scan = policy.scan_rand_mac_address.unwrap();
    assert!(scan.value);
    assert_eq!(
        configured(&scan.source).to_string(),
        "[device] (embedded default):2"
    );
}

#[test]
fn embedded_default_leaves_virtual_links_alone() {
    let config = Config::embedded_default();

    for (link, expected) in [
        (
            virtual_link("veth0", LinkKind::Veth),
            ManageReason::Virtual {
                kind: "veth".into(),
            },
        ),
        (
            virtual_link("br0", LinkKind::Bridge),
            ManageReason::Virtual {
                kind: "bridge".into(),
            },
        ),
        (
            virtual_link("tap0", LinkKind::Tun),
            ManageReason::Virtual { kind: "tun".into() },
        ),
        (loopback(), ManageReason::Loopback),
    ] {
        let policy = config.policy_for(&link);
        assert!(!policy.managed, "{}", link.name);
        assert_eq!(policy.reason, expected, "{}", link.name);
    }

    let mut vif = physical("vif3.0", LinkKind::Ethernet, "vif");
    vif.device = Some(SysfsDevice {
        subsystem: Some(link::XEN_BACKEND_SUBSYSTEM.into()),
    });
    let policy = config.policy_for(&vif);
    assert!(!policy.managed);
    assert_eq!(policy.reason, ManageReason::XenBackend);
}

#[test]
fn link_without_hardware_address_is_not_managed() {
    let mut tun = virtual_link("tun0", LinkKind::Tun);
    tun.current = None;
    let policy = config(&[("a", "[device]\nmacveil.manage=yes\n")]).policy_for(&tun);
    assert!(!policy.managed);
    assert_eq!(policy.reason, ManageReason::NoHardwareAddress);
}

#[test]
fn recommended_file_loads_unchanged_from_disk() {
    let root = tempfile::tempdir().unwrap();
    let paths = ConfigPaths::under(root.path());
    fs::create_dir_all(paths.macveil_main.parent().unwrap()).unwrap();
    fs::write(&paths.macveil_main, NM_PRIVACY_FILE).unwrap();

    let config = Config::load(&paths, &LoadOptions::default()).unwrap();
    assert!(!config.is_embedded_default());
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    let main = paths.macveil_main.display().to_string();
    assert_eq!(
        config.files(),
        [EMBEDDED_DEFAULT_NAME.to_string(), main.clone()]
    );

    let default = Config::embedded_default();
    for link in [
        eth0(),
        wlan0(),
        virtual_link("veth0", LinkKind::Veth),
        loopback(),
    ] {
        let from_file = config.policy_for(&link);
        let embedded = default.policy_for(&link);
        assert_eq!(from_file.managed, embedded.managed, "{}", link.name);
        assert_eq!(
            from_file.cloned_mac_address.value,
            embedded.cloned_mac_address.value
        );
        assert_eq!(from_file.stable_id.value, embedded.stable_id.value);
        assert_eq!(
            from_file.scan_rand_mac_address.map(|s| s.value),
            embedded.scan_rand_mac_address.map(|s| s.value)
        );
    }
    let policy = config.policy_for(&eth0());
    assert_eq!(
        configured(&policy.cloned_mac_address.source).to_string(),
        format!("[connection] {main}:6")
    );
}

// --- which files are read ---

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

#[test]
fn load_without_files_uses_embedded_default() {
    let root = tempfile::tempdir().unwrap();
    let config = Config::load(&ConfigPaths::under(root.path()), &LoadOptions::default()).unwrap();
    assert!(config.is_embedded_default());

    let options = LoadOptions {
        file: None,
        nm_config: true,
    };
    let config = Config::load(&ConfigPaths::under(root.path()), &options).unwrap();
    assert!(config.is_embedded_default());
}

#[test]
fn dropin_excluding_one_link_keeps_default_elsewhere() {
    let root = tempfile::tempdir().unwrap();
    let paths = ConfigPaths::under(root.path());
    write(
        &paths.macveil_dir.join("50-mgmt.conf"),
        "[device-mgmt]\nmatch-device=interface-name:mgmt0\nmacveil.manage=no\n",
    );
    let config = Config::load(&paths, &LoadOptions::default()).unwrap();
    assert!(!config.is_embedded_default());
    assert_eq!(config.files()[0], EMBEDDED_DEFAULT_NAME);

    let mgmt0 = physical("mgmt0", LinkKind::Ethernet, "igb");
    assert!(!config.policy_for(&mgmt0).managed);
    for link in [eth0(), wlan0()] {
        let policy = config.policy_for(&link);
        assert!(policy.managed, "{}", link.name);
        assert_eq!(
            policy.cloned_mac_address.value,
            ClonedMac::Stable,
            "{}",
            link.name
        );
        assert_eq!(
            configured(&policy.cloned_mac_address.source).file,
            EMBEDDED_DEFAULT_NAME
        );
        assert_eq!(policy.unprotected_warning(), None, "{}", link.name);
    }
}

#[test]
fn dropin_overrides_default_key_by_key() {
    let root = tempfile::tempdir().unwrap();
    let paths = ConfigPaths::under(root.path());
    write(
        &paths.macveil_dir.join("10-eth.conf"),
        "[connection-eth]\nmatch-device=type:ethernet\nethernet.cloned-mac-address=random\n\
         [connection]\nwifi.cloned-mac-address=preserve\n",
    );
    let config = Config::load(&paths, &LoadOptions::default()).unwrap();
    assert_eq!(
        config.policy_for(&eth0()).cloned_mac_address.value,
        ClonedMac::Random
    );

    // An explicit preserve is the author's choice and gets no warning.
    let policy = config.policy_for(&wlan0());
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Preserve);
    assert!(matches!(
        policy.cloned_mac_address.source,
        Source::Configured(_)
    ));
    assert_eq!(policy.unprotected_warning(), None);
    assert_eq!(
        policy.stable_id.value.as_deref(),
        Some("${CONNECTION}/${BOOT}")
    );
}

#[test]
fn stock_nm_config_keeps_default_policy() {
    let root = tempfile::tempdir().unwrap();
    let paths = ConfigPaths::under(root.path());
    // Debian's stock NetworkManager.conf, with no macveil file.
    write(
        &paths.nm_main,
        "[main]\nplugins=ifupdown,keyfile\n\n[ifupdown]\nmanaged=false\n",
    );
    let options = LoadOptions {
        file: None,
        nm_config: true,
    };
    let config = Config::load(&paths, &options).unwrap();
    for link in [eth0(), wlan0()] {
        let policy = config.policy_for(&link);
        assert_eq!(
            policy.cloned_mac_address.value,
            ClonedMac::Stable,
            "{}",
            link.name
        );
        assert_eq!(policy.unprotected_warning(), None, "{}", link.name);
    }
}

#[test]
fn managed_link_preserved_by_default_warns() {
    // Without the embedded default beneath, no section sets the key.
    let config = config(&[(
        "a",
        "[device-mgmt]\nmatch-device=interface-name:mgmt0\nmacveil.manage=no\n",
    )]);
    let policy = config.policy_for(&eth0());
    assert!(policy.managed);
    assert_eq!(policy.cloned_mac_address.source, Source::Default);
    let warning = policy.unprotected_warning().expect("a warning");
    assert!(
        warning.contains("no section sets ethernet.cloned-mac-address"),
        "{warning}"
    );

    // stop-match=yes ends the search before the embedded [connection] is reached.
    let root = tempfile::tempdir().unwrap();
    let paths = ConfigPaths::under(root.path());
    write(
        &paths.macveil_main,
        "[connection-stop]\nmatch-device=interface-name:eth0\nstop-match=yes\n",
    );
    let config = Config::load(&paths, &LoadOptions::default()).unwrap();
    let policy = config.policy_for(&eth0());
    assert!(matches!(
        policy.cloned_mac_address.source,
        Source::StoppedAt(_)
    ));
    let warning = policy.unprotected_warning().expect("a warning");
    assert!(
        warning.contains("stop-match in [connection-stop]"),
        "{warning}"
    );

    // A link macveil leaves alone gets no warning.
    let mgmt0 = physical("mgmt0", LinkKind::Ethernet, "igb");
    let config = self::config(&[(
        "a",
        "[device-mgmt]\nmatch-device=interface-name:mgmt0\nmacveil.manage=no\n",
    )]);
    assert_eq!(config.policy_for(&mgmt0).unprotected_warning(), None);
}

#[test]
fn load_later_dropin_overrides_main_file() {
    let root = tempfile::tempdir().unwrap();
    let paths = ConfigPaths::under(root.path());
    write(&paths.macveil_main, NM_PRIVACY_FILE);
    write(
        &paths.macveil_dir.join("50-random.conf"),
        "[connection]\nethernet.cloned-mac-address=random\n",
    );
    write(
        &paths.macveil_dir.join("40-ignored.conf"),
        "[connection]\nethernet.cloned-mac-address=permanent\n",
    );
    let config = Config::load(&paths, &LoadOptions::default()).unwrap();
    assert_eq!(config.files().len(), 4);

    let policy = config.policy_for(&eth0());
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Random);
    assert!(
        configured(&policy.cloned_mac_address.source)
            .file
            .ends_with("50-random.conf")
    );
    assert_eq!(
        policy.stable_id.value.as_deref(),
        Some("${CONNECTION}/${BOOT}")
    );
}

#[test]
fn load_config_file_replaces_macveil_files() {
    let root = tempfile::tempdir().unwrap();
    let paths = ConfigPaths::under(root.path());
    write(
        &paths.macveil_main,
        "[connection]\nethernet.cloned-mac-address=permanent\n",
    );
    let other = root.path().join("other.conf");
    write(&other, "[connection]\nethernet.cloned-mac-address=random\n");

    let options = LoadOptions {
        file: Some(other.clone()),
        nm_config: false,
    };
    let config = Config::load(&paths, &options).unwrap();
    assert_eq!(
        config.files(),
        [
            EMBEDDED_DEFAULT_NAME.to_string(),
            other.display().to_string()
        ]
    );
    assert_eq!(
        config.policy_for(&eth0()).cloned_mac_address.value,
        ClonedMac::Random
    );
}

#[test]
fn load_missing_config_file_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("missing.conf");
    let options = LoadOptions {
        file: Some(missing.clone()),
        nm_config: false,
    };
    let err = Config::load(&ConfigPaths::under(root.path()), &options).unwrap_err();
    assert_eq!(err.0.len(), 1);
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("cannot read {}:", missing.display())),
        "{message}"
    );
}

#[test]
fn load_nm_config_reads_network_manager_files_first() {
    let root = tempfile::tempdir().unwrap();
    let paths = ConfigPaths::under(root.path());
    write(
        &paths.nm_main,
        "[main]\nplugins=keyfile\n\n[connection]\nwifi.cloned-mac-address=random\n\
         ethernet.cloned-mac-address=random\n",
    );
    write(
        &paths.macveil_main,
        "[connection]\nethernet.cloned-mac-address=stable\n",
    );

    let options = LoadOptions {
        file: None,
        nm_config: true,
    };
    let config = Config::load(&paths, &options).unwrap();
    assert_eq!(
        config.files(),
        [
            EMBEDDED_DEFAULT_NAME.to_string(),
            paths.nm_main.display().to_string(),
            paths.macveil_main.display().to_string()
        ]
    );
    assert_eq!(
        config.policy_for(&eth0()).cloned_mac_address.value,
        ClonedMac::Stable
    );
    assert_eq!(
        config.policy_for(&wlan0()).cloned_mac_address.value,
        ClonedMac::Random
    );

    // Without NetworkManager's files, Wi-Fi falls back to the embedded default.
    let without = Config::load(&paths, &LoadOptions::default()).unwrap();
    assert_eq!(
        without.policy_for(&wlan0()).cloned_mac_address.value,
        ClonedMac::Stable
    );
}

#[test]
fn load_nm_etc_file_hides_usr_lib_file() {
    let root = tempfile::tempdir().unwrap();
    let paths = ConfigPaths::under(root.path());
    write(
        &paths.nm_lib_dir.join("22-wifi-mac.conf"),
        "[connection]\nwifi.cloned-mac-address=permanent\n[device]\nwifi.scan-rand-mac-address=no\n",
    );
    write(
        &paths.nm_etc_dir.join("22-wifi-mac.conf"),
        "[connection]\nethernet.cloned-mac-address=random\n",
    );
    write(
        &paths.nm_run_dir.join("30-run.conf"),
        "[connection]\nconnection.stable-id=${CONNECTION}\n",
    );
    write(
        &paths.nm_lib_dir.join("30-run.conf"),
        "[connection]\nconnection.stable-id=hidden-by-run\n",
    );

    let options = LoadOptions {
        file: None,
        nm_config: true,
    };
    let config = Config::load(&paths, &options).unwrap();
    assert_eq!(config.files().len(), 3, "{:?}", config.files());

    // The hidden file's `permanent` would win over the embedded default's `stable`.
    let wifi = config.policy_for(&wlan0());
    assert_eq!(wifi.cloned_mac_address.value, ClonedMac::Stable);
    assert!(wifi.scan_rand_mac_address.unwrap().value);
    assert_eq!(wifi.stable_id.value.as_deref(), Some("${CONNECTION}"));
    assert_eq!(
        config.policy_for(&eth0()).cloned_mac_address.value,
        ClonedMac::Random
    );
}

#[test]
fn config_enable_false_skips_dropin() {
    let root = tempfile::tempdir().unwrap();
    let paths = ConfigPaths::under(root.path());
    write(&paths.macveil_main, NM_PRIVACY_FILE);
    write(
        &paths.macveil_dir.join("90-off.conf"),
        "[.config]\nenable=false\n\n[connection]\nethernet.cloned-mac-address=permanent\n",
    );
    let config = Config::load(&paths, &LoadOptions::default()).unwrap();
    assert_eq!(config.files().len(), 2);
    assert_eq!(
        config.policy_for(&eth0()).cloned_mac_address.value,
        ClonedMac::Stable
    );
}

// --- section precedence, match-device and stop-match ---

#[test]
fn first_matching_section_with_key_wins() {
    let config = config(&[(
        "a.conf",
        "[connection]\nethernet.cloned-mac-address=preserve\nconnection.stable-id=plain\n\n\
         [connection-eth0]\nmatch-device=interface-name:eth0\nethernet.cloned-mac-address=random\n\n\
         [connection-eth]\nmatch-device=type:ethernet\nethernet.cloned-mac-address=stable\n\
         connection.stable-id=eth\n",
    )]);

    let policy = config.policy_for(&eth0());
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Random);
    assert_eq!(
        configured(&policy.cloned_mac_address.source).section,
        "connection-eth0"
    );
    // [connection-eth0] has no stable-id, so the search goes on to [connection-eth].
    assert_eq!(policy.stable_id.value.as_deref(), Some("eth"));
    assert_eq!(configured(&policy.stable_id.source).line, 12);

    let eth1 = physical("eth1", LinkKind::Ethernet, "igb");
    let policy = config.policy_for(&eth1);
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Stable);

    let veth = virtual_link("veth0", LinkKind::Veth);
    let policy = config.policy_for(&veth);
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Preserve);
    assert_eq!(
        configured(&policy.cloned_mac_address.source).section,
        "connection"
    );
}

#[test]
fn plain_section_comes_last_wherever_it_stands() {
    let config = config(&[(
        "a.conf",
        "[connection-eth]\nmatch-device=type:ethernet\n\n\
         [connection]\nethernet.cloned-mac-address=random\n\n\
         [connection-late]\nmatch-device=*\nethernet.cloned-mac-address=stable\n",
    )]);
    let policy = config.policy_for(&eth0());
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Stable);
    assert_eq!(
        configured(&policy.cloned_mac_address.source).section,
        "connection-late"
    );
}

#[test]
fn later_file_sections_take_precedence() {
    let config = config(&[
        (
            "/etc/macveil/macveil.conf",
            "[connection-a]\nmatch-device=interface-name:eth*\nethernet.cloned-mac-address=stable\n\n\
             [connection]\nethernet.cloned-mac-address=permanent\n",
        ),
        (
            "/etc/macveil/conf.d/10-b.conf",
            "[connection-b]\nmatch-device=driver:e1000e\nethernet.cloned-mac-address=random\n",
        ),
    ]);
    let policy = config.policy_for(&eth0());
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Random);
    let origin = configured(&policy.cloned_mac_address.source);
    assert_eq!(
        origin.to_string(),
        "[connection-b] /etc/macveil/conf.d/10-b.conf:3"
    );

    let igb = physical("eth1", LinkKind::Ethernet, "igb");
    let policy = config.policy_for(&igb);
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Stable);
    assert_eq!(
        configured(&policy.cloned_mac_address.source).section,
        "connection-a"
    );

    let veth = virtual_link("veth0", LinkKind::Veth);
    assert_eq!(
        config.policy_for(&veth).cloned_mac_address.value,
        ClonedMac::Permanent
    );
}

#[test]
fn later_file_overrides_shared_section_values() {
    let config = config(&[
        (
            "a",
            "[connection]\nethernet.cloned-mac-address=permanent\nconnection.stable-id=a\n",
        ),
        ("b", "[connection]\nethernet.cloned-mac-address=random\n"),
    ]);
    let policy = config.policy_for(&eth0());
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Random);
    assert_eq!(configured(&policy.cloned_mac_address.source).file, "b");
    assert_eq!(policy.stable_id.value.as_deref(), Some("a"));
}

#[test]
fn stop_match_ends_the_search() {
    let text = "[connection-wlan0]\nmatch-device=interface-name:wlan0\nstop-match=yes\n\
                connection.stable-id=w\n\n\
                [connection]\nwifi.cloned-mac-address=stable\nconnection.stable-id=x\n";
    let config = config(&[("a", text)]);

    let policy = config.policy_for(&wlan0());
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Preserve);
    match &policy.cloned_mac_address.source {
        Source::StoppedAt(origin) => assert_eq!(origin.to_string(), "[connection-wlan0] a:3"),
        other => panic!("{other:?}"),
    }
    assert_eq!(policy.stable_id.value.as_deref(), Some("w"));

    let mut wlan1 = wlan0();
    wlan1.name = "wlan1".into();
    let policy = config.policy_for(&wlan1);
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Stable);
    assert_eq!(policy.stable_id.value.as_deref(), Some("x"));
}

#[test]
fn stop_match_no_keeps_searching() {
    let text = "[device-wlan0]\nmatch-device=interface-name:wlan0\nstop-match=no\n\n\
                [device]\nwifi.scan-rand-mac-address=no\n";
    let policy = config(&[("a", text)]).policy_for(&wlan0());
    assert!(!policy.scan_rand_mac_address.unwrap().value);
}

#[test]
fn stop_match_unmatched_section_skipped() {
    let text = "[connection-x]\nmatch-device=interface-name:other\nstop-match=yes\n\n\
                [connection]\nethernet.cloned-mac-address=random\n";
    let policy = config(&[("a", text)]).policy_for(&eth0());
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Random);
}

#[test]
fn match_forms_select_sections() {
    let cases = [
        ("interface-name:eth0", true),
        ("interface-name:~e?h*", true),
        ("interface-name:=eth*", false),
        ("mac:3c:22:fb:01:02:03", true),
        ("mac:3c:22:fb:01:02:04", false),
        ("driver:e1000e", true),
        ("driver:igb", false),
        ("type:ethernet", true),
        ("type:wifi", false),
        ("dhcp-plugin:internal", true),
        ("eth0", true),
        ("*", true),
        ("*,except:interface-name:eth0", false),
        ("except:type:ethernet", false),
        ("except:type:wifi", true),
        ("except:mac:3c:22:fb:01:02:03", false),
        ("except:driver:e1000e", false),
        ("interface-name:eth*;except:driver:igb", true),
        ("", false),
    ];
    for (spec, expected) in cases {
        let text = format!(
            "[connection-x]\nmatch-device={spec}\nethernet.cloned-mac-address=random\n\n\
             [connection]\nethernet.cloned-mac-address=preserve\n"
        );
        let policy = config(&[("a", &text)]).policy_for(&eth0());
        let selected = policy.cloned_mac_address.value == ClonedMac::Random;
        assert_eq!(selected, expected, "match-device={spec}");
    }
}

#[test]
fn mac_match_falls_back_to_current_address() {
    let text =
        "[connection-x]\nmatch-device=mac:02:00:00:00:00:09\nethernet.cloned-mac-address=random\n";
    let link = virtual_link("veth0", LinkKind::Veth);
    let policy = config(&[("a", text)]).policy_for(&link);
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Random);
}

#[test]
fn dhcp_plugin_comes_from_main_section() {
    let text = "[main]\ndhcp=dhclient\n\n[connection-x]\nmatch-device=dhcp-plugin:dhclient\n\
                ethernet.cloned-mac-address=random\n";
    let policy = config(&[("a", text)]).policy_for(&eth0());
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Random);
}

#[test]
fn match_device_plus_extends_earlier_file() {
    let config = config(&[
        (
            "a",
            "[connection-x]\nmatch-device=interface-name:eth9\nethernet.cloned-mac-address=random\n",
        ),
        ("b", "[connection-x]\nmatch-device+=interface-name:eth0\n"),
    ]);
    assert_eq!(
        config.policy_for(&eth0()).cloned_mac_address.value,
        ClonedMac::Random
    );
}

// --- values ---

#[test]
fn cloned_mac_address_values() {
    for (value, expected) in [
        ("permanent", ClonedMac::Permanent),
        ("preserve", ClonedMac::Preserve),
        ("random", ClonedMac::Random),
        ("stable", ClonedMac::Stable),
        (
            "02:1A:2B:3C:4D:5E",
            ClonedMac::Address(addr("02:1a:2b:3c:4d:5e")),
        ),
    ] {
        let text = format!("[connection]\nethernet.cloned-mac-address={value}\n");
        let policy = config(&[("a", &text)]).policy_for(&eth0());
        assert_eq!(policy.cloned_mac_address.value, expected, "{value}");
    }

    let text = "[connection]\nwifi.cloned-mac-address=stable-ssid\n";
    let policy = config(&[("a", text)]).policy_for(&wlan0());
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::StableSsid);
    assert_eq!(policy.cloned_mac_address.value.to_string(), "stable-ssid");
}

#[test]
fn escapes_are_decoded_in_values() {
    let text =
        "[connection]\nconnection.stable-id=\\sa\\\\b\\tc\nethernet.cloned-mac-address=\\sstable\n";
    let sources = [SourceText::new("a", text)];
    // "\sstable" decodes to " stable", which is not a mode.
    let err = Config::from_sources(&sources).unwrap_err().to_string();
    assert!(err.starts_with("a:3: invalid value '\\sstable'"), "{err}");

    let text = "[connection]\nconnection.stable-id=\\sa\\\\b\\tc\n";
    let policy = config(&[("a", text)]).policy_for(&eth0());
    assert_eq!(policy.stable_id.value.as_deref(), Some(" a\\b\tc"));
}

#[test]
fn booleans_accept_every_network_manager_word() {
    for (word, expected) in [
        ("yes", true),
        ("no", false),
        ("true", true),
        ("false", false),
        ("on", true),
        ("off", false),
        ("1", true),
        ("0", false),
        ("Yes", true),
        ("OFF", false),
        ("", true),
    ] {
        let text = format!("[device]\nwifi.scan-rand-mac-address={word}\n");
        let policy = config(&[("a", &text)]).policy_for(&wlan0());
        assert_eq!(
            policy.scan_rand_mac_address.unwrap().value,
            expected,
            "{word:?}"
        );
    }
}

#[test]
fn generate_masks_are_parsed() {
    let text = "[connection]\nethernet.generate-mac-address-mask=FF:FF:FF:00:00:00\n\
                wifi.generate-mac-address-mask=FE:FF:FF:00:00:00 68:F7:28:00:00:00\n\
                [device]\nwifi.scan-generate-mac-address-mask=00:00:00:00:00:00\n";
    let config = config(&[("a", text)]);
    let eth = config.policy_for(&eth0());
    assert_eq!(
        eth.generate_mac_address_mask_key(),
        "ethernet.generate-mac-address-mask"
    );
    assert_eq!(
        eth.generate_mac_address_mask.value.unwrap().to_string(),
        "ff:ff:ff:00:00:00"
    );
    let wifi = config.policy_for(&wlan0());
    assert_eq!(
        wifi.generate_mac_address_mask_key(),
        "wifi.generate-mac-address-mask"
    );
    let mask = wifi.generate_mac_address_mask.value.unwrap();
    assert_eq!(mask.ouis, [addr("68:f7:28:00:00:00")]);
    assert!(wifi.scan_generate_mac_address_mask.unwrap().value.is_some());
}

#[test]
fn macveil_keys_are_read() {
    let text = "[device-veth]\nmatch-device=type:veth\nmacveil.manage=yes\n\n\
                [device]\nmacveil.on-failure=warn\nmacveil.apply-to-running=yes\n\
                macveil.random-rotate=3600\n";
    let config = config(&[("a", text)]);

    let policy = config.policy_for(&eth0());
    assert_eq!(policy.on_failure.value, OnFailure::Warn);
    assert_eq!(configured(&policy.on_failure.source).line, 6);
    assert!(policy.apply_to_running.value);
    assert_eq!(policy.random_rotate.value, Some(Duration::from_secs(3600)));

    let policy = config.policy_for(&virtual_link("veth0", LinkKind::Veth));
    assert!(policy.managed);
    match &policy.reason {
        ManageReason::Configured(origin) => assert_eq!(origin.to_string(), "[device-veth] a:3"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn manage_no_excludes_physical_link() {
    let text = "[device-eth0]\nmatch-device=interface-name:eth0\nmacveil.manage=no\n\n\
                [connection]\nethernet.cloned-mac-address=stable\n";
    let config = config(&[("a", text)]);
    let policy = config.policy_for(&eth0());
    assert!(!policy.managed);
    assert!(matches!(policy.reason, ManageReason::Configured(_)));
    assert!(
        config
            .policy_for(&physical("eth1", LinkKind::Ethernet, "igb"))
            .managed
    );
}

#[test]
fn manage_auto_keeps_default_rules() {
    let text = "[device]\nmacveil.manage=auto\n";
    let config = config(&[("a", text)]);
    assert!(config.policy_for(&eth0()).managed);
    assert!(
        !config
            .policy_for(&virtual_link("veth0", LinkKind::Veth))
            .managed
    );
}

#[test]
fn section_with_match_device_selects_virtual_link() {
    let text = "[connection-containers]\nmatch-device=type:veth\nethernet.cloned-mac-address=random\n\n\
                [connection]\nethernet.cloned-mac-address=stable\n";
    let config = config(&[("a", text)]);

    let policy = config.policy_for(&virtual_link("veth0", LinkKind::Veth));
    assert!(policy.managed);
    match &policy.reason {
        ManageReason::Selected(origin) => {
            assert_eq!(origin.to_string(), "[connection-containers] a:3");
        }
        other => panic!("{other:?}"),
    }

    let bridge = config.policy_for(&virtual_link("br0", LinkKind::Bridge));
    assert!(!bridge.managed);
    assert_eq!(bridge.cloned_mac_address.value, ClonedMac::Stable);
}

#[test]
fn legacy_wifi_randomization_means_random() {
    let text = "[connection]\nwifi.mac-address-randomization=2\n";
    let policy = config(&[("a", text)]).policy_for(&wlan0());
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Random);
    assert_eq!(configured(&policy.cloned_mac_address.source).line, 2);

    let text = "[connection]\nwifi.mac-address-randomization=2\nwifi.cloned-mac-address=stable\n";
    let policy = config(&[("a", text)]).policy_for(&wlan0());
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Stable);

    let text = "[connection]\nwifi.mac-address-randomization=1\n";
    let policy = config(&[("a", text)]).policy_for(&wlan0());
    assert_eq!(policy.cloned_mac_address.value, ClonedMac::Preserve);
}

#[test]
fn unknown_network_manager_keys_are_ignored() {
    let text = "[main]\nplugins=keyfile\ndns=systemd-resolved\n\n[logging]\nlevel=INFO\n\n\
                [connection]\nipv6.ip6-privacy=2\nethernet.cloned-mac-address=random\n\
                ipv4.route-metric=\\x bad escape is not our business\n\n\
                [device]\nmanaged=1\nwifi.backend=iwd\n\n[keyfile]\nunmanaged-devices=none\n";
    let config = config(&[("NetworkManager.conf", text)]);
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    assert_eq!(
        config.policy_for(&eth0()).cloned_mac_address.value,
        ClonedMac::Random
    );
}

// --- warnings ---

#[test]
fn warnings_for_likely_mistakes() {
    let found = warnings(
        "[connection]\nethernet.cloned-mac-adress=random\n\n\
         [device]\nwifi.cloned-mac-address=random\n\n\
         [connection-x]\nmatch-device=mac:nonsense,except:eth0,interface_name:eth0\n\
         connection.stable-id=${CONNECTON}\n\n\
         [main]\nethernet.cloned-mac-address=random\n",
    );
    assert_eq!(
        found,
        [
            "test.conf:2: unknown key 'ethernet.cloned-mac-adress' in [connection] is ignored; \
             did you mean ethernet.cloned-mac-address?",
            "test.conf:5: wifi.cloned-mac-address in [device] has no effect, in NetworkManager \
             or macveil; move it to a [connection] or [connection-NAME] section",
            "test.conf:8: match-device entry 'mac:nonsense' never matches: the text after mac: \
             is not a hardware address such as 3c:22:fb:01:02:03 (in [connection-x])",
            "test.conf:8: match-device entry 'except:eth0' never matches: except: needs a \
             tagged entry such as except:interface-name:eth0 (in [connection-x])",
            "test.conf:8: match-device entry 'interface_name:eth0' has no known tag, so it is \
             compared with the interface name as written; the tags are interface-name:, mac:, \
             type:, driver:, dhcp-plugin: and except: (in [connection-x])",
            "test.conf:9: connection.stable-id in [connection-x]: ${CONNECTON} is not a \
             stable-id variable and stays as written; the variables are ${CONNECTION}, \
             ${BOOT}, ${DEVICE}, ${MAC}, ${NETWORK_SSID} and ${RANDOM}",
            "test.conf:12: ethernet.cloned-mac-address in [main] has no effect, in \
             NetworkManager or macveil; move it to a [connection] or [connection-NAME] section",
        ]
    );
}

#[test]
fn stable_id_trailing_space_is_kept_with_warning() {
    let text = "[connection]\nconnection.stable-id=${CONNECTION} \n";
    let config = config(&[("a", text)]);
    assert_eq!(
        config.policy_for(&eth0()).stable_id.value.as_deref(),
        Some("${CONNECTION} ")
    );
    let found: Vec<String> = config.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "a:2: connection.stable-id in [connection]: the value ends with whitespace, which key \
          files keep as part of the value, and it changes the address"
        ]
    );
}

// --- errors, each with file, line, key, value and the accepted values ---

#[test]
fn syntax_errors_name_file_and_line() {
    assert_eq!(
        one_error("[connection]\nethernet.cloned-mac-address random\n"),
        "test.conf:2: line 'ethernet.cloned-mac-address random' is not a [section] header, a \
         key=value pair or a # comment"
    );
    assert_eq!(
        one_error("# comment\nethernet.cloned-mac-address=random\n"),
        "test.conf:2: key 'ethernet.cloned-mac-address' comes before any [section] header; put \
         it under a section such as [connection] or [device]"
    );
    assert_eq!(
        one_error("[connection\n"),
        "test.conf:1: line '[connection' is not a [section] header, a key=value pair or a # \
         comment"
    );
    assert_eq!(
        one_error("[]\n"),
        "test.conf:1: invalid section name '': a name must not be empty and must not contain \
         '[', ']' or control characters"
    );
}

#[test]
fn invalid_cloned_mac_address_values() {
    assert_eq!(
        one_error("[connection]\nethernet.cloned-mac-address=stabel\n"),
        "test.conf:2: invalid value 'stabel' for ethernet.cloned-mac-address in [connection]: \
         expected permanent, preserve, random, stable, or a unicast address such as \
         02:1a:2b:3c:4d:5e"
    );
    assert_eq!(
        one_error("[connection]\nethernet.cloned-mac-address=stable-ssid\n"),
        "test.conf:2: invalid value 'stable-ssid' for ethernet.cloned-mac-address in \
         [connection]: stable-ssid derives the address from the Wi-Fi network name, so it \
         applies to wifi.cloned-mac-address only; expected permanent, preserve, random, stable, \
         or a unicast address such as 02:1a:2b:3c:4d:5e"
    );
    let message = one_error("[connection-w]\nwifi.cloned-mac-address=03:19:6c:04:26:53\n");
    assert!(
        message.starts_with(
            "test.conf:2: invalid value '03:19:6c:04:26:53' for wifi.cloned-mac-address in \
             [connection-w]: 03:19:6c:04:26:53 is a group (multicast) address"
        ),
        "{message}"
    );
    assert!(
        message.ends_with(
            "expected permanent, preserve, random, stable, stable-ssid, or a \
                               unicast address such as 02:1a:2b:3c:4d:5e"
        ),
        "{message}"
    );
    assert_eq!(
        one_error("[connection]\nethernet.cloned-mac-address=\n"),
        "test.conf:2: invalid value '' for ethernet.cloned-mac-address in [connection]: the \
         value is empty; remove the line for the default; expected permanent, preserve, random, \
         stable, or a unicast address such as 02:1a:2b:3c:4d:5e"
    );
    assert_eq!(
        one_error("[connection]\nethernet.cloned-mac-address=random \n"),
        "test.conf:2: invalid value 'random ' for ethernet.cloned-mac-address in [connection]: \
         the value ends with whitespace, which key files keep as part of the value; expected \
         permanent, preserve, random, stable, or a unicast address such as 02:1a:2b:3c:4d:5e"
    );
}

#[test]
fn invalid_escape_in_value() {
    assert_eq!(
        one_error("[connection]\nconnection.stable-id=a\\qb\n"),
        "test.conf:2: invalid value 'a\\qb' for connection.stable-id in [connection]: invalid \
         escape sequence '\\q'; the accepted escapes are \\s (space), \\n, \\t, \\r and \\\\ \
         (backslash); expected a template such as ${CONNECTION}/${BOOT}, using ${CONNECTION}, \
         ${BOOT}, ${DEVICE}, ${MAC}, ${NETWORK_SSID} or ${RANDOM}"
    );
}

#[test]
fn invalid_boolean_values() {
    assert_eq!(
        one_error("[device]\nwifi.scan-rand-mac-address=maybe\n"),
        "test.conf:2: invalid value 'maybe' for wifi.scan-rand-mac-address in [device]: \
         expected yes, no, true, false, on, off, 1 or 0 (in any case)"
    );
    assert_eq!(
        one_error("[device-x]\nstop-match=si\n"),
        "test.conf:2: invalid value 'si' for stop-match in [device-x]: expected yes, no, true, \
         false, on, off, 1 or 0 (in any case)"
    );
    assert_eq!(
        one_error("[device]\nmacveil.apply-to-running=2\n"),
        "test.conf:2: invalid value '2' for macveil.apply-to-running in [device]: expected yes, \
         no, true, false, on, off, 1 or 0 (in any case)"
    );
}

#[test]
fn invalid_mask_value() {
    assert_eq!(
        one_error("[connection]\nwifi.generate-mac-address-mask=FF:FF:FF:00:00\n"),
        "test.conf:2: invalid value 'FF:FF:FF:00:00' for wifi.generate-mac-address-mask in \
         [connection]: invalid word 'FF:FF:FF:00:00' in the address mask: invalid hardware \
         address 'FF:FF:FF:00:00': expected six hexadecimal octets such as 02:1a:2b:3c:4d:5e, \
         02-1A-2B-3C-4D-5E, 021a.2b3c.4d5e or 021a2b3c4d5e; expected a mask such as \
         FF:FF:FF:00:00:00, optionally followed by OUIs such as 00:11:22:00:00:00, separated by \
         spaces"
    );
}

#[test]
fn invalid_macveil_values() {
    assert_eq!(
        one_error("[device]\nmacveil.on-failure=shutdown\n"),
        "test.conf:2: invalid value 'shutdown' for macveil.on-failure in [device]: expected \
         down or warn"
    );
    assert_eq!(
        one_error("[device]\nmacveil.manage=sometimes\n"),
        "test.conf:2: invalid value 'sometimes' for macveil.manage in [device]: expected auto, \
         or a boolean: yes, no, true, false, on, off, 1 or 0 (in any case)"
    );
    assert_eq!(
        one_error("[device]\nmacveil.random-rotate=30\n"),
        "test.conf:2: invalid value '30' for macveil.random-rotate in [device]: each rotation \
         takes the link down, so periods below 60 seconds are rejected; expected 0 (no \
         rotation) or a number of seconds from 60 to 31536000"
    );
    assert_eq!(
        one_error("[connection]\nwifi.mac-address-randomization=always\n"),
        "test.conf:2: invalid value 'always' for wifi.mac-address-randomization in \
         [connection]: expected 0 (default), 1 (never) or 2 (always)"
    );
}

#[test]
fn unknown_and_misplaced_macveil_keys() {
    assert_eq!(
        one_error("[device]\nmacveil.on-fail=warn\n"),
        "test.conf:2: unknown key 'macveil.on-fail' in [device]: macveil's own keys are \
         macveil.manage, macveil.on-failure, macveil.apply-to-running, macveil.random-rotate and \
         macveil.wifi-connect"
    );
    assert_eq!(
        one_error("[connection]\nmacveil.on-failure=warn\n"),
        "test.conf:2: macveil.on-failure in [connection] has no effect: it belongs in a \
         [device] or [device-NAME] section"
    );
    assert_eq!(
        one_error("[main]\nmacveil.manage=yes\n"),
        "test.conf:2: macveil.manage in [main] has no effect: it belongs in a [device] or \
         [device-NAME] section"
    );
    assert_eq!(
        one_error("[main]\nmacveil.bogus=yes\n"),
        "test.conf:2: unknown key 'macveil.bogus' in [main]: macveil's own keys are \
         macveil.manage, macveil.on-failure, macveil.apply-to-running, macveil.random-rotate and \
         macveil.wifi-connect"
    );
}

#[test]
fn every_problem_is_reported_and_nothing_loads() {
    let all = errors(&[
        ("good.conf", NM_PRIVACY_FILE),
        ("syntax.conf", "[connection]\n=oops\n"),
        (
            "values.conf",
            "[connection-x]\nethernet.cloned-mac-address=nope\n[device]\nmacveil.x=1\n",
        ),
    ]);
    assert_eq!(all.len(), 3, "{all:#?}");
    assert!(all[0].starts_with("syntax.conf:2: "), "{all:#?}");
    assert!(
        all[1].starts_with("values.conf:2: invalid value 'nope'"),
        "{all:#?}"
    );
    assert!(
        all[2].starts_with("values.conf:4: unknown key 'macveil.x'"),
        "{all:#?}"
    );
}

#[test]
fn value_overridden_by_later_file_is_not_checked() {
    // NetworkManager merges files before it reads any value; the earlier value never counts.
    let config = config(&[
        ("a", "[connection]\nethernet.cloned-mac-address=nonsense\n"),
        ("b", "[connection]\nethernet.cloned-mac-address=random\n"),
    ]);
    assert_eq!(
        config.policy_for(&eth0()).cloned_mac_address.value,
        ClonedMac::Random
    );
}

#[test]
fn masks_with_few_generated_bits_warn() {
    let found = warnings(
        "[connection]\nethernet.generate-mac-address-mask=FF:FF:FF:FF:FF:FF\n\
         wifi.generate-mac-address-mask=FF:FF:FF:FF:FF:FF 02:11:22:33:44:55\n\n\
         [connection-x]\nmatch-device=interface-name:eth9\n\
         ethernet.generate-mac-address-mask=FF:FF:FF:FF:F0:00\n\
         wifi.generate-mac-address-mask=FF:FF:FF:00:00:00\n\n\
         [connection-y]\nmatch-device=interface-name:eth8\n\
         ethernet.generate-mac-address-mask=FD:FF:FF:FF:FF:FF\n",
    );
    assert_eq!(
        found,
        [
            "test.conf:2: ethernet.generate-mac-address-mask in [connection]: the mask covers \
             every bit and lists no OUI, so every generated address is the link's own \
             address; the daemon keeps such links down",
            "test.conf:3: wifi.generate-mac-address-mask in [connection]: the mask covers \
             every bit, so every generated address is one of the listed addresses",
            "test.conf:7: ethernet.generate-mac-address-mask in [connection-x]: the mask \
             leaves only 12 bits to the generator, so at most 4096 addresses are possible",
            "test.conf:12: ethernet.generate-mac-address-mask in [connection-y]: the mask \
             covers every bit but the locally administered one and lists no OUI, so every \
             generated address reveals the link's own address",
        ]
    );
}

#[test]
fn wifi_connect_decides_driving() {
    let wifi = physical("wlan0", LinkKind::Wifi, "iwlwifi");
    let cases = [
        ("wifi.cloned-mac-address=stable-ssid\n", true),
        ("wifi.cloned-mac-address=random\n", true),
        (
            "wifi.cloned-mac-address=stable\nconnection.stable-id=${NETWORK_SSID}/x\n",
            true,
        ),
        (
            "wifi.cloned-mac-address=stable\nconnection.stable-id=${RANDOM}\n",
            true,
        ),
        (
            "wifi.cloned-mac-address=stable\nconnection.stable-id=${CONNECTION}/${BOOT}\n",
            false,
        ),
        // `$$` keeps the next `$` literal, so this template names no placeholder.
        (
            "wifi.cloned-mac-address=stable\nconnection.stable-id=$${NETWORK_SSID}\n",
            false,
        ),
        ("wifi.cloned-mac-address=permanent\n", false),
        ("wifi.cloned-mac-address=02:12:34:56:78:9a\n", false),
        (
            "wifi.cloned-mac-address=stable-ssid\nmacveil.wifi-connect=no\n",
            false,
        ),
        (
            "wifi.cloned-mac-address=stable-ssid\nmacveil.wifi-connect=auto\n",
            true,
        ),
    ];
    for (body, drives) in cases {
        let text = format!("[connection]\n{body}");
        let policy = config(&[("test.conf", &text)]).policy_for(&wifi);
        assert_eq!(policy.drives_wifi_connections(), drives, "{body}");
    }

    let ethernet = config(&[(
        "test.conf",
        "[connection]\nethernet.cloned-mac-address=random\n",
    )])
    .policy_for(&eth0());
    assert!(!ethernet.drives_wifi_connections());
}

#[test]
fn wifi_connect_checked_and_placed() {
    let policy = config(&[(
        "test.conf",
        "[connection]\nwifi.cloned-mac-address=random\nmacveil.wifi-connect=no\n",
    )])
    .policy_for(&physical("wlan0", LinkKind::Wifi, "iwlwifi"));
    assert_eq!(policy.wifi_connect.value, WifiConnect::No);
    assert_eq!(configured(&policy.wifi_connect.source).line, 3);

    let error = one_error("[connection]\nmacveil.wifi-connect=yes\n");
    assert!(error.contains("expected auto or no"), "{error}");
    assert_eq!(
        one_error("[device]\nmacveil.wifi-connect=no\n"),
        "test.conf:2: macveil.wifi-connect in [device] has no effect: it belongs in a \
         [connection] or [connection-NAME] section"
    );
}
