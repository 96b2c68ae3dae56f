//! FIDO2 security keys as envelope recipients, through the hmac-secret
//! extension: a credential made once, then for a 32-byte salt the key
//! returns HMAC-SHA-256(CredRandom, salt) after a touch. That output is the
//! IKM of the envelope's FIDO2 entry (`crates/secrets/src/envelope.rs`).
//!
//! The rest of vault sees only [`Fido2Authenticator`]; [`HidAuthenticator`]
//! is the one implementation over USB HID (the `ctap-hid-fido2` crate) and
//! [`SoftwareAuthenticator`] the stand-in for tests: FIDO2 is HID only, and
//! no HID device can be emulated here.
//!
//! # PIN and the two CredRandoms
//!
//! A CTAP 2.1 authenticator keeps two CredRandoms per credential and uses
//! one when the PIN (user verification) was given and the other when not,
//! so the same salt gives two different secrets. The envelope does not
//! record which one an entry was sealed with, so vault has one rule, kept
//! by [`enroll`] and [`Fido2Unwrapper`]: every request goes without a PIN
//! first, and with the PIN only when the key answers that it needs one
//! ([`Fido2Error::PinRequired`]). A key that demands its PIN does so at
//! enrollment and at every open alike (CTAP's `alwaysUv`), so both sides
//! get the same CredRandom. A key whose `alwaysUv` is switched on after
//! enrollment gives other secrets and cannot open what it was sealed to.
//!
//! # Stdout
//!
//! vault's stdout may carry credential_process JSON, and `ctap-hid-fido2`
//! 3.6.1 prints to stdout. Read in its source (`src/`), the prints on the
//! paths [`HidAuthenticator`] uses (device list, open, makeCredential,
//! getAssertion with hmac-secret, ClientPIN keyAgreement / getPinToken /
//! getRetries) are:
//!
//! - `ctaphid.rs` 76, 83, 95–97, 114 (CTAPHID_INIT), 348–351, 403, 423,
//!   428, 475–478 (every CBOR exchange): only with `enable_log`, which
//!   `crate_cfg` turns off;
//! - `ctaphid.rs` 413–417, the "- Touch the sensor on the authenticator"
//!   keep-alive line, to stdout unless `keep_alive_msg_to_stderr`: off by
//!   `enable_keep_alive_msg = false`, by an empty `keep_alive_msg`, and
//!   sent to stderr by `keep_alive_msg_to_stderr = true` should either
//!   ever be ignored; [`HidAuthenticator`] tells the user itself, through
//!   its notify callback, before each request that waits for a touch;
//! - **unconditional** `println!`s in the response parsers, for any CBOR
//!   member the crate does not know: `make_credential_response.rs` 118
//!   ("Anything Extension!") and 145, `get_assertion_response.rs` 90 and
//!   128, `client_pin_response.rs` 21, 38 and 57. These fire on what the
//!   key sends, which no `Cfg` controls: CTAP 2.1's `powerCycleState` in
//!   a getRetries answer reaches line 57, CTAP 2.2's
//!   `unsignedExtensionOutputs` lines 145 and 128.
//!   (`get_assertion_response.rs` 54 is an `eprintln!`.)
//!
//! Not reached from here: `ctaphid.rs` 294, 302 (wink), 336 (cancel),
//! `get_info_response.rs` 107 (vault never sends getInfo), `bio/`,
//! `credential_management/`, `large_blobs/`, `verifier.rs`, `util.rs` 17
//! and 22, and `lib.rs`'s tests. hidapi's Linux backend (`hid.c`) prints
//! nothing.
//!
//! Because of the unconditional ones, every call into the crate runs inside
//! `quiet_stdout`: stdout is flushed, file descriptor 1 is pointed at
//! stderr's file (a safe `dup`/`dup2` through rustix) and put back after
//! the call, with Rust's stdout lock held throughout so that no other
//! thread's output is diverted meanwhile. What the crate prints then lands
//! on stderr. Off Unix there is no such redirection; only the `Cfg`
//! settings apply there. The crate also panics (`expect`, slicing short
//! answers): the same wrapper turns a panic into an error.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use ctap_hid_fido2::fidokey::credential_management::credential_management_params::CredentialProtectionPolicy;
use ctap_hid_fido2::fidokey::{
    AssertionExtension, CredentialExtension, GetAssertionArgsBuilder, MakeCredentialArgsBuilder,
};
use ctap_hid_fido2::{FidoKeyHid, HidParam};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use vault_base::secret::Passphrase;
use zeroize::{Zeroize, Zeroizing};

/// Said through the notify callback before every request that waits for a
/// touch.
pub const TOUCH_MESSAGE: &str = "Touch your security key…";

/// The envelope stores the relying party id in at most 255 bytes.
const MAX_RP_ID_LEN: usize = 255;

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

/// A FIDO2 authenticator with hmac-secret, as vault uses one. `pin` is
/// sent only when given; see the module documentation for when vault
/// gives it.
pub trait Fido2Authenticator {
    /// Makes a (non-resident) credential for `rp_id` with hmac-secret and
    /// returns its id. Needs a touch.
    fn make_hmac_credential(
        &mut self,
        rp_id: &str,
        pin: Option<&Passphrase>,
    ) -> Result<Vec<u8>, Fido2Error>;

