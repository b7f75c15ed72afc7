//! From one link's policy to what [`super::decide`] needs: the intent, and for `random` the next
//! address, derived ahead so that a failure to derive it blocks the link instead of exposing it.
//!
//! - `stable` and `stable-ssid` hash the secret key's host id, the interface name and the stable
//!   id as NetworkManager does ([`crate::generate::stable`]). When the configuration leaves
//!   `${CONNECTION}` to macveil, it is macveil's per-link identity
//!   ([`crate::generate::stable::link_identity`]). That identity is derived from the host id and
//!   the permanent address (the reference address for a link without one). It is therefore
//!   stable across reboots, different for each card and not derivable without the key. A template with `${RANDOM}`
//!   gives a new address at each activation, like `random`.
//! - `random` draws 46 bits from the kernel's generator, honouring the mask.
//! - An explicit address is used as it is.
//!
//! The secret key is read when first needed and read again on later passes while it cannot be
//! read, so a key on a /var that is mounted after the daemon started is picked up by the next
//! event or reload. A link whose address needs the key meanwhile is [`Intent::Blocked`].
//!
//! This module reads the key and derives addresses; it never touches a link.

use std::path::{Path, PathBuf};

use super::decide::Intent;
use crate::addr::MacAddr;
use crate::config::{ClonedMac, LinkPolicy};
use crate::generate::stable::{self, LinkKey};
use crate::generate::stable_id::{self, Placeholder, StableIdType};
use crate::link::Link;
use crate::rng::{RandomError, RandomSource};
use crate::secret_key::{
    HostId, KeyError, KeyVersion, MachineId, SecretKey, is_networkmanager_key,
};

/// The template `stable-ssid` stands for: NetworkManager hashes the network's SSID.
const STABLE_SSID_TEMPLATE: &str = "${NETWORK_SSID}";

/// The secret key the stable addresses are hashed with, read lazily and never written.
pub struct Keys {
    path: PathBuf,
    /// The key is NetworkManager's, which only NetworkManager creates.
    networkmanager: bool,
    host_id: Option<HostId>,
    last_error: Option<String>,
}

impl Keys {
    /// Creates the source of the key at `path`. Nothing is read yet.
    pub fn new(path: impl Into<PathBuf>) -> Keys {
        let path = path.into();
        let networkmanager = is_networkmanager_key(&path);
        Keys {
            path,
            networkmanager,
            host_id: None,
            last_error: None,
        }
    }

    /// Creates the source of NetworkManager's key at `path`, for a copy of NetworkManager's
    /// key folder elsewhere (a test, a mounted image). Nothing is read yet.
    pub fn networkmanager(path: impl Into<PathBuf>) -> Keys {
        Keys {
            networkmanager: true,
            ..Keys::new(path)
        }
    }

    /// Returns the key file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the host id, reading the key first if it was not read yet. The error explains
    /// why the key cannot be used and what to do.
    pub fn host_id(&mut self) -> Result<&HostId, String> {
        if self.host_id.is_none() {
            match read_host_id(&self.path) {
                Ok(host_id) => {
                    if self.last_error.take().is_some() {
                        log::info!("the secret key {} is readable now", self.path.display());
                    }
                    self.host_id = Some(host_id);
                }
                Err(err) => {
                    let message = match &err {
                        KeyError::NotFound { path } if self.networkmanager => format!(
                            "NetworkManager's secret key {} does not exist, and stable \
                             addresses need it. NetworkManager creates it at its first start: \
                             start NetworkManager once ('systemctl start NetworkManager'), or \
                             run 'macveil install' without --nm-config to use macveil's own \
                             key; then 'systemctl reload macveil'",
                            path.display()
                        ),
                        KeyError::NotFound { .. } => format!(
                            "{err}; stable addresses need it, so run 'macveil install' to \
                             create it (or wait for the file system that holds it to be mounted), \
                             then 'systemctl reload macveil'"
                        ),
                        _ => err.to_string(),
                    };
                    self.last_error = Some(message.clone());
                    return Err(message);
                }
            }
        }
        Ok(self.host_id.as_ref().expect("the host id was just read"))
    }

    /// Forgets the key, so that the next use reads it again (a reload).
    pub fn forget(&mut self) {
        self.host_id = None;
    }

