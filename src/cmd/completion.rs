//! `vault completion SHELL` and `vault man`: a shell completion script and
//! the manual page, both generated from the clap definitions in `cli.rs`,
//! so they never fall behind the commands.
//!
//! clap's scripts complete commands and options; vault adds profile names
//! after the commands that take one (`PROFILE_COMMANDS`), read at each
//! <TAB> from `vault __complete-profiles`, as aws-vault's completion does.
//!
//! The manual page is one page, `vault(1)`: the global options, then every
//! command (`vault hw enroll` included) as a subsection with its usage,
//! description and options.

use crate::error::Error;
use clap::{Arg, ArgAction, CommandFactory};
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use std::io::Write;
use vault_fast::cli::{Cli, CompletionArgs};

/// Prints the completion script for `args.shell`.
pub fn run(args: &CompletionArgs) -> Result<(), Error> {
    write_stdout(&script(args.shell)?)
}

/// The commands whose first positional argument is a profile of the
/// config (checked against `cli.rs` by a test).
pub const PROFILE_COMMANDS: &[&str] = &["exec", "export", "login", "rotate", "remove", "clear"];

pub use vault_fast::{complete_profiles as profiles, PROFILES_ARG};

/// clap's completion script for `shell`, with profile names added where
/// vault knows how (bash, zsh, fish).
pub fn script(shell: Shell) -> Result<Vec<u8>, Error> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "vault", &mut out);
    let text = String::from_utf8(out).map_err(|e| Error::Io(std::io::Error::other(e)))?;
    let table = ProfileSlots::from_cli();
    let text = match shell {
        Shell::Bash => wrap_function(&text, "_vault() {", &table.bash())?,
        Shell::Zsh => wrap_function(&text, "_vault() {", &table.zsh())?,
        Shell::Fish => text + &table.fish(),
        _ => text,
    };
    Ok(text.into_bytes())
}

/// How clap's bash and zsh scripts begin registering `_vault`.
const REGISTRATIONS: &[&str] = &[
    "\nif [[ \"${BASH_VERSINFO[0]}\"",
    "\nif [ \"$funcstack[1]\" = \"_vault\" ]",
];

/// Renames clap's `_vault` function to `_vault_clap` and puts `ours`
/// (which defines a new `_vault` calling it) after it.
fn wrap_function(script: &str, definition: &str, ours: &str) -> Result<String, Error> {
    let at = script
        .match_indices(definition)
        .find(|(i, _)| *i == 0 || script.as_bytes()[i - 1] == b'\n')
        .map(|(i, _)| i)
        .ok_or_else(|| {
            Error::Io(std::io::Error::other(format!(
                "clap_complete's script has no `{definition}` to wrap"
            )))
        })?;
    let mut out = String::with_capacity(script.len() + ours.len());
    out.push_str(&script[..at]);
    out.push_str(&definition.replacen("_vault", "_vault_clap", 1));
    out.push_str(&script[at + definition.len()..]);
    // Before the script's last lines, which register `_vault` (bash) or
    // call it (zsh autoload): ours must be defined by then.
    let tail = REGISTRATIONS
        .iter()
        .find_map(|t| out.rfind(t))
        .unwrap_or(out.len());
    out.insert_str(tail, &format!("\n{ours}"));
    Ok(out)
}

/// Where a profile name is the word being completed: after one of
/// `PROFILE_COMMANDS` (or an alias), before any other positional argument,
/// with the options that take a value skipped along with it.
struct ProfileSlots {
    /// Each command name or alias.
    commands: Vec<String>,
    /// `"" --backend`, `"exec -d"`, …: a command (empty before one) and
    /// an option of it that takes a value.
    value_options: Vec<(String, String)>,
}

impl ProfileSlots {
    fn from_cli() -> Self {
        let mut cmd = Cli::command();
        cmd.build();
        let mut commands = Vec::new();
        let mut value_options = Vec::new();
        let mut options = |name: &str, c: &clap::Command| {
            for arg in c
                .get_arguments()
                .filter(|a| !a.is_positional() && takes_value(a))
            {
                for s in arg.get_short_and_visible_aliases().into_iter().flatten() {
                    value_options.push((name.to_string(), format!("-{s}")));
                }
                for l in arg.get_long_and_visible_aliases().into_iter().flatten() {
                    value_options.push((name.to_string(), format!("--{l}")));
                }
            }
        };
        options("", &cmd);
        for sub in cmd.get_subcommands() {
            if !PROFILE_COMMANDS.contains(&sub.get_name()) {
                continue;
            }
            for name in std::iter::once(sub.get_name()).chain(sub.get_all_aliases()) {
                commands.push(name.to_string());
                options(name, sub);
            }
        }
        ProfileSlots {
            commands,
            value_options,
        }
    }

