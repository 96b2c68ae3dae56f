//! What every applet shares: finding a YubiKey by serial through PC/SC,
//! holding it politely, sending short APDUs and reading TLV answers.
//!
//! Layers, from the top: [`find_by_serial`] gives a [`Connected`] card (the
//! session); [`Connected::transaction`] gives exclusive use of it while an
//! applet is selected (the transaction); [`Transaction::transmit`] sends one
//! command, chaining and following `61xx` (APDU); [`tlv`] reads and writes
//! the BER-TLV inside (TLV).
//!
//! Card rules kept here, once, for every applet:
//! - T=1 only, shared mode: other programs (ykman, gpg) may use the key too.
//! - A `pcsc::Card` dropped without `disconnect` **resets** the card
//!   (pcsc's `Drop` hard-codes `ResetCard`), which loses the PIV PIN and
//!   touch state; [`Connected`] always disconnects with `LeaveCard`.
//! - Short APDUs only: Lc whenever there is data, data over 255 bytes sent
//!   as a chain (CLA `0x10` on all but the last part), a receive buffer of
//!   256 data bytes plus the status word, and `61xx` followed by GET
//!   RESPONSE (PIV) or SEND REMAINING (OATH).

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The Management applet: DeviceInfo (serial, firmware) without touching
/// PIV or OATH state.
pub const MANAGEMENT_AID: &[u8] = &[0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17];
/// PIV, as the yubikey crate selects it (a prefix of the full AID).
pub const PIV_AID: &[u8] = &[0xA0, 0x00, 0x00, 0x03, 0x08];

const INS_SELECT: u8 = 0xA4;
const INS_READ_CONFIG: u8 = 0x1D;
const INS_PIV_GET_VERSION: u8 = 0xFD;
const INS_PIV_GET_SERIAL: u8 = 0xF8;
/// DeviceInfo tags (yubikit `TAG_SERIAL`, `TAG_FIRMWARE_VERSION`).
const DEVICE_INFO_SERIAL: u32 = 0x02;
const DEVICE_INFO_VERSION: u32 = 0x05;

/// 256 data bytes and the status word: the most a short answer carries.
pub const RECV_BUF: usize = 256 + 2;
/// The most data one short command carries; more is chained.
const CHUNK: usize = 255;
/// Bounds a `61xx` chain, so a confused card cannot keep us reading: at
/// most this many bytes, in at most `MAX_FOLLOW_UPS` parts (a card that
/// answers `61xx` with no data would otherwise never be done).
const MAX_RESPONSE: usize = 64 * 1024;
const MAX_FOLLOW_UPS: usize = MAX_RESPONSE / 64;
/// How often to look again when pcscd cannot wait for changes itself.
const POLL: Duration = Duration::from_millis(250);
/// How long pcscd may take to notice a card is gone (it polls readers,
/// about every 0.35 s with vpcd).
const REMOVAL_GRACE: Duration = Duration::from_secs(1);

// ------------------------------------------------------------------ errors

/// Everything that can go wrong between vault and a YubiKey. Each variant
/// says what happened; [`TokenError::hint`] says what to do about it. No
/// variant carries secret material (PINs, passwords, codes, key bytes).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot reach the smart card service (pcscd): {0}")]
    PcscUnavailable(pcsc::Error),
    #[error("no YubiKey with serial {serial} found{}", waited_for(*.waited))]
    NotFound {
        serial: u32,
        waited: Duration,
        /// Serials of the YubiKeys that were there instead.
        seen: Vec<u32>,
        /// Readers whose card another program held exclusively.
        busy: Vec<String>,
    },
    #[error("the YubiKey in {reader:?} is held exclusively by another program")]
    Busy { reader: String },
    #[error("{} was removed (or reset) during the operation", key_name(*.serial))]
    Removed { serial: Option<u32> },
    #[error("no touch within the timeout: touch your YubiKey when it blinks")]
    TouchTimeout { serial: Option<u32> },
    #[error("no OATH credential named {0:?} on the YubiKey")]
    NoSuchCredential(String),
    #[error("the OATH applet of {} is password-protected", key_name(*.serial))]
    OathPasswordRequired { serial: Option<u32> },
    #[error("wrong OATH password for {}", key_name(*.serial))]
    OathWrongPassword { serial: Option<u32> },
    #[error("{} accepted the OATH password but answered vault's challenge wrongly", key_name(*.serial))]
    OathCardAuthFailed { serial: Option<u32> },
    #[error("the OATH applet is full: no space for another credential")]
    NoSpace,
    #[error("{} has no {applet} applet, or it is disabled", key_name(*.serial))]
    NoApplet {
        applet: &'static str,
        serial: Option<u32>,
    },
    #[error("invalid OATH credential: {0}")]
    InvalidCredential(String),
    #[error("the YubiKey answered {sw} to {op}")]
    Status { op: &'static str, sw: Sw },
    #[error("the YubiKey's answer to {op} is malformed: {what}")]
    Malformed {
        op: &'static str,
        what: &'static str,
    },
    #[error("smart card error during {op}: {err}")]
    Pcsc { op: &'static str, err: pcsc::Error },
}

fn key_name(serial: Option<u32>) -> String {
    match serial {
        Some(s) => format!("the YubiKey (serial {s})"),
        None => "the YubiKey".to_string(),
    }
}

fn waited_for(waited: Duration) -> String {
    if waited.is_zero() {
        String::new()
    } else {
        format!(" (waited {:.1} s)", waited.as_secs_f64())
    }
}

/// The OS-specific way to get the smart card service running.
fn pcscd_fix() -> &'static str {
    if cfg!(target_os = "linux") {
        "vault reaches YubiKeys through pcscd: install and start it \
         (Debian/Ubuntu: `sudo apt install pcscd` and `systemctl enable --now pcscd.socket`; \
         Fedora: `sudo dnf install pcsc-lite && sudo systemctl enable --now pcscd.socket`; \
         Arch: `sudo pacman -S pcsclite ccid && sudo systemctl enable --now pcscd.socket`)"
    } else if cfg!(target_os = "macos") {
        "the smart card service is part of macOS: unplug the YubiKey, plug it \
         back in, and try again"
    } else {
        "start the Smart Card service (`sc start SCardSvr`), then try again"
    }
}

impl vault_base::error::Hinted for TokenError {
    fn hint(&self) -> Option<String> {
        TokenError::hint(self)
    }
}

