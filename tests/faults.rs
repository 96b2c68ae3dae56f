//! Fault injection through the rig, each fault through the real `vault`
//! binary: `hw/rig -- cargo test -p vault --test faults`.
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
//! Each fault is a row of `CASES`, so adding one is adding a row; `run`
//! runs the rows and fails naming every row that failed and why, so one
//! broken row hides no other. pcscd stopped is a test of its own: vault
//! runs there from a script inside the nested rig, not from here.
//!
//! Rows that use a YubiKey run one at a time (see `cli_hw.rs`: finding a
//! key by serial selects applets on every key present).
//!
//! Outside the rig every test fails with instructions, never passes.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use support::proxy::{self, Answer, Proxy};
use support::token::{self, envelope, envelope_path, stored, Secrets};
use support::vyk::TestKey;
use support::{
    session_token_requests, Cmd, IamUser, JsonCreds, Key, Run, StsRequest, TestEnv, VAULT,
};

// ------------------------------------------------------------------ the table

/// One fault: the world it meets, the fault, the vault run under it, how
/// that run must end, what it must leave as it was, and what must hold
/// afterwards. Every `{name}` in `command` and `says` is a value of the
/// row's world (`World::expand`), known only once the rig has made it.
struct Case {
    name: &'static str,
    given: Given,
    fault: Fault,
    /// vault's command line as a shell reads it: `NAME=value` words first
    /// set the environment (beyond what `given` and `fault` set), the rest
    /// are vault's arguments.
    command: &'static str,
    exit: i32,
    /// Phrases stderr must hold.
    says: &'static [&'static str],
    /// What the run must leave byte for byte as it was.
    keeps: &'static [Kept],
    /// The row's own checks after `run_row`'s, usually ending with the
    /// fault gone and the credential proven to still work.
    then: fn(&mut World, &Run),
}

const EXEC: &str = "exec p --json";
/// The code given up front, so the row knows which code STS saw (or not).
const EXEC_CODE: &str = "exec p --json --mfa-token {code}";
const ENROLL: &str = "hw enroll --serial {serial} --profile p";
const ENROLL_TOTP: &str =
    "hw enroll --serial {serial} --profile p --totp-secret-file {seed_file} --mfa-serial {mfa}";
/// Enrollment writes the config last (mfa_serial), so a fault there meets
/// an enrollment that has done everything else.
const ENROLL_WRITING_CONFIG: &str = "hw enroll --serial {serial} --profile p \
     --keep-keychain-copy --totp-secret-file {seed_file} --mfa-serial {mfa}";
/// A made-up key: if the failed add stored it after all, no STS takes it.
const FILE_ADD: &str = "AWS_ACCESS_KEY_ID={new_id} AWS_SECRET_ACCESS_KEY={new_secret} \
     --backend file add p --env --force";

