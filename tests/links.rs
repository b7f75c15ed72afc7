//! Root tests of the link layer on real kernel links (veth, tap, bridge, macvlan, ifb), each in
//! a network namespace of its own that the test creates and deletes.

mod common;

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use common::TestNetns;
use macveil::MacAddr;
use macveil::link::apply::{ApplyOptions, Change, LinkReport, Outcome, apply};
use macveil::link::state::{Baseline, ReferenceStore, Verdict};
use macveil::link::{AssignType, Link, LinkError, LinkHandle, LinkOps, Netns, ipv6};

fn mac(text: &str) -> MacAddr {
    text.parse().unwrap()
}

fn open(ns: &TestNetns) -> LinkHandle {
    LinkHandle::open(&Netns::from_arg(&ns.name).unwrap()).unwrap()
}

fn find(handle: &mut LinkHandle, name: &str) -> Link {
    handle
        .links()
        .unwrap()
        .into_iter()
        .find(|link| link.name == name)
        .unwrap_or_else(|| panic!("{name} exists"))
}

fn set_one(
    handle: &mut LinkHandle,
    store: &ReferenceStore,
    index: u32,
    address: MacAddr,
) -> LinkReport {
    let change = Change { index, address };
    let mut reports = apply(handle, store, &[change], &ApplyOptions::default()).unwrap();
    assert_eq!(reports.len(), 1);
    reports.remove(0)
}

#[test]
fn handle_reads_link_kinds_and_drivers() {
    let Some(ns) = TestNetns::create("handle_reads_link_kinds_and_drivers") else {
        return;
    };
    ns.ip(&[
        "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
    ]);
    ns.ip(&["tuntap", "add", "mode", "tap", "tap0"]);
    ns.ip(&["link", "add", "br0", "type", "bridge"]);
    ns.ip(&["link", "add", "mvl0", "link", "veth0", "type", "macvlan"]);
    ns.ip(&["link", "add", "ifb0", "type", "ifb"]);
    ns.ip(&["link", "set", "veth0", "up"]);

    let mut handle = open(&ns);
    let expected = [
        ("veth0", "veth", "veth"),
        ("tap0", "tap", "tun"),
        ("br0", "bridge", "bridge"),
        ("mvl0", "macvlan", "macvlan"),
        ("ifb0", "ifb", "ifb"),
        ("lo", "loopback", ""),
    ];
    for (name, kind, driver) in expected {
        let link = find(&mut handle, name);
        assert_eq!(link.kind(), kind, "{name}");
        if !driver.is_empty() {
            assert_eq!(link.driver.as_deref(), Some(driver), "{name}");
        }
        // No virtual link has a permanent address, and zero is never reported as one.
        assert_eq!(link.permanent, None, "{name}");
        // Read from a sysfs mounted inside the namespace.
        let expected_assign = if name == "lo" {
            AssignType::Permanent
        } else {
            AssignType::Random
        };
        assert_eq!(link.assign_type, expected_assign, "{name}");
        if name != "lo" {
            assert_eq!(
                link.address.map(|a| a.to_string()),
                Some(ns.address(name)),
                "{name}"
            );
        }
    }
    let lo = find(&mut handle, "lo");
    assert_eq!(lo.address, None, "loopback's zero address is shown as none");

    let veth0 = find(&mut handle, "veth0");
    assert!(veth0.admin_up);
    let mvl0 = find(&mut handle, "mvl0");
    assert_eq!(mvl0.parent, Some(veth0.index));
    assert!(!mvl0.admin_up);
}

#[test]
fn set_reads_back_and_keeps_admin_state() {
    let Some(ns) = TestNetns::create("set_reads_back_and_keeps_admin_state") else {
        return;
    };
    ns.ip(&[
        "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
    ]);
    ns.ip(&["tuntap", "add", "mode", "tap", "tap0"]);
    ns.ip(&["link", "add", "br0", "type", "bridge"]);
    ns.ip(&["link", "add", "mvl0", "link", "veth0", "type", "macvlan"]);
    ns.ip(&["link", "set", "veth0", "up"]);
    ns.ip(&["link", "set", "br0", "up"]);
    let state = tempfile::tempdir().unwrap();
    let store = ReferenceStore::new(state.path());
    let mut handle = open(&ns);

    let cases = [
        ("veth0", true, "02:00:5e:10:00:01"),
        ("tap0", false, "02:00:5e:10:00:02"),
        ("br0", true, "02:00:5e:10:00:03"),
        ("mvl0", false, "02:00:5e:10:00:04"),
    ];
    for (name, up, address) in cases {
        let before = find(&mut handle, name);
        assert_eq!(before.admin_up, up, "{name} set-up");
        let report = set_one(&mut handle, &store, before.index, mac(address));
        assert!(
            matches!(report.outcome, Outcome::Changed),
            "{name}: {report:?}"
        );
        assert_eq!(report.old, before.address, "{name}");
        assert_eq!(report.new, Some(mac(address)), "{name}");
        assert_eq!(ns.address(name), address, "{name}: the kernel disagrees");
        assert_eq!(ns.is_up(name), up, "{name}: admin state changed");
        assert_eq!(report.is_up, up, "{name}");
        assert_eq!(
            find(&mut handle, name).assign_type,
            AssignType::Set,
            "{name}"
        );

        // The reference is the address before the first change, and it stays that.
        let references = store.load().unwrap();
        let after = find(&mut handle, name);
        let baseline = Baseline::of(&after, handle.netns_key(), &references);
        assert_eq!(
            baseline,
            Baseline::Reference(before.address.unwrap()),
            "{name}"
        );
        assert_eq!(
            baseline.verdict(after.address),
            Verdict::Anonymized,
            "{name}"
        );

        // Restoring puts the reference back.
        let report = set_one(&mut handle, &store, before.index, before.address.unwrap());
        assert!(
            matches!(report.outcome, Outcome::Changed),
            "{name}: {report:?}"
        );
        assert_eq!(
            ns.address(name),
            before.address.unwrap().to_string(),
            "{name}"
        );
        assert_eq!(ns.is_up(name), up, "{name}: admin state changed by restore");
    }
}