    /// Returns whether the key was needed and could not be read.
    pub fn is_missing(&self) -> bool {
        self.host_id.is_none() && self.last_error.is_some()
    }
}

/// Reads the key and derives the host id, with the machine id for a v2 key as NetworkManager
/// does.
fn read_host_id(path: &Path) -> Result<HostId, KeyError> {
    let key = SecretKey::read(path)?;
    let machine_id = match key.version() {
        KeyVersion::V2 => MachineId::read_default(),
        KeyVersion::V1 => None,
    };
    Ok(key.host_id(machine_id.as_ref()))
}

/// The policy's request for one link, ready for [`super::decide::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The intent.
    pub intent: Intent,
    /// The address a `random` link gets next, when the intent is [`Intent::Random`].
    pub next: Option<MacAddr>,
    /// Why the intent is [`Intent::Blocked`].
    pub blocked: Option<String>,
    /// The policy's name for logs and records: `stable`, `random`, an address, `unmanaged`...
    pub label: String,
}

impl Plan {
    fn leave(intent: Intent, label: impl Into<String>) -> Plan {
        Plan {
            intent,
            next: None,
            blocked: None,
            label: label.into(),
        }
    }

    fn blocked(label: impl Into<String>, reason: String) -> Plan {
        Plan {
            intent: Intent::Blocked,
            next: None,
            blocked: Some(reason),
            label: label.into(),
        }
    }
}

/// The inputs every link shares.
pub struct Shared<'a> {
    /// The secret key.
    pub keys: &'a mut Keys,
    /// The boot id for `${BOOT}`, or why it cannot be read.
    pub boot_id: &'a Result<String, String>,
    /// The randomness source.
    pub rng: &'a mut dyn RandomSource,
}

/// Plans one link. `hidden` is the address it must not show (permanent, else reference).
pub fn plan(policy: &LinkPolicy, link: &Link, hidden: Option<MacAddr>, shared: Shared<'_>) -> Plan {
    if !policy.managed {
        return Plan::leave(Intent::Unmanaged, "unmanaged");
    }
    let cloned = policy.cloned_mac_address.value;
    let label = cloned.to_string();
    let mask = policy.generate_mac_address_mask.value.as_ref();
    // The masked bits of a mask without OUIs come from the address the link had before any
    // change, so the same inputs keep giving the same address.
    let initial = hidden.or(link.address);

    // A Wi-Fi link whose connections the daemon drives gets the network's address only once
    // the network is chosen. Until then it carries a fresh random address, so that a first
    // attempt the supplicant makes before the daemon reaches its control socket carries an
    // address that no other network has seen. The per-link fallback that `${NETWORK_SSID}`
    // has without a network would be the same on every network.
    if policy.drives_wifi_connections() {
        let avoid: Vec<MacAddr> = link.address.into_iter().chain(hidden).collect();
        return match crate::generate::random(shared.rng, mask, initial, &avoid) {
            Ok(next) => Plan {
                intent: Intent::Random,
                next: Some(next),
                blocked: None,
                label,
            },
            Err(err) => Plan::blocked(label, format!("no random address: {err}")),
        };
    }

    match cloned {
        ClonedMac::Preserve => Plan::leave(Intent::Preserve, label),
        ClonedMac::Permanent => Plan::leave(Intent::Permanent, label),
        ClonedMac::Address(address) => Plan::leave(Intent::Fixed(address), label),
        ClonedMac::Random => {
            let avoid: Vec<MacAddr> = link.address.into_iter().chain(hidden).collect();
            match crate::generate::random(shared.rng, mask, initial, &avoid) {
                Ok(next) => Plan {
                    intent: Intent::Random,
                    next: Some(next),
                    blocked: None,
                    label,
                },
                Err(err) => Plan::blocked(label, format!("no random address: {err}")),
            }
        }
        ClonedMac::Stable | ClonedMac::StableSsid => {
            let template = match cloned {
                ClonedMac::StableSsid => Some(STABLE_SSID_TEMPLATE),
                _ => policy.stable_id.value.as_deref(),
            };
            let host_id = match shared.keys.host_id() {
                Ok(host_id) => host_id,
                Err(reason) => return Plan::blocked(label, reason),
            };
            match stable_address(
                template,
                host_id,
                link,
                hidden,
                shared.boot_id,
                mask,
                shared.rng,
            ) {
                Ok((address, StableIdType::Random)) => Plan {
                    intent: Intent::Random,
                    next: Some(address),
                    blocked: None,
                    label,
                },
                Ok((address, _)) => Plan::leave(Intent::Fixed(address), label),
                Err(reason) => Plan::blocked(label, reason),
            }
        }
    }
}

