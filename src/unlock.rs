//! Unlocking a profile's long-term key: from its envelope, opened by a
//! token (the PIN asked once, a touch), or the store. And where MFA codes
//! come from when a token holds the profile's OATH credential.

use crate::app::App;
use std::time::Duration;
use vault_aws::mfa::DeviceCodes;
use vault_aws::provider::ProviderError;
use vault_base::creds::LongTermKey;
use vault_base::error::Hinted;
use vault_base::secret::{MfaCode, Passphrase};
use vault_base::settings::env_var;
use vault_prompt::Prompt;
use vault_secrets::enrolled::{self, Tokens};
use vault_secrets::envelope::{self, Envelope, OpenError, Recipient};
use vault_secrets::store;
use vault_token::piv::{tries, PivUnwrapper, SlotInfo};

/// PINs a YubiKey refused, remembered so that no vault process sends one
/// again: three callers queued on a lock with the same wrong `VAULT_PIN`
/// would otherwise block the PIN, and without the PUK every envelope
/// without a backup is lost. Kept as salted SHA-256 hashes in the session
/// cache (memory only, private to this uid), never on disk.
pub struct PinGuard {
    cache: Option<Box<dyn vault_profile::session::SessionCache>>,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct RefusedPins {
    salt: String,
    hashes: Vec<String>,
}

/// A refused PIN is remembered this long.
const REFUSED_PIN_MEMORY: Duration = Duration::from_secs(24 * 3600);

impl PinGuard {
    pub fn new(app: &App) -> PinGuard {
        PinGuard {
            cache: app.cache().ok(),
        }
    }

    /// A guard keeping its record in `cache`.
    pub fn with_cache(cache: Box<dyn vault_profile::session::SessionCache>) -> PinGuard {
        PinGuard { cache: Some(cache) }
    }

    fn id(serial: u32) -> vault_profile::session::CacheId {
        vault_profile::session::mfa_record_id(&format!("piv-pin-refused:{serial}"))
    }

    fn load(&self, serial: u32) -> RefusedPins {
        self.cache
            .as_ref()
            .and_then(|c| c.get_raw(&Self::id(serial)).ok().flatten())
            .and_then(|raw| serde_json::from_slice(raw.expose()).ok())
            .unwrap_or_default()
    }

    fn hash(salt: &str, serial: u32, pin: &Passphrase) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(salt.as_bytes());
        h.update(serial.to_be_bytes());
        h.update(pin.expose().as_bytes());
        hex::encode(h.finalize())
    }

    /// Whether YubiKey `serial` already refused `pin`.
    pub fn was_refused(&self, serial: u32, pin: &Passphrase) -> bool {
        let rec = self.load(serial);
        let refused =
            !rec.salt.is_empty() && rec.hashes.contains(&Self::hash(&rec.salt, serial, pin));
        log::debug!(target: "vault", "YubiKey {serial}: {} refused PIN(s) remembered; this one {}",
            rec.hashes.len(), if refused { "among them" } else { "not" });
        refused
    }

    /// Remembers that YubiKey `serial` refused `pin`.
    pub fn refused(&self, serial: u32, pin: &Passphrase) {
        let Some(cache) = &self.cache else {
            log::warn!(target: "vault", "no session cache: the refused PIN cannot be remembered");
            return;
        };
        let mut rec = self.load(serial);
        if rec.salt.is_empty() {
            use rand::RngCore;
            let mut salt = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut salt);
            rec.salt = hex::encode(salt);
        }
        rec.hashes.push(Self::hash(&rec.salt, serial, pin));
        let bytes =
            vault_base::secret::SecretBytes::new(serde_json::to_vec(&rec).unwrap_or_default());
        if let Err(e) = cache.put_raw(&Self::id(serial), &bytes, REFUSED_PIN_MEMORY) {
            log::warn!(target: "vault", "could not remember the refused PIN: {e}");
        }
    }
}

