//! vault's PIV session (`vault_token::piv`) against virtual YubiKey 5s,
//! through the real pcscd, vpcd and the `yubikey` crate:
//! `hw/rig -- cargo test -p vault --test token_piv`.
//!
//! Every test plugs in a factory-fresh key of its own (`support::vyk`), so
//! PIN changes, blocked PINs and pulled keys never collide. Opening a key
//! by serial asks every key present for its serial, so the one test that
//! counts APDUs runs alone (`EXCLUSIVE`).
//!
//! Outside the rig every test fails with instructions, never passes.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use der::{Decode, Encode, EncodePem};
use p256::ecdsa::signature::Verifier;
use std::cell::{Cell, RefCell};
use std::ffi::OsStr;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use support::vyk::{rig_env, TestKey};
use vault_base::secret::{Passphrase, SecretBytes};
use vault_secrets::envelope::{self, Recipient, Unwrapper};
use vault_token::apdu::TokenError;
use vault_token::piv::{
    ManagementKey, Origin, PinPolicy, PinStatus, PivError, PivToken, PivUnwrapper, SlotInfo,
    TouchPolicy, TrustedRoots,
};

const DEFAULT_PIN: &str = "123456";
const DEFAULT_PUK: &str = "12345678";

static EXCLUSIVE: RwLock<()> = RwLock::new(());

/// Held by every test but the APDU count, which takes it exclusively.
fn shared() -> RwLockReadGuard<'static, ()> {
    EXCLUSIVE.read().unwrap_or_else(PoisonError::into_inner)
}

fn alone() -> RwLockWriteGuard<'static, ()> {
    EXCLUSIVE.write().unwrap_or_else(PoisonError::into_inner)
}

fn pin(s: &str) -> Passphrase {
    Passphrase::new(s)
}

fn quiet(_: &str) {}
fn no_touch(_: vault_token::TouchEvent) {}

fn open(key: &TestKey) -> PivToken {
    PivToken::open(key.serial, Duration::from_secs(5), &quiet)
        .unwrap_or_else(|e| panic!("open key {}: {e}", key.serial))
}

/// A key with a P-256 key generated in its first free retired slot.
fn with_slot_key(
    key: &TestKey,
    pin_policy: PinPolicy,
    touch_policy: TouchPolicy,
) -> (PivToken, u8, p256::PublicKey) {
    let mut t = open(key);
    assert_eq!(t.authenticate_management().unwrap(), ManagementKey::Default);
    let slot = t.free_retired_slot().unwrap();
    let public_key = t.generate(slot, pin_policy, touch_policy).unwrap();
    (t, slot, public_key)
}

fn ephemeral(seed: u8) -> p256::SecretKey {
    p256::SecretKey::from_slice(&[seed; 32]).unwrap()
}

fn software_ecdh(eph: &p256::SecretKey, card: &p256::PublicKey) -> Vec<u8> {
    p256::ecdh::diffie_hellman(eph.to_nonzero_scalar(), card.as_affine())
        .raw_secret_bytes()
        .to_vec()
}

/// VERIFY commands that carried a PIN (not the empty status query).
fn pin_tries_sent(key: &TestKey) -> usize {
    key.apdus()
        .iter()
        .filter(|e| e["ins"] == "20" && e["lc"] == 8)
        .count()
}

/// The APDU log settles once the card has written its last exchange.
fn apdu_count_settled(key: &TestKey) -> usize {
    let mut n = key.apdus().len();
    loop {
        std::thread::sleep(Duration::from_millis(150));
        let m = key.apdus().len();
        if m == n {
            return n;
        }
        n = m;
    }
}

#[test]
fn opens_by_serial_with_two_keys_present() {
    let _g = shared();
    let a = TestKey::start();
    let b = TestKey::start();

    let tb = open(&b);
    assert_eq!(tb.serial(), b.serial);
    assert_eq!(tb.reader(), b.reader);
    assert_eq!(tb.version().to_string(), b.firmware);
    let ta = open(&a);
    assert_eq!((ta.serial(), ta.reader()), (a.serial, a.reader.as_str()));
    drop((ta, tb));

    let listed = PivToken::list().unwrap();
    for k in [&a, &b] {
        assert!(
            listed
                .iter()
                .any(|i| i.serial == Some(k.serial) && i.reader == k.reader),
            "{listed:?}"
        );
    }

    let notes = RefCell::new(Vec::new());
    let notify = |m: &str| notes.borrow_mut().push(m.to_string());
    let err = PivToken::open(99_999_999, Duration::from_millis(600), &notify).unwrap_err();
    match &err {
        PivError::Token(TokenError::NotFound { serial, seen, .. }) => {
            assert_eq!(*serial, 99_999_999);
            assert!(
                seen.contains(&a.serial) && seen.contains(&b.serial),
                "{seen:?}"
            );
        }
        e => panic!("expected NotFound, got {e:?}"),
    }
    assert!(err.hint().unwrap().starts_with("insert YubiKey 99999999"));
    assert_eq!(*notes.borrow(), ["Insert YubiKey 99999999…"]);
}

