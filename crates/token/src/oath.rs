//! The YubiKey's OATH applet (YKOATH): vault's MFA codes are computed on
//! the key, from a TOTP seed that never leaves it, after a touch.
//!
//! The byte-level protocol lives here and nowhere else. Sources: Yubico's
//! YKOATH description and yubikit (`yubikit/oath.py`), which ykman uses; the
//! rig's virtual key answers as a 5.4.3 firmware does
//! (`hw/virtual-yubikey/src/oath.rs`).
//!
//! Credential names are the caller's: the applet knows nothing of AWS, and
//! vault-aws names a credential after the MFA device it stands for.

use super::apdu::{
    self, establish, find_by_serial, tlv, Apdu, Connected, MoreData, Sw, TokenError, Transaction,
    Version,
};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use std::time::Duration;
use vault_base::secret::{MfaCode, Passphrase, SecretBytes};
use zeroize::Zeroizing;

/// YKOATH's AID (ykman selects these 7 bytes; the card matches the prefix).
pub const AID: &[u8] = &[0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01];
/// The longest name the applet stores.
pub const MAX_NAME_LEN: usize = 64;
/// ykman pads shorter keys with zeros to this length (`HMAC_MINIMUM_KEY_SIZE`);
/// HMAC pads with zeros anyway, so the codes do not change.
const MIN_KEY_LEN: usize = 14;
/// YKOATH passwords: PBKDF2-HMAC-SHA1 over the SELECT salt, as ykman derives them.
const PBKDF2_ROUNDS: u32 = 1000;
const ACCESS_KEY_LEN: usize = 16;
const HOST_CHALLENGE_LEN: usize = 8;

/// How long a CALCULATE may take before vault concludes the key waits for
/// a touch and tells the user. An untouched credential answers in a few ms
/// (about 40 ms through the rig's vpcd).
pub const TOUCH_NOTICE_AFTER: Duration = Duration::from_millis(300);

mod tag {
    pub const NAME: u32 = 0x71;
    pub const NAME_LIST: u32 = 0x72;
    pub const KEY: u32 = 0x73;
    pub const CHALLENGE: u32 = 0x74;
    pub const RESPONSE: u32 = 0x75;
    pub const TRUNCATED: u32 = 0x76;
    /// In PUT: followed by one property byte and **no length**.
    pub const PROPERTY: u8 = 0x78;
    pub const VERSION: u32 = 0x79;
    pub const ALGORITHM: u32 = 0x7B;
}

mod ins {
    pub const PUT: u8 = 0x01;
    pub const DELETE: u8 = 0x02;
    pub const LIST: u8 = 0xA1;
    pub const CALCULATE: u8 = 0xA2;
    pub const VALIDATE: u8 = 0xA3;
}

const TYPE_HOTP: u8 = 0x10;
const TYPE_TOTP: u8 = 0x20;
const PROP_TOUCH: u8 = 0x02;

