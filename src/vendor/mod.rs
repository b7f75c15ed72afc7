//! The IEEE vendor registry.

use crate::addr::{MacAddr, MacPrefix};

/// One registry entry: a vendor block and the organization it is assigned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vendor {
    /// The assigned block.
    pub prefix: MacPrefix,
    /// The organization name as the IEEE lists it.
    pub name: String,
}

/// The vendor table.
#[derive(Debug, Default)]
pub struct Registry {
    entries: Vec<Vendor>,
}

impl Registry {
    /// Loads the registry.
    pub fn load() -> Registry {
        Registry::default()
    }

    /// Finds the vendor of `addr`, longest prefix first.
    pub fn lookup(&self, addr: &MacAddr) -> Option<&Vendor> {
        self.entries
            .iter()
            .find(|vendor| vendor.prefix.contains(addr))
    }

    /// Lists the vendors whose name contains `text`, ignoring case.
    pub fn search(&self, text: &str) -> Vec<&Vendor> {
        let needle = text.to_lowercase();
        self.entries
            .iter()
            .filter(|vendor| vendor.name.to_lowercase().contains(&needle))
            .collect()
    }

    /// Describes where the table comes from, for `--version`.
    pub fn source(&self) -> String {
        String::from("none")
    }
}
