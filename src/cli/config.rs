//! `macveil config check`: validate the configuration and show the policy each link of the
//! caller's network namespace gets.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::Status;
use crate::config::{
    self, ClonedMac, Config, ConfigPaths, LinkFacts, LinkPolicy, LoadOptions, ManageReason, Origin,
    Setting, Source,
};
use crate::daemon::facts;
use crate::generate::mask::Mask;
use crate::link::state::{DEFAULT_STATE_DIR, ReferenceStore, References};
use crate::link::{LinkHandle, LinkOps, Netns};

/// The sysfs mount of the caller's own namespace.
const SYSFS: &str = "/sys";

pub(super) const EXAMPLES: &str = "\
Examples:
  macveil config check
  macveil config check ./macveil.conf
  macveil config check --nm-config --json";

/// Options of `macveil config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The configuration subcommand.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// The configuration subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the policy of each link in /sys/class/net.
    #[command(after_help = EXAMPLES)]
    Check(CheckArgs),
}

/// Options of `macveil config check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Check this file instead of /etc/macveil/macveil.conf and /etc/macveil/conf.d/*.conf.
    pub file: Option<PathBuf>,

    /// Also read NetworkManager's configuration files, before macveil's own.
    #[arg(long)]
    pub nm_config: bool,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,

    /// Read the configuration files under DIR instead of / (for example a mounted system
    /// image).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Read links from this copy of a sysfs tree alone, instead of from the kernel and /sys.
    #[arg(long, value_name = "DIR", hide = true, default_value = SYSFS)]
    pub sysfs: PathBuf,
}

pub(super) fn run(args: &ConfigArgs) -> anyhow::Result<Status> {
    match &args.command {
        ConfigCommand::Check(check) => run_check(check),
    }
}

fn run_check(args: &CheckArgs) -> anyhow::Result<Status> {
    let paths = match &args.root {
        Some(root) => {
            super::require_root_dir(root)?;
            ConfigPaths::under(root)
        }
        None => ConfigPaths::system(),
    };
    let options = LoadOptions {
        file: args.file.clone(),
        nm_config: args.nm_config,
    };

    let config = match Config::load(&paths, &options) {
        Ok(config) => config,
        Err(errors) => {
            let mut err = io::stderr().lock();
            for error in &errors.0 {
                writeln!(err, "macveil: error: {error}")?;
            }
            writeln!(
                err,
                "macveil: the configuration is invalid ({} problem{}); the daemon would not start \
                 with it, and a reload would keep the running policy",
                errors.0.len(),
                if errors.0.len() == 1 { "" } else { "s" }
            )?;
            if args.json {
                let report = InvalidReport {
                    valid: false,
                    errors: errors.0.iter().map(ToString::to_string).collect(),
                };
                print_json(&report)?;
            }
            return Ok(Status::Error);
        }
    };

    {
        let mut err = io::stderr().lock();
        for warning in config.warnings() {
            writeln!(err, "macveil: warning: {warning}")?;
        }
    }

    let links = read_links(&args.sysfs)?;
    let policies: Vec<(LinkFacts, LinkPolicy)> = links
        .into_iter()
        .map(|link| {
            let policy = config.policy_for(&link);
            (link, policy)
        })
        .collect();

    {
        let mut err = io::stderr().lock();
        for (link, policy) in &policies {
            if let Some(warning) = link_warning(link, policy) {
                writeln!(err, "macveil: warning: {}: {warning}", link.name)?;
            }
        }
    }

    if args.json {
        print_json(&report(&config, &policies))?;
    } else {
        print_text(&config, &policies)?;
    }
    Ok(Status::Success)
}

