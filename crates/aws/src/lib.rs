//! vault's AWS side: what turns a profile's plan into credentials.
//!
//! - [`provider`]: carries out a [`vault_profile::plan::Plan`] step by
//!   step (stored keys or `credential_process` or SSO, then
//!   GetSessionToken with MFA, then AssumeRole…), each step behind the
//!   session cache and a cross-process lock;
//! - [`sts`] (behind the [`sts::StsCalls`] trait), [`iam`], [`sso`]: the
//!   AWS APIs, on the one HTTP/TLS stack of [`http`];
//! - [`mfa`]: codes from the YubiKey's OATH applet, `mfa_process` or the
//!   prompt, each used once;
//! - [`process`]: a profile's own `credential_process`;
//! - [`store_cache`]: the session cache where there is no kernel keyring.
//!
//! It may use every layer below it (base, token, prompt, secrets,
//! profile), never the command line.
#![forbid(unsafe_code)]

pub mod http;
pub mod iam;
pub mod mfa;
pub mod oath_name;
pub mod process;
pub mod provider;
pub mod sso;
pub mod store_cache;
pub mod sts;
