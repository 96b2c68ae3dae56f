//! The fuzz targets' seed files (`fuzz/corpus/TARGET/seed-*`) and the
//! attestation test root (`fuzz/fixtures/attestation-root.pem`), made here
//! from vault's own encoders with fixed keys and randomness, so they are
//! valid for the code as it is and reproducible. This test fails when a
//! committed file differs from what the code makes now;
//! `VAULT_WRITE_FUZZ_SEEDS=1 cargo test --test fuzz_seeds` writes them.
//! Nothing in them is secret: every key is a constant of this file.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use der::asn1::GeneralizedTime;
use der::{Decode, Encode, EncodePem};
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};
use vault_base::creds::{LongTermKey, SessionCredentials};
use vault_base::secret::{SecretAccessKey, SecretBytes, SessionToken};
use vault_profile::session::{CachedSession, SessionKind};
use vault_secrets::envelope::{self, SoftwareFido2, SoftwarePiv};
use vault_secrets::store::file::{encode_with_key, KdfParams};
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::AsExtension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

/// What the targets assume (see each target's header).
const SERIAL: u32 = 12345678;
const SLOT: u8 = 0x82;
const CONTEXT: &str = "key/fuzz";
const FILE_KEY: [u8; 32] = [0x42; 32];
const ECS_TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const README_CONFIG: &str = "[profile jonsmith]
region = eu-west-1
mfa_serial = arn:aws:iam::111111111111:mfa/jonsmith

[profile admin]
source_profile = jonsmith
role_arn = arn:aws:iam::222222222222:role/Administrator

[profile admin-cli]
credential_process = vault exec admin --json
";

const BUSY_CONFIG: &str = "\u{feff}[default]\r
region = us-east-1 ; inline comment\r
duration_seconds = 3600\r
\r
[profile base]\r
include_profile = default\r
mfa_serial = arn:aws:iam::111111111111:mfa/base\r
services = local\r
vault_oath = aws:base@111111111111\r
\r
[profile role]\r
source_profile = base\r
role_arn = arn:aws:iam::222222222222:role/R\r
session_tags = Team=a, Env=b\r
transitive_session_tags = Team\r
source_identity = me\r
external_id = x#y\r
\r
[profile loop-a]\r
source_profile = loop-b\r
[profile loop-b]\r
source_profile = loop-a\r
\r
[profile sso]\r
sso_session = s\r
[sso-session s]\r
sso_start_url = https://example.invalid/start\r
\r
[services local]\r
sts =\r
  endpoint_url = http://127.0.0.1:5000\r
s3 =\r
  endpoint_url = http://127.0.0.1:5001\r
\r
[plugins]\r
x = y\r
  continued\r
