//! `vault rotate` through the real binary against the rig's strict STS and
//! IAM (moto's bookkeeping behind it):
//! `hw/rig -- cargo test -p vault --test cli_rotate`.
//!
//! Each test makes an IAM user of its own (`TestEnv::user`: an access key
//! and an enabled virtual MFA device whose seed the test knows), stores its
//! key with `vault add`, rotates it, and checks the outcome where it
//! happened: IAM's own `list-access-keys`, the store (read through the
//! library), the STS's request recording, and `vault exec` with the stored
//! key. The strict STS verifies every signature with the secret it issued
//! for the key id and answers GetCallerIdentity with the real principal,
//! so `exec --no-session -- aws sts get-caller-identity` accepted (status
//! 200 in the recording, signed with the expected key id) and naming the
//! user proves the stored key is a live one, secret included.
//!
//! Failures are injected by the test proxy (`support::proxy`) on 127.0.0.1
//! in front of moto (`AWS_ENDPOINT_URL_IAM` / `AWS_ENDPOINT_URL_STS`
//! pointed at it), which answers chosen actions with an error instead of
//! forwarding them.
//!
//! Outside the rig every test fails with instructions, never passes.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use serde_json::Value;
use support::aws_admin as aws;
use support::proxy::{self, Answer};
use support::token::{self, Secrets};
use support::vyk::TestKey;
use support::{
    session_token_requests, sts_requests_until_now, IamUser, Key, Run, StsRequest, TestEnv,
};
use vault_base::secret::mask_key_id as mask;

// ------------------------------------------------------------------ harness

/// IAM user `NAME-TAG` of this test (`TestEnv::user`: its key and an
/// enabled MFA device) with `keys` access keys in all, its own first.
fn iam_user(t: &TestEnv, name: &str, keys: usize) -> (IamUser, Vec<Key>) {
    let u = t.user(name);
    let mut all = vec![u.key.clone()];
    for _ in 1..keys {
        let out = aws(t, &["iam", "create-access-key", "--user-name", &u.name]);
        all.push(Key {
            id: out["AccessKey"]["AccessKeyId"]
                .as_str()
                .unwrap()
                .to_string(),
            secret: out["AccessKey"]["SecretAccessKey"]
                .as_str()
                .unwrap()
                .to_string(),
        });
    }
    (u, all)
}

/// The user's access key IDs as moto lists them, sorted.
fn keys_in_aws(t: &TestEnv, user: &str) -> Vec<String> {
    let out = aws(t, &["iam", "list-access-keys", "--user-name", user]);
    let mut ids: Vec<String> = out["AccessKeyMetadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["AccessKeyId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// The access key ID in the test's keychain for `profile`, read through
/// the library from the Secret Service directly.
fn stored_id(t: &TestEnv, profile: &str) -> Option<String> {
    vault_secrets::store::get_key(token::keychain(t).as_ref(), profile)
        .unwrap_or_else(|e| panic!("read the keychain: {e}"))
        .map(|k| k.access_key_id)
}

/// GetCallerIdentity requests signed with `key_id`, from a recording
/// proven written up to now.
fn caller_identity_requests(key_id: &str) -> Vec<StsRequest> {
    requests("GetCallerIdentity")
        .into_iter()
        .filter(|r| r.key_id == key_id)
        .collect()
}

/// Asserts that `run` (an `aws sts get-caller-identity --output json`)
/// made one GetCallerIdentity signed with `key_id` since `before` such
/// requests, that the strict STS accepted it (it verified the signature
/// with the secret it issued for `key_id`), and that it named `user`.
fn assert_live(run: &Run, key_id: &str, before: usize, user: &IamUser) {
    let after = caller_identity_requests(key_id);
    assert_eq!(after.len(), before + 1, "{after:?}");
    assert_eq!(after[before].status, 200, "{:?}", after[before]);
    let v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout));
    assert_eq!(v["Arn"], user.arn.as_str(), "{}", run.stdout);
}

