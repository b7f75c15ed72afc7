//! Engine tests on a real namespace, through the library. They cover what the command-line
//! tests cannot reach without waiting minutes or without a driver this kernel lacks (the fault
//! seam of [`crate::link::fault`]), and the passes the event loop runs after overruns and timers.

use std::fs;
use std::time::{Duration, Instant};

use super::drive::DrivenLinks;
use super::engine::{Engine, Settings, Summary};
use super::nm::DeviceStates;
use super::state::{LinkStatus, RecordStore, Writer};
use super::target::Keys;
use super::udev::{RULE_NAME, UdevView};
use crate::addr::MacAddr;
use crate::config::{Config, SourceText};
use crate::link::fault::{Fault, FaultyLinks};
use crate::link::testns::TestNetns;
use crate::link::{
    Errno, IpAddress, Link, LinkError, LinkEvent, LinkHandle, LinkOps, Request, Route,
};
use crate::rng::OsRandom;

const RANDOM: &str = "[connection-test]\nmatch-device=interface-name:tv*\n\
                      ethernet.cloned-mac-address=random\n";

struct Lab {
    ns: TestNetns,
    handle: LinkHandle,
    state: tempfile::TempDir,
}

impl Lab {
    fn new(test: &str) -> Option<Lab> {
        let ns = TestNetns::create(test)?;
        let handle = LinkHandle::open(&ns.netns()).unwrap();
        Some(Lab {
            ns,
            handle,
            state: tempfile::tempdir().unwrap(),
        })
    }

    fn engine(&self, config: &str, nm_devices: Option<DeviceStates>) -> Engine {
        self.engine_with_udev(config, nm_devices, None)
    }

    fn engine_with_udev(
        &self,
        config: &str,
        nm_devices: Option<DeviceStates>,
        udev: Option<UdevView>,
    ) -> Engine {
        let config = Config::from_sources(&[SourceText::new("test.conf", config)]).unwrap();
        let settings = Settings {
            state_dir: self.state.path().to_path_buf(),
            now: false,
            reveal: false,
            first_start: false,
            never_cycle: false,
            sysfs_net: None,
            nm_devices,
            udev,
            writer: Writer::Daemon,
        };
        Engine::new(
            &self.handle,
            settings,
            config,
            Keys::new(self.state.path().join("no-key")),
            Ok(String::from("6f1f4b0e-9c55-4f0b-8d3e-2f1f9b0c5a11")),
            Box::new(OsRandom),
        )
    }

    fn link(&mut self, name: &str) -> Link {
        self.handle
            .links()
            .unwrap()
            .into_iter()
            .find(|link| link.name == name)
            .unwrap_or_else(|| panic!("{name} exists"))
    }

    fn status(&self, name: &str) -> Option<LinkStatus> {
        RecordStore::new(self.state.path())
            .load()
            .unwrap()
            .into_iter()
            .find(|record| record.ifname == name)
            .map(|record| record.status)
    }

    fn veth(&self, name: &str) {
        let peer = format!("p{name}");
        self.ns
            .ip(&["link", "add", name, "type", "veth", "peer", "name", &peer]);
    }
}

#[test]
fn resync_finds_links_changed_without_notification() {
    let Some(mut lab) = Lab::new("resync_finds_links_changed_without_notification") else {
        return;
    };
    lab.veth("tv0");
    let mut engine = lab.engine(RANDOM, None);
    engine.start(&mut lab.handle).unwrap();
    assert_eq!(lab.status("tv0"), Some(LinkStatus::Set));

    // Notifications lost: one link is removed and one appears, and the engine hears of
    // neither until it reads every link again.
    lab.ns.ip(&["link", "del", "tv0"]);
    lab.veth("tv1");
    let original = lab.link("tv1").address;
    let summary = engine.resync(&mut lab.handle).unwrap();

    assert_eq!(summary.changed, 1, "{summary:?}");
    assert_ne!(lab.link("tv1").address, original);
    assert_eq!(lab.status("tv1"), Some(LinkStatus::Set));
    assert_eq!(lab.status("tv0"), None, "the removed link's record is gone");
}

