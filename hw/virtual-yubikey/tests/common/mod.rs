//! Test support for conformance tests: each test gets a factory-fresh
//! virtual YubiKey of its own, in a reader slot of the rig's pcscd, so tests
//! that block PINs or reset applets never disturb each other.
//!
//! These tests only make sense inside `hw/rig`; outside it they fail with
//! a message saying how to run them, never skip.
#![allow(dead_code)]

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
            "this test talks to a virtual YubiKey through pcscd and must run inside the rig: \
             hw/rig -- cargo test --workspace"
        ),
    }
}

fn env(name: &str) -> String {
    rig_dir();
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set: is hw/rig up to date?"))
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
    /// A factory-fresh key in a free slot, with the real 15 s touch timeout.
    pub fn start() -> TestKey {
        TestKey::start_with_touch_timeout(15_000)
    }

    /// A fresh key whose touch timeout is shorter, for tests of "never touched".
    pub fn start_with_touch_timeout(touch_timeout_ms: u64) -> TestKey {
        let rig = rig_dir();
        let slots: u32 = env("VAULT_RIG_SLOTS").parse().expect("VAULT_RIG_SLOTS");
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
        // Unique across processes and slots, and clearly not the rig's own key.
        let serial = 20_000_000 + (std::process::id() % 10_000) * 1_000 + n * 10 + slot;
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
        let base: u32 = env("VAULT_RIG_VPCD_BASE_PORT").parse().expect("base port");
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
        let child = Command::new(env!("CARGO_BIN_EXE_virtual-yubikey"))
            .arg("run")
            .arg("--state")
            .arg(self.state_path())
            .arg("--serial")
            .arg(self.serial.to_string())
            .arg("--root-dir")
            .arg(env("VAULT_RIG_ROOT_DIR"))
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
            .expect("start virtual-yubikey");
        self.child = Some(child);
        self.wait_present(true);
    }

    /// Blocks until pcscd reports the card in (or out of) its reader.
    pub fn wait_present(&self, present: bool) {
        virtual_yubikey::pcsc_wait::wait_card(&self.reader, present, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("key {}: {e}", self.serial));
    }

    /// Stops the key process and starts it again from its state file,
    /// as unplugging and re-plugging a real key would.
    pub fn restart(&mut self) {
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

    /// Sends a control command (`touch never`, `touch after 500`, `remove`, ...).
    pub fn ctl(&self, command: &str) -> String {
        let answer = virtual_yubikey::server::send_control(&self.control(), command)
            .unwrap_or_else(|e| panic!("control socket of key {}: {e}", self.serial));
        assert!(answer.starts_with("ok"), "control {command:?}: {answer}");
        answer
    }

    /// Every entry of the APDU log so far.
    pub fn apdu_log(&self) -> Vec<serde_json::Value> {
        read_log(&self.log_path())
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
        let _ = virtual_yubikey::pcsc_wait::wait_card(&self.reader, false, Duration::from_secs(10));
        let _ = std::fs::remove_file(&self.lock);
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
    let path = env("VAULT_RIG_RECORDING");
    read_log(Path::new(&path))
        .iter()
        .map(|e| {
            let body = e["body"].as_str().unwrap_or_default();
            if e["body_encoded"].as_bool().unwrap_or(false) {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .unwrap_or_default();
                String::from_utf8_lossy(&raw).into_owned()
            } else {
                body.to_string()
            }
        })
        .collect()
}
