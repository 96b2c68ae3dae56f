//! Fault injection through the rig, one test per fault, each through the
//! real `vault` binary: `hw/rig -- cargo test -p vault --test faults`.
//!
//! Every profile holds the real access key of an IAM user made for the test
//! (`TestEnv::user`), and every MFA code is its device's RFC 6238 code: the
//! rig's STS is strict, as AWS (see hw/README.md, "The strict STS"), so a
//! call it answers with 200 proves the key vault signed with (after an
//! unwrap, a damaged cache, a full folder…) is the stored one, and every
//! code vault sent is checked against the device's seed.
//!
//! Every fault must end in a clear message (the key phrases are asserted),
//! a non-zero exit and no panic, and must leave the stored credential (the
//! keychain item, the file store's files or the token envelope) byte for
//! byte as it was and still working: once the fault is gone, an exec
//! succeeds with it. The one exception is a damaged session cache entry:
//! a cache holds nothing that cannot be fetched again, so vault warns,
//! drops it and fetches a new session (exit 0).
//!
//! The faults: a YubiKey pulled out during ECDH and during an OATH
//! CALCULATE (`virtual-yubikey ctl remove-on INS`); pcscd stopped (in a
//! rig of its own, nested in this one, since the shared pcscd serves every
//! other test); STS refusing connections, answering 500, throttling, or
//! hanging (`support::proxy` in front of the rig's strict STS); a damaged
//! cache entry and
//! a damaged envelope; a `source_profile` loop; and read-only or full
//! folders (a read-only bind mount or a small full tmpfs in a mount
//! namespace of the vault process's own: the tests run as root, so file
//! modes would not stop a write).
//!
//! Tests that use a YubiKey run one at a time (see `cli_hw.rs`: finding a
//! key by serial selects applets on every key present).
//!
//! Outside the rig every test fails with instructions, never passes.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use support::proxy::{self, Answer, Proxy};
use support::token::{self, enroll_args, envelope, envelope_path, stored, Secrets};
use support::vyk::TestKey;
use support::{
    session_token_requests, Cmd, IamUser, JsonCreds, Key, Run, StsRequest, TestEnv, VAULT,
};

// ------------------------------------------------------------------ harness

