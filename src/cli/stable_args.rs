//! The options that feed NetworkManager-compatible stable addresses, shared by the commands that
//! generate them, and the derivation of one interface's stable address from those options and
//! the interface's own values.
//!
//! Options given on the command line win over the values the interface provides
//! ([`LinkInputs`]). When no `--connection` is given, `${CONNECTION}` and an unset template use
//! macveil's per-link identity (see [`crate::generate::stable`]).
//!
//! The secret key is read from `--secret-key`, by default macveil's own key
//! (`/var/lib/macveil/secret_key`). Deriving an address never creates a key by itself. A missing
//! key is an error that explains how to create one, and only `--create-secret-key` creates it,
//! with mode 0600 and never over an existing file. NetworkManager's key is only ever read.
//!
//! Every call of [`StableArgs::derive`] is one activation in NetworkManager's terms. A template
//! with `${RANDOM}` therefore gives a new address on every call (so `macveil gen --stable
//! --count N` prints N different addresses), while every other template gives the same address
//! each time, except for the OUI that a mask with several OUIs picks at random.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use crate::addr::MacAddr;
use crate::generate::mask::Mask;
use crate::generate::stable::{self, LinkKey, StableError};
use crate::generate::stable_id::{self, BOOT_ID_PATH, Placeholder};
use crate::rng::RandomSource;
use crate::secret_key::{HostId, KeyVersion, MACVEIL_KEY_PATH, MachineId, SecretKey};

/// Inputs of a stable address.
#[derive(Debug, Args)]
pub struct StableArgs {
    /// Stable-id template, as NetworkManager's connection.stable-id (for example
    /// '${CONNECTION}/${BOOT}'). Placeholders: ${CONNECTION}, ${BOOT}, ${DEVICE}, ${MAC},
    /// ${NETWORK_SSID} and ${RANDOM}; '$$' keeps the next '$' literal. '${NETWORK_SSID}' is
    /// NetworkManager's cloned-mac-address=stable-ssid. Unset: the connection UUID alone.
    #[arg(long, value_name = "TEMPLATE", help_heading = "Stable address")]
    pub stable_id: Option<String>,

    /// Connection UUID for ${CONNECTION}, as 'nmcli -g connection.uuid connection show NAME'
    /// prints it. Default: macveil's own identity for the card, derived from the secret key and
    /// the permanent address.
    #[arg(long, value_name = "UUID", help_heading = "Stable address")]
    pub connection: Option<String>,

    /// Interface name hashed into the address and used for ${DEVICE}.
    #[arg(long, value_name = "NAME", help_heading = "Stable address")]
    pub ifname: Option<String>,

    /// Boot id for ${BOOT}. Default: /proc/sys/kernel/random/boot_id.
    #[arg(long, value_name = "ID", help_heading = "Stable address")]
    pub boot_id: Option<String>,

    /// Wi-Fi network name (1 to 32 bytes) for ${NETWORK_SSID}. Without it, ${NETWORK_SSID} uses
    /// the connection UUID, as NetworkManager does on networks without an SSID.
    #[arg(long, value_name = "SSID", help_heading = "Stable address")]
    pub ssid: Option<OsString>,

    /// Permanent address for ${MAC} and for macveil's own connection identity. Default with
    /// `set`: the interface's permanent (or recorded) address. `gen` reads no interface, so
    /// without --mac its identity comes from the interface name alone.
    #[arg(long = "mac", value_name = "ADDR", help_heading = "Stable address")]
    pub mac: Option<MacAddr>,

    /// Secret key file. Default: /var/lib/macveil/secret_key. NetworkManager's key,
    /// /var/lib/NetworkManager/secret_key, gives the addresses NetworkManager chooses.
    #[arg(long, value_name = "FILE", help_heading = "Stable address")]
    pub secret_key: Option<PathBuf>,

    /// Create the secret key file if it does not exist (mode 0600; an existing file is never
    /// replaced). Without this option a missing key is an error.
    #[arg(long, help_heading = "Stable address")]
    pub create_secret_key: bool,

    /// Machine id, or a file containing it; a v2 secret key is hashed with it. Default:
    /// /etc/machine-id.
    #[arg(long, value_name = "ID|FILE", help_heading = "Stable address")]
    pub machine_id: Option<String>,