#[test]
fn waits_for_the_key_to_be_inserted_and_says_so() {
    let _g = shared();
    let key = TestKey::start();
    key.ctl("remove");
    key.wait_present(false);
    let notes = RefCell::new(Vec::new());
    let notify = |m: &str| notes.borrow_mut().push(m.to_string());
    let t = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(800));
            key.ctl("insert");
        });
        PivToken::open(key.serial, Duration::from_secs(20), &notify)
    })
    .unwrap();
    assert_eq!(t.serial(), key.serial);
    assert_eq!(*notes.borrow(), [format!("Insert YubiKey {}…", key.serial)]);
}

#[test]
fn pin_status_and_exactly_one_try_per_wrong_pin() {
    let _g = shared();
    let key = TestKey::start();
    let mut t = open(&key);
    assert_eq!(
        t.pin_status().unwrap(),
        PinStatus::NotVerified { tries_left: 3 }
    );

    let err = t.verify_pin(&pin("000000")).unwrap_err();
    assert!(
        matches!(err, PivError::WrongPin { tries_left: 2 }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "wrong PIN, 2 tries left");
    assert_eq!(pin_tries_sent(&key), 1);

    // ensure_pin asks once and never retries on its own.
    let asked = Cell::new(0);
    let err = t
        .ensure_pin(|| {
            asked.set(asked.get() + 1);
            Ok::<_, String>(pin("111111"))
        })
        .unwrap_err();
    assert!(
        matches!(err, PivError::WrongPin { tries_left: 1 }),
        "{err:?}"
    );
    assert_eq!(asked.get(), 1);
    assert_eq!(pin_tries_sent(&key), 2, "exactly one try per wrong PIN");
    assert_eq!(
        t.pin_status().unwrap(),
        PinStatus::NotVerified { tries_left: 1 }
    );

    // A malformed PIN never reaches the card.
    assert!(matches!(
        t.verify_pin(&pin("12345")),
        Err(PivError::PinFormat)
    ));
    assert_eq!(pin_tries_sent(&key), 2);
    // Nor does a PIN prompt that failed.
    let err = t
        .ensure_pin(|| Err::<Passphrase, _>("cancelled"))
        .unwrap_err();
    assert!(matches!(err, PivError::PinEntry(_)), "{err:?}");
    assert_eq!(pin_tries_sent(&key), 2);

    t.verify_pin(&pin(DEFAULT_PIN)).unwrap();
    assert_eq!(t.pin_status().unwrap(), PinStatus::Verified);
    let asked_again = t
        .ensure_pin(|| -> Result<Passphrase, String> { panic!("the PIN is verified") })
        .unwrap();
    assert!(!asked_again);
    assert_eq!(pin_tries_sent(&key), 3);
}

#[test]
fn a_blocked_pin_is_reported_with_the_puk_hint() {
    let _g = shared();
    let key = TestKey::start();
    let mut t = open(&key);
    for left in [2, 1] {
        let err = t.verify_pin(&pin("000000")).unwrap_err();
        assert!(matches!(err, PivError::WrongPin { tries_left } if tries_left == left));
    }
    let err = t.verify_pin(&pin("000000")).unwrap_err();
    assert!(
        matches!(err, PivError::PinBlocked { serial } if serial == key.serial),
        "{err:?}"
    );
    assert!(err.hint().unwrap().contains("ykman piv access unblock-pin"));
    assert_eq!(t.pin_status().unwrap(), PinStatus::Blocked);

    let err = t
        .ensure_pin(|| -> Result<Passphrase, String> { panic!("a blocked PIN is not asked for") })
        .unwrap_err();
    assert!(matches!(err, PivError::PinBlocked { .. }));
    // Even the right PIN is refused now.
    assert!(matches!(
        t.verify_pin(&pin(DEFAULT_PIN)),
        Err(PivError::PinBlocked { .. })
    ));
}

#[test]
fn defaults_are_detected_then_replaced_and_stop_working() {
    let _g = shared();
    let key = TestKey::start();
    let mut t = open(&key);
    assert_eq!(t.is_default_pin().unwrap(), Some(true));
    assert_eq!(t.is_default_puk().unwrap(), Some(true));
    assert!(t.is_default_mgm().unwrap());
    assert_eq!(
        pin_tries_sent(&key),
        0,
        "defaults are detected without a VERIFY"
    );

    t.verify_pin(&pin(DEFAULT_PIN)).unwrap();
    assert!(matches!(
        t.change_pin(&pin(DEFAULT_PIN), &pin(DEFAULT_PIN)),
        Err(PivError::DefaultRefused { what: "PIN" })
    ));
    assert!(matches!(
        t.change_puk(&pin(DEFAULT_PUK), &pin(DEFAULT_PUK)),
        Err(PivError::DefaultRefused { what: "PUK" })
    ));
    t.change_pin(&pin(DEFAULT_PIN), &pin("71829304")).unwrap();
    t.change_puk(&pin(DEFAULT_PUK), &pin("s3cretPK")).unwrap();
    t.set_protected_management_key().unwrap();

    assert_eq!(t.is_default_pin().unwrap(), Some(false));
    assert_eq!(t.is_default_puk().unwrap(), Some(false));
    assert!(!t.is_default_mgm().unwrap());
    drop(t);

    let mut t = open(&key);
    assert!(matches!(
        t.verify_pin(&pin(DEFAULT_PIN)),
        Err(PivError::WrongPin { tries_left: 2 })
    ));
    assert!(matches!(
        t.change_puk(&pin(DEFAULT_PUK), &pin("abcdefgh")),
        Err(PivError::WrongPuk { tries_left: 2 })
    ));
    // The default management key no longer authenticates; the protected
    // one does, but only after the PIN.
    let mut yk = yubikey::YubiKey::open_by_serial(key.serial.into()).unwrap();
    assert!(matches!(
        yk.authenticate(yubikey::MgmKey::default()),
        Err(yubikey::Error::AuthenticationError)
    ));
    let _ = yk.disconnect(pcsc::Disposition::LeaveCard);
    assert!(matches!(
        t.authenticate_management(),
        Err(PivError::PinRequired { .. })
    ));
    t.verify_pin(&pin("71829304")).unwrap();
    assert_eq!(
        t.authenticate_management().unwrap(),
        ManagementKey::Protected
    );
    // And it is enough to generate a key.
    let slot = t.free_retired_slot().unwrap();
    t.generate(slot, PinPolicy::Once, TouchPolicy::Always)
        .unwrap();
}

#[test]
fn generates_in_a_free_retired_slot_and_reads_the_metadata_back() {
    let _g = shared();
    let key = TestKey::start();
    let (mut t, slot, public_key) = with_slot_key(&key, PinPolicy::Once, TouchPolicy::Always);
    assert_eq!(slot, 0x82);
    assert_eq!(t.free_retired_slot().unwrap(), 0x83);
    drop(t);

    let mut t = open(&key);
    let expected = SlotInfo {
        public_key,
        pin_policy: PinPolicy::Once,
        touch_policy: TouchPolicy::Always,
        origin: Some(Origin::Generated),
    };
    assert_eq!(t.read_slot(slot).unwrap(), Some(expected.clone()));
    assert_eq!(t.read_slot(0x83).unwrap(), None);

    // An occupied slot is never regenerated.
    let err = t
        .generate(slot, PinPolicy::Never, TouchPolicy::Never)
        .unwrap_err();
    assert!(
        matches!(err, PivError::SlotInUse { slot: 0x82, .. }),
        "{err:?}"
    );
    drop(t);
    assert_eq!(open(&key).read_slot(slot).unwrap(), Some(expected));
    assert!(matches!(
        open(&key).generate(0x9B, PinPolicy::Once, TouchPolicy::Always),
        Err(PivError::NotAKeySlot { slot: 0x9B })
    ));
}

#[test]
fn certificate_is_written_and_read_back_with_the_policies() {
    let _g = shared();
    let key = TestKey::start();
    let (mut t, slot, public_key) = with_slot_key(&key, PinPolicy::Once, TouchPolicy::Always);
    assert!(t.certificate(slot).unwrap().is_none());
    t.verify_pin(&pin(DEFAULT_PIN)).unwrap();

    let notes = RefCell::new(Vec::new());
    let notify = |m: &str| notes.borrow_mut().push(m.to_string());
    t.write_certificate(
        slot,
        &public_key,
        PinPolicy::Once,
        TouchPolicy::Always,
        &notify,
    )
    .unwrap();
    assert_eq!(
        *notes.borrow(),
        [format!(
            "Touch your YubiKey {} to sign the new key's certificate",
            key.serial
        )]
    );
    drop(t);

    let cert = open(&key).certificate(slot).unwrap().unwrap();
    assert_eq!(cert.public_key, public_key);
    assert_eq!(cert.pin_policy, Some(PinPolicy::Once));
    assert_eq!(cert.touch_policy, Some(TouchPolicy::Always));
    assert_eq!(
        cert.common_name.as_deref(),
        Some("vault P-256 slot 82 pin=once touch=always")
    );
    // Self-signed by the slot's own key, on the card, after a touch.
    let parsed = x509_cert::Certificate::from_der(&cert.der).unwrap();
    let tbs = parsed.tbs_certificate.to_der().unwrap();
    let sig = p256::ecdsa::DerSignature::try_from(parsed.signature.raw_bytes()).unwrap();
    p256::ecdsa::VerifyingKey::from(&public_key)
        .verify(&tbs, &sig)
        .unwrap();
    assert!(key
        .apdus()
        .iter()
        .any(|e| e["ins"] == "87" && e["p2"] == "82" && e["touch"] == "given"));
}

#[test]
fn attestation_verifies_to_the_configured_root_only() {
    let _g = shared();
    // The 5.4.3 chain (slot → F9 → the rig's root), whatever the rig's
    // personality: the 5.7.4 chain through intermediates is
    // tests/attestation.rs's, and crates/token/src/attest.rs's unit tests.
    let key = TestKey::start_firmware("5.4.3");
    let (mut t, slot, public_key) = with_slot_key(&key, PinPolicy::Once, TouchPolicy::Always);
    let root_path = rig_env("VAULT_RIG_ATTESTATION_ROOT");

    let roots = TrustedRoots::from_var(Some(OsStr::new(&root_path))).unwrap();
    let report = t.attest_with(slot, &roots).unwrap();
    assert_eq!(report.serial, key.serial);
    assert_eq!(report.slot, slot);
    assert_eq!(report.firmware.to_string(), key.firmware);
    assert_eq!(report.public_key, public_key);
    assert_eq!(
        (report.pin_policy, report.touch_policy),
        (PinPolicy::Once, TouchPolicy::Always)
    );
    assert_eq!(report.root, "CN=vault virtual YubiKey test root");

    // Yubico's root alone: the test root is not trusted.
    let err = t.attest_with(slot, &TrustedRoots::yubico()).unwrap_err();
    assert!(matches!(err, PivError::Attestation { .. }), "{err:?}");
    assert!(
        err.to_string().contains("not certified by a trusted root"),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("VAULT_ATTESTATION_ROOTS"));
    // attest() takes Yubico's root plus VAULT_ATTESTATION_ROOTS: with none
    // set, it too refuses the test root. Set, it would trust it, so the
    // check cannot run: fail and say so rather than skip.
    assert!(
        std::env::var_os("VAULT_ATTESTATION_ROOTS").is_none(),
        "VAULT_ATTESTATION_ROOTS is set in the tests' environment: unset it \
         (this test checks that without it only Yubico's root is trusted)"
    );
    assert!(matches!(t.attest(slot), Err(PivError::Attestation { .. })));

    // A root with the test root's name but another key, and the test root
    // with its key damaged, are both refused.
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read_to_string(&root_path).unwrap();
    let real = <x509_cert::Certificate as der::DecodePem>::from_pem(real.as_bytes()).unwrap();
    let forged = forge_root(&real.tbs_certificate.subject);
    let mut damaged = real.to_der().unwrap();
    let spki = real
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap();
    let at = damaged
        .windows(spki.len())
        .position(|w| w == spki.as_slice())
        .unwrap();
    damaged[at + spki.len() - 1] ^= 0x01;
    let damaged = x509_cert::Certificate::from_der(&damaged).unwrap();
    for (name, cert) in [("forged.pem", forged), ("damaged.pem", damaged)] {
        let path = dir.path().join(name);
        std::fs::write(&path, cert.to_pem(der::pem::LineEnding::LF).unwrap()).unwrap();
        let roots = TrustedRoots::from_var(Some(path.as_os_str())).unwrap();
        let err = t.attest_with(slot, &roots).unwrap_err();
        assert!(
            err.to_string().contains("not certified by a trusted root"),
            "{name}: {err}"
        );
    }
}

/// A self-signed root named `subject`, with a fresh key.
fn forge_root(subject: &x509_cert::name::Name) -> x509_cert::Certificate {
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_key(*key.verifying_key()).unwrap();
    CertificateBuilder::new(
        Profile::Root,
        x509_cert::serial_number::SerialNumber::new(&[7]).unwrap(),
        x509_cert::time::Validity::from_now(Duration::from_secs(86_400)).unwrap(),
        subject.clone(),
        spki,
        &key,
    )
    .unwrap()
    .build::<p256::ecdsa::DerSignature>()
    .unwrap()
}

#[test]
fn ecdh_on_the_card_equals_software_ecdh() {
    let _g = shared();
    let key = TestKey::start();
    let (mut t, slot, public_key) = with_slot_key(&key, PinPolicy::Once, TouchPolicy::Always);
    let eph = ephemeral(0x11);

    let err = t.ecdh(slot, &eph.public_key(), &no_touch).unwrap_err();
    assert!(matches!(err, PivError::PinRequired { .. }), "{err:?}");

    t.verify_pin(&pin(DEFAULT_PIN)).unwrap();
    let notes = RefCell::new(Vec::new());
    let touch = |e: vault_token::TouchEvent| notes.borrow_mut().push(e);
    let shared = t.ecdh(slot, &eph.public_key(), &touch).unwrap();
    assert_eq!(shared.to_vec(), software_ecdh(&eph, &public_key));
    // The wait is announced with the card's timeout and its end reported,
    // so the user sees a countdown and "touched".
    let serial = key.serial;
    assert_eq!(
        *notes.borrow(),
        [
            vault_token::TouchEvent::Waiting {
                serial,
                timeout: vault_token::TOUCH_TIMEOUT
            },
            vault_token::TouchEvent::Done {
                serial,
                touched: true
            }
        ]
    );
    let eph2 = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let shared2 = t.ecdh(slot, &eph2.public_key(), &touch).unwrap();
    assert_eq!(shared2.to_vec(), software_ecdh(&eph2, &public_key));
    assert_eq!(notes.borrow().len(), 4, "touch always: asked every time");
    drop(t);

    // Through the envelope, as vault opens a stored item.
    let secret = SecretBytes::new(b"{\"AccessKeyId\":\"AKIA...\"}".to_vec());
    let sealed = envelope::seal(
        &secret,
        &[Recipient::Piv {
            serial: key.serial,
            slot,
            public_key,
        }],
        "key/work",
    )
    .unwrap();
    let asked = Cell::new(0);
    let mut unwrapper = PivUnwrapper::new(
        |_, _| {
            asked.set(asked.get() + 1);
            Ok(pin(DEFAULT_PIN))
        },
        quiet,
    );
    let opened = envelope::open(&sealed, "key/work", &mut unwrapper).unwrap();
    assert_eq!(opened.expose(), secret.expose());

    // A slot that no longer holds the sealed key is reported, not used.
    let other = ephemeral(0x22).public_key();
    let err = unwrapper
        .piv_ecdh(key.serial, slot, &other, &eph.public_key())
        .unwrap_err();
    assert!(err.to_string().contains("holds a different key"), "{err}");
    // An absent key is "not present", for the next entry to be tried.
    assert_eq!(
        unwrapper
            .piv_ecdh(99_999_998, slot, &public_key, &eph.public_key())
            .unwrap(),
        None
    );
}

#[test]
fn no_touch_is_a_touch_timeout_and_changes_nothing() {
    let _g = shared();
    let key = TestKey::start_with_touch_timeout(1_000);
    let (mut t, slot, public_key) = with_slot_key(&key, PinPolicy::Once, TouchPolicy::Always);
    t.verify_pin(&pin(DEFAULT_PIN)).unwrap();
    key.ctl("touch never");
    let eph = ephemeral(0x33);
    let err = t.ecdh(slot, &eph.public_key(), &no_touch).unwrap_err();
    assert!(
        matches!(err, PivError::TouchTimeout { serial } if serial == key.serial),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "no touch within 15 s; touch the YubiKey when it blinks, then try again"
    );
    assert!(key.apdus().iter().any(|e| e["touch"] == "timeout"));

    assert_eq!(t.pin_status().unwrap(), PinStatus::Verified);
    key.ctl("touch now");
    let shared = t.ecdh(slot, &eph.public_key(), &no_touch).unwrap();
    assert_eq!(shared.to_vec(), software_ecdh(&eph, &public_key));
}

#[test]
fn a_key_pulled_out_mid_ecdh_is_reported_removed_and_keeps_its_key() {
    let _g = shared();
    let key = TestKey::start();
    let (mut t, slot, public_key) = with_slot_key(&key, PinPolicy::Once, TouchPolicy::Always);
    t.verify_pin(&pin(DEFAULT_PIN)).unwrap();
    key.ctl("remove-on 87");
    let eph = ephemeral(0x44);
    let err = t.ecdh(slot, &eph.public_key(), &no_touch).unwrap_err();
    assert!(
        matches!(err, PivError::Removed { serial } if serial == key.serial),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "YubiKey {} was removed; insert it and try again",
            key.serial
        )
    );
    drop(t);

    key.wait_present(false);
    key.ctl("insert");
    key.wait_present(true);
    let mut t = open(&key);
    let info = t.read_slot(slot).unwrap().unwrap();
    assert_eq!(info.public_key, public_key, "nothing was deleted");
    // A power cycle forgets the PIN, as on a real key.
    assert_eq!(
        t.pin_status().unwrap(),
        PinStatus::NotVerified { tries_left: 3 }
    );
}

