//! `vault exec PROFILE --ecs-server -- CMD`: the command gets a loopback
//! credential endpoint instead of credentials. The real AWS CLI uses it
//! across a session renewal; raw requests from this test check the token,
//! the statuses and that garbage does not bring the server down; the strict
//! STS's recording counts the STS sessions made and shows which session
//! signed each of the CLI's calls (accepted, so signed with the right
//! secret).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{session_token_requests, sts_requests_until_now, IamUser, Running, TestEnv};

/// Profile `p` (eu-west-1) with the real key of IAM user `alice-TAG` stored.
fn plain(name: &str) -> (TestEnv, IamUser) {
    let t = TestEnv::new(name);
    t.write_config("[profile p]\nregion = eu-west-1\n");
    let user = t.user("alice");
    t.add("p", &user.key);
    (t, user)
}

/// What the command was told: the endpoint's address and its token.
struct Endpoint {
    addr: String,
    token: String,
}

/// Writes the endpoint into `info` (atomically), for the test to read.
const SHOW_ENDPOINT: &str = "echo \"$AWS_CONTAINER_CREDENTIALS_FULL_URI $AWS_CONTAINER_AUTHORIZATION_TOKEN\" > info.tmp && mv info.tmp info";
/// Waits until the test creates `end`.
const WAIT_END: &str = "while [ ! -e end ]; do sleep 0.1; done";

fn wait_for(p: &Path) {
    let start = Instant::now();
    while !p.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} never appeared",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `vault exec p --ecs-server EXTRA… -- sh -c SCRIPT` and waits for
/// the endpoint it shows.
fn start(t: &TestEnv, extra: &[&str], script: &str) -> (Running, Endpoint) {
    start_with(t, extra, script, &[])
}

