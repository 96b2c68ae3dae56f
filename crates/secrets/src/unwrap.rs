//! The envelope's card side: the token crate's PIV and FIDO2 keys as the
//! envelope's [`Unwrapper`]. The token knows nothing of envelopes; this is
//! where its typed errors become the envelope's messages (with their hint).

use crate::envelope::{CardError, Recipient, Unwrapper};
use vault_token::fido2::{Fido2Authenticator, Fido2Enrollment, Fido2Unwrapper};
use vault_token::piv::PivUnwrapper;
use zeroize::Zeroizing;

impl Unwrapper for PivUnwrapper<'_> {
    fn piv_ecdh(
        &mut self,
        serial: u32,
        slot: u8,
        public_key: &p256::PublicKey,
        ephemeral: &p256::PublicKey,
    ) -> Result<Option<Zeroizing<[u8; 32]>>, CardError> {
        self.ecdh(serial, slot, public_key, ephemeral)
            .map_err(|e| Box::new(e) as CardError)
    }
}

impl<A: Fido2Authenticator> Unwrapper for Fido2Unwrapper<A> {
    fn fido2_secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
    ) -> Result<Option<Zeroizing<[u8; 32]>>, CardError> {
        self.find_secret(rp_id, credential_id, salt)
            .map_err(|e| Box::new(e) as CardError)
    }
}

