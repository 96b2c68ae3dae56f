//! `vault add PROFILE`: store a long-term IAM access key.

use crate::app::{env_var, App};
use crate::cli::AddArgs;
use crate::creds::LongTermKey;
use crate::error::Error;
use crate::prompt::PromptError;
use crate::secret::SecretAccessKey;
use crate::store;

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
    let store = app.store()?;
    store::set_key(store, &args.profile, &key)?;
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
