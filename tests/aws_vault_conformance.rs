//! aws-vault's documented behaviour, black-box through the rig's strict STS:
//! each case is a config fixture (data), a command, what STS must receive
//! (in order, each accepted) and whose credentials the command ends up
//! with, citing the upstream test or documentation section it comes from.
//! Where vault differs on purpose, the case says so and README.md's
//! "Differences from aws-vault" gives the reason.
//!
//! The strict STS refuses what AWS refuses (a role over 1 h assumed with
//! temporary credentials, a duration over the role's maximum, a wrong or
//! reused MFA code, a wrong signature), so a status 200 for every request
//! is itself part of each check; every TokenCode is also compared with the
//! RFC 6238 code of the device's seed.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use support::{sts_requests, IamUser, StsRequest, TestEnv};

/// How a request was signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signer {
    /// The user's long-term key (`AKIA…`).
    Key,
    /// Temporary credentials (`ASIA…`): a session, a role, a process's.
    Temporary,
}

/// One STS request the case expects.
#[derive(Debug, Clone, Copy)]
struct Call {
    action: &'static str,
    signer: Signer,
    /// DurationSeconds sent.
    duration: u64,
    /// Whether SerialNumber and TokenCode were sent.
    mfa: bool,
}

const fn gst(signer: Signer, duration: u64, mfa: bool) -> Call {
    Call {
        action: "GetSessionToken",
        signer,
        duration,
        mfa,
    }
}

const fn ar(signer: Signer, duration: u64, mfa: bool) -> Call {
    Call {
        action: "AssumeRole",
        signer,
        duration,
        mfa,
    }
}

use Signer::{Key, Temporary};

struct Case<'a> {
    /// The upstream test or documentation section this follows.
    source: &'static str,
    /// `~/.aws/config`, with `{mfa}` (the user's device), `{mfa_process}`
    /// (a command printing its current code), `{role:NAME}` (a role made
    /// in the rig's IAM with a 12 h maximum), `{vault}` (this vault).
    config: &'static str,
    /// Profiles whose stored key is the user's.
    keys: &'static [&'static str],
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    /// What STS must receive, in order.
    calls: &'a [Call],
    /// The command's identity: `user` (the IAM user) or `role:NAME`.
    principal: &'static str,
    /// A line stderr must contain ("" for none required).
    stderr: &'static str,
}

fn render(t: &TestEnv, user: &IamUser, text: &str) -> String {
    let mut out = text
        .replace("{mfa}", &user.mfa_serial)
        .replace("{mfa_process}", &user.mfa_process())
        .replace("{vault}", support::VAULT);
    while let Some(start) = out.find("{role:") {
        let end = start + out[start..].find('}').unwrap();
        let name = out[start + 6..end].to_string();
        out.replace_range(start..=end, &t.role_arn(&name));
    }
    out
}

fn is_temporary(id: &str) -> bool {
    id.starts_with("ASIA")
}

/// This test's requests: signed with its user's key, naming its roles or
/// its MFA device, or signed with credentials STS issued to it.
fn requests_of(t: &TestEnv, user: &IamUser) -> Vec<StsRequest> {
    let mine = |r: &StsRequest| {
        r.key_id == user.key.id
            || r.param("RoleArn").is_some_and(|a| a.ends_with(&t.tag))
            || r.param("SerialNumber") == Some(user.mfa_serial.as_str())
    };
    sts_requests()
        .into_iter()
        .filter(|r| matches!(r.action(), "GetSessionToken" | "AssumeRole") && mine(r))
        .collect()
}

