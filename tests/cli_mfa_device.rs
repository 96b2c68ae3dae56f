//! `vault hw enroll --profile P --create-mfa-device` through the rig: a
//! fresh virtual YubiKey of the test's own, the rig's strict STS and IAM
//! (moto's bookkeeping behind it), the real Secret Service.
//! `hw/rig -- cargo test -p vault --test cli_mfa_device`.
//!
//! The seed the test checks against is read from moto's own state
//! (`aws iam list-virtual-mfa-devices` shows it), and the codes are
//! computed here with RFC 6238, independently of vault and of the key. The
//! virtual key's state file (a test instrument) shows what the card holds,
//! its APDU log what was asked of it. The strict STS verifies every
//! signature with the secret it issued, so an accepted request (status 200)
//! signed with the user's key id proves vault used the right secret.
//!
//! Outside the rig every test fails with instructions, never passes.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use base64::Engine;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::aws_admin as aws;
use support::otp::{base32_decode, totp};
use support::token::{self, Secrets};
use support::vyk::TestKey;
use support::{rig_dir, sts_requests_until_now, Key, StsRequest, TestEnv, ACCOUNT};

const NEW_PIN: &str = "246810";
const NEW_PUK: &str = "13579246";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An IAM user with an access key of its own in moto, stored in vault as
/// profile `dev`.
fn iam_user(env: &TestEnv) -> (String, Key) {
    let user = format!("mfa-{}", env.tag);
    aws(env, &["iam", "create-user", "--user-name", &user]);
    let out = aws(env, &["iam", "create-access-key", "--user-name", &user]);
    let key = Key {
        id: out["AccessKey"]["AccessKeyId"]
            .as_str()
            .unwrap()
            .to_string(),
        secret: out["AccessKey"]["SecretAccessKey"]
            .as_str()
            .unwrap()
            .to_string(),
    };
    env.write_config("[profile dev]\nregion = eu-west-1\n");
    env.add("dev", &key);
    (user, key)
}

/// `vault hw enroll --serial N EXTRA…` with `NEW_PIN` and `NEW_PUK`
/// (`token::hw`), not yet run.
fn enroll(env: &TestEnv, key: &TestKey, extra: &[&str]) -> support::Cmd {
    let serial = key.serial.to_string();
    let s = Secrets {
        pin: NEW_PIN.into(),
        puk: NEW_PUK.into(),
    };
    token::hw(env, &s, &token::enroll_args(&serial, extra)).deadline(Duration::from_secs(120))
}

/// The device moto has under `serial`, as list-virtual-mfa-devices shows it.
fn moto_device(env: &TestEnv, serial: &str) -> Option<serde_json::Value> {
    let out = aws(env, &["iam", "list-virtual-mfa-devices"]);
    out["VirtualMFADevices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["SerialNumber"] == serial)
        .cloned()
}

/// The seed of a device as list-virtual-mfa-devices shows it: (base32, bytes).
fn device_seed(device: &serde_json::Value) -> (String, Vec<u8>) {
    let seed_b32 = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(device["Base32StringSeed"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let seed = base32_decode(&seed_b32);
    (seed_b32, seed)
}

/// Requests signed with `key_id`, from a recording proven written up to now.
fn requests_signed_by(key_id: &str) -> Vec<StsRequest> {
    sts_requests_until_now()
        .into_iter()
        .filter(|r| r.key_id == key_id)
        .collect()
}

/// The one request of `action` among `requests`, which must have been
/// accepted: the strict STS verified its signature with the key's secret.
fn accepted<'a>(requests: &'a [StsRequest], action: &str) -> &'a StsRequest {
    let found: Vec<&StsRequest> = requests.iter().filter(|r| r.action() == action).collect();
    assert_eq!(found.len(), 1, "{action}: {requests:?}");
    assert_eq!(found[0].status, 200, "{:?}", found[0]);
    found[0]
}

/// Sends the card one marker APDU (an instruction no applet has, with a
/// random P1 P2) and returns the APDU log's entries from index `from` up
/// to that marker. The marker's entry proves the log is being written up
/// to this moment, so an entry missing here never happened.
fn apdu_log_until_now(key: &TestKey, from: usize) -> Vec<serde_json::Value> {
    let marker: [u8; 2] = rand::random();
    let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcsc context");
    let reader = std::ffi::CString::new(key.reader.clone()).unwrap();
    let card = ctx
        .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .unwrap_or_else(|e| panic!("connect to key {}: {e}", key.serial));
    let mut buf = [0u8; 258];
    let answer = card
        .transmit(&[0x00, 0xFE, marker[0], marker[1]], &mut buf)
        .unwrap_or_else(|e| panic!("marker APDU to key {}: {e}", key.serial))
        .to_vec();
    assert!(answer.len() >= 2, "marker answered {answer:?}");
    if let Err((_, e)) = card.disconnect(pcsc::Disposition::LeaveCard) {
        panic!("disconnect from key {}: {e}", key.serial);
    }
    let log = key.apdu_log();
    let (p1, p2) = (format!("{:02X}", marker[0]), format!("{:02X}", marker[1]));
    let at = log
        .iter()
        .rposition(|e| {
            e["kind"] == "apdu"
                && e["ins"] == "FE"
                && e["p1"] == p1.as_str()
                && e["p2"] == p2.as_str()
        })
        .unwrap_or_else(|| {
            panic!(
                "the marker APDU is not in {}: the log is not being written",
                key.log_path().display()
            )
        });
    assert!(at >= from, "the marker before index {from}");
    log[from..at].to_vec()
}

/// Every file under `dir` whose bytes contain one of `needles`.
fn files_containing(dir: &Path, needles: &[String]) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return hits;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            hits.extend(files_containing(&p, needles));
        } else if ft.is_file() {
            let bytes = std::fs::read(&p).unwrap_or_default();
            for n in needles {
                if bytes.windows(n.len()).any(|w| w == n.as_bytes()) {
                    hits.push(format!("{} holds {n:.6}…", p.display()));
                }
            }
        }
    }
    hits
}

