//! `vault completion SHELL` and `vault man`: generated from the clap
//! definitions, printed on stdout. They need no store, config or token, so
//! these tests run the binary directly, with an empty environment.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

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

/// Every subcommand name, from `vault --help`.
const COMMANDS: &[&str] = &[
    "add",
    "list",
    "remove",
    "clear",
    "exec",
    "export",
    "hw",
    "completion",
    "man",
];

#[test]
fn bash_completion_is_valid_bash_and_knows_the_commands() {
    let (script, stderr) = vault(&["completion", "bash"]);
    assert_eq!(stderr, "");
    assert!(!script.is_empty());
    for c in COMMANDS {
        assert!(script.contains(c), "{c} missing");
    }
    assert!(script.contains("enroll"), "hw enroll missing");
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

#[test]
fn bash_completion_completes_commands_when_sourced() {
    let (script, _) = vault(&["completion", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vault.bash");
    std::fs::write(&file, script).unwrap();
    // What bash would offer after `vault hw <TAB>` and `vault ex<TAB>`.
    let probe = format!(
        "source '{}'\n\
         COMP_WORDS=(vault hw ''); COMP_CWORD=2; _vault vault '' hw; echo \"hw: ${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=(vault ex); COMP_CWORD=1; _vault vault ex vault; echo \"ex: ${{COMPREPLY[*]}}\"\n",
        file.display()
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &probe])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |p: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(p))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let hw = line("hw: ");
    assert!(
        hw.contains(&"enroll".to_string()) && hw.contains(&"status".to_string()),
        "{text}"
    );
    let ex = line("ex: ");
    assert!(
        ex.contains(&"exec".to_string()) && ex.contains(&"export".to_string()),
        "{text}"
    );
}

#[test]
fn zsh_and_fish_completions() {
    let (zsh, _) = vault(&["completion", "zsh"]);
    assert!(zsh.starts_with("#compdef vault"), "{zsh:.80}");
    assert!(zsh.contains("enroll") && zsh.contains("exec"));
    let (fish, _) = vault(&["completion", "fish"]);
    assert!(fish.contains("complete -c vault"), "{fish:.80}");
    assert!(fish.contains("enroll") && fish.contains("exec"));
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
    for cmd in [
        ".SS \"vault exec\"",
        ".SS \"vault hw enroll\"",
        ".SS \"vault hw status\"",
        ".SS \"vault completion\"",
    ] {
        assert!(page.contains(cmd), "{cmd} missing");
    }
    assert!(page.contains("\\-\\-create\\-mfa\\-device"));

    // man(1) renders it, when the machine has it.
    if Command::new("man").arg("--version").output().is_ok() {
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
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("vault hw enroll"), "{text:.400}");
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
