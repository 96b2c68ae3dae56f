//! Credential providers: stored keys → [cached] GetSessionToken (with MFA)
//! → [cached] AssumeRole … → credentials for the target profile.
//!
//! Each step's result is cached under an id that depends only on what makes
//! two requests interchangeable, so every role profile built on the same
//! source keys and MFA device shares one MFA session. Each step takes a
//! cross-process lock before calling STS and looks in the cache again once
//! it holds it: of N processes started at once, one calls STS (and asks for
//! one code), the others wait and reuse its result.

use crate::mfa::{self, MfaError, MfaSources};
use crate::sts::{Sts, StsCalls, StsError};
use std::cell::OnceCell;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use vault_base::creds::{Credentials, LongTermKey};
use vault_base::lock::Lock;
use vault_profile::plan::{
    process_cache_id, sso_cache_id, Endpoint, Plan, RootSource, ROLE_CHAINING_MAX,
};
use vault_profile::session::{self, CacheError, CacheId, CachedSession, SessionCache, SessionKind};

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("no credentials stored for profile {profile:?}")]
    NoStoredKey { profile: String },
    /// The root's `credential_process` failed or printed something unusable.
    #[error("credential_process of profile {profile:?} {problem}")]
    Process { profile: String, problem: String },
    #[error(transparent)]
    Store(#[from] vault_secrets::store::StoreError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Sts(#[from] StsError),
    #[error(transparent)]
    Mfa(#[from] MfaError),
    /// The hardware token could not give the key (absent, PIN, touch, removed).
    #[error("{message}")]
    Token {
        message: String,
        hint: Option<String>,
    },
    #[error("cannot take the session lock {path}: {detail}")]
    Lock { path: PathBuf, detail: String },
    #[error("profile {profile:?}: {source}")]
    Sso {
        profile: String,
        #[source]
        source: crate::sso::SsoError,
    },
}

impl ProviderError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ProviderError::NoStoredKey { profile } => {
                Some(format!("add them with `vault add {profile}`"))
            }
            ProviderError::Process { .. } => Some(
                "run the command by hand: it must print one JSON object \
                 ({\"Version\": 1, \"AccessKeyId\": …, \"SecretAccessKey\": …}) on stdout"
                    .into(),
            ),
            ProviderError::Store(e) => e.hint().map(str::to_string),
            ProviderError::Sts(e) => e.hint(),
            ProviderError::Mfa(e) => e.hint().map(str::to_string),
            ProviderError::Token { hint, .. } => hint.clone(),
            ProviderError::Sso { source, .. } => source.hint(),
            ProviderError::Lock { .. } => Some(
                "vault keeps its lock files in $XDG_RUNTIME_DIR/vault/locks (else \
                 ~/.cache/vault/locks): that folder must be writable"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Knobs from the command line and environment.
#[derive(Debug, Clone)]
pub struct Options {
    /// Reuse a cached session only while more than this remains (aws-vault: 5 min).
    pub min_remaining: Duration,
    pub lock_dir: PathBuf,
}

/// Reads a profile's long-term key: from the store, or by unwrapping its
/// envelope with a token.
pub type KeySource<'a> = dyn Fn(&str) -> Result<Option<LongTermKey>, ProviderError> + 'a;

/// Makes the STS client the provider calls.
pub type ConnectSts<'a> = dyn Fn(&Endpoint) -> Result<Box<dyn StsCalls + 'a>, StsError> + 'a;

pub struct Provider<'a> {
    pub cache: &'a dyn SessionCache,
    /// Reads a profile's long-term key; called only when STS must be called.
    pub keys: &'a KeySource<'a>,
    pub mfa: MfaSources<'a>,
    pub opts: Options,
    sts: OnceCell<Box<dyn StsCalls + 'a>>,
    /// Makes the STS client for an endpoint: the SDK's, or a test double.
    connect: Box<ConnectSts<'a>>,
    /// Things the user should know (capped durations), printed by the CLI.
    pub warnings: std::cell::RefCell<Vec<String>>,
    /// How an SSO sign-in reaches the user, and which flow it uses.
    sso: Option<(
        &'a dyn crate::sso::SignInUi,
        crate::sso::Flow,
        Option<&'a dyn crate::sso::Keep>,
    )>,
}

impl<'a> Provider<'a> {
    pub fn new(
        cache: &'a dyn SessionCache,
        keys: &'a KeySource<'a>,
        mfa: MfaSources<'a>,
        opts: Options,
    ) -> Provider<'a> {
        Provider {
            cache,
            keys,
            mfa,
            opts,
            sts: OnceCell::new(),
            connect: Box::new(|endpoint| Ok(Box::new(Sts::new(endpoint.clone())?))),
            warnings: Default::default(),
            sso: None,
        }
    }

    /// Lets SSO profiles sign in through `ui` with `flow`.
    pub fn with_sso(
        mut self,
        ui: &'a dyn crate::sso::SignInUi,
        flow: crate::sso::Flow,
        keep: Option<&'a dyn crate::sso::Keep>,
    ) -> Provider<'a> {
        self.sso = Some((ui, flow, keep));
        self
    }

    /// The same provider calling `connect`'s client instead of the SDK's.
    pub fn with_sts(
        mut self,
        connect: impl Fn(&Endpoint) -> Result<Box<dyn StsCalls + 'a>, StsError> + 'a,
    ) -> Provider<'a> {
        self.connect = Box::new(connect);
        self
    }

    fn sts(&self, endpoint: &Endpoint) -> Result<&dyn StsCalls, ProviderError> {
        if let Some(s) = self.sts.get() {
            return Ok(s.as_ref());
        }
        let s = (self.connect)(endpoint)?;
        Ok(self.sts.get_or_init(|| s).as_ref())
    }

    fn lock(&self, name: &str) -> Result<Lock, ProviderError> {
        Lock::acquire(&self.opts.lock_dir, name).map_err(|e| ProviderError::Lock {
            path: self.opts.lock_dir.join(name),
            detail: e.to_string(),
        })
    }

    fn fresh(&self, id: &CacheId) -> Result<Option<CachedSession>, ProviderError> {
        Ok(session::get(self.cache, id)?
            .filter(|s| s.creds.remaining(SystemTime::now()) > self.opts.min_remaining))
    }

    /// Caches a new session. Failing to is no reason to withhold
    /// credentials STS has already issued (and an MFA code already spent):
    /// a full kernel keyring (its quota is per user) only costs a new STS
    /// call next time.
    fn keep(&self, id: &CacheId, s: &CachedSession) {
        if let Err(e) = session::put(self.cache, id, s) {
            log::warn!(target: "vault", "could not cache the {} session of {} ({e}); the next run will call STS again",
                s.kind.label(), s.profile);
        }
    }

    fn root_key(&self, plan: &Plan) -> Result<Credentials, ProviderError> {
        let key = (self.keys)(&plan.root_profile)?.ok_or_else(|| ProviderError::NoStoredKey {
            profile: plan.root_profile.clone(),
        })?;
        log::debug!(target: "vault", "using stored key {} of profile {}",
            vault_base::secret::mask_key_id(&key.access_key_id), plan.root_profile);
        Ok(Credentials::LongTerm(key))
    }

    fn root_credentials(&self, plan: &Plan) -> Result<Credentials, ProviderError> {
        match &plan.root {
            RootSource::Keys => self.root_key(plan),
            RootSource::Process { command } => self.process(plan, command),
            RootSource::Sso(settings) => self.sso_role(plan, settings),
        }
    }

    /// The SSO role credentials of the root, cached like any session. The
    /// sign-in runs under its own lock, so parallel callers of every
    /// profile on this sign-in share one browser tab and one CreateToken.
    fn sso_role(
        &self,
        plan: &Plan,
        settings: &vault_profile::config::SsoSettings,
    ) -> Result<Credentials, ProviderError> {
        let id = sso_cache_id(settings);
        if let Some(s) = self.fresh(&id)? {
            log::debug!(target: "vault", "reusing cached SSO role credentials of {}", s.profile);
            return Ok(Credentials::Session(s.creds));
        }
        let _lock = self.lock(id.as_str())?;
        if let Some(s) = self.fresh(&id)? {
            return Ok(Credentials::Session(s.creds));
        }
        let fail = |source| ProviderError::Sso {
            profile: plan.root_profile.clone(),
            source,
        };
        let endpoints =
            crate::sso::endpoints(&settings.region, &vault_profile::config::process_env)
                .map_err(fail)?;
        let (ui, flow, keep) = self.sso.ok_or_else(|| {
            fail(crate::sso::SsoError::Callback(
                "this command cannot sign in to IAM Identity Center".into(),
            ))
        })?;
        let sign_in = crate::sso::SignIn {
            settings,
            endpoints: &endpoints,
            cache: self.cache,
            ui,
            flow,
            keep,
        };
        let creds = {
            let token_lock = crate::sso::token_id(settings);
            let _signing_in = self.lock(token_lock.as_str())?;
            let token = sign_in.access_token().map_err(fail)?;
            match crate::sso::role_credentials(settings, &endpoints, &token) {
                // A token the portal no longer takes (signed out, revoked):
                // sign in once more.
                Err(crate::sso::SsoError::Refused { code, .. })
                    if code == "UnauthorizedException" =>
                {
                    crate::sso::forget_access_token(self.cache, settings);
                    let token = sign_in.access_token().map_err(fail)?;
                    crate::sso::role_credentials(settings, &endpoints, &token).map_err(fail)?
                }
                other => other.map_err(fail)?,
            }
        };
        log::debug!(target: "vault", "got SSO role credentials {} for {}/{}",
            vault_base::secret::mask_key_id(&creds.access_key_id), settings.account_id, settings.role_name);
        if creds.remaining(SystemTime::now()) > self.opts.min_remaining {
            self.keep(
                &id,
                &CachedSession {
                    kind: SessionKind::SsoRoleCredentials,
                    profile: plan.root_profile.clone(),
                    mfa_serial: None,
                    creds: creds.clone(),
                },
            );
        }
        Ok(Credentials::Session(creds))
    }

    /// The root's `credential_process` output, cached (as aws-vault does)
    /// while it has more than the minimum left; output without an
    /// expiration is used once and never cached.
    fn process(&self, plan: &Plan, command: &str) -> Result<Credentials, ProviderError> {
        let id = process_cache_id(&plan.root_profile, command);
        if let Some(s) = self.fresh(&id)? {
            log::debug!(target: "vault", "reusing cached credential_process output of {}", s.profile);
            return Ok(Credentials::Session(s.creds));
        }
        let _lock = self.lock(id.as_str())?;
        if let Some(s) = self.fresh(&id)? {
            return Ok(Credentials::Session(s.creds));
        }
        log::debug!(target: "vault", "running credential_process of profile {}", plan.root_profile);
        let creds = crate::process::credential_process(command).map_err(|problem| {
            ProviderError::Process {
                profile: plan.root_profile.clone(),
                problem,
            }
        })?;
        if let Credentials::Session(s) = &creds {
            if s.remaining(SystemTime::now()) > self.opts.min_remaining {
                self.keep(
                    &id,
                    &CachedSession {
                        kind: SessionKind::CredentialProcess,
                        profile: plan.root_profile.clone(),
                        mfa_serial: None,
                        creds: s.clone(),
                    },
                );
            }
        }
        Ok(creds)
    }

    /// Credentials for the plan's target, from the cache or from STS.
    pub fn credentials(&self, plan: &Plan) -> Result<Credentials, ProviderError> {
        if plan.roles.is_empty() {
            return self.base(plan);
        }
        self.role(plan, plan.roles.len() - 1)
    }

    /// The credentials roles start from: the MFA session, or the keys.
    fn base(&self, plan: &Plan) -> Result<Credentials, ProviderError> {
        let (Some(step), Some(id)) = (&plan.session, plan.session_id()) else {
            log::debug!(target: "vault", "no session step: using the root's own credentials");
            return self.root_credentials(plan);
        };
        if let Some(s) = self.fresh(&id)? {
            log::debug!(target: "vault", "reusing cached GetSessionToken session of {}", s.profile);
            return Ok(Credentials::Session(s.creds));
        }
        let _lock = self.lock(id.as_str())?;
        if let Some(s) = self.fresh(&id)? {
            log::debug!(target: "vault", "another vault process made the session while this one waited; reusing it");
            return Ok(Credentials::Session(s.creds));
        }
        // The endpoint is checked before the key is unwrapped (a touch).
        let sts = self.sts(&plan.endpoint)?;
        let keys = self.root_key(plan)?;
        let creds = match &step.mfa_serial {
            Some(serial) => self.with_mfa(&step.profile, serial, step.mfa_process.as_deref(), |code| {
                log::debug!(target: "vault", "calling GetSessionToken with MFA {serial} for {} s", step.duration.as_secs());
                sts.get_session_token(&keys, step.duration, Some((serial, code)))
            })?,
            None => {
                log::debug!(target: "vault", "calling GetSessionToken without MFA for {} s", step.duration.as_secs());
                sts.get_session_token(&keys, step.duration, None)?
            }
        };
        self.keep(
            &id,
            &CachedSession {
                kind: SessionKind::GetSessionToken,
                profile: step.profile.clone(),
                mfa_serial: step.mfa_serial.clone(),
                creds: creds.clone(),
            },
        );
        Ok(Credentials::Session(creds))
    }

    fn role(&self, plan: &Plan, i: usize) -> Result<Credentials, ProviderError> {
        let id = plan.role_id(i);
        let step = &plan.roles[i];
        if let Some(s) = self.fresh(&id)? {
            log::debug!(target: "vault", "reusing cached AssumeRole session for {}", step.profile);
            return Ok(Credentials::Session(s.creds));
        }
        let _lock = self.lock(id.as_str())?;
        if let Some(s) = self.fresh(&id)? {
            log::debug!(target: "vault", "another vault process assumed {} while this one waited; reusing it", step.request.role_arn);
            return Ok(Credentials::Session(s.creds));
        }
        let source = if i == 0 {
            self.base(plan)?
        } else {
            self.role(plan, i - 1)?
        };
        let mut request = step.request.clone();
        // AWS decides by the caller's credentials: any temporary ones (an
        // MFA session, another role, a credential_process session) make
        // this role chaining, capped at one hour.
        if request.duration > ROLE_CHAINING_MAX && matches!(source, Credentials::Session(_)) {
            self.warnings.borrow_mut().push(format!(
                "profile {}: AWS caps a role assumed with temporary credentials (role chaining) at 1 hour; assuming {} for 3600 s instead of {} s",
                step.profile, request.role_arn, request.duration.as_secs()
            ));
            request.duration = ROLE_CHAINING_MAX;
        }
        let sts = self.sts(&plan.endpoint)?;
        let creds = match &step.mfa_serial {
            Some(serial) => self.with_mfa(&step.profile, serial, step.mfa_process.as_deref(), |code| {
                log::debug!(target: "vault", "calling AssumeRole {} with MFA {serial}", request.role_arn);
                sts.assume_role(&source, &request, Some((serial, code)))
            })?,
            None => {
                log::debug!(target: "vault", "calling AssumeRole {} for {} s", request.role_arn, request.duration.as_secs());
                sts.assume_role(&source, &request, None)?
            }
        };
        self.keep(
            &id,
            &CachedSession {
                kind: SessionKind::AssumeRole,
                profile: step.profile.clone(),
                mfa_serial: step.mfa_serial.clone(),
                creds: creds.clone(),
            },
        );
        Ok(Credentials::Session(creds))
    }

    /// Runs `call` with a fresh code for `serial`, holding that device's
    /// lock so no other vault process uses a code in between, and records
    /// the code as used before it is sent.
    fn with_mfa<T>(
        &self,
        profile: &str,
        serial: &str,
        mfa_process: Option<&str>,
        call: impl FnOnce(&vault_base::secret::MfaCode) -> Result<T, StsError>,
    ) -> Result<T, ProviderError> {
        let _mfa_lock = self.lock(CacheId::new(&["mfa", serial]).as_str())?;
        let code = mfa::obtain(&self.mfa, self.cache, profile, serial, mfa_process)?;
        // Sent is spent: a code AWS rejected, or whose answer never came
        // (a timeout, a connection lost mid-request), may still have been
        // consumed. It is recorded before it is sent, so that when this
        // process dies waiting for the answer (killed, like any caller of
        // a credential_process), the next one, taking over the lock, waits
        // for a new code instead of sending this one, which AWS would
        // refuse. Only a call that never got a connection gives it back.
        let before = session::get_mfa_use(self.cache, serial);
        mfa::mark_used(self.cache, serial, &code);
        let result = call(&code.code);
        if matches!(result, Err(StsError::Unreachable { sent: false, .. })) {
            mfa::restore(self.cache, serial, &before);
        }
        Ok(result?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    //! The provider's decisions with an in-process STS behind
    //! [`StsCalls`]: what it asks STS, what it caches and reuses, and what
    //! happens to an MFA code. Every decision here is also exercised
    //! end to end against the rig's strict STS (tests/cli_*.rs).
    use super::*;
    use crate::mfa::MfaError;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use vault_base::creds::{LongTermKey, SessionCredentials};
    use vault_base::secret::{MfaCode, Passphrase, SecretAccessKey, SecretBytes, SessionToken};
    use vault_profile::config::ConfigFile;
    use vault_profile::plan::SessionOptions;
    use vault_profile::session::{CacheError, SessionCache};
    use vault_prompt::{Prompt, PromptError};

    #[derive(Default)]
    struct MemCache(RefCell<BTreeMap<CacheId, Vec<u8>>>);

    impl SessionCache for MemCache {
        fn name(&self) -> &'static str {
            "memory"
        }
        fn get_raw(&self, id: &CacheId) -> Result<Option<SecretBytes>, CacheError> {
            Ok(self.0.borrow().get(id).cloned().map(SecretBytes::new))
        }
        fn put_raw(&self, id: &CacheId, v: &SecretBytes, _: Duration) -> Result<(), CacheError> {
            self.0.borrow_mut().insert(id.clone(), v.expose().to_vec());
            Ok(())
        }
        fn remove(&self, id: &CacheId) -> Result<bool, CacheError> {
            Ok(self.0.borrow_mut().remove(id).is_some())
        }
        fn ids(&self) -> Result<Vec<CacheId>, CacheError> {
            Ok(self.0.borrow().keys().cloned().collect())
        }
    }

    struct NoPrompt;
    impl Prompt for NoPrompt {
        fn mfa_code(&self, _: &str, _: &str) -> Result<MfaCode, PromptError> {
            Err(PromptError::Unavailable("no prompt in this test".into()))
        }
        fn secret(&self, _: &str) -> Result<Passphrase, PromptError> {
            Err(PromptError::Unavailable("no prompt in this test".into()))
        }
        fn text(&self, _: &str) -> Result<String, PromptError> {
            Err(PromptError::Unavailable("no prompt in this test".into()))
        }
        fn notify(&self, _: &str) {}
    }

    /// What the double STS was asked: (operation, signing key, duration s,
    /// role ARN, MFA serial and code).
    type Call = (&'static str, String, u64, String, Option<(String, String)>);

    /// An STS in memory: records each call and answers with a new session
    /// valid for the duration asked, or with `fail` once.
    #[derive(Default)]
    struct FakeSts {
        calls: RefCell<Vec<Call>>,
        fail: RefCell<Option<StsError>>,
    }

    impl FakeSts {
        fn answer(&self, call: Call) -> Result<SessionCredentials, StsError> {
            let n = self.calls.borrow().len();
            let secs = call.2;
            self.calls.borrow_mut().push(call);
            if let Some(e) = self.fail.borrow_mut().take() {
                return Err(e);
            }
            Ok(SessionCredentials {
                access_key_id: format!("ASIAFAKE{n:012}"),
                secret_access_key: SecretAccessKey::new(format!("secret-{n}")),
                session_token: SessionToken::new(format!("token-{n}")),
                expiration: SystemTime::now() + Duration::from_secs(secs),
            })
        }
    }

    fn key_id(c: &Credentials) -> String {
        match c {
            Credentials::LongTerm(k) => k.access_key_id.clone(),
            Credentials::Session(s) => s.access_key_id.clone(),
        }
    }

    fn mfa_of(mfa: Option<(&str, &MfaCode)>) -> Option<(String, String)> {
        mfa.map(|(s, c)| (s.to_string(), c.expose().to_string()))
    }

    impl StsCalls for &FakeSts {
        fn get_session_token(
            &self,
            creds: &Credentials,
            duration: Duration,
            mfa: Option<(&str, &MfaCode)>,
        ) -> Result<SessionCredentials, StsError> {
            self.answer((
                "GetSessionToken",
                key_id(creds),
                duration.as_secs(),
                String::new(),
                mfa_of(mfa),
            ))
        }
        fn assume_role(
            &self,
            creds: &Credentials,
            role: &crate::sts::AssumeRole,
            mfa: Option<(&str, &MfaCode)>,
        ) -> Result<SessionCredentials, StsError> {
            self.answer((
                "AssumeRole",
                key_id(creds),
                role.duration.as_secs(),
                role.role_arn.clone(),
                mfa_of(mfa),
            ))
        }
    }

    const MFA: &str = "arn:aws:iam::111111111111:mfa/u";

    fn plan_for(config: &str, profile: &str, duration: Option<u64>) -> Plan {
        let cfg = ConfigFile::parse(config, "config").unwrap();
        let none = |_: &str| None;
        let chain = cfg.resolve_with(profile, &none, &|n| n == "u").unwrap();
        let args = SessionOptions {
            duration: duration.map(Duration::from_secs),
            no_session: false,
            region: None,
            mfa_token: None,
        };
        let root = vault_profile::plan::root_source(&chain, true);
        vault_profile::plan::build(&chain, &args, &none, root)
    }

    /// Runs `f` with a provider over `cache` and `sts`, the stored key of
    /// profile u, and `code` as if given with --mfa-token.
    fn with_provider<T>(
        cache: &MemCache,
        sts: &FakeSts,
        code: Option<&str>,
        f: impl FnOnce(&Provider<'_>) -> T,
    ) -> T {
        let locks = tempfile::tempdir().unwrap();
        let keys = |p: &str| -> Result<Option<LongTermKey>, ProviderError> {
            Ok((p == "u").then(|| LongTermKey {
                access_key_id: "AKIAUSERKEY000000001".into(),
                secret_access_key: SecretAccessKey::new("user-secret"),
            }))
        };
        let prompt = NoPrompt;
        let mfa = MfaSources {
            token_flag: code.map(MfaCode::new),
            device: None,
            prompt: &prompt,
        };
        let opts = Options {
            min_remaining: Duration::from_secs(300),
            lock_dir: locks.path().to_path_buf(),
        };
        let p = Provider::new(cache, &keys, mfa, opts).with_sts(move |_| Ok(Box::new(sts)));
        f(&p)
    }

    const CHAIN: &str = "[profile u]\nmfa_serial = arn:aws:iam::111111111111:mfa/u\n\n\
                         [profile r]\nsource_profile = u\nrole_arn = arn:aws:iam::222222222222:role/R\n\n\
                         [profile r2]\nsource_profile = r\nrole_arn = arn:aws:iam::333333333333:role/R2\n";

    #[test]
    fn a_chain_makes_one_mfa_session_then_each_role_from_the_one_before_and_caches_all() {
        let (cache, sts) = (MemCache::default(), FakeSts::default());
        let plan = plan_for(CHAIN, "r2", None);
        let creds = with_provider(&cache, &sts, Some("123456"), |p| p.credentials(&plan)).unwrap();
        let calls = sts.calls.borrow().clone();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert_eq!(
            (calls[0].0, calls[0].1.as_str(), calls[0].2),
            ("GetSessionToken", "AKIAUSERKEY000000001", 12 * 3600)
        );
        assert_eq!(calls[0].4, Some((MFA.to_string(), "123456".to_string())));
        // Each role is assumed with the credentials just made, no MFA again.
        assert_eq!(calls[1].1, "ASIAFAKE000000000000");
        assert!(calls[1].3.ends_with("role/R") && calls[1].4.is_none());
        assert_eq!(calls[2].1, "ASIAFAKE000000000001");
        assert!(calls[2].3.ends_with("role/R2"));
        assert_eq!(key_id(&creds), "ASIAFAKE000000000002");

        // Everything cached: a second run asks STS nothing, even with no code.
        let again = with_provider(&cache, &sts, None, |p| p.credentials(&plan)).unwrap();
        assert_eq!(sts.calls.borrow().len(), 3);
        assert_eq!(key_id(&again), key_id(&creds));
    }

    #[test]
    fn a_role_assumed_with_temporary_credentials_is_capped_at_one_hour_with_a_warning() {
        // One role for 4 h: aws-vault assumes it from the key itself, with
        // MFA, so AWS allows the 4 h (no chaining, no warning).
        let (cache, sts) = (MemCache::default(), FakeSts::default());
        let plan = plan_for(CHAIN, "r", Some(4 * 3600));
        let warnings = with_provider(&cache, &sts, Some("123456"), |p| {
            p.credentials(&plan).unwrap();
            p.warnings.borrow().clone()
        });
        let calls = sts.calls.borrow().clone();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(
            (calls[0].0, calls[0].1.as_str(), calls[0].2),
            ("AssumeRole", "AKIAUSERKEY000000001", 4 * 3600)
        );
        assert!(calls[0].4.is_some() && warnings.is_empty(), "{warnings:?}");

        // Two roles: each is assumed with temporary credentials, so each
        // is capped at 1 h, and the user is told.
        let (cache, sts) = (MemCache::default(), FakeSts::default());
        let plan = plan_for(CHAIN, "r2", Some(4 * 3600));
        let warnings = with_provider(&cache, &sts, Some("123456"), |p| {
            p.credentials(&plan).unwrap();
            p.warnings.borrow().clone()
        });
        let calls = sts.calls.borrow().clone();
        let roles: Vec<u64> = calls
            .iter()
            .filter(|c| c.0 == "AssumeRole")
            .map(|c| c.2)
            .collect();
        assert_eq!(roles, [3600, 3600], "{calls:?}");
        assert!(
            warnings.len() == 2 && warnings.iter().all(|w| w.contains("role chaining")),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_session_about_to_expire_is_not_reused() {
        let (cache, sts) = (MemCache::default(), FakeSts::default());
        let plan = plan_for(CHAIN, "u", Some(240)); // under min_remaining (300 s)
        with_provider(&cache, &sts, Some("123456"), |p| p.credentials(&plan)).unwrap();
        with_provider(&cache, &sts, Some("654321"), |p| p.credentials(&plan)).unwrap();
        assert_eq!(sts.calls.borrow().len(), 2);
    }

    #[test]
    fn a_code_sent_is_spent_and_only_a_call_that_never_connected_gives_it_back() {
        let unreachable = |sent| StsError::Unreachable {
            operation: "GetSessionToken",
            endpoint: "x".into(),
            detail: "x".into(),
            sent,
            timed_out: false,
        };
        let plan = plan_for(CHAIN, "u", None);

        // Sent (maybe received): the same code is refused next time.
        let (cache, sts) = (MemCache::default(), FakeSts::default());
        *sts.fail.borrow_mut() = Some(unreachable(true));
        assert!(with_provider(&cache, &sts, Some("111111"), |p| p.credentials(&plan)).is_err());
        let again = with_provider(&cache, &sts, Some("111111"), |p| p.credentials(&plan));
        assert!(
            matches!(again, Err(ProviderError::Mfa(MfaError::TokenReused { .. }))),
            "{again:?}"
        );
        assert_eq!(sts.calls.borrow().len(), 1);

        // Never connected: the code is still good.
        let (cache, sts) = (MemCache::default(), FakeSts::default());
        *sts.fail.borrow_mut() = Some(unreachable(false));
        assert!(with_provider(&cache, &sts, Some("222222"), |p| p.credentials(&plan)).is_err());
        with_provider(&cache, &sts, Some("222222"), |p| p.credentials(&plan)).unwrap();
        assert_eq!(sts.calls.borrow().len(), 2);
    }
}
