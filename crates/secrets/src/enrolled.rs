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
use vault_token::piv::{PinPolicy, TouchPolicy};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PivSlotRecord {
    pub slot: u8,
    /// SEC1 uncompressed P-256 point, hex.
    pub public_key: String,
    #[serde(with = "as_word")]
    pub pin_policy: PinPolicy,
    #[serde(with = "as_word")]
    pub touch_policy: TouchPolicy,
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
    pub role: Role,
    pub piv: Option<PivSlotRecord>,
    #[serde(default)]
    pub oath: Vec<OathRecord>,
    #[serde(default)]
    pub fido2: Option<Fido2Record>,
}

/// Which key an envelope asks for first: the everyday one, not the backup
/// kept in a drawer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Backup,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Backup => "backup",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The PIV policies are written as the words PIV tools print ("once",
/// "cached"), through their own `Display` and `FromStr`, so the file stays
/// as it always was and vault-token needs no serde.
mod as_word {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let word = String::deserialize(d)?;
        word.parse().map_err(serde::de::Error::custom)
    }
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
    #[error("tokens.json: bad public key for {serial}: {detail}")]
    BadPublicKey { serial: u32, detail: String },
}

/// The message says which file and why; there is nothing more general to add.
impl vault_base::error::Hinted for TokensError {}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A tokens.json as vault wrote it while the policies and the role were
    /// plain strings: it must load, and be written back the same, byte for byte.
    const WRITTEN_BEFORE: &str = r#"{
  "tokens": [
    {
      "serial": 12345678,
      "version": "5.4.3",
      "role": "primary",
      "piv": {
        "slot": 130,
        "public_key": "04ab",
        "pin_policy": "once",
        "touch_policy": "always",
        "attested": true
      },
      "oath": [
        {
          "mfa_serial": "arn:aws:iam::111111111111:mfa/jonsmith",
          "name": "aws:jonsmith@111111111111",
          "touch": true
        }
      ],
      "fido2": null
    },
    {
      "serial": 87654321,
      "version": "5.7.1",
      "role": "backup",
      "piv": {
        "slot": 131,
        "public_key": "04cd",
        "pin_policy": "once",
        "touch_policy": "cached",
        "attested": false
      },
      "oath": [],
      "fido2": {
        "credential_id": "00ff",
        "salt": "11",
        "rp_id": "vault.test"
      }
    }
  ],
  "pending_backup": [
    "jonsmith"
  ]
}"#;

    #[test]
    fn tokens_json_written_before_the_types_round_trips() {
        let t: Tokens = serde_json::from_str(WRITTEN_BEFORE).unwrap();
        assert_eq!(t.tokens[0].role, Role::Primary);
        assert_eq!(t.tokens[1].role, Role::Backup);
        let piv = t.tokens[1].piv.as_ref().unwrap();
        assert_eq!(piv.pin_policy, PinPolicy::Once);
        assert_eq!(piv.touch_policy, TouchPolicy::Cached);
        let again = serde_json::to_string_pretty(&t).unwrap();
        assert_eq!(again, WRITTEN_BEFORE);
    }

    #[test]
    fn unknown_policy_or_role_is_an_error_naming_the_word() {
        for (from, to, says) in [
            (
                r#""pin_policy": "once""#,
                r#""pin_policy": "sometimes""#,
                "\"sometimes\"",
            ),
            (
                r#""touch_policy": "always""#,
                r#""touch_policy": "twice""#,
                "\"twice\"",
            ),
            (r#""role": "primary""#, r#""role": "spare""#, "`spare`"),
        ] {
            let json = WRITTEN_BEFORE.replacen(from, to, 1);
            let e = serde_json::from_str::<Tokens>(&json)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{e}");
        }
    }
}
