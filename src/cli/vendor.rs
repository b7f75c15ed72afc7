//! `macveil vendor`: look up an address's vendor or search the registry by name.

use std::io::{self, Write};

use clap::{ArgGroup, Args};

use super::Status;
use crate::addr::MacAddr;
use crate::vendor::Registry;

pub(super) const EXAMPLES: &str = "\
Examples:
  macveil vendor 3c:22:fb:01:02:03
  macveil vendor --search 'intel corporate'";

/// Options of `macveil vendor`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("query").required(true).args(["address", "search"])))]
pub struct VendorArgs {
    /// The address whose vendor to look up.
    pub address: Option<MacAddr>,

    /// List the vendor blocks whose organization name contains TEXT (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
}

pub(super) fn run(args: &VendorArgs) -> anyhow::Result<Status> {
    let registry = Registry::load();
    let mut out = io::stdout().lock();
    if let Some(address) = args.address {
        return match registry.lookup(&address) {
            Some(vendor) => {
                writeln!(out, "{}\t{}", vendor.prefix, vendor.name)?;
                Ok(Status::Success)
            }
            None => {
                writeln!(out, "{address}: no vendor registered")?;
                Ok(Status::Failure)
            }
        };
    }
    let text = args.search.as_deref().unwrap_or_default();
    for vendor in registry.search(text) {
        writeln!(out, "{}\t{}", vendor.prefix, vendor.name)?;
    }
    Ok(Status::Success)
}
