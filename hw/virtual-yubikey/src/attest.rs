//! The per-installation attestation test root, and the certificates the
//! key's attestation key (slot F9) issues.
//!
//! A real YubiKey chains `slot certificate → F9 "Yubico PIV Attestation" →
//! Yubico PIV CA → Yubico PIV Root CA`; here the chain is
//! `slot certificate → F9 → test root`, so a test can verify attestation
//! end to end by trusting the test root instead of Yubico's.

use der::asn1::{GeneralizedTime, OctetString};
use der::{Decode, DecodePem, Encode, EncodePem};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rand::rngs::OsRng;
use rand::RngCore;
use signature::{Keypair, Signer};
use spki::{DynSignatureAlgorithmIdentifier, EncodePublicKey, SubjectPublicKeyInfoOwned};
use std::io;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime};
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

pub const ROOT_KEY_FILE: &str = "attestation-root-key.der";
pub const ROOT_CERT_FILE: &str = "attestation-root.pem";
pub const ROOT_SUBJECT: &str = "CN=vault virtual YubiKey test root";
pub const ATTESTATION_SUBJECT: &str = "CN=Yubico PIV Attestation";

// Firmware 5.7.4's chain, shaped like Yubico's current one ("Yubico
// Attestation Root 1" → "Yubico Attestation Intermediate A 1" → "Yubico
// PIV Attestation B 1" → the key's F9 certificate → the slot's). The names
// say "test" so no one mistakes them for Yubico's.
pub const ROOT_1_KEY_FILE: &str = "attestation-root-1-key.der";
pub const ROOT_1_CERT_FILE: &str = "attestation-root-1.pem";
pub const ROOT_1_SUBJECT: &str = "CN=Yubico Attestation Root 1 (vault test),O=vault test";
pub const INTERMEDIATE_A1_KEY_FILE: &str = "attestation-intermediate-a-1-key.der";
pub const INTERMEDIATE_A1_CERT_FILE: &str = "attestation-intermediate-a-1.pem";
pub const INTERMEDIATE_A1_SUBJECT: &str =
    "CN=Yubico Attestation Intermediate A 1 (vault test),O=vault test";
pub const PIV_B1_KEY_FILE: &str = "attestation-piv-b-1-key.der";
pub const PIV_B1_CERT_FILE: &str = "attestation-piv-b-1.pem";
pub const PIV_B1_SUBJECT: &str = "CN=Yubico PIV Attestation B 1 (vault test),O=vault test";
/// Both intermediates in one PEM file, the issuing one first.
pub const CHAIN_5_7_FILE: &str = "attestation-intermediates-5.7.pem";

/// Form factor reported in attested certificates: USB-A keychain, the same
/// as the Management applet reports.
pub const FORM_FACTOR: u8 = 0x01;

/// A test CA that certifies the attestation key of every virtual key made
/// with it. Never trusted by vault unless a test configures it explicitly.
#[derive(Clone)]
pub struct TestRoot {
    /// PKCS#8 DER of the P-256 root key.
    pub key_der: Vec<u8>,
    /// DER of the self-signed root certificate.
    pub cert_der: Vec<u8>,
}

impl std::fmt::Debug for TestRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of debug output.
        f.debug_struct("TestRoot")
            .field("cert_der", &hex::encode(&self.cert_der))
            .finish_non_exhaustive()
    }
}

