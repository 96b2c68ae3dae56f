//! The token envelope: a secret sealed to one or more hardware tokens, so
//! that reading it needs one of them present (and, for a YubiKey, its PIN
//! and a touch). The scheme is the one age-plugin-yubikey uses for age file
//! keys, with the envelope's own framing. This module is pure: the card and
//! authenticator code reaches it only through [`Unwrapper`].
//!
//! # Wire format
//!
//! Integers are big-endian; points are SEC1 uncompressed (65 bytes).
//!
//! | offset | bytes | field                                                 |
//! |--------|-------|-------------------------------------------------------|
//! | 0      | 4     | magic `VLTE`                                          |
//! | 4      | 1     | format version, 1                                     |
//! | 5      | 1     | n = number of entries, 1 to 16                        |
//! | 6      | …     | n entries, one per recipient                          |
//!
//! Each entry:
//!
//! | offset | bytes | field                                                 |
//! |--------|-------|-------------------------------------------------------|
//! | 0      | 1     | kind: 1 PIV P-256, 2 FIDO2 hmac-secret, 0 invalid;    |
//! |        |       | any other is a newer vault's, skipped and kept        |
//! | 1      | 2     | L = body length, at most 8192                         |
//! | 3      | L     | body                                                  |
//!
//! Kind 1 body, a PIV slot holding a P-256 key:
//!
//! | offset | bytes  | field                                                |
//! |--------|--------|------------------------------------------------------|
//! | 0      | 4      | card serial                                          |
//! | 4      | 1      | PIV slot (0x82–0x95 for vault's own keys)            |
//! | 5      | 4      | tag: first 4 bytes of SHA-256 of the slot public key |
//! | 9      | 65     | slot public key                                      |
//! | 74     | 65     | ephemeral public key                                 |
//! | 139    | m + 16 | ChaCha20-Poly1305 ciphertext of the m-byte secret    |
//!
//! Kind 2 body, a FIDO2 credential with the hmac-secret extension:
//!
//! | offset | bytes  | field                                                |
//! |--------|--------|------------------------------------------------------|
//! | 0      | 4      | tag: first 4 bytes of SHA-256 of the credential id   |
//! | 4      | 32     | hmac-secret salt, sent to the authenticator          |
//! | 36     | 32     | wrap salt, random for every seal                     |
//! | 68     | 1      | r = relying party id length, 1 to 255                |
//! | 69     | r      | relying party id, UTF-8                              |
//! | 69+r   | 2      | c = credential id length, 1 to 1023                  |
//! | 71+r   | c      | credential id                                        |
//! | 71+r+c | m + 16 | ChaCha20-Poly1305 ciphertext of the m-byte secret    |
//!
//! The 32-byte AEAD key is HKDF-SHA256 with
//! - PIV: IKM = x-coordinate of ECDH(ephemeral, slot key), salt = ephemeral
//!   point ‖ slot public key, info = `vault/v1 piv-p256 wrap`;
//! - FIDO2: IKM = the authenticator's hmac-secret output for the salt,
//!   salt = the wrap salt, info = `vault/v1 fido2-hmac-secret wrap`.
//!
//! The nonce is zero: each key comes from a fresh ephemeral key or a fresh
//! wrap salt, so it encrypts exactly once (age wraps file keys the same
//! way). The associated data is `VLTE` ‖ version ‖ kind ‖ the body up to
//! the ciphertext ‖ the caller's context (the item's name, `key/PROFILE`),
//! so no field can change and no envelope can be moved to another item
//! without failing authentication. The secret is 1 to 4096 bytes.
//!
//! The slot public key is stored whole, not only its tag, because the
//! unwrap needs it for the HKDF salt and the card code needs it to check
//! that the slot still holds that key before asking for a PIN and a touch.
//! Entries are length-prefixed so that a later vault can add kinds this one
//! skips; entries wrap the secret independently, so losing one token loses
//! nothing while another remains.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{FieldBytes, NonZeroScalar, PublicKey};
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use std::fmt;
use vault_base::error::{Hinted, Message};
use vault_base::secret::SecretBytes;
use zeroize::{Zeroize, Zeroizing};

const MAGIC: &[u8; 4] = b"VLTE";
const VERSION: u8 = 1;
const KIND_PIV_P256: u8 = 1;
const KIND_FIDO2_HMAC_SECRET: u8 = 2;

const PIV_INFO: &[u8] = b"vault/v1 piv-p256 wrap";
const FIDO2_INFO: &[u8] = b"vault/v1 fido2-hmac-secret wrap";

const POINT_LEN: usize = 65;
const AEAD_TAG_LEN: usize = 16;

/// At most this many recipients per envelope: a primary and a few backups
/// is the use; the bound keeps a damaged count from meaning much work.
pub const MAX_RECIPIENTS: usize = 16;
/// Items are small JSON documents; anything much bigger is not ours.
pub const MAX_SECRET_LEN: usize = 4096;
/// The longest FIDO2 credential id an entry holds: the one enrollment
/// accepts from a key.
pub use vault_token::fido2::MAX_CREDENTIAL_ID_LEN;
const MAX_RP_ID_LEN: usize = u8::MAX as usize;
/// Above the largest entry this version writes (a FIDO2 entry with the
/// longest ids and secret is 5461 bytes), with room for future kinds.
const MAX_ENTRY_LEN: usize = 8192;

/// A token a secret is sealed to. Only public values are needed for PIV;
/// FIDO2 has no public key, so its recipient carries the hmac-secret output
/// the authenticator gave for `salt` (one touch, at enrollment or now).
#[derive(Clone)]
pub enum Recipient {
    Piv {
        serial: u32,
        slot: u8,
        public_key: PublicKey,
    },
    Fido2 {
        rp_id: String,
        credential_id: Vec<u8>,
        salt: [u8; 32],
        hmac_secret: Zeroizing<[u8; 32]>,
    },
}

impl Recipient {
    pub fn id(&self) -> RecipientId {
        match self {
            Recipient::Piv {
                serial,
                slot,
                public_key,
            } => RecipientId::Piv {
                serial: *serial,
                slot: *slot,
                tag: tag(public_key),
            },
            Recipient::Fido2 {
                rp_id,
                credential_id,
                ..
            } => RecipientId::Fido2 {
                rp_id: rp_id.clone(),
                tag: credential_tag(credential_id),
            },
        }
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipient::Piv {
                serial,
                slot,
                public_key,
            } => f
                .debug_struct("Piv")
                .field("serial", serial)
                .field("slot", &format_args!("{slot:#04x}"))
                .field("tag", &hex::encode(tag(public_key)))
                .finish(),
            Recipient::Fido2 {
                rp_id,
                credential_id,
                ..
            } => f
                .debug_struct("Fido2")
                .field("rp_id", rp_id)
                .field("tag", &hex::encode(credential_tag(credential_id)))
                .field("hmac_secret", &"***")
                .finish(),
        }
    }
}

/// Which token an entry is sealed to, as `vault hw status` shows it and as
/// [`OpenError::NoTokenPresent`] asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecipientId {
    Piv {
        serial: u32,
        slot: u8,
        tag: [u8; 4],
    },
    Fido2 {
        rp_id: String,
        tag: [u8; 4],
    },
    /// A kind written by a newer vault; this one skips it.
    Unknown {
        kind: u8,
    },
}

impl fmt::Display for RecipientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecipientId::Piv { serial, slot, tag } => write!(
                f,
                "YubiKey {serial} slot {slot:#04x} (key {})",
                hex::encode(tag)
            ),
            RecipientId::Fido2 { rp_id, tag } => write!(
                f,
                "FIDO2 key with credential {} for {rp_id}",
                hex::encode(tag)
            ),
            RecipientId::Unknown { kind } => {
                write!(f, "a token of kind {kind}, unknown to this vault")
            }
        }
    }
}

