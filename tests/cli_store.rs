//! `vault add`, `list`, `remove` and `clear` through the real binary, with
//! each store backend, and how they act on the session cache: checked in
//! the strict STS's recording (a cleared cache means a new STS call).
//! The keys are real IAM users' keys: the strict STS accepts a request
//! only when signed with the secret it issued, so an accepted request
//! proves the store gave back the secret it was given.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use support::{aws_admin, session_token_requests, JsonCreds, Key, TestEnv};

/// GetSessionToken requests signed with `key_id` (proven read), each
/// asserted accepted; returns how many.
fn accepted_session_token_requests(key_id: &str) -> usize {
    let reqs = session_token_requests(key_id);
    for r in &reqs {
        assert_eq!((r.status, r.error.as_deref()), (200, None), "{reqs:?}");
    }
    reqs.len()
}

/// The `vault list` table row of `profile`.
fn row<'a>(table: &'a str, profile: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(profile))
        .unwrap_or_else(|| panic!("no row for {profile} in:\n{table}"))
}

/// add, list, exec, list again, clear, exec again: the same with every backend.
fn add_list_clear_with(name: &str, backend: &[&str], extra_env: &[(&str, &str)]) {
    let t = TestEnv::new(name);
    t.write_config("[profile p]\nregion = eu-west-1\n\n[profile other]\n");
    let key = t.key("alice");
    let vault = |args: &[&str]| {
        let mut a: Vec<&str> = backend.to_vec();
        a.extend_from_slice(args);
        let mut c = t.vault(&a);
        for (k, v) in extra_env {
            c = c.env(k, v);
        }
        c
    };

    let added = vault(&["add", "p", "--env"])
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .run()
        .success();
    let store = backend.get(1).copied().unwrap_or("keychain");
    assert_eq!(
        added.stdout,
        format!("Added credentials to profile \"p\" in the {store} store.\n")
    );

    let table = vault(&["list"]).run().success().stdout;
    let mut lines = table.lines();
    assert_eq!(
        lines.next(),
        Some(format!("{:<24} {:<24} Sessions", "Profile", "Credentials").as_str())
    );
    assert_eq!(row(&table, "p"), format!("{:<24} {:<24} -", "p", "p"));
    assert_eq!(
        row(&table, "other"),
        format!("{:<24} {:<24} -", "other", "-")
    );

    let exec_json = || JsonCreds::parse(&vault(&["exec", "p", "--json"]).run().success().stdout);
    let first = exec_json();
    assert_eq!(accepted_session_token_requests(&key.id), 1);

    let table = vault(&["list"]).run().success().stdout;
    let p = row(&table, "p");
    let prefix = format!("{:<24} {:<24} sts.GetSessionToken:", "p", "p");
    assert!(p.starts_with(&prefix), "{p:?}");
    let left = &p[prefix.len()..];
    // The MFA-less session of a key profile: 12 hours.
    assert!(left == "12h0m" || left == "11h59m", "{p:?}");

    assert_eq!(
        vault(&["list", "--profiles"]).run().success().stdout,
        "p\nother\n"
    );
    assert_eq!(
        vault(&["list", "--credentials"]).run().success().stdout,
        "p\n"
    );
    let sessions = vault(&["list", "--sessions"]).run().success().stdout;
    assert!(
        sessions.starts_with("p\tsts.GetSessionToken:") && sessions.matches('\n').count() == 1,
        "{sessions:?}"
    );

    // A cache hit: no new request, and the same credentials (the strict
    // STS gives fresh ones on every call).
    assert_eq!(exec_json(), first);
    assert_eq!(accepted_session_token_requests(&key.id), 1);

    assert_eq!(
        vault(&["clear"]).run().success().stdout,
        "Cleared 1 session(s).\n"
    );
    assert_eq!(vault(&["list", "--sessions"]).run().success().stdout, "");
    assert_ne!(exec_json().access_key_id, first.access_key_id);
    assert_eq!(
        accepted_session_token_requests(&key.id),
        2,
        "after clear, exec must call STS again"
    );
}

#[test]
fn add_list_clear_with_the_keychain_store() {
    add_list_clear_with("store_keychain", &[], &[]);
}

#[test]
fn add_list_clear_with_the_keyutils_store() {
    add_list_clear_with("store_keyutils", &["--backend", "keyutils"], &[]);
}

#[test]
fn add_list_clear_with_the_file_store() {
    add_list_clear_with(
        "store_file",
        &["--backend", "file"],
        &[("VAULT_FILE_PASSPHRASE", "correct horse battery staple")],
    );
}

#[test]
fn file_store_keeps_the_key_encrypted_on_disk() {
    let t = TestEnv::new("store_file_on_disk");
    t.write_config("[profile p]\n");
    let key = Key::random();
    t.vault(&["--backend", "file", "add", "p", "--env"])
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .env("VAULT_FILE_PASSPHRASE", "pass phrase")
        .run()
        .success();
    let dir = t.dir.join("data/vault/store");
    let mut files = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&key.secret) && !text.contains(&key.id));
        files += 1;
    }
    assert!(files > 0, "nothing in {}", dir.display());
    // Another passphrase does not open it.
    t.vault(&["--backend", "file", "list", "--credentials"])
        .env("VAULT_FILE_PASSPHRASE", "another phrase")
        .run()
        .fails_with(
            1,
            &format!(
                "vault: wrong passphrase for the file store in {}\n\
                 vault: hint: check VAULT_FILE_PASSPHRASE or type the passphrase again\n",
                dir.display()
            ),
        );
}

