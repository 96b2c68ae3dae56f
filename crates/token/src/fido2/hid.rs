//! The real thing: FIDO2 keys over USB HID through ctap-hid-fido2, kept off vault's stdout.

use super::authenticator::check_rp_id;
use super::{Fido2Authenticator, Fido2Error};
use ctap_hid_fido2::fidokey::credential_management::credential_management_params::CredentialProtectionPolicy;
use ctap_hid_fido2::fidokey::{
    AssertionExtension, CredentialExtension, GetAssertionArgsBuilder, MakeCredentialArgsBuilder,
};
use ctap_hid_fido2::{FidoKeyHid, HidParam};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use vault_base::secret::Passphrase;
use zeroize::{Zeroize, Zeroizing};

/// Said through the notify callback before every request that waits for a
/// touch.
pub const TOUCH_MESSAGE: &str = "Touch your security key…";

/// The crate's settings: no trace output, no keep-alive line (and were it
/// printed, to stderr). See the module documentation.
fn crate_cfg() -> ctap_hid_fido2::Cfg {
    let mut cfg = ctap_hid_fido2::Cfg::init();
    cfg.enable_log = false;
    cfg.enable_keep_alive_msg = false;
    cfg.keep_alive_msg = String::new();
    cfg.keep_alive_msg_to_stderr = true;
    // Only bio enrollment and credential management read these; vault uses
    // neither, and CTAP 2.1's commands are the ones to prefer.
    cfg.use_pre_bio_enrollment = false;
    cfg.use_pre_credential_management = false;
    cfg
}

/// Runs `f`, a call into ctap-hid-fido2, with file descriptor 1 pointing at
/// stderr, and turns a panic in it into an error. See the module
/// documentation.
fn quiet_stdout<T>(f: impl FnOnce() -> T) -> Result<T, Fido2Error> {
    #[cfg(unix)]
    {
        use std::io::Write;

        fn aside(what: &str, e: impl fmt::Display) -> Fido2Error {
            Fido2Error::Device(format!(
                "cannot {what} stdout around the FIDO2 library: {e}"
            ))
        }
        // Held throughout: other threads' prints wait rather than being
        // diverted to stderr. The lock is reentrant, so the library's own
        // prints on this thread go through (to stderr).
        let mut stdout = std::io::stdout().lock();
        stdout.flush().map_err(|e| aside("flush", e))?;
        let saved = rustix::io::dup(&stdout).map_err(|e| aside("save", e))?;
        // With stderr closed, the library's prints go nowhere.
        rustix::stdio::dup2_stdout(std::io::stderr())
            .or_else(|_| {
                let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
                rustix::stdio::dup2_stdout(&null).map_err(std::io::Error::from)
            })
            .map_err(|e| aside("redirect", e))?;
        let result = catch_unwind(AssertUnwindSafe(f));
        // Whatever the library left in Rust's buffer goes to stderr too.
        let _ = stdout.flush();
        rustix::stdio::dup2_stdout(&saved).map_err(|e| aside("restore", e))?;
        result.map_err(panic_error)
    }
    #[cfg(not(unix))]
    {
        catch_unwind(AssertUnwindSafe(f)).map_err(panic_error)
    }
}

fn panic_error(payload: Box<dyn std::any::Any + Send>) -> Fido2Error {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".to_string());
    Fido2Error::Device(format!("the FIDO2 library failed: {message}"))
}

/// A FIDO HID device (usage page 0xF1D0) found plugged in.
#[derive(Clone)]
pub struct Fido2Device {
    /// The product name the device reports, e.g. "YubiKey OTP+FIDO+CCID".
    pub product: String,
    pub vendor_id: u16,
    pub product_id: u16,
    param: HidParam,
}

impl Fido2Device {
    fn description(&self) -> String {
        if self.product.is_empty() {
            format!(
                "FIDO2 security key {:04x}:{:04x}",
                self.vendor_id, self.product_id
            )
        } else {
            format!("FIDO2 security key \"{}\"", self.product)
        }
    }
}

impl fmt::Debug for Fido2Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fido2Device({})", self.description())
    }
}

