//! `vault add PROFILE`: store a long-term IAM access key.

use crate::app::App;
use crate::error::Error;
use vault_base::creds::LongTermKey;
use vault_base::secret::SecretAccessKey;
use vault_base::settings::env_var;
use vault_fast::cli::AddArgs;
use vault_prompt::PromptError;
use vault_secrets::store;

fn check_key_id(id: &str) -> Result<(), Error> {
    let ok = (16..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::usage(
            "that does not look like an access key ID",
            Some(
                "an access key ID is 16–128 letters and digits, like AKIAIOSFODNN7EXAMPLE"
                    .to_string(),
            ),
        ))
    }
}

/// Without a way to ask, say how to pass the key instead: the generic hint
/// for a missing prompt is about MFA codes.
fn cannot_ask(profile: &str, e: PromptError) -> Error {
    match e {
        PromptError::Unavailable(reason) => Error::usage(
            format!("cannot ask for the access key: {reason}"),
            Some(format!(
                "put the key in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and run \
                 `vault add {profile} --env`"
            )),
        ),
        other => other.into(),
    }
}

pub fn run(app: &App, args: &AddArgs) -> Result<(), Error> {
    if args.profile.trim().is_empty() {
        return Err(Error::usage("the profile name is empty", None));
    }
    // Asked before the new key is typed: replacing a key may lose it.
    let store = app.store()?;
    let wrapped = super::token_backed(&args.profile)?;
    let stored = store::get_key(store, &args.profile)?;
    if (wrapped || stored.is_some()) && !args.force {
        let force = format!("vault add {} --force", args.profile);
        if wrapped {
            super::confirm(
                app,
                Some(&format!(
                    "Profile \"{p}\"'s IAM key is sealed to its YubiKey{only}: adding a key \
                     replaces it, and the old key is lost unless you have it elsewhere (its \
                     envelope is deleted; `vault hw enroll --profile {p}` seals the new one).",
                    p = args.profile,
                    only = if stored.is_none() {
                        ", and that envelope is its only copy"
                    } else {
                        ""
                    },
                )),
                &format!(
                    "Type the profile name ({}) to replace its key: ",
                    args.profile
                ),
                super::Confirm::ProfileName(&args.profile),
                &force,
            )?;
        } else if let Some(old) = &stored {
            super::confirm(
                app,
                None,
                &format!(
                    "Profile \"{}\" already has the key {} in the {} store. Replace it? (y|N) ",
                    args.profile,
                    vault_base::secret::mask_key_id(&old.access_key_id),
                    app.backend.name()
                ),
                super::Confirm::Yes,
                &force,
            )?;
        }
    }
    let key = if args.env {
        let id = env_var("AWS_ACCESS_KEY_ID")
            .ok_or_else(|| Error::usage("--env: AWS_ACCESS_KEY_ID is not set", None))?;
        let secret = env_var("AWS_SECRET_ACCESS_KEY")
            .ok_or_else(|| Error::usage("--env: AWS_SECRET_ACCESS_KEY is not set", None))?;
        LongTermKey {
            access_key_id: id,
            secret_access_key: SecretAccessKey::new(secret),
        }
    } else {
        let id = app
            .prompt()
            .text("Enter Access Key ID: ")
            .map_err(|e| cannot_ask(&args.profile, e))?;
        let id = id.trim().to_string();
        check_key_id(&id)?;
        let secret = app
            .prompt()
            .secret("Enter Secret Access Key: ")
            .map_err(|e| cannot_ask(&args.profile, e))?;
        LongTermKey {
            access_key_id: id,
            secret_access_key: SecretAccessKey::new(secret.expose().trim()),
        }
    };
    check_key_id(&key.access_key_id)?;
    if key.secret_access_key.expose().is_empty()
        || key
            .secret_access_key
            .expose()
            .chars()
            .any(char::is_whitespace)
    {
        return Err(Error::usage(
            "the secret access key is empty or contains spaces",
            Some("paste the secret exactly as IAM showed it".to_string()),
        ));
    }
    store::set_key(store, &args.profile, &key)?;
    if wrapped {
        // The envelope holds the old key and would be used before the store.
        vault_secrets::enrolled::delete_envelope(&args.profile)
            .map_err(|e| Error::Other(e.to_string()))?;
        eprintln!(
            "Deleted the envelope of the old key; `vault hw enroll --profile {}` seals the new one \
             to the YubiKey.",
            args.profile
        );
    }
    // Sessions made with an older key of this profile must not outlive it.
    let cache = app.cache()?;
    for id in super::session_ids_involving(app, &args.profile) {
        let _ = cache.remove(&id);
    }
    println!(
        "Added credentials to profile \"{}\" in the {} store.",
        args.profile,
        app.backend.name()
    );
    Ok(())
}
