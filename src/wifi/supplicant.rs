//! The wpa_supplicant commands macveil uses, with typed replies: the address settings
//! (`mac_addr`, `preassoc_mac_addr`, `gas_rand_mac_addr`, `rand_addr_lifetime`, per-network
//! `mac_addr`), the kernel's scan-address randomization (`MAC_RAND_SCAN`), network selection and
//! the status.
//!
//! The meaning of the address settings in wpa_supplicant 2.10 (Debian 12), from its
//! `wpa_supplicant.conf` and `wpas_update_random_addr()`:
//!
//! - `mac_addr` (global, and per network where -1 means "use the global value"): 0 associates
//!   with the interface's address, 1 with a random address, 2 with a random address that keeps
//!   the OUI. With 1 or 2 the supplicant itself changes the interface address before it
//!   authenticates.
//! - `preassoc_mac_addr`: the same modes for the time before association. With 1 or 2 the
//!   supplicant changes the interface address before scans and GAS queries while it is not
//!   associated.
//! - `rand_addr_lifetime`: seconds a random address of the supplicant's own is reused.
//! - `gas_rand_mac_addr`: a random transmitter address for GAS/ANQP queries, sent without
//!   changing the interface address (when the driver supports it).
//! - `MAC_RAND_SCAN all enable=1`: makes the kernel use a random source address in each scan
//!   (`NL80211_SCAN_FLAG_RANDOM_ADDR`); the interface address does not change. It is not a
//!   configuration setting, so it is lost when wpa_supplicant restarts.
//!
//! This module sends commands; it decides nothing. [`super::drive`] and [`super::privacy`] do.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::ctrl::{ClientOptions, ControlSocket, CtrlError, Event};
use crate::addr::MacAddr;

/// One network block of the supplicant's configuration, as `LIST_NETWORKS` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkEntry {
    /// The network id (`SELECT_NETWORK ID`).
    pub id: u32,
    /// The SSID bytes.
    pub ssid: Vec<u8>,
    /// The flags, for example `[CURRENT]` or `[DISABLED]`.
    pub flags: String,
}

impl NetworkEntry {
    /// Returns whether the network is disabled (`[DISABLED]`).
    pub fn is_disabled(&self) -> bool {
        self.flags.contains("[DISABLED]")
    }

    /// Returns whether the entry is a Wi-Fi Direct persistent group (`[P2P-PERSISTENT]`), which
    /// the station never joins as an ordinary network.
    pub fn is_p2p_persistent(&self) -> bool {
        self.flags.contains("[P2P-PERSISTENT]")
    }
}

/// One access point from the last scan, as `SCAN_RESULTS` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanResult {
    /// The access point's address.
    pub bssid: MacAddr,
    /// The channel's frequency in MHz.
    pub frequency: u32,
    /// The signal level as the driver reports it, in dBm for nl80211 drivers (higher is
    /// stronger).
    pub signal: i32,
    /// The flags, for example `[WPA2-PSK-CCMP][ESS]`.
    pub flags: String,
    /// The SSID bytes.
    pub ssid: Vec<u8>,
}

/// The `STATUS` reply: `key=value` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Every field, as sent.
    pub fields: BTreeMap<String, String>,
}

impl Status {
    /// Parses a `STATUS` reply.
    pub fn parse(reply: &str) -> Status {
        let fields = reply
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        Status { fields }
    }

    /// Returns a field's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// Returns the connection state (`wpa_state`): `COMPLETED`, `DISCONNECTED`,
    /// `INTERFACE_DISABLED`, `SCANNING`, ...
    pub fn wpa_state(&self) -> &str {
        self.get("wpa_state").unwrap_or("UNKNOWN")
    }

    /// Returns whether the station is associated and its keys are in place (`COMPLETED`).
    pub fn is_completed(&self) -> bool {
        self.wpa_state() == "COMPLETED"
    }

    /// Returns the address the supplicant uses for the interface (`address`).
    pub fn address(&self) -> Option<MacAddr> {
        self.get("address")?.parse().ok()
    }

    /// Returns the access point's address while associated (`bssid`).
    pub fn bssid(&self) -> Option<MacAddr> {
        self.get("bssid")?.parse().ok()
    }

    /// Returns the id of the current network (`id`).
    pub fn network_id(&self) -> Option<u32> {
        self.get("id")?.parse().ok()
    }

    /// Returns the WPS UUID the supplicant sends in its probe requests (`uuid`), when it was
    /// built with WPS.
    pub fn wps_uuid(&self) -> Option<&str> {
        self.get("uuid")
    }

