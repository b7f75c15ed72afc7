//! Tests of the connection drivers against a scripted wpa_supplicant control socket and a fake
//! radio that share one state.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::session::*;
use super::*;
use crate::link::{AssignType, OperState};
use crate::rng::OsRandom;
use crate::secret_key::SecretKey;
use crate::wifi::address::{AddressInputs, association_address};
use crate::wifi::ctrl::fake::{Answer, FakeServer};
use crate::wifi::drive::RadioState;
use crate::wifi::supplicant::ScanResult;

const PERMANENT: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0]);
/// The random address the daemon's link rules gave the link when it appeared.
const START: MacAddr = MacAddr([0x06, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e]);
const AP: &str = "02:00:00:00:01:00";
const BOOT: &str = "0b0d4a38-6a0a-4a36-9f2c-7f3d8a4e5b6c";
/// The maximum time a stopped driver may take to end. The stop wakes it at once, so this only
/// absorbs scheduling delays.
const STOP_LIMIT: Duration = Duration::from_secs(2);

/// One configured network of the fake supplicant.
struct Network {
    id: u32,
    ssid: &'static str,
    flags: &'static str,
    priority: i32,
    mac_addr: &'static str,
}

/// The radio and the supplicant of one fake machine.
struct World {
    up: bool,
    address: MacAddr,
    fail_set: bool,
    settings: HashMap<String, String>,
    networks: Vec<Network>,
    /// The SSIDs in range and their signal levels.
    in_range: Vec<(&'static str, i32)>,
    /// The SSIDs among `in_range` that only an earlier scan saw, which a fresh scan drops.
    stale: Vec<&'static str>,
    selected: Option<u32>,
    /// Every radio operation and supplicant command, in order.
    log: Vec<String>,
}

type Shared = Arc<Mutex<World>>;

fn network(id: u32, ssid: &'static str, priority: i32) -> Network {
    Network {
        id,
        ssid,
        flags: "",
        priority,
        mac_addr: "-1",
    }
}

fn world(networks: Vec<Network>, in_range: Vec<(&'static str, i32)>) -> Shared {
    Arc::new(Mutex::new(World {
        up: true,
        address: START,
        fail_set: false,
        settings: HashMap::from([
            ("mac_addr".to_string(), "0".to_string()),
            ("preassoc_mac_addr".to_string(), "0".to_string()),
        ]),
        networks,
        in_range,
        stale: Vec::new(),
        selected: None,
        log: Vec::new(),
    }))
}

fn log(world: &Shared) -> Vec<String> {
    world.lock().unwrap().log.clone()
}

fn count(world: &Shared, prefix: &str) -> usize {
    log(world)
        .iter()
        .filter(|line| line.starts_with(prefix))
        .count()
}

/// Returns the fake supplicant's reply to one command, from the shared state.
fn answer(world: &Shared, command: &str) -> Answer {
    let mut world = world.lock().unwrap();
    world.log.push(command.to_string());
    let words: Vec<&str> = command.split(' ').collect();
    match words.as_slice() {
        ["PING"] => Answer::reply("PONG\n"),
        ["ATTACH" | "DISCONNECT"] => Answer::reply("OK\n"),
        ["GET", name] => match world.settings.get(*name) {
            Some(value) => Answer::reply(&format!("{value}\n")),
            None => Answer::reply("FAIL\n"),
        },
        ["GET_NETWORK", id, name] => {
            let id: u32 = id.parse().unwrap();
            let Some(network) = world.networks.iter().find(|network| network.id == id) else {
                return Answer::reply("FAIL\n");
            };
            let value = match *name {
                "ssid" => format!("\"{}\"", network.ssid),
                "priority" => network.priority.to_string(),
                "mac_addr" => network.mac_addr.to_string(),
                _ => return Answer::reply("FAIL\n"),
            };
            Answer::reply(&format!("{value}\n"))
        }
        ["LIST_NETWORKS"] => {
            let mut reply = String::from("network id / ssid / bssid / flags\n");
            for network in &world.networks {
                reply.push_str(&format!(
                    "{}\t{}\tany\t{}\n",
                    network.id, network.ssid, network.flags
                ));
            }
            Answer::reply(&reply)
        }
        ["SCAN"] => Answer::Send(vec![
            "OK\n".to_string(),
            "<2>CTRL-EVENT-SCAN-RESULTS ".to_string(),
        ]),
        ["SCAN_RESULTS"] => {
            let mut reply = String::from("bssid / frequency / signal level / flags / ssid\n");
            for (number, (ssid, signal)) in world.in_range.iter().enumerate() {
                reply.push_str(&format!(
                    "02:00:00:00:0{number}:00\t2412\t{signal}\t[ESS]\t{ssid}\n"
                ));
            }
            Answer::reply(&reply)
        }
        // As cfg80211 does with NL80211_SCAN_FLAG_FLUSH, a scan with only_new=1 after
        // BSS_FLUSH drops the access points only earlier scans saw.
        ["BSS_FLUSH", "0"] => Answer::reply("OK\n"),
        ["SCAN", "only_new=1"] => {
            let stale = std::mem::take(&mut world.stale);
            world.in_range.retain(|(ssid, _)| !stale.contains(ssid));
            Answer::Send(vec![
                "OK\n".to_string(),
                "<2>CTRL-EVENT-SCAN-RESULTS ".to_string(),
            ])
        }
        ["STATUS"] => {
            let state = if !world.up {
                "INTERFACE_DISABLED"
            } else if world.selected.is_some() {
                "COMPLETED"
            } else {
                "DISCONNECTED"
            };
            Answer::reply(&format!(
                "wpa_state={state}\naddress={}\nbssid={AP}\n",
                world.address
            ))
        }
        ["SELECT_NETWORK", id] => {
            let id: u32 = id.parse().unwrap();
            world.selected = Some(id);
            // As wpa_supplicant does, the other networks are disabled.
            for network in &mut world.networks {
                if network.id != id {
                    network.flags = "[DISABLED]";
                }
            }
            Answer::Send(vec![
                "OK\n".to_string(),
                format!("<3>CTRL-EVENT-CONNECTED - Connection to {AP} completed [id={id} id_str=]"),
            ])
        }
        _ => Answer::reply("UNKNOWN COMMAND\n"),
    }
}

struct FakeRadio(Shared);

impl Radio for FakeRadio {
    fn ifname(&self) -> &str {
        "wlan0"
    }

    fn read(&mut self) -> Result<RadioState, LinkError> {
        let world = self.0.lock().unwrap();
        Ok(RadioState {
            admin_up: world.up,
            address: Some(world.address),
        })
    }

    fn set_admin_state(&mut self, up: bool) -> Result<(), LinkError> {
        let mut world = self.0.lock().unwrap();
        world
            .log
            .push(format!("link {}", if up { "up" } else { "down" }));
        world.up = up;
        Ok(())
    }

    fn set_address(&mut self, address: MacAddr) -> Result<(), LinkError> {
        let mut world = self.0.lock().unwrap();
        world.log.push(format!("set {address}"));
        assert!(!world.up, "the address must be set while the link is down");
        if world.fail_set {
            return Err(LinkError::from_errno(
                crate::link::Errno(libc::EOPNOTSUPP),
                crate::link::Operation::SetAddress,
                "wlan0",
                3,
                None,
                None,
            ));
        }
        world.address = address;
        Ok(())
    }
}

/// A fake supplicant, the key, and the folder of the client sockets.
struct Setup {
    world: Shared,
    server: FakeServer,
    key: tempfile::TempDir,
    client: tempfile::TempDir,
}

impl Setup {
    fn new(world: Shared) -> Setup {
        let serving = Arc::clone(&world);
        let server = FakeServer::start(move |command| answer(&serving, command));
        let key = tempfile::tempdir().unwrap();
        SecretKey::create(&key.path().join("secret_key"), &mut OsRandom).unwrap();
        Setup {
            world,
            server,
            key,
            client: tempfile::tempdir().unwrap(),
        }
    }

    fn key_path(&self) -> PathBuf {
        self.key.path().join("secret_key")
    }

    fn settings(&self) -> DriverSettings {
        DriverSettings {
            ctrl_dir: self.server.dir.path().to_path_buf(),
            state_dir: self.client.path().to_path_buf(),
            key_path: self.key_path(),
            boot_id: Some(BOOT.to_string()),
            nm_devices: None,
        }
    }

    /// Runs a driver for `cloned` in a thread of its own, for a supplicant whose scans use
    /// random addresses.
    fn start(&self, cloned: ClonedMac, regain_timeout: Duration) -> Running {
        self.start_with(cloned, regain_timeout, true)
    }

    fn start_with(
        &self,
        cloned: ClonedMac,
        regain_timeout: Duration,
        private_scans: bool,
    ) -> Running {
        self.start_watching(cloned, regain_timeout, private_scans, None)
    }

    /// Runs a driver as [`Setup::start_with`] does, with `exited` standing for the
    /// supplicant's pidfd.
    fn start_watching(
        &self,
        cloned: ClonedMac,
        regain_timeout: Duration,
        private_scans: bool,
        exited: Option<OwnedFd>,
    ) -> Running {
        let stop = Arc::new(StopSignal::new().unwrap());
        let mut driver = Driver {
            ifname: "wlan0".to_string(),
            hidden: Some(PERMANENT),
            policy: AddressPolicy {
                cloned,
                stable_id: None,
                mask: None,
            },
            private_scans,
            boot_id: Some(BOOT.to_string()),
            keys: Keys::new(self.key_path()),
            recorded: Arc::default(),
            not_found: None,
            saved: None,
            stop: Arc::clone(&stop),
            regain_timeout,
        };
        let world = Arc::clone(&self.world);
        let ctrl_dir = self.server.dir.path().to_path_buf();
        let options = ClientOptions {
            parent_dir: Some(self.client.path().to_path_buf()),
            timeout: Duration::from_secs(2),
        };
        let thread = std::thread::spawn(move || {
            let mut supplicant = Supplicant::open(&ctrl_dir, "wlan0", &options).unwrap();
            let mut radio = FakeRadio(world);
            driver.run(&mut radio, &mut supplicant, exited.as_ref())
        });
        Running { stop, thread }
    }

    /// Derives the address `macveil wifi connect --policy stable-ssid` gives for `ssid`.
    fn stable_ssid(&self, ssid: &[u8]) -> MacAddr {
        let mut keys = Keys::new(self.key_path());
        let inputs = AddressInputs {
            ifname: "wlan0",
            hidden: Some(PERMANENT),
            current: Some(START),
            ssid,
            stable_id: None,
            connection: None,
            boot_id: Some(BOOT),
            mask: None,
        };
        association_address(
            ClonedMac::StableSsid,
            &inputs,
            Some(keys.host_id().unwrap()),
            &mut OsRandom,
        )
        .unwrap()
        .unwrap()
    }
}

/// A driver thread under test.
struct Running {
    stop: Arc<StopSignal>,
    thread: JoinHandle<End>,
}

impl Running {
    /// Stops the driver and returns how it ended, failing the test when it took longer than
    /// two seconds.
    fn stop(self) -> End {
        self.stop.request();
        self.join()
    }

    fn join(self) -> End {
        let deadline = Instant::now() + STOP_LIMIT;
        while !self.thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the driver did not end within 2 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.thread.join().unwrap()
    }
}

/// Waits up to 5 s for `condition` on the shared state.
fn wait_for(world: &Shared, what: &str, condition: impl Fn(&World) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition(&world.lock().unwrap()) {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 5 s: {:?}",
            world.lock().unwrap().log
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn connected(world: &World) -> bool {
    world.selected.is_some() && world.up
}

fn position(log: &[String], line: &str) -> usize {
    log.iter()
        .position(|entry| entry == line)
        .unwrap_or_else(|| panic!("'{line}' is missing from {log:?}"))
}

fn candidate(id: u32, ssid: &str, priority: i32) -> Candidate {
    Candidate {
        id,
        ssid: ssid.as_bytes().to_vec(),
        priority,
        key_mgmt: String::new(),
    }
}

fn result(ssid: &str, signal: i32) -> ScanResult {
    ScanResult {
        bssid: AP.parse().unwrap(),
        frequency: 2412,
        signal,
        flags: String::new(),
        ssid: ssid.as_bytes().to_vec(),
    }
}

#[test]
fn pick_tells_security_apart() {
    let mut open = candidate(0, "shared", 0);
    open.key_mgmt = String::from("NONE");
    let mut protected = candidate(1, "shared", 0);
    protected.key_mgmt = String::from("WPA-PSK");
    let candidates = [open, protected];
    let mut wpa2 = result("shared", -40);
    wpa2.flags = String::from("[WPA2-PSK-CCMP][ESS]");
    assert_eq!(pick(&candidates, &[wpa2]).map(|c| c.id), Some(1));
    let mut open_ap = result("shared", -40);
    open_ap.flags = String::from("[ESS]");
    assert_eq!(pick(&candidates, &[open_ap]).map(|c| c.id), Some(0));

    let cases = [
        ("WPA-PSK WPA-EAP", "[WPA2-EAP-CCMP][ESS]", true),
        ("SAE", "[WPA2-PSK-CCMP][ESS]", false),
        ("SAE", "[RSN-SAE-CCMP][ESS]", true),
        ("NONE", "[WEP][ESS]", true),
        ("NONE", "[WPA2-PSK-CCMP][ESS]", false),
        ("", "[WPA2-PSK-CCMP][ESS]", true),
    ];
    for (key_mgmt, flags, expected) in cases {
        assert_eq!(
            security_matches(key_mgmt, flags),
            expected,
            "{key_mgmt} {flags}"
        );
    }
}

#[test]
fn pick_prefers_priority_then_signal() {
    let candidates = [
        candidate(0, "home", 0),
        candidate(1, "cafe", 0),
        candidate(2, "work", 5),
    ];

    let weak_work = [
        result("home", -40),
        result("work", -80),
        result("cafe", -30),
    ];
    assert_eq!(pick(&candidates, &weak_work).unwrap().id, 2);

    let no_work = [
        result("home", -40),
        result("cafe", -30),
        result("cafe", -90),
    ];
    assert_eq!(pick(&candidates, &no_work).unwrap().id, 1);

    let equal = [result("cafe", -50), result("home", -50)];
    assert_eq!(pick(&candidates, &equal).unwrap().id, 0);

    assert!(pick(&candidates, &[result("elsewhere", -20)]).is_none());
    assert!(pick(&candidates, &[]).is_none());
}

#[test]
fn driver_connects_chosen_network_with_stable_ssid() {
    let world = world(
        vec![network(0, "home", 0), network(1, "cafe", 0)],
        vec![("cafe", -40)],
    );
    let setup = Setup::new(Arc::clone(&world));
    let running = setup.start(ClonedMac::StableSsid, REGAIN_TIMEOUT);
    wait_for(&world, "the connection", connected);
    assert_eq!(running.stop(), End::Stopped);

    let expected = setup.stable_ssid(b"cafe");
    assert_eq!(world.lock().unwrap().address, expected);
    assert_ne!(expected, setup.stable_ssid(b"home"));
    assert_eq!(world.lock().unwrap().selected, Some(1));

    // The supplicant is stopped before the scan, and the address is set before the network is
    // selected.
    let log = log(&world);
    let disconnect = position(&log, "DISCONNECT");
    let scan = position(&log, "SCAN only_new=1");
    let set = position(&log, &format!("set {expected}"));
    let select = position(&log, "SELECT_NETWORK 1");
    assert!(disconnect < scan, "{log:?}");
    assert!(scan < set, "{log:?}");
    assert!(set < select, "{log:?}");
    assert_eq!(count(&world, "SELECT_NETWORK"), 1, "{log:?}");
    assert_eq!(count(&world, "ATTACH"), 1, "{log:?}");
}

#[test]
fn driver_skips_disabled_and_p2p_networks() {
    let mut disabled = network(1, "cafe", 9);
    disabled.flags = "[DISABLED]";
    let mut group = network(2, "DIRECT-xy", 9);
    group.flags = "[P2P-PERSISTENT]";
    let world = world(
        vec![network(0, "home", 0), disabled, group],
        vec![("cafe", -20), ("DIRECT-xy", -20), ("home", -70)],
    );
    let setup = Setup::new(Arc::clone(&world));
    let running = setup.start(ClonedMac::StableSsid, REGAIN_TIMEOUT);
    wait_for(&world, "the connection", connected);
    running.stop();

    assert_eq!(world.lock().unwrap().selected, Some(0));
    assert_eq!(world.lock().unwrap().address, setup.stable_ssid(b"home"));
}

#[test]
fn randomizing_supplicant_is_not_driven() {
    for (global, network_mac_addr) in [("mac_addr", "-1"), ("preassoc_mac_addr", "-1"), ("", "1")] {
        let mut home = network(0, "home", 0);
        home.mac_addr = network_mac_addr;
        let world = world(vec![home], vec![("home", -40)]);
        if !global.is_empty() {
            world
                .lock()
                .unwrap()
                .settings
                .insert(global.to_string(), "1".to_string());
        }
        let setup = Setup::new(Arc::clone(&world));
        let running = setup.start(ClonedMac::StableSsid, REGAIN_TIMEOUT);
        assert_eq!(running.join(), End::Refused, "{global} {network_mac_addr}");

        let log = log(&world);
        for changing in ["DISCONNECT", "SCAN", "SELECT_NETWORK"] {
            assert!(
                !log.iter().any(|line| line.starts_with(changing)),
                "{changing} was sent: {log:?}"
            );
        }
        assert!(
            !log.iter()
                .any(|line| line.starts_with("link ") || line.starts_with("set "))
        );
        assert_eq!(world.lock().unwrap().address, START);
    }
}

#[test]
fn driver_waits_for_an_enabled_network() {
    let mut home = network(0, "home", 0);
    home.flags = "[DISABLED]";
    let world = world(vec![home], vec![("home", -40)]);
    let setup = Setup::new(Arc::clone(&world));
    let running = setup.start(ClonedMac::Random, REGAIN_TIMEOUT);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(count(&world, "DISCONNECT"), 0, "{:?}", log(&world));

    // wpa_cli enable_network makes the supplicant scan, which the driver takes as its cue.
    world.lock().unwrap().networks[0].flags = "";
    setup.server.push("<3>CTRL-EVENT-SCAN-STARTED ");
    wait_for(&world, "the connection", connected);
    assert_eq!(running.stop(), End::Stopped);
}

#[test]
fn reconnection_keeps_address() {
    let world = world(vec![network(0, "home", 0)], vec![("home", -40)]);
    let setup = Setup::new(Arc::clone(&world));
    let running = setup.start(ClonedMac::Random, Duration::from_secs(30));
    wait_for(&world, "the connection", connected);
    let address = world.lock().unwrap().address;

    // The access point restarts: the supplicant loses it and finds it again by itself.
    setup
        .server
        .push(&format!("<3>CTRL-EVENT-DISCONNECTED bssid={AP} reason=3"));
    setup.server.push(&format!(
        "<3>CTRL-EVENT-CONNECTED - Connection to {AP} completed [id=0 id_str=]"
    ));
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(running.stop(), End::Stopped);

    assert_eq!(world.lock().unwrap().address, address);
    assert_eq!(count(&world, "SELECT_NETWORK"), 1, "{:?}", log(&world));
    assert_eq!(count(&world, "set "), 1, "{:?}", log(&world));
}

#[test]
fn lost_network_chosen_again_with_new_random_address() {
    let world = world(vec![network(0, "home", 0)], vec![("home", -40)]);
    let setup = Setup::new(Arc::clone(&world));
    let running = setup.start(ClonedMac::Random, Duration::from_millis(300));
    wait_for(&world, "the connection", connected);
    let first = world.lock().unwrap().address;

    setup
        .server
        .push(&format!("<3>CTRL-EVENT-DISCONNECTED bssid={AP} reason=3"));
    wait_for(&world, "a second connection", |world| {
        world
            .log
            .iter()
            .filter(|line| line.starts_with("SELECT_NETWORK"))
            .count()
            == 2
    });
    wait_for(&world, "the second connection", connected);
    running.stop();

    let second = world.lock().unwrap().address;
    assert_ne!(
        second, first,
        "a new activation under random needs a new address"
    );
    assert_ne!(second, PERMANENT);
    assert_ne!(first, PERMANENT);
    // The supplicant was stopped before the new choice: one DISCONNECT at the start, one when
    // the driver chose again, and one in each connection.
    assert_eq!(count(&world, "DISCONNECT"), 4, "{:?}", log(&world));
}

#[test]
fn network_enabled_later_is_chosen_at_loss() {
    let mut cafe = network(1, "cafe", 0);
    cafe.flags = "[DISABLED]";
    let world = world(
        vec![network(0, "home", 0), cafe],
        vec![("home", -60), ("cafe", -40)],
    );
    let setup = Setup::new(Arc::clone(&world));
    // A regain time far beyond the test's: the new choice must not wait for it.
    let running = setup.start(ClonedMac::StableSsid, Duration::from_secs(60));
    wait_for(&world, "the connection to home", |world| {
        world.selected == Some(0) && world.up
    });

    // wpa_cli enable_network 1, then home is lost: the supplicant could move to cafe with
    // home's address, so the driver chooses again at once.
    world.lock().unwrap().networks[1].flags = "";
    world
        .lock()
        .unwrap()
        .in_range
        .retain(|(ssid, _)| *ssid != "home");
    setup
        .server
        .push(&format!("<3>CTRL-EVENT-DISCONNECTED bssid={AP} reason=3"));
    wait_for(&world, "the connection to cafe", |world| {
        world.selected == Some(1) && world.up
    });
    running.stop();
    assert_eq!(world.lock().unwrap().address, setup.stable_ssid(b"cafe"));
}

#[test]
fn stale_scan_results_are_not_chosen() {
    // home has the higher priority, but only an earlier scan saw it.
    let world = world(
        vec![network(0, "home", 5), network(1, "cafe", 0)],
        vec![("home", -40), ("cafe", -60)],
    );
    world.lock().unwrap().stale.push("home");
    let setup = Setup::new(Arc::clone(&world));
    let running = setup.start(ClonedMac::StableSsid, REGAIN_TIMEOUT);
    wait_for(&world, "the connection to cafe", |world| {
        world.selected == Some(1) && world.up
    });
    running.stop();
    assert_eq!(count(&world, "SELECT_NETWORK 0"), 0, "{:?}", log(&world));
}

#[test]
fn supplicant_exit_ends_driver() {
    let world = world(vec![network(0, "home", 0)], vec![("home", -40)]);
    let setup = Setup::new(Arc::clone(&world));
    let running = setup.start(ClonedMac::StableSsid, REGAIN_TIMEOUT);
    wait_for(&world, "the connection", connected);

    setup.server.push("<2>CTRL-EVENT-TERMINATING ");
    assert_eq!(running.join(), End::SupplicantGone);
}

#[test]
fn killed_supplicant_ends_driver_at_once() {
    let world = world(vec![network(0, "home", 0)], vec![("home", -40)]);
    let setup = Setup::new(Arc::clone(&world));
    // A child process is the supplicant's stand-in: killed, it sends nothing on the socket.
    let mut child = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pidfd = crate::wifi::process::pidfd(child.id()).unwrap();
    let running = setup.start_watching(ClonedMac::StableSsid, REGAIN_TIMEOUT, true, Some(pidfd));
    wait_for(&world, "the connection", connected);

    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(running.join(), End::SupplicantGone);
}

#[test]
fn set_failure_leaves_link_down_unselected() {
    let world = world(vec![network(0, "home", 0)], vec![("home", -40)]);
    world.lock().unwrap().fail_set = true;
    let setup = Setup::new(Arc::clone(&world));
    let running = setup.start(ClonedMac::StableSsid, REGAIN_TIMEOUT);
    wait_for(&world, "the address change", |world| {
        world.log.iter().any(|line| line.starts_with("set "))
    });
    // The driver keeps the link down while it waits to try again, and stops promptly.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(running.stop(), End::Stopped);

    let world = world.lock().unwrap();
    assert!(!world.up, "the radio must stay down: {:?}", world.log);
    assert_eq!(world.address, START);
    assert_eq!(world.selected, None);
    assert!(
        !world
            .log
            .iter()
            .any(|line| line.starts_with("SELECT_NETWORK")),
        "{:?}",
        world.log
    );
}

fn wifi_link(index: u32) -> Link {
    Link {
        index,
        name: "wlan0".into(),
        info_kind: None,
        wireless: true,
        link_type: 1,
        driver: Some("mac80211_hwsim".into()),
        admin_up: true,
        lower_up: true,
        operstate: OperState::Up,
        address: Some(START),
        permanent: Some(PERMANENT),
        permanent_source: None,
        assign_type: AssignType::Random,
        parent: None,
        ipv6_addr_gen_mode: None,
    }
}

/// Resolves the policy of a Wi-Fi link. The link has no device in sysfs here, so a `[device]`
/// section manages it, as `macveil.manage=auto` manages a physical radio.
fn wifi_policy(text: &str) -> LinkPolicy {
    let text =
        format!("[device-wlan0]\nmatch-device=interface-name:wlan0\nmacveil.manage=yes\n{text}");
    let config =
        crate::config::Config::from_sources(&[crate::config::SourceText::new("test.conf", &text)])
            .unwrap();
    config.policy_for(&crate::config::LinkFacts {
        name: "wlan0".into(),
        kind: crate::config::LinkKind::Wifi,
        driver: Some("mac80211_hwsim".into()),
        driver_version: None,
        permanent: Some(PERMANENT),
        current: Some(START),
        device: None,
    })
}

fn drivers(setup: &Setup, driven: &DrivenLinks) -> Drivers {
    let world = Arc::clone(&setup.world);
    let open_radio = move |_: &str| -> Result<Box<dyn Radio>, LinkError> {
        Ok(Box::new(FakeRadio(Arc::clone(&world))))
    };
    Drivers::with_radio(setup.settings(), driven.clone(), Arc::new(open_radio))
}

#[test]
fn drivers_mark_driven_link_until_stopped() {
    let world = world(vec![network(0, "home", 0)], vec![("home", -40)]);
    let setup = Setup::new(Arc::clone(&world));
    let driven = DrivenLinks::default();
    let mut drivers = drivers(&setup, &driven);
    let policy = wifi_policy("[connection]\nwifi.cloned-mac-address=stable-ssid\n");

    drivers.consider(&wifi_link(3), &policy, true);
    wait_for(&world, "the connection", connected);
    assert!(driven.contains(3));
    assert_eq!(drivers.running(), vec!["wlan0".to_string()]);

    // The same supplicant and policy keep the running driver.
    drivers.consider(&wifi_link(3), &policy, true);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(count(&world, "ATTACH"), 1, "{:?}", log(&world));

    // The driver waits for events without a limit while connected; the stop wakes it.
    let started = Instant::now();
    drivers.stop_all();
    let elapsed = started.elapsed();
    assert!(elapsed <= Duration::from_millis(500), "{elapsed:?}");
    assert!(drivers.running().is_empty());
    assert!(!driven.contains(3));
    assert_eq!(world.lock().unwrap().address, setup.stable_ssid(b"home"));
}

#[test]
fn restarted_daemon_keeps_candidates() {
    let world = world(
        vec![network(0, "home", 0), network(1, "cafe", 0)],
        vec![("home", -40), ("cafe", -60)],
    );
    let setup = Setup::new(Arc::clone(&world));
    let policy = wifi_policy("[connection]\nwifi.cloned-mac-address=stable-ssid\n");
    let driven = DrivenLinks::default();
    let mut first = drivers(&setup, &driven);
    first.consider(&wifi_link(3), &policy, true);
    wait_for(&world, "the connection to home", |world| {
        world.selected == Some(0) && world.up
    });
    first.stop_all();
    drop(first);

    // SELECT_NETWORK disabled cafe. A daemon that restarts finds it in the saved record.
    world
        .lock()
        .unwrap()
        .in_range
        .retain(|(ssid, _)| *ssid != "home");
    let mut second = drivers(&setup, &driven);
    second.consider(&wifi_link(3), &policy, true);
    wait_for(&world, "the connection to cafe", |world| {
        world.selected == Some(1) && world.up
    });
    second.stop_all();
    assert_eq!(world.lock().unwrap().address, setup.stable_ssid(b"cafe"));
}

#[test]
fn drivers_leave_other_policies_alone() {
    let world = world(vec![network(0, "home", 0)], vec![("home", -40)]);
    let setup = Setup::new(Arc::clone(&world));
    let driven = DrivenLinks::default();
    let mut drivers = drivers(&setup, &driven);

    for text in [
        "[connection]\nwifi.cloned-mac-address=stable\nconnection.stable-id=${CONNECTION}/${BOOT}\n",
        "[connection]\nwifi.cloned-mac-address=permanent\n",
        "[connection]\nwifi.cloned-mac-address=random\nmacveil.wifi-connect=no\n",
    ] {
        drivers.consider(&wifi_link(3), &wifi_policy(text), true);
        assert!(drivers.running().is_empty(), "{text}");
    }

    // Without a section that manages it, a link without a device in sysfs is not managed.
    let config = crate::config::Config::from_sources(&[crate::config::SourceText::new(
        "test.conf",
        "[connection]\nwifi.cloned-mac-address=random\n",
    )])
    .unwrap();
    let unmanaged = config.policy_for(&crate::config::LinkFacts {
        name: "wlan0".into(),
        kind: crate::config::LinkKind::Wifi,
        driver: None,
        driver_version: None,
        permanent: Some(PERMANENT),
        current: Some(START),
        device: None,
    });
    assert!(!unmanaged.managed);
    drivers.consider(&wifi_link(3), &unmanaged, true);
    assert!(drivers.running().is_empty());
    std::thread::sleep(Duration::from_millis(100));
    assert!(log(&world).is_empty(), "{:?}", log(&world));
    assert!(!driven.contains(3));
}

#[test]
fn policy_change_restarts_driver() {
    let world = world(
        vec![network(0, "home", 0), network(1, "cafe", 0)],
        vec![("home", -40)],
    );
    let setup = Setup::new(Arc::clone(&world));
    let driven = DrivenLinks::default();
    let mut drivers = drivers(&setup, &driven);

    drivers.consider(
        &wifi_link(3),
        &wifi_policy("[connection]\nwifi.cloned-mac-address=stable-ssid\n"),
        true,
    );
    wait_for(&world, "the connection", connected);
    // SELECT_NETWORK disabled the other network, as wpa_supplicant does.
    world.lock().unwrap().networks[1].flags = "[DISABLED]";
    world.lock().unwrap().in_range = vec![("cafe", -40)];

    drivers.consider(
        &wifi_link(3),
        &wifi_policy("[connection]\nwifi.cloned-mac-address=random\n"),
        true,
    );
    wait_for(&world, "the connection to cafe", |world| {
        world.selected == Some(1) && world.up
    });
    drivers.stop_all();

    // The second driver chose among the networks recorded at the first attach: their
    // settings were read once, although SELECT_NETWORK had disabled cafe since.
    assert_eq!(count(&world, "GET_NETWORK 1 ssid"), 1, "{:?}", log(&world));
    let address = world.lock().unwrap().address;
    assert_ne!(address, setup.stable_ssid(b"cafe"));
    assert_ne!(address, setup.stable_ssid(b"home"));
}

#[test]
fn backoff_doubles_to_its_limit() {
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(12));
    assert_eq!(backoff.next(), Duration::from_secs(5));
    assert_eq!(backoff.next(), Duration::from_secs(10));
    assert_eq!(backoff.next(), Duration::from_secs(12));
    assert_eq!(backoff.next(), Duration::from_secs(12));
    backoff.reset();
    assert_eq!(backoff.next(), Duration::from_secs(5));
}

#[test]
fn missing_socket_starts_nothing() {
    let world = world(vec![network(0, "home", 0)], vec![("home", -40)]);
    let setup = Setup::new(Arc::clone(&world));
    let driven = DrivenLinks::default();
    let mut settings = setup.settings();
    settings.ctrl_dir = Path::new("/nonexistent-macveil-ctrl").to_path_buf();
    let world_for_radio = Arc::clone(&world);
    let open_radio = move |_: &str| -> Result<Box<dyn Radio>, LinkError> {
        Ok(Box::new(FakeRadio(Arc::clone(&world_for_radio))))
    };
    let mut drivers = Drivers::with_radio(settings, driven.clone(), Arc::new(open_radio));
    drivers.consider(
        &wifi_link(3),
        &wifi_policy("[connection]\nwifi.cloned-mac-address=random\n"),
        true,
    );
    assert!(drivers.running().is_empty());
}

#[test]
fn networkmanager_link_is_not_driven() {
    let world = world(vec![network(0, "home", 0)], vec![("home", -40)]);
    let setup = Setup::new(Arc::clone(&world));
    let nm = tempfile::tempdir().unwrap();
    std::fs::write(nm.path().join("3"), "[device]\nmanaged=true\n").unwrap();
    let mut settings = setup.settings();
    settings.nm_devices = Some(DeviceStates::new(nm.path()));
    let world_for_radio = Arc::clone(&world);
    let open_radio = move |_: &str| -> Result<Box<dyn Radio>, LinkError> {
        Ok(Box::new(FakeRadio(Arc::clone(&world_for_radio))))
    };
    let mut drivers = Drivers::with_radio(settings, DrivenLinks::default(), Arc::new(open_radio));

    drivers.consider(
        &wifi_link(3),
        &wifi_policy("[connection]\nwifi.cloned-mac-address=stable-ssid\n"),
        true,
    );
    assert!(drivers.running().is_empty());
    std::thread::sleep(Duration::from_millis(100));
    assert!(log(&world).is_empty(), "{:?}", log(&world));
}

#[test]
fn choice_without_private_scans_hides_old_address() {
    let world = world(vec![network(0, "home", 0)], vec![("home", -40)]);
    let setup = Setup::new(Arc::clone(&world));
    let running = setup.start_with(ClonedMac::StableSsid, Duration::from_millis(300), false);
    wait_for(&world, "the connection", connected);
    let home = setup.stable_ssid(b"home");

    setup
        .server
        .push(&format!("<3>CTRL-EVENT-DISCONNECTED bssid={AP} reason=3"));
    wait_for(&world, "a second connection", |world| {
        world
            .log
            .iter()
            .filter(|line| line.starts_with("SELECT_NETWORK"))
            .count()
            == 2
    });
    running.stop();

    // Between the lost connection and the second scan, the link went down and got an address
    // that is neither the network's nor the permanent one.
    let log = log(&world);
    let first_scan = position(&log, "SCAN only_new=1");
    let second_scan = first_scan
        + 1
        + log[first_scan + 1..]
            .iter()
            .position(|line| line == "SCAN only_new=1")
            .unwrap_or_else(|| panic!("no second scan: {log:?}"));
    let between: Vec<&String> = log[..second_scan]
        .iter()
        .rev()
        .take_while(|line| !line.starts_with("SELECT_NETWORK"))
        .collect();
    let fresh: Vec<MacAddr> = between
        .iter()
        .filter_map(|line| line.strip_prefix("set "))
        .map(|address| address.parse().unwrap())
        .collect();
    assert_eq!(fresh.len(), 1, "{log:?}");
    assert_ne!(fresh[0], home);
    assert_ne!(fresh[0], PERMANENT);
    assert!(between.contains(&&"link down".to_string()), "{log:?}");

    // The network's address comes back for the new connection.
    assert_eq!(world.lock().unwrap().address, home);
}

#[test]
fn choice_with_private_scans_keeps_address() {
    let world = world(vec![network(0, "home", 0)], vec![("home", -40)]);
    let setup = Setup::new(Arc::clone(&world));
    let running = setup.start(ClonedMac::StableSsid, Duration::from_millis(300));
    wait_for(&world, "the connection", connected);

    setup
        .server
        .push(&format!("<3>CTRL-EVENT-DISCONNECTED bssid={AP} reason=3"));
    wait_for(&world, "a second connection", |world| {
        world
            .log
            .iter()
            .filter(|line| line.starts_with("SELECT_NETWORK"))
            .count()
            == 2
    });
    running.stop();

    // The same network keeps its address, so the link was changed only for the first
    // connection.
    assert_eq!(count(&world, "set "), 1, "{:?}", log(&world));
    assert_eq!(world.lock().unwrap().address, setup.stable_ssid(b"home"));
}
