//! `vault sso populate SESSION`: a profile for every account and role the
//! user can reach through an sso-session, as aws-sso-util and granted write
//! them.
//!
//! Each profile vault writes carries `vault_sso_populated = SESSION`; a
//! profile without that mark (or with another session's) is the user's and
//! is never changed. Profiles vault wrote for roles no longer assigned are
//! listed, not deleted: they may have been edited since.

use crate::app::App;
use crate::error::Error;
use vault_aws::provider::ProviderError;
use vault_aws::sso::{self, Assignment, SignIn};
use vault_fast::cli::PopulateArgs;
use vault_profile::config::{self, ConfigFile};

/// The mark on profiles vault wrote.
const MARK: &str = "vault_sso_populated";

pub fn run(app: &App, args: &PopulateArgs) -> Result<(), Error> {
    let settings = app.config()?.sso_session(&args.session)?;
    let fail = |source| {
        Error::Provider(ProviderError::Sso {
            profile: format!("sso-session {}", args.session),
            source,
        })
    };
    let endpoints = sso::endpoints(&settings.region, &config::process_env).map_err(fail)?;
    let cache = app.cache()?;
    let ui = super::SsoUi::default();
    let keep = super::StoreKeep(app);
    let sign_in = SignIn {
        keep: Some(&keep),
        settings: &settings,
        endpoints: &endpoints,
        cache: cache.as_ref(),
        ui: &ui,
        flow: super::sso_flow(&args.sso),
    };
    let assignments = {
        let id = sso::token_id(&settings);
        let _lock = vault_base::lock::Lock::acquire(&vault_base::lock::lock_dir(), id.as_str())?;
        let token = sign_in.access_token().map_err(fail)?;
        match sso::assignments(&endpoints, &token) {
            Err(sso::SsoError::Refused { code, .. }) if code == "UnauthorizedException" => {
                sso::forget_access_token(cache.as_ref(), &settings);
                let token = sign_in.access_token().map_err(fail)?;
                sso::assignments(&endpoints, &token).map_err(fail)?
            }
            other => other.map_err(fail)?,
        }
    };

    let mut cfg = ConfigFile::load(config::default_path())?;
    let plan = plan(&cfg, &args.session, &assignments);
    for name in &plan.foreign {
        eprintln!(
            "vault: left profile {name:?} as it is: vault did not write it (remove it, or its \
             {MARK} line is missing, to let populate manage it)"
        );
    }
    for name in &plan.stale {
        eprintln!(
            "vault: profile {name:?} was written for a role {} no longer offers; left as it is",
            args.session
        );
    }
    let mut out = String::new();
    for (name, a) in &plan.write {
        out.push_str(name);
        out.push('\n');
        if args.dry_run {
            continue;
        }
        let mut values = vec![
            ("sso_session", args.session.as_str()),
            ("sso_account_id", a.account_id.as_str()),
            ("sso_role_name", a.role_name.as_str()),
            (MARK, args.session.as_str()),
        ];
        if let Some(r) = &args.region {
            values.push(("region", r));
        }
        for (k, v) in values {
            cfg.set_value(name, k, v)?;
        }
    }
    if !args.dry_run && !plan.write.is_empty() {
        cfg.save()?;
    }
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// What populate does with the file as it is.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    /// Profiles to write (new, or vault's own for this session).
    write: Vec<(String, Assignment)>,
    /// Names taken by profiles vault did not write.
    foreign: Vec<String>,
    /// vault's profiles of this session whose role is gone.
    stale: Vec<String>,
}

fn plan(cfg: &ConfigFile, session: &str, assignments: &[Assignment]) -> Plan {
    let mut p = Plan::default();
    let mut names = Vec::new();
    for a in assignments {
        let name = profile_name(a);
        if names.contains(&name) {
            continue;
        }
        names.push(name.clone());
        match cfg.profile_section(&name) {
            Some(s) if s.get(MARK) != Some(session) => p.foreign.push(name),
            _ => p.write.push((name, a.clone())),
        }
    }
    for s in cfg.sections() {
        if s.kind() == config::SectionKind::Profile
            && s.get(MARK) == Some(session)
            && !names.iter().any(|n| n == s.name())
        {
            p.stale.push(s.name().to_string());
        }
    }
    p
}

/// `ACCOUNT_NAME.ROLE_NAME` (aws-sso-util's default), with every character
/// a profile name cannot hold, or a shell would trip on, made a `-`.
fn profile_name(a: &Assignment) -> String {
    format!("{}.{}", a.account_name, a.role_name)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(account: &str, name: &str, role: &str) -> Assignment {
        Assignment {
            account_id: account.into(),
            account_name: name.into(),
            role_name: role.into(),
        }
    }

    #[test]
    fn populate_writes_its_own_profiles_and_leaves_the_users_alone() {
        let cfg = ConfigFile::parse(
            "[profile prod.Admin]\nregion = eu-west-1\n\n\
             [profile dev.Admin]\nsso_session = corp\nvault_sso_populated = corp\n\n\
             [profile old.Gone]\nvault_sso_populated = corp\n\n\
             [profile other.Gone]\nvault_sso_populated = elsewhere\n",
            "config",
        )
        .unwrap();
        let got = plan(
            &cfg,
            "corp",
            &[
                a("1", "prod", "Admin"),
                a("2", "dev", "Admin"),
                a("3", "My Team/x", "Read Only"),
            ],
        );
        assert_eq!(got.foreign, vec!["prod.Admin"]);
        assert_eq!(
            got.write
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>(),
            vec!["dev.Admin", "My-Team-x.Read-Only"]
        );
        assert_eq!(got.stale, vec!["old.Gone"]);
    }
}
