//! The AWS CLI's INI dialect: sections, entries (with sub-entries), and the
//! parser that keeps every line's place so edits leave the rest alone.

use super::*;

/// What a section header declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    /// `[default]` or `[profile NAME]`.
    Profile,
    /// `[sso-session NAME]`: an IAM Identity Center sign-in shared by profiles.
    SsoSession,
    /// `[services NAME]`: per-service endpoint settings.
    Services,
    /// Anything else (`[plugins]`, `[preview]`, or a mistaken `[NAME]`):
    /// kept so the file round-trips, otherwise ignored as the AWS CLI does.
    Other,
}

/// One `[...]` section, with its settings in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub(super) kind: SectionKind,
    pub(super) name: String,
    pub(super) header: String,
    pub(super) line: usize,
    pub(super) last_line: usize,
    pub(super) entries: Vec<Entry>,
}

impl Section {
    pub fn kind(&self) -> SectionKind {
        self.kind
    }
    /// The profile, sso-session or services name; the whole header for
    /// `Other` sections.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The text between the brackets, as written (trimmed).
    pub fn header(&self) -> &str {
        &self.header
    }
    /// 1-based line of the header.
    pub fn line(&self) -> usize {
        self.line
    }
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
    /// A setting's value, by key (keys compare lowercased).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entry(key).map(|e| e.value.as_str())
    }
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        let key = key.to_ascii_lowercase();
        self.entries.iter().find(|e| e.key == key)
    }
}

/// One `key = value` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub(super) key: String,
    pub(super) value: String,
    pub(super) line: usize,
    pub(super) last_line: usize,
    /// Byte range of the value within its line, for editing it in place;
    /// `None` once indented lines have continued the value.
    pub(super) value_span: Option<(usize, usize)>,
    pub(super) nested: Vec<SubEntry>,
}

impl Entry {
    /// The key, lowercased.
    pub fn key(&self) -> &str {
        &self.key
    }
    /// The value; continuation lines are joined with `\n`. Empty for a
    /// nested block like `s3 =` followed by indented settings.
    pub fn value(&self) -> &str {
        &self.value
    }
    pub fn line(&self) -> usize {
        self.line
    }
    /// The indented `k = v` settings under a key with an empty value.
    pub fn nested(&self) -> &[SubEntry] {
        &self.nested
    }
    /// A nested setting's value, by key.
    pub fn nested_value(&self, key: &str) -> Option<&str> {
        let key = key.to_ascii_lowercase();
        self.nested
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    }
}

/// An indented `k = v` under a key with an empty value (`s3 =`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubEntry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Where an inline comment starts: `#` or `;` after a space or tab, as the
/// AWS SDKs read it. A `#` glued to text (`a#b`) is part of the value.
pub(super) fn inline_comment_start(s: &str) -> Option<usize> {
    let mut after_space = false;
    for (i, c) in s.char_indices() {
        if (c == '#' || c == ';') && after_space {
            return Some(i);
        }
        after_space = c == ' ' || c == '\t';
    }
    None
}

/// A line cut short for an error message.
pub(super) fn truncate(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// The line-by-line reader.
pub(super) struct Parser<'a> {
    file: &'a str,
    sections: Vec<Section>,
    /// Whether the last line read was a setting that an indented line may
    /// continue (false right after a header).
    open: bool,
}

pub(super) enum Property<'a> {
    Ok {
        key: &'a str,
        value_start: usize,
        value_end: usize,
    },
    NoEquals,
    NoKey,
}

/// Splits `key = value # comment`, giving the value's byte range in `line`.
pub(super) fn split_property(line: &str) -> Property<'_> {
    let body = &line[..inline_comment_start(line).unwrap_or(line.len())];
    let Some(eq) = body.find('=') else {
        return Property::NoEquals;
    };
    let key = body[..eq].trim_matches(WS);
    if key.is_empty() {
        return Property::NoKey;
    }
    let after = &body[eq + 1..];
    let value_start = eq + 1 + (after.len() - after.trim_start_matches(WS).len());
    let value_end = value_start + body[value_start..].trim_end_matches(WS).len();
    Property::Ok {
        key,
        value_start,
        value_end,
    }
}

impl<'a> Parser<'a> {
    pub(super) fn new(file: &'a str) -> Parser<'a> {
        Parser {
            file,
            sections: Vec::new(),
            open: false,
        }
    }

    fn error(&self, line: usize, message: String) -> ConfigError {
        ConfigError::Syntax {
            file: self.file.to_owned(),
            line,
            message,
        }
    }

    pub(super) fn run(mut self, text: &str) -> Result<Vec<Section>, ConfigError> {
        for (index, line) in text.split('\n').enumerate() {
            let number = index + 1;
            let line = line.strip_suffix('\r').unwrap_or(line);
            let trimmed = line.trim_matches(WS);
            // An indented comment is a comment too (Python's configparser,
            // which the AWS CLI uses, agrees), even inside a nested block.
            if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
                continue;
            }
            if line.starts_with(WS) && self.open {
                self.continuation(number, line, trimmed)?;
            } else if trimmed.starts_with('[') {
                self.header(number, trimmed)?;
            } else {
                self.property(number, line, trimmed)?;
            }
        }
        Ok(self.sections)
    }