/// The CTAP status byte in a ctap-hid-fido2 error: it reports one as
/// `response_status err = 0xNN NAME text` (`ctaphid.rs`, `ctapdef.rs`).
fn ctap_status(message: &str) -> Option<u8> {
    let rest = message.split("response_status err = 0x").nth(1)?;
    let hex: String = rest
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .take(2)
        .collect();
    u8::from_str_radix(&hex, 16).ok()
}

/// A ctap-hid-fido2 error as a [`Fido2Error`]. A wrong PIN is completed
/// with the tries left by the caller.
fn classify(message: &str) -> Fido2Error {
    match ctap_status(message) {
        Some(0x2E | 0x22) => Fido2Error::CredentialNotFound,
        Some(0x31) => Fido2Error::WrongPin { tries_left: None },
        Some(0x32) => Fido2Error::PinBlocked,
        Some(0x34) => Fido2Error::PinAuthBlocked,
        Some(0x35) => Fido2Error::PinNotSet,
        Some(0x36) => Fido2Error::PinRequired,
        Some(0x2D | 0x2F | 0x3A) => Fido2Error::TouchTimeout,
        Some(0x27) => Fido2Error::Denied,
        Some(0x16) => Fido2Error::HmacSecretUnsupported,
        _ if message.starts_with("read err") || message.starts_with("write error") => {
            Fido2Error::Device("lost contact with the security key (was it unplugged?)".to_string())
        }
        _ => Fido2Error::Device(message.to_string()),
    }
}

/// FIDO2 security keys on USB, found anew for each request so that a key
/// plugged in late is seen. `notify` tells the user to touch the key; it
/// must not write to stdout.
pub struct HidAuthenticator {
    notify: Box<dyn Fn(&str)>,
    /// The key used last, for messages.
    last: Option<String>,
}

impl HidAuthenticator {
    pub fn new(notify: Box<dyn Fn(&str)>) -> Self {
        HidAuthenticator { notify, last: None }
    }

    /// The FIDO HID devices plugged in; [`Fido2Error::NoDevice`] if none.
    pub fn discover(&self) -> Result<Vec<Fido2Device>, Fido2Error> {
        let found = quiet_stdout(ctap_hid_fido2::get_fidokey_devices)?;
        let devices: Vec<Fido2Device> = found
            .into_iter()
            .map(|info| Fido2Device {
                product: info.product_string,
                vendor_id: info.vid,
                product_id: info.pid,
                param: info.param,
            })
            .collect();
        if devices.is_empty() {
            return Err(Fido2Error::NoDevice);
        }
        Ok(devices)
    }

    fn open(&mut self, device: &Fido2Device) -> Result<FidoKeyHid, Fido2Error> {
        self.last = Some(device.description());
        let params = [device.param.clone()];
        let cfg = crate_cfg();
        quiet_stdout(|| FidoKeyHid::new(&params, &cfg))?.map_err(|e| Fido2Error::CannotOpen {
            device: device.description(),
            reason: e.to_string(),
        })
    }

    /// A ctap-hid-fido2 error, with the tries left when the PIN was wrong.
    fn error(key: &FidoKeyHid, message: &str) -> Fido2Error {
        match classify(message) {
            Fido2Error::WrongPin { .. } => {
                let tries_left = quiet_stdout(|| key.get_pin_retries())
                    .ok()
                    .and_then(Result::ok)
                    .and_then(|n| u32::try_from(n).ok());
                Fido2Error::WrongPin { tries_left }
            }
            other => other,
        }
    }

    /// Whether `key` holds `credential_id`, asked without a touch (`up`
    /// false), so that a key without it is passed over without asking for a
    /// touch. Any answer but "no such credential" counts as yes: the real
    /// request will tell what is wrong.
    fn holds(key: &FidoKeyHid, rp_id: &str, credential_id: &[u8]) -> Result<bool, Fido2Error> {
        let challenge = random_challenge();
        let args = GetAssertionArgsBuilder::new(rp_id, &challenge)
            .credential_id(credential_id)
            .without_pin_and_uv()
            .without_up()
            .build();
        match quiet_stdout(|| key.get_assertion_with_args(&args))? {
            Ok(_) => Ok(true),
            Err(e) => Ok(classify(&e.to_string()) != Fido2Error::CredentialNotFound),
        }
    }