#[test]
fn acknowledged_but_ignored_change_keeps_link_down() {
    let Some(mut lab) = Lab::new("acknowledged_but_ignored_change_keeps_link_down") else {
        return;
    };
    lab.veth("tv0");
    lab.ns.ip(&["link", "set", "tv0", "up"]);
    let before = lab.link("tv0");
    let mut engine = lab.engine(RANDOM, None);

    // A driver that acknowledges a new address and keeps its own, as some USB Wi-Fi drivers
    // do. The link is up with its hardware address when it appears.
    let mut faulty = FaultyLinks::new(&mut lab.handle);
    faulty.inject(before.index, Fault::IgnoreAddress);
    let event = LinkEvent::New(before.clone());
    let summary = engine.handle(&mut faulty, vec![event]).unwrap();

    assert_eq!(summary.held_down, 1, "{summary:?}");
    let after = lab.link("tv0");
    assert!(
        !after.admin_up,
        "the link was left up with its hardware address"
    );
    assert_eq!(after.address, before.address);
    assert_eq!(lab.status("tv0"), Some(LinkStatus::HeldDown));
}

/// Returns a fault hook that sets `address` on `name` with `ip`, as another program would.
fn set_by_other_program(netns: &str, name: &str, address: MacAddr) -> Fault {
    let (netns, name) = (netns.to_string(), name.to_string());
    Fault::AfterSet(Box::new(move || {
        let status = std::process::Command::new("ip")
            .args(["-n", &netns, "link", "set", &name, "address"])
            .arg(address.to_string())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "ip link set {name} address {address} failed"
        );
    }))
}

#[test]
fn concurrent_change_keeps_link_up() {
    let Some(mut lab) = Lab::new("concurrent_change_keeps_link_up") else {
        return;
    };
    lab.veth("tv0");
    let before = lab.link("tv0");
    let mut engine = lab.engine(RANDOM, None);

    // The udev helper sets its own random address right after the engine's change, and a
    // manager raises the link in between. The engine must not call that a driver fault.
    let helper: MacAddr = "02:5e:00:00:00:07".parse().unwrap();
    let netns = lab.ns.name.clone();
    let mut faulty = FaultyLinks::new(&mut lab.handle);
    faulty.inject(before.index, set_by_other_program(&netns, "tv0", helper));
    let summary = engine
        .handle(&mut faulty, vec![LinkEvent::New(before.clone())])
        .unwrap();
    drop(faulty);

    assert_eq!(summary.held_down, 0, "{summary:?}");
    assert_eq!(summary.failed, 0, "{summary:?}");
    assert_eq!(lab.link("tv0").address, Some(helper));
    assert_eq!(lab.status("tv0"), Some(LinkStatus::Kept));

    lab.ns.ip(&["link", "set", "tv0", "up"]);
    let up = LinkEvent::New(lab.link("tv0"));
    let raised = engine.handle(&mut lab.handle, vec![up]).unwrap();
    assert_eq!(raised.held_down, 0, "{raised:?}");
    let after = lab.link("tv0");
    assert!(after.admin_up, "the anonymized link was taken down");
    assert_eq!(after.address, Some(helper));
}

#[test]
fn concurrent_write_back_is_undone() {
    let Some(mut lab) = Lab::new("concurrent_write_back_is_undone") else {
        return;
    };
    lab.veth("tv0");
    let original = lab.link("tv0").address.unwrap();
    let mut engine = lab.engine(RANDOM, None);
    engine.start(&mut lab.handle).unwrap();
    lab.ns.ip(&["link", "set", "tv0", "up"]);
    let up = LinkEvent::New(lab.link("tv0"));
    engine.handle(&mut lab.handle, vec![up]).unwrap();

    // Going down rotates the random address, and another program writes the original address
    // back right after that change: a third address, and the one the link must hide.
    lab.ns.ip(&["link", "set", "tv0", "down"]);
    let down = lab.link("tv0");
    let netns = lab.ns.name.clone();
    let mut faulty = FaultyLinks::new(&mut lab.handle);
    faulty.inject(down.index, set_by_other_program(&netns, "tv0", original));
    let summary = engine
        .handle(&mut faulty, vec![LinkEvent::New(down)])
        .unwrap();
    drop(faulty);

    assert_eq!(summary.changed, 1, "{summary:?}");
    assert_eq!(summary.held_down, 0, "{summary:?}");
    let after = lab.link("tv0").address.unwrap();
    assert_ne!(after, original, "the written-back address was kept");
    assert_eq!(lab.status("tv0"), Some(LinkStatus::Set));
}

