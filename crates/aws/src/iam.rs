//! The IAM calls vault makes (`vault rotate`, `vault hw enroll
//! --create-mfa-device`), through aws-sdk-iam (the same HTTP stack as
//! `sts.rs`). Like the STS client, it is only started by the
//! command that needs it.

use aws_sdk_iam::config::retry::RetryConfig;
use aws_sdk_iam::config::timeout::TimeoutConfig;
use aws_sdk_iam::config::{BehaviorVersion, Region};
use std::time::Duration;
use vault_base::creds::{Credentials, LongTermKey};
use vault_base::secret::SecretAccessKey;
use vault_profile::config::Profile;

/// IAM is global; its endpoint signs for us-east-1 in the `aws` partition.
const GLOBAL_REGION: &str = "us-east-1";

/// Where IAM is reached.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub region: String,
    /// An explicit endpoint; otherwise the SDK's (global) one.
    pub url: Option<String>,
}

impl Endpoint {
    /// The AWS SDKs' order for a service's endpoint: `AWS_ENDPOINT_URL_IAM`,
    /// `AWS_ENDPOINT_URL`, then the profile's `endpoint_url`. The region is
    /// us-east-1 unless the profile's region is in another partition (China,
    /// GovCloud), whose IAM lives there.
    pub fn for_profile(profile: &Profile, env: &dyn Fn(&str) -> Option<String>) -> Endpoint {
        let url = ["AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|v| env(v).filter(|u| !u.is_empty()))
            .or_else(|| profile.endpoint_url.clone().filter(|u| !u.is_empty()));
        let region = match profile.region.as_deref() {
            Some(r) if r.starts_with("cn-") || r.starts_with("us-gov-") => r.to_string(),
            _ => GLOBAL_REGION.to_string(),
        };
        Endpoint { region, url }
    }

    fn shown(&self) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| "iam.amazonaws.com".to_string())
    }
}

/// One access key of an IAM user, as ListAccessKeys reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub access_key_id: String,
    /// `Active` or `Inactive`.
    pub status: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// IAM answered with an error code (AccessDenied, LimitExceeded, ...).
    #[error("IAM {operation} failed: {code}: {message}")]
    Service {
        operation: &'static str,
        code: String,
        message: String,
    },
    /// IAM could not be reached, or its answer was lost or unreadable: the
    /// call may or may not have taken effect.
    #[error("no answer from IAM at {endpoint} for {operation}: {detail}")]
    Unreachable {
        operation: &'static str,
        endpoint: String,
        detail: String,
    },
    #[error("IAM {operation} returned no access key")]
    NoKey { operation: &'static str },
    #[error("IAM {operation} returned no virtual MFA device seed")]
    NoMfaDevice { operation: &'static str },
    #[error("cannot start the IAM client: {0}")]
    Runtime(String),
    #[error("refusing the IAM endpoint: {0}")]
    Endpoint(String),
}

impl IamError {
    pub fn hint(&self) -> Option<String> {
        match self {
            IamError::Service { code, message, .. } => {
                let m = message.to_ascii_lowercase();
                if code == "AccessDenied" && m.contains("mfa") {
                    Some("the account requires MFA for IAM: set mfa_serial in the profile (and do not pass --no-session)".into())
                } else if code == "AccessDenied" {
                    Some("the IAM user needs iam:ListAccessKeys, iam:CreateAccessKey and iam:DeleteAccessKey on itself".into())
                } else if code == "InvalidClientTokenId" && m.contains("security token") {
                    Some("IAM refuses sessions made without MFA: set mfa_serial in the profile, or pass --no-session".into())
                } else {
                    None
                }
            }
            IamError::Unreachable { .. } => Some(
                "check your network, and AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_IAM / endpoint_url"
                    .into(),
            ),
            IamError::Endpoint(_) => Some(
                "use https (check AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_IAM and endpoint_url); plain \
                 http only to 127.0.0.1, ::1 or localhost"
                    .into(),
            ),
            _ => None,
        }
    }
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

fn iam_error<E, R>(
    operation: &'static str,
    endpoint: &Endpoint,
    e: aws_sdk_iam::error::SdkError<E, R>,
) -> IamError
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_iam::error::SdkError;
    match &e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            IamError::Service {
                operation,
                code: err.code().unwrap_or("Unknown").to_string(),
                message: err.message().unwrap_or("").to_string(),
            }
        }
        _ => IamError::Unreachable {
            operation,
            endpoint: endpoint.shown(),
            detail: crate::http::error_chain(&e),
        },
    }
}

