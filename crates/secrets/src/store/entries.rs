//! A `Store` over `keyring` entries, shared by the OS keychain and the
//! kernel keyring. Neither can enumerate what it holds through `keyring`,
//! so an index item (a JSON list of names) is kept next to the items.

use super::{check_item, Backend, Store, StoreError};
use keyring::{Credential, Entry};
use vault_base::secret::SecretBytes;

/// The index's account name; `check_item` reserves the `__` prefix so no
/// item can collide with it.
pub(super) const INDEX_ITEM: &str = "__index__";

pub(super) type MakeCredential = fn(&str, &str) -> keyring::Result<Box<Credential>>;
pub(super) type MapError = fn(keyring::Error) -> StoreError;

pub(super) struct EntryStore {
    pub(super) backend: Backend,
    pub(super) service: String,
    /// Builds the platform credential directly: `Entry::new` would go through
    /// keyring's default builder, which is the mock store when a feature is
    /// missing.
    pub(super) credential: MakeCredential,
    pub(super) map_error: MapError,
}

impl EntryStore {
    fn entry(&self, user: &str) -> Result<Entry, StoreError> {
        let credential = (self.credential)(&self.service, user).map_err(self.map_error)?;
        Ok(Entry::new_with_credential(credential))
    }

    /// The index as stored; a missing index is an empty store.
    pub(super) fn read_index(&self) -> Result<Vec<String>, StoreError> {
        let bytes = match self.entry(INDEX_ITEM)?.get_secret() {
            Ok(bytes) => bytes,
            Err(keyring::Error::NoEntry) => return Ok(Vec::new()),
            Err(e) => return Err((self.map_error)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            item: INDEX_ITEM.to_string(),
            detail: format!("the {} store's list of items: {e}", self.backend.name()),
        })
    }

    fn update_index(&self, change: impl FnOnce(&mut Vec<String>)) -> Result<(), StoreError> {
        // A damaged index is only a listing aid gone bad: the items are
        // intact, so write a new one rather than block every later write.
        let (mut names, damaged) = match self.read_index() {
            Err(StoreError::Corrupt { .. }) => (Vec::new(), true),
            other => (other?, false),
        };
        let before = names.clone();
        change(&mut names);
        names.sort();
        names.dedup();
        if names == before && !damaged {
            return Ok(());
        }
        let entry = self.entry(INDEX_ITEM)?;
        let result = if names.is_empty() {
            // Leave nothing behind once the last item is gone.
            match entry.delete_credential() {
                Err(keyring::Error::NoEntry) => Ok(()),
                other => other,
            }
        } else {
            let json = serde_json::to_vec(&names).map_err(|e| StoreError::Other {
                backend: self.backend.name(),
                detail: format!("encoding the list of items: {e}"),
            })?;
            entry.set_secret(&json)
        };
        result.map_err(self.map_error)
    }
}

impl Store for EntryStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    fn get(&self, item: &str) -> Result<Option<SecretBytes>, StoreError> {
        check_item(item)?;
        match self.entry(item)?.get_secret() {
            Ok(bytes) => Ok(Some(SecretBytes::new(bytes))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err((self.map_error)(e)),
        }
    }

    fn set(&self, item: &str, value: &SecretBytes) -> Result<(), StoreError> {
        check_item(item)?;
        // Item first: a failure between the two writes leaves an item that
        // is not listed (set again to fix), never a listed item that is not there.
        self.entry(item)?
            .set_secret(value.expose())
            .map_err(self.map_error)?;
        self.update_index(|names| names.push(item.to_string()))
    }

    fn delete(&self, item: &str) -> Result<bool, StoreError> {
        check_item(item)?;
        let existed = match self.entry(item)?.delete_credential() {
            Ok(()) => true,
            Err(keyring::Error::NoEntry) => false,
            Err(e) => return Err((self.map_error)(e)),
        };
        // Also when the item was already gone: drops a stale name.
        self.update_index(|names| names.retain(|n| n != item))?;
        Ok(existed)
    }

    fn list(&self) -> Result<Vec<String>, StoreError> {
        let mut names = self.read_index()?;
        names.sort();
        Ok(names)
    }
}

/// keyring's error text, for details; never contains a secret (`BadEncoding`
/// carries the bytes but does not print them).
pub(super) fn detail(e: &keyring::Error) -> String {
    match e {
        keyring::Error::Ambiguous(found) => format!(
            "{} stored items match one name; remove the duplicates with your keychain's own tool",
            found.len()
        ),
        other => other.to_string(),
    }
}

/// What is left once a store has mapped the errors it knows better.
pub(super) fn other_error(backend: Backend, e: &keyring::Error) -> StoreError {
    StoreError::Other {
        backend: backend.name(),
        detail: detail(e),
    }
}
