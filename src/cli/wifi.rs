//! `macveil wifi`: connect with an anonymized address through the wpa_supplicant that is
//! running, turn its scan-address randomization on or off, and report what it exposes. These
//! commands work without the daemon; the library behind them is [`crate::wifi`].

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use super::Status;
use super::stable_args::{LinkInputs, StableArgs};
use crate::addr::MacAddr;
use crate::audit::Finding;
use crate::config::{self, ClonedMac, Config, ConfigPaths, LoadOptions};
use crate::generate::{self, mask::Mask, stable_id::escape_ssid};
use crate::link::state::{DEFAULT_STATE_DIR, ReferenceStore};
use crate::link::{LinkHandle, LinkOps, Netns};
use crate::rng::OsRandom;
use crate::wifi::address::STABLE_SSID_TEMPLATE;
use crate::wifi::audit;
use crate::wifi::ctrl::{ClientOptions, DEFAULT_CTRL_DIR};
use crate::wifi::drive::{self, ConnectPlan, ConnectReport, DriveError, LinkRadio};
use crate::wifi::privacy::{self, ScanMethod, ScanPrivacy};
use crate::wifi::supplicant::{Supplicant, SupplicantOps, decode_network_ssid};

const CONNECT_EXAMPLES: &str = "\
Examples:
  sudo macveil wifi connect wlan0 --ssid home --policy stable-ssid
  sudo macveil wifi connect wlan0 --ssid cafe --policy random --json
  sudo macveil wifi connect wlan0 --network 2 --policy stable --stable-id '${CONNECTION}/${BOOT}'
  sudo macveil wifi connect wlan0 --ssid home       # policy from /etc/macveil/macveil.conf

The network must be configured in wpa_supplicant, which must run with mac_addr=0 and
preassoc_mac_addr=0: macveil sets the address while the radio is down, then selects the
network. A failure to set the address leaves the radio down.

Exit codes:
  0  connected with the policy's address
  1  the address could not be set (the radio is down), the connection did not complete, or the
     address changed during it
  2  invalid input, or wpa_supplicant's settings rule the connection out; nothing was changed";

const SCAN_EXAMPLES: &str = "\
Examples:
  sudo macveil wifi scan-privacy wlan0 on
  sudo macveil wifi scan-privacy wlan0 off --json

'on' asks the kernel to send each scan from a new random address (MAC_RAND_SCAN), or, when
wpa_supplicant randomizes the association address itself (mac_addr=1|2), sets
preassoc_mac_addr as well. GAS queries get random addresses too. wpa_supplicant forgets
MAC_RAND_SCAN when it restarts, so run this after each start.

Exit codes:
  0  done
  1  scans still use the interface address, because the driver cannot randomize them
  2  wpa_supplicant could not be reached or rejected a setting";

const CHECK_EXAMPLES: &str = "\
Examples:
  sudo macveil wifi check
  sudo macveil wifi check wlan0 --json

Exit codes:
  0  nothing found
  1  at least one finding, or a supplicant could not be checked
  2  the links could not be read";

/// Options of `macveil wifi`.
#[derive(Debug, Args)]
pub struct WifiArgs {
    /// The Wi-Fi subcommand.
    #[command(subcommand)]
    pub command: WifiCommand,
}

/// The Wi-Fi subcommands.
#[derive(Debug, Subcommand)]
pub enum WifiCommand {
    /// Connect to a configured network with the policy's address, set while the radio is down.
    #[command(after_help = CONNECT_EXAMPLES)]
    Connect(Box<ConnectArgs>),

    /// Turn random scan addresses on or off in the running wpa_supplicant.
    #[command(after_help = SCAN_EXAMPLES)]
    ScanPrivacy(ScanPrivacyArgs),

    /// Report what the running wpa_supplicant instances expose: the permanent address, a WPS
    /// UUID or P2P Device address derived from it, settings that undo macveil's address.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),

    /// Write the policy's per-network address into iwd's known-network files
    /// (AddressOverride, or AlwaysRandomizeAddress for random).
    #[command(after_help = super::iwd_sync::IWD_SYNC_EXAMPLES)]
    IwdSync(Box<super::iwd_sync::IwdSyncArgs>),
}

