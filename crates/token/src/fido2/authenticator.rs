//! What vault does with any FIDO2 authenticator: enroll it, then unwrap with its hmac-secret.

use super::Fido2Error;
use rand::rngs::OsRng;
use rand::RngCore;
use std::fmt;
use vault_base::secret::Passphrase;
use zeroize::Zeroizing;

/// The envelope stores the relying party id in at most 255 bytes.
const MAX_RP_ID_LEN: usize = 255;

/// A FIDO2 authenticator with hmac-secret, as vault uses one. `pin` is
/// sent only when given; see the module documentation for when vault
/// gives it.
pub trait Fido2Authenticator {
    /// Makes a (non-resident) credential for `rp_id` with hmac-secret and
    /// returns its id. Needs a touch.
    fn make_hmac_credential(
        &mut self,
        rp_id: &str,
        pin: Option<&Passphrase>,
    ) -> Result<Vec<u8>, Fido2Error>;

    /// The hmac-secret output of `credential_id` for `salt`. Needs a touch.
    /// [`Fido2Error::NoDevice`] and [`Fido2Error::CredentialNotFound`] mean
    /// the key that holds the credential is not here.
    fn hmac_secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
        pin: Option<&Passphrase>,
    ) -> Result<Zeroizing<[u8; 32]>, Fido2Error>;

    /// What to call the authenticator in messages.
    fn description(&self) -> String;
}

impl<A: Fido2Authenticator + ?Sized> Fido2Authenticator for &mut A {
    fn make_hmac_credential(
        &mut self,
        rp_id: &str,
        pin: Option<&Passphrase>,
    ) -> Result<Vec<u8>, Fido2Error> {
        (**self).make_hmac_credential(rp_id, pin)
    }

    fn hmac_secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
        pin: Option<&Passphrase>,
    ) -> Result<Zeroizing<[u8; 32]>, Fido2Error> {
        (**self).hmac_secret(rp_id, credential_id, salt, pin)
    }

    fn description(&self) -> String {
        (**self).description()
    }
}

impl<A: Fido2Authenticator + ?Sized> Fido2Authenticator for Box<A> {
    fn make_hmac_credential(
        &mut self,
        rp_id: &str,
        pin: Option<&Passphrase>,
    ) -> Result<Vec<u8>, Fido2Error> {
        (**self).make_hmac_credential(rp_id, pin)
    }

    fn hmac_secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
        pin: Option<&Passphrase>,
    ) -> Result<Zeroizing<[u8; 32]>, Fido2Error> {
        (**self).hmac_secret(rp_id, credential_id, salt, pin)
    }

    fn description(&self) -> String {
        (**self).description()
    }
}

/// Runs `op` without a PIN, and again with `pin` only if the key asked for
/// one (see the module documentation).
fn pin_if_required<T>(
    pin: Option<&Passphrase>,
    mut op: impl FnMut(Option<&Passphrase>) -> Result<T, Fido2Error>,
) -> Result<T, Fido2Error> {
    match op(None) {
        Err(Fido2Error::PinRequired) => match pin {
            Some(pin) => op(Some(pin)),
            None => Err(Fido2Error::PinRequired),
        },
        other => other,
    }
}

pub(super) fn check_rp_id(rp_id: &str) -> Result<(), Fido2Error> {
    if rp_id.is_empty() || rp_id.len() > MAX_RP_ID_LEN {
        return Err(Fido2Error::InvalidRpId(rp_id.to_string()));
    }
    Ok(())
}

/// Enrolls a FIDO2 key as a recipient: makes a credential for `rp_id`,
/// draws a random salt and evaluates hmac-secret once, since sealing needs
/// the secret. Two touches. `pin` is used only if the key asks for it; a
/// key with a PIN that asks and no `pin` gives [`Fido2Error::PinRequired`].
pub fn enroll(
    auth: &mut dyn Fido2Authenticator,
    rp_id: &str,
    pin: Option<&Passphrase>,
) -> Result<Fido2Enrollment, Fido2Error> {
    check_rp_id(rp_id)?;
    let credential_id = pin_if_required(pin, |pin| auth.make_hmac_credential(rp_id, pin))?;
    if credential_id.is_empty() || credential_id.len() > MAX_CREDENTIAL_ID_LEN {
        return Err(Fido2Error::Device(format!(
            "the key made a credential id of {} bytes; vault stores 1 to \
             {MAX_CREDENTIAL_ID_LEN}",
            credential_id.len()
        )));
    }
    let mut salt = [0u8; 32];
    OsRng.fill_bytes(&mut salt);
    let hmac_secret = pin_if_required(pin, |pin| {
        auth.hmac_secret(rp_id, &credential_id, &salt, pin)
    })?;
    Ok(Fido2Enrollment {
        rp_id: rp_id.to_string(),
        credential_id,
        salt,
        hmac_secret,
    })
}