#[test]
fn unchanged_address_sends_nothing() {
    let Some(ns) = TestNetns::create("unchanged_address_sends_nothing") else {
        return;
    };
    ns.ip(&[
        "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
    ]);
    let state = tempfile::tempdir().unwrap();
    let store = ReferenceStore::new(state.path());
    let mut handle = open(&ns);
    let link = find(&mut handle, "veth0");
    let report = set_one(&mut handle, &store, link.index, link.address.unwrap());
    assert!(matches!(report.outcome, Outcome::Unchanged), "{report:?}");
}

#[test]
fn ifb_rejects_change_with_eopnotsupp() {
    let Some(ns) = TestNetns::create("ifb_rejects_change_with_eopnotsupp") else {
        return;
    };
    ns.ip(&["link", "add", "ifb0", "type", "ifb"]);
    let state = tempfile::tempdir().unwrap();
    let store = ReferenceStore::new(state.path());
    let mut handle = open(&ns);
    let before = find(&mut handle, "ifb0");
    let report = set_one(&mut handle, &store, before.index, mac("02:00:5e:10:00:09"));

    let Outcome::Failed(error) = &report.outcome else {
        panic!("ifb accepted the change: {report:?}");
    };
    assert!(matches!(error, LinkError::NotSupported { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("driver ifb cannot change its address"),
        "{error}"
    );
    assert_eq!(ns.address("ifb0"), before.address.unwrap().to_string());
}

#[test]
fn macvlan_conflict_gives_eaddrinuse() {
    let Some(ns) = TestNetns::create("macvlan_conflict_gives_eaddrinuse") else {
        return;
    };
    ns.ip(&[
        "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
    ]);
    ns.ip(&["link", "add", "mvl0", "link", "veth0", "type", "macvlan"]);
    ns.ip(&["link", "add", "mvl1", "link", "veth0", "type", "macvlan"]);
    for name in ["veth0", "mvl0", "mvl1"] {
        ns.ip(&["link", "set", name, "up"]);
    }
    let state = tempfile::tempdir().unwrap();
    let store = ReferenceStore::new(state.path());
    let mut handle = open(&ns);
    let taken = find(&mut handle, "mvl0").address.unwrap();
    let target = find(&mut handle, "mvl1");
    let report = set_one(&mut handle, &store, target.index, taken);

    let Outcome::Failed(error) = &report.outcome else {
        panic!("two macvlans share an address: {report:?}");
    };
    assert!(matches!(error, LinkError::AddressInUse { .. }), "{error}");
    assert!(
        error.to_string().contains("cannot share an address"),
        "{error}"
    );
    assert_eq!(ns.address("mvl1"), target.address.unwrap().to_string());
    assert!(ns.is_up("mvl1"));
}

#[test]
fn many_links_change_in_one_call() {
    let Some(ns) = TestNetns::create("many_links_change_in_one_call") else {
        return;
    };
    const PAIRS: usize = 150;
    let mut batch = String::new();
    for i in 0..PAIRS {
        batch.push_str(&format!("link add m{i}a type veth peer name m{i}b\n"));
    }
    let batch_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(batch_file.path(), batch).unwrap();
    ns.ip(&["-batch", batch_file.path().to_str().unwrap()]);

    let state = tempfile::tempdir().unwrap();
    let store = ReferenceStore::new(state.path());
    let mut handle = open(&ns);
    let links = handle.links().unwrap();
    let changes: Vec<Change> = links
        .iter()
        .filter(|link| link.name.starts_with('m'))
        .enumerate()
        .map(|(i, link)| Change {
            index: link.index,
            address: MacAddr([0x02, 0x5e, 0x00, 0x20, (i >> 8) as u8, i as u8]),
        })
        .collect();
    assert_eq!(changes.len(), PAIRS * 2);

    let reports = apply(&mut handle, &store, &changes, &ApplyOptions::default()).unwrap();
    assert_eq!(reports.len(), changes.len());
    for (change, report) in changes.iter().zip(&reports) {
        assert!(matches!(report.outcome, Outcome::Changed), "{report:?}");
        assert_eq!(report.new, Some(change.address));
    }
    let after = handle.links().unwrap();
    for change in &changes {
        let link = after
            .iter()
            .find(|link| link.index == change.index)
            .unwrap();
        assert_eq!(link.address, Some(change.address), "{}", link.name);
    }
    // Every changed link has a recorded reference.
    let references = store.load().unwrap();
    for link in links.iter().filter(|link| link.name.starts_with('m')) {
        assert_eq!(
            references.get(handle.netns_key(), link),
            link.address,
            "{}",
            link.name
        );
    }
}

#[test]
fn live_change_removes_eui64_ipv6_addresses() {
    let Some(ns) = TestNetns::create("live_change_removes_eui64_ipv6_addresses") else {
        return;
    };
    ns.ip(&[
        "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
    ]);
    ns.ip(&["link", "set", "veth0", "up"]);
    ns.ip(&["link", "set", "veth1", "up"]);
    let state = tempfile::tempdir().unwrap();
    let store = ReferenceStore::new(state.path());
    let mut handle = open(&ns);
    let before = find(&mut handle, "veth0");
    let old = before.address.unwrap();
    let old_link_local = ipv6::link_local(old);

    // A SLAAC-style global address derived from the old hardware address, as a router
    // advertisement would have made it.
    let mut global = [0u8; 16];
    global[..8].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0]);
    global[8..].copy_from_slice(&ipv6::interface_id(old));
    let global = Ipv6Addr::from(global);
    ns.ip(&[
        "address",
        "add",
        &format!("{global}/64"),
        "dev",
        "veth0",
        "nodad",
    ]);
    ns.ip(&["address", "add", "2001:db8::1/64", "dev", "veth0", "nodad"]);

    // The kernel adds the link-local address once the carrier is up.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ns
        .ipv6_addresses("veth0")
        .contains(&old_link_local.to_string())
    {
        assert!(Instant::now() < deadline, "no link-local address appeared");
        std::thread::sleep(Duration::from_millis(50));
    }

    let new = mac("02:00:5e:10:00:42");
    let report = set_one(&mut handle, &store, before.index, new);
    assert!(matches!(report.outcome, Outcome::Changed), "{report:?}");
    assert!(!report.cycled);
    assert!(report.removed_ipv6.contains(&old_link_local), "{report:?}");
    assert!(report.removed_ipv6.contains(&global), "{report:?}");
    assert_eq!(report.added_ipv6, vec![ipv6::link_local(new)]);

    let remaining = ns.ipv6_addresses("veth0");
    for text in &remaining {
        let ip: Ipv6Addr = text.parse().unwrap();
        assert!(
            !ipv6::is_derived_from(&ip, old),
            "{ip} still derives from the old address"
        );
    }
    assert!(
        remaining.contains(&ipv6::link_local(new).to_string()),
        "{remaining:?}"
    );
    assert!(
        remaining.contains(&String::from("2001:db8::1")),
        "{remaining:?}"
    );
    assert!(ns.is_up("veth0"));

    // The kernel's own view agrees: no address of the link derives from the old address.
    let ips = handle.ip_addresses().unwrap();
    assert!(
        ips.iter()
            .filter(|ip| ip.index == before.index)
            .all(|ip| match ip.address {
                IpAddr::V6(v6) => !ipv6::is_derived_from(&v6, old),
                IpAddr::V4(_) => true,
            })
    );
}