/// Proves profile `profile`'s stored key is `key_id`, a live key of
/// `user`, secret included: `exec --no-session -- aws sts
/// get-caller-identity` with it is accepted and answers the user's ARN.
fn assert_stored_key_live(
    t: &TestEnv,
    profile: &str,
    key_id: &str,
    user: &IamUser,
    extra_env: &[(&str, &str)],
) {
    let before = caller_identity_requests(key_id).len();
    let mut c = t.vault(&[
        "exec",
        profile,
        "--no-session",
        "--",
        "aws",
        "sts",
        "get-caller-identity",
        "--output",
        "json",
    ]);
    for (k, v) in extra_env {
        c = c.env(k, v);
    }
    let run = c.run().success();
    assert_live(&run, key_id, before, user);
}

/// Proves `id` and `secret` are a live key of `user`: the AWS CLI's
/// GetCallerIdentity signed with them is accepted and answers the user's ARN.
fn assert_key_live(t: &TestEnv, id: &str, secret: &str, user: &IamUser) {
    let before = caller_identity_requests(id).len();
    let run = t
        .cmd("aws", &["sts", "get-caller-identity", "--output", "json"])
        .env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_PAGER", "")
        .run()
        .success();
    assert_live(&run, id, before, user);
}

/// Requests with this action, from a recording proven written up to now.
fn requests(action: &str) -> Vec<StsRequest> {
    sts_requests_until_now()
        .into_iter()
        .filter(|r| r.action() == action)
        .collect()
}

/// IAM requests with this action for `user`.
fn iam_requests(action: &str, user: &str) -> Vec<StsRequest> {
    requests(action)
        .into_iter()
        .filter(|r| r.param("UserName") == Some(user) && !by_admin(r))
        .collect()
}

/// Whether the rig's administrator signed `r` (the test's own set-up and
/// look-ups: making keys, `list-access-keys`), not vault.
fn by_admin(r: &StsRequest) -> bool {
    let admin = std::env::var("VAULT_RIG_ADMIN_AWS_ACCESS_KEY_ID")
        .expect("VAULT_RIG_ADMIN_AWS_ACCESS_KEY_ID: is hw/rig up to date?");
    r.key_id == admin
}

/// `vault rotate PROFILE` with `env`; its transcript goes to the test's
/// output (shown for failing tests, or with --nocapture).
fn rotate(t: &TestEnv, profile: &str, env: &[(&str, &str)]) -> Run {
    let mut c = t.vault(&["rotate", profile]);
    for (k, v) in env {
        c = c.env(k, v);
    }
    let run = c.run();
    eprintln!(
        "[cli_rotate] {}: vault rotate {profile} → exit {:?} in {:?}\n{}{}",
        t.name, run.code, run.elapsed, run.stdout, run.stderr
    );
    run
}

// -------------------------------------------------------- the fault proxy

/// The error every injected fault carries.
const INJECTED: &str = "injected by the test proxy";

/// A proxy that fails every request of `action` with a 500 ServiceFailure.
fn iam_fault(action: &'static str) -> proxy::Proxy {
    proxy::start(&proxy::moto_url(), move |r| {
        if r.action == action {
            Answer::fault(500, "ServiceFailure", INJECTED)
        } else {
            Answer::Forward
        }
    })
}

// -------------------------------------------------------------------- tests

