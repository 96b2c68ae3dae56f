//! `vault exec PROFILE -- CMD`: what the command's environment holds, what
//! it does not, its exit status, and the options that shape the session
//! (checked in the strict STS's recording).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use support::{session_token_requests, sts_requests_until_now, Key, StsRequest, TestEnv};

/// A test env with profile `p` (region eu-west-1) and the real key of IAM
/// user `alice` stored for it.
fn plain(name: &str) -> (TestEnv, Key) {
    let t = TestEnv::new(name);
    t.write_config("[profile p]\nregion = eu-west-1\n");
    let key = t.key("alice");
    t.add("p", &key);
    (t, key)
}

/// Every request signed with `key_id` so far, whatever its action, read
/// from the recording proven written up to now (a marker request).
fn requests_signed_with(key_id: &str) -> Vec<StsRequest> {
    sts_requests_until_now()
        .into_iter()
        .filter(|r| r.key_id == key_id)
        .collect()
}

/// The one GetSessionToken signed with `key_id`, asserted accepted: the
/// strict STS verifies the signature with the secret it issued, so a 200
/// proves vault signed with the stored secret, not just the stored key id.
fn one_accepted_session_token_request(key_id: &str) -> StsRequest {
    let reqs = session_token_requests(key_id);
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(
        (reqs[0].status, reqs[0].error.as_deref()),
        (200, None),
        "{reqs:?}"
    );
    reqs[0].clone()
}

#[test]
fn exec_gives_the_command_session_credentials_and_the_profile() {
    let (t, key) = plain("exec_env");
    let run = t.vault(&["exec", "p", "--", "env"]).run().success();
    let env = run.env_map();
    let id = &env["AWS_ACCESS_KEY_ID"];
    assert_ne!(
        id, &key.id,
        "the command must get a session, not the stored key"
    );
    assert_ne!(env["AWS_SECRET_ACCESS_KEY"], key.secret);
    assert!(!env["AWS_SECRET_ACCESS_KEY"].is_empty());
    assert!(!env["AWS_SESSION_TOKEN"].is_empty());
    let exp = &env["AWS_CREDENTIAL_EXPIRATION"];
    assert!(exp.len() == 20 && exp.ends_with('Z'), "{exp}");
    assert_eq!(env["AWS_REGION"], "eu-west-1");
    assert_eq!(env["AWS_DEFAULT_REGION"], "eu-west-1");
    assert_eq!(env["AWS_VAULT"], "p");
    assert!(run.stderr.is_empty(), "{}", run.stderr);

    // It is the session STS gave for the stored key (accepted, so signed
    // with the stored secret), 12 hours long by default.
    let req = one_accepted_session_token_request(&key.id);
    assert_eq!(req.region, "eu-west-1");
    assert_eq!(req.param("DurationSeconds"), Some("43200"));
    assert_eq!(req.param("SerialNumber"), None);
    assert_eq!(req.param("TokenCode"), None);
    let exp =
        time::OffsetDateTime::parse(exp, &time::format_description::well_known::Rfc3339).unwrap();
    let left = (exp - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((43_000..=43_300).contains(&left), "expires in {left} s");

    // The next run gets that same session from the cache: the strict STS
    // gives fresh random credentials on every call, so equal credentials
    // and still one request prove no second session was made.
    let (json, _) = t.exec_json("p", &[]);
    assert_eq!(&json.access_key_id, id);
    assert_eq!(json.secret_access_key, env["AWS_SECRET_ACCESS_KEY"]);
    assert_eq!(json.session_token.as_ref(), Some(&env["AWS_SESSION_TOKEN"]));
    assert_eq!(
        json.expiration.as_ref(),
        Some(&env["AWS_CREDENTIAL_EXPIRATION"])
    );
    one_accepted_session_token_request(&key.id);
}

#[test]
fn exec_scrubs_inherited_credentials_but_keeps_configuration() {
    let (t, _) = plain("exec_scrub");
    let inherited = Key::random();
    let run = t
        .vault(&["exec", "p", "--", "env"])
        .env("AWS_PROFILE", "someone-else")
        .env("AWS_ACCESS_KEY_ID", &inherited.id)
        .env("AWS_SECRET_ACCESS_KEY", &inherited.secret)
        .env("AWS_SESSION_TOKEN", "inherited-token")
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token")
        .env("AWS_ROLE_SESSION_NAME", "inherited")
        .env("VAULT_FILE_PASSPHRASE", "not for the command")
        .env("UNRELATED_VARIABLE", "kept")
        .run()
        .success();
    let env = run.env_map();
    assert_eq!(env.get("AWS_PROFILE"), None);
    assert_ne!(env["AWS_ACCESS_KEY_ID"], inherited.id);
    assert_ne!(env["AWS_SECRET_ACCESS_KEY"], inherited.secret);
    assert_ne!(env["AWS_SESSION_TOKEN"], "inherited-token");
    assert_eq!(env.get("AWS_WEB_IDENTITY_TOKEN_FILE"), None);
    assert_eq!(env.get("AWS_ROLE_SESSION_NAME"), None);
    assert_eq!(env.get("VAULT_FILE_PASSPHRASE"), None);
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ] {
        let n = run
            .stdout
            .lines()
            .filter(|l| l.starts_with(&format!("{k}=")))
            .count();
        assert_eq!(n, 1, "{k} set {n} times");
    }
    assert_eq!(env["AWS_CONFIG_FILE"], t.config.display().to_string());
    assert_eq!(
        env["AWS_ENDPOINT_URL"],
        std::env::var("AWS_ENDPOINT_URL").unwrap()
    );
    assert_eq!(env["UNRELATED_VARIABLE"], "kept");
    assert_eq!(env["HOME"], t.home.display().to_string());
}

