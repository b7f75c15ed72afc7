//! `macveil set`: give interfaces new hardware addresses and report, per interface, what
//! happened. Every name and address is checked and every new address generated before the first
//! link changes, so invalid input changes nothing.

use std::io::{self, Write};
use std::net::Ipv6Addr;

use anyhow::Context;
use clap::{ArgGroup, Args};
use serde::Serialize;

use super::Status;
use super::stable_args::{LinkInputs, StableArgs};
use super::target::{self, TargetArgs};
use crate::addr::MacAddr;
use crate::generate::{self, mask::Mask};
use crate::link::apply::{self, ApplyOptions, Change, LinkReport, Outcome};
use crate::link::redact;
use crate::link::state::{Baseline, ReferenceStore, References};
use crate::link::{Link, LinkOps};
use crate::rng::{OsRandom, RandomSource};
use crate::vendor::Registry;

pub(super) const EXAMPLES: &str = "\
Examples:
  sudo macveil set wlan0 --random
  sudo macveil set eth0 eth1 --vendor intel --cycle
  sudo macveil set veth0 --mac 02:00:00:00:00:01 --netns lab
  sudo macveil set wlan0 --stable --connection 5b2a1c3e-0f4d-4c1e-9d3a-2a6f0e7b8c9d

Exit codes:
  0  every interface has its new address (or already had it)
  1  at least one interface failed; the report says which, and the others may have changed
  2  invalid input or an error before any interface was changed";

/// The options `set` and `restore` share.
#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// Allow taking an interface down for the change and bringing it back up, for drivers that
    /// refuse to change the address while up (EBUSY).
    #[arg(long)]
    pub cycle: bool,

    /// Check the input and print the planned addresses without changing anything.
    #[arg(long)]
    pub dry_run: bool,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,

    /// Print the permanent or reference address, and the IPv6 addresses derived from it, in
    /// full. By default the report hides their last three octets.
    #[arg(long)]
    pub reveal: bool,

    #[command(flatten)]
    pub target: TargetArgs,
}

/// Options of `macveil set`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true)
    .args(["random", "stable", "ending", "vendor", "address", "permanent"])))]
// The stable-address options have their own --mac (the ${MAC} input); in `set` --mac is the
// address to set, so that one is renamed here.
#[command(mut_arg("mac", |arg| arg.long("stable-mac")))]
pub struct SetArgs {
    /// The interfaces to change.
    #[arg(value_name = "IFACE", required = true)]
    pub interfaces: Vec<String>,

    /// 46 random bits from the kernel's CSPRNG; unicast and locally administered.
    #[arg(long)]
    pub random: bool,

    /// NetworkManager's stable address for the options under "Stable address"; the interface's
    /// name and permanent (or reference) address are used unless given there.
    #[arg(long)]
    pub stable: bool,

    /// Keep the vendor prefix of the permanent (or reference) address and randomize the other
    /// 24 bits.
    #[arg(long)]
    pub ending: bool,

    /// A real vendor's prefix from the IEEE registry, optionally one whose name contains FILTER.
    #[arg(long, value_name = "FILTER", num_args = 0..=1, default_missing_value = "")]
    pub vendor: Option<String>,

    /// This address, for one interface. Group (multicast), zero and broadcast addresses are
    /// rejected.
    #[arg(long = "mac", id = "address", value_name = "ADDR")]
    pub address: Option<String>,

    /// The permanent address, or for links without one the address recorded before macveil
    /// first changed them (same as 'macveil restore').
    #[arg(long)]
    pub permanent: bool,

    /// NetworkManager's generate-mac-address-mask: 'MASK [OUI...]' (for --random and --stable).
    #[arg(long, value_name = "MASK", value_parser = Mask::parse)]
    pub mask: Option<Mask>,

    #[command(flatten)]
    pub change: ChangeArgs,

    #[command(flatten)]
    pub stable_args: StableArgs,
}

/// The source of each new address.
pub(super) enum Source<'a> {
    Random(Option<&'a Mask>),
    Stable(&'a StableArgs, Option<&'a Mask>),
    Ending,
    Vendor(&'a str),
    Fixed(MacAddr),
    Baseline,
}

pub(super) fn run(args: &SetArgs) -> anyhow::Result<Status> {
    let source = if args.random {
        Source::Random(args.mask.as_ref())
    } else if args.stable {
        Source::Stable(&args.stable_args, args.mask.as_ref())
    } else if args.ending {
        Source::Ending
    } else if let Some(filter) = &args.vendor {
        Source::Vendor(filter)
    } else if let Some(text) = &args.address {
        let address = MacAddr::parse_assignable(text)?;
        // Two links with one address collide: macvlan links on one parent accept the change
        // while down and then fail to come up (EADDRINUSE), and two links on one network
        // disrupt each other's traffic.
        if args.interfaces.len() > 1 {
            anyhow::bail!(
                "--mac {address} was given for {} interfaces ({}), but two links must not share \
                 an address; nothing was changed. Run 'macveil set IFACE --mac ADDR' once per \
                 interface with a different address, or use --random",
                args.interfaces.len(),
                args.interfaces.join(", ")
            );
        }
        Source::Fixed(address)
    } else {
        Source::Baseline
    };
    change(&args.interfaces, &source, &args.change)
}

/// One planned change, before anything is sent.
struct Plan<'a> {
    link: &'a Link,
    baseline: Baseline,
    address: MacAddr,
}

