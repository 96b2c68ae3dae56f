//! The rig itself: what it exports, that each stand-in answers, that rigs
//! are isolated from each other and from the network, and that nothing
//! outlives a rig, after a pass or a failure. Also the plumbing of real-key
//! mode (`hw/rig --real-key SERIAL`), tested with a virtual key standing in
//! for the real one: nested rigs use this rig's pcscd as "the machine's".

mod common;

use common::{real_key, rig_dir, run, skipped_on_real_key, TestKey};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn var(name: &str) -> String {
    rig_dir();
    std::env::var(name).unwrap_or_else(|_| panic!("the rig does not export {name}"))
}

/// What only the virtual rig exports: its key's instruments.
const VIRTUAL_ONLY: [&str; 8] = [
    "VAULT_RIG_VYK_CONTROL",
    "VAULT_RIG_APDU_LOG",
    "VAULT_RIG_VYK_STATE",
    "VAULT_RIG_TOUCH_TIMEOUT_MS",
    "VAULT_RIG_ATTESTATION_ROOT",
    "VAULT_RIG_ROOT_DIR",
    "VAULT_RIG_SLOTS",
    "VAULT_RIG_VPCD_BASE_PORT",
];

#[test]
fn rig_exports_what_hw_readme_documents() {
    let dir = rig_dir();
    for name in [
        "VAULT_RIG_READER",
        "AWS_ENDPOINT_URL",
        "VAULT_RIG_RECORDING",
        "VAULT_RIG_SERIAL",
        "VAULT_RIG_ISOLATED",
    ] {
        assert!(!var(name).is_empty(), "{name} is empty");
    }
    if let Some(serial) = real_key() {
        assert_eq!(var("VAULT_RIG_SERIAL"), serial.to_string());
        for name in VIRTUAL_ONLY {
            assert!(std::env::var_os(name).is_none(), "{name} in a real-key rig");
        }
    } else {
        for name in VIRTUAL_ONLY {
            assert!(!var(name).is_empty(), "{name} is empty");
        }
    }
    let home = PathBuf::from(var("HOME"));
    assert!(home.starts_with(&dir), "HOME must be inside the rig");
    assert_eq!(
        std::fs::read_to_string(home.join(".aws/config")).unwrap(),
        "",
        "the AWS config starts empty"
    );
    assert!(var("AWS_ENDPOINT_URL").starts_with("http://127.0.0.1:"));
    for (k, _) in std::env::vars() {
        assert!(
            !matches!(
                k.as_str(),
                "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" | "AWS_SESSION_TOKEN" | "AWS_PROFILE"
            ),
            "{k} leaked into the rig from the caller"
        );
    }
    if skipped_on_real_key("checking the attestation root the virtual rig exports") {
        return;
    }
    let pem = std::fs::read_to_string(var("VAULT_RIG_ATTESTATION_ROOT")).unwrap();
    assert!(
        pem.contains("BEGIN CERTIFICATE"),
        "attestation root is not a PEM certificate"
    );
}

#[test]
fn rig_key_is_a_yubikey_5_to_ykman() {
    let _turn = daemons_turn();
    let reader = var("VAULT_RIG_READER");
    let (ok, out, err) = run("ykman", &["--reader", &reader, "info"]);
    assert!(ok, "ykman info failed: {err}");
    assert!(out.contains("YubiKey 5"), "{out}");
    assert!(
        out.contains(&format!("Serial number: {}", var("VAULT_RIG_SERIAL"))),
        "{out}"
    );
    if skipped_on_real_key("checking firmware 5.4.3 and the APDU log") {
        return;
    }
    assert!(out.contains("Firmware version: 5.4.3"), "{out}");
    // The APDU log saw that conversation, without data bytes.
    let log = common::read_log(std::path::Path::new(&var("VAULT_RIG_APDU_LOG")));
    assert!(log.iter().any(|e| e["kind"] == "apdu" && e["ins"] == "1D"));
}

