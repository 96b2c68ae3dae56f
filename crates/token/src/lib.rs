//! The hardware token, layered as yubikey.rs is: a session opened by serial
//! (`apdu::find_by_serial`), a PC/SC transaction holding the selected
//! applet, APDUs (chaining, `61xx`), TLV. `apdu` is shared by every applet;
//! each applet keeps its byte-level protocol in its own file.
//!
//! This crate may use vault-base and hardware crates only: no AWS, no
//! envelope, no store, no prompt (see README.md beside it).
#![forbid(unsafe_code)]

pub mod apdu;
pub mod attest;
#[cfg(feature = "fido2")]
pub mod fido2;
pub mod oath;
pub mod piv;

use std::time::Duration;

/// How long a YubiKey waits for a touch before it gives up (15 s on a
/// YubiKey 5, and the rig's virtual key's default): the countdown users see.
pub const TOUCH_TIMEOUT: Duration = Duration::from_secs(15);

/// A key's wait for a touch, as the token layer sees it. Only the caller
/// knows what the touch is for ("to unlock profile admin's key"), so the
/// token reports the wait and the caller shows it, in one place and one
/// wording, through the prompt driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TouchEvent {
    /// Key `serial` is about to wait up to `timeout` for a touch.
    Waiting { serial: u32, timeout: Duration },
    /// That wait is over: touched, or not (timeout, removal, error).
    Done { serial: u32, touched: bool },
}