    /// The hmac-secret output of `credential_id` for `salt`. Needs a touch.
    /// [`Fido2Error::NoDevice`] and [`Fido2Error::CredentialNotFound`] mean
    /// the key that holds the credential is not here.
    fn hmac_secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
        pin: Option<&Passphrase>,
    ) -> Result<Zeroizing<[u8; 32]>, Fido2Error>;

    /// What to call the authenticator in messages.
    fn description(&self) -> String;
}

impl<A: Fido2Authenticator + ?Sized> Fido2Authenticator for &mut A {
    fn make_hmac_credential(
        &mut self,
        rp_id: &str,
        pin: Option<&Passphrase>,
    ) -> Result<Vec<u8>, Fido2Error> {
        (**self).make_hmac_credential(rp_id, pin)
    }

    fn hmac_secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
        pin: Option<&Passphrase>,
    ) -> Result<Zeroizing<[u8; 32]>, Fido2Error> {
        (**self).hmac_secret(rp_id, credential_id, salt, pin)
    }

    fn description(&self) -> String {
        (**self).description()
    }
}

impl<A: Fido2Authenticator + ?Sized> Fido2Authenticator for Box<A> {
    fn make_hmac_credential(
        &mut self,
        rp_id: &str,
        pin: Option<&Passphrase>,
    ) -> Result<Vec<u8>, Fido2Error> {
        (**self).make_hmac_credential(rp_id, pin)
    }

    fn hmac_secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
        pin: Option<&Passphrase>,
    ) -> Result<Zeroizing<[u8; 32]>, Fido2Error> {
        (**self).hmac_secret(rp_id, credential_id, salt, pin)
    }

    fn description(&self) -> String {
        (**self).description()
    }
}

/// Runs `op` without a PIN, and again with `pin` only if the key asked for
/// one (see the module documentation).
fn pin_if_required<T>(
    pin: Option<&Passphrase>,
    mut op: impl FnMut(Option<&Passphrase>) -> Result<T, Fido2Error>,
) -> Result<T, Fido2Error> {
    match op(None) {
        Err(Fido2Error::PinRequired) => match pin {
            Some(pin) => op(Some(pin)),
            None => Err(Fido2Error::PinRequired),
        },
        other => other,
    }
}

fn check_rp_id(rp_id: &str) -> Result<(), Fido2Error> {
    if rp_id.is_empty() || rp_id.len() > MAX_RP_ID_LEN {
        return Err(Fido2Error::InvalidRpId(rp_id.to_string()));
    }
    Ok(())
}

/// Enrolls a FIDO2 key as a recipient: makes a credential for `rp_id`,
/// draws a random salt and evaluates hmac-secret once, since sealing needs
/// the secret. Two touches. `pin` is used only if the key asks for it; a
/// key with a PIN that asks and no `pin` gives [`Fido2Error::PinRequired`].
pub fn enroll(
    auth: &mut dyn Fido2Authenticator,
    rp_id: &str,
    pin: Option<&Passphrase>,
) -> Result<Fido2Enrollment, Fido2Error> {
    check_rp_id(rp_id)?;
    let credential_id = pin_if_required(pin, |pin| auth.make_hmac_credential(rp_id, pin))?;
    if credential_id.is_empty() || credential_id.len() > MAX_CREDENTIAL_ID_LEN {
        return Err(Fido2Error::Device(format!(
            "the key made a credential id of {} bytes; vault stores 1 to \
             {MAX_CREDENTIAL_ID_LEN}",
            credential_id.len()
        )));
    }
    let mut salt = [0u8; 32];
    OsRng.fill_bytes(&mut salt);
    let hmac_secret = pin_if_required(pin, |pin| {
        auth.hmac_secret(rp_id, &credential_id, &salt, pin)
    })?;
    Ok(Fido2Enrollment {
        rp_id: rp_id.to_string(),
        credential_id,
        salt,
        hmac_secret,
    })
}

/// The longest credential id vault keeps: CTAP 2.1 allows up to 1023 bytes.
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;

/// What enrolling a FIDO2 key gives: its credential, the salt drawn for it
/// and the hmac-secret for that salt, from which a recipient is made.
pub struct Fido2Enrollment {
    pub rp_id: String,
    pub credential_id: Vec<u8>,
    pub salt: [u8; 32],
    pub hmac_secret: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Fido2Enrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Fido2Enrollment {{ rp_id: {:?}, credential_id: {} bytes, hmac_secret: *** }}",
            self.rp_id,
            self.credential_id.len()
        )
    }
}

/// Asked for the PIN of the authenticator it is given the description of;
/// `None` when the user cancels.
pub type PinPrompt = Box<dyn FnMut(&str) -> Option<Passphrase>>;

/// The envelope's [`Unwrapper`] for FIDO2 entries. A key that is absent or
/// does not hold the entry's credential answers `Ok(None)`, so the next
/// entry is tried; any other failure stops the open. The PIN (given, or
/// asked through the prompt) is sent only when the key asks for it, and
/// kept for later entries once it worked.
pub struct Fido2Unwrapper<A: Fido2Authenticator> {
    auth: A,
    pin: Option<Passphrase>,
    ask_pin: Option<PinPrompt>,
}

impl<A: Fido2Authenticator> Fido2Unwrapper<A> {
    pub fn new(auth: A) -> Self {
        Fido2Unwrapper {
            auth,
            pin: None,
            ask_pin: None,
        }
    }

    /// The PIN to send if the key asks for one.
    pub fn with_pin(mut self, pin: Passphrase) -> Self {
        self.pin = Some(pin);
        self
    }