impl TokenError {
    /// What to do next, for the user.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            TokenError::PcscUnavailable(_) => pcscd_fix().to_string(),
            TokenError::NotFound {
                serial, seen, busy, ..
            } => {
                let mut h = format!("insert YubiKey {serial}");
                if !seen.is_empty() {
                    let seen: Vec<String> = seen.iter().map(u32::to_string).collect();
                    h.push_str(&format!(" (vault sees only {})", seen.join(", ")));
                }
                if !busy.is_empty() {
                    h.push_str(&format!(
                        "; another program holds {} exclusively (often GnuPG: \
                         `gpgconf --kill scdaemon`)",
                        busy.join(", ")
                    ));
                }
                h.push_str("; `vault hw status` lists the keys vault can see");
                h
            }
            TokenError::Busy { .. } => "another program holds the key exclusively, \
                 often GnuPG's scdaemon: run `gpgconf --kill scdaemon` and try again"
                .to_string(),
            TokenError::Removed { serial } => match serial {
                Some(s) => format!("re-insert YubiKey {s} and run the command again"),
                None => "re-insert the YubiKey and run the command again".to_string(),
            },
            TokenError::TouchTimeout { .. } => "run the command again and touch the \
                 YubiKey's contact while it blinks (it waits about 15 s)"
                .to_string(),
            TokenError::NoSuchCredential(_) => {
                "`ykman oath accounts list` shows the credentials on the key".to_string()
            }
            TokenError::OathPasswordRequired { .. } => "give vault the OATH password \
                 (the one set with `ykman oath access change`)"
                .to_string(),
            TokenError::OathWrongPassword { .. } => "check the OATH password: it is the \
                 one set with `ykman oath access change`"
                .to_string(),
            TokenError::OathCardAuthFailed { .. } => "this may not be the key you think: \
                 check its serial with `vault hw status`"
                .to_string(),
            TokenError::NoSpace => {
                "delete an unused credential: `ykman oath accounts delete NAME`".to_string()
            }
            TokenError::NoApplet { applet, .. } => {
                format!("enable it: `ykman config usb --enable {applet}`")
            }
            TokenError::Pcsc { .. } => {
                "unplug the YubiKey, plug it back in, and try again".to_string()
            }
            TokenError::InvalidCredential(_)
            | TokenError::Status { .. }
            | TokenError::Malformed { .. } => return None,
        })
    }

    /// Maps a PC/SC failure: a missing service and a missing card get their
    /// own variants, since the user fixes them differently.
    pub fn from_pcsc(err: pcsc::Error, op: &'static str, serial: Option<u32>) -> TokenError {
        match err {
            pcsc::Error::NoService | pcsc::Error::ServiceStopped | pcsc::Error::Shutdown => {
                TokenError::PcscUnavailable(err)
            }
            pcsc::Error::RemovedCard
            | pcsc::Error::ResetCard
            | pcsc::Error::NoSmartcard
            | pcsc::Error::UnpoweredCard
            | pcsc::Error::ReaderUnavailable => TokenError::Removed { serial },
            _ => TokenError::Pcsc { op, err },
        }
    }
}

// ------------------------------------------------------------ status words

/// A status word, with the meanings YubiKey applets give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sw {
    /// `9000`
    Ok,
    /// `61xx`: `xx` more bytes (0 = 256 or more) wait to be fetched.
    MoreData(u8),
    /// `63Cx`: wrong PIN/PUK, `x` tries left.
    TriesLeft(u8),
    /// `6700`
    WrongLength,
    /// `6982`: security status not satisfied (PIN or password missing), or
    /// a touch that did not come in time.
    SecurityStatus,
    /// `6983`: PIN or PUK blocked.
    Blocked,
    /// `6984`: reference data not usable; OATH: no such credential.
    NotFound,
    /// `6985`: conditions of use not satisfied (also a touch timeout).
    ConditionsNotSatisfied,
    /// `6A80`: wrong data (OATH: also a wrong password).
    BadData,
    /// `6A82`: file or applet not found.
    FileNotFound,
    /// `6A84`: not enough space.
    NoSpace,
    /// `6A86`: wrong P1/P2.
    WrongP1P2,
    /// `6A88`: referenced data not found.
    RefNotFound,
    /// `6D00`: instruction not supported.
    InsNotSupported,
    /// `6E00`: class not supported.
    ClaNotSupported,
    Other(u16),
}

impl Sw {
    pub fn from_u16(sw: u16) -> Sw {
        match sw {
            0x9000 => Sw::Ok,
            0x6700 => Sw::WrongLength,
            0x6982 => Sw::SecurityStatus,
            0x6983 => Sw::Blocked,
            0x6984 => Sw::NotFound,
            0x6985 => Sw::ConditionsNotSatisfied,
            0x6A80 => Sw::BadData,
            0x6A82 => Sw::FileNotFound,
            0x6A84 => Sw::NoSpace,
            0x6A86 => Sw::WrongP1P2,
            0x6A88 => Sw::RefNotFound,
            0x6D00 => Sw::InsNotSupported,
            0x6E00 => Sw::ClaNotSupported,
            _ if sw >> 8 == 0x61 => Sw::MoreData(sw as u8),
            _ if sw & 0xFFF0 == 0x63C0 => Sw::TriesLeft((sw & 0x0F) as u8),
            _ => Sw::Other(sw),
        }
    }

    pub fn code(self) -> u16 {
        match self {
            Sw::Ok => 0x9000,
            Sw::MoreData(n) => 0x6100 | n as u16,
            Sw::TriesLeft(n) => 0x63C0 | (n & 0x0F) as u16,
            Sw::WrongLength => 0x6700,
            Sw::SecurityStatus => 0x6982,
            Sw::Blocked => 0x6983,
            Sw::NotFound => 0x6984,
            Sw::ConditionsNotSatisfied => 0x6985,
            Sw::BadData => 0x6A80,
            Sw::FileNotFound => 0x6A82,
            Sw::NoSpace => 0x6A84,
            Sw::WrongP1P2 => 0x6A86,
            Sw::RefNotFound => 0x6A88,
            Sw::InsNotSupported => 0x6D00,
            Sw::ClaNotSupported => 0x6E00,
            Sw::Other(sw) => sw,
        }
    }

    pub fn meaning(self) -> &'static str {
        match self {
            Sw::Ok => "success",
            Sw::MoreData(_) => "more data available",
            Sw::TriesLeft(_) => "verification failed",
            Sw::WrongLength => "wrong length",
            Sw::SecurityStatus => "security status not satisfied (PIN, password or touch)",
            Sw::Blocked => "blocked",
            Sw::NotFound => "not found",
            Sw::ConditionsNotSatisfied => "conditions of use not satisfied",
            Sw::BadData => "wrong data",
            Sw::FileNotFound => "applet or file not found",
            Sw::NoSpace => "no space left",
            Sw::WrongP1P2 => "wrong parameters",
            Sw::RefNotFound => "referenced data not found",
            Sw::InsNotSupported => "instruction not supported",
            Sw::ClaNotSupported => "class not supported",
            Sw::Other(_) => "unexpected status",
        }
    }
}

