//! IAM Identity Center (SSO): signing in, and role credentials from the
//! access portal.
//!
//! As the AWS CLI v2 does it: a public client registered with the OIDC
//! service, then the authorization code grant with PKCE (RFC 7636) through
//! the browser and a loopback redirect (RFC 8252), or with
//! `--use-device-code` the device authorization grant (RFC 8628); a client
//! registered with the `sso:account:access` scope also gets a refresh
//! token. Unlike the AWS CLI, nothing goes to `~/.aws/sso/cache`: the
//! access token, the refresh token and the registration live in vault's
//! memory-only session cache (the refresh token and its registration also
//! in a [`Keep`], so a reboot needs no new sign-in), and the sign-in runs
//! under a lock, so any number of parallel callers share one browser tab
//! and one CreateToken.
//!
//! This module never prints: the command layer shows the URL and opens the
//! browser through [`SignInUi`].

use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vault_base::creds::SessionCredentials;
use vault_base::error::Hinted;
use vault_base::secret::{SecretAccessKey, SecretBytes, SessionToken};
use vault_profile::config::SsoSettings;
use vault_profile::session::{self, CacheId, SessionCache};
use zeroize::Zeroizing;

/// The grant a device-code client polls with.
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The path of the loopback redirect, as the AWS CLI v2 registers it.
const CALLBACK_PATH: &str = "/oauth/callback";
/// An access token is used while it has more than this left.
const TOKEN_MIN_REMAINING: Duration = Duration::from_secs(60);
/// How long the browser has to come back to the loopback redirect.
const BROWSER_WAIT: Duration = Duration::from_secs(600);

/// How the user signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Authorization code with PKCE: the browser comes back to vault.
    AuthorizationCode,
    /// Device authorization: the user confirms a code in any browser.
    DeviceCode,
}

/// Shows the sign-in to the user (the command layer's side).
pub trait SignInUi {
    /// The user should open `url`; with the device flow, `user_code` is the
    /// code the page must show.
    fn sign_in(&self, url: &str, user_code: Option<&str>);
}

#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("IAM Identity Center endpoint: {0}")]
    Endpoint(String),
    #[error("cannot reach IAM Identity Center for {what}: {detail}")]
    Http { what: &'static str, detail: String },
    #[error("IAM Identity Center refused {what} ({status} {code}{}{description})", if .description.is_empty() { "" } else { ": " })]
    Refused {
        what: &'static str,
        status: u16,
        code: String,
        description: String,
    },
    #[error("the sign-in was denied in the browser")]
    Denied,
    #[error("the sign-in was not completed within {0} s")]
    TimedOut(u64),
    #[error("the browser came back with an answer vault did not ask for ({0})")]
    Callback(String),
    #[error("cannot listen for the browser's redirect on 127.0.0.1: {0}")]
    Listen(String),
    #[error("IAM Identity Center answered {what} with something unreadable: {detail}")]
    Answer { what: &'static str, detail: String },
}

impl SsoError {
    pub fn hint(&self) -> Option<String> {
        match self {
            SsoError::Denied | SsoError::TimedOut(_) => Some(
                "run the command again and allow the request in the browser \
                 (or add --use-device-code to sign in on another device)"
                    .into(),
            ),
            SsoError::Refused { code, .. } if code == "ForbiddenException" => Some(
                "check sso_account_id and sso_role_name: your user is not assigned this \
                 role in that account"
                    .into(),
            ),
            SsoError::Refused { code, .. } if code == "UnauthorizedException" => {
                Some("sign in again: run the command once more".into())
            }
            SsoError::Http { .. } => Some(
                "check sso_region and sso_start_url, and that this machine can reach AWS".into(),
            ),
            _ => None,
        }
    }
}

/// The OIDC service and the portal of an Identity Center region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub oidc: String,
    pub portal: String,
}

/// `AWS_ENDPOINT_URL_SSO_OIDC` / `AWS_ENDPOINT_URL_SSO` (else
/// `AWS_ENDPOINT_URL`), as the AWS SDKs read them, else the region's
/// public endpoints. Plain http only to this machine: the requests carry
/// tokens, and the answers role credentials.
pub fn endpoints(
    region: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Endpoints, SsoError> {
    let pick = |var: &str, default: String| -> Result<String, SsoError> {
        let url = env(var)
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .filter(|u| !u.is_empty())
            .unwrap_or(default);
        crate::sts::check_endpoint(&url).map_err(SsoError::Endpoint)?;
        Ok(url.trim_end_matches('/').to_string())
    };
    Ok(Endpoints {
        oidc: pick(
            "AWS_ENDPOINT_URL_SSO_OIDC",
            format!("https://oidc.{region}.amazonaws.com"),
        )?,
        portal: pick(
            "AWS_ENDPOINT_URL_SSO",
            format!("https://portal.sso.{region}.amazonaws.com"),
        )?,
    })
}

/// What one sign-in gave, as kept in the session cache.
#[derive(Serialize, Deserialize)]
struct TokenRecord {
    /// The cache id it was written under (see [`read`]).
    id: String,
    access_token: String,
    /// Unix seconds.
    expires_at: u64,
    refresh_token: Option<String>,
}

impl Drop for TokenRecord {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.access_token.zeroize();
        if let Some(r) = &mut self.refresh_token {
            r.zeroize();
        }
    }
}

