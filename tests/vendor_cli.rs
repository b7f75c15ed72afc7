//! Runs the built `macveil` binary for `vendor`, `gen --vendor` and `--version`.
//!
//! The binary picks its registry as `Registry::load` does in this process (the embedded table, or
//! a newer `/usr/share/ieee-data`), so expected values come from `Registry::load` too.

use std::process::{Command, Output};

use macveil::MacAddr;
use macveil::vendor::Registry;

fn macveil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_macveil"))
        .args(args)
        .env_remove("MACVEIL_LOG")
        .output()
        .expect("failed to run the macveil binary")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn addr(text: &str) -> MacAddr {
    text.parse().unwrap()
}

#[test]
fn vendor_address_prints_name_and_block() {
    let output = macveil(&["vendor", "3c:22:fb:01:02:03"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let expected = Registry::load();
    let vendor = expected.lookup(&addr("3c:22:fb:01:02:03")).unwrap();
    let text = stdout(&output);
    assert!(text.contains(&format!("vendor: {}", vendor.name)), "{text}");
    assert!(
        text.contains("3c:22:fb/24 (MA-L, 16777216 addresses)"),
        "{text}"
    );
}

#[test]
fn vendor_address_in_small_block() {
    let output = macveil(&["vendor", "70-B3-D5-F2-F0-01"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("70:b3:d5:f2:f0/36 (MA-S, 4096 addresses)"),
        "{text}"
    );
}

#[test]
fn vendor_local_address_has_none() {
    let output = macveil(&["vendor", "02:11:22:33:44:55"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("locally administered"), "{text}");
    assert!(text.contains("no vendor applies"), "{text}");
}

#[test]
fn vendor_unregistered_address_exits_1() {
    // Finds a universally administered 24-bit prefix that the registry does not list.
    let registry = Registry::load();
    let unregistered = (0u32..0x40_0000)
        .map(|i| {
            let value = i << 2; // keeps the group and local bits of the first octet clear
            MacAddr([
                (value >> 16) as u8,
                (value >> 8) as u8,
                value as u8,
                0,
                0,
                1,
            ])
        })
        .find(|candidate| registry.lookup(candidate).is_none())
        .expect("the registry leaves some 24-bit prefix unassigned");

    let output = macveil(&["vendor", &unregistered.to_string()]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("no vendor is registered"), "{text}");
}

#[test]
fn vendor_group_address_uses_its_oui() {
    let output = macveil(&["vendor", "01:80:c2:00:00:0e"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("group (multicast) address"), "{text}");
    assert!(text.contains("00:80:c2/24"), "{text}");
}

#[test]
fn vendor_rejects_invalid_address() {
    let output = macveil(&["vendor", "3c:22:fb:01:02"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("invalid hardware address"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn vendor_json_lookup() {
    let output = macveil(&["vendor", "--json", "00:50:c2:7d:50:01"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["address"], "00:50:c2:7d:50:01");
    assert_eq!(value["group"], false);
    assert_eq!(value["locally_administered"], false);
    assert_eq!(value["vendor"]["prefix"], "00:50:c2:7d:50/36");
    assert_eq!(value["vendor"]["registry"], "IAB");
    assert_eq!(value["vendor"]["prefix_bits"], 36);
    assert_eq!(value["vendor"]["block_size"], 4096);
    assert!(value["vendor"]["name"].as_str().unwrap().contains("DEUTA"));
}

#[test]
fn vendor_json_local_address() {
    let output = macveil(&["vendor", "--json", "06:00:00:00:00:01"]);
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["locally_administered"], true);
    assert!(value["vendor"].is_null());
}

#[test]
fn vendor_search_lists_every_matching_block() {
    let output = macveil(&["vendor", "--search", "TelePlatforms"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let registry = Registry::load();
    let expected: Vec<String> = registry
        .search("teleplatforms")
        .iter()
        .map(|v| format!("{}\t{}\t{}", v.prefix, v.registry, v.name))
        .collect();
    let lines: Vec<String> = stdout(&output).lines().map(str::to_string).collect();
    assert!(!lines.is_empty());
    assert_eq!(lines, expected);
}

#[test]
fn vendor_search_without_match_exits_1() {
    let output = macveil(&["vendor", "--search", "no such vendor xyzzy"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    assert!(
        stderr(&output).contains("'no such vendor xyzzy'"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn vendor_search_json() {
    let output = macveil(&["vendor", "--search", "apple", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let blocks = value.as_array().unwrap();
    assert_eq!(blocks.len(), Registry::load().search("apple").len());
    for block in blocks {
        let name = block["name"].as_str().unwrap();
        assert!(name.to_lowercase().contains("apple"), "{name}");
        let bits = block["prefix_bits"].as_u64().unwrap();
        assert!([24, 28, 36].contains(&bits), "{block}");
        assert!(
            block["prefix"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/{bits}")),
            "{block}"
        );
    }
}

#[test]
fn vendor_search_json_closed_stdout_exits_0() {
    use std::io::Read;
    use std::process::Stdio;

    // The list is far larger than a pipe buffer (64 KiB), so the writes after the reader
    // closes its end fail with EPIPE, as with `| head -c100`.
    let mut child = Command::new(env!("CARGO_BIN_EXE_macveil"))
        .args(["vendor", "--search", "e", "--json"])
        .env_remove("MACVEIL_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("failed to run the macveil binary");
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 100];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);

    let output = child.wait_with_output().unwrap();
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{message}");
    assert!(!message.contains("Broken pipe"), "{message}");
}

#[test]
fn gen_vendor_filter_picks_matching_vendor() {
    let output = macveil(&["gen", "--vendor", "Apple", "--count", "50"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let registry = Registry::load();
    let text = stdout(&output);
    let addresses: Vec<MacAddr> = text.lines().map(addr).collect();
    assert_eq!(addresses.len(), 50);
    for address in addresses {
        assert!(!address.is_group(), "{address}");
        let vendor = registry
            .lookup(&address)
            .unwrap_or_else(|| panic!("{address} has no vendor"));
        assert!(
            vendor.name.to_lowercase().contains("apple"),
            "{address}: {}",
            vendor.name
        );
    }
}

#[test]
fn gen_vendor_without_filter_picks_any_vendor() {
    let output = macveil(&["gen", "--vendor", "--count", "50", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let registry = Registry::load();
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for item in value.as_array().unwrap() {
        let address = addr(item["address"].as_str().unwrap());
        assert!(!address.is_group(), "{address}");
        assert!(!address.is_local(), "{address}");
        assert!(
            registry.lookup(&address).is_some(),
            "{address} has no vendor"
        );
    }
}

#[test]
fn gen_vendor_unknown_filter_exits_2() {
    let output = macveil(&["gen", "--vendor", "no such vendor xyzzy"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stdout(&output), "");
    let message = stderr(&output);
    assert!(message.contains("'no such vendor xyzzy'"), "{message}");
    assert!(message.contains("macveil vendor --search"), "{message}");
}

#[test]
fn version_names_registry_source() {
    let output = macveil(&["--version"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    let source = Registry::load().source();
    assert!(
        text.contains(&format!("vendor registry: {source}")),
        "{text}"
    );
    assert!(
        text.contains(&Registry::load().date().to_string()),
        "{text}"
    );
}
