//! NetworkManager-compatible stable addresses (`cloned-mac-address=stable`) and macveil's own
//! per-link identity.
//!
//! # The address
//!
//! As NetworkManager's `_hw_addr_gen_stable_eth()` (`src/core/nm-core-utils.c`) does, the address
//! is the first six bytes of SHA-256 over
//!
//! 1. the stable id type as one byte (see [`StableIdType`]),
//! 2. the host id length as a big-endian `u32`,
//! 3. the host id (see [`crate::secret_key`]),
//! 4. the interface name and a NUL byte,
//! 5. the stable id and a NUL byte (see [`super::stable_id`]),
//!
//! finished by [`Mask::complete`]: set the locally administered bit, apply
//! `generate-mac-address-mask`, clear the group bit. NetworkManager takes the masked bits, when
//! the mask lists no OUI, from the address the link had when NetworkManager began to manage it.
//!
//! A stable address never avoids the link's current address: the same inputs always give the
//! same address, so a link that already has its stable address keeps it.
//!
//! # macveil's per-link identity
//!
//! NetworkManager substitutes a connection profile's UUID for `${CONNECTION}`, and a template left
//! unset hashes that UUID. When macveil decides an address itself and no connection UUID is
//! given, it uses this identity instead:
//!
//! ```text
//! digest = SHA-256( "macveil link identity v1" 0x00
//!                   || host-id length as big-endian u32 || host id
//!                   || "permanent" 0x00 || the 6 bytes of the permanent address )
//! ```
//!
//! or `"name" 0x00` and the interface name in place of the last two fields when the permanent
//! address is unknown. The first 16 bytes of the digest, with the UUID version set to 8 and the
//! RFC 9562 variant bits set, are formatted as a lower-case UUID. The identity is therefore:
//!
//! - stable across reboots, because it depends only on the secret key (and, for v2 keys, the
//!   machine id) and the card's permanent address;
//! - different for each card, because each card has its own permanent address;
//! - not derivable without the host key: someone with the permanent address cannot compute the
//!   identity, so the address reveals nothing about the card.
//!
//! A card without a permanent address gets an identity per interface name, which changes when
//! the interface is renamed.
//!
//! This module reads no files and touches no link.

use sha2::{Digest, Sha256};

use crate::addr::MacAddr;
use crate::generate::mask::Mask;
use crate::rng::{RandomError, RandomSource};
use crate::secret_key::{HostId, KeyError, MachineIdError};

pub use super::stable_id::{BootIdError, StableId, StableIdType};

/// The domain-separation label of macveil's per-link identity. Changing it changes every
/// identity, and with it every address derived from one.
const LINK_IDENTITY_LABEL: &[u8] = b"macveil link identity v1";

/// Maximum interface name length in bytes that the kernel accepts (IFNAMSIZ - 1).
const MAX_IFNAME_LEN: usize = 15;

/// Maximum SSID length in bytes that IEEE 802.11 allows.
const MAX_SSID_LEN: usize = 32;