/// The PIN for YubiKey `serial`, which has `tries_left` tries: `VAULT_PIN`
/// (for scripts; it sits in the environment, so the prompt is safer) only
/// while at least 2 tries are left and only if the key has not refused it
/// before; else asked, with the tries left shown, never sending a PIN the
/// key refused.
pub fn pin_for(
    prompt: &dyn Prompt,
    serial: u32,
    tries_left: u8,
    guard: &PinGuard,
) -> Result<Passphrase, String> {
    if let Some(p) = env_var("VAULT_PIN") {
        let pin = Passphrase::new(p);
        if guard.was_refused(serial, &pin) {
            return Err(format!(
                "YubiKey {serial} already refused the PIN in VAULT_PIN, and vault never sends a \
                 refused PIN again ({} left before the PIN is blocked): correct VAULT_PIN, or \
                 unset it to type the PIN",
                tries(tries_left)
            ));
        }
        if tries_left < 2 {
            return Err(format!(
                "YubiKey {serial} has {} left before its PIN is blocked, and vault does not \
                 spend the last one on VAULT_PIN: unset VAULT_PIN and type the PIN, or reset \
                 the PIN with the PUK (`ykman piv access unblock-pin`)",
                tries(tries_left)
            ));
        }
        return Ok(pin);
    }
    for _ in 0..3 {
        let pin = prompt
            .secret(&format!(
                "PIN for YubiKey {serial} ({} left)",
                tries(tries_left)
            ))
            .map_err(|e| e.to_string())?;
        if !guard.was_refused(serial, &pin) {
            return Ok(pin);
        }
        prompt.notify(&format!(
            "YubiKey {serial} already refused that PIN; vault does not send it again."
        ));
    }
    Err(format!(
        "every PIN entered had already been refused by YubiKey {serial}; \
         reset the PIN with the PUK if you have forgotten it (`ykman piv access unblock-pin`)"
    ))
}

/// How long an exec waits for a token-backed profile's key to be inserted.
pub fn token_wait() -> Duration {
    vault_base::settings::Settings::get()
        .token_wait
        .unwrap_or(Duration::from_secs(15))
}

fn token_error(e: impl std::fmt::Display, hint: Option<String>) -> ProviderError {
    ProviderError::Token {
        message: e.to_string(),
        hint,
    }
}

/// Every PIV recipient vault knows (primaries, then backups), for sealing.
pub fn piv_recipients(t: &Tokens) -> Result<Vec<Recipient>, enrolled::TokensError> {
    // Primary keys first: an envelope is opened with its first entry whose
    // key is plugged in, and with both at hand the everyday key is the one
    // to ask for a PIN and a touch, not the backup.
    let mut records: Vec<&vault_secrets::enrolled::TokenRecord> = t.tokens.iter().collect();
    records.sort_by_key(|r| r.role == enrolled::Role::Backup);
    let mut out = Vec::new();
    for rec in records {
        let Some(piv) = &rec.piv else { continue };
        let bad = |detail: String| enrolled::TokensError::BadPublicKey {
            serial: rec.serial,
            detail,
        };
        let bytes = hex::decode(&piv.public_key).map_err(|e| bad(e.to_string()))?;
        let public_key =
            p256::PublicKey::from_sec1_bytes(&bytes).map_err(|e| bad(e.to_string()))?;
        out.push(Recipient::Piv {
            serial: rec.serial,
            slot: piv.slot,
            public_key,
        });
    }
    Ok(out)
}

/// The long-term key of `profile`: unwrapped from its envelope when it has
/// one, else from the store.
pub fn load(app: &App, profile: &str) -> Result<Option<LongTermKey>, ProviderError> {
    let envelope = enrolled::read_envelope(profile).map_err(|e| token_error(e, None))?;
    let Some(bytes) = envelope else {
        return Ok(store::get_key(app.store().map_err(store_err)?, profile)?);
    };
    let item = store::key_item(profile);
    let env = Envelope::decode(&bytes).map_err(|e| {
        let hint = match e {
            envelope::EnvelopeError::UnsupportedVersion { .. } => e.hint().to_string(),
            _ => damaged_hint(profile),
        };
        token_error(
            format!(
                "the envelope of profile \"{profile}\" ({}) is damaged: {e}",
                enrolled::envelope_file(profile).display()
            ),
            Some(hint),
        )
    })?;
    let sealed = Sealed {
        what: format!("the key of profile \"{profile}\""),
        waits_for: format!("to unlock profile \"{profile}\""),
        purpose: format!("to unlock profile {profile}'s key"),
        damaged_hint: damaged_hint(profile),
    };
    let secret = match open_sealed(app, &env, &item, &sealed) {
        Ok(secret) => secret,
        Err(Unsealed::NoToken(wanted)) => return fallback_copy(app, profile, &wanted),
        Err(Unsealed::Failed(e)) => return Err(e),
    };
    let key = store::decode_key(&item, &secret)?;
    reseal_pending(profile, &secret);
    log::debug!(target: "vault", "unwrapped the key of {profile} with a token");
    Ok(Some(key))
}

