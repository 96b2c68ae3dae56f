//! Shared by the `cli_*` tests: each test gets a `TestEnv` of its own and
//! runs the real `vault` binary through the rig's real services (moto's STS,
//! gnome-keyring's Secret Service, the kernel keyring).
//!
//! Isolation between tests running in parallel inside one rig:
//! - a folder `$VAULT_RIG_DIR/tests/NAME-RANDOM` with HOME, the XDG folders (so the
//!   file store and the lock files) and `~/.aws/config`;
//! - a keychain service `vault-test-NAME-RANDOM`;
//! - a kernel keyring of its own that every vault process of the test joins
//!   as its session keyring (`keyctl session RING …`). The kernel finds a
//!   keyring by name only when its owner may search it, and frees it when
//!   nothing links it: so the keyring is created once, linked into the rig's
//!   session keyring (it lives as long as the rig) and opened to searches;
//! - a random access key ID (`AKIA…`) and role names of its own, by which
//!   its requests are picked out of moto's shared recording.
//!
//! Every process runs with an environment built from scratch, under
//! `setsid` (no controlling terminal: a prompt can never hang on the
//! developer's terminal) and with a deadline.
//!
//! Outside the rig every test fails with instructions, never passes.
#![allow(dead_code)] // each test binary uses a part of this

use rand::Rng;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const VAULT: &str = env!("CARGO_BIN_EXE_vault");
/// moto's account; any role ARN in it can be assumed.
pub const ACCOUNT: &str = "123456789012";
/// How long any one process may run before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// The rig's working folder; panics with instructions when not in a rig.
pub fn rig_dir() -> PathBuf {
    match std::env::var_os("VAULT_RIG_DIR") {
        Some(d) => PathBuf::from(d),
        None => panic!(
            "this test drives vault against the rig's STS, Secret Service and kernel keyring; \
             run inside hw/rig: hw/rig -- cargo test --workspace"
        ),
    }
}

pub fn rig_env(name: &str) -> String {
    rig_dir();
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set: is hw/rig up to date?"))
}

