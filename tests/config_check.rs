//! `macveil config check` run as a user runs it: the built binary, temporary configuration
//! files, and a fake sysfs tree so that the listed links do not depend on the machine.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The configuration NetworkManager's documentation recommends.
const NM_PRIVACY_FILE: &str = "[device]
wifi.scan-rand-mac-address=yes

[connection]
wifi.cloned-mac-address=stable
ethernet.cloned-mac-address=stable
connection.stable-id=${CONNECTION}/${BOOT}
";

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// Creates a temporary folder with a sysfs tree that contains lo, eth0 (PCI, e1000e),
    /// wlan0 (PCI, iwlwifi) and veth0 (no device).
    fn new() -> Fixture {
        let fixture = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(fixture.root()).unwrap();
        fixture.add_link("lo", 1, 772, "00:00:00:00:00:00", None, &[]);
        fixture.add_link(
            "eth0",
            2,
            1,
            "3c:22:fb:01:02:03",
            Some(("pci", "e1000e")),
            &[],
        );
        fixture.add_link(
            "wlan0",
            3,
            1,
            "a4:c3:f0:11:22:33",
            Some(("pci", "iwlwifi")),
            &["phy80211"],
        );
        fixture.add_link("veth0", 4, 1, "02:00:00:00:00:09", None, &[]);
        fs::write(fixture.sysfs().join("class/net/veth0/iflink"), "5\n").unwrap();
        fixture
    }

    fn sysfs(&self) -> PathBuf {
        self.dir.path().join("sys")
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn add_link(
        &self,
        name: &str,
        index: u32,
        link_type: u32,
        address: &str,
        device: Option<(&str, &str)>,
        dirs: &[&str],
    ) {
        let sysfs = self.sysfs();
        let dir = sysfs.join("class/net").join(name);
        fs::create_dir_all(&dir).unwrap();
        for (file, text) in [
            ("ifindex", index.to_string()),
            ("iflink", index.to_string()),
            ("type", link_type.to_string()),
            ("address", address.to_string()),
            ("addr_assign_type", String::from("0")),
            ("uevent", format!("INTERFACE={name}")),
        ] {
            fs::write(dir.join(file), format!("{text}\n")).unwrap();
        }
        for sub in dirs {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        if let Some((bus, driver)) = device {
            let device_dir = sysfs.join("devices").join(name);
            fs::create_dir_all(&device_dir).unwrap();
            let bus_dir = sysfs.join("bus").join(bus);
            let driver_dir = bus_dir.join("drivers").join(driver);
            fs::create_dir_all(&driver_dir).unwrap();
            symlink(&bus_dir, device_dir.join("subsystem")).unwrap();
            symlink(&driver_dir, device_dir.join("driver")).unwrap();
            symlink(&device_dir, dir.join("device")).unwrap();
        }
    }

    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    fn check(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_macveil"))
            .args(["config", "check", "--sysfs"])
            .arg(self.sysfs())
            .args(["--root"])
            .arg(self.root())
            .args(args)
            .env_remove("MACVEIL_LOG")
            .output()
            .unwrap()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn path_arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Returns the block of text output that describes one link, with each run of spaces inside a
/// line reduced to one so that checks do not depend on column widths.
fn link_block(text: &str, name: &str) -> String {
    let start = text
        .find(&format!("\n{name} ("))
        .unwrap_or_else(|| panic!("no block for {name} in:\n{text}"));
    let rest = &text[start + 1..];
    let end = rest.find("\n\n").unwrap_or(rest.len());
    rest[..end]
        .lines()
        .map(|line| {
            let indent = line.len() - line.trim_start().len();
            let words: Vec<&str> = line.split_whitespace().collect();
            format!("{}{}", " ".repeat(indent), words.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn check_without_files_shows_embedded_default() {
    let fixture = Fixture::new();
    let output = fixture.check(&[]);
    let text = stdout(&output);

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(text.starts_with(
        "configuration: the embedded default (no configuration file exists)\n\
         the configuration is valid\n"
    ));

    let eth0 = link_block(&text, "eth0");
    assert!(
        eth0.starts_with("eth0 (ethernet, driver e1000e, device on pci)\n"),
        "{eth0}"
    );
    assert!(
        eth0.contains("  managed: yes (physical device on pci)\n"),
        "{eth0}"
    );
    assert!(
        eth0.contains(
            "  ethernet.cloned-mac-address stable \
             [connection] (embedded default):6"
        ),
        "{eth0}"
    );

    let wlan0 = link_block(&text, "wlan0");
    assert!(wlan0.contains("wifi.cloned-mac-address"), "{wlan0}");
    assert!(
        wlan0.contains(
            "  wifi.scan-rand-mac-address yes \
             [device] (embedded default):2"
        ),
        "{wlan0}"
    );

    let veth0 = link_block(&text, "veth0");
    assert!(
        veth0.starts_with("veth0 (veth, no driver, no device)\n"),
        "{veth0}"
    );
    assert!(
        veth0.contains("  managed: no (virtual link (veth)"),
        "{veth0}"
    );

    // The values of one link line up in a column.
    let raw_eth0 = text
        .split("\n\n")
        .find(|block| block.starts_with("eth0 ("))
        .unwrap();
    let value_columns: Vec<usize> = raw_eth0
        .lines()
        .skip(2)
        .map(|line| {
            let key_end = 2 + line[2..].find(' ').unwrap();
            key_end + line[key_end..].find(|c: char| c != ' ').unwrap()
        })
        .collect();
    assert_eq!(value_columns.len(), 6, "{raw_eth0}");
    assert!(
        value_columns
            .iter()
            .all(|&column| column == value_columns[0]),
        "{raw_eth0}"
    );

    let lo = link_block(&text, "lo");
    assert_eq!(
        lo,
        "lo (loopback, no driver, no device)\n  managed: no (loopback link)"
    );
}

#[test]
fn check_file_argument_reports_origins() {
    let fixture = Fixture::new();
    let file = fixture.write(
        "custom.conf",
        "[connection-eth0]\nmatch-device=interface-name:eth0\nethernet.cloned-mac-address=random\n\n\
         [device-veth]\nmatch-device=type:veth\nmacveil.manage=yes\nmacveil.on-failure=warn\n",
    );
    let output = fixture.check(&[path_arg(&file)]);
    let text = stdout(&output);
    let file_name = file.display().to_string();

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        text.starts_with(&format!(
            "configuration: the embedded default, then {file_name}\n"
        )),
        "{text}"
    );

    let eth0 = link_block(&text, "eth0");
    assert!(
        eth0.contains(&format!(
            "  ethernet.cloned-mac-address random \
             [connection-eth0] {file_name}:3"
        )),
        "{eth0}"
    );

    let wlan0 = link_block(&text, "wlan0");
    assert!(
        wlan0.contains("  wifi.cloned-mac-address stable [connection] (embedded default):5"),
        "{wlan0}"
    );

    let veth0 = link_block(&text, "veth0");
    assert!(
        veth0.contains(&format!(
            "  managed: yes (macveil.manage in [device-veth] {file_name}:7)"
        )),
        "{veth0}"
    );
    assert!(
        veth0.contains(&format!(
            "  macveil.on-failure warn \
             [device-veth] {file_name}:8"
        )),
        "{veth0}"
    );
}

#[test]
fn check_mgmt_dropin_keeps_other_links_protected() {
    let fixture = Fixture::new();
    fixture.write(
        "root/etc/macveil/conf.d/50-mgmt.conf",
        "[device-mgmt]\nmatch-device=interface-name:mgmt0\nmacveil.manage=no\n",
    );
    let output = fixture.check(&[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");

    let eth0 = link_block(&text, "eth0");
    assert!(
        eth0.contains("ethernet.cloned-mac-address stable [connection] (embedded default):6"),
        "{eth0}"
    );
    let wlan0 = link_block(&text, "wlan0");
    assert!(
        wlan0.contains("wifi.cloned-mac-address stable [connection] (embedded default):5"),
        "{wlan0}"
    );
}

#[test]
fn check_warns_managed_link_preserved_by_default() {
    let fixture = Fixture::new();
    let file = fixture.write(
        "stop.conf",
        "[connection-stop]\nmatch-device=interface-name:eth0\nstop-match=yes\n",
    );
    let output = fixture.check(&[path_arg(&file)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let warning = format!(
        "eth0: managed, but stop-match in [connection-stop] {}:3 ended the search before a \
         section set ethernet.cloned-mac-address, so it keeps its current address (the \
         default, preserve)",
        file.display()
    );
    let errors = stderr(&output);
    assert!(
        errors.contains(&format!("macveil: warning: {warning}")),
        "{errors}"
    );
    let eth0 = link_block(&stdout(&output), "eth0");
    assert!(
        eth0.contains("  WARNING: managed, but stop-match"),
        "{eth0}"
    );
    assert!(!errors.contains("wlan0"), "{errors}");

    let output = fixture.check(&[path_arg(&file), "--json"]);
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let links = report["links"].as_array().unwrap();
    let eth0 = links.iter().find(|link| link["name"] == "eth0").unwrap();
    assert!(
        eth0["warning"].as_str().unwrap().contains("stop-match"),
        "{eth0}"
    );
    let wlan0 = links.iter().find(|link| link["name"] == "wlan0").unwrap();
    assert!(wlan0.get("warning").is_none(), "{wlan0}");
}

#[test]
fn check_invalid_file_exits_2_with_location() {
    let fixture = Fixture::new();
    let file = fixture.write(
        "bad.conf",
        "[device]\nwifi.scan-rand-mac-address=perhaps\n\n[connection]\n\
         ethernet.cloned-mac-address=stabel\n",
    );
    let output = fixture.check(&[path_arg(&file)]);
    let name = file.display();

    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        format!(
            "macveil: error: {name}:2: invalid value 'perhaps' for wifi.scan-rand-mac-address \
             in [device]: expected yes, no, true, false, on, off, 1 or 0 (in any case)\n\
             macveil: error: {name}:5: invalid value 'stabel' for ethernet.cloned-mac-address \
             in [connection]: expected permanent, preserve, random, stable, or a unicast address \
             such as 02:1a:2b:3c:4d:5e\n\
             macveil: the configuration is invalid (2 problems); the daemon would not start \
             with it, and a reload would keep the running policy\n"
        )
    );
}

#[test]
fn check_syntax_error_exits_2() {
    let fixture = Fixture::new();
    let file = fixture.write("syntax.conf", "wifi.cloned-mac-address=random\n");
    let output = fixture.check(&[path_arg(&file)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).starts_with(&format!(
            "macveil: error: {}:1: key 'wifi.cloned-mac-address' comes before any [section] \
             header",
            file.display()
        )),
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_missing_file_exits_2() {
    let fixture = Fixture::new();
    let missing = fixture.dir.path().join("missing.conf");
    let output = fixture.check(&[path_arg(&missing)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).starts_with(&format!(
            "macveil: error: cannot read {}:",
            missing.display()
        )),
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_warnings_keep_exit_0() {
    let fixture = Fixture::new();
    let file = fixture.write(
        "typo.conf",
        "[connection]\nethernet.cloned-mac-adress=random\n",
    );
    let output = fixture.check(&[path_arg(&file)]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        stderr(&output),
        format!(
            "macveil: warning: {}:2: unknown key 'ethernet.cloned-mac-adress' in [connection] is \
             ignored; did you mean ethernet.cloned-mac-address?\n",
            file.display()
        )
    );
}

#[test]
fn check_reads_macveil_files_under_root() {
    let fixture = Fixture::new();
    fixture.write("root/etc/macveil/macveil.conf", NM_PRIVACY_FILE);
    fixture.write(
        "root/etc/macveil/conf.d/50-eth.conf",
        "[connection]\nethernet.cloned-mac-address=random\n",
    );
    let output = fixture.check(&[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let root = fixture.root();
    let main = root.join("etc/macveil/macveil.conf").display().to_string();
    let dropin = root
        .join("etc/macveil/conf.d/50-eth.conf")
        .display()
        .to_string();
    assert!(
        text.starts_with(&format!(
            "configuration: the embedded default, then {main}, then {dropin}\n"
        )),
        "{text}"
    );
    let eth0 = link_block(&text, "eth0");
    assert!(
        eth0.contains(&format!("random [connection] {dropin}:2")),
        "{eth0}"
    );
    let wlan0 = link_block(&text, "wlan0");
    assert!(
        wlan0.contains(&format!("stable [connection] {main}:5")),
        "{wlan0}"
    );
}

#[test]
fn check_nm_config_applies_hiding_rule() {
    let fixture = Fixture::new();
    fixture.write(
        "root/usr/lib/NetworkManager/conf.d/20-mac.conf",
        "[connection]\nwifi.cloned-mac-address=permanent\n",
    );
    fixture.write(
        "root/etc/NetworkManager/conf.d/20-mac.conf",
        "[connection]\nwifi.cloned-mac-address=random\n",
    );
    fixture.write(
        "root/etc/NetworkManager/NetworkManager.conf",
        "[main]\nplugins=keyfile\n",
    );

    let output = fixture.check(&["--nm-config", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["embedded_default_only"], false);

    let root = fixture.root();
    let files: Vec<String> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        files,
        [
            String::from("(embedded default)"),
            root.join("etc/NetworkManager/NetworkManager.conf")
                .display()
                .to_string(),
            root.join("etc/NetworkManager/conf.d/20-mac.conf")
                .display()
                .to_string(),
        ]
    );

    let wlan0 = report["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|link| link["name"] == "wlan0")
        .unwrap();
    assert_eq!(wlan0["type"], "wifi");
    assert_eq!(wlan0["managed"], true);
    let cloned = &wlan0["settings"][0];
    assert_eq!(cloned["key"], "wifi.cloned-mac-address");
    assert_eq!(cloned["value"], "random");
    assert_eq!(cloned["source"], "configured");
    assert_eq!(cloned["section"], "connection");
    assert_eq!(cloned["line"], 2);
}

#[test]
fn check_json_lists_every_link() {
    let fixture = Fixture::new();
    let output = fixture.check(&["--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();

    assert_eq!(report["valid"], true);
    assert_eq!(report["embedded_default_only"], true);
    let names: Vec<&str> = report["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|link| link["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lo", "eth0", "wlan0", "veth0"]);

    let eth0 = &report["links"][1];
    assert_eq!(eth0["driver"], "e1000e");
    assert_eq!(eth0["device"], true);
    assert_eq!(eth0["subsystem"], "pci");
    assert_eq!(eth0["reason"], "physical device on pci");
    let on_failure = eth0["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|setting| setting["key"] == "macveil.on-failure")
        .unwrap();
    assert_eq!(on_failure["value"], "down");
    assert_eq!(on_failure["source"], "default");
    assert!(on_failure.get("file").is_none());
}

#[test]
fn check_json_invalid_reports_errors() {
    let fixture = Fixture::new();
    let file = fixture.write("bad.conf", "[device]\nmacveil.on-failure=explode\n");
    let output = fixture.check(&["--json", path_arg(&file)]);
    assert_eq!(output.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(
        report["errors"][0],
        format!(
            "{}:2: invalid value 'explode' for macveil.on-failure in [device]: expected down or \
             warn",
            file.display()
        )
    );
}

#[test]
fn check_reads_this_namespace_sysfs() {
    // The real /sys of the test's network namespace; every namespace has a loopback link.
    let output = Command::new(env!("CARGO_BIN_EXE_macveil"))
        .args(["config", "check", "--json", "--root"])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let lo = report["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|link| link["name"] == "lo")
        .expect("no loopback link in /sys/class/net");
    assert_eq!(lo["type"], "loopback");
    assert_eq!(lo["managed"], false);
}

/// A network namespace that is deleted when the guard is dropped, even when the test fails.
struct NamespaceGuard(String);

impl NamespaceGuard {
    fn create(name: &str) -> NamespaceGuard {
        let status = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .unwrap();
        assert!(status.success(), "ip netns add {name} failed");
        NamespaceGuard(name.to_string())
    }
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn check_driver_match_uses_kernel_driver() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIPPED check_driver_match_uses_kernel_driver: needs root to create a network \
             namespace"
        );
        return;
    }
    let namespace = format!("mvc-{}", std::process::id());
    let _guard = NamespaceGuard::create(&namespace);
    let status = Command::new("ip")
        .args(["-n", &namespace, "link", "add", "tv0", "type", "veth"])
        .args(["peer", "name", "tp0"])
        .status()
        .unwrap();
    assert!(status.success());

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("driver.conf");
    fs::write(
        &file,
        "[device-veth]\nmatch-device=driver:veth\nmacveil.manage=yes\n",
    )
    .unwrap();
    // `ip netns exec` mounts the namespace's own sysfs, as the daemon's namespace sees it.
    let output = Command::new("ip")
        .args(["netns", "exec", &namespace, env!("CARGO_BIN_EXE_macveil")])
        .args(["config", "check", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let links = report["links"].as_array().unwrap();
    for name in ["tv0", "tp0"] {
        let link = links
            .iter()
            .find(|link| link["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {report}"));
        assert_eq!(link["driver"], "veth", "{link}");
        assert_eq!(link["type"], "veth", "{link}");
        assert_eq!(link["managed"], true, "{link}");
    }
}

#[test]
fn check_warns_explicit_permanent_address() {
    let fixture = Fixture::new();
    let file = fixture.write(
        "fixed.conf",
        "[connection-fixed]\nmatch-device=interface-name:eth0,interface-name:wlan0\n\
         ethernet.cloned-mac-address=3c:22:fb:01:02:03\n\
         wifi.cloned-mac-address=02:11:22:33:44:55\n",
    );
    let output = fixture.check(&[path_arg(&file)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let errors = stderr(&output);
    let warning = format!(
        "macveil: warning: eth0: ethernet.cloned-mac-address ([connection-fixed] {}:3) is the \
         link's permanent address, so the daemon keeps the link down",
        file.display()
    );
    assert!(errors.contains(&warning), "{errors}");
    // Another explicit address is what the user asked for.
    assert!(!errors.contains("wlan0"), "{errors}");
    let eth0 = link_block(&stdout(&output), "eth0");
    assert!(
        eth0.contains("  WARNING: ethernet.cloned-mac-address"),
        "{eth0}"
    );
}
