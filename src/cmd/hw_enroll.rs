//! `vault hw enroll`: put a YubiKey into service.
//!
//! Secure by default, as yubikey-agent does it: a factory PIN, PUK or
//! management key is never left in place. Then a P-256 key generated on the
//! card (PIN once, touch always or cached), its attestation checked, the
//! token recorded; optionally a profile's key moved into an envelope (only
//! after an unwrap round trip proves it opens) and the profile's MFA seed
//! loaded into the OATH applet (only after a code from the card matches the
//! seed).

use crate::app::App;
use crate::error::Error;
use crate::unlock::{pin_for, piv_recipients};
use std::io::{BufRead, IsTerminal};
use vault_base::secret::{Passphrase, SecretBytes};
use vault_base::settings::env_var;
use vault_fast::cli::{EnrollArgs, TouchArg};
use vault_secrets::enrolled::{self, OathRecord, PivSlotRecord, Role, TokenRecord, Tokens};
use vault_secrets::envelope;
use vault_secrets::store;
use vault_token::oath::{Algorithm, OathSession};
use vault_token::piv::{PinPolicy, PivToken, PivUnwrapper, TouchPolicy};
use zeroize::Zeroizing;

/// A new PIN or PUK: from `var` (scripts), else asked twice. Checked as
/// soon as it is typed (6–8 characters, not the factory value), before
/// anything on the card changes.
fn new_secret(
    app: &App,
    var: &str,
    what: &str,
    factory: &str,
    serial: u32,
) -> Result<Passphrase, Error> {
    let check = |p: &Passphrase| -> Result<(), Error> {
        let len = p.expose().len();
        let why = if !(6..=8).contains(&len) {
            format!("a {what} has 6 to 8 characters, not {len}")
        } else if p.expose() == factory {
            format!("{factory} is the factory {what}, which anyone can look up")
        } else if !p.expose().is_ascii() {
            format!("a {what} is typed on any keyboard: letters, digits and ASCII signs only")
        } else {
            return Ok(());
        };
        Err(Error::usage(
            format!("{why}; nothing was changed on YubiKey {serial}"),
            Some(match env_var(var) {
                Some(_) => format!("set {var} to another {what}"),
                None => format!("run the command again and choose another {what}"),
            }),
        ))
    };
    if let Some(v) = env_var(var) {
        let p = Passphrase::new(v);
        check(&p)?;
        return Ok(p);
    }
    let a = app.prompt().secret(&format!(
        "New {what} for YubiKey {serial} (6–8 characters): "
    ))?;
    check(&a)?;
    let b = app.prompt().secret(&format!("Repeat the new {what}: "))?;
    if a != b {
        return Err(Error::usage(
            format!("the two {what}s differ; nothing was changed"),
            None,
        ));
    }
    Ok(a)
}

