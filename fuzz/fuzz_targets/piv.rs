//! What vault parses of the PIV applet's answers: certificate objects, the
//! slot certificate (its key and the policy extension), and attestation
//! (the ATTEST certificate, the F9 object, the chain to a trusted root).
//!
//! Input: the whole input is tried as a certificate object and as a
//! certificate; for attestation it is split as two bytes of length, the
//! ATTEST answer, then the F9 object. The trusted roots are Yubico's and
//! the seed files' test root (`fuzz/fixtures/attestation-root.pem`), so a
//! seed can pass every check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vault_token::piv::{cert_from_object, check_attestation, parse_slot_certificate, TrustedRoots};

/// The serial and slot the seed files attest.
const SERIAL: u32 = 12345678;
const SLOT: u8 = 0x82;

fn roots() -> &'static TrustedRoots {
    static ROOTS: OnceLock<TrustedRoots> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/attestation-root.pem");
        TrustedRoots::from_var(Some(std::ffi::OsStr::new(path)))
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    })
}

fn slot_key(leaf_der: &[u8]) -> p256::PublicKey {
    // The attested key itself when there is one, so the later checks run.
    parse_slot_certificate(SERIAL, SLOT, leaf_der.to_vec())
        .map(|c| c.public_key)
        .unwrap_or_else(|_| {
            p256::PublicKey::from_sec1_bytes(&[
                0x04, 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63,
                0xa4, 0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39,
                0x45, 0xd8, 0x98, 0xc2, 0x96, 0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e,
                0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e,
                0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5,
            ])
            .expect("the P-256 generator is a point")
        })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(der)) = cert_from_object(data) {
        let _ = parse_slot_certificate(SERIAL, SLOT, der);
    }
    if let Ok(cert) = parse_slot_certificate(SERIAL, SLOT, data.to_vec()) {
        let _ = (cert.pin_policy, cert.touch_policy, cert.common_name);
    }

    let [a, b, rest @ ..] = data else { return };
    let len = usize::from(u16::from_be_bytes([*a, *b])).min(rest.len());
    let (leaf, f9_object) = rest.split_at(len);
    match check_attestation(SERIAL, SLOT, &slot_key(leaf), leaf, f9_object, roots()) {
        Ok(report) => {
            assert_eq!(report.serial, SERIAL);
            assert_eq!(report.slot, SLOT);
        }
        Err(e) => {
            let _ = (e.to_string(), e.hint());
        }
    }
});
