//! `macveil check`'s findings: everything on this machine that still exposes, or will expose, the
//! hardware identity. Each finding names its subject (a link or a file and line), what leaks, why
//! it matters and the fix.
//!
//! This module only reads. It never changes a link or a file.

pub mod daemon;
pub mod files;
pub mod links;
pub mod nm;

use serde::Serialize;

/// The degree to which a finding exposes the hardware identity.
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
    /// The degree to which it exposes the hardware identity.
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

/// The version of the JSON that `macveil check --json` prints. It changes only when a field is
/// removed or changes meaning; new fields may appear without a change.
pub const REPORT_SCHEMA: u32 = 1;

/// The number of findings of each severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Findings of severity high.
    pub high: usize,
    /// Findings of severity medium.
    pub medium: usize,
    /// Findings of severity low.
    pub low: usize,
}

/// Everything `macveil check` found, in the form its `--json` output takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// [`REPORT_SCHEMA`].
    pub schema: u32,
    /// Whether something exposes the hardware identity: a finding of severity medium or high,
    /// or with `strict`, of any severity. This decides the exit code.
    pub exposed: bool,
    /// The number of findings of each severity.
    pub counts: Counts,
    /// The findings, most severe first, then by subject.
    pub findings: Vec<Finding>,
    /// Sentences about the parts that could not be checked.
    pub notes: Vec<String>,
}

impl Report {
    /// Builds a report. With `strict`, low findings also count as exposure.
    pub fn new(mut findings: Vec<Finding>, notes: Vec<String>, strict: bool) -> Report {
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.subject.cmp(&b.subject))
                .then_with(|| a.code.cmp(b.code))
        });

        let mut counts = Counts::default();
        for finding in &findings {
            match finding.severity {
                Severity::High => counts.high += 1,
                Severity::Medium => counts.medium += 1,
                Severity::Low => counts.low += 1,
            }
        }
        let threshold = if strict {
            Severity::Low
        } else {
            Severity::Medium
        };
        let exposed = findings.iter().any(|finding| finding.severity >= threshold);

        Report {
            schema: REPORT_SCHEMA,
            exposed,
            counts,
            findings,
            notes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(code: &'static str, severity: Severity, subject: &str) -> Finding {
        Finding {
            code,
            severity,
            subject: subject.into(),
            location: None,
            leak: String::new(),
            reason: String::new(),
            fix: String::new(),
        }
    }

    #[test]
    fn report_sorts_and_counts() {
        let report = Report::new(
            vec![
                finding("a", Severity::Low, "eth0"),
                finding("b", Severity::High, "wlan0"),
                finding("c", Severity::Medium, "eth0"),
                finding("d", Severity::High, "eth0"),
            ],
            Vec::new(),
            false,
        );
        let order: Vec<&str> = report.findings.iter().map(|f| f.code).collect();
        assert_eq!(order, ["d", "b", "c", "a"]);
        assert_eq!(
            report.counts,
            Counts {
                high: 2,
                medium: 1,
                low: 1
            }
        );
        assert!(report.exposed);
    }

    #[test]
    fn low_findings_expose_only_when_strict() {
        let low = vec![finding("a", Severity::Low, "eth0")];
        assert!(!Report::new(low.clone(), Vec::new(), false).exposed);
        assert!(Report::new(low, Vec::new(), true).exposed);
        assert!(!Report::new(Vec::new(), Vec::new(), true).exposed);
    }

    #[test]
    fn report_json_has_stable_fields() {
        let mut with_location = finding("wpa-mac-addr", Severity::Medium, "/etc/x.conf");
        with_location.location = Some("/etc/x.conf:3".into());
        let report = Report::new(vec![with_location], vec!["note".into()], false);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["schema"], 1);
        assert_eq!(json["exposed"], true);
        assert_eq!(json["counts"]["medium"], 1);
        assert_eq!(json["findings"][0]["severity"], "medium");
        assert_eq!(json["findings"][0]["location"], "/etc/x.conf:3");
        assert_eq!(json["notes"][0], "note");
        let keys: Vec<&String> = json["findings"][0].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "code", "fix", "leak", "location", "reason", "severity", "subject"
            ]
        );
    }
}
