//! vault's OATH client (`vault_token::oath`) against the rig's virtual
//! YubiKey 5, through the real pcscd and vpcd, with ykman as a witness:
//! `hw/rig -- cargo test -p vault --test token_oath`.
//!
//! The rig's own key (`$VAULT_RIG_SERIAL`) serves the tests that leave it
//! as they found it. Tests that pull a key out, starve it of touches or set
//! a password plug a key of their own into a spare reader slot (the same
//! slot-lock protocol as `hw/virtual-yubikey/tests/common`), so a failure
//! cannot leave the rig's key broken for the tests after it. Every test
//! holds one lock: they share pcscd, identifying a key selects its
//! Management applet, and the APDU count must see only its own exchanges.
//!
//! Outside the rig every test fails with instructions, never passes.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use hmac::{Hmac, Mac};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vault_aws::mfa::DeviceCodes;
use vault_base::secret::{Passphrase, SecretBytes};
use vault_token::apdu::{self, Connected, TokenError};
use vault_token::oath::{Algorithm, OathSession, TokenCodes};

const RFC_KEY: &[u8] = b"12345678901234567890";

fn rig_dir() -> PathBuf {
    match std::env::var_os("VAULT_RIG_DIR") {
        Some(d) => PathBuf::from(d),
        None => panic!(
            "these tests talk to the rig's virtual YubiKey through pcscd; \
             run inside hw/rig: hw/rig -- cargo test --workspace"
        ),
    }
}

fn env(name: &str) -> String {
    rig_dir();
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set: is hw/rig up to date?"))
}

/// One test at a time (see the module comment); a failed test must not
/// stop the others, so a poisoned lock is taken over.
fn serial_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    rig_dir();
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn ctx() -> pcsc::Context {
    apdu::establish().unwrap_or_else(|e| panic!("{e} ({:?})", e.hint()))
}

fn step_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
}

/// RFC 6238 with SHA-1, computed here independently of vault and the key.
fn totp(secret: &[u8], step: u64, digits: u32) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).unwrap();
    mac.update(&step.to_be_bytes());
    let d = mac.finalize().into_bytes();
    let off = (d[19] & 0x0F) as usize;
    let n = u32::from_be_bytes(d[off..off + 4].try_into().unwrap()) & 0x7FFF_FFFF;
    format!("{:0w$}", n % 10u32.pow(digits), w = digits as usize)
}

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (is it on the rig's PATH?)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ctl(control: &Path, words: &str) {
    let control = control.to_str().unwrap();
    let mut args = vec!["ctl", "--control", control];
    args.extend(words.split(' '));
    let (ok, out) = run("virtual-yubikey", &args);
    assert!(ok && out.starts_with("ok"), "ctl {words}: {out}");
}

fn wait_card(reader: &str, present: bool) {
    let mut args = vec!["wait", "--reader", reader, "--timeout-ms", "20000"];
    if !present {
        args.push("--absent");
    }
    let (ok, out) = run("virtual-yubikey", &args);
    assert!(
        ok,
        "waiting for the card in {reader} (present={present}): {out}"
    );
}

