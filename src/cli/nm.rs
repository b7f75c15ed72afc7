//! `macveil nm status|install|predict`: NetworkManager's MAC privacy settings, as NetworkManager
//! resolves them, installed as a drop-in and checked against the addresses it applies.

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
use crate::nm::install::{self, DEFAULT_POLICY, Policy};
use crate::nm::predict::{self, BootId, HostInputs, Prediction};
use crate::nm::profile::{Profile, Profiles};
use crate::nm::resolve::{self, Candidate, EffectiveMac, ValueSource, candidate_name};
use crate::nm::verify::{self, Activation};
use crate::nm::version::{self, FEATURES, Feature, NmVersion, Programs, VersionError};
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

/// Where NetworkManager's files and programs are.
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
    fn paths(&self) -> NmPaths {
        NmPaths::under(self.root.as_deref().unwrap_or(Path::new("/")))
    }

    fn programs(&self) -> Programs {
        match &self.nm_bindir {
            Some(dir) => Programs::in_dir(dir),
            None => Programs::from_path(),
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
        NmCommand::Status(status) => run_status(status),
        NmCommand::Install(install) => run_install(install),
        NmCommand::Predict(predict) => run_predict(predict),
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

/// The installed version, or the reason it is unknown.
fn installed(programs: &Programs) -> Result<NmVersion, VersionError> {
    version::installed_version(programs)
}

// ---------------------------------------------------------------------------------------------
// status

#[derive(Serialize)]
struct StatusReport {
    installed: Option<NmVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    installed_error: Option<String>,
    running: Option<NmVersion>,
    features: Vec<FeatureReport>,
    files: Vec<String>,
    profiles: Vec<ProfileReport>,
    devices: Vec<DeviceReport>,
    skipped_profiles: Vec<SkippedReport>,
}

#[derive(Serialize)]
struct FeatureReport {
    name: &'static str,
    since: NmVersion,
    /// Whether the version in effect (the running one, else the installed one) supports it;
    /// none when no version is known.
    supported: Option<bool>,
    /// Whether macveil's default policy uses it.
    macveil_policy: bool,
    /// The places in NetworkManager's files and profiles that use it.
    used_at: Vec<String>,
}

#[derive(Serialize)]
struct ProfileReport {
    id: String,
    uuid: String,
    #[serde(rename = "type")]
    kind: String,
    file: String,
    devices: Vec<ProfileDeviceReport>,
}

#[derive(Serialize)]
struct ProfileDeviceReport {
    device: String,
    present: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac: Option<MacReport>,
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
    loadable: bool,
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
            loadable: mac.loadable,
            notes: mac.notes.clone(),
        }
    }
}

#[derive(Serialize)]
struct DeviceReport {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    /// Whether NetworkManager manages it; none when NetworkManager has no record of it.
    nm_managed: Option<bool>,
    active_profile: Option<String>,
    default_key: &'static str,
    default_mode: String,
    default_mode_source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scan_rand_mac_address: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scan_rand_mac_address_source: Option<String>,
}

#[derive(Serialize)]
struct SkippedReport {
    file: String,
    reason: String,
}

fn run_status(args: &StatusArgs) -> anyhow::Result<Status> {
    let paths = args.target.paths();
    let programs = args.target.programs();

    let installed = installed(&programs);
    let running = version::running_version(&programs);
    let in_effect = running.or(installed.as_ref().ok().copied());

    let Some(config) = load_config(&paths) else {
        return Ok(Status::Error);
    };
    let profiles = load_profiles(&paths);
    let links = read_links(&paths);

    let features = feature_reports(&config, &profiles, in_effect);
    let profile_reports = profiles
        .profiles
        .iter()
        .filter(|profile| profile.kind.has_mac_policy())
        .map(|profile| ProfileReport {
            id: profile.id.clone(),
            uuid: profile.uuid.clone(),
            kind: profile.raw_type.clone(),
            file: profile.display_path.clone(),
            devices: resolve::candidates(profile, &links)
                .iter()
                .map(|candidate| profile_device(&config, profile, candidate, in_effect))
                .collect(),
        })
        .collect();
    let devices = links
        .iter()
        .filter(|link| link.kind != crate::config::LinkKind::Loopback)
        .map(|link| device_report(&paths, &config, &profiles, link))
        .collect();

    let report = StatusReport {
        installed: installed.as_ref().ok().copied(),
        installed_error: installed.as_ref().err().map(ToString::to_string),
        running,
        features,
        files: config.files().to_vec(),
        profiles: profile_reports,
        devices,
        skipped_profiles: profiles
            .skipped
            .iter()
            .map(|skipped| SkippedReport {
                file: skipped.display_path.clone(),
                reason: skipped.reason.clone(),
            })
            .collect(),
    };

    if args.json {
        print_json(&report)?;
    } else {
        print_status(&report)?;
    }
    Ok(Status::Success)
}