/// A client registration, as kept in the session cache.
#[derive(Serialize, Deserialize)]
struct Registration {
    /// The cache id it was written under (see [`read`]).
    id: String,
    client_id: String,
    client_secret: String,
    /// Unix seconds.
    expires_at: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.client_secret.zeroize();
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where a sign-in's tokens are cached: one per sso-session (or legacy
/// start URL), region and scopes, whatever the account and role.
pub fn token_id(s: &SsoSettings) -> CacheId {
    session::sso_record_id(&[
        "token",
        s.session.as_deref().unwrap_or(""),
        &s.start_url,
        &s.region,
        &s.registration_scopes.join(","),
    ])
}

fn registration_id(s: &SsoSettings, ep: &Endpoints, flow: Flow) -> CacheId {
    session::sso_record_id(&[
        "client",
        &ep.oidc,
        &s.start_url,
        match flow {
            Flow::AuthorizationCode => "authorization_code",
            Flow::DeviceCode => "device_code",
        },
        &s.registration_scopes.join(","),
    ])
}

/// A record the cache holds under `id`. Records carry the id they were
/// written under, as session entries do: one moved to another id (another
/// sso-session's token, say) is not used.
trait Record: for<'de> Deserialize<'de> {
    fn id(&self) -> &str;
}
impl Record for TokenRecord {
    fn id(&self) -> &str {
        &self.id
    }
}
impl Record for Registration {
    fn id(&self) -> &str {
        &self.id
    }
}

fn read<T: Record>(cache: &dyn SessionCache, id: &CacheId) -> Option<T> {
    cache
        .get_raw(id)
        .ok()
        .flatten()
        .and_then(|raw| serde_json::from_slice::<T>(raw.expose()).ok())
        .filter(|r| r.id() == id.qualified())
}

fn write<T: Serialize>(cache: &dyn SessionCache, id: &CacheId, value: &T, ttl: Duration) {
    let bytes = SecretBytes::from(vault_base::secret::json_bytes(value, false));
    if let Err(e) = cache.put_raw(id, &bytes, ttl) {
        log::warn!(target: "vault", "could not cache the SSO sign-in ({e}); the next run signs in again");
    }
}

/// Forgets the access token of `s` (the portal refused it): the next call
/// refreshes or signs in.
pub fn forget_access_token(cache: &dyn SessionCache, s: &SsoSettings) {
    let id = token_id(s);
    if let Some(mut rec) = read::<TokenRecord>(cache, &id) {
        rec.expires_at = 0;
        let keep = Duration::from_secs(3600);
        if rec.refresh_token.is_some() {
            write(cache, &id, &rec, keep);
        } else {
            let _ = cache.remove(&id);
        }
    }
}

/// Where the long-lived part of a sign-in (the refresh token and the
/// client registration it belongs to) is kept across reboots (the command
/// layer gives vault's store: the keychain by default). The memory-only
/// cache holds it while the machine is up, so this is read only when that
/// cache is empty.
pub trait Keep {
    fn load(&self, item: &str) -> Result<Option<SecretBytes>, Box<dyn Hinted>>;
    fn save(&self, item: &str, value: &SecretBytes) -> Result<(), Box<dyn Hinted>>;
    /// Whether there was anything to forget.
    fn forget(&self, item: &str) -> bool;
}

/// Signs out of the sign-in of `s`, as `aws sso logout` does for the AWS
/// CLI: its access token and refresh token go from the memory-only cache
/// and from `keep`, so the next call signs in again. The client
/// registration stays: it is not a sign-in, and CreateToken needs one.
/// Returns whether there was a sign-in to forget.
pub fn sign_out(cache: &dyn SessionCache, s: &SsoSettings, keep: Option<&dyn Keep>) -> bool {
    let in_memory = cache.remove(&token_id(s)).unwrap_or(false);
    let kept = keep.is_some_and(|k| k.forget(&kept_item(s)));
    in_memory || kept
}

/// Signs out of every sign-in: every SSO record in the cache (tokens and
/// registrations) and every kept one (`keep_items`: the items of `keep`
/// under [`KEPT_PREFIX`]). Returns how many sign-ins were forgotten.
pub fn sign_out_all(
    cache: &dyn SessionCache,
    keep: Option<&dyn Keep>,
    keep_items: &[String],
) -> usize {
    let mut tokens: Vec<String> = Vec::new();
    for id in cache.ids().unwrap_or_default() {
        if id.namespace() != session::Namespace::Sso {
            continue;
        }
        let was_token = read::<TokenRecord>(cache, &id).is_some();
        if cache.remove(&id).unwrap_or(false) && was_token {
            tokens.push(id.as_str().to_string());
        }
    }
    if let Some(k) = keep {
        for item in keep_items {
            if let Some(token) = item.strip_prefix(KEPT_PREFIX) {
                if k.forget(item) && !tokens.iter().any(|t| t == token) {
                    tokens.push(token.to_string());
                }
            }
        }
    }
    tokens.len()
}

/// The prefix of the items a sign-in is kept under in [`Keep`].
pub const KEPT_PREFIX: &str = "sso/";

/// What [`Keep`] holds for a sign-in.
#[derive(Serialize, Deserialize)]
struct Kept {
    /// The token id it belongs to.
    id: String,
    refresh_token: String,
    client_id: String,
    client_secret: String,
    client_expires_at: u64,
}

impl Drop for Kept {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.refresh_token.zeroize();
        self.client_secret.zeroize();
    }
}

