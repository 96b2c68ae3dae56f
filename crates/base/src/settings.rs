//! The `VAULT_*` variables. An empty value counts as unset, as aws-vault
//! and the AWS CLI treat theirs: `VAULT_PIN= vault exec …` in a script must
//! not send an empty PIN.
//!
//! vault's tunables are read once per process into [`Settings`]; secrets
//! handed in the environment (`VAULT_PIN`, `VAULT_FILE_PASSPHRASE`, …) are
//! read where they are used, straight into their secret types, and are
//! never kept in it.

use std::sync::OnceLock;
use std::time::Duration;

/// vault's tunables from the environment: every `VAULT_*` variable that is
/// not a secret and not a command-line option's `env` (clap reads those).
/// Durations that do not parse count as unset, so a typo falls back to the
/// default rather than stopping every AWS call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `VAULT_STS_TIMEOUT`: how long one STS call may take.
    pub sts_timeout: Option<Duration>,
    /// `VAULT_MIN_REMAINING`, else aws-vault's `AWS_MIN_TTL`: the validity
    /// a cached session must have left to be reused.
    pub min_remaining: Option<Duration>,
    /// `VAULT_TOKEN_WAIT`: how long exec waits for a YubiKey to be inserted.
    pub token_wait: Option<Duration>,
    /// `VAULT_ROTATE_WAIT`: how long rotate waits for a new IAM key to work.
    pub rotate_wait: Option<Duration>,
    /// `VAULT_CACHE_SCOPE`: `user` or `session` (checked by the cache).
    pub cache_scope: Option<String>,
    /// `VAULT_PINENTRY`: the pinentry program to run.
    pub pinentry: Option<String>,
    /// `VAULT_KEYCHAIN_SERVICE`: the keychain service name items live under.
    pub keychain_service: Option<String>,
    /// `VAULT_FEDERATION_URL`: where `vault login` gets its sign-in token.
    pub federation_url: Option<String>,
}

impl Settings {
    /// The settings in `env` (a variable's value, `None` when unset).
    pub fn from(env: &dyn Fn(&str) -> Option<String>) -> Settings {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let duration = |name: &str| var(name).and_then(|v| parse_duration(&v).ok());
        Settings {
            sts_timeout: duration("VAULT_STS_TIMEOUT").filter(|d| !d.is_zero()),
            min_remaining: duration("VAULT_MIN_REMAINING").or_else(|| duration("AWS_MIN_TTL")),
            token_wait: duration("VAULT_TOKEN_WAIT"),
            rotate_wait: duration("VAULT_ROTATE_WAIT"),
            cache_scope: var("VAULT_CACHE_SCOPE"),
            pinentry: var("VAULT_PINENTRY"),
            keychain_service: var("VAULT_KEYCHAIN_SERVICE"),
            federation_url: var("VAULT_FEDERATION_URL"),
        }
    }

    /// This process's settings, read from its environment the first time.
    pub fn get() -> &'static Settings {
        static SETTINGS: OnceLock<Settings> = OnceLock::new();
        SETTINGS.get_or_init(|| Settings::from(&|name| std::env::var(name).ok()))
    }
}

/// The variable's value when it is set to something.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The file store's passphrase, for scripts and headless machines.
pub const FILE_PASSPHRASE: &str = "VAULT_FILE_PASSPHRASE";

/// vault's own secrets that scripts may hand it in the environment: the
/// file store's passphrase and the tokens' PINs. They are vault's, not the
/// command's: a shell started by `vault exec` would pass them on to every
/// program it runs.
pub const VAULT_SECRETS: &[&str] = &[
    FILE_PASSPHRASE,
    "VAULT_PIN",
    "VAULT_NEW_PIN",
    "VAULT_NEW_PUK",
    "VAULT_FIDO2_PIN",
];

/// Takes vault's own secrets out of the environment of a helper program
/// vault starts (mfa_process, a credential_process source, a dialog, the
/// browser opener): they are vault's, and such programs need none of them.
pub fn without_vault_secrets(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for k in VAULT_SECRETS {
        cmd.env_remove(k);
    }
    cmd
}

