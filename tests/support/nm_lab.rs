//! A real NetworkManager, with its own D-Bus system bus and udev, isolated from the host.
//!
//! One holder process, started with `unshare --net --mount --uts --ipc --propagation private`,
//! keeps the namespaces alive and prepares its private mount namespace:
//! - a tmpfs on `/run`, for the D-Bus socket, the udev database and NetworkManager's run state;
//! - a sysfs mounted from inside the new network namespace on `/sys`, so that `/sys/class/net`
//!   lists only the lab's links;
//! - a tmpfs on `/dev` with only `null`, `zero`, `full`, `random` and `urandom`, so that udevd
//!   cannot create nodes or symlinks in the host's devtmpfs;
//! - fresh folders of the lab over `/etc/NetworkManager`, `/var/lib/NetworkManager` and
//!   `/var/lib/dbus`. The lab's own machine id is in the last one, NetworkManager's second
//!   choice, and is also mounted over `/etc/machine-id`, its first, when the host has that file;
//! - an empty folder over every udev rules folder, so that udevd loads no module and runs no
//!   program. It still records each link in its database, which is all NetworkManager waits for
//!   before it manages a link. Kernel uevents for devices that belong to no network namespace
//!   (disks, for example) reach every network namespace, so without this the lab's udevd would
//!   act on the host's devices.
//!
//! A system bus (`dbus-daemon` with a configuration of type `system`), `systemd-udevd` and
//! `NetworkManager --no-daemon` then run in those namespaces through `nsenter`, which joins them
//! and executes the daemon without forking. Each daemon is therefore a direct child of the test
//! process, and dropping the lab stops each one by its PID (SIGTERM, then SIGKILL after a grace
//! period), newest first, and the holder last. The namespaces, their mounts and their links
//! disappear with the last of these processes. Should the test process die without unwinding,
//! the kernel kills them all (`PR_SET_PDEATHSIG`).
//!
//! NetworkManager's configuration keeps it off the host as well: it writes no `resolv.conf`
//! (`dns=none`, `rc-manager=unmanaged`), sets no host name (`hostname-mode=none`, and the UTS
//! namespace is private anyway), runs no connectivity check, asks no polkit agent
//! (`auth-polkit=false`) and creates no automatic profile (`no-auto-default=*`). The private bus
//! has no service folder, so D-Bus activation starts nothing (no nm-dispatcher, no hostnamed).
//! Like an installed NetworkManager, it also reads the package's defaults in
//! `/usr/lib/NetworkManager/conf.d`, which the lab leaves in place. Tests add their own
//! configuration files to the lab's `/etc/NetworkManager/conf.d`.
//!
//! What the lab does not provide: Wi-Fi (no wpa_supplicant), DHCP servers, polkit, or
//! NetworkManager's dispatcher scripts. It needs root, `unshare` and `nsenter` (util-linux) and
//! the Debian packages `network-manager`, `dbus`, `udev` and `iproute2`. A lab starts in about
//! 0.2 s and activates a profile in about 0.1 s (NetworkManager 1.42 on Debian 12, 2 shared
//! cores).

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use macveil::MacAddr;
use tempfile::TempDir;

use super::nm_profile::NmProfile;
use super::process::{Process, find_in_path, find_udevd, spawn_logged};
use super::random_uuid;

/// The address of the lab's system bus, inside its mount namespace.
const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";

/// Maximum time a daemon may take to become ready, or a device to reach a state.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Maximum time `nmcli connection up` waits for an activation, in seconds.
const ACTIVATION_TIMEOUT_SECONDS: &str = "30";

/// Interval between two readiness checks.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Lines of each daemon's log quoted in a failure message.
const LOG_TAIL_LINES: usize = 40;

/// Programs the lab runs, each from a package that `.ci/run` installs.
const REQUIRED_PROGRAMS: &[(&str, &str)] = &[
    ("unshare", "util-linux"),
    ("nsenter", "util-linux"),
    ("ip", "iproute2"),
    ("dbus-daemon", "dbus"),
    ("udevadm", "udev"),
    ("NetworkManager", "network-manager"),
    ("nmcli", "network-manager"),
    ("nm-online", "network-manager"),
];

