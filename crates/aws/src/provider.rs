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
    //! [`StsCalls`]: what it asks STS, with which credentials, what it
    //! caches and reuses, and what happens to an MFA code. Every decision
    //! here is also exercised end to end against the rig's strict STS
    //! (tests/cli_*.rs); these run under plain `cargo test`.
    use super::*;
    use crate::mfa::MfaError;
    use std::cell::{Cell, RefCell};
    use std::collections::{BTreeMap, VecDeque};
    use vault_base::creds::{LongTermKey, SessionCredentials};
    use vault_base::secret::{MfaCode, Passphrase, SecretAccessKey, SessionToken};
    use vault_profile::config::ConfigFile;
    use vault_profile::plan::SessionOptions;
    use vault_profile::session::MemoryCache;
    use vault_prompt::{Prompt, PromptError};

    /// The user at the MFA prompt: types the next of `codes` each time a
    /// code is asked for; once they run out, the prompt cannot be shown.
    #[derive(Default)]
    struct User {
        codes: RefCell<VecDeque<&'static str>>,
        /// (profile, MFA serial) of each request.
        asked: RefCell<Vec<(String, String)>>,
        /// What vault told the user.
        told: RefCell<Vec<String>>,
    }

    impl User {
        fn typing(codes: &[&'static str]) -> User {
            User {
                codes: RefCell::new(codes.iter().copied().collect()),
                ..User::default()
            }
        }
    }

    impl Prompt for User {
        fn mfa_code(&self, profile: &str, serial: &str) -> Result<MfaCode, PromptError> {
            self.asked
                .borrow_mut()
                .push((profile.to_string(), serial.to_string()));
            match self.codes.borrow_mut().pop_front() {
                Some(code) => Ok(MfaCode::new(code)),
                None => Err(PromptError::Unavailable("no prompt in this test".into())),
            }
        }
        fn secret(&self, _: &str) -> Result<Passphrase, PromptError> {
            Err(PromptError::Unavailable("no prompt in this test".into()))
        }
        fn text(&self, _: &str) -> Result<String, PromptError> {
            Err(PromptError::Unavailable("no prompt in this test".into()))
        }
        fn notify(&self, message: &str) {
            self.told.borrow_mut().push(message.to_string());
        }
    }

    /// Credentials as the double STS sees them: the access key ID, and
    /// the session token of temporary ones.
    type Signer = (String, Option<String>);

    const KEY_ID: &str = "AKIAUSEREXAMPLE00001";

    /// Profile u's stored key, as STS sees it.
    fn long_term() -> Signer {
        (KEY_ID.to_string(), None)
    }

    /// The credentials the double STS issued in answer to its call `n`.
    fn issued(n: usize) -> Signer {
        (format!("ASIAFAKE{n:012}"), Some(format!("token-{n}")))
    }

    fn signer(c: &Credentials) -> Signer {
        (
            c.access_key_id().to_string(),
            c.session_token().map(|t| t.expose().to_string()),
        )
    }

    /// One call the double STS received, with everything vault sent.
    #[derive(Debug, Clone, PartialEq)]
    struct Call {
        op: &'static str,
        /// The credentials that signed it.
        signer: Signer,
        duration: u64,
        /// AssumeRole's role ARN and role session name.
        role: Option<(String, String)>,
        /// MFA serial and code.
        mfa: Option<(String, String)>,
    }

    /// An STS in memory: records each call and answers with new session
    /// credentials valid for the duration asked (from the current second), or with the error set
    /// for that call.
    #[derive(Default)]
    struct FakeSts {
        calls: RefCell<Vec<Call>>,
        /// Errors to answer with, by call number (from 0).
        fail: RefCell<BTreeMap<usize, StsError>>,
    }

    impl FakeSts {
        fn answer(&self, call: Call) -> Result<SessionCredentials, StsError> {
            let n = self.calls.borrow().len();
            let secs = call.duration;
            self.calls.borrow_mut().push(call);
            if let Some(e) = self.fail.borrow_mut().remove(&n) {
                return Err(e);
            }
            let (access_key_id, token) = issued(n);
            Ok(SessionCredentials {
                access_key_id,
                secret_access_key: SecretAccessKey::new(format!("secret-{n}")),
                session_token: SessionToken::new(token.unwrap_or_default()),
                // To the second, as STS (and the cache) has it.
                expiration: std::time::UNIX_EPOCH + Duration::from_secs(mfa::now_secs() + secs),
            })
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
            self.answer(Call {
                op: "GetSessionToken",
                signer: signer(creds),
                duration: duration.as_secs(),
                role: None,
                mfa: mfa_of(mfa),
            })
        }
        fn assume_role(
            &self,
            creds: &Credentials,
            role: &crate::sts::AssumeRole,
            mfa: Option<(&str, &MfaCode)>,
        ) -> Result<SessionCredentials, StsError> {
            self.answer(Call {
                op: "AssumeRole",
                signer: signer(creds),
                duration: role.duration.as_secs(),
                role: Some((role.role_arn.clone(), role.session_name.clone())),
                mfa: mfa_of(mfa),
            })
        }
    }

    /// One user's machine: the cache and the lock folder every vault
    /// process shares, STS, the user at the prompt, and how often the
    /// stored key was read (for a token-backed profile: a PIN and a touch).
    struct World {
        cache: MemoryCache,
        sts: FakeSts,
        user: User,
        key_reads: Cell<usize>,
        locks: tempfile::TempDir,
    }

    /// How much a cached session must have left to be reused (aws-vault's 5 min).
    const MIN_REMAINING: Duration = Duration::from_secs(300);

    impl World {
        fn new() -> World {
            World::typing(&[])
        }

        /// A world whose user types `codes` when asked for MFA codes.
        fn typing(codes: &[&'static str]) -> World {
            World {
                cache: MemoryCache::default(),
                sts: FakeSts::default(),
                user: User::typing(codes),
                key_reads: Cell::new(0),
                locks: tempfile::tempdir().unwrap(),
            }
        }

        /// One vault process: `f` with a provider over this world, given
        /// `flag` as --mfa-token. Profile u has a stored key.
        fn run<T>(&self, flag: Option<&str>, f: impl FnOnce(&Provider<'_>) -> T) -> T {
            let keys = |p: &str| -> Result<Option<LongTermKey>, ProviderError> {
                self.key_reads.set(self.key_reads.get() + 1);
                Ok((p == "u").then(|| LongTermKey {
                    access_key_id: KEY_ID.into(),
                    secret_access_key: SecretAccessKey::new("user-secret"),
                }))
            };
            let mfa = MfaSources {
                token_flag: flag.map(MfaCode::new),
                device: None,
                prompt: &self.user,
            };
            let opts = Options {
                min_remaining: MIN_REMAINING,
                lock_dir: self.locks.path().to_path_buf(),
            };
            let sts = &self.sts;
            let p =
                Provider::new(&self.cache, &keys, mfa, opts).with_sts(move |_| Ok(Box::new(sts)));
            f(&p)
        }

        fn credentials(
            &self,
            plan: &Plan,
            flag: Option<&str>,
        ) -> Result<Credentials, ProviderError> {
            self.run(flag, |p| p.credentials(plan))
        }

        fn calls(&self) -> Vec<Call> {
            self.sts.calls.borrow().clone()
        }
    }

    const MFA: &str = "arn:aws:iam::111111111111:mfa/u";

    /// u has a stored key and an MFA device; r and ro are roles on it (ro
    /// names the device too, as aws-vault's USAGE.md example does); r2 is
    /// a role assumed with r's; elsewhere names a device of another
    /// account; lone has no key.
    const CONFIG: &str = "[profile u]\nmfa_serial = arn:aws:iam::111111111111:mfa/u\n\n\
                          [profile r]\nsource_profile = u\nrole_arn = arn:aws:iam::222222222222:role/R\n\
                          role_session_name = alice\n\n\
                          [profile r2]\nsource_profile = r\nrole_arn = arn:aws:iam::333333333333:role/R2\n\n\
                          [profile ro]\nsource_profile = u\nrole_arn = arn:aws:iam::444444444444:role/ReadOnly\n\
                          mfa_serial = arn:aws:iam::111111111111:mfa/u\n\n\
                          [profile elsewhere]\nsource_profile = u\nrole_arn = arn:aws:iam::555555555555:role/E\n\
                          mfa_serial = arn:aws:iam::555555555555:mfa/other\n\n\
                          [profile lone]\n";

    fn plan_with(profile: &str, args: SessionOptions) -> Plan {
        let cfg = ConfigFile::parse(CONFIG, "config").unwrap();
        let none = |_: &str| None;
        let chain = cfg.resolve_with(profile, &none, &|n| n == "u").unwrap();
        let root = vault_profile::plan::root_source(&chain, chain.root().name == "u");
        vault_profile::plan::build(&chain, &args, &none, root)
    }

    fn plan_for(profile: &str) -> Plan {
        plan_with(profile, SessionOptions::default())
    }

    /// `--duration secs`
    fn lasting(secs: u64) -> SessionOptions {
        SessionOptions {
            duration: Some(Duration::from_secs(secs)),
            ..SessionOptions::default()
        }
    }

    #[test]
    fn a_chain_makes_one_mfa_session_then_each_role_from_the_one_before_and_caches_all() {
        let world = World::new();
        let plan = plan_for("r2");
        let creds = world.credentials(&plan, Some("123456")).unwrap();
        let calls = world.calls();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert_eq!(
            (calls[0].op, &calls[0].signer, calls[0].duration),
            ("GetSessionToken", &long_term(), 12 * 3600)
        );
        assert_eq!(calls[0].mfa, Some((MFA.to_string(), "123456".to_string())));
        // Each role is assumed with the credentials just made (their
        // session token included), no MFA again.
        assert_eq!(calls[1].signer, issued(0));
        assert!(calls[1].role.as_ref().unwrap().0.ends_with("role/R") && calls[1].mfa.is_none());
        assert_eq!(calls[2].signer, issued(1));
        assert!(calls[2].role.as_ref().unwrap().0.ends_with("role/R2") && calls[2].mfa.is_none());
        assert_eq!(signer(&creds), issued(2));

        // Everything cached: a second run asks STS nothing, even with no code.
        let again = world.credentials(&plan, None).unwrap();
        assert_eq!(world.calls().len(), 3);
        assert_eq!(again, creds);
    }

    #[test]
    fn a_role_assumed_with_temporary_credentials_is_capped_at_one_hour_with_a_warning() {
        // One role for 4 h: aws-vault assumes it from the key itself, with
        // MFA, so AWS allows the 4 h (no chaining, no warning).
        let world = World::new();
        let plan = plan_with("r", lasting(4 * 3600));
        let warnings = world.run(Some("123456"), |p| {
            p.credentials(&plan).unwrap();
            p.warnings.borrow().clone()
        });
        let calls = world.calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(
            (calls[0].op, &calls[0].signer, calls[0].duration),
            ("AssumeRole", &long_term(), 4 * 3600)
        );
        assert!(
            calls[0].mfa.is_some() && warnings.is_empty(),
            "{warnings:?}"
        );

        // Two roles: each is assumed with temporary credentials, so each
        // is capped at 1 h, and the user is told.
        let world = World::new();
        let plan = plan_with("r2", lasting(4 * 3600));
        let warnings = world.run(Some("123456"), |p| {
            p.credentials(&plan).unwrap();
            p.warnings.borrow().clone()
        });
        let roles: Vec<u64> = world
            .calls()
            .iter()
            .filter(|c| c.op == "AssumeRole")
            .map(|c| c.duration)
            .collect();
        assert_eq!(
            roles,
            [ROLE_CHAINING_MAX.as_secs(); 2],
            "{:?}",
            world.calls()
        );
        assert!(
            warnings.len() == 2 && warnings.iter().all(|w| w.contains("role chaining")),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_session_about_to_expire_is_not_reused() {
        let world = World::new();
        let plan = plan_with("u", lasting(240)); // under min_remaining (300 s)
        world.credentials(&plan, Some("123456")).unwrap();
        world.credentials(&plan, Some("654321")).unwrap();
        assert_eq!(world.calls().len(), 2);
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
        let plan = plan_for("u");

        // Sent (maybe received): the same code is refused next time.
        let world = World::new();
        world.sts.fail.borrow_mut().insert(0, unreachable(true));
        assert!(world.credentials(&plan, Some("111111")).is_err());
        let again = world.credentials(&plan, Some("111111"));
        assert!(
            matches!(again, Err(ProviderError::Mfa(MfaError::TokenReused { .. }))),
            "{again:?}"
        );
        assert_eq!(world.calls().len(), 1);

        // Never connected: the code is still good.
        let world = World::new();
        world.sts.fail.borrow_mut().insert(0, unreachable(false));
        assert!(world.credentials(&plan, Some("222222")).is_err());
        world.credentials(&plan, Some("222222")).unwrap();
        assert_eq!(world.calls().len(), 2);
    }

    #[test]
    fn a_role_profile_gets_an_mfa_session_then_assumes_its_role_with_that_session() {
        let world = World::typing(&["123456"]);
        let plan = plan_for("r");
        let creds = world.credentials(&plan, None).unwrap();
        assert_eq!(
            world.calls(),
            [
                Call {
                    op: "GetSessionToken",
                    signer: long_term(),
                    duration: 12 * 3600,
                    role: None,
                    mfa: Some((MFA.into(), "123456".into())),
                },
                Call {
                    op: "AssumeRole",
                    signer: issued(0),
                    duration: 3600,
                    role: Some(("arn:aws:iam::222222222222:role/R".into(), "alice".into())),
                    mfa: None,
                },
            ]
        );
        assert_eq!(signer(&creds), issued(1));
        // The code was asked for on behalf of u, whose key makes the MFA call.
        assert_eq!(
            *world.user.asked.borrow(),
            [("u".to_string(), MFA.to_string())]
        );
        // Both steps cached, each under its own id and kind.
        let cached = |id: &CacheId| session::get(&world.cache, id).unwrap().map(|s| s.kind);
        assert_eq!(
            cached(&plan.session_id().unwrap()),
            Some(SessionKind::GetSessionToken)
        );
        assert_eq!(cached(&plan.role_id(0)), Some(SessionKind::AssumeRole));
    }

    #[test]
    fn a_second_run_is_served_from_the_cache_without_sts_the_key_or_a_code() {
        let world = World::typing(&["123456"]);
        let plan = plan_for("r");
        let first = world.credentials(&plan, None).unwrap();
        let (calls, reads) = (world.calls().len(), world.key_reads.get());
        assert_eq!((calls, reads), (2, 1));

        let second = world.credentials(&plan, None).unwrap();
        assert_eq!(second, first);
        // No STS call, no unwrap of the key (no PIN, no touch), no code asked.
        assert_eq!(world.calls().len(), calls);
        assert_eq!(world.key_reads.get(), reads);
        assert_eq!(world.user.asked.borrow().len(), 1);
    }

    #[test]
    fn two_role_profiles_on_one_source_share_one_mfa_session_and_one_code() {
        // aws-vault's point: one MFA session per source key and device, so
        // every role profile on it costs no further code.
        let world = World::typing(&["123456", "654321"]);
        let r = world.credentials(&plan_for("r"), None).unwrap();
        let ro = world.credentials(&plan_for("ro"), None).unwrap();
        let calls = world.calls();
        let ops: Vec<&str> = calls.iter().map(|c| c.op).collect();
        assert_eq!(ops, ["GetSessionToken", "AssumeRole", "AssumeRole"]);
        // ro names the device too, but the session already carries MFA.
        assert_eq!(
            (&calls[2].signer, calls[2].mfa.as_ref()),
            (&issued(0), None)
        );
        assert_eq!(
            calls[2].role.as_ref().unwrap().0,
            "arn:aws:iam::444444444444:role/ReadOnly"
        );
        assert_ne!(r, ro);
        assert_eq!(world.user.asked.borrow().len(), 1);
        assert_eq!(world.key_reads.get(), 1);
    }

    #[test]
    fn a_cached_answer_does_not_wait_for_the_process_holding_the_lock() {
        // Another vault process holds the role's lock (it is waiting for a
        // touch or a code, say): a run whose answer is cached does not
        // queue behind it. The lock guards STS calls, not cache reads.
        let world = World::typing(&["123456"]);
        let plan = plan_for("r");
        let first = world.credentials(&plan, None).unwrap();
        let (dir, name) = (world.locks.path().to_path_buf(), plan.role_id(0));
        let (held, run_over) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let other = std::thread::spawn(move || {
            let _lock = Lock::acquire(&dir, name.as_str()).unwrap();
            held.0.send(()).unwrap();
            // Held until the run is over; if the run waits for it, given
            // up after 5 s so the test fails instead of hanging.
            run_over.1.recv_timeout(Duration::from_secs(5)).is_ok()
        });
        held.1.recv().unwrap();
        let second = world.credentials(&plan, None).unwrap();
        let _ = run_over.0.send(());
        assert!(other.join().unwrap(), "the cached run waited for the lock");
        assert_eq!(second, first);
    }

    fn no_session() -> SessionOptions {
        SessionOptions {
            no_session: true,
            ..SessionOptions::default()
        }
    }

    #[test]
    fn no_session_assumes_the_role_with_the_long_term_key_and_the_code() {
        // aws-vault's --no-session: no GetSessionToken; the role is assumed
        // with the stored key itself, and the MFA code goes with AssumeRole.
        let world = World::typing(&["123456"]);
        let plan = plan_with("ro", no_session());
        let creds = world.credentials(&plan, None).unwrap();
        assert_eq!(
            world.calls(),
            [Call {
                op: "AssumeRole",
                signer: long_term(),
                duration: 3600,
                role: Some((
                    "arn:aws:iam::444444444444:role/ReadOnly".into(),
                    plan.roles[0].request.session_name.clone()
                )),
                mfa: Some((MFA.into(), "123456".into())),
            }]
        );
        assert_eq!(signer(&creds), issued(0));

        // A profile without a role gets the stored key itself.
        let world = World::new();
        let creds = world
            .credentials(&plan_with("u", no_session()), None)
            .unwrap();
        assert_eq!(signer(&creds), long_term());
        assert!(world.calls().is_empty());
    }

    /// Puts under `id` a session of `kind` expiring `left` seconds from now
    /// (in the past when negative), as an earlier run would have.
    fn seed(world: &World, id: &CacheId, kind: SessionKind, left: i64) -> SessionCredentials {
        let creds = SessionCredentials {
            access_key_id: format!("ASIASEEDED{:+010}", left),
            secret_access_key: SecretAccessKey::new("seeded"),
            session_token: SessionToken::new("seeded-token"),
            expiration: std::time::UNIX_EPOCH
                + Duration::from_secs(mfa::now_secs().saturating_add_signed(left)),
        };
        let entry = CachedSession {
            kind,
            profile: "u".into(),
            mfa_serial: Some(MFA.into()),
            creds: creds.clone(),
        };
        session::put(&world.cache, id, &entry).unwrap();
        creds
    }

    #[test]
    fn a_cached_session_is_reused_only_while_more_than_min_remaining_is_left() {
        let world = World::typing(&["111111", "222222"]);
        let plan = plan_for("u");
        let id = plan.session_id().unwrap();
        let gst = SessionKind::GetSessionToken;

        let fresh = seed(&world, &id, gst, MIN_REMAINING.as_secs() as i64 + 60);
        let got = world.credentials(&plan, None).unwrap();
        assert_eq!(got, Credentials::Session(fresh));
        assert!(world.calls().is_empty());

        // Under the window (aws-vault: 5 min), or past its expiration (the
        // cache may still hold it): a new session, which replaces it.
        for (n, left) in [(0, MIN_REMAINING.as_secs() as i64 - 1), (1, -1)] {
            seed(&world, &id, gst, left);
            let got = world.credentials(&plan, None).unwrap();
            assert_eq!(signer(&got), issued(n), "{left} s left");
            assert_eq!(world.calls()[n].signer, long_term());
            let cached = session::get(&world.cache, &id).unwrap().unwrap();
            assert_eq!(cached.creds.access_key_id, issued(n).0);
        }
        assert_eq!(world.calls().len(), 2);
        assert_eq!(world.user.asked.borrow().len(), 2);
    }

    #[test]
    fn an_expiring_role_session_is_renewed_from_the_cached_mfa_session_without_a_code() {
        let world = World::typing(&["123456"]);
        let plan = plan_for("r");
        world.credentials(&plan, None).unwrap();
        seed(&world, &plan.role_id(0), SessionKind::AssumeRole, 60);

        let renewed = world.credentials(&plan, None).unwrap();
        let calls = world.calls();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert_eq!(
            (calls[2].op, &calls[2].signer, &calls[2].mfa),
            ("AssumeRole", &issued(0), &None)
        );
        assert_eq!(signer(&renewed), issued(2));
        // The MFA session was still good: no unwrap, no code.
        assert_eq!(world.key_reads.get(), 1);
        assert_eq!(world.user.asked.borrow().len(), 1);
    }

    fn refused(operation: &'static str, code: &str, message: &str) -> StsError {
        StsError::Service {
            operation,
            code: code.into(),
            message: message.into(),
        }
    }

    #[test]
    fn an_sts_refusal_is_the_typed_error_with_its_hint_and_caches_nothing() {
        let world = World::typing(&["123456", "654321"]);
        let plan = plan_for("r");
        world.sts.fail.borrow_mut().insert(
            0,
            refused(
                "GetSessionToken",
                "AccessDenied",
                "MultiFactorAuthentication failed with invalid MFA one time pass code.",
            ),
        );
        let e = world.credentials(&plan, None).unwrap_err();
        assert!(
            matches!(&e, ProviderError::Sts(StsError::Service { operation: "GetSessionToken", code, .. }) if code == "AccessDenied"),
            "{e:?}"
        );
        assert_eq!(
            e.hint().as_deref(),
            Some("the MFA code was rejected: wait for the next code and try again")
        );
        // Nothing cached, and nothing more asked of STS after the refusal.
        assert_eq!(world.calls().len(), 1);
        for id in plan.all_ids() {
            assert_eq!(session::get(&world.cache, &id).unwrap(), None);
        }
        // The next run starts over, with the next code.
        world.credentials(&plan, None).unwrap();
        assert_eq!(world.calls()[1].mfa, Some((MFA.into(), "654321".into())));

        // A key AWS does not know: the hint says to add it again.
        let world = World::typing(&["123456"]);
        world.sts.fail.borrow_mut().insert(
            0,
            refused(
                "GetSessionToken",
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            ),
        );
        let e = world.credentials(&plan, None).unwrap_err();
        assert!(matches!(e, ProviderError::Sts(_)), "{e:?}");
        assert!(
            e.hint().unwrap().contains("`vault add PROFILE`"),
            "{:?}",
            e.hint()
        );
    }

    #[test]
    fn a_refused_role_keeps_the_mfa_session_so_a_retry_needs_no_code() {
        let world = World::typing(&["123456"]);
        let plan = plan_for("r");
        world.sts.fail.borrow_mut().insert(
            1,
            refused(
                "AssumeRole",
                "AccessDenied",
                "User: arn:aws:iam::111111111111:user/u is not authorized to perform: sts:AssumeRole",
            ),
        );
        let e = world.credentials(&plan, None).unwrap_err();
        assert!(
            matches!(
                &e,
                ProviderError::Sts(StsError::Service {
                    operation: "AssumeRole",
                    ..
                })
            ),
            "{e:?}"
        );
        assert_eq!(session::get(&world.cache, &plan.role_id(0)).unwrap(), None);

        // Once the role's trust policy is fixed: only AssumeRole again.
        let creds = world.credentials(&plan, None).unwrap();
        let calls = world.calls();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert_eq!((calls[2].op, &calls[2].signer), ("AssumeRole", &issued(0)));
        assert_eq!(signer(&creds), issued(2));
        assert_eq!(world.user.asked.borrow().len(), 1);
        assert_eq!(world.key_reads.get(), 1);
    }

    #[test]
    fn a_profile_without_a_stored_key_is_told_how_to_add_one() {
        let world = World::new();
        let e = world.credentials(&plan_for("lone"), None).unwrap_err();
        assert!(
            matches!(&e, ProviderError::NoStoredKey { profile } if profile == "lone"),
            "{e:?}"
        );
        assert_eq!(e.hint().as_deref(), Some("add them with `vault add lone`"));
        assert!(world.calls().is_empty());
    }

    #[test]
    fn one_code_is_asked_for_the_roots_device_and_sent_once() {
        // The MFA session is made with u's key, so it carries u's device,
        // whatever device the role profile names; no call sends it again.
        let world = World::typing(&["123456", "654321"]);
        world.credentials(&plan_for("elsewhere"), None).unwrap();
        assert_eq!(
            *world.user.asked.borrow(),
            [("u".to_string(), MFA.to_string())]
        );
        let sent: Vec<Option<(String, String)>> =
            world.calls().into_iter().map(|c| c.mfa).collect();
        assert_eq!(sent, [Some((MFA.into(), "123456".into())), None]);
    }

    #[test]
    fn a_code_already_sent_is_never_sent_again_the_user_is_asked_for_the_next() {
        // AWS accepts a code once. The user types the code just used for
        // the MFA session again (the device still shows it): vault says
        // so and asks for the next one instead of sending it.
        let world = World::typing(&["123456", "123456", "654321"]);
        world.credentials(&plan_for("u"), None).unwrap();
        world
            .credentials(&plan_with("ro", no_session()), None)
            .unwrap();
        let sent: Vec<Option<(String, String)>> =
            world.calls().into_iter().map(|c| c.mfa).collect();
        assert_eq!(
            sent,
            [
                Some((MFA.into(), "123456".into())),
                Some((MFA.into(), "654321".into()))
            ]
        );
        assert_eq!(world.user.asked.borrow().len(), 3);
        assert!(
            world
                .user
                .told
                .borrow()
                .iter()
                .any(|t| t.contains("already used")),
            "{:?}",
            world.user.told.borrow()
        );
    }
}
