//! FIDO2 failures in words for the user, with the fix (udev rule, PIN, replug) inline.

const UDEV_HINT: &str = "on Linux, if it is plugged in, your user may lack access to its \
     hidraw device: systemd 244 and later grant it, older systems need the \
     udev rule in vault's udev/ directory";

/// Its messages carry their advice inline (the udev rule, the PIN).
impl vault_base::error::Hinted for Fido2Error {}

/// Why a FIDO2 request failed, in words for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fido2Error {
    #[error("no FIDO2 security key found: plug it in ({UDEV_HINT})")]
    NoDevice,
    #[error(
        "{count} FIDO2 security keys are plugged in: leave only the one to \
         enroll plugged in"
    )]
    SeveralDevices { count: usize },
    #[error("cannot open the {device}: {reason} ({UDEV_HINT})")]
    CannotOpen { device: String, reason: String },
    #[error("the FIDO2 security key needs its PIN for this")]
    PinRequired,
    #[error("wrong PIN for the FIDO2 security key{}", tries_left_text(*.tries_left))]
    WrongPin { tries_left: Option<u32> },
    #[error(
        "the FIDO2 security key's PIN is blocked after too many wrong tries: \
         only a reset of its FIDO2 application (which deletes its \
         credentials) unblocks it"
    )]
    PinBlocked,
    #[error(
        "too many wrong PINs since the FIDO2 security key was plugged in: \
         unplug it, plug it in again and retry"
    )]
    PinAuthBlocked,
    #[error("a PIN was given, but the FIDO2 security key has none set")]
    PinNotSet,
    #[error(
        "the FIDO2 security key was not touched in time: run the command \
         again and touch the key when it blinks"
    )]
    TouchTimeout,
    #[error("the FIDO2 security key refused the request (touch or verification declined)")]
    Denied,
    #[error(
        "the FIDO2 security key does not support the hmac-secret extension, \
         which vault needs to seal secrets to it"
    )]
    HmacSecretUnsupported,
    #[error("the FIDO2 security key does not hold this credential")]
    CredentialNotFound,
    #[error("invalid relying party id {0:?}: it must be 1 to 255 bytes")]
    InvalidRpId(String),
    #[error("FIDO2 security key: {0}")]
    Device(String),
}

fn tries_left_text(tries_left: Option<u32>) -> String {
    match tries_left {
        Some(1) => ": 1 try left before it blocks".to_string(),
        Some(n) => format!(": {n} tries left"),
        None => String::new(),
    }
}
