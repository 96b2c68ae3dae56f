//! `~/.aws/config`: the AWS CLI's INI dialect, and resolving a profile into
//! the chain of profiles vault walks to get credentials, the way aws-vault
//! does (`vault/config.go` in 99designs/aws-vault).
//!
//! The parser is our own so that every complaint names the file and the
//! line, and so that `set_value` can change one line and leave the user's
//! comments, order and spacing alone.
//!
//! Resolution follows aws-vault's `ConfigLoader`:
//! - a profile takes each setting it lacks from its `include_profile`, else
//!   from `[default]` (the first value found wins; an empty value counts as
//!   unset, as aws-vault's `== ""` checks do);
//! - `source_profile` links are followed to the profile whose stored keys
//!   are used, each link resolved on its own;
//! - environment variables beat the file: `AWS_REGION`,
//!   `AWS_DEFAULT_REGION` and `AWS_MFA_SERIAL` for every link, `AWS_ROLE_ARN`,
//!   `AWS_ROLE_SESSION_NAME`, `AWS_SESSION_TAGS`, `AWS_TRANSITIVE_TAGS` and
//!   `AWS_SOURCE_IDENTITY` for the target only.
//!
//! Where aws-vault would hang, recurse forever or silently ignore a typo,
//! this module reports an error that names the profiles involved.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";

/// What STS accepts for a session: GetSessionToken takes 900 to 129,600
/// seconds; AssumeRole's ceiling is lower and set per role, so STS itself
/// has the last word there.
pub const DURATION_RANGE: RangeInclusive<u64> = 900..=129_600;

/// Only space and tab are whitespace in this dialect (as in the AWS SDKs'
/// profile parser); anything else is part of a key or value.
const WS: &[char] = &[' ', '\t'];

/// Reads a variable from the process environment, for callers that have no
/// reason to substitute their own (tests pass a closure instead).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Where the config file is: `$AWS_CONFIG_FILE`, else `~/.aws/config`.
pub fn default_path() -> PathBuf {
    default_path_from(&process_env)
}

/// `default_path` with the environment passed in.
pub fn default_path_from(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let home = nonempty(env("HOME")).or_else(|| nonempty(env("USERPROFILE")));
    if let Some(file) = nonempty(env("AWS_CONFIG_FILE")) {
        // The AWS CLI expands `~` here, and people write it in shell rc
        // files inside quotes, where the shell does not.
        if let (Some(rest), Some(home)) = (file.strip_prefix("~/"), &home) {
            return Path::new(home).join(rest);
        }
        return PathBuf::from(file);
    }
    let home = home
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".aws").join("config")
}

/// The profile to use: the one named on the command line, else
/// `$AWS_PROFILE`, else `default`.
pub fn profile_name(explicit: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> String {
    explicit
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| nonempty(env("AWS_PROFILE")))
        .unwrap_or_else(|| DEFAULT_PROFILE.to_owned())
}

fn nonempty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// Everything that can go wrong reading, resolving or editing the config.
/// Each message names the file (and the line, when there is one).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: io::Error,
    },
    #[error("{file} line {line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file} line {line}: {key} in [{section}] {problem}")]
    InvalidValue {
        file: String,
        line: usize,
        section: String,
        key: String,
        problem: String,
    },
    #[error("${var} {problem}")]
    InvalidEnv { var: &'static str, problem: String },
    #[error("profile {name:?} is not in {file}{suggestion}")]
    UnknownProfile {
        file: String,
        name: String,
        suggestion: String,
    },
    #[error("{file} line {line}: {key} = {name} in [{section}] names a profile that is not in the file{suggestion}")]
    MissingProfile {
        file: String,
        line: usize,
        section: String,
        key: &'static str,
        name: String,
        suggestion: String,
    },
    #[error("{key} loop in {file}: {}", .cycle.join(" → "))]
    Loop {
        file: String,
        key: &'static str,
        cycle: Vec<String>,
    },
    #[error(
        "profile {profile:?} uses {feature} ({key} at {origin}), which vault does not support"
    )]
    Unsupported {
        profile: String,
        feature: &'static str,
        key: String,
        origin: String,
    },
    /// An SSO profile the AWS CLI, too, would refuse (botocore's
    /// `SSOProvider._load_sso_config` rules).
    #[error("{what} is configured for SSO, but {problem}")]
    Sso { what: String, problem: String },
    #[error("cannot write {file}: {source}")]
    Write {
        file: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot change {file}: {problem}")]
    Edit { file: String, problem: String },
}

impl ConfigError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            ConfigError::UnknownProfile { file, name, .. } => Some(format!(
                "add a [profile {name}] section to {file}, or store keys for it with `vault add {name}`"
            )),
            ConfigError::MissingProfile { key: "source_profile", name, .. } => Some(format!(
                "add a [profile {name}] section, or store keys for it with `vault add {name}`"
            )),
            ConfigError::MissingProfile { name, .. } => {
                Some(format!("add a [profile {name}] section or fix the name"))
            }
            ConfigError::Loop { key: "source_profile", .. } => Some(
                "one profile in the loop must use its own stored keys instead of a source_profile"
                    .to_owned(),
            ),
            ConfigError::Loop { .. } => {
                Some("remove one of the include_profile lines in the loop".to_owned())
            }
            ConfigError::Unsupported { feature: SSO, profile, .. } => Some(format!(
                "use the AWS CLI directly for this profile (`aws sso login --profile {profile}`)"
            )),
            ConfigError::Edit { .. } => Some("run the command again".to_owned()),
            ConfigError::Sso { .. } => Some(
                "an SSO profile needs sso_account_id and sso_role_name, and either sso_session \
                 naming an [sso-session NAME] section with sso_start_url and sso_region, or \
                 sso_start_url and sso_region itself (`aws configure sso` writes them)"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

/// AWS IAM Identity Center, which the AWS CLI still configures as `sso_*`.
const SSO: &str = "SSO";

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
    kind: SectionKind,
    name: String,
    header: String,
    line: usize,
    last_line: usize,
    entries: Vec<Entry>,
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
    key: String,
    value: String,
    line: usize,
    last_line: usize,
    /// Byte range of the value within its line, for editing it in place;
    /// `None` once indented lines have continued the value.
    value_span: Option<(usize, usize)>,
    nested: Vec<SubEntry>,
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

/// The parsed config file. Keeps the original text so `set_value` can edit
/// it line by line.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// Where it was loaded from; `None` when parsed from a string.
    path: Option<PathBuf>,
    /// The name used in messages (`~/.aws/config`).
    display: String,
    /// The text, without a byte-order mark.
    text: String,
    bom: bool,
    /// The bytes on disk when loaded (`None`: there was no file), so `save`
    /// can refuse to overwrite someone else's change.
    on_disk: Option<Vec<u8>>,
    sections: Vec<Section>,
}

