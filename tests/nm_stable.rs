//! NetworkManager's `stable` cloned MAC addresses against `macveil gen --stable`.
//!
//! A real NetworkManager in a lab (see `support::nm_lab`) activates one profile per case on a
//! veth link. The address it applies must equal the address derived from NetworkManager's own
//! secret key, the lab's machine id, the boot id, the profile's UUID and the interface name:
//! - by a Python reference of NetworkManager's derivation, which checks the lab and its inputs;
//! - by `macveil gen --stable`, which is the compatibility this crate promises.
//!
//! One NetworkManager serves every case of a test: each case loads a new profile and activates it
//! on the same link, so NetworkManager derives the address again for each one.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use macveil::MacAddr;
use support::nm_lab::NmLab;
use support::nm_profile::NmProfile;

/// The link NetworkManager manages in the lab.
const IFNAME: &str = "mvstable0";

/// The veth peer that gives `IFNAME` its carrier.
const PEER: &str = "mvstable0p";

/// The address the veth link is created with. NetworkManager takes the masked bits of a mask
/// without OUI from it.
const INITIAL_ADDRESS: &str = "0a:1b:2c:3d:4e:5f";

/// One stable-address configuration of a profile.
struct Case {
    name: &'static str,
    /// `connection.stable-id`; `None` leaves it unset, which hashes the UUID alone.
    stable_id: Option<&'static str>,
    /// `ethernet.generate-mac-address-mask`.
    mask: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        name: "unset",
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
        name: "escaped-dollar",
        stable_id: Some("$${CONNECTION}-kept-verbatim"),
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
    Case {
        name: "mask-middle-bits",
        stable_id: Some("${DEVICE}"),
        mask: Some("00:00:00:FF:FF:00"),
    },
];

/// The address NetworkManager applied for one case, with the inputs that produced it.
struct Applied {
    case: &'static Case,
    uuid: String,
    address: MacAddr,
}

/// Inputs NetworkManager hashed that are the same for every case.
struct HostInputs {
    secret_key: std::path::PathBuf,
    machine_id: String,
    boot_id: String,
}

/// Starts a lab, activates every case on `IFNAME` and returns what NetworkManager applied.
fn apply_all_cases(test: &str) -> (NmLab, Vec<Applied>) {
    let lab = NmLab::start(&[]);
    let initial: MacAddr = INITIAL_ADDRESS.parse().expect("valid initial address");
    lab.add_veth(IFNAME, PEER, initial);
    lab.set_managed(IFNAME);
    assert_eq!(
        lab.link_address(IFNAME),
        initial,
        "the veth link must start with the address it was created with"
    );

    let activations = Instant::now();
    let mut applied = Vec::new();
    for case in CASES {
        let mut profile = NmProfile::ethernet(&format!("stable-{}", case.name), IFNAME).set(
            "ethernet",
            "cloned-mac-address",
            "stable",
        );
        if let Some(stable_id) = case.stable_id {
            profile = profile.set("connection", "stable-id", stable_id);
        }
        if let Some(mask) = case.mask {
            profile = profile.set("ethernet", "generate-mac-address-mask", mask);
        }

        lab.load_profile(&profile);
        lab.activate(profile.uuid());

        let address = lab.link_address(IFNAME);
        assert_eq!(
            lab.nm_address(IFNAME),
            address,
            "case {}: NetworkManager and the kernel disagree on the address of {IFNAME}",
            case.name
        );
        applied.push(Applied {
            case,
            uuid: profile.uuid().to_owned(),
            address,
        });
    }

    eprintln!(
        "{test}: NetworkManager lab started in {:?}; {} activations took {:?}",
        lab.startup_time(),
        CASES.len(),
        activations.elapsed()
    );
    (lab, applied)
}

/// Reads the inputs that every case shares, once NetworkManager has created its secret key.
fn host_inputs(lab: &NmLab) -> HostInputs {
    let secret_key = lab.secret_key_path();
    assert!(
        secret_key.is_file(),
        "NetworkManager did not create its secret key at {}",
        secret_key.display()
    );
    HostInputs {
        secret_key,
        machine_id: lab.machine_id().to_owned(),
        boot_id: support::boot_id(),
    }
}