";

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file this test owns, by path under `fuzz/`, with its bytes.
fn files() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut seed = |target: &str, name: &str, bytes: Vec<u8>| {
        out.push((format!("corpus/{target}/seed-{name}"), bytes));
    };

    // config
    seed("config", "readme", README_CONFIG.into());
    seed("config", "busy", BUSY_CONFIG.into());

    // envelope: sealed to the target's software tokens.
    let piv = SoftwarePiv::generate(SERIAL, SLOT, &mut ChaCha20Rng::seed_from_u64(1));
    let fido2 = SoftwareFido2::generate("vault.fuzz", &mut ChaCha20Rng::seed_from_u64(2));
    let key = LongTermKey {
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: SecretAccessKey::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    };
    let secret = vault_secrets::store::encode_key(&key);
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let both = envelope::seal_with_rng(
        &secret,
        &[piv.recipient(), fido2.recipient([3; 32])],
        CONTEXT,
        &mut rng,
    )
    .unwrap()
    .encode();
    let piv_only = envelope::seal_with_rng(&secret, &[piv.recipient()], CONTEXT, &mut rng)
        .unwrap()
        .encode();
    // A kind from a newer vault, which this one skips and keeps.
    let mut unknown = piv_only.clone();
    unknown[5] += 1;
    unknown.extend_from_slice(&[9, 0, 3, 1, 2, 3]);
    seed("envelope", "piv-and-fido2", both);
    seed("envelope", "piv", piv_only);
    seed("envelope", "unknown-kind", unknown);

    // tlv: DeviceInfo, a three-byte tag, long-form lengths.
    seed(
        "tlv",
        "device-info",
        hex::decode("1402040000bc6105030504030103020303").unwrap(),
    );
    let mut long = hex::decode("5fc10582012c").unwrap();
    long.extend_from_slice(&[0xAB; 300]);
    long.extend_from_slice(&hex::decode("8100fe00").unwrap());
    seed("tlv", "long", long);

    // apdu_response: a chained command, then `61xx` and GET RESPONSE.
    let mut apdu = 300u16.to_be_bytes().to_vec();
    apdu.extend_from_slice(&[0x5A; 300]);
    for answer in [
        hex::decode("9000").unwrap(),
        [vec![0x11; 256], vec![0x61, 0x20]].concat(),
        [vec![0x22; 32], vec![0x90, 0x00]].concat(),
    ] {
        let n = (0..=255u8)
            .find(|&n| usize::from(n) * 258 / 255 == answer.len())
            .unwrap();
        apdu.push(n);
        apdu.extend_from_slice(&answer);
    }
    seed("apdu_response", "chained", apdu);

    // oath: the applet's answers.
    seed(
        "oath",
        "select-locked",
        hex::decode("790305040371080102030405060708740811223344556677887b0101").unwrap(),
    );
    let mut list = Vec::new();
    for name in ["aws:jonsmith@111111111111", "GitHub:me"] {
        list.push(0x72);
        list.push(u8::try_from(name.len() + 1).unwrap());
        list.push(0x21);
        list.extend_from_slice(name.as_bytes());
    }
    seed("oath", "list", list);
    seed("oath", "calculate", hex::decode("7605061234abcd").unwrap());
    seed(
        "oath",
        "validate",
        [vec![0x75, 20], vec![0x5C; 20]].concat(),
    );
    seed(
        "oath",
        "mfa-serial",
        b"arn:aws:iam::111111111111:mfa/team/a-device-name-long-enough-to-be-shortened-here"
            .to_vec(),
    );

    // piv: a slot certificate as vault writes it, and an attestation chain.
    let (root_pem, f9_der, leaf_der, slot_der) = attestation_chain();
    let mut object = Vec::new();
    vault_token::apdu::tlv::put(&mut object, 0x70, &slot_der);
    object.extend_from_slice(&[0x71, 0x01, 0x00, 0xFE, 0x00]);
    seed("piv", "slot-certificate-object", object);
    let mut f9_object = Vec::new();
    vault_token::apdu::tlv::put(&mut f9_object, 0x70, &f9_der);
    let attestation = [
        u16::try_from(leaf_der.len())
            .unwrap()
            .to_be_bytes()
            .to_vec(),
        leaf_der,
        f9_object,
    ]
    .concat();
    seed("piv", "attestation", attestation);
    out.push((
        "fixtures/attestation-root.pem".into(),
        root_pem.into_bytes(),
    ));

    // session: a cache entry and its name.
    let mut seed = |target: &str, name: &str, bytes: Vec<u8>| {
        out.push((format!("corpus/{target}/seed-{name}"), bytes));
    };
    let session = CachedSession {
        kind: SessionKind::AssumeRole,
        profile: "admin".into(),
        mfa_serial: Some("arn:aws:iam::111111111111:mfa/jonsmith".into()),
        creds: SessionCredentials {
            access_key_id: "ASIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: SecretAccessKey::new("not/a/real/secret"),
            session_token: SessionToken::new("FwoGZXIvYXdzEXAMPLE"),
            expiration: UNIX_EPOCH + Duration::from_secs(1_796_000_000),
        },
    };
    seed(
        "session",
        "entry",
        vault_profile::session::encode(&fuzz_session_id(), &session)
            .expose()
            .to_vec(),
    );
    seed(
        "session",
        "id",
        b"session:0123456789abcdef0123456789abcdef".to_vec(),
    );

    // mfa_use: "now", then a record with a recent code.
    let now: u64 = 1_796_000_000;
    let record = format!(
        "{{\"last_step\":{},\"used\":[[\"00112233445566778899aabbccddeeff\",{}]]}}",
        now / 30,
        now - 10
    );
    seed(
        "mfa_use",
        "recent",
        [now.to_be_bytes().to_vec(), record.into_bytes()].concat(),
    );

    // file_store: an item sealed under the target's key.
    let item = encode_with_key(
        &FILE_KEY,
        KdfParams::DEFAULT,
        [1; 16],
        [2; 24],
        CONTEXT,
        secret.expose(),
    );
    seed("file_store", "item", item);
    seed(
        "file_store",
        "name",
        vault_secrets::store::file::item_file_name(CONTEXT).into_bytes(),
    );

    // tokens: tokens.json with every kind of record.
    let point = match piv.recipient() {
        envelope::Recipient::Piv { public_key, .. } => {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            hex::encode(public_key.to_encoded_point(false).as_bytes())
        }
        envelope::Recipient::Fido2 { .. } => unreachable!(),
    };
    let tokens = serde_json::json!({
        "tokens": [
            {
                "serial": SERIAL,
                "version": "5.4.3",
                "role": "primary",
                "piv": {
                    "slot": SLOT,
                    "public_key": point,
                    "pin_policy": "once",
                    "touch_policy": "always",
                    "attested": true
                },
                "oath": [{
                    "mfa_serial": "arn:aws:iam::111111111111:mfa/jonsmith",
                    "name": "aws:jonsmith@111111111111",
                    "touch": true
                }],
                "fido2": null
            },
            {
                "serial": 87654321,
                "version": "5.7.1",
                "role": "backup",
                "piv": null,
                "fido2": {"credential_id": "00ff", "salt": "11", "rp_id": "vault.fuzz"}
            }
        ],
        "pending_backup": ["jonsmith"]
    });
    seed(
        "tokens",
        "tokens",
        serde_json::to_vec_pretty(&tokens).unwrap(),
    );

    // otpauth: what AWS hands out.
    seed(
        "otpauth",
        "uri",
        b"otpauth://totp/Amazon%20Web%20Services:jonsmith@111111111111?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Amazon%20Web%20Services".to_vec(),
    );
    seed(
        "otpauth",
        "base32",
        b"jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp====".to_vec(),
    );

    // ecs: what the AWS SDKs send.
    seed(
        "ecs",
        "get",
        format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: {ECS_TOKEN}\r\nUser-Agent: aws-cli/2\r\n\r\n"
        )
        .into_bytes(),
    );

    // sso_callback: the browser coming back from the authorize page.
    seed(
        "sso_callback",
        "redirect",
        b"GET /oauth/callback?code=fuzz-code&state=fuzz-state HTTP/1.1\r\nHost: 127.0.0.1:8400\r\nUser-Agent: Mozilla/5.0\r\n\r\n".to_vec(),
    );

    // cli
    seed("cli", "duration", b"1h30m".to_vec());
    seed("cli", "slot", b"0x82".to_vec());
    out
}

