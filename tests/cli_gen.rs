//! `macveil gen --stable` run as a program: NetworkManager's vectors, the end-to-end v2 key case,
//! secret key errors, `--count` and `--json`.
//!
//! Expected addresses for template rows are computed from the vector's own expansion with the
//! library's hash, so a test fails when the command line expands a template differently from
//! NetworkManager. The provenance of the end-to-end values is in tests/nm_reference.py.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use macveil::MacAddr;
use macveil::generate::stable::{self, StableId, StableIdType};
use macveil::generate::stable_id;
use macveil::rng::FixedRandom;
use macveil::secret_key::HostId;

/// The output of one run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn addresses(&self) -> Vec<MacAddr> {
        assert_eq!(self.code, 0, "macveil failed: {}", self.stderr);
        self.stdout
            .lines()
            .map(|line| {
                line.parse()
                    .unwrap_or_else(|_| panic!("not an address: {line:?}"))
            })
            .collect()
    }

    fn address(&self) -> MacAddr {
        let addresses = self.addresses();
        assert_eq!(addresses.len(), 1, "stdout: {}", self.stdout);
        addresses[0]
    }
}

fn macveil<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = Command::new(env!("CARGO_BIN_EXE_macveil"))
        .args(args)
        .env_remove("MACVEIL_LOG")
        .output()
        .expect("failed to run macveil");
    Run {
        code: output
            .status
            .code()
            .expect("macveil was killed by a signal"),
        stdout: String::from_utf8(output.stdout).expect("stdout is not UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is not UTF-8"),
    }
}

/// Arguments for the vectors' host id "key1", which is shorter than any key file.
fn vector_args() -> Vec<OsString> {
    ["gen", "--stable", "--host-id-hex", "6b657931"]
        .into_iter()
        .map(OsString::from)
        .collect()
}

fn read_table(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip(1)
        .map(|line| line.split('\t').map(str::to_string).collect())
        .collect()
}

fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// Computes the address NetworkManager derives for `stable_id` with host id "key1" and no mask.
fn expected_address(kind: StableIdType, id: &str, ifname: &str) -> MacAddr {
    let stable_id = StableId {
        kind,
        id: id.to_string(),
    };
    let host_id = HostId::from_bytes(b"key1".to_vec());
    stable::address(
        &stable_id,
        &host_id,
        ifname,
        None,
        None,
        &mut FixedRandom::new(vec![0]),
    )
    .unwrap()
}

fn write_file(dir: &Path, name: &str, content: &[u8], mode: u32) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, content).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn stable_eth_vectors_from_command_line() {
    let rows = read_table(include_str!("data/nm-stable-eth.tsv"));
    assert_eq!(rows.len(), 10);

    for row in rows {
        let [_host, kind, id, ifname, current, mask, expected] = &row[..] else {
            panic!("bad row {row:?}");
        };
        let mut args = vector_args();
        // Type 0 hashes the connection UUID; type 1 a template without placeholders.
        match kind.as_str() {
            "0" => args.extend(["--connection".into(), id.into()]),
            "1" => args.extend(["--stable-id".into(), id.into()]),
            other => panic!("unexpected type {other}"),
        }
        args.extend([
            "--ifname".into(),
            ifname.into(),
            "--current".into(),
            current.into(),
        ]);
        if !mask.is_empty() {
            args.extend(["--mask".into(), mask.into()]);
        }
        // Many draws, so that a mask with several OUIs shows every pick.
        args.extend(["--count".into(), "64".into()]);

        let expected: BTreeSet<MacAddr> = expected.split('|').map(|a| a.parse().unwrap()).collect();
        let results: BTreeSet<MacAddr> = macveil(&args).addresses().into_iter().collect();
        assert_eq!(results, expected, "row {row:?}");
    }
}

