//! One file per command. Shared here: getting a profile's credentials,
//! which `exec` and `export` both do.

pub mod add;
pub mod clear;
pub mod completion;
pub mod exec;
pub mod export;
pub mod hw_enroll;
pub mod hw_fido2;
pub mod hw_mfa_device;
pub mod hw_status;
pub mod list;
pub mod login;
pub mod man;
pub mod remove;
pub mod rotate;
pub mod sso_populate;

use crate::app::App;
use crate::error::Error;
use std::cell::RefCell;
use std::collections::HashMap;
use vault_aws::mfa::MfaSources;
use vault_aws::provider::{Options, Provider};
use vault_base::creds::Credentials;
use vault_base::error::Hinted;
use vault_base::secret::SecretBytes;
use vault_fast::cli::SessionArgs;
use vault_profile::config::{self, ProfileChain};
use vault_profile::plan::RootSource;
use vault_secrets::store;

/// A profile's credentials and the region they are for.
pub struct Resolved {
    pub creds: Credentials,
    pub region: Option<String>,
}

/// Whether `name` has a long-term key in the store, remembered per name so
/// a chain asks the keychain once per profile.
/// `--use-device-code` asks for device authorization; the default is the
/// authorization code flow, as the AWS CLI's now is.
pub fn sso_flow(args: &vault_fast::cli::SsoArgs) -> vault_aws::sso::Flow {
    if args.use_device_code {
        vault_aws::sso::Flow::DeviceCode
    } else {
        vault_aws::sso::Flow::AuthorizationCode
    }
}

pub fn stored_key_check(app: &App) -> impl Fn(&str) -> bool + '_ {
    let memo: RefCell<HashMap<String, bool>> = RefCell::new(HashMap::new());
    move |name: &str| {
        if let Some(v) = memo.borrow().get(name) {
            return *v;
        }
        // A token-backed profile's key is in its envelope, not the store.
        let has = matches!(vault_secrets::enrolled::read_envelope(name), Ok(Some(_)))
            || app
                .store()
                .ok()
                .and_then(|s| s.get(&store::key_item(name)).ok().flatten())
                .is_some();
        memo.borrow_mut().insert(name.to_string(), has);
        has
    }
}

/// The chain for `profile` with stored keys taken into account (a profile
/// with keys ends the chain), checked for sources vault cannot use, and
/// where its root's credentials come from.
pub fn resolve_chain(app: &App, profile: &str) -> Result<(ProfileChain, RootSource), Error> {
    let has_keys = stored_key_check(app);
    let chain = app
        .config()?
        .resolve_with(profile, &config::process_env, &has_keys)?;
    let root = chain.root();
    let root_has_keys = has_keys(&root.name);
    // Stored keys first (as aws-vault); then IAM Identity Center, which the
    // AWS CLI, too, asks before a credential_process.
    if !root_has_keys && root.source_profile.is_none() {
        if let Some(sso) = app.config()?.sso(root)? {
            return Ok((chain, RootSource::Sso(sso)));
        }
    }
    if root.source_profile.is_none() && !root_has_keys && root.credential_process.is_none() {
        if let Some(e) = root.unsupported() {
            return Err(e.into());
        }
    }
    let source = vault_profile::plan::root_source(&chain, root_has_keys);
    Ok((chain, source))
}

pub fn credentials(app: &App, profile: &str, args: &SessionArgs) -> Result<Resolved, Error> {
    credentials_via(app, profile, args, vault_aws::sso::Flow::AuthorizationCode)
}

/// Shows an SSO sign-in: the URL (and the device code) on stderr, and the
/// browser opened where there is one. The device code is also a desktop
/// notification where the session bus has a notification service (issue
/// 15.2): the code to compare stays in view beside the browser, when
/// stderr is an IDE's log or a terminal hidden behind the browser.
#[derive(Default)]
pub(crate) struct SsoUi {
    /// The device-code notification on screen, closed when the sign-in
    /// is over (this UI dropped), so no stale code stays up.
    #[cfg(target_os = "linux")]
    shown: RefCell<Option<(vault_prompt::Desktop, u32)>>,
}

/// How long a device-code notification may stay up by itself: the usual
/// lifetime of an IAM Identity Center device code (10 minutes).
#[cfg(target_os = "linux")]
const DEVICE_CODE_SHOWN_MS: i32 = 600_000;

