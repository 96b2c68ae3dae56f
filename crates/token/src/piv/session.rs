//! One open PIV session and everything vault asks of it, from PIN checks to ECDH.

use super::certificate::{
    f9_certificate, open_ended_validity, p256_of, random_serial, spki_of, PolicyExtension,
};
use super::error::{is_service_down, pcsc_inner};
use super::opening::{card_gone, find_once, leave, listing_failed, log_out, Missing};
use super::{
    cert_from_object, check_attestation, parse_slot_certificate, AttestationReport, ManagementKey,
    Origin, PinPolicy, PinStatus, PivError, SlotCertificate, SlotInfo, TouchPolicy, TrustedRoots,
    RETIRED_SLOTS,
};
use crate::apdu::{KeyInfo, TokenError, Version};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use std::collections::HashMap;
use std::ffi::CString;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime};
use vault_base::secret::Passphrase;
use yubikey::piv::{self as ykpiv, AlgorithmId, ManagementAlgorithmId, ManagementSlotId, SlotId};
use yubikey::{MgmKey, YubiKey};
use zeroize::Zeroizing;

/// The factory PIN and PUK. Compared against what the user chooses, never
/// sent to a card to find out whether they are still set.
const DEFAULT_PIN: &str = "123456";
const DEFAULT_PUK: &str = "12345678";

/// How long a YubiKey keeps a "cached" touch.
const TOUCH_CACHE: Duration = Duration::from_secs(15);
/// How often to look again while waiting for a key to be inserted.
const POLL: Duration = Duration::from_millis(250);

/// Where the F9 attestation certificate lives (GET DATA `5FFF01`).
const OBJECT_F9_CERT: u32 = 0x005F_FF01;

/// A session with one YubiKey's PIV applet. Dropping it disconnects with
/// `LeaveCard` when the PIN was verified before it (by another program),
/// and resets the card when it verified the PIN itself, which logs the PIN
/// out.
pub struct PivToken {
    yk: Option<YubiKey>,
    serial: u32,
    reader: String,
    version: Version,
    /// Slot metadata read in this session; cleared for a slot we change.
    slots: HashMap<u8, Option<SlotInfo>>,
    /// When each slot's key last got a touch through us (for "cached").
    touched: HashMap<u8, Instant>,
    management_authenticated: bool,
    /// Whether this session verified the PIN (rather than finding it
    /// verified by another program): such a session logs it out at the end.
    pin_verified_here: bool,
}

impl fmt::Debug for PivToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PivToken")
            .field("serial", &self.serial)
            .field("reader", &self.reader)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Drop for PivToken {
    fn drop(&mut self) {
        if let Some(yk) = self.yk.take() {
            if self.pin_verified_here {
                log_out(yk);
            } else {
                leave(yk);
            }
        }
    }
}

impl PivToken {
    /// Opens the YubiKey with `serial`. If it is not plugged in, says so
    /// through `notify` ("Insert YubiKey 12345678…") and waits up to `wait`
    /// for it.
    pub fn open(serial: u32, wait: Duration, notify: &dyn Fn(&str)) -> Result<PivToken, PivError> {
        let start = Instant::now();
        let mut told = false;
        loop {
            let Missing { mut seen, busy } = match find_once(serial)? {
                Ok(yk) => return Ok(PivToken::new(yk)),
                Err(missing) => missing,
            };
            // Said as soon as the key is known to be missing, even when the
            // wait is about to run out: it tells the user what vault wants.
            if !told && !wait.is_zero() {
                notify(&format!("Insert YubiKey {serial}…"));
                told = true;
            }
            let waited = start.elapsed();
            if waited >= wait {
                seen.sort_unstable();
                seen.dedup();
                return Err(TokenError::NotFound {
                    serial,
                    waited: wait,
                    seen,
                    busy,
                }
                .into());
            }
            std::thread::sleep(POLL.min(wait - waited));
        }
    }

    fn new(yk: YubiKey) -> PivToken {
        let v = yk.version();
        PivToken {
            serial: u32::from(yk.serial()),
            reader: yk.name().to_string(),
            version: Version([v.major, v.minor, v.patch]),
            yk: Some(yk),
            slots: HashMap::new(),
            touched: HashMap::new(),
            management_authenticated: false,
            pin_verified_here: false,
        }
    }

