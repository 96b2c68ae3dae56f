//! `vault exec PROFILE --json`, the credential_process interface: stdout
//! holds exactly one JSON object and nothing else; a role profile with MFA
//! goes GetSessionToken (with the code) then AssumeRole; and the real AWS
//! CLI, configured with `credential_process = vault exec … --json`, gets
//! the assumed role's identity, the second time from vault's cache.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use support::{
    assume_role_requests, count_lines, session_token_requests, sts_requests_until_now, IamUser,
    Key, StsRequest, TestEnv, VAULT,
};

/// Profile `p` with IAM user alice's real key, and role profile `r` on it
/// with alice's MFA device, its codes from a counting `mfa_process` that
/// prints the device's current code.
struct RoleSetup {
    t: TestEnv,
    user: IamUser,
    key: Key,
    role_arn: String,
    serial: String,
    counter: std::path::PathBuf,
}

fn role_setup(name: &str) -> RoleSetup {
    let t = TestEnv::new(name);
    let role_arn = t.role_arn("json");
    let user = t.user("alice");
    let serial = user.mfa_serial.clone();
    let (mfa_process, counter) = t.counting_mfa_process_of(&user);
    t.write_config(&format!(
        "[profile p]\nregion = eu-west-1\n\n\
         [profile r]\nsource_profile = p\nrole_arn = {role_arn}\n\
         mfa_serial = {serial}\nmfa_process = {mfa_process}\n\n\
         [profile cli]\nregion = us-east-1\ncredential_process = {VAULT} exec r --json\n"
    ));
    let key = user.key.clone();
    t.add("p", &key);
    RoleSetup {
        t,
        user,
        key,
        role_arn,
        serial,
        counter,
    }
}

/// Asserts `r` was accepted (for a request signed with a stored key, that
/// proves the stored secret signed it).
fn accepted(r: &StsRequest) {
    assert_eq!((r.status, r.error.as_deref()), (200, None), "{r:?}");
}

/// The one GetSessionToken signed with the stored key: accepted, with
/// alice's device and a code that is RFC 6238 of its seed. Returns the code.
fn the_mfa_session_request(s: &RoleSetup) -> String {
    let gst = session_token_requests(&s.key.id);
    assert_eq!(gst.len(), 1, "{gst:?}");
    accepted(&gst[0]);
    assert_eq!(gst[0].param("SerialNumber"), Some(s.serial.as_str()));
    let code = gst[0].param("TokenCode").unwrap().to_string();
    assert!(
        s.user.is_current_code(&code),
        "{code} is not the device's code"
    );
    code
}

#[test]
fn json_is_the_only_thing_on_stdout_even_with_debug() {
    let s = role_setup("json_debug");
    let run =
        s.t.vault(&["--debug", "exec", "r", "--json"])
            .run()
            .success();
    let creds = support::JsonCreds::parse(&run.stdout);
    let token = creds.session_token.as_deref().unwrap();
    assert!(creds.access_key_id.starts_with("ASIA"), "{creds:?}");
    assert!(creds.expiration.as_deref().unwrap().ends_with('Z'));
    // The debug log went to stderr, and it holds no secret.
    assert!(run.stderr.lines().count() >= 3, "{}", run.stderr);
    for line in run.stderr.lines() {
        assert!(line.starts_with("vault: "), "{line:?}");
    }
    assert!(run.stderr.contains("AssumeRole"), "{}", run.stderr);
    let code = the_mfa_session_request(&s);
    for secret in [
        creds.secret_access_key.as_str(),
        token,
        s.key.secret.as_str(),
        s.key.id.as_str(),
        code.as_str(),
    ] {
        assert!(
            !run.stderr.contains(secret),
            "stderr shows {secret}:\n{}",
            run.stderr
        );
    }
    // A cache hit with --debug: still only the object on stdout.
    let again =
        s.t.vault(&["--debug", "exec", "r", "--json"])
            .run()
            .success();
    assert_eq!(support::JsonCreds::parse(&again.stdout), creds);
    assert!(!again.stderr.contains(token) && !again.stderr.contains(&creds.secret_access_key));
    the_mfa_session_request(&s);
    assert_eq!(assume_role_requests(&s.role_arn).len(), 1);
}

#[test]
fn role_with_mfa_gets_a_session_with_the_code_then_assumes_the_role() {
    let s = role_setup("json_role_mfa");
    let (creds, _) = s.t.exec_json("r", &[]);
    let gst = session_token_requests(&s.key.id);
    the_mfa_session_request(&s);
    // The MFA session as a role's source: 12 hours by default.
    assert_eq!(gst[0].param("DurationSeconds"), Some("43200"));
    assert_eq!(gst[0].region, "eu-west-1");
    let ar = assume_role_requests(&s.role_arn);
    assert_eq!(ar.len(), 1);
    accepted(&ar[0]);
    // With the MFA session's credentials, not the stored key, and no code;
    // the role's default hour.
    assert_ne!(ar[0].key_id, s.key.id);
    assert!(ar[0].key_id.starts_with("ASIA"), "{:?}", ar[0]);
    assert_eq!(ar[0].param("TokenCode"), None);
    assert_eq!(ar[0].param("SerialNumber"), None);
    assert_eq!(ar[0].param("DurationSeconds"), Some("3600"));
    assert!(ar[0]
        .param("RoleSessionName")
        .is_some_and(|n| n.starts_with("vault-")));
    // The order: the session first.
    let all = sts_requests_until_now();
    let pos = |f: &dyn Fn(&StsRequest) -> bool| all.iter().position(f).unwrap();
    assert!(
        pos(&|r| r.action() == "GetSessionToken" && r.key_id == s.key.id)
            < pos(&|r| r.param("RoleArn") == Some(s.role_arn.as_str()))
    );
    assert_eq!(count_lines(&s.counter), 1);
    assert!(creds.access_key_id.starts_with("ASIA"));
}

#[test]
fn aws_cli_uses_vault_as_credential_process() {
    let s = role_setup("json_aws_cli");
    let aws = |n: usize| {
        let run =
            s.t.cmd(
                "aws",
                &[
                    "sts",
                    "get-caller-identity",
                    "--profile",
                    "cli",
                    "--output",
                    "json",
                ],
            )
            .run();
        assert_eq!(
            run.code,
            Some(0),
            "aws call {n}\nstdout:\n{}\nstderr:\n{}",
            run.stdout,
            run.stderr
        );
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        v["Arn"].as_str().unwrap().to_string()
    };
    let role = s.role_arn.rsplit('/').next().unwrap();
    let arn = aws(1);
    assert!(
        arn.starts_with(&format!(
            "arn:aws:sts::{}:assumed-role/{role}/vault-",
            support::ACCOUNT
        )),
        "{arn}"
    );
    the_mfa_session_request(&s);
    let ar = assume_role_requests(&s.role_arn);
    assert_eq!(ar.len(), 1);
    accepted(&ar[0]);

    // The second AWS CLI run starts vault again: it answers from its cache.
    assert_eq!(aws(2), arn);
    the_mfa_session_request(&s);
    assert_eq!(assume_role_requests(&s.role_arn).len(), 1);
    assert_eq!(count_lines(&s.counter), 1);
}
