//! The per-device record of MFA codes sent (JSON in the session cache):
//! any record, at any time, decodes or fails, and what vault does with it
//! never panics and never makes it wait for more than about two TOTP
//! steps.
//!
//! Input: eight bytes of "now" (unix seconds, big-endian), then the
//! record's JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_aws::mfa::{self, STEP};
use vault_profile::session::MfaUse;

fuzz_target!(|data: &[u8]| {
    let Some((now, json)) = data.split_first_chunk::<8>() else {
        return;
    };
    let now = u64::from_be_bytes(*now);
    let Ok(mut rec) = serde_json::from_slice::<MfaUse>(json) else {
        return;
    };
    let hash = rec.used.first().map(|(h, _)| h.clone()).unwrap_or_default();
    if let Some(ago) = mfa::reused_ago(&rec, &hash, now) {
        assert!(ago <= now);
    }
    if let Some(wait) = mfa::wait_for_next_step(&rec, now) {
        assert!(wait <= 2 * STEP + 1, "would wait {wait} s");
    }
    mfa::record_use(&mut rec, hash.clone(), Some(now / STEP), now);
    mfa::record_use(&mut rec, hash.clone(), None, now);
    assert!(mfa::reused_ago(&rec, &hash, now).is_some());
    let bytes = serde_json::to_vec(&rec).expect("a record serializes");
    assert_eq!(serde_json::from_slice::<MfaUse>(&bytes).ok(), Some(rec));
});