/// Prepares the holder's mount namespace, signals readiness and then keeps the namespaces alive.
///
/// `$1` is the lab folder on the host. `mount -n` keeps every mount out of the host's
/// `/run/mount/utab`. The script checks each mount point first because creating a missing one
/// would write to the host's file system.
const HOLDER_SCRIPT: &str = r#"
set -eu
lab=$1

for dir in /etc/NetworkManager /var/lib/NetworkManager /var/lib/dbus /etc/udev/rules.d; do
    if [ ! -d "$dir" ]; then
        echo "missing folder $dir: install network-manager, dbus and udev" >&2
        exit 1
    fi
done

mount -n -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir /run/dbus /run/udev
mount -n -t sysfs -o nosuid,nodev,noexec sysfs /sys

mount -n -t tmpfs -o mode=0755,nosuid,noexec tmpfs /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8
mknod -m 666 /dev/urandom c 1 9

mount -n --bind "$lab/etc-NetworkManager" /etc/NetworkManager
mount -n --bind "$lab/var-lib-NetworkManager" /var/lib/NetworkManager
mount -n --bind "$lab/var-lib-dbus" /var/lib/dbus
if [ -e /etc/machine-id ]; then
    mount -n --bind "$lab/var-lib-dbus/machine-id" /etc/machine-id
fi

for dir in /etc/udev/rules.d /usr/local/lib/udev/rules.d /usr/lib/udev/rules.d /lib/udev/rules.d; do
    if [ -d "$dir" ]; then
        mount -n --bind "$lab/udev-rules" "$dir"
    fi
done

ip link set lo up
: > "$lab/ready"
exec sleep infinity
"#;

/// The lab's D-Bus system bus: it accepts only root and starts no service on demand.
const DBUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="root"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
"#;

/// NetworkManager's main configuration file, passed with `--config`.
///
/// The keys keep NetworkManager away from everything outside the lab (see the module
/// documentation). Tests add their own settings as files in `conf.d`.
const NETWORK_MANAGER_CONF: &str = "\
[main]
plugins=keyfile
no-auto-default=*
dns=none
rc-manager=unmanaged
systemd-resolved=false
hostname-mode=none
auth-polkit=false

[connectivity]
enabled=false

[logging]
level=INFO
";

/// A running NetworkManager in its own namespaces. Dropping it stops everything it started.
pub struct NmLab {
    /// The lab's folders on the host, removed after `Drop` has stopped every process.
    folder: TempDir,
    /// The holder first, then each daemon in start order.
    processes: Vec<Process>,
    holder_pid: u32,
    machine_id: String,
    startup: Duration,
}

impl NmLab {
    /// Starts the namespaces, the system bus, udevd and NetworkManager.
    ///
    /// `conf_d` contains (file name, contents) pairs written to `/etc/NetworkManager/conf.d` before
    /// NetworkManager starts. Panics with the daemons' logs when any step fails.
    pub fn start(conf_d: &[(&str, &str)]) -> NmLab {
        let started = Instant::now();
        let udevd = check_programs();

        let folder = tempfile::Builder::new()
            .prefix("macveil-nm-lab-")
            .tempdir()
            .expect("failed to create the lab folder");
        let machine_id = random_uuid().replace('-', "");
        write_lab_files(folder.path(), &machine_id, conf_d);

        let mut holder = Command::new("unshare");
        holder
            .args([
                "--net",
                "--mount",
                "--uts",
                "--ipc",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                HOLDER_SCRIPT,
                "sh",
            ])
            .arg(folder.path());
        let holder = spawn_logged(holder, "namespace holder", &folder.path().join("logs"));
        let holder_pid = holder.child.id();

        // From here on the lab owns every process, so a panic in a later step still stops them.
        let mut lab = NmLab {
            folder,
            processes: vec![holder],
            holder_pid,
            machine_id,
            startup: Duration::ZERO,
        };
        let ready_file = lab.folder.path().join("ready");
        lab.wait_until("the namespace holder to mount the lab's folders", |_| {
            ready_file.exists()
        });

        lab.start_system_bus();
        lab.start_udevd(udevd);
        lab.start_network_manager();
        lab.startup = started.elapsed();
        lab
    }

    /// Starts the lab's system bus and waits until it listens.
    fn start_system_bus(&mut self) {
        let config = self.folder.path().join("dbus.conf");
        let config_argument = format!("--config-file={}", config.display());
        self.spawn(
            "dbus-daemon",
            "dbus-daemon",
            &["--nofork", "--nopidfile", &config_argument],
        );
        self.wait_until("dbus-daemon to listen", |lab| {
            lab.inside(SYSTEM_BUS_SOCKET).exists()
        });
    }

