//! FIDO2 security keys as envelope recipients, through the hmac-secret
//! extension: a credential made once, then for a 32-byte salt the key
//! returns HMAC-SHA-256(CredRandom, salt) after a touch. That output is the
//! IKM of the envelope's FIDO2 entry (`crates/secrets/src/envelope.rs`).
//!
//! The rest of vault sees only [`Fido2Authenticator`]; [`HidAuthenticator`]
//! is the one implementation over USB HID (the `ctap-hid-fido2` crate) and
//! [`SoftwareAuthenticator`] the stand-in for tests: FIDO2 is HID only, and
//! no HID device can be emulated here.
//!
//! # PIN and the two CredRandoms
//!
//! A CTAP 2.1 authenticator keeps two CredRandoms per credential and uses
//! one when the PIN (user verification) was given and the other when not,
//! so the same salt gives two different secrets. The envelope does not
//! record which one an entry was sealed with, so vault has one rule, kept
//! by [`enroll`] and [`Fido2Unwrapper`]: every request goes without a PIN
//! first, and with the PIN only when the key answers that it needs one
//! ([`Fido2Error::PinRequired`]). A key that demands its PIN does so at
//! enrollment and at every open alike (CTAP's `alwaysUv`), so both sides
//! get the same CredRandom. A key whose `alwaysUv` is switched on after
//! enrollment gives other secrets and cannot open what it was sealed to.
//!
//! # Stdout
//!
//! vault's stdout may carry credential_process JSON, and `ctap-hid-fido2`
//! 3.6.1 prints to stdout. Read in its source (`src/`), the prints on the
//! paths [`HidAuthenticator`] uses (device list, open, makeCredential,
//! getAssertion with hmac-secret, ClientPIN keyAgreement / getPinToken /
//! getRetries) are:
//!
//! - `ctaphid.rs` 76, 83, 95–97, 114 (CTAPHID_INIT), 348–351, 403, 423,
//!   428, 475–478 (every CBOR exchange): only with `enable_log`, which
//!   `crate_cfg` turns off;
//! - `ctaphid.rs` 413–417, the "- Touch the sensor on the authenticator"
//!   keep-alive line, to stdout unless `keep_alive_msg_to_stderr`: off by
//!   `enable_keep_alive_msg = false`, by an empty `keep_alive_msg`, and
//!   sent to stderr by `keep_alive_msg_to_stderr = true` should either
//!   ever be ignored; [`HidAuthenticator`] tells the user itself, through
//!   its notify callback, before each request that waits for a touch;
//! - **unconditional** `println!`s in the response parsers, for any CBOR
//!   member the crate does not know: `make_credential_response.rs` 118
//!   ("Anything Extension!") and 145, `get_assertion_response.rs` 90 and
//!   128, `client_pin_response.rs` 21, 38 and 57. These fire on what the
//!   key sends, which no `Cfg` controls: CTAP 2.1's `powerCycleState` in
//!   a getRetries answer reaches line 57, CTAP 2.2's
//!   `unsignedExtensionOutputs` lines 145 and 128.
//!   (`get_assertion_response.rs` 54 is an `eprintln!`.)
//!
//! Not reached from here: `ctaphid.rs` 294, 302 (wink), 336 (cancel),
//! `get_info_response.rs` 107 (vault never sends getInfo), `bio/`,
//! `credential_management/`, `large_blobs/`, `verifier.rs`, `util.rs` 17
//! and 22, and `lib.rs`'s tests. hidapi's Linux backend (`hid.c`) prints
//! nothing.
//!
//! Because of the unconditional ones, every call into the crate runs inside
//! `quiet_stdout`: stdout is flushed, file descriptor 1 is pointed at
//! stderr's file (a safe `dup`/`dup2` through rustix) and put back after
//! the call, with Rust's stdout lock held throughout so that no other
//! thread's output is diverted meanwhile. What the crate prints then lands
//! on stderr. Off Unix there is no such redirection; only the `Cfg`
//! settings apply there. The crate also panics (`expect`, slicing short
//! answers): the same wrapper turns a panic into an error.

mod authenticator;
mod error;
mod hid;
mod software;

pub use authenticator::{
    enroll, Fido2Authenticator, Fido2Enrollment, Fido2Unwrapper, PinPrompt, MAX_CREDENTIAL_ID_LEN,
};
pub use error::Fido2Error;
pub use hid::{Fido2Device, HidAuthenticator, TOUCH_MESSAGE};
pub use software::SoftwareAuthenticator;
