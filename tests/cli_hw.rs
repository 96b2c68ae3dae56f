//! The hardware token through the real stack: the `vault` binary → pcscd →
//! a virtual YubiKey 5 (PIV and OATH applets) → the rig's strict STS, run
//! with `hw/rig -- cargo test -p vault --test cli_hw`.
//!
//! Every test plugs in factory-fresh keys of its own in spare reader slots
//! (`support::vyk`), never the rig's slot-0 key, and drives them with
//! `virtual-yubikey ctl` (touch, removal); what each key did is read from
//! its APDU log, what reached STS from the strict STS's recording, and
//! `ykman` is the outside witness of PIN and slot state.
//!
//! The profiles hold the real access keys of IAM users made for the test,
//! and the OATH credentials the seeds of those users' real MFA devices. The
//! strict STS verifies every signature with the secret it issued and every
//! TokenCode against RFC 6238 of the device's seed: a request it accepted
//! (status 200) signed with the stored key's ID proves the secret vault
//! unwrapped with the card is the original, and each code sent is also
//! compared here with the seed's.
//!
//! The tests run one at a time (`alone()`): vault finds a key by serial by
//! asking every key present, and asking selects another applet, which on a
//! YubiKey clears a verified PIN and management-key authentication. One
//! test's `vault hw status` or OATH lookup in the middle of another's
//! enrollment would make that one fail for reasons that are not its own,
//! and the APDU counts would include other tests' probes.
//!
//! Outside the rig every test fails with instructions, never passes.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::otp::{base32, totp};
use support::token::{self, envelope, envelope_path, hw, tokens_json_path, Secrets};
use support::vyk::TestKey;
use support::{
    assume_role_requests, session_token_requests, IamUser, JsonCreds, Key, Run, StsRequest,
    TestEnv, VAULT,
};

// ------------------------------------------------------------------ harness

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Held by every test for its whole run (see the module documentation);
/// says how long the test took once it had the rig to itself.
struct Alone {
    _turn: MutexGuard<'static, ()>,
    started: Instant,
}

impl Drop for Alone {
    fn drop(&mut self) {
        eprintln!(
            "[cli_hw] {} took {:?}",
            std::thread::current().name().unwrap_or("a test"),
            self.started.elapsed()
        );
    }
}

fn alone() -> Alone {
    // Outside the rig, fail at once with the instructions.
    support::rig_dir();
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    Alone {
        _turn: turn,
        started: Instant::now(),
    }
}

/// `vault hw enroll --serial N EXTRA…` (`token::enroll`); asserts it
/// worked, and says how long it took.
fn enroll(t: &TestEnv, key: &TestKey, s: &Secrets, extra: &[&str]) -> Run {
    let started = Instant::now();
    let run = token::enroll(t, key, s, extra);
    // Flags only: no seed in the test's output.
    let flags: Vec<&str> = extra
        .iter()
        .copied()
        .filter(|a| a.starts_with("--"))
        .collect();
    eprintln!(
        "[cli_hw] {}: enroll {} took {:?}",
        t.name,
        flags.join(" "),
        started.elapsed()
    );
    run
}

/// `vault exec PROFILE --json EXTRA…` with the key's PIN; asserts it worked.
fn exec_json(t: &TestEnv, s: &Secrets, profile: &str, extra: &[&str]) -> (JsonCreds, Run) {
    let mut args = vec!["exec", profile, "--json"];
    args.extend_from_slice(extra);
    let run = hw(t, s, &args).run().success();
    (JsonCreds::parse(&run.stdout), run)
}

/// `vault hw status --json`.
fn status(t: &TestEnv) -> Value {
    let run = t.vault(&["hw", "status", "--json"]).run().success();
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("hw status --json is not JSON ({e}): {}", run.stdout))
}

fn by_serial(list: &Value, serial: u32) -> Option<&Value> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .find(|e| e["serial"] == serial)
}

/// The `enrolled` entry of `serial` in a status.
fn enrolled(st: &Value, serial: u32) -> &Value {
    by_serial(&st["enrolled"], serial)
        .unwrap_or_else(|| panic!("YubiKey {serial} not enrolled: {st:#}"))
}

/// The `present` entry of `serial` in a status.
fn present(st: &Value, serial: u32) -> &Value {
    by_serial(&st["present"], serial)
        .unwrap_or_else(|| panic!("YubiKey {serial} not present: {st:#}"))
}

/// Whether the test's keychain service holds `profile`'s key, asked of the
/// Secret Service directly (`vault list` also lists token-backed profiles).
fn keychain_holds(t: &TestEnv, profile: &str) -> bool {
    token::stored(t, profile).is_some()
}

/// `ykman --reader R ARGS…`: (success, stdout and stderr).
fn ykman(key: &TestKey, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("ykman")
        .arg("--reader")
        .arg(&key.reader)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ykman (the rig puts it on PATH)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ykman_ok(key: &TestKey, args: &[&str]) -> String {
    let (ok, text) = ykman(key, args);
    assert!(ok, "ykman {args:?}: {text}");
    text
}

/// Pulls the key out and waits until pcscd has seen it go.
fn pull(key: &TestKey) {
    key.ctl("remove");
    key.wait_present(false);
}

/// Plugs it back in and waits until pcscd sees it.
fn plug(key: &TestKey) {
    key.ctl("insert");
    key.wait_present(true);
}

/// Out and in again: a power cycle, so no PIN stays verified from before.
fn replug(key: &TestKey) {
    pull(key);
    plug(key);
}

/// The key's APDU log once it has stopped growing.
fn settled_log(key: &TestKey) -> Vec<Value> {
    let mut n = key.apdu_log().len();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let log = key.apdu_log();
        if log.len() == n {
            return log;
        }
        n = log.len();
    }
}

fn apdus(log: &[Value]) -> Vec<&Value> {
    log.iter().filter(|e| e["kind"] == "apdu").collect()
}

fn touches(log: &[Value]) -> usize {
    log.iter().filter(|e| e["touch"] == "given").count()
}

