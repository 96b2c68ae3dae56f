//! Stores for long-term secrets, behind one trait: the OS keychain (through
//! the `keyring` crate), the kernel keyring, and an encrypted file store for
//! headless machines. Items are named byte strings; what goes in them is
//! decided by the callers (`key/PROFILE` for long-term IAM keys).

use std::path::PathBuf;
use vault_base::creds::LongTermKey;
use vault_base::secret::{Passphrase, SecretAccessKey, SecretBytes};
use vault_prompt::Prompt;

mod entries;
pub mod file;
pub mod keychain;
pub mod keyutils;

/// Which store holds a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The OS keychain: Secret Service on Linux, Keychain on macOS,
    /// Credential Manager on Windows.
    Keychain,
    /// The Linux kernel keyring (keyutils): memory only, gone at reboot.
    Keyutils,
    /// An encrypted file per item, for machines without a keychain.
    File,
}

impl Backend {
    pub const NAMES: &'static [&'static str] = &["keychain", "keyutils", "file"];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Keychain => "keychain",
            Backend::Keyutils => "keyutils",
            Backend::File => "file",
        }
    }

    pub fn parse(s: &str) -> Option<Backend> {
        match s {
            "keychain" | "secret-service" | "secret_service" => Some(Backend::Keychain),
            "keyutils" | "kernel" => Some(Backend::Keyutils),
            "file" => Some(Backend::File),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the {backend} store is not available: {detail}")]
    Unavailable {
        backend: &'static str,
        detail: String,
        hint: String,
    },
    #[error("the {backend} store refused access: {detail}")]
    Denied {
        backend: &'static str,
        detail: String,
        hint: String,
    },
    #[error("wrong passphrase for the file store in {dir}")]
    WrongPassphrase { dir: String },
    #[error("passphrase for the file store not accepted: {reason}")]
    PassphraseRejected { reason: &'static str },
    #[error("stored item {item:?} is damaged: {detail}")]
    Corrupt { item: String, detail: String },
    /// The file store's own bookkeeping (its passphrase check) is damaged,
    /// as opposed to one item.
    #[error("the file store in {dir} is damaged: {detail}")]
    StoreDamaged { dir: String, detail: String },
    #[error("{item:?} cannot be used as an item name: {reason}")]
    InvalidItem { item: String, reason: &'static str },
    #[error("{backend} store: {detail}")]
    Other {
        backend: &'static str,
        detail: String,
    },
}

impl StoreError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<&str> {
        match self {
            StoreError::Unavailable { hint, .. } | StoreError::Denied { hint, .. } => Some(hint),
            StoreError::WrongPassphrase { .. } => {
                Some("check VAULT_FILE_PASSPHRASE or type the passphrase again")
            }
            StoreError::PassphraseRejected { .. } => {
                Some("type the same non-empty passphrase twice, or set VAULT_FILE_PASSPHRASE")
            }
            StoreError::Corrupt { .. } => {
                Some("remove the item with `vault remove PROFILE` and add it again")
            }
            StoreError::StoreDamaged { .. } => Some(
                "remove the .check file in that directory: vault rebuilds it from the items \
                 with the passphrase you give next",
            ),
            StoreError::InvalidItem { .. } | StoreError::Other { .. } => None,
        }
    }
}

/// A store of named secret items.
pub trait Store {
    fn backend(&self) -> Backend;
    fn get(&self, item: &str) -> Result<Option<SecretBytes>, StoreError>;
    /// Creates or replaces `item`; after it returns, the old value is gone.
    fn set(&self, item: &str, value: &SecretBytes) -> Result<(), StoreError>;
    /// Returns whether something was deleted.
    fn delete(&self, item: &str) -> Result<bool, StoreError>;
    /// Names of all items in this store that vault created.
    fn list(&self) -> Result<Vec<String>, StoreError>;
}

/// Where stores live and what they are called; `from_env` gives vault's
/// defaults, tests build their own.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The keychain service name (and kernel keyring description prefix):
    /// separate services never see each other's items.
    pub service: String,
    /// The file store's directory. Empty when no default could be found
    /// (neither XDG_DATA_HOME nor HOME set); the file store then refuses to open.
    pub file_dir: PathBuf,
    /// The file store's passphrase from `VAULT_FILE_PASSPHRASE`, so headless
    /// runs never prompt.
    pub passphrase_env: Option<Passphrase>,
}

impl StoreOptions {
    pub const DEFAULT_SERVICE: &'static str = "vault";
    pub const PASSPHRASE_ENV: &'static str = vault_base::settings::FILE_PASSPHRASE;

    /// vault's defaults: service `vault`, the file store under the XDG data
    /// directory, the passphrase from `VAULT_FILE_PASSPHRASE`.
    pub fn from_env() -> StoreOptions {
        // An empty variable reads as unset, so `VAULT_FILE_PASSPHRASE= vault ...`
        // falls back to asking rather than to an empty passphrase.
        let passphrase_env = std::env::var(Self::PASSPHRASE_ENV)
            .ok()
            .filter(|p| !p.is_empty())
            .map(Passphrase::new);
        StoreOptions {
            service: Self::DEFAULT_SERVICE.to_string(),
            file_dir: default_file_dir().unwrap_or_default(),
            passphrase_env,
        }
    }
}

/// `$XDG_DATA_HOME/vault/store`, else `~/.local/share/vault/store` (on
/// Windows `%APPDATA%\vault\store` when HOME is unset).
pub fn default_file_dir() -> Option<PathBuf> {
    file_dir_from(|name| std::env::var_os(name))
}

fn file_dir_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    // The XDG spec says to ignore a relative XDG_DATA_HOME; the same
    // caution for HOME keeps secrets out of whatever the working directory is.
    let absolute = |name: &str| var(name).map(PathBuf::from).filter(|p| p.is_absolute());
    let data = absolute("XDG_DATA_HOME")
        .or_else(|| absolute("HOME").map(|h| h.join(".local").join("share")))
        .or_else(|| {
            if cfg!(windows) {
                absolute("APPDATA")
            } else {
                None
            }
        })?;
    Some(data.join("vault").join("store"))
}

