//! Scan privacy: keeping the permanent address, and the association address, out of probe
//! requests and GAS (ANQP) queries, which every access point and tracker in range receives.
//!
//! wpa_supplicant 2.10 offers two ways, and which one is right depends on who sets the address
//! of the connection:
//!
//! - **The kernel's random scan address** (`MAC_RAND_SCAN all enable=1`). Each scan request
//!   carries `NL80211_SCAN_FLAG_RANDOM_ADDR`, and the driver sends its probe requests from a new
//!   random address; the interface address does not change. This is the method when macveil
//!   sets the association address, because nothing touches the address macveil set. The driver
//!   must support it (`NL80211_FEATURE_SCAN_RANDOM_MAC_ADDR`; `iw phy` prints "Device supports
//!   randomizing MAC-addr in scans").
//! - **The supplicant's own pre-association address** (`preassoc_mac_addr=1|2`). The supplicant
//!   changes the interface address before scans while it is not associated. This suits only a
//!   supplicant that also randomizes the association itself (`mac_addr=1|2`): with
//!   `mac_addr=0` it puts back the address it started with before every association, so with
//!   macveil's address it would undo that address (see [`super::drive`]).
//!
//! Both come with `gas_rand_mac_addr=1`, which sends GAS queries from a random address without
//! changing the interface address.
//!
//! `MAC_RAND_SCAN` is not a configuration setting, so it is lost when wpa_supplicant restarts
//! and must be applied again after each start.

use serde::Serialize;

use super::ctrl::CtrlError;
use super::supplicant::{Supplicant, SupplicantOps};

/// The way the supplicant's scans hide the interface address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScanMethod {
    /// The kernel sends each scan from a new random address (`MAC_RAND_SCAN`).
    Kernel,
    /// The supplicant changes the interface address before scans (`preassoc_mac_addr`), and
    /// the kernel's random address is on as well when the driver supports it.
    Supplicant,
    /// Scans use the interface address: scan privacy is off, or the driver cannot randomize
    /// scans and the supplicant must not change the address macveil set.
    InterfaceAddress,
}

/// The scan settings after [`set_scan_privacy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanPrivacy {
    /// The way scans hide the interface address.
    pub method: ScanMethod,
    /// Whether the driver accepted the kernel's random scan address.
    pub kernel_random_scan: bool,
    /// The supplicant's `mac_addr`: 0 when the association address is the interface's (set by
    /// macveil), 1 or 2 when the supplicant randomizes it.
    pub association_mac_addr: String,
    /// The `preassoc_mac_addr` now in effect.
    pub preassoc_mac_addr: String,
    /// Whether GAS queries use a random address (`gas_rand_mac_addr=1`).
    pub gas_random: bool,
}

/// Turns scan privacy on or off for one supplicant interface, choosing the method as the module
/// documentation describes. With `lifetime`, also sets `rand_addr_lifetime` (seconds), which
/// applies to the random addresses the supplicant makes itself.
pub fn set_scan_privacy(
    supplicant: &mut Supplicant,
    on: bool,
    lifetime: Option<u32>,
) -> Result<ScanPrivacy, CtrlError> {
    let association = supplicant.get("mac_addr")?;
    let supplicant_randomizes = association != "0";

    let kernel_random_scan = match supplicant.set_scan_randomization(on) {
        Ok(()) => on,
        // Without driver support the supplicant rejects the command, and turning it off there
        // is nothing to do.
        Err(CtrlError::Rejected { .. } | CtrlError::UnknownCommand { .. }) => false,
        Err(err) => return Err(err),
    };

    let preassoc = if on && supplicant_randomizes {
        association.clone()
    } else {
        String::from("0")
    };
    supplicant.set("preassoc_mac_addr", &preassoc)?;
    supplicant.set("gas_rand_mac_addr", if on { "1" } else { "0" })?;
    if let Some(seconds) = lifetime {
        supplicant.set("rand_addr_lifetime", &seconds.to_string())?;
    }

    let method = if preassoc != "0" {
        ScanMethod::Supplicant
    } else if kernel_random_scan {
        ScanMethod::Kernel
    } else {
        ScanMethod::InterfaceAddress
    };
    Ok(ScanPrivacy {
        method,
        kernel_random_scan,
        association_mac_addr: association,
        preassoc_mac_addr: preassoc,
        gas_random: on,
    })
}

