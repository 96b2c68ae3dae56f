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

mod card;
mod command;
mod discovery;
mod error;
mod identity;
mod status;
pub mod tlv;

pub use card::{parse_device_info, Connected, KeyInfo, Transaction, Version};
pub use command::{split_answer, transmit_with, Apdu, MoreData, Response, RECV_BUF};
pub use discovery::{establish, find_by_serial, list_keys};
pub use error::TokenError;
pub use identity::{insertion_counts, remember_identity};
pub use status::Sw;

/// The Management applet: DeviceInfo (serial, firmware) without touching
/// PIV or OATH state.
pub const MANAGEMENT_AID: &[u8] = &[0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17];
/// PIV, as the yubikey crate selects it (a prefix of the full AID).
pub const PIV_AID: &[u8] = &[0xA0, 0x00, 0x00, 0x03, 0x08];
