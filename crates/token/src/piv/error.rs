//! PIV failures in words for the user, each with the fix, and how crate errors map to them.

use super::{ATTESTATION_INTERMEDIATES_VAR, ATTESTATION_ROOTS_VAR};
use crate::apdu::TokenError;

/// What went wrong with a PIV operation. Messages never carry a PIN, PUK,
/// management key or key material; [`PivError::hint`] says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PivError {
    /// pcscd unavailable, key not found, key held by another program.
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("wrong PIN, {} left", tries(*.tries_left))]
    WrongPin { tries_left: u8 },
    #[error("the PIN of YubiKey {serial} is blocked")]
    PinBlocked { serial: u32 },
    #[error("YubiKey {serial} needs its PIN first")]
    PinRequired { serial: u32 },
    #[error("a PIN is 6 to 8 characters")]
    PinFormat,
    #[error("wrong PUK, {} left", tries(*.tries_left))]
    WrongPuk { tries_left: u8 },
    #[error("the PUK of YubiKey {serial} is blocked")]
    PukBlocked { serial: u32 },
    #[error("a PUK is 6 to 8 characters")]
    PukFormat,
    #[error("the new {what} is the factory default")]
    DefaultRefused { what: &'static str },
    #[error("cannot ask for the PIN: {0}")]
    PinEntry(String),
    #[error("YubiKey {serial}'s PIV management key is neither PIN-protected nor the default")]
    ManagementKeyUnknown { serial: u32 },
    #[error("no touch within 15 s; touch the YubiKey when it blinks, then try again")]
    TouchTimeout { serial: u32 },
    #[error("YubiKey {serial} was removed; insert it and try again")]
    Removed { serial: u32 },
    #[error("YubiKey {serial} was reset by another program; try again")]
    Reset { serial: u32 },
    #[error("slot {slot:02x} of YubiKey {serial} already holds a key")]
    SlotInUse { serial: u32, slot: u8 },
    #[error("slot {slot:02x} of YubiKey {serial} holds no key")]
    SlotEmpty { serial: u32, slot: u8 },
    #[error("{slot:02x} is not a PIV key slot")]
    NotAKeySlot { slot: u8 },
    #[error("slot {slot:02x} of YubiKey {serial} does not hold a P-256 key")]
    NotP256 { serial: u32, slot: u8 },
    #[error("slot {slot:02x} of YubiKey {serial} holds a different key than the one this item is sealed to")]
    KeyMismatch { serial: u32, slot: u8 },
    #[error("all 20 retired PIV slots of YubiKey {serial} hold keys")]
    NoFreeSlot { serial: u32 },
    #[error("the attestation of slot {slot:02x} of YubiKey {serial} does not verify: {reason}")]
    Attestation {
        serial: u32,
        slot: u8,
        reason: String,
    },
    #[error("cannot read attestation roots from {path}: {reason}")]
    AttestationRoots { path: String, reason: String },
    #[error("YubiKey {serial} refused to {op}: {err}")]
    Card {
        serial: u32,
        op: &'static str,
        err: yubikey::Error,
    },
}

/// "1 try", "N tries".
pub fn tries(n: u8) -> String {
    match n {
        1 => "1 try".to_string(),
        n => format!("{n} tries"),
    }
}

impl vault_base::error::Hinted for PivError {
    fn hint(&self) -> Option<String> {
        PivError::hint(self)
    }
}

