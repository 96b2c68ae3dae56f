//! The terminal driver. It talks to /dev/tty and never to stdin or stdout:
//! under `credential_process` stdout carries the JSON the AWS SDK parses,
//! and in `... | vault exec` stdin is somebody else's data.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use zeroize::Zeroizing;

use super::{validate_mfa_code, Prompt, PromptError, TouchNotice, TouchRequest, MFA_ATTEMPTS};
use vault_base::secret::{MfaCode, Passphrase};

/// The controlling terminal of this process, whatever its fds point at.
#[cfg(unix)]
pub const TTY: &str = "/dev/tty";
/// Elsewhere there is no such file: on Windows "/dev/tty" would name
/// `\dev\tty` on the current drive, which anyone may create, so
/// `open_tty` refuses and no terminal driver is handed out; this only
/// names the terminal in messages.
#[cfg(not(unix))]
pub const TTY: &str = "the controlling terminal";

/// Asks on the controlling terminal.
#[derive(Debug)]
pub struct Terminal {
    _private: (),
}

impl Terminal {
    /// Succeeds only when the controlling terminal can be opened for reading
    /// and writing, so a driver is never handed out where it would fail
    /// (no terminal under an IDE, a launchd agent or `setsid`).
    pub fn open() -> io::Result<Terminal> {
        open_tty(true)?;
        Ok(Terminal { _private: () })
    }
}

/// The terminal, for writing and (`read`) reading.
#[cfg(unix)]
fn open_tty(read: bool) -> io::Result<File> {
    std::fs::OpenOptions::new().read(read).write(true).open(TTY)
}

/// The terminal driver has not been ported (Windows' console is `CONIN$`
/// and `CONOUT$`, with modes of its own): a clear "unsupported" rather than
/// opening a path that means something else there.
#[cfg(not(unix))]
fn open_tty(_read: bool) -> io::Result<File> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "vault's terminal prompt works on Unix only",
    ))
}

fn io_error(what: &str, e: io::Error) -> PromptError {
    PromptError::Io(format!("{what} the terminal ({TTY}): {e}"))
}

/// Writes `prompt` and reads one line with the terminal's own echo. Ctrl-D
/// on an empty line (or a hung-up terminal) reads as end of file: the user
/// walked away, which is a cancel, not an error.
fn read_line(prompt: &str) -> Result<Zeroizing<String>, PromptError> {
    let mut tty = open_tty(true).map_err(|e| io_error("cannot open", e))?;
    tty.write_all(prompt.as_bytes())
        .and_then(|()| tty.flush())
        .map_err(|e| io_error("cannot write to", e))?;
    let mut line = Zeroizing::new(String::new());
    let n = BufReader::new(&tty)
        .read_line(&mut line)
        .map_err(|e| io_error("cannot read from", e))?;
    if n == 0 || !line.ends_with('\n') {
        // Move off the prompt line so the shell prompt does not follow it.
        let _ = tty.write_all(b"\n");
        return Err(PromptError::Cancelled);
    }
    let end = line.trim_end_matches(['\r', '\n']).len();
    line.truncate(end);
    Ok(line)
}

impl Terminal {
    /// One line on the terminal, for drivers that ask elsewhere but have
    /// one (pinentry on a terminal).
    pub(crate) fn say(line: &str) {
        say(line);
    }
}

/// The terminal's touch countdown, for drivers that have a terminal.
pub(crate) fn countdown(request: &TouchRequest) -> Box<dyn TouchNotice> {
    Box::new(Countdown::start(request))
}

fn say(line: &str) {
    // Best effort: a message nobody can see is not worth failing for.
    if let Ok(mut tty) = open_tty(false) {
        let _ = writeln!(tty, "vault: {line}");
    }
}

