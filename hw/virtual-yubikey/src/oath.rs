//! The YKOATH applet.

use crate::apdu::{sw, Command, Reply};
use crate::card::{Applet, Env};
use serde::{Deserialize, Serialize};

pub const AID: &[u8] = &[0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01, 0x01];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Oath {}

impl Oath {
    pub fn factory() -> Oath {
        Oath {}
    }
}

impl Applet for Oath {
    fn name(&self) -> &'static str {
        "oath"
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
