//! NetworkManager's device specs, the value of `match-device=`: which links a section applies
//! to.
//!
//! The forms and their evaluation follow `nm_match_spec_split` and `nm_match_spec_device` in
//! NetworkManager's `src/core/nm-core-utils.c` and the "Device List Format" appendix of
//! NetworkManager.conf(5):
//! - Entries are separated by `,` or `;`. Whitespace around an entry is dropped. A backslash
//!   escapes `,` and `;`, and `\s \n \t \r \\` work as in a key file. Any other backslash
//!   sequence is kept as written.
//! - `*` matches every link. `interface-name:GLOB` and `interface-name:~GLOB` match the name
//!   with `*` and `?` wildcards, and `interface-name:=NAME` matches it literally. `mac:ADDR`
//!   matches the permanent address. `type:TYPE` matches NetworkManager's device type name.
//!   `driver:NAME` matches the driver, and `driver:NAME/VERSION` adds a glob on the driver
//!   version. `dhcp-plugin:NAME` matches `[main] dhcp`. `s390-subchannels:` never matches
//!   here. A bare word matches the interface name or the permanent address.
//! - `except:SPEC` excludes the links that SPEC matches, and SPEC must carry one of the tags
//!   above. A list that only has `except:` entries matches every link that none of them
//!   matches. Otherwise a link matches when a plain entry matches it and no `except:` entry
//!   does.
//!
//! One deliberate difference: NetworkManager compares the `NAME` of `driver:NAME/VERSION` as
//! a prefix of the driver, so `driver:e1000/*` also matches `e1000e`. Its manual page says the
//! name must match exactly, and that is what this module does.
//!
//! Evaluation never fails. An entry that can never match (a malformed `mac:` address, an
//! untagged `except:`, an s390 entry) is kept, and [`MatchList::problems`] describes it so
//! that the loader can warn.

use std::fmt;

use super::keyfile::is_glib_space;
use crate::addr::MacAddr;

/// A parsed `match-device=` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchList {
    entries: Vec<MatchEntry>,
}

/// One entry of a device spec list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchEntry {
    /// Whether the entry was written `except:SPEC`.
    pub except: bool,
    /// The form of the entry.
    pub spec: Spec,
}

/// The form of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// `*`: every link.
    All,
    /// `interface-name:GLOB`, `interface-name:~GLOB` or, when `glob` is false,
    /// `interface-name:=NAME`.
    InterfaceName {
        /// The name or pattern.
        pattern: String,
        /// Whether `*` and `?` are wildcards.
        glob: bool,
    },
    /// `mac:ADDR`: the permanent address.
    Mac(MacAddr),
    /// `type:TYPE`: NetworkManager's device type name (`ethernet`, `wifi`, `veth`, ...).
    Type(String),
    /// `driver:NAME` or `driver:NAME/VERSION`.
    Driver {
        /// The driver name, matched exactly.
        name: String,
        /// A glob on the driver version, when a `/` was given.
        version: Option<String>,
    },
    /// `dhcp-plugin:NAME`: NetworkManager's `[main] dhcp` setting.
    DhcpPlugin(String),
    /// A bare word: the interface name or, when it parses as one, the permanent address.
    Bare(String),
    /// An entry that can never match, with the reason.
    Never {
        /// The entry as written, without `except:`.
        text: String,
        /// The reason it cannot match.
        reason: NeverReason,
    },
}

/// The reason an entry can never match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeverReason {
    /// `mac:` is followed by something that is not an address.
    InvalidMac,
    /// `except:` is followed by an untagged word, which NetworkManager never matches.
    UntaggedExcept,
    /// `s390-subchannels:` describes s390 channel devices, which macveil does not read.
    S390,
}

