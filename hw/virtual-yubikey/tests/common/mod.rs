//! Test support for the virtual key's conformance tests, and for vault's
//! own integration tests, which include this file as `tests/support/vyk.rs`:
//! each test gets a factory-fresh virtual YubiKey of its own, in a spare
//! reader slot of the rig's pcscd, so tests that block PINs, reset applets or
//! pull the key out never disturb each other or the rig's key. Both suites
//! claim slots the same way (`$VAULT_RIG_DIR/slots/N.lock`, created
//! exclusively), so they can share one rig.
//!
//! Only what both crates have is used here (pcsc, yubikey, serde_json,
//! base64): vault's tests cannot link the virtual key's library, so the key
//! is driven through the `virtual-yubikey` binary (`run`, `ctl`, `wait`).
//!
//! These tests only make sense inside `hw/rig`; outside it they fail with
//! a message saying how to run them, never skip.
//!
//! Inside `hw/rig --real-key SERIAL` the same tests run against that real
//! YubiKey instead: `TestKey::start()` factory-resets its PIV and OATH
//! applets (only with `VAULT_RIG_DESTRUCTIVE=1`) and hands it out to one test
//! at a time. What only the virtual key can do (scripted touch, removal, the
//! APDU log, the rig's attestation root) is then skipped, saying so on the
//! terminal; in the virtual rig, and so in CI, it always runs.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The rig's working folder; panics with instructions when not in a rig.
pub fn rig_dir() -> PathBuf {
    match std::env::var_os("VAULT_RIG_DIR") {
        Some(d) => PathBuf::from(d),
        None => panic!(
            "this test talks to a virtual YubiKey through pcscd and must run inside the rig: \
             hw/rig -- cargo test --workspace"
        ),
    }
}

/// A variable the rig exports; panics with instructions when it is missing.
pub fn rig_env(name: &str) -> String {
    rig_dir();
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set: is hw/rig up to date?"))
}

/// The serial of the real key under test inside `hw/rig --real-key SERIAL`;
/// `None` in the virtual rig.
pub fn real_key() -> Option<u32> {
    rig_dir();
    let serial = std::env::var("VAULT_RIG_REAL_KEY").ok()?;
    assert!(
        std::env::var_os("VAULT_RIG_VYK_CONTROL").is_none(),
        "VAULT_RIG_REAL_KEY is set in a rig with a virtual key: only hw/rig --real-key sets it"
    );
    let ci = std::env::var("CI").unwrap_or_default();
    assert!(
        matches!(ci.as_str(), "" | "0" | "false"),
        "real-key mode in CI (CI={ci}): CI runs every test against the virtual key, none may be skipped"
    );
    Some(
        serial
            .parse()
            .unwrap_or_else(|_| panic!("VAULT_RIG_REAL_KEY={serial:?} is not a serial")),
    )
}

/// Writes a line straight to the terminal: the test harness captures
/// `eprintln!`, but a skipped check or a request to touch the key must be
/// seen while the tests run.
pub fn notice(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// The running test's name, for notices.
fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => "this test".to_string(),
    }
}

/// On a real key, says on the terminal that `what` needs the virtual key
/// and is skipped, and returns true; in the virtual rig returns false, so the
/// check runs. Use as `if skipped_on_real_key("...") { return; }` or around
/// the part of a test only the virtual key can do.
pub fn skipped_on_real_key(what: &str) -> bool {
    if real_key().is_none() {
        return false;
    }
    notice(&format!(
        "{}: {what} needs the virtual key: skipped on a real key",
        test_name()
    ));
    true
}

/// The `virtual-yubikey` binary: the one cargo built for the conformance
/// tests, else the one the rig built and linked into its `bin` folder (vault's
/// tests are another package, for which cargo names no such binary).
fn vyk_bin() -> PathBuf {
    if let Some(bin) = option_env!("CARGO_BIN_EXE_virtual-yubikey") {
        return PathBuf::from(bin);
    }
    let in_rig = rig_dir().join("bin").join("virtual-yubikey");
    if in_rig.exists() {
        in_rig
    } else {
        PathBuf::from("virtual-yubikey")
    }
}

