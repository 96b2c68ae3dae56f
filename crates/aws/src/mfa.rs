//! Where MFA codes come from, in order: `--mfa-token`, the profile's
//! `mfa_process`, the hardware token's OATH applet, then a prompt driver.
//! And the rule AWS enforces: a TOTP code is accepted once, so vault never
//! sends a code it already sent; it waits for the next one instead.

use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use vault_base::error::Hinted;
use vault_base::secret::MfaCode;
use vault_profile::session::{self, MfaUse, SessionCache};
use vault_prompt::{Prompt, PromptError};

/// TOTP time step length AWS virtual MFA devices use.
pub const STEP: u64 = 30;
/// How long a used code is remembered: a code is valid for about a step
/// either side of its own, so after this it is worthless anyway.
const REMEMBER_SECS: u64 = 120;

/// A source of codes computed on a device (the YubiKey OATH applet).
pub trait DeviceCodes {
    /// The code of `mfa_serial`'s credential for TOTP step `step`, or
    /// `Ok(None)` when this device holds no credential for it.
    fn code(&self, mfa_serial: &str, step: u64) -> Result<Option<MfaCode>, Box<dyn Hinted>>;
}

/// The OATH applet of one YubiKey as a source of codes.
impl DeviceCodes for vault_token::oath::TokenCodes<'_> {
    fn code(&self, mfa_serial: &str, step: u64) -> Result<Option<MfaCode>, Box<dyn Hinted>> {
        self.try_code(&crate::oath_name::credential_name(mfa_serial), step)
            .map_err(|e| Box::new(e) as Box<dyn Hinted>)
    }
}

/// A device's failure as told inside [`MfaError::DeviceFailed`], whose own
/// hint (other ways to give a code) is the one shown on the hint line: the
/// device's hint ("insert YubiKey N") goes in brackets after its message.
fn device_failure_text(e: &dyn Hinted) -> String {
    match e.hint() {
        Some(hint) => format!("{e} ({hint})"),
        None => e.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error("the MFA code given with --mfa-token was already used {ago} s ago; AWS accepts each code once")]
    TokenReused { ago: u64 },
    #[error("mfa_process kept returning a code that was already used")]
    ProcessReused,
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error("MFA device: {0}")]
    Device(String),
    /// The token holding the device's credential failed (pulled out, not
    /// touched, pcscd gone), and no prompt could ask instead.
    #[error("no MFA code for {mfa_serial}: {device}; and no way to ask you: {reason}")]
    DeviceFailed {
        mfa_serial: String,
        device: String,
        reason: String,
    },
}

impl MfaError {
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            MfaError::TokenReused { .. } => Some("wait for the next code and pass that one"),
            MfaError::Prompt(PromptError::Unavailable(_)) | MfaError::DeviceFailed { .. } => Some(
                "pass --mfa-token CODE, set mfa_process in the profile, or use --prompt zenity",
            ),
            _ => None,
        }
    }
}

pub struct MfaSources<'a> {
    pub token_flag: Option<MfaCode>,
    pub device: Option<&'a dyn DeviceCodes>,
    pub prompt: &'a dyn Prompt,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn code_hash(serial: &str, code: &MfaCode) -> String {
    let mut h = Sha256::new();
    h.update(serial.as_bytes());
    h.update([0]);
    h.update(code.expose().as_bytes());
    hex::encode(&h.finalize()[..16])
}

fn used_at(rec: &MfaUse, hash: &str, now: u64) -> Option<u64> {
    rec.used
        .iter()
        .find(|(h, t)| h == hash && now.saturating_sub(*t) < REMEMBER_SECS)
        .map(|(_, t)| *t)
}

/// How long ago the code with hash `code_hash` was sent, if it was sent
/// recently enough to be refused now.
pub fn reused_ago(rec: &MfaUse, code_hash: &str, now: u64) -> Option<u64> {
    // A record from a clock that was ahead says "in the future": just now.
    used_at(rec, code_hash, now).map(|t| now.saturating_sub(t))
}

