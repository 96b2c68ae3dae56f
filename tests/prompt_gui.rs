//! The dialog drivers against a stand-in dialog program: a shell script
//! named `zenity` (or `kdialog`) first on PATH that records its argv and
//! answers from a script of replies. Each test runs this test binary again
//! (only `child_entry`) with the PATH, DISPLAY and driver it needs, under
//! `setsid` so it has no controlling terminal, as under an IDE; that keeps
//! the environment of this process untouched and `--prompt auto` honest.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vault_prompt::{driver, PromptError, PromptKind};

const CHILD: &str = "VAULT_PROMPT_TEST_CHILD";
const OUT: &str = "VAULT_PROMPT_TEST_OUT";
const SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const DEADLINE: Duration = Duration::from_secs(30);

/// Not a test: the child the tests below start (`--exact child_entry
/// --include-ignored`), so a normal run lists it as ignored, never as
/// passed. With `CHILD` set it asks through the driver `VAULT_PROMPT`
/// selects and writes the outcome to the file `OUT` names.
#[test]
#[ignore = "helper, not a test: run as a child by the dialog tests in this file"]
fn child_entry() {
    let action = std::env::var(CHILD).unwrap_or_else(|_| {
        panic!("child_entry is a helper run by this file's tests ({CHILD} unset)")
    });
    let out = std::env::var(OUT).expect("OUT set with CHILD");
    let kind = PromptKind::parse(&std::env::var("VAULT_PROMPT").unwrap_or_default()).unwrap();
    let r: Result<String, PromptError> = driver(kind).and_then(|p| match action.as_str() {
        "secret" => p
            .secret("AWS secret access key")
            .map(|s| s.expose().to_string()),
        "text" => p.text("AWS access key ID"),
        "mfa" => p.mfa_code("dev", SERIAL).map(|c| c.expose().to_string()),
        "notify" => {
            let start = Instant::now();
            p.notify("Touch your YubiKey");
            Ok(format!("{}ms", start.elapsed().as_millis()))
        }
        other => panic!("unknown action {other}"),
    });
    let report = match r {
        Ok(v) => format!("ok {v}"),
        Err(PromptError::Cancelled) => "cancelled".to_string(),
        Err(e) => format!("err {e:?}"),
    };
    std::fs::write(out, report).unwrap();
}

/// The stand-in dialog. Per call it appends its name and argv (one per
/// line, then `--`) to `log`, takes the next line of `replies`
/// (`<exit code> <out|err> <text>`) and prints the text on that stream.
/// As a notification it sleeps first, so a caller that waited would show.
const FAKE: &str = r#"#!/bin/sh
d=${0%/*}
for a in "$@"; do
  case $a in --notification|--passivepopup)
    sleep 2
    { printf '%s\n' "${0##*/}"; printf '%s\n' "$@"; printf -- '--\n'; } >> "$d/log"
    echo FAKE-NOTIFY-STDOUT
    exit 0;;
  esac
done
{ printf '%s\n' "${0##*/}"; printf '%s\n' "$@"; printf -- '--\n'; } >> "$d/log"
n=0; [ -f "$d/count" ] && read -r n < "$d/count"
n=$((n + 1)); printf '%s\n' "$n" > "$d/count"
i=0; line=
while IFS= read -r l; do
  i=$((i + 1)); if [ "$i" -eq "$n" ]; then line=$l; break; fi
