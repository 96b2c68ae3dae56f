//! `vault completion SHELL` and `vault man`: generated from the clap
//! definitions, printed on stdout. They need no store, config or token, so
//! these tests run the binary directly, with an empty environment.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

const VAULT: &str = env!("CARGO_BIN_EXE_vault");

fn vault(args: &[&str]) -> (String, String) {
    let out = Command::new(VAULT)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "vault {args:?}: {stderr}");
    (stdout, stderr)
}

/// Every subcommand, as `vault --help` lists it (checked against it below).
const COMMANDS: &[&str] = &[
    "add",
    "list",
    "remove",
    "clear",
    "exec",
    "export",
    "login",
    "rotate",
    "hw",
    "sso",
    "completion",
    "man",
];
/// Their aliases, also offered as completions.
const ALIASES: &[&str] = &["ls", "rm"];
/// `vault hw`'s subcommands.
const HW_COMMANDS: &[&str] = &["enroll", "status"];

fn set<'a>(words: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    words.into_iter().map(str::to_string).collect()
}

/// What a shell should offer after `vault ` and `vault hw `: every
/// subcommand and alias, and clap's `help`, nothing else.
fn expected_top() -> BTreeSet<String> {
    set(COMMANDS.iter().chain(ALIASES).copied().chain(["help"]))
}
fn expected_hw() -> BTreeSet<String> {
    set(HW_COMMANDS.iter().copied().chain(["help"]))
}

/// The names and aliases in the `Commands:` section of `vault ARGS --help`.
fn help_commands(args: &[&str]) -> BTreeSet<String> {
    let mut argv = args.to_vec();
    argv.push("--help");
    let (help, _) = vault(&argv);
    let section = help
        .split_once("Commands:\n")
        .unwrap_or_else(|| panic!("no Commands: in {help}"))
        .1;
    let mut names = BTreeSet::new();
    for line in section.lines().take_while(|l| !l.trim().is_empty()) {
        let name = line.split_whitespace().next().unwrap();
        names.insert(name.to_string());
        if let Some((_, alias)) = line.rsplit_once("[alias: ") {
            names.insert(alias.trim_end_matches(']').to_string());
        }
    }
    names
}

#[test]
fn the_command_lists_here_are_the_ones_vault_help_shows() {
    assert_eq!(help_commands(&[]), expected_top());
    assert_eq!(help_commands(&["hw"]), expected_hw());
}

/// The words bash's completion function offers for `COMP_WORDS`, options
/// (`-x`, `--xyz`) left out.
fn bash_candidates(script: &str, words: &[&str]) -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vault.bash");
    std::fs::write(&file, script).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let (cur, prev) = (words[cword], words[cword - 1]);
    let probe = format!(
        "source '{}'\nCOMP_WORDS=({}); COMP_CWORD={cword}; _vault vault '{cur}' '{prev}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        file.display(),
        quoted.join(" ")
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &probe])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .map(str::trim)
        .filter(|w| !w.is_empty() && !w.starts_with('-'))
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completion_is_valid_bash_and_registers_itself() {
    let (script, stderr) = vault(&["completion", "bash"]);
    assert_eq!(stderr, "");
    assert!(script.contains("--create-mfa-device"));
    assert!(script.contains("complete -F _vault"), "registers itself");
    let mut bash = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    bash.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = bash.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sourced into bash, the script offers exactly the subcommands after
/// `vault <TAB>` and `vault hw <TAB>`, and completes a prefix to the
/// commands it starts.
#[test]
fn bash_completion_offers_exactly_the_commands_when_sourced() {
    let (script, _) = vault(&["completion", "bash"]);
    assert_eq!(bash_candidates(&script, &["vault", ""]), expected_top());
    assert_eq!(
        bash_candidates(&script, &["vault", "hw", ""]),
        expected_hw()
    );
    assert_eq!(
        bash_candidates(&script, &["vault", "ex"]),
        set(["exec", "export"])
    );
    assert_eq!(bash_candidates(&script, &["vault", "ro"]), set(["rotate"]));
    assert_eq!(bash_candidates(&script, &["vault", "lo"]), set(["login"]));
}

/// The `'name:description'` entries of the zsh function `function`'s
/// `commands=( ... )` array.
fn zsh_candidates(script: &str, function: &str) -> BTreeSet<String> {
    let body = script
        .split_once(&format!("\n{function}() {{\n"))
        .unwrap_or_else(|| panic!("no {function} in the zsh script"))
        .1;
    let array = body
        .split_once("commands=(\n")
        .unwrap_or_else(|| panic!("no commands=( in {function}"))
        .1;
    let mut names = BTreeSet::new();
    for line in array.lines().take_while(|l| l.trim() != ")") {
        let entry = line
            .strip_prefix('\'')
            .unwrap_or_else(|| panic!("not a 'name:description' entry: {line}"));
        let (name, _) = entry.split_once(':').unwrap();
        names.insert(name.to_string());
    }
    names
}

/// The `-a "NAME"` candidates of the fish `complete -c vault` lines whose
/// condition (`-n "..."`) is exactly `condition`.
fn fish_candidates(script: &str, condition: &str) -> BTreeSet<String> {
    let prefix = format!("complete -c vault -n \"{condition}\" -f -a \"");
    script
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| rest.split_once('"').unwrap().0.to_string())
        .collect()
}

