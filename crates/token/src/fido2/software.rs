//! A CTAP 2.1 authenticator in software, since no HID device can be emulated in tests.

use super::authenticator::check_rp_id;
use super::{Fido2Authenticator, Fido2Error};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use vault_base::secret::Passphrase;
use zeroize::{Zeroize, Zeroizing};

/// Domain separation for the software authenticator's credential ids.
const SOFTWARE_ID_AAD: &[u8] = b"vault software FIDO2 credential v1";
const SOFTWARE_ID_VERSION: u8 = 1;
const SOFTWARE_PIN_RETRIES: u32 = 8;

/// A FIDO2 authenticator in software, answering as a CTAP 2.1 key does:
/// each credential has two random CredRandoms (used with and without the
/// PIN), kept in the credential id itself, encrypted and authenticated
/// with the authenticator's own key and bound to the relying party, so the
/// authenticator stores nothing per credential; hmac-secret is
/// HMAC-SHA-256(CredRandom, salt). For tests only; nothing in vault's
/// product path uses it.
pub struct SoftwareAuthenticator {
    /// Wraps the credential ids.
    master: Zeroizing<[u8; 32]>,
    pin: Option<Passphrase>,
    always_uv: bool,
    pin_retries: u32,
    refuse_touch: bool,
    present: bool,
    hmac_secret: bool,
    touches: u32,
}

impl Default for SoftwareAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftwareAuthenticator {
    /// A new authenticator with a random key, no PIN, touched when asked.
    pub fn new() -> Self {
        let mut master = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut master[..]);
        SoftwareAuthenticator {
            master,
            pin: None,
            always_uv: false,
            pin_retries: SOFTWARE_PIN_RETRIES,
            refuse_touch: false,
            present: true,
            hmac_secret: true,
            touches: 0,
        }
    }

    /// Sets a PIN. Making a credential then needs it (as on a key without
    /// CTAP 2.1's makeCredUvNotRqd); hmac-secret does not.
    pub fn with_pin(mut self, pin: Passphrase) -> Self {
        self.pin = Some(pin);
        self
    }

    /// Sets a PIN and requires it for everything (CTAP 2.1's alwaysUv).
    pub fn require_pin(mut self, pin: Passphrase) -> Self {
        self.pin = Some(pin);
        self.always_uv = true;
        self
    }

    /// Without the hmac-secret extension, as some U2F-era keys are.
    pub fn without_hmac_secret(mut self) -> Self {
        self.hmac_secret = false;
        self
    }

    /// While set, every request that needs a touch times out.
    pub fn refuse_touch(&mut self, refuse: bool) {
        self.refuse_touch = refuse;
    }

    /// While unplugged, every request finds no device.
    pub fn set_plugged_in(&mut self, present: bool) {
        self.present = present;
    }

    /// How many touches the authenticator has had.
    pub fn touches(&self) -> u32 {
        self.touches
    }

    /// PIN tries left.
    pub fn pin_retries(&self) -> u32 {
        self.pin_retries
    }

    /// Checks presence and the PIN; returns whether the PIN was verified.
    fn user_verification(&mut self, pin: Option<&Passphrase>) -> Result<bool, Fido2Error> {
        if !self.present {
            return Err(Fido2Error::NoDevice);
        }
        let Some(given) = pin else {
            return if self.always_uv {
                Err(Fido2Error::PinRequired)
            } else {
                Ok(false)
            };
        };
        let Some(set) = &self.pin else {
            return Err(Fido2Error::PinNotSet);
        };
        if self.pin_retries == 0 {
            return Err(Fido2Error::PinBlocked);
        }
        if given != set {
            self.pin_retries -= 1;
            return Err(if self.pin_retries == 0 {
                Fido2Error::PinBlocked
            } else {
                Fido2Error::WrongPin {
                    tries_left: Some(self.pin_retries),
                }
            });
        }
        self.pin_retries = SOFTWARE_PIN_RETRIES;
        Ok(true)
    }

    fn touch(&mut self) -> Result<(), Fido2Error> {
        if self.refuse_touch {
            return Err(Fido2Error::TouchTimeout);
        }
        self.touches += 1;
        Ok(())
    }

    fn id_aad(rp_id: &str) -> Vec<u8> {
        let mut aad = SOFTWARE_ID_AAD.to_vec();
        aad.extend_from_slice(&Sha256::digest(rp_id.as_bytes()));
        aad
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.master[..]))
    }

    /// Version ‖ nonce ‖ AEAD(CredRandomWithUV ‖ CredRandomWithoutUV).
    fn wrap_credential(&self, rp_id: &str) -> Result<Vec<u8>, Fido2Error> {
        let mut cred_randoms = Zeroizing::new([0u8; 64]);
        OsRng.fill_bytes(&mut cred_randoms[..]);
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let aad = Self::id_aad(rp_id);
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &cred_randoms[..],
                    aad: &aad,
                },
            )
            .map_err(|_| Fido2Error::Device("cannot wrap the credential".to_string()))?;
        let mut id = Vec::with_capacity(1 + nonce.len() + sealed.len());
        id.push(SOFTWARE_ID_VERSION);
        id.extend_from_slice(&nonce);
        id.extend_from_slice(&sealed);
        Ok(id)
    }

    /// The CredRandom of `credential_id` for `rp_id`, with or without user
    /// verification; [`Fido2Error::CredentialNotFound`] for an id this
    /// authenticator did not make for `rp_id`.
    pub fn cred_random(
        &self,
        rp_id: &str,
        credential_id: &[u8],
        verified: bool,
    ) -> Result<Zeroizing<[u8; 32]>, Fido2Error> {
        let (&version, rest) = credential_id
            .split_first()
            .ok_or(Fido2Error::CredentialNotFound)?;
        if version != SOFTWARE_ID_VERSION || rest.len() < 12 {
            return Err(Fido2Error::CredentialNotFound);
        }
        let (nonce, sealed) = rest.split_at(12);
        let aad = Self::id_aad(rp_id);
        let opened = Zeroizing::new(
            self.cipher()
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: &aad,
                    },
                )
                .map_err(|_| Fido2Error::CredentialNotFound)?,
        );
        if opened.len() != 64 {
            return Err(Fido2Error::CredentialNotFound);
        }
        let half = if verified {
            &opened[..32]
        } else {
            &opened[32..]
        };
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(half);
        Ok(out)
    }
}

