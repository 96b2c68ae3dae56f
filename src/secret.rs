//! Types for secrets. Each kind of secret has its own type so it cannot be
//! passed where another is expected; none implements `Display`, `Debug`
//! prints a redaction, and the memory is zeroized on drop. The value is
//! reachable only through `expose()`, at the point of use.

use secrecy::{ExposeSecret, SecretBox, SecretString};
use zeroize::Zeroizing;

macro_rules! secret_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                $name(SecretString::from(value.into()))
            }
            pub fn expose(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "(***)"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                use subtle::ConstantTimeEq;
                self.expose().as_bytes().ct_eq(other.expose().as_bytes()).into()
            }
        }
    };
}

secret_string!(
    /// The secret half of an IAM access key (long-term or temporary).
    SecretAccessKey
);
secret_string!(
    /// An STS session token.
    SessionToken
);
secret_string!(
    /// A one-time MFA code. Short-lived, but a code not yet used is still a
    /// credential: it never goes to logs either.
    MfaCode
);
secret_string!(
    /// A PIN, PUK or passphrase typed by the user.
    Passphrase
);

/// Secret bytes: a TOTP seed, an unwrapped key, a serialized store item.
pub struct SecretBytes(SecretBox<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(SecretBox::new(Box::new(bytes)))
    }
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
    pub fn to_zeroizing(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.expose().to_vec())
    }
}

impl From<Zeroizing<Vec<u8>>> for SecretBytes {
    fn from(z: Zeroizing<Vec<u8>>) -> Self {
        SecretBytes::new(z.to_vec())
    }
}

impl Clone for SecretBytes {
    fn clone(&self) -> Self {
        SecretBytes::new(self.expose().to_vec())
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes({} bytes)", self.expose().len())
    }
}

/// An access key ID with all but its last four characters masked, the way
/// aws-vault shows keys in logs and listings.
pub fn mask_key_id(id: &str) -> String {
    let n = id.chars().count();
    if n <= 4 {
        return "****".to_string();
    }
    let tail: String = id.chars().skip(n - 4).collect();
    format!("****************{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = SecretAccessKey::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        assert_eq!(format!("{s:?}"), "SecretAccessKey(***)");
        let b = SecretBytes::new(b"seed".to_vec());
        assert!(!format!("{b:?}").contains("seed"));
    }

    #[test]
    fn masking_keeps_last_four() {
        assert_eq!(mask_key_id("AKIAIOSFODNN7EXAMPLE"), "****************MPLE");
        assert_eq!(mask_key_id("AB"), "****");
    }
}
