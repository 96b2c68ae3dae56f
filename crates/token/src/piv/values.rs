//! What the card reports and enrollment records, as plain values free of any session.

use super::{PinPolicy, TouchPolicy};
use crate::apdu::Version;

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
///
/// [`PivToken::authenticate_management`]: super::PivToken::authenticate_management
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagementKey {
    /// vault's (or ykman's) random key, stored on the card behind the PIN.
    Protected,
    /// The factory default.
    Default,
}