    /// Returns the P2P Device address (`p2p_device_address`), when it was built with P2P.
    pub fn p2p_device_address(&self) -> Option<MacAddr> {
        self.get("p2p_device_address")?.parse().ok()
    }
}

/// The supplicant operations the connection logic needs, so that tests can replace the
/// supplicant. [`Supplicant`] implements them over the control socket.
pub trait SupplicantOps {
    /// Reads a global setting (`GET NAME`).
    fn get(&mut self, name: &str) -> Result<String, CtrlError>;
    /// Reads a network's setting (`GET_NETWORK ID NAME`).
    fn get_network(&mut self, id: u32, name: &str) -> Result<String, CtrlError>;
    /// Lists the configured networks.
    fn list_networks(&mut self) -> Result<Vec<NetworkEntry>, CtrlError>;
    /// Reads the status.
    fn status(&mut self) -> Result<Status, CtrlError>;
    /// Stops the current connection and keeps the supplicant from connecting on its own until a
    /// network is selected (`DISCONNECT`).
    fn disconnect(&mut self) -> Result<(), CtrlError>;
    /// Subscribes to events.
    fn attach(&mut self) -> Result<(), CtrlError>;
    /// Connects to this network only; the others are disabled (`SELECT_NETWORK ID`).
    fn select_network(&mut self, id: u32) -> Result<(), CtrlError>;
    /// Returns the next event, waiting at most `timeout`.
    fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, CtrlError>;
}

/// A wpa_supplicant interface reached over its control socket.
pub struct Supplicant {
    control: ControlSocket,
}

impl Supplicant {
    /// Connects to the supplicant of `ifname` in `ctrl_dir` and checks that it replies.
    pub fn open(
        ctrl_dir: &Path,
        ifname: &str,
        options: &ClientOptions,
    ) -> Result<Supplicant, CtrlError> {
        let mut control = ControlSocket::open(ctrl_dir, ifname, options)?;
        let reply = control.request("PING")?;
        if reply.trim() != "PONG" {
            return Err(CtrlError::Protocol {
                command: String::from("PING"),
                detail: format!("expected PONG, got '{}'", reply.trim()),
            });
        }
        Ok(Supplicant { control })
    }

    /// Wraps a connected socket without checking it.
    pub fn from_socket(control: ControlSocket) -> Supplicant {
        Supplicant { control }
    }

    /// Returns the control socket, for commands this type does not wrap.
    pub fn control(&mut self) -> &mut ControlSocket {
        &mut self.control
    }

    /// Changes a global setting (`SET NAME VALUE`).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), CtrlError> {
        self.control.request_ok(&format!("SET {name} {value}"))
    }

    /// Changes a network's setting (`SET_NETWORK ID NAME VALUE`).
    pub fn set_network(&mut self, id: u32, name: &str, value: &str) -> Result<(), CtrlError> {
        self.control
            .request_ok(&format!("SET_NETWORK {id} {name} {value}"))
    }

    /// Enables or disables the kernel's random source address for every kind of scan
    /// (`MAC_RAND_SCAN all enable=N`). A driver without `NL80211_FEATURE_SCAN_RANDOM_MAC_ADDR`
    /// makes the supplicant reply `FAIL`.
    pub fn set_scan_randomization(&mut self, enable: bool) -> Result<(), CtrlError> {
        let value = u8::from(enable);
        self.control
            .request_ok(&format!("MAC_RAND_SCAN all enable={value}"))
    }

    /// Starts a scan (`SCAN`).
    pub fn scan(&mut self) -> Result<(), CtrlError> {
        self.control.request_ok("SCAN")
    }

    /// Starts a scan whose results contain only the access points it receives: `BSS_FLUSH 0` empties
    /// the supplicant's list (but for the one in use), and `only_new=1` makes cfg80211 drop
    /// its cached entries (`NL80211_SCAN_FLAG_FLUSH`). Without both, the results also list
    /// access points seen up to 30 s earlier (cfg80211's cache) or in the supplicant's
    /// previous scans, which may be gone.
    pub fn scan_fresh(&mut self) -> Result<(), CtrlError> {
        if let Err(err) = self.control.request_ok("BSS_FLUSH 0") {
            log::debug!("BSS_FLUSH failed: {err}; older access points may stay listed");
        }
        self.control.request_ok("SCAN only_new=1")
    }

    /// Returns the access points of the last scan (`SCAN_RESULTS`).
    pub fn scan_results(&mut self) -> Result<Vec<ScanResult>, CtrlError> {
        let reply = self.control.request("SCAN_RESULTS")?;
        parse_scan_results(&reply).map_err(|detail| CtrlError::Protocol {
            command: String::from("SCAN_RESULTS"),
            detail,
        })
    }

    /// Disables a network (`DISABLE_NETWORK ID`).
    pub fn disable_network(&mut self, id: u32) -> Result<(), CtrlError> {
        self.control.request_ok(&format!("DISABLE_NETWORK {id}"))
    }
}

