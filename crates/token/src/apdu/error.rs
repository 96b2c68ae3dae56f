//! The card layer's one error type, each case with what the user does about it.

use super::{tlv, Sw};
use std::time::Duration;

/// Everything that can go wrong between vault and a YubiKey. Each variant
/// says what happened; [`TokenError::hint`] says what to do about it. No
/// variant carries secret material (PINs, passwords, codes, key bytes).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot reach the smart card service (pcscd): {0}")]
    PcscUnavailable(pcsc::Error),
    #[error("no YubiKey with serial {serial} found{}", waited_for(*.waited))]
    NotFound {
        serial: u32,
        waited: Duration,
        /// Serials of the YubiKeys that were there instead.
        seen: Vec<u32>,
        /// Readers whose card another program held exclusively.
        busy: Vec<String>,
    },
    #[error("the YubiKey in {reader:?} is held exclusively by another program")]
    Busy { reader: String },
    #[error("{} was removed (or reset) during the operation", key_name(*.serial))]
    Removed { serial: Option<u32> },
    #[error("no touch within the timeout: touch your YubiKey when it blinks")]
    TouchTimeout { serial: Option<u32> },
    #[error("no OATH credential named {0:?} on the YubiKey")]
    NoSuchCredential(String),
    #[error("the OATH applet of {} is password-protected", key_name(*.serial))]
    OathPasswordRequired { serial: Option<u32> },
    #[error("wrong OATH password for {}", key_name(*.serial))]
    OathWrongPassword { serial: Option<u32> },
    #[error("{} accepted the OATH password but answered vault's challenge wrongly", key_name(*.serial))]
    OathCardAuthFailed { serial: Option<u32> },
    #[error("the OATH applet is full: no space for another credential")]
    NoSpace,
    #[error("{} has no {applet} applet, or it is disabled", key_name(*.serial))]
    NoApplet {
        applet: &'static str,
        serial: Option<u32>,
    },
    #[error("invalid OATH credential: {0}")]
    InvalidCredential(String),
    #[error("the YubiKey answered {sw} to {op}")]
    Status { op: &'static str, sw: Sw },
    #[error("the YubiKey's answer to {op} is malformed: {what}")]
    Malformed {
        op: &'static str,
        what: &'static str,
    },
    #[error("smart card error during {op}: {err}")]
    Pcsc { op: &'static str, err: pcsc::Error },
}

fn key_name(serial: Option<u32>) -> String {
    match serial {
        Some(s) => format!("the YubiKey (serial {s})"),
        None => "the YubiKey".to_string(),
    }
}

fn waited_for(waited: Duration) -> String {
    if waited.is_zero() {
        String::new()
    } else {
        format!(" (waited {:.1} s)", waited.as_secs_f64())
    }
}

/// The OS-specific way to get the smart card service running.
fn pcscd_fix() -> &'static str {
    if cfg!(target_os = "linux") {
        "vault reaches YubiKeys through pcscd: install and start it \
         (Debian/Ubuntu: `sudo apt install pcscd` and `systemctl enable --now pcscd.socket`; \
         Fedora: `sudo dnf install pcsc-lite && sudo systemctl enable --now pcscd.socket`; \
         Arch: `sudo pacman -S pcsclite ccid && sudo systemctl enable --now pcscd.socket`)"
    } else if cfg!(target_os = "macos") {
        "the smart card service is part of macOS: unplug the YubiKey, plug it \
         back in, and try again"
    } else {
        "start the Smart Card service (`sc start SCardSvr`), then try again"
    }
}

impl vault_base::error::Hinted for TokenError {
    fn hint(&self) -> Option<String> {
        TokenError::hint(self)
    }
}

