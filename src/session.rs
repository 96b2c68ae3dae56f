//! The session cache: STS results reused while enough time remains, shared
//! by every vault process of the login session, never written to disk in
//! clear.
//!
//! On Linux entries live in the kernel session keyring (memory only, read
//! back with two syscalls, expired by the kernel itself). Where the kernel
//! keyring cannot be used (macOS, Windows, containers whose seccomp profile
//! forbids keyctl) they go to the profile's store instead.

use crate::creds::SessionCredentials;
use crate::secret::{SecretAccessKey, SecretBytes, SessionToken};
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// Identifies one cache entry: a hash of everything that makes two STS
/// requests interchangeable (and nothing that would split them needlessly,
/// so every role profile with the same MFA device shares one session).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheId {
    ns: Namespace,
    hex: String,
}

/// Sessions and MFA-use records share the cache but never each other's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    Session,
    MfaUse,
}

impl Namespace {
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Session => "session",
            Namespace::MfaUse => "mfa",
        }
    }
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

impl CacheId {
    /// A session entry's id.
    pub fn new(parts: &[&str]) -> CacheId {
        CacheId {
            ns: Namespace::Session,
            hex: digest(parts),
        }
    }
    pub fn namespace(&self) -> Namespace {
        self.ns
    }
    /// The hash part, also usable as a lock name.
    pub fn as_str(&self) -> &str {
        &self.hex
    }
    /// `session:HEX` / `mfa:HEX`: how stores and the kernel keyring name it.
    pub fn qualified(&self) -> String {
        format!("{}:{}", self.ns.as_str(), self.hex)
    }
    pub fn from_qualified(s: &str) -> Option<CacheId> {
        let (ns, hex) = s.split_once(':')?;
        let ns = match ns {
            "session" => Namespace::Session,
            "mfa" => Namespace::MfaUse,
            _ => return None,
        };
        (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| CacheId {
            ns,
            hex: hex.to_string(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionKind {
    GetSessionToken,
    AssumeRole,
    GetFederationToken,
    /// A `credential_process` source profile's output.
    CredentialProcess,
}

impl SessionKind {
    pub fn label(self) -> &'static str {
        match self {
            SessionKind::GetSessionToken => "sts.GetSessionToken",
            SessionKind::AssumeRole => "sts.AssumeRole",
            SessionKind::GetFederationToken => "sts.GetFederationToken",
            SessionKind::CredentialProcess => "credential_process",
        }
    }
}

/// One cached STS result with what `vault list` shows about it.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedSession {
    pub kind: SessionKind,
    /// The profile whose request created it (for listing; sharing is by id).
    pub profile: String,
    pub mfa_serial: Option<String>,
    pub creds: SessionCredentials,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    v: u8,
    kind: SessionKind,
    profile: String,
    mfa_serial: Option<String>,
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: u64,
}

impl Drop for Wire {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.secret_access_key.zeroize();
        self.session_token.zeroize();
    }
}

const WIRE_VERSION: u8 = 1;
/// 9999-12-31T23:59:59Z, the last second an expiration can be written in.
const MAX_EXPIRATION: u64 = 253_402_300_799;

pub fn encode(s: &CachedSession) -> SecretBytes {
    let wire = Wire {
        v: WIRE_VERSION,
        kind: s.kind,
        profile: s.profile.clone(),
        mfa_serial: s.mfa_serial.clone(),
        access_key_id: s.creds.access_key_id.clone(),
        secret_access_key: s.creds.secret_access_key.expose().to_string(),
        session_token: s.creds.session_token.expose().to_string(),
        expiration: s
            .creds
            .expiration
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    // Serializing plain structs to a Vec cannot fail.
    SecretBytes::from(Zeroizing::new(
        serde_json::to_vec(&wire).unwrap_or_default(),
    ))
}

/// Decodes an entry; anything malformed is an error, never a panic.
pub fn decode(bytes: &[u8]) -> Result<CachedSession, String> {
    let wire: Wire = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if wire.v != WIRE_VERSION {
        return Err(format!("unknown cache entry version {}", wire.v));
    }
    if wire.access_key_id.is_empty() || wire.secret_access_key.is_empty() {
        return Err("cache entry without credentials".into());
    }
    // Any u64 is valid JSON here, but not every one is a time vault can
    // add to or write out (RFC 3339 ends with year 9999).
    if wire.expiration > MAX_EXPIRATION {
        return Err(format!(
            "cache entry expiring at {} s is out of range",
            wire.expiration
        ));
    }
    let expiration = UNIX_EPOCH + Duration::from_secs(wire.expiration);
    Ok(CachedSession {
        kind: wire.kind,
        profile: wire.profile.clone(),
        mfa_serial: wire.mfa_serial.clone(),
        creds: SessionCredentials {
            access_key_id: wire.access_key_id.clone(),
            secret_access_key: SecretAccessKey::new(wire.secret_access_key.clone()),
            session_token: SessionToken::new(wire.session_token.clone()),
            expiration,
        },
    })
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("session cache: {0}")]
    Kernel(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where sessions are cached.
pub trait SessionCache {
    fn name(&self) -> &'static str;
    /// The raw entry; `Ok(None)` when absent or expired.
    /// Ids of every namespace are stored side by side.
    fn get_raw(&self, id: &CacheId) -> Result<Option<SecretBytes>, CacheError>;
    fn put_raw(&self, id: &CacheId, value: &SecretBytes, ttl: Duration) -> Result<(), CacheError>;
    fn remove(&self, id: &CacheId) -> Result<bool, CacheError>;
    fn ids(&self) -> Result<Vec<CacheId>, CacheError>;
}

/// The entry `id`, when present, well-formed and not expired.
/// A damaged entry counts as absent (a cache holds nothing that cannot be
/// fetched again): the new session replaces it. Reading changes nothing.
pub fn get(cache: &dyn SessionCache, id: &CacheId) -> Result<Option<CachedSession>, CacheError> {
    let Some(raw) = cache.get_raw(id)? else {
        return Ok(None);
    };
    match decode(raw.expose()) {
        Ok(s) if s.creds.expiration > SystemTime::now() => Ok(Some(s)),
        Ok(_) => Ok(None),
        Err(e) => {
            // Looked up several times per run (before and after the
            // lock): said once.
            static WARNED: std::sync::Mutex<Vec<CacheId>> = std::sync::Mutex::new(Vec::new());
            let first = WARNED.lock().map_or(true, |mut w| {
                let first = !w.contains(id);
                if first {
                    w.push(id.clone());
                }
                first
            });
            if first {
                log::warn!(target: "vault", "ignoring a damaged session cache entry ({}: {e}); getting a new session", id.as_str());
            }
            Ok(None)
        }
    }
}

pub fn put(cache: &dyn SessionCache, id: &CacheId, s: &CachedSession) -> Result<(), CacheError> {
    let ttl = s.creds.remaining(SystemTime::now());
    cache.put_raw(id, &encode(s), ttl)
}

/// Every readable, unexpired session (for `vault list` and `vault clear`).
pub fn all(cache: &dyn SessionCache) -> Result<Vec<(CacheId, CachedSession)>, CacheError> {
    let mut out = Vec::new();
    for id in cache
        .ids()?
        .into_iter()
        .filter(|i| i.namespace() == Namespace::Session)
    {
        if let Some(s) = get(cache, &id)? {
            out.push((id, s));
        }
    }
    Ok(out)
}

/// A small record per MFA device, kept in the same cache: which TOTP time
/// step was last sent, and hashes of codes recently used, so a code is
/// never sent twice.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct MfaUse {
    pub last_step: Option<u64>,
    /// (sha256 of serial‖code, unix seconds when used)
    pub used: Vec<(String, u64)>,
}

pub fn mfa_record_id(mfa_serial: &str) -> CacheId {
    CacheId {
        ns: Namespace::MfaUse,
        hex: digest(&[mfa_serial]),
    }
}

pub fn get_mfa_use(cache: &dyn SessionCache, mfa_serial: &str) -> MfaUse {
    cache
        .get_raw(&mfa_record_id(mfa_serial))
        .ok()
        .flatten()
        .and_then(|raw| serde_json::from_slice(raw.expose()).ok())
        .unwrap_or_default()
}

pub fn put_mfa_use(
    cache: &dyn SessionCache,
    mfa_serial: &str,
    rec: &MfaUse,
) -> Result<(), CacheError> {
    let bytes = SecretBytes::new(serde_json::to_vec(rec).unwrap_or_default());
    // A code is valid for at most a few time steps; keep the record a while longer.
    cache.put_raw(&mfa_record_id(mfa_serial), &bytes, Duration::from_secs(600))
}

#[cfg(target_os = "linux")]
pub mod kernel {
    //! Entries as `user` keys named `vault:session:ID` (and `vault:mfa:ID`)
    //! in the session keyring.
    use super::*;
    use linux_keyutils::{KeyError, KeyRing, KeyRingIdentifier};

    const PREFIX: &str = "vault:";

    pub struct KernelCache {
        ring: KeyRing,
    }

    fn err(e: KeyError) -> CacheError {
        CacheError::Kernel(format!("{e:?}"))
    }

    impl KernelCache {
        /// The session keyring, when the kernel lets us use it.
        pub fn open() -> Result<KernelCache, CacheError> {
            let ring = KeyRing::from_special_id(KeyRingIdentifier::Session, false).map_err(err)?;
            // Probe: seccomp profiles that forbid keyctl fail here, not later.
            ring.metadata().map_err(err)?;
            Ok(KernelCache { ring })
        }
    }

    impl SessionCache for KernelCache {
        fn name(&self) -> &'static str {
            "kernel keyring"
        }

        fn get_raw(&self, id: &CacheId) -> Result<Option<SecretBytes>, CacheError> {
            let desc = format!("{PREFIX}{}", id.qualified());
            match self.ring.search(&desc) {
                Ok(key) => match key.read_to_vec() {
                    Ok(v) => Ok(Some(SecretBytes::from(Zeroizing::new(v)))),
                    // Expired or revoked between search and read.
                    Err(
                        KeyError::KeyExpired | KeyError::KeyRevoked | KeyError::KeyDoesNotExist,
                    ) => Ok(None),
                    Err(e) => Err(err(e)),
                },
                Err(KeyError::KeyDoesNotExist | KeyError::KeyExpired | KeyError::KeyRevoked) => {
                    Ok(None)
                }
                Err(e) => Err(err(e)),
            }
        }

        fn put_raw(
            &self,
            id: &CacheId,
            value: &SecretBytes,
            ttl: Duration,
        ) -> Result<(), CacheError> {
            let desc = format!("{PREFIX}{}", id.qualified());
            // add_key replaces an existing key of the same description atomically.
            let key = self.ring.add_key(&desc, value.expose()).map_err(err)?;
            let secs = ttl.as_secs().max(1) as usize;
            key.set_timeout(secs).map_err(err)?;
            Ok(())
        }

        fn remove(&self, id: &CacheId) -> Result<bool, CacheError> {
            let desc = format!("{PREFIX}{}", id.qualified());
            match self.ring.search(&desc) {
                Ok(key) => {
                    key.invalidate().map_err(err)?;
                    Ok(true)
                }
                Err(KeyError::KeyDoesNotExist | KeyError::KeyExpired | KeyError::KeyRevoked) => {
                    Ok(false)
                }
                Err(e) => Err(err(e)),
            }
        }

        fn ids(&self) -> Result<Vec<CacheId>, CacheError> {
            let links = self.ring.get_links(4096).map_err(err)?;
            let mut ids = Vec::new();
            for node in links.iter() {
                let Some(key) = node.as_key() else { continue };
                let Ok(meta) = key.metadata() else { continue };
                if let Some(id) = meta
                    .get_description()
                    .strip_prefix(PREFIX)
                    .and_then(CacheId::from_qualified)
                {
                    ids.push(id);
                }
            }
            Ok(ids)
        }
    }
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
        Ok(self
            .store
            .get(&format!("{STORE_PREFIX}{}", id.qualified()))?)
    }
    fn put_raw(&self, id: &CacheId, value: &SecretBytes, _ttl: Duration) -> Result<(), CacheError> {
        Ok(self
            .store
            .set(&format!("{STORE_PREFIX}{}", id.qualified()), value)?)
    }
    fn remove(&self, id: &CacheId) -> Result<bool, CacheError> {
        Ok(self
            .store
            .delete(&format!("{STORE_PREFIX}{}", id.qualified()))?)
    }
    fn ids(&self) -> Result<Vec<CacheId>, CacheError> {
        Ok(self
            .store
            .list()?
            .iter()
            .filter_map(|i| {
                i.strip_prefix(STORE_PREFIX)
                    .and_then(CacheId::from_qualified)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CachedSession {
        CachedSession {
            kind: SessionKind::AssumeRole,
            profile: "dev".into(),
            mfa_serial: Some("arn:aws:iam::123456789012:mfa/alice".into()),
            creds: SessionCredentials {
                access_key_id: "ASIAEXAMPLE".into(),
                secret_access_key: SecretAccessKey::new("s3cr3t"),
                session_token: SessionToken::new("tok"),
                expiration: UNIX_EPOCH + Duration::from_secs(2_000_000_000),
            },
        }
    }

    #[test]
    fn entry_round_trip() {
        let s = sample();
        assert_eq!(decode(encode(&s).expose()).unwrap(), s);
    }

    #[test]
    fn expirations_past_what_can_be_written_are_errors_not_panics() {
        // Found by fuzzing (fuzz/regressions/session/expiration-*): u64::MAX
        // seconds overflowed `UNIX_EPOCH + d` in `decode`; a time past year
        // 9999 decoded, then panicked where `vault exec --json` formats it.
        let entry = |expiration: &str| {
            format!(
                r#"{{"v":1,"kind":"AssumeRole","profile":"p","mfa_serial":null,"access_key_id":"ASIA","secret_access_key":"s","session_token":"t","expiration":{expiration}}}"#
            )
        };
        for expiration in [
            "18446744073709551615",
            "9223372036854775807",
            "253402300800",
        ] {
            let e = decode(entry(expiration).as_bytes()).unwrap_err();
            assert!(e.contains("out of range"), "{e}");
        }
        let last = decode(entry("253402300799").as_bytes()).unwrap();
        assert_eq!(
            crate::output::rfc3339(last.creds.expiration),
            "9999-12-31T23:59:59Z"
        );
    }

    #[test]
    fn damaged_entries_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"{",
            b"null",
            b"{\"v\":9}",
            &[0xff, 0xfe, 0x00][..],
        ] {
            assert!(decode(bad).is_err());
        }
        let mut good = encode(&sample()).expose().to_vec();
        good.truncate(good.len() / 2);
        assert!(decode(&good).is_err());
    }

    /// A cache in memory, for `get`'s own behaviour.
    #[derive(Default)]
    struct MemCache(std::cell::RefCell<std::collections::BTreeMap<CacheId, Vec<u8>>>);

    impl SessionCache for MemCache {
        fn name(&self) -> &'static str {
            "memory"
        }
        fn get_raw(&self, id: &CacheId) -> Result<Option<SecretBytes>, CacheError> {
            Ok(self.0.borrow().get(id).cloned().map(SecretBytes::new))
        }
        fn put_raw(&self, id: &CacheId, v: &SecretBytes, _: Duration) -> Result<(), CacheError> {
            self.0.borrow_mut().insert(id.clone(), v.expose().to_vec());
            Ok(())
        }
        fn remove(&self, id: &CacheId) -> Result<bool, CacheError> {
            Ok(self.0.borrow_mut().remove(id).is_some())
        }
        fn ids(&self) -> Result<Vec<CacheId>, CacheError> {
            Ok(self.0.borrow().keys().cloned().collect())
        }
    }

    #[test]
    fn a_damaged_entry_reads_as_absent_and_a_new_one_replaces_it() {
        let cache = MemCache::default();
        let (good, bad) = (CacheId::new(&["good"]), CacheId::new(&["bad"]));
        put(&cache, &good, &sample()).unwrap();
        let damaged = SecretBytes::new(b"{not json".to_vec());
        cache.put_raw(&bad, &damaged, Duration::ZERO).unwrap();
        for _ in 0..2 {
            assert!(get(&cache, &bad).unwrap().is_none());
        }
        assert_eq!(get(&cache, &good).unwrap(), Some(sample()));
        put(&cache, &bad, &sample()).unwrap();
        assert_eq!(get(&cache, &bad).unwrap(), Some(sample()));
    }

    #[test]
    fn cache_ids_separate_their_parts() {
        assert_ne!(CacheId::new(&["ab", "c"]), CacheId::new(&["a", "bc"]));
        assert_eq!(CacheId::new(&["x"]).as_str().len(), 32);
    }
}