/// The properties of a link that a device spec compares.
#[derive(Debug, Clone, Copy)]
pub struct MatchSubject<'a> {
    /// The interface name.
    pub interface_name: &'a str,
    /// NetworkManager's device type name.
    pub device_type: &'a str,
    /// The driver name, when known.
    pub driver: Option<&'a str>,
    /// The driver version, when known.
    pub driver_version: Option<&'a str>,
    /// The address `mac:` compares with: the permanent address, or the current one when the
    /// permanent address is unknown.
    pub hwaddr: Option<MacAddr>,
    /// NetworkManager's `[main] dhcp` value.
    pub dhcp_plugin: &'a str,
}

const TAG_INTERFACE_NAME: &str = "interface-name:";
const TAG_MAC: &str = "mac:";
const TAG_TYPE: &str = "type:";
const TAG_DRIVER: &str = "driver:";
const TAG_DHCP_PLUGIN: &str = "dhcp-plugin:";
const TAG_S390: &str = "s390-subchannels:";
const TAG_EXCEPT: &str = "except:";

impl MatchList {
    /// Parses a raw `match-device=` value (escapes not yet decoded).
    pub fn parse(raw: &str) -> MatchList {
        let entries = split(raw)
            .into_iter()
            .map(|text| parse_entry(&text))
            .collect();
        MatchList { entries }
    }

    /// The parsed entries.
    pub fn entries(&self) -> &[MatchEntry] {
        &self.entries
    }

    /// Whether the list matches the link, as `nm_match_spec_device` returns
    /// `NM_MATCH_SPEC_MATCH`. An empty list matches nothing.
    pub fn matches(&self, subject: &MatchSubject<'_>) -> bool {
        let mut has_except = false;
        let mut has_plain = false;
        let mut matched_plain = false;
        let mut matched_except = false;

        for entry in &self.entries {
            if entry.except {
                has_except = true;
                matched_except = matched_except || entry.spec.matches(subject);
            } else {
                has_plain = true;
                matched_plain = matched_plain || entry.spec.matches(subject);
            }
        }

        if has_except && !has_plain {
            return !matched_except;
        }
        matched_plain && !matched_except
    }

    /// Describes every entry that can never match, every untagged word that reads like a
    /// misspelt tag, and an empty list, which disables its section.
    pub fn problems(&self) -> Vec<String> {
        if self.entries.is_empty() {
            return vec![String::from(
                "match-device is empty, so it matches no link and the section never applies",
            )];
        }
        self.entries
            .iter()
            .filter_map(|entry| match &entry.spec {
                Spec::Never { text, reason } => Some(reason.describe(text, entry.except)),
                Spec::Bare(word) if looks_like_unknown_tag(word) => Some(format!(
                    "match-device entry '{word}' has no known tag, so it is compared with the \
                     interface name as written; the tags are interface-name:, mac:, type:, \
                     driver:, dhcp-plugin: and except:"
                )),
                _ => None,
            })
            .collect()
    }
}

impl NeverReason {
    fn describe(self, text: &str, except: bool) -> String {
        let shown = if except {
            format!("except:{text}")
        } else {
            text.to_string()
        };
        match self {
            NeverReason::InvalidMac => format!(
                "match-device entry '{shown}' never matches: the text after mac: is not a \
                 hardware address such as 3c:22:fb:01:02:03"
            ),
            NeverReason::UntaggedExcept => format!(
                "match-device entry '{shown}' never matches: except: needs a tagged entry such \
                 as except:interface-name:{text}"
            ),
            NeverReason::S390 => format!(
                "match-device entry '{shown}' never matches: macveil does not read s390 \
                 subchannels"
            ),
        }
    }
}

impl Spec {
    fn matches(&self, subject: &MatchSubject<'_>) -> bool {
        match self {
            Spec::All => true,
            Spec::InterfaceName { pattern, glob } => {
                pattern == subject.interface_name
                    || (*glob && glob_match(pattern, subject.interface_name))
            }
            Spec::Mac(addr) => subject.hwaddr == Some(*addr),
            Spec::Type(name) => name == subject.device_type,
            Spec::Driver { name, version } => {
                if subject.driver != Some(name.as_str()) {
                    return false;
                }
                match version {
                    None => true,
                    Some(pattern) => glob_match(pattern, subject.driver_version.unwrap_or("")),
                }
            }
            Spec::DhcpPlugin(name) => name == subject.dhcp_plugin,
            Spec::Bare(word) => {
                word == subject.interface_name
                    || word
                        .parse::<MacAddr>()
                        .is_ok_and(|addr| subject.hwaddr == Some(addr))
            }
            Spec::Never { .. } => false,
        }
    }
}