/// Whether `bytes` start as an envelope does (its magic), so a store
/// item that is sometimes sealed can tell without decoding.
pub fn is_envelope(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// The first 4 bytes of SHA-256 of a slot's public key (SEC1 uncompressed):
/// enough to tell a user's few keys apart, not to identify one securely.
pub fn tag(public_key: &PublicKey) -> [u8; 4] {
    short_hash(public_key.to_encoded_point(false).as_bytes())
}

/// The FIDO2 counterpart of [`tag`]: the first 4 bytes of SHA-256 of the
/// credential id, which is all that names a credential.
pub fn credential_tag(credential_id: &[u8]) -> [u8; 4] {
    short_hash(credential_id)
}

fn short_hash(bytes: &[u8]) -> [u8; 4] {
    let digest = Sha256::digest(bytes);
    [digest[0], digest[1], digest[2], digest[3]]
}

/// What the hardware does for [`open`]. `Ok(None)` means the token is not
/// present and the next entry should be tried; `Err` means the token is
/// there but could not do it (wrong or blocked PIN, no touch, a different
/// key in the slot), and stops the open: moving on to another token would
/// ask for a PIN again and, with the same PIN on both, burn tries on both.
/// A kind the implementation does not handle is never present.
pub trait Unwrapper {
    /// ECDH of `ephemeral` with the key in `slot` of the PIV token `serial`:
    /// the x-coordinate of the shared point. The card code should check
    /// that the slot still holds `public_key` before asking for a touch
    /// (from the card, or from what enrollment recorded of the slot).
    fn piv_ecdh(
        &mut self,
        serial: u32,
        slot: u8,
        public_key: &PublicKey,
        ephemeral: &PublicKey,
    ) -> Result<Option<Zeroizing<[u8; 32]>>, CardError> {
        let _ = (serial, slot, public_key, ephemeral);
        Ok(None)
    }

    /// The hmac-secret output of FIDO2 credential `credential_id` (of
    /// relying party `rp_id`) for `salt`.
    fn fido2_secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
    ) -> Result<Option<Zeroizing<[u8; 32]>>, CardError> {
        let _ = (rp_id, credential_id, salt);
        Ok(None)
    }
}

impl<U: Unwrapper + ?Sized> Unwrapper for Box<U> {
    fn piv_ecdh(
        &mut self,
        serial: u32,
        slot: u8,
        public_key: &PublicKey,
        ephemeral: &PublicKey,
    ) -> Result<Option<Zeroizing<[u8; 32]>>, CardError> {
        (**self).piv_ecdh(serial, slot, public_key, ephemeral)
    }

    fn fido2_secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
    ) -> Result<Option<Zeroizing<[u8; 32]>>, CardError> {
        (**self).fido2_secret(rp_id, credential_id, salt)
    }
}

/// Several tokens, asked in order: the first that is present answers.
impl<U: Unwrapper> Unwrapper for Vec<U> {
    fn piv_ecdh(
        &mut self,
        serial: u32,
        slot: u8,
        public_key: &PublicKey,
        ephemeral: &PublicKey,
    ) -> Result<Option<Zeroizing<[u8; 32]>>, CardError> {
        for token in self.iter_mut() {
            if let Some(shared) = token.piv_ecdh(serial, slot, public_key, ephemeral)? {
                return Ok(Some(shared));
            }
        }
        Ok(None)
    }

    fn fido2_secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
    ) -> Result<Option<Zeroizing<[u8; 32]>>, CardError> {
        for token in self.iter_mut() {
            if let Some(secret) = token.fido2_secret(rp_id, credential_id, salt)? {
                return Ok(Some(secret));
            }
        }
        Ok(None)
    }
}

/// A PIV slot in software: the stand-in for a card in tests, answering as
/// a card would.
pub struct SoftwarePiv {
    pub serial: u32,
    pub slot: u8,
    pub secret: p256::SecretKey,
}

impl SoftwarePiv {
    pub fn generate(serial: u32, slot: u8, rng: &mut (impl RngCore + CryptoRng)) -> Self {
        SoftwarePiv {
            serial,
            slot,
            secret: p256::SecretKey::random(rng),
        }
    }

    pub fn recipient(&self) -> Recipient {
        Recipient::Piv {
            serial: self.serial,
            slot: self.slot,
            public_key: self.secret.public_key(),
        }
    }
}

impl fmt::Debug for SoftwarePiv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SoftwarePiv {{ serial: {}, slot: {:#04x}, tag: {} }}",
            self.serial,
            self.slot,
            hex::encode(tag(&self.secret.public_key()))
        )
    }
}

impl Unwrapper for SoftwarePiv {
    fn piv_ecdh(
        &mut self,
        serial: u32,
        slot: u8,
        public_key: &PublicKey,
        ephemeral: &PublicKey,
    ) -> Result<Option<Zeroizing<[u8; 32]>>, CardError> {
        if serial != self.serial {
            return Ok(None);
        }
        if slot != self.slot {
            return Err(Message(format!("YubiKey {serial} has no key in slot {slot:#04x}")).into());
        }
        if *public_key != self.secret.public_key() {
            return Err(Message(format!(
                "slot {slot:#04x} of YubiKey {serial} holds another key than the one \
                 this item was sealed to"
            ))
            .into());
        }
        let scalar = Zeroizing::new(self.secret.to_nonzero_scalar());
        let shared = p256::ecdh::diffie_hellman(&*scalar, ephemeral.as_affine());
        Ok(Some(copy32(shared.raw_secret_bytes())))
    }
}

/// A FIDO2 credential with hmac-secret in software: the stand-in for an
/// authenticator in tests (none can be emulated here: FIDO2 is HID only).
pub struct SoftwareFido2 {
    pub rp_id: String,
    pub credential_id: Vec<u8>,
    /// CTAP's CredRandom: the per-credential key of hmac-secret.
    pub cred_random: Zeroizing<[u8; 32]>,
}

impl SoftwareFido2 {
    pub fn generate(rp_id: &str, rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut credential_id = vec![0; 64];
        rng.fill_bytes(&mut credential_id);
        let mut cred_random = Zeroizing::new([0; 32]);
        rng.fill_bytes(&mut cred_random[..]);
        SoftwareFido2 {
            rp_id: rp_id.to_string(),
            credential_id,
            cred_random,
        }
    }

    /// HMAC-SHA-256(CredRandom, salt), as CTAP defines the hmac-secret
    /// output. HKDF-Extract is exactly that HMAC, which spares a dependency.
    pub fn hmac_secret(&self, salt: &[u8; 32]) -> Zeroizing<[u8; 32]> {
        let (mut prk, _) = Hkdf::<Sha256>::extract(Some(&self.cred_random[..]), salt);
        let out = copy32(&prk);
        prk.as_mut_slice().zeroize();
        out
    }

    pub fn recipient(&self, salt: [u8; 32]) -> Recipient {
        Recipient::Fido2 {
            rp_id: self.rp_id.clone(),
            credential_id: self.credential_id.clone(),
            salt,
            hmac_secret: self.hmac_secret(&salt),
        }
    }
}

impl fmt::Debug for SoftwareFido2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SoftwareFido2 {{ rp_id: {:?}, tag: {} }}",
            self.rp_id,
            hex::encode(credential_tag(&self.credential_id))
        )
    }
}

impl Unwrapper for SoftwareFido2 {
    fn fido2_secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
    ) -> Result<Option<Zeroizing<[u8; 32]>>, CardError> {
        if rp_id != self.rp_id || credential_id != self.credential_id.as_slice() {
            return Ok(None);
        }
        Ok(Some(self.hmac_secret(salt)))
    }
}

