//! MFA and role sessions as STS sees them (moto's recording): a TOTP code
//! is never sent twice, role profiles on the same source and MFA device
//! share one MFA session, and role chaining is capped at one hour.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{assume_role_requests, count_lines, session_token_requests, Key, TestEnv};

/// RFC 6238 TOTP (HMAC-SHA1, 6 digits, 30 s steps) of a hex seed, for the
/// current time or for the step given as second argument.
const TOTP_PY: &str = r#"import hashlib, hmac, struct, sys, time
key = bytes.fromhex(sys.argv[1])
step = int(sys.argv[2]) if len(sys.argv) > 2 else int(time.time()) // 30
mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
off = mac[-1] & 15
print("%06d" % ((struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 1000000))
"#;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn totp(script: &std::path::Path, seed: &str, step: u64) -> String {
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(seed)
        .arg(step.to_string())
        .output()
        .expect("python3");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_used_totp_code_is_not_sent_again() {
    let t = TestEnv::new("mfa_totp_wait");
    let seed = support::random(b"0123456789abcdef", 40);
    let script = t.script("totp.py", TOTP_PY);
    let serial = t.mfa_serial("carol");
    t.write_config(&format!(
        "[profile p]\nmfa_serial = {serial}\nmfa_process = python3 {} {seed}\n",
        script.display()
    ));
    let key = Key::random();
    t.add("p", &key);

    // Start early in a time step, so the second exec below is sure to come
    // while the first code is still the current one.
    let into_step = now() % 30.0;
    if into_step > 20.0 {
        std::thread::sleep(Duration::from_secs_f64(30.0 - into_step + 0.2));
    }
    let step_before = now() as u64 / 30;
    t.exec_json("p", &[]);
    let first = session_token_requests(&key.id);
    assert_eq!(first.len(), 1);
    let a = first[0].param("TokenCode").unwrap().to_string();
    let step_a = (step_before..=step_before + 1)
        .find(|&s| totp(&script, &seed, s) == a)
        .unwrap_or_else(|| panic!("code {a} is not the TOTP of the time of the call"));
    assert_eq!(first[0].param("SerialNumber"), Some(serial.as_str()));

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
    let b = both[1].param("TokenCode").unwrap();
    assert_ne!(b, a, "a used code was sent again");
    assert!(
        b == totp(&script, &seed, step_a + 1) || b == totp(&script, &seed, step_a + 2),
        "second code {b} is not the TOTP of a later step"
    );
}

#[test]
fn an_mfa_token_flag_is_not_sent_twice() {
    let t = TestEnv::new("mfa_token_reuse");
    let serial = t.mfa_serial("dave");
    t.write_config(&format!("[profile p]\nmfa_serial = {serial}\n"));
    let key = Key::random();
    t.add("p", &key);

    t.exec_json("p", &["--mfa-token", "123456"]);
    let reqs = session_token_requests(&key.id);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].param("TokenCode"), Some("123456"));
    assert_eq!(reqs[0].param("SerialNumber"), Some(serial.as_str()));

    t.vault(&["clear"]).run().success();
    let run = t
        .vault(&["exec", "p", "--json", "--mfa-token", "123456"])
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

    // Another code is fine.
    t.exec_json("p", &["--mfa-token", "654321"]);
    assert_eq!(session_token_requests(&key.id).len(), 2);
}

