//! The options and steps that `show`, `set` and `restore` share: which network namespace and
//! state directory to use, and which interfaces the user named.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::addr::MacAddr;
use crate::link::state::{DEFAULT_STATE_DIR, ReferenceStore, References};
use crate::link::{Link, LinkError, LinkHandle, LinkOps, Netns};
use crate::vendor::Registry;

/// The namespace and state directory a link command works with.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Work in this network namespace: a name from 'ip netns list' or a path such as
    /// /proc/PID/ns/net. Default: the current one.
    #[arg(long, value_name = "NAME|PATH")]
    pub netns: Option<String>,

    /// Directory of the file that records each link's address before macveil first changes
    /// it.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

impl TargetArgs {
    /// Returns the namespace the options select.
    pub fn netns(&self) -> anyhow::Result<Netns> {
        match &self.netns {
            None => Ok(Netns::Current),
            Some(value) => Netns::from_arg(value).map_err(anyhow::Error::msg),
        }
    }

    /// Opens the namespace and reads every link in it, with the facts that only describe a
    /// link (assign type, Wi-Fi) when `details` is set.
    pub fn open(&self, details: bool) -> anyhow::Result<(LinkHandle, Vec<Link>)> {
        let netns = self.netns()?;
        let mut handle = if details {
            LinkHandle::open(&netns)?
        } else {
            LinkHandle::open_for_changes(&netns)?
        };
        let links = handle
            .links()
            .with_context(|| format!("cannot list the links in {netns}"))?;
        Ok((handle, links))
    }

    /// Returns the reference state store.
    pub fn store(&self) -> ReferenceStore {
        ReferenceStore::new(&self.state_dir)
    }
}

/// Picks the links the user named, in the order given. A name that does not exist, or one given
/// twice, is an error that lists the names that do exist.
pub fn select<'a>(links: &'a [Link], names: &[String]) -> anyhow::Result<Vec<&'a Link>> {
    let mut seen = HashSet::new();
    let mut selected = Vec::with_capacity(names.len());
    for name in names {
        if !seen.insert(name.as_str()) {
            anyhow::bail!("{name} is listed more than once; give each interface once");
        }
        match links.iter().find(|link| &link.name == name) {
            Some(link) => selected.push(link),
            None => {
                return Err(LinkError::NoDevice {
                    ifname: name.clone(),
                    index: None,
                    existing: links.iter().map(|link| link.name.clone()).collect(),
                }
                .into());
            }
        }
    }
    Ok(selected)
}

/// Records the reference address of `links` that have none yet and returns every reference.
/// When the state file cannot be written (not root), the recorded ones are read instead, and
/// when it cannot be read either, none are known.
pub fn references(store: &ReferenceStore, netns_key: &str, links: &[&Link]) -> References {
    match store.record(netns_key, links) {
        Ok(references) => references,
        Err(err) => {
            log::debug!("not recording reference addresses: {err}");
            store.load().unwrap_or_else(|err| {
                log::warn!("reference addresses unavailable: {err}");
                References::default()
            })
        }
    }
}

/// Returns the vendor of `address` for display: the registry's name, "locally administered", or
/// "unregistered".
pub fn vendor_name(registry: &Registry, address: &MacAddr) -> String {
    if address.is_local() {
        return String::from("locally administered");
    }
    match registry.lookup(address) {
        Some(vendor) => vendor.name.clone(),
        None => String::from("unregistered"),
    }
}
