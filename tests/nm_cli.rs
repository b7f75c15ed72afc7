//! `macveil nm predict` and `macveil nm install` against a real NetworkManager.
//!
//! The lab (see `support::nm_lab`) runs NetworkManager in its own namespaces, and macveil runs in
//! the same namespaces through `nsenter`, so it reads exactly the files NetworkManager reads:
//! `/etc/NetworkManager`, `/var/lib/NetworkManager/secret_key`, `/etc/machine-id`, the lab's
//! sysfs and the kernel's boot id. No path option is needed.
//!
//! The tests that need no NetworkManager (refusals on a missing or old NetworkManager) stand in
//! for its programs with small scripts.

mod support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use macveil::MacAddr;
use support::nm_lab::NmLab;
use support::nm_profile::NmProfile;

const MACVEIL: &str = env!("CARGO_BIN_EXE_macveil");

/// The address the lab's veth links are created with.
const INITIAL_ADDRESS: &str = "0a:1b:2c:3d:4e:5f";

/// Runs macveil in the lab's namespaces.
fn macveil_in_lab(lab: &NmLab, args: &[&str]) -> Output {
    lab.command(MACVEIL)
        .args(args)
        .output()
        .expect("failed to run macveil in the lab")
}

/// Panics with macveil's output unless it exited with `code`.
fn expect_exit(output: &Output, code: i32, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: expected exit code {code}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Returns the single address `macveil nm predict --json` prints for a profile.
fn predicted_address(lab: &NmLab, profile: &str) -> MacAddr {
    let output = macveil_in_lab(lab, &["nm", "predict", profile, "--json"]);
    expect_exit(&output, 0, &format!("nm predict {profile}"));
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("nm predict --json prints JSON");
    let prediction = &report["prediction"];
    assert_eq!(
        prediction["kind"], "address",
        "nm predict {profile} gave no single address: {report:#}"
    );
    prediction["address"]
        .as_str()
        .expect("the address is a string")
        .parse()
        .expect("the address parses")
}

/// A profile's stable-address settings.
struct Case {
    name: &'static str,
    stable_id: Option<&'static str>,
    mask: Option<&'static str>,
}

/// `connection.stable-id` templates and masks, each set in the profile except for the first,
/// which inherits the lab's `[connection*]` default.
const CASES: &[Case] = &[
    Case {
        name: "global-default",
        stable_id: None,
        mask: None,
    },
    Case {
        name: "connection",
        stable_id: Some("${CONNECTION}"),
        mask: None,
    },
    Case {
        name: "connection-boot",
        stable_id: Some("${CONNECTION}/${BOOT}"),
        mask: None,
    },
    Case {
        name: "device",
        stable_id: Some("${DEVICE}"),
        mask: None,
    },
    Case {
        name: "literal",
        stable_id: Some("office-lan"),
        mask: None,
    },
    Case {
        name: "mask-initial-oui",
        stable_id: Some("${CONNECTION}"),
        mask: Some("FF:FF:FF:00:00:00"),
    },
    Case {
        name: "mask-given-oui",
        stable_id: Some("${CONNECTION}/${BOOT}"),
        mask: Some("FF:FF:FF:00:00:00 68:F7:28:00:00:00"),
    },
];

/// The lab's defaults: `stable` and a stable-id template for the test link, and a section for
/// another link that must not apply.
const PREDICT_DEFAULTS: &str = "\
[connection-other]
match-device=interface-name:other0
ethernet.cloned-mac-address=permanent
connection.stable-id=never-used

[connection-lab]
match-device=interface-name:mvpredict0
ethernet.cloned-mac-address=stable
connection.stable-id=${DEVICE}/lab-default
";

#[test]
fn nm_predict_matches_network_manager() {
    if !support::root_or_skip("nm_predict_matches_network_manager") {
        return;
    }
    let started = Instant::now();
    let lab = NmLab::start(&[("50-lab-defaults.conf", PREDICT_DEFAULTS)]);
    let ifname = "mvpredict0";
    let initial: MacAddr = INITIAL_ADDRESS.parse().unwrap();
    lab.add_veth(ifname, "mvpredict0p", initial);
    lab.set_managed(ifname);

    // NetworkManager creates its secret key at the first activation that needs it.
    let warm_up = NmProfile::ethernet("warm-up", ifname);
    lab.load_profile(&warm_up);
    lab.activate(warm_up.uuid());
    assert!(
        lab.secret_key_path().is_file(),
        "no secret key after the first activation"
    );

    let mut mismatches = Vec::new();
    for case in CASES {
        let mut profile = NmProfile::ethernet(&format!("predict-{}", case.name), ifname);
        if let Some(stable_id) = case.stable_id {
            profile = profile.set("connection", "stable-id", stable_id);
        }
        if let Some(mask) = case.mask {
            profile = profile.set("ethernet", "generate-mac-address-mask", mask);
        }
        lab.load_profile(&profile);

        // Deactivating restores the address NetworkManager found, which a mask without OUIs
        // takes its bits from, so that the prediction starts from the same address.
        lab.nmcli(&["device", "disconnect", ifname]);
        assert_eq!(
            lab.link_address(ifname),
            initial,
            "case {}: NetworkManager did not restore the initial address on disconnect",
            case.name
        );

        let predicted = predicted_address(&lab, profile.id());
        lab.activate(profile.uuid());
        let applied = lab.link_address(ifname);
        if predicted != applied {
            mismatches.push(format!(
                "{}: NetworkManager applied {applied}, macveil nm predict said {predicted}",
                case.name
            ));
        }
    }
    eprintln!(
        "nm_predict_matches_network_manager: {} cases in {:?}",
        CASES.len(),
        started.elapsed()
    );
    assert!(
        mismatches.is_empty(),
        "macveil nm predict disagrees with NetworkManager {}:\n{}",
        lab.run("NetworkManager", &["-V"]).trim(),
        mismatches.join("\n")
    );
}

#[test]
fn nm_predict_reports_other_modes() {
    if !support::root_or_skip("nm_predict_reports_other_modes") {
        return;
    }
    let lab = NmLab::start(&[]);
    let ifname = "mvmodes0";
    lab.add_veth(ifname, "mvmodes0p", INITIAL_ADDRESS.parse().unwrap());

    let cases = [
        ("random", "unpredictable", "unpredictable: "),
        ("preserve", "preserve", "preserve: "),
        ("permanent", "permanent", "permanent: "),
    ];
    for (mode, kind, text) in cases {
        let profile = NmProfile::ethernet(&format!("mode-{mode}"), ifname).set(
            "ethernet",
            "cloned-mac-address",
            mode,
        );
        lab.load_profile(&profile);

        let json = macveil_in_lab(&lab, &["nm", "predict", profile.id(), "--json"]);
        expect_exit(&json, 0, mode);
        let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!(report["prediction"]["kind"], kind, "{mode}: {report:#}");

        let human = macveil_in_lab(&lab, &["nm", "predict", profile.uuid()]);
        expect_exit(&human, 0, mode);
        let stdout = String::from_utf8_lossy(&human.stdout);
        assert!(stdout.starts_with(text), "{mode}: {stdout}");
    }

    let missing = macveil_in_lab(&lab, &["nm", "predict", "no-such-profile"]);
    expect_exit(&missing, 2, "unknown profile");
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("mode-random"),
        "the error lists the profiles: {stderr}"
    );
}

