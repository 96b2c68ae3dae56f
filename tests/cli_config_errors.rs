//! Configuration and command-line mistakes, as the user sees them: the exact
//! stderr and exit status of the real binary (1 for vault's own errors, 2
//! for syntax clap rejects), nothing on stdout, never a panic. Each is
//! caught before any store, token or STS is reached, so these run under
//! plain `cargo test`, without the rig: a temporary HOME and an emptied
//! environment stand in for the user's machine. Errors that need a stored
//! key, a token or STS to show are in cli_errors.rs, in the rig.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::{Command, Stdio};

/// A user with a HOME of their own and nothing else: no VAULT_* or AWS_*
/// variables, no stored keys.
struct TestEnv {
    home: tempfile::TempDir,
}

impl TestEnv {
    fn new(_name: &str) -> TestEnv {
        TestEnv {
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn write_config(&self, text: &str) {
        let dir = self.home.path().join(".aws");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config"), text).unwrap();
    }

    fn role_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::123456789012:role/{name}")
    }

    fn vault(&self, args: &[&str]) -> Vault {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vault"));
        cmd.args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null());
        Vault {
            cmd,
            what: format!("vault {}", args.join(" ")),
        }
    }
}

struct Vault {
    cmd: Command,
    what: String,
}

impl Vault {
    fn env(mut self, key: &str, value: &str) -> Vault {
        self.cmd.env(key, value);
        self
    }

    fn run(mut self) -> Run {
        let out = self.cmd.output().unwrap();
        let run = Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            what: self.what,
        };
        assert!(
            !run.stderr.contains("panicked"),
            "{}: {}",
            run.what,
            run.stderr
        );
        run
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    what: String,
}

impl Run {
    fn fails_with(self, code: i32, stderr: &str) {
        assert_eq!(
            (self.code, self.stderr.as_str(), self.stdout.as_str()),
            (Some(code), stderr, ""),
            "{}",
            self.what
        );
    }
}

#[test]
fn malformed_config_names_the_file_and_line() {
    let t = TestEnv::new("err_config_syntax");
    t.write_config("[profile a]\nregion = eu-west-1\n[profile b\nregion = x\n");
    for args in [
        &["exec", "a", "--json"][..],
        &["list"],
        &["exec", "a", "--", "true"],
    ] {
        t.vault(args).run().fails_with(
            1,
            "vault: ~/.aws/config line 3: section header \"[profile b\" has no closing \"]\"\n",
        );
    }
    t.write_config("[profile a]\nregion = eu-west-1\nthis is not a setting\n");
    t.vault(&["exec", "a", "--json"]).run().fails_with(
        1,
        "vault: ~/.aws/config line 3: expected \"key = value\", found \"this is not a setting\"\n",
    );
    t.write_config("[profile a]\nduration_seconds = 12\n");
    t.vault(&["exec", "a", "--json"]).run().fails_with(
        1,
        "vault: ~/.aws/config line 2: duration_seconds in [profile a] must be a number of \
         seconds from 900 to 129600 (15 minutes to 36 hours), found \"12\"\n",
    );
}

#[test]
fn unknown_profile_suggests_a_near_name() {
    let t = TestEnv::new("err_unknown_profile");
    t.write_config("[profile production]\n\n[profile staging]\n");
    t.vault(&["exec", "prodution", "--json"]).run().fails_with(
        1,
        "vault: profile \"prodution\" is not in ~/.aws/config; did you mean \"production\"?\n\
         vault: hint: add a [profile prodution] section to ~/.aws/config, or store keys for it \
         with `vault add prodution`\n",
    );
    t.vault(&["exec", "zzz", "--json"]).run().fails_with(
        1,
        "vault: profile \"zzz\" is not in ~/.aws/config; its profiles are production, staging\n\
         vault: hint: add a [profile zzz] section to ~/.aws/config, or store keys for it \
         with `vault add zzz`\n",
    );
}

