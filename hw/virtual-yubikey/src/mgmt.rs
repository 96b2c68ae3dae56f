//! The Management applet, read-only: enough DeviceInfo for `ykman info`
//! to recognise a YubiKey 5 NFC.

use crate::apdu::{sw, Command, Reply};
use crate::card::{Applet, Env};
use crate::tlv;

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

#[derive(Debug, Default)]
pub struct Management;

impl Management {
    /// DeviceInfo in the tag order a real 5.4.3 key uses, behind the
    /// one-byte total length yubikit checks.
    fn device_info(env: &Env<'_>) -> Vec<u8> {
        let mut body = Vec::new();
        tlv::put(&mut body, &[0x01], &CAPABILITIES.to_be_bytes()); // USB supported
        tlv::put(&mut body, &[0x03], &CAPABILITIES.to_be_bytes()); // USB enabled
        tlv::put(&mut body, &[0x02], &env.serial.to_be_bytes());
        tlv::put(&mut body, &[0x04], &[FORM_FACTOR_USB_A_KEYCHAIN]);
        tlv::put(&mut body, &[0x05], &env.version);
        tlv::put(&mut body, &[0x06], &0u16.to_be_bytes()); // auto-eject timeout
        tlv::put(&mut body, &[0x07], &[15]); // challenge-response timeout, seconds
        tlv::put(&mut body, &[0x08], &[0x00]); // device flags
        tlv::put(&mut body, &[0x0D], &CAPABILITIES.to_be_bytes()); // NFC supported
        tlv::put(&mut body, &[0x0E], &CAPABILITIES.to_be_bytes()); // NFC enabled
        tlv::put(&mut body, &[0x0A], &[0x00]); // configuration not locked
        tlv::put(&mut body, &[0x0F], &[0x00]); // IAP detection off
        let mut out = vec![body.len() as u8];
        out.extend_from_slice(&body);
        out
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
            0x1D if cmd.p1 == 0 => Reply::ok(Self::device_info(env)),
            0x1D => Reply::sw(sw::INCORRECT_P1P2),
            // WRITE CONFIG, SET MODE, DEVICE RESET: the emulated key is read-only here.
            0x1C | 0x16 | 0x1F => Reply::sw(sw::CONDITIONS_NOT_SATISFIED),
            _ => Reply::sw(sw::INS_NOT_SUPPORTED),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::card::{Card, DeviceState};
    use crate::control::Controls;
    use crate::log::ApduLog;
    use std::time::Duration;

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
