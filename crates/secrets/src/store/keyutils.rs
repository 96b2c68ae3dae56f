//! The Linux kernel keyring through `keyring`'s keyutils store: secrets live
//! in kernel memory, in this login session's keyring, and are gone at logout
//! or reboot. Nothing ever touches a disk.
//!
//! It only works inside a session keyring of the process's own (`keyctl
//! session`, or a login through pam_keyinit). Without one the kernel falls
//! back to the user-session keyring, where a key can be added but not found
//! again, and keyring reports that as a plain "no entry"; `open` checks
//! first and says so.

use super::{Backend, Store, StoreError, StoreOptions};

#[cfg(target_os = "linux")]
pub(super) fn open(opts: &StoreOptions) -> Result<Box<dyn Store>, StoreError> {
    use super::entries::EntryStore;
    let service = super::keyring_service(Backend::Keyutils, opts)?;
    linux::check_session(&service)?;
    let store = EntryStore {
        backend: Backend::Keyutils,
        service,
        credential: linux::credential,
        map_error: linux::map_error,
    };
    match store.read_index() {
        Ok(_) | Err(StoreError::Corrupt { .. }) => Ok(Box::new(store)),
        Err(e) => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn open(_opts: &StoreOptions) -> Result<Box<dyn Store>, StoreError> {
    Err(StoreError::Unavailable {
        backend: Backend::Keyutils.name(),
        detail: "the kernel keyring (keyutils) exists only on Linux".to_string(),
        hint: "use --backend keychain or --backend file".to_string(),
    })
}

#[cfg(target_os = "linux")]
mod linux {
    use super::super::entries::other_error;
    use super::super::{Backend, StoreError};
    use keyring::keyutils::KeyutilsCredential;
    use keyring::Credential;

    /// The kernel's name for the per-user fallback session keyring.
    const USER_SESSION_FALLBACK: &str = "_uid_ses.";

    pub(super) fn credential(service: &str, user: &str) -> keyring::Result<Box<Credential>> {
        let mut c = KeyutilsCredential::new_with_target(None, service, user)?;
        // keyring also links each key into the user's persistent keyring,
        // which outlives the session by days and is shared by all of the
        // user's sessions; vault keeps the key to this session only.
        c.persistent = None;
        Ok(Box::new(c))
    }

    pub(super) fn check_session(service: &str) -> Result<(), StoreError> {
        let c =
            KeyutilsCredential::new_with_target(None, service, "__probe__").map_err(map_error)?;
        let meta = c
            .session
            .metadata()
            .map_err(|e| unreachable_keyring(&e.to_string()))?;
        if meta.get_description().starts_with(USER_SESSION_FALLBACK) {
            return Err(StoreError::Unavailable {
                backend: Backend::Keyutils.name(),
                detail: format!(
                    "this process has no session keyring of its own, only the user's \
                     fallback ({}), where keys can be added but never found again",
                    meta.get_description()
                ),
                hint: "start one first: `keyctl session - bash` (package keyutils), or log in \
                       through PAM with pam_keyinit; or use --backend keychain or file"
                    .to_string(),
            });
        }
        Ok(())
    }

    fn unreachable_keyring(detail: &str) -> StoreError {
        StoreError::Unavailable {
            backend: Backend::Keyutils.name(),
            detail: format!("the kernel keyring cannot be reached ({detail})"),
            hint: "containers often block the keyctl system calls (Docker's default seccomp \
                   profile does); use --backend file there"
                .to_string(),
        }
    }

    pub(super) fn map_error(e: keyring::Error) -> StoreError {
        match &e {
            // keyring maps the "no such key" family to NoEntry itself; what
            // is left as a platform failure means keyctl itself failed.
            keyring::Error::PlatformFailure(inner) => unreachable_keyring(&inner.to_string()),
            keyring::Error::Invalid(attr, _) if attr == "secret" => StoreError::Other {
                backend: Backend::Keyutils.name(),
                detail: "the kernel keyring cannot hold an empty value".to_string(),
            },
            _ => other_error(Backend::Keyutils, &e),
        }
    }
}
