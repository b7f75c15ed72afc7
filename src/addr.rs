//! The hardware address model: parsing, printing and the bit rules of IEEE 802 MAC addresses.
//!
//! This module has no notion of links or generators. It only decides what an address is and
//! whether a link may be given it.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// An IEEE 802 48-bit hardware address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

/// The I/G bit of the first octet: set on group (multicast and broadcast) addresses.
pub const GROUP_BIT: u8 = 0x01;

/// The U/L bit of the first octet: set on locally administered addresses.
pub const LOCAL_BIT: u8 = 0x02;

/// Errors from parsing or validating a hardware address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// The text is not in any of the accepted notations.
    #[error(
        "invalid hardware address '{text}': expected six hexadecimal octets such as \
         02:1a:2b:3c:4d:5e, 02-1A-2B-3C-4D-5E, 021a.2b3c.4d5e or 021a2b3c4d5e"
    )]
    Syntax {
        /// The rejected text.
        text: String,
    },

    /// The address has the group (multicast) bit set, so no link can use it as its own.
    #[error(
        "{addr} is a group (multicast) address: bit 0 of the first octet (0x01) is set, and a \
         link cannot use it as its own address; clear that bit, for example {corrected} (with \
         the locally administered bit set, as in every address macveil makes)"
    )]
    Group {
        /// The rejected address.
        addr: MacAddr,
        /// The same address with the group bit cleared and the locally administered bit set.
        corrected: MacAddr,
    },

    /// The address is 00:00:00:00:00:00.
    #[error(
        "00:00:00:00:00:00 is not a usable link address; give a unicast address such as \
         02:00:00:00:00:01, or use a generator (--random)"
    )]
    Zero,

    /// The address is ff:ff:ff:ff:ff:ff.
    #[error(
        "ff:ff:ff:ff:ff:ff is the broadcast address and cannot be assigned to a link; give a \
         unicast address such as fe:ff:ff:ff:ff:ff"
    )]
    Broadcast,
}

impl MacAddr {
    /// The all-zero address, which the kernel reports for links that have no address.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The broadcast address.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// Returns the six octets.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Builds an address from a byte slice, which must be exactly six bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<MacAddr> {
        let octets: [u8; 6] = bytes.try_into().ok()?;
        Some(MacAddr(octets))
    }

    /// Returns whether the I/G bit is set (multicast or broadcast).
    pub fn is_group(&self) -> bool {
        self.0[0] & GROUP_BIT != 0
    }

    /// Returns whether the U/L bit is set (locally administered, not vendor-assigned).
    pub fn is_local(&self) -> bool {
        self.0[0] & LOCAL_BIT != 0
    }

    /// Returns whether every octet is zero.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// Returns whether this is ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        self.0 == [0xff; 6]
    }

    /// Returns the 24-bit organizationally unique identifier, the first three octets.
    pub fn oui(&self) -> [u8; 3] {
        [self.0[0], self.0[1], self.0[2]]
    }

    /// Checks that a link may be given this address: not a group address, not zero, not
    /// broadcast. The kernel rejects such addresses with EADDRNOTAVAIL ("Cannot assign
    /// requested address"); checking first gives the user a message that names the bit.
    pub fn validate_assignable(&self) -> Result<(), AddrError> {
        if self.is_zero() {
            return Err(AddrError::Zero);
        }
        if self.is_broadcast() {
            return Err(AddrError::Broadcast);
        }
        if self.is_group() {
            let mut corrected = *self;
            corrected.0[0] = (corrected.0[0] & !GROUP_BIT) | LOCAL_BIT;
            return Err(AddrError::Group {
                addr: *self,
                corrected,
            });
        }
        Ok(())
    }

    /// Parses an address that the user wants to assign to a link, rejecting group, zero and
    /// broadcast addresses before anything reaches the kernel.
    pub fn parse_assignable(text: &str) -> Result<MacAddr, AddrError> {
        let addr: MacAddr = text.parse()?;
        addr.validate_assignable()?;
        Ok(addr)
    }

    /// Formats the address with the last three octets hidden (`3c:22:fb:xx:xx:xx`), for logs
    /// that must not identify the hardware.
    pub fn redacted(&self) -> String {
        format!(
            "{:02x}:{:02x}:{:02x}:xx:xx:xx",
            self.0[0], self.0[1], self.0[2]
        )
    }
}