impl Prompt for Terminal {
    fn mfa_code(&self, profile: &str, mfa_serial: &str) -> Result<MfaCode, PromptError> {
        // The code is echoed, as aws-vault does: it is worthless once used,
        // and seeing the digits typed avoids burning the 30 s window on a typo.
        let prompt = format!("Enter MFA code for {mfa_serial} (profile {profile}): ");
        for attempt in 1..=MFA_ATTEMPTS {
            let line = read_line(&prompt)?;
            match validate_mfa_code(line.trim()) {
                Ok(code) => return Ok(code),
                Err(_) if attempt < MFA_ATTEMPTS => {
                    let left = MFA_ATTEMPTS - attempt;
                    say(&format!(
                        "an MFA code is the 6 to 8 digits your device shows; try again \
                         ({left} {} left, Ctrl-D to cancel)",
                        if left == 1 { "try" } else { "tries" }
                    ));
                }
                Err(_) => {}
            }
        }
        Err(PromptError::Invalid(format!(
            "no valid MFA code after {MFA_ATTEMPTS} tries: type the 6 to 8 digits your MFA \
             device shows for {mfa_serial}, or pass one with --mfa-token"
        )))
    }

    fn secret(&self, label: &str) -> Result<Passphrase, PromptError> {
        // rpassword opens /dev/tty itself (by path, so it can switch echo
        // off on that very fd) and restores the mode when it returns.
        let config = rpassword::ConfigBuilder::new()
            .input_file_path(TTY)
            .output_file_path(TTY)
            .password_feedback_hide()
            .build();
        // Labels may end in a colon of their own: one is enough.
        let label = label.trim_end().trim_end_matches(':');
        let not_reading = sigint_while_reading();
        not_reading.store(false, Ordering::SeqCst);
        let read = rpassword::prompt_password_with_config(format!("{label}: "), config);
        not_reading.store(true, Ordering::SeqCst);
        match read {
            Ok(s) => Ok(Passphrase::new(s)),
            // Ctrl-D on an empty line.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                let _ = open_tty(false).and_then(|mut t| t.write_all(b"\n"));
                Err(PromptError::Cancelled)
            }
            // Ctrl-C: rpassword reads with the terminal's signals off and
            // reports it (its own SIGINT was held off, see
            // `sigint_while_reading`). vault then ends as Ctrl-C ends any
            // program, by SIGINT (a shell sees 130, a script's loop stops);
            // the mode is restored by then and nothing is half-written.
            // Only where that fails does it return.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                #[cfg(unix)]
                let _ =
                    signal_hook::low_level::emulate_default_handler(signal_hook::consts::SIGINT);
                Err(PromptError::Cancelled)
            }
            Err(e) => Err(io_error("cannot read a secret from", e)),
        }
    }

    fn text(&self, label: &str) -> Result<String, PromptError> {
        let label = label.trim_end().trim_end_matches(':');
        let line = read_line(&format!("{label}: "))?;
        Ok(line.trim().to_string())
    }

    fn notify(&self, message: &str) {
        say(message);
    }

    fn touch(&self, request: &TouchRequest) -> Box<dyn TouchNotice> {
        Box::new(Countdown::start(request))
    }
}

