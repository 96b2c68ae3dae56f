//! What can go wrong reading, resolving or editing the config, each with its hint.

use super::*;

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
pub(super) const SSO: &str = "SSO";
