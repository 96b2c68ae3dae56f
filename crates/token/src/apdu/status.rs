//! Status words named once, so applets match on what the card meant, not on numbers.

use std::fmt;

/// A status word, with the meanings YubiKey applets give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sw {
    /// `9000`
    Ok,
    /// `61xx`: `xx` more bytes (0 = 256 or more) wait to be fetched.
    MoreData(u8),
    /// `63Cx`: wrong PIN/PUK, `x` tries left.
    TriesLeft(u8),
    /// `6700`
    WrongLength,
    /// `6982`: security status not satisfied (PIN or password missing), or
    /// a touch that did not come in time.
    SecurityStatus,
    /// `6983`: PIN or PUK blocked.
    Blocked,
    /// `6984`: reference data not usable; OATH: no such credential.
    NotFound,
    /// `6985`: conditions of use not satisfied (also a touch timeout).
    ConditionsNotSatisfied,
    /// `6A80`: wrong data (OATH: also a wrong password).
    BadData,
    /// `6A82`: file or applet not found.
    FileNotFound,
    /// `6A84`: not enough space.
    NoSpace,
    /// `6A86`: wrong P1/P2.
    WrongP1P2,
    /// `6A88`: referenced data not found.
    RefNotFound,
    /// `6D00`: instruction not supported.
    InsNotSupported,
    /// `6E00`: class not supported.
    ClaNotSupported,
    Other(u16),
}

impl Sw {
    pub fn from_u16(sw: u16) -> Sw {
        match sw {
            0x9000 => Sw::Ok,
            0x6700 => Sw::WrongLength,
            0x6982 => Sw::SecurityStatus,
            0x6983 => Sw::Blocked,
            0x6984 => Sw::NotFound,
            0x6985 => Sw::ConditionsNotSatisfied,
            0x6A80 => Sw::BadData,
            0x6A82 => Sw::FileNotFound,
            0x6A84 => Sw::NoSpace,
            0x6A86 => Sw::WrongP1P2,
            0x6A88 => Sw::RefNotFound,
            0x6D00 => Sw::InsNotSupported,
            0x6E00 => Sw::ClaNotSupported,
            _ if sw >> 8 == 0x61 => Sw::MoreData(sw as u8),
            _ if sw & 0xFFF0 == 0x63C0 => Sw::TriesLeft((sw & 0x0F) as u8),
            _ => Sw::Other(sw),
        }
    }

    pub fn code(self) -> u16 {
        match self {
            Sw::Ok => 0x9000,
            Sw::MoreData(n) => 0x6100 | n as u16,
            Sw::TriesLeft(n) => 0x63C0 | (n & 0x0F) as u16,
            Sw::WrongLength => 0x6700,
            Sw::SecurityStatus => 0x6982,
            Sw::Blocked => 0x6983,
            Sw::NotFound => 0x6984,
            Sw::ConditionsNotSatisfied => 0x6985,
            Sw::BadData => 0x6A80,
            Sw::FileNotFound => 0x6A82,
            Sw::NoSpace => 0x6A84,
            Sw::WrongP1P2 => 0x6A86,
            Sw::RefNotFound => 0x6A88,
            Sw::InsNotSupported => 0x6D00,
            Sw::ClaNotSupported => 0x6E00,
            Sw::Other(sw) => sw,
        }
    }

    pub fn meaning(self) -> &'static str {
        match self {
            Sw::Ok => "success",
            Sw::MoreData(_) => "more data available",
            Sw::TriesLeft(_) => "verification failed",
            Sw::WrongLength => "wrong length",
            Sw::SecurityStatus => "security status not satisfied (PIN, password or touch)",
            Sw::Blocked => "blocked",
            Sw::NotFound => "not found",
            Sw::ConditionsNotSatisfied => "conditions of use not satisfied",
            Sw::BadData => "wrong data",
            Sw::FileNotFound => "applet or file not found",
            Sw::NoSpace => "no space left",
            Sw::WrongP1P2 => "wrong parameters",
            Sw::RefNotFound => "referenced data not found",
            Sw::InsNotSupported => "instruction not supported",
            Sw::ClaNotSupported => "class not supported",
            Sw::Other(_) => "unexpected status",
        }
    }
}

impl fmt::Display for Sw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sw::TriesLeft(n) => write!(f, "{:04X} ({n} tries left)", self.code()),
            _ => write!(f, "{:04X} ({})", self.code(), self.meaning()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_round_trip_and_have_names() {
        for code in [
            0x9000, 0x6105, 0x6100, 0x63C2, 0x6700, 0x6982, 0x6983, 0x6984, 0x6985, 0x6A80, 0x6A82,
            0x6A84, 0x6A86, 0x6A88, 0x6D00, 0x6E00, 0x6F00,
        ] {
            assert_eq!(Sw::from_u16(code).code(), code, "{code:04X}");
        }
        assert_eq!(Sw::from_u16(0x63C2), Sw::TriesLeft(2));
        assert_eq!(Sw::from_u16(0x61FF), Sw::MoreData(0xFF));
        assert_eq!(
            Sw::SecurityStatus.to_string(),
            "6982 (security status not satisfied (PIN, password or touch))"
        );
        assert_eq!(Sw::TriesLeft(1).to_string(), "63C1 (1 tries left)");
        assert_eq!(Sw::NoSpace.to_string(), "6A84 (no space left)");
    }
}