pub struct Iam {
    rt: tokio::runtime::Runtime,
    endpoint: Endpoint,
}

impl Iam {
    pub fn new(endpoint: Endpoint) -> Result<Iam, IamError> {
        if let Some(url) = &endpoint.url {
            crate::sts::check_endpoint(url).map_err(IamError::Endpoint)?;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| IamError::Runtime(e.to_string()))?;
        Ok(Iam { rt, endpoint })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A client signing with `creds`. `retry: false` makes one attempt
    /// only: a CreateAccessKey retried after a lost answer could make a
    /// second key whose secret vault never sees.
    fn client(&self, creds: &Credentials, retry: bool) -> aws_sdk_iam::Client {
        let retry = if retry {
            RetryConfig::standard()
        } else {
            RetryConfig::disabled()
        };
        let mut b = aws_sdk_iam::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.endpoint.region.clone()))
            .credentials_provider(to_sdk_creds(creds))
            .retry_config(retry)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(20))
                    .operation_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(url) = &self.endpoint.url {
            b = b.endpoint_url(url);
        }
        aws_sdk_iam::Client::from_conf(b.build())
    }

    /// The access keys of `user` (at most two: AWS allows no more).
    pub fn list_access_keys(
        &self,
        creds: &Credentials,
        user: &str,
    ) -> Result<Vec<KeyInfo>, IamError> {
        const OP: &str = "ListAccessKeys";
        let client = self.client(creds, true);
        let out = self
            .rt
            .block_on(client.list_access_keys().user_name(user).send())
            .map_err(|e| iam_error(OP, &self.endpoint, e))?;
        Ok(out
            .access_key_metadata()
            .iter()
            .filter_map(|m| {
                Some(KeyInfo {
                    access_key_id: m.access_key_id()?.to_string(),
                    status: m
                        .status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                })
            })
            .collect())
    }

    /// A new access key for `user`. Called once, never retried.
    pub fn create_access_key(
        &self,
        creds: &Credentials,
        user: &str,
    ) -> Result<LongTermKey, IamError> {
        const OP: &str = "CreateAccessKey";
        let client = self.client(creds, false);
        let out = self
            .rt
            .block_on(client.create_access_key().user_name(user).send())
            .map_err(|e| iam_error(OP, &self.endpoint, e))?;
        let k = out.access_key().ok_or(IamError::NoKey { operation: OP })?;
        Ok(LongTermKey {
            access_key_id: k.access_key_id().to_string(),
            secret_access_key: SecretAccessKey::new(k.secret_access_key()),
        })
    }

    pub fn delete_access_key(
        &self,
        creds: &Credentials,
        user: &str,
        access_key_id: &str,
    ) -> Result<(), IamError> {
        const OP: &str = "DeleteAccessKey";
        let client = self.client(creds, true);
        self.rt
            .block_on(
                client
                    .delete_access_key()
                    .user_name(user)
                    .access_key_id(access_key_id)
                    .send(),
            )
            .map_err(|e| iam_error(OP, &self.endpoint, e))?;
        Ok(())
    }
}

/// The user name in an IAM user ARN (`arn:aws:iam::ACCOUNT:user/PATH/NAME`),
/// or `None` for anything else (a role, a federated user, the root user).
pub fn user_name_from_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("iam"), Some(_), Some(_account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let path = resource.strip_prefix("user/")?;
    path.rsplit('/').next().filter(|n| !n.is_empty())
}

/// A virtual MFA device just created: its ARN and the seed AWS generated,
/// as the base32 text AWS hands out (`Base32StringSeed`). The seed exists
/// only here, until it is loaded into a token.
pub struct NewMfaDevice {
    pub serial_number: String,
    pub seed_base32: vault_base::secret::SecretBytes,
}

/// `vault hw enroll --create-mfa-device`: a virtual MFA device created,
/// enabled with two codes from the token, or deleted again.
impl Iam {
    /// CreateVirtualMFADevice `name` at path `/`. Called once, never
    /// retried: a retry after a lost answer would find the device made, and
    /// its seed gone with the answer.
    pub fn create_virtual_mfa_device(
        &self,
        creds: &Credentials,
        name: &str,
    ) -> Result<NewMfaDevice, IamError> {
        const OP: &str = "CreateVirtualMFADevice";
        let client = self.client(creds, false);
        let mut out = self
            .rt
            .block_on(
                client
                    .create_virtual_mfa_device()
                    .virtual_mfa_device_name(name)
                    .send(),
            )
            .map_err(|e| iam_error(OP, &self.endpoint, e))?;
        let mut device = out
            .virtual_mfa_device
            .take()
            .ok_or(IamError::NoMfaDevice { operation: OP })?;
        // The QR code holds the seed too: wiped, never used.
        if let Some(png) = device.qr_code_png.take() {
            drop(zeroize::Zeroizing::new(png.into_inner()));
        }
        let seed = device
            .base32_string_seed
            .take()
            .map(|b| zeroize::Zeroizing::new(b.into_inner()))
            .filter(|s| !s.is_empty())
            .ok_or(IamError::NoMfaDevice { operation: OP })?;
        Ok(NewMfaDevice {
            serial_number: std::mem::take(&mut device.serial_number),
            seed_base32: seed.into(),
        })
    }

