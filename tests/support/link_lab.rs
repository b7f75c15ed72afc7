//! A lab for watching new links from the outside: a network namespace where test links appear,
//! optionally with its own systemd-udevd and the macveil daemon, and a second network namespace
//! that contains the far end of every test link.
//!
//! The lab's holder process, started with `unshare --net --mount --uts --ipc --propagation
//! private`, prepares its private mount namespace:
//! - a tmpfs on `/run`, for udev's control socket, database and rules (`/run/udev/rules.d`),
//!   udev's link configuration (`/run/systemd/network`) and the daemon's state (`/run/macveil`);
//! - a sysfs mounted from inside the new network namespace on `/sys`, so that udevd and the
//!   daemon see only the lab's links;
//! - a tmpfs on `/dev` with only `null`, `zero`, `full`, `random` and `urandom`;
//! - an empty folder over every other udev rules folder and every `.link` folder, so that udevd
//!   runs only the rules and link files a test installs. Kernel uevents for devices that belong
//!   to no network namespace (disks, for example) reach every network namespace, and with no
//!   rule for them the lab's udevd only records them in the lab's own database.
//!
//! The capture holder (`unshare --net`) owns the second namespace. Test links are created from
//! there as veth pairs, `ip link add PEER up type veth peer [name NAME] address ADDR netns LAB`:
//! the kernel registers the lab's end first (with its address, and announces it), then the
//! peer, and raises the peer, all under the RTNL lock. Nothing can raise the lab's end before
//! the request finishes, so every frame the lab's end ever transmits reaches the peer, where a
//! capture records it.
//!
//! Every process is a direct child of the test process (`nsenter` executes the program without
//! forking), stopped by PID when the lab drops, and killed by the kernel should the test
//! process die without unwinding (`PR_SET_PDEATHSIG`). The namespaces disappear with their
//! last process. The lab never touches the host's links or the host's `/run`.
//!
//! It needs root, `unshare` and `nsenter` (util-linux), `ip` (iproute2) and, for a lab with
//! udev, `systemd-udevd` and `udevadm` (udev).

use std::fmt::Write as _;
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use macveil::MacAddr;
use macveil::link::{LinkHandle, LinkOps, Netns};
use tempfile::TempDir;

use super::process::{
    Process, find_in_path, find_udevd, send_signal, spawn_logged, spawn_logged_group,
};

/// Maximum time a process may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Maximum time the daemon may take to exit after SIGTERM.
const DAEMON_EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Interval between two readiness checks.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Lines of each process's log quoted in a failure message.
const LOG_TAIL_LINES: usize = 30;

/// The lab's udev database folder, inside its mount namespace.
pub const UDEV_DATABASE: &str = "/run/udev/data";

/// Prepares the lab's mount namespace, signals readiness and keeps the namespaces alive.
///
/// `$1` is the lab folder on the host. `mount -n` keeps every mount out of the host's
/// `/run/mount/utab`. Only folders that exist are covered, because creating a missing mount
/// point would write to the host's file system.
const LAB_HOLDER_SCRIPT: &str = r#"
set -eu
lab=$1

mount -n -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p /run/udev/rules.d /run/udev/data /run/systemd/network /run/macveil
mount -n -t sysfs -o nosuid,nodev,noexec sysfs /sys

mount -n -t tmpfs -o mode=0755,nosuid,noexec tmpfs /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8
mknod -m 666 /dev/urandom c 1 9

for dir in /etc/udev/rules.d /usr/local/lib/udev/rules.d /usr/lib/udev/rules.d /lib/udev/rules.d \
    /etc/systemd/network /usr/local/lib/systemd/network /usr/lib/systemd/network \
    /lib/systemd/network; do
    if [ -d "$dir" ]; then
        mount -n --bind "$lab/empty" "$dir"
    fi
done

ip link set lo up
: > "$lab/lab-ready"
exec sleep infinity
"#;

/// Signals readiness from inside the capture namespace and keeps it alive.
const CAPTURE_HOLDER_SCRIPT: &str = r#"
set -eu
ip link set lo up
: > "$1/capture-ready"
exec sleep infinity
"#;

