//! Dialog drivers, for when vault runs with no terminal (an IDE, a GUI app
//! using `credential_process`, a launchd or systemd agent). Each shells out
//! to the desktop's own dialog program, as aws-vault does. Only labels go in
//! argv, which any user can read in `ps`; answers come back on the
//! program's stdout, through a pipe only vault holds.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use zeroize::Zeroizing;

use super::{
    find_program, validate_mfa_code, Desktop, Prompt, PromptError, TouchNotice, TouchRequest,
    MFA_ATTEMPTS,
};
use vault_base::secret::{MfaCode, Passphrase};

/// The window title, so the user can tell who is asking.
const TITLE: &str = "vault";

/// A dialog program vault knows how to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Zenity,
    Kdialog,
    Osascript,
}

impl Tool {
    /// The program's name, as looked up on PATH.
    pub fn program(self) -> &'static str {
        match self {
            Tool::Zenity => "zenity",
            Tool::Kdialog => "kdialog",
            Tool::Osascript => "osascript",
        }
    }

    pub(crate) fn install_hint(self) -> &'static str {
        match self {
            Tool::Zenity => {
                "install it (apt install zenity, dnf install zenity) or choose another --prompt"
            }
            Tool::Kdialog => {
                "install it (apt install kdialog, dnf install kdialog) or choose another --prompt"
            }
            Tool::Osascript => "it ships with macOS only; elsewhere use --prompt zenity or kdialog",
        }
    }

    /// The dialogs `--prompt auto` tries, in order, on this OS.
    pub(crate) fn for_this_os() -> &'static [Tool] {
        if cfg!(target_os = "macos") {
            &[Tool::Osascript]
        } else {
            &[Tool::Zenity, Tool::Kdialog]
        }
    }
}

/// Asks through a dialog program found on PATH.
#[derive(Debug, Clone)]
pub struct Dialog {
    tool: Tool,
    program: PathBuf,
}

/// What a dialog asks for; decides whether the answer is hidden.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Entry {
    Hidden,
    Shown,
}

impl Dialog {
    /// The dialog for `tool` if its program is on PATH. The path found now
    /// is the one run later, so a PATH change in between cannot swap it.
    pub fn find(tool: Tool) -> Option<Dialog> {
        find_program(tool.program()).map(|program| Dialog { tool, program })
    }

    pub fn tool(&self) -> Tool {
        self.tool
    }

    fn ask_args(&self, label: &str, entry: Entry) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        match self.tool {
            Tool::Zenity => {
                args.push("--entry".into());
                if entry == Entry::Hidden {
                    args.push("--hide-text".into());
                }
                args.push(format!("--title={TITLE}").into());
                args.push(format!("--text={}", zenity_text(label)).into());
            }
            Tool::Kdialog => {
                args.extend(["--title".into(), TITLE.into()]);
                args.push(
                    if entry == Entry::Hidden {
                        "--password"
                    } else {
                        "--inputbox"
                    }
                    .into(),
                );
                args.push(label.into());
            }
            Tool::Osascript => {
                // The label is passed as an argument to the run handler,
                // never spliced into the script, so no quoting can break it.
                let hidden = if entry == Entry::Hidden {
                    " with hidden answer"
                } else {
                    ""
                };
                let dialog = format!(
                    "set r to display dialog (item 1 of argv) default answer \"\"{hidden} \
                     with title \"{TITLE}\""
                );
                for line in [
                    "on run argv",
                    dialog.as_str(),
                    "return text returned of r",
                    "end run",
                ] {
                    args.extend(["-e".into(), line.into()]);
                }
                args.push(label.into());
            }
        }
        args
    }

    fn notify_args(&self, message: &str) -> Vec<OsString> {
        match self.tool {
            Tool::Zenity => vec![
                "--notification".into(),
                format!("--text={}", zenity_text(message)).into(),
            ],
            // 10 s: long enough to read "touch your key", gone by itself.
            Tool::Kdialog => vec![
                "--title".into(),
                TITLE.into(),
                "--passivepopup".into(),
                message.into(),
                "10".into(),
            ],
            Tool::Osascript => vec![
                "-e".into(),
                "on run argv".into(),
                "-e".into(),
                format!("display notification (item 1 of argv) with title \"{TITLE}\"").into(),
                "-e".into(),
                "end run".into(),
                message.into(),
            ],
        }
    }

    /// Shows one dialog and returns what was typed, without the newline the
    /// program adds.
    fn ask(&self, label: &str, entry: Entry) -> Result<Zeroizing<String>, PromptError> {
        let name = self.tool.program();
        let out: Output =
            vault_base::settings::without_vault_secrets(&mut Command::new(&self.program))
                .args(self.ask_args(label, entry))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()
                .map_err(|e| {
                    PromptError::Io(format!(
                "cannot run {name} ({}): {e}; check it is installed, or choose another --prompt",
                self.program.display()
            ))
                })?;
        let stdout = Zeroizing::new(out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            let mut s = match String::from_utf8(stdout.to_vec()) {
                Ok(s) => Zeroizing::new(s),
                Err(e) => {
                    // Wipe the copy the error hands back before failing.
                    drop(Zeroizing::new(e.into_bytes()));
                    return Err(PromptError::Invalid(format!(
                        "{name} returned text that is not UTF-8; type it again"
                    )));
                }
            };
            let end = s.trim_end_matches(['\r', '\n']).len();
            s.truncate(end);
            return Ok(s);
        }
        match out.status.code() {
            Some(1) if self.is_cancel(&stderr) => Err(PromptError::Cancelled),
            code => Err(PromptError::Io(format!(
                "{name} {}{}; if no dialog appeared, check DISPLAY (or that you are logged in \
                 to the desktop), or choose another --prompt",
                match code {
                    Some(c) => format!("exited with code {c}"),
                    None => "was killed by a signal".to_string(),
                },
                last_line(&stderr)
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default()
            ))),
        }
    }

    /// Exit code 1 is each program's "Cancel or window closed", but zenity
    /// also uses it when GTK cannot reach a display, and osascript for any
    /// script error; those are failures the user must fix, not a cancel.
    fn is_cancel(&self, stderr: &str) -> bool {
        match self.tool {
            Tool::Zenity => !stderr.to_ascii_lowercase().contains("open display"),
            Tool::Kdialog => true,
            // AppleScript's userCanceledErr.
            Tool::Osascript => stderr.contains("(-128)"),
        }
    }
}

