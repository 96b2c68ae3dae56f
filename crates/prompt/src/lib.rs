//! Asking the user. The core never prints or reads a terminal itself: it
//! asks through `Prompt`, and a driver decides how (the terminal on
//! /dev/tty, so it works while stdout carries JSON; zenity, kdialog or
//! osascript when there is no terminal, as under an IDE).
//!
//! A driver is handed out only when it can work here: the terminal when
//! /dev/tty opens, a dialog when its program is on PATH. `driver` is the one
//! place that decides, so "why was I not asked?" has one answer.
//!
//! This crate may use vault-base and vault-token's `TouchEvent` only: the
//! layers that ask (stores, MFA, the commands) depend on it, never the
//! other way round.
#![forbid(unsafe_code)]

#[cfg(target_os = "linux")]
pub mod desktop;
#[cfg(not(target_os = "linux"))]
pub mod desktop {
    //! No freedesktop notification service off Linux: the drivers fall
    //! back to their own popups and stderr.
    use super::{TouchNotice, TouchRequest};
    pub struct Desktop;
    impl Desktop {
        pub fn connect() -> Option<Desktop> {
            None
        }
        pub fn message(&self, _message: &str) -> bool {
            false
        }
        pub fn touch(self, _request: &TouchRequest) -> Result<Box<dyn TouchNotice>, Desktop> {
            Err(self)
        }
    }
}
pub mod gui;
pub mod pinentry;
pub mod terminal;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use zeroize::Zeroizing;

use vault_base::secret::{MfaCode, Passphrase};

pub use desktop::Desktop;
pub use gui::{Dialog, Tool};
pub use pinentry::Pinentry;
pub use terminal::Terminal;

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("no way to ask you: {0}")]
    Unavailable(String),
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Invalid(String),
    #[error("prompt failed: {0}")]
    Io(String),
}

pub trait Prompt {
    /// A one-time code from the MFA device `mfa_serial`, needed by `profile`.
    fn mfa_code(&self, profile: &str, mfa_serial: &str) -> Result<MfaCode, PromptError>;
    /// A secret typed without echo (secret access key, passphrase, PIN).
    fn secret(&self, label: &str) -> Result<Passphrase, PromptError>;
    /// A value typed with echo (access key ID).
    fn text(&self, label: &str) -> Result<String, PromptError>;
    /// Tells the user something that needs them (insert the key, waiting
    /// for the next MFA code) without waiting for an answer.
    fn notify(&self, message: &str);
    /// Shows that a key waits for a touch, until the returned notice is
    /// told how the wait ended. Drivers with a live view (a terminal's
    /// countdown, a desktop notification replaced when touched) override
    /// this; the rest say it once.
    fn touch(&self, request: &TouchRequest) -> Box<dyn TouchNotice> {
        self.notify(&request.line());
        Box::new(Said)
    }
}

/// A key waiting for a touch, and what the touch is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TouchRequest {
    pub serial: u32,
    /// What the touch does, as the end of a sentence: "to unlock profile
    /// admin's key", "for the MFA code of arn:…".
    pub purpose: String,
    /// How long the key waits (the card's own touch timeout).
    pub timeout: Duration,
}

impl TouchRequest {
    /// The one wording every driver uses, so a touch reads the same in a
    /// terminal, a notification and a log.
    pub fn line(&self) -> String {
        format!("Touch your YubiKey {} {}", self.serial, self.purpose)
    }
}

/// A touch request being shown: told once how the wait ended. Dropped
/// without that, it counts as not touched.
pub trait TouchNotice {
    fn done(self: Box<Self>, touched: bool);
}

/// The notice of a driver that said it once and has nothing to take back.
struct Said;

impl TouchNotice for Said {
    fn done(self: Box<Self>, _touched: bool) {}
}

/// A touch request where no terminal shows it: a desktop notification
/// (replaced when touched), and the line on stderr too, since an IDE's log
/// may be all the user reads, unless `detached`: then stderr is the
/// terminal a command of the user's owns, and gets the line only when no
/// notification could be shown.
pub fn touch_without_terminal(request: &TouchRequest, detached: bool) -> Box<dyn TouchNotice> {
    let shown = match Desktop::connect() {
        Some(d) => d.touch(request).ok(),
        None => None,
    };
    if shown.is_none() || !detached {
        eprintln!(
            "vault: {} (within {} s)",
            request.line(),
            request.timeout.as_secs()
        );
    }
    shown.unwrap_or_else(|| Box::new(Said))
}

/// A message where no terminal shows it: as [`touch_without_terminal`].
pub fn notify_without_terminal(message: &str, detached: bool) {
    let shown = Desktop::connect().is_some_and(|d| d.message(message));
    if !shown || !detached {
        eprintln!("vault: {message}");
    }
}