impl fmt::Display for Sw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sw::TriesLeft(n) => write!(f, "{:04X} ({n} tries left)", self.code()),
            _ => write!(f, "{:04X} ({})", self.code(), self.meaning()),
        }
    }
}

// ---------------------------------------------------------------- BER-TLV

/// BER-TLV as YubiKey applets use it: one- to three-byte tags, lengths in
/// short form or `81`/`82`/`83`. Parsing never panics: a malformed answer
/// is an error naming what was wrong.
pub mod tlv {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Tlv<'a> {
        pub tag: u32,
        pub value: &'a [u8],
    }

    /// What was wrong with the bytes (never the bytes themselves).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Malformed(pub &'static str);

    /// Reads one TLV from the front of `data`; returns it and the rest.
    pub fn parse_one(data: &[u8]) -> Result<(Tlv<'_>, &[u8]), Malformed> {
        let (&first, mut rest) = data.split_first().ok_or(Malformed("missing tag"))?;
        let mut tag = first as u32;
        if first & 0x1F == 0x1F {
            // Subsequent tag bytes while bit 8 is set; three bytes at most.
            loop {
                let (&b, r) = rest.split_first().ok_or(Malformed("truncated tag"))?;
                rest = r;
                if tag > 0xFFFF {
                    return Err(Malformed("tag longer than 3 bytes"));
                }
                tag = tag << 8 | b as u32;
                if b & 0x80 == 0 {
                    break;
                }
            }
        }
        let (&l, r) = rest.split_first().ok_or(Malformed("missing length"))?;
        rest = r;
        let len = match l {
            n if n < 0x80 => n as usize,
            0x81..=0x83 => {
                let k = (l & 0x7F) as usize;
                if rest.len() < k {
                    return Err(Malformed("truncated length"));
                }
                let (bytes, r) = rest.split_at(k);
                rest = r;
                bytes.iter().fold(0usize, |n, &b| n << 8 | b as usize)
            }
            _ => return Err(Malformed("unsupported length encoding")),
        };
        if rest.len() < len {
            return Err(Malformed("value longer than the data"));
        }
        let (value, rest) = rest.split_at(len);
        Ok((Tlv { tag, value }, rest))
    }

    /// Reads a sequence of TLVs that fills `data` exactly.
    pub fn parse(mut data: &[u8]) -> Result<Vec<Tlv<'_>>, Malformed> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let (tlv, rest) = parse_one(data)?;
            out.push(tlv);
            data = rest;
        }
        Ok(out)
    }

    /// The value of the first TLV with `tag`.
    pub fn find<'a>(tlvs: &[Tlv<'a>], tag: u32) -> Option<&'a [u8]> {
        tlvs.iter().find(|t| t.tag == tag).map(|t| t.value)
    }

    /// Appends tag, length and value to `out`.
    pub fn put(out: &mut Vec<u8>, tag: u32, value: &[u8]) {
        let tag_bytes = tag.to_be_bytes();
        let skip = tag_bytes.iter().take_while(|&&b| b == 0).count().min(3);
        out.extend_from_slice(&tag_bytes[skip..]);
        let n = value.len();
        match n {
            0..=0x7F => out.push(n as u8),
            0x80..=0xFF => out.extend_from_slice(&[0x81, n as u8]),
            0x100..=0xFFFF => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
            _ => out.extend_from_slice(&[0x83, (n >> 16) as u8, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(value);
    }

    pub fn encode(tag: u32, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(value.len() + 6);
        put(&mut out, tag, value);
        out
    }
}

impl TokenError {
    pub fn malformed(op: &'static str, e: tlv::Malformed) -> TokenError {
        TokenError::Malformed { op, what: e.0 }
    }
}

// ------------------------------------------------------------------- APDUs

/// A command APDU. `op` names it in errors and debug logs; the data never
/// appears in either, and is zeroized on drop (it may hold a key).
pub struct Apdu {
    pub op: &'static str,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: Zeroizing<Vec<u8>>,
    /// `Some(0)` adds an Le byte of `00` (up to 256 bytes expected), as the
    /// yubikey crate sends `00 FD 00 00 00`.
    pub le: Option<u8>,
}

impl Apdu {
    pub fn new(op: &'static str, ins: u8, p1: u8, p2: u8) -> Apdu {
        Apdu {
            op,
            ins,
            p1,
            p2,
            data: Zeroizing::new(Vec::new()),
            le: None,
        }
    }

    pub fn data(mut self, data: Zeroizing<Vec<u8>>) -> Apdu {
        self.data = data;
        self
    }

    pub fn le(mut self, le: u8) -> Apdu {
        self.le = Some(le);
        self
    }

    /// The short APDUs that carry this command: one, or a chain with CLA
    /// `0x10` on every part but the last.
    pub fn encode(&self) -> Vec<Zeroizing<Vec<u8>>> {
        let header = |cla: u8, part: &[u8], le: Option<u8>| {
            let mut raw = Zeroizing::new(Vec::with_capacity(part.len() + 6));
            raw.extend_from_slice(&[cla, self.ins, self.p1, self.p2]);
            if !part.is_empty() {
                raw.push(part.len() as u8);
                raw.extend_from_slice(part);
            }
            if let Some(le) = le {
                raw.push(le);
            }
            raw
        };
        if self.data.len() <= CHUNK {
            return vec![header(0x00, &self.data, self.le)];
        }
        let parts: Vec<&[u8]> = self.data.chunks(CHUNK).collect();
        let last = parts.len() - 1;
        parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                if i == last {
                    header(0x00, part, self.le)
                } else {
                    header(0x10, part, None)
                }
            })
            .collect()
    }
}

/// How an applet hands out the rest of a long answer after `61xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoreData {
    /// GET RESPONSE `00 C0 00 00 00` (ISO; PIV, Management).
    GetResponse,
    /// SEND REMAINING `00 A5 00 00 00` (YKOATH).
    SendRemaining,
}

impl MoreData {
    fn ins(self) -> u8 {
        match self {
            MoreData::GetResponse => 0xC0,
            MoreData::SendRemaining => 0xA5,
        }
    }
}

