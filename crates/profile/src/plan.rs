//! From a resolved profile chain and the command's options to the steps
//! that produce its credentials (see `provider::Plan`).
//!
//! The rules follow aws-vault (`vault/vault.go`, `vault/config.go` of
//! 99designs/aws-vault and its maintained fork ByteNess/aws-vault), and
//! what real STS accepts; where vault differs, README.md's "Differences
//! from aws-vault" says why:
//! - the root's stored keys start the chain; a root with no stored keys
//!   and a `credential_process` starts it with that process's output;
//! - a GetSessionToken session comes first (so one MFA session serves the
//!   key profile and every role built on it, and a shell never holds the
//!   long-term key) when the root's source is its stored keys and either
//!   no role is assumed, or MFA is configured, unless `--no-session`, or a
//!   single role asks for more than one hour: AWS caps a role assumed with
//!   temporary credentials at one hour, so that role is assumed straight
//!   from the long-term key, with the MFA code (aws-vault's USAGE.md,
//!   "Session duration"; `assumeRoleKeepsFullDuration`);
//! - each link with `role_arn` then assumes its role with the credentials
//!   before it; MFA goes with AssumeRole only when no MFA session precedes it;
//! - the MFA code comes from the `mfa_process` of the profile that makes the
//!   MFA call, inherited from its `source_profile` when it has none of its own
//!   (ByteNess/aws-vault `hydrateSourceConfig`);
//! - durations, as aws-vault reads them: roles take `--duration`, else
//!   `AWS_ASSUME_ROLE_TTL`, else their `duration_seconds`, else 1 h; the
//!   session takes `--duration` (only when it is itself the target),
//!   else `AWS_SESSION_TOKEN_TTL` (the key profile itself) or
//!   `AWS_CHAINED_SESSION_TOKEN_TTL` (as the source of roles), else 12 h.

use crate::config::{Profile, ProfileChain};
use crate::session::{self, CacheError, CacheId, SessionCache};
use std::time::{Duration, SystemTime};
use vault_base::creds::Credentials;

/// What the command line may override of a profile's plan (`--duration`,
/// `--no-session`, `--region`, `--mfa-token`): the CLI's `SessionOptions`
/// without clap.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    pub duration: Option<Duration>,
    pub no_session: bool,
    pub region: Option<String>,
    pub mfa_token: Option<String>,
}

/// A role session's length when nothing says otherwise (aws-vault's
/// `DefaultSessionDuration`; also STS's own default for AssumeRole).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(3600);
/// The MFA session's length when nothing says otherwise: STS's own default
/// for GetSessionToken, so that one session (one unwrap touch, one MFA
/// touch) lasts a workday with room to spare. aws-vault uses 1 h for a key
/// profile used directly and 8 h as a role's source; an 8 h session started
/// at 9:00 is renewed at 16:55, which costs a second pair of touches.
pub const DEFAULT_SESSION_DURATION: Duration = Duration::from_secs(43_200);
/// STS's global endpoint lives in us-east-1; aws-vault uses it when no region is set.
pub const DEFAULT_REGION: &str = "us-east-1";