fn pick_serial(app: &App, args: &EnrollArgs) -> Result<u32, Error> {
    if let Some(s) = args.serial {
        return Ok(s);
    }
    let deadline = std::time::Instant::now() + args.wait;
    let mut told = false;
    loop {
        let keys = PivToken::list()?;
        let serials: Vec<u32> = keys.iter().filter_map(|k| k.serial).collect();
        match serials.as_slice() {
            [one] => return Ok(*one),
            [] if std::time::Instant::now() < deadline => {
                if !told {
                    app.prompt().notify("Insert the YubiKey to enroll…");
                    told = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            [] => {
                return Err(Error::token(
                    "no YubiKey found",
                    Some("insert one, or pass --serial N to wait for a given key".into()),
                ))
            }
            many => {
                return Err(Error::usage(
                    format!(
                        "several YubiKeys are plugged in: {}",
                        many.iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Some("choose one with --serial N".into()),
                ))
            }
        }
    }
}

pub fn run(app: &App, args: &EnrollArgs) -> Result<(), Error> {
    if args.fido2 {
        return super::hw_fido2::enroll(app, args);
    }
    // The seed (possibly from stdin or a file) is read and checked before
    // the card is changed.
    let seed = totp_seed(args)?;
    // The IAM user and its key are checked before the card is changed.
    let mfa_device = if args.create_mfa_device {
        Some(super::hw_mfa_device::prepare(app, args)?)
    } else {
        None
    };
    let say = |m: &str| eprintln!("{m}");
    let notify = |m: &str| app.prompt().notify(m);
    let serial = pick_serial(app, args)?;
    // tokens.json must take a write before the card is changed: a key
    // generated but never recorded would sit orphaned in its slot.
    Tokens::load().and_then(|t| t.save()).map_err(|e| {
        Error::token(
            e.to_string(),
            Some(
                "nothing was changed on the YubiKey: make that folder writable (or free \
                     some space) and run the command again"
                    .into(),
            ),
        )
    })?;
    let mut tok = PivToken::open(serial, args.wait, &notify)?;
    say(&format!(
        "YubiKey {serial} (firmware {}) in {:?}",
        tok.version(),
        tok.reader()
    ));

    // Everything that can be checked is checked before the card changes:
    // the new PIN and PUK, the current PIN, the slot, the attestation
    // roots.
    let default_pin = tok.is_default_pin()? == Some(true);
    let default_puk = tok.is_default_puk()? == Some(true);
    let new_pin = if default_pin {
        Some(new_secret(app, "VAULT_NEW_PIN", "PIN", "123456", serial)?)
    } else {
        None
    };
    let new_puk = if default_puk {
        Some(new_secret(app, "VAULT_NEW_PUK", "PUK", "12345678", serial)?)
    } else {
        None
    };
    let pin = match new_pin {
        Some(p) => p,
        None => {
            let tries = match tok.pin_status()? {
                vault_token::piv::PinStatus::NotVerified { tries_left } => tries_left,
                _ => 3,
            };
            let pin = pin_for(
                app.prompt(),
                serial,
                tries,
                &crate::unlock::PinGuard::new(app),
            )
            .map_err(|e| Error::token(e, None))?;
            if let Err(e) = tok.verify_pin(&pin) {
                if matches!(e, vault_token::piv::PivError::WrongPin { .. }) {
                    crate::unlock::PinGuard::new(app).refused(serial, &pin);
                }
                return Err(e.into());
            }
            pin
        }
    };
    let roots = if args.skip_attestation {
        None
    } else {
        let roots = vault_token::piv::TrustedRoots::from_env()?;
        if let Err(e) = tok.attestation_root(&roots) {
            let hint = format!(
                "{}; --skip-attestation accepts the key anyway",
                e.hint().unwrap_or_else(|| {
                    "the key could not prove it is a genuine YubiKey".into()
                })
            );
            return Err(Error::token(
                format!("attestation failed: {e}; nothing was changed on the YubiKey"),
                Some(hint),
            ));
        }
        Some(roots)
    };
    let mut t = Tokens::load()?;
    let plan = plan_slot(&mut tok, &t, serial, args)?;

    // 1. No factory secret stays in place.
    if default_pin {
        tok.change_pin(&Passphrase::new("123456"), &pin)?;
        say("Changed the factory PIN.");
        tok.verify_pin(&pin)?;
    }
    if let Some(new) = new_puk {
        tok.change_puk(&Passphrase::new("12345678"), &new)?;
        say("Changed the factory PUK.");
    }
    if tok.is_default_mgm()? {
        tok.set_protected_management_key()?;
        say("Replaced the factory management key with a random one, stored on the key behind the PIN.");
    }

    // 2. The PIV key.
    let existing = t.get(serial).cloned();
    let touch = match args.touch {
        TouchArg::Always => TouchPolicy::Always,
        TouchArg::Cached => TouchPolicy::Cached,
    };
    let piv = match plan {
        SlotPlan::Keep(p) => {
            say(&format!(
                "Already enrolled: slot {:02x} (touch {}); keeping it.",
                p.slot, p.touch_policy
            ));
            p
        }
        SlotPlan::Generate(slot) | SlotPlan::Replace(slot, _) => {
            let public_key = match &plan_replacing(&plan) {
                Some(old) => {
                    say(&format!(
                        "Slot {slot:02x} holds the key an earlier enrollment generated and \
                         could not attest; generating over it."
                    ));
                    tok.generate_replacing(slot, old, PinPolicy::Once, touch)
                }
                None => tok.generate(slot, PinPolicy::Once, touch),
            }?;
            t.abandoned
                .retain(|a| !(a.serial == serial && a.slot == slot));
            say(&format!(
                "Generated a P-256 key on the card in slot {slot:02x} (PIN once, touch {}).",
                touch.as_str()
            ));
            // Until it is attested, the key is recorded as abandoned, so a
            // refusal (or a crash) leaves a slot the next run reuses.
            let abandoned = enrolled::AbandonedSlot {
                serial,
                slot,
                public_key: hex::encode(public_key.to_sec1_bytes()),
            };
            t.abandoned.push(abandoned.clone());
            t.save()?;
            let refused = |message: String, hint: String| (message, hint);
            tok.write_certificate(slot, &public_key, PinPolicy::Once, touch, &notify)?;
            let outcome = match roots.as_ref().map(|roots| tok.attest_with(slot, roots)) {
                // The attestation must vouch for what was recorded: the key
                // GENERATE answered with, and the policies asked for. A
                // layer between vault and the card (a PC/SC relay) could
                // answer GENERATE with its own key and pass ATTEST through
                // to the real card; every envelope would then be sealed to
                // its key.
                Some(Ok(r))
                    if r.public_key != public_key
                        || r.pin_policy != PinPolicy::Once
                        || r.touch_policy != touch =>
                {
                    Err(refused(
                        format!(
                            "attestation failed: YubiKey {serial} attests another key or other \
                             policies for slot {slot:02x} (PIN {}, touch {}) than GENERATE \
                             answered (PIN once, touch {}); nothing was recorded and no key \
                             was sealed",
                            r.pin_policy.as_str(),
                            r.touch_policy.as_str(),
                            touch.as_str()
                        ),
                        "something between vault and the YubiKey changed the card's answer: \
                         do not enroll on this machine until you know what (another PC/SC \
                         driver or relay)"
                            .into(),
                    ))
                }
                Some(Ok(r)) => {
                    say(&format!(
                        "Attestation verified: generated on YubiKey {} (root: {}).",
                        r.serial, r.root
                    ));
                    Ok(true)
                }
                None => {
                    eprintln!("vault: warning: attestation not verified; continuing because of --skip-attestation");
                    Ok(false)
                }
                Some(Err(e)) => {
                    let hint = format!(
                        "{}; --skip-attestation accepts the key anyway",
                        e.hint().unwrap_or_else(|| {
                            "the key could not prove it was generated on a genuine YubiKey".into()
                        })
                    );
                    Err(refused(format!("attestation failed: {e}"), hint))
                }
            };
            let attested = match outcome {
                Ok(attested) => attested,
                Err((message, hint)) => {
                    let firmware = tok.version().to_string();
                    // Firmware 5.7 deletes the key it could not vouch for:
                    // no orphan, and the slot is free for the next run.
                    match tok.delete_key(slot) {
                        Ok(true) => {
                            t.abandoned.retain(|a| a != &abandoned);
                            let _ = t.save();
                            return Err(Error::token(
                                message,
                                Some(format!(
                                    "{hint}. The key generated in slot {slot:02x} was deleted \
                                     from the card (firmware {firmware} can delete keys); the \
                                     next `vault hw enroll` uses slot {slot:02x} again"
                                )),
                            ));
                        }
                        Ok(false) => {}
                        Err(e) => log::debug!(
                            target: "vault",
                            "could not delete the refused key in slot {slot:02x}: {e}"
                        ),
                    }
                    // What GENERATE answered may not be what the slot holds
                    // (a relay): the record the next run reuses the slot by
                    // names the key the card itself reports.
                    if let Ok(Some(info)) = tok.read_slot(slot) {
                        let on_card = hex::encode(info.public_key.to_sec1_bytes());
                        for a in t.abandoned.iter_mut().filter(|a| **a == abandoned) {
                            a.public_key = on_card.clone();
                        }
                        let _ = t.save();
                    }
                    let why = if tok.can_delete_keys() {
                        "deleting it failed".to_string()
                    } else {
                        format!("firmware {firmware} cannot delete a key")
                    };
                    return Err(Error::token(
                        message,
                        Some(format!(
                            "{hint}. The key generated in slot {slot:02x} stays on the card \
                             ({why}); the next `vault hw enroll` generates over it instead of \
                             taking another slot"
                        )),
                    ));
                }
            };
            t.abandoned.retain(|a| a != &abandoned);
            PivSlotRecord {
                slot,
                public_key: hex::encode(public_key.to_sec1_bytes()),
                pin_policy: PinPolicy::Once,
                touch_policy: touch,
                attested,
            }
        }
    };
    let had_backup_role = existing.as_ref().is_some_and(|r| r.role == Role::Backup);
    t.upsert(TokenRecord {
        serial,
        version: tok.version().to_string(),
        role: if args.backup || had_backup_role {
            Role::Backup
        } else {
            Role::Primary
        },
        piv: Some(piv),
        oath: existing.map(|r| r.oath).unwrap_or_default(),
        fido2: None,
    });
    t.save()?;
    say(&format!(
        "Recorded YubiKey {serial} in {}.",
        enrolled::tokens_path().display()
    ));

    // 3. A backup becomes a recipient of every envelope.
    if args.backup {
        add_backup(app, &mut t, serial, &mut tok)?;
    }

    // 4. A profile's key into an envelope (one already wrapped is kept
    // when only its MFA device is being created).
    if let Some(profile) = &args.profile {
        let wrapped = enrolled::read_envelope(profile)?.is_some();
        if mfa_device.is_some() && wrapped {
            say(&format!(
                "Profile \"{profile}\"'s key is already wrapped by a token; keeping its envelope."
            ));
        } else {
            wrap_profile(app, &t, profile, args.keep_keychain_copy, &mut tok, &pin)?;
        }
    }
    drop(tok);

    // 5. The MFA seed into the OATH applet.
    if let Some(seed) = seed {
        load_totp(app, args, serial, &mut t, seed)?;
    }
    if let Some(prepared) = &mfa_device {
        super::hw_mfa_device::create(app, prepared, serial, args.wait, &mut t)?;
    }
    Ok(())
}

/// Where the PIV key goes, decided before anything on the card changes.
enum SlotPlan {
    /// The recorded key is still on the card: keep it.
    Keep(PivSlotRecord),
    /// Generate into this empty slot.
    Generate(u8),
    /// Generate over the key an earlier, refused enrollment left here.
    Replace(u8, p256::PublicKey),
}

fn plan_replacing(plan: &SlotPlan) -> Option<p256::PublicKey> {
    match plan {
        SlotPlan::Replace(_, old) => Some(*old),
        _ => None,
    }
}

fn plan_slot(
    tok: &mut PivToken,
    t: &Tokens,
    serial: u32,
    args: &EnrollArgs,
) -> Result<SlotPlan, Error> {
    let on_card = |tok: &mut PivToken, slot: u8, hex_key: &str| -> Result<bool, Error> {
        let recorded = hex::decode(hex_key).ok();
        Ok(match (tok.read_slot(slot)?, recorded) {
            (Some(info), Some(pk)) => info.public_key.to_sec1_bytes().as_ref() == pk.as_slice(),
            _ => false,
        })
    };
    if let Some(p) = t.get(serial).and_then(|r| r.piv.clone()) {
        if args.slot.is_none_or(|s| s == p.slot) && on_card(tok, p.slot, &p.public_key)? {
            return Ok(SlotPlan::Keep(p));
        }
    }
    for a in t.abandoned.iter().filter(|a| a.serial == serial) {
        if args.slot.is_none_or(|s| s == a.slot) && on_card(tok, a.slot, &a.public_key)? {
            let key = hex::decode(&a.public_key)
                .ok()
                .and_then(|b| p256::PublicKey::from_sec1_bytes(&b).ok());
            if let Some(key) = key {
                return Ok(SlotPlan::Replace(a.slot, key));
            }
        }
    }
    let slot = match args.slot {
        Some(s) => {
            if !tok.slot_is_free(s)? {
                return Err(Error::from(vault_token::piv::PivError::SlotInUse {
                    serial,
                    slot: s,
                }));
            }
            s
        }
        None => tok.free_retired_slot()?,
    };
    Ok(SlotPlan::Generate(slot))
}

/// Opens an envelope with the key being enrolled and no other: the check
/// must prove that this key opens it, and `pin` is this key's PIN (sent to
/// another key sealed to first, say a backup, it would cost that key a try).
struct ThisKey<'a> {
    serial: u32,
    inner: PivUnwrapper<'a>,
}

impl envelope::Unwrapper for ThisKey<'_> {
    fn piv_ecdh(
        &mut self,
        serial: u32,
        slot: u8,
        public_key: &p256::PublicKey,
        ephemeral: &p256::PublicKey,
    ) -> Result<Option<zeroize::Zeroizing<[u8; 32]>>, vault_secrets::envelope::CardError> {
        if serial != self.serial {
            return Ok(None);
        }
        envelope::Unwrapper::piv_ecdh(&mut self.inner, serial, slot, public_key, ephemeral)
    }
}

fn unwrapper<'a>(app: &'a App, serial: u32, pin: &'a Passphrase, purpose: &str) -> ThisKey<'a> {
    ThisKey {
        serial,
        inner: PivUnwrapper::new(
            move |_, _| Ok(pin.clone()),
            move |m: &str| app.prompt().notify(m),
        )
        .on_touch(vault_prompt::touch_events(
            app.prompt(),
            purpose.to_string(),
        )),
    }
}

fn wrap_profile(
    app: &App,
    t: &Tokens,
    profile: &str,
    keep_copy: bool,
    tok: &mut PivToken,
    pin: &Passphrase,
) -> Result<(), Error> {
    let item = store::key_item(profile);
    let store = app.store()?;
    let Some(key) = store::get_key(store, profile)? else {
        if enrolled::read_envelope(profile)?.is_some() {
            return Err(Error::usage(
                format!("profile \"{profile}\" is already wrapped by a token"),
                Some("`vault hw status` shows which".into()),
            ));
        }
        return Err(Error::usage(
            format!(
                "no key for profile \"{profile}\" in the {} store",
                app.backend.name()
            ),
            Some(format!("add it first: vault add {profile}")),
        ));
    };
    let secret = store::encode_key(&key);
    let recipients = piv_recipients(t)?;
    let env = envelope::seal(&secret, &recipients, &item)?;
    let bytes = env.encode();

    // Prove it opens with this key before the clear copy goes.
    let serial = tok.serial();
    // Bytes just encoded that do not decode are vault's bug: the envelope's
    // own hint (a damaged stored item, remove it) would send the user astray.
    let decoded =
        envelope::Envelope::decode(&bytes).map_err(|e| Error::token(e.to_string(), None))?;
    let opened: SecretBytes = {
        let mut u = unwrapper(app, serial, pin, "to check that the new envelope opens");
        envelope::open(&decoded, &item, &mut u).map_err(|e| {
            let hint = e.hint();
            Error::token(
                format!("the new envelope did not open, so nothing was changed: {e}"),
                hint,
            )
        })?
    };
    if opened.expose() != secret.expose() {
        return Err(Error::token(
            "the new envelope opened to different bytes; nothing was changed",
            None,
        ));
    }
    enrolled::write_envelope(profile, &bytes)?;
    if enrolled::read_envelope(profile)?.as_deref() != Some(bytes.as_slice()) {
        return Err(Error::token(
            "the envelope did not read back as written; the store's copy was kept",
            None,
        ));
    }
    eprintln!(
        "Wrapped profile \"{profile}\"'s key for {} recipient(s); unwrap checked.",
        recipients.len()
    );
    if keep_copy {
        eprintln!(
            "Kept the {} store's copy as a fallback for when no YubiKey is present.",
            app.backend.name()
        );
    } else {
        store.delete(&item)?;
        eprintln!(
            "Deleted the clear copy from the {} store.",
            app.backend.name()
        );
    }
    let cache = app.cache()?;
    for id in super::session_ids_involving(app, profile) {
        let _ = cache.remove(&id);
    }
    Ok(())
}

/// Re-seals every envelope with the new backup key added. Only public keys
/// are needed for that, but the secret must be in hand: envelopes that no
/// present token (or kept store copy) can open now are marked and re-sealed
/// at their next unwrap.
fn add_backup(app: &App, t: &mut Tokens, backup: u32, _tok: &mut PivToken) -> Result<(), Error> {
    let recipients = piv_recipients(t)?;
    for profile in enrolled::envelope_profiles() {
        let Some(bytes) = enrolled::read_envelope(profile.as_str())? else {
            continue;
        };
        let Ok(env) = envelope::Envelope::decode(&bytes) else {
            continue;
        };
        let already = env
            .recipients()
            .iter()
            .any(|r| matches!(r, envelope::RecipientId::Piv { serial, .. } if *serial == backup));
        let fido2 = env
            .recipients()
            .iter()
            .any(|r| matches!(r, envelope::RecipientId::Fido2 { .. }));
        if already || fido2 {
            continue;
        }
        let item = store::key_item(&profile);
        // The kept store copy, if any, gives the secret without a touch;
        // else one of the keys it is sealed to, if one is plugged in.
        let secret = match app.store().ok().and_then(|s| s.get(&item).ok().flatten()) {
            Some(secret) => Some(secret),
            None => open_now(app, &env, &item, &profile),
        };
        match secret {
            Some(secret) => {
                let env = envelope::seal(&secret, &recipients, &item)?;
                enrolled::write_envelope(&profile, &env.encode())?;
                eprintln!("Added YubiKey {backup} to profile \"{profile}\"'s envelope.");
            }
            None => {
                if !t.pending_backup.contains(&profile) {
                    t.pending_backup.push(profile.clone());
                }
                eprintln!(
                    "YubiKey {backup} will be added to profile \"{profile}\"'s envelope the next time it is unwrapped."
                );
            }
        }
    }
    Ok(t.save()?)
}

/// Opens `env` with whichever of its keys is plugged in now (its PIN asked
/// as for an exec), for [`add_backup`]; `None` when none is, or it did not
/// open: the backup is then added at the envelope's next unwrap instead.
fn open_now(app: &App, env: &envelope::Envelope, item: &str, profile: &str) -> Option<SecretBytes> {
    let prompt = app.prompt();
    let guard = crate::unlock::PinGuard::new(app);
    let mut u = PivUnwrapper::new(
        |serial, tries| pin_for(prompt, serial, tries, &guard),
        |m: &str| prompt.notify(m),
    )
    .on_touch(vault_prompt::touch_events(
        prompt,
        format!("to unlock profile {profile}'s key and add the backup key"),
    ))
    .on_wrong_pin(|serial, pin, _| guard.refused(serial, pin));
    match envelope::open(env, item, &mut u) {
        Ok(secret) => Some(secret),
        Err(envelope::OpenError::NoTokenPresent { .. }) => None,
        Err(e) => {
            eprintln!("vault: warning: could not open profile \"{profile}\"'s envelope now: {e}");
            None
        }
    }
}

/// `value`, or with `-`, one line read from stdin (hidden when stdin is a
/// terminal): a seed given that way is in no process's argv.
fn arg_or_stdin(value: &str, flag: &str) -> Result<Zeroizing<String>, Error> {
    if value != "-" {
        return Ok(Zeroizing::new(value.to_string()));
    }
    let stdin = std::io::stdin();
    let line = if stdin.is_terminal() {
        eprint!("{flag}: ");
        Zeroizing::new(
            rpassword::read_password()
                .map_err(|e| Error::usage(format!("{flag} -: cannot read stdin: {e}"), None))?,
        )
    } else {
        let mut line = Zeroizing::new(String::new());
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::usage(format!("{flag} -: cannot read stdin: {e}"), None))?;
        line
    };
    let trimmed = Zeroizing::new(line.trim().to_string());
    if trimmed.is_empty() {
        return Err(Error::usage(format!("{flag} -: nothing on stdin"), None));
    }
    Ok(trimmed)
}