/// A failure while expanding a stable-id template.
enum DeriveError {
    /// A placeholder's value is unavailable, for the reason in the text.
    Message(String),
    /// `${RANDOM}` could not be drawn.
    Random(RandomError),
}

impl From<RandomError> for DeriveError {
    fn from(err: RandomError) -> DeriveError {
        DeriveError::Random(err)
    }
}

/// Derives a stable address and returns it with the type of its stable id.
fn stable_address(
    template: Option<&str>,
    host_id: &HostId,
    link: &Link,
    hidden: Option<MacAddr>,
    boot_id: &Result<String, String>,
    mask: Option<&crate::generate::mask::Mask>,
    rng: &mut dyn RandomSource,
) -> Result<(MacAddr, StableIdType), String> {
    let ifname = link.name.as_str();
    stable::validate_ifname(ifname).map_err(|err| err.to_string())?;
    let link_key = match hidden {
        Some(address) => LinkKey::Permanent(address),
        None => LinkKey::Name(ifname),
    };
    let connection = stable::link_identity(host_id, link_key);

    let stable_id = stable_id::resolve(
        template,
        &connection,
        |placeholder| {
            let value = match placeholder {
                Placeholder::Connection => Some(connection.clone()),
                Placeholder::Boot => Some(boot_id.clone().map_err(DeriveError::Message)?),
                Placeholder::Device => Some(ifname.to_string()),
                Placeholder::Mac => hidden.map(stable_id::mac_value),
                // NOTE: the daemon does not know the Wi-Fi network when it sets the address, so
                // ${NETWORK_SSID} falls back to the connection, as NetworkManager does on a
                // network without an SSID.
                Placeholder::NetworkSsid => Some(stable_id::network_ssid_value(None, &connection)),
            };
            Ok::<_, DeriveError>(value)
        },
        rng,
    )
    .map_err(|err| match err {
        DeriveError::Message(message) => message,
        DeriveError::Random(err) => err.to_string(),
    })?;

    let address = stable::address(
        &stable_id,
        host_id,
        ifname,
        mask,
        hidden.or(link.address),
        rng,
    )
    .map_err(|err| err.to_string())?;
    Ok((address, stable_id.kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, LinkFacts, LinkKind, SourceText};
    use crate::link::{AssignType, OperState};
    use crate::rng::OsRandom;

    const HARDWARE: MacAddr = MacAddr([0x3c, 0x22, 0xfb, 1, 2, 3]);

    fn link(name: &str) -> Link {
        Link {
            index: 3,
            name: name.into(),
            info_kind: Some("veth".into()),
            wireless: false,
            link_type: 1,
            driver: None,
            admin_up: false,
            lower_up: false,
            operstate: OperState::Down,
            address: Some(HARDWARE),
            permanent: None,
            permanent_source: None,
            assign_type: AssignType::Unknown,
            parent: None,
            ipv6_addr_gen_mode: None,
        }
    }

    fn policy(text: &str, link: &Link) -> LinkPolicy {
        let config = Config::from_sources(&[SourceText::new("test.conf", text)]).unwrap();
        config.policy_for(&LinkFacts {
            name: link.name.clone(),
            kind: LinkKind::Veth,
            driver: None,
            driver_version: None,
            permanent: Some(HARDWARE),
            current: link.address,
            device: None,
        })
    }

    fn key_file(dir: &Path) -> PathBuf {
        let path = dir.join("secret_key");
        SecretKey::create(&path, &mut OsRandom).unwrap();
        path
    }

    fn run(
        policy: &LinkPolicy,
        link: &Link,
        keys: &mut Keys,
        boot: &Result<String, String>,
    ) -> Plan {
        plan(
            policy,
            link,
            Some(HARDWARE),
            Shared {
                keys,
                boot_id: boot,
                rng: &mut OsRandom,
            },
        )
    }

    const STABLE_BOOT: &str = "[connection-veth]\nmatch-device=type:veth\n\
        ethernet.cloned-mac-address=stable\nconnection.stable-id=${CONNECTION}/${BOOT}\n";

    #[test]
    fn stable_changes_only_with_boot() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = Keys::new(key_file(dir.path()));
        let veth = link("veth0");
        let policy = policy(STABLE_BOOT, &veth);
        let boot_a = Ok(String::from("6f1f4b0e-9c55-4f0b-8d3e-2f1f9b0c5a11"));
        let boot_b = Ok(String::from("0d8e7b44-1f6a-4c8e-9a2b-7c3d5e6f8a90"));

        let first = run(&policy, &veth, &mut keys, &boot_a);
        let again = run(&policy, &veth, &mut keys, &boot_a);
        let next_boot = run(&policy, &veth, &mut keys, &boot_b);
        let Intent::Fixed(address) = first.intent else {
            panic!("stable gives a fixed address: {first:?}");
        };
        assert_eq!(again.intent, Intent::Fixed(address));
        assert_ne!(next_boot.intent, Intent::Fixed(address));
        assert!(address.is_local(), "{address}");
        assert!(!address.is_group(), "{address}");
        assert_eq!(first.label, "stable");
    }

    #[test]
    fn stable_differs_per_key() {
        let veth = link("veth0");
        let policy = policy(STABLE_BOOT, &veth);
        let boot = Ok(String::from("6f1f4b0e-9c55-4f0b-8d3e-2f1f9b0c5a11"));
        let first_dir = tempfile::tempdir().unwrap();
        let second_dir = tempfile::tempdir().unwrap();
        let mut first_keys = Keys::new(key_file(first_dir.path()));
        let mut second_keys = Keys::new(key_file(second_dir.path()));
        assert_ne!(
            run(&policy, &veth, &mut first_keys, &boot).intent,
            run(&policy, &veth, &mut second_keys, &boot).intent
        );
    }

    #[test]
    fn missing_nm_key_advises_starting_networkmanager() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = Keys::networkmanager(dir.path().join("secret_key"));
        let veth = link("veth0");
        let policy = policy(STABLE_BOOT, &veth);
        let boot = Ok(String::from("6f1f4b0e-9c55-4f0b-8d3e-2f1f9b0c5a11"));

        let blocked = run(&policy, &veth, &mut keys, &boot);
        assert_eq!(blocked.intent, Intent::Blocked);
        let reason = blocked.blocked.unwrap();
        assert!(reason.contains("start NetworkManager once"), "{reason}");
        assert!(!reason.contains("run 'macveil install' to"), "{reason}");
        assert!(!reason.contains("macveil gen"), "{reason}");
    }

    #[test]
    fn missing_key_blocks_until_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("var/secret_key");
        let mut keys = Keys::new(&path);
        let veth = link("veth0");
        let policy = policy(STABLE_BOOT, &veth);
        let boot = Ok(String::from("6f1f4b0e-9c55-4f0b-8d3e-2f1f9b0c5a11"));

        let blocked = run(&policy, &veth, &mut keys, &boot);
        assert_eq!(blocked.intent, Intent::Blocked);
        let reason = blocked.blocked.unwrap();
        assert!(reason.contains("macveil install"), "{reason}");
        assert!(keys.is_missing());

        SecretKey::create(&path, &mut OsRandom).unwrap();
        let ready = run(&policy, &veth, &mut keys, &boot);
        assert!(matches!(ready.intent, Intent::Fixed(_)), "{ready:?}");
        assert!(!keys.is_missing());
    }

    #[test]
    fn unreadable_boot_id_blocks_boot_templates_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = Keys::new(key_file(dir.path()));
        let veth = link("veth0");
        let no_boot = Err(String::from("cannot read the boot id"));

        let with_boot = policy(STABLE_BOOT, &veth);
        let blocked = run(&with_boot, &veth, &mut keys, &no_boot);
        assert_eq!(blocked.intent, Intent::Blocked);
        assert!(blocked.blocked.unwrap().contains("boot id"));

        let per_device = policy(
            "[connection-veth]\nmatch-device=type:veth\nethernet.cloned-mac-address=stable\n\
             connection.stable-id=${DEVICE}\n",
            &veth,
        );
        let fixed = run(&per_device, &veth, &mut keys, &no_boot);
        assert!(matches!(fixed.intent, Intent::Fixed(_)), "{fixed:?}");
    }

    #[test]
    fn random_template_rotates_like_random() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = Keys::new(key_file(dir.path()));
        let veth = link("veth0");
        let policy = policy(
            "[connection-veth]\nmatch-device=type:veth\nethernet.cloned-mac-address=stable\n\
             connection.stable-id=${RANDOM}\n",
            &veth,
        );
        let boot = Ok(String::from("6f1f4b0e-9c55-4f0b-8d3e-2f1f9b0c5a11"));
        let first = run(&policy, &veth, &mut keys, &boot);
        let second = run(&policy, &veth, &mut keys, &boot);
        assert_eq!(first.intent, Intent::Random);
        assert_ne!(first.next, second.next);
    }

    #[test]
    fn random_avoids_current_and_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = Keys::new(dir.path().join("absent"));
        let veth = link("veth0");
        let policy = policy(
            "[connection-veth]\nmatch-device=type:veth\nethernet.cloned-mac-address=random\n",
            &veth,
        );
        let boot = Ok(String::new());
        let planned = run(&policy, &veth, &mut keys, &boot);
        assert_eq!(planned.intent, Intent::Random);
        let next = planned.next.unwrap();
        assert_ne!(next, HARDWARE);
        assert!(next.is_local(), "{next}");
        assert!(!next.is_group(), "{next}");
        assert!(!keys.is_missing(), "random never reads the key");
    }

    /// Resolves the policy of a Wi-Fi link `wlan0` that a `[device]` section manages.
    fn wifi_policy(text: &str) -> LinkPolicy {
        let text = format!("[device]\nmacveil.manage=yes\n{text}");
        let config = Config::from_sources(&[SourceText::new("test.conf", &text)]).unwrap();
        config.policy_for(&LinkFacts {
            name: String::from("wlan0"),
            kind: LinkKind::Wifi,
            driver: None,
            driver_version: None,
            permanent: Some(HARDWARE),
            current: Some(HARDWARE),
            device: None,
        })
    }

    #[test]
    fn driven_wifi_link_gets_fresh_random_address() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = Keys::new(key_file(dir.path()));
        let boot = Ok(String::from("6f1f4b0e-9c55-4f0b-8d3e-2f1f9b0c5a11"));
        let mut wlan = link("wlan0");
        wlan.wireless = true;

        let driven = wifi_policy("[connection]\nwifi.cloned-mac-address=stable-ssid\n");
        assert!(driven.drives_wifi_connections());
        let first = run(&driven, &wlan, &mut keys, &boot);
        let second = run(&driven, &wlan, &mut keys, &boot);
        assert_eq!(first.intent, Intent::Random);
        assert_ne!(
            first.next, second.next,
            "each activation gets a fresh address"
        );
        assert_ne!(first.next, Some(HARDWARE));
        assert_eq!(first.label, "stable-ssid");

        // Without a driver, the link keeps the per-link fallback of ${NETWORK_SSID}.
        let undriven = wifi_policy(
            "[connection]\nwifi.cloned-mac-address=stable-ssid\nmacveil.wifi-connect=no\n",
        );
        let fallback = run(&undriven, &wlan, &mut keys, &boot);
        assert!(matches!(fallback.intent, Intent::Fixed(_)), "{fallback:?}");
    }

    #[test]
    fn unmanaged_and_fixed_policies() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = Keys::new(dir.path().join("absent"));
        let boot = Ok(String::new());
        let veth = link("veth0");

        let unmanaged = policy("[connection]\nethernet.cloned-mac-address=stable\n", &veth);
        assert_eq!(
            run(&unmanaged, &veth, &mut keys, &boot).intent,
            Intent::Unmanaged
        );

        let fixed = policy(
            "[connection-veth]\nmatch-device=type:veth\n\
             ethernet.cloned-mac-address=02:aa:bb:cc:dd:ee\n",
            &veth,
        );
        assert_eq!(
            run(&fixed, &veth, &mut keys, &boot).intent,
            Intent::Fixed("02:aa:bb:cc:dd:ee".parse().unwrap())
        );
    }
}
