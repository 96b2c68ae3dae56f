//! `vault hw enroll --profile P --create-mfa-device`: the profile's IAM
//! virtual MFA device, created, loaded into the YubiKey's OATH applet and
//! enabled, with nobody ever seeing its seed or typing a code.
//!
//! 1. Before the card is touched ([`prepare`]): the profile's long-term key
//!    (from the store, or its envelope) and GetCallerIdentity with it, which
//!    needs no permission, give the IAM user. IAM calls are made with the
//!    long-term key itself: the device does not exist yet, and AWS refuses
//!    IAM calls from sessions made without MFA.
//! 2. After the PIV enrollment ([`create`]): CreateVirtualMFADevice named
//!    after the user. Its `Base32StringSeed` is held in [`SecretBytes`]
//!    only (the QR code, which holds it too, is wiped unread), decoded, put
//!    into the OATH applet as a touch-required credential, and dropped.
//! 3. The card computes the codes of two consecutive time steps, N and
//!    N+1: CALCULATE takes the time step as its input, so both come at once
//!    (a touch each) instead of 30 s apart. Both are checked against
//!    RFC 6238 of the seed before the seed goes, so a card that stored
//!    something else is caught here, not by AWS.
//! 4. EnableMFADevice with the two codes, which are then remembered as
//!    used, like every code vault sends. If it fails, the OATH credential
//!    and the device are deleted again; if its answer is lost,
//!    ListMFADevices tells whether it took effect.
//! 5. The OATH credential recorded in tokens.json and `mfa_serial` in the
//!    profile.

use crate::app::App;
use crate::error::Error;
use std::time::Duration;
use vault_aws::iam::{self, Iam, IamError};
use vault_aws::sts::Sts;
use vault_base::creds::Credentials;
use vault_base::secret::{MfaCode, SecretBytes};
use vault_fast::cli::EnrollArgs;
use vault_profile::config;
use vault_secrets::enrolled::{OathRecord, Tokens};
use vault_token::oath::{Algorithm, OathSession, TOUCH_NOTICE_AFTER};
use zeroize::Zeroizing;

/// What [`prepare`] established before the card was changed.
pub struct Prepared {
    profile: String,
    user: String,
    /// `arn:PARTITION:iam::ACCOUNT:` of the user, for hints.
    arn_prefix: String,
    creds: Credentials,
    iam: Iam,
}

fn fail(message: impl Into<String>, hint: Option<String>) -> Error {
    Error::usage(message, hint)
}

/// What to do about an IAM error from the device calls.
fn iam_hint(e: &IamError) -> Option<String> {
    match e {
        IamError::Service { code, .. } if code == "AccessDenied" => Some(
            "the IAM user needs iam:CreateVirtualMFADevice and iam:EnableMFADevice on itself \
             (and iam:DeleteVirtualMFADevice, to clean up after a failure)"
                .into(),
        ),
        _ => e.hint(),
    }
}