/// Reads the facts of the caller's links as the daemon builds them: the list, kind, driver
/// (`ETHTOOL_GDRVINFO`) and permanent address from the kernel, the device from sysfs, and the
/// reference address the daemon recorded for a link without a permanent one. A `--sysfs` copy
/// other than `/sys` is read on its own, because the kernel's links are not the copy's.
fn read_links(sysfs: &Path) -> anyhow::Result<Vec<LinkFacts>> {
    let sysfs_net = sysfs.join("class/net");
    if sysfs != Path::new(SYSFS) {
        return config::sysfs::read_links(sysfs)
            .with_context(|| format!("failed to list the links in {}", sysfs_net.display()));
    }

    let mut handle = LinkHandle::open(&Netns::Current)
        .context("failed to open a netlink socket to list the links")?;
    let links = handle.links().context("failed to list the links")?;
    let references = match ReferenceStore::new(DEFAULT_STATE_DIR).load() {
        Ok(references) => references,
        Err(err) => {
            log::warn!("{err}; mac: entries see no recorded reference addresses");
            References::default()
        }
    };
    let netns = handle.netns_key().to_string();
    Ok(links
        .iter()
        .map(|link| {
            let reference = references.get(&netns, link);
            facts::of(link, reference, Some(&sysfs_net))
        })
        .collect())
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    // serde_json would wrap a write error in its own error type, which hides a closed stdout
    // from the caller's broken-pipe check. Writing a finished string keeps it an io::Error.
    let text = serde_json::to_string_pretty(value).context("failed to encode the report")?;
    writeln!(io::stdout().lock(), "{text}")?;
    Ok(())
}

/// One line of a link's policy: the key, its value as text and where it came from.
struct Row {
    key: &'static str,
    value: String,
    source: Source,
}

fn row<T>(key: &'static str, setting: &Setting<T>, show: impl Fn(&T) -> String) -> Row {
    Row {
        key,
        value: show(&setting.value),
        source: setting.source.clone(),
    }
}

fn yes_no(value: &bool) -> String {
    String::from(if *value { "yes" } else { "no" })
}

fn rows(policy: &LinkPolicy) -> Vec<Row> {
    let show_mask = |mask: &Option<Mask>| match mask {
        Some(mask) => mask.to_string(),
        None => String::from("none"),
    };

    let mut rows = vec![
        row(
            policy.cloned_mac_address_key(),
            &policy.cloned_mac_address,
            ToString::to_string,
        ),
        row("connection.stable-id", &policy.stable_id, |id| match id {
            Some(id) => id.clone(),
            None => String::from("unset (the connection UUID)"),
        }),
        row(
            policy.generate_mac_address_mask_key(),
            &policy.generate_mac_address_mask,
            show_mask,
        ),
    ];
    if let Some(scan) = &policy.scan_rand_mac_address {
        rows.push(row("wifi.scan-rand-mac-address", scan, yes_no));
    }
    if let Some(scan_mask) = &policy.scan_generate_mac_address_mask {
        rows.push(row(
            "wifi.scan-generate-mac-address-mask",
            scan_mask,
            show_mask,
        ));
    }
    if policy.wifi {
        rows.push(row(
            "macveil.wifi-connect",
            &policy.wifi_connect,
            ToString::to_string,
        ));
    }
    rows.push(row(
        "macveil.on-failure",
        &policy.on_failure,
        ToString::to_string,
    ));
    rows.push(row(
        "macveil.apply-to-running",
        &policy.apply_to_running,
        yes_no,
    ));
    rows.push(row(
        "macveil.random-rotate",
        &policy.random_rotate,
        |period| match period {
            Some(period) => format!("{} s", period.as_secs()),
            None => String::from("0 (no rotation)"),
        },
    ));
    rows
}