#[test]
fn rotates_with_one_mfa_code_and_deletes_the_old_key_only_after_the_new_one_works() {
    let t = TestEnv::new("rotate_mfa");
    let (u, keys) = iam_user(&t, "rot-u", 1);
    let user = u.name.clone();
    let (process, counter) = t.counting_mfa_process_of(&u);
    let serial = u.mfa_serial.clone();
    t.write_config(&format!(
        "[profile p]\nregion = us-east-1\nmfa_serial = {serial}\nmfa_process = {process}\n"
    ));
    let old = &keys[0];
    t.add("p", old);

    let mark = sts_requests_until_now().len();
    let run = rotate(&t, "p", &[]).success();
    let during: Vec<StsRequest> = sts_requests_until_now().split_off(mark);
    let listed = keys_in_aws(&t, &user);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let new = listed[0].clone();
    assert_ne!(new, old.id);
    assert_eq!(
        run.stdout,
        format!(
            "Rotated the access key of profile \"p\": {} replaced by {}.\n",
            mask(&old.id),
            mask(&new)
        )
    );
    for line in [
        format!(
            "Rotating the access key {} of profile \"p\" (IAM user {user}).",
            mask(&old.id)
        ),
        format!("Created the new access key {}.", mask(&new)),
        "Stored it in the keychain store in place of the old one.".to_string(),
        format!("The new key works (GetCallerIdentity: {}).", u.arn),
        format!("Deleted the old access key {}.", mask(&old.id)),
    ] {
        assert!(
            run.stderr.lines().any(|l| l == line),
            "no {line:?} in:\n{}",
            run.stderr
        );
    }
    assert!(!run.stderr.contains(&old.secret));

    // One MFA code, one session, and every IAM call made with it.
    assert_eq!(support::count_lines(&counter), 1, "one MFA code in all");
    let sessions = session_token_requests(&old.id);
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].status, 200, "{:?}", sessions[0]);
    assert_eq!(sessions[0].param("SerialNumber"), Some(serial.as_str()));
    let code = sessions[0].param("TokenCode").expect("a TokenCode");
    assert!(
        u.is_current_code(code),
        "TokenCode {code} is not the RFC 6238 code of the device's seed for now"
    );
    assert!(session_token_requests(&new).is_empty());
    // Every IAM call of the rotation signed by one key: the session's.
    let iam: Vec<&StsRequest> = during
        .iter()
        .filter(|r| r.param("UserName") == Some(user.as_str()) && !by_admin(r))
        .collect();
    let actions: Vec<&str> = iam.iter().map(|r| r.action()).collect();
    assert_eq!(
        actions,
        ["ListAccessKeys", "CreateAccessKey", "DeleteAccessKey"]
    );
    let signer = &iam[0].key_id;
    assert!(
        iam.iter().all(|r| &r.key_id == signer)
            && signer.starts_with("ASIA")
            && *signer != old.id
            && *signer != new,
        "IAM calls not all signed by the MFA session: {iam:?}"
    );
    // Accepted: the strict STS lets a GetSessionToken session reach IAM
    // only when it was made with MFA.
    assert!(iam.iter().all(|r| r.status == 200), "{iam:?}");
    let delete = during
        .iter()
        .position(|r| r.action() == "DeleteAccessKey" && r.param("UserName") == Some(&user))
        .unwrap();
    assert_eq!(during[delete].param("AccessKeyId"), Some(old.id.as_str()));
    // The new key proved itself (accepted, so with its real secret)
    // before the old one went.
    let proof = during
        .iter()
        .position(|r| r.action() == "GetCallerIdentity" && r.key_id == new && r.status == 200)
        .unwrap_or_else(|| panic!("no accepted GetCallerIdentity with the new key: {during:?}"));
    assert!(
        proof < delete,
        "the old key went before the new one was proven"
    );

    // The store holds the new key and it works.
    assert_eq!(stored_id(&t, "p"), Some(new.clone()));
    assert_stored_key_live(&t, "p", &new, &u, &[]);
    // The rotation's MFA session stays cached (STS sessions outlive the
    // key that made them): the next exec needs no code and no wait, and
    // AWS accepts the session although its key is deleted.
    assert!(
        !t.vault(&["list", "--sessions"])
            .run()
            .success()
            .stdout
            .is_empty(),
        "the rotation's session was dropped"
    );
    let mark = sts_requests_until_now().len();
    let run = t
        .vault(&[
            "exec",
            "p",
            "--",
            "aws",
            "sts",
            "get-caller-identity",
            "--output",
            "json",
        ])
        .run()
        .success();
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["Arn"], u.arn.as_str());
    assert!(!run.stderr.contains("waiting"), "{}", run.stderr);
    assert_eq!(
        support::count_lines(&counter),
        1,
        "a second MFA code was asked"
    );
    // Other tests share the STS: only this user's keys and session count.
    assert!(session_token_requests(&new).is_empty());
    assert_eq!(session_token_requests(&old.id).len(), 1);
    let after: Vec<StsRequest> = sts_requests_until_now().split_off(mark);
    assert!(
        after
            .iter()
            .any(|r| r.action() == "GetCallerIdentity" && &r.key_id == signer && r.status == 200),
        "the aws call was not made (and accepted) with the rotation's session {signer}: {after:#?}"
    );
}