impl TokenError {
    /// What to do next, for the user.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            TokenError::PcscUnavailable(_) => pcscd_fix().to_string(),
            TokenError::NotFound {
                serial, seen, busy, ..
            } => {
                let mut h = format!("insert YubiKey {serial}");
                if !seen.is_empty() {
                    let seen: Vec<String> = seen.iter().map(u32::to_string).collect();
                    h.push_str(&format!(" (vault sees only {})", seen.join(", ")));
                }
                if !busy.is_empty() {
                    h.push_str(&format!(
                        "; another program holds {} exclusively (often GnuPG: \
                         `gpgconf --kill scdaemon`)",
                        busy.join(", ")
                    ));
                }
                h.push_str("; `vault hw status` lists the keys vault can see");
                h
            }
            TokenError::Busy { .. } => "another program holds the key exclusively, \
                 often GnuPG's scdaemon: run `gpgconf --kill scdaemon` and try again"
                .to_string(),
            TokenError::Removed { serial } => match serial {
                Some(s) => format!("re-insert YubiKey {s} and run the command again"),
                None => "re-insert the YubiKey and run the command again".to_string(),
            },
            TokenError::TouchTimeout { .. } => "run the command again and touch the \
                 YubiKey's contact while it blinks (it waits about 15 s)"
                .to_string(),
            TokenError::NoSuchCredential(_) => {
                "`ykman oath accounts list` shows the credentials on the key".to_string()
            }
            TokenError::OathPasswordRequired { .. } => "give vault the OATH password \
                 (the one set with `ykman oath access change`)"
                .to_string(),
            TokenError::OathWrongPassword { .. } => "check the OATH password: it is the \
                 one set with `ykman oath access change`"
                .to_string(),
            TokenError::OathCardAuthFailed { .. } => "this may not be the key you think: \
                 check its serial with `vault hw status`"
                .to_string(),
            TokenError::NoSpace => {
                "delete an unused credential: `ykman oath accounts delete NAME`".to_string()
            }
            TokenError::NoApplet { applet, .. } => {
                format!("enable it: `ykman config usb --enable {applet}`")
            }
            TokenError::Pcsc { .. } => {
                "unplug the YubiKey, plug it back in, and try again".to_string()
            }
            TokenError::InvalidCredential(_)
            | TokenError::Status { .. }
            | TokenError::Malformed { .. } => return None,
        })
    }

    /// Maps a PC/SC failure: a missing service and a missing card get their
    /// own variants, since the user fixes them differently.
    pub fn from_pcsc(err: pcsc::Error, op: &'static str, serial: Option<u32>) -> TokenError {
        match err {
            pcsc::Error::NoService | pcsc::Error::ServiceStopped | pcsc::Error::Shutdown => {
                TokenError::PcscUnavailable(err)
            }
            pcsc::Error::RemovedCard
            | pcsc::Error::ResetCard
            | pcsc::Error::NoSmartcard
            | pcsc::Error::UnpoweredCard
            | pcsc::Error::ReaderUnavailable => TokenError::Removed { serial },
            _ => TokenError::Pcsc { op, err },
        }
    }
}

impl TokenError {
    pub fn malformed(op: &'static str, e: tlv::Malformed) -> TokenError {
        TokenError::Malformed { op, what: e.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hint says what README's install table says, command for command.
    #[test]
    fn the_pcscd_hint_gives_the_commands_of_readmes_install_table() {
        let readme = include_str!("../../../../README.md");
        let hint = pcscd_fix();
        let commands: Vec<&str> = hint.split('`').skip(1).step_by(2).collect();
        assert!(commands.len() >= 4, "{hint}");
        for c in commands {
            assert!(
                readme.contains(&format!("`{c}`")) || readme.contains(c),
                "{c:?} is not in README.md"
            );
        }
    }

    #[test]
    fn pcsc_errors_map_to_what_the_user_fixes() {
        let e = TokenError::from_pcsc(pcsc::Error::NoService, "x", None);
        assert!(matches!(e, TokenError::PcscUnavailable(_)));
        if cfg!(target_os = "linux") {
            let hint = e.hint().unwrap();
            assert!(hint.contains("apt install pcscd") && hint.contains("pcscd.socket"));
        }
        for err in [
            pcsc::Error::RemovedCard,
            pcsc::Error::ResetCard,
            pcsc::Error::NoSmartcard,
        ] {
            let e = TokenError::from_pcsc(err, "x", Some(42));
            assert!(matches!(e, TokenError::Removed { serial: Some(42) }));
            assert_eq!(
                e.hint().unwrap(),
                "re-insert YubiKey 42 and run the command again"
            );
        }
        let nf = TokenError::NotFound {
            serial: 7,
            waited: Duration::from_millis(1500),
            seen: vec![8],
            busy: vec![],
        };
        assert_eq!(
            nf.to_string(),
            "no YubiKey with serial 7 found (waited 1.5 s)"
        );
        assert!(nf
            .hint()
            .unwrap()
            .starts_with("insert YubiKey 7 (vault sees only 8)"));
    }
}