/// What an envelope holds, for the messages of [`open_sealed`].
pub struct Sealed {
    /// What is sealed, in a sentence: `the key of profile "admin"`.
    pub what: String,
    /// What the wait for a key is for: "Insert YubiKey N {waits_for}".
    pub waits_for: String,
    /// What the touch is for, shown with the touch request.
    pub purpose: String,
    /// What to do when the envelope fails authentication.
    pub damaged_hint: String,
}

/// Why [`open_sealed`] gave nothing.
pub enum Unsealed {
    /// None of the envelope's tokens came within [`token_wait`]: these
    /// serials were wanted.
    NoToken(Vec<u32>),
    Failed(ProviderError),
}

/// Opens `env`, sealed under the item name `item`, with whichever of its
/// tokens is plugged in (waiting [`token_wait`] for one): the PIN asked
/// once and guarded against reuse of a refused one, a touch for
/// `sealed.purpose`. The one way every sealed secret is opened: a
/// profile's IAM key, a kept SSO sign-in.
pub fn open_sealed(
    app: &App,
    env: &Envelope,
    item: &str,
    sealed: &Sealed,
) -> Result<vault_base::secret::SecretBytes, Unsealed> {
    let prompt = app.prompt();
    let wanted: Vec<u32> = env
        .recipients()
        .iter()
        .filter_map(|r| match r {
            envelope::RecipientId::Piv { serial, .. } => Some(*serial),
            _ => None,
        })
        .collect();
    let recorded = recorded_slots();
    let guard = PinGuard::new(app);
    let mut piv = PivUnwrapper::new(
        |serial, tries| pin_for(prompt, serial, tries, &guard),
        |m: &str| prompt.notify(m),
    )
    .on_touch(vault_prompt::touch_events(prompt, sealed.purpose.clone()))
    .on_wrong_pin(|serial, pin, _| guard.refused(serial, pin));
    for (serial, slot, info) in &recorded {
        piv = piv.with_recorded_slot(*serial, *slot, info.clone());
    }
    let has_fido2 = env
        .recipients()
        .iter()
        .any(|r| matches!(r, envelope::RecipientId::Fido2 { .. }));
    let mut unwrappers: Vec<Box<dyn envelope::Unwrapper + '_>> = vec![Box::new(piv)];
    if has_fido2 {
        // Only probed when an entry needs it: HID discovery is not free.
        let mut f = vault_token::fido2::Fido2Unwrapper::new(
            vault_token::fido2::HidAuthenticator::new(Box::new(|m: &str| eprintln!("vault: {m}"))),
        );
        if let Some(pin) = env_var("VAULT_FIDO2_PIN") {
            f = f.with_pin(Passphrase::new(pin));
        }
        unwrappers.push(Box::new(f));
    }
    let mut unwrapper = unwrappers;
    // One vault process at a time goes from "was this PIN refused?" to the
    // card's answer, so parallel callers with a wrong PIN spend one try.
    let _pin_lock = vault_base::lock::Lock::acquire(&vault_base::lock::lock_dir(), "piv-pin")
        .map_err(
            |e| log::warn!(target: "vault", "cannot take the PIN lock ({e}); going on without it"),
        )
        .ok();
    // A sealed secret waits a while for one of its keys to appear.
    let deadline = std::time::Instant::now() + token_wait();
    let mut told = false;
    loop {
        match envelope::open(env, item, &mut unwrapper) {
            Ok(s) => return Ok(s),
            Err(OpenError::NoTokenPresent { .. }) if std::time::Instant::now() < deadline => {
                if !told {
                    prompt.notify(&format!(
                        "Insert YubiKey {} {}",
                        serials(&wanted),
                        sealed.waits_for
                    ));
                    told = true;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            Err(OpenError::NoTokenPresent { .. }) => return Err(Unsealed::NoToken(wanted)),
            Err(e) => {
                if let OpenError::Corrupt {
                    recipient: envelope::RecipientId::Piv { serial, slot, .. },
                } = &e
                {
                    if let Some(e) = regenerated(&recorded, *serial, *slot) {
                        return Err(Unsealed::Failed(token_error(
                            format!("cannot unwrap {}: {e}", sealed.what),
                            e.hint(),
                        )));
                    }
                }
                let hint = match e {
                    OpenError::Corrupt { .. } => Some(sealed.damaged_hint.clone()),
                    _ => e.hint(),
                };
                return Err(Unsealed::Failed(token_error(
                    format!("cannot unwrap {}: {e}", sealed.what),
                    hint,
                )));
            }
        }
    }
}

/// The PIV slots tokens.json recorded at enrollment, with their keys and
/// policies: what the unwrap would otherwise ask each card for. A record
/// that cannot be read is left out (the card is asked instead).
fn recorded_slots() -> Vec<(u32, u8, SlotInfo)> {
    let Ok(t) = Tokens::load() else {
        return Vec::new();
    };
    t.tokens
        .iter()
        .filter_map(|rec| {
            let p = rec.piv.as_ref()?;
            let bytes = hex::decode(&p.public_key).ok()?;
            let info = SlotInfo {
                public_key: p256::PublicKey::from_sec1_bytes(&bytes).ok()?,
                pin_policy: p.pin_policy,
                touch_policy: p.touch_policy,
                origin: None,
            };
            Some((rec.serial, p.slot, info))
        })
        .collect()
}

/// After an envelope entry failed authentication with a slot key taken
/// from tokens.json: whether the card's slot now holds another key, which
/// is the likelier story than a damaged file.
fn regenerated(
    recorded: &[(u32, u8, SlotInfo)],
    serial: u32,
    slot: u8,
) -> Option<vault_token::piv::PivError> {
    let (_, _, info) = recorded
        .iter()
        .find(|(s, sl, _)| *s == serial && *sl == slot)?;
    vault_token::piv::slot_mismatch(serial, slot, &info.public_key)
}

/// What to do about a damaged envelope: vault never deletes or rewrites
/// one on its own (it is the only copy of the key).
fn damaged_hint(profile: &str) -> String {
    format!(
        "vault left the file as it is: restore it from a backup if you have one; otherwise \
         remove the profile's key with `vault remove {profile}`, then `vault add {profile}` \
         and `vault hw enroll --profile {profile}` again"
    )
}

fn serials(s: &[u32]) -> String {
    s.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" or ")
}

fn store_err(e: crate::error::Error) -> ProviderError {
    match e {
        crate::error::Error::Store(s) => ProviderError::Store(s),
        other => token_error(other, None),
    }
}

/// No token came: the store's copy, if the user chose to keep one at
/// enrollment (`--keep-keychain-copy`), after a warning.
fn fallback_copy(
    app: &App,
    profile: &str,
    wanted: &[u32],
) -> Result<Option<LongTermKey>, ProviderError> {
    let copy = app
        .store()
        .ok()
        .and_then(|s| store::get_key(s, profile).ok().flatten());
    match copy {
        Some(k) => {
            eprintln!(
                "vault: warning: YubiKey {} is not present; using the {} store's copy of profile \"{profile}\"'s key",
                serials(wanted),
                app.backend.name()
            );
            Ok(Some(k))
        }
        None => Err(token_error(
            format!(
                "profile \"{profile}\" is unlocked by YubiKey {}, which is not present",
                serials(wanted)
            ),
            Some(format!(
                "insert YubiKey {} and try again (vault waited {} s; VAULT_TOKEN_WAIT changes that)",
                serials(wanted),
                token_wait().as_secs()
            )),
        )),
    }
}

/// A backup enrolled while this profile's envelope could not be opened
/// becomes a recipient now that it is open.
fn reseal_pending(profile: &str, secret: &vault_base::secret::SecretBytes) {
    let Ok(mut t) = Tokens::load() else { return };
    if !t.pending_backup.iter().any(|p| p == profile) {
        return;
    }
    // A FIDO2 entry cannot be re-made without its key's touch; such
    // envelopes keep their recipients.
    let fido2 = enrolled::read_envelope(profile)
        .ok()
        .flatten()
        .and_then(|b| Envelope::decode(&b).ok())
        .is_some_and(|e| {
            e.recipients()
                .iter()
                .any(|r| matches!(r, envelope::RecipientId::Fido2 { .. }))
        });
    if fido2 {
        return;
    }
    let Ok(recipients) = piv_recipients(&t) else {
        return;
    };
    match envelope::seal(secret, &recipients, &store::key_item(profile)) {
        Ok(env) => {
            if enrolled::write_envelope(profile, &env.encode()).is_ok() {
                t.pending_backup.retain(|p| p != profile);
                let _ = t.save();
                log::debug!(target: "vault", "added the pending backup key to {profile}'s envelope");
            }
        }
        Err(e) => {
            log::warn!(target: "vault", "could not add the backup key to {profile}'s envelope: {e}")
        }
    }
}

/// MFA codes from the OATH credential vault put on a token for an MFA device.
pub struct TokenMfa<'a> {
    pub prompt: &'a dyn Prompt,
}