/// How many seconds to wait before asking a device for a code, when the
/// record says the current time step's code was already sent; `None`
/// when the current step is free.
pub fn wait_for_next_step(rec: &MfaUse, now: u64) -> Option<u64> {
    let last = rec.last_step?;
    let step = now / STEP;
    // A step more than one ahead of the clock was never sent from here:
    // the record is damaged or the clock went back. Waiting for it could
    // take forever, and AWS judges codes by its own clock anyway.
    if last < step || last > step.saturating_add(1) {
        return None;
    }
    Some(
        last.saturating_add(1)
            .saturating_mul(STEP)
            .saturating_sub(now)
            .saturating_add(1),
    )
}

/// Records in `rec` that the code with hash `code_hash` (computed for TOTP
/// step `step`, when a device computed it) was sent at `now`, forgetting
/// the codes too old to matter.
pub fn record_use(rec: &mut MfaUse, code_hash: String, step: Option<u64>, now: u64) {
    rec.used
        .retain(|(_, t)| now.saturating_sub(*t) < REMEMBER_SECS);
    rec.used.push((code_hash, now));
    if let Some(step) = step {
        rec.last_step = Some(rec.last_step.map_or(step, |l| l.max(step)));
    } else {
        // A typed code belongs to the current step (or close to it).
        rec.last_step = Some(rec.last_step.map_or(now / STEP, |l| l.max(now / STEP)));
    }
}

/// A code obtained for one STS call, with what must be recorded once it
/// has been sent.
pub struct Code {
    pub code: MfaCode,
    step: Option<u64>,
}

impl Code {
    /// A code a device computed for TOTP step `step` and sent outside
    /// [`obtain`] (EnableMFADevice spends two), for [`mark_used`].
    pub fn for_step(code: MfaCode, step: u64) -> Code {
        Code {
            code,
            step: Some(step),
        }
    }
}

