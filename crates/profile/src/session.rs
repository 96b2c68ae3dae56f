//! The session cache: STS results reused while enough time remains, shared
//! by every vault process of the login session, never written to disk in
//! clear.
//!
//! On Linux entries live in the kernel session keyring (memory only, read
//! back with two syscalls, expired by the kernel itself). Where the kernel
//! keyring cannot be used (macOS, Windows, containers whose seccomp profile
//! forbids keyctl) they go to the profile's store instead.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use vault_base::creds::SessionCredentials;
use vault_base::secret::{SecretAccessKey, SecretBytes, SessionToken};
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
    /// IAM Identity Center sign-ins: the access token of an SSO session and
    /// the client registration it was issued to.
    Sso,
}

impl Namespace {
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Session => "session",
            Namespace::MfaUse => "mfa",
            Namespace::Sso => "sso",
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
            "sso" => Namespace::Sso,
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
    /// Role credentials from the IAM Identity Center portal (GetRoleCredentials).
    SsoRoleCredentials,
}

impl SessionKind {
    pub fn label(self) -> &'static str {
        match self {
            SessionKind::GetSessionToken => "sts.GetSessionToken",
            SessionKind::AssumeRole => "sts.AssumeRole",
            SessionKind::GetFederationToken => "sts.GetFederationToken",
            SessionKind::CredentialProcess => "credential_process",
            SessionKind::SsoRoleCredentials => "sso.GetRoleCredentials",
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
    /// The cache id the entry was written under: an entry moved or copied
    /// to another id (another profile, another kind) is refused.
    id: String,
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

const WIRE_VERSION: u8 = 2;
/// 9999-12-31T23:59:59Z, the last second an expiration can be written in.
const MAX_EXPIRATION: u64 = 253_402_300_799;

pub fn encode(id: &CacheId, s: &CachedSession) -> SecretBytes {
    let wire = Wire {
        v: WIRE_VERSION,
        id: id.qualified(),
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
    SecretBytes::from(vault_base::secret::json_bytes(&wire, false))
}

/// Decodes an entry read under `id`; anything malformed, or written under
/// another id, is an error, never a panic.
pub fn decode(id: &CacheId, bytes: &[u8]) -> Result<CachedSession, String> {
    let wire: Wire = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if wire.v != WIRE_VERSION {
        return Err(format!("unknown cache entry version {}", wire.v));
    }
    if wire.id != id.qualified() {
        return Err(format!(
            "entry written for {} found under {}",
            wire.id,
            id.qualified()
        ));
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

/// aws-vault reuses a session while more than 5 minutes remain.
pub const DEFAULT_MIN_REMAINING: Duration = Duration::from_secs(300);

/// How much validity a cached session must have left to be reused:
/// `VAULT_MIN_REMAINING`, else aws-vault's `AWS_MIN_TTL`, else 5 minutes.
pub fn min_remaining() -> Duration {
    vault_base::settings::Settings::get()
        .min_remaining
        .unwrap_or(DEFAULT_MIN_REMAINING)
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("session cache: {0}")]
    Kernel(String),
    /// The store that holds the cache where there is no kernel keyring
    /// (its own message, hint included).
    #[error("{0}")]
    Store(String),
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

/// A cache in this process's memory, shared by its clones: what the
/// provider, SSO and unlock tests use in place of the kernel keyring. Like
/// the kernel keyring, it may still hold an entry past its expiry, so
/// readers must check (as [`get`] does).
#[derive(Default, Clone)]
pub struct MemoryCache(
    std::rc::Rc<std::cell::RefCell<std::collections::BTreeMap<CacheId, Zeroizing<Vec<u8>>>>>,
);

impl SessionCache for MemoryCache {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn get_raw(&self, id: &CacheId) -> Result<Option<SecretBytes>, CacheError> {
        Ok(self
            .0
            .borrow()
            .get(id)
            .map(|v| SecretBytes::new(v.to_vec())))
    }
    fn put_raw(&self, id: &CacheId, v: &SecretBytes, _ttl: Duration) -> Result<(), CacheError> {
        self.0
            .borrow_mut()
            .insert(id.clone(), Zeroizing::new(v.expose().to_vec()));
        Ok(())
    }
    fn remove(&self, id: &CacheId) -> Result<bool, CacheError> {
        Ok(self.0.borrow_mut().remove(id).is_some())
    }
    fn ids(&self) -> Result<Vec<CacheId>, CacheError> {
        Ok(self.0.borrow().keys().cloned().collect())
    }
}

/// The entry `id`, when present, well-formed and not expired.
/// A damaged entry counts as absent (a cache holds nothing that cannot be
/// fetched again): the new session replaces it. Reading changes nothing.
pub fn get(cache: &dyn SessionCache, id: &CacheId) -> Result<Option<CachedSession>, CacheError> {
    let Some(raw) = cache.get_raw(id)? else {
        return Ok(None);
    };
    match decode(id, raw.expose()) {
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
    cache.put_raw(id, &encode(id, s), ttl)
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

/// Where an SSO sign-in's record (`parts`: what identifies it) is cached.
pub fn sso_record_id(parts: &[&str]) -> CacheId {
    CacheId {
        ns: Namespace::Sso,
        hex: digest(parts),
    }
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
    //! in the user keyring: one cache for every process of this user on
    //! this machine, whatever session keyring each has (a terminal, an IDE
    //! started by the service manager, tmux, an ssh login), kept in memory
    //! only and expired by the kernel. `VAULT_CACHE_SCOPE=session` keeps
    //! them in the session keyring instead (one login's processes).
    //!
    //! Another user can share a session keyring with this one (`su`
    //! without `-l`, `sudo` without `pam_keyinit force`) and so possess
    //! what it links. So: a keyring not owned by this euid is refused;
    //! every key is made private (this uid only, nothing for possessors,
    //! group or others) before it is linked where others could reach it;
    //! a key read is used only if this euid owns it with exactly those
    //! permissions; and each entry names the id it was written under.
    use super::*;
    use linux_keyutils::{
        KeyError, KeyPermissions, KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission,
    };

    const PREFIX: &str = "vault:";

    /// Which keyring holds the cache.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Scope {
        /// The user keyring (the default): every process of this user.
        User,
        /// The session keyring: the processes of one login session.
        Session,
    }

    impl Scope {
        /// `VAULT_CACHE_SCOPE`: `user` (default) or `session`.
        pub fn from_env() -> Result<Scope, CacheError> {
            let scope = vault_base::settings::Settings::get().cache_scope.as_deref();
            match scope {
                None | Some("user") => Ok(Scope::User),
                Some("session") => Ok(Scope::Session),
                Some(other) => Err(CacheError::Kernel(format!(
                    "VAULT_CACHE_SCOPE={other:?}: use user (every process of yours) or session (one login)"
                ))),
            }
        }
    }

    pub struct KernelCache {
        ring: KeyRing,
        euid: u32,
    }

    fn err(e: KeyError) -> CacheError {
        CacheError::Kernel(format!("{e:?}"))
    }

    /// This uid may do everything; possessors (who may be another uid
    /// sharing the session keyring), the group and others nothing.
    fn private() -> KeyPermissions {
        KeyPermissionsBuilder::builder()
            .user(Permission::ALL)
            .build()
    }

    fn euid() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    impl KernelCache {
        /// The cache keyring of `VAULT_CACHE_SCOPE`, when the kernel lets
        /// us use it and it is this user's own.
        pub fn open() -> Result<KernelCache, CacheError> {
            // The user keyring is made on first use, like the kernel does
            // for any keyctl on it; a process without a session keyring
            // gets none made here (the kernel would hand it the shared
            // user-session keyring).
            let (id, name, create) = match Scope::from_env()? {
                Scope::User => (KeyRingIdentifier::User, "user", true),
                Scope::Session => (KeyRingIdentifier::Session, "session", false),
            };
            let ring = KeyRing::from_special_id(id, create).map_err(err)?;
            // Probe: seccomp profiles that forbid keyctl fail here, not later.
            let meta = ring.metadata().map_err(err)?;
            let euid = euid();
            if meta.get_uid() != euid {
                return Err(CacheError::Kernel(format!(
                    "refusing the {name} keyring \"{}\": it belongs to uid {}, not to you (uid {euid}); \
                     another user's session (su without -l?)",
                    meta.get_description(),
                    meta.get_uid()
                )));
            }
            Ok(KernelCache { ring, euid })
        }

        /// The key `desc` if it is this user's own, private key; another
        /// one (planted by another uid that possesses this keyring, or
        /// made readable to others) is ignored, and unlinked when we may.
        fn own_key(&self, desc: &str) -> Result<Option<linux_keyutils::Key>, CacheError> {
            let key = match self.ring.search(desc) {
                Ok(key) => key,
                Err(KeyError::KeyDoesNotExist | KeyError::KeyExpired | KeyError::KeyRevoked) => {
                    return Ok(None)
                }
                Err(KeyError::AccessDenied) => {
                    log::warn!(target: "vault", "ignoring a session cache key {desc} this user may not read");
                    return Ok(None);
                }
                Err(e) => return Err(err(e)),
            };
            let meta = match key.metadata() {
                Ok(m) => m,
                Err(KeyError::KeyExpired | KeyError::KeyRevoked | KeyError::KeyDoesNotExist) => {
                    return Ok(None)
                }
                Err(e) => return Err(err(e)),
            };
            if meta.get_uid() != self.euid || meta.get_perms().bits() != private().bits() {
                log::warn!(target: "vault",
                    "ignoring session cache key {desc}: owned by uid {} with permissions {:08x}, not this user's own private key",
                    meta.get_uid(), meta.get_perms().bits());
                let _ = self.ring.unlink_key(key);
                return Ok(None);
            }
            Ok(Some(key))
        }
    }

    impl SessionCache for KernelCache {
        fn name(&self) -> &'static str {
            "kernel keyring"
        }

        fn get_raw(&self, id: &CacheId) -> Result<Option<SecretBytes>, CacheError> {
            let desc = format!("{PREFIX}{}", id.qualified());
            let Some(key) = self.own_key(&desc)? else {
                return Ok(None);
            };
            match key.read_to_vec() {
                Ok(v) => Ok(Some(SecretBytes::from(Zeroizing::new(v)))),
                // Expired or revoked between search and read.
                Err(KeyError::KeyExpired | KeyError::KeyRevoked | KeyError::KeyDoesNotExist) => {
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
            // Made in this thread's own keyring, which nobody else
            // possesses, and made private there; only then linked into the
            // shared keyring (displacing any key of the same name).
            let staging = KeyRing::from_special_id(KeyRingIdentifier::Thread, true).map_err(err)?;
            let key = staging.add_key(&desc, value.expose()).map_err(err)?;
            let made = key
                .set_perms(private())
                .and_then(|()| key.set_timeout(ttl.as_secs().max(1) as usize))
                .and_then(|()| self.ring.link_key(key));
            let _ = staging.unlink_key(key);
            made.map_err(err)
        }

        fn remove(&self, id: &CacheId) -> Result<bool, CacheError> {
            let desc = format!("{PREFIX}{}", id.qualified());
            match self.own_key(&desc)? {
                Some(key) => {
                    key.invalidate().map_err(err)?;
                    Ok(true)
                }
                None => Ok(false),
            }
        }

        fn ids(&self) -> Result<Vec<CacheId>, CacheError> {
            let links = self.ring.get_links(4096).map_err(err)?;
            let mut ids = Vec::new();
            for node in links.iter() {
                let Some(key) = node.as_key() else { continue };
                let Ok(meta) = key.metadata() else { continue };
                if meta.get_uid() != self.euid {
                    continue;
                }
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

    fn zero_id() -> CacheId {
        CacheId::from_qualified("session:00000000000000000000000000000000").unwrap()
    }

    #[test]
    fn entry_round_trip() {
        let s = sample();
        let id = CacheId::new(&["a"]);
        assert_eq!(decode(&id, encode(&id, &s).expose()).unwrap(), s);
        // Moved under another id (another profile or kind), it is refused.
        let other = CacheId::new(&["b"]);
        let e = decode(&other, encode(&id, &s).expose()).unwrap_err();
        assert!(e.contains("found under"), "{e}");
    }

    #[test]
    fn expirations_past_what_can_be_written_are_errors_not_panics() {
        // Found by fuzzing (fuzz/regressions/session/expiration-*): u64::MAX
        // seconds overflowed `UNIX_EPOCH + d` in `decode`; a time past year
        // 9999 decoded, then panicked where `vault exec --json` formats it.
        let entry = |expiration: &str| {
            format!(
                r#"{{"v":2,"id":"session:00000000000000000000000000000000","kind":"AssumeRole","profile":"p","mfa_serial":null,"access_key_id":"ASIA","secret_access_key":"s","session_token":"t","expiration":{expiration}}}"#
            )
        };
        for expiration in [
            "18446744073709551615",
            "9223372036854775807",
            "253402300800",
        ] {
            let e = decode(&zero_id(), entry(expiration).as_bytes()).unwrap_err();
            assert!(e.contains("out of range"), "{e}");
        }
        let last = decode(&zero_id(), entry("253402300799").as_bytes()).unwrap();
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
            assert!(decode(&zero_id(), bad).is_err());
        }
        let mut good = encode(&zero_id(), &sample()).expose().to_vec();
        good.truncate(good.len() / 2);
        assert!(decode(&zero_id(), &good).is_err());
    }

    #[test]
    fn a_damaged_entry_reads_as_absent_and_a_new_one_replaces_it() {
        let cache = MemoryCache::default();
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