/// The longest duration vault takes: Go's limit (`time.ParseDuration`,
/// 2562047h47m16s, about 292 years), so that any duration that parses can
/// be added to the current time, as a deadline or an expiry is.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(9_223_372_036);

/// Go-style durations as aws-vault takes them: `1h`, `30m`, `1h30m`, `900s`, `900`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let too_long = || format!("invalid duration {s:?}: longer than 2562047h (about 292 years)");
    let total = if let Ok(n) = s.parse::<u64>() {
        n
    } else if s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(too_long());
    } else {
        let mut total = 0u64;
        let mut num = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            if num.is_empty() {
                return Err(format!(
                    "invalid duration {s:?}: expected e.g. 1h, 30m, 900s"
                ));
            }
            let n: u64 = num.parse().map_err(|_| too_long())?;
            num.clear();
            let unit = match c {
                'h' => 3600,
                'm' => 60,
                's' => 1,
                _ => {
                    return Err(format!(
                        "invalid duration {s:?}: unknown unit {c:?} (use h, m, s)"
                    ))
                }
            };
            total = n
                .checked_mul(unit)
                .and_then(|n| total.checked_add(n))
                .ok_or_else(too_long)?;
        }
        if !num.is_empty() {
            return Err(format!(
                "invalid duration {s:?}: a number needs a unit (h, m, s)"
            ));
        }
        total
    };
    if total > MAX_DURATION.as_secs() {
        return Err(too_long());
    }
    Ok(std::time::Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_each_variable_and_skip_what_does_not_parse() {
        let env = |name: &str| {
            match name {
                "VAULT_STS_TIMEOUT" => Some("0"),
                "AWS_MIN_TTL" => Some("10m"),
                "VAULT_TOKEN_WAIT" => Some("1h30m"),
                "VAULT_ROTATE_WAIT" => Some("soon"),
                "VAULT_CACHE_SCOPE" => Some("session"),
                "VAULT_PINENTRY" => Some(""),
                "VAULT_KEYCHAIN_SERVICE" => Some("vault-test"),
                _ => None,
            }
            .map(str::to_string)
        };
        let s = Settings::from(&env);
        assert_eq!(
            s,
            Settings {
                // A zero timeout would fail every call: unset.
                sts_timeout: None,
                // aws-vault's name, when vault's is not set.
                min_remaining: Some(Duration::from_secs(600)),
                token_wait: Some(Duration::from_secs(5400)),
                rotate_wait: None,
                cache_scope: Some("session".into()),
                pinentry: None,
                keychain_service: Some("vault-test".into()),
                federation_url: None,
            }
        );
        let both = |name: &str| match name {
            "VAULT_MIN_REMAINING" => Some("1m".to_string()),
            "AWS_MIN_TTL" => Some("10m".to_string()),
            _ => None,
        };
        assert_eq!(
            Settings::from(&both).min_remaining,
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn durations_too_long_to_add_to_now_are_refused() {
        // Found by fuzzing (fuzz/regressions/cli/duration-past-the-end-of-time):
        // the hours saturated at u64::MAX seconds, and `Instant::now() + d`
        // (`hw enroll --wait`, VAULT_TOKEN_WAIT, VAULT_ROTATE_WAIT) panicked.
        for s in [
            "008h4444444444444009h008h01s11s1s1s",
            "18446744073709551615",
            "99999999999999999999",
            "2562048h",
            "2562047h47m17s",
        ] {
            assert!(parse_duration(s).is_err(), "{s:?} accepted");
        }
        let max = parse_duration("2562047h47m16s").unwrap();
        assert_eq!(max, MAX_DURATION);
        assert!(std::time::Instant::now().checked_add(max).is_some());
        assert!(std::time::SystemTime::now().checked_add(max).is_some());
    }

    #[test]
    fn durations_like_aws_vault() {
        assert_eq!(parse_duration("1h").unwrap().as_secs(), 3600);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("900s").unwrap().as_secs(), 900);
        assert_eq!(parse_duration("900").unwrap().as_secs(), 900);
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("1h3").is_err());
        assert!(parse_duration("").is_err());
    }
}