/// Waits until `line` appears in the child's stdout, and returns the lines read so far.
fn read_until(reader: &mut impl BufRead, needle: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let read = reader.read_line(&mut line).expect("failed to read stdout");
        if read == 0 {
            panic!(
                "stdout closed before '{needle}'; read so far:\n{}",
                lines.join("")
            );
        }
        let found = line.contains(needle);
        lines.push(line);
        if found {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "'{needle}' did not appear within {timeout:?}; read so far:\n{}",
            lines.join("")
        );
    }
}

#[test]
fn nm_install_makes_network_manager_apply_policy() {
    if !support::root_or_skip("nm_install_makes_network_manager_apply_policy") {
        return;
    }
    let started = Instant::now();
    let lab = NmLab::start(&[]);
    let ifname = "mvinstall0";
    let initial: MacAddr = INITIAL_ADDRESS.parse().unwrap();
    lab.add_veth(ifname, "mvinstall0p", initial);
    lab.set_managed(ifname);

    let profile = NmProfile::ethernet("install-target", ifname);
    lab.load_profile(&profile);
    lab.activate(profile.uuid());
    assert_eq!(
        lab.link_address(ifname),
        initial,
        "without a policy NetworkManager preserves the address"
    );

    let dry_run = macveil_in_lab(&lab, &["nm", "install", "--dry-run"]);
    expect_exit(&dry_run, 0, "nm install --dry-run");
    let dropin = lab.etc_dir().join("conf.d/90-macveil.conf");
    assert!(!dropin.exists(), "--dry-run wrote {}", dropin.display());

    let mut install = lab.command(MACVEIL);
    install
        .args(["nm", "install", "--verify", "--timeout", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = install.spawn().expect("failed to start nm install");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let before = read_until(&mut stdout, "waiting up to", Duration::from_secs(30));
    assert!(
        before.iter().any(|line| line.contains("installed ")),
        "nm install did not report the file: {before:?}"
    );
    assert!(
        dropin.is_file(),
        "nm install did not write {}",
        dropin.display()
    );

    lab.activate(profile.uuid());
    let output = child
        .wait_with_output()
        .expect("failed to wait for nm install");
    let mut rest = String::new();
    for line in stdout.lines() {
        rest.push_str(&line.unwrap());
        rest.push('\n');
    }
    assert!(
        output.status.success(),
        "nm install --verify failed ({})\nstdout:\n{}{rest}\nstderr:\n{}",
        output.status,
        before.join(""),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(rest.contains("as the policy gives"), "{rest}");

    let applied = lab.link_address(ifname);
    assert_ne!(
        applied, initial,
        "NetworkManager kept the initial address after install"
    );
    assert!(applied.is_local(), "{applied} is not locally administered");
    lab.nmcli(&["device", "disconnect", ifname]);
    assert_eq!(
        predicted_address(&lab, profile.id()),
        applied,
        "nm predict disagrees with the address applied after install"
    );

    // A second install finds the same file and writes nothing.
    let again = macveil_in_lab(&lab, &["nm", "install"]);
    expect_exit(&again, 0, "second nm install");
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already installed"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    eprintln!(
        "nm_install_makes_network_manager_apply_policy: {:?}",
        started.elapsed()
    );
}

/// Writes an executable script `name` into `dir`.
fn write_script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs `macveil nm install` with the root and programs given.
fn install_with(root: &Path, bindir: &Path, extra: &[&str]) -> Output {
    Command::new(MACVEIL)
        .args(["nm", "install", "--root"])
        .arg(root)
        .arg("--nm-bindir")
        .arg(bindir)
        .args(extra)
        .output()
        .expect("failed to run macveil")
}

#[test]
fn nm_install_refuses_missing_network_manager() {
    let root = tempfile::tempdir().unwrap();
    let bindir = tempfile::tempdir().unwrap();
    let output = install_with(root.path(), bindir.path(), &[]);
    expect_exit(&output, 2, "install without NetworkManager");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not installed"), "{stderr}");
    assert!(
        !root
            .path()
            .join("etc/NetworkManager/conf.d/90-macveil.conf")
            .exists(),
        "the drop-in was written without NetworkManager"
    );
}

#[test]
fn nm_install_refuses_old_network_manager() {
    let root = tempfile::tempdir().unwrap();
    let bindir = tempfile::tempdir().unwrap();
    write_script(bindir.path(), "NetworkManager", "echo 1.2.6");
    write_script(bindir.path(), "nmcli", "exit 1");
    let output = install_with(root.path(), bindir.path(), &[]);
    expect_exit(&output, 2, "install on NetworkManager 1.2.6");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("NetworkManager 1.2.6 is too old"),
        "{stderr}"
    );
    assert!(stderr.contains("needs NetworkManager 1.4.0"), "{stderr}");

    let policy = root.path().join("ssid.conf");
    fs::write(
        &policy,
        "[connection-wifi]\nmatch-device=type:wifi\nwifi.cloned-mac-address=stable-ssid\n",
    )
    .unwrap();
    write_script(bindir.path(), "NetworkManager", "echo 1.42.4");
    let output = install_with(
        root.path(),
        bindir.path(),
        &["--policy", policy.to_str().unwrap()],
    );
    expect_exit(&output, 2, "stable-ssid on NetworkManager 1.42.4");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("stable-ssid needs NetworkManager 1.46.0"),
        "{stderr}"
    );
    assert!(
        !root
            .path()
            .join("etc/NetworkManager/conf.d/90-macveil.conf")
            .exists()
    );
}

