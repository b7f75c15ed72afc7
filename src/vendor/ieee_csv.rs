//! The IEEE registry CSV files (`oui.csv`, `mam.csv`, `oui36.csv`, `iab.csv`), as the IEEE
//! publishes them and Debian's `ieee-data` package installs them.
//!
//! Each file starts with the header `Registry,Assignment,Organization Name,Organization Address`.
//! Fields follow RFC 4180: a field in double quotes may contain commas, line breaks and doubled
//! quotes (`""`), and records end with CRLF. Names may contain HTML entities such as `&amp;`.
//!
//! A record that does not parse is skipped and reported. Only a file without the header, or one
//! whose quoted field never ends, is rejected whole.

use std::collections::HashMap;
use std::fmt;

use super::{IeeeRegistry, Vendor, VendorError, is_excluded_prefix, parse_prefix};

/// The organization the IEEE lists for the MA-L blocks it keeps to divide into MA-M, MA-S and
/// IAB blocks. Those MA-L entries name no vendor, so they are left out.
const REGISTRATION_AUTHORITY: &str = "IEEE Registration Authority";

/// Joins the names of a block that the IEEE lists for more than one organization, as
/// `tools/gen-vendor-table` does.
const NAME_SEPARATOR: &str = " / ";

/// A record that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Skipped {
    /// The line on which the record starts.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// The blocks read from one file.
#[derive(Debug, Default)]
pub(super) struct ParsedFile {
    /// The blocks kept, in file order.
    pub vendors: Vec<Vendor>,
    /// The records that did not parse.
    pub skipped: Vec<Skipped>,
    /// The blocks left out on purpose: group or locally administered bit, or the IEEE
    /// Registration Authority's own MA-L blocks.
    pub excluded: usize,
}

/// One CSV record and the line it starts on.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    line: usize,
    fields: Vec<String>,
}

/// Splits CSV text into records. Blank lines are skipped. Returns the line of the opening quote
/// when a quoted field is still open at the end of the text.
fn read_records(text: &str) -> Result<Vec<Record>, usize> {
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut quote_line = 0;
    let mut line = 1;
    let mut record_line = 1;
    let mut chars = text.chars().peekable();

    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            // A quote opens a quoted field only at the start of the field. Elsewhere it is kept
            // as text, as Python's csv module does.
            '"' if field.is_empty() => {
                in_quotes = true;
                quote_line = line;
            }
            ',' => fields.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                push_record(&mut records, record_line, std::mem::take(&mut fields));
                line += 1;
                record_line = line;
            }
            _ => field.push(c),
        }
    }
    if in_quotes {
        return Err(quote_line);
    }
    fields.push(field);
    push_record(&mut records, record_line, fields);
    Ok(records)
}

fn push_record(records: &mut Vec<Record>, line: usize, fields: Vec<String>) {
    let blank = fields.len() == 1 && fields[0].trim().is_empty();
    if !blank {
        records.push(Record { line, fields });
    }
}

