//! The address a Wi-Fi link gets for one connection, from the policy
//! (`wifi.cloned-mac-address`), the network's SSID and the secret key.
//!
//! - `random`: 46 fresh random bits for every connection, honouring the mask.
//! - `stable`: NetworkManager's stable address for `connection.stable-id`. When the template
//!   is unset or uses `${CONNECTION}` and no connection UUID is given, `${CONNECTION}` is
//!   macveil's per-link identity ([`crate::generate::stable::link_identity`]), so the address
//!   is the same on every network the card joins. With `${BOOT}` it changes at each boot.
//! - `stable-ssid`: the stable address for the template `${NETWORK_SSID}`, which hashes the
//!   network's SSID, so each network gets its own address and the same one at every boot.
//!   `connection.stable-id` does not apply.
//! - `permanent`: the permanent address; `preserve`: no change; an explicit address as given.
//!
//! Unlike the daemon's decision for a link that just appeared, this runs when the network is
//! known, so `${NETWORK_SSID}` expands to the real SSID.
//!
//! This module derives addresses. It reads the boot id when a template needs it, never the
//! secret key, and touches no link.

use std::path::Path;

use crate::addr::MacAddr;
use crate::config::ClonedMac;
use crate::generate::mask::Mask;
use crate::generate::stable::{self, LinkKey, StableError};
use crate::generate::stable_id::{self, BOOT_ID_PATH, Placeholder};
use crate::generate::{self, GenError};
use crate::rng::RandomSource;
use crate::secret_key::HostId;

/// The template that `stable-ssid` stands for.
pub const STABLE_SSID_TEMPLATE: &str = "${NETWORK_SSID}";

/// The inputs of one Wi-Fi connection's address.
#[derive(Debug, Clone, Copy)]
pub struct AddressInputs<'a> {
    /// The interface name, hashed into stable addresses and used for `${DEVICE}`.
    pub ifname: &'a str,
    /// The address to hide: the permanent address, or the reference address of a link without
    /// one. It keys macveil's per-link identity and is `${MAC}`.
    pub hidden: Option<MacAddr>,
    /// The link's current address, avoided by `random`.
    pub current: Option<MacAddr>,
    /// The network's SSID, for `${NETWORK_SSID}`.
    pub ssid: &'a [u8],
    /// `connection.stable-id`, for `stable`.
    pub stable_id: Option<&'a str>,
    /// A connection UUID for `${CONNECTION}`; `None` uses macveil's per-link identity.
    pub connection: Option<&'a str>,
    /// The boot id for `${BOOT}`; `None` reads `/proc/sys/kernel/random/boot_id` when needed.
    pub boot_id: Option<&'a str>,
    /// `wifi.generate-mac-address-mask`.
    pub mask: Option<&'a Mask>,
}