fn run(c: &Case<'_>) {
    // Named after the test function, for the rig folder it leaves behind.
    let name = std::thread::current()
        .name()
        .unwrap_or("conformance")
        .to_string();
    let t = TestEnv::new(&name);
    let user = t.user("alice");
    t.write_config(&render(&t, &user, c.config));
    for p in c.keys {
        t.add(p, &user.key);
    }
    let profile = c.args[1];
    let mut cmd = t.vault(c.args);
    for (k, v) in c.env {
        cmd = cmd.env(k, v);
    }
    let run = cmd.run().success();
    assert!(
        c.stderr.is_empty() || run.stderr.contains(c.stderr),
        "{}: stderr lacks {:?}:\n{}",
        c.source,
        c.stderr,
        run.stderr
    );

    let reqs = requests_of(&t, &user);
    let got: Vec<String> = reqs
        .iter()
        .map(|r| {
            format!(
                "{} signed with {} for {} s{} -> {}",
                r.action(),
                if is_temporary(&r.key_id) {
                    "temporary credentials"
                } else {
                    "the key"
                },
                r.param("DurationSeconds").unwrap_or("-"),
                if r.param("TokenCode").is_some() {
                    " with MFA"
                } else {
                    ""
                },
                r.status
            )
        })
        .collect();
    let want: Vec<String> = c
        .calls
        .iter()
        .map(|w| {
            format!(
                "{} signed with {} for {} s{} -> 200",
                w.action,
                match w.signer {
                    Key => "the key",
                    Temporary => "temporary credentials",
                },
                w.duration,
                if w.mfa { " with MFA" } else { "" }
            )
        })
        .collect();
    assert_eq!(got, want, "{}: what STS received", c.source);
    for r in &reqs {
        if !is_temporary(&r.key_id) {
            assert_eq!(r.key_id, user.key.id, "{}", c.source);
        }
        if let Some(code) = r.param("TokenCode") {
            assert_eq!(r.param("SerialNumber"), Some(user.mfa_serial.as_str()));
            assert!(
                user.is_current_code(code),
                "{}: TokenCode {code} is not the RFC 6238 code of the device's seed",
                c.source
            );
        }
    }

    // Whose credentials the command holds, as STS itself answers.
    let mut who = t
        .vault(&[
            "exec",
            profile,
            "--",
            "aws",
            "sts",
            "get-caller-identity",
            "--output",
            "json",
        ])
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_PAGER", "");
    for (k, v) in c.env {
        who = who.env(k, v);
    }
    let out = who.run().success();
    let arn = serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    match c.principal.strip_prefix("role:") {
        None => assert_eq!(arn, user.arn, "{}", c.source),
        Some(role) => {
            let role_name = t.role_arn(role).rsplit('/').next().unwrap().to_string();
            assert!(
                arn.starts_with(&format!(
                    "arn:aws:sts::{}:assumed-role/{role_name}/",
                    support::ACCOUNT
                )),
                "{}: the command runs as {arn}",
                c.source
            );
        }
    }
}

const BASE_WITH_MFA_PROCESS: &str =
    "[profile base]\nmfa_serial = {mfa}\nmfa_process = {mfa_process}\n\
     [profile role]\nsource_profile = base\nrole_arn = {role:r}\nmfa_serial = {mfa}\n";

#[test]
fn the_key_profiles_mfa_process_answers_for_its_roles() {
    run(&Case {
        source: "ByteNess/aws-vault vault/config_mfa_process_test.go TestMfaProcessInheritedFromSourceProfile",
        config: BASE_WITH_MFA_PROCESS,
        keys: &["base"],
        args: &["exec", "role", "--json"],
        env: &[],
        calls: &[gst(Key, 43_200, true), ar(Temporary, 3600, false)],
        principal: "role:r",
        stderr: "",
    });
}

#[test]
fn a_role_longer_than_an_hour_is_assumed_from_the_key() {
    run(&Case {
        source: "aws-vault USAGE.md Session duration; ByteNess vault_test.go TestSourceProfileRoleLoginDoesNotCapAssumeRoleDuration",
        config: "[profile base]\nmfa_serial = {mfa}\nmfa_process = {mfa_process}\n\
                 [profile role]\nsource_profile = base\nrole_arn = {role:r}\nmfa_serial = {mfa}\n\
                 duration_seconds = 43200\n",
        keys: &["base"],
        args: &["exec", "role", "--json"],
        env: &[],
        calls: &[ar(Key, 43_200, true)],
        principal: "role:r",
        stderr: "",
    });
}