fn parse_entry(text: &str) -> MatchEntry {
    let (except, body) = match text.strip_prefix(TAG_EXCEPT) {
        Some(body) => (true, body),
        None => (false, text),
    };
    MatchEntry {
        except,
        spec: parse_spec(body, except),
    }
}

fn parse_spec(body: &str, except: bool) -> Spec {
    if body == "*" {
        return Spec::All;
    }
    if let Some(rest) = body.strip_prefix(TAG_INTERFACE_NAME) {
        return match rest.strip_prefix('=') {
            Some(name) => Spec::InterfaceName {
                pattern: name.to_string(),
                glob: false,
            },
            None => Spec::InterfaceName {
                pattern: rest.strip_prefix('~').unwrap_or(rest).to_string(),
                glob: true,
            },
        };
    }
    if let Some(rest) = body.strip_prefix(TAG_MAC) {
        return match rest.parse::<MacAddr>() {
            Ok(addr) => Spec::Mac(addr),
            Err(_) => never(body, NeverReason::InvalidMac),
        };
    }
    if let Some(rest) = body.strip_prefix(TAG_TYPE) {
        return Spec::Type(rest.to_string());
    }
    if let Some(rest) = body.strip_prefix(TAG_DRIVER) {
        return match rest.rsplit_once('/') {
            Some((name, version)) => Spec::Driver {
                name: name.to_string(),
                version: Some(version.to_string()),
            },
            None => Spec::Driver {
                name: rest.to_string(),
                version: None,
            },
        };
    }
    if let Some(rest) = body.strip_prefix(TAG_DHCP_PLUGIN) {
        return Spec::DhcpPlugin(rest.to_string());
    }
    if body.starts_with(TAG_S390) {
        return never(body, NeverReason::S390);
    }

    // NetworkManager tries an untagged word as a name or an address, and only in plain
    // entries: "except:eth0" never matches.
    if except {
        return never(body, NeverReason::UntaggedExcept);
    }
    Spec::Bare(body.to_string())
}

fn never(text: &str, reason: NeverReason) -> Spec {
    Spec::Never {
        text: text.to_string(),
        reason,
    }
}

/// Whether an untagged word reads like `word:rest` with a tag NetworkManager does not know,
/// such as a misspelt `interface_name:eth0`. NetworkManager still compares such a word with the
/// interface name, so it is only worth a warning. A hardware address also contains colons, so a
/// word that parses as one is not a tag.
fn looks_like_unknown_tag(body: &str) -> bool {
    let Some((tag, _)) = body.split_once(':') else {
        return false;
    };
    let tag_like = tag.len() > 2
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && tag
            .chars()
            .any(|c| c.is_ascii_alphabetic() && !c.is_ascii_hexdigit());
    tag_like && body.parse::<MacAddr>().is_err()
}

/// Splits a device spec list as `nm_match_spec_split` does.
pub fn split(raw: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    // Unescaped whitespace at the end of `current`, which is dropped if the entry ends there.
    let mut trailing_space = 0usize;
    let mut chars = raw.trim_start_matches(is_glib_space).chars().peekable();

    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('s') => current.push(' '),
                Some('n') => current.push('\n'),
                Some('t') => current.push('\t'),
                Some('r') => current.push('\r'),
                Some('\\') => current.push('\\'),
                Some(separator @ (',' | ';')) => current.push(separator),
                Some(other) => {
                    current.push('\\');
                    current.push(other);
                }
                None => break,
            }
            trailing_space = 0;
        } else if c == ',' || c == ';' {
            push_piece(&mut pieces, &mut current, trailing_space);
            trailing_space = 0;
            while chars.peek().is_some_and(|&next| is_glib_space(next)) {
                chars.next();
            }
        } else {
            current.push(c);
            if is_glib_space(c) {
                trailing_space += 1;
            } else {
                trailing_space = 0;
            }
        }
    }
    push_piece(&mut pieces, &mut current, trailing_space);
    pieces
}