/// Plans, applies and reports the changes for `names`; shared with `restore`.
pub(super) fn change(
    names: &[String],
    source: &Source,
    args: &ChangeArgs,
) -> anyhow::Result<Status> {
    let (mut handle, links) = args.target.open(false)?;
    let selected = target::select(&links, names)?;

    // Recording the references is not a change to any link; it must happen before the first
    // one, and with --dry-run it is best effort. Restoring never records one: a link without a
    // permanent address or a recorded reference has nothing to return to, and its current
    // address is most likely one that macveil set.
    let store = args.target.store();
    let netns_key = handle.netns_key().to_string();
    let references = if matches!(source, Source::Baseline) {
        store.load()?
    } else if args.dry_run {
        target::references(&store, &netns_key, &selected)
    } else {
        store.record(&netns_key, &selected)?
    };
    let (plans, unrestorable) = plan(&selected, source, &netns_key, &references)?;
    let unrestorable: Vec<Unrestorable> = unrestorable
        .into_iter()
        .map(|link| Unrestorable::new(link, &store))
        .collect();
    if plans.is_empty() {
        let messages: Vec<&str> = unrestorable
            .iter()
            .map(|item| item.message.as_str())
            .collect();
        anyhow::bail!("{}; nothing was changed", messages.join("; "));
    }

    if args.dry_run {
        return print_dry_run(&plans, &unrestorable, args);
    }

    let changes: Vec<Change> = plans
        .iter()
        .map(|plan| Change {
            index: plan.link.index,
            address: plan.address,
        })
        .collect();
    let options = ApplyOptions {
        cycle: args.cycle,
        ..ApplyOptions::default()
    };
    let reports = apply::apply(&mut handle, &store, &changes, &options)?;
    print_reports(&plans, &reports, &unrestorable, args)
}

/// A link that `restore` cannot restore because neither its permanent address nor a recorded
/// reference is known.
struct Unrestorable {
    name: String,
    index: u32,
    address: Option<MacAddr>,
    admin_up: bool,
    message: String,
}

impl Unrestorable {
    fn new(link: &Link, store: &ReferenceStore) -> Unrestorable {
        let message = format!(
            "{}: the permanent address is unknown and {} has no address recorded before \
             macveil's first change, so there is nothing to restore; give the address with \
             'macveil set {} --mac ADDR'",
            link.name,
            store.dir().display(),
            link.name
        );
        Unrestorable {
            name: link.name.clone(),
            index: link.index,
            address: link.address,
            admin_up: link.admin_up,
            message,
        }
    }

    fn row(&self) -> ReportRow {
        let address = shown(self.address, Baseline::Unknown, true);
        ReportRow {
            interface: self.name.clone(),
            index: self.index,
            result: "failed",
            old: address.clone(),
            requested: None,
            new: address,
            cycled: false,
            admin_up: self.admin_up,
            removed_ipv6: Vec::new(),
            added_ipv6: Vec::new(),
            restored: Vec::new(),
            lost: Vec::new(),
            error: Some(self.message.clone()),
        }
    }
}

/// Plans a change for each of `links`. With [`Source::Baseline`], links whose baseline is unknown
/// are returned apart, because restoring the other links is still safe.
fn plan<'a>(
    links: &[&'a Link],
    source: &Source,
    netns_key: &str,
    references: &References,
) -> anyhow::Result<(Vec<Plan<'a>>, Vec<&'a Link>)> {
    let mut rng = OsRandom;
    let registry_prefixes = match source {
        Source::Vendor(filter) => Registry::load()
            .search(filter)
            .iter()
            .map(|vendor| vendor.prefix)
            .collect(),
        _ => Vec::new(),
    };

    let mut plans = Vec::with_capacity(links.len());
    let mut unrestorable = Vec::new();
    for link in links {
        if link.address.is_none() {
            anyhow::bail!(
                "{} ({}) has no 6-byte hardware address, so there is none to change; nothing was \
                 changed",
                link.name,
                link.kind()
            );
        }
        let baseline = Baseline::of(link, netns_key, references);
        if matches!(source, Source::Baseline) && baseline == Baseline::Unknown {
            unrestorable.push(*link);
            continue;
        }
        let avoid: Vec<MacAddr> = link
            .address
            .iter()
            .chain(baseline.address().iter())
            .copied()
            .collect();
        let address = generate_for(link, baseline, source, &avoid, &registry_prefixes, &mut rng)
            .with_context(|| {
                format!(
                    "{}: no address was planned, so nothing was changed",
                    link.name
                )
            })?;
        address
            .validate_assignable()
            .with_context(|| format!("{}: nothing was changed", link.name))?;
        plans.push(Plan {
            link,
            baseline,
            address,
        });
    }
    Ok((plans, unrestorable))
}