/// The key's APDU log from entry `mark` up to now, proven written up to
/// now: a probe APDU of our own (an instruction no applet has, with random
/// P1 P2) is sent to the key through pcscd and must show up in its log;
/// what came before it is returned. For "the card did nothing" checks: an
/// empty answer then means nothing was exchanged, not that the log stopped
/// being written.
fn log_since_proven(key: &TestKey, mark: usize) -> Vec<Value> {
    use rand::Rng;
    let (p1, p2): (u8, u8) = rand::thread_rng().gen();
    let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcsc context");
    let reader = std::ffi::CString::new(key.reader.clone()).unwrap();
    let card = ctx
        .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .unwrap_or_else(|e| panic!("connect to YubiKey {} for the probe: {e}", key.serial));
    let mut answer = [0u8; 258];
    card.transmit(&[0x00, 0xFD, p1, p2], &mut answer)
        .unwrap_or_else(|e| panic!("probe APDU to YubiKey {}: {e}", key.serial));
    card.disconnect(pcsc::Disposition::LeaveCard)
        .unwrap_or_else(|(_, e)| panic!("disconnect from YubiKey {}: {e}", key.serial));
    let (p1, p2) = (format!("{p1:02X}"), format!("{p2:02X}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = key.apdu_log();
        if let Some(at) = log
            .iter()
            .position(|e| e["kind"] == "apdu" && e["ins"] == "FD" && e["p1"] == p1 && e["p2"] == p2)
        {
            assert!(at >= mark, "the probe is logged before the mark {mark}");
            return log[mark..at].to_vec();
        }
        assert!(
            Instant::now() < deadline,
            "the probe APDU is not in YubiKey {}'s log: the log is not being written",
            key.serial
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `[profile NAME]` section of an AWS config file, line by line.
fn section(config: &str, name: &str) -> Vec<String> {
    let header = format!("[profile {name}]");
    config
        .lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// A second test world that shares the first's tokens, envelopes and
/// config (so the same keys serve it) but has a cache and MFA-code record
/// of its own: a cold start. It does not know which codes the first world
/// sent, and STS (as AWS) accepts a device's code once per time step: wait
/// for a step after the first world's last code (`wait_for_a_step_after`)
/// before its first MFA call.
fn sharing_tokens(from: &TestEnv, name: &str) -> TestEnv {
    let t = TestEnv::new(name);
    std::fs::copy(&from.config, &t.config).unwrap();
    let copy_dir = |rel: &str| {
        let (src, dst) = (from.dir.join(rel), t.dir.join(rel));
        std::fs::create_dir_all(&dst).unwrap();
        for e in std::fs::read_dir(&src).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    };
    copy_dir("config-home/vault");
    copy_dir("data/vault/envelopes");
    t
}

/// A stand-in `zenity` in `t.dir/zenity-bin`: logs each call's arguments,
/// answers an entry dialog with `answer`, and otherwise (notifications)
/// shouts on its own stdout, which must never reach vault's. Returns (PATH
/// for vault, the log).
fn fake_zenity(t: &TestEnv, answer: &str) -> (String, PathBuf) {
    let bin = t.dir.join("zenity-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = t.dir.join("zenity.log");
    let script = t.script(
        "zenity-bin/zenity",
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n\
             case \"$*\" in *--entry*) echo {answer};; *) echo 'ZENITY WAS HERE';; esac\n",
            log.display()
        ),
    );
    assert!(script.exists());
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (path, log)
}

/// Waits up to 5 s for `path` to hold `needle` (a notification is shown
/// by a child vault does not wait for).
fn wait_for_text(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// --------------------------------------------------------------------- TOTP

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Asserts STS accepted `req`: with the strict STS, a request signed with a
/// long-term key's ID and accepted proves it was signed with that key's
/// real secret (for the token path: the secret unwrapped with the card is
/// the original), and an accepted TokenCode was the device's RFC 6238 code.
fn assert_accepted(req: &StsRequest) {
    assert_eq!(
        (req.status, req.error.as_deref()),
        (200, None),
        "STS refused {req:?}"
    );
}

/// Asserts the TokenCode of `req` is `user`'s RFC 6238 code for a step
/// within one of now (checked here, with the seed, not only by STS), and
/// returns that step.
fn assert_code_of(user: &IamUser, req: &StsRequest) -> u64 {
    let code = req.param("TokenCode").expect("a TokenCode");
    assert_eq!(req.param("SerialNumber"), Some(user.mfa_serial.as_str()));
    assert!(
        user.is_current_code(code),
        "TokenCode {code} is not a current RFC 6238 code of {}'s seed",
        user.mfa_serial
    );
    code_step(user, code)
}

/// The step (within one of now) whose code of `user`'s seed is `code`.
fn code_step(user: &IamUser, code: &str) -> u64 {
    let step = now_secs() / 30;
    (step - 2..=step + 1)
        .rev()
        .find(|&s| user.code_at(s) == code)
        .unwrap_or_else(|| panic!("{code} is no current code of {}", user.mfa_serial))
}

/// Waits until the current TOTP step is after `step`: STS accepts each
/// (device, step) once, so a world that does not know `step`'s code was
/// sent must not send it again.
fn wait_for_a_step_after(step: u64) {
    while now_secs() / 30 <= step {
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A GetSessionToken request as the STS recorded it, with its signing time.
#[derive(Debug)]
struct Signed {
    /// `X-Amz-Date`, as Unix seconds.
    date: u64,
    status: u64,
    token_code: Option<String>,
}

/// GetSessionToken requests signed with `key_id`, with their X-Amz-Date
/// (`support::sts_requests` has the decoded parameters, not the headers).
/// As strict as `support::sts_requests`: a missing recording, a first line
/// that is not the STS's "started" or an unreadable line fails the test.
fn signed_session_token_requests(key_id: &str) -> Vec<Signed> {
    use base64::Engine;
    // Proves the recording is written up to now (a marker request).
    support::sts_requests_until_now();
    let path = std::env::var("VAULT_RIG_RECORDING").expect("VAULT_RIG_RECORDING");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the STS recording {path} cannot be read: {e}"));
    // A line still being written (another test's request) is not read.
    let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    let mut lines = complete.lines().map(|l| {
        serde_json::from_str::<Value>(l)
            .unwrap_or_else(|e| panic!("unreadable line in the STS recording {path} ({e}): {l}"))
    });
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("the STS recording {path} is empty"));
    assert_eq!(first["event"], "started", "first line of {path}: {first}");
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    lines
        .filter(|e| e.get("event").is_none())
        .filter_map(|e| {
            let auth = e["headers"]["Authorization"].as_str()?;
            let id = auth.split_once("Credential=")?.1.split('/').next()?;
            let body = e["body"].as_str().unwrap_or_default();
            let body = if e["body_encoded"].as_bool().unwrap_or(false) {
                String::from_utf8_lossy(
                    &base64::engine::general_purpose::STANDARD
                        .decode(body)
                        .unwrap_or_else(|err| panic!("body is not base64 ({err}): {e}")),
                )
                .into_owned()
            } else {
                body.to_string()
            };
            let param = |k: &str| {
                body.split('&')
                    .find_map(|p| p.strip_prefix(&format!("{k}=")))
                    .map(str::to_string)
            };
            if id != key_id || param("Action").as_deref() != Some("GetSessionToken") {
                return None;
            }
            let date = e["headers"]["X-Amz-Date"]
                .as_str()
                .unwrap_or_else(|| panic!("a signed request without X-Amz-Date: {e}"));
            let date = time::PrimitiveDateTime::parse(date, &format)
                .unwrap_or_else(|err| panic!("X-Amz-Date {date}: {err}"))
                .assume_utc()
                .unix_timestamp();
            Some(Signed {
                date: u64::try_from(date).unwrap(),
                status: e["status"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("recorded request without status: {e}")),
                token_code: param("TokenCode"),
            })
        })
        .collect()
}

/// The code must be the seed's TOTP for the step the request was signed
/// in (its X-Amz-Date). The step before is accepted only when the exec
/// began in it: the code was read just before a step boundary and the
/// request signed just after.
fn assert_code_is_totp_of_its_time(seed: &[u8], req: &Signed, exec_began: u64) {
    let code = req.token_code.as_deref().expect("a TokenCode");
    let signed_step = req.date / 30;
    let began_step = exec_began / 30;
    let allowed: Vec<u64> = if began_step < signed_step {
        vec![signed_step - 1, signed_step]
    } else {
        vec![signed_step]
    };
    assert!(
        began_step + 1 >= signed_step,
        "the exec took over 30 s (began in step {began_step}, signed in {signed_step})"
    );
    assert!(
        allowed.iter().any(|&step| totp(seed, step) == code),
        "TokenCode {code} is not the TOTP of step {signed_step} (X-Amz-Date {}){}",
        req.date,
        if allowed.len() > 1 {
            " nor of the step before, when the exec began"
        } else {
            ""
        }
    );
}

/// How many GetSessionToken requests were signed with `key_id`, each of
/// which STS must have accepted (`assert_accepted`).
fn session_tokens_accepted(key_id: &str) -> usize {
    let reqs = session_token_requests(key_id);
    reqs.iter().for_each(assert_accepted);
    reqs.len()
}

/// `[profile p]` with the real access key of IAM user `user` (made for the
/// test, with an enabled MFA device), and `[profile r]`, a real role on it.
fn role_on_p(t: &TestEnv, user: &str) -> (IamUser, String) {
    let role = t.role_arn("hw");
    t.write_config(&format!(
        "[profile p]\nregion = us-east-1\n\n[profile r]\nsource_profile = p\nrole_arn = {role}\n"
    ));
    let user = t.user(user);
    t.add("p", &user.key);
    (user, role)
}

/// `vault hw enroll` arguments that load `user`'s MFA seed (from a file:
/// vault refuses a seed in argv) for `user`'s device into the OATH applet,
/// wrapping profile p's key.
fn with_mfa_of(t: &TestEnv, user: &IamUser) -> Vec<String> {
    [
        "--profile",
        "p",
        "--totp-secret-file",
        &t.seed_file(user),
        "--mfa-serial",
        &user.mfa_serial,
    ]
    .map(str::to_string)
    .to_vec()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// -------------------------------------------------------------------- tests

#[test]
fn enroll_wraps_the_key_loads_the_seed_and_exec_sends_the_cards_code() {
    let _g = alone();
    // The TOTP the test computes is RFC 6238's (appendix B, T = 59 s).
    assert_eq!(totp(b"12345678901234567890", 1), "287082");
    assert_eq!(base32(b"foobar"), "MZXW6YTBOI");

    let t = TestEnv::new("hw_enroll_exec");
    let key = TestKey::start();
    let s = Secrets::new();
    // p holds alice's real key; the card gets her real device's seed.
    let (alice, role) = role_on_p(&t, "alice");
    let mfa = alice.mfa_serial.clone();
    let seed = support::otp::base32_decode(&alice.seed);
    assert!(keychain_holds(&t, "p"));
    let before = ykman_ok(&key, &["piv", "info"]);
    assert!(before.contains("WARNING: Using default PIN!"), "{before}");

    enroll(&t, &key, &s, &strs(&with_mfa_of(&t, &alice)));

    // The store no longer holds the key; the envelope does.
    assert!(
        !keychain_holds(&t, "p"),
        "the clear copy is still in the keychain"
    );
    assert!(envelope_path(&t, "p").exists());
    let table = t.vault(&["list"]).run().success().stdout;
    let row = table
        .lines()
        .find(|l| l.starts_with("p "))
        .unwrap_or_else(|| panic!("no row for p:\n{table}"));
    let serial = key.serial.to_string();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["p", "YubiKey", serial.as_str(), "-"]
    );

    // What status reports.
    let st = status(&t);
    let e = enrolled(&st, key.serial);
    assert_eq!(e["role"], "primary", "{e:#}");
    assert_eq!(e["present"], true, "{e:#}");
    assert_eq!(e["firmware"], key.firmware.as_str(), "{e:#}");
    let piv = &e["piv"];
    assert_eq!(piv["slot"], "82", "{e:#}");
    assert_eq!(piv["algorithm"], "P-256", "{e:#}");
    assert_eq!(piv["pin_policy"], "once", "{e:#}");
    assert_eq!(piv["touch_policy"], "always", "{e:#}");
    assert_eq!(piv["attested"], true, "{e:#}");
    assert_eq!(e["profiles"], serde_json::json!(["p"]), "{e:#}");
    assert_eq!(
        e["oath"],
        serde_json::json!([{
            "name": format!("aws:alice-{}@{}", t.tag, support::ACCOUNT),
            "mfa_serial": mfa,
            "touch": true,
        }]),
        "{e:#}"
    );
    assert_eq!(st["pending_backup"], serde_json::json!([]));
    assert_eq!(
        present(&st, key.serial)["pin"],
        serde_json::json!({"verified": false, "tries_left": 3})
    );

    // mfa_serial was recorded in p, which had none; r was left alone.
    let config = std::fs::read_to_string(&t.config).unwrap();
    assert_eq!(
        section(&config, "p"),
        [
            "region = us-east-1".to_string(),
            format!("mfa_serial = {mfa}")
        ],
        "{config}"
    );
    assert_eq!(section(&config, "r").len(), 2, "{config}");

    // exec: the key from the envelope, the code from the OATH applet.
    let began = now_secs();
    let (creds, _) = exec_json(&t, &s, "r", &[]);
    assert!(creds.access_key_id.starts_with("ASIA"), "{creds:?}");
    let gst = session_token_requests(&alice.key.id);
    assert_eq!(gst.len(), 1, "one GetSessionToken with the unwrapped key");
    // Accepted by the strict STS: signed with alice's real secret, so the
    // card unwrapped the original; and with her device's current code.
    assert_accepted(&gst[0]);
    assert_code_of(&alice, &gst[0]);
    let signed = signed_session_token_requests(&alice.key.id);
    assert_eq!(signed.len(), 1);
    assert_eq!(signed[0].status, 200);
    assert_code_is_totp_of_its_time(&seed, &signed[0], began);
    let ar = assume_role_requests(&role);
    assert_eq!(ar.len(), 1);
    assert_accepted(&ar[0]);
    assert!(
        ar[0].key_id.starts_with("ASIA") && ar[0].key_id != alice.key.id,
        "role assumed with the long-term key: {:?}",
        ar[0]
    );
    // What exec handed out is the role's session: STS says so.
    let who = t
        .cmd("aws", &["sts", "get-caller-identity", "--output", "json"])
        .env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key)
        .env("AWS_SESSION_TOKEN", creds.session_token.as_deref().unwrap())
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .run()
        .success();
    let who: Value = serde_json::from_str(&who.stdout).unwrap();
    let role_name = role.rsplit('/').next().unwrap();
    assert!(
        who["Arn"]
            .as_str()
            .unwrap()
            .contains(&format!(":assumed-role/{role_name}/")),
        "{who}"
    );

    // The factory PIN, PUK and management key are gone: ykman says so,
    // and the factory PIN and PUK are refused (each costs a try).
    let after = ykman_ok(&key, &["piv", "info"]);
    assert!(!after.contains("default"), "{after}");
    assert!(
        after.contains("Management key is stored on the YubiKey, protected by PIN."),
        "{after}"
    );
    let (ok, out) = ykman(
        &key,
        &[
            "piv",
            "access",
            "change-pin",
            "-P",
            "123456",
            "-n",
            "13572468",
        ],
    );
    assert!(!ok && out.contains("2 tries left"), "{out}");
    let (ok, out) = ykman(
        &key,
        &[
            "piv",
            "access",
            "change-puk",
            "-p",
            "12345678",
            "-n",
            "86421357",
        ],
    );
    assert!(!ok && out.contains("2 tries left"), "{out}");
    let info = ykman_ok(&key, &["piv", "info"]);
    assert!(info.contains("PIN tries remaining:      2/3"), "{info}");
    assert!(info.contains("PUK tries remaining:      2/3"), "{info}");
}

#[test]
fn an_untouched_key_fails_exec_cleanly_and_leaves_the_envelope_alone() {
    let _g = alone();
    let t = TestEnv::new("hw_touch_never");
    let key = TestKey::start();
    let s = Secrets::new();
    let (user, _) = role_on_p(&t, "alice");
    enroll(&t, &key, &s, &["--profile", "p"]);
    let sealed = envelope(&t, "p");

    key.ctl("touch never");
    key.ctl("touch-timeout 1500");
    let mark = key.apdu_log().len();
    let run = hw(&t, &s, &["exec", "p", "--json"]).run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("no touch") && run.stderr.contains("touch the YubiKey"),
        "{}",
        run.stderr
    );
    assert!(
        run.elapsed < Duration::from_secs(10),
        "gave up only after {:?}",
        run.elapsed
    );
    let log = settled_log(&key);
    let timed_out: Vec<_> = log[mark..]
        .iter()
        .filter(|e| e["touch"] == "timeout")
        .collect();
    assert_eq!(timed_out.len(), 1, "{timed_out:?}");
    assert_eq!(timed_out[0]["ins"], "87");
    assert_eq!(envelope(&t, "p"), sealed, "the envelope changed");
    assert!(session_token_requests(&user.key.id).is_empty());

    key.ctl("touch now");
    key.ctl("touch-timeout 15000");
    exec_json(&t, &s, "p", &[]);
    assert_eq!(session_tokens_accepted(&user.key.id), 1);
    assert_eq!(envelope(&t, "p"), sealed, "the envelope changed");
}

#[test]
fn a_wrong_pin_costs_one_try_and_is_never_retried() {
    let _g = alone();
    let t = TestEnv::new("hw_wrong_pin");
    let key = TestKey::start();
    let s = Secrets::new();
    let (user, _) = role_on_p(&t, "alice");
    enroll(&t, &key, &s, &["--profile", "p"]);
    // Forget the PIN enrollment verified.
    replug(&key);

    let mark = key.apdu_log().len();
    let run = hw(&t, &s, &["exec", "p", "--json"])
        .env("VAULT_PIN", s.wrong_pin())
        .run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("wrong PIN, 2 tries left"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&key.serial.to_string()),
        "{}",
        run.stderr
    );
    // Read up to a probe of our own: no later VERIFY or touch went unseen.
    let log = log_since_proven(&key, mark);
    let verifies: Vec<&Value> = apdus(&log)
        .into_iter()
        .filter(|e| e["ins"] == "20" && e["lc"].as_u64().unwrap_or(0) > 0)
        .collect();
    assert_eq!(verifies.len(), 1, "PIN sent more than once: {verifies:?}");
    assert_eq!(verifies[0]["sw"], "63C2");
    assert!(touches(&log) == 0, "touched without a PIN");
    assert!(session_token_requests(&user.key.id).is_empty());

    let st = status(&t);
    assert_eq!(
        present(&st, key.serial)["pin"],
        serde_json::json!({"verified": false, "tries_left": 2})
    );
    let info = ykman_ok(&key, &["piv", "info"]);
    assert!(info.contains("PIN tries remaining:      2/3"), "{info}");

    // The right PIN works (STS accepts the unwrapped key), and the counter
    // is full again.
    exec_json(&t, &s, "p", &[]);
    assert_eq!(session_tokens_accepted(&user.key.id), 1);
    replug(&key);
    let st = status(&t);
    assert_eq!(present(&st, key.serial)["pin"]["tries_left"], 3);
}

#[test]
fn sixteen_callers_with_a_wrong_vault_pin_spend_one_try() {
    let _g = alone();
    let t = TestEnv::new("hw_wrong_pin_16");
    let key = TestKey::start();
    let s = Secrets::new();
    let (user, _) = role_on_p(&t, "alice");
    enroll(&t, &key, &s, &["--profile", "p"]);
    replug(&key);

    // The same wrong PIN for every caller, as one exported VAULT_PIN is.
    let wrong = s.wrong_pin();
    let mark = key.apdu_log().len();
    let running: Vec<_> = (0..16)
        .map(|_| {
            hw(&t, &s, &["exec", "p", "--json"])
                .env("VAULT_PIN", &wrong)
                .spawn()
        })
        .collect();
    let runs: Vec<_> = running.into_iter().map(|r| r.wait()).collect();
    for run in &runs {
        assert_eq!(run.code, Some(1), "{run:?}");
        assert_eq!(run.stdout, "");
    }
    // One caller sent it and was told; the others were told it was refused
    // before, with what is left and what to do.
    assert_eq!(
        runs.iter()
            .filter(|r| r.stderr.contains("wrong PIN, 2 tries left"))
            .count(),
        1,
        "{runs:?}"
    );
    assert!(
        runs.iter()
            .filter(|r| !r.stderr.contains("wrong PIN, 2 tries left"))
            .all(
                |r| r.stderr.contains("already refused the PIN in VAULT_PIN")
                    && r.stderr.contains("2 tries left")
            ),
        "{runs:?}"
    );
    let log = log_since_proven(&key, mark);
    let verifies = apdus(&log)
        .into_iter()
        .filter(|e| e["ins"] == "20" && e["lc"].as_u64().unwrap_or(0) > 0)
        .count();
    assert_eq!(verifies, 1, "the wrong PIN was sent {verifies} times");
    assert!(session_token_requests(&user.key.id).is_empty());
    let info = ykman_ok(&key, &["piv", "info"]);
    assert!(info.contains("PIN tries remaining:      2/3"), "{info}");

    // With one try left, VAULT_PIN (even a new one) is not sent at all.
    exec_json_with_pin_expecting_refusal(&t, &s, &key);
    // The right PIN still works.
    exec_json(&t, &s, "p", &[]);
    assert_eq!(session_tokens_accepted(&user.key.id), 1);
}

/// Spends a second try with another wrong `VAULT_PIN` (allowed: 2 tries
/// were left), then checks a `VAULT_PIN` caller sends nothing with only one
/// try left; then verifies the right PIN with yubico-piv-tool, which fills
/// the counter again.
fn exec_json_with_pin_expecting_refusal(t: &TestEnv, s: &Secrets, key: &TestKey) {
    let second = loop {
        let w = s.wrong_pin();
        if w != "11223344" {
            break w;
        }
    };
    let run = hw(t, s, &["exec", "p", "--json"])
        .env("VAULT_PIN", &second)
        .run();
    assert!(
        run.stderr.contains("wrong PIN, 1 try left"),
        "{}",
        run.stderr
    );
    replug(key);
    let mark = key.apdu_log().len();
    let run = hw(t, s, &["exec", "p", "--json"])
        .env("VAULT_PIN", "11223344")
        .run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("has 1 try left before its PIN is blocked")
            && run.stderr.contains("unblock-pin"),
        "{}",
        run.stderr
    );
    let log = log_since_proven(key, mark);
    assert_eq!(
        apdus(&log)
            .into_iter()
            .filter(|e| e["ins"] == "20" && e["lc"].as_u64().unwrap_or(0) > 0)
            .count(),
        0,
        "a PIN was sent with one try left"
    );
    let out = std::process::Command::new("yubico-piv-tool")
        .args(["-r", &key.reader, "-a", "verify-pin", "-P", &s.pin])
        .output()
        .expect("yubico-piv-tool");
    assert!(out.status.success(), "{out:?}");
    replug(key);
}

#[test]
fn a_key_pulled_mid_unwrap_is_named_and_nothing_changes() {
    let _g = alone();
    let t = TestEnv::new("hw_removed_mid_unwrap");
    let key = TestKey::start();
    let s = Secrets::new();
    let (user, _) = role_on_p(&t, "alice");
    enroll(&t, &key, &s, &["--profile", "p"]);
    let sealed = envelope(&t, "p");

    key.ctl("remove-on 87");
    let run = hw(&t, &s, &["exec", "p", "--json"])
        .env("VAULT_TOKEN_WAIT", "2s")
        .run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains(&format!(
            "YubiKey {} was removed; insert it and try again",
            key.serial
        )),
        "{}",
        run.stderr
    );
    key.wait_present(false);
    assert!(key
        .apdu_log()
        .iter()
        .any(|e| e["event"] == "removed-on-ins"));
    assert_eq!(envelope(&t, "p"), sealed, "the envelope changed");
    assert!(session_token_requests(&user.key.id).is_empty());

    plug(&key);
    exec_json(&t, &s, "p", &[]);
    assert_eq!(session_tokens_accepted(&user.key.id), 1);
    assert_eq!(envelope(&t, "p"), sealed, "the envelope changed");
}

#[test]
fn a_backup_key_opens_the_envelope_when_the_primary_is_gone() {
    let _g = alone();
    let t = TestEnv::new("hw_backup");
    let (a, b) = (TestKey::start(), TestKey::start());
    let (sa, sb) = (Secrets::new(), Secrets::new());
    let (user, _) = role_on_p(&t, "alice");

    let run = enroll(&t, &b, &sb, &["--backup"]);
    assert!(!run.stderr.contains("envelope"), "{}", run.stderr);
    let run = enroll(&t, &a, &sa, &["--profile", "p"]);
    assert!(
        run.stderr
            .contains("Wrapped profile \"p\"'s key for 2 recipient(s); unwrap checked."),
        "{}",
        run.stderr
    );
    let st = status(&t);
    let (ea, eb) = (enrolled(&st, a.serial), enrolled(&st, b.serial));
    assert_eq!(ea["role"], "primary", "{st:#}");
    assert_eq!(eb["role"], "backup", "{st:#}");
    assert_eq!(ea["profiles"], serde_json::json!(["p"]));
    assert_eq!(eb["profiles"], serde_json::json!(["p"]));
    // Enrolling A must not have tried A's PIN on B.
    assert_eq!(present(&st, b.serial)["pin"]["tries_left"], 3, "{st:#}");

    // Both present: the primary is the one asked.
    let (a_mark, b_mark) = (a.apdu_log().len(), b.apdu_log().len());
    exec_json(&t, &sa, "p", &[]);
    assert_eq!(touches(&settled_log(&a)[a_mark..]), 1, "A not used");
    assert_eq!(
        touches(&log_since_proven(&b, b_mark)),
        0,
        "B used while A is here"
    );
    assert_eq!(session_tokens_accepted(&user.key.id), 1);

    // A gone: B alone opens it.
    t.vault(&["clear", "--force"]).run().success();
    pull(&a);
    let b_mark = b.apdu_log().len();
    exec_json(&t, &sb, "p", &[]);
    assert_eq!(touches(&settled_log(&b)[b_mark..]), 1, "B not used");
    assert_eq!(session_tokens_accepted(&user.key.id), 2);

    let st = status(&t);
    let (ea, eb) = (enrolled(&st, a.serial), enrolled(&st, b.serial));
    assert_eq!(ea["role"], "primary", "{st:#}");
    assert_eq!(ea["present"], false, "{st:#}");
    assert_eq!(eb["role"], "backup", "{st:#}");
    assert_eq!(eb["present"], true, "{st:#}");
    assert_eq!(ea["profiles"], serde_json::json!(["p"]));
    assert_eq!(eb["profiles"], serde_json::json!(["p"]));
}

#[test]
fn a_backup_enrolled_while_the_primary_is_away_is_added_at_its_next_unwrap() {
    let _g = alone();
    let t = TestEnv::new("hw_backup_pending");
    let (a, b) = (TestKey::start(), TestKey::start());
    let (sa, sb) = (Secrets::new(), Secrets::new());
    let (user, _) = role_on_p(&t, "alice");
    enroll(&t, &a, &sa, &["--profile", "p"]);
    pull(&a);

    let run = enroll(&t, &b, &sb, &["--backup"]);
    assert!(
        run.stderr.contains(&format!(
            "YubiKey {} will be added to profile \"p\"'s envelope the next time it is unwrapped.",
            b.serial
        )),
        "{}",
        run.stderr
    );
    let st = status(&t);
    assert_eq!(st["pending_backup"], serde_json::json!(["p"]));
    assert_eq!(enrolled(&st, b.serial)["profiles"], serde_json::json!([]));
    let sealed = envelope(&t, "p");

    // The next unwrap (with A) re-seals to both.
    plug(&a);
    exec_json(&t, &sa, "p", &[]);
    assert_ne!(envelope(&t, "p"), sealed, "not re-sealed");
    let st = status(&t);
    assert_eq!(st["pending_backup"], serde_json::json!([]));
    assert_eq!(
        enrolled(&st, b.serial)["profiles"],
        serde_json::json!(["p"])
    );
    assert_eq!(
        enrolled(&st, a.serial)["profiles"],
        serde_json::json!(["p"])
    );

    // And B alone opens it now.
    pull(&a);
    t.vault(&["clear", "--force"]).run().success();
    let b_mark = b.apdu_log().len();
    exec_json(&t, &sb, "p", &[]);
    assert_eq!(touches(&settled_log(&b)[b_mark..]), 1);
    assert_eq!(session_tokens_accepted(&user.key.id), 2);
}

#[test]
fn a_backup_enrolled_next_to_its_primary_is_added_at_once() {
    let _g = alone();
    let t = TestEnv::new("hw_backup_now");
    let (a, b) = (TestKey::start(), TestKey::start());
    let (sa, sb) = (Secrets::new(), Secrets::new());
    let (user, _) = role_on_p(&t, "alice");
    enroll(&t, &a, &sa, &["--profile", "p"]);
    replug(&a);

    // B's new PIN from VAULT_NEW_PIN; A's, to open the envelope, from VAULT_PIN.
    let a_mark = a.apdu_log().len();
    let serial = b.serial.to_string();
    let run = hw(&t, &sb, &["hw", "enroll", "--serial", &serial, "--backup"])
        .env("VAULT_PIN", &sa.pin)
        .run()
        .success();
    assert!(
        run.stderr.contains(&format!(
            "Added YubiKey {} to profile \"p\"'s envelope.",
            b.serial
        )),
        "{}",
        run.stderr
    );
    assert_eq!(touches(&settled_log(&a)[a_mark..]), 1, "A did not open it");
    let st = status(&t);
    assert_eq!(st["pending_backup"], serde_json::json!([]));
    assert_eq!(
        enrolled(&st, b.serial)["profiles"],
        serde_json::json!(["p"])
    );

    // A lost right away: B opens it.
    pull(&a);
    exec_json(&t, &sb, "p", &[]);
    assert_eq!(session_tokens_accepted(&user.key.id), 1);
}

#[test]
fn an_absent_key_is_named_after_the_wait_and_a_kept_copy_is_used_with_a_warning() {
    let _g = alone();
    let t = TestEnv::new("hw_absent");
    let key = TestKey::start();
    let s = Secrets::new();
    t.write_config("[profile p]\nregion = us-east-1\n\n[profile q]\nregion = us-east-1\n");
    let (kp, kq) = (t.key("pat"), t.key("quinn"));
    t.add("p", &kp);
    t.add("q", &kq);
    enroll(&t, &key, &s, &["--profile", "p"]);
    let run = enroll(&t, &key, &s, &["--profile", "q", "--keep-keychain-copy"]);
    assert!(
        run.stderr.contains("Kept the keychain store's copy"),
        "{}",
        run.stderr
    );
    assert!(!keychain_holds(&t, "p"));
    assert!(keychain_holds(&t, "q"));
    pull(&key);

    let serial = key.serial;
    let run = hw(&t, &s, &["exec", "p", "--json"])
        .env("VAULT_TOKEN_WAIT", "2s")
        .run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        (run.stdout.as_str(), run.stderr.as_str()),
        (
            "",
            format!(
                "vault: Insert YubiKey {serial} to unlock profile \"p\"\n\
                 vault: profile \"p\" is unlocked by YubiKey {serial}, which is not present\n\
                 vault: hint: insert YubiKey {serial} and try again (vault waited 2 s; \
                 VAULT_TOKEN_WAIT changes that)\n"
            )
            .as_str()
        )
    );
    assert!(
        run.elapsed >= Duration::from_secs(2) && run.elapsed < Duration::from_secs(10),
        "{:?}",
        run.elapsed
    );
    assert!(session_token_requests(&kp.id).is_empty());

    let run = hw(&t, &s, &["exec", "q", "--json"])
        .env("VAULT_TOKEN_WAIT", "2s")
        .run()
        .success();
    JsonCreds::parse(&run.stdout);
    assert!(
        run.stderr.contains(&format!(
            "vault: warning: YubiKey {serial} is not present; using the keychain store's copy \
             of profile \"q\"'s key"
        )),
        "{}",
        run.stderr
    );
    // Accepted: the kept copy is q's real key.
    assert_eq!(session_tokens_accepted(&kq.id), 1);
    assert!(session_token_requests(&kp.id).is_empty());
}

#[test]
fn without_the_token_mfa_falls_back_to_the_code_given() {
    let _g = alone();
    let t = TestEnv::new("hw_mfa_fallback");
    let key = TestKey::start();
    let s = Secrets::new();
    t.write_config("[profile p]\nregion = us-east-1\n");
    // p holds bob's real key; the card gets his real device's seed.
    let bob = t.user("bob");
    t.add("p", &bob.key);
    let mfa = bob.mfa_serial.clone();
    let mut args = vec!["--keep-keychain-copy"];
    let bob_args = with_mfa_of(&t, &bob);
    args.extend(strs(&bob_args));
    enroll(&t, &key, &s, &args);
    pull(&key);

    // No other source: the token is looked for, then the prompt, which
    // cannot ask here.
    let run = hw(&t, &s, &["exec", "p", "--json"])
        .env("VAULT_TOKEN_WAIT", "2s")
        .run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "");
    for said in [
        "is not present; using the keychain store's copy".to_string(),
        format!(
            "Insert your YubiKey (serial {}) for the MFA code",
            key.serial
        ),
        "no way to ask you".to_string(),
        "--mfa-token".to_string(),
    ] {
        assert!(
            run.stderr.contains(&said),
            "{said:?} not in:\n{}",
            run.stderr
        );
    }
    assert!(session_token_requests(&bob.key.id).is_empty());

    // Where a dialog can ask, the code typed there goes to STS: the one
    // bob reads off his device at that moment.
    let (path, log) = fake_zenity(&t, &format!("$({})", bob.mfa_process()));
    let run = hw(&t, &s, &["exec", "p", "--json", "--prompt", "zenity"])
        .env("VAULT_TOKEN_WAIT", "2s")
        .env("PATH", &path)
        .env("DISPLAY", ":99")
        .run()
        .success();
    JsonCreds::parse(&run.stdout);
    let asked = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        asked
            .lines()
            .any(|l| l.contains("--entry") && l.contains(&mfa)),
        "{asked}"
    );
    let gst = session_token_requests(&bob.key.id);
    assert_eq!(gst.len(), 1);
    // Accepted with the kept copy of bob's key and the typed code, which is
    // his device's current one.
    assert_accepted(&gst[0]);
    let typed_step = assert_code_of(&bob, &gst[0]);

    // --mfa-token: that code goes to STS. (Last: the step of a typed code
    // is spent, and a later OATH attempt would first wait for the next.)
    // AWS accepts a code once: the next step's.
    t.vault(&["clear", "--force"]).run().success();
    wait_for_a_step_after(typed_step);
    let code = bob.code();
    let run = hw(&t, &s, &["exec", "p", "--json", "--mfa-token", &code])
        .env("VAULT_TOKEN_WAIT", "2s")
        .run()
        .success();
    JsonCreds::parse(&run.stdout);
    assert!(
        run.stderr.contains("using the keychain store's copy"),
        "{}",
        run.stderr
    );
    let gst = session_token_requests(&bob.key.id);
    assert_eq!(gst.len(), 2);
    assert_accepted(&gst[1]);
    assert_eq!(gst[1].param("TokenCode"), Some(code.as_str()));
    assert_code_of(&bob, &gst[1]);
}

