//! `macveil nm status`: NetworkManager's version, the MAC keys it supports, and the effective
//! MAC policy of each profile and device.

use super::*;

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

pub(super) fn run_status(args: &StatusArgs) -> anyhow::Result<Status> {
    let paths = args.target.paths()?;
    let programs = args.target.programs();

    let installed = version::installed_version(&programs);
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
        for (feature, place) in dropin::features_in(file, &parsed) {
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