impl SsoUi {
    #[cfg(target_os = "linux")]
    fn show_device_code(&self, code: &str) {
        let Some(desktop) = vault_prompt::Desktop::connect() else {
            return;
        };
        // Plain text only: notification services may read the body as
        // markup, and the URL's `&` would spoil it; the URL is on stderr
        // and in the browser already.
        let shown = desktop.show(
            0,
            &format!("IAM Identity Center sign-in code {code}"),
            "Check that the sign-in page in your browser shows this code before you approve it.",
            DEVICE_CODE_SHOWN_MS,
        );
        match shown {
            Ok(id) => {
                if let Some((old, old_id)) = self.shown.replace(Some((desktop, id))) {
                    old.close(old_id);
                }
            }
            Err(e) => log::debug!(target: "vault", "device code notification not shown: {e}"),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn show_device_code(&self, _code: &str) {}
}

#[cfg(target_os = "linux")]
impl Drop for SsoUi {
    fn drop(&mut self) {
        if let Some((desktop, id)) = self.shown.take() {
            desktop.close(id);
        }
    }
}

impl vault_aws::sso::SignInUi for SsoUi {
    fn sign_in(&self, url: &str, user_code: Option<&str>) {
        if let Some(code) = user_code {
            eprintln!(
                "vault: sign in to IAM Identity Center: open {url}\n\
                 vault: and check that the page shows the code {code}"
            );
            self.show_device_code(code);
        } else {
            eprintln!(
                "vault: sign in to IAM Identity Center in the browser; if it does not open, open {url}"
            );
        }
        if let Err(e) = login::open_in_browser(url) {
            log::debug!(target: "vault", "cannot open a browser ({e}); the URL is shown above");
        }
    }
}

/// Keeps SSO refresh tokens in the store vault keeps long-term keys in
/// (the keychain by default), so a reboot does not mean a new sign-in.
pub(crate) struct StoreKeep<'a>(pub &'a App);

/// What a kept sign-in is, for the messages of the unseal.
fn kept_sign_in() -> crate::unlock::Sealed {
    let renew = "to renew the IAM Identity Center sign-in".to_string();
    crate::unlock::Sealed {
        what: "the kept IAM Identity Center sign-in".to_string(),
        waits_for: renew.clone(),
        purpose: renew,
        damaged_hint: "vault signs in again in the browser".to_string(),
    }
}

impl StoreKeep<'_> {
    fn load_kept(&self, item: &str) -> Result<Option<SecretBytes>, Error> {
        let store = self.0.store()?;
        let Some(bytes) = store.get(item)? else {
            return Ok(None);
        };
        if !vault_secrets::envelope::is_envelope(bytes.expose()) {
            return Ok(Some(bytes));
        }
        let env = vault_secrets::envelope::Envelope::decode(bytes.expose())?;
        match crate::unlock::open_sealed(self.0, &env, item, &kept_sign_in()) {
            Ok(secret) => Ok(Some(secret)),
            Err(crate::unlock::Unsealed::NoToken(wanted)) => Err(Error::token(
                format!(
                    "YubiKey {} is not present",
                    wanted
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
                None,
            )),
            Err(crate::unlock::Unsealed::Failed(e)) => Err(e.into()),
        }
    }

    fn save_kept(&self, item: &str, value: &SecretBytes) -> Result<(), Error> {
        let store = self.0.store()?;
        // A tokens.json that cannot be read keeps nothing: the sign-in
        // must not land in clear because the record of the keys is damaged.
        let tokens = vault_secrets::enrolled::Tokens::load()?;
        let recipients = crate::unlock::piv_recipients(&tokens)?;
        if recipients.is_empty() {
            return Ok(store.set(item, value)?);
        }
        let env = vault_secrets::envelope::seal(value, &recipients, item)?;
        Ok(store.set(item, &SecretBytes::new(env.encode()))?)
    }
}

/// The refresh token and its registration are sealed to every enrolled
/// PIV key, as IAM keys are (a touch to unseal, needed only when the
/// memory-only cache is empty, i.e. after a reboot), and kept in the store
/// as an envelope; with no key enrolled the store (the keychain) keeps them
/// as they are.
impl vault_aws::sso::Keep for StoreKeep<'_> {
    fn load(&self, item: &str) -> Result<Option<SecretBytes>, Box<dyn Hinted>> {
        Ok(self.load_kept(item)?)
    }
    fn save(&self, item: &str, value: &SecretBytes) -> Result<(), Box<dyn Hinted>> {
        Ok(self.save_kept(item, value)?)
    }
    fn forget(&self, item: &str) -> bool {
        self.0
            .store()
            .ok()
            .and_then(|store| store.delete(item).ok())
            .unwrap_or(false)
    }
}