#[test]
fn cold_cached_and_concurrent_execs_cost_few_apdus_and_two_touches() {
    let _g = alone();
    let t = TestEnv::new("hw_apdus");
    let key = TestKey::start();
    let s = Secrets::new();
    // p holds carol's real key; the card gets her real device's seed.
    let (carol, role) = role_on_p(&t, "carol");
    enroll(&t, &key, &s, &strs(&with_mfa_of(&t, &carol)));
    replug(&key);

    // Cold: no session cached, PIN not verified. What it takes, on this
    // key: PIV SELECT, GET VERSION, GET SERIAL (opening it by serial),
    // an empty VERIFY (PIN state), VERIFY, GENERAL AUTHENTICATE (ECDH,
    // touch); then OATH SELECT and CALCULATE (touch). The slot's key and
    // policies come from tokens.json (no GET METADATA), and the OATH side
    // knows the card from the PIV side (no Management SELECT + READ
    // CONFIG). 8 round trips, 2 touches.
    const COLD_MAX_APDUS: usize = 8;
    let mark = key.apdu_log().len();
    let (cold_creds, cold) = exec_json(&t, &s, "r", &[]);
    let log = settled_log(&key);
    let cold_apdus = apdus(&log[mark..]).len();
    let cold_touches = touches(&log[mark..]);
    eprintln!(
        "[cli_hw] cold exec --json: {cold_apdus} APDUs, {cold_touches} touches, {:?}",
        cold.elapsed
    );
    assert!(
        cold_apdus <= COLD_MAX_APDUS,
        "{cold_apdus} APDUs: {:#?}",
        &log[mark..]
    );
    assert_eq!(cold_touches, 2, "unwrap and OATH: {:#?}", &log[mark..]);
    // Accepted: the unwrapped secret is carol's, the card's code her
    // device's current one.
    let gst = session_token_requests(&carol.key.id);
    assert_eq!(gst.len(), 1);
    assert_accepted(&gst[0]);
    let cold_step = assert_code_of(&carol, &gst[0]);
    let ar = assume_role_requests(&role);
    assert_eq!(ar.len(), 1);
    assert_accepted(&ar[0]);

    // Cached: the card is not asked at all (read up to a probe of ours).
    let mark = key.apdu_log().len();
    let (cached_creds, cached) = exec_json(&t, &s, "r", &[]);
    let log = log_since_proven(&key, mark);
    let cached_apdus = apdus(&log).len();
    let cached_touches = touches(&log);
    eprintln!(
        "[cli_hw] cached exec --json: {cached_apdus} APDUs, {cached_touches} touches, {:?}",
        cached.elapsed
    );
    assert_eq!((cached_apdus, cached_touches), (0, 0), "{log:#?}");
    assert_eq!(cached_creds, cold_creds);
    assert_eq!(session_tokens_accepted(&carol.key.id), 1);
    assert_eq!(assume_role_requests(&role).len(), 1);

    // 16 at once on a cold cache (a world sharing this key, with no MFA
    // code used yet): one unwrap, one code, one session. The cold exec's
    // code is spent (AWS takes each once) and this world does not know it:
    // start in a later step.
    const N: usize = 16;
    let t2 = sharing_tokens(&t, "hw_apdus_16");
    replug(&key);
    wait_for_a_step_after(cold_step);
    let go = t2.dir.join("go");
    let gate = "until [ -e \"$1\" ]; do sleep 0.01; done; shift; exec \"$@\"";
    let go_arg = go.display().to_string();
    let mark = key.apdu_log().len();
    let running: Vec<_> = (0..N)
        .map(|_| {
            t2.cmd(
                "sh",
                &["-c", gate, "sh", &go_arg, VAULT, "exec", "r", "--json"],
            )
            .env("VAULT_PIN", &s.pin)
            .spawn()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    std::fs::write(&go, "").unwrap();
    let runs: Vec<Run> = running.into_iter().map(|r| r.wait().success()).collect();
    let took = started.elapsed();
    let log = settled_log(&key);
    let many_apdus = apdus(&log[mark..]).len();
    let many_touches = touches(&log[mark..]);
    eprintln!(
        "[cli_hw] {N} concurrent cold exec --json: {many_apdus} APDUs, {many_touches} touches, \
         {took:?} for all"
    );
    let first = JsonCreds::parse(&runs[0].stdout);
    for r in &runs {
        assert_eq!(JsonCreds::parse(&r.stdout), first, "not one shared session");
    }
    assert_ne!(first, cold_creds);
    let gst = session_token_requests(&carol.key.id);
    assert_eq!(gst.len(), 2, "one more GetSessionToken");
    assert_accepted(&gst[1]);
    assert_code_of(&carol, &gst[1]);
    let ar = assume_role_requests(&role);
    assert_eq!(ar.len(), 2, "one more AssumeRole");
    assert_accepted(&ar[1]);
    assert_eq!(
        many_touches,
        cold_touches,
        "touches beyond one process's: {:#?}",
        &log[mark..]
    );
    assert!(many_apdus <= COLD_MAX_APDUS, "{many_apdus} APDUs");
}

#[test]
fn touch_cached_is_the_policy_of_the_generated_key() {
    let _g = alone();
    let t = TestEnv::new("hw_touch_cached");
    let key = TestKey::start();
    let s = Secrets::new();
    let run = enroll(&t, &key, &s, &["--touch", "cached"]);
    assert!(
        run.stderr.contains("(PIN once, touch cached)"),
        "{}",
        run.stderr
    );
    let st = status(&t);
    let piv = &enrolled(&st, key.serial)["piv"];
    assert_eq!(piv["touch_policy"], "cached", "{st:#}");
    assert_eq!(piv["pin_policy"], "once", "{st:#}");
    let info = ykman_ok(&key, &["piv", "keys", "info", "82"]);
    assert!(
        info.lines()
            .any(|l| l.starts_with("Touch required") && l.trim_end().ends_with("CACHED")),
        "{info}"
    );
}

#[test]
fn enroll_among_several_keys_wants_a_serial_and_changes_nothing() {
    let _g = alone();
    let t = TestEnv::new("hw_several");
    let (a, b) = (TestKey::start(), TestKey::start());
    // A new PIN and PUK no key accepts: should vault pick a key after all
    // (the rig's own, say), it stops before changing anything on it.
    let s = Secrets {
        pin: "1".into(),
        puk: "1".into(),
    };
    let run = hw(&t, &s, &["hw", "enroll"]).run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "");
    let (first, hint) = run.stderr.split_once('\n').unwrap();
    let listed: Vec<u32> = first
        .strip_prefix("vault: several YubiKeys are plugged in: ")
        .unwrap_or_else(|| panic!("{}", run.stderr))
        .split(", ")
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        listed.contains(&a.serial) && listed.contains(&b.serial),
        "{listed:?}"
    );
    assert_eq!(hint, "vault: hint: choose one with --serial N\n");
    assert!(!tokens_json_path(&t).exists());
    for k in [&a, &b] {
        let info = ykman_ok(k, &["piv", "info"]);
        assert!(info.contains("WARNING: Using default PIN!"), "{info}");
        assert!(!info.contains("Slot 82"), "{info}");
    }
}

