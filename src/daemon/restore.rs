//! Putting back the addresses macveil set, for `macveil uninstall --restore`: every link of a
//! namespace whose record says macveil set its address gets its permanent address back, or for a
//! link without one the reference address recorded before macveil first changed it. Links
//! macveil did not change are not touched.

use std::path::Path;

use super::state::{LinkStatus, RecordStore};
use crate::link::apply::{self, AfterFailure, ApplyOptions, Change, LinkReport};
use crate::link::state::{Baseline, ReferenceStore};
use crate::link::{LinkError, LinkOps};

/// Restores the links of the namespace `ops` works in, from the records in `state_dir`, and
/// returns one report per link changed back.
pub fn restore_links(
    ops: &mut dyn LinkOps,
    state_dir: &Path,
) -> Result<Vec<LinkReport>, LinkError> {
    let netns = ops.netns_key().to_string();
    let records = RecordStore::new(state_dir).load()?;
    let references = ReferenceStore::new(state_dir);
    let known = references.load()?;

    let mut changes = Vec::new();
    for link in ops.links()? {
        let set_by_macveil = records.iter().any(|record| {
            record.netns == netns
                && record.ifindex == link.index
                && record.ifname == link.name
                && matches!(record.status, LinkStatus::Set | LinkStatus::HeldDown)
        });
        if !set_by_macveil {
            continue;
        }
        match Baseline::of(&link, &netns, &known).address() {
            Some(address) if link.address != Some(address) => changes.push(Change {
                index: link.index,
                address,
            }),
            Some(_) => {}
            None => log::warn!(
                "{}: neither a permanent nor a recorded address is known, so its address stays",
                link.name
            ),
        }
    }
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let options = ApplyOptions {
        cycle: true,
        after_failure: AfterFailure::RestoreAdminState,
    };
    apply::apply(ops, &references, &changes, &options)
}
