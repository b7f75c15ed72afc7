//! `macveil nm predict`: the address NetworkManager will give a profile at its next activation.

use super::*;

#[derive(Serialize)]
struct PredictReport {
    profile: String,
    uuid: String,
    device: String,
    prediction: Prediction,
    mac: MacReport,
}

pub(super) fn run_predict(args: &PredictArgs) -> anyhow::Result<Status> {
    let paths = args.target.paths()?;
    let programs = args.target.programs();

    let version = match version::installed_version(&programs) {
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

    let machine_id = match &args.machine_id {
        Some(value) => MachineId::from_argument(value)?,
        None => nm_predict::read_machine_id(&paths.root),
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
    let prediction = nm_predict::predict(&mac, profile, &link, &host)?;

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
        [] => Err(nm_predict::PredictError::NoInterface {
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
