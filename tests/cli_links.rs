//! Root tests of `macveil show`, `set` and `restore`: the built binary run with `--netns` on
//! links in a namespace the test creates, with its state file in a temporary directory.

mod common;

use common::{TestNetns, describe, macveil, macveil_in, skip};
use macveil::MacAddr;
use serde_json::Value;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Creates a namespace with veth0 (up, peer veth1), tap0, br0 (up) and mvl0 (macvlan on veth0),
/// and a state directory.
fn lab(test: &str) -> Option<(TestNetns, tempfile::TempDir)> {
    let ns = TestNetns::create(test)?;
    ns.ip(&[
        "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
    ]);
    ns.ip(&["tuntap", "add", "mode", "tap", "tap0"]);
    ns.ip(&["link", "add", "br0", "type", "bridge"]);
    ns.ip(&["link", "add", "mvl0", "link", "veth0", "type", "macvlan"]);
    ns.ip(&["link", "set", "veth0", "up"]);
    ns.ip(&["link", "set", "br0", "up"]);
    Some((ns, tempfile::tempdir().unwrap()))
}

fn show_json(ns: &TestNetns, state: &std::path::Path, ifname: &str) -> Value {
    let output = macveil_in(ns, state, &["show", ifname, "--json"]);
    assert!(output.status.success(), "{}", describe(&output));
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    rows[0].clone()
}

