//! `macveil check`: list everything on this machine that exposes, or will expose, the hardware
//! identity, with the reason and the fix, and exit 1 when anything does.
//!
//! The links come from the kernel of the chosen network namespace. Every file is read below
//! `--root`: NetworkManager's, systemd's, ifupdown's and wpa_supplicant's files, macveil's own
//! policy and the daemon's lock. This command changes no link and no file, except that it records the
//! reference address of links macveil manages that it sees for the first time, as
//! `macveil show` does.

use std::io::{self, IsTerminal, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::Status;
use super::target;
use crate::addr::MacAddr;
use crate::audit::daemon::{self, Coverage, DaemonState};
use crate::audit::files::WifiCoverage;
use crate::audit::links::{self, LinkState};
use crate::audit::nm::{self as nm_audit, NmInputs};
use crate::audit::{Finding, Report, Severity, files};
use crate::config::{
    self, ClonedMac, Config, ConfigErrors, ConfigPaths, LinkFacts, LinkKind, LinkPolicy,
    LoadOptions, SysfsDevice,
};
use crate::link::state::{DEFAULT_STATE_DIR, ReferenceStore};
use crate::link::{IpAddress, Link, LinkHandle, LinkOps, Netns};
use crate::nm::NmPaths;
use crate::nm::conf::NmConfig;
use crate::nm::device;
use crate::nm::profile::Profiles;
use crate::nm::resolve;
use crate::nm::version::{self, Programs, VersionError};

pub(super) const AFTER_HELP: &str = "\
Examples:
  macveil check
  macveil check --json | jq '.findings[] | select(.severity == \"high\")'
  sudo macveil check --netns lab --config ./lab.conf

Exit codes:
  0  nothing exposes the hardware identity (low findings may remain; see --strict)
  1  something exposes it: a finding of severity medium or high
  2  invalid input, or an error that kept the check from running

JSON (--json), schema 1:
  {\"schema\": 1, \"exposed\": BOOL,
   \"counts\": {\"high\": N, \"medium\": N, \"low\": N},
   \"findings\": [{\"code\": STR, \"severity\": \"high\"|\"medium\"|\"low\",
                 \"subject\": STR, \"location\": \"FILE:LINE\" (absent when none),
                 \"leak\": STR, \"reason\": STR, \"fix\": STR}],
   \"notes\": [STR]}
  Findings are sorted by severity, then subject. A change of field meaning raises
  schema; new fields and codes may appear without one.";

/// Options of `macveil check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print JSON instead of text (schema below).
    #[arg(long)]
    pub json: bool,

    /// Check the links of this network namespace: a name from 'ip netns list' or a path such as
    /// /proc/PID/ns/net. Default: the current one.
    #[arg(long, value_name = "NAME|PATH")]
    pub netns: Option<String>,

    /// Read every file below DIR instead of / (for example a mounted system image). The links
    /// still come from the running kernel.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Read macveil's policy from this file instead of /etc/macveil/macveil.conf and
    /// /etc/macveil/conf.d/*.conf. It decides which links macveil manages.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory of the file that records each link's address before macveil first changes
    /// it. Default: /run/macveil below the root.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Count low findings as exposure too.
    #[arg(long)]
    pub strict: bool,

    /// Run NetworkManager and nmcli from DIR instead of PATH (for tests).
    #[arg(long, value_name = "DIR", hide = true)]
    pub nm_bindir: Option<PathBuf>,
}

/// One link with the facts and the policy the checks use.
struct Observed {
    link: Link,
    facts: LinkFacts,
    policy: LinkPolicy,
}

pub(super) fn run(args: &CheckArgs) -> anyhow::Result<Status> {
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    super::require_root_dir(&root)?;
    let paths = NmPaths::under(&root);
    let mut notes = Vec::new();

    let config = load_macveil_config(&root, args.config.clone())?;

    let netns = match &args.netns {
        None => Netns::Current,
        Some(value) => Netns::from_arg(value).map_err(anyhow::Error::msg)?,
    };
    let own_namespace = netns.is_callers()?;
    let mut handle = LinkHandle::open(&netns)?;
    let links = handle
        .links()
        .with_context(|| format!("cannot list the links in {netns}"))?;
    let addresses = handle
        .ip_addresses()
        .with_context(|| format!("cannot list the IP addresses in {netns}"))?;
    if !own_namespace {
        notes.push(String::from(
            "the links are in another network namespace, so whether a physical device backs \
             each one is judged by its permanent address, and NetworkManager's device records \
             (which describe its own namespace) are not used",
        ));
    }

    let observed: Vec<Observed> = links
        .into_iter()
        .filter(|link| link.kind() != "loopback")
        .map(|link| {
            let facts = link_facts(&link, own_namespace);
            let policy = config.policy_for(&facts);
            Observed {
                link,
                facts,
                policy,
            }
        })
        .collect();

    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| root.join(DEFAULT_STATE_DIR.trim_start_matches('/')));
    let link_states = link_states(&observed, &addresses, &state_dir, handle.netns_key());

    // The daemon takes its lock in its state folder, which --state-dir names.
    let daemon = match &args.state_dir {
        Some(dir) => daemon::lock_state(&dir.join("daemon.lock"), Path::new("/proc/locks")),
        None => daemon::daemon_state(&root, Path::new("/proc/locks")),
    };
    let daemon_running = matches!(daemon, DaemonState::Running { .. });

    let mut findings = links::check_links(&link_states);
    findings.extend(files::check_systemd_link_files(&root));
    findings.extend(files::check_ifupdown(&root));
    let wifi = wifi_coverage(&config, &observed, daemon_running);
    if wifi.address {
        notes.push(String::from(
            "macveil's daemon sets the Wi-Fi address, so wpa_supplicant's mac_addr=0 is what it \
             needs",
        ));
    }
    findings.extend(files::check_wpa_supplicant(&root, wifi));
    findings.extend(files::check_iwd(&root));
    // A running wpa_supplicant is queried over its control socket. That only makes sense for
    // the live system, not for a mounted image under --root.
    if args.root.is_none() {
        let links: Vec<_> = observed.iter().map(|entry| entry.link.clone()).collect();
        let (live, unchecked) = crate::wifi::audit::check_running(
            std::path::Path::new(crate::wifi::ctrl::DEFAULT_CTRL_DIR),
            &links,
            &crate::wifi::ctrl::ClientOptions::default(),
        );
        findings.extend(live);
        for item in unchecked {
            notes.push(format!(
                "the wpa_supplicant on {} could not be asked for its settings: {}",
                item.ifname, item.error
            ));
        }
    }

    let programs = match (&args.nm_bindir, &args.root) {
        (Some(dir), _) => Programs::in_dir(dir),
        (None, Some(root)) if root != Path::new("/") => Programs::for_image(root),
        (None, _) => Programs::from_path(),
    };

    let nm = nm_view(
        &paths,
        &programs,
        args.root.is_some(),
        &mut notes,
        &mut findings,
    );
    let facts: Vec<LinkFacts> = observed.iter().map(|item| item.facts.clone()).collect();
    if let Some((nm_config, profiles, nm_version)) = &nm {
        let covered = |link: &LinkFacts| {
            daemon_running
                && observed
                    .iter()
                    .any(|item| item.facts.name == link.name && item.policy.managed)
        };
        findings.extend(nm_audit::check_networkmanager(&NmInputs {
            config: nm_config,
            profiles,
            links: &facts,
            version: *nm_version,
            covered: &covered,
        }));
    }

    let coverage: Vec<Coverage> = observed
        .iter()
        .filter(|item| item.facts.current.is_some() || item.facts.permanent.is_some())
        .map(|item| Coverage {
            name: item.link.name.clone(),
            macveil_manages: item.policy.managed,
            nm_anonymizes: own_namespace
                && nm.as_ref().is_some_and(|(nm_config, profiles, version)| {
                    nm_anonymizes(&paths, nm_config, profiles, *version, item)
                }),
        })
        .collect();
    findings.extend(daemon::check_daemon(&daemon, &coverage));

    let report = Report::new(findings, notes, args.strict);
    if args.json {
        let text = serde_json::to_string_pretty(&report).context("failed to encode the report")?;
        writeln!(io::stdout().lock(), "{text}")?;
    } else {
        print_report(&report)?;
    }
    Ok(if report.exposed {
        Status::Failure
    } else {
        Status::Success
    })
}