    /// Asks for the PIN when the key needs one and none was given.
    pub fn with_pin_prompt(mut self, ask: PinPrompt) -> Self {
        self.ask_pin = Some(ask);
        self
    }

    pub fn authenticator(&self) -> &A {
        &self.auth
    }

    pub fn into_inner(self) -> A {
        self.auth
    }

    /// The hmac-secret of `credential_id` for `salt`, or `Ok(None)` when
    /// no key is plugged in or the key does not hold that credential (so a
    /// caller tries its next key); any other failure is an error.
    pub fn find_secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
    ) -> Result<Option<Zeroizing<[u8; 32]>>, Fido2Error> {
        match self.secret(rp_id, credential_id, salt) {
            Ok(secret) => Ok(Some(secret)),
            Err(Fido2Error::NoDevice | Fido2Error::CredentialNotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
    ) -> Result<Zeroizing<[u8; 32]>, Fido2Error> {
        match self.auth.hmac_secret(rp_id, credential_id, salt, None) {
            Err(Fido2Error::PinRequired) => {}
            other => return other,
        }
        let pin = match self.pin.clone() {
            Some(pin) => pin,
            None => {
                let description = self.auth.description();
                match self.ask_pin.as_mut().and_then(|ask| ask(&description)) {
                    Some(pin) => pin,
                    None => return Err(Fido2Error::PinRequired),
                }
            }
        };
        let secret = self
            .auth
            .hmac_secret(rp_id, credential_id, salt, Some(&pin))?;
        self.pin = Some(pin);
        Ok(secret)
    }
}

// ---------------------------------------------------------------------------
// USB HID, through ctap-hid-fido2

/// The crate's settings: no trace output, no keep-alive line (and were it
/// printed, to stderr). See the module documentation.
fn crate_cfg() -> ctap_hid_fido2::Cfg {
    let mut cfg = ctap_hid_fido2::Cfg::init();
    cfg.enable_log = false;
    cfg.enable_keep_alive_msg = false;
    cfg.keep_alive_msg = String::new();
    cfg.keep_alive_msg_to_stderr = true;
    // Only bio enrollment and credential management read these; vault uses
    // neither, and CTAP 2.1's commands are the ones to prefer.
    cfg.use_pre_bio_enrollment = false;
    cfg.use_pre_credential_management = false;
    cfg
}

/// Runs `f`, a call into ctap-hid-fido2, with file descriptor 1 pointing at
/// stderr, and turns a panic in it into an error. See the module
/// documentation.
fn quiet_stdout<T>(f: impl FnOnce() -> T) -> Result<T, Fido2Error> {
    #[cfg(unix)]
    {
        use std::io::Write;

        fn aside(what: &str, e: impl fmt::Display) -> Fido2Error {
            Fido2Error::Device(format!(
                "cannot {what} stdout around the FIDO2 library: {e}"
            ))
        }
        // Held throughout: other threads' prints wait rather than being
        // diverted to stderr. The lock is reentrant, so the library's own
        // prints on this thread go through (to stderr).
        let mut stdout = std::io::stdout().lock();
        stdout.flush().map_err(|e| aside("flush", e))?;
        let saved = rustix::io::dup(&stdout).map_err(|e| aside("save", e))?;
        // With stderr closed, the library's prints go nowhere.
        rustix::stdio::dup2_stdout(std::io::stderr())
            .or_else(|_| {
                let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
                rustix::stdio::dup2_stdout(&null).map_err(std::io::Error::from)
            })
            .map_err(|e| aside("redirect", e))?;
        let result = catch_unwind(AssertUnwindSafe(f));
        // Whatever the library left in Rust's buffer goes to stderr too.
        let _ = stdout.flush();
        rustix::stdio::dup2_stdout(&saved).map_err(|e| aside("restore", e))?;
        result.map_err(panic_error)
    }
    #[cfg(not(unix))]
    {
        catch_unwind(AssertUnwindSafe(f)).map_err(panic_error)
    }
}

fn panic_error(payload: Box<dyn std::any::Any + Send>) -> Fido2Error {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".to_string());
    Fido2Error::Device(format!("the FIDO2 library failed: {message}"))
}

/// A FIDO HID device (usage page 0xF1D0) found plugged in.
#[derive(Clone)]
pub struct Fido2Device {
    /// The product name the device reports, e.g. "YubiKey OTP+FIDO+CCID".
    pub product: String,
    pub vendor_id: u16,
    pub product_id: u16,
    param: HidParam,
}

impl Fido2Device {
    fn description(&self) -> String {
        if self.product.is_empty() {
            format!(
                "FIDO2 security key {:04x}:{:04x}",
                self.vendor_id, self.product_id
            )
        } else {
            format!("FIDO2 security key \"{}\"", self.product)
        }
    }
}

impl fmt::Debug for Fido2Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fido2Device({})", self.description())
    }
}

/// The CTAP status byte in a ctap-hid-fido2 error: it reports one as
/// `response_status err = 0xNN NAME text` (`ctaphid.rs`, `ctapdef.rs`).
fn ctap_status(message: &str) -> Option<u8> {
    let rest = message.split("response_status err = 0x").nth(1)?;
    let hex: String = rest
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .take(2)
        .collect();
    u8::from_str_radix(&hex, 16).ok()
}