#[test]
fn remove_deletes_the_key_and_exec_then_says_to_add_it() {
    let t = TestEnv::new("store_remove");
    t.write_config("[profile p]\n");
    let key = t.key("alice");
    t.add("p", &key);
    t.exec_json("p", &[]);

    let out = t.vault(&["remove", "p", "--force"]).run().success();
    assert_eq!(
        out.stdout,
        "Deleted credentials of profile \"p\".\nDeleted 1 cached session(s).\n"
    );
    assert_eq!(
        t.vault(&["list", "--credentials"]).run().success().stdout,
        ""
    );
    assert_eq!(t.vault(&["list", "--sessions"]).run().success().stdout, "");
    t.vault(&["exec", "p", "--json"]).run().fails_with(
        1,
        "vault: no credentials stored for profile \"p\"\n\
         vault: hint: add them with `vault add p`\n",
    );
    assert_eq!(accepted_session_token_requests(&key.id), 1);

    t.vault(&["remove", "p", "--force"]).run().fails_with(
        1,
        "vault: no credentials stored for profile \"p\" in the keychain store\n\
         vault: hint: `vault list --credentials` shows which profiles have stored keys\n",
    );
}

#[test]
fn adding_a_new_key_clears_the_profiles_sessions() {
    let t = TestEnv::new("store_readd");
    t.write_config(&format!(
        "[profile p]\n\n[profile r]\nsource_profile = p\nrole_arn = {}\n\n[profile q]\n",
        t.role_arn("readd")
    ));
    // The new key is a second access key of the same IAM user, as when a
    // key is rotated; q is another user's.
    let old = t.key("alice");
    let user = t.user("alice").name;
    let made = aws_admin(&t, &["iam", "create-access-key", "--user-name", &user]);
    let new = Key {
        id: made["AccessKey"]["AccessKeyId"]
            .as_str()
            .unwrap()
            .to_string(),
        secret: made["AccessKey"]["SecretAccessKey"]
            .as_str()
            .unwrap()
            .to_string(),
    };
    let q = t.key("quinn");
    t.add("p", &old);
    t.add("q", &q);
    t.exec_json("p", &[]);
    t.exec_json("r", &[]);
    t.exec_json("q", &[]);
    assert_eq!(
        t.vault(&["list", "--sessions"])
            .run()
            .success()
            .stdout
            .lines()
            .count(),
        3
    );

    // A key replaced by hand (not rotated): sessions made with the old one
    // go, since the new key may be another user's.
    t.vault(&["add", "p", "--env", "--force"])
        .env("AWS_ACCESS_KEY_ID", &new.id)
        .env("AWS_SECRET_ACCESS_KEY", &new.secret)
        .run()
        .success();
    // p's session and the role built on p's key are gone; q's stays.
    let sessions = t.vault(&["list", "--sessions"]).run().success().stdout;
    assert!(
        sessions.starts_with("q\tsts.GetSessionToken:") && sessions.lines().count() == 1,
        "{sessions:?}"
    );
    t.exec_json("p", &[]);
    assert_eq!(accepted_session_token_requests(&old.id), 1);
    assert_eq!(
        accepted_session_token_requests(&new.id),
        1,
        "exec after add must use the new key"
    );
}

#[test]
fn clear_profile_clears_only_that_profiles_sessions() {
    let t = TestEnv::new("store_clear_one");
    t.write_config("[profile a]\n\n[profile b]\n");
    let (a, b) = (t.key("alice"), t.key("bob"));
    t.add("a", &a);
    t.add("b", &b);
    t.exec_json("a", &[]);
    t.exec_json("b", &[]);
    assert_eq!(
        t.vault(&["clear", "a"]).run().success().stdout,
        "Cleared 1 session(s).\n"
    );
    let sessions = t.vault(&["list", "--sessions"]).run().success().stdout;
    assert!(
        sessions.starts_with("b\t") && sessions.lines().count() == 1,
        "{sessions:?}"
    );
}

#[test]
fn stored_keys_work_without_a_config_file() {
    let t = TestEnv::new("store_no_config");
    assert!(!t.config.exists());
    let key = t.key("alice");
    t.add("solo", &key);
    let table = t.vault(&["list"]).run().success().stdout;
    assert_eq!(
        row(&table, "solo"),
        format!("{:<24} {:<24} -", "solo", "solo")
    );
    let (a, _) = t.exec_json("solo", &[]);
    let (b, _) = t.exec_json("solo", &[]);
    // The strict STS gives fresh credentials on every call: equal ones
    // and one request mean the second run was a cache hit.
    assert_eq!(a, b);
    assert_eq!(accepted_session_token_requests(&key.id), 1);
    // Signed for the default region.
    assert_eq!(session_token_requests(&key.id)[0].region, "us-east-1");
}

#[test]
fn credentials_are_given_even_when_the_session_cannot_be_cached() {
    // A full kernel keyring (its per-user quota is 20000 bytes for users
    // other than root) refuses new keys; so does one without write access,
    // which this test makes.
    let t = TestEnv::new("store_cache_full");
    t.write_config("[profile p]\n");
    let key = t.key("alice");
    t.add("p", &key);
    t.keyring_read_only();
    let (creds, run) = t.exec_json("p", &[]);
    assert_ne!(creds.access_key_id, key.id);
    assert_eq!(
        run.stderr,
        "vault: [warn] could not cache the sts.GetSessionToken session of p \
         (session cache: AccessDenied); the next run will call STS again\n"
    );
    assert_eq!(accepted_session_token_requests(&key.id), 1);
}
