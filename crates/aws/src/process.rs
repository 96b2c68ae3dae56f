//! A `credential_process` source profile: its command is run with `sh -c`
//! (as the AWS CLI and aws-vault run it on Unix) and its stdout read as the
//! AWS SDKs' credential_process JSON (`Version` 1, `AccessKeyId`,
//! `SecretAccessKey`, optional `SessionToken` and RFC 3339 `Expiration`).

use serde::Deserialize;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use vault_base::creds::{Credentials, LongTermKey, SessionCredentials};
use vault_base::secret::{SecretAccessKey, SessionToken};
use zeroize::Zeroizing;

/// The object as printed; the secrets are wiped when it is dropped.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Output {
    version: Option<u32>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    expiration: Option<String>,
}

impl Drop for Output {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        if let Some(s) = self.secret_access_key.as_mut() {
            s.zeroize();
        }
        if let Some(s) = self.session_token.as_mut() {
            s.zeroize();
        }
    }
}

/// Runs `command` and parses what it prints; the error says what went
/// wrong in words that follow "credential_process of profile P".
pub fn credential_process(command: &str) -> Result<Credentials, String> {
    let out = vault_base::settings::without_vault_secrets(&mut Command::new("sh"))
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Its prompts and errors reach the user, as with the AWS CLI.
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("`{command}` could not be started with sh: {e}"))?;
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        return Err(match out.status.code() {
            Some(code) => {
                format!("`{command}` exited with code {code} (its own message, if any, is above)")
            }
            None => format!("`{command}` was killed by a signal"),
        });
    }
    parse(&stdout, SystemTime::now()).map_err(|e| format!("`{command}` {e}"))
}

/// Parses credential_process output read at `now`.
pub fn parse(stdout: &[u8], now: SystemTime) -> Result<Credentials, String> {
    let out: Output = serde_json::from_slice(stdout)
        .map_err(|e| format!("did not print one JSON object on stdout ({e})"))?;
    if out.version != Some(1) {
        return Err(format!(
            "printed Version {:?}; only Version 1 is defined",
            out.version
        ));
    }
    let (Some(id), Some(secret)) = (&out.access_key_id, &out.secret_access_key) else {
        return Err("printed no AccessKeyId or no SecretAccessKey".into());
    };
    if id.is_empty() || secret.is_empty() {
        return Err("printed an empty AccessKeyId or SecretAccessKey".into());
    }
    let Some(token) = &out.session_token else {
        return Ok(Credentials::LongTerm(LongTermKey {
            access_key_id: id.clone(),
            secret_access_key: SecretAccessKey::new(secret.clone()),
        }));
    };
    let expiration = match &out.expiration {
        Some(e) => parse_rfc3339(e)
            .ok_or_else(|| format!("printed an Expiration that is not RFC 3339: {e:?}"))?,
        // Temporary credentials without a stated end: good for this call
        // only, never cached past the minimum a cached session must have.
        None => now + Duration::from_secs(0),
    };
    if expiration <= now && out.expiration.is_some() {
        return Err("printed credentials that have already expired".into());
    }
    Ok(Credentials::Session(SessionCredentials {
        access_key_id: id.clone(),
        secret_access_key: SecretAccessKey::new(secret.clone()),
        session_token: SessionToken::new(token.clone()),
        expiration,
    }))
}

fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    let secs = u64::try_from(t.unix_timestamp()).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const NOW: u64 = 1_796_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    #[test]
    fn a_session_with_its_expiration() {
        let c = parse(
            br#"{"Version":1,"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"s","SessionToken":"t","Expiration":"2026-11-30T08:00:00Z"}"#,
            now(),
        )
        .unwrap();
        let Credentials::Session(s) = c else {
            panic!("a session")
        };
        assert_eq!(s.access_key_id, "ASIAEXAMPLE");
        assert_eq!(
            s.expiration.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_796_025_600
        );
    }

    #[test]
    fn long_term_keys_have_no_token() {
        let c = parse(
            br#"{"Version":1,"AccessKeyId":"AKIAEXAMPLE","SecretAccessKey":"s"}"#,
            now(),
        )
        .unwrap();
        assert!(matches!(c, Credentials::LongTerm(_)));
    }

    #[test]
    fn bad_output_is_an_error_never_a_panic() {
        for bad in [
            &b""[..],
            b"not json",
            b"[]",
            br#"{"Version":2,"AccessKeyId":"a","SecretAccessKey":"s"}"#,
            br#"{"Version":1,"AccessKeyId":"a"}"#,
            br#"{"Version":1,"AccessKeyId":"","SecretAccessKey":"s"}"#,
            br#"{"Version":1,"AccessKeyId":"a","SecretAccessKey":"s","SessionToken":"t","Expiration":"tomorrow"}"#,
            br#"{"Version":1,"AccessKeyId":"a","SecretAccessKey":"s","SessionToken":"t","Expiration":"2020-01-01T00:00:00Z"}"#,
        ] {
            assert!(parse(bad, now()).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
