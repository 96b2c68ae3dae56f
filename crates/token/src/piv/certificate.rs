//! The X.509 side of PIV: slot certificates vault writes and reads, and attestation chains.

use super::{AttestationReport, PinPolicy, PivError, SlotCertificate, TouchPolicy, TrustedRoots};
use crate::apdu::{tlv, TokenError, Version};
use der::Decode;
use std::time::{Duration, SystemTime};
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

/// Inside a certificate object: the certificate itself.
const TAG_CERT: u32 = 0x70;

/// Yubico's attestation extensions (developers.yubico.com, "PIV attestation").
const OID_FIRMWARE: &str = "1.3.6.1.4.1.41482.3.3";
const OID_SERIAL: &str = "1.3.6.1.4.1.41482.3.7";
const OID_POLICY: &str = "1.3.6.1.4.1.41482.3.8";
const OID_FORM_FACTOR: &str = "1.3.6.1.4.1.41482.3.9";
const OID_COMMON_NAME: &str = "2.5.4.3";

/// The certificate DER in a certificate object (`70`), as GET DATA returns
/// it; `None` for an empty object or one without a certificate.
pub fn cert_from_object(data: &[u8]) -> Result<Option<Vec<u8>>, TokenError> {
    if data.is_empty() {
        return Ok(None);
    }
    let tlvs = tlv::parse(data).map_err(|e| TokenError::malformed("PIV GET DATA", e))?;
    Ok(tlv::find(&tlvs, TAG_CERT).map(<[u8]>::to_vec))
}

/// A slot certificate of YubiKey `serial`: its P-256 key, the policies
/// recorded in Yubico's policy extension, and its common name.
pub fn parse_slot_certificate(
    serial: u32,
    slot: u8,
    der: Vec<u8>,
) -> Result<SlotCertificate, PivError> {
    let cert = Certificate::from_der(&der).map_err(|_| PivError::Card {
        serial,
        op: "parse the slot certificate",
        err: yubikey::Error::InvalidObject,
    })?;
    let tbs = &cert.tbs_certificate;
    let public_key =
        p256_of(&tbs.subject_public_key_info).ok_or(PivError::NotP256 { serial, slot })?;
    let policy = extension(&cert, OID_POLICY);
    let pin_policy = policy
        .and_then(|p| p.first().copied())
        .and_then(PinPolicy::from_code);
    let touch_policy = policy
        .and_then(|p| p.get(1).copied())
        .and_then(TouchPolicy::from_code);
    Ok(SlotCertificate {
        public_key,
        pin_policy,
        touch_policy,
        common_name: common_name(&tbs.subject),
        der,
    })
}

/// The certificate in the F9 object (the card's attestation key's).
pub(super) fn f9_certificate(f9_object: &[u8]) -> Result<Certificate, String> {
    let der = tlv::parse(f9_object)
        .ok()
        .and_then(|t| tlv::find(&t, TAG_CERT).map(<[u8]>::to_vec))
        .ok_or_else(|| "the F9 certificate object is malformed".to_string())?;
    Certificate::from_der(&der).map_err(|e| format!("F9 certificate: {e}"))
}

/// Checks what a card answered for the attestation of `slot`: `leaf_der`
/// (the ATTEST answer) must be signed by the certificate in `f9_object`
/// (the F9 object), which one of `roots` must have signed; it must attest
/// `slot_key` and YubiKey `serial`.
pub fn check_attestation(
    serial: u32,
    slot: u8,
    slot_key: &p256::PublicKey,
    leaf_der: &[u8],
    f9_object: &[u8],
    roots: &TrustedRoots,
) -> Result<AttestationReport, PivError> {
    let fail = |reason: String| PivError::Attestation {
        serial,
        slot,
        reason,
    };
    let f9 = f9_certificate(f9_object).map_err(fail)?;
    let leaf = Certificate::from_der(leaf_der)
        .map_err(|e| fail(format!("attestation certificate: {e}")))?;

    let root = roots
        .verify(&leaf, &f9, SystemTime::now())
        .map_err(fail)?
        .root()
        .to_string();

    let attested = p256_of(&leaf.tbs_certificate.subject_public_key_info)
        .ok_or_else(|| fail("the attested key is not P-256".into()))?;
    if attested != *slot_key {
        return Err(fail("the attested key is not the key in the slot".into()));
    }
    let attested_serial = extension(&leaf, OID_SERIAL)
        .and_then(|v| u32::from_der(v).ok())
        .ok_or_else(|| fail("no serial number extension".into()))?;
    if attested_serial != serial {
        return Err(fail(format!(
            "it attests serial {attested_serial}, not {serial}"
        )));
    }
    let firmware = extension(&leaf, OID_FIRMWARE)
        .and_then(|v| <[u8; 3]>::try_from(v).ok())
        .map(Version)
        .ok_or_else(|| fail("no firmware version extension".into()))?;
    let policy = extension(&leaf, OID_POLICY).ok_or_else(|| fail("no policy extension".into()))?;
    let pin_policy = policy
        .first()
        .copied()
        .and_then(PinPolicy::from_code)
        .ok_or_else(|| fail("unknown PIN policy".into()))?;
    let touch_policy = policy
        .get(1)
        .copied()
        .and_then(TouchPolicy::from_code)
        .ok_or_else(|| fail("unknown touch policy".into()))?;
    let form_factor = extension(&leaf, OID_FORM_FACTOR).and_then(|v| v.first().copied());
    Ok(AttestationReport {
        serial,
        slot,
        firmware,
        public_key: attested,
        pin_policy,
        touch_policy,
        form_factor,
        root,
    })
}

