//! The PIV applet (NIST SP 800-73 with Yubico's extensions), answering as a
//! YubiKey 5 on firmware 5.4.3 does, or, for the 5.7.4 personality, with
//! its AES-192 default management key and MOVE / DELETE KEY.
//!
//! Encodings follow what yubikit (`yubikit/piv.py`), yubico-piv-tool
//! (`lib/ykpiv.c`) and the yubikey crate send and parse. Slot keys are the
//! algorithms of firmware 5.4.3: RSA-1024, RSA-2048, P-256 and P-384; the
//! 5.7.4 personality adds RSA-3072 and RSA-4096 (on 5.4.3 they answer 6A80,
//! as a real 5.4.3 does).

use crate::apdu::{sw, Command, Reply};
use crate::attest::{self, AttestationKey, Attested, TestRoot};
use crate::c25519;
use crate::card::{Applet, Env};
use crate::tlv;
use rand::rngs::OsRng;
use rand::RngCore;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::BigUint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub const AID: &[u8] = &[
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];

const INS_VERIFY: u8 = 0x20;
const INS_CHANGE_REFERENCE: u8 = 0x24;
const INS_RESET_RETRY: u8 = 0x2C;
const INS_GENERATE: u8 = 0x47;
const INS_AUTHENTICATE: u8 = 0x87;
const INS_GET_DATA: u8 = 0xCB;
const INS_PUT_DATA: u8 = 0xDB;
/// MOVE KEY (P1 = destination slot, P2 = source) and, with P1 = FF,
/// DELETE KEY: firmware 5.7 and later (yubikit's piv.py).
const INS_MOVE_KEY: u8 = 0xF6;
/// P1 of INS_MOVE_KEY that deletes the key in slot P2 instead of moving it.
const DELETE_KEY_P1: u8 = 0xFF;
const INS_GET_METADATA: u8 = 0xF7;
const INS_GET_SERIAL: u8 = 0xF8;
const INS_ATTEST: u8 = 0xF9;
const INS_SET_PIN_RETRIES: u8 = 0xFA;
const INS_RESET: u8 = 0xFB;
const INS_GET_VERSION: u8 = 0xFD;
const INS_IMPORT_KEY: u8 = 0xFE;
const INS_SET_MGMT_KEY: u8 = 0xFF;

pub const PIN_REF: u8 = 0x80;
pub const PUK_REF: u8 = 0x81;
pub const MGMT_SLOT: u8 = 0x9B;
pub const ATTESTATION_SLOT: u8 = 0xF9;

pub const ALG_3DES: u8 = 0x03;
pub const ALG_AES128: u8 = 0x08;
pub const ALG_AES192: u8 = 0x0A;
pub const ALG_AES256: u8 = 0x0C;
pub const ALG_RSA1024: u8 = 0x06;
pub const ALG_RSA2048: u8 = 0x07;
/// RSA-3072 and RSA-4096: firmware 5.7 and later (yubikit's KEY_TYPE).
pub const ALG_RSA3072: u8 = 0x05;
pub const ALG_RSA4096: u8 = 0x16;
/// Ed25519 and X25519: firmware 5.7 and later (yubikit's KEY_TYPE).
pub const ALG_ED25519: u8 = 0xE0;
pub const ALG_X25519: u8 = 0xE1;
pub const ALG_P256: u8 = 0x11;
pub const ALG_P384: u8 = 0x14;
/// Algorithm byte GET METADATA reports for the PIN and PUK.
const ALG_PIN: u8 = 0xFF;

pub const PIN_POLICY_NEVER: u8 = 1;
pub const PIN_POLICY_ONCE: u8 = 2;
pub const PIN_POLICY_ALWAYS: u8 = 3;
pub const TOUCH_POLICY_NEVER: u8 = 1;
pub const TOUCH_POLICY_ALWAYS: u8 = 2;
pub const TOUCH_POLICY_CACHED: u8 = 3;

const ORIGIN_GENERATED: u8 = 1;
const ORIGIN_IMPORTED: u8 = 2;

pub const DEFAULT_PIN: &[u8] = b"123456";
pub const DEFAULT_PUK: &[u8] = b"12345678";
pub const DEFAULT_MGMT_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];
const DEFAULT_TRIES: u8 = 3;

/// A touch for a Cached-policy key stays good this long on a YubiKey.
const TOUCH_CACHE: Duration = Duration::from_secs(15);

/// Largest object body (the value of tag 53). yubico-piv-tool and the
/// yubikey crate cap writes at 3063 bytes (their buffer minus the
/// 5C/53 headers); a real YubiKey 5 has the same per-object limit.
const MAX_OBJECT: usize = 3063;

pub const OBJ_DISCOVERY: u32 = 0x7E;
pub const OBJ_PRINTED: u32 = 0x5FC109;
pub const OBJ_ADMIN: u32 = 0x5FFF00;
pub const OBJ_ATTESTATION: u32 = 0x5FFF01;

/// Objects SP 800-73 reads only after PIN verification: fingerprints,
/// facial image, printed information, iris. A YubiKey refuses them with
/// 6982 before the PIN even when they are empty (Yubico's GET DATA docs;
/// yubikit's `get_pivman_protected_data` reads 6982 as "PIN required" and
/// only 6A82 as "nothing stored yet").
const PIN_PROTECTED_OBJECTS: [u32; 4] = [0x5FC103, 0x5FC108, OBJ_PRINTED, 0x5FC121];

/// The discovery object: PIV AID, PIN usage policy "PIV PIN only".
const DISCOVERY: &[u8] = &[
    0x7E, 0x12, 0x4F, 0x0B, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00, 0x5F,
    0x2F, 0x02, 0x40, 0x00,
];

/// SELECT answer: application property template with the PIV AID, as a
/// YubiKey 5 sends it.
const SELECT_RESPONSE: &[u8] = &[
    0x61, 0x11, 0x4F, 0x06, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00, 0x79, 0x07, 0x4F, 0x05, 0xA0, 0x00,
    0x00, 0x03, 0x08,
];

/// Bytes that persist as a hex string in the state file.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text)
            .map(Bytes)
            .map_err(serde::de::Error::custom)
    }
}

/// Map keys (slots, object ids) written as hex, so the state file says
/// `"9a"` and `"5fc105"` as PIV documentation does.
mod hex_keys {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub trait HexKey: Sized + Ord + Copy {
        fn to_hex(self) -> String;
        fn from_hex(text: &str) -> Option<Self>;
    }
    impl HexKey for u8 {
        fn to_hex(self) -> String {
            format!("{self:02x}")
        }
        fn from_hex(text: &str) -> Option<u8> {
            u8::from_str_radix(text, 16).ok()
        }
    }
    impl HexKey for u32 {
        fn to_hex(self) -> String {
            format!("{self:x}")
        }
        fn from_hex(text: &str) -> Option<u32> {
            u32::from_str_radix(text, 16).ok()
        }
    }

    pub fn serialize<K: HexKey, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(map.iter().map(|(k, v)| (k.to_hex(), v)))
    }

    pub fn deserialize<'de, K: HexKey, V: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<K, V>, D::Error> {
        BTreeMap::<String, V>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| {
                K::from_hex(&k)
                    .map(|k| (k, v))
                    .ok_or_else(|| D::Error::custom(format!("not a hex id: {k:?}")))
            })
            .collect()
    }
}

/// The PIN or the PUK: its value padded with FF to 8 bytes, and its tries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reference {
    pub value: Bytes,
    pub total: u8,
    pub left: u8,
}

impl Reference {
    fn new(value: &[u8], tries: u8) -> Reference {
        Reference {
            value: Bytes(pad8(value)),
            total: tries,
            left: tries,
        }
    }
    fn blocked(&self) -> bool {
        self.left == 0
    }
    fn matches(&self, candidate: &[u8]) -> bool {
        ct_eq(&self.value.0, candidate)
    }
    /// The status word of a failed check, which decrements the counter.
    fn fail(&mut self, env: &mut Env<'_>) -> u16 {
        self.left = self.left.saturating_sub(1);
        env.mark_dirty();
        tries_sw(self.left)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MgmtKey {
    pub alg: u8,
    pub key: Bytes,
    /// Set with SET MANAGEMENT KEY P2 = FE: every authentication needs a touch.
    pub touch: bool,
}

/// The default management key's algorithm: 3DES before firmware 5.7,
/// AES-192 (same 24 bytes) from 5.7 on (yubikit's piv.py checks the same
/// version for its default).
pub fn default_mgmt_alg(version: [u8; 3]) -> u8 {
    if version >= [5, 7, 0] {
        ALG_AES192
    } else {
        ALG_3DES
    }
}

impl MgmtKey {
    fn factory(version: [u8; 3]) -> MgmtKey {
        MgmtKey {
            alg: default_mgmt_alg(version),
            key: Bytes(DEFAULT_MGMT_KEY.to_vec()),
            touch: false,
        }
    }
}

/// The public exponent of every RSA key: the only one a YubiKey generates,
/// and the only one ykman and yubico-piv-tool import (the card is sent the
/// CRT parameters only, so it cannot learn another).
const RSA_EXPONENT: u32 = 65_537;

/// A private key in a slot. `scalar` is, for EC keys, the big-endian
/// private scalar; for RSA keys, the primes P ‖ Q, each big-endian and half
/// the modulus length (the public exponent is always 65537).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlotKey {
    pub alg: u8,
    pub scalar: Bytes,
    pub pin_policy: u8,
    pub touch_policy: u8,
    pub origin: u8,
}

#[derive(Debug, Clone)]
enum Pending {
    /// Mutual authentication: the plaintext witness the host must return.
    Witness(Vec<u8>),
    /// External authentication: the challenge the host must encrypt.
    Challenge(Vec<u8>),
}

/// What the card forgets on power loss or when another applet is selected.
#[derive(Debug, Clone, Default)]
struct Session {
    pin_verified: bool,
    /// A VERIFY was the last PIV command: a PIN-Always key may be used once.
    pin_always: bool,
    mgmt_authenticated: bool,
    pending: Option<Pending>,
    last_touch: Option<Instant>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Piv {
    pub pin: Reference,
    pub puk: Reference,
    pub mgmt: MgmtKey,
    /// Slot → key; F9 is the attestation key.
    #[serde(with = "hex_keys")]
    pub keys: BTreeMap<u8, SlotKey>,
    /// Object id → value of its tag 53.
    #[serde(with = "hex_keys")]
    pub objects: BTreeMap<u32, Bytes>,
    #[serde(skip)]
    session: Session,
}

impl Piv {
    /// A factory-fresh applet with its attestation key certified by `root`.
    pub fn factory(_serial: u32, version: [u8; 3], root: &TestRoot) -> Piv {
        let mut piv = Piv {
            pin: Reference::new(DEFAULT_PIN, DEFAULT_TRIES),
            puk: Reference::new(DEFAULT_PUK, DEFAULT_TRIES),
            mgmt: MgmtKey::factory(version),
            keys: BTreeMap::new(),
            objects: BTreeMap::new(),
            session: Session::default(),
        };
        match root.new_attestation_key() {
            Ok((scalar, cert)) => {
                piv.keys.insert(
                    ATTESTATION_SLOT,
                    SlotKey {
                        alg: ALG_P256,
                        scalar: Bytes(scalar),
                        pin_policy: PIN_POLICY_NEVER,
                        touch_policy: TOUCH_POLICY_NEVER,
                        // Yubico loads the F9 key at the factory.
                        origin: ORIGIN_IMPORTED,
                    },
                );
                piv.objects
                    .insert(OBJ_ATTESTATION, Bytes(certificate_object(&cert)));
            }
            // Without a usable root the key still works; ATTEST answers 6A88.
            Err(e) => eprintln!("virtual-yubikey: no attestation key: {e}"),
        }
        piv
    }

    /// PIV part of a factory reset: the attestation key and its
    /// certificate survive, as on a real key.
    fn reset(&mut self, version: [u8; 3]) {
        let f9 = self.keys.remove(&ATTESTATION_SLOT);
        let f9_cert = self.objects.remove(&OBJ_ATTESTATION);
        self.pin = Reference::new(DEFAULT_PIN, DEFAULT_TRIES);
        self.puk = Reference::new(DEFAULT_PUK, DEFAULT_TRIES);
        self.mgmt = MgmtKey::factory(version);
        self.keys.clear();
        self.objects.clear();
        if let Some(k) = f9 {
            self.keys.insert(ATTESTATION_SLOT, k);
        }
        if let Some(c) = f9_cert {
            self.objects.insert(OBJ_ATTESTATION, c);
        }
        self.session = Session::default();
    }

    fn verify(&mut self, cmd: &Command, env: &mut Env<'_>, always: bool) -> Result<Reply, u16> {
        if cmd.p2 != PIN_REF {
            // 96 (biometrics) included: ykman reads 6A88 as "not a YubiKey Bio".
            return Err(sw::REF_NOT_FOUND);
        }
        match cmd.p1 {
            0x00 => {}
            // Firmware 5.4.3+: unverify, used by yubico-piv-tool before counting tries.
            0xFF if cmd.data.is_empty() => {
                self.session.pin_verified = false;
                return Ok(Reply::empty());
            }
            _ => return Err(sw::INCORRECT_P1P2),
        }
        if cmd.data.is_empty() {
            // A status query, which clients interleave freely: it must not
            // cost a PIN-Always key its pending verification.
            self.session.pin_always = always;
            return if self.pin.blocked() {
                Err(sw::AUTH_BLOCKED)
            } else if self.session.pin_verified {
                Ok(Reply::empty())
            } else {
                Err(tries_sw(self.pin.left))
            };
        }
        if cmd.data.len() != 8 {
            return Err(sw::INCORRECT_DATA);
        }
        if self.pin.blocked() {
            return Err(sw::AUTH_BLOCKED);
        }
        if self.pin.matches(&cmd.data) {
            if self.pin.left != self.pin.total {
                self.pin.left = self.pin.total;
                env.mark_dirty();
            }
            self.session.pin_verified = true;
            self.session.pin_always = true;
            Ok(Reply::empty())
        } else {
            self.session.pin_verified = false;
            Err(self.pin.fail(env))
        }
    }