/// `aws sts get-caller-identity` against the rig's STS with this key.
fn caller_identity(key_id: &str, secret: &str) -> std::process::Output {
    Command::new("aws")
        .args(["sts", "get-caller-identity", "--output", "json"])
        .env("AWS_ACCESS_KEY_ID", key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", var("AWS_ENDPOINT_URL"))
        .env("AWS_PAGER", "")
        .env("AWS_MAX_ATTEMPTS", "1")
        .stdin(Stdio::null())
        .output()
        .expect("aws CLI (pip awscli) on PATH")
}

/// The rig's STS is the strict one: it answers the rig's admin with the
/// admin's own identity, refuses a key it never issued
/// (InvalidClientTokenId) and a wrong secret for a real key
/// (SignatureDoesNotMatch), and records all three with their status.
#[test]
fn sts_emulator_answers_and_records() {
    let admin_id = var("VAULT_RIG_ADMIN_AWS_ACCESS_KEY_ID");
    let admin_secret = var("VAULT_RIG_ADMIN_AWS_SECRET_ACCESS_KEY");
    let recording = PathBuf::from(var("VAULT_RIG_RECORDING"));

    let out = caller_identity(&admin_id, &admin_secret);
    assert!(
        out.status.success(),
        "aws sts get-caller-identity as the rig's admin: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (v["Account"].as_str(), v["Arn"].as_str()),
        (
            Some("123456789012"),
            Some("arn:aws:iam::123456789012:user/vault-rig-admin")
        ),
        "{v}"
    );

    // A key id of this run's own, which the STS never issued.
    let made_up = format!(
        "AKIA{}",
        (0..16)
            .map(|_| {
                let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
                alphabet[rand::random::<usize>() % alphabet.len()] as char
            })
            .collect::<String>()
    );
    let out = caller_identity(&made_up, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("InvalidClientTokenId"),
        "a made-up key must be refused: {err}"
    );
    // The admin's key id with another secret: the signature cannot match.
    let wrong: String = admin_secret
        .chars()
        .rev()
        .collect::<String>()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "x");
    let out = caller_identity(&admin_id, &wrong);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("SignatureDoesNotMatch"),
        "a wrong secret must be refused: {err}"
    );

    // All three are in the recording, with the status they got (read
    // after their answers came, so written: the STS records each request
    // before it answers).
    let rec = common::read_log(&recording);
    assert_eq!(rec.first().map(|e| &e["event"]), Some(&"started".into()));
    let answered = |key: &str| -> Vec<(u64, Option<String>)> {
        rec.iter()
            .filter(|e| e["key_id"] == key && e["action"] == "GetCallerIdentity")
            .map(|e| {
                (
                    e["status"].as_u64().unwrap_or(0),
                    e["error"].as_str().map(str::to_string),
                )
            })
            .collect()
    };
    let admin = answered(&admin_id);
    assert!(admin.contains(&(200, None)), "{admin:?}");
    assert!(
        admin.contains(&(403, Some("SignatureDoesNotMatch".into()))),
        "{admin:?}"
    );
    assert_eq!(
        answered(&made_up),
        [(403, Some("InvalidClientTokenId".to_string()))]
    );
    assert!(
        common::recorded_requests()
            .iter()
            .any(|body| body.contains("Action=GetCallerIdentity")),
        "the recorder did not keep the bodies"
    );
}