/// The unwrap takes the slot's key from tokens.json instead of asking the
/// card, so a slot regenerated by another tool is found out only when the
/// envelope fails to open: vault must then say that, not "damaged".
#[test]
fn a_slot_regenerated_behind_vaults_back_is_named_and_the_envelope_kept() {
    let _g = alone();
    let t = TestEnv::new("hw_regenerated");
    let key = TestKey::start();
    let s = Secrets::new();
    let (user, _) = role_on_p(&t, "alice");
    enroll(&t, &key, &s, &["--profile", "p"]);
    let sealed = envelope(&t, "p");
    let tokens = std::fs::read_to_string(tokens_json_path(&t)).unwrap();

    // ykman finds vault's PIN-protected management key the way it finds
    // its own.
    let pem = t.dir.join("other.pem");
    let pem_arg = pem.display().to_string();
    ykman_ok(
        &key,
        &[
            "piv",
            "keys",
            "generate",
            "-a",
            "ECCP256",
            "-P",
            &s.pin,
            "--touch-policy",
            "NEVER",
            "82",
            &pem_arg,
        ],
    );
    replug(&key);

    let run = hw(&t, &s, &["exec", "p", "--json"]).run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("slot 82") && run.stderr.contains("regenerated"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("damaged"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert_eq!(envelope(&t, "p"), sealed, "the envelope changed");
    assert_eq!(
        std::fs::read_to_string(tokens_json_path(&t)).unwrap(),
        tokens
    );
    assert!(session_token_requests(&user.key.id).is_empty());
}

#[test]
fn enrolling_an_enrolled_key_again_keeps_its_slot() {
    let _g = alone();
    let t = TestEnv::new("hw_enroll_again");
    let key = TestKey::start();
    let s = Secrets::new();
    enroll(&t, &key, &s, &[]);
    let first = std::fs::read_to_string(tokens_json_path(&t)).unwrap();

    let run = enroll(&t, &key, &s, &[]);
    assert!(
        run.stderr
            .contains("Already enrolled: slot 82 (touch always); keeping it."),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("Changed"), "{}", run.stderr);
    assert!(!run.stderr.contains("Generated"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(tokens_json_path(&t)).unwrap(),
        first
    );
    let info = ykman_ok(&key, &["piv", "info"]);
    assert!(info.contains("Slot 82"), "{info}");
    assert!(!info.contains("Slot 83"), "{info}");
}

#[test]
fn removing_the_only_copy_of_a_token_backed_key_asks_for_the_profile_name() {
    let _g = alone();
    let t = TestEnv::new("hw_remove_only_copy");
    let key = TestKey::start();
    let s = Secrets::new();
    role_on_p(&t, "fay");
    enroll(&t, &key, &s, &["--profile", "p"]);
    assert!(!keychain_holds(&t, "p"), "enroll keeps no clear copy");
    // At a terminal (`script` gives vault one, fed the answer).
    let at_tty = |answer: &str| {
        t.cmd(
            "sh",
            &[
                "-c",
                &format!("printf '%s\\n' '{answer}' | script -qec '{VAULT} remove p' /dev/null"),
            ],
        )
        .run()
    };
    let run = at_tty("y");
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("exists only in its envelope")
            && run.stdout.contains("you would need a new access key")
            && run
                .stdout
                .contains("Type the profile name (p) to delete it: "),
        "{run:?}"
    );
    assert!(!run.stdout.contains(": :"), "{run:?}");
    assert!(envelope_path(&t, "p").exists(), "deleted on a bare y");
    let run = at_tty("p");
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!envelope_path(&t, "p").exists());
}

#[test]
fn an_attestation_of_another_key_than_generate_answered_is_refused() {
    let _g = alone();
    let t = TestEnv::new("hw_attest_relay");
    let key = TestKey::start();
    let s = Secrets::new();
    let (user, _) = role_on_p(&t, "erin");
    // A relaying PC/SC layer answers GENERATE with a key of its own, while
    // the card's own key, its metadata and its attestation pass through:
    // the chain verifies, but it vouches for another key.
    key.ctl("relay-generate");
    let serial = key.serial.to_string();
    let run = hw(&t, &s, &token::enroll_args(&serial, &["--profile", "p"])).run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("attestation failed:")
            && run.stderr.contains("attests another key or other policies")
            && run
                .stderr
                .contains("nothing was recorded and no key was sealed"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("Attestation verified"),
        "{}",
        run.stderr
    );
    // Nothing recorded (but the slot, for the next run to reuse), nothing
    // sealed, the keychain copy kept.
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(tokens_json_path(&t)).unwrap()).unwrap();
    assert_eq!(recorded["tokens"], serde_json::json!([]), "{recorded:#}");
    assert!(!token::envelope_path(&t, "p").exists());
    assert!(keychain_holds(&t, "p"));
    // And the profile still works with its stored key.
    t.vault(&["exec", "p", "--json"]).run().success();
    assert_eq!(session_tokens_accepted(&user.key.id), 1);
}