    /// Host id in hexadecimal, used instead of a secret key. Hidden from --help: it exists to
    /// reproduce NetworkManager's published test vectors, whose host ids are shorter than any
    /// key file, and it puts the secret on the command line, where other users can see it.
    #[arg(
        long,
        hide = true,
        value_name = "HEX",
        conflicts_with_all = ["secret_key", "machine_id", "create_secret_key"]
    )]
    pub host_id_hex: Option<String>,
}

/// The values the interface being given a stable address contributes: its name, its permanent
/// address (for `${MAC}` and for macveil's per-link identity, which replaces `${CONNECTION}` when
/// `--connection` is not given) and its current address (for a mask without OUIs). Options given
/// on the command line win.
#[derive(Debug, Clone, Default)]
pub struct LinkInputs {
    /// The interface name.
    pub ifname: Option<String>,
    /// The permanent (or reference) address.
    pub permanent: Option<MacAddr>,
    /// The current address.
    pub current: Option<MacAddr>,
}

impl StableArgs {
    /// Derives the stable address these options describe for one interface.
    ///
    /// `mask` is NetworkManager's generate-mac-address-mask. A mask without OUIs takes its masked
    /// bits from the interface's current address, or from its permanent one when the current
    /// address is unknown. `rng` draws `${RANDOM}` ids and picks among a mask's OUIs.
    pub fn derive(
        &self,
        link: &LinkInputs,
        mask: Option<&Mask>,
        rng: &mut dyn RandomSource,
    ) -> anyhow::Result<MacAddr> {
        let ifname = self
            .ifname
            .as_deref()
            .or(link.ifname.as_deref())
            .ok_or(StableError::MissingIfname)?;
        stable::validate_ifname(ifname)?;
        let permanent = self.mac.or(link.permanent);

        if let Some(template) = &self.stable_id {
            stable::validate_text("stable-id template", template, true)?;
        }
        let ssid = self.ssid.as_ref().map(|ssid| ssid.as_bytes());
        if let Some(ssid) = ssid {
            stable::validate_ssid(ssid)?;
        }

        let host_id = self.host_id(rng)?;
        let connection = self.connection_uuid(&host_id, permanent, ifname)?;

        let mut boot_id = None;
        let stable_id = stable_id::resolve(
            self.stable_id.as_deref(),
            &connection,
            |placeholder| {
                let value = match placeholder {
                    Placeholder::Connection => Some(connection.clone()),
                    Placeholder::Boot => Some(self.boot_id(&mut boot_id)?),
                    Placeholder::Device => Some(ifname.to_string()),
                    Placeholder::Mac => {
                        if permanent.is_none() {
                            log::warn!(
                                "the permanent address of {ifname} is unknown, so ${{MAC}} \
                                 expands to an empty value, as in NetworkManager. Give the \
                                 address with --mac ADDR"
                            );
                        }
                        permanent.map(stable_id::mac_value)
                    }
                    Placeholder::NetworkSsid => {
                        Some(stable_id::network_ssid_value(ssid, &connection))
                    }
                };
                Ok::<_, StableError>(value)
            },
            rng,
        )?;

        let initial = link.current.or(link.permanent);
        let address = stable::address(&stable_id, &host_id, ifname, mask, initial, rng)?;
        log::debug!(
            "stable address for {ifname}: stable id type {}, address {address}",
            stable_id.kind
        );
        Ok(address)
    }

    /// Returns the secret key path these options name.
    pub fn secret_key_path(&self) -> PathBuf {
        self.secret_key
            .clone()
            .unwrap_or_else(|| PathBuf::from(MACVEIL_KEY_PATH))
    }

