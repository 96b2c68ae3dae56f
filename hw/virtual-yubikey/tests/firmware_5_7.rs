//! The firmware 5.7.4 personality (`virtual-yubikey run --firmware 5.7.4`),
//! through the yubikey crate and real ykman: the version every applet
//! reports, the AES-192 default management key, and MOVE and DELETE KEY.
//! Runs in the rig: `hw/rig -- cargo test -p virtual-yubikey --test firmware_5_7`.

mod common;

use common::{run, TestKey};

/// The default management key (AES-192 on 5.7, 3DES before).
const MGMT: &str = "010203040506070801020304050607080102030405060708";

fn ykman(key: &TestKey, args: &[&str]) -> String {
    let mut all = vec!["--reader", key.reader.as_str()];
    all.extend_from_slice(args);
    let (ok, out, err) = run("ykman", &all);
    assert!(ok, "ykman {args:?} failed:\n{out}\n{err}");
    out
}

#[test]
fn every_applet_reports_5_7_4() {
    let key = TestKey::start_firmware("5.7.4");
    assert_eq!(key.firmware, "5.7.4");
    let yk = yubikey::YubiKey::open_by_serial(yubikey::Serial::from(key.serial))
        .unwrap_or_else(|e| panic!("open {}: {e}", key.serial));
    let v = yk.version();
    assert_eq!((v.major, v.minor, v.patch), (5, 7, 4), "PIV GET VERSION");
    drop(yk);
    let info = ykman(&key, &["info"]);
    assert!(
        info.lines().any(|l| l == "Firmware version: 5.7.4"),
        "management DEVICE INFO:\n{info}"
    );
    let oath = ykman(&key, &["oath", "info"]);
    assert!(
        oath.contains("OATH version:        5.7.4"),
        "OATH SELECT:\n{oath}"
    );
    let piv = ykman(&key, &["piv", "info"]);
    assert!(piv.contains("PIV version:              5.7.4"), "{piv}");
    // 5.7 ships the same 24 default bytes as an AES-192 key.
    assert!(
        piv.contains("Management key algorithm: AES192"),
        "default management key:\n{piv}"
    );
}

#[test]
fn ykman_moves_and_deletes_keys() {
    let key = TestKey::start_firmware("5.7.4");
    let pem = key.dir.join("9a.pem");
    let pem = pem.to_str().unwrap();
    ykman(
        &key,
        &[
            "piv", "keys", "generate", "-m", MGMT, "-a", "ECCP256", "9a", pem,
        ],
    );
    let before = ykman(&key, &["piv", "keys", "info", "9a"]);
    let out = ykman(&key, &["piv", "keys", "move", "-m", MGMT, "9a", "9c"]);
    assert!(
        out.contains("Key moved from slot AUTHENTICATION to slot SIGNATURE"),
        "{out}"
    );
    let after = ykman(&key, &["piv", "keys", "info", "9c"]);
    // GET METADATA of the new slot: same algorithm, policies, origin, key.
    let strip = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(&before), strip(&after), "{before}\n---\n{after}");
    assert!(after.contains("GENERATED"), "origin kept:\n{after}");
    let (ok, out, err) = run(
        "ykman",
        &["--reader", &key.reader, "piv", "keys", "info", "9a"],
    );
    assert!(!ok, "9a should be empty:\n{out}{err}");
    // Moving onto an occupied slot is refused, as a real key refuses it.
    ykman(
        &key,
        &[
            "piv", "keys", "generate", "-m", MGMT, "-a", "ECCP256", "9d", pem,
        ],
    );
    let (ok, out, err) = run(
        "ykman",
        &[
            "--reader",
            &key.reader,
            "piv",
            "keys",
            "move",
            "-m",
            MGMT,
            "9c",
            "9d",
        ],
    );
    assert!(!ok && err.contains("DEST slot is not empty"), "{out}{err}");
    let out = ykman(&key, &["piv", "keys", "delete", "-m", MGMT, "9c"]);
    assert!(out.contains("deleted"), "{out}");
    let (ok, out, err) = run(
        "ykman",
        &[
            "--reader",
            &key.reader,
            "piv",
            "keys",
            "delete",
            "-m",
            MGMT,
            "9c",
        ],
    );
    assert!(!ok && err.contains("No key stored in slot"), "{out}{err}");
}

#[test]
fn default_personality_stays_5_4_3_with_3des() {
    let key = TestKey::start_firmware("5.4.3");
    let piv = ykman(&key, &["piv", "info"]);
    assert!(piv.contains("PIV version:              5.4.3"), "{piv}");
    assert!(piv.contains("Management key algorithm: TDES"), "{piv}");
}

#[test]
fn ykman_rsa_3072_and_4096_generate_sign_and_attest() {
    let key = TestKey::start_firmware("5.7.4");
    for (slot, alg, bits) in [("9a", "RSA3072", "3072"), ("9c", "RSA4096", "4096")] {
        let pem = key.dir.join(format!("{slot}.pem"));
        let pem = pem.to_str().unwrap();
        ykman(
            &key,
            &["piv", "keys", "generate", "-m", MGMT, "-a", alg, slot, pem],
        );
        let info = ykman(&key, &["piv", "keys", "info", slot]);
        assert!(info.contains(alg), "{info}");
        // A self-signed certificate: the card signs with the new key.
        ykman(
            &key,
            &[
                "piv",
                "certificates",
                "generate",
                "-m",
                MGMT,
                "-P",
                "123456",
                "-s",
                "CN=rsa",
                slot,
                pem,
            ],
        );
        let cert = key.dir.join(format!("{slot}.crt"));
        let cert = cert.to_str().unwrap();
        ykman(&key, &["piv", "certificates", "export", slot, cert]);
        let (ok, out, err) = run("openssl", &["x509", "-in", cert, "-noout", "-text"]);
        assert!(ok && out.contains(&format!("({bits} bit)")), "{out}{err}");
        let (ok, out, err) = run(
            "openssl",
            &["verify", "-CAfile", cert, "-partial_chain", cert],
        );
        assert!(ok, "self-signature by the card's key:\n{out}{err}");
        let att = key.dir.join(format!("{slot}.att"));
        ykman(
            &key,
            &["piv", "keys", "attest", slot, att.to_str().unwrap()],
        );
    }
    // 5.4.3 has neither.
    let old = TestKey::start_firmware("5.4.3");
    let pem = old.dir.join("old.pem");
    let (ok, out, err) = run(
        "ykman",
        &[
            "--reader",
            &old.reader,
            "piv",
            "keys",
            "generate",
            "-m",
            MGMT,
            "-a",
            "RSA4096",
            "9a",
            pem.to_str().unwrap(),
        ],
    );
    assert!(!ok, "5.4.3 generated RSA-4096:\n{out}{err}");
}
