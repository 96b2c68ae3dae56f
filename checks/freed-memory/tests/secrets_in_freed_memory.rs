//! Secrets leave no copies in freed memory when vault formats them.
//!
//! Types that zeroize on drop protect only their own buffer. A
//! `serde_json::Value` holding a copy, a `format!` temporary, or a `Vec`
//! that grows by reallocation frees a copy of the secret unzeroized, where a
//! core file, a swap page or a later bug can find it. This test binary's
//! allocator looks into every block freed (and every block a growing
//! reallocation may leave behind) for two canary secrets while the
//! formatting code runs: none may hold them.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};
use vault_base::creds::{Credentials, LongTermKey, SessionCredentials};
use vault_base::secret::{SecretAccessKey, SessionToken};
use vault_profile::session::{CacheId, CachedSession, SessionKind};

const SECRET: &[u8] = b"zeroizeCanarySecretAccessKey/0123456789+ab";
const TOKEN: &[u8] = b"zeroizeCanarySessionToken/FwoGZXIvYXdzEJr//////////wEaDPQ=";

static ARMED: AtomicBool = AtomicBool::new(false);
static LEFT_BEHIND: AtomicUsize = AtomicUsize::new(0);

struct Inspecting;

#[allow(unsafe_code)]
fn holds_a_canary(ptr: *mut u8, len: usize) -> bool {
    // SAFETY: the allocator hands back a block it gave out with this size,
    // still allocated while we look.
    let block = unsafe { std::slice::from_raw_parts(ptr, len) };
    [SECRET, TOKEN]
        .iter()
        .any(|c| block.windows(c.len()).any(|w| w == *c))
}

fn inspect(ptr: *mut u8, len: usize) {
    if ARMED.load(Ordering::SeqCst) && holds_a_canary(ptr, len) {
        LEFT_BEHIND.fetch_add(1, Ordering::SeqCst);
    }
}

#[allow(unsafe_code)]
// SAFETY: every call is passed to the system allocator unchanged; the
// inspection only reads blocks that are still allocated.
unsafe impl GlobalAlloc for Inspecting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        inspect(ptr, layout.size());
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Growing may move the block and free the old one as it is.
        if new_size > layout.size() {
            inspect(ptr, layout.size());
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Inspecting = Inspecting;

fn text(canary: &[u8]) -> String {
    std::str::from_utf8(canary).unwrap().to_owned()
}

fn session() -> SessionCredentials {
    SessionCredentials {
        access_key_id: "ASIAZEROIZETEST00001".into(),
        secret_access_key: SecretAccessKey::new(text(SECRET)),
        session_token: SessionToken::new(text(TOKEN)),
        expiration: UNIX_EPOCH + Duration::from_secs(1_900_000_000),
    }
}

/// Runs `f` armed and returns how many freed blocks held a canary.
fn left_behind(f: impl FnOnce()) -> usize {
    LEFT_BEHIND.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    f();
    ARMED.store(false, Ordering::SeqCst);
    LEFT_BEHIND.load(Ordering::SeqCst)
}

/// What a case formats, with the secrets, and drops.
type Case<'a> = Box<dyn Fn() + 'a>;

// One test function: the allocator counts every thread's frees.
#[test]
fn formatting_and_encoding_secrets_frees_no_copy_of_them() {
    let creds = Credentials::Session(session());
    let long_term = Credentials::LongTerm(LongTermKey {
        access_key_id: "AKIAZEROIZETEST00001".into(),
        secret_access_key: SecretAccessKey::new(text(SECRET)),
    });
    let id = CacheId::new(&["zeroize", "test"]);
    let cached = CachedSession {
        kind: SessionKind::AssumeRole,
        profile: "p".into(),
        mfa_serial: None,
        creds: session(),
    };

    let cases: Vec<(&str, Case)> = vec![
        (
            "credential_process JSON",
            Box::new(|| {
                let out = vault_profile::output::credential_process_json(&creds);
                assert!(out.contains("\"AccessKeyId\""), "{}", out.len());
            }),
        ),
        (
            "credential_process JSON of a long-term key",
            Box::new(|| drop(vault_profile::output::credential_process_json(&long_term))),
        ),
        (
            "ECS credentials object",
            Box::new(|| drop(vault::ecs::credentials_json(&session()))),
        ),
        (
            "export --format env",
            Box::new(|| {
                drop(vault_profile::output::env_lines(
                    &creds,
                    Some("eu-west-1"),
                    "p",
                    false,
                ))
            }),
        ),
        (
            "export --format export-env",
            Box::new(|| {
                drop(vault_profile::output::env_lines(
                    &creds,
                    Some("eu-west-1"),
                    "p",
                    true,
                ))
            }),
        ),
        (
            "export --format ini",
            Box::new(|| {
                drop(vault_profile::output::ini_section(
                    &creds,
                    Some("eu-west-1"),
                    "p",
                ))
            }),
        ),
        (
            "session cache entry, encoded and decoded",
            Box::new(|| {
                let bytes = vault_profile::session::encode(&id, &cached);
                let back = vault_profile::session::decode(&id, bytes.expose()).unwrap();
                assert_eq!(back.creds, cached.creds);
            }),
        ),
        (
            "stored long-term key, encoded and decoded",
            Box::new(|| {
                let key = LongTermKey {
                    access_key_id: "AKIAZEROIZETEST00001".into(),
                    secret_access_key: SecretAccessKey::new(text(SECRET)),
                };
                let bytes = vault_secrets::store::encode_key(&key);
                let back = vault_secrets::store::decode_key("key/p", &bytes).unwrap();
                assert_eq!(back, key);
            }),
        ),
    ];
    // The canaries are found where they are (the check can fail).
    assert_eq!(
        left_behind(|| drop(text(SECRET))),
        1,
        "a plain String of the secret, freed"
    );
    let mut failures = Vec::new();
    for (what, f) in &cases {
        let n = left_behind(f);
        if n != 0 {
            failures.push(format!("{what}: {n} freed block(s) still held a secret"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
