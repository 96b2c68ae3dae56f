//! `vault man` (issue 12.7): a page that renders without a warning and
//! documents every command and option (from clap, as `--help`), every
//! config key, environment variable, file and exit status (from
//! `vault::docs`), with examples. The tables are held to the source: a
//! config key resolve.rs reads, or a `VAULT_*`/`AWS_*` variable the source
//! names, without a line in `vault::docs` fails here.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use clap::CommandFactory;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

const VAULT: &str = env!("CARGO_BIN_EXE_vault");

fn page() -> String {
    let out = Command::new(VAULT)
        .arg("man")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The page as `man -l` shows it, wide enough that nothing is hyphenated,
/// with every groff warning on; the warnings come back too.
fn rendered(page: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vault.1");
    std::fs::write(&file, page).unwrap();
    let out = Command::new("man")
        .arg("-l")
        .arg(&file)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MANWIDTH", "250")
        .env("MANROFFOPT", "-ww")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run man ({e}): apt-get install man-db (hw/setup installs it)")
        });
    assert!(out.status.success());
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// roff escapes `-` in text.
fn roff(s: &str) -> String {
    s.replace('-', "\\-")
}

#[test]
fn man_and_groff_render_the_page_without_a_warning() {
    let page = page();
    let (text, warnings) = rendered(&page);
    assert_eq!(warnings, "", "man -l warned");
    assert!(text.contains("vault hw enroll"), "{text:.400}");
    // groff itself, in the C locale (no preconv): the page is plain ASCII.
    assert!(page.is_ascii(), "non-ASCII characters left in the roff");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vault.1");
    std::fs::write(&file, &page).unwrap();
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&file)
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warned");
}

#[test]
fn every_section_is_there_in_order() {
    let page = page();
    let mut last = 0;
    for h in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH DESCRIPTION",
        ".SH OPTIONS",
        ".SH COMMANDS",
        ".SH CONFIGURATION",
        ".SH ENVIRONMENT",
        ".SH FILES",
        ".SH \"EXIT STATUS\"",
        ".SH EXAMPLES",
        ".SH \"SEE ALSO\"",
    ] {
        assert_eq!(page.matches(&format!("\n{h}\n")).count(), 1, "{h}");
        let at = page.find(h).unwrap();
        assert!(at > last, "{h} out of order");
        last = at;
    }
}

/// Every command that does something, as `vault a b`, with its options
/// (clap's generated `help` commands aside).
fn leaves(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("{path} {}", sub.get_name());
        if sub.has_subcommands() {
            leaves(sub, &name, out);
        } else {
            out.push((name, sub.clone()));
        }
    }
}

#[test]
fn every_command_and_option_of_the_cli_is_documented() {
    let page = page();
    let (text, _) = rendered(&page);
    let mut cli = vault_fast::cli::Cli::command();
    cli.build();
    let mut commands = Vec::new();
    leaves(&cli, "vault", &mut commands);
    assert!(commands.len() >= 12, "{}", commands.len());
    let global: Vec<&clap::Arg> = cli.get_arguments().collect();
    for arg in &global {
        if let Some(l) = arg.get_long() {
            assert!(page.contains(&roff(&format!("--{l}"))), "global --{l}");
        }
    }
    for (name, cmd) in &commands {
        let heading = format!(".SS \"{name}\"");
        let section = page
            .split_once(&heading)
            .unwrap_or_else(|| panic!("{heading} missing"))
            .1;
        let section = section.split("\n.S").next().unwrap();
        assert!(text.contains(name.as_str()), "{name} not rendered");
        for arg in cmd.get_arguments() {
            if arg.is_hide_set() || arg.is_global_set() || arg.get_id() == "help" {
                continue;
            }
            let spelled = match (arg.get_long(), arg.get_short()) {
                (Some(l), _) => roff(&format!("--{l}")),
                (None, Some(s)) => roff(&format!("-{s}")),
                (None, None) => arg
                    .get_value_names()
                    .and_then(|n| n.first())
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| arg.get_id().as_str().to_ascii_uppercase()),
            };
            assert!(section.contains(&spelled), "{name}: {spelled} missing");
            if let Some(help) = arg.get_help() {
                let first = help.to_string();
                let words: String = first
                    .split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ");
                assert!(
                    text.contains(&words),
                    "{name} {spelled}: help ({words}) not rendered"
                );
            }
        }
    }
}