/// The item name a sign-in is kept under (also the sealing context).
pub fn kept_item(s: &SsoSettings) -> String {
    format!("{KEPT_PREFIX}{}", token_id(s).as_str())
}

/// Everything a sign-in needs.
pub struct SignIn<'a> {
    pub settings: &'a SsoSettings,
    pub endpoints: &'a Endpoints,
    pub cache: &'a dyn SessionCache,
    pub ui: &'a dyn SignInUi,
    pub flow: Flow,
    /// Where refresh tokens outlive a reboot; `None`: memory only.
    pub keep: Option<&'a dyn Keep>,
}

impl SignIn<'_> {
    /// A valid access token: the cached one, else a refreshed one, else one
    /// from a new sign-in. The caller holds the sign-in's lock.
    pub fn access_token(&self) -> Result<Zeroizing<String>, SsoError> {
        let id = token_id(self.settings);
        let now = unix_now();
        let cached = read::<TokenRecord>(self.cache, &id);
        if let Some(rec) = &cached {
            if rec.expires_at > now + TOKEN_MIN_REMAINING.as_secs() {
                log::debug!(target: "vault", "using the cached SSO access token ({} s left)", rec.expires_at - now);
                return Ok(Zeroizing::new(rec.access_token.clone()));
            }
        }
        if let Some(refresh) = cached.as_ref().and_then(|r| r.refresh_token.clone()) {
            let refresh = Zeroizing::new(refresh);
            match self.refresh(&refresh, None) {
                Ok(token) => return Ok(token),
                Err(e) => {
                    log::debug!(target: "vault", "the SSO refresh token was refused ({e}); signing in again");
                }
            }
        } else if let Some(kept) = self.kept() {
            // Nothing in memory (a reboot): the kept refresh token, if any.
            let refresh = Zeroizing::new(kept.refresh_token.clone());
            match self.refresh(&refresh, Some(&kept)) {
                Ok(token) => return Ok(token),
                Err(e) => {
                    log::debug!(target: "vault", "the kept SSO refresh token was refused ({e}); signing in again");
                    if let Some(k) = self.keep {
                        k.forget(&kept_item(self.settings));
                    }
                }
            }
        }
        self.sign_in()
    }

    fn kept(&self) -> Option<Kept> {
        let keep = self.keep?;
        match keep.load(&kept_item(self.settings)) {
            Ok(Some(bytes)) => serde_json::from_slice::<Kept>(bytes.expose())
                .ok()
                .filter(|k| k.id == token_id(self.settings).qualified()),
            Ok(None) => None,
            Err(e) => {
                log::warn!(target: "vault", "cannot read the kept SSO sign-in ({e}); signing in again");
                None
            }
        }
    }

    fn registration(&self, flow: Flow, redirect: Option<&str>) -> Result<Registration, SsoError> {
        let id = registration_id(self.settings, self.endpoints, flow);
        if let Some(r) = read::<Registration>(self.cache, &id) {
            // A registration is good for 90 days; keep a day's margin.
            if r.expires_at > unix_now() + 86_400 {
                return Ok(r);
            }
        }
        let mut body = serde_json::json!({
            "clientName": format!("vault-{}", unix_now()),
            "clientType": "public",
        });
        if !self.settings.registration_scopes.is_empty() {
            body["scopes"] = self.settings.registration_scopes.clone().into();
        }
        match flow {
            Flow::AuthorizationCode => {
                body["grantTypes"] = serde_json::json!(["authorization_code", "refresh_token"]);
                body["redirectUris"] = serde_json::json!([redirect.unwrap_or_default()]);
                body["issuerUrl"] = self.settings.start_url.clone().into();
            }
            Flow::DeviceCode => {
                body["grantTypes"] = serde_json::json!([DEVICE_GRANT, "refresh_token"]);
            }
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Answer {
            client_id: String,
            client_secret: String,
            client_secret_expires_at: u64,
        }
        let a: Answer = self.oidc("RegisterClient", "/client/register", &body)?;
        let reg = Registration {
            id: id.qualified(),
            client_id: a.client_id.clone(),
            client_secret: a.client_secret.clone(),
            expires_at: a.client_secret_expires_at,
        };
        let ttl = Duration::from_secs(reg.expires_at.saturating_sub(unix_now()));
        write(self.cache, &id, &reg, ttl);
        Ok(reg)
    }

    fn sign_in(&self) -> Result<Zeroizing<String>, SsoError> {
        match self.flow {
            Flow::AuthorizationCode => self.sign_in_with_code(),
            Flow::DeviceCode => self.sign_in_with_device_code(),
        }
    }

    fn sign_in_with_code(&self) -> Result<Zeroizing<String>, SsoError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| SsoError::Listen(e.to_string()))?;
        let port = listener
            .local_addr()
            .map_err(|e| SsoError::Listen(e.to_string()))?
            .port();
        // Registered without a port: RFC 8252 section 7.3 lets the client
        // pick the loopback port per request.
        let registered = format!("http://127.0.0.1{CALLBACK_PATH}");
        let redirect = format!("http://127.0.0.1:{port}{CALLBACK_PATH}");
        let reg = self.registration(Flow::AuthorizationCode, Some(&registered))?;
        let verifier = random_urlsafe(64);
        let challenge = base64url(&sha256(verifier.as_bytes()));
        let state = random_urlsafe(32);
        let mut query = vec![
            ("response_type", "code".to_string()),
            ("client_id", reg.client_id.clone()),
            ("redirect_uri", redirect.clone()),
            ("state", state.to_string()),
            ("code_challenge_method", "S256".to_string()),
            ("code_challenge", challenge),
        ];
        if !self.settings.registration_scopes.is_empty() {
            query.push(("scopes", self.settings.registration_scopes.join(" ")));
        }
        let url = format!("{}/authorize?{}", self.endpoints.oidc, form_encode(&query));
        self.ui.sign_in(&url, None);
        let code = wait_for_code(&listener, &state, BROWSER_WAIT)?;
        let req = TokenRequest {
            code: Some(&code),
            redirect_uri: Some(&redirect),
            code_verifier: Some(&verifier),
            ..TokenRequest::new(&reg, "authorization_code")
        };
        self.token(&req, reg.expires_at)
    }

    fn sign_in_with_device_code(&self) -> Result<Zeroizing<String>, SsoError> {
        let reg = self.registration(Flow::DeviceCode, None)?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Started {
            device_code: String,
            user_code: String,
            verification_uri: String,
            verification_uri_complete: Option<String>,
            expires_in: u64,
            interval: Option<u64>,
        }
        let started: Started = self.oidc(
            "StartDeviceAuthorization",
            "/device_authorization",
            &DeviceRequest {
                client_id: &reg.client_id,
                client_secret: &reg.client_secret,
                start_url: &self.settings.start_url,
            },
        )?;
        self.ui.sign_in(
            started
                .verification_uri_complete
                .as_deref()
                .unwrap_or(&started.verification_uri),
            Some(&started.user_code),
        );
        let deadline = Instant::now() + Duration::from_secs(started.expires_in);
        let mut interval = Duration::from_secs(started.interval.unwrap_or(5).max(1));
        let req = TokenRequest {
            device_code: Some(&started.device_code),
            ..TokenRequest::new(&reg, DEVICE_GRANT)
        };
        loop {
            std::thread::sleep(interval);
            match self.token(&req, reg.expires_at) {
                Ok(t) => return Ok(t),
                Err(SsoError::Refused { code, .. }) if code == "AuthorizationPendingException" => {}
                // RFC 8628 section 3.5: slow down by 5 s for this code.
                Err(SsoError::Refused { code, .. }) if code == "SlowDownException" => {
                    interval += Duration::from_secs(5);
                }
                Err(SsoError::Refused { code, .. }) if code == "AccessDeniedException" => {
                    return Err(SsoError::Denied)
                }
                Err(SsoError::Refused { code, .. }) if code == "ExpiredTokenException" => {
                    return Err(SsoError::TimedOut(started.expires_in))
                }
                Err(e) => return Err(e),
            }
            if Instant::now() >= deadline {
                return Err(SsoError::TimedOut(started.expires_in));
            }
        }
    }

    fn refresh(
        &self,
        refresh_token: &str,
        kept: Option<&Kept>,
    ) -> Result<Zeroizing<String>, SsoError> {
        // The registration the token was issued to: either flow's, or the
        // one kept with it.
        let reg = [Flow::AuthorizationCode, Flow::DeviceCode]
            .into_iter()
            .find_map(|f| {
                read::<Registration>(
                    self.cache,
                    &registration_id(self.settings, self.endpoints, f),
                )
            })
            .or_else(|| {
                kept.map(|k| Registration {
                    id: String::new(),
                    client_id: k.client_id.clone(),
                    client_secret: k.client_secret.clone(),
                    expires_at: k.client_expires_at,
                })
            })
            .ok_or_else(|| SsoError::Callback("no client registration to refresh with".into()))?;
        log::debug!(target: "vault", "refreshing the SSO access token");
        let req = TokenRequest {
            refresh_token: Some(refresh_token),
            ..TokenRequest::new(&reg, "refresh_token")
        };
        self.token(&req, reg.expires_at)
    }

    /// CreateToken, and the answer kept (a refresh token also in the
    /// [`Keep`], with the registration, good until `client_expires_at`).
    fn token(
        &self,
        req: &TokenRequest<'_>,
        client_expires_at: u64,
    ) -> Result<Zeroizing<String>, SsoError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Answer {
            access_token: String,
            expires_in: u64,
            refresh_token: Option<String>,
        }
        impl Drop for Answer {
            fn drop(&mut self) {
                use zeroize::Zeroize;
                self.access_token.zeroize();
                if let Some(r) = &mut self.refresh_token {
                    r.zeroize();
                }
            }
        }
        let a: Answer = self.oidc("CreateToken", "/token", req)?;
        if let (Some(keep), Some(refresh)) = (self.keep, &a.refresh_token) {
            self.keep_refresh_token(keep, refresh, req, client_expires_at);
        }
        let id = token_id(self.settings);
        let rec = TokenRecord {
            id: id.qualified(),
            access_token: a.access_token.clone(),
            expires_at: unix_now() + a.expires_in,
            refresh_token: a.refresh_token.clone(),
        };
        // Kept past the access token's end while a refresh token can renew it.
        let ttl = if rec.refresh_token.is_some() {
            Duration::from_secs(a.expires_in.max(90 * 86_400))
        } else {
            Duration::from_secs(a.expires_in)
        };
        write(self.cache, &id, &rec, ttl);
        Ok(Zeroizing::new(rec.access_token.clone()))
    }

    /// Keeps the new refresh token with the registration it belongs to.
    fn keep_refresh_token(
        &self,
        keep: &dyn Keep,
        refresh: &str,
        req: &TokenRequest<'_>,
        client_expires_at: u64,
    ) {
        let kept = Kept {
            id: token_id(self.settings).qualified(),
            refresh_token: refresh.to_string(),
            client_id: req.client_id.to_string(),
            client_secret: req.client_secret.to_string(),
            client_expires_at,
        };
        let bytes = SecretBytes::from(vault_base::secret::json_bytes(&kept, false));
        if let Err(e) = keep.save(&kept_item(self.settings), &bytes) {
            log::warn!(target: "vault", "cannot keep the SSO refresh token ({e}); after a reboot the next use signs in again");
        }
    }

    /// One POST to the OIDC service. Bodies are typed structs of borrowed
    /// strings, written once into a zeroized buffer: a `serde_json::Value`
    /// would free copies of the client secret and the tokens.
    fn oidc<T: for<'de> Deserialize<'de>>(
        &self,
        what: &'static str,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<T, SsoError> {
        let url = format!("{}{path}", self.endpoints.oidc);
        let (status, answer) = crate::http::send(crate::http::Request {
            method: "POST",
            url: &url,
            headers: &[("content-type", "application/json")],
            body: Some(vault_base::secret::json_bytes(body, false)),
        })
        .map_err(|detail| SsoError::Http { what, detail })?;
        parse_answer(what, status, &answer)
    }
}

