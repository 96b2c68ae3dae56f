//! The PIV applet, through the `yubikey` crate: a session with one card
//! opened by serial ([`PivToken`]), the enrollment steps (secure the PIN,
//! PUK and management key, generate a P-256 key in a retired slot, write a
//! certificate recording its policies, verify its attestation), and ECDH
//! for the envelope ([`PivUnwrapper`]).
//!
//! Card rules this file keeps:
//! - Open by serial only: `YubiKey::open()` refuses to pick when a backup
//!   key is plugged in too.
//! - Never reset the card, except to log out a PIN vault verified itself.
//!   `yubikey::YubiKey`'s `Drop` disconnects with `ResetCard`, which throws
//!   away the PIN and touch state of every program using the key;
//!   [`PivToken`] disconnects with `LeaveCard` (a PIN another program
//!   verified stays verified), and nothing here selects another applet,
//!   which clears the PIN as well. A session that sent the PIN itself ends
//!   with `ResetCard`, so the PIN does not stay verified for others.
//! - Never spend a PIN try that the user did not ask for: PIN state is read
//!   with an empty VERIFY, defaults are detected through GET METADATA, and a
//!   wrong PIN is reported, never retried.
//! - Nothing is deleted or overwritten on any error; key generation refuses
//!   an occupied slot.

use crate::apdu::{self, tlv, KeyInfo, TokenError, Version};
use der::Decode;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use std::collections::HashMap;
use std::ffi::CString;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};
use vault_base::secret::Passphrase;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;
use yubikey::piv::{self as ykpiv, AlgorithmId, ManagementAlgorithmId, ManagementSlotId, SlotId};
use yubikey::{MgmKey, YubiKey};
use zeroize::Zeroizing;

/// The factory PIN and PUK. Compared against what the user chooses, never
/// sent to a card to find out whether they are still set.
const DEFAULT_PIN: &str = "123456";
const DEFAULT_PUK: &str = "12345678";

/// The retired key-management slots, where vault generates its keys.
pub const RETIRED_SLOTS: std::ops::RangeInclusive<u8> = 0x82..=0x95;

/// How long a YubiKey keeps a "cached" touch.
const TOUCH_CACHE: Duration = Duration::from_secs(15);
/// How often to look again while waiting for a key to be inserted.
const POLL: Duration = Duration::from_millis(250);

/// Where the F9 attestation certificate lives (GET DATA `5FFF01`).
const OBJECT_F9_CERT: u32 = 0x005F_FF01;
/// Inside a certificate object: the certificate itself.
const TAG_CERT: u32 = 0x70;

/// Yubico's attestation extensions (developers.yubico.com, "PIV attestation").
const OID_FIRMWARE: &str = "1.3.6.1.4.1.41482.3.3";
const OID_SERIAL: &str = "1.3.6.1.4.1.41482.3.7";
const OID_POLICY: &str = "1.3.6.1.4.1.41482.3.8";
const OID_FORM_FACTOR: &str = "1.3.6.1.4.1.41482.3.9";
const OID_COMMON_NAME: &str = "2.5.4.3";

pub use crate::attest::{
    TrustedRoots, ATTESTATION_INTERMEDIATES_VAR, ATTESTATION_ROOTS_VAR, YUBICO_PIV_ROOT_CA_PEM,
};

// ---------------------------------------------------------------- policies

/// When the card asks for the PIN before using a slot's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinPolicy {
    Never,
    /// Once per session: until the card is reset, powered off, or another
    /// applet is selected.
    Once,
    Always,
}

/// When the card asks for a touch before using a slot's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TouchPolicy {
    Never,
    Always,
    /// A touch counts for 15 s.
    Cached,
}

