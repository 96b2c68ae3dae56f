//! STS calls through aws-sdk-sts. The SDK and its async runtime are only
//! started here, so a cache hit never pays for them.

use aws_sdk_sts::config::timeout::TimeoutConfig;
use aws_sdk_sts::config::{BehaviorVersion, Region};
use std::time::{Duration, SystemTime};
use vault_base::creds::{Credentials, SessionCredentials};
use vault_base::secret::{MfaCode, SecretAccessKey, SessionToken};
pub use vault_profile::plan::{AssumeRole, Endpoint};

/// How long one STS call may take in all, retries included, unless
/// `VAULT_STS_TIMEOUT` (Go-style: `10s`, `1m`) says otherwise. Without a
/// bound, an endpoint that accepts the connection and never answers would
/// hang vault (and the MFA lock it holds) forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take, per attempt (the SDK's own default).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// `VAULT_STS_TIMEOUT`, else [`DEFAULT_TIMEOUT`].
pub fn timeout() -> Duration {
    vault_base::settings::Settings::get()
        .sts_timeout
        .unwrap_or(DEFAULT_TIMEOUT)
}

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Whether `url` may carry vault's requests: https anywhere, plain http
/// only to this machine (a local emulator). STS and IAM requests carry
/// session tokens and MFA codes, and their answers session secrets, an MFA
/// seed (CreateVirtualMFADevice) or a new long-term key (CreateAccessKey).
pub fn check_endpoint(url: &str) -> Result<(), String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let loopback = match uri.host() {
        Some("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if loopback => Ok(()),
        Some("http") => Err(format!(
            "{url} is plain http to another machine: session tokens, MFA codes and keys would \
             cross the network in clear"
        )),
        _ => Err(format!(
            "{url} is neither https:// nor http:// to this machine"
        )),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StsError {
    /// STS answered with an error code (AccessDenied, ExpiredToken, ...).
    #[error("STS {operation} failed: {code}: {message}")]
    Service {
        operation: &'static str,
        code: String,
        message: String,
    },
    /// STS could not be reached or did not answer in time.
    #[error("cannot reach STS at {endpoint} for {operation}: {detail}")]
    Unreachable {
        operation: &'static str,
        endpoint: String,
        detail: String,
        /// Whether the request may have reached the other end (so an MFA
        /// code in it may be spent): false only when no connection was made.
        sent: bool,
        /// Whether vault gave up waiting ([`timeout`]).
        timed_out: bool,
    },
    #[error("STS {operation} returned no credentials")]
    NoCredentials { operation: &'static str },
    #[error("cannot start the STS client: {0}")]
    Runtime(String),
    #[error("refusing the STS endpoint: {0}")]
    Endpoint(String),
}

impl StsError {
    pub fn hint(&self) -> Option<String> {
        match self {
            StsError::Service { code, message, .. } => {
                let m = message.to_ascii_lowercase();
                if m.contains("mfa") || m.contains("one time pass") || m.contains("multifactor") {
                    Some("the MFA code was rejected: wait for the next code and try again".into())
                } else if code == "InvalidClientTokenId" || code == "SignatureDoesNotMatch" {
                    Some(
                        "the stored access key is wrong or deleted: `vault add PROFILE` it again"
                            .into(),
                    )
                } else if code == "ExpiredToken" {
                    Some("the session expired: `vault clear` and try again".into())
                } else if matches!(
                    code.as_str(),
                    "Throttling" | "ThrottlingException" | "RequestLimitExceeded"
                ) {
                    Some(
                        "STS is throttling this account's requests (vault already retried): \
                         wait a minute and try again"
                            .into(),
                    )
                } else if matches!(
                    code.as_str(),
                    "InternalFailure" | "InternalError" | "ServiceUnavailable"
                ) {
                    Some(
                        "STS had an internal error (vault already retried): try again in a \
                         moment"
                            .into(),
                    )
                } else {
                    None
                }
            }
            StsError::Unreachable {
                timed_out: true, ..
            } => Some(format!(
                "check your network, and AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_STS / endpoint_url; \
                 VAULT_STS_TIMEOUT sets how long vault waits for STS (default {})",
                seconds(DEFAULT_TIMEOUT)
            )),
            StsError::Unreachable { .. } => Some(
                "check your network, and AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_STS / endpoint_url"
                    .into(),
            ),
            StsError::Endpoint(_) => Some(
                "use https (check AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_STS and endpoint_url); plain \
                 http only to 127.0.0.1, ::1 or localhost"
                    .into(),
            ),
            _ => None,
        }
    }
}

pub struct Sts {
    rt: tokio::runtime::Runtime,
    endpoint: Endpoint,
    /// Each call's bound, retries included.
    timeout: Duration,
}

fn to_sdk_creds(c: &Credentials) -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(
        c.access_key_id(),
        c.secret_access_key().expose(),
        c.session_token().map(|t| t.expose().to_string()),
        None,
        "vault",
    )
}

fn from_sdk(
    operation: &'static str,
    c: Option<&aws_sdk_sts::types::Credentials>,
) -> Result<SessionCredentials, StsError> {
    let c = c.ok_or(StsError::NoCredentials { operation })?;
    let exp = c.expiration();
    let expiration = SystemTime::UNIX_EPOCH
        + Duration::from_secs(exp.secs().max(0) as u64)
        + Duration::from_nanos(exp.subsec_nanos() as u64);
    Ok(SessionCredentials {
        access_key_id: c.access_key_id().to_string(),
        secret_access_key: SecretAccessKey::new(c.secret_access_key()),
        session_token: SessionToken::new(c.session_token()),
        expiration,
    })
}

/// Whether the connection itself failed (refused, unreachable, no such
/// host, connect timeout): then no byte of the request left this machine.
fn connect_failed(e: &aws_sdk_sts::error::ConnectorError) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(h) = s.downcast_ref::<hyper_util::client::legacy::Error>() {
            return h.is_connect();
        }
        src = s.source();
    }
    false
}