fn push_piece(pieces: &mut Vec<String>, current: &mut String, trailing_space: usize) {
    let keep = current.chars().count() - trailing_space;
    let piece: String = current.chars().take(keep).collect();
    if !piece.is_empty() {
        pieces.push(piece);
    }
    current.clear();
}

/// Joins entries into one `match-device=` value that [`split`] turns back into the same
/// entries, escaping separators, backslashes and whitespace at either end.
pub fn join(entries: &[String]) -> String {
    let mut out = String::new();
    for entry in entries.iter().filter(|entry| !entry.is_empty()) {
        if !out.is_empty() {
            out.push(',');
        }
        let chars: Vec<char> = entry.chars().collect();
        let first_kept = chars.iter().position(|&c| !is_glib_space(c));
        let last_kept = chars.iter().rposition(|&c| !is_glib_space(c));
        for (index, &c) in chars.iter().enumerate() {
            let at_edge = first_kept.is_none_or(|first| index < first)
                || last_kept.is_none_or(|last| index > last);
            match c {
                ',' | ';' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                ' ' if at_edge => out.push_str("\\s"),
                '\t' if at_edge => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                _ => out.push(c),
            }
        }
    }
    out
}

/// GLib's `g_pattern_match_simple`: `*` matches any run of characters, `?` one character, and
/// there is no escaping or character class.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();

    let (mut p, mut t) = (0usize, 0usize);
    // Where the last '*' was, and the text position it has consumed up to.
    let mut star: Option<(usize, usize)> = None;

    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

impl fmt::Display for MatchEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.except {
            f.write_str(TAG_EXCEPT)?;
        }
        match &self.spec {
            Spec::All => f.write_str("*"),
            Spec::InterfaceName {
                pattern,
                glob: true,
            } => write!(f, "{TAG_INTERFACE_NAME}{pattern}"),
            Spec::InterfaceName {
                pattern,
                glob: false,
            } => write!(f, "{TAG_INTERFACE_NAME}={pattern}"),
            Spec::Mac(addr) => write!(f, "{TAG_MAC}{addr}"),
            Spec::Type(name) => write!(f, "{TAG_TYPE}{name}"),
            Spec::Driver {
                name,
                version: None,
            } => write!(f, "{TAG_DRIVER}{name}"),
            Spec::Driver {
                name,
                version: Some(version),
            } => write!(f, "{TAG_DRIVER}{name}/{version}"),
            Spec::DhcpPlugin(name) => write!(f, "{TAG_DHCP_PLUGIN}{name}"),
            Spec::Bare(word) => f.write_str(word),
            Spec::Never { text, .. } => f.write_str(text),
        }
    }
}