/// The `"NAME"` string literals matching `prefix` in the `.rs` files under
/// `dir`, with the file each was found in.
fn literals(dir: &Path, prefix: &str, skip: &dyn Fn(&Path) -> bool, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            literals(&path, prefix, skip, out);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") || skip(&path) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for piece in text.split('"').skip(1).step_by(2) {
            let name_ok = piece.starts_with(prefix)
                && piece.len() > prefix.len()
                && piece
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                && !piece.ends_with('_');
            if name_ok {
                out.insert(piece.to_string());
            }
        }
    }
}

fn src() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every crate's code: the CLI's and the layers' under crates/.
fn code() -> [std::path::PathBuf; 2] {
    [src(), Path::new(env!("CARGO_MANIFEST_DIR")).join("crates")]
}

fn documented(table: &[vault::docs::Entry]) -> BTreeSet<String> {
    table.iter().map(|(n, _)| n.to_string()).collect()
}

#[test]
fn every_vault_variable_the_source_names_is_documented() {
    let mut found = BTreeSet::new();
    // docs.rs is the table itself; `_TEST_` variables pass state between a
    // unit test and the child process it starts.
    for dir in code() {
        literals(&dir, "VAULT_", &|p| p.ends_with("docs.rs"), &mut found);
    }
    found.retain(|v| !v.contains("_TEST_"));
    assert!(found.len() >= 15, "{found:?}");
    let docs = documented(vault::docs::ENV_VARS);
    let missing: Vec<_> = found.difference(&docs).collect();
    assert!(
        missing.is_empty(),
        "VAULT_* variables without docs: {missing:?}"
    );
    let page = page();
    for (name, _) in vault::docs::ENV_VARS {
        assert!(
            page.contains(&format!("\\fB{name}\\fR")),
            "{name} not in ENVIRONMENT"
        );
    }
}

#[test]
fn every_aws_variable_vault_reads_is_documented() {
    // output.rs lists what exec sets and clears for its command (the AWS
    // CLI's own variables among them), not what vault reads.
    let mut found = BTreeSet::new();
    for dir in code() {
        literals(
            &dir,
            "AWS_",
            &|p| p.ends_with("docs.rs") || p.ends_with("output.rs") || p.ends_with("tests.rs"),
            &mut found,
        );
    }
    assert!(found.contains("AWS_CONFIG_FILE"), "{found:?}");
    let docs = documented(vault::docs::ENV_VARS);
    let missing: Vec<_> = found.difference(&docs).collect();
    assert!(
        missing.is_empty(),
        "AWS_* variables without docs: {missing:?}"
    );
}

/// Keys the config code reads by name: `take("key", …)`, `get("key")`,
/// `("key", SectionKind…)`.
fn config_keys_read() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let profile = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/profile/src");
    for file in [
        profile.join("config/resolve.rs"),
        profile.join("config/sso.rs"),
        src().join("cmd/sso_populate.rs"),
    ] {
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for call in ["take(\"", "get(\"", "const MARK: &str = \""] {
            for piece in code.split(call).skip(1) {
                let key = piece.split('"').next().unwrap();
                if key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') && !key.ends_with('_') {
                    keys.insert(key.to_string());
                }
            }
        }
    }
    keys
}

#[test]
fn every_config_key_is_documented() {
    let read = config_keys_read();
    for key in ["region", "role_arn", "sso_start_url", "vault_sso_populated"] {
        assert!(
            read.contains(key),
            "{key} not found in the source: {read:?}"
        );
    }
    let docs = documented(vault::docs::CONFIG_KEYS);
    let missing: Vec<_> = read.difference(&docs).collect();
    assert!(missing.is_empty(), "config keys without docs: {missing:?}");
    let page = page();
    let config = page
        .split_once(".SH CONFIGURATION")
        .unwrap()
        .1
        .split_once("\n.SH ")
        .unwrap()
        .0;
    for (key, meaning) in vault::docs::CONFIG_KEYS {
        assert!(config.contains(&format!("\\fB{}\\fR", roff(key))), "{key}");
        assert!(
            !meaning.is_empty() && !meaning.contains('\n'),
            "{key}: one line"
        );
    }
}