/// A sealed secret: one entry per recipient, each opening to the same
/// secret. Built only by [`seal`] and [`Envelope::decode`], so it always has
/// 1 to [`MAX_RECIPIENTS`] entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Piv(PivEntry),
    Fido2(Fido2Entry),
    /// Kept byte for byte so that re-encoding does not drop a recipient a
    /// newer vault added.
    Unknown {
        kind: u8,
        body: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PivEntry {
    serial: u32,
    slot: u8,
    public_key: PublicKey,
    ephemeral: PublicKey,
    ciphertext: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Fido2Entry {
    salt: [u8; 32],
    wrap_salt: [u8; 32],
    rp_id: String,
    credential_id: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl Entry {
    fn kind(&self) -> u8 {
        match self {
            Entry::Piv(_) => KIND_PIV_P256,
            Entry::Fido2(_) => KIND_FIDO2_HMAC_SECRET,
            Entry::Unknown { kind, .. } => *kind,
        }
    }

    fn id(&self) -> RecipientId {
        match self {
            Entry::Piv(e) => RecipientId::Piv {
                serial: e.serial,
                slot: e.slot,
                tag: tag(&e.public_key),
            },
            Entry::Fido2(e) => RecipientId::Fido2 {
                rp_id: e.rp_id.clone(),
                tag: credential_tag(&e.credential_id),
            },
            Entry::Unknown { kind, .. } => RecipientId::Unknown { kind: *kind },
        }
    }

    /// The body up to the ciphertext: what the AEAD authenticates.
    fn write_fields(&self, out: &mut Vec<u8>) {
        match self {
            Entry::Piv(e) => {
                out.extend_from_slice(&e.serial.to_be_bytes());
                out.push(e.slot);
                out.extend_from_slice(&tag(&e.public_key));
                out.extend_from_slice(e.public_key.to_encoded_point(false).as_bytes());
                out.extend_from_slice(e.ephemeral.to_encoded_point(false).as_bytes());
            }
            Entry::Fido2(e) => {
                out.extend_from_slice(&credential_tag(&e.credential_id));
                out.extend_from_slice(&e.salt);
                out.extend_from_slice(&e.wrap_salt);
                // Lengths were bounded when the entry was sealed or decoded.
                out.push(e.rp_id.len() as u8);
                out.extend_from_slice(e.rp_id.as_bytes());
                out.extend_from_slice(&(e.credential_id.len() as u16).to_be_bytes());
                out.extend_from_slice(&e.credential_id);
            }
            Entry::Unknown { body, .. } => out.extend_from_slice(body),
        }
    }

    fn ciphertext(&self) -> &[u8] {
        match self {
            Entry::Piv(e) => &e.ciphertext,
            Entry::Fido2(e) => &e.ciphertext,
            Entry::Unknown { .. } => &[],
        }
    }

    fn body(&self) -> Vec<u8> {
        let mut body = Vec::new();
        self.write_fields(&mut body);
        body.extend_from_slice(self.ciphertext());
        body
    }

    fn associated_data(&self, context: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(256 + context.len());
        aad.extend_from_slice(MAGIC);
        aad.push(VERSION);
        aad.push(self.kind());
        self.write_fields(&mut aad);
        // Last, so its length needs no prefix: everything before it is
        // fixed or length-prefixed.
        aad.extend_from_slice(context.as_bytes());
        aad
    }
}

impl Envelope {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + self.entries.len() * 256);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        // At most MAX_RECIPIENTS entries of at most MAX_ENTRY_LEN bytes, by
        // construction: both casts are lossless.
        out.push(self.entries.len() as u8);
        for entry in &self.entries {
            let body = entry.body();
            out.push(entry.kind());
            out.extend_from_slice(&(body.len() as u16).to_be_bytes());
            out.extend_from_slice(&body);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let mut r = Reader::new(bytes);
        if r.take(MAGIC.len()).ok_or(EnvelopeError::BadMagic)? != MAGIC {
            return Err(EnvelopeError::BadMagic);
        }
        let version = r.u8().ok_or(EnvelopeError::Truncated {
            what: "the format version",
        })?;
        if version != VERSION {
            return Err(EnvelopeError::UnsupportedVersion { found: version });
        }
        let declared = usize::from(r.u8().ok_or(EnvelopeError::Truncated {
            what: "the recipient count",
        })?);
        if declared == 0 {
            return Err(EnvelopeError::NoEntries);
        }
        if declared > MAX_RECIPIENTS {
            return Err(EnvelopeError::TooManyEntries { declared });
        }
        let mut entries = Vec::with_capacity(declared);
        for index in 1..=declared {
            if r.is_empty() {
                return Err(EnvelopeError::CountMismatch {
                    declared,
                    found: index - 1,
                });
            }
            let kind = r.u8().ok_or(EnvelopeError::Truncated {
                what: "an entry kind",
            })?;
            let len = usize::from(r.u16().ok_or(EnvelopeError::EntryTruncated {
                entry: index,
                field: "the entry length",
            })?);
            if len > MAX_ENTRY_LEN {
                return Err(EnvelopeError::EntryTooLarge { entry: index, len });
            }
            let body = r.take(len).ok_or(EnvelopeError::EntryTruncated {
                entry: index,
                field: "the entry body",
            })?;
            entries.push(decode_entry(index, kind, body)?);
        }
        if !r.is_empty() {
            return Err(EnvelopeError::TrailingBytes {
                count: r.remaining(),
            });
        }
        Ok(Envelope { entries })
    }

    /// The tokens this envelope is sealed to, in the order [`open`] tries them.
    pub fn recipients(&self) -> Vec<RecipientId> {
        self.entries.iter().map(Entry::id).collect()
    }
}

fn decode_entry(entry: usize, kind: u8, body: &[u8]) -> Result<Entry, EnvelopeError> {
    let mut r = Reader::new(body);
    let truncated = |field| EnvelopeError::EntryTruncated { entry, field };
    match kind {
        0 => Err(EnvelopeError::InvalidKind { entry }),
        KIND_PIV_P256 => {
            let serial = r.u32().ok_or(truncated("the card serial"))?;
            let slot = r.u8().ok_or(truncated("the slot"))?;
            let stored_tag = r.array::<4>().ok_or(truncated("the key tag"))?;
            let public_key = r
                .take(POINT_LEN)
                .ok_or(truncated("the slot public key"))
                .and_then(|b| point(entry, "slot public key", b))?;
            let ephemeral = r
                .take(POINT_LEN)
                .ok_or(truncated("the ephemeral key"))
                .and_then(|b| point(entry, "ephemeral key", b))?;
            if tag(&public_key) != stored_tag {
                return Err(EnvelopeError::TagMismatch { entry });
            }
            let ciphertext = ciphertext(&mut r).ok_or(truncated("the ciphertext"))?;
            Ok(Entry::Piv(PivEntry {
                serial,
                slot,
                public_key,
                ephemeral,
                ciphertext,
            }))
        }
        KIND_FIDO2_HMAC_SECRET => {
            let stored_tag = r.array::<4>().ok_or(truncated("the credential tag"))?;
            let salt = r.array::<32>().ok_or(truncated("the hmac-secret salt"))?;
            let wrap_salt = r.array::<32>().ok_or(truncated("the wrap salt"))?;
            let rp_len = usize::from(r.u8().ok_or(truncated("the relying party id length"))?);
            if rp_len == 0 {
                return Err(EnvelopeError::InvalidField {
                    entry,
                    problem: "the relying party id is empty",
                });
            }
            let rp_id = r.take(rp_len).ok_or(truncated("the relying party id"))?;
            let rp_id = std::str::from_utf8(rp_id)
                .map_err(|_| EnvelopeError::InvalidField {
                    entry,
                    problem: "the relying party id is not UTF-8",
                })?
                .to_string();
            let cred_len = usize::from(r.u16().ok_or(truncated("the credential id length"))?);
            if cred_len == 0 || cred_len > MAX_CREDENTIAL_ID_LEN {
                return Err(EnvelopeError::InvalidField {
                    entry,
                    problem: "the credential id length is not between 1 and 1023",
                });
            }
            let credential_id = r
                .take(cred_len)
                .ok_or(truncated("the credential id"))?
                .to_vec();
            if credential_tag(&credential_id) != stored_tag {
                return Err(EnvelopeError::TagMismatch { entry });
            }
            let ciphertext = ciphertext(&mut r).ok_or(truncated("the ciphertext"))?;
            Ok(Entry::Fido2(Fido2Entry {
                salt,
                wrap_salt,
                rp_id,
                credential_id,
                ciphertext,
            }))
        }
        _ => Ok(Entry::Unknown {
            kind,
            body: body.to_vec(),
        }),
    }
}

/// The rest of an entry's body, which must hold at least one byte of
/// secret besides the Poly1305 tag (an empty secret is never sealed).
fn ciphertext(r: &mut Reader<'_>) -> Option<Vec<u8>> {
    let rest = r.take(r.remaining())?;
    (rest.len() > AEAD_TAG_LEN).then(|| rest.to_vec())
}

/// Only the uncompressed form is written; accepting only it keeps every
/// envelope's encoding unique, so decode and encode round-trip exactly.
fn point(entry: usize, which: &'static str, bytes: &[u8]) -> Result<PublicKey, EnvelopeError> {
    if bytes.first() != Some(&0x04) {
        return Err(EnvelopeError::InvalidPoint { entry, which });
    }
    PublicKey::from_sec1_bytes(bytes).map_err(|_| EnvelopeError::InvalidPoint { entry, which })
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }
    fn remaining(&self) -> usize {
        self.bytes.len()
    }
    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }
    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }
    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }
}

