//! `vault login PROFILE`: the AWS console, signed in as the profile.
//!
//! The console takes only role or federation sessions. A profile that
//! assumes a role signs in with its (cached) AssumeRole session; one that
//! assumes none gets a GetFederationToken session made with its stored key
//! (STS takes nothing else there, and no MFA). The session goes to the
//! federation endpoint's `getSigninToken`, and the sign-in URL built from
//! the token is opened in the browser or, with `--stdout`, printed.
//!
//! The URL and the token are credentials (anyone holding the URL in the next
//! 15 minutes gets the console session): never logged, printed only on
//! stdout and only when asked.

use crate::app::App;
use crate::error::Error;
use std::io::Write;
use std::time::{Duration, SystemTime};
use vault_aws::sts::Sts;
use vault_base::creds::{Credentials, SessionCredentials};
use vault_fast::cli::LoginArgs;
use vault_profile::config;
use vault_profile::plan::ROLE_CHAINING_MAX;
use zeroize::Zeroizing;

/// Overrides the federation endpoint (`https://signin.aws.amazon.com/federation`
/// or its partition's), e.g. for a test server.
pub const FEDERATION_URL_ENV: &str = "VAULT_FEDERATION_URL";
/// Names vault to the console (where it sends the user when the session ends).
pub const ISSUER: &str = "vault";
/// The console session of a role may last at most this long.
const CONSOLE_SESSION_MAX: Duration = Duration::from_secs(43_200);

pub fn run(app: &App, args: &LoginArgs) -> Result<(), Error> {
    if let Some(d) = args.session.duration {
        super::check_duration(d)?;
    }
    let (chain, root) = super::resolve_chain(app, &args.profile)?;
    let plan =
        vault_profile::plan::build(&chain, &args.session.options(), &config::process_env, root);
    let region = vault_profile::plan::region(&chain, &args.session.options());
    if let Some(r) = &region {
        check_region(r)?;
    }
    // Checked before any touch or STS call.
    let endpoint = federation_endpoint(region.as_deref())?;

    // A user's key gets a federation token; an SSO or credential_process
    // root already gives a role session, as a role profile does.
    let from_keys = matches!(plan.root, vault_profile::plan::RootSource::Keys);
    let (creds, session_duration) = if plan.roles.is_empty() && from_keys {
        (federation_session(app, &plan, args)?, None)
    } else {
        let r = super::credentials_via(
            app,
            &args.profile,
            &args.session,
            super::sso_flow(&args.sso),
        )?;
        let Credentials::Session(creds) = r.creds else {
            return Err(Error::Other(format!(
                "profile {:?} gave a long-term key instead of a session, which the console does not take",
                args.profile
            )));
        };
        // The console session's own length, only when asked for: up to
        // 12 h, and 1 h for a chained role (as for its credentials).
        let cap = if plan.roles.len() > 1 {
            ROLE_CHAINING_MAX
        } else {
            CONSOLE_SESSION_MAX
        };
        (creds, args.session.duration.map(|d| d.min(cap)))
    };
    log::debug!(target: "vault", "console session from credentials {} ({} s left{})",
        vault_base::secret::mask_key_id(&creds.access_key_id),
        creds.remaining(SystemTime::now()).as_secs(),
        session_duration.map(|d| format!(", SessionDuration {} s", d.as_secs())).unwrap_or_default());

    let token = signin_token(&endpoint, &creds, session_duration)?;
    let destination = destination(region.as_deref(), args.path.as_deref());
    let url = login_url(&endpoint, &destination, &token);

    if !args.stdout {
        match open_in_browser(&url) {
            Ok(()) => return Ok(()),
            Err(e) => eprintln!("vault: cannot open a browser ({e}); open this URL instead:"),
        }
    }
    let mut line = Zeroizing::new(url.to_string());
    line.push('\n');
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::Other(format!("cannot write to stdout: {e}")))
}

