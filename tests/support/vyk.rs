//! A factory-fresh virtual YubiKey of a test's own, plugged into a spare
//! reader slot of the rig's pcscd, so tests that change PINs, block them or
//! pull the key out never disturb each other or the rig's key. The slot
//! lock protocol (`$VAULT_RIG_DIR/slots/N.lock`, created exclusively) is
//! the one `hw/virtual-yubikey/tests/common` uses, so both sets of tests
//! can share one rig.
//!
//! Outside the rig every use panics with instructions, never passes.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The rig's working folder; panics with instructions when not in a rig.
pub fn rig_dir() -> PathBuf {
    match std::env::var_os("VAULT_RIG_DIR") {
        Some(d) => PathBuf::from(d),
        None => panic!(
            "this test talks to virtual YubiKeys through pcscd; \
             run inside hw/rig: hw/rig -- cargo test --workspace"
        ),
    }
}

pub fn rig_env(name: &str) -> String {
    rig_dir();
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set: is hw/rig up to date?"))
}

/// The `virtual-yubikey` binary the rig built and put on PATH.
fn vyk_bin() -> PathBuf {
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
    pub dir: PathBuf,
    pub slot: u32,
    child: Option<Child>,
    lock: PathBuf,
    touch_timeout_ms: u64,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestKey {
    /// A factory-fresh key (PIN 123456, PUK 12345678, default management
    /// key) with a YubiKey 5's 15 s touch timeout.
    pub fn start() -> TestKey {
        TestKey::start_with_touch_timeout(15_000)
    }

    /// A fresh key whose touch timeout is shorter, for "never touched".
    pub fn start_with_touch_timeout(touch_timeout_ms: u64) -> TestKey {
        let rig = rig_dir();
        let slots: u32 = rig_env("VAULT_RIG_SLOTS").parse().expect("VAULT_RIG_SLOTS");
        let slots_dir = rig.join("slots");
        std::fs::create_dir_all(&slots_dir).expect("slots dir");
        // Slot 0 is the rig's own key; tests share the others.
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
        // Unique across this process's keys and clear of the rig's key and
        // of the hw tests' keys (20 000 000 + …).
        let serial = 30_000_000 + (std::process::id() % 10_000) * 1_000 + n * 10 + slot;
        let dir = rig.join("keys").join(format!("{serial}"));
        std::fs::create_dir_all(&dir).expect("key dir");
        let mut key = TestKey {
            serial,
            reader: reader_name(slot),
            dir,
            slot,
            child: None,
            lock,
            touch_timeout_ms,
        };
        key.spawn();
        key
    }

    fn port(&self) -> u32 {
        let base: u32 = rig_env("VAULT_RIG_VPCD_BASE_PORT")
            .parse()
            .expect("VAULT_RIG_VPCD_BASE_PORT");
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
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start virtual-yubikey: {e}"));
        self.child = Some(child);
        self.wait_present(true);
    }

    /// Blocks until pcscd reports the card in (or out of) its reader.
    pub fn wait_present(&self, present: bool) {
        let mut cmd = Command::new(vyk_bin());
        cmd.arg("wait")
            .arg("--reader")
            .arg(&self.reader)
            .arg("--timeout-ms")
            .arg("20000");
        if !present {
            cmd.arg("--absent");
        }
        let out = cmd.output().expect("run virtual-yubikey wait");
        assert!(
            out.status.success(),
            "key {} not {} in {:?}: {}",
            self.serial,
            if present { "present" } else { "absent" },
            self.reader,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Sends a control command (`touch never`, `remove`, `remove-on 87`, …)
    /// and returns the key's answer, which must start with "ok".
    pub fn ctl(&self, command: &str) -> String {
        let out = Command::new(vyk_bin())
            .arg("ctl")
            .arg("--control")
            .arg(self.control())
            .args(command.split_whitespace())
            .output()
            .expect("run virtual-yubikey ctl");
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success() && answer.starts_with("ok"),
            "control {command:?} of key {}: {answer} {}",
            self.serial,
            String::from_utf8_lossy(&out.stderr)
        );
        answer
    }

    /// Every entry of the APDU log so far.
    pub fn apdu_log(&self) -> Vec<serde_json::Value> {
        read_log(&self.log_path())
    }

    /// Only the exchanges (`kind == "apdu"`), not the events.
    pub fn apdus(&self) -> Vec<serde_json::Value> {
        self.apdu_log()
            .into_iter()
            .filter(|e| e["kind"] == "apdu")
            .collect()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn read_log(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

impl Drop for TestKey {
    fn drop(&mut self) {
        self.kill();
        // The next test in this slot must not see this key's ghost.
        let _ = Command::new(vyk_bin())
            .arg("wait")
            .arg("--absent")
            .arg("--reader")
            .arg(&self.reader)
            .arg("--timeout-ms")
            .arg("10000")
            .output();
        let _ = std::fs::remove_file(&self.lock);
    }
}