#[test]
fn link_layer_leaves_callers_namespace_alone() {
    let Some(ns) = TestNetns::create("link_layer_leaves_callers_namespace_alone") else {
        return;
    };
    let own = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let mut handle = open(&ns);
    let names: Vec<String> = handle
        .links()
        .unwrap()
        .into_iter()
        .map(|link| link.name)
        .collect();
    assert_eq!(names, ["lo"], "a fresh namespace has only lo");
    assert_eq!(std::fs::read_link("/proc/thread-self/ns/net").unwrap(), own);
}

#[test]
fn duplicate_change_is_rejected() {
    let Some(ns) = TestNetns::create("duplicate_change_is_rejected") else {
        return;
    };
    ns.ip(&[
        "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
    ]);
    let state = tempfile::tempdir().unwrap();
    let store = ReferenceStore::new(state.path());
    let mut handle = open(&ns);
    let link = find(&mut handle, "veth0");
    let changes = [
        Change {
            index: link.index,
            address: mac("02:00:5e:10:00:01"),
        },
        Change {
            index: link.index,
            address: mac("02:00:5e:10:00:02"),
        },
    ];
    let err = apply(&mut handle, &store, &changes, &ApplyOptions::default()).unwrap_err();
    assert!(matches!(err, LinkError::DuplicateChange { .. }), "{err}");
    assert_eq!(ns.address("veth0"), link.address.unwrap().to_string());
}