done < "$d/replies"
code=${line%% *}; rest=${line#* }; stream=${rest%% *}; text=${rest#* }
if [ "$stream" = err ]; then printf '%s\n' "$text" >&2; else printf '%s\n' "$text"; fi
exit "$code"
"#;

struct Rig {
    dir: tempfile::TempDir,
}

impl Rig {
    /// A folder holding the stand-ins `programs` and their `replies`.
    fn new(programs: &[&str], replies: &[&str]) -> Rig {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for p in programs {
            let path = dir.path().join(p);
            std::fs::write(&path, FAKE).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut r = replies.join("\n");
        r.push('\n');
        std::fs::write(dir.path().join("replies"), r).unwrap();
        // The stand-ins append to it: an empty log is "no call", never "no log".
        std::fs::write(dir.path().join("log"), "").unwrap();
        Rig { dir }
    }

    fn bin(&self) -> &Path {
        self.dir.path()
    }

    /// Runs the child with no terminal; returns (outcome, child's stdout).
    fn run(&self, action: &str, kind: &str, path: &str, display: Option<&str>) -> (String, String) {
        let out = self.dir.path().join("result");
        let stdout = self.dir.path().join("stdout");
        // Found on our PATH: Command would look for it on the child's.
        let setsid = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|d| d.join("setsid"))
            .find(|p| p.is_file())
            .expect("util-linux `setsid` is needed");
        let mut cmd = Command::new(setsid);
        cmd.arg("-w")
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_entry",
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, action)
            .env(OUT, &out)
            .env("VAULT_PROMPT", kind)
            .env("PATH", path)
            // The system's pinentry (gnome-keyring brings pinentry-gnome3)
            // would come before the dialogs these tests script; pinentry
            // has its own tests (prompt_tty.rs).
            .env("VAULT_PINENTRY", "/nonexistent/pinentry")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(Stdio::inherit());
        if let Some(d) = display {
            cmd.env("DISPLAY", d);
        }
        let mut child = cmd.spawn().unwrap();
        let end = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > end {
                let _ = child.kill();
                panic!("child did not finish in {DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "child failed: {status}");
        (
            std::fs::read_to_string(out).unwrap(),
            std::fs::read_to_string(stdout).unwrap(),
        )
    }

    /// With the stand-ins first on PATH, the rest of the system after them.
    fn path_first(&self) -> String {
        format!("{}:/usr/bin:/bin", self.bin().display())
    }

    /// Every call the stand-ins received: program name, then argv.
    fn calls(&self) -> Vec<Vec<String>> {
        let log = std::fs::read_to_string(self.dir.path().join("log"))
            .expect("the stand-ins' call log (created by Rig::new)");
        log.split_terminator("--\n")
            .map(|c| c.lines().map(str::to_string).collect())
            .collect()
    }
}

#[test]
fn zenity_secret_is_hidden_parsed_and_never_in_argv() {
    let rig = Rig::new(&["zenity"], &[&format!("0 out {SECRET}")]);
    let (result, _) = rig.run("secret", "zenity", &rig.path_first(), Some(":99"));
    assert_eq!(result, format!("ok {SECRET}"));
    let calls = rig.calls();
    assert_eq!(
        calls,
        [[
            "zenity",
            "--entry",
            "--hide-text",
            "--title=vault",
            "--text=AWS secret access key"
        ]]
    );
    assert!(!calls.concat().iter().any(|a| a.contains(SECRET)));
}

#[test]
fn zenity_cancel_is_cancelled() {
    // GTK chatter on stderr is usual and must not turn a cancel into an error.
    let rig = Rig::new(
        &["zenity"],
        &["1 err Gtk-Message: GtkDialog mapped without a transient parent."],
    );
    let (result, _) = rig.run("secret", "zenity", &rig.path_first(), Some(":99"));
    assert_eq!(result, "cancelled");
}

#[test]
fn zenity_without_a_display_is_an_error_that_says_so() {
    let rig = Rig::new(
        &["zenity"],
        &["1 err (zenity:1): Gtk-WARNING **: cannot open display: :99"],
    );
    let (result, _) = rig.run("text", "zenity", &rig.path_first(), Some(":99"));
    assert!(result.starts_with("err Io("), "{result}");
    assert!(
        result.contains("cannot open display") && result.contains("DISPLAY"),
        "{result}"
    );
}

#[test]
fn zenity_mfa_code_is_asked_again_after_a_bad_one() {
    let rig = Rig::new(&["zenity"], &["0 out 12ab", "0 out 123 456"]);
    let (result, _) = rig.run("mfa", "zenity", &rig.path_first(), Some(":99"));
    assert_eq!(result, "ok 123456");
    let calls = rig.calls();
    assert_eq!(calls.len(), 2);
    let ask = format!("--text=Enter MFA code for {SERIAL} (profile dev)");
    assert_eq!(
        calls[0],
        ["zenity", "--entry", "--title=vault", ask.as_str()]
    );
    let again = format!(
        "--text=That was not a 6 to 8 digit code. Enter MFA code for {SERIAL} (profile dev)"
    );
    assert_eq!(calls[1].last(), Some(&again));
}

#[test]
fn kdialog_secret_uses_password_and_cancel_is_cancelled() {
    let rig = Rig::new(&["kdialog"], &[&format!("0 out {SECRET}"), "1 out "]);
    let (result, _) = rig.run("secret", "kdialog", &rig.path_first(), Some(":99"));
    assert_eq!(result, format!("ok {SECRET}"));
    let (result, _) = rig.run("text", "kdialog", &rig.path_first(), Some(":99"));
    assert_eq!(result, "cancelled");
    assert_eq!(
        rig.calls(),
        [
            [
                "kdialog",
                "--title",
                "vault",
                "--password",
                "AWS secret access key"
            ],
            [
                "kdialog",
                "--title",
                "vault",
                "--inputbox",
                "AWS access key ID"
            ],
        ]
    );
}

#[test]
fn auto_without_a_terminal_falls_back_to_zenity_then_kdialog() {
    let rig = Rig::new(&["zenity", "kdialog"], &["0 out 654321"]);
    let (result, _) = rig.run("mfa", "auto", &rig.path_first(), Some(":99"));
    assert_eq!(result, "ok 654321");
    assert_eq!(rig.calls()[0][0], "zenity");

    let rig = Rig::new(&["kdialog"], &["0 out 654321"]);
    let (result, _) = rig.run("mfa", "auto", &rig.bin().display().to_string(), Some(":99"));
    assert_eq!(result, "ok 654321");
    assert_eq!(rig.calls()[0][0], "kdialog");
}

#[test]
fn auto_with_nothing_usable_says_what_to_do() {
    let rig = Rig::new(&[], &[]);
    let (result, _) = rig.run("mfa", "auto", &rig.bin().display().to_string(), Some(":99"));
    assert!(result.starts_with("err Unavailable("), "{result}");
    for hint in [
        "/dev/tty",
        "--mfa-token",
        "mfa_process",
        "apt install pinentry-gnome3 zenity",
    ] {
        assert!(result.contains(hint), "{hint:?} missing from {result}");
    }
}

#[test]
fn auto_without_a_display_does_not_try_dialogs() {
    let rig = Rig::new(&["zenity"], &["0 out 654321"]);
    let (result, _) = rig.run("mfa", "auto", &rig.path_first(), None);
    assert!(result.starts_with("err Unavailable("), "{result}");
    for hint in [
        "no display",
        "--mfa-token",
        "mfa_process",
        "from a terminal",
    ] {
        assert!(result.contains(hint), "{hint:?} missing from {result}");
    }
    assert!(rig.calls().is_empty());
}

#[test]
fn explicit_zenity_not_on_path_is_unavailable_with_the_fix() {
    let rig = Rig::new(&[], &[]);
    let (result, _) = rig.run(
        "secret",
        "zenity",
        &rig.bin().display().to_string(),
        Some(":99"),
    );
    assert!(result.starts_with("err Unavailable("), "{result}");
    assert!(result.contains("apt install zenity"), "{result}");
}

#[test]
fn explicit_terminal_without_one_is_unavailable() {
    let rig = Rig::new(&[], &[]);
    let (result, _) = rig.run("secret", "terminal", &rig.bin().display().to_string(), None);
    assert!(result.starts_with("err Unavailable("), "{result}");
    assert!(
        result.contains("--prompt pinentry, zenity, kdialog or osascript"),
        "{result}"
    );
}

#[test]
fn notify_does_not_wait_and_keeps_stdout_clean() {
    let rig = Rig::new(&["zenity"], &[]);
    let (result, _) = rig.run("notify", "zenity", &rig.path_first(), Some(":99"));
    let ms: u64 = result
        .strip_prefix("ok ")
        .and_then(|r| r.strip_suffix("ms"))
        .unwrap()
        .parse()
        .unwrap();
    // The stand-in sleeps 2 s before it logs.
    assert!(ms < 1500, "notify waited {ms} ms for the popup");
    let end = Instant::now() + DEADLINE;
    while rig.calls().is_empty() {
        assert!(Instant::now() < end, "the notification never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        rig.calls(),
        [["zenity", "--notification", "--text=Touch your YubiKey"]]
    );
    // The popup prints right after logging; had it inherited the child's
    // stdout, that would be in the file by now.
    std::thread::sleep(Duration::from_millis(300));
    let stdout = std::fs::read_to_string(rig.dir.path().join("stdout")).unwrap();
    assert!(stdout.contains("child_entry"), "{stdout:?}");
    assert!(!stdout.contains("FAKE-NOTIFY-STDOUT"), "{stdout:?}");
}