#[test]
fn secret_service_is_up_and_unlocked() {
    let (ok, out, err) = run(
        "dbus-send",
        &[
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.ReadAlias",
            "string:default",
        ],
    );
    assert!(ok, "no Secret Service on the session bus: {err}");
    let path = out
        .split('"')
        .nth(1)
        .filter(|p| p.starts_with("/org/freedesktop/secrets/collection/"))
        .unwrap_or_else(|| panic!("no default collection: {out}"))
        .to_string();
    let (ok, out, err) = run(
        "dbus-send",
        &[
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.secrets",
            &path,
            "org.freedesktop.DBus.Properties.Get",
            "string:org.freedesktop.Secret.Collection",
            "string:Locked",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("boolean false"),
        "default collection is locked: {out}"
    );
}

/// A shell line printing whether `keyctl search KEYRING user DESC` finds the key.
fn keyctl_search_script(keyring: &str, desc: &str) -> String {
    format!("keyctl search {keyring} user {desc} >/dev/null 2>&1 && echo found-in-{keyring} || echo absent-from-{keyring}")
}

/// The rig's kernel session keyring is its own: a fresh anonymous `_ses`
/// keyring (not `_uid_ses.UID`, the user-session keyring every process of
/// the user without a session of its own shares), and a key added to it is
/// seen in this session only: not in the user and user-session keyrings,
/// not from a fresh session, and not from another rig (a nested one, whose
/// processes are outside this rig's session).
#[test]
fn kernel_keyring_session_is_private() {
    let desc = format!("vault-rig-test-private-{}", std::process::id());
    let (ok, id, err) = run("keyctl", &["add", "user", &desc, "x", "@s"]);
    assert!(ok, "keyctl add: {err}");
    let id = id.trim().to_string();
    let (ok, val, err) = run("keyctl", &["pipe", &id]);
    assert!(ok, "keyctl pipe: {err}");
    assert_eq!(val, "x", "this session reads its own key");

    let (ok, described, err) = run("keyctl", &["rdescribe", "@s"]);
    assert!(ok, "keyctl rdescribe @s: {err}");
    assert!(
        described.trim().ends_with(";_ses"),
        "the rig's session keyring is an anonymous session keyring of its own, \
         not the user's shared one: {described}"
    );
    let (ok, here, err) = run("keyctl", &["id", "@s"]);
    assert!(ok, "keyctl id @s: {err}");
    let (ok, user_session, err) = run("keyctl", &["id", "@us"]);
    assert!(ok, "keyctl id @us: {err}");
    assert_ne!(
        here.trim(),
        user_session.trim(),
        "@s is the user-session keyring"
    );

    for keyring in ["@u", "@us"] {
        let (found, _, _) = run("keyctl", &["search", keyring, "user", &desc]);
        assert!(!found, "the rig's session key is reachable from {keyring}");
    }
    // A process in a session of its own (keyctl session - CMD) sees nothing.
    let (ok, out, err) = run(
        "keyctl",
        &[
            "session",
            "-",
            "sh",
            "-c",
            &keyctl_search_script("@s", &desc),
        ],
    );
    assert!(ok, "keyctl session: {err}");
    assert_eq!(
        out.trim(),
        "absent-from-@s",
        "a fresh session found the key"
    );

    // Another rig: its session keyring is another one, and the key is not there.
    let _turn = daemons_turn();
    let script = format!("{}; keyctl id @s", keyctl_search_script("@s", &desc));
    let out = nested_rig(&script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "nested rig: {}", text(&out));
    let mut lines = stdout.lines().rev();
    let nested_id = lines.next().unwrap_or_default().trim().to_string();
    let nested_found = lines.next().unwrap_or_default().trim().to_string();
    assert_eq!(nested_found, "absent-from-@s", "{}", text(&out));
    assert!(!nested_id.is_empty(), "{}", text(&out));
    assert_ne!(
        nested_id,
        here.trim(),
        "the nested rig shares this rig's session keyring"
    );

    let (ok, _, err) = run("keyctl", &["unlink", &id, "@s"]);
    assert!(ok, "keyctl unlink: {err}");
}

#[test]
fn network_is_loopback_only() {
    if var("VAULT_RIG_ISOLATED") != "1" {
        panic!("the rig is not isolated (no namespaces): this test needs root or user namespaces");
    }
    let (ok, out, _) = run("ip", &["-o", "link", "show"]);
    assert!(ok);
    let links: Vec<&str> = out.lines().collect();
    assert_eq!(links.len(), 1, "only a loopback link: {out}");
    assert!(links[0].contains(": lo:"), "{out}");
    let (_, routes, _) = run("ip", &["route", "show"]);
    assert!(
        routes.trim().is_empty(),
        "no route out of the rig: {routes}"
    );
}

/// Counts processes of the rig's daemons, as seen from here.
fn daemons() -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmdline);
        if [
            "pcscd",
            "virtual-yubikey\0run",
            // hw/sts/strict_sts.py (moto's STS/IAM behind the strict checks)
            "strict_sts.py",
            "gnome-keyring-daemon",
        ]
        .iter()
        .any(|d| cmd.contains(d))
        {
            n += 1;
        }
    }
    n
}

