//! NetworkManager's version, how to find it, and the first version that supports each MAC
//! privacy key and value.
//!
//! The installed version comes from `NetworkManager -V`. The running daemon's version comes from
//! D-Bus through `nmcli -g VERSION general`, because a package upgrade can leave an older
//! daemon running until it restarts.
//!
//! The first versions come from NetworkManager's NEWS file (sections "Overview of changes since
//! NetworkManager-X") and its manual pages:
//! - 1.4: `cloned-mac-address` with `preserve`, `permanent`, `random` and `stable`,
//!   `connection.stable-id`, `generate-mac-address-mask`, and the `[device]` keys
//!   `wifi.scan-rand-mac-address` and `wifi.scan-generate-mac-address-mask`;
//! - 1.6: the placeholders `${CONNECTION}`, `${BOOT}`, `${DEVICE}` and `${RANDOM}` in
//!   `connection.stable-id` ("dynamic randomization seeds", shown in NetworkManager's
//!   `examples/nm-conf.d/30-anon.conf` of that release);
//! - 1.16 (and 1.14.6): `${MAC}`;
//! - 1.22: `nmcli general reload conf`;
//! - 1.46: `wifi.cloned-mac-address=stable-ssid` and `${NETWORK_SSID}`. Debian 12 ships 1.42, which
//!   has neither.
//!
//! NOTE: the NEWS file names `${CONNECTION}`, `${BOOT}` and `${RANDOM}` for 1.6 through its
//! example. `${DEVICE}` is assumed to date from the same release, but no entry confirms it.
//!
//! This module runs `NetworkManager -V` and `nmcli`, and changes nothing.

use std::cmp::Ordering;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use serde::Serialize;

/// A NetworkManager release number such as 1.42.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NmVersion {
    /// The major number.
    pub major: u32,
    /// The minor number; odd numbers are development snapshots.
    pub minor: u32,
    /// The micro number; 0 when the version string has only two numbers.
    pub micro: u32,
}

impl NmVersion {
    /// Builds a version from its three numbers.
    pub const fn new(major: u32, minor: u32, micro: u32) -> NmVersion {
        NmVersion {
            major,
            minor,
            micro,
        }
    }
}

