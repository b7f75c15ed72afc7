//! NetworkManager-compatible stable addresses.

/// Errors from deriving a stable address.
#[derive(Debug, thiserror::Error)]
pub enum StableError {}