/// The exchanges (`kind == "apdu"`) in a key's APDU log. A missing or
/// unreadable log, or a line that is not a JSON object, fails the test: an
/// empty list must mean "nothing was exchanged", never "nothing could be
/// read". A last line without its newline is still being written: read
/// again until it is complete (at most 2 s).
fn apdus(log: &Path) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let text = loop {
        let text = std::fs::read_to_string(log)
            .unwrap_or_else(|e| panic!("cannot read the APDU log {}: {e}", log.display()));
        if text.is_empty() || text.ends_with('\n') {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the APDU log {} ends in a line that was never finished",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    text.lines()
        .enumerate()
        .map(
            |(i, l)| match serde_json::from_str::<serde_json::Value>(l) {
                Ok(v) if v.is_object() => v,
                _ => panic!(
                    "line {} of the APDU log {} is not a JSON object: {l:?}",
                    i + 1,
                    log.display()
                ),
            },
        )
        .filter(|e| e["kind"] == "apdu")
        .collect()
}

/// A YubiKey: the rig's own, or one of our own in a spare reader slot.
struct Key {
    serial: u32,
    reader: String,
    control: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    slot_lock: Option<PathBuf>,
}

impl Key {
    fn rig() -> Key {
        Key {
            serial: env("VAULT_RIG_SERIAL").parse().unwrap(),
            reader: env("VAULT_RIG_READER"),
            control: env("VAULT_RIG_VYK_CONTROL").into(),
            log: env("VAULT_RIG_APDU_LOG").into(),
            child: None,
            slot_lock: None,
        }
    }

    /// A factory-fresh key in a free spare slot.
    fn spare(touch_timeout_ms: u64) -> Key {
        let rig = rig_dir();
        let slots: u32 = env("VAULT_RIG_SLOTS").parse().unwrap();
        let base: u32 = env("VAULT_RIG_VPCD_BASE_PORT").parse().unwrap();
        let slots_dir = rig.join("slots");
        std::fs::create_dir_all(&slots_dir).unwrap();
        let deadline = Instant::now() + Duration::from_secs(300);
        let (slot, lock) = loop {
            let free = (1..slots).find_map(|s| {
                let lock = slots_dir.join(format!("{s}.lock"));
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&lock)
                    .ok()
                    .map(|_| (s, lock))
            });
            if let Some(found) = free {
                break found;
            }
            assert!(Instant::now() < deadline, "no free reader slot in the rig");
            std::thread::sleep(Duration::from_millis(100));
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let serial = 30_000_000 + (std::process::id() % 1000) * 10_000 + nanos % 1000 * 10 + slot;
        let dir = rig.join("keys").join(format!("oath-{serial}"));
        std::fs::create_dir_all(&dir).unwrap();
        let reader = format!("Yubico YubiKey OTP+FIDO+CCID #{slot} 00 00");
        let child = Command::new("virtual-yubikey")
            .arg("run")
            .arg("--state")
            .arg(dir.join("state.json"))
            .arg("--serial")
            .arg(serial.to_string())
            .arg("--root-dir")
            .arg(env("VAULT_RIG_ROOT_DIR"))
            .arg("--vpcd")
            .arg(format!("127.0.0.1:{}", base + 2 * slot))
            .arg("--control")
            .arg(dir.join("control.sock"))
            .arg("--log")
            .arg(dir.join("apdu.log"))
            .arg("--touch-timeout-ms")
            .arg(touch_timeout_ms.to_string())
            // The rig's personality, so both firmwares run these tests.
            .arg("--firmware")
            .arg(rig_firmware())
            .stdin(Stdio::null())
            .spawn()
            .expect("start virtual-yubikey");
        let key = Key {
            serial,
            reader,
            control: dir.join("control.sock"),
            log: dir.join("apdu.log"),
            child: Some(child),
            slot_lock: Some(lock),
        };
        wait_card(&key.reader, true);
        key
    }

    fn ctl(&self, words: &str) {
        ctl(&self.control, words);
    }

    fn connect(&self, ctx: &pcsc::Context) -> Connected {
        apdu::find_by_serial(ctx, self.serial, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("key {}: {e} ({:?})", self.serial, e.hint()))
    }

    fn ykman(&self, args: &[&str]) -> String {
        let mut all = vec!["--reader", self.reader.as_str()];
        all.extend_from_slice(args);
        let (ok, out) = run("ykman", &all);
        assert!(ok, "ykman {args:?}: {out}");
        out
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            // The next key in this slot must not meet this one's ghost.
            let mut args = vec!["wait", "--reader", self.reader.as_str(), "--absent"];
            args.extend(["--timeout-ms", "10000"]);
            let _ = run("virtual-yubikey", &args);
        }
        if let Some(lock) = self.slot_lock.take() {
            let _ = std::fs::remove_file(lock);
        }
    }
}

