//! 64 `vault exec P --json` at once on a cold cache of a token-backed
//! profile, as when a tool starts many AWS SDK clients with
//! `credential_process`; then the same with callers SIGKILLed at random
//! points, the lock holder among them:
//! `hw/rig -- cargo test -p vault --test concurrency_kills`.
//!
//! The profile's key is wrapped by a fresh virtual YubiKey of the test's
//! own (PIV slot, touch always) and its MFA seed is in the key's OATH applet
//! (touch required), so a cold session costs exactly two touches, counted
//! in the key's APDU log (`"touch":"given"`): one for the ECDH that unwraps
//! the long-term key, one for the OATH code. Every other caller waits on the
//! session's lock and reads the session the holder cached, touching nothing.
//!
//! The lock holder is found in `/proc/locks`: the process holding a `flock`
//! on a file in the world's lock folder (waiters are the `->` lines). With
//! `ctl touch after 800` the holder spends most of a second in each touch,
//! so it can be killed mid-touch.
//!
//! The profile's key is the real access key of an IAM user made for the
//! test, its MFA device that user's virtual device, whose seed goes into
//! the card: the rig's STS is strict, as AWS (hw/README.md, "The strict
//! STS"): it verifies each signature with the secret it issued, checks
//! each TokenCode against the device's seed (RFC 6238, within one step)
//! and takes each code once. Every round's callers reach it through a
//! front of the test's own (`front`, a rule of the test proxy
//! `support::proxy`, which forwards requests byte for byte) that holds
//! each GetSessionToken with an MFA code for `STS_LATENCY` before passing
//! it on, so a holder can be killed while its code is on its way to AWS
//! and vault does not have the session yet (the front still delivers it:
//! AWS spends the code). A code sent twice is refused by the STS, and
//! the test fails on any refused GetSessionToken; each code sent is also
//! checked here against the seed, for the moment the front saw it.
//!
//! Each kill round runs in a world of its own that shares the key's tokens,
//! envelope and config (a new kernel keyring and lock folder): a cold cache,
//! like one after `vault clear`. A new world has no MFA-use record, so
//! before each round the test waits for a TOTP step no earlier round sent
//! a code of (up to 30 s): AWS would refuse such a code, and vault could
//! not know. (`vault clear` keeps the record and waits itself; that wait is
//! tested in `cli_mfa`.)
//!
//! A kill round starts 64 callers again on a cold cache and SIGKILLs 16:
//! 15 random ones at random times in the first second after the go or after
//! the lock was first taken (starting, or queueing on the lock), and the
//! lock holder at a point that depends on the round: 300 ms into the touch
//! of its unwrap, 300 ms into the touch of its OATH code, or while its
//! GetSessionToken is at AWS (which has taken the code). Every survivor
//! must exit 0 with the same credentials, with at most one more STS call
//! (and two more touches) per killed holder, no MFA code sent twice, and
//! the world's keyring must hold complete sessions only (read with
//! `keyctl`, decoded, with their kernel expiry), which a later caller
//! reads without STS or the card.
//!
//! Each kill round prints its seed; `VAULT_TEST_KILL_SEEDS=1,2,3` replays
//! the same kill plans (the timing of the processes is the machine's).
//!
//! Outside the rig every test fails with instructions, never passes.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::proxy::{self, Answer, Proxy, Seen};
use support::token::{self, Secrets};
use support::vyk::TestKey;
use support::{
    assume_role_requests, session_token_requests, IamUser, JsonCreds, StsRequest, TestEnv, VAULT,
};

const N: usize = 64;
/// Callers killed per kill round (the holder kill included).
const KILLS: usize = 16;
/// How long a touch takes in the kill rounds.
const TOUCH_MS: u64 = 800;
/// How long the front holds a GetSessionToken with an MFA code.
const STS_LATENCY: Duration = Duration::from_millis(700);

// -------------------------------------------------------------- the front

/// In front of the rig's strict STS (`support::proxy`): every
/// GetSessionToken with an MFA code is held for `latency` (the window to
/// kill a holder whose code is on its way to AWS), then passed on; the
/// STS itself refuses a code used before. One per round, so each round's
/// requests are told apart.
fn front(upstream: &str, latency: Duration) -> Proxy {
    proxy::start(upstream, move |r| {
        match (r.action.as_str(), &r.serial_number, &r.token_code) {
            ("GetSessionToken", Some(_), Some(_)) => Answer::ForwardAfter(latency),
            _ => Answer::Forward,
        }
    })
}