/// `n` random characters from `alphabet`.
pub fn random(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const LOWER_DIGITS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A made-up long-term key, unique to this run: `AKIA` + 16 random
/// characters and a 40-character secret. Never a real-looking constant.
#[derive(Debug, Clone)]
pub struct Key {
    pub id: String,
    pub secret: String,
}

impl Key {
    pub fn random() -> Key {
        Key {
            id: format!("AKIA{}", random(UPPER_DIGITS, 16)),
            secret: random(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+",
                40,
            ),
        }
    }
}

/// An IAM user made in the rig's IAM for one test (`TestEnv::user`):
/// a real access key the strict STS knows, and an enabled virtual MFA
/// device whose seed the test knows, so it can compute and check codes.
#[derive(Debug, Clone)]
pub struct IamUser {
    pub name: String,
    pub arn: String,
    pub key: Key,
    pub mfa_serial: String,
    /// The device's base32 seed.
    pub seed: String,
}

impl IamUser {
    /// RFC 6238 code of this user's device for TOTP step `step`.
    pub fn code_at(&self, step: u64) -> String {
        otp::totp(&otp::base32_decode(&self.seed), step)
    }

    /// The code for the current time step.
    pub fn code(&self) -> String {
        self.code_at(now_secs() / 30)
    }

    /// Whether `code` is the device's code for a step within one of now,
    /// the window STS accepts.
    pub fn is_current_code(&self, code: &str) -> bool {
        let step = now_secs() / 30;
        (step - 2..=step + 1).any(|s| self.code_at(s) == code)
    }

    /// An `mfa_process` that prints the device's current code, computed by
    /// oathtool (Debian's, an RFC 6238 implementation nobody here wrote).
    pub fn mfa_process(&self) -> String {
        format!("oathtool --totp -b {}", self.seed)
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One test's world. See the module documentation.
pub struct TestEnv {
    pub name: String,
    pub dir: PathBuf,
    pub home: PathBuf,
    pub config: PathBuf,
    /// The named kernel keyring every vault process joins as its session keyring.
    pub keyring: String,
    /// Its serial number.
    keyring_id: String,
    /// `VAULT_KEYCHAIN_SERVICE`.
    pub service: String,
    /// A random suffix for role names and MFA serials of this test.
    pub tag: String,
    /// IAM users made so far, by short name.
    users: std::sync::Mutex<BTreeMap<String, IamUser>>,
    /// Roles made so far, by short name.
    roles: std::sync::Mutex<BTreeMap<String, String>>,
}

impl TestEnv {
    pub fn new(name: &str) -> TestEnv {
        let rig = rig_dir();
        let tag = random(LOWER_DIGITS, 8);
        // The tag keeps repeated runs in one rig apart.
        let dir = rig.join("tests").join(format!("{name}-{tag}"));
        let home = dir.join("home");
        for d in [
            home.join(".aws"),
            dir.join("data"),
            dir.join("cache"),
            dir.join("config-home"),
            dir.join("run"),
        ] {
            std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        }
        set_mode(&dir.join("run"), 0o700);
        // Unique across concurrent rigs too: named keyrings are per user,
        // not per rig.
        let keyring = format!("vault-test-{name}-{tag}");
        let out = Command::new("keyctl")
            .args(["newring", &keyring, "@s"])
            .output()
            .expect("keyctl (apt-get install keyutils)");
        assert!(out.status.success(), "keyctl newring: {out:?}");
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // Possessor: everything; owner: view, read, search, link, so that
        // `keyctl session NAME` finds this keyring instead of making a new one.
        let out = Command::new("keyctl")
            .args(["setperm", &id, "0x3f1b0000"])
            .output()
            .expect("keyctl setperm");
        assert!(out.status.success(), "keyctl setperm: {out:?}");
        TestEnv {
            name: name.to_string(),
            config: home.join(".aws").join("config"),
            home,
            dir,
            keyring,
            keyring_id: id,
            service: format!("vault-test-{name}-{tag}"),
            tag,
            users: Default::default(),
            roles: Default::default(),
        }
    }

    /// Takes write access to the test's keyring away (its possessor keeps
    /// view, read, search, link and setattr), so no key can be added to it.
    pub fn keyring_read_only(&self) {
        let out = Command::new("keyctl")
            .args(["setperm", &self.keyring_id, "0x3b1b0000"])
            .output()
            .expect("keyctl setperm");
        assert!(out.status.success(), "keyctl setperm: {out:?}");
    }

    /// Writes `~/.aws/config`.
    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config, text).expect("write config");
    }

    /// Runs hw/sts/provision.py (boto3, with the rig's admin credentials)
    /// on `spec` and returns its answer.
    pub fn provision(&self, spec: serde_json::Value) -> serde_json::Value {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hw/sts/provision.py");
        let mut cmd = self
            .cmd("python3", &[script])
            .env(
                "VAULT_RIG_ADMIN_AWS_ACCESS_KEY_ID",
                rig_env("VAULT_RIG_ADMIN_AWS_ACCESS_KEY_ID"),
            )
            .env(
                "VAULT_RIG_ADMIN_AWS_SECRET_ACCESS_KEY",
                rig_env("VAULT_RIG_ADMIN_AWS_SECRET_ACCESS_KEY"),
            );
        let input = self
            .dir
            .join(format!("provision-{}.json", random(LOWER_DIGITS, 6)));
        std::fs::write(&input, spec.to_string()).expect("write provision spec");
        cmd.cmd
            .stdin(std::fs::File::open(&input).expect("open provision spec"));
        let run = cmd.run().success();
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("provision.py: not JSON ({e}): {}", run.stdout))
    }

    /// The IAM user `NAME-TAG` of this test, made on first use with an
    /// access key and an enabled virtual MFA device.
    pub fn user(&self, name: &str) -> IamUser {
        if let Some(u) = self.users.lock().unwrap().get(name) {
            return u.clone();
        }
        let full = format!("{name}-{}", self.tag);
        let out = self.provision(serde_json::json!({"users": [{"name": full, "mfa": true}]}));
        let u = &out["users"][&full];
        let s = |k: &str| {
            u[k].as_str()
                .unwrap_or_else(|| panic!("provision.py: no {k} in {out}"))
                .to_string()
        };
        let user = IamUser {
            name: full.clone(),
            arn: s("arn"),
            key: Key {
                id: s("access_key_id"),
                secret: s("secret_access_key"),
            },
            mfa_serial: s("mfa_serial"),
            seed: s("seed"),
        };
        self.users
            .lock()
            .unwrap()
            .insert(name.to_string(), user.clone());
        user
    }

    /// A file (0600) holding `user`'s seed, for `vault hw enroll
    /// --totp-secret-file` (vault refuses a seed in argv).
    pub fn seed_file(&self, user: &IamUser) -> String {
        let p = self.dir.join(format!("seed-{}", user.name));
        std::fs::write(&p, &user.seed).expect("write the seed file");
        set_mode(&p, 0o600);
        p.display().to_string()
    }

    /// A real access key (of the IAM user `NAME-TAG`, made on first use).
    pub fn key(&self, user: &str) -> Key {
        self.user(user).key
    }

    /// The ARN of role `NAME-TAG`, made on first use in the rig's IAM:
    /// trusted by the account (so any of its users may assume it), with a
    /// 12-hour MaxSessionDuration.
    pub fn role_arn(&self, role: &str) -> String {
        self.role_with(role, 43_200, false)
    }

    /// Role `NAME-TAG` with its MaxSessionDuration and, if `require_mfa`,
    /// the aws:MultiFactorAuthPresent condition in its trust policy.
    pub fn role_with(&self, role: &str, max_session: u64, require_mfa: bool) -> String {
        if let Some(arn) = self.roles.lock().unwrap().get(role) {
            return arn.clone();
        }
        let full = format!("{role}-{}", self.tag);
        let out = self.provision(serde_json::json!({"roles": [{
            "name": full, "max_session": max_session, "require_mfa": require_mfa
        }]}));
        let arn = out["roles"][&full]["arn"]
            .as_str()
            .unwrap_or_else(|| panic!("provision.py: no role in {out}"))
            .to_string();
        self.roles
            .lock()
            .unwrap()
            .insert(role.to_string(), arn.clone());
        arn
    }

    /// The serial of IAM user `NAME-TAG`'s MFA device (made on first use).
    pub fn mfa_serial(&self, user: &str) -> String {
        self.user(user).mfa_serial
    }

    /// Writes an executable script into the test folder and returns its path.
    pub fn script(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write script");
        set_mode(&p, 0o755);
        p
    }

    /// An `mfa_process` that appends a line to a counter file each time it
    /// runs and prints `code`. Returns (the command, the counter file).
    pub fn counting_mfa_process(&self, code: &str) -> (String, PathBuf) {
        let counter = self.dir.join("mfa-process-runs");
        let script = self.script(
            "mfa-process.sh",
            &format!(
                "#!/bin/sh\necho run >> '{}'\necho {code}\n",
                counter.display()
            ),
        );
        (script.display().to_string(), counter)
    }

    /// An `mfa_process` that appends a line to a counter file each time it
    /// runs and prints `user`'s current code. Returns (the command, the
    /// counter file).
    pub fn counting_mfa_process_of(&self, user: &IamUser) -> (String, PathBuf) {
        let counter = self.dir.join("mfa-process-runs");
        let script = self.script(
            "mfa-process.sh",
            &format!(
                "#!/bin/sh\necho run >> '{}'\nexec {}\n",
                counter.display(),
                user.mfa_process()
            ),
        );
        (script.display().to_string(), counter)
    }

    /// The environment every process of this test starts with, and nothing else.
    pub fn base_env(&self) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = Vec::new();
        let mut set = |k: &str, v: &OsStr| env.push((k.into(), v.to_owned()));
        for inherited in ["PATH", "DBUS_SESSION_BUS_ADDRESS", "TMPDIR", "LANG"] {
            if let Some(v) = std::env::var_os(inherited) {
                set(inherited, &v);
            }
        }
        set("HOME", self.home.as_os_str());
        set("XDG_DATA_HOME", self.dir.join("data").as_os_str());
        set("XDG_CACHE_HOME", self.dir.join("cache").as_os_str());
        set("XDG_CONFIG_HOME", self.dir.join("config-home").as_os_str());
        set("XDG_RUNTIME_DIR", self.dir.join("run").as_os_str());
        set("AWS_CONFIG_FILE", self.config.as_os_str());
        set(
            "AWS_SHARED_CREDENTIALS_FILE",
            self.home.join(".aws").join("credentials").as_os_str(),
        );
        set("AWS_ENDPOINT_URL", OsStr::new(&rig_env("AWS_ENDPOINT_URL")));
        // The rig's IAM Identity Center double (hw/sso), where SSO profiles sign in.
        for var in ["AWS_ENDPOINT_URL_SSO_OIDC", "AWS_ENDPOINT_URL_SSO"] {
            set(var, OsStr::new(&rig_env(var)));
        }
        set("AWS_EC2_METADATA_DISABLED", OsStr::new("true"));
        set("VAULT_KEYCHAIN_SERVICE", OsStr::new(&self.service));
        // The test's own session keyring holds its cache: the user keyring
        // (vault's default) is one per uid, shared by every test of the rig.
        // tests/cache_scope.rs covers the default.
        set("VAULT_CACHE_SCOPE", OsStr::new("session"));
        env
    }

    /// `program args…` in this test's session keyring, with no controlling
    /// terminal and this test's environment.
    pub fn cmd<S: AsRef<OsStr>>(&self, program: impl AsRef<OsStr>, args: &[S]) -> Cmd {
        let mut c = Command::new("setsid");
        // setsid execs in place (a spawned child is no group leader), and
        // `keyctl session` execs in place too: the PID, exit status and
        // signals are the program's own.
        c.arg("-w")
            .arg("keyctl")
            .arg("session")
            .arg(&self.keyring)
            .arg(program)
            .args(args)
            .env_clear()
            .envs(self.base_env())
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        Cmd {
            cmd: c,
            deadline: DEADLINE,
        }
    }

    /// `vault args…`.
    pub fn vault(&self, args: &[&str]) -> Cmd {
        self.cmd(VAULT, args)
    }

    /// `vault add PROFILE --env` with `key`; asserts it worked.
    pub fn add(&self, profile: &str, key: &Key) {
        self.vault(&["add", profile, "--env"])
            .env("AWS_ACCESS_KEY_ID", &key.id)
            .env("AWS_SECRET_ACCESS_KEY", &key.secret)
            .run()
            .success();
    }

    /// `vault exec PROFILE --json [extra…]`: asserts success and returns the object.
    pub fn exec_json(&self, profile: &str, extra: &[&str]) -> (JsonCreds, Run) {
        let mut args = vec!["exec", profile, "--json"];
        args.extend_from_slice(extra);
        let run = self.vault(&args).run().success();
        (JsonCreds::parse(&run.stdout), run)
    }
}

