//! The address NetworkManager gives a profile at its next activation on a device.
//!
//! For `stable` and `stable-ssid` this is the address of `_hw_addr_gen_stable_eth()` in
//! NetworkManager. Its inputs are the profile's stable id, the host id, and the interface name:
//! - the stable id is the profile's own `connection.stable-id`, else the matching
//!   `[connection*]` default, else its UUID, and `${NETWORK_SSID}` for `stable-ssid`;
//! - the host id comes from NetworkManager's secret key and the machine id.
//!
//! They are hashed as [`crate::generate::stable`] does, and the effective
//! `generate-mac-address-mask` finishes the address. The other modes say what NetworkManager
//! does instead: `random` cannot be predicted, `permanent` gives the hardware address,
//! `preserve` keeps the address the device has, and a fixed address is that address.
//!
//! NOTE: a mask without OUIs takes its masked bits from the address the device had when
//! NetworkManager began to manage it. Callers pass the current address; that gives the same
//! result while the current address is the one NetworkManager found or one it generated with
//! the same mask, and not after another program changed it.
//!
//! This module reads the secret key, the machine id and the boot id, and changes nothing.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::profile::Profile;
use super::resolve::EffectiveMac;
use crate::addr::MacAddr;
use crate::config::{ClonedMac, LinkFacts};
use crate::generate::mask::Mask;
use crate::generate::stable::{self, StableError};
use crate::generate::stable_id::{self, BootIdError, Placeholder, StableIdType};
use crate::rng::{OsRandom, RandomError};
use crate::secret_key::{DBUS_MACHINE_ID_PATH, KeyError, MACHINE_ID_PATH, MachineId, SecretKey};

/// The host inputs of a stable address.
#[derive(Debug, Clone)]
pub struct HostInputs {
    /// NetworkManager's secret key file.
    pub secret_key: PathBuf,
    /// The machine id NetworkManager hashes a v2 key with; none leaves it out, as NetworkManager
    /// does when it finds no valid id.
    pub machine_id: Option<MachineId>,
    /// The boot id for `${BOOT}`, or the file to read it from.
    pub boot_id: BootId,
}

/// The source of the boot id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootId {
    /// This value, a UUID.
    Given(String),
    /// Read from this file, normally `/proc/sys/kernel/random/boot_id`.
    File(PathBuf),
}

/// The address NetworkManager will apply, or what it does instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Prediction {
    /// This exact address.
    Address {
        /// The address.
        address: MacAddr,
        /// The way it is made: "stable" (with the stable id type) or "fixed".
        how: String,
    },
    /// One of these, because the mask lists several OUIs and NetworkManager picks one at random.
    OneOf {
        /// The address for each OUI, in the mask's order.
        addresses: Vec<MacAddr>,
    },
    /// A new random address at every activation, which cannot be predicted.
    Unpredictable {
        /// The reason.
        reason: String,
    },
    /// The device's permanent (hardware) address.
    Permanent {
        /// The address, when known.
        address: Option<MacAddr>,
    },
    /// Whatever address the device has when it activates.
    Preserve {
        /// The current address, when known.
        current: Option<MacAddr>,
    },
}

/// A failure to predict.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// NetworkManager's key does not exist yet.
    #[error(
        "NetworkManager's secret key {} does not exist yet. NetworkManager creates it the first \
         time it needs it, for example at the first activation of a profile with a stable \
         address; activate one, then predict again",
        path.display()
    )]
    NoKey {
        /// The key path.
        path: PathBuf,
    },

    /// The key cannot be used.
    #[error(transparent)]
    Key(KeyError),

    /// The boot id cannot be read.
    #[error(transparent)]
    BootId(#[from] BootIdError),

    /// An input of the stable id is not usable.
    #[error(transparent)]
    Stable(#[from] StableError),

    /// The randomness source failed.
    #[error(transparent)]
    Random(#[from] RandomError),

    /// The profile does not activate on any named interface.
    #[error(
        "profile '{profile}' is not bound to an interface (no connection.interface-name), and \
         the interface name is part of the address; give it with --ifname NAME"
    )]
    NoInterface {
        /// The profile name.
        profile: String,
    },
}

