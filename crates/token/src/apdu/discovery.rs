//! Finding YubiKeys among pcscd's readers by serial, without sending other cards an APDU.

use super::{Connected, KeyInfo, TokenError};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

/// How often to look again when pcscd cannot wait for changes itself.
const POLL: Duration = Duration::from_millis(250);

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
pub(super) fn current_states(ctx: &pcsc::Context, readers: &[CString]) -> Vec<pcsc::ReaderState> {
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

pub(super) fn is_present(st: &pcsc::ReaderState) -> bool {
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
}