/// Lists every feature with its support and where NetworkManager's files and profiles use it.
fn feature_reports(
    config: &NmConfig,
    profiles: &Profiles,
    version: Option<NmVersion>,
) -> Vec<FeatureReport> {
    let mut used: BTreeMap<Feature, Vec<String>> = BTreeMap::new();
    for file in config.files() {
        let Ok(text) = fs::read(file) else { continue };
        let Ok(parsed) = KeyFile::parse(&text) else {
            continue;
        };
        for (feature, place) in install::features_in(file, &parsed) {
            used.entry(feature).or_default().push(place);
        }
    }
    for profile in &profiles.profiles {
        let mut add = |feature: Feature, line: usize| {
            used.entry(feature)
                .or_default()
                .push(format!("{}:{line}", profile.display_path));
        };
        if let Some(cloned) = &profile.cloned_mac_address {
            add(Feature::ClonedMacAddress, cloned.line);
            if cloned.value == "stable-ssid" {
                add(Feature::StableSsid, cloned.line);
            }
        }
        if let Some(stable_id) = &profile.stable_id {
            for feature in Feature::in_stable_id(&stable_id.value) {
                add(feature, stable_id.line);
            }
        }
        if let Some(mask) = &profile.generate_mac_address_mask {
            add(Feature::GenerateMacAddressMask, mask.line);
        }
    }

    let policy =
        Policy::check("(default policy)", DEFAULT_POLICY).expect("the default policy is valid");
    FEATURES
        .iter()
        .map(|feature| FeatureReport {
            name: feature.name(),
            since: feature.since(),
            supported: version.map(|version| feature.supported_by(version)),
            macveil_policy: policy.features.iter().any(|(used, _)| used == feature),
            used_at: used.remove(feature).unwrap_or_default(),
        })
        .collect()
}

fn profile_device(
    config: &NmConfig,
    profile: &Profile,
    candidate: &Candidate,
    version: Option<NmVersion>,
) -> ProfileDeviceReport {
    let (mac, error) = match resolve::effective_mac(config, profile, &candidate.link, version) {
        Ok(mac) => (Some(MacReport::new(&mac)), None),
        Err(err) => (None, Some(err.to_string())),
    };
    ProfileDeviceReport {
        device: candidate_name(candidate),
        present: candidate.present,
        error,
        mac,
    }
}

fn device_report(
    paths: &NmPaths,
    config: &NmConfig,
    profiles: &Profiles,
    link: &LinkFacts,
) -> DeviceReport {
    let state: Option<DeviceState> = device::link_index(&paths.sysfs, &link.name)
        .and_then(|index| device::device_state(&paths.root, index));
    let policy = config.policy_for(link);
    let active_profile = state
        .as_ref()
        .and_then(|state| state.connection_uuid.as_ref())
        .map(|uuid| match profiles.find(uuid) {
            Ok(profile) => format!("{} ({uuid})", profile.id),
            Err(_) => uuid.clone(),
        });
    DeviceReport {
        name: link.name.clone(),
        kind: link.kind.to_string(),
        nm_managed: state.as_ref().map(|state| state.managed),
        active_profile,
        default_key: policy.cloned_mac_address_key(),
        default_mode: policy.cloned_mac_address.value.to_string(),
        default_mode_source: ValueSource::Global(policy.cloned_mac_address.source.clone())
            .to_string(),
        scan_rand_mac_address: policy.scan_rand_mac_address.as_ref().map(|scan| scan.value),
        scan_rand_mac_address_source: policy
            .scan_rand_mac_address
            .as_ref()
            .map(|scan| ValueSource::Global(scan.source.clone()).to_string()),
    }
}

