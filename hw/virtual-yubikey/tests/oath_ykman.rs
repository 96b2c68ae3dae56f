//! The OATH applet through real ykman (yubikey-manager 5.9), pcscd and
//! vpcd: what vault's users and its own OATH client will see. Runs in the
//! rig: `hw/rig -- cargo test -p virtual-yubikey --test oath_ykman`, and on a
//! spare real key (see hw/README.md): `VAULT_RIG_DESTRUCTIVE=1 hw/rig
//! --real-key SERIAL -- cargo test -p virtual-yubikey --test oath_ykman --
//! --test-threads=1`.

mod common;

use common::{run, skipped_on_real_key, TestKey};
use hmac::{Hmac, Mac};
use std::time::{SystemTime, UNIX_EPOCH};

/// RFC 6238's SHA-1 key, and its base32 form as a user would paste it.
const SECRET: &[u8] = b"12345678901234567890";
const SECRET_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn ykman(key: &TestKey, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["--reader", key.reader.as_str()];
    all.extend_from_slice(args);
    run("ykman", &all)
}

fn ykman_ok(key: &TestKey, args: &[&str]) -> String {
    let (ok, out, err) = ykman(key, args);
    assert!(ok, "ykman {args:?} failed:\n{out}\n{err}");
    out
}

fn time_step() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    now.as_secs() / 30
}

/// RFC 6238 with SHA-1 and 6 digits, computed here independently of the key.
fn totp(secret: &[u8], step: u64) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).unwrap();
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0F) as usize;
    let value = u32::from_be_bytes(digest[offset..offset + 4].try_into().unwrap()) & 0x7FFF_FFFF;
    format!("{:06}", value % 1_000_000)
}

/// Runs `get_code` and checks it against RFC 6238 for the time step it ran
/// in; when the step changed while it ran, the answer is ambiguous, so it
/// tries once more.
fn assert_current_code(secret: &[u8], get_code: impl Fn() -> String) {
    for _ in 0..2 {
        let before = time_step();
        let code = get_code();
        if time_step() == before {
            assert_eq!(code, totp(secret, before), "code for time step {before}");
            return;
        }
    }
    panic!("the time step changed during two attempts in a row");
}

fn log_entries(key: &TestKey, ins: &str) -> Vec<serde_json::Value> {
    key.apdu_log()
        .into_iter()
        .filter(|e| e["kind"] == "apdu" && e["applet"] == "oath" && e["ins"] == ins)
        .collect()
}

#[test]
fn ykman_adds_lists_and_computes_codes() {
    let key = TestKey::start();
    let info = ykman_ok(&key, &["oath", "info"]);
    assert!(
        info.contains(&format!("OATH version:        {}", key.firmware)),
        "{info}"
    );
    assert!(info.contains("Password protection: disabled"), "{info}");

    ykman_ok(
        &key,
        &[
            "oath", "accounts", "add", "-i", "Example", "alice", SECRET_B32,
        ],
    );
    ykman_ok(
        &key,
        &["oath", "accounts", "add", "--touch", "touchy", SECRET_B32],
    );
    let args = [
        "oath", "accounts", "add", "-o", "HOTP", "counter", SECRET_B32,
    ];
    ykman_ok(&key, &args);

    let list = ykman_ok(&key, &["oath", "accounts", "list", "-o", "-P"]);
    assert_eq!(
        list.lines().collect::<Vec<_>>(),
        [
            "counter, HOTP, 0",
            "Example:alice, TOTP, 30",
            "touchy, TOTP, 30"
        ]
    );

    // Several matches: the TOTP code comes from CALCULATE ALL, the others
    // are named without asking for a touch.
    assert_current_code(SECRET, || {
        let out = ykman_ok(&key, &["oath", "accounts", "code"]);
        let line = out
            .lines()
            .find(|l| l.starts_with("Example:alice"))
            .unwrap();
        assert!(out.contains("[Requires Touch]"), "{out}");
        assert!(out.contains("[HOTP Account]"), "{out}");
        line.split_whitespace().last().unwrap().to_string()
    });
    assert_current_code(SECRET, || {
        ykman_ok(&key, &["oath", "accounts", "code", "-s", "alice"])
            .trim()
            .to_string()
    });
    // RFC 4226: the counter moves on with every code.
    for expected in ["755224", "287082"] {
        let out = ykman_ok(&key, &["oath", "accounts", "code", "-s", "counter"]);
        assert_eq!(out.trim(), expected);
    }
    if key.apdu_log_checkable("no CALCULATE waited for a touch") {
        assert!(log_entries(&key, "A2").iter().all(|e| e["touch"].is_null()));
    }

    ykman_ok(
        &key,
        &["oath", "accounts", "rename", "alice", "Example:bob", "-f"],
    );
    ykman_ok(&key, &["oath", "accounts", "delete", "counter", "-f"]);
    let list = ykman_ok(&key, &["oath", "accounts", "list"]);
    assert_eq!(list.lines().collect::<Vec<_>>(), ["Example:bob", "touchy"]);

    ykman_ok(&key, &["oath", "reset", "-f"]);
    assert_eq!(ykman_ok(&key, &["oath", "accounts", "list"]), "");
}

