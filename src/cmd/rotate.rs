//! `vault rotate PROFILE`: replace a profile's IAM access key with a new one.
//!
//! aws-vault's rotate needs two MFA codes in one 30 s window (one session
//! for the IAM calls, another to check the new key) and, when the second
//! fails, leaves the old key active beside a new one. Here one MFA session
//! (or the cached one) serves every IAM call, the new key is checked with
//! GetCallerIdentity, which needs no MFA, and the steps are ordered so that
//! a working key is stored whatever fails:
//!
//! 1. GetCallerIdentity with the stored key: it works, and whose it is;
//! 2. the MFA session (GetSessionToken, cached like `exec`'s), or the stored
//!    key itself when the profile has no `mfa_serial` or `--no-session` is
//!    given (AWS refuses IAM calls from sessions made without MFA);
//! 3. ListAccessKeys, CreateAccessKey;
//! 4. the new key stored in place of the old (re-sealed to every enrolled
//!    YubiKey for a token-backed profile: sealing needs public keys only);
//! 5. GetCallerIdentity with the new key, retried while IAM propagates it;
//! 6. only then DeleteAccessKey of the old one.
//!
//! A failure before 6 puts the old key back and deletes the new one; a
//! failure at 6 keeps the new one. Either way the message lists the keys
//! that exist in AWS afterwards, and which one is stored.

use crate::app::App;
use crate::error::Error;
use crate::unlock::{piv_recipients, TokenMfa};
use std::time::{Duration, Instant};
use vault_aws::iam::{self, Iam, IamError, KeyInfo};
use vault_aws::mfa::MfaSources;
use vault_aws::provider::{Options, Provider, ProviderError};
use vault_aws::sts::Sts;
use vault_base::creds::{Credentials, LongTermKey};
use vault_base::lock::Lock;
use vault_base::secret::mask_key_id as mask;
use vault_fast::cli::RotateArgs;
use vault_profile::config;
use vault_profile::plan::{Plan, RootSource, SessionOptions};
use vault_profile::session::CacheId;
use vault_secrets::enrolled::{self, Tokens};
use vault_secrets::envelope::{self, Envelope, RecipientId};
use vault_secrets::store;

/// How long a new key may take to be accepted by STS: IAM is eventually
/// consistent, and a new key usually works within seconds.
fn propagation_wait() -> Duration {
    vault_base::settings::Settings::get()
        .rotate_wait
        .unwrap_or(Duration::from_secs(30))
}

fn fail(message: String, hint: Option<String>) -> Error {
    Error::usage(message, hint)
}

/// Where the profile's key lives.
enum Home {
    Store,
    /// A token-backed profile: its envelope as it was before the rotation,
    /// and whether a clear copy was kept in the store at enrollment.
    Envelope {
        old_bytes: Vec<u8>,
        store_copy: bool,
    },
}

/// The access keys of the IAM user as ListAccessKeys shows them after a
/// failure, for the message: what exists in AWS now, and what is stored.
struct Listing<'a> {
    user: &'a str,
    stored: String,
    listed: Result<Vec<KeyInfo>, IamError>,
    /// What vault believes exists, when the listing failed.
    believed: Vec<String>,
}

impl Listing<'_> {
    fn ids(&self) -> Vec<String> {
        match &self.listed {
            Ok(keys) => keys.iter().map(|k| k.access_key_id.clone()).collect(),
            Err(_) => self.believed.clone(),
        }
    }

    fn describe(&self) -> String {
        let stored = |id: &str| if id == self.stored { ", stored" } else { "" };
        match &self.listed {
            Ok(keys) => {
                let mut keys = keys.clone();
                // The stored one first: the one that matters.
                keys.sort_by_key(|k| k.access_key_id != self.stored);
                let shown: Vec<String> = keys
                    .iter()
                    .map(|k| {
                        format!(
                            "{} ({}{})",
                            mask(&k.access_key_id),
                            k.status,
                            stored(&k.access_key_id)
                        )
                    })
                    .collect();
                format!(
                    "Access keys of IAM user \"{}\" in AWS now: {}.",
                    self.user,
                    if shown.is_empty() {
                        "none".to_string()
                    } else {
                        shown.join(", ")
                    }
                )
            }
            Err(e) => {
                let shown: Vec<String> = self
                    .believed
                    .iter()
                    .map(|id| format!("{}{}", mask(id), stored(id)))
                    .collect();
                format!(
                    "Could not list IAM user \"{}\"'s access keys to check ({e}); as far as vault knows, AWS has: {}.",
                    self.user,
                    shown.join(", ")
                )
            }
        }
    }
}