/// aws-vault's TTL variables hold Go durations (`12h`, `90m`); vault's
/// parser also takes plain seconds.
fn env_duration(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<Duration> {
    env(name).and_then(|v| vault_base::settings::parse_duration(&v).ok())
}

/// The region credentials are for: `--region`, else the target's (which
/// already honours AWS_REGION / AWS_DEFAULT_REGION), else the root's.
pub fn region(chain: &ProfileChain, args: &SessionOptions) -> Option<String> {
    args.region
        .clone()
        .or_else(|| chain.target().region.clone())
        .or_else(|| chain.root().region.clone())
}

/// The MFA device of the chain: the root's own (the IAM user whose key
/// signs the call owns it), else the one nearest the target.
fn mfa_serial(chain: &ProfileChain) -> Option<(usize, &str)> {
    let links = chain.links();
    links
        .first()
        .and_then(|root| root.mfa_serial().map(|s| (0, s)))
        .or_else(|| {
            links
                .iter()
                .enumerate()
                .rev()
                .find_map(|(i, l)| l.mfa_serial().map(|s| (i, s)))
        })
}

/// The `mfa_process` of link `i`, inherited from its sources when it has
/// none of its own.
fn mfa_process_of(links: &[Profile], i: usize) -> Option<String> {
    links[..=i].iter().rev().find_map(|l| l.mfa_process.clone())
}

/// How the root's credentials are obtained. A root with a
/// `credential_process` and stored keys uses its keys, as aws-vault does
/// (`GetProviderForProfile` looks in the keyring first): the everyday
/// `credential_process = vault exec P --json` on P itself must not run vault
/// again.
pub fn root_source(chain: &ProfileChain, has_stored_keys: bool) -> RootSource {
    match &chain.root().credential_process {
        Some(command) if !has_stored_keys => RootSource::Process {
            command: command.clone(),
        },
        _ => RootSource::Keys,
    }
}

fn role_duration(
    link: &Profile,
    args: &SessionOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Duration {
    args.duration
        .or_else(|| env_duration(env, "AWS_ASSUME_ROLE_TTL"))
        .or_else(|| link.duration_seconds.map(Duration::from_secs))
        .unwrap_or(DEFAULT_DURATION)
}

pub fn build(
    chain: &ProfileChain,
    args: &SessionOptions,
    env: &dyn Fn(&str) -> Option<String>,
    root: RootSource,
) -> Plan {
    let links = chain.links();
    let root_link = chain.root();
    let role_links: Vec<usize> = (0..links.len()).filter(|&i| links[i].uses_role()).collect();
    let mfa = mfa_serial(chain);

    // A single role longer than the chaining cap must be assumed with the
    // long-term key itself: AWS refuses it from a session.
    let long_single_role = role_links.len() == 1
        && role_duration(&links[role_links[0]], args, env) > ROLE_CHAINING_MAX;
    let wants_session = role_links.is_empty() || (mfa.is_some() && !long_single_role);
    let session = if args.no_session || !wants_session || !matches!(root, RootSource::Keys) {
        None
    } else {
        let duration = if links.len() == 1 {
            args.duration
                .or_else(|| env_duration(env, "AWS_SESSION_TOKEN_TTL"))
        } else {
            env_duration(env, "AWS_CHAINED_SESSION_TOKEN_TTL")
        }
        .unwrap_or(DEFAULT_SESSION_DURATION);
        // The code is asked for on the root's behalf: its own mfa_process,
        // else that of the profile that named the device.
        let mfa_process = mfa.and_then(|(i, _)| {
            root_link
                .mfa_process
                .clone()
                .or_else(|| mfa_process_of(links, i))
        });
        Some(SessionStep {
            profile: root_link.name.clone(),
            mfa_serial: mfa.map(|(_, s)| s.to_string()),
            mfa_process,
            duration,
        })
    };
    let session_has_mfa = session.as_ref().is_some_and(|s| s.mfa_serial.is_some());

    let mut mfa_sent = session_has_mfa;
    let roles = role_links
        .iter()
        .map(|&i| {
            let link = &links[i];
            // Without an MFA session, the first role whose profile names an
            // MFA device (or the chain's device, for a role assumed straight
            // from the key) sends the code with AssumeRole itself.
            let serial = link.mfa_serial.clone().or_else(|| {
                (long_single_role && !mfa_sent)
                    .then(|| mfa.map(|(_, s)| s.to_string()))
                    .flatten()
            });
            let (mfa_serial, mfa_process) = match serial {
                Some(serial) if !mfa_sent => {
                    mfa_sent = true;
                    (Some(serial), mfa_process_of(links, i))
                }
                _ => (None, None),
            };
            let session_name_fixed = link.role_session_name.is_some();
            RoleStep {
                profile: link.name.clone(),
                request: AssumeRole {
                    role_arn: link.role_arn.clone().unwrap_or_default(),
                    session_name: link.role_session_name.clone().unwrap_or_else(|| {
                        format!(
                            "vault-{}",
                            SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|d| d.as_secs())
                                .unwrap_or(0)
                        )
                    }),
                    external_id: link.external_id.clone(),
                    duration: role_duration(link, args, env),
                    tags: link
                        .session_tags
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    transitive_tag_keys: link.transitive_session_tags.clone(),
                    source_identity: link.source_identity.clone(),
                },
                session_name_fixed,
                mfa_serial,
                mfa_process,
            }
        })
        .collect();

    Plan {
        root_profile: root_link.name.clone(),
        root,
        endpoint: Endpoint {
            region: region(chain, args).unwrap_or_else(|| DEFAULT_REGION.to_string()),
            url: chain.sts_endpoint().map(str::to_string),
        },
        session,
        roles,
    }
}

/// The rules as table-driven cases: a config (as aws-vault's own tests
/// write them), the profile, stored keys, options and environment, and the
/// steps vault must plan. Each names the upstream test or documentation it
/// follows, or says where vault differs on purpose. The same cases run
/// black-box against the rig's strict STS in `tests/aws_vault_conformance.rs`.
/// Where STS is reached.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub region: String,
    /// An explicit endpoint (`AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`,
    /// `endpoint_url`); otherwise the SDK's regional endpoint.
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AssumeRole {
    pub role_arn: String,
    pub session_name: String,
    pub external_id: Option<String>,
    pub duration: Duration,
    pub tags: Vec<(String, String)>,
    pub transitive_tag_keys: Vec<String>,
    pub source_identity: Option<String>,
}

/// AWS caps a role assumed with role credentials (role chaining) at one hour.
pub const ROLE_CHAINING_MAX: Duration = Duration::from_secs(3600);

/// Where the root profile's own credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSource {
    /// Its long-term key, from its envelope or the store.
    Keys,
    /// The output of its `credential_process` (it has no stored key).
    Process { command: String },
    /// Role credentials from IAM Identity Center (its `sso_*` settings).
    Sso(crate::config::SsoSettings),
}