    /// Every YubiKey with a PIV applet plugged in now. Each is asked only
    /// through PIV (SELECT, GET VERSION, GET SERIAL), which leaves its PIN
    /// state alone, and released without a reset.
    pub fn list() -> Result<Vec<KeyInfo>, PivError> {
        let mut ctx = match yubikey::Context::open() {
            Ok(ctx) => ctx,
            Err(e) => return listing_failed(&e).map_or(Ok(Vec::new()), Err),
        };
        let readers = match ctx.iter() {
            Ok(r) => r,
            Err(e) => return listing_failed(&e).map_or(Ok(Vec::new()), Err),
        };
        let mut keys = Vec::new();
        for reader in readers {
            if let Ok(yk) = reader.open() {
                let v = yk.version();
                keys.push(KeyInfo {
                    reader: yk.name().to_string(),
                    serial: Some(u32::from(yk.serial())),
                    version: Some(Version([v.major, v.minor, v.patch])),
                });
                leave(yk);
            }
        }
        Ok(keys)
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn reader(&self) -> &str {
        &self.reader
    }

    fn yk(&mut self) -> Result<&mut YubiKey, PivError> {
        let serial = self.serial;
        self.yk.as_mut().ok_or(PivError::Removed { serial })
    }

    /// Turns an unexpected crate error into one the user can act on. The
    /// reader is checked first: a key pulled out mid-command comes back as
    /// whatever error pcscd (or the crate) chose, and "removed" is what
    /// the user must hear.
    fn card_error(&self, op: &'static str, err: yubikey::Error) -> PivError {
        let serial = self.serial;
        match pcsc_inner(&err) {
            Some(p) if is_service_down(p) => TokenError::PcscUnavailable(p).into(),
            Some(pcsc::Error::ResetCard) => PivError::Reset { serial },
            Some(pcsc::Error::RemovedCard | pcsc::Error::NoSmartcard) => {
                PivError::Removed { serial }
            }
            // yubikey 0.8 turns a command that got no answer at all into
            // GenericError; either way, a missing card is what to report.
            _ if card_gone(&self.reader) => PivError::Removed { serial },
            Some(p) => TokenError::from_pcsc(p, op, Some(serial)).into(),
            None => PivError::Card { serial, op, err },
        }
    }

    // ----------------------------------------------------------------- PIN

    /// Whether the PIN is verified now, with the tries left if not: an
    /// empty VERIFY, which asks without spending a try. (The crate's
    /// `get_pin_retries` answers 0 while the PIN is verified.)
    pub fn pin_status(&mut self) -> Result<PinStatus, PivError> {
        match self.yk()?.verify_pin(&[]) {
            Ok(()) => Ok(PinStatus::Verified),
            Err(yubikey::Error::WrongPin { tries: 0 }) => Ok(PinStatus::Blocked),
            Err(yubikey::Error::WrongPin { tries }) => {
                Ok(PinStatus::NotVerified { tries_left: tries })
            }
            Err(e) => Err(self.card_error("report the PIN status", e)),
        }
    }

    /// VERIFY with `pin`, once. A PIN of the wrong length is refused before
    /// it reaches the card, where it would cost a try.
    pub fn verify_pin(&mut self, pin: &Passphrase) -> Result<(), PivError> {
        let bytes = pin.expose().as_bytes();
        if !(6..=8).contains(&bytes.len()) {
            return Err(PivError::PinFormat);
        }
        let serial = self.serial;
        match self.yk()?.verify_pin(bytes) {
            Ok(()) => {
                self.pin_verified_here = true;
                Ok(())
            }
            Err(yubikey::Error::WrongPin { tries: 0 }) => Err(PivError::PinBlocked { serial }),
            Err(yubikey::Error::WrongPin { tries }) => {
                Err(PivError::WrongPin { tries_left: tries })
            }
            Err(e) => Err(self.card_error("verify the PIN", e)),
        }
    }

    /// Verifies the PIN only when the card is not already verified; asks
    /// `get_pin` at most once and never retries. Returns whether it asked.
    pub fn ensure_pin<E: fmt::Display>(
        &mut self,
        get_pin: impl FnOnce() -> Result<Passphrase, E>,
    ) -> Result<bool, PivError> {
        match self.pin_status()? {
            PinStatus::Verified => Ok(false),
            PinStatus::Blocked => Err(PivError::PinBlocked {
                serial: self.serial,
            }),
            PinStatus::NotVerified { .. } => {
                let pin = get_pin().map_err(|e| PivError::PinEntry(e.to_string()))?;
                self.verify_pin(&pin)?;
                Ok(true)
            }
        }
    }

    /// The `default` flag of GET METADATA for PIN, PUK or management key;
    /// `None` when the firmware has no GET METADATA (before 5.3).
    fn default_flag(&mut self, slot: ManagementSlotId) -> Result<Option<bool>, PivError> {
        match ykpiv::metadata(self.yk()?, SlotId::Management(slot)) {
            Ok(md) => Ok(md.default),
            Err(yubikey::Error::NotSupported) => Ok(None),
            Err(e) => Err(self.card_error("read PIN, PUK or management key metadata", e)),
        }
    }

    /// Whether the PIN is still 123456. `None` when only a VERIFY could
    /// tell, which would spend a try: vault does not ask that way.
    pub fn is_default_pin(&mut self) -> Result<Option<bool>, PivError> {
        self.default_flag(ManagementSlotId::Pin)
    }

    /// Whether the PUK is still 12345678; `None` as for the PIN.
    pub fn is_default_puk(&mut self) -> Result<Option<bool>, PivError> {
        self.default_flag(ManagementSlotId::Puk)
    }

    /// Whether the management key is still the factory default. Without
    /// GET METADATA this authenticates with the default key, which has no
    /// retry counter to spend.
    pub fn is_default_mgm(&mut self) -> Result<bool, PivError> {
        match self.default_flag(ManagementSlotId::Management) {
            Ok(Some(d)) => return Ok(d),
            Ok(None) => {}
            // yubikey 0.8 parses only 3DES management-key metadata; an AES
            // key (5.7's default algorithm) is not the 3DES default.
            Err(PivError::Card {
                err: yubikey::Error::AlgorithmError | yubikey::Error::ParseError,
                ..
            }) => {
                return if self.can_delete_keys() {
                    self.authenticate_default_aes()
                } else {
                    Ok(false)
                }
            }
            Err(e) => return Err(e),
        }
        match self.yk()?.authenticate(MgmKey::default()) {
            Ok(()) => {
                self.management_authenticated = true;
                Ok(true)
            }
            Err(yubikey::Error::AuthenticationError) => Ok(false),
            Err(e) => Err(self.card_error("authenticate with the management key", e)),
        }
    }

    /// Changes the PIN. The new PIN must be 6–8 characters and not the
    /// default. A wrong current PIN costs a try, as the user asked for it.
    pub fn change_pin(&mut self, current: &Passphrase, new: &Passphrase) -> Result<(), PivError> {
        check_new_secret(current, new, DEFAULT_PIN, "PIN", PivError::PinFormat)?;
        let serial = self.serial;
        let yk = self.yk()?;
        match yk.change_pin(current.expose().as_bytes(), new.expose().as_bytes()) {
            Ok(()) => Ok(()),
            Err(yubikey::Error::WrongPin { tries: 0 } | yubikey::Error::PinLocked) => {
                Err(PivError::PinBlocked { serial })
            }
            Err(yubikey::Error::WrongPin { tries }) => {
                Err(PivError::WrongPin { tries_left: tries })
            }
            Err(e) => Err(self.card_error("change the PIN", e)),
        }
    }

    /// Changes the PUK, with the same rules as [`PivToken::change_pin`].
    pub fn change_puk(&mut self, current: &Passphrase, new: &Passphrase) -> Result<(), PivError> {
        check_new_secret(current, new, DEFAULT_PUK, "PUK", PivError::PukFormat)?;
        let serial = self.serial;
        let yk = self.yk()?;
        match yk.change_puk(current.expose().as_bytes(), new.expose().as_bytes()) {
            Ok(()) => Ok(()),
            Err(yubikey::Error::WrongPin { tries: 0 } | yubikey::Error::PinLocked) => {
                Err(PivError::PukBlocked { serial })
            }
            Err(yubikey::Error::WrongPin { tries }) => {
                Err(PivError::WrongPuk { tries_left: tries })
            }
            Err(e) => Err(self.card_error("change the PUK", e)),
        }
    }

    // ---------------------------------------------------------- management

    /// Authenticates with the management key: the PIN-protected one stored
    /// on the card when the PIN is verified and one is there, else the
    /// factory default. Enrollment needs this before it generates a key or
    /// writes a certificate.
    pub fn authenticate_management(&mut self) -> Result<ManagementKey, PivError> {
        let serial = self.serial;
        let verified = self.pin_status()? == PinStatus::Verified;
        if verified {
            // Reading the protected copy needs the PIN; an absent copy is
            // an error from the crate, after which the default is tried.
            if let Ok(key) = MgmKey::get_protected(self.yk()?) {
                return match self.yk()?.authenticate(key) {
                    Ok(()) => {
                        self.management_authenticated = true;
                        Ok(ManagementKey::Protected)
                    }
                    Err(yubikey::Error::AuthenticationError) => {
                        Err(PivError::ManagementKeyUnknown { serial })
                    }
                    Err(e) => Err(self.card_error("authenticate with the management key", e)),
                };
            }
        }
        match self.yk()?.authenticate(MgmKey::default()) {
            Ok(()) => {
                self.management_authenticated = true;
                Ok(ManagementKey::Default)
            }
            // Firmware 5.7's factory key is AES-192 (same bytes).
            Err(yubikey::Error::AuthenticationError | yubikey::Error::AlgorithmError)
                if self.can_delete_keys() && self.authenticate_default_aes()? =>
            {
                Ok(ManagementKey::Default)
            }
            // Possibly a protected key we could read after the PIN.
            Err(yubikey::Error::AuthenticationError) if !verified => {
                Err(PivError::PinRequired { serial })
            }
            Err(yubikey::Error::AuthenticationError) => {
                Err(PivError::ManagementKeyUnknown { serial })
            }
            Err(e) => Err(self.card_error("authenticate with the management key", e)),
        }
    }

    fn ensure_management(&mut self) -> Result<(), PivError> {
        if !self.management_authenticated {
            self.authenticate_management()?;
        }
        Ok(())
    }

    /// Replaces the management key with a random 3DES key stored on the
    /// card behind the PIN (PIV "protected data", as yubikey-agent and
    /// ykman `--protect` do): nobody has to keep it, and changing keys
    /// needs the PIN. Needs the PIN verified.
    pub fn set_protected_management_key(&mut self) -> Result<(), PivError> {
        let serial = self.serial;
        if self.pin_status()? != PinStatus::Verified {
            return Err(PivError::PinRequired { serial });
        }
        let used = self.authenticate_management()?;
        let previous = match used {
            ManagementKey::Protected => MgmKey::get_protected(self.yk()?)
                .map_err(|e| self.card_error("read the protected management key", e))?,
            ManagementKey::Default => MgmKey::default(),
        };
        let new = MgmKey::generate();
        if let Err(e) = new.set_protected(self.yk()?) {
            // The crate sets the key before it stores the protected copy:
            // if only the second step failed, the card now holds a key
            // nobody knows. Put the previous one back while this session
            // is still authenticated.
            let restored = match used {
                ManagementKey::Protected => previous.set_protected(self.yk()?),
                ManagementKey::Default => previous.set_manual(self.yk()?, false),
            };
            if let Err(r) = restored {
                log::debug!(target: "vault", "restoring the management key: {r}");
            }
            return Err(self.card_error("store a PIN-protected management key", e));
        }
        // Prove the stored copy opens management before calling it done.
        let stored = MgmKey::get_protected(self.yk()?)
            .map_err(|e| self.card_error("read the protected management key", e))?;
        self.yk()?
            .authenticate(stored)
            .map_err(|e| self.card_error("authenticate with the new management key", e))?;
        self.management_authenticated = true;
        Ok(())
    }

    // --------------------------------------------------------------- slots

    /// Whether `slot` holds a key, by GET METADATA. `None` when the
    /// firmware cannot say (before 5.3).
    fn has_key(&mut self, slot: u8) -> Result<Option<bool>, PivError> {
        let id = key_slot(slot)?;
        match ykpiv::metadata(self.yk()?, id) {
            Ok(_) => Ok(Some(true)),
            // yubikey 0.8 folds every status but 6D00 into GenericError.
            // GET METADATA of a key slot needs no authentication, so the
            // only one a card gives for a valid slot is 6A88, "no key".
            // Transport failures come back as PcscError and are raised.
            Err(yubikey::Error::GenericError) => Ok(Some(false)),
            Err(yubikey::Error::NotSupported) => Ok(None),
            Err(e) => Err(self.card_error("read slot metadata", e)),
        }
    }

    /// The raw certificate object of `slot`, or `None` when there is none.
    fn cert_der(&mut self, slot: u8) -> Result<Option<Vec<u8>>, PivError> {
        let object = cert_object(slot).ok_or(PivError::NotAKeySlot { slot })?;
        let data = match self.yk()?.fetch_object(object) {
            Ok(d) => d,
            Err(yubikey::Error::NotFound) => return Ok(None),
            Err(e) => return Err(self.card_error("read a certificate", e)),
        };
        Ok(cert_from_object(&data)?)
    }

    /// One APDU on a second, shared connection to this key's reader: the
    /// yubikey crate has no public APDU layer, nor DELETE KEY or AES
    /// management keys. What those need (the management key authenticated)
    /// is the card's state, not the connection's. The answer with its
    /// status.
    fn raw_apdu(&self, apdu: &[u8]) -> Result<Vec<u8>, String> {
        self.raw_exchange(|send| send(apdu))
    }

    /// Runs `exchange` on a connection of its own, inside one PC/SC
    /// transaction, with PIV selected first. Another program (ykman, or a
    /// vault process looking for its key on every reader) may select
    /// another applet between two commands outside a transaction, which
    /// drops a half-done mutual authentication and PIV's security status;
    /// CI saw AES authentication fail so. Re-selecting PIV keeps the PIN
    /// and management-key status (SP 800-73-4 3.1.1).
    fn raw_exchange<T>(
        &self,
        exchange: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<Vec<u8>, String>) -> Result<T, String>,
    ) -> Result<T, String> {
        let ctx = pcsc::Context::establish(pcsc::Scope::User).map_err(|e| e.to_string())?;
        let reader = CString::new(self.reader.as_str()).map_err(|e| e.to_string())?;
        let mut card = ctx
            .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .map_err(|e| e.to_string())?;
        let result = {
            let tx = card.transaction().map_err(|e| e.to_string())?;
            let mut send = |apdu: &[u8]| -> Result<Vec<u8>, String> {
                let mut buf = [0u8; 258];
                tx.transmit(apdu, &mut buf)
                    .map(<[u8]>::to_vec)
                    .map_err(|e| e.to_string())
            };
            let aid = crate::apdu::PIV_AID;
            let mut select = vec![0x00, 0xA4, 0x04, 0x00, aid.len() as u8];
            select.extend_from_slice(aid);
            let selected = send(&select)?;
            if selected.ends_with(&[0x90, 0x00]) {
                exchange(&mut send)
            } else {
                Err(format!("SELECT PIV answered {}", hex::encode(&selected)))
            }
        };
        let _ = card.disconnect(pcsc::Disposition::LeaveCard);
        result
    }