/// The GetSessionToken requests with an MFA code that the front saw.
fn mfa_requests(front: &Proxy) -> Vec<Seen> {
    front
        .seen_action("GetSessionToken")
        .into_iter()
        .filter(|s| s.serial_number.is_some() && s.token_code.is_some())
        .collect()
}

/// The wall-clock TOTP step at which the front saw `s`.
fn step_seen(s: &Seen) -> u64 {
    let at = std::time::SystemTime::now() - s.at.elapsed();
    at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 30
}

/// Every code the front saw went to `user`'s device and was the device's
/// RFC 6238 code for a step within one of the moment it was sent (the
/// window AWS accepts), and no code was sent twice.
fn codes_were_current(front: &Proxy, user: &IamUser, what: &str) {
    let mut codes = BTreeSet::new();
    for s in mfa_requests(front) {
        let code = s.token_code.clone().unwrap();
        assert_eq!(
            s.serial_number_decoded().as_deref(),
            Some(user.mfa_serial.as_str()),
            "{what}: {s:?}"
        );
        let step = step_seen(&s);
        assert!(
            (step - 1..=step + 1).any(|st| user.code_at(st) == code),
            "{what}: TokenCode {code} is not {}'s RFC 6238 code within a step of when it was sent",
            user.mfa_serial
        );
        assert!(codes.insert(code.clone()), "{what}: code {code} sent twice");
    }
}

/// Every request the STS recorded in `reqs` was accepted (200): signed
/// with the stored key's real secret, with a code AWS took.
fn all_accepted(reqs: &[StsRequest], what: &str) {
    for r in reqs {
        assert_eq!(
            (r.status, r.error.as_deref()),
            (200, None),
            "{what}: the STS refused {} (TokenCode {:?}): {r:?}",
            r.action(),
            r.param("TokenCode")
        );
    }
}

/// Waits for the first TOTP step after every code `fronts` saw.
fn wait_for_a_fresh_step(fronts: &[&Proxy]) {
    let Some(last) = fronts
        .iter()
        .flat_map(|f| mfa_requests(f))
        .map(|s| step_seen(&s))
        .max()
    else {
        return;
    };
    let started = Instant::now();
    while support::now_secs() / 30 <= last {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "[concurrency_kills] waited {:?} for a TOTP step no earlier round used",
        started.elapsed()
    );
}

// ------------------------------------------------------------------ harness

/// A caller of our own, by PID: `setsid`, `keyctl session`, the gate's `sh`
/// and vault all exec in place, so the PID is vault's.
struct Caller {
    child: Child,
    out: std::thread::JoinHandle<Vec<u8>>,
    err: std::thread::JoinHandle<Vec<u8>>,
    killed: bool,
}

/// How a caller ended.
struct Ended {
    killed: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

impl Caller {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, if it is still running (our own child, by its PID).
    fn kill(&mut self) -> bool {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            self.killed = true;
        }
        self.killed
    }

    fn finish(mut self, deadline: Instant) -> Ended {
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "vault {} still running at the deadline; stderr so far:\n{}",
                    self.child.id(),
                    String::from_utf8_lossy(&self.err.join().unwrap_or_default())
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // A killed caller's pipes may be held by nothing else: vault starts
        // no children on this path. Its output is not looked at.
        let stdout = String::from_utf8_lossy(&self.out.join().unwrap_or_default()).into_owned();
        let stderr = String::from_utf8_lossy(&self.err.join().unwrap_or_default()).into_owned();
        // `keyctl session` announces the keyring it joined; that line is ours.
        let stderr = match stderr.strip_prefix("Joined session keyring: ") {
            Some(rest) => rest.split_once('\n').map(|(_, r)| r).unwrap_or("").into(),
            None => stderr,
        };
        Ended {
            killed: self.killed,
            code: status.code(),
            stdout,
            stderr,
        }
    }
}

