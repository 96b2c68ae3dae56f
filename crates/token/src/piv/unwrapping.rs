//! The envelope's card side: each key opened once, its PIN asked at most once per run.

use super::{PinPolicy, PinStatus, PivError, PivToken, SlotInfo};
use crate::apdu::TokenError;
use std::collections::HashMap;
use std::time::Duration;
use vault_base::secret::Passphrase;
use zeroize::Zeroizing;

/// The envelope's card side for PIV entries. Each key is opened once and
/// kept for the life of the unwrapper, so its PIN is asked at most once
/// however many items are opened. Keys that are not plugged in are
/// "absent" (`Ok(None)`) and the envelope tries its next entry.
/// `(serial, refused PIN, tries left)`.
type WrongPinHook<'a> = dyn FnMut(u32, &Passphrase, u8) + 'a;

pub struct PivUnwrapper<'a> {
    ask_pin: Box<dyn FnMut(u32, u8) -> Result<Passphrase, String> + 'a>,
    /// Told of a PIN the card refused, and how many tries are left.
    wrong_pin: Box<WrongPinHook<'a>>,
    notify: Box<dyn Fn(&str) + 'a>,
    /// Shows the card's waits for a touch; by default one line through
    /// `notify`, until the caller says what the touch is for.
    touch: Box<dyn Fn(crate::TouchEvent) + 'a>,
    tokens: HashMap<u32, PivToken>,
    /// Slot keys and policies recorded at enrollment, by (serial, slot).
    recorded: HashMap<(u32, u8), SlotInfo>,
}