impl Drop for TestEnv {
    /// Unlinks the test's keyring from the rig's session keyring, so the
    /// kernel frees it and its keys: key quotas are per user (20000 bytes
    /// for a user other than root by default), not per rig.
    fn drop(&mut self) {
        let _ = Command::new("keyctl")
            .args(["unlink", &self.keyring_id, "@s"])
            .output();
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// A command about to run; see `TestEnv::cmd`.
pub struct Cmd {
    pub cmd: Command,
    pub deadline: Duration,
}

impl Cmd {
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Cmd {
        self.cmd.env(k, v);
        self
    }

    pub fn deadline(mut self, d: Duration) -> Cmd {
        self.deadline = d;
        self
    }

    pub fn spawn(mut self) -> Running {
        let child = self
            .cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", self.cmd));
        // The program and its arguments, after `setsid -w keyctl session RING`.
        let what: Vec<String> = self
            .cmd
            .get_args()
            .skip(4)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        Running::new(child, self.deadline, what.join(" "))
    }

    pub fn run(self) -> Run {
        self.spawn().wait()
    }
}

/// A started process whose output is being collected.
pub struct Running {
    child: Child,
    out: std::thread::JoinHandle<Vec<u8>>,
    err: std::thread::JoinHandle<Vec<u8>>,
    started: Instant,
    deadline: Duration,
    what: String,
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

impl Running {
    fn new(mut child: Child, deadline: Duration, what: String) -> Running {
        let out = drain(child.stdout.take().expect("piped stdout"));
        let err = drain(child.stderr.take().expect("piped stderr"));
        Running {
            child,
            out,
            err,
            started: Instant::now(),
            deadline,
            what,
        }
    }

    /// The process's PID (the program's own: `setsid` and `keyctl session`
    /// exec in place).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (our own child, by its PID) without waiting for
    /// its output: a grandchild may still hold the pipes.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn wait(mut self) -> Run {
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for child") {
                break s;
            }
            if self.started.elapsed() > self.deadline {
                // Our own child, by its PID.
                let _ = self.child.kill();
                let _ = self.child.wait();
                let err = self.err.join().unwrap_or_default();
                panic!(
                    "{} still running after {:?}; stderr so far:\n{}",
                    self.what,
                    self.deadline,
                    String::from_utf8_lossy(&err)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = self.started.elapsed();
        let stdout = self.out.join().unwrap_or_default();
        let stderr = self.err.join().unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr).into_owned();
        // `keyctl session` announces the keyring it joined; that line is ours.
        let stderr = match stderr.strip_prefix("Joined session keyring: ") {
            Some(rest) => rest
                .split_once('\n')
                .map(|(_, r)| r.to_string())
                .unwrap_or_default(),
            None => stderr,
        };
        let run = Run {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr,
            elapsed,
            what: self.what,
        };
        assert!(
            !run.stderr.contains("panicked"),
            "vault panicked: {}\n{}",
            run.what,
            run.stderr
        );
        run
    }
}

/// What a finished process did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub what: String,
}

impl Run {
    pub fn success(self) -> Run {
        assert_eq!(
            self.code,
            Some(0),
            "{} failed\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts the exit code and the exact stderr (vault names the config
    /// file `~/.aws/config`, HOME being the test's), and that nothing went
    /// to stdout.
    pub fn fails_with(self, code: i32, stderr: &str) -> Run {
        assert_eq!(
            (self.code, self.stderr.as_str(), self.stdout.as_str()),
            (Some(code), stderr, ""),
            "{}",
            self.what
        );
        self
    }

    /// The `KEY=value` lines of an `env` run, as a map.
    pub fn env_map(&self) -> BTreeMap<String, String> {
        self.stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

/// The credential_process object, checked to be the whole of stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonCreds {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub expiration: Option<String>,
}

impl JsonCreds {
    pub fn parse(stdout: &str) -> JsonCreds {
        assert!(
            stdout.ends_with('\n') && stdout.matches('\n').count() == 1,
            "stdout must be one line: {stdout:?}"
        );
        let v: serde_json::Value = serde_json::from_str(stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {stdout:?}"));
        let obj = v.as_object().expect("a JSON object");
        for k in obj.keys() {
            assert!(
                [
                    "Version",
                    "AccessKeyId",
                    "SecretAccessKey",
                    "SessionToken",
                    "Expiration"
                ]
                .contains(&k.as_str()),
                "unexpected field {k} in {stdout}"
            );
        }
        assert_eq!(v["Version"], 1, "{stdout}");
        let s = |k: &str| v[k].as_str().map(str::to_string);
        JsonCreds {
            access_key_id: s("AccessKeyId").expect("AccessKeyId"),
            secret_access_key: s("SecretAccessKey").expect("SecretAccessKey"),
            session_token: s("SessionToken"),
            expiration: s("Expiration"),
        }
    }
}

/// One request the rig's STS recorded.
#[derive(Debug, Clone)]
pub struct StsRequest {
    /// The HTTP status it was answered with.
    pub status: u16,
    /// The AWS error code it was refused with, if it was.
    pub error: Option<String>,
    /// The access key ID it was signed with (`Credential=ID/…`).
    pub key_id: String,
    /// The signing region (`Credential=ID/DATE/REGION/…`).
    pub region: String,
    /// The decoded form body.
    pub params: BTreeMap<String, String>,
}

impl StsRequest {
    pub fn action(&self) -> &str {
        self.params.get("Action").map(String::as_str).unwrap_or("")
    }
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every request the rig's STS recorded so far, in order (all tests'
/// requests: pick yours by key ID or role ARN). The recording must exist,
/// start with the server's own "started" line and hold only well-formed
/// lines: an unreadable recording fails the test instead of reading as
/// "no request was made".
pub fn sts_requests() -> Vec<StsRequest> {
    use base64::Engine;
    let path = rig_env("VAULT_RIG_RECORDING");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the STS recording {path} cannot be read: {e}"));
    // A line still being written by the STS (another test's request) has
    // no newline yet: it is not part of what was recorded so far.
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    let mut lines = complete.lines();
    let first: serde_json::Value = lines
        .next()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "the STS recording {path} has no \"started\" line: is hw/rig's strict STS running?"
            )
        });
    assert_eq!(first["event"], "started", "first line of {path}: {first}");
    lines
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| {
                panic!("unreadable line in the STS recording {path} ({e}): {l}")
            })
        })
        .filter(|e| e.get("event").is_none())
        .map(|e| {
            let body = e["body"].as_str().unwrap_or_default();
            let body = if e["body_encoded"].as_bool().unwrap_or(false) {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .unwrap_or_else(|err| panic!("body is not base64 ({err}): {e}"));
                String::from_utf8_lossy(&raw).into_owned()
            } else {
                body.to_string()
            };
            let params = body
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect();
            let auth = e["headers"]["Authorization"].as_str().unwrap_or_default();
            let scope: Vec<&str> = auth
                .split_once("Credential=")
                .map(|(_, r)| r.split([',', ' ']).next().unwrap_or(""))
                .unwrap_or("")
                .split('/')
                .collect();
            StsRequest {
                status: e["status"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("recorded request without status: {e}"))
                    as u16,
                error: e["error"].as_str().map(str::to_string),
                key_id: scope.first().unwrap_or(&"").to_string(),
                region: scope.get(2).unwrap_or(&"").to_string(),
                params,
            }
        })
        .collect()
}

