//! `vault login PROFILE`: the console sign-in URL, made through a federation
//! endpoint this test runs on 127.0.0.1 (`VAULT_FEDERATION_URL`), which
//! records what it is asked and answers a sign-in token. Role profiles sign
//! in with their AssumeRole session, user profiles with a GetFederationToken
//! session (checked in the strict STS's recording: accepted requests, so
//! signed with the stored key's real secret).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use support::{assume_role_requests, sts_requests_until_now, IamUser, StsRequest, TestEnv};

/// A stand-in federation endpoint: answers every GET with `status` and
/// `body`, and keeps the request targets it got.
struct Federation {
    url: String,
    token: String,
    targets: Arc<Mutex<Vec<String>>>,
}

impl Federation {
    fn start() -> Federation {
        let token = format!("signin-{}", support::random(b"abcdefghij0123456789", 24));
        Federation::answering(200, &format!("{{\"SigninToken\":\"{token}\"}}"), token)
    }

    fn answering(status: u16, body: &str, token: String) -> Federation {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/federation", listener.local_addr().unwrap());
        let targets = Arc::new(Mutex::new(Vec::new()));
        let (seen, body) = (targets.clone(), body.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                    .unwrap();
                let mut head = Vec::new();
                let mut b = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&b[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head
                    .lines()
                    .next()
                    .and_then(|l| l.strip_prefix("GET "))
                    .and_then(|l| l.strip_suffix(" HTTP/1.1"))
                    .unwrap_or("")
                    .to_string();
                seen.lock().unwrap().push(target);
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Federation {
            url,
            token,
            targets,
        }
    }

    fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// The path and the decoded query parameters of a URL or request target;
/// asserts every character is one a URL may carry unencoded.
fn split_url(url: &str) -> (String, BTreeMap<String, String>) {
    assert!(
        url.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~%&=?/:".contains(&b)),
        "not a well-formed URL: {url}"
    );
    let (path, query) = url.split_once('?').unwrap();
    let params = query
        .split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_string(), percent_decode(v))
        })
        .collect();
    (path.to_string(), params)
}

/// The one getSigninToken request the endpoint got: its parameters and the
/// session object.
fn signin_request(fed: &Federation) -> (BTreeMap<String, String>, serde_json::Value) {
    let targets = fed.targets();
    assert_eq!(targets.len(), 1, "{targets:?}");
    let (path, params) = split_url(&targets[0]);
    assert_eq!(path, "/federation");
    assert_eq!(params["Action"], "getSigninToken");
    let session: serde_json::Value = serde_json::from_str(&params["Session"]).unwrap();
    let mut keys: Vec<&str> = session
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["sessionId", "sessionKey", "sessionToken"]);
    (params, session)
}

/// Checks the printed sign-in URL and returns its Destination.
fn check_login_url(fed: &Federation, url: &str) -> String {
    let (path, params) = split_url(url);
    assert_eq!(path, fed.url);
    assert_eq!(
        params.keys().map(String::as_str).collect::<Vec<_>>(),
        ["Action", "Destination", "Issuer", "SigninToken"]
    );
    assert_eq!(params["Action"], "login");
    assert_eq!(params["Issuer"], "vault");
    assert_eq!(params["SigninToken"], fed.token);
    params["Destination"].clone()
}

/// Requests signed with `key_id` for `action`, from a recording proven
/// written up to now.
fn requests_by(key_id: &str, action: &str) -> Vec<StsRequest> {
    sts_requests_until_now()
        .into_iter()
        .filter(|r| r.key_id == key_id && r.action() == action)
        .collect()
}

/// Profile `base` (eu-west-1) with the stored key of IAM user `alice-TAG`,
/// and `admin`, a role (made in the rig's IAM) on it.
fn role_setup(name: &str) -> (TestEnv, IamUser, String) {
    let t = TestEnv::new(name);
    let role = t.role_arn("admin");
    t.write_config(&format!(
        "[profile base]\nregion = eu-west-1\n\n[profile admin]\nsource_profile = base\nrole_arn = {role}\n"
    ));
    let user = t.user("alice");
    t.add("base", &user.key);
    (t, user, role)
}