/// A vendor block: the first `bits` bits of an address (24 for MA-L, 28 for MA-M, 36 for MA-S).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct MacPrefix {
    /// The prefix bits, with every bit past `bits` zero.
    pub addr: MacAddr,
    /// The prefix length in bits, at most 48.
    pub bits: u8,
}

impl MacPrefix {
    /// Builds a prefix from an address, clearing every bit past `bits`.
    pub fn new(addr: MacAddr, bits: u8) -> MacPrefix {
        assert!(bits <= 48, "a MAC prefix has at most 48 bits, not {bits}");
        let mut octets = addr.0;
        for (i, octet) in octets.iter_mut().enumerate() {
            *octet &= prefix_mask_octet(bits, i);
        }
        MacPrefix {
            addr: MacAddr(octets),
            bits,
        }
    }

    /// Returns whether `addr` starts with this prefix.
    pub fn contains(&self, addr: &MacAddr) -> bool {
        (0..6).all(|i| addr.0[i] & prefix_mask_octet(self.bits, i) == self.addr.0[i])
    }

    /// Combines the prefix bits with the remaining bits of `rest`.
    pub fn fill(&self, rest: [u8; 6]) -> MacAddr {
        let mut octets = [0u8; 6];
        for (i, octet) in octets.iter_mut().enumerate() {
            let mask = prefix_mask_octet(self.bits, i);
            *octet = (self.addr.0[i] & mask) | (rest[i] & !mask);
        }
        MacAddr(octets)
    }
}

impl fmt::Display for MacPrefix {
    /// Prints the octets the prefix covers, then the length: `00:1b:63/24`, `70:b3:d5:1e:00/36`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let octets = usize::from(self.bits).div_ceil(8);
        let shown: Vec<String> = self.addr.0[..octets]
            .iter()
            .map(|o| format!("{o:02x}"))
            .collect();
        write!(f, "{}/{}", shown.join(":"), self.bits)
    }
}

/// Returns the bits of octet `index` that a prefix of `bits` bits covers.
fn prefix_mask_octet(bits: u8, index: usize) -> u8 {
    let start = index * 8;
    let bits = usize::from(bits);
    if bits >= start + 8 {
        0xff
    } else if bits <= start {
        0
    } else {
        0xffu8 << (8 - (bits - start))
    }
}

/// Decodes exactly `out.len() * 2` hexadecimal digits into `out`.
fn decode_hex(digits: &str, out: &mut [u8]) -> Option<()> {
    if digits.len() != out.len() * 2 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&digits[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(())
}

/// Decodes `groups` equally long hexadecimal groups separated by `separator`.
fn decode_groups(text: &str, separator: char, groups: usize) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split(separator).collect();
    if parts.len() != groups {
        return None;
    }
    let bytes_per_group = 6 / groups;
    let mut octets = [0u8; 6];
    for (i, part) in parts.iter().enumerate() {
        let slot = &mut octets[i * bytes_per_group..(i + 1) * bytes_per_group];
        decode_hex(part, slot)?;
    }
    Some(octets)
}

impl FromStr for MacAddr {
    type Err = AddrError;

