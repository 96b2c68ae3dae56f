//! The MFA seed as `hw enroll` takes it: an `otpauth://` URI or a base32
//! string. Anything is accepted or refused with an error, and an accepted
//! seed gives a code as `hw enroll` checks the card's against.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault::cmd::hw_enroll::{parse_totp_base32, parse_totp_uri};

fn code(seed: &[u8]) -> String {
    totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        seed.to_vec(),
        None,
        String::new(),
    )
    .generate(59)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((seed, _account)) = parse_totp_uri(text) {
        assert_eq!(code(seed.expose()).len(), 6);
    }
    if let Ok(seed) = parse_totp_base32(text, "--totp-secret") {
        assert!(seed.expose().len() >= 10);
        assert_eq!(code(seed.expose()).len(), 6);
    }
});