#[test]
fn an_attestation_vault_cannot_verify_is_refused_unless_skipped() {
    let _g = alone();
    let t = TestEnv::new("hw_attestation");
    let key = TestKey::start();
    let s = Secrets::new();
    let serial = key.serial.to_string();
    let enroll_untrusted = |extra: &[&str]| {
        let mut args = vec!["hw", "enroll", "--serial", serial.as_str()];
        args.extend_from_slice(extra);
        // Only Yubico's root: the virtual key's chains to the rig's.
        t.vault(&args)
            .env("VAULT_NEW_PIN", &s.pin)
            .env("VAULT_NEW_PUK", &s.puk)
            .env("VAULT_PIN", &s.pin)
            .run()
    };

    let run = enroll_untrusted(&[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("vault: attestation failed:")
            && run.stderr.contains("not certified by a trusted root"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.lines().any(|l| l.starts_with("vault: hint: ")
            && l.contains("VAULT_ATTESTATION_ROOTS")
            && l.contains("--skip-attestation")),
        "{}",
        run.stderr
    );
    let recorded = std::fs::read_to_string(tokens_json_path(&t)).unwrap_or_default();
    assert!(!recorded.contains(&serial), "{recorded}");
    // Refused before anything changed: no key generated, PIN still the
    // factory one.
    assert!(
        run.stderr.contains("nothing was changed on the YubiKey"),
        "{}",
        run.stderr
    );
    let info = ykman_ok(&key, &["piv", "info"]);
    assert!(info.contains("WARNING: Using default PIN!"), "{info}");
    assert!(!ykman(&key, &["piv", "keys", "info", "82"])
        .1
        .contains("Algorithm"));

    let run = enroll_untrusted(&["--skip-attestation"]).success();
    assert!(
        run.stderr
            .contains("vault: warning: attestation not verified"),
        "{}",
        run.stderr
    );
    let st = status(&t);
    assert_eq!(enrolled(&st, key.serial)["piv"]["attested"], false);
}

#[test]
fn touch_prompts_never_reach_stdout() {
    let _g = alone();
    let t = TestEnv::new("hw_stdout");
    let key = TestKey::start();
    let s = Secrets::new();
    // p holds dan's real key; the card gets his real device's seed.
    let (dan, _) = role_on_p(&t, "dan");
    let touch = format!("Touch your YubiKey {} ", key.serial);

    // No terminal, no display: prompts go to stderr.
    let run = enroll(&t, &key, &s, &strs(&with_mfa_of(&t, &dan)));
    assert_eq!(run.stdout, "", "enroll wrote to stdout");
    assert!(run.stderr.contains(&touch), "{}", run.stderr);
    let (_, run) = exec_json(&t, &s, "r", &[]);
    assert!(run.stderr.contains(&touch), "{}", run.stderr);
    assert!(!run.stdout.contains("Touch"), "{}", run.stdout);
    let gst = session_token_requests(&dan.key.id);
    assert_eq!(gst.len(), 1);
    assert_accepted(&gst[0]);
    let first_step = assert_code_of(&dan, &gst[0]);

    // A dialog program that writes to its own stdout: still nothing of it
    // in vault's, and the touch prompts went to it. (A world of its own
    // that does not know the first code: a later step's.)
    let t2 = sharing_tokens(&t, "hw_stdout_gui");
    let (path, log) = fake_zenity(&t2, "000000");
    wait_for_a_step_after(first_step);
    let run = hw(&t2, &s, &["exec", "r", "--json", "--prompt", "zenity"])
        .env("PATH", &path)
        .env("DISPLAY", ":99")
        .run()
        .success();
    JsonCreds::parse(&run.stdout);
    assert!(!run.stdout.contains("ZENITY"), "{}", run.stdout);
    assert!(!run.stderr.contains("Touch"), "{}", run.stderr);
    let shown = wait_for_text(&log, &touch);
    assert!(shown.contains("--notification"), "{shown}");
    assert!(shown.contains(&touch), "{shown}");
    // The code came from the card (the dialog was never asked for one),
    // and it is dan's device's current code, accepted with his real key.
    assert!(!shown.contains("--entry"), "{shown}");
    let gst = session_token_requests(&dan.key.id);
    assert_eq!(gst.len(), 2);
    assert_accepted(&gst[1]);
    let mut step = assert_code_of(&dan, &gst[1]);

    // `export` and `exec -- CMD` from a cold cache: the touch prompts go to
    // stderr, and stdout holds only what was asked for.
    let exports: &[&str] = &["export", "r"];
    let command: &[&str] = &["exec", "r", "--", "sh", "-c", "echo child-output"];
    for (n, args) in [exports, command].into_iter().enumerate() {
        t.vault(&["clear", "--force"]).run().success();
        wait_for_a_step_after(step);
        let run = hw(&t, &s, args).run().success();
        assert!(run.stderr.contains(&touch), "{args:?}: {}", run.stderr);
        if n == 0 {
            assert!(
                run.stdout
                    .lines()
                    .all(|l| l.starts_with("AWS_") && l.contains('=')),
                "{}",
                run.stdout
            );
        } else {
            assert_eq!(run.stdout, "child-output\n");
        }
        let gst = session_token_requests(&dan.key.id);
        assert_eq!(gst.len(), 3 + n, "{args:?}");
        assert_accepted(&gst[2 + n]);
        step = assert_code_of(&dan, &gst[2 + n]);
    }
}

/// SELECT PIV, then an empty VERIFY: the PIN status as the card tells it
/// to another program (`9000` verified, `63Cx` not), through `card`, a
/// connection held open the whole time (as an agent holding the key for
/// an SSH key in 9a does, which keeps the card powered).
fn pin_status_seen_by(card: &mut pcsc::Card) -> u16 {
    let ask = |card: &pcsc::Card| -> Result<u16, pcsc::Error> {
        let mut buf = [0u8; 258];
        let r = card.transmit(
            &[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08],
            &mut buf,
        )?;
        assert_eq!(&r[r.len() - 2..], [0x90, 0x00], "SELECT PIV");
        let r = card.transmit(&[0x00, 0x20, 0x00, 0x80], &mut buf)?;
        Ok(u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]))
    };
    match ask(card) {
        Ok(sw) => sw,
        // The card was reset under this connection: say so to pcscd and ask again.
        Err(pcsc::Error::ResetCard) => {
            card.reconnect(
                pcsc::ShareMode::Shared,
                pcsc::Protocols::ANY,
                pcsc::Disposition::LeaveCard,
            )
            .unwrap();
            ask(card).unwrap()
        }
        Err(e) => panic!("asking the card: {e}"),
    }
}

