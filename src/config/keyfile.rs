//! A reader for GLib's key file format (`GKeyFile`), the syntax of NetworkManager.conf.
//!
//! The rules follow GLib 2.x `gkeyfile.c` as NetworkManager loads its files:
//! - Lines end at `\n`; one `\r` before it is dropped. Leading ASCII whitespace is skipped.
//! - A line whose first non-blank byte is `#` is a comment, and so is a blank line. A `#` later
//!   in a line is part of the value, and `;` starts no comment.
//! - `[name]` opens a group. Spaces and tabs may follow the `]`, nothing else. The name must
//!   not be empty and must not contain `[`, `]` or control characters. A group that appears
//!   twice is reopened, so its keys merge.
//! - `key=value`: whitespace before the `=` and after it is dropped, whitespace at the end of
//!   the value is kept. A key that appears twice in a group keeps the last value.
//! - Escapes (`\s \n \t \r \\`) are decoded only when a value is read as a string
//!   ([`unescape`]), as `g_key_file_get_string` does; the raw text is what is stored.
//!
//! This module stops at the syntax. It does not interpret sections, keys or values.

use std::fmt;

/// A parsed key file: its groups in the order they first appear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFile {
    /// The groups, each listed once at the place it first appears.
    pub groups: Vec<Group>,
}

/// One `[group]` of a key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The name between the brackets.
    pub name: String,
    /// The 1-based line of the first header that opened the group.
    pub line: usize,
    /// The keys in the order they first appear, each with the last value given.
    pub entries: Vec<Entry>,
}

/// One `key=value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key name.
    pub key: String,
    /// The raw value: leading whitespace removed, escapes not decoded.
    pub value: String,
    /// The 1-based line the value was read from.
    pub line: usize,
}

/// A line GLib would reject; loading stops there, as `g_key_file_load_from_file` does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    /// The line is neither a comment, a group header nor a `key=value` pair.
    #[error(
        "line {text} is not a [section] header, a key=value pair or a # comment{hint}",
        text = quote(text),
        hint = if text.starts_with('\u{feff}') {
            "; the file starts with a UTF-8 byte order mark, which GLib rejects: save it without one"
        } else {
            ""
        }
    )]
    NotKeyValue {
        /// The 1-based line number.
        line: usize,
        /// The line's text.
        text: String,
    },

    /// A `key=value` line comes before the first group header.
    #[error(
        "key {key} comes before any [section] header; put it under a section such as \
         [connection] or [device]",
        key = quote(key)
    )]
    KeyOutsideGroup {
        /// The 1-based line number.
        line: usize,
        /// The key.
        key: String,
    },

    /// A group name is empty or contains `[`, `]` or a control character.
    #[error(
        "invalid section name {name}: a name must not be empty and must not contain '[', ']' \
         or control characters",
        name = quote(name)
    )]
    InvalidGroupName {
        /// The 1-based line number.
        line: usize,
        /// The text between the brackets.
        name: String,
    },

    /// A key name is not one GLib accepts.
    #[error(
        "invalid key name {key}: a key must not be empty, must not start or end with a space \
         and must not contain '[' or ']' except in a final locale suffix such as 'Name[de]'",
        key = quote(key)
    )]
    InvalidKeyName {
        /// The 1-based line number.
        line: usize,
        /// The key text before the `=`.
        key: String,
    },

    /// The first group declares an encoding other than UTF-8.
    #[error(
        "unsupported encoding {value}: key files must be UTF-8; remove the Encoding line or set \
         it to UTF-8",
        value = quote(value)
    )]
    UnsupportedEncoding {
        /// The 1-based line number.
        line: usize,
        /// The declared encoding.
        value: String,
    },

    /// The line is not valid UTF-8.
    #[error("the line is not valid UTF-8; save the file as UTF-8")]
    NotUtf8 {
        /// The 1-based line number.
        line: usize,
    },

    /// The line contains a NUL byte.
    #[error("the line contains a NUL byte; key files are text")]
    NulByte {
        /// The 1-based line number.
        line: usize,
    },
}