/// Everything the steps after CreateAccessKey need.
struct Rotation<'a> {
    app: &'a App,
    profile: &'a str,
    user: &'a str,
    iam: &'a Iam,
    creds: &'a Credentials,
    home: &'a Home,
    old: &'a LongTermKey,
}

impl Rotation<'_> {
    fn listing(&self, stored: &str, believed: &[&str]) -> Listing<'_> {
        Listing {
            user: self.user,
            stored: stored.to_string(),
            listed: self.iam.list_access_keys(self.creds, self.user),
            believed: believed.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn delete_hint(&self, id: &str) -> String {
        delete_hint(self.profile, self.user, id)
    }

    /// Puts `new` where the old key was. Returns what was done, for the user.
    fn put_new(&self, new: &LongTermKey) -> Result<String, Error> {
        match self.home {
            Home::Store => {
                let s = self.app.store()?;
                store::set_key(s, self.profile, new)?;
                let back = store::get_key(s, self.profile)?;
                if back.as_ref().map(|k| k.access_key_id.as_str()) != Some(&new.access_key_id) {
                    return Err(Error::Other(
                        "the store did not read back the key just written".into(),
                    ));
                }
                Ok(format!(
                    "Stored it in the {} store in place of the old one.",
                    self.app.backend.name()
                ))
            }
            Home::Envelope { store_copy, .. } => {
                let t = Tokens::load()?;
                let recipients = piv_recipients(&t)?;
                let item = store::key_item(self.profile);
                let env = envelope::seal(&store::encode_key(new), &recipients, &item)
                    .map_err(|e| Error::Other(format!("cannot seal the new key: {e}")))?;
                let bytes = env.encode();
                let decoded = Envelope::decode(&bytes)?;
                if decoded.recipients().len() != recipients.len() {
                    return Err(Error::Other(
                        "the new envelope does not hold every recipient".into(),
                    ));
                }
                enrolled::write_envelope(self.profile, &bytes)?;
                let back = enrolled::read_envelope(self.profile)?;
                if back.as_deref() != Some(bytes.as_slice()) {
                    return Err(Error::Other(
                        "the envelope did not read back as written".into(),
                    ));
                }
                if *store_copy {
                    store::set_key(self.app.store()?, self.profile, new).map_err(|e| {
                        Error::Other(format!("cannot update the kept store copy: {e}"))
                    })?;
                }
                let serials: Vec<String> = recipients
                    .iter()
                    .filter_map(|r| match r.id() {
                        RecipientId::Piv { serial, .. } => Some(serial.to_string()),
                        _ => None,
                    })
                    .collect();
                Ok(format!(
                    "Sealed it in profile \"{}\"'s envelope for YubiKey {}{}.",
                    self.profile,
                    serials.join(", "),
                    if *store_copy {
                        format!(
                            ", and replaced the kept copy in the {} store",
                            self.app.backend.name()
                        )
                    } else {
                        String::new()
                    }
                ))
            }
        }
    }

    /// Puts the old key back as it was.
    fn restore_old(&self) -> Result<(), Error> {
        match self.home {
            Home::Store => Ok(store::set_key(self.app.store()?, self.profile, self.old)?),
            Home::Envelope {
                old_bytes,
                store_copy,
            } => {
                enrolled::write_envelope(self.profile, old_bytes)?;
                if *store_copy {
                    store::set_key(self.app.store()?, self.profile, self.old)?;
                }
                Ok(())
            }
        }
    }

    /// After `new` was created but could not be stored or proven: the old
    /// key back in its place, and `new` deleted again (its secret is only
    /// in this process's memory).
    fn undo(&self, new: &LongTermKey, why: String) -> Error {
        let (o, n) = (mask(&self.old.access_key_id), mask(&new.access_key_id));
        let start = format!("created the new access key {n} but {why}");
        if let Err(e) = self.restore_old() {
            let listing = self.listing(
                &new.access_key_id,
                &[&self.old.access_key_id, &new.access_key_id],
            );
            return fail(
                format!(
                    "{start}; putting the old key {o} back failed too ({e}), so {n} stays stored and neither key was deleted. {}",
                    listing.describe()
                ),
                Some(format!(
                    "check the stored key with `vault exec {} --no-session -- aws sts get-caller-identity`",
                    self.profile
                )),
            );
        }
        match self
            .iam
            .delete_access_key(self.creds, self.user, &new.access_key_id)
        {
            Ok(()) => {
                let listing = self.listing(&self.old.access_key_id, &[&self.old.access_key_id]);
                fail(
                    format!(
                        "{start}; the old key {o} is stored again and {n} was deleted. {}",
                        listing.describe()
                    ),
                    None,
                )
            }
            Err(e) => {
                let listing = self.listing(
                    &self.old.access_key_id,
                    &[&self.old.access_key_id, &new.access_key_id],
                );
                fail(
                    format!(
                        "{start}; the old key {o} is stored again, but {n} could not be deleted ({e}) and is stored nowhere. {}",
                        listing.describe()
                    ),
                    Some(format!("{n} is of no use now: {}", self.delete_hint(&new.access_key_id))),
                )
            }
        }
    }
}