    /// Parses `aa:bb:cc:dd:ee:ff`, `AA-BB-CC-DD-EE-FF`, `aabb.ccdd.eeff` or `aabbccddeeff`, in
    /// any case.
    fn from_str(text: &str) -> Result<MacAddr, AddrError> {
        let trimmed = text.trim();
        let octets = if trimmed.contains(':') {
            decode_groups(trimmed, ':', 6)
        } else if trimmed.contains('-') {
            decode_groups(trimmed, '-', 6)
        } else if trimmed.contains('.') {
            decode_groups(trimmed, '.', 3)
        } else {
            let mut octets = [0u8; 6];
            decode_hex(trimmed, &mut octets).map(|()| octets)
        };
        octets.map(MacAddr).ok_or_else(|| AddrError::Syntax {
            text: text.to_string(),
        })
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_every_notation() {
        let expected = MacAddr([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
        for text in [
            "aa:bb:cc:dd:ee:ff",
            "AA:BB:CC:DD:EE:FF",
            "AA-BB-CC-DD-EE-FF",
            "aa-bb-cc-dd-ee-ff",
            "aabb.ccdd.eeff",
            "AABB.CCDD.EEFF",
            "aabbccddeeff",
            "AaBbCcDdEeFf",
            " aa:bb:cc:dd:ee:ff\n",
        ] {
            assert_eq!(text.parse::<MacAddr>(), Ok(expected), "input {text:?}");
        }
    }

    #[test]
    fn parse_rejects_malformed_text() {
        for text in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "a:bb:cc:dd:ee:ff",
            "aa:bb:cc:dd:ee:fg",
            "aa-bb:cc-dd:ee-ff",
            "aabb.ccdd",
            "aabbccddeef",
            "aabbccddeeff0",
            "+a:bb:cc:dd:ee:ff",
        ] {
            assert!(
                matches!(text.parse::<MacAddr>(), Err(AddrError::Syntax { .. })),
                "input {text:?} was accepted"
            );
        }
    }

    #[test]
    fn display_is_lower_case_colon_form() {
        let addr: MacAddr = "AABB.CCDD.EEFF".parse().unwrap();
        assert_eq!(addr.to_string(), "aa:bb:cc:dd:ee:ff");
    }

    #[test]
    fn predicates_follow_first_octet_bits() {
        let group: MacAddr = "03:19:6c:04:26:53".parse().unwrap();
        assert!(group.is_group());
        assert!(group.is_local());

        let universal: MacAddr = "3c:22:fb:01:02:03".parse().unwrap();
        assert!(!universal.is_group());
        assert!(!universal.is_local());

        assert!(MacAddr::ZERO.is_zero());
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_group());
    }

    #[test]
    fn assignable_rejects_reported_group_addresses() {
        for text in ["03:19:6c:04:26:53", "33:11:33:33:33:77"] {
            let err = MacAddr::parse_assignable(text).unwrap_err();
            assert!(matches!(err, AddrError::Group { .. }), "{text}: {err}");
            let message = err.to_string();
            assert!(message.contains("group"), "{message}");
            assert!(message.contains("0x01"), "{message}");
        }
        let err = MacAddr::parse_assignable("33:11:33:33:33:77").unwrap_err();
        assert!(err.to_string().contains("32:11:33:33:33:77"), "{err}");
    }

    #[test]
    fn assignable_rejects_zero_and_broadcast() {
        assert_eq!(
            MacAddr::parse_assignable("00:00:00:00:00:00"),
            Err(AddrError::Zero)
        );
        assert_eq!(
            MacAddr::parse_assignable("ff:ff:ff:ff:ff:ff"),
            Err(AddrError::Broadcast)
        );
    }

    #[test]
    fn assignable_accepts_unicast() {
        assert!(MacAddr::parse_assignable("02:00:00:00:00:01").is_ok());
        assert!(MacAddr::parse_assignable("3c:22:fb:01:02:03").is_ok());
    }

    #[test]
    fn redacted_hides_device_octets() {
        let addr: MacAddr = "3c:22:fb:01:02:03".parse().unwrap();
        assert_eq!(addr.redacted(), "3c:22:fb:xx:xx:xx");
    }

    #[test]
    fn prefix_contains_and_fills() {
        let base: MacAddr = "70:b3:d5:1e:0f:ff".parse().unwrap();
        let prefix = MacPrefix::new(base, 36);
        assert_eq!(prefix.addr.to_string(), "70:b3:d5:1e:00:00");
        assert_eq!(prefix.to_string(), "70:b3:d5:1e:00/36");
        assert!(prefix.contains(&"70:b3:d5:1e:0a:bc".parse().unwrap()));
        assert!(!prefix.contains(&"70:b3:d5:1e:1a:bc".parse().unwrap()));
        let filled = prefix.fill([0xff; 6]);
        assert_eq!(filled.to_string(), "70:b3:d5:1e:0f:ff");
    }
}