/// A name of this run's own, so reruns on a kept rig do not collide. It
/// only names an OATH credential on the card (these tests call vault's
/// OATH client, never STS), so no IAM device stands behind it.
fn unique_mfa_arn(user: &str) -> String {
    format!(
        "arn:aws:iam::123456789012:mfa/{user}-{}",
        std::process::id()
    )
}

/// Runs `get` until it ran inside one TOTP step, then returns its code and that step.
fn in_one_step(mut get: impl FnMut() -> String) -> (String, u64) {
    for _ in 0..3 {
        let before = step_now();
        let code = get();
        if step_now() == before {
            return (code, before);
        }
    }
    panic!("the time step changed during three attempts in a row");
}

/// The notices a `TokenCodes` gave the user.
type Notes = Arc<Mutex<Vec<String>>>;
type Notify = Box<dyn Fn(&str)>;

fn notices() -> (Notes, Notify) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    (
        seen,
        Box::new(move |m: &str| sink.lock().unwrap().push(m.to_string())),
    )
}

#[test]
fn touch_totp_written_by_vault_computes_rfc6238_and_ykman_sees_it() {
    let _g = serial_lock();
    let key = Key::rig();
    let ctx = ctx();
    let arn = unique_mfa_arn("alice");
    let name = vault_aws::oath_name::credential_name(&arn);
    let rfc_name = format!("vault-test:rfc-{}", std::process::id());
    let seed: Vec<u8> = (0..20).map(|_| rand::random::<u8>()).collect();
    {
        let mut conn = key.connect(&ctx);
        assert_eq!(conn.serial(), Some(key.serial));
        assert_eq!(conn.info().version.unwrap().to_string(), rig_firmware());
        let s = OathSession::select(&mut conn).unwrap();
        assert_eq!(s.version().to_string(), rig_firmware());
        assert!(!s.is_locked());
        s.put(
            &name,
            &SecretBytes::new(seed.clone()),
            Algorithm::Sha1,
            6,
            true,
        )
        .unwrap();
        s.put(
            &rfc_name,
            &SecretBytes::new(RFC_KEY.to_vec()),
            Algorithm::Sha1,
            8,
            false,
        )
        .unwrap();
        // RFC 6238 appendix B, T = 59 s.
        assert_eq!(s.calculate(&rfc_name, 1).unwrap().expose(), "94287082");
        let (code, step) =
            in_one_step(|| s.calculate(&name, step_now()).unwrap().expose().to_string());
        assert_eq!(code, totp(&seed, step, 6), "step {step}");
        let listed = s.list().unwrap();
        assert!(listed.iter().any(|c| c.name == name), "{listed:?}");
    }

    // ykman reads what vault wrote, and shows it needs a touch.
    let out = key.ykman(&["oath", "accounts", "list"]);
    assert!(
        out.lines().any(|l| l.trim() == name),
        "{name} not in:\n{out}"
    );
    let out = key.ykman(&["oath", "accounts", "code", "--single", &rfc_name]);
    assert_eq!(out.trim().len(), 8, "{out}");

    // Through the DeviceCodes trait, as `mfa::obtain` uses it; counted.
    let (notes, notify) = notices();
    let codes = TokenCodes::new(key.serial, notify);
    let before = apdus(&key.log);
    let (code, step) = in_one_step(|| {
        codes
            .code(&arn, step_now())
            .unwrap()
            .expect("credential present")
            .expose()
            .to_string()
    });
    assert_eq!(code, totp(&seed, step, 6));
    let after = apdus(&key.log);
    let ours = &after[before.len()..];
    let calcs = ours.iter().filter(|e| e["ins"] == "A2").count();
    // A step change reruns the whole thing: count per code.
    assert!(calcs >= 1);
    assert!(
        ours.len() <= 4 * calcs,
        "{} APDUs for {calcs} code(s): {ours:?}",
        ours.len()
    );
    assert!(ours
        .iter()
        .any(|e| e["ins"] == "A2" && e["touch"] == "given"));
    assert!(
        notes.lock().unwrap().is_empty(),
        "a touch given at once needs no notice"
    );

    // Missing credential: Ok(None), so mfa::obtain falls back to a prompt.
    let missing = codes.code("arn:aws:iam::123456789012:mfa/nobody-here", step_now());
    assert!(matches!(missing, Ok(None)), "{missing:?}");

    // Delete; then it is gone for vault and ykman.
    {
        let mut conn = key.connect(&ctx);
        let s = OathSession::select(&mut conn).unwrap();
        s.delete(&name).unwrap();
        s.delete(&rfc_name).unwrap();
        let err = s.calculate(&name, step_now()).unwrap_err();
        assert!(
            matches!(&err, TokenError::NoSuchCredential(n) if *n == name),
            "{err:?}"
        );
        assert!(matches!(
            s.delete(&name),
            Err(TokenError::NoSuchCredential(_))
        ));
    }
    let out = key.ykman(&["oath", "accounts", "list"]);
    assert!(!out.contains(&name), "{out}");
}

