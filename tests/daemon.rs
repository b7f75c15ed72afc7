//! The daemon and the udev helper run as the system runs them: the built binary, on veth and ifb
//! links in a network namespace each test creates and deletes, with a temporary configuration,
//! secret key and state directory. The daemon's readiness is read from a `NOTIFY_SOCKET` the
//! test binds, as systemd would. Every daemon is killed by its process id when its guard drops,
//! also when the test fails.
//!
//! Without root the tests skip, with a message on stderr.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const MACVEIL: &str = env!("CARGO_BIN_EXE_macveil");

/// How long a test waits for the daemon to react. It normally needs a few milliseconds.
const REACTION: Duration = Duration::from_secs(5);

static NEXT_NAMESPACE: AtomicU32 = AtomicU32::new(0);

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A namespace, a temporary folder with the configuration, key and state, and helpers to look
/// at links.
struct Lab {
    namespace: String,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new(test: &str) -> Option<Lab> {
        if !is_root() {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: needs root to create network namespaces"
            );
            return None;
        }
        let namespace = format!(
            "mvd-{}-{}",
            std::process::id(),
            NEXT_NAMESPACE.fetch_add(1, Ordering::Relaxed)
        );
        run_ip(&["netns", "add", &namespace]);
        let lab = Lab {
            namespace,
            dir: tempfile::tempdir().unwrap(),
        };
        let key = lab.key_path();
        let output = Command::new(MACVEIL)
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
        assert!(output.status.success(), "{}", text(&output.stderr));
        Some(lab)
    }

    /// Runs `ip -n NAMESPACE ARGS...` and panics when it fails.
    fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", self.namespace.as_str()];
        full.extend_from_slice(args);
        run_ip(&full);
    }

    /// Runs `ip -n NAMESPACE ARGS...` and returns whether it succeeded.
    fn try_ip(&self, args: &[&str]) -> bool {
        Command::new("ip")
            .args(["-n", &self.namespace])
            .args(args)
            .output()
            .unwrap()
            .status
            .success()
    }

    /// Reads a link's address and admin state, or `None` when it does not exist.
    fn link(&self, name: &str) -> Option<LinkState> {
        let output = Command::new("ip")
            .args(["-n", &self.namespace, "-j", "link", "show", "dev", name])
            .output()
            .unwrap();
        if !output.status.success() {
            return None;
        }
        let links: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let link = &links[0];
        let flags: Vec<&str> = link["flags"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|flag| flag.as_str())
            .collect();
        Some(LinkState {
            address: link["address"].as_str().unwrap().to_string(),
            index: link["ifindex"].as_u64().unwrap() as u32,
            up: flags.contains(&"UP"),
        })
    }

    fn address(&self, name: &str) -> String {
        self.link(name).expect("the link exists").address
    }

    /// Waits until `check` returns a value, or panics after [`REACTION`] naming `what`.
    fn wait_for<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + REACTION;
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until link `name` has an address other than `old`, and returns it.
    fn wait_for_change(&self, name: &str, old: &str) -> String {
        self.wait_for(&format!("{name} to leave {old}"), || {
            let link = self.link(name)?;
            (link.address != old).then_some(link.address)
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn key_path(&self) -> PathBuf {
        self.path("secret_key")
    }

    fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    /// Writes the configuration file and returns its path.
    fn write_config(&self, text: &str) -> PathBuf {
        let path = self.path("macveil.conf");
        fs::write(&path, text).unwrap();
        path
    }

    /// The arguments every command here needs: namespace, key, state and configuration.
    fn common_args(&self) -> Vec<String> {
        vec![
            String::from("--netns"),
            self.namespace.clone(),
            String::from("--secret-key"),
            self.key_path().display().to_string(),
            String::from("--state-dir"),
            self.state_dir().display().to_string(),
            String::from("--config"),
            self.path("macveil.conf").display().to_string(),
        ]
    }

    /// The daemon's record of a link.
    fn record(&self, name: &str) -> Option<serde_json::Value> {
        let text = fs::read_to_string(self.state_dir().join("links.json")).ok()?;
        let records: serde_json::Value = serde_json::from_str(&text).unwrap();
        records["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|record| record["ifname"] == name)
            .cloned()
    }

    /// The reference address recorded for a link.
    fn reference(&self, name: &str) -> Option<String> {
        let text = fs::read_to_string(self.state_dir().join("references.json")).ok()?;
        let references: serde_json::Value = serde_json::from_str(&text).unwrap();
        references["references"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["ifname"] == name)
            .map(|entry| entry["address"].as_str().unwrap().to_string())
    }

    /// The stable address `macveil gen` derives for a link, with the link's reference as its
    /// permanent address, as the daemon derives it.
    fn expected_stable(&self, name: &str, template: &str, reference: &str) -> String {
        let output = Command::new(MACVEIL)
            .args(["gen", "--stable", "--ifname", name, "--mac", reference])
            .args(["--stable-id", template])
            .arg("--secret-key")
            .arg(self.key_path())
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout).trim().to_string()
    }

    /// Starts a daemon and waits for READY=1.
    fn start_daemon(&self, extra: &[&str]) -> Daemon {
        let daemon = self.spawn_daemon(extra);
        daemon.wait_ready();
        daemon
    }

    /// Starts a daemon without waiting for it.
    fn spawn_daemon(&self, extra: &[&str]) -> Daemon {
        static NEXT_DAEMON: AtomicU32 = AtomicU32::new(0);
        let number = NEXT_DAEMON.fetch_add(1, Ordering::Relaxed);
        let notify_path = self.path(&format!("notify-{number}"));
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let log = self.path(&format!("daemon-{number}.log"));
        let child = Command::new(MACVEIL)
            .arg("daemon")
            .args(self.common_args())
            .args(["-vv"])
            .args(extra)
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon {
            child,
            notify,
            log,
            exited: None,
        }
    }

    /// Runs `macveil udev-apply` for a link.
    fn udev_apply(&self, name: &str, final_name: &str) -> Output {
        let index = self.link(name).unwrap().index;
        Command::new(MACVEIL)
            .args([
                "udev-apply",
                "--ifindex",
                &index.to_string(),
                "--name",
                final_name,
            ])
            .args(self.common_args())
            .output()
            .unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .status();
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct LinkState {
    address: String,
    index: u32,
    up: bool,
}

fn run_ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        text(&output.stderr)
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running daemon, killed by its process id when dropped.
struct Daemon {
    child: Child,
    notify: UnixDatagram,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Daemon {
    /// Waits for the readiness message, or panics with the daemon's log.
    fn wait_ready(&self) {
        let deadline = Instant::now() + REACTION;
        let mut buffer = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(length) = self.notify.recv(&mut buffer) {
                let message = String::from_utf8_lossy(&buffer[..length]);
                if message.lines().any(|line| line == "READY=1") {
                    return;
                }
            }
        }
        panic!("the daemon did not become ready:\n{}", self.log());
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory preconditions; the pid is this test's own child.
        let result = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(result, 0, "kill failed");
    }

    /// Waits for the daemon to exit and returns its status.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + REACTION;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.exited = Some(status);
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the log contains `needle`.
    fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + REACTION;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the log never contained '{needle}':\n{log}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

const STABLE_PER_BOOT: &str = "\
[connection-test]
match-device=interface-name:tv*
ethernet.cloned-mac-address=stable
connection.stable-id=${CONNECTION}/${BOOT}
";

const RANDOM: &str = "\
[connection-test]
match-device=interface-name:tv*
ethernet.cloned-mac-address=random
";

#[test]
fn new_link_gets_address_while_down() {
    let Some(lab) = Lab::new("new_link_gets_address_while_down") else {
        return;
    };
    lab.write_config(STABLE_PER_BOOT);
    let daemon = lab.start_daemon(&[]);

    lab.ip(&[
        "link", "add", "tv0", "type", "veth", "peer", "name", "other0",
    ]);
    let reference = lab.wait_for("the reference of tv0", || lab.reference("tv0"));
    let set = lab.wait_for_change("tv0", &reference);

    let link = lab.link("tv0").unwrap();
    assert!(!link.up, "the daemon raised tv0");
    let expected = lab.expected_stable("tv0", "${CONNECTION}/${BOOT}", &reference);
    assert_eq!(set, expected, "{}", daemon.log());

    let record = lab.wait_for("the record of tv0", || {
        lab.record("tv0").filter(|record| record["status"] == "set")
    });
    assert_eq!(record["address"], expected.as_str());
    assert_eq!(record["policy"], "stable");
    assert_eq!(record["writer"], "daemon");
    assert!(
        record["origin"]
            .as_str()
            .unwrap()
            .contains("[connection-test]"),
        "{record}"
    );

    // The peer matches no section and keeps its address; the log never shows the reference.
    lab.wait_for("the record of other0", || {
        lab.record("other0")
            .filter(|record| record["status"] == "ignored")
    });
    let log = daemon.log();
    assert!(!log.contains(&reference), "{log}");
}

#[test]
fn random_changes_at_each_cycle() {
    let Some(lab) = Lab::new("random_changes_at_each_cycle") else {
        return;
    };
    lab.write_config(RANDOM);
    let daemon = lab.start_daemon(&[]);

    lab.ip(&[
        "link", "add", "tv0", "type", "veth", "peer", "name", "other0",
    ]);
    let reference = lab.wait_for("the reference of tv0", || lab.reference("tv0"));
    let mut seen = vec![reference.clone(), lab.wait_for_change("tv0", &reference)];
    for _ in 0..3 {
        lab.ip(&["link", "set", "tv0", "up"]);
        lab.ip(&["link", "set", "tv0", "down"]);
        let last = seen.last().unwrap().clone();
        seen.push(lab.wait_for_change("tv0", &last));
    }

    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), seen.len(), "{seen:?}\n{}", daemon.log());
    assert!(!lab.link("tv0").unwrap().up);
}

#[test]
fn stable_per_boot_survives_cycles_and_restart() {
    let Some(lab) = Lab::new("stable_per_boot_survives_cycles_and_restart") else {
        return;
    };
    lab.write_config(STABLE_PER_BOOT);
    let mut daemon = lab.start_daemon(&[]);

    lab.ip(&[
        "link", "add", "tv0", "type", "veth", "peer", "name", "other0",
    ]);
    let reference = lab.wait_for("the reference of tv0", || lab.reference("tv0"));
    let stable = lab.wait_for_change("tv0", &reference);
    for _ in 0..3 {
        lab.ip(&["link", "set", "tv0", "up"]);
        lab.ip(&["link", "set", "tv0", "down"]);
    }
    // Give the daemon time to react to the cycles, then check nothing moved.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lab.address("tv0"), stable, "{}", daemon.log());

    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit().success());

    // A restart within the boot resumes enforcement at once: the reference written back on a
    // running link is undone, and the link gets the same stable address.
    lab.ip(&["link", "set", "tv0", "up"]);
    lab.ip(&["link", "set", "tv0", "address", &reference]);
    let restarted = lab.start_daemon(&[]);
    let after = lab.wait_for_change("tv0", &reference);
    assert_eq!(after, stable, "{}", restarted.log());
    let link = lab.wait_for("tv0 to come back up", || {
        lab.link("tv0").filter(|link| link.up)
    });
    assert_eq!(link.address, stable);
}

#[test]
fn first_start_spares_running_links_unless_now() {
    let Some(lab) = Lab::new("first_start_spares_running_links_unless_now") else {
        return;
    };
    lab.write_config(STABLE_PER_BOOT);
    lab.ip(&[
        "link", "add", "tv0", "type", "veth", "peer", "name", "other0",
    ]);
    lab.ip(&["link", "set", "tv0", "up"]);
    let original = lab.address("tv0");

    let mut daemon = lab.start_daemon(&[]);
    let log = daemon.wait_log("exposed");
    assert_eq!(lab.address("tv0"), original, "{log}");
    // The log shows the vendor part of the address it must hide, not the whole address.
    assert!(
        log.contains(&format!("{}:xx:xx:xx", &original[..8])),
        "{log}"
    );
    assert!(!log.contains(&original), "{log}");
    assert!(lab.link("tv0").unwrap().up);
    assert_eq!(lab.record("tv0").unwrap()["status"], "exposed");

    // Taking the link down ends the exemption: it gets its address while down.
    lab.ip(&["link", "set", "tv0", "down"]);
    let changed = lab.wait_for_change("tv0", &original);
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit().success());

    // With --now a fresh state directory still changes running links.
    let second = Lab::new("first_start_spares_running_links_unless_now").unwrap();
    second.write_config(STABLE_PER_BOOT);
    second.ip(&[
        "link", "add", "tv0", "type", "veth", "peer", "name", "other0",
    ]);
    second.ip(&["link", "set", "tv0", "up"]);
    let running = second.address("tv0");
    let now = second.start_daemon(&["--now", "--reveal"]);
    let set = second.wait_for_change("tv0", &running);
    assert_ne!(set, changed, "two keys gave one address");
    let link = second.wait_for("tv0 back up", || second.link("tv0").filter(|link| link.up));
    assert_eq!(link.address, set);
    // --reveal shows the whole address.
    now.wait_log(&running);
}

#[test]
fn apply_to_running_changes_running_links() {
    let Some(lab) = Lab::new("apply_to_running_changes_running_links") else {
        return;
    };
    lab.write_config(&format!(
        "{STABLE_PER_BOOT}\n[device-test]\nmatch-device=interface-name:tv0\n\
         macveil.apply-to-running=yes\n"
    ));
    for name in ["tv0", "tv1"] {
        let peer = format!("other-{name}");
        lab.ip(&["link", "add", name, "type", "veth", "peer", "name", &peer]);
        lab.ip(&["link", "set", name, "up"]);
    }
    let tv0 = lab.address("tv0");
    let tv1 = lab.address("tv1");

    let daemon = lab.start_daemon(&[]);
    lab.wait_for_change("tv0", &tv0);
    assert_eq!(lab.address("tv1"), tv1, "{}", daemon.log());
    assert_eq!(lab.record("tv1").unwrap()["status"], "exposed");
}

#[test]
fn on_failure_warn_leaves_link_up() {
    let Some(lab) = Lab::new("on_failure_warn_leaves_link_up") else {
        return;
    };
    lab.write_config(&format!(
        "{STABLE_PER_BOOT}\n[device-test]\nmatch-device=interface-name:tv*\n\
         macveil.on-failure=warn\n"
    ));
    let daemon = lab.start_daemon(&[]);
    lab.ip(&["link", "add", "tvifb", "type", "ifb"]);
    daemon.wait_log("tvifb: could not set its stable address");
    lab.ip(&["link", "set", "tvifb", "up"]);

    let record = lab.wait_for("the failed record of tvifb", || {
        lab.record("tvifb")
            .filter(|record| record["status"] == "failed")
    });
    assert!(
        record["detail"]
            .as_str()
            .unwrap()
            .contains("on-failure=warn"),
        "{record}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(lab.link("tvifb").unwrap().up, "{}", daemon.log());
    assert!(daemon.log().contains("warning: tvifb"), "{}", daemon.log());
}

#[test]
fn hardware_address_written_back_is_undone() {
    let Some(lab) = Lab::new("hardware_address_written_back_is_undone") else {
        return;
    };
    lab.write_config(STABLE_PER_BOOT);
    let daemon = lab.start_daemon(&[]);
    lab.ip(&[
        "link", "add", "tv0", "type", "veth", "peer", "name", "other0",
    ]);
    let reference = lab.wait_for("the reference of tv0", || lab.reference("tv0"));
    let stable = lab.wait_for_change("tv0", &reference);
    lab.ip(&["link", "set", "tv0", "up"]);
    lab.ip(&["link", "set", "other0", "up"]);
    lab.ip(&["address", "add", "192.0.2.1/24", "dev", "tv0"]);

    // Another program writes the reference back while the link is up.
    lab.ip(&["link", "set", "tv0", "address", &reference]);
    let undone = lab.wait_for_change("tv0", &reference);
    assert_eq!(undone, stable);
    let link = lab.wait_for("tv0 back up", || lab.link("tv0").filter(|link| link.up));
    assert_eq!(link.address, stable);
    daemon.wait_log("taking it down");

    // Another anonymized address is not fought.
    lab.ip(&["link", "set", "tv0", "address", "02:00:5e:10:20:30"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lab.address("tv0"), "02:00:5e:10:20:30");
    let log = daemon.log();
    assert!(
        !log.contains(&reference),
        "the log shows the reference:\n{log}"
    );
}

#[test]
fn repeated_write_back_leaves_link_down() {
    let Some(lab) = Lab::new("repeated_write_back_leaves_link_down") else {
        return;
    };
    lab.write_config(STABLE_PER_BOOT);
    let daemon = lab.start_daemon(&[]);
    lab.ip(&[
        "link", "add", "tv0", "type", "veth", "peer", "name", "other0",
    ]);
    let reference = lab.wait_for("the reference of tv0", || lab.reference("tv0"));
    let stable = lab.wait_for_change("tv0", &reference);
    lab.ip(&["link", "set", "tv0", "up"]);

    // Three undo attempts a minute are allowed; the fourth write leaves the link down.
    for attempt in 0..3 {
        lab.ip(&["link", "set", "tv0", "address", &reference]);
        let undone = lab.wait_for_change("tv0", &reference);
        assert_eq!(undone, stable, "attempt {attempt}");
        lab.wait_for("tv0 back up", || lab.link("tv0").filter(|link| link.up));
    }
    lab.ip(&["link", "set", "tv0", "address", &reference]);
    lab.wait_for("tv0 to be left down", || {
        lab.link("tv0").filter(|link| !link.up)
    });
    let log = daemon.wait_log("another program keeps setting it");
    assert!(log.contains("tv0"), "{log}");
    lab.wait_for("the held-down record of tv0", || {
        lab.record("tv0")
            .filter(|record| record["status"] == "held-down")
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(!lab.link("tv0").unwrap().up, "{}", daemon.log());
    assert_eq!(lab.record("tv0").unwrap()["status"], "held-down");
}

#[test]
fn failure_to_set_leaves_link_down() {
    let Some(lab) = Lab::new("failure_to_set_leaves_link_down") else {
        return;
    };
    lab.write_config(STABLE_PER_BOOT);
    let daemon = lab.start_daemon(&[]);

    // ifb links refuse address changes (EOPNOTSUPP).
    lab.ip(&["link", "add", "tvifb", "type", "ifb"]);
    let reference = lab.wait_for("the reference of tvifb", || lab.reference("tvifb"));
    let log = daemon.wait_log("tvifb: could not set its stable address");
    assert!(log.contains("EOPNOTSUPP"), "{log}");
    assert!(
        log.contains("macveil.manage=no"),
        "the fix is missing:\n{log}"
    );
    assert_eq!(lab.address("tvifb"), reference);
    assert!(!lab.link("tvifb").unwrap().up);

    // Raised by another program with its own address, it is taken down again.
    lab.ip(&["link", "set", "tvifb", "up"]);
    lab.wait_for("tvifb to be taken down", || {
        lab.link("tvifb").filter(|link| !link.up)
    });
    let record = lab.wait_for("the held-down record of tvifb", || {
        lab.record("tvifb")
            .filter(|record| record["status"] == "held-down")
    });
    assert!(
        record["detail"].as_str().unwrap().contains("EOPNOTSUPP"),
        "{record}"
    );
}

#[test]
fn second_instance_is_refused() {
    let Some(lab) = Lab::new("second_instance_is_refused") else {
        return;
    };
    lab.write_config(STABLE_PER_BOOT);
    let _first = lab.start_daemon(&[]);
    let mut second = lab.spawn_daemon(&[]);
    let status = second.wait_exit();
    assert_eq!(status.code(), Some(2), "{}", second.log());
    let log = second.log();
    assert!(log.contains("another macveil daemon"), "{log}");
    assert!(
        log.contains(&format!("process {}", _first.child.id())),
        "{log}"
    );
}

#[test]
fn invalid_configuration_refuses_to_start() {
    let Some(lab) = Lab::new("invalid_configuration_refuses_to_start") else {
        return;
    };
    lab.write_config("[connection]\nethernet.cloned-mac-address=stabel\n");
    lab.ip(&[
        "link", "add", "tv0", "type", "veth", "peer", "name", "other0",
    ]);
    let original = lab.address("tv0");

    let mut daemon = lab.spawn_daemon(&[]);
    assert_eq!(daemon.wait_exit().code(), Some(2));
    let log = daemon.log();
    assert!(log.contains("macveil.conf:2"), "{log}");
    assert!(log.contains("stabel"), "{log}");
    assert_eq!(lab.address("tv0"), original);
    assert!(!lab.state_dir().join("links.json").exists());
}

#[test]
fn missing_namespace_exits_with_two() {
    let Some(lab) = Lab::new("missing_namespace_exits_with_two") else {
        return;
    };
    lab.write_config(STABLE_PER_BOOT);
    let output = Command::new(MACVEIL)
        .args([
            "daemon",
            "--netns",
            "macveil-no-such-namespace",
            "--state-dir",
        ])
        .arg(lab.state_dir())
        .arg("--config")
        .arg(lab.path("macveil.conf"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("ip netns list"), "{stderr}");
}

#[test]
fn reload_with_bad_configuration_keeps_policy() {
    let Some(lab) = Lab::new("reload_with_bad_configuration_keeps_policy") else {
        return;
    };
    let config = lab.write_config(STABLE_PER_BOOT);
    let daemon = lab.start_daemon(&[]);

    fs::write(&config, "[connection-test]\nmatch-device=interface-name:tv*\nethernet.cloned-mac-address=nonsense\n").unwrap();
    daemon.signal(libc::SIGHUP);
    let log = daemon.wait_log("keeps running with the previous one");
    assert!(log.contains("nonsense"), "{log}");

    // The old policy still applies to a new link.
    lab.ip(&[
        "link", "add", "tv0", "type", "veth", "peer", "name", "other0",
    ]);
    let reference = lab.wait_for("the reference of tv0", || lab.reference("tv0"));
    let set = lab.wait_for_change("tv0", &reference);
    assert_eq!(
        set,
        lab.expected_stable("tv0", "${CONNECTION}/${BOOT}", &reference)
    );

    // A valid reload takes effect: tv1 keeps its address under preserve.
    fs::write(&config, "[connection-test]\nmatch-device=interface-name:tv*\nethernet.cloned-mac-address=preserve\n").unwrap();
    daemon.signal(libc::SIGHUP);
    daemon.wait_log("configuration reloaded");
    lab.ip(&[
        "link", "add", "tv1", "type", "veth", "peer", "name", "other1",
    ]);
    let original = lab.address("tv1");
    lab.wait_for("the record of tv1", || {
        lab.record("tv1")
            .filter(|record| record["status"] == "ignored")
    });
    assert_eq!(lab.address("tv1"), original);
}

#[test]
fn sigterm_exits_cleanly_leaving_addresses() {
    let Some(lab) = Lab::new("sigterm_exits_cleanly_leaving_addresses") else {
        return;
    };
    lab.write_config(STABLE_PER_BOOT);
    let mut daemon = lab.start_daemon(&[]);
    lab.ip(&[
        "link", "add", "tv0", "type", "veth", "peer", "name", "other0",
    ]);
    let reference = lab.wait_for("the reference of tv0", || lab.reference("tv0"));
    let stable = lab.wait_for_change("tv0", &reference);

    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", daemon.log());
    assert_eq!(lab.address("tv0"), stable);
    assert!(daemon.log().contains("every address stays as it is"));
}

#[test]
fn resume_gives_random_links_new_addresses() {
    let Some(lab) = Lab::new("resume_gives_random_links_new_addresses") else {
        return;
    };
    lab.write_config(RANDOM);
    let daemon = lab.start_daemon(&[]);
    lab.ip(&[
        "link", "add", "tv0", "type", "veth", "peer", "name", "other0",
    ]);
    let reference = lab.wait_for("the reference of tv0", || lab.reference("tv0"));
    let first = lab.wait_for_change("tv0", &reference);
    lab.ip(&["link", "set", "tv0", "up"]);

    daemon.signal(libc::SIGUSR1);
    let second = lab.wait_for_change("tv0", &first);
    assert_ne!(second, reference);
    let link = lab.wait_for("tv0 back up", || lab.link("tv0").filter(|link| link.up));
    assert_eq!(link.address, second);
}

#[test]
fn missing_key_holds_stable_links_until_reload() {
    let Some(lab) = Lab::new("missing_key_holds_stable_links_until_reload") else {
        return;
    };
    lab.write_config(STABLE_PER_BOOT);
    let key = fs::read(lab.key_path()).unwrap();
    fs::remove_file(lab.key_path()).unwrap();
    let daemon = lab.start_daemon(&[]);

    lab.ip(&[
        "link", "add", "tv0", "type", "veth", "peer", "name", "other0",
    ]);
    let reference = lab.wait_for("the reference of tv0", || lab.reference("tv0"));
    daemon.wait_log("tv0: waiting for its stable address");
    lab.ip(&["link", "set", "tv0", "up"]);
    lab.wait_for("tv0 to be taken down", || {
        lab.link("tv0").filter(|link| !link.up)
    });
    assert_eq!(lab.address("tv0"), reference);

    // The key appears (a late /var); a reload picks it up.
    fs::write(lab.key_path(), &key).unwrap();
    fs::set_permissions(lab.key_path(), PermissionsExt::from_mode(0o600)).unwrap();
    daemon.signal(libc::SIGHUP);
    let set = lab.wait_for_change("tv0", &reference);
    assert_eq!(
        set,
        lab.expected_stable("tv0", "${CONNECTION}/${BOOT}", &reference)
    );
}

#[test]
fn udev_helper_sets_new_link_without_daemon() {
    let Some(lab) = Lab::new("udev_helper_sets_new_link_without_daemon") else {
        return;
    };
    lab.write_config(STABLE_PER_BOOT);
    lab.ip(&[
        "link", "add", "eth7", "type", "veth", "peer", "name", "other0",
    ]);
    let original = lab.address("eth7");

    // udev passes the final name; the kernel still shows the old one.
    let output = lab.udev_apply("eth7", "tv7");
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    let expected = lab.expected_stable("tv7", "${CONNECTION}/${BOOT}", &original);
    assert!(stdout.contains("MACVEIL_STATE=set\n"), "{stdout}");
    assert!(
        stdout.contains(&format!("MACVEIL_ADDRESS={expected}\n")),
        "{stdout}"
    );
    assert!(stdout.contains("MACVEIL_POLICY=stable\n"), "{stdout}");
    assert!(!stdout.contains("NM_UNMANAGED"), "{stdout}");
    assert_eq!(lab.address("eth7"), expected);
    assert!(!lab.link("eth7").unwrap().up);

    let record = lab.record("tv7").unwrap();
    assert_eq!(record["writer"], "udev");
    assert_eq!(lab.reference("tv7").as_deref(), Some(original.as_str()));

    // After the rename, a daemon keeps the address: it is not the reference.
    lab.ip(&["link", "set", "eth7", "name", "tv7"]);
    let daemon = lab.start_daemon(&["--now"]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(lab.address("tv7"), expected, "{}", daemon.log());
}

#[test]
fn udev_helper_fails_closed() {
    let Some(lab) = Lab::new("udev_helper_fails_closed") else {
        return;
    };
    lab.write_config(STABLE_PER_BOOT);
    lab.ip(&["link", "add", "tvifb", "type", "ifb"]);
    let output = lab.udev_apply("tvifb", "tvifb");
    assert!(
        output.status.success(),
        "udev ignores the output of a failing program"
    );
    let stdout = text(&output.stdout);
    assert!(stdout.contains("MACVEIL_STATE=held-down\n"), "{stdout}");
    assert!(stdout.contains("NM_UNMANAGED=1\n"), "{stdout}");
    assert!(
        stdout.contains("ID_NET_MANAGED_BY=io.macveil.held-down\n"),
        "{stdout}"
    );
    assert!(stdout.contains("MACVEIL_ERROR="), "{stdout}");
    assert!(!lab.link("tvifb").unwrap().up);

    // An invalid configuration fails closed too.
    lab.write_config("[connection]\nethernet.cloned-mac-address=\n");
    lab.ip(&[
        "link", "add", "tv0", "type", "veth", "peer", "name", "other0",
    ]);
    let output = lab.udev_apply("tv0", "tv0");
    let stdout = text(&output.stdout);
    assert!(output.status.success());
    assert!(stdout.contains("MACVEIL_STATE=failed\n"), "{stdout}");
    assert!(stdout.contains("NM_UNMANAGED=1\n"), "{stdout}");

    // A link that is gone by the time the helper runs is reported, not failed.
    lab.write_config(STABLE_PER_BOOT);
    assert!(lab.try_ip(&["link", "del", "tv0"]));
    let output = Command::new(MACVEIL)
        .args(["udev-apply", "--ifindex", "999999", "--name", "tv0"])
        .args(lab.common_args())
        .output()
        .unwrap();
    assert_eq!(text(&output.stdout), "MACVEIL_STATE=gone\n");
}

#[test]
fn udev_helper_leaves_running_links_to_daemon() {
    let Some(lab) = Lab::new("udev_helper_leaves_running_links_to_daemon") else {
        return;
    };
    lab.write_config(STABLE_PER_BOOT);
    lab.ip(&[
        "link", "add", "tv0", "type", "veth", "peer", "name", "other0",
    ]);
    lab.ip(&["link", "set", "tv0", "up"]);
    let original = lab.address("tv0");
    let output = lab.udev_apply("tv0", "tv0");
    let stdout = text(&output.stdout);
    assert!(stdout.contains("MACVEIL_STATE=exposed\n"), "{stdout}");
    assert_eq!(lab.address("tv0"), original);
    assert!(lab.link("tv0").unwrap().up);
}

#[test]
fn udev_helper_times_out_closed() {
    let Some(lab) = Lab::new("udev_helper_times_out_closed") else {
        return;
    };
    lab.write_config(STABLE_PER_BOOT);
    lab.ip(&[
        "link", "add", "tv0", "type", "veth", "peer", "name", "other0",
    ]);
    let original = lab.address("tv0");

    // Another process holds the reference lock, so the helper cannot record the reference and
    // waits until its time limit.
    fs::create_dir_all(lab.state_dir()).unwrap();
    let lock = fs::File::create(lab.state_dir().join("references.lock")).unwrap();
    // SAFETY: flock takes a descriptor that `lock` keeps open for the rest of the test.
    let locked = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
    assert_eq!(locked, 0);

    let started = Instant::now();
    let output = lab.udev_apply("tv0", "tv0");
    let took = started.elapsed();
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "udev ignores the output of a failing program"
    );
    assert_eq!(
        stdout,
        "MACVEIL_STATE=timeout\nNM_UNMANAGED=1\nID_NET_MANAGED_BY=io.macveil.held-down\n"
    );
    assert!(took >= Duration::from_secs(9), "{took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(lab.address("tv0"), original);
    assert!(!lab.link("tv0").unwrap().up);
}

#[test]
fn removed_links_lose_their_references() {
    let Some(lab) = Lab::new("removed_links_lose_their_references") else {
        return;
    };
    lab.write_config(STABLE_PER_BOOT);
    let mut daemon = lab.start_daemon(&[]);

    lab.ip(&[
        "link", "add", "tv0", "type", "veth", "peer", "name", "other0",
    ]);
    let reference = lab.wait_for("the reference of tv0", || lab.reference("tv0"));
    lab.wait_for_change("tv0", &reference);
    lab.ip(&["link", "del", "tv0"]);

    // The next write, for a new link, drops the removed one's reference.
    lab.ip(&[
        "link", "add", "tv1", "type", "veth", "peer", "name", "other1",
    ]);
    lab.wait_for("the reference of tv1", || lab.reference("tv1"));
    assert_eq!(lab.reference("tv0"), None, "{}", daemon.log());

    // A link removed while no daemon runs is forgotten at the next start.
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit().code(), Some(0), "{}", daemon.log());
    lab.ip(&["link", "del", "tv1"]);
    assert!(lab.reference("tv1").is_some());
    let daemon = lab.start_daemon(&[]);
    lab.wait_for("tv1's reference to be forgotten", || {
        lab.reference("tv1").is_none().then_some(())
    });
    drop(daemon);
}