impl PinPolicy {
    /// The byte PIV uses in GENERATE, metadata and attestation.
    pub fn code(self) -> u8 {
        match self {
            PinPolicy::Never => 1,
            PinPolicy::Once => 2,
            PinPolicy::Always => 3,
        }
    }
    pub fn from_code(b: u8) -> Option<PinPolicy> {
        Some(match b {
            1 => PinPolicy::Never,
            2 => PinPolicy::Once,
            3 => PinPolicy::Always,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            PinPolicy::Never => "never",
            PinPolicy::Once => "once",
            PinPolicy::Always => "always",
        }
    }
    fn to_yk(self) -> yubikey::PinPolicy {
        match self {
            PinPolicy::Never => yubikey::PinPolicy::Never,
            PinPolicy::Once => yubikey::PinPolicy::Once,
            PinPolicy::Always => yubikey::PinPolicy::Always,
        }
    }
    fn from_yk(p: yubikey::PinPolicy) -> Option<PinPolicy> {
        match p {
            yubikey::PinPolicy::Never => Some(PinPolicy::Never),
            yubikey::PinPolicy::Once => Some(PinPolicy::Once),
            yubikey::PinPolicy::Always => Some(PinPolicy::Always),
            yubikey::PinPolicy::Default => None,
        }
    }
}

impl TouchPolicy {
    pub fn code(self) -> u8 {
        match self {
            TouchPolicy::Never => 1,
            TouchPolicy::Always => 2,
            TouchPolicy::Cached => 3,
        }
    }
    pub fn from_code(b: u8) -> Option<TouchPolicy> {
        Some(match b {
            1 => TouchPolicy::Never,
            2 => TouchPolicy::Always,
            3 => TouchPolicy::Cached,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            TouchPolicy::Never => "never",
            TouchPolicy::Always => "always",
            TouchPolicy::Cached => "cached",
        }
    }
    fn to_yk(self) -> yubikey::TouchPolicy {
        match self {
            TouchPolicy::Never => yubikey::TouchPolicy::Never,
            TouchPolicy::Always => yubikey::TouchPolicy::Always,
            TouchPolicy::Cached => yubikey::TouchPolicy::Cached,
        }
    }
    fn from_yk(p: yubikey::TouchPolicy) -> Option<TouchPolicy> {
        match p {
            yubikey::TouchPolicy::Never => Some(TouchPolicy::Never),
            yubikey::TouchPolicy::Always => Some(TouchPolicy::Always),
            yubikey::TouchPolicy::Cached => Some(TouchPolicy::Cached),
            yubikey::TouchPolicy::Default => None,
        }
    }
}

impl FromStr for PinPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "never" => Ok(PinPolicy::Never),
            "once" => Ok(PinPolicy::Once),
            "always" => Ok(PinPolicy::Always),
            _ => Err(format!("unknown PIN policy {s:?} (never, once, always)")),
        }
    }
}

impl FromStr for TouchPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "never" => Ok(TouchPolicy::Never),
            "always" => Ok(TouchPolicy::Always),
            "cached" => Ok(TouchPolicy::Cached),
            _ => Err(format!(
                "unknown touch policy {s:?} (never, always, cached)"
            )),
        }
    }
}

impl fmt::Display for PinPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for TouchPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ------------------------------------------------------------------ values

/// Whether the PIV PIN is verified in the card's current session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinStatus {
    Verified,
    NotVerified { tries_left: u8 },
    Blocked,
}

/// Where a slot's key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Generated on the card: the private key never existed anywhere else.
    Generated,
    Imported,
}

/// A slot's P-256 key as the card describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    pub public_key: p256::PublicKey,
    pub pin_policy: PinPolicy,
    pub touch_policy: TouchPolicy,
    /// `None` when read from the certificate (firmware before 5.3 has no
    /// GET METADATA).
    pub origin: Option<Origin>,
}

/// What a slot's certificate says.
#[derive(Debug, Clone)]
pub struct SlotCertificate {
    pub public_key: p256::PublicKey,
    /// From the policy extension, present on certificates vault wrote.
    pub pin_policy: Option<PinPolicy>,
    pub touch_policy: Option<TouchPolicy>,
    /// The subject's common name.
    pub common_name: Option<String>,
    pub der: Vec<u8>,
}

/// A slot's attestation, verified up to a trusted root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationReport {
    pub serial: u32,
    pub slot: u8,
    pub firmware: Version,
    pub public_key: p256::PublicKey,
    pub pin_policy: PinPolicy,
    pub touch_policy: TouchPolicy,
    /// Yubico's form-factor byte, when the certificate has one.
    pub form_factor: Option<u8>,
    /// The subject of the root the chain ends in.
    pub root: String,
}

/// Which management key [`PivToken::authenticate_management`] used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagementKey {
    /// vault's (or ykman's) random key, stored on the card behind the PIN.
    Protected,
    /// The factory default.
    Default,
}