/// Whether the lab runs its own systemd-udevd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Udev {
    /// udevd runs in the lab and processes every new link.
    Running,
    /// No udevd: only the kernel announces new links.
    Absent,
}

/// The macveil daemon in the lab, and where it is in a restart.
struct Daemon {
    process: Process,
    args: Vec<String>,
    /// Started instances, to name each one's log.
    instances: u32,
    restart: Restart,
}

/// Progress of a restart that runs while the test goes on creating links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// No restart in progress.
    Idle,
    /// SIGTERM sent; waiting for the daemon to exit.
    Stopping(Instant),
    /// A new instance started; waiting for its `READY=1`.
    Starting(Instant),
}

/// The two namespaces and the processes in them. Dropping it stops everything it started.
pub struct LinkLab {
    /// The lab's folders on the host, removed after `Drop` has stopped every process.
    folder: TempDir,
    /// The holders first, then udevd.
    processes: Vec<Process>,
    daemon: Option<Daemon>,
    notify: UnixDatagram,
    lab_pid: u32,
    capture_pid: u32,
    capture_links: LinkHandle,
}

impl LinkLab {
    /// Starts both namespaces and, with [`Udev::Running`], udevd. Panics with the logs when a
    /// step fails, and with the packages to install when a program is missing.
    pub fn start(udev: Udev) -> LinkLab {
        let udevd = check_programs(udev);
        let folder = tempfile::Builder::new()
            .prefix("macveil-link-lab-")
            .tempdir()
            .expect("failed to create the lab folder");
        for sub in ["empty", "logs"] {
            let path = folder.path().join(sub);
            fs::create_dir(&path)
                .unwrap_or_else(|error| panic!("failed to create {}: {error}", path.display()));
        }
        let notify_path = folder.path().join("notify");
        let notify = UnixDatagram::bind(&notify_path)
            .unwrap_or_else(|error| panic!("failed to bind {}: {error}", notify_path.display()));
        notify
            .set_nonblocking(true)
            .expect("failed to make the notification socket non-blocking");
        let logs = folder.path().join("logs");

        let mut lab_holder = Command::new("unshare");
        lab_holder
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
                LAB_HOLDER_SCRIPT,
                "sh",
            ])
            .arg(folder.path());
        let lab_holder = spawn_logged(lab_holder, "lab holder", &logs);
        let lab_pid = lab_holder.child.id();

        let mut capture_holder = Command::new("unshare");
        capture_holder
            .args(["--net", "--", "sh", "-c", CAPTURE_HOLDER_SCRIPT, "sh"])
            .arg(folder.path());
        let capture_holder = spawn_logged(capture_holder, "capture holder", &logs);
        let capture_pid = capture_holder.child.id();

        let mut processes = vec![lab_holder, capture_holder];
        let ready = |name: &str| folder.path().join(name).exists();
        if let Err(message) = wait_for(&mut processes, "the namespace holders", || {
            ready("lab-ready") && ready("capture-ready")
        }) {
            stop_all(&mut processes);
            panic!("{message}");
        }
        for pid in [lab_pid, capture_pid] {
            if let Err(message) = check_own_namespace(pid) {
                stop_all(&mut processes);
                panic!("{message}");
            }
        }

        let capture_netns = netns_of(capture_pid);
        let capture_links = match LinkHandle::open(&capture_netns) {
            Ok(handle) => handle,
            Err(error) => {
                stop_all(&mut processes);
                panic!("failed to open {capture_netns}: {error}");
            }
        };

        // From here on the lab owns every process, so a panic in a later step still stops them.
        let mut lab = LinkLab {
            folder,
            processes,
            daemon: None,
            notify,
            lab_pid,
            capture_pid,
            capture_links,
        };
        if let Some(udevd) = udevd {
            lab.start_udevd(udevd);
        }
        lab
    }

    fn start_udevd(&mut self, udevd: &str) {
        let mut command = self.lab_command(udevd);
        command
            .arg("--resolve-names=never")
            .env("SYSTEMD_LOG_TARGET", "console")
            .env("SYSTEMD_LOG_COLOR", "0");
        let process = spawn_logged(command, "systemd-udevd", &self.logs());
        self.processes.push(process);

        let control = self.inside("/run/udev/control");
        let result = wait_for(&mut self.processes, "systemd-udevd to listen", || {
            control.exists()
        });
        if let Err(message) = result {
            panic!("{message}\n{}", self.log_tails());
        }
    }

    /// Returns the lab's network namespace, where test links appear.
    pub fn lab_netns(&self) -> Netns {
        netns_of(self.lab_pid)
    }

    /// Returns the capture namespace, which contains the far end of every test link.
    pub fn capture_netns(&self) -> Netns {
        netns_of(self.capture_pid)
    }

    /// Returns the PID of the capture namespace's holder, for requests that name a namespace by
    /// process (`IFLA_NET_NS_PID`).
    pub fn capture_pid(&self) -> u32 {
        self.capture_pid
    }

    /// Returns the PID of the running daemon.
    pub fn daemon_pid(&self) -> u32 {
        self.daemon
            .as_ref()
            .expect("the lab's daemon runs")
            .process
            .child
            .id()
    }

    /// Starts `program ARGS...` in the lab's namespaces, logged as `name`. It leads a process
    /// group of its own, killed with all its members when the lab drops.
    pub fn spawn_in_lab(&mut self, name: &str, program: &str, args: &[&str]) {
        let mut command = self.lab_command(program);
        command.args(args);
        let process = spawn_logged_group(command, name, &self.logs());
        self.processes.push(process);
    }

    /// Host path of `path` as the lab's processes see it, through the holder's mount namespace.
    pub fn inside(&self, path: &str) -> PathBuf {
        let relative = path.trim_start_matches('/');
        PathBuf::from(format!("/proc/{}/root", self.lab_pid)).join(relative)
    }

    /// Returns a folder on the host for the test's own files (configuration, state). The lab's
    /// processes see it at the same path, because the lab does not cover `/tmp`.
    pub fn host_folder(&self) -> &Path {
        self.folder.path()
    }

    /// Writes `contents` to `path` inside the lab's mount namespace (under its `/run`).
    pub fn write_inside(&self, path: &str, contents: &str) {
        assert!(
            path.starts_with("/run/"),
            "{path}: the lab writes only under its own /run"
        );
        let host_path = self.inside(path);
        fs::write(&host_path, contents)
            .unwrap_or_else(|error| panic!("failed to write {}: {error}", host_path.display()));
    }

    /// Installs a udev rules file in the lab's `/run/udev/rules.d` and makes udevd load it.
    pub fn install_udev_rules(&self, name: &str, contents: &str) {
        self.write_inside(&format!("/run/udev/rules.d/{name}"), contents);
        self.run_in_lab("udevadm", &["control", "--reload"]);
    }

    /// Builds a command that runs `program` in the lab's namespaces.
    pub fn lab_command(&self, program: &str) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--target={}", self.lab_pid))
            .args(["--net", "--mount", "--uts", "--ipc", "--"])
            .arg(program)
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        command
    }

    /// Runs `program` in the lab and returns its standard output. Panics when it fails.
    pub fn run_in_lab(&self, program: &str, args: &[&str]) -> String {
        let output = self
            .lab_command(program)
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("failed to run {program} in the lab: {error}"));
        self.check(program, args, &output);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs `ip ARGS...` in the capture namespace. Panics when it fails.
    pub fn ip_in_capture(&self, args: &[&str]) {
        let output = Command::new("nsenter")
            .arg(format!("--target={}", self.capture_pid))
            .args(["--net", "--", "ip"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("failed to run ip in the capture namespace: {error}"));
        self.check("ip", args, &output);
    }

    /// Creates a test link in the lab with `address`, named `name` or, without a name, by the
    /// kernel (`veth<N>`, which udev may rename). Its peer `peer` in the capture namespace is up
    /// before anything can raise the test link.
    pub fn add_test_link(&self, peer: &str, name: Option<&str>, address: MacAddr) {
        let address = address.to_string();
        let lab_pid = self.lab_pid.to_string();
        let mut args = vec!["link", "add", peer, "up", "type", "veth", "peer"];
        if let Some(name) = name {
            args.extend(["name", name]);
        }
        args.extend(["address", &address, "netns", &lab_pid]);
        self.ip_in_capture(&args);
    }

    /// Removes the test link whose peer is `peer`; the kernel removes both ends.
    pub fn remove_test_link(&self, peer: &str) {
        self.ip_in_capture(&["link", "del", peer]);
    }

    /// Returns the index of `name` in the capture namespace.
    pub fn capture_index(&mut self, name: &str) -> u32 {
        let links = self.capture_links.links().unwrap_or_else(|error| {
            panic!("failed to list the capture namespace's links: {error}")
        });
        links
            .iter()
            .find(|link| link.name == name)
            .map(|link| link.index)
            .unwrap_or_else(|| panic!("no link {name} in the capture namespace"))
    }

    /// Starts `macveil daemon ARGS...` in the lab and waits for its `READY=1`.
    pub fn start_daemon(&mut self, args: &[&str]) {
        assert!(self.daemon.is_none(), "the lab's daemon runs already");
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        let process = self.spawn_daemon(&args, 1);
        self.daemon = Some(Daemon {
            process,
            args,
            instances: 1,
            restart: Restart::Idle,
        });
        self.wait_daemon_ready();
    }

    /// Stops the daemon with SIGTERM and checks that it exits with status 0.
    pub fn stop_daemon(&mut self) {
        let mut daemon = self.daemon.take().expect("the lab's daemon runs");
        send_signal(&daemon.process.child, libc::SIGTERM).expect("failed to signal the daemon");
        let status = wait_exit(&mut daemon.process, DAEMON_EXIT_TIMEOUT);
        self.check_daemon_exit(status, &daemon.process);
    }

    /// Sends SIGTERM to the daemon and returns at once. [`LinkLab::advance_daemon_restart`]
    /// starts the next instance once this one has exited.
    pub fn begin_daemon_restart(&mut self) {
        let daemon = self.daemon.as_mut().expect("the lab's daemon runs");
        assert_eq!(daemon.restart, Restart::Idle, "a restart is in progress");
        send_signal(&daemon.process.child, libc::SIGTERM).expect("failed to signal the daemon");
        daemon.restart = Restart::Stopping(Instant::now());
    }

    /// Moves a restart on without blocking. Returns true when no restart is in progress.
    pub fn advance_daemon_restart(&mut self) -> bool {
        let restart = self.daemon.as_ref().expect("the lab's daemon runs").restart;
        match restart {
            Restart::Idle => true,
            Restart::Stopping(since) => {
                let daemon = self.daemon.as_mut().expect("the lab's daemon runs");
                let status = daemon
                    .process
                    .child
                    .try_wait()
                    .expect("failed to check the daemon");
                let Some(status) = status else {
                    assert!(
                        since.elapsed() <= DAEMON_EXIT_TIMEOUT,
                        "the daemon still runs {DAEMON_EXIT_TIMEOUT:?} after SIGTERM\n{}",
                        self.log_tails()
                    );
                    return false;
                };

                let args = daemon.args.clone();
                let instance = daemon.instances + 1;
                let next = self.spawn_daemon(&args, instance);
                let daemon = self.daemon.as_mut().expect("the lab's daemon runs");
                let stopped = std::mem::replace(&mut daemon.process, next);
                daemon.instances = instance;
                daemon.restart = Restart::Starting(Instant::now());
                self.check_daemon_exit(status, &stopped);
                false
            }
            Restart::Starting(since) => {
                if self.take_ready() {
                    self.daemon.as_mut().expect("the lab's daemon runs").restart = Restart::Idle;
                    return true;
                }
                self.check_daemon_alive("its restart");
                assert!(
                    since.elapsed() <= READY_TIMEOUT,
                    "the restarted daemon did not send READY=1 within {READY_TIMEOUT:?}\n{}",
                    self.log_tails()
                );
                false
            }
        }
    }

    /// Panics with the logs when the daemon has exited.
    pub fn check_daemon_alive(&mut self, during: &str) {
        let Some(daemon) = self.daemon.as_mut() else {
            return;
        };
        if let Ok(Some(status)) = daemon.process.child.try_wait() {
            panic!(
                "the daemon exited ({status}) during {during}\n{}",
                self.log_tails()
            );
        }
    }

    /// Returns the daemon's log, all instances.
    pub fn daemon_log(&self) -> String {
        let mut text = String::new();
        let Some(daemon) = &self.daemon else {
            return text;
        };
        for instance in 1..=daemon.instances {
            let path = self.logs().join(format!("macveil-daemon-{instance}.log"));
            text.push_str(&fs::read_to_string(path).unwrap_or_default());
        }
        text
    }

    fn spawn_daemon(&self, args: &[String], instance: u32) -> Process {
        // Drop a READY=1 left over from the previous instance.
        while self.take_ready() {}

        let mut command = self.lab_command(env!("CARGO_BIN_EXE_macveil"));
        command
            .arg("daemon")
            .args(args)
            .env("NOTIFY_SOCKET", self.folder.path().join("notify"));
        spawn_logged(command, &format!("macveil daemon {instance}"), &self.logs())
    }

    fn wait_daemon_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while !self.take_ready() {
            self.check_daemon_alive("start-up");
            if Instant::now() > deadline {
                panic!(
                    "the daemon did not send READY=1 within {READY_TIMEOUT:?}\n{}",
                    self.log_tails()
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Reads the queued notifications and returns whether one of them was `READY=1`.
    fn take_ready(&self) -> bool {
        let mut buffer = [0u8; 4096];
        let mut ready = false;
        while let Ok(length) = self.notify.recv(&mut buffer) {
            let message = String::from_utf8_lossy(&buffer[..length]);
            ready |= message.lines().any(|line| line == "READY=1");
        }
        ready
    }

    fn check_daemon_exit(&self, status: ExitStatus, process: &Process) {
        assert!(
            status.success(),
            "{} exited with {status} after SIGTERM instead of 0\n{}",
            process.name,
            fs::read_to_string(&process.log).unwrap_or_default()
        );
    }

    fn logs(&self) -> PathBuf {
        self.folder.path().join("logs")
    }

    /// Panics with a command's output and the lab's logs when it failed.
    fn check(&self, program: &str, args: &[&str], output: &Output) {
        if output.status.success() {
            return;
        }
        panic!(
            "{program} {} failed ({})\nstdout: {}\nstderr: {}\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim(),
            self.log_tails()
        );
    }

    /// Collects the last lines of every process's log, for failure messages.
    pub fn log_tails(&self) -> String {
        let mut processes: Vec<&Process> = self.processes.iter().collect();
        if let Some(daemon) = &self.daemon {
            processes.push(&daemon.process);
        }
        let mut text = String::new();
        for process in processes {
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
}

impl Drop for LinkLab {
    fn drop(&mut self) {
        if let Some(daemon) = self.daemon.as_mut() {
            if let Err(error) = daemon.process.stop() {
                eprintln!("failed to stop the daemon: {error}");
            }
        }
        stop_all(&mut self.processes);
    }
}

/// Returns the shipped udev rule, with the built binary and the test's configuration in place
/// of the installed program's path and default configuration.
pub fn shipped_udev_rule(config: &str) -> (String, String) {
    let dist = concat!(env!("CARGO_MANIFEST_DIR"), "/dist");
    let name = "81-macveil.rules";
    let path = format!("{dist}/{name}");
    let shipped = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("failed to read the shipped rule {path}: {error}"));

    // udev applies rules files in the lexical order of their names, across all folders.
    assert!(
        name > "80-net-setup-link.rules",
        "{name} must sort after 80-net-setup-link.rules, which chooses the final name"
    );

    let mut adapted = String::new();
    let mut programs = 0;
    for line in shipped.lines() {
        let program = line.find(" udev-apply").filter(|_| !line.starts_with('#'));
        let Some(at) = program else {
            adapted.push_str(line);
            adapted.push('\n');
            continue;
        };
        let program_start = line[..at].rfind('"').expect("IMPORT{program}=\"...") + 1;
        let _ = writeln!(
            adapted,
            "{}{} udev-apply --config {config}{}",
            &line[..program_start],
            env!("CARGO_BIN_EXE_macveil"),
            &line[at + " udev-apply".len()..]
        );
        programs += 1;
    }
    assert!(
        programs > 0,
        "{path} runs no 'macveil udev-apply':\n{shipped}"
    );
    (name.to_owned(), adapted)
}

/// Stops every process, newest first.
fn stop_all(processes: &mut [Process]) {
    for process in processes.iter_mut().rev() {
        if let Err(error) = process.stop() {
            eprintln!(
                "failed to stop {} (pid {}): {error}",
                process.name,
                process.child.id()
            );
        }
    }
}

/// Returns the network namespace of process `pid`.
fn netns_of(pid: u32) -> Netns {
    Netns::Path(PathBuf::from(format!("/proc/{pid}/ns/net")))
}

/// Checks that process `pid` is in a network namespace other than the test's, so that no link
/// the lab creates can land in the host's namespace.
fn check_own_namespace(pid: u32) -> Result<(), String> {
    let theirs = fs::read_link(format!("/proc/{pid}/ns/net"));
    let ours = fs::read_link("/proc/thread-self/ns/net");
    match (theirs, ours) {
        (Ok(theirs), Ok(ours)) if theirs != ours => Ok(()),
        (Ok(_), Ok(_)) => Err(format!(
            "process {pid} is in the test's own network namespace; the lab stops here"
        )),
        (theirs, ours) => Err(format!(
            "failed to compare the network namespaces of {pid} and the test: {theirs:?} {ours:?}"
        )),
    }
}

/// Polls `ready` until it returns true. Fails with the processes' logs when one of them exits
/// first or after `READY_TIMEOUT`.
fn wait_for(processes: &mut [Process], what: &str, ready: impl Fn() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        for process in processes.iter_mut() {
            if let Ok(Some(status)) = process.child.try_wait() {
                let log = fs::read_to_string(&process.log).unwrap_or_default();
                return Err(format!(
                    "{} exited ({status}) while waiting for {what}\n{log}",
                    process.name
                ));
            }
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "timed out after {READY_TIMEOUT:?} waiting for {what}"
            ));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Waits up to `timeout` for a process that was sent SIGTERM, then kills it.
fn wait_exit(process: &mut Process, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = process.child.try_wait().expect("failed to check a process") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = process.child.kill();
            let _ = process.child.wait();
            panic!("{} still ran {timeout:?} after SIGTERM", process.name);
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Checks that the programs the lab runs are installed and returns systemd-udevd's path when
/// the lab runs udev.
///
/// Panics with the packages to install: the tests that use the lab run in CI, so a missing
/// package is an error there, not a reason to skip.
fn check_programs(udev: Udev) -> Option<&'static str> {
    let mut required = vec![
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("ip", "iproute2"),
    ];
    if udev == Udev::Running {
        required.push(("udevadm", "udev"));
    }
    let mut missing: Vec<String> = required
        .iter()
        .filter(|(program, _)| find_in_path(program).is_none())
        .map(|(program, package)| format!("{program} (package {package})"))
        .collect();

    let udevd = match udev {
        Udev::Running => {
            let found = find_udevd();
            if found.is_none() {
                missing.push("systemd-udevd (package udev)".to_owned());
            }
            found
        }
        Udev::Absent => None,
    };

    assert!(
        missing.is_empty(),
        "the link lab needs {}; install them with: apt-get install --no-install-recommends \
         udev iproute2 util-linux",
        missing.join(", ")
    );
    udevd
}