fn service_error<E, R>(
    operation: &'static str,
    endpoint: &Endpoint,
    timeout: Duration,
    e: aws_sdk_sts::error::SdkError<E, R>,
) -> StsError
where
    E: aws_sdk_sts::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_sts::error::SdkError;
    let endpoint = || {
        endpoint
            .url
            .clone()
            .unwrap_or_else(|| format!("sts.{}.amazonaws.com", endpoint.region))
    };
    match &e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            StsError::Service {
                operation,
                code: err.code().unwrap_or("Unknown").to_string(),
                message: err.message().unwrap_or("").to_string(),
            }
        }
        // The whole call's bound (`timeout`), retries included.
        SdkError::TimeoutError(_) => StsError::Unreachable {
            operation,
            endpoint: endpoint(),
            detail: format!("timed out after {} without an answer", seconds(timeout)),
            sent: true,
            timed_out: true,
        },
        SdkError::DispatchFailure(d) => {
            let connector = d.as_connector_error();
            StsError::Unreachable {
                operation,
                endpoint: endpoint(),
                detail: crate::http::error_chain(&e),
                sent: !connector.is_some_and(connect_failed),
                timed_out: d.is_timeout(),
            }
        }
        _ => StsError::Unreachable {
            operation,
            endpoint: endpoint(),
            detail: crate::http::error_chain(&e),
            sent: !matches!(e, SdkError::ConstructionFailure(_)),
            timed_out: false,
        },
    }
}

/// GetFederationToken's session policy: without one the session could do
/// nothing; with this one it can do what the user can.
pub const ALLOW_ALL_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// A federated user's name from the IAM user's ARN
/// (`arn:aws:iam::ACCOUNT:user/PATH/NAME`), cut to what STS accepts
/// (2–32 characters of `[A-Za-z0-9_+=,.@-]`); `fallback` when the ARN is no
/// user's or nothing usable is left.
pub fn federated_user_name(caller_arn: &str, fallback: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(*c))
            .take(32)
            .collect()
    };
    let from_arn = caller_arn
        .split_once(":user/")
        .map(|(_, rest)| clean(rest.rsplit('/').next().unwrap_or(rest)))
        .unwrap_or_default();
    if from_arn.len() >= 2 {
        return from_arn;
    }
    let fb = clean(fallback);
    if fb.len() >= 2 {
        fb
    } else {
        "vault".to_string()
    }
}

fn secs(d: Duration) -> i32 {
    d.as_secs().min(i32::MAX as u64) as i32
}

/// The STS calls that make sessions: the SDK client ([`Sts`]), or an
/// in-process double in the provider's unit tests.
pub trait StsCalls {
    fn get_session_token(
        &self,
        creds: &Credentials,
        duration: Duration,
        mfa: Option<(&str, &MfaCode)>,
    ) -> Result<SessionCredentials, StsError>;
    fn assume_role(
        &self,
        creds: &Credentials,
        role: &AssumeRole,
        mfa: Option<(&str, &MfaCode)>,
    ) -> Result<SessionCredentials, StsError>;
}

impl StsCalls for Sts {
    fn get_session_token(
        &self,
        creds: &Credentials,
        duration: Duration,
        mfa: Option<(&str, &MfaCode)>,
    ) -> Result<SessionCredentials, StsError> {
        Sts::get_session_token(self, creds, duration, mfa)
    }
    fn assume_role(
        &self,
        creds: &Credentials,
        role: &AssumeRole,
        mfa: Option<(&str, &MfaCode)>,
    ) -> Result<SessionCredentials, StsError> {
        Sts::assume_role(self, creds, role, mfa)
    }
}

