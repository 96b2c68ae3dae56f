//! Attestation on both personalities, verified by openssl against the
//! files the rig publishes in `$VAULT_RIG_ROOT_DIR` (hw/README.md,
//! "Attestation test PKI"): 5.4.3 keys chain slot → F9 →
//! attestation-root.pem; 5.7.4 keys chain slot → F9 → PIV B 1 →
//! Intermediate A 1 → attestation-root-1.pem, with the intermediates from
//! attestation-intermediates-5.7.pem (a real key stores only F9). Also the
//! 5.7 key types (Ed25519, X25519) generated, used and attested through
//! ykman. Runs in the rig:
//! `hw/rig -- cargo test -p virtual-yubikey --test attestation_5_7`.

mod common;

use common::{rig_env, run, TestKey};
use std::path::{Path, PathBuf};

const MGMT: &str = "010203040506070801020304050607080102030405060708";

fn ykman(key: &TestKey, args: &[&str]) -> String {
    let mut all = vec!["--reader", key.reader.as_str()];
    all.extend_from_slice(args);
    let (ok, out, err) = run("ykman", &all);
    assert!(ok, "ykman {args:?} failed:\n{out}\n{err}");
    out
}

fn root_file(name: &str) -> PathBuf {
    Path::new(&rig_env("VAULT_RIG_ROOT_DIR")).join(name)
}

/// Generates an `alg` key in 9A, attests it, exports F9: (slot.pem, f9.pem).
fn attest(key: &TestKey, alg: &str) -> (String, String) {
    let d = &key.dir;
    let (public, slot, f9) = (d.join("pub.pem"), d.join("slot.pem"), d.join("f9.pem"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    ykman(
        key,
        &[
            "piv",
            "keys",
            "generate",
            "-m",
            MGMT,
            "-a",
            alg,
            "9a",
            &s(&public),
        ],
    );
    ykman(key, &["piv", "keys", "attest", "9a", &s(&slot)]);
    ykman(key, &["piv", "certificates", "export", "f9", &s(&f9)]);
    (s(&slot), s(&f9))
}

/// openssl verify: (ok, output).
fn verify(ca: &Path, untrusted: &[&str], leaf: &str, dir: &Path) -> (bool, String) {
    let bundle = dir.join("untrusted.pem");
    let mut pem = String::new();
    for f in untrusted {
        pem.push_str(&std::fs::read_to_string(f).unwrap());
    }
    std::fs::write(&bundle, pem).unwrap();
    let (ok, out, err) = run(
        "openssl",
        &[
            "verify",
            "-CAfile",
            ca.to_str().unwrap(),
            "-untrusted",
            bundle.to_str().unwrap(),
            leaf,
        ],
    );
    (ok, format!("{out}{err}"))
}

#[test]
fn a_5_7_4_attestation_chains_through_the_published_intermediates() {
    let key = TestKey::start_firmware("5.7.4");
    if key.is_real() {
        return; // a real key chains to Yubico's root, not the rig's
    }
    let (slot, f9) = attest(&key, "ECCP256");
    let inter = root_file("attestation-intermediates-5.7.pem");
    let (ok, out) = verify(
        &root_file("attestation-root-1.pem"),
        &[&f9, inter.to_str().unwrap()],
        &slot,
        &key.dir,
    );
    assert!(ok, "{out}");
    // Without the intermediates, F9 alone does not reach the root.
    let (ok, out) = verify(
        &root_file("attestation-root-1.pem"),
        &[&f9],
        &slot,
        &key.dir,
    );
    assert!(!ok, "{out}");
    // The same chain from the separate files.
    let (ok, out) = verify(
        &root_file("attestation-root-1.pem"),
        &[
            &f9,
            root_file("attestation-piv-b-1.pem").to_str().unwrap(),
            root_file("attestation-intermediate-a-1.pem")
                .to_str()
                .unwrap(),
        ],
        &slot,
        &key.dir,
    );
    assert!(ok, "{out}");
    // Not trusted under the 5.4.3 root.
    let (ok, _) = verify(
        &root_file("attestation-root.pem"),
        &[&f9, inter.to_str().unwrap()],
        &slot,
        &key.dir,
    );
    assert!(!ok);
}

#[test]
fn a_5_4_3_attestation_chains_to_the_old_root_only() {
    let key = TestKey::start_firmware("5.4.3");
    if key.is_real() {
        return;
    }
    let (slot, f9) = attest(&key, "ECCP256");
    let (ok, out) = verify(&root_file("attestation-root.pem"), &[&f9], &slot, &key.dir);
    assert!(ok, "{out}");
    let inter = root_file("attestation-intermediates-5.7.pem");
    let (ok, _) = verify(
        &root_file("attestation-root-1.pem"),
        &[&f9, inter.to_str().unwrap()],
        &slot,
        &key.dir,
    );
    assert!(!ok);
}

#[test]
fn ed25519_and_x25519_through_ykman_on_5_7_4_only() {
    let old = TestKey::start_firmware("5.4.3");
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
            "ED25519",
            "9a",
            old.dir.join("p.pem").to_str().unwrap(),
        ],
    );
    assert!(!ok, "5.4.3 must refuse ED25519:\n{out}{err}");

    let key = TestKey::start_firmware("5.7.4");
    for alg in ["ED25519", "X25519"] {
        let (slot, _) = attest(&key, alg);
        let info = ykman(&key, &["piv", "keys", "info", "9a"]);
        assert!(info.contains(alg), "{info}");
        let (ok, out, err) = run("openssl", &["x509", "-in", &slot, "-noout", "-text"]);
        assert!(ok, "{err}");
        assert!(out.contains(alg), "attested key type:\n{out}");
    }
    // A self-signed Ed25519 certificate: ykman signs it on the key and
    // checks the signature with the public key it got from GENERATE.
    let public = key.dir.join("ed.pem");
    ykman(
        &key,
        &[
            "piv",
            "keys",
            "generate",
            "-m",
            MGMT,
            "-a",
            "ED25519",
            "9c",
            public.to_str().unwrap(),
        ],
    );
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
            "CN=ed25519 test",
            "9c",
            public.to_str().unwrap(),
        ],
    );
    let cert = key.dir.join("cert.pem");
    ykman(
        &key,
        &[
            "piv",
            "certificates",
            "export",
            "9c",
            cert.to_str().unwrap(),
        ],
    );
    let (ok, out, err) = run(
        "openssl",
        &[
            "verify",
            "-CAfile",
            cert.to_str().unwrap(),
            cert.to_str().unwrap(),
        ],
    );
    assert!(ok, "the key's Ed25519 signature verifies:\n{out}{err}");
}
