//! Helpers shared by the integration tests.
//!
//! Each integration test crate includes this module with `mod support;` and uses only part of it,
//! so unused items are allowed here.

#![allow(dead_code)]

use std::fs;

pub mod capture;
pub mod eager_manager;
pub mod link_lab;
pub mod nm_lab;
pub mod nm_profile;
pub mod packet;
pub mod process;
pub mod veth;

/// Returns whether the test process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid() takes no arguments, cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Returns true when the test may run, or prints why it is skipped and returns false.
///
/// Root tests skip with a visible message when not run as root. CI runs them as root, so there
/// they always run.
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("SKIPPED {test}: needs root for network and mount namespaces (CI runs it as root)");
    false
}

/// Returns a new random UUID in its 36-character form, from the kernel.
pub fn random_uuid() -> String {
    let uuid = fs::read_to_string("/proc/sys/kernel/random/uuid")
        .expect("failed to read /proc/sys/kernel/random/uuid");
    uuid.trim().to_owned()
}

/// Returns the kernel's boot id, which `${BOOT}` expands to.
///
/// The boot id belongs to the running kernel, not to a namespace, so the lab's NetworkManager
/// reads the same value.
pub fn boot_id() -> String {
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("failed to read /proc/sys/kernel/random/boot_id");
    boot_id.trim().to_owned()
}