/// Raw bytes as an extension's value, as YubiKeys write theirs.
struct Raw {
    oid: &'static str,
    value: Vec<u8>,
}

impl der::Encode for Raw {
    fn encoded_len(&self) -> der::Result<der::Length> {
        der::Length::try_from(self.value.len())
    }
    fn encode(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        writer.write(&self.value)
    }
}

impl AsExtension for Raw {
    fn critical(&self, _: &Name, _: &[x509_cert::ext::Extension]) -> bool {
        false
    }
    fn to_extension(
        &self,
        _: &Name,
        _: &[x509_cert::ext::Extension],
    ) -> der::Result<x509_cert::ext::Extension> {
        Ok(x509_cert::ext::Extension {
            extn_id: der::oid::ObjectIdentifier::new_unwrap(self.oid),
            critical: false,
            extn_value: der::asn1::OctetString::new(self.value.clone())?,
        })
    }
}

impl der::oid::AssociatedOid for Raw {
    // Unused: `to_extension` names the OID of each value.
    const OID: der::oid::ObjectIdentifier =
        der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3");
}

fn key(byte: u8) -> SigningKey {
    SigningKey::from_slice(&[byte; 32]).unwrap()
}

fn spki(key: &SigningKey) -> SubjectPublicKeyInfoOwned {
    let der = key.verifying_key().to_public_key_der().unwrap();
    SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).unwrap()
}