/// A ctap-hid-fido2 error as a [`Fido2Error`]. A wrong PIN is completed
/// with the tries left by the caller.
fn classify(message: &str) -> Fido2Error {
    match ctap_status(message) {
        Some(0x2E | 0x22) => Fido2Error::CredentialNotFound,
        Some(0x31) => Fido2Error::WrongPin { tries_left: None },
        Some(0x32) => Fido2Error::PinBlocked,
        Some(0x34) => Fido2Error::PinAuthBlocked,
        Some(0x35) => Fido2Error::PinNotSet,
        Some(0x36) => Fido2Error::PinRequired,
        Some(0x2D | 0x2F | 0x3A) => Fido2Error::TouchTimeout,
        Some(0x27) => Fido2Error::Denied,
        Some(0x16) => Fido2Error::HmacSecretUnsupported,
        _ if message.starts_with("read err") || message.starts_with("write error") => {
            Fido2Error::Device("lost contact with the security key (was it unplugged?)".to_string())
        }
        _ => Fido2Error::Device(message.to_string()),
    }
}

/// FIDO2 security keys on USB, found anew for each request so that a key
/// plugged in late is seen. `notify` tells the user to touch the key; it
/// must not write to stdout.
pub struct HidAuthenticator {
    notify: Box<dyn Fn(&str)>,
    /// The key used last, for messages.
    last: Option<String>,
}

impl HidAuthenticator {
    pub fn new(notify: Box<dyn Fn(&str)>) -> Self {
        HidAuthenticator { notify, last: None }
    }

    /// The FIDO HID devices plugged in; [`Fido2Error::NoDevice`] if none.
    pub fn discover(&self) -> Result<Vec<Fido2Device>, Fido2Error> {
        let found = quiet_stdout(ctap_hid_fido2::get_fidokey_devices)?;
        let devices: Vec<Fido2Device> = found
            .into_iter()
            .map(|info| Fido2Device {
                product: info.product_string,
                vendor_id: info.vid,
                product_id: info.pid,
                param: info.param,
            })
            .collect();
        if devices.is_empty() {
            return Err(Fido2Error::NoDevice);
        }
        Ok(devices)
    }

    fn open(&mut self, device: &Fido2Device) -> Result<FidoKeyHid, Fido2Error> {
        self.last = Some(device.description());
        let params = [device.param.clone()];
        let cfg = crate_cfg();
        quiet_stdout(|| FidoKeyHid::new(&params, &cfg))?.map_err(|e| Fido2Error::CannotOpen {
            device: device.description(),
            reason: e.to_string(),
        })
    }

    /// A ctap-hid-fido2 error, with the tries left when the PIN was wrong.
    fn error(key: &FidoKeyHid, message: &str) -> Fido2Error {
        match classify(message) {
            Fido2Error::WrongPin { .. } => {
                let tries_left = quiet_stdout(|| key.get_pin_retries())
                    .ok()
                    .and_then(Result::ok)
                    .and_then(|n| u32::try_from(n).ok());
                Fido2Error::WrongPin { tries_left }
            }
            other => other,
        }
    }

    /// Whether `key` holds `credential_id`, asked without a touch (`up`
    /// false), so that a key without it is passed over without asking for a
    /// touch. Any answer but "no such credential" counts as yes: the real
    /// request will tell what is wrong.
    fn holds(key: &FidoKeyHid, rp_id: &str, credential_id: &[u8]) -> Result<bool, Fido2Error> {
        let challenge = random_challenge();
        let args = GetAssertionArgsBuilder::new(rp_id, &challenge)
            .credential_id(credential_id)
            .without_pin_and_uv()
            .without_up()
            .build();
        match quiet_stdout(|| key.get_assertion_with_args(&args))? {
            Ok(_) => Ok(true),
            Err(e) => Ok(classify(&e.to_string()) != Fido2Error::CredentialNotFound),
        }
    }

    fn assertion(
        &self,
        key: &FidoKeyHid,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
        pin: Option<&Passphrase>,
    ) -> Result<Zeroizing<[u8; 32]>, Fido2Error> {
        let challenge = random_challenge();
        let extensions = [AssertionExtension::HmacSecret(Some(*salt))];
        let mut builder = GetAssertionArgsBuilder::new(rp_id, &challenge)
            .credential_id(credential_id)
            .extensions(&extensions);
        builder = match pin {
            Some(pin) => builder.pin(pin.expose()),
            None => builder.without_pin_and_uv(),
        };
        let args = builder.build();
        (self.notify)(TOUCH_MESSAGE);
        let mut assertions = quiet_stdout(|| key.get_assertion_with_args(&args))?
            .map_err(|e| Self::error(key, &e.to_string()))?;
        let mut output = None;
        for assertion in &mut assertions {
            for extension in &mut assertion.extensions {
                match extension {
                    AssertionExtension::HmacSecret(Some(secret)) => {
                        if output.is_none() {
                            output = Some(Zeroizing::new(*secret));
                        }
                        secret.zeroize();
                    }
                    AssertionExtension::HmacSecret2(Some((first, second))) => {
                        first.zeroize();
                        second.zeroize();
                    }
                    _ => {}
                }
            }
        }
        let first = assertions
            .first()
            .ok_or_else(|| Fido2Error::Device("the key sent no assertion".to_string()))?;
        if first.rpid_hash.as_slice() != Sha256::digest(rp_id.as_bytes()).as_slice() {
            return Err(Fido2Error::Device(
                "the key answered for another relying party".to_string(),
            ));
        }
        // The key may leave the id out when the allow list has one entry.
        if !first.credential_id.is_empty() && first.credential_id != credential_id {
            return Err(Fido2Error::Device(
                "the key answered with another credential".to_string(),
            ));
        }
        output.ok_or(Fido2Error::HmacSecretUnsupported)
    }
}

