//! `macveil show`: list links with their current, permanent and reference addresses and whether
//! each one still shows the address it must hide. It changes no link; it records the reference
//! address of links seen for the first time when the state directory is writable.

use std::io::{self, Write};

use clap::Args;
use serde::Serialize;

use super::Status;
use super::target::{self, TargetArgs};
use crate::addr::MacAddr;
use crate::link::state::{Baseline, Verdict};
use crate::link::{AssignType, Link, LinkOps, OperState, PermanentSource};
use crate::vendor::Registry;

pub(super) const EXAMPLES: &str = "\
Examples:
  macveil show
  macveil show wlan0 --json
  sudo macveil show --netns lab

Exit codes:
  0  the links were listed
  2  an interface does not exist, or the links could not be read";

/// Options of `macveil show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Interfaces to show. Default: every link in the namespace.
    #[arg(value_name = "IFACE")]
    pub interfaces: Vec<String>,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Serialize)]
struct Row {
    name: String,
    index: u32,
    kind: String,
    driver: Option<String>,
    admin_up: bool,
    lower_up: bool,
    operstate: OperState,
    address: Option<MacAddr>,
    address_vendor: Option<String>,
    permanent: Option<MacAddr>,
    permanent_source: Option<PermanentSource>,
    permanent_vendor: Option<String>,
    reference: Option<MacAddr>,
    assign_type: AssignType,
    verdict: Verdict,
}

pub(super) fn run(args: &ShowArgs) -> anyhow::Result<Status> {
    let (handle, links) = args.target.open(true)?;
    let shown: Vec<&Link> = if args.interfaces.is_empty() {
        links.iter().collect()
    } else {
        target::select(&links, &args.interfaces)?
    };

    let store = args.target.store();
    let netns_key = handle.netns_key().to_string();
    let references = target::references(&store, &netns_key, &shown);
    let registry = Registry::load();
    let vendor = |address: &Option<MacAddr>| {
        address
            .as_ref()
            .map(|address| target::vendor_name(&registry, address))
    };

    let rows: Vec<Row> = shown
        .iter()
        .map(|link| {
            let baseline = Baseline::of(link, &netns_key, &references);
            let reference = match baseline {
                Baseline::Reference(reference) => Some(reference),
                _ => None,
            };
            Row {
                name: link.name.clone(),
                index: link.index,
                kind: link.kind(),
                driver: link.driver.clone(),
                admin_up: link.admin_up,
                lower_up: link.lower_up,
                operstate: link.operstate,
                address: link.address,
                address_vendor: vendor(&link.address),
                permanent: link.permanent,
                permanent_source: link.permanent_source,
                permanent_vendor: vendor(&link.permanent),
                reference,
                assign_type: link.assign_type,
                verdict: baseline.verdict(link.address),
            }
        })
        .collect();

    let mut out = io::BufWriter::new(io::stdout().lock());
    if args.json {
        super::write_json(&mut out, &rows)?;
    } else {
        for (position, row) in rows.iter().enumerate() {
            if position > 0 {
                writeln!(out)?;
            }
            write_row(&mut out, row)?;
        }
    }
    out.flush()?;
    Ok(Status::Success)
}

fn write_row(out: &mut impl Write, row: &Row) -> io::Result<()> {
    let admin = if row.admin_up { "up" } else { "down" };
    let carrier = if row.lower_up {
        "carrier"
    } else {
        "no carrier"
    };
    writeln!(
        out,
        "{} (index {}): {}, driver {}, {admin}, {carrier}, operstate {}",
        row.name,
        row.index,
        row.kind,
        row.driver.as_deref().unwrap_or("unknown"),
        row.operstate
    )?;
    match (row.address, &row.address_vendor) {
        (Some(address), Some(vendor)) => writeln!(out, "  current:    {address} ({vendor})")?,
        _ => writeln!(out, "  current:    none")?,
    }
    match (row.permanent, &row.permanent_vendor) {
        (Some(permanent), Some(vendor)) => {
            writeln!(out, "  permanent:  {permanent} ({vendor})")?;
        }
        _ => writeln!(out, "  permanent:  unknown")?,
    }
    if let Some(reference) = row.reference {
        writeln!(
            out,
            "  reference:  {reference} (the address before macveil's first change)"
        )?;
    }
    writeln!(out, "  assigned:   {}", row.assign_type)?;
    writeln!(out, "  verdict:    {}", row.verdict)
}