    fn assertion(
        &self,
        key: &FidoKeyHid,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
        pin: Option<&Passphrase>,
    ) -> Result<Zeroizing<[u8; 32]>, Fido2Error> {
        let challenge = random_challenge();
        let extensions = [AssertionExtension::HmacSecret(Some(*salt))];
        let mut builder = GetAssertionArgsBuilder::new(rp_id, &challenge)
            .credential_id(credential_id)
            .extensions(&extensions);
        builder = match pin {
            Some(pin) => builder.pin(pin.expose()),
            None => builder.without_pin_and_uv(),
        };
        let args = builder.build();
        (self.notify)(TOUCH_MESSAGE);
        let mut assertions = quiet_stdout(|| key.get_assertion_with_args(&args))?
            .map_err(|e| Self::error(key, &e.to_string()))?;
        let mut output = None;
        for assertion in &mut assertions {
            for extension in &mut assertion.extensions {
                match extension {
                    AssertionExtension::HmacSecret(Some(secret)) => {
                        if output.is_none() {
                            output = Some(Zeroizing::new(*secret));
                        }
                        secret.zeroize();
                    }
                    AssertionExtension::HmacSecret2(Some((first, second))) => {
                        first.zeroize();
                        second.zeroize();
                    }
                    _ => {}
                }
            }
        }
        let first = assertions
            .first()
            .ok_or_else(|| Fido2Error::Device("the key sent no assertion".to_string()))?;
        if first.rpid_hash.as_slice() != Sha256::digest(rp_id.as_bytes()).as_slice() {
            return Err(Fido2Error::Device(
                "the key answered for another relying party".to_string(),
            ));
        }
        // The key may leave the id out when the allow list has one entry.
        if !first.credential_id.is_empty() && first.credential_id != credential_id {
            return Err(Fido2Error::Device(
                "the key answered with another credential".to_string(),
            ));
        }
        output.ok_or(Fido2Error::HmacSecretUnsupported)
    }
}

fn random_challenge() -> [u8; 32] {
    let mut challenge = [0u8; 32];
    OsRng.fill_bytes(&mut challenge);
    challenge
}

impl Fido2Authenticator for HidAuthenticator {
    fn make_hmac_credential(
        &mut self,
        rp_id: &str,
        pin: Option<&Passphrase>,
    ) -> Result<Vec<u8>, Fido2Error> {
        check_rp_id(rp_id)?;
        let devices = self.discover()?;
        let [device] = devices.as_slice() else {
            return Err(Fido2Error::SeveralDevices {
                count: devices.len(),
            });
        };
        let key = self.open(device)?;
        let challenge = random_challenge();
        // credProtect level 2: usable without a PIN when its id is given,
        // as vault always does; a key defaulting to level 3 would otherwise
        // demand the PIN on every open.
        let extensions = [
            CredentialExtension::HmacSecret(Some(true)),
            CredentialExtension::CredProtect(Some(
                CredentialProtectionPolicy::UserVerificationOptionalWithCredentialIdList,
            )),
        ];
        let mut builder = MakeCredentialArgsBuilder::new(rp_id, &challenge).extensions(&extensions);
        builder = match pin {
            Some(pin) => builder.pin(pin.expose()),
            None => builder.without_pin_and_uv(),
        };
        let args = builder.build();
        (self.notify)(TOUCH_MESSAGE);
        let attestation = quiet_stdout(|| key.make_credential_with_args(&args))?
            .map_err(|e| Self::error(&key, &e.to_string()))?;
        let hmac_secret = attestation
            .extensions
            .iter()
            .any(|e| matches!(e, CredentialExtension::HmacSecret(Some(true))));
        if !hmac_secret {
            return Err(Fido2Error::HmacSecretUnsupported);
        }
        Ok(attestation.credential_descriptor.id)
    }

