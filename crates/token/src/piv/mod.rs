//! The PIV applet, through the `yubikey` crate: a session with one card
//! opened by serial ([`PivToken`]), the enrollment steps (secure the PIN,
//! PUK and management key, generate a P-256 key in a retired slot, write a
//! certificate recording its policies, verify its attestation), and ECDH
//! for the envelope ([`PivUnwrapper`]).
//!
//! Card rules this module keeps:
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

mod certificate;
mod error;
mod opening;
mod policy;
mod session;
mod unwrapping;
mod values;

pub use certificate::{cert_from_object, check_attestation, parse_slot_certificate};
pub use error::{tries, PivError};
pub use policy::{PinPolicy, TouchPolicy};
pub use session::PivToken;
pub use unwrapping::{slot_mismatch, PivUnwrapper};
pub use values::{AttestationReport, ManagementKey, Origin, PinStatus, SlotCertificate, SlotInfo};

/// The retired key-management slots, where vault generates its keys.
pub const RETIRED_SLOTS: std::ops::RangeInclusive<u8> = 0x82..=0x95;

pub use crate::attest::{
    TrustedRoots, ATTESTATION_INTERMEDIATES_VAR, ATTESTATION_ROOTS_VAR, YUBICO_PIV_ROOT_CA_PEM,
};