/// A CreateToken request: one grant's fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenRequest<'a> {
    client_id: &'a str,
    client_secret: &'a str,
    grant_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect_uri: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code_verifier: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
}

impl<'a> TokenRequest<'a> {
    fn new(reg: &'a Registration, grant_type: &'a str) -> TokenRequest<'a> {
        TokenRequest {
            client_id: &reg.client_id,
            client_secret: &reg.client_secret,
            grant_type,
            code: None,
            redirect_uri: None,
            code_verifier: None,
            device_code: None,
            refresh_token: None,
        }
    }
}

/// A StartDeviceAuthorization request.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceRequest<'a> {
    client_id: &'a str,
    client_secret: &'a str,
    start_url: &'a str,
}

fn parse_answer<T: for<'de> Deserialize<'de>>(
    what: &'static str,
    status: u16,
    body: &[u8],
) -> Result<T, SsoError> {
    if status == 200 {
        return serde_json::from_slice(body).map_err(|e| SsoError::Answer {
            what,
            detail: e.to_string(),
        });
    }
    #[derive(Deserialize, Default)]
    struct ErrorBody {
        error: Option<String>,
        error_description: Option<String>,
        message: Option<String>,
        #[serde(rename = "__type")]
        kind: Option<String>,
    }
    let e: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let code = e
        .kind
        .or_else(|| e.error.as_deref().map(error_shape))
        .unwrap_or_else(|| format!("HTTP {status}"));
    Err(SsoError::Refused {
        what,
        status,
        code,
        description: e.error_description.or(e.message).unwrap_or_default(),
    })
}

