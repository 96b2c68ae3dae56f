//! The PIV applet through the stack vault uses: the `yubikey` crate 0.8 over
//! pcsc, pcscd and vpcd. Runs in the rig:
//! `hw/rig -- cargo test -p virtual-yubikey --test piv_yubikey_crate`, and
//! on a spare real key (see hw/README.md): `VAULT_RIG_DESTRUCTIVE=1 hw/rig
//! --real-key SERIAL -- cargo test -p virtual-yubikey --test piv_yubikey_crate
//! -- --test-threads=1`.

mod common;

use common::{skipped_on_real_key, TestKey};
use der::{Decode, Encode};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use signature::Verifier;
use std::path::PathBuf;
use x509_cert::Certificate;
use yubikey::piv::{self, AlgorithmId, ManagementSlotId, Origin, RetiredSlotId, SlotId};
use yubikey::{Error, MgmKey, PinPolicy, Serial, TouchPolicy, YubiKey};

const PIN: &[u8] = b"123456";
const PUK: &[u8] = b"12345678";

fn open(key: &TestKey) -> YubiKey {
    YubiKey::open_by_serial(Serial::from(key.serial))
        .unwrap_or_else(|e| panic!("open key {}: {e}", key.serial))
}

/// Disconnects without resetting the card, as vault must, so PIN status
/// survives for the next connection.
fn leave(yk: YubiKey) {
    if let Err((_, e)) = yk.disconnect(pcsc::Disposition::LeaveCard) {
        panic!("disconnect: {e}");
    }
}

fn generate_p256(
    yk: &mut YubiKey,
    slot: SlotId,
    pin: PinPolicy,
    touch: TouchPolicy,
) -> p256::PublicKey {
    yk.authenticate(MgmKey::default())
        .expect("default management key");
    let spki = piv::generate(yk, slot, AlgorithmId::EccP256, pin, touch).expect("generate");
    p256::PublicKey::from_sec1_bytes(spki.subject_public_key.raw_bytes()).expect("P-256 point")
}

/// What the card computes for `ecdh` must equal software ECDH.
fn check_ecdh(yk: &mut YubiKey, slot: SlotId, card_pub: &p256::PublicKey) -> Result<(), Error> {
    let eph = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let point = eph.public_key().to_encoded_point(false);
    let shared = piv::decrypt_data(yk, point.as_bytes(), AlgorithmId::EccP256, slot)?;
    let expected = p256::ecdh::diffie_hellman(eph.to_nonzero_scalar(), card_pub.as_affine());
    assert_eq!(shared.as_slice(), expected.raw_secret_bytes().as_slice());
    Ok(())
}

#[test]
fn opens_by_serial_with_version_5_4_3() {
    let key = TestKey::start();
    let yk = open(&key);
    assert_eq!(u32::from(yk.serial()), key.serial);
    let v = yk.version();
    assert_eq!(format!("{}.{}.{}", v.major, v.minor, v.patch), key.firmware);
    assert_eq!(yk.name(), key.reader);
    leave(yk);
}

#[test]
fn wrong_pins_count_down_block_and_the_puk_unblocks() {
    let key = TestKey::start();
    let mut yk = open(&key);
    assert_eq!(yk.get_pin_retries().unwrap(), 3);
    assert!(matches!(
        yk.verify_pin(b"000000"),
        Err(Error::WrongPin { tries: 2 })
    ));
    assert!(matches!(
        yk.verify_pin(b"000000"),
        Err(Error::WrongPin { tries: 1 })
    ));
    assert!(matches!(
        yk.verify_pin(b"000000"),
        Err(Error::WrongPin { tries: 0 })
    ));
    // Blocked: even the right PIN is refused (6983 reads as 0 tries).
    assert!(matches!(
        yk.verify_pin(PIN),
        Err(Error::WrongPin { tries: 0 })
    ));
    assert_eq!(yk.get_pin_retries().unwrap(), 0);

    let pin_md = piv::metadata(&mut yk, SlotId::Management(ManagementSlotId::Pin)).unwrap();
    let retries = pin_md.retries.unwrap();
    assert_eq!((retries.retry_count, retries.remaining_count), (3, 0));

    assert!(matches!(
        yk.unblock_pin(b"87654321", b"654321"),
        Err(Error::WrongPin { tries: 2 })
    ));
    yk.unblock_pin(PUK, b"654321")
        .expect("unblock with the PUK");
    yk.verify_pin(b"654321").expect("new PIN");
    let puk_md = piv::metadata(&mut yk, SlotId::Management(ManagementSlotId::Puk)).unwrap();
    assert_eq!(puk_md.retries.unwrap().remaining_count, 3);
    assert_eq!(puk_md.default, Some(true));
    leave(yk);
    // The counters live in the state file: they survive a power cycle.
    let mut key = key;
    key.restart();
    let mut yk = open(&key);
    assert!(matches!(
        yk.verify_pin(PIN),
        Err(Error::WrongPin { tries: 2 })
    ));
    leave(yk);
}

