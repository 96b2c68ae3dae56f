//! vault: an AWS credential broker backed by a hardware token.
//!
//! The library holds everything the `vault` binary does, so tests can call
//! it without going through a process; `main.rs` only parses, runs and
//! renders errors.
#![forbid(unsafe_code)]

pub mod app;
pub mod cmd;
pub mod docs;
pub mod ecs;
pub mod error;
pub mod logging;
pub mod unlock;