/// The service's exception name for an OAuth error code (the body carries
/// the code; the shape name is in a header hyper hands us as the status).
fn error_shape(error: &str) -> String {
    match error {
        "authorization_pending" => "AuthorizationPendingException",
        "slow_down" => "SlowDownException",
        "access_denied" => "AccessDeniedException",
        "expired_token" => "ExpiredTokenException",
        "invalid_grant" => "InvalidGrantException",
        "invalid_client" => "InvalidClientException",
        "invalid_request" => "InvalidRequestException",
        "invalid_scope" => "InvalidScopeException",
        "unauthorized_client" => "UnauthorizedClientException",
        "unsupported_grant_type" => "UnsupportedGrantTypeException",
        other => other,
    }
    .to_string()
}

/// One GET of the portal with the access token; the answer's body.
fn portal_get(
    what: &'static str,
    endpoints: &Endpoints,
    path: &str,
    query: &[(&str, String)],
    access_token: &str,
) -> Result<Zeroizing<Vec<u8>>, SsoError> {
    let url = format!("{}{path}?{}", endpoints.portal, form_encode(query));
    let (status, body) = crate::http::send(crate::http::Request {
        method: "GET",
        url: &url,
        headers: &[("x-amz-sso_bearer_token", access_token)],
        body: None,
    })
    .map_err(|detail| SsoError::Http { what, detail })?;
    if status != 200 {
        // The portal names its errors in the x-amzn-ErrorType header; the
        // status tells them apart as well.
        let mut e = parse_answer::<serde_json::Value>(what, status, &body)
            .err()
            .unwrap_or(SsoError::Answer {
                what,
                detail: format!("HTTP {status}"),
            });
        if let SsoError::Refused { code, .. } = &mut e {
            if code.starts_with("HTTP ") {
                *code = match status {
                    401 => "UnauthorizedException",
                    403 => "ForbiddenException",
                    429 => "TooManyRequestsException",
                    _ => "InvalidRequestException",
                }
                .to_string();
            }
        }
        return Err(e);
    }
    Ok(body)
}