/// The reader name of vpcd slot `slot` as the rig configures it.
pub fn reader_name(slot: u32) -> String {
    if slot == 0 {
        "Yubico YubiKey OTP+FIDO+CCID 00 00".to_string()
    } else {
        format!("Yubico YubiKey OTP+FIDO+CCID #{slot} 00 00")
    }
}

pub struct TestKey {
    pub serial: u32,
    pub reader: String,
    /// A folder of this test's own, for files the test writes.
    pub dir: PathBuf,
    /// The vpcd slot of a virtual key (0 for a real key: there is no slot).
    pub slot: u32,
    /// Firmware as `ykman info` prints it: the personality the virtual key
    /// was started with (`5.4.3` unless `start_firmware`), the real key's
    /// own otherwise (its version is its identity; its behaviour is still
    /// checked against 5.4.3's).
    pub firmware: String,
    child: Option<Child>,
    lock: KeyLock,
    touch_timeout_ms: u64,
}

enum KeyLock {
    /// The virtual key's claim on its reader slot in the rig.
    Slot(PathBuf),
    /// The real key, held by one test at a time.
    Real(File),
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestKey {
    /// A factory-fresh key in a free slot, with the real 15 s touch timeout.
    /// Inside `hw/rig --real-key`, the real key, reset (see `start_real`).
    pub fn start() -> TestKey {
        TestKey::start_with_touch_timeout(15_000)
    }

    /// A fresh key whose touch timeout is shorter, for tests of "never touched".
    /// A real key keeps its own (15 s on a YubiKey 5).
    /// Both take the personality from `VAULT_RIG_FIRMWARE` (the rig sets it,
    /// `5.4.3` unless told otherwise), so a suite runs against either.
    pub fn start_with_touch_timeout(touch_timeout_ms: u64) -> TestKey {
        let firmware = std::env::var("VAULT_RIG_FIRMWARE").unwrap_or_else(|_| "5.4.3".into());
        TestKey::start_key(&firmware, touch_timeout_ms)
    }

    /// A factory-fresh key of the firmware personality `firmware` (`5.4.3`
    /// or `5.7.4`, as `virtual-yubikey run --firmware` takes it). Inside
    /// `hw/rig --real-key`, the real key, whatever its firmware.
    pub fn start_firmware(firmware: &str) -> TestKey {
        TestKey::start_key(firmware, 15_000)
    }

    fn start_key(firmware: &str, touch_timeout_ms: u64) -> TestKey {
        if let Some(serial) = real_key() {
            return TestKey::start_real(serial);
        }
        let rig = rig_dir();
        let slots: u32 = rig_env("VAULT_RIG_SLOTS").parse().expect("VAULT_RIG_SLOTS");
        let slots_dir = rig.join("slots");
        std::fs::create_dir_all(&slots_dir).expect("slots dir");
        // Slot 0 belongs to the rig's own key; tests share the others.
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
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        // From 30 000 000 up, clear of the rig's own key (10 000 000 plus a
        // random 24-bit number, so below 26 777 216; never its serial even
        // when VAULT_RIG_SERIAL is chosen): tests find keys by serial among
        // several. The key's folder is created exclusively, so a serial
        // serves one key per rig, whichever test process of either suite
        // claims it first: `run` would start from an existing state file,
        // with that key's serial and PINs, not factory-fresh.
        let rig_serial = std::env::var("VAULT_RIG_SERIAL").ok();
        let keys = rig.join("keys");
        std::fs::create_dir_all(&keys).expect("keys dir");
        let mut serial = 30_000_000 + (std::process::id() % 10_000) * 1_000 + n * 10 + slot;
        let dir = loop {
            let dir = keys.join(format!("{serial}"));
            if rig_serial.as_deref() != Some(serial.to_string().as_str()) {
                match std::fs::create_dir(&dir) {
                    Ok(()) => break dir,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => panic!("{}: {e}", dir.display()),
                }
            }
            serial += 1;
        };
        let mut key = TestKey {
            serial,
            reader: reader_name(slot),
            dir,
            slot,
            firmware: firmware.to_string(),
            child: None,
            lock: KeyLock::Slot(lock),
            touch_timeout_ms,
        };
        key.spawn();
        key
    }

    /// The real key of `hw/rig --real-key SERIAL`, once no other test holds
    /// it, with its PIV and OATH applets factory-reset by ykman: PIN
    /// `123456`, PUK `12345678`, the default management key, no PIV keys or
    /// certificates (the attestation key F9 survives, as on any reset), no
    /// OATH accounts or password. Refuses unless `VAULT_RIG_DESTRUCTIVE=1`.
    fn start_real(serial: u32) -> TestKey {
        let rig = rig_dir();
        if std::env::var("VAULT_RIG_DESTRUCTIVE").as_deref() != Ok("1") {
            panic!(
                "TestKey::start() factory-resets the PIV and OATH applets of the key under test, \
                 and in this rig that is the real YubiKey {serial}: every PIV key and certificate \
                 and every OATH account on it would be erased, and its PIN, PUK and management \
                 key set back to the defaults. Use a spare YubiKey, never one you depend on, and \
                 allow this explicitly: VAULT_RIG_DESTRUCTIVE=1 hw/rig --real-key {serial} -- \
                 cargo test -p virtual-yubikey --test NAME -- --test-threads=1 (see hw/README.md)"
            );
        }
        // One real key: each test waits for the one before it to drop it.
        let lock_path = rig.join("real-key.lock");
        let lock =
            File::create(&lock_path).unwrap_or_else(|e| panic!("{}: {e}", lock_path.display()));
        if lock.try_lock().is_err() {
            notice(&format!(
                "{}: waiting for YubiKey {serial}, which another test holds \
                 (--test-threads=1 runs them in order)",
                test_name()
            ));
            lock.lock().expect("lock the real key");
        }
        let device = serial.to_string();
        notice(&format!(
            "{}: resetting the PIV and OATH applets of YubiKey {serial}",
            test_name()
        ));
        for applet in ["piv", "oath"] {
            // By serial, not by reader: a reset must never hit another key
            // that has since taken the reader's name.
            let (ok, out, err) = run("ykman", &["--device", &device, applet, "reset", "-f"]);
            assert!(
                ok,
                "ykman --device {serial} {applet} reset -f failed:\n{out}\n{err}"
            );
        }
        // The tests talk to the reader the rig found; it must still hold
        // this key.
        let reader = rig_env("VAULT_RIG_READER");
        let yk = yubikey::YubiKey::open_by_serial(yubikey::Serial::from(serial))
            .unwrap_or_else(|e| panic!("YubiKey {serial} after the reset: {e}"));
        assert_eq!(
            yk.name(),
            reader,
            "YubiKey {serial} is no longer in the reader the rig found: start the rig again"
        );
        let v = yk.version();
        let firmware = format!("{}.{}.{}", v.major, v.minor, v.patch);
        if let Err((_, e)) = yk.disconnect(pcsc::Disposition::LeaveCard) {
            panic!("disconnect from YubiKey {serial}: {e}");
        }
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = rig
            .join("keys")
            .join(format!("{serial}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("key dir");
        TestKey {
            serial,
            reader,
            dir,
            slot: 0,
            firmware,
            child: None,
            lock: KeyLock::Real(lock),
            touch_timeout_ms: 15_000,
        }
    }

    /// True inside `hw/rig --real-key`.
    pub fn is_real(&self) -> bool {
        matches!(self.lock, KeyLock::Real(_))
    }

    /// Whether `ctl("touch never" | "touch after MS" | "touch now")` works:
    /// only on the virtual key. On a real key a human touches it.
    pub fn scripted_touch_available(&self) -> bool {
        !self.is_real()
    }

    /// Whether `ctl("remove" | "insert" | "remove-on INS")` works: only on
    /// the virtual key.
    pub fn removal_available(&self) -> bool {
        !self.is_real()
    }

    /// Whether `apdu_log()` has anything to read: only the virtual key logs.
    pub fn apdu_log_available(&self) -> bool {
        !self.is_real()
    }

    /// Before a step that waits for a touch: on a real key asks the human at
    /// the terminal for it (the key blinks for 15 s); the virtual key is
    /// touched as scripted, so nothing is printed.
    pub fn touch_prompt(&self) {
        if self.is_real() {
            notice(&format!(
                "{}: touch the YubiKey now (serial {}; it blinks until touched, for up to 15 s)",
                test_name(),
                self.serial
            ));
        }
    }

    /// Whether the checks on the APDU log (`what`) can run: in the virtual
    /// rig true; on a real key false, after saying that they are skipped.
    pub fn apdu_log_checkable(&self, what: &str) -> bool {
        self.apdu_log_available()
            || !skipped_on_real_key(&format!("checking the APDU log ({what})"))
    }

    /// The APDU log, or, on a real key, `None` after saying that the checks
    /// on it (`what`) are skipped.
    pub fn apdu_log_if_available(&self, what: &str) -> Option<Vec<serde_json::Value>> {
        self.apdu_log_checkable(what).then(|| self.apdu_log())
    }

    fn port(&self) -> u32 {
        let base: u32 = rig_env("VAULT_RIG_VPCD_BASE_PORT")
            .parse()
            .expect("base port");
        base + 2 * self.slot
    }

    pub fn control(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("apdu.log")
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn spawn(&mut self) {
        let child = Command::new(vyk_bin())
            .arg("run")
            .arg("--state")
            .arg(self.state_path())
            .arg("--serial")
            .arg(self.serial.to_string())
            .arg("--root-dir")
            .arg(rig_env("VAULT_RIG_ROOT_DIR"))
            .arg("--vpcd")
            .arg(format!("127.0.0.1:{}", self.port()))
            .arg("--control")
            .arg(self.control())
            .arg("--log")
            .arg(self.log_path())
            .arg("--touch-timeout-ms")
            .arg(self.touch_timeout_ms.to_string())
            .arg("--firmware")
            .arg(&self.firmware)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", vyk_bin().display()));
        self.child = Some(child);
        self.wait_present(true);
    }

    /// Blocks until pcscd reports the card in (or out of) its reader.
    pub fn wait_present(&self, present: bool) {
        if let Err(e) = wait_card(&self.reader, present, 20_000) {
            panic!("key {}: {e}", self.serial);
        }
    }

    /// Stops the key process and starts it again from its state file,
    /// as unplugging and re-plugging a real key would. A real key is instead
    /// powered off and on through pcscd, which is what re-plugging does to
    /// its applets (PIN and authentication states cleared, stored data kept).
    pub fn restart(&mut self) {
        if self.is_real() {
            self.power_cycle();
            return;
        }
        self.kill();
        self.wait_present(false);
        self.spawn();
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn power_cycle(&self) {
        let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcsc context");
        let reader = std::ffi::CString::new(self.reader.clone()).expect("reader name");
        let card = ctx
            .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .unwrap_or_else(|e| panic!("connect to YubiKey {}: {e}", self.serial));
        if let Err((_, e)) = card.disconnect(pcsc::Disposition::UnpowerCard) {
            panic!("power off YubiKey {}: {e}", self.serial);
        }
        self.wait_present(true);
    }

    /// Sends a control command (`touch never`, `touch after 500`, `remove`, ...).
    /// Only the virtual key has a control socket: on a real key this panics;
    /// check `scripted_touch_available()` / `removal_available()` first.
    pub fn ctl(&self, command: &str) -> String {
        assert!(
            !self.is_real(),
            "ctl({command:?}) needs the virtual key's control socket, and this is the real \
             YubiKey {}: guard the test with scripted_touch_available() or removal_available()",
            self.serial
        );
        let out = Command::new(vyk_bin())
            .arg("ctl")
            .arg("--control")
            .arg(self.control())
            .args(command.split_whitespace())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} ctl: {e}", vyk_bin().display()));
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success() && answer.starts_with("ok"),
            "control {command:?} of key {}: {answer} {}",
            self.serial,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        answer
    }

    /// Every entry of the APDU log so far. Only the virtual key keeps one:
    /// on a real key this panics; see `apdu_log_if_available`.
    pub fn apdu_log(&self) -> Vec<serde_json::Value> {
        assert!(
            !self.is_real(),
            "the APDU log is the virtual key's; the real YubiKey {} keeps none: \
             use apdu_log_if_available()",
            self.serial
        );
        read_log(&self.log_path())
    }

    /// Only the exchanges (`kind == "apdu"`) of the APDU log, not the events.
    pub fn apdus(&self) -> Vec<serde_json::Value> {
        self.apdu_log()
            .into_iter()
            .filter(|e| e["kind"] == "apdu")
            .collect()
    }
}

/// `virtual-yubikey wait`: blocks until pcscd reports a card in `reader`
/// (`present`) or none, for at most `timeout_ms`.
fn wait_card(reader: &str, present: bool, timeout_ms: u64) -> Result<(), String> {
    let mut cmd = Command::new(vyk_bin());
    cmd.arg("wait")
        .arg("--reader")
        .arg(reader)
        .arg("--timeout-ms")
        .arg(timeout_ms.to_string())
        .stdin(Stdio::null());
    if !present {
        cmd.arg("--absent");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {} wait: {e}", vyk_bin().display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Every entry of a JSON-lines log (the APDU log, the STS recording). The
/// test fails if the file is missing or unreadable, or if a line is not a
/// JSON object: an empty list must mean "nothing happened", never "nothing
/// could be read". The writers write each line with one `write`; a last
/// line without its newline is read again until it is complete (for at
/// most 2 s, then the test fails).
pub fn read_log(path: &Path) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let text = loop {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read the log {}: {e}", path.display()));
        if text.is_empty() || text.ends_with('\n') {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the log {} ends in a line that was never finished: {:?}",
            path.display(),
            text.lines().last().unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    text.lines()
        .enumerate()
        .map(
            |(i, l)| match serde_json::from_str::<serde_json::Value>(l) {
                Ok(v) if v.is_object() => v,
                Ok(_) | Err(_) => panic!(
                    "line {} of the log {} is not a JSON object: {l:?}",
                    i + 1,
                    path.display()
                ),
            },
        )
        .collect()
}

impl Drop for TestKey {
    fn drop(&mut self) {
        // A real key stays plugged in; dropping `lock` hands it to the next test.
        if let KeyLock::Slot(lock) = &self.lock {
            let lock = lock.clone();
            self.kill();
            // The next test in this slot must not see this key's ghost.
            let _ = wait_card(&self.reader, false, 10_000);
            let _ = std::fs::remove_file(&lock);
        }
    }
}

/// Runs a program found on the rig's PATH and returns (status ok, stdout, stderr).
pub fn run(program: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (is it installed? see .ci/run)"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The STS/IAM requests moto recorded so far, as decoded form bodies
/// (`Action=GetSessionToken&TokenCode=...`), in order.
pub fn recorded_requests() -> Vec<String> {
    use base64::Engine;
    let path = rig_env("VAULT_RIG_RECORDING");
    read_log(Path::new(&path))
        .iter()
        .map(|e| {
            let body = e["body"].as_str().unwrap_or_default();
            if e["body_encoded"].as_bool().unwrap_or(false) {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .unwrap_or_else(|err| panic!("a recorded body is not base64 ({err}): {e}"));
                String::from_utf8_lossy(&raw).into_owned()
            } else {
                body.to_string()
            }
        })
        .collect()
}
