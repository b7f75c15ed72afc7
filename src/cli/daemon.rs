//! `macveil daemon`: run the daemon in the foreground (systemd starts it with `Type=notify`).
//! The options that select the policy, key and state are shared with `macveil udev-apply`,
//! which must use exactly what the daemon uses.

use std::path::PathBuf;

use clap::Args;

use super::Status;
use crate::config::{ConfigPaths, LoadOptions};
use crate::daemon::nm::DEVICE_STATE_DIR;
use crate::daemon::run::{self, Options};
use crate::link::Netns;
use crate::link::state::DEFAULT_STATE_DIR;
use crate::secret_key::{MACVEIL_KEY_PATH, NETWORKMANAGER_KEY_PATH};

pub(super) const EXAMPLES: &str = "\
Signals:
  SIGHUP   reload the configuration; an invalid one is logged and the running policy kept
  SIGUSR1  the system resumed from suspend: check every link, give random links new addresses
  SIGTERM  exit, leaving every address as it is

Examples:
  macveil daemon
  macveil daemon --now --config /etc/macveil/test.conf
  macveil daemon --nm-config";

/// The options the daemon and the udev helper share.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Read only this configuration file, instead of /etc/macveil/macveil.conf and
    /// /etc/macveil/conf.d/*.conf.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Also read NetworkManager's configuration files (before macveil's own), and hash stable
    /// addresses with NetworkManager's secret key, which is only ever read.
    #[arg(long)]
    pub nm_config: bool,

    /// The state directory: reference addresses, link records and the instance lock.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,

    /// Manage the links of this network namespace: a name from 'ip netns list' or a path such as
    /// /proc/PID/ns/net. Default: the daemon's own.
    #[arg(long, value_name = "NAME|PATH")]
    pub netns: Option<String>,

    /// The secret key for stable addresses. Default: /var/lib/macveil/secret_key, or
    /// /var/lib/NetworkManager/secret_key with --nm-config.
    #[arg(long, value_name = "FILE")]
    pub secret_key: Option<PathBuf>,

    /// The boot id for ${BOOT} (the unit passes systemd's %b). Default: the kernel's,
    /// /proc/sys/kernel/random/boot_id.
    #[arg(long, value_name = "ID")]
    pub boot_id: Option<String>,

    /// Show permanent and reference addresses in full in the log, instead of only their vendor
    /// part.
    #[arg(long)]
    pub reveal: bool,

    /// NetworkManager's device state folder, for tests.
    #[arg(long, value_name = "DIR", hide = true, default_value = DEVICE_STATE_DIR)]
    pub nm_devices_dir: PathBuf,
}

impl PolicyArgs {
    /// Turns the options into the daemon's.
    pub fn options(&self, now: bool) -> anyhow::Result<Options> {
        let netns = match &self.netns {
            Some(value) => Netns::from_arg(value).map_err(anyhow::Error::msg)?,
            None => Netns::Current,
        };
        let key_path = match (&self.secret_key, self.nm_config) {
            (Some(path), _) => path.clone(),
            (None, true) => PathBuf::from(NETWORKMANAGER_KEY_PATH),
            (None, false) => PathBuf::from(MACVEIL_KEY_PATH),
        };
        Ok(Options {
            load: LoadOptions {
                file: self.config.clone(),
                nm_config: self.nm_config,
            },
            config_paths: ConfigPaths::system(),
            now,
            reveal: self.reveal,
            state_dir: self.state_dir.clone(),
            netns,
            key_path,
            boot_id: self
                .boot_id
                .as_deref()
                .map(run::normalize_boot_id)
                .transpose()
                .map_err(anyhow::Error::msg)?,
            nm_devices_dir: self.nm_devices_dir.clone(),
        })
    }
}

/// Options of `macveil daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The configuration, key and state options shared with the daemon.
    #[command(flatten)]
    pub policy: PolicyArgs,

    /// Also change links that are already up at the first start of a boot, which interrupts
    /// their connections. Without it they are reported as exposed until they next go down.
    #[arg(long)]
    pub now: bool,
}

pub(super) fn run(args: &DaemonArgs) -> anyhow::Result<Status> {
    let options = args.policy.options(args.now)?;
    match run::run(options) {
        Ok(()) => Ok(Status::Success),
        Err(err) => {
            log::error!("{err}");
            if err.before_any_change() {
                Ok(Status::Error)
            } else {
                Ok(Status::Failure)
            }
        }
    }
}
