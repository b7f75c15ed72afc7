//! `macveil vendor`: look up an address's vendor or search the registry by name.

use std::io::{self, Write};

use clap::{ArgGroup, Args};
use serde::Serialize;

use super::Status;
use crate::addr::{GROUP_BIT, MacAddr};
use crate::vendor::{Registry, Vendor};

pub(super) const EXAMPLES: &str = "\
Examples:
  macveil vendor 3c:22:fb:01:02:03
  macveil vendor --search 'intel corporate'
  macveil vendor --json 70:b3:d5:f2:f0:01

'macveil vendor' exits with 1 when no vendor is registered for the address, or when no
organization name contains the --search text.";

/// Options of `macveil vendor`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("query").required(true).args(["address", "search"])))]
pub struct VendorArgs {
    /// The address whose vendor to look up.
    pub address: Option<MacAddr>,

    /// List the vendor blocks whose organization name contains TEXT (case-insensitive).
    #[arg(long, value_name = "TEXT", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub search: Option<String>,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A vendor block as `--json` prints it.
#[derive(Serialize)]
struct BlockJson<'a> {
    name: &'a str,
    prefix: String,
    registry: &'static str,
    prefix_bits: u8,
    block_size: u64,
}

impl<'a> BlockJson<'a> {
    fn new(vendor: &'a Vendor) -> BlockJson<'a> {
        BlockJson {
            name: &vendor.name,
            prefix: vendor.prefix.to_string(),
            registry: vendor.registry.name(),
            prefix_bits: vendor.prefix.bits,
            block_size: vendor.block_size(),
        }
    }
}

/// The output of `macveil vendor --json ADDR`.
#[derive(Serialize)]
struct LookupJson<'a> {
    address: MacAddr,
    group: bool,
    locally_administered: bool,
    vendor: Option<BlockJson<'a>>,
}

pub(super) fn run(args: &VendorArgs) -> anyhow::Result<Status> {
    let registry = Registry::load();
    let mut out = io::stdout().lock();
    match (&args.address, &args.search) {
        (Some(address), _) => lookup(&registry, *address, args.json, &mut out),
        (None, Some(text)) => search(&registry, text, args.json, &mut out),
        (None, None) => unreachable!("clap requires an address or --search"),
    }
}

fn lookup(
    registry: &Registry,
    address: MacAddr,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<Status> {
    // A locally administered address was chosen by the network's administrator, so no IEEE
    // block applies. A group address belongs to the block of the same OUI with the I/G bit clear
    // (IEEE 802: 01:80:c2:00:00:0e is a group address of OUI 00:80:c2).
    let vendor = if address.is_local() {
        None
    } else {
        let mut unicast = address;
        unicast.0[0] &= !GROUP_BIT;
        registry.lookup(&unicast)
    };

    if json {
        let output = LookupJson {
            address,
            group: address.is_group(),
            locally_administered: address.is_local(),
            vendor: vendor.map(BlockJson::new),
        };
        super::write_json(out, &output)?;
    } else if address.is_local() {
        writeln!(
            out,
            "{address} is locally administered (bit 0x02 of the first octet is set): it was not \
             assigned by the IEEE, so no vendor applies"
        )?;
    } else {
        if address.is_group() {
            writeln!(
                out,
                "note: {address} is a group (multicast) address; showing the block of its OUI \
                 with the group bit (0x01) cleared"
            )?;
        }
        match vendor {
            Some(vendor) => {
                writeln!(out, "vendor: {}", vendor.name)?;
                writeln!(
                    out,
                    "block:  {} ({}, {} addresses)",
                    vendor.prefix,
                    vendor.registry,
                    vendor.block_size()
                )?;
            }
            None => writeln!(
                out,
                "{address}: no vendor is registered for this address in the vendor registry ({})",
                registry.source()
            )?,
        }
    }

    Ok(if vendor.is_some() {
        Status::Success
    } else {
        Status::Failure
    })
}

fn search(
    registry: &Registry,
    text: &str,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<Status> {
    let found = registry.search(text);

    if json {
        let blocks: Vec<BlockJson> = found.iter().map(|vendor| BlockJson::new(vendor)).collect();
        super::write_json(out, &blocks)?;
    } else {
        for vendor in &found {
            writeln!(
                out,
                "{}\t{}\t{}",
                vendor.prefix, vendor.registry, vendor.name
            )?;
        }
    }

    // The note goes to stderr so that a script reading the list reads only blocks.
    if found.is_empty() {
        eprintln!("macveil: no organization name in the vendor registry contains '{text}'");
        return Ok(Status::Failure);
    }
    Ok(Status::Success)
}