#[test]
fn creates_loads_and_enables_the_device_without_showing_the_seed() {
    rig_dir();
    let env = TestEnv::new("mfadev");
    let key = TestKey::start();
    let (user, iam_key) = iam_user(&env);
    let serial_arn = format!("arn:aws:iam::{ACCOUNT}:mfa/{user}");
    let cred_name = format!("aws:{user}@{ACCOUNT}");

    let before = now();
    let run = enroll(&env, &key, &["--profile", "dev", "--create-mfa-device"])
        .run()
        .success();
    let after = now();
    assert!(
        run.stderr
            .contains(&format!("Enabled {serial_arn} for IAM user \"{user}\"")),
        "{}",
        run.stderr
    );

    // moto: the device exists, is assigned to the user, and its seed is
    // the one the card holds.
    let device = moto_device(&env, &serial_arn).expect("the device in moto");
    assert_eq!(device["User"]["UserName"], user.as_str(), "{device}");
    let listed = aws(&env, &["iam", "list-mfa-devices", "--user-name", &user]);
    assert!(
        listed["MFADevices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["SerialNumber"] == serial_arn.as_str()),
        "{listed}"
    );
    let (seed_b32, seed) = device_seed(&device);
    assert_eq!(seed.len(), 40, "moto makes 64-character seeds");

    // The calls, signed with the user's own key and accepted: the strict
    // STS verified them with its secret, and EnableMFADevice's two codes
    // against the seed.
    let requests = requests_signed_by(&iam_key.id);
    accepted(&requests, "GetCallerIdentity");
    let create = accepted(&requests, "CreateVirtualMFADevice");
    assert_eq!(create.param("VirtualMFADeviceName"), Some(user.as_str()));
    let e = accepted(&requests, "EnableMFADevice");
    assert_eq!(e.param("UserName"), Some(user.as_str()));
    assert_eq!(e.param("SerialNumber"), Some(serial_arn.as_str()));
    let (c1, c2) = (
        e.param("AuthenticationCode1").unwrap(),
        e.param("AuthenticationCode2").unwrap(),
    );
    // Two consecutive steps of moto's seed, around the time of the run.
    let enable_step = (before / 30 - 1..=after / 30 + 1)
        .find(|&s| totp(&seed, s) == c1 && totp(&seed, s + 1) == c2)
        .unwrap_or_else(|| {
            panic!("{c1} {c2} are not RFC 6238 codes of consecutive steps of the seed")
        });
    assert!(
        requests
            .iter()
            .all(|r| r.action() != "DeleteVirtualMFADevice"),
        "nothing was undone"
    );

    // The card holds the seed as a touch-required credential.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(key.state_path()).unwrap()).unwrap();
    let creds = state["oath"]["credentials"].as_array().unwrap();
    let on_card = creds
        .iter()
        .find(|c| c["name"] == hex::encode(cred_name.as_bytes()))
        .unwrap_or_else(|| panic!("no {cred_name} on the card: {creds:?}"));
    assert_eq!(on_card["key"], hex::encode(&seed));
    assert_eq!(on_card["touch"], true);

    // The seed is nowhere: not in vault's output, not in any file of the
    // test (HOME, the XDG folders, the config, tokens.json).
    let needles = vec![
        seed_b32.clone(),
        seed_b32.to_ascii_lowercase(),
        hex::encode(&seed),
        hex::encode_upper(&seed),
        base64::engine::general_purpose::STANDARD.encode(&seed),
        base64::engine::general_purpose::STANDARD.encode(seed_b32.as_bytes()),
    ];
    for n in &needles {
        assert!(!run.stdout.contains(n.as_str()) && !run.stderr.contains(n.as_str()));
    }
    let hits = files_containing(&env.dir, &needles);
    assert!(hits.is_empty(), "the seed leaked: {hits:?}");

    // Recorded: tokens.json and the profile.
    let tokens: serde_json::Value =
        serde_json::from_slice(&std::fs::read(token::tokens_json_path(&env)).unwrap()).unwrap();
    let token = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["serial"] == key.serial)
        .unwrap();
    assert!(
        token["oath"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["mfa_serial"] == serial_arn.as_str()
                && o["name"] == cred_name.as_str()
                && o["touch"] == true),
        "{token}"
    );
    let config = std::fs::read_to_string(&env.config).unwrap();
    assert!(
        config.contains(&format!("mfa_serial = {serial_arn}")),
        "{config}"
    );

    // A later exec gets its MFA code from the token: one of a step after
    // the two that enabled the device (AWS takes each code once).
    let run = env
        .vault(&["exec", "dev", "--json"])
        .env("VAULT_PIN", NEW_PIN)
        .deadline(Duration::from_secs(150))
        .run()
        .success();
    let json = support::JsonCreds::parse(&run.stdout);
    assert!(json.session_token.is_some());
    let gst = support::session_token_requests(&iam_key.id);
    assert_eq!(gst.len(), 1, "{gst:?}");
    assert_eq!(gst[0].status, 200, "{:?}", gst[0]);
    assert_eq!(gst[0].param("SerialNumber"), Some(serial_arn.as_str()));
    let code = gst[0].param("TokenCode").unwrap();
    let now_step = now() / 30;
    assert!(
        (enable_step + 2..=now_step + 1).any(|s| totp(&seed, s) == code),
        "TokenCode {code} is not the seed's code of a step after {}",
        enable_step + 1
    );
}

