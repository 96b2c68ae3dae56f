//! `~/.aws/config`: any bytes parse or fail with an error; every profile
//! the file names (and a few it does not) resolves or fails, in bounded
//! time, with and without the environment and stored keys; the plan built
//! from a chain never panics; an accepted `set_value` leaves a file that
//! parses again and reads the value back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_profile::config::ConfigFile;
use vault_profile::plan::SessionOptions;

const FILE: &str = "~/.aws/config";

fn no_env(_: &str) -> Option<String> {
    None
}

fn some_env(name: &str) -> Option<String> {
    let value = match name {
        "AWS_REGION" => "eu-west-1",
        "AWS_MFA_SERIAL" => "arn:aws:iam::111111111111:mfa/env",
        "AWS_ROLE_ARN" => "arn:aws:iam::111111111111:role/env",
        "AWS_SESSION_TAGS" => "a=1,b=2",
        "AWS_TRANSITIVE_TAGS" => "a",
        "AWS_ENDPOINT_URL" => "http://127.0.0.1:1",
        "AWS_SESSION_TOKEN_TTL" => "2h",
        "AWS_ASSUME_ROLE_TTL" => "99999999999999h",
        _ => return None,
    };
    Some(value.to_owned())
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut config) = ConfigFile::parse_bytes(data, FILE) else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    assert!(
        ConfigFile::parse(&text, FILE).is_ok(),
        "parse_bytes and parse disagree"
    );

    let mut names: Vec<String> = config
        .profile_names()
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    names.extend(["default", "nope", "a", ""].map(str::to_owned));
    let args = SessionOptions::default();
    for name in &names {
        let strict = config.resolve(name, &no_env);
        let lenient = config.resolve_with(name, &some_env, &|n| n.len() % 2 == 0);
        for result in [strict, lenient] {
            match result {
                Ok(chain) => {
                    assert!(!chain.links().is_empty());
                    let _ = chain.to_string();
                    let _ = chain
                        .target()
                        .unsupported()
                        .map(|e| (e.to_string(), e.hint()));
                    let _ = chain.sts_endpoint();
                    for has_keys in [true, false] {
                        let root = vault_profile::plan::root_source(&chain, has_keys);
                        let plan = vault_profile::plan::build(&chain, &args, &some_env, root);
                        let _ = (plan.target_id(), plan.all_ids());
                    }
                    let _ = vault_profile::plan::region(&chain, &args);
                }
                Err(e) => {
                    let _ = (e.to_string(), e.hint());
                }
            }
        }
    }

    // One edit per input, chosen by the input, with a value taken from it.
    let pick = data
        .iter()
        .fold(0usize, |h, &b| h.wrapping_mul(31).wrapping_add(b as usize));
    let keys = [
        "region",
        "mfa_serial",
        "include_profile",
        "source_profile",
        "s3",
        "vault_oath",
    ];
    let name = names[pick % names.len()].clone();
    let key = keys[(pick / 7) % keys.len()];
    let from_input = text.lines().next().unwrap_or("").trim().to_owned();
    for value in ["a", "x#y", "arn:aws:iam::1:mfa/a b", from_input.as_str()] {
        let mut edited = config.clone();
        if edited.set_value(&name, key, value).is_ok() {
            let bytes = edited.to_bytes();
            let reread = ConfigFile::parse_bytes(&bytes, FILE)
                .unwrap_or_else(|e| panic!("edited text no longer parses: {e}"));
            assert_eq!(
                reread.profile_section(&name).and_then(|s| s.get(key)),
                Some(value),
                "edited value does not read back"
            );
        }
    }
    let _ = config.set_value(&name, key, &from_input);
});