impl SupplicantOps for Supplicant {
    fn get(&mut self, name: &str) -> Result<String, CtrlError> {
        Ok(self
            .control
            .request(&format!("GET {name}"))?
            .trim()
            .to_string())
    }

    fn get_network(&mut self, id: u32, name: &str) -> Result<String, CtrlError> {
        Ok(self
            .control
            .request(&format!("GET_NETWORK {id} {name}"))?
            .trim()
            .to_string())
    }

    fn list_networks(&mut self) -> Result<Vec<NetworkEntry>, CtrlError> {
        let reply = self.control.request("LIST_NETWORKS")?;
        parse_network_list(&reply).map_err(|detail| CtrlError::Protocol {
            command: String::from("LIST_NETWORKS"),
            detail,
        })
    }

    fn status(&mut self) -> Result<Status, CtrlError> {
        Ok(Status::parse(&self.control.request("STATUS")?))
    }

    fn disconnect(&mut self) -> Result<(), CtrlError> {
        self.control.request_ok("DISCONNECT")
    }

    fn attach(&mut self) -> Result<(), CtrlError> {
        self.control.attach()
    }

    fn select_network(&mut self, id: u32) -> Result<(), CtrlError> {
        self.control.request_ok(&format!("SELECT_NETWORK {id}"))
    }

    fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, CtrlError> {
        self.control.next_event(timeout)
    }
}

/// Parses a `LIST_NETWORKS` reply: a header line, then `id<TAB>ssid<TAB>bssid<TAB>flags` per
/// network, with the SSID escaped as wpa_supplicant's `printf_encode()` does.
pub fn parse_network_list(reply: &str) -> Result<Vec<NetworkEntry>, String> {
    let mut networks = Vec::new();
    for line in reply.lines().skip(1) {
        if line.is_empty() {
            continue;
        }
        let mut columns = line.split('\t');
        let id = columns.next().unwrap_or("");
        let id: u32 = id
            .parse()
            .map_err(|_| format!("invalid network id '{id}' in line '{line}'"))?;
        let ssid = decode_printf_escaped(columns.next().unwrap_or(""));
        let _bssid = columns.next();
        let flags = columns.next().unwrap_or("").to_string();
        networks.push(NetworkEntry { id, ssid, flags });
    }
    Ok(networks)
}

/// Parses a `SCAN_RESULTS` reply: a header line, then
/// `bssid<TAB>frequency<TAB>signal<TAB>flags<TAB>ssid` per access point, with the SSID escaped as
/// `printf_encode()` does (`wpa_ssid_txt()` in wpa_supplicant 2.10).
pub fn parse_scan_results(reply: &str) -> Result<Vec<ScanResult>, String> {
    let mut results = Vec::new();
    for line in reply.lines().skip(1) {
        if line.is_empty() {
            continue;
        }
        let columns: Vec<&str> = line.splitn(5, '\t').collect();
        let [bssid, frequency, signal, flags, ssid] = columns[..] else {
            return Err(format!("expected 5 columns in line '{line}'"));
        };
        let bssid = bssid
            .parse()
            .map_err(|_| format!("invalid BSSID '{bssid}' in line '{line}'"))?;
        let frequency = frequency
            .parse()
            .map_err(|_| format!("invalid frequency '{frequency}' in line '{line}'"))?;
        let signal = signal
            .parse()
            .map_err(|_| format!("invalid signal level '{signal}' in line '{line}'"))?;
        results.push(ScanResult {
            bssid,
            frequency,
            signal,
            flags: flags.to_string(),
            ssid: decode_printf_escaped(ssid),
        });
    }
    Ok(results)
}