#[test]
fn duration_flag_over_an_hour_skips_the_session() {
    run(&Case {
        source:
            "aws-vault USAGE.md Session duration (--duration); cli/exec.go sets AssumeRoleDuration",
        config: BASE_WITH_MFA_PROCESS,
        keys: &["base"],
        args: &["exec", "role", "--json", "--duration", "12h"],
        env: &[],
        calls: &[ar(Key, 43_200, true)],
        principal: "role:r",
        stderr: "",
    });
}

#[test]
fn role_chaining_caps_every_role_at_an_hour_and_says_so() {
    run(&Case {
        source: "ByteNess vault_test.go TestRoleChainingCapsAssumeRoleDurationToOneHour",
        config: "[profile source]\nrole_arn = {role:source}\nmfa_serial = {mfa}\nmfa_process = {mfa_process}\n\
                 [profile target]\nsource_profile = source\nrole_arn = {role:target}\nmfa_serial = {mfa}\n",
        keys: &["source"],
        args: &["exec", "target", "--json", "--duration", "2h"],
        env: &[],
        calls: &[
            gst(Key, 43_200, true),
            ar(Temporary, 3600, false),
            ar(Temporary, 3600, false),
        ],
        principal: "role:target",
        stderr: "AWS caps a role assumed with temporary credentials (role chaining) at 1 hour",
    });
}

#[test]
fn default_mfa_serial_primes_one_session_at_the_key_profile() {
    run(&Case {
        source: "ByteNess vault_test.go TestDefaultMfaRoleChainDoesNotCallGetSessionTokenWithSessionCreds",
        config: "[default]\nmfa_serial = {mfa}\nmfa_process = {mfa_process}\n\
                 [profile source]\nregion = eu-west-1\nduration_seconds = 7200\n\
                 [profile admin]\nrole_arn = {role:admin}\nsource_profile = source\n\
                 role_session_name = user\nduration_seconds = 7200\n\
                 [profile target]\nrole_arn = {role:target}\nrole_session_name = user\n\
                 source_profile = admin\nduration_seconds = 7200\n",
        keys: &["source"],
        args: &["exec", "target", "--json"],
        env: &[],
        calls: &[
            gst(Key, 43_200, true),
            ar(Temporary, 3600, false),
            ar(Temporary, 3600, false),
        ],
        principal: "role:target",
        stderr: "role chaining",
    });
}

#[test]
fn a_credential_process_profile_can_be_a_source_profile() {
    // The shape of aws-vault issue 1176: the source's credential_process is
    // itself `vault exec … --json`, which gives a session (temporary
    // credentials), so the role assumed with it is role chaining.
    run(&Case {
        source: "aws-vault vault.go GetProviderForProfile HasCredentialProcess; ByteNess vault_test.go TestIssue1176",
        config: "[profile base]\nmfa_serial = {mfa}\nmfa_process = {mfa_process}\n\
                 [profile ext]\ncredential_process = {vault} exec base --json\n\
                 [profile role]\nsource_profile = ext\nrole_arn = {role:r}\n",
        keys: &["base"],
        args: &["exec", "role", "--json"],
        env: &[],
        calls: &[gst(Key, 43_200, true), ar(Temporary, 3600, false)],
        principal: "role:r",
        stderr: "",
    });
}

#[test]
fn a_credential_process_profile_can_be_used_itself() {
    run(&Case {
        source: "aws-vault vault.go NewCredentialProcessProvider",
        config: "[profile base]\n[profile ext]\ncredential_process = {vault} exec base --json\n",
        keys: &["base"],
        args: &["exec", "ext", "--json"],
        env: &[],
        calls: &[gst(Key, 43_200, false)],
        principal: "user",
        stderr: "",
    });
}

#[test]
fn session_token_ttl_sets_the_key_profiles_own_session() {
    run(&Case {
        source: "aws-vault USAGE.md Environment variables: AWS_SESSION_TOKEN_TTL",
        config: "[profile base]\nmfa_serial = {mfa}\nmfa_process = {mfa_process}\n",
        keys: &["base"],
        args: &["exec", "base", "--json"],
        env: &[("AWS_SESSION_TOKEN_TTL", "2h")],
        calls: &[gst(Key, 7200, true)],
        principal: "user",
        stderr: "",
    });
}