/// Turns the token layer's touch events into `prompt`'s touch notices,
/// each saying what the touch is for (`purpose`).
pub fn touch_events<'a>(
    prompt: &'a dyn Prompt,
    purpose: String,
) -> impl Fn(vault_token::TouchEvent) + 'a {
    let shown: std::cell::RefCell<Option<Box<dyn TouchNotice>>> = Default::default();
    move |event| match event {
        vault_token::TouchEvent::Waiting { serial, timeout } => {
            let notice = prompt.touch(&TouchRequest {
                serial,
                purpose: purpose.clone(),
                timeout,
            });
            if let Some(old) = shown.borrow_mut().replace(notice) {
                old.done(false);
            }
        }
        vault_token::TouchEvent::Done { touched, .. } => {
            if let Some(notice) = shown.borrow_mut().take() {
                notice.done(touched);
            }
        }
    }
}

/// How many times a driver asks for an MFA code before giving up: enough for
/// a typo or two, few enough that a script stuck on a prompt ends.
pub(crate) const MFA_ATTEMPTS: u32 = 3;

/// Which driver to use, from `--prompt` or `VAULT_PROMPT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptKind {
    /// The terminal if there is one, else the first dialog program found.
    #[default]
    Auto,
    Terminal,
    /// The system's pinentry program, spoken to in Assuan.
    Pinentry,
    Zenity,
    Kdialog,
    Osascript,
}

impl PromptKind {
    /// The accepted spellings, in the order `--help` should list them.
    pub const NAMES: &'static [&'static str] = &[
        "auto",
        "terminal",
        "pinentry",
        "zenity",
        "kdialog",
        "osascript",
    ];

    /// Parses a name from `NAMES` (any case). An empty value means `auto`,
    /// because `VAULT_PROMPT=` in a shell or CI file usually means "unset".
    pub fn parse(s: &str) -> Result<PromptKind, PromptError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(PromptKind::Auto),
            "terminal" => Ok(PromptKind::Terminal),
            "pinentry" => Ok(PromptKind::Pinentry),
            "zenity" => Ok(PromptKind::Zenity),
            "kdialog" => Ok(PromptKind::Kdialog),
            "osascript" => Ok(PromptKind::Osascript),
            _ => Err(PromptError::Invalid(format!(
                "unknown prompt driver {s:?}: use one of {} (--prompt or VAULT_PROMPT)",
                PromptKind::NAMES.join(", ")
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PromptKind::Auto => "auto",
            PromptKind::Terminal => "terminal",
            PromptKind::Pinentry => "pinentry",
            PromptKind::Zenity => "zenity",
            PromptKind::Kdialog => "kdialog",
            PromptKind::Osascript => "osascript",
        }
    }
}

impl std::str::FromStr for PromptKind {
    type Err = PromptError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PromptKind::parse(s)
    }
}

impl std::fmt::Display for PromptKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The driver for `kind`, or `Unavailable` saying why it cannot work here
/// and what to do instead.
pub fn driver(kind: PromptKind) -> Result<Box<dyn Prompt>, PromptError> {
    select(kind, false)
}

/// The driver for `kind` while a command vault started owns the terminal
/// (`exec --ecs-server` renewing a session): it never reads the terminal,
/// so the keystrokes stay the command's. A dialog or a graphical pinentry
/// asks; touches go to desktop notifications.
pub fn detached_driver(kind: PromptKind) -> Result<Box<dyn Prompt>, PromptError> {
    select(kind, true)
}

fn select(kind: PromptKind, detached: bool) -> Result<Box<dyn Prompt>, PromptError> {
    let tool = match kind {
        PromptKind::Auto => return auto(detached),
        PromptKind::Terminal if detached => {
            return Err(PromptError::Unavailable(format!(
                "the terminal prompt (--prompt / VAULT_PROMPT terminal) cannot ask while the \
                 command owns the terminal; {DETACHED_ADVICE}"
            )))
        }
        PromptKind::Terminal => {
            return match Terminal::open() {
                Ok(t) => Ok(Box::new(t)),
                Err(e) => Err(PromptError::Unavailable(format!(
                    "the terminal prompt (--prompt / VAULT_PROMPT terminal) needs a terminal, \
                     but {} cannot be opened ({e}); run vault from a terminal, or choose a \
                     dialog with --prompt pinentry, zenity, kdialog or osascript",
                    terminal::TTY
                ))),
            };
        }
        PromptKind::Pinentry => {
            let has_tty = !detached && Terminal::open().is_ok();
            return match Pinentry::find(has_tty, detached) {
                Some(p) if detached => graphical(p).map(|p| Box::new(p) as Box<dyn Prompt>),
                Some(p) => Ok(Box::new(p)),
                None => Err(PromptError::Unavailable(
                    "the pinentry prompt (--prompt / VAULT_PROMPT pinentry) needs the program \
                     `pinentry` on PATH (or VAULT_PINENTRY naming one); install it (apt install \
                     pinentry-curses or pinentry-gnome3, brew install pinentry-mac) or choose \
                     another --prompt"
                        .to_string(),
                )),
            };
        }
        PromptKind::Zenity => Tool::Zenity,
        PromptKind::Kdialog => Tool::Kdialog,
        PromptKind::Osascript => Tool::Osascript,
    };
    match Dialog::find(tool) {
        Some(d) => Ok(Box::new(d)),
        None => Err(PromptError::Unavailable(format!(
            "the {kind} prompt (--prompt / VAULT_PROMPT {kind}) needs the program `{}`, \
             which is not on PATH; {}",
            tool.program(),
            tool.install_hint()
        ))),
    }
}

