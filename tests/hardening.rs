//! vault's processes hold unwrapped keys, PINs and STS secrets: they are
//! non-dumpable (no core dump, no ptrace or /proc memory access by other
//! processes of the user), while the programs vault runs get their own
//! dumpability back (issue 11).
//!
//! The kernel shows it in /proc: a non-dumpable process's /proc/PID files
//! belong to root whatever uid it runs as. So vault runs here as uid 65534
//! (nobody), waiting on a `credential_process` that records its own /proc
//! owner, and the test reads vault's.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};
use support::{TestEnv, VAULT};

#[test]
fn vault_is_not_dumpable_and_the_programs_it_runs_are() {
    let t = TestEnv::new("harden_dumpable");
    // Somewhere uid 65534 can read and write (the rig folder is root's, 0700).
    let dir = tempfile::Builder::new()
        .prefix("vault-harden-")
        .tempdir_in("/tmp")
        .unwrap();
    let chown = |p: &std::path::Path| {
        std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
    };
    chown(dir.path());
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    chown(&run);
    let child_owner = dir.path().join("child-owner");
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile ext]\ncredential_process = sh -c 'stat -c %u /proc/$$/status > {}; sleep 5'\n",
            child_owner.display()
        ),
    )
    .unwrap();
    let running = t
        .cmd(
            "setpriv",
            &[
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                VAULT,
                "exec",
                "ext",
                "--json",
            ],
        )
        .env("HOME", dir.path())
        .env("XDG_RUNTIME_DIR", &run)
        .env("XDG_CACHE_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("AWS_CONFIG_FILE", &config)
        .env("VAULT_CACHE_SCOPE", "user")
        .spawn();
    let pid = running.pid();
    // Wait until the credential_process runs (vault-core has replaced
    // `vault` in this PID by then).
    let start = Instant::now();
    while !child_owner.exists() || std::fs::read_to_string(&child_owner).unwrap().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the credential_process never ran"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().nth(2) == Some("65534"),
        "vault runs as nobody: {uid_line}"
    );
    let vault_owner = std::fs::metadata(format!("/proc/{pid}/status"))
        .unwrap()
        .uid();
    assert_eq!(
        vault_owner, 0,
        "/proc/{pid}/status of vault (uid 65534) should belong to root: vault is dumpable"
    );
    assert_eq!(
        std::fs::read_to_string(&child_owner).unwrap().trim(),
        "65534",
        "the program vault runs should be dumpable again"
    );
    running.kill();
}

#[test]
fn programs_vault_starts_never_get_its_secrets() {
    let t = TestEnv::new("harden_scrub");
    let user = t.user("alice");
    let mfa_env = t.dir.join("mfa-process.env");
    let cp_env = t.dir.join("credential-process.env");
    t.write_config(&format!(
        "[profile p]\nmfa_serial = {}\nmfa_process = env > {} && {}\n\
         [profile ext]\ncredential_process = sh -c 'env > {} && {} exec p --json'\n",
        user.mfa_serial,
        mfa_env.display(),
        user.mfa_process(),
        cp_env.display(),
        VAULT,
    ));
    t.add("p", &user.key);
    let secrets = [
        ("VAULT_PIN", "pin-246810"),
        ("VAULT_FILE_PASSPHRASE", "passphrase-that-is-vaults"),
        ("VAULT_FIDO2_PIN", "fido2-pin-1357"),
        ("VAULT_NEW_PIN", "new-pin-8642"),
        ("VAULT_NEW_PUK", "new-puk-97531"),
    ];
    let mut cmd = t.vault(&["exec", "ext", "--json"]);
    for (k, v) in secrets {
        cmd = cmd.env(k, v);
    }
    cmd.run().success();
    for file in [&mfa_env, &cp_env] {
        let env = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("{} was not written: {e}", file.display()));
        assert!(env.contains("HOME="), "{env}");
        for (k, v) in secrets {
            assert!(
                !env.contains(k) && !env.contains(v),
                "{k} reached {}:\n{env}",
                file.display()
            );
        }
    }
}

/// Ctrl-\ (SIGQUIT) on a vault waiting for its credentials leaves no core
/// file even when the user allowed unlimited cores; a program that is not
/// vault, under the same limits, in the same kind of folder, leaves one (so
/// the machine does write cores and the test can fail). The command `exec`
/// turns into gets the user's core limit back.
#[test]
fn sigquit_leaves_no_core_and_the_exec_command_gets_the_users_limit_back() {
    let t = TestEnv::new("harden_core");
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    assert!(
        !pattern.starts_with('|'),
        "core_pattern pipes cores to {pattern}: this test needs cores written as files"
    );
    let vault_dir = t.dir.join("vault-cwd");
    let control_dir = t.dir.join("control-cwd");
    std::fs::create_dir(&vault_dir).unwrap();
    std::fs::create_dir(&control_dir).unwrap();
    let started = t.dir.join("cp-started");
    t.write_config(&format!(
        "[profile ext]\ncredential_process = sh -c 'touch {}; sleep 30'\n",
        started.display()
    ));
    let mut vault = t.cmd(
        "prlimit",
        &["--core=unlimited", "--", VAULT, "exec", "ext", "--json"],
    );
    vault.cmd.current_dir(&vault_dir);
    let vault = vault.spawn();
    let start = Instant::now();
    while !started.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the credential_process never ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", vault.pid())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().nth(4),
        Some("0"),
        "vault's soft core limit should be 0: {core}"
    );

    let mut control = t.cmd(
        "prlimit",
        &[
            "--core=unlimited",
            "--",
            "perl",
            "-e",
            "$SIG{QUIT} = 'DEFAULT'; open(my $f, '>', 'started'); close $f; sleep 30",
        ],
    );
    control.cmd.current_dir(&control_dir);
    let control = control.spawn();
    while !control_dir.join("started").exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "perl never ran");
        std::thread::sleep(Duration::from_millis(20));
    }

    for pid in [vault.pid(), control.pid()] {
        assert!(std::process::Command::new("kill")
            .args(["-QUIT", &pid.to_string()])
            .status()
            .unwrap()
            .success());
    }
    let vault_run = vault.wait();
    let control_run = control.wait();
    let cores = |d: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("core"))
            .collect()
    };
    assert!(
        !cores(&control_dir).is_empty(),
        "perl under SIGQUIT left no core (core_pattern {pattern:?}, status {:?}): \
         this machine writes no cores, so the test proves nothing",
        control_run.code
    );
    assert_eq!(
        cores(&vault_dir),
        Vec::<String>::new(),
        "vault left a core after SIGQUIT (status {:?}, stderr {})",
        vault_run.code,
        vault_run.stderr
    );

    // The command exec turns into: the user's limit, not vault's 0.
    let script = t.dir.join("quick-creds");
    std::fs::write(
        &script,
        "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"AKIAQUICKQUICKQUICK1\", \
         \"SecretAccessKey\": \"quick-secret\"}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    t.write_config(&format!(
        "[profile quick]\ncredential_process = {}\n",
        script.display()
    ));
    let limit_file = t.dir.join("child-limit");
    t.cmd(
        "prlimit",
        &[
            "--core=unlimited",
            "--",
            VAULT,
            "exec",
            "quick",
            "--",
            "sh",
            "-c",
            &format!("ulimit -c > {}", limit_file.display()),
        ],
    )
    .run()
    .success();
    assert_eq!(
        std::fs::read_to_string(&limit_file).unwrap().trim(),
        "unlimited",
        "the command vault exec runs should have the user's core limit"
    );
}