/// Every request recorded before a marker request this call sends now.
/// The marker proves the recording is being written up to this moment, so
/// an answer without some request means it was never sent, not that the
/// recording stopped or was never written.
pub fn sts_requests_until_now() -> Vec<StsRequest> {
    use std::io::{Read as _, Write as _};
    let marker = random(LOWER_DIGITS, 20);
    let endpoint = rig_env("AWS_ENDPOINT_URL");
    let host = endpoint
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("AWS_ENDPOINT_URL {endpoint} is not http://"))
        .trim_end_matches('/');
    let body = format!("Action=GetCallerIdentity&Version=2011-06-15&VaultTestMarker={marker}");
    let mut conn = std::net::TcpStream::connect(host)
        .unwrap_or_else(|e| panic!("the rig's STS at {host} does not answer: {e}"));
    write!(
        conn,
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send the marker request");
    // The STS records a request before it answers: once the answer is in,
    // so is the marker.
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer)
        .expect("read the marker's answer");
    let mut reqs = sts_requests();
    let at = reqs
        .iter()
        .position(|r| r.param("VaultTestMarker") == Some(marker.as_str()))
        .unwrap_or_else(|| {
            panic!("the marker request is not in the STS recording: the recording is not being written")
        });
    reqs.truncate(at);
    reqs
}