    fn hmac_secret(
        &mut self,
        rp_id: &str,
        credential_id: &[u8],
        salt: &[u8; 32],
        pin: Option<&Passphrase>,
    ) -> Result<Zeroizing<[u8; 32]>, Fido2Error> {
        check_rp_id(rp_id)?;
        for device in self.discover()? {
            let key = self.open(&device)?;
            if Self::holds(&key, rp_id, credential_id)? {
                return self.assertion(&key, rp_id, credential_id, salt, pin);
            }
        }
        Err(Fido2Error::CredentialNotFound)
    }

    fn description(&self) -> String {
        self.last
            .clone()
            .unwrap_or_else(|| "FIDO2 security key".to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::fido2::Fido2Unwrapper;
    use std::cell::RefCell;
    use std::io::Write;
    use std::process::Command;
    use std::rc::Rc;

    const RP: &str = "vault.test";

    #[test]
    fn crate_errors_map_to_vault_errors() {
        // The exact wording ctap-hid-fido2 3.6.1 uses (ctaphid.rs, ctapdef.rs).
        let cases = [
            (
                "response_status err = 0x2E CTAP2_ERR_NO_CREDENTIALS    No valid credentials provided.",
                Fido2Error::CredentialNotFound,
            ),
            (
                "response_status err = 0x31 CTAP2_ERR_PIN_INVALID   PIN Invalid.",
                Fido2Error::WrongPin { tries_left: None },
            ),
            (
                "response_status err = 0x32 CTAP2_ERR_PIN_BLOCKED PIN Blocked.",
                Fido2Error::PinBlocked,
            ),
            (
                "response_status err = 0x36 CTAP2_ERR_PIN_REQUIRED  PIN is required for the selected operation.",
                Fido2Error::PinRequired,
            ),
            (
                "response_status err = 0x2F CTAP2_ERR_USER_ACTION_TIMEOUT   Timeout waiting for user interaction.",
                Fido2Error::TouchTimeout,
            ),
            (
                "response_status err = 0x16 CTAP2_ERR_UNSUPPORTED_EXTENSION Unsupported extension.",
                Fido2Error::HmacSecretUnsupported,
            ),
            (
                "response_status err = 0x34 CTAP2_ERR_PIN_AUTH_BLOCKED PIN authentication, pinAuth, blocked.Requires power recycle to reset.",
                Fido2Error::PinAuthBlocked,
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(classify(message), expected, "{message}");
        }
        assert!(matches!(
            classify("read err = 0xFF CTAP2_ERR_VENDOR_LAST   Vendor specific error."),
            Fido2Error::Device(m) if m.contains("unplugged")
        ));
        assert!(matches!(
            classify("response_status err = 0x2B CTAP2_ERR_UNSUPPORTED_OPTION Unsupported option."),
            Fido2Error::Device(m) if m.contains("0x2B")
        ));
        assert_eq!(
            ctap_status("response_status err = 0x6A BioPass"),
            Some(0x6a)
        );
        assert_eq!(ctap_status("FIDO device not found."), None);
    }

    #[test]
    fn the_crate_is_configured_silent() {
        let cfg = crate_cfg();
        assert!(!cfg.enable_log);
        assert!(!cfg.enable_keep_alive_msg);
        assert!(cfg.keep_alive_msg.is_empty());
        assert!(cfg.keep_alive_msg_to_stderr);
    }

    // -- stdout, in a child process ----------------------------------------

    const CHILD: &str = "VAULT_FIDO2_TEST_CHILD";
    const OUT: &str = "VAULT_FIDO2_TEST_OUT";
    const BEGIN: &str = "<<fido2-child-begin>>\n";
    const END: &str = "<<fido2-child-end>>";
    const CONTROL: &str = "<<fido2-child-control>>";

    /// Not a test: the child `run_child` starts (`--exact ...child_entry
    /// --include-ignored`), so a normal run lists it as ignored, never as
    /// passed. With `CHILD` set it runs the HID code between two markers on
    /// its real stdout (the harness runs it with `--nocapture`, so any
    /// print reaches fd 1) and writes what happened to the file `OUT` names.
    #[test]
    #[ignore = "helper, not a test: run as a child by the stdout tests below"]
    fn child_entry() {
        let action = std::env::var(CHILD).unwrap_or_else(|_| {
            panic!("child_entry is a helper run by the tests below ({CHILD} unset)")
        });
        let out = std::env::var(OUT).unwrap();
        let mut stdout = std::io::stdout();
        stdout.write_all(BEGIN.as_bytes()).unwrap();
        stdout.flush().unwrap();
        let report = match action.as_str() {
            "no_device" => {
                let touches = Rc::new(RefCell::new(0u32));
                let count = touches.clone();
                let mut hid = HidAuthenticator::new(Box::new(move |_| *count.borrow_mut() += 1));
                match hid.discover() {
                    // A developer's machine with a key plugged in: do not
                    // ask for touches, only check that nothing was printed.
                    Ok(devices) => format!("devices {}\n", devices.len()),
                    Err(discovered) => {
                        let made = hid.make_hmac_credential(RP, None);
                        let secret = hid.hmac_secret(RP, &[1; 16], &[2; 32], None).map(|_| ());
                        let unwrapped = Fido2Unwrapper::new(&mut hid)
                            .find_secret(RP, &[1; 16], &[2; 32])
                            .map(|s| s.is_some())
                            .map_err(|e| e.to_string());
                        format!(
                            "discover {discovered:?}: {discovered}\nmake {made:?}\n\
                             secret {secret:?}\nunwrap {unwrapped:?}\nnotified {}\n",
                            touches.borrow()
                        )
                    }
                }
            }
            "probe" => {
                let r = quiet_stdout(|| {
                    println!("PROBE-PRINTLN");
                    print!("PROBE-PRINT-NO-NEWLINE");
                    42
                });
                format!("probe {r:?}\n")
            }
            other => panic!("unknown action {other}"),
        };
        stdout.write_all(END.as_bytes()).unwrap();
        stdout.flush().unwrap();
        // The control: outside the guard a print does reach stdout, so the
        // empty space between the markers is not an artefact of capture.
        println!("{CONTROL}");
        std::fs::write(out, report).unwrap();
    }

    /// Runs `child_entry` in a child; returns (report, what the child wrote
    /// to stdout between the markers, its stderr).
    fn run_child(action: &str) -> (String, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("report");
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "fido2::hid::tests::child_entry",
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, action)
            .env(OUT, &report)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "child failed: {}\nstdout: {stdout}\nstderr: {stderr}",
            output.status
        );
        let (_, after) = stdout
            .split_once(BEGIN)
            .unwrap_or_else(|| panic!("no begin marker: {stdout:?}"));
        let (between, rest) = after
            .split_once(END)
            .unwrap_or_else(|| panic!("no end marker: {stdout:?}"));
        assert!(rest.contains(CONTROL), "no control print: {stdout:?}");
        (
            std::fs::read_to_string(report).unwrap(),
            between.to_string(),
            stderr,
        )
    }

    #[test]
    fn with_no_device_the_hid_path_fails_clearly_and_prints_nothing_to_stdout() {
        let (report, stdout, stderr) = run_child("no_device");
        assert_eq!(
            stdout, "",
            "stdout carried: {stdout:?} (stderr: {stderr:?})"
        );
        if report.starts_with("devices ") {
            eprintln!("a FIDO device is plugged in; only stdout was checked: {report}");
            return;
        }
        assert!(
            report.contains("discover NoDevice: no FIDO2 security key found: plug it in"),
            "{report}"
        );
        assert!(report.contains("udev rule"), "{report}");
        assert!(report.contains("make Err(NoDevice)"), "{report}");
        assert!(report.contains("secret Err(NoDevice)"), "{report}");
        // Absent, so the envelope tries its other recipients.
        assert!(report.contains("unwrap Ok(false)"), "{report}");
        assert!(
            report.contains("notified 0"),
            "no touch asked without a key: {report}"
        );
    }

    #[test]
    fn the_stdout_guard_sends_library_prints_to_stderr() {
        let (report, stdout, stderr) = run_child("probe");
        assert_eq!(report, "probe Ok(42)\n");
        assert_eq!(stdout, "", "stdout carried: {stdout:?}");
        assert!(stderr.contains("PROBE-PRINTLN\n"), "stderr: {stderr:?}");
        assert!(
            stderr.contains("PROBE-PRINT-NO-NEWLINE"),
            "stderr: {stderr:?}"
        );
    }
}
