//! Findings from the links themselves: a link that is up with a hardware identity, IPv6
//! addresses built from one, and links whose IPv6 address generation would build one.
//!
//! A hardware identity is a link's permanent address, or the reference address recorded before
//! macveil first changed a link without one (kept by `macveil show` and `set` in
//! `/run/macveil/references.json`). A link up with its own
//! identity exposes it, and so does a link up with another link's: a bridge takes the address
//! of a port, and VLAN, macvlan and bond links copy their parent's.
//!
//! IPv6 with `addr_gen_mode` 0 (`IN6_ADDR_GEN_MODE_EUI64`) makes the interface identifier of the
//! link-local and SLAAC addresses the modified EUI-64 of the link's address (RFC 4291,
//! appendix A). An address built while the link had its hardware address keeps that address in
//! its last 64 bits, even after the link's address changes.
//!
//! This module judges facts it is given; it reads nothing.

use std::net::Ipv6Addr;

use super::{Finding, Severity};
use crate::addr::MacAddr;

/// `IN6_ADDR_GEN_MODE_EUI64` (`IFLA_INET6_ADDR_GEN_MODE`).
const ADDR_GEN_MODE_EUI64: u8 = 0;

/// The facts about one link that the link checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// The interface name.
    pub name: String,
    /// A short name of the link's kind, for messages.
    pub kind: String,
    /// Whether the link is administratively up (`IFF_UP`).
    pub up: bool,
    /// The current address.
    pub address: Option<MacAddr>,
    /// The permanent (hardware) address, when the link has one.
    pub permanent: Option<MacAddr>,
    /// The reference address recorded before macveil first changed the link. Only a link that
    /// macveil's policy manages has one, because only such a link has an identity to hide.
    pub reference: Option<MacAddr>,
    /// `IFLA_INET6_ADDR_GEN_MODE`; none when IPv6 is off for the link.
    pub addr_gen_mode: Option<u8>,
    /// Whether the link's address identifies the machine: it has a permanent address, or
    /// macveil's policy manages it.
    pub carries_identity: bool,
    /// The IPv6 addresses on the link.
    pub ipv6: Vec<Ipv6Addr>,
}

/// A hardware identity and the link it belongs to.
struct Identity<'a> {
    owner: &'a str,
    address: MacAddr,
    what: &'static str,
}

/// Lists the hardware identities of all links.
fn identities(links: &[LinkState]) -> Vec<Identity<'_>> {
    let mut found = Vec::new();
    for link in links {
        if let Some(permanent) = link.permanent {
            found.push(Identity {
                owner: &link.name,
                address: permanent,
                what: "permanent address",
            });
        }
        if let Some(reference) = link.reference
            && link.carries_identity
            && Some(reference) != link.permanent
        {
            found.push(Identity {
                owner: &link.name,
                address: reference,
                what: "reference address (its address before macveil first changed it)",
            });
        }
    }
    found
}

/// Returns the modified EUI-64 interface identifier of `mac` (RFC 4291, appendix A): the
/// universal/local bit flipped and `ff:fe` inserted in the middle.
pub fn eui64_interface_id(mac: MacAddr) -> [u8; 8] {
    let o = mac.octets();
    [o[0] ^ 0x02, o[1], o[2], 0xff, 0xfe, o[3], o[4], o[5]]
}

/// Checks every link against every hardware identity.
pub fn check_links(links: &[LinkState]) -> Vec<Finding> {
    let identities = identities(links);
    let mut findings = Vec::new();

    for link in links {
        findings.extend(address_finding(link, &identities));
        findings.extend(ipv6_findings(link, &identities));
        findings.extend(addr_gen_finding(link, &identities));
    }
    findings
}