    /// Mutual authentication with the AES-192 factory management key of
    /// firmware 5.7 (yubikit's `authenticate`: GENERAL AUTHENTICATE, algorithm
    /// 0x0A, key 9B; the card's witness decrypted, a challenge of ours
    /// encrypted by the card). `Ok(false)` when the key is not the default.
    fn authenticate_default_aes(&mut self) -> Result<bool, PivError> {
        use aes::cipher::{generic_array::GenericArray, BlockDecrypt, BlockEncrypt, KeyInit};
        use rand::RngCore;
        let serial = self.serial;
        let failed = |what: String| {
            log::debug!(target: "vault", "AES management key authentication: {what}");
            PivError::Card {
                serial,
                op: "authenticate with the management key",
                err: yubikey::Error::GenericError,
            }
        };
        let key = [
            1u8, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        let aes = aes::Aes192::new_from_slice(&key).map_err(|e| failed(e.to_string()))?;
        // Both steps in one transaction: the card forgets its witness as
        // soon as any other command reaches it.
        let ok = self
            .raw_exchange(|send| {
                let answer = send(&[0x00, 0x87, 0x0A, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00])?;
                // 7C 12 80 10 <witness> 90 00
                if answer.len() != 22
                    || answer[..4] != [0x7C, 0x12, 0x80, 0x10]
                    || answer[20..] != [0x90, 0x00]
                {
                    return Ok(false);
                }
                let mut witness = GenericArray::clone_from_slice(&answer[4..20]);
                aes.decrypt_block(&mut witness);
                let mut challenge = [0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut challenge);
                let mut apdu = vec![0x00, 0x87, 0x0A, 0x9B, 0x26, 0x7C, 0x24, 0x80, 0x10];
                apdu.extend_from_slice(&witness);
                apdu.extend_from_slice(&[0x81, 0x10]);
                apdu.extend_from_slice(&challenge);
                let answer = send(&apdu)?;
                let mut expected = GenericArray::clone_from_slice(&challenge);
                aes.encrypt_block(&mut expected);
                Ok(answer.len() == 22
                    && answer[..4] == [0x7C, 0x12, 0x82, 0x10]
                    && answer[4..20] == expected[..]
                    && answer[20..] == [0x90, 0x00])
            })
            .map_err(failed)?;
        if ok {
            self.management_authenticated = true;
        }
        Ok(ok)
    }

    /// Whether this firmware has PIV DELETE KEY and MOVE KEY (5.7.0 on).
    pub fn can_delete_keys(&self) -> bool {
        self.version() >= Version([5, 7, 0])
    }

    /// Deletes the key in `slot` and its certificate: DELETE KEY, which
    /// firmware 5.7 added (yubikit's `delete_key`: INS F6, P1 FF, P2 the
    /// slot; needs the management key). `Ok(false)` on older firmware,
    /// which cannot delete a key (only generate over it).
    pub fn delete_key(&mut self, slot: u8) -> Result<bool, PivError> {
        if !self.can_delete_keys() {
            return Ok(false);
        }
        let serial = self.serial;
        let id = key_slot(slot)?;
        self.ensure_management()?;
        match yubikey::certificate::Certificate::delete(self.yk()?, id) {
            Ok(()) | Err(yubikey::Error::NotFound) => {}
            Err(e) => return Err(self.card_error("delete a certificate", e)),
        }
        let answer = self.raw_apdu(&[0x00, 0xF6, 0xFF, slot]).map_err(|what| {
            log::debug!(target: "vault", "DELETE KEY of slot {slot:02x}: {what}");
            PivError::Card {
                serial,
                op: "delete a key",
                err: yubikey::Error::GenericError,
            }
        })?;
        if answer != [0x90, 0x00] {
            return Err(PivError::Card {
                serial,
                op: "delete a key",
                err: yubikey::Error::GenericError,
            });
        }
        Ok(true)
    }

    /// The first retired slot (0x82–0x95) with neither a key nor a
    /// certificate: a certificate without a key still means some program
    /// uses the slot.
    pub fn free_retired_slot(&mut self) -> Result<u8, PivError> {
        for slot in RETIRED_SLOTS {
            if self.has_key(slot)? == Some(true) {
                continue;
            }
            if self.cert_der(slot)?.is_none() {
                return Ok(slot);
            }
        }
        Err(PivError::NoFreeSlot {
            serial: self.serial,
        })
    }

    /// Generates a P-256 key on the card in `slot`, which must be empty:
    /// vault never replaces a key. Authenticates with the management key
    /// first if this session has not.
    pub fn generate(
        &mut self,
        slot: u8,
        pin_policy: PinPolicy,
        touch_policy: TouchPolicy,
    ) -> Result<p256::PublicKey, PivError> {
        if !self.slot_is_free(slot)? {
            return Err(PivError::SlotInUse {
                serial: self.serial,
                slot,
            });
        }
        self.generate_in(slot, pin_policy, touch_policy)
    }

    /// Whether `slot` holds neither a key nor a certificate.
    pub fn slot_is_free(&mut self, slot: u8) -> Result<bool, PivError> {
        key_slot(slot)?;
        let occupied = match self.has_key(slot)? {
            Some(k) => k,
            None => self.cert_der(slot)?.is_some(),
        };
        Ok(!occupied)
    }

    /// Generates over the key in `slot`, which must still be `old`: the key
    /// an enrollment generated and then did not put into service (its
    /// attestation was refused). Any other key is never replaced.
    pub fn generate_replacing(
        &mut self,
        slot: u8,
        old: &p256::PublicKey,
        pin_policy: PinPolicy,
        touch_policy: TouchPolicy,
    ) -> Result<p256::PublicKey, PivError> {
        match self.read_slot(slot)? {
            Some(info) if info.public_key == *old => {}
            _ => {
                return Err(PivError::SlotInUse {
                    serial: self.serial,
                    slot,
                })
            }
        }
        self.generate_in(slot, pin_policy, touch_policy)
    }

    fn generate_in(
        &mut self,
        slot: u8,
        pin_policy: PinPolicy,
        touch_policy: TouchPolicy,
    ) -> Result<p256::PublicKey, PivError> {
        let serial = self.serial;
        let id = key_slot(slot)?;
        self.ensure_management()?;
        self.slots.remove(&slot);
        let spki = ykpiv::generate(
            self.yk()?,
            id,
            AlgorithmId::EccP256,
            pin_policy.to_yk(),
            touch_policy.to_yk(),
        )
        .map_err(|e| self.card_error("generate a key", e))?;
        p256_of(&spki).ok_or(PivError::NotP256 { serial, slot })
    }

    /// Writes a self-signed certificate for the key in `slot`, recording
    /// its policies the way age-plugin-yubikey does: in Yubico's policy
    /// extension (1.3.6.1.4.1.41482.3.8) and, readable by people, in the
    /// subject ("vault P-256 slot 82 pin=once touch=always"). The card
    /// signs it, so this needs the PIN (verified) and, with a touch policy,
    /// a touch: `notify` asks for it.
    pub fn write_certificate(
        &mut self,
        slot: u8,
        public_key: &p256::PublicKey,
        pin_policy: PinPolicy,
        touch_policy: TouchPolicy,
        notify: &dyn Fn(&str),
    ) -> Result<(), PivError> {
        let serial = self.serial;
        let id = key_slot(slot)?;
        self.ensure_management()?;
        let spki = spki_of(public_key).map_err(|reason| {
            log::debug!(target: "vault", "encoding a P-256 key: {reason}");
            PivError::Card {
                serial,
                op: "encode the public key",
                err: yubikey::Error::ParseError,
            }
        })?;
        let subject = x509_cert::name::Name::from_str(&format!(
            "CN=vault P-256 slot {slot:02x} pin={pin_policy} touch={touch_policy},O=vault"
        ))
        .map_err(|_| PivError::Card {
            serial,
            op: "build the certificate subject",
            err: yubikey::Error::ParseError,
        })?;
        let validity = open_ended_validity().map_err(|_| PivError::Card {
            serial,
            op: "build the certificate validity",
            err: yubikey::Error::ParseError,
        })?;
        let cert_serial = random_serial().map_err(|_| PivError::Card {
            serial,
            op: "build the certificate serial",
            err: yubikey::Error::ParseError,
        })?;
        let policy = PolicyExtension([pin_policy.code(), touch_policy.code()]);
        if touch_policy != TouchPolicy::Never {
            notify(&format!(
                "Touch your YubiKey {serial} to sign the new key's certificate"
            ));
        }
        let written = yubikey::certificate::Certificate::generate_self_signed::<_, p256::NistP256>(
            self.yk()?,
            id,
            cert_serial,
            validity,
            subject,
            spki,
            |builder| {
                builder
                    .add_extension(&policy)
                    .map_err(|_| der::Error::from(der::ErrorKind::Failed))
            },
        );
        match written {
            Ok(_) => {
                self.touched.insert(slot, Instant::now());
                Ok(())
            }
            // The crate reports a signature the card refused (no PIN, no
            // touch in time) as a key error.
            Err(yubikey::Error::KeyError) => match self.pin_status()? {
                PinStatus::Verified if touch_policy != TouchPolicy::Never => {
                    Err(PivError::TouchTimeout { serial })
                }
                PinStatus::Verified => Err(PivError::Card {
                    serial,
                    op: "sign the slot certificate",
                    err: yubikey::Error::KeyError,
                }),
                _ => Err(PivError::PinRequired { serial }),
            },
            Err(e) => Err(self.card_error("write the slot certificate", e)),
        }
    }

    /// The certificate in `slot`, parsed; `None` when there is none.
    pub fn certificate(&mut self, slot: u8) -> Result<Option<SlotCertificate>, PivError> {
        let serial = self.serial;
        let Some(der) = self.cert_der(slot)? else {
            return Ok(None);
        };
        parse_slot_certificate(serial, slot, der).map(Some)
    }

    /// Takes `info` as what `slot` holds for the rest of this session,
    /// unless the card was already asked: [`PivToken::read_slot`] answers
    /// from it without GET METADATA.
    pub fn assume_slot(&mut self, slot: u8, info: SlotInfo) {
        self.slots.entry(slot).or_insert(Some(info));
    }

    /// The key in `slot` with its policies and origin (GET METADATA, once
    /// per session); `None` when the slot is empty. Firmware without GET
    /// METADATA is answered from the certificate vault wrote.
    pub fn read_slot(&mut self, slot: u8) -> Result<Option<SlotInfo>, PivError> {
        if let Some(info) = self.slots.get(&slot) {
            return Ok(info.clone());
        }
        let serial = self.serial;
        let id = key_slot(slot)?;
        let info = match ykpiv::metadata(self.yk()?, id) {
            Ok(md) => {
                if md.algorithm != ManagementAlgorithmId::Asymmetric(AlgorithmId::EccP256) {
                    return Err(PivError::NotP256 { serial, slot });
                }
                let public_key = md
                    .public
                    .as_ref()
                    .and_then(p256_of)
                    .ok_or(PivError::NotP256 { serial, slot })?;
                let (pin, touch) = md.policy.ok_or(PivError::Card {
                    serial,
                    op: "report the slot's policies",
                    err: yubikey::Error::ParseError,
                })?;
                Some(SlotInfo {
                    public_key,
                    // A slot reports its effective policy, never "default".
                    pin_policy: PinPolicy::from_yk(pin).unwrap_or(PinPolicy::Once),
                    touch_policy: TouchPolicy::from_yk(touch).unwrap_or(TouchPolicy::Never),
                    origin: md.origin.map(|o| match o {
                        ykpiv::Origin::Generated => Origin::Generated,
                        ykpiv::Origin::Imported => Origin::Imported,
                    }),
                })
            }
            // See `has_key`: 6A88, no key in the slot.
            Err(yubikey::Error::GenericError) => None,
            Err(yubikey::Error::NotSupported) => self.certificate(slot)?.map(|c| SlotInfo {
                public_key: c.public_key,
                // Unknown policies are assumed the strictest, so vault
                // asks for the PIN and tells the user to touch.
                pin_policy: c.pin_policy.unwrap_or(PinPolicy::Once),
                touch_policy: c.touch_policy.unwrap_or(TouchPolicy::Always),
                origin: None,
            }),
            Err(e) => return Err(self.card_error("read slot metadata", e)),
        };
        self.slots.insert(slot, info.clone());
        Ok(info)
    }

    // ---------------------------------------------------------- attestation

    /// Verifies `slot`'s attestation against Yubico's root and the roots
    /// in `VAULT_ATTESTATION_ROOTS`.
    pub fn attest(&mut self, slot: u8) -> Result<AttestationReport, PivError> {
        let roots = TrustedRoots::from_env()?;
        self.attest_with(slot, &roots)
    }

    /// Verifies that the key in `slot` was generated on this card: the
    /// card's ATTEST certificate must be signed by its F9 attestation key,
    /// whose certificate must be signed by one of `roots`; the attested key
    /// must be the slot's key and the attested serial this card's.
    pub fn attest_with(
        &mut self,
        slot: u8,
        roots: &TrustedRoots,
    ) -> Result<AttestationReport, PivError> {
        let serial = self.serial;
        let id = key_slot(slot)?;
        let fail = |reason: String| PivError::Attestation {
            serial,
            slot,
            reason,
        };
        let info = self
            .read_slot(slot)?
            .ok_or(PivError::SlotEmpty { serial, slot })?;
        let leaf_der = match ykpiv::attest(self.yk()?, id) {
            Ok(d) => d,
            Err(yubikey::Error::NotSupported) => {
                return Err(fail(
                    "this YubiKey cannot attest keys (firmware before 4.3)".into(),
                ))
            }
            // An imported key cannot be attested: the card did not make it.
            Err(yubikey::Error::GenericError) if !card_gone(&self.reader) => {
                return Err(fail(
                    "the card refused to attest this slot (imported key?)".into(),
                ))
            }
            Err(e) => return Err(self.card_error("attest a slot", e)),
        };
        let f9_object = match self.yk()?.fetch_object(OBJECT_F9_CERT) {
            Ok(d) => d,
            Err(yubikey::Error::NotFound) => {
                return Err(fail("the card has no attestation certificate (F9)".into()))
            }
            Err(e) => return Err(self.card_error("read the attestation certificate", e)),
        };
        check_attestation(serial, slot, &info.public_key, &leaf_der, &f9_object, roots)
    }

    /// The trusted root the card's attestation key (its F9 certificate)
    /// chains to: asked before enrollment changes anything, so a key whose
    /// attestation cannot be verified is not generated at all.
    pub fn attestation_root(&mut self, roots: &TrustedRoots) -> Result<String, PivError> {
        let serial = self.serial;
        let fail = |reason: String| PivError::Attestation {
            serial,
            slot: 0xF9,
            reason,
        };
        let f9_object = match self.yk()?.fetch_object(OBJECT_F9_CERT) {
            Ok(d) => d,
            Err(yubikey::Error::NotFound) => {
                return Err(fail("the card has no attestation certificate (F9)".into()))
            }
            Err(e) => return Err(self.card_error("read the attestation certificate", e)),
        };
        let f9 = f9_certificate(&f9_object).map_err(fail)?;
        roots
            .path_from(&f9, SystemTime::now())
            .map(|p| p.root().to_string())
            .map_err(|e| {
                fail(format!(
                    "the card's attestation key is not certified by a trusted root: {e}"
                ))
            })
    }

    // ------------------------------------------------------------------ use

    /// ECDH of `ephemeral` with the key in `slot`: the x-coordinate of the
    /// shared point. The PIN must already be verified when the slot's
    /// policy asks for it ([`PivToken::ensure_pin`]); `touch` learns when
    /// the card starts waiting for a touch and when that wait ends, so the
    /// user sees a countdown and a confirmation. Reads and changes nothing
    /// else on the card.
    pub fn ecdh(
        &mut self,
        slot: u8,
        ephemeral: &p256::PublicKey,
        touch: &dyn Fn(crate::TouchEvent),
    ) -> Result<Zeroizing<[u8; 32]>, PivError> {
        let serial = self.serial;
        let id = key_slot(slot)?;
        let info = self
            .read_slot(slot)?
            .ok_or(PivError::SlotEmpty { serial, slot })?;
        let needs_touch = match info.touch_policy {
            TouchPolicy::Never => false,
            TouchPolicy::Always => true,
            TouchPolicy::Cached => self
                .touched
                .get(&slot)
                .is_none_or(|t| t.elapsed() >= TOUCH_CACHE),
        };
        if needs_touch {
            touch(crate::TouchEvent::Waiting {
                serial,
                timeout: crate::TOUCH_TIMEOUT,
            });
        }
        let point = ephemeral.to_encoded_point(false);
        let answer = ykpiv::decrypt_data(self.yk()?, point.as_bytes(), AlgorithmId::EccP256, id);
        if needs_touch {
            touch(crate::TouchEvent::Done {
                serial,
                touched: answer.is_ok(),
            });
        }
        match answer {
            Ok(shared) => {
                if info.touch_policy != TouchPolicy::Never {
                    self.touched.insert(slot, Instant::now());
                }
                let bytes: [u8; 32] = shared.as_slice().try_into().map_err(|_| PivError::Card {
                    serial,
                    op: "compute ECDH",
                    err: yubikey::Error::SizeError,
                })?;
                Ok(Zeroizing::new(bytes))
            }
            // 6982: the PIN is missing, or, with the PIN verified, the
            // touch did not come before the card gave up.
            Err(yubikey::Error::AuthenticationError) => {
                let pin_ok = info.pin_policy == PinPolicy::Never
                    || self.pin_status()? == PinStatus::Verified;
                if pin_ok && info.touch_policy != TouchPolicy::Never {
                    Err(PivError::TouchTimeout { serial })
                } else if pin_ok {
                    Err(PivError::Card {
                        serial,
                        op: "compute ECDH",
                        err: yubikey::Error::AuthenticationError,
                    })
                } else {
                    Err(PivError::PinRequired { serial })
                }
            }
            Err(e) => Err(self.card_error("compute ECDH", e)),
        }
    }
}

fn check_new_secret(
    current: &Passphrase,
    new: &Passphrase,
    default: &str,
    what: &'static str,
    format_error: PivError,
) -> Result<(), PivError> {
    let ok_len = |p: &Passphrase| (6..=8).contains(&p.expose().len());
    if !ok_len(current) || !ok_len(new) {
        return Err(format_error);
    }
    if *new == Passphrase::new(default) {
        return Err(PivError::DefaultRefused { what });
    }
    Ok(())
}

fn key_slot(slot: u8) -> Result<SlotId, PivError> {
    match SlotId::try_from(slot) {
        Ok(
            id @ (SlotId::Authentication
            | SlotId::Signature
            | SlotId::KeyManagement
            | SlotId::CardAuthentication
            | SlotId::Retired(_)),
        ) => Ok(id),
        _ => Err(PivError::NotAKeySlot { slot }),
    }
}

/// The data object holding a key slot's certificate.
fn cert_object(slot: u8) -> Option<u32> {
    Some(match slot {
        0x9A => 0x005F_C105,
        0x9C => 0x005F_C10A,
        0x9D => 0x005F_C10B,
        0x9E => 0x005F_C101,
        s if RETIRED_SLOTS.contains(&s) => 0x005F_C10D + u32::from(s - 0x82),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_rules_are_checked_before_the_card_sees_anything() {
        let p = Passphrase::new;
        assert!(matches!(
            check_new_secret(
                &p("123456"),
                &p("12345"),
                DEFAULT_PIN,
                "PIN",
                PivError::PinFormat
            ),
            Err(PivError::PinFormat)
        ));
        assert!(matches!(
            check_new_secret(
                &p("123456"),
                &p("123456789"),
                DEFAULT_PIN,
                "PIN",
                PivError::PinFormat
            ),
            Err(PivError::PinFormat)
        ));
        assert!(matches!(
            check_new_secret(
                &p("654321"),
                &p("123456"),
                DEFAULT_PIN,
                "PIN",
                PivError::PinFormat
            ),
            Err(PivError::DefaultRefused { what: "PIN" })
        ));
        assert!(check_new_secret(
            &p("123456"),
            &p("s3cr3t!"),
            DEFAULT_PIN,
            "PIN",
            PivError::PinFormat
        )
        .is_ok());
    }

    #[test]
    fn slots_map_to_their_certificate_objects() {
        assert_eq!(cert_object(0x82), Some(0x005F_C10D));
        assert_eq!(cert_object(0x95), Some(0x005F_C120));
        assert_eq!(cert_object(0x9A), Some(0x005F_C105));
        assert_eq!(cert_object(0x80), None);
        assert!(key_slot(0x9B).is_err());
        assert!(key_slot(0xF9).is_err());
        assert!(key_slot(0x96).is_err());
        assert!(key_slot(0x87).is_ok());
    }
}
