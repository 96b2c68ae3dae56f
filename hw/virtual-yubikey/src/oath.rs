//! The YKOATH applet: TOTP and HOTP credentials kept and computed on the
//! key, answering the way a YubiKey 5 on firmware 5.4 answers ykman, Yubico
//! Authenticator and vault.
//!
//! Sources: Yubico's YKOATH protocol description, what yubikit
//! (`yubikit/oath.py`, yubikey-manager 5.9) sends and expects, and the
//! original NEO applet (Yubico/ykneo-oath) where the description is silent.
//! Where none of them settles what the firmware answers, the comment at that
//! place says what was chosen.

use crate::apdu::{sw, Command, Reply};
use crate::card::{Applet, Env};
use crate::tlv;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};

pub const AID: &[u8] = &[0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01, 0x01];

/// A YubiKey 5 before firmware 5.7 holds 32 credentials (yubikey-manager's
/// device tests fill exactly this many, then expect the next PUT to fail).
pub const MAX_CREDENTIALS: usize = 32;
/// From firmware 5.7 a YubiKey holds 64 (yubikey-manager's device tests
/// fill as many as the version allows).
pub const MAX_CREDENTIALS_5_7: usize = 64;

/// How many credentials a key of firmware `version` holds.
pub fn max_credentials(version: [u8; 3]) -> usize {
    if version >= [5, 7, 0] {
        MAX_CREDENTIALS_5_7
    } else {
        MAX_CREDENTIALS
    }
}
const MAX_NAME_LEN: usize = 64;
/// The NEO applet refused challenges over 64 bytes; nothing sends longer.
const MAX_CHALLENGE_LEN: usize = 64;
const SALT_LEN: usize = 8;
const CHALLENGE_LEN: usize = 8;

mod tag {
    pub const NAME: u8 = 0x71;
    pub const NAME_LIST: u8 = 0x72;
    pub const KEY: u8 = 0x73;
    pub const CHALLENGE: u8 = 0x74;
    pub const RESPONSE: u8 = 0x75;
    pub const TRUNCATED: u8 = 0x76;
    pub const HOTP: u8 = 0x77;
    /// Followed by one property byte and no length.
    pub const PROPERTY: u8 = 0x78;
    pub const VERSION: u8 = 0x79;
    pub const IMF: u8 = 0x7A;
    pub const ALGORITHM: u8 = 0x7B;
    pub const TOUCH: u8 = 0x7C;
}

mod ins {
    pub const PUT: u8 = 0x01;
    pub const DELETE: u8 = 0x02;
    pub const SET_CODE: u8 = 0x03;
    pub const RESET: u8 = 0x04;
    pub const RENAME: u8 = 0x05;
    pub const LIST: u8 = 0xA1;
    pub const CALCULATE: u8 = 0xA2;
    pub const VALIDATE: u8 = 0xA3;
    pub const CALCULATE_ALL: u8 = 0xA4;
    pub const SEND_REMAINING: u8 = 0xA5;
}

