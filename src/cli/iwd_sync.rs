//! `macveil wifi iwd-sync`: writes macveil's per-network address into iwd's known-network
//! files, so that iwd connects with the address macveil's policy gives each network.
//!
//! iwd cannot compute a `stable` or `stable-ssid` address, but with `[General]
//! AddressRandomization=network` it uses `[Settings] AddressOverride` of a network file as that
//! network's address, and `AlwaysRandomizeAddress=true` as a new random address at each
//! connection (iwd.network(5)). iwd sets the address while the radio is down, before its first
//! authentication frame, so macveil does not need to drive the connection as it does with
//! wpa_supplicant. The command derives each network's address with the same inputs as `macveil
//! wifi connect` and writes only those two keys ([`crate::wifi::iwd`]).
//!
//! Every file is read and checked before any is written: a file macveil cannot read with
//! certainty, a file name that does not encode an SSID, or a policy that iwd cannot express
//! changes nothing (exit 2). Each changed file is replaced atomically (a synced temporary file
//! renamed over it) with its mode kept. The command does not start, stop or signal iwd.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::Status;
use super::stable_args::{LinkInputs, StableArgs};
use super::wifi::{Policy, connection_address, parse_policy, resolve_policy};
use crate::config::ClonedMac;
use crate::fsutil::{self, Existing, Mode};
use crate::generate::mask::Mask;
use crate::generate::stable_id::escape_ssid;
use crate::link::state::{DEFAULT_STATE_DIR, ReferenceStore};
use crate::wifi::drive::{self, LinkRadio, Radio};
use crate::wifi::iwd::{self, AddressSetting};

pub(super) const IWD_SYNC_EXAMPLES: &str = "\
Examples:
  sudo macveil wifi iwd-sync wlan0                       # policy from /etc/macveil/macveil.conf
  sudo macveil wifi iwd-sync wlan0 --policy stable-ssid --dry-run
  sudo macveil wifi iwd-sync wlan0 --policy random --json

For each known network in iwd's state folder, writes [Settings] AddressOverride with the
policy's address for that network (stable, stable-ssid, permanent, an address), or
AlwaysRandomizeAddress=true for random, and changes nothing else in the file. iwd reads these
keys only with [General] AddressRandomization=network in its main.conf. Run it again after iwd
learns a new network, and at each boot for a stable-id with ${BOOT}.

Exit codes:
  0  every network file contains the policy's setting, and iwd's main.conf makes iwd use it
  1  a file could not be written, or main.conf does not set AddressRandomization=network
  2  invalid input: a file or name macveil cannot read, or a policy iwd cannot express;
     nothing was changed";

/// Options of `macveil wifi iwd-sync`.
#[derive(Debug, Args)]
// Each network's SSID comes from its file name, so the stable options' --ssid does not apply.
#[command(mut_arg("ssid", |arg| arg.hide(true)))]
pub struct IwdSyncArgs {
    /// The Wi-Fi interface iwd manages. Its name and permanent address are inputs of stable
    /// addresses, as with `macveil wifi connect`.
    #[arg(value_name = "IFACE")]
    pub interface: String,

    /// iwd's state folder, which contains the known-network files.
    #[arg(long, value_name = "DIR", default_value = iwd::DEFAULT_STATE_DIR)]
    pub iwd_dir: PathBuf,

    /// iwd's main configuration file, read to tell whether iwd uses the written settings.
    #[arg(long, value_name = "FILE", default_value = iwd::DEFAULT_MAIN_CONF)]
    pub iwd_config: PathBuf,

    /// The address policy: random, stable, stable-ssid, permanent, or an address. Default:
    /// wifi.cloned-mac-address from macveil's configuration.
    #[arg(long, value_name = "POLICY", value_parser = parse_policy)]
    pub policy: Option<ClonedMac>,

    /// Read this configuration file instead of /etc/macveil/macveil.conf and conf.d.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// NetworkManager's generate-mac-address-mask for stable addresses. Default:
    /// wifi.generate-mac-address-mask from the configuration.
    #[arg(long, value_name = "MASK", value_parser = Mask::parse)]
    pub mask: Option<Mask>,

    /// Print what would be written, and write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub stable: StableArgs,
}