/// How to delete a key by hand, with the credentials vault has. IDs are
/// shown masked, so the user is told how to see them in full.
fn delete_hint(profile: &str, user: &str, id: &str) -> String {
    let n = id.chars().count();
    let tail: String = id.chars().skip(n.saturating_sub(4)).collect();
    format!(
        "delete it with `vault exec {profile} -- aws iam delete-access-key --user-name {user} --access-key-id ID`, \
         ID being the one ending in {tail} (`vault exec {profile} -- aws iam list-access-keys --user-name {user}` shows the full IDs)"
    )
}

/// GetCallerIdentity with the new key itself, retried while IAM propagates it.
fn prove(sts: &Sts, new: &LongTermKey, want_arn: &str) -> Result<(), String> {
    let creds = Credentials::LongTerm(new.clone());
    let deadline = Instant::now() + propagation_wait();
    let mut delay = Duration::from_millis(500);
    let mut told = false;
    loop {
        match sts.caller_arn(&creds) {
            Ok(arn) if arn == want_arn => return Ok(()),
            Ok(arn) => return Err(format!("STS says it belongs to {arn}, not to {want_arn}")),
            Err(e) if Instant::now() + delay < deadline => {
                log::debug!(target: "vault", "the new key does not work yet ({e}); trying again in {} ms", delay.as_millis());
                if !told {
                    eprintln!("Waiting for AWS to accept the new key…");
                    told = true;
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Where the key of `profile` lives; refuses envelopes whose recipients
/// cannot be sealed to again without their token (FIDO2, unknown kinds).
fn home_of(app: &App, profile: &str) -> Result<Home, Error> {
    let Some(bytes) = enrolled::read_envelope(profile)? else {
        return Ok(Home::Store);
    };
    let env = Envelope::decode(&bytes).map_err(|e| {
        Error::token(
            format!("the envelope of profile \"{profile}\" is damaged: {e}"),
            e.hint().to_string(),
        )
    })?;
    if env
        .recipients()
        .iter()
        .any(|r| !matches!(r, RecipientId::Piv { .. }))
    {
        return Err(fail(
            format!("profile \"{profile}\"'s key is wrapped by a FIDO2 key (or a token this vault does not know), which cannot be sealed to again without it; nothing was changed"),
            Some("rotate by hand: create a key, `vault remove` and `vault add` it, and enroll again".into()),
        ));
    }
    let store_copy = app
        .store()
        .ok()
        .and_then(|s| s.get(&store::key_item(profile)).ok().flatten())
        .is_some();
    Ok(Home::Envelope {
        old_bytes: bytes,
        store_copy,
    })
}

/// The plan whose credentials make the IAM calls: the profile's own MFA
/// session, or none (the stored key itself) when it has no `mfa_serial` or
/// `--no-session` is given. Roles it may assume are not needed, and AWS
/// refuses IAM calls from a session made without MFA.
fn iam_plan(
    chain: &config::ProfileChain,
    no_session: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Plan {
    let args = SessionOptions {
        no_session,
        ..SessionOptions::default()
    };
    let mut plan = vault_profile::plan::build(chain, &args, env, RootSource::Keys);
    plan.roles.clear();
    if plan
        .session
        .as_ref()
        .is_some_and(|s| s.mfa_serial.is_none())
    {
        plan.session = None;
    }
    plan
}

/// Whether IAM user's access keys (`before`, as ListAccessKeys gave them)
/// leave room for a new one beside the stored key `old`.
#[derive(Debug, PartialEq)]
enum Room<'a> {
    Free,
    /// The stored key is not the user's (deleted, or another user's).
    NotListed,
    /// AWS allows two keys per user; `other` is the one beside the stored key.
    Full {
        other: &'a KeyInfo,
    },
}

fn room_for_new_key<'a>(before: &'a [KeyInfo], old: &str) -> Room<'a> {
    if !before.iter().any(|k| k.access_key_id == old) {
        return Room::NotListed;
    }
    match before.iter().find(|k| k.access_key_id != old) {
        Some(other) => Room::Full { other },
        None => Room::Free,
    }
}

/// A key listed `now` that was not there `before`: made by a
/// CreateAccessKey whose answer was lost, so its secret is nowhere.
fn made_since(before: &[KeyInfo], now: Vec<String>) -> Option<String> {
    now.into_iter()
        .find(|id| !before.iter().any(|k| &k.access_key_id == id))
}

pub fn run(app: &App, args: &RotateArgs) -> Result<(), Error> {
    let token_flag = match &args.mfa_token {
        Some(t) => Some(vault_prompt::validate_mfa_code(t)?),
        None => None,
    };
    let profile = args.profile.as_str();
    let (chain, _) = super::resolve_chain(app, profile)?;
    let root = chain.root();
    if root.name != profile {
        return Err(fail(
            format!(
                "profile \"{profile}\" has no access key of its own: its credentials come from profile \"{}\"",
                root.name
            ),
            Some(format!("rotate that profile's key: vault rotate {}", root.name)),
        ));
    }
    let mut home = home_of(app, profile)?;
    // Two rotations of one profile at once would each delete the other's key.
    let lock_dir = vault_base::lock::lock_dir();
    let lock_name = CacheId::new(&["rotate", profile]);
    let _lock = Lock::acquire(&lock_dir, lock_name.as_str()).map_err(|e| {
        Error::Provider(ProviderError::Lock {
            path: lock_dir.join(lock_name.as_str()),
            detail: e.to_string(),
        })
    })?;

    let old = crate::unlock::load(app, profile)?.ok_or_else(|| ProviderError::NoStoredKey {
        profile: profile.to_string(),
    })?;
    // Opening the envelope may have re-sealed it for a pending backup:
    // what is put back on failure is the envelope as it is now.
    if let Home::Envelope { old_bytes, .. } = &mut home {
        if let Ok(Some(b)) = enrolled::read_envelope(profile) {
            *old_bytes = b;
        }
    }

    let plan = iam_plan(&chain, args.no_session, &config::process_env);
    let sts = Sts::new(plan.endpoint.clone()).map_err(ProviderError::from)?;
    let iam = Iam::new(iam::Endpoint::for_profile(root, &config::process_env))
        .map_err(|e| Error::Other(e.to_string()))?;

    // 1. The stored key works, and whose it is.
    let arn = sts
        .caller_arn(&Credentials::LongTerm(old.clone()))
        .map_err(|e| {
            fail(
                format!(
                    "the stored key {} of profile \"{profile}\" does not work ({e}); nothing was changed",
                    mask(&old.access_key_id)
                ),
                e.hint(),
            )
        })?;
    let user = iam::user_name_from_arn(&arn)
        .ok_or_else(|| {
            fail(
                format!("profile \"{profile}\"'s key belongs to {arn}, not to an IAM user; only IAM users' access keys can be rotated"),
                None,
            )
        })?
        .to_string();
    eprintln!(
        "Rotating the access key {} of profile \"{profile}\" (IAM user {user}).",
        mask(&old.access_key_id)
    );

    // 2. One MFA session for every IAM call.
    let cache = app.cache()?;
    let creds = if plan.session.is_some() {
        let keys =
            |_: &str| -> Result<Option<LongTermKey>, ProviderError> { Ok(Some(old.clone())) };
        let token_mfa = TokenMfa {
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
                min_remaining: App::min_remaining(),
                lock_dir: lock_dir.clone(),
            },
        );
        let creds = provider.credentials(&plan)?;
        for w in provider.warnings.borrow().iter() {
            eprintln!("vault: warning: {w}");
        }
        creds
    } else {
        log::debug!(target: "vault", "calling IAM with the stored key itself (no MFA session: no mfa_serial, or --no-session)");
        Credentials::LongTerm(old.clone())
    };

    // 3. Room for a second key.
    let before = iam.list_access_keys(&creds, &user).map_err(|e| {
        let hint = e.hint();
        fail(
            format!(
                "cannot list the access keys of IAM user \"{user}\" ({e}); nothing was changed"
            ),
            hint,
        )
    })?;
    match room_for_new_key(&before, &old.access_key_id) {
        Room::Free => {}
        Room::NotListed => {
            return Err(fail(
                format!(
                    "IAM does not list the stored key {} among IAM user \"{user}\"'s access keys; nothing was changed",
                    mask(&old.access_key_id)
                ),
                None,
            ))
        }
        Room::Full { other } => {
            let listing = Listing {
                user: &user,
                stored: old.access_key_id.clone(),
                listed: Ok(before.clone()),
                believed: Vec::new(),
            };
            return Err(fail(
                format!(
                    "IAM user \"{user}\" already has two access keys, the most AWS allows, so there is no room for a new one; nothing was changed. {}",
                    listing.describe()
                ),
                Some(format!(
                    "if {} is not used elsewhere, {}; then rotate again",
                    mask(&other.access_key_id),
                    delete_hint(profile, &user, &other.access_key_id)
                )),
            ));
        }
    }

    let rotation = Rotation {
        app,
        profile,
        user: &user,
        iam: &iam,
        creds: &creds,
        home: &home,
        old: &old,
    };

    // 4. The new key.
    let new = match iam.create_access_key(&creds, &user) {
        Ok(k) => k,
        Err(e) => {
            let listing = rotation.listing(&old.access_key_id, &[&old.access_key_id]);
            let mut message = format!(
                "could not create a new access key for IAM user \"{user}\" ({e}); nothing was changed: the old key {} is still stored. {}",
                mask(&old.access_key_id),
                listing.describe()
            );
            let mut hint = e.hint();
            // A call whose answer was lost may still have made a key.
            if let Some(orphan) = made_since(&before, listing.ids()) {
                message.push_str(&format!(
                    " {} was made by the failed call, and vault never received its secret.",
                    mask(&orphan)
                ));
                hint = Some(rotation.delete_hint(&orphan));
            }
            return Err(fail(message, hint));
        }
    };
    eprintln!("Created the new access key {}.", mask(&new.access_key_id));

    // 5. Stored in place of the old one.
    match rotation.put_new(&new) {
        Ok(said) => eprintln!("{said}"),
        Err(e) => return Err(rotation.undo(&new, format!("could not store it ({e})"))),
    }

    // 6. Proven to work.
    if let Err(e) = prove(&sts, &new, &arn) {
        return Err(rotation.undo(&new, format!("could not prove it works ({e})")));
    }
    eprintln!("The new key works (GetCallerIdentity: {arn}).");

    // The new key stays. Sessions made with the old one stay cached: STS
    // credentials are valid until they expire and cannot be revoked by
    // deleting the key that made them (AWS IAM User Guide, "Permissions
    // for temporary security credentials"), so dropping them would only
    // cost the next `exec` a new MFA code, which right after the rotation
    // is the one just spent, and a wait of up to 30 s for the next one.
    // A backup waiting for this envelope is in it now.
    if matches!(home, Home::Envelope { .. }) {
        if let Ok(mut t) = Tokens::load() {
            if t.pending_backup.iter().any(|p| p == profile) {
                t.pending_backup.retain(|p| p != profile);
                let _ = t.save();
            }
        }
    }

    // 7. Only now the old key goes.
    if let Err(e) = iam.delete_access_key(&creds, &user, &old.access_key_id) {
        let listing = rotation.listing(
            &new.access_key_id,
            &[&new.access_key_id, &old.access_key_id],
        );
        return Err(fail(
            format!(
                "the new key {} is stored and works, but the old key {} could not be deleted ({e}). {}",
                mask(&new.access_key_id),
                mask(&old.access_key_id),
                listing.describe()
            ),
            Some(format!(
                "the old key still works for whoever has it: {}",
                rotation.delete_hint(&old.access_key_id)
            )),
        ));
    }
    eprintln!("Deleted the old access key {}.", mask(&old.access_key_id));
    println!(
        "Rotated the access key of profile \"{profile}\": {} replaced by {}.",
        mask(&old.access_key_id),
        mask(&new.access_key_id)
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    //! rotate's decisions that need no AWS: which credentials call IAM,
    //! whether there is room for a new key, which key a lost call made,
    //! and what the user is told. The calls themselves run against the
    //! rig (tests/cli_rotate.rs).
    use super::*;
    use vault_profile::config::ConfigFile;

    const OLD: &str = "AKIAOLDKEXAMPLE00001";
    const NEW: &str = "AKIANEWKEXAMPLE00002";
    const OTHER: &str = "AKIAOTHEREXAMPLE0003";
    const MFA: &str = "arn:aws:iam::111111111111:mfa/p";

    fn key(id: &str, status: &str) -> KeyInfo {
        KeyInfo {
            access_key_id: id.into(),
            status: status.into(),
        }
    }

    /// The chain of profile p, which has a stored key.
    fn chain(config: &str) -> config::ProfileChain {
        let cfg = ConfigFile::parse(config, "config").unwrap();
        cfg.resolve_with("p", &|_| None, &|n| n == "p").unwrap()
    }

    #[test]
    fn iam_is_called_from_the_profiles_mfa_session_else_with_the_key_itself() {
        let with_mfa = chain(&format!(
            "[profile p]\nmfa_serial = {MFA}\nrole_arn = arn:aws:iam::111111111111:role/r\n"
        ));
        // The profile's own MFA session; its role is not needed.
        let plan = iam_plan(&with_mfa, false, &|_| None);
        assert_eq!(
            plan.session.as_ref().and_then(|s| s.mfa_serial.as_deref()),
            Some(MFA)
        );
        assert!(plan.roles.is_empty());
        // --no-session: the key itself.
        let plan = iam_plan(&with_mfa, true, &|_| None);
        assert!(plan.session.is_none() && plan.roles.is_empty());
        // No MFA device: AWS refuses IAM calls from a session without
        // MFA, so the key itself, not the session `exec` would make.
        let plan = iam_plan(&chain("[profile p]\n"), false, &|_| None);
        assert!(plan.session.is_none() && plan.roles.is_empty());
    }

    #[test]
    fn rotate_uses_the_mfa_session_exec_caches() {
        // One cache id for both: a session `exec p` made serves rotate
        // with no new code, and the other way round.
        let c = chain(&format!("[profile p]\nmfa_serial = {MFA}\n"));
        let exec =
            vault_profile::plan::build(&c, &SessionOptions::default(), &|_| None, RootSource::Keys);
        let rotate = iam_plan(&c, false, &|_| None);
        assert!(rotate.session_id().is_some());
        assert_eq!(rotate.session_id(), exec.session_id());
    }

    #[test]
    fn a_new_key_needs_the_stored_one_listed_and_no_second_key_beside_it() {
        assert_eq!(room_for_new_key(&[key(OLD, "Active")], OLD), Room::Free);
        // Not the user's key (deleted meanwhile, or another user's).
        assert_eq!(room_for_new_key(&[], OLD), Room::NotListed);
        assert_eq!(
            room_for_new_key(&[key(OTHER, "Active")], OLD),
            Room::NotListed
        );
        // Two keys, the most AWS allows: the other one is named, in
        // either order, active or not.
        for before in [
            [key(OLD, "Active"), key(OTHER, "Inactive")],
            [key(OTHER, "Inactive"), key(OLD, "Active")],
        ] {
            assert_eq!(
                room_for_new_key(&before, OLD),
                Room::Full {
                    other: &key(OTHER, "Inactive")
                }
            );
        }
    }

    #[test]
    fn a_key_made_by_a_create_call_whose_answer_was_lost_is_found() {
        let before = [key(OLD, "Active")];
        assert_eq!(
            made_since(&before, vec![OLD.into(), NEW.into()]),
            Some(NEW.to_string())
        );
        assert_eq!(made_since(&before, vec![OLD.into()]), None);
        assert_eq!(made_since(&before, vec![]), None);
    }

    #[test]
    fn the_message_lists_the_keys_in_aws_stored_one_first_ids_masked() {
        let listing = |listed, stored: &str| Listing {
            user: "u",
            stored: stored.into(),
            listed,
            believed: vec![OLD.into(), NEW.into()],
        };
        assert_eq!(
            listing(Ok(vec![key(OLD, "Active"), key(NEW, "Active")]), NEW).describe(),
            "Access keys of IAM user \"u\" in AWS now: ****************0002 (Active, stored), \
             ****************0001 (Active)."
        );
        assert_eq!(
            listing(Ok(vec![]), OLD).describe(),
            "Access keys of IAM user \"u\" in AWS now: none."
        );
        // The listing failed: what vault believes, said as such.
        let failed = IamError::Unreachable {
            operation: "ListAccessKeys",
            endpoint: "iam.amazonaws.com".into(),
            detail: "timed out".into(),
        };
        let said = listing(Err(failed), NEW).describe();
        assert!(
            said.starts_with("Could not list IAM user \"u\"'s access keys to check (")
                && said.ends_with(
                    "as far as vault knows, AWS has: ****************0001, ****************0002, stored."
                ),
            "{said}"
        );
        assert!(!said.contains(OLD) && !said.contains(NEW));
        // The hint names the key by the end of its ID, and how to see it whole.
        let hint = delete_hint("p", "u", NEW);
        assert!(
            hint.contains("the one ending in 0002")
                && hint.contains("list-access-keys --user-name u"),
            "{hint}"
        );
    }
}