impl SyntaxError {
    /// The 1-based line the error is on.
    pub fn line(&self) -> usize {
        match self {
            SyntaxError::NotKeyValue { line, .. }
            | SyntaxError::KeyOutsideGroup { line, .. }
            | SyntaxError::InvalidGroupName { line, .. }
            | SyntaxError::InvalidKeyName { line, .. }
            | SyntaxError::UnsupportedEncoding { line, .. }
            | SyntaxError::NotUtf8 { line }
            | SyntaxError::NulByte { line } => *line,
        }
    }
}

/// A value that cannot be read as a string because of a backslash sequence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EscapeError {
    /// A backslash followed by a character that is not `s n t r \`.
    #[error(
        "invalid escape sequence '\\{0}'; the accepted escapes are \\s (space), \\n, \\t, \\r \
         and \\\\ (backslash)"
    )]
    Invalid(char),

    /// The value ends with a single backslash.
    #[error("the value ends with a lone backslash; write \\\\ for a backslash")]
    Trailing,
}

/// Whether GLib counts the byte as whitespace (`g_ascii_isspace`): space, `\t`, `\n`, `\v`,
/// `\f` and `\r`. Rust's `is_ascii_whitespace` leaves out `\v`.
pub fn is_glib_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

impl KeyFile {
    /// Parses the bytes of a key file.
    pub fn parse(data: &[u8]) -> Result<KeyFile, SyntaxError> {
        let mut file = KeyFile::default();
        let mut current: Option<usize> = None;

        let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        // A final newline leaves an empty piece after it, which is no line of its own.
        if data.ends_with(b"\n") {
            lines.pop();
        }

        for (index, raw) in lines.into_iter().enumerate() {
            let number = index + 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.contains(&0) {
                return Err(SyntaxError::NulByte { line: number });
            }
            let text =
                std::str::from_utf8(raw).map_err(|_| SyntaxError::NotUtf8 { line: number })?;
            file.parse_line(text, number, &mut current)?;
        }
        Ok(file)
    }

    fn parse_line(
        &mut self,
        text: &str,
        number: usize,
        current: &mut Option<usize>,
    ) -> Result<(), SyntaxError> {
        let line = text.trim_start_matches(is_glib_space);

        if line.is_empty() || line.starts_with('#') {
            return Ok(());
        }

        if let Some(name) = group_header(line) {
            if !is_group_name(name) {
                return Err(SyntaxError::InvalidGroupName {
                    line: number,
                    name: name.to_string(),
                });
            }
            *current = Some(self.open_group(name, number));
            return Ok(());
        }

        // GLib's test for a key-value line: an '=' somewhere, but not as the first character.
        let Some(equals) = line.find('=').filter(|&position| position > 0) else {
            return Err(SyntaxError::NotKeyValue {
                line: number,
                text: text.to_string(),
            });
        };

        let key = line[..equals].trim_end_matches(is_glib_space);
        let value = line[equals + 1..].trim_start_matches(is_glib_space);

        let Some(group_index) = *current else {
            return Err(SyntaxError::KeyOutsideGroup {
                line: number,
                key: key.to_string(),
            });
        };
        if !is_key_name(key) {
            return Err(SyntaxError::InvalidKeyName {
                line: number,
                key: key.to_string(),
            });
        }
        // GLib checks the Encoding key only in the file's first group.
        if group_index == 0 && key == "Encoding" && !value.eq_ignore_ascii_case("UTF-8") {
            return Err(SyntaxError::UnsupportedEncoding {
                line: number,
                value: value.to_string(),
            });
        }

        let group = &mut self.groups[group_index];
        let entry = Entry {
            key: key.to_string(),
            value: value.to_string(),
            line: number,
        };
        match group.entries.iter_mut().find(|old| old.key == key) {
            Some(old) => *old = entry,
            None => group.entries.push(entry),
        }
        Ok(())
    }

    /// Returns the index of the group called `name`, adding it if it is new.
    fn open_group(&mut self, name: &str, line: usize) -> usize {
        if let Some(index) = self.groups.iter().position(|group| group.name == name) {
            return index;
        }
        self.groups.push(Group {
            name: name.to_string(),
            line,
            entries: Vec::new(),
        });
        self.groups.len() - 1
    }

    /// Finds a group by name.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|group| group.name == name)
    }
}

impl Group {
    /// Finds an entry by key.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.key == key)
    }
}

