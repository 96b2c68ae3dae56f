//! The one error type commands return, and what the user is told about it.
//! Every variant renders as "what happened" plus, where there is one, a
//! hint line saying what to do next.

use vault_aws::provider::ProviderError;
use vault_base::error::Hinted;

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
    /// The hardware token: absent, PIN, touch, attestation, removed, in
    /// vault's own words.
    #[error("{message}")]
    Token {
        message: String,
        hint: Option<String>,
    },
    /// A lower layer's error handed up whole (the card, tokens.json, the
    /// envelope): it says what happened and knows its own hint.
    #[error("{0}")]
    Layer(Box<dyn Hinted>),
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

    pub fn token(message: impl Into<String>, hint: impl Into<Option<String>>) -> Error {
        Error::Token {
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
            Error::Layer(e) => e.hint(),
            _ => None,
        }
    }
}

/// So a command's error can be handed down to a lower layer's port (the
/// SSO sign-in keeper) and come back up with its hint.
impl Hinted for Error {
    fn hint(&self) -> Option<String> {
        Error::hint(self)
    }
}

impl From<Error> for Box<dyn Hinted> {
    fn from(e: Error) -> Box<dyn Hinted> {
        match e {
            // Already boxed: not boxed twice.
            Error::Layer(inner) => inner,
            other => Box::new(other),
        }
    }
}

impl From<Box<dyn Hinted>> for Error {
    fn from(e: Box<dyn Hinted>) -> Error {
        Error::Layer(e)
    }
}

/// The lower layers' errors that reach commands whole; each keeps its hint.
macro_rules! from_layer {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Error {
                Error::Layer(Box::new(e))
            }
        }
    )*};
}

from_layer!(
    vault_token::apdu::TokenError,
    vault_token::piv::PivError,
    vault_token::fido2::Fido2Error,
    vault_secrets::enrolled::TokensError,
    vault_secrets::envelope::SealError,
    vault_secrets::envelope::EnvelopeError,
    vault_secrets::envelope::OpenError,
);

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

#[cfg(test)]
mod tests {
    use super::*;
    use vault_token::piv::PivError;

    #[test]
    fn a_card_error_keeps_its_message_and_hint() {
        let piv = PivError::WrongPin { tries_left: 2 };
        let (message, hint) = (piv.to_string(), piv.hint());
        assert!(hint.is_some());
        let e = Error::from(piv);
        assert_eq!(e.to_string(), message);
        assert_eq!(e.hint(), hint);
    }

    #[test]
    fn a_boxed_error_from_below_keeps_its_hint() {
        let boxed: Box<dyn Hinted> = Box::new(vault_token::apdu::TokenError::NoSpace);
        let hint = boxed.hint();
        assert!(hint.is_some());
        assert_eq!(Error::from(boxed).hint(), hint);
    }

    #[test]
    fn handed_down_as_hinted_an_error_keeps_its_hint_and_is_boxed_once() {
        let usage: Box<dyn Hinted> = Error::usage("bad", Some("do this".to_string())).into();
        assert_eq!(
            (usage.to_string(), usage.hint()),
            ("bad".into(), Some("do this".into()))
        );
        let card = PivError::WrongPin { tries_left: 1 };
        let hint = card.hint();
        let boxed: Box<dyn Hinted> = Error::from(card).into();
        assert_eq!(boxed.hint(), hint);
        // Unboxed, not wrapped: the card's error itself, not an Error around it.
        assert!(format!("{boxed:?}").starts_with("WrongPin"), "{boxed:?}");
    }

    #[test]
    fn a_tokens_json_error_has_no_hint_of_its_own() {
        let e = Error::from(vault_secrets::enrolled::TokensError::Read {
            path: "tokens.json".into(),
            detail: "denied".into(),
        });
        assert_eq!(e.to_string(), "cannot read tokens.json: denied");
        assert_eq!(e.hint(), None);
    }
}