/// The seed from `--totp-secret`, `--totp-secret-file` or `--totp-uri`
/// (`None` when none is given), checked to be what AWS virtual MFA devices
/// use (SHA-1, 6 digits, 30 s).
fn totp_seed(args: &EnrollArgs) -> Result<Option<(SecretBytes, Option<String>)>, Error> {
    if let Some(uri) = &args.totp_uri {
        if uri != "-" {
            return Err(Error::usage(
                "--totp-uri takes no URI on the command line: it holds the seed, which every \
                 process and your shell history could read",
                Some("pass it on stdin: `--totp-uri -`".to_string()),
            ));
        }
        let uri = arg_or_stdin(uri, "--totp-uri")?;
        return parse_totp_uri(&uri).map(Some);
    }
    let (b32, flag) = match (&args.totp_secret, &args.totp_secret_file) {
        // A seed in argv is readable by every process (ps, /proc) and
        // stays in shell history: only stdin or a file.
        (Some(s), _) if s != "-" => {
            return Err(Error::usage(
                "--totp-secret takes no seed on the command line, where every process and \
                 your shell history can read it",
                Some(
                    "pass it on stdin (`--totp-secret -`) or from a file \
                     (`--totp-secret-file PATH`)"
                        .to_string(),
                ),
            ))
        }
        (Some(s), _) => (arg_or_stdin(s, "--totp-secret")?, "--totp-secret"),
        (None, Some(path)) => (
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                Error::usage(
                    format!("--totp-secret-file: cannot read {}: {e}", path.display()),
                    None,
                )
            })?),
            "--totp-secret-file",
        ),
        (None, None) => return Ok(None),
    };
    parse_totp_base32(&b32, flag).map(|seed| Some((seed, None)))
}