#[test]
fn list_keys_reports_the_rig_key() {
    let _g = serial_lock();
    let key = Key::rig();
    let keys = apdu::list_keys(&ctx());
    let ours = keys
        .iter()
        .find(|k| k.serial == Some(key.serial))
        .unwrap_or_else(|| panic!("{} not in {keys:?}", key.serial));
    assert_eq!(ours.reader, key.reader);
    assert_eq!(ours.version.unwrap().to_string(), rig_firmware());
    assert!(
        keys.iter().all(|k| !k.reader.ends_with(" 00 01")),
        "{keys:?}"
    );
}

#[test]
fn a_wrong_serial_times_out_with_an_error_naming_it() {
    let _g = serial_lock();
    let key = Key::rig();
    let ctx = ctx();
    let started = Instant::now();
    let err = match apdu::find_by_serial(&ctx, 99_999_999, Duration::from_millis(1500)) {
        Ok(_) => panic!("found a key that does not exist"),
        Err(e) => e,
    };
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert!(
        matches!(
            err,
            TokenError::NotFound {
                serial: 99_999_999,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("99999999"), "{err}");
    let hint = err.hint().unwrap();
    assert!(hint.contains("insert YubiKey 99999999"), "{hint}");
    assert!(
        hint.contains(&key.serial.to_string()),
        "names the keys it saw: {hint}"
    );

    // Through the trait: an Err with the same message, not a panic or a hang.
    let (_, notify) = notices();
    let msg = TokenCodes::new(99_999_999, notify)
        .code("arn:aws:iam::123456789012:mfa/alice", step_now())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no YubiKey with serial 99999999"), "{msg}");
}

#[test]
fn never_touched_times_out_and_a_late_touch_is_announced() {
    let _g = serial_lock();
    let key = Key::spare(15_000);
    key.ctl("touch-timeout 1500");
    let ctx = ctx();
    let seed = b"a seed of twenty b..".to_vec();
    let arn = unique_mfa_arn("toucher");
    let name = vault_aws::oath_name::credential_name(&arn);
    {
        let mut conn = key.connect(&ctx);
        let s = OathSession::select(&mut conn).unwrap();
        s.put(
            &name,
            &SecretBytes::new(seed.clone()),
            Algorithm::Sha1,
            6,
            true,
        )
        .unwrap();
        s.put(
            "plain",
            &SecretBytes::new(seed.clone()),
            Algorithm::Sha1,
            6,
            false,
        )
        .unwrap();

        key.ctl("touch never");
        let started = Instant::now();
        let err = s.calculate(&name, step_now()).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(1400));
        assert!(
            matches!(err, TokenError::TouchTimeout { serial: Some(s) } if s == key.serial),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "no touch within the timeout: touch your YubiKey when it blinks"
        );
        assert!(err.hint().unwrap().contains("touch"));
    }

    // Through the trait: the message says what to do.
    let (notes, notify) = notices();
    let codes = TokenCodes::new(key.serial, notify);
    let err = codes.code(&arn, step_now()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("no touch within the timeout"), "{msg}");
    assert!(err.hint().is_some(), "{msg}: no hint");
    assert_eq!(
        notes.lock().unwrap().as_slice(),
        [format!(
            "Touch your YubiKey {} for the MFA code",
            key.serial
        )],
        "the user was told to touch before the key gave up"
    );

    // A touch that comes after a while: announced once, then the code.
    notes.lock().unwrap().clear();
    key.ctl("touch after 900");
    let (code, step) = in_one_step(|| {
        codes
            .code(&arn, step_now())
            .unwrap()
            .unwrap()
            .expose()
            .to_string()
    });
    assert_eq!(code, totp(&seed, step, 6));
    let n = notes.lock().unwrap().len();
    assert!(n >= 1, "no touch notice");
    assert!(notes
        .lock()
        .unwrap()
        .iter()
        .all(|m| m == &format!("Touch your YubiKey {} for the MFA code", key.serial)));

    // A credential without touch answers at once: no notice.
    notes.lock().unwrap().clear();
    let plain = TokenCodes::new(
        key.serial,
        Box::new({
            let notes = Arc::clone(&notes);
            move |m: &str| notes.lock().unwrap().push(m.to_string())
        }),
    )
    .with_name("plain");
    let (code, step) = in_one_step(|| {
        plain
            .code(&arn, step_now())
            .unwrap()
            .unwrap()
            .expose()
            .to_string()
    });
    assert_eq!(code, totp(&seed, step, 6));
    assert!(
        notes.lock().unwrap().is_empty(),
        "{:?}",
        notes.lock().unwrap()
    );
}

#[test]
fn a_key_pulled_mid_calculate_is_reported_removed_and_works_once_back() {
    let _g = serial_lock();
    let key = Key::spare(15_000);
    let ctx = ctx();
    let seed = b"removal test seed...".to_vec();
    {
        let mut conn = key.connect(&ctx);
        let s = OathSession::select(&mut conn).unwrap();
        s.put(
            "pulled",
            &SecretBytes::new(seed.clone()),
            Algorithm::Sha1,
            6,
            true,
        )
        .unwrap();
        key.ctl("remove-on A2");
        let started = Instant::now();
        let err = s.calculate("pulled", step_now()).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "hung after removal"
        );
        assert!(
            matches!(err, TokenError::Removed { serial: Some(s) } if s == key.serial),
            "{err:?}"
        );
        assert!(err.to_string().contains(&key.serial.to_string()), "{err}");
        assert_eq!(
            err.hint().unwrap(),
            format!("re-insert YubiKey {} and run the command again", key.serial)
        );
    }
    // The key logs the event as it drops the connection, which may be a
    // moment after pcscd reported the card gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(&key.log).unwrap_or_default();
        if log.contains("removed-on-ins") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no removed-on-ins event in:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    key.ctl("insert");
    let mut conn = key.connect(&ctx);
    let s = OathSession::select(&mut conn).unwrap();
    let (code, step) = in_one_step(|| {
        s.calculate("pulled", step_now())
            .unwrap()
            .expose()
            .to_string()
    });
    assert_eq!(code, totp(&seed, step, 6));
}