/// zenity passes `--text` through g_strcompress and then Pango markup, so
/// an ARN is safe but `\`, `&` and `<` would be eaten or break the label.
fn zenity_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn last_line(s: &str) -> Option<String> {
    let line = s.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.chars().take(200).collect())
}

impl Prompt for Dialog {
    fn mfa_code(&self, profile: &str, mfa_serial: &str) -> Result<MfaCode, PromptError> {
        // Shown, like the terminal driver: the code is worthless once used.
        let ask = format!("Enter MFA code for {mfa_serial} (profile {profile})");
        let mut label = ask.clone();
        for _ in 0..MFA_ATTEMPTS {
            let answer = self.ask(&label, Entry::Shown)?;
            match validate_mfa_code(answer.trim()) {
                Ok(code) => return Ok(code),
                Err(_) => {
                    label = format!("That was not a 6 to 8 digit code. {ask}");
                }
            }
        }
        Err(PromptError::Invalid(format!(
            "no valid MFA code after {MFA_ATTEMPTS} tries: type the 6 to 8 digits your MFA \
             device shows for {mfa_serial}, or pass one with --mfa-token"
        )))
    }

    fn secret(&self, label: &str) -> Result<Passphrase, PromptError> {
        let answer = self.ask(label, Entry::Hidden)?;
        Ok(Passphrase::new(answer.as_str()))
    }

    fn text(&self, label: &str) -> Result<String, PromptError> {
        let answer = self.ask(label, Entry::Shown)?;
        Ok(answer.trim().to_string())
    }

    fn touch(&self, request: &TouchRequest) -> Box<dyn TouchNotice> {
        // The desktop's own notification, replaced by "touched"; the
        // dialog program's popup where no notification service runs.
        if let Some(d) = Desktop::connect() {
            if let Ok(notice) = d.touch(request) {
                return notice;
            }
        }
        self.notify(&format!(
            "{} (within {} s)",
            request.line(),
            request.timeout.as_secs()
        ));
        Box::new(super::Said)
    }

    fn notify(&self, message: &str) {
        let child = vault_base::settings::without_vault_secrets(&mut Command::new(&self.program))
            .args(self.notify_args(message))
            .stdin(Stdio::null())
            // Never our stdout: it may be carrying credential_process JSON.
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Ok(mut child) = child {
            // Reaped off-thread so the caller does not wait on the popup,
            // and no zombie is left if vault keeps running.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn dialog(tool: Tool) -> Dialog {
        Dialog {
            tool,
            program: PathBuf::from(tool.program()),
        }
    }

    fn strings(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn zenity_hides_secrets_and_escapes_markup() {
        let a = strings(dialog(Tool::Zenity).ask_args("a <b> & c\\d", Entry::Hidden));
        assert_eq!(
            a,
            [
                "--entry",
                "--hide-text",
                "--title=vault",
                "--text=a &lt;b&gt; &amp; c\\\\d"
            ]
        );
        let a = strings(dialog(Tool::Zenity).ask_args("Access key ID", Entry::Shown));
        assert!(!a.iter().any(|s| s == "--hide-text"));
    }

    #[test]
    fn kdialog_uses_password_for_secrets() {
        let a = strings(dialog(Tool::Kdialog).ask_args("PIN", Entry::Hidden));
        assert_eq!(a, ["--title", "vault", "--password", "PIN"]);
        let a = strings(dialog(Tool::Kdialog).ask_args("Access key ID", Entry::Shown));
        assert_eq!(a, ["--title", "vault", "--inputbox", "Access key ID"]);
    }

    #[test]
    fn osascript_passes_the_label_as_an_argument_not_as_script() {
        let label = "say \"hi\" & do shell script \"x\"";
        let a = strings(dialog(Tool::Osascript).ask_args(label, Entry::Hidden));
        assert_eq!(a.last().map(String::as_str), Some(label));
        let script: Vec<&String> = a.iter().skip(1).step_by(2).take(4).collect();
        assert!(script.iter().all(|s| !s.contains("say")));
        assert!(script[1].contains("with hidden answer"), "{script:?}");
        let shown = strings(dialog(Tool::Osascript).ask_args("x", Entry::Shown));
        assert!(!shown.iter().any(|s| s.contains("hidden")));
    }

    #[test]
    fn osascript_cancel_is_only_user_canceled() {
        let d = dialog(Tool::Osascript);
        assert!(d.is_cancel("0:50: execution error: User canceled. (-128)"));
        assert!(!d.is_cancel("execution error: No user interaction allowed. (-1713)"));
        let z = dialog(Tool::Zenity);
        assert!(z.is_cancel("Gtk-Message: GtkDialog mapped without a transient parent."));
        assert!(!z.is_cancel("(zenity:1): Gtk-WARNING **: cannot open display: :9"));
    }
}