fn start_with(
    t: &TestEnv,
    extra: &[&str],
    script: &str,
    env: &[(&str, &str)],
) -> (Running, Endpoint) {
    let mut args = vec!["exec", "p", "--ecs-server"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    let mut cmd = t.vault(&args);
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    let running = cmd.spawn();
    let info = t.dir.join("info");
    wait_for(&info);
    let text = std::fs::read_to_string(&info).unwrap();
    let (uri, token) = text.trim_end().split_once(' ').unwrap();
    let addr = uri
        .strip_prefix("http://")
        .and_then(|r| r.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected endpoint {uri}"));
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert!(token.len() >= 32, "a short token: {token}");
    (
        running,
        Endpoint {
            addr: addr.to_string(),
            token: token.to_string(),
        },
    )
}

/// Sends `raw` and returns the status code and body (0 when the server
/// closed without an answer).
fn raw(ep: &Endpoint, raw: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(&ep.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(raw);
    // All sent: the server sees the end of what it reads.
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn get(ep: &Endpoint, path: &str, authorization: Option<&str>) -> (u16, String) {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    raw(
        ep,
        format!("GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}\r\n", ep.addr).as_bytes(),
    )
}

/// The served credentials (asserting the ECS object's shape).
fn fetch(ep: &Endpoint) -> serde_json::Value {
    let (code, body) = get(ep, "/", Some(&ep.token));
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["AccessKeyId", "Expiration", "SecretAccessKey", "Token"]
    );
    v
}

fn touch(t: &TestEnv, name: &str) {
    std::fs::write(t.dir.join(name), "").unwrap();
}

/// GetCallerIdentity requests signed with `key_id`, as the STS answered them.
fn caller_identity_requests(key_id: &str) -> Vec<support::StsRequest> {
    sts_requests_until_now()
        .into_iter()
        .filter(|r| r.action() == "GetCallerIdentity" && r.key_id == key_id)
        .collect()
}

#[test]
fn ecs_server_keeps_the_aws_cli_working_across_a_renewal() {
    let (t, user) = plain("ecs_renewal");
    let key = &user.key;
    // Sessions of 15 min (the STS minimum), renewed once less than
    // 14m40s remain: after 20 s.
    let script = format!(
        "set -e\n{SHOW_ENDPOINT}\nenv > child-env\n\
         aws sts get-caller-identity > out1\ntouch s1\n\
         while [ ! -e go ]; do sleep 0.1; done\n\
         aws sts get-caller-identity > out2\naws sts get-caller-identity > out3\ntouch s2\n\
         {WAIT_END}\n"
    );
    let started = Instant::now();
    let (running, ep) = start_with(
        &t,
        &["--duration", "15m"],
        &script,
        &[("VAULT_MIN_REMAINING", "14m40s")],
    );
    wait_for(&t.dir.join("s1"));
    let first = fetch(&ep);
    let reqs = session_token_requests(&key.id);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].status, 200, "{:?}", reqs[0]);
    assert_eq!(reqs[0].param("DurationSeconds"), Some("900"));

    // Past the point of renewal (20 s after the session was made).
    std::thread::sleep(Duration::from_secs(21).saturating_sub(started.elapsed()));
    touch(&t, "go");
    wait_for(&t.dir.join("s2"));
    // The CLI's request past that point made the new session.
    let reqs = session_token_requests(&key.id);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].status, 200, "{:?}", reqs[1]);
    let second = fetch(&ep);
    touch(&t, "end");
    let run = running.wait().success();
    assert!(run.stderr.is_empty(), "{}", run.stderr);

    // One renewal, and only one, however many requests came after it.
    assert_eq!(session_token_requests(&key.id).len(), 2);
    // The strict STS makes fresh credentials for each session, and the
    // second one expires later.
    assert_ne!(first["AccessKeyId"], second["AccessKeyId"]);
    assert_ne!(first["SecretAccessKey"], second["SecretAccessKey"]);
    let expiry = |v: &serde_json::Value| {
        time::OffsetDateTime::parse(
            v["Expiration"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let renewed_after = (expiry(&second) - expiry(&first)).whole_seconds();
    assert!(renewed_after >= 20, "renewed after {renewed_after} s");
    // The AWS CLI worked with the first session, and then with the second:
    // its calls were accepted (signed with each session's secret) and
    // answered with the IAM user the sessions belong to.
    let by_first = caller_identity_requests(first["AccessKeyId"].as_str().unwrap());
    let by_second = caller_identity_requests(second["AccessKeyId"].as_str().unwrap());
    assert_eq!(by_first.len(), 1, "{by_first:?}");
    assert_eq!(by_second.len(), 2, "{by_second:?}");
    assert!(
        by_first.iter().chain(&by_second).all(|r| r.status == 200),
        "{by_first:?} {by_second:?}"
    );
    for out in ["out1", "out2", "out3"] {
        let text = std::fs::read_to_string(t.dir.join(out)).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{out}: {e}: {text}"));
        assert_eq!(v["Arn"], user.arn.as_str(), "{out}: {text}");
    }

    // The command holds the endpoint, not credentials.
    let env = std::fs::read_to_string(t.dir.join("child-env")).unwrap();
    let var = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(str::to_string)
    };
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
    ] {
        assert_eq!(var(k), None, "{k} in the command's environment");
    }
    assert_eq!(
        var("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
        Some(ep.token.clone())
    );
    assert_eq!(var("AWS_VAULT").as_deref(), Some("p"));
    assert_eq!(var("AWS_REGION").as_deref(), Some("eu-west-1"));
}

#[test]
fn ecs_server_refuses_wrong_tokens_and_survives_garbage() {
    let (t, user) = plain("ecs_garbage");
    let key = &user.key;
    let (running, ep) = start(&t, &[], &format!("{SHOW_ENDPOINT}\n{WAIT_END}\n"));
    // Not lazy: the session was made before the command started.
    let reqs = session_token_requests(&key.id);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].status, 200, "{:?}", reqs[0]);

    let (code, body) = get(&ep, "/", None);
    assert_eq!(code, 401, "{body}");
    assert!(!body.contains("AccessKeyId"));
    for wrong in [
        "x".to_string(),
        format!("Bearer {}", ep.token),
        ep.token[..ep.token.len() - 1].to_string(),
        format!("{}0", ep.token),
    ] {
        let (code, body) = get(&ep, "/", Some(&wrong));
        assert_eq!(code, 403, "{wrong}: {body}");
        assert!(!body.contains("AccessKeyId"));
    }
    assert_eq!(get(&ep, "/role-arn/x", Some(&ep.token)).0, 404);
    let post = format!(
        "POST / HTTP/1.1\r\nAuthorization: {}\r\nContent-Length: 2\r\n\r\n{{}}",
        ep.token
    );
    assert_eq!(raw(&ep, post.as_bytes()).0, 405);

    // A client that sends half a request and waits does not hold up others.
    let mut slow = TcpStream::connect(&ep.addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nAuthoriz").unwrap();
    let garbage: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\r\n\r\n".to_vec(),
        b"\x00\xff\xfe garbage \x80\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nAuthorization: \xff\xfe\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /\r\n\r\n".to_vec(),
        format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "A".repeat(20_000)).into_bytes(),
        (0..=255u8).cycle().take(5000).collect(),
    ];
    for g in &garbage {
        let (code, _) = raw(&ep, g);
        assert!(
            code == 0 || code == 400 || code == 431,
            "{code} for {:?}",
            String::from_utf8_lossy(&g[..g.len().min(40)])
        );
    }
    // Connections opened and dropped at once.
    for _ in 0..100 {
        drop(TcpStream::connect(&ep.addr).unwrap());
    }
    // More silent connections than are served at once: later ones wait
    // until the silent ones time out, and are served then.
    let silent: Vec<TcpStream> = (0..70)
        .map(|_| TcpStream::connect(&ep.addr).unwrap())
        .collect();
    let started = Instant::now();
    fetch(&ep);
    assert!(started.elapsed() < Duration::from_secs(15));
    drop(silent);

    // Still serving: the session from the cache, the one `exec --json` sees.
    let v = fetch(&ep);
    let (json, _) = t.exec_json("p", &[]);
    assert_eq!(v["AccessKeyId"], json.access_key_id.as_str());
    assert_eq!(v["SecretAccessKey"], json.secret_access_key.as_str());
    assert_eq!(v["Token"].as_str(), json.session_token.as_deref());
    assert_eq!(v["Expiration"].as_str(), json.expiration.as_deref());
    assert_eq!(session_token_requests(&key.id).len(), 1);

    // The half request is answered 408 once its time is up.
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");

    touch(&t, "end");
    let run = running.wait().success();
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn ecs_server_lazy_makes_no_session_until_asked() {
    let (t, user) = plain("ecs_lazy");
    let key = &user.key;
    let (running, ep) = start(&t, &["--lazy"], &format!("{SHOW_ENDPOINT}\n{WAIT_END}\n"));
    // Read from a recording proven written up to now.
    assert!(session_token_requests(&key.id).is_empty());
    let a = fetch(&ep);
    let reqs = session_token_requests(&key.id);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].status, 200, "{:?}", reqs[0]);
    let b = fetch(&ep);
    assert_eq!(a, b);
    assert_eq!(session_token_requests(&key.id).len(), 1);
    touch(&t, "end");
    running.wait().success();
}

