//! NetworkManager connection profiles for the lab, written as keyfiles (`.nmconnection`).
//!
//! A profile is a list of (section, key, value) settings rendered in the GLib key file format
//! that NetworkManager's keyfile plugin reads. Nothing here checks that NetworkManager accepts a
//! key: loading the profile does.

use super::random_uuid;

/// Panics unless `id` can be both a profile name and the keyfile's name.
fn check_id(id: &str) {
    assert!(
        !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
        "profile id {id:?} must be non-empty and use only ASCII letters, digits, '-', '_' and \
         '.', because it is also the keyfile's name"
    );
}

/// Escapes a value for a GLib key file, the format of NetworkManager's keyfile profiles.
fn escape_keyfile_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for (index, character) in value.chars().enumerate() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            ' ' if index == 0 => escaped.push_str("\\s"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// A NetworkManager connection profile, written as a keyfile (`.nmconnection`).
#[derive(Debug, Clone)]
pub struct NmProfile {
    /// `connection.id`, kept apart because it also names the keyfile.
    id: String,
    /// `connection.uuid`, kept apart because tests activate the profile by it.
    uuid: String,
    /// Settings in keyfile order: (section, key, value).
    settings: Vec<(String, String, String)>,
}

impl NmProfile {
    /// Creates an Ethernet profile bound to `ifname`, with a new UUID, no autoconnect and IPv4 and IPv6
    /// disabled, so that activation needs neither DHCP nor router advertisements.
    pub fn ethernet(id: &str, ifname: &str) -> NmProfile {
        let profile = NmProfile {
            id: String::new(),
            uuid: String::new(),
            settings: Vec::new(),
        };
        profile
            .set("connection", "id", id)
            .set("connection", "uuid", &random_uuid())
            .set("connection", "type", "ethernet")
            .set("connection", "interface-name", ifname)
            .set("connection", "autoconnect", "false")
            .set("ipv4", "method", "disabled")
            .set("ipv6", "method", "disabled")
    }

    /// Returns the profile name (`connection.id`), which is also the keyfile's name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Returns the profile UUID (`connection.uuid`), which `${CONNECTION}` expands to.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// Sets `section.key` to `value`, replacing an earlier value of the same key.
    ///
    /// Setting `connection.id` or `connection.uuid` also changes what `id()` or `uuid()` returns.
    pub fn set(mut self, section: &str, key: &str, value: &str) -> NmProfile {
        match (section, key) {
            ("connection", "id") => {
                check_id(value);
                self.id = value.to_owned();
            }
            ("connection", "uuid") => self.uuid = value.to_owned(),
            _ => {}
        }

        let existing = self
            .settings
            .iter_mut()
            .find(|(s, k, _)| s == section && k == key);
        match existing {
            Some(setting) => setting.2 = value.to_owned(),
            None => {
                self.settings
                    .push((section.to_owned(), key.to_owned(), value.to_owned()));
            }
        }
        self
    }

    /// Renders the profile as keyfile text, with sections in the order they were first set.
    pub fn to_keyfile(&self) -> String {
        let mut sections: Vec<&str> = Vec::new();
        for (section, _, _) in &self.settings {
            if !sections.contains(&section.as_str()) {
                sections.push(section);
            }
        }

        let mut text = String::new();
        for section in sections {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&format!("[{section}]\n"));
            for (_, key, value) in self.settings.iter().filter(|(s, _, _)| s == section) {
                text.push_str(&format!("{key}={}\n", escape_keyfile_value(value)));
            }
        }
        text
    }
}