#[test]
fn an_unwrapper_survives_the_key_being_replugged() {
    let _g = shared();
    let key = TestKey::start();
    let (t, slot, public_key) = with_slot_key(&key, PinPolicy::Once, TouchPolicy::Always);
    drop(t);
    let asked = Cell::new(0);
    let mut u = PivUnwrapper::new(
        |_, _| {
            asked.set(asked.get() + 1);
            Ok(pin(DEFAULT_PIN))
        },
        quiet,
    );
    let eph = ephemeral(0x55);
    let expected = software_ecdh(&eph, &public_key);
    let got = u
        .piv_ecdh(key.serial, slot, &public_key, &eph.public_key())
        .unwrap()
        .unwrap();
    assert_eq!(got.to_vec(), expected);

    key.ctl("remove");
    key.wait_present(false);
    key.ctl("insert");
    key.wait_present(true);
    let got = u
        .piv_ecdh(key.serial, slot, &public_key, &eph.public_key())
        .unwrap()
        .unwrap();
    assert_eq!(got.to_vec(), expected);
    assert_eq!(asked.get(), 2, "the replugged key lost its PIN state");
}

/// The PIN verified by another program, which keeps its connection open
/// (as an agent does, keeping the card powered) while the test runs.
fn verified_by_another_program(key: &TestKey) -> pcsc::Card {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let reader = std::ffi::CString::new(key.reader.as_str()).unwrap();
    let card = ctx
        .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .unwrap();
    let mut buf = [0u8; 258];
    let select = [0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08];
    let r = card.transmit(&select, &mut buf).unwrap();
    assert_eq!(&r[r.len() - 2..], [0x90, 0x00], "SELECT PIV");
    let mut verify = vec![0x00, 0x20, 0x00, 0x80, 0x08];
    verify.extend(DEFAULT_PIN.bytes());
    verify.resize(13, 0xFF);
    let r = card.transmit(&verify, &mut buf).unwrap();
    assert_eq!(r, [0x90, 0x00], "VERIFY");
    card
}

