//! `vault hw status [--json]`: keys present, what is enrolled, which
//! profiles and OATH credentials use each key, PIN tries left.

use crate::app::App;
use crate::error::Error;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use vault_fast::cli::StatusArgs;
use vault_secrets::enrolled::{self, Tokens};
use vault_secrets::envelope::{Envelope, RecipientId};
use vault_token::piv::{PinStatus, PivToken};

fn pin_json(s: &Result<PinStatus, String>) -> Value {
    match s {
        Ok(PinStatus::Verified) => json!({"verified": true}),
        Ok(PinStatus::NotVerified { tries_left }) => {
            json!({"verified": false, "tries_left": tries_left})
        }
        Ok(PinStatus::Blocked) => json!({"verified": false, "tries_left": 0, "blocked": true}),
        Err(e) => json!({"error": e}),
    }
}

fn pin_text(s: &Result<PinStatus, String>) -> String {
    match s {
        Ok(PinStatus::Verified) => "PIN verified".into(),
        Ok(PinStatus::NotVerified { tries_left }) => format!("PIN tries left: {tries_left}"),
        Ok(PinStatus::Blocked) => "PIN BLOCKED (unblock with the PUK)".into(),
        Err(e) => format!("PIN status unknown: {e}"),
    }
}

pub fn run(_app: &App, args: &StatusArgs) -> Result<(), Error> {
    let t = Tokens::load()?;
    let present = vault_token::apdu::list_keys(&vault_token::apdu::establish()?);
    // Which profiles each serial unlocks.
    let mut users: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for profile in enrolled::envelope_profiles() {
        let Ok(Some(bytes)) = enrolled::read_envelope(&profile) else {
            continue;
        };
        let Ok(env) = Envelope::decode(&bytes) else {
            continue;
        };
        for r in env.recipients() {
            if let RecipientId::Piv { serial, .. } = r {
                users.entry(serial).or_default().push(profile.clone());
            }
        }
    }
    let mut present_json = Vec::new();
    let mut present_text = Vec::new();
    // The roots `hw enroll` would trust, for each key's attestation root.
    let roots = vault_token::attest::TrustedRoots::from_env().map_err(|e| e.to_string());
    for k in &present {
        let (pin, root) = match k.serial {
            Some(s) => match PivToken::open(s, Duration::ZERO, &|_| {}) {
                Ok(mut tok) => {
                    let pin = tok.pin_status().map_err(|e| e.to_string());
                    let root = roots
                        .clone()
                        .and_then(|r| tok.attestation_root(&r).map_err(|e| e.to_string()));
                    (pin, root)
                }
                Err(e) => (Err(e.to_string()), Err(e.to_string())),
            },
            None => (Err("serial unknown".into()), Err("serial unknown".into())),
        };
        let version = k
            .version
            .map(|v| v.to_string())
            .unwrap_or_else(|| "?".into());
        // Firmware-specific facts: DELETE KEY and MOVE KEY came with 5.7.0,
        // and from 5.7.4 the attestation chains to Yubico Attestation Root
        // 1 through intermediates (crates/token/src/attest.rs).
        let deletion = k
            .version
            .map(|v| v >= vault_token::apdu::Version([5, 7, 0]));
        present_json.push(json!({
            "serial": k.serial, "firmware": version, "reader": k.reader, "pin": pin_json(&pin),
            "key_deletion": deletion,
            "attestation_root": root.as_ref().ok(),
            "attestation_error": root.as_ref().err(),
        }));
        present_text.push(format!(
            "  YubiKey {}  firmware {version}  reader \"{}\"  {}\n    {}; attestation {}",
            k.serial
                .map(|s| s.to_string())
                .unwrap_or_else(|| "?".into()),
            k.reader,
            pin_text(&pin),
            match deletion {
                Some(true) => "keys can be deleted and moved (DELETE/MOVE KEY)",
                Some(false) => "keys cannot be deleted or moved (firmware before 5.7)",
                None => "key deletion unknown",
            },
            match &root {
                Ok(r) => format!("chains to {r}"),
                Err(e) => format!("not verified: {e}"),
            }
        ));
    }
    let enrolled_json: Vec<Value> = t
        .tokens
        .iter()
        .map(|r| {
            json!({
                "serial": r.serial, "role": r.role, "firmware": r.version,
                "present": present.iter().any(|k| k.serial == Some(r.serial)),
                "piv": r.piv.as_ref().map(|p| json!({
                    "slot": format!("{:02x}", p.slot), "algorithm": "P-256",
                    "pin_policy": p.pin_policy.as_str(), "touch_policy": p.touch_policy.as_str(),
                    "attested": p.attested, "public_key": p.public_key,
                })),
                "profiles": users.get(&r.serial).cloned().unwrap_or_default(),
                "oath": r.oath.iter().map(|o| json!({
                    "name": o.name, "mfa_serial": o.mfa_serial, "touch": o.touch,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    if args.json {
        let v = json!({
            "present": present_json,
            "enrolled": enrolled_json,
            "pending_backup": t.pending_backup,
        });
        vault_profile::outln!("{v}");
        return Ok(());
    }
    vault_profile::outln!("Keys present:");
    if present_text.is_empty() {
        vault_profile::outln!("  none");
    }
    for l in present_text {
        vault_profile::outln!("{l}");
    }
    vault_profile::outln!("Enrolled:");
    if t.tokens.is_empty() {
        vault_profile::outln!("  none (vault hw enroll puts a key into service)");
    }
    for r in &t.tokens {
        let here = if present.iter().any(|k| k.serial == Some(r.serial)) {
            "present"
        } else {
            "absent"
        };
        vault_profile::outln!("  YubiKey {} ({}, {here})", r.serial, r.role);
        if let Some(p) = &r.piv {
            vault_profile::outln!(
                "    PIV slot {:02x}: P-256, PIN {}, touch {}, {}",
                p.slot,
                p.pin_policy,
                p.touch_policy,
                if p.attested {
                    "attestation verified"
                } else {
                    "attestation NOT verified"
                }
            );
        }
        let profiles = users.get(&r.serial).cloned().unwrap_or_default();
        vault_profile::outln!(
            "    profiles: {}",
            if profiles.is_empty() {
                "-".to_string()
            } else {
                profiles.join(", ")
            }
        );
        for o in &r.oath {
            vault_profile::outln!(
                "    OATH: {} for {}{}",
                o.name,
                o.mfa_serial,
                if o.touch { " (touch required)" } else { "" }
            );
        }
    }
    if !t.pending_backup.is_empty() {
        vault_profile::outln!(
            "Backup key not yet in the envelopes of: {} (added at their next unwrap)",
            t.pending_backup.join(", ")
        );
    }
    Ok(())
}