/// Judges whether the running daemon covers the Wi-Fi links. Each Wi-Fi link here must be
/// managed with an address other than the permanent one, and with random scan addresses. With
/// no Wi-Fi link present (a card unplugged now), the policy of a physical link `wlan0` is judged.
fn wifi_coverage(config: &Config, observed: &[Observed], daemon_running: bool) -> WifiCoverage {
    if !daemon_running {
        return WifiCoverage::default();
    }
    let mut policies: Vec<LinkPolicy> = observed
        .iter()
        .filter(|item| item.facts.kind.is_wifi())
        .map(|item| item.policy.clone())
        .collect();
    if policies.is_empty() {
        policies.push(config.policy_for(&LinkFacts {
            name: String::from("wlan0"),
            kind: LinkKind::Wifi,
            driver: None,
            driver_version: None,
            permanent: None,
            // Any address: a link without one is never managed, and no `mac:` rule can name a
            // card that is not here.
            current: Some(MacAddr([0x02, 0, 0, 0, 0, 0])),
            device: Some(SysfsDevice {
                subsystem: Some(String::from("pci")),
            }),
        }));
    }
    let changes_address = |policy: &LinkPolicy| {
        policy.managed
            && !matches!(
                policy.cloned_mac_address.value,
                ClonedMac::Preserve | ClonedMac::Permanent
            )
    };
    let randomizes_scans = |policy: &LinkPolicy| {
        policy.managed
            && policy
                .scan_rand_mac_address
                .as_ref()
                .is_some_and(|setting| setting.value)
    };
    WifiCoverage {
        address: policies.iter().all(changes_address),
        scans: policies.iter().all(randomizes_scans),
    }
}