impl<'a> PivUnwrapper<'a> {
    /// `ask_pin(serial, tries_left)` is called when a key needs its PIN; `notify`
    /// shows messages such as "Insert YubiKey N…".
    pub fn new(
        ask_pin: impl FnMut(u32, u8) -> Result<Passphrase, String> + 'a,
        notify: impl Fn(&str) + 'a + Clone,
    ) -> PivUnwrapper<'a> {
        let plain = notify.clone();
        PivUnwrapper {
            ask_pin: Box::new(ask_pin),
            wrong_pin: Box::new(|_, _, _| {}),
            notify: Box::new(notify),
            touch: Box::new(move |e| {
                if let crate::TouchEvent::Waiting { serial, .. } = e {
                    plain(&format!("Touch your YubiKey {serial}…"));
                }
            }),
            tokens: HashMap::new(),
            recorded: HashMap::new(),
        }
    }

    /// `touch` shows each wait for a touch (with what it is for, which
    /// only the caller knows), instead of the plain line through `notify`.
    pub fn on_touch(mut self, touch: impl Fn(crate::TouchEvent) + 'a) -> Self {
        self.touch = Box::new(touch);
        self
    }

    /// `hook(serial, pin, tries_left)` learns of each PIN a card refused,
    /// so that no caller sends it again.
    pub fn on_wrong_pin(mut self, hook: impl FnMut(u32, &Passphrase, u8) + 'a) -> Self {
        self.wrong_pin = Box::new(hook);
        self
    }

    /// What enrollment recorded of `slot` on key `serial` (tokens.json).
    /// When an envelope entry names that same public key, the card is not
    /// asked for the slot's metadata (one APDU less on every cold unwrap).
    /// Should the slot have been regenerated since, the ECDH gives another
    /// secret and the envelope fails authentication; [`slot_mismatch`]
    /// then tells the two cases apart.
    pub fn with_recorded_slot(mut self, serial: u32, slot: u8, info: SlotInfo) -> Self {
        self.recorded.insert((serial, slot), info);
        self
    }

    /// The open session for `serial`, or `None` when no such key is
    /// plugged in.
    fn token(&mut self, serial: u32) -> Result<Option<&mut PivToken>, PivError> {
        if !self.tokens.contains_key(&serial) {
            match PivToken::open(serial, Duration::ZERO, &*self.notify) {
                Ok(t) => {
                    self.tokens.insert(serial, t);
                }
                // A key another program holds exclusively is there, but
                // cannot be used: that is an error to show, not an absence.
                Err(PivError::Token(TokenError::NotFound { busy, .. })) if busy.is_empty() => {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            }
        }
        Ok(self.tokens.get_mut(&serial))
    }

    /// ECDH of `ephemeral` with the key in `slot` of key `serial`, which
    /// must still be `public_key`: the shared x-coordinate, or `Ok(None)`
    /// when that key is not plugged in.
    pub fn ecdh(
        &mut self,
        serial: u32,
        slot: u8,
        public_key: &p256::PublicKey,
        ephemeral: &p256::PublicKey,
    ) -> Result<Option<Zeroizing<[u8; 32]>>, PivError> {
        // A session kept from an earlier item may be stale (the key was
        // pulled and put back, or reset by another program): start over
        // once, before anything is asked of the user.
        let cached = self.tokens.contains_key(&serial);
        let mut result = self.ecdh_once(serial, slot, public_key, ephemeral);
        if cached
            && matches!(
                result,
                Err(PivError::Removed { .. } | PivError::Reset { .. })
            )
        {
            self.tokens.remove(&serial);
            result = self.ecdh_once(serial, slot, public_key, ephemeral);
        }
        if matches!(
            result,
            Err(PivError::Removed { .. } | PivError::Reset { .. })
        ) {
            self.tokens.remove(&serial);
        }
        result
    }

    fn ecdh_once(
        &mut self,
        serial: u32,
        slot: u8,
        public_key: &p256::PublicKey,
        ephemeral: &p256::PublicKey,
    ) -> Result<Option<Zeroizing<[u8; 32]>>, PivError> {
        let recorded = self
            .recorded
            .get(&(serial, slot))
            .filter(|info| info.public_key == *public_key)
            .cloned();
        let Some(token) = self.token(serial)? else {
            return Ok(None);
        };
        if let Some(info) = recorded {
            token.assume_slot(slot, info);
        }
        // Asks the card (and so finds a stale session) before the user is
        // asked for anything.
        let status = token.pin_status()?;
        let info = token
            .read_slot(slot)?
            .ok_or(PivError::SlotEmpty { serial, slot })?;
        if info.public_key != *public_key {
            return Err(PivError::KeyMismatch { serial, slot });
        }
        if info.pin_policy != PinPolicy::Never {
            match status {
                PinStatus::Verified => {}
                PinStatus::Blocked => return Err(PivError::PinBlocked { serial }),
                PinStatus::NotVerified { tries_left } => {
                    let pin = (self.ask_pin)(serial, tries_left).map_err(PivError::PinEntry)?;
                    let Some(token) = self.tokens.get_mut(&serial) else {
                        return Ok(None);
                    };
                    if let Err(e) = token.verify_pin(&pin) {
                        if let PivError::WrongPin { tries_left } = e {
                            (self.wrong_pin)(serial, &pin, tries_left);
                        }
                        return Err(e);
                    }
                }
            }
        }
        let Some(token) = self.tokens.get_mut(&serial) else {
            return Ok(None);
        };
        token.ecdh(slot, ephemeral, &*self.touch).map(Some)
    }
}

/// Whether `slot` of YubiKey `serial` now holds another key than
/// `public_key`: asked of the card (GET METADATA) after an envelope failed
/// authentication, to say "the slot was regenerated" rather than "the file
/// is damaged". `None` when the key is not plugged in or cannot tell.
pub fn slot_mismatch(serial: u32, slot: u8, public_key: &p256::PublicKey) -> Option<PivError> {
    let mut token = PivToken::open(serial, Duration::ZERO, &|_| {}).ok()?;
    match token.read_slot(slot) {
        Ok(Some(info)) if info.public_key == *public_key => None,
        Ok(Some(_)) => Some(PivError::KeyMismatch { serial, slot }),
        Ok(None) => Some(PivError::SlotEmpty { serial, slot }),
        Err(_) => None,
    }
}
