//! What the user sees when something is wrong: the exact stderr and exit
//! status of the real binary (1 for vault's own errors, 2 for command-line
//! syntax that clap rejects), nothing on stdout, and never a panic
//! (`support::Running::wait` fails any run whose stderr says "panicked").
//! These need the rig: a stored key, a token, STS or a terminal. Mistakes
//! caught before any of them are in cli_config_errors.rs (no rig), the
//! `--help` texts and command-line errors in tests/cmd/ (trycmd).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use support::{session_token_requests, sts_requests_until_now, Key, StsRequest, TestEnv};

/// Every request signed with `key_id` so far, whatever its action, read
/// from the recording proven written up to now (a marker request): an
/// empty answer means vault sent nothing with that key.
fn requests_signed_with(key_id: &str) -> Vec<StsRequest> {
    sts_requests_until_now()
        .into_iter()
        .filter(|r| r.key_id == key_id)
        .collect()
}

#[test]
fn bad_duration_is_a_usage_error() {
    let t = TestEnv::new("err_duration");
    t.write_config("[profile p]\n");
    let key = t.key("dora");
    t.add("p", &key);
    t.vault(&["exec", "p", "--duration", "1x", "--json"])
        .run()
        .fails_with(
            2,
            "error: invalid value '1x' for '--duration <DURATION>': invalid duration \"1x\": \
         unknown unit 'x' (use h, m, s)\n\nFor more information, try '--help'.\n",
        );
    t.vault(&["exec", "p", "--duration", "1h3", "--json"])
        .run()
        .fails_with(
            2,
            "error: invalid value '1h3' for '--duration <DURATION>': invalid duration \"1h3\": \
         a number needs a unit (h, m, s)\n\nFor more information, try '--help'.\n",
        );
    // Well-formed but outside what STS accepts: refused before any STS call.
    t.vault(&["exec", "p", "--duration", "5m", "--json"])
        .run()
        .fails_with(
            1,
            "vault: --duration 300s is out of range\n\
             vault: hint: STS sessions last from 15m (900s) to 36h (129600s)\n",
        );
    assert!(requests_signed_with(&key.id).is_empty());
}

#[test]
fn bad_mfa_token_is_refused_cached_or_not() {
    let t = TestEnv::new("err_mfa_token");
    let frank = t.user("frank");
    t.write_config(&format!("[profile p]\nmfa_serial = {}\n", frank.mfa_serial));
    t.add("p", &frank.key);
    let expected = "vault: an MFA code is the 6 to 8 digits your MFA device shows now\n";
    for bad in ["12345", "12a456", "123456789"] {
        t.vault(&["exec", "p", "--json", "--mfa-token", bad])
            .run()
            .fails_with(1, expected);
    }
    assert!(requests_signed_with(&frank.key.id).is_empty());
    // With a session cached (made with the device's real code, spaced as
    // an authenticator app shows it), a bad code is still an error, not
    // ignored.
    let code = frank.code();
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    t.exec_json("p", &["--mfa-token", &spaced]);
    let gst = session_token_requests(&frank.key.id);
    assert_eq!(gst.len(), 1, "{gst:?}");
    assert_eq!((gst[0].status, gst[0].error.as_deref()), (200, None));
    assert_eq!(
        gst[0].param("SerialNumber"),
        Some(frank.mfa_serial.as_str())
    );
    let sent = gst[0].param("TokenCode").unwrap();
    assert_eq!(sent, code, "the code without its space");
    assert!(
        frank.is_current_code(sent),
        "{sent} is not the device's code"
    );
    t.vault(&["exec", "p", "--json", "--mfa-token", "12a456"])
        .run()
        .fails_with(1, expected);
    assert_eq!(requests_signed_with(&frank.key.id).len(), 1);
}

#[test]
fn mfa_without_any_way_to_get_a_code_says_what_to_do() {
    let t = TestEnv::new("err_no_prompt");
    let gina = t.user("gina");
    t.write_config(&format!("[profile p]\nmfa_serial = {}\n", gina.mfa_serial));
    let key = gina.key;
    t.add("p", &key);
    t.vault(&["exec", "p", "--json"]).run().fails_with(
        1,
        "vault: no way to ask you: there is no terminal (/dev/tty cannot be opened: No such \
         device or address (os error 6)) and no display to show a dialog on (DISPLAY and \
         WAYLAND_DISPLAY are unset). Run vault from a terminal, or for an MFA code, pass it with \
         --mfa-token or set mfa_process in the profile (e.g. mfa_process = ykman oath accounts \
         code -s <account>); installing pinentry or zenity helps only where there is a display\n\
         vault: hint: pass --mfa-token CODE, set mfa_process in the profile, or use --prompt zenity\n",
    );
    assert!(requests_signed_with(&key.id).is_empty());
}

