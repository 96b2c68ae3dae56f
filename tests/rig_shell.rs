//! `hw/rig --shell`, as a new user tries README's commands in it: an
//! interactive bash at a terminal (util-linux `script` gives it a pty),
//! with `vault` on PATH, where typing reaches the program and Ctrl-C at a
//! prompt stops vault, not the shell, and leaves the terminal echoing.
//! Before, the rig ran its command in the background: stdin was /dev/null,
//! SIGINT was ignored, and `hw/rig -- bash` ended at once.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// A rig starts in seconds; a loaded CI machine gets a minute.
const DEADLINE: Duration = Duration::from_secs(90);

struct Terminal {
    child: Child,
    stdin: ChildStdin,
    chunks: Receiver<Vec<u8>>,
    transcript: String,
    /// How much of the transcript `expect` has consumed.
    seen: usize,
}

impl Terminal {
    fn start(cmd: &str) -> Terminal {
        let mut child = Command::new("script")
            .args(["-q", "-f", "-e", "-c", cmd, "/dev/null"])
            .env("VAULT_RIG_NO_BUILD", "1")
            .env("TERM", "dumb")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("util-linux `script` is needed to give the rig a pty");
        let mut out = child.stdout.take().unwrap();
        let (tx, chunks) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Terminal {
            stdin: child.stdin.take().unwrap(),
            child,
            chunks,
            transcript: String::new(),
            seen: 0,
        }
    }

    /// Waits until `needle` appears after what was already expected.
    fn expect(&mut self, needle: &str) {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(i) = self.transcript[self.seen..].find(needle) {
                self.seen += i + needle.len();
                return;
            }
            match self
                .chunks
                .recv_timeout(end.saturating_duration_since(Instant::now()))
            {
                Ok(c) => self.transcript += &String::from_utf8_lossy(&c),
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "{needle:?} did not appear on the terminal; got {:?}",
                        self.transcript
                    );
                }
            }
        }
    }

    fn type_keys(&mut self, keys: &str) {
        self.stdin.write_all(keys.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn exit_code(mut self) -> Option<i32> {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < end,
                "the rig did not end; terminal: {:?}",
                self.transcript
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn the_rig_shell_is_interactive_with_vault_on_path_and_ctrl_c_stops_a_prompt() {
    assert!(
        std::env::var_os("VAULT_RIG").is_some(),
        "run inside the rig: hw/rig -- cargo test --test rig_shell"
    );
    let rig = concat!(env!("CARGO_MANIFEST_DIR"), "/hw/rig");
    let mut term = Terminal::start(&format!("{rig} --shell"));
    term.expect("vault is on PATH");
    term.expect("$ ");

    // README's enroll line works as written: the rig's attestation root is
    // trusted in its shell.
    term.type_keys("test -s \"$VAULT_ATTESTATION_ROOTS\" && echo roots-trusted\n");
    term.expect("\nroots-trusted");

    // vault is on PATH: the workspace's own build.
    term.type_keys("command -v vault; vault --version\n");
    term.expect("/bin/vault");
    term.expect(concat!("vault ", env!("CARGO_PKG_VERSION")));

    // Ctrl-C at the secret prompt: vault ends (130), the shell stays, and
    // what is typed next is echoed again.
    term.type_keys("vault add p\n");
    term.expect("Access Key ID: ");
    term.type_keys("AKIAIOSFODNN7EXAMPLE\n");
    term.expect("Secret Access Key: ");
    term.type_keys("\x03");
    term.expect("$ ");
    term.type_keys("echo status=$? visible\n");
    term.expect("echo status=$? visible");
    term.expect("status=130 visible");
    // Nothing was stored.
    term.type_keys("echo stored=$(vault list --credentials | wc -l)\n");
    term.expect("stored=0");

    // The shell's exit status is the rig's.
    term.type_keys("exit 7\n");
    assert_eq!(term.exit_code(), Some(7));
}
