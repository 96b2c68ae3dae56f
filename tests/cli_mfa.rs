//! MFA and role sessions as the rig's strict STS sees them (its
//! recording): a TOTP code is never sent twice, role profiles on the same
//! source and MFA device share one MFA session, and role chaining is capped
//! at one hour. Every key is a real IAM user's, every MFA device that
//! user's own, every role exists: each request checked here was accepted
//! (status 200, so signed with the stored secret), and each TokenCode is
//! compared with RFC 6238 of the device's seed.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use std::time::{Duration, Instant};
use support::{
    assume_role_requests, count_lines, now_secs, session_token_requests, IamUser, StsRequest,
    TestEnv,
};

/// Asserts `r` was accepted and carried `user`'s device and a code of it
/// for the current time (within the window STS accepts).
fn assert_mfa_accepted(r: &StsRequest, user: &IamUser) {
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.param("SerialNumber"), Some(user.mfa_serial.as_str()));
    let code = r
        .param("TokenCode")
        .unwrap_or_else(|| panic!("no TokenCode: {r:?}"));
    assert!(
        user.is_current_code(code),
        "TokenCode {code} is not the RFC 6238 code of {}'s seed for now",
        user.mfa_serial
    );
}

/// Waits, if need be, until at most `secs` seconds of the current TOTP
/// step have gone, so what follows runs within one step.
fn early_in_a_step(secs: u64) {
    let into = now_secs() % 30;
    if into > secs {
        std::thread::sleep(Duration::from_secs(30 - into) + Duration::from_millis(200));
    }
}

#[test]
fn a_used_totp_code_is_not_sent_again() {
    let t = TestEnv::new("mfa_totp_wait");
    let user = t.user("carol");
    let serial = user.mfa_serial.clone();
    t.write_config(&format!(
        "[profile p]\nmfa_serial = {serial}\nmfa_process = {}\n",
        user.mfa_process()
    ));
    let key = &user.key;
    t.add("p", key);

    // Start early in a time step, so the second exec below is sure to come
    // while the first code is still the current one.
    early_in_a_step(20);
    let step_before = now_secs() / 30;
    t.exec_json("p", &[]);
    let first = session_token_requests(&key.id);
    assert_eq!(first.len(), 1);
    assert_mfa_accepted(&first[0], &user);
    let a = first[0].param("TokenCode").unwrap().to_string();
    let step_a = (step_before..=step_before + 1)
        .find(|&s| user.code_at(s) == a)
        .unwrap_or_else(|| panic!("code {a} is not the TOTP of the time of the call"));

    t.vault(&["clear"]).run().success();
    let started = Instant::now();
    let run = t
        .vault(&["exec", "p", "--json"])
        .deadline(Duration::from_secs(60))
        .run()
        .success();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(35), "waited {took:?}");
    assert!(
        run.stderr.starts_with(&format!(
            "vault: The last MFA code for {serial} was already used; waiting "
        )) && run.stderr.ends_with(" s for the next one\n")
            && run.stderr.lines().count() == 1,
        "{}",
        run.stderr
    );

    let both = session_token_requests(&key.id);
    assert_eq!(both.len(), 2);
    assert_mfa_accepted(&both[1], &user);
    let b = both[1].param("TokenCode").unwrap();
    assert_ne!(b, a, "a used code was sent again");
    assert!(
        b == user.code_at(step_a + 1) || b == user.code_at(step_a + 2),
        "second code {b} is not the TOTP of a later step"
    );
}