// ------------------------------------------------------------------ errors

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

fn pcsc_inner(e: &yubikey::Error) -> Option<pcsc::Error> {
    match e {
        yubikey::Error::PcscError { inner } => *inner,
        _ => None,
    }
}

fn is_service_down(e: pcsc::Error) -> bool {
    matches!(
        e,
        pcsc::Error::NoService | pcsc::Error::ServiceStopped | pcsc::Error::Shutdown
    )
}

// ------------------------------------------------------------------ opening

/// The reader each serial was last found in, so reopening a key asks only
/// that reader (3 APDUs) instead of every key on the desk.
static LAST_READER: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

fn remembered_reader(serial: u32) -> Option<String> {
    let list = LAST_READER.lock().ok()?;
    list.iter()
        .find(|(s, _)| *s == serial)
        .map(|(_, r)| r.clone())
}

fn remember_reader(serial: u32, reader: &str) {
    if let Ok(mut list) = LAST_READER.lock() {
        list.retain(|(s, _)| *s != serial);
        list.push((serial, reader.to_string()));
    }
}

/// Ends a session in which vault verified the PIN itself: the card is
/// reset, which logs the PIN out. Left verified, it would let any program
/// use every other PIN-protected slot (an SSH key in 9a) without the PIN
/// for as long as something keeps the card powered (an agent holding a
/// connection does). The `yubikey` crate has no unverify (VERIFY with
/// P1=FF, firmware 5.4.3+) to send instead, and a reset works on every
/// firmware.
fn log_out(yk: YubiKey) {
    if let Err((yk, e)) = yk.disconnect(pcsc::Disposition::ResetCard) {
        log::debug!(target: "vault", "resetting {:?} to log the PIN out: {e}", yk.name());
        std::mem::forget(yk);
    }
}

/// Disconnects without resetting: the PIN and touch state stay for the
/// next connection (ours or another program's).
fn leave(yk: YubiKey) {
    if let Err((yk, e)) = yk.disconnect(pcsc::Disposition::LeaveCard) {
        log::debug!(target: "vault", "disconnecting from {:?}: {e}", yk.name());
        // Dropping it would reset the card; a leaked handle does not, and
        // is gone when this process exits.
        std::mem::forget(yk);
    }
}

/// What one look at the readers found instead of the wanted key.
#[derive(Default)]
struct Missing {
    /// Serials of the other YubiKeys present.
    seen: Vec<u32>,
    /// Readers whose card another program holds exclusively.
    busy: Vec<String>,
}

/// Why the readers could not be listed, when that is an error: no reader
/// at all is only an empty desk.
fn listing_failed(e: &yubikey::Error) -> Option<PivError> {
    match pcsc_inner(e) {
        Some(pcsc::Error::NoReadersAvailable) | None => None,
        Some(p) if is_service_down(p) => Some(TokenError::PcscUnavailable(p).into()),
        Some(p) => Some(TokenError::from_pcsc(p, "listing readers", None).into()),
    }
}

/// One look at every reader: the key with `serial` if present.
fn find_once(serial: u32) -> Result<Result<YubiKey, Missing>, PivError> {
    let mut missing = Missing::default();
    let mut ctx = match yubikey::Context::open() {
        Ok(ctx) => ctx,
        Err(e) => return listing_failed(&e).map_or(Ok(Err(missing)), Err),
    };
    let readers = match ctx.iter() {
        Ok(r) => r,
        Err(e) => return listing_failed(&e).map_or(Ok(Err(missing)), Err),
    };
    let mut readers: Vec<_> = readers.collect();
    if let Some(last) = remembered_reader(serial) {
        readers.sort_by_key(|r| r.name() != last.as_str());
    }
    // Read before any card is asked, so that a card swapped while we ask
    // it is never taken for the one we identified (see remember_identity).
    let counts = insertion_counts_of(&readers);
    for reader in readers {
        match reader.open() {
            Ok(yk) if u32::from(yk.serial()) == serial => {
                remember_reader(serial, yk.name());
                remember_opened(&counts, &yk);
                return Ok(Ok(yk));
            }
            Ok(yk) => {
                missing.seen.push(u32::from(yk.serial()));
                leave(yk);
            }
            Err(e) => match pcsc_inner(&e) {
                Some(pcsc::Error::SharingViolation) => {
                    missing.busy.push(reader.name().into_owned())
                }
                Some(p) if is_service_down(p) => return Err(TokenError::PcscUnavailable(p).into()),
                // An empty reader, or a card without PIV: not ours.
                _ => {}
            },
        }
    }
    Ok(Err(missing))
}