impl PartialOrd for NmVersion {
    fn partial_cmp(&self, other: &NmVersion) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for NmVersion {
    fn cmp(&self, other: &NmVersion) -> Ordering {
        (self.major, self.minor, self.micro).cmp(&(other.major, other.minor, other.micro))
    }
}

impl fmt::Display for NmVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

impl Serialize for NmVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A version string that does not start with `MAJOR.MINOR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a NetworkManager version such as 1.42.4")]
pub struct InvalidVersion(pub String);

impl FromStr for NmVersion {
    type Err = InvalidVersion;

    /// Parses the leading `MAJOR.MINOR[.MICRO]` of a version string. Distributions append a
    /// release suffix (`1.46.0-1.fc40`, `1.42.4-1ubuntu2`), which is ignored.
    fn from_str(text: &str) -> Result<NmVersion, InvalidVersion> {
        let trimmed = text.trim();
        let end = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(trimmed.len());
        let numbers: Vec<&str> = trimmed[..end].split('.').collect();
        let invalid = || InvalidVersion(trimmed.to_string());

        if numbers.len() < 2 || numbers.iter().take(3).any(|part| part.is_empty()) {
            return Err(invalid());
        }
        let number = |index: usize| -> Result<u32, InvalidVersion> {
            match numbers.get(index) {
                Some(part) => part.parse().map_err(|_| invalid()),
                None => Ok(0),
            }
        };
        Ok(NmVersion::new(number(0)?, number(1)?, number(2)?))
    }
}

/// A key or value of NetworkManager's MAC privacy settings that appeared in a known release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feature {
    /// `ethernet.cloned-mac-address` and `wifi.cloned-mac-address` with `preserve`,
    /// `permanent`, `random`, `stable` or an address.
    ClonedMacAddress,
    /// `wifi.cloned-mac-address=stable-ssid`.
    StableSsid,
    /// `connection.stable-id`.
    StableId,
    /// `${CONNECTION}`, `${BOOT}`, `${DEVICE}` and `${RANDOM}` in `connection.stable-id`.
    StableIdPlaceholders,
    /// `${MAC}` in `connection.stable-id`.
    MacPlaceholder,
    /// `${NETWORK_SSID}` in `connection.stable-id`.
    NetworkSsidPlaceholder,
    /// `ethernet.generate-mac-address-mask` and `wifi.generate-mac-address-mask`.
    GenerateMacAddressMask,
    /// `wifi.scan-rand-mac-address` in a `[device]` section.
    ScanRandMacAddress,
    /// `wifi.scan-generate-mac-address-mask` in a `[device]` section.
    ScanGenerateMacAddressMask,
    /// `nmcli general reload conf`, which reloads NetworkManager.conf without a restart.
    ReloadConf,
}

/// Every feature, in the order `macveil nm status` lists them.
pub const FEATURES: [Feature; 10] = [
    Feature::ClonedMacAddress,
    Feature::StableSsid,
    Feature::StableId,
    Feature::StableIdPlaceholders,
    Feature::MacPlaceholder,
    Feature::NetworkSsidPlaceholder,
    Feature::GenerateMacAddressMask,
    Feature::ScanRandMacAddress,
    Feature::ScanGenerateMacAddressMask,
    Feature::ReloadConf,
];

impl Feature {
    /// Returns the first NetworkManager release that supports the feature.
    pub fn since(self) -> NmVersion {
        match self {
            Feature::ClonedMacAddress
            | Feature::StableId
            | Feature::GenerateMacAddressMask
            | Feature::ScanRandMacAddress
            | Feature::ScanGenerateMacAddressMask => NmVersion::new(1, 4, 0),
            Feature::StableIdPlaceholders => NmVersion::new(1, 6, 0),
            Feature::MacPlaceholder => NmVersion::new(1, 16, 0),
            Feature::ReloadConf => NmVersion::new(1, 22, 0),
            Feature::StableSsid | Feature::NetworkSsidPlaceholder => NmVersion::new(1, 46, 0),
        }
    }

    /// Returns the key or value as a user writes it.
    pub fn name(self) -> &'static str {
        match self {
            Feature::ClonedMacAddress => {
                "*.cloned-mac-address (preserve, permanent, random, stable)"
            }
            Feature::StableSsid => "wifi.cloned-mac-address=stable-ssid",
            Feature::StableId => "connection.stable-id",
            Feature::StableIdPlaceholders => {
                "${CONNECTION}, ${BOOT}, ${DEVICE}, ${RANDOM} in connection.stable-id"
            }
            Feature::MacPlaceholder => "${MAC} in connection.stable-id",
            Feature::NetworkSsidPlaceholder => "${NETWORK_SSID} in connection.stable-id",
            Feature::GenerateMacAddressMask => "*.generate-mac-address-mask",
            Feature::ScanRandMacAddress => "wifi.scan-rand-mac-address",
            Feature::ScanGenerateMacAddressMask => "wifi.scan-generate-mac-address-mask",
            Feature::ReloadConf => "nmcli general reload conf",
        }
    }

    /// Returns whether `version` supports the feature.
    pub fn supported_by(self, version: NmVersion) -> bool {
        version >= self.since()
    }

    /// Lists the features a `connection.stable-id` template uses, the key itself included.
    pub fn in_stable_id(template: &str) -> Vec<Feature> {
        let mut features = vec![Feature::StableId];
        let classic = ["${CONNECTION}", "${BOOT}", "${DEVICE}", "${RANDOM}"];
        if classic
            .iter()
            .any(|placeholder| template.contains(placeholder))
        {
            features.push(Feature::StableIdPlaceholders);
        }
        if template.contains("${MAC}") {
            features.push(Feature::MacPlaceholder);
        }
        if template.contains("${NETWORK_SSID}") {
            features.push(Feature::NetworkSsidPlaceholder);
        }
        features
    }
}

/// The programs NetworkManager is queried with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Programs {
    /// The daemon, run only as `NetworkManager -V`.
    pub network_manager: PathBuf,
    /// The command-line client.
    pub nmcli: PathBuf,
    /// The root of a system that is not the running one (a mounted image). Its programs are
    /// not run: the version comes from its package database, and no daemon of it runs.
    pub image: Option<PathBuf>,
}

/// Folders that hold the NetworkManager daemon on Debian and Fedora; `sbin` is often missing from
/// a user's `PATH`.
const DAEMON_FOLDERS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

impl Programs {
    /// Finds the programs in `PATH`, and the daemon also in the usual `sbin` folders.
    pub fn from_path() -> Programs {
        let network_manager = find_program("NetworkManager", &DAEMON_FOLDERS)
            .unwrap_or_else(|| PathBuf::from("NetworkManager"));
        let nmcli = find_program("nmcli", &[]).unwrap_or_else(|| PathBuf::from("nmcli"));
        Programs {
            network_manager,
            nmcli,
            image: None,
        }
    }

    /// Uses `NetworkManager` and `nmcli` from `dir`, for tests that stand in for them.
    pub fn in_dir(dir: &Path) -> Programs {
        Programs {
            network_manager: dir.join("NetworkManager"),
            nmcli: dir.join("nmcli"),
            image: None,
        }
    }

    /// Describes the NetworkManager of the system below `root`, which is not the running one.
    pub fn for_image(root: &Path) -> Programs {
        Programs {
            network_manager: root.join("usr/sbin/NetworkManager"),
            nmcli: root.join("usr/bin/nmcli"),
            image: Some(root.to_path_buf()),
        }
    }
}

/// dpkg's record of installed packages, relative to the root.
const DPKG_STATUS: &str = "var/lib/dpkg/status";

/// Reads the version of the installed `network-manager` package from dpkg's status file below
/// `root`, without the epoch and the Debian revision.
fn packaged_version(root: &Path) -> Result<NmVersion, VersionError> {
    let path = root.join(DPKG_STATUS);
    let unknown = || VersionError::NotInImage {
        root: root.to_path_buf(),
    };
    let text = std::fs::read_to_string(&path).map_err(|_| unknown())?;
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let installed = field("Status").is_some_and(|status| status.ends_with(" installed"));
        if field("Package") != Some("network-manager") || !installed {
            continue;
        }
        let version = field("Version").ok_or_else(unknown)?;
        let upstream = version.split_once(':').map_or(version, |(_, rest)| rest);
        return upstream.parse().map_err(|source| VersionError::Invalid {
            program: path.clone(),
            source,
        });
    }
    Err(unknown())
}

/// Finds `name` in `PATH`, then in `extra` folders.
fn find_program(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|folder| folder.join(name))
        .find(|candidate| candidate.is_file())
}

/// A failure to read NetworkManager's version.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    /// The daemon binary is not installed.
    #[error(
        "NetworkManager is not installed ({program} was not found); install the network-manager \
         package, or leave the addresses to the macveil daemon",
        program = program.display()
    )]
    NotInstalled {
        /// The program that was looked for.
        program: PathBuf,
    },

    /// The program could not be run.
    #[error("cannot run {}: {source}", program.display())]
    Run {
        /// The program.
        program: PathBuf,
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// The program ran but failed.
    #[error("{} -V failed ({status}): {stderr}", program.display())]
    Failed {
        /// The program.
        program: PathBuf,
        /// The exit status.
        status: std::process::ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },

    /// The version of NetworkManager in a system image is not recorded.
    #[error(
        "no installed network-manager package is recorded in {}; NetworkManager's version in \
         that system is unknown",
        root.join(DPKG_STATUS).display()
    )]
    NotInImage {
        /// The image's root.
        root: PathBuf,
    },

    /// The output is not a version.
    #[error("{} -V printed an unexpected version: {source}", program.display())]
    Invalid {
        /// The program.
        program: PathBuf,
        /// The parse error.
        #[source]
        source: InvalidVersion,
    },
}

/// Reads the installed version with `NetworkManager -V`, or for an image from its package
/// database.
pub fn installed_version(programs: &Programs) -> Result<NmVersion, VersionError> {
    if let Some(root) = &programs.image {
        return packaged_version(root);
    }
    let program = &programs.network_manager;
    let output = match Command::new(program).arg("-V").output() {
        Ok(output) => output,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(VersionError::NotInstalled {
                program: program.clone(),
            });
        }
        Err(source) => {
            return Err(VersionError::Run {
                program: program.clone(),
                source,
            });
        }
    };
    if !output.status.success() {
        return Err(VersionError::Failed {
            program: program.clone(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    String::from_utf8_lossy(&output.stdout)
        .parse()
        .map_err(|source| VersionError::Invalid {
            program: program.clone(),
            source,
        })
}

/// Reads the running daemon's version over D-Bus with `nmcli -g VERSION general`. Returns
/// `None` when nmcli is missing or NetworkManager is not running.
pub fn running_version(programs: &Programs) -> Option<NmVersion> {
    if programs.image.is_some() {
        return None;
    }
    let output = Command::new(&programs.nmcli)
        .args(["-g", "VERSION", "general"])
        .env("LC_ALL", "C")
        .output();
    match output {
        Ok(output) if output.status.success() => {
            let text = String::from_utf8_lossy(&output.stdout);
            match text.parse() {
                Ok(version) => Some(version),
                Err(err) => {
                    log::debug!("nmcli -g VERSION general: {err}");
                    None
                }
            }
        }
        Ok(output) => {
            log::debug!(
                "nmcli -g VERSION general failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
            None
        }
        Err(err) => {
            log::debug!("cannot run {}: {err}", programs.nmcli.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parses_distribution_suffixes() {
        assert_eq!("1.42.4".parse(), Ok(NmVersion::new(1, 42, 4)));
        assert_eq!("1.42.4\n".parse(), Ok(NmVersion::new(1, 42, 4)));
        assert_eq!("1.46.0-1.fc40".parse(), Ok(NmVersion::new(1, 46, 0)));
        assert_eq!("1.36.6-0ubuntu2".parse(), Ok(NmVersion::new(1, 36, 6)));
        assert_eq!("1.47".parse(), Ok(NmVersion::new(1, 47, 0)));
        assert_eq!("1.48.10-dev".parse(), Ok(NmVersion::new(1, 48, 10)));
    }

    #[test]
    fn version_rejects_non_versions() {
        for text in ["", "1", "NetworkManager", "1..2", ".42.4", "v1.42"] {
            assert!(text.parse::<NmVersion>().is_err(), "{text:?}");
        }
    }

    #[test]
    fn versions_order_numerically() {
        assert!(NmVersion::new(1, 42, 4) < NmVersion::new(1, 46, 0));
        assert!(NmVersion::new(1, 9, 0) < NmVersion::new(1, 10, 0));
        assert!(NmVersion::new(1, 14, 6) < NmVersion::new(1, 16, 0));
        assert_eq!(NmVersion::new(1, 4, 0).to_string(), "1.4.0");
    }

    #[test]
    fn debian_12_lacks_stable_ssid() {
        let debian_12 = NmVersion::new(1, 42, 4);
        assert!(Feature::ClonedMacAddress.supported_by(debian_12));
        assert!(Feature::MacPlaceholder.supported_by(debian_12));
        assert!(!Feature::StableSsid.supported_by(debian_12));
        assert!(!Feature::NetworkSsidPlaceholder.supported_by(debian_12));
        assert!(Feature::StableSsid.supported_by(NmVersion::new(1, 46, 0)));
    }

    #[test]
    fn stable_id_features_follow_placeholders() {
        assert_eq!(Feature::in_stable_id("office"), [Feature::StableId]);
        assert_eq!(
            Feature::in_stable_id("${CONNECTION}/${BOOT}"),
            [Feature::StableId, Feature::StableIdPlaceholders]
        );
        assert_eq!(
            Feature::in_stable_id("${NETWORK_SSID}-${MAC}"),
            [
                Feature::StableId,
                Feature::MacPlaceholder,
                Feature::NetworkSsidPlaceholder
            ]
        );
    }

    #[test]
    fn missing_program_is_not_installed() {
        let programs = Programs::in_dir(Path::new("/nonexistent-macveil-test"));
        let err = installed_version(&programs).unwrap_err();
        assert!(matches!(err, VersionError::NotInstalled { .. }), "{err}");
        assert!(err.to_string().contains("not installed"), "{err}");
        assert_eq!(running_version(&programs), None);
    }

    #[test]
    fn image_version_comes_from_dpkg() {
        let root = tempfile::tempdir().unwrap();
        let programs = Programs::for_image(root.path());
        assert!(matches!(
            installed_version(&programs),
            Err(VersionError::NotInImage { .. })
        ));
        assert_eq!(running_version(&programs), None);

        let status = root.path().join(DPKG_STATUS);
        std::fs::create_dir_all(status.parent().unwrap()).unwrap();
        std::fs::write(
            &status,
            "Package: network-manager-gnome\nStatus: install ok installed\nVersion: 1.30.0-2\n\n\
             Package: network-manager\nStatus: deinstall ok config-files\nVersion: 1.30.0-1\n\n",
        )
        .unwrap();
        assert!(matches!(
            installed_version(&programs),
            Err(VersionError::NotInImage { .. })
        ));

        std::fs::write(
            &status,
            "Package: network-manager\nStatus: install ok installed\nVersion: 1:1.42.4-1\n\n",
        )
        .unwrap();
        assert_eq!(
            installed_version(&programs).unwrap(),
            "1.42.4".parse().unwrap()
        );
    }
}
