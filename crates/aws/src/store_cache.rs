//! The session cache where there is no kernel keyring: entries as store
//! items.

use std::time::Duration;
use vault_base::secret::SecretBytes;
use vault_profile::session::{CacheError, CacheId, SessionCache};
use vault_secrets::store::{Store, StoreError};

fn cache_error(e: StoreError) -> CacheError {
    CacheError::Store(match e.hint() {
        Some(hint) => format!("{e} ({hint})"),
        None => e.to_string(),
    })
}

/// Entries as items `session/ID` in a store, for systems without a kernel
/// keyring. Expiry is checked on read.
pub struct StoreCache {
    store: Box<dyn Store>,
}

impl StoreCache {
    pub fn new(store: Box<dyn Store>) -> StoreCache {
        StoreCache { store }
    }
}

const STORE_PREFIX: &str = "cache/";

impl SessionCache for StoreCache {
    fn name(&self) -> &'static str {
        "store"
    }
    fn get_raw(&self, id: &CacheId) -> Result<Option<SecretBytes>, CacheError> {
        self.store
            .get(&format!("{STORE_PREFIX}{}", id.qualified()))
            .map_err(cache_error)
    }
    fn put_raw(&self, id: &CacheId, value: &SecretBytes, _ttl: Duration) -> Result<(), CacheError> {
        self.store
            .set(&format!("{STORE_PREFIX}{}", id.qualified()), value)
            .map_err(cache_error)
    }
    fn remove(&self, id: &CacheId) -> Result<bool, CacheError> {
        self.store
            .delete(&format!("{STORE_PREFIX}{}", id.qualified()))
            .map_err(cache_error)
    }
    fn ids(&self) -> Result<Vec<CacheId>, CacheError> {
        Ok(self
            .store
            .list()
            .map_err(cache_error)?
            .iter()
            .filter_map(|i| {
                i.strip_prefix(STORE_PREFIX)
                    .and_then(CacheId::from_qualified)
            })
            .collect())
    }
}