impl ConfigFile {
    /// Reads and parses the file. A missing file is an empty config, as for
    /// the AWS CLI: vault works with stored keys alone.
    pub fn load(path: impl AsRef<Path>) -> Result<ConfigFile, ConfigError> {
        let path = path.as_ref();
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let display = display_path(path, home.as_deref());
        let bytes = match fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(ConfigError::Read {
                    file: display,
                    source,
                })
            }
        };
        let mut config = match &bytes {
            None => ConfigFile::parse_named("", display)?,
            Some(bytes) => ConfigFile::parse_bytes_named(bytes, display)?,
        };
        config.path = Some(path.to_path_buf());
        config.on_disk = bytes;
        Ok(config)
    }

    /// Parses the file's bytes as [`load`](Self::load) does: text that is
    /// not UTF-8 is an error naming the line. `path_for_messages` is only
    /// used to name the file in errors.
    pub fn parse_bytes(
        bytes: &[u8],
        path_for_messages: impl AsRef<Path>,
    ) -> Result<ConfigFile, ConfigError> {
        ConfigFile::parse_bytes_named(bytes, path_for_messages.as_ref().display().to_string())
    }

    fn parse_bytes_named(bytes: &[u8], display: String) -> Result<ConfigFile, ConfigError> {
        let text = std::str::from_utf8(bytes).map_err(|e| ConfigError::Syntax {
            file: display.clone(),
            line: 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
            message: "is not UTF-8 text".to_owned(),
        })?;
        ConfigFile::parse_named(text, display)
    }

    /// Parses text; `path_for_messages` is only used to name the file in
    /// errors.
    pub fn parse(
        text: &str,
        path_for_messages: impl AsRef<Path>,
    ) -> Result<ConfigFile, ConfigError> {
        ConfigFile::parse_named(text, path_for_messages.as_ref().display().to_string())
    }

    fn parse_named(text: &str, display: String) -> Result<ConfigFile, ConfigError> {
        let (bom, text) = match text.strip_prefix('\u{feff}') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let sections = Parser::new(&display).run(text)?;
        Ok(ConfigFile {
            path: None,
            display,
            text: text.to_owned(),
            bom,
            on_disk: None,
            sections,
        })
    }

    /// The file's name as messages show it.
    pub fn display_name(&self) -> &str {
        &self.display
    }

    /// Every section, in file order.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The section of a profile: `[default]` or `[profile default]` for
    /// `default`, `[profile NAME]` otherwise.
    pub fn profile_section(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| s.kind == SectionKind::Profile && s.name == name)
    }

    /// Another kind of section by name (`sso-session`, `services`).
    pub fn section(&self, kind: SectionKind, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| s.kind == kind && s.name == name)
    }

    /// Profile names in file order. An empty `[default]` is left out, as
    /// aws-vault's `ProfileSections` does: it is only there as a header.
    pub fn profile_names(&self) -> Vec<&str> {
        self.sections
            .iter()
            .filter(|s| s.kind == SectionKind::Profile)
            .filter(|s| !(s.name == DEFAULT_PROFILE && s.entries.is_empty()))
            .map(|s| s.name.as_str())
            .collect()
    }

    /// Resolves `name` with the file alone: every profile in the chain must
    /// be in the file (only `default` may be missing).
    pub fn resolve(
        &self,
        name: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ProfileChain, ConfigError> {
        self.resolve_with(name, env, &|_| false)
    }

    /// Resolves `name`, knowing which profiles have long-term keys in a
    /// store. As in aws-vault (`getSourceCreds`), a profile with stored keys
    /// ends the chain even if it names a `source_profile`, and a profile
    /// with stored keys need not be in the file (`vault add NAME` then
    /// `vault exec NAME` works with no config at all).
    pub fn resolve_with(
        &self,
        name: &str,
        env: &dyn Fn(&str) -> Option<String>,
        has_stored_keys: &dyn Fn(&str) -> bool,
    ) -> Result<ProfileChain, ConfigError> {
        if self.profile_section(name).is_none() && name != DEFAULT_PROFILE && !has_stored_keys(name)
        {
            return Err(ConfigError::UnknownProfile {
                file: self.display.clone(),
                name: name.to_owned(),
                suggestion: self.suggest(name),
            });
        }
        let mut links: Vec<Profile> = Vec::new();
        let mut current = name.to_owned();
        loop {
            let link = self.link(&current, links.is_empty(), env)?;
            let next = match &link.source_profile {
                Some(next) if !has_stored_keys(&current) => next.clone(),
                _ => {
                    links.push(link);
                    break;
                }
            };
            links.push(link);
            if let Some(pos) = links.iter().position(|l| l.name == next) {
                let mut cycle: Vec<String> = links[pos..].iter().map(|l| l.name.clone()).collect();
                cycle.push(next);
                return Err(ConfigError::Loop {
                    file: self.display.clone(),
                    key: "source_profile",
                    cycle,
                });
            }
            if self.profile_section(&next).is_none() && !has_stored_keys(&next) {
                let (line, section) = match links.last().and_then(|l| l.origin("source_profile")) {
                    Some(Origin::File { section, line }) => (*line, section.clone()),
                    _ => (0, String::new()),
                };
                return Err(ConfigError::MissingProfile {
                    file: self.display.clone(),
                    line,
                    section,
                    key: "source_profile",
                    suggestion: self.suggest(&next),
                    name: next,
                });
            }
            current = next;
        }
        links.reverse();
        Ok(ProfileChain { links })
    }

    /// One profile with its inherited settings and the environment applied:
    /// aws-vault's `populateFromEnv` then `populateFromConfigFile`.
    fn link(
        &self,
        name: &str,
        is_target: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Profile, ConfigError> {
        let own = self.profile_section(name);
        let mut fields = Fields {
            config: self,
            inherited: self.inherited(name)?,
            origins: BTreeMap::new(),
            env,
        };
        let mut p = Profile {
            name: name.to_owned(),
            in_file: own.is_some(),
            file: self.display.clone(),
            ..Profile::default()
        };
        // Region and MFA serial come from the environment for every link:
        // aws-vault calls populateFromEnv for each profile it loads.
        p.region = fields.take("region", &["AWS_REGION", "AWS_DEFAULT_REGION"])?;
        p.mfa_serial = fields.take("mfa_serial", &["AWS_MFA_SERIAL"])?;
        let target_only = |vars: &'static [&'static str]| -> &'static [&'static str] {
            if is_target {
                vars
            } else {
                &[]
            }
        };
        p.role_arn = fields.take("role_arn", target_only(&["AWS_ROLE_ARN"]))?;
        p.role_session_name =
            fields.take("role_session_name", target_only(&["AWS_ROLE_SESSION_NAME"]))?;
        p.source_identity =
            fields.take("source_identity", target_only(&["AWS_SOURCE_IDENTITY"]))?;
        p.external_id = fields.take("external_id", &[])?;
        p.mfa_process = fields.take("mfa_process", &[])?;
        p.endpoint_url = fields.take("endpoint_url", &[])?;
        p.credential_process = fields.take("credential_process", &[])?;
        p.credential_source = fields.take("credential_source", &[])?;
        p.source_profile = fields.take("source_profile", &[])?;
        // A profile that names itself (often by inheriting `source_profile`
        // from [default] or an included profile) has no source: its keys
        // are its own. aws-vault: "Ignore source_profile if it recursively
        // refers to the profile".
        if p.source_profile.as_deref() == Some(name) {
            p.source_profile = None;
        }
        p.include_profile = own
            .and_then(|s| s.get("include_profile"))
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        if let Some(raw) = fields.take("duration_seconds", &[])? {
            let secs = raw
                .parse::<u64>()
                .ok()
                .filter(|s| DURATION_RANGE.contains(s));
            p.duration_seconds = Some(secs.ok_or_else(|| {
                fields.invalid(
                    "duration_seconds",
                    &raw,
                    "must be a number of seconds from 900 to 129600 (15 minutes to 36 hours)",
                )
            })?);
        }
        if let Some(raw) = fields.take("session_tags", target_only(&["AWS_SESSION_TAGS"]))? {
            p.session_tags = parse_session_tags(&raw)
                .map_err(|problem| fields.invalid("session_tags", &raw, &problem))?;
        }
        if let Some(raw) = fields.take(
            "transitive_session_tags",
            target_only(&["AWS_TRANSITIVE_TAGS"]),
        )? {
            p.transitive_session_tags = raw
                .split(',')
                .map(|t| t.trim_matches(WS))
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect();
        }
        let keys: Vec<String> = fields.inherited.keys().map(|k| (*k).to_owned()).collect();
        for key in keys {
            let map = if key.starts_with("vault_") {
                &mut p.vault
            } else if key.starts_with("sso_") {
                &mut p.sso
            } else if key.starts_with("web_identity_token_") {
                &mut p.web_identity
            } else {
                continue;
            };
            if let Some(value) = fields.take(&key, &[])? {
                map.insert(key, value);
            }
        }
        p.sts_endpoint = fields.sts_endpoint()?;
        p.origins = fields.origins;
        Ok(p)
    }

    /// The settings `name` sees, each with the section it came from: its
    /// own, then its `include_profile` chain, then `[default]`.
    fn inherited(&self, name: &str) -> Result<BTreeMap<&str, (&Entry, &Section)>, ConfigError> {
        let mut out: BTreeMap<&str, (&Entry, &Section)> = BTreeMap::new();
        let mut path: Vec<String> = Vec::new();
        let mut current = name.to_owned();
        // The `include_profile` entry that led to `current`, if any.
        let mut via: Option<(&Entry, &Section)> = None;
        loop {
            if let Some(pos) = path.iter().position(|p| *p == current) {
                if via.is_none() {
                    // Falling back to [default] once [default] was already
                    // read (say [default] includes a fragment) adds nothing;
                    // aws-vault calls this a loop, which breaks every
                    // profile as soon as [default] uses include_profile.
                    break;
                }
                let mut cycle = path[pos..].to_vec();
                cycle.push(current);
                return Err(ConfigError::Loop {
                    file: self.display.clone(),
                    key: "include_profile",
                    cycle,
                });
            }
            let section = self.profile_section(&current);
            if let (None, Some((entry, from))) = (section, via) {
                return Err(ConfigError::MissingProfile {
                    file: self.display.clone(),
                    line: entry.line,
                    section: from.header.clone(),
                    key: "include_profile",
                    name: current.clone(),
                    suggestion: self.suggest(&current),
                });
            }
            path.push(current.clone());
            let Some(section) = section else {
                if current == DEFAULT_PROFILE {
                    break;
                }
                current = DEFAULT_PROFILE.to_owned();
                via = None;
                continue;
            };
            for entry in &section.entries {
                if !entry.value.is_empty() && entry.key != "include_profile" {
                    out.entry(entry.key.as_str()).or_insert((entry, section));
                }
            }
            match section
                .entry("include_profile")
                .filter(|e| !e.value.is_empty())
            {
                Some(include) => {
                    current = include.value.clone();
                    via = Some((include, section));
                }
                None if current != DEFAULT_PROFILE => {
                    current = DEFAULT_PROFILE.to_owned();
                    via = None;
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// " (did you mean ...?)" for a name that is not a profile.
    fn suggest(&self, name: &str) -> String {
        let names = self.profile_names();
        if let Some(stray) = self
            .sections
            .iter()
            .find(|s| s.kind == SectionKind::Other && s.name == name)
        {
            return format!(
                "; line {} has [{}], but in this file a profile's header is [profile {}]",
                stray.line, stray.header, name
            );
        }
        let mut near: Vec<(usize, &str)> = names
            .iter()
            .filter_map(|&n| {
                let d = edit_distance(&name.to_lowercase(), &n.to_lowercase())?;
                // Containment only for names long enough to mean something:
                // every name contains "a".
                let (short, long) = if name.len() < n.len() {
                    (name, n)
                } else {
                    (n, name)
                };
                let close = d <= (name.chars().count() / 3).max(2)
                    || (short.chars().count() >= 3 && long.contains(short));
                close.then_some((d, n))
            })
            .collect();
        near.sort();
        near.truncate(3);
        if !near.is_empty() {
            let list: Vec<String> = near.iter().map(|(_, n)| format!("{n:?}")).collect();
            return format!("; did you mean {}?", list.join(" or "));
        }
        match names.len() {
            0 => "; it has no profiles".to_owned(),
            1..=8 => format!("; its profiles are {}", names.join(", ")),
            _ => String::new(),
        }
    }

    /// Sets `key = value` in a profile's section, in memory: the line is
    /// edited in place if the key is there (keeping its comment), added at
    /// the end of the section if not, and a `[profile NAME]` section is
    /// appended if the profile has none. Call `save` to write the file.
    pub fn set_value(&mut self, profile: &str, key: &str, value: &str) -> Result<(), ConfigError> {
        let key = key.to_ascii_lowercase();
        self.check_edit(profile, &key, value)?;
        let eol = if self.text.contains("\r\n") {
            "\r\n"
        } else {
            "\n"
        };
        let mut lines: Vec<String> = self.text.split_inclusive('\n').map(str::to_owned).collect();
        let new_line = format!("{key} = {value}{eol}");
        match self.profile_section(profile) {
            Some(section) => match section.entry(&key) {
                Some(entry) => {
                    let single = entry.line == entry.last_line && !entry.value.is_empty();
                    match (entry.value_span, single) {
                        (Some((start, end)), true) => {
                            let old = &lines[entry.line - 1];
                            lines[entry.line - 1] =
                                format!("{}{value}{}", &old[..start], &old[end..]);
                        }
                        _ => {
                            lines.splice(entry.line - 1..entry.last_line, [new_line]);
                        }
                    }
                }
                None => {
                    let at = section.last_line;
                    if let Some(prev) = lines.get_mut(at - 1) {
                        if !prev.ends_with('\n') {
                            prev.push_str(eol);
                        }
                    }
                    lines.insert(at.min(lines.len()), new_line);
                }
            },
            None => {
                if let Some(last) = lines.last_mut() {
                    if !last.ends_with('\n') {
                        last.push_str(eol);
                    }
                    lines.push(eol.to_owned());
                }
                let header = if profile == DEFAULT_PROFILE {
                    "[default]".to_owned()
                } else {
                    format!("[profile {profile}]")
                };
                lines.push(format!("{header}{eol}"));
                lines.push(new_line);
            }
        }
        let text = lines.concat();
        let mut edited = ConfigFile::parse_named(&text, self.display.clone())?;
        let reads_back = edited.profile_section(profile).and_then(|s| s.get(&key)) == Some(value);
        if !reads_back {
            return Err(self.edit_error(format!(
                "setting {key} in profile {profile:?} would not read back as {value:?}"
            )));
        }
        edited.path = self.path.take();
        edited.on_disk = self.on_disk.take();
        edited.bom = self.bom;
        *self = edited;
        Ok(())
    }

    /// Refuses what the file could not hold as given: the value must read
    /// back exactly, so no line breaks, no edge whitespace (trimmed on
    /// reading), and no " #" or " ;" (read as a comment).
    fn check_edit(&self, profile: &str, key: &str, value: &str) -> Result<(), ConfigError> {
        let bad_name = profile.is_empty()
            || profile != profile.trim_matches(WS)
            || profile.contains(['[', ']', '#', ';'])
            || profile.chars().any(char::is_control);
        if bad_name {
            return Err(self.edit_error(format!("{profile:?} cannot be a profile name")));
        }
        let key_ok = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !key_ok {
            return Err(self.edit_error(format!("{key:?} cannot be a setting name")));
        }
        let bad_value = value.is_empty()
            || value != value.trim_matches(WS)
            || value.chars().any(char::is_control)
            || inline_comment_start(value).is_some();
        if bad_value {
            return Err(self.edit_error(format!(
                "{value:?} cannot be written as the value of {key} (empty, edge spaces, line breaks, or \" #\" / \" ;\" which would read as a comment)"
            )));
        }
        Ok(())
    }

    fn edit_error(&self, problem: String) -> ConfigError {
        ConfigError::Edit {
            file: self.display.clone(),
            problem,
        }
    }

    /// The file's bytes as `save` writes them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + 3);
        if self.bom {
            out.extend_from_slice("\u{feff}".as_bytes());
        }
        out.extend_from_slice(self.text.as_bytes());
        out
    }

    /// Writes the file back where it was loaded from, atomically (a temp
    /// file in the same directory, then rename) and with the old file's
    /// permissions (0600 for a new one). Refuses if the file changed on
    /// disk since it was read, rather than lose that change.
    pub fn save(&mut self) -> Result<(), ConfigError> {
        let Some(path) = self.path.clone() else {
            return Err(self.edit_error("it was not read from a file".to_owned()));
        };
        let now = match fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(ConfigError::Read {
                    file: self.display.clone(),
                    source,
                })
            }
        };
        if now != self.on_disk {
            return Err(self.edit_error("it changed since vault read it".to_owned()));
        }
        let bytes = self.to_bytes();
        write_atomic(&path, &bytes).map_err(|source| ConfigError::Write {
            file: self.display.clone(),
            source,
        })?;
        self.on_disk = Some(bytes);
        Ok(())
    }
}