const CASES: &[Case] = &[
    // ------------------------------------------------- the YubiKey pulled
    Case {
        name: "card_removed_during_ecdh",
        given: Given::Enrolled,
        fault: Fault::CardRemovedOn("87"),
        command: EXEC,
        exit: 1,
        says: &[
            "cannot unwrap the key of profile \"p\"",
            "YubiKey {serial} was removed; insert it and try again",
        ],
        keeps: &[Kept::StoredKey, Kept::Envelope, Kept::TokensJson],
        then: |w, _| {
            w.fix();
            w.exec();
            // Accepted: the unwrapped key is the stored one, secret included.
            w.sessions(1);
            w.still(Kept::Envelope);
        },
    },
    Case {
        name: "card_removed_during_oath_calculate",
        given: Given::EnrolledTotp,
        // The unwrap (ECDH) succeeds; the key goes at the code's CALCULATE.
        fault: Fault::CardRemovedOn("A2"),
        command: EXEC,
        exit: 1,
        says: &[
            "no MFA code for {mfa}",
            "YubiKey (serial {serial}) was removed",
            "--mfa-token",
        ],
        keeps: &[
            Kept::StoredKey,
            Kept::Envelope,
            Kept::TokensJson,
            Kept::Config,
        ],
        then: |w, _| {
            assert!(
                w.key()
                    .apdu_log()
                    .iter()
                    .any(|e| e["kind"] == "apdu" && e["ins"] == "87" && e["sw"] == "9000"),
                "the unwrap came first"
            );
            // No code was read, so none counts as used: the next run
            // neither waits for the next time step nor fails.
            w.fix();
            let run = w.vault(EXEC).run().success();
            JsonCreds::parse(&run.stdout);
            assert!(!run.stderr.contains("already used"), "{}", run.stderr);
            // The card's code is the device's RFC 6238 code, and STS took it.
            sent_a_current_code(&w.sessions(1)[0], &w.user);
            w.still(Kept::Envelope);
        },
    },
    // --------------------------------------------------------- STS faults
    Case {
        name: "sts_connection_refused",
        given: Given::KeychainMfa,
        fault: Fault::StsRefuses,
        command: EXEC_CODE,
        exit: 1,
        says: &[
            "cannot reach STS at {url} for GetSessionToken",
            "Connection refused",
            "hint: check your network",
        ],
        keeps: &[Kept::StoredKey],
        then: |w, run| {
            assert!(run.elapsed < Duration::from_secs(15), "{:?}", run.elapsed);
            // The code never left this machine: it is still good.
            w.fix();
            let run = w.vault(EXEC_CODE).run().success();
            assert!(JsonCreds::parse(&run.stdout).session_token.is_some());
            let gst = w.sessions(1);
            assert_eq!(gst[0].param("TokenCode"), Some(w.code.as_str()));
            sent_a_current_code(&gst[0], &w.user);
            w.still(Kept::StoredKey);
        },
    },
    Case {
        name: "sts_http_500",
        given: Given::KeychainMfa,
        fault: Fault::Sts(
            || Answer::fault(500, "InternalFailure", "injected by the test proxy"),
            Lasting::UntilFixed,
        ),
        command: EXEC_CODE,
        exit: 1,
        says: &[
            "STS GetSessionToken failed: InternalFailure: injected by the test proxy",
            "hint: STS had an internal error",
        ],
        keeps: &[Kept::StoredKey],
        then: |w, _| {
            // The SDK retried: three attempts in all, each with the same code.
            let seen = w.proxy().seen_action("GetSessionToken");
            assert_eq!(seen.len(), 3, "{seen:?}");
            assert!(seen
                .iter()
                .all(|s| s.token_code.as_deref() == Some(w.code.as_str())));
            // STS saw that code: vault never sends it again, and says so.
            w.fix();
            w.code_is_spent();
            assert_eq!(w.proxy().seen_action("GetSessionToken").len(), 3);
            w.next_code_works();
        },
    },
    Case {
        name: "sts_throttled_then_answered",
        given: Given::Keychain,
        fault: Fault::Sts(throttled, Lasting::Attempts(2)),
        command: EXEC,
        exit: 0,
        says: &[],
        keeps: &[Kept::StoredKey],
        then: |w, run| {
            JsonCreds::parse(&run.stdout);
            let seen = w.proxy().seen_action("GetSessionToken");
            assert_eq!(seen.len(), 3, "two throttled, the third passed: {seen:?}");
            w.sessions(1);
            eprintln!(
                "[faults] two throttled attempts and a good one took {:.1?}",
                run.elapsed
            );
        },
    },
    Case {
        name: "sts_throttled_always",
        given: Given::Keychain,
        fault: Fault::Sts(throttled, Lasting::UntilFixed),
        command: EXEC,
        exit: 1,
        says: &[
            "STS GetSessionToken failed: Throttling: Rate exceeded",
            "hint: STS is throttling",
        ],
        keeps: &[Kept::StoredKey],
        then: |w, run| {
            // vault gives up after the SDK's retries.
            assert_eq!(w.proxy().seen_action("GetSessionToken").len(), 3);
            assert!(run.elapsed < Duration::from_secs(20), "{:?}", run.elapsed);
        },
    },
    Case {
        name: "sts_hang",
        given: Given::KeychainMfa,
        fault: Fault::Sts(|| Answer::Hang, Lasting::UntilFixed),
        command: "VAULT_STS_TIMEOUT=3s exec p --json --mfa-token {code}",
        exit: 1,
        says: &[
            "cannot reach STS at {url} for GetSessionToken",
            "timed out after 3 s",
            "VAULT_STS_TIMEOUT",
        ],
        keeps: &[Kept::StoredKey],
        then: |w, run| {
            assert!(
                run.elapsed >= Duration::from_secs(3) && run.elapsed < Duration::from_secs(10),
                "gave up after {:?}",
                run.elapsed
            );
            assert!(!w.proxy().seen_action("GetSessionToken").is_empty());
            // The request (and its code) reached the other end, which may
            // have spent it: vault counts it as used rather than risk
            // sending it twice.
            w.fix();
            w.code_is_spent();
            w.next_code_works();
        },
    },
    // ------------------------------------------------------- damaged data
    Case {
        name: "corrupted_cache_entry",
        given: Given::Keychain,
        fault: Fault::DamagedCacheEntry,
        command: EXEC,
        // A cache holds nothing that cannot be fetched again: vault warns
        // (once), ignores the entry and gets a new session, which replaces it.
        exit: 0,
        says: &[
            "vault: [warn] ignoring a damaged session cache entry",
            "getting a new session",
        ],
        keeps: &[Kept::StoredKey],
        then: |w, run| {
            let second = JsonCreds::parse(&run.stdout);
            let warnings: Vec<&str> = run.stderr.lines().collect();
            assert_eq!(warnings.len(), 1, "{}", run.stderr);
            assert!(
                warnings[0].starts_with("vault: [warn] ignoring a damaged session cache entry")
                    && warnings[0].ends_with("getting a new session"),
                "{}",
                run.stderr
            );
            w.sessions(2);
            let (third, run) = w.t.exec_json("p", &[]);
            assert_eq!(third, second);
            assert_eq!(run.stderr, "");
            w.sessions(2);
            w.still(Kept::StoredKey);
        },
    },
    Case {
        name: "corrupted_envelope_header",
        given: Given::Enrolled,
        // Not an envelope at all.
        fault: Fault::DamagedEnvelope(|e| e[0] ^= 0xFF),
        command: EXEC,
        exit: 1,
        says: &[
            "the envelope of profile \"p\"",
            "70.envelope) is damaged",
            "does not start with \"VLTE\"",
            "vault left the file as it is",
            "vault remove p",
        ],
        // Never "repaired" by deleting or rewriting it.
        keeps: &[Kept::StoredKey, Kept::Envelope],
        then: damaged_envelope_still_listed_then_works,
    },
    Case {
        name: "corrupted_envelope_tag",
        given: Given::Enrolled,
        // An envelope that does not authenticate once the card has done
        // its part.
        fault: Fault::DamagedEnvelope(|e| *e.last_mut().unwrap() ^= 0x01),
        command: EXEC,
        exit: 1,
        says: &[
            "cannot unwrap the key of profile \"p\"",
            "failed authentication: it was altered, damaged, or copied from another item",
            "vault left the file as it is",
            "vault remove p",
        ],
        keeps: &[Kept::StoredKey, Kept::Envelope],
        then: damaged_envelope_still_listed_then_works,
    },
    Case {
        name: "source_profile_loop_from_a",
        given: Given::Keychain,
        fault: Fault::SourceProfileLoop,
        command: "exec a --json",
        exit: 1,
        says: &[
            "source_profile loop in ~/.aws/config: a → b → a",
            "one profile in the loop must use its own stored keys",
        ],
        keeps: &[Kept::StoredKey, Kept::Config],
        then: source_profile_loop_broken_then_works,
    },
    Case {
        name: "source_profile_loop_from_b",
        given: Given::Keychain,
        fault: Fault::SourceProfileLoop,
        command: "exec b --json",
        exit: 1,
        says: &[
            "source_profile loop in ~/.aws/config: b → a → b",
            "one profile in the loop must use its own stored keys",
        ],
        keeps: &[Kept::StoredKey, Kept::Config],
        then: source_profile_loop_broken_then_works,
    },
    // ------------------------------------------- read-only, full folders
    Case {
        name: "lock_folder_read_only",
        given: Given::Keychain,
        fault: Fault::ReadOnly(Folder::Locks),
        command: EXEC,
        exit: 1,
        says: &[
            "cannot take the session lock {locks}",
            "Read-only file system",
            "hint:",
            "XDG_RUNTIME_DIR",
        ],
        keeps: &[Kept::StoredKey],
        then: |w, _| {
            w.t.exec_json("p", &[]);
            w.sessions(1);
            w.still(Kept::StoredKey);
        },
    },
    Case {
        name: "file_store_folder_read_only",
        given: Given::FileStore,
        fault: Fault::ReadOnly(Folder::Store),
        command: FILE_ADD,
        exit: 1,
        says: &["{store}", "Read-only file system"],
        keeps: &[Kept::StoreFiles],
        then: file_store_key_still_works,
    },
    Case {
        name: "file_store_folder_full",
        given: Given::FileStore,
        // The write fails half way: the old file stays, and no temporary
        // is left behind in the tmpfs.
        fault: Fault::Full(Folder::Data, Folder::Store),
        command: FILE_ADD,
        exit: 1,
        says: &["{store}", "No space left on device"],
        keeps: &[Kept::StoreFiles],
        then: file_store_key_still_works,
    },
    Case {
        name: "config_folder_read_only",
        given: Given::KeychainAndKey,
        fault: Fault::ReadOnly(Folder::Aws),
        command: ENROLL_WRITING_CONFIG,
        exit: 1,
        says: &[
            "mfa_serial could not be set in profile \"p\"",
            "cannot write ~/.aws/config",
            "Read-only file system",
            "add `mfa_serial = {mfa}` to [profile p]",
        ],
        keeps: &[Kept::StoredKey, Kept::Config],
        then: enrollment_writing_config_completes,
    },
    Case {
        name: "config_folder_full",
        given: Given::KeychainAndKey,
        fault: Fault::Full(Folder::Aws, Folder::Aws),
        command: ENROLL_WRITING_CONFIG,
        exit: 1,
        says: &[
            "mfa_serial could not be set in profile \"p\"",
            "cannot write ~/.aws/config",
            "No space left on device",
            "add `mfa_serial = {mfa}` to [profile p]",
        ],
        keeps: &[Kept::StoredKey, Kept::Config],
        then: enrollment_writing_config_completes,
    },
    Case {
        name: "envelopes_folder_read_only",
        given: Given::KeychainAndKey,
        fault: Fault::ReadOnly(Folder::Envelopes),
        command: ENROLL,
        exit: 1,
        says: &["cannot write {envelope}", "Read-only file system"],
        // The clear copy goes only once the envelope is written.
        keeps: &[Kept::StoredKey, Kept::Envelope],
        then: keychain_key_works_then_enrollment_completes,
    },
    Case {
        name: "envelopes_folder_full",
        given: Given::KeychainAndKey,
        fault: Fault::Full(Folder::Data, Folder::Data),
        command: ENROLL,
        exit: 1,
        says: &["cannot write {envelope}", "No space left on device"],
        keeps: &[Kept::StoredKey, Kept::Envelope],
        then: keychain_key_works_then_enrollment_completes,
    },
    Case {
        name: "tokens_json_folder_read_only",
        given: Given::KeychainAndKey,
        fault: Fault::ReadOnly(Folder::TokensJson),
        command: ENROLL,
        exit: 1,
        says: &[
            "cannot write {tokens}",
            "Read-only file system",
            "nothing was changed on the YubiKey",
        ],
        keeps: &[Kept::StoredKey, Kept::TokensJson, Kept::Envelope],
        then: card_untouched_then_enrollment_completes,
    },
    Case {
        name: "tokens_json_folder_full",
        given: Given::KeychainAndKey,
        fault: Fault::Full(Folder::TokensJson, Folder::TokensJson),
        command: ENROLL,
        exit: 1,
        says: &[
            "cannot write {tokens}",
            "No space left on device",
            "nothing was changed on the YubiKey",
        ],
        keeps: &[Kept::StoredKey, Kept::TokensJson, Kept::Envelope],
        then: card_untouched_then_enrollment_completes,
    },
];