/// pcscd's event count of each reader in `readers` that has a card.
fn insertion_counts_of(readers: &[yubikey::reader::Reader<'_>]) -> Vec<(CString, u32)> {
    let Ok(ctx) = pcsc::Context::establish(pcsc::Scope::User) else {
        return Vec::new();
    };
    let names: Vec<CString> = readers
        .iter()
        .filter_map(|r| CString::new(r.name().as_bytes()).ok())
        .collect();
    apdu::insertion_counts(&ctx, &names)
}

/// Tells the rest of this process which key `yk` is, so that opening it
/// for OATH next does not identify it again.
fn remember_opened(counts: &[(CString, u32)], yk: &YubiKey) {
    let Some((name, n)) = counts
        .iter()
        .find(|(r, _)| r.to_bytes() == yk.name().as_bytes())
    else {
        return;
    };
    let v = yk.version();
    apdu::remember_identity(
        name,
        *n,
        u32::from(yk.serial()),
        Some(Version([v.major, v.minor, v.patch])),
    );
}

/// Whether the card in `reader` is gone, or goes within a second: a key
/// pulled out mid-command can fail the command before pcscd's polling
/// (about every 0.35 s) notices the reader is empty. Used on error paths
/// only, where the wait does not matter.
fn card_gone(reader: &str) -> bool {
    let Ok(ctx) = pcsc::Context::establish(pcsc::Scope::User) else {
        return false;
    };
    let Ok(name) = CString::new(reader) else {
        return false;
    };
    let mut states = [pcsc::ReaderState::new(name, pcsc::State::UNAWARE)];
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ctx.get_status_change(left, &mut states) {
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(pcsc::Error::UnknownReader) => return true,
            Err(_) => return false,
        }
        let st = states[0].event_state();
        if st.contains(pcsc::State::UNKNOWN) || !st.contains(pcsc::State::PRESENT) {
            return true;
        }
        if left.is_zero() {
            return false;
        }
        states[0].sync_current_state();
    }
}

// ------------------------------------------------------------------ session

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
    /// management keys. What those need (PIV selected, the management key
    /// authenticated) is the card's state, not the connection's, and
    /// nothing here selects another applet. The answer with its status.
    fn raw_apdu(&self, apdu: &[u8]) -> Result<Vec<u8>, String> {
        let ctx = pcsc::Context::establish(pcsc::Scope::User).map_err(|e| e.to_string())?;
        let reader = CString::new(self.reader.as_str()).map_err(|e| e.to_string())?;
        let card = ctx
            .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 258];
        let answer = card
            .transmit(apdu, &mut buf)
            .map_err(|e| e.to_string())?
            .to_vec();
        let _ = card.disconnect(pcsc::Disposition::LeaveCard);
        Ok(answer)
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
        let answer = self
            .raw_apdu(&[0x00, 0x87, 0x0A, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00])
            .map_err(failed)?;
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
        let answer = self.raw_apdu(&apdu).map_err(failed)?;
        let mut expected = GenericArray::clone_from_slice(&challenge);
        aes.encrypt_block(&mut expected);
        let ok = answer.len() == 22
            && answer[..4] == [0x7C, 0x12, 0x82, 0x10]
            && answer[4..20] == expected[..]
            && answer[20..] == [0x90, 0x00];
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

/// The certificate DER in a certificate object (`70`), as GET DATA returns
/// it; `None` for an empty object or one without a certificate.
pub fn cert_from_object(data: &[u8]) -> Result<Option<Vec<u8>>, TokenError> {
    if data.is_empty() {
        return Ok(None);
    }
    let tlvs = tlv::parse(data).map_err(|e| TokenError::malformed("PIV GET DATA", e))?;
    Ok(tlv::find(&tlvs, TAG_CERT).map(<[u8]>::to_vec))
}

