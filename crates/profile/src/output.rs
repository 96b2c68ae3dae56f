//! How credentials leave vault: the credential_process JSON object, the
//! environment of an exec'd command, and `export` formats.

use std::ffi::OsString;
use std::time::SystemTime;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use vault_base::creds::Credentials;
use zeroize::Zeroizing;

pub fn rfc3339(t: SystemTime) -> String {
    // Whole seconds, and never `OffsetDateTime::from(t)`: that panics for a
    // time past year 9999 (a damaged cache entry can hold one).
    let secs = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok(),
        Err(e) => i64::try_from(e.duration().as_secs()).ok().map(|s| -s),
    };
    secs.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The credential_process object, as one line ending in a newline (the AWS
/// CLI and SDKs read stdout whole; nothing else may be on it).
pub fn credential_process_json(c: &Credentials) -> Zeroizing<String> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Object<'a> {
        version: u8,
        access_key_id: &'a str,
        secret_access_key: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        session_token: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        expiration: Option<String>,
    }
    vault_base::secret::json_text(
        &Object {
            version: 1,
            access_key_id: c.access_key_id(),
            secret_access_key: c.secret_access_key().expose(),
            session_token: c.session_token().map(|t| t.expose()),
            expiration: c.expiration().map(rfc3339),
        },
        true,
    )
}

/// Inherited variables that can supply or select credentials. Everything
/// `AWS_*` is dropped from an exec'd command's environment except plain
/// configuration that does not (endpoint, CA bundle, output, retries).
pub const KEEP_AWS: &[&str] = &[
    "AWS_CONFIG_FILE",
    "AWS_CA_BUNDLE",
    "AWS_DEFAULT_OUTPUT",
    "AWS_PAGER",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
];

/// One line on stdout for the commands that list things (`list`,
/// `hw status`). A reader that goes away early (`vault list | head`,
/// `grep -q`) ends the output quietly, as with any Unix filter, instead of
/// a panic; any other failure is said once on stderr.
pub fn line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    static FAILED: AtomicBool = AtomicBool::new(false);
    if FAILED.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = writeln!(std::io::stdout().lock(), "{args}") {
        FAILED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("vault: cannot write to stdout: {e}");
        }
    }
}

/// `println!` for [`line`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

fn keep_inherited(name: &str) -> bool {
    if vault_base::settings::VAULT_SECRETS.contains(&name) {
        return false;
    }
    !name.starts_with("AWS_")
        || KEEP_AWS.contains(&name)
        || name.starts_with("AWS_ENDPOINT_URL")
        || name.starts_with("AWS_CLI_")
}

/// The variables vault sets for a profile's credentials, in order.
pub fn credential_env(
    c: &Credentials,
    region: Option<&str>,
    profile: &str,
) -> Vec<(&'static str, Zeroizing<String>)> {
    let mut v: Vec<(&'static str, Zeroizing<String>)> = vec![
        (
            "AWS_ACCESS_KEY_ID",
            Zeroizing::new(c.access_key_id().to_string()),
        ),
        (
            "AWS_SECRET_ACCESS_KEY",
            Zeroizing::new(c.secret_access_key().expose().to_string()),
        ),
    ];
    if let Some(t) = c.session_token() {
        v.push(("AWS_SESSION_TOKEN", Zeroizing::new(t.expose().to_string())));
    }
    if let Some(exp) = c.expiration() {
        v.push(("AWS_CREDENTIAL_EXPIRATION", Zeroizing::new(rfc3339(exp))));
    }
    if let Some(r) = region {
        v.push(("AWS_REGION", Zeroizing::new(r.to_string())));
        v.push(("AWS_DEFAULT_REGION", Zeroizing::new(r.to_string())));
    }
    v.push(("AWS_VAULT", Zeroizing::new(profile.to_string())));
    v
}