/// Loads macveil's own policy. The error lists every problem.
fn load_macveil_config(root: &Path, file: Option<PathBuf>) -> anyhow::Result<Config> {
    let options = LoadOptions {
        file,
        nm_config: false,
    };
    Config::load(&ConfigPaths::under(root), &options).map_err(|ConfigErrors(errors)| {
        let mut message = String::from(
            "macveil's configuration is invalid, so which links it manages is unknown; fix it \
             first ('macveil config check'):",
        );
        for error in &errors {
            message.push('\n');
            message.push_str(&error.to_string());
        }
        anyhow::Error::msg(message)
    })
}

/// Builds the facts the policy is resolved from. In the caller's own namespace sysfs shows
/// whether a device backs the link. Elsewhere a permanent address stands for one.
fn link_facts(link: &Link, own_namespace: bool) -> LinkFacts {
    let device = if own_namespace {
        config::sysfs::read_link(Path::new("/sys"), &link.name)
            .ok()
            .and_then(|facts| facts.device)
    } else {
        link.permanent.map(|_| SysfsDevice::default())
    };
    LinkFacts {
        name: link.name.clone(),
        kind: LinkKind::from_kernel(link.info_kind.as_deref(), link.wireless, link.link_type),
        driver: link.driver.clone(),
        driver_version: None,
        permanent: link.permanent,
        current: link.address,
        device,
    }
}