impl PivError {
    /// What to do next, for the user.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            PivError::Token(e) => return e.hint(),
            PivError::WrongPin { tries_left } => format!(
                "vault never retries a PIN: check it and run the command again \
                 ({} before the PIN is blocked)",
                tries(*tries_left)
            ),
            PivError::PinBlocked { .. } => {
                "unblock it with the PUK: `ykman piv access unblock-pin`".to_string()
            }
            PivError::PinRequired { .. } => "enter the PIV PIN when asked".to_string(),
            PivError::PinFormat | PivError::PukFormat => {
                "use 6 to 8 letters, digits or symbols".to_string()
            }
            PivError::WrongPuk { .. } => "check the PUK and try again".to_string(),
            PivError::PukBlocked { .. } => "with both PIN and PUK blocked, only \
                 `ykman piv reset` (which erases every PIV key) makes the applet usable again"
                .to_string(),
            PivError::DefaultRefused { .. } => {
                "choose a value of your own: anyone who holds the key knows the default".to_string()
            }
            PivError::ManagementKeyUnknown { .. } => "make it PIN-protected with \
                 `ykman piv access change-management-key --protect`, then try again"
                .to_string(),
            PivError::TouchTimeout { .. } => {
                "nothing was changed; run the command again and touch the key's contact".to_string()
            }
            PivError::Removed { .. } | PivError::Reset { .. } => {
                "nothing was changed on the key".to_string()
            }
            PivError::SlotInUse { .. } => {
                "vault never overwrites a key: pick an empty slot".to_string()
            }
            PivError::KeyMismatch { .. } => "the slot was regenerated since this item was \
                 stored; unwrap it with a backup key, or add the AWS key again"
                .to_string(),
            PivError::NoFreeSlot { .. } => {
                "free a slot with `ykman piv keys delete SLOT` (its key is lost)".to_string()
            }
            PivError::Attestation { .. } => format!(
                "a key made by a YubiKey chains to one of Yubico's roots through Yubico's \
                 intermediates (both built in); other roots are trusted only when listed in \
                 {ATTESTATION_ROOTS_VAR}=path.pem[:path2.pem], and intermediate CAs not built \
                 in are taken from {ATTESTATION_INTERMEDIATES_VAR}=path.pem[:path2.pem]"
            ),
            PivError::AttestationRoots { .. } => format!(
                "{ATTESTATION_ROOTS_VAR} and {ATTESTATION_INTERMEDIATES_VAR} list PEM files \
                 separated by ':'"
            ),
            PivError::PinEntry(_)
            | PivError::SlotEmpty { .. }
            | PivError::NotAKeySlot { .. }
            | PivError::NotP256 { .. }
            | PivError::Card { .. } => return None,
        })
    }

    /// The message and the hint on one line, for callers that pass errors
    /// on as text (the envelope's [`Unwrapper`]).
    pub fn with_hint(&self) -> String {
        match self.hint() {
            Some(h) => format!("{self} ({h})"),
            None => self.to_string(),
        }
    }
}

pub(super) fn pcsc_inner(e: &yubikey::Error) -> Option<pcsc::Error> {
    match e {
        yubikey::Error::PcscError { inner } => *inner,
        _ => None,
    }
}

pub(super) fn is_service_down(e: pcsc::Error) -> bool {
    matches!(
        e,
        pcsc::Error::NoService | pcsc::Error::ServiceStopped | pcsc::Error::Shutdown
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_happened_and_what_to_do() {
        assert_eq!(
            PivError::WrongPin { tries_left: 2 }.to_string(),
            "wrong PIN, 2 tries left"
        );
        assert_eq!(
            PivError::WrongPin { tries_left: 1 }.to_string(),
            "wrong PIN, 1 try left"
        );
        let blocked = PivError::PinBlocked { serial: 7 };
        assert!(blocked
            .hint()
            .unwrap()
            .contains("ykman piv access unblock-pin"));
        assert_eq!(
            PivError::TouchTimeout { serial: 7 }.to_string(),
            "no touch within 15 s; touch the YubiKey when it blinks, then try again"
        );
        assert_eq!(
            PivError::Removed { serial: 12345678 }.to_string(),
            "YubiKey 12345678 was removed; insert it and try again"
        );
        let down = PivError::from(TokenError::PcscUnavailable(pcsc::Error::NoService));
        if cfg!(target_os = "linux") {
            let hint = down.hint().unwrap();
            assert!(hint.contains("apt install pcscd") && hint.contains("pcscd.socket"));
        }
        assert!(PivError::WrongPin { tries_left: 2 }
            .with_hint()
            .starts_with("wrong PIN, 2 tries left (vault never retries"));
    }
}