/// A failure to derive the address of a connection.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// A stable address was requested without a secret key.
    #[error("the {policy} policy needs the secret key, and none was given")]
    MissingKey {
        /// The policy's name.
        policy: String,
    },

    /// `permanent` was requested for a link whose permanent address is unknown.
    #[error("the permanent address of {ifname} is unknown, so the permanent policy cannot apply")]
    UnknownPermanent {
        /// The interface.
        ifname: String,
    },

    /// A stable input is invalid or the boot id is unreadable.
    #[error(transparent)]
    Stable(#[from] StableError),

    /// The random generator failed.
    #[error(transparent)]
    Generate(#[from] GenError),
}

/// Derives the address for one connection. `Ok(None)` means `preserve`: keep the current
/// address. `host_id` is needed only by `stable` and `stable-ssid`.
pub fn association_address(
    policy: ClonedMac,
    inputs: &AddressInputs<'_>,
    host_id: Option<&HostId>,
    rng: &mut dyn RandomSource,
) -> Result<Option<MacAddr>, AddressError> {
    match policy {
        ClonedMac::Preserve => Ok(None),
        ClonedMac::Address(address) => Ok(Some(address)),
        ClonedMac::Permanent => match inputs.hidden {
            Some(permanent) => Ok(Some(permanent)),
            None => Err(AddressError::UnknownPermanent {
                ifname: inputs.ifname.to_string(),
            }),
        },
        ClonedMac::Random => {
            let avoid: Vec<MacAddr> = inputs.current.into_iter().chain(inputs.hidden).collect();
            let initial = inputs.hidden.or(inputs.current);
            Ok(Some(generate::random(rng, inputs.mask, initial, &avoid)?))
        }
        ClonedMac::Stable | ClonedMac::StableSsid => {
            let Some(host_id) = host_id else {
                return Err(AddressError::MissingKey {
                    policy: policy.to_string(),
                });
            };
            let template = match policy {
                ClonedMac::StableSsid => Some(STABLE_SSID_TEMPLATE),
                _ => inputs.stable_id,
            };
            Ok(Some(stable_for(template, inputs, host_id, rng)?))
        }
    }
}

/// Derives the stable address for `template`, as NetworkManager does at activation.
fn stable_for(
    template: Option<&str>,
    inputs: &AddressInputs<'_>,
    host_id: &HostId,
    rng: &mut dyn RandomSource,
) -> Result<MacAddr, StableError> {
    stable::validate_ifname(inputs.ifname)?;
    stable::validate_ssid(inputs.ssid)?;
    if let Some(template) = template {
        stable::validate_text("stable-id template", template, true)?;
    }

    let connection = match inputs.connection {
        Some(uuid) => uuid.to_string(),
        None => {
            let key = match inputs.hidden {
                Some(address) => LinkKey::Permanent(address),
                None => LinkKey::Name(inputs.ifname),
            };
            stable::link_identity(host_id, key)
        }
    };

    let stable_id = stable_id::resolve(
        template,
        &connection,
        |placeholder| {
            let value = match placeholder {
                Placeholder::Connection => Some(connection.clone()),
                Placeholder::Boot => Some(match inputs.boot_id {
                    Some(boot_id) => boot_id.to_string(),
                    None => stable_id::read_boot_id(Path::new(BOOT_ID_PATH))?,
                }),
                Placeholder::Device => Some(inputs.ifname.to_string()),
                Placeholder::Mac => inputs.hidden.map(stable_id::mac_value),
                Placeholder::NetworkSsid => Some(stable_id::network_ssid_value(
                    Some(inputs.ssid),
                    &connection,
                )),
            };
            Ok::<_, StableError>(value)
        },
        rng,
    )?;

    let initial = inputs.hidden.or(inputs.current);
    stable::address(
        &stable_id,
        host_id,
        inputs.ifname,
        inputs.mask,
        initial,
        rng,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::OsRandom;

    const PERMANENT: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0]);
    const BOOT_A: &str = "0b0d4a38-6a0a-4a36-9f2c-7f3d8a4e5b6c";
    const BOOT_B: &str = "5e1c2a9b-3d4f-4e6a-8b7c-9d0e1f2a3b4c";

    fn host_id() -> HostId {
        HostId::from_bytes(b"macveil-test-host-id-0123456789".to_vec())
    }

    fn inputs<'a>(ssid: &'a [u8], stable_id: Option<&'a str>, boot: &'a str) -> AddressInputs<'a> {
        AddressInputs {
            ifname: "wlan0",
            hidden: Some(PERMANENT),
            current: Some(PERMANENT),
            ssid,
            stable_id,
            connection: None,
            boot_id: Some(boot),
            mask: None,
        }
    }

    fn derive(policy: ClonedMac, inputs: &AddressInputs<'_>) -> MacAddr {
        association_address(policy, inputs, Some(&host_id()), &mut OsRandom)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn stable_same_for_every_network_and_boot() {
        let home = derive(ClonedMac::Stable, &inputs(b"home", None, BOOT_A));
        let cafe = derive(ClonedMac::Stable, &inputs(b"cafe", None, BOOT_B));
        assert_eq!(home, cafe);
        assert_ne!(home, PERMANENT);
        assert!(home.is_local());
        assert!(!home.is_group());
    }

    #[test]
    fn stable_with_boot_changes_per_boot() {
        let template = Some("${CONNECTION}/${BOOT}");
        let first = derive(ClonedMac::Stable, &inputs(b"home", template, BOOT_A));
        let again = derive(ClonedMac::Stable, &inputs(b"cafe", template, BOOT_A));
        let next_boot = derive(ClonedMac::Stable, &inputs(b"home", template, BOOT_B));
        assert_eq!(first, again);
        assert_ne!(first, next_boot);
    }

    #[test]
    fn stable_ssid_per_network_not_per_boot() {
        // connection.stable-id does not apply to stable-ssid, so ${BOOT} in it changes nothing.
        let template = Some("${CONNECTION}/${BOOT}");
        let home = derive(ClonedMac::StableSsid, &inputs(b"home", template, BOOT_A));
        let home_next_boot = derive(ClonedMac::StableSsid, &inputs(b"home", template, BOOT_B));
        let cafe = derive(ClonedMac::StableSsid, &inputs(b"cafe", template, BOOT_A));
        assert_eq!(home, home_next_boot);
        assert_ne!(home, cafe);
    }

    #[test]
    fn stable_ssid_differs_from_stable() {
        let stable = derive(ClonedMac::Stable, &inputs(b"home", None, BOOT_A));
        let per_network = derive(ClonedMac::StableSsid, &inputs(b"home", None, BOOT_A));
        assert_ne!(stable, per_network);
    }

    #[test]
    fn stable_depends_on_key() {
        let other = HostId::from_bytes(b"another-host-id-abcdefghijklmnop".to_vec());
        let inputs = inputs(b"home", None, BOOT_A);
        let mine = derive(ClonedMac::StableSsid, &inputs);
        let theirs =
            association_address(ClonedMac::StableSsid, &inputs, Some(&other), &mut OsRandom)
                .unwrap()
                .unwrap();
        assert_ne!(mine, theirs);
    }

    #[test]
    fn stable_without_key_is_error() {
        let err = association_address(
            ClonedMac::Stable,
            &inputs(b"home", None, BOOT_A),
            None,
            &mut OsRandom,
        )
        .unwrap_err();
        assert!(matches!(err, AddressError::MissingKey { .. }), "{err}");
    }

    #[test]
    fn stable_rejects_invalid_ssid() {
        let long = [b'x'; 33];
        let err = association_address(
            ClonedMac::StableSsid,
            &inputs(&long, None, BOOT_A),
            Some(&host_id()),
            &mut OsRandom,
        )
        .unwrap_err();
        assert!(err.to_string().contains("SSID"), "{err}");
    }

    #[test]
    fn random_new_each_time() {
        let inputs = inputs(b"home", None, BOOT_A);
        let first = derive(ClonedMac::Random, &inputs);
        let second = derive(ClonedMac::Random, &inputs);
        assert_ne!(first, second);
        assert_ne!(first, PERMANENT);
        assert!(first.is_local());
        assert!(!first.is_group());
    }

    #[test]
    fn preserve_permanent_and_fixed() {
        let inputs = inputs(b"home", None, BOOT_A);
        let fixed: MacAddr = "02:12:34:56:78:9a".parse().unwrap();
        let mut rng = OsRandom;
        assert_eq!(
            association_address(ClonedMac::Preserve, &inputs, None, &mut rng).unwrap(),
            None
        );
        assert_eq!(
            association_address(ClonedMac::Permanent, &inputs, None, &mut rng).unwrap(),
            Some(PERMANENT)
        );
        assert_eq!(
            association_address(ClonedMac::Address(fixed), &inputs, None, &mut rng).unwrap(),
            Some(fixed)
        );
        let unknown = AddressInputs {
            hidden: None,
            ..inputs
        };
        assert!(association_address(ClonedMac::Permanent, &unknown, None, &mut rng).is_err());
    }
}