/// The longest credential id vault keeps: CTAP 2.1 allows up to 1023 bytes.
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;

/// What enrolling a FIDO2 key gives: its credential, the salt drawn for it
/// and the hmac-secret for that salt, from which a recipient is made.
pub struct Fido2Enrollment {
    pub rp_id: String,
    pub credential_id: Vec<u8>,
    pub salt: [u8; 32],
    pub hmac_secret: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Fido2Enrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Fido2Enrollment {{ rp_id: {:?}, credential_id: {} bytes, hmac_secret: *** }}",
            self.rp_id,
            self.credential_id.len()
        )
    }
}

/// Asked for the PIN of the authenticator it is given the description of;
/// `None` when the user cancels.
pub type PinPrompt = Box<dyn FnMut(&str) -> Option<Passphrase>>;

/// The envelope's [`Unwrapper`] for FIDO2 entries. A key that is absent or
/// does not hold the entry's credential answers `Ok(None)`, so the next
/// entry is tried; any other failure stops the open. The PIN (given, or
/// asked through the prompt) is sent only when the key asks for it, and
/// kept for later entries once it worked.
pub struct Fido2Unwrapper<A: Fido2Authenticator> {
    auth: A,
    pin: Option<Passphrase>,
    ask_pin: Option<PinPrompt>,
}

impl<A: Fido2Authenticator> Fido2Unwrapper<A> {
    pub fn new(auth: A) -> Self {
        Fido2Unwrapper {
            auth,
            pin: None,
            ask_pin: None,
        }
    }

    /// The PIN to send if the key asks for one.
    pub fn with_pin(mut self, pin: Passphrase) -> Self {
        self.pin = Some(pin);
        self
    }

    /// Asks for the PIN when the key needs one and none was given.
    pub fn with_pin_prompt(mut self, ask: PinPrompt) -> Self {
        self.ask_pin = Some(ask);
        self
    }

    pub fn authenticator(&self) -> &A {
        &self.auth
    }

    pub fn into_inner(self) -> A {
        self.auth
    }

    /// The hmac-secret of `credential_id` for `salt`, or `Ok(None)` when
    /// no key is plugged in or the key does not hold that credential (so a
    /// caller tries its next key); any other failure is an error.
    pub fn find_secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
    ) -> Result<Option<Zeroizing<[u8; 32]>>, Fido2Error> {
        match self.secret(rp_id, credential_id, salt) {
            Ok(secret) => Ok(Some(secret)),
            Err(Fido2Error::NoDevice | Fido2Error::CredentialNotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
    ) -> Result<Zeroizing<[u8; 32]>, Fido2Error> {
        match self.auth.hmac_secret(rp_id, credential_id, salt, None) {
            Err(Fido2Error::PinRequired) => {}
            other => return other,
        }
        let pin = match self.pin.clone() {
            Some(pin) => pin,
            None => {
                let description = self.auth.description();
                match self.ask_pin.as_mut().and_then(|ask| ask(&description)) {
                    Some(pin) => pin,
                    None => return Err(Fido2Error::PinRequired),
                }
            }
        };
        let secret = self
            .auth
            .hmac_secret(rp_id, credential_id, salt, Some(&pin))?;
        self.pin = Some(pin);
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::fido2::SoftwareAuthenticator;

    const RP: &str = "vault.test";

    #[test]
    fn unsupported_hmac_secret_and_bad_relying_parties_are_refused() {
        let mut key = SoftwareAuthenticator::new().without_hmac_secret();
        let err = enroll(&mut key, RP, None).unwrap_err();
        assert_eq!(err, Fido2Error::HmacSecretUnsupported);
        assert!(err.to_string().contains("hmac-secret"));

        let mut key = SoftwareAuthenticator::new();
        assert!(matches!(
            enroll(&mut key, "", None),
            Err(Fido2Error::InvalidRpId(_))
        ));
        assert!(matches!(
            enroll(&mut key, &"a".repeat(256), None),
            Err(Fido2Error::InvalidRpId(_))
        ));
        assert_eq!(key.touches(), 0);
    }
}
