//! Types for secrets. Each kind of secret has its own type so it cannot be
//! passed where another is expected; none implements `Display`, `Debug`
//! prints a redaction, and the memory is zeroized on drop. The value is
//! reachable only through `expose()`, at the point of use.

use secrecy::{ExposeSecret, SecretString, SecretVec};
use zeroize::Zeroizing;

macro_rules! secret_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name(SecretString);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                $name(SecretString::new(value.into()))
            }
            pub fn expose(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl Clone for $name {
            fn clone(&self) -> Self {
                $name::new(self.expose())
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
pub struct SecretBytes(SecretVec<u8>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(SecretVec::new(bytes))
    }
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
    pub fn to_zeroizing(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.expose().to_vec())
    }
}

impl From<Zeroizing<Vec<u8>>> for SecretBytes {
    fn from(mut z: Zeroizing<Vec<u8>>) -> Self {
        // Moved, not copied: the bytes stay in the one allocation.
        SecretBytes::new(std::mem::take(&mut *z))
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

/// `value` as JSON in one buffer of exactly its size, zeroized on drop.
///
/// `serde_json::to_vec` grows its buffer by reallocation, and a `Value`
/// tree copies every string: both leave copies of the secrets in freed heap
/// memory, where a core file or a later bug can find them. Measuring first
/// and writing once leaves none.
pub fn json_bytes<T: serde::Serialize + ?Sized>(value: &T, newline: bool) -> Zeroizing<Vec<u8>> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing plain structs of strings and numbers cannot fail; an empty
    // buffer is what a failure would leave, and callers refuse empty JSON.
    if serde_json::to_writer(&mut count, value).is_err() {
        return Zeroizing::new(Vec::new());
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(count.0 + usize::from(newline)));
    if serde_json::to_writer(&mut *buf, value).is_err() {
        buf.clear();
        return buf;
    }
    if newline {
        buf.push(b'\n');
    }
    buf
}

/// [`json_bytes`] as text.
pub fn json_text<T: serde::Serialize + ?Sized>(value: &T, newline: bool) -> Zeroizing<String> {
    let mut bytes = json_bytes(value, newline);
    // serde_json writes UTF-8 only; the fallback keeps this total.
    Zeroizing::new(
        String::from_utf8(std::mem::take(&mut *bytes)).unwrap_or_else(|e| {
            zeroize::Zeroize::zeroize(&mut e.into_bytes());
            String::new()
        }),
    )
}

/// The concatenation of `parts` in one buffer of exactly its size (no
/// reallocation leaving partial copies behind), zeroized on drop.
pub fn concat(parts: &[&str]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(parts.iter().map(|p| p.len()).sum()));
    for p in parts {
        out.push_str(p);
    }
    out
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