    /// Starts udevd, waits until it listens and has recorded the links that exist already
    /// (`lo`).
    fn start_udevd(&mut self, udevd: &str) {
        self.spawn("systemd-udevd", udevd, &["--resolve-names=never"]);
        self.wait_until("systemd-udevd to listen", |lab| {
            lab.inside("/run/udev/control").exists()
        });
        self.run(
            "udevadm",
            &[
                "trigger",
                "--subsystem-match=net",
                "--action=add",
                "--settle",
            ],
        );
    }

    /// Starts NetworkManager in the foreground, logging to stderr (`--debug`), and waits until it
    /// reports its startup complete.
    fn start_network_manager(&mut self) {
        self.spawn(
            "NetworkManager",
            "NetworkManager",
            &[
                "--no-daemon",
                "--debug",
                "--config=/etc/NetworkManager/NetworkManager.conf",
            ],
        );
        let timeout = READY_TIMEOUT.as_secs().to_string();
        let output = self.try_run(
            "nm-online",
            &["--wait-for-startup", "--quiet", "--timeout", &timeout],
        );
        if !output.status.success() {
            self.fail("NetworkManager did not finish starting", &output);
        }
    }

    /// Time from the call to `start` until NetworkManager reported its startup complete.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Returns the machine id made for the lab (32 lower-case hex digits), which NetworkManager
    /// reads as the machine's.
    pub fn machine_id(&self) -> &str {
        &self.machine_id
    }

    /// Host path of the lab's `/etc/NetworkManager`.
    pub fn etc_dir(&self) -> PathBuf {
        self.folder.path().join("etc-NetworkManager")
    }

    /// Host path of the lab's `/var/lib/NetworkManager`.
    pub fn var_lib_dir(&self) -> PathBuf {
        self.folder.path().join("var-lib-NetworkManager")
    }

    /// Host path of the secret key NetworkManager creates in its `/var/lib/NetworkManager` the
    /// first time it needs one (the first activation with a stable address, for example).
    pub fn secret_key_path(&self) -> PathBuf {
        self.var_lib_dir().join("secret_key")
    }

    /// PID of the process that keeps the lab's namespaces alive.
    pub fn holder_pid(&self) -> u32 {
        self.holder_pid
    }

    /// Host path of `path` as the lab's processes see it, through the holder's mount namespace.
    pub fn inside(&self, path: &str) -> PathBuf {
        let relative = path.trim_start_matches('/');
        PathBuf::from(format!("/proc/{}/root", self.holder_pid)).join(relative)
    }

