//! An AWS profile without the network.
//!
//! - [`config`]: `~/.aws/config` parsed (its INI dialect), resolved into a
//!   chain of profiles (`source_profile`, `role_arn`, SSO), and edited;
//! - [`plan`]: the STS calls a chain implies (GetSessionToken with MFA,
//!   AssumeRole…) and the cache id of each step's result;
//! - [`session`]: the session cache, in the kernel keyring on Linux;
//! - [`output`]: the forms credentials are handed out in
//!   (`credential_process` JSON, environment, INI).
//!
//! Everything a cache hit needs and nothing more: no SDK, no runtime, no
//! keychain, no token. It may use vault-base only; the AWS crate that calls
//! STS, and the `vault` binary's cache hit, build on it.
#![forbid(unsafe_code)]

pub mod config;
pub mod output;
pub mod plan;
pub mod session;
