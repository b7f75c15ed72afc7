//! The NetworkManager lab that the NetworkManager tests stand on.
//!
//! It must apply the configuration it is given, keep every file NetworkManager writes in the lab's
//! own folders, create its links outside the test's network namespace, and leave no process or
//! namespace behind once dropped.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use macveil::MacAddr;
use support::nm_lab::NmLab;
use support::nm_profile::NmProfile;

const IFNAME: &str = "mvlab0";
const PEER: &str = "mvlab0p";
const INITIAL_ADDRESS: &str = "0a:1b:2c:3d:4e:60";

/// Returns the namespace of `kind` ("net", "mnt") that process `pid` is in, as the target of its
/// `/proc` link.
fn namespace_of(pid: &str, kind: &str) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()
}

/// Lists the PIDs of all processes in the namespace `target` of `kind`.
fn processes_in(kind: &str, target: &Path) -> Vec<String> {
    let entries = fs::read_dir("/proc").expect("failed to list /proc");
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|byte| byte.is_ascii_digit()) {
            continue;
        }
        // A process may exit while /proc is being read; it then belongs to no namespace.
        if namespace_of(&name, kind).as_deref() == Some(target) {
            pids.push(name);
        }
    }
    pids
}

#[test]
fn nm_lab_isolates_host_and_cleans_up() {
    if !support::root_or_skip("nm_lab_isolates_host_and_cleans_up") {
        return;
    }
    let host_key_path = Path::new("/var/lib/NetworkManager/secret_key");
    let host_key_before = fs::read(host_key_path).ok();
    let host_profile = Path::new("/etc/NetworkManager/system-connections/lab-check.nmconnection");
    assert!(
        !host_profile.exists(),
        "{} exists before the test, so the test cannot tell whether the lab wrote it",
        host_profile.display()
    );

    // A global default from conf.d rather than a profile setting, to show that the lab's
    // configuration folder is the one NetworkManager reads.
    let lab = NmLab::start(&[(
        "90-lab-check.conf",
        "[connection]\nethernet.cloned-mac-address=stable\n",
    )]);
    let initial: MacAddr = INITIAL_ADDRESS.parse().expect("valid initial address");
    lab.add_veth(IFNAME, PEER, initial);
    lab.set_managed(IFNAME);

    let profile = NmProfile::ethernet("lab-check", IFNAME);
    lab.load_profile(&profile);
    lab.activate(profile.uuid());

    let applied = lab.link_address(IFNAME);
    assert_ne!(
        applied, initial,
        "NetworkManager kept the initial address, so it did not read the lab's conf.d default"
    );
    assert!(
        applied.is_local() && !applied.is_group(),
        "a stable address is unicast and locally administered, got {applied}"
    );

    assert!(
        lab.secret_key_path().is_file(),
        "NetworkManager did not write its secret key into the lab's /var/lib/NetworkManager"
    );
    assert!(
        lab.etc_dir()
            .join("system-connections/lab-check.nmconnection")
            .is_file(),
        "the profile is missing from the lab's system-connections folder"
    );
    assert!(
        !host_profile.exists(),
        "the lab's profile appeared in the host's {}",
        host_profile.display()
    );
    assert_eq!(
        fs::read(host_key_path).ok(),
        host_key_before,
        "the host's {} changed while the lab ran",
        host_key_path.display()
    );
    assert!(
        !Path::new("/sys/class/net").join(IFNAME).exists(),
        "the lab's link {IFNAME} appeared in the test's network namespace"
    );

    let holder = lab.holder_pid().to_string();
    let lab_net = namespace_of(&holder, "net").expect("the holder's network namespace");
    let lab_mnt = namespace_of(&holder, "mnt").expect("the holder's mount namespace");
    assert_ne!(
        Some(&lab_net),
        namespace_of("self", "net").as_ref(),
        "the lab shares the test's network namespace"
    );
    assert_ne!(
        Some(&lab_mnt),
        namespace_of("self", "mnt").as_ref(),
        "the lab shares the test's mount namespace"
    );
    drop(lab);

    let left_in_net = processes_in("net", &lab_net);
    assert!(
        left_in_net.is_empty(),
        "processes {left_in_net:?} still run in the lab's network namespace"
    );
    let left_in_mnt = processes_in("mnt", &lab_mnt);
    assert!(
        left_in_mnt.is_empty(),
        "processes {left_in_mnt:?} still run in the lab's mount namespace"
    );
    assert_eq!(
        fs::read(host_key_path).ok(),
        host_key_before,
        "the host's {} changed after the lab stopped",
        host_key_path.display()
    );
}