const TYPE_MASK: u8 = 0xF0;
const TYPE_HOTP: u8 = 0x10;
const TYPE_TOTP: u8 = 0x20;
const PROP_INCREASING: u8 = 0x01;
const PROP_TOUCH: u8 = 0x02;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The low nibble of a type/algorithm byte.
    fn from_code(code: u8) -> Option<Algorithm> {
        match code & 0x0F {
            0x01 => Some(Algorithm::Sha1),
            0x02 => Some(Algorithm::Sha256),
            0x03 => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// Clients hash keys longer than this before sending them (yubikit's
    /// `_hmac_shorten_key`), so a longer one is a client error.
    fn block_size(self) -> usize {
        match self {
            Algorithm::Sha1 | Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    fn hmac(self, key: &[u8], msg: &[u8]) -> Result<Vec<u8>, u16> {
        match self {
            Algorithm::Sha1 => hmac_with::<Hmac<sha1::Sha1>>(key, msg),
            Algorithm::Sha256 => hmac_with::<Hmac<sha2::Sha256>>(key, msg),
            Algorithm::Sha512 => hmac_with::<Hmac<sha2::Sha512>>(key, msg),
        }
    }
}

fn hmac_with<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Result<Vec<u8>, u16> {
    // HMAC takes keys of any length; the error arm only satisfies the type.
    let mut mac = <M as Mac>::new_from_slice(key).map_err(|_| sw::WRONG_DATA_LAST_CMD)?;
    mac.update(msg);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// RFC 4226 dynamic truncation, with the top bit cleared as the NEO applet
/// did; clients mask it again and take the code modulo 10^digits.
fn truncate(digest: &[u8]) -> Result<[u8; 4], u16> {
    let last = *digest.last().ok_or(sw::WRONG_DATA_LAST_CMD)?;
    let offset = (last & 0x0F) as usize;
    let bytes = digest
        .get(offset..offset + 4)
        .ok_or(sw::WRONG_DATA_LAST_CMD)?;
    Ok([bytes[0] & 0x7F, bytes[1], bytes[2], bytes[3]])
}

/// Byte strings go into the state file as hex, so it stays readable JSON.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccessKey {
    /// As the client sent it in SET CODE (yubikit: TOTP|SHA1 = 0x21).
    algorithm: u8,
    #[serde(with = "hex_bytes")]
    key: Vec<u8>,
}

impl AccessKey {
    fn hmac(&self, msg: &[u8]) -> Result<Vec<u8>, u16> {
        Algorithm::from_code(self.algorithm)
            .ok_or(sw::WRONG_DATA_LAST_CMD)?
            .hmac(&self.key, msg)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Credential {
    /// `[period/][issuer:]account`, as the client formats it; not
    /// necessarily UTF-8, so kept as bytes.
    #[serde(with = "hex_bytes")]
    name: Vec<u8>,
    /// Type in the high nibble, algorithm in the low one, as LIST reports it.
    kind: u8,
    digits: u8,
    #[serde(with = "hex_bytes")]
    key: Vec<u8>,
    touch: bool,
    increasing: bool,
    /// HOTP: the moving factor of the next code.
    counter: u64,
    /// Increasing-only TOTP: the highest challenge answered so far.
    #[serde(default, with = "hex_bytes")]
    last_challenge: Vec<u8>,
}

impl Credential {
    fn is_hotp(&self) -> bool {
        self.kind & TYPE_MASK == TYPE_HOTP
    }

    fn algorithm(&self) -> Result<Algorithm, u16> {
        Algorithm::from_code(self.kind).ok_or(sw::WRONG_DATA_LAST_CMD)
    }

    /// Checks a TOTP challenge against the increasing-only property. The NEO
    /// applet answered 6982 to a lower challenge and accepted an equal one.
    fn check_increasing(&self, challenge: &[u8]) -> Result<(), u16> {
        if self.increasing && compare_be(challenge, &self.last_challenge).is_lt() {
            return Err(sw::SECURITY_STATUS);
        }
        Ok(())
    }
}

/// Compares two big-endian unsigned numbers of any length.
fn compare_be(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    fn strip(x: &[u8]) -> &[u8] {
        let zeros = x.iter().take_while(|&&b| b == 0).count();
        &x[zeros..]
    }
    let (a, b) = (strip(a), strip(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// What one SELECT of the applet established; gone on deselect and power loss.
#[derive(Debug, Clone, Default)]
struct Session {
    /// The challenge sent in the SELECT answer, when a password is set.
    challenge: Option<[u8; CHALLENGE_LEN]>,
    validated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Oath {
    /// The "name" in the SELECT answer: clients derive the device id and
    /// the password's PBKDF2 salt from it. New on every RESET.
    #[serde(with = "hex_bytes", default = "random_salt")]
    salt: Vec<u8>,
    #[serde(default)]
    access_key: Option<AccessKey>,
    /// In insertion order, which LIST and CALCULATE ALL keep.
    #[serde(default)]
    credentials: Vec<Credential>,
    #[serde(skip)]
    session: Session,
}

fn random_salt() -> Vec<u8> {
    rand::random::<[u8; SALT_LEN]>().to_vec()
}

impl Oath {
    pub fn factory() -> Oath {
        Oath {
            salt: random_salt(),
            access_key: None,
            credentials: Vec::new(),
            session: Session::default(),
        }
    }

    /// Whether a password (access key) is set.
    pub fn has_password(&self) -> bool {
        self.access_key.is_some()
    }

    /// Credential names in LIST order, for tests that inspect the state.
    pub fn credential_names(&self) -> Vec<Vec<u8>> {
        self.credentials.iter().map(|c| c.name.clone()).collect()
    }

    fn find(&self, name: &[u8]) -> Option<usize> {
        self.credentials.iter().position(|c| c.name == name)
    }

    fn dispatch(&mut self, cmd: &Command, env: &mut Env<'_>) -> Result<Reply, u16> {
        let locked = self.access_key.is_some() && !self.session.validated;
        if locked && cmd.ins != ins::VALIDATE && cmd.ins != ins::RESET {
            return Err(sw::SECURITY_STATUS);
        }
        let p1p2 = u16::from_be_bytes([cmd.p1, cmd.p2]);
        let plain = || {
            if p1p2 == 0 {
                Ok(())
            } else {
                Err(sw::INCORRECT_P1P2)
            }
        };
        // P2 selects a full (00) or truncated (01) response.
        let truncated = || match (cmd.p1, cmd.p2) {
            (0, 0) => Ok(false),
            (0, 1) => Ok(true),
            _ => Err(sw::INCORRECT_P1P2),
        };
        match cmd.ins {
            ins::PUT => plain().and_then(|()| self.put(&cmd.data, env)),
            ins::DELETE => plain().and_then(|()| self.delete(&cmd.data, env)),
            ins::SET_CODE => plain().and_then(|()| self.set_code(&cmd.data, env)),
            ins::RESET if p1p2 == 0xDEAD => self.reset(env),
            ins::RESET => Err(sw::INCORRECT_P1P2),
            // RENAME came with firmware 5.3.1 (yubikit's require_version).
            ins::RENAME if env.version < [5, 3, 1] => Err(sw::INS_NOT_SUPPORTED),
            ins::RENAME => plain().and_then(|()| self.rename(&cmd.data, env)),
            ins::LIST => plain().and_then(|()| self.list()),
            ins::CALCULATE => truncated().and_then(|t| self.calculate(&cmd.data, t, env)),
            ins::VALIDATE => plain().and_then(|()| self.validate(&cmd.data)),
            ins::CALCULATE_ALL => truncated().and_then(|t| self.calculate_all(&cmd.data, t, env)),
            // The ISO layer answers SEND REMAINING while data is pending;
            // with nothing pending there is nothing more to send.
            ins::SEND_REMAINING => Ok(Reply::empty()),
            _ => Err(sw::INS_NOT_SUPPORTED),
        }
    }

    fn put(&mut self, data: &[u8], env: &mut Env<'_>) -> Result<Reply, u16> {
        let mut name = None;
        let mut key = None;
        let mut imf = None;
        let mut props = 0u8;
        let mut reader = Reader(data);
        while let Some(t) = reader.tag() {
            match t {
                tag::PROPERTY => props = reader.byte()?,
                tag::NAME if name.is_none() => name = Some(reader.value()?),
                tag::KEY if key.is_none() => key = Some(reader.value()?),
                tag::IMF if imf.is_none() => imf = Some(reader.value()?),
                _ => return Err(sw::INCORRECT_DATA),
            }
        }
        let name = name.ok_or(sw::INCORRECT_DATA)?;
        let key = key.ok_or(sw::INCORRECT_DATA)?;
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(sw::INCORRECT_DATA);
        }
        let [kind, digits, secret @ ..] = key else {
            return Err(sw::INCORRECT_DATA);
        };
        let algorithm = Algorithm::from_code(*kind).ok_or(sw::INCORRECT_DATA)?;
        if !matches!(kind & TYPE_MASK, TYPE_HOTP | TYPE_TOTP)
            || !(6..=8).contains(digits)
            || secret.len() > algorithm.block_size()
            || props & !(PROP_INCREASING | PROP_TOUCH) != 0
        {
            return Err(sw::INCORRECT_DATA);
        }
        let counter = match imf {
            None => 0,
            Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]) as u64,
            Some(_) => return Err(sw::INCORRECT_DATA),
        };
        let credential = Credential {
            name: name.to_vec(),
            kind: *kind,
            digits: *digits,
            key: secret.to_vec(),
            touch: props & PROP_TOUCH != 0,
            increasing: props & PROP_INCREASING != 0,
            counter,
            last_challenge: Vec::new(),
        };
        match self.find(name) {
            Some(i) => self.credentials[i] = credential,
            None if self.credentials.len() >= max_credentials(env.version) => {
                return Err(sw::NO_SPACE)
            }
            None => self.credentials.push(credential),
        }
        env.mark_dirty();
        Ok(Reply::empty())
    }

    fn delete(&mut self, data: &[u8], env: &mut Env<'_>) -> Result<Reply, u16> {
        let tlvs = tlv::parse(data)?;
        let name = tlv::find(&tlvs, tag::NAME as u16).ok_or(sw::INCORRECT_DATA)?;
        let i = self.find(name).ok_or(sw::DATA_INVALID)?;
        self.credentials.remove(i);
        env.mark_dirty();
        Ok(Reply::empty())
    }

    fn rename(&mut self, data: &[u8], env: &mut Env<'_>) -> Result<Reply, u16> {
        let tlvs = tlv::parse(data)?;
        let [old, new] = tlvs.as_slice() else {
            return Err(sw::INCORRECT_DATA);
        };
        if old.tag != tag::NAME as u16 || new.tag != tag::NAME as u16 {
            return Err(sw::INCORRECT_DATA);
        }
        if new.value.is_empty() || new.value.len() > MAX_NAME_LEN {
            return Err(sw::INCORRECT_DATA);
        }
        let i = self.find(old.value).ok_or(sw::DATA_INVALID)?;
        // A new name already in use, the credential's own included, is
        // refused (Yubico's device tests: test_rename_to_existing renames a
        // credential to its own name and expects an error). Yubico's RENAME
        // reference (.NET SDK users' manual, "OATH commands and APDUs",
        // Rename credential) lists 9000, 6984 no such object, 6982 auth
        // required and 6A80 wrong syntax, and no code of its own for this:
        // it is a refusal of the data sent, 6A80.
        if self.find(new.value).is_some() {
            return Err(sw::INCORRECT_DATA);
        }
        self.credentials[i].name = new.value.to_vec();
        env.mark_dirty();
        Ok(Reply::empty())
    }

    fn list(&self) -> Result<Reply, u16> {
        let mut out = Vec::new();
        for c in &self.credentials {
            let mut value = Vec::with_capacity(c.name.len() + 1);
            value.push(c.kind);
            value.extend_from_slice(&c.name);
            tlv::put(&mut out, &[tag::NAME_LIST], &value);
        }
        Ok(Reply::ok(out))
    }

    /// One code, full (`75`) or truncated (`76`), after the touch the
    /// credential asks for.
    fn calculate(&mut self, data: &[u8], truncated: bool, env: &mut Env<'_>) -> Result<Reply, u16> {
        let tlvs = tlv::parse(data)?;
        let name = tlv::find(&tlvs, tag::NAME as u16).ok_or(sw::INCORRECT_DATA)?;
        // HOTP ignores the challenge (yubikit sends an empty one).
        let challenge = tlv::find(&tlvs, tag::CHALLENGE as u16).unwrap_or(&[]);
        let i = self.find(name).ok_or(sw::DATA_INVALID)?;
        let cred = &self.credentials[i];
        if !cred.is_hotp() {
            check_challenge(challenge)?;
            cred.check_increasing(challenge)?;
        }
        if cred.touch {
            env.touch()?;
        }
        let cred = &mut self.credentials[i];
        let digest = if cred.is_hotp() {
            let digest = cred
                .algorithm()?
                .hmac(&cred.key, &cred.counter.to_be_bytes())?;
            cred.counter = cred.counter.wrapping_add(1);
            env.mark_dirty();
            digest
        } else {
            let digest = cred.algorithm()?.hmac(&cred.key, challenge)?;
            if cred.increasing {
                cred.last_challenge = challenge.to_vec();
                env.mark_dirty();
            }
            digest
        };
        let mut out = Vec::new();
        put_code(&mut out, cred.digits, &digest, truncated)?;
        Ok(Reply::ok(out))
    }

    /// Codes of every TOTP credential that needs no touch; the others are
    /// named with their digits only: `77` HOTP (touch or not: ykman guesses
    /// whether an HOTP credential wants a touch), `7C` TOTP with touch.
    fn calculate_all(
        &mut self,
        data: &[u8],
        truncated: bool,
        env: &mut Env<'_>,
    ) -> Result<Reply, u16> {
        let tlvs = tlv::parse(data)?;
        let challenge = tlv::find(&tlvs, tag::CHALLENGE as u16).ok_or(sw::INCORRECT_DATA)?;
        check_challenge(challenge)?;
        let computed = |c: &Credential| !c.is_hotp() && !c.touch;
        // Checked before anything is computed, so a refusal changes nothing.
        for c in self.credentials.iter().filter(|c| computed(c)) {
            c.check_increasing(challenge)?;
        }
        let mut out = Vec::new();
        for c in self.credentials.iter_mut() {
            tlv::put(&mut out, &[tag::NAME], &c.name);
            if c.is_hotp() {
                tlv::put(&mut out, &[tag::HOTP], &[c.digits]);
            } else if c.touch {
                tlv::put(&mut out, &[tag::TOUCH], &[c.digits]);
            } else {
                let digest = c.algorithm()?.hmac(&c.key, challenge)?;
                put_code(&mut out, c.digits, &digest, truncated)?;
                if c.increasing {
                    c.last_challenge = challenge.to_vec();
                    env.mark_dirty();
                }
            }
        }
        Ok(Reply::ok(out))
    }

    /// Mutual authentication: the host answers the SELECT challenge, the
    /// card answers the host's.
    fn validate(&mut self, data: &[u8]) -> Result<Reply, u16> {
        let access = self.access_key.as_ref().ok_or(sw::DATA_INVALID)?;
        let tlvs = tlv::parse(data)?;
        let response = tlv::find(&tlvs, tag::RESPONSE as u16).ok_or(sw::INCORRECT_DATA)?;
        let host_challenge = tlv::find(&tlvs, tag::CHALLENGE as u16).ok_or(sw::INCORRECT_DATA)?;
        if !(CHALLENGE_LEN..=MAX_CHALLENGE_LEN).contains(&host_challenge.len()) {
            return Err(sw::INCORRECT_DATA);
        }
        let challenge = self.session.challenge.ok_or(sw::INCORRECT_DATA)?;
        // A wrong response is 6A80, not 6984: the NEO applet answered so,
        // and ykman recognises a wrong remembered password by 6A80.
        if access.hmac(&challenge)? != response {
            return Err(sw::INCORRECT_DATA);
        }
        let answer = access.hmac(host_challenge)?;
        self.session.validated = true;
        Ok(Reply::ok(tlv::encode(&[tag::RESPONSE], &answer)))
    }

    /// Sets the password (`73 <alg> <key>`, `74` challenge, `75` the
    /// client's response under the new key, proving both sides agree), or
    /// removes it (`73 00`).
    fn set_code(&mut self, data: &[u8], env: &mut Env<'_>) -> Result<Reply, u16> {
        let tlvs = tlv::parse(data)?;
        let key = tlv::find(&tlvs, tag::KEY as u16).ok_or(sw::INCORRECT_DATA)?;
        let Some((&algorithm, secret)) = key.split_first() else {
            self.access_key = None;
            self.session = Session::default();
            env.mark_dirty();
            return Ok(Reply::empty());
        };
        let alg = Algorithm::from_code(algorithm).ok_or(sw::INCORRECT_DATA)?;
        if !matches!(algorithm & TYPE_MASK, 0 | TYPE_HOTP | TYPE_TOTP)
            || secret.is_empty()
            || secret.len() > alg.block_size()
        {
            return Err(sw::INCORRECT_DATA);
        }
        let challenge = tlv::find(&tlvs, tag::CHALLENGE as u16).ok_or(sw::INCORRECT_DATA)?;
        let response = tlv::find(&tlvs, tag::RESPONSE as u16).ok_or(sw::INCORRECT_DATA)?;
        check_challenge(challenge)?;
        let expected = alg.hmac(secret, challenge)?;
        if response.len() != expected.len() {
            return Err(sw::INCORRECT_DATA);
        }
        if response != expected {
            return Err(sw::DATA_INVALID);
        }
        self.access_key = Some(AccessKey {
            algorithm,
            key: secret.to_vec(),
        });
        // The client just proved it holds the key, and yubikit (for any
        // firmware after the NEO) carries on in the same session without
        // validating again.
        self.session = Session {
            challenge: None,
            validated: true,
        };
        env.mark_dirty();
        Ok(Reply::empty())
    }

    fn reset(&mut self, env: &mut Env<'_>) -> Result<Reply, u16> {
        *self = Oath::factory();
        env.mark_dirty();
        Ok(Reply::empty())
    }
}

fn check_challenge(challenge: &[u8]) -> Result<(), u16> {
    if challenge.is_empty() || challenge.len() > MAX_CHALLENGE_LEN {
        return Err(sw::INCORRECT_DATA);
    }
    Ok(())
}

/// `76 05 <digits> <4 bytes>` or `75 L <digits> <digest>`.
fn put_code(out: &mut Vec<u8>, digits: u8, digest: &[u8], truncated: bool) -> Result<(), u16> {
    let mut value = vec![digits];
    if truncated {
        value.extend_from_slice(&truncate(digest)?);
        tlv::put(out, &[tag::TRUNCATED], &value);
    } else {
        value.extend_from_slice(digest);
        tlv::put(out, &[tag::RESPONSE], &value);
    }
    Ok(())
}

/// Reads PUT data, where the property tag `78` carries one byte and no
/// length, so the generic TLV parser cannot be used.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn tag(&mut self) -> Option<u8> {
        let (&t, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(t)
    }

    fn byte(&mut self) -> Result<u8, u16> {
        self.tag().ok_or(sw::INCORRECT_DATA)
    }

    fn value(&mut self) -> Result<&'a [u8], u16> {
        let len = match self.byte()? {
            n if n < 0x80 => n as usize,
            0x81 => self.byte()? as usize,
            0x82 => u16::from_be_bytes([self.byte()?, self.byte()?]) as usize,
            _ => return Err(sw::INCORRECT_DATA),
        };
        if len > self.0.len() {
            return Err(sw::INCORRECT_DATA);
        }
        let (value, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(value)
    }
}

impl Applet for Oath {
    fn name(&self) -> &'static str {
        "oath"
    }
    fn aid(&self) -> &'static [u8] {
        AID
    }

    /// A fresh challenge whenever a password is set. Validation survives a
    /// re-SELECT of this applet, as hw/README.md specifies for every applet
    /// (the ISO layer calls `deselect` only when another applet is chosen or
    /// power is lost); clients simply VALIDATE again.
    fn select(&mut self, env: &mut Env<'_>) -> Reply {
        self.session.challenge = None;
        let mut out = Vec::new();
        tlv::put(&mut out, &[tag::VERSION], &env.version);
        tlv::put(&mut out, &[tag::NAME], &self.salt);
        if let Some(access) = &self.access_key {
            let challenge: [u8; CHALLENGE_LEN] = rand::random();
            self.session.challenge = Some(challenge);
            tlv::put(&mut out, &[tag::CHALLENGE], &challenge);
            // The hash algorithm alone (Yubico's .NET SDK reads it as one).
            tlv::put(&mut out, &[tag::ALGORITHM], &[access.algorithm & 0x0F]);
        }
        Reply::ok(out)
    }

    fn deselect(&mut self) {
        self.session = Session::default();
    }

    fn process(&mut self, cmd: &Command, env: &mut Env<'_>) -> Reply {
        self.dispatch(cmd, env).unwrap_or_else(Reply::sw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::{Card, DeviceState};
    use crate::control::{Controls, TouchMode};
    use crate::log::ApduLog;
    use rand::{Rng, SeedableRng};
    use std::time::{Duration, Instant};

    const RFC_KEY_SHA1: &[u8] = b"12345678901234567890";
    const RFC_KEY_SHA256: &[u8] = b"12345678901234567890123456789012";
    const RFC_KEY_SHA512: &[u8] =
        b"1234567890123456789012345678901234567890123456789012345678901234";

    struct TestCard {
        card: Card,
        _dir: tempfile::TempDir,
    }

    fn new_card() -> TestCard {
        let dir = tempfile::tempdir().unwrap();
        let root = crate::attest::TestRoot::load_or_create(dir.path()).unwrap();
        let state = DeviceState::factory(12_345_678, &root);
        let card = Card::new(
            state,
            None,
            Controls::new(Duration::from_millis(200)),
            ApduLog::disabled(),
        );
        TestCard { card, _dir: dir }
    }

    fn short_apdu(ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
        let mut raw = vec![0x00, ins, p1, p2];
        if !data.is_empty() {
            assert!(data.len() <= 255);
            raw.push(data.len() as u8);
            raw.extend_from_slice(data);
        }
        raw
    }

    impl TestCard {
        fn raw(&mut self, raw: &[u8]) -> (Vec<u8>, u16) {
            let mut out = self.card.transmit(raw).expect("card answers");
            assert!(out.len() >= 2, "answer without status word");
            let sw = u16::from_be_bytes([out[out.len() - 2], out[out.len() - 1]]);
            out.truncate(out.len() - 2);
            (out, sw)
        }

        fn send(&mut self, ins: u8, p1: u8, p2: u8, data: &[u8]) -> (Vec<u8>, u16) {
            self.raw(&short_apdu(ins, p1, p2, data))
        }

        /// Sends and follows `61xx` with SEND REMAINING, as yubikit does.
        fn send_all(&mut self, ins: u8, p1: u8, p2: u8, data: &[u8]) -> (Vec<u8>, u16) {
            let (mut all, mut sw) = self.send(ins, p1, p2, data);
            while sw >> 8 == 0x61 {
                let (more, next) = self.send(ins::SEND_REMAINING, 0, 0, &[]);
                all.extend_from_slice(&more);
                sw = next;
            }
            (all, sw)
        }

        fn ok(&mut self, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
            let (data, sw) = self.send_all(ins, p1, p2, data);
            assert_eq!(sw, 0x9000, "INS {ins:02X} failed with {sw:04X}");
            data
        }

        /// SELECT with the 7-byte prefix clients use; returns the answer TLVs.
        fn select(&mut self) -> Vec<(u8, Vec<u8>)> {
            let data = self.ok(0xA4, 0x04, 0x00, &AID[..7]);
            tlv::parse(&data)
                .unwrap()
                .into_iter()
                .map(|t| (t.tag as u8, t.value.to_vec()))
                .collect()
        }

        fn put(&mut self, name: &[u8], kind: u8, digits: u8, key: &[u8], extra: &[u8]) -> u16 {
            let mut data = tlv::encode(&[tag::NAME], name);
            let mut k = vec![kind, digits];
            k.extend_from_slice(key);
            tlv::put(&mut data, &[tag::KEY], &k);
            data.extend_from_slice(extra);
            self.send(ins::PUT, 0, 0, &data).1
        }

        fn calc(&mut self, name: &[u8], challenge: &[u8], truncated: bool) -> (Vec<u8>, u16) {
            let mut data = tlv::encode(&[tag::NAME], name);
            tlv::put(&mut data, &[tag::CHALLENGE], challenge);
            self.send(ins::CALCULATE, 0, truncated as u8, &data)
        }

        /// A code as yubikit formats a truncated answer.
        fn code(&mut self, name: &[u8], challenge: &[u8]) -> String {
            let (data, sw) = self.calc(name, challenge, true);
            assert_eq!(sw, 0x9000, "CALCULATE failed with {sw:04X}");
            format_code(&data)
        }

        fn salt(&mut self) -> Vec<u8> {
            self.select()
                .into_iter()
                .find(|(t, _)| *t == tag::NAME)
                .unwrap()
                .1
        }
    }

    fn format_code(data: &[u8]) -> String {
        assert_eq!(data[0], tag::TRUNCATED);
        assert_eq!(data[1], 5);
        let digits = data[2] as u32;
        let value = u32::from_be_bytes([data[3], data[4], data[5], data[6]]) & 0x7FFF_FFFF;
        format!(
            "{:0width$}",
            value % 10u32.pow(digits),
            width = digits as usize
        )
    }

    fn step(t: u64) -> [u8; 8] {
        (t / 30).to_be_bytes()
    }

    fn hmac_sha1(key: &[u8], msg: &[u8]) -> Vec<u8> {
        Algorithm::Sha1.hmac(key, msg).unwrap()
    }

    fn derive(password: &str, salt: &[u8]) -> [u8; 16] {
        let mut key = [0u8; 16];
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password.as_bytes(), salt, 1000, &mut key);
        key
    }

    /// What yubikit's `set_key` sends.
    fn set_code_data(key: &[u8], challenge: &[u8], response: &[u8]) -> Vec<u8> {
        let mut k = vec![TYPE_TOTP | 0x01];
        k.extend_from_slice(key);
        let mut data = tlv::encode(&[tag::KEY], &k);
        tlv::put(&mut data, &[tag::CHALLENGE], challenge);
        tlv::put(&mut data, &[tag::RESPONSE], response);
        data
    }

    /// What yubikit's `validate` sends after SELECT handed out `challenge`.
    fn validate(t: &mut TestCard, key: &[u8], challenge: &[u8]) -> (Vec<u8>, u16) {
        let mut data = tlv::encode(&[tag::RESPONSE], &hmac_sha1(key, challenge));
        tlv::put(&mut data, &[tag::CHALLENGE], b"hostchal");
        t.send(ins::VALIDATE, 0, 0, &data)
    }

    #[test]
    fn select_reports_version_and_salt() {
        let mut t = new_card();
        let tlvs = t.select();
        assert_eq!(tlvs[0], (tag::VERSION, vec![5, 4, 3]));
        assert_eq!(tlvs[1].0, tag::NAME);
        assert_eq!(tlvs[1].1.len(), 8);
        assert_eq!(tlvs.len(), 2, "no challenge without a password");
        // The full 8-byte AID selects it too.
        assert_eq!(t.send(0xA4, 4, 0, AID).1, 0x9000);
    }

    #[test]
    fn rfc6238_totp_vectors() {
        let mut t = new_card();
        t.select();
        let cases: [(&[u8], u8, u64, &str); 6] = [
            (RFC_KEY_SHA1, 0x01, 59, "94287082"),
            (RFC_KEY_SHA256, 0x02, 59, "46119246"),
            (RFC_KEY_SHA512, 0x03, 59, "90693936"),
            (RFC_KEY_SHA1, 0x01, 1_111_111_109, "07081804"),
            (RFC_KEY_SHA256, 0x02, 1_111_111_109, "68084774"),
            (RFC_KEY_SHA512, 0x03, 1_111_111_109, "25091201"),
        ];
        for (key, alg, time, expected) in cases {
            for digits in [6u8, 8] {
                assert_eq!(t.put(b"rfc", TYPE_TOTP | alg, digits, key, &[]), 0x9000);
                let code = t.code(b"rfc", &step(time));
                assert_eq!(code.len(), digits as usize);
                assert!(expected.ends_with(&code), "{alg} {time}: {code}");
            }
        }
        // The example in DESIGN.md: step 1, 6 digits.
        assert_eq!(t.put(b"rfc", 0x21, 6, RFC_KEY_SHA1, &[]), 0x9000);
        assert_eq!(t.code(b"rfc", &1u64.to_be_bytes()), "287082");
    }

    #[test]
    fn rfc4226_hotp_counts_up_and_ignores_the_challenge() {
        let mut t = new_card();
        t.select();
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        assert_eq!(t.put(b"hotp", TYPE_HOTP | 1, 6, RFC_KEY_SHA1, &[]), 0x9000);
        for (i, want) in expected.iter().enumerate() {
            // yubikit sends an empty challenge; anything else changes nothing.
            let challenge: &[u8] = if i % 2 == 0 { &[] } else { b"whatever" };
            assert_eq!(&t.code(b"hotp", challenge), want, "count {i}");
        }
        // The initial moving factor (7A) starts the count elsewhere.
        let imf = tlv::encode(&[tag::IMF], &5u32.to_be_bytes());
        assert_eq!(t.put(b"hotp", TYPE_HOTP | 1, 6, RFC_KEY_SHA1, &imf), 0x9000);
        assert_eq!(t.code(b"hotp", &[]), "254676");
        assert_eq!(t.code(b"hotp", &[]), "287922");
    }

    #[test]
    fn full_responses_match_rfc_hmac_vectors() {
        let mut t = new_card();
        t.select();
        // RFC 2202 / RFC 4231 test case 2; the short key arrives padded to
        // 14 bytes as yubikit sends it, which HMAC's own padding absorbs.
        let mut jefe = b"Jefe".to_vec();
        jefe.resize(14, 0);
        let msg = b"what do ya want for nothing?";
        let cases: [(u8, &str); 3] = [
            (1, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
            (
                2,
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                3,
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                 9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ),
        ];
        for (alg, hexdigest) in cases {
            assert_eq!(t.put(b"test", TYPE_TOTP | alg, 6, &jefe, &[]), 0x9000);
            let (data, sw) = t.calc(b"test", msg, false);
            assert_eq!(sw, 0x9000);
            let digest = hex::decode(hexdigest).unwrap();
            assert_eq!(data[0], tag::RESPONSE);
            assert_eq!(data[1] as usize, digest.len() + 1);
            assert_eq!(data[2], 6, "digits");
            assert_eq!(&data[3..], &digest[..]);
        }
    }

    #[test]
    fn list_reports_type_and_algorithm_in_order_and_put_overwrites() {
        let mut t = new_card();
        t.select();
        assert_eq!(t.put(b"a", 0x21, 6, b"k1", &[]), 0x9000);
        assert_eq!(t.put(b"Issuer:b", 0x12, 8, b"k2", &[]), 0x9000);
        assert_eq!(t.put(b"60/c", 0x23, 7, b"k3", &[]), 0x9000);
        let list = t.ok(ins::LIST, 0, 0, &[]);
        let mut expected = Vec::new();
        tlv::put(&mut expected, &[0x72], b"\x21a");
        tlv::put(&mut expected, &[0x72], b"\x12Issuer:b");
        tlv::put(&mut expected, &[0x72], b"\x2360/c");
        assert_eq!(list, expected);
        // Same name: replaced in place, not added.
        assert_eq!(t.put(b"Issuer:b", 0x21, 6, b"k4", &[]), 0x9000);
        let list = t.ok(ins::LIST, 0, 0, &[]);
        assert_eq!(tlv::parse(&list).unwrap()[1].value, b"\x21Issuer:b");
        assert_eq!(t.card.state.oath.credential_names().len(), 3);
    }

    #[test]
    fn list_over_256_bytes_chains_with_send_remaining() {
        let mut t = new_card();
        t.select();
        let names: Vec<Vec<u8>> = (0..10)
            .map(|i| format!("{i:02}{}", "x".repeat(58)).into_bytes())
            .collect();
        for n in &names {
            assert_eq!(t.put(n, 0x21, 6, b"key", &[]), 0x9000);
        }
        let (first, sw) = t.send(ins::LIST, 0, 0, &[]);
        assert_eq!(first.len(), 256);
        assert_eq!(sw, 0x61FF);
        let (all, sw) = t.send_all(ins::LIST, 0, 0, &[]);
        assert_eq!(sw, 0x9000);
        assert_eq!(all.len(), 10 * 63);
        let got: Vec<Vec<u8>> = tlv::parse(&all)
            .unwrap()
            .iter()
            .map(|e| e.value[1..].to_vec())
            .collect();
        assert_eq!(got, names);
        // An extended-length LIST gets everything at once.
        let (data, sw) = t.raw(&[0, ins::LIST, 0, 0, 0, 0, 0]);
        assert_eq!((data.len(), sw), (630, 0x9000));
    }

    #[test]
    fn calculate_all_computes_totp_and_names_the_rest() {
        let mut t = new_card();
        t.select();
        assert_eq!(t.put(b"totp", 0x21, 8, RFC_KEY_SHA1, &[]), 0x9000);
        assert_eq!(t.put(b"hotp", 0x11, 6, RFC_KEY_SHA1, &[]), 0x9000);
        assert_eq!(
            t.put(
                b"touch",
                0x21,
                7,
                RFC_KEY_SHA1,
                &[tag::PROPERTY, PROP_TOUCH]
            ),
            0x9000
        );
        t.card.controls().set_touch(TouchMode::Never);
        let data = t.ok(
            ins::CALCULATE_ALL,
            0,
            1,
            &tlv::encode(&[tag::CHALLENGE], &step(59)),
        );
        let tlvs = tlv::parse(&data).unwrap();
        let tags: Vec<u16> = tlvs.iter().map(|e| e.tag).collect();
        assert_eq!(tags, [0x71, 0x76, 0x71, 0x77, 0x71, 0x7C]);
        assert_eq!(tlvs[0].value, b"totp");
        let mut trunc = vec![0x76, 5];
        trunc.extend_from_slice(tlvs[1].value);
        assert_eq!(format_code(&trunc), "94287082");
        assert_eq!(tlvs[3].value, [6]);
        assert_eq!(tlvs[5].value, [7]);
        // No touch was asked for, and the HOTP counter did not move.
        assert_eq!(t.card.controls().lock().touches, 0);
        t.card.controls().set_touch(TouchMode::Now);
        assert_eq!(t.code(b"hotp", &[]), "755224");
        // P2 00: full responses.
        let data = t.ok(
            ins::CALCULATE_ALL,
            0,
            0,
            &tlv::encode(&[tag::CHALLENGE], &step(59)),
        );
        let tlvs = tlv::parse(&data).unwrap();
        assert_eq!(tlvs[1].tag, 0x75);
        assert_eq!(&tlvs[1].value[1..], &hmac_sha1(RFC_KEY_SHA1, &step(59))[..]);
    }

    #[test]
    fn touch_credentials_wait_for_the_touch() {
        let mut t = new_card();
        t.select();
        let touch = [tag::PROPERTY, PROP_TOUCH];
        assert_eq!(t.put(b"touch", 0x21, 6, RFC_KEY_SHA1, &touch), 0x9000);
        assert_eq!(t.put(b"hotp-touch", 0x11, 6, RFC_KEY_SHA1, &touch), 0x9000);

        t.card.controls().set_touch(TouchMode::Never);
        let started = Instant::now();
        assert_eq!(t.calc(b"touch", &step(59), true).1, 0x6982);
        assert!(started.elapsed() >= Duration::from_millis(200));
        // A refused HOTP touch does not use up a count.
        assert_eq!(t.calc(b"hotp-touch", &[], true).1, 0x6982);

        t.card.controls().set_touch(TouchMode::After(50));
        assert_eq!(t.code(b"touch", &step(59)), "287082");
        assert_eq!(t.code(b"hotp-touch", &[]), "755224");
        assert_eq!(t.card.controls().lock().touches, 2);

        // Touch given later than the card waits: timeout.
        t.card.controls().set_touch(TouchMode::After(1000));
        assert_eq!(t.calc(b"touch", &step(59), false).1, 0x6982);
    }

    #[test]
    fn password_set_validate_and_remove() {
        let mut t = new_card();
        t.select();
        assert_eq!(t.put(b"acct", 0x21, 6, RFC_KEY_SHA1, &[]), 0x9000);
        let salt = t.salt();
        let key = derive("hunter2", &salt);

        // The client must prove it computes the same response.
        let bad = set_code_data(&key, b"12345678", &[0u8; 20]);
        assert_eq!(t.send(ins::SET_CODE, 0, 0, &bad).1, 0x6984);
        let bad_len = set_code_data(&key, b"12345678", &[0u8; 19]);
        assert_eq!(t.send(ins::SET_CODE, 0, 0, &bad_len).1, 0x6A80);
        let good = set_code_data(&key, b"12345678", &hmac_sha1(&key, b"12345678"));
        assert_eq!(t.send(ins::SET_CODE, 0, 0, &good).1, 0x9000);
        assert!(t.card.state.oath.has_password());
        // Same session: still usable, as yubikit expects after set_key.
        assert_eq!(t.send(ins::LIST, 0, 0, &[]).1, 0x9000);

        // A new session (here after power loss) is locked until VALIDATE.
        t.card.lose_power("test");
        let tlvs = t.select();
        let challenge = tlvs
            .iter()
            .find(|(t, _)| *t == tag::CHALLENGE)
            .unwrap()
            .1
            .clone();
        assert_eq!(challenge.len(), 8);
        assert!(tlvs.contains(&(tag::ALGORITHM, vec![0x01])));
        for ins in [
            ins::LIST,
            ins::PUT,
            ins::DELETE,
            ins::CALCULATE,
            ins::CALCULATE_ALL,
            ins::SET_CODE,
            ins::RENAME,
        ] {
            assert_eq!(
                t.send(ins, 0, 0, b"\x71\x04acct").1,
                0x6982,
                "INS {ins:02X}"
            );
        }
        let wrong = derive("hunter3", &salt);
        assert_eq!(validate(&mut t, &wrong, &challenge).1, 0x6A80);
        assert_eq!(t.send(ins::LIST, 0, 0, &[]).1, 0x6982);
        let (answer, sw) = validate(&mut t, &key, &challenge);
        assert_eq!(sw, 0x9000);
        assert_eq!(
            answer,
            tlv::encode(&[tag::RESPONSE], &hmac_sha1(&key, b"hostchal"))
        );
        assert_eq!(t.code(b"acct", &step(59)), "287082");

        // Re-selecting keeps the validation, though a new challenge comes.
        let again = t.select();
        assert!(again
            .iter()
            .any(|(t, v)| *t == tag::CHALLENGE && *v != challenge));
        assert_eq!(t.send(ins::LIST, 0, 0, &[]).1, 0x9000);
        // Selecting another applet, or losing power, locks it again.
        t.send(0xA4, 4, 0, &[0xA0, 0, 0, 3, 8]);
        t.send(0xA4, 4, 0, &AID[..7]);
        assert_eq!(t.send(ins::LIST, 0, 0, &[]).1, 0x6982);
        let challenge = t
            .select()
            .into_iter()
            .find(|(t, _)| *t == tag::CHALLENGE)
            .unwrap()
            .1;
        assert_eq!(validate(&mut t, &key, &challenge).1, 0x9000);
        t.card.lose_power("test");
        assert_eq!(t.send(ins::LIST, 0, 0, &[]).1, 0x6D00, "nothing selected");
        t.select();
        assert_eq!(t.send(ins::LIST, 0, 0, &[]).1, 0x6982);

        // Removing it (`73 00`) after validating.
        let challenge = t
            .select()
            .into_iter()
            .find(|(t, _)| *t == tag::CHALLENGE)
            .unwrap()
            .1;
        assert_eq!(validate(&mut t, &key, &challenge).1, 0x9000);
        assert_eq!(t.send(ins::SET_CODE, 0, 0, &[tag::KEY, 0]).1, 0x9000);
        assert_eq!(t.select().len(), 2);
        assert_eq!(t.send(ins::LIST, 0, 0, &[]).1, 0x9000);
        // VALIDATE without a password set.
        assert_eq!(validate(&mut t, &key, b"12345678").1, 0x6984);
    }

    #[test]
    fn reset_wipes_everything_and_changes_the_salt() {
        let mut t = new_card();
        t.select();
        let salt = t.salt();
        let key = derive("pw", &salt);
        assert_eq!(t.put(b"acct", 0x21, 6, RFC_KEY_SHA1, &[]), 0x9000);
        let set = set_code_data(&key, b"abcdefgh", &hmac_sha1(&key, b"abcdefgh"));
        assert_eq!(t.send(ins::SET_CODE, 0, 0, &set).1, 0x9000);
        t.select();
        assert_eq!(t.send(ins::RESET, 0xDE, 0xAE, &[]).1, 0x6A86);
        // Allowed while locked.
        assert_eq!(t.send(ins::RESET, 0xDE, 0xAD, &[]).1, 0x9000);
        let tlvs = t.select();
        assert_eq!(tlvs.len(), 2);
        assert_ne!(tlvs[1].1, salt);
        assert_eq!(t.ok(ins::LIST, 0, 0, &[]), Vec::<u8>::new());
    }

    #[test]
    fn delete_and_rename() {
        let mut t = new_card();
        t.select();
        assert_eq!(t.put(b"one", 0x21, 6, RFC_KEY_SHA1, &[]), 0x9000);
        assert_eq!(t.put(b"two", 0x21, 6, b"other", &[]), 0x9000);
        let rename = |old: &[u8], new: &[u8]| {
            let mut d = tlv::encode(&[tag::NAME], old);
            tlv::put(&mut d, &[tag::NAME], new);
            d
        };
        assert_eq!(
            t.send(ins::RENAME, 0, 0, &rename(b"one", b"Issuer:uno")).1,
            0x9000
        );
        assert_eq!(t.calc(b"one", &step(59), true).1, 0x6984);
        assert_eq!(t.code(b"Issuer:uno", &step(59)), "287082");
        assert_eq!(t.send(ins::RENAME, 0, 0, &rename(b"one", b"x")).1, 0x6984);
        // Its own name is in use too (Yubico's test_rename_to_existing).
        assert_eq!(
            t.send(ins::RENAME, 0, 0, &rename(b"Issuer:uno", b"Issuer:uno"))
                .1,
            0x6A80
        );
        assert_eq!(
            t.send(ins::RENAME, 0, 0, &rename(b"two", b"Issuer:uno")).1,
            0x6A80
        );
        assert_eq!(
            t.send(ins::RENAME, 0, 0, &rename(b"two", &[b'n'; 65])).1,
            0x6A80
        );
        assert_eq!(t.send(ins::RENAME, 0, 0, b"\x71\x03two").1, 0x6A80);

        assert_eq!(t.send(ins::DELETE, 0, 0, b"\x71\x03two").1, 0x9000);
        assert_eq!(t.send(ins::DELETE, 0, 0, b"\x71\x03two").1, 0x6984);
        assert_eq!(
            t.card.state.oath.credential_names(),
            vec![b"Issuer:uno".to_vec()]
        );
    }

    #[test]
    fn holds_32_credentials() {
        let mut t = new_card();
        t.select();
        for i in 0..MAX_CREDENTIALS {
            assert_eq!(
                t.put(format!("c{i}").as_bytes(), 0x21, 6, b"k", &[]),
                0x9000
            );
        }
        assert_eq!(t.put(b"one too many", 0x21, 6, b"k", &[]), 0x6A84);
        // Overwriting still works when full.
        assert_eq!(t.put(b"c7", 0x21, 8, b"k", &[]), 0x9000);
        assert_eq!(t.send(ins::DELETE, 0, 0, b"\x71\x02c0").1, 0x9000);
        assert_eq!(t.put(b"one too many", 0x21, 6, b"k", &[]), 0x9000);
    }

    #[test]
    fn put_rejects_bad_credentials() {
        let mut t = new_card();
        t.select();
        // Name, type and algorithm, digits, key, trailing properties.
        type Case = (&'static [u8], u8, u8, &'static [u8], &'static [u8]);
        let cases: [Case; 9] = [
            (b"", 0x21, 6, b"k", &[]),
            (&[b'n'; 65], 0x21, 6, b"k", &[]),
            (b"n", 0x24, 6, b"k", &[]),
            (b"n", 0x31, 6, b"k", &[]),
            (b"n", 0x21, 5, b"k", &[]),
            (b"n", 0x21, 9, b"k", &[]),
            (b"n", 0x21, 6, &[1; 65], &[]),
            (b"n", 0x11, 6, b"k", &[tag::IMF, 2, 0, 1]),
            (b"n", 0x21, 6, b"k", &[tag::PROPERTY, 0x04]),
        ];
        for (name, kind, digits, key, extra) in cases {
            assert_eq!(
                t.put(name, kind, digits, key, extra),
                0x6A80,
                "{kind:02X} {digits} {extra:02X?}"
            );
        }
        // Longest name and a SHA-512 block-size key are fine.
        assert_eq!(t.put(&[b'n'; 64], 0x23, 6, &[1; 128], &[]), 0x9000);
        assert_eq!(t.send(ins::PUT, 0, 0, b"\x71\x01n").1, 0x6A80);
        assert_eq!(t.send(ins::PUT, 0, 0, b"\x73\x03\x21\x06k").1, 0x6A80);
        assert_eq!(
            t.send(ins::PUT, 0, 0, b"\x71\x01n\x73\x03\x21\x06k\x78").1,
            0x6A80
        );
        assert_eq!(
            t.send(ins::PUT, 0, 0, b"\x71\x01n\x73\x03\x21\x06k\x7A\x04\x00")
                .1,
            0x6A80
        );
        assert_eq!(
            t.send(ins::PUT, 0, 1, b"\x71\x01n\x73\x03\x21\x06k").1,
            0x6A86
        );
        assert!(t.card.state.oath.credential_names().len() == 1);
    }

    #[test]
    fn calculate_rejects_bad_requests() {
        let mut t = new_card();
        t.select();
        assert_eq!(t.put(b"n", 0x21, 6, RFC_KEY_SHA1, &[]), 0x9000);
        assert_eq!(t.calc(b"missing", &step(59), true).1, 0x6984);
        assert_eq!(t.calc(b"n", &[], true).1, 0x6A80, "TOTP needs a challenge");
        assert_eq!(t.calc(b"n", &[0; 65], true).1, 0x6A80);
        assert_eq!(
            t.send(ins::CALCULATE, 0, 2, b"\x71\x01n\x74\x01\x01").1,
            0x6A86
        );
        assert_eq!(
            t.send(ins::CALCULATE, 1, 1, b"\x71\x01n\x74\x01\x01").1,
            0x6A86
        );
        assert_eq!(t.send(ins::CALCULATE, 0, 1, b"\x74\x01\x01").1, 0x6A80);
        assert_eq!(t.send(ins::CALCULATE_ALL, 0, 1, &[]).1, 0x6A80);
        assert_eq!(t.send(ins::CALCULATE_ALL, 0, 1, b"\x74\x00").1, 0x6A80);
        assert_eq!(t.send(0x99, 0, 0, &[]).1, 0x6D00);
        // SEND REMAINING with nothing pending.
        assert_eq!(t.send(ins::SEND_REMAINING, 0, 0, &[]), (vec![], 0x9000));
    }

    #[test]
    fn increasing_only_refuses_older_challenges() {
        let mut t = new_card();
        t.select();
        let prop = [tag::PROPERTY, PROP_INCREASING];
        assert_eq!(t.put(b"inc", 0x21, 6, RFC_KEY_SHA1, &prop), 0x9000);
        assert_eq!(t.code(b"inc", &step(90)), t.code(b"inc", &step(90)));
        assert_eq!(t.calc(b"inc", &step(59), true).1, 0x6982);
        // The whole CALCULATE ALL is refused rather than half answered.
        let all = tlv::encode(&[tag::CHALLENGE], &step(59));
        assert_eq!(t.send(ins::CALCULATE_ALL, 0, 1, &all).1, 0x6982);
        assert_eq!(t.calc(b"inc", &step(120), true).1, 0x9000);
        assert_eq!(
            t.calc(b"inc", &[0, 0, 0, 0, 0, 0, 0, 0, 0, 4], true).1,
            0x9000,
            "same value, longer encoding"
        );
    }

    #[test]
    fn state_survives_a_serde_round_trip() {
        let mut t = new_card();
        t.select();
        let salt = t.salt();
        assert_eq!(
            t.put(
                b"totp",
                0x22,
                8,
                RFC_KEY_SHA256,
                &[tag::PROPERTY, PROP_TOUCH]
            ),
            0x9000
        );
        assert_eq!(t.put(b"hotp", 0x11, 6, RFC_KEY_SHA1, &[]), 0x9000);
        assert_eq!(t.code(b"hotp", &[]), "755224");
        let key = derive("pw", &salt);
        let set = set_code_data(&key, b"abcdefgh", &hmac_sha1(&key, b"abcdefgh"));
        assert_eq!(t.send(ins::SET_CODE, 0, 0, &set).1, 0x9000);

        let json = serde_json::to_string(&t.card.state).unwrap();
        let state: DeviceState = serde_json::from_str(&json).unwrap();
        let mut t2 = TestCard {
            card: Card::new(
                state,
                None,
                Controls::new(Duration::from_millis(200)),
                ApduLog::disabled(),
            ),
            _dir: tempfile::tempdir().unwrap(),
        };
        let tlvs = t2.select();
        assert_eq!(tlvs[1].1, salt);
        let challenge = tlvs
            .iter()
            .find(|(t, _)| *t == tag::CHALLENGE)
            .unwrap()
            .1
            .clone();
        assert_eq!(validate(&mut t2, &key, &challenge).1, 0x9000);
        assert_eq!(t2.code(b"totp", &step(59)), "46119246");
        assert_eq!(t2.code(b"hotp", &[]), "287082", "counter persisted");
        // Touch property persisted.
        t2.card.controls().set_touch(TouchMode::Never);
        assert_eq!(t2.calc(b"totp", &step(59), true).1, 0x6982);
    }

    #[test]
    fn old_state_without_oath_fields_loads() {
        let oath: Oath = serde_json::from_str("{}").unwrap();
        assert_eq!(oath.salt.len(), 8);
        assert!(oath.credentials.is_empty());
    }

    #[test]
    fn malformed_input_never_panics() {
        let mut t = new_card();
        t.select();
        assert_eq!(t.put(b"totp", 0x21, 6, RFC_KEY_SHA1, &[]), 0x9000);
        assert_eq!(
            t.put(b"hotp", 0x11, 6, RFC_KEY_SHA1, &[tag::PROPERTY, PROP_TOUCH]),
            0x9000
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x0A7B);
        let all_ins = [
            ins::PUT,
            ins::DELETE,
            ins::SET_CODE,
            ins::RENAME,
            ins::LIST,
            ins::CALCULATE,
            ins::VALIDATE,
            ins::CALCULATE_ALL,
            ins::SEND_REMAINING,
            ins::RESET,
            0xC0,
            0x00,
        ];
        let tags = [
            0x71u8, 0x72, 0x73, 0x74, 0x75, 0x78, 0x7A, 0x7F, 0x81, 0x82, 0xFF,
        ];
        for round in 0..4000 {
            let ins = all_ins[rng.gen_range(0..all_ins.len())];
            // Mostly tag-shaped data, so parsing gets past the first byte.
            let mut data = Vec::new();
            for _ in 0..rng.gen_range(0..6) {
                data.push(tags[rng.gen_range(0..tags.len())]);
                let len = rng.gen_range(0..0x90u8);
                data.push(len);
                let n = rng.gen_range(0..=(len as usize + 2));
                data.extend((0..n).map(|_| rng.gen::<u8>()));
            }
            data.truncate(255);
            let p2 = if rng.gen_bool(0.5) { 0 } else { rng.gen() };
            // Never RESET: it would empty the applet and end the test early.
            let (p1, p2) = if ins == ins::RESET {
                (0, 0)
            } else {
                (rng.gen_range(0..2), p2)
            };
            let (_, sw) = t.send(ins, p1, p2, &data);
            let plausible = [0x90, 0x61, 0x67, 0x69, 0x6A, 0x6D, 0x6E, 0x6F];
            assert!(plausible.contains(&(sw >> 8)), "round {round}: {sw:04X}");
            if round % 500 == 0 {
                t.select();
            }
        }
        // Raw garbage, including truncated headers and lengths.
        for _ in 0..2000 {
            let n = rng.gen_range(0..12);
            let mut raw: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            if raw.len() >= 2 {
                raw[0] &= 0x10;
                raw[1] = all_ins[rng.gen_range(0..all_ins.len())];
            }
            let _ = t.card.transmit(&raw).unwrap();
        }
        // Still the same applet afterwards, unless the fuzz reset or locked it.
        let tlvs = t.select();
        assert_eq!(tlvs[0].1, vec![5, 4, 3]);
    }
}