const OTPAUTH_TOTP: &str = "otpauth://totp";

/// An `otpauth://totp/...` URI's seed and account name, checked to be what
/// AWS virtual MFA devices use (SHA-1, 6 digits, 30 s).
pub fn parse_totp_uri(uri: &str) -> Result<(SecretBytes, Option<String>), Error> {
    // totp-rs 5.7 panics on a URI without a host (`otpauth:x`): only one
    // that names the `totp` host, as every otpauth URI for AWS does, gets
    // that far.
    let rest = uri
        .get(..OTPAUTH_TOTP.len())
        .filter(|p| p.eq_ignore_ascii_case(OTPAUTH_TOTP))
        .map(|_| &uri[OTPAUTH_TOTP.len()..]);
    if !rest.is_some_and(|r| r.is_empty() || r.starts_with(['/', '?', '#'])) {
        return Err(Error::usage(
            format!("--totp-uri is not a valid otpauth URI: it must start with {OTPAUTH_TOTP}/"),
            None,
        ));
    }
    let totp = totp_rs::TOTP::from_url_unchecked(uri)
        .map_err(|e| Error::usage(format!("--totp-uri is not a valid otpauth URI: {e}"), None))?;
    if totp.algorithm != totp_rs::Algorithm::SHA1 || totp.digits != 6 || totp.step != 30 {
        return Err(Error::usage(
            "--totp-uri: AWS virtual MFA devices use SHA1, 6 digits and a 30 s period",
            None,
        ));
    }
    Ok((
        SecretBytes::new(totp.secret.clone()),
        Some(totp.account_name.clone()),
    ))
}