/// Opens `backend`. The file store asks for its passphrase here (unless
/// `opts.passphrase_env` has it) and checks it before returning, so a wrong
/// one fails now rather than at the first item.
pub fn open(
    backend: Backend,
    opts: &StoreOptions,
    prompt: &dyn Prompt,
) -> Result<Box<dyn Store>, StoreError> {
    match backend {
        Backend::Keychain => keychain::open(opts),
        Backend::Keyutils => keyutils::open(opts),
        Backend::File => Ok(Box::new(file::open(opts, prompt)?)),
    }
}

/// The keyring service name, checked so a bad option fails clearly here
/// rather than somewhere inside D-Bus.
fn keyring_service(backend: Backend, opts: &StoreOptions) -> Result<String, StoreError> {
    let service = &opts.service;
    if service.is_empty() || service.chars().any(char::is_control) {
        return Err(StoreError::Other {
            backend: backend.name(),
            detail: format!("service name {service:?} is empty or has control characters"),
        });
    }
    Ok(service.clone())
}

/// Longest item name in bytes: the file store spells names in hex and a
/// file name has at most 255 bytes.
pub const MAX_ITEM_LEN: usize = 120;

/// Names starting with this are vault's own bookkeeping (the keyring index).
const RESERVED_PREFIX: &str = "__";

/// The same rules for every backend, so an item can move between them.
fn check_item(item: &str) -> Result<(), StoreError> {
    let reason = if item.is_empty() {
        "it is empty"
    } else if item.len() > MAX_ITEM_LEN {
        "it is longer than 120 bytes"
    } else if item.chars().any(char::is_control) {
        "it contains control characters"
    } else if item.starts_with(RESERVED_PREFIX) {
        "names starting with `__` are reserved for vault itself"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidItem {
        item: item.to_string(),
        reason,
    })
}

