//! The PIV applet (NIST SP 800-73 with Yubico's extensions).

use crate::apdu::{sw, Command, Reply};
use crate::card::{Applet, Env};
use serde::{Deserialize, Serialize};

pub const AID: &[u8] = &[
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Piv {}

impl Piv {
    pub fn factory(_serial: u32, _version: [u8; 3], _root: &crate::attest::TestRoot) -> Piv {
        Piv {}
    }
}

impl Applet for Piv {
    fn name(&self) -> &'static str {
        "piv"
    }
    fn aid(&self) -> &'static [u8] {
        AID
    }
    fn select(&mut self, _env: &mut Env<'_>) -> Reply {
        Reply::empty()
    }
    fn deselect(&mut self) {}
    fn process(&mut self, _cmd: &Command, _env: &mut Env<'_>) -> Reply {
        Reply::sw(sw::INS_NOT_SUPPORTED)
    }
}