/// A whole answer (all `61xx` parts joined) and its final status word.
pub struct Response {
    pub data: Zeroizing<Vec<u8>>,
    pub sw: Sw,
}

impl Response {
    /// The data when the status is `9000`; otherwise a generic error.
    /// Applets match on `sw` first where a status word means something
    /// particular to them.
    pub fn ok(self, op: &'static str) -> Result<Zeroizing<Vec<u8>>, TokenError> {
        match self.sw {
            Sw::Ok => Ok(self.data),
            sw => Err(TokenError::Status { op, sw }),
        }
    }
}

/// Splits a card's answer into its data and status word; `None` when it is
/// shorter than a status word.
pub fn split_answer(answer: &[u8]) -> Option<(&[u8], Sw)> {
    let split = answer.len().checked_sub(2)?;
    let (data, sw) = answer.split_at(split);
    Some((data, Sw::from_u16(u16::from_be_bytes([sw[0], sw[1]]))))
}

/// [`Transaction::transmit`] without the card: `exchange` sends one short
/// APDU and leaves the answer's data at the front of the buffer, returning
/// its length and the status word. Chained parts must each be accepted
/// with `9000`; `61xx` is followed with `more` until the card has nothing
/// left, within bounds, so a confused card cannot keep vault reading.
pub fn transmit_with(
    apdu: &Apdu,
    more: MoreData,
    mut exchange: impl FnMut(&[u8], &mut [u8; RECV_BUF]) -> Result<(usize, Sw), TokenError>,
) -> Result<Response, TokenError> {
    let mut buf = Zeroizing::new([0u8; RECV_BUF]);
    let mut data = Zeroizing::new(Vec::with_capacity(RECV_BUF));
    let parts = apdu.encode();
    let mut sw = Sw::Ok;
    for (i, part) in parts.iter().enumerate() {
        let (len, s) = exchange(part, &mut buf)?;
        sw = s;
        if i + 1 < parts.len() {
            if sw != Sw::Ok {
                log::debug!(target: "vault", "{}: chained part {i} refused: {sw}", apdu.op);
                return Ok(Response { data, sw });
            }
        } else {
            data.extend_from_slice(&buf[..len]);
        }
    }
    let follow = [0x00, more.ins(), 0x00, 0x00, 0x00];
    let mut follow_ups = 0;
    while let Sw::MoreData(_) = sw {
        follow_ups += 1;
        if data.len() > MAX_RESPONSE || follow_ups > MAX_FOLLOW_UPS {
            return Err(TokenError::Malformed {
                op: apdu.op,
                what: "the answer never ends",
            });
        }
        let (len, s) = exchange(&follow, &mut buf)?;
        let answer = &buf[..len];
        // Grow by doubling into a fresh zeroizing buffer, so no copy of
        // the answer is left behind in freed memory.
        if data.len() + answer.len() > data.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(2 * (data.len() + answer.len())));
            bigger.extend_from_slice(&data);
            data = bigger;
        }
        data.extend_from_slice(answer);
        sw = s;
    }
    log::trace!(target: "vault", "{}: {sw}, {} bytes", apdu.op, data.len());
    Ok(Response { data, sw })
}

// ------------------------------------------------------------------- cards

/// A YubiKey's firmware version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub [u8; 3]);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c] = self.0;
        write!(f, "{a}.{b}.{c}")
    }
}

impl Version {
    fn from_slice(v: &[u8]) -> Option<Version> {
        <[u8; 3]>::try_from(v).ok().map(Version)
    }
}

/// What `vault hw status` shows of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub reader: String,
    /// `None` when the key hides it (and PIV does not tell either).
    pub serial: Option<u32>,
    pub version: Option<Version>,
}

/// A YubiKey connected in shared mode over T=1. Dropping it disconnects
/// with `LeaveCard`, so PIN and touch state survive for the next program.
pub struct Connected {
    card: Option<pcsc::Card>,
    info: KeyInfo,
}

impl Connected {
    /// Connects to the card in `reader` and identifies it (serial, version)
    /// through the Management applet, or PIV where that is absent. With
    /// `insertion` (pcscd's event count of the reader, read before this
    /// call), a card this process already identified in that insertion is
    /// not asked again, and one identified now is remembered.
    pub fn open(
        ctx: &pcsc::Context,
        reader: &CStr,
        insertion: Option<u32>,
    ) -> Result<Connected, TokenError> {
        let name = reader.to_string_lossy().into_owned();
        let card = ctx
            .connect(reader, pcsc::ShareMode::Shared, pcsc::Protocols::T1)
            .map_err(|e| match e {
                pcsc::Error::SharingViolation => TokenError::Busy {
                    reader: name.clone(),
                },
                e => TokenError::from_pcsc(e, "connecting", None),
            })?;
        let mut conn = Connected {
            card: Some(card),
            info: KeyInfo {
                reader: name,
                serial: None,
                version: None,
            },
        };
        let known = insertion.and_then(|n| identified(reader, n));
        let (serial, version) = match known {
            Some((serial, version)) => (Some(serial), version),
            None => {
                let tx = conn.transaction()?;
                identify(&tx)?
            }
        };
        if let (Some(n), Some(s), None) = (insertion, serial, known) {
            remember_identity(reader, n, s, version);
        }
        conn.info.serial = serial;
        conn.info.version = version;
        Ok(conn)
    }

    pub fn info(&self) -> &KeyInfo {
        &self.info
    }

    pub fn serial(&self) -> Option<u32> {
        self.info.serial
    }

    /// Exclusive use of the card until the transaction is dropped (ended
    /// with `LeaveCard`): no other program can select another applet in
    /// the middle of ours.
    pub fn transaction(&mut self) -> Result<Transaction<'_>, TokenError> {
        let serial = self.info.serial;
        let card = self.card.as_mut().ok_or(TokenError::Removed { serial })?;
        match card.transaction2() {
            Ok(tx) => Ok(Transaction { tx, serial }),
            // Another program reset the card since we connected: our handle
            // must acknowledge that before it can be used again.
            Err((card, pcsc::Error::ResetCard)) => {
                log::debug!(target: "vault", "card was reset by another program; reconnecting");
                card.reconnect(
                    pcsc::ShareMode::Shared,
                    pcsc::Protocols::T1,
                    pcsc::Disposition::LeaveCard,
                )
                .map_err(|e| TokenError::from_pcsc(e, "reconnecting", serial))?;
                let tx = card
                    .transaction()
                    .map_err(|e| TokenError::from_pcsc(e, "beginning a transaction", serial))?;
                Ok(Transaction { tx, serial })
            }
            Err((_, e)) => Err(TokenError::from_pcsc(e, "beginning a transaction", serial)),
        }
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        if let Some(card) = self.card.take() {
            if let Err((card, e)) = card.disconnect(pcsc::Disposition::LeaveCard) {
                log::debug!(target: "vault", "disconnecting from {:?}: {e}", self.info.reader);
                // Dropping it would reset the card; leaking the handle does
                // not, and pcscd frees it when this process exits.
                std::mem::forget(card);
            }
        }
    }
}

