//! The pinentry driver: asks through the system's `pinentry` program, as
//! gpg-agent, yubikey-agent and age-plugin-yubikey do, so the PIN dialog is
//! the one the desktop already trusts (pinentry-gnome3, -qt, -mac, or
//! -curses/-tty on a terminal). vault speaks its Assuan protocol over the
//! program's stdin and stdout: OPTION, SETTITLE, SETDESC, SETPROMPT,
//! SETERROR, GETPIN (the answer in `D` lines, percent-encoded), CONFIRM,
//! BYE. Every byte of an answer is read into a zeroizing buffer, one byte
//! at a time, so no unwiped copy of a PIN sits in a reader's buffer.
//!
//! Reference: the Assuan protocol (libassuan's manual, "Client code" and
//! the data line escaping) and pinentry's own command list (`HELP`).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use zeroize::Zeroizing;

use super::{
    find_program, validate_mfa_code, Prompt, PromptError, TouchNotice, TouchRequest, MFA_ATTEMPTS,
};
use vault_base::secret::{MfaCode, Passphrase};

/// Assuan lines are at most 1000 bytes, the newline included.
const MAX_LINE: usize = 1000;
/// GPG_ERR_CANCELED and GPG_ERR_FULLY_CANCELED: the user pressed Cancel,
/// Escape or Ctrl-C (or Ctrl-D in pinentry-tty). The error source in the
/// upper bits varies with the program, so only the code is compared.
const CANCELED: [u32; 2] = [99, 198];
/// GPG_ERR_ASS_UNKNOWN_CMD, GPG_ERR_NOT_IMPLEMENTED and
/// GPG_ERR_UNKNOWN_OPTION: an older pinentry without an OPTION or command.
const UNSUPPORTED: [u32; 3] = [275, 69, 174];

/// Asks through a pinentry program.
#[derive(Debug, Clone)]
pub struct Pinentry {
    program: PathBuf,
    /// Hand the program our terminal (`OPTION ttyname`): only when vault
    /// may use it. A renewal while a command owns the terminal must not.
    use_tty: bool,
    /// A command of the user's owns the terminal: say nothing on it.
    detached: bool,
}

impl Pinentry {
    /// The program named by `VAULT_PINENTRY` (a name on PATH or a path), else
    /// `pinentry` on PATH: on Debian an alternative pointing at the
    /// desktop's flavour. The path found now is the one run later.
    pub fn find(use_tty: bool, detached: bool) -> Option<Pinentry> {
        let name = vault_base::settings::Settings::get()
            .pinentry
            .clone()
            .unwrap_or_else(|| "pinentry".into());
        let program = if name.contains('/') {
            let p = PathBuf::from(&name);
            super::is_executable(&p).then_some(p)?
        } else {
            find_program(&name)?
        };
        Some(Pinentry {
            program,
            use_tty: use_tty && !detached,
            detached,
        })
    }

    pub fn program(&self) -> &std::path::Path {
        &self.program
    }

    /// The flavour the program reports (`curses`, `tty`, `gnome3`, `qt`…),
    /// for telling a terminal pinentry from a graphical one before it is
    /// used where no terminal may be.
    pub fn flavor(&self) -> Result<String, PromptError> {
        let mut s = Session::start(self)?;
        let flavor = s.getinfo("flavor");
        s.bye();
        flavor
    }

    /// Asks `description` with `SETDESC`, hidden, and returns what was typed;
    /// `error` is shown above the entry (a retry).
    fn get(
        &self,
        description: &str,
        prompt: &str,
        error: Option<&str>,
    ) -> Result<Zeroizing<Vec<u8>>, PromptError> {
        let _held = self.use_tty.then(super::terminal::HeldTerminal::hold);
        let mut s = Session::start(self)?;
        s.describe(description, prompt, error)?;
        let pin = s.getpin();
        s.bye();
        pin
    }

    /// Asks a yes/no question with `CONFIRM`: true for OK, false for Cancel.
    pub fn confirm(&self, question: &str) -> Result<bool, PromptError> {
        let _held = self.use_tty.then(super::terminal::HeldTerminal::hold);
        let mut s = Session::start(self)?;
        s.describe(question, "", None)?;
        let r = match s.command("CONFIRM") {
            Ok(_) => Ok(true),
            Err(PromptError::Cancelled) => Ok(false),
            Err(e) => Err(e),
        };
        s.bye();
        r
    }
}

/// One conversation with a pinentry process, which asks one thing.
struct Session {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    name: String,
}