#[test]
fn a_pin_vault_verified_is_logged_out_and_one_it_found_verified_is_left() {
    let _g = alone();
    let t = TestEnv::new("hw_pin_logout");
    let key = TestKey::start();
    let s = Secrets::new();
    role_on_p(&t, "erin");
    enroll(&t, &key, &s, &["--profile", "p"]);
    replug(&key);

    let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let reader = std::ffi::CString::new(key.reader.as_str()).unwrap();
    let mut agent = ctx
        .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .unwrap();
    assert_eq!(
        pin_status_seen_by(&mut agent) & 0xFFF0,
        0x63C0,
        "PIN verified before vault ran"
    );

    // vault sends the PIN itself: when it is done, the PIN is not verified
    // for the program that kept the card powered meanwhile.
    exec_json(&t, &s, "p", &["--no-session"]);
    let after = pin_status_seen_by(&mut agent);
    assert_eq!(
        after & 0xFFF0,
        0x63C0,
        "vault left the PIN it verified verified for other programs (SW {after:04X})"
    );

    // The PIN verified by another program first: vault uses it and leaves
    // it as it found it.
    let mut buf = [0u8; 258];
    let mut verify = vec![0x00, 0x20, 0x00, 0x80, 0x08];
    verify.extend(s.pin.bytes());
    verify.resize(13, 0xFF);
    let r = agent.transmit(&verify, &mut buf).unwrap();
    assert_eq!(r, [0x90, 0x00], "VERIFY by the agent");
    exec_json(&t, &s, "p", &["--no-session"]);
    assert_eq!(
        pin_status_seen_by(&mut agent),
        0x9000,
        "vault reset a PIN another program had verified"
    );
    drop(agent);
}