    /// EnableMFADevice with two consecutive codes. Never retried: the codes
    /// are spent by the first attempt.
    pub fn enable_mfa_device(
        &self,
        creds: &Credentials,
        user: &str,
        serial_number: &str,
        code1: &vault_base::secret::MfaCode,
        code2: &vault_base::secret::MfaCode,
    ) -> Result<(), IamError> {
        const OP: &str = "EnableMFADevice";
        let client = self.client(creds, false);
        self.rt
            .block_on(
                client
                    .enable_mfa_device()
                    .user_name(user)
                    .serial_number(serial_number)
                    .authentication_code1(code1.expose())
                    .authentication_code2(code2.expose())
                    .send(),
            )
            .map_err(|e| iam_error(OP, &self.endpoint, e))?;
        Ok(())
    }

    /// The serial numbers of the MFA devices enabled for `user`.
    pub fn list_mfa_devices(
        &self,
        creds: &Credentials,
        user: &str,
    ) -> Result<Vec<String>, IamError> {
        const OP: &str = "ListMFADevices";
        let client = self.client(creds, true);
        let out = self
            .rt
            .block_on(client.list_mfa_devices().user_name(user).send())
            .map_err(|e| iam_error(OP, &self.endpoint, e))?;
        Ok(out
            .mfa_devices()
            .iter()
            .map(|d| d.serial_number().to_string())
            .collect())
    }

    pub fn delete_virtual_mfa_device(
        &self,
        creds: &Credentials,
        serial_number: &str,
    ) -> Result<(), IamError> {
        const OP: &str = "DeleteVirtualMFADevice";
        let client = self.client(creds, true);
        self.rt
            .block_on(
                client
                    .delete_virtual_mfa_device()
                    .serial_number(serial_number)
                    .send(),
            )
            .map_err(|e| iam_error(OP, &self.endpoint, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_come_from_iam_user_arns_only() {
        assert_eq!(
            user_name_from_arn("arn:aws:iam::123456789012:user/jonsmith"),
            Some("jonsmith")
        );
        assert_eq!(
            user_name_from_arn("arn:aws:iam::123456789012:user/division/team/jon"),
            Some("jon")
        );
        assert_eq!(
            user_name_from_arn("arn:aws-cn:iam::123456789012:user/x"),
            Some("x")
        );
        for other in [
            "arn:aws:sts::123456789012:assumed-role/Admin/vault-1",
            "arn:aws:iam::123456789012:root",
            "arn:aws:sts::123456789012:federated-user/bob",
            "arn:aws:iam::123456789012:user/",
            "arn:aws:sts::123456789012:user/moto",
            "not an arn",
        ] {
            assert_eq!(user_name_from_arn(other), None, "{other}");
        }
    }

    #[test]
    fn endpoint_order_is_the_sdks() {
        let mut profile = Profile::default();
        profile.endpoint_url = Some("http://profile".into());
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let e = Endpoint::for_profile(
            &profile,
            &env(&[
                ("AWS_ENDPOINT_URL", "http://all"),
                ("AWS_ENDPOINT_URL_IAM", "http://iam"),
            ]),
        );
        assert_eq!(e.url.as_deref(), Some("http://iam"));
        let e = Endpoint::for_profile(&profile, &env(&[("AWS_ENDPOINT_URL", "http://all")]));
        assert_eq!(e.url.as_deref(), Some("http://all"));
        let e = Endpoint::for_profile(&profile, &env(&[]));
        assert_eq!(e.url.as_deref(), Some("http://profile"));
        assert_eq!(e.region, "us-east-1");
        let e = Endpoint::for_profile(&Profile::default(), &env(&[]));
        assert_eq!(e.url, None);
        let mut cn = Profile::default();
        cn.region = Some("cn-north-1".into());
        assert_eq!(Endpoint::for_profile(&cn, &env(&[])).region, "cn-north-1");
    }
}
