//! The terminal driver on a real pseudo-terminal. Each test runs this very
//! test binary again (only `child_entry`) under util-linux `script`, which
//! gives it a pty as controlling terminal, with stdin from /dev/null and
//! stdout to a file. The test plays the user on the pty and then checks that
//! the prompts reached the terminal and not stdout, where credential_process
//! JSON goes, and that secrets were not echoed.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use vault_prompt::{driver, PromptError, PromptKind, TouchRequest};

const CHILD: &str = "VAULT_PROMPT_TEST_CHILD";
const OUT: &str = "VAULT_PROMPT_TEST_OUT";
const SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// Long enough for any machine to get from writing the prompt to switching
/// echo off; a secret typed before that would be echoed, as with sudo.
const SETTLE: Duration = Duration::from_millis(500);
const DEADLINE: Duration = Duration::from_secs(30);

/// Not a test: the child the tests below start (`--exact child_entry
/// --include-ignored`), so a normal run lists it as ignored, never as
/// passed. With `CHILD` set it plays vault: asks through the driver
/// `VAULT_PROMPT` selects and writes the outcome to the file `OUT` names.
#[test]
#[ignore = "helper, not a test: run as a child by the prompt tests in this file"]
fn child_entry() {
    let action = std::env::var(CHILD).unwrap_or_else(|_| {
        panic!("child_entry is a helper run by this file's tests ({CHILD} unset)")
    });
    let out = std::env::var(OUT).expect("OUT set with CHILD");
    let kind = PromptKind::parse(&std::env::var("VAULT_PROMPT").unwrap_or_default()).unwrap();
    let mut report = String::new();
    let mut record = |r: Result<String, PromptError>| {
        report += &match r {
            Ok(v) => format!("ok {v}\n"),
            Err(PromptError::Cancelled) => "cancelled\n".to_string(),
            Err(e) => format!("err {e:?}\n"),
        };
    };
    match driver(kind) {
        Err(e) => record(Err(e)),
        Ok(p) => match action.as_str() {
            "secret_then_text" => {
                record(
                    p.secret("AWS secret access key")
                        .map(|s| s.expose().to_string()),
                );
                record(p.text("AWS access key ID"));
            }
            "secret" => record(
                p.secret("AWS secret access key")
                    .map(|s| s.expose().to_string()),
            ),
            "text" => record(p.text("Type the profile name (admin) to remove it")),
            "mfa" => record(p.mfa_code("dev", SERIAL).map(|c| c.expose().to_string())),
            "notify" => {
                p.notify("Insert your YubiKey");
                record(Ok(String::new()));
            }
            "touch" => {
                // A touch after 2.5 s of a 3 s wait, then one never given.
                let ask = |timeout_ms, purpose: &str| {
                    p.touch(&TouchRequest {
                        serial: 12345678,
                        purpose: purpose.to_string(),
                        timeout: Duration::from_millis(timeout_ms),
                    })
                };
                let n = ask(3000, "to unlock profile admin's key");
                std::thread::sleep(Duration::from_millis(2500));
                n.done(true);
                let n = ask(1000, "for the MFA code of arn:aws:iam::1:mfa/a");
                std::thread::sleep(Duration::from_millis(1200));
                n.done(false);
                record(Ok(String::new()));
            }
            "secret_with_percent" => record(
                p.secret("PIN for YubiKey 7 (3 tries left)")
                    .map(|s| s.expose().to_string()),
            ),
            other => panic!("unknown action {other}"),
        },
    }
    std::fs::write(out, report).unwrap();
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The child running under `script`, the pty transcript as it arrives, and
/// where the child's stdout and result land.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    chunks: Receiver<Vec<u8>>,
    transcript: String,
    dir: tempfile::TempDir,
}

impl Session {
    fn start(action: &str) -> Session {
        Session::start_with(action, "terminal", &[])
    }

    fn start_with(action: &str, prompt: &str, env: &[(&str, &str)]) -> Session {
        Session::start_then(action, prompt, env, "")
    }