#[test]
fn new_down_link_left_to_udev_rule() {
    let Some(mut lab) = Lab::new("new_down_link_left_to_udev_rule") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let run_udev = root.path().join("run/udev");
    fs::create_dir_all(run_udev.join("rules.d")).unwrap();
    fs::create_dir_all(run_udev.join("data")).unwrap();
    fs::write(run_udev.join("control"), "").unwrap();
    fs::write(run_udev.join("rules.d").join(RULE_NAME), "# the rule\n").unwrap();
    let udev = UdevView::new(root.path());
    let mut engine = lab.engine_with_udev(RANDOM, None, Some(udev));

    // udev has not finished with the new link, so its rule sets the address.
    lab.veth("tv0");
    let appeared = lab.link("tv0");
    let summary = engine
        .handle(&mut lab.handle, vec![LinkEvent::New(appeared.clone())])
        .unwrap();
    assert_eq!(summary.changed, 0, "{summary:?}");
    assert_eq!(lab.link("tv0").address, appeared.address);
    assert_eq!(
        lab.status("tv0"),
        None,
        "the rule's helper writes the record"
    );

    // Raised with the address it must hide before the rule ran: taken down and changed.
    lab.ns.ip(&["link", "set", "tv0", "up"]);
    let raised = LinkEvent::New(lab.link("tv0"));
    let summary = engine.handle(&mut lab.handle, vec![raised]).unwrap();
    assert_eq!(summary.changed, 1, "{summary:?}");
    let after = lab.link("tv0");
    assert_ne!(after.address, appeared.address);
    assert!(after.admin_up);

    // A link udev has finished with is the daemon's again.
    lab.veth("tv1");
    let initialized = lab.link("tv1");
    fs::write(run_udev.join(format!("data/n{}", initialized.index)), "").unwrap();
    let summary = engine
        .handle(&mut lab.handle, vec![LinkEvent::New(initialized.clone())])
        .unwrap();
    assert_eq!(summary.changed, 1, "{summary:?}");
    assert_ne!(lab.link("tv1").address, initialized.address);
}

/// A [`LinkOps`] that lists the calls it passes on, in order.
struct CallLog<'a> {
    inner: &'a mut dyn LinkOps,
    calls: Vec<String>,
}

impl LinkOps for CallLog<'_> {
    fn netns_key(&self) -> &str {
        self.inner.netns_key()
    }

    fn links(&mut self) -> Result<Vec<Link>, LinkError> {
        self.calls.push(String::from("links"));
        self.inner.links()
    }

    fn link(&mut self, index: u32) -> Result<Option<Link>, LinkError> {
        self.calls.push(String::from("link"));
        self.inner.link(index)
    }

    fn execute(&mut self, requests: &[Request]) -> Result<Vec<Result<(), Errno>>, LinkError> {
        for request in requests {
            let name = match request {
                Request::SetAddress { .. } => "set-address",
                _ => "other-request",
            };
            self.calls.push(name.to_string());
        }
        self.inner.execute(requests)
    }

    fn ip_addresses(&mut self) -> Result<Vec<IpAddress>, LinkError> {
        self.calls.push(String::from("ip-addresses"));
        self.inner.ip_addresses()
    }

    fn routes(&mut self) -> Result<Vec<Route>, LinkError> {
        self.calls.push(String::from("routes"));
        self.inner.routes()
    }
}

/// Returns `link` as its notification carries it: rtnetlink's facts only, no driver.
fn as_notified(mut link: Link) -> Link {
    link.driver = None;
    link
}

#[test]
fn new_link_changed_before_any_read() {
    let Some(mut lab) = Lab::new("new_link_changed_before_any_read") else {
        return;
    };
    let mut engine = lab.engine(RANDOM, None);

    // The first link of a kind is read in full before its change.
    lab.veth("tv0");
    let first = as_notified(lab.link("tv0"));
    let mut log = CallLog {
        inner: &mut lab.handle,
        calls: Vec::new(),
    };
    engine
        .handle(&mut log, vec![LinkEvent::New(first)])
        .unwrap();
    assert_eq!(
        log.calls.first().map(String::as_str),
        Some("link"),
        "{:?}",
        log.calls
    );
    assert_eq!(lab.status("tv0"), Some(LinkStatus::Set));

    // A later link of the same kind is changed from its notification alone, and read after.
    lab.veth("tv1");
    let second = as_notified(lab.link("tv1"));
    let mut log = CallLog {
        inner: &mut lab.handle,
        calls: Vec::new(),
    };
    let summary = engine
        .handle(&mut log, vec![LinkEvent::New(second.clone())])
        .unwrap();
    assert_eq!(
        log.calls.first().map(String::as_str),
        Some("set-address"),
        "{:?}",
        log.calls
    );
    assert!(
        log.calls.iter().any(|call| call == "link"),
        "{:?}",
        log.calls
    );
    assert_eq!(summary.changed, 1, "{summary:?}");
    assert_ne!(lab.link("tv1").address, second.address);
    assert_eq!(lab.status("tv1"), Some(LinkStatus::Set));

    // Its reference was recorded before the change, so writing the original back is undone.
    let original = second.address.unwrap();
    lab.ns
        .ip(&["link", "set", "tv1", "address", &original.to_string()]);
    let written_back = LinkEvent::New(lab.link("tv1"));
    let undone = engine.handle(&mut lab.handle, vec![written_back]).unwrap();
    assert_eq!(undone.changed, 1, "{undone:?}");
    assert_ne!(lab.link("tv1").address, Some(original));
}