/// Reads the machine id below `root` as NetworkManager does: `etc/machine-id`, or
/// `var/lib/dbus/machine-id` when that file cannot be read. Returns `None` when the file read
/// contains no valid, non-zero id.
pub fn read_machine_id(root: &Path) -> Option<MachineId> {
    let primary = root.join(MACHINE_ID_PATH.trim_start_matches('/'));
    let fallback = root.join(DBUS_MACHINE_ID_PATH.trim_start_matches('/'));
    let text = std::fs::read_to_string(&primary)
        .or_else(|_| std::fs::read_to_string(&fallback))
        .ok()?;
    MachineId::parse(&text).filter(|id| !id.is_null())
}

/// Predicts the address for `profile` on `link` under the resolved `mac` settings.
pub fn predict(
    mac: &EffectiveMac,
    profile: &Profile,
    link: &LinkFacts,
    host: &HostInputs,
) -> Result<Prediction, PredictError> {
    let template = match mac.mode {
        ClonedMac::Permanent => {
            return Ok(Prediction::Permanent {
                address: link.permanent,
            });
        }
        ClonedMac::Preserve => {
            return Ok(Prediction::Preserve {
                current: link.current,
            });
        }
        ClonedMac::Random => {
            return Ok(Prediction::Unpredictable {
                reason: format!("{} is random: a new address at every activation", mac.key),
            });
        }
        ClonedMac::Address(address) => {
            return Ok(Prediction::Address {
                address,
                how: String::from("fixed"),
            });
        }
        ClonedMac::StableSsid => Some(String::from(Placeholder::NetworkSsid.pattern())),
        ClonedMac::Stable => mac.stable_id.clone(),
    };

    if link.name.is_empty() {
        return Err(PredictError::NoInterface {
            profile: profile.id.clone(),
        });
    }
    stable::validate_ifname(&link.name)?;
    if let Some(template) = &template {
        stable::validate_text("stable-id template", template, true)?;
    }
    let expansion = stable_id::expand(template.as_deref(), |_| Ok::<_, StableError>(None))?;
    if expansion.stable_id_type() == StableIdType::Random {
        return Ok(Prediction::Unpredictable {
            reason: String::from(
                "the stable id contains ${RANDOM}: a new address at every activation",
            ),
        });
    }

    let key = SecretKey::read(&host.secret_key).map_err(|err| match err {
        KeyError::NotFound { path } => PredictError::NoKey { path },
        other => PredictError::Key(other),
    })?;
    let host_id = key.host_id(host.machine_id.as_ref());

    let mut boot_id = None;
    let mut rng = OsRandom;
    let stable_id = stable_id::resolve(
        template.as_deref(),
        &profile.uuid,
        |placeholder| {
            let value = match placeholder {
                Placeholder::Connection => Some(profile.uuid.clone()),
                Placeholder::Boot => Some(read_boot_id(&host.boot_id, &mut boot_id)?),
                Placeholder::Device => Some(link.name.clone()),
                Placeholder::Mac => link.permanent.map(stable_id::mac_value),
                Placeholder::NetworkSsid => Some(stable_id::network_ssid_value(
                    profile.ssid.as_deref(),
                    &profile.uuid,
                )),
            };
            Ok::<_, PredictError>(value)
        },
        &mut rng,
    )?;
    let octets = stable::hash_octets(&stable_id, host_id.as_bytes(), &link.name);

    let how = format!("stable ({} stable id)", stable_id.kind);
    match &mac.mask {
        Some(mask) if mask.ouis.len() > 1 => {
            let mut addresses = Vec::with_capacity(mask.ouis.len());
            for oui in &mask.ouis {
                let single = Mask {
                    mask: mask.mask,
                    ouis: vec![*oui],
                };
                addresses.push(Mask::complete(
                    Some(&single),
                    octets,
                    link.current,
                    &mut rng,
                )?);
            }
            Ok(Prediction::OneOf { addresses })
        }
        mask => {
            let address = Mask::complete(mask.as_ref(), octets, link.current, &mut rng)?;
            Ok(Prediction::Address { address, how })
        }
    }
}