/// A slot certificate of YubiKey `serial`: its P-256 key, the policies
/// recorded in Yubico's policy extension, and its common name.
pub fn parse_slot_certificate(
    serial: u32,
    slot: u8,
    der: Vec<u8>,
) -> Result<SlotCertificate, PivError> {
    let cert = Certificate::from_der(&der).map_err(|_| PivError::Card {
        serial,
        op: "parse the slot certificate",
        err: yubikey::Error::InvalidObject,
    })?;
    let tbs = &cert.tbs_certificate;
    let public_key =
        p256_of(&tbs.subject_public_key_info).ok_or(PivError::NotP256 { serial, slot })?;
    let policy = extension(&cert, OID_POLICY);
    let pin_policy = policy
        .and_then(|p| p.first().copied())
        .and_then(PinPolicy::from_code);
    let touch_policy = policy
        .and_then(|p| p.get(1).copied())
        .and_then(TouchPolicy::from_code);
    Ok(SlotCertificate {
        public_key,
        pin_policy,
        touch_policy,
        common_name: common_name(&tbs.subject),
        der,
    })
}

/// The certificate in the F9 object (the card's attestation key's).
fn f9_certificate(f9_object: &[u8]) -> Result<Certificate, String> {
    let der = tlv::parse(f9_object)
        .ok()
        .and_then(|t| tlv::find(&t, TAG_CERT).map(<[u8]>::to_vec))
        .ok_or_else(|| "the F9 certificate object is malformed".to_string())?;
    Certificate::from_der(&der).map_err(|e| format!("F9 certificate: {e}"))
}

/// Checks what a card answered for the attestation of `slot`: `leaf_der`
/// (the ATTEST answer) must be signed by the certificate in `f9_object`
/// (the F9 object), which one of `roots` must have signed; it must attest
/// `slot_key` and YubiKey `serial`.
pub fn check_attestation(
    serial: u32,
    slot: u8,
    slot_key: &p256::PublicKey,
    leaf_der: &[u8],
    f9_object: &[u8],
    roots: &TrustedRoots,
) -> Result<AttestationReport, PivError> {
    let fail = |reason: String| PivError::Attestation {
        serial,
        slot,
        reason,
    };
    let f9 = f9_certificate(f9_object).map_err(fail)?;
    let leaf = Certificate::from_der(leaf_der)
        .map_err(|e| fail(format!("attestation certificate: {e}")))?;

    let root = roots
        .verify(&leaf, &f9, SystemTime::now())
        .map_err(fail)?
        .root()
        .to_string();

    let attested = p256_of(&leaf.tbs_certificate.subject_public_key_info)
        .ok_or_else(|| fail("the attested key is not P-256".into()))?;
    if attested != *slot_key {
        return Err(fail("the attested key is not the key in the slot".into()));
    }
    let attested_serial = extension(&leaf, OID_SERIAL)
        .and_then(|v| u32::from_der(v).ok())
        .ok_or_else(|| fail("no serial number extension".into()))?;
    if attested_serial != serial {
        return Err(fail(format!(
            "it attests serial {attested_serial}, not {serial}"
        )));
    }
    let firmware = extension(&leaf, OID_FIRMWARE)
        .and_then(|v| <[u8; 3]>::try_from(v).ok())
        .map(Version)
        .ok_or_else(|| fail("no firmware version extension".into()))?;
    let policy = extension(&leaf, OID_POLICY).ok_or_else(|| fail("no policy extension".into()))?;
    let pin_policy = policy
        .first()
        .copied()
        .and_then(PinPolicy::from_code)
        .ok_or_else(|| fail("unknown PIN policy".into()))?;
    let touch_policy = policy
        .get(1)
        .copied()
        .and_then(TouchPolicy::from_code)
        .ok_or_else(|| fail("unknown touch policy".into()))?;
    let form_factor = extension(&leaf, OID_FORM_FACTOR).and_then(|v| v.first().copied());
    Ok(AttestationReport {
        serial,
        slot,
        firmware,
        public_key: attested,
        pin_policy,
        touch_policy,
        form_factor,
        root,
    })
}

fn p256_of(spki: &SubjectPublicKeyInfoOwned) -> Option<p256::PublicKey> {
    let bytes = spki.subject_public_key.as_bytes()?;
    p256::PublicKey::from_sec1_bytes(bytes).ok()
}