#[test]
fn permanent_address_is_the_one_hidden() {
    let Some(mut lab) = Lab::new("permanent_address_is_the_one_hidden") else {
        return;
    };
    lab.veth("tv0");
    let link = lab.link("tv0");
    let current = link.address.unwrap();
    let mut engine = lab.engine(RANDOM, None);

    // A card whose permanent address differs from its current one is not exposed, so the
    // engine keeps its address. Once the permanent address is written back, it is undone.
    let elsewhere: MacAddr = "3c:22:fb:01:02:03".parse().unwrap();
    let mut faulty = FaultyLinks::new(&mut lab.handle);
    faulty.inject(link.index, Fault::Permanent(elsewhere));
    let kept = engine
        .handle(&mut faulty, vec![LinkEvent::New(link.clone())])
        .unwrap();
    assert_eq!(kept.changed, 0, "{kept:?}");
    drop(faulty);
    assert_eq!(lab.link("tv0").address, Some(current));

    lab.ns
        .ip(&["link", "set", "tv0", "address", &elsewhere.to_string()]);
    let written_back = lab.link("tv0");
    let mut faulty = FaultyLinks::new(&mut lab.handle);
    faulty.inject(link.index, Fault::Permanent(elsewhere));
    let undone = engine
        .handle(&mut faulty, vec![LinkEvent::New(written_back)])
        .unwrap();
    assert_eq!(undone.changed, 1, "{undone:?}");
    drop(faulty);
    let after = lab.link("tv0").address.unwrap();
    assert_ne!(after, elsewhere);
    assert!(after.is_local());
}

#[test]
fn random_rotate_gives_a_new_address_when_due() {
    let Some(mut lab) = Lab::new("random_rotate_gives_a_new_address_when_due") else {
        return;
    };
    lab.veth("tv0");
    lab.ns.ip(&["link", "set", "tv0", "up"]);
    let config = "[connection-test]\nmatch-device=interface-name:tv*\n\
                  ethernet.cloned-mac-address=random\n\
                  [device-test]\nmatch-device=interface-name:tv*\nmacveil.random-rotate=60\n";
    let mut engine = lab.engine(config, None);
    engine.start(&mut lab.handle).unwrap();
    let first = lab.link("tv0").address;
    let deadline = engine.next_deadline().expect("a rotation is scheduled");
    let wait = deadline.saturating_duration_since(Instant::now());
    assert!(
        wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );

    // Nothing is due yet.
    let early = engine.rotate_due(&mut lab.handle, Instant::now()).unwrap();
    assert_eq!(early, Summary::default());

    let rotated = engine
        .rotate_due(&mut lab.handle, deadline + Duration::from_millis(1))
        .unwrap();
    assert_eq!(rotated.changed, 1, "{rotated:?}");
    let after = lab.link("tv0");
    assert_ne!(after.address, first);
    assert!(after.admin_up, "the rotated link is back up");
    assert!(engine.next_deadline().unwrap() > deadline);
}

