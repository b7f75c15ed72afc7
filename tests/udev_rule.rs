//! The shipped udev rule, run by the system's own udev rules engine: `udevadm test` processes an
//! "add" event for a veth link with `dist/81-macveil.rules` installed, which runs the helper
//! through `IMPORT{program}` and imports its properties.
//!
//! The test runs in a new network and mount namespace (`unshare -n -m`, private mounts): a fresh
//! sysfs shows only the namespace's links, and the rule lives on a tmpfs mounted on /run/udev,
//! so the host's links and rules are not touched. It needs root and udevadm, and skips without them.

use std::fs;
use std::io::Write;
use std::process::Command;

const MACVEIL: &str = env!("CARGO_BIN_EXE_macveil");

const CONFIG: &str = "\
[connection-test]
match-device=interface-name:tv*
ethernet.cloned-mac-address=stable
connection.stable-id=${CONNECTION}/${BOOT}
";

/// Runs inside the new namespaces; prints udevadm's properties and then the link list.
const SCRIPT: &str = r#"
set -e
mount -t tmpfs tmpfs /run/udev
mkdir /run/udev/rules.d
cp "$1" /run/udev/rules.d/81-macveil.rules
mount -t sysfs sysfs /sys
ip link add tv5 type veth peer name peer5
before=$(cat /sys/class/net/tv5/address)
udevadm test --action=add /sys/class/net/tv5 2>/dev/null
echo "BEFORE=$before"
echo "AFTER=$(cat /sys/class/net/tv5/address)"
echo "OPERSTATE=$(cat /sys/class/net/tv5/operstate)"
"#;

fn skip(reason: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED udev_rule_sets_address: {reason}"
    );
}

#[test]
fn udev_rule_sets_address() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip("needs root for namespaces and mounts");
    }
    if Command::new("udevadm").arg("--version").output().is_err() {
        return skip("udevadm is not installed");
    }

    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("secret_key");
    let state = dir.path().join("state");
    let config = dir.path().join("macveil.conf");
    fs::write(&config, CONFIG).unwrap();
    let created = Command::new(MACVEIL)
        .args([
            "gen",
            "--stable",
            "--ifname",
            "probe",
            "--create-secret-key",
        ])
        .arg("--secret-key")
        .arg(&key)
        .output()
        .unwrap();
    assert!(created.status.success());

    // The shipped rule, pointed at the built binary and the test's own files.
    let shipped = include_str!("../dist/81-macveil.rules");
    let helper = format!(
        "{MACVEIL} udev-apply --config {} --secret-key {} --state-dir {}",
        config.display(),
        key.display(),
        state.display()
    );
    let rule = shipped.replace("/usr/local/bin/macveil udev-apply", &helper);
    assert_ne!(
        rule, shipped,
        "the rule no longer runs /usr/local/bin/macveil udev-apply"
    );
    let rule_path = dir.path().join("81-macveil.rules");
    fs::write(&rule_path, rule).unwrap();

    let output = Command::new("unshare")
        .args([
            "--net",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            SCRIPT,
            "sh",
        ])
        .arg(&rule_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");

    let value = |key: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in:\n{stdout}"))
            .to_string()
    };
    assert_eq!(value("MACVEIL_STATE"), "set");
    assert_eq!(value("MACVEIL_POLICY"), "stable");
    let address = value("MACVEIL_ADDRESS");
    assert_eq!(value("AFTER"), address);
    assert_ne!(value("BEFORE"), address);
    assert_eq!(value("OPERSTATE"), "down");
    // NetworkManager's own rules mark veth links unmanaged, so only macveil's marker counts.
    assert!(!stdout.contains("MACVEIL_ERROR"), "{stdout}");
    assert!(!stdout.contains("ID_NET_MANAGED_BY"), "{stdout}");
}