#[test]
fn a_failure_after_creating_deletes_the_device_again() {
    rig_dir();
    let env = TestEnv::new("mfadev-undo");
    let key = TestKey::start();
    let (user, iam_key) = iam_user(&env);
    let serial_arn = format!("arn:aws:iam::{ACCOUNT}:mfa/{user}");
    // A password on the OATH applet: vault cannot PUT the seed.
    let out = std::process::Command::new("ykman")
        .args([
            "--reader",
            &key.reader,
            "oath",
            "access",
            "change",
            "-n",
            "pw",
        ])
        .output()
        .expect("ykman");
    assert!(out.status.success(), "{out:?}");

    let run = enroll(&env, &key, &["--profile", "dev", "--create-mfa-device"]).run();
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "the virtual MFA device {serial_arn} was deleted again"
        )),
        "{}",
        run.stderr
    );
    assert!(moto_device(&env, &serial_arn).is_none(), "deleted in moto");
    let requests = requests_signed_by(&iam_key.id);
    accepted(&requests, "CreateVirtualMFADevice");
    accepted(&requests, "DeleteVirtualMFADevice");
    assert!(
        requests.iter().all(|r| r.action() != "EnableMFADevice"),
        "{requests:?}"
    );
    let config = std::fs::read_to_string(&env.config).unwrap();
    assert!(!config.contains("mfa_serial"), "{config}");
}

