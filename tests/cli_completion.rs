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