/// A PC/SC transaction on a connected card: where APDUs are sent.
pub struct Transaction<'a> {
    tx: pcsc::Transaction<'a>,
    serial: Option<u32>,
}

impl Transaction<'_> {
    pub fn serial(&self) -> Option<u32> {
        self.serial
    }

    /// Sends `apdu` and returns the whole answer: a chained command's parts
    /// must each be accepted with `9000`, and `61xx` is followed with
    /// `more` until the card has nothing left.
    pub fn transmit(&self, apdu: &Apdu, more: MoreData) -> Result<Response, TokenError> {
        transmit_with(apdu, more, |raw, buf| {
            self.exchange(apdu.op, raw, buf)
                .map(|(data, sw)| (data.len(), sw))
        })
    }

    /// One short APDU out, one answer back, split into data and status.
    fn exchange<'b>(
        &self,
        op: &'static str,
        raw: &[u8],
        buf: &'b mut [u8; RECV_BUF],
    ) -> Result<(&'b [u8], Sw), TokenError> {
        let answer = match self.tx.transmit(raw, &mut buf[..]) {
            Ok(a) => a,
            Err(e) => return Err(self.transmit_error(e, op)),
        };
        let Some((data, sw)) = split_answer(answer) else {
            // pcscd hands back an empty answer when the reader lost the card
            // mid-command (vpcd does when a key is pulled).
            if self.card_gone() {
                return Err(TokenError::Removed {
                    serial: self.serial,
                });
            }
            return Err(TokenError::Malformed {
                op,
                what: "answer shorter than a status word",
            });
        };
        Ok((data, sw))
    }

    /// A failed transmit: when the card is gone that is what the user must
    /// hear, whichever error pcscd chose to report it with (a key pulled
    /// mid-command tends to come back as a communication error).
    fn transmit_error(&self, e: pcsc::Error, op: &'static str) -> TokenError {
        let err = TokenError::from_pcsc(e, op, self.serial);
        if let TokenError::Pcsc { .. } = err {
            if self.card_gone() {
                return TokenError::Removed {
                    serial: self.serial,
                };
            }
        }
        err
    }

    /// Whether the card left the reader (or was reset), after giving
    /// pcscd, which notices removals by polling, a moment to see it.
    fn card_gone(&self) -> bool {
        let deadline = Instant::now() + REMOVAL_GRACE;
        loop {
            match self.tx.status2_owned() {
                Ok(st) if st.status().contains(pcsc::Status::PRESENT) => {}
                _ => return true,
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SELECT by AID.
    pub fn select(
        &self,
        op: &'static str,
        aid: &[u8],
        more: MoreData,
    ) -> Result<Response, TokenError> {
        let apdu = Apdu::new(op, INS_SELECT, 0x04, 0x00).data(Zeroizing::new(aid.to_vec()));
        self.transmit(&apdu, more)
    }
}

/// The card's serial and firmware version, read without touching PIV or
/// OATH state beyond selecting another applet: Management's DeviceInfo,
/// or PIV's GET VERSION / GET SERIAL where Management is absent or hides
/// the serial.
fn identify(tx: &Transaction<'_>) -> Result<(Option<u32>, Option<Version>), TokenError> {
    const OP: &str = "Management READ CONFIG";
    let mut serial = None;
    let mut version = None;
    if tx
        .select("Management SELECT", MANAGEMENT_AID, MoreData::GetResponse)?
        .sw
        == Sw::Ok
    {
        let read = Apdu::new(OP, INS_READ_CONFIG, 0, 0).le(0);
        let resp = tx.transmit(&read, MoreData::GetResponse)?;
        if resp.sw == Sw::Ok {
            let (s, v) = parse_device_info(&resp.data).map_err(|e| TokenError::malformed(OP, e))?;
            serial = s;
            version = v;
        }
    }
    if serial.is_some() {
        return Ok((serial, version));
    }
    if tx.select("PIV SELECT", PIV_AID, MoreData::GetResponse)?.sw == Sw::Ok {
        let get = Apdu::new("PIV GET VERSION", INS_PIV_GET_VERSION, 0, 0).le(0);
        let resp = tx.transmit(&get, MoreData::GetResponse)?;
        if resp.sw == Sw::Ok && version.is_none() {
            version = Version::from_slice(&resp.data);
        }
        let get = Apdu::new("PIV GET SERIAL", INS_PIV_GET_SERIAL, 0, 0).le(0);
        let resp = tx.transmit(&get, MoreData::GetResponse)?;
        if resp.sw == Sw::Ok {
            serial = <[u8; 4]>::try_from(&resp.data[..])
                .ok()
                .map(u32::from_be_bytes);
        }
    }
    Ok((serial, version))
}

/// DeviceInfo: one length byte, then TLVs (yubikit `DeviceInfo.parse`).
pub fn parse_device_info(data: &[u8]) -> Result<(Option<u32>, Option<Version>), tlv::Malformed> {
    let (&len, body) = data
        .split_first()
        .ok_or(tlv::Malformed("empty DeviceInfo"))?;
    let body = body
        .get(..len as usize)
        .ok_or(tlv::Malformed("DeviceInfo shorter than its length byte"))?;
    let tlvs = tlv::parse(body)?;
    let serial = match tlv::find(&tlvs, DEVICE_INFO_SERIAL) {
        None => None,
        Some(v) => Some(u32::from_be_bytes(
            <[u8; 4]>::try_from(v).map_err(|_| tlv::Malformed("serial is not 4 bytes"))?,
        )),
    };
    let version = tlv::find(&tlvs, DEVICE_INFO_VERSION).and_then(Version::from_slice);
    Ok((serial, version))
}

// ---------------------------------------------------------- identities

/// A card this process has identified, by reader and pcscd's event count
/// for that reader (which changes with every removal and insertion).
struct Identified {
    reader: CString,
    insertion: u32,
    serial: u32,
    version: Option<Version>,
}

/// What this process learned about the cards it asked: a cold `vault exec`
/// opens the same key for PIV and then for OATH, and the second opening
/// need not ask the Management applet again (2 APDUs).
static IDENTIFIED: Mutex<Vec<Identified>> = Mutex::new(Vec::new());

/// Records that the card in `reader` at event count `insertion` is YubiKey
/// `serial`. The count must be read *before* the card was asked: a card
/// swapped in between then has a newer count and never matches.
pub fn remember_identity(reader: &CStr, insertion: u32, serial: u32, version: Option<Version>) {
    if let Ok(mut list) = IDENTIFIED.lock() {
        list.retain(|k| k.reader.as_c_str() != reader);
        list.push(Identified {
            reader: reader.to_owned(),
            insertion,
            serial,
            version,
        });
    }
}

fn identified(reader: &CStr, insertion: u32) -> Option<(u32, Option<Version>)> {
    let list = IDENTIFIED.lock().ok()?;
    list.iter()
        .find(|k| k.reader.as_c_str() == reader && k.insertion == insertion)
        .map(|k| (k.serial, k.version))
}

/// pcscd's event count of each present reader in `readers` now, for
/// [`remember_identity`]; readers without a card are left out.
pub fn insertion_counts(ctx: &pcsc::Context, readers: &[CString]) -> Vec<(CString, u32)> {
    current_states(ctx, readers)
        .iter()
        .skip(1)
        .filter(|st| is_present(st))
        .map(|st| (st.name().to_owned(), st.event_count()))
        .collect()
}

// --------------------------------------------------------------- discovery

/// Establishes a user-scope PC/SC context, with the pcscd hint on failure.
pub fn establish() -> Result<pcsc::Context, TokenError> {
    pcsc::Context::establish(pcsc::Scope::User).map_err(TokenError::PcscUnavailable)
}

/// Whether a card is worth asking for its serial: only YubiKeys, known by
/// their ATR ("YubiKey" / "Yubikey" in the historical bytes) or their
/// reader's name over USB ("Yubico YubiKey ..."). Other cards (a bank card
/// in a laptop reader) never get an APDU from vault.
fn looks_like_yubikey(reader: &CStr, atr: &[u8]) -> bool {
    let contains = |hay: &[u8], needle: &[u8]| {
        hay.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    contains(atr, b"yubikey") || contains(reader.to_bytes(), b"yubico")
}

fn list_readers(ctx: &pcsc::Context) -> Result<Vec<CString>, TokenError> {
    match ctx.list_readers_owned() {
        Ok(r) => Ok(r),
        Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(e) => Err(TokenError::from_pcsc(e, "listing readers", None)),
    }
}

/// Reader states for `readers` plus the reader-arrival pseudo reader, all
/// filled in with their current state.
fn current_states(ctx: &pcsc::Context, readers: &[CString]) -> Vec<pcsc::ReaderState> {
    let mut states = vec![pcsc::ReaderState::new(
        pcsc::PNP_NOTIFICATION(),
        pcsc::State::UNAWARE,
    )];
    states.extend(
        readers
            .iter()
            .map(|r| pcsc::ReaderState::new(r.clone(), pcsc::State::UNAWARE)),
    );
    match ctx.get_status_change(Duration::ZERO, &mut states) {
        Ok(()) | Err(pcsc::Error::Timeout) => {}
        Err(e) => log::debug!(target: "vault", "reading reader states: {e}"),
    }
    states
}

fn is_present(st: &pcsc::ReaderState) -> bool {
    let s = st.event_state();
    s.contains(pcsc::State::PRESENT)
        && !s.intersects(pcsc::State::MUTE | pcsc::State::UNKNOWN | pcsc::State::IGNORE)
}

/// The YubiKey with `serial`, connected; waits up to `wait` for it to be
/// inserted (woken by pcscd on every reader or card change, not polling).
/// Other YubiKeys present are identified once per insertion and left alone.
pub fn find_by_serial(
    ctx: &pcsc::Context,
    serial: u32,
    wait: Duration,
) -> Result<Connected, TokenError> {
    let start = Instant::now();
    let deadline = start + wait;
    // Cards already identified, by reader and insertion count, so another
    // program's activity on them does not make us probe them again.
    let mut known: HashMap<(CString, u32), Option<u32>> = HashMap::new();
    let mut busy: Vec<String> = Vec::new();
    loop {
        let readers = list_readers(ctx)?;
        let mut states = current_states(ctx, &readers);
        busy.clear();
        for st in states.iter().skip(1) {
            if !is_present(st) || !looks_like_yubikey(st.name(), st.atr()) {
                continue;
            }
            let key = (st.name().to_owned(), st.event_count());
            if known.contains_key(&key) {
                continue;
            }
            match Connected::open(ctx, st.name(), Some(st.event_count())) {
                Ok(conn) if conn.serial() == Some(serial) => return Ok(conn),
                Ok(conn) => {
                    known.insert(key, conn.serial());
                }
                Err(TokenError::Busy { reader }) => busy.push(reader),
                Err(e @ TokenError::PcscUnavailable(_)) => return Err(e),
                Err(e) => {
                    log::debug!(target: "vault", "skipping {:?}: {e}", st.name());
                    known.insert(key, None);
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let mut seen: Vec<u32> = known.values().flatten().copied().collect();
            seen.sort_unstable();
            seen.dedup();
            return Err(TokenError::NotFound {
                serial,
                waited: wait,
                seen,
                busy,
            });
        }
        for st in &mut states {
            st.sync_current_state();
        }
        // Busy readers are retried on a timer: their release is no event.
        let nap = if busy.is_empty() {
            left
        } else {
            left.min(POLL)
        };
        match ctx.get_status_change(nap, &mut states) {
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(e @ (pcsc::Error::NoService | pcsc::Error::ServiceStopped)) => {
                return Err(TokenError::PcscUnavailable(e))
            }
            Err(e) => {
                // No reader-arrival support, or a reader vanished: look again
                // after a short nap.
                log::debug!(target: "vault", "waiting for a card: {e}");
                std::thread::sleep(left.min(POLL));
            }
        }
    }
}

/// Every YubiKey present now, for `vault hw status`. Keys that cannot be
/// asked (held exclusively by another program) are listed without serial.
pub fn list_keys(ctx: &pcsc::Context) -> Vec<KeyInfo> {
    let readers = match list_readers(ctx) {
        Ok(r) => r,
        Err(e) => {
            log::debug!(target: "vault", "listing readers: {e}");
            return Vec::new();
        }
    };
    let states = current_states(ctx, &readers);
    states
        .iter()
        .skip(1)
        .filter(|st| is_present(st) && looks_like_yubikey(st.name(), st.atr()))
        .map(
            |st| match Connected::open(ctx, st.name(), Some(st.event_count())) {
                Ok(conn) => conn.info().clone(),
                Err(e) => {
                    log::debug!(target: "vault", "identifying {:?}: {e}", st.name());
                    KeyInfo {
                        reader: st.name().to_string_lossy().into_owned(),
                        serial: None,
                        version: None,
                    }
                }
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A card that gives `answers` in turn, then the last one forever.
    fn card(
        answers: &[&[u8]],
    ) -> impl FnMut(&[u8], &mut [u8; RECV_BUF]) -> Result<(usize, Sw), TokenError> {
        let answers: Vec<Vec<u8>> = answers.iter().map(|a| a.to_vec()).collect();
        let mut next = 0;
        move |_, buf| {
            let answer = &answers[next.min(answers.len() - 1)];
            next += 1;
            let (data, sw) = split_answer(answer).ok_or(TokenError::Malformed {
                op: "TEST",
                what: "answer shorter than a status word",
            })?;
            buf[..data.len()].copy_from_slice(data);
            Ok((data.len(), sw))
        }
    }

    #[test]
    fn a_card_is_known_only_in_the_insertion_it_was_identified_in() {
        let reader = CString::new("Unit Test Reader 00 00").unwrap();
        let other = CString::new("Unit Test Reader 01 00").unwrap();
        assert_eq!(identified(&reader, 7), None);
        remember_identity(&reader, 7, 1234, Some(Version([5, 4, 3])));
        assert_eq!(
            identified(&reader, 7),
            Some((1234, Some(Version([5, 4, 3]))))
        );
        // Pulled and put back (or swapped): a new count, asked again.
        assert_eq!(identified(&reader, 8), None);
        assert_eq!(identified(&other, 7), None);
        // The newest identification of a reader replaces the older one.
        remember_identity(&reader, 9, 5678, None);
        assert_eq!(identified(&reader, 7), None);
        assert_eq!(identified(&reader, 9), Some((5678, None)));
    }

    #[test]
    fn more_data_is_followed_until_the_card_is_done() {
        let first = [vec![0x11; 256], vec![0x61, 0x20]].concat();
        let last = [vec![0x22; 32], vec![0x90, 0x00]].concat();
        let apdu = Apdu::new("TEST", 0xA1, 0, 0).data(Zeroizing::new(vec![0x5A; 300]));
        let resp = transmit_with(
            &apdu,
            MoreData::GetResponse,
            card(&[&[0x90, 0x00], &first, &last]),
        )
        .unwrap();
        assert_eq!(resp.sw, Sw::Ok);
        assert_eq!(
            &resp.data[..],
            &[first[..256].to_vec(), last[..32].to_vec()].concat()[..]
        );
    }

    #[test]
    fn a_card_answering_more_data_forever_is_cut_off() {
        // Found by fuzzing (fuzz/regressions/apdu_response/card-answering-61xx-forever):
        // 16 bytes and `61 39` to every GET RESPONSE took 4096 exchanges to
        // reach the byte limit, and `61 00` with no data never reached it.
        let sixteen = b"\x01\x00\xfe\xff\xff\xff\x01\x00\x79\x00\x28\x00\x00\x01\x00\x00\x61\x39";
        for answer in [&sixteen[..], &[0x61, 0x00][..]] {
            let apdu = Apdu::new("TEST", 0xA1, 0, 0).data(Zeroizing::new(vec![0xFF]));
            let mut calls = 0;
            let mut card = card(&[answer]);
            let result = transmit_with(&apdu, MoreData::GetResponse, |raw, buf| {
                calls += 1;
                card(raw, buf)
            });
            assert!(
                matches!(
                    result,
                    Err(TokenError::Malformed {
                        what: "the answer never ends",
                        ..
                    })
                ),
                "{:?}",
                result.map(|r| r.sw)
            );
            assert!(calls <= MAX_FOLLOW_UPS + 1, "{calls} exchanges");
        }
    }

    #[test]
    fn status_words_round_trip_and_have_names() {
        for code in [
            0x9000, 0x6105, 0x6100, 0x63C2, 0x6700, 0x6982, 0x6983, 0x6984, 0x6985, 0x6A80, 0x6A82,
            0x6A84, 0x6A86, 0x6A88, 0x6D00, 0x6E00, 0x6F00,
        ] {
            assert_eq!(Sw::from_u16(code).code(), code, "{code:04X}");
        }
        assert_eq!(Sw::from_u16(0x63C2), Sw::TriesLeft(2));
        assert_eq!(Sw::from_u16(0x61FF), Sw::MoreData(0xFF));
        assert_eq!(
            Sw::SecurityStatus.to_string(),
            "6982 (security status not satisfied (PIN, password or touch))"
        );
        assert_eq!(Sw::TriesLeft(1).to_string(), "63C1 (1 tries left)");
        assert_eq!(Sw::NoSpace.to_string(), "6A84 (no space left)");
    }

    #[test]
    fn tlv_parses_short_long_and_multibyte_tags() {
        let mut data = tlv::encode(0x79, &[5, 4, 3]);
        tlv::put(&mut data, 0x71, &[0xAA; 8]);
        tlv::put(&mut data, 0x7F49, &[1; 0x86]);
        tlv::put(&mut data, 0x5FC105, &[2; 300]);
        let tlvs = tlv::parse(&data).unwrap();
        assert_eq!(tlvs.len(), 4);
        assert_eq!(tlv::find(&tlvs, 0x79), Some(&[5u8, 4, 3][..]));
        assert_eq!(tlv::find(&tlvs, 0x7F49).unwrap().len(), 0x86);
        assert_eq!(tlv::find(&tlvs, 0x5FC105).unwrap().len(), 300);
        assert_eq!(&data[..2], [0x79, 3]);
        // 0x86 bytes need the 81 form, 300 the 82 form.
        assert!(data.windows(3).any(|w| w == [0x49, 0x81, 0x86]));
        assert!(data
            .windows(6)
            .any(|w| w == [0x5F, 0xC1, 0x05, 0x82, 0x01, 0x2C]));
        assert_eq!(tlv::find(&tlvs, 0x72), None);
        assert_eq!(tlv::parse(&[]).unwrap(), vec![]);
    }

    #[test]
    fn tlv_malformed_is_an_error_not_a_panic() {
        let cases: &[(&[u8], &str)] = &[
            (&[0x71], "missing length"),
            (&[0x71, 0x05, 1, 2], "value longer than the data"),
            (&[0x71, 0x81], "truncated length"),
            (&[0x71, 0x82, 0x01], "truncated length"),
            (&[0x71, 0x80], "unsupported length encoding"),
            (&[0x71, 0x84, 0, 0, 0, 1, 0], "unsupported length encoding"),
            (&[0x7F], "truncated tag"),
            (&[0x7F, 0x81], "truncated tag"),
            (
                &[0x1F, 0x81, 0x82, 0x83, 0x04, 0x00],
                "tag longer than 3 bytes",
            ),
        ];
        for (bytes, what) in cases {
            assert_eq!(tlv::parse(bytes), Err(tlv::Malformed(what)), "{bytes:02X?}");
        }
        // Every prefix of a valid encoding, and arbitrary bytes, stay errors
        // or values: never a panic.
        let full = tlv::encode(0x5FC10A, &[7; 200]);
        for n in 0..full.len() {
            assert!(tlv::parse(&full[..n]).is_err() || n == 0);
        }
        let mut x: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            let len = (x % 12) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = tlv::parse(&bytes);
            let _ = parse_device_info(&bytes);
        }
    }

    #[test]
    fn device_info_of_a_real_5_4_3_key() {
        // As published for a YubiKey 5 NFC (see hw/virtual-yubikey/src/mgmt.rs).
        let info = hex::decode(
            "2e0102033f0302033f020400f62ca804010105030504030602000007010f080100\
             0d02033f0e02033f0a01000f0100",
        )
        .unwrap();
        let (serial, version) = parse_device_info(&info).unwrap();
        assert_eq!(serial, Some(0x00F6_2CA8));
        assert_eq!(version, Some(Version([5, 4, 3])));
        assert_eq!(version.unwrap().to_string(), "5.4.3");
        assert!(parse_device_info(&info[..10]).is_err());
        assert!(parse_device_info(&[]).is_err());
        assert!(parse_device_info(&[3, 0x02, 0x01, 0x05]).is_err());
    }

    #[test]
    fn short_apdus_and_chaining() {
        let get = Apdu::new("GET", 0xFD, 0, 0).le(0);
        assert_eq!(
            get.encode().iter().map(|p| p.to_vec()).collect::<Vec<_>>(),
            vec![vec![0, 0xFD, 0, 0, 0]]
        );
        let case1 = Apdu::new("READ", 0x1D, 0, 0);
        assert_eq!(case1.encode()[0].as_slice(), [0, 0x1D, 0, 0]);
        let put = Apdu::new("PUT", 0x01, 0, 0).data(Zeroizing::new(vec![0x71, 1, b'n']));
        assert_eq!(
            put.encode()[0].as_slice(),
            [0, 0x01, 0, 0, 3, 0x71, 1, b'n']
        );
        let exactly = Apdu::new("PUT", 0xDB, 0x3F, 0xFF).data(Zeroizing::new(vec![9; 255]));
        assert_eq!(exactly.encode().len(), 1);
        assert_eq!(exactly.encode()[0][4], 255);

        let long = Apdu::new("PUT DATA", 0xDB, 0x3F, 0xFF)
            .data(Zeroizing::new((0..600u32).map(|i| i as u8).collect()))
            .le(0);
        let parts = long.encode();
        assert_eq!(parts.len(), 3);
        assert_eq!(&parts[0][..5], [0x10, 0xDB, 0x3F, 0xFF, 255]);
        assert_eq!(parts[0].len(), 5 + 255);
        assert_eq!(&parts[1][..5], [0x10, 0xDB, 0x3F, 0xFF, 255]);
        assert_eq!(&parts[2][..5], [0x00, 0xDB, 0x3F, 0xFF, 90]);
        assert_eq!(*parts[2].last().unwrap(), 0, "Le only on the last part");
        assert_eq!(parts[2].len(), 5 + 90 + 1);
        let joined: Vec<u8> = parts
            .iter()
            .flat_map(|p| p[5..5 + p[4] as usize].to_vec())
            .collect();
        assert_eq!(joined, (0..600u32).map(|i| i as u8).collect::<Vec<_>>());
    }

    #[test]
    fn yubikeys_are_recognised_by_atr_or_reader() {
        let atr5 = hex::decode("3BFD1300008131FE158073C021C057597562694B657940").unwrap();
        let atr4 = hex::decode("3BF81300008131FE15597562696B657934D4").unwrap();
        let other = hex::decode("3B8F8001804F0CA000000306030001000000006A").unwrap();
        let plain = CString::new("Generic Smart Card Reader 00 00").unwrap();
        let yubico = CString::new("Yubico YubiKey OTP+FIDO+CCID 00 00").unwrap();
        assert!(looks_like_yubikey(&plain, &atr5));
        assert!(looks_like_yubikey(&plain, &atr4));
        assert!(!looks_like_yubikey(&plain, &other));
        assert!(looks_like_yubikey(&yubico, &other));
    }

    /// The hint says what README's install table says, command for command.
    #[test]
    fn the_pcscd_hint_gives_the_commands_of_readmes_install_table() {
        let readme = include_str!("../../../README.md");
        let hint = pcscd_fix();
        let commands: Vec<&str> = hint.split('`').skip(1).step_by(2).collect();
        assert!(commands.len() >= 4, "{hint}");
        for c in commands {
            assert!(
                readme.contains(&format!("`{c}`")) || readme.contains(c),
                "{c:?} is not in README.md"
            );
        }
    }

    #[test]
    fn pcsc_errors_map_to_what_the_user_fixes() {
        let e = TokenError::from_pcsc(pcsc::Error::NoService, "x", None);
        assert!(matches!(e, TokenError::PcscUnavailable(_)));
        if cfg!(target_os = "linux") {
            let hint = e.hint().unwrap();
            assert!(hint.contains("apt install pcscd") && hint.contains("pcscd.socket"));
        }
        for err in [
            pcsc::Error::RemovedCard,
            pcsc::Error::ResetCard,
            pcsc::Error::NoSmartcard,
        ] {
            let e = TokenError::from_pcsc(err, "x", Some(42));
            assert!(matches!(e, TokenError::Removed { serial: Some(42) }));
            assert_eq!(
                e.hint().unwrap(),
                "re-insert YubiKey 42 and run the command again"
            );
        }
        let nf = TokenError::NotFound {
            serial: 7,
            waited: Duration::from_millis(1500),
            seen: vec![8],
            busy: vec![],
        };
        assert_eq!(
            nf.to_string(),
            "no YubiKey with serial 7 found (waited 1.5 s)"
        );
        assert!(nf
            .hint()
            .unwrap()
            .starts_with("insert YubiKey 7 (vault sees only 8)"));
    }
}
