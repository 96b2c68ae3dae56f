//! The PIV applet through Yubico's own tools, `yubico-piv-tool` and `ykman`:
//! what they print about the key must be what they print about a real
//! YubiKey 5 on firmware 5.4.3. Runs in the rig:
//! `hw/rig -- cargo test -p virtual-yubikey --test piv_clients`, and on a
//! spare real key (see hw/README.md): `VAULT_RIG_DESTRUCTIVE=1 hw/rig
//! --real-key SERIAL -- cargo test -p virtual-yubikey --test piv_clients --
//! --test-threads=1`.

mod common;

use common::{run, skipped_on_real_key, TestKey};
use der::DecodePem;
use std::path::Path;
use x509_cert::Certificate;

const DEFAULT_MGMT: &str = "010203040506070801020304050607080102030405060708";

/// Runs a tool that must succeed; returns stdout then stderr, where
/// yubico-piv-tool reports its test results.
fn ok(program: &str, args: &[&str]) -> String {
    let (success, out, err) = run(program, args);
    assert!(success, "{program} {args:?} failed:\n{out}\n{err}");
    out + &err
}

fn lines(out: &str) -> Vec<&str> {
    out.lines().map(str::trim_end).collect()
}

#[test]
fn yubico_piv_tool_status() {
    let key = TestKey::start();
    let out = ok("yubico-piv-tool", &["-r", &key.reader, "-a", "status"]);
    let lines = lines(&out);
    for expected in [
        format!("Version:\t{}", key.firmware),
        format!("Serial Number:\t{}", key.serial),
        "CHUID:\tNo data available".to_string(),
        "CCC:\tNo data available".to_string(),
        "PIN tries left:\t3".to_string(),
    ] {
        assert!(
            lines.contains(&expected.as_str()),
            "no {expected:?} in:\n{out}"
        );
    }
}

#[test]
fn ykman_piv_info_on_a_fresh_key() {
    let key = TestKey::start();
    let out = ok("ykman", &["--reader", &key.reader, "piv", "info"]);
    let lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for expected in [
        format!("PIV version: {}", key.firmware).as_str(),
        "PIN tries remaining: 3/3",
        "PUK tries remaining: 3/3",
        "Management key algorithm: TDES",
        "WARNING: Using default PIN!",
        "WARNING: Using default PUK!",
        "WARNING: Using default Management key!",
        "CHUID: No data available",
        "CCC: No data available",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "no {expected:?} in:\n{out}"
        );
    }
    assert!(!out.contains("Slot"), "a fresh key has no keys:\n{out}");
}

/// ykman switches to an AES-256 management key, then generates with it,
/// and the attestation it fetches certifies the generated key.
#[test]
fn ykman_aes256_management_key_then_generate_and_attest() {
    let key = TestKey::start();
    let r = key.reader.as_str();
    let new_key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    ok(
        "ykman",
        &[
            "--reader",
            r,
            "piv",
            "access",
            "change-management-key",
            "-a",
            "AES256",
            "-m",
            DEFAULT_MGMT,
            "-n",
            new_key,
            "-f",
        ],
    );
    // The old key no longer works.
    let pub_path = key.dir.join("9a.pem");
    let pub_file = pub_path.to_str().unwrap();
    let (success, _, _) = run(
        "ykman",
        &[
            "--reader",
            r,
            "piv",
            "keys",
            "generate",
            "-m",
            DEFAULT_MGMT,
            "-a",
            "ECCP256",
            "9a",
            pub_file,
        ],
    );
    assert!(
        !success,
        "generate with the replaced management key must fail"
    );
    ok(
        "ykman",
        &[
            "--reader",
            r,
            "piv",
            "keys",
            "generate",
            "-m",
            new_key,
            "-a",
            "ECCP256",
            "--pin-policy",
            "ONCE",
            "--touch-policy",
            "CACHED",
            "9a",
            pub_file,
        ],
    );
    let info = ok("ykman", &["--reader", r, "piv", "info"]);
    let squeezed: Vec<String> = info
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert!(
        squeezed
            .iter()
            .any(|l| l == "Management key algorithm: AES256"),
        "{info}"
    );
    assert!(!info.contains("default Management key"), "{info}");
    assert!(
        squeezed.iter().any(|l| l == "Slot 9A (AUTHENTICATION):"),
        "{info}"
    );
    assert!(
        squeezed.iter().any(|l| l == "Private key type: ECCP256"),
        "{info}"
    );

    let keys_info = ok("ykman", &["--reader", r, "piv", "keys", "info", "9a"]);
    for expected in [
        "Key slot: 9A (AUTHENTICATION)",
        "Algorithm: ECCP256",
        "Origin: GENERATED",
        "PIN required for use: ONCE",
        "Touch required for use: CACHED",
    ] {
        assert!(
            keys_info
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == expected),
            "no {expected:?} in:\n{keys_info}"
        );
    }

    let att_path = key.dir.join("att9a.pem");
    ok(
        "ykman",
        &[
            "--reader",
            r,
            "piv",
            "keys",
            "attest",
            "9a",
            att_path.to_str().unwrap(),
        ],
    );
    let attested = Certificate::from_pem(std::fs::read(&att_path).unwrap()).unwrap();
    let generated = std::fs::read_to_string(&pub_path).unwrap();
    use p256::pkcs8::DecodePublicKey;
    let generated = p256::PublicKey::from_public_key_pem(&generated).unwrap();
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    assert_eq!(
        attested
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
        generated.to_encoded_point(false).as_bytes()
    );
    let f9_path = key.dir.join("f9.pem");
    ok(
        "ykman",
        &[
            "--reader",
            r,
            "piv",
            "certificates",
            "export",
            "f9",
            f9_path.to_str().unwrap(),
        ],
    );
    let f9 = Certificate::from_pem(std::fs::read(&f9_path).unwrap()).unwrap();
    assert_eq!(attested.tbs_certificate.issuer, f9.tbs_certificate.subject);
}