fn nested_rig(script: &str) -> std::process::Output {
    Command::new(repo().join("hw/rig"))
        .args(["--", "bash", "-c", script])
        .env("VAULT_RIG_NO_BUILD", "1")
        .stdin(Stdio::null())
        .output()
        .expect("start a nested rig")
}

/// Tests that start daemons (nested rigs, keys) or talk to every reader take
/// turns, so that `daemons()` counts only its own test's, and so that a
/// nested `hw/rig --real-key` probing each reader with `ykman info` (an
/// exclusive connection) never meets another test's ykman on a reader: that
/// one would fail with "Sharing violation".
static DAEMONS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn daemons_turn() -> std::sync::MutexGuard<'static, ()> {
    DAEMONS.lock().unwrap_or_else(|e| e.into_inner())
}

/// `hw/rig RIG_ARGS -- bash -c SCRIPT rig ARGS...`, nested in this rig, so
/// this rig's pcscd is its "machine's pcscd". The tests refuse real-key mode
/// in CI, so the nested rig is told it is not in CI: these tests are the
/// plumbing of that mode, with a virtual key standing in for the real one.
/// Nothing in it may reset a key unless a test says so.
fn nested(rig_args: &[&str], script: &str, args: &[&str]) -> std::process::Output {
    Command::new(repo().join("hw/rig"))
        .args(rig_args)
        .args(["--", "bash", "-c", script, "rig"])
        .args(args)
        .env("VAULT_RIG_NO_BUILD", "1")
        .env_remove("CI")
        .env_remove("VAULT_RIG_DESTRUCTIVE")
        .stdin(Stdio::null())
        .output()
        .expect("start a nested rig")
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The value of the first `NAME=value` line in `out`.
fn field<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name}= line in:\n{out}"))
}

fn this_test_binary() -> String {
    std::env::current_exe()
        .expect("test binary")
        .to_str()
        .expect("UTF-8 path")
        .to_string()
}

