//! `macveil gen`: print generated addresses without touching any interface.

use std::io::{self, Write};

use anyhow::Context;
use clap::{ArgGroup, Args};
use serde::Serialize;

use super::Status;
use super::stable_args::{LinkInputs, StableArgs};
use crate::addr::MacAddr;
use crate::generate::{self, mask::Mask};
use crate::rng::OsRandom;
use crate::vendor::Registry;

pub(super) const EXAMPLES: &str = "\
Examples:
  macveil gen --random
  macveil gen --random --count 5 --json
  macveil gen --ending --permanent 3c:22:fb:01:02:03
  macveil gen --vendor apple
  macveil gen --stable --connection 5b2a1c3e-0f4d-4c1e-9d3a-2a6f0e7b8c9d --ifname eth0 \\
      --stable-id '${CONNECTION}/${BOOT}'";

/// Options of `macveil gen`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("generator").required(true).args(["random", "stable", "ending", "vendor"])))]
pub struct GenArgs {
    /// 46 random bits from the kernel's CSPRNG; unicast and locally administered.
    #[arg(long)]
    pub random: bool,

    /// NetworkManager's stable address for the options under "Stable address".
    #[arg(long)]
    pub stable: bool,

    /// Keep the vendor prefix of --permanent and randomize the other 24 bits.
    #[arg(long, requires = "permanent")]
    pub ending: bool,

    /// A real vendor's prefix from the IEEE registry, optionally one whose name contains FILTER.
    #[arg(long, value_name = "FILTER", num_args = 0..=1, default_missing_value = "")]
    pub vendor: Option<String>,

    /// The interface's permanent address; the result never equals it.
    #[arg(long, value_name = "ADDR")]
    pub permanent: Option<MacAddr>,

    /// The interface's current address: the result never equals it, and a mask without OUIs
    /// takes its masked bits from it.
    #[arg(long, value_name = "ADDR")]
    pub current: Option<MacAddr>,

    /// NetworkManager's generate-mac-address-mask: 'MASK [OUI...]' (for --random and --stable).
    #[arg(long, value_name = "MASK", value_parser = Mask::parse, conflicts_with_all = ["ending", "vendor"])]
    pub mask: Option<Mask>,

    /// How many addresses to print.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub count: u32,

    /// Print JSON instead of one address per line.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub stable_args: StableArgs,
}

#[derive(Serialize)]
struct Generated {
    address: MacAddr,
    generator: &'static str,
}

pub(super) fn run(args: &GenArgs) -> anyhow::Result<Status> {
    let mut rng = OsRandom;
    let avoid: Vec<MacAddr> = args
        .current
        .iter()
        .chain(args.permanent.iter())
        .copied()
        .collect();
    let registry_prefixes = match &args.vendor {
        Some(filter) => {
            let registry = Registry::load();
            registry
                .search(filter)
                .iter()
                .map(|vendor| vendor.prefix)
                .collect()
        }
        None => Vec::new(),
    };

    let mut generated = Vec::with_capacity(args.count as usize);
    for _ in 0..args.count {
        let (address, generator) = if args.random {
            let initial = args.current.or(args.permanent);
            (
                generate::random(&mut rng, args.mask.as_ref(), initial, &avoid)?,
                "random",
            )
        } else if args.stable {
            let link = LinkInputs {
                ifname: None,
                permanent: args.permanent,
                current: args.current,
            };
            let address = args
                .stable_args
                .derive(&link, args.mask.as_ref(), &mut rng)?;
            (address, "stable")
        } else if args.ending {
            (
                generate::ending(&mut rng, args.permanent, &avoid)?,
                "ending",
            )
        } else {
            let filter = args.vendor.as_deref().unwrap_or_default();
            (
                generate::vendor(&mut rng, &registry_prefixes, filter, &avoid)?,
                "vendor",
            )
        };
        generated.push(Generated { address, generator });
    }

    let mut out = io::stdout().lock();
    if args.json {
        // Serializing to a string first keeps a closed stdout an io::Error, which the caller
        // treats as the end of output rather than a failure.
        let json = serde_json::to_string_pretty(&generated).context("failed to encode JSON")?;
        writeln!(out, "{json}")?;
    } else {
        for item in &generated {
            writeln!(out, "{}", item.address)?;
        }
    }
    Ok(Status::Success)
}