#[test]
fn an_mfa_token_flag_is_not_sent_twice() {
    let t = TestEnv::new("mfa_token_reuse");
    let user = t.user("dave");
    t.write_config(&format!("[profile p]\nmfa_serial = {}\n", user.mfa_serial));
    let key = &user.key;
    t.add("p", key);

    // Early in a step: the next step's code, given last, is then one STS
    // takes (within a step of now).
    early_in_a_step(15);
    let step = now_secs() / 30;
    let code = user.code_at(step);
    t.exec_json("p", &["--mfa-token", &code]);
    let reqs = session_token_requests(&key.id);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].param("TokenCode"), Some(code.as_str()));
    assert_mfa_accepted(&reqs[0], &user);
    // The used code is remembered in the kernel keyring (memory only), as
    // a hash: no key of the test's keyring holds the code itself, and the
    // record of the device is there.
    let keys = t
        .cmd(
            "sh",
            &[
                "-c",
                "for k in $(keyctl rlist @s); do echo \"$(keyctl rdescribe \"$k\") $(keyctl pipe \"$k\" | base64 -w0)\"; done",
            ],
        )
        .run()
        .success();
    assert!(keys.stdout.contains(";vault:mfa:"), "{}", keys.stdout);
    use base64::Engine;
    for line in keys.stdout.lines() {
        let payload = line.rsplit(' ').next().unwrap_or("");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(payload)
            .unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&raw).contains(&code),
            "the code is kept in clear: {line}"
        );
    }

    t.vault(&["clear"]).run().success();
    let run = t
        .vault(&["exec", "p", "--json", "--mfa-token", &code])
        .run();
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stdout, "");
    let ago = run
        .stderr
        .strip_prefix("vault: the MFA code given with --mfa-token was already used ")
        .and_then(|r| r.split_once(" s ago; AWS accepts each code once\n"));
    assert!(
        matches!(ago, Some((n, rest)) if n.parse::<u64>().is_ok_and(|n| n < 10)
            && rest == "vault: hint: wait for the next code and pass that one\n"),
        "{}",
        run.stderr
    );
    assert_eq!(
        session_token_requests(&key.id).len(),
        1,
        "the used code reached STS"
    );

    // Another code is fine: the next step's.
    let next = user.code_at(step + 1);
    assert_ne!(next, code, "two steps with one code: run the test again");
    t.exec_json("p", &["--mfa-token", &next]);
    let reqs = session_token_requests(&key.id);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].param("TokenCode"), Some(next.as_str()));
    assert_mfa_accepted(&reqs[1], &user);
}

#[test]
fn roles_on_the_same_source_and_device_share_one_mfa_session() {
    let t = TestEnv::new("mfa_shared_session");
    let user = t.user("erin");
    let serial = &user.mfa_serial;
    let (mfa_process, counter) = t.counting_mfa_process_of(&user);
    let (arn1, arn2) = (t.role_arn("one"), t.role_arn("two"));
    t.write_config(&format!(
        "[profile p]\n\n\
         [profile r1]\nsource_profile = p\nrole_arn = {arn1}\nmfa_serial = {serial}\nmfa_process = {mfa_process}\n\n\
         [profile r2]\nsource_profile = p\nrole_arn = {arn2}\nmfa_serial = {serial}\nmfa_process = {mfa_process}\n"
    ));
    let key = &user.key;
    t.add("p", key);

    let (c1, _) = t.exec_json("r1", &[]);
    let (c2, _) = t.exec_json("r2", &[]);
    assert_ne!(c1.access_key_id, c2.access_key_id);
    let gst = session_token_requests(&key.id);
    assert_eq!(gst.len(), 1);
    assert_mfa_accepted(&gst[0], &user);
    // The MFA session as the roles' source: 12 h.
    assert_eq!(gst[0].param("DurationSeconds"), Some("43200"));
    let (a1, a2) = (assume_role_requests(&arn1), assume_role_requests(&arn2));
    assert_eq!((a1.len(), a2.len()), (1, 1));
    for a in [&a1[0], &a2[0]] {
        assert_eq!(a.status, 200, "{a:?}");
        // The MFA went with the session, not with AssumeRole.
        assert_eq!(a.param("TokenCode"), None, "{a:?}");
    }
    assert!(a1[0].key_id.starts_with("ASIA"), "{}", a1[0].key_id);
    assert_eq!(
        a1[0].key_id, a2[0].key_id,
        "both roles assumed with one session"
    );
    assert_eq!(count_lines(&counter), 1);

    let sessions = t.vault(&["list", "--sessions"]).run().success().stdout;
    let mut kinds: Vec<&str> = sessions
        .lines()
        .map(|l| l.split(':').next().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "p\tsts.GetSessionToken",
            "r1\tsts.AssumeRole",
            "r2\tsts.AssumeRole"
        ]
    );
}