/// Replaces `path` with `bytes` so a reader sees the old file or the new
/// one, never half of one.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    // Follow a symlink (a config kept in a dotfiles repository) so the link
    // survives and its target is what changes.
    let target = match fs::canonicalize(path) {
        Ok(real) => real,
        Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(e),
    };
    crate::atomic::write(&target, bytes, crate::atomic::Existing::KeepPermissions)
}

/// `~/…` for a path under the home directory: shorter, and what the user
/// typed or expects to see.
fn display_path(path: &Path, home: Option<&Path>) -> String {
    match home.and_then(|h| path.strip_prefix(h).ok()) {
        Some(rest) if !rest.as_os_str().is_empty() => format!("~/{}", rest.display()),
        _ => path.display().to_string(),
    }
}

/// Gathers a link's settings, recording where each came from.
struct Fields<'a> {
    config: &'a ConfigFile,
    inherited: BTreeMap<&'a str, (&'a Entry, &'a Section)>,
    origins: BTreeMap<String, Origin>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Fields<'_> {
    /// The value from the first of `vars` that is set and not empty, else
    /// from the file.
    fn take(&mut self, key: &str, vars: &[&'static str]) -> Result<Option<String>, ConfigError> {
        for &var in vars {
            if let Some(value) = nonempty((self.env)(var)) {
                self.origins.insert(key.to_owned(), Origin::Env(var));
                return Ok(Some(value));
            }
        }
        let Some(&(entry, section)) = self.inherited.get(key) else {
            return Ok(None);
        };
        let origin = Origin::File {
            section: section.header.clone(),
            line: entry.line,
        };
        self.origins.insert(key.to_owned(), origin);
        if entry.value.contains('\n') {
            return Err(self.invalid(
                key,
                &entry.value,
                &format!(
                    "runs onto line {} because that line is indented; remove the indentation",
                    entry.line + 1
                ),
            ));
        }
        Ok(Some(entry.value.clone()))
    }

    /// An error about `key`'s value, naming where the value came from.
    fn invalid(&self, key: &str, value: &str, problem: &str) -> ConfigError {
        let shown = truncate(value);
        match self.origins.get(key) {
            Some(Origin::Env(var)) => ConfigError::InvalidEnv {
                var,
                problem: format!("{problem}, found {shown:?}"),
            },
            Some(Origin::File { section, line }) => ConfigError::InvalidValue {
                file: self.config.display.clone(),
                line: *line,
                section: section.clone(),
                key: key.to_owned(),
                problem: format!("{problem}, found {shown:?}"),
            },
            None => ConfigError::InvalidValue {
                file: self.config.display.clone(),
                line: 0,
                section: String::new(),
                key: key.to_owned(),
                problem: format!("{problem}, found {shown:?}"),
            },
        }
    }

    /// Where STS calls for this link go, in the AWS SDKs' order:
    /// `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, the profile's
    /// `[services NAME]` `sts = endpoint_url = …`, the profile's
    /// `endpoint_url`.
    fn sts_endpoint(&mut self) -> Result<Option<String>, ConfigError> {
        const KEY: &str = "sts_endpoint";
        for var in ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"] {
            if let Some(url) = nonempty((self.env)(var)) {
                self.origins.insert(KEY.to_owned(), Origin::Env(var));
                return Ok(Some(url));
            }
        }
        if let Some(services) = self.take("services", &[])? {
            let service_url = self
                .config
                .section(SectionKind::Services, &services)
                .and_then(|s| s.entry("sts"))
                .and_then(|e| {
                    let sub = e.nested.iter().find(|s| s.key == "endpoint_url")?;
                    Some((sub.value.clone(), sub.line))
                });
            if let Some((url, line)) = service_url.filter(|(url, _)| !url.is_empty()) {
                let section = format!("services {services}");
                self.origins
                    .insert(KEY.to_owned(), Origin::File { section, line });
                return Ok(Some(url));
            }
        }
        if let Some(origin) = self.origins.get("endpoint_url").cloned() {
            let url = self
                .inherited
                .get("endpoint_url")
                .map(|(e, _)| e.value.clone());
            self.origins.insert(KEY.to_owned(), origin);
            return Ok(url);
        }
        Ok(None)
    }
}

/// Where a resolved setting came from, for messages and `--debug` logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of the config file, in the section with this header
    /// (`profile common`, `default`).
    File { section: String, line: usize },
    /// An environment variable.
    Env(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { section, line } => write!(f, "[{section}] line {line}"),
            Origin::Env(var) => write!(f, "${var}"),
        }
    }
}

/// One profile as resolved: its own settings, what it inherited, and the
/// environment's overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    /// Whether the file has a section for it (a profile may exist only as
    /// stored keys).
    pub in_file: bool,
    pub region: Option<String>,
    pub mfa_serial: Option<String>,
    pub role_arn: Option<String>,
    /// After resolution: `None` also when it named the profile itself.
    pub source_profile: Option<String>,
    pub role_session_name: Option<String>,
    pub external_id: Option<String>,
    /// Seconds, within `DURATION_RANGE`.
    pub duration_seconds: Option<u64>,
    /// The profile's own `include_profile` (not inherited).
    pub include_profile: Option<String>,
    pub mfa_process: Option<String>,
    pub endpoint_url: Option<String>,
    pub session_tags: BTreeMap<String, String>,
    pub transitive_session_tags: Vec<String>,
    pub source_identity: Option<String>,
    pub credential_process: Option<String>,
    /// The AWS CLI's `credential_source` (Environment, Ec2InstanceMetadata,
    /// EcsContainer): kept to say vault does not support it.
    pub credential_source: Option<String>,
    /// Every `sso_*` setting (`sso_session`, `sso_start_url`, …).
    pub sso: BTreeMap<String, String>,
    /// `web_identity_token_file` / `web_identity_token_process`.
    pub web_identity: BTreeMap<String, String>,
    /// vault's own `vault_*` settings, keyed by the full name
    /// (`vault_backend`).
    pub vault: BTreeMap<String, String>,
    file: String,
    sts_endpoint: Option<String>,
    origins: BTreeMap<String, Origin>,
}

impl Profile {
    /// Whether this link assumes a role.
    pub fn uses_role(&self) -> bool {
        self.role_arn.is_some()
    }

    pub fn mfa_serial(&self) -> Option<&str> {
        self.mfa_serial.as_deref()
    }

    /// The STS endpoint for this link, if not the default one.
    pub fn sts_endpoint(&self) -> Option<&str> {
        self.sts_endpoint.as_deref()
    }

    /// A `vault_*` setting by its full key.
    pub fn vault_value(&self, key: &str) -> Option<&str> {
        self.vault.get(key).map(String::as_str)
    }

    /// Where a setting's value came from (`sts_endpoint` included).
    pub fn origin(&self, key: &str) -> Option<&Origin> {
        self.origins.get(key)
    }

    pub fn uses_sso(&self) -> bool {
        !self.sso.is_empty()
    }

    /// Whether the profile gets its credentials from IAM Identity Center:
    /// any `sso_*` key says so (and [`ConfigFile::sso`] names what is
    /// missing when the others are not there).
    pub fn is_sso_source(&self) -> bool {
        self.uses_sso()
    }

    /// Why vault cannot get credentials for this profile by itself, if it
    /// would have to use a source vault does not support. Meant for a link
    /// with no stored keys and no `source_profile`: aws-vault, too, looks
    /// at SSO and web identity only then.
    pub fn unsupported(&self) -> Option<ConfigError> {
        // Name the key that makes it SSO, not whichever sorts first.
        let sso_key = ["sso_session", "sso_start_url"]
            .into_iter()
            .find(|k| self.sso.contains_key(*k))
            .or_else(|| self.sso.keys().next().map(String::as_str));
        let (feature, key) = if let Some(key) = sso_key {
            (SSO, key)
        } else if let Some(key) = self.web_identity.keys().next() {
            ("web identity federation", key.as_str())
        } else if self.credential_source.is_some() {
            (
                "an instance, container or environment credential source",
                "credential_source",
            )
        } else {
            return None;
        };
        let origin = self
            .origin(key)
            .map(|o| format!("{} {o}", self.file))
            .unwrap_or_else(|| self.file.clone());
        Some(ConfigError::Unsupported {
            profile: self.name.clone(),
            feature,
            key: key.to_owned(),
            origin,
        })
    }
}

/// Where an SSO profile's credentials come from, resolved as the AWS CLI
/// resolves them: the sign-in (an `[sso-session]`, or the legacy start URL
/// on the profile) and the account and role to get credentials for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoSettings {
    /// The `[sso-session NAME]`, or `None` for the legacy form.
    pub session: Option<String>,
    pub start_url: String,
    /// The region of the Identity Center instance (its OIDC and portal).
    pub region: String,
    /// `sso_registration_scopes` (comma separated): `sso:account:access`
    /// gets refreshable tokens.
    pub registration_scopes: Vec<String>,
    pub account_id: String,
    pub role_name: String,
}