#[test]
fn zsh_and_fish_completions_offer_exactly_the_commands() {
    let (zsh, _) = vault(&["completion", "zsh"]);
    assert!(zsh.starts_with("#compdef vault"), "{zsh:.80}");
    assert_eq!(zsh_candidates(&zsh, "_vault_commands"), expected_top());
    assert_eq!(
        zsh_candidates(&zsh, "_vault__subcmd__hw_commands"),
        expected_hw()
    );
    let (fish, _) = vault(&["completion", "fish"]);
    assert_eq!(
        fish_candidates(&fish, "__fish_vault_needs_command"),
        expected_top()
    );
    let hw = format!(
        "__fish_vault_using_subcommand hw; and not __fish_seen_subcommand_from {}",
        HW_COMMANDS
            .iter()
            .chain(&["help"])
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert_eq!(fish_candidates(&fish, &hw), expected_hw());
}

// ---- Profile names (issue 12.2): the scripts complete the config's
// profiles after exec, export, login, rotate, remove (rm) and clear, as
// aws-vault's completion does. Each shell runs the real script: bash calls
// its completion function, zsh completes in a pty (zpty) after compinit,
// fish answers `complete -C`.

/// A config with every kind of profile: `[default]`, plain, role, SSO and
/// credential_process ones, and an sso-session (not a profile).
const CONFIG: &str = "\
[default]
region = eu-west-1

[profile admin]
mfa_serial = arn:aws:iam::111111111111:mfa/admin

[profile admin-cli]
credential_process = vault exec admin --json

[profile dev]
source_profile = admin
role_arn = arn:aws:iam::222222222222:role/dev

[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = eu-west-1

[profile sso-reader]
sso_session = corp
sso_account_id = 333333333333
sso_role_name = Reader
";
const PROFILES: &[&str] = &["default", "admin", "admin-cli", "dev", "sso-reader"];
/// The commands that take a profile, aliases included.
const PROFILE_COMMANDS: &[&str] = &["exec", "export", "login", "rotate", "remove", "rm", "clear"];

/// A home with `~/.aws/config` (or a given `AWS_CONFIG_FILE`), and `vault`
/// on PATH, as a user's shell has them.
struct Home {
    dir: tempfile::TempDir,
    config_file: Option<std::path::PathBuf>,
}

impl Home {
    fn with_config(text: &str) -> Home {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".aws")).unwrap();
        std::fs::write(dir.path().join(".aws/config"), text).unwrap();
        Home {
            dir,
            config_file: None,
        }
    }

    fn env(&self, cmd: &mut Command) {
        let bin = std::path::Path::new(VAULT).parent().unwrap();
        let mut path = std::ffi::OsString::from(bin);
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        cmd.env_clear()
            .env("PATH", path)
            .env("HOME", self.dir.path())
            .env("TERM", "xterm")
            // Neither is consulted: a store or prompt touched would fail.
            .env("VAULT_BACKEND", "no-such-backend")
            .env("VAULT_PROMPT", "no-such-driver");
        if let Some(f) = &self.config_file {
            cmd.env("AWS_CONFIG_FILE", f);
        }
    }

    fn script(&self, shell: &str) -> String {
        let mut cmd = Command::new(VAULT);
        cmd.args(["completion", shell]);
        self.env(&mut cmd);
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    /// Every candidate `shell` offers with the cursor at the end of `line`.
    fn complete(&self, shell: &str, line: &str) -> BTreeSet<String> {
        let script = self.script(shell);
        let work = tempfile::tempdir().unwrap();
        let mut cmd = match shell {
            "bash" => {
                let file = work.path().join("vault.bash");
                std::fs::write(&file, &script).unwrap();
                let mut words: Vec<String> =
                    line.split_whitespace().map(|w| format!("'{w}'")).collect();
                if line.ends_with(' ') {
                    words.push("''".into());
                }
                let probe = format!(
                    "source '{}'\nCOMP_WORDS=({}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n\
                     _vault vault \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
                     printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
                    file.display(),
                    words.join(" ")
                );
                let mut c = Command::new("bash");
                c.args(["--norc", "--noprofile", "-c", &probe]);
                c
            }
            "zsh" => {
                let fpath = work.path().join("functions");
                std::fs::create_dir(&fpath).unwrap();
                std::fs::write(fpath.join("_vault"), &script).unwrap();
                let probe = work.path().join("probe.zsh");
                std::fs::write(&probe, ZSH_PROBE).unwrap();
                let mut c = Command::new("zsh");
                c.arg("-f")
                    .arg(&probe)
                    .arg(&fpath)
                    .arg(work.path().join("candidates"))
                    .arg(line);
                c
            }
            "fish" => {
                let file = work.path().join("vault.fish");
                std::fs::write(&file, &script).unwrap();
                let mut c = Command::new("fish");
                c.args(["--no-config", "-c"])
                    .arg(format!("source '{}'; complete -C '{line}'", file.display()));
                c
            }
            _ => unreachable!(),
        };
        self.env(&mut cmd);
        cmd.current_dir(work.path()).stdin(Stdio::null());
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {shell} ({e}): hw/setup installs it"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{shell} on {line:?}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text.lines()
            // fish: `candidate<TAB>description`
            .map(|l| l.split('\t').next().unwrap().trim())
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// Runs in `zsh -f PROBE FPATH OUT LINE`: an interactive zsh in a pty
/// (zpty), with compinit and the script as `_vault` on its fpath, types LINE
/// and <TAB>, and prints what the completion system was given to show
/// (`compadd` wrapped to write its matches to OUT), one a line. ^X, bound
/// to a widget marking the end, says the <TAB> is done.
const ZSH_PROBE: &str = r#"
zmodload zsh/zpty || exit 3
dir=$1 out=$2 line=$3
: > $out
zpty probe zsh -f -i
zpty -w probe "fpath=(${(q)dir} \$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w probe "compadd() { if (( \${@[(I)-[OAD]]} )); then builtin compadd \"\$@\"; return; fi; local -a got_; builtin compadd -O got_ \"\$@\"; print -rl -- \$got_ >> ${(q)out}; builtin compadd \"\$@\"; }"
zpty -w probe "probe_done_() { print -r -- '<<done>>' >> ${(q)out}; }; zle -N probe_done_; bindkey '^X' probe_done_"
zpty -w -n probe "$line"$'\t\x18'
for i in {1..400}; do grep -q '<<done>>' $out && break; sleep 0.05; done
zpty -d probe
grep -q '<<done>>' $out || { print -u2 "zsh gave no answer for: $line"; exit 4; }
grep -v '<<done>>' $out
"#;

const SHELLS: &[&str] = &["bash", "zsh", "fish"];

#[test]
fn profile_names_are_printed_for_the_scripts_from_the_config() {
    let mut home = Home::with_config(CONFIG);
    let names = |home: &Home, bin: &str| {
        let mut cmd = Command::new(bin);
        cmd.arg("__complete-profiles");
        home.env(&mut cmd);
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
        String::from_utf8(out.stdout).unwrap()
    };
    // ~/.aws/config, file order, SSO profiles too, no sso-session; the same
    // from vault-core run by hand.
    let expected: String = PROFILES.iter().map(|p| format!("{p}\n")).collect();
    assert_eq!(names(&home, VAULT), expected);
    let core = std::path::Path::new(VAULT).with_file_name("vault-core");
    assert_eq!(names(&home, core.to_str().unwrap()), expected);
    // AWS_CONFIG_FILE wins.
    let other = home.dir.path().join("other-config");
    std::fs::write(&other, "[profile elsewhere]\nregion = us-east-1\n").unwrap();
    home.config_file = Some(other.clone());
    assert_eq!(names(&home, VAULT), "elsewhere\n");
    // A config vault cannot read is no names and success, never an error
    // in the middle of a command line: a syntax error, not UTF-8, a
    // directory, no file at all.
    for broken in [&b"[profile ok]\nthis is not ini\n"[..], b"[profile \xff]\n"] {
        std::fs::write(&other, broken).unwrap();
        assert_eq!(names(&home, VAULT), "", "{broken:?}");
    }
    home.config_file = Some(home.dir.path().to_path_buf());
    assert_eq!(names(&home, VAULT), "");
    home.config_file = Some(home.dir.path().join("missing"));
    assert_eq!(names(&home, VAULT), "");
}

/// After each command that takes a profile, in each shell: exactly the
/// profile names, a prefix narrows them, and options or global options
/// before the profile are stepped over.
#[test]
fn every_shell_completes_profile_names_after_the_commands_that_take_one() {
    let home = Home::with_config(CONFIG);
    let all = set(PROFILES.iter().copied());
    for shell in SHELLS {
        for cmd in PROFILE_COMMANDS {
            let line = format!("vault {cmd} ");
            assert_eq!(home.complete(shell, &line), all, "{shell}: {line:?}");
        }
        for (line, expected) in [
            ("vault exec ad", set(["admin", "admin-cli"])),
            ("vault login sso", set(["sso-reader"])),
            ("vault export d", set(["default", "dev"])),
            (
                "vault --backend file exec -d 1h -n a",
                set(["admin", "admin-cli"]),
            ),
            ("vault rotate --mfa-token 123456 ", all.clone()),
            ("vault --debug clear -f ", all.clone()),
        ] {
            assert_eq!(home.complete(shell, line), expected, "{shell}: {line:?}");
        }
    }
}

/// Profile names only where a profile goes: not after the profile, not
/// after `add` (a new profile), not as an option's value; commands and
/// options complete as before.
#[test]
fn every_shell_still_completes_commands_and_options() {
    let home = Home::with_config(CONFIG);
    for shell in SHELLS {
        // (bash offers the global options there too)
        let top: BTreeSet<String> = home
            .complete(shell, "vault ")
            .into_iter()
            .filter(|w| !w.starts_with('-'))
            .collect();
        assert_eq!(top, expected_top(), "{shell}: commands");
        assert_eq!(
            home.complete(shell, "vault ex"),
            set(["exec", "export"]),
            "{shell}"
        );
        let options = home.complete(shell, "vault exec --");
        for o in [
            "--duration",
            "--region",
            "--mfa-token",
            "--json",
            "--ecs-server",
        ] {
            assert!(options.contains(o), "{shell}: {o} not in {options:?}");
        }
        assert!(
            options.iter().all(|o| o.starts_with("--")),
            "{shell}: {options:?}"
        );
        let options = home.complete(shell, "vault rotate --");
        assert!(options.contains("--no-session"), "{shell}: {options:?}");
        for line in [
            "vault exec admin ",
            "vault exec admin -- ",
            "vault add ",
            "vault list ",
            "vault exec --region ",
        ] {
            let got = home.complete(shell, line);
            assert!(
                PROFILES.iter().all(|p| !got.contains(*p)),
                "{shell}: {line:?} offered profiles: {got:?}"
            );
        }
    }
}

#[test]
fn a_broken_config_completes_no_profile_names_and_no_error() {
    let home = Home::with_config("[profile admin\nregion = eu-west-1\n");
    for shell in SHELLS {
        let got = home.complete(shell, "vault exec ");
        assert!(
            PROFILES.iter().all(|p| !got.contains(*p)),
            "{shell}: {got:?}"
        );
    }
}

/// aws-vault users type `vault exec admin aws s3 ls`: the usage error
/// says where `--` goes.
#[test]
fn exec_without_dashes_hints_where_they_go() {
    let home = Home::with_config(CONFIG);
    let mut cmd = Command::new(VAULT);
    cmd.args(["exec", "admin", "aws", "s3", "ls"]);
    home.env(&mut cmd);
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("vault: hint: put `--` before the command: vault exec admin -- aws s3 ls\n"),
        "{stderr}"
    );
}

#[test]
fn unknown_shell_is_a_usage_error() {
    let out = Command::new(VAULT)
        .args(["completion", "tcsh"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn man_page_is_roff_and_covers_the_commands() {
    let (page, stderr) = vault(&["man"]);
    assert_eq!(stderr, "");
    // roff: clap_mangen's apostrophe preamble, then the title.
    let first_macro = page
        .lines()
        .find(|l| l.starts_with(".TH"))
        .expect("a .TH header");
    assert!(first_macro.starts_with(".TH vault 1"), "{first_macro}");
    assert!(
        page.lines()
            .take_while(|l| !l.starts_with(".TH"))
            .all(|l| l.starts_with('.')),
        "only requests before .TH"
    );
    assert_eq!(page.matches("\n.TH ").count(), 1, "one page");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH COMMANDS"] {
        assert!(page.contains(section), "{section} missing");
    }
    // Groups have no section of their own; their commands do.
    for cmd in COMMANDS.iter().filter(|c| !["hw", "sso"].contains(*c)) {
        let heading = format!(".SS \"vault {cmd}\"");
        assert!(page.contains(&heading), "{heading} missing");
    }
    for cmd in HW_COMMANDS {
        let heading = format!(".SS \"vault hw {cmd}\"");
        assert!(page.contains(&heading), "{heading} missing");
    }
    assert!(page.contains(".SS \"vault sso populate\""));
    assert!(page.contains("\\-\\-create\\-mfa\\-device"));

    // man(1) renders it. Without man the test fails: hw/setup installs it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vault.1");
    std::fs::write(&file, &page).unwrap();
    let out = Command::new("man")
        .arg("-l")
        .arg(&file)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run man ({e}): apt-get install man-db (hw/setup installs it)")
        });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for cmd in ["vault hw enroll", "vault login", "vault rotate"] {
        assert!(text.contains(cmd), "{cmd} not rendered: {text:.400}");
    }
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let mut child = Command::new(VAULT)
        .arg("man")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