/// An account and role the signed-in user may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub account_id: String,
    pub account_name: String,
    pub role_name: String,
}

/// Every account and role of the signed-in user (ListAccounts, then
/// ListAccountRoles per account, every page of each).
pub fn assignments(endpoints: &Endpoints, access_token: &str) -> Result<Vec<Assignment>, SsoError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Account {
        account_id: String,
        account_name: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Accounts {
        #[serde(default)]
        account_list: Vec<Account>,
        next_token: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Role {
        role_name: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Roles {
        #[serde(default)]
        role_list: Vec<Role>,
        next_token: Option<String>,
    }
    fn pages<T: for<'de> Deserialize<'de>>(
        what: &'static str,
        endpoints: &Endpoints,
        path: &str,
        query: &[(&str, String)],
        token: &str,
        next: impl Fn(&T) -> Option<String>,
    ) -> Result<Vec<T>, SsoError> {
        let mut out = Vec::new();
        let mut next_token: Option<String> = None;
        // A bound on pages, so a portal that never ends the list cannot loop.
        for _ in 0..1000 {
            let mut q = query.to_vec();
            q.push(("max_result", "100".to_string()));
            if let Some(t) = &next_token {
                q.push(("next_token", t.clone()));
            }
            let body = portal_get(what, endpoints, path, &q, token)?;
            let page: T = serde_json::from_slice(&body).map_err(|e| SsoError::Answer {
                what,
                detail: e.to_string(),
            })?;
            next_token = next(&page);
            out.push(page);
            if next_token.is_none() {
                break;
            }
        }
        Ok(out)
    }
    let mut out = Vec::new();
    let accounts = pages::<Accounts>(
        "ListAccounts",
        endpoints,
        "/assignment/accounts",
        &[],
        access_token,
        |p| p.next_token.clone(),
    )?;
    for account in accounts.iter().flat_map(|p| &p.account_list) {
        let roles = pages::<Roles>(
            "ListAccountRoles",
            endpoints,
            "/assignment/roles",
            &[("account_id", account.account_id.clone())],
            access_token,
            |p| p.next_token.clone(),
        )?;
        for role in roles.iter().flat_map(|p| &p.role_list) {
            out.push(Assignment {
                account_id: account.account_id.clone(),
                account_name: account
                    .account_name
                    .clone()
                    .unwrap_or_else(|| account.account_id.clone()),
                role_name: role.role_name.clone(),
            });
        }
    }
    Ok(out)
}

/// GetRoleCredentials from the portal.
pub fn role_credentials(
    settings: &SsoSettings,
    endpoints: &Endpoints,
    access_token: &str,
) -> Result<SessionCredentials, SsoError> {
    let body = portal_get(
        "GetRoleCredentials",
        endpoints,
        "/federation/credentials",
        &[
            ("account_id", settings.account_id.clone()),
            ("role_name", settings.role_name.clone()),
        ],
        access_token,
    )?;
    let what = "GetRoleCredentials";
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Outer {
        role_credentials: Inner,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Inner {
        access_key_id: String,
        secret_access_key: String,
        session_token: String,
        /// Milliseconds since the epoch.
        expiration: u64,
    }
    let mut o: Outer = serde_json::from_slice(&body).map_err(|e| SsoError::Answer {
        what,
        detail: e.to_string(),
    })?;
    Ok(SessionCredentials {
        access_key_id: std::mem::take(&mut o.role_credentials.access_key_id),
        secret_access_key: SecretAccessKey::new(std::mem::take(
            &mut o.role_credentials.secret_access_key,
        )),
        session_token: SessionToken::new(std::mem::take(&mut o.role_credentials.session_token)),
        expiration: UNIX_EPOCH + Duration::from_millis(o.role_credentials.expiration),
    })
}

/// Waits for the browser's GET of the redirect URI and returns its code,
/// answering every request with a short page.
fn wait_for_code(
    listener: &TcpListener,
    state: &str,
    wait: Duration,
) -> Result<Zeroizing<String>, SsoError> {
    listener
        .set_nonblocking(true)
        .map_err(|e| SsoError::Listen(e.to_string()))?;
    let deadline = Instant::now() + wait;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Some(answer) = callback(stream, state)? {
                    return Ok(answer);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(SsoError::TimedOut(wait.as_secs()));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(SsoError::Listen(e.to_string())),
        }
    }
}

/// What a request to the loopback listener says.
#[derive(Debug, PartialEq, Eq)]
pub enum Callback {
    /// Not the redirect (a favicon, a probe): answered 404, still waiting.
    NotOurs,
    /// The redirect of this sign-in, with its code.
    Code(Zeroizing<String>),
    /// The user said no.
    Denied,
    /// The redirect path, but not this sign-in's answer.
    Refused(String),
}

/// Judges a request head read by the loopback listener (any local process
/// can connect to it): only `GET /oauth/callback` with this sign-in's
/// `state` and a code is an answer.
pub fn judge_callback(head: &[u8], state: &str) -> Callback {
    let text = String::from_utf8_lossy(head);
    let target = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("GET "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != CALLBACK_PATH {
        return Callback::NotOurs;
    }
    let params = form_decode(query);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("state") != Some(state) {
        return Callback::Refused("a redirect with another state".into());
    }
    if let Some(error) = get("error") {
        return if error == "access_denied" {
            Callback::Denied
        } else {
            Callback::Refused(format!("error {error}"))
        };
    }
    match get("code").filter(|c| !c.is_empty()) {
        Some(code) => Callback::Code(Zeroizing::new(code.to_string())),
        None => Callback::Refused("a redirect without a code".into()),
    }
}

/// One request to the loopback listener: `Some(code)` for the redirect
/// with this sign-in's state, `None` for anything else (a favicon).
fn callback(mut stream: TcpStream, state: &str) -> Result<Option<Zeroizing<String>>, SsoError> {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Zeroizing::new(vec![0u8; 8192]);
    let mut n = 0;
    while n < head.len() {
        match stream.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                n += k;
                if head[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    match judge_callback(&head[..n], state) {
        Callback::NotOurs => {
            let _ = page(&mut stream, 404, "Not found.");
            Ok(None)
        }
        Callback::Code(code) => {
            let _ = page(
                &mut stream,
                200,
                "vault is signed in to IAM Identity Center. You can close this tab.",
            );
            Ok(Some(code))
        }
        Callback::Denied => {
            let _ = page(
                &mut stream,
                200,
                "The sign-in was denied. You can close this tab.",
            );
            Err(SsoError::Denied)
        }
        Callback::Refused(why) => {
            let _ = page(&mut stream, 400, "This is not the sign-in vault started.");
            Err(SsoError::Callback(why))
        }
    }
}

fn page(stream: &mut TcpStream, status: u16, text: &str) -> std::io::Result<()> {
    let body = format!("<!doctype html><html><body><p>{text}</p></body></html>");
    write!(
        stream,
        "HTTP/1.1 {status} {}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        if status == 200 { "OK" } else { "Error" },
        body.len()
    )
}

fn random_urlsafe(bytes: usize) -> Zeroizing<String> {
    use rand::RngCore;
    let mut b = Zeroizing::new(vec![0u8; bytes]);
    rand::rngs::OsRng.fill_bytes(&mut b);
    // 64 random bytes give an 86-character verifier, within RFC 7636's 43..128.
    Zeroizing::new(base64url(&b))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

/// Base64url without padding (RFC 4648 section 5), as PKCE wants it.
fn base64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// `application/x-www-form-urlencoded` (unreserved characters as they are).
fn form_encode(pairs: &[(&str, String)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn form_decode(query: &str) -> Vec<(String, String)> {
    let dec = |s: &str| {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = |c: u8| (c as char).to_digit(16);
                    match (hex(b[i + 1]), hex(b[i + 2])) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_of_rfc_7636_appendix_b() {
        assert_eq!(
            base64url(&sha256(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        let v = random_urlsafe(64);
        assert_eq!(v.len(), 86);
        assert!(v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn only_this_sign_ins_redirect_is_an_answer() {
        let head = |t: &str| format!("GET {t} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes();
        assert_eq!(
            judge_callback(&head("/oauth/callback?code=c%2B1&state=s"), "s"),
            Callback::Code(Zeroizing::new("c+1".into()))
        );
        assert_eq!(
            judge_callback(&head("/favicon.ico"), "s"),
            Callback::NotOurs
        );
        assert!(matches!(
            judge_callback(&head("/oauth/callback?code=c&state=x"), "s"),
            Callback::Refused(_)
        ));
        assert!(matches!(
            judge_callback(&head("/oauth/callback?state=s"), "s"),
            Callback::Refused(_)
        ));
        assert_eq!(
            judge_callback(&head("/oauth/callback?error=access_denied&state=s"), "s"),
            Callback::Denied
        );
        assert_eq!(judge_callback(b"\xff\xfe", "s"), Callback::NotOurs);
    }

    #[test]
    fn forms_round_trip() {
        let q = form_encode(&[
            ("redirect_uri", "http://127.0.0.1:5/oauth/callback".into()),
            ("scopes", "sso:account:access other".into()),
        ]);
        assert_eq!(
            q,
            "redirect_uri=http%3A%2F%2F127.0.0.1%3A5%2Foauth%2Fcallback&scopes=sso%3Aaccount%3Aaccess%20other"
        );
        let back = form_decode(&q);
        assert_eq!(back[0].1, "http://127.0.0.1:5/oauth/callback");
        assert_eq!(back[1].1, "sso:account:access other");
        assert_eq!(
            form_decode("a=%zz&b=%4"),
            vec![("a".into(), "%zz".into()), ("b".into(), "%4".into())]
        );
    }

    #[test]
    fn endpoints_default_to_the_region_and_refuse_plain_http_elsewhere() {
        let none = |_: &str| None;
        let ep = endpoints("eu-west-1", &none).unwrap();
        assert_eq!(ep.oidc, "https://oidc.eu-west-1.amazonaws.com");
        assert_eq!(ep.portal, "https://portal.sso.eu-west-1.amazonaws.com");
        let local =
            |k: &str| (k == "AWS_ENDPOINT_URL_SSO_OIDC").then(|| "http://127.0.0.1:9/".to_string());
        assert_eq!(
            endpoints("eu-west-1", &local).unwrap().oidc,
            "http://127.0.0.1:9"
        );
        let remote = |k: &str| (k == "AWS_ENDPOINT_URL").then(|| "http://example.com".to_string());
        assert!(endpoints("eu-west-1", &remote).is_err());
    }

    #[test]
    fn a_token_moved_to_another_sessions_id_is_not_used() {
        let settings = |start: &str| SsoSettings {
            session: Some("corp".into()),
            start_url: start.into(),
            region: "eu-west-1".into(),
            registration_scopes: vec![],
            account_id: "1".into(),
            role_name: "r".into(),
        };
        let (a, b) = (settings("https://a/start"), settings("https://b/start"));
        let cache = vault_profile::session::MemoryCache::default();
        let rec = TokenRecord {
            id: token_id(&a).qualified(),
            access_token: "t".into(),
            expires_at: unix_now() + 3600,
            refresh_token: None,
        };
        write(&cache, &token_id(&a), &rec, Duration::from_secs(60));
        assert!(read::<TokenRecord>(&cache, &token_id(&a)).is_some());
        let moved = cache.get_raw(&token_id(&a)).unwrap().unwrap();
        cache
            .put_raw(&token_id(&b), &moved, Duration::from_secs(60))
            .unwrap();
        assert!(read::<TokenRecord>(&cache, &token_id(&b)).is_none());
    }

    #[test]
    fn oauth_errors_become_the_services_exception_names() {
        let e = parse_answer::<serde_json::Value>(
            "CreateToken",
            400,
            br#"{"error":"authorization_pending","error_description":"wait"}"#,
        )
        .unwrap_err();
        assert!(
            matches!(e, SsoError::Refused { ref code, .. } if code == "AuthorizationPendingException"),
            "{e}"
        );
        let e = parse_answer::<serde_json::Value>("x", 500, b"garbage").unwrap_err();
        assert!(
            matches!(e, SsoError::Refused { ref code, .. } if code == "HTTP 500"),
            "{e}"
        );
    }
}