/// HMAC-SHA-256(key, message).
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> Result<Zeroizing<[u8; 32]>, Fido2Error> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|_| Fido2Error::Device("HMAC key rejected".to_string()))?;
    mac.update(message);
    let mut digest = mac.finalize().into_bytes();
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&digest);
    digest.as_mut_slice().zeroize();
    Ok(out)
}

impl Fido2Authenticator for SoftwareAuthenticator {
    fn make_hmac_credential(
        &mut self,
        rp_id: &str,
        pin: Option<&Passphrase>,
    ) -> Result<Vec<u8>, Fido2Error> {
        check_rp_id(rp_id)?;
        if !self.present {
            return Err(Fido2Error::NoDevice);
        }
        if pin.is_none() && self.pin.is_some() {
            return Err(Fido2Error::PinRequired);
        }
        self.user_verification(pin)?;
        self.touch()?;
        if !self.hmac_secret {
            return Err(Fido2Error::HmacSecretUnsupported);
        }
        self.wrap_credential(rp_id)
    }

    fn hmac_secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
        pin: Option<&Passphrase>,
    ) -> Result<Zeroizing<[u8; 32]>, Fido2Error> {
        let verified = self.user_verification(pin)?;
        let cred_random = self.cred_random(rp_id, credential_id, verified)?;
        self.touch()?;
        hmac_sha256(&cred_random, salt)
    }

    fn description(&self) -> String {
        "software FIDO2 authenticator".to_string()
    }
}

impl fmt::Debug for SoftwareAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareAuthenticator")
            .field("pin_set", &self.pin.is_some())
            .field("always_uv", &self.always_uv)
            .field("touches", &self.touches)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const RP: &str = "vault.test";

    fn pin(s: &str) -> Passphrase {
        Passphrase::new(s)
    }

    #[test]
    fn wrong_credential_or_relying_party_is_not_found_never_a_secret() {
        let mut key = SoftwareAuthenticator::new();
        let id = key.make_hmac_credential(RP, None).unwrap();
        let salt = [1; 32];
        for i in 0..id.len() {
            let mut bad = id.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                key.hmac_secret(RP, &bad, &salt, None),
                Err(Fido2Error::CredentialNotFound),
                "byte {i}"
            );
        }
        assert_eq!(
            key.hmac_secret(RP, &id[..id.len() - 1], &salt, None),
            Err(Fido2Error::CredentialNotFound)
        );
        assert_eq!(
            key.hmac_secret(RP, &[], &salt, None),
            Err(Fido2Error::CredentialNotFound)
        );
        assert_eq!(
            key.hmac_secret("other.test", &id, &salt, None),
            Err(Fido2Error::CredentialNotFound)
        );
        let mut stranger = SoftwareAuthenticator::new();
        assert_eq!(
            stranger.hmac_secret(RP, &id, &salt, None),
            Err(Fido2Error::CredentialNotFound)
        );
        assert_eq!(stranger.touches(), 0, "no touch for a credential it lacks");
    }

    #[test]
    fn the_pin_changes_the_secret_as_on_a_ctap21_key() {
        let mut key = SoftwareAuthenticator::new().with_pin(pin("123456"));
        let id = key.make_hmac_credential(RP, Some(&pin("123456"))).unwrap();
        let salt = [7; 32];
        let without = key.hmac_secret(RP, &id, &salt, None).unwrap();
        let with = key
            .hmac_secret(RP, &id, &salt, Some(&pin("123456")))
            .unwrap();
        assert_ne!(*without, *with);
    }

    #[test]
    fn the_pin_blocks_after_its_tries() {
        let mut key = SoftwareAuthenticator::new().require_pin(pin("2468"));
        for left in (1..SOFTWARE_PIN_RETRIES).rev() {
            assert_eq!(
                key.make_hmac_credential(RP, Some(&pin("0000"))),
                Err(Fido2Error::WrongPin {
                    tries_left: Some(left)
                })
            );
        }
        assert_eq!(
            key.make_hmac_credential(RP, Some(&pin("0000"))),
            Err(Fido2Error::PinBlocked)
        );
        assert_eq!(
            key.make_hmac_credential(RP, Some(&pin("2468"))),
            Err(Fido2Error::PinBlocked)
        );
    }
}
