//! X25519 (RFC 7748) and Ed25519 (RFC 8032) for the 5.7.4 personality's
//! PIV key types 0xE0/0xE1, written from the RFCs on the big integers the
//! crate already has (through `rsa`), so no new dependency. Slow and not
//! constant-time: a test double's keys, never anyone's secrets.

use rsa::BigUint;
use sha2::{Digest, Sha512};

fn p() -> BigUint {
    (BigUint::from(1u8) << 255usize) - BigUint::from(19u8)
}

/// The order of the Ed25519 base point, 2^252 + 27742317777372353535851937790883648493.
fn order() -> BigUint {
    (BigUint::from(1u8) << 252usize)
        + BigUint::parse_bytes(b"27742317777372353535851937790883648493", 10).unwrap()
}

fn bit(v: &BigUint, i: usize) -> bool {
    ((v >> i) & BigUint::from(1u8)) == BigUint::from(1u8)
}

fn le(bytes: &[u8]) -> BigUint {
    BigUint::from_bytes_le(bytes)
}

fn to_le32(v: &BigUint) -> [u8; 32] {
    let mut out = [0u8; 32];
    let b = v.to_bytes_le();
    out[..b.len()].copy_from_slice(&b);
    out
}

fn sub(a: &BigUint, b: &BigUint, m: &BigUint) -> BigUint {
    ((a % m) + m - (b % m)) % m
}

fn inv(a: &BigUint, m: &BigUint) -> BigUint {
    a.modpow(&(m - BigUint::from(2u8)), m)
}

fn clamp(k: &[u8; 32]) -> BigUint {
    let mut k = *k;
    k[0] &= 248;
    k[31] &= 127;
    k[31] |= 64;
    le(&k)
}

/// X25519(k, u): RFC 7748 section 5's ladder.
pub fn x25519(k: &[u8; 32], u: &[u8; 32]) -> [u8; 32] {
    let p = p();
    let k = clamp(k);
    let mut u = *u;
    u[31] &= 127;
    let x1 = le(&u) % &p;
    let a24 = BigUint::from(121_665u32);
    let (mut x2, mut z2) = (BigUint::from(1u8), BigUint::from(0u8));
    let (mut x3, mut z3) = (x1.clone(), BigUint::from(1u8));
    let mut swap = false;
    for t in (0..255).rev() {
        let bit = bit(&k, t);
        if swap != bit {
            std::mem::swap(&mut x2, &mut x3);
            std::mem::swap(&mut z2, &mut z3);
        }
        swap = bit;
        let a = (&x2 + &z2) % &p;
        let aa = (&a * &a) % &p;
        let b = sub(&x2, &z2, &p);
        let bb = (&b * &b) % &p;
        let e = sub(&aa, &bb, &p);
        let c = (&x3 + &z3) % &p;
        let d = sub(&x3, &z3, &p);
        let da = (&d * &a) % &p;
        let cb = (&c * &b) % &p;
        let s = (&da + &cb) % &p;
        x3 = (&s * &s) % &p;
        let t2 = sub(&da, &cb, &p);
        z3 = (&x1 * ((&t2 * &t2) % &p)) % &p;
        x2 = (&aa * &bb) % &p;
        z2 = (&e * ((&aa + &a24 * &e) % &p)) % &p;
    }
    if swap {
        std::mem::swap(&mut x2, &mut x3);
        std::mem::swap(&mut z2, &mut z3);
    }
    to_le32(&((&x2 * inv(&z2, &p)) % &p))
}

/// The X25519 public key of a private key.
pub fn x25519_public(k: &[u8; 32]) -> [u8; 32] {
    let mut nine = [0u8; 32];
    nine[0] = 9;
    x25519(k, &nine)
}

/// A point of edwards25519 in extended coordinates (X, Y, Z, T).
#[derive(Clone)]
struct Point(BigUint, BigUint, BigUint, BigUint);

fn d() -> BigUint {
    let p = p();
    // d = -121665 / 121666
    sub(&BigUint::from(0u8), &BigUint::from(121_665u32), &p) * inv(&BigUint::from(121_666u32), &p)
        % &p
}