/// What to do when a renewal cannot ask without the terminal.
const DETACHED_ADVICE: &str = "for renewals during `exec --ecs-server`, vault asks through \
     a graphical pinentry or a dialog (needs a display) and shows touches as desktop \
     notifications; or set mfa_process in the profile, or renew before the session ends by \
     running `vault exec PROFILE -- true` in another terminal";

/// `p` if it shows its own window: a terminal flavour (curses, tty) would
/// take the terminal from the command that owns it.
fn graphical(p: Pinentry) -> Result<Pinentry, PromptError> {
    let flavor = p.flavor()?;
    let base = flavor.split(':').next().unwrap_or("").trim();
    if matches!(base, "curses" | "tty" | "emacs") {
        return Err(PromptError::Unavailable(format!(
            "{} is a terminal pinentry ({base}), and the command owns the terminal; \
             {DETACHED_ADVICE}",
            p.program().display()
        )));
    }
    Ok(p)
}

fn auto(detached: bool) -> Result<Box<dyn Prompt>, PromptError> {
    let tty = if detached {
        "the command owns the terminal".to_string()
    } else {
        match Terminal::open() {
            Ok(t) => return Ok(Box::new(t)),
            Err(e) => format!(
                "there is no terminal ({} cannot be opened: {e})",
                terminal::TTY
            ),
        }
    };
    // A dialog program installed on a machine with no display (SSH, CI,
    // cron) would only fail with "cannot open display": skip it so the
    // user gets the advice below instead. macOS always has its window server.
    let display = cfg!(target_os = "macos")
        || ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    if display {
        // The system's pinentry first: it is the PIN dialog the desktop
        // already uses for gpg and ssh keys.
        if let Some(p) = Pinentry::find(false, detached) {
            match if detached { graphical(p) } else { Ok(p) } {
                Ok(p) => return Ok(Box::new(p)),
                Err(e) => log::debug!(target: "vault", "pinentry skipped: {e}"),
            }
        }
        for &tool in Tool::for_this_os() {
            if let Some(d) = Dialog::find(tool) {
                return Ok(Box::new(d));
            }
        }
    }
    let programs: Vec<&str> = Tool::for_this_os().iter().map(|t| t.program()).collect();
    let mfa = "for an MFA code, pass it with --mfa-token or set mfa_process in the profile \
               (e.g. mfa_process = ykman oath accounts code -s <account>)";
    if detached {
        return Err(PromptError::Unavailable(format!(
            "{tty}; {DETACHED_ADVICE}"
        )));
    }
    Err(PromptError::Unavailable(if display {
        format!(
            "{tty} and no pinentry or dialog program (pinentry, {}) is on PATH. Install \
             pinentry-gnome3 or zenity (apt install pinentry-gnome3 zenity) or run vault from a \
             terminal; {mfa}",
            programs.join(", ")
        )
    } else {
        format!(
            "{tty} and no display to show a dialog on (DISPLAY and WAYLAND_DISPLAY are unset). \
             Run vault from a terminal, or {mfa}; installing pinentry or zenity helps only where \
             there is a display"
        )
    }))
}

/// Checks a typed or generated MFA code: 6 to 8 ASCII digits, with any
/// spaces removed (authenticator apps show "123 456").
pub fn validate_mfa_code(s: &str) -> Result<MfaCode, PromptError> {
    let digits: Zeroizing<String> = Zeroizing::new(s.chars().filter(|c| *c != ' ').collect());
    let n = digits.len();
    if (6..=8).contains(&n) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(MfaCode::new(digits.as_str()))
    } else {
        // The input is never repeated: it may be a mistyped secret.
        Err(PromptError::Invalid(
            "an MFA code is the 6 to 8 digits your MFA device shows now".to_string(),
        ))
    }
}

