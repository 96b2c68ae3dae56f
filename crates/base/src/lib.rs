//! The bottom of vault's layers: what every other crate uses and that
//! knows nothing of AWS, tokens or stores.
//!
//! - [`secret`]: one type per kind of secret (zeroized, never `Display`);
//! - [`creds`]: AWS credentials as values of those types;
//! - [`paths`]: the XDG folders, absolute or not at all;
//! - [`atomic`]: the one way vault writes a file (owner-only temporary,
//!   fsync of file and folder, rename);
//! - [`lock`]: the cross-process lock that makes parallel callers queue;
//! - [`harden`]: what every vault process does first (no core dumps);
//! - [`settings`]: the `VAULT_*` variables, read in one place;
//! - [`error`]: errors that cross a layer with their hint ([`error::Hinted`]).
//!
//! It may use only the standard library and small crates (secrecy,
//! zeroize, serde, rand, rustix); every other vault crate may use it.
#![forbid(unsafe_code)]

pub mod atomic;
pub mod creds;
pub mod error;
pub mod harden;
pub mod lock;
pub mod paths;
pub mod secret;
pub mod settings;