/// The options every `wifi` subcommand shares.
#[derive(Debug, Args)]
pub struct SupplicantArgs {
    /// wpa_supplicant's control folder (its ctrl_interface setting).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_CTRL_DIR)]
    pub ctrl_dir: PathBuf,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Options of `macveil wifi connect`.
#[derive(Debug, Args)]
// The network's SSID is also the ${NETWORK_SSID} input, so the stable options' --ssid is the
// one that selects the network.
#[command(mut_arg("ssid", |arg| arg
    .help("The network to connect to, as configured in wpa_supplicant (also ${NETWORK_SSID})")
    .help_heading(None::<&str>)
    .required_unless_present("network")
    .conflicts_with("network")))]
pub struct ConnectArgs {
    /// The interface.
    #[arg(value_name = "IFACE")]
    pub interface: String,

    /// The network to connect to, by wpa_supplicant's network id (wpa_cli list_networks).
    #[arg(long, value_name = "ID")]
    pub network: Option<u32>,

    /// The address policy: random, stable, stable-ssid, preserve, permanent, or an address.
    /// Default: wifi.cloned-mac-address from macveil's configuration.
    #[arg(long, value_name = "POLICY", value_parser = parse_policy)]
    pub policy: Option<ClonedMac>,

    /// Read this configuration file instead of /etc/macveil/macveil.conf and conf.d.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// NetworkManager's generate-mac-address-mask for random and stable addresses. Default:
    /// wifi.generate-mac-address-mask from the configuration.
    #[arg(long, value_name = "MASK", value_parser = Mask::parse)]
    pub mask: Option<Mask>,

    /// Maximum seconds from selecting the network to the completed connection.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,

    /// Print the previous address in full even when it is the permanent address.
    #[arg(long)]
    pub reveal: bool,

    #[command(flatten)]
    pub supplicant: SupplicantArgs,

    #[command(flatten)]
    pub stable: StableArgs,
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// Random scan addresses.
    On,
    /// Scans use the interface address.
    Off,
}

/// Options of `macveil wifi scan-privacy`.
#[derive(Debug, Args)]
pub struct ScanPrivacyArgs {
    /// The interface.
    #[arg(value_name = "IFACE")]
    pub interface: String,

    /// Turn random scan addresses on or off.
    #[arg(value_enum)]
    pub state: Switch,

    /// Seconds wpa_supplicant keeps a random address of its own (rand_addr_lifetime); applies
    /// only when it randomizes addresses itself.
    #[arg(long, value_name = "SECONDS")]
    pub lifetime: Option<u32>,

    #[command(flatten)]
    pub supplicant: SupplicantArgs,
}

/// Options of `macveil wifi check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Interfaces to check. Default: every interface with a control socket.
    #[arg(value_name = "IFACE")]
    pub interfaces: Vec<String>,

    #[command(flatten)]
    pub supplicant: SupplicantArgs,
}

/// Parses `--policy`: the values of `wifi.cloned-mac-address`.
pub(super) fn parse_policy(text: &str) -> Result<ClonedMac, String> {
    match text {
        "random" => Ok(ClonedMac::Random),
        "stable" => Ok(ClonedMac::Stable),
        "stable-ssid" => Ok(ClonedMac::StableSsid),
        "preserve" => Ok(ClonedMac::Preserve),
        "permanent" => Ok(ClonedMac::Permanent),
        other => MacAddr::parse_assignable(other)
            .map(ClonedMac::Address)
            .map_err(|err| {
                format!(
                    "{err}; expected random, stable, stable-ssid, preserve, permanent or an address"
                )
            }),
    }
}

pub(super) fn run(args: &WifiArgs) -> anyhow::Result<Status> {
    match &args.command {
        WifiCommand::Connect(connect) => run_connect(connect),
        WifiCommand::ScanPrivacy(scan) => run_scan_privacy(scan),
        WifiCommand::Check(check) => run_check(check),
        WifiCommand::IwdSync(sync) => super::iwd_sync::run(sync),
    }
}

// --- connect ------------------------------------------------------------------------------

/// The policy and its inputs after the command line and the configuration are combined.
pub(super) struct Policy {
    /// `wifi.cloned-mac-address`.
    pub cloned: ClonedMac,
    /// `connection.stable-id`.
    pub stable_id: Option<String>,
    /// `wifi.generate-mac-address-mask`.
    pub mask: Option<Mask>,
}