fn invalid(msg: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

impl TestRoot {
    /// A fresh root that lives only in memory (unit tests).
    pub fn generate() -> io::Result<TestRoot> {
        let key = p256::SecretKey::random(&mut OsRng);
        let key_der = key.to_pkcs8_der().map_err(invalid)?.as_bytes().to_vec();
        let cert_der = self_signed_root(&key).map_err(invalid)?;
        Ok(TestRoot { key_der, cert_der })
    }

    /// Loads the root from `dir`, creating the key and the certificate
    /// when missing. Several keys may start at once with the same folder,
    /// so each file is published with a hard link that fails if another
    /// process got there first; the loser then reads the winner's file.
    pub fn load_or_create(dir: &Path) -> io::Result<TestRoot> {
        TestRoot::load_or_create_ca(dir, ROOT_KEY_FILE, ROOT_CERT_FILE, ROOT_SUBJECT, None)
    }

    /// The test PKI of firmware 5.7.4 in `dir`, created when missing:
    /// `ROOT_1_*` (self-signed, shaped like "Yubico Attestation Root 1")
    /// certifies `INTERMEDIATE_A1_*`, which certifies `PIV_B1_*`, the CA
    /// that issues every 5.7.4 key's F9 certificate. Returns the three in
    /// that order. The key stores only its F9 certificate; a verifier gets
    /// the intermediates from these files, as from Yubico's web site.
    pub fn load_or_create_5_7(dir: &Path) -> io::Result<[TestRoot; 3]> {
        let root = TestRoot::load_or_create_ca(
            dir,
            ROOT_1_KEY_FILE,
            ROOT_1_CERT_FILE,
            ROOT_1_SUBJECT,
            None,
        )?;
        let inter = TestRoot::load_or_create_ca(
            dir,
            INTERMEDIATE_A1_KEY_FILE,
            INTERMEDIATE_A1_CERT_FILE,
            INTERMEDIATE_A1_SUBJECT,
            Some((&root, Some(2))),
        )?;
        let piv = TestRoot::load_or_create_ca(
            dir,
            PIV_B1_KEY_FILE,
            PIV_B1_CERT_FILE,
            PIV_B1_SUBJECT,
            Some((&inter, Some(1))),
        )?;
        if !dir.join(CHAIN_5_7_FILE).exists() {
            let bundle = format!("{}{}", piv.cert_pem(), inter.cert_pem());
            publish(&dir.join(CHAIN_5_7_FILE), bundle.as_bytes(), 0o644)?;
        }
        Ok([root, inter, piv])
    }

    /// Loads one CA from `dir`, creating key and certificate when missing:
    /// self-signed without `issuer`, else issued by it with the given path
    /// length constraint.
    fn load_or_create_ca(
        dir: &Path,
        key_file: &str,
        cert_file: &str,
        subject: &str,
        issuer: Option<(&TestRoot, Option<u8>)>,
    ) -> io::Result<TestRoot> {
        std::fs::create_dir_all(dir)?;
        let key_path = dir.join(key_file);
        let cert_path = dir.join(cert_file);

        if !key_path.exists() {
            let key = p256::SecretKey::random(&mut OsRng);
            let der = key.to_pkcs8_der().map_err(invalid)?;
            publish(&key_path, der.as_bytes(), 0o600)?;
        }
        let key_der = std::fs::read(&key_path)?;
        let key = p256::SecretKey::from_pkcs8_der(&key_der)
            .map_err(|e| invalid(format!("{}: {e}", key_path.display())))?;

        if !cert_path.exists() {
            let der = match issuer {
                None => self_signed(&key, subject).map_err(invalid)?,
                Some((ca, path_len)) => ca.issue_ca(&key, subject, path_len)?,
            };
            let pem = Certificate::from_der(&der)
                .and_then(|c| c.to_pem(LineEnding::LF))
                .map_err(invalid)?;
            publish(&cert_path, pem.as_bytes(), 0o644)?;
        }
        let pem = std::fs::read_to_string(&cert_path)?;
        let cert = Certificate::from_pem(pem.as_bytes())
            .map_err(|e| invalid(format!("{}: {e}", cert_path.display())))?;
        let ours = key.public_key().to_public_key_der().map_err(invalid)?;
        let theirs = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(invalid)?;
        if ours.as_bytes() != theirs.as_slice() {
            return Err(invalid(format!(
                "{} does not certify the key in {}",
                cert_path.display(),
                key_path.display()
            )));
        }
        if let Some((ca, _)) = issuer {
            let ca_cert = Certificate::from_der(&ca.cert_der).map_err(invalid)?;
            if cert.tbs_certificate.issuer != ca_cert.tbs_certificate.subject {
                return Err(invalid(format!(
                    "{} is not issued by {}",
                    cert_path.display(),
                    ca_cert.tbs_certificate.subject
                )));
            }
        }
        Ok(TestRoot {
            key_der,
            cert_der: cert.to_der().map_err(invalid)?,
        })
    }

    /// A CA certificate for `key` under this one.
    fn issue_ca(
        &self,
        key: &p256::SecretKey,
        subject: &str,
        path_len: Option<u8>,
    ) -> io::Result<Vec<u8>> {
        let signer = self.signing_key()?;
        let me = Certificate::from_der(&self.cert_der).map_err(invalid)?;
        let profile = Profile::SubCA {
            issuer: me.tbs_certificate.subject.clone(),
            path_len_constraint: path_len,
        };
        issue::<_, p256::ecdsa::DerSignature>(
            &signer,
            profile,
            open_ended_validity()?,
            Name::from_str(subject).map_err(invalid)?,
            spki_of(&key.public_key())?,
            &[],
        )
        .map_err(invalid)
    }

    pub fn cert_pem(&self) -> String {
        Certificate::from_der(&self.cert_der)
            .and_then(|c| c.to_pem(LineEnding::LF))
            .unwrap_or_default()
    }

    fn signing_key(&self) -> io::Result<p256::ecdsa::SigningKey> {
        let key = p256::SecretKey::from_pkcs8_der(&self.key_der).map_err(invalid)?;
        Ok(p256::ecdsa::SigningKey::from(key))
    }

    /// Creates a device's attestation key (slot F9) and its certificate.
    /// Returns the private scalar and the certificate DER.
    pub fn new_attestation_key(&self) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let signer = self.signing_key()?;
        let root = Certificate::from_der(&self.cert_der).map_err(invalid)?;
        let key = p256::SecretKey::random(&mut OsRng);
        let spki = spki_of(&key.public_key())?;
        let subject = Name::from_str(ATTESTATION_SUBJECT).map_err(invalid)?;
        let profile = Profile::SubCA {
            issuer: root.tbs_certificate.subject.clone(),
            path_len_constraint: Some(0),
        };
        let cert = issue::<_, p256::ecdsa::DerSignature>(
            &signer,
            profile,
            open_ended_validity()?,
            subject,
            spki,
            &[],
        )
        .map_err(invalid)?;
        Ok((key.to_bytes().to_vec(), cert))
    }
}