impl Sts {
    pub fn new(endpoint: Endpoint) -> Result<Sts, StsError> {
        if let Some(url) = &endpoint.url {
            check_endpoint(url).map_err(StsError::Endpoint)?;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StsError::Runtime(e.to_string()))?;
        Ok(Sts {
            rt,
            endpoint,
            timeout: timeout(),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn client(&self, creds: &Credentials) -> aws_sdk_sts::Client {
        let mut b = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.endpoint.region.clone()))
            .credentials_provider(to_sdk_creds(creds))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT.min(self.timeout))
                    .operation_timeout(self.timeout)
                    .build(),
            );
        if let Some(url) = &self.endpoint.url {
            b = b.endpoint_url(url);
        }
        aws_sdk_sts::Client::from_conf(b.build())
    }

    pub fn get_session_token(
        &self,
        creds: &Credentials,
        duration: Duration,
        mfa: Option<(&str, &MfaCode)>,
    ) -> Result<SessionCredentials, StsError> {
        const OP: &str = "GetSessionToken";
        let client = self.client(creds);
        let mut req = client.get_session_token().duration_seconds(secs(duration));
        if let Some((serial, code)) = mfa {
            req = req.serial_number(serial).token_code(code.expose());
        }
        let out = self
            .rt
            .block_on(req.send())
            .map_err(|e| service_error(OP, &self.endpoint, self.timeout, e))?;
        from_sdk(OP, out.credentials())
    }

    pub fn assume_role(
        &self,
        creds: &Credentials,
        role: &AssumeRole,
        mfa: Option<(&str, &MfaCode)>,
    ) -> Result<SessionCredentials, StsError> {
        const OP: &str = "AssumeRole";
        let client = self.client(creds);
        let mut req = client
            .assume_role()
            .role_arn(&role.role_arn)
            .role_session_name(&role.session_name)
            .duration_seconds(secs(role.duration));
        if let Some(x) = &role.external_id {
            req = req.external_id(x);
        }
        if let Some(s) = &role.source_identity {
            req = req.source_identity(s);
        }
        for (k, v) in &role.tags {
            let tag = aws_sdk_sts::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| StsError::Runtime(e.to_string()))?;
            req = req.tags(tag);
        }
        for k in &role.transitive_tag_keys {
            req = req.transitive_tag_keys(k);
        }
        if let Some((serial, code)) = mfa {
            req = req.serial_number(serial).token_code(code.expose());
        }
        let out = self
            .rt
            .block_on(req.send())
            .map_err(|e| service_error(OP, &self.endpoint, self.timeout, e))?;
        from_sdk(OP, out.credentials())
    }

    /// A federated user's session, for console sign-in with an IAM user's
    /// key (the federation endpoint takes only federation or role
    /// sessions). STS takes only a long-term key here and no MFA. The
    /// session policy allows everything: the session gets exactly the
    /// user's own permissions (the intersection of the two).
    pub fn get_federation_token(
        &self,
        creds: &Credentials,
        name: &str,
        duration: Duration,
    ) -> Result<SessionCredentials, StsError> {
        const OP: &str = "GetFederationToken";
        let client = self.client(creds);
        let req = client
            .get_federation_token()
            .name(name)
            .policy(ALLOW_ALL_POLICY)
            .duration_seconds(secs(duration));
        let out = self
            .rt
            .block_on(req.send())
            .map_err(|e| service_error(OP, &self.endpoint, self.timeout, e))?;
        from_sdk(OP, out.credentials())
    }

    /// The ARN STS sees for these credentials.
    pub fn caller_arn(&self, creds: &Credentials) -> Result<String, StsError> {
        const OP: &str = "GetCallerIdentity";
        let client = self.client(creds);
        let out = self
            .rt
            .block_on(client.get_caller_identity().send())
            .map_err(|e| service_error(OP, &self.endpoint, self.timeout, e))?;
        Ok(out.arn().unwrap_or_default().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sts_call_gives_up_after_30_s_unless_told_otherwise() {
        assert_eq!(DEFAULT_TIMEOUT, Duration::from_secs(30));
        // The process's own environment: the test runner sets no
        // VAULT_STS_TIMEOUT.
        assert!(std::env::var_os("VAULT_STS_TIMEOUT").is_none());
        assert_eq!(timeout(), Duration::from_secs(30));
    }

    #[test]
    fn plain_http_only_to_this_machine() {
        for ok in [
            "https://sts.amazonaws.com",
            "https://10.0.0.1:8443",
            "http://127.0.0.1:5000",
            "http://127.9.9.9",
            "http://localhost:4566",
            "http://[::1]:4566",
        ] {
            assert!(check_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://sts.example.com",
            "http://10.0.0.1:5000",
            "http://192.168.1.2",
            "http://[fe80::1]",
            "ftp://127.0.0.1",
            "not a url",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }
}