/// Builds the link checks' input. The reference address of a managed link without a permanent
/// address is recorded at first sight, as `macveil show` records it.
///
/// NOTE: a link whose address another program (NetworkManager, for example) already replaced
/// before macveil first saw it gets that replacement as its reference, and is then reported as
/// up with its reference address.
fn link_states(
    observed: &[Observed],
    addresses: &[IpAddress],
    state_dir: &Path,
    netns_key: &str,
) -> Vec<LinkState> {
    let store = ReferenceStore::new(state_dir);
    let to_record: Vec<&Link> = observed
        .iter()
        .filter(|item| item.policy.managed)
        .map(|item| &item.link)
        .collect();
    let references = target::references(&store, netns_key, &to_record);

    observed
        .iter()
        .map(|item| {
            let link = &item.link;
            LinkState {
                name: link.name.clone(),
                kind: link.kind(),
                up: link.admin_up,
                address: link.address,
                permanent: link.permanent,
                reference: references.get(netns_key, link),
                addr_gen_mode: link.ipv6_addr_gen_mode,
                carries_identity: link.permanent.is_some() || item.policy.managed,
                ipv6: addresses
                    .iter()
                    .filter(|address| address.index == link.index)
                    .filter_map(|address| match address.address {
                        IpAddr::V6(ip) => Some(ip),
                        IpAddr::V4(_) => None,
                    })
                    .collect(),
            }
        })
        .collect()
}

/// NetworkManager's configuration, profiles and version.
type NmView = (NmConfig, Profiles, Option<crate::nm::version::NmVersion>);

/// Reads what the NetworkManager checks need. Without `--root`, a machine without NetworkManager
/// has nothing of it to check. `Err` means its configuration is invalid, and the problems were
/// printed.
fn nm_view(
    paths: &NmPaths,
    programs: &Programs,
    offline: bool,
    notes: &mut Vec<String>,
    findings: &mut Vec<Finding>,
) -> Option<NmView> {
    let version = match version::installed_version(programs) {
        Ok(version) => Some(version),
        Err(VersionError::NotInstalled { .. }) if !offline => {
            notes.push(String::from(
                "NetworkManager is not installed, so its configuration was not checked",
            ));
            return None;
        }
        Err(err) => {
            if !offline {
                notes.push(format!(
                    "{err}; NetworkManager's files were judged by the newest rules macveil knows"
                ));
            }
            None
        }
    };

    let config = match NmConfig::load(&paths.config) {
        Ok(config) => config,
        Err(ConfigErrors(errors)) => {
            // NetworkManager logs what it cannot read and goes on without it, so the keys
            // keep their defaults: preserve, the address the link has.
            findings.extend(errors.iter().map(|error| {
                Finding {
                    code: "nm-config-invalid",
                    severity: Severity::Medium,
                    subject: String::from("NetworkManager configuration"),
                    location: None,
                    leak: format!("NetworkManager cannot use this setting: {error}"),
                    reason:
                        "NetworkManager ignores it, so the key keeps its default, which for the \
                         MAC keys leaves the hardware address in place"
                            .into(),
                    fix: String::from(
                        "correct the value; 'macveil nm status' lists every problem in \
                     NetworkManager's files",
                    ),
                }
            }));
            notes.push(String::from(
                "NetworkManager's profiles were not checked, because its configuration has \
                 invalid settings",
            ));
            return None;
        }
    };
    let profiles = Profiles::load(&paths.root);
    for skipped in &profiles.skipped {
        notes.push(format!(
            "profile {} was not checked: {}",
            skipped.display_path, skipped.reason
        ));
    }
    Some((config, profiles, version))
}

/// Returns whether NetworkManager replaces the link's hardware address. It must manage the link,
/// and the profile active on it must give another address. When no profile is active, every
/// profile that can activate on the link must.
fn nm_anonymizes(
    paths: &NmPaths,
    config: &NmConfig,
    profiles: &Profiles,
    version: Option<crate::nm::version::NmVersion>,
    item: &Observed,
) -> bool {
    let Some(state) = device::device_state(&paths.root, item.link.index) else {
        return false;
    };
    if !state.managed {
        return false;
    }
    let anonymizes = |profile: &crate::nm::profile::Profile| {
        resolve::effective_mac(config, profile, &item.facts, version)
            .is_ok_and(|mac| !mac.keeps_hardware_address(item.facts.permanent, false))
    };

    if let Some(uuid) = &state.connection_uuid {
        return profiles.find(uuid).is_ok_and(anonymizes);
    }
    let usable: Vec<&crate::nm::profile::Profile> = profiles
        .profiles
        .iter()
        .filter(|profile| profile.kind.has_mac_policy())
        .filter(|profile| {
            resolve::candidates(profile, std::slice::from_ref(&item.facts))
                .iter()
                .any(|candidate| candidate.present)
        })
        .collect();
    !usable.is_empty() && usable.into_iter().all(anonymizes)
}

