//! The Management applet through real ykman: `ykman info` must name the key
//! a YubiKey 5 NFC with its serial and firmware 5.4.3, as it names a real
//! one. Runs in the rig: `hw/rig -- cargo test -p virtual-yubikey --test mgmt_ykman`.

mod common;

use common::{run, TestKey};

#[test]
fn ykman_info_identifies_a_yubikey_5_nfc() {
    let key = TestKey::start();
    let (ok, out, err) = run("ykman", &["--reader", &key.reader, "info"]);
    assert!(ok, "ykman info failed:\n{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    for expected in [
        "Device type: YubiKey 5 NFC".to_string(),
        format!("Serial number: {}", key.serial),
        "Firmware version: 5.4.3".to_string(),
        "Form factor: Keychain (USB-A)".to_string(),
        "Enabled USB interfaces: OTP, FIDO, CCID".to_string(),
        "NFC transport is enabled".to_string(),
    ] {
        assert!(
            lines.contains(&expected.as_str()),
            "no {expected:?} in:\n{out}"
        );
    }
    for app in ["OATH", "PIV", "FIDO2", "YubiHSM Auth"] {
        let row = lines
            .iter()
            .find(|l| l.split('\t').next().map(str::trim) == Some(app))
            .unwrap_or_else(|| panic!("no {app} row in:\n{out}"));
        assert_eq!(
            row.split('\t').map(str::trim).collect::<Vec<_>>(),
            [app, "Enabled", "Enabled"],
            "{out}"
        );
    }
    // ykman read it over the Management applet, not by probing applets.
    let log = key.apdu_log();
    let mgmt: Vec<_> = log.iter().filter(|e| e["applet"] == "mgmt").collect();
    assert!(
        mgmt.iter().any(|e| e["ins"] == "1D" && e["sw"] == "9000"),
        "{log:?}"
    );
}
