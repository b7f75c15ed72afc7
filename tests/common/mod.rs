//! Shared set-up for the root tests: network namespaces with unique names that are deleted when
//! the guard drops, also when the test fails, and a runner for the built binary. Without root
//! the tests skip and print why on stderr, past the test harness's output capture.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A namespace that exists for the life of the guard.
pub struct TestNetns {
    /// The name under /run/netns.
    pub name: String,
}

impl TestNetns {
    /// Creates a namespace, or returns `None` (after printing why) when not running as root.
    pub fn create(test: &str) -> Option<TestNetns> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            skip(test, "needs root to create network namespaces");
            return None;
        }
        let name = format!(
            "mvt-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let output = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("ip runs");
        assert!(
            output.status.success(),
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Some(TestNetns { name })
    }

    /// Runs `ip -n NAME ARGS...` and panics when it fails.
    pub fn ip(&self, args: &[&str]) {
        let output = self.ip_output(args);
        assert!(
            output.status.success(),
            "ip -n {} {}: {}",
            self.name,
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Runs `ip -n NAME ARGS...` and returns its output.
    pub fn ip_output(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("ip runs")
    }

    /// Returns the current address of `ifname`, as `ip` prints it.
    pub fn address(&self, ifname: &str) -> String {
        let output = self.ip_output(&["-br", "link", "show", "dev", ifname]);
        assert!(output.status.success(), "{ifname} exists");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .to_string()
    }

    /// Returns whether `ifname` is administratively up.
    pub fn is_up(&self, ifname: &str) -> bool {
        let output = self.ip_output(&["-o", "link", "show", "dev", ifname]);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let flags = text
            .split('<')
            .nth(1)
            .and_then(|rest| rest.split('>').next());
        flags.is_some_and(|flags| flags.split(',').any(|flag| flag == "UP"))
    }

    /// Returns the IPv6 addresses on `ifname`.
    pub fn ipv6_addresses(&self, ifname: &str) -> Vec<String> {
        let output = self.ip_output(&["-o", "-6", "address", "show", "dev", ifname]);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                words.find(|word| *word == "inet6")?;
                words
                    .next()
                    .map(|cidr| cidr.split('/').next().unwrap().to_string())
            })
            .collect()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Prints why a test is skipped on stderr, past the test harness's output capture.
pub fn skip(test: &str, reason: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// Runs the built `macveil` with `args`.
pub fn macveil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_macveil"))
        .args(args)
        .env_remove("MACVEIL_LOG")
        .output()
        .expect("macveil runs")
}

/// Runs `macveil` inside `netns` with its state in `state`, so that no test touches
/// /run/macveil.
pub fn macveil_in(netns: &TestNetns, state: &Path, args: &[&str]) -> Output {
    let mut full: Vec<&str> = args.to_vec();
    let state = state.to_str().expect("UTF-8 temporary path");
    full.extend_from_slice(&["--netns", &netns.name, "--state-dir", state]);
    macveil(&full)
}

/// Formats the exit code, stdout and stderr of a run for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