fn print_status(report: &StatusReport) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match (&report.installed, &report.installed_error) {
        (Some(version), _) => writeln!(out, "NetworkManager {version} is installed")?,
        (None, Some(error)) => writeln!(out, "NetworkManager: {error}")?,
        (None, None) => writeln!(out, "NetworkManager: version unknown")?,
    }
    match &report.running {
        Some(version) => writeln!(out, "NetworkManager {version} is running (D-Bus)")?,
        None => writeln!(
            out,
            "NetworkManager is not running, or nmcli cannot reach it"
        )?,
    }

    writeln!(out)?;
    writeln!(
        out,
        "MAC keys and values (first version; \"policy\" marks those 'macveil nm install' \
         writes by default):"
    )?;
    for feature in &report.features {
        let support = match feature.supported {
            Some(true) => "supported",
            Some(false) => "MISSING  ",
            None => "unknown  ",
        };
        let policy = if feature.macveil_policy {
            "policy"
        } else {
            "      "
        };
        writeln!(
            out,
            "  {support}  {policy}  {:<7} {}",
            feature.since.to_string(),
            feature.name
        )?;
        for place in &feature.used_at {
            writeln!(out, "{:30}used at {place}", "")?;
        }
    }

    writeln!(out)?;
    writeln!(out, "Configuration files, in NetworkManager's order:")?;
    if report.files.is_empty() {
        writeln!(out, "  none")?;
    }
    for file in &report.files {
        writeln!(out, "  {file}")?;
    }

    writeln!(out)?;
    writeln!(out, "Profiles:")?;
    if report.profiles.is_empty() {
        writeln!(out, "  none with a MAC address")?;
    }
    for profile in &report.profiles {
        writeln!(
            out,
            "  '{}' ({}, {}) {}",
            profile.id, profile.uuid, profile.kind, profile.file
        )?;
        for device in &profile.devices {
            match (&device.mac, &device.error) {
                (Some(mac), _) => {
                    writeln!(
                        out,
                        "    on {}: {}={} ({})",
                        device.device, mac.key, mac.mode, mac.mode_source
                    )?;
                    let stable_id = mac
                        .stable_id
                        .clone()
                        .unwrap_or_else(|| String::from("unset (the profile's UUID)"));
                    writeln!(
                        out,
                        "      connection.stable-id={stable_id} ({})",
                        mac.stable_id_source
                    )?;
                    let mask = mac.mask.clone().unwrap_or_else(|| String::from("none"));
                    writeln!(out, "      mask={mask} ({})", mac.mask_source)?;
                    for note in &mac.notes {
                        writeln!(out, "      note: {note}")?;
                    }
                }
                (None, Some(error)) => writeln!(out, "    on {}: {error}", device.device)?,
                (None, None) => {}
            }
        }
    }

    writeln!(out)?;
    writeln!(out, "Devices:")?;
    for device in &report.devices {
        let managed = match device.nm_managed {
            Some(true) => "managed by NetworkManager",
            Some(false) => "not managed by NetworkManager",
            None => "unknown to NetworkManager",
        };
        let active = match &device.active_profile {
            Some(profile) => format!(", active profile {profile}"),
            None => String::new(),
        };
        writeln!(
            out,
            "  {} ({}): {managed}{active}",
            device.name, device.kind
        )?;
        writeln!(
            out,
            "    default {}={} ({})",
            device.default_key, device.default_mode, device.default_mode_source
        )?;
        if let (Some(scan), Some(source)) = (
            device.scan_rand_mac_address,
            &device.scan_rand_mac_address_source,
        ) {
            let value = if scan { "yes" } else { "no" };
            writeln!(out, "    wifi.scan-rand-mac-address={value} ({source})")?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// install

fn run_install(args: &InstallArgs) -> anyhow::Result<Status> {
    let paths = args.target.paths();
    let programs = args.target.programs();

    let (name, text) = match &args.policy {
        Some(path) => {
            let text = fs::read_to_string(path)
                .with_context(|| format!("cannot read the policy {}", path.display()))?;
            (path.display().to_string(), text)
        }
        None => (String::from("(default policy)"), DEFAULT_POLICY.to_string()),
    };
    let policy = Policy::check(&name, &text)?;

    let version = match installed(&programs) {
        Ok(version) => version,
        Err(err) => {
            eprintln!(
                "macveil: error: {err}; the drop-in was not written, because NetworkManager's \
                 version decides which keys it understands"
            );
            return Ok(Status::Error);
        }
    };
    policy.require(version)?;

    let content = policy.content();
    let plan = install::plan(&paths.root, &content)
        .with_context(|| format!("cannot read {}", paths.config.nm_etc_dir.display()))?;

    let Some(config) = config_with(&paths, &plan.target, &content) else {
        return Ok(Status::Error);
    };
    let profiles = load_profiles(&paths);
    let links = read_links(&paths);
    report_overrides(&config, &profiles, &links, &plan.target, version);

    let mut out = io::stdout().lock();
    if args.dry_run {
        writeln!(
            out,
            "NetworkManager {version} supports every key of the policy"
        )?;
        if plan.unchanged {
            writeln!(
                out,
                "{} is already installed; nothing to write",
                plan.target.display()
            )?;
        } else {
            if let Some(backup) = &plan.backup {
                writeln!(out, "would keep the current file as {}", backup.display())?;
            }
            writeln!(out, "would write {}:", plan.target.display())?;
            write!(out, "{content}")?;
        }
        writeln!(
            out,
            "would run 'nmcli general reload conf'; nothing was changed"
        )?;
        return Ok(Status::Success);
    }

    install::write(&plan)?;
    if plan.unchanged {
        writeln!(out, "{} is already installed", plan.target.display())?;
    } else {
        writeln!(out, "installed {}", plan.target.display())?;
        if let Some(backup) = &plan.backup {
            writeln!(out, "kept the file it replaced as {}", backup.display())?;
        }
    }
    drop(out);

    match install::reload(&programs) {
        Ok(()) => println!("NetworkManager reloaded its configuration"),
        Err(err) if args.verify => {
            eprintln!("macveil: error: {err}; cannot verify");
            return Ok(Status::Failure);
        }
        Err(err) => {
            warn(err);
            return Ok(Status::Success);
        }
    }

    if !args.verify {
        println!(
            "the policy applies from the next activation of each profile \
             (nmcli connection up NAME)"
        );
        return Ok(Status::Success);
    }
    verify_activations(
        &paths,
        &programs,
        version,
        Duration::from_secs(args.timeout),
    )
}

/// Loads NetworkManager's configuration as it will be once `target` has `content`.
fn config_with(paths: &NmPaths, target: &Path, content: &str) -> Option<NmConfig> {
    let files = match crate::config::files::nm_files(&paths.config) {
        Ok(files) => files,
        Err(err) => {
            eprintln!("macveil: error: {err}");
            return None;
        }
    };
    let mut sources: Vec<SourceText> = Vec::new();
    let mut placed = false;
    for file in files {
        if file.path == target {
            placed = true;
            sources.push(SourceText::new(&target.display().to_string(), content));
            continue;
        }
        match fs::read(&file.path) {
            Ok(data) => sources.push(SourceText {
                name: file.path.display().to_string(),
                data,
                main: file.main,
            }),
            Err(err) => {
                eprintln!("macveil: error: cannot read {}: {err}", file.path.display());
                return None;
            }
        }
    }
    if !placed {
        // The conf.d files come last, in byte order of their names.
        let name = target.display().to_string();
        let position = sources
            .iter()
            .position(|source| {
                let path = Path::new(&source.name);
                path.parent() == target.parent() && path.file_name() > target.file_name()
            })
            .unwrap_or(sources.len());
        sources.insert(position, SourceText::new(&name, content));
    }
    match NmConfig::from_sources(&sources) {
        Ok(config) => Some(config),
        Err(ConfigErrors(errors)) => {
            for error in errors {
                eprintln!("macveil: error: {error}");
            }
            None
        }
    }
}

/// Warns about profiles and files that keep the drop-in from deciding a device's MAC policy.
fn report_overrides(
    config: &NmConfig,
    profiles: &Profiles,
    links: &[LinkFacts],
    target: &Path,
    version: NmVersion,
) {
    let target = target.display().to_string();
    for profile in &profiles.profiles {
        if !profile.kind.has_mac_policy() {
            continue;
        }
        for candidate in resolve::candidates(profile, links) {
            let Ok(mac) = resolve::effective_mac(config, profile, &candidate.link, Some(version))
            else {
                continue;
            };
            match &mac.mode_source {
                ValueSource::Profile { file, line } => warn(format_args!(
                    "profile '{}' sets {}={} itself ({file}:{line}), so the drop-in does not \
                     apply to it on {}",
                    profile.id,
                    mac.key,
                    mac.mode,
                    candidate_name(&candidate)
                )),
                source => {
                    if let Some(origin) = resolve::origin_of(source)
                        && origin.file != target
                    {
                        warn(format_args!(
                            "{}:{} ([{}]) sets {}={} for profile '{}' on {}, and it takes \
                             precedence over the drop-in",
                            origin.file,
                            origin.line,
                            origin.section,
                            mac.key,
                            mac.mode,
                            profile.id,
                            candidate_name(&candidate)
                        ));
                    }
                }
            }
        }
    }
}

/// Expected address of an activation, with the address it had before, for the comparison.
struct Pending {
    activation: Activation,
    before: Option<MacAddr>,
}

/// Waits for the next activations and checks each applied address against the policy.
fn verify_activations(
    paths: &NmPaths,
    programs: &Programs,
    version: NmVersion,
    timeout: Duration,
) -> anyhow::Result<Status> {
    let links = read_links(paths);
    let before: BTreeMap<String, Option<MacAddr>> = links
        .iter()
        .map(|link| (link.name.clone(), link.current))
        .collect();
    // Only links with a hardware address get one from a MAC policy: loopback, which
    // NetworkManager 1.42 also activates, and layer 3 links have none to check.
    let checkable = |activation: &Activation| {
        links.iter().any(|link| {
            link.name == activation.device
                && link.kind != crate::config::LinkKind::Loopback
                && link.current.is_some()
        })
    };
    let baseline: BTreeMap<String, Activation> = verify::activations(programs)
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .filter(|(_, activation)| checkable(activation))
        .collect();

    if baseline.is_empty() {
        println!(
            "no profile is active; waiting up to {} s for the next activation",
            timeout.as_secs()
        );
    } else {
        for activation in baseline.values() {
            println!(
                "waiting up to {} s for '{}' to activate again on {} \
                 (nmcli connection up {})",
                timeout.as_secs(),
                activation.name,
                activation.device,
                activation.uuid
            );
        }
    }

    let deadline = Instant::now() + timeout;
    let mut done: BTreeMap<String, Pending> = BTreeMap::new();
    loop {
        let current = verify::activations(programs).map_err(anyhow::Error::msg)?;
        for (device, activation) in current {
            let fresh = baseline
                .get(&device)
                .is_none_or(|old| old.path != activation.path);
            let ready = activation.state == "activated" && checkable(&activation);
            if fresh && ready && !done.contains_key(&device) {
                done.insert(
                    device.clone(),
                    Pending {
                        activation,
                        before: before.get(&device).copied().flatten(),
                    },
                );
            }
        }

        let complete = if baseline.is_empty() {
            !done.is_empty()
        } else {
            baseline.keys().all(|device| done.contains_key(device))
        };
        if complete {
            break;
        }
        if Instant::now() >= deadline {
            let missing: Vec<String> = baseline
                .values()
                .filter(|activation| !done.contains_key(&activation.device))
                .map(|activation| format!("'{}' on {}", activation.name, activation.device))
                .collect();
            eprintln!(
                "macveil: error: timed out after {} s waiting for {}",
                timeout.as_secs(),
                if missing.is_empty() {
                    String::from("an activation")
                } else {
                    format!("the next activation of {}", missing.join(", "))
                }
            );
            report_checked(paths, version, &done);
            return Ok(Status::Failure);
        }
        thread::sleep(Duration::from_millis(200));
    }

    if report_checked(paths, version, &done) {
        Ok(Status::Success)
    } else {
        Ok(Status::Failure)
    }
}

/// Checks and prints each finished activation. Returns whether all match the policy.
fn report_checked(paths: &NmPaths, version: NmVersion, done: &BTreeMap<String, Pending>) -> bool {
    let Some(config) = load_config(paths) else {
        return false;
    };
    let profiles = load_profiles(paths);
    let host = HostInputs {
        secret_key: paths.secret_key.clone(),
        machine_id: predict::read_machine_id(&paths.root),
        boot_id: BootId::File(paths.boot_id.clone()),
    };

    let mut all_match = true;
    for (device, pending) in done {
        let activation = &pending.activation;
        let outcome = check_activation(&config, &profiles, paths, version, &host, pending);
        match outcome {
            Ok(message) => println!("{device}: '{}' {message}", activation.name),
            Err(message) => {
                all_match = false;
                eprintln!("macveil: error: {device}: '{}' {message}", activation.name);
            }
        }
    }
    all_match
}

/// Compares one activation's address with the policy; the text says what was found.
fn check_activation(
    config: &NmConfig,
    profiles: &Profiles,
    paths: &NmPaths,
    version: NmVersion,
    host: &HostInputs,
    pending: &Pending,
) -> Result<String, String> {
    let activation = &pending.activation;
    let profile = profiles
        .find(&activation.uuid)
        .map_err(|err| format!("cannot be checked: {err}"))?;
    let mut link = sysfs::read_link(&paths.sysfs, &activation.device)
        .map_err(|err| format!("cannot be checked: {err}"))?;
    let applied = link
        .current
        .ok_or_else(|| String::from("has no address to check"))?;
    // The prediction starts from the address NetworkManager found before it activated.
    link.current = pending.before.or(link.current);

    let mac = resolve::effective_mac(config, profile, &link, Some(version))
        .map_err(|err| format!("cannot be checked: {err}"))?;
    let prediction = predict::predict(&mac, profile, &link, host)
        .map_err(|err| format!("cannot be checked: {err}"))?;
    let mode = format!("{}={}", mac.key, mac.mode);

    let matches = match &prediction {
        Prediction::Address { address, .. } => *address == applied,
        Prediction::OneOf { addresses } => addresses.contains(&applied),
        Prediction::Unpredictable { .. } => {
            applied.is_local() && Some(applied) != link.permanent && Some(applied) != pending.before
        }
        Prediction::Permanent { address } => Some(applied) == *address,
        Prediction::Preserve { .. } => Some(applied) == pending.before,
    };
    if matches {
        Ok(format!(
            "activated with {applied}, as the policy gives ({mode}, {})",
            mac.mode_source
        ))
    } else {
        Err(format!(
            "activated with {applied}, but the policy gives {} ({mode}, {})",
            describe(&prediction),
            mac.mode_source
        ))
    }
}

/// Describes a prediction in a few words.
fn describe(prediction: &Prediction) -> String {
    match prediction {
        Prediction::Address { address, .. } => address.to_string(),
        Prediction::OneOf { addresses } => format!(
            "one of {}",
            addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Prediction::Unpredictable { .. } => {
            String::from("a new random, locally administered address")
        }
        Prediction::Permanent { .. } => String::from("the permanent address"),
        Prediction::Preserve { .. } => String::from("the address the device had before"),
    }
}

// ---------------------------------------------------------------------------------------------
// predict

#[derive(Serialize)]
struct PredictReport {
    profile: String,
    uuid: String,
    device: String,
    prediction: Prediction,
    mac: MacReport,
}

fn run_predict(args: &PredictArgs) -> anyhow::Result<Status> {
    let paths = args.target.paths();
    let programs = args.target.programs();

    let version = match installed(&programs) {
        Ok(version) => Some(version),
        Err(err) => {
            warn(format_args!(
                "{err}; predicting with the rules of the newest NetworkManager macveil knows"
            ));
            None
        }
    };
    let Some(config) = load_config(&paths) else {
        return Ok(Status::Error);
    };
    let profiles = load_profiles(&paths);
    let profile = profiles.find(&args.connection)?;
    if !profile.kind.has_mac_policy() {
        anyhow::bail!(
            "profile '{}' is of type {}, which has no MAC address policy",
            profile.id,
            profile.raw_type
        );
    }

    let mut link = device_for(&paths, profile, args.ifname.as_deref())?;
    if let Some(current) = args.current {
        link.current = Some(current);
    }
    let mac = resolve::effective_mac(&config, profile, &link, version)?;
    for note in &mac.notes {
        warn(note);
    }
    if !mac.loadable {
        anyhow::bail!(
            "NetworkManager does not load profile '{}', so it gives it no address",
            profile.id
        );
    }

    let machine_id = match &args.machine_id {
        Some(value) => MachineId::from_argument(value)?,
        None => predict::read_machine_id(&paths.root),
    };
    let host = HostInputs {
        secret_key: args
            .secret_key
            .clone()
            .unwrap_or_else(|| paths.secret_key.clone()),
        machine_id,
        boot_id: match &args.boot_id {
            Some(id) => BootId::Given(id.clone()),
            None => BootId::File(paths.boot_id.clone()),
        },
    };
    let prediction = predict::predict(&mac, profile, &link, &host)?;

    if args.json {
        print_json(&PredictReport {
            profile: profile.id.clone(),
            uuid: profile.uuid.clone(),
            device: link.name.clone(),
            prediction,
            mac: MacReport::new(&mac),
        })?;
        return Ok(Status::Success);
    }

    let mut out = io::stdout().lock();
    let device = &link.name;
    match &prediction {
        Prediction::Address { address, how } => writeln!(out, "{address}\t{how}")?,
        Prediction::OneOf { addresses } => {
            for address in addresses {
                writeln!(out, "{address}\tstable, one OUI of the mask")?;
            }
            writeln!(
                out,
                "NetworkManager picks one of the mask's {} OUIs at random at each activation",
                addresses.len()
            )?;
        }
        Prediction::Unpredictable { reason } => writeln!(
            out,
            "unpredictable: {reason}; NetworkManager gives {device} a new address each time"
        )?,
        Prediction::Permanent { address } => writeln!(
            out,
            "permanent: NetworkManager gives {device} its hardware address{}",
            address.map(|a| format!(" {a}")).unwrap_or_default()
        )?,
        Prediction::Preserve { current } => writeln!(
            out,
            "preserve: NetworkManager leaves the address of {device} as it is{}",
            current.map(|a| format!(" (now {a})")).unwrap_or_default()
        )?,
    }
    writeln!(
        out,
        "profile '{}' ({}) on {device}: {}={} ({})",
        profile.id, profile.uuid, mac.key, mac.mode, mac.mode_source
    )?;
    if matches!(mac.mode, ClonedMac::Stable | ClonedMac::StableSsid) {
        let stable_id = mac
            .stable_id
            .clone()
            .unwrap_or_else(|| String::from("unset (the profile's UUID)"));
        writeln!(
            out,
            "  connection.stable-id={stable_id} ({})",
            mac.stable_id_source
        )?;
        let mask = mac
            .mask
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| String::from("none"));
        writeln!(out, "  mask={mask} ({})", mac.mask_source)?;
    }
    Ok(Status::Success)
}

/// Finds the device to predict for: `--ifname`, the profile's interface, or its only present
/// candidate.
fn device_for(
    paths: &NmPaths,
    profile: &Profile,
    ifname: Option<&str>,
) -> anyhow::Result<LinkFacts> {
    let links = read_links(paths);
    let named = ifname.or(profile.interface_name.as_deref());
    if let Some(name) = named {
        if let Some(link) = links.iter().find(|link| link.name == name) {
            return Ok(link.clone());
        }
        let mut stand_in = resolve::candidates(profile, &[]).remove(0).link;
        stand_in.name = name.to_string();
        warn(format_args!(
            "{name} does not exist now; predicting without its driver and addresses"
        ));
        return Ok(stand_in);
    }

    let present: Vec<Candidate> = resolve::candidates(profile, &links)
        .into_iter()
        .filter(|candidate| candidate.present)
        .collect();
    match present.as_slice() {
        [only] => Ok(only.link.clone()),
        [] => Err(predict::PredictError::NoInterface {
            profile: profile.id.clone(),
        }
        .into()),
        several => anyhow::bail!(
            "profile '{}' can activate on {}; choose one with --ifname NAME",
            profile.id,
            several
                .iter()
                .map(candidate_name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
