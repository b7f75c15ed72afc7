//! `macveil nm install`: write the drop-in, reload NetworkManager, and with `--verify` check the
//! addresses of the next activations.

use super::*;

pub(super) fn run_install(args: &InstallArgs) -> anyhow::Result<Status> {
    let paths = args.target.paths()?;
    let programs = args.target.programs();
    if let (Some(root), true) = (&programs.image, args.verify) {
        anyhow::bail!(
            "--verify watches the running NetworkManager's activations, and the system below {} \
             is not running here; install without --verify",
            root.display()
        );
    }

    let (name, text) = match &args.policy {
        Some(path) => {
            let text = fs::read_to_string(path)
                .with_context(|| format!("cannot read the policy {}", path.display()))?;
            (path.display().to_string(), text)
        }
        None => (String::from("(default policy)"), DEFAULT_POLICY.to_string()),
    };
    let policy = Policy::check(&name, &text)?;

    let version = match version::installed_version(&programs) {
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
    let plan = dropin::plan(&paths.root, &content)
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
        if programs.image.is_some() {
            writeln!(out, "nothing was changed")?;
        } else {
            writeln!(
                out,
                "would run 'nmcli general reload conf'; nothing was changed"
            )?;
        }
        return Ok(Status::Success);
    }

    dropin::write(&plan)?;
    if plan.unchanged {
        writeln!(out, "{} is already installed", plan.target.display())?;
    } else {
        writeln!(out, "installed {}", plan.target.display())?;
        if let Some(backup) = &plan.backup {
            writeln!(out, "kept the file it replaced as {}", backup.display())?;
        }
    }
    drop(out);

    match dropin::reload(&programs) {
        Ok(()) => println!("NetworkManager reloaded its configuration"),
        Err(err @ dropin::ReloadError::Image { .. }) => {
            println!("{err}");
            return Ok(Status::Success);
        }
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

/// An activation to check, with the address its device had before it.
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
        machine_id: nm_predict::read_machine_id(&paths.root),
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

/// Compares one activation's address with the policy. The text describes what was found.
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
    let prediction = nm_predict::predict(&mac, profile, &link, host)
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