#[test]
fn source_profile_loop_is_reported_not_followed() {
    let t = TestEnv::new("err_source_loop");
    let (a, b) = (t.role_arn("a"), t.role_arn("b"));
    t.write_config(&format!(
        "[profile a]\nsource_profile = b\nrole_arn = {a}\n\n\
         [profile b]\nsource_profile = a\nrole_arn = {b}\n"
    ));
    t.vault(&["exec", "a", "--json"]).run().fails_with(
        1,
        "vault: source_profile loop in ~/.aws/config: a → b → a\n\
         vault: hint: one profile in the loop must use its own stored keys instead of a \
         source_profile\n",
    );
}

#[test]
fn an_sso_profile_without_its_role_says_what_is_missing() {
    let t = TestEnv::new("err_sso");
    t.write_config(
        "[profile s]\nsso_session = corp\nsso_account_id = 123456789012\n\n\
         [sso-session corp]\nsso_start_url = https://example.awsapps.com/start\n\
         sso_region = us-east-1\n",
    );
    t.vault(&["exec", "s", "--json"]).run().fails_with(
        1,
        "vault: profile \"s\" is configured for SSO, but it has no sso_role_name\n\
         vault: hint: an SSO profile needs sso_account_id and sso_role_name, and either \
         sso_session naming an [sso-session NAME] section with sso_start_url and sso_region, \
         or sso_start_url and sso_region itself (`aws configure sso` writes them)\n",
    );
}

#[test]
fn unknown_backend_lists_the_choices() {
    let t = TestEnv::new("err_backend");
    t.write_config("[profile p]\n");
    for cmd in [
        t.vault(&["--backend", "nope", "list"]),
        t.vault(&["list"]).env("VAULT_BACKEND", "nope"),
    ] {
        cmd.run().fails_with(
            1,
            "vault: unknown backend \"nope\"\nvault: hint: choose one of: keychain, keyutils, file\n",
        );
    }
}

#[test]
fn command_line_mistakes_are_usage_errors() {
    let t = TestEnv::new("err_usage");
    t.vault(&["exec", "p", "--json", "--", "true"])
        .run()
        .fails_with(
            2,
            "error: the argument '--json' cannot be used with '[CMD]...'\n\n\
         Usage: vault exec --json <PROFILE> [-- <CMD>...]\n\n\
         For more information, try '--help'.\n",
        );
    t.vault(&["exec"]).run().fails_with(
        2,
        "error: the following required arguments were not provided:\n  <PROFILE>\n\n\
         Usage: vault exec <PROFILE> [-- <CMD>...]\n\n\
         For more information, try '--help'.\n",
    );
    t.vault(&["frobnicate"]).run().fails_with(
        2,
        "error: unrecognized subcommand 'frobnicate'\n\n\
         \x20 tip: a similar subcommand exists: 'rotate'\n\n\
         Usage: vault [OPTIONS] <COMMAND>\n\n\
         For more information, try '--help'.\n",
    );
    t.vault(&["--prompt", "gpg", "list"]).run().fails_with(
        1,
        "vault: unknown prompt driver \"gpg\": use one of auto, terminal, pinentry, zenity, \
         kdialog, osascript (--prompt or VAULT_PROMPT)\n",
    );
}

#[test]
fn exec_without_dashes_before_the_command_says_how() {
    let t = TestEnv::new("err_exec_dashes");
    t.write_config("[profile admin]\nregion = eu-west-1\n");
    t.vault(&["exec", "admin", "aws", "s3", "ls"])
        .run()
        .fails_with(
            2,
            "error: unexpected argument 'aws' found\n\n\
         Usage: vault exec [OPTIONS] <PROFILE> [-- <CMD>...]\n\n\
         For more information, try '--help'.\n\
         vault: hint: put `--` before the command: vault exec admin -- aws s3 ls\n",
        );
}