/// Checks everything that can be checked before the card is changed, and
/// finds the IAM user the device is for.
pub fn prepare(app: &App, args: &EnrollArgs) -> Result<Prepared, Error> {
    let Some(profile) = args.profile.as_deref() else {
        return Err(fail(
            "--create-mfa-device needs --profile P: the device is made for P's IAM user",
            None,
        ));
    };
    let (chain, _) = super::resolve_chain(app, profile)?;
    if chain.root().name != profile {
        return Err(fail(
            format!(
                "profile \"{profile}\" has no key of its own: it starts from profile \"{}\"",
                chain.root().name
            ),
            Some(format!(
                "create the device for the profile that holds the IAM user's key: \
                 vault hw enroll --profile {} --create-mfa-device",
                chain.root().name
            )),
        ));
    }
    if let Some(m) = chain.target().mfa_serial.as_deref() {
        return Err(fail(
            format!("profile \"{profile}\" already has an MFA device: mfa_serial = {m}"),
            Some(
                "to load that device's seed, pass --totp-secret or --totp-uri instead; \
                 to replace it, remove mfa_serial from the profile first"
                    .into(),
            ),
        ));
    }
    let key = crate::unlock::load(app, profile)?.ok_or_else(|| {
        fail(
            format!(
                "no key for profile \"{profile}\" in the {} store",
                app.backend.name()
            ),
            Some(format!("add it first: vault add {profile}")),
        )
    })?;
    let creds = Credentials::LongTerm(key);
    let no_args = vault_profile::plan::SessionOptions {
        duration: None,
        no_session: true,
        region: None,
        mfa_token: None,
    };
    let plan = vault_profile::plan::build(
        &chain,
        &no_args,
        &config::process_env,
        vault_profile::plan::RootSource::Keys,
    );
    let sts = Sts::new(plan.endpoint.clone()).map_err(vault_aws::provider::ProviderError::from)?;
    let arn = sts.caller_arn(&creds).map_err(|e| {
        let hint = e.hint();
        fail(
            format!("the key of profile \"{profile}\" does not work ({e}); nothing was changed"),
            hint,
        )
    })?;
    let user = iam::user_name_from_arn(&arn)
        .ok_or_else(|| {
            fail(
                format!(
                    "profile \"{profile}\"'s key belongs to {arn}, not to an IAM user; \
                     virtual MFA devices are made for IAM users"
                ),
                None,
            )
        })?
        .to_string();
    let arn_prefix = arn
        .split_once(":user/")
        .map(|(p, _)| format!("{p}:"))
        .unwrap_or_default();
    let iam = Iam::new(iam::Endpoint::for_profile(
        chain.root(),
        &config::process_env,
    ))
    .map_err(|e| Error::Other(e.to_string()))?;
    Ok(Prepared {
        profile: profile.to_string(),
        user,
        arn_prefix,
        creds,
        iam,
    })
}

/// Creates, loads and enables the device, and records it (see the module
/// documentation). `serial` is the YubiKey being enrolled.
pub fn create(
    app: &App,
    p: &Prepared,
    serial: u32,
    wait: Duration,
    t: &mut Tokens,
) -> Result<(), Error> {
    let device = p
        .iam
        .create_virtual_mfa_device(&p.creds, &p.user)
        .map_err(|e| {
            let hint = match &e {
                IamError::Service { code, .. } if code == "EntityAlreadyExists" => Some(format!(
                    "a virtual MFA device named \"{u}\" exists already, perhaps left by an earlier attempt; \
                     if nobody uses it, delete it (`aws iam delete-virtual-mfa-device --serial-number {pre}mfa/{u}`) and run this again",
                    u = p.user,
                    pre = p.arn_prefix
                )),
                _ => iam_hint(&e),
            };
            fail(format!("cannot create a virtual MFA device: {e}"), hint)
        })?;
    let mfa_serial = device.serial_number.clone();
    eprintln!(
        "Created virtual MFA device {mfa_serial} for IAM user \"{}\".",
        p.user
    );
    let name = vault_aws::oath_name::credential_name(&mfa_serial);

    // The seed: decoded, into the card, checked, gone.
    let loaded = match decode_base32(device.seed_base32.expose()) {
        Some(seed) => {
            drop(device);
            load_seed(app, serial, wait, &name, &seed)
        }
        None => Err(Error::token(
            "IAM returned a seed that is not base32; it was not loaded",
            None,
        )),
    };
    let (step, code1, code2) = match loaded {
        Ok(c) => c,
        Err(e) => return Err(undo(p, &mfa_serial, None, e)),
    };
    eprintln!(
        "Loaded its seed into YubiKey {serial}'s OATH applet as \"{name}\" (touch required); \
         the card's codes for two consecutive time steps match it. The seed was not shown or stored anywhere else."
    );

    // Enabled with the two codes, or undone.
    let enabled = p
        .iam
        .enable_mfa_device(&p.creds, &p.user, &mfa_serial, &code1, &code2);
    let cache = app.cache().ok();
    if let Some(cache) = &cache {
        // Sent (or maybe sent): never again.
        vault_aws::mfa::mark_used(
            cache.as_ref(),
            &mfa_serial,
            &vault_aws::mfa::Code::for_step(code1, step),
        );
        vault_aws::mfa::mark_used(
            cache.as_ref(),
            &mfa_serial,
            &vault_aws::mfa::Code::for_step(code2, step + 1),
        );
    }
    match enabled {
        Ok(()) => {}
        Err(e @ IamError::Unreachable { .. }) => {
            // The answer was lost: did it take effect?
            match p.iam.list_mfa_devices(&p.creds, &p.user) {
                Ok(list) if list.iter().any(|s| s == &mfa_serial) => {}
                _ => {
                    let hint = iam_hint(&e);
                    let err = fail(format!("cannot enable {mfa_serial}: {e}"), hint);
                    return Err(undo(p, &mfa_serial, Some((serial, wait, &name)), err));
                }
            }
        }
        Err(e) => {
            let hint = iam_hint(&e);
            let err = fail(format!("cannot enable {mfa_serial}: {e}"), hint);
            return Err(undo(p, &mfa_serial, Some((serial, wait, &name)), err));
        }
    }
    eprintln!(
        "Enabled {mfa_serial} for IAM user \"{}\" with two consecutive codes from the YubiKey.",
        p.user
    );

    // Recorded.
    let by_hand = format!(
        "the device is enabled and its seed is on YubiKey {serial} as \"{name}\": \
         add `mfa_serial = {mfa_serial}` to profile \"{}\" by hand",
        p.profile
    );
    if let Some(rec) = t.tokens.iter_mut().find(|r| r.serial == serial) {
        rec.oath.retain(|o| o.mfa_serial != mfa_serial);
        rec.oath.push(OathRecord {
            mfa_serial: mfa_serial.clone(),
            name: name.clone(),
            touch: true,
        });
    }
    t.save()
        .map_err(|e| Error::token(e.to_string(), Some(by_hand.clone())))?;
    let mut cfg = config::ConfigFile::load(config::default_path()).map_err(|e| {
        fail(
            format!("cannot record the device in the config: {e}"),
            Some(by_hand.clone()),
        )
    })?;
    cfg.set_value(&p.profile, "mfa_serial", &mfa_serial)
        .and_then(|()| cfg.save())
        .map_err(|e| {
            fail(
                format!("cannot record the device in the config: {e}"),
                Some(by_hand.clone()),
            )
        })?;
    eprintln!(
        "Set mfa_serial = {mfa_serial} in profile \"{}\".",
        p.profile
    );
    // Sessions made without MFA are not what the profile makes any more.
    if let Some(cache) = &cache {
        for id in super::session_ids_involving(app, &p.profile) {
            let _ = cache.remove(&id);
        }
    }
    Ok(())
}