#[test]
fn real_key_mode_fails_fast_without_the_key() {
    let _turn = daemons_turn();
    let started = Instant::now();
    let out = nested(&["--real-key", "99999999"], "echo cmd-ran", &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains("no YubiKey with serial 99999999"),
        "no clear message:\n{all}"
    );
    assert!(
        !all.contains("cmd-ran") && !all.contains("ready in"),
        "{all}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );

    let out = nested(&["--real-key", "12ab"], "echo cmd-ran", &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains("--real-key takes the key's serial number"),
        "{all}"
    );
}

/// The helper the real-key tests below run inside a nested
/// `hw/rig --real-key`: what `TestKey::start()` hands out there.
#[test]
#[ignore = "run inside a nested hw/rig --real-key by the real_key_mode_* tests"]
fn real_key_helper() {
    let serial = real_key().expect("run inside hw/rig --real-key");
    // Panics unless VAULT_RIG_DESTRUCTIVE=1: it is about to reset the key.
    let mut key = TestKey::start();
    assert!(key.is_real());
    assert_eq!(key.serial, serial);
    assert_eq!(key.reader, var("VAULT_RIG_READER"));
    assert!(!key.scripted_touch_available());
    assert!(!key.removal_available());
    assert!(!key.apdu_log_available());
    assert!(key
        .apdu_log_if_available("the helper's log check")
        .is_none());
    assert!(key.dir.is_dir());

    // Factory-fresh: no OATH account, the default PIN.
    let (ok, out, err) = run(
        "ykman",
        &["--reader", &key.reader, "oath", "accounts", "list"],
    );
    assert!(ok, "{err}");
    assert_eq!(out, "", "OATH accounts left after the reset");
    key.restart();
    let mut yk = yubikey::YubiKey::open_by_serial(yubikey::Serial::from(serial)).unwrap();
    yk.verify_pin(b"123456")
        .expect("the default PIN after the reset");
    drop(yk);
    key.touch_prompt();
    assert!(skipped_on_real_key("the helper's scripted touch"));

    // One key, one test at a time: a second start waits for this one.
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let second = TestKey::start();
        tx.send(Instant::now()).unwrap();
        drop(second);
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(2)).is_err(),
        "a second TestKey::start() did not wait for the first"
    );
    let released = Instant::now();
    let firmware = key.firmware.clone();
    drop(key);
    let second = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the second TestKey::start() after the first was dropped");
    assert!(second >= released);
    waiter.join().unwrap();
    // On a line of its own: the harness may have started one for this test.
    println!("\nhelper-firmware={firmware}");
}