fn validity() -> Validity {
    let at = |year| {
        Time::GeneralTime(GeneralizedTime::from_date_time(
            der::DateTime::new(year, 1, 1, 0, 0, 0).unwrap(),
        ))
    };
    Validity {
        not_before: at(2024),
        not_after: at(9999),
    }
}

fn issue(
    signer: &SigningKey,
    profile: Profile,
    serial: u8,
    subject: &str,
    key: SubjectPublicKeyInfoOwned,
    extensions: &[Raw],
) -> Vec<u8> {
    let mut builder = CertificateBuilder::new(
        profile,
        SerialNumber::new(&[serial]).unwrap(),
        validity(),
        Name::from_str(subject).unwrap(),
        key,
        signer,
    )
    .unwrap();
    for e in extensions {
        builder.add_extension(e).unwrap();
    }
    builder.build::<DerSignature>().unwrap().to_der().unwrap()
}

/// The test root (PEM), an F9 certificate it signs, the attestation of
/// slot 82 of YubiKey `SERIAL` that F9 signs, and a slot certificate as
/// vault writes it (self-signed, with the policy extension).
fn attestation_chain() -> (String, Vec<u8>, Vec<u8>, Vec<u8>) {
    let (root_key, f9_key, slot_key) = (key(0x11), key(0x22), key(0x33));
    let root_name = "CN=vault fuzz seed root";
    let root = issue(&root_key, Profile::Root, 1, root_name, spki(&root_key), &[]);
    let f9_name = "CN=Yubico PIV Attestation";
    let f9 = issue(
        &root_key,
        Profile::SubCA {
            issuer: Name::from_str(root_name).unwrap(),
            path_len_constraint: Some(0),
        },
        2,
        f9_name,
        spki(&f9_key),
        &[],
    );
    let yubico = |oid, value: Vec<u8>| Raw { oid, value };
    let leaf = issue(
        &f9_key,
        Profile::SubCA {
            issuer: Name::from_str(f9_name).unwrap(),
            path_len_constraint: None,
        },
        3,
        "CN=YubiKey PIV Attestation 82",
        spki(&slot_key),
        &[
            yubico("1.3.6.1.4.1.41482.3.3", vec![5, 4, 3]),
            yubico("1.3.6.1.4.1.41482.3.7", SERIAL.to_der().unwrap()),
            yubico("1.3.6.1.4.1.41482.3.8", vec![2, 2]),
            yubico("1.3.6.1.4.1.41482.3.9", vec![1]),
        ],
    );
    let slot = issue(
        &slot_key,
        Profile::Root,
        4,
        "CN=vault P-256 slot 82 pin=once touch=always,O=vault",
        spki(&slot_key),
        &[yubico("1.3.6.1.4.1.41482.3.8", vec![2, 2])],
    );
    let root_pem = Certificate::from_der(&root)
        .unwrap()
        .to_pem(LineEnding::LF)
        .unwrap();
    (root_pem, f9, leaf, slot)
}