impl From<Fido2Enrollment> for Recipient {
    fn from(e: Fido2Enrollment) -> Recipient {
        Recipient::Fido2 {
            rp_id: e.rp_id,
            credential_id: e.credential_id,
            salt: e.salt,
            hmac_secret: e.hmac_secret,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::envelope::{self, open, seal, OpenError, SoftwareFido2};
    use std::cell::RefCell;
    use std::rc::Rc;
    use vault_base::secret::{Passphrase, SecretBytes};
    use vault_token::fido2::{Fido2Error, SoftwareAuthenticator, MAX_CREDENTIAL_ID_LEN};

    const RP: &str = "vault.test";
    const CONTEXT: &str = "key/work";
    const SECRET: &[u8] = br#"{"AccessKeyId":"AKIAIOSFODNN7EXAMPLE","SecretAccessKey":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#;

    fn enroll(
        auth: &mut dyn Fido2Authenticator,
        rp_id: &str,
        pin: Option<&Passphrase>,
    ) -> Result<Recipient, Fido2Error> {
        vault_token::fido2::enroll(auth, rp_id, pin).map(Recipient::from)
    }

    fn pin(s: &str) -> Passphrase {
        Passphrase::new(s)
    }

    fn sealed_to(recipients: &[Recipient]) -> envelope::Envelope {
        let env = seal(&SecretBytes::new(SECRET.to_vec()), recipients, CONTEXT).unwrap();
        envelope::Envelope::decode(&env.encode()).unwrap()
    }

    #[test]
    fn enroll_seal_open_round_trips_through_the_unwrapper() {
        let mut key = SoftwareAuthenticator::new();
        let recipient = enroll(&mut key, RP, None).unwrap();
        assert_eq!(key.touches(), 2, "make credential and one hmac-secret");
        let Recipient::Fido2 {
            rp_id,
            credential_id,
            ..
        } = &recipient
        else {
            panic!("not a FIDO2 recipient: {recipient:?}");
        };
        assert_eq!(rp_id, RP);
        assert!(!credential_id.is_empty() && credential_id.len() <= MAX_CREDENTIAL_ID_LEN);

        let env = sealed_to(&[recipient]);
        let mut unwrapper = Fido2Unwrapper::new(&mut key);
        let opened = open(&env, CONTEXT, &mut unwrapper).unwrap();
        assert_eq!(opened.expose(), SECRET);
        assert_eq!(key.touches(), 3, "one touch to open");
    }

    #[test]
    fn hmac_secret_is_ctap_hmac_sha256_of_cred_random_and_salt() {
        let mut key = SoftwareAuthenticator::new();
        let id = key.make_hmac_credential(RP, None).unwrap();
        let salt = [0x5a; 32];
        let out = key.hmac_secret(RP, &id, &salt, None).unwrap();
        // The envelope's own model of a credential, with the same CredRandom.
        let model = SoftwareFido2 {
            rp_id: RP.to_string(),
            credential_id: id.clone(),
            cred_random: key.cred_random(RP, &id, false).unwrap(),
        };
        assert_eq!(*out, *model.hmac_secret(&salt));
        // Deterministic per (credential, salt), different for another salt.
        assert_eq!(*out, *key.hmac_secret(RP, &id, &salt, None).unwrap());
        assert_ne!(*out, *key.hmac_secret(RP, &id, &[0; 32], None).unwrap());
        // Stateless: the id alone names the credential, fresh each time.
        let other = key.make_hmac_credential(RP, None).unwrap();
        assert_ne!(id, other);
        assert_ne!(*out, *key.hmac_secret(RP, &other, &salt, None).unwrap());
    }

    #[test]
    fn another_authenticator_is_absent_to_the_envelope() {
        let mut key = SoftwareAuthenticator::new();
        let env = sealed_to(&[enroll(&mut key, RP, None).unwrap()]);
        let mut stranger = Fido2Unwrapper::new(SoftwareAuthenticator::new());
        let err = open(&env, CONTEXT, &mut stranger).unwrap_err();
        assert!(matches!(err, OpenError::NoTokenPresent { .. }), "{err:?}");

        // A credential id changed before sealing names no credential either.
        let mut recipient = enroll(&mut key, RP, None).unwrap();
        if let Recipient::Fido2 { credential_id, .. } = &mut recipient {
            credential_id[5] ^= 0xff;
        }
        let env = sealed_to(&[recipient]);
        let err = open(&env, CONTEXT, &mut Fido2Unwrapper::new(&mut key)).unwrap_err();
        assert!(matches!(err, OpenError::NoTokenPresent { .. }), "{err:?}");
    }

    #[test]
    fn an_absent_key_lets_the_next_recipient_open() {
        let mut first = SoftwareAuthenticator::new();
        let mut second = SoftwareAuthenticator::new();
        let env = sealed_to(&[
            enroll(&mut first, RP, None).unwrap(),
            enroll(&mut second, RP, None).unwrap(),
        ]);
        first.set_plugged_in(false);
        let mut tokens: Vec<Box<dyn Unwrapper + '_>> = vec![
            Box::new(Fido2Unwrapper::new(&mut first)),
            Box::new(Fido2Unwrapper::new(&mut second)),
        ];
        assert_eq!(open(&env, CONTEXT, &mut tokens).unwrap().expose(), SECRET);
        drop(tokens);

        second.set_plugged_in(false);
        let err = open(&env, CONTEXT, &mut Fido2Unwrapper::new(&mut second)).unwrap_err();
        match err {
            OpenError::NoTokenPresent { wanted } => assert_eq!(wanted.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refused_touch_is_a_clear_error() {
        let mut key = SoftwareAuthenticator::new();
        key.refuse_touch(true);
        let err = enroll(&mut key, RP, None).unwrap_err();
        assert_eq!(err, Fido2Error::TouchTimeout);
        assert!(err.to_string().contains("not touched in time"), "{err}");
        assert_eq!(key.touches(), 0);

        key.refuse_touch(false);
        let env = sealed_to(&[enroll(&mut key, RP, None).unwrap()]);
        key.refuse_touch(true);
        let err = open(&env, CONTEXT, &mut Fido2Unwrapper::new(&mut key)).unwrap_err();
        match &err {
            OpenError::Token { failure, .. } => {
                let message = failure.to_string();
                assert!(
                    message.contains("touch the key when it blinks"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_key_with_a_pin_asks_for_it_only_to_make_the_credential() {
        let mut key = SoftwareAuthenticator::new().with_pin(pin("123456"));
        assert_eq!(
            enroll(&mut key, RP, None).unwrap_err(),
            Fido2Error::PinRequired
        );
        assert_eq!(key.touches(), 0, "the PIN is checked before the touch");
        let err = enroll(&mut key, RP, Some(&pin("000000"))).unwrap_err();
        assert_eq!(
            err,
            Fido2Error::WrongPin {
                tries_left: Some(7)
            }
        );
        assert!(err.to_string().contains("7 tries left"), "{err}");

        let recipient = enroll(&mut key, RP, Some(&pin("123456"))).unwrap();
        let env = sealed_to(&[recipient]);
        // Opening needs no PIN; a PIN at hand is not sent, so the secret is
        // the one sealed to (CredRandomWithoutUV both times).
        let opened = open(&env, CONTEXT, &mut Fido2Unwrapper::new(&mut key)).unwrap();
        assert_eq!(opened.expose(), SECRET);
        let mut with_pin = Fido2Unwrapper::new(&mut key).with_pin(pin("123456"));
        assert_eq!(open(&env, CONTEXT, &mut with_pin).unwrap().expose(), SECRET);
    }

    #[test]
    fn a_key_requiring_its_pin_gets_it_from_the_unwrapper() {
        let mut key = SoftwareAuthenticator::new().require_pin(pin("2468"));
        let env = sealed_to(&[enroll(&mut key, RP, Some(&pin("2468"))).unwrap()]);

        let err = open(&env, CONTEXT, &mut Fido2Unwrapper::new(&mut key)).unwrap_err();
        match &err {
            OpenError::Token { failure, .. } => assert!(failure.to_string().contains("PIN")),
            other => panic!("{other:?}"),
        }

        let asked = Rc::new(RefCell::new(Vec::new()));
        let log = asked.clone();
        let mut unwrapper = Fido2Unwrapper::new(&mut key).with_pin_prompt(Box::new(move |who| {
            log.borrow_mut().push(who.to_string());
            Some(pin("2468"))
        }));
        assert_eq!(
            open(&env, CONTEXT, &mut unwrapper).unwrap().expose(),
            SECRET
        );
        assert_eq!(*asked.borrow(), ["software FIDO2 authenticator"]);
        // Kept once it worked: a second item does not ask again.
        assert_eq!(
            open(&env, CONTEXT, &mut unwrapper).unwrap().expose(),
            SECRET
        );
        assert_eq!(asked.borrow().len(), 1);

        let mut wrong = Fido2Unwrapper::new(&mut key).with_pin(pin("1111"));
        let err = open(&env, CONTEXT, &mut wrong).unwrap_err();
        match &err {
            OpenError::Token { failure, .. } => {
                assert!(failure.to_string().contains("wrong PIN"), "{failure}")
            }
            other => panic!("{other:?}"),
        }
    }
}