/// `sso_registration_scopes`: a comma-separated list.
fn scope_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl ConfigFile {
    /// The sign-in of `[sso-session NAME]` alone (account and role empty),
    /// for `vault sso populate`.
    pub fn sso_session(&self, name: &str) -> Result<SsoSettings, ConfigError> {
        let fail = |problem: String| ConfigError::Sso {
            what: format!("[sso-session {name}]"),
            problem,
        };
        let section = self.section(SectionKind::SsoSession, name).ok_or_else(|| {
            fail(format!(
                "{} has no [sso-session {name}] section",
                self.display
            ))
        })?;
        let get = |k: &str| {
            section
                .get(k)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let (Some(start_url), Some(region)) = (get("sso_start_url"), get("sso_region")) else {
            return Err(fail("it needs sso_start_url and sso_region".into()));
        };
        Ok(SsoSettings {
            session: Some(name.to_string()),
            start_url,
            region,
            registration_scopes: get("sso_registration_scopes")
                .map(|v| scope_list(&v))
                .unwrap_or_default(),
            account_id: String::new(),
            role_name: String::new(),
        })
    }

    /// The SSO settings of `profile`, if it is an SSO source
    /// ([`Profile::is_sso_source`]); an error names what is missing or
    /// inconsistent.
    pub fn sso(&self, profile: &Profile) -> Result<Option<SsoSettings>, ConfigError> {
        if !profile.is_sso_source() {
            return Ok(None);
        }
        let fail = |problem: String| ConfigError::Sso {
            what: format!("profile {:?}", profile.name),
            problem,
        };
        let own = |k: &str| {
            profile
                .sso
                .get(k)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let session_of = |k: &str| own(k).map(str::to_string);
        let (session, start_url, region, scopes) = match own("sso_session") {
            Some(name) => {
                let section = self
                    .section(SectionKind::SsoSession, name)
                    .ok_or_else(|| fail(format!("the sso-session {name:?} it names has no [sso-session {name}] section in {}", self.display)))?;
                let from_session =
                    |k: &str| section.get(k).map(str::trim).filter(|v| !v.is_empty());
                // Profile values, where given, must agree with the session's.
                let pick = |k: &str| -> Result<Option<String>, ConfigError> {
                    match (own(k), from_session(k)) {
                        (Some(p), Some(s)) if p != s => Err(fail(format!(
                            "its {k} ({p}) differs from the one of [sso-session {name}] ({s})"
                        ))),
                        (p, s) => Ok(s.or(p).map(str::to_string)),
                    }
                };
                let start_url = pick("sso_start_url")?;
                let region = pick("sso_region")?;
                let scopes = from_session("sso_registration_scopes")
                    .map(scope_list)
                    .unwrap_or_default();
                (Some(name.to_string()), start_url, region, scopes)
            }
            None => (
                None,
                session_of("sso_start_url"),
                session_of("sso_region"),
                Vec::new(),
            ),
        };
        let account_id = own("sso_account_id").map(str::to_string);
        let role_name = own("sso_role_name").map(str::to_string);
        let missing: Vec<&str> = [
            ("sso_start_url", start_url.is_none()),
            ("sso_region", region.is_none()),
            ("sso_account_id", account_id.is_none()),
            ("sso_role_name", role_name.is_none()),
        ]
        .into_iter()
        .filter_map(|(k, m)| m.then_some(k))
        .collect();
        match (start_url, region, account_id, role_name) {
            (Some(start_url), Some(region), Some(account_id), Some(role_name)) => {
                Ok(Some(SsoSettings {
                    session,
                    start_url,
                    region,
                    registration_scopes: scopes,
                    account_id,
                    role_name,
                }))
            }
            _ => Err(fail(format!("it has no {}", missing.join(", ")))),
        }
    }
}

/// A resolved profile and its `source_profile` chain, from the root (whose
/// stored keys are used) to the target (the profile asked for). Each link
/// with a role assumes it with the credentials of the link before it; the
/// root's own role, if it has one, is assumed with its stored keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileChain {
    /// Never empty.
    links: Vec<Profile>,
}

impl ProfileChain {
    /// A chain from links ordered root first; `None` if there are none.
    pub fn from_links(links: Vec<Profile>) -> Option<ProfileChain> {
        (!links.is_empty()).then_some(ProfileChain { links })
    }

    pub fn links(&self) -> &[Profile] {
        &self.links
    }

    /// The profile whose long-term keys are used.
    pub fn root(&self) -> &Profile {
        &self.links[0]
    }

    /// The profile that was asked for.
    pub fn target(&self) -> &Profile {
        &self.links[self.links.len() - 1]
    }

    /// The STS endpoint for calls made as the target.
    pub fn sts_endpoint(&self) -> Option<&str> {
        self.target().sts_endpoint()
    }
}

impl fmt::Display for ProfileChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.links.iter().map(|l| l.name.as_str()).collect();
        f.write_str(&names.join(" → "))
    }
}

/// `Key1=Value1,Key2=Value2`, as aws-vault's `SetSessionTags` reads it
/// (spaces around keys and values ignored), but a tag set twice is an error
/// rather than a silent overwrite: STS would reject it anyway.
fn parse_session_tags(raw: &str) -> Result<BTreeMap<String, String>, String> {
    let mut tags = BTreeMap::new();
    for item in raw.split(',') {
        let Some((key, value)) = item.split_once('=') else {
            return Err("must be Key1=Value1,Key2=Value2".to_owned());
        };
        let key = key.trim_matches(WS);
        if key.is_empty() {
            return Err("has a tag with no key; it must be Key1=Value1,Key2=Value2".to_owned());
        }
        let seen = tags.keys().any(|k: &String| k.eq_ignore_ascii_case(key));
        if seen {
            return Err(format!("sets tag {key:?} twice"));
        }
        tags.insert(key.to_owned(), value.trim_matches(WS).to_owned());
    }
    Ok(tags)
}

/// Where an inline comment starts: `#` or `;` after a space or tab, as the
/// AWS SDKs read it. A `#` glued to text (`a#b`) is part of the value.
fn inline_comment_start(s: &str) -> Option<usize> {
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
fn truncate(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Levenshtein distance, for "did you mean"; `None` for names too long to
/// be worth comparing.
fn edit_distance(a: &str, b: &str) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() > 64 || b.len() > 64 {
        return None;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            row[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1);
        }
        prev = row;
    }
    prev.last().copied()
}

/// The line-by-line reader.
struct Parser<'a> {
    file: &'a str,
    sections: Vec<Section>,
    /// Whether the last line read was a setting that an indented line may
    /// continue (false right after a header).
    open: bool,
}

enum Property<'a> {
    Ok {
        key: &'a str,
        value_start: usize,
        value_end: usize,
    },
    NoEquals,
    NoKey,
}