#[test]
fn add_env_needs_both_variables() {
    let t = TestEnv::new("err_add_env");
    let key = Key::random();
    t.vault(&["add", "p", "--env"])
        .run()
        .fails_with(1, "vault: --env: AWS_ACCESS_KEY_ID is not set\n");
    t.vault(&["add", "p", "--env"])
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .run()
        .fails_with(1, "vault: --env: AWS_SECRET_ACCESS_KEY is not set\n");
    t.vault(&["add", "p", "--env"])
        .env("AWS_ACCESS_KEY_ID", "short")
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .run()
        .fails_with(
            1,
            "vault: that does not look like an access key ID\n\
             vault: hint: an access key ID is 16–128 letters and digits, like AKIAIOSFODNN7EXAMPLE\n",
        );
    assert_eq!(
        t.vault(&["list", "--credentials"]).run().success().stdout,
        ""
    );
}

#[test]
fn remove_without_force_and_without_a_terminal_deletes_nothing() {
    let t = TestEnv::new("err_remove_no_tty");
    t.write_config("[profile p]\n");
    let key = Key::random();
    t.add("p", &key);
    let run = t.vault(&["remove", "p"]).run();
    assert_eq!((run.code, run.stdout.as_str()), (Some(1), ""));
    assert!(
        run.stderr
            .starts_with("vault: cannot ask for confirmation: there is no terminal")
            && run
                .stderr
                .ends_with("\nvault: hint: `vault remove p --force` goes ahead without asking\n"),
        "{}",
        run.stderr
    );
    assert_eq!(
        t.vault(&["list", "--credentials"]).run().success().stdout,
        "p\n"
    );
}

#[test]
fn add_without_env_and_without_a_terminal_says_to_use_env() {
    let t = TestEnv::new("err_add_no_tty");
    let run = t.vault(&["add", "p"]).run();
    assert_eq!((run.code, run.stdout.as_str()), (Some(1), ""));
    assert!(
        run.stderr
            .starts_with("vault: cannot ask for the access key: there is no terminal")
            && run.stderr.ends_with(
                "\nvault: hint: put the key in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
                 and run `vault add p --env`\n"
            ),
        "{}",
        run.stderr
    );
    assert_eq!(
        t.vault(&["list", "--credentials"]).run().success().stdout,
        ""
    );
}

#[test]
fn enroll_refuses_a_seed_on_the_command_line_before_touching_anything() {
    let t = TestEnv::new("err_seed_in_argv");
    t.write_config("[profile p]\nregion = eu-west-1\n");
    let seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    t.vault(&["hw", "enroll", "--profile", "p", "--totp-secret", seed])
        .run()
        .fails_with(
            1,
            "vault: --totp-secret takes no seed on the command line, where every process and \
             your shell history can read it\n\
             vault: hint: pass it on stdin (`--totp-secret -`) or from a file \
             (`--totp-secret-file PATH`)\n",
        );
    let uri = format!("otpauth://totp/aws:p@123456789012?secret={seed}");
    t.vault(&["hw", "enroll", "--profile", "p", "--totp-uri", &uri])
        .run()
        .fails_with(
            1,
            "vault: --totp-uri takes no URI on the command line: it holds the seed, which every \
             process and your shell history could read\n\
             vault: hint: pass it on stdin: `--totp-uri -`\n",
        );
    // Nothing was written: no token record, the config as it was.
    assert!(!t.dir.join("config-home/vault/tokens.json").exists());
    assert_eq!(
        std::fs::read_to_string(&t.config).unwrap(),
        "[profile p]\nregion = eu-west-1\n"
    );
}

#[test]
fn plain_http_to_another_machine_is_refused_before_anything_is_sent() {
    let t = TestEnv::new("err_http_endpoint");
    t.write_config("[profile p]\nregion = eu-west-1\n");
    let key = t.key("alice");
    t.add("p", &key);
    // 192.0.2.0/24 is TEST-NET-1: nothing answers there, and nothing is sent.
    let run = t
        .vault(&["exec", "p", "--json"])
        .env("AWS_ENDPOINT_URL", "http://192.0.2.1:5000")
        .run();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains(
            "refusing the STS endpoint: http://192.0.2.1:5000 is plain http to another machine"
        ) && run.stderr.contains("plain http only to 127.0.0.1"),
        "{}",
        run.stderr
    );
    // https anywhere, and plain http to this machine (the rig's STS), work.
    t.vault(&["exec", "p", "--json"]).run().success();
    assert_eq!(session_token_requests(&key.id).len(), 1);
}

#[test]
fn output_into_a_pipe_whose_reader_left_ends_quietly() {
    // `vault list | head`, `vault hw status | grep -q x`: the reader goes
    // away before vault is done writing. 3000 profiles are more than a pipe
    // holds, so `list` meets the closed pipe whatever the timing.
    let t = TestEnv::new("err_closed_pipe");
    let config: String = (0..3000)
        .map(|i| format!("[profile p{i:04}]\nregion = eu-west-1\n"))
        .collect();
    t.write_config(&config);
    let key = t.key("alice");
    t.add("p0000", &key);
    for args in [
        &["list"][..],
        &["list", "--profiles"],
        &["hw", "status"],
        &["export", "p0000"],
    ] {
        let mut c = t.vault(args).cmd;
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = stderr
            .split_once('\n')
            .filter(|(first, _)| first.starts_with("Joined session keyring"))
            .map(|(_, rest)| rest.to_string())
            .unwrap_or_else(|| stderr.to_string());
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}
