//! The three stores through vault's public `store::open`, against the real
//! services `hw/rig` provides: gnome-keyring's Secret Service on a private
//! D-Bus session, a fresh kernel session keyring, a temporary HOME.
//!
//! Each test proves the service, not an in-process stand-in, holds the
//! items: a second `open` builds new keyring entries (keyring's mock keeps
//! data per entry, so it would come back empty), and for the keychain and
//! the kernel keyring a second process (`dbus-send`, `keyctl`, or this test
//! binary run again) finds them too.
//!
//! Outside the rig every test fails with instructions, never passes.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use vault_base::creds::LongTermKey;
use vault_base::secret::{MfaCode, Passphrase, SecretAccessKey, SecretBytes};
use vault_prompt::{Prompt, PromptError};
use vault_secrets::store::file::{FileStore, KdfParams, CHECK_FILE};
use vault_secrets::store::{self, Backend, Store, StoreError, StoreOptions};

/// Set in a copy of this binary that a test starts as its second process.
const CHILD: &str = "VAULT_STORE_RIG_CHILD";

fn rig_dir() -> PathBuf {
    match std::env::var_os("VAULT_RIG_DIR") {
        Some(d) => PathBuf::from(d),
        None => panic!(
            "these tests need the rig's Secret Service and kernel keyring; \
             run inside hw/rig: hw/rig -- cargo test --workspace"
        ),
    }
}

/// A service name (and file-store directory) no other test or run uses.
fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "vault-test-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn options(service: &str) -> StoreOptions {
    StoreOptions {
        service: service.to_string(),
        file_dir: rig_dir().join("stores").join(service),
        passphrase_env: None,
    }
}

/// Stores must not ask anything when they do not need to.
struct NoPrompt;

impl Prompt for NoPrompt {
    fn mfa_code(&self, _: &str, _: &str) -> Result<MfaCode, PromptError> {
        panic!("a store asked for an MFA code")
    }
    fn secret(&self, label: &str) -> Result<Passphrase, PromptError> {
        panic!("a store asked for a secret: {label}")
    }
    fn text(&self, label: &str) -> Result<String, PromptError> {
        panic!("a store asked for text: {label}")
    }
    fn notify(&self, _: &str) {}
}

fn open(backend: Backend, opts: &StoreOptions) -> Box<dyn Store> {
    store::open(backend, opts, &NoPrompt)
        .unwrap_or_else(|e| panic!("opening {}: {e} ({:?})", backend.name(), e.hint()))
}

fn value(v: &str) -> SecretBytes {
    SecretBytes::new(v.as_bytes().to_vec())
}

fn read(store: &dyn Store, item: &str) -> Option<String> {
    store
        .get(item)
        .unwrap()
        .map(|v| String::from_utf8(v.expose().to_vec()).unwrap())
}

/// set, get, replace, list and delete, then a second `open` that must see
/// what the first wrote.
fn exercise(backend: Backend, opts: &StoreOptions) {
    let store = open(backend, opts);
    assert_eq!(store.backend(), backend);
    assert_eq!(
        store.list().unwrap(),
        Vec::<String>::new(),
        "a fresh service is empty"
    );
    assert_eq!(read(&*store, "key/a"), None);

    store.set("key/a", &value("first")).unwrap();
    store.set("session/b", &value("{\"json\": true}")).unwrap();
    assert_eq!(read(&*store, "key/a").as_deref(), Some("first"));
    store.set("key/a", &value("second")).unwrap();
    assert_eq!(read(&*store, "key/a").as_deref(), Some("second"));
    assert_eq!(store.list().unwrap(), ["key/a", "session/b"]);

    let again = open(backend, opts);
    assert_eq!(read(&*again, "key/a").as_deref(), Some("second"));
    assert_eq!(
        read(&*again, "session/b").as_deref(),
        Some("{\"json\": true}")
    );
    assert_eq!(again.list().unwrap(), ["key/a", "session/b"]);

    assert!(again.delete("session/b").unwrap());
    assert!(!again.delete("session/b").unwrap());
    assert_eq!(read(&*store, "session/b"), None);
    assert_eq!(store.list().unwrap(), ["key/a"]);
    assert!(matches!(
        store.set("__index__", &value("x")),
        Err(StoreError::InvalidItem { .. })
    ));

    let key = LongTermKey {
        access_key_id: "AKIAIOSFODNN7EXAMPLE".to_string(),
        secret_access_key: SecretAccessKey::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    };
    store::set_key(&*store, "prod", &key).unwrap();
    assert_eq!(store::get_key(&*again, "prod").unwrap(), Some(key));
    assert_eq!(store::key_profiles(&*again).unwrap(), ["a", "prod"]);
}