/// GetSessionToken requests signed with `key_id`.
pub fn session_token_requests(key_id: &str) -> Vec<StsRequest> {
    sts_requests_until_now()
        .into_iter()
        .filter(|r| r.action() == "GetSessionToken" && r.key_id == key_id)
        .collect()
}

/// AssumeRole requests for `role_arn`.
pub fn assume_role_requests(role_arn: &str) -> Vec<StsRequest> {
    sts_requests_until_now()
        .into_iter()
        .filter(|r| r.action() == "AssumeRole" && r.param("RoleArn") == Some(role_arn))
        .collect()
}

/// Lines in a counter file (how often an `mfa_process` ran).
pub fn count_lines(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}
pub mod desktop;
pub mod otp;
pub mod proxy;
pub mod token;
pub mod vyk;

/// `aws ARGS… --output json` as the rig's administrator
/// (`VAULT_RIG_ADMIN_AWS_*`), with the rig's endpoint; asserts success and
/// returns the parsed output (`Null` when the command prints nothing).
pub fn aws_admin(t: &TestEnv, args: &[&str]) -> serde_json::Value {
    let mut a: Vec<&str> = args.to_vec();
    a.extend_from_slice(&["--output", "json"]);
    let run = t
        .cmd("aws", &a)
        .env(
            "AWS_ACCESS_KEY_ID",
            rig_env("VAULT_RIG_ADMIN_AWS_ACCESS_KEY_ID"),
        )
        .env(
            "AWS_SECRET_ACCESS_KEY",
            rig_env("VAULT_RIG_ADMIN_AWS_SECRET_ACCESS_KEY"),
        )
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_PAGER", "")
        .run()
        .success();
    if run.stdout.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("aws {args:?}: not JSON ({e}): {}", run.stdout))
    }
}

/// Sets the rig's scripted browser (hw/sso, hw/README.md "The SSO double")
/// to answer every later SSO sign-in: `approve`, `deny` or `manual`, for
/// device-code and authorize sign-ins. The double is one per rig: tests
/// that use it take turns and set `manual` back when done.
pub fn sso_policy(device: &str, authorize: &str) {
    use std::io::{Read as _, Write as _};
    let base = rig_env("VAULT_RIG_SSO_CONTROL");
    let rest = base
        .strip_prefix("http://")
        .expect("VAULT_RIG_SSO_CONTROL is http://");
    let (host, prefix) = rest.split_once('/').expect("a path after the host");
    let body = serde_json::json!({"device": device, "authorize": authorize}).to_string();
    let mut s = std::net::TcpStream::connect(host).expect("the SSO double answers");
    write!(
        s,
        "POST /{prefix}/policy HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write to the SSO double");
    let mut out = String::new();
    s.read_to_string(&mut out)
        .expect("read the SSO double's answer");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}