/// Where a profile's SSO role credentials are cached: per sign-in, account
/// and role, so profiles naming the same role share them.
pub fn sso_cache_id(s: &crate::config::SsoSettings) -> CacheId {
    CacheId::new(&[
        "sso",
        s.session.as_deref().unwrap_or(""),
        &s.start_url,
        &s.region,
        &s.account_id,
        &s.role_name,
    ])
}

/// Where the output of `profile`'s `credential_process` is cached.
pub fn process_cache_id(profile: &str, command: &str) -> CacheId {
    CacheId::new(&["credential_process", profile, command])
}

/// What to do to get credentials for a profile, derived from its config.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The profile whose credentials start the chain.
    pub root_profile: String,
    pub root: RootSource,
    pub endpoint: Endpoint,
    /// GetSessionToken on the root keys first (off with `--no-session`).
    pub session: Option<SessionStep>,
    /// Roles to assume, in order, each with the previous step's credentials.
    pub roles: Vec<RoleStep>,
}

#[derive(Debug, Clone)]
pub struct SessionStep {
    pub profile: String,
    pub mfa_serial: Option<String>,
    pub mfa_process: Option<String>,
    pub duration: Duration,
}

#[derive(Debug, Clone)]
pub struct RoleStep {
    pub profile: String,
    pub request: AssumeRole,
    /// Whether `role_session_name` was configured (a generated one must not
    /// split the cache).
    pub session_name_fixed: bool,
    /// MFA sent with AssumeRole itself: only when no MFA session precedes it.
    pub mfa_serial: Option<String>,
    pub mfa_process: Option<String>,
}

impl Plan {
    pub fn session_id(&self) -> Option<CacheId> {
        self.session.as_ref().map(|s| {
            CacheId::new(&[
                "GetSessionToken",
                &self.root_profile,
                s.mfa_serial.as_deref().unwrap_or(""),
                self.endpoint.url.as_deref().unwrap_or(""),
            ])
        })
    }

