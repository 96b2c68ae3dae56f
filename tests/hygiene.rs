//! Secret hygiene, checked after one full run of the hardware-token flow
//! and of the two other store backends:
//! `hw/rig -- cargo test -p vault --test hygiene`.
//!
//! A fresh virtual YubiKey, an IAM user made in the rig's strict STS/IAM
//! (`TestEnv::user`: a real access key, so `rotate` works, and a virtual
//! MFA device whose seed the card gets), and every vault call with
//! `--debug`:
//! add → hw enroll (the MFA seed on stdin, `--totp-secret -`) → exec --json
//! → export (every format) → exec -- CMD → hw status --json → list →
//! rotate → exec --no-session --json (the rotated key, asked for); then
//! the same key-to-session path with `--backend file` (passphrase from
//! `VAULT_FILE_PASSPHRASE`) and `--backend keyutils`, each with an IAM user
//! of its own: add --env → exec --json.
//!
//! Every secret that exists during the run is collected: the long-term
//! secret access keys (the original, the rotated one, the file and
//! keyutils users'), every session's secret key and token (as exec and
//! export print them; the STS recording shows these are all the sessions
//! made, each accepted), the TOTP seed, the new PIN and PUK, the file
//! store's passphrase, the management key vault generated (read from the
//! card afterwards), and every MFA code of the device during the run (the
//! RFC 6238 codes of the seed for each time step, so also codes vault read
//! but never sent; the ones sent are checked to be such codes). Then each
//! is looked for, raw and encoded (base64, hex, percent-encoding; base32
//! for the seed; a code raw, as a number of its own, not inside a longer
//! run of digits), in:
//!
//! - every file under the test's HOME, XDG folders and TMPDIR;
//! - the whole rig folder (the rig's logs, HOME and TMPDIR, the keys'
//!   APDU logs, other keys' state), except the STS's request recording and
//!   this key's state file (below), and `/dev/shm`;
//! - every file under the system's `/tmp` and `/var/tmp` modified since the
//!   test started (a file vault wrote there, ignoring TMPDIR, would be
//!   new), but other rigs' folders (other runs' worlds);
//!
//!   a file or folder that cannot be read fails the test (one that vanished
//!   between listing and reading is counted and skipped);
//! - the STS's request recording, for the long-term secrets, the seed, the
//!   PIN, PUK, passphrase and management key only: it is the AWS side of
//!   the wire, and a request signed with a session carries the session
//!   token in its `X-Amz-Security-Token` header and the MFA code in
//!   `TokenCode`, as it must;
//! - every stdout and stderr of vault, `--debug` included, except the
//!   credentials a command was asked to print (exec --json, export, the
//!   exec'd command's own output of its environment);
//! - the argv and environment of every process vault started or became:
//!   each vault call runs under `strace -f` recording every `execve` with
//!   its whole argv and environment, so no process is missed however short
//!   its life; and, for processes outside vault's tree (D-Bus activations,
//!   the daemons), a background sampler of `/proc/*/cmdline` and
//!   `/proc/*/environ` (every 1 ms: it may miss a short-lived one, which the
//!   trace does not). Session credentials only in the exec'd command's
//!   environment (it asked for them), the PIN, PUK and passphrase only in
//!   the launcher's and vault's own (the test hands them over in
//!   VAULT_PIN, VAULT_NEW_PIN, VAULT_NEW_PUK, VAULT_FILE_PASSPHRASE), the
//!   long-term key only in `vault add --env`'s (the test hands it over that
//!   way), the seed, the management key and the MFA codes nowhere.
//!
//! This key's state file is not searched: it is the card, and holds the
//! PIV private keys, the OATH seed and the PIN by design. The APDU log is
//! searched: it must never hold data bytes.
//!
//! And the files and folders vault created under HOME, the XDG folders,
//! TMPDIR and XDG_RUNTIME_DIR are owner-only (files 0600 or stricter,
//! folders 0700 or stricter); the list is printed.
//!
//! Not searched: swap and memory of live processes, the kernel keyring's
//! contents (sessions are cached there by design), files outside the rig,
//! `/tmp`, `/var/tmp` and `/dev/shm`. Needs `strace` (Debian's package).
//!
//! Outside the rig the test fails with instructions, never passes.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use base64::Engine;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use support::aws_admin as aws;
use support::otp::base32_decode;
use support::token::{self, Secrets};
use support::vyk::TestKey;
use support::{
    assume_role_requests, session_token_requests, sts_requests, Cmd, IamUser, JsonCreds, Run,
    StsRequest, TestEnv, VAULT,
};

// ------------------------------------------------------------------ secrets

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    LongTerm,
    Session,
    Seed,
    /// Handed to vault by the test in its environment: the PIN, the PUK,
    /// the file store's passphrase.
    PinPuk,
    ManagementKey,
    MfaCode,
}

