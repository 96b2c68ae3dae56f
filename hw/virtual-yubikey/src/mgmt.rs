//! The Management applet: DeviceInfo for `ykman info`, and WRITE CONFIG
//! (`ykman config usb|nfc`, `set-lock-code`): which applications are
//! enabled over USB and NFC, the timeouts and flags, and the configuration
//! lock code, kept in the key's state file. An application disabled over
//! USB (the transport clients reach this key by) no longer answers SELECT.

use crate::apdu::{sw, Command, Reply};
use crate::card::{Applet, Env};
use crate::tlv;
use serde::{Deserialize, Serialize};

pub const AID: &[u8] = &[0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17];

/// Capability bits as yubikit defines them.
const CAP_OTP: u16 = 0x01;
const CAP_U2F: u16 = 0x02;
/// Not an application: yubikit calls it the "general CCID" bit. Real keys
/// set it, and ykman lists only the named bits, so it shows nowhere.
const CAP_CCID: u16 = 0x04;
const CAP_OPENPGP: u16 = 0x08;
const CAP_PIV: u16 = 0x10;
const CAP_OATH: u16 = 0x20;
const CAP_HSMAUTH: u16 = 0x100;
const CAP_FIDO2: u16 = 0x200;

/// What a YubiKey 5 NFC on firmware 5.4.3 reports (0x033F, over USB and
/// NFC alike; YubiHSM Auth arrived with 5.4.3). Only PIV and OATH are
/// emulated; the rest is reported so clients identify the model correctly
/// (hw/README.md says which applets answer).
const CAPABILITIES: u16 =
    CAP_OTP | CAP_U2F | CAP_CCID | CAP_OPENPGP | CAP_PIV | CAP_OATH | CAP_HSMAUTH | CAP_FIDO2;

/// Form factor 0x01: USB-A keychain. With NFC capabilities present, ykman
/// names it "YubiKey 5 NFC".
const FORM_FACTOR_USB_A_KEYCHAIN: u8 = 0x01;

// DeviceInfo / WRITE CONFIG tags (yubikit's management.py names them).
const TAG_USB_ENABLED: u8 = 0x03;
const TAG_AUTO_EJECT_TIMEOUT: u8 = 0x06;
const TAG_CHALRESP_TIMEOUT: u8 = 0x07;
const TAG_DEVICE_FLAGS: u8 = 0x08;
/// In DeviceInfo: 1 when a lock code is set. In WRITE CONFIG: the new lock
/// code (16 bytes; all zeros clears it).
const TAG_CONFIG_LOCK: u8 = 0x0A;
/// In WRITE CONFIG: the current lock code, needed while one is set.
const TAG_UNLOCK: u8 = 0x0B;
/// In WRITE CONFIG, empty: reboot once written.
const TAG_REBOOT: u8 = 0x0C;
const TAG_NFC_ENABLED: u8 = 0x0E;
/// In DeviceInfo: 1 on a key that enforces PIN complexity (5.7+).
const TAG_PIN_COMPLEXITY: u8 = 0x16;
const LOCK_CODE_LEN: usize = 16;

/// The answer to WRITE CONFIG with the lock code missing or wrong while one
/// is set: `6F00`, as Yubico documents for this command (Set Device Info,
/// `.NET` SDK users' manual, "Response APDU for incorrect lock code
/// provided": "If there is a lock code set, but the Set command is sent
/// with no lock code (nothing under the 0B tag), or with an incorrect lock
/// code, this is the return").
const SW_WRONG_LOCK_CODE: u16 = sw::WRONG_DATA_LAST_CMD;

/// The Management applet's persistent settings (in the state file; a state
/// file from before they existed loads as a factory-fresh key's).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Management {
    pub usb_enabled: u16,
    pub nfc_enabled: u16,
    pub auto_eject_timeout: u16,
    pub chalresp_timeout: u8,
    pub device_flags: u8,
    /// The configuration lock code, when one is set.
    pub lock_code: Option<Vec<u8>>,
}

impl Default for Management {
    fn default() -> Management {
        Management {
            usb_enabled: CAPABILITIES,
            nfc_enabled: CAPABILITIES,
            auto_eject_timeout: 0,
            chalresp_timeout: 15,
            device_flags: 0,
            lock_code: None,
        }
    }
}