/// Runs a profile's `mfa_process` through `sh -c` (as aws-vault does) and
/// takes its standard output as the code. Its stderr goes to ours, so a
/// "touch your key" from ykman reaches the user; its stdin is closed so it
/// cannot steal the input of a vault run inside a pipeline.
pub fn mfa_process(command: &str) -> Result<MfaCode, PromptError> {
    let out = vault_base::settings::without_vault_secrets(&mut Command::new("sh"))
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| PromptError::Io(format!("cannot run mfa_process `{command}` with sh: {e}")))?;
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        let how = match out.status.code() {
            Some(code) => format!("exited with code {code}"),
            None => "was killed by a signal".to_string(),
        };
        return Err(PromptError::Invalid(format!(
            "mfa_process `{command}` {how} (its own message, if any, is above); \
             run it by hand to see why, or pass the code with --mfa-token"
        )));
    }
    let text = std::str::from_utf8(&stdout).unwrap_or("");
    validate_mfa_code(text.trim()).map_err(|_| {
        PromptError::Invalid(format!(
            "mfa_process `{command}` succeeded but did not print a 6 to 8 digit code \
             (and nothing else) on stdout; fix the command so it prints only the code"
        ))
    })
}

/// The full path of `program` if an executable of that name is on PATH.
pub(crate) fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
pub(crate) fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
pub(crate) fn is_executable(p: &Path) -> bool {
    p.is_file()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn codes_of_six_to_eight_digits_pass() {
        for ok in ["123456", "1234567", "12345678", "123 456", " 0000 00 "] {
            assert!(validate_mfa_code(ok).is_ok(), "{ok:?}");
        }
        assert_eq!(validate_mfa_code("123 456").unwrap().expose(), "123456");
    }

    #[test]
    fn codes_of_wrong_length_or_with_non_digits_fail() {
        for bad in [
            "",
            "12345",
            "123456789",
            "12a456",
            "١٢٣٤٥٦",
            "123-456",
            "123456\n",
            "\t123456",
        ] {
            assert!(
                matches!(validate_mfa_code(bad), Err(PromptError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn invalid_code_message_does_not_repeat_the_input() {
        let e = validate_mfa_code("hunter2-secret").unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn mfa_process_output_is_trimmed_and_taken() {
        let code = mfa_process("printf ' 654321\\n\\n'").unwrap();
        assert_eq!(code.expose(), "654321");
    }

    #[test]
    fn mfa_process_runs_through_sh_with_stdin_closed() {
        // `read` fails at once on /dev/null; a shared stdin would block.
        let code = mfa_process("if read x; then echo 111111; else echo 222222; fi").unwrap();
        assert_eq!(code.expose(), "222222");
    }

    #[test]
    fn mfa_process_non_digits_are_rejected_without_echoing_them() {
        // The command text differs from its output, which must not be shown.
        let e = mfa_process("printf '%s' ab cdef").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, PromptError::Invalid(_)));
        assert!(msg.contains("6 to 8 digit"), "{msg}");
        assert!(!msg.contains("abcdef"), "{msg}");
    }

    #[test]
    fn mfa_process_extra_stdout_is_rejected() {
        let e = mfa_process("echo 'Touch your YubiKey...'; echo 123456").unwrap_err();
        assert!(e.to_string().contains("prints only the code"), "{e}");
    }

    #[test]
    fn mfa_process_non_zero_exit_reports_the_code() {
        let e = mfa_process("echo 123456; exit 3").unwrap_err().to_string();
        assert!(e.contains("exited with code 3"), "{e}");
        assert!(e.contains("--mfa-token"), "{e}");
    }

    #[test]
    fn mfa_process_killed_by_signal_is_an_error() {
        let e = mfa_process("kill -9 $$").unwrap_err().to_string();
        assert!(e.contains("killed by a signal"), "{e}");
    }

    #[test]
    fn kinds_parse_from_every_listed_name_and_round_trip() {
        for name in PromptKind::NAMES {
            let k = PromptKind::parse(name).unwrap();
            assert_eq!(k.name(), *name);
            assert_eq!(name.parse::<PromptKind>().unwrap(), k);
        }
        assert_eq!(PromptKind::parse("Zenity").unwrap(), PromptKind::Zenity);
        assert_eq!(PromptKind::parse("").unwrap(), PromptKind::Auto);
    }

    #[test]
    fn unknown_kind_lists_the_choices() {
        let e = PromptKind::parse("pinentri").unwrap_err().to_string();
        assert!(
            e.contains("pinentri") && e.contains("terminal, pinentry, zenity, kdialog, osascript"),
            "{e}"
        );
    }
}
