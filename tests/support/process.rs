//! Processes that a test lab starts and must stop: spawned with their output in a log file,
//! killed by the kernel should the test process die without unwinding, and stopped by PID
//! (SIGTERM, then SIGKILL) when the lab drops.
//!
//! This module finds, starts and stops programs. Namespaces and what the programs do are the
//! labs' business.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Time a daemon gets to exit after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Interval between two checks whether a process has exited.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Locations of systemd-udevd: Debian installs it outside `PATH`.
pub const UDEVD_PATHS: &[&str] = &[
    "/usr/lib/systemd/systemd-udevd",
    "/lib/systemd/systemd-udevd",
];

/// A process a lab started and must stop.
pub struct Process {
    /// The name used in logs and failure messages.
    pub name: String,
    /// The running process.
    pub child: Child,
    /// The file that receives its stdout and stderr.
    pub log: PathBuf,
    /// Whether the process leads a process group of its own, whose members are all stopped
    /// with it.
    pub group: bool,
}

impl Process {
    /// Stops the process with SIGTERM, then SIGKILL after `STOP_GRACE`, and reaps it. A group
    /// leader is killed with its whole group at once, so that no child it started survives.
    pub fn stop(&mut self) -> io::Result<()> {
        if self.group {
            // The group's ID cannot be reused while the leader is not reaped, so the signal
            // reaches only this group. ESRCH: every member has exited already.
            if let Err(error) = send_signal_to_group(&self.child, libc::SIGKILL) {
                if error.raw_os_error() != Some(libc::ESRCH) {
                    return Err(error);
                }
            }
            self.child.wait()?;
            return Ok(());
        }
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }

        send_signal(&self.child, libc::SIGTERM)?;
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            thread::sleep(EXIT_POLL_INTERVAL);
        }

        eprintln!(
            "{} (pid {}) still runs {STOP_GRACE:?} after SIGTERM; sending SIGKILL",
            self.name,
            self.child.id()
        );
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

/// Sends `signal` to a child that has not been reaped yet.
pub fn send_signal(child: &Child, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(child.id()).map_err(io::Error::other)?;

    // SAFETY: kill() takes plain integers and touches no memory. The child has not been reaped,
    // so its PID cannot have been reused by another process.
    if unsafe { libc::kill(pid, signal) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `signal` to the process group led by a child that has not been reaped yet.
fn send_signal_to_group(child: &Child, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(child.id()).map_err(io::Error::other)?;

    // SAFETY: kill() takes plain integers and touches no memory. A negative PID names the
    // process group, whose ID is the leader's PID.
    if unsafe { libc::kill(-pid, signal) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the kernel send SIGKILL to the process when the thread that spawned it exits.
///
/// This is the fallback for a test process that dies without unwinding, for example on SIGKILL:
/// the lab's processes then die with it and take the namespaces with them. Because the signal
/// follows the spawning thread, a lab must be used and dropped in the thread that started it,
/// which is what a `#[test]` function does.
pub fn die_with_parent_thread(command: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec. It only calls prctl(2), which
    // is async-signal-safe, and builds an io::Error from errno, which does not allocate.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Returns the first folder of `PATH` that contains `program`.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|folder| folder.join(program))
        .find(|candidate| candidate.is_file())
}

/// Returns the path of systemd-udevd, when the `udev` package is installed.
pub fn find_udevd() -> Option<&'static str> {
    UDEVD_PATHS
        .iter()
        .copied()
        .find(|path| Path::new(path).is_file())
}

/// Spawns `command` with stdout and stderr in `logs/<name>.log`, to die with the spawning
/// thread.
pub fn spawn_logged(mut command: Command, name: &str, logs: &Path) -> Process {
    let log = logs.join(format!("{}.log", name.replace(' ', "-")));
    let stdout = File::create(&log)
        .unwrap_or_else(|error| panic!("failed to create {}: {error}", log.display()));
    let stderr = stdout
        .try_clone()
        .unwrap_or_else(|error| panic!("failed to open {}: {error}", log.display()));
    command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    die_with_parent_thread(&mut command);

    let child = command
        .spawn()
        .unwrap_or_else(|error| panic!("failed to start {name}: {error}"));
    Process {
        name: name.to_owned(),
        child,
        log,
        group: false,
    }
}

/// Spawns `command` like [`spawn_logged`], as the leader of a new process group, for programs
/// such as shell pipelines whose children must stop with them.
pub fn spawn_logged_group(mut command: Command, name: &str, logs: &Path) -> Process {
    command.process_group(0);
    let mut process = spawn_logged(command, name, logs);
    process.group = true;
    process
}