/// [`credentials`], signing in to IAM Identity Center with `flow` where
/// an SSO profile needs it.
pub fn credentials_via(
    app: &App,
    profile: &str,
    args: &SessionArgs,
    flow: vault_aws::sso::Flow,
) -> Result<Resolved, Error> {
    // Checked first, so a malformed --mfa-token fails the same whether or
    // not a cached session would have made it unnecessary.
    let token_flag = match &args.mfa_token {
        Some(t) => Some(vault_prompt::validate_mfa_code(t)?),
        None => None,
    };
    if let Some(d) = args.duration {
        check_duration(d)?;
    }
    let cache = app.cache()?;
    let min_remaining = App::min_remaining();

    if let Some((creds, region)) = vault_fast::lookup(
        app.config()?,
        profile,
        &args.options(),
        cache.as_ref(),
        min_remaining,
    )? {
        return Ok(Resolved { creds, region });
    }

    let (chain, root) = resolve_chain(app, profile)?;
    log::debug!(target: "vault", "profile chain: {chain}");
    let plan = vault_profile::plan::build(&chain, &args.options(), &config::process_env, root);
    let keys = |name: &str| crate::unlock::load(app, name);
    let token_mfa = crate::unlock::TokenMfa {
        prompt: app.prompt(),
    };
    let provider = Provider::new(
        cache.as_ref(),
        &keys,
        MfaSources {
            token_flag,
            device: Some(&token_mfa),
            prompt: app.prompt(),
        },
        Options {
            min_remaining,
            lock_dir: vault_base::lock::lock_dir(),
        },
    );
    let ui = SsoUi::default();
    let keep = StoreKeep(app);
    let provider = provider.with_sso(&ui, flow, Some(&keep));
    let creds = provider.credentials(&plan)?;
    for w in provider.warnings.borrow().iter() {
        eprintln!("vault: warning: {w}");
    }
    Ok(Resolved {
        creds,
        region: vault_profile::plan::region(&chain, &args.options()),
    })
}

/// STS accepts 900 s up to 36 h for sessions (roles are capped lower by
/// their own maximum, which STS reports itself).
fn check_duration(d: std::time::Duration) -> Result<(), Error> {
    let secs = d.as_secs();
    if (900..=129_600).contains(&secs) {
        Ok(())
    } else {
        Err(Error::usage(
            format!("--duration {secs}s is out of range"),
            Some("STS sessions last from 15m (900s) to 36h (129600s)".to_string()),
        ))
    }
}

/// Cache ids of every plan that starts from `profile`'s keys or passes
/// through it, for `add`, `remove` and `clear PROFILE`.
pub fn session_ids_involving(app: &App, profile: &str) -> Vec<vault_profile::session::CacheId> {
    let Ok(cfg) = app.config() else {
        return Vec::new();
    };
    let has_keys = stored_key_check(app);
    let mut names: Vec<String> = cfg.profile_names().iter().map(|s| s.to_string()).collect();
    if !names.iter().any(|n| n == profile) {
        names.push(profile.to_string());
    }
    let mut ids = Vec::new();
    for name in names {
        let Ok(chain) = cfg.resolve_with(&name, &config::process_env, &has_keys) else {
            continue;
        };
        if !chain.links().iter().any(|l| l.name == profile) {
            continue;
        }
        for no_session in [false, true] {
            let args = vault_profile::plan::SessionOptions {
                duration: None,
                no_session,
                region: None,
                mfa_token: None,
            };
            let mut roots = vec![
                RootSource::Keys,
                vault_profile::plan::root_source(&chain, false),
            ];
            if let Ok(Some(sso)) = cfg.sso(chain.root()) {
                roots.push(RootSource::Sso(sso));
            }
            for root in roots {
                ids.extend(
                    vault_profile::plan::build(&chain, &args, &config::process_env, root).all_ids(),
                );
            }
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

/// What a confirmation asks the user to type.
pub enum Confirm<'a> {
    /// "y" or "yes": for what can be undone.
    Yes,
    /// The profile's name: for what loses a key (or a token-backed
    /// profile's sessions), where a bare y/N is too easy to answer.
    ProfileName(&'a str),
}

/// Says `warning` (if any), asks `question` and goes on only on the
/// expected answer. Without a way to ask, says how to skip asking
/// (`force_hint`, the same command with `--force`).
pub fn confirm(
    app: &App,
    warning: Option<&str>,
    question: &str,
    expect: Confirm<'_>,
    force_hint: &str,
) -> Result<(), Error> {
    if let Some(w) = warning {
        app.prompt().notify(w);
    }
    let answer = app.prompt().text(question).map_err(|e| match e {
        // The generic hint for a missing prompt is about MFA codes.
        vault_prompt::PromptError::Unavailable(reason) => Error::usage(
            format!("cannot ask for confirmation: {reason}"),
            Some(format!("`{force_hint}` goes ahead without asking")),
        ),
        other => other.into(),
    })?;
    let yes = match expect {
        Confirm::Yes => matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"),
        Confirm::ProfileName(p) => answer.trim() == p,
    };
    if yes {
        Ok(())
    } else {
        Err(Error::usage("nothing was changed", None))
    }
}

/// Whether `profile`'s IAM key is sealed to a token (an envelope exists).
pub fn token_backed(profile: &str) -> Result<bool, Error> {
    Ok(vault_secrets::enrolled::read_envelope(profile)
        .map_err(|e| Error::Other(e.to_string()))?
        .is_some())
}