/// The hash of an OATH credential (and of the access key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    fn code(self) -> u8 {
        match self {
            Algorithm::Sha1 => 0x01,
            Algorithm::Sha256 => 0x02,
            Algorithm::Sha512 => 0x03,
        }
    }

    fn from_code(code: u8) -> Option<Algorithm> {
        match code & 0x0F {
            0x01 => Some(Algorithm::Sha1),
            0x02 => Some(Algorithm::Sha256),
            0x03 => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    fn block_size(self) -> usize {
        match self {
            Algorithm::Sha1 | Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    fn hmac(self, key: &[u8], msg: &[u8]) -> Result<Zeroizing<Vec<u8>>, TokenError> {
        fn run<M: Mac + hmac::digest::KeyInit>(
            key: &[u8],
            msg: &[u8],
        ) -> Result<Zeroizing<Vec<u8>>, TokenError> {
            let mut mac = <M as Mac>::new_from_slice(key)
                .map_err(|_| TokenError::InvalidCredential("unusable HMAC key".into()))?;
            mac.update(msg);
            Ok(Zeroizing::new(mac.finalize().into_bytes().to_vec()))
        }
        match self {
            Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, msg),
            Algorithm::Sha256 => run::<Hmac<Sha256>>(key, msg),
            Algorithm::Sha512 => run::<Hmac<Sha512>>(key, msg),
        }
    }

    /// The key as the card stores it, computing the same codes: hashed
    /// when longer than the hash's block size (as HMAC itself would), then
    /// padded with zeros to 14 bytes (as ykman does).
    fn card_key(self, secret: &[u8]) -> Zeroizing<Vec<u8>> {
        let mut key = Zeroizing::new(Vec::with_capacity(self.block_size().max(MIN_KEY_LEN)));
        if secret.len() > self.block_size() {
            match self {
                Algorithm::Sha1 => key.extend_from_slice(&sha1::Sha1::digest(secret)),
                Algorithm::Sha256 => key.extend_from_slice(&Sha256::digest(secret)),
                Algorithm::Sha512 => key.extend_from_slice(&Sha512::digest(secret)),
            }
        } else {
            key.extend_from_slice(secret);
        }
        if key.len() < MIN_KEY_LEN {
            key.resize(MIN_KEY_LEN, 0);
        }
        key
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OathType {
    Hotp,
    Totp,
}

/// A credential as LIST shows it (the applet does not say whether it
/// needs a touch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub name: String,
    pub oath_type: Option<OathType>,
    pub algorithm: Option<Algorithm>,
}

/// The OATH applet, selected, inside a PC/SC transaction: nothing else can
/// select another applet (and lose our validation) until it is dropped.
pub struct OathSession<'a> {
    tx: Transaction<'a>,
    version: Version,
    salt: Vec<u8>,
    /// The SELECT challenge, while a password is set and not yet given.
    challenge: Option<Vec<u8>>,
    access_algorithm: Algorithm,
}

impl<'a> OathSession<'a> {
    /// SELECTs the applet: version, salt, and whether a password is set
    /// (the answer then carries a challenge, `74`).
    pub fn select(conn: &'a mut Connected) -> Result<OathSession<'a>, TokenError> {
        const OP: &str = "OATH SELECT";
        let tx = conn.transaction()?;
        let resp = tx.select(OP, AID, MoreData::SendRemaining)?;
        match resp.sw {
            Sw::Ok => {}
            Sw::FileNotFound | Sw::InsNotSupported => {
                return Err(TokenError::NoApplet {
                    applet: "OATH",
                    serial: tx.serial(),
                })
            }
            sw => return Err(TokenError::Status { op: OP, sw }),
        }
        let SelectInfo {
            version,
            salt,
            challenge,
            access_algorithm,
        } = parse_select(&resp.data)?;
        Ok(OathSession {
            tx,
            version,
            salt,
            challenge,
            access_algorithm,
        })
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn serial(&self) -> Option<u32> {
        self.tx.serial()
    }

    /// The applet's id as ykman shows it (`ykman oath info`): base64 of the
    /// first 16 bytes of SHA-256 of the salt, unpadded. It changes when the
    /// applet is reset.
    pub fn device_id(&self) -> String {
        base64_unpadded(&Sha256::digest(&self.salt)[..16])
    }

    /// Whether the applet waits for [`validate`](Self::validate) before it
    /// does anything.
    pub fn is_locked(&self) -> bool {
        self.challenge.is_some()
    }

    fn unlocked(&self) -> Result<(), TokenError> {
        if self.is_locked() {
            return Err(TokenError::OathPasswordRequired {
                serial: self.serial(),
            });
        }
        Ok(())
    }

    /// Unlocks a password-protected applet: answers the card's challenge
    /// with HMAC(PBKDF2-HMAC-SHA1(password, salt, 1000, 16), challenge), and
    /// checks the card's answer to a challenge of ours, so a key that does
    /// not know the password cannot pretend. A no-op when no password is set.
    pub fn validate(&mut self, password: &Passphrase) -> Result<(), TokenError> {
        const OP: &str = "OATH VALIDATE";
        let Some(challenge) = self.challenge.clone() else {
            return Ok(());
        };
        let key = derive_access_key(password, &self.salt);
        let alg = self.access_algorithm;
        let response = alg.hmac(&key[..], &challenge)?;
        let host_challenge: [u8; HOST_CHALLENGE_LEN] = rand::random();
        let mut data = Zeroizing::new(Vec::with_capacity(160));
        tlv::put(&mut data, tag::RESPONSE, &response);
        tlv::put(&mut data, tag::CHALLENGE, &host_challenge);
        let apdu = Apdu::new(OP, ins::VALIDATE, 0, 0).data(data);
        let resp = self.tx.transmit(&apdu, MoreData::SendRemaining)?;
        let serial = self.serial();
        match resp.sw {
            Sw::Ok => {}
            // 6A80 is what YubiKeys (and ykman's check) use for a wrong
            // password; older applets were seen answering 6984.
            Sw::BadData | Sw::NotFound => return Err(TokenError::OathWrongPassword { serial }),
            sw => return Err(TokenError::Status { op: OP, sw }),
        }
        let theirs = parse_validate(&resp.data)?;
        let ours = alg.hmac(&key[..], &host_challenge)?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&ours[..], theirs)) {
            return Err(TokenError::OathCardAuthFailed { serial });
        }
        self.challenge = None;
        Ok(())
    }

    /// The credentials on the key, in the card's order.
    pub fn list(&self) -> Result<Vec<Credential>, TokenError> {
        const OP: &str = "OATH LIST";
        self.unlocked()?;
        let resp = self.transmit(Apdu::new(OP, ins::LIST, 0, 0))?;
        let data = resp.ok(OP)?;
        parse_list(&data).map_err(|what| TokenError::Malformed { op: OP, what })
    }

    /// Stores a TOTP credential (replacing one of the same name). With
    /// `touch`, every code needs a touch of the key.
    pub fn put(
        &self,
        name: &str,
        secret: &SecretBytes,
        algorithm: Algorithm,
        digits: u8,
        touch: bool,
    ) -> Result<(), TokenError> {
        const OP: &str = "OATH PUT";
        check_name(name)?;
        if !(6..=8).contains(&digits) {
            return Err(TokenError::InvalidCredential(format!(
                "{digits} digits: the key computes 6, 7 or 8"
            )));
        }
        if secret.expose().is_empty() {
            return Err(TokenError::InvalidCredential("the secret is empty".into()));
        }
        self.unlocked()?;
        let key = algorithm.card_key(secret.expose());
        let mut value = Zeroizing::new(Vec::with_capacity(2 + key.len()));
        value.extend_from_slice(&[TYPE_TOTP | algorithm.code(), digits]);
        value.extend_from_slice(&key);
        let mut data = Zeroizing::new(Vec::with_capacity(255));
        tlv::put(&mut data, tag::NAME, name.as_bytes());
        tlv::put(&mut data, tag::KEY, &value);
        if touch {
            data.extend_from_slice(&[tag::PROPERTY, PROP_TOUCH]);
        }
        let resp = self.transmit(Apdu::new(OP, ins::PUT, 0, 0).data(data))?;
        match resp.sw {
            Sw::Ok => Ok(()),
            Sw::NoSpace => Err(TokenError::NoSpace),
            Sw::SecurityStatus => Err(TokenError::OathPasswordRequired {
                serial: self.serial(),
            }),
            Sw::BadData => Err(TokenError::InvalidCredential(
                "the YubiKey refused the credential".into(),
            )),
            sw => Err(TokenError::Status { op: OP, sw }),
        }
    }

    pub fn delete(&self, name: &str) -> Result<(), TokenError> {
        const OP: &str = "OATH DELETE";
        check_name(name)?;
        self.unlocked()?;
        let data = Zeroizing::new(tlv::encode(tag::NAME, name.as_bytes()));
        let resp = self.transmit(Apdu::new(OP, ins::DELETE, 0, 0).data(data))?;
        match resp.sw {
            Sw::Ok => Ok(()),
            Sw::NotFound => Err(TokenError::NoSuchCredential(name.to_string())),
            sw => Err(TokenError::Status { op: OP, sw }),
        }
    }

    /// The code of TOTP credential `name` for `time_step` (unix time / 30).
    /// A touch-required credential blocks here until the key is touched;
    /// when nobody does, the card gives up (`6982`) and this returns
    /// [`TokenError::TouchTimeout`].
    pub fn calculate(&self, name: &str, time_step: u64) -> Result<MfaCode, TokenError> {
        const OP: &str = "OATH CALCULATE";
        check_name(name)?;
        self.unlocked()?;
        let mut data = Zeroizing::new(Vec::with_capacity(MAX_NAME_LEN + 12));
        tlv::put(&mut data, tag::NAME, name.as_bytes());
        tlv::put(&mut data, tag::CHALLENGE, &time_step.to_be_bytes());
        // P2 = 01: the truncated answer, `76 05 <digits> <4 bytes>`.
        let resp = self.transmit(Apdu::new(OP, ins::CALCULATE, 0x00, 0x01).data(data))?;
        match resp.sw {
            Sw::Ok => {}
            Sw::NotFound => return Err(TokenError::NoSuchCredential(name.to_string())),
            // Unlocked, so 6982 can only be the touch that never came
            // (DESIGN §4: treat 6985 the same).
            Sw::SecurityStatus | Sw::ConditionsNotSatisfied => {
                return Err(TokenError::TouchTimeout {
                    serial: self.serial(),
                })
            }
            sw => return Err(TokenError::Status { op: OP, sw }),
        }
        parse_calculate(&resp.data)
    }

    /// [`calculate`](Self::calculate), calling `notice` if the key has not
    /// answered after `after`: it is then waiting for a touch. YKOATH has no
    /// way to ask whether a credential needs a touch short of an extra
    /// CALCULATE ALL round trip, and an untouched credential answers at
    /// once, so the wait itself is the signal (as yubikey-agent does).
    pub fn calculate_notifying(
        &self,
        name: &str,
        time_step: u64,
        after: Duration,
        notice: &dyn Fn(),
    ) -> Result<MfaCode, TokenError> {
        std::thread::scope(|s| {
            let (send, recv) = std::sync::mpsc::channel();
            s.spawn(move || {
                let _ = send.send(self.calculate(name, time_step));
            });
            match recv.recv_timeout(after) {
                Ok(result) => result,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    notice();
                    recv.recv().unwrap_or(Err(TokenError::Malformed {
                        op: "OATH CALCULATE",
                        what: "no answer",
                    }))
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    Err(TokenError::Malformed {
                        op: "OATH CALCULATE",
                        what: "no answer",
                    })
                }
            }
        })
    }

    fn transmit(&self, apdu: Apdu) -> Result<apdu::Response, TokenError> {
        self.tx.transmit(&apdu, MoreData::SendRemaining)
    }
}

/// What SELECT tells about the applet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectInfo {
    pub version: Version,
    /// The salt of the access key, and the applet's identity.
    pub salt: Vec<u8>,
    /// The card's challenge, present while a password is set.
    pub challenge: Option<Vec<u8>>,
    pub access_algorithm: Algorithm,
}

