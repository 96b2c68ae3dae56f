//! Where vault keeps long-term secrets, and how they are sealed.
//!
//! - [`envelope`]: a secret sealed to one or more recipients (YubiKey PIV
//!   slots by ECDH, FIDO2 keys by hmac-secret), opened through an
//!   [`envelope::Unwrapper`]; [`unwrap`] makes the token's keys unwrappers.
//! - [`enrolled`]: what vault knows about enrolled tokens (serials, slots,
//!   public keys, OATH credential names) and where the envelopes lie.
//! - [`store`]: the stores items live in: the OS keychain, the kernel
//!   keyring, the encrypted file store.
//!
//! It may use vault-base, vault-token and vault-prompt (a store asks for
//! its passphrase); it knows nothing of AWS profiles, STS or the CLI.
#![forbid(unsafe_code)]

pub mod enrolled;
pub mod envelope;
pub mod store;
pub mod unwrap;