/// "Touch your YubiKey N to … (15 s)" on one terminal line, counting down
/// each second, then rewritten once as "…: touched" (or "not touched"):
/// one line per touch, in one wording, as ykman's and yubikey-agent's
/// users know it.
struct Countdown {
    end: Option<std::sync::mpsc::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Countdown {
    fn start(request: &TouchRequest) -> Countdown {
        let line = request.line();
        let timeout = request.timeout;
        let (end, told) = std::sync::mpsc::channel::<bool>();
        let thread = std::thread::Builder::new()
            .name("touch countdown".into())
            .spawn(move || {
                let Ok(mut tty) = open_tty(false) else {
                    return;
                };
                let start = std::time::Instant::now();
                loop {
                    let left = timeout.saturating_sub(start.elapsed());
                    let secs = left.as_millis().div_ceil(1000);
                    // \r and erase-line: the count rewrites its own line.
                    let _ = write!(tty, "\r\x1b[Kvault: {line} ({secs} s)");
                    let _ = tty.flush();
                    // Wake when the shown number changes (at least 100 ms
                    // on, so a card slower than its timeout does not spin).
                    let tick = left
                        .checked_sub(std::time::Duration::from_secs(
                            u64::try_from(secs.saturating_sub(1)).unwrap_or(0),
                        ))
                        .unwrap_or_default()
                        .max(std::time::Duration::from_millis(100));
                    match told.recv_timeout(tick) {
                        Ok(touched) => {
                            let how = if touched { "touched" } else { "not touched" };
                            let _ = write!(tty, "\r\x1b[Kvault: {line}: {how}\n");
                            return;
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                            let _ = writeln!(tty);
                            return;
                        }
                    }
                }
            })
            .ok();
        Countdown {
            end: Some(end),
            thread,
        }
    }

    fn finish(&mut self, touched: bool) {
        if let Some(end) = self.end.take() {
            let _ = end.send(touched);
        }
        // The last line is written before vault goes on to say or print
        // anything else.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl TouchNotice for Countdown {
    fn done(mut self: Box<Self>, touched: bool) {
        self.finish(touched);
    }
}

impl Drop for Countdown {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// rpassword answers Ctrl-C by raising SIGINT *before* it puts the
/// terminal's echo back, so with SIGINT's default action vault died and
/// left the user's shell typing blind. While a secret is read, SIGINT is
/// only swallowed (the read reports the Ctrl-C and `secret` ends vault
/// once the terminal is restored); at any other time it does what it
/// always did, the default action. Registered once per process; the
/// returned flag is true outside a read. (signal-hook is Unix-only, and
/// so is this driver: elsewhere the flag is only a flag.)
fn sigint_while_reading() -> &'static Arc<AtomicBool> {
    &sigint_guard().not_reading
}

/// SIGINT's two flags: `not_reading` lets it take its default action,
/// `seen` records that it came while it was held off.
struct SigintGuard {
    not_reading: Arc<AtomicBool>,
    seen: Arc<AtomicBool>,
}

fn sigint_guard() -> &'static SigintGuard {
    static GUARD: OnceLock<SigintGuard> = OnceLock::new();
    GUARD.get_or_init(|| {
        let guard = SigintGuard {
            not_reading: Arc::new(AtomicBool::new(true)),
            seen: Arc::new(AtomicBool::new(false)),
        };
        #[cfg(unix)]
        for registered in [
            signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&guard.seen)),
            signal_hook::flag::register_conditional_default(
                signal_hook::consts::SIGINT,
                Arc::clone(&guard.not_reading),
            ),
        ] {
            if let Err(e) = registered {
                log::debug!(target: "vault", "cannot guard the terminal against Ctrl-C: {e}");
            }
        }
        guard
    })
}

/// The terminal handed to another program that reads from it (a terminal
/// pinentry). A Ctrl-C there reaches that program and vault alike; if
/// vault died of it at once, the program's own race to restore echo before
/// it dies decided whether the user's shell went on typing blind (seen
/// both ways with pinentry-tty). So while it is held, SIGINT is only
/// recorded; on release the mode saved before is put back, and then a
/// Ctrl-C that came ends vault as it ends any program, by SIGINT.
pub(crate) struct HeldTerminal {
    #[cfg(unix)]
    saved: Option<(File, rustix::termios::Termios)>,
}

impl HeldTerminal {
    pub(crate) fn hold() -> HeldTerminal {
        let guard = sigint_guard();
        guard.seen.store(false, Ordering::SeqCst);
        guard.not_reading.store(false, Ordering::SeqCst);
        #[cfg(unix)]
        let saved = open_tty(false).ok().and_then(|tty| {
            let mode = rustix::termios::tcgetattr(&tty).ok()?;
            Some((tty, mode))
        });
        HeldTerminal {
            #[cfg(unix)]
            saved,
        }
    }
}

impl Drop for HeldTerminal {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some((tty, mode)) = &self.saved {
            let _ = rustix::termios::tcsetattr(tty, rustix::termios::OptionalActions::Now, mode);
        }
        let guard = sigint_guard();
        guard.not_reading.store(true, Ordering::SeqCst);
        if guard.seen.swap(false, Ordering::SeqCst) {
            #[cfg(unix)]
            let _ = signal_hook::low_level::emulate_default_handler(signal_hook::consts::SIGINT);
        }
    }
}
