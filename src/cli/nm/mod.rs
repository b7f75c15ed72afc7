//! `macveil nm status|install|predict`: NetworkManager's MAC privacy settings, as NetworkManager
//! resolves them, installed as a drop-in and checked against the addresses it applies.
//!
//! This file contains the options and the helpers the subcommands share. Each subcommand has a
//! file of its own.

mod install;
mod predict;
mod status;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::Status;
use crate::addr::MacAddr;
use crate::config::keyfile::KeyFile;
use crate::config::{ClonedMac, ConfigErrors, LinkFacts, SourceText, sysfs};
use crate::nm::NmPaths;
use crate::nm::conf::NmConfig;
use crate::nm::device::{self, DeviceState};
use crate::nm::install::{self as dropin, DEFAULT_POLICY, Policy};
use crate::nm::predict::{self as nm_predict, BootId, HostInputs, Prediction};
use crate::nm::profile::{Profile, Profiles};
use crate::nm::resolve::{self, Candidate, EffectiveMac, ValueSource, candidate_name};
use crate::nm::verify::{self, Activation};
use crate::nm::version::{self, FEATURES, Feature, NmVersion, Programs};
use crate::secret_key::MachineId;

pub(super) const EXAMPLES: &str = "\
Examples:
  macveil nm status
  sudo macveil nm install --dry-run
  sudo macveil nm install --verify --timeout 120
  sudo macveil nm predict 'Wired connection 1'
  sudo macveil nm predict 7a7fc2ab-6b38-4c4c-8b6d-5f1a5e1f6e3a --ifname eth1 --json";

/// Options of `macveil nm`.
#[derive(Debug, Args)]
pub struct NmArgs {
    /// The NetworkManager subcommand.
    #[command(subcommand)]
    pub command: NmCommand,
}

/// The NetworkManager subcommands.
#[derive(Debug, Subcommand)]
pub enum NmCommand {
    /// Show NetworkManager's version, which MAC keys it supports, and the MAC policy of each
    /// profile and device.
    Status(StatusArgs),

    /// Install macveil's MAC policy as /etc/NetworkManager/conf.d/90-macveil.conf and make
    /// NetworkManager reload it.
    Install(InstallArgs),

    /// Print the address NetworkManager will give a profile at its next activation.
    Predict(PredictArgs),
}

/// The location of NetworkManager's files and programs.
#[derive(Debug, Args)]
pub struct NmTarget {
    /// Read and write NetworkManager's files below DIR instead of / (for example a mounted system
    /// image). The links are read from DIR/sys.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Run NetworkManager and nmcli from DIR instead of PATH (for tests).
    #[arg(long, value_name = "DIR", hide = true)]
    pub nm_bindir: Option<PathBuf>,
}

impl NmTarget {
    fn paths(&self) -> anyhow::Result<NmPaths> {
        let root = self.root.as_deref().unwrap_or(Path::new("/"));
        super::require_root_dir(root)?;
        Ok(NmPaths::under(root))
    }

    fn programs(&self) -> Programs {
        match (&self.nm_bindir, &self.root) {
            (Some(dir), _) => Programs::in_dir(dir),
            (None, Some(root)) if root != Path::new("/") => Programs::for_image(root),
            (None, _) => Programs::from_path(),
        }
    }
}

/// Options of `macveil nm status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub target: NmTarget,
}

/// Options of `macveil nm install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Install this NetworkManager configuration file instead of macveil's default policy
    /// (random scans, and a stable address per profile and boot).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Show what would be written and checked, and change nothing.
    #[arg(long, conflicts_with = "verify")]
    pub dry_run: bool,

    /// After installing, wait for the next activation of each active profile (or, when none is
    /// active, for the next activation of any) and check that its address is the one the
    /// policy gives.
    #[arg(long)]
    pub verify: bool,

    /// Maximum time in seconds that --verify waits for the activations.
    #[arg(long, value_name = "SECS", default_value_t = 120, requires = "verify")]
    pub timeout: u64,

    #[command(flatten)]
    pub target: NmTarget,
}