/// Reports a link that is up with a hardware identity.
fn address_finding(link: &LinkState, identities: &[Identity<'_>]) -> Option<Finding> {
    if !link.up {
        return None;
    }
    let address = link.address?;
    let identity = identities
        .iter()
        .find(|identity| identity.owner == link.name && identity.address == address)
        .or_else(|| {
            identities
                .iter()
                .find(|identity| identity.address == address)
        })?;
    let own = identity.owner == link.name;

    let (code, leak, fix) = if own {
        (
            if identity.what == "permanent address" {
                "link-permanent-address"
            } else {
                "link-reference-address"
            },
            format!(
                "{} ({}) is up with its {} {}",
                link.name,
                link.kind,
                identity.what,
                address.redacted()
            ),
            format!(
                "give it another address: 'macveil set {} --random' (add --cycle for a driver \
                 that rejects changes while the link is up), and keep the macveil daemon \
                 running so that it stays replaced",
                link.name
            ),
        )
    } else {
        (
            "link-copied-address",
            format!(
                "{} ({}) is up with the {} of {} ({}), which it copied",
                link.name,
                link.kind,
                identity.what,
                identity.owner,
                address.redacted()
            ),
            format!(
                "give {} its own address ('macveil set {} --random'), and replace the address \
                 of {} before {} is created or its ports are added",
                link.name, link.name, identity.owner, link.name
            ),
        )
    };
    Some(Finding {
        code,
        severity: Severity::High,
        subject: link.name.clone(),
        location: None,
        leak,
        reason: String::from(
            "every frame the link sends carries the address, and it identifies this machine on \
             every network",
        ),
        fix,
    })
}

/// Reports IPv6 addresses whose interface identifier is the EUI-64 of a hardware identity.
fn ipv6_findings(link: &LinkState, identities: &[Identity<'_>]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for ip in &link.ipv6 {
        let interface_id: [u8; 8] = ip.octets()[8..].try_into().expect("8 bytes");
        let Some(identity) = identities
            .iter()
            .find(|identity| eui64_interface_id(identity.address) == interface_id)
        else {
            continue;
        };
        let whose = if identity.owner == link.name {
            format!("its {}", identity.what)
        } else {
            format!("the {} of {}", identity.what, identity.owner)
        };
        findings.push(Finding {
            code: "ipv6-eui64-address",
            severity: Severity::High,
            subject: link.name.clone(),
            location: None,
            leak: format!(
                "{} has the IPv6 address {}, whose last 64 bits are {whose}",
                link.name,
                redact_interface_id(ip)
            ),
            reason: String::from(
                "the address travels in every IPv6 packet, and a global one reaches every host \
                 the machine talks to",
            ),
            fix: format!(
                "remove it ('ip -6 address del ADDRESS dev {}'); 'macveil set' removes such \
                 addresses when it replaces a hardware address",
                link.name
            ),
        });
    }
    findings
}

/// Formats an IPv6 address with its interface identifier hidden, as logs hide permanent
/// addresses: the prefix and the first three bytes of the identifier stay.
fn redact_interface_id(ip: &Ipv6Addr) -> String {
    let segments = ip.segments();
    format!(
        "{:x}:{:x}:{:x}:{:x}:{:x}:{:02x}xx:xxxx:xxxx",
        segments[0],
        segments[1],
        segments[2],
        segments[3],
        segments[4],
        segments[5] >> 8
    )
}

/// Reports a link with a hardware identity whose IPv6 addresses would be built from its
/// address (`addr_gen_mode` 0, EUI-64).
fn addr_gen_finding(link: &LinkState, identities: &[Identity<'_>]) -> Option<Finding> {
    if link.addr_gen_mode != Some(ADDR_GEN_MODE_EUI64) || !link.carries_identity {
        return None;
    }
    let hardware = link.address.is_some_and(|address| {
        identities
            .iter()
            .any(|identity| identity.address == address)
    });
    let (severity, reason) = if hardware {
        (
            Severity::Medium,
            "the link has a hardware identity as its address, so its IPv6 addresses would \
             carry it in their last 64 bits, to every host the machine talks to",
        )
    } else {
        (
            Severity::Low,
            "global IPv6 addresses would carry the link's address to every host the machine \
             talks to, beyond the local network",
        )
    };
    Some(Finding {
        code: "ipv6-addr-gen-eui64",
        severity,
        subject: link.name.clone(),
        location: None,
        leak: format!(
            "the kernel builds the IPv6 addresses of {} from its link address \
             (addr_gen_mode=0, EUI-64)",
            link.name
        ),
        reason: String::from(reason),
        fix: format!(
            "use random interface identifiers: 'sysctl -w net.ipv6.conf.{}.addr_gen_mode=3' \
             (add it to /etc/sysctl.d to keep it), or stable-privacy (2) with a stable_secret",
            link.name
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(text: &str) -> MacAddr {
        text.parse().unwrap()
    }

    fn nic(name: &str, permanent: &str, current: &str) -> LinkState {
        LinkState {
            name: name.into(),
            kind: "ethernet".into(),
            up: true,
            address: Some(mac(current)),
            permanent: Some(mac(permanent)),
            reference: None,
            addr_gen_mode: Some(1),
            carries_identity: true,
            ipv6: Vec::new(),
        }
    }

    fn virtual_link(name: &str, current: &str) -> LinkState {
        LinkState {
            name: name.into(),
            kind: "vlan".into(),
            up: true,
            address: Some(mac(current)),
            permanent: None,
            reference: None,
            addr_gen_mode: Some(1),
            carries_identity: false,
            ipv6: Vec::new(),
        }
    }

    fn codes(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|finding| finding.code).collect()
    }

    #[test]
    fn permanent_address_up_is_high() {
        let findings = check_links(&[nic("eth0", "3c:22:fb:01:02:03", "3c:22:fb:01:02:03")]);
        assert_eq!(codes(&findings), ["link-permanent-address"]);
        assert_eq!(findings[0].severity, Severity::High);
        assert!(
            findings[0].leak.contains("3c:22:fb:xx:xx:xx"),
            "{}",
            findings[0].leak
        );
        assert!(
            !findings[0].leak.contains("01:02:03"),
            "{}",
            findings[0].leak
        );
    }

    #[test]
    fn down_or_anonymized_link_is_clean() {
        let mut down = nic("eth0", "3c:22:fb:01:02:03", "3c:22:fb:01:02:03");
        down.up = false;
        let anonymized = nic("eth1", "3c:22:fb:01:02:04", "02:11:22:33:44:55");
        assert!(check_links(&[down, anonymized]).is_empty());
    }

    #[test]
    fn copied_parent_address_is_reported() {
        let parent = nic("eth0", "3c:22:fb:01:02:03", "02:11:22:33:44:55");
        let vlan = virtual_link("eth0.7", "3c:22:fb:01:02:03");
        let findings = check_links(&[parent, vlan]);
        assert_eq!(codes(&findings), ["link-copied-address"]);
        assert_eq!(findings[0].subject, "eth0.7");
        assert!(
            findings[0].leak.contains("permanent address of eth0"),
            "{}",
            findings[0].leak
        );
    }

    #[test]
    fn reference_counts_only_with_identity() {
        let mut managed = virtual_link("veth0", "0a:1b:2c:3d:4e:5f");
        managed.reference = Some(mac("0a:1b:2c:3d:4e:5f"));
        managed.carries_identity = true;
        let findings = check_links(std::slice::from_ref(&managed));
        assert_eq!(codes(&findings), ["link-reference-address"]);

        let mut unmanaged = managed.clone();
        unmanaged.carries_identity = false;
        assert!(check_links(&[unmanaged]).is_empty());

        managed.address = Some(mac("02:99:88:77:66:55"));
        assert!(check_links(&[managed]).is_empty());
    }

    #[test]
    fn eui64_of_permanent_is_found_after_change() {
        let mut eth0 = nic("eth0", "3c:22:fb:01:02:03", "02:11:22:33:44:55");
        eth0.ipv6 = vec![
            "fe80::3e22:fbff:fe01:203".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ];
        let findings = check_links(&[eth0]);
        assert_eq!(codes(&findings), ["ipv6-eui64-address"]);
        assert!(
            findings[0].leak.contains("fe80:0:0:0:3e22:fbxx:xxxx:xxxx"),
            "{}",
            findings[0].leak
        );
        assert!(findings[0].leak.contains("its permanent address"));
    }

    #[test]
    fn eui64_mode_severity_follows_address() {
        let mut exposed = nic("eth0", "3c:22:fb:01:02:03", "3c:22:fb:01:02:03");
        exposed.up = false;
        exposed.addr_gen_mode = Some(0);
        let findings = check_links(&[exposed]);
        assert_eq!(codes(&findings), ["ipv6-addr-gen-eui64"]);
        assert_eq!(findings[0].severity, Severity::Medium);

        let mut anonymized = nic("eth1", "3c:22:fb:01:02:04", "02:11:22:33:44:55");
        anonymized.addr_gen_mode = Some(0);
        let findings = check_links(&[anonymized]);
        assert_eq!(findings[0].severity, Severity::Low);

        let mut other = virtual_link("veth1", "02:11:22:33:44:66");
        other.addr_gen_mode = Some(0);
        assert!(check_links(&[other]).is_empty());
    }

    #[test]
    fn interface_id_flips_local_bit() {
        assert_eq!(
            eui64_interface_id(mac("3c:22:fb:01:02:03")),
            [0x3e, 0x22, 0xfb, 0xff, 0xfe, 0x01, 0x02, 0x03]
        );
    }
}