    fn change_reference(&mut self, cmd: &Command, env: &mut Env<'_>) -> Result<Reply, u16> {
        if cmd.p1 != 0 {
            return Err(sw::INCORRECT_P1P2);
        }
        let is_pin = match cmd.p2 {
            PIN_REF => true,
            PUK_REF => false,
            _ => return Err(sw::REF_NOT_FOUND),
        };
        if cmd.data.len() != 16 {
            return Err(sw::INCORRECT_DATA);
        }
        let (old, new) = cmd.data.split_at(8);
        let reference = if is_pin { &mut self.pin } else { &mut self.puk };
        if reference.blocked() {
            return Err(sw::AUTH_BLOCKED);
        }
        // The old value is checked first: clients block a PIN or PUK on
        // purpose with deliberately wrong (even empty) values.
        if !reference.matches(old) {
            let code = reference.fail(env);
            if is_pin {
                self.session.pin_verified = false;
            }
            return Err(code);
        }
        if !valid_pin(new) {
            return Err(sw::INCORRECT_DATA);
        }
        if env.pin_complexity && !complex_enough(new) {
            return Err(sw::CONDITIONS_NOT_SATISFIED);
        }
        reference.value = Bytes(new.to_vec());
        reference.left = reference.total;
        env.mark_dirty();
        Ok(Reply::empty())
    }

    fn reset_retry(&mut self, cmd: &Command, env: &mut Env<'_>) -> Result<Reply, u16> {
        if cmd.p1 != 0 {
            return Err(sw::INCORRECT_P1P2);
        }
        if cmd.p2 != PIN_REF {
            return Err(sw::REF_NOT_FOUND);
        }
        if cmd.data.len() != 16 {
            return Err(sw::INCORRECT_DATA);
        }
        let (puk, new_pin) = cmd.data.split_at(8);
        if self.puk.blocked() {
            return Err(sw::AUTH_BLOCKED);
        }
        if !self.puk.matches(puk) {
            return Err(self.puk.fail(env));
        }
        if !valid_pin(new_pin) {
            return Err(sw::INCORRECT_DATA);
        }
        if env.pin_complexity && !complex_enough(new_pin) {
            return Err(sw::CONDITIONS_NOT_SATISFIED);
        }
        self.puk.left = self.puk.total;
        self.pin.value = Bytes(new_pin.to_vec());
        self.pin.left = self.pin.total;
        env.mark_dirty();
        Ok(Reply::empty())
    }

    fn set_pin_retries(&mut self, cmd: &Command, env: &mut Env<'_>) -> Result<Reply, u16> {
        if !self.session.mgmt_authenticated || !self.session.pin_verified {
            return Err(sw::SECURITY_STATUS);
        }
        if cmd.p1 == 0 || cmd.p2 == 0 {
            return Err(sw::INCORRECT_P1P2);
        }
        // Both go back to their defaults, as documented for the YubiKey.
        self.pin = Reference::new(DEFAULT_PIN, cmd.p1);
        self.puk = Reference::new(DEFAULT_PUK, cmd.p2);
        self.session.pin_verified = false;
        env.mark_dirty();
        Ok(Reply::empty())
    }

    fn factory_reset(&mut self, env: &mut Env<'_>) -> Result<Reply, u16> {
        if !(self.pin.blocked() && self.puk.blocked()) {
            return Err(sw::CONDITIONS_NOT_SATISFIED);
        }
        self.reset(env.version);
        env.mark_dirty();
        Ok(Reply::empty())
    }

    fn authenticate(
        &mut self,
        cmd: &Command,
        env: &mut Env<'_>,
        always: bool,
    ) -> Result<Reply, u16> {
        let outer = tlv::parse(&cmd.data)?;
        let template = match outer.as_slice() {
            [t] if t.tag == 0x7C => t.value,
            _ => return Err(sw::INCORRECT_DATA),
        };
        let inner = tlv::parse(template)?;
        if cmd.p2 == MGMT_SLOT {
            self.mgmt_authenticate(cmd.p1, &inner, env)
        } else {
            self.use_key(cmd.p1, cmd.p2, &inner, env, always)
        }
    }

    /// Management key authentication, both ways yubikit, yubico-piv-tool
    /// and the yubikey crate do it:
    /// mutual: `80 00` → `80 E(w)`; `80 w 81 c` → `82 E(c)`;
    /// external: `81 00` → `81 c`; `82 E(c)` → 9000.
    fn mgmt_authenticate(
        &mut self,
        alg: u8,
        inner: &[tlv::Tlv<'_>],
        env: &mut Env<'_>,
    ) -> Result<Reply, u16> {
        if alg != self.mgmt.alg {
            return Err(sw::INCORRECT_P1P2);
        }
        let (_, block) = mgmt_params(alg).ok_or(sw::INCORRECT_P1P2)?;
        let witness = tlv::find(inner, 0x80);
        let challenge = tlv::find(inner, 0x81);
        let response = tlv::find(inner, 0x82);
        let pending = self.session.pending.take();
        match (witness, challenge, response) {
            (Some([]), None, None) => {
                let w = random_bytes(block);
                let mut encrypted = w.clone();
                self.mgmt_cipher(&mut encrypted, true)?;
                self.session.pending = Some(Pending::Witness(w));
                Ok(Reply::ok(dynamic_auth(0x80, &encrypted)))
            }
            (Some(w), Some(c), None) if !w.is_empty() => {
                let Some(Pending::Witness(expected)) = pending else {
                    return Err(sw::CONDITIONS_NOT_SATISFIED);
                };
                if c.len() != block {
                    return Err(sw::INCORRECT_DATA);
                }
                if !ct_eq(w, &expected) {
                    self.session.mgmt_authenticated = false;
                    return Err(sw::SECURITY_STATUS);
                }
                self.mgmt_touch(env)?;
                let mut answer = c.to_vec();
                self.mgmt_cipher(&mut answer, true)?;
                self.session.mgmt_authenticated = true;
                Ok(Reply::ok(dynamic_auth(0x82, &answer)))
            }
            (None, Some([]), None) => {
                let c = random_bytes(block);
                self.session.pending = Some(Pending::Challenge(c.clone()));
                Ok(Reply::ok(dynamic_auth(0x81, &c)))
            }
            (None, None, Some(r)) if !r.is_empty() => {
                let Some(Pending::Challenge(mut expected)) = pending else {
                    return Err(sw::CONDITIONS_NOT_SATISFIED);
                };
                self.mgmt_cipher(&mut expected, true)?;
                if !ct_eq(r, &expected) {
                    self.session.mgmt_authenticated = false;
                    return Err(sw::SECURITY_STATUS);
                }
                self.mgmt_touch(env)?;
                self.session.mgmt_authenticated = true;
                Ok(Reply::empty())
            }
            _ => Err(sw::INCORRECT_DATA),
        }
    }

    fn mgmt_cipher(&self, block: &mut [u8], encrypt: bool) -> Result<(), u16> {
        mgmt_block(self.mgmt.alg, &self.mgmt.key.0, block, encrypt)
    }

    fn mgmt_touch(&mut self, env: &mut Env<'_>) -> Result<(), u16> {
        if self.mgmt.touch {
            env.touch()?;
            self.session.last_touch = Some(Instant::now());
        }
        Ok(())
    }

    /// ECDH (`82 00 85 point`) and ECDSA (`82 00 81 hash`) with an EC slot
    /// key; the raw RSA operation (`82 00 81 block`) with an RSA one.
    fn use_key(
        &mut self,
        alg: u8,
        slot: u8,
        inner: &[tlv::Tlv<'_>],
        env: &mut Env<'_>,
        always: bool,
    ) -> Result<Reply, u16> {
        if !is_key_slot(slot) {
            return Err(sw::INCORRECT_P1P2);
        }
        let key = self.keys.get(&slot).cloned().ok_or(sw::INCORRECT_DATA)?;
        if key.alg != alg {
            return Err(sw::INCORRECT_DATA);
        }
        if tlv::find(inner, 0x82) != Some(&[]) {
            return Err(sw::INCORRECT_DATA);
        }
        let op = match (tlv::find(inner, 0x81), tlv::find(inner, 0x85)) {
            (Some(hash), None) => Op::Sign(hash),
            (None, Some(point)) if !point.is_empty() => Op::Ecdh(point),
            _ => return Err(sw::INCORRECT_DATA),
        };
        let secret = Secret::from_slot(&key)?;
        // Key agreement only with EC and X25519 keys, signing with any but X25519.
        if matches!(
            (&secret, &op),
            (Secret::Rsa(_) | Secret::Ed25519(_), Op::Ecdh(_)) | (Secret::X25519(_), Op::Sign(_))
        ) {
            return Err(sw::INCORRECT_DATA);
        }
        self.check_policies(&key, env, always)?;
        let out = match op {
            Op::Sign(input) => secret.sign(input)?,
            Op::Ecdh(point) => secret.ecdh(point)?,
        };
        Ok(Reply::ok(dynamic_auth(0x82, &out)))
    }

    /// PIN first, then touch, so a key whose PIN is missing never asks
    /// for a touch.
    fn check_policies(
        &mut self,
        key: &SlotKey,
        env: &mut Env<'_>,
        always: bool,
    ) -> Result<(), u16> {
        let pin_ok = match key.pin_policy {
            PIN_POLICY_NEVER => true,
            PIN_POLICY_ALWAYS => self.session.pin_verified && always,
            _ => self.session.pin_verified,
        };
        if !pin_ok {
            return Err(sw::SECURITY_STATUS);
        }
        let cached = self
            .session
            .last_touch
            .is_some_and(|t| t.elapsed() < TOUCH_CACHE);
        let needs_touch = match key.touch_policy {
            TOUCH_POLICY_ALWAYS => true,
            TOUCH_POLICY_CACHED => !cached,
            _ => false,
        };
        if needs_touch {
            env.touch()?;
            self.session.last_touch = Some(Instant::now());
        }
        Ok(())
    }

    fn generate(&mut self, cmd: &Command, env: &mut Env<'_>) -> Result<Reply, u16> {
        if !self.session.mgmt_authenticated {
            return Err(sw::SECURITY_STATUS);
        }
        if cmd.p1 != 0 || !is_key_slot(cmd.p2) {
            return Err(sw::INCORRECT_P1P2);
        }
        let outer = tlv::parse(&cmd.data)?;
        let template = tlv::find(&outer, 0xAC).ok_or(sw::INCORRECT_DATA)?;
        let inner = tlv::parse(template)?;
        let alg = single_byte(tlv::find(&inner, 0x80)).ok_or(sw::INCORRECT_DATA)?;
        let (pin_policy, touch_policy) = policies(&inner, cmd.p2)?;
        // 6A80 is what a key answers for an algorithm it does not support.
        if !alg_supported(alg, env.version) {
            return Err(sw::INCORRECT_DATA);
        }
        let secret = Secret::generate(alg).ok_or(sw::INCORRECT_DATA)?;
        let public = secret.public_tlv();
        self.keys.insert(
            cmd.p2,
            SlotKey {
                alg,
                scalar: Bytes(secret.scalar()),
                pin_policy,
                touch_policy,
                origin: ORIGIN_GENERATED,
            },
        );
        env.mark_dirty();
        let public = if env.take_relay_generate() {
            Secret::generate(alg)
                .ok_or(sw::INCORRECT_DATA)?
                .public_tlv()
        } else {
            public
        };
        Ok(Reply::ok(tlv::encode(&[0x7F, 0x49], &public)))
    }

    fn import_key(&mut self, cmd: &Command, env: &mut Env<'_>) -> Result<Reply, u16> {
        if !self.session.mgmt_authenticated {
            return Err(sw::SECURITY_STATUS);
        }
        let slot = cmd.p2;
        if !is_key_slot(slot) && slot != ATTESTATION_SLOT {
            return Err(sw::INCORRECT_P1P2);
        }
        let alg = cmd.p1;
        if !alg_supported(alg, env.version) {
            return Err(sw::INCORRECT_DATA);
        }
        let items = tlv::parse(&cmd.data)?;
        let secret = match alg {
            ALG_RSA1024 | ALG_RSA2048 | ALG_RSA3072 | ALG_RSA4096 => Secret::from_crt(alg, &items)?,
            // yubikit's put_key: the raw private key in 07 (Ed25519) or 08 (X25519).
            ALG_ED25519 | ALG_X25519 => {
                let tag = if alg == ALG_ED25519 { 0x07 } else { 0x08 };
                Secret::from_scalar(alg, tlv::find(&items, tag).ok_or(sw::INCORRECT_DATA)?)?
            }
            _ => Secret::from_scalar(alg, tlv::find(&items, 0x06).ok_or(sw::INCORRECT_DATA)?)?,
        };
        let (pin_policy, touch_policy) = policies(&items, slot)?;
        self.keys.insert(
            slot,
            SlotKey {
                alg,
                scalar: Bytes(secret.scalar()),
                pin_policy,
                touch_policy,
                origin: ORIGIN_IMPORTED,
            },
        );
        env.mark_dirty();
        Ok(Reply::empty())
    }

    fn attest(&mut self, cmd: &Command, env: &mut Env<'_>) -> Result<Reply, u16> {
        let slot = cmd.p1;
        if !is_key_slot(slot) {
            return Err(sw::INCORRECT_P1P2);
        }
        let key = self.keys.get(&slot).ok_or(sw::INCORRECT_DATA)?;
        // Only keys born on the card can be vouched for.
        if key.origin != ORIGIN_GENERATED {
            return Err(sw::INCORRECT_DATA);
        }
        let spki = Secret::from_slot(key)?.spki_der()?;
        let f9 = self.keys.get(&ATTESTATION_SLOT).ok_or(sw::REF_NOT_FOUND)?;
        let signer = match Secret::from_slot(f9)? {
            Secret::P256(k) => AttestationKey::P256(k.into()),
            Secret::P384(k) => AttestationKey::P384(k.into()),
            // An RSA F9 key (real keys ship one) cannot sign here yet.
            Secret::Rsa(_) | Secret::Ed25519(_) | Secret::X25519(_) => {
                return Err(sw::FUNC_NOT_SUPPORTED)
            }
        };
        let f9_cert = self
            .objects
            .get(&OBJ_ATTESTATION)
            .and_then(|o| certificate_from_object(&o.0));
        let der = attest::attest(
            &signer,
            f9_cert.as_deref(),
            &Attested {
                slot,
                spki_der: &spki,
                pin_policy: key.pin_policy,
                touch_policy: key.touch_policy,
                serial: env.serial,
                version: env.version,
            },
        )
        .map_err(|_| sw::WRONG_DATA_LAST_CMD)?;
        Ok(Reply::ok(der))
    }

    fn get_data(&mut self, cmd: &Command) -> Result<Reply, u16> {
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF) {
            return Err(sw::INCORRECT_P1P2);
        }
        let id = object_id(&tlv::parse(&cmd.data)?)?;
        if id == OBJ_DISCOVERY {
            return Ok(Reply::ok(DISCOVERY.to_vec()));
        }
        if !writable_object(id) {
            return Err(sw::INCORRECT_DATA);
        }
        // Before the PIN, whether or not there is anything to read.
        if PIN_PROTECTED_OBJECTS.contains(&id) && !self.session.pin_verified {
            return Err(sw::SECURITY_STATUS);
        }
        let value = self.objects.get(&id).ok_or(sw::FILE_NOT_FOUND)?;
        Ok(Reply::ok(tlv::encode(&[0x53], &value.0)))
    }

    fn put_data(&mut self, cmd: &Command, env: &mut Env<'_>) -> Result<Reply, u16> {
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF) {
            return Err(sw::INCORRECT_P1P2);
        }
        if !self.session.mgmt_authenticated {
            return Err(sw::SECURITY_STATUS);
        }
        let items = tlv::parse(&cmd.data)?;
        let id = object_id(&items)?;
        if !writable_object(id) {
            return Err(sw::INCORRECT_DATA);
        }
        let value = tlv::find(&items, 0x53).ok_or(sw::INCORRECT_DATA)?;
        if value.len() > MAX_OBJECT {
            return Err(sw::NO_SPACE);
        }
        if value.is_empty() {
            self.objects.remove(&id);
        } else {
            self.objects.insert(id, Bytes(value.to_vec()));
        }
        env.mark_dirty();
        Ok(Reply::empty())
    }

