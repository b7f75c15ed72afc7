//! Wi-Fi: the scan address and the association address, with the wpa_supplicant that is
//! running. `docs/wifi.md` describes the design and the reasons behind it.
//!
//! - [`ctrl`] speaks wpa_supplicant's control-socket protocol, and [`supplicant`] wraps the
//!   commands macveil uses.
//! - [`address`] derives the address of one connection from the policy and the network's SSID.
//! - [`drive`] connects with that address: it sets the address while the radio is down, then
//!   selects the network, because reacting to the supplicant's own attempt is too late.
//! - [`privacy`] turns scan-address randomization on or off.
//! - [`audit`] reports what the running supplicants expose.
//! - [`iwd`] edits iwd's known-network files, where iwd takes a per-network address.
//! - [`process`] finds the supplicant process behind a control socket and watches it exit.
//!
//! This module neither reads macveil's configuration nor prints anything; the command line and
//! the daemon do both.

pub mod address;
pub mod audit;
pub mod ctrl;
pub mod drive;
pub mod iwd;
pub mod privacy;
pub mod process;
pub mod supplicant;