/// Options of `macveil nm predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The profile: its name (connection.id) or UUID.
    pub connection: String,

    /// The interface the profile activates on. Default: its connection.interface-name, or the
    /// only device of its type.
    #[arg(long, value_name = "NAME")]
    pub ifname: Option<String>,

    /// NetworkManager's secret key. Default: /var/lib/NetworkManager/secret_key below the root.
    #[arg(long, value_name = "FILE")]
    pub secret_key: Option<PathBuf>,

    /// The machine id, or a file containing it. Default: /etc/machine-id below the root, or
    /// /var/lib/dbus/machine-id when that cannot be read, as NetworkManager reads it.
    #[arg(long, value_name = "ID|FILE")]
    pub machine_id: Option<String>,

    /// The boot id for ${BOOT}. Default: /proc/sys/kernel/random/boot_id below the root.
    #[arg(long, value_name = "ID")]
    pub boot_id: Option<String>,

    /// The device's address before NetworkManager changes it, which a mask without OUIs takes
    /// its bits from. Default: the device's current address.
    #[arg(long, value_name = "ADDR")]
    pub current: Option<MacAddr>,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub target: NmTarget,
}

pub(super) fn run(args: &NmArgs) -> anyhow::Result<Status> {
    match &args.command {
        NmCommand::Status(args) => status::run_status(args),
        NmCommand::Install(args) => install::run_install(args),
        NmCommand::Predict(args) => predict::run_predict(args),
    }
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    // A finished string keeps a closed stdout an io::Error, which the caller treats as the end
    // of output.
    let text = serde_json::to_string_pretty(value).context("failed to encode the report")?;
    writeln!(io::stdout().lock(), "{text}")?;
    Ok(())
}

fn warn(message: impl std::fmt::Display) {
    eprintln!("macveil: warning: {message}");
}

/// Loads NetworkManager's configuration, or prints every problem and returns `None`.
fn load_config(paths: &NmPaths) -> Option<NmConfig> {
    match NmConfig::load(&paths.config) {
        Ok(config) => {
            for warning in config.warnings() {
                warn(warning);
            }
            Some(config)
        }
        Err(ConfigErrors(errors)) => {
            for error in &errors {
                eprintln!("macveil: error: {error}");
            }
            eprintln!(
                "macveil: NetworkManager's configuration is invalid ({} problem{}); fix it first",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            None
        }
    }
}

/// Reads the links below the root's sysfs; none when it cannot be read.
fn read_links(paths: &NmPaths) -> Vec<LinkFacts> {
    match sysfs::read_links(&paths.sysfs) {
        Ok(links) => links,
        Err(err) => {
            warn(format_args!(
                "cannot list the links in {}: {err}",
                paths.sysfs.join("class/net").display()
            ));
            Vec::new()
        }
    }
}

/// Loads the profiles and warns about the files NetworkManager would skip.
fn load_profiles(paths: &NmPaths) -> Profiles {
    let profiles = Profiles::load(&paths.root);
    for skipped in &profiles.skipped {
        warn(format_args!(
            "skipping profile {}: {}",
            skipped.display_path, skipped.reason
        ));
    }
    profiles
}

#[derive(Serialize)]
struct MacReport {
    key: &'static str,
    mode: String,
    mode_source: ValueSource,
    stable_id: Option<String>,
    stable_id_source: ValueSource,
    mask: Option<String>,
    mask_source: ValueSource,
    notes: Vec<String>,
}

impl MacReport {
    fn new(mac: &EffectiveMac) -> MacReport {
        MacReport {
            key: mac.key,
            mode: mac.mode.to_string(),
            mode_source: mac.mode_source.clone(),
            stable_id: mac.stable_id.clone(),
            stable_id_source: mac.stable_id_source.clone(),
            mask: mac.mask.as_ref().map(ToString::to_string),
            mask_source: mac.mask_source.clone(),
            notes: mac.notes.clone(),
        }
    }
}
