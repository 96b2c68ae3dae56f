//! What vault knows about enrolled tokens, kept in vault's config folder
//! (`$XDG_CONFIG_HOME/vault/tokens.json`): serials, PIV slots with their
//! public keys and policies, the OATH credentials vault put on each key,
//! and backup recipients not yet added to every envelope. Nothing secret:
//! public keys and names only.
//!
//! And the wrapped keys themselves: one envelope file per profile in
//! `$XDG_DATA_HOME/vault/envelopes`, useless without the token.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PivSlotRecord {
    pub slot: u8,
    /// SEC1 uncompressed P-256 point, hex.
    pub public_key: String,
    pub pin_policy: String,
    pub touch_policy: String,
    /// Whether the slot's attestation was verified up to a trusted root at enrollment.
    pub attested: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OathRecord {
    /// The AWS MFA device ARN the credential answers for.
    pub mfa_serial: String,
    /// The credential's name on the token.
    pub name: String,
    pub touch: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenRecord {
    pub serial: u32,
    pub version: String,
    /// "primary" or "backup".
    pub role: String,
    pub piv: Option<PivSlotRecord>,
    #[serde(default)]
    pub oath: Vec<OathRecord>,
    #[serde(default)]
    pub fido2: Option<Fido2Record>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Fido2Record {
    /// Credential id, hex.
    pub credential_id: String,
    /// The hmac-secret salt, hex.
    pub salt: String,
    pub rp_id: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tokens {
    #[serde(default)]
    pub tokens: Vec<TokenRecord>,
    /// Profiles whose envelopes still lack a backup recipient added while
    /// no token could open them; filled in at the next unwrap.
    #[serde(default)]
    pub pending_backup: Vec<String>,
    /// Keys vault generated whose attestation was then refused. Firmware
    /// before 5.7 cannot delete a key, so the next enrollment of that
    /// YubiKey generates over it instead of taking another slot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub abandoned: Vec<AbandonedSlot>,
}

/// A slot holding a key vault generated but did not put into service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AbandonedSlot {
    pub serial: u32,
    pub slot: u8,
    /// SEC1 uncompressed P-256 point, hex: the slot is reused only while
    /// it still holds this key.
    pub public_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("cannot read {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("cannot write {path}: {detail}")]
    Write { path: String, detail: String },
}

pub fn config_dir() -> PathBuf {
    vault_base::paths::config_dir()
}

pub fn tokens_path() -> PathBuf {
    config_dir().join("tokens.json")
}

pub fn envelope_dir() -> PathBuf {
    vault_base::paths::data_dir().join("envelopes")
}

/// The file holding `profile`'s envelope.
pub fn envelope_file(profile: &str) -> PathBuf {
    // Hex keeps any profile name a safe file name.
    envelope_dir().join(format!("{}.envelope", hex::encode(profile.as_bytes())))
}

/// Writes `bytes` to `path` owner-only and atomically, file and folder
/// synced ([`vault_base::atomic`]): an envelope may be the only copy of a key.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TokensError> {
    vault_base::atomic::write(path, bytes, vault_base::atomic::Existing::Replace).map_err(|e| {
        TokensError::Write {
            path: path.display().to_string(),
            detail: e.to_string(),
        }
    })
}

impl Tokens {
    pub fn load() -> Result<Tokens, TokensError> {
        let path = tokens_path();
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| TokensError::Read {
                path: path.display().to_string(),
                detail: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Tokens::default()),
            Err(e) => Err(TokensError::Read {
                path: path.display().to_string(),
                detail: e.to_string(),
            }),
        }
    }

    pub fn save(&self) -> Result<(), TokensError> {
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        write_private(&tokens_path(), &json)
    }

    pub fn get(&self, serial: u32) -> Option<&TokenRecord> {
        self.tokens.iter().find(|t| t.serial == serial)
    }

    pub fn upsert(&mut self, rec: TokenRecord) {
        match self.tokens.iter_mut().find(|t| t.serial == rec.serial) {
            Some(t) => *t = rec,
            None => self.tokens.push(rec),
        }
    }

    /// The token and credential name holding the OATH credential for `mfa_serial`.
    pub fn oath_for(&self, mfa_serial: &str) -> Option<(u32, &OathRecord)> {
        self.tokens.iter().find_map(|t| {
            t.oath
                .iter()
                .find(|o| o.mfa_serial == mfa_serial)
                .map(|o| (t.serial, o))
        })
    }
}

/// The wrapped key of `profile`, if it is token-backed.
pub fn read_envelope(profile: &str) -> Result<Option<Vec<u8>>, TokensError> {
    let path = envelope_file(profile);
    match std::fs::read(&path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TokensError::Read {
            path: path.display().to_string(),
            detail: e.to_string(),
        }),
    }
}

pub fn write_envelope(profile: &str, bytes: &[u8]) -> Result<(), TokensError> {
    write_private(&envelope_file(profile), bytes)
}

pub fn delete_envelope(profile: &str) -> Result<bool, TokensError> {
    let path = envelope_file(profile);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(TokensError::Write {
            path: path.display().to_string(),
            detail: e.to_string(),
        }),
    }
}

/// Profiles with an envelope.
pub fn envelope_profiles() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(envelope_dir()) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let name = e
                .file_name()
                .to_str()?
                .strip_suffix(".envelope")?
                .to_string();
            String::from_utf8(hex::decode(name).ok()?).ok()
        })
        .collect();
    out.sort();
    out
}