#[test]
fn stable_id_vectors_from_command_line() {
    let rows = read_table(include_str!("data/nm-stable-id.tsv"));
    assert_eq!(rows.len(), 32);
    let mut checked = 0;

    for row in &rows {
        let [
            template,
            device,
            mac,
            boot,
            connection,
            ssid_hex,
            kind,
            expansion,
        ] = &row[..]
        else {
            panic!("bad row {row:?}");
        };
        // --mac takes only real addresses; the ${MAC} row runs in tests/stable_vectors.rs and
        // in mac_placeholder_uses_upper_case below.
        if template.contains("${MAC}") {
            assert_eq!(mac, "_MAC");
            continue;
        }

        let mut args = vector_args();
        args.extend([
            OsString::from("--stable-id"),
            template.into(),
            "--ifname".into(),
            device.into(),
            "--boot-id".into(),
            boot.into(),
            "--connection".into(),
            connection.into(),
        ]);
        if ssid_hex != "-" {
            args.extend([
                "--ssid".into(),
                OsStr::from_bytes(&decode_hex(ssid_hex)).into(),
            ]);
        }

        let kind = StableIdType::from_number(kind.parse().unwrap()).unwrap();
        match kind {
            StableIdType::Random => {
                args.extend(["--count".into(), "4".into()]);
                let results: BTreeSet<MacAddr> = macveil(&args).addresses().into_iter().collect();
                assert_eq!(
                    results.len(),
                    4,
                    "row {row:?}: ${{RANDOM}} repeated an address"
                );
            }
            _ => {
                let id = match kind {
                    StableIdType::Uuid => connection.clone(),
                    StableIdType::StableId => template.clone(),
                    _ => stable_id::generated_complete(expansion),
                };
                let expected = expected_address(kind, &id, device);
                assert_eq!(macveil(&args).address(), expected, "row {row:?}");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 31);
}

#[test]
fn generated_complete_vector_from_command_line() {
    // The one row of nm-generated-complete.tsv that a template produces; the others are plain
    // SHA-1 checks in tests/stable_vectors.rs.
    let rows = read_table(include_str!("data/nm-generated-complete.tsv"));
    let row = rows
        .iter()
        .find(|row| row[0] == "${NETWORK_SSID}=9{s:foo\\012}")
        .expect("row present");

    let mut args = vector_args();
    args.extend([
        OsString::from("--stable-id"),
        "${NETWORK_SSID}".into(),
        "--ssid".into(),
        "foo\n".into(),
        "--ifname".into(),
        "wlan0".into(),
    ]);
    let expected = expected_address(StableIdType::Generated, &row[1], "wlan0");
    assert_eq!(macveil(&args).address(), expected);
}

#[test]
fn mac_placeholder_uses_upper_case() {
    let mut args = vector_args();
    args.extend(
        [
            "--stable-id",
            "${MAC}x",
            "--ifname",
            "eth0",
            "--mac",
            "3c:22:fb:0a:bc:de",
        ]
        .map(OsString::from),
    );
    let id = stable_id::generated_complete("${MAC}=17{3C:22:FB:0A:BC:DE}x");
    assert_eq!(
        macveil(&args).address(),
        expected_address(StableIdType::Generated, &id, "eth0")
    );
}

const NETPLAN_KEY: &[u8] = b"nm-v2:hnIHoHp4p9kaEWU5/+dO+gFREirN1AsMoO1MPaoYxCc=";
const NETPLAN_MACHINE_ID: &str = "ee7ac3602b6306061bd984a41eb1c045";

/// A directory with the netplan test's secret key (mode 0600) and machine id file.
struct KeyDir {
    _dir: tempfile::TempDir,
    key: PathBuf,
    machine_id: PathBuf,
}

fn key_dir() -> KeyDir {
    let dir = tempfile::tempdir().unwrap();
    let key = write_file(dir.path(), "secret_key", NETPLAN_KEY, 0o600);
    let machine_id = write_file(
        dir.path(),
        "machine-id",
        format!("{NETPLAN_MACHINE_ID}\n").as_bytes(),
        0o644,
    );
    KeyDir {
        _dir: dir,
        key,
        machine_id,
    }
}

fn key_args(keys: &KeyDir) -> Vec<OsString> {
    vec![
        "gen".into(),
        "--stable".into(),
        "--secret-key".into(),
        keys.key.clone().into(),
        "--machine-id".into(),
        keys.machine_id.clone().into(),
    ]
}

#[test]
fn v2_key_end_to_end_matches_networkmanager() {
    let keys = key_dir();

    // NetworkManager itself produced this address (netplan's stable-ssid integration test).
    let mut args = key_args(&keys);
    args.extend(
        [
            "--ifname",
            "wlan0",
            "--stable-id",
            "${NETWORK_SSID}",
            "--ssid",
            "fake net",
        ]
        .map(OsString::from),
    );
    assert_eq!(macveil(&args).address().to_string(), "5e:ba:fe:fd:89:03");

    // The machine id given directly instead of as a file.
    let mut direct = vec![
        OsString::from("gen"),
        "--stable".into(),
        "--secret-key".into(),
        keys.key.clone().into(),
        "--machine-id".into(),
        NETPLAN_MACHINE_ID.to_uppercase().into(),
    ];
    direct.extend(
        [
            "--ifname",
            "wlan0",
            "--stable-id",
            "${NETWORK_SSID}",
            "--ssid",
            "fake net",
        ]
        .map(OsString::from),
    );
    assert_eq!(macveil(&direct).address().to_string(), "5e:ba:fe:fd:89:03");

    let connection = "5b2a1c3e-0f4d-4c1e-9d3a-2a6f0e7b8c9d";
    let mut uuid = key_args(&keys);
    uuid.extend(["--ifname", "eth0", "--connection", connection].map(OsString::from));
    assert_eq!(macveil(&uuid).address().to_string(), "02:0e:11:9c:9a:01");

    let mut per_boot = key_args(&keys);
    per_boot.extend(
        [
            "--ifname",
            "eth0",
            "--connection",
            connection,
            "--stable-id",
            "${CONNECTION}/${BOOT}",
            "--boot-id",
            "a1b2c3d4-0000-4000-8000-0123456789ab",
        ]
        .map(OsString::from),
    );
    assert_eq!(
        macveil(&per_boot).address().to_string(),
        "d2:0c:33:36:fd:94"
    );
}

#[test]
fn invalid_machine_id_file_left_out() {
    let keys = key_dir();
    fs::write(&keys.machine_id, "uninitialized\n").unwrap();
    let mut args = key_args(&keys);
    args.extend(
        [
            "--ifname",
            "eth0",
            "--connection",
            "5b2a1c3e-0f4d-4c1e-9d3a-2a6f0e7b8c9d",
        ]
        .map(OsString::from),
    );
    let run = macveil(&args);
    assert_eq!(run.address().to_string(), "a6:e9:99:28:80:f4");
    assert!(run.stderr.contains("left out"), "stderr: {}", run.stderr);
}

#[test]
fn link_identity_replaces_missing_connection() {
    let keys = key_dir();

    let mut by_mac = key_args(&keys);
    by_mac.extend(["--ifname", "eth0", "--mac", "3c:22:fb:01:02:03"].map(OsString::from));
    assert_eq!(macveil(&by_mac).address().to_string(), "b6:68:60:f9:da:af");

    // gen's --permanent is the interface's permanent address, so it gives the same identity.
    let mut by_permanent = key_args(&keys);
    by_permanent
        .extend(["--ifname", "eth0", "--permanent", "3c:22:fb:01:02:03"].map(OsString::from));
    assert_eq!(
        macveil(&by_permanent).address().to_string(),
        "b6:68:60:f9:da:af"
    );

    let mut by_name = key_args(&keys);
    by_name.extend(["--ifname", "eth0"].map(OsString::from));
    assert_eq!(macveil(&by_name).address().to_string(), "22:05:0c:84:18:00");
}

#[test]
fn key_too_short_is_error() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_file(dir.path(), "secret_key", b"0123456789", 0o600);
    let run = macveil([
        OsString::from("gen"),
        "--stable".into(),
        "--ifname".into(),
        "eth0".into(),
        "--secret-key".into(),
        key.clone().into(),
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
    assert!(
        run.stderr.contains("only 10 bytes"),
        "stderr: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("left untouched"),
        "stderr: {}",
        run.stderr
    );
    assert_eq!(
        fs::read(&key).unwrap(),
        b"0123456789",
        "the key was changed"
    );
}

#[test]
fn key_readable_by_others_is_error() {
    let keys = key_dir();
    fs::set_permissions(&keys.key, fs::Permissions::from_mode(0o644)).unwrap();
    let mut args = key_args(&keys);
    args.extend(["--ifname", "eth0"].map(OsString::from));
    let run = macveil(&args);
    assert_eq!(run.code, 2);
    assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
    assert!(run.stderr.contains("mode 0644"), "stderr: {}", run.stderr);
    assert!(run.stderr.contains("chmod 600"), "stderr: {}", run.stderr);
    assert_eq!(
        fs::read(&keys.key).unwrap(),
        NETPLAN_KEY,
        "the key was changed"
    );
}

#[test]
fn key_unreadable_is_error() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file used as a directory fails with ENOTDIR, for root too.
    let file = write_file(dir.path(), "file", b"x", 0o600);
    let run = macveil([
        OsString::from("gen"),
        "--stable".into(),
        "--ifname".into(),
        "eth0".into(),
        "--secret-key".into(),
        file.join("secret_key").into(),
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("cannot read secret key file"),
        "stderr: {}",
        run.stderr
    );

    // Without read permission; root bypasses file modes, so this part needs another user.
    if running_as_root() {
        eprintln!(
            "note: running as root, so the mode-000 part of key_unreadable_is_error is skipped"
        );
        return;
    }
    let key = write_file(dir.path(), "secret_key", NETPLAN_KEY, 0o000);
    let run = macveil([
        OsString::from("gen"),
        "--stable".into(),
        "--ifname".into(),
        "eth0".into(),
        "--secret-key".into(),
        key.into(),
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("cannot read secret key file"),
        "stderr: {}",
        run.stderr
    );
}

/// Returns whether this process runs as root, read from /proc so that no unsafe call is needed.
fn running_as_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .and_then(|line| line.split_whitespace().nth(2))
        == Some("0")
}

#[test]
fn key_missing_is_error_with_hint() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("secret_key");
    let run = macveil([
        OsString::from("gen"),
        "--stable".into(),
        "--ifname".into(),
        "eth0".into(),
        "--secret-key".into(),
        key.clone().into(),
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("does not exist"),
        "stderr: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--create-secret-key"),
        "stderr: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--secret-key FILE"),
        "stderr: {}",
        run.stderr
    );
    assert!(
        !key.exists(),
        "gen created a key without --create-secret-key"
    );
}

#[test]
fn default_key_missing_is_not_created() {
    let default = Path::new(macveil::secret_key::MACVEIL_KEY_PATH);
    if default.exists() {
        eprintln!(
            "note: {} exists on this host; default_key_missing_is_not_created checks nothing",
            default.display()
        );
        return;
    }
    let run = macveil(["gen", "--stable", "--ifname", "eth0"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains(macveil::secret_key::MACVEIL_KEY_PATH),
        "stderr: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--create-secret-key"),
        "stderr: {}",
        run.stderr
    );
    assert!(!default.exists(), "gen created the default key");
}

#[test]
fn create_secret_key_creates_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("keys").join("secret_key");
    let args = [
        OsString::from("gen"),
        "--stable".into(),
        "--ifname".into(),
        "eth0".into(),
        "--secret-key".into(),
        key.clone().into(),
        "--create-secret-key".into(),
    ];

    let first = macveil(&args).address();
    let content = fs::read(&key).unwrap();
    assert_eq!(content.len(), 50);
    assert!(content.starts_with(b"nm-v2:"));
    let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let second = macveil(&args).address();
    assert_eq!(first, second);
    assert_eq!(fs::read(&key).unwrap(), content, "the key was replaced");

    // Without the option the key is read as it is.
    let third = macveil(&args[..6]).address();
    assert_eq!(first, third);
}