/// One secret and the byte strings it is searched as.
#[derive(Debug, Clone)]
struct Secret {
    what: String,
    kind: Kind,
    /// The value as vault prints it, when it does (to match "asked for" outputs).
    value: String,
    needles: Vec<(&'static str, Vec<u8>)>,
    /// Matched only as a number of its own (no digit right before or after).
    standalone: bool,
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Secret {
    /// A text secret: raw, percent-encoded, base64 and hex.
    fn text(kind: Kind, what: impl Into<String>, value: &str) -> Secret {
        let mut needles = vec![("raw", value.as_bytes().to_vec())];
        let p = percent(value);
        if p != value {
            needles.push(("percent-encoded", p.into_bytes()));
            needles.push(("percent-encoded (lower)", percent_lower(value).into_bytes()));
        }
        needles.push((
            "base64",
            base64::engine::general_purpose::STANDARD
                .encode(value)
                .into_bytes(),
        ));
        needles.push(("hex", hex::encode(value).into_bytes()));
        Secret {
            what: what.into(),
            kind,
            value: value.to_string(),
            needles,
            standalone: false,
        }
    }

    /// A binary secret: raw, hex (both cases), base64 (standard and URL-safe).
    fn binary(kind: Kind, what: impl Into<String>, bytes: &[u8]) -> Secret {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let needles = vec![
            ("raw", bytes.to_vec()),
            ("hex", hex::encode(bytes).into_bytes()),
            ("HEX", hex::encode_upper(bytes).into_bytes()),
            // Without its padding, so it also matches inside a longer encoding
            // that starts with it.
            ("base64", b64.trim_end_matches('=').as_bytes().to_vec()),
            (
                "base64url",
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(bytes)
                    .into_bytes(),
            ),
        ];
        Secret {
            what: what.into(),
            kind,
            value: String::new(),
            needles,
            standalone: false,
        }
    }

    /// An MFA code: raw, as a number of its own (any other form, or six
    /// digits inside a longer number, is just as likely by chance).
    fn code(what: impl Into<String>, value: &str) -> Secret {
        Secret {
            what: what.into(),
            kind: Kind::MfaCode,
            value: value.to_string(),
            needles: vec![("raw", value.as_bytes().to_vec())],
            standalone: true,
        }
    }
}

fn percent_lower(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

/// Whether `needle` occurs in `hay` (with `standalone`: not next to an
/// ASCII digit).
fn contains(hay: &[u8], needle: &[u8], standalone: bool) -> bool {
    if needle.is_empty() || hay.len() < needle.len() {
        return false;
    }
    let last = hay.len() - needle.len();
    let mut i = 0;
    while i <= last {
        match hay[i..=last].iter().position(|&b| b == needle[0]) {
            None => return false,
            Some(p) => {
                i += p;
                if &hay[i..i + needle.len()] == needle {
                    let alone = !standalone
                        || ((i == 0 || !hay[i - 1].is_ascii_digit())
                            && hay
                                .get(i + needle.len())
                                .is_none_or(|b| !b.is_ascii_digit()));
                    if alone {
                        return true;
                    }
                }
                i += 1;
            }
        }
    }
    false
}

/// Every (secret, encoding) of `secrets` found in `hay`.
fn found_in<'a>(hay: &[u8], secrets: impl IntoIterator<Item = &'a Secret>) -> Vec<String> {
    let mut out = Vec::new();
    for s in secrets {
        for (enc, n) in &s.needles {
            if contains(hay, n, s.standalone) {
                out.push(format!("{} ({enc})", s.what));
            }
        }
    }
    out
}

// ---------------------------------------------------------------- the world

/// The test's world: its TestEnv, a TMPDIR of its own, and the key.
struct World {
    t: TestEnv,
    tmp: PathBuf,
    /// Where `strace` writes each vault call's `execve`s (not searched as a
    /// file: it holds every environment by design; read, then deleted).
    traces: PathBuf,
    calls: std::sync::atomic::AtomicUsize,
    /// The key's new PIN and PUK (letters and digits here, see `alnum8`).
    secrets: Secrets,
    /// What every vault call printed, and which of its values it was asked
    /// to print.
    outputs: Mutex<Vec<Output>>,
}

struct Output {
    argv: Vec<String>,
    stdout: String,
    stderr: String,
    /// Values the command was asked to print on stdout (credentials).
    asked: Vec<String>,
}

impl World {
    /// `vault --debug ARGS` with the attestation root, the new PIN and PUK,
    /// the PIN (`token::hw_env`), and this world's TMPDIR, under `strace -f`
    /// recording every `execve` of vault and of every process it starts,
    /// with its whole argv and environment (`-v -s`, every string in hex).
    fn vault(&self, args: &[&str]) -> Cmd {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let prefix = self.traces.join(format!("call-{n:03}"));
        let prefix = prefix.display().to_string();
        let mut full = vec![
            "-f",
            "-ff",
            "-qq",
            "-v",
            "-xx",
            "-s",
            "1048576",
            "-e",
            "trace=execve,execveat",
            "-e",
            "signal=none",
            "-o",
            &prefix,
            VAULT,
            "--debug",
        ];
        full.extend_from_slice(args);
        token::hw_env(self.t.cmd("strace", &full), &self.secrets).env("TMPDIR", &self.tmp)
    }

    /// Runs it, asserts success, and keeps its output for the search.
    fn run(&self, args: &[&str], cmd: Cmd) -> Run {
        let started = Instant::now();
        let run = cmd.run().success();
        eprintln!(
            "[hygiene] vault {} ({:?})",
            args.join(" "),
            started.elapsed()
        );
        self.keep(args, &run, Vec::new());
        run
    }

    fn keep(&self, args: &[&str], run: &Run, asked: Vec<String>) {
        let mut argv = vec![VAULT.to_string(), "--debug".to_string()];
        argv.extend(args.iter().map(|s| s.to_string()));
        self.outputs.lock().unwrap().push(Output {
            argv,
            stdout: run.stdout.clone(),
            stderr: run.stderr.clone(),
            asked,
        });
    }

    /// A command whose stdout is exactly one JSON object (and nothing else).
    fn json(&self, args: &[&str]) -> Value {
        let run = self.vault(args).run().success();
        let mut values = serde_json::Deserializer::from_str(&run.stdout).into_iter::<Value>();
        let v = values
            .next()
            .unwrap_or_else(|| panic!("vault {args:?}: no JSON on stdout"))
            .unwrap_or_else(|e| panic!("vault {args:?}: stdout is not JSON ({e}): {}", run.stdout));
        assert!(
            values.next().is_none(),
            "vault {args:?}: more than one JSON value on stdout: {}",
            run.stdout
        );
        assert!(v.is_object(), "vault {args:?}: not an object: {v}");
        self.keep(args, &run, Vec::new());
        v
    }

    /// `exec`/`export` printing credentials as the credential_process
    /// object: exactly one line, one object.
    fn creds_json(&self, args: &[&str]) -> JsonCreds {
        let run = self.vault(args).run().success();
        let c = JsonCreds::parse(&run.stdout);
        let mut asked = vec![c.secret_access_key.clone()];
        asked.extend(c.session_token.clone());
        self.keep(args, &run, asked);
        c
    }
}

/// The folder `strace` writes `t`'s vault calls' traces into (0700).
fn w_traces(t: &TestEnv) -> PathBuf {
    let d = t.dir.join("traces");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

/// The strict STS accepted every one of `reqs` (200): each was signed with
/// the real secret of the key it names, and any code it carried was good.
fn accepted(reqs: &[StsRequest]) {
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

/// An 8-character PIN or PUK of letters and digits: unlikely to occur by
/// chance in anything searched, as a 6-digit one would in timestamps.
fn alnum8() -> String {
    support::random(
        b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789",
        8,
    )
}

// ------------------------------------------------------------- /proc sampler

/// What the sampler saw: every distinct argv, and every distinct
/// (argv, environment) pair, read as cmdline, environ, cmdline (a pair
/// whose two cmdline reads differ straddled an execve and is dropped).
#[derive(Default)]
struct Seen {
    argvs: BTreeSet<Vec<u8>>,
    environs: BTreeSet<(Vec<u8>, Vec<u8>)>,
    rounds: u64,
}

fn sample(seen: &Mutex<Seen>) {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return;
    };
    let me = std::process::id().to_string();
    let mut argvs = Vec::new();
    let mut environs = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let dir = e.path();
        let Ok(cmd1) = std::fs::read(dir.join("cmdline")) else {
            continue;
        };
        if cmd1.is_empty() {
            continue; // a kernel thread, or a zombie
        }
        let env = std::fs::read(dir.join("environ")).unwrap_or_default();
        let cmd2 = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        if cmd1 == cmd2 {
            environs.push((cmd1.clone(), env));
        }
        argvs.push(cmd1);
        if !cmd2.is_empty() {
            argvs.push(cmd2);
        }
    }
    let mut s = seen.lock().unwrap();
    s.argvs.extend(argvs);
    s.environs.extend(environs);
    s.rounds += 1;
}

/// argv[0]'s file name.
fn program(cmdline: &[u8]) -> String {
    let first = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    first.rsplit('/').next().unwrap_or_default().to_string()
}

fn argv_words(cmdline: &[u8]) -> Vec<String> {
    cmdline
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect()
}

// ------------------------------------------------------------------ strace

/// The strings of a `"\x41\x42"` list (`-xx`) starting at `s[*i]` == `[`;
/// moves `i` past its `]`.
fn hex_strings(s: &str, i: &mut usize) -> Vec<Vec<u8>> {
    let b = s.as_bytes();
    assert_eq!(b.get(*i), Some(&b'['), "no list at {i} in {s:.200}");
    *i += 1;
    let mut out = Vec::new();
    loop {
        match b.get(*i) {
            Some(b']') => {
                *i += 1;
                return out;
            }
            Some(b'"') => {
                *i += 1;
                let mut v = Vec::new();
                while b.get(*i) == Some(&b'\\') {
                    let hex = s.get(*i + 2..*i + 4).unwrap_or("");
                    assert_eq!(b.get(*i + 1), Some(&b'x'), "not -xx output: {s:.200}");
                    v.push(u8::from_str_radix(hex, 16).unwrap());
                    *i += 4;
                }
                assert_eq!(
                    b.get(*i),
                    Some(&b'"'),
                    "a truncated or unescaped string in: {s:.200}"
                );
                *i += 1;
                out.push(v);
            }
            Some(b',' | b' ') => *i += 1,
            _ => panic!("unexpected strace output at {i}: {s:.300}"),
        }
    }
}

/// One `execve`: its argv and environment, each NUL-joined as in /proc.
type Exec = (Vec<u8>, Vec<u8>);

/// Every `execve` (and `execveat`) in the `strace -ff` files under `dir`,
/// and the number of trace files read.
fn traced_execs(dir: &Path) -> (Vec<Exec>, usize) {
    let mut out = Vec::new();
    let mut files = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        files += 1;
        for line in text.lines() {
            let Some(at) = line.find("execve(").or_else(|| line.find("execveat(")) else {
                continue;
            };
            // execve("PATH", [ARGV], [ENV]) / execveat(FD, "PATH", [ARGV], [ENV], FLAGS)
            let Some(open) = line[at..].find('[').map(|o| o + at) else {
                panic!("{}: an execve without argv: {line:.300}", p.display())
            };
            let mut i = open;
            let argv = hex_strings(line, &mut i);
            let rest = &line[i..];
            let Some(env_at) = rest.find('[') else {
                panic!(
                    "{}: an execve without environment (-v?): {line:.300}",
                    p.display()
                )
            };
            let mut j = i + env_at;
            let env = hex_strings(line, &mut j);
            out.push((argv.join(&0u8), env.join(&0u8)));
        }
    }
    (out, files)
}

// ------------------------------------------------------------------ files

/// What a walk over folders could not read: folders or files that exist
/// but fail to read (a failure of the search), and those that vanished
/// between listing and reading (another process's temporary files).
#[derive(Default)]
struct Unread {
    failed: Vec<String>,
    vanished: usize,
}

impl Unread {
    fn note(&mut self, p: &Path, e: std::io::Error) {
        if e.kind() == std::io::ErrorKind::NotFound {
            self.vanished += 1;
        } else {
            self.failed.push(format!("{}: {e}", p.display()));
        }
    }
}

/// Regular files under `dir` (symlinks not followed) but those in or under
/// `skip`, and, with `since`, only those modified at or after it.
fn files_under(
    dir: &Path,
    skip: &[PathBuf],
    since: Option<std::time::SystemTime>,
    out: &mut Vec<PathBuf>,
    unread: &mut Unread,
) {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => return unread.note(dir, e),
    };
    for e in rd {
        let e = match e {
            Ok(e) => e,
            Err(err) => {
                unread.note(dir, err);
                continue;
            }
        };
        let p = e.path();
        if skip.contains(&p) {
            continue;
        }
        let m = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(err) => {
                unread.note(&p, err);
                continue;
            }
        };
        if m.is_dir() {
            files_under(&p, skip, since, out, unread);
        } else if m.is_file() && since.is_none_or(|t| m.modified().is_ok_and(|mt| mt >= t)) {
            out.push(p);
        }
    }
}

