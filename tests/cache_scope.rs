//! Where cached sessions live, and who can reach them (issues 16 and 11).
//!
//! By default vault caches in the user keyring: every process of the user,
//! whatever session keyring it has (a terminal, an IDE, tmux, an ssh login:
//! here `keyctl session -`), shares one MFA session and one MFA code. And
//! another uid that shares the session keyring (`su` without `-l`) can
//! neither read a cached session nor plant one: keys are private to their
//! owner, keys owned by anyone else are ignored, and a keyring owned by
//! another uid is refused.
//!
//! These tests run vault in the user keyring of the rig's uid, shared by
//! every test of the rig: their cache ids are their own (the MFA device and
//! the roles carry the test's tag), and each clears only its own profiles.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use support::{assume_role_requests, count_lines, session_token_requests, TestEnv, VAULT};

/// A config with an MFA key profile (its mfa_process counting its runs)
/// and a role on it; the user's key stored.
fn world(name: &str) -> (TestEnv, support::IamUser, String, std::path::PathBuf) {
    let t = TestEnv::new(name);
    let user = t.user("alice");
    let (mfa_process, counter) = t.counting_mfa_process_of(&user);
    let role = t.role_arn("admin");
    t.write_config(&format!(
        "[profile base]\nmfa_serial = {}\nmfa_process = {mfa_process}\n\
         [profile role]\nsource_profile = base\nrole_arn = {role}\nmfa_serial = {}\n",
        user.mfa_serial, user.mfa_serial
    ));
    t.add("base", &user.key);
    (t, user, role, counter)
}

/// `vault ARGS` in a session keyring of its own (`keyctl session -`), with
/// the default cache scope.
fn in_own_session(t: &TestEnv, args: &[&str]) -> support::Cmd {
    let mut a = vec!["session", "-", VAULT];
    a.extend_from_slice(args);
    t.cmd("keyctl", &a).env("VAULT_CACHE_SCOPE", "user")
}

fn clear_own(t: &TestEnv) {
    for p in ["role", "base"] {
        in_own_session(t, &["clear", p]).run().success();
    }
}

#[test]
fn processes_in_different_session_keyrings_share_one_session_and_one_code() {
    let (t, user, role, counter) = world("scope_shared");
    // 2, 3 and 4 callers at once, each in a session keyring of its own,
    // then 4 more one after another.
    for n in [2, 3, 4] {
        let running: Vec<_> = (0..n)
            .map(|_| in_own_session(&t, &["exec", "role", "--json"]).spawn())
            .collect();
        for r in running {
            support::JsonCreds::parse(&r.wait().success().stdout);
        }
    }
    for _ in 0..4 {
        support::JsonCreds::parse(
            &in_own_session(&t, &["exec", "role", "--json"])
                .run()
                .success()
                .stdout,
        );
    }
    let gst = session_token_requests(&user.key.id);
    let ar = assume_role_requests(&role);
    assert_eq!(
        (gst.len(), ar.len()),
        (1, 1),
        "13 callers in 13 session keyrings: one MFA session and one role session"
    );
    assert!(gst.iter().chain(&ar).all(|r| r.status == 200));
    assert!(user.is_current_code(gst[0].param("TokenCode").unwrap()));
    assert_eq!(count_lines(&counter), 1, "one MFA code for all of them");

    // The fast path (the `vault` binary alone, no vault-core beside it)
    // serves the hit from yet another session keyring.
    let lone = t.dir.join("lone");
    std::fs::create_dir_all(&lone).unwrap();
    std::fs::copy(VAULT, lone.join("vault")).unwrap();
    let lone_vault = lone.join("vault");
    let hit = t
        .cmd(
            "keyctl",
            &[
                "session",
                "-",
                lone_vault.to_str().unwrap(),
                "exec",
                "role",
                "--json",
            ],
        )
        .env("VAULT_CACHE_SCOPE", "user")
        .run()
        .success();
    support::JsonCreds::parse(&hit.stdout);
    clear_own(&t);
}

#[test]
fn vault_clear_clears_the_session_for_every_login() {
    let (t, user, _role, _) = world("scope_clear");
    in_own_session(&t, &["exec", "base", "--json"])
        .run()
        .success();
    in_own_session(&t, &["clear", "base"]).run().success();
    // Another login finds nothing and makes a new session.
    in_own_session(&t, &["exec", "base", "--json"])
        .run()
        .success();
    assert_eq!(session_token_requests(&user.key.id).len(), 2);
    clear_own(&t);
}

/// `keyctl ARGS` as uid/gid 65534 (nobody), in the test's session keyring,
/// which it thereby shares with root's vault processes.
fn as_nobody(t: &TestEnv, args: &[&str]) -> support::Run {
    let mut a = vec!["--reuid=65534", "--regid=65534", "--clear-groups", "keyctl"];
    a.extend_from_slice(args);
    t.cmd("setpriv", &a).run()
}

/// (key id, description) of every key in the test's session keyring.
fn session_keys(t: &TestEnv) -> Vec<(String, String)> {
    let run = t
        .cmd(
            "sh",
            &[
                "-c",
                "for k in $(keyctl rlist @s); do echo \"$k $(keyctl rdescribe \"$k\")\"; done",
            ],
        )
        .run()
        .success();
    run.stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, d)| (id.to_string(), d.to_string()))
        .collect()
}