/// Takes the policy from the options, or else from macveil's configuration for the link
/// `interface`. `config` replaces the configuration files; `stable` and `mask` win over the
/// configuration's values.
pub(super) fn resolve_policy(
    interface: &str,
    policy: Option<ClonedMac>,
    config: Option<&Path>,
    stable: &StableArgs,
    mask: Option<&Mask>,
) -> anyhow::Result<Policy> {
    if let Some(cloned) = policy {
        return Ok(Policy {
            cloned,
            stable_id: stable.stable_id.clone(),
            mask: mask.cloned(),
        });
    }

    let options = LoadOptions {
        file: config.map(Path::to_path_buf),
        nm_config: false,
    };
    let config = Config::load(&ConfigPaths::system(), &options).map_err(|errors| {
        let messages: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(
            "the configuration is invalid, so no policy applies; fix it or give --policy:\n  {}",
            messages.join("\n  ")
        )
    })?;
    let facts = config::sysfs::read_link(Path::new("/sys"), interface)
        .with_context(|| format!("cannot read {interface} in /sys/class/net"))?;
    let policy = config.policy_for(&facts);
    log::debug!(
        "{interface}: policy {} from the configuration",
        policy.cloned_mac_address.value
    );
    Ok(Policy {
        cloned: policy.cloned_mac_address.value,
        stable_id: stable.stable_id.clone().or(policy.stable_id.value.clone()),
        mask: mask
            .cloned()
            .or(policy.generate_mac_address_mask.value.clone()),
    })
}

/// Copies the stable-address options with the network's SSID and the template the policy uses.
fn stable_args_for(args: &StableArgs, ssid: &[u8], template: Option<String>) -> StableArgs {
    StableArgs {
        stable_id: template,
        connection: args.connection.clone(),
        ifname: args.ifname.clone(),
        boot_id: args.boot_id.clone(),
        ssid: Some(OsString::from(std::ffi::OsStr::from_bytes(ssid))),
        mac: args.mac,
        secret_key: args.secret_key.clone(),
        create_secret_key: args.create_secret_key,
        machine_id: args.machine_id.clone(),
        host_id_hex: args.host_id_hex.clone(),
    }
}

/// Derives the connection's address; `None` keeps the current one.
pub(super) fn connection_address(
    policy: &Policy,
    stable: &StableArgs,
    link: &LinkInputs,
    ssid: &[u8],
) -> anyhow::Result<Option<MacAddr>> {
    let mut rng = OsRandom;
    let address =
        match policy.cloned {
            ClonedMac::Preserve => None,
            ClonedMac::Address(address) => Some(address),
            ClonedMac::Permanent => Some(link.permanent.context(
                "the permanent address is unknown, so the permanent policy cannot apply",
            )?),
            ClonedMac::Random => {
                let avoid: Vec<MacAddr> = link.current.into_iter().chain(link.permanent).collect();
                let initial = link.permanent.or(link.current);
                Some(generate::random(
                    &mut rng,
                    policy.mask.as_ref(),
                    initial,
                    &avoid,
                )?)
            }
            ClonedMac::Stable | ClonedMac::StableSsid => {
                let template = match policy.cloned {
                    ClonedMac::StableSsid => Some(STABLE_SSID_TEMPLATE.to_string()),
                    _ => policy.stable_id.clone(),
                };
                let args = stable_args_for(stable, ssid, template);
                Some(args.derive(link, policy.mask.as_ref(), &mut rng)?)
            }
        };
    Ok(address)
}

#[derive(Serialize)]
struct ConnectRow {
    interface: String,
    connected: bool,
    ssid: String,
    network_id: Option<u32>,
    policy: String,
    address: Option<MacAddr>,
    previous: Option<String>,
    changed: bool,
    bssid: Option<MacAddr>,
    elapsed_ms: Option<u128>,
    error: Option<String>,
}