/// The answer to SELECT: version `79`, salt `71`, and, when a password is
/// set, challenge `74` and its algorithm `7B`.
pub fn parse_select(data: &[u8]) -> Result<SelectInfo, TokenError> {
    const OP: &str = "OATH SELECT";
    let tlvs = tlv::parse(data).map_err(|e| TokenError::malformed(OP, e))?;
    let version = tlv::find(&tlvs, tag::VERSION)
        .and_then(|v| <[u8; 3]>::try_from(v).ok())
        .map(Version)
        .ok_or(TokenError::Malformed {
            op: OP,
            what: "no version",
        })?;
    let salt = tlv::find(&tlvs, tag::NAME)
        .ok_or(TokenError::Malformed {
            op: OP,
            what: "no salt",
        })?
        .to_vec();
    let challenge = tlv::find(&tlvs, tag::CHALLENGE).map(<[u8]>::to_vec);
    let access_algorithm = match tlv::find(&tlvs, tag::ALGORITHM) {
        None => Algorithm::Sha1,
        Some(v) => {
            v.first()
                .and_then(|&b| Algorithm::from_code(b))
                .ok_or(TokenError::Malformed {
                    op: OP,
                    what: "unknown password algorithm",
                })?
        }
    };
    Ok(SelectInfo {
        version,
        salt,
        challenge,
        access_algorithm,
    })
}

