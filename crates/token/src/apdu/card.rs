//! One connected YubiKey: identified, used in transactions, and never left reset.

use super::identity::identified;
use super::{
    remember_identity, split_answer, tlv, transmit_with, Apdu, MoreData, Response, Sw, TokenError,
    MANAGEMENT_AID, PIV_AID, RECV_BUF,
};
use std::ffi::CStr;
use std::fmt;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

const INS_SELECT: u8 = 0xA4;
const INS_READ_CONFIG: u8 = 0x1D;
const INS_PIV_GET_VERSION: u8 = 0xFD;
const INS_PIV_GET_SERIAL: u8 = 0xF8;
/// DeviceInfo tags (yubikit `TAG_SERIAL`, `TAG_FIRMWARE_VERSION`).
const DEVICE_INFO_SERIAL: u32 = 0x02;
const DEVICE_INFO_VERSION: u32 = 0x05;
/// How long pcscd may take to notice a card is gone (it polls readers,
/// about every 0.35 s with vpcd).
const REMOVAL_GRACE: Duration = Duration::from_secs(1);

/// A YubiKey's firmware version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub [u8; 3]);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c] = self.0;
        write!(f, "{a}.{b}.{c}")
    }
}

impl Version {
    fn from_slice(v: &[u8]) -> Option<Version> {
        <[u8; 3]>::try_from(v).ok().map(Version)
    }
}

/// What `vault hw status` shows of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub reader: String,
    /// `None` when the key hides it (and PIV does not tell either).
    pub serial: Option<u32>,
    pub version: Option<Version>,
}

/// A YubiKey connected in shared mode over T=1. Dropping it disconnects
/// with `LeaveCard`, so PIN and touch state survive for the next program.
pub struct Connected {
    card: Option<pcsc::Card>,
    info: KeyInfo,
}

impl Connected {
    /// Connects to the card in `reader` and identifies it (serial, version)
    /// through the Management applet, or PIV where that is absent. With
    /// `insertion` (pcscd's event count of the reader, read before this
    /// call), a card this process already identified in that insertion is
    /// not asked again, and one identified now is remembered.
    pub fn open(
        ctx: &pcsc::Context,
        reader: &CStr,
        insertion: Option<u32>,
    ) -> Result<Connected, TokenError> {
        let name = reader.to_string_lossy().into_owned();
        let card = ctx
            .connect(reader, pcsc::ShareMode::Shared, pcsc::Protocols::T1)
            .map_err(|e| match e {
                pcsc::Error::SharingViolation => TokenError::Busy {
                    reader: name.clone(),
                },
                e => TokenError::from_pcsc(e, "connecting", None),
            })?;
        let mut conn = Connected {
            card: Some(card),
            info: KeyInfo {
                reader: name,
                serial: None,
                version: None,
            },
        };
        let known = insertion.and_then(|n| identified(reader, n));
        let (serial, version) = match known {
            Some((serial, version)) => (Some(serial), version),
            None => {
                let tx = conn.transaction()?;
                identify(&tx)?
            }
        };
        if let (Some(n), Some(s), None) = (insertion, serial, known) {
            remember_identity(reader, n, s, version);
        }
        conn.info.serial = serial;
        conn.info.version = version;
        Ok(conn)
    }

    pub fn info(&self) -> &KeyInfo {
        &self.info
    }

    pub fn serial(&self) -> Option<u32> {
        self.info.serial
    }

    /// Exclusive use of the card until the transaction is dropped (ended
    /// with `LeaveCard`): no other program can select another applet in
    /// the middle of ours.
    pub fn transaction(&mut self) -> Result<Transaction<'_>, TokenError> {
        let serial = self.info.serial;
        let card = self.card.as_mut().ok_or(TokenError::Removed { serial })?;
        match card.transaction2() {
            Ok(tx) => Ok(Transaction { tx, serial }),
            // Another program reset the card since we connected: our handle
            // must acknowledge that before it can be used again.
            Err((card, pcsc::Error::ResetCard)) => {
                log::debug!(target: "vault", "card was reset by another program; reconnecting");
                card.reconnect(
                    pcsc::ShareMode::Shared,
                    pcsc::Protocols::T1,
                    pcsc::Disposition::LeaveCard,
                )
                .map_err(|e| TokenError::from_pcsc(e, "reconnecting", serial))?;
                let tx = card
                    .transaction()
                    .map_err(|e| TokenError::from_pcsc(e, "beginning a transaction", serial))?;
                Ok(Transaction { tx, serial })
            }
            Err((_, e)) => Err(TokenError::from_pcsc(e, "beginning a transaction", serial)),
        }
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        if let Some(card) = self.card.take() {
            if let Err((card, e)) = card.disconnect(pcsc::Disposition::LeaveCard) {
                log::debug!(target: "vault", "disconnecting from {:?}: {e}", self.info.reader);
                // Dropping it would reset the card; leaking the handle does
                // not, and pcscd frees it when this process exits.
                std::mem::forget(card);
            }
        }
    }
}

/// A PC/SC transaction on a connected card: where APDUs are sent.
pub struct Transaction<'a> {
    tx: pcsc::Transaction<'a>,
    serial: Option<u32>,
}