/// GetFederationToken with the root's stored key, for a profile that
/// assumes no role. Made anew each time (like aws-vault) and not cached: the
/// console session ends with these credentials, so a cached one near its end
/// would give a console that closes minutes later.
fn federation_session(
    app: &App,
    plan: &vault_profile::plan::Plan,
    args: &LoginArgs,
) -> Result<SessionCredentials, Error> {
    if plan
        .session
        .as_ref()
        .is_some_and(|s| s.mfa_serial.is_some())
    {
        eprintln!(
            "vault: note: profile \"{}\" assumes no role, so its console session is a federated user's, made without MFA (STS takes none there); policies that require MFA deny it",
            args.profile
        );
    }
    let key = crate::unlock::load(app, &plan.root_profile)?.ok_or_else(|| {
        vault_aws::provider::ProviderError::NoStoredKey {
            profile: plan.root_profile.clone(),
        }
    })?;
    let key = Credentials::LongTerm(key);
    let sts = Sts::new(plan.endpoint.clone()).map_err(vault_aws::provider::ProviderError::from)?;
    let sts_err = |e| Error::from(vault_aws::provider::ProviderError::from(e));
    // As aws-vault does: the federated user is named after the IAM user.
    let arn = sts.caller_arn(&key).map_err(sts_err)?;
    let name = vault_aws::sts::federated_user_name(&arn, &plan.root_profile);
    let duration = args
        .session
        .duration
        .or_else(|| {
            vault_base::settings::env_var("AWS_FEDERATION_TOKEN_TTL")
                .and_then(|v| vault_base::settings::parse_duration(&v).ok())
        })
        .unwrap_or(vault_profile::plan::DEFAULT_DURATION);
    log::debug!(target: "vault", "calling GetFederationToken as {name} for {} s", duration.as_secs());
    sts.get_federation_token(&key, &name, duration)
        .map_err(sts_err)
}

/// A region goes into a host name: only `[a-z0-9-]`.
fn check_region(r: &str) -> Result<(), Error> {
    if !r.is_empty()
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Ok(())
    } else {
        Err(Error::usage(
            format!("invalid region {r:?}"),
            Some("use a region name such as eu-west-1".to_string()),
        ))
    }
}

/// Sign-in endpoint and console domain of the partition a region is in.
fn partition(region: Option<&str>) -> (&'static str, &'static str) {
    match region {
        Some(r) if r.starts_with("cn-") => (
            "https://signin.amazonaws.cn/federation",
            "console.amazonaws.cn",
        ),
        Some(r) if r.starts_with("us-gov-") => (
            "https://signin.amazonaws-us-gov.com/federation",
            "console.amazonaws-us-gov.com",
        ),
        _ => (
            "https://signin.aws.amazon.com/federation",
            "console.aws.amazon.com",
        ),
    }
}

/// `VAULT_FEDERATION_URL`, else the partition's endpoint. Plain http only
/// to this machine: the request carries the session's secret.
fn federation_endpoint(region: Option<&str>) -> Result<String, Error> {
    let Some(url) = vault_base::settings::Settings::get().federation_url.clone() else {
        return Ok(partition(region).0.to_string());
    };
    let uri: hyper::Uri = url.parse().map_err(|e| {
        Error::usage(
            format!("{FEDERATION_URL_ENV}={url:?} is not a URL: {e}"),
            None,
        )
    })?;
    let loopback = matches!(
        uri.host(),
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
    );
    match uri.scheme_str() {
        Some("https") => Ok(url),
        Some("http") if loopback => Ok(url),
        _ => Err(Error::usage(
            format!("{FEDERATION_URL_ENV}={url:?}: the federation endpoint must be https (plain http only on 127.0.0.1)"),
            None,
        )),
    }
}

/// The console page to land on: the region's console home, or `path` in it.
fn destination(region: Option<&str>, path: Option<&str>) -> String {
    let path = path
        .map(|p| p.trim_start_matches('/'))
        .filter(|p| !p.is_empty());
    let Some(r) = region else {
        return match path {
            Some(p) => format!("https://console.aws.amazon.com/{p}"),
            None => "https://console.aws.amazon.com/".to_string(),
        };
    };
    let domain = partition(Some(r)).1;
    match path {
        Some(p) => {
            let sep = if p.contains('?') { '&' } else { '?' };
            format!("https://{r}.{domain}/{p}{sep}region={r}")
        }
        None => format!("https://{r}.{domain}/console/home?region={r}"),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn with_query(endpoint: &str, query: &str) -> String {
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}{query}")
}

/// The sign-in URL: a credential.
fn login_url(endpoint: &str, destination: &str, token: &str) -> Zeroizing<String> {
    Zeroizing::new(with_query(
        endpoint,
        &format!(
            "Action=login&Issuer={}&Destination={}&SigninToken={}",
            encode(ISSUER),
            encode(destination),
            encode(token)
        ),
    ))
}

/// Asks the federation endpoint for a sign-in token for `creds`.
fn signin_token(
    endpoint: &str,
    creds: &SessionCredentials,
    session_duration: Option<Duration>,
) -> Result<Zeroizing<String>, Error> {
    let session = Zeroizing::new(
        serde_json::json!({
            "sessionId": creds.access_key_id,
            "sessionKey": creds.secret_access_key.expose(),
            "sessionToken": creds.session_token.expose(),
        })
        .to_string(),
    );
    let mut query = String::from("Action=getSigninToken");
    if let Some(d) = session_duration {
        query.push_str(&format!("&SessionDuration={}", d.as_secs()));
    }
    let url = Zeroizing::new(with_query(
        endpoint,
        &format!("{query}&Session={}", encode(&session)),
    ));
    log::debug!(target: "vault", "asking {endpoint} for a console sign-in token");
    let fail = |detail: String| {
        Error::Other(format!(
            "cannot get a console sign-in token from {endpoint}: {detail}"
        ))
    };
    let (status, body) = http_get(&url).map_err(fail)?;
    if status != 200 {
        return Err(fail(format!("it answered HTTP {status}")));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "SigninToken")]
        signin_token: String,
    }
    let answer: Answer = serde_json::from_slice(&body)
        .map_err(|_| fail("its answer has no SigninToken".to_string()))?;
    Ok(Zeroizing::new(answer.signin_token))
}