#[test]
fn count_repeats_unless_random() {
    let keys = key_dir();

    let mut fixed = key_args(&keys);
    fixed.extend(["--ifname", "eth0", "--count", "3"].map(OsString::from));
    let addresses = macveil(&fixed).addresses();
    assert_eq!(addresses.len(), 3);
    assert!(
        addresses.iter().all(|a| *a == addresses[0]),
        "{addresses:?}"
    );

    let mut random = key_args(&keys);
    random.extend(
        [
            "--ifname",
            "eth0",
            "--stable-id",
            "${RANDOM}",
            "--count",
            "5",
        ]
        .map(OsString::from),
    );
    let addresses = macveil(&random).addresses();
    let distinct: BTreeSet<_> = addresses.iter().collect();
    assert_eq!(distinct.len(), 5, "{addresses:?}");
    assert!(addresses.iter().all(|a| a.is_local() && !a.is_group()));
}

#[test]
fn json_output_lists_stable_addresses() {
    let keys = key_dir();
    let mut args = key_args(&keys);
    args.extend(
        [
            "--ifname",
            "wlan0",
            "--stable-id",
            "${NETWORK_SSID}",
            "--ssid",
            "fake net",
            "--count",
            "2",
            "--json",
        ]
        .map(OsString::from),
    );
    let run = macveil(&args);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);

    let value: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let items = value.as_array().expect("a JSON array");
    assert_eq!(items.len(), 2);
    for item in items {
        assert_eq!(item["address"], "5e:ba:fe:fd:89:03");
        assert_eq!(item["generator"], "stable");
    }
}

#[test]
fn invalid_inputs_exit_2() {
    let keys = key_dir();

    let mut no_ifname = key_args(&keys);
    no_ifname.truncate(6);
    let run = macveil(&no_ifname);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--ifname NAME"),
        "stderr: {}",
        run.stderr
    );

    let mut long_ssid = key_args(&keys);
    long_ssid.extend(["--ifname", "wlan0", "--ssid", &"x".repeat(33)].map(OsString::from));
    let run = macveil(&long_ssid);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("1 to 32 bytes"),
        "stderr: {}",
        run.stderr
    );

    let mut comma_mask = key_args(&keys);
    comma_mask.extend(
        [
            "--ifname",
            "eth0",
            "--mask",
            "FF:FF:FF:00:00:00,00:11:22:00:00:00",
        ]
        .map(OsString::from),
    );
    let run = macveil(&comma_mask);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("spaces"), "stderr: {}", run.stderr);
}

#[test]
fn help_hides_host_id_option() {
    let run = macveil(["gen", "--help"]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("--create-secret-key"), "{}", run.stdout);
    assert!(!run.stdout.contains("--host-id-hex"), "{}", run.stdout);
}