/// `n` callers of `vault exec r --json` in `t`, each held at a gate until
/// the file `go` exists.
fn callers(t: &TestEnv, pin: &str, sts: &str, n: usize) -> (Vec<Caller>, PathBuf) {
    let go = t.dir.join("go");
    let gate = "until [ -e \"$1\" ]; do sleep 0.01; done; shift; exec \"$@\"";
    let go_arg = go.display().to_string();
    let list = (0..n)
        .map(|_| {
            let mut c = t
                .cmd(
                    "sh",
                    &["-c", gate, "sh", &go_arg, VAULT, "exec", "r", "--json"],
                )
                .env("VAULT_PIN", pin)
                .env("AWS_ENDPOINT_URL", sts)
                .cmd;
            let mut child = c
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {c:?}: {e}"));
            let out = drain(child.stdout.take().unwrap());
            let err = drain(child.stderr.take().unwrap());
            Caller {
                child,
                out,
                err,
                killed: false,
            }
        })
        .collect();
    // Every gate is up and polling before the go.
    std::thread::sleep(Duration::from_millis(300));
    (list, go)
}

/// The PIDs holding a `flock` on a file in `lock_dir`, and those blocked
/// waiting for one, from `/proc/locks`.
fn lock_state(lock_dir: &Path) -> (BTreeSet<u32>, BTreeSet<u32>) {
    let inodes: BTreeSet<u64> = std::fs::read_dir(lock_dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.ino())
                .collect()
        })
        .unwrap_or_default();
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let (mut holders, mut waiters) = (BTreeSet::new(), BTreeSet::new());
    for l in locks.lines() {
        // `1: FLOCK  ADVISORY  WRITE 1234 00:2f:5678 0 EOF`; a blocked
        // waiter has `->` after the number.
        let mut f: Vec<&str> = l.split_whitespace().collect();
        let waiting = f.get(1) == Some(&"->");
        if waiting {
            f.remove(1);
        }
        if f.get(1) != Some(&"FLOCK") {
            continue;
        }
        let (Some(pid), Some(inode)) = (
            f.get(4).and_then(|p| p.parse::<u32>().ok()),
            f.get(5)
                .and_then(|d| d.rsplit(':').next())
                .and_then(|i| i.parse::<u64>().ok()),
        ) else {
            continue;
        };
        if inodes.contains(&inode) {
            if waiting {
                waiters.insert(pid);
            } else {
                holders.insert(pid);
            }
        }
    }
    (holders, waiters)
}

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

fn touches(log: &[Value]) -> usize {
    log.iter().filter(|e| e["touch"] == "given").count()
}

fn apdus(log: &[Value]) -> usize {
    log.iter().filter(|e| e["kind"] == "apdu").count()
}

/// A world that shares `from`'s tokens, envelopes and config, with a cache,
/// lock folder and MFA-use record of its own.
fn sharing_tokens(from: &TestEnv, name: &str) -> TestEnv {
    let t = TestEnv::new(name);
    std::fs::copy(&from.config, &t.config).unwrap();
    for rel in ["config-home/vault", "data/vault/envelopes"] {
        let (src, dst) = (from.dir.join(rel), t.dir.join(rel));
        std::fs::create_dir_all(&dst).unwrap();
        for e in std::fs::read_dir(&src).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
    t
}

/// One entry of the world's session keyring, read with `keyctl`.
#[derive(Debug)]
struct KernelEntry {
    description: String,
    /// `/proc/keys`' timeout column: `perm` when the kernel will never expire it.
    timeout: String,
    payload: Vec<u8>,
}

fn keyring_entries(t: &TestEnv) -> Vec<KernelEntry> {
    // Inside the world's keyring (`@s`), so every key is possessed and readable.
    let script = "for k in $(keyctl rlist @s); do \
                    printf '%s\\t%s\\t' \"$(printf %08x \"$k\")\" \"$(keyctl rdescribe \"$k\")\"; \
                    keyctl pipe \"$k\" | base64 -w0; echo; done";
    let run = t.cmd("sh", &["-c", script]).run().success();
    let proc_keys = std::fs::read_to_string("/proc/keys").unwrap_or_default();
    run.stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            use base64::Engine;
            let mut f = l.splitn(3, '\t');
            let (hex_id, desc, b64) =
                (f.next().unwrap(), f.next().unwrap(), f.next().unwrap_or(""));
            let timeout = proc_keys
                .lines()
                .find(|k| k.starts_with(hex_id))
                .and_then(|k| k.split_whitespace().nth(3))
                .unwrap_or("?")
                .to_string();
            KernelEntry {
                // `user;UID;GID;PERM;DESCRIPTION`
                description: desc.splitn(5, ';').nth(4).unwrap_or(desc).to_string(),
                timeout,
                payload: base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap_or_else(|e| panic!("keyctl pipe {desc}: {e}: {b64:?}")),
            }
        })
        .collect()
}

