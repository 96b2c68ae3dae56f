//! The one error type commands return, and what the user is told about it.
//! Every variant renders as "what happened" plus, where there is one, a
//! hint line saying what to do next.

use vault_aws::provider::ProviderError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] vault_profile::config::ConfigError),
    #[error(transparent)]
    Store(#[from] vault_secrets::store::StoreError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Prompt(#[from] vault_prompt::PromptError),
    #[error(transparent)]
    Cache(#[from] vault_profile::session::CacheError),
    /// The hardware token: absent, PIN, touch, attestation, removed.
    #[error("{message}")]
    Token {
        message: String,
        hint: Option<String>,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Bad input on the command line or in the environment.
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn usage(message: impl Into<String>, hint: impl Into<Option<String>>) -> Error {
        Error::Usage {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Config(e) => e.hint(),
            Error::Store(e) => e.hint().map(str::to_string),
            Error::Provider(e) => e.hint(),
            Error::Prompt(vault_prompt::PromptError::Unavailable(_)) => Some(
                "pass --mfa-token CODE, set mfa_process in the profile, or choose --prompt zenity|kdialog|osascript".into(),
            ),
            Error::Usage { hint, .. } | Error::Token { hint, .. } => hint.clone(),
            _ => None,
        }
    }
}

impl From<vault_fast::Failure> for Error {
    fn from(f: vault_fast::Failure) -> Error {
        Error::Usage {
            message: f.message,
            hint: f.hint,
        }
    }
}

/// Prints `e` the one way vault reports errors, and gives the exit status.
pub fn report(e: &Error) -> std::process::ExitCode {
    eprintln!("vault: {e}");
    if let Some(h) = e.hint() {
        eprintln!("vault: hint: {h}");
    }
    std::process::ExitCode::FAILURE
}
