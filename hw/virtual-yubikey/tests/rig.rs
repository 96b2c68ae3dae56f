//! The rig itself: what it exports, that each stand-in answers, that rigs
//! are isolated from each other and from the network, and that nothing
//! outlives a rig, after a pass or a failure.

mod common;

use common::{rig_dir, run};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn var(name: &str) -> String {
    rig_dir();
    std::env::var(name).unwrap_or_else(|_| panic!("the rig does not export {name}"))
}

#[test]
fn rig_exports_what_hw_readme_documents() {
    let dir = rig_dir();
    for name in [
        "VAULT_RIG_READER",
        "AWS_ENDPOINT_URL",
        "VAULT_RIG_RECORDING",
        "VAULT_RIG_VYK_CONTROL",
        "VAULT_RIG_APDU_LOG",
        "VAULT_RIG_VYK_STATE",
        "VAULT_RIG_SERIAL",
        "VAULT_RIG_ATTESTATION_ROOT",
        "VAULT_RIG_ROOT_DIR",
        "VAULT_RIG_SLOTS",
        "VAULT_RIG_VPCD_BASE_PORT",
        "VAULT_RIG_ISOLATED",
    ] {
        assert!(!var(name).is_empty(), "{name} is empty");
    }
    let home = PathBuf::from(var("HOME"));
    assert!(home.starts_with(&dir), "HOME must be inside the rig");
    assert_eq!(
        std::fs::read_to_string(home.join(".aws/config")).unwrap(),
        "",
        "the AWS config starts empty"
    );
    assert!(var("AWS_ENDPOINT_URL").starts_with("http://127.0.0.1:"));
    for (k, _) in std::env::vars() {
        assert!(
            !matches!(
                k.as_str(),
                "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" | "AWS_SESSION_TOKEN" | "AWS_PROFILE"
            ),
            "{k} leaked into the rig from the caller"
        );
    }
    let pem = std::fs::read_to_string(var("VAULT_RIG_ATTESTATION_ROOT")).unwrap();
    assert!(
        pem.contains("BEGIN CERTIFICATE"),
        "attestation root is not a PEM certificate"
    );
}

#[test]
fn rig_key_is_a_yubikey_5_to_ykman() {
    let reader = var("VAULT_RIG_READER");
    let (ok, out, err) = run("ykman", &["--reader", &reader, "info"]);
    assert!(ok, "ykman info failed: {err}");
    assert!(out.contains("YubiKey 5"), "{out}");
    assert!(
        out.contains(&format!("Serial number: {}", var("VAULT_RIG_SERIAL"))),
        "{out}"
    );
    assert!(out.contains("Firmware version: 5.4.3"), "{out}");
    // The APDU log saw that conversation, without data bytes.
    let log = common::read_log(std::path::Path::new(&var("VAULT_RIG_APDU_LOG")));
    assert!(log.iter().any(|e| e["kind"] == "apdu" && e["ins"] == "1D"));
}