#[test]
fn another_uid_sharing_the_session_keyring_can_neither_read_nor_plant() {
    // The session scope is the exposed one: the other uid possesses the
    // very keyring the sessions are in.
    let t = TestEnv::new("scope_other_uid");
    let user = t.user("alice");
    t.write_config("[profile p]\nregion = eu-west-1\n");
    t.add("p", &user.key);
    let (first, _) = t.exec_json("p", &[]);

    let keys = session_keys(&t);
    let (id, desc) = keys
        .iter()
        .find(|(_, d)| d.contains("vault:session:"))
        .unwrap_or_else(|| panic!("no cached session in the test's keyring: {keys:?}"));
    // `user;UID;GID;PERM;DESCRIPTION`: root's, private to it.
    let fields: Vec<&str> = desc.splitn(5, ';').collect();
    assert_eq!((fields[1], fields[3]), ("0", "003f0000"), "{desc}");
    let description = fields[4].to_string();

    // It cannot read it, by id or by search.
    let read = as_nobody(&t, &["print", id]);
    assert_ne!(read.code, Some(0), "nobody read root's session: {read:?}");
    assert!(!read.stdout.contains(&first.secret_access_key));
    let found = as_nobody(&t, &["search", "@s", "user", &description]);
    assert_ne!(
        found.code,
        Some(0),
        "nobody found root's session: {found:?}"
    );

    // It plants an entry of its own under the same name, shaped exactly as
    // vault writes them, with credentials it controls.
    let planted = serde_json::json!({
        "v": 2,
        "id": description.trim_start_matches("vault:"),
        "kind": "GetSessionToken",
        "profile": "p",
        "mfa_serial": null,
        "access_key_id": "ASIAPLANTEDBYNOBODY0",
        "secret_access_key": "planted-secret",
        "session_token": "planted-token",
        "expiration": support::now_secs() + 6 * 3600,
    })
    .to_string();
    // Root's own key cannot be overwritten (the kernel updates a key of the
    // same name in place, which needs write permission on it)...
    let update = as_nobody(&t, &["add", "user", &description, &planted, "@s"]);
    assert_ne!(
        update.code,
        Some(0),
        "nobody overwrote root's session: {update:?}"
    );
    // ...but the shared keyring lets it unlink root's key and add its own.
    as_nobody(&t, &["unlink", id, "@s"]).success();
    let plant = as_nobody(&t, &["add", "user", &description, &planted, "@s"]);
    assert_eq!(
        plant.code,
        Some(0),
        "the keyring lets nobody add: {plant:?}"
    );

    // Root's next caller ignores it and gets a session from STS instead.
    let (next, _) = t.exec_json("p", &[]);
    assert_ne!(next.access_key_id, "ASIAPLANTEDBYNOBODY0");
    let gst = session_token_requests(&user.key.id);
    assert_eq!(
        gst.len(),
        2,
        "the planted entry must not stand in for a session"
    );
    assert!(gst.iter().all(|r| r.status == 200));
    // And root's own entry is back, private again.
    let keys = session_keys(&t);
    let mine: Vec<&(String, String)> = keys
        .iter()
        .filter(|(_, d)| d.ends_with(&description))
        .collect();
    assert_eq!(mine.len(), 1, "{keys:?}");
    assert!(mine[0].1.starts_with("user;0;0;003f0000;"), "{keys:?}");
}

#[test]
fn in_the_user_keyring_another_uid_finds_nothing() {
    let (t, _user, _role, _) = world("scope_user_private");
    let (creds, _) = {
        let run = in_own_session(&t, &["exec", "base", "--json"])
            .run()
            .success();
        (support::JsonCreds::parse(&run.stdout), run)
    };
    // Root's user keyring, as root sees it: the session is there, private.
    let listing = t
        .cmd(
            "sh",
            &[
                "-c",
                "for k in $(keyctl rlist @u); do echo \"$k $(keyctl rdescribe \"$k\")\"; done",
            ],
        )
        .run()
        .success();
    let ids: Vec<&str> = listing
        .stdout
        .lines()
        .filter(|l| l.contains(";vault:session:"))
        .map(|l| {
            assert!(l.contains(" user;0;0;003f0000;"), "{l}");
            l.split(' ').next().unwrap()
        })
        .collect();
    assert!(
        !ids.is_empty(),
        "no session in root's user keyring:\n{}",
        listing.stdout
    );
    for id in ids {
        let read = as_nobody(&t, &["print", id]);
        assert_ne!(
            read.code,
            Some(0),
            "nobody read root's session {id}: {read:?}"
        );
        assert!(!read.stdout.contains(&creds.secret_access_key));
    }
    clear_own(&t);
}

#[test]
fn a_session_keyring_owned_by_another_uid_is_refused() {
    let t = TestEnv::new("scope_foreign_ring");
    let user = t.user("alice");
    t.write_config("[profile p]\nregion = eu-west-1\n");
    t.add("p", &user.key);
    // A session keyring that belongs to nobody (as after `su` without -l:
    // the caller's keyring is another user's), open to everyone.
    let ring = format!("vault-foreign-{}", t.tag);
    let made = t
        .cmd(
            "sh",
            &[
                "-c",
                &format!(
                    "id=$(keyctl newring {ring} @s) && keyctl setperm $id 0x3f3f3f3f && keyctl chown $id 65534 && echo $id"
                ),
            ],
        )
        .run()
        .success();
    let ring_id = made.stdout.trim().to_string();
    let run = t
        .cmd(
            "keyctl",
            &["session", &ring, VAULT, "exec", "p", "--json", "--debug"],
        )
        .run()
        .success();
    support::JsonCreds::parse(&run.stdout);
    assert!(
        run.stderr.contains("refusing the session keyring"),
        "{}",
        run.stderr
    );
    let inside = t.cmd("keyctl", &["rlist", &ring_id]).run();
    assert_eq!(
        inside.stdout.trim(),
        "",
        "vault put something in another user's keyring: {inside:?}"
    );
}
