//! The macveil daemon: enforces the address policy on every link from the moment it appears.

mod cycle;
pub mod decide;
pub mod drive;
pub mod engine;
#[cfg(test)]
mod engine_tests;
pub mod facts;
pub mod instance;
pub mod nm;
pub mod notify;
pub mod restore;
pub mod run;
mod scoped;
pub mod signals;
pub mod state;
pub mod target;
pub mod udev;
pub mod wifi;