/// Every session entry of the world's keyring must decode as a complete,
/// unexpired session with a kernel timeout; returns their credentials.
fn complete_sessions(t: &TestEnv) -> Vec<vault_profile::session::CachedSession> {
    let entries = keyring_entries(t);
    let mut sessions = Vec::new();
    for e in &entries {
        if e.description.starts_with("vault:session:") {
            let id = vault_profile::session::CacheId::from_qualified(
                e.description.trim_start_matches("vault:"),
            )
            .unwrap_or_else(|| panic!("cache entry with a malformed name: {}", e.description));
            let s = vault_profile::session::decode(&id, &e.payload).unwrap_or_else(|err| {
                panic!(
                    "cache entry {} is not a complete session ({err}): {:?}",
                    e.description,
                    String::from_utf8_lossy(&e.payload)
                )
            });
            assert!(
                !s.creds.access_key_id.is_empty()
                    && !s.creds.secret_access_key.expose().is_empty()
                    && !s.creds.session_token.expose().is_empty()
                    && s.creds.expiration > std::time::SystemTime::now(),
                "incomplete session in {}: {s:?}",
                e.description
            );
            assert_ne!(
                e.timeout, "perm",
                "{} has no kernel expiry: written without its timeout",
                e.description
            );
            sessions.push(s);
        } else if e.description.starts_with("vault:mfa:") {
            let rec: Value = serde_json::from_slice(&e.payload).unwrap_or_else(|err| {
                panic!(
                    "MFA-use record {} is damaged ({err}): {:?}",
                    e.description,
                    String::from_utf8_lossy(&e.payload)
                )
            });
            assert!(rec["used"].is_array(), "{rec}");
        } else {
            panic!("unexpected key in the world's keyring: {e:?}");
        }
    }
    sessions
}

/// The world's cache holds two complete sessions: p's MFA session and r's
/// role session, the one every surviving caller got.
fn cache_holds(t: &TestEnv, creds: &JsonCreds) {
    use vault_profile::session::SessionKind;
    let cached = complete_sessions(t);
    let kinds: Vec<(SessionKind, &str)> = cached
        .iter()
        .map(|s| (s.kind, s.profile.as_str()))
        .collect();
    assert_eq!(cached.len(), 2, "{kinds:?}");
    assert!(
        kinds.contains(&(SessionKind::GetSessionToken, "p")),
        "{kinds:?}"
    );
    let role = cached
        .iter()
        .find(|s| s.kind == SessionKind::AssumeRole && s.profile == "r")
        .unwrap_or_else(|| panic!("no role session cached: {kinds:?}"));
    assert_eq!(
        (
            role.creds.access_key_id.as_str(),
            role.creds.secret_access_key.expose(),
            Some(role.creds.session_token.expose()),
        ),
        (
            creds.access_key_id.as_str(),
            creds.secret_access_key.as_str(),
            creds.session_token.as_deref(),
        ),
        "the cached role session is not the one the callers got"
    );
}

// -------------------------------------------------------------- kill plans

/// Whom a kill is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The caller with this index, at `at` after the go.
    Caller(usize),
    /// The caller with this index, at `at` after a lock was first taken
    /// (by then the others are queueing for it).
    CallerAfterLock(usize),
    /// The lock holder, 300 ms into the touch of its unwrap (the key's log
    /// shows the slot's metadata or the PIN read, the ECDH not yet).
    HolderInUnwrapTouch,
    /// The lock holder, 300 ms into the touch of its OATH code (the log
    /// shows the OATH applet selected, no code yet).
    HolderInOathTouch,
    /// The lock holder 200 ms after STS (the front) took its code, before
    /// the answer came: AWS has spent the code, vault has no session.
    HolderInStsCall,
    /// Whoever holds a lock now (a holder kill whose moment passed unseen).
    AnyHolder,
}