impl Transaction<'_> {
    pub fn serial(&self) -> Option<u32> {
        self.serial
    }

    /// Sends `apdu` and returns the whole answer: a chained command's parts
    /// must each be accepted with `9000`, and `61xx` is followed with
    /// `more` until the card has nothing left.
    pub fn transmit(&self, apdu: &Apdu, more: MoreData) -> Result<Response, TokenError> {
        transmit_with(apdu, more, |raw, buf| {
            self.exchange(apdu.op, raw, buf)
                .map(|(data, sw)| (data.len(), sw))
        })
    }

    /// One short APDU out, one answer back, split into data and status.
    fn exchange<'b>(
        &self,
        op: &'static str,
        raw: &[u8],
        buf: &'b mut [u8; RECV_BUF],
    ) -> Result<(&'b [u8], Sw), TokenError> {
        let answer = match self.tx.transmit(raw, &mut buf[..]) {
            Ok(a) => a,
            Err(e) => return Err(self.transmit_error(e, op)),
        };
        let Some((data, sw)) = split_answer(answer) else {
            // pcscd hands back an empty answer when the reader lost the card
            // mid-command (vpcd does when a key is pulled).
            if self.card_gone() {
                return Err(TokenError::Removed {
                    serial: self.serial,
                });
            }
            return Err(TokenError::Malformed {
                op,
                what: "answer shorter than a status word",
            });
        };
        Ok((data, sw))
    }

    /// A failed transmit: when the card is gone that is what the user must
    /// hear, whichever error pcscd chose to report it with (a key pulled
    /// mid-command tends to come back as a communication error).
    fn transmit_error(&self, e: pcsc::Error, op: &'static str) -> TokenError {
        let err = TokenError::from_pcsc(e, op, self.serial);
        if let TokenError::Pcsc { .. } = err {
            if self.card_gone() {
                return TokenError::Removed {
                    serial: self.serial,
                };
            }
        }
        err
    }

    /// Whether the card left the reader (or was reset), after giving
    /// pcscd, which notices removals by polling, a moment to see it.
    fn card_gone(&self) -> bool {
        let deadline = Instant::now() + REMOVAL_GRACE;
        loop {
            match self.tx.status2_owned() {
                Ok(st) if st.status().contains(pcsc::Status::PRESENT) => {}
                _ => return true,
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SELECT by AID.
    pub fn select(
        &self,
        op: &'static str,
        aid: &[u8],
        more: MoreData,
    ) -> Result<Response, TokenError> {
        let apdu = Apdu::new(op, INS_SELECT, 0x04, 0x00).data(Zeroizing::new(aid.to_vec()));
        self.transmit(&apdu, more)
    }
}

/// The card's serial and firmware version, read without touching PIV or
/// OATH state beyond selecting another applet: Management's DeviceInfo,
/// or PIV's GET VERSION / GET SERIAL where Management is absent or hides
/// the serial.
fn identify(tx: &Transaction<'_>) -> Result<(Option<u32>, Option<Version>), TokenError> {
    const OP: &str = "Management READ CONFIG";
    let mut serial = None;
    let mut version = None;
    if tx
        .select("Management SELECT", MANAGEMENT_AID, MoreData::GetResponse)?
        .sw
        == Sw::Ok
    {
        let read = Apdu::new(OP, INS_READ_CONFIG, 0, 0).le(0);
        let resp = tx.transmit(&read, MoreData::GetResponse)?;
        if resp.sw == Sw::Ok {
            let (s, v) = parse_device_info(&resp.data).map_err(|e| TokenError::malformed(OP, e))?;
            serial = s;
            version = v;
        }
    }
    if serial.is_some() {
        return Ok((serial, version));
    }
    if tx.select("PIV SELECT", PIV_AID, MoreData::GetResponse)?.sw == Sw::Ok {
        let get = Apdu::new("PIV GET VERSION", INS_PIV_GET_VERSION, 0, 0).le(0);
        let resp = tx.transmit(&get, MoreData::GetResponse)?;
        if resp.sw == Sw::Ok && version.is_none() {
            version = Version::from_slice(&resp.data);
        }
        let get = Apdu::new("PIV GET SERIAL", INS_PIV_GET_SERIAL, 0, 0).le(0);
        let resp = tx.transmit(&get, MoreData::GetResponse)?;
        if resp.sw == Sw::Ok {
            serial = <[u8; 4]>::try_from(&resp.data[..])
                .ok()
                .map(u32::from_be_bytes);
        }
    }
    Ok((serial, version))
}

/// DeviceInfo: one length byte, then TLVs (yubikit `DeviceInfo.parse`).
pub fn parse_device_info(data: &[u8]) -> Result<(Option<u32>, Option<Version>), tlv::Malformed> {
    let (&len, body) = data
        .split_first()
        .ok_or(tlv::Malformed("empty DeviceInfo"))?;
    let body = body
        .get(..len as usize)
        .ok_or(tlv::Malformed("DeviceInfo shorter than its length byte"))?;
    let tlvs = tlv::parse(body)?;
    let serial = match tlv::find(&tlvs, DEVICE_INFO_SERIAL) {
        None => None,
        Some(v) => Some(u32::from_be_bytes(
            <[u8; 4]>::try_from(v).map_err(|_| tlv::Malformed("serial is not 4 bytes"))?,
        )),
    };
    let version = tlv::find(&tlvs, DEVICE_INFO_VERSION).and_then(Version::from_slice);
    Ok((serial, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_info_of_a_real_5_4_3_key() {
        // As published for a YubiKey 5 NFC (see hw/virtual-yubikey/src/mgmt.rs).
        let info = hex::decode(
            "2e0102033f0302033f020400f62ca804010105030504030602000007010f080100\
             0d02033f0e02033f0a01000f0100",
        )
        .unwrap();
        let (serial, version) = parse_device_info(&info).unwrap();
        assert_eq!(serial, Some(0x00F6_2CA8));
        assert_eq!(version, Some(Version([5, 4, 3])));
        assert_eq!(version.unwrap().to_string(), "5.4.3");
        assert!(parse_device_info(&info[..10]).is_err());
        assert!(parse_device_info(&[]).is_err());
        assert!(parse_device_info(&[3, 0x02, 0x01, 0x05]).is_err());
    }
}