#[test]
fn a_cached_mfa_session_is_reused_so_rotate_asks_for_no_code() {
    let t = TestEnv::new("rotate_cached");
    let (u, keys) = iam_user(&t, "rot-u", 1);
    let user = u.name.clone();
    let (process, counter) = t.counting_mfa_process_of(&u);
    t.write_config(&format!(
        "[profile p]\nregion = us-east-1\nmfa_serial = {}\nmfa_process = {process}\n",
        u.mfa_serial
    ));
    t.add("p", &keys[0]);
    t.exec_json("p", &[]);
    assert_eq!(support::count_lines(&counter), 1);

    rotate(&t, "p", &[]).success();
    assert_eq!(support::count_lines(&counter), 1, "no second code");
    assert_eq!(session_token_requests(&keys[0].id).len(), 1);
    let listed = keys_in_aws(&t, &user);
    assert_eq!(listed.len(), 1);
    assert_ne!(listed[0], keys[0].id);
    // The IAM calls, made with the cached MFA session, were accepted.
    for action in ["ListAccessKeys", "CreateAccessKey", "DeleteAccessKey"] {
        let reqs = iam_requests(action, &user);
        assert!(
            reqs.len() == 1 && reqs[0].status == 200 && reqs[0].key_id.starts_with("ASIA"),
            "{action}: {reqs:?}"
        );
    }
    assert_eq!(stored_id(&t, "p").as_ref(), Some(&listed[0]));
    assert_stored_key_live(&t, "p", &listed[0], &u, &[]);
}

#[test]
fn without_mfa_the_stored_key_itself_calls_iam() {
    // AWS refuses IAM calls from a session made without MFA.
    let t = TestEnv::new("rotate_no_mfa");
    t.write_config("[profile p]\nregion = us-east-1\n");
    let (u, keys) = iam_user(&t, "rot-u", 1);
    let user = u.name.clone();
    let old = &keys[0];
    t.add("p", old);

    rotate(&t, "p", &[]).success();
    assert!(session_token_requests(&old.id).is_empty());
    for action in ["ListAccessKeys", "CreateAccessKey", "DeleteAccessKey"] {
        let reqs = iam_requests(action, &user);
        assert!(
            reqs.len() == 1 && reqs[0].key_id == old.id && reqs[0].status == 200,
            "{action} not signed with the stored key, or refused: {reqs:?}"
        );
    }
    let listed = keys_in_aws(&t, &user);
    assert_eq!(listed.len(), 1);
    assert_eq!(stored_id(&t, "p").as_ref(), Some(&listed[0]));
    assert_stored_key_live(&t, "p", &listed[0], &u, &[]);
}