fn spki_of(public_key: &p256::PublicKey) -> Result<SubjectPublicKeyInfoOwned, String> {
    use p256::pkcs8::EncodePublicKey;
    let der = public_key.to_public_key_der().map_err(|e| e.to_string())?;
    SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).map_err(|e| e.to_string())
}

/// From a day ago (a clock slightly behind still accepts it) to
/// 9999-12-31, RFC 5280's "no well-defined expiration": the certificate
/// only carries the key and its policies.
fn open_ended_validity() -> der::Result<x509_cert::time::Validity> {
    use x509_cert::time::Time;
    let start = SystemTime::now()
        .checked_sub(Duration::from_secs(86_400))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let end =
        der::asn1::GeneralizedTime::from_date_time(der::DateTime::new(9999, 12, 31, 23, 59, 59)?);
    Ok(x509_cert::time::Validity {
        not_before: Time::try_from(start)?,
        not_after: Time::GeneralTime(end),
    })
}

fn random_serial() -> der::Result<x509_cert::serial_number::SerialNumber> {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    // Positive and without a leading zero octet, as RFC 5280 wants.
    bytes[0] = (bytes[0] & 0x7F) | 0x40;
    x509_cert::serial_number::SerialNumber::new(&bytes)
}

/// Yubico's policy extension as age-plugin-yubikey writes it: the raw PIN
/// and touch policy bytes as the extension value, the same as attestation
/// certificates carry.
struct PolicyExtension([u8; 2]);

impl der::oid::AssociatedOid for PolicyExtension {
    const OID: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap(OID_POLICY);
}

impl der::Encode for PolicyExtension {
    fn encoded_len(&self) -> der::Result<der::Length> {
        der::Length::try_from(self.0.len())
    }
    fn encode(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        writer.write(&self.0)
    }
}

impl x509_cert::ext::AsExtension for PolicyExtension {
    fn critical(&self, _: &x509_cert::name::Name, _: &[x509_cert::ext::Extension]) -> bool {
        false
    }
}

fn extension<'a>(cert: &'a Certificate, oid: &str) -> Option<&'a [u8]> {
    let oid = der::oid::ObjectIdentifier::new(oid).ok()?;
    cert.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == oid)
        .map(|e| e.extn_value.as_bytes())
}

fn common_name(name: &x509_cert::name::Name) -> Option<String> {
    let cn = der::oid::ObjectIdentifier::new(OID_COMMON_NAME).ok()?;
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == cn)
        .and_then(|atv| {
            der::asn1::Utf8StringRef::try_from(&atv.value)
                .map(|s| s.as_str().to_string())
                .or_else(|_| {
                    der::asn1::PrintableStringRef::try_from(&atv.value)
                        .map(|s| s.as_str().to_string())
                })
                .ok()
        })
}

// -------------------------------------------------------------- unwrapping

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_round_trip_through_codes_and_names() {
        for p in [PinPolicy::Never, PinPolicy::Once, PinPolicy::Always] {
            assert_eq!(PinPolicy::from_code(p.code()), Some(p));
            assert_eq!(p.as_str().parse::<PinPolicy>(), Ok(p));
            assert_eq!(PinPolicy::from_yk(p.to_yk()), Some(p));
        }
        for t in [TouchPolicy::Never, TouchPolicy::Always, TouchPolicy::Cached] {
            assert_eq!(TouchPolicy::from_code(t.code()), Some(t));
            assert_eq!(t.as_str().parse::<TouchPolicy>(), Ok(t));
            assert_eq!(TouchPolicy::from_yk(t.to_yk()), Some(t));
        }
        assert_eq!(PinPolicy::from_code(0), None);
        assert!("sometimes".parse::<TouchPolicy>().is_err());
    }

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

    #[test]
    fn policy_extension_is_the_two_raw_bytes() {
        use x509_cert::ext::AsExtension;
        let name =
            x509_cert::name::Name::from_str("CN=vault P-256 slot 82 pin=once touch=always,O=vault")
                .unwrap();
        let ext = PolicyExtension([2, 2]).to_extension(&name, &[]).unwrap();
        assert_eq!(ext.extn_id.to_string(), OID_POLICY);
        assert_eq!(ext.extn_value.as_bytes(), [2, 2]);
        assert!(!ext.critical);
        assert_eq!(
            common_name(&name).as_deref(),
            Some("vault P-256 slot 82 pin=once touch=always")
        );
    }
}
