//! `vault list`: profiles, which have stored keys, and cached sessions.

use crate::app::App;
use crate::error::Error;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use vault_fast::cli::ListArgs;
use vault_profile::session;
use vault_secrets::store;

pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

pub fn run(app: &App, args: &ListArgs) -> Result<(), Error> {
    let cfg = app.config()?;
    let mut profiles: Vec<String> = cfg.profile_names().iter().map(|s| s.to_string()).collect();
    if args.profiles {
        for p in profiles {
            vault_profile::outln!("{p}");
        }
        return Ok(());
    }
    let mut stored = store::key_profiles(app.store()?)?;
    // Token-backed profiles: their key is in an envelope, named by its keys.
    let mut wrapped: BTreeMap<String, String> = BTreeMap::new();
    for p in vault_secrets::enrolled::envelope_profiles() {
        let by = vault_secrets::enrolled::read_envelope(&p)
            .ok()
            .flatten()
            .and_then(|b| vault_secrets::envelope::Envelope::decode(&b).ok())
            .map(|e| {
                e.recipients()
                    .iter()
                    .map(|r| match r {
                        vault_secrets::envelope::RecipientId::Piv { serial, .. } => {
                            format!("YubiKey {serial}")
                        }
                        vault_secrets::envelope::RecipientId::Fido2 { .. } => {
                            "FIDO2 key".to_string()
                        }
                        vault_secrets::envelope::RecipientId::Unknown { .. } => "token".to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .unwrap_or_else(|| "token (damaged envelope)".into());
        wrapped.insert(p.clone(), by);
        if !stored.contains(&p) {
            stored.push(p);
        }
    }
    stored.sort();
    if args.credentials {
        for p in stored {
            vault_profile::outln!("{p}");
        }
        return Ok(());
    }
    let cache = app.cache()?;
    let now = SystemTime::now();
    let mut sessions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, s) in session::all(cache.as_ref())? {
        sessions.entry(s.profile.clone()).or_default().push(format!(
            "{}:{}",
            s.kind.label(),
            human(s.creds.remaining(now))
        ));
    }
    if args.sessions {
        for (p, list) in &sessions {
            for s in list {
                vault_profile::outln!("{p}\t{s}");
            }
        }
        return Ok(());
    }
    for p in stored.iter().chain(sessions.keys()) {
        if !profiles.contains(p) {
            profiles.push(p.clone());
        }
    }
    vault_profile::outln!("{:<24} {:<24} Sessions", "Profile", "Credentials");
    vault_profile::outln!("{:<24} {:<24} ========", "=======", "===========");
    for p in &profiles {
        let creds = match wrapped.get(p) {
            Some(by) => by.as_str(),
            None if stored.contains(p) => p.as_str(),
            None => "-",
        };
        let sess = sessions
            .get(p)
            .map(|v| v.join(", "))
            .unwrap_or_else(|| "-".into());
        vault_profile::outln!("{p:<24} {creds:<24} {sess}");
    }
    Ok(())
}