const KEY_PREFIX: &str = "key/";

/// The item name of a profile's long-term key.
pub fn key_item(profile: &str) -> String {
    format!("{KEY_PREFIX}{profile}")
}

/// A long-term key as the bytes stored for it (in a store item or inside
/// an envelope).
pub fn encode_key(key: &LongTermKey) -> SecretBytes {
    let stored = StoredKey {
        access_key_id: key.access_key_id.clone(),
        secret_access_key: key.secret_access_key.expose().to_string(),
    };
    SecretBytes::from(vault_base::secret::json_bytes(&stored, false))
}

/// The inverse of [`encode_key`]; `item` names what is damaged in the error.
pub fn decode_key(item: &str, bytes: &SecretBytes) -> Result<LongTermKey, StoreError> {
    let stored: StoredKey =
        serde_json::from_slice(bytes.expose()).map_err(|e| StoreError::Corrupt {
            item: item.to_string(),
            detail: e.to_string(),
        })?;
    Ok(LongTermKey {
        access_key_id: stored.access_key_id.clone(),
        secret_access_key: SecretAccessKey::new(stored.secret_access_key.clone()),
    })
}

pub fn get_key(store: &dyn Store, profile: &str) -> Result<Option<LongTermKey>, StoreError> {
    let item = key_item(profile);
    match store.get(&item)? {
        Some(bytes) => decode_key(&item, &bytes).map(Some),
        None => Ok(None),
    }
}

pub fn set_key(store: &dyn Store, profile: &str, key: &LongTermKey) -> Result<(), StoreError> {
    store.set(&key_item(profile), &encode_key(key))
}

/// Profiles that have a long-term key in this store.
pub fn key_profiles(store: &dyn Store) -> Result<Vec<String>, StoreError> {
    let mut names: Vec<String> = store
        .list()?
        .into_iter()
        .filter_map(|i| i.strip_prefix(KEY_PREFIX).map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// The stored form of a long-term key (inside a store item, never on disk in clear).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredKey {
    access_key_id: String,
    secret_access_key: String,
}

impl Drop for StoredKey {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.secret_access_key.zeroize();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn file_dir_follows_xdg_then_home() {
        let both = [("XDG_DATA_HOME", "/x/data"), ("HOME", "/home/u")];
        assert_eq!(
            file_dir_from(env(&both)),
            Some(PathBuf::from("/x/data/vault/store"))
        );
        let home = [("HOME", "/home/u")];
        assert_eq!(
            file_dir_from(env(&home)),
            Some(PathBuf::from("/home/u/.local/share/vault/store"))
        );
        let relative_xdg = [("XDG_DATA_HOME", "data"), ("HOME", "/home/u")];
        assert_eq!(
            file_dir_from(env(&relative_xdg)),
            Some(PathBuf::from("/home/u/.local/share/vault/store"))
        );
        let empty_xdg = [("XDG_DATA_HOME", ""), ("HOME", "/home/u")];
        assert_eq!(
            file_dir_from(env(&empty_xdg)),
            Some(PathBuf::from("/home/u/.local/share/vault/store"))
        );
        assert_eq!(file_dir_from(env(&[])), None);
    }

    #[test]
    fn item_names_are_checked_the_same_for_every_backend() {
        for good in ["key/prod", "session/a b", "ключ", &"x".repeat(MAX_ITEM_LEN)] {
            assert!(check_item(good).is_ok(), "{good:?} refused");
        }
        for bad in [
            "",
            "__index__",
            "__x",
            "a\nb",
            "a\0b",
            &"x".repeat(MAX_ITEM_LEN + 1),
        ] {
            assert!(
                matches!(check_item(bad), Err(StoreError::InvalidItem { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn backend_names_round_trip() {
        for name in Backend::NAMES {
            let backend = Backend::parse(name).expect("every listed name parses");
            assert_eq!(backend.name(), *name);
        }
    }
}