fn throttled() -> Answer {
    Answer::fault(400, "Throttling", "Rate exceeded")
}

fn damaged_envelope_still_listed_then_works(w: &mut World, _: &Run) {
    // Listing still works, and says what is wrong.
    let list = w.t.vault(&["list"]).run().success().stdout;
    assert!(list.lines().any(|l| l.starts_with("p ")), "{list}");
    w.fix();
    w.exec();
    w.sessions(1);
    assert!(envelope(&w.t, "p") == w.sealed, "the envelope changed");
}

fn source_profile_loop_broken_then_works(w: &mut World, _: &Run) {
    // Everything else still works.
    w.t.vault(&["list"]).run().success();
    w.t.exec_json("p", &[]);
    w.still(Kept::StoredKey);

    // Broken: b from p's keys. Then a works too.
    w.fix();
    let (creds, _) = w.t.exec_json("a", &[]);
    assert!(creds.session_token.is_some());
    let (a, b) = (w.t.role_arn("a"), w.t.role_arn("b"));
    let (ar_a, ar_b) = (
        support::assume_role_requests(&a),
        support::assume_role_requests(&b),
    );
    assert_eq!((ar_a.len(), ar_b.len()), (1, 1));
    all_accepted(&ar_a);
    all_accepted(&ar_b);
    // b straight from p's long-term key (no MFA, so no MFA session first),
    // a with b's role session.
    assert_eq!(ar_b[0].key_id, w.user.key.id);
    assert!(ar_a[0].key_id.starts_with("ASIA"), "{:?}", ar_a[0]);
    w.still(Kept::StoredKey);
    // p's own exec above: its GetSessionToken session.
    w.sessions(1);
}

