//! Network namespaces for root tests: each one has a unique name, is created with `ip netns add`
//! and deleted when the guard drops, also when the test fails. Without root the tests skip and
//! print why on stderr, past the test harness's output capture.

use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::netns::Netns;

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
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: needs root to create network namespaces"
            );
            return None;
        }
        let name = format!(
            "mvu-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(&["netns", "add", &name]);
        Some(TestNetns { name })
    }

    /// Returns the namespace as the link layer names it.
    pub fn netns(&self) -> Netns {
        Netns::from_arg(&self.name).unwrap()
    }

    /// Runs `ip -n NAME ARGS...` and panics when it fails.
    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run(&full);
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}
