//! `macveil check` on links in namespaces the tests create, with every file read below a
//! temporary root, so that nothing of the host's own configuration decides the result.

mod common;

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use common::{TestNetns, describe, macveil};
use serde_json::Value;

/// Runs `macveil check --json` on `netns` with files below `root`.
fn check(netns: &TestNetns, root: &Path, config: &Path, state: &Path) -> (Output, Value) {
    let output = macveil(&[
        "check",
        "--json",
        "--netns",
        &netns.name,
        "--root",
        root.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "check --json printed no JSON ({err}): {}",
            describe(&output)
        )
    });
    (output, report)
}

/// Lists the (code, subject) pairs of the report's findings of medium or high severity.
fn exposing(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .expect("findings is a list")
        .iter()
        .filter(|finding| finding["severity"] != "low")
        .map(|finding| {
            (
                finding["code"].as_str().unwrap().to_string(),
                finding["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A macveil policy that manages the test link, so that its first address is its identity.
const POLICY: &str = "[connection-lab]\nmatch-device=interface-name:mvc0\n\
                      ethernet.cloned-mac-address=random\n";

#[test]
fn check_netns_exposed_then_fixed() {
    let Some(netns) = TestNetns::create("check_netns_exposed_then_fixed") else {
        return;
    };
    netns.ip(&[
        "link",
        "add",
        "mvc0",
        "address",
        "0a:1b:2c:3d:4e:61",
        "type",
        "veth",
        "peer",
        "name",
        "mvc0p",
    ]);
    netns.ip(&["link", "set", "mvc0p", "up"]);
    netns.ip(&["link", "set", "mvc0", "up"]);

    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let config = root.path().join("policy.conf");
    fs::write(&config, POLICY).unwrap();

    let (output, report) = check(&netns, root.path(), &config, state.path());
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_eq!(report["schema"], 1);
    assert_eq!(report["exposed"], true);
    let found = exposing(&report);
    assert!(
        found.contains(&("link-reference-address".into(), "mvc0".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("daemon-not-running".into(), "mvc0".into())),
        "{found:?}"
    );
    assert!(
        found.iter().all(|(_, subject)| subject != "mvc0p"),
        "the unmanaged peer has no identity to expose: {found:?}"
    );

    // The fix: a new address (which also removes the IPv6 addresses built from the old one)...
    let set = common::macveil_in(&netns, state.path(), &["set", "--random", "mvc0"]);
    assert_eq!(set.status.code(), Some(0), "{}", describe(&set));
    let (output, report) = check(&netns, root.path(), &config, state.path());
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_eq!(
        exposing(&report),
        [("daemon-not-running".to_string(), "mvc0".to_string())],
        "only the missing daemon remains: {report:#}"
    );

    // ...and a running daemon, which holds its lock in its state folder for as long as it runs.
    let lock = hold_daemon_lock(state.path());

    let (output, report) = check(&netns, root.path(), &config, state.path());
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(report["exposed"], false);
    assert!(exposing(&report).is_empty(), "{report:#}");
    drop(lock);
}

#[test]
fn check_root_reads_configuration_files() {
    let Some(netns) = TestNetns::create("check_root_reads_configuration_files") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let config = root.path().join("policy.conf");
    fs::write(&config, POLICY).unwrap();

    let (output, report) = check(&netns, root.path(), &config, state.path());
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(report["findings"], Value::Array(Vec::new()), "{report:#}");

    let write = |relative: &str, text: &str, mode: u32| {
        let path = root.path().join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    };
    write(
        "etc/NetworkManager/system-connections/office.nmconnection",
        "[connection]\nid=office\nuuid=7a7fc2ab-6b38-4c4c-8b6d-5f1a5e1f6e3a\ntype=ethernet\n\
         interface-name=eth9\n[ethernet]\ncloned-mac-address=permanent\n\
         [ipv4]\nmethod=disabled\n[ipv6]\nmethod=disabled\n",
        0o600,
    );
    write(
        "etc/NetworkManager/conf.d/10-scan.conf",
        "[device]\nwifi.scan-rand-mac-address=no\n",
        0o644,
    );
    write(
        "etc/systemd/network/10-fixed.link",
        "[Match]\nOriginalName=eth9\n[Link]\nMACAddress=00:11:22:33:44:55\n",
        0o644,
    );

    let (output, report) = check(&netns, root.path(), &config, state.path());
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let mut codes: Vec<String> = exposing(&report)
        .into_iter()
        .map(|(code, _)| code)
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "nm-cloned-mac-permanent",
            "nm-scan-rand-off",
            "systemd-link-mac-address"
        ],
        "{report:#}"
    );
    let permanent = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["code"] == "nm-cloned-mac-permanent")
        .unwrap();
    assert_eq!(permanent["subject"], "profile 'office' on eth9 (absent)");
    assert_eq!(
        permanent["location"],
        "/etc/NetworkManager/system-connections/office.nmconnection:7"
    );

    let text = macveil(&[
        "check",
        "--netns",
        &netns.name,
        "--root",
        root.path().to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--state-dir",
        state.path().to_str().unwrap(),
    ]);
    assert_eq!(text.status.code(), Some(1), "{}", describe(&text));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(!stdout.contains('\x1b'), "colour on a pipe: {stdout:?}");
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("MEDIUM profile 'office'")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|line| line.starts_with("3 findings (0 high, 3 medium, 0 low)")),
        "{stdout}"
    );
}

#[test]
fn check_invalid_policy_is_an_error() {
    let Some(netns) = TestNetns::create("check_invalid_policy_is_an_error") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let config = root.path().join("policy.conf");
    fs::write(&config, "[device]\nmacveil.manage=sometimes\n").unwrap();
    let output = macveil(&[
        "check",
        "--netns",
        &netns.name,
        "--root",
        root.path().to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--state-dir",
        state.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("macveil.manage"), "{stderr}");
}

/// Holds the daemon's lock in the state folder `state`, as a running daemon does, until the file
/// is dropped.
fn hold_daemon_lock(state: &Path) -> fs::File {
    let lock_path = state.join("daemon.lock");
    let lock = fs::File::create(&lock_path).unwrap();
    // SAFETY: flock takes a descriptor that the returned file keeps open.
    let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(locked, 0, "{}", std::io::Error::last_os_error());
    lock
}

/// Lists the codes of the report's findings whose code starts with `wpa-`.
fn supplicant_codes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .expect("findings is a list")
        .iter()
        .filter_map(|finding| finding["code"].as_str())
        .filter(|code| code.starts_with("wpa-"))
        .map(str::to_string)
        .collect()
}

#[test]
fn check_supplicant_under_daemon() {
    let Some(netns) = TestNetns::create("check_supplicant_under_daemon") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let supplicant = root
        .path()
        .join("etc/wpa_supplicant/wpa_supplicant-wlan0.conf");
    fs::create_dir_all(supplicant.parent().unwrap()).unwrap();
    // mac_addr and preassoc_mac_addr left at 0, as macveil's daemon needs them.
    fs::write(
        &supplicant,
        "ctrl_interface=/run/wpa_supplicant\nauto_uuid=1\np2p_disabled=1\n",
    )
    .unwrap();
    let config = root.path().join("policy.conf");
    fs::write(
        &config,
        "[connection-wifi]\nmatch-device=type:wifi\nwifi.cloned-mac-address=stable-ssid\n",
    )
    .unwrap();

    // Without the daemon, the defaults associate and scan with the permanent address.
    let (output, report) = check(&netns, root.path(), &config, state.path());
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_eq!(
        supplicant_codes(&report),
        ["wpa-mac-addr", "wpa-preassoc-mac-addr"],
        "{report:#}"
    );

    // Under the daemon they are what it needs.
    let lock = hold_daemon_lock(state.path());
    let (output, report) = check(&netns, root.path(), &config, state.path());
    assert!(supplicant_codes(&report).is_empty(), "{report:#}");
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));

    // A policy that leaves Wi-Fi addresses alone covers nothing, daemon or not.
    fs::write(
        &config,
        "[connection-wifi]\nmatch-device=type:wifi\nwifi.cloned-mac-address=preserve\n\
         [device-wifi]\nmatch-device=type:wifi\nwifi.scan-rand-mac-address=no\n",
    )
    .unwrap();
    let (output, report) = check(&netns, root.path(), &config, state.path());
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_eq!(
        supplicant_codes(&report),
        ["wpa-mac-addr", "wpa-preassoc-mac-addr"],
        "{report:#}"
    );
    drop(lock);
}

#[test]
fn check_missing_root_is_an_error() {
    let missing = tempfile::tempdir().unwrap().path().join("typo");
    for command in [&["check", "--json"][..], &["config", "check", "--json"][..]] {
        let mut args = command.to_vec();
        args.extend(["--root", missing.to_str().unwrap()]);
        let output = macveil(&args);
        assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
            panic!("{command:?} printed no JSON ({err}): {}", describe(&output))
        });
        let error = report["error"].as_str().unwrap_or_default();
        assert!(error.contains("no such folder"), "{report}");
    }
}
