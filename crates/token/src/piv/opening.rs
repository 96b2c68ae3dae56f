//! Finding a key by serial and letting go of it without losing anyone's PIN or touch state.

use super::error::{is_service_down, pcsc_inner};
use super::PivError;
use crate::apdu::{self, TokenError, Version};
use std::ffi::CString;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use yubikey::YubiKey;

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
pub(super) fn log_out(yk: YubiKey) {
    if let Err((yk, e)) = yk.disconnect(pcsc::Disposition::ResetCard) {
        log::debug!(target: "vault", "resetting {:?} to log the PIN out: {e}", yk.name());
        std::mem::forget(yk);
    }
}

/// Disconnects without resetting: the PIN and touch state stay for the
/// next connection (ours or another program's).
pub(super) fn leave(yk: YubiKey) {
    if let Err((yk, e)) = yk.disconnect(pcsc::Disposition::LeaveCard) {
        log::debug!(target: "vault", "disconnecting from {:?}: {e}", yk.name());
        // Dropping it would reset the card; a leaked handle does not, and
        // is gone when this process exits.
        std::mem::forget(yk);
    }
}

/// What one look at the readers found instead of the wanted key.
#[derive(Default)]
pub(super) struct Missing {
    /// Serials of the other YubiKeys present.
    pub(super) seen: Vec<u32>,
    /// Readers whose card another program holds exclusively.
    pub(super) busy: Vec<String>,
}

/// Why the readers could not be listed, when that is an error: no reader
/// at all is only an empty desk.
pub(super) fn listing_failed(e: &yubikey::Error) -> Option<PivError> {
    match pcsc_inner(e) {
        Some(pcsc::Error::NoReadersAvailable) | None => None,
        Some(p) if is_service_down(p) => Some(TokenError::PcscUnavailable(p).into()),
        Some(p) => Some(TokenError::from_pcsc(p, "listing readers", None).into()),
    }
}

/// One look at every reader: the key with `serial` if present.
pub(super) fn find_once(serial: u32) -> Result<Result<YubiKey, Missing>, PivError> {
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
pub(super) fn card_gone(reader: &str) -> bool {
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