/// Seals `secret` to every recipient, bound to `context` (the item's name,
/// e.g. `key/work`): opening needs one of the tokens and the same context.
pub fn seal(
    secret: &SecretBytes,
    recipients: &[Recipient],
    context: &str,
) -> Result<Envelope, SealError> {
    seal_with_rng(secret, recipients, context, &mut rand::rngs::OsRng)
}

/// [`seal`] with the randomness (ephemeral keys, wrap salts) drawn from
/// `rng`: for known-answer tests. Anything but a CSPRNG seeded from the OS
/// makes the envelope as weak as the seed.
pub fn seal_with_rng<R: RngCore + CryptoRng>(
    secret: &SecretBytes,
    recipients: &[Recipient],
    context: &str,
    rng: &mut R,
) -> Result<Envelope, SealError> {
    let plaintext = secret.expose();
    if recipients.is_empty() {
        return Err(SealError::NoRecipients);
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(SealError::TooManyRecipients {
            count: recipients.len(),
        });
    }
    if plaintext.is_empty() {
        return Err(SealError::EmptySecret);
    }
    if plaintext.len() > MAX_SECRET_LEN {
        return Err(SealError::SecretTooLarge {
            len: plaintext.len(),
        });
    }
    let mut seen = Vec::with_capacity(recipients.len());
    for (index, recipient) in recipients.iter().enumerate() {
        if let Recipient::Fido2 {
            rp_id,
            credential_id,
            ..
        } = recipient
        {
            let problem = if rp_id.is_empty() || rp_id.len() > MAX_RP_ID_LEN {
                Some("the relying party id must be 1 to 255 bytes")
            } else if credential_id.is_empty() || credential_id.len() > MAX_CREDENTIAL_ID_LEN {
                Some("the credential id must be 1 to 1023 bytes")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(SealError::InvalidRecipient {
                    recipient: index + 1,
                    problem,
                });
            }
        }
        let id = recipient.id();
        if seen.contains(&id) {
            return Err(SealError::DuplicateRecipient { recipient: id });
        }
        seen.push(id);
    }

    let entries = recipients
        .iter()
        .map(|recipient| seal_entry(plaintext, recipient, context, rng))
        .collect();
    Ok(Envelope { entries })
}

fn seal_entry<R: RngCore + CryptoRng>(
    plaintext: &[u8],
    recipient: &Recipient,
    context: &str,
    rng: &mut R,
) -> Entry {
    let (mut entry, key) = match recipient {
        Recipient::Piv {
            serial,
            slot,
            public_key,
        } => {
            let scalar = ephemeral_scalar(rng);
            let ephemeral = PublicKey::from_secret_scalar(&scalar);
            let shared = p256::ecdh::diffie_hellman(&*scalar, public_key.as_affine());
            let key = piv_key(&copy32(shared.raw_secret_bytes()), &ephemeral, public_key);
            let entry = Entry::Piv(PivEntry {
                serial: *serial,
                slot: *slot,
                public_key: *public_key,
                ephemeral,
                ciphertext: Vec::new(),
            });
            (entry, key)
        }
        Recipient::Fido2 {
            rp_id,
            credential_id,
            salt,
            hmac_secret,
        } => {
            // The hmac-secret output is the same for every seal with this
            // salt; a fresh wrap salt makes each seal's key, and so the
            // zero nonce, used once.
            let mut wrap_salt = [0; 32];
            rng.fill_bytes(&mut wrap_salt);
            let key = fido2_key(hmac_secret, &wrap_salt);
            let entry = Entry::Fido2(Fido2Entry {
                salt: *salt,
                wrap_salt,
                rp_id: rp_id.clone(),
                credential_id: credential_id.clone(),
                ciphertext: Vec::new(),
            });
            (entry, key)
        }
    };
    let aad = entry.associated_data(context);
    // A zero nonce is safe only because this key is new and used once.
    let ciphertext = ChaCha20Poly1305::new(Key::from_slice(&key[..]))
        .encrypt(
            &Nonce::default(),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        // ChaCha20-Poly1305 fails only past 256 GiB; the secret is at most
        // MAX_SECRET_LEN.
        .expect("a secret of at most MAX_SECRET_LEN bytes always encrypts");
    match &mut entry {
        Entry::Piv(e) => e.ciphertext = ciphertext,
        Entry::Fido2(e) => e.ciphertext = ciphertext,
        Entry::Unknown { .. } => {}
    }
    entry
}

/// The ephemeral scalar is the first 32-byte big-endian draw from `rng`
/// that is a valid non-zero scalar, drawn here rather than by p256 so that
/// the known-answer vector depends only on this code and the RNG.
fn ephemeral_scalar<R: RngCore + CryptoRng>(rng: &mut R) -> Zeroizing<NonZeroScalar> {
    let mut bytes = Zeroizing::new(FieldBytes::default());
    loop {
        rng.fill_bytes(&mut bytes[..]);
        if let Some(scalar) = Option::<NonZeroScalar>::from(NonZeroScalar::from_repr(*bytes)) {
            return Zeroizing::new(scalar);
        }
    }
}

fn piv_key(
    shared_x: &Zeroizing<[u8; 32]>,
    ephemeral: &PublicKey,
    public_key: &PublicKey,
) -> Zeroizing<[u8; 32]> {
    let mut salt = Vec::with_capacity(2 * POINT_LEN);
    salt.extend_from_slice(ephemeral.to_encoded_point(false).as_bytes());
    salt.extend_from_slice(public_key.to_encoded_point(false).as_bytes());
    hkdf32(&shared_x[..], &salt, PIV_INFO)
}

fn fido2_key(hmac_secret: &Zeroizing<[u8; 32]>, wrap_salt: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    hkdf32(&hmac_secret[..], wrap_salt, FIDO2_INFO)
}

fn hkdf32(ikm: &[u8], salt: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut okm = Zeroizing::new([0; 32]);
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, &mut okm[..])
        // HKDF-SHA256 refuses only outputs over 8160 bytes.
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
}

fn copy32(bytes: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0; 32]);
    out.copy_from_slice(bytes);
    out
}