#[derive(Debug, Clone, Copy)]
struct Kill {
    at: Duration,
    target: Target,
}

/// `KILLS` kills for round `round`: one of the lock holder at a point of
/// its work that depends on the round, the rest random callers at random
/// times in the first second, after the go or after the lock was first
/// taken (64 debug builds take a few seconds to start on a small machine:
/// the first are mostly still starting, the second mostly queueing).
fn plan(seed: u64, round: usize) -> Vec<Kill> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let holder = match round % 3 {
        0 => Target::HolderInUnwrapTouch,
        1 => Target::HolderInOathTouch,
        _ => Target::HolderInStsCall,
    };
    let mut kills = vec![Kill {
        at: Duration::ZERO,
        target: holder,
    }];
    let mut picked = BTreeSet::new();
    while picked.len() < KILLS - 1 {
        picked.insert(rng.gen_range(0..N));
    }
    for i in picked {
        kills.push(Kill {
            at: Duration::from_millis(rng.gen_range(0..1000)),
            target: if rng.gen() {
                Target::Caller(i)
            } else {
                Target::CallerAfterLock(i)
            },
        });
    }
    kills
}

/// Where the card work of the lock holder stands, from the key's log
/// since `mark` (an entry is written when its exchange ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    /// The ECDH (touch) is next or in flight.
    UnwrapTouch,
    Unwrapped,
    /// The OATH CALCULATE (touch) is next or in flight.
    OathTouch,
    /// The code is out: STS and the cache are next.
    Coded,
}

fn phase(key: &TestKey, mark: usize) -> Phase {
    let log = key.apdu_log();
    let since = log.get(mark..).unwrap_or(&[]);
    since
        .iter()
        .rev()
        .filter(|e| e["kind"] == "apdu")
        .filter_map(|e| {
            let (applet, ins) = (e["applet"].as_str()?, e["ins"].as_str()?);
            match (applet, ins) {
                ("piv", "F7") if e["p2"] == "82" => Some(Phase::UnwrapTouch),
                ("piv", "20") if e["lc"].as_u64().unwrap_or(0) > 0 => Some(Phase::UnwrapTouch),
                ("piv", "87") if e["p1"] == "11" => Some(Phase::Unwrapped),
                ("oath", "A4") => Some(Phase::OathTouch),
                ("oath", "A2") if e["touch"] == "given" => Some(Phase::Coded),
                _ => None,
            }
        })
        .next()
        .unwrap_or(Phase::Idle)
}