/// Returns whether colours go to stdout: it is a terminal, and `NO_COLOR` is unset
/// (no-color.org).
fn use_colour() -> bool {
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn print_report(report: &Report) -> anyhow::Result<()> {
    let colour = use_colour();
    let mut out = io::stdout().lock();
    for finding in &report.findings {
        writeln!(out, "{}", finding_line(finding, colour))?;
    }
    for note in &report.notes {
        writeln!(out, "note: {note}")?;
    }

    let counts = report.counts;
    let total = counts.high + counts.medium + counts.low;
    let verdict = if report.exposed {
        "the hardware identity is exposed"
    } else {
        "nothing exposes the hardware identity"
    };
    writeln!(
        out,
        "{total} finding{} ({} high, {} medium, {} low): {verdict}",
        if total == 1 { "" } else { "s" },
        counts.high,
        counts.medium,
        counts.low
    )?;
    Ok(())
}

/// Formats a finding on one line: severity, subject, what leaks, why, the fix and the place.
fn finding_line(finding: &Finding, colour: bool) -> String {
    let (label, code) = match finding.severity {
        Severity::High => ("HIGH  ", "\x1b[1;31m"),
        Severity::Medium => ("MEDIUM", "\x1b[33m"),
        Severity::Low => ("LOW   ", "\x1b[36m"),
    };
    let label = if colour {
        format!("{code}{label}\x1b[0m")
    } else {
        label.to_string()
    };
    let place = match &finding.location {
        Some(location) => format!(" [{location}]"),
        None => String::new(),
    };
    format!(
        "{label} {}: {}; why: {}; fix: {}{place} ({})",
        finding.subject, finding.leak, finding.reason, finding.fix, finding.code
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::AssignType;

    fn finding(severity: Severity) -> Finding {
        Finding {
            code: "link-permanent-address",
            severity,
            subject: "eth0".into(),
            location: Some("/etc/x:1".into()),
            leak: "eth0 is up with its permanent address".into(),
            reason: "it identifies the machine".into(),
            fix: "macveil set eth0".into(),
        }
    }

    #[test]
    fn finding_line_is_one_line() {
        let line = finding_line(&finding(Severity::High), false);
        assert_eq!(
            line,
            "HIGH   eth0: eth0 is up with its permanent address; why: it identifies the \
             machine; fix: macveil set eth0 [/etc/x:1] (link-permanent-address)"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn colour_only_wraps_label() {
        let line = finding_line(&finding(Severity::Medium), true);
        assert!(line.starts_with("\x1b[33mMEDIUM\x1b[0m eth0: "), "{line:?}");
        let plain = finding_line(&finding(Severity::Low), false);
        assert!(!plain.contains('\x1b'));
    }

    #[test]
    fn foreign_namespace_facts_use_permanent_address() {
        let mut link = Link {
            index: 2,
            name: "eth0".into(),
            info_kind: None,
            wireless: false,
            link_type: 1,
            driver: Some("e1000e".into()),
            admin_up: true,
            lower_up: true,
            operstate: crate::link::OperState::Up,
            address: Some("3c:22:fb:01:02:03".parse().unwrap()),
            permanent: Some("3c:22:fb:01:02:03".parse().unwrap()),
            permanent_source: None,
            assign_type: AssignType::Permanent,
            parent: None,
            ipv6_addr_gen_mode: Some(0),
        };
        let facts = link_facts(&link, false);
        assert!(facts.is_physical());
        assert_eq!(facts.kind, LinkKind::Ethernet);

        link.permanent = None;
        link.info_kind = Some("veth".into());
        let facts = link_facts(&link, false);
        assert!(!facts.is_physical());
        assert_eq!(facts.kind, LinkKind::Veth);
    }
}