/// Opens `envelope` with the first token `unwrap` finds present, trying the
/// entries in order. `context` must be the one it was sealed with.
pub fn open(
    envelope: &Envelope,
    context: &str,
    unwrap: &mut dyn Unwrapper,
) -> Result<SecretBytes, OpenError> {
    let mut wanted = Vec::new();
    let mut unknown = Vec::new();
    for entry in &envelope.entries {
        let answer = match entry {
            Entry::Piv(e) => unwrap
                .piv_ecdh(e.serial, e.slot, &e.public_key, &e.ephemeral)
                .map(|shared| shared.map(|x| piv_key(&x, &e.ephemeral, &e.public_key))),
            Entry::Fido2(e) => unwrap
                .fido2_secret(&e.rp_id, &e.credential_id, &e.salt)
                .map(|secret| secret.map(|s| fido2_key(&s, &e.wrap_salt))),
            Entry::Unknown { kind, .. } => {
                unknown.push(*kind);
                continue;
            }
        };
        let key = match answer {
            Ok(Some(key)) => key,
            Ok(None) => {
                wanted.push(entry.id());
                continue;
            }
            Err(failure) => {
                return Err(OpenError::Token {
                    recipient: entry.id(),
                    failure,
                })
            }
        };
        let aad = entry.associated_data(context);
        // The token answered for the key this entry names (the card code
        // checks it, or trusts what enrollment recorded of the slot), so a
        // failure here is a changed envelope, one moved from another item,
        // or a slot regenerated behind vault's back: stop rather than try
        // the others, and let the caller ask the card which it was.
        return ChaCha20Poly1305::new(Key::from_slice(&key[..]))
            .decrypt(
                &Nonce::default(),
                Payload {
                    msg: entry.ciphertext(),
                    aad: &aad,
                },
            )
            .map(SecretBytes::new)
            .map_err(|_| OpenError::Corrupt {
                recipient: entry.id(),
            });
    }
    if wanted.is_empty() {
        Err(OpenError::NoUsableEntry { kinds: unknown })
    } else {
        Err(OpenError::NoTokenPresent { wanted })
    }
}

const DAMAGED_HINT: &str =
    "the stored item is damaged or was not written by vault: remove it with \
     `vault remove PROFILE` and add the key again";

/// Why bytes are not an envelope. Entries are counted from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the stored item is not a token envelope (it does not start with \"VLTE\")")]
    BadMagic,
    #[error(
        "the token envelope has format version {found}, but this vault reads only \
         version {VERSION}: it was written by a newer vault"
    )]
    UnsupportedVersion { found: u8 },
    #[error("the token envelope is cut short: {what} is missing")]
    Truncated { what: &'static str },
    #[error("the token envelope has {count} unexpected bytes after its last entry")]
    TrailingBytes { count: usize },
    #[error("the token envelope names no token to open it with")]
    NoEntries,
    #[error("the token envelope claims {declared} tokens; at most {MAX_RECIPIENTS} are allowed")]
    TooManyEntries { declared: usize },
    #[error("the token envelope claims {declared} tokens but holds {found}")]
    CountMismatch { declared: usize, found: usize },
    #[error(
        "entry {entry} of the token envelope claims {len} bytes; at most \
         {MAX_ENTRY_LEN} are allowed"
    )]
    EntryTooLarge { entry: usize, len: usize },
    #[error("entry {entry} of the token envelope has kind 0, which is never written")]
    InvalidKind { entry: usize },
    #[error("entry {entry} of the token envelope is cut short: {field} is missing")]
    EntryTruncated { entry: usize, field: &'static str },
    #[error("entry {entry} of the token envelope has an invalid {which} (not a P-256 point)")]
    InvalidPoint { entry: usize, which: &'static str },
    #[error("entry {entry} of the token envelope has a key tag that does not match its key")]
    TagMismatch { entry: usize },
    #[error("entry {entry} of the token envelope is invalid: {problem}")]
    InvalidField { entry: usize, problem: &'static str },
}

impl EnvelopeError {
    pub fn hint(&self) -> &'static str {
        match self {
            EnvelopeError::UnsupportedVersion { .. } => {
                "upgrade vault to read this item, or remove it and add the key again"
            }
            _ => DAMAGED_HINT,
        }
    }
}

impl Hinted for EnvelopeError {
    fn hint(&self) -> Option<String> {
        Some(EnvelopeError::hint(self).to_string())
    }
}

/// Why a secret could not be sealed: each is a caller's mistake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("no token to seal to: at least one is needed")]
    NoRecipients,
    #[error("{count} tokens to seal to; at most {MAX_RECIPIENTS} are allowed")]
    TooManyRecipients { count: usize },
    #[error("refusing to seal an empty secret")]
    EmptySecret,
    #[error("the secret is {len} bytes; at most {MAX_SECRET_LEN} can be sealed")]
    SecretTooLarge { len: usize },
    #[error("token {recipient} to seal to is invalid: {problem}")]
    InvalidRecipient {
        recipient: usize,
        problem: &'static str,
    },
    #[error("{recipient} is named twice among the tokens to seal to")]
    DuplicateRecipient { recipient: RecipientId },
}

/// A caller's mistake is vault's bug: the user has nothing to do about it.
impl Hinted for SealError {}

/// Why an envelope did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "no token this item is sealed to is present: insert {}",
        join_or(wanted)
    )]
    NoTokenPresent { wanted: Vec<RecipientId> },
    /// The token's own error, typed, with its hint.
    #[error("{recipient}: {failure}")]
    Token {
        recipient: RecipientId,
        failure: CardError,
    },
    #[error(
        "the item sealed to {recipient} failed authentication: it was altered, \
         damaged, or copied from another item"
    )]
    Corrupt { recipient: RecipientId },
    #[error(
        "this item is sealed only to kinds of token this vault does not know \
         (kind {}): it was written by a newer vault",
        kinds.iter().map(u8::to_string).collect::<Vec<_>>().join(", ")
    )]
    NoUsableEntry { kinds: Vec<u8> },
}

/// What an [`Unwrapper`] fails with: the token layer's own error, boxed.
pub type CardError = Box<dyn Hinted>;

impl OpenError {
    pub fn hint(&self) -> Option<String> {
        let fixed = match self {
            OpenError::NoTokenPresent { .. } => {
                "insert one of those keys and run the command again"
            }
            OpenError::Token { failure, .. } => return failure.hint(),
            OpenError::Corrupt { .. } => {
                "do not copy stored items between profiles; remove the item with \
                 `vault remove PROFILE` and add the key again"
            }
            OpenError::NoUsableEntry { .. } => "upgrade vault to read this item",
        };
        Some(fixed.to_string())
    }
}

impl Hinted for OpenError {
    fn hint(&self) -> Option<String> {
        OpenError::hint(self)
    }
}