pub(super) fn p256_of(spki: &SubjectPublicKeyInfoOwned) -> Option<p256::PublicKey> {
    let bytes = spki.subject_public_key.as_bytes()?;
    p256::PublicKey::from_sec1_bytes(bytes).ok()
}

pub(super) fn spki_of(public_key: &p256::PublicKey) -> Result<SubjectPublicKeyInfoOwned, String> {
    use p256::pkcs8::EncodePublicKey;
    let der = public_key.to_public_key_der().map_err(|e| e.to_string())?;
    SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).map_err(|e| e.to_string())
}

/// From a day ago (a clock slightly behind still accepts it) to
/// 9999-12-31, RFC 5280's "no well-defined expiration": the certificate
/// only carries the key and its policies.
pub(super) fn open_ended_validity() -> der::Result<x509_cert::time::Validity> {
    use x509_cert::time::Time;
    let start = SystemTime::now()
        .checked_sub(Duration::from_secs(86_400))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let end =
        der::asn1::GeneralizedTime::from_date_time(der::DateTime::new(9999, 12, 31, 23, 59, 59)?);
    Ok(x509_cert::time::Validity {
        not_before: Time::try_from(start)?,
        not_after: Time::GeneralTime(end),
    })
}

pub(super) fn random_serial() -> der::Result<x509_cert::serial_number::SerialNumber> {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    // Positive and without a leading zero octet, as RFC 5280 wants.
    bytes[0] = (bytes[0] & 0x7F) | 0x40;
    x509_cert::serial_number::SerialNumber::new(&bytes)
}

/// Yubico's policy extension as age-plugin-yubikey writes it: the raw PIN
/// and touch policy bytes as the extension value, the same as attestation
/// certificates carry.
pub(super) struct PolicyExtension(pub(super) [u8; 2]);

impl der::oid::AssociatedOid for PolicyExtension {
    const OID: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap(OID_POLICY);
}

impl der::Encode for PolicyExtension {
    fn encoded_len(&self) -> der::Result<der::Length> {
        der::Length::try_from(self.0.len())
    }
    fn encode(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        writer.write(&self.0)
    }
}

impl x509_cert::ext::AsExtension for PolicyExtension {
    fn critical(&self, _: &x509_cert::name::Name, _: &[x509_cert::ext::Extension]) -> bool {
        false
    }
}

fn extension<'a>(cert: &'a Certificate, oid: &str) -> Option<&'a [u8]> {
    let oid = der::oid::ObjectIdentifier::new(oid).ok()?;
    cert.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == oid)
        .map(|e| e.extn_value.as_bytes())
}

fn common_name(name: &x509_cert::name::Name) -> Option<String> {
    let cn = der::oid::ObjectIdentifier::new(OID_COMMON_NAME).ok()?;
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == cn)
        .and_then(|atv| {
            der::asn1::Utf8StringRef::try_from(&atv.value)
                .map(|s| s.as_str().to_string())
                .or_else(|_| {
                    der::asn1::PrintableStringRef::try_from(&atv.value)
                        .map(|s| s.as_str().to_string())
                })
                .ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn policy_extension_is_the_two_raw_bytes() {
        use x509_cert::ext::AsExtension;
        let name =
            x509_cert::name::Name::from_str("CN=vault P-256 slot 82 pin=once touch=always,O=vault")
                .unwrap();
        let ext = PolicyExtension([2, 2]).to_extension(&name, &[]).unwrap();
        assert_eq!(ext.extn_id.to_string(), OID_POLICY);
        assert_eq!(ext.extn_value.as_bytes(), [2, 2]);
        assert!(!ext.critical);
        assert_eq!(
            common_name(&name).as_deref(),
            Some("vault P-256 slot 82 pin=once touch=always")
        );
    }
}
