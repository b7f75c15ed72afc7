//! `macveil check`'s findings: everything on this machine that still exposes, or will expose, the
//! hardware identity. Each finding names its subject (a link or a file and line), what leaks, why
//! it matters and the fix.
//!
//! This module only reads. It never changes a link or a file.

pub mod files;

use serde::Serialize;

/// How directly a finding exposes the hardware identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A setting that makes the machine easier to recognise but does not send the hardware
    /// address itself.
    Low,
    /// A setting that will send the hardware address, or a fixed identifier, when it takes effect.
    Medium,
    /// The hardware address is on a network now.
    High,
}

/// One thing that exposes the hardware identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A stable identifier of the kind of finding, for scripts (for example `wpa-mac-addr`).
    pub code: &'static str,
    /// How directly it exposes the hardware identity.
    pub severity: Severity,
    /// The link name or file the finding is about.
    pub subject: String,
    /// The file and line that cause it, when a file does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// What leaks.
    pub leak: String,
    /// The reason this matters.
    pub reason: String,
    /// The change that removes the finding.
    pub fix: String,
}