/// The answer to VALIDATE: the card's response `75` to vault's challenge.
pub fn parse_validate(data: &[u8]) -> Result<&[u8], TokenError> {
    const OP: &str = "OATH VALIDATE";
    let tlvs = tlv::parse(data).map_err(|e| TokenError::malformed(OP, e))?;
    tlv::find(&tlvs, tag::RESPONSE).ok_or(TokenError::Malformed {
        op: OP,
        what: "no response to our challenge",
    })
}

/// The answer to a truncated CALCULATE: the code in `76`.
pub fn parse_calculate(data: &[u8]) -> Result<MfaCode, TokenError> {
    const OP: &str = "OATH CALCULATE";
    let tlvs = tlv::parse(data).map_err(|e| TokenError::malformed(OP, e))?;
    let value = tlv::find(&tlvs, tag::TRUNCATED).ok_or(TokenError::Malformed {
        op: OP,
        what: "no truncated code",
    })?;
    code_from_truncated(value).map_err(|what| TokenError::Malformed { op: OP, what })
}

fn derive_access_key(password: &Passphrase, salt: &[u8]) -> Zeroizing<[u8; ACCESS_KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; ACCESS_KEY_LEN]);
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(
        password.expose().as_bytes(),
        salt,
        PBKDF2_ROUNDS,
        &mut key[..],
    );
    key
}