/// Runs one round: starts `N` callers, carries out `kills`, and returns how
/// each ended and which killed PIDs held the lock when killed (or at any
/// time before, as a background poller saw).
fn round(
    t: &TestEnv,
    key: &TestKey,
    pin: &str,
    front: &Proxy,
    kills: &[Kill],
) -> (Vec<Ended>, usize, Duration) {
    let lock_dir = t.dir.join("run/vault/locks");
    let (mut list, go) = callers(t, pin, &front.url, N);
    let pids: Vec<u32> = list.iter().map(Caller::pid).collect();

    // Every PID ever seen holding a lock in this world.
    let ever_held = Arc::new(Mutex::new(BTreeSet::<u32>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (ever_held, stop, lock_dir) = (ever_held.clone(), stop.clone(), lock_dir.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let (h, _) = lock_state(&lock_dir);
                ever_held.lock().unwrap().extend(h);
                std::thread::sleep(Duration::from_millis(3));
            }
        })
    };

    let mark = key.apdu_log().len();
    let started = Instant::now();
    std::fs::write(&go, "").unwrap();
    let mut pending: Vec<Kill> = kills.to_vec();
    let mut killed_holders = BTreeSet::new();
    let mut seen: Option<(Phase, Duration)> = None;
    let mut first_lock: Option<Duration> = None;
    // Killed while: starting (no lock yet), queueing for the lock, holding it.
    let (mut starting, mut queueing) = (0, 0);
    while !pending.is_empty()
        && list
            .iter_mut()
            .any(|c| matches!(c.child.try_wait(), Ok(None)))
    {
        let now = started.elapsed();
        let (holders, waiters) = lock_state(&lock_dir);
        if first_lock.is_none() && !holders.is_empty() {
            first_lock = Some(now);
        }
        let holder = holders
            .iter()
            .find_map(|p| pids.iter().position(|q| q == p));
        let ph = phase(key, mark);
        if seen.map(|(p, _)| p) != Some(ph) {
            seen = Some((ph, now));
        }
        let in_phase_for = |want: Phase| match seen {
            Some((p, since)) if p == want => Some(now - since),
            _ => None,
        };
        let touching = Duration::from_millis(300);
        let mut rest = Vec::new();
        for k in pending {
            let victim = match k.target {
                Target::Caller(i) if now >= k.at => Some(i),
                Target::CallerAfterLock(i) if first_lock.is_some_and(|f| now >= f + k.at) => {
                    Some(i)
                }
                Target::HolderInUnwrapTouch
                    if in_phase_for(Phase::UnwrapTouch).is_some_and(|d| d >= touching) =>
                {
                    holder
                }
                Target::HolderInOathTouch
                    if in_phase_for(Phase::OathTouch).is_some_and(|d| d >= touching) =>
                {
                    holder
                }
                Target::HolderInStsCall
                    if mfa_requests(front)
                        .iter()
                        .any(|g| g.at.elapsed() >= Duration::from_millis(200)) =>
                {
                    holder
                }
                Target::AnyHolder => holder,
                _ => None,
            };
            // The moment passed unseen (a starved poll): the next holder.
            let missed = match k.target {
                Target::HolderInUnwrapTouch => {
                    matches!(ph, Phase::Unwrapped | Phase::OathTouch | Phase::Coded)
                }
                Target::HolderInOathTouch => ph == Phase::Coded,
                _ => false,
            };
            match victim {
                Some(i) => {
                    let was_holder = holders.contains(&pids[i]);
                    let was_waiting = waiters.contains(&pids[i]);
                    if list[i].kill() {
                        eprintln!(
                            "[concurrency_kills]   {:>5} ms: killed caller {i} (pid {}), {}",
                            now.as_millis(),
                            pids[i],
                            if was_holder {
                                format!("the lock holder ({:?}, card: {ph:?})", k.target)
                            } else if was_waiting {
                                "queueing for the lock".to_string()
                            } else {
                                "starting (or between locks)".to_string()
                            }
                        );
                        if was_holder {
                            killed_holders.insert(pids[i]);
                        } else if was_waiting {
                            queueing += 1;
                        } else {
                            starting += 1;
                        }
                    }
                }
                None if missed => {
                    eprintln!(
                        "[concurrency_kills]   {:>5} ms: {:?} missed (card: {ph:?}); \
                         killing the next lock holder instead",
                        now.as_millis(),
                        k.target
                    );
                    rest.push(Kill {
                        at: now,
                        target: Target::AnyHolder,
                    })
                }
                None => rest.push(k),
            }
        }
        pending = rest;
        std::thread::sleep(Duration::from_millis(2));
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    let ended: Vec<Ended> = list.into_iter().map(|c| c.finish(deadline)).collect();
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    poller.join().unwrap();
    let ever = ever_held.lock().unwrap().clone();
    for (e, pid) in ended.iter().zip(&pids) {
        if e.killed && ever.contains(pid) {
            killed_holders.insert(*pid);
        }
    }
    if !kills.is_empty() {
        eprintln!(
            "[concurrency_kills]   killed {starting} starting, {queueing} queueing for the lock, \
             {} holding it{}",
            killed_holders.len(),
            if first_lock.is_some() {
                ""
            } else {
                " (no lock ever seen)"
            }
        );
    }
    (ended, killed_holders.len(), took)
}

/// The survivors' one set of credentials: every caller not killed exited 0
/// with the same credential_process object and nothing on stderr.
fn survivors_agree(ended: &[Ended]) -> JsonCreds {
    let mut first: Option<JsonCreds> = None;
    for (i, e) in ended.iter().enumerate().filter(|(_, e)| !e.killed) {
        assert_eq!(
            e.code,
            Some(0),
            "caller {i} failed\nstdout:\n{}\nstderr:\n{}",
            e.stdout,
            e.stderr
        );
        let c = JsonCreds::parse(&e.stdout);
        assert!(c.access_key_id.starts_with("ASIA"), "{c:?}");
        match &first {
            None => first = Some(c),
            Some(f) => assert_eq!(&c, f, "caller {i} got other credentials"),
        }
        assert!(
            !e.stderr.contains("panicked"),
            "caller {i} panicked:\n{}",
            e.stderr
        );
    }
    first.expect("no caller survived")
}

