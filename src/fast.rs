//! The cache-hit path of `vault exec`, run by the `vault` binary itself.
//!
//! `vault exec P --json` runs once per AWS CLI or SDK call, so a cache hit
//! must cost little more than starting a process. The `vault` binary holds
//! only this path: it links no keychain (libdbus), PC/SC (libpcsclite) or
//! HID (libudev) library, starts no async runtime and no SDK. Anything else
//! (a miss, another command, `--debug`) is handed to `vault-core`, installed
//! beside it, which links everything and redoes the lookup first.

use crate::cli::{Cli, Command, SessionArgs};
use crate::config::{self, ConfigFile};
use crate::creds::Credentials;
use crate::session::{CacheError, SessionCache};
use clap::Parser;
use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

/// The target's cached credentials and their region, when a fresh enough
/// session is cached: the config file and the cache, nothing else.
///
/// The file alone may resolve a different chain than with stored keys
/// known; then its cache id is one no full lookup ever wrote, and this
/// simply misses. A profile missing from the file can only work through
/// stored keys of its own, so it is looked up as if it had them.
pub fn lookup(
    cfg: &ConfigFile,
    profile: &str,
    args: &SessionArgs,
    cache: &dyn SessionCache,
    min_remaining: Duration,
) -> Result<Option<(Credentials, Option<String>)>, CacheError> {
    let chain = cfg
        .resolve(profile, &config::process_env)
        .or_else(|_| cfg.resolve_with(profile, &config::process_env, &|n| n == profile));
    let Ok(chain) = chain else {
        return Ok(None);
    };
    let plan = crate::plan::build(&chain, args, &config::process_env);
    Ok(crate::provider::cached(&plan, cache, min_remaining)?
        .map(|c| (c, crate::plan::region(&chain, args))))
}

/// Serves `vault exec` from the cache when it can; `None` means vault-core
/// must run (it reports every error, so none is reported here before
/// the credentials are in hand).
pub fn run(argv: &[OsString]) -> Option<ExitCode> {
    let cli = Cli::try_parse_from(argv).ok()?;
    let Command::Exec(a) = &cli.command else {
        return None;
    };
    // Cases whose checks, messages or logs belong to vault-core.
    if cli.debug
        || a.ecs_server
        || a.session.mfa_token.is_some()
        || a.session.duration.is_some()
        || std::env::var_os("AWS_VAULT").is_some_and(|v| !v.is_empty())
    {
        return None;
    }
    let cfg = ConfigFile::load(config::default_path()).ok()?;
    let cache = kernel_cache()?;
    let min_remaining = crate::app::App::min_remaining();
    let (creds, region) = lookup(&cfg, &a.profile, &a.session, cache.as_ref(), min_remaining)
        .ok()
        .flatten()?;
    Some(
        match crate::cmd::exec::deliver(a, &creds, region.as_deref()) {
            Ok(code) => code,
            Err(e) => crate::error::report(&e),
        },
    )
}

#[cfg(target_os = "linux")]
fn kernel_cache() -> Option<Box<dyn SessionCache>> {
    crate::session::kernel::KernelCache::open()
        .ok()
        .map(|k| Box::new(k) as Box<dyn SessionCache>)
}

#[cfg(not(target_os = "linux"))]
fn kernel_cache() -> Option<Box<dyn SessionCache>> {
    // Elsewhere the cache is the keychain, which is vault-core's.
    None
}