/// The whole environment for an exec'd command: the inherited one with
/// credential variables scrubbed, plus the profile's.
pub fn child_env(
    inherited: impl Iterator<Item = (OsString, OsString)>,
    c: &Credentials,
    region: Option<&str>,
    profile: &str,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = inherited
        .filter(|(k, _)| k.to_str().map(keep_inherited).unwrap_or(true))
        .collect();
    for (k, v) in credential_env(c, region, profile) {
        env.push((k.into(), v.as_str().into()));
    }
    env
}

/// The environment for a command run beside vault's ECS credential server
/// (`vault exec --ecs-server`): the inherited one scrubbed as in
/// [`child_env`], then the endpoint and its token instead of credentials,
/// so SDKs fetch (and refetch) them from vault.
pub fn container_env(
    inherited: impl Iterator<Item = (OsString, OsString)>,
    url: &str,
    token: &str,
    region: Option<&str>,
    profile: &str,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = inherited
        .filter(|(k, _)| k.to_str().map(keep_inherited).unwrap_or(true))
        .collect();
    let mut set = |k: &str, v: &str| env.push((k.into(), v.into()));
    set("AWS_CONTAINER_CREDENTIALS_FULL_URI", url);
    set("AWS_CONTAINER_AUTHORIZATION_TOKEN", token);
    if let Some(r) = region {
        set("AWS_REGION", r);
        set("AWS_DEFAULT_REGION", r);
    }
    set("AWS_VAULT", profile);
    env
}

/// `s` as one shell word: as it is when nothing in it is special, else in
/// single quotes. Borrowed when unchanged, so a secret is not copied.
fn shell_quote(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:+=@,".contains(&b))
    {
        return s.into();
    }
    let mut q = String::with_capacity(s.len() + 2 + 3 * s.matches('\'').count());
    q.push('\'');
    for ch in s.chars() {
        if ch == '\'' {
            q.push_str("'\\''");
        } else {
            q.push(ch);
        }
    }
    q.push('\'');
    q.into()
}

pub fn env_lines(
    c: &Credentials,
    region: Option<&str>,
    profile: &str,
    export: bool,
) -> Zeroizing<String> {
    let vars = credential_env(c, region, profile);
    // Quoted values are exact-size copies, zeroized once joined.
    let values: Vec<Zeroizing<String>> = vars
        .iter()
        .map(|(_, v)| {
            Zeroizing::new(if export {
                shell_quote(v).into_owned()
            } else {
                v.to_string()
            })
        })
        .collect();
    let mut parts: Vec<&str> = Vec::with_capacity(vars.len() * 5);
    for ((k, _), v) in vars.iter().zip(&values) {
        if export {
            parts.push("export ");
        }
        parts.extend([*k, "=", v.as_str(), "\n"]);
    }
    vault_base::secret::concat(&parts)
}

