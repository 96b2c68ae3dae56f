//! The OS keychain through `keyring` 3.6.3: the Secret Service on Linux and
//! the BSDs, the Keychain on macOS, the Credential Manager on Windows. The
//! service name is `StoreOptions::service`, the account is the item name.
//!
//! Credentials are built here from the platform's own type, never through
//! `keyring::Entry::new`: with a store feature missing, keyring's default
//! builder is its in-memory mock, and secrets would silently vanish at exit.

use super::{Backend, Store, StoreError, StoreOptions};

#[cfg(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "macos",
    target_os = "windows"
))]
pub(super) fn open(opts: &StoreOptions) -> Result<Box<dyn Store>, StoreError> {
    use super::entries::EntryStore;
    let store = EntryStore {
        backend: Backend::Keychain,
        service: super::keyring_service(Backend::Keychain, opts)?,
        credential: platform::credential,
        map_error: platform::map_error,
    };
    // One round trip now, so a missing or locked keychain fails with its
    // hint before a command has done half its work.
    match store.read_index() {
        Ok(_) | Err(StoreError::Corrupt { .. }) => Ok(Box::new(store)),
        Err(e) => Err(e),
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "macos",
    target_os = "windows"
)))]
pub(super) fn open(_opts: &StoreOptions) -> Result<Box<dyn Store>, StoreError> {
    Err(StoreError::Unavailable {
        backend: Backend::Keychain.name(),
        detail: "vault knows no keychain on this operating system".to_string(),
        hint: "use --backend file".to_string(),
    })
}

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
mod platform {
    use super::super::entries::{detail, other_error};
    use super::super::{Backend, StoreError};
    use keyring::secret_service::SsCredential;
    use keyring::Credential;

    pub(super) fn credential(service: &str, user: &str) -> keyring::Result<Box<Credential>> {
        let mut c = SsCredential::new_with_target(None, service, user)?;
        // What Seahorse and `secret-tool` show; keyring's default names its
        // own version instead of the program.
        c.label = format!("{service}: {user}");
        Ok(Box::new(c))
    }

    pub(super) fn map_error(e: keyring::Error) -> StoreError {
        match &e {
            // keyring maps Locked, NoResult (no default collection) and a
            // dismissed unlock prompt to NoStorageAccess.
            keyring::Error::NoStorageAccess(_) => StoreError::Denied {
                backend: Backend::Keychain.name(),
                detail: format!(
                    "the Secret Service keyring is locked or has no default collection ({})",
                    detail(&e)
                ),
                hint: "unlock your keyring (log in to the desktop, open Seahorse, or \
                       `gnome-keyring-daemon --unlock` with the password on stdin), \
                       or use --backend file"
                    .to_string(),
            },
            keyring::Error::PlatformFailure(inner) => {
                let text = inner.to_string();
                match not_running(&text) {
                    Some(what) => StoreError::Unavailable {
                        backend: Backend::Keychain.name(),
                        detail: format!("{what} ({text})"),
                        hint: "start gnome-keyring-daemon (`gnome-keyring-daemon --start \
                               --components=secrets` inside your D-Bus session) or another \
                               Secret Service such as KeePassXC, or use --backend file"
                            .to_string(),
                    },
                    None => other_error(Backend::Keychain, &e),
                }
            }
            _ => other_error(Backend::Keychain, &e),
        }
    }

    /// The D-Bus errors that mean nobody is there to answer; the error type
    /// is dbus-secret-service's, not reachable from here, so by its text.
    pub(super) fn not_running(text: &str) -> Option<&'static str> {
        const NO_BUS: &[&str] = &[
            "DBUS_SESSION_BUS_ADDRESS",
            "autolaunch",
            "Failed to connect to socket",
            "NoServer",
            "No DBus session",
        ];
        const NO_SERVICE: &[&str] = &[
            "org.freedesktop.secrets",
            "ServiceUnknown",
            "NameHasNoOwner",
            "NoReply",
        ];
        if NO_BUS.iter().any(|m| text.contains(m)) {
            Some("there is no D-Bus session bus to reach a Secret Service on")
        } else if NO_SERVICE.iter().any(|m| text.contains(m)) {
            Some("no Secret Service is running on the D-Bus session bus")
        } else {
            None
        }
    }
}

