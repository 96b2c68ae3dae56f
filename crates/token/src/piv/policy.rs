//! The PIN and touch policies, in the card's bytes, vault's words and the yubikey crate's types.

use std::fmt;
use std::str::FromStr;

/// When the card asks for the PIN before using a slot's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinPolicy {
    Never,
    /// Once per session: until the card is reset, powered off, or another
    /// applet is selected.
    Once,
    Always,
}

/// When the card asks for a touch before using a slot's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TouchPolicy {
    Never,
    Always,
    /// A touch counts for 15 s.
    Cached,
}

impl PinPolicy {
    /// The byte PIV uses in GENERATE, metadata and attestation.
    pub fn code(self) -> u8 {
        match self {
            PinPolicy::Never => 1,
            PinPolicy::Once => 2,
            PinPolicy::Always => 3,
        }
    }
    pub fn from_code(b: u8) -> Option<PinPolicy> {
        Some(match b {
            1 => PinPolicy::Never,
            2 => PinPolicy::Once,
            3 => PinPolicy::Always,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            PinPolicy::Never => "never",
            PinPolicy::Once => "once",
            PinPolicy::Always => "always",
        }
    }
    pub(super) fn to_yk(self) -> yubikey::PinPolicy {
        match self {
            PinPolicy::Never => yubikey::PinPolicy::Never,
            PinPolicy::Once => yubikey::PinPolicy::Once,
            PinPolicy::Always => yubikey::PinPolicy::Always,
        }
    }
    pub(super) fn from_yk(p: yubikey::PinPolicy) -> Option<PinPolicy> {
        match p {
            yubikey::PinPolicy::Never => Some(PinPolicy::Never),
            yubikey::PinPolicy::Once => Some(PinPolicy::Once),
            yubikey::PinPolicy::Always => Some(PinPolicy::Always),
            yubikey::PinPolicy::Default => None,
        }
    }
}

impl TouchPolicy {
    pub fn code(self) -> u8 {
        match self {
            TouchPolicy::Never => 1,
            TouchPolicy::Always => 2,
            TouchPolicy::Cached => 3,
        }
    }
    pub fn from_code(b: u8) -> Option<TouchPolicy> {
        Some(match b {
            1 => TouchPolicy::Never,
            2 => TouchPolicy::Always,
            3 => TouchPolicy::Cached,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            TouchPolicy::Never => "never",
            TouchPolicy::Always => "always",
            TouchPolicy::Cached => "cached",
        }
    }
    pub(super) fn to_yk(self) -> yubikey::TouchPolicy {
        match self {
            TouchPolicy::Never => yubikey::TouchPolicy::Never,
            TouchPolicy::Always => yubikey::TouchPolicy::Always,
            TouchPolicy::Cached => yubikey::TouchPolicy::Cached,
        }
    }
    pub(super) fn from_yk(p: yubikey::TouchPolicy) -> Option<TouchPolicy> {
        match p {
            yubikey::TouchPolicy::Never => Some(TouchPolicy::Never),
            yubikey::TouchPolicy::Always => Some(TouchPolicy::Always),
            yubikey::TouchPolicy::Cached => Some(TouchPolicy::Cached),
            yubikey::TouchPolicy::Default => None,
        }
    }
}

impl FromStr for PinPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "never" => Ok(PinPolicy::Never),
            "once" => Ok(PinPolicy::Once),
            "always" => Ok(PinPolicy::Always),
            _ => Err(format!("unknown PIN policy {s:?} (never, once, always)")),
        }
    }
}

impl FromStr for TouchPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "never" => Ok(TouchPolicy::Never),
            "always" => Ok(TouchPolicy::Always),
            "cached" => Ok(TouchPolicy::Cached),
            _ => Err(format!(
                "unknown touch policy {s:?} (never, always, cached)"
            )),
        }
    }
}

impl fmt::Display for PinPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for TouchPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_round_trip_through_codes_and_names() {
        for p in [PinPolicy::Never, PinPolicy::Once, PinPolicy::Always] {
            assert_eq!(PinPolicy::from_code(p.code()), Some(p));
            assert_eq!(p.as_str().parse::<PinPolicy>(), Ok(p));
            assert_eq!(PinPolicy::from_yk(p.to_yk()), Some(p));
        }
        for t in [TouchPolicy::Never, TouchPolicy::Always, TouchPolicy::Cached] {
            assert_eq!(TouchPolicy::from_code(t.code()), Some(t));
            assert_eq!(t.as_str().parse::<TouchPolicy>(), Ok(t));
            assert_eq!(TouchPolicy::from_yk(t.to_yk()), Some(t));
        }
        assert_eq!(PinPolicy::from_code(0), None);
        assert!("sometimes".parse::<TouchPolicy>().is_err());
    }
}
