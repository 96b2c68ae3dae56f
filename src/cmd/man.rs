//! `vault man`: the page `completion::render_man` makes from the clap
//! definitions (every command and option, as `--help` shows them), with
//! the sections clap knows nothing of drawn from `crate::docs`:
//! CONFIGURATION, ENVIRONMENT, FILES, EXIT STATUS and EXAMPLES.

use crate::docs::{self, Entry};
use clap_mangen::roff::{bold, italic, roman, Roff};

/// The whole page, in roff.
pub fn render() -> std::io::Result<Vec<u8>> {
    let page = String::from_utf8(super::completion::render_man()?)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let ours = sections();
    // Before SEE ALSO, where man-pages(7) puts these; else before VERSION,
    // else at the end.
    let at = ["\n.SH \"SEE ALSO\"", "\n.SH VERSION"]
        .iter()
        .find_map(|h| page.find(h).map(|i| i + 1))
        .unwrap_or(page.len());
    let mut out = String::with_capacity(page.len() + ours.len());
    out.push_str(&page[..at]);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&ours);
    out.push_str(&page[at..]);
    Ok(ascii(&out).into_bytes())
}

/// roff is ASCII: other characters (the help's en dashes) as `\[uXXXX]`,
/// which groff renders in any locale without a warning.
fn ascii(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    for c in page.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out
}

/// The sections from `crate::docs`, without roff's preamble.
fn sections() -> String {
    let mut roff = Roff::new();
    // Names (AWS_SESSION_TOKEN) and paths are not to be split at a line's
    // end: no hyphenation here, as before it in clap's sections.
    roff.control("nh", []);
    roff.control("SH", ["CONFIGURATION"]);
    roff.text([roman(
        "vault reads the AWS config file ($AWS_CONFIG_FILE, else ~/.aws/config) as aws-vault does. \
         A profile is a [profile NAME] section (or [default]); unset keys are inherited from \
         include_profile, else from [default]. These are the keys vault reads:",
    )]);
    list(&mut roff, docs::CONFIG_KEYS, true);

    roff.control("SH", ["ENVIRONMENT"]);
    list(&mut roff, docs::ENV_VARS, true);
    roff.control("PP", []);
    roff.text([roman(format!(
        "The command vault exec runs gets {} (with --ecs-server, the container variables instead \
         of the keys). Every other AWS_* variable it would inherit is removed, except {}; \
         so are {}.",
        docs::EXEC_SETS.join(", "),
        vault_profile::output::KEEP_AWS.join(", "),
        vault_base::settings::VAULT_SECRETS.join(", "),
    ))]);

    roff.control("SH", ["FILES"]);
    list(&mut roff, docs::FILES, false);

    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in docs::EXIT_STATUS {
        roff.control("TP", []);
        roff.text([bold(code.to_string())]);
        roff.text([roman(*meaning)]);
    }
    roff.control("PP", []);
    roff.text([roman(docs::EXEC_EXIT_STATUS)]);

    roff.control("SH", ["EXAMPLES"]);
    for (what, command) in docs::EXAMPLES {
        roff.control("PP", []);
        roff.text([roman(*what)]);
        roff.control("RS", ["4"]);
        roff.control("nf", []);
        roff.text([bold(*command)]);
        roff.control("fi", []);
        roff.control("RE", []);
    }
    let text = roff.render();
    let preamble = Roff::new().render();
    text.strip_prefix(&preamble).unwrap_or(&text).to_string()
}

/// A `.TP` list: each name (bold, or italic for paths) and its meaning.
fn list(roff: &mut Roff, entries: &[Entry], names_bold: bool) {
    for (name, meaning) in entries {
        roff.control("TP", []);
        roff.text([if names_bold {
            bold(*name)
        } else {
            italic(*name)
        }]);
        roff.text([roman(*meaning)]);
    }
}