fn add(a: &Point, b: &Point) -> Point {
    // RFC 8032 section 5.1.4.
    let p = p();
    let two_d = (d() * BigUint::from(2u8)) % &p;
    let aa = (sub(&a.1, &a.0, &p) * sub(&b.1, &b.0, &p)) % &p;
    let bb = ((&a.1 + &a.0) * (&b.1 + &b.0)) % &p;
    let c = (&a.3 * &two_d % &p * &b.3) % &p;
    let dd = (&a.2 * BigUint::from(2u8) * &b.2) % &p;
    let e = sub(&bb, &aa, &p);
    let f = sub(&dd, &c, &p);
    let g = (&dd + &c) % &p;
    let h = (&bb + &aa) % &p;
    Point(
        (&e * &f) % &p,
        (&g * &h) % &p,
        (&f * &g) % &p,
        (&e * &h) % &p,
    )
}

fn mul(s: &BigUint, point: &Point) -> Point {
    let one = BigUint::from(1u8);
    let zero = BigUint::from(0u8);
    let mut acc = Point(zero.clone(), one.clone(), one, zero);
    for i in (0..s.bits()).rev() {
        acc = add(&acc, &acc);
        if bit(s, i) {
            acc = add(&acc, point);
        }
    }
    acc
}

fn base() -> Point {
    let p = p();
    // y = 4/5; x is the even root of x^2 = (y^2 - 1) / (d y^2 + 1).
    let y = (BigUint::from(4u8) * inv(&BigUint::from(5u8), &p)) % &p;
    let y2 = (&y * &y) % &p;
    let x2 = (sub(&y2, &BigUint::from(1u8), &p) * inv(&((d() * &y2 + 1u8) % &p), &p)) % &p;
    let exp = (&p + BigUint::from(3u8)) >> 3usize;
    let mut x = x2.modpow(&exp, &p);
    if (&x * &x) % &p != x2 {
        let sqrt_m1 = BigUint::from(2u8).modpow(&((&p - 1u8) >> 2usize), &p);
        x = (x * sqrt_m1) % &p;
    }
    if bit(&x, 0) {
        x = &p - x;
    }
    let t = (&x * &y) % &p;
    Point(x, y, BigUint::from(1u8), t)
}

fn encode(point: &Point) -> [u8; 32] {
    let p = p();
    let zi = inv(&point.2, &p);
    let x = (&point.0 * &zi) % &p;
    let y = (&point.1 * &zi) % &p;
    let mut out = to_le32(&y);
    if bit(&x, 0) {
        out[31] |= 0x80;
    }
    out
}

fn expand(seed: &[u8; 32]) -> (BigUint, [u8; 32]) {
    let h = Sha512::digest(seed);
    let mut a = [0u8; 32];
    a.copy_from_slice(&h[..32]);
    let mut prefix = [0u8; 32];
    prefix.copy_from_slice(&h[32..]);
    (clamp(&a), prefix)
}

/// The Ed25519 public key of a 32-byte seed (the private key).
pub fn ed25519_public(seed: &[u8; 32]) -> [u8; 32] {
    let (a, _) = expand(seed);
    encode(&mul(&a, &base()))
}

/// A pure Ed25519 signature of `message`.
pub fn ed25519_sign(seed: &[u8; 32], message: &[u8]) -> [u8; 64] {
    let l = order();
    let (a, prefix) = expand(seed);
    let public = encode(&mul(&a, &base()));
    let r = le(&Sha512::new()
        .chain_update(prefix)
        .chain_update(message)
        .finalize())
        % &l;
    let big_r = encode(&mul(&r, &base()));
    let k = le(&Sha512::new()
        .chain_update(big_r)
        .chain_update(public)
        .chain_update(message)
        .finalize())
        % &l;
    let s = (r + k * a) % &l;
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&big_r);
    out[32..].copy_from_slice(&to_le32(&s));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    #[test]
    fn x25519_rfc7748_vectors() {
        // RFC 7748 section 5.2, first vector, and 6.1's key exchange.
        let k = h32("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
        let u = h32("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
        assert_eq!(
            hex::encode(x25519(&k, &u)),
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
        );
        let alice = h32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let bob = h32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        assert_eq!(
            hex::encode(x25519_public(&alice)),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
        let shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
        assert_eq!(hex::encode(x25519(&alice, &x25519_public(&bob))), shared);
        assert_eq!(hex::encode(x25519(&bob, &x25519_public(&alice))), shared);
    }

    #[test]
    fn ed25519_rfc8032_vectors() {
        // RFC 8032 section 7.1, TEST 1 (empty message) and TEST 2.
        let seed = h32("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        assert_eq!(
            hex::encode(ed25519_public(&seed)),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            hex::encode(ed25519_sign(&seed, b"")),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        let seed = h32("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb");
        assert_eq!(
            hex::encode(ed25519_sign(&seed, &[0x72])),
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        );
    }
}
