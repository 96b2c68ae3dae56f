//! IAM Identity Center (SSO) profiles, through the rig's SSO double
//! (hw/sso: botocore's service definitions, PKCE and device-code rules,
//! role credentials minted by the strict STS) and a scripted browser.
//!
//! The double is one per rig and its browser policy is global, so these
//! tests take turns (`DOUBLE`); no other test file signs in.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use std::path::PathBuf;
use std::sync::Mutex;
use support::{rig_env, JsonCreds, TestEnv};

static DOUBLE: Mutex<()> = Mutex::new(());

const ACCOUNT: &str = "123456789012";

/// Two SSO profiles on one sso-session, a legacy one, and a role chained
/// on the first.
fn world(t: &TestEnv, target_role: &str) {
    t.write_config(&format!(
        "[sso-session corp]\n\
         sso_start_url = https://rig.awsapps.com/start\n\
         sso_region = us-east-1\n\
         sso_registration_scopes = sso:account:access\n\n\
         [profile admin]\n\
         sso_session = corp\n\
         sso_account_id = {ACCOUNT}\n\
         sso_role_name = AdministratorAccess\n\
         region = eu-west-1\n\n\
         [profile ro]\n\
         sso_session = corp\n\
         sso_account_id = {ACCOUNT}\n\
         sso_role_name = ReadOnlyAccess\n\n\
         [profile legacy]\n\
         sso_start_url = https://rig.awsapps.com/start\n\
         sso_region = us-east-1\n\
         sso_account_id = {ACCOUNT}\n\
         sso_role_name = ReadOnlyAccess\n\n\
         [profile chained]\n\
         source_profile = admin\n\
         role_arn = {target_role}\n"
    ));
}

use support::sso_policy as policy;