fn random_challenge() -> [u8; 32] {
    let mut challenge = [0u8; 32];
    OsRng.fill_bytes(&mut challenge);
    challenge
}

impl Fido2Authenticator for HidAuthenticator {
    fn make_hmac_credential(
        &mut self,
        rp_id: &str,
        pin: Option<&Passphrase>,
    ) -> Result<Vec<u8>, Fido2Error> {
        check_rp_id(rp_id)?;
        let devices = self.discover()?;
        let [device] = devices.as_slice() else {
            return Err(Fido2Error::SeveralDevices {
                count: devices.len(),
            });
        };
        let key = self.open(device)?;
        let challenge = random_challenge();
        // credProtect level 2: usable without a PIN when its id is given,
        // as vault always does; a key defaulting to level 3 would otherwise
        // demand the PIN on every open.
        let extensions = [
            CredentialExtension::HmacSecret(Some(true)),
            CredentialExtension::CredProtect(Some(
                CredentialProtectionPolicy::UserVerificationOptionalWithCredentialIdList,
            )),
        ];
        let mut builder = MakeCredentialArgsBuilder::new(rp_id, &challenge).extensions(&extensions);
        builder = match pin {
            Some(pin) => builder.pin(pin.expose()),
            None => builder.without_pin_and_uv(),
        };
        let args = builder.build();
        (self.notify)(TOUCH_MESSAGE);
        let attestation = quiet_stdout(|| key.make_credential_with_args(&args))?
            .map_err(|e| Self::error(&key, &e.to_string()))?;
        let hmac_secret = attestation
            .extensions
            .iter()
            .any(|e| matches!(e, CredentialExtension::HmacSecret(Some(true))));
        if !hmac_secret {
            return Err(Fido2Error::HmacSecretUnsupported);
        }
        Ok(attestation.credential_descriptor.id)
    }

    fn hmac_secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
        pin: Option<&Passphrase>,
    ) -> Result<Zeroizing<[u8; 32]>, Fido2Error> {
        check_rp_id(rp_id)?;
        for device in self.discover()? {
            let key = self.open(&device)?;
            if Self::holds(&key, rp_id, credential_id)? {
                return self.assertion(&key, rp_id, credential_id, salt, pin);
            }
        }
        Err(Fido2Error::CredentialNotFound)
    }

    fn description(&self) -> String {
        self.last
            .clone()
            .unwrap_or_else(|| "FIDO2 security key".to_string())
    }
}

// ---------------------------------------------------------------------------
// In software, for tests

/// Domain separation for the software authenticator's credential ids.
const SOFTWARE_ID_AAD: &[u8] = b"vault software FIDO2 credential v1";
const SOFTWARE_ID_VERSION: u8 = 1;
const SOFTWARE_PIN_RETRIES: u32 = 8;

/// A FIDO2 authenticator in software, answering as a CTAP 2.1 key does:
/// each credential has two random CredRandoms (used with and without the
/// PIN), kept in the credential id itself, encrypted and authenticated
/// with the authenticator's own key and bound to the relying party, so the
/// authenticator stores nothing per credential; hmac-secret is
/// HMAC-SHA-256(CredRandom, salt). For tests only; nothing in vault's
/// product path uses it.
pub struct SoftwareAuthenticator {
    /// Wraps the credential ids.
    master: Zeroizing<[u8; 32]>,
    pin: Option<Passphrase>,
    always_uv: bool,
    pin_retries: u32,
    refuse_touch: bool,
    present: bool,
    hmac_secret: bool,
    touches: u32,
}

