//! `macveil udev-apply`: run by udev (`dist/81-macveil.rules`) for each new network link. It
//! sets the link's address while the link is still down and prints `KEY=value` lines for udev.
//! Hidden from the main help because people do not run it by hand; `macveil udev-apply --help`
//! documents it.

use clap::Args;

use super::Status;
use super::daemon::PolicyArgs;
use crate::daemon::udev;

pub(super) const ABOUT: &str = "\
Set a new link's address from udev, before any network manager sees it.

udev runs this from 81-macveil.rules with IMPORT{program} for every added network link, after
80-net-setup-link.rules chose the link's final name. It reads the same configuration, secret key
and state directory as the daemon, works whether the daemon runs or not, and finishes within 10
seconds.

It prints udev properties:
  MACVEIL_POLICY=stable|random|...  the link's policy
  MACVEIL_STATE=set|kept|ignored|exposed|held-down|failed|gone|timeout
  MACVEIL_ADDRESS=ADDR              the address set or kept
  MACVEIL_ERROR=TEXT                why the address could not be set
When the address could not be set, it also prints NM_UNMANAGED=1 and
ID_NET_MANAGED_BY=io.macveil.held-down, so that NetworkManager and systemd-networkd leave the
down link alone. After fixing the cause, run 'udevadm trigger --action=add
/sys/class/net/NAME' to try again.

It always exits with 0, because udev ignores the output of a program that fails.";

/// Options of `macveil udev-apply`.
#[derive(Debug, Args)]
pub struct UdevArgs {
    /// The new link's interface index (udev's $attr{ifindex}).
    #[arg(long, value_name = "N")]
    pub ifindex: u32,

    /// The link's final name (udev's $name), which the kernel shows only after udev renamed it.
    #[arg(long, value_name = "NAME")]
    pub name: String,

    /// The configuration, key and state options shared with the daemon.
    #[command(flatten)]
    pub policy: PolicyArgs,
}

pub(super) fn run(args: &UdevArgs) -> anyhow::Result<Status> {
    udev::arm_time_limit();
    let output = match args.policy.options(false) {
        Ok(options) => udev::apply_new_link(&options, args.ifindex, &args.name),
        Err(err) => {
            log::error!("{}: {err:#}", args.name);
            udev::UdevOutput::failed_with("failed", &format!("{err:#}"))
        }
    };
    udev::print(&output)?;
    Ok(Status::Success)
}
