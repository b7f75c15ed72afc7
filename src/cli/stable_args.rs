//! The options that feed NetworkManager-compatible stable addresses, shared by the commands that
//! generate them.

use std::path::PathBuf;

use clap::Args;

use crate::addr::MacAddr;
use crate::generate::mask::Mask;
use crate::rng::RandomSource;

/// Inputs of a stable address.
#[derive(Debug, Args)]
pub struct StableArgs {
    /// Stable-id template, as NetworkManager's connection.stable-id (for example
    /// '${CONNECTION}/${BOOT}'). Unset: the connection UUID alone.
    #[arg(long, value_name = "TEMPLATE", help_heading = "Stable address")]
    pub stable_id: Option<String>,

    /// Connection UUID for ${CONNECTION}.
    #[arg(long, value_name = "UUID", help_heading = "Stable address")]
    pub connection: Option<String>,

    /// Interface name hashed into the address and used for ${DEVICE}.
    #[arg(long, value_name = "NAME", help_heading = "Stable address")]
    pub ifname: Option<String>,

    /// Boot id for ${BOOT}. Default: /proc/sys/kernel/random/boot_id.
    #[arg(long, value_name = "ID", help_heading = "Stable address")]
    pub boot_id: Option<String>,

    /// Network SSID for ${NETWORK_SSID}.
    #[arg(long, value_name = "SSID", help_heading = "Stable address")]
    pub ssid: Option<String>,

    /// Permanent address for ${MAC}.
    #[arg(long = "mac", value_name = "ADDR", help_heading = "Stable address")]
    pub mac: Option<MacAddr>,

    /// Secret key file. Default: /var/lib/macveil/secret_key.
    #[arg(long, value_name = "FILE", help_heading = "Stable address")]
    pub secret_key: Option<PathBuf>,

    /// Machine id, or a file containing it. Default: /etc/machine-id.
    #[arg(long, value_name = "ID|FILE", help_heading = "Stable address")]
    pub machine_id: Option<String>,
}

/// What the interface being given a stable address contributes: its name, its permanent address
/// (for `${MAC}`), its current address (for a mask without OUIs) and macveil's per-link identity
/// (for `${CONNECTION}` when `--connection` is not given). Options given on the command line win.
#[derive(Debug, Clone, Default)]
pub struct LinkInputs {
    /// The interface name.
    pub ifname: Option<String>,
    /// The permanent (or reference) address.
    pub permanent: Option<MacAddr>,
    /// The current address.
    pub current: Option<MacAddr>,
}

impl StableArgs {
    /// Derives the stable address these options describe for one interface.
    pub fn derive(
        &self,
        _link: &LinkInputs,
        _mask: Option<&Mask>,
        _rng: &mut dyn RandomSource,
    ) -> anyhow::Result<MacAddr> {
        anyhow::bail!("stable addresses are not available yet")
    }
}