/// Errors from deriving a stable address.
#[derive(Debug, thiserror::Error)]
pub enum StableError {
    /// The secret key cannot be used.
    #[error(transparent)]
    Key(#[from] KeyError),

    /// The machine id given cannot be used.
    #[error(transparent)]
    MachineId(#[from] MachineIdError),

    /// The boot id for `${BOOT}` cannot be read.
    #[error(transparent)]
    BootId(#[from] BootIdError),

    /// No interface name is known, and the name is part of the hash.
    #[error(
        "a stable address needs the interface name, because NetworkManager hashes it into the \
         address; give it with --ifname NAME"
    )]
    MissingIfname,

    /// The interface name is not one the kernel accepts.
    #[error("invalid interface name '{name}': {reason}")]
    InvalidIfname {
        /// The rejected name.
        name: String,
        /// The rule the name breaks.
        reason: &'static str,
    },

    /// An input of the stable id is not usable.
    #[error("invalid {input} '{value}': {reason}")]
    InvalidInput {
        /// The input's name, for example "SSID".
        input: &'static str,
        /// The rejected value, escaped for display.
        value: String,
        /// The rule the value breaks.
        reason: &'static str,
    },

    /// The randomness source failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// Computes the six hash bytes of a stable address, before the locally administered bit, the
/// mask and the group bit are applied.
pub fn hash_octets(stable_id: &StableId, host_id: &[u8], ifname: &str) -> [u8; 6] {
    // Host ids are at most 10 KiB (a v1 key) or 32 bytes (a v2 host id), far below u32::MAX.
    let host_id_len = u32::try_from(host_id.len()).expect("host id longer than 4 GiB");

    let mut hasher = Sha256::new();
    hasher.update([stable_id.kind.as_byte()]);
    hasher.update(host_id_len.to_be_bytes());
    hasher.update(host_id);
    hasher.update(ifname.as_bytes());
    hasher.update([0]);
    hasher.update(stable_id.id.as_bytes());
    hasher.update([0]);
    let digest = hasher.finalize();

    let mut octets = [0u8; 6];
    octets.copy_from_slice(&digest[..6]);
    octets
}

/// Derives the stable address of `ifname` for `stable_id`.
///
/// `initial` is the link's address before macveil changes it. A mask without OUIs takes its
/// masked bits from it, and with no `initial` such a mask is skipped, as in NetworkManager. `rng`
/// picks the OUI when the mask lists several.
pub fn address(
    stable_id: &StableId,
    host_id: &HostId,
    ifname: &str,
    mask: Option<&Mask>,
    initial: Option<MacAddr>,
    rng: &mut dyn RandomSource,
) -> Result<MacAddr, StableError> {
    let octets = hash_octets(stable_id, host_id.as_bytes(), ifname);
    Ok(Mask::complete(mask, octets, initial, rng)?)
}

/// The value macveil's per-link identity is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKey<'a> {
    /// The card's permanent address.
    Permanent(MacAddr),
    /// The interface name, when the permanent address is unknown.
    Name(&'a str),
}

/// Computes macveil's per-link identity, a UUID that replaces the connection UUID when
/// macveil, not NetworkManager, decides the address. The module documentation defines it.
pub fn link_identity(host_id: &HostId, link: LinkKey<'_>) -> String {
    let host_id = host_id.as_bytes();
    let host_id_len = u32::try_from(host_id.len()).expect("host id longer than 4 GiB");

    let mut hasher = Sha256::new();
    hasher.update(LINK_IDENTITY_LABEL);
    hasher.update([0]);
    hasher.update(host_id_len.to_be_bytes());
    hasher.update(host_id);
    match link {
        LinkKey::Permanent(addr) => {
            hasher.update(b"permanent\0");
            hasher.update(addr.octets());
        }
        LinkKey::Name(name) => {
            hasher.update(b"name\0");
            hasher.update(name.as_bytes());
        }
    }
    let digest = hasher.finalize();

    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&digest[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x80; // version 8: custom (RFC 9562, section 5.8)
    uuid[8] = (uuid[8] & 0x3f) | 0x80; // variant 10
    super::stable_id::format_uuid(&uuid)
}

/// Checks `name` against the kernel's rules for interface names (`dev_valid_name()`): 1 to 15
/// bytes, not `.` or `..`, and no `/`, `:`, whitespace or NUL.
pub fn validate_ifname(name: &str) -> Result<(), StableError> {
    let invalid = |reason| StableError::InvalidIfname {
        name: name.escape_debug().to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("the name is empty"));
    }
    if name.len() > MAX_IFNAME_LEN {
        return Err(invalid("the kernel allows at most 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(invalid("'.' and '..' are not interface names"));
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
    {
        return Err(invalid(
            "the kernel rejects '/', ':', whitespace and NUL in names",
        ));
    }
    Ok(())
}

/// Checks that an SSID has the 1 to 32 bytes IEEE 802.11 allows.
pub fn validate_ssid(ssid: &[u8]) -> Result<(), StableError> {
    if ssid.is_empty() || ssid.len() > MAX_SSID_LEN {
        return Err(StableError::InvalidInput {
            input: "SSID",
            value: super::stable_id::escape_ssid(ssid),
            reason: "an SSID has 1 to 32 bytes",
        });
    }
    Ok(())
}

/// Checks a text input of the stable id (template, connection UUID or boot id): NetworkManager
/// handles these as C strings, so they cannot contain NUL, and an empty one would be ambiguous.
pub fn validate_text(
    input: &'static str,
    value: &str,
    allow_empty: bool,
) -> Result<(), StableError> {
    if value.contains('\0') {
        return Err(StableError::InvalidInput {
            input,
            value: value.escape_debug().to_string(),
            reason: "it contains a NUL byte",
        });
    }
    if value.is_empty() && !allow_empty {
        return Err(StableError::InvalidInput {
            input,
            value: String::new(),
            reason: "it is empty",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::FixedRandom;
    use proptest::prelude::*;

    fn stable(kind: StableIdType, id: &str) -> StableId {
        StableId {
            kind,
            id: id.to_string(),
        }
    }

    fn addr(text: &str) -> MacAddr {
        text.parse().unwrap()
    }

    #[test]
    fn hash_octets_match_networkmanager_vector() {
        // NetworkManager's test_hw_addr_gen_stable_eth(): key "key1", stable id "stable-1".
        let octets = hash_octets(&stable(StableIdType::Uuid, "stable-1"), b"key1", "eth0");
        let mut rng = FixedRandom::new(vec![0]);
        let result = Mask::complete(None, octets, None, &mut rng).unwrap();
        assert_eq!(result, addr("06:0d:cd:0c:9e:2c"));
    }

    #[test]
    fn hash_depends_on_every_input() {
        let base = hash_octets(&stable(StableIdType::Generated, "id"), b"host", "eth0");
        let changed = [
            hash_octets(&stable(StableIdType::Random, "id"), b"host", "eth0"),
            hash_octets(&stable(StableIdType::Generated, "id2"), b"host", "eth0"),
            hash_octets(&stable(StableIdType::Generated, "id"), b"host2", "eth0"),
            hash_octets(&stable(StableIdType::Generated, "id"), b"host", "eth1"),
        ];
        for other in changed {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn link_identity_is_a_version_8_uuid() {
        let host = HostId::from_bytes(b"0123456789abcdef".to_vec());
        let identity = link_identity(&host, LinkKey::Permanent(addr("3c:22:fb:01:02:03")));
        let canonical = super::super::stable_id::canonical_uuid(&identity);
        assert_eq!(canonical.as_deref(), Some(identity.as_str()));
        assert_eq!(&identity[14..15], "8", "{identity}");
        assert!("89ab".contains(&identity[19..20]), "{identity}");
    }

    #[test]
    fn link_identity_known_value() {
        // Computed independently by tests/nm_reference.py (cases raw-link-identity-*).
        let host = HostId::from_bytes(b"0123456789abcdef".to_vec());
        assert_eq!(
            link_identity(&host, LinkKey::Permanent(addr("3c:22:fb:01:02:03"))),
            "f55ef3e2-fbae-87ce-8a57-0f8bb01c2f72"
        );
        assert_eq!(
            link_identity(&host, LinkKey::Name("wlan0")),
            "fd47d873-2cd9-8b1f-ae9c-69a40fdb0db8"
        );
    }

    #[test]
    fn link_identity_separates_cards_hosts_and_kinds() {
        let host = HostId::from_bytes(b"0123456789abcdef".to_vec());
        let other_host = HostId::from_bytes(b"0123456789abcdeF".to_vec());
        let card = LinkKey::Permanent(addr("3c:22:fb:01:02:03"));
        let other_card = LinkKey::Permanent(addr("3c:22:fb:01:02:04"));

        let identity = link_identity(&host, card);
        assert_eq!(identity, link_identity(&host, card), "not stable");
        assert_ne!(identity, link_identity(&host, other_card));
        assert_ne!(identity, link_identity(&other_host, card));
        assert_ne!(
            link_identity(&host, LinkKey::Name("eth0")),
            link_identity(&host, LinkKey::Name("eth1"))
        );
    }

    #[test]
    fn validate_ifname_follows_kernel_rules() {
        for good in ["eth0", "wlp2s0", "_DEVICE", "a", "enx001122334455"] {
            assert!(validate_ifname(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "eth/0",
            "eth:0",
            "eth 0",
            "eth\t0",
            "a\0b",
            "abcdefghijklmnop",
        ] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn validate_ssid_length() {
        assert!(validate_ssid(b"x").is_ok());
        assert!(validate_ssid(&[b'x'; 32]).is_ok());
        assert!(validate_ssid(b"").is_err());
        assert!(validate_ssid(&[b'x'; 33]).is_err());
    }

    #[test]
    fn validate_text_rejects_nul_and_empty() {
        assert!(validate_text("template", "", true).is_ok());
        assert!(validate_text("connection UUID", "", false).is_err());
        let err = validate_text("template", "a\0b", true).unwrap_err();
        assert!(err.to_string().contains("a\\0b"), "{err}");
    }

    fn any_type() -> impl Strategy<Value = StableIdType> {
        prop::sample::select(vec![
            StableIdType::Uuid,
            StableIdType::StableId,
            StableIdType::Generated,
            StableIdType::Random,
        ])
    }

    proptest! {
        #[test]
        fn stable_is_unicast_and_local(kind in any_type(),
                                       id in ".{0,40}",
                                       host in proptest::collection::vec(any::<u8>(), 16..64),
                                       ifname in "[a-z][a-z0-9]{0,14}") {
            let host = HostId::from_bytes(host);
            let mut rng = FixedRandom::new(vec![0]);
            let result = address(&stable(kind, &id), &host, &ifname, None, None, &mut rng).unwrap();
            prop_assert!(!result.is_group());
            prop_assert!(result.is_local());
        }

        #[test]
        fn stable_is_deterministic(id in ".{0,40}", host in proptest::collection::vec(any::<u8>(), 16..64)) {
            let host = HostId::from_bytes(host);
            let mut rng = FixedRandom::new(vec![0]);
            let first = address(&stable(StableIdType::Generated, &id), &host, "eth0", None, None, &mut rng).unwrap();
            let second = address(&stable(StableIdType::Generated, &id), &host, "eth0", None, None, &mut rng).unwrap();
            prop_assert_eq!(first, second);
        }

        #[test]
        fn masked_stable_keeps_real_bits(mask in any::<[u8; 6]>(),
                                         initial in any::<[u8; 6]>(),
                                         id in ".{0,40}",
                                         host in proptest::collection::vec(any::<u8>(), 16..64)) {
            let mask = Mask { mask: MacAddr(mask), ouis: Vec::new() };
            let host = HostId::from_bytes(host);
            let mut rng = FixedRandom::new(vec![0]);
            let result = address(&stable(StableIdType::Generated, &id), &host, "eth0",
                                 Some(&mask), Some(MacAddr(initial)), &mut rng).unwrap();

            prop_assert!(!result.is_group());
            // Every masked bit comes from the initial address, except the group bit, which is
            // always cleared.
            let octets = mask.mask.0.iter().zip(result.0).zip(initial).enumerate();
            for (i, ((mask_octet, got), want)) in octets {
                let masked = mask_octet & if i == 0 { !1 } else { 0xff };
                prop_assert_eq!(got & masked, want & masked, "octet {}", i);
            }
            if !mask.covers_local_bit() {
                prop_assert!(result.is_local());
            } else {
                prop_assert_eq!(result.is_local(), MacAddr(initial).is_local());
            }
        }
    }
}
