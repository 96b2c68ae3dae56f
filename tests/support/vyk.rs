//! A factory-fresh virtual YubiKey of a test's own, plugged into a spare
//! reader slot of the rig's pcscd, so tests that change PINs, block them or
//! pull the key out never disturb each other or the rig's key.
//!
//! One harness serves both test suites: this is the virtual key's own
//! `hw/virtual-yubikey/tests/common/mod.rs` (`TestKey`, `rig_dir`,
//! `rig_env`, ...), so both claim slots the same way and can share one rig.
//! Inside `hw/rig --real-key` it hands out the real key as described there;
//! vault's tests script touch and read the APDU log, which then panics.
//!
//! Outside the rig every use panics with instructions, never passes.

#[path = "../../hw/virtual-yubikey/tests/common/mod.rs"]
mod common;

#[allow(unused_imports)] // test binaries without a key of their own use none of it
pub use common::*;