/// Returns the name inside `[name]` when the line is a group header: a `[`, then text up to
/// the first `]`, then only spaces and tabs.
fn group_header(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    let close = rest.find(']')?;
    let after = &rest[close + 1..];
    if after.chars().all(|c| c == ' ' || c == '\t') {
        Some(&rest[..close])
    } else {
        None
    }
}

/// GLib's `g_key_file_is_group_name`: not empty, no brackets, no ASCII control characters.
fn is_group_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c == '[' || c == ']' || c.is_ascii_control())
}

/// GLib's `g_key_file_is_key_name`: a non-empty name without `=`, `[` or `]`, not starting or
/// ending with a space, optionally followed by one locale suffix `[xx_YY.enc@mod]`.
fn is_key_name(key: &str) -> bool {
    let base_end = key.find(['[', ']']).unwrap_or(key.len());
    let base = &key[..base_end];

    if base.is_empty() || base.starts_with(' ') || base.ends_with(' ') {
        return false;
    }

    let rest = &key[base_end..];
    if rest.is_empty() {
        return true;
    }
    let Some(locale) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
        return false;
    };
    locale
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

/// Decodes a raw value as `g_key_file_get_string` does: `\s` space, `\n`, `\t`, `\r`, `\\`.
/// Any other backslash sequence, or a backslash at the end, is an error.
pub fn unescape(raw: &str) -> Result<String, EscapeError> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => out.push(' '),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => return Err(EscapeError::Invalid(other)),
            None => return Err(EscapeError::Trailing),
        }
    }
    Ok(out)
}

/// Parses a boolean as NetworkManager does (`_nm_utils_ascii_str_to_bool`): surrounding
/// whitespace is ignored, case is not significant, and `yes`, `true`, `on`, `1` or `no`,
/// `false`, `off`, `0` are accepted. An empty value is `Ok(None)`: NetworkManager then uses
/// the key's default. Anything else is [`NotABool`].
pub fn parse_bool(text: &str) -> Result<Option<bool>, NotABool> {
    let word = text.trim_matches(is_glib_space);
    if word.is_empty() {
        return Ok(None);
    }
    for truthy in ["yes", "true", "on", "1"] {
        if word.eq_ignore_ascii_case(truthy) {
            return Ok(Some(true));
        }
    }
    for falsy in ["no", "false", "off", "0"] {
        if word.eq_ignore_ascii_case(falsy) {
            return Ok(Some(false));
        }
    }
    Err(NotABool)
}

/// A value that is not one of the words [`parse_bool`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a boolean; expected {BOOL_WORDS}")]
pub struct NotABool;

/// The words `parse_bool` accepts, for error messages.
pub const BOOL_WORDS: &str = "yes, no, true, false, on, off, 1 or 0 (in any case)";

/// Quotes a value for a message, with control characters escaped so that a stray `\r` or
/// escape sequence cannot garble the terminal.
pub fn quote(text: &str) -> Quoted<'_> {
    Quoted(text)
}

