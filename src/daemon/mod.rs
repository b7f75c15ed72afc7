//! The macveil daemon: enforces the address policy on every link from the moment it appears.

pub mod decide;
pub mod notify;
pub mod state;
pub mod instance;
pub mod nm;
pub mod signals;