#[test]
fn roles_on_the_same_source_and_device_share_one_mfa_session() {
    let t = TestEnv::new("mfa_shared_session");
    let serial = t.mfa_serial("erin");
    let (mfa_process, counter) = t.counting_mfa_process("101010");
    let (arn1, arn2) = (t.role_arn("one"), t.role_arn("two"));
    t.write_config(&format!(
        "[profile p]\n\n\
         [profile r1]\nsource_profile = p\nrole_arn = {arn1}\nmfa_serial = {serial}\nmfa_process = {mfa_process}\n\n\
         [profile r2]\nsource_profile = p\nrole_arn = {arn2}\nmfa_serial = {serial}\nmfa_process = {mfa_process}\n"
    ));
    let key = Key::random();
    t.add("p", &key);

    let (c1, _) = t.exec_json("r1", &[]);
    let (c2, _) = t.exec_json("r2", &[]);
    assert_ne!(c1.access_key_id, c2.access_key_id);
    assert_eq!(session_token_requests(&key.id).len(), 1);
    let (a1, a2) = (assume_role_requests(&arn1), assume_role_requests(&arn2));
    assert_eq!((a1.len(), a2.len()), (1, 1));
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
    let key = Key::random();
    t.add("p", &key);

    let (_, run) = t.exec_json("b", &[]);
    assert_eq!(
        run.stderr,
        format!(
            "vault: warning: profile b: role chaining (assuming {arn_b} with the credentials \
             of another role) is capped by AWS at 1 hour; using 3600 s instead of 7200 s\n"
        )
    );
    let (a, b) = (assume_role_requests(&arn_a), assume_role_requests(&arn_b));
    assert_eq!((a.len(), b.len()), (1, 1));
    // a is assumed with the stored key, for as long as it asks.
    assert_eq!(a[0].key_id, key.id);
    assert_eq!(a[0].param("DurationSeconds"), Some("7200"));
    // b with a's credentials, capped.
    assert!(b[0].key_id.starts_with("ASIA"), "{}", b[0].key_id);
    assert_eq!(b[0].param("DurationSeconds"), Some("3600"));
    assert!(session_token_requests(&key.id).is_empty());

    // Not a chain: a alone keeps its two hours, without a warning.
    t.vault(&["clear"]).run().success();
    let (_, run) = t.exec_json("a", &[]);
    assert_eq!(run.stderr, "");
    let a = assume_role_requests(&arn_a);
    assert_eq!(a.len(), 2);
    assert_eq!(a[1].param("DurationSeconds"), Some("7200"));
}

#[test]
fn without_a_session_the_code_goes_with_assume_role() {
    let t = TestEnv::new("mfa_no_session_role");
    let serial = t.mfa_serial("ivan");
    let (mfa_process, counter) = t.counting_mfa_process("818181");
    let arn = t.role_arn("direct");
    t.write_config(&format!(
        "[profile p]\n\n[profile r]\nsource_profile = p\nrole_arn = {arn}\n\
         mfa_serial = {serial}\nmfa_process = {mfa_process}\n"
    ));
    let key = Key::random();
    t.add("p", &key);
    t.exec_json("r", &["--no-session"]);
    assert!(session_token_requests(&key.id).is_empty());
    let ar = assume_role_requests(&arn);
    assert_eq!(ar.len(), 1);
    assert_eq!(ar[0].key_id, key.id, "assumed with the stored key");
    assert_eq!(ar[0].param("SerialNumber"), Some(serial.as_str()));
    assert_eq!(ar[0].param("TokenCode"), Some("818181"));
    assert_eq!(count_lines(&counter), 1);
}

#[test]
fn duration_flag_sets_the_roles_duration_not_the_mfa_sessions() {
    let t = TestEnv::new("mfa_role_duration");
    let serial = t.mfa_serial("judy");
    let (mfa_process, _) = t.counting_mfa_process("929292");
    let arn = t.role_arn("long");
    t.write_config(&format!(
        "[profile p]\n\n[profile r]\nsource_profile = p\nrole_arn = {arn}\n\
         mfa_serial = {serial}\nmfa_process = {mfa_process}\n"
    ));
    let key = Key::random();
    t.add("p", &key);
    t.exec_json("r", &["--duration", "2h"]);
    let gst = session_token_requests(&key.id);
    assert_eq!(gst.len(), 1);
    assert_eq!(gst[0].param("DurationSeconds"), Some("3600"));
    let ar = assume_role_requests(&arn);
    assert_eq!(ar.len(), 1);
    assert_eq!(ar[0].param("DurationSeconds"), Some("7200"));
}