#[test]
fn login_with_a_role_profile_signs_in_with_its_role_session() {
    let (t, user, role) = role_setup("login_role");
    let key = &user.key;
    let fed = Federation::start();
    let run = t
        .vault(&["login", "admin", "--stdout"])
        .env("VAULT_FEDERATION_URL", &fed.url)
        .run()
        .success();
    assert_eq!(run.stderr, "");
    assert!(
        run.stdout.ends_with('\n') && run.stdout.matches('\n').count() == 1,
        "stdout must be the URL alone: {:?}",
        run.stdout
    );
    let destination = check_login_url(&fed, run.stdout.trim_end());
    assert_eq!(
        destination,
        "https://eu-west-1.console.aws.amazon.com/console/home?region=eu-west-1"
    );

    // The session sent is the role's, the one `exec` gets from the cache.
    let (params, session) = signin_request(&fed);
    assert_eq!(params.get("SessionDuration"), None);
    let assumed = assume_role_requests(&role);
    assert_eq!(assumed.len(), 1);
    // Assumed with the stored key (no MFA anywhere: no MFA session), and
    // accepted: signed with its real secret.
    assert_eq!(assumed[0].key_id, key.id);
    assert_eq!(assumed[0].status, 200, "{:?}", assumed[0]);
    let (json, _) = t.exec_json("admin", &[]);
    assert_eq!(session["sessionId"], json.access_key_id.as_str());
    assert_eq!(session["sessionKey"], json.secret_access_key.as_str());
    assert_eq!(
        session["sessionToken"].as_str(),
        json.session_token.as_deref()
    );
    assert_eq!(assume_role_requests(&role).len(), 1);
    assert!(requests_by(&key.id, "GetFederationToken").is_empty());
}

#[test]
fn login_with_an_sso_profile_signs_in_with_its_role_credentials() {
    let t = TestEnv::new("login_sso");
    t.write_config(
        "[sso-session corp]\nsso_start_url = https://rig.awsapps.com/start\nsso_region = us-east-1\n\n\
         [profile sso]\nsso_session = corp\nsso_account_id = 123456789012\n\
         sso_role_name = ReadOnlyAccess\nregion = eu-west-1\n",
    );
    support::sso_policy("approve", "manual");
    let fed = Federation::start();
    let run = t
        .vault(&["login", "sso", "--stdout", "--use-device-code"])
        .env("VAULT_FEDERATION_URL", &fed.url)
        .run();
    support::sso_policy("manual", "manual");
    let run = run.success();
    check_login_url(&fed, run.stdout.trim_end());
    // The console session is the SSO role's, the one `exec` gets from the cache.
    let (_, session) = signin_request(&fed);
    let (json, _) = t.exec_json("sso", &[]);
    assert_eq!(session["sessionId"], json.access_key_id.as_str());
    assert_eq!(
        session["sessionToken"].as_str(),
        json.session_token.as_deref()
    );
}

#[test]
fn login_path_region_and_duration_shape_the_url() {
    let (t, user, role) = role_setup("login_path");
    let fed = Federation::start();
    let run = t
        .vault(&[
            "login",
            "admin",
            "-s",
            "--path",
            "s3/buckets",
            "--region",
            "ap-southeast-2",
            "--duration",
            "2h",
        ])
        .env("VAULT_FEDERATION_URL", &fed.url)
        .run()
        .success();
    let destination = check_login_url(&fed, run.stdout.trim_end());
    assert_eq!(
        destination,
        "https://ap-southeast-2.console.aws.amazon.com/s3/buckets?region=ap-southeast-2"
    );
    let (params, _) = signin_request(&fed);
    // A role's console session may be asked for (up to 12 h).
    assert_eq!(params["SessionDuration"], "7200");
    let reqs = assume_role_requests(&role);
    assert_eq!(reqs.len(), 1);
    // Two hours from the long-term key: no role chaining, so STS takes it.
    assert_eq!(reqs[0].status, 200, "{:?}", reqs[0]);
    assert_eq!(reqs[0].key_id, user.key.id);
    assert_eq!(reqs[0].param("DurationSeconds"), Some("7200"));
    assert_eq!(reqs[0].region, "ap-southeast-2");
}