#[test]
fn sts_emulator_answers_and_records() {
    let endpoint = var("AWS_ENDPOINT_URL");
    let out = Command::new("aws")
        .args(["sts", "get-caller-identity", "--output", "json"])
        .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env(
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .stdin(Stdio::null())
        .output()
        .expect("aws CLI (pip awscli) on PATH");
    assert!(
        out.status.success(),
        "aws sts get-caller-identity: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(
        v["Arn"].as_str().unwrap_or("").starts_with("arn:aws:"),
        "{v}"
    );
    let rec = common::recorded_requests();
    assert!(
        rec.iter()
            .any(|body| body.contains("Action=GetCallerIdentity")),
        "the recorder did not see the call: {rec:?}"
    );
}

#[test]
fn secret_service_is_up_and_unlocked() {
    let (ok, out, err) = run(
        "dbus-send",
        &[
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.ReadAlias",
            "string:default",
        ],
    );
    assert!(ok, "no Secret Service on the session bus: {err}");
    let path = out
        .split('"')
        .nth(1)
        .filter(|p| p.starts_with("/org/freedesktop/secrets/collection/"))
        .unwrap_or_else(|| panic!("no default collection: {out}"))
        .to_string();
    let (ok, out, err) = run(
        "dbus-send",
        &[
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.secrets",
            &path,
            "org.freedesktop.DBus.Properties.Get",
            "string:org.freedesktop.Secret.Collection",
            "string:Locked",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("boolean false"),
        "default collection is locked: {out}"
    );
}

#[test]
fn kernel_keyring_session_is_private() {
    let (ok, id, err) = run("keyctl", &["add", "user", "vault-rig-test", "x", "@s"]);
    assert!(ok, "keyctl add: {err}");
    let (ok, val, _) = run("keyctl", &["pipe", id.trim()]);
    assert!(ok);
    assert_eq!(val, "x");
    let (_, _, _) = run("keyctl", &["unlink", id.trim(), "@s"]);
}

#[test]
fn network_is_loopback_only() {
    if var("VAULT_RIG_ISOLATED") != "1" {
        panic!("the rig is not isolated (no namespaces): this test needs root or user namespaces");
    }
    let (ok, out, _) = run("ip", &["-o", "link", "show"]);
    assert!(ok);
    let links: Vec<&str> = out.lines().collect();
    assert_eq!(links.len(), 1, "only a loopback link: {out}");
    assert!(links[0].contains(": lo:"), "{out}");
    let (_, routes, _) = run("ip", &["route", "show"]);
    assert!(
        routes.trim().is_empty(),
        "no route out of the rig: {routes}"
    );
}

/// Counts processes of the rig's daemons, as seen from here.
fn daemons() -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmdline);
        if [
            "pcscd",
            "virtual-yubikey\0run",
            "moto_server",
            "gnome-keyring-daemon",
        ]
        .iter()
        .any(|d| cmd.contains(d))
        {
            n += 1;
        }
    }
    n
}

fn nested_rig(script: &str) -> std::process::Output {
    Command::new(repo().join("hw/rig"))
        .args(["--", "bash", "-c", script])
        .env("VAULT_RIG_NO_BUILD", "1")
        .stdin(Stdio::null())
        .output()
        .expect("start a nested rig")
}

/// Two rigs at once, each with its own pcscd and key, and nothing of either
/// left running afterwards, whether the command passed or failed.
#[test]
fn rigs_run_side_by_side_and_leave_nothing_running() {
    if var("VAULT_RIG_ISOLATED") != "1" {
        panic!("the rig is not isolated (no namespaces): this test needs root or user namespaces");
    }
    let before = daemons();
    // Each nested rig reports the serial its ykman sees; with one shared
    // pcscd they would see each other's keys.
    let script =
        "sleep 1; ykman --reader \"$VAULT_RIG_READER\" info | sed -n 's/^Serial number: //p'; \
                  echo \"rig=$VAULT_RIG_SERIAL\"; ykman list --readers | grep -c 'Yubico' ; \
                  ls $(dirname \"$VAULT_RIG_DIR\") >/dev/null";
    let a = std::thread::spawn(move || nested_rig(script));
    let b = std::thread::spawn(move || nested_rig(script));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let mut serials = Vec::new();
    for out in [&a, &b] {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "nested rig failed: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            format!("rig={}", lines[0]),
            lines[1],
            "each rig sees its own key: {text}"
        );
        serials.push(lines[0].to_string());
    }
    assert_ne!(serials[0], serials[1]);

    // A failing command: its exit code comes through, and teardown still happens.
    let failed = nested_rig("exit 7");
    assert_eq!(failed.status.code(), Some(7));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    if let Some(kept) = stderr
        .lines()
        .find_map(|l| l.split("kept for inspection: ").nth(1))
    {
        let _ = std::fs::remove_dir_all(kept.trim());
    }

    assert_eq!(daemons(), before, "a nested rig left daemons running");
}