/// Every path under `dir` (files and folders, not following symlinks).
fn paths_under(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        out.insert(p.clone());
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            paths_under(&p, out);
        }
    }
}

/// The management key in the PRINTED object's bytes (`88 L 89 L KEY …`).
fn management_key(printed: &[u8]) -> Option<Vec<u8>> {
    printed.windows(2).enumerate().find_map(|(i, w)| {
        let len = usize::from(w[1]);
        (w[0] == 0x89 && [16, 24, 32].contains(&len) && printed.len() >= i + 2 + len)
            .then(|| printed[i + 2..i + 2 + len].to_vec())
    })
}

// --------------------------------------------------------------------- test

#[test]
fn no_secret_is_left_in_clear_anywhere_after_a_full_run() {
    let started = Instant::now();
    // Files modified from here on (a second's slack for coarse mtimes).
    let wall_start = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    let first_step = support::now_secs() / 30;
    let t = TestEnv::new("hygiene");
    let key = TestKey::start();
    let tmp = t.dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (pin, puk) = loop {
        let (a, b) = (alnum8(), alnum8());
        if a != b {
            break (a, b);
        }
    };

    // The IAM user (its first key, its virtual MFA device), made in the
    // rig's IAM with boto3 as an administrator would; and one user for each
    // of the other two store backends.
    let iam: IamUser = t.user("hyg");
    let (file_user, kern_user) = (t.user("hygf"), t.user("hygk"));
    let original = iam.key.clone();
    let role = t.role_arn("hygiene");
    let mfa = iam.mfa_serial.clone();
    // Owner-only, as it would be for a careful user; vault must keep it so.
    t.write_config(&format!(
        "[profile p]\nregion = us-east-1\n\n[profile r]\nsource_profile = p\nrole_arn = {role}\n\n\
         [profile f]\nregion = us-east-1\n\n[profile k]\nregion = us-east-1\n"
    ));
    std::fs::set_permissions(&t.config, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The device's seed, which the card gets.
    let seed_b32 = iam.seed.clone();
    let seed: Vec<u8> = base32_decode(&seed_b32);
    assert!(!seed.is_empty(), "the device's seed");
    let passphrase = support::random(b"abcdefghijklmnopqrstuvwxyz0123456789", 24);

    // What exists before vault runs (the test made it), for the permission check.
    let roots: Vec<(&str, PathBuf)> = vec![
        ("HOME", t.home.clone()),
        ("XDG_DATA_HOME", t.dir.join("data")),
        ("XDG_CACHE_HOME", t.dir.join("cache")),
        ("XDG_CONFIG_HOME", t.dir.join("config-home")),
        ("XDG_RUNTIME_DIR", t.dir.join("run")),
        ("TMPDIR", tmp.clone()),
    ];
    let mut before = BTreeSet::new();
    for (_, r) in &roots {
        paths_under(r, &mut before);
    }

    let traces = w_traces(&t);
    let w = World {
        t,
        tmp,
        traces,
        calls: Default::default(),
        secrets: Secrets { pin, puk },
        outputs: Mutex::new(Vec::new()),
    };

    // The sampler runs for the whole run.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (seen, stop) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                sample(&seen);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };

    // add: the long-term key from the environment (`--env`).
    let args = ["add", "p", "--env"];
    let cmd = w
        .vault(&args)
        .env("AWS_ACCESS_KEY_ID", &original.id)
        .env("AWS_SECRET_ACCESS_KEY", &original.secret);
    w.run(&args, cmd);

    // enroll: the seed on stdin, never in an argv.
    let serial = key.serial.to_string();
    let args = [
        "hw",
        "enroll",
        "--serial",
        serial.as_str(),
        "--profile",
        "p",
        "--totp-secret",
        "-",
        "--mfa-serial",
        mfa.as_str(),
    ];
    let mut cmd = w.vault(&args);
    let (reader, mut writer) = std::io::pipe().unwrap();
    writer
        .write_all(format!("{seed_b32}\n").as_bytes())
        .unwrap();
    drop(writer);
    cmd.cmd.stdin(reader);
    let enrolled = w.run(&args, cmd);
    assert!(
        enrolled.stderr.contains("its code matches"),
        "{}",
        enrolled.stderr
    );

    // exec --json (cold: unwrap, OATH code, GetSessionToken, AssumeRole),
    // then every export format, for the role and for the MFA session.
    let role_creds = w.creds_json(&["exec", "r", "--json"]);
    // The code the card gave is the device's current RFC 6238 code.
    for r in session_token_requests(&original.id) {
        let code = r.param("TokenCode").expect("a TokenCode");
        assert!(
            iam.is_current_code(code),
            "TokenCode {code} is not the RFC 6238 code of {mfa}'s seed now"
        );
    }
    let mfa_creds = w.creds_json(&["export", "p", "--format", "json"]);
    assert_eq!(
        w.creds_json(&["export", "r", "--format", "json"]),
        role_creds
    );
    for format in ["env", "export-env", "ini"] {
        for profile in ["p", "r"] {
            let args = ["export", profile, "--format", format];
            let run = w.vault(&args).run().success();
            let c = if profile == "p" {
                &mfa_creds
            } else {
                &role_creds
            };
            assert!(run.stdout.contains(&c.secret_access_key), "{}", run.stdout);
            let asked = vec![
                c.secret_access_key.clone(),
                c.session_token.clone().unwrap_or_default(),
            ];
            w.keep(&args, &run, asked);
        }
    }

    // exec -- CMD: the command prints its environment (NUL-separated).
    let args = [
        "exec",
        "r",
        "--",
        "sh",
        "-c",
        "sleep 0.3; exec env -0",
        "hygiene-child",
    ];
    let run = w.vault(&args).run().success();
    let child_env: BTreeMap<String, String> = run
        .stdout
        .split('\0')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        child_env.get("AWS_SECRET_ACCESS_KEY"),
        Some(&role_creds.secret_access_key)
    );
    assert_eq!(
        child_env.get("AWS_SESSION_TOKEN"),
        role_creds.session_token.as_ref()
    );
    assert_eq!(child_env.get("AWS_VAULT").map(String::as_str), Some("r"));
    w.keep(
        &args,
        &run,
        vec![
            role_creds.secret_access_key.clone(),
            role_creds.session_token.clone().unwrap_or_default(),
        ],
    );

    w.json(&["hw", "status", "--json"]);
    let args = ["list"];
    w.run(&args, w.vault(&args));

    // rotate: the cached MFA session serves the IAM calls; the new key is
    // sealed to the card.
    let args = ["rotate", "p"];
    let rotated = w.run(&args, w.vault(&args));
    assert!(
        rotated
            .stdout
            .starts_with("Rotated the access key of profile \"p\""),
        "{}",
        rotated.stdout
    );
    // The rotated key, asked for: a plain profile's --no-session gives the
    // stored key itself.
    let new_key = w.creds_json(&["exec", "p", "--no-session", "--json"]);
    assert_ne!(new_key.access_key_id, original.id);
    assert!(new_key.session_token.is_none());
    let listed = aws(&w.t, &["iam", "list-access-keys", "--user-name", &iam.name]);
    let ids: Vec<&str> = listed["AccessKeyMetadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["AccessKeyId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [new_key.access_key_id.as_str()]);

    // The other two store backends: a long-term key in, a session out.
    let mut backend_sessions = Vec::new();
    for (backend, profile, user) in [("file", "f", &file_user), ("keyutils", "k", &kern_user)] {
        let args = ["--backend", backend, "add", profile, "--env"];
        let cmd = w
            .vault(&args)
            .env("VAULT_FILE_PASSPHRASE", &passphrase)
            .env("AWS_ACCESS_KEY_ID", &user.key.id)
            .env("AWS_SECRET_ACCESS_KEY", &user.key.secret);
        w.run(&args, cmd);
        let args = ["--backend", backend, "exec", profile, "--json"];
        let run = w
            .vault(&args)
            .env("VAULT_FILE_PASSPHRASE", &passphrase)
            .run()
            .success();
        let c = JsonCreds::parse(&run.stdout);
        assert!(c.session_token.is_some(), "{backend}: {c:?}");
        let mut asked = vec![c.secret_access_key.clone()];
        asked.extend(c.session_token.clone());
        w.keep(&args, &run, asked);
        backend_sessions.push((backend, user, c));
    }
    assert!(
        w.t.dir.join("data/vault/store").is_dir(),
        "the file store was not written"
    );

    stop.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    let vault_done = started.elapsed();

    let last_step = support::now_secs() / 30;

    // Every session made in the run is one collected above: one MFA session
    // (with the original key; none with the new one), one role session, and
    // one session for each other backend's user; the STS accepted each
    // (signed with the stored secret, with a good code).
    let gst = session_token_requests(&original.id);
    assert_eq!(gst.len(), 1, "GetSessionToken calls");
    accepted(&gst);
    assert!(session_token_requests(&new_key.access_key_id).is_empty());
    let ar = assume_role_requests(&role);
    assert_eq!(ar.len(), 1, "AssumeRole calls");
    accepted(&ar);
    for (backend, user, _) in &backend_sessions {
        let g = session_token_requests(&user.key.id);
        assert_eq!(g.len(), 1, "{backend}: GetSessionToken calls");
        accepted(&g);
    }
    // The code sent is one of the device's codes during the run (checked
    // against the current step right after the exec, above).
    let device_codes: BTreeSet<(u64, String)> = (first_step - 1..=last_step + 1)
        .map(|st| (st, iam.code_at(st)))
        .collect();
    for r in &gst {
        assert_eq!(r.param("SerialNumber"), Some(mfa.as_str()));
        let code = r.param("TokenCode").expect("a TokenCode");
        assert!(
            device_codes.iter().any(|(_, c)| c == code),
            "TokenCode {code} is not an RFC 6238 code of {mfa}'s seed during the run"
        );
    }

    // The management key vault generated, read back from the card with
    // the PIN (after the sampler: the PIN is in ykman's argv).
    let out = std::process::Command::new("ykman")
        .arg("--reader")
        .arg(&key.reader)
        .args([
            "piv",
            "objects",
            "export",
            "PRINTED",
            "-",
            "-P",
            &w.secrets.pin,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ykman");
    assert!(out.status.success(), "ykman: {out:?}");
    let mgm = management_key(&out.stdout)
        .unwrap_or_else(|| panic!("no management key in PRINTED: {:02x?}", out.stdout));

    // ---- The secrets.
    let mut secrets = vec![
        Secret::text(
            Kind::LongTerm,
            "the original long-term secret",
            &original.secret,
        ),
        Secret::text(
            Kind::LongTerm,
            "the rotated long-term secret",
            &new_key.secret_access_key,
        ),
        Secret::text(
            Kind::Session,
            "the MFA session's secret key",
            &mfa_creds.secret_access_key,
        ),
        Secret::text(
            Kind::Session,
            "the MFA session's token",
            mfa_creds.session_token.as_deref().unwrap(),
        ),
        Secret::text(
            Kind::Session,
            "the role session's secret key",
            &role_creds.secret_access_key,
        ),
        Secret::text(
            Kind::Session,
            "the role session's token",
            role_creds.session_token.as_deref().unwrap(),
        ),
        Secret::binary(Kind::Seed, "the TOTP seed", &seed),
        Secret::text(Kind::Seed, "the TOTP seed (base32)", &seed_b32),
        Secret::text(
            Kind::Seed,
            "the TOTP seed (base32, lower case)",
            &seed_b32.to_ascii_lowercase(),
        ),
        Secret::text(Kind::PinPuk, "the PIN", &w.secrets.pin),
        Secret::text(Kind::PinPuk, "the PUK", &w.secrets.puk),
        Secret::text(Kind::PinPuk, "the file store's passphrase", &passphrase),
        Secret::binary(Kind::ManagementKey, "the management key", &mgm),
    ];
    for (backend, user, c) in &backend_sessions {
        secrets.push(Secret::text(
            Kind::LongTerm,
            format!("the {backend} backend user's long-term secret"),
            &user.key.secret,
        ));
        secrets.push(Secret::text(
            Kind::Session,
            format!("the {backend} backend session's secret key"),
            &c.secret_access_key,
        ));
        secrets.push(Secret::text(
            Kind::Session,
            format!("the {backend} backend session's token"),
            c.session_token.as_deref().unwrap(),
        ));
    }
    // Every code of the device during the run (the one sent among them).
    for (step, code) in &device_codes {
        secrets.push(Secret::code(
            format!("the MFA code {code} (step {step})"),
            code,
        ));
    }
    let all = |kinds: &[Kind]| -> Vec<&Secret> {
        secrets.iter().filter(|s| kinds.contains(&s.kind)).collect()
    };
    let mut leaks: Vec<String> = Vec::new();

    // ---- Files: the test's HOME, XDG folders and TMPDIR, the whole rig
    // folder and /dev/shm, and what changed in the system's /tmp and
    // /var/tmp during the run. Not this key's state file (it is the card),
    // the STS's recording (the AWS side, below), the execve traces (read
    // below), nor other rigs' folders.
    let rig = support::rig_dir();
    let recording = PathBuf::from(std::env::var("VAULT_RIG_RECORDING").unwrap());
    let mut skip = vec![key.state_path(), recording.clone(), w.traces.clone()];
    let mut unread = Unread::default();
    let mut files = Vec::new();
    for (_, r) in &roots {
        files_under(r, &skip, None, &mut files, &mut unread);
    }
    files_under(&rig, &skip, None, &mut files, &mut unread);
    files_under(Path::new("/dev/shm"), &skip, None, &mut files, &mut unread);
    let searched_whole = files.len();
    skip.push(rig.clone());
    for system_tmp in ["/tmp", "/var/tmp"] {
        let dir = Path::new(system_tmp);
        if let Ok(rd) = std::fs::read_dir(dir) {
            skip.extend(
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("vault-rig."))
                    })
                    .filter(|p| p != &rig),
            );
        }
        files_under(dir, &skip, Some(wall_start), &mut files, &mut unread);
    }
    let searched_tmp = files.len() - searched_whole;
    files.sort();
    files.dedup();
    assert!(
        files.contains(&key.log_path()),
        "the key's APDU log was not searched"
    );
    assert!(!key.apdu_log().is_empty(), "the key's APDU log is empty");
    let mut bytes = 0usize;
    for f in &files {
        let data = match std::fs::read(f) {
            Ok(d) => d,
            Err(e) => {
                unread.note(f, e);
                continue;
            }
        };
        bytes += data.len();
        // Programs (other tests copy the vault binary into their folders)
        // hold digit runs that a 6-digit code matches by chance; secrets
        // other than codes are still searched there.
        let program = data.starts_with(b"\x7fELF");
        for hit in found_in(&data, secrets.iter().filter(|s| !(program && s.standalone))) {
            leaks.push(format!("{hit} in {}", f.display()));
        }
    }
    eprintln!(
        "[hygiene] searched {} files ({} KiB) under HOME, the XDG folders, TMPDIR, {}, /dev/shm \
         and ({searched_tmp} changed during the run) /tmp and /var/tmp; {} vanished before they \
         could be read",
        files.len(),
        bytes / 1024,
        rig.display(),
        unread.vanished
    );
    assert!(
        unread.failed.is_empty(),
        "could not search:\n{}",
        unread.failed.join("\n")
    );

    // ---- The STS's recording: no long-term secret, seed, PIN, PUK,
    // passphrase or management key (session tokens travel in
    // X-Amz-Security-Token, and the MFA code in TokenCode, by design).
    let data = std::fs::read(&recording).unwrap();
    for hit in found_in(
        &data,
        all(&[
            Kind::LongTerm,
            Kind::Seed,
            Kind::PinPuk,
            Kind::ManagementKey,
        ]),
    ) {
        leaks.push(format!("{hit} in the STS's request recording"));
    }
    assert!(
        !sts_requests().is_empty(),
        "the STS's recording is empty: searched nothing"
    );

    // ---- vault's stdout and stderr (with --debug), but for what a
    // command was asked to print.
    let outputs = w.outputs.lock().unwrap();
    for o in outputs.iter() {
        let what = o.argv[2..].join(" ");
        for hit in found_in(o.stderr.as_bytes(), secrets.iter()) {
            leaks.push(format!("{hit} in the stderr of vault {what}"));
        }
        let unasked = secrets
            .iter()
            .filter(|s| s.value.is_empty() || !o.asked.contains(&s.value));
        for hit in found_in(o.stdout.as_bytes(), unasked) {
            leaks.push(format!("{hit} in the stdout of vault {what}"));
        }
    }

    // ---- argv and environments: every execve strace saw in vault's
    // process tree (exhaustive), what the sampler saw (processes outside
    // it), and vault's own argv.
    let seen = seen.lock().unwrap();
    let (traced, trace_files) = traced_execs(&w.traces);
    assert!(
        trace_files >= outputs.len(),
        "{trace_files} strace files for {} vault calls",
        outputs.len()
    );
    std::fs::remove_dir_all(&w.traces).unwrap();
    let traced_argvs: BTreeSet<Vec<u8>> = traced.iter().map(|(a, _)| a.clone()).collect();
    for (what, needle) in [
        ("the enroll", "--totp-secret"),
        ("the exec'd command", "hygiene-child"),
        ("the file backend's exec", "file"),
        ("the keyutils backend's exec", "keyutils"),
    ] {
        assert!(
            traced_argvs
                .iter()
                .any(|a| argv_words(a).contains(&needle.to_string())),
            "strace never saw {what}"
        );
    }
    let mut argvs: BTreeSet<Vec<u8>> = seen.argvs.clone();
    argvs.extend(traced_argvs.iter().cloned());
    argvs.extend(outputs.iter().map(|o| o.argv.join("\0").into_bytes()));
    for a in &argvs {
        for hit in found_in(a, secrets.iter()) {
            leaks.push(format!("{hit} in the argv {:?}", argv_words(a)));
        }
    }
    let vault_argvs = traced_argvs
        .iter()
        .filter(|a| program(a) == "vault")
        .count();

    // ---- Environments.
    let mut environs: BTreeSet<(Vec<u8>, Vec<u8>)> = seen.environs.clone();
    environs.extend(traced.iter().cloned());
    let mut child_envs = 0;
    for (cmdline, env) in &environs {
        let vars: Vec<&[u8]> = env.split(|&b| b == 0).collect();
        let exec_child = vars.iter().any(|v| v.starts_with(b"AWS_VAULT="));
        // The test's own launchers (`setsid`, `keyctl session`, `strace`)
        // and vault, which the test hands the PIN, PUK and passphrase to.
        let launcher = ["setsid", "keyctl", "strace", "vault"].contains(&program(cmdline).as_str())
            && !exec_child;
        let adding = launcher && {
            let w = argv_words(cmdline);
            w.contains(&"add".to_string()) && w.contains(&"--env".to_string())
        };
        child_envs += usize::from(exec_child);
        let forbidden: Vec<&Secret> = secrets
            .iter()
            .filter(|s| match s.kind {
                Kind::Session => !exec_child,
                Kind::PinPuk => !launcher,
                Kind::LongTerm => !adding,
                Kind::Seed | Kind::ManagementKey | Kind::MfaCode => true,
            })
            .collect();
        for hit in found_in(env, forbidden) {
            leaks.push(format!(
                "{hit} in the environment of {:?}",
                argv_words(cmdline)
            ));
        }
    }
    assert!(
        traced
            .iter()
            .any(|(_, env)| env.split(|&b| b == 0).any(|v| v.starts_with(b"AWS_VAULT="))),
        "strace never saw the exec'd command's environment"
    );
    // The command's environment as it printed it: its credentials, nothing
    // of vault's own.
    for (k, v) in &child_env {
        for hit in found_in(
            v.as_bytes(),
            all(&[
                Kind::LongTerm,
                Kind::Seed,
                Kind::PinPuk,
                Kind::ManagementKey,
            ]),
        ) {
            leaks.push(format!("{hit} in the exec'd command's {k}"));
        }
        if k.starts_with("VAULT_PIN") || k.starts_with("VAULT_NEW_") || k == "VAULT_FILE_PASSPHRASE"
        {
            leaks.push(format!("the exec'd command's environment has {k}"));
        }
    }
    eprintln!(
        "[hygiene] strace: {} execves ({vault_argvs} distinct argvs of vault) in {trace_files} \
         files; sampler: {} rounds, {} distinct argvs, {} environments; {child_envs} environments \
         of the exec'd command in all",
        traced.len(),
        seen.rounds,
        seen.argvs.len(),
        seen.environs.len()
    );

    // ---- Permissions of what vault created.
    let mut after = BTreeSet::new();
    for (_, r) in &roots {
        paths_under(r, &mut after);
    }
    let created: Vec<&PathBuf> = after.difference(&before).collect();
    let mut loose = Vec::new();
    for p in &created {
        let m = std::fs::symlink_metadata(p).unwrap();
        let mode = m.permissions().mode() & 0o777;
        let kind = if m.is_dir() { "dir " } else { "file" };
        let (name, root) = roots
            .iter()
            .find(|(_, r)| p.starts_with(r))
            .map(|(n, r)| (*n, r))
            .unwrap();
        eprintln!(
            "[hygiene] created {kind} {mode:04o} ${name}/{}",
            p.strip_prefix(root).unwrap().display()
        );
        if mode & 0o077 != 0 || (m.is_file() && mode & 0o100 != 0) {
            loose.push(format!("{} ({mode:04o})", p.display()));
        }
    }
    for expected in [
        "config-home/vault/tokens.json",
        "data/vault/envelopes",
        "run/vault/locks",
    ] {
        assert!(
            created.iter().any(|p| p.ends_with(expected)),
            "{expected} was not created: {created:#?}"
        );
    }
    let config_mode = std::fs::metadata(&w.t.config).unwrap().permissions().mode() & 0o777;
    eprintln!(
        "[hygiene] kept      0{config_mode:o} $HOME/.aws/config (the test's, rewritten by enroll)"
    );
    if config_mode != 0o600 {
        loose.push(format!(
            "{} widened to {config_mode:04o}",
            w.t.config.display()
        ));
    }

    eprintln!(
        "[hygiene] {} secrets ({} needles); vault calls {:?}, checks {:?}",
        secrets.len(),
        secrets.iter().map(|s| s.needles.len()).sum::<usize>(),
        vault_done,
        started.elapsed() - vault_done
    );
    assert!(leaks.is_empty(), "secrets in clear:\n{}", leaks.join("\n"));
    assert!(loose.is_empty(), "not owner-only:\n{}", loose.join("\n"));
}