fn run_connect(args: &ConnectArgs) -> anyhow::Result<Status> {
    let ifname = args.interface.as_str();
    let policy = resolve_policy(
        ifname,
        args.policy,
        args.config.as_deref(),
        &args.stable,
        args.mask.as_ref(),
    )?;
    let options = ClientOptions::default();
    let mut supplicant = Supplicant::open(&args.supplicant.ctrl_dir, ifname, &options)?;

    // The network and its exact SSID bytes, which stable-ssid hashes.
    let networks = supplicant
        .list_networks()
        .context("cannot list wpa_supplicant's networks")?;
    let network_id = match (args.network, &args.stable.ssid) {
        (Some(id), _) => drive::network_by_id(ifname, &networks, id)?.id,
        (None, Some(ssid)) => drive::find_network(ifname, &networks, ssid.as_bytes())?,
        (None, None) => anyhow::bail!("give the network with --ssid SSID or --network ID"),
    };
    let ssid_reply = supplicant.get_network(network_id, "ssid")?;
    let ssid = decode_network_ssid(&ssid_reply).with_context(|| {
        format!("cannot decode the SSID of network {network_id}: '{ssid_reply}'")
    })?;

    let store = ReferenceStore::new(DEFAULT_STATE_DIR);
    let mut radio = LinkRadio::find(drive::open_links()?, store, ifname)?;
    let permanent = radio.permanent()?;
    let current = drive::Radio::read(&mut radio)?.address;
    let inputs = LinkInputs {
        ifname: Some(ifname.to_string()),
        permanent,
        current,
    };
    // Everything that can fail on the input fails here, before the radio is touched.
    let address = connection_address(&policy, &args.stable, &inputs, &ssid)
        .context("no address was derived, so nothing was changed")?;

    let plan = ConnectPlan {
        network_id,
        ssid: ssid.clone(),
        address,
        timeout: Duration::from_secs(args.timeout),
        // The command waits for the one network it was given, which may come into range.
        stop_at_not_found: false,
    };
    let result = drive::connect(&mut radio, &mut supplicant, &plan);
    let previous_shown = |previous: Option<MacAddr>| {
        previous.map(|previous| {
            if !args.reveal && Some(previous) == permanent {
                previous.redacted()
            } else {
                previous.to_string()
            }
        })
    };

    let mut row = ConnectRow {
        interface: ifname.to_string(),
        connected: false,
        ssid: escape_ssid(&ssid),
        network_id: Some(network_id),
        policy: policy.cloned.to_string(),
        address,
        previous: previous_shown(current),
        changed: false,
        bssid: None,
        elapsed_ms: None,
        error: None,
    };
    let status = match &result {
        Ok(report) => {
            fill_connected(&mut row, report);
            Status::Success
        }
        Err(err) => {
            row.error = Some(err.to_string());
            connect_failure_status(err)
        }
    };
    print_connect(&row, args.supplicant.json)?;
    if let Err(err) = result {
        eprintln!("macveil: error: {err}");
    }
    Ok(status)
}

fn fill_connected(row: &mut ConnectRow, report: &ConnectReport) {
    row.connected = true;
    row.address = Some(report.address);
    row.changed = report.changed;
    row.bssid = report.bssid;
    row.elapsed_ms = Some(report.elapsed.as_millis());
}

/// Maps a failure to the exit status: 2 when nothing was changed because of the input or the
/// supplicant's settings, 1 otherwise.
fn connect_failure_status(err: &DriveError) -> Status {
    match err {
        DriveError::SupplicantRandomizes { .. }
        | DriveError::NetworkNotConfigured { .. }
        | DriveError::AmbiguousSsid { .. }
        | DriveError::UnknownNetworkId { .. } => Status::Error,
        _ => Status::Failure,
    }
}

fn print_connect(row: &ConnectRow, json: bool) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        let text = serde_json::to_string_pretty(row).context("failed to encode the report")?;
        writeln!(out, "{text}")?;
        return Ok(());
    }
    if row.connected {
        let address = row.address.map_or_else(String::new, |a| a.to_string());
        let previous = row.previous.as_deref().unwrap_or("none");
        let change = if row.changed {
            format!("changed from {previous}")
        } else {
            String::from("unchanged")
        };
        writeln!(
            out,
            "{}: connected to '{}' (network {}) with {address} ({}, {change}) in {} ms",
            row.interface,
            row.ssid,
            row.network_id.unwrap_or_default(),
            row.policy,
            row.elapsed_ms.unwrap_or_default()
        )?;
    }
    Ok(())
}

// --- scan-privacy -------------------------------------------------------------------------

#[derive(Serialize)]
struct ScanRow<'a> {
    interface: &'a str,
    on: bool,
    #[serde(flatten)]
    settings: &'a ScanPrivacy,
}