    fn metadata(&self, cmd: &Command, env: &Env<'_>) -> Result<Reply, u16> {
        if cmd.p1 != 0 {
            return Err(sw::INCORRECT_P1P2);
        }
        let mut out = Vec::new();
        match cmd.p2 {
            PIN_REF | PUK_REF => {
                let (r, default) = if cmd.p2 == PIN_REF {
                    (&self.pin, DEFAULT_PIN)
                } else {
                    (&self.puk, DEFAULT_PUK)
                };
                tlv::put(&mut out, &[0x01], &[ALG_PIN]);
                tlv::put(&mut out, &[0x05], &[u8::from(r.matches(&pad8(default)))]);
                tlv::put(&mut out, &[0x06], &[r.total, r.left]);
            }
            MGMT_SLOT => {
                let touch = if self.mgmt.touch {
                    TOUCH_POLICY_ALWAYS
                } else {
                    TOUCH_POLICY_NEVER
                };
                let default = self.mgmt.alg == default_mgmt_alg(env.version)
                    && self.mgmt.key.0 == DEFAULT_MGMT_KEY;
                tlv::put(&mut out, &[0x01], &[self.mgmt.alg]);
                tlv::put(&mut out, &[0x02], &[0x00, touch]);
                tlv::put(&mut out, &[0x05], &[u8::from(default)]);
            }
            slot if is_key_slot(slot) || slot == ATTESTATION_SLOT => {
                let key = self.keys.get(&slot).ok_or(sw::REF_NOT_FOUND)?;
                let public = Secret::from_slot(key)?.public_tlv();
                tlv::put(&mut out, &[0x01], &[key.alg]);
                tlv::put(&mut out, &[0x02], &[key.pin_policy, key.touch_policy]);
                tlv::put(&mut out, &[0x03], &[key.origin]);
                tlv::put(&mut out, &[0x04], &public);
            }
            _ => return Err(sw::REF_NOT_FOUND),
        }
        Ok(Reply::ok(out))
    }

    /// MOVE KEY and DELETE KEY (5.7+): the private key with its algorithm,
    /// policies and origin moves to an empty destination slot; the source
    /// slot is left empty. Certificates are data objects
    /// and stay where they are (ykman moves them itself). The attestation
    /// key F9 can be neither moved nor deleted, nor be a destination.
    fn move_key(&mut self, cmd: &Command, env: &mut Env<'_>) -> Result<Reply, u16> {
        if env.version < [5, 7, 0] {
            return Err(sw::INS_NOT_SUPPORTED);
        }
        if !self.session.mgmt_authenticated {
            return Err(sw::SECURITY_STATUS);
        }
        let (to, from) = (cmd.p1, cmd.p2);
        if !is_key_slot(from) || !(to == DELETE_KEY_P1 || is_key_slot(to)) {
            return Err(sw::INCORRECT_P1P2);
        }
        if !self.keys.contains_key(&from) {
            return Err(sw::REF_NOT_FOUND);
        }
        // An occupied destination (the source itself included) is refused
        // with 6A80, which ykman reports as "DEST slot is not empty".
        if to != DELETE_KEY_P1 && self.keys.contains_key(&to) {
            return Err(sw::INCORRECT_DATA);
        }
        let key = self.keys.remove(&from).ok_or(sw::REF_NOT_FOUND)?;
        if to != DELETE_KEY_P1 {
            self.keys.insert(to, key);
        }
        env.mark_dirty();
        Ok(Reply::empty())
    }

    fn set_mgmt_key(&mut self, cmd: &Command, env: &mut Env<'_>) -> Result<Reply, u16> {
        if !self.session.mgmt_authenticated {
            return Err(sw::SECURITY_STATUS);
        }
        let touch = match (cmd.p1, cmd.p2) {
            (0xFF, 0xFF) => false,
            (0xFF, 0xFE) => true,
            _ => return Err(sw::INCORRECT_P1P2),
        };
        let (&alg, rest) = cmd.data.split_first().ok_or(sw::INCORRECT_DATA)?;
        let items = tlv::parse(rest)?;
        let key = tlv::find(&items, MGMT_SLOT as u16).ok_or(sw::INCORRECT_DATA)?;
        let (key_len, _) = mgmt_params(alg).ok_or(sw::INCORRECT_DATA)?;
        if key.len() != key_len {
            return Err(sw::INCORRECT_DATA);
        }
        self.mgmt = MgmtKey {
            alg,
            key: Bytes(key.to_vec()),
            touch,
        };
        env.mark_dirty();
        Ok(Reply::empty())
    }
}

impl Applet for Piv {
    fn name(&self) -> &'static str {
        "piv"
    }
    fn aid(&self) -> &'static [u8] {
        AID
    }
    /// Re-selecting PIV keeps PIN and management-key status (SP 800-73-4
    /// 3.1.1; age-plugin-yubikey relies on it on YubiKey 5), but drops a
    /// half-done management authentication and a pending PIN-Always grant.
    fn select(&mut self, _env: &mut Env<'_>) -> Reply {
        self.session.pending = None;
        self.session.pin_always = false;
        Reply::ok(SELECT_RESPONSE.to_vec())
    }
    fn deselect(&mut self) {
        self.session = Session::default();
    }
    fn process(&mut self, cmd: &Command, env: &mut Env<'_>) -> Reply {
        // "PIN Always" means the VERIFY must come right before the key
        // use: any other command in between spends the grant.
        let always = std::mem::take(&mut self.session.pin_always);
        let result = match cmd.ins {
            INS_VERIFY => self.verify(cmd, env, always),
            INS_CHANGE_REFERENCE => self.change_reference(cmd, env),
            INS_RESET_RETRY => self.reset_retry(cmd, env),
            INS_GENERATE => self.generate(cmd, env),
            INS_AUTHENTICATE => self.authenticate(cmd, env, always),
            INS_GET_DATA => self.get_data(cmd),
            INS_PUT_DATA => self.put_data(cmd, env),
            INS_GET_METADATA => self.metadata(cmd, env),
            INS_GET_SERIAL => Ok(Reply::ok(env.serial.to_be_bytes().to_vec())),
            INS_ATTEST => self.attest(cmd, env),
            INS_SET_PIN_RETRIES => self.set_pin_retries(cmd, env),
            INS_RESET => self.factory_reset(env),
            INS_GET_VERSION => Ok(Reply::ok(env.version.to_vec())),
            INS_IMPORT_KEY => self.import_key(cmd, env),
            INS_SET_MGMT_KEY => self.set_mgmt_key(cmd, env),
            INS_MOVE_KEY => self.move_key(cmd, env),
            // The Ed25519/RSA-3072 family arrived in 5.7.
            _ => Err(sw::INS_NOT_SUPPORTED),
        };
        result.unwrap_or_else(Reply::sw)
    }
}