/// Puts the seed on the card as a touch-required credential and returns the
/// card's codes for two consecutive steps, checked against the seed. On a
/// failure after the PUT, the credential is deleted again.
fn load_seed(
    app: &App,
    serial: u32,
    wait: Duration,
    name: &str,
    seed: &SecretBytes,
) -> Result<(u64, MfaCode, MfaCode), Error> {
    let ctx = vault_token::apdu::establish()?;
    let mut conn = vault_token::apdu::find_by_serial(&ctx, serial, wait)?;
    let session = OathSession::select(&mut conn)?;
    session.put(name, seed, Algorithm::Sha1, 6, true)?;
    let codes = (|| {
        let step = vault_aws::mfa::now_secs() / vault_aws::mfa::STEP;
        let mut codes = Vec::with_capacity(2);
        for (i, s) in [step, step + 1].into_iter().enumerate() {
            let which = if i == 0 { "first" } else { "second" };
            let touch = vault_prompt::touch_events(
                app.prompt(),
                format!("for the {which} of the two codes that enable the MFA device"),
            );
            let waited = std::cell::Cell::new(false);
            let notice = || {
                waited.set(true);
                touch(vault_token::TouchEvent::Waiting {
                    serial,
                    timeout: vault_token::TOUCH_TIMEOUT.saturating_sub(TOUCH_NOTICE_AFTER),
                })
            };
            let code = session.calculate_notifying(name, s, TOUCH_NOTICE_AFTER, &notice);
            if waited.get() {
                touch(vault_token::TouchEvent::Done {
                    serial,
                    touched: code.is_ok(),
                });
            }
            let code = code?;
            if code != rfc6238(seed, s) {
                return Err(Error::token(
                    "the YubiKey's code does not match the seed it was given",
                    None,
                ));
            }
            codes.push(code);
        }
        let code2 = codes.pop();
        let code1 = codes.pop();
        match (code1, code2) {
            (Some(a), Some(b)) => Ok((step, a, b)),
            _ => Err(Error::token("no code from the YubiKey", None)),
        }
    })();
    if codes.is_err() {
        let _ = session.delete(name);
    }
    codes
}