    /// Reads (or, with `--create-secret-key`, creates) the secret key and derives the host id.
    fn host_id(&self, rng: &mut dyn RandomSource) -> anyhow::Result<HostId> {
        if let Some(hex) = &self.host_id_hex {
            return parse_host_id_hex(hex);
        }

        let path = self.secret_key_path();
        let key = if self.create_secret_key {
            SecretKey::read_or_create(&path, rng)?.0
        } else {
            SecretKey::read(&path)?
        };

        let machine_id = match (key.version(), &self.machine_id) {
            (KeyVersion::V2, Some(value)) => MachineId::from_argument(value)?,
            (KeyVersion::V2, None) => MachineId::read_default(),
            (KeyVersion::V1, Some(_)) => {
                log::info!(
                    "--machine-id has no effect: {} is a v1 key, whose bytes are the host id",
                    path.display()
                );
                None
            }
            (KeyVersion::V1, None) => None,
        };
        log::debug!(
            "secret key {}: {} key of {} bytes, machine id {}",
            path.display(),
            key.version(),
            key.len(),
            if machine_id.is_some() {
                "included"
            } else {
                "left out"
            }
        );
        Ok(key.host_id(machine_id.as_ref()))
    }

    /// Returns the connection UUID for `${CONNECTION}`: `--connection`, or else macveil's
    /// per-link identity.
    fn connection_uuid(
        &self,
        host_id: &HostId,
        permanent: Option<MacAddr>,
        ifname: &str,
    ) -> Result<String, StableError> {
        let Some(text) = &self.connection else {
            let link = match permanent {
                Some(addr) => LinkKey::Permanent(addr),
                None => LinkKey::Name(ifname),
            };
            return Ok(stable::link_identity(host_id, link));
        };

        stable::validate_text("connection UUID", text, false)?;
        // NetworkManager normalizes profile UUIDs to lower case, so 'nmcli' shows that form.
        Ok(stable_id::canonical_uuid(text).unwrap_or_else(|| {
            log::warn!(
                "--connection '{text}' is not a UUID. NetworkManager gives every profile a UUID, \
                 so the address matches NetworkManager's only if a profile has exactly this string"
            );
            text.clone()
        }))
    }

    /// Returns the boot id for `${BOOT}`. Only the first call, with an empty `cache`, reads it.
    fn boot_id(&self, cache: &mut Option<String>) -> Result<String, StableError> {
        if let Some(id) = cache {
            return Ok(id.clone());
        }

        let id = match &self.boot_id {
            Some(text) => {
                stable::validate_text("boot id", text, false)?;
                stable_id::canonical_uuid(text).unwrap_or_else(|| {
                    log::warn!(
                        "--boot-id '{text}' is not a UUID. The kernel's boot id always is one, \
                         so the address will not match NetworkManager's"
                    );
                    text.clone()
                })
            }
            None => stable_id::read_boot_id(Path::new(BOOT_ID_PATH))?,
        };
        *cache = Some(id.clone());
        Ok(id)
    }
}

