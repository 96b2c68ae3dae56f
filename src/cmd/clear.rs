//! `vault clear [PROFILE]`: delete cached sessions.

use crate::app::App;
use crate::cli::ClearArgs;
use crate::error::Error;
use crate::session;

pub fn run(app: &App, args: &ClearArgs) -> Result<(), Error> {
    let cache = app.cache()?;
    let ids = match &args.profile {
        Some(p) => super::session_ids_involving(app, p),
        None => session::all(cache.as_ref())?
            .into_iter()
            .map(|(id, _)| id)
            .collect(),
    };
    if !args.force {
        confirm_token_sessions(app, cache.as_ref(), &ids, args.profile.as_deref())?;
    }
    let mut n = 0;
    for id in ids {
        if cache.remove(&id)? {
            n += 1;
        }
    }
    println!("Cleared {n} session(s).");
    Ok(())
}

/// The sessions of a token-backed profile are what spares its key a PIN
/// and a touch (and its MFA device a code): clearing them is asked first,
/// by profile name.
fn confirm_token_sessions(
    app: &App,
    cache: &dyn session::SessionCache,
    ids: &[session::CacheId],
    named: Option<&str>,
) -> Result<(), Error> {
    let mut backed: Vec<String> = Vec::new();
    for (id, entry) in session::all(cache)? {
        if ids.contains(&id)
            && !backed.contains(&entry.profile)
            && super::token_backed(&source_of(app, &entry.profile))?
        {
            backed.push(entry.profile);
        }
    }
    if backed.is_empty() {
        return Ok(());
    }
    backed.sort();
    let (expect, what) = match named {
        Some(p) => (p, format!("the profile name ({p})")),
        None => ("all", "all".to_string()),
    };
    super::confirm(
        app,
        Some(&format!(
            "Clearing the cached sessions of {}: the next use needs the YubiKey again (PIN and \
             touch, and a touch for the MFA code).",
            backed
                .iter()
                .map(|p| format!("\"{p}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        &format!("Type {what} to clear them: "),
        super::Confirm::ProfileName(expect),
        &match named {
            Some(p) => format!("vault clear {p} --force"),
            None => "vault clear --force".to_string(),
        },
    )
}

/// The profile whose key a session was made from: the root of its chain.
fn source_of(app: &App, profile: &str) -> String {
    app.config()
        .ok()
        .and_then(|cfg| {
            cfg.resolve_with(
                profile,
                &crate::config::process_env,
                &super::stored_key_check(app),
            )
            .ok()
        })
        .map(|chain| chain.root().name.clone())
        .unwrap_or_else(|| profile.to_string())
}