impl Default for SoftwareAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftwareAuthenticator {
    /// A new authenticator with a random key, no PIN, touched when asked.
    pub fn new() -> Self {
        let mut master = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut master[..]);
        SoftwareAuthenticator {
            master,
            pin: None,
            always_uv: false,
            pin_retries: SOFTWARE_PIN_RETRIES,
            refuse_touch: false,
            present: true,
            hmac_secret: true,
            touches: 0,
        }
    }

    /// Sets a PIN. Making a credential then needs it (as on a key without
    /// CTAP 2.1's makeCredUvNotRqd); hmac-secret does not.
    pub fn with_pin(mut self, pin: Passphrase) -> Self {
        self.pin = Some(pin);
        self
    }

    /// Sets a PIN and requires it for everything (CTAP 2.1's alwaysUv).
    pub fn require_pin(mut self, pin: Passphrase) -> Self {
        self.pin = Some(pin);
        self.always_uv = true;
        self
    }

    /// Without the hmac-secret extension, as some U2F-era keys are.
    pub fn without_hmac_secret(mut self) -> Self {
        self.hmac_secret = false;
        self
    }

    /// While set, every request that needs a touch times out.
    pub fn refuse_touch(&mut self, refuse: bool) {
        self.refuse_touch = refuse;
    }

    /// While unplugged, every request finds no device.
    pub fn set_plugged_in(&mut self, present: bool) {
        self.present = present;
    }

    /// How many touches the authenticator has had.
    pub fn touches(&self) -> u32 {
        self.touches
    }

    /// PIN tries left.
    pub fn pin_retries(&self) -> u32 {
        self.pin_retries
    }

    /// Checks presence and the PIN; returns whether the PIN was verified.
    fn user_verification(&mut self, pin: Option<&Passphrase>) -> Result<bool, Fido2Error> {
        if !self.present {
            return Err(Fido2Error::NoDevice);
        }
        let Some(given) = pin else {
            return if self.always_uv {
                Err(Fido2Error::PinRequired)
            } else {
                Ok(false)
            };
        };
        let Some(set) = &self.pin else {
            return Err(Fido2Error::PinNotSet);
        };
        if self.pin_retries == 0 {
            return Err(Fido2Error::PinBlocked);
        }
        if given != set {
            self.pin_retries -= 1;
            return Err(if self.pin_retries == 0 {
                Fido2Error::PinBlocked
            } else {
                Fido2Error::WrongPin {
                    tries_left: Some(self.pin_retries),
                }
            });
        }
        self.pin_retries = SOFTWARE_PIN_RETRIES;
        Ok(true)
    }

    fn touch(&mut self) -> Result<(), Fido2Error> {
        if self.refuse_touch {
            return Err(Fido2Error::TouchTimeout);
        }
        self.touches += 1;
        Ok(())
    }

    fn id_aad(rp_id: &str) -> Vec<u8> {
        let mut aad = SOFTWARE_ID_AAD.to_vec();
        aad.extend_from_slice(&Sha256::digest(rp_id.as_bytes()));
        aad
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.master[..]))
    }

    /// Version ‖ nonce ‖ AEAD(CredRandomWithUV ‖ CredRandomWithoutUV).
    fn wrap_credential(&self, rp_id: &str) -> Result<Vec<u8>, Fido2Error> {
        let mut cred_randoms = Zeroizing::new([0u8; 64]);
        OsRng.fill_bytes(&mut cred_randoms[..]);
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let aad = Self::id_aad(rp_id);
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &cred_randoms[..],
                    aad: &aad,
                },
            )
            .map_err(|_| Fido2Error::Device("cannot wrap the credential".to_string()))?;
        let mut id = Vec::with_capacity(1 + nonce.len() + sealed.len());
        id.push(SOFTWARE_ID_VERSION);
        id.extend_from_slice(&nonce);
        id.extend_from_slice(&sealed);
        Ok(id)
    }

    /// The CredRandom of `credential_id` for `rp_id`, with or without user
    /// verification; [`Fido2Error::CredentialNotFound`] for an id this
    /// authenticator did not make for `rp_id`.
    pub fn cred_random(
        &self,
        rp_id: &str,
        credential_id: &[u8],
        verified: bool,
    ) -> Result<Zeroizing<[u8; 32]>, Fido2Error> {
        let (&version, rest) = credential_id
            .split_first()
            .ok_or(Fido2Error::CredentialNotFound)?;
        if version != SOFTWARE_ID_VERSION || rest.len() < 12 {
            return Err(Fido2Error::CredentialNotFound);
        }
        let (nonce, sealed) = rest.split_at(12);
        let aad = Self::id_aad(rp_id);
        let opened = Zeroizing::new(
            self.cipher()
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: &aad,
                    },
                )
                .map_err(|_| Fido2Error::CredentialNotFound)?,
        );
        if opened.len() != 64 {
            return Err(Fido2Error::CredentialNotFound);
        }
        let half = if verified {
            &opened[..32]
        } else {
            &opened[32..]
        };
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(half);
        Ok(out)
    }
}

/// HMAC-SHA-256(key, message).
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> Result<Zeroizing<[u8; 32]>, Fido2Error> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|_| Fido2Error::Device("HMAC key rejected".to_string()))?;
    mac.update(message);
    let mut digest = mac.finalize().into_bytes();
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&digest);
    digest.as_mut_slice().zeroize();
    Ok(out)
}

impl Fido2Authenticator for SoftwareAuthenticator {
    fn make_hmac_credential(
        &mut self,
        rp_id: &str,
        pin: Option<&Passphrase>,
    ) -> Result<Vec<u8>, Fido2Error> {
        check_rp_id(rp_id)?;
        if !self.present {
            return Err(Fido2Error::NoDevice);
        }
        if pin.is_none() && self.pin.is_some() {
            return Err(Fido2Error::PinRequired);
        }
        self.user_verification(pin)?;
        self.touch()?;
        if !self.hmac_secret {
            return Err(Fido2Error::HmacSecretUnsupported);
        }
        self.wrap_credential(rp_id)
    }

    fn hmac_secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
        pin: Option<&Passphrase>,
    ) -> Result<Zeroizing<[u8; 32]>, Fido2Error> {
        let verified = self.user_verification(pin)?;
        let cred_random = self.cred_random(rp_id, credential_id, verified)?;
        self.touch()?;
        hmac_sha256(&cred_random, salt)
    }

    fn description(&self) -> String {
        "software FIDO2 authenticator".to_string()
    }
}