impl DeviceCodes for TokenMfa<'_> {
    fn code(&self, mfa_serial: &str, step: u64) -> Result<Option<MfaCode>, Box<dyn Hinted>> {
        let t = Tokens::load().map_err(|e| Box::new(e) as Box<dyn Hinted>)?;
        let Some((serial, rec)) = t.oath_for(mfa_serial) else {
            return Ok(None);
        };
        let prompt = self.prompt;
        let codes =
            vault_token::oath::TokenCodes::new(serial, Box::new(move |m: &str| prompt.notify(m)))
                .on_touch(Box::new(vault_prompt::touch_events(
                    prompt,
                    format!("for the MFA code of {mfa_serial}"),
                )))
                .with_name(rec.name.clone())
                .with_wait(token_wait());
        codes.code(mfa_serial, step)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use std::cell::RefCell;
    use vault_base::secret::MfaCode;
    use vault_profile::session::{MemoryCache, SessionCache};
    use vault_prompt::PromptError;

    /// A terminal that answers with `answers` in turn and records what it
    /// was asked and told.
    #[derive(Default)]
    struct Typist {
        answers: RefCell<Vec<&'static str>>,
        asked: RefCell<Vec<String>>,
        told: RefCell<Vec<String>>,
    }

    impl Prompt for Typist {
        fn mfa_code(&self, _: &str, _: &str) -> Result<MfaCode, PromptError> {
            Err(PromptError::Unavailable("not asked here".into()))
        }
        fn secret(&self, label: &str) -> Result<Passphrase, PromptError> {
            self.asked.borrow_mut().push(label.to_string());
            Ok(Passphrase::new(self.answers.borrow_mut().remove(0)))
        }
        fn text(&self, _: &str) -> Result<String, PromptError> {
            Err(PromptError::Unavailable("not asked here".into()))
        }
        fn notify(&self, message: &str) {
            self.told.borrow_mut().push(message.to_string());
        }
    }

    #[test]
    fn a_typed_pin_the_key_refused_is_never_sent_again() {
        assert!(
            env_var("VAULT_PIN").is_none(),
            "unset VAULT_PIN to run this test: it is about the prompt"
        );
        let cache = MemoryCache::default();
        let guard = PinGuard::with_cache(Box::new(cache.clone()));
        let typist = Typist {
            answers: RefCell::new(vec!["111111"]),
            ..Typist::default()
        };
        // The tries left are shown, once, with no doubled colon.
        let pin = pin_for(&typist, 7, 3, &guard).unwrap();
        assert_eq!(pin.expose(), "111111");
        assert_eq!(*typist.asked.borrow(), ["PIN for YubiKey 7 (3 tries left)"]);

        // The key refused it: typed again, it is not sent; the next is.
        guard.refused(7, &pin);
        let typist = Typist {
            answers: RefCell::new(vec!["111111", "222222"]),
            ..Typist::default()
        };
        let pin = pin_for(&typist, 7, 2, &guard).unwrap();
        assert_eq!(pin.expose(), "222222");
        assert_eq!(typist.asked.borrow().len(), 2);
        assert!(typist.told.borrow()[0].contains("already refused that PIN"));

        // Another key has its own record; the record holds no PIN in clear.
        assert!(!guard.was_refused(8, &Passphrase::new("111111")));
        for id in cache.ids().unwrap() {
            let v = cache.get_raw(&id).unwrap().unwrap();
            assert!(!String::from_utf8_lossy(v.expose()).contains("111111"));
        }

        // Three refused PINs in a row: vault gives up without sending any.
        let typist = Typist {
            answers: RefCell::new(vec!["111111", "111111", "111111"]),
            ..Typist::default()
        };
        let e = pin_for(&typist, 7, 1, &guard).unwrap_err();
        assert!(e.contains("unblock-pin"), "{e}");
        assert_eq!(
            *typist.asked.borrow().first().unwrap(),
            "PIN for YubiKey 7 (1 try left)"
        );
    }
}