    fn header(&mut self, number: usize, trimmed: &str) -> Result<(), ConfigError> {
        let Some(close) = trimmed.find(']') else {
            return Err(self.error(
                number,
                format!(
                    "section header {:?} has no closing \"]\"",
                    truncate(trimmed)
                ),
            ));
        };
        let rest = trimmed[close + 1..].trim_matches(WS);
        if !rest.is_empty() && !rest.starts_with(['#', ';']) {
            return Err(self.error(
                number,
                format!("unexpected {:?} after the section header", truncate(rest)),
            ));
        }
        let header = trimmed[1..close].trim_matches(WS);
        let (kind, name) = classify(header);
        if name.is_empty() {
            let message = if header.is_empty() {
                "empty section header \"[]\"".to_owned()
            } else {
                format!("section header [{header}] has no name after {header:?}")
            };
            return Err(self.error(number, message));
        }
        if let Some(first) = self
            .sections
            .iter()
            .find(|s| s.kind == kind && s.name == name)
        {
            let message = if first.header == header {
                format!(
                    "section [{header}] appears twice (first on line {}); merge the two",
                    first.line
                )
            } else {
                format!(
                    "[{header}] and [{}] (line {}) both define profile {name:?}; keep one",
                    first.header, first.line
                )
            };
            return Err(self.error(number, message));
        }
        self.sections.push(Section {
            kind,
            name: name.to_owned(),
            header: header.to_owned(),
            line: number,
            last_line: number,
            entries: Vec::new(),
        });
        self.open = false;
        Ok(())
    }

    fn property(&mut self, number: usize, line: &str, trimmed: &str) -> Result<(), ConfigError> {
        let (key, value_start, value_end) = match split_property(line) {
            Property::Ok {
                key,
                value_start,
                value_end,
            } => (key, value_start, value_end),
            Property::NoEquals => {
                return Err(self.error(
                    number,
                    format!("expected \"key = value\", found {:?}", truncate(trimmed)),
                ))
            }
            Property::NoKey => {
                return Err(self.error(
                    number,
                    format!(
                        "expected \"key = value\", found {:?} (no key before \"=\")",
                        truncate(trimmed)
                    ),
                ))
            }
        };
        let key = key.to_ascii_lowercase();
        let file = self.file;
        let Some(section) = self.sections.last_mut() else {
            return Err(ConfigError::Syntax {
                file: file.to_owned(),
                line: number,
                message: format!(
                    "{key} is set before any section header; put it under [default] or [profile NAME]"
                ),
            });
        };
        if let Some(first) = section.entries.iter().find(|e| e.key == key) {
            return Err(ConfigError::Syntax {
                file: file.to_owned(),
                line: number,
                message: format!(
                    "{key} is set twice in [{}] (first on line {}); keep one",
                    section.header, first.line
                ),
            });
        }
        section.entries.push(Entry {
            key,
            value: line[value_start..value_end].to_owned(),
            line: number,
            last_line: number,
            value_span: Some((value_start, value_end)),
            nested: Vec::new(),
        });
        section.last_line = number;
        self.open = true;
        Ok(())
    }

    /// An indented line after a setting: a nested `k = v` if the setting's
    /// value was empty (`s3 =`), else more of its value.
    fn continuation(
        &mut self,
        number: usize,
        line: &str,
        trimmed: &str,
    ) -> Result<(), ConfigError> {
        let file = self.file;
        let Some(section) = self.sections.last_mut() else {
            return Ok(());
        };
        section.last_line = number;
        let Some(entry) = section.entries.last_mut() else {
            return Ok(());
        };
        entry.last_line = number;
        if !entry.value.is_empty() {
            entry.value.push('\n');
            entry.value.push_str(trimmed);
            entry.value_span = None;
            return Ok(());
        }
        match split_property(line) {
            Property::Ok {
                key,
                value_start,
                value_end,
            } => {
                entry.nested.push(SubEntry {
                    key: key.to_ascii_lowercase(),
                    value: line[value_start..value_end].to_owned(),
                    line: number,
                });
                Ok(())
            }
            Property::NoEquals | Property::NoKey => Err(ConfigError::Syntax {
                file: file.to_owned(),
                line: number,
                message: format!(
                    "expected \"key = value\" nested under {}, found {:?}",
                    entry.key,
                    truncate(trimmed)
                ),
            }),
        }
    }
}

/// What a header names: `default` and `profile NAME` are profiles (the
/// AWS CLI reads `[profile default]` as `default` too).
pub(super) fn classify(header: &str) -> (SectionKind, &str) {
    if header == DEFAULT_PROFILE {
        return (SectionKind::Profile, DEFAULT_PROFILE);
    }
    for (prefix, kind) in [
        ("profile", SectionKind::Profile),
        ("sso-session", SectionKind::SsoSession),
        ("services", SectionKind::Services),
    ] {
        if let Some(rest) = header.strip_prefix(prefix) {
            if rest.is_empty() {
                return (kind, "");
            }
            if rest.starts_with(WS) {
                return (kind, rest.trim_matches(WS));
            }
        }
    }
    (SectionKind::Other, header)
}