/// Writes `bytes` to `path` only if nothing is there yet.
fn publish(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut suffix = [0u8; 8];
    OsRng.fill_bytes(&mut suffix);
    let tmp = path.with_extension(format!("tmp-{}", hex::encode(suffix)));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        io::Write::write_all(&mut f, bytes)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn spki_of(key: &impl EncodePublicKey) -> io::Result<SubjectPublicKeyInfoOwned> {
    let der = key.to_public_key_der().map_err(invalid)?;
    SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).map_err(invalid)
}

/// From now until 9999-12-31, RFC 5280's "no well-defined expiration".
fn open_ended_validity() -> io::Result<Validity> {
    // A day back, so a host whose clock is slightly behind still accepts it.
    let start = SystemTime::now()
        .checked_sub(Duration::from_secs(86_400))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let not_before = Time::try_from(start).map_err(invalid)?;
    let end = GeneralizedTime::from_date_time(
        der::DateTime::new(9999, 12, 31, 23, 59, 59).map_err(invalid)?,
    );
    Ok(Validity {
        not_before,
        not_after: Time::GeneralTime(end),
    })
}

fn random_serial() -> io::Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    // Positive and without a leading zero octet, as RFC 5280 wants.
    bytes[0] = (bytes[0] & 0x7F) | 0x40;
    SerialNumber::new(&bytes).map_err(invalid)
}

fn self_signed_root(key: &p256::SecretKey) -> Result<Vec<u8>, String> {
    self_signed(key, ROOT_SUBJECT)
}

fn self_signed(key: &p256::SecretKey, subject: &str) -> Result<Vec<u8>, String> {
    let signer = p256::ecdsa::SigningKey::from(key.clone());
    let spki = spki_of(&key.public_key()).map_err(|e| e.to_string())?;
    let subject = Name::from_str(subject).map_err(|e| e.to_string())?;
    let validity = open_ended_validity().map_err(|e| e.to_string())?;
    issue::<_, p256::ecdsa::DerSignature>(&signer, Profile::Root, validity, subject, spki, &[])
}

/// A Yubico attestation extension. Its value is raw bytes, not DER, for
/// every OID but the serial (which is a DER INTEGER): that is what real
/// attestation certificates carry and what verifiers parse.
struct YubicoExtension {
    oid: der::oid::ObjectIdentifier,
    value: Vec<u8>,
}

const OID_FIRMWARE: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.3");
const OID_SERIAL: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.7");
const OID_POLICY: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.8");
const OID_FORM_FACTOR: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.9");

fn issue<S, Sig>(
    signer: &S,
    profile: Profile,
    validity: Validity,
    subject: Name,
    spki: SubjectPublicKeyInfoOwned,
    extra: &[YubicoExtension],
) -> Result<Vec<u8>, String>
where
    S: Keypair + DynSignatureAlgorithmIdentifier + Signer<Sig>,
    S::VerifyingKey: EncodePublicKey,
    Sig: spki::SignatureBitStringEncoding,
{
    let mut builder = CertificateBuilder::new(
        profile,
        random_serial().map_err(|e| e.to_string())?,
        validity,
        subject,
        spki,
        signer,
    )
    .map_err(|e| e.to_string())?;
    for ext in extra {
        builder
            .add_extension(&RawExtension {
                oid: ext.oid,
                value: &ext.value,
            })
            .map_err(|e| e.to_string())?;
    }
    let cert = builder.build::<Sig>().map_err(|e| e.to_string())?;
    cert.to_der().map_err(|e| e.to_string())
}