#[test]
fn find_by_serial_waits_for_a_key_inserted_later() {
    let _g = serial_lock();
    let key = Key::spare(15_000);
    let ctx = ctx();
    key.ctl("remove");
    wait_card(&key.reader, false);

    // Not there, and not waited for: at once.
    let started = Instant::now();
    assert!(matches!(
        apdu::find_by_serial(&ctx, key.serial, Duration::ZERO),
        Err(TokenError::NotFound { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(2));

    let control = key.control.clone();
    let inserter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        ctl(&control, "insert");
    });
    let started = Instant::now();
    let conn = apdu::find_by_serial(&ctx, key.serial, Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e} ({:?})", e.hint()));
    let took = started.elapsed();
    inserter.join().unwrap();
    assert_eq!(conn.serial(), Some(key.serial));
    assert!(
        took >= Duration::from_millis(900),
        "found before it was inserted: {took:?}"
    );
    assert!(
        took < Duration::from_secs(8),
        "noticed the insertion late: {took:?}"
    );
    drop(conn);

    // TokenCodes waits too when told to, and says so.
    key.ctl("remove");
    wait_card(&key.reader, false);
    let control = key.control.clone();
    let inserter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        ctl(&control, "insert");
    });
    let (notes, notify) = notices();
    let got = TokenCodes::new(key.serial, notify)
        .with_wait(Duration::from_secs(15))
        .code("arn:aws:iam::123456789012:mfa/absent", step_now());
    inserter.join().unwrap();
    assert!(matches!(got, Ok(None)), "{got:?}");
    assert_eq!(
        notes.lock().unwrap().as_slice(),
        [format!(
            "Insert your YubiKey (serial {}) for the MFA code",
            key.serial
        )]
    );
}