    /// `_vault_profile_slot WORD… CURRENT`, for bash and zsh alike: true
    /// when CURRENT (the last argument) is where a profile name goes.
    fn sh_function(&self) -> String {
        let pattern = |pairs: &mut dyn Iterator<Item = String>| -> String {
            pairs
                .map(|p| format!("\"{p}\""))
                .collect::<Vec<_>>()
                .join("|")
        };
        let values = pattern(&mut self.value_options.iter().map(|(c, o)| format!("{c} {o}")));
        let commands = pattern(&mut self.commands.iter().map(|c| format!(" {c}")));
        format!(
            r#"# vault: profile names (vault __complete-profiles) after {commands_doc}.
_vault_profile_slot() {{
    local cmd= w
    while [ $# -gt 1 ]; do
        w=$1
        shift
        case "$cmd $w" in
            *" --") return 1 ;;
            {values})
                # bash splits --opt=value into three words
                if [ "$1" = "=" ]; then shift; fi
                [ $# -gt 1 ] || return 1
                shift ;;
            *" -"*) ;;
            {commands}) cmd=$w ;;
            *) return 1 ;;
        esac
    done
    [ -n "$cmd" ] || return 1
    case $1 in -*) return 1 ;; esac
    return 0
}}
"#,
            commands_doc = PROFILE_COMMANDS.join(", ")
        )
    }

    fn bash(&self) -> String {
        format!(
            r#"{slot}
_vault() {{
    if _vault_profile_slot "${{COMP_WORDS[@]:1:COMP_CWORD}}"; then
        local vault=${{COMP_WORDS[0]}} cur=${{COMP_WORDS[COMP_CWORD]}} name
        [[ $vault == "~/"* ]] && vault=$HOME/${{vault#"~/"}}
        compopt +o default +o bashdefault 2>/dev/null
        COMPREPLY=()
        while IFS= read -r name; do
            [[ $name == "$cur"* ]] && COMPREPLY+=("$name")
        done < <("$vault" __complete-profiles 2>/dev/null)
        return 0
    fi
    _vault_clap "$@"
}}
"#,
            slot = self.sh_function()
        )
    }

    fn zsh(&self) -> String {
        format!(
            r#"{slot}
_vault() {{
    if _vault_profile_slot "${{(@)words[2,CURRENT]}}"; then
        local vault=${{words[1]/#\~/$HOME}}
        local -a vault_profiles expl
        vault_profiles=( ${{(f)"$("$vault" __complete-profiles 2>/dev/null)"}} )
        _wanted profiles expl profile compadd -a vault_profiles
        return
    fi
    _vault_clap "$@"
}}
"#,
            slot = self.sh_function()
        )
    }

    fn fish(&self) -> String {
        let values: Vec<String> = self
            .value_options
            .iter()
            .map(|(c, o)| format!("'{c} {o}'"))
            .collect();
        let commands: Vec<String> = self.commands.iter().map(|c| format!("' {c}'")).collect();
        format!(
            r#"
# vault: profile names (vault __complete-profiles) after {commands_doc}.
function __fish_vault_profile_slot
    set -l words (commandline -opc) (commandline -ct)
    set -e words[1]
    set -l cmd
    while test (count $words) -gt 1
        set -l w $words[1]
        set -e words[1]
        switch "$cmd $w"
            case '* --'
                return 1
            case {values}
                test "$words[1]" = "="; and set -e words[1]
                test (count $words) -gt 1; or return 1
                set -e words[1]
            case '* -*'
            case {commands}
                set cmd $w
            case '*'
                return 1
        end
    end
    test -n "$cmd"; and not string match -q -- '-*' "$words[1]"
end

function __fish_vault_profiles
    set -l vault (commandline -opc)[1]
    set vault (string replace -r '^~/' "$HOME/" -- $vault)
    $vault __complete-profiles 2>/dev/null
end

complete -c vault -n "__fish_vault_profile_slot" -f -a "(__fish_vault_profiles)"
"#,
            commands_doc = PROFILE_COMMANDS.join(", "),
            values = values.join(" "),
            commands = commands.join(" ")
        )
    }
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

    /// `PROFILE_COMMANDS` are the commands whose first positional argument
    /// is a profile (`add`'s too, but that names a new one), so a command
    /// added to cli.rs with a profile fails here until it is listed.
    #[test]
    fn profile_commands_are_the_ones_taking_a_profile_first() {
        let cmd = Cli::command();
        let mut taking: Vec<&str> = cmd
            .get_subcommands()
            .filter(|s| {
                s.get_positionals()
                    .next()
                    .is_some_and(|a| a.get_id() == "profile")
            })
            .map(|s| s.get_name())
            .filter(|n| *n != "add")
            .collect();
        let mut listed = PROFILE_COMMANDS.to_vec();
        taking.sort_unstable();
        listed.sort_unstable();
        assert_eq!(taking, listed);
    }

    /// The scripts wrap clap's `_vault`: if clap_complete renames it or
    /// changes its registration, this fails rather than the shells.
    #[test]
    fn the_bash_and_zsh_scripts_wrap_clap_function() {
        for shell in [Shell::Bash, Shell::Zsh] {
            let text = String::from_utf8(script(shell).expect("script")).expect("utf8");
            assert_eq!(text.matches("\n_vault() {").count(), 1, "{shell}");
            assert_eq!(text.matches("_vault_clap() {").count(), 1, "{shell}");
            let ours = text.find("\n_vault() {").expect("ours");
            let registers = REGISTRATIONS
                .iter()
                .find_map(|t| text.rfind(t))
                .expect("registration");
            assert!(ours < registers, "{shell}: _vault defined after it is used");
        }
    }

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
