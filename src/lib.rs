//! macveil keeps a machine's hardware (MAC) address off the networks it joins.
//!
//! The library holds everything a test can call: the address model, the generators, the vendor
//! registry and the command implementations. The `macveil` binary only parses arguments, sets up
//! logging and maps errors to exit codes.

#![deny(missing_docs)]

pub mod addr;
pub mod audit;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod encoding;
mod fsutil;
pub mod generate;
pub mod install;
pub mod link;
pub mod nm;
pub mod rng;
pub mod secret_key;
pub mod vendor;
pub mod wifi;

pub use addr::MacAddr;