impl Management {
    /// Whether the applet named `name` (`Applet::name`) answers SELECT.
    /// Clients reach this key over USB (its reader is named like a USB
    /// YubiKey), so the USB set decides. The Management applet itself
    /// always answers: on a real key ykman would reach it over the OTP or
    /// FIDO interface when CCID applications are all disabled, but this key
    /// has no other interface, and its configuration must stay reachable.
    pub fn enabled(&self, name: &str) -> bool {
        match name {
            "piv" => self.usb_enabled & CAP_PIV != 0,
            "oath" => self.usb_enabled & CAP_OATH != 0,
            _ => true,
        }
    }

    /// DeviceInfo in the tag order a real 5.4.3 key uses, behind the
    /// one-byte total length yubikit checks.
    fn device_info(&self, env: &Env<'_>) -> Vec<u8> {
        let mut body = Vec::new();
        tlv::put(&mut body, &[0x01], &CAPABILITIES.to_be_bytes()); // USB supported
        tlv::put(
            &mut body,
            &[TAG_USB_ENABLED],
            &self.usb_enabled.to_be_bytes(),
        );
        tlv::put(&mut body, &[0x02], &env.serial.to_be_bytes());
        tlv::put(&mut body, &[0x04], &[FORM_FACTOR_USB_A_KEYCHAIN]);
        tlv::put(&mut body, &[0x05], &env.version);
        tlv::put(
            &mut body,
            &[TAG_AUTO_EJECT_TIMEOUT],
            &self.auto_eject_timeout.to_be_bytes(),
        );
        tlv::put(&mut body, &[TAG_CHALRESP_TIMEOUT], &[self.chalresp_timeout]); // seconds
        tlv::put(&mut body, &[TAG_DEVICE_FLAGS], &[self.device_flags]);
        tlv::put(&mut body, &[0x0D], &CAPABILITIES.to_be_bytes()); // NFC supported
        tlv::put(
            &mut body,
            &[TAG_NFC_ENABLED],
            &self.nfc_enabled.to_be_bytes(),
        );
        let locked = u8::from(self.lock_code.is_some());
        tlv::put(&mut body, &[TAG_CONFIG_LOCK], &[locked]);
        tlv::put(&mut body, &[0x0F], &[0x00]); // IAP detection off
        if env.pin_complexity {
            tlv::put(&mut body, &[TAG_PIN_COMPLEXITY], &[0x01]);
        }
        let mut out = vec![body.len() as u8];
        out.extend_from_slice(&body);
        out
    }

    /// WRITE CONFIG: `LEN || TLVs` (yubikit's `DeviceConfig.get_bytes`).
    /// Everything is checked before anything changes, so a refused command
    /// leaves the configuration as it was.
    fn write_config(&mut self, data: &[u8], env: &mut Env<'_>) -> Reply {
        let Some((&len, body)) = data.split_first() else {
            return Reply::sw(sw::WRONG_LENGTH);
        };
        if len as usize != body.len() {
            return Reply::sw(sw::WRONG_LENGTH);
        }
        let tlvs = match tlv::parse(body) {
            Ok(t) => t,
            Err(code) => return Reply::sw(code),
        };
        let mut next = self.clone();
        let mut unlock = None;
        for t in &tlvs {
            let v = t.value;
            let ok = match t.tag as u8 {
                TAG_USB_ENABLED | TAG_NFC_ENABLED if v.len() == 2 => {
                    // Only what this model has can be enabled.
                    let caps = u16::from_be_bytes([v[0], v[1]]) & CAPABILITIES;
                    if t.tag as u8 == TAG_USB_ENABLED {
                        next.usb_enabled = caps;
                    } else {
                        next.nfc_enabled = caps;
                    }
                    true
                }
                TAG_AUTO_EJECT_TIMEOUT if v.len() == 2 => {
                    next.auto_eject_timeout = u16::from_be_bytes([v[0], v[1]]);
                    true
                }
                TAG_CHALRESP_TIMEOUT if v.len() == 1 => {
                    next.chalresp_timeout = v[0];
                    true
                }
                TAG_DEVICE_FLAGS if v.len() == 1 => {
                    next.device_flags = v[0];
                    true
                }
                TAG_CONFIG_LOCK if v.len() == LOCK_CODE_LEN => {
                    next.lock_code = v.iter().any(|&b| b != 0).then(|| v.to_vec());
                    true
                }
                TAG_UNLOCK if v.len() == LOCK_CODE_LEN => {
                    unlock = Some(v);
                    true
                }
                // A real key re-enumerates on USB after answering; this one
                // has applied the change already and stays in its reader.
                TAG_REBOOT if v.is_empty() => true,
                _ => false,
            };
            if !ok {
                return Reply::sw(sw::INCORRECT_DATA);
            }
        }
        let unlocked = match (&self.lock_code, unlock) {
            (Some(code), Some(given)) => code.as_slice() == given,
            (Some(_), None) => false,
            // Yubico: on an unlocked key an unlock code must be all zeros
            // (YubiKeyDevice.UnlockConfiguration, .NET SDK).
            (None, Some(given)) => given.iter().all(|&b| b == 0),
            (None, None) => true,
        };
        if !unlocked {
            return Reply::sw(SW_WRONG_LOCK_CODE);
        }
        *self = next;
        env.mark_dirty();
        Reply::empty()
    }
}

