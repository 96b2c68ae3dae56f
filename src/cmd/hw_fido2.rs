//! `vault hw enroll --fido2 --profile P`: wrap a profile's key with any
//! FIDO2 security key's hmac-secret instead of a PIV slot.
//!
//! Such an envelope holds the FIDO2 entry only: adding a recipient later
//! would need the key's hmac-secret output again, so backups are PIV keys.

use crate::app::App;
use crate::error::Error;
use vault_base::secret::Passphrase;
use vault_base::settings::env_var;
use vault_fast::cli::EnrollArgs;
use vault_secrets::enrolled;
use vault_secrets::envelope;
use vault_secrets::store;
use vault_token::fido2::{self, Fido2Unwrapper, HidAuthenticator};

/// The relying party vault's credentials are made for; never a web origin.
pub const RP_ID: &str = "vault.local";

fn err(e: impl std::fmt::Display) -> Error {
    Error::Token {
        message: e.to_string(),
        hint: None,
    }
}

pub fn enroll(app: &App, args: &EnrollArgs) -> Result<(), Error> {
    let Some(profile) = &args.profile else {
        return Err(Error::usage(
            "--fido2 wraps a profile's key: pass --profile PROFILE",
            None,
        ));
    };
    let item = store::key_item(profile);
    let store = app.store()?;
    let key = store::get_key(store, profile)?.ok_or_else(|| {
        Error::usage(
            format!(
                "no key for profile \"{profile}\" in the {} store",
                app.backend.name()
            ),
            Some(format!("add it first: vault add {profile}")),
        )
    })?;
    // The crate's own messages go to stderr; ours, too.
    let mut auth = HidAuthenticator::new(Box::new(|m: &str| eprintln!("vault: {m}")));
    let pin = env_var("VAULT_FIDO2_PIN").map(Passphrase::new);
    eprintln!("Touch your security key twice: once to make vault's credential, once to derive the wrapping secret.");
    let recipient = fido2::enroll(&mut auth, RP_ID, pin.as_ref()).map_err(err)?;
    let secret = store::encode_key(&key);
    let env = envelope::seal(&secret, &[recipient.into()], &item).map_err(err)?;
    let bytes = env.encode();
    let decoded = envelope::Envelope::decode(&bytes).map_err(err)?;
    eprintln!("Touch your security key again to check that the envelope opens…");
    let mut u = Fido2Unwrapper::new(auth);
    if let Some(p) = pin {
        u = u.with_pin(p);
    }
    let opened = envelope::open(&decoded, &item, &mut u).map_err(|e| {
        err(format!(
            "the new envelope did not open, so nothing was changed: {e}"
        ))
    })?;
    if opened.expose() != secret.expose() {
        return Err(err(
            "the new envelope opened to different bytes; nothing was changed",
        ));
    }
    enrolled::write_envelope(profile, &bytes).map_err(err)?;
    if args.keep_keychain_copy {
        eprintln!(
            "Wrapped profile \"{profile}\"'s key with the security key; kept the store's copy."
        );
    } else {
        store.delete(&item)?;
        eprintln!(
            "Wrapped profile \"{profile}\"'s key with the security key and deleted the clear copy."
        );
    }
    Ok(())
}
