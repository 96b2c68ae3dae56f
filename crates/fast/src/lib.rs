//! The `vault` binary's crate: the command line's definition, and the
//! cache-hit path of `vault exec`, which that binary serves by itself.
//!
//! `vault exec P --json` runs once per AWS CLI or SDK call, so a cache hit
//! must cost little more than starting a process. The `vault` binary holds
//! only this path: it links no keychain (libdbus), PC/SC (libpcsclite) or
//! HID (libudev) library, starts no async runtime and no SDK. Anything else
//! (a miss, another command, `--debug`) is handed to `vault-core`, installed
//! beside it, which links everything and redoes the lookup first.
//!
//! It may use vault-base and vault-profile only, so what the binary links
//! is decided by this crate's dependencies, not by the linker's pruning.
//! The command line's definition lives here because both binaries must
//! parse alike; vault-core's commands are in the `vault` crate above.
#![forbid(unsafe_code)]

pub mod cli;
pub mod exec;

use crate::cli::{Cli, Command, SessionArgs};
use clap::Parser;
use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;
use vault_base::creds::Credentials;
use vault_profile::config::{self, ConfigFile};
use vault_profile::plan::SessionOptions;
use vault_profile::session::{CacheError, SessionCache};

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
    args: &SessionOptions,
    cache: &dyn SessionCache,
    min_remaining: Duration,
) -> Result<Option<(Credentials, Option<String>)>, CacheError> {
    let chain = cfg
        .resolve(profile, &config::process_env)
        .or_else(|_| cfg.resolve_with(profile, &config::process_env, &|n| n == profile));
    let Ok(chain) = chain else {
        return Ok(None);
    };
    // Keys first, as the full lookup decides; a root with a
    // credential_process and no stored keys caches under the other plan.
    let mut roots = vec![vault_profile::plan::RootSource::Keys];
    if let Ok(Some(sso)) = cfg.sso(chain.root()) {
        roots.push(vault_profile::plan::RootSource::Sso(sso));
    }
    if let Some(command) = &chain.root().credential_process {
        roots.push(vault_profile::plan::RootSource::Process {
            command: command.clone(),
        });
    }
    for root in roots {
        let plan = vault_profile::plan::build(&chain, args, &config::process_env, root);
        if let Some(c) = vault_profile::plan::cached(&plan, cache, min_remaining)? {
            return Ok(Some((c, vault_profile::plan::region(&chain, args))));
        }
    }
    Ok(None)
}

/// Serves `vault exec` from the cache when it can; `None` means vault-core
/// must run (it reports every error, so none is reported here before
/// the credentials are in hand).
pub fn run(argv: &[OsString]) -> Option<ExitCode> {
    if let Some(profile) = credential_process_form(argv) {
        let args = crate::cli::ExecArgs {
            profile,
            session: SessionArgs {
                duration: None,
                no_session: false,
                region: None,
                mfa_token: None,
            },
            sso: Default::default(),
            json: true,
            ecs_server: false,
            lazy: false,
            command: Vec::new(),
        };
        return serve(&args);
    }
    let cli = Cli::try_parse_from(argv).ok()?;
    let Command::Exec(a) = &cli.command else {
        return None;
    };
    // Cases whose checks, messages or logs belong to vault-core.
    if cli.debug || a.ecs_server || a.session.mfa_token.is_some() || a.session.duration.is_some() {
        return None;
    }
    serve(a)
}

/// `vault exec PROFILE --json` exactly, the form `credential_process` lines
/// use, recognised without building clap's whole command tree.
fn credential_process_form(argv: &[OsString]) -> Option<String> {
    let [_, exec, a, b] = argv else {
        return None;
    };
    if exec != "exec" {
        return None;
    }
    let (a, b) = (a.to_str()?, b.to_str()?);
    let profile = match (a, b) {
        ("--json" | "-j", p) | (p, "--json" | "-j") => p,
        _ => return None,
    };
    // Anything flag-like is clap's to interpret.
    (!profile.is_empty() && !profile.starts_with('-')).then(|| profile.to_string())
}

fn serve(a: &crate::cli::ExecArgs) -> Option<ExitCode> {
    if std::env::var_os("AWS_VAULT").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let cfg = ConfigFile::load(config::default_path()).ok()?;
    let cache = kernel_cache()?;
    let min_remaining = vault_profile::session::min_remaining();
    let (creds, region) = lookup(
        &cfg,
        &a.profile,
        &a.session.options(),
        cache.as_ref(),
        min_remaining,
    )
    .ok()
    .flatten()?;
    Some(match exec::deliver(a, &creds, region.as_deref()) {
        Ok(code) => code,
        Err(e) => e.report(),
    })
}

/// What went wrong handing credentials over, in the words vault-core
/// would use: the message, and what to do next.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(message: impl Into<String>, hint: Option<String>) -> Failure {
        Failure {
            message: message.into(),
            hint,
        }
    }

    /// Prints it as vault reports every error, and gives the exit status.
    pub fn report(&self) -> ExitCode {
        eprintln!("vault: {}", self.message);
        if let Some(h) = &self.hint {
            eprintln!("vault: hint: {h}");
        }
        ExitCode::FAILURE
    }
}

/// What the completion scripts run to list profiles: `vault
/// __complete-profiles`. Not a clap command (clap_complete would offer it,
/// hidden or not): the binaries look for it before parsing.
pub const PROFILES_ARG: &str = "__complete-profiles";

/// `vault __complete-profiles`: the config's profile names, one a line.
/// Called at every <TAB>, so it reads the config and nothing else (no
/// store, token or prompt), and a config it cannot read is no names
/// rather than an error in the middle of the user's command line.
pub fn complete_profiles() -> ExitCode {
    use std::io::Write;
    let Ok(config) = ConfigFile::load(config::default_path()) else {
        return ExitCode::SUCCESS;
    };
    let mut text = String::new();
    for name in config.profile_names() {
        text.push_str(name);
        text.push('\n');
    }
    // A closed pipe (the shell stopped reading) is no error worth a word.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    ExitCode::SUCCESS
}

#[cfg(target_os = "linux")]
fn kernel_cache() -> Option<Box<dyn SessionCache>> {
    vault_profile::session::kernel::KernelCache::open()
        .ok()
        .map(|k| Box::new(k) as Box<dyn SessionCache>)
}

#[cfg(not(target_os = "linux"))]
fn kernel_cache() -> Option<Box<dyn SessionCache>> {
    // Elsewhere the cache is the keychain, which is vault-core's.
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn credential_process_form_is_recognised_and_nothing_else() {
        let f = |a: &[&str]| credential_process_form(&argv(a));
        assert_eq!(f(&["vault", "exec", "p", "--json"]).as_deref(), Some("p"));
        assert_eq!(f(&["vault", "exec", "-j", "p"]).as_deref(), Some("p"));
        assert_eq!(f(&["vault", "exec", "p", "--debug"]), None);
        assert_eq!(f(&["vault", "exec", "--json", "--debug"]), None);
        assert_eq!(f(&["vault", "exec", "p", "--json", "x"]), None);
        assert_eq!(f(&["vault", "export", "p", "--json"]), None);
        assert_eq!(f(&["vault", "exec", "", "--json"]), None);
    }
}