impl Session {
    fn start(p: &Pinentry) -> Result<Session, PromptError> {
        let name = p
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pinentry".into());
        let mut cmd = Command::new(&p.program);
        vault_base::settings::without_vault_secrets(&mut cmd);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // pinentry logs to stderr only with --debug; nothing there is
            // secret, and it must never be our stdout.
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                PromptError::Io(format!(
                    "cannot run {name} ({}): {e}; install pinentry (apt install pinentry-curses \
                     or pinentry-gnome3) or choose another --prompt",
                    p.program.display()
                ))
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(PromptError::Io(format!("cannot talk to {name}")));
        };
        let mut s = Session {
            child,
            stdin,
            stdout,
            name,
        };
        // The greeting: "OK Pleased to meet you".
        s.answer()?;
        if p.use_tty {
            // "/dev/tty" is the program's controlling terminal, which it
            // inherits from vault: the terminal vault would have used.
            s.option(&format!("ttyname={}", super::terminal::TTY))?;
            if let Some(term) = std::env::var_os("TERM") {
                s.option(&format!("ttytype={}", term.to_string_lossy()))?;
            }
        }
        for var in ["LC_ALL", "LC_CTYPE", "LANG"] {
            if let Some(v) = vault_base::settings::env_var(var) {
                s.option(&format!("lc-ctype={v}"))?;
                break;
            }
        }
        s.command(&format!("SETTITLE {}", escape("vault")))?;
        Ok(s)
    }

    /// An `OPTION`; one the program does not know is no reason to fail.
    fn option(&mut self, option: &str) -> Result<(), PromptError> {
        match self.command(&format!("OPTION {}", escape(option))) {
            Err(PromptError::Io(ref m)) if UNSUPPORTED.iter().any(|c| m.contains(&err_tag(*c))) => {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    fn describe(
        &mut self,
        description: &str,
        prompt: &str,
        error: Option<&str>,
    ) -> Result<(), PromptError> {
        self.command(&format!("SETDESC {}", escape(description)))?;
        if !prompt.is_empty() {
            self.command(&format!("SETPROMPT {}", escape(prompt)))?;
        }
        if let Some(e) = error {
            self.command(&format!("SETERROR {}", escape(e)))?;
        }
        Ok(())
    }

    fn getinfo(&mut self, what: &str) -> Result<String, PromptError> {
        let data = self.command(&format!("GETINFO {what}"))?;
        Ok(String::from_utf8_lossy(&data).into_owned())
    }

    fn getpin(&mut self) -> Result<Zeroizing<Vec<u8>>, PromptError> {
        self.command("GETPIN")
    }

    /// Sends one command line and collects its `D` data (decoded) up to
    /// `OK`; `ERR` becomes `Cancelled` or an error naming the program.
    fn command(&mut self, line: &str) -> Result<Zeroizing<Vec<u8>>, PromptError> {
        let mut out = Zeroizing::new(Vec::with_capacity(line.len() + 1));
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
        if out.len() > MAX_LINE {
            return Err(PromptError::Invalid(format!(
                "text too long for {} ({} bytes; Assuan lines hold {MAX_LINE})",
                self.name,
                out.len()
            )));
        }
        self.stdin
            .write_all(&out)
            .and_then(|()| self.stdin.flush())
            .map_err(|e| PromptError::Io(format!("cannot write to {}: {e}", self.name)))?;
        self.answer()
    }

    fn answer(&mut self) -> Result<Zeroizing<Vec<u8>>, PromptError> {
        let mut data = Zeroizing::new(Vec::new());
        loop {
            let line = self.read_line()?;
            match line.first() {
                Some(b'O')
                    if line.starts_with(b"OK") && matches!(line.get(2), None | Some(b' ')) =>
                {
                    return Ok(data)
                }
                Some(b'D') if line.starts_with(b"D ") => decode_into(&line[2..], &mut data),
                Some(b'E') if line.starts_with(b"ERR ") => {
                    let text = String::from_utf8_lossy(&line[4..]).into_owned();
                    let code = text
                        .split_whitespace()
                        .next()
                        .and_then(|c| c.parse::<u32>().ok())
                        .unwrap_or(0);
                    if CANCELED.contains(&(code & 0xFFFF)) {
                        return Err(PromptError::Cancelled);
                    }
                    return Err(PromptError::Io(format!(
                        "{} answered {} {text}; if no dialog appeared, check DISPLAY or the \
                         terminal, or choose another --prompt",
                        self.name,
                        err_tag(code & 0xFFFF)
                    )));
                }
                // Status (`S`), comments (`#`) and an INQUIRE vault never
                // asked for (answered by ending it) carry nothing vault needs.
                Some(b'I') if line.starts_with(b"INQUIRE") => {
                    self.stdin
                        .write_all(b"END\n")
                        .and_then(|()| self.stdin.flush())
                        .map_err(|e| {
                            PromptError::Io(format!("cannot write to {}: {e}", self.name))
                        })?;
                }
                _ => {}
            }
        }
    }

    /// One line without its newline, read a byte at a time into a
    /// zeroizing buffer (a `D` line holds the PIN).
    fn read_line(&mut self) -> Result<Zeroizing<Vec<u8>>, PromptError> {
        let mut line = Zeroizing::new(Vec::with_capacity(64));
        let mut byte = [0u8; 1];
        loop {
            match self.stdout.read(&mut byte) {
                Ok(0) => {
                    return Err(PromptError::Io(format!(
                        "{} ended without answering; if no dialog appeared, check DISPLAY or \
                         the terminal, or choose another --prompt",
                        self.name
                    )))
                }
                Ok(_) if byte[0] == b'\n' => return Ok(line),
                Ok(_) if line.len() >= MAX_LINE => {
                    return Err(PromptError::Io(format!(
                        "{} sent a line longer than Assuan allows",
                        self.name
                    )))
                }
                Ok(_) => line.push(byte[0]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(PromptError::Io(format!(
                        "cannot read from {}: {e}",
                        self.name
                    )))
                }
            }
        }
    }

    fn bye(mut self) {
        let _ = self.stdin.write_all(b"BYE\n");
        let _ = self.stdin.flush();
        let _ = self.answer();
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

fn err_tag(code: u32) -> String {
    format!("(error {code})")
}

/// Assuan's escaping of a command's text: `%`, CR, LF and other control
/// characters as `%XX`. Only ASCII bytes are escaped, so UTF-8 stays whole.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '%' || c.is_ascii_control() {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Decodes a `D` line's `%XX` escapes into `out`; a `%` not followed by two
/// hex digits is kept as it is.
fn decode_into(encoded: &[u8], out: &mut Zeroizing<Vec<u8>>) {
    let hex = |c: u8| (c as char).to_digit(16);
    let mut i = 0;
    while i < encoded.len() {
        if encoded[i] == b'%' && i + 2 < encoded.len() {
            if let (Some(h), Some(l)) = (hex(encoded[i + 1]), hex(encoded[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(encoded[i]);
        i += 1;
    }
}

/// A secret as text, wiping the bytes on every path.
fn into_text(bytes: Zeroizing<Vec<u8>>, name: &str) -> Result<Zeroizing<String>, PromptError> {
    match std::str::from_utf8(&bytes) {
        Ok(s) => Ok(Zeroizing::new(s.to_string())),
        Err(_) => Err(PromptError::Invalid(format!(
            "{name} returned text that is not UTF-8; type it again"
        ))),
    }
}

/// The short label beside the entry field.
fn entry_label(label: &str) -> &'static str {
    let l = label.to_ascii_lowercase();
    if l.contains("puk") {
        "PUK:"
    } else if l.contains("pin") {
        "PIN:"
    } else if l.contains("passphrase") || l.contains("password") {
        "Passphrase:"
    } else {
        "Answer:"
    }
}

impl Prompt for Pinentry {
    fn mfa_code(&self, profile: &str, mfa_serial: &str) -> Result<MfaCode, PromptError> {
        let ask = format!("Enter MFA code for {mfa_serial} (profile {profile})");
        let mut error = None;
        for _ in 0..MFA_ATTEMPTS {
            let answer = into_text(self.get(&ask, "Code:", error)?, "pinentry")?;
            match validate_mfa_code(answer.trim()) {
                Ok(code) => return Ok(code),
                Err(_) => error = Some("That was not a 6 to 8 digit code"),
            }
        }
        Err(PromptError::Invalid(format!(
            "no valid MFA code after {MFA_ATTEMPTS} tries: type the 6 to 8 digits your MFA \
             device shows for {mfa_serial}, or pass one with --mfa-token"
        )))
    }

    fn secret(&self, label: &str) -> Result<Passphrase, PromptError> {
        let label = label.trim_end().trim_end_matches(':');
        let answer = into_text(self.get(label, entry_label(label), None)?, "pinentry")?;
        Ok(Passphrase::new(answer.as_str()))
    }

    fn text(&self, label: &str) -> Result<String, PromptError> {
        // pinentry has no echoing entry; an access key ID or a profile
        // name typed hidden is still typed right.
        let label = label.trim_end().trim_end_matches(':');
        let answer = into_text(self.get(label, "Answer:", None)?, "pinentry")?;
        Ok(answer.trim().to_string())
    }

    fn notify(&self, message: &str) {
        // pinentry's MESSAGE waits for OK, and a notice must not block:
        // the terminal's line where vault has one, else the desktop's.
        if self.use_tty {
            super::Terminal::say(message);
        } else {
            super::notify_without_terminal(message, self.detached);
        }
    }

    fn touch(&self, request: &TouchRequest) -> Box<dyn TouchNotice> {
        if self.use_tty {
            super::terminal::countdown(request)
        } else {
            super::touch_without_terminal(request, self.detached)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn data_lines_are_percent_decoded() {
        let mut out = Zeroizing::new(Vec::new());
        decode_into(b"a%25b%0Ac%0dd%", &mut out);
        assert_eq!(out.as_slice(), b"a%b\nc\rd%");
        let mut out = Zeroizing::new(Vec::new());
        decode_into(b"%zz%4", &mut out);
        assert_eq!(out.as_slice(), b"%zz%4");
    }

    #[test]
    fn command_text_escapes_percent_and_line_breaks_only() {
        assert_eq!(escape("100% sure\nnext\r"), "100%25 sure%0Anext%0D");
        assert_eq!(escape("profile admin's key · ü"), "profile admin's key · ü");
    }

    #[test]
    fn entry_labels() {
        assert_eq!(entry_label("PIN for YubiKey 7 (3 tries left)"), "PIN:");
        assert_eq!(entry_label("PUK for YubiKey 7"), "PUK:");
        assert_eq!(
            entry_label("Passphrase for vault's file store"),
            "Passphrase:"
        );
    }
}