/// Decodes a `GET_NETWORK ID ssid` reply: a quoted string (`"home"`) or hexadecimal bytes.
pub fn decode_network_ssid(reply: &str) -> Option<Vec<u8>> {
    let reply = reply.trim();
    if let Some(quoted) = reply
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        return Some(quoted.as_bytes().to_vec());
    }
    if reply.len() % 2 != 0 || reply.is_empty() {
        return None;
    }
    (0..reply.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(reply.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Reverses wpa_supplicant's `printf_encode()`: `\\`, `\"`, `\n`, `\r`, `\t`, `\e` and `\xNN`.
/// An unknown escape keeps its characters.
pub fn decode_printf_escaped(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 >= bytes.len() {
            decoded.push(bytes[i]);
            i += 1;
            continue;
        }
        let escaped = bytes[i + 1];
        let simple = match escaped {
            b'\\' => Some(b'\\'),
            b'"' => Some(b'"'),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'e' => Some(0x1b),
            _ => None,
        };
        if let Some(byte) = simple {
            decoded.push(byte);
            i += 2;
            continue;
        }
        let hex = (escaped == b'x')
            .then(|| text.get(i + 2..i + 4))
            .flatten()
            .and_then(|digits| u8::from_str_radix(digits, 16).ok());
        match hex {
            Some(byte) => {
                decoded.push(byte);
                i += 4;
            }
            None => {
                decoded.push(b'\\');
                i += 1;
            }
        }
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::super::ctrl::fake::{Answer, FakeServer};
    use super::*;

    const LIST: &str = "network id / ssid / bssid / flags\n\
                        0\thome\tany\t[CURRENT]\n\
                        1\tcaf\\xc3\\xa9 \\\"x\\\"\tany\t[DISABLED]\n";

    #[test]
    fn network_list_parsed() {
        let networks = parse_network_list(LIST).unwrap();
        assert_eq!(networks.len(), 2);
        assert_eq!(networks[0].id, 0);
        assert_eq!(networks[0].ssid, b"home");
        assert!(!networks[0].is_disabled());
        assert_eq!(networks[1].id, 1);
        assert_eq!(networks[1].ssid, "café \"x\"".as_bytes());
        assert!(networks[1].is_disabled());
    }

    #[test]
    fn scan_results_parsed() {
        let reply = "bssid / frequency / signal level / flags / ssid\n\
                     02:00:00:00:01:00\t2412\t-30\t[ESS]\thome\n\
                     02:00:00:00:02:00\t5180\t-71\t[WPA2-PSK-CCMP][ESS]\tcaf\\xc3\\xa9\\tx\n";
        let results = parse_scan_results(reply).unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].bssid, "02:00:00:00:01:00".parse().unwrap());
        assert_eq!(results[0].frequency, 2412);
        assert_eq!(results[0].signal, -30);
        assert_eq!(results[0].ssid, b"home");
        assert_eq!(results[1].flags, "[WPA2-PSK-CCMP][ESS]");
        // printf_encode() escapes a tab in the SSID as `\t`.
        assert_eq!(results[1].ssid, "café\tx".as_bytes());
    }

    #[test]
    fn scan_results_reject_bad_line() {
        let err = parse_scan_results("header\n02:00:00:00:01:00\t2412\n").unwrap_err();
        assert!(err.contains("5 columns"), "{err}");
        let err = parse_scan_results("header\n02:00:00:00:01:00\tx\t-1\t\thome\n").unwrap_err();
        assert!(err.contains("frequency 'x'"), "{err}");
    }

    #[test]
    fn p2p_persistent_group_flagged() {
        let networks = parse_network_list(
            "header\n0\thome\tany\t\n1\tDIRECT-ab\tany\t[DISABLED][P2P-PERSISTENT]\n",
        )
        .unwrap();
        assert!(!networks[0].is_p2p_persistent());
        assert!(networks[1].is_p2p_persistent());
    }

    #[test]
    fn network_list_rejects_bad_id() {
        let err = parse_network_list("header\nx\thome\tany\t\n").unwrap_err();
        assert!(err.contains("'x'"), "{err}");
    }

    #[test]
    fn printf_escapes_decoded() {
        assert_eq!(decode_printf_escaped("a\\\\b"), b"a\\b");
        assert_eq!(decode_printf_escaped("\\n\\r\\t\\e"), b"\n\r\t\x1b");
        assert_eq!(decode_printf_escaped("\\x00\\xff"), [0u8, 0xff]);
        // A truncated or unknown escape is kept as it is.
        assert_eq!(decode_printf_escaped("\\x4"), b"\\x4");
        assert_eq!(decode_printf_escaped("\\q"), b"\\q");
        assert_eq!(decode_printf_escaped("end\\"), b"end\\");
    }

    #[test]
    fn network_ssid_quoted_or_hex() {
        assert_eq!(decode_network_ssid("\"home\"\n"), Some(b"home".to_vec()));
        assert_eq!(decode_network_ssid("686f6d65"), Some(b"home".to_vec()));
        assert_eq!(decode_network_ssid("00ff"), Some(vec![0, 0xff]));
        assert_eq!(decode_network_ssid("abc"), None);
        assert_eq!(decode_network_ssid("zz"), None);
        assert_eq!(decode_network_ssid(""), None);
    }

    #[test]
    fn status_fields_typed() {
        let status = Status::parse(
            "bssid=02:00:00:00:01:00\nfreq=2412\nssid=lab\nid=0\nwpa_state=COMPLETED\n\
             p2p_device_address=42:00:00:00:00:00\naddress=02:aa:bb:cc:dd:ee\n\
             uuid=362db47b-a53a-5191-88fb-5458b986b2e4\n",
        );
        assert!(status.is_completed());
        assert_eq!(status.address(), Some("02:aa:bb:cc:dd:ee".parse().unwrap()));
        assert_eq!(status.bssid(), Some("02:00:00:00:01:00".parse().unwrap()));
        assert_eq!(status.network_id(), Some(0));
        assert_eq!(
            status.wps_uuid(),
            Some("362db47b-a53a-5191-88fb-5458b986b2e4")
        );
        assert_eq!(
            status.p2p_device_address(),
            Some("42:00:00:00:00:00".parse().unwrap())
        );
        assert_eq!(Status::parse("").wpa_state(), "UNKNOWN");
    }

    #[test]
    fn supplicant_commands_on_the_wire() {
        let server = FakeServer::start(|command| match command {
            "PING" => Answer::reply("PONG\n"),
            "GET mac_addr" => Answer::reply("0\n"),
            "GET_NETWORK 0 ssid" => Answer::reply("\"home\"\n"),
            "LIST_NETWORKS" => Answer::reply(LIST),
            "STATUS" => Answer::reply("wpa_state=DISCONNECTED\naddress=02:00:00:00:00:00\n"),
            "MAC_RAND_SCAN all enable=1"
            | "SET gas_rand_mac_addr 1"
            | "SET_NETWORK 0 mac_addr 0"
            | "DISCONNECT"
            | "SELECT_NETWORK 0"
            | "DISABLE_NETWORK 1"
            | "SCAN" => Answer::reply("OK\n"),
            _ => Answer::reply("UNKNOWN COMMAND\n"),
        });
        let local = tempfile::tempdir().unwrap();
        let options = ClientOptions {
            parent_dir: Some(local.path().to_path_buf()),
            timeout: Duration::from_secs(2),
        };
        let mut supplicant = Supplicant::open(server.dir.path(), "wlan0", &options).unwrap();

        assert_eq!(supplicant.get("mac_addr").unwrap(), "0");
        assert_eq!(supplicant.get_network(0, "ssid").unwrap(), "\"home\"");
        assert_eq!(supplicant.list_networks().unwrap().len(), 2);
        assert_eq!(supplicant.status().unwrap().wpa_state(), "DISCONNECTED");
        supplicant.set_scan_randomization(true).unwrap();
        supplicant.set("gas_rand_mac_addr", "1").unwrap();
        supplicant.set_network(0, "mac_addr", "0").unwrap();
        supplicant.disconnect().unwrap();
        supplicant.select_network(0).unwrap();
        supplicant.disable_network(1).unwrap();
        supplicant.scan().unwrap();
        let err = supplicant.set("rand_addr_lifetime", "30").unwrap_err();
        assert!(matches!(err, CtrlError::UnknownCommand { .. }), "{err}");

        assert_eq!(
            server.commands(),
            vec![
                "PING",
                "GET mac_addr",
                "GET_NETWORK 0 ssid",
                "LIST_NETWORKS",
                "STATUS",
                "MAC_RAND_SCAN all enable=1",
                "SET gas_rand_mac_addr 1",
                "SET_NETWORK 0 mac_addr 0",
                "DISCONNECT",
                "SELECT_NETWORK 0",
                "DISABLE_NETWORK 1",
                "SCAN",
                "SET rand_addr_lifetime 30",
            ]
        );
    }

    #[test]
    fn open_requires_pong() {
        let server = FakeServer::start(|_| Answer::reply("hello\n"));
        let local = tempfile::tempdir().unwrap();
        let options = ClientOptions {
            parent_dir: Some(local.path().to_path_buf()),
            timeout: Duration::from_secs(2),
        };
        let err = Supplicant::open(server.dir.path(), "wlan0", &options)
            .err()
            .unwrap();
        assert!(matches!(err, CtrlError::Protocol { .. }), "{err}");
    }
}