impl fmt::Debug for SoftwareAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareAuthenticator")
            .field("pin_set", &self.pin.is_some())
            .field("always_uv", &self.always_uv)
            .field("touches", &self.touches)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::cell::RefCell;
    use std::io::Write;
    use std::process::Command;
    use std::rc::Rc;

    const RP: &str = "vault.test";

    fn pin(s: &str) -> Passphrase {
        Passphrase::new(s)
    }

    #[test]
    fn wrong_credential_or_relying_party_is_not_found_never_a_secret() {
        let mut key = SoftwareAuthenticator::new();
        let id = key.make_hmac_credential(RP, None).unwrap();
        let salt = [1; 32];
        for i in 0..id.len() {
            let mut bad = id.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                key.hmac_secret(RP, &bad, &salt, None),
                Err(Fido2Error::CredentialNotFound),
                "byte {i}"
            );
        }
        assert_eq!(
            key.hmac_secret(RP, &id[..id.len() - 1], &salt, None),
            Err(Fido2Error::CredentialNotFound)
        );
        assert_eq!(
            key.hmac_secret(RP, &[], &salt, None),
            Err(Fido2Error::CredentialNotFound)
        );
        assert_eq!(
            key.hmac_secret("other.test", &id, &salt, None),
            Err(Fido2Error::CredentialNotFound)
        );
        let mut stranger = SoftwareAuthenticator::new();
        assert_eq!(
            stranger.hmac_secret(RP, &id, &salt, None),
            Err(Fido2Error::CredentialNotFound)
        );
        assert_eq!(stranger.touches(), 0, "no touch for a credential it lacks");
    }

    #[test]
    fn the_pin_changes_the_secret_as_on_a_ctap21_key() {
        let mut key = SoftwareAuthenticator::new().with_pin(pin("123456"));
        let id = key.make_hmac_credential(RP, Some(&pin("123456"))).unwrap();
        let salt = [7; 32];
        let without = key.hmac_secret(RP, &id, &salt, None).unwrap();
        let with = key
            .hmac_secret(RP, &id, &salt, Some(&pin("123456")))
            .unwrap();
        assert_ne!(*without, *with);
    }

    #[test]
    fn the_pin_blocks_after_its_tries() {
        let mut key = SoftwareAuthenticator::new().require_pin(pin("2468"));
        for left in (1..SOFTWARE_PIN_RETRIES).rev() {
            assert_eq!(
                key.make_hmac_credential(RP, Some(&pin("0000"))),
                Err(Fido2Error::WrongPin {
                    tries_left: Some(left)
                })
            );
        }
        assert_eq!(
            key.make_hmac_credential(RP, Some(&pin("0000"))),
            Err(Fido2Error::PinBlocked)
        );
        assert_eq!(
            key.make_hmac_credential(RP, Some(&pin("2468"))),
            Err(Fido2Error::PinBlocked)
        );
    }

    #[test]
    fn unsupported_hmac_secret_and_bad_relying_parties_are_refused() {
        let mut key = SoftwareAuthenticator::new().without_hmac_secret();
        let err = enroll(&mut key, RP, None).unwrap_err();
        assert_eq!(err, Fido2Error::HmacSecretUnsupported);
        assert!(err.to_string().contains("hmac-secret"));

        let mut key = SoftwareAuthenticator::new();
        assert!(matches!(
            enroll(&mut key, "", None),
            Err(Fido2Error::InvalidRpId(_))
        ));
        assert!(matches!(
            enroll(&mut key, &"a".repeat(256), None),
            Err(Fido2Error::InvalidRpId(_))
        ));
        assert_eq!(key.touches(), 0);
    }

    #[test]
    fn crate_errors_map_to_vault_errors() {
        // The exact wording ctap-hid-fido2 3.6.1 uses (ctaphid.rs, ctapdef.rs).
        let cases = [
            (
                "response_status err = 0x2E CTAP2_ERR_NO_CREDENTIALS    No valid credentials provided.",
                Fido2Error::CredentialNotFound,
            ),
            (
                "response_status err = 0x31 CTAP2_ERR_PIN_INVALID   PIN Invalid.",
                Fido2Error::WrongPin { tries_left: None },
            ),
            (
                "response_status err = 0x32 CTAP2_ERR_PIN_BLOCKED PIN Blocked.",
                Fido2Error::PinBlocked,
            ),
            (
                "response_status err = 0x36 CTAP2_ERR_PIN_REQUIRED  PIN is required for the selected operation.",
                Fido2Error::PinRequired,
            ),
            (
                "response_status err = 0x2F CTAP2_ERR_USER_ACTION_TIMEOUT   Timeout waiting for user interaction.",
                Fido2Error::TouchTimeout,
            ),
            (
                "response_status err = 0x16 CTAP2_ERR_UNSUPPORTED_EXTENSION Unsupported extension.",
                Fido2Error::HmacSecretUnsupported,
            ),
            (
                "response_status err = 0x34 CTAP2_ERR_PIN_AUTH_BLOCKED PIN authentication, pinAuth, blocked.Requires power recycle to reset.",
                Fido2Error::PinAuthBlocked,
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(classify(message), expected, "{message}");
        }
        assert!(matches!(
            classify("read err = 0xFF CTAP2_ERR_VENDOR_LAST   Vendor specific error."),
            Fido2Error::Device(m) if m.contains("unplugged")
        ));
        assert!(matches!(
            classify("response_status err = 0x2B CTAP2_ERR_UNSUPPORTED_OPTION Unsupported option."),
            Fido2Error::Device(m) if m.contains("0x2B")
        ));
        assert_eq!(
            ctap_status("response_status err = 0x6A BioPass"),
            Some(0x6a)
        );
        assert_eq!(ctap_status("FIDO device not found."), None);
    }

    #[test]
    fn the_crate_is_configured_silent() {
        let cfg = crate_cfg();
        assert!(!cfg.enable_log);
        assert!(!cfg.enable_keep_alive_msg);
        assert!(cfg.keep_alive_msg.is_empty());
        assert!(cfg.keep_alive_msg_to_stderr);
    }

    // -- stdout, in a child process ----------------------------------------

    const CHILD: &str = "VAULT_FIDO2_TEST_CHILD";
    const OUT: &str = "VAULT_FIDO2_TEST_OUT";
    const BEGIN: &str = "<<fido2-child-begin>>\n";
    const END: &str = "<<fido2-child-end>>";
    const CONTROL: &str = "<<fido2-child-control>>";

    /// Not a test: the child `run_child` starts (`--exact ...child_entry
    /// --include-ignored`), so a normal run lists it as ignored, never as
    /// passed. With `CHILD` set it runs the HID code between two markers on
    /// its real stdout (the harness runs it with `--nocapture`, so any
    /// print reaches fd 1) and writes what happened to the file `OUT` names.
    #[test]
    #[ignore = "helper, not a test: run as a child by the stdout tests below"]
    fn child_entry() {
        let action = std::env::var(CHILD).unwrap_or_else(|_| {
            panic!("child_entry is a helper run by the tests below ({CHILD} unset)")
        });
        let out = std::env::var(OUT).unwrap();
        let mut stdout = std::io::stdout();
        stdout.write_all(BEGIN.as_bytes()).unwrap();
        stdout.flush().unwrap();
        let report = match action.as_str() {
            "no_device" => {
                let touches = Rc::new(RefCell::new(0u32));
                let count = touches.clone();
                let mut hid = HidAuthenticator::new(Box::new(move |_| *count.borrow_mut() += 1));
                match hid.discover() {
                    // A developer's machine with a key plugged in: do not
                    // ask for touches, only check that nothing was printed.
                    Ok(devices) => format!("devices {}\n", devices.len()),
                    Err(discovered) => {
                        let made = hid.make_hmac_credential(RP, None);
                        let secret = hid.hmac_secret(RP, &[1; 16], &[2; 32], None).map(|_| ());
                        let unwrapped = Fido2Unwrapper::new(&mut hid)
                            .find_secret(RP, &[1; 16], &[2; 32])
                            .map(|s| s.is_some())
                            .map_err(|e| e.to_string());
                        format!(
                            "discover {discovered:?}: {discovered}\nmake {made:?}\n\
                             secret {secret:?}\nunwrap {unwrapped:?}\nnotified {}\n",
                            touches.borrow()
                        )
                    }
                }
            }
            "probe" => {
                let r = quiet_stdout(|| {
                    println!("PROBE-PRINTLN");
                    print!("PROBE-PRINT-NO-NEWLINE");
                    42
                });
                format!("probe {r:?}\n")
            }
            other => panic!("unknown action {other}"),
        };
        stdout.write_all(END.as_bytes()).unwrap();
        stdout.flush().unwrap();
        // The control: outside the guard a print does reach stdout, so the
        // empty space between the markers is not an artefact of capture.
        println!("{CONTROL}");
        std::fs::write(out, report).unwrap();
    }

    /// Runs `child_entry` in a child; returns (report, what the child wrote
    /// to stdout between the markers, its stderr).
    fn run_child(action: &str) -> (String, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("report");
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "fido2::tests::child_entry",
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, action)
            .env(OUT, &report)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "child failed: {}\nstdout: {stdout}\nstderr: {stderr}",
            output.status
        );
        let (_, after) = stdout
            .split_once(BEGIN)
            .unwrap_or_else(|| panic!("no begin marker: {stdout:?}"));
        let (between, rest) = after
            .split_once(END)
            .unwrap_or_else(|| panic!("no end marker: {stdout:?}"));
        assert!(rest.contains(CONTROL), "no control print: {stdout:?}");
        (
            std::fs::read_to_string(report).unwrap(),
            between.to_string(),
            stderr,
        )
    }

    #[test]
    fn with_no_device_the_hid_path_fails_clearly_and_prints_nothing_to_stdout() {
        let (report, stdout, stderr) = run_child("no_device");
        assert_eq!(
            stdout, "",
            "stdout carried: {stdout:?} (stderr: {stderr:?})"
        );
        if report.starts_with("devices ") {
            eprintln!("a FIDO device is plugged in; only stdout was checked: {report}");
            return;
        }
        assert!(
            report.contains("discover NoDevice: no FIDO2 security key found: plug it in"),
            "{report}"
        );
        assert!(report.contains("udev rule"), "{report}");
        assert!(report.contains("make Err(NoDevice)"), "{report}");
        assert!(report.contains("secret Err(NoDevice)"), "{report}");
        // Absent, so the envelope tries its other recipients.
        assert!(report.contains("unwrap Ok(false)"), "{report}");
        assert!(
            report.contains("notified 0"),
            "no touch asked without a key: {report}"
        );
    }

    #[test]
    fn the_stdout_guard_sends_library_prints_to_stderr() {
        let (report, stdout, stderr) = run_child("probe");
        assert_eq!(report, "probe Ok(42)\n");
        assert_eq!(stdout, "", "stdout carried: {stdout:?}");
        assert!(stderr.contains("PROBE-PRINTLN\n"), "stderr: {stderr:?}");
        assert!(
            stderr.contains("PROBE-PRINT-NO-NEWLINE"),
            "stderr: {stderr:?}"
        );
    }
}