pub fn ini_section(c: &Credentials, region: Option<&str>, profile: &str) -> Zeroizing<String> {
    let expiration = c.expiration().map(rfc3339);
    let mut parts = vec![
        "[",
        profile,
        "]\naws_access_key_id = ",
        c.access_key_id(),
        "\naws_secret_access_key = ",
        c.secret_access_key().expose(),
        "\n",
    ];
    if let Some(t) = c.session_token() {
        parts.extend(["aws_session_token = ", t.expose(), "\n"]);
    }
    if let Some(exp) = &expiration {
        parts.extend(["aws_credential_expiration = ", exp, "\n"]);
    }
    if let Some(r) = region {
        parts.extend(["region = ", r, "\n"]);
    }
    vault_base::secret::concat(&parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};
    use vault_base::creds::SessionCredentials;
    use vault_base::secret::{SecretAccessKey, SessionToken};

    fn creds() -> Credentials {
        Credentials::Session(SessionCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: SecretAccessKey::new("secret"),
            session_token: SessionToken::new("token"),
            expiration: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        })
    }

    #[test]
    fn credential_process_object() {
        let v: serde_json::Value =
            serde_json::from_str(&credential_process_json(&creds())).unwrap();
        assert_eq!(v["Version"], 1);
        assert_eq!(v["AccessKeyId"], "ASIAEXAMPLE");
        assert_eq!(v["SessionToken"], "token");
        assert_eq!(v["Expiration"], "2027-01-15T08:00:00Z");
    }

    #[test]
    fn child_env_scrubs_credentials_but_keeps_configuration() {
        let inherited = vec![
            ("AWS_ACCESS_KEY_ID", "old"),
            ("AWS_PROFILE", "other"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/x"),
            ("AWS_CONFIG_FILE", "/cfg"),
            ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1"),
            ("PATH", "/bin"),
            ("VAULT_PIN", "24681357"),
            ("VAULT_NEW_PIN", "24681357"),
            ("VAULT_NEW_PUK", "13572468"),
            ("VAULT_FIDO2_PIN", "1234"),
            ("VAULT_FILE_PASSPHRASE", "pass"),
            ("VAULT_BACKEND", "file"),
        ];
        let env = child_env(
            inherited.into_iter().map(|(k, v)| (k.into(), v.into())),
            &creds(),
            Some("eu-west-1"),
            "dev",
        );
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.to_str().unwrap().to_string())
        };
        assert_eq!(get("AWS_ACCESS_KEY_ID").as_deref(), Some("ASIAEXAMPLE"));
        assert_eq!(
            env.iter().filter(|(k, _)| k == "AWS_ACCESS_KEY_ID").count(),
            1
        );
        assert_eq!(get("AWS_PROFILE"), None);
        assert_eq!(get("AWS_WEB_IDENTITY_TOKEN_FILE"), None);
        assert_eq!(get("AWS_CONFIG_FILE").as_deref(), Some("/cfg"));
        assert_eq!(
            get("AWS_ENDPOINT_URL_STS").as_deref(),
            Some("http://127.0.0.1:1")
        );
        assert_eq!(get("AWS_VAULT").as_deref(), Some("dev"));
        assert_eq!(get("AWS_REGION").as_deref(), Some("eu-west-1"));
        assert_eq!(get("PATH").as_deref(), Some("/bin"));
        for secret in vault_base::settings::VAULT_SECRETS {
            assert_eq!(get(secret), None, "{secret} reached the command");
        }
        assert_eq!(get("VAULT_BACKEND").as_deref(), Some("file"));
    }

    #[test]
    fn container_env_has_the_endpoint_and_no_credentials() {
        let inherited = vec![
            ("AWS_ACCESS_KEY_ID", "old"),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.2/x",
            ),
            ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/y"),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/z"),
            ("AWS_CONFIG_FILE", "/cfg"),
            ("PATH", "/bin"),
        ];
        let env = container_env(
            inherited.into_iter().map(|(k, v)| (k.into(), v.into())),
            "http://127.0.0.1:4242/",
            "tok",
            Some("eu-west-1"),
            "dev",
        );
        let get = |k: &str| {
            let v: Vec<_> = env.iter().filter(|(n, _)| n == k).collect();
            assert!(v.len() <= 1, "{k} set twice");
            v.first().map(|(_, v)| v.to_str().unwrap().to_string())
        };
        assert_eq!(
            get("AWS_CONTAINER_CREDENTIALS_FULL_URI").as_deref(),
            Some("http://127.0.0.1:4242/")
        );
        assert_eq!(
            get("AWS_CONTAINER_AUTHORIZATION_TOKEN").as_deref(),
            Some("tok")
        );
        for gone in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_CREDENTIAL_EXPIRATION",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        ] {
            assert_eq!(get(gone), None, "{gone}");
        }
        assert_eq!(get("AWS_REGION").as_deref(), Some("eu-west-1"));
        assert_eq!(get("AWS_VAULT").as_deref(), Some("dev"));
        assert_eq!(get("AWS_CONFIG_FILE").as_deref(), Some("/cfg"));
        assert_eq!(get("PATH").as_deref(), Some("/bin"));
    }

    #[test]
    fn export_env_quotes_for_the_shell() {
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
        assert_eq!(shell_quote("abc/+="), "abc/+=");
    }
}