#[test]
fn nm_install_without_daemon_keeps_file() {
    let root = tempfile::tempdir().unwrap();
    let bindir = tempfile::tempdir().unwrap();
    write_script(bindir.path(), "NetworkManager", "echo 1.42.4");
    write_script(
        bindir.path(),
        "nmcli",
        "echo 'Error: NetworkManager is not running.' >&2; exit 8",
    );
    let target = root
        .path()
        .join("etc/NetworkManager/conf.d/90-macveil.conf");
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::write(&target, "# an older policy\n").unwrap();

    let output = install_with(root.path(), bindir.path(), &[]);
    expect_exit(&output, 0, "install while NetworkManager is stopped");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("NetworkManager is not running"), "{stderr}");
    let content = fs::read_to_string(&target).unwrap();
    assert!(content.contains("[connection-macveil]"), "{content}");

    let backups: Vec<String> = fs::read_dir(target.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("90-macveil.conf.bak."))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let backup = target.parent().unwrap().join(&backups[0]);
    assert_eq!(fs::read_to_string(backup).unwrap(), "# an older policy\n");

    let verify = install_with(root.path(), bindir.path(), &["--verify", "--timeout", "1"]);
    expect_exit(&verify, 1, "--verify while NetworkManager is stopped");
}

/// A macveil policy that manages the lab's check link.
const CHECK_POLICY: &str = "[connection-lab]\nmatch-device=interface-name:mvcheck0\n\
                            ethernet.cloned-mac-address=stable\n";