/// Nothing on the card changes until every choice is known to be good: a
/// factory PUK is refused as soon as it is given (not after the PIN was
/// changed), as is a PIN of the wrong length, a slot in use and an
/// unreadable attestation root file.
#[test]
fn enroll_checks_every_choice_before_changing_the_card() {
    let _g = alone();
    let t = TestEnv::new("hw_enroll_prechecks");
    let key = TestKey::start();
    let s = Secrets::new();
    role_on_p(&t, "erin");
    let serial = key.serial.to_string();
    let factory_state = |why: &str| {
        let info = ykman_ok(&key, &["piv", "info"]);
        assert!(
            info.contains("WARNING: Using default PIN!")
                && info.contains("WARNING: Using default PUK!")
                && info.contains("WARNING: Using default Management key!"),
            "{why}: the card changed:\n{info}"
        );
        let slot = ykman(&key, &["piv", "keys", "info", "82"]).1;
        assert!(
            !slot.contains("Algorithm"),
            "{why}: slot 82 holds a key:\n{slot}"
        );
    };
    let attempt = |env: &[(&str, &str)], extra: &[&str]| -> Run {
        let mut c = hw(&t, &s, &token::enroll_args(&serial, extra));
        for (k, v) in env {
            c = c.env(k, v);
        }
        c.run()
    };

    let run = attempt(&[("VAULT_NEW_PUK", "12345678")], &["--profile", "p"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("12345678 is the factory PUK")
            && run.stderr.contains("nothing was changed")
            && run.stderr.contains("set VAULT_NEW_PUK to another PUK"),
        "{}",
        run.stderr
    );
    factory_state("a factory PUK");

    let run = attempt(&[("VAULT_NEW_PIN", "12345")], &["--profile", "p"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("a PIN has 6 to 8 characters, not 5"),
        "{}",
        run.stderr
    );
    factory_state("a short PIN");

    let missing = t.dir.join("no-such-root.pem");
    let run = attempt(
        &[("VAULT_ATTESTATION_ROOTS", missing.to_str().unwrap())],
        &["--profile", "p"],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("cannot read attestation roots from"),
        "{}",
        run.stderr
    );
    factory_state("an unreadable root file");

    // Slot 82 in use by another program's key (ykman, factory management
    // key): vault neither changes the PIN nor takes another slot.
    ykman_ok(
        &key,
        &[
            "piv",
            "keys",
            "generate",
            "--management-key",
            "010203040506070801020304050607080102030405060708",
            "--algorithm",
            "ECCP256",
            "82",
            "-",
        ],
    );
    let run = attempt(&[], &["--profile", "p", "--slot", "82"]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("82"), "{}", run.stderr);
    let info = ykman_ok(&key, &["piv", "info"]);
    assert!(info.contains("WARNING: Using default PIN!"), "{info}");
    assert!(keychain_holds(&t, "p"));
}

/// A key whose attestation is refused stays in its slot (firmware 5.4.3
/// cannot delete a key): the next enrollment generates over that key in
/// that slot, says so, and does not take the next slot.
#[test]
fn a_refused_attestation_leaves_a_slot_the_next_enroll_reuses() {
    let _g = alone();
    let t = TestEnv::new("hw_enroll_orphan");
    // 5.4.3 whatever the rig's personality: 5.7 deletes the refused key
    // instead (tests/attestation.rs covers both).
    let key = TestKey::start_firmware("5.4.3");
    let s = Secrets::new();
    role_on_p(&t, "erin");
    let serial = key.serial.to_string();
    key.ctl("relay-generate");
    let run = hw(&t, &s, &token::enroll_args(&serial, &["--profile", "p"])).run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("The key generated in slot 82 stays on the card")
            && run
                .stderr
                .contains("the next `vault hw enroll` generates over it"),
        "{}",
        run.stderr
    );
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(tokens_json_path(&t)).unwrap()).unwrap();
    assert_eq!(
        recorded["tokens"].as_array().map(Vec::len).unwrap_or(0),
        0,
        "{recorded:#}"
    );
    assert_eq!(recorded["abandoned"][0]["slot"], 0x82, "{recorded:#}");
    assert_eq!(
        recorded["abandoned"][0]["serial"], key.serial,
        "{recorded:#}"
    );

    let run = hw(&t, &s, &token::enroll_args(&serial, &["--profile", "p"]))
        .run()
        .success();
    assert!(
        run.stderr
            .contains("Slot 82 holds the key an earlier enrollment generated")
            && run.stderr.contains("slot 82"),
        "{}",
        run.stderr
    );
    let st = status(&t);
    assert_eq!(enrolled(&st, key.serial)["piv"]["slot"], "82", "{st:#}");
    let slot83 = ykman(&key, &["piv", "keys", "info", "83"]).1;
    assert!(
        !slot83.contains("Algorithm"),
        "slot 83 was taken:\n{slot83}"
    );
    let recorded = std::fs::read_to_string(tokens_json_path(&t)).unwrap();
    assert!(!recorded.contains("abandoned"), "{recorded}");
    assert!(envelope_path(&t, "p").exists());
}

