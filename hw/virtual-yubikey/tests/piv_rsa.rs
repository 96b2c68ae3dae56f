//! RSA-1024 and RSA-2048 PIV keys, as a YubiKey 5 on firmware 5.4.3 has
//! them: generated (ykman's default algorithm is RSA-2048), imported, used
//! for the raw private-key operation that is both signing and decryption
//! (the padding is the client's), described by GET METADATA and attested.
//! Every result is checked in software with the `rsa` crate. Runs in the
//! rig: `hw/rig -- cargo test -p virtual-yubikey --test piv_rsa`, and on a
//! spare real key (see hw/README.md): `VAULT_RIG_DESTRUCTIVE=1 hw/rig
//! --real-key SERIAL -- cargo test -p virtual-yubikey --test piv_rsa --
//! --test-threads=1`.

mod common;

use common::{run, skipped_on_real_key, TestKey};
use der::{DecodePem, Encode};
use rsa::pkcs8::{DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Encrypt, Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use std::path::Path;
use x509_cert::Certificate;
use yubikey::piv::{self, AlgorithmId, SlotId};
use yubikey::{MgmKey, PinPolicy, Serial, TouchPolicy, YubiKey};

const DEFAULT_MGMT: &str = "010203040506070801020304050607080102030405060708";
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";

fn ok(program: &str, args: &[&str]) -> String {
    let (success, out, err) = run(program, args);
    assert!(success, "{program} {args:?} failed:\n{out}\n{err}");
    out + &err
}

/// Lines with their runs of whitespace squeezed to one space.
fn squeezed(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn assert_lines(out: &str, expected: &[&str]) {
    let lines = squeezed(out);
    for e in expected {
        assert!(lines.iter().any(|l| l == e), "no {e:?} in:\n{out}");
    }
}

fn open(key: &TestKey) -> YubiKey {
    YubiKey::open_by_serial(Serial::from(key.serial))
        .unwrap_or_else(|e| panic!("open key {}: {e}", key.serial))
}

fn leave(yk: YubiKey) {
    if let Err((_, e)) = yk.disconnect(pcsc::Disposition::LeaveCard) {
        panic!("disconnect: {e}");
    }
}

fn read_public_pem(path: &Path) -> RsaPublicKey {
    let pem = std::fs::read_to_string(path).unwrap();
    RsaPublicKey::from_public_key_pem(&pem)
        .unwrap_or_else(|e| panic!("{} is not an RSA public key ({e}):\n{pem}", path.display()))
}

fn spki_rsa(cert: &Certificate) -> RsaPublicKey {
    let der = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap();
    RsaPublicKey::from_public_key_der(&der).expect("an RSA subject key")
}

/// The certificate's own signature, sha256WithRSAEncryption, under `key`.
fn check_rsa_signed(cert: &Certificate, key: &RsaPublicKey) {
    assert_eq!(
        cert.signature_algorithm.oid.to_string(),
        SHA256_WITH_RSA,
        "signature algorithm"
    );
    let digest = Sha256::digest(cert.tbs_certificate.to_der().unwrap());
    key.verify(
        Pkcs1v15Sign::new::<Sha256>(),
        &digest,
        cert.signature.raw_bytes(),
    )
    .expect("the certificate's signature verifies under the slot's public key");
}

/// The attestation leaf is signed by F9's P-256 key, and F9's certificate
/// by the rig's test root.
fn check_chain_to_test_root(leaf: &Certificate, f9: &Certificate) {
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
    for (cert, issuer) in [(leaf, f9), (f9, &root)] {
        use signature::Verifier;
        assert_eq!(cert.tbs_certificate.issuer, issuer.tbs_certificate.subject);
        let spk = issuer
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(spk).expect("P-256 issuer key");
        let sig = p256::ecdsa::DerSignature::try_from(cert.signature.raw_bytes()).unwrap();
        vk.verify(&cert.tbs_certificate.to_der().unwrap(), &sig)
            .expect("signature by issuer");
    }
}

/// `ykman piv keys generate` with no algorithm makes an RSA-2048 key, and
/// with `-a RSA1024` a 1024-bit one; ykman then has the card sign a
/// self-signed certificate with each, and attests each.
#[test]
fn ykman_generates_rsa2048_by_default_and_rsa1024_signs_and_attests() {
    let key = TestKey::start();
    let r = key.reader.as_str();
    for (slot, alg, bits, pin_policy) in [
        ("9a", None, 2048, "ONCE"),
        ("9c", Some("RSA1024"), 1024, "ALWAYS"),
    ] {
        let pub_path = key.dir.join(format!("{slot}.pub.pem"));
        let pub_file = pub_path.to_str().unwrap();
        let mut args = vec!["--reader", r, "piv", "keys", "generate", "-m", DEFAULT_MGMT];
        if let Some(alg) = alg {
            args.extend(["-a", alg]);
        }
        args.extend([slot, pub_file]);
        ok("ykman", &args);
        let public = read_public_pem(&pub_path);
        assert_eq!(public.n().bits(), bits);
        assert_eq!(public.e(), &BigUint::from(65_537u32));

        // GET METADATA: ykman reads the algorithm and the public key there.
        let info = ok("ykman", &["--reader", r, "piv", "keys", "info", slot]);
        let alg_line = format!("Algorithm: RSA{bits}");
        let pin_line = format!("PIN required for use: {pin_policy}");
        assert_lines(
            &info,
            &[alg_line.as_str(), "Origin: GENERATED", pin_line.as_str()],
        );
        let exported = key.dir.join(format!("{slot}.exported.pem"));
        ok(
            "ykman",
            &[
                "--reader",
                r,
                "piv",
                "keys",
                "export",
                slot,
                exported.to_str().unwrap(),
            ],
        );
        assert_eq!(read_public_pem(&exported), public, "metadata's public key");

        // The card signs the certificate (PKCS#1 v1.5 padded by ykman).
        let subject = format!("CN=rsa {slot}");
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
                &subject,
                slot,
                pub_file,
            ],
        );
        let crt_path = key.dir.join(format!("{slot}.crt.pem"));
        ok(
            "ykman",
            &[
                "--reader",
                r,
                "piv",
                "certificates",
                "export",
                slot,
                crt_path.to_str().unwrap(),
            ],
        );
        let cert = Certificate::from_pem(std::fs::read(&crt_path).unwrap()).unwrap();
        assert_eq!(spki_rsa(&cert), public);
        check_rsa_signed(&cert, &public);

        // yubico-piv-tool's own round trips on the same key, with the
        // certificate ykman wrote (the PIN first: 9c is PIN Always).
        let crt = key.dir.join(format!("{slot}.crt"));
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
                crt.to_str().unwrap(),
            ],
        );
        for (action, expected) in [
            ("test-signature", "Successful RSA verification."),
            ("test-decipher", "Successfully performed RSA decryption!"),
        ] {
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
                    action,
                    "-s",
                    slot,
                    "-i",
                    crt.to_str().unwrap(),
                ],
            );
            assert!(out.contains(expected), "{action}: {out}");
        }

        // The attestation certificate carries the same RSA key.
        let att_path = key.dir.join(format!("att{slot}.pem"));
        ok(
            "ykman",
            &[
                "--reader",
                r,
                "piv",
                "keys",
                "attest",
                slot,
                att_path.to_str().unwrap(),
            ],
        );
        let leaf = Certificate::from_pem(std::fs::read(&att_path).unwrap()).unwrap();
        assert_eq!(spki_rsa(&leaf), public, "attested key");
        assert_eq!(
            leaf.tbs_certificate.subject.to_string(),
            format!("CN=YubiKey PIV Attestation {slot}")
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
        check_chain_to_test_root(&leaf, &f9);
    }
}