/// Splits `key = value # comment`, giving the value's byte range in `line`.
fn split_property(line: &str) -> Property<'_> {
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
    fn new(file: &'a str) -> Parser<'a> {
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

    fn run(mut self, text: &str) -> Result<Vec<Section>, ConfigError> {
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
fn classify(header: &str) -> (SectionKind, &str) {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const FILE: &str = "~/.aws/config";

    fn parse(text: &str) -> ConfigFile {
        match ConfigFile::parse(text, FILE) {
            Ok(c) => c,
            Err(e) => panic!("parse failed: {e}"),
        }
    }

    fn parse_err(text: &str) -> String {
        match ConfigFile::parse(text, FILE) {
            Ok(_) => panic!("expected an error for {text:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn resolve(config: &ConfigFile, name: &str) -> ProfileChain {
        config.resolve(name, &no_env).unwrap()
    }

    fn names(chain: &ProfileChain) -> Vec<&str> {
        chain.links().iter().map(|l| l.name.as_str()).collect()
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    // ---- parsing ----

    #[test]
    fn missing_file_is_an_empty_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = ConfigFile::load(dir.path().join("nope")).unwrap();
        assert!(config.sections().is_empty());
        let chain = config.resolve("default", &no_env).unwrap();
        assert_eq!(names(&chain), ["default"]);
        assert!(!chain.target().in_file);
    }

    #[test]
    fn unreadable_path_is_a_read_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = ConfigFile::load(dir.path()).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
        assert!(err.to_string().starts_with("cannot read "), "{err}");
    }

    #[test]
    fn non_utf8_file_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, b"[default]\nregion = \xff\n").unwrap();
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(err.ends_with("line 2: is not UTF-8 text"), "{err}");
    }

    #[test]
    fn keys_compare_lowercase_and_profile_names_keep_case() {
        // aws-vault's exampleConfig: REGION=, Role_Arn=, mfa_Serial=.
        let config = parse(
            "[profile withMFA]\nRole_Arn=arn:aws:iam::4451234513441615400570:role/aws_admin\n\
             mfa_Serial=arn:aws:iam::1234513441:mfa/blah\nREGION=us-east-1\nduration_seconds=1200\n",
        );
        let p = resolve(&config, "withMFA").target().clone();
        assert_eq!(p.mfa_serial, s("arn:aws:iam::1234513441:mfa/blah"));
        assert_eq!(
            p.role_arn,
            s("arn:aws:iam::4451234513441615400570:role/aws_admin")
        );
        assert_eq!(p.region, s("us-east-1"));
        assert_eq!(p.duration_seconds, Some(1200));
        assert!(config.resolve("withmfa", &no_env).is_err());
    }

    #[test]
    fn comments_full_line_and_inline_after_whitespace() {
        let config = parse(
            "# top\n; also top\n[default] # header comment\n  # indented comment\n\
             region = moon-1 # Different from sso region\n\
             sso_region = moon-2  ; two spaces then semicolon\n\
             role_session_name = a#b;c\n\
             mfa_process = pass otp aws #work\n",
        );
        let d = config.profile_section("default").unwrap();
        assert_eq!(d.get("region"), Some("moon-1"));
        assert_eq!(d.get("sso_region"), Some("moon-2"));
        assert_eq!(d.get("role_session_name"), Some("a#b;c"));
        assert_eq!(d.get("mfa_process"), Some("pass otp aws"));
    }

    #[test]
    fn nested_subsections_are_kept_and_do_not_leak_into_profile() {
        // aws-vault's nestedConfig.
        let config = parse(
            "[default]\n\n[profile testing]\naws_access_key_id=foo\naws_secret_access_key=bar\n\
             region=us-west-2\ns3=\n  max_concurrent_requests=10\n  max_queue_size=1000\n\
             output = json\n",
        );
        let t = config.profile_section("testing").unwrap();
        let s3 = t.entry("s3").unwrap();
        assert_eq!(s3.value(), "");
        assert_eq!(s3.nested_value("max_concurrent_requests"), Some("10"));
        assert_eq!(s3.nested_value("max_queue_size"), Some("1000"));
        assert_eq!(s3.nested()[1].line, 9);
        assert_eq!(t.get("output"), Some("json"));
        assert_eq!(t.get("max_queue_size"), None);
        let p = resolve(&config, "testing").target().clone();
        assert_eq!(p.region, s("us-west-2"));
    }

    #[test]
    fn nested_line_without_equals_is_an_error() {
        assert_eq!(
            parse_err("[default]\ns3 =\n  max_concurrent_requests\n"),
            "~/.aws/config line 3: expected \"key = value\" nested under s3, found \"max_concurrent_requests\""
        );
    }

    #[test]
    fn indented_line_after_a_value_continues_it_and_a_typed_key_refuses_that() {
        let config = parse("[profile a]\nregion = us-east-1\n  output = json\n");
        let a = config.profile_section("a").unwrap();
        assert_eq!(a.get("region"), Some("us-east-1\noutput = json"));
        assert_eq!(
            config.resolve("a", &no_env).unwrap_err().to_string(),
            "~/.aws/config line 2: region in [profile a] runs onto line 3 because that line is \
             indented; remove the indentation, found \"us-east-1\\noutput = json\""
        );
    }

    #[test]
    fn indented_first_key_after_header_is_a_plain_key() {
        let config = parse("[profile a]\n  region = eu-west-1\n");
        assert_eq!(resolve(&config, "a").target().region, s("eu-west-1"));
    }

    #[test]
    fn crlf_line_endings() {
        let config =
            parse("[default]\r\nregion = us-east-1\r\n\r\n[profile a]\r\nrole_arn = r # c\r\n");
        assert_eq!(resolve(&config, "a").target().region, s("us-east-1"));
        assert_eq!(resolve(&config, "a").target().role_arn, s("r"));
    }

    #[test]
    fn utf8_bom_is_skipped() {
        let config = parse("\u{feff}[default]\nregion = us-east-1\n");
        assert_eq!(resolve(&config, "default").target().region, s("us-east-1"));
        assert!(config.to_bytes().starts_with("\u{feff}".as_bytes()));
    }

    #[test]
    fn malformed_line_without_equals() {
        assert_eq!(
            parse_err("[default]\nregion = x\n\n\n\n\nfoo\n"),
            "~/.aws/config line 7: expected \"key = value\", found \"foo\""
        );
    }

    #[test]
    fn colon_is_not_a_separator() {
        assert_eq!(
            parse_err("[default]\nregion: us-east-1\n"),
            "~/.aws/config line 2: expected \"key = value\", found \"region: us-east-1\""
        );
    }

    #[test]
    fn missing_key_before_equals() {
        assert_eq!(
            parse_err("[default]\n= x\n"),
            "~/.aws/config line 2: expected \"key = value\", found \"= x\" (no key before \"=\")"
        );
    }

    #[test]
    fn key_outside_any_section() {
        assert_eq!(
            parse_err("\n# comment\nregion = us-east-1\n[default]\n"),
            "~/.aws/config line 3: region is set before any section header; put it under [default] or [profile NAME]"
        );
    }

    #[test]
    fn unterminated_section_header() {
        assert_eq!(
            parse_err("[default]\nregion = x\n[profile foo\n"),
            "~/.aws/config line 3: section header \"[profile foo\" has no closing \"]\""
        );
    }

    #[test]
    fn text_after_section_header() {
        assert_eq!(
            parse_err("[profile foo] bar\n"),
            "~/.aws/config line 1: unexpected \"bar\" after the section header"
        );
    }

    #[test]
    fn empty_section_names() {
        assert_eq!(
            parse_err("[]\n"),
            "~/.aws/config line 1: empty section header \"[]\""
        );
        assert_eq!(
            parse_err("[profile ]\n"),
            "~/.aws/config line 1: section header [profile] has no name after \"profile\""
        );
    }

    #[test]
    fn duplicate_section() {
        assert_eq!(
            parse_err("[profile a]\nregion = x\n\n[profile a]\n"),
            "~/.aws/config line 4: section [profile a] appears twice (first on line 1); merge the two"
        );
    }

    #[test]
    fn default_and_profile_default_both_present() {
        assert_eq!(
            parse_err("[default]\n[profile default]\n"),
            "~/.aws/config line 2: [profile default] and [default] (line 1) both define profile \"default\"; keep one"
        );
    }

    #[test]
    fn profile_default_header_is_the_default_profile() {
        let config = parse("[profile default]\nregion = eu-central-1\n[profile a]\n");
        assert_eq!(resolve(&config, "a").target().region, s("eu-central-1"));
        assert_eq!(config.profile_names(), ["default", "a"]);
    }

    #[test]
    fn duplicate_key() {
        assert_eq!(
            parse_err("[profile a]\nrole_arn = x\nROLE_ARN = y\n"),
            "~/.aws/config line 3: role_arn is set twice in [profile a] (first on line 2); keep one"
        );
    }

    #[test]
    fn other_sections_are_kept_and_ignored() {
        // aws-vault's TestIniWithDEFAULTHeader: [DEFAULT] is not [default].
        let config = parse(
            "[DEFAULT]\nregion=us-east-1\n[default]\nregion=us-west-2\n[plugins]\ncli_legacy_plugin_path = /x\n\
             [sso-session moon]\nsso_region = moon-2\n[services local]\nsts =\n  endpoint_url = http://127.0.0.1:5000\n",
        );
        assert_eq!(config.profile_names(), ["default"]);
        assert_eq!(resolve(&config, "default").target().region, s("us-west-2"));
        let kinds: Vec<SectionKind> = config.sections().iter().map(Section::kind).collect();
        assert_eq!(
            kinds,
            [
                SectionKind::Other,
                SectionKind::Profile,
                SectionKind::Other,
                SectionKind::SsoSession,
                SectionKind::Services
            ]
        );
        assert_eq!(
            config
                .section(SectionKind::SsoSession, "moon")
                .unwrap()
                .get("sso_region"),
            Some("moon-2")
        );
    }

    #[test]
    fn empty_default_is_not_listed() {
        let config = parse("[default]\n\n[profile a]\n[profile b]\n");
        assert_eq!(config.profile_names(), ["a", "b"]);
    }

    #[test]
    fn whitespace_inside_profile_header_is_trimmed() {
        let config = parse("[  profile   spaced  ]\nregion = x\n");
        assert_eq!(config.profile_names(), ["spaced"]);
    }

    // ---- resolution: aws-vault README and USAGE.md examples ----

    const README_ROLES_AND_MFA: &str = "\
[default]
region = us-east-1

[profile jonsmith]
mfa_serial = arn:aws:iam::111111111111:mfa/jonsmith

[profile foo-readonly]
source_profile = jonsmith
role_arn = arn:aws:iam::22222222222:role/ReadOnly

[profile foo-admin]
source_profile = jonsmith
role_arn = arn:aws:iam::22222222222:role/Administrator
mfa_serial = arn:aws:iam::111111111111:mfa/jonsmith

[profile bar-role1]
source_profile = jonsmith
role_arn = arn:aws:iam::333333333333:role/Role1
mfa_serial = arn:aws:iam::111111111111:mfa/jonsmith

[profile bar-role2]
source_profile = bar-role1
role_arn = arn:aws:iam::333333333333:role/Role2
mfa_serial = arn:aws:iam::111111111111:mfa/jonsmith
";

    #[test]
    fn readme_roles_and_mfa_chain_of_three() {
        let config = parse(README_ROLES_AND_MFA);
        let chain = resolve(&config, "bar-role2");
        assert_eq!(names(&chain), ["jonsmith", "bar-role1", "bar-role2"]);
        assert_eq!(chain.to_string(), "jonsmith → bar-role1 → bar-role2");
        assert!(!chain.root().uses_role());
        assert_eq!(
            chain.root().mfa_serial(),
            Some("arn:aws:iam::111111111111:mfa/jonsmith")
        );
        assert_eq!(
            chain.links()[1].role_arn,
            s("arn:aws:iam::333333333333:role/Role1")
        );
        assert!(chain.target().uses_role());
        // [default] region reaches every link.
        assert!(chain
            .links()
            .iter()
            .all(|l| l.region.as_deref() == Some("us-east-1")));
        assert_eq!(
            chain.target().origin("region"),
            Some(&Origin::File {
                section: "default".into(),
                line: 2
            })
        );
    }

    #[test]
    fn readme_role_without_its_own_mfa_serial_does_not_inherit_the_sources() {
        // aws-vault v5+: mfa_serial is per profile, not taken from source_profile.
        let config = parse(README_ROLES_AND_MFA);
        let chain = resolve(&config, "foo-readonly");
        assert_eq!(names(&chain), ["jonsmith", "foo-readonly"]);
        assert_eq!(chain.target().mfa_serial(), None);
        assert!(chain.root().mfa_serial().is_some());
    }

    #[test]
    fn usage_use_case_1_executor() {
        let config = parse(
            "; master creds added with 'aws-vault add my_profile_master'\n\
             [profile my_profile_master]\n\n[profile my_profile_role]\n\
             source_profile=my_profile_master\nrole_arn=xxx\n",
        );
        let chain = resolve(&config, "my_profile_role");
        assert_eq!(names(&chain), ["my_profile_master", "my_profile_role"]);
        assert_eq!(chain.target().role_arn, s("xxx"));
        assert_eq!(
            names(&resolve(&config, "my_profile_master")),
            ["my_profile_master"]
        );
    }

    #[test]
    fn usage_use_case_2_credential_process_master() {
        let config = parse(
            "[profile my_profile_master]\n\
             credential_process = aws-vault export --format=json --no-session my_profile_master\n\n\
             [profile my_profile_role]\nsource_profile=my_profile_master\nrole_arn=xxx\n",
        );
        let chain = resolve(&config, "my_profile_role");
        assert_eq!(
            chain.root().credential_process,
            s("aws-vault export --format=json --no-session my_profile_master")
        );
        assert_eq!(chain.target().credential_process, None);
    }

    #[test]
    fn usage_use_case_3_shared_mfa_session() {
        let config = parse(
            "[profile my_profile_master]\nmfa_serial=mmm\n\
             credential_process = aws-vault export --format=json my_profile_master\n\n\
             [profile my_profile_role]\nsource_profile=my_profile_master\nmfa_serial=mmm\nrole_arn=xxx1\n\n\
             [profile my_profile_role2]\nsource_profile=my_profile_master\nmfa_serial=mmm\nrole_arn=xxx2\n",
        );
        for (name, role) in [("my_profile_role", "xxx1"), ("my_profile_role2", "xxx2")] {
            let chain = resolve(&config, name);
            assert_eq!(chain.root().mfa_serial(), Some("mmm"));
            assert_eq!(chain.target().mfa_serial(), Some("mmm"));
            assert_eq!(chain.target().role_arn, s(role));
        }
    }

    #[test]
    fn usage_use_case_4_sso_and_process_sources() {
        let config = parse(
            "[profile my_profile_using_sso]\nsso_start_url = https://mycompany.awsapps.com/start\n\n\
             [profile my_profile_using_process]\ncredential_process = my-custom-creds-cmd\n",
        );
        let sso = resolve(&config, "my_profile_using_sso").target().clone();
        assert!(sso.uses_sso());
        assert_eq!(
            sso.unsupported().unwrap().to_string(),
            "profile \"my_profile_using_sso\" uses SSO (sso_start_url at \
             ~/.aws/config [profile my_profile_using_sso] line 2), which vault does not support"
        );
        let process = resolve(&config, "my_profile_using_process")
            .target()
            .clone();
        assert_eq!(process.credential_process, s("my-custom-creds-cmd"));
        assert!(process.unsupported().is_none());
    }

    #[test]
    fn usage_include_profile_mixin_style() {
        let config = parse(
            "; The \"common\" profile here operates as a \"config fragment\" rather than a profile\n\
             [profile common]\nregion=eu-west-1\nmfa_serial=arn:aws:iam::123456789:mfa/johnsmith\n\
             source_profile = root\n\n[profile root]\ninclude_profile = common\n\n\
             [profile order-dev]\ninclude_profile = common\nrole_arn=arn:aws:iam::123456789:role/developers\n\n\
             [profile order-staging-admin]\ninclude_profile = common\n\
             role_arn=arn:aws:iam::123456789:role/administrators\n",
        );
        let chain = resolve(&config, "order-dev");
        assert_eq!(names(&chain), ["root", "order-dev"]);
        let (root, dev) = (chain.root(), chain.target());
        // root includes source_profile = root from common: itself, so no source.
        assert_eq!(root.source_profile, None);
        assert_eq!(root.region, s("eu-west-1"));
        assert_eq!(
            root.mfa_serial(),
            Some("arn:aws:iam::123456789:mfa/johnsmith")
        );
        assert_eq!(root.include_profile, s("common"));
        assert_eq!(
            dev.mfa_serial(),
            Some("arn:aws:iam::123456789:mfa/johnsmith")
        );
        assert_eq!(dev.role_arn, s("arn:aws:iam::123456789:role/developers"));
        assert_eq!(
            dev.origin("mfa_serial"),
            Some(&Origin::File {
                section: "profile common".into(),
                line: 4
            })
        );
        let admin = resolve(&config, "order-staging-admin");
        assert_eq!(names(&admin), ["root", "order-staging-admin"]);
    }

    #[test]
    fn usage_include_profile_parent_style() {
        let config = parse(
            "[profile root]\nregion=eu-west-1\nmfa_serial=arn:aws:iam::123456789:mfa/johnsmith\n\
             source_profile = root\n\n[profile order-dev]\ninclude_profile = root\n\
             role_arn=arn:aws:iam::123456789:role/developers\n\n[profile order-staging-admin]\n\
             include_profile = root\nrole_arn=arn:aws:iam::123456789:role/administrators\n",
        );
        let chain = resolve(&config, "order-staging-admin");
        assert_eq!(names(&chain), ["root", "order-staging-admin"]);
        assert_eq!(chain.root().source_profile, None);
        assert_eq!(chain.target().source_profile, s("root"));
        assert_eq!(chain.target().region, s("eu-west-1"));
    }

    #[test]
    fn usage_session_tags_and_transitive_session_tags() {
        let config = parse(
            "[profile root]\nregion=eu-west-1\n\n[profile order-dev]\nsource_profile = root\n\
             role_arn=arn:aws:iam::123456789:role/developers\n\
             session_tags = key1=value1,key2=value2,key3=value3\ntransitive_session_tags = key1,key2\n",
        );
        let t = resolve(&config, "order-dev").target().clone();
        let tags: Vec<(&str, &str)> = t
            .session_tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            tags,
            [("key1", "value1"), ("key2", "value2"), ("key3", "value3")]
        );
        assert_eq!(t.transitive_session_tags, ["key1", "key2"]);
    }

    #[test]
    fn usage_source_identity() {
        let config = parse(
            "[profile root]\nregion=eu-west-1\n\n[profile order-dev]\nsource_profile = root\n\
             role_arn=arn:aws:iam::123456789:role/developers\nsource_identity=your_user_name\n",
        );
        assert_eq!(
            resolve(&config, "order-dev").target().source_identity,
            s("your_user_name")
        );
    }

    #[test]
    fn usage_mfa_process_pass_1password_and_ykman() {
        for process in [
            "pass otp my_aws_mfa",
            "op item get my_aws_mfa --otp",
            "ykman oath accounts code --single arn:aws:iam::123456789012:mfa/jonsmith",
        ] {
            let config = parse(&format!(
                "[profile foo]\nmfa_serial=arn:aws:iam::123456789:mfa/johnsmith\nmfa_process={process}\n"
            ));
            let p = resolve(&config, "foo").target().clone();
            assert_eq!(p.mfa_process.as_deref(), Some(process));
            assert_eq!(p.mfa_serial(), Some("arn:aws:iam::123456789:mfa/johnsmith"));
        }
    }

    #[test]
    fn usage_multiple_profiles_home_and_work() {
        let config = parse(
            "[default]\nregion = us-east-1\n\n[profile home]\nmfa_serial = arn:aws:iam::111111111111:mfa/home-account\n\n\
             [profile work]\nmfa_serial = arn:aws:iam::111111111111:mfa/work-account\n\
             role_arn = arn:aws:iam::111111111111:role/ReadOnly\n\n[profile work-admin]\n\
             role_arn = arn:aws:iam::111111111111:role/Administrator\nsource_profile = work\n",
        );
        let chain = resolve(&config, "work-admin");
        assert_eq!(names(&chain), ["work", "work-admin"]);
        // work has a role of its own, assumed with its stored keys.
        assert!(chain.root().uses_role());
        assert_eq!(chain.target().mfa_serial(), None);
        assert_eq!(
            config.profile_names(),
            ["default", "home", "work", "work-admin"]
        );
    }

    #[test]
    fn usage_mfa_shared_between_roles() {
        let config = parse(
            "[profile tom]\nmfa_serial = arn:aws:iam::111111111111:mfa/tom\n\n[profile role1]\n\
             source_profile = tom\nrole_arn = arn:aws:iam::22222222222:role/role1\n\
             mfa_serial = arn:aws:iam::111111111111:mfa/tom\n\n[profile role2]\nsource_profile = tom\n\
             role_arn = arn:aws:iam::33333333333:role/role2\nmfa_serial = arn:aws:iam::111111111111:mfa/tom\n",
        );
        for role in ["role1", "role2"] {
            let chain = resolve(&config, role);
            assert_eq!(chain.root().mfa_serial(), chain.target().mfa_serial());
        }
    }

    #[test]
    fn usage_mfa_gotchas_include_profile_carries_mfa_and_source() {
        let config = parse(
            "[profile jon]\nmfa_serial = arn:aws:iam::111111111111:mfa/jon\nsource_profile=jon\n\n\
             [profile role1]\nrole_arn = arn:aws:iam::22222222222:role/role1\ninclude_profile = jon\n\n\
             [profile role2]\nrole_arn = arn:aws:iam::33333333333:role/role2\ninclude_profile = jon\n",
        );
        let chain = resolve(&config, "role2");
        assert_eq!(names(&chain), ["jon", "role2"]);
        assert_eq!(
            chain.target().mfa_serial(),
            Some("arn:aws:iam::111111111111:mfa/jon")
        );
        assert_eq!(chain.root().source_profile, None);
    }

    #[test]
    fn sso_settings_as_the_aws_cli_resolves_them() {
        let config = parse(
            "[sso-session corp]\nsso_start_url = https://corp/start\nsso_region = eu-west-1\n\
             sso_registration_scopes = sso:account:access, other:scope\n\n\
             [profile new]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = Admin\n\n\
             [profile agrees]\nsso_session = corp\nsso_region = eu-west-1\nsso_account_id = 1\nsso_role_name = A\n\n\
             [profile differs]\nsso_session = corp\nsso_start_url = https://other/start\n\
             sso_account_id = 1\nsso_role_name = A\n\n\
             [profile legacy]\nsso_start_url = https://corp/start\nsso_region = us-east-1\n\
             sso_account_id = 2\nsso_role_name = R\n\n[profile plain]\nregion = eu-west-1\n",
        );
        let sso = |name: &str| config.sso(resolve(&config, name).target());
        let new = sso("new").unwrap().unwrap();
        assert_eq!(new.session.as_deref(), Some("corp"));
        assert_eq!(new.start_url, "https://corp/start");
        assert_eq!(new.region, "eu-west-1");
        assert_eq!(
            new.registration_scopes,
            ["sso:account:access", "other:scope"]
        );
        assert_eq!(
            (new.account_id.as_str(), new.role_name.as_str()),
            ("1", "Admin")
        );
        assert!(sso("agrees").unwrap().is_some());
        let e = sso("differs").unwrap_err().to_string();
        assert!(e.contains("its sso_start_url (https://other/start) differs from the one of [sso-session corp] (https://corp/start)"), "{e}");
        let legacy = sso("legacy").unwrap().unwrap();
        assert_eq!(
            (legacy.session, legacy.region.as_str()),
            (None, "us-east-1")
        );
        assert!(legacy.registration_scopes.is_empty());
        assert_eq!(sso("plain").unwrap(), None);
        assert_eq!(
            config.sso_session("corp").unwrap().start_url,
            "https://corp/start"
        );
        assert!(config.sso_session("nope").is_err());
    }

    #[test]
    fn usage_sso_profile_and_sso_session_are_flagged() {
        let config = parse(
            "[profile Administrator-123456789012]\nsso_start_url=https://aws-sso-portal.awsapps.com/start\n\
             sso_region=eu-west-1\nsso_account_id=123456789012\nsso_role_name=Administrator\n\n\
             [profile with-sso-session]\nsso_session = moon-sso\nsso_account_id=123456\n\
             region = moon-1 # Different from sso region\n\n[sso-session moon-sso]\n\
             sso_start_url = https://d-123456789.example.com/start\nsso_region = moon-2\n",
        );
        let admin = resolve(&config, "Administrator-123456789012")
            .target()
            .clone();
        assert_eq!(admin.sso.len(), 4);
        let with_session = resolve(&config, "with-sso-session").target().clone();
        assert!(with_session.uses_sso());
        assert_eq!(with_session.region, s("moon-1"));
        let err = with_session.unsupported().unwrap();
        assert!(
            err.to_string().contains("uses SSO (sso_session at"),
            "{err}"
        );
        assert!(err
            .hint()
            .unwrap()
            .contains("aws sso login --profile with-sso-session"));
    }

    #[test]
    fn usage_web_identity_is_flagged() {
        let config = parse(
            "[profile role1]\nrole_arn = arn:aws:iam::22222222222:role/role1\n\
             web_identity_token_file = /path/to/token.txt\n\n[profile role2]\n\
             role_arn = arn:aws:iam::33333333333:role/role2\nweb_identity_token_process = oidccli raw\n",
        );
        for name in ["role1", "role2"] {
            let err = resolve(&config, name)
                .target()
                .unsupported()
                .unwrap()
                .to_string();
            assert!(err.contains("web identity federation"), "{err}");
        }
    }

    #[test]
    fn usage_credential_process_invoking_vault() {
        let config = parse(
            "[profile home]\ncredential_process = aws-vault export --format=json home\n\n\
             [profile work]\nmfa_serial = arn:aws:iam::123456789012:mfa/jonsmith\n\
             credential_process = aws-vault --prompt=osascript export --format=json work\n",
        );
        assert_eq!(
            resolve(&config, "work").target().credential_process,
            s("aws-vault --prompt=osascript export --format=json work")
        );
        let config = parse(
            "[profile jon]\ncredential_process = aws-vault export --no-session --format=json jon\n\n\
             [profile work]\nmfa_serial = arn:aws:iam::123456789012:mfa/jonsmith\n\
             role_arn = arn:aws:iam::33333333333:role/role2\nsource_profile = jon\n",
        );
        assert_eq!(names(&resolve(&config, "work")), ["jon", "work"]);
    }

    #[test]
    fn usage_docker_source_profile_known_only_to_the_store() {
        let text = "[profile base-role]\nsource_profile=myprofile\n\
                    role_arn=arn:aws:iam::222222222222:role/aws-vault-test\n\
                    mfa_serial=arn:aws:iam::222222222222:mfa/<your.aws.username>\n";
        let config = parse(text);
        assert_eq!(
            config
                .resolve("base-role", &no_env)
                .unwrap_err()
                .to_string(),
            "~/.aws/config line 2: source_profile = myprofile in [profile base-role] names a \
             profile that is not in the file; its profiles are base-role"
        );
        let chain = config
            .resolve_with("base-role", &no_env, &|n| n == "myprofile")
            .unwrap();
        assert_eq!(names(&chain), ["myprofile", "base-role"]);
        assert!(!chain.root().in_file);
    }

    #[test]
    fn quick_start_profile_with_stored_keys_and_no_config() {
        let config = parse("");
        assert!(config.resolve("jonsmith", &no_env).is_err());
        let chain = config
            .resolve_with("jonsmith", &no_env, &|n| n == "jonsmith")
            .unwrap();
        assert_eq!(names(&chain), ["jonsmith"]);
    }

    #[test]
    fn stored_keys_end_the_chain_even_with_a_source_profile() {
        let config = parse("[profile a]\nsource_profile = b\nrole_arn = r\n[profile b]\n");
        let chain = config.resolve_with("a", &no_env, &|n| n == "a").unwrap();
        assert_eq!(names(&chain), ["a"]);
        assert!(chain.root().uses_role());
    }

    // ---- inheritance ----

    #[test]
    fn default_fills_unset_fields_and_own_values_win() {
        let config = parse(
            "[default]\nregion = us-east-1\nmfa_serial = m-default\nvault_backend = file\n\
             [profile a]\nregion = eu-west-1\n",
        );
        let a = resolve(&config, "a").target().clone();
        assert_eq!(a.region, s("eu-west-1"));
        assert_eq!(a.mfa_serial(), Some("m-default"));
        assert_eq!(a.vault_value("vault_backend"), Some("file"));
    }

    #[test]
    fn empty_value_counts_as_unset_and_inherits() {
        let config = parse("[default]\nregion = us-east-1\n[profile a]\nregion =\n");
        assert_eq!(resolve(&config, "a").target().region, s("us-east-1"));
    }

    #[test]
    fn include_profile_replaces_default_but_default_still_comes_last() {
        let config = parse(
            "[default]\nregion = d\nexternal_id = from-default\n\
             [profile common]\nregion = c\n[profile a]\ninclude_profile = common\n",
        );
        let a = resolve(&config, "a").target().clone();
        assert_eq!(a.region, s("c"));
        assert_eq!(a.external_id, s("from-default"));
    }

    #[test]
    fn include_profile_chains_through_several_fragments() {
        let config = parse(
            "[profile x]\nregion = x\n[profile y]\ninclude_profile = x\nmfa_serial = y\n\
             [profile a]\ninclude_profile = y\n",
        );
        let a = resolve(&config, "a").target().clone();
        assert_eq!((a.region, a.mfa_serial), (s("x"), s("y")));
    }

    #[test]
    fn default_with_include_profile_is_not_a_loop() {
        let config = parse(
            "[default]\ninclude_profile = common\n[profile common]\nregion = r\n[profile a]\n",
        );
        assert_eq!(resolve(&config, "a").target().region, s("r"));
        assert_eq!(resolve(&config, "default").target().region, s("r"));
    }

    #[test]
    fn inherited_source_profile_naming_itself_means_no_source() {
        // aws-vault's TestLoadedProfileDoesntReferToItself, plus the
        // [default] case that makes the rule necessary.
        let config = parse("[profile foo]\nsource_profile=foo\n");
        assert_eq!(resolve(&config, "foo").target().source_profile, None);
        let config = parse(
            "[default]\nsource_profile = base\n[profile base]\n[profile app]\nrole_arn = r\n",
        );
        assert_eq!(names(&resolve(&config, "app")), ["base", "app"]);
        assert_eq!(names(&resolve(&config, "base")), ["base"]);
    }

    #[test]
    fn source_profile_can_refer_to_included_parent() {
        // aws-vault's TestSourceProfileCanReferToParent.
        let config =
            parse("[profile root]\n\n[profile foo]\ninclude_profile=root\nsource_profile=root\n");
        assert_eq!(names(&resolve(&config, "foo")), ["root", "foo"]);
    }

    #[test]
    fn each_link_resolves_its_own_inheritance() {
        let config = parse(
            "[default]\nregion = d\n[profile frag]\nregion = f\n\
             [profile base]\ninclude_profile = frag\n[profile app]\nsource_profile = base\nrole_arn = r\n",
        );
        let chain = resolve(&config, "app");
        assert_eq!(chain.root().region, s("f"));
        assert_eq!(chain.target().region, s("d"));
    }

    #[test]
    fn tags_apply_per_link() {
        // aws-vault's TestSessionTaggingFromEnvironmentChainedRoles.
        let config = parse(
            "[profile base]\n\n[profile interim]\nsession_tags=tag1=value1\ntransitive_session_tags=tag2\n\
             source_profile = base\n\n[profile target]\nsession_tags=tagA=valueA\n\
             transitive_session_tags=tagB\nsource_profile = interim\n",
        );
        let env = env_of(&[
            ("AWS_SESSION_TAGS", "tagI=valI"),
            ("AWS_TRANSITIVE_TAGS", " tagII"),
        ]);
        let chain = config.resolve("target", &env).unwrap();
        let [base, interim, target] = chain.links() else {
            panic!("{chain}")
        };
        assert_eq!(
            target.session_tags.get("tagI").map(String::as_str),
            Some("valI")
        );
        assert_eq!(target.transitive_session_tags, ["tagII"]);
        assert_eq!(
            interim.session_tags.get("tag1").map(String::as_str),
            Some("value1")
        );
        assert_eq!(interim.transitive_session_tags, ["tag2"]);
        assert!(base.session_tags.is_empty() && base.transitive_session_tags.is_empty());
    }

    #[test]
    fn session_tags_parse_like_aws_vault() {
        let ok = |raw: &str| parse_session_tags(raw).unwrap();
        assert_eq!(ok("tag1=value1").len(), 1);
        let spaced = ok(" tagA = valueA ,  tagB  =  valueB  ,  tagC   =   valueC  ");
        assert_eq!(spaced.get("tagB").map(String::as_str), Some("valueB"));
        assert_eq!(ok("k=a=b").get("k").map(String::as_str), Some("a=b"));
        for bad in [
            "tag1=value1,",
            "tagA=valueA,tagB",
            "tagOne,tagTwo=valueTwo",
            "=v",
            "a=1,A=2",
        ] {
            assert!(parse_session_tags(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_session_tags_name_the_line_or_variable() {
        let config = parse("[profile a]\nsession_tags = a=1,b\n");
        assert_eq!(
            config.resolve("a", &no_env).unwrap_err().to_string(),
            "~/.aws/config line 2: session_tags in [profile a] must be Key1=Value1,Key2=Value2, found \"a=1,b\""
        );
        let env = env_of(&[("AWS_SESSION_TAGS", "x")]);
        assert_eq!(
            config.resolve("a", &env).unwrap_err().to_string(),
            "$AWS_SESSION_TAGS must be Key1=Value1,Key2=Value2, found \"x\""
        );
    }

    #[test]
    fn transitive_tags_drop_empty_items() {
        let config = parse("[profile a]\ntransitive_session_tags = ,tagA, ,tagB,\n");
        assert_eq!(
            resolve(&config, "a").target().transitive_session_tags,
            ["tagA", "tagB"]
        );
    }

    #[test]
    fn duration_seconds_is_validated_where_it_is_set() {
        let config = parse("[default]\nduration_seconds = 60\n[profile a]\n");
        assert_eq!(
            config.resolve("a", &no_env).unwrap_err().to_string(),
            "~/.aws/config line 2: duration_seconds in [default] must be a number of seconds from \
             900 to 129600 (15 minutes to 36 hours), found \"60\""
        );
        for bad in ["1h", "-1", "129601", "899", ""] {
            let text = format!("[profile a]\nduration_seconds = {bad} \n");
            let result = parse(&text).resolve("a", &no_env);
            if bad.is_empty() {
                assert_eq!(result.unwrap().target().duration_seconds, None);
            } else {
                assert!(result.is_err(), "{bad}");
            }
        }
        for good in [900, 3600, 129_600] {
            let config = parse(&format!("[profile a]\nduration_seconds = {good}\n"));
            assert_eq!(resolve(&config, "a").target().duration_seconds, Some(good));
        }
    }

    #[test]
    fn vault_keys_are_collected_with_their_prefix() {
        let config =
            parse("[profile a]\nvault_backend = file\nvault_token_serial = 12345678\nregion = r\n");
        let a = resolve(&config, "a").target().clone();
        let keys: Vec<&str> = a.vault.keys().map(String::as_str).collect();
        assert_eq!(keys, ["vault_backend", "vault_token_serial"]);
        assert_eq!(a.vault_value("vault_token_serial"), Some("12345678"));
    }

    #[test]
    fn credential_source_is_flagged() {
        let config = parse("[profile a]\nrole_arn = r\ncredential_source = Ec2InstanceMetadata\n");
        let err = resolve(&config, "a")
            .target()
            .unsupported()
            .unwrap()
            .to_string();
        assert!(
            err.contains("credential_source at ~/.aws/config [profile a] line 3"),
            "{err}"
        );
    }

    // ---- loops and missing profiles ----

    #[test]
    fn source_profile_loop_is_named() {
        let config = parse("[profile a]\nsource_profile = b\n[profile b]\nsource_profile = a\n");
        assert_eq!(
            config.resolve("a", &no_env).unwrap_err().to_string(),
            "source_profile loop in ~/.aws/config: a → b → a"
        );
    }

    #[test]
    fn source_profile_loop_not_through_the_target() {
        let config = parse(
            "[profile t]\nsource_profile = a\n[profile a]\nsource_profile = b\n\
             [profile b]\nsource_profile = c\n[profile c]\nsource_profile = a\n",
        );
        let err = config.resolve("t", &no_env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "source_profile loop in ~/.aws/config: a → b → c → a"
        );
        assert!(err.hint().is_some());
    }

    #[test]
    fn include_profile_loop_is_named() {
        let config = parse("[profile a]\ninclude_profile = b\n[profile b]\ninclude_profile = a\n");
        assert_eq!(
            config.resolve("a", &no_env).unwrap_err().to_string(),
            "include_profile loop in ~/.aws/config: a → b → a"
        );
        let config = parse("[profile a]\ninclude_profile = a\n");
        assert_eq!(
            config.resolve("a", &no_env).unwrap_err().to_string(),
            "include_profile loop in ~/.aws/config: a → a"
        );
    }

    #[test]
    fn include_loop_through_default() {
        let config =
            parse("[default]\ninclude_profile = a\n[profile a]\ninclude_profile = default\n");
        assert_eq!(
            config.resolve("a", &no_env).unwrap_err().to_string(),
            "include_profile loop in ~/.aws/config: a → default → a"
        );
    }

    #[test]
    fn missing_include_profile_is_named() {
        let config = parse("[profile a]\n\ninclude_profile = comon\n[profile common]\n");
        assert_eq!(
            config.resolve("a", &no_env).unwrap_err().to_string(),
            "~/.aws/config line 3: include_profile = comon in [profile a] names a profile that is \
             not in the file; did you mean \"common\"?"
        );
    }

    #[test]
    fn missing_include_profile_is_an_error_even_with_stored_keys() {
        let config = parse("[profile a]\ninclude_profile = frag\n");
        assert!(config.resolve_with("a", &no_env, &|_| true).is_err());
    }

    #[test]
    fn missing_source_profile_inherited_from_default_names_default_line() {
        let config = parse("[default]\nregion = r\nsource_profile = nobody\n[profile a]\n");
        assert_eq!(
            config.resolve("a", &no_env).unwrap_err().to_string(),
            "~/.aws/config line 3: source_profile = nobody in [default] names a profile that is \
             not in the file; its profiles are default, a"
        );
    }

    #[test]
    fn unknown_profile_suggests_nearby_names() {
        let config = parse(README_ROLES_AND_MFA);
        let err = config.resolve("foo-admn", &no_env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "profile \"foo-admn\" is not in ~/.aws/config; did you mean \"foo-admin\"?"
        );
        assert_eq!(
            err.hint().unwrap(),
            "add a [profile foo-admn] section to ~/.aws/config, or store keys for it with `vault add foo-admn`"
        );
        let err = config.resolve("bar", &no_env).unwrap_err().to_string();
        assert!(
            err.ends_with("did you mean \"bar-role1\" or \"bar-role2\"?"),
            "{err}"
        );
        let err = config
            .resolve("zzzzzzzzzzzz", &no_env)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(
                "its profiles are default, jonsmith, foo-readonly, foo-admin, bar-role1, bar-role2"
            ),
            "{err}"
        );
    }

    #[test]
    fn unknown_profile_written_without_profile_prefix_is_pointed_out() {
        let config = parse("[default]\n[work]\nregion = r\n");
        assert_eq!(
            config.resolve("work", &no_env).unwrap_err().to_string(),
            "profile \"work\" is not in ~/.aws/config; line 2 has [work], but in this file a \
             profile's header is [profile work]"
        );
    }

    #[test]
    fn default_may_be_missing() {
        let config = parse("[profile a]\nregion = r\n");
        let chain = resolve(&config, "default");
        assert_eq!(chain.target().region, None);
        assert!(!chain.target().in_file);
    }

    // ---- environment ----

    #[test]
    fn env_region_beats_the_file_for_every_link() {
        let config = parse("[profile base]\nregion = eu-west-1\n[profile app]\nsource_profile = base\nrole_arn = r\n");
        let env = env_of(&[("AWS_DEFAULT_REGION", "ap-south-1")]);
        let chain = config.resolve("app", &env).unwrap();
        assert!(chain
            .links()
            .iter()
            .all(|l| l.region.as_deref() == Some("ap-south-1")));
        assert_eq!(
            chain.root().origin("region"),
            Some(&Origin::Env("AWS_DEFAULT_REGION"))
        );
        let env = env_of(&[
            ("AWS_DEFAULT_REGION", "ap-south-1"),
            ("AWS_REGION", "us-west-1"),
        ]);
        assert_eq!(
            config.resolve("app", &env).unwrap().target().region,
            s("us-west-1")
        );
        let env = env_of(&[("AWS_REGION", "")]);
        assert_eq!(
            config.resolve("app", &env).unwrap().root().region,
            s("eu-west-1")
        );
    }

    #[test]
    fn env_mfa_serial_applies_to_every_link() {
        let config = parse("[profile base]\n[profile app]\nsource_profile = base\nrole_arn = r\nmfa_serial = file\n");
        let env = env_of(&[("AWS_MFA_SERIAL", "arn:env")]);
        let chain = config.resolve("app", &env).unwrap();
        assert_eq!(chain.root().mfa_serial(), Some("arn:env"));
        assert_eq!(chain.target().mfa_serial(), Some("arn:env"));
    }

    #[test]
    fn env_role_settings_apply_to_the_target_only() {
        let config = parse(
            "[profile base]\nrole_arn = base-role\nrole_session_name = base-session\n\
             [profile app]\nsource_profile = base\nrole_arn = app-role\n",
        );
        let env = env_of(&[
            ("AWS_ROLE_ARN", "env-role"),
            ("AWS_ROLE_SESSION_NAME", "env-session"),
            ("AWS_SOURCE_IDENTITY", "me"),
        ]);
        let chain = config.resolve("app", &env).unwrap();
        assert_eq!(chain.target().role_arn, s("env-role"));
        assert_eq!(chain.target().role_session_name, s("env-session"));
        assert_eq!(chain.target().source_identity, s("me"));
        assert_eq!(chain.root().role_arn, s("base-role"));
        assert_eq!(chain.root().role_session_name, s("base-session"));
        assert_eq!(chain.root().source_identity, None);
    }

    #[test]
    fn role_session_name_from_file() {
        let config =
            parse("[profile a]\nrole_arn = r\nrole_session_name = alice\nexternal_id = xyz\n");
        let a = resolve(&config, "a").target().clone();
        assert_eq!((a.role_session_name, a.external_id), (s("alice"), s("xyz")));
    }

    #[test]
    fn sts_endpoint_precedence() {
        let config = parse(
            "[profile a]\nendpoint_url = http://profile\n[profile b]\nendpoint_url = http://profile\n\
             services = local\n[services local]\nsts =\n  endpoint_url = http://services\n",
        );
        assert_eq!(resolve(&config, "a").sts_endpoint(), Some("http://profile"));
        assert_eq!(
            resolve(&config, "b").sts_endpoint(),
            Some("http://services")
        );
        let env = env_of(&[("AWS_ENDPOINT_URL", "http://global")]);
        assert_eq!(
            config.resolve("b", &env).unwrap().sts_endpoint(),
            Some("http://global")
        );
        let env = env_of(&[
            ("AWS_ENDPOINT_URL", "http://global"),
            ("AWS_ENDPOINT_URL_STS", "http://sts"),
        ]);
        let chain = config.resolve("b", &env).unwrap();
        assert_eq!(chain.sts_endpoint(), Some("http://sts"));
        assert_eq!(
            chain.target().origin("sts_endpoint"),
            Some(&Origin::Env("AWS_ENDPOINT_URL_STS"))
        );
        assert_eq!(resolve(&parse("[profile c]\n"), "c").sts_endpoint(), None);
    }

    #[test]
    fn profile_name_precedence() {
        let env = env_of(&[("AWS_PROFILE", "from-env")]);
        assert_eq!(profile_name(Some("arg"), &env), "arg");
        assert_eq!(profile_name(None, &env), "from-env");
        assert_eq!(profile_name(None, &no_env), "default");
        assert_eq!(
            profile_name(None, &env_of(&[("AWS_PROFILE", "")])),
            "default"
        );
    }

    #[test]
    fn default_path_precedence() {
        let env = env_of(&[("AWS_CONFIG_FILE", "/etc/aws"), ("HOME", "/home/u")]);
        assert_eq!(default_path_from(&env), PathBuf::from("/etc/aws"));
        let env = env_of(&[("AWS_CONFIG_FILE", "~/cfg"), ("HOME", "/home/u")]);
        assert_eq!(default_path_from(&env), PathBuf::from("/home/u/cfg"));
        let env = env_of(&[("HOME", "/home/u")]);
        assert_eq!(
            default_path_from(&env),
            PathBuf::from("/home/u/.aws/config")
        );
    }

    #[test]
    fn display_path_abbreviates_home() {
        let home = Path::new("/home/u");
        assert_eq!(
            display_path(Path::new("/home/u/.aws/config"), Some(home)),
            "~/.aws/config"
        );
        assert_eq!(display_path(Path::new("/etc/aws"), Some(home)), "/etc/aws");
    }

    // ---- editing ----

    #[test]
    fn set_value_edits_in_place_keeping_comments_and_order() {
        let text = "# keep me\n[default]\nregion=us-east-1\n\n[profile a]\nmfa_serial=old # my key\nrole_arn = r\n";
        let mut config = parse(text);
        config.set_value("a", "mfa_serial", "arn:new").unwrap();
        assert_eq!(
            String::from_utf8(config.to_bytes()).unwrap(),
            "# keep me\n[default]\nregion=us-east-1\n\n[profile a]\nmfa_serial=arn:new # my key\nrole_arn = r\n"
        );
    }

    #[test]
    fn set_value_adds_key_at_end_of_section_before_next_header_comment() {
        let text = "[profile a]\nregion = r\n\n# about b\n[profile b]\nregion = q\n";
        let mut config = parse(text);
        config.set_value("a", "vault_token_serial", "123").unwrap();
        assert_eq!(
            String::from_utf8(config.to_bytes()).unwrap(),
            "[profile a]\nregion = r\nvault_token_serial = 123\n\n# about b\n[profile b]\nregion = q\n"
        );
    }

    #[test]
    fn set_value_after_nested_block_and_in_empty_section() {
        let mut config = parse("[profile a]\ns3 =\n  max = 1\n[profile b]");
        config.set_value("a", "region", "r").unwrap();
        config.set_value("b", "region", "q").unwrap();
        assert_eq!(
            String::from_utf8(config.to_bytes()).unwrap(),
            "[profile a]\ns3 =\n  max = 1\nregion = r\n[profile b]\nregion = q\n"
        );
    }

    #[test]
    fn set_value_appends_a_section_with_the_files_line_endings_and_bom() {
        let mut config = parse("\u{feff}[default]\r\nregion = r\r\n");
        config.set_value("new", "mfa_serial", "arn:x").unwrap();
        config.set_value("default", "output", "json").unwrap();
        assert_eq!(
            String::from_utf8(config.to_bytes()).unwrap(),
            "\u{feff}[default]\r\nregion = r\r\noutput = json\r\n\r\n[profile new]\r\nmfa_serial = arn:x\r\n"
        );
        let mut empty = parse("");
        empty.set_value("default", "region", "r").unwrap();
        assert_eq!(
            String::from_utf8(empty.to_bytes()).unwrap(),
            "[default]\nregion = r\n"
        );
    }

    #[test]
    fn set_value_replaces_a_continued_value() {
        let mut config = parse("[profile a]\nregion = x\n  y\nrole_arn = r\n");
        config.set_value("a", "REGION", "z").unwrap();
        assert_eq!(
            String::from_utf8(config.to_bytes()).unwrap(),
            "[profile a]\nregion = z\nrole_arn = r\n"
        );
    }

    #[test]
    fn set_value_refuses_what_would_not_read_back() {
        let mut config = parse("[profile a]\n");
        for (profile, key, value) in [
            ("a", "k", "x #y"),
            ("a", "k", " x"),
            ("a", "k", "x\ny"),
            ("a", "k", ""),
            ("a", "a b", "x"),
            ("a]", "k", "x"),
            ("", "k", "x"),
        ] {
            let err = config.set_value(profile, key, value).unwrap_err();
            assert!(
                matches!(err, ConfigError::Edit { .. }),
                "{profile:?} {key:?} {value:?}"
            );
        }
        assert_eq!(
            String::from_utf8(config.to_bytes()).unwrap(),
            "[profile a]\n"
        );
    }

    #[test]
    fn save_writes_atomically_with_the_same_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, "[profile a]\nregion = r\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        }
        let mut config = ConfigFile::load(&path).unwrap();
        config.set_value("a", "mfa_serial", "arn:x").unwrap();
        config.save().unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "[profile a]\nregion = r\nmfa_serial = arn:x\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o640);
        }
        let leftovers = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1);
        // A second edit after a save works from the saved state.
        config.set_value("a", "region", "q").unwrap();
        config.save().unwrap();
        assert!(fs::read_to_string(&path).unwrap().contains("region = q"));
    }

    #[test]
    fn save_creates_a_missing_file_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".aws").join("config");
        let mut config = ConfigFile::load(&path).unwrap();
        config.set_value("a", "mfa_serial", "arn:x").unwrap();
        config.save().unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "[profile a]\nmfa_serial = arn:x\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn save_through_a_symlink_keeps_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dotfiles-config");
        let link = dir.path().join("config");
        fs::write(&real, "[profile a]\n").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut config = ConfigFile::load(&link).unwrap();
        config.set_value("a", "region", "r").unwrap();
        config.save().unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            fs::read_to_string(&real).unwrap(),
            "[profile a]\nregion = r\n"
        );
    }

    #[test]
    fn save_refuses_when_the_file_changed_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, "[profile a]\n").unwrap();
        let mut config = ConfigFile::load(&path).unwrap();
        fs::write(&path, "[profile a]\nregion = someone-else\n").unwrap();
        config.set_value("a", "region", "r").unwrap();
        let err = config.save().unwrap_err();
        assert!(
            err.to_string().ends_with("it changed since vault read it"),
            "{err}"
        );
        assert!(fs::read_to_string(&path).unwrap().contains("someone-else"));
    }

    #[test]
    fn parsed_text_cannot_be_saved() {
        let mut config = parse("[profile a]\n");
        assert!(matches!(config.save(), Err(ConfigError::Edit { .. })));
    }

    // ---- never panic, never hang ----

    /// xorshift64*: a fixed-seed generator so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn exercise(text: &str, rng: &mut Rng) {
        let Ok(mut config) = ConfigFile::parse(text, FILE) else {
            return;
        };
        let mut names: Vec<String> = config
            .profile_names()
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        names.extend(["default".to_owned(), "nope".to_owned(), "a".to_owned()]);
        let env = env_of(&[
            ("AWS_REGION", "r"),
            ("AWS_SESSION_TAGS", "k=v"),
            ("AWS_ENDPOINT_URL", "http://x"),
        ]);
        for name in &names {
            let strict = config.resolve(name, &no_env);
            let lenient = config.resolve_with(name, &env, &|n| n.len() % 2 == 0);
            for chain in [strict, lenient].into_iter().flatten() {
                let _ = chain.to_string();
                let _ = chain
                    .target()
                    .unsupported()
                    .map(|e| (e.to_string(), e.hint()));
                let _ = chain.sts_endpoint();
            }
        }
        let name = names[rng.below(names.len())].clone();
        let keys = [
            "region",
            "mfa_serial",
            "include_profile",
            "source_profile",
            "s3",
            "vault_x",
        ];
        let values = ["a", "default", "b", "x#y", "900"];
        let key = keys[rng.below(keys.len())];
        let value = values[rng.below(values.len())];
        if config.set_value(&name, key, value).is_ok() {
            let reread = ConfigFile::parse(std::str::from_utf8(&config.to_bytes()).unwrap(), FILE);
            assert!(
                reread.is_ok(),
                "edited text no longer parses: {:?}",
                config.to_bytes()
            );
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let len = rng.below(200);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            exercise(&String::from_utf8_lossy(&bytes), &mut rng);
        }
    }

    #[test]
    fn random_config_shaped_text_never_panics_or_hangs() {
        const PIECES: &[&str] = &[
            "[default]",
            "[profile a]",
            "[profile b]",
            "[profile c]",
            "[sso-session s]",
            "[services x]",
            "[",
            "]",
            "\n",
            "\r\n",
            "\n  ",
            " ",
            "=",
            "#",
            ";",
            "a",
            "b",
            "c",
            "default",
            "source_profile = ",
            "include_profile = ",
            "region = ",
            "duration_seconds = 3600",
            "session_tags = a=1",
            "sts =\n  endpoint_url = u",
            "services = x",
            "\u{feff}",
            "é",
        ];
        let mut rng = Rng(42);
        for _ in 0..3000 {
            let text: String = (0..rng.below(40))
                .map(|_| PIECES[rng.below(PIECES.len())])
                .collect();
            exercise(&text, &mut rng);
        }
    }
}