/// Carries a raw extension value through `CertificateBuilder::add_extension`.
/// x509-cert's `AsExtension` ties one OID to one Rust type; `to_extension`
/// is overridden so the per-value OID is the one written out.
struct RawExtension<'a> {
    oid: der::oid::ObjectIdentifier,
    value: &'a [u8],
}

impl der::oid::AssociatedOid for RawExtension<'_> {
    // Never written: `to_extension` below uses `self.oid`.
    const OID: der::oid::ObjectIdentifier = OID_FIRMWARE;
}

impl Encode for RawExtension<'_> {
    fn encoded_len(&self) -> der::Result<der::Length> {
        der::Length::try_from(self.value.len())
    }
    fn encode(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        writer.write(self.value)
    }
}

impl AsExtension for RawExtension<'_> {
    fn critical(&self, _subject: &Name, _extensions: &[Extension]) -> bool {
        false
    }
    fn to_extension(&self, _subject: &Name, _extensions: &[Extension]) -> der::Result<Extension> {
        Ok(Extension {
            extn_id: self.oid,
            critical: false,
            extn_value: OctetString::new(self.value.to_vec())?,
        })
    }
}

/// What an attestation certificate states about the attested key.
pub struct Attested<'a> {
    pub slot: u8,
    pub spki_der: &'a [u8],
    pub pin_policy: u8,
    pub touch_policy: u8,
    pub serial: u32,
    pub version: [u8; 3],
}

/// The F9 key that signs attestation certificates.
pub enum AttestationKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

/// Issues the attestation certificate for one slot, signed by the F9 key
/// and named after the F9 certificate (`f9_cert_der`), whose validity it
/// copies as real keys do.
pub fn attest(
    key: &AttestationKey,
    f9_cert_der: Option<&[u8]>,
    what: &Attested<'_>,
) -> Result<Vec<u8>, String> {
    let f9 = f9_cert_der.and_then(|der| Certificate::from_der(der).ok());
    let (issuer, validity) = match f9 {
        Some(c) => (c.tbs_certificate.subject, c.tbs_certificate.validity),
        None => (
            Name::from_str(ATTESTATION_SUBJECT).map_err(|e| e.to_string())?,
            open_ended_validity().map_err(|e| e.to_string())?,
        ),
    };
    let subject = Name::from_str(&format!("CN=YubiKey PIV Attestation {:02x}", what.slot))
        .map_err(|e| e.to_string())?;
    let spki = SubjectPublicKeyInfoOwned::from_der(what.spki_der).map_err(|e| e.to_string())?;
    let serial_der = what.serial.to_der().map_err(|e| e.to_string())?;
    let extra = [
        YubicoExtension {
            oid: OID_FIRMWARE,
            value: what.version.to_vec(),
        },
        YubicoExtension {
            oid: OID_SERIAL,
            value: serial_der,
        },
        YubicoExtension {
            oid: OID_POLICY,
            value: vec![what.pin_policy, what.touch_policy],
        },
        YubicoExtension {
            oid: OID_FORM_FACTOR,
            value: vec![FORM_FACTOR],
        },
    ];
    // Real attestation certificates carry only the Yubico extensions.
    let profile = Profile::Manual {
        issuer: Some(issuer),
    };
    match key {
        AttestationKey::P256(k) => {
            issue::<_, p256::ecdsa::DerSignature>(k, profile, validity, subject, spki, &extra)
        }
        AttestationKey::P384(k) => {
            issue::<_, p384::ecdsa::DerSignature>(k, profile, validity, subject, spki, &extra)
        }
    }
}