#[test]
fn seeds_are_what_the_code_makes() {
    let dir = seeds_dir();
    let write = std::env::var_os("VAULT_WRITE_FUZZ_SEEDS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (path, bytes) in files() {
        let path = dir.join(path);
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "fuzz seed files differ from what the code makes now: {stale:?}; \
         run `VAULT_WRITE_FUZZ_SEEDS=1 cargo test --test fuzz_seeds` and commit them"
    );
}

/// The id the session fuzz target decodes entries under.
fn fuzz_session_id() -> vault_profile::session::CacheId {
    vault_profile::session::CacheId::from_qualified("session:00000000000000000000000000000000")
        .unwrap()
}

#[test]
fn the_seeds_are_accepted_by_their_parsers() {
    let files: std::collections::BTreeMap<String, Vec<u8>> = files().into_iter().collect();
    let get = |p: &str| &files[p][..];
    for name in ["readme", "busy"] {
        let config = vault_profile::config::ConfigFile::parse_bytes(
            get(&format!("corpus/config/seed-{name}")),
            "c",
        )
        .unwrap();
        assert!(!config.profile_names().is_empty());
    }
    for name in ["piv-and-fido2", "piv", "unknown-kind"] {
        vault_secrets::envelope::Envelope::decode(get(&format!("corpus/envelope/seed-{name}")))
            .unwrap();
    }
    let (params, _, plain) = vault_secrets::store::file::decode_with_key(
        get("corpus/file_store/seed-item"),
        &FILE_KEY,
        CONTEXT,
    )
    .unwrap();
    assert_eq!(params, KdfParams::DEFAULT);
    vault_secrets::store::decode_key(CONTEXT, &SecretBytes::new(plain.expose().to_vec())).unwrap();
    vault_profile::session::decode(&fuzz_session_id(), get("corpus/session/seed-entry")).unwrap();
    vault_token::oath::parse_select(get("corpus/oath/seed-select-locked")).unwrap();
    assert_eq!(
        vault_token::oath::parse_list(get("corpus/oath/seed-list"))
            .unwrap()
            .len(),
        2
    );
    vault_token::oath::parse_calculate(get("corpus/oath/seed-calculate")).unwrap();

    // The attestation seed passes every check against the fixture root.
    let attestation = get("corpus/piv/seed-attestation");
    let len = usize::from(u16::from_be_bytes([attestation[0], attestation[1]]));
    let (leaf, f9_object) = attestation[2..].split_at(len);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.pem");
    std::fs::write(&root, get("fixtures/attestation-root.pem")).unwrap();
    let roots = vault_token::piv::TrustedRoots::from_var(Some(root.as_os_str())).unwrap();
    let slot_key = vault_token::piv::parse_slot_certificate(SERIAL, SLOT, leaf.to_vec())
        .unwrap()
        .public_key;
    let report =
        vault_token::piv::check_attestation(SERIAL, SLOT, &slot_key, leaf, f9_object, &roots)
            .unwrap();
    assert_eq!(report.firmware.to_string(), "5.4.3");
    let object = get("corpus/piv/seed-slot-certificate-object");
    let der = vault_token::piv::cert_from_object(object).unwrap().unwrap();
    let cert = vault_token::piv::parse_slot_certificate(SERIAL, SLOT, der).unwrap();
    assert_eq!(cert.public_key, slot_key);
    assert!(cert.pin_policy.is_some() && cert.touch_policy.is_some());

    vault::cmd::hw_enroll::parse_totp_uri(
        std::str::from_utf8(get("corpus/otpauth/seed-uri")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        vault::ecs::judge(get("corpus/ecs/seed-get"), ECS_TOKEN.as_bytes()),
        vault::ecs::Verdict::Serve
    );
    assert!(matches!(
        vault_aws::sso::judge_callback(get("corpus/sso_callback/seed-redirect"), "fuzz-state"),
        vault_aws::sso::Callback::Code(_)
    ));
}
