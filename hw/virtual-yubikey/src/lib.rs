//! A software YubiKey 5 for vault's tests: PIV, OATH and the Management
//! applet behind the ISO 7816 behaviour real clients rely on, plugged into
//! pcscd through the vpcd driver.
//!
//! It is a test instrument, not a security device: its state file holds
//! private keys in clear.
#![forbid(unsafe_code)]

pub mod apdu;
pub mod attest;
pub mod c25519;
pub mod card;
pub mod control;
pub mod log;
pub mod mgmt;
pub mod oath;
pub mod pcsc_wait;
pub mod piv;
pub mod server;
pub mod tlv;