/// A value shown in single quotes with control characters escaped.
pub struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("'")?;
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        f.write_str("'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> KeyFile {
        KeyFile::parse(text.as_bytes()).unwrap()
    }

    fn value<'a>(file: &'a KeyFile, group: &str, key: &str) -> &'a str {
        &file.group(group).unwrap().entry(key).unwrap().value
    }

    #[test]
    fn parse_reads_groups_and_keys() {
        let file = parse("[device]\nwifi.scan-rand-mac-address=yes\n\n[connection]\na=b\n");
        assert_eq!(file.groups.len(), 2);
        assert_eq!(file.groups[0].name, "device");
        assert_eq!(file.groups[0].line, 1);
        assert_eq!(value(&file, "device", "wifi.scan-rand-mac-address"), "yes");
        assert_eq!(file.groups[1].line, 4);
        assert_eq!(
            file.group("connection").unwrap().entry("a").unwrap().line,
            5
        );
    }

    #[test]
    fn comment_only_at_line_start() {
        let file =
            parse("# top\n[g]\n   # indented comment\n\t#tab comment\nk=v # not a comment\n");
        let group = file.group("g").unwrap();
        assert_eq!(group.entries.len(), 1);
        assert_eq!(value(&file, "g", "k"), "v # not a comment");
    }

    #[test]
    fn semicolon_starts_no_comment() {
        let file = parse("[g]\n;k=v\n");
        assert_eq!(value(&file, "g", ";k"), "v");

        let err = KeyFile::parse(b"[g]\n; just text\n").unwrap_err();
        assert!(
            matches!(err, SyntaxError::NotKeyValue { line: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn whitespace_around_equals_is_dropped() {
        let file = parse("[g]\n  key \t=  \tvalue\n");
        assert_eq!(value(&file, "g", "key"), "value");
    }

    #[test]
    fn trailing_value_whitespace_is_kept() {
        let file = parse("[g]\nkey=value \t\n");
        assert_eq!(value(&file, "g", "key"), "value \t");
    }

    #[test]
    fn empty_value_is_allowed() {
        let file = parse("[g]\nkey=\n");
        assert_eq!(value(&file, "g", "key"), "");
    }

    #[test]
    fn carriage_return_before_newline_is_dropped() {
        let file = parse("[g]\r\nkey=value\r\n");
        assert_eq!(value(&file, "g", "key"), "value");
    }

    #[test]
    fn last_line_without_newline_is_read() {
        let file = parse("[g]\nkey=value");
        assert_eq!(value(&file, "g", "key"), "value");
    }

    #[test]
    fn duplicate_key_keeps_last_value() {
        let file = parse("[g]\nk=first\nother=x\nk=second\n");
        let group = file.group("g").unwrap();
        assert_eq!(group.entries.len(), 2);
        assert_eq!(group.entries[0].key, "k");
        assert_eq!(group.entries[0].value, "second");
        assert_eq!(group.entries[0].line, 4);
    }

    #[test]
    fn repeated_group_is_reopened() {
        let file = parse("[a]\nx=1\n[b]\ny=2\n[a]\nz=3\nx=4\n");
        assert_eq!(file.groups.len(), 2);
        let a = file.group("a").unwrap();
        assert_eq!(a.line, 1);
        assert_eq!(value(&file, "a", "x"), "4");
        assert_eq!(value(&file, "a", "z"), "3");
    }

    #[test]
    fn group_header_allows_trailing_blanks_only() {
        let file = parse("[g] \t\nk=v\n");
        assert!(file.group("g").is_some());

        let err = KeyFile::parse(b"[g] junk\n").unwrap_err();
        assert!(
            matches!(err, SyntaxError::NotKeyValue { line: 1, .. }),
            "{err:?}"
        );

        // '[a] b=c' is not a header, so GLib reads it as a key named '[a] b'.
        let err = KeyFile::parse(b"[g]\n[a] b=c\n").unwrap_err();
        assert!(
            matches!(err, SyntaxError::InvalidKeyName { line: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn invalid_group_names_are_rejected() {
        for text in ["[]\n", "[a[b]\n", "[a\u{1}b]\n"] {
            let err = KeyFile::parse(text.as_bytes()).unwrap_err();
            assert!(
                matches!(err, SyntaxError::InvalidGroupName { line: 1, .. }),
                "{text:?}: {err:?}"
            );
        }
        let err = KeyFile::parse(b"[unclosed\n").unwrap_err();
        assert!(
            matches!(err, SyntaxError::NotKeyValue { line: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn key_before_group_is_rejected() {
        let err = KeyFile::parse(b"# comment\nkey=value\n[g]\n").unwrap_err();
        assert_eq!(
            err,
            SyntaxError::KeyOutsideGroup {
                line: 2,
                key: "key".into()
            }
        );
    }

    #[test]
    fn line_starting_with_equals_is_rejected() {
        let err = KeyFile::parse(b"[g]\n=value\n").unwrap_err();
        assert!(
            matches!(err, SyntaxError::NotKeyValue { line: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn key_names_follow_glib() {
        let file = parse("[g]\nName[de_DE.UTF-8@euro]=x\nwith space=y\n");
        assert_eq!(value(&file, "g", "Name[de_DE.UTF-8@euro]"), "x");
        assert_eq!(value(&file, "g", "with space"), "y");

        for text in [
            "[g]\nk]=v\n",
            "[g]\nk[de]x=v\n",
            "[g]\nk[d e]=v\n",
            "[g]\nk [de]=v\n",
        ] {
            let err = KeyFile::parse(text.as_bytes()).unwrap_err();
            assert!(
                matches!(err, SyntaxError::InvalidKeyName { line: 2, .. }),
                "{text:?}: {err:?}"
            );
        }
    }

    #[test]
    fn encoding_must_be_utf8_in_first_group() {
        assert!(KeyFile::parse(b"[g]\nEncoding=utf-8\n").is_ok());
        let err = KeyFile::parse(b"[g]\nEncoding=latin1\n").unwrap_err();
        assert!(matches!(
            err,
            SyntaxError::UnsupportedEncoding { line: 2, .. }
        ));
        assert!(KeyFile::parse(b"[g]\n[h]\nEncoding=latin1\n").is_ok());
    }

    #[test]
    fn byte_order_mark_is_rejected_with_hint() {
        let err = KeyFile::parse("\u{feff}[g]\n".as_bytes()).unwrap_err();
        assert!(matches!(err, SyntaxError::NotKeyValue { line: 1, .. }));
        assert!(err.to_string().contains("byte order mark"), "{err}");
    }

    #[test]
    fn binary_lines_are_rejected() {
        let err = KeyFile::parse(b"[g]\nk=\xff\n").unwrap_err();
        assert_eq!(err, SyntaxError::NotUtf8 { line: 2 });
        let err = KeyFile::parse(b"[g]\nk=a\0b\n").unwrap_err();
        assert_eq!(err, SyntaxError::NulByte { line: 2 });
    }

    #[test]
    fn vertical_tab_counts_as_whitespace() {
        let file = parse("\x0b[g]\nk\x0b=\x0cv\n");
        assert_eq!(value(&file, "g", "k"), "v");
    }

    #[test]
    fn unescape_decodes_each_sequence() {
        assert_eq!(unescape(r"a\sb").unwrap(), "a b");
        assert_eq!(unescape(r"\n").unwrap(), "\n");
        assert_eq!(unescape(r"\t").unwrap(), "\t");
        assert_eq!(unescape(r"\r").unwrap(), "\r");
        assert_eq!(unescape(r"a\\b").unwrap(), r"a\b");
        assert_eq!(unescape(r"\s\sx").unwrap(), "  x");
        assert_eq!(unescape("plain").unwrap(), "plain");
    }

    #[test]
    fn unescape_rejects_unknown_and_trailing() {
        assert_eq!(unescape(r"a\xb"), Err(EscapeError::Invalid('x')));
        assert_eq!(unescape(r"a\,b"), Err(EscapeError::Invalid(',')));
        assert_eq!(unescape(r"a\"), Err(EscapeError::Trailing));
        let message = EscapeError::Invalid('q').to_string();
        assert!(message.contains(r"'\q'"), "{message}");
        assert!(message.contains(r"\s"), "{message}");
    }

    #[test]
    fn bool_accepts_network_manager_words() {
        for word in ["yes", "YES", "true", "True", "on", "ON", "1", " yes\t"] {
            assert_eq!(parse_bool(word), Ok(Some(true)), "{word:?}");
        }
        for word in ["no", "No", "false", "FALSE", "off", "Off", "0", "  0 "] {
            assert_eq!(parse_bool(word), Ok(Some(false)), "{word:?}");
        }
        assert_eq!(parse_bool(""), Ok(None));
        assert_eq!(parse_bool("  "), Ok(None));
        for word in ["y", "n", "2", "enable", "yes please", "-1"] {
            assert_eq!(parse_bool(word), Err(NotABool), "{word:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = KeyFile::parse(&data);
        }

        #[test]
        fn parse_finds_every_written_key(
            keys in proptest::collection::btree_map("[a-z][a-z0-9.-]{0,12}", "[ -~]{0,20}", 1..8)
        ) {
            let mut text = String::from("[g]\n");
            for (key, value) in &keys {
                text.push_str(&format!("{key}={value}\n"));
            }
            let file = KeyFile::parse(text.as_bytes()).unwrap();
            let group = file.group("g").unwrap();
            for (key, value) in &keys {
                let stored = &group.entry(key).unwrap().value;
                proptest::prop_assert_eq!(stored.as_str(), value.trim_start_matches(is_glib_space));
            }
        }
    }

    #[test]
    fn quote_escapes_control_characters() {
        assert_eq!(quote("a\rb").to_string(), r"'a\rb'");
        assert_eq!(quote("x\u{1b}[2J").to_string(), r"'x\u{1b}[2J'");
    }
}