    /// Builds a command that runs `program` in the lab's namespaces, on the lab's system bus.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--target={}", self.holder_pid))
            .args(["--net", "--mount", "--uts", "--ipc", "--"])
            .arg(program)
            .env(
                "DBUS_SYSTEM_BUS_ADDRESS",
                format!("unix:path={SYSTEM_BUS_SOCKET}"),
            )
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        command
    }

    /// Runs `program` in the lab and returns its output, whether it succeeded or not.
    pub fn try_run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("failed to run {program} in the lab: {error}"))
    }

    /// Runs `program` in the lab and returns its standard output. Panics when it fails.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let output = self.try_run(program, args);
        if !output.status.success() {
            self.fail(&format!("{program} {} failed", args.join(" ")), &output);
        }
        String::from_utf8(output.stdout)
            .unwrap_or_else(|error| panic!("{program} printed invalid UTF-8: {error}"))
    }

    /// Runs nmcli in the lab and returns its standard output. Panics when it fails.
    pub fn nmcli(&self, args: &[&str]) -> String {
        self.run("nmcli", args)
    }

    /// Creates a veth pair, `name` with the `address` given and `peer` with a random one, and
    /// waits until NetworkManager lists `name`.
    ///
    /// The peer is brought up and left to NetworkManager as unmanaged, so that `name` gets a
    /// carrier as soon as NetworkManager brings it up. The address is set explicitly because
    /// NetworkManager takes the masked bits of `generate-mac-address-mask` without OUIs from the
    /// link's initial address.
    pub fn add_veth(&self, name: &str, peer: &str, address: MacAddr) {
        let address = address.to_string();
        self.run(
            "ip",
            &[
                "link", "add", name, "address", &address, "type", "veth", "peer", "name", peer,
            ],
        );
        self.run("ip", &["link", "set", peer, "up"]);

        let name_path = format!("/sys/class/net/{name}");
        let peer_path = format!("/sys/class/net/{peer}");
        self.run(
            "udevadm",
            &[
                "trigger",
                "--action=add",
                "--settle",
                &name_path,
                &peer_path,
            ],
        );

        self.wait_for_device(peer, |_| true);
        self.nmcli(&["device", "set", peer, "managed", "no"]);
        self.wait_for_device(name, |_| true);
    }

    /// Marks `ifname` managed and waits until it is ready for activation (state "disconnected"
    /// or later).
    ///
    /// Debian's udev rules mark veth links unmanaged, and so does an administrator who keeps
    /// NetworkManager off a link. The lab runs no udev rules, but setting the flag makes each
    /// test independent of that default.
    pub fn set_managed(&self, ifname: &str) {
        const DISCONNECTED: u32 = 30;
        self.nmcli(&["device", "set", ifname, "managed", "yes"]);
        self.wait_for_device(ifname, |state| state >= DISCONNECTED);
    }

    /// Writes `profile` to the lab's `system-connections` folder (mode 0600, which
    /// NetworkManager requires) and loads it with `nmcli connection load`. Loading a profile
    /// again replaces the earlier version.
    pub fn load_profile(&self, profile: &NmProfile) {
        let file_name = format!("{}.nmconnection", profile.id());
        let host_path = self.etc_dir().join("system-connections").join(&file_name);
        match fs::remove_file(&host_path) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                panic!("failed to replace {}: {error}", host_path.display())
            }
            _ => {}
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&host_path)
            .unwrap_or_else(|error| panic!("failed to create {}: {error}", host_path.display()));
        io::Write::write_all(&mut file, profile.to_keyfile().as_bytes())
            .unwrap_or_else(|error| panic!("failed to write {}: {error}", host_path.display()));
        drop(file);

        let lab_path = format!("/etc/NetworkManager/system-connections/{file_name}");
        self.nmcli(&["connection", "load", &lab_path]);
    }

    /// Activates the profile with `uuid` and waits until NetworkManager reports it activated.
    pub fn activate(&self, uuid: &str) {
        self.nmcli(&[
            "--wait",
            ACTIVATION_TIMEOUT_SECONDS,
            "connection",
            "up",
            "uuid",
            uuid,
        ]);
    }

    /// Reads the address the kernel reports for `ifname` in the lab.
    pub fn link_address(&self, ifname: &str) -> MacAddr {
        let path = self.inside(&format!("/sys/class/net/{ifname}/address"));
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("failed to read {}: {error}", path.display()));
        text.trim()
            .parse()
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
    }

    /// Returns the address NetworkManager reports for `ifname` (`GENERAL.HWADDR`).
    pub fn nm_address(&self, ifname: &str) -> MacAddr {
        let text = self.nmcli(&["--get-values", "GENERAL.HWADDR", "device", "show", ifname]);
        // --get-values escapes each ':' of the value with a backslash.
        let unescaped = text.trim().replace('\\', "");
        unescaped
            .parse()
            .unwrap_or_else(|error| panic!("nmcli GENERAL.HWADDR of {ifname}: {error}"))
    }

    /// Reads a daemon's log (stdout and stderr), by process name.
    pub fn log(&self, name: &str) -> String {
        let process = self
            .processes
            .iter()
            .find(|process| process.name == name)
            .unwrap_or_else(|| panic!("the lab started no process named {name}"));
        fs::read_to_string(&process.log).unwrap_or_default()
    }

    /// Polls `ready` until it returns true. Panics with the logs when a lab process exits first
    /// or after `READY_TIMEOUT`.
    fn wait_until(&mut self, what: &str, ready: impl Fn(&NmLab) -> bool) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            for index in 0..self.processes.len() {
                let status = self.processes[index].child.try_wait();
                if let Ok(Some(status)) = status {
                    let name = &self.processes[index].name;
                    panic!(
                        "{name} exited ({status}) while waiting for {what}\n{}",
                        self.log_tails()
                    );
                }
            }
            if ready(self) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {READY_TIMEOUT:?} waiting for {what}\n{}",
                    self.log_tails()
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Polls NetworkManager until it lists `ifname` with a state code that `accept` accepts.
    fn wait_for_device(&self, ifname: &str, accept: impl Fn(u32) -> bool) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let output = self.try_run(
                "nmcli",
                &["--get-values", "GENERAL.STATE", "device", "show", ifname],
            );
            // The value reads "30 (disconnected)".
            let state = String::from_utf8_lossy(&output.stdout)
                .split_whitespace()
                .next()
                .and_then(|code| code.parse::<u32>().ok());
            if output.status.success() && state.is_some_and(&accept) {
                return;
            }
            if Instant::now() > deadline {
                self.fail(
                    &format!("timed out waiting for NetworkManager's device {ifname}"),
                    &output,
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Starts a daemon in the lab; its stdout and stderr go to `logs/<name>.log`.
    fn spawn(&mut self, name: &'static str, program: &str, args: &[&str]) {
        let mut command = self.command(program);
        command
            .args(args)
            .env("SYSTEMD_LOG_TARGET", "console")
            .env("SYSTEMD_LOG_COLOR", "0");
        let process = spawn_logged(command, name, &self.folder.path().join("logs"));
        self.processes.push(process);
    }

    /// Collects the last lines of every process's log, for failure messages.
    fn log_tails(&self) -> String {
        let mut text = String::new();
        for process in &self.processes {
            let log = fs::read_to_string(&process.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            text.push_str(&format!(
                "--- {} log (last {} lines) ---\n",
                process.name,
                tail.len()
            ));
            for line in tail {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    /// Panics with a command's output and the daemons' logs.
    fn fail(&self, what: &str, output: &Output) -> ! {
        panic!(
            "{what} ({})\nstdout: {}\nstderr: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim(),
            self.log_tails()
        );
    }
}

impl Drop for NmLab {
    fn drop(&mut self) {
        for process in self.processes.iter_mut().rev() {
            if let Err(error) = process.stop() {
                eprintln!(
                    "failed to stop {} (pid {}): {error}",
                    process.name,
                    process.child.id()
                );
            }
        }
    }
}

/// Checks that every program the lab runs is installed and returns systemd-udevd's path.
///
/// Panics with the packages to install: the tests that use the lab run in CI, so a missing
/// package is an error there, not a reason to skip.
fn check_programs() -> &'static str {
    let mut missing: Vec<String> = REQUIRED_PROGRAMS
        .iter()
        .filter(|(program, _)| find_in_path(program).is_none())
        .map(|(program, package)| format!("{program} (package {package})"))
        .collect();

    let udevd = find_udevd();
    if udevd.is_none() {
        missing.push("systemd-udevd (package udev)".to_owned());
    }

    assert!(
        missing.is_empty(),
        "the NetworkManager lab needs {}; install them with: apt-get install \
         --no-install-recommends network-manager dbus udev iproute2",
        missing.join(", ")
    );
    udevd.expect("checked above")
}

/// Creates the lab's folders and configuration files on the host.
fn write_lab_files(folder: &Path, machine_id: &str, conf_d: &[(&str, &str)]) {
    let etc = folder.join("etc-NetworkManager");
    for sub in [
        etc.join("conf.d"),
        etc.join("system-connections"),
        folder.join("var-lib-NetworkManager"),
        folder.join("var-lib-dbus"),
        folder.join("udev-rules"),
        folder.join("logs"),
    ] {
        fs::create_dir_all(&sub)
            .unwrap_or_else(|error| panic!("failed to create {}: {error}", sub.display()));
    }

    let files = [
        (
            folder.join("var-lib-dbus/machine-id"),
            format!("{machine_id}\n"),
        ),
        (folder.join("dbus.conf"), DBUS_CONFIG.to_owned()),
        (
            etc.join("NetworkManager.conf"),
            NETWORK_MANAGER_CONF.to_owned(),
        ),
    ];
    for (path, contents) in files {
        fs::write(&path, contents)
            .unwrap_or_else(|error| panic!("failed to write {}: {error}", path.display()));
    }

    for (name, contents) in conf_d {
        assert!(
            !name.contains('/') && name.ends_with(".conf"),
            "conf.d file name {name:?} must be a plain name ending in .conf"
        );
        let path = etc.join("conf.d").join(name);
        fs::write(&path, contents)
            .unwrap_or_else(|error| panic!("failed to write {}: {error}", path.display()));
    }
}
