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

mod edit;
mod error;
mod ini;
mod resolve;
mod sso;
#[cfg(test)]
mod tests;

pub use error::ConfigError;
use error::SSO;
use ini::{inline_comment_start, truncate, Parser};
pub use ini::{Entry, Section, SectionKind, SubEntry};
pub use resolve::{Origin, Profile, ProfileChain};

pub use sso::SsoSettings;

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
}

/// `~/…` for a path under the home directory: shorter, and what the user
/// typed or expects to see.
fn display_path(path: &Path, home: Option<&Path>) -> String {
    match home.and_then(|h| path.strip_prefix(h).ok()) {
        Some(rest) if !rest.as_os_str().is_empty() => format!("~/{}", rest.display()),
        _ => path.display().to_string(),
    }
}
