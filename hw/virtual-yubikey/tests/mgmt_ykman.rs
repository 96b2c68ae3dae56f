//! The Management applet through real ykman: `ykman info` must name the key
//! a YubiKey 5 NFC with its serial and firmware 5.4.3, as it names a real
//! one. Runs in the rig: `hw/rig -- cargo test -p virtual-yubikey --test mgmt_ykman`,
//! and on a real key (see hw/README.md): `VAULT_RIG_DESTRUCTIVE=1 hw/rig
//! --real-key SERIAL -- cargo test -p virtual-yubikey --test mgmt_ykman`.

mod common;

use common::{run, skipped_on_real_key, TestKey};

#[test]
fn ykman_info_identifies_a_yubikey_5_nfc() {
    let key = TestKey::start();
    let (ok, out, err) = run("ykman", &["--reader", &key.reader, "info"]);
    assert!(ok, "ykman info failed:\n{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    for expected in [
        format!("Serial number: {}", key.serial),
        format!("Firmware version: {}", key.firmware),
    ] {
        assert!(
            lines.contains(&expected.as_str()),
            "no {expected:?} in:\n{out}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Device type: YubiKey 5")),
        "{out}"
    );
    // What vault needs is on whatever the model.
    for app in ["OATH", "PIV"] {
        let row = app_row(&lines, app, &out);
        assert_eq!(row[1], "Enabled", "{app} over USB:\n{out}");
    }
    // The rest describes the model the virtual key emulates; a real key
    // shows its own.
    if skipped_on_real_key(
        "checking the YubiKey 5 NFC model (form factor, interfaces, NFC, applets)",
    ) {
        return;
    }
    for expected in [
        "Device type: YubiKey 5 NFC",
        "Form factor: Keychain (USB-A)",
        "Enabled USB interfaces: OTP, FIDO, CCID",
        "NFC transport is enabled",
    ] {
        assert!(lines.contains(&expected), "no {expected:?} in:\n{out}");
    }
    for app in ["OATH", "PIV", "FIDO2", "YubiHSM Auth"] {
        assert_eq!(
            app_row(&lines, app, &out),
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

/// The cells of the row for applet `app` in `ykman info`'s table.
fn app_row<'a>(lines: &[&'a str], app: &str, out: &str) -> Vec<&'a str> {
    let row = lines
        .iter()
        .find(|l| l.split('\t').next().map(str::trim) == Some(app))
        .unwrap_or_else(|| panic!("no {app} row in:\n{out}"));
    row.split('\t').map(str::trim).collect()
}