impl Applet for Management {
    fn name(&self) -> &'static str {
        "mgmt"
    }
    fn aid(&self) -> &'static [u8] {
        AID
    }
    fn select(&mut self, env: &mut Env<'_>) -> Reply {
        // yubikit finds the version in this string (`\b\d+.\d.\d\b`).
        let [a, b, c] = env.version;
        Reply::ok(format!("{a}.{b}.{c}").into_bytes())
    }
    fn deselect(&mut self) {}
    fn process(&mut self, cmd: &Command, env: &mut Env<'_>) -> Reply {
        match cmd.ins {
            // READ CONFIG. P1 is the page from 5.6 on; this key has one page
            // and no `10` more-data tag, so yubikit never asks for another.
            0x1D if cmd.p1 == 0 => Reply::ok(self.device_info(env)),
            0x1D => Reply::sw(sw::INCORRECT_P1P2),
            // WRITE CONFIG (yubikit: `00 1C 00 00`).
            0x1C => self.write_config(&cmd.data, env),
            // SET MODE is for keys before 5.0 (yubikit writes the config
            // instead on 5.x); DEVICE RESET is YubiKey Bio's only.
            0x16 | 0x1F => Reply::sw(sw::CONDITIONS_NOT_SATISFIED),
            _ => Reply::sw(sw::INS_NOT_SUPPORTED),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TAG_PIN_COMPLEXITY;
    use crate::card::{Card, DeviceState};
    use crate::control::Controls;
    use crate::log::ApduLog;
    use crate::tlv;
    use std::time::Duration;

    #[test]
    fn device_info_of_5_7_4_with_pin_complexity() {
        let dir = tempfile::tempdir().unwrap();
        let root = crate::attest::TestRoot::load_or_create(dir.path()).unwrap();
        let mut state = DeviceState::factory_with_firmware(1, [5, 7, 4], &root);
        for complexity in [false, true] {
            state.pin_complexity = complexity;
            let mut card = Card::new(
                state.clone(),
                None,
                Controls::new(Duration::from_millis(100)),
                ApduLog::disabled(),
            );
            card.transmit(&[0, 0xA4, 4, 0, 8, 0xA0, 0, 0, 5, 0x27, 0x47, 0x11, 0x17])
                .unwrap();
            let info = card.transmit(&[0, 0x1D, 0, 0]).unwrap();
            let body = &info[1..info.len() - 2];
            let items = tlv::parse(body).unwrap();
            assert_eq!(tlv::find(&items, 0x05), Some(&[5u8, 7, 4][..]));
            let flag = tlv::find(&items, u16::from(TAG_PIN_COMPLEXITY));
            assert_eq!(flag, complexity.then_some(&[1u8][..]));
        }
    }

    #[test]
    fn device_info_matches_a_real_5_4_3_key() {
        let dir = tempfile::tempdir().unwrap();
        let root = crate::attest::TestRoot::load_or_create(dir.path()).unwrap();
        let mut card = Card::new(
            DeviceState::factory(0x00F6_2CA8, &root),
            None,
            Controls::new(Duration::from_millis(100)),
            ApduLog::disabled(),
        );
        let select = card
            .transmit(&[0, 0xA4, 4, 0, 8, 0xA0, 0, 0, 5, 0x27, 0x47, 0x11, 0x17])
            .unwrap();
        assert_eq!(select, b"5.4.3\x90\x00");
        // ykman 5.9 sends READ CONFIG as a case-1 APDU.
        let info = card.transmit(&[0, 0x1D, 0, 0]).unwrap();
        // A real YubiKey 5 NFC 5.4.3's DeviceInfo (as published in a ykinfo
        // wrapper script's example), with the serial used above.
        let real = "2e0102033f0302033f020400f62ca804010105030504030602000007010f080100\
                    0d02033f0e02033f0a01000f0100";
        assert_eq!(hex::encode(&info[..info.len() - 2]), real);
        assert_eq!(&info[info.len() - 2..], [0x90, 0x00]);
        assert_eq!(card.transmit(&[0, 0x1D, 1, 0]).unwrap(), [0x6A, 0x86]);
    }
}
