//! The Management applet, read-only: enough DeviceInfo for `ykman info`
//! to recognise a YubiKey 5 NFC.

use crate::apdu::{sw, Command, Reply};
use crate::card::{Applet, Env};
use crate::tlv;

pub const AID: &[u8] = &[0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17];

/// Capability bits as yubikit defines them.
const CAP_OTP: u16 = 0x01;
const CAP_U2F: u16 = 0x02;
const CAP_OPENPGP: u16 = 0x08;
const CAP_PIV: u16 = 0x10;
const CAP_OATH: u16 = 0x20;
const CAP_HSMAUTH: u16 = 0x100;
const CAP_FIDO2: u16 = 0x200;

/// What a YubiKey 5 NFC on firmware 5.4 ships with. Only PIV and OATH are
/// emulated; the rest is reported so clients identify the model correctly
/// (hw/README.md says which applets answer).
const CAPABILITIES: u16 = CAP_OTP | CAP_U2F | CAP_OPENPGP | CAP_PIV | CAP_OATH | CAP_FIDO2;
const _: u16 = CAP_HSMAUTH;

/// Form factor 0x01: USB-A keychain.
const FORM_FACTOR_USB_A_KEYCHAIN: u8 = 0x01;

#[derive(Debug, Default)]
pub struct Management;

impl Management {
    fn device_info(env: &Env<'_>) -> Vec<u8> {
        let mut body = Vec::new();
        tlv::put(&mut body, &[0x01], &CAPABILITIES.to_be_bytes()); // USB supported
        tlv::put(&mut body, &[0x02], &env.serial.to_be_bytes());
        tlv::put(&mut body, &[0x03], &CAPABILITIES.to_be_bytes()); // USB enabled
        tlv::put(&mut body, &[0x04], &[FORM_FACTOR_USB_A_KEYCHAIN]);
        tlv::put(&mut body, &[0x05], &env.version);
        tlv::put(&mut body, &[0x06], &0u16.to_be_bytes()); // auto-eject timeout
        tlv::put(&mut body, &[0x07], &[15]); // challenge-response timeout
        tlv::put(&mut body, &[0x08], &[0x00]); // device flags
        tlv::put(&mut body, &[0x0A], &[0x00]); // configuration not locked
        tlv::put(&mut body, &[0x0D], &CAPABILITIES.to_be_bytes()); // NFC supported
        tlv::put(&mut body, &[0x0E], &CAPABILITIES.to_be_bytes()); // NFC enabled
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
        // yubikit parses the version out of this string.
        let [a, b, c] = env.version;
        Reply::ok(format!("{a}.{b}.{c}").into_bytes())
    }
    fn deselect(&mut self) {}
    fn process(&mut self, cmd: &Command, env: &mut Env<'_>) -> Reply {
        match cmd.ins {
            // READ CONFIG; P1 is the page on 5.6+, and this key has one page.
            0x1D if cmd.p1 == 0 => Reply::ok(Self::device_info(env)),
            0x1D => Reply::sw(sw::INCORRECT_P1P2),
            // WRITE CONFIG, SET MODE, DEVICE RESET: the emulated key is read-only here.
            0x1C | 0x16 | 0x1F => Reply::sw(sw::CONDITIONS_NOT_SATISFIED),
            _ => Reply::sw(sw::INS_NOT_SUPPORTED),
        }
    }
}