    /// As `start_with`, and then the shell commands `after` run on the same
    /// terminal once the child has ended, however it ended: the shell
    /// traps SIGINT (a handler, which the child does not inherit), so a
    /// Ctrl-C ends only the child.
    fn start_then(action: &str, prompt: &str, env: &[(&str, &str)], after: &str) -> Session {
        let dir = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let mut cmd = format!(
            "{} --exact child_entry --include-ignored --nocapture --test-threads=1 </dev/null >{} 2>{}",
            sh_quote(exe.to_str().unwrap()),
            sh_quote(dir.path().join("stdout").to_str().unwrap()),
            sh_quote(dir.path().join("stderr").to_str().unwrap()),
        );
        if !after.is_empty() {
            cmd = format!("trap 'echo interrupted' INT; {cmd}; {after}");
        }
        // A terminal's shell starts its commands with SIGINT's default
        // action. Run without a terminal (CI, `hw/rig` fed from a pipe),
        // the tests inherit SIGINT ignored, which the shell below could
        // neither trap nor undo, so a Ctrl-C would reach no one: coreutils'
        // `env --default-signal` puts the default back for `script`.
        let mut child = Command::new("env")
            .args(["--default-signal=INT", "script"])
            .args(["-q", "-e", "-c", &cmd, "/dev/null"])
            .env(CHILD, action)
            .env(OUT, dir.path().join("result"))
            .env("VAULT_PROMPT", prompt)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("util-linux `script` is needed to give the child a pty");
        let mut stdout = child.stdout.take().unwrap();
        let (tx, chunks) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Session {
            stdin: child.stdin.take(),
            child,
            chunks,
            transcript: String::new(),
            dir,
        }
    }

