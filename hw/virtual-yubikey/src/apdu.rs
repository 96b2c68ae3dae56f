//! ISO 7816-4 command and response APDUs, parsed the way a YubiKey 5 does.

/// Status words a YubiKey answers with. Named after what clients do with them.
pub mod sw {
    pub const OK: u16 = 0x9000;
    /// `61xx`: more response data; the client sends GET RESPONSE / SEND REMAINING.
    pub const MORE_DATA: u16 = 0x6100;
    /// `63Cx`: wrong PIN/PUK, `x` tries left.
    pub const VERIFY_FAIL: u16 = 0x63C0;
    pub const WRONG_LENGTH: u16 = 0x6700;
    /// Security status not satisfied: PIN, management key, OATH password, or touch timeout.
    pub const SECURITY_STATUS: u16 = 0x6982;
    /// Authentication method blocked (PIN or PUK at 0 tries).
    pub const AUTH_BLOCKED: u16 = 0x6983;
    /// Reference data not usable (OATH: no such credential; PIV: bad witness).
    pub const DATA_INVALID: u16 = 0x6984;
    pub const CONDITIONS_NOT_SATISFIED: u16 = 0x6985;
    pub const INCORRECT_DATA: u16 = 0x6A80;
    pub const FUNC_NOT_SUPPORTED: u16 = 0x6A81;
    pub const FILE_NOT_FOUND: u16 = 0x6A82;
    pub const NO_SPACE: u16 = 0x6A84;
    pub const INCORRECT_P1P2: u16 = 0x6A86;
    pub const REF_NOT_FOUND: u16 = 0x6A88;
    pub const INS_NOT_SUPPORTED: u16 = 0x6D00;
    pub const CLA_NOT_SUPPORTED: u16 = 0x6E00;
    pub const WRONG_DATA_LAST_CMD: u16 = 0x6F00;
}

/// A parsed command APDU. `data` holds the whole (possibly chained) body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: Vec<u8>,
    /// Expected response length; `None` when absent (case 1/3).
    pub le: Option<usize>,
    /// The command used extended-length encoding, so the answer may be long too.
    pub extended: bool,
}

impl Command {
    /// Command chaining bit (CLA 0x10): more data follows in the next APDU.
    pub fn is_chained(&self) -> bool {
        self.cla & 0x10 != 0
    }

    /// Parses short and extended APDUs of cases 1–4.
    ///
    /// Real clients send `00 FD 00 00 00` (a case-2 APDU whose Le byte is 0,
    /// meaning 256) and some send an Lc of 0 with no data; both must be read
    /// as "no data".
    pub fn parse(raw: &[u8]) -> Result<Command, u16> {
        if raw.len() < 4 {
            return Err(sw::WRONG_LENGTH);
        }
        let (cla, ins, p1, p2) = (raw[0], raw[1], raw[2], raw[3]);
        let body = &raw[4..];
        let mut cmd = Command {
            cla,
            ins,
            p1,
            p2,
            data: Vec::new(),
            le: None,
            extended: false,
        };
        match body.len() {
            0 => {}
            1 => cmd.le = Some(if body[0] == 0 { 256 } else { body[0] as usize }),
            _ if body[0] == 0 && body.len() >= 3 => {
                // Extended length: 00 Lc1 Lc2 data [Le1 Le2] or 00 Le1 Le2.
                cmd.extended = true;
                let n = u16::from_be_bytes([body[1], body[2]]) as usize;
                if body.len() == 3 {
                    cmd.le = Some(if n == 0 { 65536 } else { n });
                } else {
                    let rest = &body[3..];
                    if rest.len() < n {
                        return Err(sw::WRONG_LENGTH);
                    }
                    cmd.data = rest[..n].to_vec();
                    match rest.len() - n {
                        0 => {}
                        2 => {
                            let le = u16::from_be_bytes([rest[n], rest[n + 1]]) as usize;
                            cmd.le = Some(if le == 0 { 65536 } else { le });
                        }
                        _ => return Err(sw::WRONG_LENGTH),
                    }
                }
            }
            _ => {
                let n = body[0] as usize;
                let rest = &body[1..];
                if rest.len() < n {
                    return Err(sw::WRONG_LENGTH);
                }
                cmd.data = rest[..n].to_vec();
                match rest.len() - n {
                    0 => {}
                    1 => cmd.le = Some(if rest[n] == 0 { 256 } else { rest[n] as usize }),
                    _ => return Err(sw::WRONG_LENGTH),
                }
            }
        }
        Ok(cmd)
    }
}

/// A response: data and status word, before the ISO layer splits long data
/// into `61xx` chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub data: Vec<u8>,
    pub sw: u16,
}

impl Reply {
    pub fn ok(data: Vec<u8>) -> Reply {
        Reply { data, sw: sw::OK }
    }
    pub fn empty() -> Reply {
        Reply::ok(Vec::new())
    }
    pub fn sw(sw: u16) -> Reply {
        Reply {
            data: Vec::new(),
            sw,
        }
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.data.clone();
        out.extend_from_slice(&self.sw.to_be_bytes());
        out
    }
}

impl From<u16> for Reply {
    fn from(sw: u16) -> Reply {
        Reply::sw(sw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case2_with_le_zero_means_256_and_no_data() {
        let c = Command::parse(&[0x00, 0xFD, 0x00, 0x00, 0x00]).unwrap();
        assert!(c.data.is_empty());
        assert_eq!(c.le, Some(256));
        assert!(!c.extended);
    }

    #[test]
    fn case4_short() {
        let c = Command::parse(&[0x00, 0xA4, 0x04, 0x00, 0x02, 0xAA, 0xBB, 0x00]).unwrap();
        assert_eq!(c.data, vec![0xAA, 0xBB]);
        assert_eq!(c.le, Some(256));
    }

    #[test]
    fn case3_extended() {
        let c = Command::parse(&[0x00, 0xDB, 0x3F, 0xFF, 0x00, 0x00, 0x02, 0x01, 0x02]).unwrap();
        assert!(c.extended);
        assert_eq!(c.data, vec![1, 2]);
        assert_eq!(c.le, None);
    }

    #[test]
    fn case4_extended() {
        let c = Command::parse(&[0, 0xCB, 0x3F, 0xFF, 0, 0, 1, 0x7E, 0, 0]).unwrap();
        assert!(c.extended);
        assert_eq!(c.data, vec![0x7E]);
        assert_eq!(c.le, Some(65536));
    }

    #[test]
    fn truncated_data_is_wrong_length() {
        assert_eq!(
            Command::parse(&[0, 0x20, 0, 0x80, 8, 1, 2]),
            Err(sw::WRONG_LENGTH)
        );
        assert_eq!(Command::parse(&[0, 0x20]), Err(sw::WRONG_LENGTH));
    }
}
