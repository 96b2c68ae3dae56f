//! The `VAULT_*` variables. An empty value counts as unset, as aws-vault
//! and the AWS CLI treat theirs: `VAULT_PIN= vault exec …` in a script must
//! not send an empty PIN.

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
