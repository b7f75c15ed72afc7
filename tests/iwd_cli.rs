//! `macveil wifi iwd-sync` run as a program on a folder of iwd network files: the address it
//! writes equals `macveil gen --stable` for the network's SSID, the files keep their other lines,
//! and a second run changes nothing. Invalid input and `--dry-run` change nothing, and a
//! main.conf without `AddressRandomization=network` gives exit status 1 and a warning.
//!
//! The interface is `lo`, which every network namespace has; `--mac` and `--ifname` give the
//! inputs a Wi-Fi link would, and the hidden `--host-id-hex` replaces the secret key file.

use std::fs;
use std::path::Path;
use std::process::Command;

const HOST_ID_HEX: &str = "6d61637665696c2d746573742d686f73742d6964";
const PERMANENT: &str = "02:00:00:00:00:00";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn macveil(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_macveil"))
        .args(args)
        .env_remove("MACVEIL_LOG")
        .output()
        .expect("failed to run macveil");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs iwd-sync on `dir` with the stable inputs of a card `wlan0` and the extra `args`.
fn sync(dir: &Path, args: &[&str]) -> Run {
    let iwd_dir = dir.to_str().unwrap();
    let main_conf = dir.join("main.conf");
    let mut all = vec![
        "wifi",
        "iwd-sync",
        "lo",
        "--iwd-dir",
        iwd_dir,
        "--iwd-config",
        main_conf.to_str().unwrap(),
        "--mac",
        PERMANENT,
        "--ifname",
        "wlan0",
        "--host-id-hex",
        HOST_ID_HEX,
    ];
    all.extend_from_slice(args);
    macveil(&all)
}

/// Returns the address `macveil gen --stable` gives the network `ssid` under stable-ssid.
fn predicted(ssid: &str) -> String {
    let run = macveil(&[
        "gen",
        "--stable",
        "--stable-id",
        "${NETWORK_SSID}",
        "--ssid",
        ssid,
        "--ifname",
        "wlan0",
        "--mac",
        PERMANENT,
        "--host-id-hex",
        HOST_ID_HEX,
    ]);
    assert_eq!(run.code, 0, "macveil gen failed: {}", run.stderr);
    run.stdout.trim().to_string()
}

fn folder(main_conf: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("main.conf"), main_conf).unwrap();
    dir
}

const NETWORK_MODE: &str = "[General]\nAddressRandomization=network\n";

#[test]
fn stable_ssid_written_per_network() {
    let dir = folder(NETWORK_MODE);
    let home = dir.path().join("home.psk");
    let cafe = dir.path().join("=636166c3a9.open");
    fs::write(
        &home,
        "[Security]\nPassphrase=words\n# mine\n\n[Settings]\nAutoConnect=false\n",
    )
    .unwrap();
    fs::write(&cafe, "").unwrap();

    let run = sync(dir.path(), &["--policy", "stable-ssid", "--json"]);
    assert_eq!(
        run.code, 0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );

    let home_address = predicted("home");
    let cafe_address = predicted("café");
    assert_ne!(home_address, cafe_address);
    assert_eq!(
        fs::read_to_string(&home).unwrap(),
        format!(
            "[Security]\nPassphrase=words\n# mine\n\n[Settings]\nAutoConnect=false\nAddressOverride={home_address}\n"
        )
    );
    assert_eq!(
        fs::read_to_string(&cafe).unwrap(),
        format!("[Settings]\nAddressOverride={cafe_address}\n")
    );
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["effective"], true);
    assert_eq!(report["networks"].as_array().unwrap().len(), 2);

    // A second run finds every file as it should be.
    let again = sync(dir.path(), &["--policy", "stable-ssid", "--json"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let report: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    for network in report["networks"].as_array().unwrap() {
        assert_eq!(network["changed"], false, "{network}");
    }
}

#[test]
fn random_replaces_override() {
    let dir = folder(NETWORK_MODE);
    let home = dir.path().join("home.open");
    fs::write(
        &home,
        "[Settings]\nAddressOverride=02:11:22:33:44:55\nHidden=true\n",
    )
    .unwrap();

    let run = sync(dir.path(), &["--policy", "random"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        fs::read_to_string(&home).unwrap(),
        "[Settings]\nHidden=true\nAlwaysRandomizeAddress=true\n"
    );
}

#[test]
fn invalid_file_changes_nothing() {
    let dir = folder(NETWORK_MODE);
    let good = dir.path().join("a-good.open");
    let bad = dir.path().join("b-bad.psk");
    fs::write(&good, "[Settings]\n").unwrap();
    fs::write(&bad, "[Security]\nthis is not a setting\n").unwrap();

    let run = sync(dir.path(), &["--policy", "stable-ssid"]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("b-bad.psk"), "{}", run.stderr);
    assert!(run.stderr.contains("line 2"), "{}", run.stderr);
    assert_eq!(fs::read_to_string(&good).unwrap(), "[Settings]\n");
    assert_eq!(
        fs::read_to_string(&bad).unwrap(),
        "[Security]\nthis is not a setting\n"
    );

    // A name that does not encode an SSID is invalid input too.
    fs::write(&bad, "").unwrap();
    fs::rename(&bad, dir.path().join("=zz.psk")).unwrap();
    let run = sync(dir.path(), &["--policy", "stable-ssid"]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert_eq!(fs::read_to_string(&good).unwrap(), "[Settings]\n");
}

#[test]
fn preserve_policy_rejected() {
    let dir = folder(NETWORK_MODE);
    let home = dir.path().join("home.open");
    fs::write(&home, "").unwrap();

    let run = sync(dir.path(), &["--policy", "preserve"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("preserve"), "{}", run.stderr);
    assert_eq!(fs::read_to_string(&home).unwrap(), "");
}

#[test]
fn dry_run_writes_nothing() {
    let dir = folder(NETWORK_MODE);
    let home = dir.path().join("home.open");
    fs::write(&home, "[Settings]\n").unwrap();

    let run = sync(dir.path(), &["--policy", "stable-ssid", "--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("would be written"), "{}", run.stdout);
    assert_eq!(fs::read_to_string(&home).unwrap(), "[Settings]\n");
}

#[test]
fn disabled_randomization_reported() {
    // The package's main.conf, every setting a comment: iwd's default is disabled.
    let dir = folder("[General]\n#AddressRandomization=network\n");
    let home = dir.path().join("home.open");
    fs::write(&home, "").unwrap();

    let run = sync(dir.path(), &["--policy", "stable-ssid"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("AddressRandomization=network"),
        "{}",
        run.stderr
    );
    // The file is written, so the setting applies once main.conf is fixed.
    assert!(
        fs::read_to_string(&home)
            .unwrap()
            .contains(&format!("AddressOverride={}", predicted("home")))
    );
}