#[cfg(test)]
mod tests {
    use super::super::ctrl::ClientOptions;
    use super::super::ctrl::fake::{Answer, FakeServer};
    use super::*;
    use std::time::Duration;

    /// Starts a fake supplicant with `mac_addr` set to `association`, whose driver does or does
    /// not support random scan addresses.
    fn server(association: &'static str, kernel_support: bool) -> FakeServer {
        FakeServer::start(move |command| match command {
            "PING" => Answer::reply("PONG\n"),
            "GET mac_addr" => Answer::reply(&format!("{association}\n")),
            "MAC_RAND_SCAN all enable=1" | "MAC_RAND_SCAN all enable=0" => {
                Answer::reply(if kernel_support { "OK\n" } else { "FAIL\n" })
            }
            command if command.starts_with("SET ") => Answer::reply("OK\n"),
            _ => Answer::reply("UNKNOWN COMMAND\n"),
        })
    }

    fn open(server: &FakeServer, local: &tempfile::TempDir) -> Supplicant {
        let options = ClientOptions {
            parent_dir: Some(local.path().to_path_buf()),
            timeout: Duration::from_secs(2),
        };
        Supplicant::open(server.dir.path(), "wlan0", &options).unwrap()
    }

    #[test]
    fn macveil_address_uses_kernel_randomization() {
        let server = server("0", true);
        let local = tempfile::tempdir().unwrap();
        let result = set_scan_privacy(&mut open(&server, &local), true, None).unwrap();

        assert_eq!(result.method, ScanMethod::Kernel);
        assert!(result.kernel_random_scan);
        assert_eq!(result.preassoc_mac_addr, "0");
        assert!(
            server
                .commands()
                .contains(&"SET preassoc_mac_addr 0".to_string())
        );
        assert!(
            server
                .commands()
                .contains(&"SET gas_rand_mac_addr 1".to_string())
        );
    }

    #[test]
    fn supplicant_randomizing_gets_preassoc() {
        let server = server("2", true);
        let local = tempfile::tempdir().unwrap();
        let result = set_scan_privacy(&mut open(&server, &local), true, Some(30)).unwrap();

        assert_eq!(result.method, ScanMethod::Supplicant);
        assert_eq!(result.preassoc_mac_addr, "2");
        let commands = server.commands();
        assert!(
            commands.contains(&"SET preassoc_mac_addr 2".to_string()),
            "{commands:?}"
        );
        assert!(
            commands.contains(&"SET rand_addr_lifetime 30".to_string()),
            "{commands:?}"
        );
    }

    #[test]
    fn unsupported_driver_falls_back_to_interface_address() {
        // preassoc_mac_addr would undo macveil's address, so it stays 0 even without kernel
        // support.
        let server = server("0", false);
        let local = tempfile::tempdir().unwrap();
        let result = set_scan_privacy(&mut open(&server, &local), true, None).unwrap();

        assert_eq!(result.method, ScanMethod::InterfaceAddress);
        assert!(!result.kernel_random_scan);
        assert_eq!(result.preassoc_mac_addr, "0");
    }

    #[test]
    fn off_clears_everything() {
        let server = server("1", true);
        let local = tempfile::tempdir().unwrap();
        let result = set_scan_privacy(&mut open(&server, &local), false, None).unwrap();

        assert_eq!(result.method, ScanMethod::InterfaceAddress);
        assert!(!result.gas_random);
        let commands = server.commands();
        for expected in [
            "MAC_RAND_SCAN all enable=0",
            "SET preassoc_mac_addr 0",
            "SET gas_rand_mac_addr 0",
        ] {
            assert!(commands.contains(&expected.to_string()), "{commands:?}");
        }
    }
}