fn check_name(name: &str) -> Result<(), TokenError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(TokenError::InvalidCredential(format!(
            "the name must be 1 to {MAX_NAME_LEN} bytes, not {}",
            name.len()
        )));
    }
    Ok(())
}

/// `76` value: `<digits> <4 bytes>` → (u32 & 0x7FFFFFFF) mod 10^digits,
/// zero-padded to `digits`.
fn code_from_truncated(value: &[u8]) -> Result<MfaCode, &'static str> {
    let [digits, a, b, c, d] = <[u8; 5]>::try_from(value).map_err(|_| "code is not 5 bytes")?;
    if !(6..=8).contains(&digits) {
        return Err("code has an unsupported number of digits");
    }
    let n = u32::from_be_bytes([a, b, c, d]) & 0x7FFF_FFFF;
    let code = n % 10u32.pow(digits as u32);
    Ok(MfaCode::new(format!(
        "{code:0width$}",
        width = digits as usize
    )))
}

/// LIST: `72 L <type|algorithm> <name>` per credential.
pub fn parse_list(data: &[u8]) -> Result<Vec<Credential>, &'static str> {
    let tlvs = tlv::parse(data).map_err(|e| e.0)?;
    tlvs.iter()
        .filter(|t| t.tag == tag::NAME_LIST)
        .map(|t| {
            let (&kind, name) = t.value.split_first().ok_or("empty list entry")?;
            Ok(Credential {
                name: String::from_utf8_lossy(name).into_owned(),
                oath_type: match kind & 0xF0 {
                    TYPE_HOTP => Some(OathType::Hotp),
                    TYPE_TOTP => Some(OathType::Totp),
                    _ => None,
                },
                algorithm: Algorithm::from_code(kind),
            })
        })
        .collect()
}

fn base64_unpadded(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3F) as usize] as char);
        }
    }
    out
}

/// MFA codes from the OATH applet of one YubiKey, for `mfa::obtain`.
pub struct TokenCodes<'a> {
    serial: u32,
    name: Option<String>,
    password: Option<Passphrase>,
    wait: Duration,
    touch_notice_after: Duration,
    notify: Box<dyn Fn(&str) + 'a>,
    touch: Option<Box<dyn Fn(crate::TouchEvent) + 'a>>,
}