static ONE_KEY_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Held by every test that uses a YubiKey, for its whole run.
fn alone() -> MutexGuard<'static, ()> {
    support::rig_dir();
    ONE_KEY_AT_A_TIME
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Logs how long a test took (for the report), when dropped.
struct Timer(&'static str, Instant);

impl Timer {
    fn start(name: &'static str) -> Timer {
        support::rig_dir();
        Timer(name, Instant::now())
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        eprintln!("[faults] {} took {:.1?}", self.0, self.1.elapsed());
    }
}

/// Asserts a failed run: a non-zero exit (not a signal), nothing on
/// stdout, no panic, and every phrase in stderr.
fn failed(run: &Run, phrases: &[&str]) {
    assert!(
        matches!(run.code, Some(c) if c != 0),
        "{} should have failed: {run:?}",
        run.what
    );
    assert_eq!(run.stdout, "", "{}: stdout of a failure", run.what);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    eprintln!(
        "[faults] exit {:?} after {:.1?}:\n{}",
        run.code, run.elapsed, run.stderr
    );
    for p in phrases {
        assert!(
            run.stderr.contains(p),
            "{}: {p:?} not in stderr:\n{}",
            run.what,
            run.stderr
        );
    }
}

/// `vault ARGS` with what a scripted enrollment and exec need
/// (`token::hw`), waiting 2 s for an absent key.
fn hw(t: &TestEnv, s: &Secrets, args: &[&str]) -> Cmd {
    hw_env(t.vault(args), s)
}

fn hw_env(c: Cmd, s: &Secrets) -> Cmd {
    token::hw_env(c, s).env("VAULT_TOKEN_WAIT", "2s")
}

/// `vault hw enroll --serial N EXTRA…`; asserts it worked.
fn enroll(t: &TestEnv, key: &TestKey, s: &Secrets, extra: &[&str]) -> Run {
    let serial = key.serial.to_string();
    hw(t, s, &enroll_args(&serial, extra)).run().success()
}

/// `vault exec PROFILE --json` with the key's PIN; asserts it worked.
fn hw_exec(t: &TestEnv, s: &Secrets, profile: &str) -> JsonCreds {
    let run = hw(t, s, &["exec", profile, "--json"]).run().success();
    JsonCreds::parse(&run.stdout)
}

fn tokens_json(t: &TestEnv) -> Option<Vec<u8>> {
    std::fs::read(token::tokens_json_path(t)).ok()
}

/// `[profile p]` (region, and the device's `mfa_serial` if `mfa`) with
/// the real access key of the test's IAM user `u` stored in the keychain;
/// returns the user (its key, its MFA device and seed).
fn plain_profile(t: &TestEnv, mfa: bool) -> IamUser {
    let user = t.user("u");
    let extra = if mfa {
        format!("mfa_serial = {}\n", user.mfa_serial)
    } else {
        String::new()
    };
    t.write_config(&format!("[profile p]\nregion = us-east-1\n{extra}"));
    t.add("p", &user.key);
    user
}

/// Every request in `reqs` was accepted by the strict STS (200): signed
/// with the key's real secret and, where it carried one, a valid code.
fn all_accepted(reqs: &[StsRequest]) {
    for r in reqs {
        assert_eq!(
            (r.status, r.error.as_deref()),
            (200, None),
            "the STS refused {} signed with {}: {r:?}",
            r.action(),
            r.key_id
        );
    }
}

/// The request carried `user`'s MFA device and a code of its seed for a
/// step within one of now (RFC 6238), and STS accepted it.
fn sent_a_current_code(r: &StsRequest, user: &IamUser) {
    assert_eq!(r.param("SerialNumber"), Some(user.mfa_serial.as_str()));
    let code = r.param("TokenCode").expect("a TokenCode");
    assert!(
        user.is_current_code(code),
        "TokenCode {code} is not the RFC 6238 code of {}'s seed now",
        user.mfa_serial
    );
    all_accepted(std::slice::from_ref(r));
}

/// The device's code for the current time step, and that step.
fn current_code(user: &IamUser) -> (String, u64) {
    let step = support::now_secs() / 30;
    (user.code_at(step), step)
}

/// `vault ARGS` in a mount namespace of its own, after `setup` (sh, run
/// as root in that namespace) and followed by `after`; the exit status is
/// vault's. What vault changed in a tmpfs mounted there is gone with the
/// namespace, so `after` records what a test must look at.
fn in_mount_ns(t: &TestEnv, setup: &str, after: &str, args: &[&str]) -> Cmd {
    let script = t.script(
        &format!(
            "ns-{}.sh",
            support::random(b"abcdefghijklmnopqrstuvwxyz", 8)
        ),
        &format!("set -e\n{setup}\nset +e\n\"$@\"\nrc=$?\n{after}\nexit $rc\n"),
    );
    let script = script.display().to_string();
    let mut a: Vec<&str> = vec!["--mount", "--propagation", "private", "sh", &script, VAULT];
    a.extend_from_slice(args);
    t.cmd("unshare", &a)
}

/// Shell lines that make `dir` read-only for the namespace's processes.
fn read_only(dir: &Path) -> String {
    format!(
        "mount --bind '{d}' '{d}'\nmount -o remount,bind,ro '{d}'",
        d = dir.display()
    )
}

/// Shell lines that put `dir`'s contents on a small tmpfs mounted over it
/// and fill that tmpfs up (with a file `.fill` in `dir`).
fn full(t: &TestEnv, dir: &Path) -> String {
    let scratch = t.dir.join(format!(
        "tmpfs-{}",
        support::random(b"abcdefghijklmnopqrstuvwxyz", 8)
    ));
    std::fs::create_dir_all(&scratch).unwrap();
    format!(
        "mount -t tmpfs -o size=256k,mode=0700 tmpfs '{s}'\n\
         cp -a '{d}/.' '{s}/'\n\
         mount --bind '{s}' '{d}'\n\
         dd if=/dev/zero of='{d}/.fill' bs=4k 2>/dev/null || true\n\
         sync",
        s = scratch.display(),
        d = dir.display()
    )
}

/// A shell line recording every file under `dir` (but `.fill`) with its
/// SHA-256 into `out`, sorted: run inside the namespace after vault.
fn record_files(dir: &Path, out: &Path) -> String {
    format!(
        "(cd '{}' && find . -type f ! -name .fill | LC_ALL=C sort | xargs -r sha256sum) > '{}'",
        dir.display(),
        out.display()
    )
}

/// What `record_files` records, computed here (outside any namespace).
fn files_now(dir: &Path) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && find . -type f ! -name .fill | LC_ALL=C sort | xargs -r sha256sum",
            dir.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

// ------------------------------------------------------- the YubiKey pulled

#[test]
fn card_removed_during_ecdh() {
    let _g = alone();
    let _t = Timer::start("card_removed_during_ecdh");
    let t = TestEnv::new("fault_removed_ecdh");
    let key = TestKey::start();
    let s = Secrets::new();
    let aws = plain_profile(&t, false).key;
    enroll(&t, &key, &s, &["--profile", "p"]);
    let sealed = envelope(&t, "p");
    let tokens = tokens_json(&t);

    key.ctl("remove-on 87");
    let run = hw(&t, &s, &["exec", "p", "--json"]).run();
    let serial = key.serial.to_string();
    failed(
        &run,
        &[
            "cannot unwrap the key of profile \"p\"",
            &format!("YubiKey {serial} was removed; insert it and try again"),
        ],
    );
    key.wait_present(false);
    assert!(key
        .apdu_log()
        .iter()
        .any(|e| e["event"] == "removed-on-ins"));
    assert_eq!(envelope(&t, "p"), sealed, "the envelope changed");
    assert_eq!(tokens_json(&t), tokens, "tokens.json changed");
    assert!(session_token_requests(&aws.id).is_empty());

    key.ctl("insert");
    key.wait_present(true);
    hw_exec(&t, &s, "p");
    // Accepted: the unwrapped key is the stored one, secret included.
    let gst = session_token_requests(&aws.id);
    assert_eq!(gst.len(), 1);
    all_accepted(&gst);
    assert_eq!(envelope(&t, "p"), sealed, "the envelope changed");
}

#[test]
fn card_removed_during_oath_calculate() {
    let _g = alone();
    let _t = Timer::start("card_removed_during_oath_calculate");
    let t = TestEnv::new("fault_removed_oath");
    let key = TestKey::start();
    let s = Secrets::new();
    let user = plain_profile(&t, false);
    let aws = user.key.clone();
    let mfa = user.mfa_serial.clone();
    let b32 = t.seed_file(&user);
    enroll(
        &t,
        &key,
        &s,
        &[
            "--profile",
            "p",
            "--totp-secret-file",
            &b32,
            "--mfa-serial",
            &mfa,
        ],
    );
    let sealed = envelope(&t, "p");
    let tokens = tokens_json(&t);
    let config = std::fs::read(&t.config).unwrap();

    // The unwrap (ECDH) succeeds; the key goes at the code's CALCULATE.
    key.ctl("remove-on A2");
    let run = hw(&t, &s, &["exec", "p", "--json"]).run();
    let serial = key.serial.to_string();
    failed(
        &run,
        &[
            &format!("no MFA code for {mfa}"),
            &format!("YubiKey (serial {serial}) was removed"),
            "--mfa-token",
        ],
    );
    key.wait_present(false);
    let log = key.apdu_log();
    assert!(log.iter().any(|e| e["event"] == "removed-on-ins"));
    assert!(
        log.iter()
            .any(|e| e["kind"] == "apdu" && e["ins"] == "87" && e["sw"] == "9000"),
        "the unwrap came first"
    );
    assert!(session_token_requests(&aws.id).is_empty());
    assert_eq!(envelope(&t, "p"), sealed, "the envelope changed");
    assert_eq!(tokens_json(&t), tokens, "tokens.json changed");
    assert_eq!(std::fs::read(&t.config).unwrap(), config);

    // No code was read, so none counts as used: the next run neither
    // waits for the next time step nor fails.
    key.ctl("insert");
    key.wait_present(true);
    let run = hw(&t, &s, &["exec", "p", "--json"]).run().success();
    JsonCreds::parse(&run.stdout);
    assert!(!run.stderr.contains("already used"), "{}", run.stderr);
    let gst = session_token_requests(&aws.id);
    assert_eq!(gst.len(), 1);
    // The card's code is the device's RFC 6238 code, and STS took it.
    sent_a_current_code(&gst[0], &user);
    assert_eq!(envelope(&t, "p"), sealed, "the envelope changed");
}

// --------------------------------------------------------- pcscd stopped

/// In a rig of its own (nested in this one): make an IAM user in its
/// strict STS (the nested rig has its own, and no network to this one's),
/// store and enroll its key, stop its pcscd, exec; start pcscd again, exec;
/// then count the user's GetSessionToken requests in its STS's recording
/// (`total accepted`), read after the last exec's answer (so written).
const PCSCD_SCRIPT: &str = r#"#!/bin/bash
set -u
out=$FAULTS_OUT
mkdir -p "$out"
V=$FAULTS_VAULT
export VAULT_ATTESTATION_ROOTS=$VAULT_RIG_ATTESTATION_ROOT
fail() { echo "$1" >"$out/failed"; exit 1; }
printf '[profile p]\nregion = us-east-1\n' >"$AWS_CONFIG_FILE"
# The key stays in this shell's variables: never in a file or an argv.
made=$(printf '{"users": [{"name": "faults-pcscd"}]}' \
  | python3 "$FAULTS_REPO/hw/sts/provision.py" 2>"$out/provision.err") || fail provision
field() { printf '%s' "$made" | python3 -c 'import json, sys; print(json.load(sys.stdin)["users"]["faults-pcscd"][sys.argv[1]])' "$1"; }
key_id=$(field access_key_id) && secret=$(field secret_access_key) || fail "provision output"
AWS_ACCESS_KEY_ID=$key_id AWS_SECRET_ACCESS_KEY=$secret \
  "$V" add p --env </dev/null 2>"$out/add.err" || fail add
unset made secret
"$V" hw enroll --serial "$VAULT_RIG_SERIAL" --profile p </dev/null 2>"$out/enroll.err" || fail enroll
envelope=$(ls "$XDG_DATA_HOME"/vault/envelopes/*.envelope)
sha256sum <"$envelope" >"$out/envelope.before"
pid=$(sed -n 's/^pcscd=//p' "$VAULT_RIG_DIR/pids")
[ -n "$pid" ] || fail "no pcscd in $VAULT_RIG_DIR/pids"
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "pcscd did not stop"
start=$(date +%s%N)
# Credentials never go to disk (hygiene.rs searches the rig folder):
# only what the test checks about them.
creds() { printf '%s' "$1" | grep -c '"SessionToken"'; printf '%s' "$1" | wc -c; }
got=$("$V" exec p --json </dev/null 2>"$out/down.err")
echo $? >"$out/down.rc"
creds "$got" >"$out/down.out"
echo $((($(date +%s%N) - start) / 1000000)) >"$out/down.ms"
sha256sum <"$envelope" >"$out/envelope.after"
pcscd --foreground --config "$VAULT_RIG_DIR/reader.conf.d" >"$out/pcscd-again.log" 2>&1 &
again=$!
for _ in $(seq 100); do [ -S /run/pcscd/pcscd.comm ] && break; sleep 0.1; done
virtual-yubikey wait --reader "$VAULT_RIG_READER" --timeout-ms 20000 || { kill -TERM $again; fail "the key did not come back"; }
got=$("$V" exec p --json </dev/null 2>"$out/up.err")
echo $? >"$out/up.rc"
creds "$got" >"$out/up.out"
sha256sum <"$envelope" >"$out/envelope.up"
kill -TERM $again
wait $again
python3 - "$VAULT_RIG_RECORDING" "$key_id" >"$out/gst" <<'PY' || fail "read the recording"
import json, sys
total = accepted = 0
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("action") == "GetSessionToken" and e.get("key_id") == sys.argv[2]:
        total += 1
        accepted += e.get("status") == 200
print(total, accepted)
PY
exit 0
"#;

#[test]
fn pcscd_stopped() {
    let _t = Timer::start("pcscd_stopped");
    let t = TestEnv::new("fault_pcscd");
    let script = t.script("pcscd-fault.sh", PCSCD_SCRIPT);
    let out = t.dir.join("nested");
    let s = Secrets::new();
    let rig = Path::new(env!("CARGO_MANIFEST_DIR")).join("hw/rig");
    let started = Instant::now();
    let result = std::process::Command::new("setsid")
        .arg("-w")
        .arg(&rig)
        .arg("--")
        .arg("bash")
        .arg(&script)
        .env("VAULT_RIG_NO_BUILD", "1")
        .env("FAULTS_OUT", &out)
        .env("FAULTS_VAULT", VAULT)
        .env("FAULTS_REPO", env!("CARGO_MANIFEST_DIR"))
        .env("VAULT_NEW_PIN", &s.pin)
        .env("VAULT_NEW_PUK", &s.puk)
        .env("VAULT_PIN", &s.pin)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("start the nested rig");
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap_or_default();
    assert!(
        result.status.success() && !out.join("failed").exists(),
        "nested rig failed ({}): {}\n{}\nprovision: {}\nadd: {}\nenroll: {}",
        read("failed"),
        String::from_utf8_lossy(&result.stderr),
        String::from_utf8_lossy(&result.stdout),
        read("provision.err"),
        read("add.err"),
        read("enroll.err"),
    );
    eprintln!(
        "[faults] the nested rig took {:.1?} in all",
        started.elapsed()
    );

    let down = read("down.err");
    eprintln!("[faults] exec without pcscd, stderr:\n{down}");
    assert_ne!(read("down.rc").trim(), "0", "exec without pcscd: {down}");
    assert_eq!(
        read("down.out"),
        "0\n0\n",
        "(session tokens, bytes) on stdout"
    );
    assert!(!down.contains("panicked"), "{down}");
    for phrase in [
        "cannot unwrap the key of profile \"p\"",
        "cannot reach the smart card service (pcscd)",
        "sudo apt install pcscd",
        "systemctl enable --now pcscd.socket",
    ] {
        assert!(down.contains(phrase), "{phrase:?} not in:\n{down}");
    }
    let ms: u64 = read("down.ms").trim().parse().unwrap();
    assert!(ms < 10_000, "exec without pcscd took {ms} ms: {down}");
    assert_eq!(read("envelope.before"), read("envelope.after"));

    assert_eq!(
        read("up.rc").trim(),
        "0",
        "exec with pcscd back: {}",
        read("up.err")
    );
    let up = read("up.out");
    assert!(
        up.starts_with("1\n"),
        "(session tokens, bytes) on stdout: {up}"
    );
    assert_eq!(read("envelope.before"), read("envelope.up"));
    // One GetSessionToken in all (none without pcscd), accepted by the
    // nested rig's strict STS: the key unwrapped once pcscd was back is
    // the stored one, secret included.
    assert_eq!(
        read("gst"),
        "1 1\n",
        "(GetSessionToken requests, accepted) in the nested STS"
    );
}

// ----------------------------------------------------------- STS faults

#[test]
fn sts_connection_refused() {
    let _t = Timer::start("sts_connection_refused");
    let t = TestEnv::new("fault_sts_refused");
    let user = plain_profile(&t, true);
    let aws = user.key.clone();
    let before = stored(&t, "p");
    let url = proxy::closed_port_url();
    let (code, _) = current_code(&user);

    let run = t
        .vault(&["exec", "p", "--json", "--mfa-token", &code])
        .env("AWS_ENDPOINT_URL", &url)
        .run();
    failed(
        &run,
        &[
            &format!("cannot reach STS at {url} for GetSessionToken"),
            "Connection refused",
            "hint: check your network",
        ],
    );
    assert!(run.elapsed < Duration::from_secs(15), "{:?}", run.elapsed);
    assert_eq!(stored(&t, "p"), before);

    // The code never left this machine: it is still good.
    let (creds, _) = t.exec_json("p", &["--mfa-token", &code]);
    assert!(creds.session_token.is_some());
    let gst = session_token_requests(&aws.id);
    assert_eq!(gst.len(), 1);
    assert_eq!(gst[0].param("TokenCode"), Some(code.as_str()));
    sent_a_current_code(&gst[0], &user);
    assert_eq!(stored(&t, "p"), before);
}

/// After the proxy saw `code` (the device's code for `step`, which never
/// reached STS): an exec through the proxy with the next step's code
/// works, that code is the one GetSessionToken (signed with `user`'s key)
/// STS got and accepted, and the stored key is still `before`.
fn next_code_works(t: &TestEnv, p: &Proxy, user: &IamUser, step: u64, before: &Option<Vec<u8>>) {
    let code = user.code_at(step);
    let next = user.code_at(step + 1);
    assert_ne!(
        next, code,
        "two steps with one code (one chance in a million): run again"
    );
    let run = t
        .vault(&["exec", "p", "--json", "--mfa-token", &next])
        .env("AWS_ENDPOINT_URL", &p.url)
        .run()
        .success();
    JsonCreds::parse(&run.stdout);
    let gst = session_token_requests(&user.key.id);
    assert_eq!(gst.len(), 1);
    assert_eq!(gst[0].param("TokenCode"), Some(next.as_str()));
    sent_a_current_code(&gst[0], user);
    assert_eq!(stored(t, "p"), *before);
}

#[test]
fn sts_http_500() {
    let _t = Timer::start("sts_http_500");
    let t = TestEnv::new("fault_sts_500");
    let user = plain_profile(&t, true);
    let aws = user.key.clone();
    let before = stored(&t, "p");
    let broken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let b = broken.clone();
    let p = proxy::start(&proxy::moto_url(), move |r| {
        if r.action == "GetSessionToken" && b.load(std::sync::atomic::Ordering::SeqCst) {
            Answer::fault(500, "InternalFailure", "injected by the test proxy")
        } else {
            Answer::Forward
        }
    });
    let (code, step) = current_code(&user);

    let run = t
        .vault(&["exec", "p", "--json", "--mfa-token", &code])
        .env("AWS_ENDPOINT_URL", &p.url)
        .run();
    failed(
        &run,
        &[
            "STS GetSessionToken failed: InternalFailure: injected by the test proxy",
            "hint: STS had an internal error",
        ],
    );
    // The SDK retried: three attempts in all, each with the same code.
    let seen = p.seen_action("GetSessionToken");
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.iter().all(|s| s.token_code.as_deref() == Some(&code)));
    assert!(session_token_requests(&aws.id).is_empty());
    assert_eq!(stored(&t, "p"), before);

    // STS saw that code: vault never sends it again, and says so.
    broken.store(false, std::sync::atomic::Ordering::SeqCst);
    let run = t
        .vault(&["exec", "p", "--json", "--mfa-token", &code])
        .env("AWS_ENDPOINT_URL", &p.url)
        .run();
    failed(&run, &["was already used", "wait for the next code"]);
    assert_eq!(p.seen_action("GetSessionToken").len(), 3);

    // With the next code it works.
    next_code_works(&t, &p, &user, step, &before);
}

#[test]
fn sts_throttling() {
    let _t = Timer::start("sts_throttling");
    let t = TestEnv::new("fault_sts_throttle");
    let aws = plain_profile(&t, false).key;
    let before = stored(&t, "p");
    // The first two requests are throttled, then all pass.
    let p = proxy::start(&proxy::moto_url(), |r| {
        if r.action == "GetSessionToken" && r.nth < 2 {
            Answer::fault(400, "Throttling", "Rate exceeded")
        } else {
            Answer::Forward
        }
    });
    let run = t
        .vault(&["exec", "p", "--json"])
        .env("AWS_ENDPOINT_URL", &p.url)
        .run()
        .success();
    JsonCreds::parse(&run.stdout);
    let seen = p.seen_action("GetSessionToken");
    assert_eq!(seen.len(), 3, "two throttled, the third passed: {seen:?}");
    let gst = session_token_requests(&aws.id);
    assert_eq!(gst.len(), 1);
    all_accepted(&gst);
    eprintln!(
        "[faults] two throttled attempts and a good one took {:.1?}",
        run.elapsed
    );

    // Always throttled: vault gives up after the SDK's retries.
    let p = proxy::start(&proxy::moto_url(), |r| {
        if r.action == "GetSessionToken" {
            Answer::fault(400, "Throttling", "Rate exceeded")
        } else {
            Answer::Forward
        }
    });
    let run = t
        .vault(&["exec", "p", "--json"])
        .env("AWS_ENDPOINT_URL", &p.url)
        .run();
    failed(
        &run,
        &[
            "STS GetSessionToken failed: Throttling: Rate exceeded",
            "hint: STS is throttling",
        ],
    );
    assert_eq!(p.seen_action("GetSessionToken").len(), 3);
    assert!(run.elapsed < Duration::from_secs(20), "{:?}", run.elapsed);
    assert_eq!(session_token_requests(&aws.id).len(), 1);
    assert_eq!(stored(&t, "p"), before);
}

#[test]
fn sts_hang() {
    let _t = Timer::start("sts_hang");
    let t = TestEnv::new("fault_sts_hang");
    let user = plain_profile(&t, true);
    let before = stored(&t, "p");
    let hanging = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let h = hanging.clone();
    let p = proxy::start(&proxy::moto_url(), move |r| {
        if r.action == "GetSessionToken" && h.load(std::sync::atomic::Ordering::SeqCst) {
            Answer::Hang
        } else {
            Answer::Forward
        }
    });
    let (code, step) = current_code(&user);

    let run = t
        .vault(&["exec", "p", "--json", "--mfa-token", &code])
        .env("AWS_ENDPOINT_URL", &p.url)
        .env("VAULT_STS_TIMEOUT", "3s")
        .deadline(Duration::from_secs(30))
        .run();
    failed(
        &run,
        &[
            &format!("cannot reach STS at {} for GetSessionToken", p.url),
            "timed out after 3 s",
            "VAULT_STS_TIMEOUT",
        ],
    );
    assert!(
        run.elapsed >= Duration::from_secs(3) && run.elapsed < Duration::from_secs(10),
        "gave up after {:?}",
        run.elapsed
    );
    assert!(!p.seen_action("GetSessionToken").is_empty());
    assert_eq!(stored(&t, "p"), before);

    // The request (and its code) reached the other end, which may have
    // spent it: vault counts it as used rather than risk sending it twice.
    hanging.store(false, std::sync::atomic::Ordering::SeqCst);
    let run = t
        .vault(&["exec", "p", "--json", "--mfa-token", &code])
        .env("AWS_ENDPOINT_URL", &p.url)
        .run();
    failed(&run, &["was already used", "wait for the next code"]);

    next_code_works(&t, &p, &user, step, &before);
}

// ------------------------------------------------------- damaged data

#[test]
fn corrupted_cache_entry() {
    let _t = Timer::start("corrupted_cache_entry");
    let t = TestEnv::new("fault_cache_entry");
    let aws = plain_profile(&t, false).key;
    let before = stored(&t, "p");
    t.exec_json("p", &[]);
    let gst = session_token_requests(&aws.id);
    assert_eq!(gst.len(), 1);
    all_accepted(&gst);

    // The session's entry in the test's kernel keyring, overwritten.
    let listing = t.cmd("keyctl", &["list", "@s"]).run().success().stdout;
    let keys: Vec<&str> = listing
        .lines()
        .filter(|l| l.contains("vault:session:"))
        .map(|l| l.split(':').next().unwrap().trim())
        .collect();
    assert_eq!(keys.len(), 1, "{listing}");
    t.cmd("keyctl", &["update", keys[0], "{not a session\u{1}\u{2}"])
        .run()
        .success();

    // A cache holds nothing that cannot be fetched again: vault warns (once),
    // ignores the entry and gets a new session, which replaces it.
    let run = t.vault(&["exec", "p", "--json"]).run().success();
    eprintln!(
        "[faults] exec with a damaged cache entry, stderr:\n{}",
        run.stderr
    );
    let second = JsonCreds::parse(&run.stdout);
    let warnings: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(
        warnings[0].starts_with("vault: [warn] ignoring a damaged session cache entry")
            && warnings[0].ends_with("getting a new session"),
        "{}",
        run.stderr
    );
    let gst = session_token_requests(&aws.id);
    assert_eq!(gst.len(), 2);
    all_accepted(&gst);

    // The new session replaced the damaged entry.
    let (third, run) = t.exec_json("p", &[]);
    assert_eq!(third, second);
    assert_eq!(run.stderr, "");
    assert_eq!(session_token_requests(&aws.id).len(), 2);
    assert_eq!(stored(&t, "p"), before);
}

#[test]
fn corrupted_envelope() {
    let _g = alone();
    let _t = Timer::start("corrupted_envelope");
    let t = TestEnv::new("fault_envelope");
    let key = TestKey::start();
    let s = Secrets::new();
    let aws = plain_profile(&t, false).key;
    enroll(&t, &key, &s, &["--profile", "p"]);
    let sealed = envelope(&t, "p");
    let path = envelope_path(&t, "p");

    // Its header: not an envelope at all. Its last byte (the tag): an
    // envelope that does not authenticate once the card has done its part.
    let mut header = sealed.clone();
    header[0] ^= 0xFF;
    let mut tail = sealed.clone();
    *tail.last_mut().unwrap() ^= 0x01;
    for (damaged, phrases) in [
        (
            header,
            &[
                "the envelope of profile \"p\"",
                "70.envelope) is damaged",
                "does not start with \"VLTE\"",
                "vault left the file as it is",
                "vault remove p",
            ][..],
        ),
        (
            tail,
            &[
                "cannot unwrap the key of profile \"p\"",
                "failed authentication: it was altered, damaged, or copied from another item",
                "vault left the file as it is",
                "vault remove p",
            ][..],
        ),
    ] {
        std::fs::write(&path, &damaged).unwrap();
        let run = hw(&t, &s, &["exec", "p", "--json"]).run();
        failed(&run, phrases);
        // Never "repaired" by deleting or rewriting it.
        assert_eq!(std::fs::read(&path).unwrap(), damaged);
        // Listing still works, and says what is wrong.
        let list = t.vault(&["list"]).run().success().stdout;
        assert!(list.lines().any(|l| l.starts_with("p ")), "{list}");
    }
    assert!(session_token_requests(&aws.id).is_empty());

    std::fs::write(&path, &sealed).unwrap();
    hw_exec(&t, &s, "p");
    let gst = session_token_requests(&aws.id);
    assert_eq!(gst.len(), 1);
    all_accepted(&gst);
    assert_eq!(envelope(&t, "p"), sealed);
}

#[test]
fn source_profile_loop() {
    let _t = Timer::start("source_profile_loop");
    let t = TestEnv::new("fault_source_loop");
    let (a, b) = (t.role_arn("a"), t.role_arn("b"));
    let loop_config = format!(
        "[profile c]\nregion = us-east-1\n\n\
         [profile a]\nsource_profile = b\nrole_arn = {a}\n\n\
         [profile b]\nsource_profile = a\nrole_arn = {b}\n"
    );
    t.write_config(&loop_config);
    let key = t.key("u");
    t.add("c", &key);
    let before = stored(&t, "c");

    for profile in ["a", "b"] {
        let run = t.vault(&["exec", profile, "--json"]).run();
        let cycle = if profile == "a" {
            "a → b → a"
        } else {
            "b → a → b"
        };
        failed(
            &run,
            &[
                &format!("source_profile loop in ~/.aws/config: {cycle}"),
                "one profile in the loop must use its own stored keys",
            ],
        );
    }
    // Everything else still works.
    t.vault(&["list"]).run().success();
    t.exec_json("c", &[]);
    assert_eq!(stored(&t, "c"), before);

    // Broken: b from c's keys. Then a works too.
    t.write_config(&loop_config.replace("source_profile = a", "source_profile = c"));
    let (creds, _) = t.exec_json("a", &[]);
    assert!(creds.session_token.is_some());
    let (ar_a, ar_b) = (
        support::assume_role_requests(&a),
        support::assume_role_requests(&b),
    );
    assert_eq!((ar_a.len(), ar_b.len()), (1, 1));
    all_accepted(&ar_a);
    all_accepted(&ar_b);
    // b straight from c's long-term key (no MFA, so no MFA session first),
    // a with b's role session.
    assert_eq!(ar_b[0].key_id, key.id);
    assert!(ar_a[0].key_id.starts_with("ASIA"), "{:?}", ar_a[0]);
    assert_eq!(stored(&t, "c"), before);
    // c's own exec above: its GetSessionToken session.
    let gst = session_token_requests(&key.id);
    assert_eq!(gst.len(), 1);
    all_accepted(&gst);
}

// ------------------------------------------------ read-only, full folders

#[test]
fn lock_folder_read_only() {
    let _t = Timer::start("lock_folder_read_only");
    let t = TestEnv::new("fault_lock_ro");
    let aws = plain_profile(&t, false).key;
    let before = stored(&t, "p");
    let locks = t.dir.join("run/vault/locks");
    std::fs::create_dir_all(&locks).unwrap();

    let run = in_mount_ns(&t, &read_only(&locks), "", &["exec", "p", "--json"]).run();
    failed(
        &run,
        &[
            &format!("cannot take the session lock {}", locks.display()),
            "Read-only file system",
            "hint:",
            "XDG_RUNTIME_DIR",
        ],
    );
    assert!(session_token_requests(&aws.id).is_empty());
    assert_eq!(stored(&t, "p"), before);

    t.exec_json("p", &[]);
    let gst = session_token_requests(&aws.id);
    assert_eq!(gst.len(), 1);
    all_accepted(&gst);
    assert_eq!(stored(&t, "p"), before);
}

#[test]
fn file_store_folder_read_only_or_full() {
    let _t = Timer::start("file_store_folder_read_only_or_full");
    let t = TestEnv::new("fault_file_store");
    t.write_config("[profile p]\nregion = us-east-1\n");
    let pass = support::random(b"abcdefghijklmnopqrstuvwxyz", 20);
    // The stored key is real; the new one never reaches STS (its add fails).
    let (old, new) = (t.key("u"), Key::random());
    let add = |c: Cmd, k: &Key| {
        c.env("VAULT_FILE_PASSPHRASE", &pass)
            .env("AWS_ACCESS_KEY_ID", &k.id)
            .env("AWS_SECRET_ACCESS_KEY", &k.secret)
    };
    add(t.vault(&["--backend", "file", "add", "p", "--env"]), &old)
        .run()
        .success();
    let store = t.dir.join("data/vault/store");
    let before = files_now(&store);
    assert!(!before.is_empty());
    let args = ["--backend", "file", "add", "p", "--env", "--force"];

    // Read-only: nothing can be written.
    let run = add(in_mount_ns(&t, &read_only(&store), "", &args), &new).run();
    failed(
        &run,
        &[&store.display().to_string(), "Read-only file system"],
    );
    assert_eq!(files_now(&store), before);

    // Full: the write fails half way; the old file stays, no temporary is
    // left behind (looked at inside the namespace, where the tmpfs is).
    let data = t.dir.join("data/vault");
    let seen = t.dir.join("store-files-when-full");
    let run = add(
        in_mount_ns(&t, &full(&t, &data), &record_files(&store, &seen), &args),
        &new,
    )
    .run();
    failed(
        &run,
        &[&store.display().to_string(), "No space left on device"],
    );
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), before);
    assert_eq!(files_now(&store), before);

    // The old key still works.
    let run = t
        .vault(&["--backend", "file", "exec", "p", "--json"])
        .env("VAULT_FILE_PASSPHRASE", &pass)
        .run()
        .success();
    JsonCreds::parse(&run.stdout);
    let gst = session_token_requests(&old.id);
    assert_eq!(gst.len(), 1);
    all_accepted(&gst);
    assert!(session_token_requests(&new.id).is_empty());
}

#[test]
fn config_folder_read_only_or_full() {
    let _g = alone();
    let _t = Timer::start("config_folder_read_only_or_full");
    let t = TestEnv::new("fault_config_dir");
    let key = TestKey::start();
    let s = Secrets::new();
    let user = plain_profile(&t, false);
    let aws = user.key.clone();
    let before = stored(&t, "p");
    let config = std::fs::read(&t.config).unwrap();
    let aws_dir = t.home.join(".aws");
    let mfa = user.mfa_serial.clone();
    let b32 = t.seed_file(&user);
    let serial = key.serial.to_string();
    let args = enroll_args(
        &serial,
        &[
            "--profile",
            "p",
            "--keep-keychain-copy",
            "--totp-secret-file",
            &b32,
            "--mfa-serial",
            &mfa,
        ],
    );
    let phrases = |why: &'static str| {
        vec![
            "mfa_serial could not be set in profile \"p\"".to_string(),
            "cannot write ~/.aws/config".to_string(),
            why.to_string(),
            format!("add `mfa_serial = {mfa}` to [profile p]"),
        ]
    };

    // Enrollment writes the config last (mfa_serial): everything before it
    // is done, the config is left as it was, and the message says what is
    // left to do.
    let run = hw_env(in_mount_ns(&t, &read_only(&aws_dir), "", &args), &s).run();
    let p = phrases("Read-only file system");
    failed(&run, &p.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(std::fs::read(&t.config).unwrap(), config);
    assert_eq!(stored(&t, "p"), before);

    let seen = t.dir.join("aws-files-when-full");
    let run = hw_env(
        in_mount_ns(
            &t,
            &full(&t, &aws_dir),
            &record_files(&aws_dir, &seen),
            &args,
        ),
        &s,
    )
    .run();
    let p = phrases("No space left on device");
    failed(&run, &p.iter().map(String::as_str).collect::<Vec<_>>());
    let listing = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(listing.lines().count(), 1, "a leftover: {listing}");
    assert!(listing.contains("./config"), "{listing}");
    assert_eq!(std::fs::read(&t.config).unwrap(), config);
    assert_eq!(stored(&t, "p"), before);

    // Without the fault it completes, and the profile works with the card.
    hw(&t, &s, &args).run().success();
    let now = std::fs::read_to_string(&t.config).unwrap();
    assert!(now.contains(&format!("mfa_serial = {mfa}")), "{now}");
    hw_exec(&t, &s, "p");
    let gst = session_token_requests(&aws.id);
    assert_eq!(gst.len(), 1);
    // The seed loaded into the card gives the device's RFC 6238 codes.
    sent_a_current_code(&gst[0], &user);
    assert_eq!(stored(&t, "p"), before);
}

#[test]
fn envelopes_folder_read_only_or_full() {
    let _g = alone();
    let _t = Timer::start("envelopes_folder_read_only_or_full");
    let t = TestEnv::new("fault_envelopes_dir");
    let key = TestKey::start();
    let s = Secrets::new();
    let aws = plain_profile(&t, false).key;
    let before = stored(&t, "p");
    let envelopes = t.dir.join("data/vault/envelopes");
    std::fs::create_dir_all(&envelopes).unwrap();
    let serial = key.serial.to_string();
    let args = enroll_args(&serial, &["--profile", "p"]);

    let run = hw_env(in_mount_ns(&t, &read_only(&envelopes), "", &args), &s).run();
    failed(
        &run,
        &[
            &format!("cannot write {}", envelope_path(&t, "p").display()),
            "Read-only file system",
        ],
    );
    // The clear copy goes only once the envelope is written.
    assert_eq!(stored(&t, "p"), before);
    assert!(!envelope_path(&t, "p").exists());

    let data = t.dir.join("data/vault");
    let seen = t.dir.join("data-files-when-full");
    let run = hw_env(
        in_mount_ns(&t, &full(&t, &data), &record_files(&data, &seen), &args),
        &s,
    )
    .run();
    failed(
        &run,
        &[
            &format!("cannot write {}", envelope_path(&t, "p").display()),
            "No space left on device",
        ],
    );
    let listing = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(listing, "", "a leftover: {listing}");
    assert_eq!(stored(&t, "p"), before);
    assert!(!envelope_path(&t, "p").exists());

    // The key in the keychain still works, and enrolling completes.
    t.exec_json("p", &[]);
    let gst = session_token_requests(&aws.id);
    assert_eq!(gst.len(), 1);
    all_accepted(&gst);
    hw(&t, &s, &args).run().success();
    assert_eq!(stored(&t, "p"), None, "moved into the envelope");
    t.vault(&["clear"]).run().success();
    hw_exec(&t, &s, "p");
    let gst = session_token_requests(&aws.id);
    assert_eq!(gst.len(), 2);
    all_accepted(&gst);
}

#[test]
fn tokens_json_folder_read_only_or_full() {
    let _g = alone();
    let _t = Timer::start("tokens_json_folder_read_only_or_full");
    let t = TestEnv::new("fault_tokens_json");
    let key = TestKey::start();
    let s = Secrets::new();
    let aws = plain_profile(&t, false).key;
    let before = stored(&t, "p");
    let dir = t.dir.join("config-home/vault");
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = dir.join("tokens.json");
    let serial = key.serial.to_string();
    let args = enroll_args(&serial, &["--profile", "p"]);

    let run = hw_env(in_mount_ns(&t, &read_only(&dir), "", &args), &s).run();
    failed(
        &run,
        &[
            &format!("cannot write {}", tokens.display()),
            "Read-only file system",
            "nothing was changed on the YubiKey",
        ],
    );
    // Checked before the card is touched: not one APDU went to it.
    assert!(key.apdus().is_empty(), "{:?}", key.apdus());
    assert_eq!(stored(&t, "p"), before);
    assert!(!tokens.exists());
    assert!(!envelope_path(&t, "p").exists());

    let seen = t.dir.join("config-files-when-full");
    let run = hw_env(
        in_mount_ns(&t, &full(&t, &dir), &record_files(&dir, &seen), &args),
        &s,
    )
    .run();
    failed(
        &run,
        &[
            &format!("cannot write {}", tokens.display()),
            "No space left on device",
            "nothing was changed on the YubiKey",
        ],
    );
    assert!(key.apdus().is_empty(), "{:?}", key.apdus());
    let listing = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(listing, "", "a leftover: {listing}");
    assert_eq!(stored(&t, "p"), before);
    assert!(!envelope_path(&t, "p").exists());

    t.exec_json("p", &[]);
    let gst = session_token_requests(&aws.id);
    assert_eq!(gst.len(), 1);
    all_accepted(&gst);
    hw(&t, &s, &args).run().success();
    // The first slot vault picks: no key was left orphaned in another.
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&tokens).unwrap()).unwrap();
    assert_eq!(recorded["tokens"][0]["piv"]["slot"], 0x82, "{recorded:#}");
    t.vault(&["clear"]).run().success();
    hw_exec(&t, &s, "p");
    let gst = session_token_requests(&aws.id);
    assert_eq!(gst.len(), 2);
    all_accepted(&gst);
}