/// yubico-piv-tool generates and, with a certificate made by ykman (its own
/// `selfsign-certificate` fails before sending any APDU when built against
/// OpenSSL 3: Yubico/yubico-piv-tool#388), signs and does ECDH on both curves.
#[test]
fn yubico_piv_tool_signs_and_does_ecdh() {
    let key = TestKey::start();
    let r = key.reader.as_str();
    for (slot, alg) in [("9c", "ECCP256"), ("9d", "ECCP384")] {
        let pub_path = key.dir.join(format!("{slot}.pub"));
        let crt_path = key.dir.join(format!("{slot}.crt"));
        let pub_file = pub_path.to_str().unwrap();
        let crt_file = crt_path.to_str().unwrap();
        ok(
            "yubico-piv-tool",
            &[
                "-r",
                r,
                "-a",
                "generate",
                "-s",
                slot,
                "-A",
                alg,
                "--pin-policy=once",
                "-o",
                pub_file,
            ],
        );
        ok(
            "ykman",
            &[
                "--reader",
                r,
                "piv",
                "certificates",
                "generate",
                "-m",
                DEFAULT_MGMT,
                "-P",
                "123456",
                "-s",
                &format!("CN={slot}"),
                slot,
                pub_file,
            ],
        );
        ok(
            "yubico-piv-tool",
            &[
                "-r",
                r,
                "-a",
                "read-certificate",
                "-s",
                slot,
                "-o",
                crt_file,
            ],
        );
        let out = ok(
            "yubico-piv-tool",
            &[
                "-r",
                r,
                "-a",
                "verify-pin",
                "-P",
                "123456",
                "-a",
                "test-signature",
                "-s",
                slot,
                "-i",
                crt_file,
            ],
        );
        assert!(out.contains("Successful ECDSA verification."), "{out}");
        let out = ok(
            "yubico-piv-tool",
            &[
                "-r",
                r,
                "-a",
                "verify-pin",
                "-P",
                "123456",
                "-a",
                "test-decipher",
                "-s",
                slot,
                "-i",
                crt_file,
            ],
        );
        assert!(
            out.contains("Successfully performed ECDH exchange with card."),
            "{out}"
        );
    }
    // Without the PIN the card refuses to sign.
    let crt = key.dir.join("9c.crt");
    let (success, _, _) = run(
        "yubico-piv-tool",
        &[
            "-r",
            r,
            "-a",
            "test-signature",
            "-s",
            "9c",
            "-i",
            crt.to_str().unwrap(),
        ],
    );
    assert!(!success);

    let status = ok("yubico-piv-tool", &["-r", r, "-a", "status"]);
    assert!(
        status.contains("Slot 9c:") && status.contains("Slot 9d:"),
        "{status}"
    );
    assert_attest_chain(&key, "9c");
}

fn assert_attest_chain(key: &TestKey, slot: &str) {
    let r = key.reader.as_str();
    let att = key.dir.join(format!("att{slot}.pem"));
    ok(
        "yubico-piv-tool",
        &[
            "-r",
            r,
            "-a",
            "attest",
            "-s",
            slot,
            "-o",
            att.to_str().unwrap(),
        ],
    );
    let leaf = Certificate::from_pem(std::fs::read(&att).unwrap()).unwrap();
    let f9 = key.dir.join("f9.pem");
    ok(
        "yubico-piv-tool",
        &[
            "-r",
            r,
            "-a",
            "read-certificate",
            "-s",
            "f9",
            "-o",
            f9.to_str().unwrap(),
        ],
    );
    let f9 = Certificate::from_pem(std::fs::read(&f9).unwrap()).unwrap();
    assert_eq!(leaf.tbs_certificate.issuer, f9.tbs_certificate.subject);
    if skipped_on_real_key(
        "verifying the attestation signatures up to the rig's test root \
         (a real key's chain is RSA, up to Yubico's CA)",
    ) {
        return;
    }
    let root_dir = std::env::var("VAULT_RIG_ROOT_DIR").expect("VAULT_RIG_ROOT_DIR");
    let root = Certificate::from_pem(
        std::fs::read(Path::new(&root_dir).join(virtual_yubikey::attest::ROOT_CERT_FILE)).unwrap(),
    )
    .unwrap();
    check_signed_by(&leaf, &f9);
    check_signed_by(&f9, &root);
}

fn check_signed_by(cert: &Certificate, issuer: &Certificate) {
    use der::Encode;
    use signature::Verifier;
    assert_eq!(cert.tbs_certificate.issuer, issuer.tbs_certificate.subject);
    let spk = issuer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(spk).expect("P-256 issuer key");
    let sig =
        p256::ecdsa::DerSignature::try_from(cert.signature.raw_bytes()).expect("DER signature");
    vk.verify(&cert.tbs_certificate.to_der().unwrap(), &sig)
        .expect("signature by issuer");
}