/// Decodes the HTML entities the IEEE leaves in some names (`&amp;`, `&quot;`, `&#39;`). Text
/// that is not a known entity is kept as it is.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let decoded = rest
            .find(';')
            .filter(|end| *end <= 10)
            .and_then(|end| decode_entity(&rest[1..end]).map(|c| (c, end)));
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Decodes the name between `&` and `;`.
fn decode_entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// Decodes entities and collapses runs of whitespace, line breaks included, to one space.
fn clean_name(raw: &str) -> String {
    let decoded = decode_entities(raw);
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The positions of the columns this parser reads.
struct Columns {
    registry: usize,
    assignment: usize,
    organization: usize,
}

impl Columns {
    fn find(header: &[String]) -> Result<Columns, String> {
        let position = |name: &str| {
            header
                .iter()
                .position(|field| field.trim_start_matches('\u{feff}').trim() == name)
                .ok_or_else(|| format!("the header has no '{name}' column"))
        };
        Ok(Columns {
            registry: position("Registry")?,
            assignment: position("Assignment")?,
            organization: position("Organization Name")?,
        })
    }

    fn needed(&self) -> usize {
        self.registry.max(self.assignment).max(self.organization) + 1
    }
}

/// Parses the CSV file of `registry`. `path` names the file in messages.
pub(super) fn parse_registry_file(
    text: &str,
    registry: IeeeRegistry,
    path: &dyn fmt::Display,
) -> Result<ParsedFile, VendorError> {
    let format_error = |reason: String| VendorError::Format {
        origin: path.to_string(),
        reason,
    };
    let records = read_records(text).map_err(|line| {
        format_error(format!(
            "the quoted field opened on line {line} never ends, so the file is cut short or \
             damaged"
        ))
    })?;
    let mut records = records.into_iter();
    let header = records
        .next()
        .ok_or_else(|| format_error("the file is empty".to_string()))?;
    let columns = Columns::find(&header.fields).map_err(|reason| {
        format_error(format!(
            "not an IEEE registry CSV file: {reason} (expected 'Registry,Assignment,\
             Organization Name,Organization Address')"
        ))
    })?;

    let mut parsed = ParsedFile::default();
    for record in records {
        match parse_record(&record, &columns, registry) {
            Ok(Some(vendor)) => parsed.vendors.push(vendor),
            Ok(None) => parsed.excluded += 1,
            Err(reason) => parsed.skipped.push(Skipped {
                line: record.line,
                reason,
            }),
        }
    }
    Ok(parsed)
}

/// Reads one record: `Ok(None)` for a block left out on purpose, `Err` for a malformed record.
fn parse_record(
    record: &Record,
    columns: &Columns,
    registry: IeeeRegistry,
) -> Result<Option<Vendor>, String> {
    let fields = &record.fields;
    if fields.len() < columns.needed() {
        return Err(format!(
            "expected at least {} fields, found {}",
            columns.needed(),
            fields.len()
        ));
    }

    let listed_registry = fields[columns.registry].trim();
    if listed_registry != registry.name() {
        return Err(format!(
            "registry '{listed_registry}' in the {registry} file"
        ));
    }

    let hex = fields[columns.assignment].trim();
    let prefix = parse_prefix(hex, registry)
        .ok_or_else(|| format!("invalid {registry} assignment '{hex}'"))?;

    let name = clean_name(&fields[columns.organization]);
    if name.is_empty() {
        return Err(format!("block {prefix} has no organization name"));
    }

    let registration_authority =
        registry == IeeeRegistry::MaL && name.eq_ignore_ascii_case(REGISTRATION_AUTHORITY);
    if is_excluded_prefix(&prefix) || registration_authority {
        return Ok(None);
    }
    Ok(Some(Vendor {
        prefix,
        name,
        registry,
    }))
}

/// Merges blocks listed more than once into one entry whose name joins the organizations in the
/// order first listed. The IEEE lists a few old blocks for several organizations (08:00:30 for
/// three).
pub(super) fn merge_duplicates(vendors: Vec<Vendor>) -> Vec<Vendor> {
    let mut merged: Vec<Vendor> = Vec::with_capacity(vendors.len());
    let mut positions = HashMap::with_capacity(vendors.len());
    for vendor in vendors {
        match positions.get(&vendor.prefix) {
            Some(&index) => {
                let existing: &mut Vendor = &mut merged[index];
                if !existing
                    .name
                    .split(NAME_SEPARATOR)
                    .any(|n| n == vendor.name)
                {
                    existing.name.push_str(NAME_SEPARATOR);
                    existing.name.push_str(&vendor.name);
                }
            }
            None => {
                positions.insert(vendor.prefix, merged.len());
                merged.push(vendor);
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> Vec<Vec<String>> {
        read_records(text)
            .unwrap()
            .into_iter()
            .map(|record| record.fields)
            .collect()
    }

    #[test]
    fn records_split_on_commas_and_crlf() {
        let parsed = records("a,b,c\r\nd,,f\r\n");
        assert_eq!(parsed, vec![vec!["a", "b", "c"], vec!["d", "", "f"]]);
    }

    #[test]
    fn quoted_fields_keep_commas_quotes_and_breaks() {
        let text = "MA-L,001EFC,\"JSC \"\"MASSA-K\"\"\",\"15, A,\r\nSaint-Petersburg\"\r\nx,y\r\n";
        let parsed = read_records(text).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].fields[2], "JSC \"MASSA-K\"");
        assert_eq!(parsed[0].fields[3], "15, A,\r\nSaint-Petersburg");
        assert_eq!(
            parsed[1].line, 3,
            "the second record starts after the embedded break"
        );
    }

    #[test]
    fn records_skip_blank_lines_and_keep_last_line_without_newline() {
        let parsed = records("a,b\r\n\r\n\nc,d");
        assert_eq!(parsed, vec![vec!["a", "b"], vec!["c", "d"]]);
    }

    #[test]
    fn stray_quote_inside_field_is_text() {
        let parsed = records("a,b\"c,d\n");
        assert_eq!(parsed, vec![vec!["a", "b\"c", "d"]]);
    }

    #[test]
    fn unterminated_quote_reports_its_line() {
        assert_eq!(read_records("a,b\nc,\"d,e\nf,g\n"), Err(2));
    }

    #[test]
    fn entities_are_decoded() {
        assert_eq!(
            clean_name("JTEC Card &amp; Communication &quot;X&quot; &#39;Y&#39; &#x41;"),
            "JTEC Card & Communication \"X\" 'Y' A"
        );
        assert_eq!(clean_name("A&B &unknown; &"), "A&B &unknown; &");
    }

    #[test]
    fn names_have_whitespace_collapsed() {
        assert_eq!(
            clean_name("  Shenzhen Skyworth Digital  Technology\tCO., Ltd\r\n"),
            "Shenzhen Skyworth Digital Technology CO., Ltd"
        );
    }
}