#[test]
fn a_pin_a_session_verified_is_logged_out_and_one_found_verified_stays() {
    let _g = shared();
    let key = TestKey::start();
    let (mut t, slot, public_key) = with_slot_key(&key, PinPolicy::Once, TouchPolicy::Always);
    t.verify_pin(&pin(DEFAULT_PIN)).unwrap();
    drop(t);
    // Ours: logged out when the session ends.
    let mut t = open(&key);
    assert!(
        matches!(t.pin_status().unwrap(), PinStatus::NotVerified { .. }),
        "the PIN this session verified stayed verified"
    );
    drop(t);

    // Another program's: used, and left verified.
    let agent = verified_by_another_program(&key);
    let mut t = open(&key);
    assert_eq!(t.pin_status().unwrap(), PinStatus::Verified);
    let eph = ephemeral(0x66);
    let shared = t.ecdh(slot, &eph.public_key(), &no_touch).unwrap();
    assert_eq!(shared.to_vec(), software_ecdh(&eph, &public_key));
    drop(t);
    let mut t = open(&key);
    assert_eq!(t.pin_status().unwrap(), PinStatus::Verified);
    drop(t);
    drop(agent);

    // Several items opened by one unwrapper: the PIN is asked for once.
    let key2 = TestKey::start();
    let (t2, slot2, public_key2) = with_slot_key(&key2, PinPolicy::Once, TouchPolicy::Always);
    drop(t2);
    let asked = Cell::new(0);
    let mut u = PivUnwrapper::new(
        |_, _| {
            asked.set(asked.get() + 1);
            Ok(pin(DEFAULT_PIN))
        },
        quiet,
    );
    for seed in [1u8, 2, 3] {
        let eph = ephemeral(seed);
        let got = u
            .piv_ecdh(key2.serial, slot2, &public_key2, &eph.public_key())
            .unwrap()
            .unwrap();
        assert_eq!(got.to_vec(), software_ecdh(&eph, &public_key2));
    }
    assert_eq!(asked.get(), 1);
}