/// Reads the boot id once and keeps it in `cache`.
fn read_boot_id(source: &BootId, cache: &mut Option<String>) -> Result<String, PredictError> {
    if let Some(id) = cache {
        return Ok(id.clone());
    }
    let id = match source {
        BootId::Given(text) => {
            stable::validate_text("boot id", text, false)?;
            stable_id::canonical_uuid(text).unwrap_or_else(|| text.clone())
        }
        BootId::File(path) => stable_id::read_boot_id(path)?,
    };
    *cache = Some(id.clone());
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LinkKind, SourceText};
    use crate::generate::stable::hash_octets;
    use crate::generate::stable_id::StableId;
    use crate::nm::conf::NmConfig;
    use crate::nm::profile::parse_profile;
    use crate::nm::resolve::effective_mac;
    use crate::rng::FixedRandom;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    const UUID: &str = "7a7fc2ab-6b38-4c4c-8b6d-5f1a5e1f6e3a";
    const BOOT: &str = "0f7e1c2a-3b4d-4e5f-8a6b-7c8d9e0f1a2b";
    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn host(dir: &Path) -> HostInputs {
        let key = dir.join("secret_key");
        fs::write(&key, KEY).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        HostInputs {
            secret_key: key,
            machine_id: None,
            boot_id: BootId::Given(BOOT.into()),
        }
    }

    fn setup(global: &str, profile_extra: &str) -> (EffectiveMac, Profile, LinkFacts) {
        let config = NmConfig::from_sources(&[SourceText::new("a.conf", global)]).unwrap();
        let text = format!(
            "[connection]\nid=p\nuuid={UUID}\ntype=ethernet\ninterface-name=eth0\n{profile_extra}"
        );
        let profile = parse_profile(text.as_bytes(), Path::new("/p"), "/p").unwrap();
        let link = LinkFacts {
            name: "eth0".into(),
            kind: LinkKind::Ethernet,
            driver: None,
            driver_version: None,
            permanent: Some("3c:22:fb:01:02:03".parse().unwrap()),
            current: Some("3c:22:fb:01:02:03".parse().unwrap()),
            device: None,
        };
        let mac = effective_mac(&config, &profile, &link, None).unwrap();
        (mac, profile, link)
    }

    fn expected(kind: StableIdType, id: &str, mask: Option<&Mask>) -> MacAddr {
        let stable_id = StableId {
            kind,
            id: id.to_string(),
        };
        let octets = hash_octets(&stable_id, KEY, "eth0");
        let initial = Some("3c:22:fb:01:02:03".parse().unwrap());
        Mask::complete(mask, octets, initial, &mut FixedRandom::new(vec![0])).unwrap()
    }

    #[test]
    fn unset_stable_id_hashes_the_uuid() {
        let dir = tempfile::tempdir().unwrap();
        let (mac, profile, link) = setup("[connection]\nethernet.cloned-mac-address=stable\n", "");
        let prediction = predict(&mac, &profile, &link, &host(dir.path())).unwrap();
        assert_eq!(
            prediction,
            Prediction::Address {
                address: expected(StableIdType::Uuid, UUID, None),
                how: String::from("stable (uuid stable id)"),
            }
        );
    }

    #[test]
    fn profile_stable_id_overrides_default() {
        let dir = tempfile::tempdir().unwrap();
        let (mac, profile, link) = setup(
            "[connection]\nethernet.cloned-mac-address=stable\nconnection.stable-id=ignored\n",
            "stable-id=office\n",
        );
        let prediction = predict(&mac, &profile, &link, &host(dir.path())).unwrap();
        let Prediction::Address { address, .. } = prediction else {
            panic!("unexpected {prediction:?}");
        };
        assert_eq!(address, expected(StableIdType::StableId, "office", None));
    }

    #[test]
    fn boot_placeholder_uses_given_boot_id() {
        let dir = tempfile::tempdir().unwrap();
        let (mac, profile, link) = setup(
            "[connection]\nethernet.cloned-mac-address=stable\n\
             connection.stable-id=${CONNECTION}/${BOOT}\n",
            "",
        );
        let prediction = predict(&mac, &profile, &link, &host(dir.path())).unwrap();
        let expansion = format!("${{CONNECTION}}=36{{{UUID}}}/${{BOOT}}=36{{{BOOT}}}");
        let id = stable_id::generated_complete(&expansion);
        let Prediction::Address { address, .. } = prediction else {
            panic!("unexpected {prediction:?}");
        };
        assert_eq!(address, expected(StableIdType::Generated, &id, None));
    }

    #[test]
    fn mask_with_several_ouis_lists_each() {
        let dir = tempfile::tempdir().unwrap();
        let (mac, profile, link) = setup(
            "[connection]\nethernet.cloned-mac-address=stable\n",
            "[ethernet]\ngenerate-mac-address-mask=FF:FF:FF:00:00:00 68:F7:28:00:00:00 \
             00:11:22:00:00:00\n",
        );
        let prediction = predict(&mac, &profile, &link, &host(dir.path())).unwrap();
        let Prediction::OneOf { addresses } = prediction else {
            panic!("unexpected {prediction:?}");
        };
        assert_eq!(addresses.len(), 2);
        assert_eq!(addresses[0].oui(), [0x68, 0xf7, 0x28]);
        assert_eq!(addresses[1].oui(), [0x00, 0x11, 0x22]);
        assert_eq!(addresses[0].octets()[3..], addresses[1].octets()[3..]);
    }

    #[test]
    fn other_modes_say_what_happens() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("random", "unpredictable"),
            ("permanent", "permanent"),
            ("preserve", "preserve"),
            ("02:11:22:33:44:55", "address"),
        ];
        for (value, expected_kind) in cases {
            let (mac, profile, link) =
                setup("", &format!("[ethernet]\ncloned-mac-address={value}\n"));
            let prediction = predict(&mac, &profile, &link, &host(dir.path())).unwrap();
            let kind = serde_json::to_value(&prediction).unwrap()["kind"].clone();
            assert_eq!(kind, expected_kind, "{value}");
        }
        let (mac, profile, link) = setup(
            "[connection]\nethernet.cloned-mac-address=stable\nconnection.stable-id=${RANDOM}\n",
            "",
        );
        assert!(matches!(
            predict(&mac, &profile, &link, &host(dir.path())).unwrap(),
            Prediction::Unpredictable { .. }
        ));
    }

    #[test]
    fn missing_key_explains_when_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let (mac, profile, link) = setup("[connection]\nethernet.cloned-mac-address=stable\n", "");
        let mut inputs = host(dir.path());
        inputs.secret_key = dir.path().join("missing");
        let err = predict(&mac, &profile, &link, &inputs).unwrap_err();
        assert!(matches!(err, PredictError::NoKey { .. }), "{err}");
        assert!(err.to_string().contains("first time it needs it"), "{err}");
    }

    #[test]
    fn unbound_profile_needs_interface() {
        let dir = tempfile::tempdir().unwrap();
        let (mac, profile, mut link) =
            setup("[connection]\nethernet.cloned-mac-address=stable\n", "");
        link.name.clear();
        let err = predict(&mac, &profile, &link, &host(dir.path())).unwrap_err();
        assert!(err.to_string().contains("--ifname"), "{err}");
    }

    #[test]
    fn machine_id_falls_back_to_dbus_copy() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(read_machine_id(root.path()), None);
        let dbus = root.path().join("var/lib/dbus");
        fs::create_dir_all(&dbus).unwrap();
        fs::write(
            dbus.join("machine-id"),
            "00112233445566778899aabbccddeeff\n",
        )
        .unwrap();
        assert_eq!(
            read_machine_id(root.path()).map(|id| id.to_hex()),
            Some("00112233445566778899aabbccddeeff".into())
        );
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::write(
            root.path().join("etc/machine-id"),
            "ffeeddccbbaa99887766554433221100\n",
        )
        .unwrap();
        assert_eq!(
            read_machine_id(root.path()).map(|id| id.to_hex()),
            Some("ffeeddccbbaa99887766554433221100".into())
        );
    }
}
