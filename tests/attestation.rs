//! `vault hw enroll` verifies a key's attestation on both firmware
//! personalities of the virtual YubiKey, through the real stack (the
//! `vault` binary → pcscd → the virtual key), with the rig's attestation
//! test PKI playing Yubico's (hw/README.md, "Attestation test PKI"):
//! 5.4.3 chains slot → F9 → root, 5.7.4 slot → F9 → PIV B 1 →
//! Intermediate A 1 → Root 1, as Yubico's current keys do. Issue 11.2 and
//! 13.4. Run with `hw/rig -- cargo test -p vault --test attestation`.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use serde_json::Value;
use std::sync::{Mutex, MutexGuard, PoisonError};
use support::token::{self, hw, rig_attestation_pki, tokens_json_path, Secrets};
use support::vyk::TestKey;
use support::{Run, TestEnv};

/// One test at a time: vault finds a key by serial by asking every key
/// present, which would disturb another test's enrollment.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn alone() -> MutexGuard<'static, ()> {
    support::rig_dir();
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `vault hw enroll --serial N` with the rig's PKI trusted, then `env`.
fn enroll(t: &TestEnv, key: &TestKey, s: &Secrets, env: &[(&str, &str)]) -> Run {
    let serial = key.serial.to_string();
    let mut c = hw(t, s, &token::enroll_args(&serial, &[]));
    for (k, v) in env {
        c = c.env(k, v);
    }
    c.run()
}

fn present(t: &TestEnv, serial: u32) -> Value {
    let run = t.vault(&["hw", "status", "--json"]).run().success();
    let st: Value = serde_json::from_str(&run.stdout).unwrap();
    st["present"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["serial"] == serial)
        .cloned()
        .unwrap_or_else(|| panic!("{serial} not present: {st:#}"))
}

fn slot_holds_key(key: &TestKey, slot: &str) -> bool {
    let out = std::process::Command::new("ykman")
        .arg("--reader")
        .arg(&key.reader)
        .args(["piv", "keys", "info", slot])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ykman (the rig puts it on PATH)");
    String::from_utf8_lossy(&out.stdout).contains("Algorithm")
}

fn recorded(t: &TestEnv) -> Value {
    serde_json::from_str(&std::fs::read_to_string(tokens_json_path(t)).unwrap()).unwrap()
}

#[test]
fn enroll_verifies_the_attestation_of_both_personalities() {
    let _g = alone();
    for (firmware, root, deletion) in [
        ("5.4.3", "CN=vault virtual YubiKey test root", false),
        (
            "5.7.4",
            "CN=Yubico Attestation Root 1 (vault test),O=vault test",
            true,
        ),
    ] {
        let t = TestEnv::new(&format!("attest_ok_{firmware}"));
        let key = TestKey::start_firmware(firmware);
        let s = Secrets::new();
        let run = enroll(&t, &key, &s, &[]);
        assert_eq!(run.code, Some(0), "{firmware}: {run:?}");
        assert!(
            run.stderr.contains("Attestation verified")
                && run.stderr.contains(&format!("(root: {root})")),
            "{firmware}: {}",
            run.stderr
        );
        let rec = recorded(&t);
        assert_eq!(rec["tokens"][0]["piv"]["attested"], true, "{rec:#}");

        // hw status: the firmware's facts, with the same trust as enroll.
        let (roots, intermediates) = rig_attestation_pki();
        let run = t
            .vault(&["hw", "status", "--json"])
            .env("VAULT_ATTESTATION_ROOTS", &roots)
            .env("VAULT_ATTESTATION_INTERMEDIATES", &intermediates)
            .run()
            .success();
        let st: Value = serde_json::from_str(&run.stdout).unwrap();
        let p = st["present"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["serial"] == key.serial)
            .unwrap();
        assert_eq!(p["firmware"], firmware, "{p:#}");
        assert_eq!(p["key_deletion"], deletion, "{p:#}");
        assert_eq!(p["attestation_root"], root, "{p:#}");
        let text = t
            .vault(&["hw", "status"])
            .env("VAULT_ATTESTATION_ROOTS", &roots)
            .env("VAULT_ATTESTATION_INTERMEDIATES", &intermediates)
            .run()
            .success()
            .stdout;
        assert!(
            text.contains(&format!("attestation chains to {root}")),
            "{text}"
        );
        // Without the rig's PKI, status says the chain is not verified.
        let p = present(&t, key.serial);
        assert!(p["attestation_error"].is_string(), "{p:#}");
    }
}

