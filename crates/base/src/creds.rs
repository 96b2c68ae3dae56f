//! Credentials as vault hands them around: long-term IAM keys from a store,
//! temporary STS credentials from a provider or the session cache.

use crate::secret::{SecretAccessKey, SessionToken};
use std::time::{Duration, SystemTime};

/// A long-term IAM user access key, as kept in a store.
#[derive(Debug, Clone, PartialEq)]
pub struct LongTermKey {
    pub access_key_id: String,
    pub secret_access_key: SecretAccessKey,
}

/// Temporary credentials from STS.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretAccessKey,
    pub session_token: SessionToken,
    pub expiration: SystemTime,
}

impl SessionCredentials {
    /// Time left before expiry (zero when already expired).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.expiration
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    }
}

/// What a provider produces: temporary credentials, or, with `--no-session`
/// on a profile without MFA or role, the long-term key itself (as aws-vault does).
#[derive(Debug, Clone, PartialEq)]
pub enum Credentials {
    Session(SessionCredentials),
    LongTerm(LongTermKey),
}

impl Credentials {
    pub fn access_key_id(&self) -> &str {
        match self {
            Credentials::Session(s) => &s.access_key_id,
            Credentials::LongTerm(k) => &k.access_key_id,
        }
    }
    pub fn secret_access_key(&self) -> &SecretAccessKey {
        match self {
            Credentials::Session(s) => &s.secret_access_key,
            Credentials::LongTerm(k) => &k.secret_access_key,
        }
    }
    pub fn session_token(&self) -> Option<&SessionToken> {
        match self {
            Credentials::Session(s) => Some(&s.session_token),
            Credentials::LongTerm(_) => None,
        }
    }
    pub fn expiration(&self) -> Option<SystemTime> {
        match self {
            Credentials::Session(s) => Some(s.expiration),
            Credentials::LongTerm(_) => None,
        }
    }
}