/// Deletes the OATH credential (when it was loaded) and the device after a
/// failure, and says in the error what is left.
fn undo(
    p: &Prepared,
    mfa_serial: &str,
    oath_cred: Option<(u32, Duration, &str)>,
    err: Error,
) -> Error {
    let hint = err.hint();
    let mut message = err.to_string();
    if let Some((serial, wait, name)) = oath_cred {
        let deleted = (|| -> Result<(), vault_token::apdu::TokenError> {
            let ctx = vault_token::apdu::establish()?;
            let mut conn = vault_token::apdu::find_by_serial(&ctx, serial, wait)?;
            let session = OathSession::select(&mut conn)?;
            session.delete(name)
        })();
        match deleted {
            Ok(()) => message.push_str(&format!(
                "; the OATH credential \"{name}\" was removed from YubiKey {serial}"
            )),
            Err(e) => message.push_str(&format!(
                "; the OATH credential \"{name}\" could not be removed from YubiKey {serial} ({e}): \
                 `ykman oath accounts delete {name}` removes it"
            )),
        }
    }
    match p.iam.delete_virtual_mfa_device(&p.creds, mfa_serial) {
        Ok(()) => message.push_str(&format!(
            "; the virtual MFA device {mfa_serial} was deleted again"
        )),
        Err(e) => message.push_str(&format!(
            "; the virtual MFA device {mfa_serial} could not be deleted ({e}): \
             `aws iam delete-virtual-mfa-device --serial-number {mfa_serial}` deletes it"
        )),
    }
    match err {
        Error::Token { .. } | Error::Layer(_) => Error::Token { message, hint },
        _ => Error::Usage { message, hint },
    }
}

/// RFC 6238 (SHA-1, 6 digits, 30 s) of `seed` for time step `step`.
fn rfc6238(seed: &SecretBytes, step: u64) -> MfaCode {
    let totp = totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        vault_aws::mfa::STEP,
        seed.expose().to_vec(),
        None,
        String::new(),
    );
    MfaCode::new(totp.generate(step * vault_aws::mfa::STEP))
}

/// RFC 4648 base32 (as `Base32StringSeed` is), case-insensitive, padding
/// allowed only at the end. `None` for anything else, or for a seed too
/// short to be one (under 80 bits).
fn decode_base32(text: &[u8]) -> Option<SecretBytes> {
    let end = text.iter().position(|&c| c == b'=').unwrap_or(text.len());
    if text[end..].iter().any(|&c| c != b'=') {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(end * 5 / 8));
    let mut acc: u16 = 0;
    let mut bits = 0u32;
    for &c in &text[..end] {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u16::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (out.len() >= 10).then(|| SecretBytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_like_rfc4648() {
        // RFC 4648 §10, and the RFC 6238 SHA-1 key in base32.
        let d = |s: &str| decode_base32(s.as_bytes()).map(|b| b.expose().to_vec());
        assert_eq!(d("MZXW6YTBOI======").as_deref(), None, "too short: 6 bytes");
        assert_eq!(
            d("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").as_deref(),
            Some(&b"12345678901234567890"[..])
        );
        assert_eq!(
            d("gezdgnbvgy3tqojqgezdgnbvgy3tqojq").as_deref(),
            Some(&b"12345678901234567890"[..])
        );
        assert_eq!(
            d("MZXW6YTBOJUWU23MNVXHM53YPF5A====").as_deref(),
            Some(&b"foobarijklmnvwxyz"[..])
        );
        assert!(d("GEZDGNBVGY3TQOJQ=GEZDGNBVGY3TQOJQ").is_none());
        assert!(d("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1").is_none());
        assert!(d("GEZDGNBVGY3TQOJQ GEZDGNBVGY3TQOJQ").is_none());
        // A 64-character seed, as AWS and moto make them: 40 bytes.
        assert_eq!(d(&"A".repeat(64)).map(|v| v.len()), Some(40));
    }

    #[test]
    fn codes_are_rfc6238() {
        // RFC 6238 appendix B, SHA-1, T = 59 s (step 1), 6 of the 8 digits.
        let seed = SecretBytes::new(b"12345678901234567890".to_vec());
        assert_eq!(rfc6238(&seed, 1).expose(), "287082");
        assert_eq!(rfc6238(&seed, 1111111109 / 30).expose(), "081804");
    }
}