enum Op<'a> {
    Sign(&'a [u8]),
    Ecdh(&'a [u8]),
}

/// A slot's private key: EC on one of the two curves, or RSA.
enum Secret {
    P256(p256::SecretKey),
    P384(p384::SecretKey),
    Rsa(Box<rsa::RsaPrivateKey>),
    /// The 32-byte seed (RFC 8032's private key).
    Ed25519([u8; 32]),
    /// The 32-byte private key (RFC 7748's scalar, clamped when used).
    X25519([u8; 32]),
}

/// Modulus length in bytes of an RSA algorithm id.
fn rsa_len(alg: u8) -> Option<usize> {
    match alg {
        ALG_RSA1024 => Some(128),
        ALG_RSA2048 => Some(256),
        ALG_RSA3072 => Some(384),
        ALG_RSA4096 => Some(512),
        _ => None,
    }
}

/// Whether firmware `version` has keys of algorithm `alg`: RSA-3072/4096
/// only from 5.7 (before, GENERATE and IMPORT answer 6A80, as for any
/// algorithm a key lacks).
fn alg_supported(alg: u8, version: [u8; 3]) -> bool {
    !matches!(alg, ALG_RSA3072 | ALG_RSA4096 | ALG_ED25519 | ALG_X25519) || version >= [5, 7, 0]
}

/// An RSA key from its primes, with e = 65537, whose modulus has exactly
/// the algorithm's size.
fn rsa_from_primes(alg: u8, p: &[u8], q: &[u8]) -> Result<rsa::RsaPrivateKey, u16> {
    let len = rsa_len(alg).ok_or(sw::INCORRECT_DATA)?;
    let (p, q) = (BigUint::from_bytes_be(p), BigUint::from_bytes_be(q));
    let one = BigUint::from(1u8);
    if p <= one || q <= one {
        return Err(sw::INCORRECT_DATA);
    }
    let key = rsa::RsaPrivateKey::from_p_q(p, q, BigUint::from(RSA_EXPONENT))
        .map_err(|_| sw::INCORRECT_DATA)?;
    if key.n().bits() != len * 8 {
        return Err(sw::INCORRECT_DATA);
    }
    Ok(key)
}

/// `value` as exactly `len` big-endian bytes, zeros on the left.
fn be_fixed(value: &BigUint, len: usize) -> Vec<u8> {
    let bytes = value.to_bytes_be();
    let mut out = vec![0u8; len.saturating_sub(bytes.len())];
    out.extend_from_slice(&bytes);
    out
}

impl Secret {
    /// A new key; RSA ones with e = 65537, as a YubiKey makes them.
    fn generate(alg: u8) -> Option<Secret> {
        match alg {
            ALG_P256 => Some(Secret::P256(p256::SecretKey::random(&mut OsRng))),
            ALG_P384 => Some(Secret::P384(p384::SecretKey::random(&mut OsRng))),
            ALG_RSA1024 | ALG_RSA2048 | ALG_RSA3072 | ALG_RSA4096 => {
                let bits = rsa_len(alg)? * 8;
                rsa::RsaPrivateKey::new(&mut OsRng, bits)
                    .ok()
                    .map(|k| Secret::Rsa(Box::new(k)))
            }
            ALG_ED25519 => Some(Secret::Ed25519(rand::random())),
            ALG_X25519 => Some(Secret::X25519(rand::random())),
            _ => None,
        }
    }

    /// An EC scalar of exactly the curve's size, in `[1, n)`; or the RSA
    /// primes as `SlotKey` stores them.
    fn from_scalar(alg: u8, scalar: &[u8]) -> Result<Secret, u16> {
        if let Some(len) = rsa_len(alg) {
            if scalar.len() != len {
                return Err(sw::INCORRECT_DATA);
            }
            let (p, q) = scalar.split_at(len / 2);
            return rsa_from_primes(alg, p, q).map(|k| Secret::Rsa(Box::new(k)));
        }
        let secret = match (alg, scalar.len()) {
            (ALG_P256, 32) => p256::SecretKey::from_slice(scalar).map(Secret::P256),
            (ALG_P384, 48) => p384::SecretKey::from_slice(scalar).map(Secret::P384),
            (ALG_ED25519, 32) => return Ok(Secret::Ed25519(scalar.try_into().unwrap_or([0; 32]))),
            (ALG_X25519, 32) => return Ok(Secret::X25519(scalar.try_into().unwrap_or([0; 32]))),
            _ => return Err(sw::INCORRECT_DATA),
        };
        secret.map_err(|_| sw::INCORRECT_DATA)
    }

    /// An RSA import: P, Q, DP, DQ, QINV in tags 01–05, each at most half
    /// the modulus length (clients left-pad them to exactly that). The
    /// key is rebuilt from P and Q with e = 65537, and DP, DQ and QINV
    /// must be that key's, or the card would sign with another key than
    /// the one the client holds.
    fn from_crt(alg: u8, items: &[tlv::Tlv<'_>]) -> Result<Secret, u16> {
        let half = rsa_len(alg).ok_or(sw::INCORRECT_DATA)? / 2;
        let part = |tag: u16| -> Result<&[u8], u16> {
            match tlv::find(items, tag) {
                Some(v) if !v.is_empty() && v.len() <= half => Ok(v),
                _ => Err(sw::INCORRECT_DATA),
            }
        };
        let key = rsa_from_primes(alg, part(0x01)?, part(0x02)?)?;
        let given = |tag| part(tag).map(BigUint::from_bytes_be);
        let consistent = key.dp() == Some(&given(0x03)?)
            && key.dq() == Some(&given(0x04)?)
            && key.crt_coefficient() == Some(given(0x05)?);
        if !consistent {
            return Err(sw::INCORRECT_DATA);
        }
        Ok(Secret::Rsa(Box::new(key)))
    }

    /// A stored key; a corrupt state file answers 6F00 rather than panic.
    fn from_slot(key: &SlotKey) -> Result<Secret, u16> {
        Secret::from_scalar(key.alg, &key.scalar.0).map_err(|_| sw::WRONG_DATA_LAST_CMD)
    }

    fn field_len(&self) -> usize {
        match self {
            Secret::P256(_) | Secret::Ed25519(_) | Secret::X25519(_) => 32,
            Secret::P384(_) => 48,
            Secret::Rsa(k) => k.size(),
        }
    }

    /// What `SlotKey::scalar` stores.
    fn scalar(&self) -> Vec<u8> {
        match self {
            Secret::P256(k) => k.to_bytes().to_vec(),
            Secret::P384(k) => k.to_bytes().to_vec(),
            Secret::Ed25519(k) | Secret::X25519(k) => k.to_vec(),
            Secret::Rsa(k) => {
                let half = k.size() / 2;
                let mut out = Vec::with_capacity(k.size());
                for prime in k.primes() {
                    out.extend(be_fixed(prime, half));
                }
                out
            }
        }
    }

    /// The public key as GENERATE (inside `7F49`) and GET METADATA (tag
    /// 04) carry it: `86 04 X Y` for EC; `81 modulus 82 exponent` for RSA.
    fn public_tlv(&self) -> Vec<u8> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        match self {
            Secret::P256(k) => {
                tlv::encode(&[0x86], k.public_key().to_encoded_point(false).as_bytes())
            }
            Secret::P384(k) => {
                tlv::encode(&[0x86], k.public_key().to_encoded_point(false).as_bytes())
            }
            Secret::Rsa(k) => {
                let mut out = tlv::encode(&[0x81], &be_fixed(k.n(), k.size()));
                tlv::put(&mut out, &[0x82], &k.e().to_bytes_be());
                out
            }
            // The raw 32-byte key, in 86 as yubikit parses it.
            Secret::Ed25519(k) => tlv::encode(&[0x86], &c25519::ed25519_public(k)),
            Secret::X25519(k) => tlv::encode(&[0x86], &c25519::x25519_public(k)),
        }
    }

    /// DER of the public key's SubjectPublicKeyInfo, for attestation.
    fn spki_der(&self) -> Result<Vec<u8>, u16> {
        use spki::EncodePublicKey;
        let der = match self {
            Secret::P256(k) => k.public_key().to_public_key_der(),
            Secret::P384(k) => k.public_key().to_public_key_der(),
            Secret::Rsa(k) => k.to_public_key().to_public_key_der(),
            // RFC 8410: SEQUENCE { SEQUENCE { OID 1.3.101.112 or .110 }, BIT STRING key }.
            Secret::Ed25519(k) => return Ok(spki_8410(0x70, &c25519::ed25519_public(k))),
            Secret::X25519(k) => return Ok(spki_8410(0x6E, &c25519::x25519_public(k))),
        };
        der.map(|d| d.as_bytes().to_vec())
            .map_err(|_| sw::WRONG_DATA_LAST_CMD)
    }

    /// The x-coordinate of the shared point. The peer point must be
    /// uncompressed and on the curve.
    /// X25519: the raw 32-byte peer key in, the raw shared secret out.
    fn ecdh(&self, point: &[u8]) -> Result<Vec<u8>, u16> {
        if let Secret::X25519(k) = self {
            let peer: [u8; 32] = point.try_into().map_err(|_| sw::INCORRECT_DATA)?;
            return Ok(c25519::x25519(k, &peer).to_vec());
        }
        if point.len() != 1 + 2 * self.field_len() || point[0] != 0x04 {
            return Err(sw::INCORRECT_DATA);
        }
        let shared = match self {
            Secret::P256(k) => {
                let peer =
                    p256::PublicKey::from_sec1_bytes(point).map_err(|_| sw::INCORRECT_DATA)?;
                p256::ecdh::diffie_hellman(k.to_nonzero_scalar(), peer.as_affine())
                    .raw_secret_bytes()
                    .to_vec()
            }
            Secret::P384(k) => {
                let peer =
                    p384::PublicKey::from_sec1_bytes(point).map_err(|_| sw::INCORRECT_DATA)?;
                p384::ecdh::diffie_hellman(k.to_nonzero_scalar(), peer.as_affine())
                    .raw_secret_bytes()
                    .to_vec()
            }
            Secret::Rsa(_) | Secret::Ed25519(_) | Secret::X25519(_) => {
                return Err(sw::INCORRECT_DATA)
            }
        };
        Ok(shared)
    }

    /// EC: ECDSA over a prehash, DER-encoded. The hash is fitted to the
    /// field size as ECDSA's bits2int does: longer ones keep their
    /// leftmost bytes, shorter ones are zero-extended on the left.
    ///
    /// RSA: the raw private-key operation, `block^d mod n`, on a block of
    /// exactly the modulus length whose value is below the modulus; the
    /// answer has the modulus length too. Signing and decryption are this
    /// same operation: PKCS#1 v1.5 or PSS padding, and removing it, are the
    /// client's (yubikit `_pad_message`/`_unpad_message`).
    ///
    /// Ed25519: the whole message (yubikit sends it unhashed), 64 bytes out.
    fn sign(&self, hash: &[u8]) -> Result<Vec<u8>, u16> {
        use signature::hazmat::PrehashSigner;
        if let Secret::Ed25519(k) = self {
            return Ok(c25519::ed25519_sign(k, hash).to_vec());
        }
        if let Secret::Rsa(k) = self {
            let m = BigUint::from_bytes_be(hash);
            if hash.len() != k.size() || &m >= k.n() {
                return Err(sw::INCORRECT_DATA);
            }
            return Ok(be_fixed(&m.modpow(k.d(), k.n()), k.size()));
        }
        let n = self.field_len();
        let mut digest = vec![0u8; n];
        if hash.len() >= n {
            digest.copy_from_slice(&hash[..n]);
        } else {
            digest[n - hash.len()..].copy_from_slice(hash);
        }
        let der = match self {
            Secret::P256(k) => {
                let sig: p256::ecdsa::Signature = p256::ecdsa::SigningKey::from(k)
                    .sign_prehash(&digest)
                    .map_err(|_| sw::INCORRECT_DATA)?;
                sig.to_der().as_bytes().to_vec()
            }
            Secret::P384(k) => {
                let sig: p384::ecdsa::Signature = p384::ecdsa::SigningKey::from(k)
                    .sign_prehash(&digest)
                    .map_err(|_| sw::INCORRECT_DATA)?;
                sig.to_der().as_bytes().to_vec()
            }
            Secret::Rsa(_) | Secret::Ed25519(_) | Secret::X25519(_) => {
                return Err(sw::INCORRECT_DATA)
            }
        };
        Ok(der)
    }
}

/// An RFC 8410 SubjectPublicKeyInfo: OID 1.3.101.`oid_last` (112 Ed25519,
/// 110 X25519) and the raw 32-byte key.
fn spki_8410(oid_last: u8, key: &[u8; 32]) -> Vec<u8> {
    let mut out = vec![
        0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, oid_last, 0x03, 0x21, 0x00,
    ];
    out.extend_from_slice(key);
    out
}

/// (key length, block length) of a management key algorithm.
fn mgmt_params(alg: u8) -> Option<(usize, usize)> {
    match alg {
        ALG_3DES => Some((24, 8)),
        ALG_AES128 => Some((16, 16)),
        ALG_AES192 => Some((24, 16)),
        ALG_AES256 => Some((32, 16)),
        _ => None,
    }
}

/// One ECB block with the management key, in place.
fn mgmt_block(alg: u8, key: &[u8], block: &mut [u8], encrypt: bool) -> Result<(), u16> {
    match alg {
        ALG_3DES => ecb::<des::TdesEde3>(key, block, encrypt),
        ALG_AES128 => ecb::<aes::Aes128>(key, block, encrypt),
        ALG_AES192 => ecb::<aes::Aes192>(key, block, encrypt),
        ALG_AES256 => ecb::<aes::Aes256>(key, block, encrypt),
        _ => Err(sw::INCORRECT_P1P2),
    }
}

fn ecb<C>(key: &[u8], block: &mut [u8], encrypt: bool) -> Result<(), u16>
where
    C: cipher::KeyInit + cipher::BlockEncrypt + cipher::BlockDecrypt,
{
    use cipher::generic_array::GenericArray;
    if block.len() != C::block_size() {
        return Err(sw::INCORRECT_DATA);
    }
    let c = C::new_from_slice(key).map_err(|_| sw::WRONG_DATA_LAST_CMD)?;
    let b = GenericArray::from_mut_slice(block);
    if encrypt {
        c.encrypt_block(b);
    } else {
        c.decrypt_block(b);
    }
    Ok(())
}

/// PIN/touch policies from AA/AB, with the slot defaults for 0 or absent:
/// PIN Never for 9E, Always for 9C, Once elsewhere; touch Never.
fn policies(items: &[tlv::Tlv<'_>], slot: u8) -> Result<(u8, u8), u16> {
    let pin = match tlv::find(items, 0xAA) {
        None => 0,
        Some(v) => single_byte(Some(v)).ok_or(sw::INCORRECT_DATA)?,
    };
    let touch = match tlv::find(items, 0xAB) {
        None => 0,
        Some(v) => single_byte(Some(v)).ok_or(sw::INCORRECT_DATA)?,
    };
    let pin = match pin {
        0 => match slot {
            0x9E | ATTESTATION_SLOT => PIN_POLICY_NEVER,
            0x9C => PIN_POLICY_ALWAYS,
            _ => PIN_POLICY_ONCE,
        },
        // 4 and 5 (match once/always) exist only on the YubiKey Bio.
        PIN_POLICY_NEVER..=PIN_POLICY_ALWAYS => pin,
        _ => return Err(sw::INCORRECT_DATA),
    };
    let touch = match touch {
        0 => TOUCH_POLICY_NEVER,
        TOUCH_POLICY_NEVER..=TOUCH_POLICY_CACHED => touch,
        _ => return Err(sw::INCORRECT_DATA),
    };
    Ok((pin, touch))
}

fn single_byte(v: Option<&[u8]>) -> Option<u8> {
    match v {
        Some([b]) => Some(*b),
        _ => None,
    }
}

/// Slots that hold user keys: 9A, 9C, 9D, 9E and retired 82–95.
pub fn is_key_slot(slot: u8) -> bool {
    matches!(slot, 0x9A | 0x9C | 0x9D | 0x9E | 0x82..=0x95)
}

/// The object id of a GET/PUT DATA body: `5C 01 7E`, `5C 02 7F 61` or
/// `5C 03 xx xx xx`.
fn object_id(items: &[tlv::Tlv<'_>]) -> Result<u32, u16> {
    match tlv::find(items, 0x5C) {
        Some([a]) => Ok(u32::from(*a)),
        Some([a, b]) => Ok(u32::from_be_bytes([0, 0, *a, *b])),
        Some([a, b, c]) => Ok(u32::from_be_bytes([0, *a, *b, *c])),
        _ => Err(sw::INCORRECT_DATA),
    }
}

/// The ids a YubiKey stores: "any number between 0x5F0000 and 0x5FFFFF"
/// (the PIV objects 5FC101–5FC123, Yubico's 5FFF00–5FFF15, and every
/// other one, for applications' own data), and the biometric group
/// template 7F61 (Yubico SDK docs, "PIV data objects"). Discovery (7E)
/// is fixed.
fn writable_object(id: u32) -> bool {
    matches!(id, 0x5F0000..=0x5FFFFF | 0x7F61)
}

/// A certificate object as clients store it: `70 cert 71 00 FE 00`
/// (uncompressed, empty LRC).
fn certificate_object(der: &[u8]) -> Vec<u8> {
    let mut out = tlv::encode(&[0x70], der);
    tlv::put(&mut out, &[0x71], &[0x00]);
    tlv::put(&mut out, &[0xFE], &[]);
    out
}

fn certificate_from_object(object: &[u8]) -> Option<Vec<u8>> {
    let items = tlv::parse(object).ok()?;
    tlv::find(&items, 0x70).map(<[u8]>::to_vec)
}

fn dynamic_auth(tag: u8, value: &[u8]) -> Vec<u8> {
    tlv::encode(&[0x7C], &tlv::encode(&[tag], value))
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    OsRng.fill_bytes(&mut out);
    out
}

fn pad8(value: &[u8]) -> Vec<u8> {
    let mut out = value.to_vec();
    out.resize(8, 0xFF);
    out
}

/// A new PIN or PUK: 6 to 8 bytes, then FF padding only.
fn valid_pin(padded: &[u8]) -> bool {
    let len = padded
        .iter()
        .position(|&b| b == 0xFF)
        .unwrap_or(padded.len());
    padded.len() == 8 && (6..=8).contains(&len) && padded[len..].iter().all(|&b| b == 0xFF)
}

/// Commonly used PINs a key with PIN complexity refuses. Yubico documents
/// the rule (no value made of one repeated character, none from a list of
/// common PINs) but not its whole list; these are the ones Yubico's device
/// tests expect refused, plus the default PIN and PUK a user must change.
const COMMON_PINS: [&[u8]; 8] = [
    b"123456",
    b"12345678",
    b"123123",
    b"654321",
    b"password",
    b"abc123",
    b"qwerty",
    b"111111",
];

/// PIN complexity (5.7 keys so configured): a new PIN or PUK (padded with
/// FF to 8 bytes) must not be one repeated character nor a common PIN.
/// Refusals answer 6985, which ykman reports as "does not meet complexity
/// requirement".
fn complex_enough(padded: &[u8]) -> bool {
    let len = padded
        .iter()
        .position(|&b| b == 0xFF)
        .unwrap_or(padded.len());
    let value = &padded[..len];
    let repeated = value.iter().all(|&b| Some(&b) == value.first());
    !repeated && !COMMON_PINS.contains(&value)
}

/// `63Cx`; the nibble tops out at 15 even when more tries remain.
fn tries_sw(left: u8) -> u16 {
    sw::VERIFY_FAIL | u16::from(left.min(15))
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::{Card, DeviceState};
    use crate::control::{Controls, TouchMode};
    use crate::log::ApduLog;
    use der::{Decode, Encode};
    use signature::hazmat::PrehashVerifier;
    use signature::Verifier;
    use x509_cert::Certificate;

    const SERIAL: u32 = 31_415_926;

    struct Key {
        card: Card,
        root: TestRoot,
    }

    fn apdu(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
        let mut out = vec![cla, ins, p1, p2];
        if !data.is_empty() {
            out.push(data.len() as u8);
            out.extend_from_slice(data);
        }
        out
    }

    impl Key {
        fn new() -> Key {
            let root = TestRoot::generate().unwrap();
            let state = DeviceState::factory(SERIAL, &root);
            Key::with_state(state, root)
        }

        fn with_state(state: DeviceState, root: TestRoot) -> Key {
            let controls = Controls::new(Duration::from_millis(200));
            let mut key = Key {
                card: Card::new(state, None, controls, ApduLog::disabled()),
                root,
            };
            let (data, code) = key.send(&apdu(0, 0xA4, 4, 0, &AID[..5]));
            assert_eq!(code, 0x9000);
            assert_eq!(data, SELECT_RESPONSE);
            key
        }

        /// One raw APDU, following 61xx with GET RESPONSE.
        fn send(&mut self, raw: &[u8]) -> (Vec<u8>, u16) {
            let mut out = self.card.transmit(raw).unwrap();
            let mut code = u16::from_be_bytes([out[out.len() - 2], out[out.len() - 1]]);
            out.truncate(out.len() - 2);
            while code & 0xFF00 == 0x6100 {
                let mut more = self.card.transmit(&[0, 0xC0, 0, 0, 0]).unwrap();
                code = u16::from_be_bytes([more[more.len() - 2], more[more.len() - 1]]);
                more.truncate(more.len() - 2);
                out.extend_from_slice(&more);
            }
            (out, code)
        }

        /// A command, chained over CLA 0x10 when its data exceeds 255 bytes.
        fn cmd(&mut self, ins: u8, p1: u8, p2: u8, data: &[u8]) -> (Vec<u8>, u16) {
            let mut chunks: Vec<&[u8]> = data.chunks(255).collect();
            let last = chunks.pop().unwrap_or(&[]);
            for chunk in chunks {
                let (d, code) = self.send(&apdu(0x10, ins, p1, p2, chunk));
                assert_eq!((d.len(), code), (0, 0x9000));
            }
            self.send(&apdu(0, ins, p1, p2, last))
        }

        fn sw(&mut self, ins: u8, p1: u8, p2: u8, data: &[u8]) -> u16 {
            self.cmd(ins, p1, p2, data).1
        }

        fn ok(&mut self, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
            let (d, code) = self.cmd(ins, p1, p2, data);
            assert_eq!(code, 0x9000, "INS {ins:02X} {p1:02X} {p2:02X}");
            d
        }

        fn verify_pin(&mut self, pin: &[u8]) -> u16 {
            self.sw(INS_VERIFY, 0, PIN_REF, &pad8(pin))
        }

        fn auth(&mut self, alg: u8, key: &[u8]) -> u16 {
            let (_, block) = mgmt_params(alg).unwrap();
            let (resp, code) =
                self.cmd(INS_AUTHENTICATE, alg, MGMT_SLOT, &[0x7C, 0x02, 0x80, 0x00]);
            if code != 0x9000 {
                return code;
            }
            assert_eq!(&resp[..4], &[0x7C, block as u8 + 2, 0x80, block as u8]);
            let mut witness = resp[4..].to_vec();
            mgmt_block(alg, key, &mut witness, false).unwrap();
            let challenge = random_bytes(block);
            let mut body = tlv::encode(&[0x80], &witness);
            tlv::put(&mut body, &[0x81], &challenge);
            let (resp, code) = self.cmd(
                INS_AUTHENTICATE,
                alg,
                MGMT_SLOT,
                &tlv::encode(&[0x7C], &body),
            );
            if code != 0x9000 {
                return code;
            }
            let mut expected = challenge;
            mgmt_block(alg, key, &mut expected, true).unwrap();
            assert_eq!(resp, dynamic_auth(0x82, &expected));
            code
        }

        fn auth_default(&mut self) {
            assert_eq!(self.auth(ALG_3DES, &DEFAULT_MGMT_KEY), 0x9000);
        }

        fn generate(&mut self, slot: u8, alg: u8, pin: u8, touch: u8) -> Vec<u8> {
            let mut inner = tlv::encode(&[0x80], &[alg]);
            if pin != 0 {
                tlv::put(&mut inner, &[0xAA], &[pin]);
            }
            if touch != 0 {
                tlv::put(&mut inner, &[0xAB], &[touch]);
            }
            let resp = self.ok(INS_GENERATE, 0, slot, &tlv::encode(&[0xAC], &inner));
            let outer = tlv::parse(&resp).unwrap();
            let body = tlv::find(&outer, 0x7F49).unwrap();
            tlv::find(&tlv::parse(body).unwrap(), 0x86)
                .unwrap()
                .to_vec()
        }

        fn ecdh(&mut self, alg: u8, slot: u8, point: &[u8]) -> (Vec<u8>, u16) {
            let mut inner = tlv::encode(&[0x82], &[]);
            tlv::put(&mut inner, &[0x85], point);
            let (resp, code) = self.cmd(INS_AUTHENTICATE, alg, slot, &tlv::encode(&[0x7C], &inner));
            (unwrap_dyn(&resp), code)
        }

        fn sign(&mut self, alg: u8, slot: u8, hash: &[u8]) -> (Vec<u8>, u16) {
            let mut inner = tlv::encode(&[0x82], &[]);
            tlv::put(&mut inner, &[0x81], hash);
            let (resp, code) = self.cmd(INS_AUTHENTICATE, alg, slot, &tlv::encode(&[0x7C], &inner));
            (unwrap_dyn(&resp), code)
        }

        fn get_object(&mut self, id: u32) -> (Vec<u8>, u16) {
            let (resp, code) = self.cmd(INS_GET_DATA, 0x3F, 0xFF, &object_tag(id));
            if code != 0x9000 {
                return (resp, code);
            }
            let items = tlv::parse(&resp).unwrap();
            (tlv::find(&items, 0x53).unwrap().to_vec(), code)
        }

        fn put_object(&mut self, id: u32, value: &[u8]) -> u16 {
            let mut body = object_tag(id);
            tlv::put(&mut body, &[0x53], value);
            self.sw(INS_PUT_DATA, 0x3F, 0xFF, &body)
        }

        fn touches(&self) -> u64 {
            self.card.controls().lock().touches
        }
    }

    fn object_tag(id: u32) -> Vec<u8> {
        let b = id.to_be_bytes();
        if id <= 0xFF {
            tlv::encode(&[0x5C], &b[3..])
        } else if id <= 0xFFFF {
            tlv::encode(&[0x5C], &b[2..])
        } else {
            tlv::encode(&[0x5C], &b[1..])
        }
    }

    fn unwrap_dyn(resp: &[u8]) -> Vec<u8> {
        if resp.is_empty() {
            return Vec::new();
        }
        let outer = tlv::parse(resp).unwrap();
        let inner = tlv::parse(tlv::find(&outer, 0x7C).unwrap()).unwrap();
        tlv::find(&inner, 0x82).unwrap().to_vec()
    }

    fn metadata(key: &mut Key, slot: u8) -> BTreeMap<u16, Vec<u8>> {
        let resp = key.ok(INS_GET_METADATA, 0, slot, &[]);
        tlv::parse(&resp)
            .unwrap()
            .into_iter()
            .map(|t| (t.tag, t.value.to_vec()))
            .collect()
    }

    #[test]
    fn version_and_serial() {
        let mut key = Key::new();
        assert_eq!(key.send(&[0, 0xFD, 0, 0, 0]), (vec![5, 4, 3], 0x9000));
        assert_eq!(
            key.send(&[0, 0xF8, 0, 0, 0]),
            (SERIAL.to_be_bytes().to_vec(), 0x9000)
        );
        assert_eq!(key.sw(0x01, 0, 0, &[]), 0x6D00);
    }

    #[test]
    fn pin_counts_down_blocks_and_puk_unblocks() {
        let mut key = Key::new();
        assert_eq!(key.sw(INS_VERIFY, 0, PIN_REF, &[]), 0x63C3);
        assert_eq!(key.verify_pin(b"000000"), 0x63C2);
        assert_eq!(key.verify_pin(b"123456"), 0x9000);
        // A success restores the counter and the state query says verified.
        assert_eq!(key.sw(INS_VERIFY, 0, PIN_REF, &[]), 0x9000);
        assert_eq!(metadata(&mut key, PIN_REF)[&6], vec![3, 3]);
        assert_eq!(key.verify_pin(b"999999"), 0x63C2);
        assert_eq!(
            key.sw(INS_VERIFY, 0, PIN_REF, &[]),
            0x63C2,
            "a failure unverifies"
        );
        assert_eq!(key.verify_pin(b"999999"), 0x63C1);
        assert_eq!(key.verify_pin(b"999999"), 0x63C0);
        assert_eq!(key.verify_pin(b"123456"), 0x6983);
        assert_eq!(key.sw(INS_VERIFY, 0, PIN_REF, &[]), 0x6983);
        assert_eq!(metadata(&mut key, PIN_REF)[&6], vec![3, 0]);
        // Wrong lengths are refused without costing a try.
        assert_eq!(key.sw(INS_VERIFY, 0, PIN_REF, b"123456"), 0x6A80);

        let mut body = pad8(b"87654321");
        body.extend(pad8(b"654321"));
        assert_eq!(key.sw(INS_RESET_RETRY, 0, PIN_REF, &body), 0x63C2);
        let mut body = pad8(DEFAULT_PUK);
        body.extend(pad8(b"123"));
        assert_eq!(
            key.sw(INS_RESET_RETRY, 0, PIN_REF, &body),
            0x6A80,
            "PIN too short"
        );
        let mut body = pad8(DEFAULT_PUK);
        body.extend(pad8(b"654321"));
        assert_eq!(key.sw(INS_RESET_RETRY, 0, PIN_REF, &body), 0x9000);
        assert_eq!(metadata(&mut key, PUK_REF)[&6], vec![3, 3]);
        assert_eq!(key.verify_pin(b"123456"), 0x63C2);
        assert_eq!(key.verify_pin(b"654321"), 0x9000);
        assert_eq!(
            metadata(&mut key, PIN_REF)[&5],
            vec![0],
            "no longer default"
        );
    }

    #[test]
    fn change_pin_and_puk() {
        let mut key = Key::new();
        let mut body = pad8(b"000000");
        body.extend(pad8(b"11223344"));
        assert_eq!(key.sw(INS_CHANGE_REFERENCE, 0, PIN_REF, &body), 0x63C2);
        let mut body = pad8(DEFAULT_PIN);
        body.extend(pad8(b"11223344"));
        assert_eq!(key.sw(INS_CHANGE_REFERENCE, 0, PIN_REF, &body), 0x9000);
        assert_eq!(metadata(&mut key, PIN_REF)[&6], vec![3, 3]);
        assert_eq!(key.verify_pin(b"11223344"), 0x9000);

        let mut body = pad8(DEFAULT_PUK);
        body.extend(pad8(b"abcdefgh"));
        assert_eq!(key.sw(INS_CHANGE_REFERENCE, 0, PUK_REF, &body), 0x9000);
        let md = metadata(&mut key, PUK_REF);
        assert_eq!((md[&1].clone(), md[&5].clone()), (vec![0xFF], vec![0]));
        assert_eq!(key.sw(INS_CHANGE_REFERENCE, 0, 0x82, &body), 0x6A88);
    }

    #[test]
    fn deselect_and_power_loss_forget_pin_and_mgmt() {
        let mut key = Key::new();
        assert_eq!(key.verify_pin(DEFAULT_PIN), 0x9000);
        key.auth_default();
        // Re-selecting PIV keeps both.
        key.ok(0xA4, 4, 0, &AID[..9]);
        assert_eq!(key.sw(INS_VERIFY, 0, PIN_REF, &[]), 0x9000);
        assert_eq!(key.put_object(OBJ_ADMIN, &[0x80, 0x00]), 0x9000);
        key.card.lose_power("test");
        key.ok(0xA4, 4, 0, &AID[..5]);
        assert_eq!(key.sw(INS_VERIFY, 0, PIN_REF, &[]), 0x63C3);
        assert_eq!(key.put_object(OBJ_ADMIN, &[0x80, 0x00]), 0x6982);
        // The explicit unverify of firmware 5.4.3.
        assert_eq!(key.verify_pin(DEFAULT_PIN), 0x9000);
        assert_eq!(key.sw(INS_VERIFY, 0xFF, PIN_REF, &[]), 0x9000);
        assert_eq!(key.sw(INS_VERIFY, 0, PIN_REF, &[]), 0x63C3);
    }

    #[test]
    fn management_key_3des_mutual_and_external() {
        let mut key = Key::new();
        assert_eq!(key.put_object(OBJ_ADMIN, &[1]), 0x6982);
        assert_eq!(key.auth(ALG_3DES, &[9u8; 24]), 0x6982);
        // A reply without a witness asked first is out of sequence.
        let mut body = tlv::encode(&[0x80], &[0; 8]);
        tlv::put(&mut body, &[0x81], &[0; 8]);
        assert_eq!(
            key.sw(
                INS_AUTHENTICATE,
                ALG_3DES,
                MGMT_SLOT,
                &tlv::encode(&[0x7C], &body)
            ),
            0x6985
        );
        assert_eq!(key.auth(ALG_AES128, &[0; 16]), 0x6A86, "wrong algorithm");
        key.auth_default();
        assert_eq!(key.put_object(OBJ_ADMIN, &[1]), 0x9000);

        // External authentication, as yubico-piv-tool's auth_getchallenge does.
        let mut key = Key::new();
        let resp = key.ok(
            INS_AUTHENTICATE,
            ALG_3DES,
            MGMT_SLOT,
            &[0x7C, 0x02, 0x81, 0x00],
        );
        assert_eq!(&resp[..4], &[0x7C, 0x0A, 0x81, 0x08]);
        let mut r = resp[4..].to_vec();
        mgmt_block(ALG_3DES, &DEFAULT_MGMT_KEY, &mut r, true).unwrap();
        assert!(key
            .ok(
                INS_AUTHENTICATE,
                ALG_3DES,
                MGMT_SLOT,
                &dynamic_auth(0x82, &r)
            )
            .is_empty());
        assert_eq!(key.put_object(OBJ_ADMIN, &[1]), 0x9000);
        // A replayed response is refused: the challenge was single-use.
        assert_eq!(
            key.sw(
                INS_AUTHENTICATE,
                ALG_3DES,
                MGMT_SLOT,
                &dynamic_auth(0x82, &r)
            ),
            0x6985
        );
    }

    #[test]
    fn management_key_aes_all_sizes_and_touch() {
        let mut key = Key::new();
        assert_eq!(metadata(&mut key, MGMT_SLOT)[&5], vec![1]);
        let mut current = (ALG_3DES, DEFAULT_MGMT_KEY.to_vec());
        for (alg, len) in [(ALG_AES128, 16), (ALG_AES192, 24), (ALG_AES256, 32)] {
            assert_eq!(key.auth(current.0, &current.1), 0x9000);
            let new_key = random_bytes(len);
            let mut body = vec![alg];
            tlv::put(&mut body, &[MGMT_SLOT], &new_key);
            assert_eq!(key.sw(INS_SET_MGMT_KEY, 0xFF, 0xFF, &body), 0x9000);
            let md = metadata(&mut key, MGMT_SLOT);
            assert_eq!(
                (md[&1].clone(), md[&2].clone(), md[&5].clone()),
                (vec![alg], vec![0, 1], vec![0])
            );
            current = (alg, new_key);
        }
        // Wrong length for the algorithm.
        let mut body = vec![ALG_AES128];
        tlv::put(&mut body, &[MGMT_SLOT], &[0; 24]);
        assert_eq!(key.sw(INS_SET_MGMT_KEY, 0xFF, 0xFF, &body), 0x6A80);
        // Touch required (P2 FE): no touch, no authentication.
        let mut body = vec![current.0];
        tlv::put(&mut body, &[MGMT_SLOT], &current.1);
        assert_eq!(key.sw(INS_SET_MGMT_KEY, 0xFF, 0xFE, &body), 0x9000);
        assert_eq!(metadata(&mut key, MGMT_SLOT)[&2], vec![0, 2]);
        key.card.lose_power("test");
        key.ok(0xA4, 4, 0, AID);
        key.card.controls().set_touch(TouchMode::Never);
        assert_eq!(key.auth(current.0, &current.1), 0x6982);
        key.card.controls().set_touch(TouchMode::Now);
        assert_eq!(key.auth(current.0, &current.1), 0x9000);
        assert_eq!(key.touches(), 1);
    }

    #[test]
    fn generate_needs_mgmt_and_ecdh_matches_software() {
        let mut key = Key::new();
        let body = tlv::encode(&[0xAC], &[0x80, 0x01, ALG_P256]);
        assert_eq!(key.sw(INS_GENERATE, 0, 0x82, &body), 0x6982);
        key.auth_default();
        assert_eq!(
            key.sw(
                INS_GENERATE,
                0,
                0x82,
                &tlv::encode(&[0xAC], &[0x80, 0x01, 0x05])
            ),
            0x6A80,
            "RSA-3072 arrived in 5.7"
        );
        assert_eq!(key.sw(INS_GENERATE, 0, 0x9B, &body), 0x6A86);
        assert_eq!(key.sw(INS_GENERATE, 0, 0x82, &[0xAC, 0x03, 0x80]), 0x6A80);

        let point = key.generate(0x82, ALG_P256, PIN_POLICY_ONCE, TOUCH_POLICY_NEVER);
        assert_eq!((point.len(), point[0]), (65, 4));
        let card_pub = p256::PublicKey::from_sec1_bytes(&point).unwrap();
        let eph = p256::SecretKey::random(&mut OsRng);
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let eph_point = eph.public_key().to_encoded_point(false);

        assert_eq!(
            key.ecdh(ALG_P256, 0x82, eph_point.as_bytes()).1,
            0x6982,
            "PIN first"
        );
        assert_eq!(key.verify_pin(DEFAULT_PIN), 0x9000);
        let (shared, code) = key.ecdh(ALG_P256, 0x82, eph_point.as_bytes());
        assert_eq!(code, 0x9000);
        let expected = p256::ecdh::diffie_hellman(eph.to_nonzero_scalar(), card_pub.as_affine());
        assert_eq!(shared, expected.raw_secret_bytes().to_vec());
        // Malformed peers: compressed, off-curve, wrong algorithm, empty slot.
        let compressed = eph.public_key().to_encoded_point(true);
        assert_eq!(key.ecdh(ALG_P256, 0x82, compressed.as_bytes()).1, 0x6A80);
        let mut off = eph_point.as_bytes().to_vec();
        off[40] ^= 1;
        assert_eq!(key.ecdh(ALG_P256, 0x82, &off).1, 0x6A80);
        assert_eq!(key.ecdh(ALG_P384, 0x82, eph_point.as_bytes()).1, 0x6A80);
        assert_eq!(key.ecdh(ALG_P256, 0x83, eph_point.as_bytes()).1, 0x6A80);

        // P-384 too, through the yubikey crate's exact encoding length.
        let point = key.generate(0x9D, ALG_P384, 0, 0);
        assert_eq!(point.len(), 97);
        let card_pub = p384::PublicKey::from_sec1_bytes(&point).unwrap();
        let eph = p384::SecretKey::random(&mut OsRng);
        let (shared, code) = key.ecdh(
            ALG_P384,
            0x9D,
            eph.public_key().to_encoded_point(false).as_bytes(),
        );
        assert_eq!(code, 0x9000);
        let expected = p384::ecdh::diffie_hellman(eph.to_nonzero_scalar(), card_pub.as_affine());
        assert_eq!(shared, expected.raw_secret_bytes().to_vec());
    }

    #[test]
    fn sign_verifies_with_the_public_key() {
        let mut key = Key::new();
        key.auth_default();
        let point = key.generate(0x9A, ALG_P256, PIN_POLICY_NEVER, 0);
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
        let hash: Vec<u8> = sha2::Sha256::digest(b"hello").to_vec();
        let (sig, code) = key.sign(ALG_P256, 0x9A, &hash);
        assert_eq!(code, 0x9000);
        let sig = p256::ecdsa::Signature::from_der(&sig).unwrap();
        vk.verify(b"hello", &sig).unwrap();
        // A SHA-384 hash on P-256 is truncated to its leftmost 32 bytes.
        let long: Vec<u8> = sha2::Sha384::digest(b"hello").to_vec();
        let (sig, _) = key.sign(ALG_P256, 0x9A, &long);
        let sig = p256::ecdsa::Signature::from_der(&sig).unwrap();
        vk.verify_prehash(&long[..32], &sig).unwrap();
        // A short input is zero-extended on the left.
        let (sig, _) = key.sign(ALG_P256, 0x9A, &[1, 2, 3]);
        let sig = p256::ecdsa::Signature::from_der(&sig).unwrap();
        let mut padded = [0u8; 32];
        padded[29..].copy_from_slice(&[1, 2, 3]);
        vk.verify_prehash(&padded, &sig).unwrap();

        let point = key.generate(0x9E, ALG_P384, 0, 0);
        let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
        let (sig, code) = key.sign(ALG_P384, 0x9E, &long);
        assert_eq!(code, 0x9000, "9E defaults to PIN never");
        let sig = p384::ecdsa::Signature::from_der(&sig).unwrap();
        vk.verify(b"hello", &sig).unwrap();
    }

    use sha2::Digest;

    #[test]
    fn pin_always_needs_verify_right_before_each_use() {
        let mut key = Key::new();
        key.auth_default();
        key.generate(0x9C, ALG_P256, 0, 0);
        assert_eq!(
            metadata(&mut key, 0x9C)[&2],
            vec![PIN_POLICY_ALWAYS, TOUCH_POLICY_NEVER]
        );
        let hash = [7u8; 32];
        assert_eq!(key.verify_pin(DEFAULT_PIN), 0x9000);
        assert_eq!(
            key.sw(INS_VERIFY, 0, PIN_REF, &[]),
            0x9000,
            "a status query in between is fine"
        );
        assert_eq!(key.sign(ALG_P256, 0x9C, &hash).1, 0x9000);
        assert_eq!(key.sign(ALG_P256, 0x9C, &hash).1, 0x6982, "used up");
        assert_eq!(key.verify_pin(DEFAULT_PIN), 0x9000);
        key.ok(INS_GET_METADATA, 0, 0x9C, &[]);
        assert_eq!(
            key.sign(ALG_P256, 0x9C, &hash).1,
            0x6982,
            "another command in between"
        );
        assert_eq!(key.verify_pin(DEFAULT_PIN), 0x9000);
        assert_eq!(key.sign(ALG_P256, 0x9C, &hash).1, 0x9000);
    }

    #[test]
    fn touch_always_and_cached() {
        let mut key = Key::new();
        key.auth_default();
        key.generate(0x85, ALG_P256, PIN_POLICY_NEVER, TOUCH_POLICY_ALWAYS);
        key.generate(0x86, ALG_P256, PIN_POLICY_ONCE, TOUCH_POLICY_CACHED);
        let hash = [1u8; 32];
        key.card.controls().set_touch(TouchMode::Never);
        assert_eq!(key.sign(ALG_P256, 0x85, &hash).1, 0x6982);
        // PIN is checked before touch: no touch is requested without it.
        assert_eq!(key.sign(ALG_P256, 0x86, &hash).1, 0x6982);
        key.card.controls().set_touch(TouchMode::Now);
        assert_eq!(key.touches(), 0);
        assert_eq!(key.sign(ALG_P256, 0x85, &hash).1, 0x9000);
        assert_eq!(key.sign(ALG_P256, 0x85, &hash).1, 0x9000);
        assert_eq!(key.touches(), 2);
        assert_eq!(key.verify_pin(DEFAULT_PIN), 0x9000);
        // The last touch is recent, so the cached key needs none now.
        assert_eq!(key.sign(ALG_P256, 0x86, &hash).1, 0x9000);
        assert_eq!(key.sign(ALG_P256, 0x86, &hash).1, 0x9000);
        assert_eq!(key.touches(), 2);
        key.card.state.piv.session.last_touch = Instant::now().checked_sub(Duration::from_secs(16));
        key.card.controls().set_touch(TouchMode::Never);
        assert_eq!(key.sign(ALG_P256, 0x86, &hash).1, 0x6982, "cache expired");
        key.card.controls().set_touch(TouchMode::Now);
        assert_eq!(key.sign(ALG_P256, 0x86, &hash).1, 0x9000);
        assert_eq!(key.touches(), 3);
    }

    #[test]
    fn large_objects_chain_both_ways() {
        let mut key = Key::new();
        key.auth_default();
        let big: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        assert_eq!(key.put_object(0x5FC105, &big), 0x9000);
        let (raw, code) = key.cmd(INS_GET_DATA, 0x3F, 0xFF, &object_tag(0x5FC105));
        assert_eq!(code, 0x9000);
        assert_eq!(&raw[..4], &[0x53, 0x82, 0x0B, 0xB8]);
        assert_eq!(&raw[4..], big.as_slice());
        assert_eq!(key.put_object(0x5FC105, &vec![0; MAX_OBJECT + 1]), 0x6A84);
        // Empty 53 deletes.
        assert_eq!(key.put_object(0x5FC105, &[]), 0x9000);
        assert_eq!(key.get_object(0x5FC105).1, 0x6A82);
        assert_eq!(key.put_object(OBJ_DISCOVERY, &[1]), 0x6A80);
        assert_eq!(key.put_object(0x123456, &[1]), 0x6A80);
        assert_eq!(key.get_object(0x123456).1, 0x6A80);
        // Any id from 5F0000 to 5FFFFF, and the biometric group template.
        for id in [0x5F0000, 0x5F0001, 0x5FC124, 0x5FFFFF, 0x7F61] {
            assert_eq!(key.get_object(id).1, 0x6A82, "{id:x}");
            assert_eq!(key.put_object(id, &[1, 2, 3]), 0x9000, "{id:x}");
            assert_eq!(key.get_object(id), (vec![1, 2, 3], 0x9000), "{id:x}");
        }
        assert_eq!(key.put_object(0x600000, &[1]), 0x6A80);
        let (disc, code) = key.cmd(INS_GET_DATA, 0x3F, 0xFF, &[0x5C, 0x01, 0x7E]);
        assert_eq!((disc, code), (DISCOVERY.to_vec(), 0x9000));
        assert_eq!(
            key.sw(INS_GET_DATA, 0x3F, 0xFF, &[0x5C, 0x02, 0x5F, 0xC1]),
            0x6A80
        );
        assert_eq!(key.sw(INS_GET_DATA, 0, 0, &object_tag(0x5FC105)), 0x6A86);
    }

    #[test]
    fn printed_object_needs_pin() {
        let mut key = Key::new();
        // Refused before the PIN even while empty, as on a real key.
        assert_eq!(key.get_object(OBJ_PRINTED).1, 0x6982);
        assert_eq!(key.verify_pin(DEFAULT_PIN), 0x9000);
        assert_eq!(key.get_object(OBJ_PRINTED).1, 0x6A82);
        key.card.lose_power("test");
        key.ok(0xA4, 4, 0, AID);
        key.auth_default();
        // What ykman and yubikey-agent store there: 88 { 89 mgmt-key }.
        let secret = tlv::encode(&[0x88], &tlv::encode(&[0x89], &[0x42; 32]));
        assert_eq!(key.put_object(OBJ_PRINTED, &secret), 0x9000);
        assert_eq!(key.get_object(OBJ_PRINTED).1, 0x6982);
        assert_eq!(key.verify_pin(DEFAULT_PIN), 0x9000);
        assert_eq!(key.get_object(OBJ_PRINTED), (secret, 0x9000));
    }

    #[test]
    fn pin_complexity_refuses_weak_pins_and_puks() {
        let change = |key: &mut Key, p2: u8, old: &[u8], new: &[u8]| {
            let data = [pad8(old), pad8(new)].concat();
            key.sw(INS_CHANGE_REFERENCE, 0, p2, &data)
        };
        let root = TestRoot::generate().unwrap();
        let mut state = DeviceState::factory_with_firmware(SERIAL, [5, 7, 4], &root);
        state.pin_complexity = true;
        let mut key = Key::with_state(state, root);
        for weak in [
            &b"111111"[..],
            b"22222222",
            b"abc123",
            b"password",
            b"123123",
        ] {
            assert_eq!(change(&mut key, PIN_REF, DEFAULT_PIN, weak), 0x6985);
        }
        assert_eq!(metadata(&mut key, PIN_REF)[&6], vec![3, 3], "no try spent");
        assert_eq!(change(&mut key, PUK_REF, DEFAULT_PUK, b"4444444"), 0x6985);
        assert_eq!(change(&mut key, PIN_REF, DEFAULT_PIN, b"123458"), 0x9000);
        assert_eq!(change(&mut key, PUK_REF, DEFAULT_PUK, b"12345670"), 0x9000);
        let unblock = [pad8(b"12345670"), pad8(b"333333")].concat();
        assert_eq!(key.sw(INS_RESET_RETRY, 0, PIN_REF, &unblock), 0x6985);
        // Without the option, anything of 6-8 bytes goes, as before.
        let mut plain = Key::new();
        assert_eq!(change(&mut plain, PIN_REF, DEFAULT_PIN, b"111111"), 0x9000);
    }

    #[test]
    fn move_and_delete_key_on_5_7_only() {
        let root = TestRoot::generate().unwrap();
        let state = DeviceState::factory_with_firmware(SERIAL, [5, 7, 4], &root);
        let mut key = Key::with_state(state, root);
        assert_eq!(key.ok(INS_GET_VERSION, 0, 0, &[]), vec![5, 7, 4]);
        // The 5.7 default management key: the same bytes, as AES-192.
        let md = metadata(&mut key, MGMT_SLOT);
        assert_eq!(
            (md[&1].clone(), md[&5].clone()),
            (vec![ALG_AES192], vec![1])
        );
        assert_eq!(
            key.sw(INS_MOVE_KEY, 0x9C, 0x9A, &[]),
            0x6982,
            "needs the mgmt key"
        );
        assert_eq!(key.auth(ALG_AES192, &DEFAULT_MGMT_KEY), 0x9000);
        assert_eq!(
            key.sw(INS_MOVE_KEY, 0x9C, 0x9A, &[]),
            0x6A88,
            "empty source"
        );
        key.generate(0x9A, ALG_P256, PIN_POLICY_ONCE, TOUCH_POLICY_CACHED);
        let before = metadata(&mut key, 0x9A);
        assert_eq!(key.sw(INS_MOVE_KEY, ATTESTATION_SLOT, 0x9A, &[]), 0x6A86);
        assert_eq!(key.sw(INS_MOVE_KEY, 0x9C, ATTESTATION_SLOT, &[]), 0x6A86);
        assert_eq!(
            key.sw(INS_MOVE_KEY, DELETE_KEY_P1, ATTESTATION_SLOT, &[]),
            0x6A86
        );
        assert_eq!(key.sw(INS_MOVE_KEY, 0x9C, 0x9A, &[]), 0x9000);
        assert_eq!(
            metadata(&mut key, 0x9C),
            before,
            "alg, policies, origin, public key"
        );
        assert_eq!(key.sw(INS_GET_METADATA, 0, 0x9A, &[]), 0x6A88);
        // The moved key signs in its new slot.
        assert_eq!(key.verify_pin(DEFAULT_PIN), 0x9000);
        let (_, code) = key.sign(ALG_P256, 0x9C, &[0x55; 32]);
        assert_eq!(code, 0x9000);
        assert_eq!(key.sw(INS_MOVE_KEY, DELETE_KEY_P1, 0x9C, &[]), 0x9000);
        assert_eq!(key.sw(INS_GET_METADATA, 0, 0x9C, &[]), 0x6A88);
        assert_eq!(key.sw(INS_MOVE_KEY, DELETE_KEY_P1, 0x9C, &[]), 0x6A88);
        assert!(
            metadata(&mut key, ATTESTATION_SLOT).contains_key(&4),
            "F9 stays"
        );
        // A PIV reset on 5.7 brings back the AES-192 default.
        for _ in 0..3 {
            key.verify_pin(b"000000");
        }
        for _ in 0..3 {
            key.sw(INS_RESET_RETRY, 0, PIN_REF, &[b'0'; 16]);
        }
        assert_eq!(key.sw(INS_RESET, 0, 0, &[]), 0x9000);
        let md = metadata(&mut key, MGMT_SLOT);
        assert_eq!(
            (md[&1].clone(), md[&5].clone()),
            (vec![ALG_AES192], vec![1])
        );

        // 5.4.3 has no MOVE KEY.
        let mut old = Key::new();
        old.auth_default();
        old.generate(0x9A, ALG_P256, PIN_POLICY_ONCE, TOUCH_POLICY_NEVER);
        assert_eq!(old.sw(INS_MOVE_KEY, 0x9C, 0x9A, &[]), 0x6D00);
        assert_eq!(old.sw(INS_MOVE_KEY, DELETE_KEY_P1, 0x9A, &[]), 0x6D00);
    }

    #[test]
    fn metadata_for_every_kind_of_slot() {
        let mut key = Key::new();
        let md = metadata(&mut key, PIN_REF);
        assert_eq!(
            (md[&1].clone(), md[&5].clone(), md[&6].clone()),
            (vec![0xFF], vec![1], vec![3, 3])
        );
        let md = metadata(&mut key, MGMT_SLOT);
        assert_eq!(
            (md[&1].clone(), md[&2].clone(), md[&5].clone()),
            (vec![3], vec![0, 1], vec![1])
        );
        assert_eq!(key.sw(INS_GET_METADATA, 0, 0x9A, &[]), 0x6A88);
        assert_eq!(key.sw(INS_GET_METADATA, 0, 0x96, &[]), 0x6A88, "not a Bio");
        let f9 = metadata(&mut key, ATTESTATION_SLOT);
        assert_eq!(
            (f9[&1].clone(), f9[&3].clone()),
            (vec![ALG_P256], vec![ORIGIN_IMPORTED])
        );

        key.auth_default();
        let point = key.generate(0x9A, ALG_P256, PIN_POLICY_ONCE, TOUCH_POLICY_CACHED);
        let md = metadata(&mut key, 0x9A);
        assert_eq!(md[&1], vec![ALG_P256]);
        assert_eq!(md[&2], vec![PIN_POLICY_ONCE, TOUCH_POLICY_CACHED]);
        assert_eq!(md[&3], vec![ORIGIN_GENERATED]);
        assert_eq!(md[&4], tlv::encode(&[0x86], &point));

        let scalar = p384::SecretKey::random(&mut OsRng).to_bytes();
        let mut body = tlv::encode(&[0x06], &scalar);
        tlv::put(&mut body, &[0xAA], &[PIN_POLICY_NEVER]);
        assert_eq!(key.sw(INS_IMPORT_KEY, ALG_P384, 0x95, &body), 0x9000);
        let md = metadata(&mut key, 0x95);
        assert_eq!(
            (md[&1].clone(), md[&2].clone(), md[&3].clone()),
            (vec![ALG_P384], vec![1, 1], vec![ORIGIN_IMPORTED])
        );
        assert_eq!(
            key.sw(INS_IMPORT_KEY, ALG_P256, 0x95, &body),
            0x6A80,
            "scalar size"
        );
        assert_eq!(
            key.sw(
                INS_IMPORT_KEY,
                ALG_P256,
                0x95,
                &tlv::encode(&[0x06], &[0; 32])
            ),
            0x6A80,
            "zero"
        );
    }

    fn verify_issued_by(cert: &Certificate, issuer: &Certificate) {
        assert_eq!(cert.tbs_certificate.issuer, issuer.tbs_certificate.subject);
        let tbs = cert.tbs_certificate.to_der().unwrap();
        let spk = issuer
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        let sig = p256::ecdsa::DerSignature::try_from(cert.signature.raw_bytes()).unwrap();
        p256::ecdsa::VerifyingKey::from_sec1_bytes(spk)
            .unwrap()
            .verify(&tbs, &sig)
            .unwrap();
    }

    #[test]
    fn attestation_chains_to_the_test_root() {
        let mut key = Key::new();
        key.auth_default();
        let point = key.generate(0x9A, ALG_P256, PIN_POLICY_ONCE, TOUCH_POLICY_ALWAYS);
        let leaf = key.ok(INS_ATTEST, 0x9A, 0, &[]);
        assert!(leaf.len() > 256, "long enough to need GET RESPONSE");
        let leaf = Certificate::from_der(&leaf).unwrap();
        let (object, code) = key.get_object(OBJ_ATTESTATION);
        assert_eq!(code, 0x9000);
        let f9 = Certificate::from_der(&certificate_from_object(&object).unwrap()).unwrap();
        let root = Certificate::from_der(&key.root.cert_der).unwrap();
        verify_issued_by(&leaf, &f9);
        verify_issued_by(&f9, &root);
        verify_issued_by(&root, &root);
        assert_eq!(
            leaf.tbs_certificate.subject.to_string(),
            "CN=YubiKey PIV Attestation 9a"
        );
        assert_eq!(
            leaf.tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes(),
            point.as_slice()
        );
        let ext = |oid: &str| {
            let oid = der::oid::ObjectIdentifier::new_unwrap(oid);
            leaf.tbs_certificate
                .extensions
                .as_ref()
                .unwrap()
                .iter()
                .find(|e| e.extn_id == oid)
                .map(|e| e.extn_value.as_bytes().to_vec())
                .unwrap()
        };
        assert_eq!(ext("1.3.6.1.4.1.41482.3.3"), vec![5, 4, 3]);
        assert_eq!(ext("1.3.6.1.4.1.41482.3.7"), SERIAL.to_der().unwrap());
        assert_eq!(
            ext("1.3.6.1.4.1.41482.3.8"),
            vec![PIN_POLICY_ONCE, TOUCH_POLICY_ALWAYS]
        );
        assert_eq!(ext("1.3.6.1.4.1.41482.3.9"), vec![attest::FORM_FACTOR]);

        // Imported and missing keys are not attested.
        let mut body = tlv::encode(&[0x06], &p256::SecretKey::random(&mut OsRng).to_bytes());
        tlv::put(&mut body, &[0xAB], &[TOUCH_POLICY_NEVER]);
        assert_eq!(key.sw(INS_IMPORT_KEY, ALG_P256, 0x9D, &body), 0x9000);
        assert_eq!(key.sw(INS_ATTEST, 0x9D, 0, &[]), 0x6A80);
        assert_eq!(key.sw(INS_ATTEST, 0x9E, 0, &[]), 0x6A80);
        assert_eq!(key.sw(INS_ATTEST, ATTESTATION_SLOT, 0, &[]), 0x6A86);
    }

    /// `7F49 { 81 n 82 e }` from GENERATE, and its modulus and exponent.
    fn generate_rsa(key: &mut Key, slot: u8, alg: u8, pin: u8) -> (Vec<u8>, rsa::RsaPublicKey) {
        let mut inner = tlv::encode(&[0x80], &[alg]);
        tlv::put(&mut inner, &[0xAA], &[pin]);
        let resp = key.ok(INS_GENERATE, 0, slot, &tlv::encode(&[0xAC], &inner));
        let outer = tlv::parse(&resp).unwrap();
        let body = tlv::find(&outer, 0x7F49).unwrap();
        let items = tlv::parse(body).unwrap();
        let n = BigUint::from_bytes_be(tlv::find(&items, 0x81).unwrap());
        let e = BigUint::from_bytes_be(tlv::find(&items, 0x82).unwrap());
        (body.to_vec(), rsa::RsaPublicKey::new(n, e).unwrap())
    }

    /// `block^e mod n`, full length: undoes the card's private operation.
    fn rsa_public_op(public: &rsa::RsaPublicKey, block: &[u8]) -> Vec<u8> {
        let m = BigUint::from_bytes_be(block).modpow(public.e(), public.n());
        be_fixed(&m, public.size())
    }

    #[test]
    fn rsa_generate_metadata_raw_operation_and_attest() {
        use rsa::Pkcs1v15Encrypt;
        let mut key = Key::new();
        key.auth_default();
        for (slot, alg, len) in [(0x9A, ALG_RSA2048, 256), (0x9C, ALG_RSA1024, 128)] {
            let (body, public) = generate_rsa(&mut key, slot, alg, PIN_POLICY_ONCE);
            assert_eq!(public.size(), len);
            assert_eq!(public.n().bits(), len * 8);
            assert_eq!(public.e(), &BigUint::from(RSA_EXPONENT));
            assert_eq!(
                tlv::find(&tlv::parse(&body).unwrap(), 0x82),
                Some(&[1, 0, 1][..])
            );
            let md = metadata(&mut key, slot);
            assert_eq!(md[&1], vec![alg]);
            assert_eq!(md[&2], vec![PIN_POLICY_ONCE, TOUCH_POLICY_NEVER]);
            assert_eq!(md[&3], vec![ORIGIN_GENERATED]);
            assert_eq!(md[&4], body, "metadata carries GENERATE's public key");

            let mut block = random_bytes(len);
            block[0] = 0x00;
            if slot == 0x9A {
                assert_eq!(key.sign(alg, slot, &block).1, 0x6982, "PIN first");
                assert_eq!(key.verify_pin(DEFAULT_PIN), 0x9000);
            }
            let (out, code) = key.sign(alg, slot, &block);
            assert_eq!(code, 0x9000);
            assert_eq!(out.len(), len);
            assert_eq!(rsa_public_op(&public, &out), block);

            let ct = public
                .encrypt(&mut OsRng, Pkcs1v15Encrypt, b"key material")
                .unwrap();
            let (padded, code) = key.sign(alg, slot, &ct);
            assert_eq!(code, 0x9000);
            assert_eq!(&padded[..2], &[0x00, 0x02]);
            assert!(padded.ends_with(b"\x00key material"));

            // A block of another length, or not below n, and ECDH: refused.
            assert_eq!(key.sign(alg, slot, &block[1..]).1, 0x6A80);
            assert_eq!(key.sign(alg, slot, &be_fixed(public.n(), len)).1, 0x6A80);
            assert_eq!(key.sign(alg, slot, &[0xFF; 256][..len]).1, 0x6A80);
            assert_eq!(key.ecdh(alg, slot, &[0x04; 65]).1, 0x6A80);
            assert_eq!(
                key.sign(ALG_P256, slot, &[0; 32]).1,
                0x6A80,
                "wrong algorithm"
            );

            // The attestation certificate carries the RSA key.
            let leaf = Certificate::from_der(&key.ok(INS_ATTEST, slot, 0, &[])).unwrap();
            use rsa::pkcs8::EncodePublicKey;
            assert_eq!(
                leaf.tbs_certificate
                    .subject_public_key_info
                    .to_der()
                    .unwrap(),
                public.to_public_key_der().unwrap().as_bytes()
            );
            let (object, _) = key.get_object(OBJ_ATTESTATION);
            let f9 = Certificate::from_der(&certificate_from_object(&object).unwrap()).unwrap();
            verify_issued_by(&leaf, &f9);
        }

        // Kept in the state file as P ‖ Q, and usable after a reload.
        let json = serde_json::to_string(&key.card.state).unwrap();
        let state: DeviceState = serde_json::from_str(&json).unwrap();
        assert_eq!(state.piv.keys[&0x9A].scalar.0.len(), 256);
        let mut again = Key::with_state(state, key.root.clone());
        let (_, public) = {
            let md = metadata(&mut again, 0x9A);
            let items = tlv::parse(&md[&4]).unwrap();
            let n = BigUint::from_bytes_be(tlv::find(&items, 0x81).unwrap());
            (
                (),
                rsa::RsaPublicKey::new(n, BigUint::from(RSA_EXPONENT)).unwrap(),
            )
        };
        assert_eq!(again.verify_pin(DEFAULT_PIN), 0x9000);
        let block = [0x01; 256];
        let (out, code) = again.sign(ALG_RSA2048, 0x9A, &block);
        assert_eq!(code, 0x9000);
        assert_eq!(rsa_public_op(&public, &out), block);
    }

    #[test]
    fn ed25519_and_x25519_only_on_5_7() {
        let mut old = Key::new();
        old.auth_default();
        for alg in [ALG_ED25519, ALG_X25519] {
            let body = tlv::encode(&[0xAC], &tlv::encode(&[0x80], &[alg]));
            assert_eq!(old.sw(INS_GENERATE, 0, 0x9A, &body), 0x6A80, "5.4.3");
        }
        let root = TestRoot::generate().unwrap();
        let state = DeviceState::factory_with_firmware(SERIAL, [5, 7, 4], &root);
        let mut key = Key::with_state(state, root);
        assert_eq!(key.auth(ALG_AES192, &DEFAULT_MGMT_KEY), 0x9000);
        assert_eq!(key.verify_pin(DEFAULT_PIN), 0x9000);

        // Imported Ed25519 (RFC 8032 TEST 1's seed): its public key and signature.
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap();
        key.ok(
            INS_IMPORT_KEY,
            ALG_ED25519,
            0x9D,
            &tlv::encode(&[0x07], &seed),
        );
        let md = metadata(&mut key, 0x9D);
        assert_eq!(md[&1], vec![ALG_ED25519]);
        let public = tlv::encode(
            &[0x86],
            &c25519::ed25519_public(&seed.clone().try_into().unwrap()),
        );
        assert_eq!(md[&4], public);
        let (sig, code) = key.sign(ALG_ED25519, 0x9D, b"");
        assert_eq!(code, 0x9000);
        assert!(hex::encode(sig).starts_with("e5564300c360ac72"));
        assert_eq!(key.ecdh(ALG_ED25519, 0x9D, &[9; 32]).1, 0x6A80);

        // Generated X25519: ECDH agrees with the peer's side.
        let public = key.generate(0x9A, ALG_X25519, 0, 0);
        assert_eq!(public.len(), 32);
        let peer = [0x42u8; 32];
        let (shared, code) = key.ecdh(ALG_X25519, 0x9A, &c25519::x25519_public(&peer));
        assert_eq!(code, 0x9000);
        assert_eq!(
            shared,
            c25519::x25519(&peer, &public.try_into().unwrap()).to_vec()
        );
        assert_eq!(key.sign(ALG_X25519, 0x9A, b"x").1, 0x6A80);
        // Attestation states the RFC 8410 key.
        let cert = key.ok(INS_ATTEST, 0x9A, 0, &[]);
        let cert = x509_cert::Certificate::from_der(&cert).unwrap();
        let spki = cert.tbs_certificate.subject_public_key_info;
        assert_eq!(spki.algorithm.oid.to_string(), "1.3.101.110");
    }

    #[test]
    fn rsa_3072_and_4096_only_on_5_7() {
        let mut old = Key::new();
        old.auth_default();
        for alg in [ALG_RSA3072, ALG_RSA4096] {
            let mut inner = tlv::encode(&[0x80], &[alg]);
            tlv::put(&mut inner, &[0xAA], &[PIN_POLICY_ONCE]);
            let body = tlv::encode(&[0xAC], &inner);
            assert_eq!(old.sw(INS_GENERATE, 0, 0x9A, &body), 0x6A80, "5.4.3");
            assert_eq!(
                old.sw(INS_IMPORT_KEY, alg, 0x9A, &[0x01, 0x01, 0x03]),
                0x6A80
            );
        }
        let root = TestRoot::generate().unwrap();
        let state = DeviceState::factory_with_firmware(SERIAL, [5, 7, 4], &root);
        let mut key = Key::with_state(state, root);
        assert_eq!(key.auth(ALG_AES192, &DEFAULT_MGMT_KEY), 0x9000);
        for (slot, alg, len) in [(0x9A, ALG_RSA3072, 384), (0x9C, ALG_RSA4096, 512)] {
            let (body, public) = generate_rsa(&mut key, slot, alg, PIN_POLICY_ONCE);
            assert_eq!(public.size(), len);
            assert_eq!(public.e(), &BigUint::from(RSA_EXPONENT));
            let md = metadata(&mut key, slot);
            assert_eq!(md[&1], vec![alg]);
            assert_eq!(md[&4], body, "metadata holds the generated public key");
        }
        // An import is checked as the smaller sizes' are.
        let private = rsa::RsaPrivateKey::new(&mut OsRng, 3072).unwrap();
        let p = &private.primes()[0];
        let q = &private.primes()[1];
        let s = [be_fixed(p, 192), be_fixed(q, 192)].concat();
        let secret = Secret::from_scalar(ALG_RSA3072, &s).unwrap();
        assert_eq!(secret.field_len(), 384);
        assert!(Secret::from_scalar(ALG_RSA4096, &s).is_err(), "wrong size");
    }

    #[test]
    fn rsa_import_checks_the_crt_parameters() {
        let mut key = Key::new();
        key.auth_default();
        let private = rsa::RsaPrivateKey::new(&mut OsRng, 1024).unwrap();
        let half = 64;
        let parts = [
            be_fixed(&private.primes()[0], half),
            be_fixed(&private.primes()[1], half),
            be_fixed(private.dp().unwrap(), half),
            be_fixed(private.dq().unwrap(), half),
            be_fixed(&private.crt_coefficient().unwrap(), half),
        ];
        let body = |parts: &[Vec<u8>]| {
            let mut body = Vec::new();
            for (i, part) in parts.iter().enumerate() {
                tlv::put(&mut body, &[i as u8 + 1], part);
            }
            tlv::put(&mut body, &[0xAA], &[PIN_POLICY_NEVER]);
            tlv::put(&mut body, &[0xAB], &[TOUCH_POLICY_NEVER]);
            body
        };
        // Another key's DP, a key of the wrong size, a missing part.
        let mut wrong = parts.clone();
        wrong[2][half - 1] ^= 1;
        assert_eq!(
            key.sw(INS_IMPORT_KEY, ALG_RSA1024, 0x9D, &body(&wrong)),
            0x6A80
        );
        assert_eq!(
            key.sw(INS_IMPORT_KEY, ALG_RSA2048, 0x9D, &body(&parts)),
            0x6A80
        );
        assert_eq!(
            key.sw(INS_IMPORT_KEY, ALG_RSA1024, 0x9D, &body(&parts[..4])),
            0x6A80
        );
        assert_eq!(key.sw(INS_GET_METADATA, 0, 0x9D, &[]), 0x6A88);

        assert_eq!(
            key.sw(INS_IMPORT_KEY, ALG_RSA1024, 0x9D, &body(&parts)),
            0x9000
        );
        let md = metadata(&mut key, 0x9D);
        assert_eq!(
            (md[&1].clone(), md[&2].clone(), md[&3].clone()),
            (vec![ALG_RSA1024], vec![1, 1], vec![ORIGIN_IMPORTED])
        );
        let items = tlv::parse(&md[&4]).unwrap();
        assert_eq!(tlv::find(&items, 0x81).unwrap(), be_fixed(private.n(), 128));
        // PIN Never: no PIN needed, and exactly block^d mod n.
        let block = random_bytes(128);
        let mut block = block;
        block[0] &= 0x7F;
        let (out, code) = key.sign(ALG_RSA1024, 0x9D, &block);
        assert_eq!(code, 0x9000);
        let expected = BigUint::from_bytes_be(&block).modpow(private.d(), private.n());
        assert_eq!(out, be_fixed(&expected, 128));
        // Imported keys are not attested.
        assert_eq!(key.sw(INS_ATTEST, 0x9D, 0, &[]), 0x6A80);
    }

    #[test]
    fn reset_only_when_pin_and_puk_blocked() {
        let mut key = Key::new();
        key.auth_default();
        key.generate(0x9A, ALG_P256, 0, 0);
        assert_eq!(key.put_object(0x5FC102, &[1, 2, 3]), 0x9000);
        let f9_before = key.get_object(OBJ_ATTESTATION).0;
        assert_eq!(key.sw(INS_RESET, 0, 0, &[]), 0x6985);
        while key.verify_pin(b"") != 0x63C0 {}
        assert_eq!(key.sw(INS_RESET, 0, 0, &[]), 0x6985, "PUK still usable");
        // Blocking the PUK the way ykman does: RESET RETRY with empty values.
        let mut body = pad8(b"");
        body.extend(pad8(b""));
        assert_eq!(key.sw(INS_RESET_RETRY, 0, PIN_REF, &body), 0x63C2);
        assert_eq!(key.sw(INS_RESET_RETRY, 0, PIN_REF, &body), 0x63C1);
        assert_eq!(key.sw(INS_RESET_RETRY, 0, PIN_REF, &body), 0x63C0);
        assert_eq!(key.sw(INS_RESET_RETRY, 0, PIN_REF, &body), 0x6983);
        assert_eq!(key.sw(INS_RESET, 0, 0, &[]), 0x9000);

        assert_eq!(key.sw(INS_GET_METADATA, 0, 0x9A, &[]), 0x6A88);
        assert_eq!(key.get_object(0x5FC102).1, 0x6A82);
        assert_eq!(metadata(&mut key, PIN_REF)[&6], vec![3, 3]);
        assert_eq!(metadata(&mut key, MGMT_SLOT)[&5], vec![1]);
        assert_eq!(key.get_object(OBJ_ATTESTATION).0, f9_before);
        assert_eq!(key.sw(INS_GET_METADATA, 0, ATTESTATION_SLOT, &[]), 0x9000);
        assert_eq!(key.verify_pin(DEFAULT_PIN), 0x9000);
        key.auth_default();
        key.generate(0x9A, ALG_P256, 0, 0);
        assert_eq!(key.sw(INS_ATTEST, 0x9A, 0, &[]), 0x9000);
    }

    #[test]
    fn set_pin_retries_needs_both_and_restores_defaults() {
        let mut key = Key::new();
        let mut body = pad8(DEFAULT_PIN);
        body.extend(pad8(b"246810"));
        assert_eq!(key.sw(INS_CHANGE_REFERENCE, 0, PIN_REF, &body), 0x9000);
        key.auth_default();
        assert_eq!(key.sw(INS_SET_PIN_RETRIES, 5, 6, &[]), 0x6982);
        assert_eq!(key.verify_pin(b"246810"), 0x9000);
        assert_eq!(key.sw(INS_SET_PIN_RETRIES, 5, 6, &[]), 0x9000);
        assert_eq!(metadata(&mut key, PIN_REF)[&6], vec![5, 5]);
        assert_eq!(metadata(&mut key, PUK_REF)[&6], vec![6, 6]);
        assert_eq!(key.verify_pin(b"246810"), 0x63C4);
        assert_eq!(key.verify_pin(DEFAULT_PIN), 0x9000);
    }

    #[test]
    fn state_survives_a_serde_round_trip() {
        let mut key = Key::new();
        key.auth_default();
        let point = key.generate(0x90, ALG_P256, PIN_POLICY_ONCE, 0);
        let mut body = vec![ALG_AES256];
        let aes_key = [0x5A; 32];
        tlv::put(&mut body, &[MGMT_SLOT], &aes_key);
        assert_eq!(key.sw(INS_SET_MGMT_KEY, 0xFF, 0xFF, &body), 0x9000);
        assert_eq!(key.verify_pin(b"000000"), 0x63C2);
        assert_eq!(key.put_object(0x5FC102, &[9; 40]), 0x9000);

        let json = serde_json::to_string_pretty(&key.card.state).unwrap();
        assert!(
            !json.contains("pin_verified"),
            "session state is not persisted"
        );
        assert!(
            json.contains("\"f9\": {") && json.contains("\"5fff01\": \"70"),
            "slots and objects are named in hex: {json}"
        );
        let state: DeviceState = serde_json::from_str(&json).unwrap();
        let mut again = Key::with_state(state, key.root.clone());
        assert_eq!(again.sw(INS_VERIFY, 0, PIN_REF, &[]), 0x63C2);
        assert_eq!(again.put_object(0x5FC102, &[1]), 0x6982);
        assert_eq!(again.auth(ALG_AES256, &aes_key), 0x9000);
        assert_eq!(again.get_object(0x5FC102).0, vec![9; 40]);
        assert_eq!(metadata(&mut again, 0x90)[&4], tlv::encode(&[0x86], &point));
        assert_eq!(again.verify_pin(DEFAULT_PIN), 0x9000);
        let eph = p256::SecretKey::random(&mut OsRng);
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let (shared, code) = again.ecdh(
            ALG_P256,
            0x90,
            eph.public_key().to_encoded_point(false).as_bytes(),
        );
        assert_eq!(code, 0x9000);
        let card_pub = p256::PublicKey::from_sec1_bytes(&point).unwrap();
        let expected = p256::ecdh::diffie_hellman(eph.to_nonzero_scalar(), card_pub.as_affine());
        assert_eq!(shared, expected.raw_secret_bytes().to_vec());
        assert_eq!(again.sw(INS_ATTEST, 0x90, 0, &[]), 0x9000);
    }

    #[test]
    fn mutations_persist_and_reads_do_not() {
        // The card rewrites its state file when an applet marks it dirty.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let root = TestRoot::generate().unwrap();
        let state = DeviceState::factory(SERIAL, &root);
        let mut card = Card::new(
            state,
            Some(path.clone()),
            Controls::new(Duration::from_millis(50)),
            ApduLog::disabled(),
        );
        card.transmit(&apdu(0, 0xA4, 4, 0, AID)).unwrap();
        card.transmit(&[0, INS_GET_METADATA, 0, PIN_REF, 0])
            .unwrap();
        assert!(!path.exists());
        card.transmit(&apdu(0, INS_VERIFY, 0, PIN_REF, &pad8(b"111111")))
            .unwrap();
        let saved = DeviceState::load(&path).unwrap();
        assert_eq!(saved.piv.pin.left, 2);
    }

    #[test]
    fn malformed_input_never_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut key = Key::new();
        key.auth_default();
        assert_eq!(key.verify_pin(DEFAULT_PIN), 0x9000);
        key.generate(0x9A, ALG_P256, PIN_POLICY_NEVER, TOUCH_POLICY_NEVER);
        let inss = [
            INS_VERIFY,
            INS_CHANGE_REFERENCE,
            INS_RESET_RETRY,
            INS_GENERATE,
            INS_AUTHENTICATE,
            INS_GET_DATA,
            INS_PUT_DATA,
            INS_GET_METADATA,
            INS_ATTEST,
            INS_IMPORT_KEY,
            INS_SET_MGMT_KEY,
            INS_SET_PIN_RETRIES,
        ];
        let prefixes: [&[u8]; 6] = [
            &[],
            &[0x7C],
            &[0x7C, 0x04, 0x82, 0x00, 0x85],
            &[0xAC, 0x03, 0x80, 0x01],
            &[0x5C, 0x03, 0x5F, 0xC1],
            &[0x03, 0x9B, 0x18],
        ];
        for _ in 0..4000 {
            let ins = inss[rng.gen_range(0..inss.len())];
            let mut data = prefixes[rng.gen_range(0..prefixes.len())].to_vec();
            let n = rng.gen_range(0..80);
            data.extend((0..n).map(|_| rng.gen::<u8>()));
            let p1 = [0u8, 0x03, 0x11, 0x14, 0x3F, 0x9A, 0xFF][rng.gen_range(0..7)];
            let p2 = [0u8, 0x80, 0x81, 0x9A, 0x9B, 0xF9, 0xFF][rng.gen_range(0..7)];
            // Keep the key usable: never block the PIN/PUK or replace the mgmt key.
            if matches!(
                ins,
                INS_VERIFY
                    | INS_CHANGE_REFERENCE
                    | INS_RESET_RETRY
                    | INS_SET_MGMT_KEY
                    | INS_SET_PIN_RETRIES
            ) {
                continue;
            }
            let out = key.card.transmit(&apdu(0, ins, p1, p2, &data)).unwrap();
            assert!(out.len() >= 2);
        }
        for raw in [
            &[0u8][..],
            &[0, 0x87],
            &[0, 0x87, 0x11, 0x9A, 0x05, 0x7C],
            &[0, 0xDB, 0x3F, 0xFF, 0, 0, 9, 1],
        ] {
            assert!(key.card.transmit(raw).unwrap().len() >= 2);
        }
    }
}