/// The double's requests so far.
fn recording() -> Vec<serde_json::Value> {
    std::fs::read_to_string(rig_env("VAULT_RIG_SSO_RECORDING"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (action, grant type) of the requests after the first `since`.
fn actions_since(since: usize) -> Vec<(String, Option<String>)> {
    recording()[since..]
        .iter()
        .filter(|e| e["service"] != "rig")
        .map(|e| {
            (
                e["action"].as_str().unwrap_or("").to_string(),
                e["grant_type"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn count(actions: &[(String, Option<String>)], name: &str) -> usize {
    actions.iter().filter(|(a, _)| a == name).count()
}

/// A folder with an `xdg-open` that opens URLs as a browser does: in the
/// background (the opener returns at once), following redirects, so an
/// approved sign-in lands on vault's loopback listener.
fn browser(t: &TestEnv) -> String {
    let bin = t.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let opened = t.dir.join("opened");
    let script = format!(
        "#!/bin/sh\necho \"$1\" >> '{}'\n\
         python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=30).read()' \"$1\" \
         >/dev/null 2>&1 &\n",
        opened.display()
    );
    let opener: PathBuf = bin.join("xdg-open");
    std::fs::write(&opener, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

/// GetCallerIdentity with `creds`, by the AWS CLI against the strict STS.
fn caller_arn(t: &TestEnv, creds: &JsonCreds) -> String {
    let run = t
        .cmd("aws", &["sts", "get-caller-identity", "--output", "json"])
        .env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key)
        .env("AWS_SESSION_TOKEN", creds.session_token.as_deref().unwrap())
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    v["Arn"].as_str().unwrap().to_string()
}

fn no_sso_cache_on_disk(t: &TestEnv) {
    let cache = t.home.join(".aws").join("sso");
    assert!(!cache.exists(), "{} exists", cache.display());
}

#[test]
fn device_code_sign_in_serves_every_profile_of_the_session_with_one_token() {
    let _turn = DOUBLE.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestEnv::new("sso_device");
    world(&t, "unused");
    policy("approve", "manual");
    let since = recording().len();

    let (admin, run) = t.exec_json("admin", &["--use-device-code"]);
    // The code to compare is shown with the page to open.
    assert!(
        run.stderr.contains("check that the page shows the code "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("/device?user_code="), "{}", run.stderr);
    let arn = caller_arn(&t, &admin);
    assert!(
        arn.starts_with(&format!(
            "arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_AdministratorAccess_"
        )),
        "{arn}"
    );
    let first = actions_since(since);
    assert_eq!(count(&first, "RegisterClient"), 1, "{first:?}");
    assert_eq!(count(&first, "StartDeviceAuthorization"), 1, "{first:?}");
    assert_eq!(count(&first, "GetRoleCredentials"), 1, "{first:?}");
    let tokens: Vec<_> = first.iter().filter(|(a, _)| a == "CreateToken").collect();
    assert!(
        tokens
            .iter()
            .all(|(_, g)| g.as_deref() == Some("urn:ietf:params:oauth:grant-type:device_code")),
        "{tokens:?}"
    );

    // The role credentials are cached; another role of the same session
    // reuses the token (one more GetRoleCredentials, no sign-in); the
    // legacy form signs in on its own.
    let since = recording().len();
    let (again, _) = t.exec_json("admin", &[]);
    assert_eq!(again.access_key_id, admin.access_key_id);
    let (ro, _) = t.exec_json("ro", &[]);
    assert!(caller_arn(&t, &ro).contains("AWSReservedSSO_ReadOnlyAccess_"));
    let later = actions_since(since);
    assert_eq!(
        later,
        vec![("GetRoleCredentials".to_string(), None)],
        "no new sign-in for a second role of the session"
    );
    no_sso_cache_on_disk(&t);
    policy("manual", "manual");
}

#[test]
fn authorization_code_with_pkce_is_the_default_and_one_sign_in_serves_32_callers() {
    let _turn = DOUBLE.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestEnv::new("sso_pkce");
    world(&t, "unused");
    let path = browser(&t);
    policy("manual", "approve");
    let since = recording().len();
    let callers: Vec<_> = (0..32)
        .map(|_| {
            t.vault(&["exec", "admin", "--json"])
                .env("PATH", &path)
                .spawn()
        })
        .collect();
    let runs: Vec<_> = callers.into_iter().map(|c| c.wait().success()).collect();
    let first = JsonCreds::parse(&runs[0].stdout);
    for r in &runs {
        assert_eq!(
            JsonCreds::parse(&r.stdout).access_key_id,
            first.access_key_id
        );
    }
    let actions = actions_since(since);
    assert_eq!(
        count(&actions, "Authorize"),
        1,
        "one browser tab: {actions:?}"
    );
    assert_eq!(count(&actions, "CreateToken"), 1, "{actions:?}");
    assert_eq!(count(&actions, "GetRoleCredentials"), 1, "{actions:?}");
    assert_eq!(
        actions
            .iter()
            .find(|(a, _)| a == "CreateToken")
            .unwrap()
            .1
            .as_deref(),
        Some("authorization_code")
    );
    let opened = std::fs::read_to_string(t.dir.join("opened")).unwrap();
    assert_eq!(opened.lines().count(), 1, "{opened}");
    assert!(opened.contains("code_challenge_method=S256"), "{opened}");
    assert!(caller_arn(&t, &first).contains("AWSReservedSSO_AdministratorAccess_"));
    no_sso_cache_on_disk(&t);
    policy("manual", "manual");
}

#[test]
fn an_sso_profile_is_the_source_of_a_role_chain_and_export_and_list_know_it() {
    let _turn = DOUBLE.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestEnv::new("sso_chain");
    let role = t.role_arn("after-sso");
    world(&t, &role);
    policy("approve", "manual");
    let (creds, _) = t.exec_json("chained", &["--use-device-code"]);
    let arn = caller_arn(&t, &creds);
    assert!(
        arn.contains(&format!("assumed-role/after-sso-{}/", t.tag)),
        "{arn}"
    );
    let export = t
        .vault(&["export", "admin", "--format", "env"])
        .run()
        .success();
    assert!(
        export.stdout.contains("AWS_SESSION_TOKEN="),
        "{}",
        export.stdout
    );
    let list = t.vault(&["list"]).run().success();
    assert!(
        list.stdout.contains("sso.GetRoleCredentials"),
        "{}",
        list.stdout
    );
    policy("manual", "manual");
}

#[test]
fn a_denied_sign_in_or_an_incomplete_profile_fails_with_what_to_do() {
    let _turn = DOUBLE.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestEnv::new("sso_denied");
    world(&t, "unused");
    policy("deny", "manual");
    let run = t
        .vault(&["exec", "admin", "--json", "--use-device-code"])
        .run();
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("the sign-in was denied in the browser"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: run the command again"),
        "{}",
        run.stderr
    );
    policy("manual", "manual");

    t.write_config(
        "[sso-session corp]\nsso_start_url = https://rig.awsapps.com/start\n\n\
         [profile half]\nsso_session = corp\nsso_account_id = 123456789012\n\n\
         [profile other]\nsso_session = nowhere\nsso_account_id = 1\nsso_role_name = r\n",
    );
    let run = t.vault(&["exec", "half", "--json"]).run();
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "profile \"half\" is configured for SSO, but it has no sso_region, sso_role_name"
        ),
        "{}",
        run.stderr
    );
    let run = t.vault(&["exec", "other", "--json"]).run();
    assert!(
        run.stderr
            .contains("the sso-session \"nowhere\" it names has no [sso-session nowhere] section"),
        "{}",
        run.stderr
    );
}

#[test]
fn populate_writes_a_profile_per_role_and_leaves_the_users_alone() {
    let _turn = DOUBLE.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestEnv::new("sso_populate");
    world(&t, "unused");
    // The user's own profile under a name populate would pick.
    let mut config = std::fs::read_to_string(&t.config).unwrap();
    config.push_str("\n[profile rig.ReadOnlyAccess]\nregion = ap-south-1\n");
    t.write_config(&config);
    policy("approve", "manual");
    let since = recording().len();
    let run = t
        .vault(&[
            "sso",
            "populate",
            "corp",
            "--region",
            "eu-central-1",
            "--use-device-code",
        ])
        .run()
        .success();
    assert_eq!(run.stdout, "rig.AdministratorAccess\n", "{}", run.stderr);
    assert!(
        run.stderr
            .contains("left profile \"rig.ReadOnlyAccess\" as it is"),
        "{}",
        run.stderr
    );
    let actions = actions_since(since);
    assert_eq!(count(&actions, "ListAccounts"), 1, "{actions:?}");
    assert_eq!(count(&actions, "ListAccountRoles"), 1, "{actions:?}");
    let written = std::fs::read_to_string(&t.config).unwrap();
    assert!(
        written.starts_with(&config),
        "populate changed what was there:\n{written}"
    );
    assert!(
        written.ends_with(
            "[profile rig.AdministratorAccess]\nsso_session = corp\nsso_account_id = 123456789012\n\
             sso_role_name = AdministratorAccess\nvault_sso_populated = corp\nregion = eu-central-1\n"
        ),
        "{written}"
    );
    // The written profile works with the same sign-in; populate again
    // changes nothing.
    let since = recording().len();
    let (creds, _) = t.exec_json("rig.AdministratorAccess", &[]);
    assert!(caller_arn(&t, &creds).contains("AWSReservedSSO_AdministratorAccess_"));
    assert_eq!(
        actions_since(since),
        vec![("GetRoleCredentials".to_string(), None)]
    );
    t.vault(&["sso", "populate", "corp", "--region", "eu-central-1"])
        .run()
        .success();
    assert_eq!(std::fs::read_to_string(&t.config).unwrap(), written);
    no_sso_cache_on_disk(&t);
    policy("manual", "manual");
}

/// Ends the cached SSO access token of the test's keyring (its record's
/// `expires_at` set to 0), as time would; the refresh token stays.
fn expire_access_token(t: &TestEnv) {
    let script = "for k in $(keyctl rlist @s); do \
        d=$(keyctl rdescribe \"$k\" | sed 's/.*;//'); \
        case \"$d\" in vault:sso:*) \
          v=$(keyctl pipe \"$k\"); \
          case \"$v\" in *access_token*) \
            printf '%s' \"$v\" | python3 -c 'import json,sys; r=json.load(sys.stdin); r[\"expires_at\"]=0; sys.stdout.write(json.dumps(r))' | keyctl pupdate \"$k\"; \
            echo updated;; esac;; esac; done";
    let run = t.cmd("sh", &["-c", script]).run().success();
    assert_eq!(run.stdout.trim(), "updated", "{}", run.stderr);
}

#[test]
fn an_expired_access_token_is_refreshed_once_for_16_callers_without_a_new_sign_in() {
    let _turn = DOUBLE.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestEnv::new("sso_refresh");
    world(&t, "unused");
    policy("approve", "manual");
    t.exec_json("admin", &["--use-device-code"]);
    policy("manual", "manual");
    expire_access_token(&t);
    // Another role needs the token again: the refresh grant renews it (the
    // browser policy is back to manual, so a sign-in would hang).
    let since = recording().len();
    let callers: Vec<_> = (0..16)
        .map(|_| {
            t.vault(&["exec", "ro", "--json", "--use-device-code"])
                .spawn()
        })
        .collect();
    let runs: Vec<_> = callers.into_iter().map(|c| c.wait().success()).collect();
    let ro = JsonCreds::parse(&runs[0].stdout);
    assert!(caller_arn(&t, &ro).contains("AWSReservedSSO_ReadOnlyAccess_"));
    // 16 callers, one refresh and one role call.
    let actions = actions_since(since);
    assert_eq!(
        actions,
        vec![
            ("CreateToken".to_string(), Some("refresh_token".to_string())),
            ("GetRoleCredentials".to_string(), None)
        ]
    );
}

/// Empties the test's memory-only cache, as a reboot does.
fn reboot(t: &TestEnv) {
    let script = "for k in $(keyctl rlist @s); do \
        case \"$(keyctl rdescribe \"$k\" | sed 's/.*;//')\" in vault:*) keyctl unlink \"$k\" @s >/dev/null;; esac; done; \
        keyctl rlist @s | wc -w";
    t.cmd("sh", &["-c", script]).run().success();
}

#[test]
fn after_a_reboot_the_kept_refresh_token_signs_in_without_the_browser() {
    let _turn = DOUBLE.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestEnv::new("sso_reboot");
    world(&t, "unused");
    policy("approve", "manual");
    t.exec_json("admin", &["--use-device-code"]);
    policy("manual", "manual");
    reboot(&t);
    // Nothing in memory, no browser: the refresh token kept in the
    // keychain (the Secret Service) renews the sign-in.
    let since = recording().len();
    let (ro, _) = t.exec_json("ro", &["--use-device-code"]);
    assert!(caller_arn(&t, &ro).contains("AWSReservedSSO_ReadOnlyAccess_"));
    assert_eq!(
        actions_since(since),
        vec![
            ("CreateToken".to_string(), Some("refresh_token".to_string())),
            ("GetRoleCredentials".to_string(), None)
        ]
    );
    // The rotated refresh token was kept in its turn: a second reboot
    // works the same.
    reboot(&t);
    let since = recording().len();
    t.exec_json("admin", &["--use-device-code"]);
    assert_eq!(count(&actions_since(since), "StartDeviceAuthorization"), 0);
    no_sso_cache_on_disk(&t);
}

/// Every token the double handed out or was shown, from its recording:
/// access tokens (the portal's bearer header) and refresh tokens (sent back
/// in CreateToken bodies).
fn tokens_seen(since: usize) -> Vec<String> {
    use base64::Engine as _;
    let mut out = Vec::new();
    for e in &recording()[since..] {
        if let Some(t) = e["headers"]["x-amz-sso_bearer_token"].as_str() {
            out.push(t.to_string());
        }
        let body = base64::engine::general_purpose::STANDARD
            .decode(e["body"].as_str().unwrap_or(""))
            .unwrap_or_default();
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
            for k in [
                "refreshToken",
                "clientSecret",
                "deviceCode",
                "code",
                "codeVerifier",
            ] {
                if let Some(t) = v[k].as_str() {
                    out.push(t.to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Files under `dir` holding any of `secrets` in clear.
fn files_holding(dir: &std::path::Path, secrets: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let bytes = std::fs::read(&path).unwrap_or_default();
                let text = String::from_utf8_lossy(&bytes);
                if secrets.iter().any(|s| text.contains(s.as_str())) {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    found
}

#[test]
fn after_a_full_sso_session_no_token_is_in_clear_under_home() {
    let _turn = DOUBLE.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestEnv::new("sso_no_clear");
    world(&t, "unused");
    let path = browser(&t);
    let since = recording().len();
    // PKCE and device-code sign-ins, a refresh, role credentials, a
    // populate: every kind of token the double hands out.
    policy("approve", "approve");
    t.vault(&["exec", "admin", "--json"])
        .env("PATH", &path)
        .run()
        .success();
    expire_access_token(&t);
    t.exec_json("ro", &[]);
    reboot(&t);
    t.exec_json("legacy", &["--use-device-code"]);
    t.vault(&["sso", "populate", "corp", "--dry-run"])
        .run()
        .success();
    policy("manual", "manual");
    let secrets = tokens_seen(since);
    assert!(secrets.len() >= 6, "{secrets:?}");
    // HOME and vault's data, cache, config and runtime folders (the
    // keychain's own files included: it keeps them encrypted).
    let found = files_holding(&t.dir, &secrets);
    assert!(found.is_empty(), "tokens in clear in {found:?}");
}

/// As aws-vault's `clear` forgets its OIDC tokens: `vault clear PROFILE`
/// signs that profile's sso-session out (memory and keychain), a role
/// chained on it keeps the sign-in, and `vault clear` signs every session
/// out; the next use signs in again, it does not refresh.
#[test]
fn clear_signs_out_of_sso_so_the_next_use_signs_in_again() {
    let _turn = DOUBLE.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestEnv::new("sso_clear");
    world(&t, "unused");
    policy("approve", "manual");
    t.exec_json("admin", &["--use-device-code"]);

    // Clearing a profile that is not an SSO one keeps the sign-in: the
    // next call needs neither a sign-in nor a refresh.
    let run = t.vault(&["clear", "chained", "--force"]).run().success();
    assert!(!run.stdout.contains("signed out"), "{}", run.stdout);
    let since = recording().len();
    t.exec_json("ro", &["--use-device-code"]);
    assert_eq!(
        actions_since(since),
        vec![("GetRoleCredentials".to_string(), None)]
    );

    let run = t.vault(&["clear", "admin", "--force"]).run().success();
    assert!(
        run.stdout
            .contains("signed out of 1 IAM Identity Center sign-in(s)"),
        "{}",
        run.stdout
    );
    // Even after a reboot nothing is kept: a new device authorization,
    // no refresh grant.
    reboot(&t);
    let since = recording().len();
    t.exec_json("ro", &["--use-device-code"]);
    let actions = actions_since(since);
    assert_eq!(
        count(&actions, "StartDeviceAuthorization"),
        1,
        "{actions:?}"
    );
    assert!(
        !actions.contains(&("CreateToken".to_string(), Some("refresh_token".to_string()))),
        "{actions:?}"
    );

    // Without a profile: every sign-in, and the count says so.
    let run = t.vault(&["clear", "--force"]).run().success();
    assert!(
        run.stdout
            .contains("signed out of 1 IAM Identity Center sign-in(s)"),
        "{}",
        run.stdout
    );
    let run = t.vault(&["clear", "--force"]).run().success();
    assert_eq!(run.stdout.trim(), "Cleared 0 session(s).");
    reboot(&t);
    let since = recording().len();
    t.exec_json("legacy", &["--use-device-code"]);
    t.exec_json("admin", &["--use-device-code"]);
    let actions = actions_since(since);
    // The legacy profile's start URL without a session name is a sign-in
    // of its own; admin's was signed out too.
    assert_eq!(
        count(&actions, "StartDeviceAuthorization"),
        2,
        "{actions:?}"
    );
    no_sso_cache_on_disk(&t);
}

/// Issue 15.3: with a YubiKey enrolled, the kept refresh token and its
/// registration are sealed to it (an envelope in the keychain, nothing
/// readable), and after a reboot renewing the sign-in takes one PIN and
/// one touch; the role credentials after it take none. Without the key
/// the run signs in again in the browser instead of failing.
#[test]
fn with_a_yubikey_enrolled_the_kept_sign_in_is_sealed_to_it() {
    use support::token::{self as tok, Secrets};
    use support::vyk::TestKey;
    let _turn = DOUBLE.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestEnv::new("sso_sealed");
    world(&t, "unused");
    let key = TestKey::start();
    let s = Secrets::new();
    tok::enroll(&t, &key, &s, &[]);
    policy("approve", "manual");
    tok::hw(&t, &s, &["exec", "admin", "--json", "--use-device-code"])
        .run()
        .success();

    // What the keychain keeps is an envelope: none of the tokens the double
    // handed out, no client secret, and not JSON.
    let keychain = tok::keychain(&t);
    let items: Vec<String> = keychain
        .list()
        .unwrap()
        .into_iter()
        .filter(|i| i.starts_with("sso/"))
        .collect();
    assert_eq!(items.len(), 1, "{items:?}");
    let kept = keychain.get(&items[0]).unwrap().unwrap();
    assert!(kept.expose().starts_with(b"VLTE"), "not sealed");
    let text = String::from_utf8_lossy(kept.expose()).into_owned();
    for token in tokens_seen(0) {
        assert!(!text.contains(&token), "a token in the keychain in clear");
    }

    // After a reboot: one touch renews the sign-in (no browser), and the
    // next role's credentials need no touch.
    policy("manual", "manual");
    reboot(&t);
    let touched_before = support_touches(&key);
    let since = recording().len();
    let run = tok::hw(&t, &s, &["exec", "ro", "--json", "--use-device-code"])
        .run()
        .success();
    assert!(
        caller_arn(&t, &JsonCreds::parse(&run.stdout)).contains("AWSReservedSSO_ReadOnlyAccess_")
    );
    assert_eq!(
        actions_since(since),
        vec![
            ("CreateToken".to_string(), Some("refresh_token".to_string())),
            ("GetRoleCredentials".to_string(), None)
        ]
    );
    assert_eq!(support_touches(&key) - touched_before, 1);
    tok::hw(&t, &s, &["exec", "admin", "--json", "--use-device-code"])
        .run()
        .success();
    assert_eq!(
        support_touches(&key) - touched_before,
        1,
        "a touch per role"
    );

    // The key unplugged after a reboot: a new sign-in in the browser, after
    // saying why, not a failure.
    reboot(&t);
    key.ctl("remove");
    policy("approve", "manual");
    let since = recording().len();
    let run = tok::hw(&t, &s, &["exec", "ro", "--json", "--use-device-code"])
        .env("VAULT_TOKEN_WAIT", "1s")
        .run()
        .success();
    assert_eq!(count(&actions_since(since), "StartDeviceAuthorization"), 1);
    assert!(
        run.stderr
            .contains("to renew the IAM Identity Center sign-in"),
        "{}",
        run.stderr
    );
    key.ctl("insert");
    no_sso_cache_on_disk(&t);
}

/// Touches the virtual key counted so far.
fn support_touches(key: &support::vyk::TestKey) -> usize {
    key.apdu_log()
        .iter()
        .filter(|e| e["touch"] == "given")
        .count()
}

/// Issue 15.2: the device code to compare is shown in a desktop
/// notification too, by a real notification service (dunst) on the rig's
/// session bus, and taken down when the sign-in is over, so no stale code
/// stays on screen.
#[test]
fn device_code_is_also_a_desktop_notification_closed_after_the_sign_in() {
    let _turn = DOUBLE.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestEnv::new("sso_device_notified");
    world(&t, "unused");
    policy("approve", "manual");
    let desktop = support::desktop::Notifications::start(&t.dir);

    let (_, run) = t.exec_json("admin", &["--use-device-code"]);
    let shown = "check that the page shows the code ";
    let at = run.stderr.find(shown).expect(&run.stderr) + shown.len();
    let code: String = run.stderr[at..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    assert_eq!(code.len(), 9, "{}", run.stderr);

    let log = desktop.monitored();
    let summary = format!("IAM Identity Center sign-in code {code}");
    assert!(
        log.contains(&format!("string \"{summary}\"")),
        "no notification with the code in:\n{log}"
    );
    assert_eq!(log.matches("member=Notify").count(), 1, "{log}");
    assert_eq!(
        log.matches("member=CloseNotification").count(),
        1,
        "the notification was not taken down:\n{log}"
    );
    // dunst itself had it: showing (closed notifications move to its
    // history) or still on screen, with the code.
    let history = desktop.dunstctl(&["history"]).unwrap();
    assert!(history.contains(&summary), "dunst's history: {history}");
    let displayed: u32 = desktop
        .dunstctl(&["count", "displayed"])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(displayed, 0, "still on screen after the sign-in");
}