fn file_store_key_still_works(w: &mut World, _: &Run) {
    let run = w.vault("--backend file exec p --json").run().success();
    JsonCreds::parse(&run.stdout);
    w.sessions(1);
    assert!(session_token_requests(&w.new_key.id).is_empty());
}

fn enrollment_writing_config_completes(w: &mut World, _: &Run) {
    // Without the fault it completes, and the profile works with the card.
    w.vault(ENROLL_WRITING_CONFIG).run().success();
    let now = std::fs::read_to_string(&w.t.config).unwrap();
    assert!(now.contains(&w.expand("mfa_serial = {mfa}")), "{now}");
    w.exec();
    // The seed loaded into the card gives the device's RFC 6238 codes.
    sent_a_current_code(&w.sessions(1)[0], &w.user);
    w.still(Kept::StoredKey);
}

fn keychain_key_works_then_enrollment_completes(w: &mut World, _: &Run) {
    w.t.exec_json("p", &[]);
    w.sessions(1);
    w.vault(ENROLL).run().success();
    assert_eq!(stored(&w.t, "p"), None, "moved into the envelope");
    w.t.vault(&["clear"]).run().success();
    w.exec();
    w.sessions(2);
}

fn card_untouched_then_enrollment_completes(w: &mut World, run: &Run) {
    // Checked before the card is touched: not one APDU went to it.
    assert!(w.key().apdus().is_empty(), "{:?}", w.key().apdus());
    keychain_key_works_then_enrollment_completes(w, run);
    // The first slot vault picks: no key was left orphaned in another.
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(token::tokens_json_path(&w.t)).unwrap()).unwrap();
    assert_eq!(recorded["tokens"][0]["piv"]["slot"], 0x82, "{recorded:#}");
}