fn generate_for(
    link: &Link,
    baseline: Baseline,
    source: &Source,
    avoid: &[MacAddr],
    registry_prefixes: &[crate::addr::MacPrefix],
    rng: &mut dyn RandomSource,
) -> anyhow::Result<MacAddr> {
    let address = match source {
        Source::Random(mask) => generate::random(rng, *mask, link.address, avoid)?,
        Source::Stable(stable_args, mask) => {
            let inputs = LinkInputs {
                ifname: Some(link.name.clone()),
                permanent: baseline.address(),
                current: link.address,
            };
            stable_args.derive(&inputs, *mask, rng)?
        }
        Source::Ending => {
            let Some(base) = baseline.address() else {
                anyhow::bail!(
                    "the link has no permanent or recorded address to keep the vendor prefix of; \
                     use --random or --vendor"
                );
            };
            generate::ending(rng, Some(base), avoid)?
        }
        Source::Vendor(filter) => generate::vendor(rng, registry_prefixes, filter, avoid)?,
        Source::Fixed(address) => *address,
        Source::Baseline => match baseline.address() {
            Some(address) => address,
            None => anyhow::bail!(
                "the permanent address is unknown and no address was recorded before macveil's \
                 first change, so there is nothing to restore"
            ),
        },
    };
    Ok(address)
}

/// Formats an address that may be the one to hide: redacted unless `reveal`. A link without an
/// address (or that vanished) gives `None`, which JSON prints as `null`.
fn shown(address: Option<MacAddr>, baseline: Baseline, reveal: bool) -> Option<String> {
    address.map(|address| redact::mac(address, baseline.address(), reveal))
}

/// Formats an optional address for text output.
fn text_of(address: &Option<String>) -> &str {
    address.as_deref().unwrap_or("none")
}

/// Formats IPv6 addresses, redacting those derived from the baseline unless `reveal`.
fn shown_ipv6(ips: &[Ipv6Addr], baseline: Baseline, reveal: bool) -> Vec<String> {
    ips.iter()
        .map(|ip| redact::ip(ip, baseline.address(), reveal))
        .collect()
}

/// Redacts the baseline and the IPv6 addresses derived from it in `text`, unless `reveal`.
/// Used for error messages and for the items a cycle restored or lost.
fn shown_text(text: &str, baseline: Baseline, reveal: bool) -> String {
    if reveal {
        text.to_string()
    } else {
        redact::text(text, baseline.address())
    }
}

#[derive(Serialize)]
struct ReportRow {
    interface: String,
    index: u32,
    result: &'static str,
    old: Option<String>,
    requested: Option<String>,
    new: Option<String>,
    cycled: bool,
    admin_up: bool,
    removed_ipv6: Vec<String>,
    added_ipv6: Vec<String>,
    restored: Vec<String>,
    lost: Vec<String>,
    error: Option<String>,
}

fn redact_all(items: &[String], baseline: Baseline, reveal: bool) -> Vec<String> {
    items
        .iter()
        .map(|item| shown_text(item, baseline, reveal))
        .collect()
}

