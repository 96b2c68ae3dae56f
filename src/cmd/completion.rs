//! `vault completion SHELL` and `vault man`: a shell completion script and
//! the manual page, both generated from the clap definitions in `cli.rs`,
//! so they never fall behind the commands.
//!
//! The manual page is one page, `vault(1)`: the global options, then every
//! command (`vault hw enroll` included) as a subsection with its usage,
//! description and options.

use crate::cli::{Cli, CompletionArgs};
use crate::error::Error;
use clap::{Arg, ArgAction, CommandFactory};
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use std::io::Write;

/// Prints the completion script for `args.shell`.
pub fn run(args: &CompletionArgs) -> Result<(), Error> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "vault", &mut out);
    write_stdout(&out)
}

/// Prints the manual page (roff).
pub fn man() -> Result<(), Error> {
    write_stdout(&crate::cmd::man::render()?)
}

/// A closed pipe (`vault man | head`) is not an error.
fn write_stdout(bytes: &[u8]) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// `vault(1)` in roff.
pub fn render_man() -> std::io::Result<Vec<u8>> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone()).manual("vault manual");
    // Every rendered piece starts with the same apostrophe preamble; keep
    // the first only.
    let preamble = Roff::new().render();
    let mut out = Vec::new();
    let mut piece = |f: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| -> std::io::Result<()> {
        let mut buf = Vec::new();
        f(&mut buf)?;
        let body = if out.is_empty() {
            &buf[..]
        } else {
            buf.strip_prefix(preamble.as_bytes()).unwrap_or(&buf)
        };
        out.extend_from_slice(body);
        Ok(())
    };
    piece(&|w| man.render_title(w))?;
    piece(&|w| man.render_name_section(w))?;
    piece(&|w| man.render_synopsis_section(w))?;
    piece(&|w| man.render_description_section(w))?;
    piece(&|w| man.render_options_section(w))?;
    piece(&|w| {
        let mut roff = Roff::new();
        roff.control("SH", ["COMMANDS"]);
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            command_section(&mut roff, sub);
        }
        roff.control("SH", ["SEE ALSO"]);
        roff.text([roman(
            "aws-vault(1), ykman(1), aws(1). Shell completion: vault completion bash|zsh|fish.",
        )]);
        roff.to_writer(w)
    })?;
    piece(&|w| man.render_version_section(w))?;
    Ok(out)
}

/// One `.SS` per command that does something (`vault hw` itself only groups).
fn command_section(roff: &mut Roff, cmd: &clap::Command) {
    if cmd.has_subcommands() {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            command_section(roff, sub);
        }
        return;
    }
    let name = cmd.get_bin_name().unwrap_or_else(|| cmd.get_name());
    roff.control("SS", [name]);
    let usage = cmd.clone().render_usage().to_string();
    let usage = usage.trim().trim_start_matches("Usage:").trim();
    roff.text([bold(usage)]);
    let aliases: Vec<&str> = cmd.get_visible_aliases().collect();
    if !aliases.is_empty() {
        roff.text([roman(format!(" (alias: {})", aliases.join(", ")))]);
    }
    if let Some(about) = cmd.get_long_about().or_else(|| cmd.get_about()) {
        paragraphs(roff, &about.to_string());
    }
    for arg in cmd.get_arguments().filter(|a| shown(a)) {
        roff.control("TP", []);
        roff.text(arg_header(arg));
        if let Some(help) = arg.get_long_help().or_else(|| arg.get_help()) {
            let text = help.to_string();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                roff.text([roman(line)]);
            }
        }
        let values: Vec<_> = arg
            .get_possible_values()
            .into_iter()
            .filter(|v| !v.is_hide_set())
            .collect();
        if takes_value(arg) && !values.is_empty() {
            roff.control("RS", []);
            for v in values {
                roff.control("IP", ["\\(bu", "2"]);
                let mut line = vec![bold(v.get_name())];
                if let Some(h) = v.get_help() {
                    line.push(roman(format!(": {h}")));
                }
                roff.text(line);
            }
            roff.control("RE", []);
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if takes_value(arg) && !defaults.is_empty() {
            roff.text([roman(format!("[default: {}]", defaults.join(", ")))]);
        }
        if let Some(env) = arg.get_env() {
            roff.text([roman(format!("[env: {}]", env.to_string_lossy()))]);
        }
    }
}

fn paragraphs(roff: &mut Roff, text: &str) {
    roff.control("PP", []);
    for line in text.lines() {
        if line.trim().is_empty() {
            roff.control("PP", []);
        } else {
            roff.text([roman(line)]);
        }
    }
}

/// The command's own arguments: not the global ones (the OPTIONS section
/// has those), not `--help`.
fn shown(arg: &Arg) -> bool {
    !arg.is_hide_set()
        && !arg.is_global_set()
        && !matches!(arg.get_action(), ArgAction::Help | ArgAction::HelpLong)
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

fn value_names(arg: &Arg) -> String {
    match arg.get_value_names() {
        Some(names) => names
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        None => arg.get_id().as_str().to_ascii_uppercase(),
    }
}

fn arg_header(arg: &Arg) -> Vec<Inline> {
    let mut out = Vec::new();
    if arg.is_positional() {
        let name = value_names(arg);
        let many = matches!(arg.get_action(), ArgAction::Append)
            || arg.get_num_args().is_some_and(|n| n.max_values() > 1);
        if arg.is_last_set() {
            out.push(bold("-- "));
        }
        let text = if many { format!("{name}...") } else { name };
        if arg.is_required_set() {
            out.push(italic(text));
        } else {
            out.push(roman("["));
            out.push(italic(text));
            out.push(roman("]"));
        }
        return out;
    }
    if let Some(s) = arg.get_short() {
        out.push(bold(format!("-{s}")));
        if arg.get_long().is_some() {
            out.push(roman(", "));
        }
    }
    if let Some(l) = arg.get_long() {
        out.push(bold(format!("--{l}")));
    }
    if takes_value(arg) {
        out.push(roman(" "));
        out.push(italic(value_names(arg)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_page_covers_every_command() {
        let page = String::from_utf8(render_man().expect("render")).expect("utf8");
        assert_eq!(page.matches(".TH ").count(), 1, "one page");
        for needle in [
            ".SS \"vault exec\"",
            ".SS \"vault hw enroll\"",
            ".SS \"vault hw status\"",
            "\\-\\-mfa\\-token",
            "\\-\\-totp\\-secret",
        ] {
            assert!(page.contains(needle), "{needle} missing");
        }
    }
}
