//! Waiting for pcscd to see a card appear or vanish in a reader, so the rig
//! and tests start only once a client could really talk to the key.

use std::ffi::CString;
use std::time::{Duration, Instant};

/// Blocks until `reader` reports a card (`present = true`) or none, or the
/// timeout passes.
pub fn wait_card(reader: &str, present: bool, timeout: Duration) -> Result<(), String> {
    let ctx = pcsc::Context::establish(pcsc::Scope::User)
        .map_err(|e| format!("cannot reach pcscd: {e}"))?;
    let name = CString::new(reader).map_err(|_| "reader name contains NUL".to_string())?;
    let deadline = Instant::now() + timeout;
    let mut states = vec![pcsc::ReaderState::new(name, pcsc::State::UNAWARE)];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "timed out waiting for the card to be {} in {reader:?}",
                if present { "present" } else { "absent" }
            ));
        }
        match ctx.get_status_change(left.min(Duration::from_millis(500)), &mut states) {
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(pcsc::Error::UnknownReader) => {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Err(e) => return Err(format!("pcscd: {e}")),
        }
        let st = states[0].event_state();
        if st.contains(pcsc::State::PRESENT) == present && !st.contains(pcsc::State::UNKNOWN) {
            return Ok(());
        }
        states[0].sync_current_state();
    }
}