/// Obtains a code for `mfa_serial` that was not sent before. The caller
/// must hold the MFA lock of `mfa_serial` from here until `mark_used`.
pub fn obtain(
    src: &MfaSources<'_>,
    cache: &dyn SessionCache,
    profile: &str,
    mfa_serial: &str,
    mfa_process: Option<&str>,
) -> Result<Code, MfaError> {
    let rec = session::get_mfa_use(cache, mfa_serial);

    if let Some(code) = &src.token_flag {
        let now = now_secs();
        if let Some(ago) = reused_ago(&rec, &code_hash(mfa_serial, code), now) {
            return Err(MfaError::TokenReused { ago });
        }
        log::debug!(target: "vault", "MFA code from --mfa-token");
        return Ok(Code {
            code: code.clone(),
            step: None,
        });
    }

    if let Some(cmd) = mfa_process {
        // A code generator is deterministic per time step: a reused code
        // means the next step has not come yet, so wait for it.
        for attempt in 0..3 {
            let code = vault_prompt::mfa_process(cmd)?;
            let now = now_secs();
            if used_at(&rec, &code_hash(mfa_serial, &code), now).is_none() {
                log::debug!(target: "vault", "MFA code from mfa_process");
                return Ok(Code { code, step: None });
            }
            let wait = STEP - now % STEP + 1;
            src.prompt.notify(&format!(
                "The last MFA code for {mfa_serial} was already used; waiting {wait} s for the next one"
            ));
            log::debug!(target: "vault", "mfa_process returned a used code (attempt {attempt}); waiting {wait} s");
            std::thread::sleep(Duration::from_secs(wait));
        }
        return Err(MfaError::ProcessReused);
    }

    // Why the token gave no code, for when no prompt can ask either.
    let mut device_failure = None;
    if let Some(dev) = src.device {
        let mut step = now_secs() / STEP;
        if let Some(wait) = wait_for_next_step(&rec, now_secs()) {
            src.prompt.notify(&format!(
                "This time step's MFA code for {mfa_serial} was already used; waiting {wait} s for the next one"
            ));
            std::thread::sleep(Duration::from_secs(wait));
            step = now_secs() / STEP;
        }
        match dev.code(mfa_serial, step) {
            Ok(Some(code)) => {
                log::debug!(target: "vault", "MFA code from the token's OATH applet (step {step})");
                return Ok(Code {
                    code,
                    step: Some(step),
                });
            }
            Ok(None) => {
                log::debug!(target: "vault", "no OATH credential for {mfa_serial} on the token; falling back to the prompt")
            }
            Err(e) => {
                let e = device_failure_text(&*e);
                log::debug!(target: "vault", "OATH applet unavailable ({e}); falling back to the prompt");
                device_failure = Some(e);
            }
        }
    }

    for _ in 0..3 {
        let code = match src.prompt.mfa_code(profile, mfa_serial) {
            Ok(code) => code,
            Err(PromptError::Unavailable(reason)) => {
                return Err(match device_failure.take() {
                    Some(device) => MfaError::DeviceFailed {
                        mfa_serial: mfa_serial.to_string(),
                        device,
                        reason,
                    },
                    None => MfaError::Prompt(PromptError::Unavailable(reason)),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let now = now_secs();
        if used_at(&rec, &code_hash(mfa_serial, &code), now).is_none() {
            log::debug!(target: "vault", "MFA code from the prompt");
            return Ok(Code { code, step: None });
        }
        src.prompt
            .notify("That code was already used (AWS accepts each code once); enter the next one.");
    }
    Err(MfaError::Prompt(PromptError::Invalid(
        "every code entered was already used".into(),
    )))
}

/// Puts `mfa_serial`'s record back as it was before [`mark_used`]: for a
/// code that, after all, never left this machine.
pub fn restore(cache: &dyn SessionCache, mfa_serial: &str, before: &MfaUse) {
    if let Err(e) = session::put_mfa_use(cache, mfa_serial, before) {
        log::warn!(target: "vault", "could not restore the MFA-use record: {e}");
    }
}

/// Records that `code` was sent to AWS, so no later call sends it again.
pub fn mark_used(cache: &dyn SessionCache, mfa_serial: &str, code: &Code) {
    let now = now_secs();
    let mut rec = session::get_mfa_use(cache, mfa_serial);
    record_use(&mut rec, code_hash(mfa_serial, &code.code), code.step, now);
    if let Err(e) = session::put_mfa_use(cache, mfa_serial, &rec) {
        log::warn!(target: "vault", "could not record the used MFA code: {e}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const NOW: u64 = 1_796_000_000;

    #[test]
    fn a_code_recorded_in_the_future_counts_as_just_used_not_a_panic() {
        // Found by fuzzing (fuzz/regressions/mfa_use/code-used-in-the-future):
        // a record written while the clock was ahead made `now - t` underflow.
        let rec: MfaUse = serde_json::from_str(
            r#"{"last_step":5986,"used":[["00112233445566778899aabbccddeeff",3591999980]]}"#,
        )
        .unwrap();
        assert_eq!(
            reused_ago(&rec, "00112233445566778899aabbccddeeff", NOW),
            Some(0)
        );
    }

    #[test]
    fn a_last_step_far_ahead_of_the_clock_is_never_waited_for() {
        // fuzz/regressions/mfa_use/last-step-at-the-end-of-time: `(last + 1) * STEP`
        // overflowed, and a step far ahead meant sleeping for years.
        for last in [u64::MAX, u64::MAX / STEP, NOW / STEP + 2, NOW, 0] {
            let rec = MfaUse {
                last_step: Some(last),
                used: Vec::new(),
            };
            assert_eq!(wait_for_next_step(&rec, NOW), None, "last step {last}");
        }
        // This step's code was sent: wait for the next step, not longer.
        let step = NOW / STEP;
        for (last, at_most) in [(step, STEP + 1), (step + 1, 2 * STEP + 1)] {
            let rec = MfaUse {
                last_step: Some(last),
                used: Vec::new(),
            };
            let wait = wait_for_next_step(&rec, NOW).unwrap();
            assert!(wait <= at_most && (NOW + wait) / STEP > last, "{wait}");
        }
        for now in [u64::MAX, u64::MAX - 1] {
            let rec = MfaUse {
                last_step: Some(now / STEP),
                used: Vec::new(),
            };
            assert!(wait_for_next_step(&rec, now).is_some_and(|w| w <= 2 * STEP + 1));
        }
    }
}