    /// The cache id of role `i`, which depends on everything before it.
    pub fn role_id(&self, i: usize) -> CacheId {
        let prev = if i == 0 {
            self.session_id()
                .map(|id| id.as_str().to_string())
                .unwrap_or_else(|| self.root_id_str())
        } else {
            self.role_id(i - 1).as_str().to_string()
        };
        let r = &self.roles[i];
        let tags: Vec<String> = r
            .request
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let name = if r.session_name_fixed {
            r.request.session_name.as_str()
        } else {
            ""
        };
        CacheId::new(&[
            "AssumeRole",
            &prev,
            &r.request.role_arn,
            name,
            r.request.external_id.as_deref().unwrap_or(""),
            &tags.join(","),
            &r.request.transitive_tag_keys.join(","),
            r.request.source_identity.as_deref().unwrap_or(""),
            r.mfa_serial.as_deref().unwrap_or(""),
            self.endpoint.url.as_deref().unwrap_or(""),
        ])
    }

    /// What the first role's id builds on when no session precedes it.
    fn root_id_str(&self) -> String {
        match &self.root {
            RootSource::Keys => format!("keys:{}", self.root_profile),
            RootSource::Process { .. } | RootSource::Sso(_) => self
                .process_id()
                .map(|id| id.as_str().to_string())
                .unwrap_or_default(),
        }
    }

    /// The cache id of the root's own temporary credentials: its
    /// `credential_process` output or its SSO role credentials.
    pub fn process_id(&self) -> Option<CacheId> {
        match &self.root {
            RootSource::Process { command } => Some(process_cache_id(&self.root_profile, command)),
            RootSource::Sso(s) => Some(sso_cache_id(s)),
            RootSource::Keys => None,
        }
    }

    /// The id of the entry that answers for the target, if it is cached at all.
    pub fn target_id(&self) -> Option<CacheId> {
        if self.roles.is_empty() {
            self.session_id().or_else(|| self.process_id())
        } else {
            Some(self.role_id(self.roles.len() - 1))
        }
    }

    /// Every cache id this plan uses (for `vault clear PROFILE`).
    pub fn all_ids(&self) -> Vec<CacheId> {
        let mut ids: Vec<CacheId> = self.session_id().into_iter().collect();
        ids.extend(self.process_id());
        ids.extend((0..self.roles.len()).map(|i| self.role_id(i)));
        ids
    }
}