#[test]
fn network_manager_links_are_not_rotated() {
    let Some(mut lab) = Lab::new("network_manager_links_are_not_rotated") else {
        return;
    };
    lab.veth("tv0");
    lab.veth("tv1");
    let devices = tempfile::tempdir().unwrap();
    let managed = lab.link("tv0").index;
    fs::write(
        devices.path().join(managed.to_string()),
        "[device]\nmanaged=true\n",
    )
    .unwrap();
    let mut engine = lab.engine(RANDOM, Some(DeviceStates::new(devices.path())));
    engine.start(&mut lab.handle).unwrap();

    // Both get an address when they appear, because the hardware address is always undone.
    let tv0 = lab.link("tv0");
    let tv1 = lab.link("tv1");
    assert_eq!(lab.status("tv0"), Some(LinkStatus::Set));
    assert_eq!(lab.status("tv1"), Some(LinkStatus::Set));

    // Going down rotates only the link NetworkManager does not manage.
    for name in ["tv0", "tv1"] {
        lab.ns.ip(&["link", "set", name, "up"]);
    }
    let up = vec![
        LinkEvent::New(lab.link("tv0")),
        LinkEvent::New(lab.link("tv1")),
    ];
    engine.handle(&mut lab.handle, up).unwrap();
    for name in ["tv0", "tv1"] {
        lab.ns.ip(&["link", "set", name, "down"]);
    }
    let down = vec![
        LinkEvent::New(lab.link("tv0")),
        LinkEvent::New(lab.link("tv1")),
    ];
    engine.handle(&mut lab.handle, down).unwrap();
    assert_eq!(lab.link("tv0").address, tv0.address);
    assert_ne!(lab.link("tv1").address, tv1.address);
}

#[test]
fn renamed_link_keeps_its_reference() {
    let Some(mut lab) = Lab::new("renamed_link_keeps_its_reference") else {
        return;
    };
    lab.veth("tv0");
    let original = lab.link("tv0").address.unwrap();
    let mut engine = lab.engine(RANDOM, None);
    engine.start(&mut lab.handle).unwrap();
    let anonymized = lab.link("tv0").address.unwrap();
    assert_ne!(anonymized, original);

    lab.ns.ip(&["link", "set", "tv0", "name", "tv9"]);
    let renamed = LinkEvent::New(lab.link("tv9"));
    engine.handle(&mut lab.handle, vec![renamed]).unwrap();
    // Writing the original address back under the new name is still undone.
    lab.ns
        .ip(&["link", "set", "tv9", "address", &original.to_string()]);
    let written_back = LinkEvent::New(lab.link("tv9"));
    let summary = engine.handle(&mut lab.handle, vec![written_back]).unwrap();
    assert_eq!(summary.changed, 1, "{summary:?}");
    assert_ne!(lab.link("tv9").address, Some(original));
    assert_eq!(lab.status("tv9"), Some(LinkStatus::Set));
    assert_eq!(lab.status("tv0"), None);
}

#[test]
fn driven_links_not_rotated_but_undone() {
    let Some(mut lab) = Lab::new("driven_links_not_rotated_but_undone") else {
        return;
    };
    lab.veth("tv0");
    lab.veth("tv1");
    let hardware = lab.link("tv0").address.unwrap();
    let driven = DrivenLinks::default();
    let mut engine = lab.engine(RANDOM, None);
    engine.set_driven_links(driven.clone());
    engine.start(&mut lab.handle).unwrap();
    let tv0 = lab.link("tv0");
    let tv1 = lab.link("tv1");
    driven.insert(tv0.index);

    // A driver takes its link down to set the address of the network it chose. The engine
    // leaves that address alone and rotates only the link that no driver drives.
    for name in ["tv0", "tv1"] {
        lab.ns.ip(&["link", "set", name, "up"]);
    }
    let up = vec![
        LinkEvent::New(lab.link("tv0")),
        LinkEvent::New(lab.link("tv1")),
    ];
    engine.handle(&mut lab.handle, up).unwrap();
    for name in ["tv0", "tv1"] {
        lab.ns.ip(&["link", "set", name, "down"]);
    }
    let down = vec![
        LinkEvent::New(lab.link("tv0")),
        LinkEvent::New(lab.link("tv1")),
    ];
    engine.handle(&mut lab.handle, down).unwrap();
    assert_eq!(lab.link("tv0").address, tv0.address);
    assert_ne!(lab.link("tv1").address, tv1.address);

    // A driven link that shows the address it must hide is still changed.
    lab.ns
        .ip(&["link", "set", "tv0", "address", &hardware.to_string()]);
    let event = vec![LinkEvent::New(lab.link("tv0"))];
    engine.handle(&mut lab.handle, event).unwrap();
    let after = lab.link("tv0").address;
    assert!(after.is_some());
    assert_ne!(after, Some(hardware));
}
