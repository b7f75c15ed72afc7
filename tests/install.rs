//! `macveil install` and `macveil uninstall` into a temporary root, and the systemd unit's
//! sandboxing score. The restore test runs the daemon on a namespace it creates, as root.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const MACVEIL: &str = env!("CARGO_BIN_EXE_macveil");

/// The highest exposure level `systemd-analyze security` may give the unit.
const MAX_EXPOSURE: f64 = 2.0;

fn macveil(args: &[&str]) -> Output {
    Command::new(MACVEIL).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Returns the overall exposure level `systemd-analyze security --offline=true` gives the unit
/// file, or `None` (after saying why) when systemd-analyze is not installed.
fn exposure(unit: &Path) -> Option<f64> {
    let output = match Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(unit)
        .output()
    {
        Ok(output) => output,
        Err(err) => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED unit exposure check: cannot run systemd-analyze ({err}); install systemd"
            );
            return None;
        }
    };
    let report = text(&output.stdout);
    let line = report
        .lines()
        .find(|line| line.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no overall exposure level in:\n{report}{}",
                text(&output.stderr)
            )
        });
    let value = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("cannot read the level in '{line}'"));
    Some(value)
}

#[test]
fn unit_exposure_is_at_most_two() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/macveil.service");
    let Some(level) = exposure(&shipped) else {
        return;
    };
    assert!(level <= MAX_EXPOSURE, "exposure {level} > {MAX_EXPOSURE}");

    // The unit install writes with --nm-config is sandboxed the same way.
    let root = tempfile::tempdir().unwrap();
    let output = macveil(&[
        "install",
        "--root",
        root.path().to_str().unwrap(),
        "--nm-config",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let installed = root.path().join("etc/systemd/system/macveil.service");
    let level = exposure(&installed).unwrap();
    assert!(level <= MAX_EXPOSURE, "exposure {level} > {MAX_EXPOSURE}");
}

#[test]
fn install_and_uninstall_into_root() {
    let root = tempfile::tempdir().unwrap();
    let root_arg = root.path().to_str().unwrap();
    let output = macveil(&["install", "--root", root_arg]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let listing = text(&output.stdout);

    let path = |relative: &str| root.path().join(relative);
    for (file, file_mode) in [
        ("usr/local/bin/macveil", 0o755),
        ("etc/systemd/system/macveil.service", 0o644),
        ("etc/udev/rules.d/81-macveil.rules", 0o644),
        ("usr/lib/systemd/system-sleep/macveil", 0o755),
        ("etc/macveil/macveil.conf", 0o644),
        ("var/lib/macveil/secret_key", 0o600),
    ] {
        assert!(path(file).exists(), "{file} missing:\n{listing}");
        assert_eq!(mode(&path(file)), file_mode, "{file}");
        assert!(
            listing.contains(&format!("created    {}", path(file).display())),
            "{listing}"
        );
    }
    assert_eq!(
        fs::read(path("usr/local/bin/macveil")).unwrap(),
        fs::read(MACVEIL).unwrap()
    );
    let rule = fs::read_to_string(path("etc/udev/rules.d/81-macveil.rules")).unwrap();
    assert!(
        rule.contains("IMPORT{program}=\"/usr/local/bin/macveil udev-apply"),
        "{rule}"
    );
    let hook = fs::read_to_string(path("usr/lib/systemd/system-sleep/macveil")).unwrap();
    assert!(hook.contains("SIGUSR1"), "{hook}");

    // The installed configuration is valid and is the default policy.
    let config = path("etc/macveil/macveil.conf");
    let check = macveil(&["config", "check", config.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check.stderr));

    // Installing again replaces nothing of the administrator's.
    let key = fs::read(path("var/lib/macveil/secret_key")).unwrap();
    fs::write(
        &config,
        "[connection]\nethernet.cloned-mac-address=random\n",
    )
    .unwrap();
    let again = macveil(&["install", "--root", root_arg]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(fs::read(path("var/lib/macveil/secret_key")).unwrap(), key);
    assert!(fs::read_to_string(&config).unwrap().contains("random"));

    // --restore would change this system's links, not the image's, so it needs --state-dir.
    let output = macveil(&["uninstall", "--root", root_arg, "--restore"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("give --state-dir"),
        "{}",
        text(&output.stderr)
    );
    assert!(path("etc/systemd/system/macveil.service").exists());

    // Uninstalling keeps the key and configuration unless purged.
    let output = macveil(&["uninstall", "--root", root_arg]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(!path("etc/systemd/system/macveil.service").exists());
    assert!(!path("etc/udev/rules.d/81-macveil.rules").exists());
    assert!(!path("usr/lib/systemd/system-sleep/macveil").exists());
    assert!(!path("usr/local/bin/macveil").exists());
    assert!(path("var/lib/macveil/secret_key").exists());
    assert!(text(&output.stdout).contains("--purge"));

    let purge = macveil(&["uninstall", "--root", root_arg, "--purge"]);
    assert!(purge.status.success(), "{}", text(&purge.stderr));
    assert!(!path("var/lib/macveil/secret_key").exists());
    assert!(!config.exists());
}

#[test]
fn uninstall_restore_puts_addresses_back() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED uninstall_restore_puts_addresses_back: needs root to create network namespaces"
        );
        return;
    }
    let namespace = format!("mvi-{}", std::process::id());
    let _guard = NamespaceGuard::create(&namespace);
    let ip = |args: &[&str]| {
        let output = Command::new("ip")
            .args(["-n", &namespace])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "ip {args:?}: {}",
            text(&output.stderr)
        );
        text(&output.stdout)
    };
    let address = |name: &str| {
        let json: serde_json::Value =
            serde_json::from_str(&ip(&["-j", "link", "show", "dev", name])).unwrap();
        json[0]["address"].as_str().unwrap().to_string()
    };

    let root = tempfile::tempdir().unwrap();
    let root_arg = root.path().to_str().unwrap();
    let state = root.path().join("run/macveil");
    let config = root.path().join("test.conf");
    fs::write(
        &config,
        "[connection-test]\nmatch-device=interface-name:tv*\nethernet.cloned-mac-address=random\n",
    )
    .unwrap();
    ip(&[
        "link", "add", "tv0", "type", "veth", "peer", "name", "other0",
    ]);
    let original = address("tv0");

    let daemon = Command::new(MACVEIL)
        .args(["daemon", "--netns", &namespace, "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = ChildGuard(Some(daemon));
    let deadline = Instant::now() + Duration::from_secs(5);
    while address("tv0") == original {
        assert!(Instant::now() < deadline, "the daemon never changed tv0");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut child = daemon.0.take().unwrap();
    // SAFETY: kill has no memory preconditions; the pid is this test's own child, not yet
    // reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());

    let output = macveil(&[
        "uninstall",
        "--root",
        root_arg,
        "--restore",
        "--netns",
        &namespace,
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("restored   tv0"),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(address("tv0"), original);
    // The peer was never changed by macveil, so it was not touched.
    assert!(!text(&output.stdout).contains("other0"));
}

#[test]
fn uninstall_restore_after_daemon_restart() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED uninstall_restore_after_daemon_restart: needs root to create network \
             namespaces"
        );
        return;
    }
    let namespace = format!("mvr-{}", std::process::id());
    let _guard = NamespaceGuard::create(&namespace);
    let ip = |args: &[&str]| {
        let output = Command::new("ip")
            .args(["-n", &namespace])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "ip {args:?}: {}",
            text(&output.stderr)
        );
        text(&output.stdout)
    };
    let address = |name: &str| {
        let json: serde_json::Value =
            serde_json::from_str(&ip(&["-j", "link", "show", "dev", name])).unwrap();
        json[0]["address"].as_str().unwrap().to_string()
    };

    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("run/macveil");
    let config = root.path().join("test.conf");
    fs::write(
        &config,
        "[connection-test]\nmatch-device=interface-name:tv*\nethernet.cloned-mac-address=random\n",
    )
    .unwrap();
    let names = ["tv0", "tv1", "tv2"];
    for (index, name) in names.iter().enumerate() {
        let peer = format!("peer{index}");
        ip(&["link", "add", name, "type", "veth", "peer", "name", &peer]);
    }
    let originals: Vec<String> = names.iter().map(|name| address(name)).collect();

    let start_daemon = || {
        let daemon = Command::new(MACVEIL)
            .args(["daemon", "--netns", &namespace, "--config"])
            .arg(&config)
            .arg("--state-dir")
            .arg(&state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        ChildGuard(Some(daemon))
    };
    let stop_daemon = |mut guard: ChildGuard| {
        let mut child = guard.0.take().unwrap();
        // SAFETY: kill has no memory preconditions; the pid is this test's own child, not yet
        // reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let mut errors = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut errors).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "daemon exited with {status}: {errors}");
    };
    let statuses = || -> Vec<String> {
        let Ok(data) = fs::read(state.join("links.json")) else {
            return vec![String::new(); names.len()];
        };
        let json: serde_json::Value = serde_json::from_slice(&data).unwrap();
        names
            .iter()
            .map(|name| {
                json["links"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|record| record["ifname"] == *name)
                    .map(|record| record["status"].as_str().unwrap().to_string())
                    .unwrap_or_default()
            })
            .collect()
    };
    let wait_for = |status: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while statuses().iter().any(|found| found != status) {
            assert!(
                Instant::now() < deadline,
                "records never all became {status}: {:?}",
                statuses()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };

    let daemon = start_daemon();
    wait_for("set");
    stop_daemon(daemon);
    let changed: Vec<String> = names.iter().map(|name| address(name)).collect();
    for (original, now) in originals.iter().zip(&changed) {
        assert_ne!(original, now);
    }

    // A restarted daemon finds each address already hidden and records it as kept.
    let daemon = start_daemon();
    wait_for("kept");
    stop_daemon(daemon);

    let output = macveil(&[
        "uninstall",
        "--root",
        root.path().to_str().unwrap(),
        "--restore",
        "--netns",
        &namespace,
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    for (name, original) in names.iter().zip(&originals) {
        assert!(stdout.contains(&format!("restored   {name}\n")), "{stdout}");
        assert_eq!(&address(name), original, "{name}");
    }
    assert!(!stdout.contains("peer"), "{stdout}");
}

struct NamespaceGuard(String);

impl NamespaceGuard {
    fn create(name: &str) -> NamespaceGuard {
        let status = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .unwrap();
        assert!(status.success());
        NamespaceGuard(name.to_string())
    }
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Kills and reaps the child when dropped, in case the test fails before it stops it.
struct ChildGuard(Option<std::process::Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