#[test]
fn password_protected_applet_needs_the_right_password() {
    let _g = serial_lock();
    let key = Key::spare(15_000);
    let ctx = ctx();
    let arn = unique_mfa_arn("locked");
    let name = vault_aws::oath_name::credential_name(&arn);
    let seed = b"password test seed..".to_vec();
    {
        let mut conn = key.connect(&ctx);
        let s = OathSession::select(&mut conn).unwrap();
        s.put(
            &name,
            &SecretBytes::new(seed.clone()),
            Algorithm::Sha1,
            6,
            false,
        )
        .unwrap();
    }
    key.ykman(&["oath", "access", "change", "-n", "pw"]);

    let mut conn = key.connect(&ctx);
    {
        let mut s = OathSession::select(&mut conn).unwrap();
        assert!(s.is_locked());
        // Refused before anything is sent.
        assert!(matches!(
            s.calculate(&name, step_now()),
            Err(TokenError::OathPasswordRequired { .. })
        ));
        let err = s.validate(&Passphrase::new("not it")).unwrap_err();
        assert!(
            matches!(err, TokenError::OathWrongPassword { serial: Some(s) } if s == key.serial),
            "{err:?}"
        );
        assert!(err.hint().unwrap().contains("ykman oath access change"));
        assert!(
            !format!("{err} {err:?}").contains("not it"),
            "no secret in errors"
        );
        assert!(s.is_locked());
    }
    {
        let mut s = OathSession::select(&mut conn).unwrap();
        s.validate(&Passphrase::new("pw")).unwrap();
        assert!(!s.is_locked());
        let (code, step) =
            in_one_step(|| s.calculate(&name, step_now()).unwrap().expose().to_string());
        assert_eq!(code, totp(&seed, step, 6));
        assert!(s.list().unwrap().iter().any(|c| c.name == name));
    }
    drop(conn);

    let (_, notify) = notices();
    let msg = TokenCodes::new(key.serial, notify)
        .code(&arn, step_now())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("password-protected"), "{msg}");
    let (_, notify) = notices();
    let msg = TokenCodes::new(key.serial, notify)
        .with_password(Passphrase::new("wrong"))
        .code(&arn, step_now())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("wrong OATH password"), "{msg}");
    let (_, notify) = notices();
    let with_pw = TokenCodes::new(key.serial, notify).with_password(Passphrase::new("pw"));
    let (code, step) = in_one_step(|| {
        with_pw
            .code(&arn, step_now())
            .unwrap()
            .unwrap()
            .expose()
            .to_string()
    });
    assert_eq!(code, totp(&seed, step, 6));
}

/// The firmware the rig's own key reports: the personality hw/rig started
/// it with (`VAULT_RIG_FIRMWARE`, 5.4.3 unless told otherwise).
fn rig_firmware() -> String {
    std::env::var("VAULT_RIG_FIRMWARE").unwrap_or_else(|_| "5.4.3".to_string())
}