#[test]
fn generated_touch_always_key_does_ecdh_only_with_pin_and_touch() {
    let key = TestKey::start_with_touch_timeout(1_000);
    let mut yk = open(&key);
    let slot = SlotId::Retired(RetiredSlotId::R1);
    let card_pub = generate_p256(&mut yk, slot, PinPolicy::Once, TouchPolicy::Always);

    let md = piv::metadata(&mut yk, slot).unwrap();
    assert_eq!(md.policy, Some((PinPolicy::Once, TouchPolicy::Always)));
    assert_eq!(md.origin, Some(Origin::Generated));
    let md_pub = md.public.expect("public key in metadata");
    assert_eq!(
        md_pub.subject_public_key.raw_bytes(),
        card_pub.to_encoded_point(false).as_bytes()
    );

    assert!(matches!(
        check_ecdh(&mut yk, slot, &card_pub),
        Err(Error::AuthenticationError)
    ));
    yk.verify_pin(PIN).unwrap();
    // On a real key nobody can be relied on not to touch it.
    if !skipped_on_real_key("ECDH refused when nobody touches (touch never)") {
        key.ctl("touch never");
        assert!(matches!(
            check_ecdh(&mut yk, slot, &card_pub),
            Err(Error::AuthenticationError)
        ));
        key.ctl("touch now");
    }
    key.touch_prompt();
    check_ecdh(&mut yk, slot, &card_pub).expect("ECDH after PIN and touch");
    key.touch_prompt();
    check_ecdh(&mut yk, slot, &card_pub).expect("PIN once: still verified");

    let Some(log) = key.apdu_log_if_available("one touch per ECDH, a timeout without one") else {
        leave(yk);
        return;
    };
    let touches: Vec<_> = log
        .into_iter()
        .filter(|e| e["ins"] == "87" && e["p2"] == "82")
        .map(|e| {
            (
                e["sw"].as_str().unwrap_or("").to_string(),
                e["touch"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        touches,
        [
            ("6982".to_string(), None),
            ("6982".to_string(), Some("timeout".to_string())),
            ("9000".to_string(), Some("given".to_string())),
            ("9000".to_string(), Some("given".to_string())),
        ]
    );
    leave(yk);
}

/// A YubiKey 5 keeps PIN status across connections (each re-selects PIV),
/// but pcscd powers an idle card off about a second after its last handle
/// closes, which clears it, on real keys too (age-plugin-yubikey#198). A
/// plain connection held open keeps the card powered across the reopen.
#[test]
fn pin_status_survives_reopen_but_not_reset() {
    let key = TestKey::start();
    let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcsc context");
    let reader = std::ffi::CString::new(key.reader.clone()).unwrap();
    let hold = ctx
        .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::T1)
        .expect("hold the card powered");

    let mut yk = open(&key);
    let slot = SlotId::Retired(RetiredSlotId::R7);
    let card_pub = generate_p256(&mut yk, slot, PinPolicy::Once, TouchPolicy::Never);
    yk.verify_pin(PIN).unwrap();
    leave(yk);

    let mut yk = open(&key);
    check_ecdh(&mut yk, slot, &card_pub).expect("PIN still verified after re-select");
    // Dropping resets the card, which forgets it.
    drop(yk);
    let mut yk = open(&key);
    assert!(matches!(
        check_ecdh(&mut yk, slot, &card_pub),
        Err(Error::AuthenticationError)
    ));
    leave(yk);
    let _ = hold.disconnect(pcsc::Disposition::LeaveCard);
}

fn root_cert() -> Certificate {
    let dir = PathBuf::from(std::env::var("VAULT_RIG_ROOT_DIR").expect("VAULT_RIG_ROOT_DIR"));
    let pem = std::fs::read_to_string(dir.join(virtual_yubikey::attest::ROOT_CERT_FILE))
        .expect("root PEM");
    use der::DecodePem;
    Certificate::from_pem(pem.as_bytes()).expect("root certificate")
}

/// The signature checks need the virtual key: a real key's F9 certificate
/// carries an RSA key and chains to Yubico's CA, not to the rig's test root.
fn chain_checkable() -> bool {
    !skipped_on_real_key(
        "verifying the attestation signatures up to the rig's test root \
         (a real key's chain is RSA, up to Yubico's CA)",
    )
}

fn check_signed_by(cert: &Certificate, issuer: &Certificate) {
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

#[test]
fn attestation_verifies_up_to_the_test_root() {
    let key = TestKey::start();
    let mut yk = open(&key);
    let slot = SlotId::Retired(RetiredSlotId::R3);
    let card_pub = generate_p256(&mut yk, slot, PinPolicy::Once, TouchPolicy::Cached);

    let leaf = Certificate::from_der(&piv::attest(&mut yk, slot).expect("attest")).unwrap();
    let f9_object = yk.fetch_object(0x5fff01).expect("F9 certificate object");
    let items = virtual_yubikey::tlv::parse(&f9_object).unwrap();
    let f9 = Certificate::from_der(virtual_yubikey::tlv::find(&items, 0x70).unwrap()).unwrap();
    assert_eq!(leaf.tbs_certificate.issuer, f9.tbs_certificate.subject);
    if chain_checkable() {
        let root = root_cert();
        check_signed_by(&leaf, &f9);
        check_signed_by(&f9, &root);
        check_signed_by(&root, &root);
    }

    assert_eq!(
        leaf.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
        card_pub.to_encoded_point(false).as_bytes()
    );
    assert_eq!(
        leaf.tbs_certificate.subject.to_string(),
        "CN=YubiKey PIV Attestation 84"
    );
    let ext = |oid: &str| {
        let oid = der::oid::ObjectIdentifier::new_unwrap(oid);
        leaf.tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == oid)
            .map(|e| e.extn_value.as_bytes().to_vec())
            .unwrap_or_else(|| panic!("no extension {oid}"))
    };
    let firmware: Vec<u8> = key
        .firmware
        .split('.')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(ext("1.3.6.1.4.1.41482.3.3"), firmware);
    assert_eq!(ext("1.3.6.1.4.1.41482.3.7"), key.serial.to_der().unwrap());
    assert_eq!(ext("1.3.6.1.4.1.41482.3.8"), [2, 3]);

    // The attestation key's own metadata: imported at the factory.
    let md = piv::metadata(&mut yk, SlotId::Attestation).unwrap();
    assert_eq!(md.origin, Some(Origin::Imported));
    leave(yk);
}