    /// Waits until `needle` has appeared `times` times on the terminal.
    fn expect(&mut self, needle: &str, times: usize) {
        let end = Instant::now() + DEADLINE;
        while self.transcript.matches(needle).count() < times {
            let left = end.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(c) => self.transcript += &String::from_utf8_lossy(&c),
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "{needle:?} did not appear {times}x on the terminal; got {:?}",
                        self.transcript
                    );
                }
            }
        }
    }

    /// Types on the terminal, as a user at the keyboard would.
    fn type_keys(&mut self, keys: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(keys.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for the shell to end, however the child ended; returns its
    /// status, the result file, the child's stdout and the transcript.
    fn wait_end(mut self) -> (std::process::ExitStatus, String, String, String) {
        let end = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!(
                    "child did not finish; terminal so far: {:?}",
                    self.transcript
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(self.stdin.take());
        while let Ok(c) = self.chunks.recv_timeout(Duration::from_millis(200)) {
            self.transcript += &String::from_utf8_lossy(&c);
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let d: PathBuf = self.dir.path().into();
        (
            status,
            read(&d.join("result")),
            read(&d.join("stdout")),
            self.transcript,
        )
    }

    /// As `wait_end`, whatever the status: (result, stdout, transcript).
    fn finish_any(self) -> (String, String, String) {
        let (_, result, stdout, tty) = self.wait_end();
        (result, stdout, tty)
    }

    /// Waits for the child to end, which it must do successfully; returns
    /// (result file, child's stdout, transcript).
    fn finish(self) -> (String, String, String) {
        let (status, result, stdout, tty) = self.wait_end();
        assert!(status.success(), "child failed: {status}");
        // The redirection worked: the child's own test harness wrote there.
        assert!(stdout.contains("child_entry"), "stdout: {stdout:?}");
        (result, stdout, tty)
    }
}

#[test]
fn secret_is_asked_on_the_tty_without_echo_and_echo_comes_back() {
    let mut s = Session::start("secret_then_text");
    s.expect("AWS secret access key: ", 1);
    std::thread::sleep(SETTLE);
    s.type_keys(&format!("{SECRET}\r"));
    s.expect("AWS access key ID: ", 1);
    s.type_keys("AKIAIOSFODNN7EXAMPLE\r");
    let (result, stdout, tty) = s.finish();
    assert_eq!(result, format!("ok {SECRET}\nok AKIAIOSFODNN7EXAMPLE\n"));
    assert!(!tty.contains(SECRET), "secret echoed: {tty:?}");
    // The terminal echoes again after the secret: the text answer shows.
    assert!(tty.contains("AKIAIOSFODNN7EXAMPLE"), "{tty:?}");
    for text in ["AWS secret access key", "AWS access key ID", SECRET] {
        assert!(
            !stdout.contains(text),
            "{text:?} reached stdout: {stdout:?}"
        );
    }
}

#[test]
fn ctrl_d_at_the_secret_prompt_cancels() {
    let mut s = Session::start("secret");
    s.expect("AWS secret access key: ", 1);
    std::thread::sleep(SETTLE);
    s.type_keys("\x04");
    let (result, _, _) = s.finish();
    assert_eq!(result, "cancelled\n");
}

#[test]
fn mfa_code_is_asked_again_after_a_bad_one() {
    let mut s = Session::start("mfa");
    let prompt = format!("Enter MFA code for {SERIAL} (profile dev): ");
    s.expect(&prompt, 1);
    s.type_keys("12ab\r");
    s.expect("try again (2 tries left", 1);
    s.expect(&prompt, 2);
    s.type_keys("123 456\r");
    let (result, stdout, _) = s.finish();
    assert_eq!(result, "ok 123456\n");
    assert!(!stdout.contains("MFA code"), "{stdout:?}");
}

#[test]
fn mfa_gives_up_after_three_bad_codes() {
    let mut s = Session::start("mfa");
    let prompt = format!("Enter MFA code for {SERIAL} (profile dev): ");
    for i in 1..=3 {
        s.expect(&prompt, i);
        s.type_keys("nope\r");
    }
    let (result, _, tty) = s.finish();
    assert!(
        result.starts_with("err Invalid(\"no valid MFA code after 3 tries"),
        "{result}"
    );
    assert!(tty.contains("1 try left"), "{tty:?}");
}

#[test]
fn ctrl_d_at_the_mfa_prompt_cancels() {
    let mut s = Session::start("mfa");
    s.expect("Enter MFA code for", 1);
    s.type_keys("\x04");
    let (result, _, _) = s.finish();
    assert_eq!(result, "cancelled\n");
}

#[test]
fn notify_writes_one_line_to_the_tty_only() {
    let s = Session::start("notify");
    let (result, stdout, tty) = s.finish();
    assert_eq!(result, "ok \n");
    assert!(tty.contains("vault: Insert your YubiKey\r\n"), "{tty:?}");
    assert!(!stdout.contains("Insert"), "{stdout:?}");
}

/// What a terminal shows once carriage returns and erase-line have done
/// their work: the lines a user reads.
fn screen_lines(tty: &str) -> Vec<String> {
    tty.split("\r\n")
        .map(|l| {
            let last = l.rsplit('\r').next().unwrap_or("");
            last.replace("\x1b[K", "")
        })
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn touch_counts_down_on_one_line_and_confirms() {
    let s = Session::start("touch");
    let (result, stdout, tty) = s.finish();
    assert_eq!(result, "ok \n");
    let first = "vault: Touch your YubiKey 12345678 to unlock profile admin's key";
    // Counted down in place, each second: the card's timeout, then less.
    for left in ["(3 s)", "(2 s)", "(1 s)"] {
        assert!(
            tty.contains(&format!("\r\x1b[K{first} {left}")),
            "{left}: {tty:?}"
        );
    }
    // One line per touch, in one wording, ending in what happened.
    assert_eq!(
        screen_lines(&tty),
        [
            format!("{first}: touched"),
            "vault: Touch your YubiKey 12345678 for the MFA code of arn:aws:iam::1:mfa/a: \
             not touched"
                .to_string()
        ],
        "{tty:?}"
    );
    assert!(!tty.contains(": :"), "{tty:?}");
    assert!(!stdout.contains("Touch"), "{stdout:?}");
}

/// pinentry-tty, Debian's terminal pinentry, as the system's pinentry.
fn pinentry_tty() -> Vec<(&'static str, &'static str)> {
    vec![("VAULT_PINENTRY", "pinentry-tty")]
}

#[test]
fn pinentry_asks_on_the_terminal_and_decodes_the_answer() {
    // `%` travels percent-encoded in Assuan's D lines: the decoding shows.
    let pin = "12%34 56";
    let mut s = Session::start_with("secret_with_percent", "pinentry", &pinentry_tty());
    s.expect("PIN for YubiKey 7 (3 tries left)", 1);
    s.expect("PIN:", 1);
    std::thread::sleep(SETTLE);
    s.type_keys(&format!("{pin}\r"));
    let (result, stdout, tty) = s.finish();
    assert_eq!(result, format!("ok {pin}\n"));
    assert!(!tty.contains(pin), "PIN echoed: {tty:?}");
    assert!(!tty.contains(": :"), "{tty:?}");
    assert!(!stdout.contains("PIN"), "{stdout:?}");
}

#[test]
fn pinentry_asks_again_with_an_error_after_a_bad_mfa_code() {
    let mut s = Session::start_with("mfa", "pinentry", &pinentry_tty());
    s.expect(&format!("Enter MFA code for {SERIAL} (profile dev)"), 1);
    s.expect("Code:", 1);
    std::thread::sleep(SETTLE);
    s.type_keys("12ab\r");
    s.expect("That was not a 6 to 8 digit code", 1);
    s.expect("Code:", 2);
    std::thread::sleep(SETTLE);
    s.type_keys("654 321\r");
    let (result, _, _) = s.finish();
    assert_eq!(result, "ok 654321\n");
}

#[test]
fn ctrl_d_at_the_pinentry_prompt_cancels() {
    let mut s = Session::start_with("secret", "pinentry", &pinentry_tty());
    s.expect("AWS secret access key", 1);
    std::thread::sleep(SETTLE);
    s.type_keys("\x04");
    let (result, _, _) = s.finish();
    assert_eq!(result, "cancelled\n");
}

/// Ctrl-C at each prompt a user meets (a secret, a typed answer such as a
/// confirmation, an MFA code; on the terminal and through pinentry): the
/// child ends as a shell reports SIGINT (130), and after vault's own
/// terminal prompts the terminal echoes again, so the shell the user is
/// back in works.
#[test]
fn ctrl_c_at_each_prompt_ends_it_and_leaves_the_terminal_echoing() {
    let after = "echo \"status=$?\"; \
        if stty -a | tr ' ;' '\\n\\n' | grep -qx -- -echo; then echo echo=off; else echo echo=on; fi";
    let cases = [
        ("secret", "terminal", "AWS secret access key: ", vec![]),
        ("text", "terminal", "to remove it: ", vec![]),
        ("mfa", "terminal", "(profile dev): ", vec![]),
        ("secret", "pinentry", "Answer:", pinentry_tty()),
        ("mfa", "pinentry", "Code:", pinentry_tty()),
    ];
    for (action, driver, prompt, env) in cases {
        let mut s = Session::start_then(action, driver, &env, after);
        s.expect(prompt, 1);
        std::thread::sleep(SETTLE);
        s.type_keys("\x03");
        s.expect("echo=", 1);
        let (result, _, tty) = s.finish_any();
        assert_eq!(
            result, "",
            "{action} via {driver}: the child went on: {tty:?}"
        );
        assert!(
            tty.contains("status=130"),
            "{action} via {driver}: not ended by SIGINT: {tty:?}"
        );
        // The Ctrl-C reaches pinentry-tty too, which restores echo before
        // it dies or not, by its own race (seen both ways): vault puts back
        // the mode it saved before it started pinentry, then ends.
        assert!(
            tty.contains("echo=on"),
            "{action} via {driver}: the terminal was left without echo: {tty:?}"
        );
    }
}