fn run_scan_privacy(args: &ScanPrivacyArgs) -> anyhow::Result<Status> {
    let ifname = args.interface.as_str();
    let on = args.state == Switch::On;
    let mut supplicant =
        match Supplicant::open(&args.supplicant.ctrl_dir, ifname, &ClientOptions::default()) {
            Ok(supplicant) => supplicant,
            Err(err) => {
                eprintln!("macveil: error: {err}");
                return Ok(Status::Error);
            }
        };
    let settings = match privacy::set_scan_privacy(&mut supplicant, on, args.lifetime) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("macveil: error: {ifname}: {err}");
            return Ok(Status::Error);
        }
    };

    let mut out = io::stdout().lock();
    if args.supplicant.json {
        let row = ScanRow {
            interface: ifname,
            on,
            settings: &settings,
        };
        let text = serde_json::to_string_pretty(&row).context("failed to encode the report")?;
        writeln!(out, "{text}")?;
    } else {
        let method_text = match settings.method {
            ScanMethod::Kernel => "the kernel sends each scan from a new random address",
            ScanMethod::Supplicant => {
                "wpa_supplicant gives the interface a random address before scans \
                 (preassoc_mac_addr), as it does for associations"
            }
            ScanMethod::InterfaceAddress => "scans use the interface address",
        };
        let gas = if settings.gas_random {
            "random"
        } else {
            "the interface address"
        };
        writeln!(out, "{ifname}: {method_text}; GAS queries use {gas}")?;
    }

    if on && settings.method == ScanMethod::InterfaceAddress {
        eprintln!(
            "macveil: warning: {ifname}: the driver cannot randomize scan addresses, so scans \
             carry the interface address, which macveil sets for each connection. \
             preassoc_mac_addr is left at 0 because it would undo that address"
        );
        return Ok(Status::Failure);
    }
    Ok(Status::Success)
}

// --- check --------------------------------------------------------------------------------

#[derive(Serialize)]
struct UncheckedRow {
    interface: String,
    error: String,
}

#[derive(Serialize)]
struct CheckReport<'a> {
    /// The interfaces whose supplicant was read.
    checked: Vec<String>,
    findings: &'a [Finding],
    unchecked: Vec<UncheckedRow>,
}

/// Lists the interfaces among `links` that have a control socket in `ctrl_dir`.
fn supplicant_interfaces(ctrl_dir: &Path, links: &[crate::link::Link]) -> Vec<String> {
    let mut names: Vec<String> = links
        .iter()
        .filter(|link| {
            std::fs::symlink_metadata(ctrl_dir.join(&link.name))
                .is_ok_and(|meta| std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()))
        })
        .map(|link| link.name.clone())
        .collect();
    names.sort();
    names
}

fn run_check(args: &CheckArgs) -> anyhow::Result<Status> {
    let mut handle = LinkHandle::open(&Netns::Current)?;
    let mut links = handle.links().context("cannot list the links")?;
    if !args.interfaces.is_empty() {
        for name in &args.interfaces {
            if !links.iter().any(|link| &link.name == name) {
                anyhow::bail!("{name}: no such interface");
            }
        }
        links.retain(|link| args.interfaces.contains(&link.name));
    }

    let ctrl_dir = &args.supplicant.ctrl_dir;
    let (findings, unchecked) = audit::check_running(ctrl_dir, &links, &ClientOptions::default());
    let mut unchecked: Vec<UncheckedRow> = unchecked
        .into_iter()
        .map(|item| UncheckedRow {
            interface: item.ifname,
            error: item.error.to_string(),
        })
        .collect();
    let with_socket = supplicant_interfaces(ctrl_dir, &links);
    // An interface named on the command line that has no supplicant was not checked.
    for name in &args.interfaces {
        if !with_socket.contains(name) {
            unchecked.push(UncheckedRow {
                interface: name.clone(),
                error: format!("no wpa_supplicant control socket in {}", ctrl_dir.display()),
            });
        }
    }
    let checked: Vec<String> = with_socket
        .into_iter()
        .filter(|name| !unchecked.iter().any(|row| &row.interface == name))
        .collect();

    let mut out = io::stdout().lock();
    if args.supplicant.json {
        let report = CheckReport {
            checked,
            findings: &findings,
            unchecked,
        };
        let text = serde_json::to_string_pretty(&report).context("failed to encode the report")?;
        writeln!(out, "{text}")?;
        return Ok(check_status(&findings, &report.unchecked));
    }

    for finding in &findings {
        let severity = format!("{:?}", finding.severity).to_uppercase();
        writeln!(out, "{severity:<6} {} {}", finding.subject, finding.code)?;
        writeln!(out, "       leak: {}", finding.leak)?;
        writeln!(out, "       why:  {}", finding.reason)?;
        writeln!(out, "       fix:  {}", finding.fix)?;
        if let Some(location) = &finding.location {
            writeln!(out, "       at:   {location}")?;
        }
    }
    for item in &unchecked {
        writeln!(out, "{}: not checked: {}", item.interface, item.error)?;
    }
    if checked.is_empty() && unchecked.is_empty() {
        writeln!(
            out,
            "no wpa_supplicant control socket in {}; nothing was checked",
            ctrl_dir.display()
        )?;
    } else if findings.is_empty() && unchecked.is_empty() {
        writeln!(out, "no findings ({} checked)", checked.join(", "))?;
    }
    Ok(check_status(&findings, &unchecked))
}