#[test]
fn files_exit_statuses_and_examples_are_documented() {
    let page = page();
    let (text, _) = rendered(&page);
    let section = |h: &str| -> String {
        text.split_once(&format!("\n{h}\n"))
            .unwrap_or_else(|| panic!("{h} not rendered"))
            .1
            .split("\n\n\n")
            .next()
            .unwrap()
            .to_string()
    };
    let files = section("FILES");
    for dir in [
        "~/.aws/config",
        "envelopes",
        "tokens.json",
        "store",
        "locks",
    ] {
        assert!(files.contains(dir), "{dir} not in FILES: {files}");
    }
    let exit = text
        .split_once("\nEXIT STATUS\n")
        .unwrap()
        .1
        .split_once("\nEXAMPLES\n")
        .unwrap()
        .0;
    for (code, _) in vault::docs::EXIT_STATUS {
        assert!(
            exit.lines()
                .any(|l| l.trim_start().starts_with(&code.to_string())),
            "exit status {code} missing: {exit}"
        );
    }
    assert!(exit.contains("128"), "exec's signal statuses");
    // The statuses vault really gives: 2 for a usage error, 1 for an error
    // of the command, each one documented.
    for (args, want) in [
        (&["no-such-command"][..], 2),
        (&["exec", "--duration", "1s", "x", "--", "true"][..], 1),
    ] {
        let home = tempfile::tempdir().unwrap();
        let out = Command::new(VAULT)
            .args(args)
            .env_clear()
            .env("HOME", home.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("VAULT_BACKEND", "file")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let code = out.status.code().unwrap();
        assert_eq!(
            code,
            want,
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(vault::docs::EXIT_STATUS
            .iter()
            .any(|(c, _)| i32::from(*c) == code));
    }
    let examples = text.split_once("\nEXAMPLES\n").unwrap().1;
    for (_, command) in vault::docs::EXAMPLES {
        let first = command.split(';').next().unwrap().trim();
        assert!(examples.contains(first), "example {first} missing");
    }
    for flow in ["vault add", "vault exec", "vault login", "vault hw enroll"] {
        assert!(examples.contains(flow), "no example of {flow}");
    }
}

/// exec's environment: what it sets and keeps, each `AWS_*` output.rs
/// names, is on the page.
#[test]
fn execs_environment_is_documented_from_the_source() {
    // output.rs's code, not its unit tests' inherited examples.
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/profile/src/output.rs"),
    )
    .unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap();
    let named: BTreeSet<String> = code
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|p| {
            p.len() > 4
                && p.starts_with("AWS_")
                && !p.ends_with('_')
                && p.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        })
        .map(str::to_string)
        .collect();
    assert!(named.contains("AWS_SESSION_TOKEN"), "{named:?}");
    let known: BTreeSet<String> = vault::docs::EXEC_SETS
        .iter()
        .chain(vault_profile::output::KEEP_AWS)
        .chain(vault::docs::ENV_VARS.iter().map(|(n, _)| n))
        .map(|s| s.to_string())
        .collect();
    let missing: Vec<_> = named.difference(&known).collect();
    assert!(
        missing.is_empty(),
        "output.rs names {missing:?}, not in the docs"
    );
    let page = page();
    let env = page
        .split_once(".SH ENVIRONMENT")
        .unwrap()
        .1
        .split_once("\n.SH ")
        .unwrap()
        .0
        .replace("\\-", "-");
    for name in vault::docs::EXEC_SETS
        .iter()
        .chain(vault_profile::output::KEEP_AWS)
        .chain(vault_base::settings::VAULT_SECRETS)
    {
        assert!(env.contains(name), "{name} not in ENVIRONMENT");
    }
}

/// README describes the config in prose; every key it names in its
/// Profiles section is one the table (and so the man page) documents.
#[test]
fn readmes_config_keys_are_the_tables() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Profiles"))
        .expect("README has a Profiles section");
    let keys: BTreeSet<String> = section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| {
            w.contains('_')
                && !w.starts_with('_')
                && !w.ends_with('_')
                && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
        .map(str::to_string)
        .collect();
    assert!(keys.contains("role_arn"), "{keys:?}");
    let docs = documented(vault::docs::CONFIG_KEYS);
    let missing: Vec<_> = keys.difference(&docs).collect();
    assert!(
        missing.is_empty(),
        "README names config keys docs.rs lacks: {missing:?}"
    );
}