// ------------------------------------------------------ what rows are made of

/// The world before the fault: always `[profile p]` with the real key of
/// the test's IAM user `u`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Given {
    /// The key in the keychain.
    Keychain,
    /// The key in the keychain, and the user's MFA device as `mfa_serial`.
    KeychainMfa,
    /// The key in the keychain, and a YubiKey of the row's own, not yet
    /// enrolled. vault's folders are made, as any earlier run makes them,
    /// so a fault meets the file's write and not the folder's making.
    KeychainAndKey,
    /// The key moved into an envelope for a YubiKey of the row's own.
    Enrolled,
    /// The same, and the card holds the MFA device's seed.
    EnrolledTotp,
    /// The key in the file store.
    FileStore,
}

impl Given {
    fn has_key(self) -> bool {
        matches!(
            self,
            Given::KeychainAndKey | Given::Enrolled | Given::EnrolledTotp
        )
    }
}

#[derive(Clone, Copy)]
enum Fault {
    /// The YubiKey is pulled out when this instruction (hex) reaches it.
    CardRemovedOn(&'static str),
    /// STS at a port where nothing listens.
    StsRefuses,
    /// A proxy in front of the strict STS answers GetSessionToken so for
    /// as long as said, and passes everything else on.
    Sts(fn() -> Answer, Lasting),
    /// The session's entry in the test's kernel keyring, overwritten after
    /// a first exec.
    DamagedCacheEntry,
    DamagedEnvelope(fn(&mut [u8])),
    /// Profiles a and b, each the other's `source_profile`.
    SourceProfileLoop,
    ReadOnly(Folder),
    /// A small full tmpfs over the first folder; what is in the second is
    /// recorded in the namespace after vault, since the tmpfs goes with it.
    Full(Folder, Folder),
}

#[derive(Clone, Copy)]
enum Lasting {
    /// Until `World::fix`.
    UntilFixed,
    /// For this many requests.
    Attempts(usize),
}

#[derive(Clone, Copy)]
enum Folder {
    Locks,
    Store,
    Data,
    Aws,
    Envelopes,
    TokensJson,
}

impl Folder {
    fn path(self, t: &TestEnv) -> PathBuf {
        match self {
            Folder::Locks => t.dir.join("run/vault/locks"),
            Folder::Store => t.dir.join("data/vault/store"),
            Folder::Data => t.dir.join("data/vault"),
            Folder::Aws => t.home.join(".aws"),
            Folder::Envelopes => t.dir.join("data/vault/envelopes"),
            Folder::TokensJson => t.dir.join("config-home/vault"),
        }
    }
}

/// What a faulty run must leave byte for byte as it was (absent stays
/// absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kept {
    /// p's keychain item.
    StoredKey,
    Envelope,
    TokensJson,
    Config,
    /// Every file of the file store, with its SHA-256.
    StoreFiles,
}

impl Kept {
    fn read(self, w: &World) -> Option<Vec<u8>> {
        let t = &w.t;
        match self {
            Kept::StoredKey => stored(t, "p"),
            Kept::Envelope => std::fs::read(envelope_path(t, "p")).ok(),
            Kept::TokensJson => std::fs::read(token::tokens_json_path(t)).ok(),
            Kept::Config => std::fs::read(&t.config).ok(),
            Kept::StoreFiles => Some(files_now(&Folder::Store.path(t)).into_bytes()),
        }
    }
}

// ----------------------------------------------------------------- runner

/// Every row but those run by a test of their own.
#[test]
fn fault_table() {
    run(|c| !OWN_TEST.contains(&c.name));
}

/// docs/claims.md names `faults.rs::sts_hang` as a proof, and
/// claims_table.rs holds such a name to a `#[test]` of that name.
const OWN_TEST: &[&str] = &["sts_hang"];

#[test]
fn sts_hang() {
    run(|c| c.name == "sts_hang");
}

/// Runs the chosen rows side by side (a row mostly waits on vault, STS or
/// the card) and fails listing every row that failed, with why.
fn run(chosen: impl Fn(&Case) -> bool) {
    let mut names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CASES.len(), "two rows share a name");
    let rows: Vec<(usize, &Case)> = CASES
        .iter()
        .enumerate()
        .filter(|(_, c)| chosen(c))
        .collect();
    assert!(!rows.is_empty(), "no row chosen");
    // As many lanes as libtest would run tests. Rows with a YubiKey take
    // turns (`alone`), so they get a lane of their own and never hold up
    // the others; with one lane, all rows share it.
    let lanes: usize = std::env::var("RUST_TEST_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let (cards, others): (Vec<_>, Vec<_>) = rows
        .iter()
        .partition(|(_, c)| lanes > 1 && c.given.has_key());
    let failures = Mutex::new(Vec::new());
    let lane = |queue: &[&(usize, &Case)], next: &AtomicUsize| {
        while let Some(&&(i, case)) = queue.get(next.fetch_add(1, Ordering::SeqCst)) {
            if let Err(why) = run_named(case) {
                let mut failures = failures.lock().unwrap_or_else(PoisonError::into_inner);
                failures.push((i, format!("row {}: {why}", case.name)));
            }
        }
    };
    let (next_card, next_other) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        s.spawn(|| lane(&cards, &next_card));
        for _ in 1..lanes.max(2) {
            s.spawn(|| lane(&others, &next_other));
        }
    });
    let mut failures = failures
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n\n{}",
        failures.len(),
        rows.len(),
        failures
            .into_iter()
            .map(|(_, f)| f)
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