fn print_text(config: &Config, policies: &[(LinkFacts, LinkPolicy)]) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    if config.is_embedded_default() {
        writeln!(
            out,
            "configuration: the embedded default (no configuration file exists)"
        )?;
    } else {
        let files: Vec<&str> = config
            .files()
            .iter()
            .map(|file| match file.as_str() {
                config::EMBEDDED_DEFAULT_NAME => "the embedded default",
                file => file,
            })
            .collect();
        writeln!(out, "configuration: {}", files.join(", then "))?;
    }
    writeln!(out, "the configuration is valid")?;

    for (link, policy) in policies {
        writeln!(out)?;
        let driver = match &link.driver {
            Some(driver) => format!("driver {driver}"),
            None => String::from("no driver"),
        };
        let device = match &link.device {
            Some(device) => match &device.subsystem {
                Some(subsystem) => format!("device on {subsystem}"),
                None => String::from("device"),
            },
            None => String::from("no device"),
        };
        writeln!(out, "{} ({}, {driver}, {device})", link.name, link.kind)?;
        let managed = if policy.managed { "yes" } else { "no" };
        writeln!(out, "  managed: {managed} ({})", policy.reason)?;
        if let Some(warning) = link_warning(link, policy) {
            writeln!(out, "  WARNING: {warning}")?;
        }
        // A link without a hardware address has no policy worth showing.
        if matches!(
            policy.reason,
            ManageReason::Loopback | ManageReason::NoHardwareAddress
        ) {
            continue;
        }
        let rows = rows(policy);
        let key_width = rows.iter().map(|row| row.key.len()).max().unwrap_or(0);
        let value_width = rows
            .iter()
            .map(|row| row.value.chars().count())
            .max()
            .unwrap_or(0);
        for row in rows {
            writeln!(
                out,
                "  {:<key_width$}  {:<value_width$}  {}",
                row.key, row.value, row.source
            )?;
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct InvalidReport {
    valid: bool,
    errors: Vec<String>,
}

#[derive(Serialize)]
struct Report {
    valid: bool,
    /// No configuration file exists, so the embedded default alone is in effect. It is the
    /// base layer under every file either way, and `files` lists it first.
    embedded_default_only: bool,
    files: Vec<String>,
    warnings: Vec<String>,
    links: Vec<LinkReport>,
}

#[derive(Serialize)]
struct LinkReport {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    driver: Option<String>,
    device: bool,
    subsystem: Option<String>,
    managed: bool,
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
    settings: Vec<SettingReport>,
}

#[derive(Serialize)]
struct SettingReport {
    key: &'static str,
    value: String,
    source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    section: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
}

/// Explains why a managed link may keep the address it should hide: no section sets its
/// address, or the explicit address is the link's permanent one, which the daemon refuses to
/// apply and so keeps the link down.
fn link_warning(link: &LinkFacts, policy: &LinkPolicy) -> Option<String> {
    if let Some(warning) = policy.unprotected_warning() {
        return Some(warning);
    }
    let ClonedMac::Address(address) = policy.cloned_mac_address.value else {
        return None;
    };
    (policy.managed && link.permanent == Some(address)).then(|| {
        format!(
            "{} ({}) is the link's permanent address, so the daemon keeps the link down; set \
             another address, or permanent to use the hardware address on purpose",
            policy.cloned_mac_address_key(),
            policy.cloned_mac_address.source
        )
    })
}

fn report(config: &Config, policies: &[(LinkFacts, LinkPolicy)]) -> Report {
    let links = policies
        .iter()
        .map(|(link, policy)| LinkReport {
            name: link.name.clone(),
            kind: link.kind.to_string(),
            driver: link.driver.clone(),
            device: link.device.is_some(),
            subsystem: link
                .device
                .as_ref()
                .and_then(|device| device.subsystem.clone()),
            managed: policy.managed,
            reason: policy.reason.to_string(),
            warning: link_warning(link, policy),
            settings: rows(policy).into_iter().map(setting_report).collect(),
        })
        .collect();
    Report {
        valid: true,
        embedded_default_only: config.is_embedded_default(),
        files: config.files().to_vec(),
        warnings: config.warnings().iter().map(ToString::to_string).collect(),
        links,
    }
}

fn setting_report(row: Row) -> SettingReport {
    let (source, origin): (&'static str, Option<&Origin>) = match &row.source {
        Source::Default => ("default", None),
        Source::Configured(origin) => ("configured", Some(origin)),
        Source::StoppedAt(origin) => ("stop-match", Some(origin)),
    };
    SettingReport {
        key: row.key,
        value: row.value,
        source,
        section: origin.map(|origin| origin.section.clone()),
        file: origin.map(|origin| origin.file.clone()),
        line: origin.map(|origin| origin.line),
    }
}
