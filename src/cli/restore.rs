//! `macveil restore`: put interfaces back on the address they must otherwise hide: the
//! permanent address, or for links without one the address recorded before macveil first changed
//! them. The same checks, read-back and report as `macveil set`.

use clap::Args;

use super::Status;
use super::set::{self, ChangeArgs, Source};

pub(super) const EXAMPLES: &str = "\
Examples:
  sudo macveil restore wlan0
  sudo macveil restore veth0 veth1 --netns lab

Exit codes:
  0  every interface has its permanent or recorded address again
  1  at least one interface failed, for example one without a known permanent or recorded
     address; the report says which, and the others may have changed
  2  invalid input, no named interface has a known permanent or recorded address, or an
     error before any interface was changed";

/// Options of `macveil restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The interfaces to restore.
    #[arg(value_name = "IFACE", required = true)]
    pub interfaces: Vec<String>,

    #[command(flatten)]
    pub change: ChangeArgs,
}

pub(super) fn run(args: &RestoreArgs) -> anyhow::Result<Status> {
    set::change(&args.interfaces, &Source::Baseline, &args.change)
}