fn http_get(url: &str) -> Result<(u16, Zeroizing<Vec<u8>>), String> {
    vault_aws::http::send(vault_aws::http::Request {
        method: "GET",
        url,
        headers: &[],
        body: None,
    })
}

/// Opens `url` in the default browser: `open` on macOS, the URL handler on
/// Windows, `xdg-open` elsewhere. (The URL is on their command line for
/// as long as they run, as with any browser launch.)
pub(crate) fn open_in_browser(url: &str) -> Result<(), String> {
    #[cfg(target_os = "macos")]
    let (program, pre): (&str, &[&str]) = ("open", &[]);
    #[cfg(windows)]
    let (program, pre): (&str, &[&str]) = ("rundll32", &["url.dll,FileProtocolHandler"]);
    #[cfg(not(any(target_os = "macos", windows)))]
    let (program, pre): (&str, &[&str]) = ("xdg-open", &[]);
    log::debug!(target: "vault", "opening the sign-in URL with {program}");
    let status =
        vault_base::settings::without_vault_secrets(&mut std::process::Command::new(program))
            .args(pre)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => format!("{program} not found"),
                _ => format!("{program}: {e}"),
            })?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} failed ({status})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_like_aws_vault() {
        assert_eq!(destination(None, None), "https://console.aws.amazon.com/");
        assert_eq!(
            destination(Some("eu-west-1"), None),
            "https://eu-west-1.console.aws.amazon.com/console/home?region=eu-west-1"
        );
        assert_eq!(
            destination(Some("eu-west-1"), Some("/s3")),
            "https://eu-west-1.console.aws.amazon.com/s3?region=eu-west-1"
        );
        assert_eq!(
            destination(Some("eu-west-1"), Some("ec2/home?x=1")),
            "https://eu-west-1.console.aws.amazon.com/ec2/home?x=1&region=eu-west-1"
        );
        assert_eq!(
            destination(Some("cn-north-1"), None),
            "https://cn-north-1.console.amazonaws.cn/console/home?region=cn-north-1"
        );
        assert_eq!(
            destination(Some("us-gov-west-1"), Some("iam")),
            "https://us-gov-west-1.console.amazonaws-us-gov.com/iam?region=us-gov-west-1"
        );
        assert_eq!(
            partition(Some("cn-north-1")).0,
            "https://signin.amazonaws.cn/federation"
        );
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("a b&c=d/é~"), "a%20b%26c%3Dd%2F%C3%A9~");
        let url = login_url("http://127.0.0.1:1/federation", "https://x/?a=b", "t+k/");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/federation?Action=login&Issuer=vault&Destination=https%3A%2F%2Fx%2F%3Fa%3Db&SigninToken=t%2Bk%2F"
        );
    }

    #[test]
    fn regions_are_checked_before_they_become_host_names() {
        assert!(check_region("eu-west-1").is_ok());
        assert!(check_region("evil.com/").is_err());
        assert!(check_region("").is_err());
    }

    #[test]
    fn federated_user_names_fit_sts() {
        use vault_aws::sts::federated_user_name as name;
        assert_eq!(
            name("arn:aws:iam::123456789012:user/ops/alice", "p"),
            "alice"
        );
        assert_eq!(
            name(
                "arn:aws:iam::123456789012:user/a-very-long-user-name-that-goes-on",
                "p"
            ),
            "a-very-long-user-name-that-goes-"
        );
        assert_eq!(
            name("arn:aws:sts::123456789012:assumed-role/R/s", "dev"),
            "dev"
        );
        assert_eq!(name("arn:aws:iam::123456789012:root", "x"), "vault");
    }
}