#[test]
fn ecs_server_passes_on_the_exit_status_and_signals() {
    let (t, _) = plain("ecs_status");
    let run = t
        .vault(&[
            "exec",
            "p",
            "--ecs-server",
            "--",
            "sh",
            "-c",
            "echo out; exit 7",
        ])
        .run();
    assert_eq!((run.code, run.stdout.as_str()), (Some(7), "out\n"));
    let run = t
        .vault(&[
            "exec",
            "p",
            "--ecs-server",
            "--",
            "sh",
            "-c",
            "kill -KILL $$",
        ])
        .run();
    assert_eq!(run.code, Some(128 + 9));

    // SIGTERM to vault reaches the command, whose status is vault's.
    let script = format!(
        "trap 'echo got TERM > term; exit 3' TERM\n\
         echo $PPID > vault-pid\n{SHOW_ENDPOINT}\n\
         while :; do sleep 0.1; done\n"
    );
    let (running, _) = start(&t, &[], &script);
    let pid = std::fs::read_to_string(t.dir.join("vault-pid")).unwrap();
    // vault, started by this test (setsid and keyctl exec in place).
    let status = std::process::Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .unwrap();
    assert!(status.success());
    let run = running.wait();
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(t.dir.join("term")).unwrap(),
        "got TERM\n"
    );
}

#[test]
fn ecs_server_refuses_a_long_term_key() {
    let (t, user) = plain("ecs_no_session");
    t.vault(&["exec", "p", "--ecs-server", "--no-session", "--", "true"])
        .run()
        .fails_with(
            1,
            "vault: --ecs-server serves temporary credentials only, and --no-session on a profile that assumes no role gives the stored key itself\n\
             vault: hint: drop --no-session\n",
        );
    // Refused before any call: no request of any kind signed with the
    // key, read from a recording proven written up to now.
    let made: Vec<_> = sts_requests_until_now()
        .into_iter()
        .filter(|r| r.key_id == user.key.id)
        .collect();
    assert!(made.is_empty(), "{made:?}");
}

/// Opens COUNT connections to ADDR as the user it runs as, holds them for
/// HOLD seconds, and prints how each ended: closed by the server without a
/// byte ("closed"), answered ("answered"), or still open ("held").
const FLOOD: &str = r#"
import json, socket, sys, time
addr, count, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
host, port = addr.rsplit(":", 1)
socks = []
for _ in range(count):
    s = socket.create_connection((host, int(port)))
    socks.append(s)
time.sleep(hold)
ends = {"closed": 0, "answered": 0, "held": 0}
for s in socks:
    s.setblocking(False)
    try:
        ends["answered" if s.recv(1) else "closed"] += 1
    except BlockingIOError:
        ends["held"] += 1
print(json.dumps(ends))
"#;