fn print_dry_run(
    plans: &[Plan],
    unrestorable: &[Unrestorable],
    args: &ChangeArgs,
) -> anyhow::Result<Status> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    if args.json {
        let mut rows: Vec<ReportRow> = plans
            .iter()
            .map(|plan| ReportRow {
                interface: plan.link.name.clone(),
                index: plan.link.index,
                result: if plan.link.address == Some(plan.address) {
                    "unchanged"
                } else {
                    "planned"
                },
                old: shown(plan.link.address, plan.baseline, args.reveal),
                requested: shown(Some(plan.address), plan.baseline, args.reveal),
                new: shown(plan.link.address, plan.baseline, args.reveal),
                cycled: false,
                admin_up: plan.link.admin_up,
                removed_ipv6: Vec::new(),
                added_ipv6: Vec::new(),
                restored: Vec::new(),
                lost: Vec::new(),
                error: None,
            })
            .collect();
        rows.extend(unrestorable.iter().map(Unrestorable::row));
        super::write_json(&mut out, &rows)?;
    } else {
        for plan in plans {
            let old = shown(plan.link.address, plan.baseline, args.reveal);
            let new = shown(Some(plan.address), plan.baseline, args.reveal);
            if plan.link.address == Some(plan.address) {
                writeln!(
                    out,
                    "{}: already has {}; nothing to change",
                    plan.link.name,
                    text_of(&old)
                )?;
            } else {
                writeln!(
                    out,
                    "{}: would change {} -> {}",
                    plan.link.name,
                    text_of(&old),
                    text_of(&new)
                )?;
            }
        }
        for item in unrestorable {
            write_row(&mut out, &item.row())?;
        }
    }
    out.flush()?;
    Ok(if unrestorable.is_empty() {
        Status::Success
    } else {
        Status::Failure
    })
}

fn print_reports(
    plans: &[Plan],
    reports: &[LinkReport],
    unrestorable: &[Unrestorable],
    args: &ChangeArgs,
) -> anyhow::Result<Status> {
    let mut rows = Vec::with_capacity(reports.len());
    for (plan, report) in plans.iter().zip(reports) {
        let (result, error) = match &report.outcome {
            Outcome::Changed => ("changed", None),
            Outcome::Unchanged => ("unchanged", None),
            Outcome::Superseded(_) => (
                "superseded",
                Some(String::from(
                    "another program changed the address right after macveil did; the link \
                     keeps the address shown as new. Stop that program, or let it choose the \
                     address, and run the command again",
                )),
            ),
            Outcome::Failed(error) => (
                "failed",
                Some(shown_text(&error.to_string(), plan.baseline, args.reveal)),
            ),
        };
        rows.push(ReportRow {
            // The name the link had when it was planned: a link that vanished meanwhile is
            // only known by its index to the change.
            interface: plan.link.name.clone(),
            index: report.index,
            result,
            old: shown(report.old, plan.baseline, args.reveal),
            requested: shown(Some(report.requested), plan.baseline, args.reveal),
            new: shown(report.new, plan.baseline, args.reveal),
            cycled: report.cycled,
            admin_up: report.is_up,
            removed_ipv6: shown_ipv6(&report.removed_ipv6, plan.baseline, args.reveal),
            added_ipv6: shown_ipv6(&report.added_ipv6, plan.baseline, args.reveal),
            restored: redact_all(&report.restored, plan.baseline, args.reveal),
            lost: redact_all(&report.lost, plan.baseline, args.reveal),
            error,
        });
    }
    rows.extend(unrestorable.iter().map(Unrestorable::row));

    let mut out = io::BufWriter::new(io::stdout().lock());
    if args.json {
        super::write_json(&mut out, &rows)?;
    } else {
        for row in &rows {
            write_row(&mut out, row)?;
        }
    }

    out.flush()?;
    // A superseded change did not give the link the requested address either.
    let failed = reports
        .iter()
        .filter(|report| !matches!(report.outcome, Outcome::Changed | Outcome::Unchanged))
        .count()
        + unrestorable.len();
    if failed == 0 {
        return Ok(Status::Success);
    }
    eprintln!(
        "macveil: {failed} of {} interfaces failed; see the report above",
        rows.len()
    );
    Ok(Status::Failure)
}

fn write_row(out: &mut impl Write, row: &ReportRow) -> io::Result<()> {
    match row.result {
        "changed" => writeln!(
            out,
            "{}: changed {} -> {}",
            row.interface,
            text_of(&row.old),
            text_of(&row.new)
        )?,
        "unchanged" => writeln!(
            out,
            "{}: unchanged, already {}",
            row.interface,
            text_of(&row.new)
        )?,
        _ => {
            writeln!(
                out,
                "{}: failed, address is {}",
                row.interface,
                text_of(&row.new)
            )?;
            writeln!(out, "  {}", row.error.as_deref().unwrap_or("unknown error"))?;
        }
    }
    if row.cycled {
        let state = if row.admin_up { "up" } else { "down" };
        writeln!(out, "  taken down for the change; now {state}")?;
    }
    for ip in &row.removed_ipv6 {
        writeln!(
            out,
            "  removed IPv6 address {ip} (derived from the old address)"
        )?;
    }
    for ip in &row.added_ipv6 {
        writeln!(out, "  added IPv6 link-local address {ip}")?;
    }
    for item in &row.restored {
        writeln!(out, "  restored {item}")?;
    }
    for item in &row.lost {
        writeln!(out, "  lost {item}")?;
    }
    Ok(())
}
