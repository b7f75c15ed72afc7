//! Watching NetworkManager's activations, so that `macveil nm install --verify` can check the
//! address each one applies.
//!
//! An activation is identified by its D-Bus object path (`ACTIVE-PATH` in nmcli), which
//! NetworkManager gives anew to every activation, so a profile activated again on the same
//! device has a new path. The state comes from `nmcli -t connection show --active`, polled.
//!
//! This module runs nmcli and changes nothing.

use std::collections::BTreeMap;
use std::process::Command;

use super::version::Programs;

/// One activation NetworkManager reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// The profile's name.
    pub name: String,
    /// The profile's UUID.
    pub uuid: String,
    /// The interface it is active on.
    pub device: String,
    /// The activation's D-Bus object path.
    pub path: String,
    /// `activating`, `activated`, `deactivating`...
    pub state: String,
}

/// Splits one line of nmcli's terse output (`-t`), where fields are separated by `:` and a
/// `:` or `\` inside a value is escaped with a backslash.
pub fn split_terse(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("never empty").push(next);
                }
            }
            ':' => fields.push(String::new()),
            other => fields.last_mut().expect("never empty").push(other),
        }
    }
    fields
}

/// Lists the active connections, keyed by device. An error means nmcli could not report them
/// (NetworkManager is not running, for example).
pub fn activations(programs: &Programs) -> Result<BTreeMap<String, Activation>, String> {
    let output = Command::new(&programs.nmcli)
        .args([
            "-t",
            "-f",
            "NAME,UUID,DEVICE,ACTIVE-PATH,STATE",
            "connection",
            "show",
            "--active",
        ])
        .env("LC_ALL", "C")
        .output()
        .map_err(|err| format!("cannot run {}: {err}", programs.nmcli.display()))?;
    if !output.status.success() {
        return Err(format!(
            "nmcli connection show --active failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(parse_activations(&String::from_utf8_lossy(&output.stdout)))
}

/// Parses the output of [`activations`]' nmcli call.
pub fn parse_activations(text: &str) -> BTreeMap<String, Activation> {
    let mut found = BTreeMap::new();
    for line in text.lines() {
        let fields = split_terse(line);
        let [name, uuid, device, path, state] = fields.as_slice() else {
            continue;
        };
        if device.is_empty() {
            continue;
        }
        found.insert(
            device.clone(),
            Activation {
                name: name.clone(),
                uuid: uuid.to_ascii_lowercase(),
                device: device.clone(),
                path: path.clone(),
                state: state.clone(),
            },
        );
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terse_fields_unescape() {
        assert_eq!(split_terse("a:b\\:c:d\\\\e"), ["a", "b:c", "d\\e"]);
        assert_eq!(split_terse("::"), ["", "", ""]);
    }

    #[test]
    fn activations_are_keyed_by_device() {
        let text = "Wired 1:7A7FC2AB-6B38-4C4C-8B6D-5F1A5E1F6E3A:eth0:\
                    /org/freedesktop/NetworkManager/ActiveConnection/3:activated\n\
                    vpn:11111111-2222-4333-8444-555555555555::/o/4:activated\n\
                    odd line\n";
        let found = parse_activations(text);
        assert_eq!(found.len(), 1);
        let eth0 = &found["eth0"];
        assert_eq!(eth0.name, "Wired 1");
        assert_eq!(eth0.uuid, "7a7fc2ab-6b38-4c4c-8b6d-5f1a5e1f6e3a");
        assert_eq!(
            eth0.path,
            "/org/freedesktop/NetworkManager/ActiveConnection/3"
        );
        assert_eq!(eth0.state, "activated");
    }
}