/// Runs `command` and returns its trimmed standard output, or a description of its failure.
fn output_of(command: &mut Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|error| format!("failed to start {command:?}: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Lists the cases whose expected address differs from the applied one, one line each.
///
/// `expected` contains, for each item of `applied` in order, the printed address or why there is
/// none.
fn mismatches(applied: &[Applied], expected: Vec<Result<String, String>>) -> Vec<String> {
    assert_eq!(
        expected.len(),
        applied.len(),
        "one expected address per case: {expected:?}"
    );

    let mut lines = Vec::new();
    for (item, result) in applied.iter().zip(expected) {
        let result = result.and_then(|text| {
            text.parse::<MacAddr>()
                .map_err(|error| format!("printed {text:?}: {error}"))
        });
        match result {
            Ok(address) if address == item.address => {}
            Ok(address) => lines.push(format!(
                "{}: NetworkManager applied {}, expected {address}",
                item.case.name, item.address
            )),
            Err(error) => lines.push(format!(
                "{}: NetworkManager applied {}, and the expected address is unknown: {error}",
                item.case.name, item.address
            )),
        }
    }
    lines
}

/// Computes every case's address with the Python reference, started once for all cases.
fn reference_addresses(inputs: &HostInputs, applied: &[Applied]) -> Vec<Result<String, String>> {
    let cases: Vec<serde_json::Value> = applied
        .iter()
        .map(|item| {
            let mut case = serde_json::json!({
                "secret_key": inputs.secret_key,
                "machine_id": inputs.machine_id,
                "boot_id": inputs.boot_id,
                "connection": item.uuid,
                "ifname": IFNAME,
            });
            if let Some(stable_id) = item.case.stable_id {
                case["stable_id"] = stable_id.into();
            }
            if let Some(mask) = item.case.mask {
                case["mask"] = mask.into();
                case["current"] = INITIAL_ADDRESS.into();
            }
            case
        })
        .collect();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/nm_stable_reference.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .arg("--batch")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("failed to start python3 {}: {error}", script.display()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    serde_json::to_writer(&mut stdin, &cases).expect("failed to send the cases to python3");
    drop(stdin);

    let output = child
        .wait_with_output()
        .expect("failed to wait for python3");
    assert!(
        output.status.success(),
        "{} failed ({}): {}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| Ok(line.trim().to_owned()))
        .collect()
}

/// Computes one case's address with `macveil gen --stable`.
fn macveil_address(inputs: &HostInputs, item: &Applied) -> Result<String, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_macveil"));
    command
        .args(["gen", "--stable", "--secret-key"])
        .arg(&inputs.secret_key)
        .args(["--machine-id", &inputs.machine_id])
        .args(["--boot-id", &inputs.boot_id])
        .args(["--connection", &item.uuid])
        .args(["--ifname", IFNAME]);
    if let Some(stable_id) = item.case.stable_id {
        command.args(["--stable-id", stable_id]);
    }
    if let Some(mask) = item.case.mask {
        command.args(["--mask", mask, "--current", INITIAL_ADDRESS]);
    }
    output_of(&mut command)
}

#[test]
fn nm_lab_inputs_match_reference() {
    if !support::root_or_skip("nm_lab_inputs_match_reference") {
        return;
    }
    let (lab, applied) = apply_all_cases("nm_lab_inputs_match_reference");
    let inputs = host_inputs(&lab);

    let lines = mismatches(&applied, reference_addresses(&inputs, &applied));
    assert!(
        lines.is_empty(),
        "the Python reference of NetworkManager's derivation disagrees with NetworkManager, so \
         the lab does not pass the inputs the tests assume:\n{}",
        lines.join("\n")
    );
}

#[test]
fn nm_stable_matches_macveil_gen() {
    if !support::root_or_skip("nm_stable_matches_macveil_gen") {
        return;
    }
    let (lab, applied) = apply_all_cases("nm_stable_matches_macveil_gen");
    let inputs = host_inputs(&lab);

    let expected = applied
        .iter()
        .map(|item| macveil_address(&inputs, item))
        .collect();
    let lines = mismatches(&applied, expected);
    assert!(
        lines.is_empty(),
        "macveil gen --stable disagrees with NetworkManager {}:\n{}",
        nm_version(&lab),
        lines.join("\n")
    );
}

/// Returns NetworkManager's version, for failure messages.
fn nm_version(lab: &NmLab) -> String {
    lab.run("NetworkManager", &["--version"]).trim().to_owned()
}