/// Parses the hidden `--host-id-hex` value.
fn parse_host_id_hex(hex: &str) -> anyhow::Result<HostId> {
    let valid = !hex.is_empty() && hex.len() % 2 == 0 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        anyhow::bail!(
            "invalid --host-id-hex value: expected a non-empty, even number of hexadecimal digits"
        );
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .context("invalid --host-id-hex value")?;
    Ok(HostId::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::FixedRandom;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn args() -> StableArgs {
        StableArgs {
            stable_id: None,
            connection: None,
            ifname: None,
            boot_id: None,
            ssid: None,
            mac: None,
            secret_key: None,
            create_secret_key: false,
            machine_id: None,
            host_id_hex: Some(hex_of(b"0123456789abcdef")),
        }
    }

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn addr(text: &str) -> MacAddr {
        text.parse().unwrap()
    }

    fn derive(args: &StableArgs, link: &LinkInputs) -> anyhow::Result<MacAddr> {
        args.derive(link, None, &mut FixedRandom::new(vec![7]))
    }

    #[test]
    fn derive_needs_ifname() {
        let err = derive(&args(), &LinkInputs::default()).unwrap_err();
        assert!(err.to_string().contains("--ifname"), "{err}");
    }

    #[test]
    fn command_line_wins_over_link_inputs() {
        let mut from_options = args();
        from_options.ifname = Some("eth0".into());
        from_options.mac = Some(addr("3c:22:fb:01:02:03"));
        let link = LinkInputs {
            ifname: Some("eth1".into()),
            permanent: Some(addr("3c:22:fb:09:09:09")),
            current: None,
        };
        let from_link = LinkInputs {
            ifname: Some("eth0".into()),
            permanent: Some(addr("3c:22:fb:01:02:03")),
            current: None,
        };
        assert_eq!(
            derive(&from_options, &link).unwrap(),
            derive(&args(), &from_link).unwrap()
        );
    }

    #[test]
    fn default_connection_is_link_identity() {
        let host = HostId::from_bytes(b"0123456789abcdef".to_vec());
        let permanent = addr("3c:22:fb:01:02:03");
        let identity = stable::link_identity(&host, LinkKey::Permanent(permanent));

        let mut implicit = args();
        implicit.ifname = Some("eth0".into());
        implicit.mac = Some(permanent);
        let mut explicit = args();
        explicit.ifname = Some("eth0".into());
        explicit.connection = Some(identity.to_uppercase());

        assert_eq!(
            derive(&implicit, &LinkInputs::default()).unwrap(),
            derive(&explicit, &LinkInputs::default()).unwrap()
        );
    }

    #[test]
    fn identity_differs_per_card() {
        let mut first = args();
        first.ifname = Some("eth0".into());
        first.mac = Some(addr("3c:22:fb:01:02:03"));
        let mut second = args();
        second.ifname = Some("eth0".into());
        second.mac = Some(addr("3c:22:fb:01:02:04"));
        assert_ne!(
            derive(&first, &LinkInputs::default()).unwrap(),
            derive(&second, &LinkInputs::default()).unwrap()
        );
    }

    #[test]
    fn random_template_changes_per_call() {
        let mut random = args();
        random.ifname = Some("eth0".into());
        random.stable_id = Some("${RANDOM}".into());
        let link = LinkInputs::default();
        let first = random
            .derive(&link, None, &mut crate::rng::OsRandom)
            .unwrap();
        let second = random
            .derive(&link, None, &mut crate::rng::OsRandom)
            .unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn boot_id_option_is_normalized() {
        let mut upper = args();
        upper.ifname = Some("eth0".into());
        upper.stable_id = Some("${BOOT}".into());
        upper.boot_id = Some("A1B2C3D4-0000-4000-8000-0123456789AB".into());
        let mut lower = args();
        lower.ifname = Some("eth0".into());
        lower.stable_id = Some("${BOOT}".into());
        lower.boot_id = Some("a1b2c3d4-0000-4000-8000-0123456789ab".into());
        let link = LinkInputs::default();
        assert_eq!(
            derive(&upper, &link).unwrap(),
            derive(&lower, &link).unwrap()
        );
    }

    #[test]
    fn invalid_inputs_are_rejected() {
        let mut bad_ifname = args();
        bad_ifname.ifname = Some("eth/0".into());
        assert!(derive(&bad_ifname, &LinkInputs::default()).is_err());

        let mut bad_ssid = args();
        bad_ssid.ifname = Some("wlan0".into());
        bad_ssid.ssid = Some(OsString::from("x".repeat(33)));
        let err = derive(&bad_ssid, &LinkInputs::default()).unwrap_err();
        assert!(err.to_string().contains("1 to 32 bytes"), "{err}");

        let mut bad_hex = args();
        bad_hex.ifname = Some("eth0".into());
        bad_hex.host_id_hex = Some("abc".into());
        assert!(derive(&bad_hex, &LinkInputs::default()).is_err());
    }

    #[test]
    fn missing_key_is_not_created_without_option() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret_key");
        let mut options = args();
        options.host_id_hex = None;
        options.ifname = Some("eth0".into());
        options.secret_key = Some(path.clone());

        let err = derive(&options, &LinkInputs::default()).unwrap_err();
        assert!(err.to_string().contains("--create-secret-key"), "{err}");
        assert!(
            !path.exists(),
            "a key was created without --create-secret-key"
        );

        options.create_secret_key = true;
        let first = options
            .derive(&LinkInputs::default(), None, &mut crate::rng::OsRandom)
            .unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = options
            .derive(&LinkInputs::default(), None, &mut crate::rng::OsRandom)
            .unwrap();
        assert_eq!(first, second, "the created key was replaced");
    }
}