#[test]
fn ecs_server_closes_other_users_connections_and_keeps_serving_its_own() {
    let (t, _user) = plain("ecs_other_users");
    let (running, ep) = start(&t, &[], &format!("{SHOW_ENDPOINT}\n{WAIT_END}\n"));
    // Another local user (nobody) opens ten times as many connections as
    // the server has slots (MAX_CONNECTIONS, 64) and holds them open, as a
    // denial of service would. Were they given slots, each would keep one
    // for the 1-s read deadline: the command's own request, queued behind
    // them, would wait about 10 s.
    let flood = t
        .cmd(
            "setpriv",
            &[
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "python3",
                "-c",
                FLOOD,
                &ep.addr,
                "640",
                "12",
            ],
        )
        .spawn();
    wait_for_sockets_of(65534, &ep.addr, 640);
    // The command's own SDK, meanwhile, gets its credentials: within 5 s,
    // half the wait the slots would have cost, which leaves a loaded CI
    // machine room while still telling the two apart (on an idle machine
    // the answer takes milliseconds).
    let mut s = TcpStream::connect(&ep.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\r\n",
            ep.addr, ep.token
        )
        .as_bytes(),
    )
    .unwrap();
    let mut answer = Vec::new();
    let read = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        read.is_ok() && answer.starts_with("HTTP/1.1 200 "),
        "{read:?}: {answer}"
    );
    // Every one of the other user's connections was closed unanswered: it
    // held no slot and learnt nothing.
    let out = flood.wait().success();
    let ends: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        ends,
        serde_json::json!({"closed": 640, "answered": 0, "held": 0}),
        "{}",
        out.stderr
    );
    touch(&t, "end");
    running.wait().success();
}

/// Waits until `uid` owns `count` TCP sockets connected to `addr` (the
/// kernel completes connections before the server accepts them).
fn wait_for_sockets_of(uid: u32, addr: &str, count: usize) {
    let (ip, port) = addr.split_once(':').unwrap();
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    let port: u16 = port.parse().unwrap();
    let remote = format!("{:08X}:{port:04X}", u32::from_ne_bytes(ip.octets()));
    let start = Instant::now();
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let n = table
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|f| f.len() > 7 && f[2] == remote && f[7] == uid.to_string())
            .count();
        if n >= count {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "uid {uid} has {n} of {count} connections to {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Issue 11.6: a session made while the command owns the terminal never
/// reads it. Here the first session (`--lazy`) needs an MFA code and there
/// is no display: the endpoint answers an error that says what to do, and
/// what is typed on the terminal reaches the command, not vault.
#[test]
fn ecs_server_renewals_never_read_the_commands_terminal() {
    let t = TestEnv::new("ecs_detached");
    let user = t.user("alice");
    t.write_config(&format!(
        "[profile p]\nregion = eu-west-1\nmfa_serial = {}\n",
        user.mfa_serial
    ));
    t.add("p", &user.key);
    let inner =
        format!("{SHOW_ENDPOINT}\nIFS= read -r line; echo \"got:$line\" > got\n{WAIT_END}\n");
    let vault = format!(
        "{} exec p --ecs-server --lazy -- sh -c {}",
        support::VAULT,
        shell_quote(&inner)
    );
    // `script` gives vault and its command a terminal; what this shell
    // writes into `script` is typed on it, once the test says so.
    let typist = format!(
        "(while [ ! -e typed ]; do sleep 0.1; done; printf 'hello\\n'; {WAIT_END}) | \
         script -q -e -c {} /dev/null > transcript 2>&1",
        shell_quote(&vault)
    );
    let running = t
        .cmd("sh", &["-c", &typist])
        .env("VAULT_PROMPT", "auto")
        .spawn();
    let info = t.dir.join("info");
    wait_for(&info);
    let text = std::fs::read_to_string(&info).unwrap();
    let (uri, token) = text.trim_end().split_once(' ').unwrap();
    let ep = Endpoint {
        addr: uri
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
        token: token.to_string(),
    };
    let (code, body) = get(&ep, "/", Some(&ep.token));
    assert_ne!(code, 200, "{body}");
    assert!(body.contains("the command owns the terminal"), "{body}");
    assert!(body.contains("mfa_process"), "{body}");
    touch(&t, "typed");
    wait_for(&t.dir.join("got"));
    assert_eq!(
        std::fs::read_to_string(t.dir.join("got")).unwrap().trim(),
        "got:hello"
    );
    touch(&t, "end");
    running.wait().success();
    let transcript = std::fs::read_to_string(t.dir.join("transcript")).unwrap();
    assert!(!transcript.contains("MFA code"), "{transcript}");
    assert!(session_token_requests(&user.key.id).is_empty());
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