/// One network file in the report.
#[derive(Debug, Serialize)]
struct NetworkRow {
    file: PathBuf,
    ssid: String,
    /// The line macveil wants in `[Settings]`.
    setting: String,
    /// Whether the file needed a change (and, without --dry-run, got it).
    changed: bool,
    /// Whether the file was written.
    written: bool,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct SyncReport {
    interface: String,
    policy: String,
    iwd_dir: PathBuf,
    /// `[General] AddressRandomization` from iwd's main.conf.
    address_randomization: String,
    /// Whether iwd uses the per-network settings (`AddressRandomization=network`).
    effective: bool,
    dry_run: bool,
    networks: Vec<NetworkRow>,
}

/// A file's planned new text.
struct Planned {
    path: PathBuf,
    text: Option<String>,
    mode: u32,
}

pub(super) fn run(args: &IwdSyncArgs) -> anyhow::Result<Status> {
    if args.stable.ssid.is_some() {
        anyhow::bail!(
            "--ssid does not apply to iwd-sync: each network's SSID comes from its file name"
        );
    }
    let policy = resolve_policy(
        &args.interface,
        args.policy,
        args.config.as_deref(),
        &args.stable,
        args.mask.as_ref(),
    )?;
    check_expressible(&policy)?;

    let store = ReferenceStore::new(DEFAULT_STATE_DIR);
    let mut radio = LinkRadio::find(drive::open_links()?, store, &args.interface)?;
    let link = LinkInputs {
        ifname: Some(args.interface.clone()),
        permanent: radio.permanent()?,
        current: radio.read()?.address,
    };

    let listed = iwd::known_networks(&args.iwd_dir).with_context(|| {
        format!(
            "cannot list iwd's state folder {}; give it with --iwd-dir",
            args.iwd_dir.display()
        )
    })?;
    // Everything is derived and checked before the first file is written.
    let mut rows = Vec::new();
    let mut planned = Vec::new();
    for entry in listed {
        let file = entry.map_err(|(path, err)| {
            anyhow::anyhow!("{}: {err}; nothing was changed", path.display())
        })?;
        let setting = setting_for(&policy, &args.stable, &link, &file.ssid)?;
        let shown = file.path.display().to_string();
        let bytes = fs::read(&file.path).with_context(|| format!("cannot read {shown}"))?;
        let mode = fs::metadata(&file.path)
            .with_context(|| format!("cannot read the mode of {shown}"))?
            .permissions()
            .mode()
            & 0o7777;
        let text = iwd::decode(&bytes)
            .and_then(|text| iwd::set_address(text, setting).map(|new| (text, new)))
            .map_err(|err| anyhow::anyhow!("{shown}: {err}; nothing was changed"))?;
        let changed = text.0 != text.1;
        rows.push(NetworkRow {
            file: file.path.clone(),
            ssid: escape_ssid(&file.ssid),
            setting: match setting {
                AddressSetting::Override(address) => {
                    format!("{}={address}", iwd::ADDRESS_OVERRIDE)
                }
                AddressSetting::AlwaysRandom => format!("{}=true", iwd::ALWAYS_RANDOMIZE),
            },
            changed,
            written: false,
            error: None,
        });
        planned.push(Planned {
            path: file.path,
            text: changed.then_some(text.1),
            mode,
        });
    }

    let mode = match fs::read(&args.iwd_config) {
        Ok(bytes) => iwd::address_randomization(&String::from_utf8_lossy(&bytes)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => String::from("disabled"),
        Err(err) => {
            return Err(err).with_context(|| format!("cannot read {}", args.iwd_config.display()));
        }
    };
    let effective = mode == "network";

    let mut failed = false;
    if !args.dry_run {
        for (row, plan) in rows.iter_mut().zip(&planned) {
            let Some(text) = &plan.text else { continue };
            match replace(&plan.path, text.as_bytes(), plan.mode) {
                Ok(()) => row.written = true,
                Err(err) => {
                    row.error = Some(format!("{err:#}"));
                    failed = true;
                    // The files before this one contain the new setting and the rest the old
                    // one. Each file is whole.
                    break;
                }
            }
        }
    }

    let report = SyncReport {
        interface: args.interface.clone(),
        policy: policy.cloned.to_string(),
        iwd_dir: args.iwd_dir.clone(),
        address_randomization: mode,
        effective,
        dry_run: args.dry_run,
        networks: rows,
    };
    print(&report, args.json)?;
    if !effective {
        eprintln!(
            "macveil: warning: {} sets AddressRandomization={} (iwd's default is disabled), so \
             iwd ignores AddressOverride and AlwaysRandomizeAddress; set [General] \
             AddressRandomization=network there and restart iwd",
            args.iwd_config.display(),
            report.address_randomization
        );
    }
    Ok(if failed || !effective {
        Status::Failure
    } else {
        Status::Success
    })
}

/// Rejects the policies that iwd's network files cannot express.
fn check_expressible(policy: &Policy) -> anyhow::Result<()> {
    match policy.cloned {
        ClonedMac::Preserve => anyhow::bail!(
            "the preserve policy has no per-network setting in iwd; with \
             AddressRandomization=disabled in main.conf iwd keeps the interface's address, so \
             give --policy or leave iwd-sync out"
        ),
        ClonedMac::Stable
            if policy
                .stable_id
                .as_deref()
                .is_some_and(|template| template.contains("${RANDOM}")) =>
        {
            anyhow::bail!(
                "a stable-id with ${{RANDOM}} asks for a new address at each activation, which a \
                 file cannot hold; use --policy random (AlwaysRandomizeAddress=true)"
            )
        }
        _ => Ok(()),
    }
}

/// The setting one network's file should hold.
fn setting_for(
    policy: &Policy,
    stable: &StableArgs,
    link: &LinkInputs,
    ssid: &[u8],
) -> anyhow::Result<AddressSetting> {
    if policy.cloned == ClonedMac::Random {
        return Ok(AddressSetting::AlwaysRandom);
    }
    let address = connection_address(policy, stable, link, ssid)
        .with_context(|| {
            format!(
                "no address was derived for '{}', so nothing was changed",
                escape_ssid(ssid)
            )
        })?
        .context("the policy keeps the current address, which iwd cannot express")?;
    Ok(AddressSetting::Override(address))
}

/// Replaces `path` atomically: writes and syncs `.NAME.macveil.tmp` in the same folder with
/// `mode`, renames it over the file and syncs the folder. iwd ignores the temporary name,
/// because it does not end in `.open`, `.psk` or `.8021x`.
fn replace(path: &Path, content: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or(OsStr::new("network"));
    let mut temporary_name = b".".to_vec();
    temporary_name.extend_from_slice(name.as_bytes());
    temporary_name.extend_from_slice(b".macveil.tmp");
    let temporary = dir.join(OsStr::from_bytes(&temporary_name));
    let shown = path.display();
    if let Err(err) =
        fsutil::write_synced(&temporary, content, Existing::Truncate, Mode::Exact(mode))
    {
        let _ = fs::remove_file(&temporary);
        return Err(err.source).with_context(|| {
            format!(
                "cannot write {} ({:?}); {shown} is unchanged",
                temporary.display(),
                err.step
            )
        });
    }
    if let Err(err) = fs::rename(&temporary, path) {
        let _ = fs::remove_file(&temporary);
        return Err(err).with_context(|| format!("cannot replace {shown}; it is unchanged"));
    }
    // The rename is durable once the folder is synced.
    fs::File::open(dir)
        .and_then(|folder| folder.sync_all())
        .with_context(|| {
            format!(
                "{shown} was replaced, but {} could not be synced",
                dir.display()
            )
        })
}

fn print(report: &SyncReport, json: bool) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        let text = serde_json::to_string_pretty(report).context("failed to encode the report")?;
        writeln!(out, "{text}")?;
        return Ok(());
    }
    if report.networks.is_empty() {
        writeln!(out, "no known networks in {}", report.iwd_dir.display())?;
    }
    for row in &report.networks {
        let state = match (&row.error, row.changed, row.written) {
            (Some(error), _, _) => format!("failed: {error}"),
            (None, false, _) => String::from("unchanged"),
            (None, true, true) => String::from("written"),
            (None, true, false) if report.dry_run => String::from("would be written"),
            (None, true, false) => String::from("not written"),
        };
        writeln!(
            out,
            "{} ('{}'): {} ({state})",
            row.file.display(),
            row.ssid,
            row.setting
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_keeps_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("home.psk");
        fs::write(&path, "[Security]\nPassphrase=p\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        replace(&path, b"new\n", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new\n");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["home.psk"]);
    }

    #[test]
    fn unexpressible_policies_are_rejected() {
        let policy = |cloned, stable_id: Option<&str>| Policy {
            cloned,
            stable_id: stable_id.map(str::to_string),
            mask: None,
        };
        assert!(check_expressible(&policy(ClonedMac::Preserve, None)).is_err());
        assert!(check_expressible(&policy(ClonedMac::Stable, Some("${RANDOM}"))).is_err());
        assert!(check_expressible(&policy(ClonedMac::Stable, Some("${CONNECTION}"))).is_ok());
        assert!(check_expressible(&policy(ClonedMac::Random, None)).is_ok());
    }
}