/// Runs `macveil check --json` in the lab and returns its exit code and report.
fn check_in_lab(lab: &NmLab, policy: &Path) -> (Output, serde_json::Value) {
    let output = macveil_in_lab(
        lab,
        &["check", "--json", "--config", policy.to_str().unwrap()],
    );
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "check --json printed no JSON ({err})\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, report)
}

/// Lists the (code, subject) pairs of findings of medium or high severity.
fn exposing(report: &serde_json::Value) -> Vec<(String, String)> {
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

#[test]
fn check_reports_network_manager_exposure_then_fix() {
    if !support::root_or_skip("check_reports_network_manager_exposure_then_fix") {
        return;
    }
    let started = Instant::now();
    let lab = NmLab::start(&[]);
    let ifname = "mvcheck0";
    let initial: MacAddr = INITIAL_ADDRESS.parse().unwrap();
    lab.add_veth(ifname, "mvcheck0p", initial);
    lab.set_managed(ifname);
    let profile = NmProfile::ethernet("check-target", ifname);
    lab.load_profile(&profile);
    lab.activate(profile.uuid());
    assert_eq!(lab.link_address(ifname), initial);

    let policy_dir = tempfile::tempdir().unwrap();
    let policy = policy_dir.path().join("macveil.conf");
    fs::write(&policy, CHECK_POLICY).unwrap();

    let (output, report) = check_in_lab(&lab, &policy);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let found = exposing(&report);
    for expected in [
        (
            "nm-cloned-mac-preserve",
            "profile 'check-target' on mvcheck0",
        ),
        ("link-reference-address", "mvcheck0"),
        ("daemon-not-running", "mvcheck0"),
    ] {
        assert!(
            found.contains(&(expected.0.to_string(), expected.1.to_string())),
            "missing {expected:?} in {report:#}"
        );
    }

    let install = macveil_in_lab(&lab, &["nm", "install"]);
    expect_exit(&install, 0, "nm install");
    lab.activate(profile.uuid());
    assert_ne!(lab.link_address(ifname), initial);

    let (output, report) = check_in_lab(&lab, &policy);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert!(exposing(&report).is_empty(), "{report:#}");
    eprintln!(
        "check_reports_network_manager_exposure_then_fix: {:?}",
        started.elapsed()
    );
}

#[test]
fn nm_install_image_runs_nothing() {
    let root = tempfile::tempdir().unwrap();
    let status = root.path().join("var/lib/dpkg/status");
    fs::create_dir_all(status.parent().unwrap()).unwrap();
    fs::write(
        &status,
        "Package: network-manager\nStatus: install ok installed\nVersion: 1.42.4-1\n\n",
    )
    .unwrap();
    let install = |extra: &[&str]| {
        Command::new(MACVEIL)
            .args(["nm", "install", "--root"])
            .arg(root.path())
            .args(extra)
            .output()
            .expect("failed to run macveil")
    };
    let target = root
        .path()
        .join("etc/NetworkManager/conf.d/90-macveil.conf");

    let verify = install(&["--verify"]);
    expect_exit(&verify, 2, "--verify on an image");
    assert!(!target.exists(), "--verify on an image wrote the drop-in");

    let output = install(&[]);
    expect_exit(&output, 0, "install into an image");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("reads the drop-in when that system starts"),
        "{stdout}"
    );
    assert!(target.exists(), "the drop-in was not written");

    // The image's package database decides the version, not the running system's program.
    let policy = root.path().join("ssid.conf");
    fs::write(
        &policy,
        "[connection-wifi]\nmatch-device=type:wifi\nwifi.cloned-mac-address=stable-ssid\n",
    )
    .unwrap();
    fs::write(
        &status,
        "Package: network-manager\nStatus: install ok installed\nVersion: 1.46.0-1\n\n",
    )
    .unwrap();
    let newer = install(&["--dry-run", "--policy", policy.to_str().unwrap()]);
    expect_exit(
        &newer,
        0,
        "stable-ssid on an image with NetworkManager 1.46",
    );
}
