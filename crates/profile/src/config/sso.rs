//! IAM Identity Center settings: `[sso-session]` sections and the `sso_*`
//! keys of profiles, resolved as botocore resolves them.

use super::*;

/// Where an SSO profile's credentials come from, resolved as the AWS CLI
/// resolves them: the sign-in (an `[sso-session]`, or the legacy start URL
/// on the profile) and the account and role to get credentials for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoSettings {
    /// The `[sso-session NAME]`, or `None` for the legacy form.
    pub session: Option<String>,
    pub start_url: String,
    /// The region of the Identity Center instance (its OIDC and portal).
    pub region: String,
    /// `sso_registration_scopes` (comma separated): `sso:account:access`
    /// gets refreshable tokens.
    pub registration_scopes: Vec<String>,
    pub account_id: String,
    pub role_name: String,
}

/// `sso_registration_scopes`: a comma-separated list.
pub(super) fn scope_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl ConfigFile {
    /// The sign-in of `[sso-session NAME]` alone (account and role empty),
    /// for `vault sso populate`.
    pub fn sso_session(&self, name: &str) -> Result<SsoSettings, ConfigError> {
        let fail = |problem: String| ConfigError::Sso {
            what: format!("[sso-session {name}]"),
            problem,
        };
        let section = self.section(SectionKind::SsoSession, name).ok_or_else(|| {
            fail(format!(
                "{} has no [sso-session {name}] section",
                self.display
            ))
        })?;
        let get = |k: &str| {
            section
                .get(k)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let (Some(start_url), Some(region)) = (get("sso_start_url"), get("sso_region")) else {
            return Err(fail("it needs sso_start_url and sso_region".into()));
        };
        Ok(SsoSettings {
            session: Some(name.to_string()),
            start_url,
            region,
            registration_scopes: get("sso_registration_scopes")
                .map(|v| scope_list(&v))
                .unwrap_or_default(),
            account_id: String::new(),
            role_name: String::new(),
        })
    }

    /// The SSO settings of `profile`, if it is an SSO source
    /// ([`Profile::is_sso_source`]); an error names what is missing or
    /// inconsistent.
    pub fn sso(&self, profile: &Profile) -> Result<Option<SsoSettings>, ConfigError> {
        if !profile.is_sso_source() {
            return Ok(None);
        }
        let fail = |problem: String| ConfigError::Sso {
            what: format!("profile {:?}", profile.name),
            problem,
        };
        let own = |k: &str| {
            profile
                .sso
                .get(k)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let session_of = |k: &str| own(k).map(str::to_string);
        let (session, start_url, region, scopes) = match own("sso_session") {
            Some(name) => {
                let section = self
                    .section(SectionKind::SsoSession, name)
                    .ok_or_else(|| fail(format!("the sso-session {name:?} it names has no [sso-session {name}] section in {}", self.display)))?;
                let from_session =
                    |k: &str| section.get(k).map(str::trim).filter(|v| !v.is_empty());
                // Profile values, where given, must agree with the session's.
                let pick = |k: &str| -> Result<Option<String>, ConfigError> {
                    match (own(k), from_session(k)) {
                        (Some(p), Some(s)) if p != s => Err(fail(format!(
                            "its {k} ({p}) differs from the one of [sso-session {name}] ({s})"
                        ))),
                        (p, s) => Ok(s.or(p).map(str::to_string)),
                    }
                };
                let start_url = pick("sso_start_url")?;
                let region = pick("sso_region")?;
                let scopes = from_session("sso_registration_scopes")
                    .map(scope_list)
                    .unwrap_or_default();
                (Some(name.to_string()), start_url, region, scopes)
            }
            None => (
                None,
                session_of("sso_start_url"),
                session_of("sso_region"),
                Vec::new(),
            ),
        };
        let account_id = own("sso_account_id").map(str::to_string);
        let role_name = own("sso_role_name").map(str::to_string);
        let missing: Vec<&str> = [
            ("sso_start_url", start_url.is_none()),
            ("sso_region", region.is_none()),
            ("sso_account_id", account_id.is_none()),
            ("sso_role_name", role_name.is_none()),
        ]
        .into_iter()
        .filter_map(|(k, m)| m.then_some(k))
        .collect();
        match (start_url, region, account_id, role_name) {
            (Some(start_url), Some(region), Some(account_id), Some(role_name)) => {
                Ok(Some(SsoSettings {
                    session,
                    start_url,
                    region,
                    registration_scopes: scopes,
                    account_id,
                    role_name,
                }))
            }
            _ => Err(fail(format!("it has no {}", missing.join(", ")))),
        }
    }
}