/// Looks up the target's credentials in the cache only: the fast path of
/// `vault exec --json`, which must not start the store, the SDK or a runtime.
pub fn cached(
    plan: &Plan,
    cache: &dyn SessionCache,
    min_remaining: Duration,
) -> Result<Option<Credentials>, CacheError> {
    let Some(id) = plan.target_id() else {
        return Ok(None);
    };
    Ok(session::get(cache, &id)?
        .filter(|s| s.creds.remaining(SystemTime::now()) > min_remaining)
        .map(|s| {
            log::debug!(target: "vault", "using cached {} session of {} ({} s left)",
                s.kind.label(), s.profile, s.creds.remaining(SystemTime::now()).as_secs());
            Credentials::Session(s.creds)
        }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::config::ConfigFile;

    #[derive(Default)]
    struct Case {
        /// Where the expectation comes from.
        source: &'static str,
        config: &'static str,
        profile: &'static str,
        /// Profiles with stored keys.
        keys: &'static [&'static str],
        duration: Option<u64>,
        no_session: bool,
        env: &'static [(&'static str, &'static str)],
        /// `GetSessionToken(profile, duration, mfa_serial, mfa_process)`.
        session: Option<(
            &'static str,
            u64,
            Option<&'static str>,
            Option<&'static str>,
        )>,
        /// `(role_arn suffix, duration, mfa serial sent, mfa_process)`, in order.
        roles: &'static [(
            &'static str,
            u64,
            Option<&'static str>,
            Option<&'static str>,
        )],
    }

    const MFA: &str = "arn:aws:iam::111111111111:mfa/user";

    fn plan_of(c: &Case) -> Plan {
        let cfg = ConfigFile::parse(c.config, "config").unwrap();
        let env = |k: &str| {
            c.env
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        let chain = cfg
            .resolve_with(c.profile, &env, &|n| c.keys.contains(&n))
            .unwrap();
        let args = SessionOptions {
            duration: c.duration.map(Duration::from_secs),
            no_session: c.no_session,
            region: None,
            mfa_token: None,
        };
        let root = root_source(&chain, c.keys.contains(&chain.root().name.as_str()));
        build(&chain, &args, &env, root)
    }

    fn check(c: &Case) {
        let plan = plan_of(c);
        let session = plan.session.as_ref().map(|s| {
            (
                s.profile.as_str(),
                s.duration.as_secs(),
                s.mfa_serial.as_deref(),
                s.mfa_process.as_deref(),
            )
        });
        assert_eq!(session, c.session, "session step: {}", c.source);
        let roles: Vec<(String, u64, Option<&str>, Option<&str>)> = plan
            .roles
            .iter()
            .map(|r| {
                (
                    r.request.role_arn.rsplit('/').next().unwrap().to_string(),
                    r.request.duration.as_secs(),
                    r.mfa_serial.as_deref(),
                    r.mfa_process.as_deref(),
                )
            })
            .collect();
        let want: Vec<(String, u64, Option<&str>, Option<&str>)> = c
            .roles
            .iter()
            .map(|(a, d, m, p)| (a.to_string(), *d, *m, *p))
            .collect();
        assert_eq!(roles, want, "roles: {}", c.source);
    }

    #[test]
    fn the_key_profiles_mfa_process_makes_the_mfa_call() {
        check(&Case {
            source: "issue 10.1; ByteNess/aws-vault config_mfa_process_test.go \
                     TestMfaProcessInheritedFromSourceProfile",
            config: "[profile base]\nmfa_serial = arn:aws:iam::111111111111:mfa/user\n\
                     mfa_process = ykman oath accounts code -s user\n\
                     [profile role]\nsource_profile = base\n\
                     role_arn = arn:aws:iam::111111111111:role/r\n\
                     mfa_serial = arn:aws:iam::111111111111:mfa/user\n",
            profile: "role",
            keys: &["base"],
            session: Some((
                "base",
                43_200,
                Some(MFA),
                Some("ykman oath accounts code -s user"),
            )),
            roles: &[("r", 3600, None, None)],
            ..Case::default()
        });
        // A role assumed straight from the key (over 1 h) inherits it too.
        check(&Case {
            source: "ByteNess/aws-vault TestMfaProcessInheritedFromSourceProfile, \
                     TestSourceProfileRoleLoginDoesNotCapAssumeRoleDuration",
            config: "[profile base]\nmfa_serial = arn:aws:iam::111111111111:mfa/user\n\
                     mfa_process = gen-code\n\
                     [profile role]\nsource_profile = base\n\
                     role_arn = arn:aws:iam::111111111111:role/r\n\
                     mfa_serial = arn:aws:iam::111111111111:mfa/user\n\
                     duration_seconds = 43200\n",
            profile: "role",
            keys: &["base"],
            roles: &[("r", 43_200, Some(MFA), Some("gen-code"))],
            ..Case::default()
        });
    }

    #[test]
    fn an_mfa_process_of_the_role_itself_wins_over_its_sources() {
        check(&Case {
            source: "ByteNess/aws-vault TestMfaProcessOnProfileNotOverriddenBySource",
            config: "[profile base]\nmfa_serial = arn:aws:iam::111111111111:mfa/user\n\
                     mfa_process = base-code\n\
                     [profile role]\nsource_profile = base\n\
                     role_arn = arn:aws:iam::111111111111:role/r\n\
                     mfa_serial = arn:aws:iam::111111111111:mfa/user\n\
                     mfa_process = role-code\nduration_seconds = 7200\n",
            profile: "role",
            keys: &["base"],
            roles: &[("r", 7200, Some(MFA), Some("role-code"))],
            ..Case::default()
        });
    }

    #[test]
    fn a_single_role_over_one_hour_is_assumed_from_the_key_with_mfa() {
        for (source, duration, env, config_duration) in [
            (
                "aws-vault USAGE.md \"Session duration\"",
                None,
                &[][..],
                "43200",
            ),
            (
                "aws-vault exec --duration 12h",
                Some(43_200),
                &[][..],
                "3600",
            ),
            (
                "aws-vault config.go populateFromEnv: AWS_ASSUME_ROLE_TTL",
                None,
                &[("AWS_ASSUME_ROLE_TTL", "12h")][..],
                "3600",
            ),
        ] {
            let config = format!(
                "[profile base]\nmfa_serial = arn:aws:iam::111111111111:mfa/user\n\
                 [profile role]\nsource_profile = base\n\
                 role_arn = arn:aws:iam::111111111111:role/r\n\
                 mfa_serial = arn:aws:iam::111111111111:mfa/user\n\
                 duration_seconds = {config_duration}\n"
            );
            check(&Case {
                source,
                config: Box::leak(config.into_boxed_str()),
                profile: "role",
                keys: &["base"],
                duration,
                env,
                roles: &[("r", 43_200, Some(MFA), None)],
                ..Case::default()
            });
        }
    }

    #[test]
    fn a_role_within_one_hour_shares_the_mfa_session() {
        check(&Case {
            source: "ByteNess/aws-vault TestSingleRoleWithinCapPrimesGetSessionToken",
            config: "[profile base]\nmfa_serial = arn:aws:iam::111111111111:mfa/user\n\
                     [profile role]\nsource_profile = base\n\
                     role_arn = arn:aws:iam::111111111111:role/r\n\
                     mfa_serial = arn:aws:iam::111111111111:mfa/user\n",
            profile: "role",
            keys: &["base"],
            session: Some(("base", 43_200, Some(MFA), None)),
            roles: &[("r", 3600, None, None)],
            ..Case::default()
        });
    }

    #[test]
    fn two_roles_prime_one_session_and_both_are_capped_by_the_provider() {
        // The plan keeps the asked durations; the provider caps each one
        // assumed with temporary credentials (and says so).
        check(&Case {
            source: "ByteNess/aws-vault TestRoleChainingMfaUsesGetSessionTokenBeforeAssumeRole, \
                     TestRoleChainingCapsAssumeRoleDurationToOneHour",
            config: "[profile source]\nrole_arn = arn:aws:iam::111111111111:role/source\n\
                     mfa_serial = arn:aws:iam::111111111111:mfa/user\n\
                     [profile target]\nsource_profile = source\n\
                     role_arn = arn:aws:iam::222222222222:role/target\n\
                     mfa_serial = arn:aws:iam::111111111111:mfa/user\n",
            profile: "target",
            keys: &["source"],
            duration: Some(43_200),
            session: Some(("source", 43_200, Some(MFA), None)),
            roles: &[
                ("source", 43_200, None, None),
                ("target", 43_200, None, None),
            ],
            ..Case::default()
        });
    }

    #[test]
    fn default_mfa_serial_makes_one_session_at_the_key_profile() {
        check(&Case {
            source: "ByteNess/aws-vault TestDefaultMfaRoleChainDoesNotCallGetSessionTokenWithSessionCreds",
            config: "[default]\nmfa_serial = arn:aws:iam::111111111111:mfa/user\n\
                     [profile source]\nregion = eu-west-1\nduration_seconds = 7200\n\
                     [profile admin]\nrole_arn = arn:aws:iam::222222222222:role/admin\n\
                     source_profile = source\nrole_session_name = user\nduration_seconds = 7200\n\
                     [profile target]\nrole_arn = arn:aws:iam::333333333333:role/target\n\
                     role_session_name = user\nsource_profile = admin\nduration_seconds = 7200\n",
            profile: "target",
            keys: &["source"],
            session: Some(("source", 43_200, Some(MFA), None)),
            roles: &[("admin", 7200, None, None), ("target", 7200, None, None)],
            ..Case::default()
        });
    }

    #[test]
    fn session_durations_follow_aws_vaults_variables() {
        let config = "[profile base]\nmfa_serial = arn:aws:iam::111111111111:mfa/user\n\
                      [profile role]\nsource_profile = base\n\
                      role_arn = arn:aws:iam::111111111111:role/r\n";
        let env = &[
            ("AWS_SESSION_TOKEN_TTL", "2h"),
            ("AWS_CHAINED_SESSION_TOKEN_TTL", "10h"),
        ][..];
        check(&Case {
            source: "aws-vault config.go: AWS_SESSION_TOKEN_TTL for the key profile itself",
            config,
            profile: "base",
            keys: &["base"],
            env,
            session: Some(("base", 7200, Some(MFA), None)),
            ..Case::default()
        });
        check(&Case {
            source: "aws-vault config.go GetSessionTokenDuration: AWS_CHAINED_SESSION_TOKEN_TTL as a source",
            config,
            profile: "role",
            keys: &["base"],
            env,
            session: Some(("base", 36_000, Some(MFA), None)),
            roles: &[("r", 3600, None, None)],
            ..Case::default()
        });
        check(&Case {
            source: "aws-vault exec --duration sets the key profile's own session",
            config,
            profile: "base",
            keys: &["base"],
            duration: Some(1800),
            env,
            session: Some(("base", 1800, Some(MFA), None)),
            ..Case::default()
        });
        check(&Case {
            source: "aws-vault config.go: AWS_ASSUME_ROLE_TTL is read before duration_seconds",
            config: "[profile base]\n[profile role]\nsource_profile = base\n\
                     role_arn = arn:aws:iam::111111111111:role/r\nduration_seconds = 2700\n",
            profile: "role",
            keys: &["base"],
            env: &[("AWS_ASSUME_ROLE_TTL", "20m")],
            roles: &[("r", 1200, None, None)],
            ..Case::default()
        });
    }

    #[test]
    fn roles_without_mfa_are_assumed_from_the_key() {
        check(&Case {
            source: "aws-vault canUseGetSessionToken: profile has no MFA serial defined",
            config: "[profile base]\n[profile role]\nsource_profile = base\n\
                     role_arn = arn:aws:iam::111111111111:role/r\n",
            profile: "role",
            keys: &["base"],
            roles: &[("r", 3600, None, None)],
            ..Case::default()
        });
    }

    #[test]
    fn a_profile_without_role_always_gets_a_session_not_the_key() {
        // vault differs: aws-vault hands an alias profile without mfa_serial
        // the long-term key; vault never puts it in a child's environment.
        check(&Case {
            source: "vault: README \"Differences from aws-vault\"",
            config: "[profile base]\n[profile alias]\nsource_profile = base\n",
            profile: "alias",
            keys: &["base"],
            session: Some(("base", 43_200, None, None)),
            ..Case::default()
        });
        check(&Case {
            source: "aws-vault --no-session",
            config: "[profile base]\nmfa_serial = arn:aws:iam::111111111111:mfa/user\n",
            profile: "base",
            keys: &["base"],
            no_session: true,
            ..Case::default()
        });
    }

    #[test]
    fn a_credential_process_profile_is_a_source_without_a_session() {
        let config = "[profile ext]\ncredential_process = fetch-creds\n\
                      [profile role]\nsource_profile = ext\n\
                      role_arn = arn:aws:iam::111111111111:role/r\n\
                      mfa_serial = arn:aws:iam::111111111111:mfa/user\n";
        let c = Case {
            source: "aws-vault GetProviderForProfile: HasCredentialProcess; TestIssue1176",
            config,
            profile: "role",
            roles: &[("r", 3600, Some(MFA), None)],
            ..Case::default()
        };
        check(&c);
        assert_eq!(
            plan_of(&c).root,
            RootSource::Process {
                command: "fetch-creds".into()
            }
        );
        // With stored keys of its own, the keys win (aws-vault looks in the
        // keyring first): `credential_process = vault exec P --json` on P.
        let c = Case {
            keys: &["ext"],
            session: Some(("ext", 43_200, Some(MFA), None)),
            roles: &[("r", 3600, None, None)],
            ..c
        };
        check(&c);
        assert_eq!(plan_of(&c).root, RootSource::Keys);
    }

    #[test]
    fn the_two_roots_never_share_a_cache_entry() {
        let cfg = ConfigFile::parse("[profile ext]\ncredential_process = x\n", "config").unwrap();
        let chain = cfg.resolve("ext", &|_| None).unwrap();
        let args = SessionOptions {
            duration: None,
            no_session: false,
            region: None,
            mfa_token: None,
        };
        let keys = build(&chain, &args, &|_| None, RootSource::Keys);
        let process = build(&chain, &args, &|_| None, root_source(&chain, false));
        assert_ne!(keys.target_id(), process.target_id());
        assert!(process.target_id().is_some());
    }
}
