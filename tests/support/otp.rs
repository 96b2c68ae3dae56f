//! RFC 6238 codes and RFC 4648 base32, computed here independently of
//! vault and of the key, so tests can check what either produced.

use hmac::{Hmac, Mac};

/// RFC 6238 TOTP: HMAC-SHA1, 6 digits, of time step `step`.
pub fn totp(seed: &[u8], step: u64) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(seed).unwrap();
    mac.update(&step.to_be_bytes());
    let d = mac.finalize().into_bytes();
    let off = usize::from(d[19] & 0x0F);
    let bin = u32::from_be_bytes([d[off], d[off + 1], d[off + 2], d[off + 3]]) & 0x7FFF_FFFF;
    format!("{:06}", bin % 1_000_000)
}

/// RFC 4648 base32 without padding, as AWS shows MFA seeds.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The bytes of base32 text (padding allowed); panics on other letters.
pub fn base32_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {c}"),
        } as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