#[test]
fn login_with_a_user_profile_uses_a_federation_token() {
    let t = TestEnv::new("login_user");
    t.write_config("[profile p]\nregion = eu-west-1\n");
    let user = t.user("alice");
    let key = &user.key;
    t.add("p", key);
    let fed = Federation::start();
    let run = t
        .vault(&["login", "p", "--stdout", "--debug"])
        .env("VAULT_FEDERATION_URL", &fed.url)
        .run()
        .success();
    let url = run.stdout.trim_end();
    check_login_url(&fed, url);

    let feds = requests_by(&key.id, "GetFederationToken");
    assert_eq!(feds.len(), 1, "one GetFederationToken with the stored key");
    let f = &feds[0];
    assert_eq!(f.status, 200, "{f:?}");
    assert_eq!(f.region, "eu-west-1");
    assert_eq!(f.param("DurationSeconds"), Some("3600"));
    let name = f.param("Name").unwrap();
    let policy: serde_json::Value = serde_json::from_str(f.param("Policy").unwrap()).unwrap();
    assert_eq!(policy["Statement"][0]["Effect"], "Allow");
    assert_eq!(policy["Statement"][0]["Action"], "*");
    assert_eq!(policy["Statement"][0]["Resource"], "*");
    // Its name is the IAM user's, as aws-vault does it: GetCallerIdentity
    // with the stored key answered the user's ARN.
    let who = requests_by(&key.id, "GetCallerIdentity");
    assert_eq!(who.len(), 1);
    assert_eq!(who[0].status, 200, "{:?}", who[0]);
    assert_eq!(name, user.name);
    // No GetSessionToken: the federation endpoint takes no such session.
    assert!(requests_by(&key.id, "GetSessionToken").is_empty());

    let (params, session) = signin_request(&fed);
    assert_eq!(params.get("SessionDuration"), None);
    let id = session["sessionId"].as_str().unwrap();
    assert!(!id.is_empty() && id != key.id);
    assert_ne!(session["sessionKey"], key.secret.as_str());
    assert!(!session["sessionToken"].as_str().unwrap().is_empty());

    // --debug says what happened, never the token, the URL or a secret.
    assert!(run.stderr.contains("GetFederationToken"), "{}", run.stderr);
    for secret in [
        fed.token.as_str(),
        url,
        session["sessionKey"].as_str().unwrap(),
        session["sessionToken"].as_str().unwrap(),
        key.secret.as_str(),
    ] {
        assert!(!run.stderr.contains(secret), "stderr leaks {secret}");
    }
}

#[test]
fn login_opens_the_browser_or_prints_the_url_when_it_cannot() {
    let t = TestEnv::new("login_browser");
    t.write_config("[profile p]\n");
    t.add("p", &t.key("alice"));
    let bin = t.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let opened = t.dir.join("opened");
    let opener = bin.join("xdg-open");
    std::fs::write(
        &opener,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n",
            opened.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());

    let fed = Federation::start();
    let run = t
        .vault(&["login", "p"])
        .env("VAULT_FEDERATION_URL", &fed.url)
        .env("PATH", &path)
        .run()
        .success();
    assert_eq!(run.stdout, "", "the URL goes to the browser only");
    let got = std::fs::read_to_string(&opened).unwrap();
    // No region: the console's global home.
    assert_eq!(
        check_login_url(&fed, got.trim_end()),
        "https://console.aws.amazon.com/"
    );

    // An opener that fails: the URL is printed instead, with a word why.
    std::fs::write(&opener, "#!/bin/sh\nexit 3\n").unwrap();
    let run = t
        .vault(&["login", "p"])
        .env("VAULT_FEDERATION_URL", &fed.url)
        .env("PATH", &path)
        .run()
        .success();
    check_login_url(&fed, run.stdout.trim_end());
    assert!(
        run.stderr
            .starts_with("vault: cannot open a browser (xdg-open failed"),
        "{}",
        run.stderr
    );
}

#[test]
fn login_refuses_plain_http_beyond_this_machine_before_any_sts_call() {
    let t = TestEnv::new("login_http");
    t.write_config("[profile p]\n");
    let key = t.key("alice");
    t.add("p", &key);
    t.vault(&["login", "p", "--stdout"])
        .env("VAULT_FEDERATION_URL", "http://signin.example.com/federation")
        .run()
        .fails_with(
            1,
            "vault: VAULT_FEDERATION_URL=\"http://signin.example.com/federation\": the federation endpoint must be https (plain http only on 127.0.0.1)\n",
        );
    // No request of any kind signed with the key, read from a recording
    // proven written up to now.
    let made: Vec<StsRequest> = sts_requests_until_now()
        .into_iter()
        .filter(|r| r.key_id == key.id)
        .collect();
    assert!(made.is_empty(), "{made:?}");
}

#[test]
fn login_reports_a_federation_endpoint_that_gives_no_token() {
    let t = TestEnv::new("login_no_token");
    t.write_config("[profile p]\n");
    t.add("p", &t.key("alice"));
    let fed = Federation::answering(400, "{\"Error\":\"bad\"}", String::new());
    let run = t
        .vault(&["login", "p", "--stdout"])
        .env("VAULT_FEDERATION_URL", &fed.url)
        .run();
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        format!(
            "vault: cannot get a console sign-in token from {}: it answered HTTP 400\n",
            fed.url
        )
    );
    let fed = Federation::answering(200, "{}", String::new());
    let run = t
        .vault(&["login", "p", "--stdout"])
        .env("VAULT_FEDERATION_URL", &fed.url)
        .run();
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.ends_with("its answer has no SigninToken\n"),
        "{}",
        run.stderr
    );
}