impl fmt::Display for MatchList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self.entries.iter().map(ToString::to_string).collect();
        f.write_str(&shown.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject<'a>(name: &'a str, device_type: &'a str) -> MatchSubject<'a> {
        MatchSubject {
            interface_name: name,
            device_type,
            driver: Some("e1000e"),
            driver_version: Some("5.15.0-k"),
            hwaddr: Some("3c:22:fb:01:02:03".parse().unwrap()),
            dhcp_plugin: "internal",
        }
    }

    fn matches(list: &str, subject: &MatchSubject<'_>) -> bool {
        MatchList::parse(list).matches(subject)
    }

    #[test]
    fn split_separators_and_whitespace() {
        assert_eq!(split(" a , b;c ;; d "), ["a", "b", "c", "d"]);
        assert_eq!(split(""), Vec::<String>::new());
        assert_eq!(split("  "), Vec::<String>::new());
        assert_eq!(split("a b"), ["a b"]);
    }

    #[test]
    fn split_escapes() {
        assert_eq!(split(r"a\,b;c\;d"), ["a,b", "c;d"]);
        assert_eq!(split(r"\sa\s,b"), [" a ", "b"]);
        assert_eq!(split(r"a\\b"), [r"a\b"]);
        assert_eq!(split(r"a\tb\n"), ["a\tb\n"]);
        // Unknown sequences are kept; a lone trailing backslash is dropped.
        assert_eq!(split(r"a\qb"), [r"a\qb"]);
        assert_eq!(split(r"ab\"), ["ab"]);
    }

    #[test]
    fn join_round_trips_through_split() {
        let entries: Vec<String> = ["a,b", " lead", "trail\t", r"back\slash", "in side", "x;y"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let joined = join(&entries);
        assert_eq!(split(&joined), entries, "{joined}");
    }

    proptest::proptest! {
        #[test]
        fn join_then_split_round_trips(entries in proptest::collection::vec("[ -~\t]{1,12}", 0..6)) {
            // split drops entries that are empty after trimming, so compare with those gone.
            let kept: Vec<String> = entries
                .into_iter()
                .filter(|entry| !entry.trim_matches(is_glib_space).is_empty())
                .collect();
            let joined = join(&kept);
            proptest::prop_assert_eq!(split(&joined), kept, "{}", joined);
        }
    }

    #[test]
    fn star_matches_everything() {
        assert!(matches("*", &subject("eth0", "ethernet")));
        assert!(matches("*", &subject("lo", "loopback")));
    }

    #[test]
    fn interface_name_forms() {
        let eth0 = subject("eth0", "ethernet");
        assert!(matches("interface-name:eth0", &eth0));
        assert!(matches("interface-name:eth*", &eth0));
        assert!(matches("interface-name:~eth?", &eth0));
        assert!(matches("interface-name:=eth0", &eth0));
        assert!(!matches("interface-name:=eth*", &eth0));
        assert!(!matches("interface-name:wlan*", &eth0));
        assert!(!matches("interface-name:Eth0", &eth0));

        let literal_star = subject("eth*", "ethernet");
        assert!(matches("interface-name:=eth*", &literal_star));
    }

    #[test]
    fn mac_form_matches_permanent_address() {
        let link = subject("eth0", "ethernet");
        assert!(matches("mac:3c:22:fb:01:02:03", &link));
        assert!(matches("mac:3C-22-FB-01-02-03", &link));
        assert!(!matches("mac:3c:22:fb:01:02:04", &link));
        let mut unknown = link;
        unknown.hwaddr = None;
        assert!(!matches("mac:3c:22:fb:01:02:03", &unknown));
    }

    #[test]
    fn type_form_is_exact() {
        assert!(matches("type:wifi", &subject("wlan0", "wifi")));
        assert!(!matches("type:wifi", &subject("eth0", "ethernet")));
        assert!(!matches("type:wi*", &subject("wlan0", "wifi")));
    }

    #[test]
    fn driver_forms() {
        let link = subject("eth0", "ethernet");
        assert!(matches("driver:e1000e", &link));
        assert!(!matches("driver:e1000", &link));
        assert!(matches("driver:e1000e/5.15*", &link));
        assert!(matches("driver:e1000e/*", &link));
        assert!(!matches("driver:e1000e/4.*", &link));
        assert!(!matches("driver:e1000/*", &link));

        let mut no_driver = link;
        no_driver.driver = None;
        assert!(!matches("driver:e1000e", &no_driver));

        let mut no_version = link;
        no_version.driver_version = None;
        assert!(matches("driver:e1000e/*", &no_version));
        assert!(!matches("driver:e1000e/5*", &no_version));
    }

    #[test]
    fn dhcp_plugin_form() {
        assert!(matches(
            "dhcp-plugin:internal",
            &subject("eth0", "ethernet")
        ));
        assert!(!matches(
            "dhcp-plugin:dhclient",
            &subject("eth0", "ethernet")
        ));
    }

    #[test]
    fn bare_word_matches_name_or_address() {
        let link = subject("eth0", "ethernet");
        assert!(matches("eth0", &link));
        assert!(!matches("eth*", &link));
        assert!(matches("3c:22:fb:01:02:03", &link));
        assert!(!matches("wlan0", &link));
    }

    #[test]
    fn except_interface_name() {
        let list = "interface-name:eth*,except:interface-name:eth1";
        assert!(matches(list, &subject("eth0", "ethernet")));
        assert!(!matches(list, &subject("eth1", "ethernet")));
        assert!(!matches(list, &subject("wlan0", "wifi")));
    }

    #[test]
    fn except_mac_type_driver() {
        let link = subject("eth0", "ethernet");
        assert!(!matches("*,except:mac:3c:22:fb:01:02:03", &link));
        assert!(matches("*,except:mac:3c:22:fb:01:02:04", &link));
        assert!(!matches("*,except:type:ethernet", &link));
        assert!(matches("*,except:type:wifi", &link));
        assert!(!matches("*;except:driver:e1000e", &link));
        assert!(matches("*;except:driver:iwlwifi", &link));
        assert!(!matches("*,except:dhcp-plugin:internal", &link));
    }

    #[test]
    fn except_only_list_matches_the_rest() {
        let list = "except:interface-name:eth0";
        assert!(!matches(list, &subject("eth0", "ethernet")));
        assert!(matches(list, &subject("wlan0", "wifi")));
    }

    #[test]
    fn except_wins_over_plain_entries() {
        let list = "except:type:veth,interface-name:veth0";
        assert!(!matches(list, &subject("veth0", "veth")));
    }

    #[test]
    fn untagged_except_never_matches() {
        let list = MatchList::parse("except:eth0");
        assert!(list.matches(&subject("eth0", "ethernet")));
        let problems = list.problems();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("except:interface-name:eth0"),
            "{problems:?}"
        );
    }

    #[test]
    fn empty_list_matches_nothing() {
        let list = MatchList::parse("");
        assert!(!list.matches(&subject("eth0", "ethernet")));
        assert_eq!(list.problems().len(), 1);
    }

    #[test]
    fn malformed_entries_are_reported() {
        let list = MatchList::parse("mac:zz:zz,interface_name:eth0,s390-subchannels:0.0.1");
        assert!(!list.matches(&subject("eth0", "ethernet")));
        let problems = list.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("mac:zz:zz"), "{problems:?}");
        assert!(problems[1].contains("no known tag"), "{problems:?}");
        assert!(problems[2].contains("s390"), "{problems:?}");
    }

    #[test]
    fn address_is_not_an_unknown_tag() {
        let list = MatchList::parse("aa:bb:cc:dd:ee:ff,de:ad:be:ef:00:01");
        assert!(list.problems().is_empty());
    }

    #[test]
    fn glob_follows_glib() {
        assert!(glob_match("*", ""));
        assert!(glob_match("eth*", "eth"));
        assert!(glob_match("e*h*0", "eth10"));
        assert!(glob_match("?th0", "eth0"));
        assert!(!glob_match("?th0", "th0"));
        assert!(glob_match("*0", "eth0"));
        assert!(!glob_match("eth", "eth0"));
        assert!(glob_match("w*n?", "wlan0"));
        assert!(glob_match("[a]", "[a]"));
        assert!(!glob_match("[a]", "a"));
        assert!(glob_match("é?", "éé"));
    }

    #[test]
    fn display_shows_canonical_entries() {
        let list = MatchList::parse("interface-name:~eth*, except:mac:3C-22-FB-01-02-03,*");
        assert_eq!(
            list.to_string(),
            "interface-name:eth*,except:mac:3c:22:fb:01:02:03,*"
        );
    }
}