#[test]
fn a_5_7_key_is_refused_when_its_intermediates_are_missing_or_untrusted() {
    let _g = alone();
    let t = TestEnv::new("attest_missing_intermediate");
    let key = TestKey::start_firmware("5.7.4");
    let s = Secrets::new();
    let (roots, intermediates) = rig_attestation_pki();
    let legacy = std::env::var("VAULT_RIG_ATTESTATION_ROOT").unwrap();

    // The intermediates not given: the error names the missing CA and the
    // variable that supplies it; nothing on the card changed.
    let run = enroll(
        &t,
        &key,
        &s,
        &[
            ("VAULT_ATTESTATION_ROOTS", &roots),
            ("VAULT_ATTESTATION_INTERMEDIATES", ""),
        ],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("attestation failed")
            && run
                .stderr
                .contains("CN=Yubico PIV Attestation B 1 (vault test)")
            && run.stderr.contains("VAULT_ATTESTATION_INTERMEDIATES")
            && run.stderr.contains("nothing was changed on the YubiKey"),
        "{}",
        run.stderr
    );
    assert!(!slot_holds_key(&key, "82"));

    // The intermediates given, but their root not trusted: the error names
    // the root and VAULT_ATTESTATION_ROOTS.
    let run = enroll(
        &t,
        &key,
        &s,
        &[
            ("VAULT_ATTESTATION_ROOTS", &legacy),
            ("VAULT_ATTESTATION_INTERMEDIATES", &intermediates),
        ],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("CN=Yubico Attestation Root 1 (vault test)")
            && run.stderr.contains("VAULT_ATTESTATION_ROOTS")
            && run.stderr.contains("nothing was changed on the YubiKey"),
        "{}",
        run.stderr
    );
    // The intermediates as roots do not make them trusted anchors of
    // another path either: the root file is what counts.
    let run = enroll(
        &t,
        &key,
        &s,
        &[
            ("VAULT_ATTESTATION_ROOTS", &legacy),
            (
                "VAULT_ATTESTATION_INTERMEDIATES",
                &format!("{intermediates}:{roots}"),
            ),
        ],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(!slot_holds_key(&key, "82"));

    // With both, it enrolls.
    let run = enroll(&t, &key, &s, &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
}

/// Issue 13.4: a key whose attestation was refused after GENERATE is
/// deleted on 5.7 (DELETE KEY), so no orphan stays and the next run takes
/// the same slot; on 5.4.3 it stays, is recorded, and the next run
/// generates over it in that slot and says so.
#[test]
fn a_refused_attestation_deletes_the_key_on_5_7_and_reuses_the_slot_on_5_4() {
    let _g = alone();
    for firmware in ["5.4.3", "5.7.4"] {
        let t = TestEnv::new(&format!("attest_refused_{firmware}"));
        let key = TestKey::start_firmware(firmware);
        let s = Secrets::new();
        // A relay answers GENERATE with its own key: the chain verifies but
        // vouches for another key, so enrollment refuses after generating.
        key.ctl("relay-generate");
        let run = enroll(&t, &key, &s, &[]);
        assert_eq!(run.code, Some(1), "{firmware}: {run:?}");
        assert!(
            run.stderr.contains("attests another key"),
            "{firmware}: {}",
            run.stderr
        );
        let rec = recorded(&t);
        if firmware == "5.7.4" {
            assert!(
                run.stderr
                    .contains("The key generated in slot 82 was deleted from the card")
                    && run
                        .stderr
                        .contains("the next `vault hw enroll` uses slot 82 again"),
                "{}",
                run.stderr
            );
            assert!(!slot_holds_key(&key, "82"), "an orphan stayed in 82");
            assert!(
                rec["abandoned"].as_array().is_none_or(Vec::is_empty),
                "{rec:#}"
            );
        } else {
            assert!(
                run.stderr
                    .contains("stays on the card (firmware 5.4.3 cannot delete a key)"),
                "{}",
                run.stderr
            );
            assert!(slot_holds_key(&key, "82"));
            assert_eq!(rec["abandoned"][0]["slot"], 0x82, "{rec:#}");
        }

        let run = enroll(&t, &key, &s, &[]);
        assert_eq!(run.code, Some(0), "{firmware}: {run:?}");
        assert_eq!(
            run.stderr
                .contains("Slot 82 holds the key an earlier enrollment generated"),
            firmware == "5.4.3",
            "{firmware}: {}",
            run.stderr
        );
        let rec = recorded(&t);
        assert_eq!(rec["tokens"][0]["piv"]["slot"], 0x82, "{rec:#}");
        assert!(!slot_holds_key(&key, "83"), "slot 83 was taken");
    }
}
