//! `vault clear [PROFILE]`: delete cached sessions, and sign out of IAM
//! Identity Center as aws-vault's `clear` forgets its OIDC tokens: every
//! sign-in without a profile, the profile's own sso-session with one.

use crate::app::App;
use crate::error::Error;
use vault_fast::cli::ClearArgs;
use vault_profile::session;

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
    let keep = super::StoreKeep(app);
    let signed_out = match &args.profile {
        Some(p) => match sso_of(app, p)? {
            Some(settings) => usize::from(vault_aws::sso::sign_out(
                cache.as_ref(),
                &settings,
                Some(&keep),
            )),
            None => 0,
        },
        None => {
            // A store that cannot be listed holds no kept sign-in we could
            // reach; the memory-only cache is still cleared.
            let items = app
                .store()
                .ok()
                .and_then(|s| s.list().ok())
                .unwrap_or_default();
            vault_aws::sso::sign_out_all(cache.as_ref(), Some(&keep), &items)
        }
    };
    if signed_out > 0 {
        println!(
            "Cleared {n} session(s) and signed out of {signed_out} IAM Identity Center \
             sign-in(s); the next use signs in again in the browser."
        );
    } else {
        println!("Cleared {n} session(s).");
    }
    Ok(())
}

/// The SSO settings of `profile` itself, when it is an SSO profile; a
/// profile chained on one keeps the sign-in (as with aws-vault, clearing a
/// role's sessions does not sign its source out).
fn sso_of(app: &App, profile: &str) -> Result<Option<vault_profile::config::SsoSettings>, Error> {
    let Ok(cfg) = app.config() else {
        return Ok(None);
    };
    let Ok(chain) = cfg.resolve_with(
        profile,
        &vault_profile::config::process_env,
        &super::stored_key_check(app),
    ) else {
        return Ok(None);
    };
    Ok(cfg.sso(chain.target())?)
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
                &vault_profile::config::process_env,
                &super::stored_key_check(app),
            )
            .ok()
        })
        .map(|chain| chain.root().name.clone())
        .unwrap_or_else(|| profile.to_string())
}