#[test]
fn refuses_a_profile_that_has_an_mfa_device_before_touching_the_card() {
    rig_dir();
    let env = TestEnv::new("mfadev-has");
    let key = TestKey::start();
    let (_user, iam_key) = iam_user(&env);
    env.write_config(&format!(
        "[profile dev]\nregion = eu-west-1\nmfa_serial = {}\n",
        env.mfa_serial("old")
    ));
    // The key's log is being written: it holds the key's insertion.
    let checkable = key.apdu_log_checkable("no APDU and no touch before the refusal");
    let from = if checkable {
        let log = key.apdu_log();
        assert!(
            log.iter()
                .any(|e| e["kind"] == "event" && e["event"] == "inserted"),
            "no insertion in {}: {log:?}",
            key.log_path().display()
        );
        log.len()
    } else {
        0
    };

    let run = enroll(&env, &key, &["--profile", "dev", "--create-mfa-device"]).run();
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("profile \"dev\" already has an MFA device"),
        "{}",
        run.stderr
    );
    // The card was not changed: no factory PIN was replaced.
    assert!(
        !run.stderr.contains("Changed the factory PIN"),
        "{}",
        run.stderr
    );

    // And the flag needs --profile, and excludes --totp-secret.
    let run = enroll(&env, &key, &["--create-mfa-device"]).run();
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let run = enroll(
        &env,
        &key,
        &[
            "--profile",
            "dev",
            "--create-mfa-device",
            "--totp-secret",
            "JBSWY3DPEHPK3PXP",
        ],
    )
    .run();
    assert_eq!(run.code, Some(2), "{}", run.stderr);

    // Not one APDU reached the card, so nothing was touched, read or
    // changed on it: read from the log up to a marker APDU sent now.
    if checkable {
        let since = apdu_log_until_now(&key, from);
        let apdus: Vec<_> = since.iter().filter(|e| e["kind"] == "apdu").collect();
        assert!(apdus.is_empty(), "APDUs before the refusal: {apdus:?}");
        assert!(since.iter().all(|e| e.get("touch").is_none()), "{since:?}");
    }
    // Nor did IAM see a call: refused before the key was even used.
    let made = requests_signed_by(&iam_key.id);
    assert!(made.is_empty(), "{made:?}");
}

#[test]
fn a_profile_wrapped_earlier_keeps_its_envelope() {
    rig_dir();
    let env = TestEnv::new("mfadev-later");
    let key = TestKey::start();
    let (user, iam_key) = iam_user(&env);
    let serial_arn = format!("arn:aws:iam::{ACCOUNT}:mfa/{user}");
    enroll(&env, &key, &["--profile", "dev"]).run().success();
    let envelopes = env.dir.join("data/vault/envelopes");
    let before: Vec<_> = std::fs::read_dir(&envelopes)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    assert_eq!(before.len(), 1);
    // The key is only in the envelope now.
    assert_eq!(token::stored(&env, "dev"), None);
    let mark = requests_signed_by(&iam_key.id).len();

    // Later: the device, with the key unwrapped by the card for the IAM calls.
    let run = enroll(&env, &key, &["--profile", "dev", "--create-mfa-device"])
        .run()
        .success();
    assert!(
        run.stderr
            .contains("already wrapped by a token; keeping its envelope"),
        "{}",
        run.stderr
    );
    let after: Vec<_> = std::fs::read_dir(&envelopes)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    assert_eq!(before, after, "the envelope is unchanged");
    assert_eq!(
        token::stored(&env, "dev"),
        None,
        "no copy of the key appeared"
    );
    // The card unwrapped the right secret: the strict STS accepted every
    // call signed with the user's key id.
    let during = requests_signed_by(&iam_key.id).split_off(mark);
    accepted(&during, "GetCallerIdentity");
    accepted(&during, "CreateVirtualMFADevice");
    let e = accepted(&during, "EnableMFADevice");
    assert_eq!(e.param("SerialNumber"), Some(serial_arn.as_str()));
    let device = moto_device(&env, &serial_arn).expect("the device in moto");
    assert_eq!(device["User"]["UserName"], user.as_str(), "{device}");
    let config = std::fs::read_to_string(&env.config).unwrap();
    assert!(
        config.contains(&format!("mfa_serial = {serial_arn}")),
        "{config}"
    );

    // The kept envelope still serves the profile, now with its device: an
    // MFA session made with the key the card unwraps and a code the card
    // computes, both accepted, the code RFC 6238 of the device's seed.
    let (_, seed) = device_seed(&device);
    let run = env
        .vault(&["exec", "dev", "--json"])
        .env("VAULT_PIN", NEW_PIN)
        .deadline(Duration::from_secs(150))
        .run()
        .success();
    assert!(support::JsonCreds::parse(&run.stdout)
        .session_token
        .is_some());
    let gst = support::session_token_requests(&iam_key.id);
    assert_eq!(gst.len(), 1, "{gst:?}");
    assert_eq!(gst[0].status, 200, "{:?}", gst[0]);
    assert_eq!(gst[0].param("SerialNumber"), Some(serial_arn.as_str()));
    let code = gst[0].param("TokenCode").unwrap();
    let step = now() / 30;
    assert!(
        (step - 2..=step + 1).any(|s| totp(&seed, s) == code),
        "TokenCode {code} is not the seed's code for now"
    );
}