/// A key found by serial on the machine's pcscd (here: a virtual key in this
/// rig), what the rig exports for it, that its namespaces still isolate the
/// rest, and that without VAULT_RIG_DESTRUCTIVE=1 nothing touches the key.
#[test]
fn real_key_mode_finds_the_key_and_refuses_to_reset_it_unasked() {
    if skipped_on_real_key(
        "this test of the real-key plumbing (a virtual key stands in for a real one)",
    ) {
        return;
    }
    let _turn = daemons_turn();
    let key = TestKey::start();
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let (ok, _, err) = run(
        "ykman",
        &[
            "--reader",
            &key.reader,
            "oath",
            "accounts",
            "add",
            "keepme",
            secret,
        ],
    );
    assert!(ok, "{err}");
    let script = r#"
        echo "real=$VAULT_RIG_REAL_KEY"
        echo "serial=$VAULT_RIG_SERIAL"
        echo "reader=$VAULT_RIG_READER"
        echo "virtual=${VAULT_RIG_VYK_CONTROL-}${VAULT_RIG_APDU_LOG-}${VAULT_RIG_VYK_STATE-}${VAULT_RIG_ROOT_DIR-}${VAULT_RIG_SLOTS-}"
        echo "isolated=$VAULT_RIG_ISOLATED"
        echo "links=$(ip -o link show | wc -l)"
        echo "pcscds=$(pgrep -c -x pcscd)"
        case "$HOME" in "$VAULT_RIG_DIR"/*) echo home=inside ;; *) echo "home=$HOME" ;; esac
        echo "ykman=$(ykman --reader "$VAULT_RIG_READER" info | sed -n 's/^Serial number: //p')"
        echo "accounts=$(ykman --reader "$VAULT_RIG_READER" oath accounts list | tr '\n' ' ')"
        hostport=${AWS_ENDPOINT_URL#http://}
        (exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}") && echo moto=up
        dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
          org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets | grep -q true &&
          echo secrets=up
        "$1" --exact real_key_helper --include-ignored >"$VAULT_RIG_DIR/helper.out" 2>&1
        echo "helper=$?"
        CI=true "$1" --exact real_key_helper --include-ignored >"$VAULT_RIG_DIR/ci.out" 2>&1
        echo "ci-helper=$?"
        echo "--- helper"; cat "$VAULT_RIG_DIR/helper.out"
        echo "--- ci"; cat "$VAULT_RIG_DIR/ci.out"
    "#;
    let serial = key.serial.to_string();
    let out = nested(&["--real-key", &serial], script, &[&this_test_binary()]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert_eq!(field(&all, "real"), serial, "{all}");
    assert_eq!(field(&all, "serial"), serial, "{all}");
    assert_eq!(field(&all, "reader"), key.reader, "{all}");
    assert_eq!(field(&all, "virtual"), "", "no virtual key's variables");
    assert_eq!(field(&all, "isolated"), "1");
    assert_eq!(field(&all, "links"), "1", "only a loopback: {all}");
    assert_eq!(field(&all, "pcscds"), "0", "no pcscd of its own: {all}");
    assert_eq!(field(&all, "home"), "inside");
    assert_eq!(field(&all, "ykman"), serial, "{all}");
    assert_eq!(field(&all, "accounts"), "keepme ", "{all}");
    assert_eq!(field(&all, "moto"), "up", "{all}");
    assert_eq!(field(&all, "secrets"), "up", "{all}");

    // TestKey::start() refuses the real key without VAULT_RIG_DESTRUCTIVE=1,
    // saying why, and never in CI.
    assert_eq!(field(&all, "helper"), "101", "{all}");
    let (helper, ci) = all
        .split_once("--- helper")
        .unwrap()
        .1
        .split_once("--- ci")
        .unwrap();
    for expected in [
        "factory-resets the PIV and OATH applets",
        &format!("the real YubiKey {serial}"),
        "Use a spare YubiKey",
        "VAULT_RIG_DESTRUCTIVE=1 hw/rig --real-key",
    ] {
        assert!(helper.contains(expected), "no {expected:?} in:\n{helper}");
    }
    assert_eq!(field(&all, "ci-helper"), "101", "{all}");
    assert!(ci.contains("real-key mode in CI"), "{ci}");

    // Nothing was reset: the account is still there, and no reset reached
    // the key.
    let (ok, out, err) = run(
        "ykman",
        &["--reader", &key.reader, "oath", "accounts", "list"],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "keepme");
    let resets: Vec<_> = key
        .apdu_log()
        .into_iter()
        .filter(|e| {
            (e["applet"] == "piv" && e["ins"] == "FB")
                || (e["applet"] == "oath" && e["ins"] == "04")
        })
        .collect();
    assert!(resets.is_empty(), "{resets:?}");
}

/// With VAULT_RIG_DESTRUCTIVE=1, TestKey::start() resets the key's PIV and
/// OATH applets and hands it to one test at a time, and checks only the
/// virtual key can do are skipped, loudly. The "real" key is the key of a
/// nested rig of its own with a single reader slot (ykman spends seconds on
/// each empty reader when it looks a key up by serial).
#[test]
fn real_key_mode_resets_the_key_for_each_test_with_consent() {
    let _turn = daemons_turn();
    let script = r#"
        r=$VAULT_RIG_READER
        ykman --reader "$r" oath accounts add leftover GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ >/dev/null
        ykman --reader "$r" piv access change-pin -P 123456 -n 654321 >/dev/null
        echo "before=$(ykman --reader "$r" oath accounts list)"
        VAULT_RIG_DESTRUCTIVE=1 "$2/hw/rig" --real-key "$VAULT_RIG_SERIAL" -- \
          "$1" --exact real_key_helper --include-ignored --nocapture
        echo "helper=$?"
        echo "after=$(ykman --reader "$r" oath accounts list)"
        echo "serial=$VAULT_RIG_SERIAL"
        ok_apdus() { grep '"kind":"apdu"' "$VAULT_RIG_APDU_LOG" | grep "\"applet\":\"$1\"" |
          grep "\"ins\":\"$2\"" | grep -c '"sw":"9000"'; }
        echo "piv-resets=$(ok_apdus piv FB)"
        echo "oath-resets=$(ok_apdus oath 04)"
    "#;
    let repo = repo();
    let mut cmd = Command::new(repo.join("hw/rig"));
    cmd.args(["--", "bash", "-c", script, "rig"])
        .arg(this_test_binary())
        .arg(&repo)
        .env_remove("CI")
        .stdin(Stdio::null());
    // A rig of its own, not nested in this one, so VAULT_RIG_SLOTS holds.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("VAULT_RIG") {
            cmd.env_remove(name);
        }
    }
    cmd.env("VAULT_RIG_NO_BUILD", "1")
        .env("VAULT_RIG_SLOTS", "1");
    let out = cmd.output().expect("start a rig");
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert_eq!(field(&all, "before"), "leftover");
    assert_eq!(field(&all, "helper"), "0", "{all}");
    assert_eq!(field(&all, "after"), "", "the OATH account survived: {all}");
    // The helper took the key twice: a reset of each applet each time.
    assert_eq!(field(&all, "piv-resets"), "2", "{all}");
    assert_eq!(field(&all, "oath-resets"), "2", "{all}");
    assert_eq!(field(&all, "helper-firmware"), "5.4.3", "{all}");
    let serial = field(&all, "serial");
    for expected in [
        format!("resetting the PIV and OATH applets of YubiKey {serial}"),
        format!("real_key_helper: touch the YubiKey now (serial {serial}"),
        "real_key_helper: the helper's scripted touch needs the virtual key: skipped on a real key"
            .to_string(),
        "checking the APDU log (the helper's log check) needs the virtual key: skipped on a real key"
            .to_string(),
        format!("waiting for YubiKey {serial}, which another test holds"),
    ] {
        assert!(all.contains(&expected), "no {expected:?} in:\n{all}");
    }
}

/// Two rigs at once, each with its own pcscd and key, and nothing of either
/// left running afterwards, whether the command passed or failed.
#[test]
fn rigs_run_side_by_side_and_leave_nothing_running() {
    if var("VAULT_RIG_ISOLATED") != "1" {
        panic!("the rig is not isolated (no namespaces): this test needs root or user namespaces");
    }
    let _turn = daemons_turn();
    // daemons() knows the rig's STS by its name: this rig's is counted.
    let pids = std::fs::read_to_string(rig_dir().join("pids")).unwrap();
    let sts = pids
        .lines()
        .find_map(|l| l.strip_prefix("sts="))
        .unwrap_or_else(|| panic!("no sts= in the rig's pids: {pids}"));
    let cmdline = std::fs::read(format!("/proc/{sts}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("strict_sts.py"),
        "the rig's STS (pid {sts}) is not strict_sts.py: {cmdline:?}"
    );
    let before = daemons();
    // Each nested rig reports the serial its ykman sees; with one shared
    // pcscd they would see each other's keys.
    let script =
        "sleep 1; ykman --reader \"$VAULT_RIG_READER\" info | sed -n 's/^Serial number: //p'; \
                  echo \"rig=$VAULT_RIG_SERIAL\"; ykman list --readers | grep -c 'Yubico' ; \
                  ls $(dirname \"$VAULT_RIG_DIR\") >/dev/null";
    let a = std::thread::spawn(move || nested_rig(script));
    let b = std::thread::spawn(move || nested_rig(script));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let mut serials = Vec::new();
    for out in [&a, &b] {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "nested rig failed: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            format!("rig={}", lines[0]),
            lines[1],
            "each rig sees its own key: {text}"
        );
        serials.push(lines[0].to_string());
    }
    assert_ne!(serials[0], serials[1]);

    // A failing command: its exit code comes through, and teardown still happens.
    let failed = nested_rig("exit 7");
    assert_eq!(failed.status.code(), Some(7));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    if let Some(kept) = stderr
        .lines()
        .find_map(|l| l.split("kept for inspection: ").nth(1))
    {
        let _ = std::fs::remove_dir_all(kept.trim());
    }

    assert_eq!(daemons(), before, "a nested rig left daemons running");
}