/// `run_row` in a thread of the row's name, so that its panic message
/// names the row too; `Err` holds the panic's message.
fn run_named(case: &Case) -> Result<(), String> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name(case.name.to_string())
            .spawn_scoped(s, || run_row(case))
            .expect("start a row's thread")
            .join()
    })
    .map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

/// What every row checks: the exit code and phrases, stdout empty on a
/// failure, what it keeps, no session from STS on a failure, and what the
/// fault itself must leave (the card gone, no leftover in a full folder);
/// then the row's own checks.
fn run_row(case: &Case) {
    let _alone = case.given.has_key().then(alone);
    let _t = Timer::start(case.name);
    let mut w = World::new(case);
    w.inject();
    (w.code, w.step) = current_code(&w.user);

    let (env, args) = w.command_line(case.command);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let seen = w.t.dir.join("files-when-full");
    let cmd = match case.fault {
        Fault::ReadOnly(dir) => in_mount_ns(&w.t, &read_only(&dir.path(&w.t)), "", &args),
        Fault::Full(over, record) => in_mount_ns(
            &w.t,
            &full(&w.t, &over.path(&w.t)),
            &record_files(&record.path(&w.t), &seen),
            &args,
        ),
        _ => w.t.vault(&args),
    };
    let mut cmd = w.cmd(cmd);
    if let Fault::Sts(..) = case.fault {
        // A hang must end in vault's own timeout, well before the harness's.
        cmd = cmd.deadline(Duration::from_secs(30));
    }
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    w.was = case.keeps.iter().map(|k| (*k, k.read(&w))).collect();
    let sessions = session_token_requests(&w.user.key.id).len();

    let run = cmd.run();
    let says: Vec<String> = case.says.iter().map(|p| w.expand(p)).collect();
    ended(
        &run,
        case.exit,
        &says.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    for k in case.keeps {
        w.still(*k);
    }
    if case.exit != 0 {
        assert_eq!(
            session_token_requests(&w.user.key.id).len(),
            sessions,
            "a failed run got a session from STS"
        );
    }
    match case.fault {
        Fault::CardRemovedOn(_) => {
            w.key().wait_present(false);
            assert!(w
                .key()
                .apdu_log()
                .iter()
                .any(|e| e["event"] == "removed-on-ins"));
        }
        Fault::Full(..) => {
            let left = std::fs::read_to_string(&seen).unwrap();
            assert_eq!(
                left, w.record_before,
                "what the full folder held after vault"
            );
        }
        _ => {}
    }
    (case.then)(&mut w, &run);
}

/// Asserts how a run ended: its exit code (a signal has none), nothing on
/// stdout if it failed, no panic, and every phrase in stderr.
fn ended(run: &Run, exit: i32, phrases: &[&str]) {
    eprintln!(
        "[faults] {}: exit {:?} after {:.1?}:\n{}",
        run.what, run.code, run.elapsed, run.stderr
    );
    assert_eq!(
        run.code,
        Some(exit),
        "{}: the exit code; stderr:\n{}",
        run.what,
        run.stderr
    );
    if exit != 0 {
        assert_eq!(run.stdout, "", "{}: stdout of a failure", run.what);
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    for p in phrases {
        assert!(
            run.stderr.contains(p),
            "{}: {p:?} not in stderr:\n{}",
            run.what,
            run.stderr
        );
    }
}

// ------------------------------------------------------------------ world

/// One row's world: the test's environment, its IAM user, and what the
/// fault and the checks need to remember.
struct World {
    t: TestEnv,
    given: Given,
    fault: Fault,
    user: IamUser,
    s: Secrets,
    key: Option<TestKey>,
    /// The file store's passphrase.
    pass: String,
    new_key: Key,
    seed_file: Option<String>,
    proxy: Option<Proxy>,
    /// Where vault is sent for STS instead of the rig's, while it is.
    url: Option<String>,
    fixed: Arc<AtomicBool>,
    /// The envelope before it was damaged.
    sealed: Vec<u8>,
    /// What a full fault's second folder held before vault ran.
    record_before: String,
    /// The device's code when the run started, and its time step.
    code: String,
    step: u64,
    was: Vec<(Kept, Option<Vec<u8>>)>,
}

impl World {
    fn new(case: &Case) -> World {
        let t = TestEnv::new(case.name);
        let user = t.user("u");
        let mut w = World {
            key: case.given.has_key().then(TestKey::start),
            given: case.given,
            fault: case.fault,
            s: Secrets::new(),
            pass: support::random(b"abcdefghijklmnopqrstuvwxyz", 20),
            new_key: Key::random(),
            seed_file: None,
            proxy: None,
            url: None,
            fixed: Arc::new(AtomicBool::new(false)),
            sealed: Vec::new(),
            record_before: String::new(),
            code: String::new(),
            step: 0,
            was: Vec::new(),
            user,
            t,
        };
        if case.given == Given::EnrolledTotp || case.command.contains("{seed_file}") {
            w.seed_file = Some(w.t.seed_file(&w.user));
        }
        let mfa = match w.given {
            Given::KeychainMfa => format!("mfa_serial = {}\n", w.user.mfa_serial),
            _ => String::new(),
        };
        w.t.write_config(&format!("[profile p]\nregion = us-east-1\n{mfa}"));
        match w.given {
            Given::FileStore => {
                w.vault("--backend file add p --env")
                    .env("AWS_ACCESS_KEY_ID", &w.user.key.id)
                    .env("AWS_SECRET_ACCESS_KEY", &w.user.key.secret)
                    .run()
                    .success();
                assert!(!files_now(&Folder::Store.path(&w.t)).is_empty());
            }
            _ => w.t.add("p", &w.user.key),
        }
        match w.given {
            Given::KeychainAndKey => {
                for dir in [Folder::Envelopes, Folder::TokensJson] {
                    std::fs::create_dir_all(dir.path(&w.t)).unwrap();
                }
            }
            Given::Enrolled => {
                w.vault(ENROLL).run().success();
            }
            Given::EnrolledTotp => {
                w.vault(ENROLL_TOTP).run().success();
            }
            _ => {}
        }
        w
    }

    fn inject(&mut self) {
        match self.fault {
            Fault::CardRemovedOn(ins) => {
                self.key().ctl(&format!("remove-on {ins}"));
            }
            Fault::StsRefuses => self.url = Some(proxy::closed_port_url()),
            Fault::Sts(answer, lasting) => {
                let fixed = self.fixed.clone();
                let p = proxy::start(&proxy::moto_url(), move |r| {
                    let faulty = match lasting {
                        Lasting::UntilFixed => !fixed.load(Ordering::SeqCst),
                        Lasting::Attempts(n) => r.nth < n,
                    };
                    if r.action == "GetSessionToken" && faulty {
                        answer()
                    } else {
                        Answer::Forward
                    }
                });
                self.url = Some(p.url.clone());
                self.proxy = Some(p);
            }
            Fault::DamagedCacheEntry => {
                self.t.exec_json("p", &[]);
                self.sessions(1);
                let listing = self.t.cmd("keyctl", &["list", "@s"]).run().success().stdout;
                let keys: Vec<&str> = listing
                    .lines()
                    .filter(|l| l.contains("vault:session:"))
                    .map(|l| l.split(':').next().unwrap().trim())
                    .collect();
                assert_eq!(keys.len(), 1, "{listing}");
                self.t
                    .cmd("keyctl", &["update", keys[0], "{not a session\u{1}\u{2}"])
                    .run()
                    .success();
            }
            Fault::DamagedEnvelope(damage) => {
                self.sealed = envelope(&self.t, "p");
                let mut damaged = self.sealed.clone();
                damage(&mut damaged);
                std::fs::write(envelope_path(&self.t, "p"), damaged).unwrap();
            }
            Fault::SourceProfileLoop => self.t.write_config(&self.loop_config()),
            Fault::ReadOnly(dir) => std::fs::create_dir_all(dir.path(&self.t)).unwrap(),
            Fault::Full(over, record) => {
                std::fs::create_dir_all(over.path(&self.t)).unwrap();
                self.record_before = files_now(&record.path(&self.t));
            }
        }
    }

    /// Ends the fault, where it outlives the run.
    fn fix(&mut self) {
        match self.fault {
            Fault::CardRemovedOn(_) => {
                self.key().ctl("insert");
                self.key().wait_present(true);
            }
            Fault::StsRefuses => self.url = None,
            Fault::Sts(..) => self.fixed.store(true, Ordering::SeqCst),
            Fault::DamagedEnvelope(_) => {
                std::fs::write(envelope_path(&self.t, "p"), &self.sealed).unwrap();
            }
            Fault::SourceProfileLoop => self.t.write_config(
                &self
                    .loop_config()
                    .replace("source_profile = a", "source_profile = p"),
            ),
            // vault mends the first itself; the others went with the namespace.
            Fault::DamagedCacheEntry | Fault::ReadOnly(_) | Fault::Full(..) => {}
        }
    }

    fn loop_config(&self) -> String {
        let (a, b) = (self.t.role_arn("a"), self.t.role_arn("b"));
        format!(
            "[profile p]\nregion = us-east-1\n\n\
             [profile a]\nsource_profile = b\nrole_arn = {a}\n\n\
             [profile b]\nsource_profile = a\nrole_arn = {b}\n"
        )
    }

    /// `text` with each `{name}` replaced by the world's value.
    fn expand(&self, text: &str) -> String {
        let path = |p: PathBuf| Some(p.display().to_string());
        let vars = [
            ("serial", self.key.as_ref().map(|k| k.serial.to_string())),
            ("mfa", Some(self.user.mfa_serial.clone())),
            ("code", Some(self.code.clone()).filter(|c| !c.is_empty())),
            ("url", self.url.clone()),
            ("seed_file", self.seed_file.clone()),
            ("new_id", Some(self.new_key.id.clone())),
            ("new_secret", Some(self.new_key.secret.clone())),
            ("locks", path(Folder::Locks.path(&self.t))),
            ("store", path(Folder::Store.path(&self.t))),
            ("envelope", path(envelope_path(&self.t, "p"))),
            ("tokens", path(token::tokens_json_path(&self.t))),
        ];
        let mut out = text.to_string();
        for (name, value) in vars {
            let placeholder = format!("{{{name}}}");
            if out.contains(&placeholder) {
                let value = value.unwrap_or_else(|| panic!("{text:?}: this world has no {name}"));
                out = out.replace(&placeholder, &value);
            }
        }
        assert!(!out.contains('{'), "{text:?}: an unknown {{name}}");
        out
    }

    /// `c` with what the world's vault needs: the PINs for its card, the
    /// file store's passphrase, the STS to use.
    fn cmd(&self, c: Cmd) -> Cmd {
        let c = match self.given {
            // Waiting 2 s for an absent key: a pulled key fails the run.
            Given::KeychainAndKey | Given::Enrolled | Given::EnrolledTotp => {
                token::hw_env(c, &self.s).env("VAULT_TOKEN_WAIT", "2s")
            }
            Given::FileStore => c.env("VAULT_FILE_PASSPHRASE", &self.pass),
            Given::Keychain | Given::KeychainMfa => c,
        };
        match &self.url {
            Some(url) => c.env("AWS_ENDPOINT_URL", url),
            None => c,
        }
    }

    /// vault with a `Case::command` line, in this world.
    fn vault(&self, line: &str) -> Cmd {
        let (env, args) = self.command_line(line);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        env.into_iter()
            .fold(self.cmd(self.t.vault(&args)), |c, (k, v)| c.env(k, v))
    }

    /// A `Case::command` line, expanded: (environment, arguments).
    fn command_line(&self, line: &str) -> (Vec<(String, String)>, Vec<String>) {
        let mut env = Vec::new();
        let mut args = Vec::new();
        for word in line.split_whitespace().map(|w| self.expand(w)) {
            match word.split_once('=') {
                Some((k, v))
                    if args.is_empty()
                        && k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') =>
                {
                    env.push((k.to_string(), v.to_string()));
                }
                _ => args.push(word),
            }
        }
        (env, args)
    }

    /// `vault exec p --json`, which must work.
    fn exec(&self) -> JsonCreds {
        JsonCreds::parse(&self.vault(EXEC).run().success().stdout)
    }

    fn key(&self) -> &TestKey {
        self.key.as_ref().expect("a row with a YubiKey")
    }

    fn proxy(&self) -> &Proxy {
        self.proxy.as_ref().expect("a row with an STS proxy")
    }

    /// The GetSessionToken requests signed with p's key: `n`, each
    /// accepted by the strict STS.
    fn sessions(&self, n: usize) -> Vec<StsRequest> {
        let gst = session_token_requests(&self.user.key.id);
        assert_eq!(gst.len(), n, "GetSessionToken requests with p's key");
        all_accepted(&gst);
        gst
    }

    /// `k` is as it was before the faulty run.
    fn still(&self, k: Kept) {
        let (_, was) = self
            .was
            .iter()
            .find(|(kept, _)| *kept == k)
            .unwrap_or_else(|| panic!("{k:?} is not in the row's keeps"));
        // Not assert_eq: the bytes are a credential.
        assert!(k.read(self) == *was, "{k:?} changed");
    }

    /// The run's code, sent again, is refused before it leaves.
    fn code_is_spent(&self) {
        let run = self.vault(EXEC_CODE).run();
        ended(&run, 1, &["was already used", "wait for the next code"]);
    }

    /// With the next step's code an exec works, that code is the one STS
    /// got and accepted, and the stored key is as it was.
    fn next_code_works(&self) {
        let next = self.user.code_at(self.step + 1);
        assert_ne!(
            next, self.code,
            "two steps with one code (one chance in a million): run again"
        );
        let run = self
            .vault(&format!("exec p --json --mfa-token {next}"))
            .run()
            .success();
        JsonCreds::parse(&run.stdout);
        let gst = self.sessions(1);
        assert_eq!(gst[0].param("TokenCode"), Some(next.as_str()));
        sent_a_current_code(&gst[0], &self.user);
        self.still(Kept::StoredKey);
    }
}

// ---------------------------------------------------------------- harness

static ONE_KEY_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Held by every row that uses a YubiKey, for its whole run.
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