/// A software RSA key imported with `ykman piv keys import`: the card's
/// raw operation on any block is exactly `block^d mod n`, so a PKCS#1 v1.5
/// signature it makes verifies and a ciphertext it opens unpads.
#[test]
fn ykman_imports_rsa_keys_and_the_card_computes_with_them() {
    let key = TestKey::start();
    let r = key.reader.as_str();
    for (slot, slot_id, alg, bits) in [
        ("9d", SlotId::KeyManagement, AlgorithmId::Rsa2048, 2048),
        ("9e", SlotId::CardAuthentication, AlgorithmId::Rsa1024, 1024),
    ] {
        let private = RsaPrivateKey::new(&mut rand::rngs::OsRng, bits).unwrap();
        let public = private.to_public_key();
        let key_path = key.dir.join(format!("{slot}.key.pem"));
        std::fs::write(
            &key_path,
            private.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        ok(
            "ykman",
            &[
                "--reader",
                r,
                "piv",
                "keys",
                "import",
                "-m",
                DEFAULT_MGMT,
                "--pin-policy",
                "ONCE",
                slot,
                key_path.to_str().unwrap(),
            ],
        );
        let info = ok("ykman", &["--reader", r, "piv", "keys", "info", slot]);
        let alg_line = format!("Algorithm: RSA{bits}");
        assert_lines(
            &info,
            &[
                alg_line.as_str(),
                "Origin: IMPORTED",
                "PIN required for use: ONCE",
            ],
        );
        let exported = key.dir.join(format!("{slot}.exported.pem"));
        ok(
            "ykman",
            &[
                "--reader",
                r,
                "piv",
                "keys",
                "export",
                slot,
                exported.to_str().unwrap(),
            ],
        );
        assert_eq!(read_public_pem(&exported), public);

        let mut yk = open(&key);
        let len = bits / 8;
        let digest = Sha256::digest(b"signed by an imported key");
        let block = pkcs1_sign_block(&digest, len);
        // PIN policy Once: nothing before the PIN.
        assert!(piv::sign_data(&mut yk, &block, alg, slot_id).is_err());
        yk.verify_pin(b"123456").unwrap();
        let sig = piv::sign_data(&mut yk, &block, alg, slot_id).expect("sign");
        assert_eq!(sig.len(), len, "a full-length block");
        public
            .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
            .expect("the card's signature verifies");
        // Exactly the textbook operation with the imported private key.
        let expected = rsa_raw_private(&private, &block);
        assert_eq!(sig.to_vec(), expected);

        let secret = b"opened by an imported key";
        let ciphertext = public
            .encrypt(&mut rand::rngs::OsRng, Pkcs1v15Encrypt, secret)
            .unwrap();
        let padded = piv::decrypt_data(&mut yk, &ciphertext, alg, slot_id).expect("decrypt");
        assert_eq!(pkcs1_unpad_encryption(&padded), secret.as_slice());
        leave(yk);
    }
}

/// The path vault's own crate takes: generate through the yubikey crate,
/// then sign and decrypt, checked against the public key GENERATE returned;
/// a block not smaller than the modulus is refused.
#[test]
fn yubikey_crate_generates_rsa_and_signs_and_decrypts() {
    let key = TestKey::start();
    let mut yk = open(&key);
    yk.authenticate(MgmKey::default()).unwrap();
    for (slot, alg, bits) in [
        (SlotId::Authentication, AlgorithmId::Rsa2048, 2048),
        (SlotId::Signature, AlgorithmId::Rsa1024, 1024),
    ] {
        let spki = piv::generate(&mut yk, slot, alg, PinPolicy::Once, TouchPolicy::Never)
            .expect("generate");
        let public = RsaPublicKey::from_public_key_der(&spki.to_der().unwrap()).unwrap();
        assert_eq!(public.n().bits(), bits);
        let meta = piv::metadata(&mut yk, slot).expect("metadata");
        let meta_spki = meta.public.expect("metadata has the public key");
        assert_eq!(
            meta_spki.to_der().unwrap(),
            public.to_public_key_der().unwrap().as_bytes(),
            "metadata's public key is GENERATE's"
        );
    }
    yk.verify_pin(b"123456").unwrap();
    for (slot, alg, bits) in [
        (SlotId::Authentication, AlgorithmId::Rsa2048, 2048usize),
        (SlotId::Signature, AlgorithmId::Rsa1024, 1024),
    ] {
        let meta = piv::metadata(&mut yk, slot).unwrap();
        let public =
            RsaPublicKey::from_public_key_der(&meta.public.unwrap().to_der().unwrap()).unwrap();
        let len = bits / 8;
        let digest = Sha256::digest(b"signed on the card");
        let sig =
            piv::sign_data(&mut yk, &pkcs1_sign_block(&digest, len), alg, slot).expect("sign");
        public
            .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
            .expect("signature verifies");

        let secret = [0x5Au8; 32];
        let ct = public
            .encrypt(&mut rand::rngs::OsRng, Pkcs1v15Encrypt, &secret)
            .unwrap();
        let padded = piv::decrypt_data(&mut yk, &ct, alg, slot).expect("decrypt");
        assert_eq!(pkcs1_unpad_encryption(&padded), secret.as_slice());

        // n itself is not a valid input; neither is a short block.
        let n = public.n().to_bytes_be();
        assert!(piv::sign_data(&mut yk, &n, alg, slot).is_err());
    }
    leave(yk);
}

/// EMSA-PKCS1-v1_5 for SHA-256 (RFC 8017 9.2): 00 01 FF.. 00 DigestInfo.
fn pkcs1_sign_block(digest: &[u8], len: usize) -> Vec<u8> {
    const PREFIX: [u8; 19] = [
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    let t_len = PREFIX.len() + digest.len();
    let mut block = vec![0x00, 0x01];
    block.resize(len - t_len - 1, 0xFF);
    block.push(0x00);
    block.extend_from_slice(&PREFIX);
    block.extend_from_slice(digest);
    assert_eq!(block.len(), len);
    block
}

/// Strips RSAES-PKCS1-v1_5 padding (00 02 PS 00 M) from a decrypted block.
fn pkcs1_unpad_encryption(block: &[u8]) -> &[u8] {
    assert_eq!(&block[..2], &[0x00, 0x02], "PKCS#1 v1.5 encryption block");
    let zero = block[2..].iter().position(|&b| b == 0).expect("separator") + 2;
    assert!(zero >= 10, "at least 8 bytes of padding");
    &block[zero + 1..]
}

/// `block^d mod n`, left-padded to the modulus length.
fn rsa_raw_private(key: &RsaPrivateKey, block: &[u8]) -> Vec<u8> {
    use rsa::traits::PrivateKeyParts;
    let m = BigUint::from_bytes_be(block).modpow(key.d(), key.n());
    let bytes = m.to_bytes_be();
    let mut out = vec![0u8; key.size() - bytes.len()];
    out.extend_from_slice(&bytes);
    out
}