#[test]
fn exec_passes_the_exit_status_through() {
    let (t, _) = plain("exec_status");
    let run = t
        .vault(&[
            "exec",
            "p",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 7",
        ])
        .run();
    assert_eq!(run.code, Some(7));
    assert_eq!(run.stdout, "out\n");
    assert_eq!(run.stderr, "err\n");
}

#[test]
fn exec_refuses_to_nest() {
    let (t, key) = plain("exec_nested");
    for args in [&["exec", "p", "--", "true"][..], &["exec", "p", "--json"]] {
        t.vault(args).env("AWS_VAULT", "outer").run().fails_with(
            1,
            "vault: already in a vault subshell for profile \"outer\" (AWS_VAULT is set)\n\
             vault: hint: exit that shell first, or unset AWS_VAULT if you mean it\n",
        );
    }
    // Proven read: the recording is written up to now, and holds nothing
    // signed with the stored key.
    assert!(requests_signed_with(&key.id).is_empty());
}

#[test]
fn exec_no_session_gives_the_stored_key() {
    let (t, key) = plain("exec_no_session");
    let env = t
        .vault(&["exec", "p", "--no-session", "--", "env"])
        .run()
        .success()
        .env_map();
    assert_eq!(env["AWS_ACCESS_KEY_ID"], key.id);
    assert_eq!(env["AWS_SECRET_ACCESS_KEY"], key.secret);
    assert_eq!(env.get("AWS_SESSION_TOKEN"), None);
    assert_eq!(env.get("AWS_CREDENTIAL_EXPIRATION"), None);
    assert_eq!(env["AWS_VAULT"], "p");
    assert!(requests_signed_with(&key.id).is_empty());
}

#[test]
fn exec_region_flag_overrides_the_profiles() {
    let (t, key) = plain("exec_region");
    let env = t
        .vault(&["exec", "p", "--region", "ap-southeast-2", "--", "env"])
        .run()
        .success()
        .env_map();
    assert_eq!(env["AWS_REGION"], "ap-southeast-2");
    assert_eq!(env["AWS_DEFAULT_REGION"], "ap-southeast-2");
    assert_eq!(
        one_accepted_session_token_request(&key.id).region,
        "ap-southeast-2"
    );
}

#[test]
fn exec_duration_reaches_sts() {
    let (t, key) = plain("exec_duration");
    let before = std::time::SystemTime::now();
    let (json, _) = t.exec_json("p", &["--duration", "2h"]);
    let req = one_accepted_session_token_request(&key.id);
    assert_eq!(req.param("DurationSeconds"), Some("7200"));
    // And the session really is that long.
    let exp = json.expiration.unwrap();
    let exp =
        time::OffsetDateTime::parse(&exp, &time::format_description::well_known::Rfc3339).unwrap();
    let secs = (exp - time::OffsetDateTime::from(before)).whole_seconds();
    assert!((7100..=7300).contains(&secs), "expires in {secs} s");
}

#[test]
fn exec_of_a_missing_command_says_so() {
    let (t, _) = plain("exec_missing_command");
    t.vault(&["exec", "p", "--", "no-such-command-here"])
        .run()
        .fails_with(
            1,
            "vault: cannot run no-such-command-here: command not found\n\
             vault: hint: check the command name and PATH\n",
        );
}

#[test]
fn exec_without_a_command_runs_the_shell() {
    let (t, _) = plain("exec_shell");
    let script = t.script("fake-shell", "#!/bin/sh\necho \"shell for $AWS_VAULT\"\n");
    let run = t
        .vault(&["exec", "p"])
        .env("SHELL", &script)
        .run()
        .success();
    assert_eq!(run.stdout, "shell for p\n");
}