fn join_or(ids: &[RecipientId]) -> String {
    let names: Vec<String> = ids.iter().map(RecipientId::to_string).collect();
    names.join(" or ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    const SECRET: &[u8] = br#"{"AccessKeyId":"AKIAIOSFODNN7EXAMPLE","SecretAccessKey":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#;
    const CONTEXT: &str = "key/work";

    fn secret() -> SecretBytes {
        SecretBytes::new(SECRET.to_vec())
    }

    fn piv(serial: u32, slot: u8, seed: u8) -> SoftwarePiv {
        SoftwarePiv {
            serial,
            slot,
            secret: p256::SecretKey::from_slice(&[seed; 32]).unwrap(),
        }
    }

    fn fido2(seed: u8) -> SoftwareFido2 {
        SoftwareFido2 {
            rp_id: "vault".into(),
            credential_id: vec![seed; 48],
            cred_random: Zeroizing::new([seed ^ 0xff; 32]),
        }
    }

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(0x0076_6175_6c74)
    }

    /// A token that is present but fails, as a card with a wrong PIN does.
    struct Failing;
    impl Unwrapper for Failing {
        fn piv_ecdh(
            &mut self,
            _: u32,
            _: u8,
            _: &PublicKey,
            _: &PublicKey,
        ) -> Result<Option<Zeroizing<[u8; 32]>>, CardError> {
            Err(Message("wrong PIN, 2 tries left".into()).into())
        }
    }

    /// A token that must never be asked.
    struct Unreachable;
    impl Unwrapper for Unreachable {
        fn piv_ecdh(
            &mut self,
            _: u32,
            _: u8,
            _: &PublicKey,
            _: &PublicKey,
        ) -> Result<Option<Zeroizing<[u8; 32]>>, CardError> {
            panic!("asked a token after the open was decided")
        }
    }

    fn vector_envelope() -> Envelope {
        let recipients = [
            piv(12345678, 0x82, 0x11).recipient(),
            fido2(0x22).recipient([0x33; 32]),
        ];
        seal_with_rng(&secret(), &recipients, CONTEXT, &mut rng()).unwrap()
    }

    // The envelope of `vector_envelope`, field by field. Checked against
    // an independent implementation (Python `cryptography`: OpenSSL's ECDH,
    // HKDF, ChaCha20-Poly1305, HMAC) when it was made.
    const VECTOR: &str = concat!(
        "564c5445", // magic
        "01",       // format version
        "02",       // entries
        "01",       // kind: PIV P-256
        "00fe",     // body length
        "00bc614e", // serial 12345678
        "82",       // slot
        "2bad0fd6", // tag
        // slot public key
        "040217e617f0b6443928278f96999e69a23a4f2c152bdf6d6cdf66e5b80282d4",
        "ed194a7debcb97712d2dda3ca85aa8765a56f45fc758599652f2897c65306e57",
        "94",
        // ephemeral public key
        "044245d300477ad3c40248c833d2c0e3273739c98fced20775aa26d1b455ebbc",
        "019f049be5ab0edff75da392ac122a469a209033304dd33af2a7933c02f21791",
        "df",
        // ciphertext and Poly1305 tag
        "7f822fbd9b1d610b442d10b675fb1f583f570a1a18e91bce4c9136cc44626c17",
        "617ff47a25ade58adf0da669b64a4beaa878624d1d0cac950f96ac088607fa96",
        "5f5f9a10a12cdd561ee775b47e7c4e26cc08c0b556ba0cdbda50c235b98a79bf",
        "8d626f848a1d703ea56631c54bde983523cd96",
        "02",       // kind: FIDO2 hmac-secret
        "00ef",     // body length
        "492c5042", // tag
        // hmac-secret salt
        "3333333333333333333333333333333333333333333333333333333333333333",
        // wrap salt
        "699a4fd210cb37b4c05705d25e0562c3915dcba55c217fd13487b7d6e8afa0ba",
        "05",         // relying party id length
        "7661756c74", // "vault"
        "0030",       // credential id length
        "2222222222222222222222222222222222222222222222222222222222222222",
        "22222222222222222222222222222222",
        // ciphertext and Poly1305 tag
        "8be5b352155a24f5a4aab77a06906874383979cf92a3646ee698a02a21233b6a",
        "edeccb81d0c82c9c8b599b1be436737441fcc041c43eabd5b317e68cc069b759",
        "085ed9070df33ba86ca4b0ed394033f2dd5fe785304c26d64580a8b0f5ebbda9",
        "8d730b77d3b0d6067d0f90125dca61fd15a076",
    );

    // A change here is a change of the stored format: bump VERSION (and
    // keep reading version 1) rather than update the vector.
    #[test]
    fn known_vector() {
        let encoded = vector_envelope().encode();
        assert_eq!(hex::encode(&encoded), VECTOR);
        let envelope = Envelope::decode(&hex::decode(VECTOR).unwrap()).unwrap();
        let mut tokens: Vec<Box<dyn Unwrapper>> =
            vec![Box::new(piv(12345678, 0x82, 0x11)), Box::new(fido2(0x22))];
        assert_eq!(
            open(&envelope, CONTEXT, &mut tokens).unwrap().expose(),
            SECRET
        );
        let mut fido_only = fido2(0x22);
        assert_eq!(
            open(&envelope, CONTEXT, &mut fido_only).unwrap().expose(),
            SECRET
        );
    }

    // Follows the format table in the module documentation step by step,
    // without the module's own parsing or key derivation.
    #[test]
    fn the_documented_scheme_opens_the_vector() {
        let bytes = vector_envelope().encode();
        assert_eq!(&bytes[0..4], b"VLTE");
        assert_eq!(bytes[4], 1);
        assert_eq!(bytes[5], 2);
        assert_eq!(bytes[6], 1);
        let len = usize::from(u16::from_be_bytes([bytes[7], bytes[8]]));
        let body = &bytes[9..9 + len];
        assert_eq!(u32::from_be_bytes(body[0..4].try_into().unwrap()), 12345678);
        assert_eq!(body[4], 0x82);
        let slot_key = piv(12345678, 0x82, 0x11).secret;
        let pk = slot_key.public_key().to_encoded_point(false);
        assert_eq!(&body[9..74], pk.as_bytes());
        assert_eq!(&body[5..9], &Sha256::digest(pk.as_bytes())[..4]);
        let epk = PublicKey::from_sec1_bytes(&body[74..139]).unwrap();
        let shared = p256::ecdh::diffie_hellman(slot_key.to_nonzero_scalar(), epk.as_affine());
        let mut salt = body[74..139].to_vec();
        salt.extend_from_slice(pk.as_bytes());
        let mut key = [0; 32];
        Hkdf::<Sha256>::new(Some(&salt), shared.raw_secret_bytes())
            .expand(b"vault/v1 piv-p256 wrap", &mut key)
            .unwrap();
        let mut aad = b"VLTE\x01\x01".to_vec();
        aad.extend_from_slice(&body[..139]);
        aad.extend_from_slice(CONTEXT.as_bytes());
        let plaintext = ChaCha20Poly1305::new(&key.into())
            .decrypt(
                &[0; 12].into(),
                Payload {
                    msg: &body[139..],
                    aad: &aad,
                },
            )
            .unwrap();
        assert_eq!(plaintext, SECRET);

        let second = &bytes[9 + len..];
        assert_eq!(second[0], 2);
        let len2 = usize::from(u16::from_be_bytes([second[1], second[2]]));
        assert_eq!(second.len(), 3 + len2);
        let body = &second[3..];
        let token = fido2(0x22);
        assert_eq!(&body[0..4], &Sha256::digest(&token.credential_id)[..4]);
        assert_eq!(&body[4..36], &[0x33; 32]);
        assert_eq!(usize::from(body[68]), "vault".len());
        assert_eq!(&body[69..74], b"vault");
        assert_eq!(u16::from_be_bytes([body[74], body[75]]), 48);
        assert_eq!(&body[76..124], token.credential_id.as_slice());
        let hmac = token.hmac_secret(&[0x33; 32]);
        let mut key = [0; 32];
        Hkdf::<Sha256>::new(Some(&body[36..68]), &hmac[..])
            .expand(b"vault/v1 fido2-hmac-secret wrap", &mut key)
            .unwrap();
        let mut aad = b"VLTE\x01\x02".to_vec();
        aad.extend_from_slice(&body[..124]);
        aad.extend_from_slice(CONTEXT.as_bytes());
        let plaintext = ChaCha20Poly1305::new(&key.into())
            .decrypt(
                &[0; 12].into(),
                Payload {
                    msg: &body[124..],
                    aad: &aad,
                },
            )
            .unwrap();
        assert_eq!(plaintext, SECRET);
    }

    // RFC 4231 test case 2: the software authenticator's hmac-secret is
    // HMAC-SHA-256, as CTAP specifies.
    #[test]
    fn software_hmac_secret_is_hmac_sha256() {
        let (prk, _) = Hkdf::<Sha256>::extract(Some(b"Jefe"), b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(prk),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn round_trips_with_one_two_and_three_recipients() {
        let tokens = [piv(1001, 0x82, 1), piv(1002, 0x83, 2), piv(1003, 0x82, 3)];
        for n in 1..=3 {
            let recipients: Vec<_> = tokens[..n].iter().map(SoftwarePiv::recipient).collect();
            let envelope = seal(&secret(), &recipients, CONTEXT).unwrap();
            let decoded = Envelope::decode(&envelope.encode()).unwrap();
            assert_eq!(decoded, envelope);
            assert_eq!(decoded.recipients().len(), n);
            for token in &tokens[..n] {
                let mut alone = piv(token.serial, token.slot, (token.serial - 1000) as u8);
                assert_eq!(
                    open(&decoded, CONTEXT, &mut alone).unwrap().expose(),
                    SECRET
                );
            }
        }
    }

    #[test]
    fn each_seal_uses_fresh_keys() {
        let recipients = [piv(1, 0x82, 1).recipient(), fido2(2).recipient([9; 32])];
        let a = seal(&secret(), &recipients, CONTEXT).unwrap().encode();
        let b = seal(&secret(), &recipients, CONTEXT).unwrap().encode();
        assert_ne!(a, b);
    }

    #[test]
    fn second_recipient_opens_when_the_first_is_absent() {
        let recipients = [piv(1, 0x82, 1).recipient(), piv(2, 0x82, 2).recipient()];
        let envelope = seal(&secret(), &recipients, CONTEXT).unwrap();
        let mut second = piv(2, 0x82, 2);
        assert_eq!(
            open(&envelope, CONTEXT, &mut second).unwrap().expose(),
            SECRET
        );
    }

    #[test]
    fn first_present_token_wins_and_the_rest_are_not_asked() {
        let recipients = [piv(1, 0x82, 1).recipient(), piv(2, 0x82, 2).recipient()];
        let envelope = seal(&secret(), &recipients, CONTEXT).unwrap();
        let mut tokens: Vec<Box<dyn Unwrapper>> =
            vec![Box::new(piv(1, 0x82, 1)), Box::new(Unreachable)];
        assert_eq!(
            open(&envelope, CONTEXT, &mut tokens).unwrap().expose(),
            SECRET
        );
    }

    #[test]
    fn no_token_present_names_every_token_to_insert() {
        let recipients = [piv(1, 0x82, 1).recipient(), fido2(2).recipient([0; 32])];
        let envelope = seal(&secret(), &recipients, CONTEXT).unwrap();
        let err = open(&envelope, CONTEXT, &mut piv(3, 0x82, 3)).unwrap_err();
        let OpenError::NoTokenPresent { wanted } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(wanted, &envelope.recipients());
        assert!(matches!(
            wanted[0],
            RecipientId::Piv {
                serial: 1,
                slot: 0x82,
                ..
            }
        ));
        let text = err.to_string();
        assert!(text.contains("insert YubiKey 1 slot 0x82 (key "), "{text}");
        assert!(text.contains(" or FIDO2 key with credential "), "{text}");
    }

    #[test]
    fn a_token_error_stops_the_open() {
        let recipients = [piv(1, 0x82, 1).recipient(), piv(2, 0x82, 2).recipient()];
        let envelope = seal(&secret(), &recipients, CONTEXT).unwrap();
        let mut tokens: Vec<Box<dyn Unwrapper>> = vec![Box::new(Failing), Box::new(Unreachable)];
        let err = open(&envelope, CONTEXT, &mut tokens).unwrap_err();
        assert!(
            matches!(&err, OpenError::Token { failure, .. } if failure.to_string().contains("2 tries"))
        );
    }

    #[test]
    fn a_slot_with_another_key_is_an_error_not_absence() {
        let envelope = seal(&secret(), &[piv(1, 0x82, 1).recipient()], CONTEXT).unwrap();
        let err = open(&envelope, CONTEXT, &mut piv(1, 0x82, 9)).unwrap_err();
        assert!(matches!(err, OpenError::Token { .. }), "{err:?}");
    }

    #[test]
    fn another_context_does_not_open() {
        let recipients = [piv(1, 0x82, 1).recipient(), fido2(2).recipient([0; 32])];
        let envelope = seal(&secret(), &recipients, "key/work").unwrap();
        let err = open(&envelope, "key/prod", &mut piv(1, 0x82, 1)).unwrap_err();
        assert!(matches!(err, OpenError::Corrupt { .. }), "{err:?}");
        let err = open(&envelope, "key/prod", &mut fido2(2)).unwrap_err();
        assert!(matches!(err, OpenError::Corrupt { .. }), "{err:?}");
    }

    #[test]
    fn fido2_round_trips_and_a_wrong_hmac_secret_is_corrupt() {
        let token = fido2(5);
        let envelope = seal(&secret(), &[token.recipient([7; 32])], CONTEXT).unwrap();
        let decoded = Envelope::decode(&envelope.encode()).unwrap();
        assert_eq!(
            open(&decoded, CONTEXT, &mut fido2(5)).unwrap().expose(),
            SECRET
        );
        assert!(matches!(
            open(&decoded, CONTEXT, &mut piv(1, 0x82, 1)),
            Err(OpenError::NoTokenPresent { .. })
        ));
        let mut impostor = fido2(5);
        impostor.cred_random = Zeroizing::new([0; 32]);
        assert!(matches!(
            open(&decoded, CONTEXT, &mut impostor),
            Err(OpenError::Corrupt { .. })
        ));
    }

    #[test]
    fn mixed_tokens_open_through_one_unwrapper() {
        let recipients = [piv(1, 0x82, 1).recipient(), fido2(2).recipient([4; 32])];
        let envelope = seal(&secret(), &recipients, CONTEXT).unwrap();
        let mut tokens: Vec<Box<dyn Unwrapper>> =
            vec![Box::new(piv(7, 0x82, 7)), Box::new(fido2(2))];
        assert_eq!(
            open(&envelope, CONTEXT, &mut tokens).unwrap().expose(),
            SECRET
        );
    }

    #[test]
    fn unknown_kinds_are_skipped_and_kept() {
        let envelope = seal(&secret(), &[piv(1, 0x82, 1).recipient()], CONTEXT).unwrap();
        let mut bytes = envelope.encode();
        bytes[5] = 2;
        bytes.extend_from_slice(&[9, 0, 3, 0xaa, 0xbb, 0xcc]);
        let decoded = Envelope::decode(&bytes).unwrap();
        assert_eq!(decoded.encode(), bytes);
        assert_eq!(decoded.recipients()[1], RecipientId::Unknown { kind: 9 });
        assert_eq!(
            open(&decoded, CONTEXT, &mut piv(1, 0x82, 1))
                .unwrap()
                .expose(),
            SECRET
        );

        let only_unknown = Envelope::decode(b"VLTE\x01\x01\x09\x00\x01\x00").unwrap();
        let err = open(&only_unknown, CONTEXT, &mut piv(1, 0x82, 1)).unwrap_err();
        assert!(
            matches!(&err, OpenError::NoUsableEntry { kinds } if kinds == &[9]),
            "{err:?}"
        );
        assert!(err.to_string().contains("newer vault"));
    }

    #[test]
    fn malformed_envelopes_say_what_is_wrong() {
        let good = vector_envelope().encode();
        let first_len = usize::from(u16::from_be_bytes([good[7], good[8]]));
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            Envelope::decode(&b).unwrap_err()
        };
        assert_eq!(with(&|b| b[0] = b'X'), EnvelopeError::BadMagic);
        assert_eq!(
            Envelope::decode(b"VL").unwrap_err(),
            EnvelopeError::BadMagic
        );
        assert_eq!(
            with(&|b| b[4] = 2),
            EnvelopeError::UnsupportedVersion { found: 2 }
        );
        assert!(matches!(
            with(&|b| b.truncate(5)),
            EnvelopeError::Truncated { .. }
        ));
        assert_eq!(with(&|b| b[5] = 0), EnvelopeError::NoEntries);
        assert_eq!(
            with(&|b| b[5] = 17),
            EnvelopeError::TooManyEntries { declared: 17 }
        );
        assert_eq!(
            with(&|b| b[5] = 3),
            EnvelopeError::CountMismatch {
                declared: 3,
                found: 2
            }
        );
        assert_eq!(
            with(&|b| b.push(0)),
            EnvelopeError::TrailingBytes { count: 1 }
        );
        assert_eq!(with(&|b| b[6] = 0), EnvelopeError::InvalidKind { entry: 1 });
        assert_eq!(
            with(&|b| b[7..9].copy_from_slice(&[0x20, 0x01])),
            EnvelopeError::EntryTooLarge {
                entry: 1,
                len: 8193
            }
        );
        assert!(matches!(
            with(&|b| b[7..9].copy_from_slice(&[0x1f, 0xff])),
            EnvelopeError::EntryTruncated { entry: 1, .. }
        ));
        // The first entry's body starts at 9: tag at 14, keys at 18 and 83.
        assert_eq!(
            with(&|b| b[14] ^= 1),
            EnvelopeError::TagMismatch { entry: 1 }
        );
        assert_eq!(
            with(&|b| b[18] = 0x02),
            EnvelopeError::InvalidPoint {
                entry: 1,
                which: "slot public key"
            }
        );
        assert_eq!(
            with(&|b| b[83 + 64] ^= 1),
            EnvelopeError::InvalidPoint {
                entry: 1,
                which: "ephemeral key"
            }
        );
        // Shortening the body to the PIV fields plus a bare Poly1305 tag.
        let err = with(&|b| {
            b[7..9].copy_from_slice(&(139u16 + 16).to_be_bytes());
            b.drain(9 + 139 + 16..9 + first_len);
        });
        assert_eq!(
            err,
            EnvelopeError::EntryTruncated {
                entry: 1,
                field: "the ciphertext"
            }
        );
        // Entry 2 (FIDO2) starts after entry 1; its rp id length is at +3+68.
        let second = 9 + first_len;
        assert!(matches!(
            with(&|b| b[second + 3 + 68] = 0),
            EnvelopeError::InvalidField { entry: 2, .. }
        ));
        assert!(matches!(
            with(&|b| b[second + 3 + 69] = 0xff),
            EnvelopeError::InvalidField { entry: 2, .. }
        ));
        assert_eq!(
            with(&|b| b[second + 3] ^= 1),
            EnvelopeError::TagMismatch { entry: 2 }
        );
        for e in [
            EnvelopeError::BadMagic,
            EnvelopeError::UnsupportedVersion { found: 2 },
        ] {
            assert!(!e.to_string().is_empty() && !e.hint().is_empty());
        }
        assert!(EnvelopeError::UnsupportedVersion { found: 2 }
            .to_string()
            .contains("newer vault"));
    }

    #[test]
    fn every_truncation_fails_to_decode() {
        let good = vector_envelope().encode();
        for len in 0..good.len() {
            assert!(
                Envelope::decode(&good[..len]).is_err(),
                "prefix of {len} bytes decoded"
            );
        }
    }

    // With one token present, a flip in the entry it opens (or in the
    // envelope header) must fail; a flip elsewhere may leave that entry
    // intact, and then it must open to the same secret. Two bits of every
    // byte, one per nibble: all eight take 12 s in a debug build.
    #[test]
    fn bit_flips_never_open_to_another_secret() {
        let good = vector_envelope().encode();
        let first_end = 9 + usize::from(u16::from_be_bytes([good[7], good[8]]));
        let flipped_open = |token: &mut dyn Unwrapper, i: usize, bit: u8| {
            let mut b = good.clone();
            b[i] ^= 1 << bit;
            let secret = open(&Envelope::decode(&b).ok()?, CONTEXT, token).ok()?;
            assert_eq!(secret.expose(), SECRET, "flip of bit {bit} of byte {i}");
            Some(())
        };
        let mut piv_token = piv(12345678, 0x82, 0x11);
        let mut fido2_token = fido2(0x22);
        for i in 0..good.len() {
            for bit in [i % 8, (i + 4) % 8].map(|b| b as u8) {
                let piv_opened = flipped_open(&mut piv_token, i, bit).is_some();
                let fido2_opened = flipped_open(&mut fido2_token, i, bit).is_some();
                // From byte 6 (the first entry's kind: changed, that entry
                // is skipped as unknown) to `first_end`, the flip is in the
                // PIV entry and the FIDO2 entry may rightly open.
                assert!(!piv_opened || i >= first_end, "bit {bit} of byte {i}");
                assert!(
                    !fido2_opened || (6..first_end).contains(&i),
                    "bit {bit} of byte {i}"
                );
            }
        }
    }

    #[test]
    fn decode_survives_random_bytes() {
        let good = vector_envelope().encode();
        let mut rng = ChaCha20Rng::seed_from_u64(42);
        for round in 0..20_000 {
            let bytes = match round % 4 {
                0 => {
                    let mut b = vec![0; rng.gen_range(0..400)];
                    rng.fill_bytes(&mut b);
                    b
                }
                1 => {
                    let mut b = b"VLTE\x01".to_vec();
                    b.push(rng.gen_range(0..4));
                    let mut tail = vec![0; rng.gen_range(0..400)];
                    rng.fill_bytes(&mut tail);
                    b.extend(tail);
                    b
                }
                _ => {
                    let mut b = good.clone();
                    for _ in 0..rng.gen_range(1..4) {
                        let i = rng.gen_range(0..b.len());
                        match rng.gen_range(0..3) {
                            0 => b[i] = rng.gen(),
                            1 => {
                                b.remove(i);
                            }
                            _ => b.insert(i, rng.gen()),
                        }
                        if b.is_empty() {
                            break;
                        }
                    }
                    b
                }
            };
            if let Ok(envelope) = Envelope::decode(&bytes) {
                assert_eq!(envelope.encode(), bytes, "decode is not canonical");
            }
        }
    }

    #[test]
    fn sealing_refuses_what_could_never_open() {
        let one = [piv(1, 0x82, 1).recipient()];
        assert_eq!(
            seal(&secret(), &[], CONTEXT).unwrap_err(),
            SealError::NoRecipients
        );
        assert_eq!(
            seal(&SecretBytes::new(vec![]), &one, CONTEXT).unwrap_err(),
            SealError::EmptySecret
        );
        let big = SecretBytes::new(vec![1; MAX_SECRET_LEN + 1]);
        assert!(matches!(
            seal(&big, &one, CONTEXT),
            Err(SealError::SecretTooLarge { .. })
        ));
        let many: Vec<_> = (0..17).map(|i| piv(i, 0x82, 1).recipient()).collect();
        assert!(matches!(
            seal(&secret(), &many, CONTEXT),
            Err(SealError::TooManyRecipients { count: 17 })
        ));
        let twice = [one[0].clone(), one[0].clone()];
        assert!(matches!(
            seal(&secret(), &twice, CONTEXT),
            Err(SealError::DuplicateRecipient { .. })
        ));
        let mut bad = fido2(1).recipient([0; 32]);
        if let Recipient::Fido2 { credential_id, .. } = &mut bad {
            credential_id.clear();
        }
        assert!(matches!(
            seal(&secret(), &[bad], CONTEXT),
            Err(SealError::InvalidRecipient { recipient: 1, .. })
        ));
    }

    #[test]
    fn the_largest_entries_fit_the_entry_limit() {
        let token = SoftwareFido2 {
            rp_id: "r".repeat(255),
            credential_id: vec![1; MAX_CREDENTIAL_ID_LEN],
            cred_random: Zeroizing::new([1; 32]),
        };
        let big = SecretBytes::new(vec![1; MAX_SECRET_LEN]);
        let recipients = [token.recipient([0; 32]), piv(1, 0x82, 1).recipient()];
        let envelope = seal(&big, &recipients, CONTEXT).unwrap();
        let decoded = Envelope::decode(&envelope.encode()).unwrap();
        let mut token = token;
        assert_eq!(
            open(&decoded, CONTEXT, &mut token).unwrap().expose(),
            big.expose()
        );
    }

    #[test]
    fn debug_never_shows_key_material() {
        let token = fido2(0x5a);
        let recipient = token.recipient([0; 32]);
        let hmac = hex::encode(&token.hmac_secret(&[0; 32])[..]);
        for text in [
            format!("{recipient:?}"),
            format!("{token:?}"),
            format!("{:?}", piv(1, 0x82, 0x5a)),
        ] {
            assert!(!text.contains(&hmac) && !text.contains("5a5a5a"), "{text}");
        }
    }

    #[test]
    fn recipients_are_listed_for_status() {
        let token = piv(12345678, 0x82, 0x11);
        let ids = vector_envelope().recipients();
        assert_eq!(
            ids[0],
            RecipientId::Piv {
                serial: 12345678,
                slot: 0x82,
                tag: tag(&token.secret.public_key())
            }
        );
        assert_eq!(
            ids[1],
            RecipientId::Fido2 {
                rp_id: "vault".into(),
                tag: credential_tag(&[0x22; 48])
            }
        );
        assert!(ids[0]
            .to_string()
            .starts_with("YubiKey 12345678 slot 0x82 (key "));
    }
}