#[cfg(target_os = "macos")]
mod platform {
    use super::super::entries::{detail, other_error};
    use super::super::{Backend, StoreError};
    use keyring::macos::MacCredential;
    use keyring::Credential;

    pub(super) fn credential(service: &str, user: &str) -> keyring::Result<Box<Credential>> {
        Ok(Box::new(MacCredential::new_with_target(
            None, service, user,
        )?))
    }

    pub(super) fn map_error(e: keyring::Error) -> StoreError {
        match &e {
            keyring::Error::NoStorageAccess(_) => StoreError::Denied {
                backend: Backend::Keychain.name(),
                detail: format!("the login keychain is not usable ({})", detail(&e)),
                hint: "unlock the login keychain (Keychain Access, or \
                       `security unlock-keychain ~/Library/Keychains/login.keychain-db`), \
                       or use --backend file"
                    .to_string(),
            },
            _ => other_error(Backend::Keychain, &e),
        }
    }
}

#[cfg(target_os = "windows")]
mod platform {
    use super::super::entries::{detail, other_error};
    use super::super::{Backend, StoreError};
    use keyring::windows::WinCredential;
    use keyring::Credential;

    pub(super) fn credential(service: &str, user: &str) -> keyring::Result<Box<Credential>> {
        Ok(Box::new(WinCredential::new_with_target(
            None, service, user,
        )?))
    }

    pub(super) fn map_error(e: keyring::Error) -> StoreError {
        match &e {
            // ERROR_NO_SUCH_LOGON_SESSION: a service account or a network logon.
            keyring::Error::NoStorageAccess(_) => StoreError::Denied {
                backend: Backend::Keychain.name(),
                detail: format!(
                    "the Credential Manager has no logon session for this process ({})",
                    detail(&e)
                ),
                hint: "run vault in an interactive logon, or use --backend file".to_string(),
            },
            _ => other_error(Backend::Keychain, &e),
        }
    }
}

#[cfg(all(
    test,
    any(target_os = "linux", target_os = "freebsd", target_os = "openbsd")
))]
mod tests {
    use super::platform::{credential, not_running};
    use keyring::secret_service::{SsCredential, SsCredentialBuilder};

    #[test]
    fn credentials_are_secret_service_ones_never_the_mock() {
        let c = credential("vault-unit", "key/p").expect("a credential, without touching D-Bus");
        assert!(c.as_any().is::<SsCredential>(), "got {c:?}");
        assert!(!c.as_any().is::<keyring::mock::MockCredential>());
        // Anything in the process that still calls `Entry::new` gets the
        // Secret Service too: the features in Cargo.toml select it.
        let default = keyring::default::default_credential_builder();
        assert!(
            default.as_any().is::<SsCredentialBuilder>(),
            "default is {default:?}"
        );
        assert!(!default
            .as_any()
            .is::<keyring::mock::MockCredentialBuilder>());
    }

    #[test]
    fn items_are_named_after_service_and_item() {
        let c = credential("vault-unit", "key/p").expect("a credential");
        let ss = c
            .as_any()
            .downcast_ref::<SsCredential>()
            .expect("an SsCredential");
        assert_eq!(ss.attributes["service"], "vault-unit");
        assert_eq!(ss.attributes["username"], "key/p");
        assert_eq!(ss.label, "vault-unit: key/p");
    }

    #[test]
    fn dbus_failures_that_mean_no_service_are_recognised() {
        assert!(not_running(
            "DBus error: The name org.freedesktop.secrets was not provided by any .service files"
        )
        .is_some());
        assert!(not_running(
            "DBus error: Unable to autolaunch a dbus-daemon without a $DISPLAY for X11"
        )
        .is_some());
        assert!(not_running("Secret Service: object locked").is_none());
    }
}
