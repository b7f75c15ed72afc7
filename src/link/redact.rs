//! Hiding a link's permanent or reference address in text meant for users and logs.
//!
//! Redacting the hardware address alone is not enough: an IPv6 address whose interface
//! identifier is the modified EUI-64 of that address (RFC 4291 appendix A) contains all 48 bits
//! of it. This module masks both forms. It does not decide which address to hide; the caller
//! passes the link's permanent or reference address.

use std::net::Ipv6Addr;

use super::ipv6;
use crate::addr::MacAddr;

/// Formats `ip` with the three device octets of its EUI-64 interface identifier hidden
/// (`fe80::54fc:aff:fexx:xxxx`), which matches [`MacAddr::redacted`]: the vendor prefix stays.
pub fn redacted_ipv6(ip: &Ipv6Addr) -> String {
    let text = ip.to_string();

    // The last two groups are `feXX:XXXX`. The EUI-64 identifier puts 0xfe in front of the
    // fourth octet, so the seventh group is never zero, and a lone zero eighth group is printed
    // as `0` because `::` only replaces two or more zero groups (RFC 5952 section 4.2.2).
    let mut groups = text.rsplitn(3, ':');
    let _last = groups.next();
    let _seventh = groups.next();
    match groups.next() {
        Some(prefix) => format!("{prefix}:fexx:xxxx"),
        None => String::from("xxxx::xxxx"),
    }
}

/// Formats `address` in full, or redacted when it is `hidden` and `reveal` is false.
pub fn mac(address: MacAddr, hidden: Option<MacAddr>, reveal: bool) -> String {
    if !reveal && hidden == Some(address) {
        address.redacted()
    } else {
        address.to_string()
    }
}

/// Formats `ip` in full, or redacted when it is derived from `hidden` and `reveal` is false.
pub fn ip(ip: &Ipv6Addr, hidden: Option<MacAddr>, reveal: bool) -> String {
    match hidden {
        Some(hidden) if !reveal && ipv6::is_derived_from(ip, hidden) => redacted_ipv6(ip),
        _ => ip.to_string(),
    }
}

/// Returns `text` with every occurrence of `hidden`, and of every IPv6 address derived from
/// it, redacted. Addresses are found as runs of hexadecimal digits and colons, so they are
/// recognized in the forms `Display` prints (`aa:bb:cc:dd:ee:ff`, RFC 5952 IPv6 text) and in
/// upper case.
pub fn text(text: &str, hidden: Option<MacAddr>) -> String {
    let Some(hidden) = hidden else {
        return text.to_string();
    };
    let is_address_char = |c: char| c.is_ascii_hexdigit() || c == ':';

    let mut output = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(is_address_char) {
        output.push_str(&rest[..start]);
        let run = &rest[start..];
        let end = run.find(|c| !is_address_char(c)).unwrap_or(run.len());
        let (token, after) = run.split_at(end);

        // A colon that ends a token is punctuation ("fe80::1: failed"), not part of it.
        let address = token.trim_end_matches(':');
        let punctuation = &token[address.len()..];
        output.push_str(&redact_token(address, hidden));
        output.push_str(punctuation);
        rest = after;
    }
    output.push_str(rest);
    output
}

fn redact_token(token: &str, hidden: MacAddr) -> String {
    if token.contains(':') {
        if let Ok(address) = token.parse::<MacAddr>() {
            if address == hidden {
                return address.redacted();
            }
        }
        if let Ok(ip) = token.parse::<Ipv6Addr>() {
            if ipv6::is_derived_from(&ip, hidden) {
                return redacted_ipv6(&ip);
            }
        }
    }
    token.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hidden() -> MacAddr {
        "56:fc:0a:b3:96:99".parse().unwrap()
    }

    #[test]
    fn redacted_ipv6_hides_device_octets() {
        let link_local = ipv6::link_local(hidden());
        assert_eq!(link_local.to_string(), "fe80::54fc:aff:feb3:9699");
        assert_eq!(redacted_ipv6(&link_local), "fe80::54fc:aff:fexx:xxxx");

        let global: Ipv6Addr = "2001:db8::54fc:aff:feb3:9699".parse().unwrap();
        assert_eq!(redacted_ipv6(&global), "2001:db8::54fc:aff:fexx:xxxx");

        let zero_ending = ipv6::link_local("02:00:00:00:00:00".parse().unwrap());
        assert_eq!(zero_ending.to_string(), "fe80::ff:fe00:0");
        assert_eq!(redacted_ipv6(&zero_ending), "fe80::ff:fexx:xxxx");
    }

    #[test]
    fn ip_redacts_only_derived_addresses() {
        let derived = ipv6::link_local(hidden());
        let other = ipv6::link_local("02:11:22:33:44:55".parse().unwrap());
        assert_eq!(
            ip(&derived, Some(hidden()), false),
            "fe80::54fc:aff:fexx:xxxx"
        );
        assert_eq!(ip(&derived, Some(hidden()), true), derived.to_string());
        assert_eq!(ip(&other, Some(hidden()), false), other.to_string());
        assert_eq!(ip(&derived, None, false), derived.to_string());
    }

    #[test]
    fn text_redacts_mac_and_derived_ipv6() {
        let message = "eth0 (index 2): could not remove fe80::54fc:aff:feb3:9699: EBUSY; \
                       56:FC:0A:B3:96:99 is still set, 02:11:22:33:44:55 was requested, \
                       address 2001:db8::54fc:aff:feb3:9699/64 and fe80::1 stay";
        let redacted = text(message, Some(hidden()));
        assert_eq!(
            redacted,
            "eth0 (index 2): could not remove fe80::54fc:aff:fexx:xxxx: EBUSY; \
             56:fc:0a:xx:xx:xx is still set, 02:11:22:33:44:55 was requested, \
             address 2001:db8::54fc:aff:fexx:xxxx/64 and fe80::1 stay"
        );
        assert_eq!(text(message, None), message);
    }
}