/// `add` over a token-backed profile and `clear` of its sessions lose a
/// key or cost PIN and touches: both say so and want the profile name (a
/// bare y is not enough), or `--force`; `add` over a key in the store asks
/// y/N.
#[test]
fn adding_over_or_clearing_a_token_backed_profile_asks_for_the_profile_name() {
    let _g = alone();
    let t = TestEnv::new("hw_add_clear_confirm");
    let key = TestKey::start();
    let s = Secrets::new();
    role_on_p(&t, "gil");
    enroll(&t, &key, &s, &["--profile", "p"]);
    exec_json(&t, &s, "p", &[]);
    let sessions = || t.vault(&["list", "--sessions"]).run().success().stdout;
    assert!(!sessions().is_empty());
    let at_tty = |command: &str, answer: &str, new_key: Option<&Key>| {
        let mut c = t.cmd(
            "sh",
            &[
                "-c",
                &format!("printf '%s\\n' '{answer}' | script -qec '{VAULT} {command}' /dev/null"),
            ],
        );
        if let Some(k) = new_key {
            c = c
                .env("AWS_ACCESS_KEY_ID", &k.id)
                .env("AWS_SECRET_ACCESS_KEY", &k.secret);
        }
        c.run()
    };

    // clear: no terminal, no --force: nothing cleared, and how to go on.
    let run = t.vault(&["clear", "p"]).run();
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(
        run.stderr
            .contains("`vault clear p --force` goes ahead without asking"),
        "{}",
        run.stderr
    );
    assert!(!sessions().is_empty(), "cleared without asking");
    let run = at_tty("clear p", "y", None);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("Clearing the cached sessions of \"p\"")
            && run.stdout.contains("needs the YubiKey again")
            && run
                .stdout
                .contains("Type the profile name (p) to clear them: "),
        "{run:?}"
    );
    assert!(!sessions().is_empty(), "cleared on a bare y");
    at_tty("clear p", "p", None).success();
    assert!(sessions().is_empty());

    // add over the envelope (its only copy).
    let new = Key::random();
    let run = t
        .vault(&["add", "p", "--env"])
        .env("AWS_ACCESS_KEY_ID", &new.id)
        .env("AWS_SECRET_ACCESS_KEY", &new.secret)
        .run();
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(
        run.stderr
            .contains("`vault add p --force` goes ahead without asking"),
        "{}",
        run.stderr
    );
    assert!(envelope_path(&t, "p").exists() && !keychain_holds(&t, "p"));
    let run = at_tty("add p --env", "y", Some(&new));
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains("is sealed to its YubiKey, and that envelope is its only copy")
            && run
                .stdout
                .contains("Type the profile name (p) to replace its key: "),
        "{run:?}"
    );
    assert!(envelope_path(&t, "p").exists() && !keychain_holds(&t, "p"));
    let run = at_tty("add p --env", "p", Some(&new)).success();
    assert!(
        run.stdout.contains("Deleted the envelope of the old key"),
        "{run:?}"
    );
    assert!(!envelope_path(&t, "p").exists());
    assert_eq!(
        token::stored(&t, "p").map(|b| String::from_utf8_lossy(&b).contains(&new.id)),
        Some(true)
    );

    // add over a key in the store: y/N.
    let newer = Key::random();
    let run = at_tty("add p --env", "n", Some(&newer));
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("already has the key") && run.stdout.contains("Replace it? (y|N): "),
        "{run:?}"
    );
    at_tty("add p --env", "y", Some(&newer)).success();
    assert_eq!(
        token::stored(&t, "p").map(|b| String::from_utf8_lossy(&b).contains(&newer.id)),
        Some(true)
    );
}