#[test]
fn chained_session_token_ttl_sets_the_session_behind_roles() {
    run(&Case {
        source: "aws-vault USAGE.md Environment variables: AWS_CHAINED_SESSION_TOKEN_TTL",
        config: BASE_WITH_MFA_PROCESS,
        keys: &["base"],
        args: &["exec", "role", "--json"],
        env: &[("AWS_CHAINED_SESSION_TOKEN_TTL", "10h")],
        calls: &[gst(Key, 36_000, true), ar(Temporary, 3600, false)],
        principal: "role:r",
        stderr: "",
    });
}

#[test]
fn assume_role_ttl_comes_before_duration_seconds() {
    run(&Case {
        source: "aws-vault vault/config.go populateFromEnv before populateFromConfigFile: AWS_ASSUME_ROLE_TTL",
        config: "[profile base]\n[profile role]\nsource_profile = base\nrole_arn = {role:r}\nduration_seconds = 2700\n",
        keys: &["base"],
        args: &["exec", "role", "--json"],
        env: &[("AWS_ASSUME_ROLE_TTL", "20m")],
        calls: &[ar(Key, 1200, false)],
        principal: "role:r",
        stderr: "",
    });
}

#[test]
fn roles_without_mfa_are_assumed_with_the_key() {
    run(&Case {
        source: "aws-vault vault.go canUseGetSessionToken: profile has no MFA serial defined",
        config: "[profile base]\n[profile role]\nsource_profile = base\nrole_arn = {role:r}\n",
        keys: &["base"],
        args: &["exec", "role", "--json"],
        env: &[],
        calls: &[ar(Key, 3600, false)],
        principal: "role:r",
        stderr: "",
    });
}

#[test]
fn a_role_on_the_key_profile_itself_gets_an_mfa_session_first() {
    // vault differs (README "Differences from aws-vault"): aws-vault
    // (TestDirectRoleLoginDoesNotUseGetSessionToken) assumes the role with
    // MFA straight from the key; vault makes the 12 h MFA session first,
    // so renewing the 1 h role needs no touch.
    run(&Case {
        source: "vault difference from ByteNess TestDirectRoleLoginDoesNotUseGetSessionToken",
        config: "[profile target]\nrole_arn = {role:target}\nmfa_serial = {mfa}\nmfa_process = {mfa_process}\n",
        keys: &["target"],
        args: &["exec", "target", "--json"],
        env: &[],
        calls: &[gst(Key, 43_200, true), ar(Temporary, 3600, false)],
        principal: "role:target",
        stderr: "",
    });
}

#[test]
fn the_key_profile_and_its_roles_share_one_mfa_session() {
    // Two role profiles and the key profile itself: one code in all.
    let t = TestEnv::new("conf_shared_session");
    let user = t.user("alice");
    t.write_config(&render(
        &t,
        &user,
        "[profile base]\nmfa_serial = {mfa}\nmfa_process = {mfa_process}\n\
         [profile one]\nsource_profile = base\nrole_arn = {role:one}\nmfa_serial = {mfa}\n\
         [profile two]\nsource_profile = base\nrole_arn = {role:two}\nmfa_serial = {mfa}\n",
    ));
    t.add("base", &user.key);
    for p in ["one", "two", "base", "one"] {
        t.exec_json(p, &[]);
    }
    let reqs = requests_of(&t, &user);
    let actions: Vec<(&str, bool, u16)> = reqs
        .iter()
        .map(|r| (r.action(), r.param("TokenCode").is_some(), r.status))
        .collect();
    assert_eq!(
        actions,
        [
            ("GetSessionToken", true, 200),
            ("AssumeRole", false, 200),
            ("AssumeRole", false, 200)
        ],
        "ByteNess TestSingleRoleWithinCapPrimesGetSessionToken (#392): one MFA session for every role"
    );
}
