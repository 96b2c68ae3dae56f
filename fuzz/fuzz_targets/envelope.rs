//! The token envelope: any bytes decode or fail with an error; what
//! decodes re-encodes to exactly the same bytes (the encoding is unique)
//! and decodes again to the same envelope; opening it with software tokens
//! (those the seed envelopes are sealed to, and one that answers every
//! entry) opens or fails with an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p256::PublicKey;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::sync::{Mutex, OnceLock};
use vault_secrets::envelope::{self, CardError, Envelope, SoftwareFido2, SoftwarePiv, Unwrapper};
use zeroize::Zeroizing;

/// The context the seed envelopes are sealed with.
const CONTEXT: &str = "key/fuzz";

/// The seed files' tokens: `SoftwarePiv::generate(12345678, 0x82, seed 1)`
/// and `SoftwareFido2::generate("vault.fuzz", seed 2)`.
struct SeedTokens(SoftwarePiv, SoftwareFido2);

impl Unwrapper for SeedTokens {
    fn piv_ecdh(
        &mut self,
        serial: u32,
        slot: u8,
        public_key: &PublicKey,
        ephemeral: &PublicKey,
    ) -> Result<Option<Zeroizing<[u8; 32]>>, CardError> {
        self.0.piv_ecdh(serial, slot, public_key, ephemeral)
    }

    fn fido2_secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
    ) -> Result<Option<Zeroizing<[u8; 32]>>, CardError> {
        self.1.fido2_secret(rp_id, credential_id, salt)
    }
}

fn tokens() -> &'static Mutex<SeedTokens> {
    static TOKENS: OnceLock<Mutex<SeedTokens>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        Mutex::new(SeedTokens(
            SoftwarePiv::generate(12345678, 0x82, &mut ChaCha20Rng::seed_from_u64(1)),
            SoftwareFido2::generate("vault.fuzz", &mut ChaCha20Rng::seed_from_u64(2)),
        ))
    })
}

/// A token present for every entry: the AEAD decides.
struct Everything;

impl Unwrapper for Everything {
    fn piv_ecdh(
        &mut self,
        _serial: u32,
        _slot: u8,
        _public_key: &PublicKey,
        _ephemeral: &PublicKey,
    ) -> Result<Option<Zeroizing<[u8; 32]>>, CardError> {
        Ok(Some(Zeroizing::new([7; 32])))
    }

    fn fido2_secret(
        &mut self,
        _rp_id: &str,
        _credential_id: &[u8],
        _salt: &[u8; 32],
    ) -> Result<Option<Zeroizing<[u8; 32]>>, CardError> {
        Ok(Some(Zeroizing::new([9; 32])))
    }
}

fuzz_target!(|data: &[u8]| {
    let env = match Envelope::decode(data) {
        Ok(env) => env,
        Err(e) => {
            let _ = (e.to_string(), e.hint());
            return;
        }
    };
    let encoded = env.encode();
    assert_eq!(encoded, data, "decode → encode changed the bytes");
    assert_eq!(Envelope::decode(&encoded).as_ref().ok(), Some(&env));
    let recipients = env.recipients();
    assert!((1..=envelope::MAX_RECIPIENTS).contains(&recipients.len()));
    for r in &recipients {
        let _ = r.to_string();
    }

    let mut software = tokens().lock().unwrap_or_else(|e| e.into_inner());
    for result in [
        envelope::open(&env, CONTEXT, &mut *software),
        envelope::open(&env, CONTEXT, &mut Everything),
        envelope::open(&env, "key/other", &mut *software),
    ] {
        match result {
            Ok(secret) => {
                let len = secret.expose().len();
                assert!(len <= envelope::MAX_SECRET_LEN);
            }
            Err(e) => {
                let _ = (e.to_string(), e.hint());
            }
        }
    }
});