#[test]
fn touch_required_account_waits_for_the_touch() {
    let key = TestKey::start_with_touch_timeout(2000);
    ykman_ok(
        &key,
        &["oath", "accounts", "add", "--touch", "touchy", SECRET_B32],
    );

    // On a real key nobody can be relied on not to touch it.
    if !skipped_on_real_key("no code when nobody touches (touch never)") {
        key.ctl("touch never");
        let (ok, out, err) = ykman(&key, &["oath", "accounts", "code", "-s", "touchy"]);
        assert!(!ok, "a code without a touch: {out}");
        assert!(err.contains("Touch account timed out"), "{err}");
        let calc = log_entries(&key, "A2");
        assert_eq!(calc.len(), 1);
        assert_eq!(calc[0]["sw"], "6982");
        assert_eq!(calc[0]["touch"], "timeout");
        assert!(calc[0]["ms"].as_u64().unwrap() >= 2000);

        key.ctl("touch after 500");
    }
    assert_current_code(SECRET, || {
        key.touch_prompt();
        let out = ykman_ok(&key, &["oath", "accounts", "code", "-s", "touchy"]);
        out.trim().to_string()
    });
    if !key.apdu_log_checkable("the touch the code waited for") {
        return;
    }
    let calc = log_entries(&key, "A2");
    let last = calc.last().unwrap();
    assert_eq!(last["sw"], "9000");
    assert_eq!(last["touch"], "given");
    assert!(last["ms"].as_u64().unwrap() >= 500);
}

#[test]
fn password_protects_the_accounts() {
    let key = TestKey::start();
    ykman_ok(&key, &["oath", "accounts", "add", "alice", SECRET_B32]);
    ykman_ok(&key, &["oath", "access", "change", "-n", "s3cret"]);
    let info = ykman_ok(&key, &["oath", "info"]);
    assert!(info.contains("Password protection: enabled"), "{info}");

    // No password: ykman prompts, and stdin is empty.
    let (ok, out, _) = ykman(&key, &["oath", "accounts", "list"]);
    assert!(!ok, "listed without a password: {out}");
    let (ok, _, err) = ykman(&key, &["oath", "accounts", "list", "-p", "wrong"]);
    assert!(!ok);
    assert!(err.contains("Wrong password?"), "{err}");
    if key.apdu_log_checkable("a wrong password answered 6A80") {
        let validates = log_entries(&key, "A3");
        assert_eq!(validates.len(), 1);
        assert_eq!(
            validates[0]["sw"], "6A80",
            "a wrong password, as ykman expects it"
        );
        // ykman never sent a command the locked applet refused.
        assert!(log_entries(&key, "A1").iter().all(|e| e["sw"] == "9000"));
    }

    let list = ykman_ok(&key, &["oath", "accounts", "list", "-p", "s3cret"]);
    assert_eq!(list.trim(), "alice");
    assert_current_code(SECRET, || {
        let out = ykman_ok(
            &key,
            &["oath", "accounts", "code", "-s", "-p", "s3cret", "alice"],
        );
        out.trim().to_string()
    });

    // The password survives the key being unplugged and plugged back in.
    let mut key = key;
    key.restart();
    let (ok, _, _) = ykman(&key, &["oath", "accounts", "list"]);
    assert!(!ok);
    let args = ["oath", "access", "change", "-p", "s3cret", "--clear"];
    ykman_ok(&key, &args);
    assert_eq!(
        ykman_ok(&key, &["oath", "accounts", "list"]).trim(),
        "alice"
    );
}

#[test]
fn holds_32_accounts_and_long_lists_chain() {
    let key = TestKey::start();
    for i in 0..32 {
        let issuer = format!("Issuer-with-a-long-name-{i:02}");
        let name = format!("account-number-{i:02}");
        ykman_ok(
            &key,
            &["oath", "accounts", "add", "-i", &issuer, &name, "abba"],
        );
    }
    let (ok, _, err) = ykman(&key, &["oath", "accounts", "add", "one-more", "abba"]);
    assert!(!ok);
    assert!(err.contains("No space left"), "{err}");

    let list = ykman_ok(&key, &["oath", "accounts", "list"]);
    assert_eq!(list.lines().count(), 32);
    assert!(list.contains("Issuer-with-a-long-name-31:account-number-31"));
    // LIST goes out as a short APDU, so 32 × 42 bytes come back in 256-byte
    // pieces fetched with SEND REMAINING.
    if key.apdu_log_checkable("LIST answered in pieces with SEND REMAINING") {
        assert!(log_entries(&key, "A1").iter().any(|e| e["sw"] == "61FF"));
        assert!(!log_entries(&key, "A5").is_empty());
    }

    let codes = ykman_ok(&key, &["oath", "accounts", "code"]);
    assert_eq!(codes.lines().count(), 32);
}
