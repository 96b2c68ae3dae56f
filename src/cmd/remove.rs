//! `vault remove PROFILE`: delete a stored key and its sessions.

use crate::app::App;
use crate::error::Error;
use vault_fast::cli::RemoveArgs;
use vault_secrets::store;

pub fn run(app: &App, args: &RemoveArgs) -> Result<(), Error> {
    let store = app.store()?;
    let wrapped = vault_secrets::enrolled::read_envelope(&args.profile)
        .map_err(|e| Error::Other(e.to_string()))?
        .is_some();
    let in_store = store::get_key(store, &args.profile)?.is_some();
    if !wrapped && !in_store {
        return Err(Error::usage(
            format!(
                "no credentials stored for profile \"{}\" in the {} store",
                args.profile,
                app.backend.name()
            ),
            Some("`vault list --credentials` shows which profiles have stored keys".to_string()),
        ));
    }
    if !args.force {
        // The envelope may be the only copy of the key (enrollment deletes
        // the store's): then deleting it loses the IAM key for good.
        let force = format!("vault remove {} --force", args.profile);
        if wrapped && !in_store {
            super::confirm(
                app,
                Some(&format!(
                    "Profile \"{p}\"'s IAM key exists only in its envelope, sealed to its \
                     YubiKey: deleting it loses the key for good, and you would need a new \
                     access key from AWS (IAM → Users → Security credentials).",
                    p = args.profile
                )),
                &format!("Type the profile name ({}) to delete it: ", args.profile),
                super::Confirm::ProfileName(&args.profile),
                &force,
            )?;
        } else {
            super::confirm(
                app,
                None,
                &format!(
                    "Delete credentials for profile \"{}\"? (y|N) ",
                    args.profile
                ),
                super::Confirm::Yes,
                &force,
            )?;
        }
    }
    let cache = app.cache()?;
    let mut cleared = 0;
    for id in super::session_ids_involving(app, &args.profile) {
        if cache.remove(&id).unwrap_or(false) {
            cleared += 1;
        }
    }
    store.delete(&store::key_item(&args.profile))?;
    if wrapped {
        // The envelope is useless without the token, but it is this profile's key.
        vault_secrets::enrolled::delete_envelope(&args.profile)
            .map_err(|e| Error::Other(e.to_string()))?;
    }
    println!("Deleted credentials of profile \"{}\".", args.profile);
    if cleared > 0 {
        println!("Deleted {cleared} cached session(s).");
    }
    Ok(())
}
