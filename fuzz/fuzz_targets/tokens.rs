//! `tokens.json`: any bytes decode or fail with an error; what decodes
//! serializes back to the same records; the PIV recipients made from it
//! are checked (bad public keys are errors) and can be sealed to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use vault_base::secret::SecretBytes;
use vault_secrets::enrolled::Tokens;
use vault_secrets::envelope;

fuzz_target!(|data: &[u8]| {
    let Ok(t) = serde_json::from_slice::<Tokens>(data) else {
        return;
    };
    let bytes = serde_json::to_vec_pretty(&t).expect("tokens serialize");
    assert_eq!(
        serde_json::from_slice::<Tokens>(&bytes).ok().as_ref(),
        Some(&t)
    );
    for rec in &t.tokens {
        let _ = t.get(rec.serial);
        for o in &rec.oath {
            assert!(t.oath_for(&o.mfa_serial).is_some());
        }
    }
    if let Ok(recipients) = vault::unlock::piv_recipients(&t) {
        let secret = SecretBytes::new(b"{}".to_vec());
        let mut rng = ChaCha20Rng::seed_from_u64(0);
        if let Ok(env) = envelope::seal_with_rng(&secret, &recipients, "key/fuzz", &mut rng) {
            assert_eq!(envelope::Envelope::decode(&env.encode()).ok(), Some(env));
        }
    }
});
