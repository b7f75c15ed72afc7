//! Putting back the addresses macveil set, for `macveil uninstall --restore`: every link of a
//! namespace that macveil looked after gets its permanent address back, or for a link without
//! one the reference address recorded before macveil first changed it.
//!
//! A link counts as looked after when it has a recorded reference address (only managed links
//! get one) or a record whose status is anything but `ignored`. The status alone is not enough,
//! because a restarted daemon, or the udev helper after the daemon, records a link whose address
//! macveil set earlier as `kept`. A link whose address already equals its baseline is not
//! touched, and neither is a link that the policy ignored, whose address may be someone else's
//! choice (NetworkManager's cloned address, for example).

use std::path::Path;

use super::state::{LinkStatus, RecordStore};
use crate::link::apply::{self, AfterFailure, ApplyOptions, Change, LinkReport};
use crate::link::state::{Baseline, ReferenceStore};
use crate::link::{LinkError, LinkOps};

/// The result of [`restore_links`].
#[derive(Debug, Default)]
pub struct Restored {
    /// One report per link whose address was changed back, or whose change failed.
    pub reports: Vec<LinkReport>,
    /// The links macveil looked after whose original address is not known (no permanent
    /// address and no recorded reference), so they keep their address.
    pub unknown: Vec<String>,
}

impl Restored {
    /// Returns whether any link could not be given its original address.
    pub fn failed(&self) -> bool {
        !self.unknown.is_empty() || self.reports.iter().any(LinkReport::failed)
    }
}

/// Restores the links of the namespace `ops` works in, from the records and references in
/// `state_dir`.
pub fn restore_links(ops: &mut dyn LinkOps, state_dir: &Path) -> Result<Restored, LinkError> {
    let netns = ops.netns_key().to_string();
    let records = RecordStore::new(state_dir).load()?;
    let references = ReferenceStore::new(state_dir);
    let known = references.load()?;

    let mut restored = Restored::default();
    let mut changes = Vec::new();
    for link in ops.links()? {
        let recorded = records.iter().any(|record| {
            record.netns == netns
                && record.ifindex == link.index
                && record.ifname == link.name
                && record.status != LinkStatus::Ignored
        });
        let has_reference = known.get(&netns, &link).is_some();
        if !recorded && !has_reference {
            continue;
        }
        match Baseline::of(&link, &netns, &known).address() {
            Some(address) if link.address != Some(address) => changes.push(Change {
                index: link.index,
                address,
            }),
            Some(_) => log::debug!("{}: already has its original address", link.name),
            None => {
                log::warn!(
                    "{}: neither a permanent nor a recorded address is known, so its address \
                     stays",
                    link.name
                );
                restored.unknown.push(link.name.clone());
            }
        }
    }
    if changes.is_empty() {
        return Ok(restored);
    }
    let options = ApplyOptions {
        cycle: true,
        after_failure: AfterFailure::RestoreAdminState,
    };
    restored.reports = apply::apply(ops, &references, &changes, &options)?;
    Ok(restored)
}