#[test]
fn when_the_old_key_cannot_be_deleted_the_new_one_stays_stored_and_both_are_named() {
    let t = TestEnv::new("rotate_delete_fails");
    let (u, keys) = iam_user(&t, "rot-u", 1);
    let user = u.name.clone();
    let (process, counter) = t.counting_mfa_process_of(&u);
    t.write_config(&format!(
        "[profile p]\nregion = us-east-1\nmfa_serial = {}\nmfa_process = {process}\n",
        u.mfa_serial
    ));
    let old = &keys[0];
    t.add("p", old);
    let proxy = iam_fault("DeleteAccessKey");

    let run = rotate(&t, "p", &[("AWS_ENDPOINT_URL_IAM", proxy.url.as_str())]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(!proxy.faulted("DeleteAccessKey").is_empty());
    let listed = keys_in_aws(&t, &user);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let new = listed.iter().find(|k| **k != old.id).unwrap().clone();
    let message = format!(
        "vault: the new key {n} is stored and works, but the old key {o} could not be deleted \
         (IAM DeleteAccessKey failed: ServiceFailure: injected by the test proxy). \
         Access keys of IAM user \"{user}\" in AWS now: {n} (Active, stored), {o} (Active).\n",
        n = mask(&new),
        o = mask(&old.id)
    );
    assert!(run.stderr.contains(&message), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "vault: hint: the old key still works for whoever has it: delete it with \
             `vault exec p -- aws iam delete-access-key --user-name {user} --access-key-id ID`"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(support::count_lines(&counter), 1);

    // The new key was proven, so it is the one kept, and it works.
    assert_eq!(stored_id(&t, "p"), Some(new.clone()));
    assert_stored_key_live(&t, "p", &new, &u, &[]);
}

#[test]
fn when_no_key_can_be_created_nothing_changes() {
    let t = TestEnv::new("rotate_create_fails");
    t.write_config("[profile p]\nregion = us-east-1\n");
    let (u, keys) = iam_user(&t, "rot-u", 1);
    let user = u.name.clone();
    let old = &keys[0];
    t.add("p", old);
    let proxy = iam_fault("CreateAccessKey");

    let run = rotate(&t, "p", &[("AWS_ENDPOINT_URL_IAM", proxy.url.as_str())]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let message = format!(
        "vault: could not create a new access key for IAM user \"{user}\" \
         (IAM CreateAccessKey failed: ServiceFailure: injected by the test proxy); \
         nothing was changed: the old key {o} is still stored. \
         Access keys of IAM user \"{user}\" in AWS now: {o} (Active, stored).\n",
        o = mask(&old.id)
    );
    assert!(run.stderr.contains(&message), "{}", run.stderr);
    // Never retried: a lost answer could have made a key.
    assert_eq!(proxy.faulted("CreateAccessKey").len(), 1);
    assert_eq!(keys_in_aws(&t, &user), vec![old.id.clone()]);
    assert_eq!(stored_id(&t, "p"), Some(old.id.clone()));
    assert_stored_key_live(&t, "p", &old.id, &u, &[]);
}

#[test]
fn a_new_key_that_cannot_be_proven_is_deleted_again_and_the_old_one_stays() {
    let t = TestEnv::new("rotate_unproven");
    t.write_config("[profile p]\nregion = us-east-1\n");
    let (u, keys) = iam_user(&t, "rot-u", 1);
    let user = u.name.clone();
    let old = keys[0].clone();
    t.add("p", &old);
    // STS refuses every key but the old one.
    let old_id = old.id.clone();
    let sts = proxy::start(&proxy::moto_url(), move |r| {
        if r.action == "GetCallerIdentity" && r.key_id != old_id {
            Answer::fault(403, "InvalidClientTokenId", INJECTED)
        } else {
            Answer::Forward
        }
    });

    let run = rotate(
        &t,
        "p",
        &[
            ("AWS_ENDPOINT_URL_STS", sts.url.as_str()),
            ("VAULT_ROTATE_WAIT", "3s"),
        ],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    let new = iam_requests("DeleteAccessKey", &user)
        .last()
        .and_then(|r| r.param("AccessKeyId").map(str::to_string))
        .expect("the new key deleted again");
    assert_ne!(new, old.id);
    let refused: Vec<String> = sts
        .faulted("GetCallerIdentity")
        .into_iter()
        .map(|s| s.key_id)
        .collect();
    assert!(refused.len() >= 2, "retried while IAM propagates");
    assert!(refused.iter().all(|k| *k == new), "{refused:?}");
    assert!(run
        .stderr
        .lines()
        .any(|l| l == "Waiting for AWS to accept the new key…"));
    let message = format!(
        "vault: created the new access key {n} but could not prove it works \
         (STS GetCallerIdentity failed: InvalidClientTokenId: injected by the test proxy); \
         the old key {o} is stored again and {n} was deleted. \
         Access keys of IAM user \"{user}\" in AWS now: {o} (Active, stored).\n",
        n = mask(&new),
        o = mask(&old.id)
    );
    assert!(run.stderr.contains(&message), "{}", run.stderr);
    assert_eq!(keys_in_aws(&t, &user), vec![old.id.clone()]);
    assert_eq!(stored_id(&t, "p"), Some(old.id.clone()));
    assert_stored_key_live(&t, "p", &old.id, &u, &[]);
}

#[test]
fn when_an_unproven_key_cannot_be_deleted_either_both_keys_are_named() {
    let t = TestEnv::new("rotate_unproven_kept");
    t.write_config("[profile p]\nregion = us-east-1\n");
    let (u, keys) = iam_user(&t, "rot-u", 1);
    let user = u.name.clone();
    let old = keys[0].clone();
    t.add("p", &old);
    let old_id = old.id.clone();
    let both = proxy::start(&proxy::moto_url(), move |r| match r.action.as_str() {
        "GetCallerIdentity" if r.key_id != old_id => {
            Answer::fault(403, "InvalidClientTokenId", INJECTED)
        }
        "DeleteAccessKey" => Answer::fault(500, "ServiceFailure", INJECTED),
        _ => Answer::Forward,
    });

    let run = rotate(
        &t,
        "p",
        &[
            ("AWS_ENDPOINT_URL_STS", both.url.as_str()),
            ("AWS_ENDPOINT_URL_IAM", both.url.as_str()),
            ("VAULT_ROTATE_WAIT", "1s"),
        ],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    let listed = keys_in_aws(&t, &user);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let new = listed.iter().find(|k| **k != old.id).unwrap().clone();
    let message = format!(
        "vault: created the new access key {n} but could not prove it works \
         (STS GetCallerIdentity failed: InvalidClientTokenId: injected by the test proxy); \
         the old key {o} is stored again, but {n} could not be deleted \
         (IAM DeleteAccessKey failed: ServiceFailure: injected by the test proxy) and is stored nowhere. \
         Access keys of IAM user \"{user}\" in AWS now: {o} (Active, stored), {n} (Active).\n",
        n = mask(&new),
        o = mask(&old.id)
    );
    assert!(run.stderr.contains(&message), "{}", run.stderr);
    assert!(run.stderr.contains(&format!(
        "vault: hint: {} is of no use now: delete it with `vault exec p -- aws iam delete-access-key",
        mask(&new)
    )));
    assert_eq!(stored_id(&t, "p"), Some(old.id.clone()));
    assert_stored_key_live(&t, "p", &old.id, &u, &[]);
}

#[test]
fn refuses_a_user_that_already_has_two_keys() {
    let t = TestEnv::new("rotate_two_keys");
    t.write_config("[profile p]\nregion = us-east-1\n");
    let (u, keys) = iam_user(&t, "rot-u", 2);
    let user = u.name.clone();
    t.add("p", &keys[0]);

    let mark = sts_requests_until_now().len();
    let run = rotate(&t, "p", &[]);
    let during: Vec<StsRequest> = sts_requests_until_now().split_off(mark);
    assert_eq!(run.code, Some(1), "{run:?}");
    let message = format!(
        "vault: IAM user \"{user}\" already has two access keys, the most AWS allows, so there \
         is no room for a new one; nothing was changed. Access keys of IAM user \"{user}\" in AWS \
         now: {a} (Active, stored), {b} (Active).\n\
         vault: hint: if {b} is not used elsewhere, delete it with",
        a = mask(&keys[0].id),
        b = mask(&keys[1].id)
    );
    assert!(run.stderr.contains(&message), "{}", run.stderr);
    assert_eq!(keys_in_aws(&t, &user), sorted(&[&keys[0].id, &keys[1].id]));
    assert!(!during.iter().any(|r| r.action() == "CreateAccessKey"
        && r.param("UserName") == Some(user.as_str())
        && !by_admin(r)));
    assert_eq!(stored_id(&t, "p"), Some(keys[0].id.clone()));
}

#[test]
fn refuses_a_profile_whose_key_is_another_profiles() {
    let t = TestEnv::new("rotate_role");
    t.write_config(&format!(
        "[profile p]\nregion = us-east-1\n\n[profile r]\nsource_profile = p\nrole_arn = {}\n\n[profile s]\n",
        t.role_arn("rot")
    ));
    // Refused from the config alone: the key never reaches STS or IAM.
    let key = Key::random();
    t.add("p", &key);
    t.vault(&["rotate", "r"]).run().fails_with(
        1,
        "vault: profile \"r\" has no access key of its own: its credentials come from profile \"p\"\n\
         vault: hint: rotate that profile's key: vault rotate p\n",
    );
    t.vault(&["rotate", "s"]).run().fails_with(
        1,
        "vault: no credentials stored for profile \"s\"\n\
         vault: hint: add them with `vault add s`\n",
    );
    let made: Vec<StsRequest> = sts_requests_until_now()
        .into_iter()
        .filter(|r| r.key_id == key.id)
        .collect();
    assert!(made.is_empty(), "{made:?}");
}

// ------------------------------------------------------- token-backed

#[test]
fn a_token_backed_profile_is_sealed_again_to_the_new_key() {
    let key = TestKey::start();
    let t = TestEnv::new("rotate_token");
    t.write_config("[profile p]\nregion = us-east-1\n\n[profile q]\nregion = us-east-1\n");
    let s = Secrets {
        pin: "246810".into(),
        puk: "13579246".into(),
    };
    let hw = |args: &[&str]| token::hw(&t, &s, args);
    let serial = key.serial.to_string();
    // p: the key only in its envelope; q: with the store copy kept.
    let (user_p, keys_p) = iam_user(&t, "rot-p", 1);
    t.add("p", &keys_p[0]);
    let (user_q, keys_q) = iam_user(&t, "rot-q", 1);
    t.add("q", &keys_q[0]);
    token::enroll(&t, &key, &s, &["--profile", "p"]);
    token::enroll(&t, &key, &s, &["--profile", "q", "--keep-keychain-copy"]);
    assert_eq!(stored_id(&t, "p"), None);
    assert_eq!(stored_id(&t, "q"), Some(keys_q[0].id.clone()));
    let envelope = |profile: &str| token::envelope(&t, profile);
    let (env_p, env_q) = (envelope("p"), envelope("q"));

    for (profile, user, old, before, copy) in [
        ("p", &user_p, &keys_p[0], env_p, false),
        ("q", &user_q, &keys_q[0], env_q, true),
    ] {
        let run = hw(&["rotate", profile]).run().success();
        eprintln!(
            "[cli_rotate] rotate {profile}:\n{}{}",
            run.stdout, run.stderr
        );
        let listed = keys_in_aws(&t, &user.name);
        assert_eq!(listed.len(), 1, "{listed:?}");
        let new = listed[0].clone();
        assert_ne!(new, old.id);
        let sealed = format!(
            "Sealed it in profile \"{profile}\"'s envelope for YubiKey {serial}{}.",
            if copy {
                ", and replaced the kept copy in the keychain store"
            } else {
                ""
            }
        );
        assert!(
            run.stderr.lines().any(|l| l == sealed),
            "no {sealed:?} in:\n{}",
            run.stderr
        );
        assert_ne!(envelope(profile), before, "the envelope was sealed again");
        // The envelope unwraps (PIN, touch) to the new key, secret
        // included: the strict STS accepts a request signed with what it
        // hands out, and names the user.
        let (creds, _) = {
            let run = hw(&["exec", profile, "--no-session", "--json"])
                .run()
                .success();
            (support::JsonCreds::parse(&run.stdout), run)
        };
        assert_eq!(creds.access_key_id, new);
        assert_eq!(creds.session_token, None, "the long-term key itself");
        assert_key_live(&t, &creds.access_key_id, &creds.secret_access_key, user);
        // And a command run with the profile gets that live key.
        assert_stored_key_live(&t, profile, &new, user, &[("VAULT_PIN", &s.pin)]);
        // The kept copy follows the envelope; no copy appears where there was none.
        assert_eq!(
            stored_id(&t, profile),
            if copy { Some(new.clone()) } else { None }
        );
    }
}
