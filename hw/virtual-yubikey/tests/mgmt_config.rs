//! The Management applet's writes through real ykman: `ykman config usb`
//! turns applications off and on (a disabled one no longer answers SELECT,
//! and the setting survives a restart of the key, as it survives a
//! re-plug), and `ykman config set-lock-code` guards the configuration.
//! Runs in the rig: `hw/rig -- cargo test -p virtual-yubikey --test mgmt_config`.
//! Skipped on a real key: a failure halfway could leave its PIV disabled
//! or its configuration locked with a test's code.

mod common;

use common::{run, skipped_on_real_key, TestKey};

const LOCK_CODE: &str = "0123456789abcdef0123456789abcdef";

fn ykman(key: &TestKey, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["--reader", key.reader.as_str()];
    all.extend_from_slice(args);
    run("ykman", &all)
}

fn ykman_ok(key: &TestKey, args: &[&str]) -> String {
    let (ok, out, err) = ykman(key, args);
    assert!(ok, "ykman {args:?} failed:\n{out}\n{err}");
    out
}

/// The status words the key answered to SELECTs, in order (the log holds
/// no data bytes, so not which AID).
fn select_sws(key: &TestKey) -> Vec<String> {
    key.apdus()
        .iter()
        .filter(|e| e["ins"] == "A4")
        .map(|e| e["sw"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_disabled_application_is_not_found_until_enabled_again_even_after_a_restart() {
    if skipped_on_real_key("disabling PIV over USB") {
        return;
    }
    let mut key = TestKey::start();
    ykman_ok(&key, &["config", "usb", "--disable", "PIV", "-f"]);
    let listed = ykman_ok(&key, &["config", "usb", "--list"]);
    assert!(!listed.contains("PIV"), "{listed}");
    assert!(listed.contains("OATH"), "{listed}");

    // PIV's SELECT fails as for an applet the key does not have.
    let (ok, out, err) = ykman(&key, &["piv", "info"]);
    assert!(!ok, "piv info worked with PIV disabled:\n{out}");
    assert!(
        select_sws(&key).iter().any(|sw| sw == "6A82"),
        "no SELECT answered 6A82:\n{out}\n{err}"
    );
    ykman_ok(&key, &["oath", "accounts", "list"]);

    // Kept in the state file: a restarted key still has PIV off.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(key.state_path()).unwrap()).unwrap();
    assert_eq!(state["mgmt"]["usb_enabled"], 0x032F, "{state}");
    key.restart();
    let info = ykman_ok(&key, &["info"]);
    let piv = info
        .lines()
        .find(|l| l.split('\t').next().map(str::trim) == Some("PIV"))
        .unwrap_or_else(|| panic!("no PIV row:\n{info}"));
    assert_eq!(
        piv.split('\t').map(str::trim).collect::<Vec<_>>(),
        ["PIV", "Disabled", "Enabled"],
        "{info}"
    );
    assert!(
        !ykman(&key, &["piv", "info"]).0,
        "PIV answered after restart"
    );

    ykman_ok(&key, &["config", "usb", "--enable", "PIV", "-f"]);
    ykman_ok(&key, &["piv", "info"]);
}

#[test]
fn the_lock_code_guards_every_configuration_change() {
    if skipped_on_real_key("setting a configuration lock code") {
        return;
    }
    let key = TestKey::start();
    ykman_ok(
        &key,
        &["config", "set-lock-code", "--new-lock-code", LOCK_CODE],
    );
    let info = ykman_ok(&key, &["info"]);
    assert!(
        info.contains("Configured capabilities are protected by a lock code"),
        "{info}"
    );

    // A wrong code is refused by the key (6F00, as Yubico documents), and
    // nothing changes.
    let wrong = "ffffffffffffffffffffffffffffffff";
    let (ok, out, _) = ykman(
        &key,
        &["config", "nfc", "--disable", "OATH", "-L", wrong, "-f"],
    );
    assert!(!ok, "a wrong lock code was accepted:\n{out}");
    let writes: Vec<_> = key
        .apdus()
        .into_iter()
        .filter(|e| e["applet"] == "mgmt" && e["ins"] == "1C")
        .collect();
    assert_eq!(writes.last().unwrap()["sw"], "6F00", "{writes:?}");
    // No unlock code at all: the same (ykman refuses to send that itself,
    // so the APDU is sent raw: USB enabled = all but OTP).
    ykman_ok(
        &key,
        &["apdu", "-a", "management", "1c0000:040302033e=6f00"],
    );
    let nfc = ykman_ok(&key, &["config", "nfc", "--list"]);
    assert!(nfc.contains("OATH"), "{nfc}");
    let usb = ykman_ok(&key, &["config", "usb", "--list"]);
    assert!(usb.contains("OTP"), "{usb}");

    // The right code: the change is made; then the code is cleared.
    ykman_ok(
        &key,
        &["config", "nfc", "--disable", "OATH", "-L", LOCK_CODE, "-f"],
    );
    let nfc = ykman_ok(&key, &["config", "nfc", "--list"]);
    assert!(!nfc.contains("OATH"), "{nfc}");
    ykman_ok(
        &key,
        &["config", "set-lock-code", "-l", LOCK_CODE, "--clear"],
    );
    let info = ykman_ok(&key, &["info"]);
    assert!(!info.contains("protected by a lock code"), "{info}");
    ykman_ok(&key, &["config", "nfc", "--enable-all", "-f"]);
}