/// Runs this test binary again, only `test`, with `CHILD` set to `mode`.
fn child(test: &str, mode: &str, env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, mode);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running the test binary again");
    assert!(
        out.status.success(),
        "child {test} ({mode}) failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Object paths of Secret Service items with these attributes, asked of
/// gnome-keyring over D-Bus by another process.
fn secret_service_items(service: &str, item: &str) -> usize {
    let out = Command::new("dbus-send")
        .args([
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.SearchItems",
            &format!("dict:string:string:service,{service},username,{item}"),
        ])
        .output()
        .expect("dbus-send");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .matches("object path")
        .count()
}

#[test]
fn keychain_round_trip_through_the_secret_service() {
    rig_dir();
    let service = unique("keychain");
    exercise(Backend::Keychain, &options(&service));
    assert_eq!(
        secret_service_items(&service, "key/a"),
        1,
        "gnome-keyring has the item"
    );
    assert_eq!(
        secret_service_items(&service, "session/b"),
        0,
        "deleted for real"
    );
    assert_eq!(
        secret_service_items(&service, "__index__"),
        1,
        "the index is an item too"
    );
}

#[test]
fn keychain_items_are_read_back_by_another_process() {
    if let Ok(mode) = std::env::var(CHILD) {
        let (service, expected) = mode.split_once('=').expect("service=value");
        let store = open(Backend::Keychain, &options(service));
        assert_eq!(read(&*store, "key/shared").as_deref(), Some(expected));
        assert_eq!(store.list().unwrap(), ["key/shared"]);
        store.set("key/from-child", &value("hello parent")).unwrap();
        return;
    }
    rig_dir();
    let service = unique("keychain-proc");
    let store = open(Backend::Keychain, &options(&service));
    store.set("key/shared", &value("across processes")).unwrap();
    child(
        "keychain_items_are_read_back_by_another_process",
        &format!("{service}=across processes"),
        &[],
    );
    assert_eq!(
        read(&*store, "key/from-child").as_deref(),
        Some("hello parent")
    );
    assert_eq!(store.list().unwrap(), ["key/from-child", "key/shared"]);
}

#[test]
fn keychain_tolerates_a_missing_index() {
    rig_dir();
    let service = unique("keychain-noindex");
    let store = open(Backend::Keychain, &options(&service));
    store.set("key/a", &value("v")).unwrap();
    // Someone removed the index behind vault's back (Seahorse, secret-tool).
    let index = keyring::Entry::new_with_credential(Box::new(
        keyring::secret_service::SsCredential::new_with_target(None, &service, "__index__")
            .unwrap(),
    ));
    index.delete_credential().unwrap();
    let store = open(Backend::Keychain, &options(&service));
    assert_eq!(store.list().unwrap(), Vec::<String>::new());
    assert_eq!(
        read(&*store, "key/a").as_deref(),
        Some("v"),
        "the item itself is intact"
    );
    store.set("key/b", &value("w")).unwrap();
    assert_eq!(store.list().unwrap(), ["key/b"]);
    // A damaged index is replaced on the next write rather than blocking it.
    index.set_secret(b"not json").unwrap();
    assert!(matches!(store.list(), Err(StoreError::Corrupt { .. })));
    store.set("key/a", &value("v2")).unwrap();
    assert_eq!(store.list().unwrap(), ["key/a"]);
    // So is a delete, even of nothing: `vault remove` is the way out.
    index.set_secret(b"[1, 2").unwrap();
    assert!(!store.delete("key/none").unwrap());
    assert_eq!(store.list().unwrap(), Vec::<String>::new());
    assert_eq!(read(&*store, "key/a").as_deref(), Some("v2"));
}

#[test]
fn keychain_without_a_secret_service_says_what_to_start() {
    if std::env::var_os(CHILD).is_some() {
        let err = store::open(Backend::Keychain, &options("vault-test-nobus"), &NoPrompt)
            .err()
            .expect("no Secret Service to open");
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        let hint = err.hint().unwrap_or_default();
        assert!(
            hint.contains("gnome-keyring-daemon") && hint.contains("--backend file"),
            "{hint}"
        );
        println!("error: {err}\nhint: {hint}");
        return;
    }
    let dir = rig_dir();
    // A bus address where nothing listens: no D-Bus, so no Secret Service.
    let nowhere = format!("unix:path={}/no-such-bus", dir.display());
    child(
        "keychain_without_a_secret_service_says_what_to_start",
        "no-bus",
        &[("DBUS_SESSION_BUS_ADDRESS", &nowhere)],
    );
}

#[test]
fn keyutils_round_trip_through_the_kernel_keyring() {
    rig_dir();
    let service = unique("keyutils");
    exercise(Backend::Keyutils, &options(&service));
    // keyctl, another process in the same session keyring, finds the key.
    let description = format!("keyring-rs:key/a@{service}");
    let found = Command::new("keyctl")
        .args(["search", "@s", "user", &description])
        .output()
        .expect("keyctl");
    assert!(
        found.status.success(),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );
    let id = String::from_utf8_lossy(&found.stdout).trim().to_string();
    let printed = Command::new("keyctl")
        .args(["print", &id])
        .output()
        .expect("keyctl");
    assert_eq!(String::from_utf8_lossy(&printed.stdout).trim(), "second");
    let gone = Command::new("keyctl")
        .args([
            "search",
            "@s",
            "user",
            &format!("keyring-rs:session/b@{service}"),
        ])
        .output()
        .expect("keyctl");
    assert!(
        !gone.status.success(),
        "a deleted key is gone from the kernel"
    );
}

/// `keyctl ARGS`: (status ok, trimmed stdout, stderr).
fn keyctl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("keyctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run keyctl ({e}): apt-get install keyutils"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// The key lives in the session keyring only: not in the user's
/// persistent keyring (which outlives the session), nor in the user and
/// user-session keyrings (which every process of the user reaches).
#[test]
fn keyutils_keys_stay_out_of_the_persistent_keyring() {
    rig_dir();
    let service = unique("keyutils-persist");
    let store = open(Backend::Keyutils, &options(&service));
    store.set("key/a", &value("v")).unwrap();
    let description = format!("keyring-rs:key/a@{service}");
    let (ok, _, err) = keyctl(&["search", "@s", "user", &description]);
    assert!(ok, "the key is not in the session keyring: {err}");
    // get_persistent links the persistent keyring into the keyring it is
    // given: a throwaway one, so the session keyring stays as it was.
    let (ok, scratch, err) = keyctl(&["newring", &format!("{service}-scratch"), "@s"]);
    assert!(ok, "keyctl newring: {err}");
    let (ok, persistent, err) = keyctl(&["get_persistent", &scratch]);
    assert!(
        ok,
        "keyctl get_persistent: {err}: this kernel has no persistent keyrings \
         (CONFIG_PERSISTENT_KEYRINGS), so this test cannot check that none holds the key; \
         run the tests on a kernel that has them (Debian's does)"
    );
    for keyring in [persistent.as_str(), "@u", "@us"] {
        let (found, _, _) = keyctl(&["search", keyring, "user", &description]);
        assert!(!found, "the key was linked into {keyring}");
    }
    let (ok, _, err) = keyctl(&["unlink", &scratch, "@s"]);
    assert!(ok, "keyctl unlink: {err}");
    store.delete("key/a").unwrap();
}

#[test]
fn keyutils_items_are_read_back_by_another_process() {
    if let Ok(service) = std::env::var(CHILD) {
        let store = open(Backend::Keyutils, &options(&service));
        assert_eq!(
            read(&*store, "key/shared").as_deref(),
            Some("in the session")
        );
        assert_eq!(store.list().unwrap(), ["key/shared"]);
        return;
    }
    rig_dir();
    let service = unique("keyutils-proc");
    let store = open(Backend::Keyutils, &options(&service));
    store.set("key/shared", &value("in the session")).unwrap();
    child(
        "keyutils_items_are_read_back_by_another_process",
        &service,
        &[],
    );
}

/// Argon2id at its cheapest: the file store records its cost in every
/// file, so `store::open` then opens this store as any other.
const CHEAP: KdfParams = KdfParams {
    memory_kib: 8,
    passes: 1,
    lanes: 1,
};

#[test]
fn file_round_trip_through_open() {
    rig_dir();
    let mut opts = options(&unique("file"));
    let passphrase = Passphrase::new("correct horse battery staple");
    FileStore::open(&opts.file_dir, &passphrase, CHEAP).unwrap();
    opts.passphrase_env = Some(passphrase);
    exercise(Backend::File, &opts);

    opts.passphrase_env = Some(Passphrase::new("wrong"));
    let err = store::open(Backend::File, &opts, &NoPrompt)
        .err()
        .expect("a wrong passphrase");
    assert!(matches!(err, StoreError::WrongPassphrase { .. }), "{err:?}");
    assert!(err.hint().unwrap().contains("VAULT_FILE_PASSPHRASE"));
}

#[test]
fn file_store_created_by_open_uses_the_default_cost() {
    rig_dir();
    let mut opts = options(&unique("file-default"));
    opts.passphrase_env = Some(Passphrase::new("from the environment"));
    let store = open(Backend::File, &opts);
    store.set("key/a", &value("v")).unwrap();
    let check = std::fs::read(opts.file_dir.join(CHECK_FILE)).unwrap();
    assert_eq!(&check[0..4], b"VLTF");
    assert_eq!(&check[6..10], &KdfParams::DEFAULT.memory_kib.to_be_bytes());
    assert_eq!(&check[10..14], &KdfParams::DEFAULT.passes.to_be_bytes());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&opts.file_dir), 0o700);
        assert_eq!(mode(&opts.file_dir.join(CHECK_FILE)), 0o600);
    }
}
