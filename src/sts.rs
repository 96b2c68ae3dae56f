//! STS calls through aws-sdk-sts. The SDK and its async runtime are only
//! started here, so a cache hit never pays for them.

use crate::creds::{Credentials, SessionCredentials};
use crate::secret::{MfaCode, SecretAccessKey, SessionToken};
use aws_sdk_sts::config::{BehaviorVersion, Region};
use std::time::{Duration, SystemTime};

/// Where STS is reached.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub region: String,
    /// An explicit endpoint (`AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`,
    /// `endpoint_url`); otherwise the SDK's regional endpoint.
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AssumeRole {
    pub role_arn: String,
    pub session_name: String,
    pub external_id: Option<String>,
    pub duration: Duration,
    pub tags: Vec<(String, String)>,
    pub transitive_tag_keys: Vec<String>,
    pub source_identity: Option<String>,
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
    },
    #[error("STS {operation} returned no credentials")]
    NoCredentials { operation: &'static str },
    #[error("cannot start the STS client: {0}")]
    Runtime(String),
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
                } else {
                    None
                }
            }
            StsError::Unreachable { .. } => Some(
                "check your network, and AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_STS / endpoint_url"
                    .into(),
            ),
            _ => None,
        }
    }
}

pub struct Sts {
    rt: tokio::runtime::Runtime,
    endpoint: Endpoint,
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

fn service_error<E, R>(
    operation: &'static str,
    endpoint: &Endpoint,
    e: aws_sdk_sts::error::SdkError<E, R>,
) -> StsError
where
    E: aws_sdk_sts::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_sts::error::SdkError;
    match &e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            StsError::Service {
                operation,
                code: err.code().unwrap_or("Unknown").to_string(),
                message: err.message().unwrap_or("").to_string(),
            }
        }
        _ => StsError::Unreachable {
            operation,
            endpoint: endpoint
                .url
                .clone()
                .unwrap_or_else(|| format!("sts.{}.amazonaws.com", endpoint.region)),
            detail: error_chain(&e),
        },
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
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

impl Sts {
    pub fn new(endpoint: Endpoint) -> Result<Sts, StsError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StsError::Runtime(e.to_string()))?;
        Ok(Sts { rt, endpoint })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn client(&self, creds: &Credentials) -> aws_sdk_sts::Client {
        let mut b = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.endpoint.region.clone()))
            .credentials_provider(to_sdk_creds(creds));
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
            .map_err(|e| service_error(OP, &self.endpoint, e))?;
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
            .map_err(|e| service_error(OP, &self.endpoint, e))?;
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
            .map_err(|e| service_error(OP, &self.endpoint, e))?;
        from_sdk(OP, out.credentials())
    }

    /// The ARN STS sees for these credentials.
    pub fn caller_arn(&self, creds: &Credentials) -> Result<String, StsError> {
        const OP: &str = "GetCallerIdentity";
        let client = self.client(creds);
        let out = self
            .rt
            .block_on(client.get_caller_identity().send())
            .map_err(|e| service_error(OP, &self.endpoint, e))?;
        Ok(out.arn().unwrap_or_default().to_string())
    }
}