impl<'a> TokenCodes<'a> {
    /// Codes from the key with `serial`; `notify` shows the user short
    /// messages ("Touch your YubiKey …") through the prompt driver.
    pub fn new(serial: u32, notify: Box<dyn Fn(&str) + 'a>) -> TokenCodes<'a> {
        TokenCodes {
            serial,
            name: None,
            password: None,
            wait: Duration::ZERO,
            touch_notice_after: TOUCH_NOTICE_AFTER,
            notify,
            touch: None,
        }
    }

    /// Shows the wait for a touch through `touch` (which knows what the
    /// code is for), instead of a plain line through `notify`.
    pub fn on_touch(mut self, touch: Box<dyn Fn(crate::TouchEvent) + 'a>) -> TokenCodes<'a> {
        self.touch = Some(touch);
        self
    }

    /// Uses this credential name instead of the one [`TokenCodes::try_code`] is given.
    pub fn with_name(mut self, name: impl Into<String>) -> TokenCodes<'a> {
        self.name = Some(name.into());
        self
    }

    /// The OATH password, for an applet protected by one.
    pub fn with_password(mut self, password: Passphrase) -> TokenCodes<'a> {
        self.password = Some(password);
        self
    }

    /// How long to wait for the key to be inserted (default: not at all).
    pub fn with_wait(mut self, wait: Duration) -> TokenCodes<'a> {
        self.wait = wait;
        self
    }

    /// How long a CALCULATE may run before the touch notice is shown.
    pub fn with_touch_notice_after(mut self, after: Duration) -> TokenCodes<'a> {
        self.touch_notice_after = after;
        self
    }

    /// The code of the credential called `name` (or the one set by
    /// [`TokenCodes::with_name`]) for TOTP step `step`, or `Ok(None)` when
    /// this key holds no such credential.
    pub fn try_code(&self, name: &str, step: u64) -> Result<Option<MfaCode>, TokenError> {
        let name = self.name.as_deref().unwrap_or(name);
        let ctx = establish()?;
        let mut conn = match find_by_serial(&ctx, self.serial, Duration::ZERO) {
            Err(TokenError::NotFound { .. }) if !self.wait.is_zero() => {
                (self.notify)(&format!(
                    "Insert your YubiKey (serial {}) for the MFA code",
                    self.serial
                ));
                find_by_serial(&ctx, self.serial, self.wait)?
            }
            other => other?,
        };
        let mut session = OathSession::select(&mut conn)?;
        if session.is_locked() {
            match &self.password {
                Some(p) => session.validate(p)?,
                None => {
                    return Err(TokenError::OathPasswordRequired {
                        serial: Some(self.serial),
                    })
                }
            }
        }
        let serial = self.serial;
        let waited = std::cell::Cell::new(false);
        let notice = || {
            waited.set(true);
            match &self.touch {
                // The card has been waiting since the CALCULATE went out.
                Some(touch) => touch(crate::TouchEvent::Waiting {
                    serial,
                    timeout: crate::TOUCH_TIMEOUT.saturating_sub(self.touch_notice_after),
                }),
                None => (self.notify)(&format!("Touch your YubiKey {serial} for the MFA code")),
            }
        };
        let result = session.calculate_notifying(name, step, self.touch_notice_after, &notice);
        if let (true, Some(touch)) = (waited.get(), &self.touch) {
            touch(crate::TouchEvent::Done {
                serial,
                touched: result.is_ok(),
            });
        }
        match result {
            Ok(code) => Ok(Some(code)),
            Err(TokenError::NoSuchCredential(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_KEY: &[u8] = b"12345678901234567890";

    /// What the card does: RFC 4226 dynamic truncation of the HMAC.
    fn card_truncate(key: &[u8], step: u64, digits: u8) -> Vec<u8> {
        let digest = Algorithm::Sha1.hmac(key, &step.to_be_bytes()).unwrap();
        let off = (digest[19] & 0x0F) as usize;
        let mut v = vec![digits];
        v.extend_from_slice(&digest[off..off + 4]);
        v
    }

    #[test]
    fn rfc6238_codes_from_truncated_answers() {
        // RFC 6238 appendix B, SHA-1, T = 59 s → step 1.
        let code = code_from_truncated(&card_truncate(RFC_KEY, 1, 8)).unwrap();
        assert_eq!(code.expose(), "94287082");
        let code = code_from_truncated(&card_truncate(RFC_KEY, 1, 6)).unwrap();
        assert_eq!(code.expose(), "287082");
        // T = 1111111109 → 07081804: the leading zero is kept.
        let code = code_from_truncated(&card_truncate(RFC_KEY, 1_111_111_109 / 30, 8)).unwrap();
        assert_eq!(code.expose(), "07081804");
        // The card may leave the top bit set; it is masked.
        let code = code_from_truncated(&[6, 0xFF, 0xFF, 0xFF, 0xFF]).unwrap();
        assert_eq!(code.expose(), format!("{:06}", 0x7FFF_FFFFu32 % 1_000_000));
        assert_eq!(
            code_from_truncated(&[6, 0, 0, 0, 7]).unwrap().expose(),
            "000007"
        );
    }

    #[test]
    fn malformed_calculate_answers_are_errors() {
        for bad in [
            &[][..],
            &[6, 1, 2, 3],
            &[6, 1, 2, 3, 4, 5],
            &[5, 1, 2, 3, 4],
            &[9, 1, 2, 3, 4],
        ] {
            assert!(code_from_truncated(bad).is_err(), "{bad:02X?}");
        }
        assert!(parse_list(&[0x72, 0x00]).is_err());
        assert!(parse_list(&[0x72, 0x05, 0x21, b'a']).is_err());
        let list = parse_list(b"\x72\x06\x21alice\x72\x04\x13bob").unwrap();
        assert_eq!(list[0].name, "alice");
        assert_eq!(list[0].oath_type, Some(OathType::Totp));
        assert_eq!(list[0].algorithm, Some(Algorithm::Sha1));
        assert_eq!(list[1].oath_type, Some(OathType::Hotp));
        assert_eq!(list[1].algorithm, Some(Algorithm::Sha512));
    }

    #[test]
    fn keys_are_shortened_and_padded_like_ykman() {
        let short = Algorithm::Sha1.card_key(b"abc");
        assert_eq!(short.len(), 14);
        assert_eq!(&short[..3], b"abc");
        assert!(short[3..].iter().all(|&b| b == 0));
        assert_eq!(&Algorithm::Sha1.card_key(RFC_KEY)[..], RFC_KEY);
        let long = vec![7u8; 65];
        assert_eq!(
            &Algorithm::Sha1.card_key(&long)[..],
            &sha1::Sha1::digest(&long)[..]
        );
        assert_eq!(Algorithm::Sha256.card_key(&long).len(), 32);
        assert_eq!(
            Algorithm::Sha512.card_key(&long).len(),
            65,
            "fits SHA-512's block"
        );
        // Padding and hashing do not change the codes HMAC gives.
        for key in [&b"abc"[..], &long] {
            for alg in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
                assert_eq!(
                    alg.hmac(key, b"msg").unwrap(),
                    alg.hmac(&alg.card_key(key), b"msg").unwrap()
                );
            }
        }
    }

    #[test]
    fn access_key_derivation_matches_ykman() {
        // PBKDF2-HMAC-SHA1("password", "salt", 1000, 16): RFC 6070's second
        // vector is for 2 rounds; this one was computed with Python's
        // hashlib.pbkdf2_hmac("sha1", b"password", b"salt", 1000, 16).
        let key = derive_access_key(&Passphrase::new("password"), b"salt");
        assert_eq!(hex::encode(&key[..]), "6e88be8bad7eae9d9e10aa061224034f");
    }

    #[test]
    fn device_id_encoding() {
        assert_eq!(base64_unpadded(b""), "");
        assert_eq!(base64_unpadded(b"f"), "Zg");
        assert_eq!(base64_unpadded(b"fo"), "Zm8");
        assert_eq!(base64_unpadded(b"foo"), "Zm9v");
        assert_eq!(base64_unpadded(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_unpadded(&[0xFF; 16]).len(), 22);
    }

    #[test]
    fn errors_say_what_to_do() {
        let e = TokenError::TouchTimeout { serial: Some(1) };
        assert_eq!(
            e.to_string(),
            "no touch within the timeout: touch your YubiKey when it blinks"
        );
        let e = TokenError::OathPasswordRequired { serial: Some(5) };
        assert!(e.to_string().contains("serial 5"));
        assert!(e.hint().unwrap().contains("password"));
        assert!(check_name("").is_err());
        assert!(check_name(&"n".repeat(65)).is_err());
        assert!(check_name(&"n".repeat(64)).is_ok());
    }
}