#[test]
fn apdus_for_one_ecdh_with_the_pin_verified() {
    let _g = alone();
    let key = TestKey::start();
    let (t, slot, public_key) = with_slot_key(&key, PinPolicy::Once, TouchPolicy::Always);
    drop(t);
    let _agent = verified_by_another_program(&key);
    let mut t = open(&key);
    let eph = ephemeral(0x77);

    let before = apdu_count_settled(&key);
    t.ecdh(slot, &eph.public_key(), &no_touch).unwrap();
    let first = apdu_count_settled(&key) - before;

    let before = apdu_count_settled(&key);
    t.ecdh(slot, &eph.public_key(), &no_touch).unwrap();
    let again = apdu_count_settled(&key) - before;
    drop(t);

    // What vault does per stored item: open by serial, check the PIN
    // state and the slot's key, ECDH.
    let before = apdu_count_settled(&key);
    let mut u = PivUnwrapper::new(
        |_, _| -> Result<Passphrase, String> { panic!("the PIN is verified") },
        quiet,
    );
    u.piv_ecdh(key.serial, slot, &public_key, &eph.public_key())
        .unwrap()
        .unwrap();
    let whole = apdu_count_settled(&key) - before;

    println!(
        "APDUs for one ECDH with the PIN verified: {first} on an open session \
         (GET METADATA + GENERAL AUTHENTICATE), {again} once the slot is known, \
         {whole} for a whole unwrap from a closed card \
         (SELECT, GET VERSION, GET SERIAL, empty VERIFY, GET METADATA, GENERAL AUTHENTICATE)"
    );
    assert!(first <= 2, "{first} APDUs");
    assert!(again <= 1, "{again} APDUs");
    assert!(whole <= 6, "{whole} APDUs");
}

/// Without pcscd the error says how to get it running. The test runs
/// itself again in a child whose PC/SC client looks for pcscd's socket
/// where there is none (the client honours `PCSCLITE_CSOCK_NAME`), so the
/// rig's pcscd stays up for the other tests.
#[test]
fn without_pcscd_the_error_says_how_to_start_it() {
    const CHILD: &str = "VAULT_TOKEN_PIV_NO_PCSCD_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let err = PivToken::open(12_345_678, Duration::from_secs(1), &quiet).unwrap_err();
        assert!(
            matches!(err, PivError::Token(TokenError::PcscUnavailable(_))),
            "{err:?}"
        );
        assert!(PivToken::list().is_err());
        println!("hint: {}", err.hint().unwrap());
        return;
    }
    let _g = shared();
    let dir = tempfile::tempdir_in(support::vyk::rig_dir()).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "without_pcscd_the_error_says_how_to_start_it",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("PCSCLITE_CSOCK_NAME", dir.path().join("no-pcscd.comm"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if cfg!(target_os = "linux") {
        assert!(
            stdout.contains("apt install pcscd")
                && stdout.contains("systemctl enable --now pcscd.socket"),
            "{stdout}"
        );
    }
}