/// A base32 seed as AWS shows it (any case, spaces and padding allowed);
/// `flag` names where it came from in errors.
pub fn parse_totp_base32(b32: &str, flag: &str) -> Result<SecretBytes, Error> {
    let cleaned: Zeroizing<String> = Zeroizing::new(
        b32.chars()
            .filter(|c| !c.is_whitespace() && *c != '=')
            .collect::<String>()
            .to_ascii_uppercase(),
    );
    let bytes = totp_rs::Secret::Encoded(cleaned.to_string())
        .to_bytes()
        .map_err(|_| Error::usage(format!("{flag} is not valid base32"), None))?;
    if bytes.len() < 10 {
        return Err(Error::usage(
            format!("{flag} is too short to be an MFA seed"),
            None,
        ));
    }
    Ok(SecretBytes::new(bytes))
}

fn load_totp(
    app: &App,
    args: &EnrollArgs,
    serial: u32,
    t: &mut Tokens,
    (seed, _): (SecretBytes, Option<String>),
) -> Result<(), Error> {
    let profile_mfa = match &args.profile {
        Some(p) => super::resolve_chain(app, p)
            .ok()
            .and_then(|(c, _)| c.target().mfa_serial.clone()),
        None => None,
    };
    let mfa_serial = match (&args.mfa_serial, &profile_mfa) {
        (Some(a), _) => a.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => {
            return Err(Error::usage(
                "which MFA device is this seed for?",
                Some("pass --mfa-serial arn:aws:iam::ACCOUNT:mfa/NAME (or --profile P whose mfa_serial is set)".into()),
            ))
        }
    };
    let name = vault_aws::oath_name::credential_name(&mfa_serial);
    let ctx = vault_token::apdu::establish()?;
    let mut conn = vault_token::apdu::find_by_serial(&ctx, serial, args.wait)?;
    let session = OathSession::select(&mut conn)?;
    session.put(&name, &seed, Algorithm::Sha1, 6, true)?;

    // The card's code must equal the seed's, or the seed was mistyped.
    let now = vault_aws::mfa::now_secs();
    let step = now / vault_aws::mfa::STEP;
    let touch = app.prompt().touch(&vault_prompt::TouchRequest {
        serial,
        purpose: "to check the MFA code it now holds".to_string(),
        timeout: vault_token::TOUCH_TIMEOUT,
    });
    let from_card = session.calculate(&name, step);
    touch.done(from_card.is_ok());
    let from_card = from_card?;
    let expected = totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        seed.expose().to_vec(),
        None,
        String::new(),
    )
    .generate(step * vault_aws::mfa::STEP);
    if from_card.expose() != expected {
        let _ = session.delete(&name);
        return Err(Error::token(
            "the YubiKey's code does not match the seed; the credential was removed again",
            None,
        ));
    }
    drop(session);
    let rec = t.tokens.iter_mut().find(|r| r.serial == serial);
    if let Some(rec) = rec {
        rec.oath.retain(|o| o.mfa_serial != mfa_serial);
        rec.oath.push(OathRecord {
            mfa_serial: mfa_serial.clone(),
            name: name.clone(),
            touch: true,
        });
    }
    t.save()?;
    eprintln!("Loaded the MFA seed of {mfa_serial} into YubiKey {serial}'s OATH applet as \"{name}\" (touch required); its code matches.");

    // Record mfa_serial in the profile when it had none.
    if let (Some(p), None) = (&args.profile, &profile_mfa) {
        let mut cfg =
            vault_profile::config::ConfigFile::load(vault_profile::config::default_path())?;
        cfg.set_value(p, "mfa_serial", &mfa_serial)?;
        // Last of all, so a config that cannot be written (read-only,
        // full) costs only this line, which the user can add by hand.
        cfg.save().map_err(|e| {
            Error::token(
                format!(
                    "the MFA seed of {mfa_serial} is on YubiKey {serial}, but mfa_serial could \
                     not be set in profile \"{p}\": {e}"
                ),
                Some(format!(
                    "add `mfa_serial = {mfa_serial}` to [profile {p}] yourself; the rest of \
                     the enrollment is done"
                )),
            )
        })?;
        eprintln!("Set mfa_serial = {mfa_serial} in profile \"{p}\".");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn an_otpauth_uri_without_a_host_is_refused_not_a_panic() {
        // Found by fuzzing (fuzz/regressions/otpauth/uri-without-host):
        // totp-rs 5.7 unwraps the URI's host.
        for uri in [
            "otpauth:\0\0\0\0jbxhpk 3px\x01\0\0\0\0\0\0<es",
            "otpauth:x",
            "otpauth:/totp/a?secret=JBSWY3DPEHPK3PXP",
            "otpauth:///a?secret=JBSWY3DPEHPK3PXP",
            "otpauth://totpx/a?secret=JBSWY3DPEHPK3PXP",
            "otpauth://",
        ] {
            assert!(parse_totp_uri(uri).is_err(), "{uri:?} accepted");
        }
        let (seed, account) = parse_totp_uri(
            "otpauth://totp/Amazon%20Web%20Services:jonsmith@111111111111?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Amazon%20Web%20Services",
        )
        .unwrap();
        assert_eq!(seed.expose().len(), 20);
        assert_eq!(account.as_deref(), Some("jonsmith@111111111111"));
    }
}