#[test]
fn set_random_then_show_reports_anonymized() {
    let Some((ns, state)) = lab("set_random_then_show_reports_anonymized") else {
        return;
    };
    let original = ns.address("veth0");
    let row = show_json(&ns, state.path(), "veth0");
    assert_eq!(row["verdict"], "exposed");
    assert_eq!(row["reference"], original.as_str());
    assert_eq!(row["kind"], "veth");
    assert_eq!(row["driver"], "veth");
    assert_eq!(row["permanent"], Value::Null);
    // Read from a sysfs mounted inside the namespace.
    assert_eq!(row["assign_type"], "random");

    let output = macveil_in(&ns, state.path(), &["set", "veth0", "--random"]);
    assert!(output.status.success(), "{}", describe(&output));
    let new = ns.address("veth0");
    assert_ne!(new, original);
    let parsed: MacAddr = new.parse().unwrap();
    assert!(parsed.is_local(), "{new}");
    assert!(!parsed.is_group(), "{new}");
    let text = stdout(&output);
    // The old address is the reference, so it is redacted.
    let redacted: MacAddr = original.parse().unwrap();
    assert!(
        text.contains(&format!("veth0: changed {} -> {new}", redacted.redacted())),
        "{text}"
    );
    assert!(!text.contains(&original), "{text}");
    assert!(ns.is_up("veth0"));

    let row = show_json(&ns, state.path(), "veth0");
    assert_eq!(row["verdict"], "anonymized");
    assert_eq!(row["address"], new.as_str());
    assert_eq!(row["assign_type"], "set");
    assert_eq!(row["reference"], original.as_str());

    let output = macveil_in(&ns, state.path(), &["restore", "veth0"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(ns.address("veth0"), original);
    assert!(ns.is_up("veth0"));
    assert_eq!(show_json(&ns, state.path(), "veth0")["verdict"], "exposed");
}

#[test]
fn generators_work_on_each_link_kind() {
    let Some((ns, state)) = lab("generators_work_on_each_link_kind") else {
        return;
    };
    for ifname in ["veth0", "tap0", "br0", "mvl0"] {
        let original = ns.address(ifname);
        let was_up = ns.is_up(ifname);
        let reference: MacAddr = original.parse().unwrap();

        let output = macveil_in(&ns, state.path(), &["set", ifname, "--random"]);
        assert!(
            output.status.success(),
            "{ifname} --random: {}",
            describe(&output)
        );
        assert_ne!(ns.address(ifname), original, "{ifname} --random");

        let output = macveil_in(&ns, state.path(), &["set", ifname, "--ending"]);
        assert!(
            output.status.success(),
            "{ifname} --ending: {}",
            describe(&output)
        );
        let ending: MacAddr = ns.address(ifname).parse().unwrap();
        assert_eq!(
            ending.oui(),
            reference.oui(),
            "{ifname}: --ending keeps the reference prefix"
        );
        assert_ne!(ending, reference, "{ifname} --ending");

        let output = macveil_in(
            &ns,
            state.path(),
            &["set", ifname, "--mac", "02:00:5e:00:53:01"],
        );
        assert!(
            output.status.success(),
            "{ifname} --mac: {}",
            describe(&output)
        );
        assert_eq!(ns.address(ifname), "02:00:5e:00:53:01", "{ifname} --mac");

        let output = macveil_in(&ns, state.path(), &["set", ifname, "--permanent"]);
        assert!(
            output.status.success(),
            "{ifname} --permanent: {}",
            describe(&output)
        );
        assert_eq!(ns.address(ifname), original, "{ifname} --permanent");
        assert_eq!(ns.is_up(ifname), was_up, "{ifname}: admin state changed");
    }
}

#[test]
fn vendor_generator_uses_registry_prefix() {
    let Some((ns, state)) = lab("vendor_generator_uses_registry_prefix") else {
        return;
    };
    if macveil::vendor::Registry::load().search("").is_empty() {
        skip(
            "vendor_generator_uses_registry_prefix",
            "the vendor registry is empty",
        );
        return;
    }
    let output = macveil_in(&ns, state.path(), &["set", "veth0", "--vendor"]);
    assert!(output.status.success(), "{}", describe(&output));
    let address: MacAddr = ns.address("veth0").parse().unwrap();
    assert!(!address.is_local(), "{address}");
    assert!(!address.is_group(), "{address}");
    assert!(
        macveil::vendor::Registry::load().lookup(&address).is_some(),
        "{address} has no registered vendor"
    );
}

/// `set --stable` derives from the link's name and reference address what `gen --stable` derives
/// from the same values given as options.
#[test]
fn stable_generator_matches_gen() {
    let Some((ns, state)) = lab("stable_generator_matches_gen") else {
        return;
    };
    let key = state.path().join("secret_key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let key = key.to_str().unwrap().to_string();
    let reference = ns.address("veth0");
    let common = [
        "--stable",
        "--stable-id",
        "${CONNECTION}/${DEVICE}",
        "--boot-id",
        "0f8c8d6e-6a8e-4d39-9b0a-3c5f2b7d1e44",
        "--machine-id",
        "0123456789abcdef0123456789abcdef",
        "--secret-key",
        &key,
    ];

    // With an explicit connection, and without one, where macveil's per-link identity comes
    // from the reference address.
    let cases: [&[&str]; 2] = [
        &["--connection", "5b2a1c3e-0f4d-4c1e-9d3a-2a6f0e7b8c9d"],
        &[],
    ];
    for extra in cases {
        let mut gen_args = vec![
            "gen",
            "--permanent",
            &reference,
            "--current",
            &reference,
            "--ifname",
            "veth0",
        ];
        gen_args.extend_from_slice(&common);
        gen_args.extend_from_slice(extra);
        let generated = macveil(&gen_args);
        assert!(generated.status.success(), "{}", describe(&generated));
        let expected = stdout(&generated).trim().to_string();
        assert_ne!(expected, reference);

        let mut set_args = vec!["set", "veth0"];
        set_args.extend_from_slice(&common);
        set_args.extend_from_slice(extra);
        let output = macveil_in(&ns, state.path(), &set_args);
        assert!(output.status.success(), "{extra:?}: {}", describe(&output));
        assert_eq!(ns.address("veth0"), expected, "{extra:?}");

        // Deriving again gives the same address, so the link is reported unchanged.
        let output = macveil_in(&ns, state.path(), &set_args);
        assert!(output.status.success(), "{}", describe(&output));
        assert!(
            stdout(&output).contains("veth0: unchanged"),
            "{}",
            describe(&output)
        );
    }
}

#[test]
fn unknown_name_changes_nothing() {
    let Some((ns, state)) = lab("unknown_name_changes_nothing") else {
        return;
    };
    let before = ns.address("veth0");
    let output = macveil_in(&ns, state.path(), &["set", "veth0", "nosuch0", "--random"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let message = stderr(&output);
    assert!(message.contains("nosuch0: no such interface"), "{message}");
    assert!(
        message.contains("interfaces here: lo, veth1, veth0, tap0, br0, mvl0"),
        "{message}"
    );
    assert_eq!(ns.address("veth0"), before);
}

#[test]
fn group_address_is_rejected_before_kernel() {
    let Some((ns, state)) = lab("group_address_is_rejected_before_kernel") else {
        return;
    };
    let before = ns.address("veth0");
    let output = macveil_in(
        &ns,
        state.path(),
        &["set", "veth0", "--mac", "03:19:6c:04:26:53"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let message = stderr(&output);
    assert!(message.contains("group (multicast) address"), "{message}");
    assert!(message.contains("02:19:6c:04:26:53"), "{message}");
    assert_eq!(ns.address("veth0"), before);
    assert!(
        !state.path().join("references.json").exists(),
        "invalid input recorded state"
    );
}

#[test]
fn link_without_address_is_rejected() {
    let Some((ns, state)) = lab("link_without_address_is_rejected") else {
        return;
    };
    let before = ns.address("veth0");
    let output = macveil_in(&ns, state.path(), &["set", "veth0", "lo", "--random"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let message = stderr(&output);
    assert!(
        message.contains("lo (loopback) has no 6-byte hardware address"),
        "{message}"
    );
    assert_eq!(ns.address("veth0"), before);
}

#[test]
fn partial_failure_exits_one() {
    let Some((ns, state)) = lab("partial_failure_exits_one") else {
        return;
    };
    ns.ip(&["link", "add", "ifb0", "type", "ifb"]);
    let before = ns.address("veth0");
    let output = macveil_in(
        &ns,
        state.path(),
        &["set", "veth0", "ifb0", "--random", "--json"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rows[0]["interface"], "veth0");
    assert_eq!(rows[0]["result"], "changed");
    assert_eq!(rows[1]["interface"], "ifb0");
    assert_eq!(rows[1]["result"], "failed");
    let error = rows[1]["error"].as_str().unwrap();
    assert!(
        error.contains("driver ifb cannot change its address"),
        "{error}"
    );
    assert!(
        stderr(&output).contains("1 of 2 interfaces failed"),
        "{}",
        describe(&output)
    );
    assert_ne!(ns.address("veth0"), before);
}

#[test]
fn macvlan_conflict_is_reported() {
    let Some((ns, state)) = lab("macvlan_conflict_is_reported") else {
        return;
    };
    ns.ip(&["link", "add", "mvl1", "link", "veth0", "type", "macvlan"]);
    ns.ip(&["link", "set", "mvl0", "up"]);
    ns.ip(&["link", "set", "mvl1", "up"]);
    let taken = ns.address("mvl0");
    let output = macveil_in(&ns, state.path(), &["set", "mvl1", "--mac", &taken]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let text = stdout(&output);
    assert!(text.contains("EADDRINUSE"), "{text}");
    assert!(text.contains("cannot share an address"), "{text}");
}

#[test]
fn fixed_address_for_two_interfaces_is_rejected() {
    let Some((ns, state)) = lab("fixed_address_for_two_interfaces_is_rejected") else {
        return;
    };
    ns.ip(&["link", "add", "mvl1", "link", "veth0", "type", "macvlan"]);
    let before = [ns.address("mvl0"), ns.address("mvl1")];
    let output = macveil_in(
        &ns,
        state.path(),
        &["set", "mvl0", "mvl1", "--mac", "02:aa:bb:cc:dd:01"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let message = stderr(&output);
    assert!(message.contains("must not share an address"), "{message}");
    assert!(message.contains("nothing was changed"), "{message}");
    assert_eq!([ns.address("mvl0"), ns.address("mvl1")], before);
    assert!(
        !state.path().join("references.json").exists(),
        "rejected input recorded state"
    );
}

#[test]
fn restore_without_reference_fails_and_records_nothing() {
    let Some((ns, state)) = lab("restore_without_reference_fails_and_records_nothing") else {
        return;
    };
    let output = macveil_in(&ns, state.path(), &["set", "veth0", "--random"]);
    assert!(output.status.success(), "{}", describe(&output));
    let anonymized = ns.address("veth0");

    // The state is lost: a fresh directory knows no reference for veth0.
    let lost = tempfile::tempdir().unwrap();
    let output = macveil_in(&ns, lost.path(), &["restore", "veth0"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let message = stderr(&output);
    assert!(
        message.contains("veth0: the permanent address is unknown"),
        "{message}"
    );
    assert!(message.contains("nothing to restore"), "{message}");
    assert!(
        !stdout(&output).contains("unchanged"),
        "{}",
        describe(&output)
    );
    assert_eq!(ns.address("veth0"), anonymized);
    assert!(
        !lost.path().join("references.json").exists(),
        "restore recorded a reference"
    );

    // With one restorable link, that one is restored and the other fails.
    let original_tap = ns.address("tap0");
    let output = macveil_in(&ns, state.path(), &["restore", "veth0", "tap0", "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rows[0]["interface"], "veth0");
    assert_eq!(rows[0]["result"], "changed");
    assert_eq!(rows[1]["interface"], "tap0");
    assert_eq!(rows[1]["result"], "failed");
    assert_eq!(rows[1]["requested"], Value::Null);
    let error = rows[1]["error"].as_str().unwrap();
    assert!(error.contains("nothing to restore"), "{error}");
    assert_eq!(ns.address("tap0"), original_tap);
    let recorded = std::fs::read_to_string(state.path().join("references.json")).unwrap();
    assert!(!recorded.contains("tap0"), "{recorded}");
}

#[test]
fn first_reference_of_set_address_warns() {
    let Some((ns, state)) = lab("first_reference_of_set_address_warns") else {
        return;
    };
    ns.ip(&["link", "set", "tap0", "address", "02:00:5e:00:53:07"]);
    let output = macveil_in(&ns, state.path(), &["show", "tap0", "br0"]);
    assert!(output.status.success(), "{}", describe(&output));
    let message = stderr(&output);
    assert!(
        message.contains("tap0: recording its current address 02:00:5e:xx:xx:xx"),
        "{message}"
    );
    assert!(
        message.contains("may itself be an anonymized address"),
        "{message}"
    );
    assert!(!message.contains("02:00:5e:00:53:07"), "{message}");
    // br0's address was generated by the kernel (addr_assign_type random).
    assert!(!message.contains("br0:"), "{message}");
}

/// Waits up to two seconds for `ip` to appear on `ifname`.
fn wait_for_ipv6(ns: &TestNetns, ifname: &str, ip: &str) -> bool {
    for _ in 0..40 {
        if ns.ipv6_addresses(ifname).iter().any(|have| have == ip) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

#[test]
fn reports_redact_reference_and_derived_ipv6() {
    let Some((ns, state)) = lab("reports_redact_reference_and_derived_ipv6") else {
        return;
    };
    ns.ip(&["link", "set", "veth1", "up"]);
    let reference: MacAddr = ns.address("veth0").parse().unwrap();
    let link_local = macveil::link::ipv6::link_local(reference).to_string();
    let redacted_link_local = macveil::link::redact::redacted_ipv6(&link_local.parse().unwrap());
    assert!(wait_for_ipv6(&ns, "veth0", &link_local), "no {link_local}");

    let output = macveil_in(&ns, state.path(), &["set", "veth0", "--random"]);
    assert!(output.status.success(), "{}", describe(&output));
    let everything = format!("{}{}", stdout(&output), stderr(&output));
    assert!(!everything.contains(&reference.to_string()), "{everything}");
    assert!(!everything.contains(&link_local), "{everything}");
    assert!(
        everything.contains(&format!("removed IPv6 address {redacted_link_local}")),
        "{everything}"
    );

    let output = macveil_in(&ns, state.path(), &["restore", "veth0", "--json"]);
    assert!(output.status.success(), "{}", describe(&output));
    let everything = format!("{}{}", stdout(&output), stderr(&output));
    assert!(!everything.contains(&reference.to_string()), "{everything}");
    assert!(!everything.contains(&link_local), "{everything}");
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rows[0]["requested"], reference.redacted().as_str());
    assert_eq!(rows[0]["new"], reference.redacted().as_str());
    assert_eq!(rows[0]["added_ipv6"][0], redacted_link_local.as_str());
    assert_eq!(ns.address("veth0"), reference.to_string());

    let output = macveil_in(&ns, state.path(), &["set", "veth0", "--random"]);
    assert!(output.status.success(), "{}", describe(&output));
    let output = macveil_in(&ns, state.path(), &["restore", "veth0", "--reveal"]);
    assert!(output.status.success(), "{}", describe(&output));
    let text = stdout(&output);
    assert!(text.contains(&format!("-> {reference}")), "{text}");
    assert!(
        text.contains(&format!("added IPv6 link-local address {link_local}")),
        "{text}"
    );
}

#[test]
fn many_interfaces_in_one_call() {
    let Some(ns) = TestNetns::create("many_interfaces_in_one_call") else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..40).map(|i| format!("v{i}")).collect();
    for name in &names {
        ns.ip(&[
            "link",
            "add",
            name,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{name}p"),
        ]);
    }
    let before: Vec<String> = names.iter().map(|name| ns.address(name)).collect();
    let mut args = vec!["set"];
    args.extend(names.iter().map(String::as_str));
    args.push("--random");
    let output = macveil_in(&ns, state.path(), &args);
    assert!(output.status.success(), "{}", describe(&output));
    for (name, old) in names.iter().zip(&before) {
        assert_ne!(&ns.address(name), old, "{name}");
        assert!(
            stdout(&output).contains(&format!("{name}: changed")),
            "{name}"
        );
    }
}

#[test]
fn dry_run_changes_nothing() {
    let Some((ns, state)) = lab("dry_run_changes_nothing") else {
        return;
    };
    let before = ns.address("veth0");
    let output = macveil_in(
        &ns,
        state.path(),
        &["set", "veth0", "--random", "--dry-run"],
    );
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        stdout(&output).contains("veth0: would change"),
        "{}",
        describe(&output)
    );
    assert_eq!(ns.address("veth0"), before);
}

#[test]
fn show_lists_every_link_without_zero_address() {
    let Some((ns, state)) = lab("show_lists_every_link_without_zero_address") else {
        return;
    };
    let output = macveil_in(&ns, state.path(), &["show", "--json"]);
    assert!(output.status.success(), "{}", describe(&output));
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lo", "veth1", "veth0", "tap0", "br0", "mvl0"]);
    let lo = &rows[0];
    assert_eq!(lo["address"], Value::Null);
    assert_eq!(lo["verdict"], "unknown");
    assert_eq!(rows[3]["kind"], "tap");

    let text = stdout(&macveil_in(&ns, state.path(), &["show"]));
    assert!(!text.contains("00:00:00:00:00:00"), "{text}");
    assert!(text.contains("permanent:  unknown"), "{text}");
}

#[test]
fn missing_namespace_is_an_error() {
    let state = tempfile::tempdir().unwrap();
    let output = macveil(&[
        "show",
        "--netns",
        "macveil-test-no-such-namespace",
        "--state-dir",
        state.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        stderr(&output).contains("/run/netns/macveil-test-no-such-namespace"),
        "{}",
        describe(&output)
    );
}

#[test]
fn help_documents_exit_codes() {
    for command in ["show", "set", "restore"] {
        let output = macveil(&[command, "--help"]);
        assert!(output.status.success(), "{}", describe(&output));
        let text = stdout(&output);
        assert!(text.contains("Exit codes:"), "{command}: {text}");
        assert!(text.contains("--netns"), "{command}: {text}");
    }
}