/// DER of the SubjectPublicKeyInfo for an uncompressed SEC1 point.
pub fn spki_from_point(alg_p384: bool, point: &[u8]) -> Option<Vec<u8>> {
    let der = if alg_p384 {
        p384::PublicKey::from_sec1_bytes(point)
            .ok()?
            .to_public_key_der()
            .ok()?
    } else {
        p256::PublicKey::from_sec1_bytes(point)
            .ok()?
            .to_public_key_der()
            .ok()?
    };
    Some(der.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use signature::Verifier;

    fn verify_signed_by(cert: &Certificate, issuer: &Certificate) {
        let tbs = cert.tbs_certificate.to_der().unwrap();
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(
            issuer
                .tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes(),
        )
        .unwrap();
        let sig = p256::ecdsa::DerSignature::try_from(cert.signature.raw_bytes()).unwrap();
        key.verify(&tbs, &sig).unwrap();
        assert_eq!(cert.tbs_certificate.issuer, issuer.tbs_certificate.subject);
    }

    #[test]
    fn load_or_create_makes_files_once_and_reloads_them() {
        let dir = tempfile::tempdir().unwrap();
        let a = TestRoot::load_or_create(dir.path()).unwrap();
        let b = TestRoot::load_or_create(dir.path()).unwrap();
        assert_eq!(a.key_der, b.key_der);
        assert_eq!(a.cert_der, b.cert_der);
        assert!(a.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(ROOT_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let pem = std::fs::read_to_string(dir.path().join(ROOT_CERT_FILE)).unwrap();
        assert_eq!(pem, a.cert_pem());
        let cert = Certificate::from_der(&a.cert_der).unwrap();
        assert_eq!(cert.tbs_certificate.subject.to_string(), ROOT_SUBJECT);
        verify_signed_by(&cert, &cert);
    }

    #[test]
    fn chain_5_7_is_root_intermediate_piv_ca() {
        let dir = tempfile::tempdir().unwrap();
        let [root, inter, piv] = TestRoot::load_or_create_5_7(dir.path()).unwrap();
        let again = TestRoot::load_or_create_5_7(dir.path()).unwrap();
        assert_eq!(again[2].cert_der, piv.cert_der);
        let root = Certificate::from_der(&root.cert_der).unwrap();
        let inter = Certificate::from_der(&inter.cert_der).unwrap();
        let piv_cert = Certificate::from_der(&piv.cert_der).unwrap();
        verify_signed_by(&root, &root);
        verify_signed_by(&inter, &root);
        verify_signed_by(&piv_cert, &inter);
        let (_, f9) = piv.new_attestation_key().unwrap();
        verify_signed_by(&Certificate::from_der(&f9).unwrap(), &piv_cert);
        let bundle = std::fs::read_to_string(dir.path().join(CHAIN_5_7_FILE)).unwrap();
        assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(bundle.starts_with(&piv.cert_pem()));
        // The 5.4.3 root is a separate file and stays untouched.
        assert!(!dir.path().join(ROOT_CERT_FILE).exists());
    }

    #[test]
    fn mismatched_cert_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        TestRoot::load_or_create(dir.path()).unwrap();
        std::fs::write(
            dir.path().join(ROOT_CERT_FILE),
            TestRoot::generate().unwrap().cert_pem(),
        )
        .unwrap();
        assert!(TestRoot::load_or_create(dir.path()).is_err());
    }

    #[test]
    fn attestation_key_chains_to_root() {
        let root = TestRoot::generate().unwrap();
        let (scalar, der) = root.new_attestation_key().unwrap();
        assert_eq!(scalar.len(), 32);
        let f9 = Certificate::from_der(&der).unwrap();
        let root_cert = Certificate::from_der(&root.cert_der).unwrap();
        verify_signed_by(&f9, &root_cert);
        assert_eq!(f9.tbs_certificate.subject.to_string(), ATTESTATION_SUBJECT);

        let leaf_key = p256::SecretKey::random(&mut OsRng);
        let spki = leaf_key.public_key().to_public_key_der().unwrap();
        let f9_key = p256::SecretKey::from_slice(&scalar).unwrap();
        let leaf = attest(
            &AttestationKey::P256(f9_key.into()),
            Some(&der),
            &Attested {
                slot: 0x9a,
                spki_der: spki.as_bytes(),
                pin_policy: 2,
                touch_policy: 3,
                serial: 12345678,
                version: [5, 4, 3],
            },
        )
        .unwrap();
        let leaf = Certificate::from_der(&leaf).unwrap();
        verify_signed_by(&leaf, &f9);
        assert_eq!(
            leaf.tbs_certificate.subject.to_string(),
            "CN=YubiKey PIV Attestation 9a"
        );
        let exts = leaf.tbs_certificate.extensions.unwrap();
        let get = |oid| {
            exts.iter()
                .find(|e| e.extn_id == oid)
                .map(|e| e.extn_value.as_bytes().to_vec())
                .unwrap()
        };
        assert_eq!(get(OID_FIRMWARE), vec![5, 4, 3]);
        assert_eq!(get(OID_SERIAL), vec![0x02, 0x04, 0x00, 0xBC, 0x61, 0x4E]);
        assert_eq!(get(OID_POLICY), vec![2, 3]);
        assert_eq!(get(OID_FORM_FACTOR), vec![FORM_FACTOR]);
    }
}