// -------------------------------------------------------------------- tests

#[test]
fn many_cold_callers_share_one_session_even_when_some_are_killed() {
    let t = TestEnv::new("kills");
    let key = TestKey::start();
    let s = Secrets::new();
    // The STS answers every call with fresh credentials: callers of the
    // role r are told apart by the session they got.
    let role = t.role_arn("kills");
    t.write_config(&format!(
        "[profile p]\nregion = us-east-1\n\n[profile r]\nsource_profile = p\nrole_arn = {role}\n"
    ));
    // IAM user kills-TAG: its real key, its virtual MFA device.
    let user = t.user("kills");
    let aws = user.key.clone();
    t.add("p", &aws);
    let mfa = user.mfa_serial.clone();
    // The device's seed into the card, from a file (not in any argv).
    let seed_file = t.dir.join("seed.b32");
    std::fs::write(&seed_file, &user.seed).unwrap();
    let seed_path = seed_file.display().to_string();
    let started = Instant::now();
    token::enroll(
        &t,
        &key,
        &s,
        &[
            "--profile",
            "p",
            "--totp-secret-file",
            &seed_path,
            "--mfa-serial",
            &mfa,
        ],
    );
    std::fs::remove_file(&seed_file).unwrap();
    eprintln!("[concurrency_kills] enroll: {:?}", started.elapsed());

    // ---- 64 at once on a cold cache, nobody killed.
    // Two touches for the one cold session: the PIV slot's key is
    // touch-always (the ECDH that unwraps the IAM key) and the OATH
    // credential is touch-required (the MFA code). The other 63 find the
    // session in the cache once the holder lets go of the lock: no APDU.
    let moto = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    let mark = key.apdu_log().len();
    let aws_side = front(&moto, STS_LATENCY);
    let (ended, killed_holders, took) = round(&t, &key, &s.pin, &aws_side, &[]);
    assert_eq!(killed_holders, 0);
    let creds = survivors_agree(&ended);
    // Only the holder says anything: its touch prompts (no terminal, no
    // display here, so on stderr).
    let touch = format!("vault: Touch your YubiKey {} ", key.serial);
    let spoke: Vec<&str> = ended
        .iter()
        .map(|e| e.stderr.as_str())
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(spoke.len(), 1, "{spoke:#?}");
    assert!(
        spoke[0].lines().all(|l| l.starts_with(&touch)),
        "{}",
        spoke[0]
    );
    let log = settled_log(&key);
    eprintln!(
        "[concurrency_kills] {N} cold callers: {took:?}, {} APDUs, {} touches",
        apdus(&log[mark..]),
        touches(&log[mark..])
    );
    assert_eq!(
        touches(&log[mark..]),
        2,
        "one unwrap touch and one OATH touch: {:#?}",
        &log[mark..]
    );
    let gst = session_token_requests(&aws.id);
    assert_eq!(gst.len(), 1, "one GetSessionToken for {N} callers");
    let seen = mfa_requests(&aws_side);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(gst[0].param("SerialNumber"), Some(mfa.as_str()));
    // The card's code is the device's (RFC 6238 of the seed, now), and the
    // STS took it and the stored key's signature.
    let code = gst[0].param("TokenCode").expect("a TokenCode");
    assert!(
        user.is_current_code(code),
        "TokenCode {code} is not the RFC 6238 code of {mfa}'s seed now"
    );
    codes_were_current(&aws_side, &user, "cold round");
    all_accepted(&gst, "cold round");
    let ar = assume_role_requests(&role);
    assert_eq!(ar.len(), 1, "one AssumeRole for {N} callers");
    all_accepted(&ar, "cold round");
    cache_holds(&t, &creds);

    // ---- Kill rounds.
    key.ctl(&format!("touch after {TOUCH_MS}"));
    let seeds: Vec<u64> = match std::env::var("VAULT_TEST_KILL_SEEDS") {
        Ok(s) => s.split(',').map(|x| x.trim().parse().unwrap()).collect(),
        Err(_) => (0..3).map(|_| rand::thread_rng().gen()).collect(),
    };
    let mut fronts = vec![aws_side];
    for (r, &seed) in seeds.iter().enumerate() {
        eprintln!(
            "[concurrency_kills] kill round {r}: seed {seed} (VAULT_TEST_KILL_SEEDS to replay)"
        );
        wait_for_a_fresh_step(&fronts.iter().collect::<Vec<_>>());
        let w = sharing_tokens(&t, &format!("kills-{r}"));
        let gst_before = session_token_requests(&aws.id).len();
        let ar_before = assume_role_requests(&role).len();
        let mark = key.apdu_log().len();
        let kills = plan(seed, r);
        let aws_side = front(&moto, STS_LATENCY);
        let (ended, killed_holders, took) = round(&w, &key, &s.pin, &aws_side, &kills);
        let killed = ended.iter().filter(|e| e.killed).count();
        let log = settled_log(&key);
        // A held request is still delivered after its caller was killed:
        // wait for the front to finish with it before reading the recording.
        std::thread::sleep(STS_LATENCY);
        let gst_reqs = session_token_requests(&aws.id)[gst_before..].to_vec();
        let ar_reqs = assume_role_requests(&role)[ar_before..].to_vec();
        let (gst, ar) = (gst_reqs.len(), ar_reqs.len());
        // Refused by the STS: a code sent again after AWS had taken it.
        let rejected: Vec<String> = gst_reqs
            .iter()
            .filter(|g| g.status != 200)
            .map(|g| format!("{:?} ({:?})", g.param("TokenCode"), g.error))
            .collect();
        eprintln!(
            "[concurrency_kills] kill round {r} (seed {seed}): {took:?}, {killed} killed \
             ({killed_holders} lock holders), {} survivors, {gst} GetSessionToken, \
             {ar} AssumeRole, {} codes sent again, {} APDUs, {} touches",
            N - killed,
            rejected.len(),
            apdus(&log[mark..]),
            touches(&log[mark..])
        );
        assert!(
            rejected.is_empty(),
            "seed {seed}: GetSessionToken refused (a code sent again after AWS had taken it): \
             {rejected:?}"
        );
        let what = format!("kill round {r} (seed {seed})");
        codes_were_current(&aws_side, &user, &what);
        all_accepted(&gst_reqs, &what);
        all_accepted(&ar_reqs, &what);
        assert_eq!(
            gst_reqs
                .iter()
                .map(|g| g.param("TokenCode").map(str::to_string))
                .collect::<BTreeSet<_>>(),
            mfa_requests(&aws_side)
                .into_iter()
                .map(|g| g.token_code)
                .collect::<BTreeSet<_>>(),
            "{what}: the codes the STS recorded are the ones the front passed on"
        );
        let creds = survivors_agree(&ended);
        assert!(killed_holders >= 1, "the lock holder was not killed");
        assert!(
            (1..=1 + killed_holders).contains(&gst),
            "{gst} GetSessionToken calls for {killed_holders} killed lock holder(s)"
        );
        assert!(
            (1..=1 + killed_holders).contains(&ar),
            "{ar} AssumeRole calls for {killed_holders} killed lock holder(s)"
        );
        // Each killed holder costs at most its two touches again.
        assert!(
            touches(&log[mark..]) <= 2 * (1 + killed_holders),
            "{:#?}",
            &log[mark..]
        );

        // The cache holds the survivors' session, complete.
        cache_holds(&w, &creds);
        // And a later caller reads it: no STS call, no touch.
        let mark = key.apdu_log().len();
        let again = JsonCreds::parse(
            &w.vault(&["exec", "r", "--json"])
                .env("AWS_ENDPOINT_URL", &aws_side.url)
                .run()
                .success()
                .stdout,
        );
        assert_eq!(again, creds, "seed {seed}");
        assert_eq!(session_token_requests(&aws.id).len() - gst_before, gst);
        assert_eq!(assume_role_requests(&role).len() - ar_before, ar);
        let sessions = w.vault(&["list", "--sessions"]).run().success().stdout;
        assert!(
            sessions.contains("sts.GetSessionToken") && sessions.contains("sts.AssumeRole"),
            "seed {seed}: {sessions}"
        );
        assert_eq!(touches(&settled_log(&key)[mark..]), 0, "seed {seed}");
        fronts.push(aws_side);
    }
    eprintln!("[concurrency_kills] total {:?}", started.elapsed());
}
