//! From a resolved profile chain and the command's options to the steps
//! that produce its credentials (see `provider::Plan`).
//!
//! The rules, as aws-vault users expect them:
//! - the root's stored keys start the chain;
//! - a GetSessionToken session comes first when MFA is configured (so one
//!   MFA session serves every role built on it), or when the target assumes
//!   no role (so a shell never holds the long-term key), unless `--no-session`;
//! - each link with `role_arn` then assumes its role with the credentials
//!   before it; MFA goes with AssumeRole only when no MFA session precedes it;
//! - durations: `--duration` for the target's step, else `duration_seconds`
//!   for roles, else `AWS_SESSION_TOKEN_TTL` / `AWS_ASSUME_ROLE_TTL`, else 1 h.

use crate::cli::SessionArgs;
use crate::config::{Profile, ProfileChain};
use crate::provider::{Plan, RoleStep, SessionStep};
use crate::sts::{AssumeRole, Endpoint};
use std::time::Duration;

pub const DEFAULT_DURATION: Duration = Duration::from_secs(3600);
/// STS's global endpoint lives in us-east-1; aws-vault uses it when no region is set.
pub const DEFAULT_REGION: &str = "us-east-1";

fn env_duration(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<Duration> {
    env(name).and_then(|v| crate::cli::parse_duration(&v).ok())
}

/// The region credentials are for: `--region`, else the target's (which
/// already honours AWS_REGION / AWS_DEFAULT_REGION), else the root's.
pub fn region(chain: &ProfileChain, args: &SessionArgs) -> Option<String> {
    args.region
        .clone()
        .or_else(|| chain.target().region.clone())
        .or_else(|| chain.root().region.clone())
}

fn mfa_source(chain: &ProfileChain) -> Option<&Profile> {
    chain
        .links()
        .iter()
        .rev()
        .find(|l| l.mfa_serial().is_some())
}

pub fn build(
    chain: &ProfileChain,
    args: &SessionArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Plan {
    let links = chain.links();
    let root = chain.root();
    let target = chain.target();
    let has_roles = links.iter().any(Profile::uses_role);
    let mfa = mfa_source(chain);

    let session = if args.no_session || (has_roles && mfa.is_none()) {
        None
    } else {
        let duration = if has_roles {
            env_duration(env, "AWS_SESSION_TOKEN_TTL")
        } else {
            args.duration
                .or_else(|| env_duration(env, "AWS_SESSION_TOKEN_TTL"))
        }
        .unwrap_or(DEFAULT_DURATION);
        Some(SessionStep {
            profile: root.name.clone(),
            mfa_serial: mfa.and_then(|p| p.mfa_serial.clone()),
            mfa_process: mfa.and_then(|p| p.mfa_process.clone()),
            duration,
        })
    };
    let session_has_mfa = session.as_ref().is_some_and(|s| s.mfa_serial.is_some());

    let role_links: Vec<&Profile> = links.iter().filter(|l| l.uses_role()).collect();
    let mut mfa_sent = session_has_mfa;
    let roles = role_links
        .iter()
        .enumerate()
        .map(|(i, link)| {
            let is_target = i + 1 == role_links.len() && link.name == target.name;
            let duration = (if is_target { args.duration } else { None })
                .or_else(|| link.duration_seconds.map(Duration::from_secs))
                .or_else(|| env_duration(env, "AWS_ASSUME_ROLE_TTL"))
                .unwrap_or(DEFAULT_DURATION);
            // Without an MFA session, the first role whose profile names an
            // MFA device sends the code with AssumeRole itself.
            let (mfa_serial, mfa_process) = if !mfa_sent && link.mfa_serial.is_some() {
                mfa_sent = true;
                (link.mfa_serial.clone(), link.mfa_process.clone())
            } else {
                (None, None)
            };
            let session_name_fixed = link.role_session_name.is_some();
            RoleStep {
                profile: link.name.clone(),
                request: AssumeRole {
                    role_arn: link.role_arn.clone().unwrap_or_default(),
                    session_name: link
                        .role_session_name
                        .clone()
                        .unwrap_or_else(|| format!("vault-{}", crate::mfa::now_secs())),
                    external_id: link.external_id.clone(),
                    duration,
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
        root_profile: root.name.clone(),
        endpoint: Endpoint {
            region: region(chain, args).unwrap_or_else(|| DEFAULT_REGION.to_string()),
            url: chain.sts_endpoint().map(str::to_string),
        },
        session,
        roles,
    }
}
