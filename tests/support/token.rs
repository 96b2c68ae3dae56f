//! What the tests that drive a YubiKey through the `vault` binary share:
//! a key's new PIN and PUK, `vault` with what a scripted enrollment and
//! exec need, `vault hw enroll`, where vault keeps a profile's envelope and
//! tokens.json, and the test's keychain read through the library.

use super::vyk::TestKey;
use super::{Cmd, Run, TestEnv};
use std::path::PathBuf;
use vault_prompt::{Prompt, PromptError};

/// A key's new PIN and PUK, random for each key, never the factory ones.
pub struct Secrets {
    pub pin: String,
    pub puk: String,
}

impl Secrets {
    pub fn new() -> Secrets {
        let digits = |n: usize, factory: &str| loop {
            let s = super::random(b"0123456789", n);
            if s != factory {
                return s;
            }
        };
        Secrets {
            pin: digits(6, "123456"),
            puk: digits(8, "12345678"),
        }
    }

    /// Another 6-digit PIN, for "wrong PIN".
    pub fn wrong_pin(&self) -> String {
        loop {
            let s = super::random(b"0123456789", 6);
            if s != self.pin && s != "123456" {
                return s;
            }
        }
    }
}

/// `vault ARGS` with what a scripted enrollment and exec need: the rig's
/// attestation root trusted, the new PIN and PUK, and the PIN.
pub fn hw(t: &TestEnv, s: &Secrets, args: &[&str]) -> Cmd {
    hw_env(t.vault(args), s)
}

/// What `hw` adds, added to any command (one run in a namespace, say).
pub fn hw_env(c: Cmd, s: &Secrets) -> Cmd {
    let (roots, intermediates) = rig_attestation_pki();
    c.env("VAULT_ATTESTATION_ROOTS", roots)
        .env("VAULT_ATTESTATION_INTERMEDIATES", intermediates)
        .env("VAULT_NEW_PIN", &s.pin)
        .env("VAULT_NEW_PUK", &s.puk)
        .env("VAULT_PIN", &s.pin)
}

/// The rig's attestation test PKI as vault takes it: both personalities'
/// roots (`VAULT_ATTESTATION_ROOTS`) and the 5.7.4 intermediates
/// (`VAULT_ATTESTATION_INTERMEDIATES`), from `$VAULT_RIG_ROOT_DIR`
/// (hw/README.md, "Attestation test PKI"). Where the folder holds no 5.7
/// files (an older rig), only the 5.4.3 root, and no intermediates.
pub fn rig_attestation_pki() -> (String, String) {
    let legacy = std::env::var("VAULT_RIG_ATTESTATION_ROOT").expect("VAULT_RIG_ATTESTATION_ROOT");
    let dir = std::path::PathBuf::from(std::env::var("VAULT_RIG_ROOT_DIR").unwrap_or_default());
    let root_1 = dir.join("attestation-root-1.pem");
    let bundle = dir.join("attestation-intermediates-5.7.pem");
    if root_1.is_file() && bundle.is_file() {
        (
            format!("{legacy}:{}", root_1.display()),
            bundle.display().to_string(),
        )
    } else {
        (legacy, String::new())
    }
}

/// `hw enroll --serial SERIAL EXTRA…` (`serial` is the key's, as text).
pub fn enroll_args<'a>(serial: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["hw", "enroll", "--serial", serial];
    args.extend_from_slice(extra);
    args
}

/// `vault hw enroll --serial N EXTRA…`; asserts it worked.
pub fn enroll(t: &TestEnv, key: &TestKey, s: &Secrets, extra: &[&str]) -> Run {
    let serial = key.serial.to_string();
    hw(t, s, &enroll_args(&serial, extra)).run().success()
}

/// Where vault keeps `profile`'s envelope.
pub fn envelope_path(t: &TestEnv, profile: &str) -> PathBuf {
    t.dir
        .join("data/vault/envelopes")
        .join(format!("{}.envelope", hex::encode(profile)))
}

/// `profile`'s envelope, which must exist.
pub fn envelope(t: &TestEnv, profile: &str) -> Vec<u8> {
    let p = envelope_path(t, profile);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Where vault records the enrolled keys.
pub fn tokens_json_path(t: &TestEnv) -> PathBuf {
    t.dir.join("config-home/vault/tokens.json")
}

/// Never asks: the keychain store does not.
pub struct NoPrompt;

impl Prompt for NoPrompt {
    fn mfa_code(&self, _: &str, _: &str) -> Result<vault_base::secret::MfaCode, PromptError> {
        Err(PromptError::Unavailable("test".into()))
    }
    fn secret(&self, _: &str) -> Result<vault_base::secret::Passphrase, PromptError> {
        Err(PromptError::Unavailable("test".into()))
    }
    fn text(&self, _: &str) -> Result<String, PromptError> {
        Err(PromptError::Unavailable("test".into()))
    }
    fn notify(&self, _: &str) {}
}

/// The test's keychain service, opened through the library: the Secret
/// Service asked directly, not through `vault` (`vault list` also lists
/// token-backed profiles).
pub fn keychain(t: &TestEnv) -> Box<dyn vault_secrets::store::Store> {
    let opts = vault_secrets::store::StoreOptions {
        service: t.service.clone(),
        file_dir: t.dir.join("unused-file-store"),
        passphrase_env: None,
    };
    vault_secrets::store::open(vault_secrets::store::Backend::Keychain, &opts, &NoPrompt)
        .unwrap_or_else(|e| panic!("open the keychain: {e}"))
}

/// The bytes the test's keychain service holds for `profile`'s key.
pub fn stored(t: &TestEnv, profile: &str) -> Option<Vec<u8>> {
    keychain(t)
        .get(&vault_secrets::store::key_item(profile))
        .unwrap_or_else(|e| panic!("read the keychain: {e}"))
        .map(|b| b.expose().to_vec())
}