fn check_status(findings: &[Finding], unchecked: &[UncheckedRow]) -> Status {
    if findings.is_empty() && unchecked.is_empty() {
        Status::Success
    } else {
        Status::Failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret_key::HostId;
    use crate::wifi::address::{AddressInputs, association_address};

    const HOST_ID_HEX: &str = "6d61637665696c2d746573742d686f73742d6964";
    const BOOT: &str = "0b0d4a38-6a0a-4a36-9f2c-7f3d8a4e5b6c";
    const PERMANENT: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0]);

    fn stable_args() -> StableArgs {
        StableArgs {
            stable_id: None,
            connection: None,
            ifname: None,
            boot_id: Some(BOOT.to_string()),
            ssid: None,
            mac: None,
            secret_key: None,
            create_secret_key: false,
            machine_id: None,
            host_id_hex: Some(HOST_ID_HEX.to_string()),
        }
    }

    fn host_id() -> HostId {
        let bytes = (0..HOST_ID_HEX.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&HOST_ID_HEX[i..i + 2], 16).unwrap())
            .collect();
        HostId::from_bytes(bytes)
    }

    /// The command line derives stable addresses through `StableArgs`, the daemon through
    /// `wifi::address`; both must give the same address.
    #[test]
    fn cli_and_library_derive_same_address() {
        let link = LinkInputs {
            ifname: Some("wlan0".into()),
            permanent: Some(PERMANENT),
            current: Some(PERMANENT),
        };
        for (cloned, stable_id) in [
            (ClonedMac::StableSsid, None),
            (ClonedMac::Stable, None),
            (ClonedMac::Stable, Some("${CONNECTION}/${BOOT}")),
        ] {
            let policy = Policy {
                cloned,
                stable_id: stable_id.map(str::to_string),
                mask: None,
            };
            let cli = connection_address(&policy, &stable_args(), &link, b"home")
                .unwrap()
                .unwrap();

            let inputs = AddressInputs {
                ifname: "wlan0",
                hidden: Some(PERMANENT),
                current: Some(PERMANENT),
                ssid: b"home",
                stable_id,
                connection: None,
                boot_id: Some(BOOT),
                mask: None,
            };
            let library = association_address(cloned, &inputs, Some(&host_id()), &mut OsRandom)
                .unwrap()
                .unwrap();
            assert_eq!(cli, library, "{cloned} with {stable_id:?}");
        }
    }

    #[test]
    fn policy_values_parsed() {
        assert_eq!(parse_policy("random"), Ok(ClonedMac::Random));
        assert_eq!(parse_policy("stable-ssid"), Ok(ClonedMac::StableSsid));
        assert_eq!(
            parse_policy("02:00:00:00:00:01"),
            Ok(ClonedMac::Address("02:00:00:00:00:01".parse().unwrap()))
        );
        let err = parse_policy("01:00:00:00:00:01").unwrap_err();
        assert!(err.contains("expected random"), "{err}");
        assert!(parse_policy("sometimes").is_err());
    }

    #[test]
    fn rejections_exit_two_failures_one() {
        let rejected = DriveError::SupplicantRandomizes {
            ifname: "wlan0".into(),
            setting: "mac_addr".into(),
            value: "1".into(),
        };
        assert_eq!(connect_failure_status(&rejected), Status::Error);
        let down = DriveError::SetAddress {
            ifname: "wlan0".into(),
            address: PERMANENT,
            source: crate::link::LinkError::NotSupported {
                ifname: "wlan0".into(),
                index: 3,
                driver: "x".into(),
            },
        };
        assert_eq!(connect_failure_status(&down), Status::Failure);
    }
}