#[test]
fn role_chaining_is_capped_at_one_hour_with_a_warning() {
    let t = TestEnv::new("mfa_role_chaining");
    let (arn_a, arn_b) = (t.role_arn("a"), t.role_arn("b"));
    t.write_config(&format!(
        "[profile p]\n\n\
         [profile a]\nsource_profile = p\nrole_arn = {arn_a}\nduration_seconds = 7200\n\n\
         [profile b]\nsource_profile = a\nrole_arn = {arn_b}\nduration_seconds = 7200\n"
    ));
    let key = t.key("frank");
    t.add("p", &key);

    let (_, run) = t.exec_json("b", &[]);
    assert_eq!(
        run.stderr,
        format!(
            "vault: warning: profile b: AWS caps a role assumed with temporary credentials \
             (role chaining) at 1 hour; assuming {arn_b} for 3600 s instead of 7200 s\n"
        )
    );
    let (a, b) = (assume_role_requests(&arn_a), assume_role_requests(&arn_b));
    assert_eq!((a.len(), b.len()), (1, 1));
    // a is assumed with the stored key, for as long as it asks.
    assert_eq!(a[0].key_id, key.id);
    assert_eq!(a[0].status, 200, "{:?}", a[0]);
    assert_eq!(a[0].param("DurationSeconds"), Some("7200"));
    // b with a's credentials, capped: STS takes it.
    assert!(b[0].key_id.starts_with("ASIA"), "{}", b[0].key_id);
    assert_eq!(b[0].status, 200, "{:?}", b[0]);
    assert_eq!(b[0].param("DurationSeconds"), Some("3600"));
    assert!(session_token_requests(&key.id).is_empty());

    // Not a chain: a alone keeps its two hours, without a warning.
    t.vault(&["clear"]).run().success();
    let (_, run) = t.exec_json("a", &[]);
    assert_eq!(run.stderr, "");
    let a = assume_role_requests(&arn_a);
    assert_eq!(a.len(), 2);
    assert_eq!(a[1].key_id, key.id);
    assert_eq!(a[1].status, 200, "{:?}", a[1]);
    assert_eq!(a[1].param("DurationSeconds"), Some("7200"));
}

#[test]
fn without_a_session_the_code_goes_with_assume_role() {
    let t = TestEnv::new("mfa_no_session_role");
    let user = t.user("ivan");
    let (mfa_process, counter) = t.counting_mfa_process_of(&user);
    let arn = t.role_arn("direct");
    t.write_config(&format!(
        "[profile p]\n\n[profile r]\nsource_profile = p\nrole_arn = {arn}\n\
         mfa_serial = {}\nmfa_process = {mfa_process}\n",
        user.mfa_serial
    ));
    let key = &user.key;
    t.add("p", key);
    t.exec_json("r", &["--no-session"]);
    assert!(session_token_requests(&key.id).is_empty());
    let ar = assume_role_requests(&arn);
    assert_eq!(ar.len(), 1);
    assert_eq!(ar[0].key_id, key.id, "assumed with the stored key");
    assert_mfa_accepted(&ar[0], &user);
    assert_eq!(count_lines(&counter), 1);
}

#[test]
fn duration_flag_sets_the_roles_duration_not_the_mfa_sessions() {
    let t = TestEnv::new("mfa_role_duration");
    // Two users, each with a role profile on its own key and device, so
    // the second run needs no wait for a fresh code.
    let (judy, kim) = (t.user("judy"), t.user("kim"));
    let (short_process, _) = t.counting_mfa_process_of(&judy);
    let arn = t.role_arn("long");
    t.write_config(&format!(
        "[profile p]\n\n[profile r]\nsource_profile = p\nrole_arn = {arn}\n\
         mfa_serial = {}\nmfa_process = {short_process}\n\n\
         [profile q]\n\n[profile s]\nsource_profile = q\nrole_arn = {arn}\n\
         mfa_serial = {}\nmfa_process = {}\n",
        judy.mfa_serial,
        kim.mfa_serial,
        kim.mfa_process()
    ));
    t.add("p", &judy.key);
    t.add("q", &kim.key);

    // Up to an hour: the MFA session keeps its 12 h, the role gets --duration.
    t.exec_json("r", &["--duration", "30m"]);
    let gst = session_token_requests(&judy.key.id);
    assert_eq!(gst.len(), 1);
    assert_mfa_accepted(&gst[0], &judy);
    assert_eq!(gst[0].param("DurationSeconds"), Some("43200"));
    let ar = assume_role_requests(&arn);
    assert_eq!(ar.len(), 1);
    assert_eq!(ar[0].status, 200, "{:?}", ar[0]);
    // With the MFA session's credentials.
    assert!(ar[0].key_id.starts_with("ASIA"), "{}", ar[0].key_id);
    assert_eq!(ar[0].param("DurationSeconds"), Some("1800"));

    // Over an hour: STS would cap a role assumed with the MFA session, so
    // the role is assumed straight from the long-term key with the code,
    // for the whole --duration, and no MFA session is made.
    t.exec_json("s", &["--duration", "2h"]);
    assert!(session_token_requests(&kim.key.id).is_empty());
    let ar = assume_role_requests(&arn);
    assert_eq!(ar.len(), 2);
    assert_eq!(ar[1].key_id, kim.key.id);
    assert_mfa_accepted(&ar[1], &kim);
    assert_eq!(ar[1].param("DurationSeconds"), Some("7200"));
}
