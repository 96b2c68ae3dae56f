//! Many vault processes at once on a cold cache, as when a tool starts many
//! AWS SDK clients with `credential_process`: one of them calls STS and asks
//! for one MFA code, the others wait for its session and share it.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use support::{
    assume_role_requests, count_lines, session_token_requests, IamUser, JsonCreds, StsRequest,
    TestEnv, VAULT,
};

/// Asserts `reqs` is one request, accepted (signed with a stored key, that
/// proves the stored secret signed it).
fn one_accepted(reqs: &[StsRequest]) -> &StsRequest {
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(
        (reqs[0].status, reqs[0].error.as_deref()),
        (200, None),
        "{reqs:?}"
    );
    &reqs[0]
}

/// Asserts the one GetSessionToken signed with `user`'s key was accepted,
/// with `user`'s device and a code that is RFC 6238 of its seed.
fn one_accepted_mfa_session(user: &IamUser) {
    let gst = session_token_requests(&user.key.id);
    let gst = one_accepted(&gst);
    assert_eq!(gst.param("SerialNumber"), Some(user.mfa_serial.as_str()));
    let code = gst.param("TokenCode").unwrap();
    assert!(
        user.is_current_code(code),
        "{code} is not the device's code"
    );
}

const N: usize = 16;

#[test]
fn concurrent_execs_make_one_session_and_ask_for_one_code() {
    let t = TestEnv::new("concurrent_execs");
    let role_arn = t.role_arn("concurrent");
    let bob = t.user("bob");
    let serial = &bob.mfa_serial;
    let (mfa_process, counter) = t.counting_mfa_process_of(&bob);
    t.write_config(&format!(
        "[profile p]\n\n[profile r]\nsource_profile = p\nrole_arn = {role_arn}\n\
         mfa_serial = {serial}\nmfa_process = {mfa_process}\n"
    ));
    t.add("p", &bob.key);

    // All N wait for one file, then exec vault in the same session keyring.
    let go = t.dir.join("go");
    let gate = "until [ -e \"$1\" ]; do sleep 0.01; done; shift; exec \"$@\"";
    let go_arg = go.display().to_string();
    let running: Vec<_> = (0..N)
        .map(|_| {
            t.cmd(
                "sh",
                &["-c", gate, "sh", &go_arg, VAULT, "exec", "r", "--json"],
            )
            .spawn()
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::write(&go, "").unwrap();
    let runs: Vec<_> = running.into_iter().map(|r| r.wait().success()).collect();

    let first = JsonCreds::parse(&runs[0].stdout);
    assert!(first.access_key_id.starts_with("ASIA"));
    for r in &runs {
        assert_eq!(
            JsonCreds::parse(&r.stdout),
            first,
            "every process gets the same session"
        );
        assert!(r.stderr.is_empty(), "{}", r.stderr);
    }
    one_accepted_mfa_session(&bob);
    one_accepted(&assume_role_requests(&role_arn));
    assert_eq!(count_lines(&counter), 1, "mfa_process ran more than once");
}

#[test]
fn a_vault_killed_while_getting_a_code_does_not_block_the_next() {
    let t = TestEnv::new("concurrent_killed_holder");
    let hank = t.user("hank");
    let pid_file = t.dir.join("stuck.pid");
    // The first run hangs (as a code prompt nobody answers would); later
    // runs print the device's current code at once.
    let script = t.script(
        "mfa.sh",
        &format!(
            "#!/bin/sh\nif [ ! -e '{p}' ]; then echo $$ > '{p}'; exec sleep 120; fi\nexec {}\n",
            hank.mfa_process(),
            p = pid_file.display()
        ),
    );
    t.write_config(&format!(
        "[profile p]\nmfa_serial = {}\nmfa_process = {}\n",
        hank.mfa_serial,
        script.display()
    ));
    t.add("p", &hank.key);

    let stuck = t.vault(&["exec", "p", "--json"]).spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_to_string(&pid_file).map_or(true, |s| s.trim().is_empty()) {
        assert!(
            std::time::Instant::now() < deadline,
            "mfa_process never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    stuck.kill();

    // The hung mfa_process outlives vault; it must not hold vault's locks.
    let next = t
        .vault(&["exec", "p", "--json"])
        .deadline(std::time::Duration::from_secs(20))
        .run();
    // Our own grandchild, by the PID it wrote.
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    let next = next.success();
    JsonCreds::parse(&next.stdout);
    one_accepted_mfa_session(&hank);
}
